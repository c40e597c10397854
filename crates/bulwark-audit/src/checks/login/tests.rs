use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Form, Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, post},
};
use http::Method;
use serde_json::{Value, json};

use super::*;
pub(crate) use crate::testing::{api, op};
use crate::{
    api::BodyKind,
    config::UserCredential,
    testing::{context, serve},
};

fn alice() -> UserCredential {
    UserCredential {
        username: "alice".into(),
        password: Some("right-horse-battery".into()),
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

fn right(f: &LoginForm) -> bool {
    f.username == "alice" && f.password == "right-horse-battery"
}

fn refusal(detail: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"detail": detail}))).into_response()
}

async fn unlimited_login(Form(f): Form<LoginForm>) -> Response {
    if right(&f) {
        Json(json!({"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"})).into_response()
    } else {
        refusal("Incorrect username or password")
    }
}

async fn limited_login(
    State(fails): State<Arc<AtomicUsize>>,
    Form(f): Form<LoginForm>,
) -> Response {
    if fails.load(Ordering::SeqCst) >= 5 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "60")],
            Json(json!({"detail": "Too Many Requests"})),
        )
            .into_response();
    }
    if right(&f) {
        return Json(json!({"access_token": "t"})).into_response();
    }
    fails.fetch_add(1, Ordering::SeqCst);
    refusal("Incorrect username or password")
}

async fn login_cx(app: Router) -> crate::context::Context {
    let url = serve(app).await;
    let mut cx = context(&url, None, &[]);
    cx.users = vec![alice()];
    cx.secrets.add("right-horse-battery");
    cx
}

#[tokio::test]
async fn an_unlimited_login_is_a_finding() {
    let cx = login_cx(Router::new().route("/token", post(unlimited_login))).await;
    let Outcome::Found(found) = no_rate_limit(&cx).await else {
        panic!("expected a finding");
    };
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, CheckId::LoginNoRateLimit);
    assert_eq!(found[0].operation, "POST /token");
    assert!(
        found[0].title.contains("30 wrong passwords"),
        "{}",
        found[0].title
    );
    assert!(
        found[0].title.contains("still logged in"),
        "{}",
        found[0].title
    );
    let shown = format!("{:?}", found[0].evidence);
    assert!(!shown.contains("alice"), "{shown}");
    assert!(!shown.contains("right-horse-battery"), "{shown}");
    assert_eq!(cx.probe.sent(), 31);
}

#[tokio::test]
async fn without_an_account_the_flood_uses_an_unknown_username() {
    let url = serve(Router::new().route("/token", post(unlimited_login))).await;
    let cx = context(&url, None, &[]);
    let Outcome::Found(found) = no_rate_limit(&cx).await else {
        panic!("expected a finding");
    };
    assert!(
        found[0].title.contains("unknown username"),
        "{}",
        found[0].title
    );
    assert_eq!(cx.probe.sent(), 30);
}

