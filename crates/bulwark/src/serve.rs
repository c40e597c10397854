//! Serving a router on a socket, over HTTP or HTTPS, hardened against slow and idle clients.
//!
//! **Threat model.** A client that opens connections and sends headers a byte at a time
//! (slowloris), or that open connections and send nothing at all, can hold a server's sockets
//! forever. [`serve`] cuts any connection that sends no request, or whose HTTP/1.1 request
//! headers take longer than [`ServeOptions::header_read_timeout`], and any connection, HTTP/1.1
//! or HTTP/2, with no request in flight for [`ServeOptions::idle_timeout`] (HTTP/2 pings do not
//! count; request headers cannot switch the timers off: only a completed `101` upgrade leaves
//! them). It caps open connections in all and per client ([`ConnectionLimits`]), refusing one
//! past a cap before any TLS handshake or parsing. It speaks HTTP/1.1 and HTTP/2,
//! records the socket peer as `ConnectInfo<SocketAddr>` for client-identity code (or, with
//! [`serve_with_peers`], hands it to each connection's service), and drains in-flight requests
//! on shutdown, for at most [`ServeOptions::shutdown_timeout`].
//!
//! Over plain TCP the protocol is told by the first bytes (hyper-util's `auto` builder): the
//! HTTP/2 connection preface selects HTTP/2, anything else is HTTP/1.1. The framing guard reads
//! those bytes first, and holds back a partial preface, so the first request's header-read timer
//! runs from the start: a client that sends nothing, or trickles the preface, is cut at the
//! timeout like a slow HTTP/1.1 head.
//!
//! With the `tls` feature and [`ServeOptions::tls`] set, every connection must complete a TLS
//! handshake (see [`crate::tls`]) within the same header-read timeout; a client that speaks plain
//! HTTP to the TLS port fails the handshake and its connection is closed without an HTTP answer.
//! The protocol is then the one negotiated by ALPN (`h2`, else HTTP/1.1), so nothing is sniffed
//! from the first bytes and HTTP/1.1's header-read timer runs from the end of the handshake; an
//! HTTP/2 client must send its connection preface within the timeout too.
//!
//! **Not covered.** Timeouts for whole requests belong in a tower layer on the router (see
//! `tower_http::timeout`); connection floods from many addresses need a firewall or proxy in
//! front. HTTP/2 headers arrive in frames that hyper assembles before a request exists; a client
//! that trickles them holds its connection only until the idle timeout. Upgraded connections
//! (WebSockets) leave hyper's hands at the upgrade, so the shutdown drain does not wait for them:
//! close them from the application when shutdown begins; they still count against the
//! connection caps until they close.

#[cfg(feature = "tls")]
use std::io;
use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::{body::Body, extract::ConnectInfo, response::Response};
use http::Request;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
#[cfg(feature = "tls")]
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Sleep,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Notify, watch},
};
#[cfg(feature = "tls")]
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt as _, util::Oneshot};

mod framing;
mod limits;

#[cfg(feature = "tls")]
use framing::H2_PREFACE;
use framing::{FramingGuard, Timeouts};
pub use limits::ConnectionLimits;
use limits::{ConnectionCounter, ConnectionPermit};

/// Socket-level limits, and TLS.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a client may take to complete the TLS handshake, to send a request's headers
    /// (and, on a kept-alive connection, to start the next request) before the connection is
    /// closed.
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight (HTTP/1.1 keep-alive, or HTTP/2 with no
    /// open stream, pings or not) is kept open.
    pub idle_timeout: Duration,
    /// Caps on open connections.
    pub limits: ConnectionLimits,
    /// How long shutdown waits for in-flight requests before returning anyway.
    pub shutdown_timeout: Duration,
    /// Serve HTTPS with this configuration (see [`crate::tls::server_config`]); plain HTTP when
    /// `None`.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            limits: ConnectionLimits::default(),
            shutdown_timeout: Duration::from_secs(10),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Serves `service` (an axum `Router`, or a router wrapped in layers of your own) on `listener`
/// until `shutdown` completes, then stops accepting, lets
/// in-flight requests finish (idle kept-alive connections are closed at once) for at most
/// [`ServeOptions::shutdown_timeout`], and returns.
///
/// # Errors
/// Never returns an error for a single bad connection (those are logged at debug level); returns
/// only when shut down.
///
/// # Examples
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use axum::{Router, routing::get};
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let app = Router::new().route("/", get(|| async { "ok" }));
/// bulwark::serve::serve(listener, app, Default::default(), std::future::pending()).await;
/// # Ok(()) }
/// ```
///
/// Over HTTPS with a development certificate (features `tls` and `dev-certs`):
/// ```no_run
/// # #[cfg(feature = "dev-certs")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use bulwark::{serve::{ServeOptions, serve}, tls};
///
/// let generated = tls::self_signed(tls::LOCAL_NAMES)?;
/// let resolver = Arc::new(tls::CertificateResolver::fixed(generated.certified_key));
/// let options = ServeOptions { tls: Some(tls::server_config(resolver)?), ..Default::default() };
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// let app = Router::new().route("/", get(|| async { "ok" }));
/// serve(listener, app, options, async { let _ = tokio::signal::ctrl_c().await; }).await;
/// # Ok(()) }
/// ```
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) where
    S: AppService,
{
    run(listener, |_| service.clone(), true, options, shutdown).await;
}

/// Like [`serve`], for a service that takes each connection's socket peer itself:
/// `for_peer(peer)` makes the service of the connection from `peer` (typically a clone of the
/// application that remembers the address), and its requests carry no
/// `ConnectInfo<SocketAddr>` extension. [`serve`] records that extension on every request,
/// which costs the request its extension map (an allocation, a hash-map insert and their drop,
/// about 600 instructions); a service that answers most refusals before its router can attach
/// the peer only to the requests it routes.
///
/// # Examples
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use axum::{Router, extract::ConnectInfo, routing::get};
/// use std::net::SocketAddr;
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let app = Router::new().route("/", get(|| async { "ok" }));
/// // The same as `serve`, written out: the peer goes on each request as `ConnectInfo`.
/// let for_peer = move |peer: SocketAddr| {
///     let app = app.clone();
///     tower::service_fn(move |mut request: axum::extract::Request| {
///         request.extensions_mut().insert(ConnectInfo(peer));
///         tower::ServiceExt::oneshot(app.clone(), request)
///     })
/// };
/// bulwark::serve::serve_with_peers(listener, for_peer, Default::default(), std::future::pending()).await;
/// # Ok(()) }
/// ```
pub async fn serve_with_peers<F, S>(
    listener: TcpListener,
    for_peer: F,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) where
    F: Fn(SocketAddr) -> S,
    S: AppService,
{
    run(listener, for_peer, false, options, shutdown).await;
}

