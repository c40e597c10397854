//! Where revocations are shared between instances: a trait, one file per backend.

pub mod memory;
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
}
