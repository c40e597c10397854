//! FastAPI-shaped error responses.
//!
//! Every error that leaves a Bulwark service has one of two bodies, so that a client written for
//! a FastAPI service works unchanged:
//!
//! - `{"detail": "<message>"}` for 4xx/5xx other than 422 ([`HttpError`]);
//! - `{"detail": [{"type", "loc", "msg", "input"?}, ...]}` for 422 ([`ValidationErrors`]).
//!
//! A 5xx body is always generic: the real cause is logged by the caller, never sent. The
//! [`normalize_error_body`] middleware rewrites any error response that did not come out in one of
//! these shapes (axum's own rejections, tower-http's 408/413, a caught panic), so that no plain-text
//! body, stack trace or internal message reaches a client.

use std::borrow::Cow;

use axum::{
    Json,
    body::Body,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::Value;

/// An error answered as `{"detail": "<message>"}` with a status code.
///
/// # Examples
/// ```
/// use bulwark::error::HttpError;
/// use axum::response::IntoResponse;
///
/// let response = HttpError::not_found().into_response();
/// assert_eq!(response.status(), 404);
/// ```
#[derive(Debug, Clone)]
pub struct HttpError {
    status: StatusCode,
    detail: Cow<'static, str>,
    www_authenticate: bool,
}

impl HttpError {
    /// An error with the given status and public message.
    pub fn new(status: StatusCode, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            detail: detail.into(),
            www_authenticate: false,
        }
    }

    /// 404 `{"detail": "Not Found"}`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found")
    }

    /// 401 with `WWW-Authenticate: Bearer`, as every authentication failure must answer.
    pub fn unauthorized(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail).with_bearer_challenge()
    }

    /// 401 `{"detail": "Incorrect username or password"}` with `WWW-Authenticate: Bearer`: the
    /// one answer of a login that failed, whichever part was wrong (no user enumeration).
    pub fn invalid_login() -> Self {
        Self::unauthorized("Incorrect username or password")
    }

    /// 403 `{"detail": "Insufficient permissions"}`.
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "Insufficient permissions")
    }

    /// 409 with the given message.
    pub fn conflict(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 500 with a generic message. Log the cause before answering this.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }

    /// 503 with the given message.
    pub fn unavailable(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }

    /// Adds `WWW-Authenticate: Bearer` to the response.
    pub fn with_bearer_challenge(mut self) -> Self {
        self.www_authenticate = true;
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The public message.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.detail)
    }
}

impl std::error::Error for HttpError {}

#[derive(Serialize)]
struct DetailBody<'a> {
    detail: &'a str,
}

/// Room for the headers an error response ends up with (content type, challenge, the security
/// headers, request id, rate-limit headers), so the map is allocated once and never grown.
const ERROR_RESPONSE_HEADERS: usize = 16;

/// `{"detail":"<detail>"}`, byte for byte what `serde_json` writes. The messages are almost always
/// fixed texts that need no escaping, written here without a serializer: refusals (bad tokens,
/// rate limits) are what a flood is made of, so they should cost as little as possible.
fn detail_json(detail: &str) -> Vec<u8> {
    if detail.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        // Exactly the length: `Bytes::from(Vec)` then takes the buffer over without allocating.
        let mut body = Vec::with_capacity(detail.len() + 13);
        body.extend_from_slice(b"{\"detail\":\"");
        body.extend_from_slice(detail.as_bytes());
        body.extend_from_slice(b"\"}");
        body
    } else {
        serde_json::to_vec(&DetailBody { detail }).unwrap_or_default()
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut headers = http::HeaderMap::with_capacity(ERROR_RESPONSE_HEADERS);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let mut response = Response::new(Body::from(detail_json(&self.detail)));
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}

/// One element of an error location: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum LocItem {
    /// An object key, or the source (`body`, `query`, `path`, `header`, `cookie`).
    Key(String),
    /// An array index, or a byte offset for malformed JSON.
    Index(usize),
}

impl From<&str> for LocItem {
    fn from(value: &str) -> Self {
        LocItem::Key(value.to_owned())
    }
}

impl From<String> for LocItem {
    fn from(value: String) -> Self {
        LocItem::Key(value)
    }
}

impl From<usize> for LocItem {
    fn from(value: usize) -> Self {
        LocItem::Index(value)
    }
}

