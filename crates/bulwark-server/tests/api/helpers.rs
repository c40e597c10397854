//! Spawns the real server on port 0 with a fresh database, and talks HTTP to it.
//!
//! Every test runs against SQLite (a new file each) and, when `BULWARK_TEST_DATABASE_URL` is set,
//! against PostgreSQL (a new database each, dropped afterwards). Write a test as
//! `async fn name(backend: Backend)` and add `test_both!(name);` under it.

use std::time::Duration;

use bulwark_server::{
    config::{PasswordHashing, Settings},
    startup::Application,
    state::AppState,
    users::create_user,
};
use reqwest::{Client, Response, header};
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
    settings.rate_limits.login_per_ip = "10000/minute".to_owned();
    settings.rate_limits.login_per_username = "10000/minute".to_owned();
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
    let client = Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client,
        state,
        settings,
        _database: database,
        shutdown: Some(tx),
    }
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
        create_user(
            self.state.repo.as_ref(),
            &self.state.hasher,
            &self.state.policy,
            name,
            password.to_owned(),
            roles.iter().map(|r| (*r).to_owned()).collect(),
        )
        .await
        .expect("user created")
        .id
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/token"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .expect("request")
    }

    /// A user with `roles` and a valid access token: `(id, token)`.
    pub async fn user_with_token(&self, name: &str, roles: &[&str]) -> (i64, String) {
        let id = self.create_user(name, PASSWORD, roles).await;
        let response = self.login(name, PASSWORD).await;
        assert_eq!(response.status(), 200, "login of {name}");
        let body: Value = response.json().await.expect("json");
        (id, body["access_token"].as_str().expect("token").to_owned())
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
