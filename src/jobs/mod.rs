//! Asynchronous jobs (`/v1/jobs`): a client hands keel a `/process` request,
//! gets an id at once, and keel guarantees it one final answer.
//!
//! Not to be confused with [`crate::job`], the unit of work one request runs.
//!
//! - [`store`]: where jobs live — the [`store::Store`] enum over the memory
//!   store (one instance, not durable) and [`redis_store`] (Redis Streams with
//!   one consumer group, durable and shared by every instance);
//! - [`consumer`]: the supervised `JobConsumer` actor that takes deliveries
//!   and runs each job in its own task through the same pipeline as
//!   `/process`, handed over as a [`runner::Runner`];
//! - [`runner`]: that hand-over (the pipeline sits above this module);
//! - [`webhook`]: signed callbacks and the callback-target guard;
//! - [`config`]: the `JOB_*` settings.
//!
//! Invariants:
//! - **At-least-once execution, one final record.** Every write after
//!   submission is a check-and-set on the record's version: a worker that
//!   lost its delivery (reclaimed after the visibility timeout, cancelled)
//!   cannot overwrite a newer outcome.
//! - **Never accept and lose.** A submission answers 202 only after the store
//!   has persisted the job; a store that cannot answers 503
//!   `JOB_STORE_UNAVAILABLE` within its timeout.
//! - A job is visible only to its owner (the submitting identity).

pub mod config;
pub mod consumer;
pub mod redis_store;
pub mod runner;
pub mod store;
pub mod webhook;

use crate::metrics::{LatencyHistogram, LatencySummary};
use config::{JobsConfig, StoreKind};
use dashmap::DashMap;
use runner::Runner;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use store::{Effects, Enqueue, Store, StoreError, SubmitOutcome, Versioned};
use tokio::sync::{Notify, broadcast};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker (or for its not-before time).
    Queued,
    /// A worker is running it.
    Running,
    /// Answered; `result` holds the `/process` success body.
    Succeeded,
    /// Failed for good; `error` says why.
    Failed,
    /// Cancelled by its owner.
    Cancelled,
    /// Its `ttl_seconds` ran out before any provider could answer.
    Expired,
}

impl JobStatus {
    /// Every status, for filters and stats.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Expired,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Expired => "expired",
        }
    }

    /// True once nothing will change the outcome.
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

impl std::str::FromStr for JobStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(())
    }
}

/// Why a job failed, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobFailure {
    /// Human-readable message.
    pub error: String,
    /// Stable machine-readable code (the `/process` error code, or `JOB_POISONED`).
    pub error_code: String,
    /// Whether submitting the same job again may succeed.
    pub retryable: bool,
}

/// What became of a job's webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookState {
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// POSTs made.
    pub attempts: u32,
    /// HTTP status of the last attempt, when one answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// The last error, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last attempt was made (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
}

/// A job as stored (the same JSON in both stores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `job_<32 hex>`.
    pub job_id: String,
    /// The identity that created it (`Identity::id`); only it may see the job.
    pub owner: String,
    /// Current status.
    pub status: JobStatus,
    /// The operation asked for.
    pub operation: String,
    /// The `/process` body (validated at submission, validated again when run).
    pub request: Value,
    /// The client's own JSON object, echoed back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Where to POST the final job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Submission time, ms since the epoch.
    pub created_at_ms: u64,
    /// Last start, ms since the epoch.
    #[serde(default)]
    pub started_at_ms: Option<u64>,
    /// When it became final, ms since the epoch.
    #[serde(default)]
    pub finished_at_ms: Option<u64>,
    /// After this, keel stops trying (`created_at + ttl_seconds`).
    pub expires_at_ms: u64,
    /// Not to be started before this (ms since the epoch; 0 = at once).
    #[serde(default)]
    pub not_before_ms: u64,
    /// Times a worker started it.
    #[serde(default)]
    pub deliveries: u32,
    /// Starts since the last completed run: deliveries that never came back
    /// (the worker died or overran the visibility timeout). Reaching
    /// `JOB_MAX_DELIVERIES` dead-letters the job.
    #[serde(default)]
    pub unfinished: u32,
    /// The submission's W3C `traceparent` (tracing on): the execution span
    /// links to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The `/process` success body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailure>,
    /// The webhook's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookState>,
    /// Digest of the submitted body, to tell an idempotent retry from a conflict.
    pub request_hash: String,
    /// The `Idempotency-Key` it was submitted with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Consumer that ran it last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
}

