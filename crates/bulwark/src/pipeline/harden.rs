//! The hardening around every request: body-size limit (`413`), panic catching (`500`),
//! request timeout (`408`), the error-body shape, `Connection: close` after an unread body, and
//! the security headers.
//!
//! **Why in one place.** These steps could be five layers (tower-http's `RequestBodyLimit` and
//! `CatchPanic`, a timeout, a response map and [`crate::headers::SecurityHeadersLayer`]), plus
//! axum's `DefaultBodyLimit`. Each is cheap alone, but together they cost, on every request, five
//! nested futures that move the response through each other, two response-body boxes, a request
//! extension, and a body wrapper even on requests without a body.
//!
//! **The steps**, in the order a request meets them:
//! - A declared `Content-Length` over the limit is answered `413` at once. A request with a body
//!   gets it wrapped in [`http_body_util::Limited`], so a chunked or lying body fails at the
//!   limit too (axum's extractors answer that `413`). A request without a body (`GET`, …) is
//!   passed through as it is.
//! - A panic in the service beneath, while it is called or polled, becomes a generic `500`; its
//!   message is logged, never sent ([`crate::error::panic_response`]).
//! - The `408` timer is armed only once the request first waits, so a request answered in its
//!   first poll (a refused token, an over-limit client, a cached read) sets no timer. The limit
//!   therefore runs from the moment a request first waits (on its body, the database, a lock);
//!   what it does before that is a few microseconds of CPU, which no timer could interrupt
//!   anyway: a future is only ever stopped where it waits.
//! - Every answer, the pipeline's own included, then gets the contract's error-body shape
//!   ([`crate::error::normalize_error_response`]), `Connection: close` when it answers before
//!   the request body was read (`408`, `413`), and the security headers
//!   ([`crate::headers::apply_security_headers`]).

use std::time::{Duration, Instant};

use axum::{body::Body, response::Response};
use http::{HeaderValue, Request, StatusCode, header};

use super::{ACCESS_TARGET, X_REQUEST_ID};
use crate::error::normalize_error_response;

/// The hardening settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Harden {
    pub(super) max_body: usize,
    pub(super) timeout: Duration,
    pub(super) hsts: bool,
}

impl Harden {
    /// The declared `Content-Length`, when it is over the limit.
    pub(super) fn declared_too_long<B>(&self, request: &Request<B>) -> bool {
        request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > self.max_body as u64)
    }
}

/// The request's closing events. The request id of a request the guard saw is set by its
/// scope; a request answered before (413 on the declared length, 408, a panic) gets an info
/// event of its own. A server error is also an `error` event, as a failure to look at; the
/// span's closing event is at debug.
pub(super) fn log_response(response: &Response, started: Option<Instant>) {
    let status = response.status().as_u16();
    let micros = started.map_or(0, |at| at.elapsed().as_micros());
    let request_id = response
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok());
    tracing::debug!(status, latency = %format_args!("{micros} μs"), "finished processing request");
    if request_id.is_none() {
        tracing::info!(
            target: ACCESS_TARGET,
            status,
            "request answered before the pipeline finished"
        );
    }
    if response.status().is_server_error() {
        tracing::error!(status, request_id, "response failed");
    }
}

/// A response with `status` and an empty body (shaped by [`finish`]).
pub(super) fn status_only(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// The error-body shape, `Connection: close` after an unread body, the security headers.
pub(super) fn finish(response: Response, hsts: bool) -> Response {
    let mut response = normalize_error_response(response);
    // A 413 or 408 answers before the request body was read, so hyper closes the connection
    // after the response (RFC 9112 §9.3). `Connection: close` says so, so that clients do not
    // send their next request on a connection about to close.
    if matches!(
        response.status(),
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
    ) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    crate::headers::apply_security_headers(response.headers_mut(), hsts);
    response
}
