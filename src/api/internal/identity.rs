//! Operator routes for identities: client keys (`/internal/keys`), JWT
//! revocation (`/internal/tokens/revoke`) and the audit trail
//! (`/internal/audit`). Every change is recorded in the audit trail with the
//! acting identity.

use crate::api::AppState;
use crate::api::auth::OperatorKey;
use crate::api::error::ApiError;
use crate::api::extract::JsonBody;
use crate::api::json::Json;
use crate::identity::keys::{ClientKeyRecord, KeyStoreError, NewKey};
use crate::identity::{Kind, Role, now_unix};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// Body of `POST /internal/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateKeyRequest)]
#[schema(examples(json!({"name": "ci-pipeline", "roles": ["client"], "tenant": "acme",
    "rate_limit_per_minute": 60, "expires_at": "2027-01-01T00:00:00Z"})))]
pub struct CreateKey {
    /// Name shown in listings (1–100 characters).
    name: String,
    /// `client` and/or `operator`; default `["client"]`.
    #[serde(default)]
    roles: Option<Vec<String>>,
    /// Tenant the key acts for (1–100 of `A-Za-z0-9._-`): jobs, batches and
    /// limits are shared by the tenant.
    #[serde(default)]
    tenant: Option<String>,
    /// Own per-minute limit (1–1,000,000), replacing `RATE_LIMIT_PER_MINUTE`.
    #[serde(default)]
    rate_limit_per_minute: Option<u32>,
    /// Expiry: RFC 3339 or Unix seconds, in the future.
    #[serde(default)]
    #[schema(value_type = Option<TimeValue>)]
    expires_at: Option<Value>,
}

// The schema of what `parse_time` reads; never built.
/// A point in time as operators send it: RFC 3339 or Unix seconds.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum TimeValue {
    /// RFC 3339, e.g. `2027-01-01T00:00:00Z`.
    Rfc3339(String),
    /// Unix seconds.
    Unix(i64),
}

fn rfc3339(unix: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn parse_time(field: &str, v: &Value) -> Result<i64, ApiError> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            ApiError::field(field, format!("{field} must be Unix seconds or RFC 3339"))
        }),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp())
            .map_err(|_| {
                ApiError::field(
                    field,
                    format!("{field} must be Unix seconds or RFC 3339, got {s:?}"),
                )
            }),
        _ => Err(ApiError::field(
            field,
            format!("{field} must be Unix seconds or RFC 3339"),
        )),
    }
}

/// A client key's metadata as operators see it (never its secret).
#[derive(Serialize, ToSchema)]
pub struct ClientKeyView {
    /// The key's id (`ck_…`), used to revoke it.
    pub id: String,
    /// `client_key`.
    pub kind: Kind,
    /// Name.
    pub name: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// Tenant.
    #[schema(required = true)]
    pub tenant: Option<String>,
    /// Own per-minute limit.
    #[schema(required = true)]
    pub rate_limit_per_minute: Option<u32>,
    /// First characters of the secret and `...`.
    pub prefix: String,
    /// RFC 3339.
    #[schema(required = true, format = DateTime)]
    pub created_at: Option<String>,
    /// The creating operator's identity id.
    pub created_by: String,
    /// RFC 3339, or null.
    #[schema(required = true, format = DateTime)]
    pub expires_at: Option<String>,
    /// Whether it is revoked.
    pub revoked: bool,
    /// RFC 3339, or null.
    #[schema(required = true, format = DateTime)]
    pub revoked_at: Option<String>,
    /// Last accepted request on this instance (RFC 3339), or null.
    #[schema(required = true, format = DateTime)]
    pub last_used: Option<String>,
    /// False once revoked.
    pub revocable: bool,
}

