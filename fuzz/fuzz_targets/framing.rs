//! The HTTP/1.1 framing guard (`FramingGuard`, crates/bulwark/src/serve/framing.rs), against
//! hyper itself: a differential target.
//!
//! Input: the raw bytes a client sends on one connection (no selector byte: seeds are plain HTTP
//! requests). They are served three times by hyper's HTTP/1.1 server connection, built as
//! `serve` builds it (`bulwark::serve::__fuzz::http1_builder`: half-close, 32 KiB buffer, no
//! header-read timer; `.with_upgrades()`), over an in-memory duplex stream:
//! - *plain*: hyper alone, the whole input readable at once;
//! - *guarded*: hyper behind the guard as `serve` sets it up (32 KiB heads, no timers), the whole
//!   input readable at once (a head arrives whole, the guard's common path);
//! - *guarded, trickled*: the same through an 11-byte pipe (1 021 bytes for inputs over 4 KiB),
//!   so heads arrive split across reads and the guard holds them back until whole.
//!
//! The client writes the whole input, shuts its write half and reads the answers until the end
//! of stream. The service records every request (method, URI, version, headers, then the whole
//! body and trailers, or that reading it failed) and answers `200` with `x-fuzz-answer: <n>`
//! (the request's index). To reach the guard's upgrade logic, a request whose URI contains `up`
//! is accepted: `101` if it asks for an `Upgrade` (HTTP/1.1), `200` to a `CONNECT`; any other
//! `CONNECT` is answered `403`. Each run is bounded: a current-thread runtime on a paused clock
//! (time jumps ahead whenever every task waits, so a stuck run ends at once, in virtual time)
//! and a 10 s (virtual) limit.
//!
//! Properties, for each guarded run against the plain one:
//! - the guard never changes the bytes: what hyper read through it is a prefix of the input;
//! - the requests hyper received through the guard are a prefix of those it received alone,
//!   each the same method, URI, version, headers and body (or body error) and trailers;
//! - if there are fewer, the guard refused: the stream ends with its own answer (`400` or `431`,
//!   `application/json`, `{"detail": "..."}` with the matching length), written after the
//!   answers to every request it let through;
//! - the guard never makes a run hang that hyper alone completes.
//!
//! Deliberate exclusions (legitimate differences):
//! - a body that fails to read fails in both runs, but the error may differ (the guard ends the
//!   stream where hyper alone finds its own fault later): compared as "an error", not by message;
//! - hyper alone may stop before the guarded run does only where it answered an error itself
//!   (`4xx`, no `x-fuzz-answer`) — it sees the same bytes, only read in other pieces, so its
//!   32 KiB buffer limit can trip at other places: such runs are compared up to the shorter one;
//! - after a `chunked` request, the guarded run may end without an answer of the guard's: where
//!   hyper's own decoder fails on the body (the guard follows chunked bodies state for state as
//!   hyper does), the guard passes bytes through and ends the stream once hyper answers
//!   (`State::Blind`); hyper reads no further request after such a body anyway;
//! - once any request of the connection asked for an upgrade (a `CONNECT`, or an `Upgrade`
//!   field on HTTP/1.1), the guarded run may end without the guard's answer, even when the
//!   upgrade was refused: hyper keeps that request's pending upgrade, and at the end of the
//!   connection hands the stream to it instead of shutting it down, where the guard writes its
//!   answer (the stream is dropped unanswered: a loss of the answer, not of a check; the same in
//!   `serve`, whose routes drop the pending upgrade too).
//!
//! Not covered: this target checks that the guard only *refuses* or *passes unchanged*, not that
//! it refuses everything it should. A head both hyper and the guard let through is the same
//! request in both runs, whether or not it had, say, both `Content-Length` and
//! `Transfer-Encoding` (hyper drops the `Content-Length` field itself, so the service cannot
//! tell). The unit tests of framing.rs pin the refusals.
//!
//! Checked too: once a guarded run ended silently after chunked request `k` (a body hyper's
//! decoder fails on), no guarded run has a request after `k`. Before the guard followed chunked
//! bodies as hyper does, this failed on `fuzz/seeds/framing/chunk-size-zeros` (a size with more
//! than 16 hex digits, which hyper accepts) and on trailers ended by a bare LF: requests hidden
//! behind them reached the application unchecked.
//!
//! `FRAMING_FUZZ_DEBUG=1` prints the three runs of every input (to study a crash file).
#![no_main]

