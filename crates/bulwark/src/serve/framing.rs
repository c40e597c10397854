//! HTTP/1.1 request heads checked before hyper parses them.
//!
//! **Why.** A request that carries both `Content-Length` and `Transfer-Encoding` is the classic
//! request-smuggling shape: a proxy in front may frame the body by one header while the server
//! frames it by the other. RFC 9112 §6.1 lets a server either reject it or frame by
//! `Transfer-Encoding` and close; hyper does the latter, silently dropping `Content-Length`, so
//! the application can neither see nor refuse it. [`FramingGuard`] sits between the socket and
//! hyper and answers such a request `400` with the contract's JSON body, then closes the
//! connection. It also answers, with JSON instead of hyper's empty bodies, heads that are too
//! large (`431`), have too many header fields (`431`) or cannot be parsed (`400`).
//!
//! **How.** The guard follows the framing of every request on the connection (the head, then a
//! `Content-Length` body or `chunked` body and trailers), so it finds each pipelined or
//! kept-alive request's head. A head that arrives whole in one read costs one `httparse` pass
//! and no copy; a head split across reads is held back until it is whole, so hyper never sees
//! a part of a head that is then refused. Body bytes pass through untouched as they arrive.
//!
//! **The header-read and idle timers are the guard's** ([`FramingGuard::with_timeouts`]), not
//! hyper's: the timer starts when hyper first waits for a head (after the answer to the request
//! before it). The first head of a connection must be whole within the header-read timeout; a
//! later one may be awaited for the idle timeout, and once its first byte arrives it too must be
//! whole within the header-read timeout (so an idle kept-alive connection is cut, and so is a
//! trickled head). The timer stops once the head is whole, so holding a slow head back does not
//! lengthen the time a slowloris client gets. hyper is built with
//! `half_close`, so it does not read while it answers: a handler slower than the timeout is not
//! cut, and no timer runs while a body is awaited (the request timeout covers that). One timer is
//! made per connection and moved forward for each head; hyper's own makes and drops a timer per
//! request, which cost about 1 200 instructions per request on the refusal path.
//!
//! When it refuses a head, the guard hands hyper an end of stream (hyper finishes what it was
//! answering and shuts the connection down) and writes its own answer at that shutdown.
//!
//! **Upgrades are decided by the answer, never by the request.** After a request that asks for
//! a protocol upgrade (WebSocket) or `CONNECT`, the guard reads nothing more until hyper writes
//! the answer's status line: a `101` (or a `2xx` to `CONNECT`) switches the connection away from
//! HTTP, and only then does the guard step aside (no HTTP timers: the new protocol's own rules
//! apply). Any other answer, and the guard goes on checking heads and timing the connection as
//! before, so an `Upgrade:` header cannot switch the protections off. In a body whose framing it
//! cannot follow (an over-long or unreadable chunk line), the guard passes bytes through to
//! hyper, whose own parser still applies, and ends the connection once hyper answers: no later
//! request could be checked or timed.
//!
//! **HTTP/2 on plain TCP** ([`FramingGuard::detecting_http2`]). hyper-util's `auto` builder
//! reads the guarded stream and picks HTTP/2 when it starts with the connection preface. The
//! guard reads first: it holds back bytes while they match a part of the preface, steps aside
//! for the rest of the connection once the whole preface is there (HTTP/2 frames are not
//! HTTP/1.1 heads, and hyper's HTTP/2 server has its own limits), and otherwise guards the
//! stream as HTTP/1.1 from its first byte. So the builder sees the whole preface or bytes that
//! depart from it (a checked head, or the end of the stream), never a part it could read either
//! way, and both choose the same protocol. The first head's timer runs meanwhile: a client that
//! sends nothing, or only a part of the preface, is cut at the header-read timeout. The builder
//! reads at most 24 bytes at a time while it decides; the guard reads the socket in 4 KiB pieces
//! for it, so a head is not read 24 bytes per system call.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Duration, Sleep},
};

/// The most header fields a request may have (hyper's own limit).
const MAX_HEADERS: usize = 100;

/// The HTTP/2 connection preface, which selects HTTP/2 over HTTP/1.1 on plain TCP.
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A reader offering less room than this is served through [`FramingGuard::poll_read_to_ready`],
/// which reads `SMALL_READ` bytes at a time from the client.
const MIN_DIRECT_READ: usize = 512;
const SMALL_READ: usize = 4096;

/// How long a connection may wait for a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// A head, once its first byte arrived (and the first head of a connection), must be whole
    /// within this.
    pub(crate) head: Duration,
    /// How long a kept-alive connection may wait, idle, for the first byte of its next head.
    pub(crate) idle: Duration,
}

/// After a refusal, how long and how much of what the client still sends is read and dropped
/// before the socket closes (closing with unread bytes would reset the connection, and the
/// client could lose the answer).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Both `Content-Length` and `Transfer-Encoding`.
    Conflicting,
    /// A malformed request line, header, `Content-Length` or `Transfer-Encoding`.
    Malformed,
    /// A head longer than the limit, or with more than 100 fields.
    TooLarge,
}

impl Refusal {
    /// The raw HTTP/1.1 answer (the connection closes after it), with the headers every
    /// response of the router carries.
    fn response(self, hsts: bool) -> Vec<u8> {
        let (status, detail) = match self {
            Self::Conflicting => (
                "400 Bad Request",
                "Request has both Content-Length and Transfer-Encoding",
            ),
            Self::Malformed => ("400 Bad Request", "Malformed request"),
            Self::TooLarge => (
                "431 Request Header Fields Too Large",
                "Request header fields too large",
            ),
        };
        let body = serde_json::json!({ "detail": detail }).to_string();
        let mut headers = http::HeaderMap::new();
        crate::headers::apply_security_headers(&mut headers, hsts);
        let mut answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n",
            body.len()
        )
        .into_bytes();
        for (name, value) in &headers {
            answer.extend_from_slice(name.as_str().as_bytes());
            answer.extend_from_slice(b": ");
            answer.extend_from_slice(value.as_bytes());
            answer.extend_from_slice(b"\r\n");
        }
        answer.extend_from_slice(b"\r\n");
        answer.extend_from_slice(body.as_bytes());
        answer
    }
}