fn view(record: &ClientKeyRecord, last_used: Option<i64>) -> ClientKeyView {
    ClientKeyView {
        id: record.id.clone(),
        kind: Kind::ClientKey,
        name: record.name.clone(),
        roles: record.roles.clone(),
        tenant: record.tenant.clone(),
        rate_limit_per_minute: record.rate_limit_per_minute,
        prefix: format!("{}...", record.prefix),
        created_at: rfc3339(record.created_at),
        created_by: record.created_by.clone(),
        expires_at: record.expires_at.and_then(rfc3339),
        revoked: record.revoked_at.is_some(),
        revoked_at: record.revoked_at.and_then(rfc3339),
        last_used: last_used.and_then(rfc3339),
        revocable: record.revoked_at.is_none(),
    }
}

/// Body of `POST /internal/keys`: the key and its secret (shown once).
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key's metadata.
    #[serde(flatten)]
    pub key: ClientKeyView,
    /// The secret: send it as `Authorization: Bearer <secret>` or `X-API-Key`.
    pub secret: String,
    /// `redis` or `memory`.
    pub store: &'static str,
    /// A reminder that the secret is not shown again.
    pub message: &'static str,
}

fn store_error(e: KeyStoreError) -> ApiError {
    match e {
        KeyStoreError::NotFound(_) => ApiError::NotFound(e.to_string()),
        KeyStoreError::Unavailable(_) => ApiError::Coded {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "IDENTITY_STORE_UNAVAILABLE",
            message: e.to_string(),
            retry_after: Some(Duration::from_secs(1)),
        },
    }
}

fn valid_tenant(t: &str) -> bool {
    (1..=100).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The operation description of `POST /internal/keys`.
const CREATE_KEY_DESCRIPTION: &str = "Issues a client key. The answer carries the secret \
    (`keel_` + 32 base62 characters) once; keel keeps only its SHA-256. With `REDIS_URL` the \
    key is shared by every instance; without it, it lives in this instance's memory. Audited.";

/// `POST /internal/keys`: issues a client key; the secret is in this answer only.
#[utoipa::path(
    post,
    path = "/internal/keys",
    tag = "identity",
    operation_id = "create_key",
    summary = "Issue a client key",
    description = CREATE_KEY_DESCRIPTION,
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    request_body(content = CreateKey, content_type = "application/json"),
    responses(
        (status = 201, description = "The key, with its secret (shown once)", body = CreatedKey),
        (status = 400), (status = 401), (status = 403), (status = 413), (status = 415),
        (status = 422), (status = 503),
    )
)]
pub async fn create_key(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<Response, ApiError> {
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::field("name", "name must be 1 to 100 characters"));
    }
    let mut roles = Vec::new();
    for r in body.roles.unwrap_or_default() {
        roles.push(Role::parse(&r).ok_or_else(|| {
            ApiError::field(
                "roles",
                format!("unknown role {r:?}: allowed client | operator"),
            )
        })?);
    }
    if let Some(t) = &body.tenant
        && !valid_tenant(t)
    {
        return Err(ApiError::field(
            "tenant",
            "tenant must be 1 to 100 characters of A-Z a-z 0-9 . _ -",
        ));
    }
    if let Some(n) = body.rate_limit_per_minute
        && !(1..=1_000_000).contains(&n)
    {
        return Err(ApiError::field(
            "rate_limit_per_minute",
            "rate_limit_per_minute must be from 1 to 1000000",
        ));
    }
    let expires_at = match &body.expires_at {
        None | Some(Value::Null) => None,
        Some(v) => {
            let at = parse_time("expires_at", v)?;
            if at <= now_unix() {
                return Err(ApiError::field(
                    "expires_at",
                    "expires_at must be in the future",
                ));
            }
            Some(at)
        }
    };
    let (record, secret) = state
        .identity
        .keys
        .create(
            NewKey {
                name,
                roles,
                tenant: body.tenant,
                rate_limit_per_minute: body.rate_limit_per_minute,
                expires_at,
            },
            &who.id,
        )
        .await
        .map_err(store_error)?;
    state.identity.audit.record(
        &who,
        "key.created",
        &record.id,
        json!({"name": record.name, "roles": record.roles, "tenant": record.tenant,
               "rate_limit_per_minute": record.rate_limit_per_minute}),
    );
    let out = CreatedKey {
        key: view(&record, None),
        secret,
        store: state.identity.keys.backend(),
        message: "store the secret now: keel keeps only its SHA-256 and never shows it again",
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Body of `GET /internal/keys`.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    /// `redis` or `memory`.
    pub store: &'static str,
    /// How revocation reaches other instances.
    pub revocation: &'static str,
    /// Issued keys (metadata only).
    pub client_keys: Vec<ClientKeyView>,
    /// Keys from the environment (`kind: static_key`, `revocable: false`).
    pub static_keys: Vec<crate::identity::authenticator::StaticKeyView>,
    /// The JWT key set's refresh state, or null when JWT is off.
    #[schema(required = true)]
    pub jwt: Option<crate::identity::jwt::JwksStatus>,
}

