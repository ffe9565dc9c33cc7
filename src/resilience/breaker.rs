//! The circuit breaker: one per (provider, operation).
//!
//! States: `closed` (calls flow, failures counted), `open` (calls rejected
//! until `recovery_timeout` has passed), `half_open` (at most
//! `half_open_max_calls` probes; all succeed → closed, one fails → open), and
//! the operator states `forced_open` (reject everything), `disabled` (permit
//! everything, record nothing) and `metrics_only` (record, never open).
//!
//! Opening rules, checked after every recorded call in `closed`:
//! `failure_threshold` *consecutive* failures (a success resets the count);
//! optionally a failure rate ≥ `failure_rate_threshold`, or a slow-call rate ≥
//! `slow_call_rate_threshold` (calls slower than `slow_call_duration`), over
//! the calls of the last `window`, once `minimum_calls` were seen.
//!
//! Invariants: the state machine ([`BreakerCore`]) is pure — it is given the
//! time and never sleeps — so it is tested with tokio's paused clock. A
//! [`BreakerPermit`] that is dropped without an outcome (the caller was
//! cancelled, or the call never ran) releases its half-open slot and counts
//! as nothing, so a breaker can never be wedged half-open. Request tasks hold
//! the breaker's mutex for well under a microsecond; no mailbox is involved.
//!
//! Cluster sharing ([`crate::cluster`]): when a sync channel is attached, every
//! transition made here (locally or by an operator) and every counted failure
//! is handed to the cluster task through a bounded channel (`try_send`, never
//! awaited); transitions made elsewhere arrive through
//! [`CircuitBreaker::apply_remote`]. While the cluster picture is live
//! ([`CircuitBreaker::set_shared`]) an open breaker whose recovery time passed
//! stays open until the cluster task wins the probe lease
//! ([`CircuitBreaker::grant_probe`]), and a half-open breaker whose probe runs
//! on another instance admits no calls here. When the picture is lost (Redis
//! gone), each breaker runs on its own at once.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// How many transitions each breaker remembers.
const TRANSITION_HISTORY: usize = 20;
/// Upper bound on calls kept in the sliding window (memory bound).
const WINDOW_MAX_CALLS: usize = 1000;

/// Tunables of one breaker (derived from the operation's policy).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// Time spent open before probing.
    pub recovery_timeout: Duration,
    /// Probes admitted in half-open.
    pub half_open_max_calls: u32,
    /// Optional: open when this fraction of windowed calls failed.
    pub failure_rate_threshold: Option<f64>,
    /// Calls slower than this count as slow.
    pub slow_call_duration: Option<Duration>,
    /// Optional: open when this fraction of windowed calls was slow.
    pub slow_call_rate_threshold: Option<f64>,
    /// Rate rules apply only after this many calls in the window.
    pub minimum_calls: u32,
    /// Length of the sliding window for the rate rules.
    pub window: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failure_threshold: 5,
            recovery_timeout: Duration::from_secs(60),
            half_open_max_calls: 1,
            failure_rate_threshold: None,
            slow_call_duration: None,
            slow_call_rate_threshold: None,
            minimum_calls: 10,
            window: Duration::from_secs(60),
        }
    }
}

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Normal operation.
    Closed,
    /// Rejecting calls until the recovery timeout passes.
    Open,
    /// Admitting a limited number of probes.
    HalfOpen,
    /// Operator: reject every call.
    ForcedOpen,
    /// Operator: permit every call, record nothing.
    Disabled,
    /// Operator: record calls, never open.
    MetricsOnly,
}

impl BreakerState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::Disabled => "disabled",
            BreakerState::MetricsOnly => "metrics_only",
        }
    }

    /// Gauge value for metrics: 0 closed, 1 half-open, 2 open (and forced
    /// open), 3 disabled, 4 metrics-only.
    pub fn gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open | BreakerState::ForcedOpen => 2,
            BreakerState::Disabled => 3,
            BreakerState::MetricsOnly => 4,
        }
    }
}

/// How a permitted call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The provider answered.
    Success,
    /// The provider failed in a way that says something about its health.
    Failure,
    /// Nothing to learn (cancelled, or the request itself was bad).
    Ignored,
}

/// Where a transition came from: this instance's own calls, an operator
/// command, or another instance of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// This instance's calls (or its recovery timer).
    Local,
    /// An operator command.
    Operator,
    /// Another instance, by id.
    Remote(String),
}

impl Origin {
    /// `local`, `operator` or `remote:<instance>` (history and logs).
    pub fn label(&self) -> String {
        match self {
            Origin::Local => "local".into(),
            Origin::Operator => "operator".into(),
            Origin::Remote(id) => format!("remote:{id}"),
        }
    }

