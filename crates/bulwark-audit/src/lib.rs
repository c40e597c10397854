//! A black-box security audit of an HTTP API: the checks behind `bulwark audit`.
//!
//! Point it at an API's base URL (and, for the checks that need users, a credentials file): it
//! reads the OpenAPI document, logs in, probes every operation for the weaknesses the FastAPI
//! security guide warns about, and reports each finding with its evidence (secrets masked) and a
//! fix. Safe by construction: loopback and private targets only unless allowed, one origin, a
//! request budget and rate, non-destructive payloads, and only its own objects removed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bulwark_audit::AuditError> {
//! use bulwark_audit::{AuditConfig, Severity, run};
//!
//! let report = run(AuditConfig::new("http://127.0.0.1:8000"), &()).await?;
//! if report.fails_at(Severity::High) {
//!     eprintln!("{} findings", report.findings.len());
//! }
//! # Ok(()) }
//! ```

pub mod api;
pub mod catalog;
pub mod checks;
pub mod config;
pub mod context;
pub mod generate;
pub mod objects;
pub mod openapi;
pub mod output;
pub mod probe;
pub mod report;
pub mod target;
#[cfg(test)]
pub(crate) mod testing;

use std::time::Instant;

pub use catalog::{CheckId, Severity};
pub use config::{AuditConfig, Credentials, UserCredential};
pub use report::{CheckReport, CheckStatus, Evidence, Finding, Report};

use context::{Context, Outcome, Session};
use probe::{Auth, Probe, Secrets};
use target::Target;

/// Why an audit could not run (the CLI's exit 2).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Bad arguments or files.
    #[error("{0}")]
    Usage(String),
    /// The target cannot be reached, or refused to be scanned.
    #[error("{0}")]
    Unreachable(String),
}

/// Told how the audit goes (the CLI draws a progress bar with it). `()` ignores everything.
pub trait Progress: Sync {
    /// The checks that will run.
    fn start(&self, _checks: usize) {}
    /// A check begins.
    fn check(&self, _id: CheckId) {}
    /// A check ended.
    fn done(&self, _id: CheckId, _status: CheckStatus) {}
    /// Every check ended.
    fn finish(&self) {}
}

impl Progress for () {}

/// The order checks run in: the catalogue's, except that the checks that log in again (CSRF
/// through a browser login, user enumeration) come first, while the target's login limit still
/// has room, and the login flood comes last, so that a lock-out it causes cannot spoil the others.
/// Probes of other checks may reach the login too (a login form is read-like).
fn run_order() -> Vec<CheckId> {
    const FIRST: [CheckId; 2] = [CheckId::Csrf, CheckId::UserEnumeration];
    const LAST: [CheckId; 1] = [CheckId::LoginNoRateLimit];
    let mut order: Vec<CheckId> = FIRST.to_vec();
    order.extend(
        CheckId::ALL
            .iter()
            .copied()
            .filter(|id| !FIRST.contains(id) && !LAST.contains(id)),
    );
    order.extend(LAST);
    order
}

/// Runs the audit `config` describes.
pub async fn run(config: AuditConfig, progress: &dyn Progress) -> Result<Report, AuditError> {
    let started = Instant::now();
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let target = Target::parse(&config.url)?;
    if !config.allow_remote && !target.is_private().await? {
        return Err(AuditError::Usage(format!(
            "{} is not a loopback or private address: pass --allow-remote if you are allowed to test it",
            target.base()
        )));
    }
    let secrets = Secrets::default();
    for user in &config.credentials.users {
        if let Some(p) = &user.password {
            secrets.add(p);
        }
    }
    for token in &config.credentials.tokens {
        secrets.add(token);
    }
    for value in config.credentials.headers.values() {
        secrets.add(value);
    }
    let probe = Probe::new(target.clone(), config.limits)?;
    let mut cx = Context::new(probe, secrets);
    cx.users = config.credentials.users.clone();

    // Is anything there at all?
    if let Err(e) = cx.send(probe::ProbeRequest::get("/")).await {
        return Err(AuditError::Unreachable(format!("{}: {e}", target.base())));
    }

    cx.api = openapi::discover(&cx, config.openapi.as_deref()).await?;
    cx.token_url = config
        .credentials
        .token_url
        .clone()
        .or_else(|| cx.api.as_ref().and_then(|a| a.token_url.clone()))
        .unwrap_or_else(|| "/token".into());
    let header_auth: Vec<(String, String)> = config
        .credentials
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut login_notes = Vec::new();
    for (i, user) in config.credentials.users.iter().enumerate() {
        match cx.login(user).await {
            Ok((token, _)) => cx.sessions.push(Session {
                label: session_label(i),
                username: Some(user.username.clone()),
                auth: Auth {
                    token: Some(token),
                    headers: header_auth.clone(),
                },
            }),
            Err(why) => login_notes.push(format!("user {}: {why}", i + 1)),
        }
    }
    for token in &config.credentials.tokens {
        let i = cx.sessions.len();
        cx.sessions.push(Session {
            label: session_label(i),
            username: None,
            auth: Auth {
                token: Some(token.clone()),
                headers: header_auth.clone(),
            },
        });
    }
    if cx.sessions.is_empty() && !header_auth.is_empty() {
        cx.sessions.push(Session {
            label: session_label(0),
            username: None,
            auth: Auth {
                token: None,
                headers: header_auth,
            },
        });
    }
    if !config.credentials.users.is_empty() && cx.sessions.is_empty() {
        return Err(AuditError::Unreachable(format!(
            "no user could log in: {}",
            login_notes.join("; ")
        )));
    }

    let order: Vec<CheckId> = run_order()
        .into_iter()
        .filter(|id| config.selects(*id))
        .collect();
    progress.start(order.len());
    let mut findings = Vec::new();
    let mut checks = Vec::new();
    for id in CheckId::ALL
        .iter()
        .copied()
        .filter(|id| !config.selects(*id))
    {
        checks.push(CheckReport {
            id,
            status: CheckStatus::Skipped,
            reason: Some("left out by --only/--skip".into()),
        });
    }
    for id in order {
        progress.check(id);
        let outcome = if cx.probe.remaining() == 0 {
            Outcome::Skipped("request budget spent".into())
        } else {
            checks::run(id, &cx).await
        };
        let (status, reason) = match outcome {
            Outcome::Passed(note) => (CheckStatus::Passed, note),
            Outcome::Found(found) => {
                findings.extend(found.into_iter().map(|f| mask_finding(f, &cx.secrets)));
                (CheckStatus::Failed, None)
            }
            Outcome::Skipped(why) => (CheckStatus::Skipped, Some(why)),
        };
        progress.done(id, status);
        checks.push(CheckReport { id, status, reason });
    }
    cx.clean_up().await;
    progress.finish();

    let mut report = Report {
        target: target.base().to_string(),
        started_at,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        requests: cx.probe.sent(),
        findings,
        checks,
    };
    report.sort();
    Ok(report)
}

fn session_label(i: usize) -> String {
    let letter = char::from(b'A' + u8::try_from(i % 26).unwrap_or(0));
    format!("user {letter}")
}

/// Every text of a finding goes through the mask once more: a check cannot leak a secret by
/// writing it into a title.
fn mask_finding(mut f: Finding, secrets: &Secrets) -> Finding {
    f.title = secrets.mask(&f.title);
    f.operation = secrets.mask(&f.operation);
    f.evidence.request = secrets.mask(&f.evidence.request);
    f.evidence.response = secrets.mask(&f.evidence.response);
    f
}
