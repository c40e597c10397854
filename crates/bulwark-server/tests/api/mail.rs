//! Mail delivery over a real SMTP server (contract: "Mail", "Accounts (self-service)"): the
//! library's aiosmtpd script (`smtp.rs`) receives what the server sends, and each message is
//! parsed back.
//!
//! - A reset mail (From, To, subject, text and HTML parts, the link) goes out over SMTP, and its
//!   link, followed by a real HTTP client through the page's form, sets the new password.
//! - A down or silent SMTP server never slows a request; mails queued meanwhile all go out, each
//!   once, when it is back, and `/metrics` counts them (`bulwark_mails_total{kind=...}`).
//! - Delivery is durable: mails queued by a `bulwark serve` killed with SIGKILL go out, each
//!   once, after a restart on the same database — also a reset request answered 202 just before
//!   the kill; two instances sharing one PostgreSQL database send each mail once. A mail waiting
//!   in the queue never holds its link's token in clear.
//! - A recipient refused with 550 is given up at once, counted as failed, and never retried.
//! - The start-up banner shows the SMTP URL without its password (and no log line ever holds
//!   it), or the outbox folder when `smtp_url` is unset.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    helpers::{
        Backend, DatabaseGuard, Http, PASSWORD, TestApp, fresh_database_url, now, set_cookie,
        spawn_app_with, unique,
    },
    process::{BinEnv, Instance, KillOnDrop, RATE_LIMITS_OFF, Server, free_port, free_ports},
    rate_limits::TIMING,
    smtp::{Received, SmtpServer},
    test_both,
};

const NEW_PASSWORD: &str = "quiet-Lantern-48-orbit";

const RESET_REQUESTED: &str = "If the address is known, a reset link is on its way";

/// The longest a request may take while the mail server is down or silent.
const FAST: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `POST /password-reset/request` for `email`, asserting the contract's 202; answers how long it
/// took.
async fn request_reset(http: &Http, email: &str) -> Duration {
    let started = Instant::now();
    let response = http
        .post("/password-reset/request")
        .json(&json!({ "email": email }))
        .send()
        .await
        .expect("POST /password-reset/request");
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 202, "reset request for {email}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, json!({ "detail": RESET_REQUESTED }));
    elapsed
}

/// The mail counters of one `/metrics` scrape: `bulwark_mails_total{kind=...}` by kind (a kind
/// not counted yet is absent: 0).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct MailMetrics {
    queued: u64,
    sent: u64,
    retried: u64,
    failed: u64,
}

