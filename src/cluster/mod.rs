//! Cluster: one resilience picture for many keel instances sharing a Redis.
//!
//! What is shared (when `REDIS_URL` is set and `BREAKER_SHARING` is on):
//!
//! - **Breaker transitions.** Every transition an instance makes (by its own
//!   calls, its recovery timer or an operator command) is written to a state
//!   key per breaker ([`breaker_key`], with an expiry) and published on
//!   [`EVENTS_CHANNEL`] in one Lua script. Every other instance applies it at
//!   once, an `open` with the same wall-clock recovery deadline. A new or
//!   reconnecting instance reads the state keys instead of waiting for the
//!   next event.
//! - **The consecutive-failure count.** A failure counted in `closed` adds
//!   one to a shared counter ([`failures_key`], one `INCR`, sent by this task,
//!   never awaited by the request); when it reaches the threshold the
//!   instance that saw it opens and publishes. Only the first success after
//!   a failure resets it, so the success path costs Redis nothing in steady
//!   state. The rate rules (failure rate, slow calls) stay per instance.
//! - **The half-open probe.** When the recovery deadline passes, instances
//!   race for a lease ([`probe_key`], `SET NX PX`, as long as the provider's
//!   call timeout); the winner goes half-open and sends the probes, the others
//!   keep rejecting until the probe's outcome is published. A prober that
//!   dies releases the lease by expiry and another instance takes over.
//! - **Operator actions and the configuration switch**, published on the same
//!   channel; each instance reports the configuration version in force in
//!   its heartbeat ([`INSTANCES_KEY`]), which `GET /internal/cluster` reads.
//!
//! The request path never waits on Redis: breakers hand events to the sync
//! through a bounded channel (`try_send`; a full channel drops the event and
//! counts it), and remote transitions are applied by the subscriber. The
//! [`ClusterSync`](crate::actors::cluster_sync::ClusterSync) actor, a child
//! of the engine supervisor, owns the two tasks (outbox, subscriber) and
//! runs the tick; a restart re-reads the picture from the state keys. When Redis
//! is gone (the subscription drops or a command fails) the picture is marked
//! not live and every breaker runs on its own at once; when Redis returns,
//! the state keys are read back and the newer side wins.

use crate::redis_link::{RedisError, RedisLink};
use crate::resilience::Resilience;
use crate::resilience::breaker::{BreakerState, CircuitBreaker, Origin, SyncEvent, SyncSender};
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The pub/sub channel every instance listens on.
pub const EVENTS_CHANNEL: &str = "keel:{cluster}:events";
/// Hash of instance id → the instance's last heartbeat (JSON).
pub const INSTANCES_KEY: &str = "keel:{cluster}:instances";
/// How often an instance writes its heartbeat.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// An instance whose heartbeat is older than this is not listed as alive.
pub const ALIVE_WITHIN_MS: u64 = 5_000;
/// Heartbeats older than this are removed from the hash.
const FORGET_AFTER_MS: u64 = 60_000;
/// How often the lease and liveness checks run.
pub const TICK: Duration = Duration::from_millis(100);
/// Capacity of the channel from the breakers to this task.
const OUTBOX_CAPACITY: usize = 4096;
/// Shared failure counts expire after this long without a failure.
const FAILURE_COUNT_TTL_MS: u64 = 60_000;
/// Propagation delays kept for the operator view.
const PROPAGATION_SAMPLES: usize = 1000;

/// The state key of a breaker (all keys share the `{cluster}` hash tag).
pub fn breaker_key(name: &str) -> String {
    format!("keel:{{cluster}}:breaker:{name}")
}

/// The shared consecutive-failure count of a breaker.
pub fn failures_key(name: &str) -> String {
    format!("keel:{{cluster}}:failures:{name}")
}

/// The half-open probe lease of a breaker (value: the holder's id).
pub fn probe_key(name: &str) -> String {
    format!("keel:{{cluster}}:probe:{name}")
}

/// Writes the state key, clears the failure count and the probe lease when
/// the transition ends an episode, and publishes the event — atomically.
const PUBLISH_SCRIPT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] == '1' then redis.call('DEL', KEYS[2], KEYS[3]) end
return redis.call('PUBLISH', ARGV[4], ARGV[1])
";

