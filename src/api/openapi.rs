//! The OpenAPI 3.1 documents of both HTTP surfaces, and the routes that
//! serve them with a Swagger UI compiled into the binary (no network needed).
//!
//! The documents are derived from the code that serves the routes. Every
//! route is registered through utoipa-axum's `OpenApiRouter` with its
//! handler's `#[utoipa::path]` ([`crate::api::public_routes`],
//! [`crate::api::internal::routes`], [`public_docs_routes`],
//! [`internal_docs_routes`]), so one registration both serves a route and
//! documents it: the operation (summary, parameters, request body, success
//! response, error statuses, security) sits on the handler, and the schemas
//! are the `ToSchema` derivations of the real request and response types
//! the handlers read and return (serde attributes included, so a schema says
//! what keel really sends and accepts).
//!
//! `finish` adds what every route shares, so it cannot drift between
//! routes: the `X-Request-ID` / `X-Process-Time` headers on every response,
//! the common error body ([`crate::api::error::ErrorBody`]) with its
//! headers on every error status a handler names (`WWW-Authenticate` on 401,
//! `Retry-After` on 429 and 503, `Allow` on 405), `X-RateLimit-*` on the
//! success of every route that can answer 429, the `default` response, the
//! security schemes, the info block and the tags.
//!
//! What is not a plain derivation, and why:
//! - the `qa` rule of `ProcessRequest` (a question in one of two places) is
//!   not expressible on the struct; `require_question_for_qa` adds it;
//! - the schemas of bodies or parameters a handler reads by hand rather
//!   than through a type (the `options` object, the job submission, the raw
//!   queries that refuse unknown names, `Request-Timeout`,
//!   `Idempotency-Key`) are written next to that handler from the same
//!   constants and tables it uses (`ProcessOptions`, `JobRequest`, the
//!   handlers' `IntoParams` implementations);
//! - the custom-configuration schema comes from the validator's field table
//!   ([`crate::resilience::config::CustomConfig::json_schema`]);
//! - where a value is one of two real shapes the schema is a small enum
//!   that is never built (a 503 of `/v1/health/ready` or `/live` is the
//!   probe's body or the error body; a time is RFC 3339 or Unix seconds;
//!   a Redis link or the `not_configured` marker).
//!
//! Invariant (checked by the tests from the router itself): the set of
//! `(method, path)` the application serves equals the set the two
//! documents describe, each route in exactly one document (the operator
//! routes, under `/internal`, in the operator document). The served set is
//! read from the real application router (its route table and each route's
//! `Allow` methods), so a route added with a plain `.route(...)`, which
//! serves without documenting, fails the test.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header as http_header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};
use std::sync::{Arc, LazyLock};
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response as ResponseDoc, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    Components, ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr, Required, Schema,
};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::Config;

/// Where the public document is served.
pub const PUBLIC_SPEC_PATH: &str = "/openapi.json";
/// Where the Swagger UI for the public document is served (`/docs/`; `/docs`
/// redirects there).
pub const PUBLIC_DOCS_PATH: &str = "/docs";
/// Where the operator document is served (when enabled).
pub const INTERNAL_SPEC_PATH: &str = "/internal/openapi.json";
/// Where the Swagger UI for the operator document is served (when enabled).
pub const INTERNAL_DOCS_PATH: &str = "/internal/docs";

const BEARER: &str = "bearerAuth";
const API_KEY: &str = "apiKeyHeader";
const JSON: &str = "application/json";

/// The operation names, for schemas of fields that take one as a string.
pub(crate) fn operation_names() -> [&'static str; 5] {
    crate::job::Operation::ALL.map(crate::job::Operation::as_str)
}

// ---------------------------------------------------------------------------
// The documents
// ---------------------------------------------------------------------------

/// Which document is being built (wording of auth and errors differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    Public,
    Internal,
}

/// The public document: `/`, `/v1/...`, the legacy redirects and the docs
/// routes, derived from the routers that serve them.
pub fn public_doc() -> OpenApi {
    let routes = crate::api::public_routes(None).merge(public_docs_routes());
    finish(Surface::Public, routes.into_openapi())
}

/// The operator document: everything under `/internal`, derived from the
/// routers that serve it.
pub fn internal_doc() -> OpenApi {
    let routes = crate::api::internal::routes().merge(internal_docs_routes());
    finish(Surface::Internal, routes.into_openapi())
}

const PUBLIC_DESCRIPTION: &str = "\
Resilient AI text processing: summarize, sentiment, key points, questions and \
question answering, with provider fallback, retries, circuit breakers, a cache \
and rate limits. A drop-in successor to the reference FastAPI backend's `/v1`.

**Authentication.** `Authorization: Bearer <key>` or `X-API-Key: <key>`; keys are \
`API_KEY` plus `ADDITIONAL_API_KEYS`, client keys (`keel_…`) issued by operators, or \
JWT bearer tokens (when `JWT_HS256_SECRET` or `JWT_JWKS_URL` is set). Every credential \
resolves to an identity with roles; `/v1` needs the `client` role. A missing or wrong \
credential is a 401 with `WWW-Authenticate: Bearer` and a reason (expired, wrong \
audience, unknown kid, revoked...); a valid one without the role is a 403. With no key \
configured (development and testing only) access is open.

**Errors.** Every error, on every route, has one JSON body (`ErrorBody`): \
`{success: false, error, error_code, details, detail, request_id, timestamp}`, where \
`detail` is FastAPI's field for the reference's clients: the message as a string; for a \
401 `{message, context: {auth_method, environment, credentials_provided, key_prefix}}`; \
for a 422 a list of `{loc, msg, type}`. 400 malformed \
JSON or header, 401 missing/invalid key, 404 unknown route or batch, 405 wrong method \
(with `Allow`), 409 batch id still running, 413 body over `MAX_REQUEST_SIZE`, 415 not \
JSON, 422 validation, 429 rate limit, 500 bug, 502 the provider rejected the request \
permanently, 503 providers unavailable or keel at capacity, 504 deadline exceeded. \
429 and 503 carry `Retry-After` (seconds).

