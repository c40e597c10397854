//! End-to-end: `bulwark_audit::run` against the two FastAPI fixtures of `fixtures/` (a
//! deliberately vulnerable users/items API and its fixed twin), started on loopback from a cached
//! virtualenv (Python 3.11, pinned requirements).
//!
//! - `the_vulnerable_fixture_yields_every_planted_finding`: every (ID, operation) pair of
//!   [`PLANTED`] is reported; within the request budget.
//! - `the_fixed_fixture_yields_nothing_at_or_above_low`: the twin with every flaw corrected.
//! - `the_fixtures_really_have_their_flaws` (fast, no audit): each planted flaw answers a hand-made
//!   request the vulnerable way, and the fixed twin answers the same request safely; the fixtures
//!   stay honest whatever the checks do.
//!
//! Both audits run at the defaults a user gets (50 requests a second, 5 000 at most) and must end
//! within 60 s; `--nocapture` prints their findings, requests and each check's time.

mod common;

use std::time::{Duration, Instant};

use std::sync::Mutex;

use bulwark_audit::{
    AuditConfig, CheckId, CheckStatus, Credentials, Progress, Report, Severity, UserCredential,
    probe::ProbeLimits,
};
use common::Fixture;
use serde_json::{Value, json};

/// Every flaw planted in `fixtures/vulnerable/app.py` (each marked there `# FLAW <id>`): the
/// finding ID and the operations it may be reported on, the planted one first. An empty list
/// means an API-wide flaw, accepted on any operation (`*` included). `tls` is not planted: the
/// contract reports plain HTTP only to non-loopback hosts.
const PLANTED: &[(&str, &[&str])] = &[
    // The token check picks the first authenticated GET that tells a token from none.
    (
        "jwt-alg-none",
        &["GET /users/me", "GET /items/", "GET /items/search", "*"],
    ),
    ("jwt-weak-secret", &["POST /token", "*"]),
    (
        "jwt-signature-not-verified",
        &["GET /users/me", "GET /items/", "GET /items/search", "*"],
    ),
    ("jwt-no-expiry", &["POST /token", "*"]),
    ("auth-missing", &["GET /users/"]),
    ("bola", &["GET /items/{item_id}"]),
    ("bola", &["PUT /items/{item_id}"]),
    ("bola", &["DELETE /items/{item_id}"]),
    ("mass-assignment", &["POST /items/"]),
    ("mass-assignment", &["PUT /items/{item_id}"]),
    ("mass-assignment", &["POST /register"]),
    ("sql-injection", &["GET /items/search"]),
    ("nosql-injection", &["POST /users/lookup"]),
    ("ssti", &["GET /greet"]),
    ("xss-reflected", &["GET /hello"]),
    // Stored through the item's creation (or update), served by its page.
    (
        "xss-stored",
        &[
            "GET /items/{item_id}/page",
            "POST /items/",
            "PUT /items/{item_id}",
        ],
    ),
    ("csrf", &["POST /items/form"]),
    ("login-no-rate-limit", &["POST /token", "*"]),
    ("user-enumeration", &["POST /token", "*"]),
    ("cors-credentials-wildcard", &[]),
    ("security-headers", &[]),
    // Planted on the search (a quote breaks its SQL); the app's other 500s (an id too large for
    // SQLite, a NUL byte in a file name or a password) carry the same traceback.
    (
        "verbose-errors",
        &[
            "GET /items/search",
            "GET /items/{item_id}",
            "GET /files",
            "GET /greet",
            "POST /token",
        ],
    ),
    (
        "server-error",
        &[
            "GET /items/search",
            "GET /items/{item_id}",
            "GET /files",
            "GET /greet",
            "POST /token",
        ],
    ),
    ("open-redirect", &["GET /redirect"]),
    ("ssrf", &["GET /fetch"]),
    ("path-traversal", &["GET /files"]),
    // A refused URL answers 400, which the document does not list.
    ("openapi-drift", &["GET /fetch"]),
    ("weak-password-policy", &["POST /register"]),
];

/// The request budget of one audit (the contract's default).
const MAX_REQUESTS: u64 = 5000;
/// The longest a full audit of a fixture may take.
const MAX_DURATION: Duration = Duration::from_secs(60);

