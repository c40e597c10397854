//! Sends one real request through a router and reads the JSON answer.

use axum::{Router, body::Body};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A request with a method, URI, `Content-Type` and body.
pub(crate) fn request(method: &str, uri: &str, content_type: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_owned()))
        .expect("valid request")
}

/// Status and JSON body (`Value::Null` when the body is not JSON).
pub(crate) async fn send(app: Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The only detail of a 422 body.
pub(crate) fn only_detail(body: &Value) -> &Value {
    let details = body["detail"].as_array().expect("a list of details");
    assert_eq!(details.len(), 1, "{body}");
    &details[0]
}
