//! keel's one health model: every health surface (`/v1/health`,
//! `/internal/monitoring/health`, `/internal/resilience/health`, the
//! dashboard, and any other that wants a verdict) calls [`evaluate`] and
//! shows its `status` and `reasons`, so they cannot tell different stories.
//!
//! The verdict is computed from what the engine publishes (actor statuses,
//! breaker states, Redis link states, the provider table): no mailbox round
//! trip, no I/O, cheap enough for a probe. [`Facts`] is that reading;
//! [`assess`] applies the rules to it, so the rules are unit-tested without
//! an engine.
//!
//! # The rules
//!
//! Each finding is a [`Reason`] with the component it is about and the
//! status it implies; the overall status is the worst of them (`healthy`
//! when there is none).
//!
//! | component | finding | status |
//! |---|---|---|
//! | `actors` | the engine supervisor gave up (a child kept failing) | unhealthy |
//! | `actors` | a direct child of the supervisor is not running (restarting) | unhealthy |
//! | `providers` | no provider configured | unhealthy |
//! | `providers` | a provider's actor is not running (its published client still serves) | degraded |
//! | `providers` | a provider's upstream failed its latest health probe (calls to it may fail and fall back) | degraded |
//! | `circuit_breakers` | a breaker is open, forced open or half-open (calls go to the fallback) | degraded |
//! | `circuit_breakers` | an operation has no provider whose breaker admits calls (its requests fail fast with 503) | degraded |
//! | `redis` | a configured Redis link (cache or rate limiter) is unavailable (memory tiers answer) | degraded |
//! | `redis` | the async jobs store is unavailable (submissions and polls answer 503) | degraded |
//! | `redis` | the client-key store is unavailable (this instance's copy of the keys and revocations answers) | degraded |
//! | `identity` | the latest JWKS refresh failed (tokens are verified with the last good key set) | degraded |
//! | `server` | the server is draining (shutting down) | degraded |
//!
//! `unhealthy` means keel cannot do its job and needs a restart or an
//! operator; `degraded` means it answers, with less than full guarantees
//! (fallback answers, memory-only cache or limits, fast failures for one
//! operation). A breaker an operator *disabled* or set to *metrics only* is
//! a choice, not a finding.

use crate::engine::Engine;
use crate::identity::Authenticator;
use crate::job::Operation;
use crate::providers::{ProviderKind, Reachability};
use crate::redis_link::RedisStatus;
use crate::resilience::breaker::BreakerState;
use serde::Serialize;

/// The verdict, worst last so `max` picks the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = HealthStatus)]
pub enum Status {
    /// Nothing to report.
    Healthy,
    /// Answering, with reduced guarantees (see the reasons).
    Degraded,
    /// Not able to do its job (see the reasons).
    Unhealthy,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = HealthComponent)]
pub enum Component {
    /// The supervised actor tree.
    Actors,
    /// The provider chain and its actors.
    Providers,
    /// The circuit breakers.
    CircuitBreakers,
    /// The Redis links (cache, rate limiter).
    Redis,
    /// The HTTP server itself (draining).
    Server,
    /// Authentication: the JWT key set.
    Identity,
}

/// One finding: why the status is not `healthy`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = HealthReason)]
pub struct Reason {
    /// What it is about.
    pub component: Component,
    /// The status this finding implies on its own.
    pub status: Status,
    /// A stable machine-readable code, e.g. `breaker_open`, `redis_unavailable`.
    pub code: &'static str,
    /// What an operator reads.
    pub message: String,
}

/// One component's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = HealthCheck)]
pub struct Check {
    /// The worst status of its findings (`healthy` without any).
    pub status: Status,
    /// Its findings' messages, in the order of `reasons`.
    pub reasons: Vec<String>,
}

/// Every component's verdict (each present, healthy ones too).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = HealthChecks)]
pub struct Checks {
    /// The actor tree.
    pub actors: Check,
    /// The provider chain.
    pub providers: Check,
    /// The circuit breakers.
    pub circuit_breakers: Check,
    /// The Redis links.
    pub redis: Check,
    /// The server (draining).
    pub server: Check,
    /// Authentication (the JWKS refresh).
    pub identity: Check,
}

/// The verdict and why, as every surface shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The worst status of `reasons`.
    pub status: Status,
    /// Every finding, worst first (then by component).
    pub reasons: Vec<Reason>,
    /// The same findings, per component.
    pub checks: Checks,
}

impl HealthReport {
    /// True when the status is `healthy`.
    pub fn is_healthy(&self) -> bool {
        self.status == Status::Healthy
    }

