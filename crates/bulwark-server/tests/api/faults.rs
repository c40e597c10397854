//! Database outages (fault injection): a request that needs the database while it is
//! unreachable or busy answers 503 `{"detail": ...}` with `Retry-After` within the pool's
//! acquire timeout — never a 500, never a hang — `/ready` answers 503, and the server recovers
//! by itself once the database is back.
//!
//! PostgreSQL is cut off through a TCP relay of the test's own (the shared server is never
//! stopped): cutting closes every relayed connection and the listening port, as a stopped server
//! would. `reliability/faults.sh` does the same end to end, stopping a PostgreSQL of its own.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bulwark_server::config::DurationSetting;
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::AbortHandle};

use crate::helpers::{Backend, TestApp, spawn_app_with};

/// The acquire timeout the tests configure; every 503 must come within it plus this margin.
const ACQUIRE: Duration = Duration::from_secs(1);
const MARGIN: Duration = Duration::from_millis(1500);

/// A TCP relay to `target` on a fixed local port that can be cut and restored.
struct Relay {
    port: u16,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let relay = Self {
            port: listener.local_addr().expect("addr").port(),
            target,
            tasks: Arc::default(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let (target, tasks) = (self.target, Arc::clone(&self.tasks));
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().expect("lock").push(pipe.abort_handle());
            }
        });
        self.tasks.lock().expect("lock").push(accept.abort_handle());
    }

    /// As a stopped server: every connection closed, the port refusing.
    async fn cut(&self) {
        for task in self.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
        // Aborted tasks drop their sockets when next polled.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// As a restarted server: the same port accepts again.
    async fn restore(&self) {
        let start = Instant::now();
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(err) if start.elapsed() < Duration::from_secs(5) => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("cannot listen on {} again: {err}", self.port),
            }
        };
        self.serve(listener);
    }
}

/// `postgres://user@host:port/db?query` with host and port replaced by 127.0.0.1:`port`, and the
/// original host:port.
fn through_relay(url: &str, port: u16) -> (String, SocketAddr) {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let target = std::net::ToSocketAddrs::to_socket_addrs(&host)
        .expect("resolvable host")
        .next()
        .expect("an address");
    (format!("{scheme}://{user}127.0.0.1:{port}{path}"), target)
}

async fn create_item(app: &TestApp, token: &str, name: &str) -> (reqwest::Response, Duration) {
    let start = Instant::now();
    let response = app
        .post_json("/items/", Some(token), &json!({"name": name, "price": 2.5}))
        .await;
    (response, start.elapsed())
}

/// A 503 in the contract's shape, within the budget.
async fn assert_unavailable(response: reqwest::Response, took: Duration, what: &str) {
    assert_eq!(response.status(), 503, "{what}");
    assert!(
        took < ACQUIRE + MARGIN,
        "{what}: answered after {took:?} (acquire timeout {ACQUIRE:?})"
    );
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1"),
        "{what}: Retry-After"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body,
        json!({"detail": "Service temporarily unavailable"}),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_answers_503_within_the_acquire_timeout_and_recovers_by_itself() {
    let Some(Backend::Postgres(admin_url)) = Backend::postgres() else {
        eprintln!("BULWARK_TEST_DATABASE_URL is not set: PostgreSQL outage test not run");
        return;
    };
    let (_, target) = through_relay(&admin_url, 0);
    let relay = Relay::start(target).await;
    let port = relay.port;
    let app = spawn_app_with(Backend::Postgres(admin_url), move |s| {
        s.database_url = through_relay(&s.database_url, port).0;
        s.database_acquire_timeout = DurationSetting(ACQUIRE);
    })
    .await;
    let (_, token) = app.user_with_token("outage", &[]).await;
    let (response, _) = create_item(&app, &token, "before").await;
    assert_eq!(response.status(), 201);
    let before: Value = response.json().await.expect("json");

    // Down: writes, reads and readiness answer 503 in time, again and again (no pile-up).
    relay.cut().await;
    for round in 0..3 {
        let (response, took) = create_item(&app, &token, "during").await;
        assert_unavailable(response, took, &format!("POST /items/ #{round}")).await;
        let start = Instant::now();
        let response = app
            .get(&format!("/items/{}", before["id"]), Some(&token))
            .await;
        assert_unavailable(response, start.elapsed(), "GET /items/{id}").await;
    }
    let start = Instant::now();
    let response = app.get("/ready", None).await;
    assert_eq!(response.status(), 503, "/ready while the database is down");
    assert!(start.elapsed() < Duration::from_secs(2) + MARGIN);
    let body: Value = response.json().await.expect("json");
    assert!(body["detail"].is_string(), "{body}");

    // Back: the pool replaces its broken connections by itself; nothing was lost.
    relay.restore().await;
    let start = Instant::now();
    loop {
        let (response, _) = create_item(&app, &token, "after").await;
        if response.status() == 201 {
            break;
        }
        assert_eq!(response.status(), 503, "while recovering");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no recovery within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("recovered {:?} after the relay came back", start.elapsed());
    assert_eq!(app.get("/ready", None).await.status(), 200);
    let response = app
        .get(&format!("/items/{}", before["id"]), Some(&token))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_file_answers_503_after_the_busy_timeout_not_500() {
    use sqlx::Connection as _;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.database_acquire_timeout = DurationSetting(ACQUIRE);
    })
    .await;
    let (_, token) = app.user_with_token("locked", &[]).await;
    let (response, _) = create_item(&app, &token, "before").await;
    assert_eq!(response.status(), 201);

    // Another process holds the write lock (a long migration, a backup tool...).
    let mut other = sqlx::SqliteConnection::connect(&app.settings.database_url)
        .await
        .expect("second connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("write lock");
    let start = Instant::now();
    let response = app
        .post_json(
            "/items/",
            Some(&token),
            &json!({"name": "blocked", "price": 1}),
        )
        .await;
    let took = start.elapsed();
    assert_eq!(response.status(), 503, "a busy database is an outage");
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, json!({"detail": "Service temporarily unavailable"}));
    // Readers are not blocked in WAL mode.
    assert_eq!(app.get("/items/", Some(&token)).await.status(), 200);

    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("release");
    let (response, _) = create_item(&app, &token, "after").await;
    assert_eq!(response.status(), 201);
}

#[test]
fn relay_urls_keep_user_path_and_query() {
    let (url, target) = through_relay("postgres://postgres@127.0.0.1:5432/db?sslmode=disable", 7);
    assert_eq!(url, "postgres://postgres@127.0.0.1:7/db?sslmode=disable");
    assert_eq!(target, "127.0.0.1:5432".parse().expect("addr"));
}