/// `GET /internal/keys`: every key's metadata (never a secret), static keys included.
#[utoipa::path(
    get,
    path = "/internal/keys",
    tag = "identity",
    operation_id = "list_keys",
    summary = "List keys",
    description = "Every client key's metadata (never a secret), with `last_used` on \
        this instance; static keys from the environment are listed as \
        `kind: static_key`, not revocable at runtime; the JWT key set's refresh state.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    responses(
        (status = 200, description = "Keys", body = KeyList),
        (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn list_keys(State(state): State<AppState>, _: OperatorKey) -> Json<KeyList> {
    let keys = state
        .identity
        .keys
        .list()
        .iter()
        .map(|(r, used)| view(r, *used))
        .collect();
    Json(KeyList {
        store: state.identity.keys.backend(),
        revocation: if state.identity.keys.backend() == "redis" {
            "shared through Redis: every instance refuses a revoked key within IDENTITY_REFRESH_MS"
        } else {
            "memory store: keys exist on this instance only and are lost on restart"
        },
        client_keys: keys,
        static_keys: state.identity.static_key_listing(),
        jwt: state.identity.jwt.as_ref().map(|j| j.status()),
    })
}

/// `DELETE /internal/keys/{id}`: revokes a client key (idempotent).
#[utoipa::path(
    delete,
    path = "/internal/keys/{id}",
    tag = "identity",
    operation_id = "revoke_key",
    summary = "Revoke a client key",
    description = "Revokes a client key (idempotent): refused on this instance at once \
        and, with Redis, on every instance within `IDENTITY_REFRESH_MS` (250 ms). \
        A static key's id is a 409 (change the environment instead). Audited.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(("id" = String, Path, description = "The key's id (`ck_…`)")),
    responses(
        (status = 200, description = "The revoked key", body = ClientKeyView),
        (status = 401), (status = 403), (status = 404), (status = 409), (status = 503),
    )
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    Path(id): Path<String>,
) -> Result<Json<ClientKeyView>, ApiError> {
    if id.starts_with("key:") {
        return Err(ApiError::Conflict(
            "static keys come from the environment and cannot be revoked at runtime: change API_KEY / ADDITIONAL_API_KEYS / INTERNAL_API_KEY and restart".into(),
        ));
    }
    let record = match state.identity.keys.revoke(&id).await {
        Ok(record) => record,
        Err(e @ KeyStoreError::Unavailable(_)) => {
            // Applied here; other instances learn it once Redis takes it.
            state
                .identity
                .audit
                .record(&who, "key.revoked", &id, json!({"shared": false}));
            return Err(ApiError::Coded {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "IDENTITY_STORE_UNAVAILABLE",
                message: format!("revoked on this instance only; retry to revoke everywhere: {e}"),
                retry_after: Some(Duration::from_secs(1)),
            });
        }
        Err(e) => return Err(store_error(e)),
    };
    state.identity.audit.record(
        &who,
        "key.revoked",
        &record.id,
        json!({"name": record.name}),
    );
    Ok(Json(view(&record, None)))
}

/// Body of `POST /internal/tokens/revoke`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RevokeTokenRequest)]
#[schema(examples(json!({"jti": "4f1c", "exp": 1796083200})))]
pub struct RevokeToken {
    /// The token's `jti` claim.
    jti: String,
    /// The token's `exp` (Unix seconds or RFC 3339): the denylist keeps it until then.
    #[schema(value_type = TimeValue)]
    exp: Value,
}

