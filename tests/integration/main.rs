//! keel's integration tests: one binary, one module per area. Every test
//! starts a real keel server on a free loopback port and talks HTTP to it;
//! upstream tests use the real fake LLM server (`keel_testkit::fake_llm`).

mod auth;
mod batch;
mod cache_limits;
mod chaos;
mod cli;
mod cluster;
mod edge;
mod health;
mod hedging;
mod hostile;
mod identity;
mod internal;
mod jobs;
mod jobs_surface;
mod local_ops;
mod reference_clients;
mod resilience;
mod resilience_http;
mod scripted;
mod supervision;
mod support;
mod tracing;
mod upstreams;
mod validation;
