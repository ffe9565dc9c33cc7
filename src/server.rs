//! Binding, serving and shutting down: what `keel serve` runs and what
//! integration tests start on a free port.
//!
//! Shutdown order: the engine is marked draining (readiness turns 503), the
//! listener stops accepting, in-flight requests finish, then the actor tree
//! stops. Accepted sockets get `TCP_NODELAY` so small responses are not held
//! back by Nagle's algorithm.

use crate::api::{AppState, router};
use crate::config::Settings;
use crate::engine::{Engine, EngineError};
use crate::providers::SharedProvider;
use axum::serve::ListenerExt;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The engine (providers, actors) failed to start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address tried.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A server accepting connections in a background task.
pub struct RunningServer {
    addr: SocketAddr,
    engine: Engine,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The engine behind the server.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Begins a graceful shutdown and waits until in-flight requests are done
    /// and the actors have stopped.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait().await
    }

    /// Waits for the server to end (after a shutdown was requested).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = match self.task.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        self.engine.shutdown().await;
        result
    }

    /// A handle that triggers shutdown when `signal` completes.
    pub fn shutdown_on(&mut self, signal: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Some(stop) = self.stop.take() {
            tokio::spawn(async move {
                signal.await;
                let _ = stop.send(());
            });
        }
    }
}

/// Starts the engine and serves the API on `settings.host:settings.port`.
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
    let listener = tokio::net::TcpListener::bind(&bind_addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: bind_addr.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: bind_addr,
        source,
    })?;
    let engine = Engine::start_with(settings, overrides).await?;
    let app = router(AppState::new(engine.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let draining = engine.clone();
    let listener = listener.tap_io(|tcp| {
        // Best effort: a socket that refuses NODELAY still works, just slower.
        let _ = tcp.set_nodelay(true);
    });
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
            draining.begin_draining();
        })
        .await
    });
    let primary = engine.settings().primary_provider();
    tracing::info!(%addr, provider = %primary.kind, model = %primary.model, "keel listening");
    Ok(RunningServer {
        addr,
        engine,
        stop: Some(stop),
        task,
    })
}
