//! Self-service account rules over HTTP, other than the password reset (contract: "Accounts
//! (self-service)", "Mail", "Browser sessions and CSRF"): the address in user objects and its
//! checks, the password change, setting and verifying an address (the mail, the link's page and
//! its CSRF protection, the token's single use and lifetime), `require_verified_email`, deleting
//! a user, and the audit trail of these changes, which never carries a mailed token or a
//! password. Mails are read from the outbox (the default without `smtp_url`).

use std::{
    collections::HashSet,
    path::PathBuf,
    time::{Duration, Instant},
};

use reqwest::{Response, header};
use serde_json::{Value, json};

use crate::{
    helpers::{
        BAD_CREDENTIALS, Backend, INVALID_TOKEN, PASSWORD, TestApp, assert_unauthorized, detail,
        json_with_status, only_error, only_error_with_text, set_cookie, spawn_app, spawn_app_with,
    },
    mailbox::{self, Delivered},
    test_both,
};

use crate::rate_limits::TIMING;

const NEW_PASSWORD: &str = "quiet-Lantern-48-orbit";

/// The one answer to a bad, spent or expired mail token.
const INVALID_MAIL_TOKEN: &str = "Invalid or expired token";

/// The 401 of a refused refresh token.
const INVALID_REFRESH: &str = "Invalid refresh token";

/// The 403 of a refused CSRF check.
const CSRF_REFUSED: &str = "CSRF token missing or invalid";

