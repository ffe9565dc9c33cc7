//! Binding, serving and shutting down: what `keel serve` runs and what
//! integration tests start on a free port.
//!
//! Start-up validates before it binds: the engine (providers, Redis URLs) is
//! built first, so a bad setting is reported as itself, never hidden behind
//! a busy port; a busy port is reported with the settings that choose it.
//!
//! Shutdown (SIGTERM/SIGINT, or [`RunningServer::shutdown`]): the engine is
//! marked draining (readiness turns 503), keel waits
//! `SHUTDOWN_DRAIN_DELAY_SECONDS` so load balancers notice, the listeners stop
//! accepting, in-flight requests get up to `SHUTDOWN_GRACE_SECONDS` to finish
//! (then they are cut), and the actor tree stops. A dead engine (its
//! supervisor gave up on a child that keeps failing) starts the same
//! shutdown by itself, and [`RunningServer::wait`] then ends with
//! [`ServeError::EngineFailed`] so `keel serve` exits non-zero. Connections
//! are served by [`crate::connection`] (read and idle limits, `TCP_NODELAY`).

use crate::api::{AppState, internal_router, router};
use crate::config::Settings;
use crate::connection::{self, ConnectionLimits};
use crate::engine::{Engine, EngineError};
use crate::providers::SharedProvider;
use axum::Router;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The engine (providers, actors) failed to start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Identities could not start (the JWKS at `JWT_JWKS_URL` could not be loaded).
    #[error(transparent)]
    Identity(#[from] crate::identity::authenticator::IdentityStartError),
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}{}", bind_hint(source, setting))]
    Bind {
        /// The address tried.
        addr: String,
        /// The setting that chose the address (`BACKEND_PORT` or `INTERNAL_BIND`).
        setting: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why a started server ended other than by a requested shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The engine died (its supervisor gave up); the server shut itself down.
    #[error("the engine stopped: {0}")]
    EngineFailed(String),
}

/// What to do about a busy address.
fn bind_hint(source: &std::io::Error, setting: &str) -> String {
    if source.kind() != std::io::ErrorKind::AddrInUse {
        return String::new();
    }
    if setting == "INTERNAL_BIND" {
        " (another process uses it: stop it or set another INTERNAL_BIND address)".to_string()
    } else {
        " (another process uses this port: stop it or choose another one with --port <n> or BACKEND_PORT=<n>; 0 picks a free port)".to_string()
    }
}

/// A server accepting connections in background tasks.
pub struct RunningServer {
    addr: SocketAddr,
    internal_addr: Option<SocketAddr>,
    engine: Engine,
    /// Flipped to true to begin shutdown.
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// The bound public address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The operator listener's address, when `INTERNAL_BIND` is set.
    pub fn internal_addr(&self) -> Option<SocketAddr> {
        self.internal_addr
    }

    /// The engine behind the server.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Begins a graceful shutdown and waits until it is complete.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.stop.send_replace(true);
        self.wait().await
    }

    /// Begins a graceful shutdown when `signal` completes.
    ///
    /// The stop is sent before anything is logged: shutdown never depends on
    /// a log line being written.
    pub fn shutdown_on(&mut self, signal: impl std::future::Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        tokio::spawn(async move {
            signal.await;
            stop.send_replace(true);
            tracing::info!("shutdown signal received; draining");
        });
    }

    /// Waits for the server to end: after a shutdown was requested (or the
    /// engine died), for the in-flight requests (at most the grace period),
    /// then stops the actors.
    pub async fn wait(mut self) -> Result<(), ServeError> {
        let grace = self.engine.settings().shutdown_grace;
        let drain_delay = self.engine.settings().shutdown_drain_delay;
        let mut stopping = self.stop.subscribe();
        let mut engine_failure = None;
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => {}
            why = self.engine.failed() => {
                tracing::error!(reason = %why, "the engine is dead; shutting the server down");
                self.stop.send_replace(true);
                engine_failure = Some(why);
            }
        }
        // The listeners stop accepting after the drain delay; give in-flight
        // requests the grace period on top of that.
        let budget = drain_delay + grace;
        let mut result: std::io::Result<()> = Ok(());
        let all = futures::future::join_all(self.tasks.iter_mut());
        match tokio::time::timeout(budget, all).await {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => result = Err(e),
                        Err(e) => result = Err(std::io::Error::other(e)),
                    }
                }
            }
            Err(_) => {
                tracing::warn!(
                    grace_s = grace.as_secs(),
                    "grace period over; cutting the remaining requests"
                );
                // Running requests answer 503 now; give the connections a
                // moment to write that answer, then stop serving.
                self.engine.cut_in_flight();
                let all = futures::future::join_all(self.tasks.iter_mut());
                if tokio::time::timeout(Duration::from_secs(1), all)
                    .await
                    .is_err()
                {
                    for t in &self.tasks {
                        t.abort();
                    }
                }
            }
        }
        self.engine.shutdown().await;
        match engine_failure {
            Some(why) => Err(ServeError::EngineFailed(why)),
            None => Ok(result?),
        }
    }
}

