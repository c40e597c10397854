//! The contract's "HTTP hardening" section: headers on every response, FastAPI-shaped bodies for
//! router and middleware errors, the body-size limit, slow-client timeouts and CORS.

use std::time::{Duration, Instant};

use bulwark_server::config::DurationSetting;
use reqwest::{Method, Response, header};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_with};
use crate::test_both;

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const ONE_MIB: usize = 1024 * 1024;

/// The headers every response carries, whatever its status.
fn assert_hardened(response: &Response, what: &str) {
    let headers = response.headers();
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(get("x-content-type-options"), Some("nosniff"), "{what}");
    assert_eq!(get("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(get("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(
        get("cross-origin-opener-policy"),
        Some("same-origin"),
        "{what}"
    );
    assert!(get("content-security-policy").is_some(), "{what}: no CSP");
    assert_eq!(
        headers.get_all("content-security-policy").iter().count(),
        1,
        "{what}"
    );
    assert!(
        headers.get(header::SERVER).is_none(),
        "{what}: Server header"
    );
    assert!(
        headers.get(header::STRICT_TRANSPORT_SECURITY).is_none(),
        "{what}: HSTS without TLS"
    );
}

fn header_of<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A JSON item body of exactly `size` bytes (a long description pads it).
fn item_body_of_size(size: usize) -> String {
    let head = r#"{"name":"Hat","price":1.0,"description":""#;
    let tail = r#""}"#;
    let padding = size - head.len() - tail.len();
    let body = format!("{head}{}{tail}", "d".repeat(padding));
    assert_eq!(body.len(), size);
    body
}

/// `POST /items/` with `body` as it is, as JSON.
async fn post_raw_json(app: &TestApp, token: &str, body: String) -> Response {
    app.send_raw(
        Method::POST,
        "/items/",
        token,
        Some("application/json"),
        body,
    )
    .await
}

/// One of each status the API answers, labelled; `(label, response, carries user data)`.
async fn one_response_of_each_kind(app: &TestApp) -> Vec<(&'static str, Response, bool)> {
    let (_, token) = app.user_with_token("alice", &[]).await;
    let item = app.new_item(&token, "Hat").await;
    let id = &item["id"];
    let login = app.login("alice", crate::helpers::PASSWORD).await;
    let created = app
        .create_item(&token, &json!({"name": "Cap", "price": 1.0}))
        .await;
    vec![
        ("200 health", app.get("/health", None).await, false),
        ("200 token", login, true),
        ("200 list", app.list_items(&token, "").await, true),
        ("200 item", app.get_item(&token, id).await, true),
        ("201 create", created, true),
        (
            "204 delete",
            app.delete(&format!("/items/{id}"), Some(&token)).await,
            false,
        ),
        ("401 no token", app.get("/items/", None).await, true),
        (
            "401 bad token",
            app.get("/items/", Some("garbage")).await,
            true,
        ),
        ("404 route", app.get("/no/such/route", None).await, false),
        ("404 item", app.get_item(&token, id).await, true),
        ("405 method", app.delete("/health", None).await, false),
        (
            "413 body",
            post_raw_json(app, &token, item_body_of_size(ONE_MIB + 1)).await,
            false,
        ),
        (
            "415 media type",
            app.send_raw(Method::POST, "/items/", &token, Some("text/plain"), "{}")
                .await,
            false,
        ),
        (
            "422 body",
            app.create_item(&token, &json!({"name": "", "price": 0.0}))
                .await,
            true,
        ),
        ("422 path", app.get("/items/abc", Some(&token)).await, true),
    ]
}

async fn every_response_carries_the_hardening_headers(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let responses = one_response_of_each_kind(&app).await;

    // Assert
    for (what, response, _) in &responses {
        let status: u16 = what[..3].parse().expect("label starts with the status");
        assert_eq!(response.status(), status, "{what}");
        assert_hardened(response, what);
    }
}
test_both!(every_response_carries_the_hardening_headers);

async fn api_responses_carry_the_api_content_security_policy(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let responses = one_response_of_each_kind(&app).await;

    // Assert
    for (what, response, _) in &responses {
        assert_eq!(
            header_of(response, "content-security-policy"),
            Some(API_CSP),
            "{what}"
        );
    }
}
test_both!(api_responses_carry_the_api_content_security_policy);

async fn responses_with_tokens_or_user_data_are_not_stored(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("bob", &[]).await;
    let item = app.new_item(&token, "Hat").await;

    // Act
    let mut responses = one_response_of_each_kind(&app).await;
    let view = app
        .get(&format!("/items/{}/view", item["id"]), Some(&token))
        .await;
    responses.push(("200 html view", view, true));

    // Assert
    for (what, response, user_data) in &responses {
        if *user_data {
            assert_eq!(
                header_of(response, "cache-control"),
                Some("no-store"),
                "{what}"
            );
        }
    }
}
test_both!(responses_with_tokens_or_user_data_are_not_stored);

async fn an_unknown_route_is_404_not_found_in_json(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    for (path, token) in [
        ("/nope", None),
        ("/items/1/nope", Some(token.as_str())),
        ("/.env", None),
        ("/../../etc/passwd", None),
    ] {
        // Act
        let response = app.get(path, token).await;

        // Assert
        assert_eq!(response.status(), 404, "{path}");
        assert_hardened(&response, path);
        assert_eq!(
            header_of(&response, "content-type"),
            Some("application/json"),
            "{path}"
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(body, json!({"detail": "Not Found"}), "{path}");
    }
}
test_both!(an_unknown_route_is_404_not_found_in_json);

async fn a_wrong_method_is_405_method_not_allowed_in_json(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    for (method, path) in [
        (Method::DELETE, "/health"),
        (Method::POST, "/health"),
        (Method::PATCH, "/items/"),
        (Method::POST, "/items/1"),
    ] {
        // Act
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");

        // Assert
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_hardened(&response, path);
        assert_eq!(
            header_of(&response, "content-type"),
            Some("application/json"),
            "{path}"
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body,
            json!({"detail": "Method Not Allowed"}),
            "{method} {path}"
        );
    }
}
test_both!(a_wrong_method_is_405_method_not_allowed_in_json);

async fn a_body_over_one_mib_is_413_in_json_and_nothing_is_created(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let response = post_raw_json(&app, &token, item_body_of_size(ONE_MIB + 1)).await;

    // Assert
    assert_eq!(response.status(), 413);
    assert_hardened(&response, "413");
    assert_eq!(
        header_of(&response, "content-type"),
        Some("application/json")
    );
    // The rest of the body is never read: the client must not reuse the connection.
    assert_eq!(header_of(&response, "connection"), Some("close"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, json!({"detail": "Request body too large"}));
    let list: Value = app.list_items(&token, "").await.json().await.expect("json");
    assert_eq!(list["total"], 0);
}
test_both!(a_body_over_one_mib_is_413_in_json_and_nothing_is_created);

async fn a_body_of_exactly_one_mib_is_not_refused_for_its_size(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Act
    let response = post_raw_json(&app, &token, item_body_of_size(ONE_MIB)).await;

    // Assert: the body was read and parsed; only the description rule refuses it.
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["detail"][0]["type"], "string_too_long", "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "description"]));
}
test_both!(a_body_of_exactly_one_mib_is_not_refused_for_its_size);

// --- Raw sockets: chunked bodies and slow clients -------------------------------------------------

/// A parsed raw HTTP/1.1 response: status, lowercased head, body.
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one response (with `Content-Length`) from `stream`, within `within`.
async fn read_response(stream: &mut TcpStream, within: Duration) -> RawResponse {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().expect("length"));
                if buf.len() >= end + 4 + length {
                    let status = head[9..12].parse().expect("status");
                    let body = buf[end + 4..end + 4 + length].to_vec();
                    return RawResponse { status, head, body };
                }
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before a full response: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(within, read)
        .await
        .expect("a response in time")
}

fn raw_hardened(response: &RawResponse, what: &str) {
    for line in [
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "referrer-policy: no-referrer",
        "cross-origin-opener-policy: same-origin",
        "content-type: application/json",
    ] {
        assert!(
            response.head.contains(line),
            "{what}: no {line} in {}",
            response.head
        );
    }
    assert!(!response.head.contains("\nserver:"), "{what}");
}

async fn a_chunked_body_over_one_mib_is_413(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let body = item_body_of_size(ONE_MIB + 1);
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let head = format!(
        "POST /items/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );

    // Act: no Content-Length, so only counting the bytes can stop it.
    let (mut reader, mut writer) = stream.split();
    let write = async {
        let _ = writer.write_all(head.as_bytes()).await;
        for part in body.as_bytes().chunks(64 * 1024) {
            let chunk = [format!("{:x}\r\n", part.len()).as_bytes(), part, b"\r\n"].concat();
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n").await;
    };
    let read = async {
        let mut all = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
            }
            if let Some(end) = all.windows(4).position(|w| w == b"\r\n\r\n")
                && all.len() > end + 4
                && all[end + 4..].ends_with(b"}")
            {
                break;
            }
        }
        all
    };
    let ((), raw) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(write, read) })
            .await
            .expect("answered in time");

    // Assert
    let text = String::from_utf8_lossy(&raw).to_string();
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.ends_with(r#"{"detail":"Request body too large"}"#),
        "{text}"
    );
    assert!(
        text.to_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connection: close"), "{text}");
    let list: Value = app.list_items(&token, "").await.json().await.expect("json");
    assert_eq!(list["total"], 0);
}
test_both!(a_chunked_body_over_one_mib_is_413);

fn with_short_timeouts(settings: &mut bulwark_server::config::Settings) {
    settings.header_read_timeout = DurationSetting(Duration::from_secs(1));
    settings.request_timeout = DurationSetting(Duration::from_secs(1));
}

/// True when the server closed (or reset) the connection within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = Vec::new();
    matches!(
        tokio::time::timeout(within, stream.read_to_end(&mut sink)).await,
        Ok(Ok(_) | Err(_))
    )
}

async fn a_client_that_never_finishes_its_headers_is_disconnected(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, with_short_timeouts).await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let started = Instant::now();

    // Act
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: loc")
        .await
        .expect("write");
    let closed = closed_within(&mut stream, Duration::from_secs(3)).await;

    // Assert
    assert!(closed, "the connection is still open after 3 s");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed before the timeout"
    );
    // The server still serves everyone else.
    assert_eq!(app.get("/health", None).await.status(), 200);
}
test_both!(a_client_that_never_finishes_its_headers_is_disconnected);

