//! The password-reset flow over HTTP and its protections (contract: "Accounts (self-service)",
//! "Mail", "Rate limiting", "Browser sessions and CSRF"):
//! - `POST /password-reset/request` answers the same (status, body, headers, timing) for a
//!   known, unknown, unverified or disabled address, and mails only a known, enabled user; 422
//!   for a malformed body;
//! - `POST /password-reset/confirm` sets the password and revokes every token, session and
//!   refresh family; reset tokens are single-use (also under concurrency), expire, die with a
//!   newer request or any password change, are refused for a disabled user, and survive a weak
//!   password;
//! - the rate limits of the reset and confirmation routes (per client IP, per address) and
//!   their settings;
//! - the page a reset link opens (strict CSP, no-store, CSRF-protected form, escaped token);
//! - the mail (recipient, parts, link under `public_url`, sender, client IP) and the audit
//!   trail.
//!
//! Mails are read from the outbox (the default without `smtp_url`). The one end-to-end reset
//! test is in `accounts.rs`.

use std::time::{Duration, Instant};

use bulwark::secret::{fingerprint, random_token};
use bulwark_server::{
    config::{DurationSetting, Settings},
    db::{TokenPurpose, now},
};
use reqwest::{Response, header};
use serde_json::{Value, json};

use crate::{
    helpers::{
        Backend, PASSWORD, TestApp, XFF, detail, json_of, json_with_status, only_error_with_text,
        set_cookie, spawn_app, spawn_app_with, unique,
    },
    mailbox, test_both,
};

/// The one answer to a reset request.
const REQUESTED: &str = "If the address is known, a reset link is on its way";

/// The one answer to a bad, spent or expired token.
const BAD_TOKEN: &str = "Invalid or expired token";

/// A strong password other than [`PASSWORD`].
const NEW_PASSWORD: &str = "amber-Falcon-62-meadow";

/// The 403 of a refused CSRF check.
const CSRF_REFUSED: &str = "CSRF token missing or invalid";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `POST /password-reset/request` from the test client.
async fn request_reset(app: &TestApp, email: &str) -> Response {
    app.post_json("/password-reset/request", None, &json!({"email": email}))
        .await
}

/// `POST /password-reset/request` from `ip` (forwarded by the test client, a trusted proxy).
async fn request_reset_from(app: &TestApp, ip: &str, email: &str) -> Response {
    app.client
        .post(app.url("/password-reset/request"))
        .header(XFF, ip)
        .json(&json!({"email": email}))
        .send()
        .await
        .expect("POST /password-reset/request")
}

/// `POST /password-reset/confirm` (JSON).
async fn confirm(app: &TestApp, token: &str, new_password: &str) -> Response {
    app.post_json(
        "/password-reset/confirm",
        None,
        &json!({"token": token, "new_password": new_password}),
    )
    .await
}

/// `POST /password-reset/confirm` (JSON) from `ip`.
async fn confirm_from(app: &TestApp, ip: &str, token: &str, new_password: &str) -> Response {
    app.client
        .post(app.url("/password-reset/confirm"))
        .header(XFF, ip)
        .json(&json!({"token": token, "new_password": new_password}))
        .send()
        .await
        .expect("POST /password-reset/confirm")
}

/// Asserts the one answer to a reset request: 202 and exactly `{"detail": REQUESTED}`.
async fn assert_requested(response: Response) {
    let body = json_with_status(response, 202).await;
    assert_eq!(body, json!({"detail": REQUESTED}));
}

/// Asserts a 400 with exactly `{"detail": "Invalid or expired token"}`.
async fn assert_bad_token(response: Response) {
    let body = json_with_status(response, 400).await;
    assert_eq!(body, json!({"detail": BAD_TOKEN}));
}