/// Adds one failure to the shared count and returns it.
const FAILURE_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
";

/// One breaker transition as stored and published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerRecord {
    /// `provider:operation`.
    pub name: String,
    /// The new state.
    pub to: BreakerState,
    /// For `open`: the recovery deadline, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_until_ms: Option<u64>,
    /// When the transition happened, Unix microseconds.
    pub at_us: u64,
    /// The instance that made it.
    pub from: String,
    /// Why.
    pub reason: String,
    /// `local` or `operator` (on the instance that made it).
    pub origin: String,
}

/// A runtime configuration switch as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// The preset switched to.
    pub preset: String,
    /// The custom configuration, as the operator sent it.
    #[serde(default)]
    pub custom_config: Option<serde_json::Value>,
    /// The configuration version on the instance that switched.
    pub version: String,
    /// Who switched.
    pub by: String,
    /// The instance that received the switch.
    pub from: String,
}

/// What travels on [`EVENTS_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClusterEvent {
    /// A breaker transition.
    Breaker(BreakerRecord),
    /// A configuration switch.
    Config(ConfigRecord),
}

/// One instance's heartbeat, as `GET /internal/cluster` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstanceInfo {
    /// The instance id (`JOB_INSTANCE_ID` or host-pid).
    pub id: String,
    /// keel's version.
    pub version: String,
    /// When the instance started (RFC 3339).
    pub started_at: String,
    /// Its last heartbeat, Unix milliseconds.
    pub heartbeat_ms: u64,
    /// The preset in force.
    pub preset: String,
    /// A digest of the resilience configuration in force ([`config_version`]).
    pub config_version: String,
    /// `live` (following the cluster picture) or `local` (on its own).
    pub sharing: String,
    /// Every breaker's state (breaker name → `closed`, `open`, `half_open`, ...).
    #[schema(value_type = Object)]
    pub breakers: BTreeMap<String, BreakerState>,
}

/// One place where an instance differs from the majority of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Disagreement {
    /// The odd instance out.
    pub instance: String,
    /// `config_version` or `breaker:<name>`.
    pub field: String,
    /// Its value there.
    pub value: String,
    /// The value more than half of the instances have; null when none has.
    #[schema(required = true)]
    pub majority: Option<String>,
}

/// Delays between a transition published elsewhere and its application
/// here, over the last 1000 remote events.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Propagation {
    /// Remote events measured.
    pub samples: usize,
    /// Median delay, milliseconds (null before the first event).
    #[schema(required = true)]
    pub p50_ms: Option<f64>,
    /// 99th percentile, milliseconds.
    #[schema(required = true)]
    pub p99_ms: Option<f64>,
    /// Largest delay, milliseconds.
    #[schema(required = true)]
    pub max_ms: Option<f64>,
}

/// Which instances run a configuration version (the answer of a
/// cluster-wide `PUT /internal/resilience/config`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Acknowledgments {
    /// Instances whose heartbeat reports the new version.
    pub applied: Vec<String>,
    /// Instances alive that did not report it within a second (look at
    /// `GET /internal/cluster`; an instance that cannot resolve the switch
    /// logs why and keeps its configuration).
    pub pending: Vec<String>,
}

/// Counters of the sync as `GET /internal/cluster` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventCounts {
    /// Events this instance published.
    pub published: u64,
    /// Events from other instances applied here.
    pub applied: u64,
    /// Events the breakers could not hand over (channel full).
    pub dropped: u64,
    /// Publications or counts that failed (Redis unavailable).
    pub failed: u64,
    /// Probe leases this instance won.
    pub probe_leases_won: u64,
}

/// `GET /internal/cluster`: the instances sharing this Redis and whether
/// they agree.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// The instance that answered.
    pub instance_id: String,
    /// `live` (following the shared picture), `local` (Redis unreachable:
    /// on its own), `off` (`BREAKER_SHARING=off`) or `not_configured` (no
    /// `REDIS_URL`).
    pub sharing: String,
    /// Why the instance list could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_error: Option<String>,
    /// Every instance whose heartbeat is recent, this one included.
    pub instances: Vec<InstanceInfo>,
    /// True when no instance disagrees with the majority.
    pub agreed: bool,
    /// Where instances differ (configuration version, breaker states).
    pub disagreements: Vec<Disagreement>,
    /// This instance's sync counters (absent when nothing is shared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<EventCounts>,
    /// Propagation delays measured here (absent when nothing is shared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<Propagation>,
}