async fn a_client_trickling_its_headers_is_disconnected(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, with_short_timeouts).await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64)
    );
    let started = Instant::now();

    // Act: one byte every 100 ms, each within any per-read timeout.
    let mut cut = false;
    for byte in request.as_bytes() {
        if stream.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(_)) => panic!("the server answered a request that took seconds to send"),
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }

    // Assert
    assert!(
        cut,
        "a client sending a byte every 100 ms was not cut after 4 s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut too late: {:?}",
        started.elapsed()
    );
}
test_both!(a_client_trickling_its_headers_is_disconnected);

async fn an_idle_connection_that_sends_nothing_is_disconnected(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, with_short_timeouts).await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");

    // Act
    let closed = closed_within(&mut stream, Duration::from_secs(3)).await;

    // Assert
    assert!(closed, "an idle connection is still open after 3 s");
}
test_both!(an_idle_connection_that_sends_nothing_is_disconnected);

/// Regression: a request with any `Upgrade:` header (answered without a 101) switched the
/// connection's head and idle timers off for good.
async fn an_upgrade_header_does_not_switch_the_connection_timers_off(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| {
        with_short_timeouts(s);
        s.idle_timeout = DurationSetting(Duration::from_secs(1));
    })
    .await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");

    // Act
    stream
        .write_all(
            b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .await
        .expect("write");
    let answer = read_response(&mut stream, Duration::from_secs(3)).await;
    let started = Instant::now();
    let closed = closed_within(&mut stream, Duration::from_secs(4)).await;

    // Assert
    assert_eq!(answer.status, 200);
    assert!(closed, "the idle connection is still open after 4 s");
    assert!(started.elapsed() >= Duration::from_millis(500));
}
test_both!(an_upgrade_header_does_not_switch_the_connection_timers_off);