/// The accept loop of [`serve`] and [`serve_with_peers`].
async fn run<F, S>(
    listener: TcpListener,
    for_peer: F,
    connect_info: bool,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) where
    F: Fn(SocketAddr) -> S,
    S: AppService,
{
    let protocols = Arc::new(Protocols::new());
    let counter = ConnectionCounter::new(options.limits.clone());
    #[cfg(feature = "tls")]
    let acceptor = options.tls.clone().map(TlsAcceptor::from);
    // Every connection task holds a receiver: `true` asks it to finish its request in flight and
    // close; the sender sees every receiver gone once all connections have closed.
    let (draining, drain_signal) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(permit) = counter.admit(peer.ip()) else {
            // Past a cap: closed at once, before a handshake or a byte of parsing.
            tracing::debug!(%peer, "connection cap reached; connection closed");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            service: for_peer(peer),
            connect_info,
            protocols: Arc::clone(&protocols),
            drain: drain_signal.clone(),
            peer,
            timeouts: Timeouts {
                head: options.header_read_timeout,
                idle: options.idle_timeout,
            },
            permit: Some(permit),
        };
        #[cfg(feature = "tls")]
        match &acceptor {
            None => tokio::spawn(connection.serve_plain(stream)),
            Some(acceptor) => tokio::spawn(connection.serve_tls(acceptor.clone(), stream)),
        };
        #[cfg(not(feature = "tls"))]
        tokio::spawn(connection.serve_plain(stream));
    }
    drop(listener);
    drop(drain_signal);
    draining.send_replace(true);
    if tokio::time::timeout(options.shutdown_timeout, draining.closed())
        .await
        .is_err()
    {
        tracing::warn!("shutdown timeout over; closing remaining connections");
    }
}

/// The most an HTTP/1.1 request line and headers may take: larger ones answer 431 (hyper's
/// default, about 400 KiB, lets a client make the server buffer far more than any real request
/// needs).
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The HTTP/1.1 settings, applied to hyper's builder or to the `auto` builder's half.
macro_rules! http1_settings {
    ($builder:expr) => {
        // Half-closed connections are served: a client may send its last request and shut its
        // side, and when the framing guard refuses a pipelined head it ends the stream hyper
        // reads, which must not cut the answers to the requests before it.
        $builder
            .half_close(true)
            .timer(TokioTimer::new())
            .max_buf_size(MAX_HEADER_BYTES)
            // The framing guard times request heads instead (`FramingGuard::with_timeouts`):
            // hyper makes and drops a timer for every request.
            .header_read_timeout(None)
    };
}

/// The HTTP/2 settings, applied to hyper's builder or to the `auto` builder's half.
macro_rules! http2_settings {
    ($builder:expr) => {
        $builder
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)))
    };
}

/// The HTTP configurations.
struct Protocols {
    /// Plain TCP: HTTP/1.1 or HTTP/2, as the first bytes tell.
    auto: auto::Builder<TokioExecutor>,
    /// HTTPS, as negotiated by ALPN.
    #[cfg(feature = "tls")]
    http1: hyper::server::conn::http1::Builder,
    #[cfg(feature = "tls")]
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

impl Protocols {
    fn new() -> Self {
        let mut auto = auto::Builder::new(TokioExecutor::new());
        http1_settings!(auto.http1());
        http2_settings!(auto.http2());
        Self {
            auto,
            #[cfg(feature = "tls")]
            http1: http1_builder(),
            #[cfg(feature = "tls")]
            http2: {
                let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                http2_settings!(http2);
                http2
            },
        }
    }
}

/// hyper's HTTP/1.1 builder with [`serve`]'s settings.
#[cfg(any(feature = "tls", feature = "fuzzing"))]
fn http1_builder() -> hyper::server::conn::http1::Builder {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1_settings!(http1);
    http1
}

/// What [`serve`] serves: a cloneable service of axum requests that never fails (an axum
/// `Router`, with or without layers around it). Each request gets a fresh clone, whose
/// readiness is awaited (`poll_ready`) before it is called, as `tower::ServiceExt::oneshot`
/// does: a layer that applies backpressure there (a concurrency limit, a load shedder behind
/// axum's `HandleErrorLayer`) takes effect, the request waiting until the service is ready. A
/// clone should be cheap (a few reference counts), and since each clone is readied once, a
/// layer should keep what it reserves in `poll_ready` (a permit) in the clone it was reserved
/// for, as tower's layers do.
pub trait AppService:
    Service<Request<Body>, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> AppService for S where
    S: Service<Request<Body>, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// One accepted connection, before its protocol is known.
struct Connection<S> {
    service: S,
    /// Whether each request gets the peer as `ConnectInfo` ([`serve`]; not [`serve_with_peers`]).
    connect_info: bool,
    protocols: Arc<Protocols>,
    drain: watch::Receiver<bool>,
    peer: SocketAddr,
    timeouts: Timeouts,
    /// Counts the connection against the caps while it lives (moved into an HTTP/1.1
    /// connection's stream, so that it lives on through an upgrade).
    permit: Option<ConnectionPermit>,
}

/// A connection's protocol, as its first bytes told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Unknown,
    Http1,
    Http2,
}

