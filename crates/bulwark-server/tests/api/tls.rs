//! HTTPS, the HTTP→HTTPS redirect, certificate reload on SIGHUP and graceful shutdown on SIGTERM,
//! against real `bulwark serve` processes.
//!
//! Certificates are made here with rcgen; the client is rustls (aws-lc-rs, the server's provider)
//! under hyper, so that each test sees the negotiated protocol and the certificate served.
//! TLS 1.1 is offered with `openssl s_client` when the machine has it: a rustls client cannot
//! speak TLS 1.1 at all, so without openssl only the TLS 1.2 / 1.3 half is checked here (the
//! library's unit tests pin the server's version list).

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use http::{HeaderMap, Request, StatusCode, Version, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme, SupportedProtocolVersion,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

use crate::helpers::{Backend, DatabaseGuard, client, fresh_database_url};
use crate::process::{self, KillOnDrop, free_port};

const HSTS: &str = "max-age=63072000; includeSubDomains";

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// A certificate for localhost and 127.0.0.1 with its key, written as PEM files.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

fn pair(dir: &Path, name: &str) -> Pair {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("rcgen");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, generated.cert.pem()).expect("write cert");
    std::fs::write(&key, generated.signing_key.serialize_pem()).expect("write key");
    Pair {
        cert,
        key,
        der: generated.cert.der().clone(),
    }
}

/// Replaces `to` with a copy of `from` the way a renewal should: a new file renamed over the
/// old one.
fn replace_file(from: &Path, to: &Path) {
    let staging = to.with_extension("new");
    std::fs::copy(from, &staging).expect("copy");
    std::fs::rename(&staging, to).expect("rename");
}

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

/// A `bulwark serve` child process, killed when dropped.
struct Server {
    child: KillOnDrop,
    port: u16,
    dir: tempfile::TempDir,
    _db: DatabaseGuard,
}

/// Starts `bulwark serve --bind 127.0.0.1:<port> <args>` in `dir` (its data folder) with a new
/// master secret, its output going to `server.log` there.
fn spawn_serve(dir: &Path, port: u16, database_url: &str, args: &[String]) -> KillOnDrop {
    let secret = bulwark::secret::random_token(32);
    let mut command = process::serve_command(dir, port, database_url, &secret, None);
    command.args(args);
    process::spawn_logging_all(&mut command, &dir.join("server.log"))
}

impl Server {
    /// Starts `bulwark serve --bind 127.0.0.1:<free port> <args>` and waits until it listens.
    /// `args` may name files in `dir` (certificates made before the start).
    async fn start(dir: tempfile::TempDir, args: &[String]) -> Self {
        let (database_url, db) = fresh_database_url(&Backend::Sqlite).await;
        let port = free_port();
        let child = spawn_serve(dir.path(), port, &database_url, args);
        let mut server = Self {
            child,
            port,
            dir,
            _db: db,
        };
        server.wait_listening().await;
        server
    }

    fn log(&self) -> String {
        process::read_log(&self.dir.path().join("server.log"))
    }

    /// Waits for the "listening" log line (written once the sockets are bound, the first admin
    /// exists and the signal handlers are installed), then for the port to accept.
    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited with {status}:\n{}", self.log());
            }
            if self.log().contains("listening")
                && TcpStream::connect(("127.0.0.1", self.port)).await.is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not listening after 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit by itself, at most `within`.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// Runs a `bulwark serve` that is expected to fail at start-up; returns its exit status and