/// Regression: HTTP/2 connections (prior knowledge) that answered pings were never cut.
async fn an_idle_http2_connection_is_closed_pings_or_not(backend: Backend) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

    // Arrange
    let app = spawn_app_with(backend, |s| {
        s.idle_timeout = DurationSetting(Duration::from_secs(1));
    })
    .await;
    let tcp = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(200))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tcp))
        .await
        .expect("http2 handshake");
    let conn = tokio::spawn(conn);

    // Act
    let response = send
        .send_request(
            http::Request::get(format!("http://127.0.0.1:{}/health", app.port))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("request"),
        )
        .await
        .expect("response");
    let answered = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), conn).await;

    // Assert
    assert_eq!(response.status(), 200);
    assert!(
        closed.is_ok(),
        "the pinging, idle HTTP/2 connection is still open after 5 s"
    );
    assert!(answered.elapsed() >= Duration::from_millis(500));
}
test_both!(an_idle_http2_connection_is_closed_pings_or_not);

/// Opens `n` connections and gives the server a moment to accept them.
async fn open_connections(app: &TestApp, n: usize) -> Vec<TcpStream> {
    let mut open = Vec::new();
    for _ in 0..n {
        open.push(
            TcpStream::connect(("127.0.0.1", app.port))
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    open
}

/// Whether a connection is served: a request on it is answered.
async fn served(stream: &mut TcpStream) -> bool {
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(
        tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await,
        Ok(Ok(n)) if n > 0 && buf.starts_with(b"HTTP/1.1 200")
    )
}

async fn connections_past_the_per_client_cap_are_closed_at_once(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.max_connections_per_ip = 3).await;
    let mut open = open_connections(&app, 3).await;

    // Act
    let mut past = open_connections(&app, 1).await.remove(0);

    // Assert: closed without an answer, and the open ones are not disturbed.
    assert!(!served(&mut past).await, "a fourth connection was served");
    for stream in &mut open {
        assert!(served(stream).await, "an open connection was disturbed");
    }
    // A closed connection frees its place.
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = open_connections(&app, 1).await.remove(0);
    assert!(served(&mut again).await, "the place was not freed");
}
test_both!(connections_past_the_per_client_cap_are_closed_at_once);

async fn a_trusted_proxy_counts_only_against_the_total_cap(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| {
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.max_connections_per_ip = 2;
        s.max_connections = 4;
    })
    .await;

    // Act
    let mut open = open_connections(&app, 4).await;
    let mut past = open_connections(&app, 1).await.remove(0);

    // Assert
    for stream in &mut open {
        assert!(
            served(stream).await,
            "the proxy is not held to the per-client cap"
        );
    }
    assert!(!served(&mut past).await, "past max_connections");
}
test_both!(a_trusted_proxy_counts_only_against_the_total_cap);