fn ms_to_rfc3339(ms: u64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or_default();
    crate::time::rfc3339(t)
}

/// A job as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    /// The id.
    pub job_id: String,
    /// Current status.
    pub status: JobStatus,
    /// The operation.
    pub operation: String,
    /// Submission time (RFC 3339).
    pub created_at: String,
    /// Last start (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it became final (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// When keel stops trying (RFC 3339).
    pub expires_at: String,
    /// Times a worker started it.
    pub deliveries: u32,
    /// The client's metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// The `/process` success body (`ProcessResponse`), once succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Why it failed, once failed or expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailure>,
    /// The webhook's outcome, with a `callback_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookState>,
}

impl From<&JobRecord> for JobView {
    fn from(r: &JobRecord) -> JobView {
        JobView {
            job_id: r.job_id.clone(),
            status: r.status,
            operation: r.operation.clone(),
            created_at: ms_to_rfc3339(r.created_at_ms),
            started_at: r.started_at_ms.map(ms_to_rfc3339),
            finished_at: r.finished_at_ms.map(ms_to_rfc3339),
            expires_at: ms_to_rfc3339(r.expires_at_ms),
            deliveries: r.deliveries,
            metadata: r.metadata.clone(),
            result: r.result.clone(),
            error: r.error.clone(),
            webhook: r.webhook.clone(),
        }
    }
}

/// The answer to a submission.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The id.
    pub job_id: String,
    /// `queued` for a new job; the current status for an idempotent repeat.
    pub status: JobStatus,
    /// Submission time (RFC 3339).
    pub created_at: String,
    /// When keel stops trying (RFC 3339).
    pub expires_at: String,
}

/// What a submission came to.
#[derive(Debug)]
pub enum SubmitResult {
    /// A new job (202).
    Created(Accepted),
    /// The same key and body were submitted before (200).
    Existing(Accepted),
}

/// Why a jobs operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobsError {
    /// The store cannot persist or read right now (503 `JOB_STORE_UNAVAILABLE`).
    #[error("job store unavailable: {0}")]
    StoreUnavailable(String),
    /// `JOB_QUEUE_MAX` jobs are waiting (503 `QUEUE_FULL`).
    #[error("job queue is full ({0} jobs waiting); retry later")]
    QueueFull(u64),
    /// Same `Idempotency-Key`, different body (409 `IDEMPOTENCY_CONFLICT`).
    #[error("Idempotency-Key was already used with a different request body")]
    IdempotencyConflict,
    /// No such job for this caller (404).
    #[error("job '{0}' not found")]
    NotFound(String),
    /// The job is already final (409).
    #[error("job '{0}' is already {1}")]
    AlreadyFinal(String, &'static str),
    /// A concurrent update kept winning; try again (503).
    #[error("job '{0}' is being updated concurrently; retry")]
    Busy(String),
}

impl From<StoreError> for JobsError {
    fn from(e: StoreError) -> JobsError {
        JobsError::StoreUnavailable(e.to_string())
    }
}

/// A job to submit, validated by the HTTP layer.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The submitting identity.
    pub owner: String,
    /// The operation name.
    pub operation: String,
    /// The `/process` body.
    pub request: Value,
    /// The client's metadata.
    pub metadata: Option<Value>,
    /// The callback target, already checked.
    pub callback_url: Option<String>,
    /// How long keel may keep trying.
    pub ttl: Duration,
    /// The `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// Digest of the whole submitted body.
    pub request_hash: String,
    /// The submission's `traceparent` ([`crate::telemetry::current_traceparent`]).
    pub traceparent: Option<String>,
}

/// Listing filters of `GET /v1/jobs`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only this operation.
    pub operation: Option<String>,
    /// Page size.
    pub limit: usize,
    /// Continue after this cursor.
    pub cursor: Option<String>,
}

