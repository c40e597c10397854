//! Spawns the real server on port 0 with a fresh database, and talks HTTP to it.
//!
//! Every test runs against SQLite (a new file each) and, when `BULWARK_TEST_DATABASE_URL` is set,
//! against PostgreSQL (a new database each, dropped afterwards). Write a test as
//! `async fn name(backend: Backend)` and add `test_both!(name);` under it.
//!
//! Here too are the helpers the test files share: JSON bodies and 422 errors, JWTs, cookies,
//! the browser login and [`Http`], a client for any one server (the in-process app or a
//! `bulwark serve` process). Child processes have theirs in `process.rs`, and the two rate-limit
//! files share theirs from `rate_limits.rs`.

use std::time::Duration;

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
};
use bulwark_server::{
    config::{PasswordHashing, Settings},
    startup::Application,
    state::AppState,
    users::create_user,
};
use reqwest::{Client, Method, RequestBuilder, Response, header};
use secrecy::SecretString;
use serde_json::{Value, json};

/// Generates `name::sqlite` and `name::postgres` tests from `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! test_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match $crate::helpers::Backend::postgres() {
                    Some(backend) => super::$name(backend).await,
                    None => eprintln!(
                        "BULWARK_TEST_DATABASE_URL is not set: PostgreSQL variant not run"
                    ),
                }
            }
        }
    };
}

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The admin URL (a database we may create databases from).
    Postgres(String),
}

impl Backend {
    pub fn postgres() -> Option<Self> {
        std::env::var("BULWARK_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .map(Backend::Postgres)
    }
}

/// A strong password that passes the policy.
pub const PASSWORD: &str = "vivid-Harbor-71-tangent";

/// The 401 detail of a bad, expired or revoked access token.
pub const INVALID_TOKEN: &str = "Could not validate credentials";

/// The 401 detail of a failed login.
pub const BAD_CREDENTIALS: &str = "Incorrect username or password";

/// `password1` hashed with bcrypt cost 4 (`$2b$`; the digest is the same under `$2a$`/`$2y$`),
/// as passlib stored the FastAPI version's users.
pub const BCRYPT_COST4_PASSWORD1: &str =
    "$2b$04$RkDdsm351qotlvGQQPTs6OtsMUCBETGvvfL6CDrO4xpmWXgctEqJ6";

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: Client,
    pub state: AppState,
    pub settings: Settings,
    /// The test's database and data folder, removed when the app is dropped.
    _database: DatabaseGuard,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let (database_url, database) = fresh_database_url(&backend).await;
    let mut settings = Settings::default();
    settings.bind = "127.0.0.1:0".parse().expect("addr");
    settings.data_dir = database.dir().to_owned();
    settings.database_url = database_url;
    settings.master_secret = Some(SecretString::from(bulwark::secret::random_token(32)));
    // Cheap hashing parameters keep the suite fast; production defaults are tested in the library.
    settings.password_hashing = PasswordHashing {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    // Most tests log in many times from 127.0.0.1; the rate-limit tests set the contract's
    // login limits (5/minute) explicitly.
    settings.rate_limits.login_per_ip = "10000/minute".parse().unwrap();
    settings.rate_limits.login_per_username = "10000/minute".parse().unwrap();
    configure(&mut settings);
    let app = Application::build(settings.clone())
        .await
        .expect("app builds");
    let port = app.port();
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: client(false),
        state,
        settings,
        _database: database,
        shutdown: Some(tx),
    }
}

