//! OpenAPI 3.1 documents for both HTTP surfaces, and the routes that serve
//! them with a Swagger UI compiled into the binary (no network needed).
//!
//! The documents are written here, not derived from the handlers: the
//! schemas are documentation-only mirrors of the real serde shapes (module
//! `schemas`) and the operations come from one table (`public_routes`,
//! `internal_routes`) that states, per route, its method, path,
//! parameters, body, success response and error statuses. Everything every
//! route shares is added by one builder, so it cannot drift between routes:
//! the `X-Request-ID` / `X-Process-Time` headers on every response, the
//! common error body on every error, `X-RateLimit-*` on rate-limited routes,
//! `Retry-After` on 429 and 503, `WWW-Authenticate` on 401, the security
//! requirements.
//!
//! Invariant (checked by the tests): every `(method, path)` the router serves
//! is in exactly one of the two documents, and no document has a path the
//! router lacks. A new route therefore needs a row here.

use axum::Router;
use serde_json::{Value, json};
use utoipa::OpenApi as _;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    Components, ContentBuilder, Deprecated, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder,
    Ref, RefOr, Required, Schema,
};
use utoipa_swagger_ui::{Config, SwaggerUi};

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

// ---------------------------------------------------------------------------
// The route tables
// ---------------------------------------------------------------------------

/// The HTTP methods keel serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn http(self) -> HttpMethod {
        match self {
            Method::Get => HttpMethod::Get,
            Method::Post => HttpMethod::Post,
            Method::Delete => HttpMethod::Delete,
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// No key needed (a key sent is ignored).
    None,
    /// A key is optional, but one that is sent must be valid.
    Optional,
    /// An API key (`API_KEY` / `ADDITIONAL_API_KEYS`) is required.
    Key,
    /// The operator key (`INTERNAL_API_KEY`) is required (every operator
    /// route is derived; the tests tell them by their security).
    #[cfg_attr(not(test), allow(dead_code))]
    Operator,
}

/// What a response carries.
#[derive(Debug, Clone, Copy)]
enum Body {
    /// A JSON body of the named schema.
    Json(&'static str),
    /// A JSON body of one of the named schemas.
    JsonOneOf(&'static [&'static str]),
    /// A text body of this content type.
    Text(&'static str),
    /// A redirect (no body) to this location.
    Redirect(&'static str),
}

/// A path parameter: name, description, allowed values (empty = any string).
type Param = (&'static str, &'static str, &'static [&'static str]);

/// A query parameter: name, description, and what it accepts.
type QueryParam = (&'static str, &'static str, QueryValue);

/// What a query parameter accepts.
#[derive(Clone, Copy)]
enum QueryValue {
    /// A whole number in `min..=max`, with the value used when absent.
    Integer { min: i64, max: i64, default: i64 },
    /// A number (fractions allowed) in `min..=max`, with the value used when absent.
    Number { min: f64, max: f64, default: f64 },
    /// Any string.
    Text,
    /// One of these names.
    OneOf(&'static [&'static str]),
}

/// One documented route.
struct Route {
    method: Method,
    path: &'static str,
    tag: &'static str,
    operation_id: &'static str,
    summary: &'static str,
    description: &'static str,
    auth: Auth,
    params: &'static [Param],
    /// Optional query parameters.
    query: &'static [QueryParam],
    /// Optional request headers of this route (name, description, allowed values).
    headers: &'static [Param],
    /// What the `Location` header of a success answer points at, if it has one.
    location: Option<&'static str>,
    /// The JSON request body schema, if any.
    request: Option<&'static str>,
    /// The body may be left out (the query form is used instead).
    body_optional: bool,
    /// Accepts the `Request-Timeout` header.
    request_timeout: bool,
    /// Success status, description, body.
    ok: (u16, &'static str, Body),
    /// Error statuses, each answered with the common error body.
    errors: &'static [u16],
    /// Route-specific responses that replace the common one for a status.
    special: &'static [(u16, &'static str, Body)],
    deprecated: bool,
}

impl Route {
    /// Rate-limited routes are exactly those that can answer 429.
    fn rate_limited(&self) -> bool {
        self.errors.contains(&429)
    }
}

const fn route(
    method: Method,
    path: &'static str,
    tag: &'static str,
    operation_id: &'static str,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        tag,
        operation_id,
        summary,
        description: "",
        auth: Auth::None,
        params: &[],
        query: &[],
        headers: &[],
        location: None,
        request: None,
        body_optional: false,
        request_timeout: false,
        ok: (200, "OK", Body::Json("Object")),
        errors: &[503],
        special: &[],
        deprecated: false,
    }
}

use Method::{Delete, Get, Post};

const V1_KEYED: &[u16] = &[401, 429, 503];

/// The operation names, for schemas of fields that take one as a string.
pub(crate) const OPERATIONS: &[&str] = &["summarize", "sentiment", "key_points", "questions", "qa"];
const JOB_STATUSES: &[&str] = &[
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "expired",
];