/// Where the guard is in the request stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a request head.
    Head,
    /// Inside a `Content-Length` body: bytes left.
    Body(u64),
    /// In a `chunked` body, followed byte by byte exactly as hyper's decoder follows it (hyper
    /// 1.x, `proto/h1/decode.rs`), so that both find its end at the same byte.
    Chunked(Chunk),
    /// After a request that asked for an upgrade: nothing is read until the answer's status
    /// line tells whether the connection switched protocols.
    AwaitAnswer,
    /// Not following the stream any more: the connection switched protocols (a `101`).
    Off,
    /// Inside a `chunked` body hyper's decoder fails on: bytes pass as they are (hyper reads no
    /// further request on this connection) until hyper starts its answer, and then the
    /// connection's reads end.
    Blind,
}

/// Where a `chunked` body is, state for state as hyper's `ChunkedState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The first hex digit of a chunk size.
    Start,
    /// More hex digits of the size so far.
    Size(u64),
    /// Spaces or tabs after the size.
    SizeLws(u64),
    /// A chunk extension, up to its CR.
    Extension(u64),
    /// The LF of a chunk-size line.
    SizeLf(u64),
    /// Chunk data: bytes left.
    Data(u64),
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// After the last chunk's line, or a trailer field: CR (the end), or a trailer field.
    EndCr,
    /// Inside a trailer field, up to its CR.
    Trailer,
    /// The LF of a trailer field.
    TrailerLf,
    /// The LF that ends the body.
    EndLf,
}

impl Chunk {
    /// The state after `byte`: `Ok(None)` when the body ended with it, `Err(())` where hyper's
    /// decoder fails (and so reads no further on this connection).
    fn next(self, byte: u8) -> Result<Option<Self>, ()> {
        let hex = |b: u8| char::from(b).to_digit(16).map(u64::from);
        let grow = |size: u64, digit: u64| size.checked_mul(16)?.checked_add(digit);
        Ok(Some(match (self, byte) {
            (Self::Start, b) => Self::Size(hex(b).ok_or(())?),
            (Self::Size(size), b) if hex(b).is_some() => {
                Self::Size(grow(size, hex(b).ok_or(())?).ok_or(())?)
            }
            (Self::Size(size) | Self::SizeLws(size), b'\t' | b' ') => Self::SizeLws(size),
            (Self::Size(size) | Self::SizeLws(size), b';') => Self::Extension(size),
            (Self::Size(size) | Self::SizeLws(size) | Self::Extension(size), b'\r') => {
                Self::SizeLf(size)
            }
            (Self::Extension(_), b'\n') => return Err(()),
            (Self::Extension(size), _) => Self::Extension(size),
            (Self::SizeLf(0), b'\n') => Self::EndCr,
            (Self::SizeLf(size), b'\n') => Self::Data(size),
            (Self::DataCr, b'\r') => Self::DataLf,
            (Self::DataLf, b'\n') => Self::Start,
            (Self::EndCr, b'\r') => Self::EndLf,
            (Self::Trailer, b'\r') => Self::TrailerLf,
            (Self::EndCr | Self::Trailer, _) => Self::Trailer,
            (Self::TrailerLf, b'\n') => Self::EndCr,
            (Self::EndLf, b'\n') => return Ok(None),
            _ => return Err(()),
        }))
    }
}

/// Bytes of an answer's status line that tell its status: `HTTP/1.1 101`.
const STATUS_LINE_PREFIX: usize = 12;

/// A stream whose HTTP/1.1 request heads are checked before they are read through it.
pub(crate) struct FramingGuard<T> {
    inner: T,
    max_head: usize,
    /// Whether answers carry `Strict-Transport-Security` (the connection is HTTPS).
    hsts: bool,
    state: State,
    /// A head received in part, held back until whole.
    held: Vec<u8>,
    /// How many bytes of `held` were already searched for the head's end.
    searched: usize,
    /// Checked bytes not yet read by hyper (a held head, once whole, and what followed it).
    ready: Vec<u8>,
    ready_from: usize,
    refusal: Option<Refusal>,
    /// The refusal's answer, and how much of it has been written.
    answer: Vec<u8>,
    answered: usize,
    /// Set once the refusal is written and the write side shut: the lingering close's end.
    linger: Option<Pin<Box<Sleep>>>,
    lingered: usize,
    eof: bool,
    /// How long hyper may wait for a request head (`None`: no limit).
    timeouts: Option<Timeouts>,
    /// The head-read timer, made once per connection and reset for each head.
    head_timer: Option<Pin<Box<Sleep>>>,
    /// Whether `head_timer` runs for the head awaited now.
    head_armed: bool,
    /// Whether a head was checked on this connection (later heads may be awaited idle).
    served: bool,
    /// Whether bytes of the head awaited now have arrived (its header-read time runs).
    head_started: bool,
    /// The request just checked asked for an upgrade (`Some(true)`: it is a `CONNECT`).
    upgrade_asked: Option<bool>,
    /// The first bytes of the answer to that request, until they tell its status.
    answer_prefix: Vec<u8>,
    /// The task waiting to read while the upgrade's answer is awaited.
    read_waker: Option<std::task::Waker>,
    /// Whether the stream may start with the HTTP/2 connection preface (plain TCP, where the
    /// protocol is told by the first bytes): while the bytes received match a part of it, they
    /// are held back; the whole preface steps the guard aside for the rest of the connection.
    sniffing: bool,
    /// Told which protocol the connection speaks, once its first bytes have told it.
    activity: Option<Arc<super::Activity>>,
    /// Held for as long as the connection lives (upgraded or not): a connection-cap permit.
    _permit: Option<super::limits::ConnectionPermit>,
}

