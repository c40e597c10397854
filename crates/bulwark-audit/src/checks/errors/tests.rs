use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::Query,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use http::Method;
use serde_json::{Value, json};

use super::*;
use crate::{
    api::BodyKind,
    checks::injection::test_api::{api, body, op, query, with},
    testing::{context, serve},
};

fn found(outcome: &Outcome, id: CheckId) -> Vec<Finding> {
    match outcome {
        Outcome::Found(f) => f.iter().filter(|f| f.id == id).cloned().collect(),
        _ => Vec::new(),
    }
}

const TRACE: &str = "Traceback (most recent call last):\n  File \"/home/app/main.py\", line 12, in search\n    cur.execute(f\"SELECT * FROM items WHERE name = '{q}'\")\nsqlite3.OperationalError: unrecognized token";

fn app() -> Router {
    Router::new()
        .route(
            "/vuln/items",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                let q = p.get("q").cloned().unwrap_or_default();
                if q.contains('\'') {
                    (StatusCode::INTERNAL_SERVER_ERROR, TRACE).into_response()
                } else {
                    Json(json!([])).into_response()
                }
            }),
        )
        .route(
            "/vuln/render",
            post(|b: Bytes| async move {
                match serde_json::from_slice::<Value>(&b) {
                    Ok(v) => Json(v).into_response(),
                    Err(_) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
                    }
                }
            }),
        )
        .route(
            "/safe/items",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                let q = p.get("q").cloned().unwrap_or_default();
                if q.contains('\'') || q.len() > 100 || q.contains('\0') {
                    (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"detail": "invalid q"})),
                    )
                        .into_response()
                } else {
                    Json(json!([])).into_response()
                }
            }),
        )
        .route(
            "/safe/render",
            post(|b: Bytes| async move {
                match serde_json::from_slice::<Value>(&b) {
                    Ok(v) => Json(v).into_response(),
                    Err(_) => (StatusCode::BAD_REQUEST, "bad JSON").into_response(),
                }
            }),
        )
        .route(
            "/safe/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route(
            "/safe/busy",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "5")]) }),
        )
}

fn the_api(prefix: &str) -> crate::api::Api {
    let mut render = op(Method::POST, &format!("/{prefix}/render"));
    render.body = Some(body(
        BodyKind::Json,
        json!({"type": "object", "properties": {"template": {"type": "string"}}}),
    ));
    let mut ops = vec![
        with(
            op(Method::GET, &format!("/{prefix}/items")),
            vec![query("q")],
        ),
        render,
    ];
    if prefix == "safe" {
        ops.push(with(op(Method::GET, "/safe/broken"), vec![query("q")]));
        ops.push(with(op(Method::GET, "/safe/busy"), vec![query("q")]));
    }
    api(ops)
}

#[tokio::test]
async fn stack_traces_and_server_errors_on_crafted_input() {
    let url = serve(app()).await;
    let cx = context(&url, Some(the_api("vuln")), &[]);
    let outcome = verbose_errors(&cx).await;
    let f = found(&outcome, CheckId::VerboseErrors);
    assert_eq!(f.len(), 1, "{outcome:?}");
    assert_eq!(f[0].operation, "GET /vuln/items");
    assert!(f[0].title.contains("Python stack trace"), "{f:?}");
    assert!(
        f[0].evidence
            .response
            .contains("[a Python stack trace] Traceback"),
        "{f:?}"
    );

    // The second check reads the same answers: no request of its own.
    let sent = cx.probe.sent();
    let outcome = server_error(&cx).await;
    assert_eq!(cx.probe.sent(), sent);
    let f = found(&outcome, CheckId::ServerError);
    assert_eq!(f.len(), 2, "{outcome:?}");
    assert!(
        f.iter().any(|f| f.operation == "POST /vuln/render"),
        "{f:?}"
    );

    let cx = context(&url, Some(the_api("safe")), &[]);
    let outcome = server_error(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
    let outcome = verbose_errors(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
}

#[test]
fn leaks_are_recognised_precisely() {
    assert_eq!(leak(TRACE).map(|l| l.0), Some("a Python stack trace"));
    assert_eq!(
        leak("thread 'main' panicked at src/main.rs:4:5").map(|l| l.0),
        Some("a Rust panic")
    );
    assert_eq!(
        leak("error in /srv/api/handlers/user.rb:12").map(|l| l.0),
        Some("a file path")
    );
    assert_eq!(
        leak("{\"detail\":\"near SELECT name FROM items\"}").map(|l| l.0),
        Some("SQL text")
    );
    assert_eq!(
        leak("<a href=\"/home/\">home</a> Select your FROM address"),
        None
    );
    assert_eq!(leak("{\"detail\": \"Not Found\"}"), None);
    assert_eq!(
        leak("File \"/data/x.txt\" not found; the job panicked at noon"),
        None
    );
    assert_eq!(
        leak("  File \"/srv/app.py\", line 3, in f").map(|l| l.0),
        Some("a Python stack trace")
    );
}