/// The public routes: `/`, `/v1/...`, the legacy redirects and the docs.
fn public_routes() -> Vec<Route> {
    vec![
        Route {
            description: "Name, version and the endpoint map. Not rate limited.",
            ok: (200, "Service information", Body::Json("RootResponse")),
            ..route(Get, "/", "service", "root", "What this server is")
        },
        Route {
            description: "Overall status (`healthy`, `degraded`, `unhealthy`) with per-component \
                detail: actors, providers, circuit breakers, Redis. Always 200: read `status`. \
                Not rate limited.",
            ok: (200, "Health report", Body::Json("HealthResponse")),
            ..route(Get, "/v1/health", "service", "health", "Service health")
        },
        Route {
            description: "200 while the process answers. Not rate limited.",
            ok: (200, "Alive", Body::Json("LiveResponse")),
            ..route(Get, "/v1/health/live", "service", "live", "Liveness probe")
        },
        Route {
            description: "200 when the actors run and the server is not draining; 503 with \
                `Retry-After: 1` otherwise. Not rate limited.",
            ok: (200, "Ready", Body::Json("ReadyResponse")),
            errors: &[],
            special: &[(
                503,
                "Not ready (readiness body: draining or actors down), or at capacity (error body)",
                Body::JsonOneOf(&["ReadyResponse", "ErrorBody"]),
            )],
            ..route(
                Get,
                "/v1/health/ready",
                "service",
                "ready",
                "Readiness probe",
            )
        },
        Route {
            description: "Checks the key and answers who it says you are. With no keys \
                configured (development) every caller is anonymous.",
            auth: Auth::Key,
            ok: (200, "Authenticated", Body::Json("AuthStatus")),
            errors: V1_KEYED,
            ..route(
                Get,
                "/v1/auth/status",
                "auth",
                "auth_status",
                "Check an API key",
            )
        },
        Route {
            description: "The five operations with their options, ranges and whether they need \
                a `question`. A key is optional, but a key that is sent must be valid.",
            auth: Auth::Optional,
            ok: (200, "The operations", Body::Json("OperationsResponse")),
            errors: V1_KEYED,
            ..route(
                Get,
                "/v1/text_processing/operations",
                "text processing",
                "operations",
                "List the operations",
            )
        },
        Route {
            description: "Runs one operation on a text. `text` is 10–10000 characters after \
                trimming (control characters are stripped, nothing else is removed); `qa` needs \
                `question` (at most 1000 characters), or `options.question` as the reference's clients \
                send it. `options` is any object: the names the operation uses are checked \
                (integers; a whole-number float such as `14.0` counts), any other name is ignored \
                and listed in `metadata.ignored_options` with a suggestion for a near-miss — or, \
                with `STRICT_OPTIONS=true`, a 422 whose `details` are `{field, allowed, \
                suggestion}`. `result`, `sentiment`, `key_points` and `questions` are always \
                present, `null` where the operation does not fill them. Text that \
                looks like prompt injection is kept, sent between delimiters and flagged in \
                `metadata`. An answer from a fallback provider has `metadata.degraded: true`.",
            auth: Auth::Key,
            request: Some("ProcessRequest"),
            request_timeout: true,
            ok: (200, "The answer", Body::Json("ProcessResponse")),
            errors: &[400, 401, 413, 415, 422, 429, 502, 503, 504],
            ..route(
                Post,
                "/v1/text_processing/process",
                "text processing",
                "process",
                "Process one text",
            )
        },
        Route {
            description: "Runs up to `MAX_BATCH_REQUESTS_PER_CALL` (default 50) requests, \
                `BATCH_AI_CONCURRENCY_LIMIT` at a time. One item's failure never fails the batch: \
                it is reported in its `results` entry with `error` and `error_code`. The batch \
                costs one rate-limit unit per item. A `batch_id` still running is a 409.",
            auth: Auth::Key,
            request: Some("BatchRequest"),
            request_timeout: true,
            ok: (200, "Per-item results", Body::Json("BatchResponse")),
            errors: &[400, 401, 409, 413, 415, 422, 429, 503],
            ..route(
                Post,
                "/v1/text_processing/batch_process",
                "text processing",
                "batch_process",
                "Process a batch of texts",
            )
        },
        Route {
            description: "Progress of a recent batch, visible only to the key that submitted it \
                (others get 404). `status` is `processing` (items still running) or `completed` \
                (every item finished, successfully or not; see `completed` and `failed`). Unlike \
                the reference's stub, which always says `COMPLETED_SYNC`, it is the real state; \
                `message` says the same in a sentence.",
            auth: Auth::Key,
            params: &[(
                "batch_id",
                "The batch id (the client's or the generated one)",
                &[],
            )],
            ok: (200, "The batch's progress", Body::Json("BatchStatus")),
            errors: &[401, 404, 429, 503],
            ..route(
                Get,
                "/v1/text_processing/batch_status/{batch_id}",
                "text processing",
                "batch_status",
                "Status of a batch",
            )
        },
        Route {
            description: "Hands keel a job and answers at once with its id; keel runs it on \
                whichever instance is alive, through the same pipeline as `/process` (cache, \
                breakers, retries, fallback). The body is the `/process` body plus optional \
                `callback_url`, `metadata` (≤ 1 KB, echoed back) and `ttl_seconds` (how long keel \
                may keep trying, 1–86400, default `JOB_DEFAULT_TTL_SECONDS`). Validated exactly \
                like `/process`: a job that can only fail is a 422 now. Answers 202 with \
                `Location: /v1/jobs/{job_id}`. With `Idempotency-Key`, the same key and body from \
                the same caller within 24 h answers 200 with the existing job; a different body \
                is 409 `IDEMPOTENCY_CONFLICT`. 503 `QUEUE_FULL` when the queue holds \
                `JOB_QUEUE_MAX` jobs, 503 `JOB_STORE_UNAVAILABLE` when a durable store cannot \
                persist it (never accepted and then lost); both with `Retry-After`. Costs one \
                rate-limit unit.",
            auth: Auth::Key,
            headers: &[(
                "Idempotency-Key",
                "1–255 visible ASCII characters; a repeat returns the existing job",
                &[],
            )],
            request: Some("JobRequest"),
            location: Some("`/v1/jobs/{job_id}`: where to poll the job"),
            ok: (202, "Accepted (see `Location`)", Body::Json("Accepted")),
            errors: &[400, 401, 409, 413, 415, 422, 429, 503],
            special: &[(
                200,
                "An idempotent repeat: the existing job",
                Body::Json("Accepted"),
            )],
            ..route(
                Post,
                "/v1/jobs",
                "jobs",
                "submit_job",
                "Submit an async job",
            )
        },
        Route {
            description: "The caller's jobs, newest first, `limit` per page; pass `next_cursor` \
                back as `cursor` for the next page (`null` on the last).",
            auth: Auth::Key,
            query: &[
                (
                    "status",
                    "Only jobs in this status",
                    QueryValue::OneOf(JOB_STATUSES),
                ),
                (
                    "operation",
                    "Only jobs of this operation",
                    QueryValue::OneOf(OPERATIONS),
                ),
                (
                    "limit",
                    "Page size",
                    QueryValue::Integer {
                        min: 1,
                        max: 100,
                        default: 20,
                    },
                ),
                (
                    "cursor",
                    "The previous page's `next_cursor`",
                    QueryValue::Text,
                ),
            ],
            ok: (200, "A page of jobs", Body::Json("JobList")),
            errors: &[401, 422, 429, 503],
            ..route(Get, "/v1/jobs", "jobs", "list_jobs", "List your jobs")
        },
        Route {
            description: "A job: `status` is `queued`, `running`, `succeeded`, `failed`, \
                `cancelled` or `expired`; `result` (once succeeded) is exactly the `/process` \
                success body; `error` (once failed or expired) is `{error, error_code, \
                retryable}`; `webhook` records the callback's outcome. Only the caller that \
                created the job sees it (anyone else: 404). `?wait=N` holds the request until \
                the job is final or N seconds pass (answering within milliseconds of the job \
                finishing); the body then says where the job is either way.",
            auth: Auth::Key,
            params: &[("job_id", "The job id from the submission", &[])],
            query: &[(
                "wait",
                "Seconds to wait for a final state (fractions allowed)",
                QueryValue::Number {
                    min: 0.0,
                    max: 60.0,
                    default: 0.0,
                },
            )],
            ok: (200, "The job", Body::Json("JobView")),
            errors: &[401, 404, 422, 429, 503],
            ..route(Get, "/v1/jobs/{job_id}", "jobs", "get_job", "Get a job")
        },
        Route {
            description: "Cancels a job: a queued job is `cancelled` at once; a running one is \
                stopped on whichever instance runs it (its provider call dropped) within a \
                second. Answers the job as it now is. A job already final is a 409.",
            auth: Auth::Key,
            params: &[("job_id", "The job id", &[])],
            ok: (200, "The cancelled job", Body::Json("JobView")),
            errors: &[401, 404, 409, 429, 503],
            ..route(
                Delete,
                "/v1/jobs/{job_id}",
                "jobs",
                "cancel_job",
                "Cancel a job",
            )
        },
        Route {
            description: "The reference API's domain-service health, derived from `/v1/health` \
                (same status, same rules): `overall_healthy` is `status == \"healthy\"`. A key \
                is optional, but a key that is sent must be valid.",
            auth: Auth::Optional,
            ok: (200, "Domain health", Body::Json("TextProcessingHealth")),
            errors: V1_KEYED,
            ..route(
                Get,
                "/v1/text_processing/health",
                "text processing",
                "text_processing_health",
                "Text-processing service health",
            )
        },
        Route {
            description: "Legacy path of the reference API: permanent redirect to `/v1/health`.",
            ok: (301, "Moved permanently", Body::Redirect("/v1/health")),
            deprecated: true,
            ..route(
                Get,
                "/health",
                "legacy",
                "legacy_health",
                "Redirect to /v1/health",
            )
        },
        Route {
            description: "Legacy path of the reference API: permanent redirect to \
                `/v1/auth/status`.",
            ok: (301, "Moved permanently", Body::Redirect("/v1/auth/status")),
            deprecated: true,
            ..route(
                Get,
                "/auth/status",
                "legacy",
                "legacy_auth_status",
                "Redirect to /v1/auth/status",
            )
        },
        Route {
            description: "This document.",
            ok: (200, "The OpenAPI 3.1 document", Body::Json("Object")),
            ..route(Get, PUBLIC_SPEC_PATH, "docs", "openapi", "OpenAPI document")
        },
        Route {
            description: "Redirects to `/docs/`.",
            ok: (303, "See `/docs/`", Body::Redirect("/docs/")),
            ..route(
                Get,
                "/docs",
                "docs",
                "docs_redirect",
                "Swagger UI (redirect)",
            )
        },
        Route {
            description: "Swagger UI for this document, served from the binary.",
            ok: (200, "The Swagger UI page", Body::Text("text/html")),
            ..route(Get, "/docs/", "docs", "docs", "Swagger UI")
        },
        Route {
            description: "Swagger UI's scripts, styles and icons.",
            params: &[("file", "Asset file name, e.g. `swagger-ui-bundle.js`", &[])],
            ok: (200, "The asset", Body::Text("application/octet-stream")),
            errors: &[404, 503],
            ..route(
                Get,
                "/docs/{file}",
                "docs",
                "docs_asset",
                "Swagger UI asset",
            )
        },
    ]
}