**Headers.** Every response carries `X-Request-ID` (yours if you send a sane one: up \
to 128 visible ASCII characters) and `X-Process-Time` (seconds). Rate-limited routes \
add `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` when rate \
limiting is enabled; a batch costs one unit per item. `Request-Timeout: <seconds>` \
can shorten a job's deadline.

The operator API (`/internal`) has its own document at `/internal/openapi.json` \
when enabled.";

const INTERNAL_DESCRIPTION: &str = "\
keel's operator API: monitoring, metrics, cache control, rate-limit state, \
resilience configuration (switchable at runtime), circuit breakers with manual \
control, presets, and a dashboard page.

**Authentication.** Same schemes as the public API (`Authorization: Bearer <key>` or \
`X-API-Key: <key>`), but with the **operator key `INTERNAL_API_KEY`**. Without it, in \
development/testing the public API keys work (or access is open when there are none); \
in staging/production every operator route answers 403 until `INTERNAL_API_KEY` is \
set. Operator client keys and JWTs with the `operator` role are accepted too (a \
client-only identity is a 403). Operator routes are not rate limited.

**Errors.** The same JSON error body as the public API (`ErrorBody`), 404 for unknown \
names (operation, breaker, action, preset), 405 (with `Allow`) for a wrong method.

**Headers.** Every response carries `X-Request-ID` and `X-Process-Time` (seconds); \
503 carries `Retry-After`.";

/// Turns the document derived from a router into the served one: the info
/// block and tags, the shared parts of every operation
/// ([`finish_operation`]), the error body and its responses, the security
/// schemes.
fn finish(surface: Surface, mut doc: OpenApi) -> OpenApi {
    let (title, description, tags): (_, _, &[(&str, &str)]) = match surface {
        Surface::Public => (
            "keel public API",
            PUBLIC_DESCRIPTION,
            &[
                (
                    "text processing",
                    "The five text operations, single and batch",
                ),
                (
                    "jobs",
                    "Async jobs: submit, poll or wait, list, cancel; durable with Redis",
                ),
                ("auth", "API key check"),
                (
                    "service",
                    "Service information, health, liveness, readiness",
                ),
                (
                    "legacy",
                    "Unversioned paths of the reference API (301 to /v1)",
                ),
                ("docs", "This document and its Swagger UI"),
            ],
        ),
        Surface::Internal => (
            "keel operator API",
            INTERNAL_DESCRIPTION,
            &[
                ("operator", "Endpoint map"),
                ("monitoring", "Health with system figures, metrics"),
                ("cache", "Cache status and invalidation"),
                ("rate limits", "Rate limiter state"),
                ("jobs", "Async job queue: stats, dead letter, retry, pause"),
                (
                    "resilience",
                    "Resilience health, configuration, metrics, cluster, chaos experiments",
                ),
                ("circuit breakers", "Breaker state and manual control"),
                ("presets", "Resilience presets, recommendations, validation"),
                ("identity", "Client keys, JWT revocation, the audit trail"),
                ("dashboard", "Operator HTML page"),
                ("docs", "This document and its Swagger UI"),
            ],
        ),
    };
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            finish_operation(op);
        }
    }
    let components = doc.components.get_or_insert_with(Components::new);
    // The error body every error response names, with what it contains.
    let mut error_schemas = Vec::new();
    <crate::api::error::ErrorBody<'static> as ToSchema>::schemas(&mut error_schemas);
    error_schemas.push((
        crate::api::error::ErrorBody::name().into_owned(),
        crate::api::error::ErrorBody::schema(),
    ));
    components.schemas.extend(error_schemas);
    if surface == Surface::Public {
        require_question_for_qa(components);
    }
    add_error_responses(components, surface);
    add_security_schemes(components, surface);
    doc.info = InfoBuilder::new()
        .title(title)
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(description))
        .build();
    doc.tags = Some(
        tags.iter()
            .map(|(name, description)| {
                TagBuilder::new()
                    .name(*name)
                    .description(Some(*description))
                    .build()
            })
            .collect(),
    );
    doc
}

/// The shared parts of one operation (see [`finish`]). A handler states
/// only what is its own: summary, parameters, bodies, which statuses it
/// answers, and its security requirement; a bare error status
/// (`(status = 401)`) becomes the shared error response, an error status
/// with its own body keeps it (with the shared headers). A
/// `request_body(content = Option<T>)` (the body may be left out) derives
/// as `oneOf [T, null]` with no `required`; it is documented as the plain
/// `$ref` with `required: false`.
fn finish_operation(op: &mut Operation) {
    if let Some(RefOr::T(body)) = op.request_body.as_mut() {
        for content in body.content.values_mut() {
            let RefOr::T(content) = content else { continue };
            let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                continue;
            };
            let refs: Vec<_> = one_of
                .items
                .iter()
                .filter(|i| matches!(i, RefOr::Ref(_)))
                .cloned()
                .collect();
            if one_of.items.len() == 2 && refs.len() == 1 {
                content.schema = refs.into_iter().next();
                body.required = Some(Required::False);
            }
        }
    }
    let rate_limited = op.responses.responses.contains_key("429");
    for (status, response) in op.responses.responses.iter_mut() {
        // `default` and other non-numeric keys get nothing added.
        let Ok(code) = status.parse::<u16>() else {
            continue;
        };
        let RefOr::T(inline) = response else { continue };
        if code >= 400 && inline.content.is_empty() {
            *response = Ref::from_response_name(error_response_name(code)).into();
            continue;
        }
        let mut builder = with_common_headers(ResponseBuilder::new());
        if code == 503 || code == 429 {
            builder = builder.header("Retry-After", retry_after());
        }
        if rate_limited && (200..300).contains(&code) {
            builder = with_rate_limit_headers(builder);
        }
        for (name, header) in builder.build().headers {
            inline.headers.entry(name).or_insert(header);
        }
    }
    op.responses
        .responses
        .insert("default".into(), Ref::from_response_name("Error").into());
}

