//! `GET /ws` (the contract's "WebSocket" section, and delivery across instances):
//! authentication by the session cookie or `Sec-WebSocket-Protocol: bearer, <token>`, never by
//! the query string; `Origin` checks; one JSON message per change to the caller's own items and
//! never another user's; the limits (64 KiB frames and messages, 20 client messages per second,
//! 8 sockets per user); expiry and revocation closing the socket; close code 1001 on SIGTERM;
//! and delivery across two real instances through Redis pub/sub and PostgreSQL `NOTIFY`.
//!
//! Not tested: the 60 s idle timeout (too slow to wait for in real time) and the 20 s pings.
//!
//! Every receive is bounded by a timeout, so a missing message fails instead of hanging.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{
        self, Message,
        client::IntoClientRequest as _,
        http::{HeaderValue, header},
        protocol::frame::{
            Frame,
            coding::{Data, OpCode},
        },
    },
};

use crate::{
    helpers::{
        Backend, PASSWORD, TestApp, active_kid, fresh_database_url, json_with_status, set_cookie,
        spawn_app, spawn_app_with,
    },
    process::{Cluster, Instance, RATE_LIMITS_OFF, free_ports},
    test_both,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Handshake = Result<(Socket, tungstenite::handshake::client::Response), tungstenite::Error>;

/// Bound on every wait for one message or one handshake.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a socket must stay silent to count as "nothing delivered".
const SILENCE: Duration = Duration::from_millis(600);
/// The server checks expiry and revocation every second, and pulls revocations every 250 ms.
const REVOCATION_DEADLINE: Duration = Duration::from_millis(2500);

/// How a handshake authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    Nothing,
    Bearer(&'a str),
    /// The value of the `session` cookie.
    Cookie(&'a str),
}

/// Opens `ws://127.0.0.1:{port}{path}` with `auth` and, when given, an `Origin`.
async fn handshake(port: u16, path: &str, auth: Auth<'_>, origin: Option<&str>) -> Handshake {
    let mut request = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .expect("request");
    let headers = request.headers_mut();
    match auth {
        Auth::Nothing => {}
        Auth::Bearer(token) => {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(&format!("bearer, {token}")).expect("header"),
            );
        }
        Auth::Cookie(session) => {
            headers.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("session={session}")).expect("header"),
            );
        }
    }
    if let Some(origin) = origin {
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_str(origin).expect("header"),
        );
    }
    tokio::time::timeout(RECV_TIMEOUT, connect_async(request))
        .await
        .expect("the handshake answers within 5 s")
}

/// A socket that must open; checks the `bearer` subprotocol answer for bearer handshakes.
async fn open(port: u16, auth: Auth<'_>) -> Socket {
    let (socket, response) = handshake(port, "/ws", auth, None)
        .await
        .expect("the handshake succeeds");
    assert_eq!(response.status(), 101);
    let protocol = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    match auth {
        Auth::Bearer(_) => assert_eq!(protocol, Some("bearer")),
        _ => assert_eq!(protocol, None, "no subprotocol was offered"),
    }
    socket
}

/// The HTTP status of a refused handshake.
fn refused_status(result: Handshake) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok((_, response)) => panic!("expected a refusal, got {}", response.status()),
    }
}

/// The next text message as JSON (pings and pongs skipped); fails on a close or after 5 s.
async fn next_json(socket: &mut Socket) -> Value {
    let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a message within 5 s");
        match message {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text).expect("a JSON message");
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a JSON message, got {other:?}"),
        }
    }
}

/// Asserts that nothing but pings arrives for [`SILENCE`].
async fn assert_silent(socket: &mut Socket) {
    let deadline = tokio::time::Instant::now() + SILENCE;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }
}

/// How a socket ended.
#[derive(Debug, PartialEq)]
enum Ending {
    /// A close frame with this code.
    Close(u16),
    /// The connection ended without a close frame.
    Dropped,
}