/// A page that is not this server.
const FOREIGN_ORIGIN: &str = "https://evil.example";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The outbox as far as a test has read it: each new mail is the one file not seen before (the
/// file names sort by millisecond, which two quick mails may share).
struct Outbox {
    seen: HashSet<PathBuf>,
}

impl Outbox {
    fn new() -> Self {
        Self {
            seen: HashSet::new(),
        }
    }

    /// Waits (at most 10 s) for the one mail written since the last call.
    async fn next(&mut self, app: &TestApp) -> Delivered {
        let dir = mailbox::outbox(app);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let fresh: Vec<PathBuf> = mailbox::eml_files(&dir)
                .into_iter()
                .filter(|p| !self.seen.contains(p))
                .collect();
            if let Some(path) = fresh.first() {
                assert_eq!(fresh.len(), 1, "one mail expected, found {fresh:?}");
                self.seen.insert(path.clone());
                return mailbox::parse(&std::fs::read(path).expect("readable .eml"));
            }
            assert!(
                Instant::now() < deadline,
                "no new mail in {}",
                dir.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the mail worker to deliver anything queued, and asserts no new mail came.
    async fn assert_nothing_new(&self, app: &TestApp) {
        let _ = mailbox::settled_count(app).await;
        let fresh: Vec<PathBuf> = mailbox::eml_files(&mailbox::outbox(app))
            .into_iter()
            .filter(|p| !self.seen.contains(p))
            .collect();
        assert!(fresh.is_empty(), "unexpected mail: {fresh:?}");
    }
}

/// `POST /users/me/verify-email` with a bearer token.
async fn resend(app: &TestApp, token: &str) -> Response {
    app.post_json("/users/me/verify-email", Some(token), &json!({}))
        .await
}

/// `POST /users/me/email` with a bearer token.
async fn set_email(app: &TestApp, token: &str, email: &str) -> Response {
    app.post_json("/users/me/email", Some(token), &json!({"email": email}))
        .await
}

/// `POST /verify-email/confirm` with a JSON body.
async fn confirm(app: &TestApp, token: &str) -> Response {
    app.post_json("/verify-email/confirm", None, &json!({"token": token}))
        .await
}

/// `GET /users/me` that must succeed.
async fn me(app: &TestApp, token: &str) -> Value {
    json_with_status(app.get("/users/me", Some(token)).await, 200).await
}

/// `POST /users/me/password`.
async fn change_password(app: &TestApp, token: Option<&str>, current: &str, new: &str) -> Response {
    app.post_json(
        "/users/me/password",
        token,
        &json!({"current_password": current, "new_password": new}),
    )
    .await
}

/// `POST /token/refresh`.
async fn refresh(app: &TestApp, refresh_token: &str) -> Response {
    app.post_json(
        "/token/refresh",
        None,
        &json!({"refresh_token": refresh_token}),
    )
    .await
}

/// A full `POST /token` answer that must succeed.
async fn token_pair(app: &TestApp, username: &str, password: &str) -> Value {
    json_with_status(app.login(username, password).await, 200).await
}

/// The `session` cookie of a browser login that must succeed.
async fn session_cookie(app: &TestApp, username: &str, password: &str) -> String {
    let response = app.browser_login(username, password).await;
    assert_eq!(response.status(), 200, "browser login of {username}");
    set_cookie(&response, "session").expect("a session cookie")
}

/// `GET path` authenticated by the `session` cookie alone.
async fn get_with_session(app: &TestApp, path: &str, session: &str) -> Response {
    app.client
        .get(app.url(path))
        .header(header::COOKIE, format!("session={session}"))
        .send()
        .await
        .expect("request")
}

/// Polls until `request` answers 401 (at most 1 s after `since`, the contract's bound, plus a
/// little slack for the poll itself), then checks the 401's shape.
async fn assert_ends_within_a_second<F, Fut>(what: &str, since: Instant, request: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Response>,
{
    loop {
        let response = request().await;
        if response.status() == 401 {
            assert_unauthorized(response, INVALID_TOKEN).await;
            return;
        }
        assert!(
            since.elapsed() < Duration::from_millis(1200),
            "{what} still answers {} after {:?}",
            response.status(),
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A user `name` with `email` set through `POST /users/me/email` and verified through the mailed
/// link: `(id, access token)`.
async fn verified_user(
    app: &TestApp,
    outbox: &mut Outbox,
    name: &str,
    email: &str,
) -> (i64, String) {
    let id = app.create_user(name, PASSWORD, &[]).await;
    let token = app.access_token(name, PASSWORD).await;
    assert_eq!(set_email(app, &token, email).await.status(), 200);
    let link = outbox.next(app).await.token("/verify-email");
    let user = json_with_status(confirm(app, &link).await, 200).await;
    assert_eq!(user["email_verified"], true);
    (id, token)
}

/// The audit events of `kind` (admin token), newest first, and the body as text.
async fn audit_events(app: &TestApp, admin: &str, query: &str) -> (Vec<Value>, String) {
    let response = app.get(&format!("/admin/audit?{query}"), Some(admin)).await;
    assert_eq!(response.status(), 200, "GET /admin/audit?{query}");
    let text = response.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).expect("JSON");
    (body["events"].as_array().expect("events").clone(), text)
}

/// The value of the `name` attribute's `value` in an HTML form (`name="x" value="..."`).
fn field_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').expect("end of the value");
    html[start..end].to_owned()
}

/// `GET /verify-email?token=...`: the response's headers, the CSRF cookie it sets, and the page.
struct VerifyPage {
    headers: header::HeaderMap,
    csrf_cookie: String,
    html: String,
}

async fn verify_page(app: &TestApp, token: &str) -> VerifyPage {
    let response = app.get(&format!("/verify-email?token={token}"), None).await;
    assert_eq!(response.status(), 200, "GET /verify-email");
    let headers = response.headers().clone();
    let csrf_cookie = set_cookie(&response, "csrftoken").expect("a CSRF cookie");
    let html = response.text().await.expect("html");
    VerifyPage {
        headers,
        csrf_cookie,
        html,
    }
}

/// A form post to `/verify-email/confirm` as the page's form would send it, with the CSRF cookie
/// (when given) and extra headers.
async fn post_verify_form(
    app: &TestApp,
    cookies: Option<String>,
    fields: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> Response {
    let mut request = app
        .client
        .post(app.url("/verify-email/confirm"))
        .form(fields);
    if let Some(cookies) = cookies {
        request = request.header(header::COOKIE, cookies);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request")
}

/// A bad address of each kind the contract names: no `@`, two, and 255 characters.
fn bad_addresses() -> Vec<String> {
    vec![
        "ada.example.com".to_owned(),
        "ada@lovelace@example.com".to_owned(),
        // 255 characters, otherwise well formed.
        format!("{}m", longest_address()),
    ]
}

/// The longest address the contract accepts: 254 characters (a 64-character local part and
/// labels of at most 63).
fn longest_address() -> String {
    let address = format!(
        "{}@{}.{}.{}.co",
        "a".repeat(64),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(58)
    );
    assert_eq!(address.len(), 254);
    address
}

// ---------------------------------------------------------------------------------------------
// User objects
// ---------------------------------------------------------------------------------------------

async fn user_objects_carry_the_address_and_its_state_but_never_a_hash(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.allow_signup = true).await;
    let (_, admin) = app.user_with_token("root", &["admin"]).await;

    // Act
    let signed_up = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "alice", "password": PASSWORD, "email": "Alice@Example.com"}),
        )
        .await;
    let created = app
        .post_json(
            "/admin/users",
            Some(&admin),
            &json!({"username": "bob", "password": PASSWORD, "roles": [], "email": "bob@example.com"}),
        )
        .await;

    // Assert: the address as given, unverified, in every user object.
    let signed_up = json_with_status(signed_up, 201).await;
    assert_eq!(signed_up["email"], "Alice@Example.com");
    assert_eq!(signed_up["email_verified"], false);
    let created = json_with_status(created, 201).await;
    assert_eq!(created["email"], "bob@example.com");
    assert_eq!(created["email_verified"], false);
    let alice = app.access_token("alice", PASSWORD).await;
    let profile = me(&app, &alice).await;
    let mut keys: Vec<&str> = profile
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "disabled",
            "email",
            "email_verified",
            "id",
            "roles",
            "username"
        ]
    );
    assert_eq!(profile["email"], "Alice@Example.com");
    assert_eq!(profile["email_verified"], false);
    let root = me(&app, &admin).await;
    assert_eq!(root["email"], Value::Null, "a user without an address");
    assert_eq!(root["email_verified"], false);
    let response = app.get("/admin/users", Some(&admin)).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains("$argon2"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("hash"), "{text}");
    assert!(!text.contains("password"), "{text}");
    let users: Value = serde_json::from_str(&text).unwrap();
    let users = users.as_array().expect("a list");
    assert_eq!(users.len(), 3);
    for user in users {
        assert!(user.get("email").is_some(), "{user}");
        assert!(user["email_verified"].is_boolean(), "{user}");
    }
    let bob = users.iter().find(|u| u["username"] == "bob").unwrap();
    assert_eq!(bob["email"], "bob@example.com");
}
test_both!(user_objects_carry_the_address_and_its_state_but_never_a_hash);

async fn a_malformed_address_is_refused_with_422_at_body_email(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.allow_signup = true).await;
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let (carol, carol_token) = app.user_with_token("carol", &[]).await;

    for (i, bad) in bad_addresses().iter().enumerate() {
        // Act
        let signup = app
            .post_json(
                "/users/signup",
                None,
                &json!({"username": format!("alice{i}"), "password": PASSWORD, "email": bad}),
            )
            .await;
        let create = app
            .post_json(
                "/admin/users",
                Some(&admin),
                &json!({"username": format!("bob{i}"), "password": PASSWORD, "email": bad}),
            )
            .await;
        let patch = app
            .patch_json(
                &format!("/admin/users/{carol}"),
                Some(&admin),
                &json!({"email": bad}),
            )
            .await;
        let own = set_email(&app, &carol_token, bad).await;

        // Assert
        for (route, response) in [
            ("signup", signup),
            ("admin create", create),
            ("admin patch", patch),
            ("own address", own),
        ] {
            let error = only_error(response).await;
            assert_eq!(
                error["loc"],
                json!(["body", "email"]),
                "{route} {bad}: {error}"
            );
        }
    }
    // Nothing was created or changed.
    let users = json_with_status(app.get("/admin/users", Some(&admin)).await, 200).await;
    assert_eq!(users.as_array().unwrap().len(), 2, "{users}");
    assert_eq!(me(&app, &carol_token).await["email"], Value::Null);
}
test_both!(a_malformed_address_is_refused_with_422_at_body_email);

async fn an_address_of_254_characters_is_accepted(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let address = longest_address();

    // Act
    let response = set_email(&app, &token, &address).await;

    // Assert
    let user = json_with_status(response, 200).await;
    assert_eq!(user["email"], address.as_str());
}
test_both!(an_address_of_254_characters_is_accepted);