    /// `local`, `operator` or `remote` (a metric label of bounded cardinality).
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Local => "local",
            Origin::Operator => "operator",
            Origin::Remote(_) => "remote",
        }
    }
}

/// What a breaker hands to the cluster task (see [`crate::cluster`]).
#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent {
    /// A transition made here (by calls or an operator) to publish.
    Transition {
        /// The new state.
        to: BreakerState,
        /// For `open`: time left until the recovery deadline.
        open_for: Option<Duration>,
        /// Why.
        reason: String,
        /// `Local` or `Operator`.
        origin: Origin,
        /// The breaker's failure threshold (for the shared count).
        threshold: u32,
    },
    /// A failure counted in `closed`: add it to the cluster's count.
    Failure {
        /// The failure threshold in force.
        threshold: u32,
    },
    /// The first success after this instance counted a failure: reset the
    /// cluster's count.
    SuccessAfterFailure,
}

/// The sender side of the channel to the cluster task, with the count of
/// events dropped because the channel was full.
#[derive(Debug, Clone)]
pub struct SyncSender {
    /// The channel (never awaited: `try_send`).
    pub tx: tokio::sync::mpsc::Sender<(Arc<str>, SyncEvent)>,
    /// Events dropped because the channel was full.
    pub dropped: Arc<std::sync::atomic::AtomicU64>,
}

/// One state change, for operators.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Transition {
    /// Wall-clock time (RFC 3339).
    #[schema(format = DateTime)]
    pub at: String,
    /// Previous state.
    pub from: BreakerState,
    /// New state.
    pub to: BreakerState,
    /// Why.
    pub reason: String,
    /// `local` (this instance's calls or timer), `operator`, or
    /// `remote:<instance>` (applied from another instance of the cluster).
    pub origin: String,
}

/// Lifetime counters of one breaker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BreakerCounters {
    /// Calls permitted and recorded (success or failure).
    pub calls: u64,
    /// Successful calls.
    pub successes: u64,
    /// Failed calls.
    pub failures: u64,
    /// Calls rejected because the breaker was open.
    pub rejections: u64,
    /// Calls slower than `slow_call_duration`.
    pub slow_calls: u64,
    /// Times the breaker opened.
    pub opens: u64,
}

/// Why a call was not permitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The state that rejected.
    pub state: BreakerState,
    /// When a call may be admitted again, if known.
    pub retry_after: Option<Duration>,
}

/// Whether a permit is a half-open probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PermitKind {
    Normal,
    Probe,
}

#[derive(Debug, Clone, Copy)]
struct WindowEntry {
    at: Instant,
    failed: bool,
    slow: bool,
}

/// The pure state machine.
#[derive(Debug)]
pub struct BreakerCore {
    settings: BreakerSettings,
    state: BreakerState,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probes_in_flight: u32,
    probe_successes: u32,
    window: VecDeque<WindowEntry>,
    /// Failures and slow calls currently in `window`, kept in step with it
    /// so evaluating the rate rules never scans the window.
    window_failures: u32,
    window_slow: u32,
    counters: BreakerCounters,
    transitions: VecDeque<Transition>,
    /// Transitions by (new state, origin kind), for metrics.
    transition_counts: BTreeMap<(&'static str, &'static str), u64>,
    /// A sync channel is attached: local transitions and failures go out.
    sync_attached: bool,
    /// The cluster picture is live (Redis reachable): probes need the lease.
    shared: bool,
    /// Half-open with the probe running on this other instance.
    remote_probe: Option<(String, Instant)>,
    /// A failure was counted since the last success (the next success resets
    /// the cluster's count).
    failed_since_success: bool,
    /// The last transition was an instance-scoped operator command (never
    /// republished when the cluster picture is rebuilt).
    local_only: bool,
    /// Wall-clock milliseconds of the last transition (0: none yet).
    changed_at_ms: u64,
    /// Events for the cluster task, sent once the lock is released.
    outbox: Vec<SyncEvent>,
}

/// A read-only view of one breaker.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BreakerSnapshot {
    /// Current state.
    pub state: BreakerState,
    /// Current consecutive failures.
    pub consecutive_failures: u32,
    /// Calls in the sliding window.
    pub window_calls: u32,
    /// Failures in the sliding window.
    pub window_failures: u32,
    /// Slow calls in the sliding window.
    pub window_slow_calls: u32,
    /// Probes running now (half-open).
    pub probes_in_flight: u32,
    /// Seconds until an open breaker admits probes.
    #[schema(required = true)]
    pub seconds_until_half_open: Option<f64>,
    /// Lifetime counters.
    pub counters: BreakerCounters,
    /// Recent state changes, newest last.
    pub transitions: Vec<Transition>,
    /// Failure threshold in force.
    pub failure_threshold: u32,
    /// Recovery timeout in force, seconds.
    pub recovery_timeout_seconds: f64,
    /// Half-open probes allowed.
    pub half_open_max_calls: u32,
    /// Half-open while another instance holds the probe lease: its id (the
    /// calls here keep being rejected until the probe's outcome arrives).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_on: Option<String>,
}

