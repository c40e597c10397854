//! POST /token (OAuth2 password flow) and access-token checks on a protected route.

use std::time::{Duration, Instant};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use bulwark_server::{config::PasswordHashing, db::NewUser};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::{Response, header};
use serde_json::{Value, json};

use crate::helpers::{
    BAD_CREDENTIALS, BCRYPT_COST4_PASSWORD1, Backend, INVALID_TOKEN, PASSWORD, TestApp, active_kid,
    assert_unauthorized, claims_for, decode_segment, jwt_parts, now, only_error_with_text,
    spawn_app, spawn_app_with,
};
use crate::test_both;

/// `password1` hashed by passlib/bcrypt (cost 12), as the FastAPI version stored it.
const BCRYPT_PASSWORD1: &str = "$2b$12$KSdB3ZzEjkHS5yun/M1SL.AjvwuKcePLfZt6ppQ7p5CEMn/bnVVAi";

/// Signs `claims` with the app's active key material, under `header`.
fn sign_with_active_key(app: &TestApp, header: &Header, claims: &Value) -> String {
    let key = app.state.keys.ring().active().expect("active key");
    encode(
        header,
        claims,
        &EncodingKey::from_secret(key.expose_secret()).unwrap(),
    )
    .expect("signs")
}

fn hs256_header(kid: Option<String>) -> Header {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("JWT".to_owned());
    header.kid = kid;
    header
}

async fn protected_with_authorization(app: &TestApp, value: &str) -> Response {
    app.client
        .get(app.url("/protected"))
        .header(header::AUTHORIZATION, value)
        .send()
        .await
        .expect("request")
}

fn www_authenticate(response: &Response) -> Option<String> {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn good_credentials_return_a_bearer_token_pair_that_is_not_cached(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let response = app.login("alice", PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let body: Value = response.json().await.unwrap();
    let object = body.as_object().expect("object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "refresh_token", "token_type"]
    );
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    let refresh = body["refresh_token"].as_str().expect("refresh token");
    assert!(
        refresh.len() >= 32,
        "an opaque refresh token of 256 bits or more"
    );
    assert_ne!(refresh, body["access_token"].as_str().unwrap());
}
test_both!(good_credentials_return_a_bearer_token_pair_that_is_not_cached);

async fn the_access_token_is_an_hs256_jwt_with_kid_and_every_registered_claim(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let id = app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let before = now();
    let response = app.login("alice", PASSWORD).await;
    let after = now();

    // Assert
    let body: Value = response.json().await.unwrap();
    let (header, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], json!(active_kid(&app)));
    assert_eq!(
        claims["sub"],
        json!(id.to_string()),
        "sub is the stable user id, as a string"
    );
    let iat = claims["iat"].as_i64().expect("iat");
    assert!((before..=after).contains(&iat));
    assert_eq!(claims["nbf"], json!(iat));
    assert_eq!(claims["exp"], json!(iat + 900));
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert_eq!(claims["iss"], json!(app.settings.jwt_issuer));
    assert_eq!(claims["aud"], json!(app.settings.jwt_audience));
    assert!(claims.get("password").is_none() && claims.get("hashed_password").is_none());
}
test_both!(the_access_token_is_an_hs256_jwt_with_kid_and_every_registered_claim);

async fn every_login_gets_a_fresh_jti_and_refresh_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let first: Value = app.login("alice", PASSWORD).await.json().await.unwrap();
    let second: Value = app.login("alice", PASSWORD).await.json().await.unwrap();

    // Assert
    let jti = |b: &Value| jwt_parts(b["access_token"].as_str().unwrap()).1["jti"].clone();
    assert_ne!(jti(&first), jti(&second));
    assert_ne!(first["refresh_token"], second["refresh_token"]);
}
test_both!(every_login_gets_a_fresh_jti_and_refresh_token);

async fn a_configured_access_token_ttl_sets_expires_in_and_exp(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| {
        s.access_token_ttl = bulwark_server::config::DurationSetting(Duration::from_secs(120));
    })
    .await;
    app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let body: Value = app.login("alice", PASSWORD).await.json().await.unwrap();

    // Assert
    assert_eq!(body["expires_in"], 120);
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
}
test_both!(a_configured_access_token_ttl_sets_expires_in_and_exp);