async fn an_address_another_user_has_in_another_case_is_a_conflict(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.allow_signup = true).await;
    let mut outbox = Outbox::new();
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    app.create_user_with_email("bob", PASSWORD, &[], Some("Bob@Example.com"))
        .await;
    let carol = app
        .create_user_with_email("carol", PASSWORD, &[], Some("carol@example.com"))
        .await;
    let carol_token = app.access_token("carol", PASSWORD).await;
    let taken = "bob@EXAMPLE.COM";

    // Act
    let signup = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "alice", "password": PASSWORD, "email": taken}),
        )
        .await;
    let create = app
        .post_json(
            "/admin/users",
            Some(&admin),
            &json!({"username": "dave", "password": PASSWORD, "email": taken}),
        )
        .await;
    let patch = app
        .patch_json(
            &format!("/admin/users/{carol}"),
            Some(&admin),
            &json!({"email": taken}),
        )
        .await;
    let own = set_email(&app, &carol_token, taken).await;

    // Assert: 409 everywhere, and nothing created, changed or mailed.
    for (route, response) in [
        ("signup", signup),
        ("admin create", create),
        ("admin patch", patch),
        ("own address", own),
    ] {
        let detail = detail(response, 409).await;
        assert!(detail.is_string(), "{route}: {detail}");
    }
    let users = json_with_status(app.get("/admin/users", Some(&admin)).await, 200).await;
    assert_eq!(users.as_array().unwrap().len(), 3, "{users}");
    assert_eq!(me(&app, &carol_token).await["email"], "carol@example.com");
    outbox.assert_nothing_new(&app).await;
    // One's own address in another letter case is no conflict.
    let recased = json_with_status(
        set_email(&app, &carol_token, "Carol@Example.com").await,
        200,
    )
    .await;
    assert_eq!(recased["email"], "Carol@Example.com");
    assert_eq!(outbox.next(&app).await.to, "Carol@Example.com");
}
test_both!(an_address_another_user_has_in_another_case_is_a_conflict);

async fn an_admin_patch_sets_the_address_and_resets_its_verification(backend: Backend) {
    // Arrange: alice's address verified.
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let (alice, token) = verified_user(&app, &mut outbox, "alice", "alice@example.com").await;

    // Act
    let response = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&admin),
            &json!({"email": "Alice.New@Example.com"}),
        )
        .await;

    // Assert
    let user = json_with_status(response, 200).await;
    assert_eq!(user["email"], "Alice.New@Example.com");
    assert_eq!(user["email_verified"], false);
    let profile = me(&app, &token).await;
    assert_eq!(profile["email"], "Alice.New@Example.com");
    assert_eq!(profile["email_verified"], false);
    let (events, _) = audit_events(
        &app,
        &admin,
        &format!("kind=user.email_changed&user_id={alice}"),
    )
    .await;
    assert_eq!(events.len(), 2, "by alice, then by the admin: {events:?}");
}
test_both!(an_admin_patch_sets_the_address_and_resets_its_verification);

async fn an_address_cannot_be_marked_verified_by_a_request_body(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.allow_signup = true).await;
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let (alice, token) = app.user_with_token("alice", &[]).await;

    // Act
    let own = app
        .post_json(
            "/users/me/email",
            Some(&token),
            &json!({"email": "alice@example.com", "email_verified": true}),
        )
        .await;
    let patch = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&admin),
            &json!({"email": "alice@example.com", "email_verified": true}),
        )
        .await;
    let signup = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "bob", "password": PASSWORD,
                    "email": "bob@example.com", "email_verified": true}),
        )
        .await;
    let create = app
        .post_json(
            "/admin/users",
            Some(&admin),
            &json!({"username": "carol", "password": PASSWORD,
                    "email": "carol@example.com", "email_verified": true}),
        )
        .await;

    // Assert: 422, nothing applied.
    for (route, response) in [
        ("own address", own),
        ("admin patch", patch),
        ("signup", signup),
        ("admin create", create),
    ] {
        assert_eq!(response.status(), 422, "{route}");
    }
    assert_eq!(me(&app, &token).await["email"], Value::Null);
    let users = json_with_status(app.get("/admin/users", Some(&admin)).await, 200).await;
    assert_eq!(users.as_array().unwrap().len(), 2, "{users}");
}
test_both!(an_address_cannot_be_marked_verified_by_a_request_body);

async fn nul_in_an_account_input_answers_422(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let email = set_email(&app, &token, "ada\u{0}@example.com").await;
    let confirm_json = confirm(&app, "abc\u{0}def").await;
    let confirm_form = post_verify_form(&app, None, &[("token", "abc\u{0}def")], &[]).await;
    let page = app.get("/verify-email?token=abc%00def", None).await;
    let password = change_password(&app, Some(&token), "x\u{0}", NEW_PASSWORD).await;

    // Assert
    for (input, response) in [
        ("address", email),
        ("JSON token", confirm_json),
        ("form token", confirm_form),
        ("link token", page),
        ("password", password),
    ] {
        assert_eq!(response.status(), 422, "{input}");
    }
    assert_eq!(me(&app, &token).await["email"], Value::Null);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
}
test_both!(nul_in_an_account_input_answers_422);

// ---------------------------------------------------------------------------------------------
// POST /users/me/password
// ---------------------------------------------------------------------------------------------

async fn a_password_change_answers_a_token_pair_and_revokes_every_earlier_credential(
    backend: Backend,
) {
    // Arrange: an access token, a refresh token and a browser session of alice.
    let _one_at_a_time = TIMING.lock().await;
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;
    let earlier = token_pair(&app, "alice", PASSWORD).await;
    let access = earlier["access_token"].as_str().unwrap().to_owned();
    let refresh_token = earlier["refresh_token"].as_str().unwrap().to_owned();
    let session = session_cookie(&app, "alice", PASSWORD).await;
    assert_eq!(
        get_with_session(&app, "/protected", &session)
            .await
            .status(),
        200
    );

    // Act
    let response = change_password(&app, Some(&access), PASSWORD, NEW_PASSWORD).await;
    let changed = Instant::now();

    // Assert: a token pair shaped like /token's, not cached.
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let pair: Value = response.json().await.unwrap();
    let mut keys: Vec<&str> = pair
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "refresh_token", "token_type"]
    );
    assert_eq!(pair["token_type"], "bearer");
    assert!(pair["expires_in"].as_u64().unwrap() > 0);
    let fresh = pair["access_token"].as_str().unwrap().to_owned();
    let fresh_refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    // Every earlier credential ends within a second; the new pair keeps working.
    assert_ends_within_a_second("the earlier access token", changed, || {
        app.get("/protected", Some(&access))
    })
    .await;
    assert_ends_within_a_second("the earlier session", changed, || {
        get_with_session(&app, "/protected", &session)
    })
    .await;
    assert_unauthorized(refresh(&app, &refresh_token).await, INVALID_REFRESH).await;
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(changed.elapsed())).await;
    assert_eq!(app.get("/protected", Some(&fresh)).await.status(), 200);
    assert_eq!(refresh(&app, &fresh_refresh).await.status(), 200);
    // The old password no longer logs in; the new one does.
    assert_unauthorized(app.login("alice", PASSWORD).await, BAD_CREDENTIALS).await;
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status(), 200);
}
test_both!(a_password_change_answers_a_token_pair_and_revokes_every_earlier_credential);

