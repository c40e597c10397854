//! Operability: redacted logs, request ids, Prometheus metrics, the audit trail,
//! `bulwark check` and the start-up banner.
//!
//! The log tests run the real binary with its standard error captured to a file (both
//! `log_format`s, `RUST_LOG=debug,bulwark=trace,bulwark_server=trace`), drive a session full of known secrets
//! and then search the whole log for each of them. The metric, request-id and audit tests run
//! the app in-process; `bulwark check` and the banner run the binary.
//!
//! The metrics are parsed with `prometheus-parse`. It is a lenient, regex-based parser that
//! skips lines it cannot read, so [`Scrape::parse`] also requires every line to be understood;
//! its one known gap (a label value holding `{`, as the route template `/items/{item_id}`
//! does) is checked on the raw text instead.
//!
//! Not tested here: `key.revoked` and the CLI's audit events (`bulwark keys revoke`, `users
//! disable`, ...), the hourly purge (only the one at start-up), and
//! `bulwark_rate_limit_store_errors_total` moving (it needs Redis to fail mid-test).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    os::unix::fs::PermissionsExt as _,
    time::{Duration, Instant},
};

use reqwest::{Response, header};
use serde_json::{Value, json};

use crate::{
    helpers::{
        Backend, Http, PASSWORD, XFF, client, fresh_database_url, set_cookie, spawn_app,
        spawn_app_with, unique,
    },
    process::{self, BinEnv},
    test_both,
};

/// A token pair from `/token` or `/token/refresh`.
#[derive(Debug, Clone)]
struct Pair {
    access: String,
    refresh: String,
}

impl Pair {
    /// A good login: the token pair.
    async fn login(http: &Http, ip: Option<&str>, username: &str, password: &str) -> Self {
        let response = http.login(ip, username, password).await;
        assert_eq!(response.status(), 200, "login of {username}");
        Self::of(response).await
    }

    async fn of(response: Response) -> Self {
        let body: Value = response.json().await.expect("token JSON");
        Self {
            access: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }
}

fn request_id(response: &Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .expect("an X-Request-Id header")
        .to_str()
        .expect("ASCII")
        .to_owned()
}

/// A free TCP port on loopback (bound and released: good enough for a test).
fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], process::free_port()))
}

// ---------------------------------------------------------------------------------------------
// 1. Log redaction.
// ---------------------------------------------------------------------------------------------

/// Labelled secrets to look for.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, label: impl Into<String>, value: &str) {
        let label = label.into();
        assert!(
            value.len() >= 16,
            "{label} is too short to search for safely"
        );
        self.0.push((label, value.to_owned()));
    }

    /// A JWT, and its signature on its own.
    fn jwt(&mut self, label: &str, token: &str) {
        self.add(label, token);
        let signature = token.rsplit('.').next().expect("a JWT");
        self.add(format!("{label} (signature)"), signature);
    }

    /// A PHC string, and its salt and digest on their own.
    fn hash(&mut self, label: &str, hash: &str) {
        self.add(label, hash);
        let mut parts = hash.rsplit('$');
        self.add(format!("{label} (digest)"), parts.next().expect("digest"));
        self.add(format!("{label} (salt)"), parts.next().expect("salt"));
    }

    /// Panics naming every secret found in `text`, with the lines that hold it.
    fn assert_absent(&self, text: &str, what: &str) {
        let found: Vec<String> = self
            .0
            .iter()
            .filter(|(_, value)| text.contains(value.as_str()))
            .map(|(label, value)| {
                let lines: Vec<&str> = text.lines().filter(|l| l.contains(value)).collect();
                format!("{label}:\n    {}", lines.join("\n    "))
            })
            .collect();
        assert!(
            found.is_empty(),
            "{what} holds {} secret(s):\n{}",
            found.len(),
            found.join("\n")
        );
    }
}

/// Password hashes as stored, read through the repository.
async fn stored_hashes(database_url: &str, users: &[&str]) -> Vec<(String, String)> {
    let repo = bulwark_server::db::connect(database_url)
        .await
        .expect("database");
    let mut out = Vec::new();
    for user in users {
        let credentials = repo
            .find_credentials(user)
            .await
            .expect("query")
            .expect("the user exists");
        out.push(((*user).to_owned(), credentials.password_hash));
    }
    out
}

