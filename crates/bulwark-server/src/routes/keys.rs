//! Signing-key administration. Key material never leaves the server.

use axum::extract::State;
use bulwark::rbac::{Admin, RequireRole};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{domain::rfc3339, state::AppState};

/// The key routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_keys))
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
    security(("OAuth2PasswordBearer" = []), ("HTTPBearer" = []), ("session" = [])),
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
        .map(|k| KeyOut {
            kid: k.kid().to_owned(),
            alg: k.alg_name().to_owned(),
            state: k.state().as_str().to_owned(),
            created_at: rfc3339(k.created_at()),
            retires_at: k.retires_at().map(rfc3339),
        })
        .collect();
    axum::Json(keys)
}
