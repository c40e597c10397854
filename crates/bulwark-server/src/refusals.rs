//! Refusals (a CSRF 403, a login 429) in the audit trail at most once per client and window.
//!
//! **Why.** Recording every refusal as its own row made each one a durable write (an fsync on
//! SQLite) that the refused request waited for: an anonymous client could buy unlimited disk
//! writes, and slow every other request down with them. Refusals are counted in the metrics
//! one by one, as before; in the audit trail each client (its address, IPv6 grouped like the
//! rate limits) gets at most one row per kind and window, written after the window by a
//! background task, carrying how many refusals it stands for. No request waits for it.
//!
//! Memory is bounded: past [`MAX_CLIENTS`] clients in one window, further clients' refusals are
//! counted in one row per kind without an address.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::{
    audit::{AuditEvent, AuditKind},
    db::AuditRepo,
};

/// How many clients one window tracks before it counts the rest together.
pub const MAX_CLIENTS: usize = 10_000;

/// The default window: one row per client and kind per minute at most.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Refusals waiting for their window to end.
#[derive(Debug)]
pub struct RefusalLog {
    window: Duration,
    ipv6_prefix: u8,
    open: Mutex<HashMap<(AuditKind, Option<IpAddr>), Tally>>,
}

#[derive(Debug)]
struct Tally {
    started: Instant,
    count: u64,
    /// What the first refusal of the window was, e.g. `CSRF check refused: POST /items/`.
    first: String,
    /// The username the first refusal concerned (a per-username login limit), as typed.
    username: Option<String>,
}

impl RefusalLog {
    /// A log whose rows each cover at most `window`, keying IPv6 clients by `ipv6_prefix` bits.
    pub fn new(window: Duration, ipv6_prefix: u8) -> Self {
        Self {
            window,
            ipv6_prefix,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one refusal of `kind` for the client `ip`; `what` describes it (a fixed text and
    /// the route, never a secret). Never waits on storage.
    pub fn count(&self, kind: AuditKind, ip: IpAddr, what: impl FnOnce() -> String) {
        self.count_for(kind, ip, None, what);
    }

    /// [`RefusalLog::count`] for a refusal that concerns `username` (as typed; the row names
    /// the first one of its window).
    pub fn count_for(
        &self,
        kind: AuditKind,
        ip: IpAddr,
        username: Option<&str>,
        what: impl FnOnce() -> String,
    ) {
        let client = bulwark::client_ip::ip_group(ip, self.ipv6_prefix);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let key = if open.len() >= MAX_CLIENTS && !open.contains_key(&(kind, Some(client))) {
            (kind, None)
        } else {
            (kind, Some(client))
        };
        open.entry(key)
            .and_modify(|t| t.count += 1)
            .or_insert_with(|| Tally {
                started: Instant::now(),
                count: 1,
                first: what(),
                username: username.map(|u| u.chars().take(64).collect()),
            });
    }

    /// Takes the rows whose window has ended (all of them with `all`), as audit events.
    pub fn take_due(&self, all: bool) -> Vec<(AuditKind, AuditEvent)> {
        let now = Instant::now();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let due: Vec<_> = open
            .iter()
            .filter(|(_, t)| all || now.duration_since(t.started) >= self.window)
            .map(|(key, _)| *key)
            .collect();
        due.into_iter()
            .filter_map(|key| open.remove(&key).map(|t| (key, t)))
            .map(|((kind, ip), tally)| {
                let Tally {
                    count,
                    first,
                    username,
                    ..
                } = tally;
                let seconds = self.window.as_secs();
                let detail = if count == 1 {
                    first
                } else {
                    format!(
                        "{first} (and {} more refusals from this client within {seconds}s)",
                        count - 1
                    )
                };
                let detail = match ip {
                    Some(_) => detail,
                    None => format!("{detail}; many clients, counted together"),
                };
                (
                    kind,
                    AuditEvent {
                        ip,
                        username,
                        detail: Some(detail),
                        ..AuditEvent::default()
                    },
                )
            })
            .collect()
    }
}

/// Writes `log`'s due rows to `audit` every few seconds until aborted; [`write`] with `all` at
/// shutdown writes the rest.
pub fn spawn(log: Arc<RefusalLog>, audit: Arc<dyn AuditRepo>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            write(&log, audit.as_ref(), false).await;
        }
    })
}

/// Writes the rows of `log` whose window has ended (every row with `all`) to the audit trail.
pub async fn write(log: &RefusalLog, audit: &dyn AuditRepo, all: bool) {
    for (kind, event) in log.take_due(all) {
        crate::audit::record(audit, kind, event).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn one_row_per_client_and_kind_carrying_the_count() {
        let log = RefusalLog::new(Duration::from_secs(60), 64);
        for _ in 0..50 {
            log.count(AuditKind::CsrfRejected, ip("192.0.2.1"), || {
                "CSRF: POST /x".into()
            });
        }
        log.count(AuditKind::CsrfRejected, ip("2001:db8::1"), || "a".into());
        log.count(AuditKind::CsrfRejected, ip("2001:db8::2"), || "b".into());
        log.count(AuditKind::LoginRateLimited, ip("192.0.2.1"), || "c".into());
        assert!(log.take_due(false).is_empty(), "the window has not ended");
        let mut rows = log.take_due(true);
        rows.sort_by_key(|(k, e)| (k.as_str(), e.ip));
        assert_eq!(rows.len(), 3, "{rows:?}");
        let csrf_v4 = rows
            .iter()
            .find(|(k, e)| *k == AuditKind::CsrfRejected && e.ip == Some(ip("192.0.2.1")))
            .expect("row");
        assert!(
            csrf_v4
                .1
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("49 more")),
            "{csrf_v4:?}"
        );
        assert!(log.take_due(true).is_empty());
    }

    #[test]
    fn memory_is_bounded_whatever_the_number_of_clients() {
        let log = RefusalLog::new(Duration::from_secs(60), 64);
        for i in 0..(MAX_CLIENTS as u32 + 500) {
            log.count(
                AuditKind::CsrfRejected,
                IpAddr::from(i.to_be_bytes()),
                || "x".into(),
            );
        }
        let rows = log.take_due(true);
        assert_eq!(rows.len(), MAX_CLIENTS + 1);
        assert!(rows.iter().any(|(_, e)| e.ip.is_none()));
    }
}