async fn a_request_whose_body_never_arrives_times_out_with_408(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, with_short_timeouts).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let request = format!(
        "POST /items/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\""
    );

    // Act
    stream.write_all(request.as_bytes()).await.expect("write");
    let response = read_response(&mut stream, Duration::from_secs(4)).await;

    // Assert
    assert_eq!(response.status, 408, "{}", response.head);
    raw_hardened(&response, "408");
    assert!(
        response.head.contains("connection: close"),
        "{}",
        response.head
    );
    let body: Value = serde_json::from_slice(&response.body).expect("json");
    assert_eq!(body, json!({"detail": "Request Timeout"}));
}
test_both!(a_request_whose_body_never_arrives_times_out_with_408);

// --- CORS ---------------------------------------------------------------------------------------

async fn preflight(app: &TestApp, origin: &str) -> Response {
    app.client
        .request(Method::OPTIONS, app.url("/items/"))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type",
        )
        .send()
        .await
        .expect("request")
}

async fn simple_get(app: &TestApp, origin: &str) -> Response {
    app.client
        .get(app.url("/health"))
        .header(header::ORIGIN, origin)
        .send()
        .await
        .expect("request")
}

fn allow_origin(response: &Response) -> Option<&str> {
    header_of(response, "access-control-allow-origin")
}

