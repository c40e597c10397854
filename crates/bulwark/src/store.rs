//! What every store trait of the library shares: the error type and the boxed future its
//! methods return (the traits are object-safe so that a backend is chosen at start-up).

use std::{future::Future, pin::Pin};

/// A boxed, sendable future, as store methods return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store failure: the backend could not be read or written. The message never holds a token
/// or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[error("store error: {message}")]
pub struct StoreError {
    /// What failed.
    pub message: String,
}

impl StoreError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}
