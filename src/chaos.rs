//! Fault injection for game days (`/internal/chaos`).
//!
//! An operator starts an experiment (a provider, optionally one operation, a
//! fault, a probability and a duration); the orchestrator asks [`Chaos::pick`]
//! before every provider call and, when a fault is drawn, [`inject`] plays it
//! at the provider-call boundary, so breakers, retries, budgets, timeouts,
//! fallback, the cache rules and metrics react exactly as to a real fault.
//!
//! Invariants: with no experiment active, [`Chaos::pick`] is one atomic load
//! (no lock, no allocation); every experiment expires by itself at its end;
//! every injected fault is counted per provider and fault.
//!
//! Scope: with `REDIS_URL` set, an experiment applies to every instance
//! (`scope: cluster`). The instance that starts or aborts it writes it to one
//! Redis hash ([`REDIS_EXPERIMENTS`]); every instance reads the hash every
//! [`SYNC_EVERY`] and adopts the experiments it does not know (with the same
//! id and end time) and ends those aborted elsewhere. Without Redis, or when
//! the write fails, the experiment applies to the instance that received it
//! (`scope: instance`, with a warning). Injection counts stay per instance.

use crate::job::{Job, Operation};
use crate::providers::{
    CallOptions, ProviderError, ProviderErrorKind, ProviderKind, ProviderReply, SharedProvider,
};
use crate::redis_link::RedisLink;
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// The Redis hash of shared experiments: id → the experiment's JSON.
pub const REDIS_EXPERIMENTS: &str = "keel:{chaos}:experiments";
/// How often an instance reads the shared experiments.
pub const SYNC_EVERY: Duration = Duration::from_millis(250);

/// Ended experiments kept for `GET /internal/chaos`.
const HISTORY: usize = 50;

/// What an experiment does to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The upstream answers this HTTP status (500, 502, 503 or 429).
    Error {
        /// The status.
        status: u16,
        /// `Retry-After` sent with it, seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_seconds: Option<u64>,
    },
    /// The call is delayed by `ms` (plus up to `jitter_ms`), then made.
    Latency {
        /// Added delay, milliseconds.
        ms: u64,
        /// Up to this much more, drawn uniformly, milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jitter_ms: Option<u64>,
    },
    /// The call never answers: it ends at its attempt timeout.
    Hang {},
    /// The upstream answers a body that is not its wire format.
    Malformed {},
    /// The upstream answers an empty text.
    Empty {},
}

impl Fault {
    /// The metric label: `error`, `latency`, `hang`, `malformed`, `empty`.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Error { .. } => "error",
            Fault::Latency { .. } => "latency",
            Fault::Hang {} => "hang",
            Fault::Malformed {} => "malformed",
            Fault::Empty {} => "empty",
        }
    }

    fn index(&self) -> usize {
        match self {
            Fault::Error { .. } => 0,
            Fault::Latency { .. } => 1,
            Fault::Hang {} => 2,
            Fault::Malformed {} => 3,
            Fault::Empty {} => 4,
        }
    }

    /// All label values, indexed like the counters.
    pub const NAMES: [&'static str; 5] = ["error", "latency", "hang", "malformed", "empty"];
}

/// Why an experiment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChaosError {
    /// `CHAOS_ENABLED` is not true.
    #[error("fault injection is disabled: set CHAOS_ENABLED=true")]
    Disabled,
    /// A field is out of range; names the field.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is allowed.
        message: String,
    },
}

/// What an operator asks for (`POST /internal/chaos`; also its request
/// schema in the operator document).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"provider": "local", "fault": {"error": {"status": 503}},
    "probability": 0.5, "duration_seconds": 300, "note": "game day"})))]
pub struct ExperimentRequest {
    /// `local`, `openai` or `gemini`.
    pub provider: String,
    /// One operation, or every operation when absent.
    #[serde(default)]
    pub operation: Option<String>,
    /// The fault.
    pub fault: Fault,
    /// Share of calls hit, in (0, 1].
    pub probability: f64,
    /// How long the experiment runs, 1–3600 s.
    pub duration_seconds: u64,
    /// Free text for the audit trail.
    #[serde(default)]
    pub note: Option<String>,
}

/// How an experiment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ExperimentStatus)]
pub enum Status {
    /// Faults are being injected.
    Active,
    /// It ran to its end.
    Expired,
    /// An operator stopped it.
    Aborted,
}