/// Drives a session full of secrets against the real binary, then searches its whole log.
async fn logs_never_hold_secrets(backend: Backend, format: &str) {
    // Arrange
    let env = BinEnv::new(backend).await;
    let mut command = env.command(&["serve", "--bind", "127.0.0.1:0"]);
    command
        .env("RUST_LOG", "debug,bulwark=trace,bulwark_server=trace")
        .env("BULWARK_LOG_FORMAT", format)
        .env("BULWARK_ALLOW_SIGNUP", "true")
        .env("BULWARK_RATE_LIMITS__LOGIN_PER_IP", "1000/minute")
        .env("BULWARK_RATE_LIMITS__LOGIN_PER_USERNAME", "1000/minute");
    let server = env.serve(command).await;
    let http = Http::new(server.base("http"));
    let mut secrets = Secrets::default();
    secrets.add("master secret", &env.master_secret);
    let admin_password = std::fs::read_to_string(env.data_dir().join("initial-admin-password"))
        .expect("first-start password file")
        .trim()
        .to_owned();
    secrets.add("first-start admin password", &admin_password);

    // Act: the admin logs in, creates alice with a password; bob signs up.
    let admin = Pair::login(&http, None, "admin", &admin_password).await;
    secrets.jwt("admin access token", &admin.access);
    secrets.add("admin refresh token", &admin.refresh);
    let alice_password = unique("Pw-Secret-alice");
    secrets.add("alice's password", &alice_password);
    let created = http
        .post("/admin/users")
        .bearer_auth(&admin.access)
        .json(&json!({"username": "alice", "password": alice_password, "roles": ["editor"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let alice_id = created.json::<Value>().await.unwrap()["id"].clone();
    let bob_password = unique("Pw-Secret-bob");
    secrets.add("bob's password", &bob_password);
    let signup = http
        .post("/users/signup")
        .json(&json!({"username": "bob", "password": bob_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 201);
    // The hashes of the first passwords (alice's changes below).
    for (user, hash) in stored_hashes(&env.database_url, &["admin", "alice", "bob"]).await {
        secrets.hash(&format!("{user}'s password hash"), &hash);
    }

    // Failed logins: a wrong password, an unknown user.
    let wrong = unique("Pw-Secret-wrong");
    secrets.add("a wrong password", &wrong);
    assert_eq!(http.login(None, "alice", &wrong).await.status(), 401);
    let unknown = unique("Pw-Secret-unknown");
    secrets.add("an unknown user's password", &unknown);
    assert_eq!(http.login(None, "mallory", &unknown).await.status(), 401);

    // Refresh, then reuse of the spent refresh token (JSON, then form).
    let first = Pair::login(&http, None, "alice", &alice_password).await;
    let login_id = {
        let response = http.login(None, "alice", &alice_password).await;
        let id = request_id(&response);
        let pair = Pair::of(response).await;
        secrets.jwt("alice's second access token", &pair.access);
        secrets.add("alice's second refresh token", &pair.refresh);
        id
    };
    secrets.jwt("alice's access token", &first.access);
    secrets.add("alice's refresh token", &first.refresh);
    let refreshed = http
        .post("/token/refresh")
        .json(&json!({"refresh_token": first.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    let second = Pair::of(refreshed).await;
    secrets.jwt("alice's refreshed access token", &second.access);
    secrets.add("alice's refreshed refresh token", &second.refresh);
    let reuse = http
        .post("/token/refresh")
        .form(&[("refresh_token", first.refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.status(), 401, "reuse is refused");
    let forged_refresh = unique("Rt-Secret-forged");
    secrets.add("a forged refresh token", &forged_refresh);
    let forged = http
        .post("/token/refresh")
        .json(&json!({"refresh_token": forged_refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    // Bearer requests: good, and a forged token (logged at debug as rejected).
    let third = Pair::login(&http, None, "alice", &alice_password).await;
    secrets.jwt("alice's third access token", &third.access);
    secrets.add("alice's third refresh token", &third.refresh);
    let me = http
        .get("/users/me")
        .bearer_auth(&third.access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let item = http
        .post("/items/")
        .bearer_auth(&third.access)
        .json(&json!({"name": "lamp", "price": 3.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(item.status(), 201);
    let forged_token = unique("Tok-Secret-forged");
    secrets.add("a forged bearer token", &forged_token);
    let refused = http
        .get("/users/me")
        .bearer_auth(&forged_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // Browser: a login with a forged CSRF token, then a good one; cookie requests.
    let page = http.login_page().await;
    secrets.add("CSRF cookie", &page.0);
    secrets.add("CSRF token of the login form", &page.1);
    let forged_csrf = unique("Csrf-Secret-forged");
    secrets.add("a forged CSRF token", &forged_csrf);
    let bad = http
        .browser_login(None, &(page.0.clone(), forged_csrf), "bob", &bob_password)
        .await;
    assert_eq!(bad.status(), 403);
    let good = http.browser_login(None, &page, "bob", &bob_password).await;
    assert_eq!(good.status(), 200);
    let session = set_cookie(&good, "session").expect("a session cookie");
    secrets.jwt("bob's session cookie", &session);
    let token_page = http
        .get("/csrftoken/")
        .header(header::COOKIE, format!("session={session}"))
        .send()
        .await
        .unwrap();
    let csrf_cookie = set_cookie(&token_page, "csrftoken").expect("a new CSRF cookie");
    let csrf_token = token_page.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.add("second CSRF cookie", &csrf_cookie);
    secrets.add("second CSRF token", &csrf_token);
    let cookies = format!("session={session}; csrftoken={csrf_cookie}");
    let with_token = http
        .post("/items/")
        .header(header::COOKIE, &cookies)
        .header("x-csrf-token", &csrf_token)
        .json(&json!({"name": "pen", "price": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 201);
    let without_token = http
        .post("/items/")
        .header(header::COOKIE, &cookies)
        .json(&json!({"name": "pen", "price": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(without_token.status(), 403);
    let me = http
        .get("/users/me")
        .header(header::COOKIE, &cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // Logout, then an admin password change for alice.
    let logout = http
        .post("/logout")
        .bearer_auth(&third.access)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let new_password = unique("Pw-Secret-alice-new");
    secrets.add("alice's new password", &new_password);
    let changed = http
        .patch(&format!("/admin/users/{alice_id}"))
        .bearer_auth(&admin.access)
        .json(&json!({"password": new_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let after = Pair::login(&http, None, "alice", &new_password).await;
    secrets.jwt("alice's access token after the change", &after.access);
    secrets.add("alice's refresh token after the change", &after.refresh);
    for (user, hash) in stored_hashes(&env.database_url, &["alice"]).await {
        secrets.hash(&format!("{user}'s new password hash"), &hash);
    }

    // Accounts: alice sets an address and verifies it through the mailed link (the page opened
    // with the token in its query), asks for a reset and follows that link, then changes her
    // password herself.
    let outbox = env.data_dir().join("outbox");
    let email = http
        .post("/users/me/email")
        .bearer_auth(&after.access)
        .json(&json!({"email": "alice@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(email.status(), 200);
    let mails =
        crate::mailbox::wait_for_mails(&outbox, 1, std::time::Duration::from_secs(10)).await;
    let verify = mails[0].token("/verify-email");
    secrets.add("the verification token", &verify);
    let page = http
        .get(&format!("/verify-email?token={verify}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let confirmed = http
        .post("/verify-email/confirm")
        .json(&json!({"token": verify}))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    let requested = http
        .post("/password-reset/request")
        .json(&json!({"email": "alice@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(requested.status(), 202);
    let mails =
        crate::mailbox::wait_for_mails(&outbox, 2, std::time::Duration::from_secs(10)).await;
    let reset = mails[1].token("/password-reset");
    secrets.add("the reset token", &reset);
    let page = http
        .get(&format!("/password-reset?token={reset}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let reset_password = unique("Pw-Secret-alice-reset");
    secrets.add("alice's password set by the reset", &reset_password);
    let done = http
        .post("/password-reset/confirm")
        .json(&json!({"token": reset, "new_password": reset_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 204);
    let fresh = Pair::login(&http, None, "alice", &reset_password).await;
    secrets.jwt("alice's access token after the reset", &fresh.access);
    secrets.add("alice's refresh token after the reset", &fresh.refresh);
    let own_password = unique("Pw-Secret-alice-own");
    secrets.add("alice's own new password", &own_password);
    let changed = http
        .post("/users/me/password")
        .bearer_auth(&fresh.access)
        .json(&json!({"current_password": reset_password, "new_password": own_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let pair = Pair::of(changed).await;
    secrets.jwt("the pair of alice's own change", &pair.access);
    secrets.add("the refresh token of alice's own change", &pair.refresh);
    for (user, hash) in stored_hashes(&env.database_url, &["alice"]).await {
        secrets.hash(&format!("{user}'s own password hash"), &hash);
    }
    let log = server.stop().await;

    // Assert: nothing secret anywhere in the log...
    secrets.assert_absent(&log, &format!("the {format} log"));
    // ...which is not empty: request lines with route, client IP and request id, audit events.
    match format {
        "json" => assert_json_log_structure(&log, &login_id),
        _ => assert_text_log_structure(&log, &login_id),
    }
}

async fn logs_never_hold_secrets_in_text_format(backend: Backend) {
    logs_never_hold_secrets(backend, "text").await;
}
test_both!(logs_never_hold_secrets_in_text_format);

async fn logs_never_hold_secrets_in_json_format(backend: Backend) {
    logs_never_hold_secrets(backend, "json").await;
}
test_both!(logs_never_hold_secrets_in_json_format);

/// True for the lines of the start-up banner (plain text in either format).
fn is_banner_line(line: &str) -> bool {
    line.starts_with("bulwark ") || line.starts_with("  ")
}

fn assert_text_log_structure(log: &str, login_id: &str) {
    let login_line = log
        .lines()
        .find(|l| l.contains("finished processing request") && l.contains(login_id))
        .unwrap_or_else(|| panic!("no request line with id {login_id}:\n{log}"));
    for field in [
        "method=POST",
        "route=\"/token\"",
        "client_ip=127.0.0.1",
        "status=200",
        "latency=",
    ] {
        assert!(
            login_line.contains(field),
            "{field} missing from {login_line}"
        );
    }
    assert!(
        !log.contains("\u{1b}["),
        "no terminal colours in a file: {log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("audit event") && l.contains("login.failed")),
        "an audit line for the failed login: {log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("audit event") && l.contains("refresh.reuse_detected")),
        "an audit line for the reuse: {log}"
    );
    assert!(
        log.contains("started processing request"),
        "debug events are on"
    );
}

fn assert_json_log_structure(log: &str, login_id: &str) {
    let mut events = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with('{') {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
            events.push(event);
        } else {
            assert!(is_banner_line(line), "neither JSON nor banner: {line}");
        }
    }
    let login = events
        .iter()
        .find(|e| {
            e["fields"]["message"] == "finished processing request"
                && e["span"]["request_id"] == login_id
        })
        .unwrap_or_else(|| panic!("no request event with id {login_id}:\n{log}"));
    assert_eq!(login["span"]["route"], "/token", "{login}");
    assert_eq!(login["span"]["method"], "POST", "{login}");
    assert_eq!(login["span"]["client_ip"], "127.0.0.1", "{login}");
    assert_eq!(login["fields"]["status"], 200, "{login}");
    assert!(!login["fields"]["latency"].is_null(), "{login}");
    let audit = |kind: &str| {
        events
            .iter()
            .filter(|e| e["target"] == "audit" && e["fields"]["kind"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    let failed = audit("login.failed");
    assert!(
        failed
            .iter()
            .any(|e| e["fields"]["username"] == "alice" && e["fields"]["ip"] == "127.0.0.1"),
        "a login.failed audit event for alice: {failed:?}"
    );
    assert_eq!(audit("refresh.reuse_detected").len(), 1, "{log}");
    assert_eq!(audit("csrf.rejected").len(), 2, "{log}");
    // Route templates, never raw paths with ids.
    assert!(
        events
            .iter()
            .any(|e| e["span"]["route"] == "/admin/users/{user_id}"),
        "{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Request ids.
// ---------------------------------------------------------------------------------------------

fn is_uuid(value: &str) -> bool {
    uuid::Uuid::parse_str(value).is_ok()
}

async fn sent_id(http: &Http, path: &str, id: Option<&str>) -> String {
    let mut request = http.get(path);
    if let Some(id) = id {
        request = request.header("x-request-id", id);
    }
    request_id(&request.send().await.expect("request"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_generated_request_id() {
    // Arrange
    let app = spawn_app(Backend::Sqlite).await;
    let http = Http::of(&app);

    // Act
    let ids = [
        sent_id(&http, "/health", None).await,
        sent_id(&http, "/health", None).await,
        sent_id(&http, "/users/me", None).await,      // 401
        sent_id(&http, "/items/abc", None).await,     // 422
        sent_id(&http, "/no/such/route", None).await, // 404
    ];

    // Assert
    for id in &ids {
        assert!(is_uuid(id), "{id} is not a UUID");
    }
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "ids are unique: {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_request_id_is_replaced_unless_a_trusted_proxy_sent_a_sane_one() {
    // Arrange
    let untrusted = spawn_app(Backend::Sqlite).await;
    let trusted = spawn_app_with(Backend::Sqlite, |s| {
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let sane = "req-42_abc.DEF:7";
    let longest = "a".repeat(128);

    // Act / Assert: from an untrusted peer, even a sane id is replaced.
    let id = sent_id(&Http::of(&untrusted), "/health", Some(sane)).await;
    assert_ne!(id, sane);
    assert!(is_uuid(&id), "{id}");

    // From a trusted proxy, a sane id is kept (up to 128 characters)...
    let http = Http::of(&trusted);
    assert_eq!(sent_id(&http, "/health", Some(sane)).await, sane);
    assert_eq!(sent_id(&http, "/users/me", Some(sane)).await, sane);
    assert_eq!(sent_id(&http, "/health", Some(&longest)).await, longest);
    // ...and an insane one replaced.
    let too_long = "a".repeat(129);
    for insane in [
        too_long.as_str(),
        "",
        "has space",
        "slash/y",
        "<script>",
        "quote\"d",
        "semi;colon",
    ] {
        let id = sent_id(&http, "/health", Some(insane)).await;
        assert_ne!(id, insane);
        assert!(is_uuid(&id), "{insane:?} -> {id}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Metrics.
// ---------------------------------------------------------------------------------------------

/// One `/metrics` scrape, parsed.
struct Scrape {
    text: String,
    samples: Vec<prometheus_parse::Sample>,
}

impl Scrape {
    /// Parses `text`, requiring every line to be understood (see the module docs).
    fn parse(text: String) -> Self {
        use prometheus_parse::LineInfo;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"# EOF"), "OpenMetrics ends with # EOF");
        for line in &lines[..lines.len() - 1] {
            match LineInfo::parse(line) {
                LineInfo::Doc { .. } | LineInfo::Type { .. } | LineInfo::Sample { .. } => {}
                LineInfo::Empty => panic!("an empty line in the exposition"),
                LineInfo::Ignored => assert!(
                    route_label(line).is_some_and(|r| r.contains('{')),
                    "a line the parser cannot read: {line}"
                ),
            }
        }
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("Prometheus text");
        assert!(!scrape.samples.is_empty());
        Self {
            samples: scrape.samples,
            text,
        }
    }

    /// The value of the sample `metric` whose labels are exactly `labels` (0 when absent: a
    /// labelled counter appears on its first increment).
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| {
                let have: BTreeMap<String, String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                have == want
            })
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("{metric} is not a single value: {other:?}"),
            })
            .collect();
        assert!(found.len() <= 1, "{metric} {labels:?} appears twice");
        found.first().copied().unwrap_or(0.0)
    }

    fn has_metric(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.metric == name)
    }
}

/// The `route` label of a sample line, when it has one.
fn route_label(line: &str) -> Option<&str> {
    let start = line.find("route=\"")? + "route=\"".len();
    let end = start + line[start..].find('"')?;
    Some(&line[start..end])
}

/// Scrapes `http://addr/metrics`, retrying while the listener starts (it is bound by
/// `run_until_stopped`, which the harness spawns).
async fn scrape(addr: SocketAddr) -> Scrape {
    let client = client(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.get(format!("http://{addr}/metrics")).send().await {
            Ok(response) => {
                assert_eq!(response.status(), 200);
                let content_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                assert!(
                    content_type.starts_with("application/openmetrics-text"),
                    "{content_type}"
                );
                return Scrape::parse(response.text().await.expect("text"));
            }
            Err(err) => {
                assert!(
                    Instant::now() < deadline,
                    "metrics never listened on {addr}: {err}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// `after - before` of one sample.
fn delta(before: &Scrape, after: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(metric, labels) - before.value(metric, labels)
}

fn http_requests(route: &str, method: &str, status: &str) -> [(&'static str, String); 3] {
    [
        ("route", route.to_owned()),
        ("method", method.to_owned()),
        ("status", status.to_owned()),
    ]
}

fn labels<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move_with_traffic() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    // Arrange
    let metrics = free_addr();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.metrics_bind = Some(metrics);
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.rate_limits.login_per_ip = "3/minute".parse().unwrap();
        s.rate_limits.login_per_username = "3/minute".parse().unwrap();
    })
    .await;
    let http = Http::of(&app);
    app.create_user("root", PASSWORD, &["admin"]).await;
    // A second admin: root's name is at its per-username limit by the time its token is needed.
    app.create_user("ops", PASSWORD, &["admin"]).await;
    let before = scrape(metrics).await;
    // Unlabelled metrics are there from the start; labelled ones from their first sample.
    for name in [
        "bulwark_csrf_rejected_total",
        "bulwark_rate_limit_store_errors_total",
        "bulwark_key_rotations_total",
        "bulwark_websocket_connections",
    ] {
        assert!(before.has_metric(name), "{name}:\n{}", before.text);
    }

    // Act: logins (2 good: bearer and form; 2 bad).
    let root = Pair::login(&http, Some("10.0.0.1"), "root", PASSWORD).await;
    assert_eq!(
        http.login(Some("10.0.0.2"), "root", "wrong-Password-1")
            .await
            .status(),
        401
    );
    assert_eq!(
        http.login(Some("10.0.0.3"), "nobody", "wrong-Password-2")
            .await
            .status(),
        401
    );
    let page = http.login_page().await;
    let form = http
        .browser_login(Some("10.0.0.4"), &page, "root", PASSWORD)
        .await;
    assert_eq!(form.status(), 200);
    let session = set_cookie(&form, "session").expect("session cookie");

    // Refreshes: one good, one reuse, one unknown token.
    let refreshed = http
        .post("/token/refresh")
        .json(&json!({"refresh_token": root.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    for token in [root.refresh.as_str(), "no-such-refresh-token"] {
        let refused = http
            .post("/token/refresh")
            .json(&json!({"refresh_token": token}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
    }

    // Plain requests, by route template (never the raw path with an id).
    let token = Pair::login(&http, Some("10.0.0.5"), "ops", PASSWORD)
        .await
        .access;
    for _ in 0..2 {
        assert_eq!(
            http.get("/users/me")
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(http.get("/users/me").send().await.unwrap().status(), 401);
    let item = app.new_item(&token, "lamp").await;
    let item_path = format!("/items/{}", item["id"]);
    assert_eq!(app.get(&item_path, Some(&token)).await.status(), 200);
    assert_eq!(app.get("/items/999999", Some(&token)).await.status(), 404);

    // Rate limits: per IP (the middleware) and per username (the handler).
    for (i, user) in ["u1", "u2", "u3", "u4"].iter().enumerate() {
        let status = http
            .login(Some("10.0.9.9"), user, "wrong-Password-3")
            .await
            .status();
        assert_eq!(status, if i < 3 { 401 } else { 429 }, "{user}");
    }
    for i in 1..=4 {
        let ip = format!("10.0.8.{i}");
        let status = http
            .login(Some(&ip), "carol", "wrong-Password-4")
            .await
            .status();
        assert_eq!(status, if i < 4 { 401 } else { 429 }, "carol #{i}");
    }

    // CSRF: a cookie-authenticated POST without a token, and a form login with a bad token.
    let refused = http
        .post("/items/")
        .header(header::COOKIE, format!("session={session}"))
        .json(&json!({"name": "pen", "price": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let page = http.login_page().await;
    let forged = (page.0, "forged-csrf-token".to_owned());
    let refused = http
        .browser_login(Some("10.0.0.6"), &forged, "root", PASSWORD)
        .await;
    assert_eq!(refused.status(), 403);

    // A key rotation.
    let rotated = http
        .post("/admin/keys/rotate")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);

    // A WebSocket: the gauge counts it while open.
    let mut request = format!("ws://127.0.0.1:{}/ws", app.port)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("bearer, {token}").parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket opens");
    let open = scrape(metrics).await;
    socket.close(None).await.expect("close");
    drop(socket);
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let now = scrape(metrics).await;
        if now.value("bulwark_websocket_connections", &[]) == 0.0 {
            break now;
        }
        assert!(Instant::now() < deadline, "the gauge never went back to 0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Assert
    for (name, kind) in [
        ("bulwark_http_requests", "counter"),
        ("bulwark_http_request_duration_seconds", "histogram"),
        ("bulwark_logins", "counter"),
        ("bulwark_token_refreshes", "counter"),
        ("bulwark_rate_limited", "counter"),
        ("bulwark_csrf_rejected", "counter"),
        ("bulwark_rate_limit_store_errors", "counter"),
        ("bulwark_key_rotations", "counter"),
        ("bulwark_websocket_connections", "gauge"),
    ] {
        let line = format!("# TYPE {name} {kind}");
        assert!(
            after.text.lines().any(|l| l == line),
            "{line}:\n{}",
            after.text
        );
    }
    let d = |metric: &str, labels: &[(&str, &str)]| delta(&before, &after, metric, labels);
    assert_eq!(open.value("bulwark_websocket_connections", &[]), 1.0);
    assert_eq!(d("bulwark_logins_total", &[("kind", "success")]), 3.0);
    assert_eq!(
        d("bulwark_logins_total", &[("kind", "failure")]),
        2.0 + 3.0 + 3.0
    );
    assert_eq!(
        d("bulwark_token_refreshes_total", &[("kind", "success")]),
        1.0
    );
    assert_eq!(
        d(
            "bulwark_token_refreshes_total",
            &[("kind", "reuse_detected")]
        ),
        1.0
    );
    assert_eq!(
        d("bulwark_token_refreshes_total", &[("kind", "refused")]),
        1.0,
        "outcomes do not overlap: a reuse is counted once, as reuse_detected"
    );
    assert_eq!(
        d("bulwark_rate_limited_total", &[("kind", "login_ip")]),
        1.0
    );
    assert_eq!(
        d("bulwark_rate_limited_total", &[("kind", "login_username")]),
        1.0
    );
    assert_eq!(d("bulwark_rate_limited_total", &[("kind", "default")]), 0.0);
    assert_eq!(
        d("bulwark_csrf_rejected_total", &[]),
        2.0,
        "the CSRF layer's refusal and the login form's"
    );
    assert_eq!(d("bulwark_key_rotations_total", &[]), 1.0);
    assert_eq!(d("bulwark_rate_limit_store_errors_total", &[]), 0.0);
    let requests = |route: &str, method: &str, status: &str| {
        d(
            "bulwark_http_requests_total",
            &labels(&http_requests(route, method, status)),
        )
    };
    assert_eq!(requests("/users/me", "GET", "200"), 2.0);
    assert_eq!(requests("/users/me", "GET", "401"), 1.0);
    assert_eq!(requests("/token", "POST", "200"), 2.0);
    assert_eq!(requests("/token", "POST", "401"), 2.0 + 3.0 + 3.0);
    assert_eq!(requests("/token", "POST", "429"), 2.0);
    assert_eq!(requests("/token/refresh", "POST", "200"), 1.0);
    assert_eq!(requests("/token/refresh", "POST", "401"), 2.0);
    assert_eq!(requests("/login", "POST", "200"), 1.0);
    assert_eq!(requests("/login", "POST", "403"), 1.0);
    assert_eq!(requests("/items/", "POST", "403"), 1.0);
    assert_eq!(requests("/admin/keys/rotate", "POST", "200"), 1.0);
    // The latency histogram counts the same requests.
    assert_eq!(
        d(
            "bulwark_http_request_duration_seconds_count",
            &[("route", "/users/me")]
        ),
        3.0
    );
    let histogram = after
        .samples
        .iter()
        .find(|s| {
            s.metric == "bulwark_http_request_duration_seconds"
                && s.labels.get("route") == Some("/users/me")
        })
        .expect("a /users/me latency histogram");
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let inf = buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .expect("+Inf");
            assert_eq!(inf.count, 3.0);
        }
        other => panic!("not a histogram: {other:?}"),
    }
    // Route templates: the parser cannot read a label holding `{`, so the raw text is checked.
    assert!(
        after.text.lines().any(|l| l.starts_with(
            "bulwark_http_requests_total{route=\"/items/{item_id}\",method=\"GET\",status=\"200\"} 1"
        )),
        "{}",
        after.text
    );
    assert!(
        after
            .text
            .lines()
            .filter_map(route_label)
            .all(|r| r.starts_with('/') || r == "<unmatched>"),
        "routes are templates: {}",
        after.text
    );
    assert!(
        !after.text.contains(&format!("\"{item_path}\""))
            && !after.text.contains("\"/items/999999\""),
        "a raw path is a label: {}",
        after.text
    );

    // /metrics is not served on the API's address.
    assert_eq!(app.get("/metrics", None).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_unless_metrics_bind_is_set() {
    let app = spawn_app(Backend::Sqlite).await;
    assert!(app.settings.metrics_bind.is_none(), "off by default");
    assert_eq!(app.get("/metrics", None).await.status(), 404);
}

// ---------------------------------------------------------------------------------------------
// 4. Audit trail.
// ---------------------------------------------------------------------------------------------

/// `GET /admin/audit?query` as `token`: the status and the body.
async fn audit_page(http: &Http, token: Option<&str>, query: &[(&str, &str)]) -> (u16, Value) {
    let mut request = http.get("/admin/audit").query(query);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET /admin/audit");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every event (newest first), asserting a 200.
async fn all_events(http: &Http, token: &str, query: &[(&str, &str)]) -> (Vec<Value>, i64) {
    let mut q = query.to_vec();
    q.push(("limit", "500"));
    let (status, body) = audit_page(http, Some(token), &q).await;
    assert_eq!(status, 200, "{body}");
    (
        body["events"].as_array().expect("events").clone(),
        body["total"].as_i64().expect("total"),
    )
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The single event of `kind` matching `pred`.
#[track_caller]
fn one<'a>(events: &'a [Value], kind: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    let found: Vec<&Value> = of_kind(events, kind)
        .into_iter()
        .filter(|e| pred(e))
        .collect();
    assert_eq!(found.len(), 1, "one {kind} event expected, got {found:#?}");
    found[0]
}

/// Asserts an event's user id, username and IP.
#[track_caller]
fn assert_who(event: &Value, user_id: Option<i64>, username: Option<&str>, ip: Option<&str>) {
    assert_eq!(event["user_id"], json!(user_id), "user_id of {event}");
    assert_eq!(event["username"], json!(username), "username of {event}");
    assert_eq!(event["ip"], json!(ip), "ip of {event}");
}

/// Waits until the wall clock is in a new second (event times are whole seconds).
async fn next_second() -> i64 {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    while time::OffsetDateTime::now_utc().unix_timestamp() == now {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    now + 1
}

async fn every_security_event_is_audited_with_its_user_and_ip(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| {
        s.allow_signup = true;
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.rate_limits.login_per_ip = "3/minute".parse().unwrap();
        s.rate_limits.login_per_username = "3/minute".parse().unwrap();
    })
    .await;
    let http = Http::of(&app);
    let mut secrets = Secrets::default();
    let root_id = app.create_user("root", PASSWORD, &["admin"]).await;
    const ADMIN_IP: &str = "198.51.100.10";

    // Act
    let root = Pair::login(&http, Some(ADMIN_IP), "root", PASSWORD).await;
    secrets.jwt("root's access token", &root.access);
    secrets.add("root's refresh token", &root.refresh);
    let alice_password = unique("Pw-Secret-alice");
    secrets.add("alice's password", &alice_password);
    let created = http
        .post("/admin/users")
        .header(XFF, ADMIN_IP)
        .bearer_auth(&root.access)
        .json(&json!({"username": "alice", "password": alice_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let alice_id = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let bob_password = unique("Pw-Secret-bob");
    secrets.add("bob's password", &bob_password);
    let signup = http
        .post("/users/signup")
        .header(XFF, "198.51.100.20")
        .json(&json!({"username": "bob", "password": bob_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 201);
    let bob_id = signup.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let wrong = unique("Pw-Secret-wrong");
    secrets.add("a wrong password", &wrong);
    assert_eq!(
        http.login(Some("198.51.100.30"), "ALICE", &wrong)
            .await
            .status(),
        401
    );

    let first = Pair::login(&http, Some("198.51.100.40"), "alice", &alice_password).await;
    secrets.jwt("alice's access token", &first.access);
    secrets.add("alice's refresh token", &first.refresh);
    let refreshed = http
        .post("/token/refresh")
        .header(XFF, "198.51.100.40")
        .json(&json!({"refresh_token": first.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    let second = Pair::of(refreshed).await;
    secrets.jwt("alice's refreshed access token", &second.access);
    secrets.add("alice's refreshed refresh token", &second.refresh);
    let reuse = http
        .post("/token/refresh")
        .header(XFF, "198.51.100.41")
        .json(&json!({"refresh_token": first.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.status(), 401);
    let third = Pair::login(&http, Some("198.51.100.42"), "alice", &alice_password).await;
    secrets.jwt("alice's third access token", &third.access);
    secrets.add("alice's third refresh token", &third.refresh);
    let logout = http
        .post("/logout")
        .header(XFF, "198.51.100.42")
        .bearer_auth(&third.access)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);

    // The second phase starts in a new second, for the time filters below.
    let phase2 = next_second().await;
    let new_password = unique("Pw-Secret-alice-new");
    secrets.add("alice's new password", &new_password);
    for change in [
        json!({"disabled": true}),
        json!({"disabled": false}),
        json!({"roles": ["editor"]}),
        json!({"password": new_password}),
    ] {
        let response = http
            .patch(&format!("/admin/users/{alice_id}"))
            .header(XFF, ADMIN_IP)
            .bearer_auth(&root.access)
            .json(&change)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{change}");
    }
    let rotated = http
        .post("/admin/keys/rotate")
        .header(XFF, ADMIN_IP)
        .bearer_auth(&root.access)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);

    // CSRF: a cookie-authenticated POST without a token; a form login with a bad token.
    let page = http.login_page().await;
    secrets.add("CSRF cookie", &page.0);
    secrets.add("CSRF token", &page.1);
    let form = http
        .browser_login(Some("198.51.100.50"), &page, "bob", &bob_password)
        .await;
    assert_eq!(form.status(), 200);
    let session = set_cookie(&form, "session").expect("session cookie");
    secrets.jwt("bob's session cookie", &session);
    let refused = http
        .post("/items/")
        .header(XFF, "198.51.100.50")
        .header(header::COOKIE, format!("session={session}"))
        .json(&json!({"name": "pen", "price": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let page = http.login_page().await;
    let forged = unique("Csrf-Secret-forged");
    secrets.add("a forged CSRF token", &forged);
    let refused = http
        .browser_login(
            Some("198.51.100.51"),
            &(page.0, forged),
            "bob",
            &bob_password,
        )
        .await;
    assert_eq!(refused.status(), 403);

    // Login rate limits: per IP (4th login from one IP), per username (4th for one name).
    for (i, user) in ["u1", "u2", "u3", "u4"].iter().enumerate() {
        let status = http
            .login(Some("198.51.100.60"), user, &wrong)
            .await
            .status();
        assert_eq!(status, if i < 3 { 401 } else { 429 });
    }
    for i in 1..=4 {
        let ip = format!("198.51.100.7{i}");
        let status = http.login(Some(&ip), "carol", &wrong).await.status();
        assert_eq!(status, if i < 4 { 401 } else { 429 });
    }

    // Assert: each kind, with its user and IP. Refusals are written once their window ends
    // (or at shutdown): write them now.
    bulwark_server::refusals::write(&app.state.refusals, app.state.repo.as_ref(), true).await;
    let (events, total) = all_events(&http, &root.access, &[]).await;
    assert_eq!(total as usize, events.len());
    assert_who(
        one(&events, "login.succeeded", |e| e["ip"] == ADMIN_IP),
        Some(root_id),
        Some("root"),
        Some(ADMIN_IP),
    );
    assert_who(
        one(&events, "login.succeeded", |e| e["ip"] == "198.51.100.40"),
        Some(alice_id),
        Some("alice"),
        Some("198.51.100.40"),
    );
    let alice_logins = of_kind(&events, "login.succeeded");
    assert_eq!(
        alice_logins
            .iter()
            .filter(|e| e["username"] == "alice")
            .count(),
        2
    );
    let failed = one(&events, "login.failed", |e| e["ip"] == "198.51.100.30");
    assert_eq!(failed["username"], "ALICE", "the username as typed");
    let admin_created = one(&events, "user.created", |e| e["user_id"] == alice_id);
    assert_who(admin_created, Some(alice_id), Some("alice"), Some(ADMIN_IP));
    assert!(
        admin_created["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&root_id.to_string())),
        "the acting admin is named: {admin_created}"
    );
    let signed_up = one(&events, "user.created", |e| e["user_id"] == bob_id);
    assert_who(signed_up, Some(bob_id), Some("bob"), Some("198.51.100.20"));
    assert_eq!(signed_up["detail"], "signup");
    assert_who(
        one(&events, "refresh.reuse_detected", |_| true),
        Some(alice_id),
        Some("alice"),
        Some("198.51.100.41"),
    );
    assert_who(
        one(&events, "logout", |_| true),
        Some(alice_id),
        Some("alice"),
        Some("198.51.100.42"),
    );
    for kind in [
        "user.disabled",
        "user.enabled",
        "user.roles_changed",
        "user.password_changed",
    ] {
        assert_who(
            one(&events, kind, |_| true),
            Some(alice_id),
            Some("alice"),
            Some(ADMIN_IP),
        );
    }
    let rotated = one(&events, "key.rotated", |_| true);
    assert_who(rotated, Some(root_id), Some("root"), Some(ADMIN_IP));
    let layer_csrf = one(&events, "csrf.rejected", |e| e["ip"] == "198.51.100.50");
    assert!(
        layer_csrf["detail"]
            .as_str()
            .is_some_and(|d| d.contains("/items/")),
        "{layer_csrf}"
    );
    let form_csrf = one(&events, "csrf.rejected", |e| e["ip"] == "198.51.100.51");
    assert!(
        form_csrf["detail"]
            .as_str()
            .is_some_and(|d| d.contains("/login")),
        "{form_csrf}"
    );
    assert_eq!(
        of_kind(&events, "csrf.rejected").len(),
        2,
        "each refusal once"
    );
    let per_ip = one(&events, "login.rate_limited", |e| {
        e["ip"] == "198.51.100.60"
    });
    assert!(
        per_ip["detail"]
            .as_str()
            .is_some_and(|d| d.contains("per-IP")),
        "{per_ip}"
    );
    let per_user = one(&events, "login.rate_limited", |e| e["username"] == "carol");
    assert_eq!(per_user["ip"], "198.51.100.74");
    assert!(
        per_user["detail"]
            .as_str()
            .is_some_and(|d| d.contains("per-username")),
        "{per_user}"
    );
    // Audit rows never hold a password, token or cookie.
    let (_, body) = audit_page(&http, Some(&root.access), &[("limit", "500")]).await;
    secrets.assert_absent(&body.to_string(), "GET /admin/audit");

    // Newest first.
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let times: Vec<i64> = events
        .iter()
        .map(|e| {
            time::OffsetDateTime::parse(
                e["created_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
            .unix_timestamp()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));

    // Filters: kind.
    let (created, total) = all_events(&http, &root.access, &[("kind", "user.created")]).await;
    assert_eq!(total, 2);
    assert_eq!(created[0]["user_id"], bob_id, "newest first");
    assert_eq!(created[1]["user_id"], alice_id);
    let (none, total) = all_events(&http, &root.access, &[("kind", "no.such.kind")]).await;
    assert_eq!((none.len(), total), (0, 0));
    // user_id.
    let alice = alice_id.to_string();
    let (alices, total) = all_events(&http, &root.access, &[("user_id", alice.as_str())]).await;
    let kinds: BTreeSet<&str> = alices.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let expected: BTreeSet<&str> = [
        "user.created",
        "login.succeeded",
        "refresh.reuse_detected",
        "logout",
        "user.disabled",
        "user.enabled",
        "user.roles_changed",
        "user.password_changed",
    ]
    .into();
    assert_eq!(kinds, expected);
    assert_eq!(total as usize, alices.len());
    assert!(alices.iter().all(|e| e["user_id"] == alice_id));
    // since / until, as Unix seconds and as RFC 3339 (with an offset).
    let split = phase2.to_string();
    let before_split = (phase2 - 1).to_string();
    let later = |t: &i64| *t >= phase2;
    let expect_later = times.iter().filter(|t| later(t)).count() as i64;
    let expect_earlier = times.len() as i64 - expect_later;
    assert!(expect_later > 0 && expect_earlier > 0);
    let (_, n) = all_events(&http, &root.access, &[("since", split.as_str())]).await;
    assert_eq!(n, expect_later, "since (Unix seconds)");
    let (_, n) = all_events(&http, &root.access, &[("until", before_split.as_str())]).await;
    assert_eq!(n, expect_earlier, "until (Unix seconds)");
    let rfc = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .unwrap()
            .to_offset(time::macros::offset!(+2))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (_, n) = all_events(&http, &root.access, &[("since", rfc(phase2).as_str())]).await;
    assert_eq!(n, expect_later, "since (RFC 3339)");
    let (_, n) = all_events(&http, &root.access, &[("until", rfc(phase2 - 1).as_str())]).await;
    assert_eq!(n, expect_earlier, "until (RFC 3339)");
    let (window, n) = all_events(
        &http,
        &root.access,
        &[
            ("kind", "user.created"),
            ("since", rfc(phase2 - 3600).as_str()),
            ("until", split.as_str()),
        ],
    )
    .await;
    assert_eq!((window.len(), n), (2, 2), "filters combine");
    let (_, n) = all_events(
        &http,
        &root.access,
        &[("since", (phase2 + 3600).to_string().as_str())],
    )
    .await;
    assert_eq!(n, 0);

    // Pagination: pages of 4 put together are the whole list, with the right total each time.
    let mut paged = Vec::new();
    for offset in (0..events.len() + 4).step_by(4) {
        let offset = offset.to_string();
        let (status, body) = audit_page(
            &http,
            Some(&root.access),
            &[("limit", "4"), ("offset", offset.as_str())],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["total"], json!(events.len()));
        let page = body["events"].as_array().unwrap();
        assert!(page.len() <= 4);
        paged.extend(page.iter().cloned());
    }
    assert_eq!(paged, events);

    // Who may read it, and what it refuses.
    assert_eq!(audit_page(&http, None, &[]).await.0, 401);
    let bob = Pair::login(&http, Some("198.51.100.80"), "bob", &bob_password).await;
    assert_eq!(audit_page(&http, Some(&bob.access), &[]).await.0, 403);
    for bad in [
        [("limit", "0")],
        [("limit", "501")],
        [("offset", "-1")],
        [("since", "yesterday")],
        [("until", "2024-13-01T00:00:00Z")],
        [("limit", "ten")],
    ] {
        let (status, body) = audit_page(&http, Some(&root.access), &bad).await;
        assert_eq!(status, 422, "{bad:?}: {body}");
    }
}
test_both!(every_security_event_is_audited_with_its_user_and_ip);

/// Old audit events are purged at start-up (then hourly) once older than `audit_retention`.
async fn audit_events_older_than_the_retention_are_purged(backend: Backend) {
    // Arrange: events, then two of them made 40 and 20 days old.
    let (url, _database) = fresh_database_url(&backend).await;
    let secret = bulwark::secret::random_token(32);
    let start = |retention: &'static str| {
        let (url, secret) = (url.clone(), secret.clone());
        spawn_app_with(Backend::Sqlite, move |s| {
            s.database_url = url;
            s.master_secret = Some(secret.into());
            s.audit_retention = bulwark_server::config::DurationSetting::parse(retention).unwrap();
        })
    };
    let first = start("30d").await;
    let (_, token) = first.user_with_token("root", &["admin"]).await;
    for _ in 0..3 {
        assert_eq!(first.login("root", "wrong-Password-9").await.status(), 401);
    }
    let http = Http::of(&first);
    let (events, _) = all_events(&http, &token, &[]).await;
    assert_eq!(events.len(), 4);
    let (old, recent) = (
        events[0]["id"].as_i64().unwrap(),
        events[1]["id"].as_i64().unwrap(),
    );
    let day = 86_400;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sql = "UPDATE audit_events SET created_at = $1 WHERE id = $2";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        for (id, age) in [(old, 40 * day), (recent, 20 * day)] {
            sqlx::query(sql)
                .bind(now - age)
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        for (id, age) in [(old, 40 * day), (recent, 20 * day)] {
            sqlx::query(sql)
                .bind(now - age)
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }

    // Act: another instance starts (the purge runs at once, then hourly).
    let second = start("30d").await;

    // Assert
    let http = Http::of(&second);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (events, total) = all_events(&http, &token, &[]).await;
        let ids: BTreeSet<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
        if !ids.contains(&old) {
            assert!(ids.contains(&recent), "20 days is within 30d: {ids:?}");
            assert_eq!(total, 3, "the others stay: {ids:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the 40-day-old event was never purged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(first);
}
test_both!(audit_events_older_than_the_retention_are_purged);

// ---------------------------------------------------------------------------------------------
// 5. `bulwark check` and the start-up banner.
// ---------------------------------------------------------------------------------------------

/// One finding line of `bulwark check`: severity, key, message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    severity: String,
    key: String,
    message: String,
}

/// The findings printed by `bulwark check`; every line must be one, in aligned columns
/// (severity, key, message).
fn findings(stdout: &str) -> Vec<Finding> {
    stdout
        .lines()
        .map(|line| {
            let bytes = line.as_bytes();
            assert!(bytes.len() > 32, "a short finding line: {line:?}");
            assert!(
                bytes[8] == b' ' && bytes[9] != b' ',
                "the key starts in column 10: {line:?}"
            );
            assert!(
                bytes[31] == b' ' && bytes[32] != b' ',
                "the message starts in column 33: {line:?}"
            );
            let (severity, rest) = line.split_once(' ').unwrap_or((line, ""));
            assert!(
                matches!(severity, "ok" | "warning" | "critical"),
                "not a finding: {line:?}\n{stdout}"
            );
            let rest = rest.trim_start();
            let (key, message) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(!message.trim().is_empty(), "a finding says why: {line}");
            Finding {
                severity: severity.to_owned(),
                key: key.to_owned(),
                message: message.trim().to_owned(),
            }
        })
        .collect()
}

/// The keys every run reports.
const CHECK_KEYS: &[&str] = &[
    "master_secret",
    "tls",
    "secure_cookies",
    "docs",
    "allowed_origins",
    "trusted_proxies",
    "rate_limits",
    "allow_signup",
    "database_url",
    "public_url",
    "smtp_url",
    "key_rotation_interval",
];

/// One configuration of the matrix.
struct Case {
    name: &'static str,
    env: &'static [(&'static str, &'static str)],
    toml: Option<&'static str>,
    /// Every finding that is not `ok`.
    expected: &'static [(&'static str, &'static str)],
}

impl Case {
    fn exit_code(&self) -> i32 {
        i32::from(self.expected.iter().any(|(_, s)| *s == "critical"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_finding_with_the_right_exit_code() {
    let env = BinEnv::new(Backend::Sqlite).await;
    // A private, strong master secret file: the base of every case, all ok.
    let good_secret = bulwark::secret::random_token(32);
    let secret_file = env.write("master-secret", &format!("{good_secret}\n"));
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cases = [
        Case {
            name: "a private master secret file, loopback",
            env: &[],
            toml: None,
            expected: &[],
        },
        Case {
            name: "public bind without TLS or secure cookies",
            env: &[("BULWARK_BIND", "0.0.0.0:8000")],
            toml: None,
            expected: &[
                ("tls", "warning"),
                ("secure_cookies", "critical"),
                ("docs", "warning"),
                ("public_url", "warning"),
                ("smtp_url", "warning"),
            ],
        },
        Case {
            name: "public bind behind a TLS proxy, docs off",
            env: &[
                ("BULWARK_BIND", "0.0.0.0:8000"),
                ("BULWARK_SECURE_COOKIES", "true"),
                ("BULWARK_DOCS", "false"),
                ("BULWARK_PUBLIC_URL", "https://api.example.com"),
                (
                    "BULWARK_SMTP_URL",
                    "smtp+starttls://bulwark@mail.example.com:587",
                ),
            ],
            toml: None,
            expected: &[("tls", "warning")],
        },
        Case {
            name: "mail links over plain HTTP, mail in clear, SMTP password inline",
            env: &[],
            toml: Some(
                "public_url = \"http://api.example.com\"\n\
                 smtp_url = \"smtp://bulwark:inline-Smtp-pass-77@mail.example.com\"\n",
            ),
            expected: &[("public_url", "warning"), ("smtp_url", "warning")],
        },
        Case {
            name: "CORS wildcard",
            env: &[],
            toml: Some("allowed_origins = [\"*\"]\n"),
            expected: &[
                ("configuration", "critical"),
                ("allowed_origins", "critical"),
            ],
        },
        Case {
            name: "trusted_proxies everything (IPv4)",
            env: &[],
            toml: Some("trusted_proxies = [\"0.0.0.0/0\"]\n"),
            expected: &[("trusted_proxies", "critical")],
        },
        Case {
            name: "trusted_proxies everything (IPv6)",
            env: &[],
            toml: Some("trusted_proxies = [\"10.0.0.0/8\", \"::/0\"]\n"),
            expected: &[("trusted_proxies", "critical")],
        },
        Case {
            name: "rate limits off",
            env: &[],
            toml: Some("[rate_limits]\nenabled = false\n"),
            expected: &[("rate_limits", "warning")],
        },
        Case {
            name: "signup open",
            env: &[("BULWARK_ALLOW_SIGNUP", "true")],
            toml: None,
            expected: &[("allow_signup", "warning")],
        },
        Case {
            name: "SQLite shared through redis_url",
            env: &[("BULWARK_REDIS_URL", "redis://127.0.0.1:6379")],
            toml: None,
            expected: &[("database_url", "critical")],
        },
        Case {
            name: "PostgreSQL with redis_url",
            env: &[
                ("BULWARK_REDIS_URL", "redis://127.0.0.1:6379"),
                ("BULWARK_DATABASE_URL", "postgres://db.invalid/bulwark"),
            ],
            toml: None,
            expected: &[],
        },
        Case {
            name: "key rotation every 60 days",
            env: &[],
            toml: Some("key_rotation_interval = \"60d\"\n"),
            expected: &[("key_rotation_interval", "warning")],
        },
        Case {
            name: "key rotation every 30 days",
            env: &[],
            toml: Some("key_rotation_interval = \"30d\"\n"),
            expected: &[],
        },
    ];
    for case in &cases {
        let mut command = env.bare_command(&["check"]);
        command.env("BULWARK_MASTER_SECRET_FILE", &secret_file);
        for (key, value) in case.env {
            command.env(key, value);
        }
        if let Some(toml) = case.toml {
            let path = env.write(&format!("{}.toml", unique("case")), toml);
            command.arg("--config").arg(path);
        }
        let run = process::run(command, None).await;
        let found = findings(&run.stdout);
        let keys: BTreeSet<&str> = found.iter().map(|f| f.key.as_str()).collect();
        for key in CHECK_KEYS {
            assert!(
                keys.contains(key),
                "{}: no {key} finding:\n{}",
                case.name,
                run.stdout
            );
        }
        let not_ok: BTreeSet<(&str, &str)> = found
            .iter()
            .filter(|f| f.severity != "ok")
            .map(|f| (f.key.as_str(), f.severity.as_str()))
            .collect();
        let expected: BTreeSet<(&str, &str)> = case.expected.iter().copied().collect();
        assert_eq!(not_ok, expected, "{}:\n{}", case.name, run.stdout);
        assert_eq!(
            run.code,
            Some(case.exit_code()),
            "{}: exit code\n{}{}",
            case.name,
            run.stdout,
            run.stderr
        );
        assert!(
            !run.stdout.contains(&good_secret),
            "{}: the secret is printed",
            case.name
        );
        assert!(
            !run.stdout.contains("inline-Smtp-pass-77")
                && !run.stderr.contains("inline-Smtp-pass-77"),
            "{}: the SMTP password is printed",
            case.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_judges_the_master_secret_by_source_strength_and_file_mode() {
    let env = BinEnv::new(Backend::Sqlite).await;
    let strong = bulwark::secret::random_token(32);
    let weak = "Short-Secret-0123456789";
    let open_file = env.write("open-secret", &format!("{strong}\n"));
    std::fs::set_permissions(&open_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let weak_file = env.write("weak-secret", &format!("{weak}\n"));
    std::fs::set_permissions(&weak_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let missing = env.data_dir().join("no-such-secret");
    let cases: [(&str, &str, String, &str, &str); 6] = [
        (
            "none: generated on first start",
            "",
            String::new(),
            "warning",
            "generated",
        ),
        (
            "inline, strong",
            "BULWARK_MASTER_SECRET",
            strong.clone(),
            "warning",
            "master_secret_file",
        ),
        (
            "inline, weak",
            "BULWARK_MASTER_SECRET",
            weak.to_owned(),
            "critical",
            "32",
        ),
        (
            "file readable by others",
            "BULWARK_MASTER_SECRET_FILE",
            open_file.display().to_string(),
            "critical",
            "chmod 600",
        ),
        (
            "file with a weak secret",
            "BULWARK_MASTER_SECRET_FILE",
            weak_file.display().to_string(),
            "critical",
            "32",
        ),
        (
            "file missing",
            "BULWARK_MASTER_SECRET_FILE",
            missing.display().to_string(),
            "critical",
            "cannot be read",
        ),
    ];
    for (name, var, value, severity, hint) in cases {
        let mut command = env.bare_command(&["check"]);
        if !var.is_empty() {
            command.env(var, &value);
        }
        let run = process::run(command, None).await;
        let found = findings(&run.stdout);
        if var.is_empty() {
            assert!(
                found.iter().all(|f| f.severity != "critical"),
                "defaults on loopback: only ok and warning lines:\n{}",
                run.stdout
            );
        }
        let secret = found
            .iter()
            .find(|f| f.key == "master_secret")
            .unwrap_or_else(|| panic!("{name}: no master_secret finding:\n{}", run.stdout));
        assert_eq!(secret.severity, severity, "{name}: {secret:?}");
        assert!(secret.message.contains(hint), "{name}: {secret:?}");
        assert_eq!(
            run.code,
            Some(i32::from(severity == "critical")),
            "{name}: exit code"
        );
        for value in [strong.as_str(), weak] {
            assert!(
                !format!("{}{}", run.stdout, run.stderr).contains(value),
                "{name}: a secret is printed"
            );
        }
    }
}

/// A banner line as `label value`, whitespace collapsed.
fn banner(log: &str) -> BTreeMap<String, String> {
    let mut lines = log.lines().skip_while(|l| !l.starts_with("bulwark "));
    let mut out = BTreeMap::new();
    let first = lines.next().expect("the banner's first line");
    out.insert(
        "version".to_owned(),
        first["bulwark ".len()..].trim().to_owned(),
    );
    for line in lines.take_while(|l| l.starts_with("  ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some((label, value)) = words.split_first() {
            out.insert((*label).to_owned(), value.join(" "));
        }
    }
    out
}

/// The JSON log events of `log` (the banner lines are skipped).
fn json_events(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `serve --allow-insecure` runs the same checks as `bulwark check`, logs each that is not ok,
/// and prints the banner with their counts.
async fn serve_logs_the_check_findings_and_prints_the_banner(backend: Backend) {
    // Arrange: one critical (allowed by the flag) and several warnings.
    let env = BinEnv::new(backend.clone()).await;
    let config = env.write(
        "bulwark.toml",
        "allow_signup = true\ntrusted_proxies = [\"0.0.0.0/0\"]\nkey_rotation_interval = \"60d\"\nlog_format = \"json\"\n\n[rate_limits]\nenabled = false\n",
    );
    let mut check = env.command(&["check"]);
    check.arg("--config").arg(&config);
    let check = process::run(check, None).await;
    assert_eq!(check.code, Some(1), "{}", check.stdout);
    let expected = findings(&check.stdout);
    let not_ok: Vec<&Finding> = expected.iter().filter(|f| f.severity != "ok").collect();
    let count = |s: &str| expected.iter().filter(|f| f.severity == s).count();
    assert_eq!(count("critical"), 1);
    assert_eq!(count("warning"), 4, "{}", check.stdout);

    // Act
    let mut serve = env.command(&["serve", "--bind", "127.0.0.1:0", "--allow-insecure"]);
    serve.arg("--config").arg(&config);
    let server = env.serve(serve).await;
    let port = server.port;
    assert_eq!(
        Http::new(server.base("http"))
            .get("/health")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let log = server.stop().await;

    // Assert: the findings, logged at error (critical) and warn (warning).
    let events = json_events(&log);
    for finding in &not_ok {
        let level = if finding.severity == "critical" {
            "ERROR"
        } else {
            "WARN"
        };
        assert!(
            events
                .iter()
                .any(|e| e["fields"]["check"] == finding.key.as_str()
                    && e["fields"]["message"] == finding.message.as_str()
                    && e["level"] == level),
            "{finding:?} is not logged at {level}:\n{log}"
        );
    }
    // The banner.
    let banner = banner(&log);
    let (db, events_transport) = match backend {
        Backend::Sqlite => ("sqlite", "memory"),
        Backend::Postgres(_) => ("postgres", "postgres"),
    };
    let expect = [
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ("listening", format!("http://127.0.0.1:{port}")),
        ("TLS", "off".to_owned()),
        ("database", db.to_owned()),
        (
            "stores",
            format!("rate limits: memory, revocations: database, events: {events_transport}"),
        ),
        ("docs", format!("http://127.0.0.1:{port}/docs/")),
        (
            "checks",
            format!(
                "{} critical, {} warning(s) (run `bulwark check` for details)",
                count("critical"),
                count("warning")
            ),
        ),
    ];
    for (label, value) in expect {
        assert_eq!(
            banner.get(label),
            Some(&value),
            "{label} in the banner:\n{log}"
        );
    }
}
test_both!(serve_logs_the_check_findings_and_prints_the_banner);

/// Regression: `serve` only logged critical findings and started anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_critical_finding_without_allow_insecure() {
    let env = BinEnv::new(Backend::Sqlite).await;
    for (name, toml, key) in [
        (
            "every address trusted",
            "trusted_proxies = [\"0.0.0.0/0\"]\n",
            "trusted_proxies",
        ),
        (
            "a network address without Secure cookies",
            "bind = \"0.0.0.0:0\"\n",
            "secure_cookies",
        ),
    ] {
        let config = env.write("bulwark.toml", toml);
        let mut serve = env.command(&["serve"]);
        serve.arg("--config").arg(&config);
        let refused = process::run(serve, None).await;
        assert_eq!(refused.code, Some(1), "{name}: {}", refused.stderr);
        let critical = refused
            .stderr
            .lines()
            .find(|l| l.starts_with("critical"))
            .unwrap_or_else(|| panic!("{name}: no finding on stderr: {}", refused.stderr));
        assert!(critical.contains(key), "{name}: {critical}");
        assert!(
            refused.stderr.contains("--allow-insecure"),
            "{name}: the way out is named: {}",
            refused.stderr
        );
        assert!(
            !refused.stderr.contains("listening"),
            "{name}: it did not start: {}",
            refused.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_shows_tls_on_and_docs_off() {
    let env = BinEnv::new(Backend::Sqlite).await;
    let mut serve = env.command(&["serve", "--bind", "127.0.0.1:0", "--self-signed"]);
    serve.env("BULWARK_DOCS", "false");
    let server = env.serve(serve).await;
    let port = server.port;
    let log = server.stop().await;
    let banner = banner(&log);
    assert_eq!(
        banner.get("listening"),
        Some(&format!("https://127.0.0.1:{port}")),
        "{log}"
    );
    assert_eq!(banner.get("TLS").map(String::as_str), Some("on"), "{log}");
    assert_eq!(banner.get("docs").map(String::as_str), Some("off"), "{log}");
    // The master secret is inline: a warning, counted.
    assert!(
        banner
            .get("checks")
            .is_some_and(|c| c.starts_with("0 critical, 1 warning(s)")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_banner_names_redis_stores_when_redis_url_is_set() {
    let Some(redis) = std::env::var("BULWARK_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("BULWARK_TEST_REDIS_URL is not set: not run");
        return;
    };
    let env = BinEnv::new(Backend::Sqlite).await;
    let mut serve = env.command(&["serve", "--bind", "127.0.0.1:0", "--allow-insecure"]);
    serve.env("BULWARK_REDIS_URL", &redis);
    let server = env.serve(serve).await;
    let log = server.stop().await;
    let banner = banner(&log);
    assert_eq!(
        banner.get("stores").map(String::as_str),
        Some("rate limits: Redis, revocations: Redis, events: redis"),
        "{log}"
    );
    // SQLite shared through Redis: the critical finding is logged and counted.
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("database_url")),
        "{log}"
    );
    assert!(
        banner
            .get("checks")
            .is_some_and(|c| c.starts_with("1 critical")),
        "{log}"
    );
}
