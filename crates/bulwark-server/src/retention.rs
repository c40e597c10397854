//! What the server keeps, and for how long: expired entries are purged on a schedule, on every
//! backend, and nothing unexpired is ever dropped to save room.
//!
//! | what | kept until |
//! |---|---|
//! | audit events | `audit_retention` (default 90 days) |
//! | refresh tokens, spent or not | they expire (a spent one must be recognised as a replay until then) |
//! | revoked-family marks | every token of the family has expired |
//! | token revocations (database or Redis) | the token expires, plus the clock leeway |
//! | subject revocations (a user's tokens ended) | the longest access-token lifetime allowed (24 h), plus the leeway |
//! | password-reset and verification tokens | they expire (`password_reset_ttl`, `email_verification_ttl`) |
//! | mails given up (kept for inspection) | `audit_retention` after they failed |

use std::{sync::Arc, time::Duration};

use bulwark::revocation::Revoker;

use crate::db::{self, Repository};

/// The longest access-token lifetime the settings allow: every token issued before a subject
/// revocation has expired once this has passed.
const LONGEST_ACCESS_TOKEN: Duration = Duration::from_secs(24 * 3600);

/// How many rows or entries one purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Audit events older than the retention.
    pub audit: u64,
    /// Expired refresh tokens and revoked-family marks.
    pub refresh: u64,
    /// Expired revocations in the shared store.
    pub revocations: u64,
    /// Expired password-reset and verification tokens.
    pub account_tokens: u64,
    /// Mails given up longer ago than the audit retention.
    pub failed_mails: u64,
}

/// Purges everything that has expired: audit events older than `audit_retention`, expired
/// refresh tokens, account tokens and mails given up before the audit retention from `repo`, expired revocations from `revoker`'s store; each part is tried
/// even when another fails.
///
/// # Errors
/// The first failure, after every part was tried.
pub async fn purge_expired(
    repo: &dyn Repository,
    revoker: &Revoker,
    audit_retention: Duration,
) -> anyhow::Result<Purged> {
    let now = db::now();
    let keep = i64::try_from(audit_retention.as_secs()).unwrap_or(i64::MAX / 2);
    let audit = repo.purge_audit(now - keep).await;
    let refresh = repo.purge_refresh(now).await;
    let revocations = revoker.purge(now, LONGEST_ACCESS_TOKEN).await;
    let account_tokens = repo.purge_account_tokens(now).await;
    let failed_mails = repo.mail_queue().purge_failed(now - keep).await;
    Ok(Purged {
        audit: audit?,
        refresh: refresh?,
        revocations: revocations?,
        account_tokens: account_tokens?,
        failed_mails: failed_mails?,
    })
}

/// [`purge_expired`] at start and then every `every`, until the returned task is aborted.
pub fn spawn(
    repo: Arc<dyn Repository>,
    revoker: Arc<Revoker>,
    audit_retention: Duration,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match purge_expired(repo.as_ref(), &revoker, audit_retention).await {
                Ok(purged) if purged == Purged::default() => {}
                Ok(purged) => tracing::info!(
                    audit = purged.audit,
                    refresh = purged.refresh,
                    revocations = purged.revocations,
                    account_tokens = purged.account_tokens,
                    failed_mails = purged.failed_mails,
                    "expired entries purged"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "purging expired entries failed; retrying later")
                }
            }
        }
    })
}