/// Expresses in `ProcessRequest`'s schema what the handler enforces: a `qa`
/// job needs `question` or `options.question`. The derived object becomes
/// the first part of an `allOf` whose second part is that rule (an `anyOf`:
/// another operation, or a question in one of the two places); the examples
/// and the description move to the `allOf` so they stay at the top.
fn require_question_for_qa(components: &mut Components) {
    use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder};
    let Some(RefOr::T(Schema::Object(mut object))) = components.schemas.remove("ProcessRequest")
    else {
        return;
    };
    let examples = std::mem::take(&mut object.examples);
    let description = object.description.take();
    let other_operation = ObjectBuilder::new().property(
        "operation",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(operation_names().into_iter().filter(|o| *o != "qa"))),
    );
    let top_level = ObjectBuilder::new().required("question");
    let in_options = ObjectBuilder::new()
        .required("options")
        .property("options", ObjectBuilder::new().required("question"));
    let rule = AnyOfBuilder::new()
        .description(Some(
            "qa needs `question` (or `options.question`); other operations ignore it",
        ))
        .item(other_operation)
        .item(top_level)
        .item(in_options);
    let mut all = AllOfBuilder::new()
        .item(Schema::Object(object))
        .item(rule)
        .description(description)
        .build();
    all.examples = examples;
    components
        .schemas
        .insert("ProcessRequest".to_string(), Schema::AllOf(all).into());
}

/// An optional whole-number query parameter in `min..=max`, `default` when
/// absent: for handlers that read their query by hand (to refuse unknown
/// names) and so document it with a manual [`utoipa::IntoParams`].
pub(crate) fn integer_query(
    name: &str,
    description: &str,
    min: i64,
    max: i64,
    default: i64,
) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(min))
                .maximum(Some(max))
                .default(Some(default.into())),
        ))
        .build()
}

/// A string parameter taking one of `values` (required in the path,
/// optional in the query): for names a handler matches itself.
pub(crate) fn enum_param(
    name: &str,
    location: ParameterIn,
    description: &str,
    values: impl IntoIterator<Item = &'static str>,
) -> utoipa::openapi::path::Parameter {
    let required = if location == ParameterIn::Path {
        Required::True
    } else {
        Required::False
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(location)
        .required(required)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values)),
        ))
        .build()
}

fn header(schema_type: Type, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(schema_type)))
        .description(Some(description))
        .build()
}

fn retry_after() -> Header {
    header(
        Type::Integer,
        "Seconds to wait before retrying (at least 1).",
    )
}

fn with_common_headers(response: ResponseBuilder) -> ResponseBuilder {
    response
        .header(
            "X-Request-ID",
            header(
                Type::String,
                "The request id: the client's `X-Request-ID` when sane, else a UUID. Also in \
                 error bodies and logs.",
            ),
        )
        .header(
            "X-Process-Time",
            header(
                Type::String,
                "Server-side processing time in seconds, e.g. `0.000158`.",
            ),
        )
}

fn with_rate_limit_headers(response: ResponseBuilder) -> ResponseBuilder {
    response
        .header(
            "X-RateLimit-Limit",
            header(
                Type::Integer,
                "Requests allowed in the tightest window (present when rate limiting is on).",
            ),
        )
        .header(
            "X-RateLimit-Remaining",
            header(Type::Integer, "Requests left in that window."),
        )
        .header(
            "X-RateLimit-Reset",
            header(Type::Integer, "Seconds until that window frees capacity."),
        )
}

/// Name of the reusable response component for an error status.
fn error_response_name(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        413 => "PayloadTooLarge",
        415 => "UnsupportedMediaType",
        422 => "ValidationError",
        429 => "RateLimited",
        500 => "InternalError",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        _ => "Error",
    }
}

/// The error statuses with a response component: status, `error_code`, description.
const ERRORS: &[(u16, &str, &str)] = &[
    (
        400,
        "BAD_REQUEST",
        "Malformed JSON, or a malformed header such as `Request-Timeout`.",
    ),
    (
        401,
        "AUTHENTICATION_ERROR",
        "Missing or invalid key (a malformed `Authorization` header counts as invalid).",
    ),
    (
        403,
        "AUTHORIZATION_ERROR",
        "The operator API is disabled: staging/production without `INTERNAL_API_KEY`.",
    ),
    (404, "NOT_FOUND", "No such route or resource."),
    (405, "METHOD_NOT_ALLOWED", "Wrong method for this path."),
    (
        409,
        "CONFLICT",
        "A batch with this `batch_id` is still running.",
    ),
    (
        413,
        "PAYLOAD_TOO_LARGE",
        "The body exceeds `MAX_REQUEST_SIZE` bytes.",
    ),
    (
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "The body is not sent as `Content-Type: application/json`.",
    ),
    (
        422,
        "VALIDATION_ERROR",
        "Well-formed JSON that breaks a rule; `details.field` names the field.",
    ),
    (
        429,
        "RATE_LIMIT_EXCEEDED",
        "The caller's rate limit is used up; `details` has the limit and the wait.",
    ),
    (
        500,
        "INTERNAL_ERROR",
        "A bug, or an internal component did not answer; details are logged, not returned.",
    ),
    (
        502,
        "AI_SERVICE_ERROR",
        "The AI provider rejected the request permanently; `details` has the attempts.",
    ),
    (
        503,
        "SERVICE_UNAVAILABLE",
        "keel is at capacity, the providers are unavailable, or the rate limiter cannot \
         decide (Redis down in `closed` mode). Retry after `Retry-After` seconds.",
    ),
    (
        504,
        "GATEWAY_TIMEOUT",
        "The job's deadline passed before a provider answered.",
    ),
];

