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

use std::{
    convert::Infallible, future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration,
};
#[cfg(feature = "tls")]
use std::{
    io,
    task::{Context, Poll},
};

use axum::{body::Body, extract::ConnectInfo, response::Response};
use http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
#[cfg(feature = "tls")]
use tokio::{io::ReadBuf, time::Sleep};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::watch,
};
#[cfg(feature = "tls")]
use tokio_rustls::TlsAcceptor;
use tower::Service;

mod framing;
mod limits;

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

/// The HTTP configurations, one per protocol.
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

/// The most an HTTP/1.1 request line and headers may take: larger ones answer 431 (hyper's
/// default, about 400 KiB, lets a client make the server buffer far more than any real request
/// needs).
const MAX_HEADER_BYTES: usize = 32 * 1024;

impl Protocols {
    fn new() -> Self {
        let keep_alive = Some(Duration::from_secs(30));
        let mut http1 = hyper::server::conn::http1::Builder::new();
        // Half-closed connections are served: a client may send its last request and shut its
        // side, and when the framing guard refuses a pipelined head it ends the stream hyper
        // reads, which must not cut the answers to the requests before it.
        http1
            .half_close(true)
            .timer(TokioTimer::new())
            .max_buf_size(MAX_HEADER_BYTES)
            // The framing guard times request heads instead (`FramingGuard::with_timeouts`):
            // hyper makes and drops a timer for every request.
            .header_read_timeout(None);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(keep_alive);
        Self { http1, http2 }
    }
}

/// What [`serve`] serves: a cloneable service of axum requests that never fails (an axum
/// `Router`, with or without layers around it). It is cloned for each request, so a clone
/// should be cheap (a few reference counts). It must always be ready, as a `Router` is and
/// layers that only pass readiness through are: [`serve`] calls a fresh clone without
/// `poll_ready` (axum's own `serve` polls it first, at the cost of one more future per
/// request), so a layer that applies backpressure there (a concurrency limit, a load shedder)
/// does not take effect; bound concurrency inside the service's future instead.
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

/// The application as a hyper service, with the socket peer as `ConnectInfo` (unless the
/// service took the peer itself, [`serve_with_peers`]).
#[derive(Clone)]
struct PeerService<S> {
    service: S,
    peer: Option<SocketAddr>,
}

impl<S: AppService> hyper::service::Service<http::Request<hyper::body::Incoming>>
    for PeerService<S>
{
    type Response = Response;
    type Error = Infallible;
    type Future = S::Future;

    fn call(&self, mut req: http::Request<hyper::body::Incoming>) -> Self::Future {
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        }
        // An `AppService` is always ready (see its documentation).
        self.service.clone().call(req.map(Body::new))
    }
}

impl<S: AppService> Connection<S> {
    async fn serve_plain(self, stream: TcpStream) {
        // The header-read timer (the framing guard's) only starts once the protocol is known; a
        // client that sends nothing (or trickles the HTTP/2 preface) would otherwise be held
        // forever.
        let Some(protocol) = protocol_in_time(&stream, self.timeouts.head).await else {
            tracing::debug!(peer = %self.peer, "connection idle before its first request; closed");
            return;
        };
        match protocol {
            Protocol::Http2 => self.serve_http2(stream).await,
            Protocol::Http1 => self.serve_http1(stream, false).await,
        }
    }

    /// HTTP/1.1, its request heads checked by [`FramingGuard`] first (`https`: the answers it
    /// writes itself carry `Strict-Transport-Security`).
    async fn serve_http1<T>(mut self, stream: T, https: bool)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let stream =
            FramingGuard::with_timeouts(stream, MAX_HEADER_BYTES, https, Some(self.timeouts))
                .holding(self.permit.take());
        let conn = self
            .protocols
            .http1
            .serve_connection(TokioIo::new(stream), self.service())
            .with_upgrades();
        let result = drain_on_shutdown(conn, self.drain.clone(), std::future::pending(), |c| {
            c.graceful_shutdown()
        })
        .await;
        self.finish(result);
    }

    /// HTTP/2: closed (with `GOAWAY`, after its streams finish) once no request has been in
    /// flight for the idle timeout, whatever pings it answers or sends.
    async fn serve_http2<T>(self, stream: T)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (in_flight, watch_in_flight) = watch::channel(0usize);
        let service = InFlightService {
            service: self.service(),
            in_flight: Arc::new(in_flight),
        };
        let conn = self
            .protocols
            .http2
            .serve_connection(TokioIo::new(stream), service);
        let result = drain_on_shutdown(
            conn,
            self.drain.clone(),
            idle_for(watch_in_flight, self.timeouts.idle),
            |c| c.graceful_shutdown(),
        )
        .await;
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
            self.serve_http1(stream, true).await;
        }
    }

    fn service(&self) -> PeerService<S> {
        PeerService {
            service: self.service.clone(),
            peer: self.connect_info.then_some(self.peer),
        }
    }

    fn finish<E: std::fmt::Display>(&self, result: Result<(), E>) {
        if let Err(err) = result {
            tracing::debug!(error = %err, peer = %self.peer, "connection ended with an error");
        }
    }
}

