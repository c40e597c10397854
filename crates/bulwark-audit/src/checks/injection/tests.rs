use axum::{
    Json, Router,
    extract::{Path, Query},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use http::Method;
use serde_json::{Value, json};
use std::collections::HashMap;

use super::test_api::{api, body, op, path, query, with};
use super::*;
use crate::{
    api::{BodyKind, ParamIn},
    testing::{context, serve},
};

fn found(outcome: &Outcome, id: CheckId) -> Vec<Finding> {
    match outcome {
        Outcome::Found(f) => f.iter().filter(|f| f.id == id).cloned().collect(),
        _ => Vec::new(),
    }
}

// --- SQL: a real SQLite database, queried with format! (vulnerable) or a bound parameter.

fn database() -> rusqlite::Connection {
    let db = rusqlite::Connection::open_in_memory().expect("sqlite");
    db.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, owner TEXT, name TEXT);
         INSERT INTO items (owner, name) VALUES ('alice', 'apple'), ('alice', 'pear'), ('bob', 'secret plan');",
    )
    .expect("schema");
    db
}

fn rows(db: &rusqlite::Connection, sql: &str, bind: Option<&str>) -> Result<Vec<String>, String> {
    let mut stmt = db.prepare(sql).map_err(|e| e.to_string())?;
    let mapped = stmt
        .query_map(rusqlite::params_from_iter(bind), |r| r.get::<_, String>(0))
        .map_err(|e| e.to_string())?;
    mapped
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

fn q(params: &HashMap<String, String>, name: &str) -> String {
    params.get(name).cloned().unwrap_or_default()
}

fn sql_app(verbose: bool) -> Router {
    Router::new()
        .route(
            "/vuln/search",
            get(move |Query(p): Query<HashMap<String, String>>| async move {
                let sql = format!(
                    "SELECT name FROM items WHERE owner = 'alice' AND name = '{}'",
                    q(&p, "q")
                );
                match rows(&database(), &sql, None) {
                    Ok(r) => Json(json!(r)).into_response(),
                    Err(e) if verbose => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("database error: {e}"),
                    )
                        .into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }),
        )
        .route(
            "/vuln/item",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                let sql = format!("SELECT name FROM items WHERE id = {}", q(&p, "id"));
                match rows(&database(), &sql, None) {
                    Ok(r) => Json(json!(r)).into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }),
        )
        .route(
            "/safe/search",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                let sql = "SELECT name FROM items WHERE owner = 'alice' AND name = ?1";
                match rows(&database(), sql, Some(&q(&p, "q"))) {
                    Ok(r) => Json(json!(r)).into_response(),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
                }
            }),
        )
        .route(
            "/safe/item",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                let sql = "SELECT name FROM items WHERE id = ?1";
                match rows(&database(), sql, Some(&q(&p, "id"))) {
                    Ok(r) => Json(json!(r)).into_response(),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
                }
            }),
        )
}

fn sql_api(prefix: &str) -> crate::api::Api {
    api(vec![
        with(
            op(Method::GET, &format!("/{prefix}/search")),
            vec![query("q")],
        ),
        with(
            op(Method::GET, &format!("/{prefix}/item")),
            vec![super::test_api::param(
                ParamIn::Query,
                "id",
                json!({"type": "integer", "example": 1}),
            )],
        ),
    ])
}

