//! [`SealedMailQueue`]: a [`MailQueue`] that keeps message bodies sealed at rest.
//!
//! Bodies of account mails carry single-use links (a password reset, an address verification)
//! until they are delivered, and a failed message is kept for inspection. Sealed with AES-256-GCM
//! under a key derived from the master secret, a copy of the database alone (a backup, a
//! read-only SQL injection elsewhere) yields no usable link. Recipient and subject stay readable,
//! for the operator inspecting the queue.

use std::sync::Arc;

use base64::Engine as _;

use super::{Mail, MailQueue, QueueFuture, QueuedMail, queue::QueueCounts};
use crate::secret::Sealer;

/// What a sealed body starts with (a body written before sealing was turned on is read as it
/// is).
const PREFIX: &str = "sealed:v1:";
const TEXT: &[u8] = b"bulwark-mail:text";
const HTML: &[u8] = b"bulwark-mail:html";

/// Seals the text and HTML bodies on [`MailQueue::enqueue`] and opens them on
/// [`MailQueue::claim`]; everything else passes through to the queue it wraps. A body that does
/// not open (the master secret changed) fails its message at once, with a message saying so.
///
/// ```no_run
/// # fn example(queue: std::sync::Arc<dyn bulwark::mail::MailQueue>, secret: &bulwark::secret::MasterSecret) {
/// use std::sync::Arc;
/// use bulwark::mail::sealed::SealedMailQueue;
///
/// let queue = Arc::new(SealedMailQueue::new(queue, secret.sealer_for("mail-queue")));
/// # }
/// ```
pub struct SealedMailQueue {
    inner: Arc<dyn MailQueue>,
    sealer: Sealer,
}

impl std::fmt::Debug for SealedMailQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedMailQueue")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl SealedMailQueue {
    /// Seals what goes into `inner` with `sealer`.
    pub fn new(inner: Arc<dyn MailQueue>, sealer: Sealer) -> Self {
        Self { inner, sealer }
    }

    fn seal(&self, body: &str, context: &[u8]) -> String {
        let sealed = self.sealer.seal(body.as_bytes(), context);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
        )
    }

    fn open(&self, body: String, context: &[u8]) -> Option<String> {
        let Some(sealed) = body.strip_prefix(PREFIX) else {
            return Some(body);
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .ok()?;
        let plain = self.sealer.open(&bytes, context).ok()?;
        String::from_utf8(plain).ok()
    }
}

impl MailQueue for SealedMailQueue {
    fn enqueue<'a>(&'a self, mail: &'a Mail) -> QueueFuture<'a, i64> {
        Box::pin(async move {
            let sealed = Mail {
                to: mail.to.clone(),
                subject: mail.subject.clone(),
                text: self.seal(&mail.text, TEXT),
                html: self.seal(&mail.html, HTML),
            };
            self.inner.enqueue(&sealed).await
        })
    }

    fn claim(&self, now: i64, lease_secs: i64) -> QueueFuture<'_, Option<QueuedMail>> {
        Box::pin(async move {
            loop {
                let Some(mut queued) = self.inner.claim(now, lease_secs).await? else {
                    return Ok(None);
                };
                let text = self.open(std::mem::take(&mut queued.mail.text), TEXT);
                let html = self.open(std::mem::take(&mut queued.mail.html), HTML);
                if let (Some(text), Some(html)) = (text, html) {
                    queued.mail.text = text;
                    queued.mail.html = html;
                    return Ok(Some(queued));
                }
                tracing::error!(
                    id = queued.id,
                    "a queued mail cannot be opened (sealed under another master secret?): given up"
                );
                self.inner
                    .fail(
                        queued.id,
                        "sealed body cannot be opened with this master secret",
                    )
                    .await?;
            }
        })
    }

    fn complete(&self, id: i64) -> QueueFuture<'_, ()> {
        self.inner.complete(id)
    }

    fn retry<'a>(&'a self, id: i64, at: i64, error: &'a str) -> QueueFuture<'a, ()> {
        self.inner.retry(id, at, error)
    }

    fn fail<'a>(&'a self, id: i64, error: &'a str) -> QueueFuture<'a, ()> {
        self.inner.fail(id, error)
    }

    fn counts(&self) -> QueueFuture<'_, QueueCounts> {
        self.inner.counts()
    }

    fn purge_failed(&self, before: i64) -> QueueFuture<'_, u64> {
        self.inner.purge_failed(before)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        mail::queue::{MemoryMailQueue, unix_now},
        secret::MasterSecret,
    };

    fn mail() -> Mail {
        Mail {
            to: "ada@example.com".into(),
            subject: "Reset your password".into(),
            text: "https://app.example/password-reset?token=SECRET-TOKEN".into(),
            html: "<a href=\"https://app.example/password-reset?token=SECRET-TOKEN\">x</a>".into(),
        }
    }

    #[tokio::test]
    async fn bodies_are_sealed_at_rest_and_opened_for_the_worker() {
        let inner = Arc::new(MemoryMailQueue::new());
        let secret = MasterSecret::generate();
        let sealed = SealedMailQueue::new(inner.clone(), secret.sealer_for("mail-queue"));
        sealed.enqueue(&mail()).await.unwrap();

        // What the store holds: recipient and subject, no token.
        let stored = inner.claim(unix_now(), 1).await.unwrap().unwrap();
        assert_eq!(stored.mail.to, "ada@example.com");
        assert!(!stored.mail.text.contains("SECRET-TOKEN"));
        assert!(!stored.mail.html.contains("SECRET-TOKEN"));
        inner.retry(stored.id, unix_now(), "test").await.unwrap();

        // What the worker gets: the message as enqueued.
        let claimed = sealed.claim(unix_now() + 2, 60).await.unwrap().unwrap();
        assert_eq!(claimed.mail, mail());
    }

    #[tokio::test]
    async fn a_body_sealed_under_another_secret_fails_its_message() {
        let inner = Arc::new(MemoryMailQueue::new());
        let old = SealedMailQueue::new(
            inner.clone(),
            MasterSecret::generate().sealer_for("mail-queue"),
        );
        old.enqueue(&mail()).await.unwrap();
        let new = SealedMailQueue::new(
            inner.clone(),
            MasterSecret::generate().sealer_for("mail-queue"),
        );
        assert!(new.claim(unix_now(), 60).await.unwrap().is_none());
        let counts = inner.counts().await.unwrap();
        assert_eq!((counts.queued, counts.failed), (0, 1));
    }

    #[tokio::test]
    async fn plain_bodies_written_before_sealing_are_read_as_they_are() {
        let inner = Arc::new(MemoryMailQueue::new());
        inner.enqueue(&mail()).await.unwrap();
        let sealed = SealedMailQueue::new(inner, MasterSecret::generate().sealer_for("mail-queue"));
        assert_eq!(
            sealed.claim(unix_now(), 60).await.unwrap().unwrap().mail,
            mail()
        );
    }
}