impl BreakerCore {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> BreakerCore {
        BreakerCore {
            settings,
            state: BreakerState::Closed,
            consecutive_failures: 0,
            open_until: None,
            probes_in_flight: 0,
            probe_successes: 0,
            window: VecDeque::new(),
            window_failures: 0,
            window_slow: 0,
            counters: BreakerCounters::default(),
            transitions: VecDeque::new(),
            transition_counts: BTreeMap::new(),
            sync_attached: false,
            shared: false,
            remote_probe: None,
            failed_since_success: false,
            local_only: false,
            changed_at_ms: 0,
            outbox: Vec::new(),
        }
    }

    /// The current state, advancing open → half-open when due.
    pub fn state(&mut self, now: Instant) -> BreakerState {
        self.advance(now);
        self.state
    }

    fn advance(&mut self, now: Instant) {
        // With a live cluster picture the probe lease decides (grant_probe).
        if self.state == BreakerState::Open
            && !self.shared
            && self.open_until.is_some_and(|t| now >= t)
        {
            self.transition(
                BreakerState::HalfOpen,
                "recovery timeout elapsed".into(),
                Origin::Local,
            );
        }
    }

    fn transition(&mut self, to: BreakerState, reason: String, origin: Origin) {
        let from = self.state;
        if from == to && !(to == BreakerState::HalfOpen && self.remote_probe.is_some()) {
            return;
        }
        self.state = to;
        self.probes_in_flight = 0;
        self.probe_successes = 0;
        self.remote_probe = None;
        self.local_only = false;
        self.changed_at_ms = crate::time::unix_ms();
        match to {
            BreakerState::Closed | BreakerState::Disabled | BreakerState::MetricsOnly => {
                self.consecutive_failures = 0;
                self.clear_window();
                self.open_until = None;
            }
            BreakerState::Open => self.counters.opens += 1,
            BreakerState::HalfOpen | BreakerState::ForcedOpen => {}
        }
        if to != BreakerState::Open {
            self.open_until = None;
        }
        let label = origin.label();
        tracing::info!(from = from.as_str(), to = to.as_str(), %reason, origin = %label, "circuit breaker transition");
        *self
            .transition_counts
            .entry((to.as_str(), origin.kind()))
            .or_default() += 1;
        if self.transitions.len() == TRANSITION_HISTORY {
            self.transitions.pop_front();
        }
        self.transitions.push_back(Transition {
            at: crate::time::now_rfc3339(),
            from,
            to,
            reason: reason.clone(),
            origin: label,
        });
        if self.sync_attached && !matches!(origin, Origin::Remote(_)) {
            // Open breakers publish their deadline after `open` sets it.
            self.outbox.push(SyncEvent::Transition {
                to,
                open_for: None,
                reason,
                origin,
                threshold: self.settings.failure_threshold,
            });
        }
    }

    fn open(&mut self, now: Instant, reason: String, origin: Origin) {
        let until = now + self.settings.recovery_timeout;
        self.open_until = Some(until);
        self.transition(BreakerState::Open, reason, origin);
        // `transition` clears open_until for every state but Open; set it again
        // in case the breaker was already open (re-open from half-open).
        self.open_until = Some(until);
        self.stamp_deadline(now);
    }

    /// Puts the recovery deadline on the open transition waiting in the outbox.
    fn stamp_deadline(&mut self, now: Instant) {
        let open_for = self.open_until.map(|t| t.saturating_duration_since(now));
        if let Some(SyncEvent::Transition {
            to: BreakerState::Open,
            open_for: slot,
            ..
        }) = self.outbox.last_mut()
        {
            *slot = open_for;
        }
    }

    fn try_acquire(&mut self, now: Instant) -> Result<PermitKind, Rejected> {
        self.advance(now);
        match self.state {
            BreakerState::Closed | BreakerState::Disabled | BreakerState::MetricsOnly => {
                Ok(PermitKind::Normal)
            }
            BreakerState::HalfOpen
                if self.remote_probe.is_none()
                    && self.probes_in_flight < self.settings.half_open_max_calls =>
            {
                self.probes_in_flight += 1;
                Ok(PermitKind::Probe)
            }
            state => {
                self.counters.rejections += 1;
                let retry_after = match state {
                    // Past the deadline, waiting for the cluster's probe.
                    BreakerState::Open if self.open_until.is_some_and(|t| now >= t) => {
                        Some(Duration::from_secs(1))
                    }
                    BreakerState::Open => self.open_until.map(|t| t.saturating_duration_since(now)),
                    // Probes are running; their verdict is usually quick.
                    BreakerState::HalfOpen => Some(Duration::from_secs(1)),
                    _ => None,
                };
                Err(Rejected { state, retry_after })
            }
        }
    }