/// The HTTP client of the tests: no proxy, a 30 s timeout, and redirects followed or not.
pub fn client(follow_redirects: bool) -> Client {
    // The workspace's one TLS provider; reqwest brings none (crates/bulwark-audit/Cargo.toml).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut builder = Client::builder().no_proxy();
    if !follow_redirects {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    builder
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rsplit_once('/') {
        Some((p, _)) if p.contains("://") && p.len() > p.find("://").unwrap_or(0) + 3 => {
            p.to_owned()
        }
        _ => base.to_owned(),
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // The database guard (a field) drops the database after this.
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Creates a user directly (as the CLI does) and returns its id.
    pub async fn create_user(&self, name: &str, password: &str, roles: &[&str]) -> i64 {
        self.create_user_with_email(name, password, roles, None)
            .await
    }

    /// [`TestApp::create_user`] with an (unverified) e-mail address.
    pub async fn create_user_with_email(
        &self,
        name: &str,
        password: &str,
        roles: &[&str],
        email: Option<&str>,
    ) -> i64 {
        create_user(
            self.state.repo.as_ref(),
            &self.state.hasher,
            &self.state.policy,
            name,
            password.to_owned(),
            roles.iter().map(|r| (*r).to_owned()).collect(),
            email.map(str::to_owned),
        )
        .await
        .expect("user created")
        .id
    }

    /// `POST /token` (see [`Http::login`]).
    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.http().login(None, username, password).await
    }

    /// The access token of a login that must succeed.
    pub async fn access_token(&self, username: &str, password: &str) -> String {
        let response = self.login(username, password).await;
        assert_eq!(response.status(), 200, "login of {username}");
        let body: Value = response.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }

    /// A user with `roles` and a valid access token: `(id, token)`.
    pub async fn user_with_token(&self, name: &str, roles: &[&str]) -> (i64, String) {
        let id = self.create_user(name, PASSWORD, roles).await;
        (id, self.access_token(name, PASSWORD).await)
    }

    /// An [`Http`] on the app's own client (its connections; see [`Http::of`] for new ones).
    pub fn http(&self) -> Http {
        Http {
            client: self.client.clone(),
            base: self.address.clone(),
        }
    }

    /// The browser login: `GET /login` for the CSRF cookie and token, then `POST /login` with
    /// them.
    pub async fn browser_login(&self, username: &str, password: &str) -> Response {
        let http = self.http();
        let page = http.login_page().await;
        http.browser_login(None, &page, username, password).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn put_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut req = self.client.put(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn patch_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut req = self.client.patch(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// A request with `token` and a body sent as given, under `content_type` if any.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request.send().await.expect("request")
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.delete(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn create_item(&self, token: &str, body: &Value) -> Response {
        self.post_json("/items/", Some(token), body).await
    }

    /// Creates an item that must succeed; returns its JSON.
    pub async fn new_item(&self, token: &str, name: &str) -> Value {
        let response = self
            .create_item(token, &json!({"name": name, "price": 10.0, "tax": 1.5}))
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.expect("json")
    }

    pub async fn get_item(&self, token: &str, id: &Value) -> Response {
        self.get(&format!("/items/{id}"), Some(token)).await
    }

    pub async fn list_items(&self, token: &str, query: &str) -> Response {
        self.get(&format!("/items/{query}"), Some(token)).await
    }
}

/// The `detail` of an error body, asserting the status first.
pub async fn detail(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    let body: Value = response.json().await.expect("json body");
    body["detail"].clone()
}

/// Asserts `WWW-Authenticate: Bearer` and the 401 detail.
pub async fn assert_unauthorized(response: Response, expected_detail: &str) {
    assert_eq!(response.status(), 401);
    assert_eq!(
        response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, json!({"detail": expected_detail}));
}

// ---------------------------------------------------------------------------------------------
// JSON bodies
// ---------------------------------------------------------------------------------------------

/// The body of a response, as JSON.
pub async fn json_of(response: Response) -> Value {
    response.json().await.expect("json body")
}

/// The body of a response, as JSON, after checking its status.
pub async fn json_with_status(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    json_of(response).await
}

/// The single error of a 422 answer (asserting the status and that there is exactly one), and
/// the whole body as text (to check what it echoes).
pub async fn only_error_with_text(response: Response) -> (Value, String) {
    assert_eq!(response.status(), 422);
    let text = response.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).expect("JSON");
    let details = body["detail"].as_array().expect("a list of details");
    assert_eq!(details.len(), 1, "{body}");
    (details[0].clone(), text)
}

/// The single error of a 422 answer, asserting the status and that there is exactly one.
pub async fn only_error(response: Response) -> Value {
    only_error_with_text(response).await.0
}

// ---------------------------------------------------------------------------------------------
// JWTs
// ---------------------------------------------------------------------------------------------

/// Now, in Unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// One base64url segment of a compact JWT, as JSON.
pub fn decode_segment(segment: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url segment");
    serde_json::from_slice(&bytes).expect("JSON segment")
}

/// The header and claims of a compact JWT, decoded without verification.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "a compact JWS has three segments");
    (decode_segment(segments[0]), decode_segment(segments[1]))
}

/// The `kid` header of a compact JWT.
pub fn kid_of(token: &str) -> String {
    jwt_parts(token).0["kid"]
        .as_str()
        .expect("kid header")
        .to_owned()
}

/// The kid of the app's active signing key.
pub fn active_kid(app: &TestApp) -> String {
    app.state
        .keys
        .ring()
        .active()
        .expect("active key")
        .kid()
        .to_owned()
}

/// Valid claims for `user_id` / `name`, as the app issues them, with `overrides` applied.
pub fn claims_for(app: &TestApp, user_id: i64, name: &str, overrides: Value) -> Value {
    let t = now();
    let mut claims = json!({
        "sub": user_id.to_string(), "name": name, "roles": [], "ver": 1, "iat": t, "nbf": t,
        "exp": t + 600, "jti": bulwark::secret::random_token(16),
        "iss": app.settings.jwt_issuer, "aud": app.settings.jwt_audience,
    });
    for (k, v) in overrides.as_object().expect("object") {
        claims[k] = v.clone();
    }
    claims
}

/// Every text encoding of key `material` a careless serializer could produce.
pub fn key_encodings(material: &[u8]) -> Vec<String> {
    let hex_lower: String = material.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        STANDARD.encode(material),
        STANDARD_NO_PAD.encode(material),
        URL_SAFE.encode(material),
        URL_SAFE_NO_PAD.encode(material),
        hex_lower.to_ascii_uppercase(),
        hex_lower,
        // serde's default for Vec<u8>: a JSON array of numbers.
        serde_json::to_string(material).expect("json"),
    ]
}

/// Owns a test database (a temp folder for SQLite, a database for PostgreSQL) and removes it
/// when dropped.
pub struct DatabaseGuard {
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl DatabaseGuard {
    /// The temporary folder (data dir, and the SQLite file when SQLite).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg.take() {
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&admin)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A database URL for a fresh, empty database of `backend`, and the guard that removes it.
pub async fn fresh_database_url(backend: &Backend) -> (String, DatabaseGuard) {
    let dir = tempfile::tempdir().expect("temp dir");
    match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}/bulwark.db", dir.path().display());
            (
                url,
                DatabaseGuard {
                    _dir: dir,
                    pg: None,
                },
            )
        }
        Backend::Postgres(admin_url) => {
            let name = format!("bulwark_test_{}", uuid::Uuid::new_v4().simple());
            let admin = sqlx::PgPool::connect(admin_url)
                .await
                .expect("PostgreSQL reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&admin)
                .await
                .expect("create test database");
            admin.close().await;
            let url = replace_db_name(admin_url, &name);
            (
                url,
                DatabaseGuard {
                    _dir: dir,
                    pg: Some((admin_url.clone(), name)),
                },
            )
        }
    }
}

/// A value no other test uses, e.g. `Pw-Secret-alice-<32 hex digits>` (a strong password).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

// ---------------------------------------------------------------------------------------------
// Cookies, and a client for one server
// ---------------------------------------------------------------------------------------------

/// The value of cookie `name` in a response's `Set-Cookie` headers.
pub fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let pair = v.split(';').next()?.trim();
            let (key, value) = pair.split_once('=')?;
            (key == name && !value.is_empty()).then(|| value.to_owned())
        })
}

