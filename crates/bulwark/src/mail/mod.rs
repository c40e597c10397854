//! Mail delivery: a [`Mailer`] that sends one message (SMTP over lettre, or `.eml` files in an
//! outbox folder), fed by a durable [`MailQueue`] that a [`worker`] drains with retries and
//! back-off, so that a slow or down mail server never holds a request up.
//!
//! | piece | file |
//! |---|---|
//! | [`Mail`], [`Mailer`], [`MailError`] | here |
//! | [`smtp::SmtpMailer`] (`smtp://`, `smtp+starttls://`, `smtps://`) | `smtp.rs` |
//! | [`outbox::OutboxMailer`] (RFC 5322 `.eml` files, mode 0600) | `outbox.rs` |
//! | [`MailQueue`], [`QueuedMail`], [`queue::MemoryMailQueue`] | `queue.rs` |
//! | [`sealed::SealedMailQueue`] (bodies sealed at rest under the master secret) | `sealed.rs` |
//! | SQL queues (`SqliteStores`, `PgStores`) | `crate::store::sql` |
//! | [`worker::MailWorker`] | `worker.rs` |

use std::{future::Future, pin::Pin};

use crate::store::StoreError;

pub mod outbox;
pub mod queue;
pub mod sealed;
pub mod smtp;
pub mod worker;

pub use queue::{MailQueue, QueuedMail};

/// One message: plain text and HTML alternatives.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

impl std::fmt::Debug for Mail {
    // Bodies carry single-use tokens (reset and verification links): never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Worth trying again later (a connection refused, a timeout, a 4xx reply).
    #[error("mail delivery failed for now: {0}")]
    Transient(String),
    /// Will fail again (a 5xx reply, an address the server refuses, a bad configuration).
    #[error("mail delivery failed: {0}")]
    Permanent(String),
}

/// A boxed future of a [`Mailer`].
pub type MailFuture<'a> = Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'a>>;

/// Sends one message. Implementations never block the async workers (file and network I/O are
/// asynchronous or moved to blocking threads).
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Delivers `mail` from `from`.
    fn send<'a>(&'a self, from: &'a str, mail: &'a Mail) -> MailFuture<'a>;
}

/// Checks that `text` is one e-mail address (`local@domain`, no display name) that a message
/// can be sent to.
///
/// # Errors
/// What is wrong with it.
pub fn check_address(text: &str) -> Result<(), String> {
    text.parse::<lettre::Address>()
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Checks a sender: an address, or `Name <address>`.
///
/// # Errors
/// What is wrong with it.
pub fn check_mailbox(text: &str) -> Result<(), String> {
    text.parse::<lettre::message::Mailbox>()
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A boxed future of a [`MailQueue`].
pub type QueueFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_and_senders_are_checked() {
        assert!(super::check_address("ada@example.com").is_ok());
        assert!(super::check_address("Ada <ada@example.com>").is_err());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "a b@example.com",
            "a@b@c",
        ] {
            assert!(super::check_address(bad).is_err(), "{bad:?}");
        }
        assert!(super::check_mailbox("Bulwark <bulwark@example.com>").is_ok());
        assert!(super::check_mailbox("bulwark@example.com").is_ok());
        assert!(super::check_mailbox("bulwark").is_err());
    }
}