/// One experiment, as the API shows it (also its schema in the operator
/// document).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Experiment {
    /// Its id (`chaos_<uuid>`).
    pub id: String,
    /// The provider hit (`local`, `openai` or `gemini`).
    #[schema(value_type = String)]
    pub provider: ProviderKind,
    /// The operation hit; `null` = every operation.
    #[schema(value_type = Option<String>, required = true)]
    pub operation: Option<Operation>,
    /// The fault.
    pub fault: Fault,
    /// Share of calls hit.
    pub probability: f64,
    /// Planned duration, seconds.
    pub duration_seconds: u64,
    /// The operator's note.
    #[schema(required = true)]
    pub note: Option<String>,
    /// The operator's identity (key fingerprint).
    pub created_by: String,
    /// Start, RFC 3339.
    pub starts_at: String,
    /// Planned end, RFC 3339.
    pub ends_at: String,
    /// Active, expired or aborted.
    pub status: Status,
    /// Who aborted it, when aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aborted_by: Option<String>,
    /// `cluster` when shared through Redis with every instance, else
    /// `instance`.
    pub scope: &'static str,
    /// Faults injected so far.
    pub injected: u64,
    #[serde(skip)]
    deadline: Instant,
}

impl Experiment {
    /// Reads an experiment written by another instance (the JSON of its
    /// view); `None` when malformed or already past its end.
    fn from_shared(text: &str) -> Option<Experiment> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let ends_at = chrono::DateTime::parse_from_rfc3339(v["ends_at"].as_str()?).ok()?;
        let left = (ends_at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .ok()?;
        let status = match v["status"].as_str()? {
            "active" => Status::Active,
            "aborted" => Status::Aborted,
            _ => Status::Expired,
        };
        Some(Experiment {
            id: v["id"].as_str()?.to_string(),
            provider: v["provider"].as_str()?.parse().ok()?,
            operation: serde_json::from_value(v["operation"].clone()).ok()?,
            fault: serde_json::from_value(v["fault"].clone()).ok()?,
            probability: v["probability"].as_f64()?,
            duration_seconds: v["duration_seconds"].as_u64()?,
            note: v["note"].as_str().map(str::to_string),
            created_by: v["created_by"].as_str()?.to_string(),
            starts_at: v["starts_at"].as_str()?.to_string(),
            ends_at: v["ends_at"].as_str()?.to_string(),
            status,
            aborted_by: v["aborted_by"].as_str().map(str::to_string),
            scope: "cluster",
            injected: 0,
            deadline: Instant::now() + left,
        })
    }
}

/// A running experiment with its live counter.
#[derive(Debug)]
struct Live {
    experiment: Experiment,
    injected: AtomicU64,
    /// True once written to the shared hash (or adopted from it).
    shared: AtomicBool,
}

impl Live {
    fn view(&self) -> Experiment {
        let mut e = self.experiment.clone();
        e.injected = self.injected.load(Relaxed);
        e.scope = if self.shared.load(Relaxed) {
            "cluster"
        } else {
            "instance"
        };
        e
    }
}

/// The experiments of this instance and the injection counters.
pub struct Chaos {
    enabled: bool,
    /// True while at least one experiment is active: the hot-path check.
    any: AtomicBool,
    active: ArcSwap<Vec<Arc<Live>>>,
    history: Mutex<VecDeque<Experiment>>,
    /// Serialises starts, aborts and expiries (rare, operator-driven).
    writer: Mutex<()>,
    /// Injected faults, `[provider][fault]` (provider: local, openai, gemini).
    counters: [[AtomicU64; 5]; 3],
    /// The shared store, when `REDIS_URL` is set.
    shared: Option<Arc<RedisLink>>,
}

fn provider_index(kind: ProviderKind) -> usize {
    match kind {
        ProviderKind::Local => 0,
        ProviderKind::OpenAi => 1,
        ProviderKind::Gemini => 2,
    }
}