/// Scrapes `http://addr/metrics` (retrying while its listener starts).
async fn mail_metrics(addr: SocketAddr) -> MailMetrics {
    let client = crate::helpers::client(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        match client.get(format!("http://{addr}/metrics")).send().await {
            Ok(response) if response.status() == 200 => {
                break response.text().await.expect("metrics text");
            }
            other => {
                assert!(Instant::now() < deadline, "no metrics on {addr}: {other:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("bulwark_mails_total{kind=\"") else {
            continue;
        };
        let (kind, value) = rest.split_once("\"} ").expect("a mails sample");
        let value: f64 = value.trim().parse().expect("a number");
        counts.insert(kind.to_owned(), value as u64);
    }
    for kind in counts.keys() {
        assert!(
            ["queued", "sent", "retried", "failed"].contains(&kind.as_str()),
            "unknown kind {kind}:\n{text}"
        );
    }
    if !counts.is_empty() {
        assert!(
            text.contains("# TYPE bulwark_mails counter"),
            "the mails family is a counter:\n{text}"
        );
    }
    let get = |kind: &str| counts.get(kind).copied().unwrap_or(0);
    MailMetrics {
        queued: get("queued"),
        sent: get("sent"),
        retried: get("retried"),
        failed: get("failed"),
    }
}

/// Waits (at most `within`) until the metrics at `addr` satisfy `done`; answers them.
async fn metrics_until(
    addr: SocketAddr,
    within: Duration,
    what: &str,
    done: impl Fn(&MailMetrics) -> bool,
) -> MailMetrics {
    let deadline = Instant::now() + within;
    loop {
        let metrics = mail_metrics(addr).await;
        if done(&metrics) {
            return metrics;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not after {within:?}: {metrics:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A loopback address nothing listens on yet, for `metrics_bind`.
fn metrics_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Waits (at most `within`) until the in-process app's queue holds `queued` mails waiting and
/// `failed` given up.
async fn app_queue_until(app: &TestApp, queued: u64, failed: u64, within: Duration) {
    let queue = app.state.repo.mail_queue();
    let deadline = Instant::now() + within;
    loop {
        let counts = queue.counts().await.expect("queue counts");
        if (counts.queued, counts.failed) == (queued, failed) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "queue holds {} waiting and {} failed, not {queued} and {failed}",
            counts.queued,
            counts.failed
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The mail queue of a database the test does not run in-process: `(waiting, leased now)`.
async fn queue_state(database_url: &str) -> (i64, i64) {
    const SQL: &str = "SELECT COUNT(*), COUNT(CASE WHEN leased_until > $1 THEN 1 END) \
                       FROM mail_queue WHERE failed_at IS NULL";
    if database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database_url)
            .await
            .expect("SQLite reachable");
        let state = sqlx::query_as(SQL)
            .bind(now())
            .fetch_one(&pool)
            .await
            .expect("mail queue");
        pool.close().await;
        state
    } else {
        let pool = sqlx::PgPool::connect(database_url)
            .await
            .expect("PostgreSQL reachable");
        let state = sqlx::query_as(SQL)
            .bind(now())
            .fetch_one(&pool)
            .await
            .expect("mail queue");
        pool.close().await;
        state
    }
}

/// Every text the mail queue in `database_url` holds (recipients, subjects, bodies, errors),
/// one row a line.
async fn queue_text(database_url: &str) -> String {
    const SQL: &str = "SELECT recipient, subject, body_text, body_html, \
                       COALESCE(last_error, '') FROM mail_queue";
    type Row = (String, String, String, String, String);
    let rows: Vec<Row> = if database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database_url)
            .await
            .expect("SQLite reachable");
        let rows = sqlx::query_as(SQL).fetch_all(&pool).await.expect("rows");
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(database_url)
            .await
            .expect("PostgreSQL reachable");
        let rows = sqlx::query_as(SQL).fetch_all(&pool).await.expect("rows");
        pool.close().await;
        rows
    };
    rows.into_iter()
        .map(|(a, b, c, d, e)| [a, b, c, d, e].join(" | "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits (at most `within`) until the queue in `database_url` holds `waiting` mails.
async fn queue_until(database_url: &str, waiting: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (now_waiting, _) = queue_state(database_url).await;
        if now_waiting == waiting {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{now_waiting} mails waiting, not {waiting}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The subject of password-reset mails.
const RESET_SUBJECT: &str = "Reset your password";

/// Asserts that `received` holds `total` messages, none twice (each `(recipient, subject)`
/// once: in these tests a user is sent at most one mail of each kind), each envelope matching
/// its `To`, and exactly one reset mail for each of `recipients` and nobody else.
///
/// `total` counts the other mails accepted too: users created through `POST /admin/users` with
/// an address may be sent a verification mail.
fn assert_each_once(received: &[Received], recipients: &[String], total: usize) {
    let mut counts = BTreeMap::new();
    for message in received {
        assert_eq!(
            message.rcpt_tos,
            std::slice::from_ref(&message.mail.to),
            "envelope and To agree"
        );
        *counts
            .entry((message.mail.to.clone(), message.mail.subject.clone()))
            .or_insert(0) += 1;
    }
    assert!(
        counts.values().all(|n| *n == 1),
        "a mail went out twice: {counts:?}"
    );
    let reset_to: BTreeSet<&String> = counts
        .keys()
        .filter(|(_, subject)| subject == RESET_SUBJECT)
        .map(|(to, _)| to)
        .collect();
    let want: BTreeSet<&String> = recipients.iter().collect();
    assert_eq!(
        reset_to, want,
        "every recipient got a reset mail, and nobody else"
    );
    assert_eq!(received.len(), total, "{counts:?}");
}

/// The reset mails among `received`.
fn reset_mails(received: &[Received]) -> Vec<&Received> {
    received
        .iter()
        .filter(|m| m.mail.subject == RESET_SUBJECT)
        .collect()
}

/// The first admin's password, once the server has written it to the data folder.
async fn first_admin_password(data_dir: &Path) -> String {
    let file = data_dir.join("initial-admin-password");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(password) = std::fs::read_to_string(&file)
            && !password.trim().is_empty()
        {
            return password.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "no {}", file.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates users `name` with address `email` through `POST /admin/users`.
async fn create_users(http: &Http, admin_token: &str, users: &[(String, String)]) {
    for (name, email) in users {
        let response = http
            .post("/admin/users")
            .bearer_auth(admin_token)
            .json(&json!({ "username": name, "password": PASSWORD, "email": email }))
            .send()
            .await
            .expect("POST /admin/users");
        assert_eq!(response.status(), 201, "user {name} created");
    }
}

/// `count` users named `<prefix><n>` with addresses `<prefix><n>@example.com`.
fn users(prefix: &str, count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|n| (format!("{prefix}{n}"), format!("{prefix}{n}@example.com")))
        .collect()
}

/// The `value` of the hidden input `name` of an HTML form.
fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').expect("end of the value");
    html[start..end].to_owned()
}

/// Sends `signal` (`-STOP`, `-CONT`) to `child`.
fn signal(child: &KillOnDrop, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal}");
}

/// SIGKILLs a `serve` while it holds no mail's lease. A mail the worker has claimed stays
/// leased for 60 s after a crash (delivery is at least once: the library's worker docs) — a
/// wait this suite cannot afford; so the process is frozen (SIGSTOP), the queue read, and the
/// process killed only if no lease is held, else thawed and tried again a moment later.
async fn kill_9_between_attempts(server: &mut Server, database_url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        signal(&server.child, "-STOP");
        let (_, leased) = queue_state(database_url).await;
        if leased == 0 {
            server.child.kill().expect("SIGKILL");
            let status = server.child.wait().expect("wait");
            use std::os::unix::process::ExitStatusExt as _;
            assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
            return;
        }
        signal(&server.child, "-CONT");
        assert!(
            Instant::now() < deadline,
            "a mail always leased: is the worker stuck?"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// The text of the banner's `mail` line in a `serve` log.
fn banner_mail_line(log: &str) -> String {
    log.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("mail "))
        .unwrap_or_else(|| panic!("no mail line in the banner:\n{log}"))
        .trim()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// 1. A reset mail over SMTP, and its link
// ---------------------------------------------------------------------------------------------

async fn a_reset_mail_goes_out_over_smtp_and_its_link_sets_the_new_password(backend: Backend) {
    // Arrange
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = spawn_app_with(backend, |s| {
        s.smtp_url = Some(url.parse().expect("smtp_url"));
        s.mail_from = Some("Bulwark Accounts <accounts@example.com>".to_owned());
    })
    .await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("Alice@Example.com"))
        .await;
    let http = Http::of(&app);

    // Act
    request_reset(&http, "alice@example.com").await;
    let received = smtp.wait_for(1, Duration::from_secs(10)).await;

    // Assert: the envelope and the message.
    assert_eq!(received.len(), 1);
    let message = &received[0];
    assert_eq!(message.mail_from, "accounts@example.com", "envelope sender");
    assert_eq!(
        message.rcpt_tos,
        ["Alice@Example.com"],
        "the address stored"
    );
    assert!(!message.tls, "a plain local relay");
    let mail = &message.mail;
    assert_eq!(mail.from, "accounts@example.com");
    assert_eq!(mail.to, "Alice@Example.com");
    assert_eq!(mail.subject, RESET_SUBJECT);
    let raw = String::from_utf8_lossy(&message.raw);
    assert!(
        raw.to_ascii_lowercase()
            .contains("content-type: multipart/alternative"),
        "{raw}"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&message.raw)
        .expect("RFC 5322");
    assert!(parsed.date().is_some(), "a Date header");
    assert!(
        parsed
            .message_id()
            .is_some_and(|id| id.ends_with("@example.com")),
        "a Message-ID of the sender's domain: {:?}",
        parsed.message_id()
    );
    for part in [&mail.text, &mail.html] {
        assert!(part.contains("alice"), "names the user: {part}");
        assert!(part.contains("127.0.0.1"), "names the IP: {part}");
        assert!(part.contains("ignore"), "says how to ignore it: {part}");
        assert!(
            part.contains("30 minutes"),
            "says how long it works: {part}"
        );
    }
    let token = mail.token("/password-reset");
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    let link = mail.link("/password-reset");
    assert_eq!(
        link,
        format!("{}/password-reset?token={token}", app.address)
    );

    // Act: a browser follows the link and submits the page's form.
    let browser = Http::new(app.address.clone());
    let page = browser.client.get(&link).send().await.expect("GET link");
    assert_eq!(page.status(), 200);
    let csrf_cookie = set_cookie(&page, "csrftoken").expect("a CSRF cookie");
    let html = page.text().await.expect("html");
    assert_eq!(hidden_field(&html, "token"), token);
    let csrf_token = hidden_field(&html, "csrf_token");
    let confirmed = browser
        .post("/password-reset/confirm")
        .header(reqwest::header::COOKIE, format!("csrftoken={csrf_cookie}"))
        .form(&[
            ("csrf_token", csrf_token.as_str()),
            ("token", token.as_str()),
            ("new_password", NEW_PASSWORD),
        ])
        .send()
        .await
        .expect("POST /password-reset/confirm");

    // Assert
    assert_eq!(confirmed.status(), 204);
    assert_eq!(app.login("alice", PASSWORD).await.status(), 401);
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status(), 200);
    assert_eq!(smtp.delivered().len(), 1, "one mail in all");
}
test_both!(a_reset_mail_goes_out_over_smtp_and_its_link_sets_the_new_password);

/// A CA, and a certificate for `127.0.0.1` it signed, as PEM files in `dir`: (ca, cert, key).
fn private_pki(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bulwark private mail CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

async fn mail_goes_over_starttls_with_auth_to_a_private_ca_server(backend: Backend) {
    // Arrange: a mail server with a certificate of a private CA, requiring STARTTLS and AUTH;
    // the password in a file, the CA in smtp_ca_file.
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_pki(dir.path());
    let password = "smtp-Secret-for-tests-81";
    let smtp = SmtpServer::starttls_with_auth(&cert, &key, "mailer", password);
    let password_file = dir.path().join("smtp-password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let port = smtp.port;
    let app = spawn_app_with(backend, |s| {
        s.smtp_url = Some(
            format!("smtp+starttls://mailer@127.0.0.1:{port}")
                .parse()
                .unwrap(),
        );
        s.smtp_password_file = Some(password_file.clone());
        s.smtp_ca_file = Some(ca.clone());
    })
    .await;
    app.create_user_with_email("alice", PASSWORD, &[], Some("alice@example.com"))
        .await;
    let http = Http::of(&app);

    // Act
    request_reset(&http, "alice@example.com").await;
    let received = smtp.wait_for(1, Duration::from_secs(10)).await;

    // Assert: delivered encrypted, after logging in as the URL's user.
    assert_eq!(received.len(), 1);
    assert!(received[0].tls, "sent over STARTTLS");
    assert_eq!(received[0].login.as_deref(), Some("mailer"));
    assert_eq!(received[0].rcpt_tos, ["alice@example.com"]);
}
test_both!(mail_goes_over_starttls_with_auth_to_a_private_ca_server);

// ---------------------------------------------------------------------------------------------
// 2. The SMTP server down, then back; a silent one
// ---------------------------------------------------------------------------------------------

async fn reset_requests_answer_at_once_while_smtp_is_down_and_each_mail_goes_out_once_it_is_back(
    backend: Backend,
) {
    // Arrange: the SMTP server's port, with nothing listening on it any more.
    let mut smtp = SmtpServer::start();
    smtp.stop();
    let (url, metrics) = (smtp.url(), metrics_addr());
    let app = spawn_app_with(backend, |s| {
        s.smtp_url = Some(url.parse().expect("smtp_url"));
        s.mail_retry_delay.0 = Duration::from_secs(1);
        s.metrics_bind = Some(metrics);
    })
    .await;
    let people = users("outage", 5);
    for (name, email) in &people {
        app.create_user_with_email(name, PASSWORD, &[], Some(email))
            .await;
    }
    let http = Http::of(&app);
    assert_eq!(mail_metrics(metrics).await, MailMetrics::default());

    // Act: five requests while the mail server is down.
    {
        let _timing = TIMING.lock().await;
        for (_, email) in &people {
            let took = request_reset(&http, email).await;
            assert!(took < FAST, "{email}: {took:?} with the mail server down");
        }
    }

    // Assert: queued, tried, failed for now, nothing lost.
    let during = metrics_until(metrics, Duration::from_secs(10), "first attempts", |m| {
        m.queued == 5 && m.retried >= 5
    })
    .await;
    assert_eq!((during.sent, during.failed), (0, 0), "{during:?}");
    app_queue_until(&app, 5, 0, Duration::from_secs(1)).await;
    assert!(smtp.delivered().is_empty());

    // Act: the mail server comes back on the same port.
    smtp.start_again();

    // Assert: every mail goes out, once.
    let received = smtp.wait_for(5, Duration::from_secs(15)).await;
    let after = metrics_until(metrics, Duration::from_secs(5), "all sent", |m| m.sent >= 5).await;
    app_queue_until(&app, 0, 0, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let received_later = smtp.delivered();
    assert_eq!(received_later.len(), received.len(), "nothing more later");
    let emails: Vec<String> = people.iter().map(|(_, e)| e.clone()).collect();
    assert_each_once(&received_later, &emails, 5);
    let tokens: BTreeSet<String> = received_later
        .iter()
        .map(|m| m.mail.token("/password-reset"))
        .collect();
    assert_eq!(tokens.len(), 5, "a token of its own in each mail");
    let last = mail_metrics(metrics).await;
    assert_eq!(
        (last.queued, last.sent, last.failed),
        (5, 5, 0),
        "{after:?}"
    );
}
test_both!(reset_requests_answer_at_once_while_smtp_is_down_and_each_mail_goes_out_once_it_is_back);

async fn a_silent_smtp_server_never_slows_a_request(backend: Backend) {
    // Arrange: a mail server that accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let app = spawn_app_with(backend, |s| {
        s.smtp_url = Some(format!("smtp://127.0.0.1:{port}").parse().expect("URL"));
    })
    .await;
    app.create_user_with_email("bob", PASSWORD, &[], Some("bob@example.com"))
        .await;
    app.create_user_with_email("carol", PASSWORD, &[], None)
        .await;
    let carol = app.access_token("carol", PASSWORD).await;
    let http = Http::of(&app);
    let _timing = TIMING.lock().await;

    // Act: a reset mail, then a verification mail sent twice (inside the request, unlike the
    // reset's background lookup), while the worker hangs on the silent server.
    let reset = request_reset(&http, "bob@example.com").await;
    let started = Instant::now();
    let email = app
        .post_json(
            "/users/me/email",
            Some(&carol),
            &json!({"email": "carol@example.com"}),
        )
        .await;
    let set_email = started.elapsed();
    let started = Instant::now();
    let again = app
        .post_json("/users/me/verify-email", Some(&carol), &json!({}))
        .await;
    let resend = started.elapsed();

    // Assert
    assert_eq!(email.status(), 200);
    assert_eq!(again.status(), 202);
    for (what, took) in [
        ("reset request", reset),
        ("new address", set_email),
        ("verification again", resend),
    ] {
        assert!(took < FAST, "{what}: {took:?} with a silent mail server");
    }
    app_queue_until(&app, 3, 0, Duration::from_secs(5)).await;
    silent.abort();
}
test_both!(a_silent_smtp_server_never_slows_a_request);

/// Tokens in mails are "stored only as hashes" (contract, Accounts): a mail waiting in the
/// durable queue must not hold its link's token in clear, or a read of the database (a backup,
/// a replica) while the mail server is down yields working reset links.
async fn a_queued_mail_never_holds_its_token_in_clear(backend: Backend) {
    // Arrange: nothing listens on the mail server's port yet.
    let smtp_port = free_port();
    let app = spawn_app_with(backend, |s| {
        s.smtp_url = Some(
            format!("smtp://127.0.0.1:{smtp_port}")
                .parse()
                .expect("URL"),
        );
        s.mail_retry_delay.0 = Duration::from_secs(1);
    })
    .await;
    app.create_user_with_email("grace", PASSWORD, &[], Some("grace@example.com"))
        .await;
    let http = Http::of(&app);

    // Act
    request_reset(&http, "grace@example.com").await;
    app_queue_until(&app, 1, 0, Duration::from_secs(5)).await;
    let stored = queue_text(&app.settings.database_url).await;
    let smtp = SmtpServer::start_on(smtp_port);
    let received = smtp.wait_for(1, Duration::from_secs(15)).await;

    // Assert: the mail went out with a working link, which the queue never showed.
    let token = received[0].mail.token("/password-reset");
    assert!(
        stored.contains("grace@example.com"),
        "the mail's row: {stored}"
    );
    assert!(
        !stored.contains(&token),
        "the mail queue holds a live reset token in clear:\n{stored}"
    );
    let confirmed = http
        .post("/password-reset/confirm")
        .json(&json!({"token": token, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .expect("confirm");
    assert_eq!(confirmed.status(), 204);
}
test_both!(a_queued_mail_never_holds_its_token_in_clear);

// ---------------------------------------------------------------------------------------------
// 3. kill -9, and two instances
// ---------------------------------------------------------------------------------------------

/// `bulwark serve` on a free port, mailing through `smtp_port` with 1 s retries.
fn serve_command(env: &BinEnv, smtp_port: u16) -> Command {
    let mut command = env.command(&["serve", "--bind", "127.0.0.1:0"]);
    command
        .env("BULWARK_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
        .env("BULWARK_MAIL_RETRY_DELAY", "1s")
        .env(RATE_LIMITS_OFF.0, RATE_LIMITS_OFF.1);
    command
}

async fn a_mail_queued_before_a_kill_9_is_sent_once_after_the_restart(backend: Backend) {
    // Arrange: the mail server's port, where nothing listens yet.
    let env = BinEnv::new(backend).await;
    let smtp_port = free_port();
    let mut server = env.serve(serve_command(&env, smtp_port)).await;
    let http = Http::new(server.base("http"));
    let admin = http
        .access_token("admin", &first_admin_password(env.data_dir()).await)
        .await;
    let people = users("crash", 4);
    create_users(&http, &admin, &people).await;
    let (others, _) = queue_state(&env.database_url).await;
    let total = others + 4;

    // Act: four reset mails queued, then the server killed between two delivery attempts.
    for (_, email) in &people {
        request_reset(&http, email).await;
    }
    queue_until(&env.database_url, total, Duration::from_secs(10)).await;
    kill_9_between_attempts(&mut server, &env.database_url).await;
    assert_eq!(
        queue_state(&env.database_url).await,
        (total, 0),
        "still queued"
    );
    let smtp = SmtpServer::start_on(smtp_port);
    let restarted = env.serve(serve_command(&env, smtp_port)).await;

    // Assert: each mail goes out once, from the restarted server.
    smtp.wait_for(usize::try_from(total).unwrap(), Duration::from_secs(20))
        .await;
    queue_until(&env.database_url, 0, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let received = smtp.delivered();
    let emails: Vec<String> = people.iter().map(|(_, e)| e.clone()).collect();
    assert_each_once(&received, &emails, usize::try_from(total).unwrap());
    // The links still work, on the restarted server.
    let http = Http::new(restarted.base("http"));
    let mail = &reset_mails(&received)[0].mail;
    assert_eq!(
        mail.link("/password-reset"),
        format!(
            "{}/password-reset?token={}",
            server.base("http"),
            mail.token("/password-reset")
        ),
        "links name the server's public URL"
    );
    let confirmed = http
        .post("/password-reset/confirm")
        .json(&json!({"token": mail.token("/password-reset"), "new_password": NEW_PASSWORD}))
        .send()
        .await
        .expect("confirm");
    assert_eq!(confirmed.status(), 204);
    let name = mail.to.trim_end_matches("@example.com");
    assert_eq!(http.login(None, name, NEW_PASSWORD).await.status(), 200);
}
test_both!(a_mail_queued_before_a_kill_9_is_sent_once_after_the_restart);

/// "A mail accepted before a crash is still sent after restart" (contract, Mail): a reset
/// request answered 202 is such a mail, even when the process dies the moment it has answered.
async fn a_reset_request_answered_202_is_mailed_even_if_the_server_dies_right_after(
    backend: Backend,
) {
    // Arrange: the mail server is up all along; the user's welcome mail is out of the way.
    let env = BinEnv::new(backend).await;
    let smtp = SmtpServer::start();
    let mut server = env.serve(serve_command(&env, smtp.port)).await;
    let http = Http::new(server.base("http"));
    let admin = http
        .access_token("admin", &first_admin_password(env.data_dir()).await)
        .await;
    let heidi = ("heidi".to_owned(), "heidi@example.com".to_owned());
    create_users(&http, &admin, std::slice::from_ref(&heidi)).await;
    queue_until(&env.database_url, 0, Duration::from_secs(10)).await;

    // Act: SIGKILL as soon as the 202 is in.
    request_reset(&http, &heidi.1).await;
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    let _restarted = env.serve(serve_command(&env, smtp.port)).await;

    // Assert
    let deadline = Instant::now() + Duration::from_secs(8);
    while reset_mails(&smtp.delivered()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the reset request answered 202 was lost with the process: no mail after a \
             restart (queue: {:?})",
            queue_state(&env.database_url).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let received = smtp.delivered();
    assert_each_once(&received, std::slice::from_ref(&heidi.1), received.len());
}
test_both!(a_reset_request_answered_202_is_mailed_even_if_the_server_dies_right_after);

/// Two `serve` instances on one fresh PostgreSQL database, each with its own mail worker and
/// metrics address, mailing through `smtp_port`.
struct Pair {
    a: Instance,
    b: Instance,
    metrics: [SocketAddr; 2],
    database_url: String,
    // Dropped last: the servers stop before the database goes.
    _db: DatabaseGuard,
}

impl Pair {
    async fn start(backend: &Backend, smtp_port: u16) -> Self {
        let (database_url, db) = fresh_database_url(backend).await;
        let secret = bulwark::secret::random_token(32);
        let [port_a, port_b, metrics_a, metrics_b] = free_ports::<4>();
        let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
        let start = |name, port, metrics: u16| {
            let metrics = format!("127.0.0.1:{metrics}");
            let env = [
                RATE_LIMITS_OFF,
                ("BULWARK_SMTP_URL", smtp_url.as_str()),
                ("BULWARK_MAIL_RETRY_DELAY", "1s"),
                ("BULWARK_METRICS_BIND", metrics.as_str()),
            ];
            Instance::start(name, port, &database_url, &secret, None, &env)
        };
        let mut a = start("A", port_a, metrics_a);
        let mut b = start("B", port_b, metrics_b);
        a.wait_healthy().await;
        b.wait_healthy().await;
        Self {
            a,
            b,
            metrics: [metrics_a, metrics_b].map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
            database_url,
            _db: db,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_send_each_mail_once() {
    let Some(backend) = Backend::postgres() else {
        eprintln!("BULWARK_TEST_DATABASE_URL is not set: test skipped (PostgreSQL only)");
        return;
    };
    // Arrange: the mail server is down while the mails are queued, so that both workers find
    // the same due mails when it comes back.
    let smtp_port = free_port();
    let pair = Pair::start(&backend, smtp_port).await;
    let password = match (pair.a.admin_password(), pair.b.admin_password()) {
        (Some(p), None) | (None, Some(p)) => p,
        other => panic!("one first admin expected: {other:?}"),
    };
    let admin = pair.a.login("admin", &password).await;
    let people = users("pair", 20);
    create_users(&pair.a.http, &admin, &people).await;
    let (others, _) = queue_state(&pair.database_url).await;
    let total = others + 20;

    // Act: 20 reset requests across both instances; the mail server starts.
    for (n, (_, email)) in people.iter().enumerate() {
        let instance = if n % 2 == 0 { &pair.a } else { &pair.b };
        request_reset(&instance.http, email).await;
    }
    queue_until(&pair.database_url, total, Duration::from_secs(10)).await;
    let smtp = SmtpServer::start_on(smtp_port);

    // Assert: each mail once; the two workers' sends add up to all of them.
    let total = usize::try_from(total).unwrap();
    smtp.wait_for(total, Duration::from_secs(25)).await;
    queue_until(&pair.database_url, 0, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let emails: Vec<String> = people.iter().map(|(_, e)| e.clone()).collect();
    assert_each_once(&smtp.delivered(), &emails, total);
    let [a, b] = [
        mail_metrics(pair.metrics[0]).await,
        mail_metrics(pair.metrics[1]).await,
    ];
    let total = total as u64;
    assert_eq!(a.queued + b.queued, total, "{a:?} {b:?}");
    assert!(b.queued >= 10, "B queued its 10 resets: {b:?}");
    assert_eq!(a.sent + b.sent, total, "{a:?} {b:?}");
    assert_eq!(a.failed + b.failed, 0, "{a:?} {b:?}");
    eprintln!("sent by A: {}, by B: {}", a.sent, b.sent);
}

// ---------------------------------------------------------------------------------------------
// 4. A permanent failure
// ---------------------------------------------------------------------------------------------

async fn a_recipient_refused_with_550_is_given_up_at_once_and_counted_as_failed(backend: Backend) {
    // Arrange: a mail server that has no mailbox for "nobody".
    let smtp = SmtpServer::rejecting("nobody");
    let (url, metrics) = (smtp.url(), metrics_addr());
    let app = spawn_app_with(backend, |s| {
        s.smtp_url = Some(url.parse().expect("smtp_url"));
        s.mail_retry_delay.0 = Duration::from_secs(1);
        s.metrics_bind = Some(metrics);
    })
    .await;
    app.create_user_with_email("nobody", PASSWORD, &[], Some("nobody@example.com"))
        .await;
    app.create_user_with_email("dave", PASSWORD, &[], Some("dave@example.com"))
        .await;
    let http = Http::of(&app);

    // Act
    request_reset(&http, "nobody@example.com").await;
    request_reset(&http, "dave@example.com").await;

    // Assert: given up at once, counted, kept as failed; the other mail goes out.
    let counted = metrics_until(metrics, Duration::from_secs(10), "both handled", |m| {
        m.failed >= 1 && m.sent >= 1
    })
    .await;
    app_queue_until(&app, 0, 1, Duration::from_secs(2)).await;
    // Past two retry delays: a retried mail would have been tried again by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let last = mail_metrics(metrics).await;
    assert_eq!(
        last,
        MailMetrics {
            queued: 2,
            sent: 1,
            retried: 0,
            failed: 1
        },
        "first seen: {counted:?}"
    );
    app_queue_until(&app, 0, 1, Duration::ZERO).await;
    let received = smtp.delivered();
    assert_each_once(&received, &["dave@example.com".to_owned()], 1);
}
test_both!(a_recipient_refused_with_550_is_given_up_at_once_and_counted_as_failed);

// ---------------------------------------------------------------------------------------------
// 5. The banner, and the SMTP password
// ---------------------------------------------------------------------------------------------

/// Serves with `smtp_url` (and the environment `extra`), makes the worker try a mail with the
/// credentials (refused: a plain server cannot take them without TLS), stops; answers the whole
/// log.
async fn serve_with_smtp_credentials(
    env: &BinEnv,
    smtp: &SmtpServer,
    smtp_url: &str,
    extra: &[(&str, &str)],
    email: &str,
) -> String {
    let mut command = env.command(&["serve", "--bind", "127.0.0.1:0"]);
    command
        .env("RUST_LOG", "debug")
        .env("BULWARK_SMTP_URL", smtp_url)
        .env("BULWARK_MAIL_RETRY_DELAY", "1s")
        .env(RATE_LIMITS_OFF.0, RATE_LIMITS_OFF.1)
        .envs(extra.iter().copied());
    let server = env.serve(command).await;
    let http = Http::new(server.base("http"));
    let admin = http
        .access_token("admin", &first_admin_password(env.data_dir()).await)
        .await;
    let name = email.trim_end_matches("@example.com").to_owned();
    create_users(&http, &admin, &[(name, email.to_owned())]).await;
    request_reset(&http, email).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log_text().contains("mail delivery failed") {
        assert!(
            Instant::now() < deadline,
            "no failed attempt logged:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(smtp.delivered().is_empty(), "no credentials sent in clear");
    server.stop().await
}

async fn the_banner_shows_the_smtp_url_and_never_its_password(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;
    let smtp = SmtpServer::start();
    let in_url = unique("Smtp-Secret-url");
    let in_file = unique("Smtp-Secret-file");
    let file = env.write("smtp-password", &format!("{in_file}\n"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let port = smtp.port;

    // Act: the password in smtp_url, then in smtp_password_file.
    let url_log = serve_with_smtp_credentials(
        &env,
        &smtp,
        &format!("smtp://mailer:{in_url}@127.0.0.1:{port}"),
        &[],
        "erin@example.com",
    )
    .await;
    let file_log = serve_with_smtp_credentials(
        &env,
        &smtp,
        &format!("smtp://mailer@127.0.0.1:{port}"),
        &[("BULWARK_SMTP_PASSWORD_FILE", file.to_str().expect("path"))],
        "frank@example.com",
    )
    .await;

    // Assert
    for (log, password) in [(&url_log, &in_url), (&file_log, &in_file)] {
        assert_eq!(
            banner_mail_line(log),
            format!("smtp://mailer:***@127.0.0.1:{port}"),
            "{log}"
        );
        assert!(!log.contains(password.as_str()), "the password in:\n{log}");
    }
}
test_both!(the_banner_shows_the_smtp_url_and_never_its_password);

async fn without_smtp_url_the_banner_names_the_outbox_folder(backend: Backend) {
    // Arrange
    let env = BinEnv::new(backend).await;

    // Act
    let server = env
        .serve(env.command(&["serve", "--bind", "127.0.0.1:0"]))
        .await;
    let log = server.stop().await;

    // Assert
    let line = banner_mail_line(&log);
    let outbox = env.data_dir().join("outbox");
    assert!(line.contains(&outbox.display().to_string()), "{line}");
    assert!(line.contains("no smtp_url"), "{line}");
    assert!(!line.contains("smtp://"), "{line}");
}
test_both!(without_smtp_url_the_banner_names_the_outbox_folder);