/// Body of a `POST /internal/tokens/revoke` answer.
#[derive(Serialize, ToSchema)]
pub struct TokenRevoked {
    /// The revoked `jti`.
    pub jti: String,
    /// Always true.
    pub revoked: bool,
    /// Refused until then (RFC 3339).
    #[schema(required = true, format = DateTime)]
    pub until: Option<String>,
    /// `redis` or `memory`.
    pub store: &'static str,
}

/// `POST /internal/tokens/revoke`: refuses every JWT with this `jti` until `exp`.
#[utoipa::path(
    post,
    path = "/internal/tokens/revoke",
    tag = "identity",
    operation_id = "revoke_token",
    summary = "Revoke a JWT by jti",
    description = "Refuses every JWT with this `jti` until `exp` (a denylist in Redis \
        with every instance's local copy refreshed every `IDENTITY_REFRESH_MS`; \
        memory only without Redis). Audited.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    request_body(content = RevokeToken, content_type = "application/json"),
    responses(
        (status = 200, description = "Revoked", body = TokenRevoked),
        (status = 400), (status = 401), (status = 403), (status = 413), (status = 415),
        (status = 422), (status = 503),
    )
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    JsonBody(body): JsonBody<RevokeToken>,
) -> Result<Json<TokenRevoked>, ApiError> {
    let jti = body.jti.trim();
    if jti.is_empty() || jti.len() > 256 {
        return Err(ApiError::field("jti", "jti must be 1 to 256 characters"));
    }
    let exp = parse_time("exp", &body.exp)?;
    let shared = state.identity.denylist.revoke(jti, exp).await;
    state.identity.audit.record(
        &who,
        "token.revoked",
        jti,
        json!({"exp": rfc3339(exp), "shared": shared.is_ok()}),
    );
    if let Err(e) = shared {
        return Err(ApiError::Coded {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "IDENTITY_STORE_UNAVAILABLE",
            message: format!("revoked on this instance only; Redis did not take it: {e}"),
            retry_after: Some(Duration::from_secs(1)),
        });
    }
    Ok(Json(TokenRevoked {
        jti: jti.to_string(),
        revoked: true,
        until: rfc3339(exp),
        store: state.identity.denylist.backend(),
    }))
}

/// Query of `GET /internal/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Most entries to return (at most 10 000).
    #[param(minimum = 1, maximum = 10000, default = 100)]
    limit: Option<usize>,
}

/// Body of `GET /internal/audit`.
#[derive(Serialize, ToSchema)]
pub struct AuditTrail {
    /// Entries the ring keeps.
    pub capacity: usize,
    /// Entries returned.
    pub count: usize,
    /// Newest first.
    pub entries: Vec<crate::identity::audit::AuditEntry>,
}

/// `GET /internal/audit`: recent operator actions, newest first.
#[utoipa::path(
    get,
    path = "/internal/audit",
    tag = "identity",
    operation_id = "audit",
    summary = "Audit trail",
    description = "Recent operator actions (keys created/revoked, tokens revoked, \
        configuration switched, breakers forced, cache cleared, jobs paused), newest \
        first, each with the acting identity. A bounded ring per instance \
        (`AUDIT_LOG_CAPACITY`); each action is also one `keel::audit` log line.",
    security(("bearerAuth" = []), ("apiKeyHeader" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "Audit entries", body = AuditTrail),
        (status = 400), (status = 401), (status = 403), (status = 503),
    )
)]
pub async fn audit(
    State(state): State<AppState>,
    _: OperatorKey,
    Query(q): Query<AuditQuery>,
) -> Json<AuditTrail> {
    let entries = state
        .identity
        .audit
        .recent(q.limit.unwrap_or(100).min(10_000));
    Json(AuditTrail {
        capacity: state.identity.audit.capacity(),
        count: entries.len(),
        entries,
    })
}
