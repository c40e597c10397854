//! What every store trait of the library shares: the error type and the boxed future its
//! methods return (the traits are object-safe so that a backend is chosen at start-up).
//!
//! The backends of each trait live next to it (`jwt::store`, `revocation::store`,
//! `rate_limit::store`); the SQL backends, which implement several traits over one database,
//! live in `store::sql` (features `sqlx-sqlite` and `sqlx-postgres`).

#[cfg(any(feature = "sqlx-sqlite", feature = "sqlx-postgres"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "sqlx-sqlite", feature = "sqlx-postgres")))
)]
// Its docs link to both databases' stores; with one feature, the other's links point nowhere.
#[cfg_attr(
    not(all(feature = "sqlx-sqlite", feature = "sqlx-postgres")),
    allow(rustdoc::broken_intra_doc_links)
)]
pub mod sql;

use std::{future::Future, pin::Pin};

/// A boxed, sendable future, as store methods return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store failure: the backend could not be read or written. The message never holds a token
/// or key material.
///
/// [`StoreError::is_unavailable`] tells an outage (the backend is down, unreachable or too
/// slow: a retry later may succeed, and a server answers 503) from a fault of the store itself
/// (answered 500).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[error("store error: {message}")]
pub struct StoreError {
    /// What failed.
    pub message: String,
    unavailable: bool,
}

impl StoreError {
    /// An error with a message.
    ///
    /// # Examples
    /// ```
    /// let err = bulwark::store::StoreError::new("poisoned lock");
    /// assert!(!err.is_unavailable());
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            unavailable: false,
        }
    }

    /// The backend is down, unreachable or did not answer in time: a retry later may succeed.
    ///
    /// # Examples
    /// ```
    /// let err = bulwark::store::StoreError::unavailable("redis: timed out");
    /// assert!(err.is_unavailable());
    /// ```
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            unavailable: true,
        }
    }

    /// Whether this is an outage of the backend rather than a fault of the store.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}