#[tokio::test]
async fn sql_injection_is_found_by_boolean_pairs_and_not_on_bound_parameters() {
    let url = serve(sql_app(false)).await;
    let cx = context(&url, Some(sql_api("vuln")), &[]);
    let outcome = sql(&cx).await;
    let f = found(&outcome, CheckId::SqlInjection);
    assert_eq!(f.len(), 2, "{outcome:?}");
    assert!(f.iter().any(|f| f.operation == "GET /vuln/search"), "{f:?}");
    assert!(f.iter().any(|f| f.operation == "GET /vuln/item"), "{f:?}");
    assert!(f[0].title.contains("boolean"), "{f:?}");
    // The generic 500 on a lone quote is no proof: the finding came from the pairs.
    assert!(
        f.iter()
            .all(|f| f.evidence.response.contains("[boolean pair]"))
    );
    assert!(cx.probe.sent() < 100, "{}", cx.probe.sent());

    let cx = context(&url, Some(sql_api("safe")), &[]);
    let outcome = sql(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
}

#[tokio::test]
async fn sql_injection_is_found_by_a_database_error_on_a_quote() {
    let url = serve(sql_app(true)).await;
    let api = api(vec![with(
        op(Method::GET, "/vuln/search"),
        vec![query("q")],
    )]);
    let cx = context(&url, Some(api), &[]);
    let outcome = sql(&cx).await;
    let f = found(&outcome, CheckId::SqlInjection);
    assert_eq!(f.len(), 1, "{outcome:?}");
    assert!(f[0].title.contains("quote"), "{f:?}");
    assert!(
        f[0].evidence.response.contains("unrecognized token"),
        "{f:?}"
    );
}

#[test]
fn sql_error_signatures() {
    assert!(sql_error("sqlite3.OperationalError: near \"x\": syntax error").is_some());
    assert!(sql_error("ERROR: syntax error at or near \"'\"").is_some());
    assert!(sql_error("ORA-00933: SQL command not properly ended").is_some());
    assert!(
        sql_error("near \"abc\": syntax error")
            .is_some_and(|(s, _)| s == "near \"abc\": syntax error")
    );
    assert!(sql_error("an ORA-ange fruit, selected near \"here\"").is_none());
}

// --- NoSQL: a Mongo-like filter over a list.

fn matches(filter: &Value, name: &str) -> Option<bool> {
    Some(match filter {
        Value::String(s) => s == name,
        Value::Object(o) => {
            let (op, v) = o.iter().next()?;
            match (op.as_str(), v) {
                ("$ne", Value::Null) => true,
                ("$ne", Value::String(s)) => s != name,
                ("$eq", Value::String(s)) => s == name,
                ("$gt", Value::String(s)) => name > s.as_str(),
                ("$regex", Value::String(s)) => s == ".*" || name.contains(s.as_str()),
                _ => return None,
            }
        }
        _ => return None,
    })
}

fn nosql_app() -> Router {
    let users = ["alice", "bob"];
    Router::new()
        .route(
            "/vuln/users/search",
            post(move |Json(b): Json<Value>| async move {
                let filter = b.get("username").cloned().unwrap_or(Value::Null);
                let mut out = Vec::new();
                for u in users {
                    match matches(&filter, u) {
                        Some(true) => {
                            out.push(json!({"username": u, "email": format!("{u}@corp.example")}))
                        }
                        Some(false) => {}
                        None => return StatusCode::BAD_REQUEST.into_response(),
                    }
                }
                Json(json!(out)).into_response()
            }),
        )
        .route(
            "/safe/users/search",
            post(move |Json(b): Json<Value>| async move {
                let Some(name) = b.get("username").and_then(Value::as_str) else {
                    return (StatusCode::UNPROCESSABLE_ENTITY, "username: a string")
                        .into_response();
                };
                let out: Vec<Value> = users
                    .iter()
                    .filter(|u| **u == name)
                    .map(|u| json!({"username": u}))
                    .collect();
                Json(json!(out)).into_response()
            }),
        )
}

fn nosql_api(prefix: &str) -> crate::api::Api {
    let mut o = op(Method::POST, &format!("/{prefix}/users/search"));
    o.body = Some(body(
        BodyKind::Json,
        json!({"type": "object", "properties": {"username": {"type": "string"}}}),
    ));
    api(vec![o])
}

#[tokio::test]
async fn nosql_injection_is_found_by_operator_objects() {
    let url = serve(nosql_app()).await;
    let cx = context(&url, Some(nosql_api("vuln")), &[]);
    let outcome = nosql(&cx).await;
    let f = found(&outcome, CheckId::NosqlInjection);
    assert_eq!(f.len(), 1, "{outcome:?}");
    assert_eq!(f[0].operation, "POST /vuln/users/search");
    assert!(f[0].title.contains("username"), "{f:?}");

    let cx = context(&url, Some(nosql_api("safe")), &[]);
    let outcome = nosql(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
}

// --- SSTI: a toy engine that evaluates `{{a*b}}`.

fn render(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        let expr = &rest[start + 2..start + end];
        let value = expr
            .split_once('*')
            .and_then(|(a, b)| Some(a.trim().parse::<u64>().ok()? * b.trim().parse::<u64>().ok()?))
            .map_or_else(String::new, |v| v.to_string());
        out.push_str(&value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

fn ssti_app() -> Router {
    Router::new()
        .route(
            "/vuln/greet",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                render(&format!("Hello {}!", q(&p, "name")))
            }),
        )
        .route(
            "/safe/greet",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                // The name is data, not template: it comes back as sent.
                format!("{} ({})", render("Hello {{ 6*7 }}"), q(&p, "name"))
            }),
        )
}