async fn cors_is_off_unless_origins_are_listed(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let pre = preflight(&app, "https://app.example").await;
    let get = simple_get(&app, "https://app.example").await;

    // Assert
    assert_hardened(&pre, "preflight");
    assert_eq!(allow_origin(&pre), None);
    assert_eq!(header_of(&pre, "access-control-allow-credentials"), None);
    assert_eq!(get.status(), 200);
    assert_eq!(allow_origin(&get), None);
    assert_eq!(header_of(&get, "access-control-allow-credentials"), None);
}
test_both!(cors_is_off_unless_origins_are_listed);

fn allowing_app_example(settings: &mut bulwark_server::config::Settings) {
    settings.allowed_origins = vec!["https://app.example".parse().unwrap()];
}

async fn a_listed_origin_is_echoed_and_never_a_wildcard(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, allowing_app_example).await;

    // Act
    let pre = preflight(&app, "https://app.example").await;
    let get = simple_get(&app, "https://app.example").await;

    // Assert
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_hardened(&pre, "preflight");
    for response in [&pre, &get] {
        assert_eq!(allow_origin(response), Some("https://app.example"));
        assert_eq!(
            header_of(response, "access-control-allow-credentials"),
            Some("true")
        );
        let vary = header_of(response, "vary")
            .unwrap_or_default()
            .to_lowercase();
        assert!(vary.contains("origin"), "Vary: {vary}");
    }
    let methods = header_of(&pre, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    assert!(!methods.contains('*'), "{methods}");
    let allowed_headers = header_of(&pre, "access-control-allow-headers")
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    assert!(!allowed_headers.contains('*'), "{allowed_headers}");
}
test_both!(a_listed_origin_is_echoed_and_never_a_wildcard);

async fn an_unlisted_origin_gets_no_cors_headers(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, allowing_app_example).await;

    for origin in [
        "https://evil.example",
        "null",
        "https://app.example.evil.example",
        "http://app.example",
        "https://app.example:8443",
    ] {
        // Act
        let pre = preflight(&app, origin).await;
        let get = simple_get(&app, origin).await;

        // Assert
        assert_eq!(allow_origin(&pre), None, "{origin}");
        assert_eq!(allow_origin(&get), None, "{origin}");
        assert_hardened(&pre, origin);
    }
}
test_both!(an_unlisted_origin_gets_no_cors_headers);

// --- No leaks ----------------------------------------------------------------------------------

async fn error_bodies_reveal_no_internals(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let bad_json = post_raw_json(&app, &token, r#"{"name": "x", "price": 1.0,,}"#.to_owned()).await;
    let forged = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIn0.";

    // Act
    let mut responses = vec![
        ("bad json", bad_json),
        (
            "wrong type",
            app.create_item(&token, &json!({"name": ["x"], "price": {"a": 1}}))
                .await,
        ),
        (
            "huge id",
            app.get("/items/99999999999999999999999", Some(&token))
                .await,
        ),
        ("bad utf-8 id", app.get("/items/%FF%FE", Some(&token)).await),
        ("quote id", app.get("/items/1'", Some(&token)).await),
        ("alg none", app.get("/items/", Some(forged)).await),
        ("garbage token", app.get("/items/", Some("x.y.z")).await),
        ("limit", app.list_items(&token, "?limit=1e999").await),
        (
            "offset",
            app.list_items(&token, "?offset=99999999999999999999999")
                .await,
        ),
        ("405", app.delete("/health", None).await),
    ];
    responses.push((
        "413",
        post_raw_json(&app, &token, item_body_of_size(ONE_MIB + 10)).await,
    ));

    // Assert
    for (what, response) in responses {
        let status = response.status();
        assert!(status.is_client_error(), "{what}: {status}");
        let text = response.text().await.expect("body");
        let body: Value = serde_json::from_str(&text).expect("a JSON error body");
        assert!(body.get("detail").is_some(), "{what}: {text}");
        let lower = text.to_lowercase();
        for leak in [
            "panicked",
            "backtrace",
            "stack",
            ".rs",
            "src/",
            "/home",
            "/work",
            "/tmp",
            "cargo",
            "select ",
            "insert ",
            "sqlx",
            "sqlite",
            "postgres",
            "syntax error",
            "serde",
            "at line",
            "thread '",
        ] {
            assert!(!lower.contains(leak), "{what} leaks {leak:?}: {text}");
        }
    }
}
test_both!(error_bodies_reveal_no_internals);

/// Request headers over 32 KiB answer 431 instead of being buffered; ordinary large headers
/// (16 KiB, e.g. big cookies behind a proxy) still pass.
async fn oversized_request_headers_answer_431(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let send = |header_bytes: usize| {
        let port = app.port;
        async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            let request = format!(
                "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
                "a".repeat(header_bytes)
            );
            let _ = stream.write_all(request.as_bytes()).await;
            let mut answer = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        }
    };

    // Act
    let huge = send(64 * 1024).await;
    let large = send(16 * 1024).await;
    let many_fields: String = (0..101).map(|i| format!("X-{i}: 1\r\n")).collect();
    let (many, _) = raw_exchange(
        &app,
        format!("GET /health HTTP/1.1\r\nHost: a\r\n{many_fields}\r\n").as_bytes(),
    )
    .await;

    // Assert
    assert!(huge.starts_with("HTTP/1.1 431"), "{huge}");
    assert!(large.starts_with("HTTP/1.1 200"), "{large}");
    assert_eq!(many.status, 431);
    raw_hardened(&many, "too many header fields");
    let body: Value = serde_json::from_slice(&many.body).expect("json");
    assert_eq!(body, json!({"detail": "Request header fields too large"}));
}
test_both!(oversized_request_headers_answer_431);

