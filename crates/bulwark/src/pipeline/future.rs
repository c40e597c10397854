//! The futures of the pipeline: [`PipelineFuture`] (hardening around everything) and, inside
//! it, [`GuardFuture`] (the steps in front of the route).

use std::{
    convert::Infallible,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use axum::response::{IntoResponse as _, Response};
use http::StatusCode;
use tokio::time::Sleep;

use super::{Observer, builder::Shared, harden, scope::RequestScope};
use crate::rate_limit::Decision;

/// What the pipeline does once the route answered.
pub(super) struct Rest<O: Observer> {
    pub(super) shared: Arc<Shared<O>>,
    pub(super) scope: RequestScope,
    pub(super) decision: Option<Decision>,
}

impl<O: Observer> Rest<O> {
    pub(super) fn finish(self, mut response: Response) -> Response {
        if let Some(decision) = self.decision {
            decision.apply_headers(response.headers_mut());
        }
        self.shared.finish(self.scope, response)
    }
}

pin_project_lite::pin_project! {
    /// The future of the guard: the route's own future when every step ran at once (the
    /// common case), else the boxed rest of the pipeline.
    #[project = GuardProj]
    pub(super) enum GuardFuture<F, O: Observer> {
        /// Waiting on the route; then its response gets the rate-limit headers and closes the
        /// request scope.
        Route { #[pin] future: F, rest: Option<Rest<O>> },
        /// A step had to wait.
        Waiting { future: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>> },
        /// Answered without the route (a refusal).
        Ready { response: Option<Response> },
    }
}

impl<F, O: Observer> GuardFuture<F, O> {
    pub(super) fn ready(response: Response) -> Self {
        Self::Ready {
            response: Some(response),
        }
    }
}

impl<F, O> Future for GuardFuture<F, O>
where
    F: Future<Output = Result<Response, Infallible>>,
    O: Observer,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardProj::Route { future, rest } => {
                let response = match ready!(future.poll(cx)) {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Poll::Ready(Ok(match rest.take() {
                    Some(rest) => rest.finish(response),
                    None => response,
                }))
            }
            GuardProj::Waiting { future } => future.as_mut().poll(cx),
            GuardProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| crate::error::HttpError::internal().into_response()))),
        }
    }
}

pin_project_lite::pin_project! {
    /// The guard's future, with CORS around it or not.
    #[project = InnerProj]
    pub(super) enum InnerFuture<F, O: Observer> {
        /// No CORS configured.
        Plain { #[pin] future: GuardFuture<F, O> },
        /// CORS headers on the way out.
        Cors { #[pin] future: tower_http::cors::ResponseFuture<GuardFuture<F, O>> },
    }
}

impl<F, O> Future for InnerFuture<F, O>
where
    F: Future<Output = Result<Response, Infallible>>,
    O: Observer,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            InnerProj::Plain { future } => future.poll(cx),
            InnerProj::Cors { future } => future.poll(cx),
        }
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    pub(super) enum State<F, O: Observer> {
        Running { #[pin] future: InnerFuture<F, O> },
        Answered { answer: Option<Response> },
    }
}

pin_project_lite::pin_project! {
    /// The future of [`super::PipelineService`], over the future `F` of the service inside.
    pub struct PipelineFuture<F, O: Observer> {
        #[pin]
        pub(super) state: State<F, O>,
        pub(super) span: tracing::Span,
        pub(super) started: Option<Instant>,
        #[pin]
        pub(super) timer: Option<Sleep>,
        pub(super) timeout: Duration,
        pub(super) hsts: bool,
    }
}

impl<F, O> Future for PipelineFuture<F, O>
where
    F: Future<Output = Result<Response, Infallible>>,
    O: Observer,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.span.enter();
        let response = match this.state.as_mut().project() {
            StateProj::Answered { answer } => answer
                .take()
                .unwrap_or_else(|| harden::status_only(StatusCode::INTERNAL_SERVER_ERROR)),
            StateProj::Running { future } => {
                match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(Poll::Ready(Ok(response))) => response,
                    Ok(Poll::Ready(Err(never))) => match never {},
                    Err(panic) => {
                        // The inner future is not polled again after a panic.
                        this.state.set(State::Answered { answer: None });
                        crate::error::panic_response(panic)
                    }
                    Ok(Poll::Pending) => {
                        if this.timer.is_none() {
                            this.timer.set(Some(tokio::time::sleep(*this.timeout)));
                        }
                        match this.timer.as_mut().as_pin_mut().map(|t| t.poll(cx)) {
                            Some(Poll::Ready(())) => {
                                harden::status_only(StatusCode::REQUEST_TIMEOUT)
                            }
                            _ => return Poll::Pending,
                        }
                    }
                }
            }
        };
        let response = harden::finish(response, *this.hsts);
        harden::log_response(&response, *this.started);
        Poll::Ready(Ok(response))
    }
}