/// A digest of a resilience configuration: instances with the same version
/// run the same policies.
pub fn config_version(config: &crate::resilience::config::ResilienceConfig) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_string(config).unwrap_or_default();
    let digest = Sha256::digest(json.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Counters of the sync, for operators and metrics.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Events published.
    pub published: AtomicU64,
    /// Events received from other instances and applied.
    pub applied: AtomicU64,
    /// Events the breakers could not hand over (channel full).
    pub dropped: Arc<AtomicU64>,
    /// Publications or counts that failed (Redis unavailable).
    pub failed: AtomicU64,
    /// Probe leases won by this instance.
    pub leases_won: AtomicU64,
}

/// Where a configuration switch published by another instance is applied.
///
/// Why a trait: the switch must go the way a local one does (through the
/// breaker registry actor, into the audit trail), which is the engine's
/// `reconfigure_by`; the engine owns this module's [`Cluster`] and sits above
/// it, so it implements this and attaches itself ([`Cluster::attach`]).
pub trait ApplySwitch: Send + Sync {
    /// Applies `config` as switched by `who`; false when it was not applied
    /// (the engine is gone or its registry actor did not answer).
    fn apply_switch(
        &self,
        config: crate::resilience::config::ResilienceConfig,
        who: String,
    ) -> BoxFuture<'_, bool>;
}

/// The cluster sync of one engine (see the module doc).
pub struct Cluster {
    instance_id: String,
    started_at: String,
    link: Arc<RedisLink>,
    client: redis::Client,
    resilience: Arc<Resilience>,
    /// Probe lease per provider: its call timeout.
    leases: HashMap<crate::providers::ProviderKind, Duration>,
    /// Subscribed to the channel right now.
    subscribed: AtomicBool,
    /// The shared picture is followed (subscribed and Redis answering).
    live: AtomicBool,
    /// Set when the picture must be read back from the state keys.
    rebuild: AtomicBool,
    /// Remote event delays (publish → applied here), microseconds.
    propagation: Mutex<VecDeque<u64>>,
    stats: ClusterStats,
    /// Applies the configuration switches of others (the engine, once built).
    switches: OnceLock<Box<dyn ApplySwitch>>,
    /// What the breakers hand over ([`Cluster::run_outbox`] drains it).
    outbox: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(Arc<str>, SyncEvent)>>,
}

/// Why the cluster sync could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The Redis URL was refused.
    #[error("cluster: {0}")]
    Redis(#[from] RedisError),
    /// The pub/sub client could not be built.
    #[error("cluster: invalid REDIS_URL: {0}")]
    Client(String),
}