    /// Actors run and no breaker finding: the `resilience_healthy` flag of
    /// `/v1/health` and the `healthy` flag of `/internal/resilience/health`.
    pub fn resilience_healthy(&self) -> bool {
        self.checks.actors.status == Status::Healthy
            && self.checks.circuit_breakers.status == Status::Healthy
    }

    /// The reasons' messages alone (the `degraded_reasons` list of
    /// `/v1/health`).
    pub fn messages(&self) -> Vec<String> {
        self.reasons.iter().map(|r| r.message.clone()).collect()
    }
}

/// One configured provider, as the health model sees it.
#[derive(Debug, Clone)]
pub struct ProviderFact {
    /// The provider.
    pub kind: ProviderKind,
    /// Its actor is running.
    pub actor_running: bool,
    /// Its upstream's latest probe verdict (published by its actor).
    pub upstream: Reachability,
    /// Why the latest probe failed, when it did.
    pub probe_error: Option<String>,
}

/// Everything [`assess`] looks at, read from the engine's published views.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Why the engine is dead, when its supervisor gave up.
    pub engine_failure: Option<String>,
    /// The root supervisor runs.
    pub supervisor_running: bool,
    /// Direct children of the supervisor that are not running, by name.
    pub actors_down: Vec<&'static str>,
    /// The provider chain, primary first.
    pub providers: Vec<ProviderFact>,
    /// Every breaker, as `(provider, operation, state)`.
    pub breakers: Vec<(ProviderKind, Operation, BreakerState)>,
    /// The cache's Redis link, when configured.
    pub cache_redis: Option<RedisStatus>,
    /// The rate limiter's Redis link, when configured.
    pub limiter_redis: Option<RedisStatus>,
    /// Shutdown has begun.
    pub draining: bool,
    /// The async jobs store's Redis link, when jobs use Redis.
    pub jobs_redis: Option<RedisStatus>,
    /// The client-key store's Redis link, when configured.
    pub identity_redis: Option<RedisStatus>,
    /// The JWKS refresh, when JWT verification uses a JWKS URL.
    pub jwks: Option<JwksFact>,
}

/// The JWKS refresh, as the health model sees it.
#[derive(Debug, Clone, Default)]
pub struct JwksFact {
    /// The latest refresh failed.
    pub failing: bool,
    /// Its error.
    pub last_error: Option<String>,
    /// `kid`s still in force (the last good set).
    pub kids: usize,
}

impl Facts {
    /// Reads the facts from a running engine (no I/O, no mailbox).
    pub fn gather(engine: &Engine) -> Facts {
        let resilience = engine.resilience();
        let providers: Vec<ProviderFact> = engine
            .providers()
            .chain()
            .iter()
            .map(|slot| ProviderFact {
                kind: slot.provider.kind(),
                actor_running: slot
                    .actor
                    .as_ref()
                    .is_some_and(|a| a.get_status() == ractor::ActorStatus::Running),
                upstream: slot.health.reachability(),
                probe_error: slot.health.last_error(),
            })
            .collect();
        // Only breakers that exist (reading never creates one).
        let breakers = resilience
            .breakers()
            .iter()
            .filter_map(|b| {
                let (kind, op) = b.name().split_once(':')?;
                Some((kind.parse().ok()?, op.parse().ok()?, b.state()))
            })
            .collect();
        Facts {
            engine_failure: engine.failure(),
            supervisor_running: engine.supervisor_running(),
            actors_down: engine
                .actor_statuses()
                .into_iter()
                .filter(|(_, s)| *s != Some(ractor::ActorStatus::Running))
                .map(|(name, _)| name)
                .collect(),
            providers,
            breakers,
            cache_redis: engine.cache().redis_status(),
            limiter_redis: engine.rate_limiter().stats().redis,
            draining: engine.is_draining(),
            jobs_redis: match engine.jobs().store() {
                crate::jobs::store::Store::Redis(r) => Some(r.link_status()),
                crate::jobs::store::Store::Memory(_) => None,
            },
            identity_redis: None,
            jwks: None,
        }
    }

    /// Adds what the authenticator publishes (its Redis link, the JWKS
    /// refresh), which lives next to the engine rather than in it.
    pub fn with_identity(mut self, identity: &Authenticator) -> Facts {
        self.identity_redis = identity.redis_status();
        self.jwks = identity.jwt.as_ref().and_then(|jwt| {
            let status = jwt.status();
            (status.source == "jwks").then_some(JwksFact {
                failing: status.failing,
                last_error: status.last_error,
                kids: status.kids.len(),
            })
        });
        self
    }
}

