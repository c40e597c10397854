//! The hardening around every route, as one layer: body-size limit (`413`), panic catching
//! (`500`), request timeout (`408`), the error-body shape, `Connection: close` after an unread
//! body, and the security headers.
//!
//! **Why one layer.** These steps used to be five layers (tower-http's `RequestBodyLimit` and
//! `CatchPanic`, a timeout, a response map and `bulwark::headers::SecurityHeadersLayer`), plus
//! axum's `DefaultBodyLimit`. Each is cheap alone, but together they cost, on every request, five
//! nested futures that move the response through each other, two response-body boxes, a request
//! extension, and a body wrapper even on requests without a body. The security of each step is
//! unchanged; what is gone is the plumbing between them (docs/performance.md).
//!
//! **The steps**, in the order a request meets them:
//! - A declared `Content-Length` over the limit is answered `413` at once. A request with a body
//!   gets it wrapped in [`http_body_util::Limited`], so a chunked or lying body fails at the
//!   limit too (axum's extractors answer that `413`). A request without a body (`GET`, …) is
//!   passed through as it is.
//! - A panic in the service beneath, while it is called or polled, becomes a generic `500`; its
//!   message is logged, never sent ([`bulwark::error::panic_response`]).
//! - The `408` timer is armed only once the request first waits, so a request answered in its
//!   first poll (a refused token, an over-limit client, a cached read) sets no timer: a clock
//!   read, a timer-wheel insertion and its removal saved. The limit therefore runs from the
//!   moment a request first waits (on its body, the database, a lock); what it does before that
//!   is a few microseconds of CPU, which no timer could interrupt anyway: a future is only ever
//!   stopped where it waits.
//! - Every answer, the layer's own included, then gets the contract's error-body shape
//!   ([`bulwark::error::normalize_error_response`]), `Connection: close` when it answers before
//!   the request body was read (`408`, `413`), and the security headers
//!   ([`bulwark::headers::apply_security_headers`]).

use std::{
    convert::Infallible,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{body::Body, response::Response};
use bulwark::error::{normalize_error_response, panic_response};
use http::{HeaderValue, Request, StatusCode, header};
use http_body::Body as _;
use http_body_util::Limited;
use tokio::time::Sleep;
use tower::{Layer, Service};
use tracing::Level;

/// Builds [`Harden`].
#[derive(Debug, Clone, Copy)]
pub struct HardenLayer {
    max_body: usize,
    timeout: Duration,
    hsts: bool,
}

impl HardenLayer {
    /// Bodies up to `max_body` bytes, answers within `timeout` of the first wait, and HSTS when
    /// `hsts` (the server is reached over HTTPS).
    pub fn new(max_body: usize, timeout: Duration, hsts: bool) -> Self {
        Self {
            max_body,
            timeout,
            hsts,
        }
    }
}

impl<S> Layer<S> for HardenLayer {
    type Service = Harden<S>;

    fn layer(&self, inner: S) -> Harden<S> {
        Harden {
            inner,
            config: *self,
        }
    }
}

/// The service made by [`HardenLayer`].
#[derive(Debug, Clone)]
pub struct Harden<S> {
    inner: S,
    config: HardenLayer,
}

impl<S> Harden<S> {
    /// The service inside.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The declared `Content-Length`, when it is over the limit.
    fn declared_too_long<B>(&self, request: &Request<B>) -> bool {
        request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > self.config.max_body as u64)
    }
}