/// Runs `conn` to its end; when `drain` turns true (or its sender is gone), or `close` completes,
/// first asks it to finish the request in flight and close (`graceful_shutdown`).
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

/// Completes once no request has been in flight (`in_flight` at 0) for `idle` in a row.
async fn idle_for(mut in_flight: watch::Receiver<usize>, idle: Duration) {
    loop {
        if in_flight.wait_for(|n| *n == 0).await.is_err() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(idle) => {
                if *in_flight.borrow() == 0 {
                    return;
                }
            }
            changed = in_flight.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// An HTTP/2 connection's service, counting its requests in flight (from the call until the
/// response head is ready) for [`idle_for`].
#[derive(Clone)]
struct InFlightService<S> {
    service: PeerService<S>,
    in_flight: Arc<watch::Sender<usize>>,
}

/// One request in flight, counted until dropped.
struct InFlightRequest(Arc<watch::Sender<usize>>);

impl Drop for InFlightRequest {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl<S: AppService> hyper::service::Service<http::Request<hyper::body::Incoming>>
    for InFlightService<S>
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        self.in_flight.send_modify(|n| *n += 1);
        let counted = InFlightRequest(Arc::clone(&self.in_flight));
        let response = self.service.call(req);
        Box::pin(async move {
            let response = response.await;
            drop(counted);
            response
        })
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

/// The HTTP/2 connection preface, which selects HTTP/2 over HTTP/1.1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a plain-TCP client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// Waits, at most `within`, until the client has sent enough bytes to tell HTTP/1.1 from HTTP/2
/// (a byte that departs from the HTTP/2 preface, or the whole preface). `None` when the client
/// sent nothing in time, closed, or failed.
async fn protocol_in_time(stream: &TcpStream, within: Duration) -> Option<Protocol> {
    let wait = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) if buf[..n] != H2_PREFACE[..n] => return Some(Protocol::Http1),
                Ok(n) if n == buf.len() => return Some(Protocol::Http2),
                // A partial preface: poll again shortly (peek does not wait for more bytes).
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    tokio::time::timeout(within, wait).await.ok().flatten()
}

/// Hooks for the `framing` fuzz target (`fuzz/fuzz_targets/framing.rs`), which serves the same
/// bytes through hyper with and without the framing guard and compares the requests. Not an API:
/// hidden, only built with the `fuzzing` feature, and free to change with the fuzz target.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    use tokio::io::{AsyncRead, AsyncWrite};

    use super::{FramingGuard, MAX_HEADER_BYTES, Protocols};

    /// `stream` behind the framing guard as [`super::serve`] puts it on a plain-HTTP connection
    /// (32 KiB heads, no `Strict-Transport-Security` on its answers), without its head timers
    /// (a fuzz run has no clock to race) and without a connection permit.
    pub fn framing_guard<T: AsyncRead + AsyncWrite + Unpin>(
        stream: T,
    ) -> impl AsyncRead + AsyncWrite + Unpin {
        FramingGuard::with_timeouts(stream, MAX_HEADER_BYTES, false, None)
    }

    /// The HTTP/1.1 connection builder [`super::serve`] uses (half-close, 32 KiB buffer, hyper's
    /// header-read timer off).
    pub fn http1_builder() -> hyper::server::conn::http1::Builder {
        Protocols::new().http1
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A connected pair: (client, server side).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (client, server)
    }

    const SHORT: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn a_client_that_sends_nothing_is_not_waited_for() {
        let (_client, server) = pair().await;
        assert_eq!(protocol_in_time(&server, SHORT).await, None);
    }

    #[tokio::test]
    async fn one_http1_byte_is_enough() {
        let (mut client, server) = pair().await;
        client.write_all(b"G").await.expect("write");
        assert_eq!(
            protocol_in_time(&server, SHORT).await,
            Some(Protocol::Http1)
        );
        // Peeking consumed nothing.
        let mut buf = [0u8; 1];
        assert_eq!(server.peek(&mut buf).await.expect("peek"), 1);
    }

    #[tokio::test]
    async fn a_trickled_http2_preface_must_arrive_in_time() {
        let (mut client, server) = pair().await;
        client.write_all(&H2_PREFACE[..10]).await.expect("write");
        assert_eq!(protocol_in_time(&server, SHORT).await, None);
        client.write_all(&H2_PREFACE[10..]).await.expect("write");
        assert_eq!(
            protocol_in_time(&server, SHORT).await,
            Some(Protocol::Http2)
        );
    }

    #[tokio::test]
    async fn a_closed_connection_is_not_served() {
        let (client, server) = pair().await;
        drop(client);
        assert_eq!(protocol_in_time(&server, SHORT).await, None);
    }

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
}