use std::{
    convert::Infallible,
    io,
    pin::Pin,
    sync::{Arc, LazyLock, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use bulwark::serve::__fuzz;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};

/// The guard's own answers' bodies.
const REFUSALS: [(&str, &str); 3] = [
    (
        "400",
        "Request has both Content-Length and Transfer-Encoding",
    ),
    ("400", "Malformed request"),
    ("431", "Request header fields too large"),
];

/// Each run's bound, in (paused, virtual) time: far beyond anything a run waits for (the guard
/// lingers 1 s after a refusal at most).
const RUN_LIMIT: Duration = Duration::from_secs(10);

/// The pipe between client and server when the whole input is readable at once (more than any
/// input libFuzzer makes here).
const WIDE: usize = 1 << 20;
/// The pipe of the trickled run: heads arrive in pieces (larger ones for inputs of more than
/// 4 KiB, which would otherwise cost thousands of reads each).
fn narrow(len: usize) -> usize {
    if len > 4096 { 1021 } else { 11 }
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
});

static DEBUG: LazyLock<bool> = LazyLock::new(|| std::env::var_os("FRAMING_FUZZ_DEBUG").is_some());

type Fields = Vec<(String, Vec<u8>)>;

/// A request as the service received it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: Method,
    uri: String,
    version: Version,
    headers: Fields,
    /// `None` until the body is read to its end (a run can end while the service waits).
    body: Option<Body>,
}

#[derive(Debug, Clone)]
enum Body {
    Whole {
        data: Vec<u8>,
        trailers: Option<Fields>,
    },
    /// Why (shown in a failure's report; not compared).
    Failed(#[allow(dead_code)] String),
}

/// Bodies compare by content; two failures are equal whatever their messages (see the header).
impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::Whole { data, trailers },
                Self::Whole {
                    data: other_data,
                    trailers: other_trailers,
                },
            ) => data == other_data && trailers == other_trailers,
            (Self::Failed(_), Self::Failed(_)) => true,
            _ => false,
        }
    }
}

impl Eq for Body {}

impl Seen {
    fn has(&self, header: &str) -> bool {
        self.headers.iter().any(|(name, _)| name == header)
    }

    /// Whether hyper took the request for an upgrade request: a `CONNECT`, or an HTTP/1.1
    /// request with an `Upgrade` field (whatever the answer).
    fn wants_upgrade(&self) -> bool {
        self.method == Method::CONNECT || (self.version == Version::HTTP_11 && self.has("upgrade"))
    }
}

/// What one run produced.
#[derive(Debug)]
struct Run {
    requests: Vec<Seen>,
    /// The bytes hyper read (through the guard, in the guarded runs).
    received: Vec<u8>,
    /// The bytes the client read back.
    answers: Vec<u8>,
    /// hyper's connection result (`None`: the run hit its limit).
    ended: Option<Result<(), String>>,
}

impl Run {
    fn timed_out(&self) -> bool {
        self.ended.is_none()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "  connection: {:?}", self.ended)?;
        writeln!(f, "  hyper read {} bytes", self.received.len())?;
        for (i, seen) in self.requests.iter().enumerate() {
            let headers: Vec<String> = seen
                .headers
                .iter()
                .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v)))
                .collect();
            writeln!(
                f,
                "  request {i}: {} {} {:?} {headers:?} body {:?}",
                seen.method, seen.uri, seen.version, seen.body
            )?;
        }
        writeln!(f, "  answers: {:?}", String::from_utf8_lossy(&self.answers))
    }
}

