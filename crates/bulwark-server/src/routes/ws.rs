//! `GET /ws`: a WebSocket that receives one JSON message per change to the caller's own items.
//!
//! Authentication is the session cookie, or a bearer token passed as the second WebSocket
//! subprotocol (`Sec-WebSocket-Protocol: bearer, <token>`; the server answers `bearer`). A token
//! in the query string is refused: URLs end up in logs and browser history. A handshake whose
//! `Origin` is neither the server's own nor in `allowed_origins` is refused with 403, since a
//! WebSocket is not subject to the same-origin policy and would otherwise let any site use the
//! victim's cookie (cross-site WebSocket hijacking).
//!
//! Limits: frames and messages over 64 KiB, more than 20 client messages in a second, or 60 s
//! without any client frame (pings are sent every 20 s, and browsers answer them) close the
//! socket; so do the token's expiry or revocation (of the token, its user or its signing key),
//! checked every second. At most
//! [`MAX_SOCKETS_PER_USER`](crate::sockets::MAX_SOCKETS_PER_USER) sockets per user.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{
        State,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use bulwark::{error::HttpError, jwt::Claims};
use tokio::sync::broadcast::error::RecvError;

use crate::{sessions::SESSION_COOKIE, state::AppState};

/// Largest frame or message accepted from a client.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Client messages allowed per second.
pub const MAX_MESSAGES_PER_SECOND: u32 = 20;
/// Silence after which a socket is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// WebSocket close codes used here.
mod close {
    pub(super) const GOING_AWAY: u16 = 1001;
    pub(super) const POLICY: u16 = 1008;
    pub(super) const TOO_BIG: u16 = 1009;
    pub(super) const TRY_AGAIN: u16 = 1013;
}

/// The WebSocket route's path.
pub const PATH: &str = "/ws";

/// The WebSocket route (not in the OpenAPI document, which cannot describe it).
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route(PATH, axum::routing::get(ws))
}

fn query_has_token(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| {
        q.split('&').any(|pair| {
            let key = pair
                .split('=')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            matches!(
                key.as_str(),
                "token" | "access_token" | "jwt" | "bearer" | "auth" | "authorization"
            )
        })
    })
}

/// The token of `Sec-WebSocket-Protocol: bearer, <token>`.
fn protocol_token(headers: &HeaderMap) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_owned())
        .collect();
    let at = values
        .iter()
        .position(|v| v.eq_ignore_ascii_case("bearer"))?;
    values.get(at + 1).filter(|t| !t.is_empty()).cloned()
}

async fn ws(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if query_has_token(&uri) {
        return HttpError::new(
            StatusCode::BAD_REQUEST,
            "Tokens are not accepted in the query string",
        )
        .into_response();
    }
    if !state.csrf.origin_allowed(&headers, state.scheme()) {
        return HttpError::new(StatusCode::FORBIDDEN, "Origin not allowed").into_response();
    }
    let by_protocol = protocol_token(&headers);
    let token = by_protocol
        .clone()
        .or_else(|| bulwark::cookie::get(&headers, SESSION_COOKIE).map(str::to_owned));
    let Some(token) = token else {
        return HttpError::unauthorized("Not authenticated").into_response();
    };
    let claims = match state.jwt.verify_refreshing(&token).await {
        Ok(claims) => claims,
        Err(_) => return HttpError::unauthorized("Could not validate credentials").into_response(),
    };
    let Ok(user) = claims.sub.parse::<i64>() else {
        return HttpError::unauthorized("Could not validate credentials").into_response();
    };
    let Ok(upgrade) = upgrade else {
        return HttpError::new(StatusCode::BAD_REQUEST, "Expected a WebSocket upgrade")
            .into_response();
    };
    let Some(slot) = state.sockets.acquire(user) else {
        return HttpError::new(StatusCode::TOO_MANY_REQUESTS, "Too many open WebSockets")
            .into_response();
    };
    let upgrade = upgrade
        .max_frame_size(MAX_MESSAGE_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES);
    let upgrade = if by_protocol.is_some() {
        upgrade.protocols(["bearer"])
    } else {
        upgrade
    };
    // Subscribe before answering 101: a change the client makes right after the handshake
    // must reach it.
    let events = state.events.subscribe();
    upgrade.on_upgrade(move |socket| async move {
        run(socket, state, events, token, claims, user).await;
        drop(slot);
    })
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn run(
    mut socket: WebSocket,
    state: AppState,
    mut events: tokio::sync::broadcast::Receiver<crate::events::Envelope>,
    token: String,
    claims: Arc<Claims>,
    user: i64,
) {
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_ping = Instant::now();
    let mut last_heard = Instant::now();
    // Arrival times of the last MAX_MESSAGES_PER_SECOND client messages (a sliding window:
    // no second, wherever it starts, may hold more).
    let mut recent: VecDeque<Instant> = VecDeque::with_capacity(MAX_MESSAGES_PER_SECOND as usize);
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(message)) => {
                    last_heard = Instant::now();
                    if recent.len() >= MAX_MESSAGES_PER_SECOND as usize {
                        if recent
                            .front()
                            .is_some_and(|first| first.elapsed() < Duration::from_secs(1))
                        {
                            close_with(&mut socket, close::POLICY, "too many messages").await;
                            return;
                        }
                        recent.pop_front();
                    }
                    recent.push_back(last_heard);
                    if let Message::Close(_) = message {
                        return;
                    }
                }
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "websocket receive failed");
                    close_with(&mut socket, close::TOO_BIG, "message too big or malformed").await;
                    return;
                }
                None => return,
            },
            event = events.recv() => match event {
                Ok(envelope) if envelope.owner_id == user => {
                    if socket.send(Message::Text(Utf8Bytes::from(envelope.json.as_ref()))).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    close_with(&mut socket, close::TRY_AGAIN, "too far behind; reconnect").await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if claims.exp < now() {
                    close_with(&mut socket, close::POLICY, "token expired").await;
                    return;
                }
                // Revocation of the token or its user, or of the key that signed it.
                if state.jwt.verify(&token).is_err() {
                    close_with(&mut socket, close::POLICY, "token revoked").await;
                    return;
                }
                if last_heard.elapsed() >= IDLE_TIMEOUT {
                    close_with(&mut socket, close::POLICY, "idle").await;
                    return;
                }
                if last_ping.elapsed() >= Duration::from_secs(20) {
                    last_ping = Instant::now();
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                }
            }
            _ = shutdown.changed() => {
                close_with(&mut socket, close::GOING_AWAY, "server shutting down").await;
                return;
            }
        }
    }
}
