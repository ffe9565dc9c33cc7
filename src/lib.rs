//! keel: a resilient engine for AI text jobs (summarize, sentiment, key
//! points, questions, question answering).
//!
//! Layout, one concept per module:
//! - [`env`]: the bottom of configuration: variable sources, the one
//!   [`env::ConfigError`], the deployment [`env::Environment`] and the one set of
//!   parsers every config module uses;
//! - [`config`]: settings from the environment, validated at start-up (assembles the
//!   domain configs);
//! - [`job`]: the unit of work and its output; [`outcome`]: what running one came to
//!   ([`outcome::JobResult`] / [`outcome::JobError`]);
//! - [`sanitize`]: input cleaning and prompt-injection signals;
//! - [`nlp`]: the offline algorithms behind the `local` provider;
//! - [`providers`]: the provider trait and the local / OpenAI / Gemini clients;
//! - [`actors`]: the supervised actor tree that owns long-lived state;
//! - [`metrics`]: lock-free counters the request path writes; [`exposition`]: their Prometheus form;
//! - [`resilience`]: breakers, retries, budgets, bulkheads, deadlines, fallbacks, presets;
//! - [`engine`]: the handle that ties actors and shared views together;
//! - [`health`]: the one health model every health surface reports;
//! - [`batch`]: recent batch progress for `batch_status`;
//! - [`jobs`]: async jobs (`/v1/jobs`) on a memory or Redis Streams store;
//! - [`api`]: the axum front; [`server`]: binding and shutdown; [`connection`]: serving
//!   accepted connections with read and idle limits; [`cli`]: the binary;
//! - [`logging`]: log output that never blocks or stops the server;
//! - [`telemetry`]: OpenTelemetry traces (OTLP export, spans, W3C trace context);
//! - [`cache`]: the two-tier (memory + Redis) response cache with single-flight;
//! - [`rate_limit`]: per-identity sliding-window limits, in memory or on Redis;
//! - [`redis_link`]: Redis with timeouts, cool-off and lazy reconnection.
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
