use axum::{
    Json, Router,
    extract::Path,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use http::Method;
use serde_json::json;

use super::*;
use crate::{
    api::{Api, Param},
    checks::login::tests::{api, op},
    testing::{context, serve},
};

fn documented(mut o: Operation, schemas: &[(&str, Value)]) -> Operation {
    for (status, schema) in schemas {
        if let Some(r) = o.responses.iter_mut().find(|r| r.status == *status) {
            r.schema = Some(schema.clone());
        }
    }
    o
}

fn list_schema() -> Value {
    json!({"type": "object", "required": ["items", "total"], "properties": {
        "items": {"type": "array", "items": {"type": "object", "required": ["id", "name"],
            "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                "password": {"type": "string", "writeOnly": true}}}},
        "total": {"type": "integer"}}})
}

fn error_schema() -> Value {
    json!({"type": "object", "required": ["detail"], "properties": {"detail": {}}})
}

/// The document: a list, an item (with 404 and 422 documented when `complete`), and a health
/// route that is rate limited.
fn document(complete: bool) -> Api {
    let item_statuses: &[&str] = if complete {
        &["200", "404", "422"]
    } else {
        &["200"]
    };
    let mut health = op(Method::GET, "/health", None, &["200"]);
    health.params.push(Param {
        name: "verbose".into(),
        location: crate::api::ParamIn::Query,
        required: false,
        schema: json!({"type": "boolean"}),
        example: None,
    });
    api(vec![
        documented(
            op(Method::GET, "/items/", None, &["200"]),
            &[("200", list_schema())],
        ),
        documented(
            op(Method::GET, "/items/{item_id}", None, item_statuses),
            &[("404", error_schema()), ("422", error_schema())],
        ),
        health,
        op(Method::POST, "/items/", None, &["201"]),
        // Never called: a GET that logs out.
        op(Method::GET, "/logout", None, &["200"]),
    ])
}

async fn item(Path(id): Path<String>) -> Response {
    match id.parse::<u64>() {
        Ok(_) => (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))).into_response(),
        Err(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"detail": [{"loc": ["path", "item_id"]}]})),
        )
            .into_response(),
    }
}

async fn limited() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", "1")],
        Json(json!({"detail": "Too Many Requests"})),
    )
        .into_response()
}

fn app(list: Value) -> Router {
    Router::new()
        .route("/items/", get(move || async move { Json(list) }))
        .route("/items/{item_id}", get(item))
        .route("/health", get(limited))
}

#[tokio::test]
async fn undocumented_statuses_and_bodies_against_the_schema_are_findings() {
    let url = serve(app(json!({"items": [{"id": 1}]}))).await;
    let cx = context(&url, Some(document(false)), &[]);
    let Outcome::Found(found) = openapi_drift(&cx).await else {
        panic!("expected findings");
    };
    let titles: Vec<&str> = found.iter().map(|f| f.title.as_str()).collect();
    assert_eq!(found.len(), 3, "{titles:?}");
    assert!(found.iter().all(|f| f.id == CheckId::OpenapiDrift));
    assert!(
        titles.contains(&"GET /items/ answered 200 with a body the documented schema does not allow: the required property `total` is missing from the body"),
        "{titles:?}"
    );
    assert!(
        titles.contains(&"GET /items/{item_id} answered 404, which the document does not list")
    );
    assert!(
        titles.contains(&"GET /items/{item_id} answered 422, which the document does not list")
    );
    // GET only: the POST and the logout were never sent (the app has no /logout: it would
    // answer an undocumented 404); 429 is no drift.
    assert_eq!(cx.probe.sent(), 5);
}

#[tokio::test]
async fn an_api_that_answers_as_documented_passes() {
    let url = serve(app(json!({"items": [{"id": 1, "name": "a"}], "total": 1}))).await;
    let cx = context(&url, Some(document(true)), &[]);
    let outcome = openapi_drift(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
}

#[tokio::test]
async fn secured_operations_need_a_session() {
    let url = serve(app(json!({}))).await;
    let mut doc = document(true);
    for o in &mut doc.operations {
        o.secured = true;
    }
    let cx = context(&url, Some(doc), &[]);
    assert!(matches!(openapi_drift(&cx).await, Outcome::Skipped(_)));
    assert_eq!(cx.probe.sent(), 0);
}

#[test]
fn schema_mismatches() {
    let s = list_schema();
    assert_eq!(
        mismatch(&s, &json!({"items": [], "total": 0}), "the body", 0),
        None
    );
    assert_eq!(
        mismatch(&s, &json!([]), "the body", 0).as_deref(),
        Some("the body is an array where the document says object")
    );
    assert_eq!(
        mismatch(
            &s,
            &json!({"items": [{"id": "1", "name": "a"}], "total": 0}),
            "the body",
            0
        )
        .as_deref(),
        Some("`items[0].id` is a string where the document says integer")
    );
    assert_eq!(
        mismatch(
            &s,
            &json!({"items": [{"name": "a"}], "total": 0}),
            "the body",
            0
        )
        .as_deref(),
        Some("the required property `id` is missing from `items[0]`")
    );
    // writeOnly properties are left out of answers; nullable and 3.1 null types allow null.
    let w = json!({"type": "object", "required": ["password"], "properties": {
        "password": {"type": "string", "writeOnly": true}}});
    assert_eq!(mismatch(&w, &json!({}), "the body", 0), None);
    let n = json!({"type": "object", "properties": {
        "a": {"type": "string", "nullable": true}, "b": {"type": ["integer", "null"]}}});
    assert_eq!(
        mismatch(&n, &json!({"a": null, "b": null}), "the body", 0),
        None
    );
    // Alternatives are not judged; integers are numbers.
    let alt = json!({"oneOf": [{"type": "string"}, {"type": "object"}]});
    assert_eq!(mismatch(&alt, &json!(5), "the body", 0), None);
    assert_eq!(
        mismatch(&json!({"type": "number"}), &json!(5), "the body", 0),
        None
    );
    assert!(mismatch(&json!({"type": "integer"}), &json!(5.5), "the body", 0).is_some());
}