/// Counters and histograms of this instance's jobs (exposed to Prometheus).
#[derive(Debug, Default)]
pub struct JobMetrics {
    /// Jobs accepted here.
    pub submitted: AtomicU64,
    /// Submissions refused because the queue was full.
    pub rejected_full: AtomicU64,
    /// Submissions refused because the store was unavailable.
    pub rejected_store: AtomicU64,
    /// Final outcomes written here, by status (indexed like [`JobStatus::ALL`]).
    pub outcomes: [AtomicU64; 6],
    /// Jobs put back to wait (providers unavailable).
    pub requeued: AtomicU64,
    /// Deliveries of a job that had been delivered before.
    pub redeliveries: AtomicU64,
    /// Jobs handed back at shutdown.
    pub handed_back: AtomicU64,
    /// Webhook POSTs that failed (each attempt).
    pub webhook_failures: AtomicU64,
    /// Webhooks delivered.
    pub webhook_delivered: AtomicU64,
    /// Submission to first start.
    pub queue_wait: LatencyHistogram,
    /// One run, start to outcome.
    pub run_time: LatencyHistogram,
}

impl JobMetrics {
    fn outcome(&self, status: JobStatus) {
        if let Some(i) = JobStatus::ALL.iter().position(|s| *s == status) {
            self.outcomes[i].fetch_add(1, Relaxed);
        }
    }
}

/// Operator view of the jobs subsystem (`GET /internal/jobs/stats`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobsStats {
    /// `memory` or `redis`.
    pub store: &'static str,
    /// True with the Redis store.
    pub durable: bool,
    /// Whether the store answered.
    pub store_available: bool,
    /// This instance's consumer name.
    pub instance_id: String,
    /// True when consumption is paused (cluster-wide with Redis).
    pub paused: bool,
    /// Jobs waiting to be delivered (including those waiting for a not-before time).
    pub queued: u64,
    /// Of those, waiting for a not-before time.
    pub delayed: u64,
    /// Delivered and not yet finished (all instances).
    pub running: u64,
    /// Running on this instance.
    pub running_here: u64,
    /// Age of the oldest job waiting for delivery, in seconds.
    pub oldest_queued_age_seconds: Option<f64>,
    /// Final outcomes so far, by status (store-wide with Redis).
    #[schema(value_type = Object)]
    pub by_status: serde_json::Map<String, Value>,
    /// Consumers known to the store.
    pub consumers: Vec<ConsumerInfo>,
    /// Dead-lettered jobs.
    pub dead_letter_size: u64,
    /// Submission to first start on this instance.
    pub queue_wait: LatencySummary,
    /// Run time on this instance.
    pub run_time: LatencySummary,
    /// Redeliveries seen by this instance.
    pub redeliveries: u64,
}

/// One consumer, as the store sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsumerInfo {
    /// Its name (an instance id).
    pub name: String,
    /// Deliveries it holds.
    pub pending: u64,
    /// Seconds since it last read.
    pub last_seen_seconds_ago: f64,
}

/// The jobs subsystem of one engine: the store, the local wake-ups and the
/// jobs running here. Shared by the HTTP handlers and the consumer actor.
pub struct Jobs {
    config: JobsConfig,
    store: Store,
    /// Ids of jobs that just became final (local and, with Redis, from
    /// every instance): `?wait=` listens here.
    finished: broadcast::Sender<Arc<str>>,
    /// Woken when a job may be ready to deliver.
    wake: Arc<Notify>,
    /// Jobs running on this instance: worker number -> (job id, stop
    /// switch). Keyed by worker, not by delivery entry: a delivery this
    /// instance reclaims from itself (it overran the visibility timeout)
    /// keeps its entry id, and the old worker must neither replace nor
    /// remove the new one's switch.
    running: DashMap<u64, (String, tokio::sync::watch::Sender<bool>)>,
    /// Numbers the workers (keys of `running`).
    next_worker: AtomicU64,
    /// Set once the HTTP front is built; workers run jobs through it.
    runner: OnceLock<Arc<dyn Runner>>,
    /// True once shutdown began: no new deliveries.
    stopping: AtomicBool,
    /// Set by a pause or resume through this instance: the consumer re-reads
    /// the pause flag before its next claim instead of trusting its cached copy.
    pause_changed: AtomicBool,
    /// Set when this consumer may hold deliveries it never heard of (at
    /// start, after a failed claim, after a worker gave up on the store):
    /// the consume loop then re-reads its own pending list before claiming.
    own_pending_unsure: AtomicBool,
    /// Counters.
    pub metrics: JobMetrics,
    /// The webhook client, built on first use (so start-up needs no TLS
    /// roots when no job has a callback).
    http: OnceLock<Result<reqwest::Client, String>>,
}

