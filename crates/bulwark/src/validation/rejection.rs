//! Why the validation extractors reject a request; each rejection knows its status and body.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::error::{HttpError, ValidationErrors, canonical_detail};

/// Why [`Json`](super::Json), [`Form`](super::Form) or [`JsonOrForm`](super::JsonOrForm)
/// rejected a request.
///
/// # Examples
/// ```
/// use bulwark::validation::BodyRejection;
/// use axum::response::IntoResponse;
///
/// let response = BodyRejection::UnsupportedMediaType.into_response();
/// assert_eq!(response.status(), 415); // {"detail": "Unsupported Media Type"}
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyRejection {
    /// 415 `{"detail": "Unsupported Media Type"}`: the `Content-Type` is not one the extractor
    /// reads.
    #[error("Unsupported Media Type")]
    UnsupportedMediaType,
    /// 413 `{"detail": "Request body too large"}`: the body is over the limit set with
    /// `axum::extract::DefaultBodyLimit`.
    #[error("Request body too large")]
    PayloadTooLarge,
    /// 400 `{"detail": "Bad Request"}`: the body stream broke before it was read.
    #[error("Bad Request")]
    Unreadable,
    /// 422: the body was read but does not fit the expected type.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
}

impl BodyRejection {
    /// The status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unreadable => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl IntoResponse for BodyRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid(errors) => errors.into_response(),
            other => {
                let status = other.status();
                HttpError::new(status, canonical_detail(status)).into_response()
            }
        }
    }
}

/// Why [`Path`](super::Path) rejected a request.
///
/// # Examples
/// ```
/// use bulwark::validation::PathRejection;
/// use axum::response::IntoResponse;
///
/// // The route and the extracted type disagree: a bug, answered without detail.
/// assert_eq!(PathRejection::Internal.into_response().status(), 500);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathRejection {
    /// 422: a path parameter does not parse as its type.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// 500 `{"detail": "Internal Server Error"}`: the route's parameters do not fit the extracted
    /// type. The cause was logged when it happened.
    #[error("Internal Server Error")]
    Internal,
}

impl PathRejection {
    /// The status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for PathRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid(errors) => errors.into_response(),
            Self::Internal => HttpError::internal().into_response(),
        }
    }
}