/// The operator routes under `/internal`.
fn internal_routes() -> Vec<Route> {
    vec![
        Route {
            description: "This document.",
            ok: (200, "The OpenAPI 3.1 document", Body::Json("Object")),
            ..route(
                Get,
                INTERNAL_SPEC_PATH,
                "docs",
                "internal_openapi",
                "OpenAPI document",
            )
        },
        Route {
            description: "Redirects to `/internal/docs/`.",
            ok: (
                303,
                "See `/internal/docs/`",
                Body::Redirect("/internal/docs/"),
            ),
            ..route(
                Get,
                "/internal/docs",
                "docs",
                "internal_docs_redirect",
                "Swagger UI (redirect)",
            )
        },
        Route {
            description: "Swagger UI for this document, served from the binary.",
            ok: (200, "The Swagger UI page", Body::Text("text/html")),
            ..route(
                Get,
                "/internal/docs/",
                "docs",
                "internal_docs",
                "Swagger UI",
            )
        },
        Route {
            description: "Swagger UI's scripts, styles and icons.",
            params: &[("file", "Asset file name, e.g. `swagger-ui-bundle.js`", &[])],
            ok: (200, "The asset", Body::Text("application/octet-stream")),
            errors: &[404, 503],
            ..route(
                Get,
                "/internal/docs/{file}",
                "docs",
                "internal_docs_asset",
                "Swagger UI asset",
            )
        },
    ]
}

// ---------------------------------------------------------------------------
// Building the documents
// ---------------------------------------------------------------------------

/// Which document is being built (wording of auth and errors differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    Public,
    Internal,
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

/// Expresses in `ProcessRequest`'s schema what the handler enforces: a `qa`
/// job needs `question` or `options.question`. The derived object becomes
/// the first part of an `allOf` whose second part is that rule (an `anyOf`:
/// another operation, or a question in one of the two places); the examples
/// and the description move to the `allOf` so they stay at the top.
fn require_question_for_qa(components: &mut Components) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, Schema};
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
            .enum_values(Some(OPERATIONS.iter().copied().filter(|o| *o != "qa"))),
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

/// The public document: `/`, `/v1/...`, the legacy redirects and the docs routes.
pub fn public_doc() -> OpenApi {
    build(Surface::Public, &public_routes())
}

/// The operator document: everything under `/internal`. The routes still in
/// the table come from [`internal_routes`]; the others are derived from
/// their handlers' `#[utoipa::path]` through the router that serves them
/// ([`crate::api::internal::routes`]) and get the shared parts
/// from [`add_derived`].
pub fn internal_doc() -> OpenApi {
    let mut doc = build(Surface::Internal, &internal_routes());
    add_derived(&mut doc, crate::api::internal::routes().into_openapi());
    doc
}

/// Adds the operations and schemas of a derived document to `doc`, giving
/// every derived operation what the table's [`operation`] gives a row: the
/// common headers on every response, the shared error response (with its
/// headers) for every error status, `X-RateLimit-*` on success when the
/// route can answer 429, and the `default` error response. The handlers
/// state only what is theirs: summary, parameters, bodies, which statuses,
/// and the security requirement.
fn add_derived(doc: &mut OpenApi, derived: OpenApi) {
    let mut paths = derived.paths;
    for item in paths.paths.values_mut() {
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
            finish_derived(op);
        }
    }
    doc.paths.merge(paths);
    if let Some(schemas) = derived.components.map(|c| c.schemas) {
        doc.components
            .get_or_insert_with(Components::new)
            .schemas
            .extend(schemas);
    }
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

/// The shared parts of one derived operation (see [`add_derived`]). A
/// handler's `request_body(content = Option<T>)` (the body may be left out)
/// derives as `oneOf [T, null]` with no `required`; it is documented as the
/// table documents an optional body: the plain `$ref` with `required: false`.
fn finish_derived(op: &mut Operation) {
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
        let code: u16 = status.parse().expect("numeric status in #[utoipa::path]");
        if code >= 400 {
            *response = Ref::from_response_name(error_response_name(code)).into();
            continue;
        }
        let RefOr::T(inline) = response else { continue };
        let mut builder = with_common_headers(ResponseBuilder::new());
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

fn build(surface: Surface, routes: &[Route]) -> OpenApi {
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
                ("resilience", "Resilience health, configuration, metrics"),
                ("circuit breakers", "Breaker state and manual control"),
                ("presets", "Resilience presets, recommendations, validation"),
                ("dashboard", "Operator HTML page"),
                ("docs", "This document and its Swagger UI"),
            ],
        ),
    };
    let mut paths = PathsBuilder::new();
    for r in routes {
        paths = paths.path(r.path, PathItem::new(r.method.http(), operation(r)));
    }
    let mut components = match surface {
        Surface::Public => schemas::PublicSchemas::openapi().components,
        Surface::Internal => schemas::InternalSchemas::openapi().components,
    }
    .unwrap_or_else(Components::new);
    if surface == Surface::Public {
        require_question_for_qa(&mut components);
    }
    add_error_responses(&mut components, surface);
    add_security_schemes(&mut components, surface);
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(title)
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(description)),
        )
        .paths(paths)
        .components(Some(components))
        .tags(Some(tags.iter().map(|(name, description)| {
            TagBuilder::new()
                .name(*name)
                .description(Some(*description))
                .build()
        })))
        .build()
}