/// Asserts a 429 with exactly `{"detail": "Too Many Requests"}` and a `Retry-After` of at most
/// `window` seconds.
async fn assert_too_many(response: Response, window: u64) {
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response
        .headers()
        .get(header::RETRY_AFTER)
        .expect("Retry-After on a 429")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!(
        (1..=window).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(
        json_of(response).await,
        json!({"detail": "Too Many Requests"})
    );
}

/// Asks a reset for `email` and answers the token of the mail it brings, the outbox's
/// `count`-th.
async fn reset_token(app: &TestApp, email: &str, count: usize) -> String {
    assert_requested(request_reset(app, email).await).await;
    let mail = mailbox::mails(app, count).await.remove(count - 1);
    mail.token("/password-reset")
}

/// Whether `username` logs in with `password` (200) or not (401).
async fn logs_in(app: &TestApp, username: &str, password: &str) -> bool {
    let status = app.login(username, password).await.status();
    assert!(status == 200 || status == 401, "login answered {status}");
    status == 200
}

/// An admin's access token.
async fn admin_token(app: &TestApp) -> String {
    app.create_user("root", PASSWORD, &["admin"]).await;
    app.access_token("root", PASSWORD).await
}

/// The app with `127.0.0.1` (the test client) as a trusted proxy, so that `X-Forwarded-For`
/// names the client IP.
async fn app_behind_proxy(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(backend, |s| {
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        configure(s);
    })
    .await
}

/// Polls `GET /admin/audit?kind=KIND` until it lists at least `count` events (at most 5 s);
/// answers them, newest first.
async fn audit_events(app: &TestApp, admin: &str, kind: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let page = json_with_status(
            app.get(&format!("/admin/audit?kind={kind}"), Some(admin))
                .await,
            200,
        )
        .await;
        let events = page["events"].as_array().expect("events").clone();
        if events.len() >= count {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} {kind} events: {page}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `(csrf cookie, csrf_token field, token field)` of a reset page.
async fn reset_page(app: &TestApp, token: &str) -> (String, String, String) {
    let page = app
        .client
        .get(app.url("/password-reset"))
        .query(&[("token", token)])
        .send()
        .await
        .expect("GET /password-reset");
    assert_eq!(page.status(), 200);
    let cookie = set_cookie(&page, "csrftoken").expect("a CSRF cookie");
    let html = page.text().await.unwrap();
    (
        cookie,
        hidden_field(&html, "csrf_token"),
        hidden_field(&html, "token"),
    )
}

/// The value of the hidden field `name` of a page (as written, entities left as they are).
fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').expect("end of the value");
    html[start..end].to_owned()
}

/// `text` with HTML's character references for `"`, `'`, `<`, `>` and `&` decoded.
fn unescape(text: &str) -> String {
    [
        ("&#34;", "\""),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&#x27;", "'"),
        ("&#60;", "<"),
        ("&lt;", "<"),
        ("&#62;", ">"),
        ("&gt;", ">"),
        ("&#38;", "&"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(text.to_owned(), |text, (entity, c)| text.replace(entity, c))
}

// ---------------------------------------------------------------------------------------------
// Requests: one answer whatever the address
// ---------------------------------------------------------------------------------------------

async fn a_reset_request_answers_the_same_whatever_the_address(backend: Backend) {
    // Arrange: a verified address, an unverified one, a disabled user's, and none.
    let app = spawn_app(backend).await;
    let alice = app
        .create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    assert!(
        app.state
            .repo
            .mark_email_verified(alice, "alice@example.com")
            .await
            .unwrap()
    );
    app.create_user_with_email("carol", PASSWORD, &[], Some("carol@example.com"))
        .await;
    let dave = app
        .create_user_with_email("dave", PASSWORD, &[], Some("dave@example.com"))
        .await;
    app.state.repo.set_disabled(dave, true).await.unwrap();

    // Act
    let answers = [
        request_reset(&app, "alice@example.com").await,
        request_reset(&app, "nobody@example.com").await,
        request_reset(&app, "carol@example.com").await,
        request_reset(&app, "dave@example.com").await,
    ];

    // Assert: the same answer four times; mails only for the known, enabled users (a user
    // with an unverified address is known and enabled: the contract mails them too).
    for answer in answers {
        assert_requested(answer).await;
    }
    assert_eq!(mailbox::settled_count(&app).await, 2, "two mails in all");
    let mut recipients: Vec<String> = mailbox::mails(&app, 2)
        .await
        .into_iter()
        .map(|m| m.to)
        .collect();
    recipients.sort();
    assert_eq!(recipients, ["alice@example.com", "carol@example.com"]);
}
test_both!(a_reset_request_answers_the_same_whatever_the_address);

async fn a_reset_request_takes_the_same_time_for_known_and_unknown_addresses(backend: Backend) {
    // Arrange: no limits (they would refuse the samples), one known address.
    let _one_at_a_time = crate::rate_limits::TIMING.lock().await;
    let app = spawn_app_with(backend, |s| s.rate_limits.enabled = false).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let timed = |email: &'static str| {
        let app = &app;
        async move {
            let start = Instant::now();
            let response = request_reset(app, email).await;
            let status = response.status();
            let _ = response.bytes().await.unwrap();
            let elapsed = start.elapsed();
            assert_eq!(status, 202);
            elapsed
        }
    };
    // Warm up connections and caches.
    timed("alice@example.com").await;
    timed("nobody@example.com").await;

    // Act: interleave the two kinds, alternating which goes first.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..15 {
        if i % 2 == 0 {
            unknown.push(timed("nobody@example.com").await);
            known.push(timed("alice@example.com").await);
        } else {
            known.push(timed("alice@example.com").await);
            unknown.push(timed("nobody@example.com").await);
        }
    }

    // Assert: compare the fastest of each kind (other tests can only add time to a sample).
    let known_min = *known.iter().min().unwrap();
    let unknown_min = *unknown.iter().min().unwrap();
    let ratio = known_min.as_secs_f64() / unknown_min.as_secs_f64();
    assert!(
        (0.5..=2.0).contains(&ratio),
        "fastest known address {known_min:?} vs unknown {unknown_min:?} (ratio {ratio:.2}); \
         known {known:?}, unknown {unknown:?}"
    );
    // Every known request mailed (the measurement covered the real work).
    assert_eq!(mailbox::settled_count(&app).await, 16);
}
test_both!(a_reset_request_takes_the_same_time_for_known_and_unknown_addresses);

async fn known_and_unknown_addresses_get_byte_identical_answers(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    // Headers that differ between any two answers: the date, the limits' counters, the
    // request id.
    let varying = |name: &header::HeaderName| {
        name == header::DATE || name.as_str().starts_with("ratelimit-") || name == "x-request-id"
    };
    let answer = |response: Response| async move {
        let status = response.status();
        let mut headers: Vec<(String, Vec<u8>)> = response
            .headers()
            .iter()
            .filter(|(name, _)| !varying(name))
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect();
        headers.sort();
        (status, headers, response.bytes().await.unwrap())
    };

    // Act
    let known = answer(request_reset(&app, "alice@example.com").await).await;
    let unknown = answer(request_reset(&app, "nobody@example.com").await).await;

    // Assert
    assert_eq!(known, unknown);
    assert_eq!(known.0, 202);
    assert_eq!(
        serde_json::from_slice::<Value>(&known.2).unwrap(),
        json!({"detail": REQUESTED})
    );
}
test_both!(known_and_unknown_addresses_get_byte_identical_answers);

async fn a_malformed_reset_request_is_a_422(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.rate_limits.enabled = false).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let post_raw = |body: &'static str| {
        app.client
            .post(app.url("/password-reset/request"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };

    // Act
    let malformed = post_raw("{\"email\": ").await.unwrap();
    let missing = app
        .post_json("/password-reset/request", None, &json!({}))
        .await;
    let not_a_string = app
        .post_json("/password-reset/request", None, &json!({"email": 5}))
        .await;
    let bad_addresses: Vec<Response> = {
        let mut answers = Vec::new();
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "alice",
            "alice@@example.com",
            "alice@example.com@example.com",
            "alice@",
            long.as_str(),
        ] {
            answers.push(request_reset(&app, bad).await);
        }
        answers
    };
    let nul = request_reset(&app, "alice\u{0}@example.com").await;

    // Assert
    let (error, _) = only_error_with_text(malformed).await;
    assert_eq!(error["type"], "json_invalid");
    let (error, _) = only_error_with_text(missing).await;
    assert_eq!(error["type"], "missing");
    assert_eq!(error["loc"], json!(["body", "email"]));
    let (error, _) = only_error_with_text(not_a_string).await;
    assert_eq!(error["loc"], json!(["body", "email"]));
    for answer in bad_addresses {
        let (error, _) = only_error_with_text(answer).await;
        assert_eq!(error["loc"], json!(["body", "email"]), "{error}");
    }
    assert_eq!(nul.status(), 422);
    assert_eq!(mailbox::settled_count(&app).await, 0, "no mail for a 422");
}
test_both!(a_malformed_reset_request_is_a_422);

