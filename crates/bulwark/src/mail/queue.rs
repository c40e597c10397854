//! The durable queue of messages waiting to be sent: the [`MailQueue`] trait, and
//! [`MemoryMailQueue`], its backend in process memory. The SQL backends (`SqliteStores`,
//! `PgStores`, table `mail_queue`) live in [`crate::store::sql`].
//!
//! A message goes through these states:
//!
//! | state | how it gets there | claimed by [`MailQueue::claim`] |
//! |---|---|---|
//! | queued, due | [`MailQueue::enqueue`], or a [`MailQueue::retry`] whose time has come | yes |
//! | queued, waiting | [`MailQueue::retry`] to a later time | once due |
//! | leased | [`MailQueue::claim`] | once the lease expires (its worker died) |
//! | failed | [`MailQueue::fail`] | never (kept for inspection) |
//! | gone | [`MailQueue::complete`] | never |

use std::{collections::BTreeMap, sync::Mutex};

use super::{Mail, QueueFuture};
use crate::store::StoreError;

/// A message in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// The queue's id of it.
    pub id: i64,
    /// The message.
    pub mail: Mail,
    /// Delivery attempts made so far.
    pub attempts: u32,
}

/// How many messages a queue holds, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueCounts {
    /// Messages waiting to be sent (due, waiting for a retry, or leased to a worker).
    pub queued: u64,
    /// Messages given up ([`MailQueue::fail`]), kept for inspection.
    pub failed: u64,
}

/// Where messages wait: `enqueue` durably, `claim` one due message for a while (a lease, so that
/// a worker that dies lets it go), then `complete` it or `retry` it later. With a shared backend,
/// several instances drain one queue and each message is claimed by one of them at a time.
///
/// Times are Unix seconds. [`MailQueue::enqueue`] reads the clock of the process; the other
/// methods take the time from their caller (the worker), so that a test can move it.
pub trait MailQueue: Send + Sync + std::fmt::Debug {
    /// Adds a message, due at once; its id.
    fn enqueue<'a>(&'a self, mail: &'a Mail) -> QueueFuture<'a, i64>;
    /// Claims the oldest message (the smallest id) that is due at `now` (unix seconds), not
    /// failed, and whose lease is free (never leased, released, or expired by `now`), and holds
    /// it until `now + lease_secs`. Atomic: two claimers never get one message under one lease.
    fn claim(&self, now: i64, lease_secs: i64) -> QueueFuture<'_, Option<QueuedMail>>;
    /// Removes a delivered message (an unknown id is not an error).
    fn complete(&self, id: i64) -> QueueFuture<'_, ()>;
    /// Releases a message to be tried again at `at` (unix seconds), its attempts counted (one
    /// more) and `error` kept as its last error. A failed message stays failed.
    fn retry<'a>(&'a self, id: i64, at: i64, error: &'a str) -> QueueFuture<'a, ()>;
    /// Gives a message up (kept as failed, never claimed again), counting the attempt that
    /// failed and keeping `error` as its last error.
    fn fail<'a>(&'a self, id: i64, error: &'a str) -> QueueFuture<'a, ()>;
    /// How many messages are queued and failed.
    fn counts(&self) -> QueueFuture<'_, QueueCounts>;
    /// Deletes the messages given up before `before` (unix seconds); answers how many. Queued
    /// messages are never purged.
    fn purge_failed(&self, before: i64) -> QueueFuture<'_, u64>;
}

/// The longest error text a queue keeps (longer ones are cut on a character boundary).
pub(crate) const MAX_ERROR_LEN: usize = 500;