impl Cluster {
    /// Sets up the sync for `resilience`: the breakers hand their events over
    /// from now on, and the engine supervisor's
    /// [`ClusterSync`](crate::actors::cluster_sync::ClusterSync) actor runs the
    /// tasks that talk to Redis. `None` without Redis or with
    /// `BREAKER_SHARING=off`.
    pub fn start(
        settings: &crate::config::Settings,
        resilience: Arc<Resilience>,
    ) -> Result<Option<Arc<Cluster>>, ClusterError> {
        let Some(url) = settings.redis_url.as_deref() else {
            return Ok(None);
        };
        if !settings.breaker_sharing {
            return Ok(None);
        }
        let link = Arc::new(RedisLink::new(url, settings.redis)?);
        let client = redis::Client::open(url).map_err(|e| ClusterError::Client(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::channel(OUTBOX_CAPACITY);
        let cluster = Arc::new(Cluster {
            instance_id: settings.jobs.instance_id.clone(),
            started_at: crate::time::now_rfc3339(),
            link,
            client,
            leases: settings
                .providers
                .iter()
                .map(|p| (p.kind, p.timeout))
                .collect(),
            resilience: resilience.clone(),
            subscribed: AtomicBool::new(false),
            live: AtomicBool::new(false),
            rebuild: AtomicBool::new(true),
            propagation: Mutex::new(VecDeque::new()),
            stats: ClusterStats::default(),
            switches: OnceLock::new(),
            outbox: tokio::sync::Mutex::new(rx),
        });
        resilience.attach_sync(SyncSender {
            tx,
            dropped: cluster.stats.dropped.clone(),
        });
        Ok(Some(cluster))
    }

    /// Lets configuration switches published by others reach the engine.
    pub fn attach(&self, switches: Box<dyn ApplySwitch>) {
        let _ = self.switches.set(switches);
    }

    /// This instance's id.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// True while the shared picture is followed; false means every breaker
    /// runs on its own (Redis unreachable) and operator actions are local.
    pub fn is_live(&self) -> bool {
        self.live.load(Relaxed)
    }

    /// The sync's counters.
    pub fn stats(&self) -> &ClusterStats {
        &self.stats
    }

    /// p50 / p99 / max of the delays between a remote publish and its
    /// application here, in milliseconds, and the number of samples.
    pub fn propagation(&self) -> Propagation {
        let mut v: Vec<u64> = self
            .propagation
            .lock()
            .map(|p| p.iter().copied().collect())
            .unwrap_or_default();
        v.sort_unstable();
        let q = |f: f64| {
            v.get(((v.len() as f64 - 1.0) * f).round() as usize)
                .map(|us| *us as f64 / 1000.0)
        };
        Propagation {
            samples: v.len(),
            p50_ms: q(0.5),
            p99_ms: q(0.99),
            max_ms: v.last().map(|us| *us as f64 / 1000.0),
        }
    }

    /// The sync's counters, read now.
    pub fn event_counts(&self) -> EventCounts {
        let s = &self.stats;
        EventCounts {
            published: s.published.load(Relaxed),
            applied: s.applied.load(Relaxed),
            dropped: s.dropped.load(Relaxed),
            failed: s.failed.load(Relaxed),
            probe_leases_won: s.leases_won.load(Relaxed),
        }
    }

    /// Publishes a configuration switch made here; false when Redis did not
    /// take it (the switch then applies to this instance only).
    pub async fn publish_config(&self, record: ConfigRecord) -> bool {
        let Ok(json) = serde_json::to_string(&ClusterEvent::Config(record)) else {
            return false;
        };
        let published = self
            .link
            .query::<i64>(redis::cmd("PUBLISH").arg(EVENTS_CHANNEL).arg(json))
            .await;
        match published {
            Ok(_) => {
                self.stats.published.fetch_add(1, Relaxed);
                true
            }
            Err(e) => {
                self.stats.failed.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "configuration switch not shared (Redis unavailable): it applies to this instance only");
                false
            }
        }
    }

    /// Waits (at most `within`) until every instance alive reports
    /// `version` in its heartbeat; the ids that did and those that did not.
    /// Instances write their heartbeat at the tick after a change, so a
    /// switch is usually acknowledged by all within two ticks.
    pub async fn acknowledgments(&self, version: &str, within: Duration) -> Acknowledgments {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (applied, pending): (Vec<_>, Vec<_>) = match self.instances().await {
                Ok(all) => all.into_iter().partition(|i| i.config_version == version),
                Err(_) => (Vec::new(), Vec::new()),
            };
            let done = pending.is_empty() || tokio::time::Instant::now() >= deadline;
            if done {
                return Acknowledgments {
                    applied: applied.into_iter().map(|i| i.id).collect(),
                    pending: pending.into_iter().map(|i| i.id).collect(),
                };
            }
            tokio::time::sleep(TICK / 2).await;
        }
    }

    /// This instance's heartbeat as it would be written now.
    pub fn heartbeat(&self) -> InstanceInfo {
        let config = self.resilience.config();
        InstanceInfo {
            id: self.instance_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at.clone(),
            heartbeat_ms: crate::time::unix_ms(),
            preset: config.preset.clone(),
            config_version: config_version(&config),
            sharing: if self.is_live() { "live" } else { "local" }.into(),
            breakers: self
                .resilience
                .breakers()
                .iter()
                .map(|b| (b.name().to_string(), b.state()))
                .collect(),
        }
    }