/// output.
async fn start_fails(dir: &Path, args: &[String]) -> (ExitStatus, String) {
    let (database_url, _db) = fresh_database_url(&Backend::Sqlite).await;
    let mut child = spawn_serve(dir, free_port(), &database_url, args);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        // The child is killed when the panic drops it.
        assert!(
            Instant::now() <= deadline,
            "still running:\n{}",
            process::read_log(&dir.join("server.log"))
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    (status, process::read_log(&dir.join("server.log")))
}

fn tls_args(pair: &Pair) -> Vec<String> {
    vec![
        "--tls-cert".to_owned(),
        pair.cert.display().to_string(),
        "--tls-key".to_owned(),
        pair.key.display().to_string(),
    ]
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A rustls client trusting `roots` only, offering `versions` and `alpn`.
fn connector(
    roots: &[&CertificateDer<'static>],
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> TlsConnector {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).expect("root");
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

async fn connect(port: u16, connector: &TlsConnector) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
}

/// The certificate the server presented on `stream`.
fn served_cert(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("certificates")[0]
        .clone()
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An HTTP/1.1 connection over `stream`, kept alive for several requests.
async fn http1(stream: TlsStream<TcpStream>) -> Sender {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    sender
}

struct Answer {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: String,
}

async fn get(sender: &mut Sender, path: &str) -> Answer {
    sender.ready().await.expect("connection ready");
    let response = sender
        .send_request(
            Request::get(path)
                .header(header::HOST, "localhost")
                .body(Full::default())
                .expect("request"),
        )
        .await
        .expect("response");
    answer(response).await
}

async fn answer(response: http::Response<hyper::body::Incoming>) -> Answer {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Reads until the peer closes (at most 10 s).
async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    out
}

/// Accepts any certificate (still checking the handshake signatures), to learn what a server
/// presents before trusting it.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The first SHA-256 fingerprint (32 colon-separated uppercase hex pairs) in `text`.
fn find_fingerprint(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let is_fp = |w: &[u8]| {
        w.iter().enumerate().all(|(i, b)| {
            if i % 3 == 2 {
                *b == b':'
            } else {
                b.is_ascii_digit() || (b'A'..=b'F').contains(b)
            }
        })
    };
    bytes
        .windows(95)
        .find(|w| is_fp(w))
        .map(|w| String::from_utf8_lossy(w).into_owned())
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn https_serves_the_api_over_http1_and_http2_to_a_client_trusting_the_certificate() {
    // Arrange
    let dir = tempfile::tempdir().expect("dir");
    let cert = pair(dir.path(), "server");
    let server = Server::start(dir, &tls_args(&cert)).await;

    // Act: HTTP/1.1
    let stream = connect(server.port, &connector(&[&cert.der], BOTH, &[b"http/1.1"]))
        .await
        .expect("handshake");
    assert_eq!(served_cert(&stream), cert.der);
    let mut sender = http1(stream).await;
    let health = get(&mut sender, "/health").await;

    // Assert
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.version, Version::HTTP_11);
    assert_eq!(
        health.headers.get(header::STRICT_TRANSPORT_SECURITY),
        Some(&http::HeaderValue::from_static(HSTS))
    );
    let csrf = get(&mut sender, "/csrftoken/").await;
    let cookie = csrf
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a CSRF cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Act: HTTP/2, chosen by ALPN
    let stream = connect(
        server.port,
        &connector(&[&cert.der], BOTH, &[b"h2", b"http/1.1"]),
    )
    .await
    .expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    let response = h2
        .send_request(
            Request::get(format!("https://localhost:{}/health", server.port))
                .body(Full::<Bytes>::default())
                .expect("request"),
        )
        .await
        .expect("response");
    let health = answer(response).await;

    // Assert
    assert_eq!(health.status, 200);
    assert_eq!(health.version, Version::HTTP_2);
    assert!(
        health
            .headers
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    );
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_cannot_connect() {
    let dir = tempfile::tempdir().expect("dir");
    let cert = pair(dir.path(), "server");
    let other = pair(dir.path(), "other");
    let server = Server::start(dir, &tls_args(&cert)).await;

    let result = connect(server.port, &connector(&[&other.der], BOTH, &[])).await;

    assert!(result.is_err(), "an untrusted certificate was accepted");
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_no_http_response() {
    let dir = tempfile::tempdir().expect("dir");
    let cert = pair(dir.path(), "server");
    let server = Server::start(dir, &tls_args(&cert)).await;

    let mut tcp = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let bytes = read_to_close(&mut tcp).await;

    // The handshake fails: at most a TLS alert record (type 21), never an HTTP response.
    assert!(!bytes.starts_with(b"HTTP/"), "{bytes:?}");
    assert!(bytes.is_empty() || bytes[0] == 21, "{bytes:?}");
}

#[tokio::test]
async fn hsts_and_secure_cookies_are_absent_without_tls() {
    let server = Server::start(tempfile::tempdir().expect("dir"), &[]).await;
    let client = client(true);

    let health = client
        .get(format!("http://127.0.0.1:{}/health", server.port))
        .send()
        .await
        .expect("request");
    let csrf = client
        .get(format!("http://127.0.0.1:{}/csrftoken/", server.port))
        .send()
        .await
        .expect("request");

    assert_eq!(health.status(), 200);
    assert!(
        !health
            .headers()
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    );
    let cookie = csrf
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a CSRF cookie");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_spoken_and_tls_1_1_is_refused() {
    // Arrange
    let dir = tempfile::tempdir().expect("dir");
    let cert = pair(dir.path(), "server");
    let server = Server::start(dir, &tls_args(&cert)).await;

    // Act / Assert: TLS 1.2 alone and TLS 1.3 alone both complete.
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let stream = connect(server.port, &connector(&[&cert.der], &[version], &[]))
            .await
            .expect("handshake");
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        let mut sender = http1(stream).await;
        assert_eq!(get(&mut sender, "/health").await.status, 200);
    }

    // TLS 1.1 (and 1.0): only OpenSSL can still offer them.
    let s_client = |flag: &str| {
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", server.port),
                flag,
                // OpenSSL 3 refuses TLS 1.1 itself unless the security level is lowered.
                "-cipher",
                "DEFAULT@SECLEVEL=0",
            ])
            .stdin(Stdio::null())
            .output()
    };
    let Ok(control) = s_client("-tls1_2") else {
        eprintln!(
            "openssl is not installed: TLS 1.1 refusal checked only by the library's version list"
        );
        return;
    };
    let control_text = String::from_utf8_lossy(&control.stdout);
    assert!(
        control.status.success() && control_text.contains("TLSv1.2"),
        "openssl could not speak TLS 1.2 to the server (the harness is broken):\n{control_text}{}",
        String::from_utf8_lossy(&control.stderr)
    );
    for flag in ["-tls1_1", "-tls1"] {
        let refused = s_client(flag).expect("openssl runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&refused.stdout),
            String::from_utf8_lossy(&refused.stderr)
        );
        // rustls answers a ClientHello without TLS 1.2 or 1.3 with a fatal alert
        // (handshake_failure): no certificate, no cipher.
        assert!(!refused.status.success(), "{flag} was accepted:\n{text}");
        assert!(text.contains("alert"), "{flag}: no TLS alert:\n{text}");
        assert!(text.contains("no peer certificate available"), "{text}");
        assert!(text.contains("Cipher is (NONE)"), "{text}");
    }
}

#[tokio::test]
async fn self_signed_serves_a_certificate_whose_fingerprint_is_printed() {
    // Arrange
    let server = Server::start(
        tempfile::tempdir().expect("dir"),
        &["--self-signed".to_owned()],
    )
    .await;
    let log = server.log();
    let printed = find_fingerprint(&log).unwrap_or_else(|| panic!("no fingerprint:\n{log}"));
    assert!(!log.contains("PRIVATE KEY"), "{log}");

    // Act: learn the certificate without trusting it, then trust it and connect properly.
    let mut first = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
        .with_no_client_auth();
    first.alpn_protocols = vec![b"http/1.1".to_vec()];
    let stream = connect(server.port, &TlsConnector::from(Arc::new(first)))
        .await
        .expect("handshake");
    let served = served_cert(&stream);
    let pinned = connect(server.port, &connector(&[&served], BOTH, &[b"http/1.1"]))
        .await
        .expect("the certificate is valid for localhost");
    let mut sender = http1(pinned).await;
    let health = get(&mut sender, "/health").await;
    let csrf = get(&mut sender, "/csrftoken/").await;

    // Assert
    assert_eq!(bulwark::tls::sha256_fingerprint(&served), printed);
    assert_eq!(health.status, 200);
    assert!(
        health
            .headers
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    );
    let cookie = csrf
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a CSRF cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn redirect_http_answers_308_to_the_same_path_and_query_on_https() {
    // Arrange
    let dir = tempfile::tempdir().expect("dir");
    let cert = pair(dir.path(), "server");
    let redirect_port = free_port();
    let mut args = tls_args(&cert);
    args.extend([
        "--redirect-http".to_owned(),
        format!("127.0.0.1:{redirect_port}"),
    ]);
    let server = Server::start(dir, &args).await;
    let client = client(false);
    let url = format!("http://127.0.0.1:{redirect_port}/items/?q=a%20b&limit=5");

    // Act
    let by_ip = client.get(&url).send().await.expect("request");
    let by_name = client
        .post(&url)
        .header(header::HOST, format!("LocalHost:{redirect_port}"))
        .body("ignored")
        .send()
        .await
        .expect("request");
    let mut raw = TcpStream::connect(("127.0.0.1", redirect_port))
        .await
        .expect("connect");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: evil.example@bad host\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let garbage = String::from_utf8_lossy(&read_to_close(&mut raw).await).into_owned();

    // Assert
    let location = |r: &reqwest::Response| {
        r.headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(by_ip.status(), 308);
    assert_eq!(
        location(&by_ip).as_deref(),
        Some(&*format!(
            "https://127.0.0.1:{}/items/?q=a%20b&limit=5",
            server.port
        ))
    );
    assert_eq!(by_name.status(), 308);
    assert_eq!(
        location(&by_name).as_deref(),
        Some(&*format!(
            "https://localhost:{}/items/?q=a%20b&limit=5",
            server.port
        ))
    );
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    assert!(
        !garbage.to_ascii_lowercase().contains("location:"),
        "{garbage}"
    );
}

#[tokio::test]
async fn sighup_switches_certificates_while_an_open_connection_keeps_working() {
    // Arrange: serving certificate A from files that B will replace.
    let dir = tempfile::tempdir().expect("dir");
    let a = pair(dir.path(), "a");
    let b = pair(dir.path(), "b");
    let c = pair(dir.path(), "c");
    let served = Pair {
        cert: dir.path().join("served.crt"),
        key: dir.path().join("served.key"),
        der: a.der.clone(),
    };
    replace_file(&a.cert, &served.cert);
    replace_file(&a.key, &served.key);
    let server = Server::start(dir, &tls_args(&served)).await;
    let trusting_a_and_b = connector(&[&a.der, &b.der], BOTH, &[b"http/1.1"]);
    let old = connect(server.port, &trusting_a_and_b)
        .await
        .expect("handshake");
    assert_eq!(served_cert(&old), a.der);
    let mut kept_alive = http1(old).await;
    assert_eq!(get(&mut kept_alive, "/health").await.status, 200);

    // Act: the renewal, then SIGHUP.
    replace_file(&b.cert, &served.cert);
    replace_file(&b.key, &served.key);
    server.signal("HUP");

    // Assert: new connections get B...
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stream = connect(server.port, &trusting_a_and_b)
            .await
            .expect("handshake");
        if served_cert(&stream) == b.der {
            let mut fresh = http1(stream).await;
            assert_eq!(get(&mut fresh, "/health").await.status, 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still serving A:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...while the connection opened before the reload still answers.
    let again = get(&mut kept_alive, "/health").await;
    assert_eq!(again.status, 200);
    assert!(server.log().contains("TLS certificate reloaded"));

    // A broken renewal (C's certificate with B's key) is refused and B keeps serving.
    replace_file(&c.cert, &served.cert);
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("reload failed") {
        assert!(
            Instant::now() < deadline,
            "no reload failure logged:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.log();
    assert!(log.contains("served.key"), "{log}");
    let stream = connect(server.port, &trusting_a_and_b)
        .await
        .expect("B still serves");
    assert_eq!(served_cert(&stream), b.der);
}

#[tokio::test]
async fn sigterm_lets_a_slow_request_finish_and_exits_zero() {
    // Arrange: a login whose body is only half sent.
    let dir = tempfile::tempdir().expect("dir");
    let cert = pair(dir.path(), "server");
    let mut server = Server::start(dir, &tls_args(&cert)).await;
    let mut stream = connect(server.port, &connector(&[&cert.der], BOTH, &[b"http/1.1"]))
        .await
        .expect("handshake");
    let body = b"username=nobody-here&password=not-the-password-1";
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(&body[..10]).await.expect("write");
    stream.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = TcpStream::connect(("127.0.0.1", server.port)).await;
    stream
        .write_all(&body[10..])
        .await
        .expect("rest of the body");
    stream.flush().await.expect("flush");
    let response = String::from_utf8_lossy(&read_to_close(&mut stream).await).into_owned();
    let status = server.wait_exit(Duration::from_secs(15));

    // Assert
    assert!(refused.is_err(), "new connections are still accepted");
    assert!(
        response.starts_with("HTTP/1.1 401"),
        "the request in flight got no answer: {response:?}\n{}",
        server.log()
    );
    assert!(
        response.contains("Incorrect username or password"),
        "{response}"
    );
    assert_eq!(status.code(), Some(0), "{}", server.log());
}

#[tokio::test]
async fn a_missing_certificate_file_stops_start_up_naming_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let cert = pair(dir.path(), "server");
    let missing = dir.path().join("missing.crt");

    let (status, log) = start_fails(
        dir.path(),
        &[
            "--tls-cert".to_owned(),
            missing.display().to_string(),
            "--tls-key".to_owned(),
            cert.key.display().to_string(),
        ],
    )
    .await;

    assert!(!status.success(), "{log}");
    assert!(log.contains(&*missing.display().to_string()), "{log}");
}

#[tokio::test]
async fn a_key_that_does_not_match_the_certificate_stops_start_up_naming_the_files() {
    let dir = tempfile::tempdir().expect("dir");
    let a = pair(dir.path(), "a");
    let b = pair(dir.path(), "b");

    let (status, log) = start_fails(
        dir.path(),
        &[
            "--tls-cert".to_owned(),
            a.cert.display().to_string(),
            "--tls-key".to_owned(),
            b.key.display().to_string(),
        ],
    )
    .await;

    assert!(!status.success(), "{log}");
    assert!(log.contains(&*b.key.display().to_string()), "{log}");
    assert!(log.contains("does not match"), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}
