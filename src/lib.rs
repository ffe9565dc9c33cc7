//! keel: a resilient engine for AI text jobs (summarize, sentiment, key
//! points, questions, question answering).
//!
//! # Layers, bottom to top
//!
//! One module per concept, and a module only ever names modules that come
//! before it in this list (a lower layer, or within its layer one listed
//! earlier): there is no import cycle between the top-level modules (`make
//! lint` runs `scripts/module-cycles.py`, which fails on one). A reader can
//! start at the bottom and meet nothing that is not yet explained.
//!
//! 1. **Foundations** (no other keel module): [`time`] (clocks and RFC 3339),
//!    [`env`](mod@env) (variable sources, [`env::ConfigError`], the deployment
//!    [`env::Environment`] and the parsers every domain config uses),
//!    [`job`] (the unit of work and its output), [`nlp`] (the offline
//!    algorithms behind the `local` provider), [`sanitize`] (input cleaning
//!    and prompt-injection signals), [`redis_link`] (Redis with timeouts,
//!    cool-off and lazy reconnection), [`connection`] (serving accepted
//!    connections with read and idle limits).
//! 2. **Infrastructure and stores**: [`telemetry`] (OpenTelemetry: exporter,
//!    propagation, spans of plain values), [`batch`] (recent batch progress),
//!    [`cache`] (the two-tier response cache with single-flight),
//!    [`identity`] (keys, JWTs, the audit trail), [`rate_limit`]
//!    (per-identity sliding windows, in memory or on Redis).
//! 3. **Providers**: [`providers`] (the trait, the local / OpenAI / Gemini
//!    clients, the request-path [`providers::ProviderTable`], the span of one
//!    call).
//! 4. **What a call came to**: [`outcome`] ([`outcome::JobResult`] /
//!    [`outcome::JobError`]), [`metrics`] (the lock-free counters request
//!    tasks write), [`chaos`] (fault injection around provider calls).
//! 5. **Resilience**: [`resilience`] (breakers, retries, budgets, bulkheads,
//!    deadlines, fallbacks, presets, the orchestrator that runs a job over the
//!    provider chain).
//! 6. **Subsystems on top of it**: [`jobs`] (async jobs on a memory or Redis
//!    Streams store; it runs a job through a [`jobs::runner::Runner`] the
//!    HTTP front hands it), [`cli_resilience`] (the preset and config
//!    commands).
//! 7. **Assembly**: [`config`] (settings from the environment, validated at
//!    start-up; assembles the domain configs), then what is started from the
//!    settings: [`cluster`] (breaker sharing between instances; remote
//!    configuration switches go through the [`cluster::ApplySwitch`] the
//!    engine attaches) and [`logging`] (log output that never blocks).
//! 8. **Supervision**: [`actors`] (the supervised actor tree that owns the
//!    long-lived state of the layers below and publishes read-only views).
//! 9. **Engine**: [`engine`] (starts the tree, holds the shared views, runs
//!    jobs), and what reads it: [`health`] (the one health model every health
//!    surface reports) and [`exposition`] (the Prometheus text).
//! 10. **Front**: [`api`] (the axum routes), [`server`] (binding and
//!     shutdown), [`cli`] (the binary).
//!
//! Where a lower module must call back into a higher one at run time (the
//! engine owns the jobs subsystem and the cluster sync, and both need the
//! engine), the lower module declares the one operation it needs as a trait
//! and the higher one implements and attaches it; the dependency then
//! points down only.
//!
//! Test support (the fake OpenAI/Gemini upstream, a real `redis-server` on a
//! free port, the `fake_llm` binary) lives in the dev-only `keel-testkit`
//! workspace crate (`testkit/`), so this library and the `keel` binary never
//! ship it.

pub mod actors;
pub mod api;
pub mod batch;
pub mod cache;
pub mod chaos;
pub mod cli;
pub mod cli_resilience;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod engine;
pub mod env;
pub mod exposition;
pub mod health;
pub mod identity;
pub mod job;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod nlp;
pub mod outcome;
pub mod providers;
pub mod rate_limit;
pub mod redis_link;
pub mod resilience;
pub mod sanitize;
pub mod server;
pub mod telemetry;
pub mod time;