/// The instance's health: [`assess`] over [`Facts::gather`] and the
/// authenticator's facts.
pub fn evaluate(engine: &Engine, identity: &Authenticator) -> HealthReport {
    assess(&Facts::gather(engine).with_identity(identity))
}

fn blocks(state: BreakerState) -> bool {
    matches!(state, BreakerState::Open | BreakerState::ForcedOpen)
}

/// Applies the rules of the module doc to `facts`.
pub fn assess(facts: &Facts) -> HealthReport {
    use Component as C;
    use Status::{Degraded, Unhealthy};
    let mut reasons = Vec::new();
    let mut add = |component, status, code, message: String| {
        reasons.push(Reason {
            component,
            status,
            code,
            message,
        })
    };

    // Actors.
    if let Some(why) = &facts.engine_failure {
        add(
            C::Actors,
            Unhealthy,
            "engine_stopped",
            format!("the engine stopped: {why}"),
        );
    } else if !facts.supervisor_running {
        add(
            C::Actors,
            Unhealthy,
            "engine_stopped",
            "the engine supervisor is not running".into(),
        );
    }
    if facts.engine_failure.is_none() && facts.supervisor_running {
        for name in &facts.actors_down {
            add(
                C::Actors,
                Unhealthy,
                "actor_down",
                format!("actor {name} is not running (being restarted)"),
            );
        }
    }

    // Providers.
    if facts.providers.is_empty() {
        add(
            C::Providers,
            Unhealthy,
            "no_provider",
            "no provider is configured".into(),
        );
    }
    for p in facts.providers.iter().filter(|p| !p.actor_running) {
        add(
            C::Providers,
            Degraded,
            "provider_actor_down",
            format!(
                "provider actor {} is not running (being restarted; its last client still serves)",
                p.kind.as_str()
            ),
        );
    }

    for p in facts
        .providers
        .iter()
        .filter(|p| p.upstream == Reachability::Unreachable)
    {
        add(
            C::Providers,
            Degraded,
            "provider_unreachable",
            format!(
                "provider {} failed its health probe ({}): its calls may fail and fall back",
                p.kind.as_str(),
                p.probe_error.as_deref().unwrap_or("no answer")
            ),
        );
    }

    // Circuit breakers: each one not letting traffic through normally, then
    // each operation no provider admits.
    for (kind, op, state) in &facts.breakers {
        let what = match state {
            BreakerState::Open => "open: calls skip this provider",
            BreakerState::ForcedOpen => "forced open by an operator: calls skip this provider",
            BreakerState::HalfOpen => "half-open: probing the provider with limited calls",
            _ => continue,
        };
        add(
            C::CircuitBreakers,
            Degraded,
            match state {
                BreakerState::HalfOpen => "breaker_half_open",
                _ => "breaker_open",
            },
            format!(
                "circuit breaker {}:{} is {what}",
                kind.as_str(),
                op.as_str()
            ),
        );
    }
    if !facts.providers.is_empty() {
        for op in Operation::ALL {
            let mut of_op = facts.breakers.iter().filter(|(_, o, _)| *o == op);
            if of_op.clone().next().is_some() && of_op.all(|(_, _, s)| blocks(*s)) {
                add(
                    C::CircuitBreakers,
                    Degraded,
                    "operation_unavailable",
                    format!(
                        "{}: every provider's breaker is open, requests fail fast with 503",
                        op.as_str()
                    ),
                );
            }
        }
    }

    // Redis.
    for (what, consequence, link) in [
        (
            "the cache",
            "serving from the memory tier",
            &facts.cache_redis,
        ),
        (
            "the rate limiter",
            "serving from the memory tier",
            &facts.limiter_redis,
        ),
        (
            "async jobs",
            "submissions and polls answer 503 until it returns",
            &facts.jobs_redis,
        ),
        (
            "client keys",
            "this instance's copy of the keys and revocations answers",
            &facts.identity_redis,
        ),
    ] {
        if let Some(link) = link
            && link.status == "unavailable"
        {
            add(
                C::Redis,
                Degraded,
                "redis_unavailable",
                format!(
                    "redis unavailable for {what}: {consequence}{}",
                    link.last_error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            );
        }
    }

    // Identity.
    if let Some(jwks) = &facts.jwks
        && jwks.failing
    {
        add(
            C::Identity,
            Degraded,
            "jwks_refresh_failing",
            format!(
                "the JWKS refresh is failing: tokens are verified with the last good key set ({} keys){}",
                jwks.kids,
                jwks.last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        );
    }

    // Server.
    if facts.draining {
        add(
            C::Server,
            Degraded,
            "draining",
            "draining: shutting down, finishing in-flight requests".into(),
        );
    }

    // Worst first; the sort is stable, so rule order is kept within a status.
    reasons.sort_by_key(|r| std::cmp::Reverse(r.status));
    let status = reasons
        .iter()
        .map(|r| r.status)
        .max()
        .unwrap_or(Status::Healthy);
    let check = |component: Component| {
        let mine: Vec<&Reason> = reasons
            .iter()
            .filter(|r| r.component == component)
            .collect();
        Check {
            status: mine
                .iter()
                .map(|r| r.status)
                .max()
                .unwrap_or(Status::Healthy),
            reasons: mine.iter().map(|r| r.message.clone()).collect(),
        }
    };
    let checks = Checks {
        actors: check(C::Actors),
        providers: check(C::Providers),
        circuit_breakers: check(C::CircuitBreakers),
        redis: check(C::Redis),
        server: check(C::Server),
        identity: check(C::Identity),
    };
    HealthReport {
        status,
        reasons,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy_facts() -> Facts {
        let providers = vec![
            ProviderFact {
                kind: ProviderKind::OpenAi,
                actor_running: true,
                upstream: Reachability::Reachable,
                probe_error: None,
            },
            ProviderFact {
                kind: ProviderKind::Local,
                actor_running: true,
                upstream: Reachability::Reachable,
                probe_error: None,
            },
        ];
        let breakers = providers
            .iter()
            .flat_map(|p| {
                Operation::ALL
                    .into_iter()
                    .map(|op| (p.kind, op, BreakerState::Closed))
            })
            .collect();
        Facts {
            supervisor_running: true,
            providers,
            breakers,
            ..Facts::default()
        }
    }

    fn set(facts: &mut Facts, kind: ProviderKind, op: Operation, state: BreakerState) {
        for b in &mut facts.breakers {
            if b.0 == kind && b.1 == op {
                b.2 = state;
            }
        }
    }

    fn redis(status: &'static str) -> RedisStatus {
        RedisStatus {
            status,
            url: "redis://127.0.0.1:1".into(),
            commands: 1,
            failures: 1,
            skipped: 0,
            last_latency_ms: None,
            last_error: Some("connection refused".into()),
        }
    }

    #[test]
    fn nothing_to_report_is_healthy_with_every_check_present() {
        let r = assess(&healthy_facts());
        assert_eq!(r.status, Status::Healthy);
        assert!(r.reasons.is_empty());
        assert!(r.resilience_healthy());
        let json = serde_json::to_value(&r).unwrap();
        for c in ["actors", "providers", "circuit_breakers", "redis", "server"] {
            assert_eq!(json["checks"][c]["status"], "healthy", "{json}");
        }
    }

    #[test]
    fn an_open_breaker_degrades_and_names_itself() {
        let mut f = healthy_facts();
        set(
            &mut f,
            ProviderKind::OpenAi,
            Operation::Summarize,
            BreakerState::ForcedOpen,
        );
        let r = assess(&f);
        assert_eq!(r.status, Status::Degraded);
        assert_eq!(r.reasons.len(), 1, "{r:?}");
        assert_eq!(r.reasons[0].component, Component::CircuitBreakers);
        assert_eq!(r.reasons[0].code, "breaker_open");
        assert!(r.reasons[0].message.contains("openai:summarize"));
        assert!(!r.resilience_healthy());
        assert_eq!(r.checks.circuit_breakers.status, Status::Degraded);
        assert_eq!(r.checks.actors.status, Status::Healthy);
    }

    #[test]
    fn an_operation_no_provider_admits_is_reported_once() {
        let mut f = healthy_facts();
        set(
            &mut f,
            ProviderKind::OpenAi,
            Operation::Qa,
            BreakerState::Open,
        );
        set(
            &mut f,
            ProviderKind::Local,
            Operation::Qa,
            BreakerState::Open,
        );
        let r = assess(&f);
        assert_eq!(r.status, Status::Degraded);
        let codes: Vec<_> = r.reasons.iter().map(|r| r.code).collect();
        assert_eq!(
            codes,
            ["breaker_open", "breaker_open", "operation_unavailable"]
        );
        // Half-open still admits probes: not unavailable.
        set(
            &mut f,
            ProviderKind::Local,
            Operation::Qa,
            BreakerState::HalfOpen,
        );
        let codes: Vec<_> = assess(&f).reasons.iter().map(|r| r.code).collect();
        assert_eq!(codes, ["breaker_open", "breaker_half_open"]);
    }

    #[test]
    fn operator_choices_are_not_findings() {
        let mut f = healthy_facts();
        set(
            &mut f,
            ProviderKind::OpenAi,
            Operation::Sentiment,
            BreakerState::Disabled,
        );
        set(
            &mut f,
            ProviderKind::Local,
            Operation::Sentiment,
            BreakerState::MetricsOnly,
        );
        assert_eq!(assess(&f).status, Status::Healthy);
    }

    #[test]
    fn redis_down_degrades_without_touching_resilience() {
        let mut f = healthy_facts();
        f.cache_redis = Some(redis("unavailable"));
        f.limiter_redis = Some(redis("connected"));
        let r = assess(&f);
        assert_eq!(r.status, Status::Degraded);
        assert_eq!(r.reasons.len(), 1);
        assert!(
            r.reasons[0]
                .message
                .contains("redis unavailable for the cache")
        );
        assert!(r.resilience_healthy());
    }

    #[test]
    fn a_down_job_store_or_key_store_degrades_redis() {
        let mut f = healthy_facts();
        f.jobs_redis = Some(redis("unavailable"));
        f.identity_redis = Some(redis("unknown"));
        let r = assess(&f);
        assert_eq!(r.status, Status::Degraded);
        assert_eq!(r.reasons.len(), 1, "{r:?}");
        assert!(r.reasons[0].message.contains("async jobs"), "{r:?}");
        assert_eq!(r.checks.redis.status, Status::Degraded);
        f.jobs_redis = Some(redis("connected"));
        f.identity_redis = Some(redis("unavailable"));
        let r = assess(&f);
        assert!(r.reasons[0].message.contains("client keys"), "{r:?}");
    }

    #[test]
    fn a_failing_jwks_refresh_degrades_identity_until_one_succeeds() {
        let mut f = healthy_facts();
        f.jwks = Some(JwksFact {
            failing: true,
            last_error: Some("HTTP 503".into()),
            kids: 2,
        });
        let r = assess(&f);
        assert_eq!(r.status, Status::Degraded);
        assert_eq!(r.reasons[0].code, "jwks_refresh_failing");
        assert!(r.reasons[0].message.contains("2 keys"), "{r:?}");
        assert!(r.reasons[0].message.contains("HTTP 503"), "{r:?}");
        assert_eq!(r.checks.identity.status, Status::Degraded);
        assert!(r.resilience_healthy(), "not a resilience finding");
        f.jwks = Some(JwksFact {
            failing: false,
            last_error: Some("HTTP 503".into()),
            kids: 2,
        });
        assert!(assess(&f).is_healthy());
    }

    #[test]
    fn a_dead_engine_is_unhealthy_and_listed_first() {
        let mut f = healthy_facts();
        f.draining = true;
        f.engine_failure = Some("metrics_aggregator failed 11 times".into());
        f.supervisor_running = false;
        f.actors_down = vec!["metrics_aggregator", "cache"];
        let r = assess(&f);
        assert_eq!(r.status, Status::Unhealthy);
        // One reason for the dead tree, not one per child.
        assert_eq!(r.reasons[0].code, "engine_stopped");
        assert!(r.reasons[0].message.contains("failed 11 times"));
        assert_eq!(r.reasons.len(), 2, "{r:?}");
        assert_eq!(r.reasons[1].code, "draining");
        assert!(!r.resilience_healthy());
    }

    #[test]
    fn a_restarting_child_is_unhealthy_a_restarting_provider_degraded() {
        let mut f = healthy_facts();
        f.providers[0].actor_running = false;
        assert_eq!(assess(&f).status, Status::Degraded);
        f.actors_down = vec!["breaker_registry"];
        let r = assess(&f);
        assert_eq!(r.status, Status::Unhealthy);
        assert_eq!(r.reasons[0].code, "actor_down");
        assert!(r.reasons[0].message.contains("breaker_registry"));
        assert_eq!(r.reasons[1].code, "provider_actor_down");
    }

    #[test]
    fn an_upstream_failing_its_probe_degrades_providers_and_says_why() {
        let mut f = healthy_facts();
        f.providers[0].upstream = Reachability::Unknown;
        assert_eq!(
            assess(&f).status,
            Status::Healthy,
            "not probed yet is no finding"
        );
        f.providers[0].upstream = Reachability::Unreachable;
        f.providers[0].probe_error = Some("could not connect: connection refused".into());
        let r = assess(&f);
        assert_eq!(r.status, Status::Degraded);
        assert_eq!(r.reasons.len(), 1);
        assert_eq!(r.reasons[0].code, "provider_unreachable");
        assert!(
            r.reasons[0].message.contains("openai"),
            "{}",
            r.reasons[0].message
        );
        assert!(r.reasons[0].message.contains("connection refused"));
        assert_eq!(r.checks.providers.status, Status::Degraded);
    }
}