fn add_error_responses(components: &mut Components, surface: Surface) {
    let mut all: Vec<(String, ResponseDoc)> = ERRORS
        .iter()
        .map(|&(status, code, description)| {
            let description = match (status, surface) {
                (401, Surface::Internal) => {
                    "Missing or invalid operator key (`INTERNAL_API_KEY`; in development \
                     without it, a public API key)."
                }
                _ => description,
            };
            let mut response = with_common_headers(
                ResponseBuilder::new()
                    .description(description)
                    .content(JSON, error_content(status, code)),
            );
            match status {
                401 => {
                    response =
                        response.header("WWW-Authenticate", header(Type::String, "`Bearer`"));
                }
                405 => {
                    response =
                        response.header("Allow", header(Type::String, "The allowed methods."));
                }
                429 => {
                    response =
                        with_rate_limit_headers(response.header("Retry-After", retry_after()))
                }
                503 => response = response.header("Retry-After", retry_after()),
                _ => {}
            }
            (error_response_name(status).to_string(), response.build())
        })
        .collect();
    all.push((
        "Error".to_string(),
        with_common_headers(
            ResponseBuilder::new()
                .description(
                    "Any other error (e.g. 405 wrong method, 500 bug), with the common error \
                     body.",
                )
                .content(JSON, error_content(500, "INTERNAL_ERROR")),
        )
        .build(),
    ));
    for (name, response) in all {
        components.responses.insert(name, RefOr::T(response));
    }
}

fn error_content(status: u16, code: &str) -> utoipa::openapi::Content {
    let message = ERRORS
        .iter()
        .find(|(s, _, _)| *s == status)
        .map_or("request failed", |(_, _, d)| d);
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .example(Some(json!({
            "success": false,
            "error": message,
            "error_code": code,
            "details": Value::Null,
            "detail": message,
            "request_id": "92d71b23-a32b-4af5-9c59-82a2b2a6c061",
            "timestamp": "2026-11-22T01:13:17.441Z",
        })))
        .build()
}

fn add_security_schemes(components: &mut Components, surface: Surface) {
    let whose = match surface {
        Surface::Public => "an API key (`API_KEY` or one of `ADDITIONAL_API_KEYS`)",
        Surface::Internal => {
            "the operator key `INTERNAL_API_KEY` (in development without it: a public API key)"
        }
    };
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(format!("`Authorization: Bearer <key>` with {whose}.")))
                .build(),
        ),
    );
    components.add_security_scheme(
        API_KEY,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-API-Key".to_string(),
            format!("`X-API-Key: <key>` with {whose}."),
        ))),
    );
}

// ---------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------

/// The Swagger UI configuration for the document at `spec_path`.
fn swagger_config(spec_path: &'static str) -> Arc<Config<'static>> {
    Arc::new(
        Config::new([spec_path])
            // The validator badge would call an external service.
            .validator_url("none")
            .display_request_duration(true)
            .filter(true),
    )
}

/// The documents as served, built on first use (they never change);
/// `None` if one could not be serialised, which `spec` answers with a 500.
static PUBLIC_JSON: LazyLock<Option<Vec<u8>>> = LazyLock::new(|| serialise(&public_doc()));
static INTERNAL_JSON: LazyLock<Option<Vec<u8>>> = LazyLock::new(|| serialise(&internal_doc()));

fn serialise(doc: &OpenApi) -> Option<Vec<u8>> {
    serde_json::to_vec(doc)
        .inspect_err(|e| tracing::error!(error = %e, "OpenAPI document does not serialise"))
        .ok()
}
static PUBLIC_SWAGGER: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| swagger_config(PUBLIC_SPEC_PATH));
static INTERNAL_SWAGGER: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| swagger_config(INTERNAL_SPEC_PATH));

fn spec(json: &'static Option<Vec<u8>>) -> Response {
    let Some(json) = json else {
        return super::error::ApiError::Internal("the OpenAPI document could not be built".into())
            .into_response();
    };
    let mut response = Response::new(Body::from(json.as_slice()));
    response.headers_mut().insert(
        http_header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// One file of the embedded Swagger UI (`""` is the page), as
/// utoipa-swagger-ui serves it: 404 for an unknown name.
fn swagger_file(file: &str, config: &Arc<Config<'static>>) -> Response {
    match utoipa_swagger_ui::serve(file, config.clone()) {
        Ok(Some(file)) => {
            let mut response = (
                StatusCode::OK,
                [(http_header::CONTENT_TYPE, file.content_type)],
                file.bytes.into_owned(),
            )
                .into_response();
            if file.gzpipped {
                response.headers_mut().insert(
                    http_header::CONTENT_ENCODING,
                    HeaderValue::from_static("gzip"),
                );
            }
            response
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    operation_id = "openapi",
    summary = "OpenAPI document",
    description = "This document.",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
        (status = 503),
    )
)]
async fn public_spec() -> Response {
    spec(&PUBLIC_JSON)
}

/// `GET /docs`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    operation_id = "docs_redirect",
    summary = "Swagger UI (redirect)",
    description = "Redirects to `/docs/`.",
    responses(
        (status = 303, description = "See `/docs/`", headers(
            ("Location" = String, description = "`/docs/`"),
        )),
        (status = 503),
    )
)]
async fn public_docs_redirect() -> Redirect {
    Redirect::to("/docs/")
}

/// `GET /docs/`.
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "docs",
    operation_id = "docs",
    summary = "Swagger UI",
    description = "Swagger UI for this document, served from the binary.",
    responses(
        (status = 200, description = "The Swagger UI page", body = String, content_type = "text/html"),
        (status = 503),
    )
)]
async fn public_docs_page() -> Response {
    swagger_file("", &PUBLIC_SWAGGER)
}

/// `GET /docs/{file}`.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "docs",
    operation_id = "docs_asset",
    summary = "Swagger UI asset",
    description = "Swagger UI's scripts, styles and icons.",
    params(("file" = String, Path, description = "Asset file name, e.g. `swagger-ui-bundle.js`")),
    responses(
        (status = 200, description = "The asset", body = String, content_type = "application/octet-stream"),
        (status = 404), (status = 503),
    )
)]
async fn public_docs_asset(Path(file): Path<String>) -> Response {
    swagger_file(&file, &PUBLIC_SWAGGER)
}

