use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{Html, IntoResponse},
    routing::get,
};
use http::Method;
use serde_json::{Value, json};

use super::*;
use crate::{
    api::BodyKind,
    checks::injection::test_api::{api, body, op, path, query, with},
    testing::{context, serve},
};

fn found(outcome: &Outcome, id: CheckId) -> Vec<Finding> {
    match outcome {
        Outcome::Found(f) => f.iter().filter(|f| f.id == id).cloned().collect(),
        _ => Vec::new(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

fn name(p: &HashMap<String, String>) -> String {
    p.get("name").cloned().unwrap_or_default()
}

#[tokio::test]
async fn reflected_xss_needs_raw_markup_in_html() {
    let app = Router::new()
        .route(
            "/vuln/hello",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                Html(format!("<p>Hello {}</p>", name(&p)))
            }),
        )
        .route(
            "/safe/hello",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                Html(format!("<p>Hello {}</p>", escape(&name(&p))))
            }),
        )
        .route(
            "/safe/json",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                Json(json!({"hello": name(&p)}))
            }),
        );
    let url = serve(app).await;
    let vuln = api(vec![with(
        op(Method::GET, "/vuln/hello"),
        vec![query("name")],
    )]);
    let cx = context(&url, Some(vuln), &[]);
    let outcome = reflected(&cx).await;
    let f = found(&outcome, CheckId::XssReflected);
    assert_eq!(f.len(), 1, "{outcome:?}");
    assert_eq!(f[0].operation, "GET /vuln/hello");
    assert!(f[0].evidence.response.contains("[unescaped] "), "{f:?}");

    let safe = api(vec![
        with(op(Method::GET, "/safe/hello"), vec![query("name")]),
        with(op(Method::GET, "/safe/json"), vec![query("name")]),
    ]);
    let cx = context(&url, Some(safe), &[]);
    let outcome = reflected(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
}

type Store = Arc<Mutex<Vec<Option<Value>>>>;

fn items_app(prefix: &'static str, escaped: bool) -> Router {
    let store: Store = Arc::default();
    Router::new()
        .route(
            &format!("/{prefix}/items"),
            get(|State(s): State<Store>| async move {
                let all: Vec<Value> = s.lock().unwrap().iter().flatten().cloned().collect();
                Json(json!(all))
            })
            .post(
                |State(s): State<Store>, Json(mut b): Json<Value>| async move {
                    let mut items = s.lock().unwrap();
                    b["id"] = json!(items.len());
                    items.push(Some(b.clone()));
                    (StatusCode::CREATED, Json(b))
                },
            ),
        )
        .route(
            &format!("/{prefix}/items/{{item_id}}"),
            get(|State(s): State<Store>, Path(id): Path<usize>| async move {
                match s.lock().unwrap().get(id).cloned().flatten() {
                    Some(v) => Json(v).into_response(),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            })
            .delete(|State(s): State<Store>, Path(id): Path<usize>| async move {
                if let Some(slot) = s.lock().unwrap().get_mut(id) {
                    *slot = None;
                }
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            &format!("/{prefix}/items/{{item_id}}/page"),
            get(
                move |State(s): State<Store>, Path(id): Path<usize>| async move {
                    let Some(v) = s.lock().unwrap().get(id).cloned().flatten() else {
                        return StatusCode::NOT_FOUND.into_response();
                    };
                    let title = v["title"].as_str().unwrap_or_default().to_owned();
                    let title = if escaped { escape(&title) } else { title };
                    Html(format!("<h1>{title}</h1><p>{}</p>", v["price"])).into_response()
                },
            ),
        )
        .with_state(store)
}

fn items_api(prefix: &str) -> crate::api::Api {
    let mut create = op(Method::POST, &format!("/{prefix}/items"));
    create.body = Some(body(
        BodyKind::Json,
        json!({"type": "object", "required": ["title"], "properties": {
            "title": {"type": "string"}, "price": {"type": "number"}}}),
    ));
    api(vec![
        op(Method::GET, &format!("/{prefix}/items")),
        create,
        with(
            op(Method::GET, &format!("/{prefix}/items/{{item_id}}")),
            vec![path("item_id")],
        ),
        with(
            op(Method::DELETE, &format!("/{prefix}/items/{{item_id}}")),
            vec![path("item_id")],
        ),
        with(
            op(Method::GET, &format!("/{prefix}/items/{{item_id}}/page")),
            vec![path("item_id")],
        ),
    ])
}

#[tokio::test]
async fn stored_xss_is_found_on_the_page_that_renders_the_object() {
    let url = serve(items_app("vuln", false).merge(items_app("safe", true))).await;
    let cx = context(&url, Some(items_api("vuln")), &["token-a"]);
    let outcome = stored(&cx).await;
    let f = found(&outcome, CheckId::XssStored);
    assert_eq!(f.len(), 1, "{outcome:?}");
    assert_eq!(f[0].operation, "GET /vuln/items/{item_id}/page", "{f:?}");
    assert!(f[0].title.contains("`title`"), "{f:?}");
    assert_eq!(cx.clean_up().await, 0);

    let cx = context(&url, Some(items_api("safe")), &["token-a"]);
    let outcome = stored(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
    assert_eq!(cx.clean_up().await, 0);

    // No session: nothing to create objects as.
    let cx = context(&url, Some(items_api("vuln")), &[]);
    assert!(matches!(stored(&cx).await, Outcome::Skipped(_)));
}