    fn record(&mut self, now: Instant, kind: PermitKind, outcome: CallOutcome, elapsed: Duration) {
        if kind == PermitKind::Probe {
            self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        }
        if outcome == CallOutcome::Ignored || self.state == BreakerState::Disabled {
            return;
        }
        let failed = outcome == CallOutcome::Failure;
        let slow = self
            .settings
            .slow_call_duration
            .is_some_and(|d| elapsed >= d);
        self.counters.calls += 1;
        if failed {
            self.counters.failures += 1;
        } else {
            self.counters.successes += 1;
        }
        if slow {
            self.counters.slow_calls += 1;
        }
        if self.state == BreakerState::HalfOpen && kind == PermitKind::Probe {
            if failed {
                self.open(now, "half-open probe failed".into(), Origin::Local);
            } else {
                self.probe_successes += 1;
                if self.probe_successes >= self.settings.half_open_max_calls {
                    self.transition(
                        BreakerState::Closed,
                        "half-open probes succeeded".into(),
                        Origin::Local,
                    );
                }
            }
            return;
        }
        // A late outcome of a call admitted before the breaker opened, or an
        // operator state that never trips: count it, change nothing.
        if !matches!(self.state, BreakerState::Closed | BreakerState::MetricsOnly) {
            return;
        }
        if failed {
            self.consecutive_failures += 1;
        } else {
            self.consecutive_failures = 0;
        }
        if self.sync_attached && self.state == BreakerState::Closed {
            if failed {
                self.failed_since_success = true;
                self.outbox.push(SyncEvent::Failure {
                    threshold: self.settings.failure_threshold,
                });
            } else if self.failed_since_success {
                self.failed_since_success = false;
                self.outbox.push(SyncEvent::SuccessAfterFailure);
            }
        }
        self.window_failures += u32::from(failed);
        self.window_slow += u32::from(slow);
        self.window.push_back(WindowEntry {
            at: now,
            failed,
            slow,
        });
        self.trim_window(now);
        if self.state == BreakerState::MetricsOnly {
            return;
        }
        if let Some(reason) = self.should_open() {
            self.open(now, reason, Origin::Local);
        }
    }

    fn trim_window(&mut self, now: Instant) {
        while self.window.len() > WINDOW_MAX_CALLS
            || self
                .window
                .front()
                .is_some_and(|e| now.saturating_duration_since(e.at) > self.settings.window)
        {
            if let Some(old) = self.window.pop_front() {
                self.window_failures -= u32::from(old.failed);
                self.window_slow -= u32::from(old.slow);
            }
        }
    }

    fn clear_window(&mut self) {
        self.window.clear();
        self.window_failures = 0;
        self.window_slow = 0;
    }

    fn window_counts(&self) -> (u32, u32, u32) {
        (
            self.window.len() as u32,
            self.window_failures,
            self.window_slow,
        )
    }

    fn should_open(&self) -> Option<String> {
        let s = &self.settings;
        if self.consecutive_failures >= s.failure_threshold {
            return Some(format!(
                "{} consecutive failures",
                self.consecutive_failures
            ));
        }
        let (calls, failures, slow) = self.window_counts();
        if calls < s.minimum_calls.max(1) {
            return None;
        }
        let rate = |n: u32| f64::from(n) / f64::from(calls);
        if let Some(t) = s.failure_rate_threshold
            && rate(failures) >= t
        {
            return Some(format!(
                "failure rate {:.0}% over {calls} calls (threshold {:.0}%)",
                rate(failures) * 100.0,
                t * 100.0
            ));
        }
        if let Some(t) = s.slow_call_rate_threshold
            && s.slow_call_duration.is_some()
            && rate(slow) >= t
        {
            return Some(format!(
                "slow-call rate {:.0}% over {calls} calls (threshold {:.0}%)",
                rate(slow) * 100.0,
                t * 100.0
            ));
        }
        None
    }