async fn the_username_is_case_insensitive_at_login(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("Alice", PASSWORD, &[]).await;

    // Act
    let response = app.login("aLICE", PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 200);
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let protected = app.get("/protected", Some(&token)).await;
    assert_eq!(
        protected.json::<Value>().await.unwrap(),
        json!({"message": "Beware, Alice. This is a protected route."})
    );
}
test_both!(the_username_is_case_insensitive_at_login);

async fn the_password_is_case_sensitive(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let response = app.login("alice", &PASSWORD.to_uppercase()).await;

    // Assert
    assert_unauthorized(response, BAD_CREDENTIALS).await;
}
test_both!(the_password_is_case_sensitive);

async fn wrong_password_unknown_user_and_disabled_user_get_the_same_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;
    let bob = app.create_user("bob", PASSWORD, &[]).await;
    assert!(app.state.repo.set_disabled(bob, true).await.unwrap());

    // Act
    let responses = [
        app.login("alice", "not-the-Right-password-9").await,
        app.login("nobody", PASSWORD).await,
        app.login("bob", PASSWORD).await,
    ];

    // Assert
    let mut bodies = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 401);
        assert_eq!(www_authenticate(&response).as_deref(), Some("Bearer"));
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        bodies.push(response.bytes().await.unwrap());
    }
    assert_eq!(
        serde_json::from_slice::<Value>(&bodies[0]).unwrap(),
        json!({"detail": BAD_CREDENTIALS})
    );
    assert_eq!(
        bodies[0], bodies[1],
        "unknown user answers byte for byte like a wrong password"
    );
    assert_eq!(
        bodies[0], bodies[2],
        "disabled user answers byte for byte like a wrong password"
    );
}
test_both!(wrong_password_unknown_user_and_disabled_user_get_the_same_401);

async fn an_empty_password_is_a_422_not_a_login_attempt(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let response = app.login("alice", "").await;

    // Assert
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": [{"type": "missing", "loc": ["body", "password"], "msg": "Field required", "input": null}]})
    );
}
test_both!(an_empty_password_is_a_422_not_a_login_attempt);

/// Timing tests run one at a time, so that the SQLite and PostgreSQL variants do not load each
/// other's measurements.
static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn timed_login(app: &TestApp, username: &str, password: &str) -> Duration {
    let start = Instant::now();
    let response = app.login(username, password).await;
    let elapsed = start.elapsed();
    assert_eq!(response.status(), 401);
    elapsed
}

async fn unknown_user_and_wrong_password_take_about_the_same_time(backend: Backend) {
    // Arrange: production-strength hashing, so that skipping the dummy hash would be obvious
    // (a hash costs tens of milliseconds, the request itself about one).
    let _one_at_a_time = TIMING.lock().await;
    let app = spawn_app_with(backend, |s| {
        s.password_hashing = PasswordHashing {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        };
        s.rate_limits.enabled = false;
    })
    .await;
    app.create_user("alice", PASSWORD, &[]).await;
    // Warm up connections, caches and the blocking pool.
    timed_login(&app, "alice", "wrong-Password-123-x").await;
    timed_login(&app, "nobody", "wrong-Password-123-x").await;

    // Act: interleave the two kinds, alternating which goes first.
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..15 {
        let password = format!("wrong-Password-{i}-x");
        if i % 2 == 0 {
            unknown.push(timed_login(&app, "nobody", &password).await);
            wrong.push(timed_login(&app, "alice", &password).await);
        } else {
            wrong.push(timed_login(&app, "alice", &password).await);
            unknown.push(timed_login(&app, "nobody", &password).await);
        }
    }

    // Assert: compare the fastest of each kind. Other tests running at the same time can only
    // add time to a sample, so the minimum is the cost of the login itself.
    let unknown_min = *unknown.iter().min().unwrap();
    let wrong_min = *wrong.iter().min().unwrap();
    let ratio = unknown_min.as_secs_f64() / wrong_min.as_secs_f64();
    assert!(
        (0.5..=2.0).contains(&ratio),
        "fastest unknown user {unknown_min:?} vs wrong password {wrong_min:?} (ratio {ratio:.2}); \
         unknown {unknown:?}, wrong {wrong:?}"
    );
    // The measurement means something: a login really costs a hash here.
    assert!(
        wrong_min >= Duration::from_millis(5),
        "a wrong password took only {wrong_min:?}"
    );
}
test_both!(unknown_user_and_wrong_password_take_about_the_same_time);