fn now_rfc3339(offset: Duration) -> String {
    let at = chrono::Utc::now()
        + chrono::Duration::from_std(offset).unwrap_or_else(|_| chrono::Duration::zero());
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Chaos {
    /// State for `CHAOS_ENABLED = enabled`, instance scope.
    pub fn new(enabled: bool) -> Arc<Chaos> {
        Chaos::with_shared(enabled, None)
    }

    /// Like [`Chaos::new`], sharing experiments through `shared` (cluster
    /// scope). Call [`Chaos::spawn_sync`] to follow the other instances.
    pub fn with_shared(enabled: bool, shared: Option<Arc<RedisLink>>) -> Arc<Chaos> {
        Arc::new(Chaos {
            enabled,
            any: AtomicBool::new(false),
            active: ArcSwap::from_pointee(Vec::new()),
            history: Mutex::new(VecDeque::new()),
            writer: Mutex::new(()),
            counters: Default::default(),
            shared,
        })
    }

    /// Reads the shared experiments every [`SYNC_EVERY`] until `self` is
    /// dropped (nothing to do without Redis or with chaos disabled).
    pub fn spawn_sync(self: &Arc<Self>) {
        if self.shared.is_none() || !self.enabled {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SYNC_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(chaos) = weak.upgrade() else { return };
                if let Err(e) = chaos.sync().await {
                    tracing::debug!(target: "keel::chaos", error = %e, "reading shared chaos experiments failed");
                }
            }
        });
    }

    /// One read of the shared hash: adopts active experiments this instance
    /// does not know, ends those aborted elsewhere, drops ended entries.
    pub async fn sync(self: &Arc<Self>) -> Result<(), crate::redis_link::RedisError> {
        let Some(redis) = &self.shared else {
            return Ok(());
        };
        let entries: Vec<(String, String)> = redis
            .query(redis::cmd("HGETALL").arg(REDIS_EXPERIMENTS))
            .await?;
        let mut stale = Vec::new();
        for (id, text) in entries {
            let Some(e) = Experiment::from_shared(&text) else {
                stale.push(id);
                continue;
            };
            let here = self.active.load().iter().any(|l| l.experiment.id == e.id);
            match e.status {
                Status::Active if !here && !self.ended_here(&e.id) => {
                    tracing::warn!(target: "keel::chaos", id = %e.id, provider = %e.provider,
                        fault = e.fault.name(), created_by = %e.created_by,
                        "chaos experiment adopted from the cluster");
                    self.run(e, true);
                }
                Status::Aborted if here => {
                    let by = e.aborted_by.clone().unwrap_or_default();
                    if let Some(ended) = self.end(&e.id, Status::Aborted, Some(&by)) {
                        tracing::warn!(target: "keel::chaos", id = %ended.id, aborted_by = %by,
                            injected = ended.injected, "chaos experiment aborted by another instance");
                    }
                }
                _ => {}
            }
        }
        if !stale.is_empty() {
            redis
                .query::<()>(redis::cmd("HDEL").arg(REDIS_EXPERIMENTS).arg(stale))
                .await?;
        }
        Ok(())
    }

    /// True when the experiment `id` ran here and ended.
    fn ended_here(&self, id: &str) -> bool {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        history.iter().any(|e| e.id == id)
    }

    /// Writes `e` (its current view) to the shared hash.
    async fn publish(&self, e: &Experiment) -> Result<(), crate::redis_link::RedisError> {
        let Some(redis) = &self.shared else {
            return Ok(());
        };
        let text = serde_json::to_string(e).unwrap_or_default();
        redis
            .query::<()>(
                redis::cmd("HSET")
                    .arg(REDIS_EXPERIMENTS)
                    .arg(&e.id)
                    .arg(text),
            )
            .await
    }

    /// `CHAOS_ENABLED`.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// True when experiments are shared through Redis (cluster scope).
    pub fn shared(&self) -> bool {
        self.shared.is_some()
    }

    /// True while an experiment is active (`chaos_active` in `/v1/health`).
    pub fn is_active(&self) -> bool {
        self.any.load(Relaxed)
    }

    /// The fault to inject into this call, if any. One atomic load when no
    /// experiment is active.
    #[inline]
    pub fn pick(&self, provider: ProviderKind, operation: Operation) -> Option<Fault> {
        if !self.any.load(Relaxed) {
            return None;
        }
        self.pick_slow(provider, operation)
    }

    fn pick_slow(&self, provider: ProviderKind, operation: Operation) -> Option<Fault> {
        let active = self.active.load();
        let now = Instant::now();
        for live in active.iter() {
            let e = &live.experiment;
            if e.provider != provider
                || e.operation.is_some_and(|op| op != operation)
                || now >= e.deadline
            {
                continue;
            }
            if e.probability >= 1.0 || fastrand::f64() < e.probability {
                live.injected.fetch_add(1, Relaxed);
                self.counters[provider_index(provider)][e.fault.index()].fetch_add(1, Relaxed);
                return Some(e.fault);
            }
        }
        None
    }

    /// Injected faults as `(provider, fault, count)`, every pair.
    pub fn injected(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::with_capacity(15);
        for (p, kind) in [
            ProviderKind::Local,
            ProviderKind::OpenAi,
            ProviderKind::Gemini,
        ]
        .into_iter()
        .enumerate()
        {
            for (f, name) in Fault::NAMES.into_iter().enumerate() {
                out.push((kind.as_str(), name, self.counters[p][f].load(Relaxed)));
            }
        }
        out
    }

    /// Checks `request` and starts it; it expires by itself. With Redis it
    /// is written to the shared hash first (`scope: cluster`); when that
    /// write fails it runs on this instance only (`scope: instance`).
    pub async fn start(
        self: &Arc<Self>,
        request: ExperimentRequest,
        created_by: &str,
        configured: &[ProviderKind],
    ) -> Result<Experiment, ChaosError> {
        if !self.enabled {
            return Err(ChaosError::Disabled);
        }
        let invalid = |field, message: &str| ChaosError::Invalid {
            field,
            message: message.to_string(),
        };
        let provider: ProviderKind = request
            .provider
            .parse()
            .map_err(|e: crate::providers::UnknownProvider| invalid("provider", &e.to_string()))?;
        if !configured.contains(&provider) {
            return Err(invalid(
                "provider",
                "this provider is not in the chain (AI_PROVIDER, AI_FALLBACK_PROVIDERS)",
            ));
        }
        let operation = match &request.operation {
            None => None,
            Some(op) => Some(op.parse::<Operation>().map_err(|_| {
                invalid(
                    "operation",
                    "allowed: summarize, sentiment, key_points, questions, qa",
                )
            })?),
        };
        if !(request.probability > 0.0 && request.probability <= 1.0) {
            return Err(invalid("probability", "must be in (0, 1]"));
        }
        if !(1..=3600).contains(&request.duration_seconds) {
            return Err(invalid("duration_seconds", "must be 1 to 3600"));
        }
        match request.fault {
            Fault::Error { status, .. } if ![500, 502, 503, 429].contains(&status) => {
                return Err(invalid("fault.error.status", "allowed: 500, 502, 503, 429"));
            }
            Fault::Error {
                retry_after_seconds: Some(s),
                ..
            } if s > 3600 => {
                return Err(invalid(
                    "fault.error.retry_after_seconds",
                    "must be 0 to 3600",
                ));
            }
            Fault::Latency { ms, jitter_ms }
                if ms > 600_000 || jitter_ms.unwrap_or(0) > 600_000 =>
            {
                return Err(invalid(
                    "fault.latency",
                    "ms and jitter_ms must be 0 to 600000",
                ));
            }
            _ => {}
        }
        if request
            .note
            .as_ref()
            .is_some_and(|n| n.chars().count() > 500)
        {
            return Err(invalid("note", "at most 500 characters"));
        }
        let duration = Duration::from_secs(request.duration_seconds);
        let experiment = Experiment {
            id: format!("chaos_{}", uuid::Uuid::new_v4().simple()),
            provider,
            operation,
            fault: request.fault,
            probability: request.probability,
            duration_seconds: request.duration_seconds,
            note: request.note,
            created_by: created_by.to_string(),
            starts_at: now_rfc3339(Duration::ZERO),
            ends_at: now_rfc3339(duration),
            status: Status::Active,
            aborted_by: None,
            scope: "instance",
            injected: 0,
            deadline: Instant::now() + duration,
        };
        let mut shared = false;
        if self.shared.is_some() {
            let mut view = experiment.clone();
            view.scope = "cluster";
            match self.publish(&view).await {
                Ok(()) => shared = true,
                Err(e) => tracing::warn!(target: "keel::chaos", id = %experiment.id, error = %e,
                    "chaos experiment not shared (Redis unavailable): it applies to this instance only"),
            }
        }
        let started = self.run(experiment, shared);
        tracing::warn!(
            target: "keel::chaos",
            id = %started.id,
            provider = %provider,
            fault = started.fault.name(),
            probability = started.probability,
            duration_seconds = started.duration_seconds,
            scope = started.scope,
            created_by,
            "chaos experiment started"
        );
        Ok(started)
    }

    /// Makes `experiment` active here and schedules its expiry; returns its
    /// view.
    fn run(self: &Arc<Self>, experiment: Experiment, shared: bool) -> Experiment {
        let live = Arc::new(Live {
            experiment,
            injected: AtomicU64::new(0),
            shared: AtomicBool::new(shared),
        });
        {
            let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let mut next: Vec<Arc<Live>> = self.active.load().iter().cloned().collect();
            next.push(live.clone());
            self.active.store(Arc::new(next));
            self.any.store(true, Relaxed);
        }
        let experiment = live.view();
        let weak: Weak<Chaos> = Arc::downgrade(self);
        let id = experiment.id.clone();
        let deadline = experiment.deadline;
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            if let Some(chaos) = weak.upgrade()
                && let Some(e) = chaos.end(&id, Status::Expired, None)
            {
                tracing::info!(target: "keel::chaos", id = %e.id, created_by = %e.created_by,
                    injected = e.injected, "chaos experiment expired");
            }
        });
        experiment
    }

    /// Ends one active experiment; `None` when no active one has this id.
    fn end(&self, id: &str, status: Status, by: Option<&str>) -> Option<Experiment> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.active.load_full();
        let found = current.iter().find(|l| l.experiment.id == id)?.clone();
        let next: Vec<Arc<Live>> = current
            .iter()
            .filter(|l| l.experiment.id != id)
            .cloned()
            .collect();
        self.any.store(!next.is_empty(), Relaxed);
        self.active.store(Arc::new(next));
        let mut e = found.view();
        e.status = status;
        e.aborted_by = by.map(str::to_string);
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == HISTORY {
            history.pop_back();
        }
        history.push_front(e.clone());
        Some(e)
    }

    /// Aborts one experiment (`DELETE /internal/chaos/{id}`); a shared one
    /// is marked aborted in Redis, so every instance ends it.
    pub async fn abort(&self, id: &str, by: &str) -> Result<Option<Experiment>, ChaosError> {
        if !self.enabled {
            return Err(ChaosError::Disabled);
        }
        let e = self.end(id, Status::Aborted, Some(by));
        if let Some(e) = &e {
            tracing::warn!(target: "keel::chaos", id = %e.id, aborted_by = by,
                injected = e.injected, "chaos experiment aborted");
            if e.scope == "cluster"
                && let Err(err) = self.publish(e).await
            {
                tracing::warn!(target: "keel::chaos", id = %e.id, error = %err,
                    "chaos abort not shared (Redis unavailable): other instances run the experiment until it expires");
            }
        }
        Ok(e)
    }

    /// Aborts every active experiment (`DELETE /internal/chaos`).
    pub async fn abort_all(&self, by: &str) -> Result<Vec<Experiment>, ChaosError> {
        let ids: Vec<String> = self
            .active
            .load()
            .iter()
            .map(|l| l.experiment.id.clone())
            .collect();
        let mut out = Vec::new();
        for id in ids {
            if let Some(e) = self.abort(&id, by).await? {
                out.push(e);
            }
        }
        if !self.enabled {
            return Err(ChaosError::Disabled);
        }
        Ok(out)
    }

    /// Active experiments, oldest first.
    pub fn active(&self) -> Vec<Experiment> {
        self.active.load().iter().map(|l| l.view()).collect()
    }

    /// Ended experiments, newest first.
    pub fn recent(&self) -> Vec<Experiment> {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        history.iter().cloned().collect()
    }
}