/// The header naming the client when a trusted proxy forwards its request.
pub const XFF: &str = "x-forwarded-for";

/// A client for one server (the in-process app or a `bulwark serve` process): requests by
/// path, logins optionally sent as from a forwarded client IP, and the browser login form.
#[derive(Clone)]
pub struct Http {
    pub client: Client,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Http {
    /// A new client (connections of its own, redirects not followed) for the server at `base`.
    pub fn new(base: String) -> Self {
        Self {
            client: client(false),
            base,
        }
    }

    /// A new client (connections of its own) for the in-process app.
    pub fn of(app: &TestApp) -> Self {
        Self::new(app.address.clone())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(self.url(path))
    }

    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.client.patch(self.url(path))
    }

    /// `POST /token` from `ip` (sent as `X-Forwarded-For`; only believed from a trusted proxy),
    /// not sent yet.
    pub fn login_request(
        &self,
        ip: Option<&str>,
        username: &str,
        password: &str,
    ) -> RequestBuilder {
        let request = self
            .post("/token")
            .form(&[("username", username), ("password", password)]);
        match ip {
            Some(ip) => request.header(XFF, ip),
            None => request,
        }
    }

    /// `POST /token` from `ip` (see [`Http::login_request`]).
    pub async fn login(&self, ip: Option<&str>, username: &str, password: &str) -> Response {
        self.login_request(ip, username, password)
            .send()
            .await
            .expect("POST /token")
    }

    /// The access token of a login that must succeed.
    pub async fn access_token(&self, username: &str, password: &str) -> String {
        let response = self.login(None, username, password).await;
        assert_eq!(
            response.status(),
            200,
            "login of {username} on {}",
            self.base
        );
        let body = json_of(response).await;
        body["access_token"].as_str().expect("token").to_owned()
    }

    /// `GET /login`: the CSRF cookie it sets and the token in its form.
    pub async fn login_page(&self) -> (String, String) {
        let page = self.get("/login").send().await.expect("GET /login");
        assert_eq!(page.status(), 200, "GET /login");
        let cookie = set_cookie(&page, "csrftoken").expect("a CSRF cookie");
        let html = page.text().await.expect("html");
        let marker = "name=\"csrf_token\" value=\"";
        let start = html.find(marker).expect("a csrf_token field") + marker.len();
        let end = start + html[start..].find('"').expect("end of the value");
        (cookie, html[start..end].to_owned())
    }

    /// `POST /login` from `ip` with the CSRF cookie and token of a login page.
    pub async fn browser_login(
        &self,
        ip: Option<&str>,
        (csrf_cookie, csrf_token): &(String, String),
        username: &str,
        password: &str,
    ) -> Response {
        let mut request = self
            .post("/login")
            .header(header::COOKIE, format!("csrftoken={csrf_cookie}"))
            .form(&[
                ("username", username),
                ("password", password),
                ("csrf_token", csrf_token.as_str()),
            ]);
        if let Some(ip) = ip {
            request = request.header(XFF, ip);
        }
        request.send().await.expect("POST /login")
    }
}
