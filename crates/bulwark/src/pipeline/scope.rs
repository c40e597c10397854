//! The request's context from the pipeline's first step to its answer: its id, client and
//! start, reported to the [`Observer`] at the end.

use std::{net::IpAddr, time::Instant};

use axum::response::Response;
use http::HeaderValue;

use super::{Finished, Observer, X_REQUEST_ID, routes::RouteSlot};

/// Whether the request span (and its closing event) is made: `debug` is on for this crate's
/// target.
pub(super) fn request_span_enabled() -> bool {
    tracing::enabled!(tracing::Level::DEBUG)
}

fn sane_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new request id: a random (v4) UUID, drawn from a thread-local generator seeded by the OS
/// (uuid's `fast-rng`: one system call per request would cost more than the rest of a cheap
/// request). Ids need to be unique, not secret.
fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The request context, from the pipeline's first step to the answer: gives the request an id
/// (`X-Request-Id` from a trusted proxy, else a new UUID), records route template, client IP
/// and request id on the request span, and on the way out reports the request to the observer
/// and echoes the id.
pub(super) struct RequestScope {
    request_id: HeaderValue,
    /// The route's index in the pipeline's table (`None`: no route matched).
    pub(super) route: Option<usize>,
    method: http::Method,
    client_ip: IpAddr,
    started: Instant,
}

impl RequestScope {
    /// Opens the scope of `request` to the route `slot` (at `route` in the table), on behalf of
    /// `client_ip`; `trusted_peer` says whether the socket peer is a trusted proxy (whose
    /// request id is kept).
    pub(super) fn begin<R, B>(
        trusted_peer: bool,
        client_ip: IpAddr,
        route: Option<usize>,
        slot: &RouteSlot<R>,
        request: &http::Request<B>,
    ) -> Self {
        let incoming = trusted_peer
            .then(|| request.headers().get(&X_REQUEST_ID))
            .flatten()
            .filter(|v| v.to_str().is_ok_and(sane_request_id))
            .cloned();
        let request_id = incoming.unwrap_or_else(new_request_id);
        // The request span is made by the hardening step, and only when this says so.
        if request_span_enabled() {
            let span = tracing::Span::current();
            span.record("route", &*slot.template);
            span.record("request_id", request_id.to_str().unwrap_or_default());
            span.record("client_ip", tracing::field::display(client_ip));
        }
        Self {
            request_id,
            route,
            method: request.method().clone(),
            client_ip,
            started: Instant::now(),
        }
    }

    /// Closes the scope with the `response` about to be sent: the observer's report, then the
    /// request id.
    pub(super) fn finish<O: Observer>(
        self,
        observer: &O,
        slot: &RouteSlot<O::Route>,
        mut response: Response,
    ) -> Response {
        let finished = Finished {
            method: &self.method,
            route: &slot.template,
            client_ip: self.client_ip,
            request_id: self.request_id.to_str().unwrap_or("-"),
            elapsed: self.started.elapsed(),
        };
        observer.finished(slot.observed(observer), &finished, &response);
        response.headers_mut().insert(X_REQUEST_ID, self.request_id);
        response
    }
}