async fn a_wrong_current_password_is_refused_and_changes_nothing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;
    let pair = token_pair(&app, "alice", PASSWORD).await;
    let access = pair["access_token"].as_str().unwrap();

    // Act
    let response = change_password(&app, Some(access), "not-the-Password-42", NEW_PASSWORD).await;

    // Assert: refused, the password unchanged and no token revoked (a bumped token version
    // would refuse the refresh at once).
    assert_eq!(
        json_with_status(response, 400).await,
        json!({"detail": "Incorrect password"})
    );
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status(), 401);
    assert_eq!(
        refresh(&app, pair["refresh_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}
test_both!(a_wrong_current_password_is_refused_and_changes_nothing);

async fn a_weak_new_password_is_refused_and_changes_nothing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;

    for weak in ["password1234", "short-1A", "alicealicealice"] {
        let pair = token_pair(&app, "alice", PASSWORD).await;
        let access = pair["access_token"].as_str().unwrap();

        // Act
        let response = change_password(&app, Some(access), PASSWORD, weak).await;

        // Assert: 422 at the new password, never echoed; nothing changed or revoked.
        let (error, text) = only_error_with_text(response).await;
        assert_eq!(
            error["loc"],
            json!(["body", "new_password"]),
            "{weak}: {error}"
        );
        assert!(!text.contains(weak), "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
        assert_eq!(app.login("alice", weak).await.status(), 401);
        assert_eq!(
            refresh(&app, pair["refresh_token"].as_str().unwrap())
                .await
                .status(),
            200,
            "{weak}"
        );
    }
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
}
test_both!(a_weak_new_password_is_refused_and_changes_nothing);

async fn a_password_change_needs_authentication(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let anonymous = change_password(&app, None, PASSWORD, NEW_PASSWORD).await;
    let forged = change_password(&app, Some("not.a.jwt"), PASSWORD, NEW_PASSWORD).await;

    // Assert
    assert_unauthorized(anonymous, "Not authenticated").await;
    assert_eq!(forged.status(), 401);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
}
test_both!(a_password_change_needs_authentication);

async fn a_password_change_kills_an_outstanding_reset_link(backend: Backend) {
    // Arrange: a reset link mailed to alice.
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let access = app.access_token("alice", PASSWORD).await;
    let requested = app
        .post_json(
            "/password-reset/request",
            None,
            &json!({"email": "alice@example.com"}),
        )
        .await;
    assert_eq!(requested.status(), 202);
    let reset = outbox.next(&app).await.token("/password-reset");

    // Act
    let changed = change_password(&app, Some(&access), PASSWORD, NEW_PASSWORD).await;
    assert_eq!(changed.status(), 200);
    let response = app
        .post_json(
            "/password-reset/confirm",
            None,
            &json!({"token": reset, "new_password": "another-Strong-93-pass"}),
        )
        .await;

    // Assert
    assert_eq!(detail(response, 400).await, INVALID_MAIL_TOKEN);
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status(), 200);
    assert_eq!(
        app.login("alice", "another-Strong-93-pass").await.status(),
        401
    );
}
test_both!(a_password_change_kills_an_outstanding_reset_link);

// ---------------------------------------------------------------------------------------------
// POST /users/me/email and POST /users/me/verify-email
// ---------------------------------------------------------------------------------------------

async fn setting_an_address_mails_a_verification_link_to_it(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (alice, token) = app.user_with_token("alice", &[]).await;

    // Act
    let response = set_email(&app, &token, "Alice@Example.com").await;

    // Assert: the user, unverified, not cached.
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let text = response.text().await.unwrap();
    let user: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(user["id"], alice);
    assert_eq!(user["email"], "Alice@Example.com");
    assert_eq!(user["email_verified"], false);
    // The mail: to that address, plain text and HTML, saying from which IP and how to ignore it,
    // with a link to this server's page.
    let mail = outbox.next(&app).await;
    assert_eq!(mail.to, "Alice@Example.com");
    assert!(!mail.subject.is_empty());
    for part in [&mail.text, &mail.html] {
        assert!(part.contains("127.0.0.1"), "no IP in {part}");
        assert!(part.to_ascii_lowercase().contains("ignore"), "{part}");
    }
    let link = mail.link("/verify-email");
    assert!(
        link.starts_with(&format!("{}/verify-email?token=", app.address)),
        "{link}"
    );
    let mailed = mail.token("/verify-email");
    assert!(mailed.len() >= 22, "at least 128 bits: {mailed}");
    assert!(
        !text.contains(&mailed),
        "the answer carries the mailed token"
    );
    assert_eq!(me(&app, &token).await["email_verified"], false);
}
test_both!(setting_an_address_mails_a_verification_link_to_it);

async fn changing_a_verified_address_resets_its_verification(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, token) = verified_user(&app, &mut outbox, "alice", "alice@example.com").await;
    assert_eq!(me(&app, &token).await["email_verified"], true);

    // Act
    let response = set_email(&app, &token, "alice@example.org").await;

    // Assert
    let user = json_with_status(response, 200).await;
    assert_eq!(user["email_verified"], false);
    assert_eq!(me(&app, &token).await["email_verified"], false);
    let mail = outbox.next(&app).await;
    assert_eq!(mail.to, "alice@example.org");
    let confirmed = json_with_status(confirm(&app, &mail.token("/verify-email")).await, 200).await;
    assert_eq!(confirmed["email"], "alice@example.org");
    assert_eq!(confirmed["email_verified"], true);
}
test_both!(changing_a_verified_address_resets_its_verification);

async fn a_verification_mail_is_sent_again_and_only_the_newest_link_works(backend: Backend) {
    // Arrange: a first link mailed when the address was set.
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, token) = app.user_with_token("alice", &[]).await;
    assert_eq!(
        set_email(&app, &token, "alice@example.com").await.status(),
        200
    );
    let first = outbox.next(&app).await.token("/verify-email");

    // Act
    let response = resend(&app, &token).await;

    // Assert: 202, a second mail to the address; the first link is dead, the second works.
    assert_eq!(
        json_with_status(response, 202).await,
        json!({"detail": "Verification mail sent"})
    );
    let mail = outbox.next(&app).await;
    assert_eq!(mail.to, "alice@example.com");
    let second = mail.token("/verify-email");
    assert_ne!(first, second);
    assert_eq!(
        detail(confirm(&app, &first).await, 400).await,
        INVALID_MAIL_TOKEN
    );
    assert_eq!(me(&app, &token).await["email_verified"], false);
    let user = json_with_status(confirm(&app, &second).await, 200).await;
    assert_eq!(user["email_verified"], true);
}
test_both!(a_verification_mail_is_sent_again_and_only_the_newest_link_works);

