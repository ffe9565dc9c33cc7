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
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Body of `POST /internal/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Name shown in listings (1–100 characters).
    name: String,
    /// `client` and/or `operator`; default `["client"]`.
    #[serde(default)]
    roles: Option<Vec<String>>,
    /// Tenant the key acts for (1–100 of `A-Za-z0-9._-`).
    #[serde(default)]
    tenant: Option<String>,
    /// Own per-minute limit (1–1,000,000), replacing `RATE_LIMIT_PER_MINUTE`.
    #[serde(default)]
    rate_limit_per_minute: Option<u32>,
    /// Expiry: RFC 3339 or Unix seconds, in the future.
    #[serde(default)]
    expires_at: Option<Value>,
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

fn view(record: &ClientKeyRecord, last_used: Option<i64>) -> Value {
    json!({
        "id": record.id,
        "kind": Kind::ClientKey,
        "name": record.name,
        "roles": record.roles,
        "tenant": record.tenant,
        "rate_limit_per_minute": record.rate_limit_per_minute,
        "prefix": format!("{}...", record.prefix),
        "created_at": rfc3339(record.created_at),
        "created_by": record.created_by,
        "expires_at": record.expires_at.and_then(rfc3339),
        "revoked": record.revoked_at.is_some(),
        "revoked_at": record.revoked_at.and_then(rfc3339),
        "last_used": last_used.and_then(rfc3339),
        "revocable": record.revoked_at.is_none(),
    })
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

/// `POST /internal/keys`: issues a client key; the secret is in this answer only.
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
    let mut out = view(&record, None);
    out["secret"] = json!(secret);
    out["store"] = json!(state.identity.keys.backend());
    out["message"] =
        json!("store the secret now: keel keeps only its SHA-256 and never shows it again");
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `GET /internal/keys`: every key's metadata (never a secret), static keys included.
pub async fn list_keys(State(state): State<AppState>, _: OperatorKey) -> Json<Value> {
    let keys: Vec<Value> = state
        .identity
        .keys
        .list()
        .iter()
        .map(|(r, used)| view(r, *used))
        .collect();
    Json(json!({
        "store": state.identity.keys.backend(),
        "revocation": if state.identity.keys.backend() == "redis" {
            "shared through Redis: every instance refuses a revoked key within IDENTITY_REFRESH_MS"
        } else {
            "memory store: keys exist on this instance only and are lost on restart"
        },
        "client_keys": keys,
        "static_keys": state.identity.static_key_listing(),
        "jwt": state.identity.jwt.as_ref().map(|j| j.status()),
    }))
}

/// `DELETE /internal/keys/{id}`: revokes a client key (idempotent).
pub async fn revoke_key(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeToken {
    /// The token's `jti` claim.
    jti: String,
    /// The token's `exp` (Unix seconds or RFC 3339): the denylist keeps it until then.
    exp: Value,
}

/// `POST /internal/tokens/revoke`: refuses every JWT with this `jti` until `exp`.
pub async fn revoke_token(
    State(state): State<AppState>,
    OperatorKey(who): OperatorKey,
    JsonBody(body): JsonBody<RevokeToken>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "jti": jti,
        "revoked": true,
        "until": rfc3339(exp),
        "store": state.identity.denylist.backend(),
    })))
}

/// Query of `GET /internal/audit`.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Most entries to return (default 100).
    limit: Option<usize>,
}

/// `GET /internal/audit`: recent operator actions, newest first.
pub async fn audit(
    State(state): State<AppState>,
    _: OperatorKey,
    Query(q): Query<AuditQuery>,
) -> Json<Value> {
    let entries = state
        .identity
        .audit
        .recent(q.limit.unwrap_or(100).min(10_000));
    Json(json!({
        "capacity": state.identity.audit.capacity(),
        "count": entries.len(),
        "entries": entries,
    }))
}