/// `GET /internal/openapi.json`.
#[utoipa::path(
    get,
    path = "/internal/openapi.json",
    tag = "docs",
    operation_id = "internal_openapi",
    summary = "OpenAPI document",
    description = "This document.",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
        (status = 503),
    )
)]
async fn internal_spec() -> Response {
    spec(&INTERNAL_JSON)
}

/// `GET /internal/docs`.
#[utoipa::path(
    get,
    path = "/internal/docs",
    tag = "docs",
    operation_id = "internal_docs_redirect",
    summary = "Swagger UI (redirect)",
    description = "Redirects to `/internal/docs/`.",
    responses(
        (status = 303, description = "See `/internal/docs/`", headers(
            ("Location" = String, description = "`/internal/docs/`"),
        )),
        (status = 503),
    )
)]
async fn internal_docs_redirect() -> Redirect {
    Redirect::to("/internal/docs/")
}

/// `GET /internal/docs/`.
#[utoipa::path(
    get,
    path = "/internal/docs/",
    tag = "docs",
    operation_id = "internal_docs",
    summary = "Swagger UI",
    description = "Swagger UI for this document, served from the binary.",
    responses(
        (status = 200, description = "The Swagger UI page", body = String, content_type = "text/html"),
        (status = 503),
    )
)]
async fn internal_docs_page() -> Response {
    swagger_file("", &INTERNAL_SWAGGER)
}

/// `GET /internal/docs/{file}`.
#[utoipa::path(
    get,
    path = "/internal/docs/{file}",
    tag = "docs",
    operation_id = "internal_docs_asset",
    summary = "Swagger UI asset",
    description = "Swagger UI's scripts, styles and icons.",
    params(("file" = String, Path, description = "Asset file name, e.g. `swagger-ui-bundle.js`")),
    responses(
        (status = 200, description = "The asset", body = String, content_type = "application/octet-stream"),
        (status = 404), (status = 503),
    )
)]
async fn internal_docs_asset(Path(file): Path<String>) -> Response {
    swagger_file(&file, &INTERNAL_SWAGGER)
}

/// `/openapi.json`, `/docs` (a 303 to `/docs/`), `/docs/` (the Swagger UI
/// page) and its assets, all from the binary. They need no key.
pub fn public_docs_routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(public_spec))
        .routes(routes!(public_docs_redirect))
        .routes(routes!(public_docs_page))
        .routes(routes!(public_docs_asset))
}

/// `/internal/openapi.json` and `/internal/docs…`, like
/// [`public_docs_routes`]. Serve them only where the operator API's shape
/// may be published.
pub fn internal_docs_routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(internal_spec))
        .routes(routes!(internal_docs_redirect))
        .routes(routes!(internal_docs_page))
        .routes(routes!(internal_docs_asset))
}

