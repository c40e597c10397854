//! Rate limits shared through Redis: two real `bulwark serve` processes on one Redis
//! and one database admit exactly the limit between them; and a Redis of the test's own
//! (`redis-server` on a spare port) frozen, killed and restarted in the middle of a run: the
//! server keeps answering within its budget, login limits fail closed (503), other limits fail
//! open (no headers), and limiting resumes by itself.
//!
//! Both need `BULWARK_TEST_REDIS_URL` (skipped with a message when unset); the outage test also
//! needs the `redis-server` binary (`BULWARK_TEST_REDIS_SERVER`, default `redis-server` on the
//! `PATH`). The shared Redis is never flushed: keys are unique per run (fresh usernames, fresh
//! client addresses forwarded through a trusted proxy, the test client at `127.0.0.1`).

use std::{
    fs::File,
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::{RequestBuilder, Response};
use serde_json::Value;

use crate::helpers::{
    Backend, DatabaseGuard, PASSWORD, TestApp, XFF, fresh_database_url, spawn_app_with,
};
use crate::process::{Instance, free_port};
use crate::rate_limits::{
    TIMING, assert_exact_burst, assert_too_many, limits, limits_of, redis_url, retry_after,
    unique_ip, unique_name,
};

// ---------------------------------------------------------------------------------------------
// Two server processes, one Redis
// ---------------------------------------------------------------------------------------------

/// `GET /.well-known/jwks.json` on `instance` from `ip`, not sent yet.
fn jwks(instance: &Instance, ip: &str) -> RequestBuilder {
    instance.http.get("/.well-known/jwks.json").header(XFF, ip)
}

/// `POST /token` on `instance` for `username` from `ip`, not sent yet.
fn login(instance: &Instance, username: &str, ip: &str) -> RequestBuilder {
    instance.http.login_request(Some(ip), username, PASSWORD)
}

/// Two instances on one database and one Redis; the servers stop before the database goes.
struct Pair {
    a: Instance,
    b: Instance,
    _db: DatabaseGuard,
}

impl Pair {
    async fn start(backend: &Backend, config: &str) -> Self {
        let (database_url, db) = fresh_database_url(backend).await;
        let master_secret = bulwark::secret::random_token(32);
        let mut a = Instance::start(
            "A",
            free_port(),
            &database_url,
            &master_secret,
            Some(config),
            &[],
        );
        let mut b = Instance::start(
            "B",
            free_port(),
            &database_url,
            &master_secret,
            Some(config),
            &[],
        );
        // `GET /ready`, not the JWKS route, whose limit the test sets low.
        a.wait_for("/ready", "ready").await;
        b.wait_for("/ready", "ready").await;
        Self { a, b, _db: db }
    }

    /// The instance for the `i`-th request: A, B, A, B...
    fn pick(&self, i: usize) -> &Instance {
        if i.is_multiple_of(2) {
            &self.a
        } else {
            &self.b
        }
    }
}

/// Two `bulwark serve` processes sharing Redis (and a database): under concurrent requests
/// spread over both, the combined admissions equal the limit exactly — per client IP on a
/// route override, per IP and per username on the login route — and the headers count down
/// across instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_admit_exactly_the_limit_between_them() {
    let Some(url) = redis_url() else { return };
    // PostgreSQL when configured (as in production), else one SQLite file for both.
    let backend = Backend::postgres().unwrap_or(Backend::Sqlite);
    let config = format!(
        r#"redis_url = "{url}"
trusted_proxies = ["127.0.0.1/32"]

[rate_limits]
login_per_ip = "10/minute"
login_per_username = "5/minute"
default = "100000/minute"

[rate_limits.routes]
"GET /.well-known/jwks.json" = "10/minute"
"#
    );
    let pair = Pair::start(&backend, &config).await;

    let _timing = TIMING.lock().await;

    // Per client IP on a route override: 60 concurrent requests, alternating instances.
    assert_exact_burst(
        "GET /.well-known/jwks.json across two instances",
        10,
        200,
        || {
            let ip = unique_ip();
            (0..60).map(|i| jwks(pair.pick(i), &ip)).collect()
        },
    )
    .await;

    // Logins per username: every attempt from a fresh address, alternating instances.
    let name = std::sync::Mutex::new(String::new());
    assert_exact_burst("logins per username across two instances", 5, 401, || {
        let fresh = unique_name("shared");
        *name.lock().expect("lock") = fresh.clone();
        (0..40)
            .map(|i| login(pair.pick(i), &fresh, &unique_ip()))
            .collect()
    })
    .await;
    // ...in any letter case, on either instance.
    let name = name.into_inner().expect("lock");
    for (i, variant) in [name.to_uppercase(), name.clone()].iter().enumerate() {
        let response = login(pair.pick(i), variant, &unique_ip())
            .send()
            .await
            .expect("request");
        assert_too_many(response).await;
    }

    // Logins per IP: fresh usernames from one address, alternating instances.
    assert_exact_burst("logins per IP across two instances", 10, 401, || {
        let ip = unique_ip();
        (0..40)
            .map(|i| login(pair.pick(i), &unique_name("shared"), &ip))
            .collect()
    })
    .await;

    // One count: the headers go down by one whichever instance answers.
    let ip = unique_ip();
    for (i, remaining) in (0..10u64).rev().enumerate() {
        let instance = pair.pick(i);
        let response = jwks(instance, &ip).send().await.expect("request");
        assert_eq!(response.status(), 200, "{}", instance.name);
        let l = limits(&response);
        assert_eq!((l.limit, l.remaining), (10, remaining), "{}", instance.name);
    }
    let response = jwks(&pair.b, &ip).send().await.expect("request");
    assert_too_many(response).await;
}

