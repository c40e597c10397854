//! `bulwark audit`: the real binary against the real server (in-process, on port 0, with the
//! embedded defaults), its report formats, its exit codes and its refusals.
//!
//! The audit runs with a clean environment (no `BULWARK_*` variable, no configuration file, an
//! empty working folder): it needs none of the server's settings.

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bulwark_server::config::Settings;
use serde_json::Value;

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app_with};
use crate::process::{BIN, Run, free_port};

/// Bulwark as it ships: the contract's rate limits (the helpers raise the login limits for
/// other tests), with cheap password hashing.
async fn bulwark_on_defaults() -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| {
        s.rate_limits = Settings::default().rate_limits;
    })
    .await
}

/// `bulwark audit ARGS` in an empty folder with a clean environment (plus `env`), killed
/// after `limit`; standard output and error are read from files, so that a long report never
/// blocks a pipe.
async fn audit_with(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let mut child = Command::new(BIN)
            .arg("audit")
            .args(&args)
            .current_dir(dir.path())
            .env_clear()
            .env("NO_COLOR", "1")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("the binary starts");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "bulwark audit {args:?} still running after {limit:?}:\n{}",
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Run {
            code: status.code(),
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        }
    })
    .await
    .expect("audit thread")
}

async fn audit(args: &[&str]) -> Run {
    audit_with(args, &[], Duration::from_secs(20)).await
}