/// One entry of a 422 body, in pydantic's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorDetail {
    /// Machine-readable kind, e.g. `missing`, `extra_forbidden`, `json_invalid`.
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    /// Where the error is: `["body", "price"]`, `["path", "item_id"]`, ...
    pub loc: Vec<LocItem>,
    /// Human-readable message.
    pub msg: Cow<'static, str>,
    /// The offending input. Omitted where echoing it could leak a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Extra context (limits, expected values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

impl ErrorDetail {
    /// A detail with kind, location and message; no input.
    pub fn new(
        kind: impl Into<Cow<'static, str>>,
        loc: impl IntoIterator<Item = impl Into<LocItem>>,
        msg: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            kind: kind.into(),
            loc: loc.into_iter().map(Into::into).collect(),
            msg: msg.into(),
            input: None,
            ctx: None,
        }
    }

    /// Sets the echoed input.
    pub fn with_input(mut self, input: Value) -> Self {
        self.input = Some(input);
        self
    }

    /// Sets the context object.
    pub fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }

    /// Prefixes the location, e.g. with `"body"`.
    pub fn prefixed(mut self, prefix: impl Into<LocItem>) -> Self {
        self.loc.insert(0, prefix.into());
        self
    }
}

/// A 422 answer: a list of [`ErrorDetail`].
///
/// # Examples
/// ```
/// use bulwark::error::{ErrorDetail, ValidationErrors};
/// use axum::response::IntoResponse;
///
/// let errors = ValidationErrors::from(ErrorDetail::new("missing", ["body", "price"], "Field required"));
/// assert_eq!(errors.into_response().status(), 422);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ValidationErrors {
    detail: Vec<ErrorDetail>,
}

impl ValidationErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one error.
    pub fn push(&mut self, detail: ErrorDetail) {
        self.detail.push(detail);
    }

    /// True when no error was recorded.
    pub fn is_empty(&self) -> bool {
        self.detail.is_empty()
    }

    /// The recorded errors.
    pub fn details(&self) -> &[ErrorDetail] {
        &self.detail
    }

    /// `Ok(value)` when no error was recorded, else `Err(self)`.
    ///
    /// # Errors
    /// `self` when it holds at least one error.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<ErrorDetail> for ValidationErrors {
    fn from(detail: ErrorDetail) -> Self {
        Self {
            detail: vec![detail],
        }
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} validation error(s)", self.detail.len())
    }
}

impl std::error::Error for ValidationErrors {}

impl IntoResponse for ValidationErrors {
    fn into_response(self) -> Response {
        (StatusCode::UNPROCESSABLE_ENTITY, Json(self)).into_response()
    }
}

/// The generic public message for a status code, used where an error has no message of its own.
pub fn canonical_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "Bad Request",
        StatusCode::UNAUTHORIZED => "Not authenticated",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "Not Found",
        StatusCode::METHOD_NOT_ALLOWED => "Method Not Allowed",
        StatusCode::REQUEST_TIMEOUT => "Request Timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "Request body too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported Media Type",
        StatusCode::TOO_MANY_REQUESTS => "Too Many Requests",
        StatusCode::SERVICE_UNAVAILABLE => "Service Unavailable",
        s if s.is_server_error() => "Internal Server Error",
        s => s.canonical_reason().unwrap_or("Error"),
    }
}

/// Middleware (for `axum::middleware::map_response`) that gives every error response the
/// `{"detail": ...}` shape.
///
/// Responses below 400, and error responses that already are JSON or HTML, pass unchanged. Any
/// other error body (plain text from an extractor or a tower-http layer, an empty 408/413, a
/// caught panic) is replaced by the canonical message for its status. Headers such as
/// `Allow` and `WWW-Authenticate` are kept.
///
/// # Examples
/// ```
/// use axum::{Router, routing::get, middleware::map_response};
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(map_response(bulwark::error::normalize_error_body));
/// ```
pub async fn normalize_error_body<B>(response: Response<B>) -> Response
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    normalize_error_response(response)
}

