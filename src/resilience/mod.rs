//! Resilience: what keeps keel answering when providers fail, slow down or
//! throttle.
//!
//! - [`config`]: presets, strategies and custom config → one [`OperationPolicy`] per operation;
//! - [`breaker`]: one circuit breaker per (provider, operation);
//! - [`backoff_policy`]: delays between retries;
//! - [`budget`]: a per-provider retry budget against retry storms;
//! - [`bulkhead`]: a per-provider concurrency cap with a bounded wait;
//! - [`orchestrator`]: runs one job through all of the above and the fallback chain.
//!
//! [`Resilience`] is the shared state the request path reads: the current
//! configuration (swapped atomically on a preset switch) and the breakers,
//! budgets and bulkheads. Mutations that are not per-call outcomes — operator
//! commands and reconfiguration — go through the
//! [`crate::actors::breaker_registry::BreakerRegistry`] actor.

pub mod backoff_policy;
pub mod breaker;
pub mod budget;
pub mod bulkhead;
pub mod config;
pub mod orchestrator;

use crate::job::Operation;
use crate::providers::ProviderKind;
use arc_swap::ArcSwap;
use backoff_policy::BackoffPolicy;
use breaker::{BreakerSettings, CircuitBreaker};
use budget::RetryBudget;
use bulkhead::Bulkhead;
use config::{OperationPolicy, ResilienceConfig};
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

impl OperationPolicy {
    /// The breaker tunables of this policy.
    pub fn breaker_settings(&self) -> BreakerSettings {
        BreakerSettings {
            failure_threshold: self.failure_threshold,
            recovery_timeout: self.recovery_timeout,
            half_open_max_calls: self.half_open_max_calls,
            failure_rate_threshold: self.failure_rate_threshold,
            slow_call_duration: self.slow_call_duration,
            slow_call_rate_threshold: self.slow_call_rate_threshold,
            minimum_calls: self.minimum_calls,
            window: Duration::from_secs(60),
        }
    }

    /// The backoff tunables of this policy.
    pub fn backoff(&self) -> BackoffPolicy {
        BackoffPolicy {
            multiplier: self.exponential_multiplier,
            min: self.exponential_min,
            max: self.exponential_max,
            jitter_enabled: self.jitter_enabled,
            jitter_max: self.jitter_max,
        }
    }
}

/// Per-provider protection that does not depend on the operation.
#[derive(Debug)]
pub struct ProviderGuards {
    /// The retry budget.
    pub budget: RetryBudget,
    /// The concurrency cap.
    pub bulkhead: Bulkhead,
}

/// Shared resilience state of one engine.
pub struct Resilience {
    config: ArcSwap<ResilienceConfig>,
    breakers: DashMap<(ProviderKind, Operation), Arc<CircuitBreaker>>,
    guards: HashMap<ProviderKind, ProviderGuards>,
    /// The cluster task's channel, once breaker sharing is on.
    sync: std::sync::OnceLock<breaker::SyncSender>,
}

/// The breaker name for a provider and operation, e.g. `openai:summarize`.
pub fn breaker_name(kind: ProviderKind, op: Operation) -> String {
    format!("{}:{}", kind.as_str(), op.as_str())
}

impl Resilience {
    /// State for the given providers; each gets a bulkhead of `capacity`
    /// concurrent calls and a `max_wait` for a free slot.
    pub fn new(
        config: ResilienceConfig,
        providers: impl IntoIterator<Item = ProviderKind>,
        capacity: usize,
        max_wait: Duration,
    ) -> Resilience {
        let providers: Vec<ProviderKind> = providers.into_iter().collect();
        // Every breaker exists from the start, so operators see (and can
        // act on) all of them before any traffic.
        let breakers = DashMap::new();
        for &kind in &providers {
            for op in Operation::ALL {
                let settings = config.policy(op).breaker_settings();
                breakers.insert(
                    (kind, op),
                    CircuitBreaker::new(breaker_name(kind, op), settings),
                );
            }
        }
        Resilience {
            config: ArcSwap::from_pointee(config),
            breakers,
            guards: providers
                .into_iter()
                .map(|k| {
                    (
                        k,
                        ProviderGuards {
                            budget: RetryBudget::default(),
                            bulkhead: Bulkhead::new(capacity, max_wait),
                        },
                    )
                })
                .collect(),
            sync: std::sync::OnceLock::new(),
        }
    }

    /// Shares every breaker (present and future) with the cluster task.
    pub fn attach_sync(&self, tx: breaker::SyncSender) {
        for b in self.breakers.iter() {
            b.value().attach_sync(tx.clone());
        }
        let _ = self.sync.set(tx);
    }

    /// The configured providers.
    pub fn providers(&self) -> impl Iterator<Item = ProviderKind> + '_ {
        self.guards.keys().copied()
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<ResilienceConfig> {
        self.config.load_full()
    }

    /// The breaker of `(kind, op)`, created closed on first use.
    pub fn breaker(&self, kind: ProviderKind, op: Operation) -> Arc<CircuitBreaker> {
        if let Some(b) = self.breakers.get(&(kind, op)) {
            return b.clone();
        }
        self.breakers
            .entry((kind, op))
            .or_insert_with(|| {
                let settings = self.config.load().policy(op).breaker_settings();
                let b = CircuitBreaker::new(breaker_name(kind, op), settings);
                if let Some(tx) = self.sync.get() {
                    b.attach_sync(tx.clone());
                }
                b
            })
            .clone()
    }

    /// The guards of a provider, if configured.
    pub fn guards(&self, kind: ProviderKind) -> Option<&ProviderGuards> {
        self.guards.get(&kind)
    }

    /// Every breaker created so far, sorted by name.
    pub fn breakers(&self) -> Vec<Arc<CircuitBreaker>> {
        let mut v: Vec<_> = self.breakers.iter().map(|e| e.value().clone()).collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// The breaker called `name` (`provider:operation`), created on demand
    /// for a configured provider so operators can act before any traffic.
    pub fn find_breaker(&self, name: &str) -> Option<Arc<CircuitBreaker>> {
        let (kind, op) = name.split_once(':')?;
        let kind: ProviderKind = kind.parse().ok()?;
        let op: Operation = op.parse().ok()?;
        self.guards
            .contains_key(&kind)
            .then(|| self.breaker(kind, op))
    }

    /// Installs a new configuration; new calls use it at once, breakers keep
    /// their state but take the new thresholds. Called by the registry actor.
    pub(crate) fn reconfigure(&self, config: ResilienceConfig) {
        for entry in self.breakers.iter() {
            let (_, op) = *entry.key();
            entry
                .value()
                .reconfigure(config.policy(op).breaker_settings());
        }
        self.config.store(Arc::new(config));
    }
}