async fn a_verification_mail_needs_an_unverified_address(backend: Backend) {
    // Arrange: bob has no address, carol a verified one.
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, bob) = app.user_with_token("bob", &[]).await;
    let (_, carol) = verified_user(&app, &mut outbox, "carol", "carol@example.com").await;

    // Act
    let none = resend(&app, &bob).await;
    let verified = resend(&app, &carol).await;
    let anonymous = app
        .post_json("/users/me/verify-email", None, &json!({}))
        .await;

    // Assert: refused, and no mail.
    assert!(detail(none, 400).await.is_string());
    assert!(detail(verified, 400).await.is_string());
    assert_unauthorized(anonymous, "Not authenticated").await;
    outbox.assert_nothing_new(&app).await;
    assert_eq!(me(&app, &carol).await["email_verified"], true);
}
test_both!(a_verification_mail_needs_an_unverified_address);

/// A user must not turn the server into a mail cannon aimed at someone else's address: the
/// verification mails one user triggers (address changes and resends) are limited
/// (`rate_limits.verification_mails_per_user`).
async fn verification_mails_one_user_triggers_are_limited(backend: Backend) {
    // Arrange: two mails an hour per user.
    let app = spawn_app_with(backend, |s| {
        s.rate_limits.verification_mails_per_user = "2/hour".parse().unwrap();
    })
    .await;
    let mut outbox = Outbox::new();
    let (_, alice) = app.user_with_token("alice", &[]).await;
    let (_, bob) = app.user_with_token("bob", &[]).await;
    assert_eq!(
        set_email(&app, &alice, "victim@example.com").await.status(),
        200
    );
    let _ = outbox.next(&app).await;
    assert_eq!(resend(&app, &alice).await.status(), 202);
    let _ = outbox.next(&app).await;

    // Act
    let again = resend(&app, &alice).await;
    let other_address = set_email(&app, &alice, "victim2@example.com").await;

    // Assert: refused without a mail; another user's budget is their own.
    assert_eq!(again.status(), 429);
    assert!(again.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(
        json_with_status(again, 429).await,
        json!({"detail": "Too Many Requests"})
    );
    assert_eq!(other_address.status(), 429);
    assert_eq!(me(&app, &alice).await["email"], "victim@example.com");
    outbox.assert_nothing_new(&app).await;
    assert_eq!(set_email(&app, &bob, "bob@example.com").await.status(), 200);
    assert_eq!(outbox.next(&app).await.to, "bob@example.com");
}
test_both!(verification_mails_one_user_triggers_are_limited);

// ---------------------------------------------------------------------------------------------
// POST /verify-email/confirm
// ---------------------------------------------------------------------------------------------

async fn a_verification_link_verifies_the_address_once(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (alice, token) = app.user_with_token("alice", &[]).await;
    assert_eq!(
        set_email(&app, &token, "alice@example.com").await.status(),
        200
    );
    let mailed = outbox.next(&app).await.token("/verify-email");

    // Act
    let first = confirm(&app, &mailed).await;
    let again = confirm(&app, &mailed).await;

    // Assert
    let user = json_with_status(first, 200).await;
    assert_eq!(user["id"], alice);
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["email_verified"], true);
    assert_eq!(me(&app, &token).await["email_verified"], true);
    assert_eq!(
        json_with_status(again, 400).await,
        json!({"detail": INVALID_MAIL_TOKEN})
    );
}
test_both!(a_verification_link_verifies_the_address_once);

async fn an_unknown_verification_token_is_refused(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, token) = app.user_with_token("alice", &[]).await;
    assert_eq!(
        set_email(&app, &token, "alice@example.com").await.status(),
        200
    );
    let mailed = outbox.next(&app).await.token("/verify-email");
    let mut altered = mailed.clone();
    let last = if altered.pop() == Some('A') { 'B' } else { 'A' };
    altered.push(last);

    // Act / Assert
    for unknown in [bulwark::secret::random_token(32), altered, String::new()] {
        let response = confirm(&app, &unknown).await;
        assert_eq!(
            json_with_status(response, 400).await,
            json!({"detail": INVALID_MAIL_TOKEN}),
            "{unknown:?}"
        );
    }
    assert_eq!(me(&app, &token).await["email_verified"], false);
}
test_both!(an_unknown_verification_token_is_refused);

/// The lifetime is checked in the query that spends a token: with the clock past
/// `email_verification_ttl` the token is not found (and not spent); with the clock inside it,
/// the token is live. (The shortest lifetime the configuration allows, a minute, is too long to
/// wait for, so the repository is asked with a later `now`.)
async fn a_verification_token_expires_after_email_verification_ttl(backend: Backend) {
    use bulwark_server::db::{TokenPurpose, now};

    // Arrange
    let app = spawn_app_with(backend, |s| {
        s.email_verification_ttl =
            bulwark_server::config::DurationSetting(Duration::from_secs(3600));
    })
    .await;
    let mut outbox = Outbox::new();
    let (_, token) = app.user_with_token("alice", &[]).await;
    assert_eq!(
        set_email(&app, &token, "alice@example.com").await.status(),
        200
    );
    let mail = outbox.next(&app).await;
    assert!(
        mail.text.contains("1 hour"),
        "the mail says how long: {}",
        mail.text
    );
    let mailed = mail.token("/verify-email");
    let hash = bulwark::secret::fingerprint(&mailed);
    let repo = &app.state.repo;

    // Act
    let inside = repo
        .find_account_token(&hash, TokenPurpose::VerifyEmail, now() + 3600 - 30)
        .await
        .unwrap();
    let past = repo
        .spend_account_token(&hash, TokenPurpose::VerifyEmail, now() + 3600 + 1)
        .await
        .unwrap();

    // Assert
    assert!(inside.is_some(), "live within the lifetime");
    assert!(past.is_none(), "expired after the lifetime");
    let user = json_with_status(confirm(&app, &mailed).await, 200).await;
    assert_eq!(
        user["email_verified"], true,
        "an expired look-up spends nothing"
    );
}
test_both!(a_verification_token_expires_after_email_verification_ttl);