async fn a_missing_username_is_a_422_at_body_username(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app
        .client
        .post(app.url("/token"))
        .form(&[("password", "Secret-Value-That-Must-Not-Echo-1")])
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 422);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("Secret-Value-That-Must-Not-Echo-1"),
        "{text}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"detail": [{"type": "missing", "loc": ["body", "username"], "msg": "Field required", "input": null}]})
    );
}
test_both!(a_missing_username_is_a_422_at_body_username);

async fn a_missing_password_is_a_422_at_body_password(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app
        .client
        .post(app.url("/token"))
        .form(&[("username", "alice")])
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": [{"type": "missing", "loc": ["body", "password"], "msg": "Field required", "input": null}]})
    );
}
test_both!(a_missing_password_is_a_422_at_body_password);

async fn an_empty_form_is_a_422(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app
        .client
        .post(app.url("/token"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let details = body["detail"].as_array().expect("a list of details");
    assert!(!details.is_empty());
    for detail in details {
        assert_eq!(detail["type"], "missing");
        assert!(
            detail["loc"] == json!(["body", "username"])
                || detail["loc"] == json!(["body", "password"]),
            "{detail}"
        );
    }
}
test_both!(an_empty_form_is_a_422);

async fn a_grant_type_other_than_password_is_a_422_that_never_echoes_the_password(
    backend: Backend,
) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let response = app
        .client
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();

    // Assert
    let (error, text) = only_error_with_text(response).await;
    assert!(!text.contains(PASSWORD), "{text}");
    assert_eq!(error["loc"], json!(["body", "grant_type"]));
    assert_eq!(error["input"], "client_credentials");
}
test_both!(a_grant_type_other_than_password_is_a_422_that_never_echoes_the_password);

async fn an_explicit_password_grant_type_and_a_scope_are_accepted(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let response = app
        .client
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("scope", "me items"),
        ])
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
}
test_both!(an_explicit_password_grant_type_and_a_scope_are_accepted);

async fn a_json_body_instead_of_a_form_is_415(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let response = app
        .post_json(
            "/token",
            None,
            &json!({"username": "alice", "password": PASSWORD}),
        )
        .await;

    // Assert
    assert_eq!(response.status(), 415);
    let text = response.text().await.unwrap();
    assert!(!text.contains(PASSWORD));
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"detail": "Unsupported Media Type"})
    );
}
test_both!(a_json_body_instead_of_a_form_is_415);

/// Contract v1.2 (FastAPI's answer): an empty body without `Content-Type` is an empty form, so
/// each missing field is listed in a 422, on `/token` and `/token/refresh` alike.
async fn an_empty_body_without_content_type_lists_each_missing_field(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    for (path, fields) in [
        ("/token", &["username", "password"][..]),
        ("/token/refresh", &["refresh_token"][..]),
    ] {
        // Act
        let response = app.client.post(app.url(path)).send().await.unwrap();

        // Assert
        assert_eq!(response.status(), 422, "{path}");
        let body: Value = response.json().await.unwrap();
        let expected: Vec<Value> = fields
            .iter()
            .map(|f| json!({"type": "missing", "loc": ["body", f], "msg": "Field required", "input": null}))
            .collect();
        assert_eq!(body, json!({"detail": expected}), "{path}");
    }
}
test_both!(an_empty_body_without_content_type_lists_each_missing_field);