/// The public docs routes and, when `internal_docs`, the operator ones.
pub fn docs_routes<S: Clone + Send + Sync + 'static>(internal_docs: bool) -> OpenApiRouter<S> {
    let routes = public_docs_routes();
    if internal_docs {
        routes.merge(internal_docs_routes())
    } else {
        routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body as HttpBody;
    use axum::http::{Request, StatusCode, header};
    use http_body_util::BodyExt;
    use std::collections::{BTreeMap, BTreeSet};
    use tower::ServiceExt;

    fn json_of(doc: &OpenApi) -> Value {
        serde_json::from_str(&doc.to_pretty_json().expect("serialises")).expect("valid JSON")
    }

    /// `(METHOD, path)` of every operation of a document.
    fn operations_of(doc: &Value) -> BTreeSet<(String, String)> {
        all_operations(doc)
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect()
    }

    fn all_operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
        out
    }

    /// Follows a local `$ref` (`#/components/...`).
    fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').expect("local ref");
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {r}"))
            }
            None => node,
        }
    }

    /// The `(METHOD, path)` pairs an axum router serves, read from its
    /// `Debug` form (axum has no public route listing): the paths of its
    /// route table (`node: Node { paths: {RouteId(n): "/path", ...} }`) and,
    /// per route, the methods of its `Allow` header (`allow_header:
    /// Bytes(b"GET,HEAD")`; `HEAD` is implied by `GET`). The fallback
    /// router's table is not a route. A route without a method router (a
    /// nested service) has no `Allow` and fails the parse: register routes
    /// with `routes!`.
    fn served_routes(router: &Router) -> BTreeSet<(String, String)> {
        let debug = format!("{router:?}");
        let table = debug
            .split_once("path_router: PathRouter {")
            .and_then(|(_, rest)| rest.split_once("fallback_router:"))
            .map(|(table, _)| table)
            .expect("axum's Router Debug form: path_router before fallback_router");
        let (routes, node) = table
            .split_once("node: Node { paths: {")
            .expect("the route table's paths");
        let id_of = |s: &str| -> u32 {
            s.trim()
                .strip_prefix("RouteId(")
                .and_then(|s| s.split_once(')'))
                .and_then(|(n, _)| n.parse().ok())
                .unwrap_or_else(|| panic!("a route id: {s:.40}"))
        };
        // RouteId(n): "/path", ...
        let mut paths = BTreeMap::new();
        for entry in node.split("RouteId(").skip(1) {
            let (id, rest) = entry.split_once("): \"").expect("RouteId(n): \"path\"");
            let path = rest.split_once('"').expect("a quoted path").0;
            paths.insert(id_of(&format!("RouteId({id})")), path.to_string());
        }
        // RouteId(n): MethodRouter(MethodRouter { ..., allow_header: Bytes(b"GET,HEAD") }), ...
        let mut served = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let entries: Vec<&str> = routes.split("RouteId(").skip(1).collect();
        for entry in entries {
            let Some((id, rest)) = entry.split_once("): ") else {
                continue;
            };
            let Ok(id) = id.parse::<u32>() else { continue };
            if !rest.starts_with("MethodRouter(") {
                continue;
            }
            let path = paths
                .get(&id)
                .unwrap_or_else(|| panic!("route {id} has a path"));
            let allow = rest
                .split_once("allow_header: Bytes(b\"")
                .and_then(|(_, a)| a.split_once('"'))
                .map(|(a, _)| a)
                .unwrap_or_else(|| panic!("{path}: an Allow header in {rest:.200}"));
            for method in allow.split(',') {
                if method != "HEAD" || !allow.contains("GET") {
                    served.insert((method.to_string(), path.clone()));
                }
            }
            seen.insert(id);
        }
        let unparsed: Vec<_> = paths
            .iter()
            .filter(|(id, _)| !seen.contains(id))
            .map(|(_, p)| p)
            .collect();
        assert!(
            unparsed.is_empty(),
            "routes served without a method router: {unparsed:?}"
        );
        served
    }

    #[test]
    fn the_route_parse_reads_paths_and_methods() {
        use axum::routing::{get, post};
        let router: Router = Router::new()
            .route("/a", get(|| async {}))
            .route(
                "/b/{id}",
                post(|| async {}).put(|| async {}).get(|| async {}),
            )
            .merge(Router::new().route("/c", axum::routing::delete(|| async {})))
            .fallback(|| async {});
        let expected: BTreeSet<(String, String)> = [
            ("GET", "/a"),
            ("GET", "/b/{id}"),
            ("POST", "/b/{id}"),
            ("PUT", "/b/{id}"),
            ("DELETE", "/c"),
        ]
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
        assert_eq!(served_routes(&router), expected);
    }

    /// The application router with every part on: the public API, the
    /// operator API on the main listener, both documents.
    async fn whole_application() -> Router {
        let env = crate::env::MapEnv::new(&[("INTERNAL_DOCS", "true")]);
        let settings = crate::config::Settings::from_source(&env).expect("settings");
        let engine = crate::engine::Engine::start(settings)
            .await
            .expect("engine starts");
        let state = crate::api::AppState::start(engine)
            .await
            .expect("identities start");
        crate::api::router(state)
    }

    #[tokio::test]
    async fn the_served_routes_are_exactly_the_documented_ones() {
        let served = served_routes(&whole_application().await);
        assert!(
            served.contains(&("POST".into(), "/v1/text_processing/process".into()))
                && served.contains(&("GET".into(), "/internal/docs/{file}".into())),
            "the parse found the routes: {served:?}"
        );
        let public = operations_of(&json_of(&public_doc()));
        let internal = operations_of(&json_of(&internal_doc()));
        assert!(
            public.is_disjoint(&internal),
            "in both documents: {:?}",
            public.intersection(&internal).collect::<Vec<_>>()
        );
        let documented: BTreeSet<_> = public.union(&internal).cloned().collect();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "served but not documented: {undocumented:?}"
        );
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            unserved.is_empty(),
            "documented but not served: {unserved:?}"
        );
        assert!(
            internal.iter().all(|(_, p)| p.starts_with("/internal")),
            "operator routes only in the internal document"
        );
        assert!(
            public.iter().all(|(_, p)| !p.starts_with("/internal")),
            "no operator route in the public document"
        );
    }

    #[test]
    fn documents_serialise_as_openapi_3_1_without_dangling_refs() {
        for doc in [public_doc(), internal_doc()] {
            let json = json_of(&doc);
            assert_eq!(json["openapi"], "3.1.0");
            assert_eq!(json["info"]["version"], env!("CARGO_PKG_VERSION"));
            // Every `$ref` anywhere in the document resolves.
            fn walk(doc: &Value, node: &Value) {
                match node {
                    Value::Object(map) => {
                        if map.contains_key("$ref") {
                            resolve(doc, node);
                        }
                        map.values().for_each(|v| walk(doc, v));
                    }
                    Value::Array(items) => items.iter().for_each(|v| walk(doc, v)),
                    _ => {}
                }
            }
            walk(&json, &json);
            let schemes = &json["components"]["securitySchemes"];
            assert_eq!(schemes[BEARER]["scheme"], "bearer");
            assert_eq!(schemes[API_KEY]["name"], "X-API-Key");
            assert_eq!(schemes[API_KEY]["in"], "header");
        }
        let internal = json_of(&internal_doc());
        assert!(
            internal["components"]["securitySchemes"][BEARER]["description"]
                .as_str()
                .unwrap()
                .contains("INTERNAL_API_KEY")
        );
    }

    /// Who may call a route, as its security requirement says.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Auth {
        /// No security: no key needed.
        None,
        /// `{}` among the requirements: a key is optional.
        Optional,
        /// A key is required.
        Key,
        /// A key is required, on an operator route.
        Operator,
    }

    #[test]
    fn every_operation_documents_headers_errors_and_auth() {
        let mut operation_ids = BTreeSet::new();
        for doc in [json_of(&public_doc()), json_of(&internal_doc())] {
            let tags: BTreeSet<&str> = doc["tags"]
                .as_array()
                .expect("tags")
                .iter()
                .map(|t| t["name"].as_str().expect("a tag name"))
                .collect();
            for (method, path, op) in all_operations(&doc) {
                let at = format!("{method} {path}");
                assert!(
                    operation_ids
                        .insert(op["operationId"].as_str().expect("operationId").to_string()),
                    "{at}: operation id used twice"
                );
                for tag in op["tags"].as_array().expect("a tag") {
                    assert!(
                        tags.contains(tag.as_str().unwrap()),
                        "{at}: tag {tag} is declared"
                    );
                }
                assert!(op["summary"].is_string(), "{at}: summary");
                assert!(op["description"].is_string(), "{at}: description");
                let responses = op["responses"].as_object().expect("responses");
                let auth = match op.get("security").and_then(Value::as_array) {
                    None => Auth::None,
                    Some(list) if list.iter().any(|r| r == &json!({})) => Auth::Optional,
                    Some(_) if path.starts_with("/internal") => Auth::Operator,
                    Some(_) => Auth::Key,
                };
                // The first success status.
                let ok_status = responses
                    .keys()
                    .find(|s| s.starts_with('2') || s.starts_with('3'))
                    .unwrap_or_else(|| panic!("{at}: a success response"))
                    .clone();
                // Only the dashboard and the docs are open on the operator surface.
                if path.starts_with("/internal") {
                    let open = path == "/internal/dashboard"
                        || path.starts_with(INTERNAL_DOCS_PATH)
                        || path == INTERNAL_SPEC_PATH;
                    assert_eq!(auth == Auth::None, open, "{at}: operator key");
                }
                assert!(responses.contains_key("default"), "{at}: default");
                for (status, response) in responses {
                    let response = resolve(&doc, response);
                    let headers = &response["headers"];
                    for h in ["X-Request-ID", "X-Process-Time"] {
                        assert!(headers.get(h).is_some(), "{at} {status}: {h}");
                    }
                    if status.starts_with('4') || status.starts_with('5') || status == "default" {
                        let schema = &response["content"][JSON]["schema"];
                        let refs = schema.to_string();
                        assert!(refs.contains("ErrorBody"), "{at} {status}: error body");
                    }
                    if status == "429" || status == "503" {
                        assert!(headers.get("Retry-After").is_some(), "{at} {status}");
                    }
                    if status == "401" {
                        assert!(headers.get("WWW-Authenticate").is_some(), "{at}");
                    }
                }
                // Rate-limited routes: 429 and the X-RateLimit-* headers on success.
                let limited = path.starts_with("/v1/") && !path.starts_with("/v1/health");
                assert_eq!(responses.contains_key("429"), limited, "{at}: 429");
                if limited {
                    let ok = &responses[ok_status.as_str()]["headers"];
                    for h in [
                        "X-RateLimit-Limit",
                        "X-RateLimit-Remaining",
                        "X-RateLimit-Reset",
                    ] {
                        assert!(ok.get(h).is_some(), "{at}: {h}");
                    }
                }
                // Auth.
                let keyed = matches!(auth, Auth::Key | Auth::Optional | Auth::Operator);
                assert_eq!(op.get("security").is_some(), keyed, "{at}: security");
                assert_eq!(responses.contains_key("401"), keyed, "{at}: 401");
                assert_eq!(
                    responses.contains_key("403"),
                    auth == Auth::Operator,
                    "{at}: 403"
                );
                // Bodies.
                let has_body = op.get("requestBody").is_some();
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        !has_body || responses.contains_key(status),
                        "{at}: {status}"
                    );
                }
                // Path parameters match the template.
                let names: BTreeSet<String> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .map(str::to_string)
                    .collect();
                let params: BTreeSet<String> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .map(|p| p["name"].as_str().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(names, params, "{at}: path parameters");
                // A named resource can be missing; an environment name is free
                // input that always gets a recommendation.
                let names_resource = !names.is_empty() && !names.contains("environment");
                assert_eq!(
                    responses.contains_key("404"),
                    names_resource,
                    "{at}: 404 exactly for a named resource"
                );
            }
        }
    }

    /// Property names and required names of a component schema (the parts
    /// of an `allOf`, as a flattened field derives, merged).
    fn shape(doc: &Value, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        fn collect(doc: &Value, schema: &Value, out: &mut (BTreeSet<String>, BTreeSet<String>)) {
            let schema = resolve(doc, schema);
            for part in schema["allOf"].as_array().into_iter().flatten() {
                collect(doc, part, out);
            }
            if let Some(props) = schema["properties"].as_object() {
                out.0.extend(props.keys().cloned());
            }
            for r in schema["required"].as_array().into_iter().flatten() {
                out.1.insert(r.as_str().unwrap().to_string());
            }
        }
        let mut out = Default::default();
        collect(doc, &doc["components"]["schemas"][name], &mut out);
        assert!(!out.0.is_empty(), "{name} has properties");
        out
    }

    /// A real value's keys must be documented, and every required key present.
    fn assert_faithful(doc: &Value, name: &str, real: &Value) {
        let keys: BTreeSet<String> = real.as_object().expect("object").keys().cloned().collect();
        let (props, required) = shape(doc, name);
        assert!(
            keys.is_subset(&props),
            "{name}: undocumented {:?}",
            keys.difference(&props)
        );
        assert!(
            required.is_subset(&keys),
            "{name}: missing {:?}",
            required.difference(&keys)
        );
    }

    #[test]
    fn schemas_match_the_real_serde_shapes() {
        use crate::api::error::ErrorBody;
        use crate::api::text::{BatchItem, BatchResponse, ProcessResponse, ResponseMetadata};
        use crate::job::{Operation, Sentiment, SentimentLabel};
        use crate::providers::{ProviderKind, TokenUsage};

        let doc = json_of(&public_doc());
        let details = json!({"field": "text"});
        let error = ErrorBody {
            success: false,
            error: "bad",
            error_code: "VALIDATION_ERROR",
            details: Some(&details),
            detail: crate::api::error::Detail::Message("bad"),
            request_id: "id".into(),
            timestamp: "2026-11-22T01:13:17.441Z".into(),
        };
        assert_faithful(&doc, "ErrorBody", &json!(error));
        let full = ProcessResponse {
            operation: Operation::Qa,
            success: true,
            result: Some("answer".into()),
            sentiment: Some(Sentiment {
                sentiment: SentimentLabel::Positive,
                confidence: 0.5,
                explanation: "cues".into(),
            }),
            key_points: Some(vec!["a".into()]),
            questions: Some(vec!["b?".into()]),
            metadata: ResponseMetadata {
                word_count: 3,
                provider: ProviderKind::OpenAi,
                model: "m".into(),
                attempts: 2,
                degraded: true,
                degraded_reason: Some("r".into()),
                prompt_injection_suspected: true,
                injection_signals: vec!["ignore_previous"],
                usage: Some(TokenUsage {
                    prompt_tokens: 1,
                    completion_tokens: 2,
                }),
                answer_confidence: Some(0.7),
                ignored_options: vec![crate::api::text::IgnoredOption {
                    name: "max_lenght".into(),
                    suggestion: Some("max_length"),
                    message: "m".into(),
                }],
            },
            processing_time: 0.1,
            timestamp: "t".into(),
            cache_hit: false,
        };
        let real = json!(full);
        assert_faithful(&doc, "ProcessResponse", &real);
        assert_faithful(&doc, "ResponseMetadata", &real["metadata"]);
        assert_faithful(&doc, "Sentiment", &real["sentiment"]);
        assert_faithful(&doc, "TokenUsage", &real["metadata"]["usage"]);
        assert_faithful(
            &doc,
            "IgnoredOption",
            &real["metadata"]["ignored_options"][0],
        );
        assert_eq!(real["metadata"]["provider"], "openai");
        let enum_values = |name: &str| doc["components"]["schemas"][name]["enum"].clone();
        assert!(
            enum_values("ProviderKind")
                .as_array()
                .unwrap()
                .contains(&json!("openai"))
        );
        assert!(
            enum_values("Operation")
                .as_array()
                .unwrap()
                .contains(&json!("key_points"))
        );
        let batch = BatchResponse {
            batch_id: "b".into(),
            total_requests: 2,
            completed: 1,
            failed: 1,
            results: vec![
                BatchItem {
                    request_index: 0,
                    status: crate::api::text::BatchItemStatus::Completed,
                    response: Some(full),
                    error: None,
                    error_code: None,
                },
                BatchItem {
                    request_index: 1,
                    status: crate::api::text::BatchItemStatus::Failed,
                    response: None,
                    error: Some("e".into()),
                    error_code: Some("VALIDATION_ERROR"),
                },
            ],
            total_processing_time: 0.2,
            timestamp: "t".into(),
        };
        let real = json!(batch);
        assert_faithful(&doc, "BatchResponse", &real);
        assert_faithful(&doc, "BatchItem", &real["results"][0]);
        assert_faithful(&doc, "BatchItem", &real["results"][1]);
        let status = crate::batch::BatchStatus {
            batch_id: "b".into(),
            status: crate::batch::BatchState::Processing,
            total_requests: 2,
            completed: 0,
            failed: 0,
            created_at: "t".into(),
            completed_at: None,
            total_processing_time: None,
        };
        let status = crate::api::text::BatchStatusResponse::from(status);
        assert_faithful(&doc, "BatchStatus", &json!(status));

        // The documented request examples are accepted by the real types.
        let example = doc["components"]["schemas"]["ProcessRequest"]["examples"][0].clone();
        let request: crate::api::text::ProcessRequest =
            serde_json::from_value(example).expect("example parses");
        request.validate().expect("example validates");
        let example = doc["components"]["schemas"]["BatchRequest"]["examples"][0].clone();
        let batch: crate::api::text::BatchRequest =
            serde_json::from_value(example).expect("example parses");
        assert_eq!(batch.requests.len(), 2);
        let options = &doc["components"]["schemas"]["ProcessOptions"];
        assert_ne!(
            options["additionalProperties"], false,
            "unknown options are accepted (and reported) by default"
        );
    }

    /// Status, content type (location for redirects), body.
    async fn get(router: &Router, uri: &str) -> (StatusCode, String, Vec<u8>) {
        let response = router
            .clone()
            .oneshot(Request::get(uri).body(HttpBody::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let header_of = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let content_type = header_of(header::CONTENT_TYPE);
        let location = header_of(header::LOCATION);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let meta = if status.is_redirection() {
            location
        } else {
            content_type
        };
        (status, meta, body.to_vec())
    }

    #[tokio::test]
    async fn swagger_ui_is_served_from_the_binary() {
        let router: Router = docs_routes(true).split_for_parts().0;
        for (docs, spec) in [
            (PUBLIC_DOCS_PATH, PUBLIC_SPEC_PATH),
            (INTERNAL_DOCS_PATH, INTERNAL_SPEC_PATH),
        ] {
            // `/docs` redirects to `/docs/`.
            let (status, location, _) = get(&router, docs).await;
            assert!(status.is_redirection(), "{docs}: {status}");
            assert_eq!(location, format!("{docs}/"));

            // The page references only local assets.
            let (status, content_type, body) = get(&router, &format!("{docs}/")).await;
            assert_eq!(status, StatusCode::OK);
            assert!(content_type.starts_with("text/html"), "{content_type}");
            let html = String::from_utf8(body).unwrap();
            for asset in [
                "swagger-ui-bundle.js",
                "swagger-initializer.js",
                "swagger-ui.css",
            ] {
                assert!(
                    html.contains(&format!("./{asset}")),
                    "{docs}/ references {asset}"
                );
            }
            assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));

            // Assets come from the binary.
            let (status, content_type, body) =
                get(&router, &format!("{docs}/swagger-ui-bundle.js")).await;
            assert_eq!(status, StatusCode::OK);
            assert!(content_type.contains("javascript"), "{content_type}");
            assert!(body.len() > 100_000, "the real bundle");
            let (status, content_type, _) = get(&router, &format!("{docs}/swagger-ui.css")).await;
            assert_eq!(status, StatusCode::OK);
            assert!(content_type.starts_with("text/css"), "{content_type}");

            // The configuration points at our document, without the external validator.
            let (status, _, body) = get(&router, &format!("{docs}/swagger-initializer.js")).await;
            assert_eq!(status, StatusCode::OK);
            let init = String::from_utf8(body).unwrap();
            assert!(init.contains(&format!("\"url\": \"{spec}\"")), "{init}");
            assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");

            // The document itself.
            let (status, content_type, body) = get(&router, spec).await;
            assert_eq!(status, StatusCode::OK);
            assert!(content_type.starts_with(JSON));
            let json: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["openapi"], "3.1.0");
        }
        let (status, _, _) = get(&router, "/docs/no-such-file.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Without internal docs, only the public ones exist.
        let router: Router = docs_routes(false).split_for_parts().0;
        assert_eq!(get(&router, PUBLIC_SPEC_PATH).await.0, StatusCode::OK);
        assert_eq!(
            get(&router, INTERNAL_SPEC_PATH).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&router, "/internal/docs/").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