// ---------------------------------------------------------------------------------------------
// Confirmation
// ---------------------------------------------------------------------------------------------

async fn a_reset_revokes_every_token_session_and_refresh_family(backend: Backend) {
    // Arrange: two logins (two refresh families) and a browser session.
    let app = spawn_app(backend).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let mut pairs = Vec::new();
    for _ in 0..2 {
        let body = json_with_status(app.login("alice", PASSWORD).await, 200).await;
        pairs.push((
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        ));
    }
    let session = set_cookie(&app.browser_login("alice", PASSWORD).await, "session")
        .expect("a session cookie");
    let with_session = || {
        app.client
            .get(app.url("/users/me"))
            .header(header::COOKIE, format!("session={session}"))
            .send()
    };
    assert_eq!(with_session().await.unwrap().status(), 200);
    let token = reset_token(&app, "alice@example.com", 1).await;

    // Act
    let response = confirm(&app, &token, NEW_PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 204);
    assert!(
        response.bytes().await.unwrap().is_empty(),
        "204 has no body"
    );
    assert!(!logs_in(&app, "alice", PASSWORD).await, "old password");
    assert!(logs_in(&app, "alice", NEW_PASSWORD).await, "new password");
    // Access tokens die within about a second (revocations reach every instance).
    let deadline = Instant::now() + Duration::from_millis(1500);
    for (access, _) in &pairs {
        while app.get("/users/me", Some(access)).await.status() != 401 {
            assert!(Instant::now() < deadline, "an access token still works");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    while with_session().await.unwrap().status() != 401 {
        assert!(Instant::now() < deadline, "the session still works");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (_, refresh) in &pairs {
        let refreshed = app
            .post_json("/token/refresh", None, &json!({"refresh_token": refresh}))
            .await;
        assert_eq!(refreshed.status(), 401, "a refresh family survived");
    }
}
test_both!(a_reset_revokes_every_token_session_and_refresh_family);

async fn a_spent_reset_token_is_refused(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let token = reset_token(&app, "alice@example.com", 1).await;
    assert_eq!(confirm(&app, &token, NEW_PASSWORD).await.status(), 204);

    // Act
    let again = confirm(&app, &token, "second-Attempt-77-harbor").await;

    // Assert: refused, and the password is the first one set.
    assert_bad_token(again).await;
    assert!(logs_in(&app, "alice", NEW_PASSWORD).await);
    assert!(!logs_in(&app, "alice", "second-Attempt-77-harbor").await);
}
test_both!(a_spent_reset_token_is_refused);

async fn an_unknown_reset_token_is_refused(backend: Backend) {
    // Arrange: a live reset token, and a verification token (another purpose).
    let app = spawn_app(backend).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let access = app.access_token("alice", PASSWORD).await;
    let live = reset_token(&app, "alice@example.com", 1).await;
    let sent = app
        .post_json("/users/me/verify-email", Some(&access), &json!({}))
        .await;
    assert_eq!(sent.status(), 202);
    let verification = mailbox::mails(&app, 2).await[1].token("/verify-email");

    // Act
    let random = confirm(&app, &random_token(32), NEW_PASSWORD).await;
    let empty = confirm(&app, "", NEW_PASSWORD).await;
    let truncated = confirm(&app, &live[..live.len() - 1], NEW_PASSWORD).await;
    let other_purpose = confirm(&app, &verification, NEW_PASSWORD).await;

    // Assert: all refused alike; the password is unchanged and the live token still works.
    for answer in [random, empty, truncated, other_purpose] {
        assert_bad_token(answer).await;
    }
    assert!(logs_in(&app, "alice", PASSWORD).await);
    assert_eq!(confirm(&app, &live, NEW_PASSWORD).await.status(), 204);
}
test_both!(an_unknown_reset_token_is_refused);

async fn a_weak_new_password_is_a_422_and_leaves_the_token_usable(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let token = reset_token(&app, "alice@example.com", 1).await;

    // Act: too short, common, weak, and the username itself.
    let mut refusals = Vec::new();
    for weak in [
        "Short-1",
        "password1234",
        "aaaaaaaaaaaaaaaa",
        "alice-alice-alice",
    ] {
        refusals.push((weak, confirm(&app, &token, weak).await));
    }
    let strong = confirm(&app, &token, NEW_PASSWORD).await;

    // Assert: each a 422 at body.new_password that does not echo the password; then the same
    // token sets a strong one.
    for (weak, answer) in refusals {
        let (error, text) = only_error_with_text(answer).await;
        assert_eq!(error["loc"], json!(["body", "new_password"]), "{weak}");
        assert!(!text.contains(weak), "{weak} echoed: {text}");
    }
    assert_eq!(strong.status(), 204);
    assert!(logs_in(&app, "alice", NEW_PASSWORD).await);
}
test_both!(a_weak_new_password_is_a_422_and_leaves_the_token_usable);

async fn a_newer_reset_request_kills_the_older_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let older = reset_token(&app, "alice@example.com", 1).await;

    // Act
    let newer = reset_token(&app, "alice@example.com", 2).await;

    // Assert
    assert_ne!(older, newer);
    assert_bad_token(confirm(&app, &older, NEW_PASSWORD).await).await;
    assert!(logs_in(&app, "alice", PASSWORD).await, "unchanged");
    assert_eq!(confirm(&app, &newer, NEW_PASSWORD).await.status(), 204);
}
test_both!(a_newer_reset_request_kills_the_older_token);

async fn a_password_set_by_the_admin_kills_outstanding_reset_tokens(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = admin_token(&app).await;
    let alice = app
        .create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let token = reset_token(&app, "alice@example.com", 1).await;

    // Act
    let patched = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&admin),
            &json!({"password": "admin-Chosen-39-lighthouse"}),
        )
        .await;

    // Assert
    assert_eq!(patched.status(), 200);
    assert_bad_token(confirm(&app, &token, NEW_PASSWORD).await).await;
    assert!(logs_in(&app, "alice", "admin-Chosen-39-lighthouse").await);
}
test_both!(a_password_set_by_the_admin_kills_outstanding_reset_tokens);

