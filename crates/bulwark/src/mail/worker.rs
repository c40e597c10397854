//! The worker that drains a [`MailQueue`] through a [`Mailer`], and the [`MailSender`] that
//! request handlers enqueue with.
//!
//! A request handler never waits on the mail server: [`MailSender::send`] is one insert into the
//! queue, then wakes the worker. The worker claims the oldest due message for a lease
//! ([`MailWorker::lease`], 60 s by default), sends it, and then:
//!
//! | outcome | the message |
//! |---|---|
//! | sent | is removed ([`MailQueue::complete`]) |
//! | [`MailError::Transient`] (or no answer within the send timeout) | is tried again after a back-off: exponential from 30 s, capped at 1 h, with jitter ([`MailQueue::retry`]); given up after [`MailWorker::max_attempts`] attempts (8 by default) |
//! | [`MailError::Permanent`] | is given up at once ([`MailQueue::fail`], kept for inspection) |
//!
//! If the process dies meanwhile (`kill -9`), the message stays in a durable queue and is claimed
//! again when its lease expires, by this instance after a restart or by another one sharing the
//! database: delivery is at least once. A send is abandoned (as a transient failure) once three
//! quarters of the lease have passed, so that another worker claims a message only when its first
//! worker has given it up or died.
//!
//! Failures are logged at `warn` with the message's id, the recipient's domain, the attempt and
//! the kind of error: never the recipient's full address, the subject or a body (which carry
//! single-use tokens).
//!
//! # Examples
//!
//! ```no_run
//! # async fn example(mailer: std::sync::Arc<dyn bulwark::mail::Mailer>) -> Result<(), bulwark::store::StoreError> {
//! use std::sync::Arc;
//!
//! use bulwark::mail::{
//!     Mail,
//!     queue::MemoryMailQueue,
//!     worker::{MailStats, MailWorker},
//! };
//!
//! let stats = Arc::new(MailStats::default());
//! let worker = MailWorker::new(Arc::new(MemoryMailQueue::new()), mailer, "app@example.com")
//!     .observer({
//!         let stats = Arc::clone(&stats);
//!         move |outcome| stats.record(outcome)
//!     });
//! let sender = worker.sender(); // cloned into the request handlers
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let task = worker.spawn(async move {
//!     let _ = stopped.await;
//! });
//!
//! sender
//!     .send(&Mail {
//!         to: "ada@example.com".into(),
//!         subject: "Reset your password".into(),
//!         text: "...".into(),
//!         html: "...".into(),
//!     })
//!     .await?;
//!
//! let _ = stop.send(()); // at shutdown: the worker finishes the message it is sending
//! let _ = task.await;
//! # Ok(())
//! # }
//! ```

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{sync::Notify, task::JoinHandle};

use super::{Mail, MailError, MailQueue, Mailer, QueuedMail, queue::unix_now};
use crate::store::StoreError;

/// What became of one delivery attempt, as a [`MailWorker::observer`] hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MailOutcome {
    /// Delivered and removed from the queue.
    Sent,
    /// Failed for now; to be tried again later.
    Retried,
    /// Given up: a permanent error, or the last attempt failed.
    Failed,
}

/// Counters of [`MailOutcome`]s, for metrics: give [`MailStats::record`] to
/// [`MailWorker::observer`].
#[derive(Debug, Default)]
pub struct MailStats {
    sent: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
}

impl MailStats {
    /// Counts one outcome.
    pub fn record(&self, outcome: MailOutcome) {
        let counter = match outcome {
            MailOutcome::Sent => &self.sent,
            MailOutcome::Retried => &self.retried,
            MailOutcome::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages delivered.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Failed attempts to be tried again.
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// Messages given up.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// The callback of [`MailWorker::observer`].
type Observer = Arc<dyn Fn(MailOutcome) + Send + Sync>;

/// Enqueues messages and wakes the worker: what request handlers hold. Cloning it is cheap.
/// Get one from [`MailWorker::sender`].
#[derive(Clone)]
pub struct MailSender {
    queue: Arc<dyn MailQueue>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for MailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSender")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl MailSender {
    /// Queues `mail` (one insert: never waits on the mail server) and wakes the worker; the
    /// message's id in the queue.
    ///
    /// # Errors
    /// When the queue cannot be written ([`StoreError::is_unavailable`] for an outage).
    pub async fn send(&self, mail: &Mail) -> Result<i64, StoreError> {
        let id = self.queue.enqueue(mail).await?;
        self.wake.notify_one();
        Ok(id)
    }

    /// The queue messages go to.
    pub fn queue(&self) -> &Arc<dyn MailQueue> {
        &self.queue
    }
}

/// Drains a [`MailQueue`] through a [`Mailer`]: see the [module docs](self). Configure it with
/// the builder methods, take [`MailWorker::sender`]s, then [`MailWorker::spawn`] it.
#[derive(Clone)]
pub struct MailWorker {
    queue: Arc<dyn MailQueue>,
    mailer: Arc<dyn Mailer>,
    from: String,
    lease: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    poll_interval: Duration,
    wake: Arc<Notify>,
    observer: Option<Observer>,
}

impl std::fmt::Debug for MailWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailWorker")
            .field("queue", &self.queue)
            .field("mailer", &self.mailer)
            .field("from", &self.from)
            .field("lease", &self.lease)
            .field("max_attempts", &self.max_attempts)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl MailWorker {
    /// A worker sending the messages of `queue` from `from` through `mailer`, with the
    /// defaults: a lease of 60 s, 8 attempts, a back-off from 30 s to 1 h, and a poll every
    /// second (messages enqueued by a [`MailSender`] of this worker are sent at once; the poll
    /// finds those of other instances and retries that have come due).
    pub fn new(
        queue: Arc<dyn MailQueue>,
        mailer: Arc<dyn Mailer>,
        from: impl Into<String>,
    ) -> Self {
        Self {
            queue,
            mailer,
            from: from.into(),
            lease: Duration::from_secs(60),
            max_attempts: 8,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(1),
            wake: Arc::new(Notify::new()),
            observer: None,
        }
    }

    /// How long a claimed message is held (whole seconds, at least 1): if the worker dies, the
    /// message is claimed again after it. A send is abandoned after three quarters of it.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// How many attempts a message gets before it is given up (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The back-off between attempts: `base` doubled at each attempt, at most `max`, with
    /// jitter (each delay is between half of it and all of it); rounded up to whole seconds.
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max.max(base);
        self
    }

    /// How often an idle worker looks at the queue.
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(10));
        self
    }

    /// Calls `observer` with each attempt's outcome (for metrics: see [`MailStats`]). It runs
    /// on the worker's task: keep it short.
    #[must_use]
    pub fn observer(mut self, observer: impl Fn(MailOutcome) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// A handle that enqueues messages and wakes this worker.
    pub fn sender(&self) -> MailSender {
        MailSender {
            queue: Arc::clone(&self.queue),
            wake: Arc::clone(&self.wake),
        }
    }

    /// Runs the worker on a tokio task until `shutdown` completes; the worker then finishes the
    /// message it is sending (if any) and stops. Aborting the task instead leaves that message
    /// leased: it is claimed again when the lease expires.
    pub fn spawn<F>(self, shutdown: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(self.run(shutdown))
    }

    async fn run<F: Future<Output = ()>>(self, shutdown: F) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut store_failures = 0u32;
        loop {
            // Stop between messages once asked (the future is not polled again after it ends).
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = std::future::ready(()) => {}
            }
            let idle = match self.queue.claim(unix_now(), self.lease_secs()).await {
                Ok(Some(queued)) => {
                    store_failures = 0;
                    self.deliver(queued).await;
                    continue;
                }
                Ok(None) => {
                    store_failures = 0;
                    self.poll_interval
                }
                Err(err) => {
                    store_failures = store_failures.saturating_add(1);
                    tracing::warn!(error = %err, "mail queue unreadable; trying again");
                    // Up to a minute apart while the queue stays down.
                    self.poll_interval
                        .saturating_mul(1 << store_failures.min(6))
                        .min(Duration::from_secs(60).max(self.poll_interval))
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(idle) => {}
            }
        }
    }

    fn lease_secs(&self) -> i64 {
        i64::try_from(self.lease.as_secs())
            .unwrap_or(i64::MAX / 4)
            .max(1)
    }

    /// Sends one claimed message and records the outcome in the queue.
    async fn deliver(&self, queued: QueuedMail) {
        let attempt = queued.attempts.saturating_add(1);
        let timeout = self.lease.saturating_mul(3) / 4;
        let sent =
            match tokio::time::timeout(timeout, self.mailer.send(&self.from, &queued.mail)).await {
                Ok(sent) => sent,
                Err(_) => Err(MailError::Transient(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                ))),
            };
        let domain = recipient_domain(&queued.mail.to);
        let outcome = match sent {
            Ok(()) => {
                if let Err(err) = self.queue.complete(queued.id).await {
                    // Sent, but still in the queue: it goes out again after the lease.
                    tracing::warn!(id = queued.id, to_domain = domain, error = %err,
                        "mail sent but not removed from the queue");
                }
                tracing::debug!(id = queued.id, to_domain = domain, attempt, "mail sent");
                MailOutcome::Sent
            }
            Err(MailError::Transient(reason)) if attempt < self.max_attempts => {
                let reason = redact(&reason, &queued.mail.to);
                let delay = self.backoff_delay(queued.attempts);
                let at = unix_now().saturating_add(ceil_secs(delay));
                tracing::warn!(id = queued.id, to_domain = domain, attempt,
                    max_attempts = self.max_attempts, kind = "transient", error = %reason,
                    retry_in_secs = ceil_secs(delay), "mail delivery failed; will retry");
                let error = format!("transient: {reason}");
                if let Err(err) = self.queue.retry(queued.id, at, &error).await {
                    tracing::warn!(id = queued.id, error = %err,
                        "mail retry not recorded; retried after the lease");
                }
                MailOutcome::Retried
            }
            Err(err) => {
                let (kind, reason) = match err {
                    MailError::Transient(reason) => ("transient", reason),
                    MailError::Permanent(reason) => ("permanent", reason),
                };
                let reason = redact(&reason, &queued.mail.to);
                tracing::warn!(id = queued.id, to_domain = domain, attempt,
                    max_attempts = self.max_attempts, kind, error = %reason,
                    "mail delivery failed; given up");
                let error = format!("{kind}: {reason}");
                if let Err(err) = self.queue.fail(queued.id, &error).await {
                    tracing::warn!(id = queued.id, error = %err,
                        "mail failure not recorded; retried after the lease");
                }
                MailOutcome::Failed
            }
        };
        if let Some(observer) = &self.observer {
            observer(outcome);
        }
    }

    /// The wait after the failed attempt number `attempts + 1`: `base * 2^attempts`, capped,
    /// then drawn between half of it and all of it.
    fn backoff_delay(&self, attempts: u32) -> Duration {
        let full = self
            .backoff_base
            .saturating_mul(1u32 << attempts.min(20))
            .min(self.backoff_max);
        let half = full / 2;
        let random = crate::secret::random_bytes(4);
        let fraction = f64::from(u32::from_le_bytes([
            random[0], random[1], random[2], random[3],
        ])) / f64::from(u32::MAX);
        half + (full - half).mul_f64(fraction)
    }
}