    /// A read-only view.
    pub fn snapshot(&mut self, now: Instant) -> BreakerSnapshot {
        self.advance(now);
        self.trim_window(now);
        let (window_calls, window_failures, window_slow_calls) = self.window_counts();
        BreakerSnapshot {
            state: self.state,
            consecutive_failures: self.consecutive_failures,
            window_calls,
            window_failures,
            window_slow_calls,
            probes_in_flight: self.probes_in_flight,
            seconds_until_half_open: match self.state {
                BreakerState::Open => self
                    .open_until
                    .map(|t| t.saturating_duration_since(now).as_secs_f64()),
                _ => None,
            },
            counters: self.counters,
            transitions: self.transitions.iter().cloned().collect(),
            failure_threshold: self.settings.failure_threshold,
            recovery_timeout_seconds: self.settings.recovery_timeout.as_secs_f64(),
            half_open_max_calls: self.settings.half_open_max_calls,
            probe_on: match (&self.state, &self.remote_probe) {
                (BreakerState::HalfOpen, Some((id, _))) => Some(id.clone()),
                _ => None,
            },
        }
    }
}

/// Operator actions on a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerCommand {
    /// Back to closed, counters of the current episode cleared.
    Reset,
    /// Reject every call until reset.
    ForceOpen,
    /// Closed (normal operation), even if it was forced open or disabled.
    ForceClosed,
    /// Permit every call, record nothing.
    Disable,
    /// Record, never open.
    MetricsOnly,
}

/// A breaker shared by the request tasks of one (provider, operation).
#[derive(Debug)]
pub struct CircuitBreaker {
    name: Arc<str>,
    core: Mutex<BreakerCore>,
    /// Where local transitions and failures go when cluster sharing is on.
    sync: std::sync::OnceLock<SyncSender>,
}

/// What the cluster task needs to know about one breaker to rebuild the
/// shared picture after Redis comes back.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedView {
    /// Current state.
    pub state: BreakerState,
    /// For `open`: time left until the recovery deadline.
    pub open_for: Option<Duration>,
    /// Wall-clock milliseconds of the last transition (0: none).
    pub changed_at_ms: u64,
    /// The last transition was an instance-scoped operator command.
    pub local_only: bool,
    /// The reason of the last transition.
    pub reason: String,
    /// The failure threshold in force.
    pub threshold: u32,
}

impl CircuitBreaker {
    /// A closed breaker named e.g. `openai:summarize`.
    pub fn new(name: impl Into<String>, settings: BreakerSettings) -> Arc<CircuitBreaker> {
        let name: String = name.into();
        Arc::new(CircuitBreaker {
            name: name.into(),
            core: Mutex::new(BreakerCore::new(settings)),
            sync: std::sync::OnceLock::new(),
        })
    }