/// Regression: on PostgreSQL a NUL in the username answered 500.
async fn a_nul_in_a_form_field_is_a_422_on_every_database(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app
        .client
        .post(app.url("/token"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("username=%C3%B1%00&password={PASSWORD}%00"))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 422);
    let text = response.text().await.unwrap();
    assert!(!text.contains(PASSWORD), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let details = body["detail"].as_array().expect("details");
    assert!(!details.is_empty());
    for detail in details {
        assert_eq!(detail["type"], "string_contains_nul", "{body}");
        assert!(
            [json!(["body", "password"]), json!(["body", "username"])].contains(&detail["loc"]),
            "{body}"
        );
    }
}
test_both!(a_nul_in_a_form_field_is_a_422_on_every_database);

/// A field nobody takes in (an extra OAuth2 field) is not looked at, NUL or not: it never
/// reaches SQL, and the documented schema lets clients send such fields.
async fn a_nul_in_an_ignored_form_field_changes_nothing(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;

    // Act
    let response = app
        .client
        .post(app.url("/token"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!(
            "username=alice&password={PASSWORD}&client_id=%00&x%00=1"
        ))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 200);
}
test_both!(a_nul_in_an_ignored_form_field_changes_nothing);

async fn a_form_without_content_type_is_415(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let body = format!("username=alice&password={PASSWORD}");
    let response = app
        .client
        .post(app.url("/token"))
        .body(body)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 415);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Unsupported Media Type"})
    );
}
test_both!(a_form_without_content_type_is_415);

async fn get_on_token_is_405(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app.get("/token", None).await;

    // Assert
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Method Not Allowed"})
    );
}
test_both!(get_on_token_is_405);

async fn insert_legacy_user(app: &TestApp, name: &str, hash: &str) -> i64 {
    app.state
        .repo
        .create_user(NewUser {
            username: name.to_owned(),
            password_hash: hash.to_owned(),
            roles: Vec::new(),
            disabled: false,
            email: None,
            email_verified: false,
        })
        .await
        .expect("user inserted")
        .id
}

async fn stored_hash(app: &TestApp, name: &str) -> String {
    app.state
        .repo
        .find_credentials(name)
        .await
        .unwrap()
        .expect("user exists")
        .password_hash
}

/// Waits (at most 10 s) for the background re-hash after a login.
async fn wait_for_argon2id(app: &TestApp, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hash = stored_hash(app, name).await;
        if hash.starts_with("$argon2id$") || Instant::now() > deadline {
            return hash;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_legacy_bcrypt_hash_logs_in_and_is_rehashed_to_argon2id(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    insert_legacy_user(&app, "user1", BCRYPT_PASSWORD1).await;

    // Act
    let response = app.login("user1", "password1").await;

    // Assert
    assert_eq!(response.status(), 200);
    let hash = wait_for_argon2id(&app, "user1").await;
    assert!(
        hash.starts_with("$argon2id$"),
        "hash was not upgraded: starts {:?}",
        &hash[..7]
    );
    assert_eq!(
        app.login("user1", "password1").await.status(),
        200,
        "the new hash verifies"
    );
    assert_unauthorized(app.login("user1", "password2").await, BAD_CREDENTIALS).await;
}
test_both!(a_legacy_bcrypt_hash_logs_in_and_is_rehashed_to_argon2id);

/// Regression: the background re-hash after a legacy login wrote unconditionally, so a
/// password changed while it ran was replaced by the old one. Real hashing parameters widen the
/// re-hash's window; the change lands at a sweep of moments across it.
async fn a_password_changed_during_a_rehash_stays_changed(backend: Backend) {
    use bulwark::password::Argon2Params;
    // Arrange
    let app = spawn_app_with(backend, |s| {
        s.password_hashing = PasswordHashing::default();
    })
    .await;
    let params = Argon2Params::OWASP_LOW_MEMORY;
    let new_hash = bulwark::password::PasswordHasher::new(params)
        .expect("hasher")
        .hash(secrecy::SecretString::from(PASSWORD.to_owned()))
        .await
        .expect("hash");
    for trial in 0..24u64 {
        let name = format!("legacy{trial}");
        let id = insert_legacy_user(&app, &name, BCRYPT_COST4_PASSWORD1).await;

        // Act: the legacy login (which re-hashes "password1" in the background) and, a moment
        // later, a password change.
        let login = app.login(&name, "password1");
        let change = async {
            tokio::time::sleep(Duration::from_millis(2 * trial)).await;
            app.state
                .repo
                .set_password_hash(id, new_hash.as_str())
                .await
                .expect("changed");
        };
        let (response, ()) = tokio::join!(login, change);
        // 401 when the change came before the password was checked.
        assert!(matches!(response.status().as_u16(), 200 | 401));
        // The re-hash has finished (or given up) well within this.
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Assert
        assert_eq!(
            stored_hash(&app, &name).await,
            new_hash.as_str(),
            "trial {trial}: the changed password was replaced"
        );
    }
}
test_both!(a_password_changed_during_a_rehash_stays_changed);

async fn every_bcrypt_prefix_verifies(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let digest = BCRYPT_COST4_PASSWORD1.strip_prefix("$2b$").unwrap();
    for (name, prefix) in [
        ("legacy2a", "$2a$"),
        ("legacy2b", "$2b$"),
        ("legacy2y", "$2y$"),
    ] {
        insert_legacy_user(&app, name, &format!("{prefix}{digest}")).await;
    }

    // Act / Assert
    for name in ["legacy2a", "legacy2b", "legacy2y"] {
        assert_eq!(app.login(name, "password1").await.status(), 200, "{name}");
    }
}
test_both!(every_bcrypt_prefix_verifies);

async fn a_wrong_password_against_a_bcrypt_hash_is_401_and_keeps_the_hash(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    insert_legacy_user(&app, "user1", BCRYPT_COST4_PASSWORD1).await;

    // Act
    let response = app.login("user1", "password2").await;

    // Assert
    assert_unauthorized(response, BAD_CREDENTIALS).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stored_hash(&app, "user1").await, BCRYPT_COST4_PASSWORD1);
}
test_both!(a_wrong_password_against_a_bcrypt_hash_is_401_and_keeps_the_hash);

async fn a_garbage_stored_hash_is_a_plain_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    insert_legacy_user(&app, "broken", "plaintext-password1").await;

    // Act
    let response = app.login("broken", "plaintext-password1").await;

    // Assert
    assert_unauthorized(response, BAD_CREDENTIALS).await;
}
test_both!(a_garbage_stored_hash_is_a_plain_401);