fn fields(headers: &http::HeaderMap) -> Fields {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

/// The server half of the pipe, recording what hyper reads from it.
struct Tap<T> {
    inner: T,
    read: Arc<Mutex<Vec<u8>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tap<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let start = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            lock(&this.read).extend_from_slice(&buf.filled()[start..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tap<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The service: records each request, reads its body to the end, answers.
async fn record(
    log: Arc<Mutex<Vec<Seen>>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let index = {
        let mut log = lock(&log);
        log.push(Seen {
            method: parts.method.clone(),
            uri: parts.uri.to_string(),
            version: parts.version,
            headers: fields(&parts.headers),
            body: None,
        });
        log.len() - 1
    };
    let body = match body.collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().map(fields);
            Body::Whole {
                data: collected.to_bytes().to_vec(),
                trailers,
            }
        }
        Err(err) => Body::Failed(format!("{err:?}")),
    };
    lock(&log)[index].body = Some(body);

    let accept = parts.uri.to_string().contains("up");
    let upgrade = parts.headers.get(http::header::UPGRADE).cloned();
    let mut answer = Response::builder().header("x-fuzz-answer", index.to_string());
    let (status, text) = if parts.method == Method::CONNECT {
        if accept {
            (StatusCode::OK, "")
        } else {
            (StatusCode::FORBIDDEN, "no")
        }
    } else if let Some(protocol) = upgrade.filter(|_| accept && parts.version == Version::HTTP_11) {
        answer = answer
            .header(http::header::CONNECTION, "upgrade")
            .header(http::header::UPGRADE, protocol);
        (StatusCode::SWITCHING_PROTOCOLS, "")
    } else {
        (StatusCode::OK, "ok")
    };
    Ok(answer
        .status(status)
        .body(Full::new(Bytes::from_static(text.as_bytes())))
        .expect("a valid response"))
}

/// Serves `data` through hyper, behind the guard when `guarded`, over a pipe of `capacity`.
fn serve(data: &[u8], guarded: bool, capacity: usize) -> Run {
    let log = Arc::new(Mutex::new(Vec::new()));
    let received = Arc::new(Mutex::new(Vec::new()));
    let mut answers = Vec::new();
    let (client, server) = tokio::io::duplex(capacity);
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let service = {
        let log = Arc::clone(&log);
        hyper::service::service_fn(move |request| record(Arc::clone(&log), request))
    };
    let builder = __fuzz::http1_builder();
    let read = Arc::clone(&received);
    let connection = async {
        let result = if guarded {
            let inner = __fuzz::framing_guard(server);
            let io = TokioIo::new(Tap { inner, read });
            builder.serve_connection(io, service).with_upgrades().await
        } else {
            let io = TokioIo::new(Tap {
                inner: server,
                read,
            });
            builder.serve_connection(io, service).with_upgrades().await
        };
        result.map_err(|err| format!("{err:?}"))
    };
    let write = async {
        // Fails once the server is gone: what it did not read is simply never sent.
        if client_write.write_all(data).await.is_ok() {
            let _ = client_write.shutdown().await;
        }
    };
    let read = async {
        let _ = client_read.read_to_end(&mut answers).await;
    };
    let ended = RUNTIME.block_on(async {
        tokio::time::timeout(RUN_LIMIT, async {
            let (ended, (), ()) = tokio::join!(connection, write, read);
            ended
        })
        .await
        .ok()
    });
    let requests = lock(&log).clone();
    let received = lock(&received).clone();
    Run {
        requests,
        received,
        answers,
        ended,
    }
}

/// Where the guard's refusal answer starts, if `answers` ends with one (checked whole).
fn refusal_at(answers: &[u8]) -> Option<usize> {
    // The last answer's start (earlier ones may carry any bytes: a `101` echoes `Upgrade`).
    let start = answers.windows(9).rposition(|w| w == b"HTTP/1.1 ")?;
    let answer = std::str::from_utf8(&answers[start..]).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let headers: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once(": ")).collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    let detail = json.as_object()?.get("detail")?.as_str()?;
    let (status, _) = REFUSALS.iter().find(|(_, d)| *d == detail)?;
    let well_formed = status_line.starts_with(&format!("HTTP/1.1 {status} "))
        && header("content-type") == Some("application/json")
        && header("content-length") == Some(&body.len().to_string())
        && header("connection") == Some("close");
    well_formed.then_some(start)
}

/// Whether `answers` hold an error answer of hyper's own (a `4xx` or `5xx` the service did not
/// write: no `x-fuzz-answer`).
fn hyper_refused(answers: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answers);
    text.split("HTTP/1.1 ").skip(1).any(|answer| {
        let head = answer.split("\r\n\r\n").next().unwrap_or_default();
        matches!(answer.as_bytes().first(), Some(b'4' | b'5')) && !head.contains("x-fuzz-answer")
    })
}

