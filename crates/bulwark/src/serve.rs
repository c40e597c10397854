//! Serving a router on a socket, hardened against slow and idle clients.
//!
//! **Threat model.** A client that opens connections and sends headers a byte at a time
//! (slowloris), or that open connections and send nothing at all, can hold a server's sockets
//! forever. [`serve`] cuts any connection that sends no request, or whose HTTP/1.1 request
//! headers take longer than [`ServeOptions::header_read_timeout`], speaks HTTP/1.1 and HTTP/2,
//! records the socket peer as `ConnectInfo<SocketAddr>` for client-identity code, and drains
//! in-flight requests on shutdown.
//!
//! **Not covered.** Timeouts for whole requests belong in a tower layer on the router (see
//! `tower_http::timeout`); connection floods from many addresses need a firewall or proxy in
//! front. Once a client has sent the HTTP/2 preface, hyper applies no header timeout to its
//! streams; only keep-alive pings detect a dead peer.

use std::{convert::Infallible, future::Future, net::SocketAddr, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

/// Socket-level limits.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a client may take to send a request's headers (and, on a kept-alive connection,
    /// to start the next request) before the connection is closed.
    pub header_read_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains connections.
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
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let graceful = GracefulShutdown::new();
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
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req.map(axum::body::Body::new)
            })
            .map_err(|e: Infallible| match e {});
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let header_read_timeout = options.header_read_timeout;
        tokio::spawn(async move {
            // hyper's header-read timer only starts once the protocol is known; a client that
            // sends nothing (or trickles the HTTP/2 preface) would otherwise be held forever.
            if !protocol_known_in_time(&stream, header_read_timeout).await {
                tracing::debug!(%peer, "connection idle before its first request; closed");
                return;
            }
            let conn = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service),
                )
                .into_owned();
            if let Err(err) = watcher.watch(conn).await {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
}

/// The HTTP/2 connection preface, which selects HTTP/2 over HTTP/1.1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits, at most `within`, until the client has sent enough bytes to tell HTTP/1.1 from HTTP/2
/// (a byte that departs from the HTTP/2 preface, or the whole preface). False when the client
/// sent nothing in time, closed, or failed.
async fn protocol_known_in_time(stream: &TcpStream, within: Duration) -> bool {
    let wait = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if n == buf.len() || buf[..n] != H2_PREFACE[..n] => return true,
                // A partial preface: poll again shortly (peek does not wait for more bytes).
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    tokio::time::timeout(within, wait).await.unwrap_or(false)
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
        assert!(!protocol_known_in_time(&server, SHORT).await);
    }

    #[tokio::test]
    async fn one_http1_byte_is_enough() {
        let (mut client, server) = pair().await;
        client.write_all(b"G").await.expect("write");
        assert!(protocol_known_in_time(&server, SHORT).await);
        // Peeking consumed nothing.
        let mut buf = [0u8; 1];
        assert_eq!(server.peek(&mut buf).await.expect("peek"), 1);
    }

    #[tokio::test]
    async fn a_trickled_http2_preface_must_arrive_in_time() {
        let (mut client, server) = pair().await;
        client.write_all(&H2_PREFACE[..10]).await.expect("write");
        assert!(!protocol_known_in_time(&server, SHORT).await);
        client.write_all(&H2_PREFACE[10..]).await.expect("write");
        assert!(protocol_known_in_time(&server, SHORT).await);
    }

    #[tokio::test]
    async fn a_closed_connection_is_not_served() {
        let (client, server) = pair().await;
        drop(client);
        assert!(!protocol_known_in_time(&server, SHORT).await);
    }
}
