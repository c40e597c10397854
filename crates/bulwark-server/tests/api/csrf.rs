//! The CSRF cookie: only values this server issued are honoured.

use reqwest::{Response, header};
use serde_json::Value;

use crate::helpers::{Backend, PASSWORD, TestApp, set_cookie, spawn_app, spawn_app_with};
use crate::test_both;

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

/// alice's browser login with this CSRF cookie and token.
async fn login_with(app: &TestApp, cookie: &str, token: &str) -> Response {
    let page = (cookie.to_owned(), token.to_owned());
    app.http()
        .browser_login(None, &page, "alice", PASSWORD)
        .await
}

/// Regression: `GET /csrftoken/` adopted any 43-character `csrftoken` cookie the client
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

/// Regression: every CSRF 403 and login 429 awaited its own audit INSERT (an fsync on
/// SQLite): an anonymous client bought one durable write per request. Refusals are counted in
/// the metrics one by one, and written at most once per client and window, as one row that
/// carries the count; no refused request writes anything.
async fn refusals_are_audited_once_per_client_and_window(backend: Backend) {
    use bulwark_server::db::AuditFilter;

    // Arrange
    let app = spawn_app_with(backend, |s| {
        s.rate_limits.login_per_ip = "2/minute".parse().unwrap();
        // 200 connections at once from one address.
        s.max_connections_per_ip = 1000;
    })
    .await;
    let audit_rows = |kind: &'static str| {
        let repo = app.state.repo.clone();
        async move {
            let filter = AuditFilter {
                kind: Some(kind.to_owned()),
                ..AuditFilter::default()
            };
            repo.list_audit(&filter, 100, 0).await.expect("audit").0
        }
    };

    // Act: 100 forged cookie-authenticated writes and 100 logins over the limit, at once.
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..200 {
        let request = if i % 2 == 0 {
            app.client
                .post(app.url("/items/"))
                .header(header::COOKIE, "session=anything")
                .json(&serde_json::json!({"name": "x", "price": 1.0}))
        } else {
            app.client
                .post(app.url("/token"))
                .form(&[("username", "nobody"), ("password", "wrong-password")])
        };
        requests.spawn(async move { request.send().await.expect("request").status() });
    }
    let mut statuses = std::collections::BTreeMap::new();
    while let Some(status) = requests.join_next().await {
        *statuses.entry(status.expect("task").as_u16()).or_insert(0) += 1;
    }

    // Assert: refused, and nothing written by the refused requests themselves.
    assert_eq!(statuses.get(&403), Some(&100), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&98), "{statuses:?}");
    assert!(audit_rows("csrf.rejected").await.is_empty());
    assert!(audit_rows("login.rate_limited").await.is_empty());
    // When the window's rows are written: one per kind for this client, with the count.
    bulwark_server::refusals::write(&app.state.refusals, app.state.repo.as_ref(), true).await;
    for (kind, more) in [("csrf.rejected", 99), ("login.rate_limited", 97)] {
        let rows = audit_rows(kind).await;
        assert_eq!(rows.len(), 1, "{kind}: {rows:?}");
        assert_eq!(rows[0].ip.as_deref(), Some("127.0.0.1"));
        let detail = rows[0].detail.as_deref().unwrap_or_default();
        assert!(
            detail.contains(&format!("and {more} more")),
            "{kind}: {detail}"
        );
    }
}
test_both!(refusals_are_audited_once_per_client_and_window);