/// One operation from its table row.
fn operation(r: &Route) -> Operation {
    let mut op = OperationBuilder::new()
        .tag(r.tag)
        .operation_id(Some(r.operation_id))
        .summary(Some(r.summary))
        .description((!r.description.is_empty()).then_some(r.description));
    if r.deprecated {
        op = op.deprecated(Some(Deprecated::True));
    }
    for (name, description, values) in r.params {
        let mut schema = ObjectBuilder::new().schema_type(Type::String);
        if !values.is_empty() {
            schema = schema.enum_values(Some(values.iter().copied()));
        }
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(*description))
                .schema(Some(schema)),
        );
    }
    for (name, description, value) in r.query {
        let schema = match *value {
            QueryValue::Integer { min, max, default } => ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(min))
                .maximum(Some(max))
                .default(Some(default.into())),
            QueryValue::Number { min, max, default } => ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(min))
                .maximum(Some(max))
                .default(Some(default.into())),
            QueryValue::Text => ObjectBuilder::new().schema_type(Type::String),
            QueryValue::OneOf(values) => ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values.iter().copied())),
        };
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(schema)),
        );
    }
    for (name, description, allowed) in r.headers {
        let mut schema = ObjectBuilder::new().schema_type(Type::String);
        if !allowed.is_empty() {
            schema = schema.enum_values(Some(allowed.iter().copied()));
        }
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(schema)),
        );
    }
    if r.request_timeout {
        op = op.parameter(
            ParameterBuilder::new()
                .name("Request-Timeout")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Seconds (fractions allowed, at most 600) this job may take; can only \
                     shorten the operation's own deadline. Malformed: 400.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Number)
                        .exclusive_minimum(Some(0))
                        .maximum(Some(600)),
                )),
        );
    }
    if let Some(schema) = r.request {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(if r.body_optional {
                    Required::False
                } else {
                    Required::True
                }))
                .content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(schema)))
                        .build(),
                )
                .build(),
        ));
    }
    // Success.
    let (status, description, body) = r.ok;
    let mut ok = with_common_headers(ResponseBuilder::new().description(description));
    ok = with_body(ok, body);
    if let Body::Redirect(to) = body {
        ok = ok.header("Location", header(Type::String, &format!("`{to}`")));
        if status == 301 {
            ok = ok.header("X-API-Version", header(Type::String, "`v1`"));
        }
    }
    if let Some(to) = r.location {
        ok = ok.header("Location", header(Type::String, to));
    }
    if r.rate_limited() {
        ok = with_rate_limit_headers(ok);
    }
    op = op.response(status.to_string(), ok.build());
    // Errors.
    for &status in r.errors {
        op = op.response(
            status.to_string(),
            Ref::from_response_name(error_response_name(status)),
        );
    }
    for &(status, description, body) in r.special {
        let mut special = with_common_headers(ResponseBuilder::new().description(description));
        special = with_body(special, body);
        if status == 503 || status == 429 {
            special = special.header("Retry-After", retry_after());
        }
        if (200..300).contains(&status) {
            if let Some(to) = r.location {
                special = special.header("Location", header(Type::String, to));
            }
            if r.rate_limited() {
                special = with_rate_limit_headers(special);
            }
        }
        op = op.response(status.to_string(), special.build());
    }
    op = op.response("default", Ref::from_response_name("Error"));
    // Auth.
    let schemes = [
        SecurityRequirement::new(BEARER, Vec::<String>::new()),
        SecurityRequirement::new(API_KEY, Vec::<String>::new()),
    ];
    // The schemes' descriptions (per document) say which key applies.
    match r.auth {
        Auth::None => {}
        Auth::Optional => {
            op = op.securities(Some(
                std::iter::once(SecurityRequirement::default()).chain(schemes),
            ));
        }
        Auth::Key | Auth::Operator => op = op.securities(Some(schemes)),
    }
    op.build()
}

fn with_body(response: ResponseBuilder, body: Body) -> ResponseBuilder {
    match body {
        Body::Json(schema) => response.content(
            JSON,
            ContentBuilder::new()
                .schema(Some(schema_ref(schema)))
                .build(),
        ),
        Body::JsonOneOf(names) => {
            let mut one_of = OneOfBuilder::new();
            for name in names {
                one_of = one_of.item(Ref::from_schema_name(*name));
            }
            response.content(
                JSON,
                ContentBuilder::new()
                    .schema(Some(Schema::OneOf(one_of.build())))
                    .build(),
            )
        }
        Body::Text(content_type) => response.content(
            content_type,
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        ),
        Body::Redirect(_) => response,
    }
}

/// `Object` stands for a free-form JSON object; anything else is a component.
fn schema_ref(name: &str) -> RefOr<Schema> {
    if name == "Object" {
        ObjectBuilder::new().schema_type(Type::Object).into()
    } else {
        Ref::from_schema_name(name).into()
    }
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
    let mut all: Vec<(String, Response)> = ERRORS
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

fn swagger(docs_path: &'static str, spec_path: &'static str, doc: OpenApi) -> SwaggerUi {
    SwaggerUi::new(docs_path).url(spec_path, doc).config(
        Config::new([spec_path])
            // The validator badge would call an external service.
            .validator_url("none")
            .display_request_duration(true)
            .filter(true),
    )
}

/// Routes serving `/openapi.json`, `/docs` (Swagger UI for the public doc)
/// and — when `internal_docs` — `/internal/openapi.json` and
/// `/internal/docs`. All assets offline.
///
/// `/docs` redirects (303) to `/docs/`, which serves the page; its scripts and
/// styles are embedded in the binary and referenced by relative URLs. The
/// routes need no key: pass `internal_docs = false` where the operator API's
/// shape must not be published.
pub fn docs_routes<S: Clone + Send + Sync + 'static>(internal_docs: bool) -> Router<S> {
    let router = Router::from(swagger(PUBLIC_DOCS_PATH, PUBLIC_SPEC_PATH, public_doc()));
    if internal_docs {
        router.merge(Router::from(swagger(
            INTERNAL_DOCS_PATH,
            INTERNAL_SPEC_PATH,
            internal_doc(),
        )))
    } else {
        router
    }
}

// ---------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------

/// Documentation-only mirrors of the wire shapes. Each follows the real type
/// (named in a `// Mirrors` comment) field by field, with the same serde attributes, so the
/// generated schema says what keel really sends and accepts. They are never
/// constructed.
#[allow(dead_code)]
mod schemas {
    use crate::job::Operation;
    use crate::providers::ProviderKind;
    use serde::{Deserialize, Serialize};
    use serde_json::Value;
    use std::collections::BTreeMap;
    use utoipa::{OpenApi, ToSchema};

