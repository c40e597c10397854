//! `examples/guide.rs`, the FastAPI security guide's app rebuilt with bulwark, started as a
//! process on a free port and checked over HTTP: one test per practice of the guide.
#![cfg(feature = "sanitize")] // the example's `[[example]]` requires it

mod common;

use std::process::Command;

use common::{Running, example, start};
use serde_json::{Value, json};

const USER1: &str = "correct horse battery staple";
const ADMIN: &str = "admin: a long passphrase";

/// The guide's app with its two users.
fn guide() -> Running {
    start(
        example("guide"),
        &[("USER1_PASSWORD", USER1), ("ADMIN_PASSWORD", ADMIN)],
    )
}

fn client() -> reqwest::Client {
    // The workspace's one TLS provider; reqwest brings none (crates/bulwark-audit/Cargo.toml).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn login(base: &str, username: &str, password: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/token"))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .expect("login answered")
}

/// The access token of a successful login.
async fn token(base: &str, username: &str, password: &str) -> String {
    let response = login(base, username, password).await;
    assert_eq!(response.status(), 200, "login of {username}");
    let body: Value = response.json().await.expect("JSON body");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

async fn get(base: &str, path: &str, bearer: &str) -> reqwest::Response {
    client()
        .get(format!("{base}{path}"))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("answered")
}

async fn post_item(base: &str, bearer: &str, item: &Value) -> reqwest::Response {
    client()
        .post(format!("{base}/items/"))
        .bearer_auth(bearer)
        .json(item)
        .send()
        .await
        .expect("answered")
}

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

/// `name=value` of a response's `Set-Cookie` for the cookie `name`.
fn cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set"))
        .to_owned()
}