impl<T> FramingGuard<T> {
    /// Guards `inner`; heads longer than `max_head` bytes are refused with 431. `hsts`: the
    /// connection is HTTPS (answers carry `Strict-Transport-Security`).
    #[cfg(test)]
    pub(crate) fn new(inner: T, max_head: usize, hsts: bool) -> Self {
        Self::with_timeouts(inner, max_head, hsts, None)
    }

    /// [`FramingGuard::new`], and heads must arrive in time ([`Timeouts`]), counted from the
    /// moment hyper first waits for one (after the answer to the request before it): the
    /// connection is then cut, idle or trickling alike.
    pub(crate) fn with_timeouts(
        inner: T,
        max_head: usize,
        hsts: bool,
        timeouts: Option<Timeouts>,
    ) -> Self {
        Self {
            inner,
            max_head,
            hsts,
            state: State::Head,
            held: Vec::new(),
            searched: 0,
            ready: Vec::new(),
            ready_from: 0,
            refusal: None,
            answer: Vec::new(),
            answered: 0,
            linger: None,
            lingered: 0,
            eof: false,
            timeouts,
            head_timer: None,
            head_armed: false,
            served: false,
            head_started: false,
            upgrade_asked: None,
            answer_prefix: Vec::new(),
            read_waker: None,
            sniffing: false,
            activity: None,
            _permit: None,
        }
    }

    /// Lets the stream be HTTP/2 as well: a stream that starts with the HTTP/2 connection
    /// preface is passed through untouched (the guard steps aside; the HTTP/2 server reads it),
    /// any other is HTTP/1.1 and guarded. The choice is the one hyper-util's `auto` builder
    /// makes from the same bytes: the guard holds back a partial preface, so the builder sees
    /// either the whole preface, or bytes that depart from it (a checked head, or the end of the
    /// stream). The first head's timer runs meanwhile, so a client that sends nothing, or only a
    /// part of the preface, is cut at the header-read timeout. `activity` is told the choice.
    pub(crate) fn detecting_http2(mut self, activity: Arc<super::Activity>) -> Self {
        self.sniffing = true;
        self.activity = Some(activity);
        self
    }

    /// Keeps `permit` for as long as the connection lives, through an upgrade too.
    pub(crate) fn holding(mut self, permit: Option<super::limits::ConnectionPermit>) -> Self {
        self._permit = permit;
        self
    }