/// What a connection's idle watch ([`idle_for`]) needs to know of it: its protocol, told by its
/// framing guard, and on HTTP/2 its requests in flight (from the call until the response head
/// is ready), counted by its service.
pub(crate) struct Activity {
    protocol: AtomicU8,
    in_flight: AtomicUsize,
    /// Notified when the connection turns out to be HTTP/2, and when an HTTP/2 request starts or
    /// ends; never for HTTP/1.1, which needs no watch (its timers are the framing guard's).
    changed: Notify,
}

impl Activity {
    fn new(protocol: Protocol) -> Arc<Self> {
        Arc::new(Self {
            protocol: AtomicU8::new(protocol as u8),
            in_flight: AtomicUsize::new(0),
            changed: Notify::new(),
        })
    }

    fn protocol(&self) -> Protocol {
        match self.protocol.load(Ordering::Acquire) {
            1 => Protocol::Http1,
            2 => Protocol::Http2,
            _ => Protocol::Unknown,
        }
    }

    /// The first bytes told the protocol.
    pub(crate) fn protocol_known(&self, http2: bool) {
        let protocol = if http2 {
            Protocol::Http2
        } else {
            Protocol::Http1
        };
        self.protocol.store(protocol as u8, Ordering::Release);
        if http2 {
            self.changed.notify_waiters();
        }
    }

    fn add_in_flight(&self, add: bool) {
        if add {
            self.in_flight.fetch_add(1, Ordering::AcqRel);
        } else {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        self.changed.notify_waiters();
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }
}

/// An HTTP/2 request in flight, counted until dropped.
struct InFlightRequest(Arc<Activity>);

impl InFlightRequest {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.add_in_flight(true);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlightRequest {
    fn drop(&mut self) {
        self.0.add_in_flight(false);
    }
}

/// The application as a connection's hyper service: each request goes to a fresh clone once it
/// is ready, with the socket peer as `ConnectInfo` (unless the service took the peer itself,
/// [`serve_with_peers`]); HTTP/2 requests are counted in flight for the idle watch.
struct ConnService<S> {
    service: S,
    peer: Option<SocketAddr>,
    activity: Option<Arc<Activity>>,
}

impl<S: AppService> hyper::service::Service<http::Request<hyper::body::Incoming>>
    for ConnService<S>
{
    type Response = Response;
    type Error = Infallible;
    type Future = ServiceFuture<S>;

    fn call(&self, mut req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let counted = match &self.activity {
            Some(activity) if req.version() == http::Version::HTTP_2 => {
                Some(InFlightRequest::new(activity))
            }
            _ => None,
        };
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        }
        ServiceFuture {
            response: self.service.clone().oneshot(req.map(Body::new)),
            counted,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's answer: the service made ready, then called; an HTTP/2 request stops
    /// counting in flight once the answer's head is ready.
    struct ServiceFuture<S: Service<Request<Body>>> {
        #[pin]
        response: Oneshot<S, Request<Body>>,
        counted: Option<InFlightRequest>,
    }
}

impl<S: Service<Request<Body>>> Future for ServiceFuture<S> {
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.response.poll(cx));
        *this.counted = None;
        Poll::Ready(response)
    }
}

impl<S: AppService> Connection<S> {
    /// Plain TCP, through the `auto` builder: HTTP/2 when the stream starts with the HTTP/2
    /// preface (the framing guard steps aside for it, see [`FramingGuard::detecting_http2`]),
    /// closed once idle ([`idle_for`]); else HTTP/1.1, every request head checked by the guard.
    async fn serve_plain(mut self, stream: TcpStream) {
        let activity = Activity::new(Protocol::Unknown);
        let stream =
            FramingGuard::with_timeouts(stream, MAX_HEADER_BYTES, false, Some(self.timeouts))
                .detecting_http2(Arc::clone(&activity))
                .holding(self.permit.take());
        let idle = idle_for(Arc::clone(&activity), self.timeouts.idle);
        let conn = self
            .protocols
            .auto
            .serve_connection_with_upgrades(TokioIo::new(stream), self.service(Some(activity)));
        let result =
            drain_on_shutdown(conn, self.drain.clone(), idle, |c| c.graceful_shutdown()).await;
        self.finish(result);
    }

    /// HTTPS without `h2`: HTTP/1.1, its request heads checked by [`FramingGuard`] first (the
    /// answers it writes itself carry `Strict-Transport-Security`).
    #[cfg(feature = "tls")]
    async fn serve_https1<T>(mut self, stream: T)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let stream =
            FramingGuard::with_timeouts(stream, MAX_HEADER_BYTES, true, Some(self.timeouts))
                .holding(self.permit.take());
        let conn = self
            .protocols
            .http1
            .serve_connection(TokioIo::new(stream), self.service(None))
            .with_upgrades();
        let result = drain_on_shutdown(conn, self.drain.clone(), std::future::pending(), |c| {
            c.graceful_shutdown()
        })
        .await;
        self.finish(result);
    }

    /// HTTPS with `h2` negotiated: closed (with `GOAWAY`, after its streams finish) once no
    /// request has been in flight for the idle timeout, whatever pings it answers or sends.
    #[cfg(feature = "tls")]
    async fn serve_http2<T>(self, stream: T)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new(Protocol::Http2);
        let idle = idle_for(Arc::clone(&activity), self.timeouts.idle);
        let conn = self
            .protocols
            .http2
            .serve_connection(TokioIo::new(stream), self.service(Some(activity)));
        let result =
            drain_on_shutdown(conn, self.drain.clone(), idle, |c| c.graceful_shutdown()).await;
        self.finish(result);
    }

    #[cfg(feature = "tls")]
    async fn serve_tls(self, acceptor: TlsAcceptor, stream: TcpStream) {
        let peer = self.peer;
        let stream = match tokio::time::timeout(self.timeouts.head, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, %peer, "TLS handshake failed; connection closed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake too slow; connection closed");
                return;
            }
        };
        // The protocol is the one negotiated by ALPN: nothing to sniff, so HTTP/1.1's
        // header-read timer runs from the first read.
        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            // HTTP/2 has no header-read timer: the preface must come in time instead.
            let stream = FirstBytesDeadline::new(
                stream,
                H2_PREFACE.len(),
                tokio::time::sleep(self.timeouts.head),
            );
            self.serve_http2(stream).await;
        } else {
            self.serve_https1(stream).await;
        }
    }

    fn service(&self, activity: Option<Arc<Activity>>) -> ConnService<S> {
        ConnService {
            service: self.service.clone(),
            peer: self.connect_info.then_some(self.peer),
            activity,
        }
    }

    fn finish<E: std::fmt::Display>(&self, result: Result<(), E>) {
        if let Err(err) = result {
            tracing::debug!(error = %err, peer = %self.peer, "connection ended with an error");
        }
    }
}