// --- Request smuggling, malformed requests, hostile bodies ---------------------------------------

/// Writes `request` on a new connection; returns the first response and whether the server
/// closed the connection after it (within two seconds).
async fn raw_exchange(app: &TestApp, request: &[u8]) -> (RawResponse, bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    stream.write_all(request).await.expect("write");
    let response = read_response(&mut stream, Duration::from_secs(5)).await;
    let closed = closed_within(&mut stream, Duration::from_secs(2)).await;
    (response, closed)
}

/// A request with both `Content-Length` and `Transfer-Encoding` could be framed one way by a
/// proxy and another way by the server (request smuggling): it is refused with 400, in either
/// header order, and the connection is closed; nothing is created.
async fn content_length_with_transfer_encoding_is_400_and_closes(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let body = r#"{"name":"smuggled","price":1.0}"#;
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let framing = [
        format!(
            "Content-Length: {}\r\nTransfer-Encoding: chunked",
            chunked.len()
        ),
        format!(
            "Transfer-Encoding: chunked\r\nContent-Length: {}",
            body.len()
        ),
        format!(
            "Content-Length: {}\r\nTransfer-Encoding: gzip, chunked",
            chunked.len()
        ),
    ];

    for headers in framing {
        // Act
        let request = format!(
            "POST /items/ HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\n{headers}\r\n\r\n{chunked}"
        );
        let (response, closed) = raw_exchange(&app, request.as_bytes()).await;

        // Assert
        assert_eq!(response.status, 400, "{headers}");
        raw_hardened(&response, &headers);
        let detail: Value = serde_json::from_slice(&response.body).expect("json");
        assert_eq!(
            detail,
            json!({"detail": "Request has both Content-Length and Transfer-Encoding"})
        );
        assert!(response.head.contains("connection: close"), "{headers}");
        assert!(closed, "{headers}: the connection stays open");
    }
    let list: Value = app.list_items(&token, "").await.json().await.expect("json");
    assert_eq!(list["total"], 0);
}
test_both!(content_length_with_transfer_encoding_is_400_and_closes);