async fn a_password_changed_by_the_user_kills_outstanding_reset_tokens(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let access = app.access_token("alice", PASSWORD).await;
    let token = reset_token(&app, "alice@example.com", 1).await;

    // Act
    let changed = app
        .post_json(
            "/users/me/password",
            Some(&access),
            &json!({"current_password": PASSWORD, "new_password": "user-Chosen-58-riverbank"}),
        )
        .await;

    // Assert
    assert_eq!(changed.status(), 200);
    assert_bad_token(confirm(&app, &token, NEW_PASSWORD).await).await;
    assert!(logs_in(&app, "alice", "user-Chosen-58-riverbank").await);
}
test_both!(a_password_changed_by_the_user_kills_outstanding_reset_tokens);

async fn a_disabled_users_reset_token_is_refused(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let admin = admin_token(&app).await;
    let alice = app
        .create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let token = reset_token(&app, "alice@example.com", 1).await;
    let disabled = app
        .patch_json(
            &format!("/admin/users/{alice}"),
            Some(&admin),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status(), 200);

    // Act
    let response = confirm(&app, &token, NEW_PASSWORD).await;

    // Assert: refused, and the password unchanged (seen once the user is enabled again).
    assert_bad_token(response).await;
    app.state.repo.set_disabled(alice, false).await.unwrap();
    assert!(logs_in(&app, "alice", PASSWORD).await);
    assert!(!logs_in(&app, "alice", NEW_PASSWORD).await);
}
test_both!(a_disabled_users_reset_token_is_refused);

