//! The `application/x-www-form-urlencoded` body extractor.

use std::ops::{Deref, DerefMut};

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::{BodyRejection, body, urlencoded};
use crate::error::ValidationErrors;

/// A form body parsed into `T`, rejected in FastAPI's shapes.
///
/// - `Content-Type` other than `application/x-www-form-urlencoded`: 415; no `Content-Type`
///   with an empty body is an empty form (422 for each missing field, as FastAPI answers).
/// - Body over `DefaultBodyLimit`: 413 `{"detail": "Request body too large"}`.
/// - A field that does not fit `T`: 422 with one detail under `body`: `missing`,
///   `int_parsing`, `float_parsing`, `bool_parsing`, `enum`, `extra_forbidden` (only with
///   `#[serde(deny_unknown_fields)]`) or `value_error`.
///
/// As in FastAPI, an empty field (`scope=`) counts as absent: a required field is `missing`, an
/// `Option` is `None`. A repeated field keeps its last value. Fields whose name marks a secret
/// (see [`is_secret_key`](super::is_secret_key)) are never echoed. Unlike `axum::Form`, this
/// reads only the body, never the query string.
///
/// # Examples
/// The OAuth2 password flow's token request:
/// ```
/// use axum::{Router, body::Body, http::Request, routing::post};
/// use bulwark::validation::Form;
/// use serde::Deserialize;
/// use tower::ServiceExt;
///
/// #[derive(Deserialize)]
/// struct TokenRequest {
///     username: String,
///     password: String,
///     grant_type: Option<String>,
///     #[serde(default)]
///     scope: String,
/// }
///
/// async fn token(Form(form): Form<TokenRequest>) -> String {
///     form.username
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = Router::new().route("/token", post(token));
/// let request = Request::post("/token")
///     .header("content-type", "application/x-www-form-urlencoded")
///     .body(Body::from("username=alice&password="))
///     .unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// // {"detail": [{"type": "missing", "loc": ["body", "password"], "msg": "Field required", "input": null}]}
/// assert_eq!(response.status(), 422);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned> Form<T> {
    /// Parses a form body that is already in memory, reporting errors as [`Form`] does.
    ///
    /// # Errors
    /// One detail for the first field that does not fit `T`.
    ///
    /// # Examples
    /// ```
    /// use bulwark::validation::Form;
    /// use std::collections::HashMap;
    ///
    /// let Form(form) = Form::<HashMap<String, String>>::from_bytes(b"a=1&b=").unwrap();
    /// assert_eq!(form.len(), 1);
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ValidationErrors> {
        let mut pairs = urlencoded::pairs(bytes);
        pairs.retain(|(_, value)| !value.is_empty());
        urlencoded::from_pairs("body", pairs).map(Form)
    }
}

impl<T, S> FromRequest<S> for Form<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = BodyRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !req.headers().contains_key(http::header::CONTENT_TYPE) {
            // An empty body with no type: an empty form, whose missing fields answer 422.
            return if body::is_empty_without_type(req, state).await? {
                Ok(Self::from_bytes(b"")?)
            } else {
                Err(BodyRejection::UnsupportedMediaType)
            };
        }
        if !body::media_type(req.headers()).is_some_and(|m| body::is_form(&m)) {
            return Err(BodyRejection::UnsupportedMediaType);
        }
        let bytes = body::read(req, state).await?;
        Ok(Self::from_bytes(&bytes)?)
    }
}

impl<T> Deref for Form<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Form<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, extract::DefaultBodyLimit, routing::post};
    use http::StatusCode;
    use serde::Deserialize;
    use serde_json::{Value, json};

    use super::*;
    use crate::validation::test_support::{only_detail, request, send};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TokenRequest {
        username: String,
        password: String,
        grant_type: Option<String>,
        #[serde(default)]
        scope: String,
        remember_days: Option<u32>,
        #[allow(dead_code)]
        weight: Option<f64>,
        #[allow(dead_code)]
        otp_token: Option<u32>,
    }

    fn app() -> Router {
        let token = |Form(form): Form<TokenRequest>| async move {
            let TokenRequest {
                username,
                password,
                grant_type,
                scope,
                remember_days,
                ..
            } = form;
            axum::Json(json!([
                username,
                password.len(),
                grant_type,
                scope,
                remember_days
            ]))
        };
        Router::new().route("/token", post(token))
    }

    async fn post_form(body: &str) -> (StatusCode, Value) {
        let content_type = "application/x-www-form-urlencoded";
        send(app(), request("POST", "/token", content_type, body)).await
    }

    #[tokio::test]
    async fn a_token_request_parses() {
        let body =
            "grant_type=password&username=al%20ice&password=p%26ss+word&scope=&remember_days=3";
        let (status, answer) = post_form(body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer, json!(["al ice", 9, "password", "", 3]));
    }

    #[tokio::test]
    async fn a_missing_or_empty_field_is_missing_with_null_input() {
        for body in ["username=alice", "username=alice&password="] {
            let (status, answer) = post_form(body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
            let expected = json!({"type": "missing", "loc": ["body", "password"], "msg": "Field required", "input": null});
            assert_eq!(only_detail(&answer), &expected, "{body}");
        }
    }

    #[tokio::test]
    async fn numbers_that_do_not_parse_are_parsing_errors() {
        let (_, answer) = post_form("username=a&password=b&remember_days=ten").await;
        let expected = json!({
            "type": "int_parsing",
            "loc": ["body", "remember_days"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "input": "ten",
        });
        assert_eq!(only_detail(&answer), &expected);
        let (_, answer) = post_form("username=a&password=b&weight=heavy").await;
        let detail = only_detail(&answer);
        assert_eq!(detail["type"], "float_parsing");
        assert_eq!(
            detail["msg"],
            "Input should be a valid number, unable to parse string as a number"
        );
    }

    #[tokio::test]
    async fn secret_fields_are_never_echoed() {
        let (_, answer) = post_form("username=a&password=b&otp_token=12ab").await;
        let detail = only_detail(&answer);
        assert_eq!(detail["type"], "int_parsing");
        assert_eq!(detail["loc"], json!(["body", "otp_token"]));
        assert!(detail.get("input").is_none(), "{detail}");
        let (_, answer) = post_form("username=a&password=b&client_secret=s3cr3t").await;
        let detail = only_detail(&answer);
        assert_eq!(detail["type"], "extra_forbidden");
        assert!(!answer.to_string().contains("s3cr3t"), "{answer}");
    }

    #[tokio::test]
    async fn an_unknown_field_is_extra_forbidden() {
        let (_, answer) = post_form("username=a&password=b&roles=admin").await;
        let expected = json!({"type": "extra_forbidden", "loc": ["body", "roles"], "msg": "Extra inputs are not permitted", "input": "admin"});
        assert_eq!(only_detail(&answer), &expected);
    }

    #[tokio::test]
    async fn json_is_415() {
        let body = r#"{"username": "a", "password": "b"}"#;
        let (status, answer) =
            send(app(), request("POST", "/token", "application/json", body)).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(answer, json!({"detail": "Unsupported Media Type"}));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413() {
        let app = app().layer(DefaultBodyLimit::max(16));
        let content_type = "application/x-www-form-urlencoded";
        let body = "username=alice&password=correct-horse";
        let (status, answer) = send(app, request("POST", "/token", content_type, body)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(answer, json!({"detail": "Request body too large"}));
    }
}