async fn a_valid_token_opens_the_protected_route(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let response = app.get("/protected", Some(&token)).await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"message": "Beware, alice. This is a protected route."})
    );
}
test_both!(a_valid_token_opens_the_protected_route);

async fn the_bearer_scheme_is_case_insensitive(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let response = protected_with_authorization(&app, &format!("bearer {token}")).await;

    // Assert
    assert_eq!(response.status(), 200);
}
test_both!(the_bearer_scheme_is_case_insensitive);

async fn no_token_is_401_not_authenticated(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let response = app.get("/protected", None).await;

    // Assert
    assert_unauthorized(response, "Not authenticated").await;
}
test_both!(no_token_is_401_not_authenticated);

async fn a_bearer_header_without_a_token_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let bare = protected_with_authorization(&app, "Bearer").await;
    let blank = protected_with_authorization(&app, "Bearer    ").await;

    // Assert
    assert_unauthorized(bare, "Not authenticated").await;
    assert_unauthorized(blank, "Not authenticated").await;
}
test_both!(a_bearer_header_without_a_token_is_401);

async fn a_basic_authorization_header_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"))
    );

    // Act
    let response = protected_with_authorization(&app, &basic).await;
    let garbage = protected_with_authorization(&app, "Basic xyz").await;

    // Assert
    assert_unauthorized(response, "Not authenticated").await;
    assert_unauthorized(garbage, "Not authenticated").await;
}
test_both!(a_basic_authorization_header_is_401);

async fn a_malformed_token_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act / Assert
    for token in ["garbage", "a.b.c", "e30.e30.", "..", &"A".repeat(9000)] {
        let response = app.get("/protected", Some(token)).await;
        assert_unauthorized(response, INVALID_TOKEN).await;
    }
}
test_both!(a_malformed_token_is_401);

