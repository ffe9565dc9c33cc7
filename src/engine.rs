//! The [`Engine`]: the handle the HTTP layer (or an embedding program) holds.
//!
//! It starts the supervised actor tree, owns the shared views actors publish
//! (provider table, metrics registry, recent batches) and runs jobs. A job runs
//! entirely in the caller's task: it reads the provider table, calls the
//! provider and records metrics with atomics — no mailbox on the way.

use crate::actors::breaker_registry::BreakerRegistryMsg;
use crate::actors::cache::{CacheMsg, Invalidation};
use crate::actors::metrics::{MetricsMsg, MetricsSnapshot};
use crate::actors::provider::{ProviderInfo, ProviderMsg};
use crate::actors::provider_supervisor::ProviderSupervisorArgs;
use crate::actors::supervisor::{EngineActors, EngineMsg, EngineSupervisor, EngineSupervisorArgs};
use crate::actors::{CALL_TIMEOUT, RestartPolicy};
use crate::batch::BatchStore;
use crate::cache::{
    Cache, CacheKey, CachedAnswer, InvalidPattern, InvalidationReport, SingleFlight, should_store,
};
use crate::config::Settings;
use crate::job::Job;
use crate::metrics::Metrics;
use crate::outcome::{JobError, JobResult};
use crate::providers::ProviderTable;
use crate::providers::{ProviderKind, SharedProvider, build_provider};
use crate::rate_limit::RateLimiter;
use crate::redis_link::RedisLink;
use crate::resilience::Resilience;
use crate::resilience::breaker::{BreakerCommand, BreakerSnapshot};
use crate::resilience::config::ResilienceConfig;
use crate::resilience::orchestrator::JobRun;
use ractor::{Actor, ActorRef, ActorStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// How much longer than its own deadline a caller waits on a shared flight:
/// enough for a leader's pipeline to return its own deadline answer first.
const FOLLOWER_MARGIN: std::time::Duration = std::time::Duration::from_millis(100);

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A provider client could not be built.
    #[error("cannot build provider: {0}")]
    Provider(#[from] crate::providers::ProviderError),
    /// `REDIS_URL` could not be turned into a client.
    #[error("cannot use REDIS_URL: {0}")]
    Redis(#[from] crate::redis_link::RedisError),
    /// The actor tree failed to start.
    #[error("cannot start the actor tree: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    /// The cluster sync could not be set up.
    #[error("cannot share breakers: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// A cheap-to-clone handle on a running engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Arc<Settings>,
    providers: Arc<ProviderTable>,
    metrics: Arc<Metrics>,
    resilience: Arc<Resilience>,
    rate_limiter: Arc<RateLimiter>,
    cache: Arc<Cache>,
    flights: SingleFlight<CacheKey, Result<JobResult, JobError>>,
    actors: Arc<EngineActors>,
    supervisor: ActorRef<EngineMsg>,
    /// What the supervisor watcher saw: running, stopped on request, or
    /// dead (gave up). See [`Engine::failure`].
    life: tokio::sync::watch::Receiver<Life>,
    /// Set by [`Engine::shutdown`] before it stops the supervisor, so its
    /// end is not taken for a failure.
    stop_requested: Arc<AtomicBool>,
    batches: BatchStore,
    started_at: Instant,
    draining: AtomicBool,
    last_change: arc_swap::ArcSwapOption<ConfigChange>,
    /// Turns true when the shutdown grace period is over: requests still
    /// running are answered 503 at once.
    cut: tokio::sync::watch::Sender<bool>,
    /// Async jobs (`/v1/jobs`).
    jobs: Arc<crate::jobs::Jobs>,
    /// Fault-injection experiments (`/internal/chaos`).
    chaos: Arc<crate::chaos::Chaos>,
    /// Breaker sharing with the other instances (with Redis, unless
    /// `BREAKER_SHARING=off`).
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// A handle that does not keep the engine alive (what the engine owns and
/// that calls back into it — the jobs runner, the cluster sync — holds this).
#[derive(Clone)]
pub struct WeakEngine(std::sync::Weak<Inner>);

impl WeakEngine {
    /// The engine, unless it has been dropped.
    pub fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

/// Switches published by other instances go the way a local one does.
impl crate::cluster::ApplySwitch for WeakEngine {
    fn apply_switch(
        &self,
        config: ResilienceConfig,
        who: String,
    ) -> futures::future::BoxFuture<'_, bool> {
        Box::pin(async move {
            match self.upgrade() {
                Some(engine) => engine.reconfigure_by(config, &who).await,
                None => false,
            }
        })
    }
}

/// The actor tree's life as the supervisor watcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Life {
    /// The root supervisor runs.
    Running,
    /// It stopped because [`Engine::shutdown`] asked it to.
    Stopped,
    /// It stopped on its own (a child exhausted its restarts): the engine is
    /// dead, liveness fails and `keel serve` exits non-zero. The text says why.
    Failed(String),
}

/// A runtime configuration switch, for the audit trail.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ConfigChange {
    /// Who switched (the operator key's fingerprint).
    pub by: String,
    /// When (RFC 3339).
    #[schema(format = DateTime)]
    pub at: String,
    /// The preset switched to.
    pub preset: String,
    /// The custom configuration applied with it.
    #[schema(required = true)]
    pub custom_config: Option<serde_json::Value>,
}

impl Engine {
    /// Builds the providers and starts the actor tree.
    pub async fn start(settings: Settings) -> Result<Engine, EngineError> {
        Engine::start_with(settings, Vec::new()).await
    }

    /// Like [`Engine::start`], but providers in `overrides` replace the
    /// configured provider of the same kind (tests plug in-process fakes here).
    pub async fn start_with(
        settings: Settings,
        overrides: Vec<SharedProvider>,
    ) -> Result<Engine, EngineError> {
        let settings = Arc::new(settings);
        let mut initial = Vec::with_capacity(settings.providers.len());
        for p in &settings.providers {
            match overrides.iter().find(|o| o.kind() == p.kind) {
                Some(o) => initial.push(o.clone()),
                None => initial.push(build_provider(p)?),
            }
        }
        let providers = Arc::new(ProviderTable::new(initial));
        let metrics = Arc::new(Metrics::default());
        let resilience = Arc::new(Resilience::new(
            settings.resilience.clone(),
            settings.providers.iter().map(|p| p.kind),
            settings.provider_max_concurrency,
            settings.bulkhead_max_wait,
        ));
        let cluster = crate::cluster::Cluster::start(&settings, resilience.clone())?;
        let rate_limiter = Arc::new(RateLimiter::new(
            settings.rate_limit.clone(),
            redis_link(&settings)?,
        ));
        let cache = Arc::new(Cache::new(settings.cache.clone(), redis_link(&settings)?));
        let jobs = crate::jobs::Jobs::new(
            settings.jobs.clone(),
            settings.redis_url.as_deref(),
            settings.redis,
        )?;
        let actors = Arc::new(EngineActors::default());
        // Overridden providers are not rebuilt by their actors from settings.
        let supervised: Vec<_> = settings
            .providers
            .iter()
            .filter(|p| !overrides.iter().any(|o| o.kind() == p.kind))
            .cloned()
            .collect();
        let args = EngineSupervisorArgs {
            providers: ProviderSupervisorArgs {
                providers: supervised,
                table: providers.clone(),
                metrics: metrics.clone(),
                policy: RestartPolicy::default(),
            },
            metrics: metrics.clone(),
            resilience: resilience.clone(),
            rate_limiter: rate_limiter.clone(),
            cache: cache.clone(),
            jobs: jobs.clone(),
            cluster: cluster.clone(),
            actors: actors.clone(),
            policy: RestartPolicy::default(),
        };
        let (supervisor, task) = Actor::spawn(None, EngineSupervisor, args).await?;
        let stop_requested = Arc::new(AtomicBool::new(false));
        let life = watch_supervisor(task, stop_requested.clone(), actors.clone());
        let chaos = crate::chaos::Chaos::with_shared(
            settings.chaos_enabled,
            if settings.chaos_enabled {
                redis_link(&settings)?
            } else {
                None
            },
        );
        chaos.spawn_sync();
        if settings.chaos_enabled
            && (settings.environment == crate::env::Environment::Production
                || settings.resilience.preset == "production")
        {
            tracing::warn!(
                "CHAOS_ENABLED=true in production: operators can inject provider faults through /internal/chaos"
            );
        }
        let engine = Engine {
            inner: Arc::new(Inner {
                batches: BatchStore::new(settings.batch_status_retention),
                settings,
                providers,
                metrics,
                resilience,
                rate_limiter,
                cache,
                flights: SingleFlight::new(),
                actors,
                supervisor,
                life,
                stop_requested,
                started_at: Instant::now(),
                draining: AtomicBool::new(false),
                last_change: arc_swap::ArcSwapOption::empty(),
                cut: tokio::sync::watch::Sender::new(false),
                jobs,
                chaos,
                cluster,
            }),
        };
        if let Some(cluster) = &engine.inner.cluster {
            cluster.attach(Box::new(engine.downgrade()));
        }
        Ok(engine)
    }

    /// A handle on this engine that does not keep it alive.
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }

    /// The cluster sync, when breakers are shared through Redis.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.inner.cluster.as_ref()
    }

    /// The async jobs subsystem.
    pub fn jobs(&self) -> &Arc<crate::jobs::Jobs> {
        &self.inner.jobs
    }

    /// Runs one validated job: from the cache when an identical job was
    /// answered recently, else through the resilience pipeline — with
    /// concurrent identical jobs sharing one pipeline run (single-flight).
    /// `client_deadline` (the `Request-Timeout` header) can only shorten the
    /// operation's deadline. Degraded answers are never cached.
    pub async fn run_job(
        &self,
        job: &Job,
        client_deadline: Option<std::time::Duration>,
    ) -> Result<JobResult, JobError> {
        if !crate::telemetry::enabled() {
            return self.run_job_untraced(job, client_deadline).await;
        }
        let span = crate::telemetry::job_span(job.operation.as_str());
        let result = self
            .run_job_untraced(job, client_deadline)
            .instrument(span.clone())
            .await;
        let cache = match &result {
            _ if !self.inner.cache.config().enabled => "disabled",
            Ok(r) if r.cache_hit => "hit",
            _ => "miss",
        };
        crate::outcome::finish_job_span(&span, cache, &result);
        result
    }

    /// [`Engine::run_job`] without its OpenTelemetry span.
    async fn run_job_untraced(
        &self,
        job: &Job,
        client_deadline: Option<std::time::Duration>,
    ) -> Result<JobResult, JobError> {
        let cache = &self.inner.cache;
        if !cache.config().enabled {
            return self.run_pipeline(job, client_deadline).await;
        }
        let started = std::time::Instant::now();
        let Some(primary) = self.inner.providers.chain().into_iter().next() else {
            return self.run_pipeline(job, client_deadline).await;
        };
        let key = CacheKey::new(
            job,
            primary.provider.kind().as_str(),
            primary.provider.model(),
        );
        if let Some(hit) = cache.get(&key).await {
            let stats = self.inner.metrics.operation(job.operation);
            stats.requests.fetch_add(1, Ordering::Relaxed);
            stats.succeeded.fetch_add(1, Ordering::Relaxed);
            stats.latency.record(started.elapsed());
            return Ok(JobResult::from_cache(hit, primary.provider.kind()));
        }
        let flight = self.inner.flights.run(key.clone(), || async {
            let result = self.run_pipeline(job, client_deadline).await;
            if let Ok(r) = &result
                && should_store(r.degraded)
            {
                let answer = CachedAnswer {
                    output: r.output.clone(),
                    provider: r.provider.as_str().to_string(),
                    model: r.model.clone(),
                    stored_at_unix_ms: crate::time::unix_ms(),
                };
                cache.put(&key, job.operation, answer).await;
            }
            result
        });
        // A follower waits on someone else's pipeline, which runs to *that*
        // caller's deadline: bound the wait by this caller's own
        // `Request-Timeout`, so a 1 s client never waits out a 300 s leader.
        // A leader's own pipeline ends by the same deadline with its own
        // answer; the small margin lets that answer win the race.
        match client_deadline {
            None => flight.await,
            Some(limit) => match tokio::time::timeout(limit + FOLLOWER_MARGIN, flight).await {
                Ok(result) => result,
                Err(_) => Err(JobError {
                    attempts: 0,
                    last: None,
                    reasons: vec![format!(
                        "the request deadline ({} ms) passed while an identical request was in progress",
                        limit.as_millis()
                    )],
                    retry_after: None,
                    deadline_exceeded: true,
                }),
            },
        }
    }

    /// Runs one job through the resilience pipeline, bypassing the cache.
    pub async fn run_pipeline(
        &self,
        job: &Job,
        client_deadline: Option<std::time::Duration>,
    ) -> Result<JobResult, JobError> {
        JobRun {
            provider_settings: &self.inner.settings.providers,
            providers: &self.inner.providers,
            resilience: &self.inner.resilience,
            metrics: &self.inner.metrics,
            chaos: &self.inner.chaos,
        }
        .run(job, client_deadline)
        .await
    }

    /// Invalidates cache entries through the cache actor; `None` when the
    /// actor did not answer.
    pub async fn invalidate_cache(
        &self,
        what: Invalidation,
        who: &str,
    ) -> Option<Result<InvalidationReport, InvalidPattern>> {
        let actor = self.inner.actors.cache.load_full()?;
        let who = who.to_string();
        // SCAN over a large Redis keyspace can take a while: allow more than
        // the usual admin timeout.
        reply(
            actor
                .call(
                    |r| CacheMsg::Invalidate(what, who, r),
                    Some(std::time::Duration::from_secs(30)),
                )
                .await,
        )
    }

    /// The two-tier response cache.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.inner.cache
    }

    /// The rate limiter (checked by the HTTP layer).
    pub fn rate_limiter(&self) -> &Arc<RateLimiter> {
        &self.inner.rate_limiter
    }

    /// Breakers, budgets, bulkheads and the configuration in force.
    /// Fault-injection experiments.
    pub fn chaos(&self) -> &Arc<crate::chaos::Chaos> {
        &self.inner.chaos
    }

    /// The shared resilience state.
    pub fn resilience(&self) -> &Arc<Resilience> {
        &self.inner.resilience
    }

    /// Applies an operator command to a breaker through the registry actor;
    /// `None` when the breaker does not exist or the actor did not answer.
    pub async fn breaker_command(
        &self,
        name: &str,
        command: BreakerCommand,
        who: &str,
        cluster: bool,
    ) -> Option<BreakerSnapshot> {
        let actor = self.inner.actors.breakers.load_full()?;
        let (name, who) = (name.to_string(), who.to_string());
        reply(
            actor
                .call(
                    |reply| BreakerRegistryMsg::Command {
                        name,
                        command,
                        who,
                        cluster,
                        reply,
                    },
                    Some(CALL_TIMEOUT),
                )
                .await,
        )
        .flatten()
    }

    /// Zeroes the traffic counters via the metrics aggregator; false when it
    /// did not answer.
    pub async fn reset_metrics(&self) -> bool {
        let Some(actor) = self.inner.actors.metrics.load_full() else {
            return false;
        };
        reply(actor.call(MetricsMsg::Reset, Some(CALL_TIMEOUT)).await).is_some()
    }

    /// The last runtime configuration switch, if any.
    pub fn last_config_change(&self) -> Option<ConfigChange> {
        self.inner.last_change.load_full().map(|c| (*c).clone())
    }

    /// Switches the resilience configuration at runtime (new calls use it at
    /// once) and records who did it; false when the registry actor did not
    /// answer.
    pub async fn reconfigure_by(&self, config: ResilienceConfig, who: &str) -> bool {
        let change = ConfigChange {
            by: who.to_string(),
            at: crate::time::now_rfc3339(),
            preset: config.preset.clone(),
            custom_config: config.custom.as_ref().map(|c| c.to_value()),
        };
        let applied = self.reconfigure(config).await;
        if applied {
            tracing::info!(by = %change.by, preset = %change.preset, custom = ?change.custom_config, "resilience configuration switched");
            self.inner.last_change.store(Some(Arc::new(change)));
        }
        applied
    }

    /// Switches the resilience configuration at runtime (new calls use it at
    /// once); false when the registry actor did not answer.
    pub async fn reconfigure(&self, config: ResilienceConfig) -> bool {
        let Some(actor) = self.inner.actors.breakers.load_full() else {
            return false;
        };
        let config = Box::new(config);
        reply(
            actor
                .call(
                    |reply| BreakerRegistryMsg::Reconfigure(config, reply),
                    Some(CALL_TIMEOUT),
                )
                .await,
        )
        .is_some()
    }

    /// The validated configuration the engine runs with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The shared metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The provider handle table.
    pub fn providers(&self) -> &Arc<ProviderTable> {
        &self.inner.providers
    }

    /// Recent batches.
    pub fn batches(&self) -> &BatchStore {
        &self.inner.batches
    }

    /// Time since start.
    pub fn uptime(&self) -> std::time::Duration {
        self.inner.started_at.elapsed()
    }

    /// True while the root supervisor and its direct children are running.
    pub fn actors_alive(&self) -> bool {
        let running = |s: Option<ActorStatus>| s == Some(ActorStatus::Running);
        running(Some(self.inner.supervisor.get_status()))
            && self.inner.actors.statuses().into_iter().all(running)
    }

    /// Why the engine is dead, if it is: the root supervisor stopped without
    /// being asked to (a child exhausted its restarts). Liveness reports 503
    /// and `keel serve` exits non-zero from then on.
    pub fn failure(&self) -> Option<String> {
        match &*self.inner.life.borrow() {
            Life::Failed(why) => Some(why.clone()),
            Life::Running | Life::Stopped => None,
        }
    }

    /// Resolves with the reason when the engine dies (see
    /// [`Engine::failure`]); pending for ever after a requested shutdown.
    pub async fn failed(&self) -> String {
        let mut life = self.inner.life.clone();
        match life
            .wait_for(|l| matches!(l, Life::Failed(_)))
            .await
            .map(|l| l.clone())
        {
            Ok(Life::Failed(why)) => why,
            // The watcher is gone without a failure: the engine was shut down.
            _ => std::future::pending().await,
        }
    }

    /// True while the root supervisor runs.
    pub fn supervisor_running(&self) -> bool {
        self.inner.supervisor.get_status() == ActorStatus::Running
    }

    /// Each direct child of the supervisor by name, with its status.
    pub fn actor_statuses(&self) -> Vec<(&'static str, Option<ActorStatus>)> {
        self.inner.actors.named_statuses()
    }

    /// True once shutdown has begun; readiness then reports 503.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// Asks the metrics aggregator for a snapshot (admin path; bounded wait).
    pub async fn metrics_snapshot(&self) -> Option<MetricsSnapshot> {
        let actor = self.inner.actors.metrics.load_full()?;
        reply(actor.call(MetricsMsg::Snapshot, Some(CALL_TIMEOUT)).await)
    }

    /// The metrics time series of the last `window` from the aggregator
    /// (admin path; bounded wait); `None` when it did not answer.
    pub async fn metrics_history(
        &self,
        window: std::time::Duration,
    ) -> Option<crate::actors::metrics_history::HistoryView> {
        let actor = self.inner.actors.metrics.load_full()?;
        reply(
            actor
                .call(|r| MetricsMsg::History(window, r), Some(CALL_TIMEOUT))
                .await,
        )
    }

    /// The current metrics aggregator, if running (operators and tests use it
    /// to exercise supervision).
    pub fn metrics_actor(&self) -> Option<ActorRef<MetricsMsg>> {
        self.inner.actors.metrics.load_full().map(|a| (*a).clone())
    }

    /// The cluster sync actor, when breakers are shared (tests kill it).
    pub fn cluster_sync_actor(
        &self,
    ) -> Option<ActorRef<crate::actors::cluster_sync::ClusterSyncMsg>> {
        self.inner.actors.cluster.load_full().map(|a| (*a).clone())
    }

    /// Describes a provider via its actor (admin path; bounded wait).
    pub async fn describe_provider(&self, kind: ProviderKind) -> Option<ProviderInfo> {
        // The slot holds the untyped cell; it is always a provider actor's.
        let actor: ActorRef<ProviderMsg> = self.inner.providers.get(kind)?.actor.clone()?.into();
        reply(actor.call(ProviderMsg::Describe, Some(CALL_TIMEOUT)).await)
    }

    /// A receiver that turns true when in-flight requests must be cut.
    pub fn cut_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.cut.subscribe()
    }

    /// Ends every request still running (they answer 503): the shutdown
    /// grace period is over.
    pub fn cut_in_flight(&self) {
        self.inner.cut.send_replace(true);
    }

    /// Marks the engine as draining: readiness reports 503 from now on.
    pub fn begin_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    /// Marks the engine as draining, then stops the actor tree and waits for it.
    pub async fn shutdown(&self) {
        self.begin_draining();
        self.inner
            .jobs
            .drain(self.inner.settings.shutdown_grace)
            .await;
        self.inner.stop_requested.store(true, Ordering::Release);
        self.inner.supervisor.stop(Some("shutdown".into()));
        let mut life = self.inner.life.clone();
        let _ = tokio::time::timeout(CALL_TIMEOUT, life.wait_for(|l| *l != Life::Running)).await;
    }
}