// ---------------------------------------------------------------------------------------------
// Redis outage
// ---------------------------------------------------------------------------------------------

/// A `redis-server` of the test's own, killed when dropped.
struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    fn binary() -> String {
        std::env::var("BULWARK_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
    }

    fn start_on(port: u16) -> Self {
        let mut server = Self {
            child: None,
            port,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        server.restart();
        server
    }

    /// Starts (again) on the same port, with no persistence, and waits until it accepts.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = File::create(self.dir.path().join("redis.log")).expect("log");
        let child = Command::new(Self::binary())
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", Self::binary()));
        self.child = Some(child);
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start:\n{}",
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Stops answering without closing anything (as a hung or partitioned Redis).
    fn freeze(&self) {
        self.signal("-STOP");
    }

    fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Gone: connections reset, the port refuses.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The longest any single answer may take while Redis is frozen or gone (the store's own budget
/// is 50 ms a check, 250 ms to connect; a hang would be the client's 30 s timeout).
const BUDGET: Duration = Duration::from_secs(1);

async fn timed(request: RequestBuilder) -> (Response, Duration) {
    let start = Instant::now();
    let response = request.send().await.expect("an answer");
    (response, start.elapsed())
}

/// While Redis is down (frozen or gone): every answer within [`BUDGET`]; the login route fails
/// closed with 503 (the per-IP check comes first), other routes fail open — a normal answer
/// without `RateLimit-*` headers, even on a route whose budget was spent — and nothing is a 500.
/// Answers the slowest answer seen.
async fn assert_degraded(app: &TestApp, token: &str, what: &str) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let (response, took) = timed(app.client.get(app.url("/.well-known/jwks.json"))).await;
        slowest = slowest.max(took);
        assert_eq!(
            response.status(),
            200,
            "{what}: GET /.well-known/jwks.json fails open"
        );
        assert_eq!(limits_of(response.headers()), None, "{what}: no headers");
        assert!(retry_after(response.headers()).is_none());

        let (response, took) =
            timed(app.client.get(app.url("/protected")).bearer_auth(token)).await;
        slowest = slowest.max(took);
        assert_eq!(response.status(), 200, "{what}: GET /protected fails open");
        assert_eq!(limits_of(response.headers()), None, "{what}: no headers");

        // Item writes publish their events through Redis too: best effort, within budget.
        let (response, took) = timed(
            app.client
                .post(app.url("/items/"))
                .bearer_auth(token)
                .json(&serde_json::json!({"name": "during the outage", "price": 1})),
        )
        .await;
        slowest = slowest.max(took);
        assert_eq!(response.status(), 201, "{what}: POST /items/ fails open");

        let (response, took) = timed(app.client.post(app.url("/token")).form(&[
            ("username", unique_name("u").as_str()),
            ("password", PASSWORD),
        ]))
        .await;
        slowest = slowest.max(took);
        assert_eq!(response.status(), 503, "{what}: POST /token fails closed");
        assert!(
            retry_after(response.headers()).is_some(),
            "{what}: 503 with Retry-After"
        );
        let body: Value = response.json().await.expect("json");
        assert!(body["detail"].is_string(), "{what}: {body}");
    }
    let (response, took) = timed(app.client.get(app.url("/ready"))).await;
    slowest = slowest.max(took);
    assert_eq!(response.status(), 503, "{what}: not ready without Redis");
    assert!(
        slowest < BUDGET,
        "{what}: an answer took {slowest:?} (budget {BUDGET:?})"
    );
    println!("{what}: slowest answer {slowest:?}");
    slowest
}

/// Polls until the login route stops failing closed (Redis reachable again); answers the time
/// it took and the first non-503 answer.
async fn wait_for_redis(app: &TestApp, what: &str) -> (Duration, Response) {
    let start = Instant::now();
    loop {
        let response = app.login(&unique_name("u"), PASSWORD).await;
        if response.status() != 503 {
            println!("{what}: limiting resumed after {:?}", start.elapsed());
            return (start.elapsed(), response);
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: limiting did not resume within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis frozen, then killed, then started again, in the middle of a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_logins_closed_and_the_rest_open_then_limiting_resumes() {
    if redis_url().is_none() {
        return;
    }
    let _timing = TIMING.lock().await;
    let mut redis = RedisServer::start_on(free_port());
    let redis_url = redis.url();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.redis_url = Some(redis_url);
        // Per hour: no slot comes back during the test, however slow the machine.
        s.rate_limits.login_per_ip = "3/hour".parse().unwrap();
        s.rate_limits.login_per_username = "1000/minute".parse().unwrap();
        s.rate_limits.default = "100000/minute".parse().unwrap();
        s.rate_limits.routes = [(
            "GET /.well-known/jwks.json".parse().unwrap(),
            "3/hour".parse().unwrap(),
        )]
        .into();
    })
    .await;

    // Up: limiting works (the token's login is the first of three).
    let (_, token) = app.user_with_token(&unique_name("o"), &[]).await;
    for remaining in [2, 1, 0] {
        let response = app.get("/.well-known/jwks.json", None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(limits(&response).remaining, remaining);
    }
    assert_too_many(app.get("/.well-known/jwks.json", None).await).await;
    for remaining in [1, 0] {
        let response = app.login(&unique_name("u"), PASSWORD).await;
        assert_eq!(response.status(), 401);
        assert_eq!(limits(&response).remaining, remaining);
    }
    assert_too_many(app.login(&unique_name("u"), PASSWORD).await).await;

    // Frozen: connections stay open, nothing answers — the 50 ms store timeout must hold.
    redis.freeze();
    assert_degraded(&app, &token, "Redis frozen").await;
    assert!(
        app.state.limits.limiter.store_failures() > 0,
        "failures counted"
    );

    // Thawed: the counts were kept, so limiting resumes where it was.
    redis.thaw();
    let (_, first) = wait_for_redis(&app, "Redis thawed").await;
    assert_too_many(first).await;
    assert_too_many(app.get("/.well-known/jwks.json", None).await).await;

    // Killed: connections reset, the port refuses.
    redis.kill();
    assert_degraded(&app, &token, "Redis killed").await;

    // Started again on the same port (empty): limiting resumes by itself.
    redis.restart();
    let (_, first) = wait_for_redis(&app, "Redis restarted").await;
    assert_eq!(first.status(), 401);
    let l = limits(&first);
    // A fresh count: 2 left, unless a poll's per-username check (after its per-IP one) missed
    // the budget while the connection came back.
    assert!(l.limit == 3 && l.remaining <= 2, "{l:?}");
    for remaining in (0..l.remaining).rev() {
        let response = app.login(&unique_name("u"), PASSWORD).await;
        assert_eq!(response.status(), 401);
        assert_eq!(limits(&response).remaining, remaining);
    }
    assert_too_many(app.login(&unique_name("u"), PASSWORD).await).await;
    for remaining in [2, 1, 0] {
        let response = app.get("/.well-known/jwks.json", None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(limits(&response).remaining, remaining);
    }
    assert_too_many(app.get("/.well-known/jwks.json", None).await).await;
    let response = app.get("/ready", None).await;
    assert_eq!(response.status(), 200, "ready again");
}