async fn an_expired_reset_token_is_refused(backend: Backend) {
    // Arrange: two tokens stored as the server stores them (a hash), one past its expiry.
    let app = spawn_app(backend).await;
    let alice = app
        .create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let expired = random_token(32);
    app.state
        .repo
        .insert_account_token(
            &fingerprint(&expired),
            TokenPurpose::PasswordReset,
            alice,
            None,
            now() - 1,
        )
        .await
        .unwrap();

    // Act
    let refused = confirm(&app, &expired, NEW_PASSWORD).await;

    // Assert: refused; the same token with time left works (only the expiry differed).
    assert_bad_token(refused).await;
    assert!(logs_in(&app, "alice", PASSWORD).await);
    let live = random_token(32);
    app.state
        .repo
        .insert_account_token(
            &fingerprint(&live),
            TokenPurpose::PasswordReset,
            alice,
            None,
            now() + 60,
        )
        .await
        .unwrap();
    assert_eq!(confirm(&app, &live, NEW_PASSWORD).await.status(), 204);
}
test_both!(an_expired_reset_token_is_refused);

async fn reset_links_live_password_reset_ttl_and_are_stored_hashed(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| {
        s.password_reset_ttl = DurationSetting::parse("1m").unwrap();
    })
    .await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;

    // Act
    let asked = now();
    let token = reset_token(&app, "alice@example.com", 1).await;

    // Assert: >= 128 random bits; stored under its hash only; alive ~60 s from the request.
    assert!(token.len() >= 22, "{token} is under 128 bits");
    let repo = &app.state.repo;
    let find = |hash: String, at: i64| async move {
        repo.find_account_token(&hash, TokenPurpose::PasswordReset, at)
            .await
            .unwrap()
    };
    assert!(
        find(token.clone(), now()).await.is_none(),
        "stored as given"
    );
    assert!(find(fingerprint(&token), asked + 55).await.is_some());
    assert!(find(fingerprint(&token), asked + 65).await.is_none());
    // Spending it as at expiry fails and leaves it; it is not a verification token.
    assert!(
        repo.spend_account_token(
            &fingerprint(&token),
            TokenPurpose::PasswordReset,
            asked + 65
        )
        .await
        .unwrap()
        .is_none()
    );
    assert!(
        repo.find_account_token(&fingerprint(&token), TokenPurpose::VerifyEmail, now())
            .await
            .unwrap()
            .is_none()
    );
    let mail = &mailbox::mails(&app, 1).await[0];
    assert!(mail.text.contains("1 minute"), "{}", mail.text);
    assert_eq!(confirm(&app, &token, NEW_PASSWORD).await.status(), 204);
}
test_both!(reset_links_live_password_reset_ttl_and_are_stored_hashed);