/// The audit of a fixture as alice and bob. Loopback: a higher rate than the default 50/s.
fn config(url: &str) -> AuditConfig {
    let mut config = AuditConfig::new(url);
    config.credentials = Credentials {
        users: vec![
            UserCredential {
                username: "alice".into(),
                password: Some("alice-password-1".into()),
            },
            UserCredential {
                username: "bob".into(),
                password: Some("bob-password-2".into()),
            },
        ],
        ..Credentials::default()
    };
    // What a user gets: 5 000 requests at most, 50 a second, 10 s each.
    config.limits = ProbeLimits::default();
    assert_eq!(config.limits.max_requests, MAX_REQUESTS);
    config
}

/// Times each check (printed with the report).
#[derive(Default)]
struct Timer {
    current: Mutex<Option<Instant>>,
    times: Mutex<Vec<(CheckId, Duration)>>,
}

impl Progress for Timer {
    fn check(&self, _id: CheckId) {
        *self.current.lock().expect("lock") = Some(Instant::now());
    }

    fn done(&self, id: CheckId, _status: CheckStatus) {
        if let Some(started) = self.current.lock().expect("lock").take() {
            self.times
                .lock()
                .expect("lock")
                .push((id, started.elapsed()));
        }
    }
}

async fn audit(fixture: &Fixture) -> Report {
    let started = Instant::now();
    let timer = Timer::default();
    let report = bulwark_audit::run(config(&fixture.url), &timer)
        .await
        .unwrap_or_else(|e| panic!("audit of the {} fixture: {e}", fixture.name));
    println!(
        "{} fixture: {} requests in {:.1} s ({} ms reported), {} findings",
        fixture.name,
        report.requests,
        started.elapsed().as_secs_f64(),
        report.duration_ms,
        report.findings.len()
    );
    for f in &report.findings {
        println!(
            "  {:<8} {:<28} {:<28} {}",
            f.severity, f.id, f.operation, f.title
        );
    }
    let times = timer.times.lock().expect("lock").clone();
    for c in &report.checks {
        let took = times
            .iter()
            .find(|(id, _)| *id == c.id)
            .map_or(0, |(_, d)| d.as_millis());
        println!(
            "  check {:<28} {:<7} {:>6} ms  {}",
            c.id.as_str(),
            format!("{:?}", c.status),
            took,
            c.reason.as_deref().unwrap_or("")
        );
    }
    assert!(
        report.requests <= MAX_REQUESTS,
        "{} requests, over the budget",
        report.requests
    );
    // The bar for an API of up to 30 operations with two users, at the default rate.
    assert!(
        started.elapsed() <= MAX_DURATION,
        "the audit took {:.1} s, over {} s",
        started.elapsed().as_secs_f64(),
        MAX_DURATION.as_secs()
    );
    report
}