/// Runs `conn` to its end; when `drain` turns true (or its sender is gone), or `close` completes,
/// first asks it to finish the request in flight and close (`graceful_shutdown`: an idle
/// connection closes at once, HTTP/2 sends `GOAWAY`).
async fn drain_on_shutdown<C, E>(
    conn: C,
    mut drain: watch::Receiver<bool>,
    close: impl Future<Output = ()>,
    graceful_shutdown: impl FnOnce(Pin<&mut C>),
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return result,
        _ = drain.wait_for(|draining| *draining) => {}
        () = close => {}
    }
    graceful_shutdown(conn.as_mut());
    conn.await
}

/// Completes once the connection is HTTP/2 and no request has been in flight for `idle` in a
/// row; never for HTTP/1.1 (the framing guard times it), which costs a flag check per poll.
async fn idle_for(activity: Arc<Activity>, idle: Duration) {
    loop {
        let notified = activity.changed.notified();
        tokio::pin!(notified);
        let http2 = std::future::poll_fn(|cx| match activity.protocol() {
            Protocol::Http2 => Poll::Ready(true),
            Protocol::Http1 => Poll::Pending,
            Protocol::Unknown => notified.as_mut().poll(cx).map(|()| false),
        })
        .await;
        if http2 {
            break;
        }
    }
    loop {
        let changed = activity.changed.notified();
        if !activity.idle() {
            changed.await;
            continue;
        }
        // A request that starts (even one that ends again) within `idle` starts the wait over.
        tokio::select! {
            biased;
            () = changed => {}
            () = tokio::time::sleep(idle) => return,
        }
    }
}

/// A stream whose first `count` bytes must arrive before `deadline`; a read after that without
/// them fails with `TimedOut`. Later reads are not limited.
#[cfg(feature = "tls")]
struct FirstBytesDeadline<T> {
    inner: T,
    remaining: usize,
    deadline: Pin<Box<Sleep>>,
}

#[cfg(feature = "tls")]
impl<T> FirstBytesDeadline<T> {
    fn new(inner: T, count: usize, deadline: Sleep) -> Self {
        Self {
            inner,
            remaining: count,
            deadline: Box::pin(deadline),
        }
    }
}

#[cfg(feature = "tls")]
impl<T: AsyncRead + Unpin> AsyncRead for FirstBytesDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                this.remaining = this.remaining.saturating_sub(read);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            // Waiting for bytes: also wait for the deadline, so that it wakes this task.
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client's first bytes did not arrive in time",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(feature = "tls")]
impl<T: AsyncWrite + Unpin> AsyncWrite for FirstBytesDeadline<T> {
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

/// Hooks for the `framing` fuzz target (`fuzz/fuzz_targets/framing.rs`), which serves the same
/// bytes through hyper with and without the framing guard and compares the requests. Not an API:
/// hidden, only built with the `fuzzing` feature, and free to change with the fuzz target.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    use tokio::io::{AsyncRead, AsyncWrite};

    use super::{FramingGuard, MAX_HEADER_BYTES};

    /// `stream` behind the framing guard as [`super::serve`] puts it on a plain-HTTP connection
    /// (32 KiB heads, no `Strict-Transport-Security` on its answers), without its head timers
    /// (a fuzz run has no clock to race), without a connection permit, and without HTTP/2
    /// detection (the fuzz target speaks HTTP/1.1 only).
    pub fn framing_guard<T: AsyncRead + AsyncWrite + Unpin>(
        stream: T,
    ) -> impl AsyncRead + AsyncWrite + Unpin {
        FramingGuard::with_timeouts(stream, MAX_HEADER_BYTES, false, None)
    }