async fn bind(addr: &str, setting: &'static str) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            setting,
            source,
        })
}

/// Serves `app` on `listener` until `stop` turns true (after `drain_delay`),
/// with the connection limits from the engine's settings.
fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
    engine: Engine,
    drain_delay: Duration,
) -> JoinHandle<std::io::Result<()>> {
    let settings = engine.settings();
    let limits = ConnectionLimits {
        header_read_timeout: settings.http_header_read_timeout,
        keepalive_idle: settings.http_keepalive_idle,
    };
    tokio::spawn(async move {
        connection::serve(listener, app, limits, async move {
            let _ = stop.wait_for(|s| *s).await;
            engine.begin_draining();
            tokio::time::sleep(drain_delay).await;
        })
        .await
    })
}

/// Starts the engine and serves the API on `settings.host:settings.port`
/// (and the operator API on `INTERNAL_BIND` when set).
pub async fn start(settings: Settings) -> Result<RunningServer, StartError> {
    start_with(settings, Vec::new()).await
}

/// Like [`start`], with in-process providers replacing configured ones.
pub async fn start_with(
    settings: Settings,
    overrides: Vec<SharedProvider>,
) -> Result<RunningServer, StartError> {
    let bind_addr = format!("{}:{}", settings.host, settings.port);
    if settings.api_keys.is_empty() {
        tracing::warn!(
            environment = %settings.environment,
            "NO API KEYS CONFIGURED: the public API is open to anyone who can reach {bind_addr}; \
             set API_KEY before exposing keel"
        );
    }
    if settings.internal_api_key.is_none() && settings.environment.requires_auth() {
        tracing::warn!(
            "INTERNAL_API_KEY is not set: the operator API answers 403 in {}",
            settings.environment
        );
    }
    let internal_bind = settings.internal_bind;
    let drain_delay = settings.shutdown_drain_delay;
    // The engine first: building it checks the provider settings (keys,
    // URLs, certificates) and Redis URLs, so a bad setting is reported as
    // itself rather than hidden behind a busy port. Only then bind.
    let engine = Engine::start_with(settings, overrides).await?;
    // Identities next (the JWKS is fetched here), still before binding.
    let state = match AppState::start(engine.clone()).await {
        Ok(state) => state,
        Err(e) => {
            engine.shutdown().await;
            return Err(e.into());
        }
    };
    let listeners = async {
        let listener = bind(&bind_addr, "BACKEND_PORT").await?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: bind_addr.clone(),
            setting: "BACKEND_PORT",
            source,
        })?;
        let internal_listener = match internal_bind {
            Some(a) => Some(bind(&a.to_string(), "INTERNAL_BIND").await?),
            None => None,
        };
        Ok::<_, StartError>((listener, addr, internal_listener))
    };
    let (listener, addr, internal_listener) = match listeners.await {
        Ok(l) => l,
        Err(e) => {
            engine.shutdown().await;
            return Err(e);
        }
    };
    let internal_addr = internal_listener.as_ref().and_then(|l| l.local_addr().ok());
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![serve(
        listener,
        router(state.clone()),
        stopped.clone(),
        engine.clone(),
        drain_delay,
    )];
    if let Some(l) = internal_listener {
        tasks.push(serve(
            l,
            internal_router(state),
            stopped,
            engine.clone(),
            drain_delay,
        ));
    }
    let primary = engine.settings().primary_provider();
    tracing::info!(%addr, internal = ?internal_addr, provider = %primary.kind, model = %primary.model, "keel listening");
    Ok(RunningServer {
        addr,
        internal_addr,
        engine,
        stop,
        tasks,
    })
}
