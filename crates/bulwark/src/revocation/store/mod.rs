//! Where revocations are shared between instances: a trait, one file per backend (the SQL
//! backends, which keep the key ring too, are in `store::sql`: features `sqlx-sqlite` and
//! `sqlx-postgres`).

pub mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use crate::store::{StoreError, StoreFuture};

use super::Revocation;

/// An append-only log of revocations with a monotonic cursor.
///
/// Applying a revocation twice is harmless, so a backend may return an entry again (for
/// example, to cover entries committed out of order); it must never skip one.
pub trait RevocationStore: Send + Sync + std::fmt::Debug {
    /// Appends one revocation.
    fn publish<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, ()>;

    /// Revocations appended after `cursor` (0: from the start), oldest first, and the cursor to
    /// pass next time. Entries whose tokens have expired may be left out.
    fn since(&self, cursor: u64) -> StoreFuture<'_, (Vec<Revocation>, u64)>;

    /// Removes what no live token can need any more: token entries that expire before
    /// `expired_before`, and subject entries published before `subjects_before` (every token
    /// issued before a subject entry has expired once the longest token lifetime has passed).
    /// Answers how many entries were removed. Nothing else is ever removed: no unexpired
    /// revocation is lost to a size limit.
    fn purge(&self, expired_before: i64, subjects_before: i64) -> StoreFuture<'_, u64>;
}