/// Plays `fault` in place of (or before) the call of `provider`.
pub async fn inject(
    fault: Fault,
    provider: &SharedProvider,
    job: &Job,
    opts: CallOptions,
) -> Result<ProviderReply, ProviderError> {
    let kind = provider.kind();
    let fail = |k| Err(ProviderError::new(kind, k));
    match fault {
        Fault::Error {
            status,
            retry_after_seconds,
        } => Err(ProviderError {
            provider: kind,
            kind: if status == 429 {
                ProviderErrorKind::RateLimited
            } else {
                ProviderErrorKind::Status { status }
            },
            retry_after: retry_after_seconds.map(Duration::from_secs),
        }),
        Fault::Latency { ms, jitter_ms } => {
            let extra = jitter_ms.map_or(0, |j| fastrand::u64(0..=j));
            let delay = Duration::from_millis(ms.saturating_add(extra));
            if delay >= opts.timeout {
                tokio::time::sleep(opts.timeout).await;
                return fail(ProviderErrorKind::Timeout(opts.timeout));
            }
            tokio::time::sleep(delay).await;
            provider
                .run(
                    job,
                    CallOptions {
                        timeout: opts.timeout - delay,
                    },
                )
                .await
        }
        Fault::Hang {} => {
            tokio::time::sleep(opts.timeout).await;
            fail(ProviderErrorKind::Timeout(opts.timeout))
        }
        Fault::Malformed {} => fail(ProviderErrorKind::Malformed(
            "chaos experiment: injected malformed response".into(),
        )),
        Fault::Empty {} => fail(ProviderErrorKind::InvalidOutput(
            "empty answer (chaos experiment)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(duration_seconds: u64) -> ExperimentRequest {
        ExperimentRequest {
            provider: "openai".into(),
            operation: None,
            fault: Fault::Error {
                status: 503,
                retry_after_seconds: None,
            },
            probability: 1.0,
            duration_seconds,
            note: None,
        }
    }

    #[test]
    fn fault_wire_format() {
        let f: Fault = serde_json::from_str(r#"{"error": {"status": 500}}"#).unwrap();
        assert_eq!(
            f,
            Fault::Error {
                status: 500,
                retry_after_seconds: None
            }
        );
        let f: Fault = serde_json::from_str(r#"{"hang": {}}"#).unwrap();
        assert_eq!(f, Fault::Hang {});
        assert!(serde_json::from_str::<Fault>(r#"{"boom": {}}"#).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn experiments_expire_by_themselves() {
        let chaos = Chaos::new(true);
        assert_eq!(chaos.pick(ProviderKind::OpenAi, Operation::Summarize), None);
        let e = chaos
            .start(request(5), "key:abc", &[ProviderKind::OpenAi])
            .await
            .unwrap();
        assert!(chaos.is_active());
        assert!(
            chaos
                .pick(ProviderKind::OpenAi, Operation::Summarize)
                .is_some()
        );
        assert_eq!(chaos.pick(ProviderKind::Local, Operation::Summarize), None);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(!chaos.is_active());
        assert_eq!(chaos.pick(ProviderKind::OpenAi, Operation::Summarize), None);
        let recent = chaos.recent();
        assert_eq!(recent[0].id, e.id);
        assert_eq!(recent[0].status, Status::Expired);
        assert_eq!(recent[0].injected, 1);
        let counted: u64 = chaos
            .injected()
            .iter()
            .filter(|(p, f, _)| *p == "openai" && *f == "error")
            .map(|t| t.2)
            .sum();
        assert_eq!(counted, 1);
    }

    #[tokio::test]
    async fn with_redis_unreachable_an_experiment_runs_here_only() {
        // Nothing listens on port 1: the shared write fails fast.
        let link = RedisLink::new(
            "redis://127.0.0.1:1",
            crate::redis_link::RedisLinkOptions::default(),
        )
        .unwrap();
        let chaos = Chaos::with_shared(true, Some(Arc::new(link)));
        assert!(chaos.shared());
        let e = chaos
            .start(request(60), "k", &[ProviderKind::OpenAi])
            .await
            .unwrap();
        assert_eq!(e.scope, "instance", "not shared, so not claimed as cluster");
        assert!(chaos.is_active(), "it still runs on this instance");
        assert!(chaos.sync().await.is_err(), "the sync reports the failure");
        assert!(chaos.is_active(), "a failed sync ends nothing");
    }

    #[tokio::test]
    async fn disabled_and_invalid_are_refused() {
        let off = Chaos::new(false);
        assert_eq!(
            off.start(request(5), "k", &[ProviderKind::OpenAi])
                .await
                .unwrap_err(),
            ChaosError::Disabled
        );
        let on = Chaos::new(true);
        assert!(matches!(
            on.start(request(0), "k", &[ProviderKind::OpenAi]).await,
            Err(ChaosError::Invalid {
                field: "duration_seconds",
                ..
            })
        ));
        assert!(matches!(
            on.start(request(5), "k", &[ProviderKind::Local]).await,
            Err(ChaosError::Invalid {
                field: "provider",
                ..
            })
        ));
        let e = on
            .start(request(60), "k", &[ProviderKind::OpenAi])
            .await
            .unwrap();
        let aborted = on.abort(&e.id, "k2").await.unwrap().unwrap();
        assert_eq!(aborted.status, Status::Aborted);
        assert!(!on.is_active());
    }
}