/// Checks a guarded run against the plain one; returns the index of the chunked request after
/// which the guarded run ended without an answer of the guard's (it lost the chunk framing).
fn check(data: &[u8], plain: &Run, guarded: &Run, name: &str) -> Option<usize> {
    let context = || format!("{name} run:\n{guarded}plain run:\n{plain}");
    assert!(
        data.starts_with(&guarded.received),
        "the guard changed the bytes hyper read\n{}",
        context()
    );
    assert!(
        !guarded.timed_out() || plain.timed_out(),
        "the guarded connection hung where hyper alone completed\n{}",
        context()
    );
    let common = plain.requests.len().min(guarded.requests.len());
    for i in 0..common {
        assert_eq!(
            guarded.requests[i],
            plain.requests[i],
            "request {i} differs\n{}",
            context()
        );
    }
    if guarded.requests.len() > plain.requests.len() {
        // hyper alone stopped first: only by an error answer of its own (see the header).
        assert!(
            hyper_refused(&plain.answers),
            "the guard passed requests hyper alone never framed\n{}",
            context()
        );
    }
    if guarded.requests.len() < plain.requests.len() {
        if let Some(at) = refusal_at(&guarded.answers) {
            let before = &guarded.answers[..at];
            for i in 0..guarded.requests.len() {
                let marker = format!("x-fuzz-answer: {i}\r\n");
                assert!(
                    before.windows(marker.len()).any(|w| w == marker.as_bytes()),
                    "the refusal came before the answer to request {i}\n{}",
                    context()
                );
            }
        } else {
            // Only after a chunked request (the guard lost the chunk framing), or once a request
            // asked for an upgrade (hyper then never shuts the stream down): see the header.
            let chunked = guarded
                .requests
                .last()
                .is_some_and(|seen| seen.has("transfer-encoding"));
            let upgrade_asked = guarded.requests.iter().any(Seen::wants_upgrade);
            assert!(
                chunked || upgrade_asked,
                "fewer requests through the guard, and no refusal answer\n{}",
                context()
            );
            if !upgrade_asked {
                return guarded.requests.len().checked_sub(1);
            }
        }
    }
    None
}

fuzz_target!(|data: &[u8]| {
    let plain = serve(data, false, WIDE);
    let guarded = serve(data, true, WIDE);
    let trickled = serve(data, true, narrow(data.len()));
    if *DEBUG {
        eprintln!("plain run:\n{plain}guarded run:\n{guarded}trickled run:\n{trickled}");
    }
    let lost = [
        check(data, &plain, &guarded, "guarded"),
        check(data, &plain, &trickled, "trickled"),
    ];
    // Once the guard passed a chunked body hyper fails on (request `k`), it ends the stream
    // at the answer: no guarded run may go on past `k`.
    for k in lost.into_iter().flatten() {
        assert!(
            guarded.requests.len() <= k + 1 && trickled.requests.len() <= k + 1,
            "requests after a chunked body hyper failed on reached it unchecked\n\
             guarded run:\n{guarded}trickled run:\n{trickled}"
        );
    }
});
