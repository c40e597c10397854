//! Log set-up: lines to standard error, text or JSON, filtered by `RUST_LOG`.
//!
//! **Never on the request's clock.** A line is formatted where it is logged and appended,
//! without waiting, to a shared buffer of at most [`LOG_BUFFER_BYTES`]; a writer thread swaps
//! the buffer out every [`WRITE_EVERY`] (or once 32 KiB have accumulated) and writes it in one
//! go. Under load that is one `write`
//! for hundreds of lines, and no allocation or wake-up per line: a writer woken for each line
//! (tracing-appender's) made one system call per request, a quarter of a cheap request's CPU,
//! measured. When the buffer is full (a flood, a stalled terminal or pipe) further lines are
//! dropped, never waited for, and counted: [`LogGuard::spawn_drop_reporter`] logs how many.
//! Memory stays bounded whatever the load. Colour only when standard error is a terminal (and
//! `NO_COLOR` is unset): never in files, pipes, journald or `docker logs`.

use std::{
    io::{IsTerminal as _, Write as _},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::response::Response;
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// The most bytes of lines waiting for the writer thread; further lines are dropped and counted.
pub const LOG_BUFFER_BYTES: usize = 512 * 1024;

/// How often the writer thread writes what has accumulated.
pub const WRITE_EVERY: Duration = Duration::from_millis(10);

/// Past this many bytes waiting, the writer thread is woken at once (one wake-up for a few
/// hundred lines), so that under load the buffers stay this small: less memory than a full
/// period's lines at 100 000 requests a second.
const WAKE_AT: usize = 32 * 1024;

/// Lines waiting for the writer thread.
struct LogBuffer {
    lines: Mutex<Vec<u8>>,
    dropped: AtomicUsize,
    /// The writer thread, once started.
    writer: std::sync::OnceLock<std::thread::Thread>,
    /// Whether the writer was woken since its last batch.
    woken: AtomicBool,
}

/// The writing end: what tracing formats each line into, and the access log's.
#[derive(Clone)]
pub struct LogWriter {
    buffer: Arc<LogBuffer>,
}

impl LogWriter {
    /// Appends one whole line; drops and counts it when the buffer is full.
    fn append(&self, line: &[u8]) {
        let mut lines = self
            .buffer
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if lines.len() + line.len() > LOG_BUFFER_BYTES {
            drop(lines);
            self.buffer.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        lines.extend_from_slice(line);
        let full = lines.len() >= WAKE_AT;
        drop(lines);
        if full
            && !self.buffer.woken.swap(true, Ordering::AcqRel)
            && let Some(writer) = self.buffer.writer.get()
        {
            writer.unpark();
        }
    }
}

impl std::io::Write for LogWriter {
    /// tracing writes each event whole, in one call.
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        self.clone()
    }
}

/// Keeps the log writer running; dropping it writes what is left (at exit).
pub struct LogGuard {
    worker: Option<(std::thread::JoinHandle<()>, Arc<AtomicBool>)>,
    buffer: Arc<LogBuffer>,
    access: Option<AccessLog>,
}

impl LogGuard {
    /// The access log, when info lines of the `bulwark::access` target are on (the default of
    /// `serve`).
    pub fn access_log(&self) -> Option<AccessLog> {
        self.access.clone()
    }

    /// How many lines were dropped so far because the writer fell behind.
    pub fn dropped(&self) -> usize {
        self.buffer.dropped.load(Ordering::Relaxed)
    }

    /// Every `every`, logs how many lines were dropped since the last report (when any), until
    /// the returned task is aborted.
    pub fn spawn_drop_reporter(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let buffer = Arc::clone(&self.buffer);
        tokio::spawn(async move {
            let mut reported = 0;
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                let dropped = buffer.dropped.load(Ordering::Relaxed);
                if dropped > reported {
                    tracing::warn!(
                        dropped = dropped - reported,
                        "log lines dropped: the log writer fell behind (lines are never waited for)"
                    );
                    reported = dropped;
                }
            }
        })
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some((worker, stop)) = self.worker.take() {
            stop.store(true, Ordering::Release);
            worker.thread().unpark();
            let _ = worker.join();
        }
    }
}

/// The writer thread: every [`WRITE_EVERY`] (or when told to stop), everything accumulated, in
/// one write. Two buffers take turns, so neither is allocated again.
fn write_lines(buffer: Arc<LogBuffer>, stop: Arc<AtomicBool>) {
    let mut spare = Vec::with_capacity(2 * WAKE_AT);
    loop {
        let stopping = stop.load(Ordering::Acquire);
        buffer.woken.store(false, Ordering::Release);
        std::mem::swap(
            &mut *buffer.lines.lock().unwrap_or_else(PoisonError::into_inner),
            &mut spare,
        );
        if !spare.is_empty() {
            // Locked per batch only: `eprintln!` (the start-up banner) goes between batches.
            let _ = std::io::stderr().write_all(&spare);
            spare.clear();
        }
        if stopping {
            return;
        }
        std::thread::park_timeout(WRITE_EVERY);
    }
}