/// Reads until the socket ends, within `within`; fails on any data message.
async fn ending(socket: &mut Socket, within: Duration) -> Ending {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("the socket is still open after {within:?}"));
        match message {
            Some(Ok(Message::Close(frame))) => {
                return Ending::Close(frame.map_or(1005, |f| u16::from(f.code)));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => panic!("expected the socket to close, got {other:?}"),
            Some(Err(_)) | None => return Ending::Dropped,
        }
    }
}

/// An item event as the contract words it.
fn event(name: &str, item: &Value) -> Value {
    json!({"event": name, "item": item})
}

// ---------------------------------------------------------------------------------------------
// Handshake: credentials, query-string tokens, origins
// ---------------------------------------------------------------------------------------------

async fn a_handshake_without_credentials_is_refused_with_401(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        refused_status(handshake(app.port, "/ws", Auth::Nothing, None).await),
        401
    );
    // The own origin does not stand in for credentials.
    let own = app.address.clone();
    assert_eq!(
        refused_status(handshake(app.port, "/ws", Auth::Nothing, Some(&own)).await),
        401
    );
}
test_both!(a_handshake_without_credentials_is_refused_with_401);

async fn a_garbage_or_missing_bearer_subprotocol_token_is_refused_with_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    assert_eq!(
        refused_status(handshake(app.port, "/ws", Auth::Bearer("garbage"), None).await),
        401
    );
    // A token with a broken signature.
    let tampered = format!("{}x", &token[..token.len() - 1]);
    let tampered = if tampered == token {
        format!("{}y", &token[..token.len() - 1])
    } else {
        tampered
    };
    assert_eq!(
        refused_status(handshake(app.port, "/ws", Auth::Bearer(&tampered), None).await),
        401
    );
    // `bearer` alone, with no token after it.
    let mut request = format!("ws://127.0.0.1:{}/ws", app.port)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("bearer"),
    );
    let result = tokio::time::timeout(RECV_TIMEOUT, connect_async(request))
        .await
        .expect("answers");
    assert_eq!(refused_status(result), 401);
}
test_both!(a_garbage_or_missing_bearer_subprotocol_token_is_refused_with_401);

async fn a_token_in_the_query_string_is_refused_with_400_even_when_valid(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    for key in ["token", "access_token"] {
        let path = format!("/ws?{key}={token}");
        assert_eq!(
            refused_status(handshake(app.port, &path, Auth::Nothing, None).await),
            400,
            "?{key}="
        );
        // Refused even alongside valid subprotocol credentials: the URL has already leaked.
        assert_eq!(
            refused_status(handshake(app.port, &path, Auth::Bearer(&token), None).await),
            400,
            "?{key}= with a bearer subprotocol"
        );
    }
    // The same token in the subprotocol is fine.
    drop(open(app.port, Auth::Bearer(&token)).await);
}
test_both!(a_token_in_the_query_string_is_refused_with_400_even_when_valid);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_with_403_and_the_own_or_a_listed_origin_accepted() {
    // The server's own origin, with no allowed_origins.
    let app = spawn_app(Backend::Sqlite).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let evil = handshake(
        app.port,
        "/ws",
        Auth::Bearer(&token),
        Some("http://evil.example"),
    );
    assert_eq!(refused_status(evil.await), 403);
    let own = app.address.clone();
    let (_, response) = handshake(app.port, "/ws", Auth::Bearer(&token), Some(&own))
        .await
        .expect("the own origin is accepted");
    assert_eq!(response.status(), 101);
    // Another port on the same host is another origin.
    let other_port = format!("http://127.0.0.1:{}", app.port.wrapping_add(1));
    assert_eq!(
        refused_status(handshake(app.port, "/ws", Auth::Bearer(&token), Some(&other_port)).await),
        403
    );

    // An origin listed in allowed_origins.
    let listed = spawn_app_with(Backend::Sqlite, |s| {
        s.allowed_origins = vec!["https://app.example.com".parse().unwrap()];
    })
    .await;
    let (_, token) = listed.user_with_token("alice", &[]).await;
    let (_, response) = handshake(
        listed.port,
        "/ws",
        Auth::Bearer(&token),
        Some("https://app.example.com"),
    )
    .await
    .expect("a listed origin is accepted");
    assert_eq!(response.status(), 101);
    let evil = handshake(
        listed.port,
        "/ws",
        Auth::Bearer(&token),
        Some("http://evil.example"),
    );
    assert_eq!(refused_status(evil.await), 403);
}