    /// The parts of the heartbeat that change: the configuration in force
    /// (by identity) and every breaker's state.
    fn what_a_heartbeat_says(&self) -> (usize, bool, Vec<BreakerState>) {
        (
            Arc::as_ptr(&self.resilience.config()) as usize,
            self.is_live(),
            self.resilience
                .breakers()
                .iter()
                .map(|b| b.state())
                .collect(),
        )
    }

    /// The instances whose heartbeat is recent (this one always included,
    /// with its current state).
    pub async fn instances(&self) -> Result<Vec<InstanceInfo>, RedisError> {
        let all: HashMap<String, String> = self
            .link
            .query(redis::cmd("HGETALL").arg(INSTANCES_KEY))
            .await?;
        let now = crate::time::unix_ms();
        let mut alive: Vec<InstanceInfo> = all
            .values()
            .filter_map(|json| serde_json::from_str::<InstanceInfo>(json).ok())
            .filter(|i| i.id != self.instance_id)
            .filter(|i| now.saturating_sub(i.heartbeat_ms) < ALIVE_WITHIN_MS)
            .collect();
        alive.push(self.heartbeat());
        alive.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(alive)
    }

    async fn write_heartbeat(&self) -> Result<(), RedisError> {
        let me = self.heartbeat();
        let json = serde_json::to_string(&me).unwrap_or_default();
        self.link
            .query::<()>(
                redis::cmd("HSET")
                    .arg(INSTANCES_KEY)
                    .arg(&self.instance_id)
                    .arg(json),
            )
            .await?;
        // Forget instances that have been gone for a long time.
        let all: HashMap<String, String> = self
            .link
            .query(redis::cmd("HGETALL").arg(INSTANCES_KEY))
            .await?;
        let stale: Vec<&String> = all
            .iter()
            .filter(|(_, json)| {
                serde_json::from_str::<InstanceInfo>(json).map_or(true, |i| {
                    me.heartbeat_ms.saturating_sub(i.heartbeat_ms) > FORGET_AFTER_MS
                })
            })
            .map(|(id, _)| id)
            .collect();
        if !stale.is_empty() {
            self.link
                .query::<()>(redis::cmd("HDEL").arg(INSTANCES_KEY).arg(stale))
                .await?;
        }
        Ok(())
    }

    fn lease_for(&self, breaker: &CircuitBreaker) -> Duration {
        breaker
            .name()
            .split_once(':')
            .and_then(|(kind, _)| kind.parse().ok())
            .and_then(|kind| self.leases.get(&kind).copied())
            .unwrap_or(Duration::from_secs(30))
            .max(Duration::from_millis(100))
    }

    /// Handles one event from a breaker of this instance.
    async fn handle_local(&self, name: &str, event: SyncEvent) {
        let result = match event {
            SyncEvent::Transition {
                to,
                open_for,
                reason,
                origin,
                ..
            } => {
                self.publish_transition(name, to, open_for, reason, &origin)
                    .await
            }
            SyncEvent::Failure { threshold } => self.count_failure(name, threshold).await,
            SyncEvent::SuccessAfterFailure => {
                self.link
                    .query::<()>(redis::cmd("DEL").arg(failures_key(name)))
                    .await
            }
        };
        if let Err(e) = result {
            self.stats.failed.fetch_add(1, Relaxed);
            tracing::debug!(breaker = name, error = %e, "cluster sync: event not shared");
        }
    }

    async fn publish_transition(
        &self,
        name: &str,
        to: BreakerState,
        open_for: Option<Duration>,
        reason: String,
        origin: &Origin,
    ) -> Result<(), RedisError> {
        let now_ms = crate::time::unix_ms();
        let open_until_ms = match to {
            BreakerState::Open => {
                Some(now_ms + u64::try_from(open_for.unwrap_or_default().as_millis()).unwrap_or(0))
            }
            _ => None,
        };
        let record = BreakerRecord {
            name: name.to_string(),
            to,
            open_until_ms,
            at_us: unix_us(),
            from: self.instance_id.clone(),
            reason,
            origin: origin.label(),
        };
        let ttl_ms = match open_until_ms {
            Some(until) => until.saturating_sub(now_ms) + 3_600_000,
            None => 24 * 3_600_000,
        };
        let json = serde_json::to_string(&ClusterEvent::Breaker(record)).unwrap_or_default();
        // A half-open transition is the lease holder starting its probe: the
        // lease stays. Every other transition ends the episode.
        let clear = if to == BreakerState::HalfOpen {
            "0"
        } else {
            "1"
        };
        let script = redis::Script::new(PUBLISH_SCRIPT);
        self.link
            .script::<i64>(
                &script,
                &[breaker_key(name), failures_key(name), probe_key(name)],
                &[
                    json,
                    ttl_ms.to_string(),
                    clear.into(),
                    EVENTS_CHANNEL.into(),
                ],
            )
            .await?;
        self.stats.published.fetch_add(1, Relaxed);
        Ok(())
    }