    /// Called when a read is pending: runs the head-read timer while a head is awaited, and
    /// tells whether it ran out.
    fn head_timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeouts) = self.timeouts else {
            return false;
        };
        if self.state != State::Head {
            return false;
        }
        // A kept-alive connection waits idle for its next head; once the head has begun, or on
        // a new connection, the head must come whole within the header-read timeout.
        let timeout = if self.served && !self.head_started {
            timeouts.idle
        } else {
            timeouts.head
        };
        let timer = self
            .head_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if !self.head_armed {
            // A later deadline than the one registered only moves it, without touching the
            // timer wheel: cheaper than hyper's own timer, made and dropped for every request.
            timer.as_mut().reset(tokio::time::Instant::now() + timeout);
            self.head_armed = true;
        }
        timer.as_mut().poll(cx).is_ready()
    }

    /// Follows `data` (which starts where the guard's position is) and returns how many of its
    /// bytes may go to hyper now. The rest is a head in progress (to hold back), or, when a
    /// refusal was set, a refused head and whatever followed it (to drop).
    fn advance(&mut self, data: &[u8]) -> usize {
        if self.sniffing && self.sniff(data) {
            return 0;
        }
        let mut at = 0;
        while at < data.len() {
            self.await_upgrade_answer();
            match self.state {
                State::Off | State::Blind => return data.len(),
                State::AwaitAnswer => return at,
                State::Head => {
                    // Empty lines before a request line are allowed (and skipped by hyper).
                    if self.searched == 0 {
                        while at < data.len() && matches!(data[at], b'\r' | b'\n') {
                            at += 1;
                        }
                        if at == data.len() {
                            return at;
                        }
                    }
                    let head = &data[at..];
                    let Some(end) = head_end(head, self.searched) else {
                        if head.len() > self.max_head {
                            self.refusal = Some(Refusal::TooLarge);
                        } else {
                            self.searched = head.len();
                            if !self.head_started {
                                // The head has begun: from now on it must be whole within
                                // the header-read timeout, not the idle one.
                                self.head_started = true;
                                self.head_armed = false;
                            }
                        }
                        return at;
                    };
                    self.searched = 0;
                    if end > self.max_head {
                        self.refusal = Some(Refusal::TooLarge);
                        return at;
                    }
                    match check_head(&head[..end]) {
                        Ok((next, upgrade)) => {
                            self.state = next;
                            self.upgrade_asked = upgrade;
                            self.head_armed = false;
                            self.head_started = false;
                            self.served = true;
                        }
                        Err(refusal) => {
                            self.refusal = Some(refusal);
                            return at;
                        }
                    }
                    at += end;
                }
                State::Body(left) | State::Chunked(Chunk::Data(left)) => {
                    let available = (data.len() - at) as u64;
                    let take = left.min(available);
                    at += take as usize; // `take` <= `available`, which came from a usize.
                    let left = left - take;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::Head,
                        (State::Body(_), _) => State::Body(left),
                        (_, 0) => State::Chunked(Chunk::DataCr),
                        (_, _) => State::Chunked(Chunk::Data(left)),
                    };
                }
                State::Chunked(mut chunk) => {
                    // Byte by byte up to chunk data (the size line, CRLFs, trailers: short).
                    while at < data.len() && !matches!(chunk, Chunk::Data(_)) {
                        let byte = data[at];
                        at += 1;
                        match chunk.next(byte) {
                            Ok(Some(next)) => chunk = next,
                            Ok(None) => {
                                self.state = State::Head;
                                break;
                            }
                            Err(()) => {
                                self.go_blind();
                                return data.len();
                            }
                        }
                    }
                    if self.state != State::Head {
                        self.state = State::Chunked(chunk);
                    }
                }
            }
        }
        self.await_upgrade_answer();
        at
    }

    /// Once a request that asked for an upgrade has been passed whole (head and body), waits
    /// for its answer before reading on.
    fn await_upgrade_answer(&mut self) {
        if self.state == State::Head && self.upgrade_asked.is_some() {
            self.state = State::AwaitAnswer;
        }
    }

    /// Once hyper answers a request whose body the guard could not follow, the connection's
    /// reads end: hyper closes after the answer.
    fn saw_write_when_blind(&mut self, written: usize) {
        if self.state == State::Blind && written > 0 {
            self.eof = true;
        }
    }

    /// Takes in the first bytes hyper writes while an upgrade's answer is awaited; once they
    /// tell the status, steps aside (the protocol switched) or goes on checking heads, and lets
    /// the reader on.
    fn saw_answer(&mut self, written: &[u8]) {
        if self.state != State::AwaitAnswer {
            return;
        }
        let want = STATUS_LINE_PREFIX - self.answer_prefix.len();
        self.answer_prefix
            .extend_from_slice(&written[..want.min(written.len())]);
        if self.answer_prefix.len() < STATUS_LINE_PREFIX {
            return;
        }
        let status = &self.answer_prefix[9..STATUS_LINE_PREFIX];
        let connect = self.upgrade_asked == Some(true);
        let switched = status == b"101" || (connect && status[0] == b'2');
        self.upgrade_asked = None;
        self.answer_prefix = Vec::new();
        if switched {
            self.step_aside();
        } else {
            self.state = State::Head;
        }
        // What arrived after the upgrade request goes through the new state.
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            let released = self.advance(&held);
            if released < held.len() && self.refusal.is_none() {
                self.held.extend_from_slice(&held[released..]);
            }
            self.ready.extend_from_slice(&held[..released]);
        }
        if let Some(waker) = self.read_waker.take() {
            waker.wake();
        }
    }

    /// Takes in `chunk`, the bytes read after everything taken in before, and returns how many
    /// of its first bytes go to hyper as they are. The rest is kept: held back as a head in
    /// progress, moved to `ready` once a held head is whole (with what followed it), or dropped
    /// after a refusal.
    #[inline(always)]
    fn take_in(&mut self, chunk: &[u8]) -> usize {
        if self.held.is_empty() {
            // The common case: the released bytes stay where they were read (hyper's buffer).
            let released = self.advance(chunk);
            if released < chunk.len() && self.refusal.is_none() {
                self.held.extend_from_slice(&chunk[released..]);
            }
            return released;
        }
        // A head in progress: the chunk joins it, and whatever the whole head lets through is
        // handed over from `ready`.
        self.held.extend_from_slice(chunk);
        let held = std::mem::take(&mut self.held);
        let released = self.advance(&held);
        if released < held.len() && self.refusal.is_none() {
            self.held.extend_from_slice(&held[released..]);
        }
        self.ready.extend_from_slice(&held[..released]);
        0
    }

    /// hyper's decoder fails here: see [`State::Blind`].
    fn go_blind(&mut self) {
        self.state = State::Blind;
    }

    fn step_aside(&mut self) {
        self.state = State::Off;
    }

    /// While sniffing, `data` is everything received so far: returns whether to hold it back
    /// (a part of the HTTP/2 preface); otherwise the protocol is known (HTTP/2: the guard has
    /// stepped aside).
    fn sniff(&mut self, data: &[u8]) -> bool {
        let n = data.len().min(H2_PREFACE.len());
        if data[..n] == H2_PREFACE[..n] {
            if n < H2_PREFACE.len() {
                return true;
            }
            self.step_aside();
        }
        self.sniffing = false;
        if let Some(activity) = &self.activity {
            activity.protocol_known(self.state == State::Off);
        }
        false
    }

    /// The client ended its side. A part of the HTTP/2 preface held back is then an HTTP/1.1
    /// head (checked as one); a partial head goes to hyper as it is (hyper answers an incomplete
    /// message by closing).
    #[cold]
    #[inline(never)]
    fn take_in_eof(&mut self) {
        self.eof = true;
        if self.sniffing {
            self.sniffing = false;
            if let Some(activity) = &self.activity {
                activity.protocol_known(false);
            }
            let held = std::mem::take(&mut self.held);
            let passed = self.take_in(&held);
            self.ready.extend_from_slice(&held[..passed]);
        }
        let held = std::mem::take(&mut self.held);
        self.ready.extend_from_slice(&held);
    }
}

/// Where the head in `head` ends (just after its empty line), searching from about `from`.
/// Newlines are found with `memchr` (SIMD): a head is mostly one long `Authorization` or
/// `Cookie` value, which a byte-at-a-time loop would walk at several instructions a byte.
fn head_end(head: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    memchr::memchr_iter(b'\n', &head[start..]).find_map(|offset| {
        let nl = start + offset;
        match head.get(nl + 1..) {
            Some([b'\n', ..]) => Some(nl + 2),
            Some([b'\r', b'\n', ..]) => Some(nl + 3),
            _ => None,
        }
    })
}