/// Longest `?wait=`.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

impl Jobs {
    /// Builds the subsystem (connects nothing yet: the Redis store is lazy).
    pub fn new(
        config: JobsConfig,
        redis_url: Option<&str>,
        redis: crate::redis_link::RedisLinkOptions,
    ) -> Result<Arc<Jobs>, crate::redis_link::RedisError> {
        let (finished, _) = broadcast::channel(1024);
        let wake = Arc::new(Notify::new());
        let store = match (config.store, redis_url) {
            (StoreKind::Redis, Some(url)) => Store::Redis(redis_store::RedisStore::new(
                url,
                redis,
                &config,
                finished.clone(),
                wake.clone(),
            )?),
            _ => Store::Memory(store::MemoryStore::new(config.result_ttl)),
        };
        Ok(Arc::new(Jobs {
            config,
            store,
            finished,
            wake,
            running: DashMap::new(),
            next_worker: AtomicU64::new(0),
            runner: OnceLock::new(),
            stopping: AtomicBool::new(false),
            pause_changed: AtomicBool::new(false),
            own_pending_unsure: AtomicBool::new(true),
            metrics: JobMetrics::default(),
            http: OnceLock::new(),
        }))
    }

    /// Gives the subsystem what runs its jobs (once: the HTTP front does
    /// it when its state is built; see [`runner`]).
    pub fn attach(&self, runner: Arc<dyn Runner>) {
        let _ = self.runner.set(runner);
        self.wake.notify_one();
    }

