//! The supervised actor tree that owns keel's long-lived state.
//!
//! ```text
//! EngineSupervisor
//! ├── MetricsAggregator      windows, rates and snapshots over the shared metrics registry;
//! │                          owns the metrics time series (a ring buffer sampled every 5 s)
//! ├── BreakerRegistry        operator commands and config switches for the circuit breakers
//! ├── RateLimiterActor       sweeps idle identities out of the rate-limit buckets
//! ├── CacheActor             invalidation and clear-all on both cache tiers
//! ├── JobConsumer            the async jobs: reads the queue, runs and finishes jobs
//! ├── ClusterSync            (with Redis and BREAKER_SHARING) the breaker picture shared
//! │                          with the other instances: outbox, subscriber, heartbeat, probe lease
//! └── ProviderSupervisor
//!     └── Provider[kind]     one per configured provider: owns and publishes its client
//!                            (adopts the one built at start-up, builds anew on restart)
//!                            and its upstream's reachability (a periodic probe)
//! ```
//!
//! Actors own writes, timers and lifecycle; request tasks never wait on a
//! mailbox. They read what actors *publish* (the [`crate::providers::ProviderTable`], atomics in
//! [`crate::metrics::Metrics`]). Every supervisor overrides
//! `handle_supervisor_evt` (ractor's default would stop the parent), restarts a
//! failed child with its original arguments, counts the restart in metrics and
//! logs it, and refreshes the handle tables so nobody keeps a dead `ActorRef`.

pub mod breaker_registry;
pub mod cache;
pub mod cluster_sync;
pub mod metrics;
pub mod metrics_history;
pub mod provider;
pub mod provider_supervisor;
pub mod rate_limiter;
mod restart;
pub mod supervisor;

pub use restart::RestartPolicy;

use std::time::Duration;

/// How long an admin `call` waits for an actor before giving up; request paths
/// never `call` at all.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