    /// The HTTP/1.1 settings [`super::serve`] uses (half-close, 32 KiB buffer, hyper's
    /// header-read timer off), on hyper's own builder.
    pub fn http1_builder() -> hyper::server::conn::http1::Builder {
        super::http1_builder()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

    use super::*;

    const SHORT: Duration = Duration::from_millis(200);

    // ---- HTTPS and shutdown, over real sockets -------------------------------------------

    use std::io;

    use axum::Router;
    use axum::routing::{get, post};
    #[cfg(feature = "dev-certs")]
    use http_body_util::BodyExt as _;
    use http_body_util::Full;
    #[cfg(feature = "dev-certs")]
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::AsyncReadExt as _;
    #[cfg(feature = "dev-certs")]
    use tokio_rustls::{TlsConnector, client::TlsStream};

    #[cfg(feature = "dev-certs")]
    use crate::tls;

    /// Whether the tests that run over both plain HTTP and HTTPS run over HTTPS too: they need a
    /// certificate made by `tls::self_signed`.
    #[cfg(feature = "dev-certs")]
    const TLS_MODES: [bool; 2] = [false, true];
    #[cfg(not(feature = "dev-certs"))]
    const TLS_MODES: [bool; 1] = [false];

    /// A running server: its address, its certificate (when HTTPS), and its shutdown switch.
    struct Running {
        addr: SocketAddr,
        #[cfg(feature = "dev-certs")]
        cert: Option<CertificateDer<'static>>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        done: tokio::task::JoinHandle<()>,
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            // Reads the whole body before answering: a request in flight for as long as the
            // client takes to send it.
            .route(
                "/echo",
                post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            )
            // Answers after three head timeouts of the tests (`SHORT`).
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(SHORT * 3).await;
                    "late"
                }),
            )
    }

    async fn start(tls_on: bool, header_read_timeout: Duration, shutdown: Duration) -> Running {
        start_with(
            tls_on,
            ServeOptions {
                header_read_timeout,
                idle_timeout: header_read_timeout,
                shutdown_timeout: shutdown,
                ..ServeOptions::default()
            },
        )
        .await
    }

    async fn start_with(tls_on: bool, options: ServeOptions) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        #[cfg(not(feature = "dev-certs"))]
        assert!(!tls_on, "HTTPS tests need the dev-certs feature");
        #[cfg(feature = "dev-certs")]
        let (config, cert) = if tls_on {
            let generated = tls::self_signed(tls::LOCAL_NAMES).expect("cert");
            let cert = generated.certified_key.cert[0].clone();
            let resolver = Arc::new(tls::CertificateResolver::fixed(generated.certified_key));
            (
                Some(tls::server_config(resolver).expect("config")),
                Some(cert),
            )
        } else {
            (None, None)
        };
        #[cfg(feature = "dev-certs")]
        let options = ServeOptions {
            tls: config,
            ..options
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(serve(listener, app(), options, async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            #[cfg(feature = "dev-certs")]
            cert,
            stop: Some(stop),
            done,
        }
    }

    impl Running {
        #[cfg(feature = "dev-certs")]
        async fn tls_connect(&self, alpn: &[&[u8]]) -> io::Result<TlsStream<TcpStream>> {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(self.cert.clone().expect("an HTTPS server"))
                .expect("root");
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            let tcp = TcpStream::connect(self.addr).await?;
            TlsConnector::from(Arc::new(config))
                .connect(ServerName::try_from("localhost").expect("name"), tcp)
                .await
        }

        /// A connection over plain TCP, or over TLS (HTTP/1.1) when `tls_on`.
        async fn connect(&self, tls_on: bool) -> Box<dyn AsyncReadWrite> {
            #[cfg(feature = "dev-certs")]
            if tls_on {
                return Box::new(self.tls_connect(&[b"http/1.1"]).await.expect("handshake"));
            }
            assert!(!tls_on, "HTTPS tests need the dev-certs feature");
            Box::new(TcpStream::connect(self.addr).await.expect("connect"))
        }

        fn stop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
        }
    }

    /// Reads until the peer closes (or 5 s pass); `Err` when the connection was reset.
    async fn read_to_close<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "not closed"))??;
        Ok(out)
    }

    /// `serve_with_peers` makes each connection's service from its peer, once per connection,
    /// and its requests carry no `ConnectInfo`.
    #[tokio::test]
    async fn serve_with_peers_hands_each_connection_its_peer_and_adds_no_connect_info() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let made = Arc::new(std::sync::Mutex::new(Vec::new()));
        let for_peer = {
            let made = Arc::clone(&made);
            move |peer: SocketAddr| {
                made.lock().expect("lock").push(peer);
                Router::new().route(
                    "/peer",
                    get(move |request: axum::extract::Request| async move {
                        let recorded = request.extensions().get::<ConnectInfo<SocketAddr>>();
                        format!("{peer} {}", recorded.is_some())
                    }),
                )
            }
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(serve_with_peers(
            listener,
            for_peer,
            ServeOptions::default(),
            async {
                let _ = stopped.await;
            },
        ));
        for _ in 0..2 {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            let local = tcp.local_addr().expect("local");
            // Two requests on the connection: one service for both.
            tcp.write_all(
                b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n\
                  GET /peer HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .await
            .expect("write");
            let answer =
                String::from_utf8(read_to_close(&mut tcp).await.expect("read")).expect("utf-8");
            assert_eq!(
                answer.matches(&format!("{local} false")).count(),
                2,
                "{answer}"
            );
        }
        assert_eq!(
            made.lock().expect("lock").len(),
            2,
            "one service per connection"
        );
        let _ = stop.send(());
        done.await.expect("served");
    }

    #[cfg(feature = "dev-certs")]
    #[tokio::test]
    async fn https_serves_http1_and_http2_as_negotiated_with_the_peer_address() {
        let server = start(true, Duration::from_secs(5), SHORT).await;

        let tls = server.tls_connect(&[b"http/1.1"]).await.expect("handshake");
        let local = tls.get_ref().0.local_addr().expect("local");
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("http1");
        tokio::spawn(conn);
        let response = send
            .send_request(
                http::Request::get("/peer")
                    .header("host", "localhost")
                    .body(Full::<bytes::Bytes>::default())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_11);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, local.to_string());

        let tls = server
            .tls_connect(&[b"h2", b"http/1.1"])
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("http2");
        tokio::spawn(conn);
        let response = send
            .send_request(
                http::Request::get("https://localhost/peer")
                    .body(Full::<bytes::Bytes>::default())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
    }

    #[cfg(feature = "dev-certs")]
    #[tokio::test]
    async fn plain_http_on_the_tls_port_gets_no_http_answer() {
        let server = start(true, Duration::from_secs(5), SHORT).await;
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        tcp.write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        // Closed (perhaps after a TLS alert, perhaps reset), never an HTTP response.
        if let Ok(bytes) = read_to_close(&mut tcp).await {
            assert!(!bytes.starts_with(b"HTTP/"), "{bytes:?}");
        }
    }

    #[cfg(feature = "dev-certs")]
    #[tokio::test]
    async fn a_client_that_never_finishes_the_handshake_is_cut() {
        let server = start(true, SHORT, SHORT).await;
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        let started = std::time::Instant::now();
        let _ = read_to_close(&mut tcp).await;
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[cfg(feature = "dev-certs")]
    #[tokio::test]
    async fn a_client_silent_after_the_handshake_is_cut_on_http1_and_http2() {
        let server = start(true, SHORT, SHORT).await;
        for alpn in [&b"http/1.1"[..], b"h2"] {
            let mut tls = server.tls_connect(&[alpn]).await.expect("handshake");
            let started = std::time::Instant::now();
            let _ = read_to_close(&mut tls).await;
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{}",
                String::from_utf8_lossy(alpn)
            );
        }
    }

    /// Reads one whole response of `Content-Length` framing from `stream`.
    async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .expect("an answer in time")
                .expect("read");
            assert!(n > 0, "closed before the answer: {got:?}");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return text;
                }
            }
        }
    }

    #[tokio::test]
    async fn a_kept_alive_connection_waiting_for_its_next_head_is_cut_in_time() {
        let server = start(false, SHORT, SHORT).await;
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        tcp.write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        assert!(read_response(&mut tcp).await.starts_with("HTTP/1.1 200"));
        let answered = std::time::Instant::now();
        let rest = read_to_close(&mut tcp).await.unwrap_or_default();
        assert!(rest.is_empty(), "{rest:?}");
        let idle = answered.elapsed();
        assert!(idle >= SHORT / 2, "cut after {idle:?}");
        assert!(idle < Duration::from_secs(3), "cut after {idle:?}");
    }

    /// Found in review: any request with an `Upgrade:` header (and no 101 answered) switched the
    /// head and idle timers off for the rest of the connection.
    #[tokio::test]
    async fn an_upgrade_header_without_a_101_leaves_the_timers_on() {
        let server = start(false, SHORT, SHORT).await;
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        tcp.write_all(
            b"GET /peer HTTP/1.1\r\nHost: localhost\r\nUpgrade: anything\r\nConnection: upgrade\r\n\r\n",
        )
        .await
        .expect("write");
        assert!(read_response(&mut tcp).await.starts_with("HTTP/1.1 200"));
        // The next request is still checked...
        tcp.write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        assert!(read_response(&mut tcp).await.starts_with("HTTP/1.1 200"));
        // ...and the idle connection is still cut.
        let answered = std::time::Instant::now();
        let rest = read_to_close(&mut tcp).await.expect("closed by the server");
        assert!(rest.is_empty(), "{rest:?}");
        assert!(answered.elapsed() < Duration::from_secs(3));
    }

    /// Found in review: an HTTP/2 connection (prior knowledge) that answered pings was never
    /// cut. With no stream open for the idle timeout it is closed, pings or not.
    #[tokio::test]
    async fn an_idle_http2_connection_is_closed_even_while_it_pings() {
        let idle = Duration::from_millis(600);
        let server = start_with(
            false,
            ServeOptions {
                idle_timeout: idle,
                ..ServeOptions::default()
            },
        )
        .await;
        let tcp = TcpStream::connect(server.addr).await.expect("connect");
        let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_millis(100))
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(tcp))
            .await
            .expect("http2");
        let conn = tokio::spawn(conn);
        let response = send
            .send_request(
                http::Request::get("http://localhost/peer")
                    .body(Full::<bytes::Bytes>::default())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        drop(response);
        let answered = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), conn)
            .await
            .expect("the server closes the idle connection")
            .expect("task")
            .expect("a clean close (GOAWAY)");
        let lasted = answered.elapsed();
        assert!(
            lasted >= idle / 2 && lasted < idle * 4,
            "closed after {lasted:?}"
        );
    }

    /// Past a cap a new connection is closed at once; the ones open are not disturbed, and a
    /// closed one frees its place.
    #[tokio::test]
    async fn connections_past_the_per_client_cap_are_closed_at_once() {
        let server = start_with(
            false,
            ServeOptions {
                limits: ConnectionLimits {
                    max_connections_per_ip: 2,
                    ..ConnectionLimits::default()
                },
                ..ServeOptions::default()
            },
        )
        .await;
        let mut first = TcpStream::connect(server.addr).await.expect("connect");
        let second = TcpStream::connect(server.addr).await.expect("connect");
        // Give the accept loop both before the third.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(server.addr).await.expect("connect");
        let started = std::time::Instant::now();
        let _ = third
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let closed = read_to_close(&mut third).await.unwrap_or_default();
        assert!(closed.is_empty(), "no answer past the cap: {closed:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        // The open ones are served.
        first
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        assert!(read_response(&mut first).await.starts_with("HTTP/1.1 200"));
        // A closed connection frees its place.
        drop(second);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let mut again = TcpStream::connect(server.addr).await.expect("connect");
            let _ = again
                .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let answer = read_to_close(&mut again).await.unwrap_or_default();
            if answer.starts_with(b"HTTP/1.1 200") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the place was not freed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_request_slower_than_the_head_timeout_is_still_answered() {
        let server = start(false, SHORT, SHORT).await;
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        // Twice on one connection: the timer of the second head starts after the first answer.
        for _ in 0..2 {
            tcp.write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await
                .expect("write");
            let answer = read_response(&mut tcp).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.ends_with("late"), "{answer}");
        }
    }

    /// Sends the headers of a POST and half its body; the request is in flight.
    async fn start_slow_post<S: AsyncWrite + Unpin>(stream: &mut S) {
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n12345")
            .await
            .expect("write");
        stream.flush().await.expect("flush");
    }

    #[tokio::test]
    async fn shutdown_lets_a_request_in_flight_finish_then_returns() {
        for tls_on in TLS_MODES {
            let mut server = start(tls_on, Duration::from_secs(5), Duration::from_secs(5)).await;
            let mut stream = server.connect(tls_on).await;
            start_slow_post(&mut stream).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            server.stop();
            tokio::time::sleep(Duration::from_millis(100)).await;
            // No new connections.
            assert!(
                TcpStream::connect(server.addr).await.is_err(),
                "still accepting"
            );
            stream.write_all(b"67890").await.expect("rest of the body");
            let response = read_to_close(&mut stream).await.expect("response");
            let text = String::from_utf8_lossy(&response);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            assert!(text.ends_with("\r\n\r\n10"), "{text}");
            tokio::time::timeout(Duration::from_secs(2), &mut server.done)
                .await
                .expect("serve returned")
                .expect("no panic");
        }
    }

    #[tokio::test]
    async fn shutdown_gives_up_on_a_request_that_never_finishes() {
        let mut server = start(false, Duration::from_secs(5), SHORT).await;
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        start_slow_post(&mut tcp).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.stop();
        tokio::time::timeout(Duration::from_secs(2), &mut server.done)
            .await
            .expect("serve returned after the shutdown timeout")
            .expect("no panic");
    }

    trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin + Send {}
    impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncReadWrite for T {}

    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn the_first_bytes_deadline_only_limits_the_first_bytes() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded = FirstBytesDeadline::new(server, 3, tokio::time::sleep(SHORT));
        client.write_all(b"ab").await.expect("write");
        let mut buf = [0u8; 8];
        assert_eq!(guarded.read(&mut buf).await.expect("read"), 2);
        let err = guarded.read(&mut buf).await.expect_err("deadline");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded = FirstBytesDeadline::new(server, 3, tokio::time::sleep(SHORT));
        client.write_all(b"abc").await.expect("write");
        assert_eq!(guarded.read(&mut buf).await.expect("read"), 3);
        tokio::time::sleep(SHORT * 2).await;
        client.write_all(b"d").await.expect("write");
        assert_eq!(
            guarded.read(&mut buf).await.expect("late bytes are fine"),
            1
        );
    }

    #[tokio::test]
    async fn a_refused_pipelined_head_is_answered_after_the_requests_before_it() {
        for tls_on in TLS_MODES {
            let server = start(tls_on, Duration::from_secs(5), Duration::from_secs(1)).await;
            let requests = concat!(
                "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
                "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n",
                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            );
            let mut stream = server.connect(tls_on).await;
            stream.write_all(requests.as_bytes()).await.expect("write");
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            let answer = String::from_utf8_lossy(&answer);
            let (first, second) = answer.split_once("\r\n\r\n5").expect(&answer);
            assert!(first.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(second.starts_with("HTTP/1.1 400"), "{answer}");
            assert!(
                second.ends_with(
                    r#"{"detail":"Request has both Content-Length and Transfer-Encoding"}"#
                ),
                "{answer}"
            );
        }
    }

    // ---- Protocol detection, readiness, shutdown ------------------------------------------

    /// A client stream to `addr` whose first `trickled` bytes reach the server one at a time,
    /// `gap` apart; the rest, and the server's answers, pass as they come.
    async fn trickled(addr: SocketAddr, trickled: usize, gap: Duration) -> tokio::io::DuplexStream {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let (client, proxy) = tokio::io::duplex(64 * 1024);
        let (mut from_client, mut to_client) = tokio::io::split(proxy);
        let (mut from_server, mut to_server) = tcp.into_split();
        tokio::spawn(async move {
            let mut sent = 0;
            let mut buf = [0u8; 4096];
            loop {
                let n = match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut at = 0;
                while at < n && sent < trickled {
                    tokio::time::sleep(gap).await;
                    if to_server.write_all(&buf[at..=at]).await.is_err() {
                        return;
                    }
                    at += 1;
                    sent += 1;
                }
                if to_server.write_all(&buf[at..n]).await.is_err() {
                    return;
                }
            }
            let _ = to_server.shutdown().await;
        });
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
            let _ = to_client.shutdown().await;
        });
        client
    }

    /// An HTTP/2 client (prior knowledge) on `io`: its request sender and connection task.
    async fn http2_client<T>(
        io: T,
    ) -> (
        hyper::client::conn::http2::SendRequest<Full<bytes::Bytes>>,
        tokio::task::JoinHandle<hyper::Result<()>>,
    )
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(io))
            .await
            .expect("http2 handshake");
        (send, tokio::spawn(conn))
    }

    fn request_to(path: &str) -> http::Request<Full<bytes::Bytes>> {
        http::Request::get(format!("http://localhost{path}"))
            .body(Full::default())
            .expect("request")
    }

    /// The HTTP/2 preface sent a byte at a time (10 ms apart) is HTTP/2: the framing guard holds
    /// it back until whole, then steps aside, and the `auto` builder finds the whole preface.
    #[tokio::test]
    async fn a_trickled_http2_preface_is_served_as_http2() {
        let server = start(false, Duration::from_secs(2), SHORT).await;
        let stream = trickled(server.addr, H2_PREFACE_LEN, Duration::from_millis(10)).await;
        let (mut send, _conn) = http2_client(stream).await;
        let response = send
            .send_request(request_to("/peer"))
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
    }

    const H2_PREFACE_LEN: usize = framing::H2_PREFACE.len();

    /// A client that sends nothing, a part of the preface, or trickles the preface slower than
    /// the header-read timeout allows, is cut at that timeout, without an answer.
    #[tokio::test]
    async fn a_partial_http2_preface_is_cut_at_the_header_read_timeout() {
        let server = start(false, SHORT, Duration::from_secs(5)).await;
        for sent in [0, 1, 10, H2_PREFACE_LEN - 1] {
            let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
            tcp.write_all(&framing::H2_PREFACE[..sent])
                .await
                .expect("write");
            let started = std::time::Instant::now();
            let answer = read_to_close(&mut tcp).await.unwrap_or_default();
            let lasted = started.elapsed();
            assert!(answer.is_empty(), "{sent} bytes: {answer:?}");
            assert!(
                lasted >= SHORT / 2 && lasted < Duration::from_secs(3),
                "{sent} bytes: cut after {lasted:?}"
            );
        }
        // The whole preface, 50 ms a byte: the timer runs from the first read, not per byte.
        let mut slow = trickled(server.addr, H2_PREFACE_LEN, Duration::from_millis(50)).await;
        slow.write_all(framing::H2_PREFACE).await.expect("write");
        let started = std::time::Instant::now();
        let answer = read_to_close(&mut slow).await.unwrap_or_default();
        assert!(answer.is_empty(), "{answer:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    /// Bytes that start like the preface and depart from it, at any byte, trickled or whole,
    /// with or without the end of the stream after them: HTTP/1.1 for the guard and for the
    /// `auto` builder alike, and the guard checks the head (its own JSON 400 for a malformed
    /// one, hyper's 405 for a valid `PRI` request).
    #[tokio::test]
    async fn the_guard_and_the_auto_builder_agree_on_every_prefix_of_the_preface() {
        let server = start(false, Duration::from_secs(5), Duration::from_secs(5)).await;
        let malformed = r#"{"detail":"Malformed request"}"#;
        for k in 0..H2_PREFACE_LEN {
            let departing = [&framing::H2_PREFACE[..k], b"X\r\n\r\n"].concat();
            for trickle in [false, true] {
                let mut stream = trickled(
                    server.addr,
                    if trickle { departing.len() } else { 0 },
                    Duration::from_millis(1),
                )
                .await;
                stream.write_all(&departing).await.expect("write");
                let answer =
                    String::from_utf8_lossy(&read_to_close(&mut stream).await.expect("read"))
                        .into_owned();
                assert!(answer.starts_with("HTTP/1.1 400"), "{k}: {answer}");
                assert!(answer.ends_with(malformed), "{k}: {answer}");
            }
            // The end of the stream after a part of the preface: an HTTP/1.1 head, checked
            // (a whole `PRI * HTTP/2.0` head is refused), or a partial one hyper closes on.
            let mut stream = TcpStream::connect(server.addr).await.expect("connect");
            stream
                .write_all(&framing::H2_PREFACE[..k])
                .await
                .expect("write");
            stream.shutdown().await.expect("shutdown");
            let answer = String::from_utf8_lossy(&read_to_close(&mut stream).await.expect("read"))
                .into_owned();
            if k >= 18 {
                assert!(answer.ends_with(malformed), "{k}: {answer}");
            } else {
                assert!(
                    answer.is_empty() || answer.starts_with("HTTP/1.1 "),
                    "{k}: {answer}"
                );
            }
        }
        let mut stream = trickled(server.addr, 64, Duration::from_millis(1)).await;
        stream
            .write_all(b"PRI /peer HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let answer = read_to_close(&mut stream).await.expect("read");
        assert!(answer.starts_with(b"HTTP/1.1 405"), "{answer:?}");
    }

    /// A gate that keeps [`Gated`] services unready until opened.
    #[derive(Default)]
    struct Gate {
        open: std::sync::atomic::AtomicBool,
        waiting: std::sync::Mutex<Vec<std::task::Waker>>,
    }

    impl Gate {
        fn open(&self) {
            self.open.store(true, std::sync::atomic::Ordering::SeqCst);
            for waker in self.waiting.lock().expect("lock").drain(..) {
                waker.wake();
            }
        }
    }

    /// The test router behind a [`Gate`]: not ready until the gate opens, and answering 500 to
    /// a call that was not preceded by a ready `poll_ready`.
    #[derive(Clone)]
    struct Gated {
        router: Router,
        gate: Arc<Gate>,
        readied: bool,
    }

    impl Service<Request<Body>> for Gated {
        type Response = Response;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            let open = || self.gate.open.load(std::sync::atomic::Ordering::SeqCst);
            if !open() {
                self.gate
                    .waiting
                    .lock()
                    .expect("lock")
                    .push(cx.waker().clone());
                if !open() {
                    return Poll::Pending;
                }
            }
            self.readied = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<Body>) -> Self::Future {
            if !std::mem::take(&mut self.readied) {
                let refused = axum::response::IntoResponse::into_response(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                );
                return Box::pin(async move { Ok(refused) });
            }
            Box::pin(self.router.call(request))
        }
    }

    /// The service's readiness is awaited before each call (so a concurrency limit or a load
    /// shedder in `poll_ready` takes effect), over HTTP/1.1 and HTTP/2.
    #[tokio::test]
    async fn a_service_not_ready_at_first_is_called_once_ready() {
        for http2 in [false, true] {
            let gate = Arc::new(Gate::default());
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let service = Gated {
                router: app(),
                gate: Arc::clone(&gate),
                readied: false,
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let done = tokio::spawn(serve(listener, service, ServeOptions::default(), async {
                let _ = stopped.await;
            }));
            let opener = {
                let gate = Arc::clone(&gate);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    gate.open();
                })
            };
            let started = std::time::Instant::now();
            if http2 {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                let (mut send, _conn) = http2_client(tcp).await;
                let response = send
                    .send_request(request_to("/peer"))
                    .await
                    .expect("response");
                assert_eq!(response.status(), 200);
            } else {
                let mut tcp = TcpStream::connect(addr).await.expect("connect");
                tcp.write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    .await
                    .expect("write");
                let answer = read_response(&mut tcp).await;
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            }
            let waited = started.elapsed();
            assert!(
                waited >= Duration::from_millis(250),
                "answered after {waited:?}, before the service was ready"
            );
            opener.await.expect("opener");
            let _ = stop.send(());
            done.await.expect("served");
        }
    }

    /// At shutdown a kept-alive connection with no request in flight is closed at once.
    #[tokio::test]
    async fn shutdown_closes_an_idle_kept_alive_connection_at_once() {
        let mut server = start(false, Duration::from_secs(5), Duration::from_secs(5)).await;
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        tcp.write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        assert!(read_response(&mut tcp).await.starts_with("HTTP/1.1 200"));
        let started = std::time::Instant::now();
        server.stop();
        let rest = read_to_close(&mut tcp).await.unwrap_or_default();
        assert!(rest.is_empty(), "{rest:?}");
        tokio::time::timeout(Duration::from_secs(1), &mut server.done)
            .await
            .expect("serve returned at once")
            .expect("no panic");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    /// At shutdown an HTTP/2 connection gets `GOAWAY`; its request in flight is answered.
    #[tokio::test]
    async fn shutdown_lets_an_http2_request_in_flight_finish() {
        let mut server = start(false, Duration::from_secs(5), Duration::from_secs(5)).await;
        let tcp = TcpStream::connect(server.addr).await.expect("connect");
        let (mut send, conn) = http2_client(tcp).await;
        let slow = tokio::spawn(send.send_request(request_to("/slow")));
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.stop();
        let response = slow.await.expect("task").expect("response");
        assert_eq!(response.status(), 200);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&body[..], b"late");
        tokio::time::timeout(Duration::from_secs(2), conn)
            .await
            .expect("closed")
            .expect("task")
            .expect("a clean close (GOAWAY)");
        tokio::time::timeout(Duration::from_secs(2), &mut server.done)
            .await
            .expect("serve returned")
            .expect("no panic");
    }
}