// ---------------------------------------------------------------------------------------------
// Handshake: accepted credentials
// ---------------------------------------------------------------------------------------------

async fn a_bearer_subprotocol_token_opens_a_socket_answering_the_bearer_subprotocol(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let (_, response) = handshake(app.port, "/ws", Auth::Bearer(&token), None)
        .await
        .expect("accepted");
    assert_eq!(response.status(), 101);
    assert_eq!(
        response
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok()),
        Some("bearer"),
        "the server picks `bearer`, never echoes the token"
    );
}
test_both!(a_bearer_subprotocol_token_opens_a_socket_answering_the_bearer_subprotocol);

/// Logs in through the browser form (GET /login, then POST /login with its CSRF token) and
/// returns the `session` cookie's value.
async fn browser_session(app: &TestApp, username: &str) -> String {
    let response = app.browser_login(username, PASSWORD).await;
    assert_eq!(response.status(), 200, "browser login");
    set_cookie(&response, "session").expect("a session cookie")
}

async fn a_session_cookie_opens_a_socket_for_its_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let session = browser_session(&app, "alice").await;
    let mut socket = open(app.port, Auth::Cookie(&session)).await;

    // The socket belongs to alice: her change arrives.
    let item = app.new_item(&token, "lamp").await;
    assert_eq!(next_json(&mut socket).await, event("item.created", &item));

    // Cross-site WebSocket hijacking: the cookie from a foreign page is refused.
    let evil = handshake(
        app.port,
        "/ws",
        Auth::Cookie(&session),
        Some("http://evil.example"),
    );
    assert_eq!(refused_status(evil.await), 403);
    // A session cookie that is not a valid token.
    assert_eq!(
        refused_status(handshake(app.port, "/ws", Auth::Cookie("forged"), None).await),
        401
    );
}
test_both!(a_session_cookie_opens_a_socket_for_its_user);

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

