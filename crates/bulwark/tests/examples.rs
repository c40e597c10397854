//! The examples, started as their users start them (a process on a free port) and checked over
//! HTTP. `QUICKSTART_BIN` tests another build of the quickstart (CI builds it as a crate outside
//! this workspace would, see `scripts/outside-quickstart.sh`).

mod common;

use std::path::PathBuf;

use common::{example, start};

const ALICE: &str = "correct horse battery staple";
const ADMIN: &str = "admin: a long passphrase";

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
        .post(format!("{base}/login"))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .expect("login answered")
}

async fn detail(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.expect("JSON body");
    body["detail"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_quickstart_logs_in_guards_roles_limits_logins_and_refuses_forged_writes() {
    let binary =
        std::env::var_os("QUICKSTART_BIN").map_or_else(|| example("quickstart"), PathBuf::from);
    let app = start(
        binary,
        &[("ALICE_PASSWORD", ALICE), ("ADMIN_PASSWORD", ADMIN)],
    );
    let base = app.base.as_str();
    let http = client();

    // A wrong password and an unknown user get the same answer (attempts 1 and 2).
    for (user, password) in [("alice", "wrong password"), ("nobody", ALICE)] {
        let refused = login(base, user, password).await;
        assert_eq!(refused.status(), 401);
        assert_eq!(refused.headers()["www-authenticate"], "Bearer");
        assert_eq!(detail(refused).await, "Incorrect username or password");
    }

    // The OAuth2 token response, and the session cookie (attempts 3 and 4).
    let alice = login(base, "alice", ALICE).await;
    assert_eq!(alice.status(), 200);
    assert_eq!(alice.headers()["cache-control"], "no-store");
    assert_eq!(alice.headers()["x-content-type-options"], "nosniff");
    let cookie = alice.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("session=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let body: serde_json::Value = alice.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    let alice_token = body["access_token"].as_str().unwrap().to_owned();
    let admin = login(base, "admin", ADMIN).await;
    let admin_cookie = admin.headers()["set-cookie"].to_str().unwrap().to_owned();
    let admin_cookie = admin_cookie.split(';').next().unwrap().to_owned();
    let admin_token: serde_json::Value = admin.json().await.unwrap();
    let admin_token = admin_token["access_token"].as_str().unwrap().to_owned();

    // 401 without a token or with a forged one, 200 with one.
    let anonymous = http.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(detail(anonymous).await, "Not authenticated");
    let forged = http
        .get(format!("{base}/me"))
        .bearer_auth(format!("{alice_token}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let me = http
        .get(format!("{base}/me"))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.text().await.unwrap(), "hello, alice");

    // The role: 403 for alice, 200 for the admin.
    let not_admin = http
        .post(format!("{base}/admin"))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert_eq!(not_admin.status(), 403);
    assert_eq!(detail(not_admin).await, "Insufficient permissions");
    let admin_bearer = http
        .post(format!("{base}/admin"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(admin_bearer.status(), 200);

    // CSRF: the admin's cookie alone, as a forged cross-site form would send it, is refused.
    let forged_write = http
        .post(format!("{base}/admin"))
        .header("cookie", &admin_cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged_write.status(), 403);
    assert_eq!(detail(forged_write).await, "CSRF token missing or invalid");
    // ...while a read with the cookie works.
    let cookie_read = http
        .get(format!("{base}/me"))
        .header("cookie", &admin_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(cookie_read.status(), 200);

    // Login attempts: 5 a minute per client IP; the sixth is refused before any hashing.
    assert_eq!(login(base, "alice", "guess").await.status(), 401);
    let limited = login(base, "alice", ALICE).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
}

/// The user-written store of `examples/custom_store.rs` passes the conformance suite.
#[cfg(feature = "testing")]
#[test]
fn the_custom_store_example_passes_the_conformance_suite() {
    let output = std::process::Command::new(example("custom_store"))
        .output()
        .expect("custom_store runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("passes"));
}