/// Installs the global subscriber once (later calls do nothing and return an idle guard).
/// `default_filter` applies when `RUST_LOG` is unset: `info,sqlx=warn` for `serve` (one access
/// line per request), `warn` for the other commands.
pub fn init(format: LogFormat, default_filter: &str) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let buffer = Arc::new(LogBuffer {
        lines: Mutex::new(Vec::with_capacity(2 * WAKE_AT)),
        dropped: AtomicUsize::new(0),
        writer: std::sync::OnceLock::new(),
        woken: AtomicBool::new(false),
    });
    let writer = LogWriter {
        buffer: Arc::clone(&buffer),
    };
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let access_writer = writer.clone();
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let worker = installed.ok().and_then(|()| {
        let (buffer, stop) = (Arc::clone(&buffer), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("bulwark-log".to_owned())
            .spawn(move || write_lines(buffer, stop))
            .ok()
    });
    if let Some(worker) = &worker {
        let _ = buffer.writer.set(worker.thread().clone());
    }
    let access = (worker.is_some()
        && tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO))
    .then(|| AccessLog {
        writer: access_writer,
        json: format == LogFormat::Json,
    });
    LogGuard {
        worker: worker.map(|w| (w, stop)),
        buffer,
        access,
    }
}

/// The target of access lines (`RUST_LOG=bulwark::access=off` turns them off).
pub const ACCESS_TARGET: &str = bulwark::pipeline::ACCESS_TARGET;

/// One line per request, at info: method, route template, status, latency, client address and
/// request id (never a path with ids, a query or a header). Written straight to the log buffer
/// in the subscriber's format (text or JSON), not through tracing's formatting: on a cheap
/// request that (a span with four fields, then an event) cost a quarter of the request's CPU,
/// measured; this costs a few hundred nanoseconds.
#[derive(Clone)]
pub struct AccessLog {
    writer: LogWriter,
    json: bool,
}

impl AccessLog {
    /// Writes the line of one request (never waits: see [`LogWriter`]).
    pub fn request(
        &self,
        method: &http::Method,
        route: &str,
        status: u16,
        micros: u128,
        client_ip: std::net::IpAddr,
        request_id: &str,
    ) {
        use std::fmt::Write as _;
        thread_local! {
            static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            // Every value is a token, a route template, an address or a sanitized request id:
            // no quoting or escaping is needed beyond the quotes themselves.
            if self.json {
                line.push_str("{\"timestamp\":\"");
                timestamp(line);
                let _ = writeln!(
                    line,
                    "\",\"level\":\"INFO\",\"fields\":{{\"message\":\"finished processing request\",\
                     \"status\":{status},\"latency\":\"{micros} μs\"}},\"target\":\"{ACCESS_TARGET}\",\
                     \"span\":{{\"name\":\"request\",\"method\":\"{method}\",\"route\":\"{route}\",\
                     \"client_ip\":\"{client_ip}\",\"request_id\":\"{request_id}\"}}}}"
                );
            } else {
                timestamp(line);
                let _ = writeln!(
                    line,
                    "  INFO {ACCESS_TARGET}: finished processing request method={method} \
                     route=\"{route}\" status={status} latency={micros} μs client_ip={client_ip} \
                     request_id=\"{request_id}\""
                );
            }
            self.writer.append(line.as_bytes());
        });
    }
}

/// Appends the current UTC time as `2026-12-07T15:55:13.634672Z`; the part up to the seconds
/// is made once a second per thread.
fn timestamp(out: &mut String) {
    use std::fmt::Write as _;
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((u64::MAX, String::new()))
        };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs();
    SECOND.with_borrow_mut(|(cached, prefix)| {
        if *cached != seconds {
            prefix.clear();
            let at = i64::try_from(seconds)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let _ = write!(
                prefix,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            );
            *cached = seconds;
        }
        out.push_str(prefix);
    });
    let _ = write!(out, "{:06}Z", now.subsec_micros());
}

/// What the server learns from each request the pipeline finished: its metrics, its access
/// line, and the refusals the audit trail counts (CSRF, the login rate limit). Takes the narrow
/// things it needs, never the application state.
pub struct ServerObserver {
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// One line per request, when the server logs at info.
    pub access_log: Option<AccessLog>,
    /// Refusals waiting for their audit row.
    pub refusals: Arc<crate::refusals::RefusalLog>,
}

impl bulwark::pipeline::Observer for ServerObserver {
    type Route = crate::metrics::RouteMetrics;

    fn route(&self, template: &str) -> crate::metrics::RouteMetrics {
        crate::metrics::RouteMetrics::new(&self.metrics, template)
    }

    fn finished(
        &self,
        route: &crate::metrics::RouteMetrics,
        request: &bulwark::pipeline::Finished<'_>,
        response: &Response,
    ) {
        let status = response.status().as_u16();
        route.count(crate::metrics::method_label(request.method), status);
        route.observe(request.elapsed.as_secs_f64());
        if let Some(access) = &self.access_log {
            access.request(
                request.method,
                request.route,
                status,
                request.elapsed.as_micros(),
                request.client_ip,
                request.request_id,
            );
        }
        let csrf_refused = response
            .extensions()
            .get::<bulwark::csrf::Refused>()
            .is_some();
        let limited = response
            .extensions()
            .get::<bulwark::rate_limit::Refused>()
            .copied();
        if csrf_refused {
            self.metrics.csrf_rejected.inc();
        }
        if let Some(refused) = limited {
            self.metrics
                .rate_limited(if refused.login { "login_ip" } else { "default" });
        }
        let audit = if csrf_refused {
            Some((crate::audit::AuditKind::CsrfRejected, "CSRF check refused"))
        } else if limited.is_some_and(|r| r.login) {
            Some((crate::audit::AuditKind::LoginRateLimited, "per-IP limit"))
        } else {
            None
        };
        if let Some((kind, why)) = audit {
            let (method, route) = (request.method, request.route);
            self.refusals.count(kind, request.client_ip, || {
                format!("{why}: {method} {route}")
            });
        }
    }
}