/// A duration in whole seconds, rounded up.
fn ceil_secs(d: Duration) -> i64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(secs).unwrap_or(i64::MAX / 4)
}

/// The domain of an address, the only part of it a log line shows.
fn recipient_domain(to: &str) -> &str {
    to.rsplit_once('@').map_or("?", |(_, domain)| domain)
}

/// `reason` with the recipient's address masked: mail servers echo it in their replies, and a
/// log line shows only its domain.
fn redact(reason: &str, to: &str) -> String {
    if to.is_empty() {
        return reason.to_owned();
    }
    reason.replace(to, &format!("<…@{}>", recipient_domain(to)))
}

#[cfg(test)]
pub(crate) mod tests {
    //! The worker over real queues (memory here; SQLite and PostgreSQL in `store::sql::mail`)
    //! and a test mailer that records what it is given (or fails, or never answers, as told).
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::{
        collections::{HashMap, VecDeque},
        sync::{Mutex, atomic::AtomicUsize},
        time::Instant,
    };

    use super::*;
    use crate::mail::{MailFuture, outbox::OutboxMailer, queue::MemoryMailQueue};

    /// Delivers through the library's [`OutboxMailer`] (`.eml` files in a temporary folder)
    /// and records what it delivered; fails with `failures` first, in order; with
    /// `always_transient`, always fails for now; with `hang`, never answers.
    #[derive(Debug)]
    pub(crate) struct TestMailer {
        failures: Mutex<VecDeque<MailError>>,
        always_transient: bool,
        hang: bool,
        calls: AtomicUsize,
        sent: Mutex<Vec<(String, Mail)>>,
        outbox: OutboxMailer,
        _dir: tempfile::TempDir,
    }

