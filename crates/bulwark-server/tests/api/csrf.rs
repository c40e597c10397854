//! The CSRF cookie: only values this server issued are honoured.

use reqwest::{Response, header};
use serde_json::Value;

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app};
use crate::test_both;

/// The value of the `name` cookie a response sets.
fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, value) = pair.split_once('=')?;
            (k.trim() == name).then(|| value.trim().to_owned())
        })
}

async fn csrf_token_with_cookie(app: &TestApp, cookie: &str) -> (Option<String>, String) {
    let response = app
        .client
        .get(app.url("/csrftoken/"))
        .header(header::COOKIE, format!("csrftoken={cookie}"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let set = set_cookie(&response, "csrftoken");
    let body: Value = response.json().await.expect("json");
    (set, body["csrf_token"].as_str().expect("token").to_owned())
}

async fn login_with(app: &TestApp, cookie: &str, token: &str) -> Response {
    app.client
        .post(app.url("/login"))
        .header(header::COOKIE, format!("csrftoken={cookie}"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", token),
        ])
        .send()
        .await
        .expect("request")
}

/// Found in review: `GET /csrftoken/` adopted any 43-character `csrftoken` cookie the client
/// sent and minted tokens for it: a cookie tossed from a sibling subdomain fixed the pair.
async fn a_client_chosen_csrf_cookie_is_replaced_and_never_honoured(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;
    let planted = bulwark::secret::random_token(32);

    // Act
    let (fresh, token) = csrf_token_with_cookie(&app, &planted).await;

    // Assert: a fresh cookie, and the token works with it only.
    let fresh = fresh.expect("the planted cookie is replaced");
    assert_ne!(fresh, planted);
    assert_eq!(login_with(&app, &planted, &token).await.status(), 403);
    assert_eq!(login_with(&app, &fresh, &token).await.status(), 200);
}
test_both!(a_client_chosen_csrf_cookie_is_replaced_and_never_honoured);

async fn a_cookie_this_server_issued_is_kept_across_tabs(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;
    let (first, _) = csrf_token_with_cookie(&app, "none").await;
    let issued = first.expect("a fresh cookie");

    // Act: a second tab asks for a token with the cookie it has.
    let (again, token) = csrf_token_with_cookie(&app, &issued).await;

    // Assert
    assert!(again.is_none(), "an issued cookie is kept");
    assert_eq!(login_with(&app, &issued, &token).await.status(), 200);
}
test_both!(a_cookie_this_server_issued_is_kept_across_tabs);
