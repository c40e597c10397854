use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use http::Method;
use serde_json::json;

use super::*;
use crate::{
    api::BodyKind,
    checks::login::tests::{api, op},
    config::UserCredential,
    testing::{context, serve},
};

/// Which state changes check a CSRF token when authenticated by the cookie.
#[derive(Clone, Copy)]
struct Protect {
    create: bool,
    delete: bool,
    /// The create needs no credentials at all.
    open: bool,
}

#[derive(Clone)]
struct App {
    protect: Protect,
    items: Arc<Mutex<BTreeMap<u64, String>>>,
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// The caller and whether only the cookie says so.
fn caller(headers: &HeaderMap) -> Option<(String, bool)> {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer tok-alice") {
        return Some(("alice".into(), false));
    }
    (cookie(headers, "session").as_deref() == Some("sid-alice")).then(|| ("alice".into(), true))
}

fn csrf_ok(headers: &HeaderMap) -> bool {
    headers.get("x-csrf-token").is_some_and(|t| t == "tok-csrf")
        && headers
            .get("origin")
            .is_none_or(|o| !o.as_bytes().ends_with(b"evil.example"))
}

async fn login_page() -> Response {
    (
        [("set-cookie", "csrftoken=c1; HttpOnly; Path=/")],
        Html(r#"<form method="post"><input type="hidden" name="csrf_token" value="tok-csrf"></form>"#),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    csrf_token: Option<String>,
}

async fn login(headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    if cookie(&headers, "csrftoken").as_deref() != Some("c1")
        || f.csrf_token.as_deref() != Some("tok-csrf")
    {
        return StatusCode::FORBIDDEN.into_response();
    }
    if f.username != "alice" || f.password != "s3cret-pass" {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut r = Json(json!({"detail": "OK"})).into_response();
    r.headers_mut().append(
        "set-cookie",
        "session=sid-alice; HttpOnly; SameSite=Lax; Path=/"
            .parse()
            .expect("header"),
    );
    r.headers_mut().append(
        "set-cookie",
        "csrftoken=; Max-Age=0; Path=/".parse().expect("header"),
    );
    r
}

async fn create(State(app): State<App>, headers: HeaderMap, Json(_): Json<Value>) -> Response {
    let owner = match caller(&headers) {
        Some((who, by_cookie)) => {
            if by_cookie && app.protect.create && !csrf_ok(&headers) {
                return StatusCode::FORBIDDEN.into_response();
            }
            who
        }
        None if app.protect.open => "anyone".into(),
        None => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let mut items = app.items.lock().expect("lock");
    let id = items.keys().last().copied().unwrap_or(0) + 1;
    items.insert(id, owner);
    (StatusCode::CREATED, Json(json!({"id": id, "name": "x"}))).into_response()
}

async fn read(State(app): State<App>, headers: HeaderMap, Path(id): Path<u64>) -> StatusCode {
    if caller(&headers).is_none() {
        return StatusCode::UNAUTHORIZED;
    }
    if app.items.lock().expect("lock").contains_key(&id) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn remove(State(app): State<App>, headers: HeaderMap, Path(id): Path<u64>) -> StatusCode {
    let Some((_, by_cookie)) = caller(&headers) else {
        return StatusCode::UNAUTHORIZED;
    };
    if by_cookie && app.protect.delete && !csrf_ok(&headers) {
        return StatusCode::FORBIDDEN;
    }
    match app.items.lock().expect("lock").remove(&id) {
        Some(_) => StatusCode::NO_CONTENT,
        None => StatusCode::NOT_FOUND,
    }
}

fn document() -> Api {
    let creds = json!({"type": "object", "required": ["username", "password"], "properties": {
        "username": {"type": "string"}, "password": {"type": "string"},
        "csrf_token": {"type": "string"}}});
    let item = json!({"type": "object", "required": ["name", "price"], "properties": {
        "name": {"type": "string"}, "price": {"type": "number"}}});
    api(vec![
        op(
            Method::POST,
            "/token",
            Some((BodyKind::Form, creds.clone())),
            &["200"],
        ),
        op(Method::GET, "/login", None, &["200"]),
        op(
            Method::POST,
            "/login",
            Some((BodyKind::Form, creds)),
            &["200", "401", "403"],
        ),
        op(
            Method::POST,
            "/items/",
            Some((BodyKind::Json, item)),
            &["201"],
        ),
        op(Method::GET, "/items/{item_id}", None, &["200", "404"]),
        op(Method::DELETE, "/items/{item_id}", None, &["204", "404"]),
    ])
}

async fn run(protect: Protect) -> (Outcome, App, crate::context::Context) {
    let state = App {
        protect,
        items: Arc::new(Mutex::new(BTreeMap::new())),
    };
    let app = Router::new()
        .route("/login", get(login_page).post(login))
        .route("/items/", post(create))
        .route("/items/{item_id}", get(read).delete(remove))
        .with_state(state.clone());
    let url = serve(app).await;
    let mut cx = context(&url, Some(document()), &["tok-alice"]);
    cx.sessions[0].username = Some("alice".into());
    cx.users = vec![UserCredential {
        username: "alice".into(),
        password: Some("s3cret-pass".into()),
    }];
    cx.secrets.add("s3cret-pass");
    let outcome = csrf(&cx).await;
    (outcome, state, cx)
}

const SAFE: Protect = Protect {
    create: true,
    delete: true,
    open: false,
};

#[tokio::test]
async fn a_create_with_the_cookie_alone_is_a_finding_and_the_object_is_removed() {
    let (outcome, state, cx) = run(Protect {
        create: false,
        ..SAFE
    })
    .await;
    let Outcome::Found(found) = outcome else {
        panic!("expected a finding: {outcome:?}");
    };
    assert_eq!(found[0].id, CheckId::Csrf);
    assert_eq!(found[0].operation, "POST /items/");
    assert!(
        found[0].title.contains("SameSite=Lax"),
        "{}",
        found[0].title
    );
    let shown = format!("{:?}", found[0].evidence);
    assert!(
        shown.contains("Origin: https://bwk-evil.example"),
        "{shown}"
    );
    assert!(!shown.contains("sid-alice"), "{shown}");
    assert!(!shown.contains("Authorization"), "{shown}");
    assert_eq!(cx.clean_up().await, 0);
    assert!(state.items.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_delete_with_the_cookie_alone_is_a_finding() {
    let (outcome, state, cx) = run(Protect {
        delete: false,
        ..SAFE
    })
    .await;
    let Outcome::Found(found) = outcome else {
        panic!("expected a finding: {outcome:?}");
    };
    assert_eq!(found[0].operation, "DELETE /items/{item_id}");
    cx.clean_up().await;
    assert!(state.items.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn csrf_tokens_and_origin_checks_pass() {
    let (outcome, state, cx) = run(SAFE).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
    cx.clean_up().await;
    assert!(state.items.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn an_operation_open_to_anyone_is_not_csrf() {
    let (outcome, state, cx) = run(Protect {
        create: false,
        open: true,
        ..SAFE
    })
    .await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
    cx.clean_up().await;
    assert!(state.items.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn no_cookie_session_is_skipped() {
    let url = serve(Router::new()).await;
    let mut doc = document();
    doc.operations.retain(|o| o.path != "/login");
    let cx = context(&url, Some(doc), &["tok-alice"]);
    let outcome = csrf(&cx).await;
    assert!(matches!(outcome, Outcome::Skipped(_)), "{outcome:?}");
    assert_eq!(cx.probe.sent(), 0);
}

#[test]
fn cookies_and_hidden_fields_are_read() {
    assert_eq!(
        parse_set_cookie("session=abc; HttpOnly; SameSite=Strict; Path=/"),
        Some(("session".into(), "abc".into(), false, Some("Strict".into())))
    );
    assert!(parse_set_cookie("csrftoken=; Max-Age=0").is_some_and(|c| c.2));
    assert!(parse_set_cookie("a=b; expires=Thu, 01 Jan 1970 00:00:00 GMT").is_some_and(|c| c.2));
    assert_eq!(
        hidden_value(
            "<input type='text' name='x'><input value='v1&amp;2' name='csrf_token' type='hidden'>",
            "csrf_token"
        ),
        Some("v1&2".into())
    );
    assert_eq!(
        hidden_value("<input name=\"other\" value=\"x\">", "csrf_token"),
        None
    );
}