async fn a_token_with_a_tampered_signature_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut sig: Vec<char> = signature.chars().collect();
    sig[5] = if sig[5] == 'A' { 'B' } else { 'A' };
    let tampered = format!("{signed}.{}", sig.into_iter().collect::<String>());

    // Act
    let response = app.get("/protected", Some(&tampered)).await;

    // Assert
    assert_unauthorized(response, INVALID_TOKEN).await;
}
test_both!(a_token_with_a_tampered_signature_is_401);

async fn a_token_with_a_tampered_payload_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (alice, token) = app.user_with_token("alice", &[]).await;
    let segments: Vec<&str> = token.split('.').collect();
    let mut claims = decode_segment(segments[1]);
    claims["roles"] = json!(["admin"]);
    claims["sub"] = json!((alice + 1).to_string());
    let forged = format!(
        "{}.{}.{}",
        segments[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        segments[2]
    );

    // Act
    let response = app.get("/admin/users", Some(&forged)).await;

    // Assert
    assert_unauthorized(response, INVALID_TOKEN).await;
}
test_both!(a_token_with_a_tampered_payload_is_401);

async fn an_alg_none_token_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;
    let header = json!({"alg": "none", "typ": "JWT", "kid": active_kid(&app)});
    let claims = claims_for(&app, alice, "alice", json!({}));
    let unsigned = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );

    // Act / Assert
    for token in [format!("{unsigned}."), unsigned.clone()] {
        let response = app.get("/protected", Some(&token)).await;
        assert_unauthorized(response, INVALID_TOKEN).await;
    }
    let header = json!({"alg": "None", "typ": "JWT", "kid": active_kid(&app)});
    let token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert_unauthorized(app.get("/protected", Some(&token)).await, INVALID_TOKEN).await;
}
test_both!(an_alg_none_token_is_401);

async fn a_token_signed_with_another_algorithm_than_the_keys_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;
    let mut header = hs256_header(Some(active_kid(&app)));
    header.alg = Algorithm::HS512;
    let token = sign_with_active_key(&app, &header, &claims_for(&app, alice, "alice", json!({})));

    // Act
    let response = app.get("/protected", Some(&token)).await;

    // Assert
    assert_unauthorized(response, INVALID_TOKEN).await;
}
test_both!(a_token_signed_with_another_algorithm_than_the_keys_is_401);

async fn a_correctly_forged_token_is_accepted_so_the_negative_cases_are_meaningful(
    backend: Backend,
) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;
    let token = sign_with_active_key(
        &app,
        &hs256_header(Some(active_kid(&app))),
        &claims_for(&app, alice, "alice", json!({})),
    );

    // Act
    let response = app.get("/protected", Some(&token)).await;

    // Assert
    assert_eq!(response.status(), 200);
}
test_both!(a_correctly_forged_token_is_accepted_so_the_negative_cases_are_meaningful);

async fn a_token_with_an_unknown_or_missing_kid_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;
    let claims = claims_for(&app, alice, "alice", json!({}));
    let unknown =
        sign_with_active_key(&app, &hs256_header(Some("no-such-kid".to_owned())), &claims);
    let missing = sign_with_active_key(&app, &hs256_header(None), &claims);

    // Act / Assert
    for token in [unknown, missing] {
        assert_unauthorized(app.get("/protected", Some(&token)).await, INVALID_TOKEN).await;
    }
}
test_both!(a_token_with_an_unknown_or_missing_kid_is_401);

async fn a_token_signed_with_another_key_under_the_right_kid_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;
    let other_key = bulwark::secret::random_bytes(32);
    let token = encode(
        &hs256_header(Some(active_kid(&app))),
        &claims_for(&app, alice, "alice", json!({})),
        &EncodingKey::from_secret(&other_key).unwrap(),
    )
    .unwrap();

    // Act
    let response = app.get("/protected", Some(&token)).await;

    // Assert
    assert_unauthorized(response, INVALID_TOKEN).await;
}
test_both!(a_token_signed_with_another_key_under_the_right_kid_is_401);

