//! The `keel` command line: `serve` runs the server; `presets` and `config`
//! inspect, validate and migrate the resilience configuration (see
//! [`crate::cli_resilience`]).

use crate::cli_resilience::{ConfigCommand, PresetsCommand, run_config, run_presets};
use crate::config::Settings;
use crate::env::ProcessEnv;
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::process::ExitCode;

/// keel: a resilient engine for AI text jobs.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// keel's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (configuration from the environment and .env).
    Serve {
        /// Interface to bind; overrides BACKEND_HOST.
        #[arg(long)]
        host: Option<String>,
        /// Port to bind; overrides BACKEND_PORT.
        #[arg(long)]
        port: Option<u16>,
    },
    /// Resilience presets: list, show one, recommend one for an environment.
    #[command(subcommand)]
    Presets(PresetsCommand),
    /// Resilience configuration: validate it, migrate legacy variables.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// Parses the command line and runs it; the binary's whole `main`.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // A missing .env is normal; a broken one is worth saying.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        return fail(format_args!("cannot read .env: {e}"));
    }
    match cli.command {
        Command::Serve { host, port } => serve(host, port),
        Command::Presets(cmd) => run_presets(cmd, &ProcessEnv),
        Command::Config(cmd) => run_config(cmd, &ProcessEnv),
    }
}

/// Reports a failed start-up step: one line on stderr, exit status 1.
///
/// A plain write, not `eprintln!` (which panics when stderr is a pipe whose
/// reader went away) and not a log event (logging may not be set up yet, and
/// one failure should be reported once, not by both).
fn fail(message: std::fmt::Arguments<'_>) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "keel: {message}");
    ExitCode::FAILURE
}

/// `keel serve`. Start-up order: every setting is validated (environment,
/// `LOG_LEVEL`, then providers and Redis URLs when the engine is built)
/// before any socket is bound, so a bad setting is reported as itself even
/// when the port is busy.
fn serve(host: Option<String>, port: Option<u16>) -> ExitCode {
    let mut settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => return fail(format_args!("configuration error: {e}")),
    };
    if let Some(h) = host {
        settings.host = h;
    }
    if let Some(p) = port {
        settings.port = p;
    }
    // Held until `serve` returns: dropping it flushes the queued log lines.
    let _log_guard = match crate::logging::init(&settings) {
        Ok(g) => g,
        Err(e) => return fail(format_args!("configuration error: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format_args!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        let mut server = match crate::server::start(settings).await {
            Ok(s) => s,
            Err(e) => return fail(format_args!("{e}")),
        };
        server.shutdown_on(shutdown_signal());
        let outcome = server.wait().await;
        match &outcome {
            Ok(()) => tracing::info!("keel stopped"),
            Err(e) => {
                tracing::error!(error = %e, "server failed");
                eprintln!("keel: {e}");
            }
        }
        exit_code(&outcome)
    })
}

/// The process exit code for how `keel serve` ended: 0 after a requested
/// shutdown, [`ENGINE_FAILED_EXIT`] when the engine died (so an orchestrator
/// restarts the process), 1 for other failures.
pub fn exit_code(outcome: &Result<(), crate::server::ServeError>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(crate::server::ServeError::EngineFailed(_)) => ExitCode::from(ENGINE_FAILED_EXIT),
        Err(crate::server::ServeError::Io(_)) => ExitCode::FAILURE,
    }
}

/// Exit status of `keel serve` when the engine died (a supervised actor kept
/// failing): 70, `EX_SOFTWARE` in sysexits.h.
pub const ENGINE_FAILED_EXIT: u8 = 70;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. It does not log: the server
/// starts its shutdown first and logs afterwards (see
/// [`crate::server::RunningServer::shutdown_on`]).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
