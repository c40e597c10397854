//! The JSON body extractor.

use std::ops::{Deref, DerefMut};

use axum::{
    extract::{FromRequest, Request},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{
    BodyRejection, body,
    serde_error::{self, Syntax},
};
use crate::error::{ErrorDetail, LocItem, ValidationErrors};

/// A JSON request body parsed into `T`, rejected in FastAPI's shapes.
///
/// - `Content-Type` other than `application/json` (parameters allowed) or `application/*+json`:
///   415 `{"detail": "Unsupported Media Type"}`.
/// - Body over `DefaultBodyLimit`: 413 `{"detail": "Request body too large"}`.
/// - Malformed or empty JSON: 422 `json_invalid` at `["body", <byte offset>]`.
/// - JSON that does not fit `T`: 422 with one pydantic-style detail (`missing`,
///   `extra_forbidden`, `int_type`, ...) located under `body`.
///
/// Unknown fields are rejected only when `T` says so with `#[serde(deny_unknown_fields)]`.
/// As a response, it serializes `T` like `axum::Json`.
///
/// # Examples
/// ```
/// use axum::{Router, body::Body, http::Request, routing::post};
/// use bulwark::validation::Json;
/// use serde::Deserialize;
/// use tower::ServiceExt;
///
/// #[derive(Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct NewItem {
///     name: String,
///     price: f64,
/// }
///
/// async fn create(Json(item): Json<NewItem>) -> String {
///     format!("{} costs {}", item.name, item.price)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = Router::new().route("/items/", post(create));
/// let request = Request::post("/items/")
///     .header("content-type", "application/json")
///     .body(Body::from(r#"{"name": "Hat", "price": "free"}"#))
///     .unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// // {"detail": [{"type": "float_type", "loc": ["body", "price"], "msg": ..., "input": "free"}]}
/// assert_eq!(response.status(), 422);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> Json<T> {
    /// Parses a JSON body that is already in memory, reporting errors as [`Json`] does.
    ///
    /// # Errors
    /// One `json_invalid` detail for malformed JSON, else one detail for the first field that
    /// does not fit `T`.
    ///
    /// # Examples
    /// ```
    /// use bulwark::validation::Json;
    ///
    /// let Json(numbers) = Json::<Vec<u8>>::from_bytes(b"[1, 2]").unwrap();
    /// assert_eq!(numbers, [1, 2]);
    /// let errors = Json::<Vec<u8>>::from_bytes(b"[1, \"two\"]").unwrap_err();
    /// assert_eq!(errors.details()[0].kind, "int_type");
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ValidationErrors> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|err| json_invalid(bytes, &err))?;
        // Text a field takes in must not hold NUL (ignored extras are not looked at).
        serde_path_to_error::deserialize(super::no_nul::NoNul(&value))
            .map(Json)
            .map_err(|err| {
                let message = err.inner().to_string();
                let input_at = |loc: &[LocItem]| serde_error::value_at(&value, loc).cloned();
                serde_error::to_detail("body", Syntax::Json, err.path(), &message, input_at).into()
            })
    }
}

/// pydantic's `json_invalid`: the byte offset in `loc`, serde_json's message without its
/// position in `ctx.error`, and `{}` as input.
fn json_invalid(bytes: &[u8], err: &serde_json::Error) -> ErrorDetail {
    let offset = if err.is_eof() {
        bytes.len()
    } else {
        line_start(bytes, err.line()) + err.column().saturating_sub(1)
    };
    let text = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    let message = text.strip_suffix(&position).unwrap_or(&text);
    let loc = [
        LocItem::from("body"),
        LocItem::Index(offset.min(bytes.len())),
    ];
    ErrorDetail::new("json_invalid", loc, "JSON decode error")
        .with_input(json!({}))
        .with_ctx(json!({ "error": message }))
}