#[tokio::test]
async fn a_limited_login_passes_and_stops_early() {
    let app = Router::new()
        .route("/token", post(limited_login))
        .with_state(Arc::new(AtomicUsize::new(0)));
    let cx = login_cx(app).await;
    let outcome = no_rate_limit(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
    assert_eq!(cx.probe.sent(), 6);
}

#[tokio::test]
async fn a_lock_out_after_the_flood_passes() {
    // Every failure is a plain 401, but the account is locked afterwards.
    async fn locking(State(fails): State<Arc<AtomicUsize>>, Form(f): Form<LoginForm>) -> Response {
        if right(&f) && fails.load(Ordering::SeqCst) < 10 {
            return Json(json!({"access_token": "t"})).into_response();
        }
        fails.fetch_add(1, Ordering::SeqCst);
        refusal("Incorrect username or password")
    }
    let app = Router::new()
        .route("/token", post(locking))
        .with_state(Arc::new(AtomicUsize::new(0)));
    let cx = login_cx(app).await;
    let outcome = no_rate_limit(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
}

#[tokio::test]
async fn no_login_endpoint_is_skipped() {
    let cx = login_cx(Router::new()).await;
    let outcome = no_rate_limit(&cx).await;
    assert!(matches!(outcome, Outcome::Skipped(_)), "{outcome:?}");
    assert_eq!(cx.probe.sent(), 1);
}

async fn enumeration(app: Router) -> Outcome {
    let cx = login_cx(app).await;
    user_enumeration(&cx).await
}

#[tokio::test]
async fn a_different_body_for_unknown_users_is_a_finding() {
    async fn h(Form(f): Form<LoginForm>) -> Response {
        if f.username == "alice" {
            refusal("Incorrect password")
        } else {
            refusal("No such user")
        }
    }
    let Outcome::Found(found) = enumeration(Router::new().route("/token", post(h))).await else {
        panic!("expected a finding");
    };
    assert_eq!(found[0].id, CheckId::UserEnumeration);
    assert!(found[0].title.contains("body"), "{}", found[0].title);
    assert!(!found[0].evidence.request.contains("alice"));
}

#[tokio::test]
async fn a_different_status_for_unknown_users_is_a_finding() {
    async fn h(Form(f): Form<LoginForm>) -> Response {
        let status = if f.username == "alice" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::NOT_FOUND
        };
        (
            status,
            Json(json!({"detail": "Incorrect username or password"})),
        )
            .into_response()
    }
    let Outcome::Found(found) = enumeration(Router::new().route("/token", post(h))).await else {
        panic!("expected a finding");
    };
    assert!(found[0].title.contains("401"), "{}", found[0].title);
    assert!(found[0].title.contains("404"), "{}", found[0].title);
}

#[tokio::test]
async fn a_timing_gap_is_a_finding() {
    async fn h(Form(f): Form<LoginForm>) -> Response {
        if f.username == "alice" {
            tokio::time::sleep(Duration::from_millis(90)).await;
        }
        refusal("Incorrect username or password")
    }
    let Outcome::Found(found) = enumeration(Router::new().route("/token", post(h))).await else {
        panic!("expected a finding");
    };
    assert!(found[0].title.contains(" ms "), "{}", found[0].title);
}

#[tokio::test]
async fn the_same_answer_for_both_passes_even_when_it_echoes_the_name() {
    async fn h(Form(f): Form<LoginForm>) -> Response {
        // Same work for both (a dummy hash), the name echoed back and a changing number.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        refusal(&format!(
            "Incorrect username or password for {} ({t})",
            f.username
        ))
    }
    let outcome = enumeration(Router::new().route("/token", post(h))).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
}

#[tokio::test]
async fn enumeration_stops_at_a_429_and_does_not_count_it() {
    let app = Router::new()
        .route("/token", post(limited_login))
        .with_state(Arc::new(AtomicUsize::new(0)));
    let cx = login_cx(app).await;
    let outcome = user_enumeration(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
    assert!(cx.probe.sent() <= 7, "{}", cx.probe.sent());
}

#[tokio::test]
async fn enumeration_needs_a_username() {
    let url = serve(Router::new()).await;
    let cx = context(&url, None, &[]);
    assert!(matches!(user_enumeration(&cx).await, Outcome::Skipped(_)));
    assert_eq!(cx.probe.sent(), 0);
}

#[test]
fn timing_needs_every_sample_apart() {
    let ms = Duration::from_millis;
    let slow = vec![ms(100), ms(110), ms(105), ms(120), ms(101), ms(99)];
    let fast = vec![ms(2), ms(3), ms(2), ms(4), ms(2), ms(3)];
    assert!(timing_gap(&slow, &fast).is_some_and(|(k, _, _)| k));
    assert!(timing_gap(&fast, &slow).is_some_and(|(k, _, _)| !k));
    // One outlier on the fast side: no verdict.
    let mut noisy = fast.clone();
    noisy[3] = ms(150);
    assert!(timing_gap(&slow, &noisy).is_none());
    // Apart, but by less than the margin.
    let close = vec![ms(20), ms(21), ms(22), ms(20), ms(21), ms(20)];
    assert!(timing_gap(&close, &fast).is_none());
    // Too few samples.
    assert!(timing_gap(&slow[..3], &fast[..3]).is_none());
}

#[derive(Clone, Default)]
struct Accounts {
    created: Arc<AtomicUsize>,
    deleted: Arc<AtomicUsize>,
    strict: bool,
}

async fn register(State(s): State<Accounts>, Json(body): Json<Value>) -> Response {
    let password = body["password"].as_str().unwrap_or("");
    if s.strict && password.len() < 12 {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"detail": "password too weak"})),
        )
            .into_response();
    }
    let id = s.created.fetch_add(1, Ordering::SeqCst) + 1;
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "username": body["username"]})),
    )
        .into_response()
}

