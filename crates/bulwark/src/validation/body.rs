//! What the body extractors share: the `Content-Type` check and the size-limited read.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};

use super::BodyRejection;

/// The media type of the request, lowercased, without parameters (`; charset=utf-8`).
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim();
    Some(essence.to_ascii_lowercase())
}

/// `application/json` or a JSON-based type such as `application/problem+json`.
pub(crate) fn is_json(media_type: &str) -> bool {
    media_type == "application/json"
        || media_type
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.len() > 5 && subtype.ends_with("+json"))
}

/// `application/x-www-form-urlencoded`.
pub(crate) fn is_form(media_type: &str) -> bool {
    media_type == "application/x-www-form-urlencoded"
}

/// Whether a request without any `Content-Type` carries an empty body (read within the limit):
/// FastAPI answers such a request to a form or JSON endpoint with 422 for each missing field,
/// not 415. A body without a `Content-Type` that is not empty is `false` (415 for the caller).
///
/// # Errors
/// As [`read`].
pub(crate) async fn is_empty_without_type<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<bool, BodyRejection> {
    debug_assert!(!req.headers().contains_key(header::CONTENT_TYPE));
    Ok(read(req, state).await?.is_empty())
}

/// Reads the whole body within `DefaultBodyLimit`.
///
/// # Errors
/// [`BodyRejection::PayloadTooLarge`] over the limit, [`BodyRejection::Unreadable`] when the
/// stream breaks.
pub(crate) async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, BodyRejection> {
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => BodyRejection::PayloadTooLarge,
            _ => {
                tracing::debug!(error = %rejection.body_text(), "request body unreadable");
                BodyRejection::Unreadable
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("application/+json"));
        assert!(!is_json("text/json"));
        assert!(!is_json("application/jsonx"));
    }

    #[test]
    fn media_type_drops_parameters_and_case() {
        let mut headers = HeaderMap::new();
        let value = "Application/JSON; charset=utf-8".parse();
        headers.insert(header::CONTENT_TYPE, value.expect("valid header"));
        assert_eq!(media_type(&headers).as_deref(), Some("application/json"));
    }
}