/// Watches the root supervisor's task: when it ends without
/// [`Engine::shutdown`] having asked, the engine is dead — log it once and
/// publish [`Life::Failed`] (liveness and `keel serve` read it).
fn watch_supervisor(
    task: JoinHandle<()>,
    stop_requested: Arc<AtomicBool>,
    actors: Arc<EngineActors>,
) -> tokio::sync::watch::Receiver<Life> {
    let (tx, rx) = tokio::sync::watch::channel(Life::Running);
    tokio::spawn(async move {
        let _ = task.await;
        let life = if stop_requested.load(Ordering::Acquire) {
            Life::Stopped
        } else {
            let why = actors
                .gave_up
                .load_full()
                .map(|w| (*w).clone())
                .unwrap_or_else(|| "the engine supervisor stopped unexpectedly".into());
            tracing::error!(reason = %why, "the engine is dead: liveness now fails");
            Life::Failed(why)
        };
        tx.send_replace(life);
    });
    rx
}

/// A new Redis link (each subsystem gets its own, so cool-offs are
/// independent), or `None` without `REDIS_URL`.
fn redis_link(settings: &Settings) -> Result<Option<Arc<RedisLink>>, EngineError> {
    match &settings.redis_url {
        Some(url) => Ok(Some(Arc::new(RedisLink::new(url, settings.redis)?))),
        None => Ok(None),
    }
}

/// The value of an admin `call`, or `None` when the actor timed out or is
/// gone (admin paths then report "unavailable" rather than fail).
fn reply<T>(
    result: Result<ractor::rpc::CallResult<T>, ractor::MessagingErr<impl Sized>>,
) -> Option<T> {
    match result {
        Ok(ractor::rpc::CallResult::Success(v)) => Some(v),
        _ => None,
    }
}