async fn remove(State(s): State<Accounts>, Path(_id): Path<u64>) -> StatusCode {
    s.deleted.fetch_add(1, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

fn signup_api(with_delete: bool) -> Api {
    let body = json!({
        "type": "object",
        "required": ["username", "password"],
        "properties": {
            "username": {"type": "string", "minLength": 3},
            "password": {"type": "string", "format": "password"}
        }
    });
    let mut ops = vec![
        op(
            Method::POST,
            "/token",
            Some((BodyKind::Form, body.clone())),
            &["200"],
        ),
        op(
            Method::POST,
            "/register",
            Some((BodyKind::Json, body)),
            &["201", "422"],
        ),
    ];
    if with_delete {
        ops.push(op(Method::DELETE, "/users/{user_id}", None, &["204"]));
    }
    api(ops)
}

async fn signup_cx(state: Accounts, with_delete: bool) -> crate::context::Context {
    let app = Router::new()
        .route("/register", post(register))
        .route("/users/{user_id}", delete(remove))
        .with_state(state);
    let url = serve(app).await;
    context(&url, Some(signup_api(with_delete)), &[])
}

#[tokio::test]
async fn a_one_character_password_at_sign_up_is_a_finding_and_the_account_is_removed() {
    let state = Accounts::default();
    let cx = signup_cx(state.clone(), true).await;
    let Outcome::Found(found) = weak_password_policy(&cx).await else {
        panic!("expected a finding");
    };
    assert_eq!(found[0].id, CheckId::WeakPasswordPolicy);
    assert_eq!(found[0].operation, "POST /register");
    assert!(
        found[0].title.contains("one-character"),
        "{}",
        found[0].title
    );
    assert!(
        found[0].evidence.request.contains("\"password\":\"***\""),
        "{}",
        found[0].evidence.request
    );
    assert_eq!(state.created.load(Ordering::SeqCst), 1);
    assert_eq!(cx.clean_up().await, 0);
    assert_eq!(state.deleted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_account_that_cannot_be_removed_is_named_in_the_finding() {
    let cx = signup_cx(Accounts::default(), false).await;
    let Outcome::Found(found) = weak_password_policy(&cx).await else {
        panic!("expected a finding");
    };
    assert!(
        found[0].title.contains("remove it by hand"),
        "{}",
        found[0].title
    );
}

#[tokio::test]
async fn a_strict_sign_up_passes() {
    let state = Accounts {
        strict: true,
        ..Accounts::default()
    };
    let cx = signup_cx(state.clone(), true).await;
    let outcome = weak_password_policy(&cx).await;
    assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
    assert_eq!(state.created.load(Ordering::SeqCst), 0);
    assert_eq!(cx.probe.sent(), 3);
}

#[tokio::test]
async fn no_documented_sign_up_is_skipped() {
    let url = serve(Router::new()).await;
    let mut doc = signup_api(false);
    doc.operations.retain(|o| o.path == "/token");
    let cx = context(&url, Some(doc), &[]);
    assert!(matches!(
        weak_password_policy(&cx).await,
        Outcome::Skipped(_)
    ));
}

#[test]
fn sign_ups_are_told_from_logins_and_password_changes() {
    let creds = json!({"type": "object", "properties": {
        "username": {"type": "string"}, "password": {"type": "string"}}});
    let change = json!({"type": "object", "properties": {
        "email": {"type": "string"}, "current_password": {"type": "string"},
        "new_password": {"type": "string"}}});
    let doc = api(vec![
        op(
            Method::POST,
            "/token",
            Some((BodyKind::Form, creds.clone())),
            &[],
        ),
        op(
            Method::POST,
            "/login",
            Some((BodyKind::Form, creds.clone())),
            &[],
        ),
        op(
            Method::POST,
            "/admin/users",
            Some((BodyKind::Json, creds.clone())),
            &[],
        ),
        op(
            Method::POST,
            "/users/signup",
            Some((BodyKind::Json, creds.clone())),
            &[],
        ),
        op(
            Method::POST,
            "/users/me/password",
            Some((BodyKind::Json, change)),
            &[],
        ),
        op(Method::POST, "/items/", Some((BodyKind::Json, creds)), &[]),
    ]);
    let found: Vec<&str> = signup_operations(&doc, "/token")
        .iter()
        .map(|o| o.path.as_str())
        .collect();
    assert_eq!(found, ["/users/signup", "/admin/users"]);
}