/// Parses a whole head and returns the state after it (how its body is framed) and whether it
/// asks for an upgrade (`Some(true)` for `CONNECT`).
fn check_head(head: &[u8]) -> Result<(State, Option<bool>), Refusal> {
    // Left uninitialized for httparse to fill: zeroing 100 fields (3 KiB) per request costs more
    // than parsing a typical head.
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(head, &mut headers) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(Refusal::Malformed),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        Err(_) => return Err(Refusal::Malformed),
    }
    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let connect = request.method == Some("CONNECT");
    let mut upgrade = connect;
    for header in request.headers.iter() {
        let name = header.name;
        let value = header.value.trim_ascii();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Like hyper: the last coding of the last field must be `chunked`.
            chunked = std::str::from_utf8(value).is_ok_and(|v| {
                v.rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            });
        } else if name.eq_ignore_ascii_case("content-length") {
            let parsed = parse_length(value).ok_or(Refusal::Malformed)?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err(Refusal::Malformed);
            }
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    if transfer_encoding && length.is_some() {
        return Err(Refusal::Conflicting);
    }
    if transfer_encoding && (request.version != Some(1) || !chunked) {
        return Err(Refusal::Malformed);
    }
    let next = if transfer_encoding {
        State::Chunked(Chunk::Start)
    } else {
        match length {
            Some(n) if n > 0 => State::Body(n),
            _ => State::Head,
        }
    };
    Ok((next, upgrade.then_some(connect)))
}

/// A `Content-Length` value: decimal digits only, as hyper reads it.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