    impl Default for TestMailer {
        fn default() -> Self {
            let dir = tempfile::tempdir().unwrap();
            Self {
                failures: Mutex::default(),
                always_transient: false,
                hang: false,
                calls: AtomicUsize::new(0),
                sent: Mutex::default(),
                outbox: OutboxMailer::new(dir.path().join("outbox")),
                _dir: dir,
            }
        }
    }

    impl TestMailer {
        pub(crate) fn delivering() -> Arc<Self> {
            Arc::new(Self::default())
        }

        fn failing_first(failures: impl IntoIterator<Item = MailError>) -> Arc<Self> {
            Arc::new(Self {
                failures: Mutex::new(failures.into_iter().collect()),
                ..Self::default()
            })
        }

        pub(crate) fn hanging() -> Arc<Self> {
            Arc::new(Self {
                hang: true,
                ..Self::default()
            })
        }

        /// The `.eml` files of the outbox.
        fn eml_files(&self) -> usize {
            std::fs::read_dir(self.outbox.dir()).map_or(0, |entries| {
                entries
                    .filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    })
                    .count()
            })
        }

        pub(crate) fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        pub(crate) fn sent(&self) -> Vec<(String, Mail)> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl Mailer for TestMailer {
        fn send<'a>(&'a self, from: &'a str, mail: &'a Mail) -> MailFuture<'a> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                if self.hang {
                    std::future::pending::<()>().await;
                }
                if self.always_transient {
                    return Err(MailError::Transient("421 try again later".into()));
                }
                if let Some(err) = self.failures.lock().unwrap().pop_front() {
                    return Err(err);
                }
                self.outbox.send(from, mail).await?;
                self.sent
                    .lock()
                    .unwrap()
                    .push((from.to_owned(), mail.clone()));
                Ok(())
            })
        }
    }

    pub(crate) fn mail(n: usize) -> Mail {
        Mail {
            to: format!("user{n}@example.com"),
            subject: format!("Message {n}"),
            text: format!("token t{n}"),
            html: format!("<p>token t{n}</p>"),
        }
    }

    /// Waits until `done` holds (checked every 10 ms), at most `within`.
    pub(crate) async fn eventually(what: &str, within: Duration, done: impl Fn() -> bool) {
        let deadline = Instant::now() + within;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Aborts a worker and waits until it is gone.
    pub(crate) async fn stop(task: JoinHandle<()>) {
        task.abort();
        let _ = task.await;
    }

    async fn counts(queue: &dyn MailQueue) -> (u64, u64) {
        let c = queue.counts().await.unwrap();
        (c.queued, c.failed)
    }

    /// A worker that only the wake-up of its sender (or a 20 ms poll, with `poll`) sets going;
    /// no back-off.
    fn worker(
        queue: Arc<dyn MailQueue>,
        mailer: Arc<dyn Mailer>,
        stats: &Arc<MailStats>,
        poll: bool,
    ) -> MailWorker {
        let stats = Arc::clone(stats);
        MailWorker::new(queue, mailer, "app@example.com")
            .backoff(Duration::ZERO, Duration::ZERO)
            .poll_interval(if poll {
                Duration::from_millis(20)
            } else {
                Duration::from_secs(3600)
            })
            .observer(move |outcome| stats.record(outcome))
    }

    /// A message enqueued is sent at once (the sender wakes the worker), exactly once, from the
    /// worker's address, and leaves the queue.
    pub(crate) async fn sends_once(queue: Arc<dyn MailQueue>) {
        let mailer = TestMailer::delivering();
        let stats = Arc::new(MailStats::default());
        let worker = worker(Arc::clone(&queue), mailer.clone(), &stats, false);
        let sender = worker.sender();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = worker.spawn(async move {
            let _ = stopped.await;
        });
        // The first poll finds nothing; the wake-up alone sends the message.
        tokio::time::sleep(Duration::from_millis(50)).await;
        sender.send(&mail(1)).await.unwrap();
        eventually("the message is sent", Duration::from_secs(5), || {
            stats.sent() == 1
        })
        .await;
        assert_eq!(mailer.sent(), [("app@example.com".to_owned(), mail(1))]);
        assert_eq!(
            counts(&*queue).await,
            (0, 0),
            "a sent message leaves the queue"
        );
        sender.send(&mail(2)).await.unwrap();
        eventually("the second message is sent", Duration::from_secs(5), || {
            stats.sent() == 2
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(mailer.calls(), 2, "each message sent once");
        assert_eq!(mailer.eml_files(), 2, "two files in the outbox");
        assert_eq!((stats.retried(), stats.failed()), (0, 0));
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    /// Transient failures are retried until delivered; a permanent one fails at once; transient
    /// ones give up after `max_attempts`.
    pub(crate) async fn retries_and_failures(queue: Arc<dyn MailQueue>) {
        let stats = Arc::new(MailStats::default());
        let mailer = TestMailer::failing_first([
            MailError::Transient("connection refused".into()),
            MailError::Transient("451 try later".into()),
        ]);
        let task =
            worker(Arc::clone(&queue), mailer.clone(), &stats, true).spawn(std::future::pending());
        queue.enqueue(&mail(1)).await.unwrap();
        eventually(
            "delivered after two retries",
            Duration::from_secs(5),
            || stats.sent() == 1,
        )
        .await;
        assert_eq!((stats.retried(), stats.failed()), (2, 0));
        assert_eq!(mailer.calls(), 3);
        assert_eq!((mailer.sent().len(), mailer.eml_files()), (1, 1));
        assert_eq!(counts(&*queue).await, (0, 0));
        stop(task).await;

        let stats = Arc::new(MailStats::default());
        let mailer = TestMailer::failing_first([MailError::Permanent("550 no such user".into())]);
        let task =
            worker(Arc::clone(&queue), mailer.clone(), &stats, true).spawn(std::future::pending());
        queue.enqueue(&mail(2)).await.unwrap();
        eventually("failed at once", Duration::from_secs(5), || {
            stats.failed() == 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            (stats.sent(), stats.retried(), mailer.calls()),
            (0, 0, 1),
            "never tried again"
        );
        assert_eq!(counts(&*queue).await, (0, 1), "kept as failed");
        stop(task).await;

        let stats = Arc::new(MailStats::default());
        let mailer = Arc::new(TestMailer {
            always_transient: true,
            ..TestMailer::default()
        });
        let task = worker(Arc::clone(&queue), mailer.clone(), &stats, true)
            .max_attempts(3)
            .spawn(std::future::pending());
        queue.enqueue(&mail(3)).await.unwrap();
        eventually("given up after 3 attempts", Duration::from_secs(5), || {
            stats.failed() == 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!((stats.retried(), mailer.calls()), (2, 3));
        assert_eq!(counts(&*queue).await, (0, 2));
        stop(task).await;
    }

    /// A worker dropped mid-send (as by `kill -9`, before its mail server answered) leaves the
    /// message leased; another worker (`after`: the same queue, or the same database through a
    /// new pool) sends it once the lease expires: no loss, no duplicate.
    pub(crate) async fn dropped_worker_loses_nothing(
        before: Arc<dyn MailQueue>,
        after: Arc<dyn MailQueue>,
    ) {
        let lease = Duration::from_secs(2);
        let hanging = TestMailer::hanging();
        let stats = Arc::new(MailStats::default());
        let first = worker(Arc::clone(&before), hanging.clone(), &stats, false).lease(lease);
        let sender = first.sender();
        let first = first.spawn(std::future::pending());
        sender.send(&mail(7)).await.unwrap();
        eventually(
            "the first worker is sending",
            Duration::from_secs(5),
            || hanging.calls() == 1,
        )
        .await;
        let claimed_at = Instant::now();
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());

        let mailer = TestMailer::delivering();
        let second = worker(Arc::clone(&after), mailer.clone(), &stats, true)
            .lease(lease)
            .spawn(std::future::pending());
        // The lease (2 s, whole seconds from the claim's second) holds for at least 1 s.
        tokio::time::sleep(Duration::from_millis(500).saturating_sub(claimed_at.elapsed())).await;
        assert!(claimed_at.elapsed() < Duration::from_secs(1));
        assert_eq!(
            mailer.calls(),
            0,
            "not while the first worker's lease holds"
        );
        eventually("sent after the lease", Duration::from_secs(5), || {
            stats.sent() == 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            mailer.sent(),
            [("app@example.com".to_owned(), mail(7))],
            "sent once"
        );
        assert_eq!(mailer.eml_files(), 1);
        assert_eq!((hanging.calls(), hanging.sent().len()), (1, 0));
        assert_eq!(counts(&*after).await, (0, 0));
        stop(second).await;
    }

    /// Several workers (instances) over one queue: each of 30 messages is sent exactly once.
    pub(crate) async fn several_workers_send_each_once(queues: Vec<Arc<dyn MailQueue>>) {
        let mailer = TestMailer::delivering();
        let stats = Arc::new(MailStats::default());
        let mut tasks = Vec::new();
        for queue in &queues {
            tasks.push(
                worker(Arc::clone(queue), mailer.clone(), &stats, true)
                    .spawn(std::future::pending()),
            );
        }
        for n in 0..30 {
            queues[n % queues.len()].enqueue(&mail(n)).await.unwrap();
        }
        eventually("all sent", Duration::from_secs(20), || stats.sent() >= 30).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut per_recipient = HashMap::<String, usize>::new();
        for (_, m) in mailer.sent() {
            *per_recipient.entry(m.to).or_default() += 1;
        }
        assert_eq!(per_recipient.len(), 30, "every message sent");
        assert!(
            per_recipient.values().all(|n| *n == 1),
            "none twice: {per_recipient:?}"
        );
        assert_eq!(mailer.eml_files(), 30);
        assert_eq!(counts(&*queues[0]).await, (0, 0));
        for task in tasks {
            stop(task).await;
        }
    }

    #[tokio::test]
    async fn memory_worker_sends_once() {
        sends_once(Arc::new(MemoryMailQueue::new())).await;
    }

    #[tokio::test]
    async fn memory_worker_retries_and_fails() {
        retries_and_failures(Arc::new(MemoryMailQueue::new())).await;
    }

    #[tokio::test]
    async fn memory_worker_dropped_mid_lease_loses_nothing() {
        let queue: Arc<dyn MailQueue> = Arc::new(MemoryMailQueue::new());
        dropped_worker_loses_nothing(Arc::clone(&queue), queue).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_workers_send_each_message_once() {
        let queue: Arc<dyn MailQueue> = Arc::new(MemoryMailQueue::new());
        several_workers_send_each_once(vec![Arc::clone(&queue), Arc::clone(&queue), queue]).await;
    }

    /// Enqueueing never waits on the mail server, even when it never answers.
    #[tokio::test]
    async fn sending_never_waits_on_the_mail_server() {
        let queue: Arc<dyn MailQueue> = Arc::new(MemoryMailQueue::new());
        let hanging = TestMailer::hanging();
        let worker = MailWorker::new(Arc::clone(&queue), hanging.clone(), "app@example.com");
        let sender = worker.sender();
        let task = worker.spawn(std::future::pending());
        let started = Instant::now();
        for n in 0..20 {
            sender.send(&mail(n)).await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        eventually(
            "the worker is stuck sending",
            Duration::from_secs(5),
            || hanging.calls() == 1,
        )
        .await;
        assert_eq!(queue.counts().await.unwrap().queued, 20);
        stop(task).await;
    }

    /// A send with no answer is abandoned after three quarters of the lease, and retried.
    #[tokio::test]
    async fn a_send_without_answer_times_out_as_transient() {
        let queue: Arc<dyn MailQueue> = Arc::new(MemoryMailQueue::new());
        let hanging = TestMailer::hanging();
        let stats = Arc::new(MailStats::default());
        let task = worker(Arc::clone(&queue), hanging.clone(), &stats, true)
            .lease(Duration::from_secs(1))
            .max_attempts(2)
            .spawn(std::future::pending());
        queue.enqueue(&mail(1)).await.unwrap();
        eventually("retried, then given up", Duration::from_secs(5), || {
            stats.failed() == 1
        })
        .await;
        assert_eq!((stats.retried(), hanging.calls()), (1, 2));
        stop(task).await;
    }

    /// Shutdown stops an idle worker at once.
    #[tokio::test]
    async fn shutdown_stops_the_worker() {
        let queue: Arc<dyn MailQueue> = Arc::new(MemoryMailQueue::new());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task =
            MailWorker::new(queue, TestMailer::delivering(), "app@example.com").spawn(async move {
                let _ = stopped.await;
            });
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap_with_jitter() {
        let w = MailWorker::new(
            Arc::new(MemoryMailQueue::new()),
            TestMailer::delivering(),
            "app@example.com",
        );
        for _ in 0..50 {
            for (attempts, full) in [(0, 30), (1, 60), (3, 240), (6, 1920), (7, 3600), (30, 3600)] {
                let d = w.backoff_delay(attempts);
                assert!(
                    d >= Duration::from_secs(full / 2) && d <= Duration::from_secs(full),
                    "attempt {attempts}: {d:?}"
                );
            }
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| w.backoff_delay(3)).collect();
        assert!(spread.len() > 1, "jittered");
        assert_eq!(ceil_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }

    #[test]
    fn log_lines_show_the_domain_only() {
        assert_eq!(recipient_domain("ada@example.com"), "example.com");
        assert_eq!(recipient_domain("no-at"), "?");
        assert_eq!(
            redact(
                "550 5.1.1 <ada@example.com>: user unknown",
                "ada@example.com"
            ),
            "550 5.1.1 <<…@example.com>>: user unknown"
        );
        assert_eq!(redact("refused", ""), "refused");
        let sender_debug = format!(
            "{:?}",
            MailWorker::new(
                Arc::new(MemoryMailQueue::new()),
                TestMailer::delivering(),
                "app@example.com",
            )
            .sender()
        );
        assert!(sender_debug.starts_with("MailSender"));
    }
}