    /// The webhook HTTP client.
    fn http(&self) -> Result<&reqwest::Client, String> {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(self.config.webhook_timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The settings.
    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// True with a store that survives this process.
    pub fn is_durable(&self) -> bool {
        matches!(self.store, Store::Redis(_))
    }

    /// Accepts a job, or refuses it without persisting anything.
    pub async fn submit(&self, job: NewJob) -> Result<SubmitResult, JobsError> {
        let now = crate::time::unix_ms();
        let ttl_ms = u64::try_from(job.ttl.as_millis()).unwrap_or(u64::MAX);
        let record = JobRecord {
            job_id: format!("job_{}", uuid::Uuid::new_v4().simple()),
            owner: job.owner,
            status: JobStatus::Queued,
            operation: job.operation,
            request: job.request,
            metadata: job.metadata,
            callback_url: job.callback_url,
            created_at_ms: now,
            started_at_ms: None,
            finished_at_ms: None,
            expires_at_ms: now.saturating_add(ttl_ms),
            not_before_ms: 0,
            deliveries: 0,
            unfinished: 0,
            result: None,
            error: None,
            webhook: None,
            request_hash: job.request_hash,
            idempotency_key: job.idempotency_key,
            consumer: None,
            traceparent: job.traceparent,
        };
        let outcome = match self.store.submit(&record, self.config.queue_max).await {
            Ok(o) => o,
            Err(e) => {
                self.metrics.rejected_store.fetch_add(1, Relaxed);
                return Err(e.into());
            }
        };
        match outcome {
            SubmitOutcome::Created => {
                self.metrics.submitted.fetch_add(1, Relaxed);
                self.wake.notify_one();
                Ok(SubmitResult::Created(accepted(&record)))
            }
            SubmitOutcome::Full(depth) => {
                self.metrics.rejected_full.fetch_add(1, Relaxed);
                Err(JobsError::QueueFull(depth))
            }
            SubmitOutcome::Existing(existing) => {
                if existing.request_hash == record.request_hash {
                    Ok(SubmitResult::Existing(accepted(&existing)))
                } else {
                    Err(JobsError::IdempotencyConflict)
                }
            }
        }
    }

    /// The caller's job.
    pub async fn get(&self, owner: &str, id: &str) -> Result<JobRecord, JobsError> {
        match self.store.get(id).await? {
            Some(v) if v.record.owner == owner => Ok(v.record),
            _ => Err(JobsError::NotFound(id.to_string())),
        }
    }

    /// The caller's job once final, or as it is after `wait`.
    pub async fn wait(
        &self,
        owner: &str,
        id: &str,
        wait: Duration,
    ) -> Result<JobRecord, JobsError> {
        // Subscribe before reading, so a completion in between is not missed.
        let mut finished = self.finished.subscribe();
        let record = self.get(owner, id).await?;
        if record.status.is_final() || wait.is_zero() {
            return Ok(record);
        }
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        loop {
            // The broadcast is the wake-up; the 1 s re-read only covers a
            // notification lost while the Redis subscription reconnects.
            let next = tokio::time::Instant::now() + Duration::from_secs(1);
            let until = next.min(deadline);
            let woke = tokio::time::timeout_at(until, async {
                loop {
                    match finished.recv().await {
                        Ok(done) if &*done == id => return true,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return true,
                        Err(broadcast::error::RecvError::Closed) => return false,
                    }
                }
            })
            .await;
            let record = self.get(owner, id).await?;
            if record.status.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(record);
            }
            if matches!(woke, Ok(false)) {
                tokio::time::sleep_until(deadline).await;
                return self.get(owner, id).await;
            }
        }
    }

    /// A page of the caller's jobs, newest first, and the next cursor.
    pub async fn list(
        &self,
        owner: &str,
        filter: &ListFilter,
    ) -> Result<(Vec<JobRecord>, Option<String>), JobsError> {
        let mut out = Vec::new();
        let mut cursor = filter.cursor.clone();
        // Filters are applied to pages of the owner's index; scan a bounded
        // number of pages so one call stays cheap.
        for _ in 0..20 {
            let (page, next) = self.store.list(owner, cursor.as_deref(), 100).await?;
            for (member, record) in page {
                let keep = filter.status.is_none_or(|s| s == record.status)
                    && filter
                        .operation
                        .as_deref()
                        .is_none_or(|op| op == record.operation);
                cursor = Some(member);
                if keep {
                    out.push(record);
                    if out.len() == filter.limit {
                        // More may follow: hand the position back.
                        return Ok((out, cursor));
                    }
                }
            }
            if next.is_none() {
                return Ok((out, None));
            }
            cursor = next;
        }
        Ok((out, cursor))
    }

    /// Cancels the caller's job: a queued one at once; a running one is
    /// final at once and its worker drops the provider call within 1 s.
    pub async fn cancel(&self, owner: &str, id: &str) -> Result<JobRecord, JobsError> {
        for _ in 0..5 {
            let Some(Versioned { mut record, ver }) = self.store.get(id).await? else {
                return Err(JobsError::NotFound(id.to_string()));
            };
            if record.owner != owner {
                return Err(JobsError::NotFound(id.to_string()));
            }
            if record.status.is_final() {
                return Err(JobsError::AlreadyFinal(
                    id.to_string(),
                    record.status.as_str(),
                ));
            }
            record.status = JobStatus::Cancelled;
            record.finished_at_ms = Some(crate::time::unix_ms());
            let effects = Effects {
                enqueue: Enqueue::Remove,
                finalize: true,
                ..Effects::default()
            };
            if self.store.update(id, ver, &record, effects).await? {
                self.metrics.outcome(JobStatus::Cancelled);
                self.job_finished(&record);
                return Ok(record);
            }
        }
        Err(JobsError::Busy(id.to_string()))
    }

    /// Dead-lettered jobs, newest first.
    pub async fn dead(&self, limit: usize) -> Result<Vec<JobRecord>, JobsError> {
        Ok(self.store.dead(limit).await?)
    }

    /// Puts a dead-lettered (or failed/expired) job back in the queue.
    pub async fn retry(&self, id: &str) -> Result<JobRecord, JobsError> {
        for _ in 0..5 {
            let Some(Versioned { mut record, ver }) = self.store.get(id).await? else {
                return Err(JobsError::NotFound(id.to_string()));
            };
            if !matches!(record.status, JobStatus::Failed | JobStatus::Expired) {
                return Err(JobsError::AlreadyFinal(
                    id.to_string(),
                    record.status.as_str(),
                ));
            }
            let now = crate::time::unix_ms();
            record.status = JobStatus::Queued;
            record.unfinished = 0;
            record.error = None;
            record.finished_at_ms = None;
            record.not_before_ms = 0;
            record.webhook = None;
            // A retried job gets its time to live again.
            let ttl = record.expires_at_ms.saturating_sub(record.created_at_ms);
            record.expires_at_ms = now.saturating_add(ttl);
            let effects = Effects {
                enqueue: Enqueue::Now,
                dead: Some(false),
                keep_until_ms: Some(record.expires_at_ms),
                ..Effects::default()
            };
            if self.store.update(id, ver, &record, effects).await? {
                self.wake.notify_one();
                return Ok(record);
            }
        }
        Err(JobsError::Busy(id.to_string()))
    }

    /// Stops (true) or restarts (false) consumption on every instance.
    pub async fn set_paused(&self, paused: bool) -> Result<(), JobsError> {
        self.store.set_paused(paused).await?;
        self.pause_changed
            .store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
        Ok(())
    }

    /// The operator view.
    pub async fn stats(&self) -> JobsStats {
        let depth = self.store.depth().await;
        let available = depth.is_ok();
        let depth = depth.unwrap_or_default();
        let mut by_status = serde_json::Map::new();
        let outcomes = self.store.outcomes().await.unwrap_or_default();
        for s in JobStatus::ALL.iter().filter(|s| s.is_final()) {
            let n = outcomes
                .iter()
                .find(|(st, _)| st == s.as_str())
                .map_or(0, |(_, n)| *n);
            by_status.insert(s.as_str().into(), n.into());
        }
        by_status.insert("queued".into(), depth.queued.into());
        by_status.insert("running".into(), depth.running.into());
        JobsStats {
            store: self.config.store.as_str(),
            durable: self.is_durable(),
            store_available: available,
            instance_id: self.config.instance_id.clone(),
            paused: self.store.is_paused().await.unwrap_or(false),
            queued: depth.queued,
            delayed: depth.delayed,
            running: depth.running,
            running_here: self.running.len() as u64,
            oldest_queued_age_seconds: depth
                .oldest_queued_ms
                .map(|ms| crate::time::unix_ms().saturating_sub(ms) as f64 / 1000.0),
            by_status,
            consumers: self.store.consumers().await.unwrap_or_default(),
            dead_letter_size: depth.dead,
            queue_wait: self.metrics.queue_wait.summary(),
            run_time: self.metrics.run_time.summary(),
            redeliveries: self.metrics.redeliveries.load(Relaxed),
        }
    }

    /// Jobs running on this instance.
    pub fn running_here(&self) -> usize {
        self.running.len()
    }

    /// Announces a final job to local waiters (and, via the store, to other
    /// instances' waiters).
    fn job_finished(&self, record: &JobRecord) {
        let _ = self.finished.send(Arc::from(record.job_id.as_str()));
        for r in self.running.iter() {
            if r.value().0 == record.job_id {
                r.value().1.send_replace(true);
            }
        }
    }
}

fn accepted(r: &JobRecord) -> Accepted {
    Accepted {
        job_id: r.job_id.clone(),
        status: r.status,
        created_at: ms_to_rfc3339(r.created_at_ms),
        expires_at: ms_to_rfc3339(r.expires_at_ms),
    }
}

/// A digest of a JSON value that ignores key order (hex SHA-256).
pub fn canonical_hash(value: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    if let Some(v) = map.get(k) {
                        write(v, out);
                    }
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for i in items {
                    write(i, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    write(value, &mut s);
    hex(&Sha256::digest(s.as_bytes()))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hash_ignores_key_order_but_not_values() {
        let a = json!({"text": "x", "operation": "summarize", "options": {"a": 1, "b": 2}});
        let b = json!({"options": {"b": 2, "a": 1}, "operation": "summarize", "text": "x"});
        let c = json!({"options": {"b": 2, "a": 1}, "operation": "summarize", "text": "y"});
        assert_eq!(canonical_hash(&a), canonical_hash(&b));
        assert_ne!(canonical_hash(&a), canonical_hash(&c));
    }

    #[test]
    fn statuses_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(s));
        }
        assert!(JobStatus::Succeeded.is_final());
        assert!(!JobStatus::Running.is_final());
    }
}