impl<T: AsyncRead + Unpin> FramingGuard<T> {
    /// Reads from the client into `buf`, with the head-read timer running while it waits.
    #[inline(always)]
    fn poll_read_inner(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if Pin::new(&mut self.inner).poll_read(cx, buf)?.is_pending() {
            if self.head_timed_out(cx) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request head not received in time",
                )));
            }
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// For a reader with little room (hyper-util's protocol detection reads at most 24 bytes):
    /// reads a larger piece from the client and takes it in, what passes going to `ready`,
    /// so that a head is not read from the socket 24 bytes at a time.
    #[cold]
    #[inline(never)]
    fn poll_read_to_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Left uninitialized: `ReadBuf` tracks what the read filled (zeroing 4 KiB would cost
        // more than the read).
        let mut scratch = [const { std::mem::MaybeUninit::<u8>::uninit() }; SMALL_READ];
        let mut read = ReadBuf::uninit(&mut scratch);
        ready!(self.poll_read_inner(cx, &mut read))?;
        let data = read.filled();
        if data.is_empty() {
            self.take_in_eof();
            return Poll::Ready(Ok(()));
        }
        // `ready` is empty here; `take_in` either returns the bytes that pass at the front of
        // `data`, or moves them to `ready` itself and returns 0.
        let passed = self.take_in(data);
        self.ready.extend_from_slice(&data[..passed]);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready_from < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.ready_from);
                buf.put_slice(&this.ready[this.ready_from..this.ready_from + n]);
                this.ready_from += n;
                if this.ready_from == this.ready.len() {
                    this.ready.clear();
                    this.ready_from = 0;
                }
                return Poll::Ready(Ok(()));
            }
            // A refused head: hyper sees the end of the stream (and the answer is written
            // when it shuts the connection down).
            if this.refusal.is_some() || this.eof {
                return Poll::Ready(Ok(()));
            }
            if matches!(this.state, State::Off | State::Blind) && this.held.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.state == State::AwaitAnswer {
                // Woken by the write of the answer's status line.
                this.read_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if buf.remaining() < MIN_DIRECT_READ {
                ready!(this.poll_read_to_ready(cx))?;
                continue;
            }
            let start = buf.filled().len();
            ready!(this.poll_read_inner(cx, buf))?;
            let end = buf.filled().len();
            if end == start {
                this.take_in_eof();
                continue;
            }
            let passed = this.take_in(&buf.filled()[start..end]);
            buf.set_filled(start + passed);
            if passed > 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for FramingGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.saw_answer(&buf[..written]);
        this.saw_write_when_blind(written);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // hyper also closes after answering a request whose body it did not read (413 on the
        // declared length, 408): the client may still be sending that body, and closing with
        // unread bytes resets the connection, which can destroy the answer before the client
        // reads it. Such a close lingers like a refusal's.
        let unread_body = !this.eof && matches!(this.state, State::Body(_) | State::Chunked(_));
        if this.refusal.is_none() && !unread_body {
            return Pin::new(&mut this.inner).poll_shutdown(cx);
        }
        if this.linger.is_none() {
            if let Some(refusal) = this.refusal
                && this.answer.is_empty()
            {
                this.answer = refusal.response(this.hsts);
            }
            while this.answered < this.answer.len() {
                let n = ready!(
                    Pin::new(&mut this.inner).poll_write(cx, &this.answer[this.answered..])
                )?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                this.answered += n;
            }
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut scratch = [0u8; 4096];
        while let Some(linger) = this.linger.as_mut() {
            if linger.as_mut().poll(cx).is_ready() || this.lingered > LINGER_BYTES {
                break;
            }
            let mut sink = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut sink)) {
                Ok(()) if !sink.filled().is_empty() => this.lingered += sink.filled().len(),
                _ => break,
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut written = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let total = written;
        for buf in bufs {
            if written == 0 || this.state != State::AwaitAnswer {
                break;
            }
            let n = written.min(buf.len());
            this.saw_answer(&buf[..n]);
            written -= n;
        }
        this.saw_write_when_blind(total);
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one read at a time; returns what hyper would have read, and the refusal.
    fn run(chunks: &[&[u8]]) -> (Vec<u8>, Option<Refusal>) {
        let mut guard = FramingGuard::new((), 1024, false);
        let mut out = Vec::new();
        for chunk in chunks {
            if guard.refusal.is_some() {
                break;
            }
            let passed = guard.take_in(chunk);
            out.extend_from_slice(&chunk[..passed]);
            out.append(&mut guard.ready);
        }
        (out, guard.refusal)
    }

    fn bytewise(data: &[u8]) -> Vec<&[u8]> {
        data.chunks(1).collect()
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

    #[test]
    fn whole_requests_pass_through_pipelined_or_byte_by_byte() {
        let stream = [
            GET,
            b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"POST /y HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
            b"\r\n",
            GET,
        ]
        .concat();
        assert_eq!(run(&[&stream]), (stream.clone(), None));
        assert_eq!(run(&bytewise(&stream)), (stream.clone(), None));
    }

    #[test]
    fn content_length_with_transfer_encoding_is_refused_in_either_order_and_position() {
        let first =
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let second = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n";
        for bad in [&first[..], &second[..]] {
            assert_eq!(run(&[bad]), (Vec::new(), Some(Refusal::Conflicting)));
            assert_eq!(
                run(&bytewise(bad)),
                (Vec::new(), Some(Refusal::Conflicting))
            );
            // After a chunked request on the same connection: the first passes, then refusal.
            let chunked =
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
            let stream = [&chunked[..], bad].concat();
            assert_eq!(
                run(&[&stream]),
                (chunked.to_vec(), Some(Refusal::Conflicting))
            );
            // A smuggled head inside a body is body, not a head.
            let carrier = [
                format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", bad.len()).as_bytes(),
                bad,
            ]
            .concat();
            assert_eq!(run(&[&carrier]), (carrier.clone(), None));
        }
    }

    #[test]
    fn oversized_and_malformed_heads_are_refused() {
        let big = [
            b"GET / HTTP/1.1\r\nX: ".as_slice(),
            &[b'a'; 2000],
            b"\r\n\r\n",
        ]
        .concat();
        assert_eq!(run(&[&big]), (Vec::new(), Some(Refusal::TooLarge)));
        // Without an end in sight, too.
        assert_eq!(run(&[&big[..1500]]), (Vec::new(), Some(Refusal::TooLarge)));
        let many: String = (0..101).map(|i| format!("X-{i}: 1\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            run(&[many.as_bytes()]),
            (Vec::new(), Some(Refusal::TooLarge))
        );
        for bad in [
            &b"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"G\x01T / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                run(&[bad]).1,
                Some(Refusal::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    const SMUGGLE: &[u8] =
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

    /// An upgrade request, then more bytes, then the answer hyper writes (in two pieces, as a
    /// vectored write may split it): what hyper reads, and the refusal.
    fn upgrade_answered(answer: &[u8], after: &[u8]) -> (Vec<u8>, Option<Refusal>) {
        let mut guard = FramingGuard::new((), 1024, false);
        let stream = [UPGRADE, after].concat();
        let passed = guard.take_in(&stream);
        let mut out = stream[..passed].to_vec();
        out.append(&mut guard.ready);
        assert_eq!(
            out, UPGRADE,
            "nothing after the upgrade request before its answer"
        );
        assert_eq!(guard.state, State::AwaitAnswer);
        guard.saw_answer(&answer[..5]);
        guard.saw_answer(&answer[5..]);
        out.append(&mut guard.ready);
        (out, guard.refusal)
    }

    #[test]
    fn a_101_answer_turns_the_guard_off() {
        let frames = [b"\x81\x05hello anything at all: ".as_slice(), SMUGGLE].concat();
        let (out, refusal) = upgrade_answered(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", &frames);
        assert_eq!((out, refusal), ([UPGRADE, &frames].concat(), None));
    }

    /// Found in review: any `Upgrade:` header switched the guard off (no smuggling check, no
    /// timers) for the rest of the connection, whatever the server answered.
    #[test]
    fn an_upgrade_that_is_not_answered_101_leaves_the_guard_on() {
        for answer in [
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".as_slice(),
            b"HTTP/1.1 401 Unauthorized\r\n\r\n",
            b"HTTP/1.1 426 Upgrade Required\r\n\r\n",
        ] {
            let (out, refusal) = upgrade_answered(answer, SMUGGLE);
            assert_eq!(out, UPGRADE);
            assert_eq!(refusal, Some(Refusal::Conflicting));
            // A plain request after it passes.
            let (out, refusal) = upgrade_answered(answer, GET);
            assert_eq!((out, refusal), ([UPGRADE, GET].concat(), None));
        }
    }

    #[test]
    fn a_chunked_body_hyper_cannot_decode_ends_the_connection_at_the_answer() {
        for bad in [
            &b"zz\r\n"[..],
            b"5\n",
            b"5;ext\nx",
            b"1\r\nab\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            let mut guard = FramingGuard::new((), 1024, false);
            let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
            assert_eq!(guard.take_in(head), head.len());
            let rest = [bad, GET].concat();
            assert_eq!(
                guard.take_in(&rest),
                rest.len(),
                "passed on to hyper, which fails"
            );
            assert_eq!(
                guard.state,
                State::Blind,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(!guard.eof);
            guard.saw_write_when_blind(10);
            assert!(
                guard.eof,
                "hyper reads the end of the stream after its answer"
            );
        }
    }

    /// Found by the differential fuzz target (`framing`): the guard ended trailers at a line
    /// that hyper reads as trailer data (a bare LF), so a request hidden in the trailers was
    /// checked as a head while hyper framed another one, unchecked, after it.
    #[test]
    fn chunked_bodies_end_where_hyper_ends_them() {
        let smuggle = b"POST /first HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
            0\r\nX: a\r\n\nGET /fake HTTP/1.1\r\nContent-Length: 88\r\n\r\n\
            POST /smuggled HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let (passed, refusal) = run(&[smuggle]);
        let first_end = smuggle
            .windows(14)
            .position(|w| w == b"POST /smuggled")
            .expect("second request");
        assert_eq!(
            passed,
            &smuggle[..first_end],
            "the first request, trailers and all"
        );
        assert_eq!(
            refusal,
            Some(Refusal::Conflicting),
            "the smuggled head is checked"
        );
        // hyper's other leniencies, followed the same way: leading zeros, long extensions,
        // spaces after the size, a bare LF inside a trailer field.
        let long_extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(5000));
        for body in [
            b"00000000000000000005\r\nhello\r\n0\r\n\r\n".as_slice(),
            long_extension.as_bytes(),
            b"5 \t ;a=b\r\nhello\r\n0\r\n\r\n",
            b"0\r\n\nX\r\n\r\n",
        ] {
            let stream = [
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
                body,
                GET,
            ]
            .concat();
            let mut guard = FramingGuard::new((), 1024, false);
            let passed = guard.take_in(&stream);
            assert_eq!((passed, guard.refusal), (stream.len(), None));
            assert_eq!(
                guard.state,
                State::Head,
                "{:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(run(&bytewise(&stream)), (stream.clone(), None));
        }
    }

    #[test]
    fn answers_are_well_formed_json() {
        for refusal in [Refusal::Conflicting, Refusal::Malformed, Refusal::TooLarge] {
            let answer = String::from_utf8(refusal.response(true)).expect("ascii");
            let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.parse().ok())
                .expect("content-length");
            assert_eq!(body.len(), length, "{refusal:?}");
            let json: serde_json::Value = serde_json::from_str(body).expect("json");
            assert!(json["detail"].is_string());
        }
    }

    /// hyper answers a too-long declared body (413) without reading it and closes: the guard
    /// drains what the client is still sending, so the close is a clean end of stream and the
    /// answer reaches the client, instead of a reset that can destroy it.
    #[tokio::test(start_paused = true)]
    async fn a_head_must_arrive_in_time_but_a_body_has_no_head_timer() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let timeout = Duration::from_secs(10);
        let idle = Duration::from_secs(60);
        let (mut client, server) = tokio::io::duplex(1024);
        let mut guard = FramingGuard::with_timeouts(
            server,
            1024,
            false,
            Some(Timeouts {
                head: timeout,
                idle,
            }),
        );
        let mut buf = [0u8; 256];
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
            .await
            .expect("write");
        assert!(guard.read(&mut buf).await.expect("head") > 0);
        // The body is late: no head timer runs while it is awaited.
        let started = tokio::time::Instant::now();
        let read = tokio::spawn(async move {
            let n = guard.read(&mut buf).await.map(|_| ());
            (n, guard)
        });
        tokio::time::sleep(timeout * 3).await;
        client.write_all(b"ok").await.expect("write");
        let (body, mut guard) = read.await.expect("task");
        body.expect("the body, however late");
        assert!(started.elapsed() >= timeout * 3);
        // Then the next head is awaited: the connection is idle, and the idle timer runs.
        let started = tokio::time::Instant::now();
        let err = guard.read(&mut buf).await.expect_err("no head came");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), idle);
        drop(client);
    }

    /// A kept-alive connection may wait idle for the idle timeout; once a head begins, it must
    /// be whole within the header-read timeout from its first byte.
    #[tokio::test(start_paused = true)]
    async fn a_head_begun_after_an_idle_wait_must_be_whole_within_the_head_timeout() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let timeouts = Timeouts {
            head: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        let (mut client, server) = tokio::io::duplex(1024);
        let mut guard = FramingGuard::with_timeouts(server, 1024, false, Some(timeouts));
        let mut buf = [0u8; 256];
        client.write_all(GET).await.expect("write");
        assert_eq!(guard.read(&mut buf).await.expect("head"), GET.len());
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let result = guard.read(&mut buf).await;
            (result.map_err(|e| e.kind()), tokio::time::Instant::now())
        });
        // Idle for most of the idle timeout, then a head trickles in and stalls.
        tokio::time::sleep(Duration::from_secs(50)).await;
        client.write_all(b"GET / HT").await.expect("write");
        let began = tokio::time::Instant::now();
        let (result, ended) = reader.await.expect("task");
        assert_eq!(result, Err(io::ErrorKind::TimedOut));
        assert_eq!(ended - began, timeouts.head);
        drop(client);
    }

    #[tokio::test]
    async fn closing_before_a_body_was_read_drains_it_so_the_answer_survives() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        const BODY: usize = 512 * 1024;
        let head = format!("POST / HTTP/1.1\r\nContent-Length: {BODY}\r\n\r\n");
        let answer =
            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let head_len = head.len();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut guard = FramingGuard::new(stream, 1024, false);
            // The head only, as hyper reads it before answering on the declared length.
            let mut read = vec![0u8; head_len];
            guard.read_exact(&mut read).await.unwrap();
            guard.write_all(answer).await.unwrap();
            guard.shutdown().await.unwrap();
        });

        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        client.write_all(head.as_bytes()).await.unwrap();
        // The body trickles in while the server has already answered and is closing.
        for _ in 0..16 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            client
                .write_all(&[b'x'; BODY / 16])
                .await
                .expect("the whole body is taken");
        }
        let mut received = Vec::new();
        client
            .read_to_end(&mut received)
            .await
            .expect("a clean end of stream, not a reset");
        assert_eq!(received, answer);
        server.await.unwrap();
    }

    /// What hyper-util's `auto` builder chooses from the bytes the guard passed on (its
    /// `ReadVersion`, hyper-util 0.1): HTTP/2 (`true`) on the whole preface, HTTP/1.1 on a byte
    /// that departs from it or at the end of the stream; `None` while it waits for more.
    fn auto_chooses_http2(passed: &[u8], eof: bool) -> Option<bool> {
        let n = passed.len().min(H2_PREFACE.len());
        if passed[..n] != H2_PREFACE[..n] {
            Some(false)
        } else if n == H2_PREFACE.len() {
            Some(true)
        } else if eof {
            Some(false)
        } else {
            None
        }
    }

    /// The protocol the guard told its activity: `None` while it does not know.
    fn guard_chose_http2(activity: &super::super::Activity) -> Option<bool> {
        match activity.protocol() {
            super::super::Protocol::Unknown => None,
            super::super::Protocol::Http1 => Some(false),
            super::super::Protocol::Http2 => Some(true),
        }
    }

    /// Every way the first bytes can come (whole, byte by byte, in two pieces split anywhere;
    /// with the end of the stream after them or not): whenever the bytes the guard passed on
    /// let the `auto` builder choose, the guard chose the same, and it passed nothing before it
    /// chose. HTTP/2 streams pass untouched; the rest is guarded as HTTP/1.1.
    #[test]
    fn the_guard_and_the_auto_builder_agree_on_every_prefix() {
        let settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";
        let mut streams: Vec<Vec<u8>> = vec![
            [H2_PREFACE, settings].concat(),
            H2_PREFACE.to_vec(),
            GET.to_vec(),
            [b"\r\n".as_slice(), GET].concat(),
            b"PRI /x HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            b"PRI * HTTP/1.1\r\n\r\n".to_vec(),
        ];
        for k in 0..H2_PREFACE.len() {
            streams.push(H2_PREFACE[..k].to_vec());
            streams.push([&H2_PREFACE[..k], b"X\r\n\r\n"].concat());
        }
        for stream in &streams {
            let mut ways: Vec<Vec<&[u8]>> = vec![vec![stream], bytewise(stream)];
            for split in 1..stream.len() {
                ways.push(vec![&stream[..split], &stream[split..]]);
            }
            for chunks in ways {
                for eof in [false, true] {
                    let activity = super::super::Activity::new(super::super::Protocol::Unknown);
                    let mut guard = FramingGuard::new((), 1024, false)
                        .detecting_http2(std::sync::Arc::clone(&activity));
                    let mut passed = Vec::new();
                    let check = |guard: &FramingGuard<()>, passed: &[u8], eof: bool| {
                        let chosen = guard_chose_http2(&activity);
                        let end = eof || guard.refusal.is_some();
                        if let Some(auto) = auto_chooses_http2(passed, end) {
                            assert_eq!(chosen, Some(auto), "{stream:?} passed {passed:?}");
                        }
                        if chosen.is_none() {
                            assert!(passed.is_empty(), "{stream:?} passed {passed:?}");
                        }
                    };
                    for chunk in &chunks {
                        if guard.refusal.is_some() {
                            break;
                        }
                        let n = guard.take_in(chunk);
                        passed.extend_from_slice(&chunk[..n]);
                        passed.append(&mut guard.ready);
                        check(&guard, &passed, false);
                    }
                    if eof && guard.refusal.is_none() {
                        guard.take_in_eof();
                        passed.append(&mut guard.ready);
                        check(&guard, &passed, true);
                    }
                    if stream.starts_with(H2_PREFACE) {
                        assert_eq!(&passed, stream, "HTTP/2 passes untouched");
                        assert_eq!(guard.state, State::Off);
                    } else if eof {
                        assert_eq!(guard_chose_http2(&activity), Some(false), "{stream:?}");
                    }
                }
            }
        }
        // A head that starts like the preface is checked as any other.
        let (passed, refusal) = {
            let activity = super::super::Activity::new(super::super::Protocol::Unknown);
            let mut guard = FramingGuard::new((), 1024, false).detecting_http2(activity);
            let bad = b"PRI * HTTP/2.0\r\n\r\nSM\r\nX\r\n\r\n";
            let n = guard.take_in(bad);
            (bad[..n].to_vec(), guard.refusal)
        };
        assert_eq!((passed, refusal), (Vec::new(), Some(Refusal::Malformed)));
    }

    /// While the guard waits for the rest of the preface, the first head's timer runs: a
    /// client that stops part-way is cut at the header-read timeout, as one that sends nothing.
    #[tokio::test(start_paused = true)]
    async fn a_partial_preface_is_cut_at_the_header_read_timeout() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let timeouts = Timeouts {
            head: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        for sent in [0, 1, 23] {
            let (mut client, server) = tokio::io::duplex(1024);
            let activity = super::super::Activity::new(super::super::Protocol::Unknown);
            let mut guard = FramingGuard::with_timeouts(server, 1024, false, Some(timeouts))
                .detecting_http2(activity);
            client.write_all(&H2_PREFACE[..sent]).await.expect("write");
            let started = tokio::time::Instant::now();
            // hyper-util's detection reads with a 24-byte buffer.
            let mut buf = [0u8; 24];
            let err = guard.read(&mut buf).await.expect_err("cut");
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
            assert_eq!(started.elapsed(), timeouts.head, "{sent}");
            drop(client);
        }
    }
}
