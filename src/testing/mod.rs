//! Test support shared by unit tests, integration tests and benchmarks.
//! Nothing in the engine uses it.

pub mod redis_server;