/// The byte offset where 1-based line `line` starts.
fn line_start(bytes: &[u8], line: usize) -> usize {
    let newlines = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n');
    match line.checked_sub(2) {
        None => 0,
        Some(skip) => newlines
            .map(|(i, _)| i + 1)
            .nth(skip)
            .unwrap_or(bytes.len()),
    }
}

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = BodyRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !body::media_type(req.headers()).is_some_and(|m| body::is_json(&m)) {
            return Err(BodyRejection::UnsupportedMediaType);
        }
        let bytes = body::read(req, state).await?;
        Ok(Self::from_bytes(&bytes)?)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, extract::DefaultBodyLimit, routing::post};
    use http::StatusCode;
    use serde::Deserialize;

    use super::*;
    use crate::validation::test_support::{only_detail, request, send};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Tag {
        #[allow(dead_code)]
        label: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(try_from = "f64")]
    struct Price(f64);

    impl TryFrom<f64> for Price {
        type Error = &'static str;

        fn try_from(value: f64) -> Result<Self, Self::Error> {
            if value > 0.0 {
                Ok(Self(value))
            } else {
                Err("price must be greater than 0")
            }
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct NewItem {
        name: String,
        price: Price,
        quantity: Option<u32>,
        #[serde(default)]
        tags: Vec<Tag>,
        password: Option<String>,
    }

    fn app() -> Router {
        let create =
            |Json(item): Json<NewItem>| async move { Json(json!({"price": item.price.0})) };
        Router::new().route("/", post(create))
    }

    async fn post_json(body: &str) -> (StatusCode, Value) {
        send(app(), request("POST", "/", "application/json", body)).await
    }

    #[tokio::test]
    async fn a_well_formed_body_parses() {
        for content_type in [
            "application/json",
            "application/json; charset=utf-8",
            "application/vnd.api+json",
        ] {
            let body = r#"{"name": "Hat", "price": 2.5, "tags": [{"label": "new"}]}"#;
            let (status, answer) = send(app(), request("POST", "/", content_type, body)).await;
            assert_eq!(status, StatusCode::OK, "{content_type}");
            assert_eq!(answer, json!({"price": 2.5}));
        }
    }

    #[tokio::test]
    async fn a_missing_field_echoes_the_enclosing_object() {
        let (status, body) = post_json(r#"{"name": "Hat"}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let expected = json!({"type": "missing", "loc": ["body", "price"], "msg": "Field required", "input": {"name": "Hat"}});
        assert_eq!(only_detail(&body), &expected);
    }

    #[tokio::test]
    async fn an_unknown_field_is_extra_forbidden() {
        let (status, body) = post_json(r#"{"name": "Hat", "price": 1, "owner_id": 7}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let expected = json!({"type": "extra_forbidden", "loc": ["body", "owner_id"], "msg": "Extra inputs are not permitted", "input": 7});
        assert_eq!(only_detail(&body), &expected);
    }

    #[tokio::test]
    async fn a_wrong_type_names_the_expected_type() {
        let (_, body) = post_json(r#"{"name": "Hat", "price": "cheap"}"#).await;
        let expected = json!({"type": "float_type", "loc": ["body", "price"], "msg": "Input should be a valid number", "input": "cheap"});
        assert_eq!(only_detail(&body), &expected);
        let (_, body) = post_json(r#"{"name": "Hat", "price": 1, "quantity": 1.5}"#).await;
        assert_eq!(only_detail(&body)["type"], "int_type");
        let (_, body) = post_json(r#"{"name": "Hat", "price": 1, "tags": {}}"#).await;
        assert_eq!(only_detail(&body)["type"], "list_type");
        let (_, body) = post_json("[]").await;
        assert_eq!(only_detail(&body)["loc"], json!(["body"]));
    }

    #[tokio::test]
    async fn nested_errors_locate_array_indexes_as_integers() {
        let body = r#"{"name": "Hat", "price": 1, "tags": [{"label": "a"}, {"label": 5}]}"#;
        let (_, body) = post_json(body).await;
        let detail = only_detail(&body);
        assert_eq!(detail["loc"], json!(["body", "tags", 1, "label"]));
        assert_eq!(detail["type"], "string_type");
        assert_eq!(detail["input"], 5);
        let (_, body) = post_json(r#"{"name": "Hat", "price": 1, "tags": [{}]}"#).await;
        assert_eq!(
            only_detail(&body)["loc"],
            json!(["body", "tags", 0, "label"])
        );
    }

    #[tokio::test]
    async fn a_domain_rule_becomes_a_value_error() {
        let (_, body) = post_json(r#"{"name": "Hat", "price": -1}"#).await;
        let expected = json!({"type": "value_error", "loc": ["body", "price"], "msg": "Value error, price must be greater than 0", "input": -1});
        assert_eq!(only_detail(&body), &expected);
    }

    #[tokio::test]
    async fn malformed_json_is_json_invalid_at_its_byte_offset() {
        let (status, body) = post_json(r#"{"name": }"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let expected = json!({"type": "json_invalid", "loc": ["body", 9], "msg": "JSON decode error", "input": {}, "ctx": {"error": "expected value"}});
        assert_eq!(only_detail(&body), &expected);
        let (_, body) = post_json("{\"name\": \"a\",\n \"price\": x}").await;
        assert_eq!(only_detail(&body)["loc"], json!(["body", 24]));
    }

    #[tokio::test]
    async fn an_empty_body_is_json_invalid() {
        let (status, body) = post_json("").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let detail = only_detail(&body);
        assert_eq!(detail["type"], "json_invalid");
        assert_eq!(detail["loc"], json!(["body", 0]));
    }

    #[tokio::test]
    async fn another_content_type_is_415() {
        let body = r#"{"name": "Hat", "price": 1}"#;
        let (status, answer) = send(app(), request("POST", "/", "text/plain", body)).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(answer, json!({"detail": "Unsupported Media Type"}));
        let bare = http::Request::post("/")
            .body(axum::body::Body::from(body))
            .expect("request");
        assert_eq!(
            send(app(), bare).await.0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413() {
        let app = app().layer(DefaultBodyLimit::max(16));
        let body = r#"{"name": "A long hat name", "price": 1}"#;
        let (status, answer) = send(app, request("POST", "/", "application/json", body)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(answer, json!({"detail": "Request body too large"}));
    }

    #[tokio::test]
    async fn a_password_is_never_echoed() {
        let (_, body) = post_json(r#"{"name": "Hat", "price": 1, "password": 1234}"#).await;
        let detail = only_detail(&body);
        assert_eq!(detail["type"], "string_type");
        assert!(detail.get("input").is_none(), "{detail}");
        // Nor beside a missing field, in the echoed enclosing object.
        let (_, body) = post_json(r#"{"price": 1, "password": "hunter2"}"#).await;
        let detail = only_detail(&body);
        assert_eq!(detail["loc"], json!(["body", "name"]));
        assert!(detail.get("input").is_none(), "{detail}");
        assert!(!body.to_string().contains("hunter2"));
    }
}