fn found(report: &Report, id: &str, operations: &[&str]) -> bool {
    report.findings.iter().any(|f| {
        f.id.as_str() == id && (operations.is_empty() || operations.contains(&f.operation.as_str()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vulnerable_fixture_yields_every_planted_finding() {
    let fixture = Fixture::start("vulnerable").await;
    let report = audit(&fixture).await;
    let missing: Vec<String> = PLANTED
        .iter()
        .filter(|(id, ops)| !found(&report, id, ops))
        .map(|(id, ops)| match ops.first() {
            Some(op) => format!("{id} on {op}"),
            None => format!("{id} (any operation)"),
        })
        .collect();
    println!(
        "planted findings reported: {}/{}",
        PLANTED.len() - missing.len(),
        PLANTED.len()
    );
    for m in &missing {
        println!("  MISSING {m}");
    }
    assert!(
        missing.is_empty(),
        "planted flaws not reported: {missing:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixed_fixture_yields_nothing_at_or_above_low() {
    let fixture = Fixture::start("fixed").await;
    let report = audit(&fixture).await;
    let bad: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Low)
        .map(|f| {
            format!(
                "{} {} on {}: {}\n{}\n{}",
                f.severity, f.id, f.operation, f.title, f.evidence.request, f.evidence.response
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "findings on the fixed twin:\n{}",
        bad.join("\n\n")
    );
}

// --- the fixtures themselves, without the audit ------------------------------------------------

use common::http_client as client;

async fn token(c: &reqwest::Client, url: &str, user: &str, password: &str) -> String {
    let answer = c
        .post(format!("{url}/token"))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .expect("login");
    assert_eq!(answer.status(), 200, "login as {user}");
    let body: Value = answer.json().await.expect("json");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// One hand-made request's answer: status, headers and body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let answer = request.send().await.expect("answer");
    Answer {
        status: answer.status().as_u16(),
        headers: answer.headers().clone(),
        body: answer.text().await.unwrap_or_default(),
    }
}

/// The base64url encoding of a JSON value, as in a JWT.
fn b64(v: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Sends the same hand-made attacks to one fixture; `vulnerable` says which answers to expect.
async fn probe_fixture(url: &str, vulnerable: bool) {
    let c = client();
    let alice = token(&c, url, "alice", "alice-password-1").await;
    let bob = token(&c, url, "bob", "bob-password-2").await;
    let bearer = |t: &str| format!("Bearer {t}");
    let v = vulnerable;

    // ssti: {{7*7}} renders 49.
    let a = send(c.get(format!("{url}/greet")).query(&[("name", "{{7*7}}")])).await;
    assert_eq!(a.body.contains("Hello 49!"), v, "ssti: {}", a.body);

    // sql-injection: a tautology returns other users' items; a quote breaks the query.
    let search = |q: &str| {
        c.get(format!("{url}/items/search"))
            .query(&[("q", q)])
            .header("authorization", bearer(&alice))
    };
    let plain = send(search("zzz")).await;
    let tautology = send(search("zzz' OR 1=1--")).await;
    assert_eq!(plain.body, "[]");
    assert_eq!(
        tautology.body.contains("Bike"),
        v,
        "sqli: {}",
        tautology.body
    );
    let quote = send(search("'")).await;
    // server-error, verbose-errors: a 500 with the SQL error and a traceback.
    assert_eq!(quote.status == 500, v, "quote: {}", quote.status);
    assert_eq!(
        quote.body.contains("Traceback"),
        v,
        "verbose: {}",
        quote.body
    );

    // bola: bob reads alice's item 1.
    let a = send(
        c.get(format!("{url}/items/1"))
            .header("authorization", bearer(&bob)),
    )
    .await;
    assert_eq!(
        a.status == 200 && a.body.contains("Alice's notes"),
        v,
        "bola: {}",
        a.body
    );

    // mass-assignment: bob creates an item owned by alice; an account registers as admin.
    let a = send(
        c.post(format!("{url}/items/"))
            .header("authorization", bearer(&bob))
            .json(&json!({"title": "t", "owner_id": 1})),
    )
    .await;
    assert_eq!(
        a.body.contains("\"owner_id\":1"),
        v,
        "mass-assignment: {}",
        a.body
    );
    let a = send(c.post(format!("{url}/register")).json(
        &json!({"username": format!("mallory{}", std::process::id()),
                "password": "Mallory-pw-long-1", "is_admin": true}),
    ))
    .await;
    assert_eq!(
        a.body.contains("\"is_admin\":true"),
        v,
        "mass-assignment: {}",
        a.body
    );

    // auth-missing: the user list without a token.
    let a = send(c.get(format!("{url}/users/"))).await;
    assert_eq!(
        a.status == 200 && a.body.contains("alice"),
        v,
        "auth-missing: {}",
        a.status
    );

    // jwt-alg-none and jwt-signature-not-verified.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&json!({"sub": "bob", "exp": 4_000_000_000u64}))
    );
    let a = send(
        c.get(format!("{url}/users/me"))
            .header("authorization", bearer(&none)),
    )
    .await;
    assert_eq!(a.status == 200, v, "alg none: {}", a.status);
    let mut parts: Vec<&str> = alice.split('.').collect();
    parts[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let forged = parts.join(".");
    let a = send(
        c.get(format!("{url}/users/me"))
            .header("authorization", bearer(&forged)),
    )
    .await;
    assert_eq!(a.status == 200, v, "forged signature: {}", a.status);

    // jwt-no-expiry: the token's claims have no exp.
    let claims: Value = {
        use base64::Engine as _;
        let payload = alice.split('.').nth(1).expect("payload");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64");
        serde_json::from_slice(&bytes).expect("claims")
    };
    assert_eq!(claims.get("exp").is_none(), v, "exp: {claims}");

    // nosql-injection: {"$ne": ...} matches every user.
    let a = send(
        c.post(format!("{url}/users/lookup"))
            .header("authorization", bearer(&alice))
            .json(&json!({"username": {"$ne": "zzz"}})),
    )
    .await;
    assert_eq!(a.body.contains("bob"), v, "nosql: {}", a.body);

    // xss-reflected and xss-stored.
    let payload = "<script>alert(7)</script>";
    let a = send(c.get(format!("{url}/hello")).query(&[("name", payload)])).await;
    assert_eq!(a.body.contains(payload), v, "xss-reflected: {}", a.body);
    let created: Value = c
        .post(format!("{url}/items/"))
        .header("authorization", bearer(&alice))
        .json(&json!({"title": "x", "description": payload}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let page = send(
        c.get(format!("{url}/items/{}/page", created["id"]))
            .header("authorization", bearer(&alice)),
    )
    .await;
    assert_eq!(page.body.contains(payload), v, "xss-stored: {}", page.body);

    // csrf: the session cookie alone, from another origin, creates an item.
    let a = send(
        c.post(format!("{url}/items/form"))
            .header("cookie", format!("session={alice}"))
            .header("origin", "https://evil.example")
            .form(&[("title", "csrf")]),
    )
    .await;
    assert_eq!(a.status == 201, v, "csrf: {}", a.status);

    // user-enumeration: an unknown user and a wrong password answer alike only when fixed.
    let unknown = send(
        c.post(format!("{url}/token"))
            .form(&[("username", "nobody-here"), ("password", "x")]),
    )
    .await;
    let wrong = send(
        c.post(format!("{url}/token"))
            .form(&[("username", "alice"), ("password", "x")]),
    )
    .await;
    assert_eq!(
        unknown.status != wrong.status || unknown.body != wrong.body,
        v,
        "user-enumeration: {} {} / {} {}",
        unknown.status,
        unknown.body,
        wrong.status,
        wrong.body
    );

    // cors-credentials-wildcard: a foreign origin is reflected with credentials.
    let a = send(
        c.get(format!("{url}/users/me"))
            .header("authorization", bearer(&alice))
            .header("origin", "https://evil.example"),
    )
    .await;
    let acao = a
        .headers
        .get("access-control-allow-origin")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    assert_eq!(acao == "https://evil.example", v, "cors: {acao:?}");

    // security-headers.
    assert_eq!(
        a.headers.get("x-content-type-options").is_none(),
        v,
        "nosniff"
    );

    // open-redirect.
    let a = send(
        c.get(format!("{url}/redirect"))
            .query(&[("next", "https://evil.example/")]),
    )
    .await;
    let location = a
        .headers
        .get("location")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    assert_eq!(
        location == "https://evil.example/",
        v,
        "redirect: {location:?}"
    );

    // ssrf: the server fetches a loopback URL (its own readme) for us.
    let a = send(
        c.get(format!("{url}/fetch"))
            .query(&[("url", format!("{url}/files?name=readme.txt"))]),
    )
    .await;
    assert_eq!(
        a.body.contains("Bulwark audit fixture"),
        v,
        "ssrf: {}",
        a.body
    );

    // path-traversal: ../app.py, outside files/.
    let a = send(
        c.get(format!("{url}/files"))
            .query(&[("name", "../app.py")]),
    )
    .await;
    assert_eq!(a.body.contains("import "), v, "traversal: {}", a.status);

    // weak-password-policy: "a" is a password.
    let a = send(
        c.post(format!("{url}/register"))
            .json(&json!({"username": format!("weak{}", std::process::id()), "password": "a"})),
    )
    .await;
    assert_eq!(
        (200..300).contains(&a.status),
        v,
        "weak password: {}",
        a.status
    );

    // login-no-rate-limit: 12 wrong passwords in a row, never a 429 (the fixed twin allows 10
    // failures a minute per username). Last: it locks alice's logins on the fixed twin.
    let mut limited = false;
    for _ in 0..12 {
        let a = send(
            c.post(format!("{url}/token"))
                .form(&[("username", "alice"), ("password", "wrong")]),
        )
        .await;
        limited |= a.status == 429;
    }
    assert_eq!(!limited, v, "rate limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixtures_really_have_their_flaws() {
    let (vulnerable, fixed) = tokio::join!(Fixture::start("vulnerable"), Fixture::start("fixed"));
    // The twins document the same operations.
    let c = client();
    let operations = |doc: Value| -> Vec<String> {
        let mut ops: Vec<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .keys()
                    .map(move |m| format!("{} {path}", m.to_uppercase()))
            })
            .collect();
        ops.sort();
        ops
    };
    let mut docs = Vec::new();
    for f in [&vulnerable, &fixed] {
        let doc: Value = c
            .get(format!("{}/openapi.json", f.url))
            .send()
            .await
            .expect("openapi")
            .json()
            .await
            .expect("json");
        docs.push(operations(doc));
    }
    assert_eq!(docs[0], docs[1], "the twins document different operations");
    for (id, ops) in PLANTED {
        for op in ops.iter().filter(|op| **op != "*") {
            assert!(
                docs[0].contains(&op.to_string()),
                "{id}: {op} is not documented"
            );
        }
    }
    probe_fixture(&vulnerable.url, true).await;
    probe_fixture(&fixed.url, false).await;
}
