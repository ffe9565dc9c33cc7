//! The HTTP front: a thin axum layer over the [`Engine`].
//!
//! [`router`] builds the whole application so tests can drive it with
//! `tower::ServiceExt::oneshot` or over a socket. Layers, outermost first:
//! request context (id, timing, log span, error envelope, compression above
//! 1 KB, security headers, header count cap → 431, [`admission`]: Host /
//! URI length / declared body size checks and the process-wide concurrency
//! budget → 503 JSON, never an unbounded queue) → CORS (when `CORS_ORIGINS`
//! is set) → panic catcher (500 JSON) → body-size limit → routes; `/v1`
//! routes also pass the rate limiter ([`limits`]) when it is enabled.
//!
//! Why the budget is not a tower `concurrency_limit` layer: `Router::layer`
//! wraps each route separately, so such a layer gives every route its own
//! limit; the budget's semaphores live in [`AppState`] and are shared.

pub mod admission;
pub mod auth;
pub mod error;
pub mod extract;
pub mod health;
pub mod internal;
pub mod jobs;
pub mod json;
pub mod limits;
pub mod openapi;
pub mod request_id;
pub mod security;
pub mod strict_json;
pub mod text;

use crate::engine::Engine;
use crate::identity::{Authenticator, OperatorMode};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use error::ApiError;
use std::sync::Arc;
use tower::ServiceBuilder;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What every handler can reach: the engine handle and the key ring. One
/// `Arc`, because axum clones the state for every extractor and middleware of
/// every request.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

/// The contents of [`AppState`].
pub struct SharedState {
    /// The running engine.
    pub engine: Engine,
    /// Resolves credentials to identities; owns client keys, the JWT
    /// verifier, the `jti` denylist and the audit trail.
    pub identity: Arc<Authenticator>,
    /// The process-wide in-flight budget (`MAX_CONCURRENT_REQUESTS`), shared
    /// by every route and listener.
    pub budget: admission::Budget,
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

impl AppState {
    /// State for `engine` with its identities started (JWKS loaded, stores
    /// refreshing): fails when the JWKS cannot be loaded.
    pub async fn start(
        engine: Engine,
    ) -> Result<AppState, crate::identity::authenticator::IdentityStartError> {
        // Before the (slow) identity start, so the jobs consumer settles in
        // while it runs, as when the engine attached itself.
        attach_runner(&engine);
        let identity = Authenticator::start(engine.settings().authenticator()).await?;
        Ok(AppState::with_identity(engine, identity))
    }

    /// State for `engine` with a given authenticator.
    pub fn with_identity(engine: Engine, identity: Arc<Authenticator>) -> AppState {
        attach_runner(&engine);
        let budget = admission::Budget::new(engine.settings().max_concurrent_requests);
        AppState(Arc::new(SharedState {
            engine,
            identity,
            budget,
        }))
    }
}

/// Hands the jobs subsystem this front's `/process` pipeline, which async
/// jobs run through (once per engine; later calls change nothing).
fn attach_runner(engine: &Engine) {
    engine
        .jobs()
        .attach(Arc::new(jobs::ProcessRunner::new(engine)));
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see GET / for the endpoint map".into())
}

fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let detail = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into());
    ApiError::Internal(detail).into_response()
}

/// The public routes: `/`, the legacy redirects and `/v1/...`, each
/// registered with its handler's `#[utoipa::path]` (so serving a route and
/// documenting it are one registration). With `limiter`, the `/v1` routes
/// pass its rate limiter when that is enabled; the public document is
/// derived from `public_routes(None)`.
#[allow(deprecated)] // the legacy redirects are deprecated in the document
pub fn public_routes(limiter: Option<&AppState>) -> OpenApiRouter<AppState> {
    // Full paths rather than `nest("/v1", …)`: a nested router wraps every
    // route in a prefix-stripping service, which costs each request ~3 000
    // instructions for nothing.
    let mut v1 = OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::auth_status))
        .routes(routes!(text::operations))
        .routes(routes!(text::text_processing_health))
        .routes(routes!(text::process))
        .routes(routes!(text::batch_process))
        .routes(routes!(text::batch_status))
        .routes(routes!(jobs::submit, jobs::list))
        .routes(routes!(jobs::get, jobs::cancel));
    // With `RATE_LIMIT_ENABLED=false` the layer would pass every request
    // through; leaving it out saves each request a boxed-service clone.
    if let Some(state) = limiter.filter(|s| s.engine.rate_limiter().is_enabled()) {
        v1 = v1.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::limit,
        ));
    }
    OpenApiRouter::new()
        .routes(routes!(health::root))
        .routes(routes!(health::legacy_health))
        .routes(routes!(health::legacy_auth_status))
        .merge(v1)
}

/// Builds the application served on the main port: the public API, plus
/// the operator API unless it has its own listener (`INTERNAL_BIND`).
pub fn router(state: AppState) -> Router {
    // The operator API's document is published only where that API is
    // enabled, and in production only with INTERNAL_DOCS=true.
    let internal_docs = state.engine.settings().internal_docs
        && state.identity.operator_mode() != OperatorMode::Refused
        && state.engine.settings().internal_bind.is_none();
    let mut app = public_routes(Some(&state)).merge(openapi::docs_routes(internal_docs));
    if state.engine.settings().internal_bind.is_none() {
        app = app.merge(internal::routes());
    }
    let (app, _) = app.split_for_parts();
    edge(app, state)
}

/// Builds the operator application for its own listener (`INTERNAL_BIND`).
pub fn internal_router(state: AppState) -> Router {
    let (routes, _) = internal::routes().split_for_parts();
    edge(routes, state)
}

/// The layers every listener shares, the request context outermost. They are
/// composed into one service stack and applied with a single `Router::layer`:
/// every `Router::layer` call boxes each route once more, and each box is
/// cloned on every request.
fn edge(app: Router<AppState>, state: AppState) -> Router {
    let settings = state.engine.settings();
    let stack = ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_id::request_context,
        ))
        .option_layer(security::cors(&settings.cors_origins))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(DefaultBodyLimit::max(settings.max_request_size));
    app.fallback(not_found).layer(stack).with_state(state)
}
