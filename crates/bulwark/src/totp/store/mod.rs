//! Where the last accepted time step of each subject is kept, so that a code is accepted once:
//! a trait, one file per backend (the SQL backends are in `store::sql`: features `sqlx-sqlite`
//! and `sqlx-postgres`).

pub mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use crate::store::{StoreError, StoreFuture};

/// The last accepted TOTP time step of each subject, advanced atomically.
///
/// [`Totp::verify_once`](super::Totp::verify_once) calls [`claim`](Self::claim) with the step a
/// code matched: the code is accepted only when the store moves the subject's last step
/// forward to it. So a code is accepted once (a replay claims the same step again), and a code
/// older than one already accepted is refused too (its step is smaller).
pub trait TotpStepStore: Send + Sync + std::fmt::Debug {
    /// Records `step` as `subject`'s last accepted step if it is greater than the one recorded
    /// (or none is), and answers whether it did. Atomic, also across instances sharing the
    /// backend: of concurrent claims of one step for one subject, exactly one answers `true`.
    ///
    /// `expires_at` (Unix seconds) is when the entry may be forgotten: by then no step up to
    /// `step` can verify any more, so forgetting it lets no code through. A backend must keep
    /// the entry at least until then.
    fn claim<'a>(&'a self, subject: &'a str, step: u64, expires_at: i64) -> StoreFuture<'a, bool>;

    /// Removes the entries whose `expires_at` is before `now`, and answers how many. A backend
    /// that expires entries by itself (memory, Redis) may answer 0.
    fn purge(&self, now: i64) -> StoreFuture<'_, u64>;
}
