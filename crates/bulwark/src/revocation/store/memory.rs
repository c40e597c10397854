//! The single-instance backend: a log in process memory.

use std::sync::Mutex;

use super::{Revocation, RevocationStore, StoreError, StoreFuture};

/// Keeps the log in memory; expired token entries are dropped as new ones arrive, and a
/// subject's older minimums are replaced by its newest, so the log stays bounded by the number
/// of live revocations.
#[derive(Debug, Default)]
pub struct MemoryRevocationStore {
    log: Mutex<Log>,
}

#[derive(Debug, Default)]
struct Log {
    next: u64,
    /// Sequence number, revocation, and when it was published (Unix seconds).
    entries: Vec<(u64, Revocation, i64)>,
}

impl MemoryRevocationStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl RevocationStore for MemoryRevocationStore {
    fn publish<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let mut log = self
                .log
                .lock()
                .map_err(|_| StoreError::new("poisoned lock"))?;
            log.entries.retain(|(_, r, _)| match (r, revocation) {
                (Revocation::Token { expires_at, .. }, _) => *expires_at + 60 >= now,
                (Revocation::Subject { sub: old, .. }, Revocation::Subject { sub, .. }) => {
                    old != sub
                }
                _ => true,
            });
            log.next += 1;
            let seq = log.next;
            log.entries.push((seq, revocation.clone(), now));
            Ok(())
        })
    }

    fn since(&self, cursor: u64) -> StoreFuture<'_, (Vec<Revocation>, u64)> {
        Box::pin(async move {
            let log = self
                .log
                .lock()
                .map_err(|_| StoreError::new("poisoned lock"))?;
            let items = log
                .entries
                .iter()
                .filter(|(seq, _, _)| *seq > cursor)
                .map(|(_, r, _)| r.clone())
                .collect();
            Ok((items, log.next.max(cursor)))
        })
    }

    fn purge(&self, expired_before: i64, subjects_before: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut log = self
                .log
                .lock()
                .map_err(|_| StoreError::new("poisoned lock"))?;
            let before = log.entries.len();
            log.entries.retain(|(_, r, published)| match r {
                Revocation::Token { expires_at, .. } => *expires_at >= expired_before,
                Revocation::Subject { .. } => *published >= subjects_before,
            });
            Ok((before - log.entries.len()) as u64)
        })
    }
}