async fn reset_links_live_30_minutes_by_default(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;

    // Act
    let asked = now();
    let token = reset_token(&app, "alice@example.com", 1).await;

    // Assert
    let hash = fingerprint(&token);
    let repo = &app.state.repo;
    let alive = |at: i64| {
        let hash = hash.clone();
        async move {
            repo.find_account_token(&hash, TokenPurpose::PasswordReset, at)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(alive(asked + 30 * 60 - 5).await);
    assert!(!alive(asked + 30 * 60 + 5).await);
    let mail = &mailbox::mails(&app, 1).await[0];
    assert!(mail.text.contains("30 minutes"), "{}", mail.text);
}
test_both!(reset_links_live_30_minutes_by_default);

async fn concurrent_confirms_of_one_token_let_exactly_one_win(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let token = reset_token(&app, "alice@example.com", 1).await;
    let passwords: Vec<String> = (0..8).map(|_| unique("Pw-Secret-race")).collect();

    // Act: eight confirmations at once, each with its own password.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(passwords.len()));
    let tasks: Vec<_> = passwords
        .iter()
        .map(|password| {
            let (client, url) = (app.client.clone(), app.url("/password-reset/confirm"));
            let body = json!({"token": token, "new_password": password});
            let barrier = std::sync::Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                let response = client.post(url).json(&body).send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.text().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }

    // Assert: one 204, seven 400s; the winner's password is the one set.
    let winners: Vec<usize> = (0..answers.len())
        .filter(|&i| answers[i].0 == 204)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 204) {
        assert_eq!(*status, 400, "{answers:?}");
        assert_eq!(
            serde_json::from_str::<Value>(body).unwrap(),
            json!({"detail": BAD_TOKEN})
        );
    }
    for (i, password) in passwords.iter().enumerate() {
        assert_eq!(
            logs_in(&app, "alice", password).await,
            i == winners[0],
            "password {i}"
        );
    }
    assert!(!logs_in(&app, "alice", PASSWORD).await);
}
test_both!(concurrent_confirms_of_one_token_let_exactly_one_win);

// ---------------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------------

async fn reset_requests_are_limited_to_5_an_hour_per_client_ip(backend: Backend) {
    // Arrange
    let app = app_behind_proxy(backend, |_| {}).await;

    // Act: six distinct addresses from one client, then another client.
    let mut answers = Vec::new();
    for i in 0..6 {
        answers.push(request_reset_from(&app, "198.51.100.1", &format!("u{i}@example.com")).await);
    }
    let other_client = request_reset_from(&app, "198.51.100.2", "u9@example.com").await;

    // Assert
    let sixth = answers.pop().unwrap();
    for answer in answers {
        assert_requested(answer).await;
    }
    assert_too_many(sixth, 3600).await;
    assert_requested(other_client).await;
}
test_both!(reset_requests_are_limited_to_5_an_hour_per_client_ip);

async fn reset_requests_are_limited_to_3_an_hour_per_address(backend: Backend) {
    // Arrange: one known address, one unknown.
    let app = app_behind_proxy(backend, |_| {}).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;

    // Act: each address four times, every time from another client (and letter case).
    let known = [
        "alice@example.com",
        "Alice@example.com",
        "ALICE@EXAMPLE.COM",
        "alice@Example.com",
    ];
    let mut known_answers = Vec::new();
    let mut unknown_answers = Vec::new();
    for (i, email) in known.iter().enumerate() {
        known_answers.push(request_reset_from(&app, &format!("198.51.100.{i}"), email).await);
        unknown_answers
            .push(request_reset_from(&app, &format!("203.0.113.{i}"), "ghost@example.com").await);
    }
    let another_address = request_reset_from(&app, "198.51.100.3", "other@example.com").await;

    // Assert: the fourth of each refused, counted whether or not the address exists; only the
    // three admitted requests for the known address mailed; the client was not refused.
    for answers in [&mut known_answers, &mut unknown_answers] {
        let fourth = answers.pop().unwrap();
        for answer in answers.drain(..) {
            assert_requested(answer).await;
        }
        assert_too_many(fourth, 3600).await;
    }
    assert_requested(another_address).await;
    assert_eq!(mailbox::settled_count(&app).await, 3);
}
test_both!(reset_requests_are_limited_to_3_an_hour_per_address);

async fn a_bearer_token_buys_no_reset_request_budget(backend: Backend) {
    // Arrange
    let app = app_behind_proxy(backend, |_| {}).await;
    app.create_user("alice", PASSWORD, &[]).await;
    let access = app.access_token("alice", PASSWORD).await;
    let request = |i: usize, bearer: bool| {
        let mut request = app
            .client
            .post(app.url("/password-reset/request"))
            .header(XFF, "198.51.100.7")
            .json(&json!({"email": format!("u{i}@example.com")}));
        if bearer {
            request = request.bearer_auth(&access);
        }
        request.send()
    };

    // Act: three anonymous, then authenticated ones, from one client.
    let mut answers = Vec::new();
    for i in 0..3 {
        answers.push(request(i, false).await.unwrap());
    }
    for i in 3..6 {
        answers.push(request(i, true).await.unwrap());
    }

    // Assert: one budget of five for the client IP.
    let sixth = answers.pop().unwrap();
    for answer in answers {
        assert_requested(answer).await;
    }
    assert_too_many(sixth, 3600).await;
}
test_both!(a_bearer_token_buys_no_reset_request_budget);

async fn reset_and_verification_confirms_are_limited_to_10_a_minute_per_client_ip(
    backend: Backend,
) {
    // Arrange
    let app = app_behind_proxy(backend, |_| {}).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let token = reset_token(&app, "alice@example.com", 1).await;
    let verify_from = |ip: &'static str| {
        app.client
            .post(app.url("/verify-email/confirm"))
            .header(XFF, ip)
            .json(&json!({"token": random_token(32)}))
            .send()
    };

    // Act: ten guesses from one client, then the real token from it; the same on the
    // verification route from another.
    let mut guesses = Vec::new();
    for _ in 0..10 {
        guesses.push(confirm_from(&app, "198.51.100.1", &random_token(32), NEW_PASSWORD).await);
    }
    let eleventh = confirm_from(&app, "198.51.100.1", &token, NEW_PASSWORD).await;
    let mut verify_guesses = Vec::new();
    for _ in 0..10 {
        verify_guesses.push(verify_from("198.51.100.2").await.unwrap());
    }
    let verify_eleventh = verify_from("198.51.100.2").await.unwrap();

    // Assert: the eleventh refused before the token was looked at (it still works from another
    // client).
    for guess in guesses.into_iter().chain(verify_guesses) {
        assert_bad_token(guess).await;
    }
    assert_too_many(eleventh, 60).await;
    assert_too_many(verify_eleventh, 60).await;
    assert!(logs_in(&app, "alice", PASSWORD).await);
    let other_client = confirm_from(&app, "198.51.100.3", &token, NEW_PASSWORD).await;
    assert_eq!(other_client.status(), 204);
}
test_both!(reset_and_verification_confirms_are_limited_to_10_a_minute_per_client_ip);

async fn the_reset_limits_follow_the_settings(backend: Backend) {
    // Arrange: the limits as a bulwark.toml writes them.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bulwark.toml");
    std::fs::write(
        &file,
        r#"
[rate_limits]
password_reset_per_address = "1/hour"
[rate_limits.routes]
"POST /password-reset/request" = "2/hour"
"POST /password-reset/confirm" = "2/minute"
"POST /verify-email/confirm" = "3/minute"
"#,
    )
    .unwrap();
    let loaded = Settings::load(Some(&file)).expect("the settings load");
    let app = app_behind_proxy(backend, |s| {
        s.rate_limits.password_reset_per_address = loaded.rate_limits.password_reset_per_address;
        s.rate_limits.routes = loaded.rate_limits.routes.clone();
    })
    .await;

    // Act
    let same_address = [
        request_reset_from(&app, "198.51.100.1", "ghost@example.com").await,
        request_reset_from(&app, "198.51.100.2", "ghost@example.com").await,
    ];
    let same_client = [
        request_reset_from(&app, "198.51.100.3", "a@example.com").await,
        request_reset_from(&app, "198.51.100.3", "b@example.com").await,
        request_reset_from(&app, "198.51.100.3", "c@example.com").await,
    ];
    let mut confirms = Vec::new();
    for _ in 0..3 {
        confirms.push(confirm_from(&app, "198.51.100.4", "nope", NEW_PASSWORD).await);
    }
    let mut verifies = Vec::new();
    for _ in 0..4 {
        let response = app
            .client
            .post(app.url("/verify-email/confirm"))
            .header(XFF, "198.51.100.5")
            .json(&json!({"token": "nope"}))
            .send()
            .await
            .unwrap();
        verifies.push(response);
    }

    // Assert
    let [first, second] = same_address;
    assert_requested(first).await;
    assert_too_many(second, 3600).await;
    let [a, b, c] = same_client;
    assert_requested(a).await;
    assert_requested(b).await;
    assert_too_many(c, 3600).await;
    let third = confirms.pop().unwrap();
    for answer in confirms {
        assert_bad_token(answer).await;
    }
    assert_too_many(third, 60).await;
    let fourth = verifies.pop().unwrap();
    for answer in verifies {
        assert_bad_token(answer).await;
    }
    assert_too_many(fourth, 60).await;
}
test_both!(the_reset_limits_follow_the_settings);

// ---------------------------------------------------------------------------------------------
// The page a reset link opens
// ---------------------------------------------------------------------------------------------

async fn the_reset_page_is_a_strict_form_with_the_token_escaped(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let hostile = "abc\"><script>alert(1)</script>";

    // Act
    let page = app
        .client
        .get(app.url("/password-reset"))
        .query(&[("token", hostile)])
        .send()
        .await
        .unwrap();

    // Assert: HTML, not cached, scripts from this server only, a CSRF cookie.
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let header = |name: header::HeaderName| {
        headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert!(header(header::CONTENT_TYPE).starts_with("text/html"));
    assert_eq!(header(header::CACHE_CONTROL), "no-store");
    // The token in the address never leaves in a Referer.
    assert_eq!(header(header::REFERRER_POLICY), "no-referrer");
    let csp = header(header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(set_cookie(&page, "csrftoken").is_some(), "a CSRF cookie");
    let html = page.text().await.unwrap();
    // The form posts the token and a CSRF token to the confirmation route.
    assert!(
        html.contains("method=\"post\" action=\"/password-reset/confirm\""),
        "{html}"
    );
    assert!(
        html.contains("type=\"hidden\" name=\"csrf_token\""),
        "{html}"
    );
    assert!(html.contains("type=\"hidden\" name=\"token\""), "{html}");
    assert!(html.contains("name=\"new_password\""), "{html}");
    // The token is escaped, never markup.
    assert!(!html.contains(hostile), "the token was written unescaped");
    assert!(!html.contains("<script>alert"), "{html}");
    assert_eq!(unescape(&hidden_field(&html, "token")), hostile, "{html}");
    // No inline script: every script element loads a file of this server.
    for script in html.match_indices("<script").map(|(i, _)| &html[i..]) {
        let tag = &script[..script.find('>').unwrap() + 1];
        assert!(tag.contains("src=\"/"), "inline script: {tag}");
        assert!(
            script[tag.len()..].starts_with("</script>"),
            "inline script"
        );
    }
}
test_both!(the_reset_page_is_a_strict_form_with_the_token_escaped);

async fn a_reset_form_post_needs_the_pages_csrf_token_and_origin(backend: Backend) {
    // Arrange: the page of a real link, and the page of another browser.
    let app = spawn_app(backend).await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let token = reset_token(&app, "alice@example.com", 1).await;
    let (cookie, csrf_token, token_field) = reset_page(&app, &token).await;
    assert_eq!(token_field, token, "the form carries the link's token");
    let (other_cookie, other_csrf, _) = reset_page(&app, &token).await;
    assert_ne!(other_cookie, cookie);
    let post = |cookie: Option<&str>, csrf: Option<&str>, origin: Option<&str>| {
        let mut fields = vec![("token", token.as_str()), ("new_password", NEW_PASSWORD)];
        if let Some(csrf) = csrf {
            fields.push(("csrf_token", csrf));
        }
        let mut request = app
            .client
            .post(app.url("/password-reset/confirm"))
            .form(&fields);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, format!("csrftoken={cookie}"));
        }
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.send()
    };

    // Act
    let refused = [
        post(Some(&cookie), None, None).await.unwrap(),
        post(Some(&cookie), Some("forged"), None).await.unwrap(),
        post(Some(&cookie), Some(&other_csrf), None).await.unwrap(),
        post(None, Some(&csrf_token), None).await.unwrap(),
        post(
            Some(&cookie),
            Some(&csrf_token),
            Some("https://evil.example"),
        )
        .await
        .unwrap(),
    ];

    // Assert: each refused with nothing changed; then the page's own post works.
    for answer in refused {
        assert_eq!(detail(answer, 403).await, CSRF_REFUSED);
    }
    assert!(logs_in(&app, "alice", PASSWORD).await, "password unchanged");
    let own_origin = app.address.clone();
    let accepted = post(Some(&cookie), Some(&csrf_token), Some(&own_origin))
        .await
        .unwrap();
    assert_eq!(accepted.status(), 204);
    assert!(logs_in(&app, "alice", NEW_PASSWORD).await);
}
test_both!(a_reset_form_post_needs_the_pages_csrf_token_and_origin);

// ---------------------------------------------------------------------------------------------
// The mail
// ---------------------------------------------------------------------------------------------

async fn the_reset_mail_links_under_public_url_and_says_from_where(backend: Backend) {
    // Arrange
    let app = app_behind_proxy(backend, |s| {
        s.public_url = Some("https://accounts.example.test/base".parse().unwrap());
    })
    .await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("Alice.Lovelace@Example.com"))
        .await;

    // Act: asked with another letter case, from a forwarded client.
    let answer = request_reset_from(&app, "203.0.113.77", "alice.lovelace@example.COM").await;
    assert_requested(answer).await;
    let mail = mailbox::mails(&app, 1).await.remove(0);

    // Assert: to the address as stored, from bulwark@<host of public_url>, text and HTML, the
    // link under public_url, what was asked, from which IP, and how to ignore it.
    assert_eq!(mail.to, "Alice.Lovelace@Example.com");
    assert_eq!(mail.from, "bulwark@accounts.example.test");
    assert!(!mail.text.is_empty() && !mail.html.is_empty(), "{mail:?}");
    let token = mail.token("/password-reset");
    let link = mail.link("/password-reset");
    assert_eq!(
        link,
        format!("https://accounts.example.test/base/password-reset?token={token}")
    );
    assert!(
        mail.html.contains(&format!("href=\"{link}\"")),
        "{}",
        mail.html
    );
    for part in [&mail.text, &mail.html] {
        assert!(part.to_lowercase().contains("reset"), "{part}");
        assert!(part.contains("203.0.113.77"), "no client IP: {part}");
        assert!(part.to_lowercase().contains("ignore"), "{part}");
    }
    assert!(
        mail.subject.to_lowercase().contains("password"),
        "{}",
        mail.subject
    );
    assert_eq!(confirm(&app, &token, NEW_PASSWORD).await.status(), 204);
}
test_both!(the_reset_mail_links_under_public_url_and_says_from_where);