impl<S> Service<Request<Body>> for Harden<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = HardenFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // No path or query (they carry ids and user data) and no header: the route template,
        // client IP and request id are recorded by `telemetry::RequestScope` once routing has
        // run. A debug span: at info, the access line (`telemetry::AccessLog`) says all this
        // for a fraction of the cost, and with the span's level filtered out this is one cached
        // check, and no clock read.
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            route = tracing::field::Empty,
            client_ip = tracing::field::Empty,
            request_id = tracing::field::Empty,
        );
        let started = request_span_enabled().then(Instant::now);
        let _entered = span.enter();
        tracing::debug!("started processing request");
        // A request without a body (hyper knows: no `Content-Length` over 0, not chunked) has
        // nothing to limit.
        let bodyless = request.body().is_end_stream();
        let state = if !bodyless && self.declared_too_long(&request) {
            State::Answered {
                answer: Some(status_only(StatusCode::PAYLOAD_TOO_LARGE)),
            }
        } else {
            let request = if bodyless {
                request
            } else {
                let max = self.config.max_body;
                request.map(|body| Body::new(Limited::new(body, max)))
            };
            match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
                Ok(future) => State::Running { future },
                Err(panic) => State::Answered {
                    answer: Some(panic_response(panic)),
                },
            }
        };
        drop(_entered);
        HardenFuture {
            state,
            span,
            started,
            timer: None,
            timeout: self.config.timeout,
            hsts: self.config.hsts,
        }
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] future: F },
        Answered { answer: Option<Response> },
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Harden`].
    pub struct HardenFuture<F> {
        #[pin]
        state: State<F>,
        span: tracing::Span,
        started: Option<Instant>,
        #[pin]
        timer: Option<Sleep>,
        timeout: Duration,
        hsts: bool,
    }
}

impl<F> Future for HardenFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.span.enter();
        let response = match this.state.as_mut().project() {
            StateProj::Answered { answer } => answer
                .take()
                .unwrap_or_else(|| status_only(StatusCode::INTERNAL_SERVER_ERROR)),
            StateProj::Running { future } => {
                match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(Poll::Ready(Ok(response))) => response,
                    Ok(Poll::Ready(Err(never))) => match never {},
                    Err(panic) => {
                        // The inner future is not polled again after a panic.
                        this.state.set(State::Answered { answer: None });
                        panic_response(panic)
                    }
                    Ok(Poll::Pending) => {
                        if this.timer.is_none() {
                            this.timer.set(Some(tokio::time::sleep(*this.timeout)));
                        }
                        match this.timer.as_mut().as_pin_mut().map(|t| t.poll(cx)) {
                            Some(Poll::Ready(())) => status_only(StatusCode::REQUEST_TIMEOUT),
                            _ => return Poll::Pending,
                        }
                    }
                }
            }
        };
        let response = finish(response, *this.hsts);
        log_response(&response, *this.started);
        Poll::Ready(Ok(response))
    }
}

/// Whether the request span (and its closing event) is made: `debug` is on for this module's
/// target. `telemetry::RequestScope` asks too before it records fields on the span.
pub(crate) fn request_span_enabled() -> bool {
    tracing::enabled!(Level::DEBUG)
}

/// The request's closing events. The access line of a routed request is written by the
/// pipeline (`telemetry::RequestScope`, which sets `X-Request-Id`); a request answered here
/// before it finished (413 on the declared length, 408, a panic) gets an info event of its own.
/// A server error is also an `error` event, as a failure to look at; the span's closing event
/// is at debug.
fn log_response(response: &Response, started: Option<Instant>) {
    let status = response.status().as_u16();
    let micros = started.map_or(0, |at| at.elapsed().as_micros());
    let request_id = response
        .headers()
        .get(&crate::telemetry::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok());
    tracing::debug!(status, latency = %format_args!("{micros} μs"), "finished processing request");
    if request_id.is_none() {
        tracing::info!(
            target: crate::telemetry::ACCESS_TARGET,
            status,
            "request answered before the pipeline finished"
        );
    }
    if response.status().is_server_error() {
        tracing::error!(status, request_id, "response failed");
    }
}

/// A response with `status` and an empty body (shaped by [`finish`]).
fn status_only(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// The error-body shape, `Connection: close` after an unread body, the security headers.
fn finish(response: Response, hsts: bool) -> Response {
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
    bulwark::headers::apply_security_headers(response.headers_mut(), hsts);
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use tower::{ServiceExt as _, service_fn};

    use super::*;

    fn harden<F, Fut>(handler: F) -> Harden<tower::util::ServiceFn<F>>
    where
        F: FnMut(Request<Body>) -> Fut,
        Fut: Future<Output = Result<Response, Infallible>>,
    {
        HardenLayer::new(16, Duration::from_millis(50), false).layer(service_fn(handler))
    }

    async fn detail(response: Response) -> String {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        value["detail"].as_str().unwrap().to_owned()
    }

    async fn answer_after(wait: Duration) -> Response {
        harden(move |_| async move {
            tokio::time::sleep(wait).await;
            Ok(Response::new(Body::from("done")))
        })
        .oneshot(Request::new(Body::empty()))
        .await
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_answered_in_time_is_untouched_but_hardened() {
        let response = answer_after(Duration::from_millis(10)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(response.headers().get(header::CONNECTION).is_none());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"done");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_still_waiting_at_the_deadline_is_answered_408_and_closed() {
        let started = tokio::time::Instant::now();
        let response = answer_after(Duration::from_secs(3600)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert!(!detail(response).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_is_armed_only_once_the_request_waits() {
        let mut service = harden(|request: Request<Body>| async move {
            if request.headers().contains_key("wait") {
                tokio::task::yield_now().await;
            }
            Ok(Response::new(Body::empty()))
        });
        let mut cx = Context::from_waker(std::task::Waker::noop());

        let mut at_once = std::pin::pin!(service.call(Request::new(Body::empty())));
        assert!(at_once.as_mut().poll(&mut cx).is_ready());
        assert!(at_once.timer.is_none());

        let waiting = Request::builder()
            .header("wait", "1")
            .body(Body::empty())
            .unwrap();
        let mut waiting = std::pin::pin!(service.call(waiting));
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert!(waiting.timer.is_some());
    }

    #[tokio::test]
    async fn a_declared_body_over_the_limit_is_refused_413_unread() {
        let response = harden(|_| async { panic!("must not be called") })
            .oneshot(
                Request::builder()
                    .header(header::CONTENT_LENGTH, "17")
                    .body(Body::from("x".repeat(17)))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[tokio::test]
    async fn a_body_is_cut_at_the_limit_whatever_it_declares() {
        let read = |request: Request<Body>| async move {
            let status = match request.into_body().collect().await {
                Ok(_) => StatusCode::OK,
                Err(_) => StatusCode::PAYLOAD_TOO_LARGE,
            };
            Ok(status_only(status))
        };
        let long = harden(read)
            .oneshot(Request::new(Body::from("x".repeat(17))))
            .await
            .unwrap();
        assert_eq!(long.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let short = harden(read)
            .oneshot(Request::new(Body::from("x".repeat(16))))
            .await
            .unwrap();
        assert_eq!(short.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_panic_becomes_a_generic_500_without_its_message() {
        let response = harden(|_| async { panic!("secret-panic-text") })
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert!(!detail(response).await.contains("secret"));
    }

    #[tokio::test]
    async fn a_panic_while_called_becomes_a_500_too() {
        let service = HardenLayer::new(16, Duration::from_secs(1), true).layer(tower::service_fn(
            |_: Request<Body>| -> std::future::Ready<Result<Response, Infallible>> {
                panic!("in call")
            },
        ));
        let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            response
                .headers()
                .contains_key(header::STRICT_TRANSPORT_SECURITY)
        );
    }

    #[tokio::test]
    async fn error_bodies_get_the_contract_shape() {
        let response = harden(|_| async { Ok(status_only(StatusCode::NOT_FOUND)) })
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(detail(response).await, "Not Found");
    }
}
