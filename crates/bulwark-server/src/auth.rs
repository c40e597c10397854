//! The caller, as the handlers of this API see them.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use bulwark::{
    error::HttpError,
    jwt::{Claims, CurrentUser as Verified, JwtAuth},
};
use http::request::Parts;

/// The authenticated caller: id, name and whether they are an admin, all from the verified
/// token (no database read). The claims are shared with the cache of verified tokens.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// User id (`sub`).
    pub id: i64,
    claims: Arc<Claims>,
}

impl CurrentUser {
    /// Username at issue time.
    pub fn username(&self) -> &str {
        self.claims.name.as_deref().unwrap_or_default()
    }

    /// Role names.
    pub fn roles(&self) -> &[String] {
        &self.claims.roles
    }

    /// True when the caller holds `admin`.
    pub fn is_admin(&self) -> bool {
        self.claims.has_role("admin")
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    JwtAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = axum::response::Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let Verified(claims) = Verified::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let id = claims.sub.parse::<i64>().map_err(|_| {
            HttpError::unauthorized("Could not validate credentials").into_response()
        })?;
        Ok(Self { id, claims })
    }
}