    /// The breaker's name (`provider:operation`).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn core(&self) -> MutexGuard<'_, BreakerCore> {
        // A panic while holding this lock cannot leave the core inconsistent
        // in a way worse than a stale counter, so poisoning is ignored.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the core, then hands whatever it queued for the cluster
    /// to the sync channel once the lock is released (never waits: a full
    /// channel drops the event, and the cluster task rebuilds the picture).
    fn with_core<R>(&self, f: impl FnOnce(&mut BreakerCore) -> R) -> R {
        let (result, events) = {
            let mut core = self.core();
            let result = f(&mut core);
            let events = if core.outbox.is_empty() {
                Vec::new()
            } else {
                std::mem::take(&mut core.outbox)
            };
            (result, events)
        };
        if !events.is_empty()
            && let Some(tx) = self.sync.get()
        {
            for event in events {
                if tx.tx.try_send((self.name.clone(), event)).is_err() {
                    tx.dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        result
    }

    /// Connects this breaker to the cluster task: from now on its local
    /// transitions and failures are shared. Set once.
    pub fn attach_sync(&self, tx: SyncSender) {
        if self.sync.set(tx).is_ok() {
            self.core().sync_attached = true;
        }
    }

    /// Asks to make a call now.
    pub fn try_acquire(self: &Arc<Self>) -> Result<BreakerPermit, Rejected> {
        let kind = self.with_core(|core| core.try_acquire(Instant::now()))?;
        Ok(BreakerPermit {
            breaker: self.clone(),
            kind,
            started: Instant::now(),
            recorded: false,
        })
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.with_core(|core| core.state(Instant::now()))
    }

    /// A read-only view.
    pub fn snapshot(&self) -> BreakerSnapshot {
        self.with_core(|core| core.snapshot(Instant::now()))
    }

    /// Transitions by (new state, origin kind) since start, for metrics.
    pub fn transition_counts(&self) -> Vec<((&'static str, &'static str), u64)> {
        self.core()
            .transition_counts
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    /// Applies an operator command. `cluster` false marks it instance-scoped:
    /// it is not shared with the other instances.
    pub fn command(&self, command: BreakerCommand, who: &str, cluster: bool) {
        self.with_core(|core| {
            let reason = format!(
                "operator: {} by {who}",
                match command {
                    BreakerCommand::Reset => "reset",
                    BreakerCommand::ForceOpen => "force-open",
                    BreakerCommand::ForceClosed => "force-closed",
                    BreakerCommand::Disable => "disable",
                    BreakerCommand::MetricsOnly => "metrics-only",
                }
            );
            let to = match command {
                BreakerCommand::Reset | BreakerCommand::ForceClosed => BreakerState::Closed,
                BreakerCommand::ForceOpen => BreakerState::ForcedOpen,
                BreakerCommand::Disable => BreakerState::Disabled,
                BreakerCommand::MetricsOnly => BreakerState::MetricsOnly,
            };
            if command == BreakerCommand::Reset {
                core.consecutive_failures = 0;
                core.clear_window();
            }
            let attached = core.sync_attached;
            // Already in that state here: nothing changes locally, but a
            // cluster-wide command must still reach the instances that differ.
            if core.state == to && attached && cluster {
                core.outbox.push(SyncEvent::Transition {
                    to,
                    open_for: None,
                    reason: reason.clone(),
                    origin: Origin::Operator,
                    threshold: core.settings.failure_threshold,
                });
            }
            core.sync_attached = attached && cluster;
            core.transition(to, reason, Origin::Operator);
            core.sync_attached = attached;
            core.local_only = !cluster;
        });
    }

    /// Replaces the tunables (a preset switch); the state is kept.
    pub fn reconfigure(&self, settings: BreakerSettings) {
        self.core().settings = settings;
    }

    /// Earliest time an open breaker admits a probe again.
    pub fn retry_after(&self) -> Option<Duration> {
        let now = Instant::now();
        self.with_core(|core| {
            core.advance(now);
            match core.state {
                BreakerState::Open => core.open_until.map(|t| t.saturating_duration_since(now)),
                _ => None,
            }
        })
    }

    /// Cluster task: whether the shared picture is live. Losing it makes the
    /// breaker run on its own at once (a probe elsewhere no longer blocks it).
    pub fn set_shared(&self, shared: bool) {
        self.with_core(|core| {
            core.shared = shared;
            if !shared {
                core.remote_probe = None;
                core.advance(Instant::now());
            }
        });
    }

    /// Cluster task: a transition published by instance `from`. `open_for`
    /// is the time left until that instance's recovery deadline.
    pub fn apply_remote(
        &self,
        to: BreakerState,
        open_for: Option<Duration>,
        from: &str,
        reason: &str,
    ) {
        let now = Instant::now();
        self.with_core(|core| {
            let origin = Origin::Remote(from.to_string());
            let reason = format!("{reason} (on {from})");
            match to {
                BreakerState::Open => {
                    let until = now + open_for.unwrap_or(core.settings.recovery_timeout);
                    core.open_until = Some(until);
                    core.transition(BreakerState::Open, reason, origin);
                    core.open_until = Some(until);
                }
                BreakerState::HalfOpen => {
                    core.transition(BreakerState::HalfOpen, reason, origin);
                    core.remote_probe = Some((from.to_string(), now));
                }
                other => {
                    if other == BreakerState::Closed {
                        core.consecutive_failures = 0;
                        core.failed_since_success = false;
                    }
                    core.transition(other, reason, origin);
                }
            }
        });
    }

    /// Cluster task: whether this instance should try for the probe lease:
    /// open past its recovery deadline, or half-open with a probe elsewhere
    /// that has not reported for longer than `lease` (its instance died).
    pub fn probe_due(&self, lease: Duration) -> bool {
        let now = Instant::now();
        let core = self.core();
        if !core.shared {
            return false;
        }
        match (core.state, &core.remote_probe) {
            (BreakerState::Open, _) => core.open_until.is_some_and(|t| now >= t),
            (BreakerState::HalfOpen, Some((_, since))) => {
                now.saturating_duration_since(*since) > lease
            }
            _ => false,
        }
    }

    /// Cluster task: this instance won the probe lease; admit the half-open
    /// probes here (the transition is published, so the others wait).
    pub fn grant_probe(&self) {
        self.with_core(|core| {
            if matches!(core.state, BreakerState::Open | BreakerState::HalfOpen) {
                core.transition(
                    BreakerState::HalfOpen,
                    "recovery timeout elapsed; this instance holds the cluster probe lease".into(),
                    Origin::Local,
                );
            }
        });
    }

    /// Cluster task: the lease is held elsewhere; note when, so a dead
    /// prober is noticed after the lease expires.
    pub fn probe_elsewhere(&self, holder: &str) {
        let now = Instant::now();
        self.with_core(|core| {
            if core.state == BreakerState::HalfOpen && core.remote_probe.is_none() {
                return;
            }
            if core.state == BreakerState::HalfOpen {
                core.remote_probe = Some((holder.to_string(), now));
            }
        });
    }

    /// Cluster task: the cluster's consecutive-failure count reached the
    /// threshold; open here if still closed.
    pub fn open_shared(&self, count: u64) {
        let now = Instant::now();
        self.with_core(|core| {
            if core.state == BreakerState::Closed {
                core.open(
                    now,
                    format!("{count} consecutive failures across the cluster"),
                    Origin::Local,
                );
            }
        });
    }

    /// Cluster task: what to publish or compare when the picture is rebuilt.
    pub fn shared_view(&self) -> SharedView {
        let now = Instant::now();
        let core = self.core();
        SharedView {
            state: core.state,
            open_for: match core.state {
                BreakerState::Open => core.open_until.map(|t| t.saturating_duration_since(now)),
                _ => None,
            },
            changed_at_ms: core.changed_at_ms,
            local_only: core.local_only,
            reason: core
                .transitions
                .back()
                .map(|t| t.reason.clone())
                .unwrap_or_default(),
            threshold: core.settings.failure_threshold,
        }
    }
}

/// Permission for one call. Record its outcome with [`BreakerPermit::record`];
/// dropping it unrecorded releases the slot and counts as nothing.
#[derive(Debug)]
pub struct BreakerPermit {
    breaker: Arc<CircuitBreaker>,
    kind: PermitKind,
    started: Instant,
    recorded: bool,
}

impl BreakerPermit {
    /// True for a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.kind == PermitKind::Probe
    }

    /// Records how the call ended; the elapsed time since the permit was
    /// granted decides whether it was slow.
    pub fn record(mut self, outcome: CallOutcome) {
        self.recorded = true;
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.started);
        let kind = self.kind;
        self.breaker
            .with_core(|core| core.record(now, kind, outcome, elapsed));
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if !self.recorded {
            let now = Instant::now();
            let kind = self.kind;
            self.breaker
                .with_core(|core| core.record(now, kind, CallOutcome::Ignored, Duration::ZERO));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(threshold: u32, recovery_s: u64) -> BreakerSettings {
        BreakerSettings {
            failure_threshold: threshold,
            recovery_timeout: Duration::from_secs(recovery_s),
            ..Default::default()
        }
    }

    fn fail(b: &Arc<CircuitBreaker>) {
        b.try_acquire()
            .expect("permitted")
            .record(CallOutcome::Failure);
    }

    fn succeed(b: &Arc<CircuitBreaker>) {
        b.try_acquire()
            .expect("permitted")
            .record(CallOutcome::Success);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_exactly_threshold_consecutive_failures() {
        let b = CircuitBreaker::new("p:op", settings(3, 30));
        fail(&b);
        fail(&b);
        succeed(&b); // resets the streak
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        let rejected = b.try_acquire().unwrap_err();
        assert_eq!(rejected.state, BreakerState::Open);
        assert_eq!(rejected.retry_after, Some(Duration::from_secs(30)));
        let snap = b.snapshot();
        assert_eq!(snap.counters.opens, 1);
        assert_eq!(snap.counters.rejections, 1);
        assert_eq!(snap.counters.failures, 5);
        assert_eq!(
            snap.transitions.last().unwrap().reason,
            "3 consecutive failures"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_admits_exactly_the_probes_and_closes_on_success() {
        let mut s = settings(1, 30);
        s.half_open_max_calls = 2;
        let b = CircuitBreaker::new("p:op", s);
        fail(&b);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(b.try_acquire().is_err(), "still open before the timeout");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let p1 = b.try_acquire().unwrap();
        let p2 = b.try_acquire().unwrap();
        assert!(p1.is_probe() && p2.is_probe());
        assert!(b.try_acquire().is_err(), "a third probe is refused");
        p1.record(CallOutcome::Success);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        p2.record(CallOutcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_a_full_recovery_timeout() {
        let b = CircuitBreaker::new("p:op", settings(1, 10));
        fail(&b);
        tokio::time::advance(Duration::from_secs(10)).await;
        fail(&b); // the probe
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.retry_after(), Some(Duration::from_secs(10)));
        assert_eq!(b.snapshot().counters.opens, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_frees_its_slot() {
        let b = CircuitBreaker::new("p:op", settings(1, 10));
        fail(&b);
        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err());
        drop(probe); // the client went away
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.try_acquire().expect("slot released");
        probe.record(CallOutcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn ignored_outcomes_do_not_count() {
        let b = CircuitBreaker::new("p:op", settings(2, 10));
        for _ in 0..10 {
            b.try_acquire().unwrap().record(CallOutcome::Ignored);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().counters.calls, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn failure_rate_rule_opens_once_minimum_calls_are_seen() {
        let mut s = settings(100, 10);
        s.failure_rate_threshold = Some(0.5);
        s.minimum_calls = 10;
        let b = CircuitBreaker::new("p:op", s);
        for i in 0..9 {
            if i % 2 == 0 { fail(&b) } else { succeed(&b) }
        }
        assert_eq!(b.state(), BreakerState::Closed, "below minimum_calls");
        fail(&b); // 10 calls, 6 failures
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_calls_open_the_breaker_and_old_calls_leave_the_window() {
        let mut s = settings(100, 10);
        s.slow_call_duration = Some(Duration::from_secs(2));
        s.slow_call_rate_threshold = Some(0.8);
        s.minimum_calls = 5;
        s.window = Duration::from_secs(60);
        let b = CircuitBreaker::new("p:op", s);
        for _ in 0..4 {
            let p = b.try_acquire().unwrap();
            tokio::time::advance(Duration::from_secs(3)).await;
            p.record(CallOutcome::Success);
        }
        // The window forgets calls older than 60 s.
        tokio::time::advance(Duration::from_secs(61)).await;
        succeed(&b);
        assert_eq!(b.snapshot().window_calls, 1);
        for _ in 0..3 {
            let p = b.try_acquire().unwrap();
            tokio::time::advance(Duration::from_secs(3)).await;
            p.record(CallOutcome::Success);
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "4 calls: below minimum_calls"
        );
        let p = b.try_acquire().unwrap();
        tokio::time::advance(Duration::from_secs(3)).await;
        p.record(CallOutcome::Success);
        assert_eq!(b.state(), BreakerState::Open, "4 of 5 calls slow = 80 %");
        assert!(
            b.snapshot()
                .transitions
                .last()
                .unwrap()
                .reason
                .contains("slow-call rate")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn operator_states() {
        let b = CircuitBreaker::new("p:op", settings(1, 10));
        b.command(BreakerCommand::ForceOpen, "test", true);
        let r = b.try_acquire().unwrap_err();
        assert_eq!(r.state, BreakerState::ForcedOpen);
        tokio::time::advance(Duration::from_secs(1000)).await;
        assert_eq!(
            b.state(),
            BreakerState::ForcedOpen,
            "forced open never recovers alone"
        );

        b.command(BreakerCommand::Disable, "test", true);
        for _ in 0..5 {
            fail(&b);
        }
        assert_eq!(b.state(), BreakerState::Disabled);

        b.command(BreakerCommand::MetricsOnly, "test", true);
        for _ in 0..5 {
            fail(&b);
        }
        assert_eq!(b.state(), BreakerState::MetricsOnly);
        assert_eq!(b.snapshot().counters.failures, 5);

        b.command(BreakerCommand::ForceClosed, "test", true);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        b.command(BreakerCommand::Reset, "ops", true);
        assert_eq!(b.state(), BreakerState::Closed);
        let t = b.snapshot().transitions;
        assert_eq!(t.last().unwrap().reason, "operator: reset by ops");
    }

    #[tokio::test(start_paused = true)]
    async fn late_outcomes_after_opening_change_nothing() {
        let b = CircuitBreaker::new("p:op", settings(1, 10));
        let early = b.try_acquire().unwrap();
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        early.record(CallOutcome::Success);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn window_counts_track_the_calls_of_the_last_window() {
        let mut s = settings(1000, 10);
        s.slow_call_duration = Some(Duration::from_secs(1));
        let b = CircuitBreaker::new("p:op", s);
        // (time of call, failed, slow) as a reference model.
        let mut model: Vec<(Duration, bool, bool)> = Vec::new();
        let mut now = Duration::ZERO;
        let mut seed = 7u64;
        for _ in 0..400 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let failed = seed >> 62 == 0;
            let slow = (seed >> 60) & 3 == 1;
            let step = Duration::from_millis((seed >> 40) % 900);
            let p = b.try_acquire().unwrap();
            if slow {
                tokio::time::advance(Duration::from_secs(1)).await;
                now += Duration::from_secs(1);
            }
            p.record(if failed {
                CallOutcome::Failure
            } else {
                CallOutcome::Success
            });
            model.push((now, failed, slow));
            tokio::time::advance(step).await;
            now += step;
        }
        let snap = b.snapshot();
        let recent: Vec<_> = model
            .iter()
            .filter(|(t, _, _)| now - *t <= Duration::from_secs(60))
            .collect();
        assert_eq!(snap.window_calls as usize, recent.len());
        assert_eq!(
            snap.window_failures as usize,
            recent.iter().filter(|c| c.1).count()
        );
        assert_eq!(
            snap.window_slow_calls as usize,
            recent.iter().filter(|c| c.2).count()
        );
    }
}