async fn creating_updating_and_deleting_an_item_sends_exactly_three_events_in_order(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let mut socket = open(app.port, Auth::Bearer(&token)).await;

    // Right after the handshake: nothing may be lost between the 101 and the first change.
    let created = app.new_item(&token, "lamp").await;
    let path = format!("/items/{}", created["id"]);
    let updated = json_with_status(
        app.put_json(
            &path,
            Some(&token),
            &json!({"name": "brass lamp", "price": 12.5, "tax": 2.0, "description": "<b>warm</b>"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(app.delete(&path, Some(&token)).await.status(), 204);

    assert_eq!(
        next_json(&mut socket).await,
        event("item.created", &created)
    );
    assert_eq!(
        next_json(&mut socket).await,
        event("item.updated", &updated)
    );
    assert_eq!(
        next_json(&mut socket).await,
        event("item.deleted", &updated),
        "a deletion carries the item as it was"
    );
    assert_silent(&mut socket).await;

    // A refused write (404, 422) sends nothing.
    assert_eq!(app.delete(&path, Some(&token)).await.status(), 404);
    let invalid = app
        .create_item(&token, &json!({"name": "", "price": -1}))
        .await;
    assert_eq!(invalid.status(), 422);
    assert_silent(&mut socket).await;
}
test_both!(creating_updating_and_deleting_an_item_sends_exactly_three_events_in_order);

async fn an_event_published_right_after_the_handshake_is_delivered(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice_id, token) = app.user_with_token("alice", &[]).await;
    for n in 0..20 {
        let mut socket = open(app.port, Auth::Bearer(&token)).await;
        // Published the moment the 101 is read: the socket must already be subscribed.
        let json = json!({"event": "item.created", "item": {"id": n, "owner_id": alice_id}});
        app.state
            .events
            .publish(bulwark_server::events::Envelope {
                owner_id: alice_id,
                json: json.to_string().into(),
            })
            .await
            .expect("published");
        assert_eq!(next_json(&mut socket).await, json, "attempt {n}");
    }
}
test_both!(an_event_published_right_after_the_handshake_is_delivered);

async fn another_users_item_changes_never_reach_the_socket(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, alice) = app.user_with_token("alice", &[]).await;
    let (_, bob) = app.user_with_token("bob", &[]).await;
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let mut alice_socket = open(app.port, Auth::Bearer(&alice)).await;
    let mut bob_socket = open(app.port, Auth::Bearer(&bob)).await;
    let mut admin_socket = open(app.port, Auth::Bearer(&admin)).await;

    // Bob's changes while alice listens.
    let mut bob_events = Vec::new();
    for name in ["b1", "b2", "b3"] {
        let item = app.new_item(&bob, name).await;
        bob_events.push(event("item.created", &item));
    }
    let first = &bob_events[0]["item"];
    let path = format!("/items/{}", first["id"]);
    let updated = json_with_status(
        app.put_json(&path, Some(&bob), &json!({"name": "b1+", "price": 3.0}))
            .await,
        200,
    )
    .await;
    bob_events.push(event("item.updated", &updated));
    assert_eq!(app.delete(&path, Some(&bob)).await.status(), 204);
    bob_events.push(event("item.deleted", &updated));

    // Then alice's own change: her next message is hers, so bob's five were skipped.
    let mine = app.new_item(&alice, "a1").await;
    assert_eq!(
        next_json(&mut alice_socket).await,
        event("item.created", &mine)
    );

    // Bob sees exactly his own five, not alice's.
    for expected in &bob_events {
        assert_eq!(&next_json(&mut bob_socket).await, expected);
    }

    // An admin editing alice's item: the event goes to alice (the owner), not to the admin.
    let path = format!("/items/{}", mine["id"]);
    let by_admin = json_with_status(
        app.put_json(
            &path,
            Some(&admin),
            &json!({"name": "a1 (moderated)", "price": 10.0}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(by_admin["owner_id"], mine["owner_id"]);
    assert_eq!(
        next_json(&mut alice_socket).await,
        event("item.updated", &by_admin)
    );

    assert_silent(&mut alice_socket).await;
    assert_silent(&mut bob_socket).await;
    assert_silent(&mut admin_socket).await;
}
test_both!(another_users_item_changes_never_reach_the_socket);

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_64_kib_closes_the_socket_and_one_of_64_kib_does_not() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // Exactly 64 KiB is allowed: the socket keeps delivering.
    let mut socket = open(app.port, Auth::Bearer(&token)).await;
    socket
        .send(Message::Binary(vec![7u8; 64 * 1024].into()))
        .await
        .expect("send");
    let item = app.new_item(&token, "lamp").await;
    assert_eq!(next_json(&mut socket).await, event("item.created", &item));

    // One byte more closes it (1009, or the connection is cut).
    let mut socket = open(app.port, Auth::Bearer(&token)).await;
    let _ = socket
        .send(Message::Binary(vec![7u8; 64 * 1024 + 1].into()))
        .await;
    let end = ending(&mut socket, RECV_TIMEOUT).await;
    assert!(
        matches!(end, Ending::Close(1009) | Ending::Dropped),
        "{end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_64_kib_in_small_frames_closes_the_socket() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let mut socket = open(app.port, Auth::Bearer(&token)).await;
    // Two 40 KiB fragments of one binary message: each frame fits, the message does not.
    let first = Frame::message(vec![1u8; 40 * 1024], OpCode::Data(Data::Binary), false);
    let second = Frame::message(vec![2u8; 40 * 1024], OpCode::Data(Data::Continue), true);
    let _ = socket.send(Message::Frame(first)).await;
    let _ = socket.send(Message::Frame(second)).await;
    let end = ending(&mut socket, RECV_TIMEOUT).await;
    assert!(
        matches!(end, Ending::Close(1009) | Ending::Dropped),
        "{end:?}"
    );
}

async fn send_texts(socket: &mut Socket, n: usize) {
    for i in 0..n {
        socket
            .send(Message::Text(format!("hello {i}").into()))
            .await
            .expect("send");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_20_client_messages_within_a_second_close_the_socket_with_1008() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, token) = app.user_with_token("alice", &[]).await;

    // A burst of 21.
    let mut socket = open(app.port, Auth::Bearer(&token)).await;
    send_texts(&mut socket, 21).await;
    assert_eq!(ending(&mut socket, RECV_TIMEOUT).await, Ending::Close(1008));

    // 20, then one more 0.2 s later: 21 within a second, wherever the second begins.
    let mut socket = open(app.port, Auth::Bearer(&token)).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    send_texts(&mut socket, 20).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    send_texts(&mut socket, 1).await;
    assert_eq!(ending(&mut socket, RECV_TIMEOUT).await, Ending::Close(1008));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_client_messages_a_second_keep_the_socket_open() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let mut socket = open(app.port, Auth::Bearer(&token)).await;
    for _ in 0..3 {
        send_texts(&mut socket, 20).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let item = app.new_item(&token, "lamp").await;
    assert_eq!(next_json(&mut socket).await, event("item.created", &item));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ninth_socket_of_one_user_is_refused_with_429_while_the_eight_stay_open() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let (_, bob) = app.user_with_token("bob", &[]).await;
    let mut sockets = Vec::new();
    for _ in 0..8 {
        sockets.push(open(app.port, Auth::Bearer(&token)).await);
    }
    assert_eq!(
        refused_status(handshake(app.port, "/ws", Auth::Bearer(&token), None).await),
        429
    );
    // The cap is per user: bob still gets a socket.
    let _bob_socket = open(app.port, Auth::Bearer(&bob)).await;

    // All eight still deliver.
    let item = app.new_item(&token, "lamp").await;
    for socket in &mut sockets {
        assert_eq!(next_json(socket).await, event("item.created", &item));
    }

    // Closing one frees its slot.
    let mut closed = sockets.pop().expect("a socket");
    closed.close(None).await.expect("close");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match handshake(app.port, "/ws", Auth::Bearer(&token), None).await {
            Ok(_) => break,
            Err(tungstenite::Error::Http(response)) if response.status() == 429 => {
                assert!(
                    Instant::now() < deadline,
                    "the closed socket's slot is still taken after 3 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("unexpected handshake failure: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Expiry and revocation
// ---------------------------------------------------------------------------------------------

async fn logout_or_disabling_the_user_closes_the_socket_with_1008(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice_id, first) = app.user_with_token("alice", &[]).await;
    let (_, admin) = app.user_with_token("root", &["admin"]).await;
    let second = app.access_token("alice", PASSWORD).await;
    let mut first_socket = open(app.port, Auth::Bearer(&first)).await;
    let mut second_socket = open(app.port, Auth::Bearer(&second)).await;

    // Logging the first token out closes its socket...
    let logout = app
        .client
        .post(app.url("/logout"))
        .bearer_auth(&first)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 204);
    assert_eq!(
        ending(&mut first_socket, REVOCATION_DEADLINE).await,
        Ending::Close(1008)
    );
    assert_eq!(
        refused_status(handshake(app.port, "/ws", Auth::Bearer(&first), None).await),
        401
    );
    // ...and not the other session's.
    let item = app.new_item(&second, "lamp").await;
    assert_eq!(
        next_json(&mut second_socket).await,
        event("item.created", &item)
    );

    // Disabling alice closes every socket of hers.
    let disabled = app
        .patch_json(
            &format!("/admin/users/{alice_id}"),
            Some(&admin),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(disabled.status(), 200);
    assert_eq!(
        ending(&mut second_socket, REVOCATION_DEADLINE).await,
        Ending::Close(1008)
    );
    assert_eq!(
        refused_status(handshake(app.port, "/ws", Auth::Bearer(&second), None).await),
        401
    );
}
test_both!(logout_or_disabling_the_user_closes_the_socket_with_1008);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_signing_key_closes_the_sockets_of_its_tokens() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let mut socket = open(app.port, Auth::Bearer(&token)).await;
    let kid = active_kid(&app);
    app.state.keys.revoke(&kid).await.expect("revoked");
    // The token no longer authenticates anything...
    assert_eq!(app.get("/protected", Some(&token)).await.status(), 401);
    // ...so its socket closes too.
    assert_eq!(
        ending(&mut socket, REVOCATION_DEADLINE).await,
        Ending::Close(1008)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokens_expiry_closes_the_socket_with_1008() {
    const TTL: Duration = Duration::from_secs(10);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.access_token_ttl = bulwark_server::config::DurationSetting(TTL);
        s.jwt_leeway = bulwark_server::config::DurationSetting(Duration::ZERO);
    })
    .await;
    let (_, token) = app.user_with_token("alice", &[]).await;
    let issued = Instant::now();
    let mut socket = open(app.port, Auth::Bearer(&token)).await;

    // Still open and delivering shortly before expiry.
    tokio::time::sleep(TTL - Duration::from_secs(2)).await;
    let item = app.new_item(&token, "lamp").await;
    assert_eq!(next_json(&mut socket).await, event("item.created", &item));

    // Closed by ~12 s after issue (exp has one-second resolution, the check runs each second).
    let left = (TTL + Duration::from_secs(2)).saturating_sub(issued.elapsed());
    assert_eq!(ending(&mut socket, left).await, Ending::Close(1008));
    assert!(
        issued.elapsed() >= TTL - Duration::from_secs(1),
        "closed early, {:?} after issue",
        issued.elapsed()
    );
    assert_eq!(
        refused_status(handshake(app.port, "/ws", Auth::Bearer(&token), None).await),
        401
    );
}

// ---------------------------------------------------------------------------------------------
// Real `bulwark serve` processes
// ---------------------------------------------------------------------------------------------

/// The start-up log line naming the item event transport.
fn event_transport_line(server: &Instance) -> String {
    server
        .log()
        .lines()
        .find(|l| l.contains("item events"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no \"item events\" line:\n{}", server.log()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_open_sockets_with_1001_and_the_process_exits_0() {
    let (database_url, _db) = fresh_database_url(&Backend::Sqlite).await;
    let [port] = free_ports::<1>();
    let secret = bulwark::secret::random_token(32);
    let mut server = Instance::start(
        "server",
        port,
        &database_url,
        &secret,
        None,
        &[RATE_LIMITS_OFF],
    );
    server.wait_healthy().await;
    let password = server.admin_password().expect("the first admin's password");
    let token = server.login("admin", &password).await;
    let mut socket = open(port, Auth::Bearer(&token)).await;
    // The socket is live before the signal.
    let created = json_with_status(
        server
            .send(
                reqwest::Method::POST,
                "/items/",
                &token,
                Some(&json!({"name": "lamp", "price": 1.0})),
            )
            .await,
        201,
    )
    .await;
    assert_eq!(
        next_json(&mut socket).await,
        event("item.created", &created)
    );

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());

    assert_eq!(
        ending(&mut socket, RECV_TIMEOUT).await,
        Ending::Close(1001),
        "log:\n{}",
        server.log()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running 15 s after SIGTERM:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.code(), Some(0), "log:\n{}", server.log());
}

/// A socket on each instance; items written through A (and one change through B) reach both,
/// in write order, including an event too large for a `NOTIFY` payload.
async fn events_cross_instances(extra_env: &[(&str, &str)], transport: &str) {
    let Some(backend) = Backend::postgres() else {
        eprintln!("BULWARK_TEST_DATABASE_URL is not set: cross-instance WebSocket test skipped");
        return;
    };
    let cluster = Cluster::start(&backend, extra_env).await;
    let (a, b) = (&cluster.a, &cluster.b);
    for server in [a, b] {
        let line = event_transport_line(server);
        assert!(
            line.contains(&format!("transport=\"{transport}\"")),
            "{} does not use {transport}: {line}",
            server.name
        );
    }
    let admin_password = a
        .admin_password()
        .or_else(|| b.admin_password())
        .expect("a first admin's password");
    let admin = a.login("admin", &admin_password).await;
    let created = a
        .send(
            reqwest::Method::POST,
            "/admin/users",
            &admin,
            Some(&json!({"username": "alice", "password": PASSWORD, "roles": []})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let bob = a
        .send(
            reqwest::Method::POST,
            "/admin/users",
            &admin,
            Some(&json!({"username": "bob", "password": PASSWORD, "roles": []})),
        )
        .await;
    assert_eq!(bob.status(), 201);
    // A token from A opens a socket on B: one key ring.
    let token = a.login("alice", PASSWORD).await;
    let bob_token = b.login("bob", PASSWORD).await;
    let mut on_b = open(b.port, Auth::Bearer(&token)).await;
    let mut on_a = open(a.port, Auth::Bearer(&token)).await;

    // Bob's change first (must be skipped), then alice's three through A.
    let bobs = b
        .send(
            reqwest::Method::POST,
            "/items/",
            &bob_token,
            Some(&json!({"name": "bob's", "price": 1.0})),
        )
        .await;
    assert_eq!(bobs.status(), 201);
    let item = json_with_status(
        a.send(
            reqwest::Method::POST,
            "/items/",
            &token,
            Some(&json!({"name": "lamp", "price": 10.0, "tax": 1.5})),
        )
        .await,
        201,
    )
    .await;
    let path = format!("/items/{}", item["id"]);
    let updated = json_with_status(
        a.send(
            reqwest::Method::PUT,
            &path,
            &token,
            Some(&json!({"name": "brass lamp", "price": 12.0})),
        )
        .await,
        200,
    )
    .await;
    // The deletion goes through B: one order per item whichever instance writes.
    assert_eq!(
        b.send(reqwest::Method::DELETE, &path, &token, None)
            .await
            .status(),
        204
    );
    for socket in [&mut on_b, &mut on_a] {
        assert_eq!(next_json(socket).await, event("item.created", &item));
        assert_eq!(next_json(socket).await, event("item.updated", &updated));
        assert_eq!(next_json(socket).await, event("item.deleted", &updated));
    }

    // An event of ~9000 bytes (over PostgreSQL's 8000-byte NOTIFY payload) still arrives.
    let description = "x".repeat(9000);
    let big = json_with_status(
        a.send(
            reqwest::Method::POST,
            "/items/",
            &token,
            Some(&json!({"name": "big", "price": 1.0, "description": description})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(big["description"], json!(description));
    for socket in [&mut on_b, &mut on_a] {
        let received = next_json(socket).await;
        assert_eq!(received, event("item.created", &big));
    }
    assert_silent(&mut on_b).await;
    assert_silent(&mut on_a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_written_through_one_instance_reaches_a_socket_on_the_other_through_redis() {
    let Ok(redis_url) = std::env::var("BULWARK_TEST_REDIS_URL") else {
        eprintln!("BULWARK_TEST_REDIS_URL is not set: Redis cross-instance WebSocket test skipped");
        return;
    };
    events_cross_instances(&[("BULWARK_REDIS_URL", redis_url.as_str())], "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_written_through_one_instance_reaches_a_socket_on_the_other_through_postgres() {
    events_cross_instances(&[], "postgres").await;
}