    async fn count_failure(&self, name: &str, threshold: u32) -> Result<(), RedisError> {
        let script = redis::Script::new(FAILURE_SCRIPT);
        let count: u64 = self
            .link
            .script(
                &script,
                &[failures_key(name)],
                &[FAILURE_COUNT_TTL_MS.to_string()],
            )
            .await?;
        if count >= u64::from(threshold.max(1))
            && let Some(b) = self.resilience.find_breaker(name)
        {
            b.open_shared(count);
        }
        Ok(())
    }

    /// Applies an event published by another instance.
    async fn handle_remote(&self, payload: &str) {
        let Ok(event) = serde_json::from_str::<ClusterEvent>(payload) else {
            tracing::warn!("cluster sync: unreadable event ignored");
            return;
        };
        match event {
            ClusterEvent::Breaker(r) => {
                if r.from == self.instance_id {
                    return;
                }
                self.apply_record(&r);
                let delay = unix_us().saturating_sub(r.at_us);
                if let Ok(mut p) = self.propagation.lock() {
                    if p.len() == PROPAGATION_SAMPLES {
                        p.pop_front();
                    }
                    p.push_back(delay);
                }
            }
            ClusterEvent::Config(c) => {
                if c.from == self.instance_id {
                    return;
                }
                self.apply_config(c).await;
            }
        }
    }

    fn apply_record(&self, r: &BreakerRecord) {
        let Some(b) = self.resilience.find_breaker(&r.name) else {
            return;
        };
        let open_for = r
            .open_until_ms
            .map(|until| Duration::from_millis(until.saturating_sub(crate::time::unix_ms())));
        b.apply_remote(r.to, open_for, &r.from, &r.reason);
        self.stats.applied.fetch_add(1, Relaxed);
    }

    async fn apply_config(&self, c: ConfigRecord) {
        let Some(switches) = self.switches.get() else {
            return;
        };
        let custom = match &c.custom_config {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => match crate::resilience::config::CustomConfig::from_value(v) {
                Ok(custom) => Some(custom),
                Err(e) => {
                    tracing::error!(from = %c.from, error = %e, "configuration switch from another instance refused");
                    return;
                }
            },
        };
        let config = match crate::resilience::config::resolve(
            &c.preset,
            custom.as_ref(),
            &crate::env::ProcessEnv,
        ) {
            Ok(config) => config,
            Err(e) => {
                tracing::error!(from = %c.from, error = %e, "configuration switch from another instance refused");
                return;
            }
        };
        let version = config_version(&config);
        if version != c.version {
            tracing::warn!(from = %c.from, theirs = %c.version, ours = %version,
                "configuration switch applied, but it resolves differently here (different environment)");
        }
        let who = format!("{} (on {})", c.by, c.from);
        if switches.apply_switch(config, who).await {
            self.stats.applied.fetch_add(1, Relaxed);
        }
    }

