//! Signing-key administration. Key material never leaves the server.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use bulwark::jwt::SigningKey;
use bulwark::rbac::{Admin, RequireRole};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{domain::rfc3339, errors::internal, state::AppState};

/// The key routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys))
        .routes(routes!(rotate_key))
        .routes(routes!(jwks))
}

/// A key's public description: no material.
#[derive(Serialize, ToSchema)]
pub struct KeyOut {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// `active`, `verifying`, `retired` or `revoked`.
    pub state: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when scheduled.
    pub retires_at: Option<String>,
}

/// The key ring (admin only).
#[utoipa::path(get, path = "/admin/keys", tag = "admin",
    responses((status = 200, body = Vec<KeyOut>), (status = 401), (status = 403)))]
async fn list_keys(
    State(state): State<AppState>,
    _admin: RequireRole<Admin>,
) -> axum::Json<Vec<KeyOut>> {
    let keys = state
        .keys
        .ring()
        .keys()
        .iter()
        .map(|k| KeyOut::from(k.as_ref()))
        .collect();
    axum::Json(keys)
}

impl From<&SigningKey> for KeyOut {
    fn from(k: &SigningKey) -> Self {
        Self {
            kid: k.kid().to_owned(),
            alg: k.alg_name().to_owned(),
            state: k.state().as_str().to_owned(),
            created_at: rfc3339(k.created_at()),
            retires_at: k.retires_at().map(rfc3339),
        }
    }
}

/// Rotate the signing key now (admin only). Tokens signed by the previous key keep verifying
/// until they expire: nobody is logged out.
#[utoipa::path(post, path = "/admin/keys/rotate", tag = "admin",
    responses((status = 200, body = KeyOut), (status = 401), (status = 403)))]
async fn rotate_key(
    State(state): State<AppState>,
    bulwark::client_ip::ClientIp(ip): bulwark::client_ip::ClientIp,
    RequireRole(admin, _): RequireRole<Admin>,
) -> Response {
    let kid = match state.keys.rotate().await {
        Ok(kid) => kid,
        Err(err) => return internal(err),
    };
    crate::audit::record(
        state.repo.as_ref(),
        crate::audit::AuditKind::KeyRotated,
        crate::audit::AuditEvent {
            user_id: admin.sub.parse().ok(),
            username: admin.name.clone(),
            ip: Some(ip),
            detail: Some(format!("new key {kid}")),
        },
    )
    .await;
    match state.keys.ring().get(&kid) {
        Some(key) => axum::Json(KeyOut::from(key.as_ref())).into_response(),
        None => internal("rotated key missing from the ring"),
    }
}

/// A JSON Web Key Set.
#[derive(Serialize, ToSchema)]
pub struct Jwks {
    /// Public keys (Ed25519 `OKP` keys); empty with HMAC keys, which have nothing public.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<serde_json::Value>,
}

/// The public keys that verify access tokens (only with an asymmetric algorithm).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, body = Jwks)))]
async fn jwks(State(state): State<AppState>) -> axum::Json<Jwks> {
    let keys = state
        .keys
        .ring()
        .keys()
        .iter()
        .filter(|k| k.state().verifies())
        .filter_map(|k| k.public_jwk())
        .collect();
    axum::Json(Jwks { keys })
}
