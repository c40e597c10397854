use axum::response::{IntoResponse, Response};

use crate::error::HttpError;

use super::auth::JwtError;

/// Why [`super::CurrentUser`] refused a request. Always a 401 with `WWW-Authenticate: Bearer`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No credentials at all: `{"detail": "Not authenticated"}`.
    #[error("no credentials")]
    Missing,
    /// Credentials that do not verify: `{"detail": "Could not validate credentials"}`.
    #[error("invalid credentials: {0}")]
    Invalid(#[from] JwtError),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::Missing => HttpError::unauthorized("Not authenticated").into_response(),
            AuthRejection::Invalid(err) => {
                tracing::debug!(reason = %err, "rejected bearer token");
                HttpError::unauthorized("Could not validate credentials").into_response()
            }
        }
    }
}