async fn a_link_mailed_to_an_old_address_does_not_verify_the_new_one(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, token) = app.user_with_token("alice", &[]).await;
    assert_eq!(
        set_email(&app, &token, "alice@old.example").await.status(),
        200
    );
    let old = outbox.next(&app).await.token("/verify-email");
    assert_eq!(
        set_email(&app, &token, "alice@new.example").await.status(),
        200
    );
    let new = outbox.next(&app).await;
    assert_eq!(new.to, "alice@new.example");

    // Act
    let response = confirm(&app, &old).await;

    // Assert
    assert_eq!(detail(response, 400).await, INVALID_MAIL_TOKEN);
    let profile = me(&app, &token).await;
    assert_eq!(profile["email"], "alice@new.example");
    assert_eq!(profile["email_verified"], false);
    // Back to the old address: its old link still does not count.
    assert_eq!(
        set_email(&app, &token, "alice@old.example").await.status(),
        200
    );
    let _ = outbox.next(&app).await;
    assert_eq!(
        detail(confirm(&app, &old).await, 400).await,
        INVALID_MAIL_TOKEN
    );
    assert_eq!(me(&app, &token).await["email_verified"], false);
}
test_both!(a_link_mailed_to_an_old_address_does_not_verify_the_new_one);

async fn a_reset_link_does_not_verify_an_address_nor_a_verification_link_reset_a_password(
    backend: Backend,
) {
    // Arrange: alice holds a reset link and a verification link.
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, token) = app.user_with_token("alice", &[]).await;
    assert_eq!(
        set_email(&app, &token, "alice@example.com").await.status(),
        200
    );
    let verify = outbox.next(&app).await.token("/verify-email");
    let requested = app
        .post_json(
            "/password-reset/request",
            None,
            &json!({"email": "alice@example.com"}),
        )
        .await;
    assert_eq!(requested.status(), 202);
    let reset = outbox.next(&app).await.token("/password-reset");

    // Act
    let verified_by_reset = confirm(&app, &reset).await;
    let reset_by_verify = app
        .post_json(
            "/password-reset/confirm",
            None,
            &json!({"token": verify, "new_password": NEW_PASSWORD}),
        )
        .await;

    // Assert: each purpose is its own; both links still work for theirs.
    assert_eq!(detail(verified_by_reset, 400).await, INVALID_MAIL_TOKEN);
    assert_eq!(detail(reset_by_verify, 400).await, INVALID_MAIL_TOKEN);
    assert_eq!(me(&app, &token).await["email_verified"], false);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 200);
    assert_eq!(confirm(&app, &verify).await.status(), 200);
}
test_both!(a_reset_link_does_not_verify_an_address_nor_a_verification_link_reset_a_password);

// ---------------------------------------------------------------------------------------------
// GET /verify-email and its form
// ---------------------------------------------------------------------------------------------

async fn the_verification_page_confirms_on_a_button_press_never_on_get(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, token) = app.user_with_token("alice", &[]).await;
    assert_eq!(
        set_email(&app, &token, "alice@example.com").await.status(),
        200
    );
    let mailed = outbox.next(&app).await.token("/verify-email");

    // Act
    let page = verify_page(&app, &mailed).await;

    // Assert: an HTML page, strict CSP, not cached, with a form posting the token to the confirm
    // route; the address is still unverified.
    let content_type = page.headers[header::CONTENT_TYPE].to_str().unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        page.html
            .contains("method=\"post\" action=\"/verify-email/confirm\""),
        "{}",
        page.html
    );
    assert_eq!(field_value(&page.html, "token"), mailed);
    assert!(!field_value(&page.html, "csrf_token").is_empty());
    assert_eq!(me(&app, &token).await["email_verified"], false);
    assert_eq!(
        confirm(&app, &mailed).await.status(),
        200,
        "the GET spent nothing"
    );
}
test_both!(the_verification_page_confirms_on_a_button_press_never_on_get);

async fn a_form_confirmation_needs_the_pages_csrf_token_and_an_allowed_origin(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, token) = app.user_with_token("alice", &[]).await;
    assert_eq!(
        set_email(&app, &token, "alice@example.com").await.status(),
        200
    );
    let mailed = outbox.next(&app).await.token("/verify-email");
    let page = verify_page(&app, &mailed).await;
    let csrf = field_value(&page.html, "csrf_token");
    let cookie = Some(format!("csrftoken={}", page.csrf_cookie));
    let forged = bulwark::secret::random_token(32);

    // Act: no token, a forged token, the token without its cookie, from a foreign page.
    let refused = [
        (
            "no token",
            post_verify_form(&app, cookie.clone(), &[("token", &mailed)], &[]).await,
        ),
        (
            "forged token",
            post_verify_form(
                &app,
                cookie.clone(),
                &[("token", &mailed), ("csrf_token", &forged)],
                &[],
            )
            .await,
        ),
        (
            "no cookie",
            post_verify_form(
                &app,
                None,
                &[("token", &mailed), ("csrf_token", &csrf)],
                &[],
            )
            .await,
        ),
        (
            "foreign origin",
            post_verify_form(
                &app,
                cookie.clone(),
                &[("token", &mailed), ("csrf_token", &csrf)],
                &[("origin", FOREIGN_ORIGIN)],
            )
            .await,
        ),
    ];

    // Assert: 403 each, nothing changed; the page's own post verifies.
    for (case, response) in refused {
        assert_eq!(
            json_with_status(response, 403).await,
            json!({"detail": CSRF_REFUSED}),
            "{case}"
        );
    }
    assert_eq!(me(&app, &token).await["email_verified"], false);
    let accepted = post_verify_form(
        &app,
        cookie,
        &[("token", &mailed), ("csrf_token", &csrf)],
        &[("origin", &app.address)],
    )
    .await;
    let user = json_with_status(accepted, 200).await;
    assert_eq!(user["email_verified"], true);
    assert_eq!(me(&app, &token).await["email_verified"], true);
}
test_both!(a_form_confirmation_needs_the_pages_csrf_token_and_an_allowed_origin);

async fn a_logged_in_browser_confirms_through_the_page(backend: Backend) {
    // Arrange: the browser holds alice's session cookie when she opens the link.
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, token) = app.user_with_token("alice", &[]).await;
    let session = session_cookie(&app, "alice", PASSWORD).await;
    assert_eq!(
        set_email(&app, &token, "alice@example.com").await.status(),
        200
    );
    let mailed = outbox.next(&app).await.token("/verify-email");
    let page = verify_page(&app, &mailed).await;
    let csrf = field_value(&page.html, "csrf_token");

    // Act
    let response = post_verify_form(
        &app,
        Some(format!("session={session}; csrftoken={}", page.csrf_cookie)),
        &[("token", &mailed), ("csrf_token", &csrf)],
        &[("origin", &app.address)],
    )
    .await;

    // Assert
    assert_eq!(
        json_with_status(response, 200).await["email_verified"],
        true
    );
}
test_both!(a_logged_in_browser_confirms_through_the_page);

