//! A body extractor that takes JSON or a form, by `Content-Type`.

use std::ops::{Deref, DerefMut};

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::{BodyRejection, Form, Json, body};

/// A body parsed into `T` from JSON or from a form, whichever the `Content-Type` names; any
/// other type answers 415, and no type with an empty body is an empty form (422 for each
/// missing field). Errors are those of [`Json`] or [`Form`].
///
/// For endpoints such as `POST /token/refresh` that take either.
///
/// # Examples
/// ```
/// use axum::{Router, body::Body, http::Request, routing::post};
/// use bulwark::validation::JsonOrForm;
/// use serde::Deserialize;
/// use tower::ServiceExt;
///
/// #[derive(Deserialize)]
/// struct Refresh {
///     refresh_token: String,
/// }
///
/// async fn refresh(JsonOrForm(body): JsonOrForm<Refresh>) -> String {
///     body.refresh_token.len().to_string()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = Router::new().route("/token/refresh", post(refresh));
/// let request = Request::post("/token/refresh")
///     .header("content-type", "application/x-www-form-urlencoded")
///     .body(Body::from("refresh_token=abc"))
///     .unwrap();
/// assert_eq!(app.oneshot(request).await.unwrap().status(), 200);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonOrForm<T>(pub T);

impl<T, S> FromRequest<S> for JsonOrForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = BodyRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !req.headers().contains_key(http::header::CONTENT_TYPE) {
            // An empty body with no type: an empty form, whose missing fields answer 422.
            return if body::is_empty_without_type(req, state).await? {
                Ok(Self(Form::from_bytes(b"")?.0))
            } else {
                Err(BodyRejection::UnsupportedMediaType)
            };
        }
        let media_type = body::media_type(req.headers()).unwrap_or_default();
        if body::is_json(&media_type) {
            let bytes = body::read(req, state).await?;
            Ok(Self(Json::from_bytes(&bytes)?.0))
        } else if body::is_form(&media_type) {
            let bytes = body::read(req, state).await?;
            Ok(Self(Form::from_bytes(&bytes)?.0))
        } else {
            Err(BodyRejection::UnsupportedMediaType)
        }
    }
}

impl<T> Deref for JsonOrForm<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for JsonOrForm<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, routing::post};
    use http::StatusCode;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::validation::test_support::{only_detail, request, send};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Refresh {
        refresh_token: String,
    }

    fn app() -> Router {
        let refresh = |JsonOrForm(r): JsonOrForm<Refresh>| async move { r.refresh_token };
        Router::new().route("/token/refresh", post(refresh))
    }

    #[tokio::test]
    async fn takes_json_or_a_form() {
        let json_body = request(
            "POST",
            "/token/refresh",
            "application/json",
            r#"{"refresh_token": "r"}"#,
        );
        assert_eq!(send(app(), json_body).await.0, StatusCode::OK);
        let form = "application/x-www-form-urlencoded";
        let form_body = request("POST", "/token/refresh", form, "refresh_token=r");
        assert_eq!(send(app(), form_body).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn errors_are_those_of_each_format() {
        let json_body = request("POST", "/token/refresh", "application/json", "{}");
        let (status, answer) = send(app(), json_body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            only_detail(&answer)["loc"],
            json!(["body", "refresh_token"])
        );
        let text = request("POST", "/token/refresh", "text/plain", "refresh_token=r");
        assert_eq!(
            send(app(), text).await.0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