/// The check applies to every request on a kept-alive connection, not only the first: after a
/// chunked request that is answered normally, a smuggled head is refused; a head that only
/// appears inside a body is body.
async fn a_smuggled_head_after_a_chunked_request_is_refused(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let smuggled = format!(
        "POST /items/ HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
    );
    let inner = format!(
        r#"{{"name":"carrier","price":1.0,"description":{}}}"#,
        json!(smuggled)
    );
    let first = format!(
        "POST /items/ HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{inner}\r\n0\r\n\r\n",
        inner.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");

    // Act: both requests in one write.
    stream
        .write_all(format!("{first}{smuggled}").as_bytes())
        .await
        .expect("write");
    let mut answers = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answers))
        .await
        .is_ok();

    // Assert: the first is created (the smuggled head inside it is its description), the
    // second is refused, then the connection is closed.
    let answers = String::from_utf8_lossy(&answers);
    let (created, refused) = answers
        .split_once("HTTP/1.1 400 Bad Request\r\n")
        .expect(&answers);
    assert!(created.starts_with("HTTP/1.1 201"), "{answers}");
    let item: Value =
        serde_json::from_str(created.split_once("\r\n\r\n").expect("body").1).expect("json");
    assert!(
        item["description"]
            .as_str()
            .expect("description")
            .contains("Content-Length: 3")
    );
    assert!(
        refused.ends_with(r#"{"detail":"Request has both Content-Length and Transfer-Encoding"}"#),
        "{answers}"
    );
    assert!(closed);
    let list: Value = app.list_items(&token, "").await.json().await.expect("json");
    assert_eq!(list["total"], 1);
}
test_both!(a_smuggled_head_after_a_chunked_request_is_refused);

/// Bytes that are not UTF-8 in the path, the query or the body get a 4xx, never a 500.
async fn invalid_utf8_anywhere_is_a_client_error(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let auth = format!("Authorization: Bearer {token}\r\n");
    let json_body: &[u8] = b"{\"name\":\"\xff\xfe\",\"price\":1.0}";
    let form_body: &[u8] = b"username=\xff&password=%FF%FE";
    let requests: Vec<(&str, Vec<u8>)> = vec![
        ("raw path", [b"GET /items/\xff\xfe HTTP/1.1\r\nHost: a\r\n".as_slice(), auth.as_bytes(), b"\r\n"].concat()),
        ("encoded path", [b"GET /items/%FF%FE HTTP/1.1\r\nHost: a\r\n".as_slice(), auth.as_bytes(), b"\r\n"].concat()),
        ("raw query", [b"GET /items/?limit=\xff HTTP/1.1\r\nHost: a\r\n".as_slice(), auth.as_bytes(), b"\r\n"].concat()),
        ("encoded query", [b"GET /items/?limit=%FF&offset=%C3%28 HTTP/1.1\r\nHost: a\r\n".as_slice(), auth.as_bytes(), b"\r\n"].concat()),
        ("header value", [b"GET /items/ HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer \xff\xfe\r\n\r\n".as_slice()].concat()),
        (
            "json body",
            [
                format!("POST /items/ HTTP/1.1\r\nHost: a\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", json_body.len()).as_bytes(),
                json_body,
            ]
            .concat(),
        ),
        (
            "form body",
            [
                format!("POST /token HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n", form_body.len()).as_bytes(),
                form_body,
            ]
            .concat(),
        ),
    ];

    for (what, request) in requests {
        // Act
        let (response, _) = raw_exchange(&app, &request).await;

        // Assert
        assert!(
            (400..500).contains(&response.status),
            "{what}: {} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        let body: Value = serde_json::from_slice(&response.body).expect("a JSON error body");
        assert!(!body["detail"].is_null(), "{what}: {body}");
    }
}
test_both!(invalid_utf8_anywhere_is_a_client_error);

/// JSON nested far deeper than any item is refused with 422 at once (serde_json's recursion
/// limit), not parsed into a stack overflow or a slow 500.
async fn deeply_nested_json_is_422_quickly(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let depth = 100_000;
    let bodies = [
        "[".repeat(depth),
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth)),
        format!(
            r#"{{"name":"x","price":1.0,"description":{}{}}}"#,
            r#"{"a":"#.repeat(depth),
            "}".repeat(depth)
        ),
    ];

    for body in bodies {
        // Act
        let started = Instant::now();
        let response = post_raw_json(&app, &token, body).await;
        let took = started.elapsed();

        // Assert
        assert_eq!(response.status(), 422);
        let detail: Value = response.json().await.expect("json");
        assert!(detail["detail"][0]["type"].is_string(), "{detail}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
    let list: Value = app.list_items(&token, "").await.json().await.expect("json");
    assert_eq!(list["total"], 0);
}
test_both!(deeply_nested_json_is_422_quickly);