async fn the_verification_page_escapes_the_token_it_shows(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let hostile = "%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E";

    // Act
    let page = verify_page(&app, hostile).await;

    // Assert
    assert!(!page.html.contains("<script>alert"), "{}", page.html);
    let shown = field_value(&page.html, "token");
    assert!(shown.contains("script"), "{shown}");
    assert!(!shown.contains(['<', '>']), "{shown}");
}
test_both!(the_verification_page_escapes_the_token_it_shows);

/// Without the page's script, the browser posts the form itself (asking for HTML) and is shown
/// a page, with the API's status.
async fn a_browser_without_script_is_shown_what_its_form_post_did(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, token) = app.user_with_token("alice", &[]).await;
    assert_eq!(
        set_email(&app, &token, "alice@example.com").await.status(),
        200
    );
    let mailed = outbox.next(&app).await.token("/verify-email");
    let page = verify_page(&app, &mailed).await;
    let csrf = field_value(&page.html, "csrf_token");
    let cookie = Some(format!("csrftoken={}", page.csrf_cookie));
    let accept = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");

    // Act
    let refused = post_verify_form(&app, cookie.clone(), &[("token", &mailed)], &[accept]).await;
    let refused_status = refused.status();
    let unverified = me(&app, &token).await["email_verified"].clone();
    let accepted = post_verify_form(
        &app,
        cookie,
        &[("token", &mailed), ("csrf_token", &csrf)],
        &[accept, ("origin", &app.address)],
    )
    .await;

    // Assert
    assert_eq!(refused_status, 403);
    assert_eq!(unverified, false);
    assert_eq!(accepted.status(), 200);
    let content_type = accepted.headers()[header::CONTENT_TYPE].to_str().unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert_eq!(me(&app, &token).await["email_verified"], true);
}
test_both!(a_browser_without_script_is_shown_what_its_form_post_did);

/// A cross-site page can post `text/plain` without a CORS preflight: JSON in such a body is
/// refused, so JSON confirmations come only from scripts the server's CORS rules allow.
async fn a_confirmation_sent_as_text_plain_is_refused(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, token) = app.user_with_token("alice", &[]).await;
    assert_eq!(
        set_email(&app, &token, "alice@example.com").await.status(),
        200
    );
    let mailed = outbox.next(&app).await.token("/verify-email");

    // Act
    let response = app
        .client
        .post(app.url("/verify-email/confirm"))
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::ORIGIN, FOREIGN_ORIGIN)
        .body(json!({"token": mailed}).to_string())
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 415);
    assert_eq!(me(&app, &token).await["email_verified"], false);
}
test_both!(a_confirmation_sent_as_text_plain_is_refused);

// ---------------------------------------------------------------------------------------------
// require_verified_email
// ---------------------------------------------------------------------------------------------