    /// Components of the public document.
    #[derive(OpenApi)]
    #[openapi(components(schemas(
        ErrorBody,
        crate::job::Operation,
        crate::providers::ProviderKind,
        TextProcessingHealth,
        RootResponse,
        HealthResponse,
        LiveResponse,
        ReadyResponse,
        AuthStatus,
        OperationsResponse,
        ProcessRequest,
        ProcessResponse,
        BatchRequest,
        BatchResponse,
        BatchStatus,
        JobRequest,
        JobList,
        crate::jobs::Accepted,
        crate::jobs::JobView,
        crate::jobs::JobStatus,
        crate::jobs::JobFailure,
        crate::jobs::WebhookState,
    )))]
    pub struct PublicSchemas;

    /// Components of the operator document.
    #[derive(OpenApi)]
    #[openapi(components(schemas(ErrorBody,)))]
    pub struct InternalSchemas;

    // ----- shared -------------------------------------------------------

    // Mirrors `crate::api::error::ErrorBody`.
    /// The one error body of both APIs.
    #[derive(Serialize, ToSchema)]
    #[schema(examples(json!({
        "success": false,
        "error": "text must be at least 10 characters after trimming, got 2",
        "error_code": "VALIDATION_ERROR",
        "details": {"field": "text", "length": 2, "min": 10},
        "detail": [{"loc": ["body", "text"],
                    "msg": "text must be at least 10 characters after trimming, got 2",
                    "type": "string_too_short"}],
        "request_id": "92d71b23-a32b-4af5-9c59-82a2b2a6c061",
        "timestamp": "2026-11-22T01:13:17.441Z"
    })))]
    pub struct ErrorBody {
        /// Always `false`.
        pub success: bool,
        /// Human-readable message.
        pub error: String,
        /// Stable machine-readable code: `BAD_REQUEST`, `AUTHENTICATION_ERROR`,
        /// `AUTHORIZATION_ERROR`, `NOT_FOUND`, `METHOD_NOT_ALLOWED`, `CONFLICT`,
        /// `PAYLOAD_TOO_LARGE`, `UNSUPPORTED_MEDIA_TYPE`, `VALIDATION_ERROR`,
        /// `RATE_LIMIT_EXCEEDED`, `INTERNAL_ERROR`, `AI_SERVICE_ERROR`,
        /// `SERVICE_UNAVAILABLE`, `GATEWAY_TIMEOUT`, …
        pub error_code: String,
        /// Structured detail (e.g. `{"field": "text", "max": 10000}`), or `null`.
        #[schema(required = true)]
        pub details: Option<Value>,
        /// FastAPI-compatible form for the reference's clients.
        pub detail: Detail,
        /// The request's `X-Request-ID`.
        pub request_id: String,
        /// When the error was produced (RFC 3339).
        #[schema(format = DateTime)]
        pub timestamp: String,
    }

    // Mirrors `crate::api::error::Detail`.
    /// FastAPI's `detail`: a string in general, `{message, context}` for a
    /// 401, a list of `{loc, msg, type}` for a 422.
    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    pub enum Detail {
        /// The message.
        Message(String),
        /// 401.
        Auth(AuthDetail),
        /// 422.
        Validation(Vec<ValidationIssue>),
    }

    /// `detail` of a 401, as the reference's `HTTPException`.
    #[derive(Serialize, ToSchema)]
    pub struct AuthDetail {
        /// The message (e.g. "Invalid API key", "API key required: ...").
        pub message: String,
        /// What the request presented.
        pub context: AuthContext,
    }

    // Mirrors `crate::api::error::AuthFailure`.
    /// `detail.context` of a 401.
    #[derive(Serialize, ToSchema)]
    pub struct AuthContext {
        /// `bearer_token` or `x_api_key`.
        pub auth_method: String,
        /// `ENVIRONMENT` of the server.
        pub environment: String,
        /// Whether a key was sent.
        pub credentials_provided: bool,
        /// First 8 characters of the rejected key; `null` when none was sent.
        #[schema(required = true)]
        pub key_prefix: Option<String>,
    }

    /// One entry of a 422 `detail`, as FastAPI's request-validation errors.
    #[derive(Serialize, ToSchema)]
    pub struct ValidationIssue {
        /// Where: `["body", "options", "max_length"]`.
        pub loc: Vec<LocPart>,
        /// The message.
        pub msg: String,
        /// A pydantic error type: `missing`, `extra_forbidden`, `int_type`,
        /// `too_short`, `string_too_short`, `value_out_of_range`, `value_error`, …
        #[serde(rename = "type")]
        pub kind: String,
    }

    /// A `loc` element: a field name or an array index.
    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    pub enum LocPart {
        /// A field name.
        Name(String),
        /// An array index.
        Index(u64),
    }

    // ----- public: service ------------------------------------------------

    // Mirrors `crate::api::health::root`.
    /// `GET /`.
    #[derive(Serialize, ToSchema)]
    pub struct RootResponse {
        /// Service name and tagline.
        pub message: String,
        /// keel's version.
        pub version: String,
        /// Always `v1`.
        pub api_version: String,
        /// Endpoint name → path.
        pub endpoints: BTreeMap<String, String>,
    }

    /// Overall health.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum HealthStatus {
        /// Everything works.
        Healthy,
        /// Serving, with a breaker not closed, Redis down (memory tiers
        /// answer) or draining.
        Degraded,
        /// The actors are down.
        Unhealthy,
    }

    // Mirrors `crate::api::health::health`.
    /// `GET /v1/health`.
    #[derive(Serialize, ToSchema)]
    pub struct HealthResponse {
        /// Overall status.
        pub status: HealthStatus,
        /// RFC 3339.
        #[schema(format = DateTime)]
        pub timestamp: String,
        /// keel's version.
        pub version: String,
        /// At least one provider is configured.
        pub ai_model_available: bool,
        /// Actors run and every breaker is closed.
        pub resilience_healthy: bool,
        /// The cache's Redis tier (if any) is reachable.
        pub cache_healthy: bool,
        /// Why the status is not `healthy`.
        pub degraded_reasons: Vec<String>,
        /// Per-component detail.
        pub components: HealthComponents,
        /// Seconds since start.
        pub uptime_seconds: u64,
    }

    /// `components` of [`HealthResponse`].
    #[derive(Serialize, ToSchema)]
    pub struct HealthComponents {
        /// The actor tree.
        pub actors: ActorsHealth,
        /// The provider chain, primary first.
        pub providers: Vec<ProviderHealth>,
        /// Breakers not letting traffic through normally.
        pub circuit_breakers: BreakersHealth,
        /// The resilience preset in force.
        pub resilience_preset: String,
        /// Redis, when configured.
        pub redis: RedisHealth,
    }

    /// The actor tree's health.
    #[derive(Serialize, ToSchema)]
    pub struct ActorsHealth {
        /// Every actor runs.
        pub healthy: bool,
        /// Supervised restarts per actor name.
        pub restarts: BTreeMap<String, u64>,
    }

    /// Provider role in the chain.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum ProviderRole {
        /// Tried first.
        Primary,
        /// Tried when those before it fail.
        Fallback,
    }

    /// One provider of the chain.
    #[derive(Serialize, ToSchema)]
    pub struct ProviderHealth {
        /// The provider.
        pub name: ProviderKind,
        /// Its model.
        pub model: String,
        /// Primary or fallback.
        pub role: ProviderRole,
        /// Its actor runs.
        pub actor_alive: bool,
        /// Restarts of its actor so far.
        pub actor_generation: u64,
    }

    /// Breakers summary.
    #[derive(Serialize, ToSchema)]
    pub struct BreakersHealth {
        /// Breakers in total.
        pub total: usize,
        /// Breakers open, half-open or forced open.
        pub not_closed: Vec<NamedState>,
    }

    /// A breaker's name and state.
    #[derive(Serialize, ToSchema)]
    pub struct NamedState {
        /// `provider:operation`.
        pub name: String,
        /// Its state.
        pub state: BreakerState,
    }

    /// Redis summary.
    #[derive(Serialize, ToSchema)]
    pub struct RedisHealth {
        /// `REDIS_URL` is set.
        pub configured: bool,
        /// The cache's link, `null` without Redis.
        #[schema(required = true)]
        pub cache: Option<crate::redis_link::RedisStatus>,
        /// The rate limiter's link, `null` without Redis.
        #[schema(required = true)]
        pub rate_limiter: Option<crate::redis_link::RedisStatus>,
    }

    /// `GET /v1/health/live`.
    #[derive(Serialize, ToSchema)]
    #[schema(examples(json!({"status": "alive"})))]
    pub struct LiveResponse {
        /// Always `alive`.
        pub status: String,
    }

    /// `GET /v1/health/ready`.
    #[derive(Serialize, ToSchema)]
    #[schema(examples(json!({"status": "ready", "reason": null})))]
    pub struct ReadyResponse {
        /// `ready` or `not_ready`.
        pub status: String,
        /// `draining` or `actors not running` when not ready, else `null`.
        #[schema(required = true)]
        pub reason: Option<String>,
    }

    /// `GET /v1/auth/status`.
    #[derive(Serialize, ToSchema)]
    #[schema(examples(json!({
        "authenticated": true,
        "api_key_prefix": "sk-live-...",
        "message": "Authentication successful"
    })))]
    pub struct AuthStatus {
        /// Always `true` (a bad key is a 401).
        pub authenticated: bool,
        /// First 8 characters of the key and `...`; `developm...` with open
        /// access (the reference reports the key as `development`).
        #[schema(required = true)]
        pub api_key_prefix: Option<String>,
        /// Human-readable outcome.
        pub message: String,
        /// Who the credential resolved to: `{id, kind: static_key | client_key | jwt |
        /// anonymous, roles, tenant, limits}` (never the secret).
        pub identity: Value,
    }

    /// `GET /v1/text_processing/operations`.
    #[derive(Serialize, ToSchema)]
    pub struct OperationsResponse {
        /// The five operations.
        pub operations: Vec<OperationInfo>,
    }

    /// One operation's description.
    #[derive(Serialize, ToSchema)]
    pub struct OperationInfo {
        /// The wire name.
        pub id: Operation,
        /// Display name.
        pub name: String,
        /// What it does.
        pub description: String,
        /// Option names it takes.
        pub options: Vec<String>,
        /// True for `qa`.
        pub requires_question: bool,
        /// Range and default per option (absent when it takes none).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub option_ranges: Option<BTreeMap<String, OptionRange>>,
    }

    /// An option's range.
    #[derive(Serialize, ToSchema)]
    pub struct OptionRange {
        /// Smallest value.
        pub min: i64,
        /// Largest value.
        pub max: i64,
        /// Value when absent.
        pub default: i64,
    }

    // ----- public: text processing ---------------------------------------

    // Mirrors `crate::api::text::ProcessRequest`.
    /// Body of `POST /v1/text_processing/process`.
    #[derive(Deserialize, ToSchema)]
    #[schema(examples(json!({
        "text": "The city of Riverton launched a solar energy program this spring. The program will install panels on two hundred public buildings. Officials expect the panels to cut the city energy costs by a third.",
        "operation": "summarize",
        "options": {"max_length": 25}
    })))]
    pub struct ProcessRequest {
        /// The text: 10–10000 characters **after trimming** leading and
        /// trailing whitespace (so the raw string may be longer), not
        /// whitespace only. Control characters are stripped; nothing else is
        /// removed.
        #[schema(min_length = 10, max_length = 10000)]
        pub text: String,
        /// The operation (an unknown name is a 422).
        pub operation: Operation,
        /// **Required when `operation` is `qa`** (or as `options.question`;
        /// a `qa` request without either is a 422); at most 1000 characters;
        /// ignored otherwise.
        #[serde(default)]
        pub question: Option<String>,
        /// Operation options: any object (see `ProcessOptions`).
        #[serde(default)]
        pub options: Option<ProcessOptions>,
        /// Accepted for compatibility with the reference API; not used.
        #[serde(default)]
        pub user_metadata: Option<Value>,
    }

    // Mirrors `crate::api::text::allowed_options`.
    /// Options. Each operation reads its own name (summarize `max_length`,
    /// key_points `max_points`, questions `num_questions`, qa `question`);
    /// any other name is ignored and listed in `metadata.ignored_options`,
    /// or is a 422 with `STRICT_OPTIONS=true`. Integers: a whole-number
    /// float such as `14.0` is accepted.
    #[derive(Deserialize, ToSchema)]
    pub struct ProcessOptions {
        /// qa: the question, when the top-level `question` is absent.
        pub question: Option<String>,
        /// summarize: about this many words, 10–1000 (default 100).
        #[schema(minimum = 10, maximum = 1000, default = 100)]
        pub max_length: Option<i64>,
        /// key_points: 1–20 (default 5).
        #[schema(minimum = 1, maximum = 20, default = 5)]
        pub max_points: Option<i64>,
        /// questions: 1–20 (default 5).
        #[schema(minimum = 1, maximum = 20, default = 5)]
        pub num_questions: Option<i64>,
    }

    // Mirrors `crate::api::text::ProcessResponse`.
    /// A successful answer. `result`, `sentiment`, `key_points` and
    /// `questions` are always present; which is non-null depends on the
    /// operation.
    #[derive(Serialize, ToSchema)]
    #[schema(examples(json!({
        "operation": "summarize",
        "success": true,
        "result": "The city of Riverton launched a solar energy program this spring.",
        "sentiment": null,
        "key_points": null,
        "questions": null,
        "metadata": {"word_count": 66, "provider": "local", "model": "keel-local-1",
                     "attempts": 1, "degraded": false, "prompt_injection_suspected": false},
        "processing_time": 0.000157842,
        "timestamp": "2026-11-22T01:13:17.441Z",
        "cache_hit": false
    })))]
    pub struct ProcessResponse {
        /// The operation run.
        pub operation: Operation,
        /// Always `true`.
        pub success: bool,
        /// summarize and qa: the text answer; `null` otherwise.
        #[schema(required = true)]
        pub result: Option<String>,
        /// sentiment: the verdict; `null` otherwise.
        #[schema(required = true)]
        pub sentiment: Option<Sentiment>,
        /// key_points: the points, most important first; `null` otherwise.
        #[schema(required = true)]
        pub key_points: Option<Vec<String>>,
        /// questions: the questions; `null` otherwise.
        #[schema(required = true)]
        pub questions: Option<Vec<String>>,
        /// How the answer was produced.
        pub metadata: ResponseMetadata,
        /// Seconds spent on this job.
        pub processing_time: f64,
        /// When the answer was produced (RFC 3339).
        #[schema(format = DateTime)]
        pub timestamp: String,
        /// True when served from cache.
        pub cache_hit: bool,
    }

    // Mirrors `crate::api::text::ResponseMetadata`.
    /// `metadata` of an answer.
    #[derive(Serialize, ToSchema)]
    pub struct ResponseMetadata {
        /// Words in the processed text.
        pub word_count: u64,
        /// The provider that answered.
        pub provider: ProviderKind,
        /// The model that answered.
        pub model: String,
        /// Provider calls made for this job.
        pub attempts: u32,
        /// True when a fallback answered.
        pub degraded: bool,
        /// Why the primary did not answer.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub degraded_reason: Option<String>,
        /// True when the text looked like a prompt-injection attempt (it is
        /// kept and sent between delimiters).
        pub prompt_injection_suspected: bool,
        /// Which injection patterns were seen.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub injection_signals: Vec<String>,
        /// Token usage, when the upstream reported it.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub usage: Option<TokenUsage>,
        /// qa: how sure the provider is of the answer, when it can tell.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub answer_confidence: Option<f64>,
        /// Option names sent but not used by the operation (absent when none).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub ignored_options: Vec<IgnoredOption>,
    }

    // Mirrors `crate::api::text::IgnoredOption`.
    /// An option name the operation does not use.
    #[derive(Serialize, ToSchema)]
    pub struct IgnoredOption {
        /// The name as sent.
        pub name: String,
        /// The allowed name it most likely meant, or `null`.
        #[schema(required = true)]
        pub suggestion: Option<String>,
        /// Human-readable reason.
        pub message: String,
    }

    // Mirrors `crate::providers::TokenUsage`.
    /// Tokens an upstream reported.
    #[derive(Serialize, ToSchema)]
    pub struct TokenUsage {
        /// Tokens in the prompt.
        pub prompt_tokens: u64,
        /// Tokens in the answer.
        pub completion_tokens: u64,
    }

    // Mirrors `crate::job::Sentiment`.
    /// A sentiment verdict.
    #[derive(Serialize, ToSchema)]
    pub struct Sentiment {
        /// The label.
        pub sentiment: SentimentLabel,
        /// How sure, 0.0–1.0.
        #[schema(minimum = 0.0, maximum = 1.0)]
        pub confidence: f64,
        /// A short reason (cue words for the local provider).
        pub explanation: String,
    }

    // Mirrors `crate::job::SentimentLabel`.
    /// Sentiment labels.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum SentimentLabel {
        /// Predominantly favourable.
        Positive,
        /// Predominantly unfavourable.
        Negative,
        /// Neither, or balanced evidence.
        Neutral,
    }

    // Mirrors `crate::api::text::BatchRequest`.
    /// Body of `POST /v1/text_processing/batch_process`.
    #[derive(Deserialize, ToSchema)]
    #[schema(examples(json!({
        "batch_id": "demo-1",
        "requests": [
            {"text": "The support team was friendly and solved my problem quickly.", "operation": "sentiment"},
            {"text": "too short", "operation": "summarize"}
        ]
    })))]
    pub struct BatchRequest {
        /// 1 to `MAX_BATCH_REQUESTS_PER_CALL` (default 50) requests. An item
        /// that is not a valid request fails alone (in its result), not the batch.
        #[schema(min_items = 1)]
        pub requests: Vec<ProcessRequest>,
        /// Optional client id (generated when absent): 1–100 letters, digits,
        /// `-`, `_`, `.`, `:`.
        #[serde(default)]
        #[schema(pattern = r"^[A-Za-z0-9._:-]{1,100}$")]
        pub batch_id: Option<String>,
    }

    /// An item's outcome.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum BatchItemStatus {
        /// Answered: see `response`.
        Completed,
        /// Failed: see `error` and `error_code`.
        Failed,
    }

    // Mirrors `crate::api::text::BatchItem`.
    /// One item of a batch.
    #[derive(Serialize, ToSchema)]
    pub struct BatchItem {
        /// Position in `requests`.
        pub request_index: u64,
        /// Completed or failed.
        pub status: BatchItemStatus,
        /// The answer, when completed; `null` when failed.
        #[schema(required = true)]
        pub response: Option<ProcessResponse>,
        /// The error message, when failed; `null` when completed.
        #[schema(required = true)]
        pub error: Option<String>,
        /// The error code, when failed (as in [`ErrorBody`]).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub error_code: Option<String>,
    }

    // Mirrors `crate::api::text::BatchResponse`.
    /// A batch's results.
    #[derive(Serialize, ToSchema)]
    pub struct BatchResponse {
        /// The batch id (the client's or generated).
        pub batch_id: String,
        /// Items submitted.
        pub total_requests: u64,
        /// Items answered.
        pub completed: u64,
        /// Items failed.
        pub failed: u64,
        /// Per-item outcomes, in request order.
        pub results: Vec<BatchItem>,
        /// Seconds for the whole batch.
        pub total_processing_time: f64,
        /// When the batch finished (RFC 3339).
        #[schema(format = DateTime)]
        pub timestamp: String,
    }

    // Mirrors `crate::batch::BatchState`.
    /// Where a batch is (the reference's stub always said `COMPLETED_SYNC`).
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum BatchState {
        /// Items are still running.
        Processing,
        /// Every item has finished.
        Completed,
    }

    // Mirrors `crate::batch::BatchStatus`.
    /// `GET /v1/text_processing/batch_status/{batch_id}`.
    #[derive(Serialize, ToSchema)]
    pub struct BatchStatus {
        /// The batch id.
        pub batch_id: String,
        /// Processing or completed.
        pub status: BatchState,
        /// Number of items.
        pub total_requests: u64,
        /// Items answered so far.
        pub completed: u64,
        /// Items failed so far.
        pub failed: u64,
        /// When the batch was accepted (RFC 3339).
        #[schema(format = DateTime)]
        pub created_at: String,
        /// When the last item finished (RFC 3339); `null` while processing.
        #[schema(required = true, format = DateTime)]
        pub completed_at: Option<String>,
        /// Seconds for the whole batch; `null` while processing.
        #[schema(required = true)]
        pub total_processing_time: Option<f64>,
        /// Where the batch is, in a sentence (the reference's field).
        pub message: String,
    }

    // Mirrors the body `crate::api::jobs::submit` reads.
    /// Body of `POST /v1/jobs`: the `/process` body plus the job's own fields.
    #[derive(Deserialize, ToSchema)]
    #[schema(examples(json!({
        "text": "The city of Riverton launched a solar energy program this spring. The program will install panels on two hundred public buildings. Officials expect the panels to cut the city energy costs by a third.",
        "operation": "summarize",
        "options": {"max_length": 25},
        "metadata": {"ticket": "T-1042"},
        "ttl_seconds": 600
    })))]
    pub struct JobRequest {
        /// The `/process` fields, validated exactly as `/process` does.
        #[serde(flatten)]
        pub request: ProcessRequest,
        /// Where to POST the final job (signed `Keel-Signature`); `http` or
        /// `https`. In staging/production a private, loopback or link-local
        /// target is a 422 unless `JOB_WEBHOOK_ALLOW_PRIVATE=true`, and
        /// callbacks need `JOB_WEBHOOK_SECRET`.
        #[serde(default)]
        #[schema(format = "uri")]
        pub callback_url: Option<String>,
        /// The client's own JSON object (at most 1024 bytes serialised), echoed back.
        #[serde(default)]
        #[schema(value_type = Option<Object>)]
        pub metadata: Option<Value>,
        /// How long keel may keep trying, in seconds.
        #[serde(default)]
        #[schema(minimum = 1, maximum = 86400, default = 3600)]
        pub ttl_seconds: Option<u64>,
    }

    // Mirrors the body of `crate::api::jobs::list`.
    /// A page of the caller's jobs.
    #[derive(Serialize, ToSchema)]
    pub struct JobList {
        /// Newest first.
        pub jobs: Vec<crate::jobs::JobView>,
        /// Pass as `cursor` for the next page; `null` on the last page.
        #[schema(required = true)]
        pub next_cursor: Option<String>,
    }

    /// `GET /v1/text_processing/health`: the reference's domain health.
    #[derive(Serialize, ToSchema)]
    pub struct TextProcessingHealth {
        /// `status == "healthy"`.
        pub overall_healthy: bool,
        /// Always `domain`.
        pub service_type: String,
        /// As `/v1/health`'s `status`.
        pub status: HealthStatus,
        /// RFC 3339.
        #[schema(format = DateTime)]
        pub timestamp: String,
        /// `{resilience: {healthy, open_circuit_breakers, half_open_circuit_breakers,
        /// total_circuit_breakers, timestamp}}`.
        #[schema(value_type = Object)]
        pub infrastructure: Value,
        /// `{text_processing: {healthy, status, ai_model_available, cache_healthy,
        /// degraded_reasons}}`.
        #[schema(value_type = Object)]
        pub domain_services: Value,
    }

    // ----- internal ---------------------------------------------------------

    // Mirrors `crate::resilience::breaker::BreakerState`.
    /// Breaker states.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum BreakerState {
        /// Normal operation.
        Closed,
        /// Rejecting calls until the recovery timeout passes.
        Open,
        /// Admitting a limited number of probes.
        HalfOpen,
        /// Operator: reject every call.
        ForcedOpen,
        /// Operator: permit every call, record nothing.
        Disabled,
        /// Operator: record calls, never open.
        MetricsOnly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body as HttpBody;
    use axum::http::{Request, StatusCode, header};
    use http_body_util::BodyExt;
    use std::collections::BTreeSet;
    use tower::ServiceExt;

    /// Every `(method, path)` the application serves outside
    /// [`crate::api::internal::routes`] (whose routes are documented by the
    /// same registration that serves them), mirroring `router` in
    /// `src/api/mod.rs` and [`docs_routes`]. Update it with the router.
    const SERVED: &[(&str, &str)] = &[
        // src/api/mod.rs
        ("GET", "/"),
        ("GET", "/health"),
        ("GET", "/auth/status"),
        ("GET", "/v1/health"),
        ("GET", "/v1/health/live"),
        ("GET", "/v1/health/ready"),
        ("GET", "/v1/auth/status"),
        ("GET", "/v1/text_processing/operations"),
        ("GET", "/v1/text_processing/health"),
        ("POST", "/v1/text_processing/process"),
        ("POST", "/v1/text_processing/batch_process"),
        ("GET", "/v1/text_processing/batch_status/{batch_id}"),
        ("POST", "/v1/jobs"),
        ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/{job_id}"),
        ("DELETE", "/v1/jobs/{job_id}"),
        // docs_routes (utoipa-swagger-ui serves `{*rest}`; documented as `{file}`)
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/"),
        ("GET", "/docs/{file}"),
        ("GET", "/internal/openapi.json"),
        ("GET", "/internal/docs"),
        ("GET", "/internal/docs/"),
        ("GET", "/internal/docs/{file}"),
    ];

    fn json_of(doc: &OpenApi) -> Value {
        serde_json::from_str(&doc.to_pretty_json().expect("serialises")).expect("valid JSON")
    }

    /// `(METHOD, path)` of every operation of a document.
    fn operations_of(doc: &Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                if item.get(method).is_some() {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
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

    /// `(METHOD, path)` of every route of the derived operator router.
    fn derived_operations() -> BTreeSet<(String, String)> {
        let (_, doc) = crate::api::internal::routes().split_for_parts();
        operations_of(&json_of(&doc))
    }

    #[test]
    fn every_served_route_is_documented_and_nothing_else() {
        let public = operations_of(&json_of(&public_doc()));
        let internal = operations_of(&json_of(&internal_doc()));
        let mut served: BTreeSet<(String, String)> = SERVED
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(served.len(), SERVED.len(), "duplicate in SERVED");
        // The derived router's routes are served (merged by `operator_routes`)
        // and documented by the same registration; none is also a table row
        // or listed by hand.
        let derived = derived_operations();
        assert!(!derived.is_empty());
        for (method, path) in &derived {
            assert!(
                !internal_routes()
                    .iter()
                    .any(|r| r.path == path && r.method.http() == method_of(method)),
                "{method} {path}: both derived and in the table"
            );
            assert!(
                served.insert((method.clone(), path.clone())),
                "{method} {path}: both derived and in SERVED"
            );
        }
        for route in &served {
            assert!(
                public.contains(route) ^ internal.contains(route),
                "{route:?} must be in exactly one document"
            );
        }
        let documented: BTreeSet<_> = public.union(&internal).cloned().collect();
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
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

    #[test]
    fn every_operation_documents_headers_errors_and_auth() {
        for (doc, routes) in [
            (json_of(&public_doc()), public_routes()),
            (json_of(&internal_doc()), internal_routes()),
        ] {
            let derived = derived_operations();
            for (method, path, op) in all_operations(&doc) {
                let at = format!("{method} {path}");
                let row = routes
                    .iter()
                    .find(|r| r.path == path && r.method.http() == method_of(&method));
                let responses = op["responses"].as_object().expect("responses");
                // A derived operation has no row: its auth is what its
                // security says (an operator route under `/internal`), and
                // it answers its first 2xx status.
                let (auth, ok_status) = match row {
                    Some(r) => (r.auth, r.ok.0.to_string()),
                    None => {
                        assert!(
                            derived.contains(&(method.clone(), path.clone())),
                            "{at}: neither a row nor derived"
                        );
                        let ok = responses
                            .keys()
                            .find(|s| s.starts_with('2'))
                            .unwrap_or_else(|| panic!("{at}: a success response"))
                            .clone();
                        let auth = match op.get("security").and_then(Value::as_array) {
                            None => Auth::None,
                            Some(list) if list.iter().any(|r| r == &json!({})) => Auth::Optional,
                            Some(_) if path.starts_with("/internal") => Auth::Operator,
                            Some(_) => Auth::Key,
                        };
                        (auth, ok)
                    }
                };
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

    fn method_of(m: &str) -> HttpMethod {
        match m {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "DELETE" => HttpMethod::Delete,
            other => panic!("unexpected method {other}"),
        }
    }

    /// Property names and required names of a component schema.
    fn shape(doc: &Value, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let schema = &doc["components"]["schemas"][name];
        let props = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has properties"))
            .keys()
            .cloned()
            .collect();
        let required = schema["required"]
            .as_array()
            .map(|r| r.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        (props, required)
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
                    status: "completed",
                    response: Some(full),
                    error: None,
                    error_code: None,
                },
                BatchItem {
                    request_index: 1,
                    status: "failed",
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
        let router: Router = docs_routes(true);
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
        let router: Router = docs_routes(false);
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