/// `error` cut to [`MAX_ERROR_LEN`] bytes.
pub(crate) fn short_error(error: &str) -> &str {
    if error.len() <= MAX_ERROR_LEN {
        return error;
    }
    let mut end = MAX_ERROR_LEN;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

/// The current time in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A queue in process memory: for tests and single-process deployments that accept losing
/// the queued messages at exit (a message accepted before a crash is not sent after it; use an
/// SQL backend for that).
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bulwark::store::StoreError> {
/// use bulwark::mail::{Mail, MailQueue, queue::MemoryMailQueue};
///
/// let queue = MemoryMailQueue::new();
/// let mail = Mail {
///     to: "ada@example.com".into(),
///     subject: "Hello".into(),
///     text: "Hi".into(),
///     html: "<p>Hi</p>".into(),
/// };
/// let id = queue.enqueue(&mail).await?;
/// let now = std::time::SystemTime::now()
///     .duration_since(std::time::UNIX_EPOCH)
///     .map_or(0, |d| d.as_secs() as i64);
/// let claimed = queue.claim(now, 60).await?.expect("due at once");
/// assert_eq!((claimed.id, claimed.attempts), (id, 0));
/// queue.complete(id).await?;
/// assert_eq!(queue.counts().await?.queued, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryMailQueue {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    last_id: i64,
    entries: BTreeMap<i64, Entry>,
}

#[derive(Debug)]
struct Entry {
    mail: Mail,
    attempts: u32,
    next_attempt_at: i64,
    leased_until: Option<i64>,
    failed: bool,
    /// When it was given up (unix seconds).
    failed_at: i64,
    // Kept for inspection, as the SQL backends keep it; nothing reads it back yet.
    #[allow(dead_code)]
    last_error: Option<String>,
}

impl MemoryMailQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::new("poisoned lock"))
    }
}

impl MailQueue for MemoryMailQueue {
    fn enqueue<'a>(&'a self, mail: &'a Mail) -> QueueFuture<'a, i64> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            inner.last_id += 1;
            let id = inner.last_id;
            inner.entries.insert(
                id,
                Entry {
                    mail: mail.clone(),
                    attempts: 0,
                    next_attempt_at: unix_now(),
                    leased_until: None,
                    failed: false,
                    failed_at: 0,
                    last_error: None,
                },
            );
            Ok(id)
        })
    }

    fn claim(&self, now: i64, lease_secs: i64) -> QueueFuture<'_, Option<QueuedMail>> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            let found = inner.entries.iter_mut().find(|(_, e)| {
                !e.failed && e.next_attempt_at <= now && e.leased_until.is_none_or(|l| l <= now)
            });
            Ok(found.map(|(&id, e)| {
                e.leased_until = Some(now.saturating_add(lease_secs));
                QueuedMail {
                    id,
                    mail: e.mail.clone(),
                    attempts: e.attempts,
                }
            }))
        })
    }

    fn complete(&self, id: i64) -> QueueFuture<'_, ()> {
        Box::pin(async move {
            self.lock()?.entries.remove(&id);
            Ok(())
        })
    }

    fn retry<'a>(&'a self, id: i64, at: i64, error: &'a str) -> QueueFuture<'a, ()> {
        Box::pin(async move {
            if let Some(e) = self.lock()?.entries.get_mut(&id).filter(|e| !e.failed) {
                e.attempts = e.attempts.saturating_add(1);
                e.next_attempt_at = at;
                e.leased_until = None;
                e.last_error = Some(short_error(error).to_owned());
            }
            Ok(())
        })
    }

    fn fail<'a>(&'a self, id: i64, error: &'a str) -> QueueFuture<'a, ()> {
        Box::pin(async move {
            if let Some(e) = self.lock()?.entries.get_mut(&id).filter(|e| !e.failed) {
                e.attempts = e.attempts.saturating_add(1);
                e.failed = true;
                e.failed_at = unix_now();
                e.leased_until = None;
                e.last_error = Some(short_error(error).to_owned());
            }
            Ok(())
        })
    }

    fn purge_failed(&self, before: i64) -> QueueFuture<'_, u64> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            let len = inner.entries.len();
            inner
                .entries
                .retain(|_, e| !(e.failed && e.failed_at < before));
            Ok((len - inner.entries.len()) as u64)
        })
    }

    fn counts(&self) -> QueueFuture<'_, QueueCounts> {
        Box::pin(async move {
            let inner = self.lock()?;
            let failed = inner.entries.values().filter(|e| e.failed).count() as u64;
            Ok(QueueCounts {
                queued: inner.entries.len() as u64 - failed,
                failed,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_mail_queue_conforms() {
        crate::testing::mail_queue_conformance(Arc::new(MemoryMailQueue::new())).await;
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        assert_eq!(short_error("refused"), "refused");
        let long = "é".repeat(400);
        let cut = short_error(&long);
        assert!(cut.len() <= MAX_ERROR_LEN && cut.len() >= MAX_ERROR_LEN - 1);
        assert!(long.starts_with(cut));
    }
}
