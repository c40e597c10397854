//! Where rate-limit state lives: a trait, one file per backend.

pub mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use crate::store::{StoreError, StoreFuture};

use super::quota::{Decision, Quota};

/// Applies one GCRA step for `key` atomically: concurrent checks of one key never both take the
/// last slot.
pub trait RateLimitStore: Send + Sync + std::fmt::Debug {
    /// Checks (and, when admitted, counts) one request for `key` under `quota`.
    fn check<'a>(&'a self, key: &'a str, quota: &'a Quota) -> StoreFuture<'a, Decision>;

    /// The same answer as [`check`](Self::check) when the store can give it without waiting (an
    /// in-process store), saving a boxed future per request; `None` (the default) means: call
    /// `check`.
    fn check_at_once(&self, key: &str, quota: &Quota) -> Option<Result<Decision, StoreError>> {
        let _ = (key, quota);
        None
    }
}