#[tokio::test]
async fn ssti_is_found_by_an_arithmetic_canary() {
    let url = serve(ssti_app()).await;
    let cx = context(
        &url,
        Some(api(vec![with(
            op(Method::GET, "/vuln/greet"),
            vec![query("name")],
        )])),
        &[],
    );
    let outcome = ssti(&cx).await;
    let f = found(&outcome, CheckId::Ssti);
    assert_eq!(f.len(), 1, "{outcome:?}");
    assert!(f[0].evidence.response.contains("[template]"), "{f:?}");

    let cx = context(
        &url,
        Some(api(vec![with(
            op(Method::GET, "/safe/greet"),
            vec![query("name")],
        )])),
        &[],
    );
    let outcome = ssti(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
}

// --- Path traversal: files read under a base directory, with or without a check.

fn read_under(name: &str, checked: bool) -> axum::response::Response {
    let base = std::env::temp_dir();
    if checked && (name.contains("..") || name.starts_with('/') || name.contains('\\')) {
        return (StatusCode::BAD_REQUEST, "bad file name").into_response();
    }
    match std::fs::read_to_string(base.join(name)) {
        Ok(text) => text.into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

fn files_app() -> Router {
    Router::new()
        .route(
            "/vuln/files/{name}",
            get(|Path(name): Path<String>| async move { read_under(&name, false) }),
        )
        .route(
            "/vuln/download",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                read_under(&q(&p, "file"), false)
            }),
        )
        .route(
            "/safe/files/{name}",
            get(|Path(name): Path<String>| async move { read_under(&name, true) }),
        )
        .route(
            "/safe/download",
            get(|Query(p): Query<HashMap<String, String>>| async move {
                read_under(&q(&p, "file"), true)
            }),
        )
}

fn files_api(prefix: &str) -> crate::api::Api {
    api(vec![
        with(
            op(Method::GET, &format!("/{prefix}/files/{{name}}")),
            vec![path("name")],
        ),
        with(
            op(Method::GET, &format!("/{prefix}/download")),
            vec![query("file")],
        ),
    ])
}

#[tokio::test]
async fn path_traversal_is_found_by_reading_etc_passwd() {
    if !std::fs::read_to_string("/etc/passwd").is_ok_and(|t| t.contains("root:x:0:0:")) {
        return;
    }
    let url = serve(files_app()).await;
    let cx = context(&url, Some(files_api("vuln")), &[]);
    let outcome = path_traversal(&cx).await;
    let f = found(&outcome, CheckId::PathTraversal);
    assert_eq!(f.len(), 2, "{outcome:?}");
    assert!(f.iter().all(|f| f.title.contains("/etc/passwd")), "{f:?}");

    let cx = context(&url, Some(files_api("safe")), &[]);
    let outcome = path_traversal(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
}

#[tokio::test]
async fn checks_without_a_document_are_skipped() {
    let url = serve(Router::new()).await;
    let cx = context(&url, None, &[]);
    for outcome in [
        sql(&cx).await,
        nosql(&cx).await,
        ssti(&cx).await,
        path_traversal(&cx).await,
    ] {
        assert!(matches!(outcome, Outcome::Skipped(_)), "{outcome:?}");
    }
}

fn login_app(vulnerable: bool) -> Router {
    Router::new().route(
        "/token",
        post(
            move |axum::Form(f): axum::Form<HashMap<String, String>>| async move {
                let db = database();
                let (user, pass) = (q(&f, "username"), q(&f, "password"));
                let found = if vulnerable {
                    rows(
                        &db,
                        &format!(
                            "SELECT owner FROM items WHERE owner = '{user}' AND name = '{pass}'"
                        ),
                        None,
                    )
                } else {
                    let mut stmt = db
                        .prepare("SELECT owner FROM items WHERE owner = ?1 AND name = ?2")
                        .expect("prepare");
                    stmt.query_map([user, pass], |r| r.get::<_, String>(0))
                        .expect("query")
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| e.to_string())
                };
                match found {
                    Ok(r) if !r.is_empty() => {
                        Json(json!({"access_token": "opaque-token-value", "token_type": "bearer"}))
                            .into_response()
                    }
                    Ok(_) => (StatusCode::UNAUTHORIZED, "bad credentials").into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            },
        ),
    )
}

#[tokio::test]
async fn sql_injection_in_a_login_form_is_found() {
    let mut token = op(Method::POST, "/token");
    token.body = Some(body(
        BodyKind::Form,
        json!({"type": "object", "required": ["username", "password"], "properties": {
            "username": {"type": "string"}, "password": {"type": "string"}}}),
    ));
    let the_api = api(vec![token]);
    let url = serve(login_app(true)).await;
    let cx = context(&url, Some(the_api.clone()), &[]);
    let outcome = sql(&cx).await;
    let f = found(&outcome, CheckId::SqlInjection);
    assert_eq!(f.len(), 1, "{outcome:?}");
    assert_eq!(f[0].operation, "POST /token");
    assert!(
        !f[0].evidence.response.contains("opaque-token-value"),
        "{f:?}"
    );

    let url = serve(login_app(false)).await;
    let cx = context(&url, Some(the_api), &[]);
    let outcome = sql(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
}
