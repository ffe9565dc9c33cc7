//! Serving accepted connections, with the limits that keep a slow or idle
//! client from holding a connection for ever.
//!
//! keel runs its own accept loop over hyper-util's auto (HTTP/1.1 + h2c)
//! connection builder rather than `axum::serve`, because `axum::serve` gives
//! hyper no timer: without one hyper has no header-read timeout, and a client
//! that sends half a request head and stops keeps its connection for ever.
//!
//! Per connection:
//! - **header read** (`HTTP_HEADER_READ_TIMEOUT_SECONDS`): hyper's HTTP/1
//!   header timer. It starts as soon as the connection waits for a request
//!   head — a new connection, or a kept-alive one after its last response —
//!   and a head not complete in time closes the connection (hyper sends no
//!   response). So on HTTP/1.1 it also bounds how long an idle connection
//!   stays open.
//! - **keep-alive idle** (`HTTP_KEEPALIVE_IDLE_SECONDS`): a watchdog closes
//!   the connection gracefully once no request has been in flight on it for
//!   that long (HTTP/1.1 and HTTP/2 alike).
//! - the **body read** deadline is applied where bodies are read
//!   ([`crate::api::extract`]), because only there can keel still answer 408.
//!
//! Shutdown: when `shutdown` completes the loop stops accepting, every
//! connection is asked to finish gracefully (in-flight requests complete, idle
//! connections close), and [`serve`] returns once all connections are gone.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

/// The per-connection limits (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest wait for a complete HTTP/1 request head.
    pub header_read_timeout: Duration,
    /// Longest time a connection stays open with no request in flight.
    pub keepalive_idle: Duration,
}

/// What a connection's requests report to its watchdog.
struct Activity {
    /// When the connection was accepted; `idle_since_ms` counts from here.
    started: Instant,
    /// Requests being served on the connection now.
    in_flight: AtomicUsize,
    /// When the last request finished, in milliseconds since `started`.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    /// When the connection will have been idle for `limit`, if nothing
    /// changes; with a request in flight, one `limit` from now (checked again then).
    fn idle_deadline(&self, limit: Duration) -> Instant {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Instant::now() + limit;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        self.started + since + limit
    }

    fn idle_for_at_least(&self, limit: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.idle_deadline(limit) <= Instant::now()
    }
}

/// Held by a request while it is served: the connection is not idle.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.store(ms, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the open
/// connections finish and returns when they are all closed.
pub async fn serve(
    mut listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    // `stop` tells connections to finish; `open` is held by each connection
    // task, so `open.closed()` completes when the last one has ended.
    let (stop, stopping) = watch::channel(false);
    let (open, connections) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        // Best effort: a socket that refuses NODELAY still works, just slower.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(
            tcp,
            remote,
            app.clone(),
            builder.clone(),
            limits,
            stopping.clone(),
            connections.clone(),
        ));
    }
    drop(listener);
    stop.send_replace(true);
    drop(connections);
    open.closed().await;
    Ok(())
}

/// Serves one connection until the client closes it, a limit closes it, or
/// shutdown finishes it.
async fn connection(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::new());
    let requests = activity.clone();
    let service = app
        .map_request(move |request: axum::http::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(remote));
            request
        })
        .map_future(move |response| {
            let in_flight = InFlight::enter(&requests);
            async move {
                let response = response.await;
                drop(in_flight);
                response
            }
        });
    let mut conn = std::pin::pin!(
        builder.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
    );
    let mut closing = false;
    loop {
        let idle_deadline = activity.idle_deadline(limits.keepalive_idle);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(%remote, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = stopping.wait_for(|s| *s), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(idle_deadline), if !closing => {
                if activity.idle_for_at_least(limits.keepalive_idle) {
                    tracing::trace!(%remote, "closing an idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