async fn an_expired_token_is_401(backend: Backend) {
    // Arrange: expired two minutes ago, beyond any allowed leeway (at most 60 s).
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;
    let t = now();
    let claims = claims_for(
        &app,
        alice,
        "alice",
        json!({"iat": t - 1000, "nbf": t - 1000, "exp": t - 120}),
    );
    let token = sign_with_active_key(&app, &hs256_header(Some(active_kid(&app))), &claims);

    // Act
    let response = app.get("/protected", Some(&token)).await;

    // Assert
    assert_unauthorized(response, INVALID_TOKEN).await;
}
test_both!(an_expired_token_is_401);

async fn a_token_that_is_not_yet_valid_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;
    let t = now();
    let claims = claims_for(
        &app,
        alice,
        "alice",
        json!({"nbf": t + 120, "exp": t + 1000}),
    );
    let token = sign_with_active_key(&app, &hs256_header(Some(active_kid(&app))), &claims);

    // Act
    let response = app.get("/protected", Some(&token)).await;

    // Assert
    assert_unauthorized(response, INVALID_TOKEN).await;
}
test_both!(a_token_that_is_not_yet_valid_is_401);

async fn a_token_with_a_wrong_issuer_or_audience_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;
    let header = hs256_header(Some(active_kid(&app)));

    // Act / Assert
    for overrides in [
        json!({"iss": "https://evil.example"}),
        json!({"aud": "another-api"}),
        json!({"aud": ["another-api"]}),
    ] {
        let token = sign_with_active_key(
            &app,
            &header,
            &claims_for(&app, alice, "alice", overrides.clone()),
        );
        let response = app.get("/protected", Some(&token)).await;
        assert_eq!(response.status(), 401, "{overrides}");
        assert_unauthorized(response, INVALID_TOKEN).await;
    }
}
test_both!(a_token_with_a_wrong_issuer_or_audience_is_401);

async fn a_token_missing_a_registered_claim_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;
    let header = hs256_header(Some(active_kid(&app)));

    // Act / Assert
    for claim in ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"] {
        let mut claims = claims_for(&app, alice, "alice", json!({}));
        claims.as_object_mut().unwrap().remove(claim);
        let token = sign_with_active_key(&app, &header, &claims);
        let response = app.get("/protected", Some(&token)).await;
        assert_eq!(response.status(), 401, "without {claim}");
        assert_unauthorized(response, INVALID_TOKEN).await;
    }
}
test_both!(a_token_missing_a_registered_claim_is_401);

async fn a_token_naming_an_external_key_source_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let alice = app.create_user("alice", PASSWORD, &[]).await;
    let claims = claims_for(&app, alice, "alice", json!({}));
    let mut jku = hs256_header(Some(active_kid(&app)));
    jku.jku = Some("https://evil.example/jwks.json".to_owned());
    let mut x5u = hs256_header(Some(active_kid(&app)));
    x5u.x5u = Some("https://evil.example/cert.pem".to_owned());

    // Act / Assert
    for header in [jku, x5u] {
        let token = sign_with_active_key(&app, &header, &claims);
        assert_unauthorized(app.get("/protected", Some(&token)).await, INVALID_TOKEN).await;
    }
}
test_both!(a_token_naming_an_external_key_source_is_401);

async fn a_token_of_another_server_with_another_master_secret_is_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend.clone()).await;
    let other = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;
    let (_, foreign) = other.user_with_token("alice", &[]).await;

    // Act
    let response = app.get("/protected", Some(&foreign)).await;

    // Assert
    assert_unauthorized(response, INVALID_TOKEN).await;
}
test_both!(a_token_of_another_server_with_another_master_secret_is_401);

async fn an_access_token_in_the_query_string_is_not_accepted(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let response = app
        .get(&format!("/protected?access_token={token}"), None)
        .await;

    // Assert
    assert_unauthorized(response, "Not authenticated").await;
}
test_both!(an_access_token_in_the_query_string_is_not_accepted);

async fn a_refresh_token_is_not_an_access_token(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    app.create_user("alice", PASSWORD, &[]).await;
    let body: Value = app.login("alice", PASSWORD).await.json().await.unwrap();

    // Act
    let response = app.get("/protected", body["refresh_token"].as_str()).await;

    // Assert
    assert_unauthorized(response, INVALID_TOKEN).await;
}
test_both!(a_refresh_token_is_not_an_access_token);
