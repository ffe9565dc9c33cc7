//! keel-testkit: test support for keel, kept out of the production crate.
//!
//! keel depends on it under `[dev-dependencies]` only, so neither the keel
//! library nor the `keel` binary links it. Nothing here uses keel.
//! - [`fake_llm`]: a fake OpenAI/Gemini upstream for tests, demos and
//!   benchmarks (also the standalone `fake_llm` binary);
//! - [`redis_server`]: a real `redis-server` on a free port, for the tests
//!   that need Redis.

pub mod fake_llm;
pub mod redis_server;