    /// Reads the state keys back after (re)joining: a newer record elsewhere
    /// is applied here; a newer state here is published.
    async fn rebuild_picture(&self) -> Result<(), RedisError> {
        let breakers = self.resilience.breakers();
        if breakers.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = breakers.iter().map(|b| breaker_key(b.name())).collect();
        let records: Vec<Option<String>> = self.link.query(redis::cmd("MGET").arg(&keys)).await?;
        for (b, record) in breakers.iter().zip(records) {
            let record = record
                .and_then(|json| serde_json::from_str::<ClusterEvent>(&json).ok())
                .and_then(|e| match e {
                    ClusterEvent::Breaker(r) => Some(r),
                    ClusterEvent::Config(_) => None,
                });
            let local = b.shared_view();
            let local_us = local.changed_at_ms * 1000;
            match record {
                Some(r) if r.at_us > local_us => {
                    let stale_here = r.from != self.instance_id && b.state() != r.to;
                    stale_here.then(|| self.apply_record(&r));
                }
                _ if local.changed_at_ms > 0 && !local.local_only => {
                    self.publish_transition(
                        b.name(),
                        local.state,
                        local.open_for,
                        local.reason,
                        &Origin::Local,
                    )
                    .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// One round of the probe lease: every breaker due for a probe tries to
    /// take the lease; the winner goes half-open here.
    async fn probe_round(&self) -> Result<(), RedisError> {
        for b in self.resilience.breakers() {
            let lease = self.lease_for(&b);
            if !b.probe_due(lease) {
                continue;
            }
            let key = probe_key(b.name());
            let won: Option<String> = self
                .link
                .query(
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&self.instance_id)
                        .arg("NX")
                        .arg("PX")
                        .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)),
                )
                .await?;
            if won.is_some() {
                self.stats.leases_won.fetch_add(1, Relaxed);
                b.grant_probe();
            } else {
                let holder: Option<String> = self.link.query(redis::cmd("GET").arg(&key)).await?;
                if let Some(holder) = holder {
                    b.probe_elsewhere(&holder);
                }
            }
        }
        Ok(())
    }

    fn set_live(&self, live: bool) {
        if self.live.swap(live, Relaxed) != live {
            if live {
                tracing::info!("cluster breaker sharing live");
            } else {
                tracing::warn!(
                    "cluster breaker sharing lost (Redis unavailable): breakers run on their own"
                );
                self.rebuild.store(true, Relaxed);
            }
            for b in self.resilience.breakers() {
                b.set_shared(live);
            }
        }
    }
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What the ticker remembers between ticks: when it last wrote the
/// heartbeat and what that heartbeat said.
#[derive(Default)]
pub struct TickMemo {
    last_heartbeat: Option<tokio::time::Instant>,
    // A change is written at the next tick, so `GET /internal/cluster`
    // elsewhere lags a transition by one tick, not by a heartbeat period.
    last_said: Option<(usize, bool, Vec<BreakerState>)>,
}

impl Cluster {
    /// Publishes what the breakers of this instance hand over, in order,
    /// until the channel closes (run by [`crate::actors::cluster_sync`]; a
    /// restarted task takes the channel over where the last one stopped).
    pub async fn run_outbox(self: Arc<Self>) {
        let mut rx = self.outbox.lock().await;
        while let Some((name, event)) = rx.recv().await {
            self.handle_local(&name, event).await;
        }
    }

    /// Follows the events channel; reconnects with a backoff when it drops.
    pub async fn run_subscriber(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let connect = tokio::time::timeout(Duration::from_secs(2), async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(EVENTS_CHANNEL).await?;
                Ok::<_, redis::RedisError>(pubsub)
            })
            .await;
            match connect {
                Ok(Ok(mut pubsub)) => {
                    backoff = Duration::from_millis(100);
                    self.subscribed.store(true, Relaxed);
                    self.rebuild.store(true, Relaxed);
                    let mut messages = pubsub.on_message();
                    while let Some(m) = messages.next().await {
                        if let Ok(payload) = m.get_payload::<String>() {
                            self.handle_remote(&payload).await;
                        }
                    }
                    self.subscribed.store(false, Relaxed);
                    self.set_live(false);
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "cluster sync: subscribe failed"),
                Err(_) => tracing::debug!("cluster sync: subscribe timed out"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// One tick (every [`TICK`]): the heartbeat when due or changed, whether
    /// the picture is live, its rebuild after a (re)join, and the probe
    /// lease round.
    pub async fn tick(&self, memo: &mut TickMemo) {
        let said = self.what_a_heartbeat_says();
        let beat_due = memo
            .last_heartbeat
            .is_none_or(|t| t.elapsed() >= HEARTBEAT_EVERY)
            || memo.last_said.as_ref() != Some(&said);
        if beat_due {
            memo.last_heartbeat = Some(tokio::time::Instant::now());
            memo.last_said = Some(said);
            if self.write_heartbeat().await.is_err() {
                self.set_live(false);
                return;
            }
        }
        if !self.subscribed.load(Relaxed) || !self.link.is_healthy() {
            self.set_live(false);
            return;
        }
        if self.rebuild.load(Relaxed) {
            if self.rebuild_picture().await.is_err() {
                return;
            }
            self.rebuild.store(false, Relaxed);
        }
        self.set_live(true);
        if self.probe_round().await.is_err() {
            self.set_live(false);
        }
    }

    /// The sync stopped (its actor is restarting or the engine stops): every
    /// breaker runs on its own until it is live again, and the picture is
    /// read back from the state keys then.
    pub fn sync_stopped(&self) {
        self.subscribed.store(false, Relaxed);
        self.rebuild.store(true, Relaxed);
        if self.live.swap(false, Relaxed) {
            tracing::info!("cluster sync stopped: breakers run on their own until it is back");
            for b in self.resilience.breakers() {
                b.set_shared(false);
            }
        }
    }
}

/// The operator view of the cluster (`GET /internal/cluster`): the instances
/// alive and where they disagree. For each field (the configuration version,
/// each breaker's state) the value more than half of the instances share is
/// the majority, and every instance with another value disagrees; when no
/// value has more than half (two instances that differ, a three-way split),
/// every instance is listed, with `majority: null`.
pub fn disagreements(instances: &[InstanceInfo]) -> Vec<Disagreement> {
    let mut out = Vec::new();
    let mut field = |name: String, values: Vec<(&str, &str)>| {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, v) in &values {
            *counts.entry(v).or_default() += 1;
        }
        if counts.len() < 2 {
            return;
        }
        let majority = counts
            .iter()
            .find(|(_, n)| **n * 2 > values.len())
            .map(|(v, _)| v.to_string());
        for (id, value) in values {
            if majority.as_deref() != Some(value) {
                out.push(Disagreement {
                    instance: id.to_string(),
                    field: name.clone(),
                    value: value.to_string(),
                    majority: majority.clone(),
                });
            }
        }
    };
    field(
        "config_version".into(),
        instances
            .iter()
            .map(|i| (i.id.as_str(), i.config_version.as_str()))
            .collect(),
    );
    let names: std::collections::BTreeSet<&String> =
        instances.iter().flat_map(|i| i.breakers.keys()).collect();
    for name in names {
        field(
            format!("breaker:{name}"),
            instances
                .iter()
                .filter_map(|i| i.breakers.get(name).map(|s| (i.id.as_str(), s.as_str())))
                .collect(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, version: &str, state: BreakerState) -> InstanceInfo {
        InstanceInfo {
            id: id.into(),
            version: "0".into(),
            started_at: String::new(),
            heartbeat_ms: 0,
            preset: "simple".into(),
            config_version: version.into(),
            sharing: "live".into(),
            breakers: [("local:summarize".to_string(), state)].into(),
        }
    }

    #[test]
    fn the_odd_instance_out_is_a_disagreement() {
        let all = [
            info("a", "v1", BreakerState::Open),
            info("b", "v1", BreakerState::Open),
            info("c", "v2", BreakerState::Closed),
        ];
        let d = disagreements(&all);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().all(|x| x.instance == "c"));
        assert!(d.iter().any(|x| x.field == "config_version"));
        assert!(
            d.iter()
                .any(|x| x.field == "breaker:local:summarize"
                    && x.majority.as_deref() == Some("open"))
        );
        assert!(disagreements(&all[..2]).is_empty());
    }

    #[test]
    fn two_instances_that_differ_are_both_listed_without_a_majority() {
        let all = [
            info("a", "v1", BreakerState::Closed),
            info("b", "v1", BreakerState::ForcedOpen),
        ];
        let d = disagreements(&all);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().all(|x| x.majority.is_none()));
        assert_eq!(
            d.iter().map(|x| x.instance.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn events_round_trip_as_tagged_json() {
        let e = ClusterEvent::Breaker(BreakerRecord {
            name: "local:summarize".into(),
            to: BreakerState::Open,
            open_until_ms: Some(5),
            at_us: 7,
            from: "a".into(),
            reason: "5 consecutive failures".into(),
            origin: "local".into(),
        });
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""kind":"breaker""#), "{json}");
        assert_eq!(serde_json::from_str::<ClusterEvent>(&json).unwrap(), e);
    }
}