fn assert_code(run: &Run, code: i32) {
    assert_eq!(
        run.code,
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
}

fn findings_at_or_above_low(report: &Value) -> Vec<&Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] != "info")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulwark_on_embedded_defaults_has_no_finding_at_or_above_low() {
    // Arrange: two users, so that the object-level checks run too.
    let app = bulwark_on_defaults().await;
    app.create_user("audit-alice", PASSWORD, &[]).await;
    app.create_user("audit-bob", PASSWORD, &[]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let credentials = dir.path().join("credentials.toml");
    std::fs::write(
        &credentials,
        "users = [{ username = \"audit-alice\" }, { username = \"audit-bob\" }]\n",
    )
    .expect("credentials");
    let report_path = dir.path().join("report.json");

    // Act (the passwords through the environment, as the contract allows)
    let run = audit_with(
        &[
            &app.address,
            "--credentials",
            credentials.to_str().expect("utf-8"),
            "--fail-on",
            "low",
            "--format",
            "json",
            "--output",
            report_path.to_str().expect("utf-8"),
        ],
        &[
            ("BULWARK_AUDIT_PASSWORD_1", PASSWORD),
            ("BULWARK_AUDIT_PASSWORD_2", PASSWORD),
        ],
        Duration::from_secs(240),
    )
    .await;

    // Assert
    let text = std::fs::read_to_string(&report_path).unwrap_or_default();
    let report: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\nstderr:\n{}", run.stderr));
    assert!(
        findings_at_or_above_low(&report).is_empty(),
        "Bulwark's own audit: {report:#}"
    );
    assert_code(&run, 0);
    assert!(run.stdout.is_empty(), "the report went to the file");
    assert!(!text.contains(PASSWORD), "no credential in the report");
    assert!(!run.stderr.contains(PASSWORD), "no credential in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_report_has_the_contract_fields() {
    let app = bulwark_on_defaults().await;

    let run = audit(&[
        &app.address,
        "--format",
        "json",
        "--only",
        "security-headers,cors-credentials-wildcard",
        "--fail-on",
        "low",
    ])
    .await;

    assert_code(&run, 0);
    let report: Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    let keys: Vec<&str> = report
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "target",
        "started_at",
        "duration_ms",
        "requests",
        "findings",
        "checks",
    ] {
        assert!(keys.contains(&key), "{key} missing: {report:#}");
    }
    assert_eq!(report["target"], format!("{}/", app.address));
    assert!(report["requests"].as_u64().expect("a number") >= 1);
    assert!(report["duration_ms"].is_u64());
    assert!(
        time::OffsetDateTime::parse(
            report["started_at"].as_str().expect("a string"),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    let checks = report["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 25, "every check is listed");
    for check in checks {
        let status = check["status"].as_str().expect("status");
        assert!(["passed", "failed", "skipped"].contains(&status), "{check}");
    }
    let status_of = |id: &str| {
        checks
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].clone())
            .expect("listed")
    };
    assert_eq!(status_of("bola"), "skipped", "left out by --only");
    assert_ne!(status_of("security-headers"), "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sarif_and_text_reports() {
    let app = bulwark_on_defaults().await;

    let sarif = audit(&[
        &app.address,
        "--format",
        "sarif",
        "--only",
        "security-headers",
    ])
    .await;
    let text = audit(&[&app.address, "--only", "security-headers"]).await;

    assert_code(&sarif, 0);
    let log: Value = serde_json::from_str(&sarif.stdout).expect("stdout is JSON");
    assert_eq!(log["version"], "2.1.0");
    let driver = &log["runs"][0]["tool"]["driver"];
    assert_eq!(driver["name"], "bulwark-audit");
    assert_eq!(driver["rules"].as_array().expect("rules").len(), 25);
    assert!(log["runs"][0]["results"].is_array());
    assert_code(&text, 0);
    assert!(text.stdout.contains(&app.address), "{}", text.stdout);
    let summary = text.stdout.lines().last().expect("a summary line");
    assert!(summary.starts_with("25 checks: "), "{summary}");
    assert!(!text.stdout.contains('\x1b'), "no colour into a file");
    assert!(
        !text.stderr.contains("checks"),
        "no progress bar off a terminal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_exits_2_with_a_message() {
    for (args, says) in [
        (&[][..], "URL"),
        (
            &["http://127.0.0.1:9", "--only", "bola,no-such-check"],
            "no-such-check",
        ),
        (&["http://127.0.0.1:9", "--skip", "sqli"], "sqli"),
        (&["http://127.0.0.1:9", "--rps", "0"], "rps"),
        (&["http://127.0.0.1:9", "--timeout", "soon"], "duration"),
        (&["http://127.0.0.1:9", "--fail-on", "severe"], "severity"),
        (&["http://127.0.0.1:9", "--format", "xml"], "xml"),
        (&["ftp://127.0.0.1/"], "http"),
        (
            &[
                "http://127.0.0.1:9",
                "--credentials",
                "/nonexistent/credentials.toml",
            ],
            "credentials",
        ),
    ] {
        let run = audit(args).await;
        assert_code(&run, 2);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_exits_2() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("report.json");

    let run = audit(&[
        &format!("http://127.0.0.1:{port}"),
        "--output",
        report.to_str().expect("utf-8"),
        "--timeout",
        "2s",
    ])
    .await;

    assert_code(&run, 2);
    assert!(run.stderr.contains("error:"), "{}", run.stderr);
    assert!(!report.exists(), "no empty report is left behind");
}

/// A loopback listener that counts the connections made to it (and closes them).
fn connection_trap() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_address_without_allow_remote_exits_2_without_a_request() {
    // Any request the audit made would go through this proxy on loopback (reqwest honours the
    // proxy variables), so that it is counted, and never leaves the machine.
    let (proxy_port, connections) = connection_trap();
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let env = [
        ("http_proxy", proxy.as_str()),
        ("HTTP_PROXY", proxy.as_str()),
        ("https_proxy", proxy.as_str()),
        ("HTTPS_PROXY", proxy.as_str()),
        ("ALL_PROXY", proxy.as_str()),
    ];

    let run = audit_with(&["http://8.8.8.8/"], &env, Duration::from_secs(20)).await;

    assert_code(&run, 2);
    assert!(run.stderr.contains("--allow-remote"), "{}", run.stderr);
    assert_eq!(connections.load(Ordering::SeqCst), 0, "no request was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_target_on_loopback_with_a_self_signed_certificate_is_audited() {
    // `bulwark serve --self-signed`: the audit does not verify certificates on loopback only.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.rate_limits = Settings::default().rate_limits;
        s.tls_self_signed = true;
    })
    .await;
    let https = format!("https://127.0.0.1:{}", app.port);

    let run = audit(&[&https, "--format", "json", "--only", "security-headers,tls"]).await;

    assert_code(&run, 0);
    let report: Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    assert_eq!(report["target"], format!("{https}/"));
    let checks = report["checks"].as_array().expect("checks");
    let tls = checks.iter().find(|c| c["id"] == "tls").expect("tls");
    assert_ne!(tls["status"], "failed", "{report:#}");
    assert!(report["requests"].as_u64().expect("a number") >= 1);
}