#[tokio::test]
async fn validation_answers_fastapi_shaped_422s_listing_every_broken_rule() {
    let app = guide();
    let base = app.base.as_str();
    let user1 = token(base, "user1", USER1).await;

    // A missing field: pydantic's `missing`, located in the body.
    let missing = post_item(base, &user1, &json!({ "name": "lamp" })).await;
    assert_eq!(missing.status(), 422);
    let detail = &json(missing).await["detail"];
    assert_eq!(detail[0]["type"], "missing");
    assert_eq!(detail[0]["loc"], json!(["body", "price"]));
    assert_eq!(detail[0]["msg"], "Field required");

    // The `Validated` rules: every broken one listed at once.
    let broken = post_item(base, &user1, &json!({ "name": "", "price": -1.0 })).await;
    assert_eq!(broken.status(), 422);
    let detail = json(broken).await["detail"].clone();
    let kinds: Vec<_> = detail
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [json!("string_too_short"), json!("greater_than_equal")]
    );
    assert_eq!(detail[0]["loc"], json!(["body", "name"]));
    assert_eq!(detail[1]["loc"], json!(["body", "price"]));
    assert_eq!(detail[1]["ctx"], json!({ "ge": 0.0 }));

    // Mass assignment: a field the model does not declare is refused, not ignored.
    let owner = json!({ "name": "lamp", "price": 1.0, "owner": "admin" });
    let extra = post_item(base, &user1, &owner).await;
    assert_eq!(extra.status(), 422);
    assert_eq!(json(extra).await["detail"][0]["type"], "extra_forbidden");

    // Query parameters: `limit` between 1 and 100, as `Query(ge=1, le=100)`.
    let limit = get(base, "/items/?limit=101", &user1).await;
    assert_eq!(limit.status(), 422);
    let detail = json(limit).await["detail"][0].clone();
    assert_eq!(detail["type"], "less_than_equal");
    assert_eq!(detail["loc"], json!(["query", "limit"]));
    let not_a_number = get(base, "/items/?limit=ten", &user1).await;
    assert_eq!(json(not_a_number).await["detail"][0]["type"], "int_parsing");

    // A valid item is created, and nothing was stored by the refused ones.
    let created = post_item(
        base,
        &user1,
        &json!({ "name": "lamp", "price": 10.0, "tax": 2.5 }),
    )
    .await;
    assert_eq!(created.status(), 201);
    assert_eq!(json(created).await["price_with_tax"], 12.5);
    let listed = json(get(base, "/items/?q=lam", &user1).await).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn the_login_is_limited_to_five_attempts_a_minute_then_429() {
    let app = guide();
    let base = app.base.as_str();

    // The OAuth2 token response (attempt 1).
    let ok = login(base, "user1", USER1).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["cache-control"], "no-store");
    let body = json(ok).await;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);

    // A wrong password and an unknown user get the same 401 (attempts 2 to 5).
    for (user, password) in [
        ("user1", "wrong"),
        ("nobody", USER1),
        ("admin", "guess"),
        ("user1", "guess again"),
    ] {
        let refused = login(base, user, password).await;
        assert_eq!(refused.status(), 401);
        assert_eq!(refused.headers()["www-authenticate"], "Bearer");
        assert_eq!(
            json(refused).await["detail"],
            "Incorrect username or password"
        );
    }

    // The sixth attempt is refused before any hashing, even with the right password.
    let limited = login(base, "user1", USER1).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    // Other routes keep their own budget.
    assert_eq!(
        client()
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn no_token_is_401_and_a_missing_role_is_403() {
    let app = guide();
    let base = app.base.as_str();
    let http = client();

    let anonymous = http
        .get(format!("{base}/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(json(anonymous).await["detail"], "Not authenticated");
    let forged = get(base, "/protected", "not.a.token").await;
    assert_eq!(forged.status(), 401);
    // The pipeline answers before the body is even parsed.
    let anonymous_write = http
        .post(format!("{base}/items/"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_write.status(), 401);

    let user1 = token(base, "user1", USER1).await;
    let admin = token(base, "admin", ADMIN).await;
    let protected = json(get(base, "/protected", &user1).await).await;
    assert_eq!(
        protected["message"],
        "Beware, user1. This is a protected route."
    );

    let not_admin = get(base, "/admin/users", &user1).await;
    assert_eq!(not_admin.status(), 403);
    assert_eq!(json(not_admin).await["detail"], "Insufficient permissions");
    let users = get(base, "/admin/users", &admin).await;
    assert_eq!(users.status(), 200);
    let names: Vec<_> = json(users)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(names, [json!("admin"), json!("user1")]);

    // Object level: the admin's item is a 404 for user1; user1's item is visible to the admin.
    let admins = json(post_item(base, &admin, &json!({ "name": "key", "price": 1.0 })).await).await;
    let users = json(post_item(base, &user1, &json!({ "name": "pen", "price": 1.0 })).await).await;
    let hidden = get(base, &format!("/items/{}", admins["id"]), &user1).await;
    assert_eq!(hidden.status(), 404);
    assert_eq!(json(hidden).await["detail"], "Item not found");
    let seen = get(base, &format!("/items/{}", users["id"]), &admin).await;
    assert_eq!(json(seen).await["owner"], "user1");
}

#[tokio::test]
async fn an_xss_payload_is_stored_sanitized() {
    let app = guide();
    let base = app.base.as_str();
    let user1 = token(base, "user1", USER1).await;

    let payload = concat!(
        r#"<p onclick="steal()">Hi <a href="javascript:alert(1)">there</a></p>"#,
        r#"<script>alert(document.cookie)</script><img src=x onerror=alert(1)>"#,
        r#"<a href="https://example.com">ok</a>"#,
    );
    let item = json!({ "name": "xss", "description": payload, "price": 1.0 });
    let created = post_item(base, &user1, &item).await;
    assert_eq!(created.status(), 201);
    let created = json(created).await;
    let expected = concat!(
        "<p>Hi <a rel=\"noopener noreferrer\">there</a></p>",
        "<a href=\"https://example.com\" rel=\"noopener noreferrer\">ok</a>",
    );
    assert_eq!(created["description"], expected);

    // What is stored is the sanitized form.
    let stored = json(get(base, &format!("/items/{}", created["id"]), &user1).await).await;
    assert_eq!(stored["description"], expected);
}

#[tokio::test]
async fn a_cookie_authenticated_write_needs_the_token_from_csrf_token() {
    let app = guide();
    let base = app.base.as_str();
    let http = client();
    let logged_in = login(base, "user1", USER1).await;
    let session = cookie(&logged_in, "session");
    let item = json!({ "name": "csrf", "price": 1.0 });

    // The session cookie alone, as a forged cross-site form would send it: refused.
    let forged = http
        .post(format!("{base}/items/"))
        .header("cookie", &session)
        .json(&item)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(
        json(forged).await["detail"],
        "CSRF token missing or invalid"
    );
    // ...while a read with the cookie works.
    let read = http
        .get(format!("{base}/protected"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);

    // The page's own script fetches a token (and its cookie), then sends it back.
    let issued = http
        .get(format!("{base}/csrf-token"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 200);
    let csrf_cookie = cookie(&issued, "csrftoken");
    let csrf_token = json(issued).await["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookies = format!("{session}; {csrf_cookie}");
    let with_token = http
        .post(format!("{base}/items/"))
        .header("cookie", &cookies)
        .header("x-csrf-token", &csrf_token)
        .json(&item)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 201);
    assert_eq!(json(with_token).await["owner"], "user1");

    // A token with another cookie, or from another origin, is refused.
    let other_cookie = http
        .post(format!("{base}/items/"))
        .header("cookie", format!("{session}; csrftoken=planted"))
        .header("x-csrf-token", &csrf_token)
        .json(&item)
        .send()
        .await
        .unwrap();
    assert_eq!(other_cookie.status(), 403);
    let cross_site = http
        .post(format!("{base}/items/"))
        .header("cookie", &cookies)
        .header("x-csrf-token", &csrf_token)
        .header("origin", "https://evil.example")
        .json(&item)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
}

#[tokio::test]
async fn a_token_outlives_a_key_rotation_but_not_the_revocation_of_its_key() {
    let app = guide();
    let base = app.base.as_str();
    let http = client();
    let before = token(base, "user1", USER1).await;
    let admin = token(base, "admin", ADMIN).await;
    let kid_of = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();

    // Only an admin rotates.
    let refused = http
        .post(format!("{base}/admin/keys/rotate"))
        .bearer_auth(&before)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let rotated = http
        .post(format!("{base}/admin/keys/rotate"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let rotated = json(rotated).await;
    let (active, old) = (
        rotated["active"].as_str().unwrap(),
        rotated["verifying"].as_str().unwrap(),
    );
    assert_eq!(kid_of(&before), old);
    assert_ne!(active, old);

    // The token signed before the rotation still verifies; new ones use the new key.
    assert_eq!(get(base, "/protected", &before).await.status(), 200);
    let after = token(base, "user1", USER1).await;
    assert_eq!(kid_of(&after), active);

    // Revoking the old key ends its tokens at once (the admin's own included).
    let revoked = http
        .delete(format!("{base}/admin/keys/{old}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let dead = get(base, "/protected", &before).await;
    assert_eq!(dead.status(), 401);
    assert_eq!(dead.headers()["www-authenticate"], "Bearer");
    assert_eq!(get(base, "/admin/users", &admin).await.status(), 401);
    assert_eq!(get(base, "/protected", &after).await.status(), 200);

    // An unknown key is a 404.
    let admin = token(base, "admin", ADMIN).await;
    let unknown = http
        .delete(format!("{base}/admin/keys/no-such-key"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = guide();
    let base = app.base.as_str();
    let http = client();
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    let unauthorized = http.get(format!("{base}/protected")).send().await.unwrap();
    let not_found = http
        .get(format!("{base}/no/such/route"))
        .send()
        .await
        .unwrap();
    for response in [&health, &unauthorized, &not_found] {
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cross-origin-opener-policy"], "same-origin");
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
        assert_eq!(headers["cache-control"], "no-store");
        assert!(headers.contains_key("x-request-id"));
        assert!(!headers.contains_key("server"));
        // Plain HTTP: no HSTS (see the HTTPS test).
        assert!(!headers.contains_key("strict-transport-security"));
    }
    assert_eq!(health.status(), 200);
    assert_eq!(json(health).await, json!({ "status": "ok" }));
    assert_eq!(not_found.status(), 404);
    assert_eq!(json(not_found).await, json!({ "detail": "Not Found" }));
}

#[test]
fn the_guides_fallback_secret_cannot_start_the_app() {
    // app.py's `JWT_SECRET` fallback, published with the guide.
    let published = "anchor-benchmark-secret-change-me-0123456789abcdef";
    let output = Command::new(example("guide"))
        .env("ADDR", "127.0.0.1:0")
        .env("GUIDE_MASTER_SECRET", published)
        .output()
        .expect("the example runs");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "it must not listen");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("well-known example value"), "{stderr}");

    let short = Command::new(example("guide"))
        .env("ADDR", "127.0.0.1:0")
        .env("GUIDE_MASTER_SECRET", "too short")
        .output()
        .expect("the example runs");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 32 bytes"));
}

/// HTTPS (feature `dev-certs`): HSTS on the answers, a `Secure` session cookie, and no HTTP
/// answer to plain HTTP on the TLS port.
#[cfg(feature = "dev-certs")]
#[tokio::test]
async fn over_https_answers_carry_hsts_and_the_session_cookie_is_secure() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let app = start(
        example("guide"),
        &[("GUIDE_TLS", "1"), ("USER1_PASSWORD", USER1)],
    );
    let addr = app
        .base
        .strip_prefix("https://")
        .expect("an https:// address");

    let body = format!("username=user1&password={}", USER1.replace(' ', "+"));
    let request = format!(
        "POST /token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = tls::exchange(addr, request.as_bytes())
        .await
        .to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(
        answer.contains("\r\nstrict-transport-security: max-age=63072000; includesubdomains\r\n"),
        "{answer}"
    );
    let cookie = answer
        .lines()
        .find(|l| l.starts_with("set-cookie: session="))
        .expect("the session cookie");
    assert!(
        cookie.contains("; secure") && cookie.contains("; httponly"),
        "{cookie}"
    );

    // Plain HTTP to the TLS port: the handshake fails and no HTTP answer comes back.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
}

#[cfg(feature = "dev-certs")]
mod tls {
    use std::sync::Arc;

    use rustls::{
        DigitallySignedStruct, SignatureScheme,
        client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
        pki_types::{CertificateDer, ServerName, UnixTime},
    };
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Trusts the certificate the example made at start-up (self-signed: nothing to chain it
    /// to), while still checking the handshake's signatures with it.
    #[derive(Debug)]
    struct DevCertificate(Arc<CryptoProvider>);

    impl ServerCertVerifier for DevCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// Sends `request` over TLS to `addr` and reads the answer until the server closes.
    pub(super) async fn exchange(addr: &str, request: &[u8]) -> String {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DevCertificate(provider)))
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        let name = ServerName::try_from("localhost").expect("a server name");
        let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        stream.write_all(request).await.expect("request sent");
        let mut answer = Vec::new();
        // A server may close without `close_notify`; what was read is the answer.
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }
}