async fn the_reset_mail_comes_from_mail_from_when_set(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| {
        s.public_url = Some("https://accounts.example.test".parse().unwrap());
        s.mail_from = Some("Bulwark Accounts <no-reply@mail.example.test>".to_owned());
    })
    .await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;

    // Act
    assert_requested(request_reset(&app, "alice@example.com").await).await;
    let mail = mailbox::mails(&app, 1).await.remove(0);

    // Assert
    assert_eq!(mail.from, "no-reply@mail.example.test");
    assert!(
        mail.link("/password-reset")
            .starts_with("https://accounts.example.test/password-reset?token=")
    );
}
test_both!(the_reset_mail_comes_from_mail_from_when_set);

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

async fn reset_requests_and_completions_are_audited(backend: Backend) {
    // Arrange
    let app = app_behind_proxy(backend, |_| {}).await;
    let admin = admin_token(&app).await;
    let alice = app
        .create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;

    // Act
    assert_requested(request_reset_from(&app, "198.51.100.1", "nobody@example.com").await).await;
    assert_requested(request_reset_from(&app, "198.51.100.2", "alice@example.com").await).await;
    let token = mailbox::mails(&app, 1).await[0].token("/password-reset");
    let confirmed = confirm_from(&app, "198.51.100.3", &token, NEW_PASSWORD).await;
    assert_eq!(confirmed.status(), 204);

    // Assert: one requested event per request (known or not), one completed event; never the
    // token or a password.
    let requested = audit_events(&app, &admin, "password_reset.requested", 2).await;
    assert_eq!(requested.len(), 2, "{requested:?}");
    let for_alice = requested
        .iter()
        .find(|e| e["user_id"] == json!(alice))
        .expect("an event for alice");
    assert_eq!(for_alice["ip"], "198.51.100.2");
    let for_unknown = requested
        .iter()
        .find(|e| e["user_id"].is_null())
        .expect("an event for the unknown address");
    assert_eq!(for_unknown["ip"], "198.51.100.1");
    let completed = audit_events(&app, &admin, "password_reset.completed", 1).await;
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(completed[0]["user_id"], json!(alice));
    assert_eq!(completed[0]["username"], "alice");
    assert_eq!(completed[0]["ip"], "198.51.100.3");
    let everything = app.get("/admin/audit?limit=500", Some(&admin)).await;
    let text = everything.text().await.unwrap();
    for secret in [token.as_str(), NEW_PASSWORD, fingerprint(&token).as_str()] {
        assert!(!text.contains(secret), "the audit trail holds a secret");
    }
}
test_both!(reset_requests_and_completions_are_audited);