async fn require_verified_email_refuses_an_unverified_login_after_the_password(backend: Backend) {
    // Arrange: alice signed up with an address and dave was created with one by an admin (each
    // was mailed a link), bob has no address, carol is unverified and disabled.
    let app = spawn_app_with(backend, |s| {
        s.require_verified_email = true;
        s.allow_signup = true;
    })
    .await;
    let mut outbox = Outbox::new();
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let signup = app
        .post_json(
            "/users/signup",
            None,
            &json!({"username": "alice", "password": PASSWORD, "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(signup.status(), 201);
    let alice_mail = outbox.next(&app).await;
    assert_eq!(alice_mail.to, "alice@example.com");
    let created = app
        .post_json(
            "/admin/users",
            Some(&admin),
            &json!({"username": "dave", "password": PASSWORD, "email": "dave@example.com"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let dave_mail = outbox.next(&app).await;
    assert_eq!(dave_mail.to, "dave@example.com");
    app.create_user("bob", PASSWORD, &[]).await;
    let carol = app
        .create_user_with_email("carol", PASSWORD, &[], Some("carol@example.com"))
        .await;
    let disabled = app
        .patch_json(
            &format!("/admin/users/{carol}"),
            Some(&admin),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status(), 200);

    // Act / Assert: a right password of an unverified user is 403, on both login routes, and
    // gets no token or session.
    for name in ["alice", "bob", "dave"] {
        let token = app.login(name, PASSWORD).await;
        assert_eq!(
            json_with_status(token, 403).await,
            json!({"detail": "Email not verified"}),
            "{name}"
        );
        let browser = app.browser_login(name, PASSWORD).await;
        assert_eq!(browser.status(), 403, "{name}");
        assert!(set_cookie(&browser, "session").is_none(), "{name}");
        assert_eq!(
            json_with_status(browser, 403).await,
            json!({"detail": "Email not verified"})
        );
    }
    // A wrong password, an unknown or a disabled user: the usual 401, which says nothing about
    // the address.
    for (name, password) in [
        ("alice", "not-the-Password-42"),
        ("nobody", PASSWORD),
        ("carol", PASSWORD),
    ] {
        assert_unauthorized(app.login(name, password).await, BAD_CREDENTIALS).await;
        assert_eq!(
            app.browser_login(name, password).await.status(),
            401,
            "{name}"
        );
    }

    // Act: alice and dave follow the links mailed when they were created.
    for mail in [&alice_mail, &dave_mail] {
        let confirmed = confirm(&app, &mail.token("/verify-email")).await;
        assert_eq!(
            json_with_status(confirmed, 200).await["email_verified"],
            true
        );
    }

    // Assert
    for name in ["alice", "dave"] {
        assert_eq!(app.login(name, PASSWORD).await.status(), 200, "{name}");
        assert_eq!(
            app.browser_login(name, PASSWORD).await.status(),
            200,
            "{name}"
        );
    }
    assert_eq!(app.login("bob", PASSWORD).await.status(), 403);
}
test_both!(require_verified_email_refuses_an_unverified_login_after_the_password);

/// The documented choice: the first admin is created without an address and must never be
/// locked out.
async fn require_verified_email_lets_an_admin_without_an_address_log_in(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.require_verified_email = true).await;
    app.create_user("root", PASSWORD, &["admin"]).await;

    // Act
    let token = app.login("root", PASSWORD).await;
    let browser = app.browser_login("root", PASSWORD).await;

    // Assert
    assert_eq!(token.status(), 200);
    assert_eq!(browser.status(), 200);
}
test_both!(require_verified_email_lets_an_admin_without_an_address_log_in);

// ---------------------------------------------------------------------------------------------
// DELETE /admin/users/{user_id}
// ---------------------------------------------------------------------------------------------

async fn deleting_a_user_removes_them_their_items_and_every_credential(backend: Backend) {
    // Arrange: alice with an item, an access and refresh token, a session and a mailed link.
    let _one_at_a_time = TIMING.lock().await;
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;
    let pair = token_pair(&app, "alice", PASSWORD).await;
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let session = session_cookie(&app, "alice", PASSWORD).await;
    let item = app.new_item(&access, "lamp").await;
    assert_eq!(
        set_email(&app, &access, "alice@example.com").await.status(),
        200
    );
    let mailed = outbox.next(&app).await.token("/verify-email");

    // Act
    let response = app
        .delete(&format!("/admin/users/{alice}"), Some(&admin))
        .await;
    let deleted = Instant::now();

    // Assert
    assert_eq!(response.status(), 204);
    assert_ends_within_a_second("alice's access token", deleted, || {
        app.get("/protected", Some(&access))
    })
    .await;
    assert_ends_within_a_second("alice's session", deleted, || {
        get_with_session(&app, "/protected", &session)
    })
    .await;
    assert_eq!(app.get("/users/me", Some(&access)).await.status(), 401);
    assert_unauthorized(
        refresh(&app, pair["refresh_token"].as_str().unwrap()).await,
        INVALID_REFRESH,
    )
    .await;
    assert_unauthorized(app.login("alice", PASSWORD).await, BAD_CREDENTIALS).await;
    assert_eq!(
        detail(confirm(&app, &mailed).await, 400).await,
        INVALID_MAIL_TOKEN
    );
    assert_eq!(app.get_item(&admin, &item["id"]).await.status(), 404);
    let users = json_with_status(app.get("/admin/users", Some(&admin)).await, 200).await;
    assert!(
        users.as_array().unwrap().iter().all(|u| u["id"] != alice),
        "{users}"
    );
    let (events, _) = audit_events(&app, &admin, "kind=user.deleted").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["user_id"], alice);
    assert_eq!(events[0]["username"], "alice");
    // The name and the address are free again, for a new user unaffected by the revocation.
    let newcomer = app
        .post_json(
            "/admin/users",
            Some(&admin),
            &json!({"username": "alice", "password": PASSWORD, "email": "alice@example.com"}),
        )
        .await;
    let newcomer = json_with_status(newcomer, 201).await;
    assert_ne!(newcomer["id"], alice);
    let fresh = app.access_token("alice", PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(deleted.elapsed())).await;
    assert_eq!(app.get("/protected", Some(&fresh)).await.status(), 200);
    assert_eq!(
        json_with_status(app.list_items(&fresh, "").await, 200).await["total"],
        0
    );
}
test_both!(deleting_a_user_removes_them_their_items_and_every_credential);

async fn deleting_a_user_is_refused_without_the_right(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (root, admin) = app.user_with_token("root", &["admin"]).await;
    let (alice, alice_token) = app.user_with_token("alice", &[]).await;
    let (bob, _) = app.user_with_token("bob", &[]).await;

    // Act
    let unknown = app.delete("/admin/users/999999", Some(&admin)).await;
    let own = app
        .delete(&format!("/admin/users/{root}"), Some(&admin))
        .await;
    let by_user = app
        .delete(&format!("/admin/users/{bob}"), Some(&alice_token))
        .await;
    let anonymous = app.delete(&format!("/admin/users/{bob}"), None).await;
    let not_an_id = app.delete("/admin/users/bob", Some(&admin)).await;

    // Assert: nobody was deleted.
    assert_eq!(detail(unknown, 404).await, "User not found");
    assert!(detail(own, 409).await.is_string());
    assert_eq!(
        json_with_status(by_user, 403).await,
        json!({"detail": "Insufficient permissions"})
    );
    assert_unauthorized(anonymous, "Not authenticated").await;
    assert_eq!(
        only_error(not_an_id).await["loc"],
        json!(["path", "user_id"])
    );
    let users = json_with_status(app.get("/admin/users", Some(&admin)).await, 200).await;
    let ids: Vec<&Value> = users.as_array().unwrap().iter().map(|u| &u["id"]).collect();
    assert_eq!(ids, [&json!(root), &json!(alice), &json!(bob)]);
    assert_eq!(app.get("/protected", Some(&admin)).await.status(), 200);
}
test_both!(deleting_a_user_is_refused_without_the_right);

// ---------------------------------------------------------------------------------------------
// The audit trail
// ---------------------------------------------------------------------------------------------

async fn account_changes_are_audited_without_tokens_or_passwords(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let mut outbox = Outbox::new();
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let (alice, token) = app.user_with_token("alice", &[]).await;
    let mut mailed = Vec::new();

    // Act: set an address, ask again, verify, change the password, ask for a reset.
    assert_eq!(
        set_email(&app, &token, "alice@example.com").await.status(),
        200
    );
    mailed.push(outbox.next(&app).await.token("/verify-email"));
    let resent = resend(&app, &token).await;
    assert!(!resent.text().await.unwrap().contains(&mailed[0]));
    mailed.push(outbox.next(&app).await.token("/verify-email"));
    let confirmed = confirm(&app, &mailed[1]).await;
    assert_eq!(confirmed.status(), 200);
    assert!(!confirmed.text().await.unwrap().contains(&mailed[1]));
    let changed = change_password(&app, Some(&token), PASSWORD, NEW_PASSWORD).await;
    assert_eq!(changed.status(), 200);
    let requested = app
        .post_json(
            "/password-reset/request",
            None,
            &json!({"email": "alice@example.com"}),
        )
        .await;
    assert_eq!(requested.status(), 202);
    mailed.push(outbox.next(&app).await.token("/password-reset"));

    // Assert: one event of each kind for alice, with the client IP.
    for (kind, count) in [
        ("user.email_changed", 1),
        ("user.verification_sent", 2),
        ("user.email_verified", 1),
        ("user.password_changed", 1),
        ("password_reset.requested", 1),
    ] {
        let (events, _) = audit_events(&app, &admin, &format!("kind={kind}&user_id={alice}")).await;
        assert_eq!(events.len(), count, "{kind}: {events:?}");
        for event in &events {
            assert_eq!(event["username"], "alice", "{kind}");
            assert_eq!(event["ip"], "127.0.0.1", "{kind}");
        }
    }
    // No token, password or hash anywhere in the trail.
    let (events, text) = audit_events(&app, &admin, "limit=500").await;
    assert!(events.len() >= 7, "{text}");
    for secret in mailed
        .iter()
        .map(String::as_str)
        .chain([PASSWORD, NEW_PASSWORD, "$argon2"])
    {
        assert!(!text.contains(secret), "the audit trail carries {secret}");
        let hashed = bulwark::secret::fingerprint(secret);
        assert!(
            !text.contains(&hashed),
            "the audit trail carries a token hash"
        );
    }
}
test_both!(account_changes_are_audited_without_tokens_or_passwords);
