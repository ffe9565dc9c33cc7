//! `fake_llm`: run keel's fake LLM upstream as a standalone server for demos
//! and load benchmarks, e.g. `cargo run --release --bin fake_llm -- --error-rate 0.3` (`make fake-llm`).
//!
//! A thin clap CLI over `keel_testkit::fake_llm`: every flag maps to one
//! `FakeLlmConfig` field (defaults match `FakeLlmConfig::default()`), and the
//! config can still be changed at runtime with `PUT /_fake/config`. Serves
//! until Ctrl-C, then shuts down gracefully.

use std::net::{IpAddr, SocketAddr};

use clap::Parser;
use keel_testkit::fake_llm::{FakeLlm, FakeLlmConfig};

/// Fake OpenAI / Gemini upstream with injectable faults.
#[derive(Debug, Parser)]
#[command(
    name = "fake_llm",
    version,
    about = "keel's fake OpenAI/Gemini upstream, for demos, tests and load benchmarks"
)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "FAKE_LLM_HOST")]
    host: IpAddr,
    /// Port to bind (0 = any free port).
    #[arg(long, default_value_t = 8089, env = "FAKE_LLM_PORT")]
    port: u16,
    /// Base latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Extra uniform latency 0..=JITTER_MS per request.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Fraction of requests answered with --error-status.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// HTTP status of injected errors.
    #[arg(long, default_value_t = 500)]
    error_status: u16,
    /// Fraction of requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// Retry-After value of injected 429s, in seconds.
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    /// Fraction of requests that never answer.
    #[arg(long, default_value_t = 0.0)]
    hang_rate: f64,
    /// Fraction answered 200 with a truncated, invalid JSON body.
    #[arg(long, default_value_t = 0.0)]
    malformed_rate: f64,
    /// Fraction answered 200 with empty content.
    #[arg(long, default_value_t = 0.0)]
    empty_rate: f64,
    /// Fail the first N requests with --error-status, then behave normally.
    #[arg(long, default_value_t = 0)]
    fail_next: u32,
    /// Seed for fault choice and jitter (0 = fixed default seed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Require this API key (Bearer for OpenAI, x-goog-api-key/?key= for Gemini).
    #[arg(long, env = "FAKE_LLM_API_KEY")]
    api_key: Option<String>,
    /// Status answered to model-metadata GETs (keel's upstream health probes).
    #[arg(long, default_value_t = 200)]
    probe_status: u16,
}

impl Args {
    fn config(&self) -> FakeLlmConfig {
        FakeLlmConfig {
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            error_rate: self.error_rate,
            error_status: self.error_status,
            rate_limit_rate: self.rate_limit_rate,
            retry_after_secs: self.retry_after_secs,
            hang_rate: self.hang_rate,
            malformed_rate: self.malformed_rate,
            empty_rate: self.empty_rate,
            fail_next: self.fail_next,
            seed: self.seed,
            api_key: self.api_key.clone(),
            probe_status: self.probe_status,
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let handle = FakeLlm::spawn(SocketAddr::new(args.host, args.port), args.config()).await?;
    println!("fake_llm listening on http://{}", handle.addr());
    println!(
        "  OpenAI base URL: {}   Gemini base URL: {}/v1beta   control: {}/_fake/{{stats,config,reset}}",
        handle.openai_base_url(),
        handle.base_url(),
        handle.base_url()
    );
    tokio::signal::ctrl_c().await?;
    let stats = handle.stats();
    handle.shutdown().await;
    println!(
        "fake_llm stopped: {} requests ({} ok, {} errors, {} rate limited, {} hangs, {} malformed, {} empty)",
        stats.requests_total,
        stats.ok,
        stats.errors,
        stats.rate_limited,
        stats.hangs,
        stats.malformed,
        stats.empty
    );
    Ok(())
}