/// What [`normalize_error_body`] does, as a plain function: for a `tower` layer of your own
/// (`tower::util::MapResponseLayer`), which need not box a future per request as
/// `axum::middleware::map_response` does.
///
/// # Examples
/// ```
/// use axum::{Router, routing::get};
/// use tower::util::MapResponseLayer;
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(MapResponseLayer::new(bulwark::error::normalize_error_response));
/// ```
pub fn normalize_error_response<B>(response: Response<B>) -> Response
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response.map(Body::new);
    }
    let already_shaped = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"));
    if already_shaped {
        return response.map(Body::new);
    }
    let (mut parts, _body) = response.into_parts();
    let body = serde_json::to_vec(&DetailBody {
        detail: canonical_detail(status),
    })
    .unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// Turns a caught panic into a generic 500 (for tower-http's `CatchPanicLayer::custom`).
///
/// The panic message is logged at error level and never sent.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("<non-string panic>");
    tracing::error!(panic = message, "handler panicked");
    HttpError::internal().into_response()
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, middleware::map_response, routing::get};
    use http::{Request, StatusCode, header};
    use http_body_util::BodyExt as _;
    use serde_json::{Value, json};
    use tower::ServiceExt as _;
    use tower_http::catch_panic::CatchPanicLayer;

    use super::*;

    #[test]
    fn detail_bodies_are_what_serde_json_writes() {
        for detail in [
            "Not Found",
            "Could not validate credentials",
            "",
            "quote \" and backslash \\",
            "control \u{1} \n \t",
            "non-ASCII é ✓ and DEL \u{7f}",
        ] {
            let expected = serde_json::to_vec(&json!({ "detail": detail })).unwrap();
            assert_eq!(detail_json(detail), expected, "{detail:?}");
        }
    }

    async fn call(app: Router, method: &str, uri: &str) -> (StatusCode, http::HeaderMap, Value) {
        let response = app
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn boom() -> &'static str {
        panic!("secret panic message at src/lib.rs:1")
    }

    fn app() -> Router {
        Router::new()
            .route("/ok", get(|| async { "fine" }))
            .route(
                "/text-error",
                get(|| async { (StatusCode::BAD_REQUEST, "internal detail: /etc/x") }),
            )
            .route("/panic", get(|| async { boom() }))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(map_response(normalize_error_body))
    }

    #[tokio::test]
    async fn a_panic_becomes_a_generic_json_500() {
        let (status, _, body) = call(app(), "GET", "/panic").await;
        assert_eq!(status, 500);
        assert_eq!(body, json!({"detail": "Internal Server Error"}));
    }

    #[tokio::test]
    async fn plain_text_errors_are_replaced_by_the_canonical_detail() {
        let (status, headers, body) = call(app(), "GET", "/text-error").await;
        assert_eq!(status, 400);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body, json!({"detail": "Bad Request"}));
        let (status, _, body) = call(app(), "GET", "/missing").await;
        assert_eq!(
            (status, body),
            (StatusCode::NOT_FOUND, json!({"detail": "Not Found"}))
        );
    }

    #[tokio::test]
    async fn method_not_allowed_keeps_its_allow_header() {
        let (status, headers, body) = call(app(), "DELETE", "/ok").await;
        assert_eq!(status, 405);
        assert!(headers.contains_key(header::ALLOW));
        assert_eq!(body, json!({"detail": "Method Not Allowed"}));
    }

    #[tokio::test]
    async fn json_errors_and_successes_pass_unchanged() {
        let app = Router::new()
            .route(
                "/teapot",
                get(|| async { HttpError::new(StatusCode::IM_A_TEAPOT, "short and stout") }),
            )
            .route(
                "/unauth",
                get(|| async { HttpError::unauthorized("Not authenticated") }),
            )
            .layer(map_response(normalize_error_body));
        let (status, _, body) = call(app.clone(), "GET", "/teapot").await;
        assert_eq!(
            (status.as_u16(), body),
            (418, json!({"detail": "short and stout"}))
        );
        let (_, headers, _) = call(app, "GET", "/unauth").await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn validation_errors_serialize_in_pydantic_shape() {
        let mut errors = ValidationErrors::new();
        errors.push(ErrorDetail::new(
            "missing",
            ["body", "price"],
            "Field required",
        ));
        errors.push(
            ErrorDetail::new(
                "int_parsing",
                vec![LocItem::from("body"), LocItem::from(2usize)],
                "bad",
            )
            .with_input(json!("x")),
        );
        assert_eq!(
            serde_json::to_value(&errors).unwrap(),
            json!({"detail": [
                {"type": "missing", "loc": ["body", "price"], "msg": "Field required"},
                {"type": "int_parsing", "loc": ["body", 2], "msg": "bad", "input": "x"}
            ]})
        );
    }
}
