//! The FastAPI peer of the shared bench (`../shared/bench/fastapi/`: the guide's own stack, made
//! to run): what the audit finds there, checked by hand once and pinned here, so that a change
//! of a check that adds a false finding (or loses a true one) fails.
//!
//! Each pinned finding was confirmed with curl against the peer on its defaults:
//! - `jwt-weak-secret` on `POST /token`: the peer signs with its default key,
//!   `JWT_SECRET` unset ("a fixed benchmark key, NOT for production"), which is public in the
//!   peer's source and in the bundled wordlist; a token decodes with it.
//! - `security-headers`: neither `/docs` (HTML) nor the JSON answers carry
//!   `X-Content-Type-Options` or `X-Frame-Options`/CSP `frame-ancestors`.
//! - `openapi-drift` on `GET /admin/users`: a user without the admin role gets 403 "Not enough
//!   permissions"; the document lists only 200.
//!
//! The peer lives outside this repository: the test says so and passes when the folder is not
//! there (`BULWARK_PEER_DIR` names another place).

mod common;

use std::{collections::BTreeSet, path::PathBuf};

use bulwark_audit::{AuditConfig, Credentials, UserCredential};
use common::{Fixture, venv_of};

fn peer_dir() -> PathBuf {
    std::env::var_os("BULWARK_PEER_DIR").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/bench/fastapi"
            ))
        },
        PathBuf::from,
    )
}

/// What the audit reports on the peer: (finding ID, operation), each checked by hand.
const PINNED: &[(&str, &str)] = &[
    ("jwt-weak-secret", "POST /token"),
    ("openapi-drift", "GET /admin/users"),
    ("security-headers", "*"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fastapi_peer_yields_exactly_its_pinned_findings() {
    let dir = peer_dir();
    if !dir.join("app.py").is_file() {
        eprintln!(
            "the FastAPI peer is not at {} (set BULWARK_PEER_DIR): not audited",
            dir.display()
        );
        return;
    }
    let venv = venv_of(Some(&dir.join("requirements.txt")));
    let db =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("peer-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let peer = Fixture::start_app("peer", &dir, &venv, &[("ANCHOR_DB", &db)]).await;

    let mut config = AuditConfig::new(&peer.url);
    config.credentials = Credentials {
        users: vec![
            UserCredential {
                username: "user1".into(),
                password: Some("password1".into()),
            },
            UserCredential {
                username: "admin".into(),
                password: Some("adminpass1".into()),
            },
        ],
        ..Credentials::default()
    };
    let report = bulwark_audit::run(config, &())
        .await
        .expect("audit of the peer");
    drop(peer);
    let _ = std::fs::remove_file(&db);

    let found: BTreeSet<(&str, &str)> = report
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.operation.as_str()))
        .collect();
    let pinned: BTreeSet<(&str, &str)> = PINNED.iter().copied().collect();
    for f in &report.findings {
        println!("  {} {} {}: {}", f.severity, f.id, f.operation, f.title);
    }
    for c in report.checks.iter().filter(|c| c.reason.is_some()) {
        println!(
            "  check {} {:?}: {}",
            c.id,
            c.status,
            c.reason.as_deref().unwrap_or("")
        );
    }
    println!(
        "peer: {} requests in {} ms, {} findings",
        report.requests,
        report.duration_ms,
        report.findings.len()
    );
    assert_eq!(found, pinned, "the peer's findings changed");
}
