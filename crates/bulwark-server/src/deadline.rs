//! The request timeout (`408`), with its timer armed only once a request waits.
//!
//! tower-http's `TimeoutLayer` arms a timer for every request: a clock read, a timer-wheel
//! insertion and its removal, even for a request answered in its first poll, and those (refusals
//! of bad tokens, over-limit clients, cached reads) are what a flood is made of. [`DeadlineLayer`]
//! polls the request first and arms the timer only if the request is still pending, so the time
//! limit runs from the moment a request first waits (on its body, the database, a lock). What it
//! does before that is a few microseconds of CPU, which no timer could interrupt anyway: a future
//! is only ever stopped where it waits.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{Request, Response, StatusCode};
use tokio::time::Sleep;
use tower::{Layer, Service};

/// Answers `408 Request Timeout` (empty body, shaped later like every error) for a request still
/// unanswered `after` its first wait.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    after: Duration,
}

impl DeadlineLayer {
    /// A layer with the time limit `after`.
    pub fn new(after: Duration) -> Self {
        Self { after }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            after: self.after,
        }
    }
}

/// The service made by [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    after: Duration,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Deadline<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        DeadlineFuture {
            inner: self.inner.call(request),
            after: self.after,
            timer: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Deadline`].
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        after: Duration,
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<F, B, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(output) = this.inner.poll(cx) {
            return Poll::Ready(output);
        }
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep(*this.after)));
        }
        if let Some(timer) = this.timer.as_pin_mut() {
            ready!(timer.poll(cx));
        }
        let mut response = Response::new(B::default());
        *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{ServiceExt as _, service_fn};

    use super::*;

    async fn answer_after(wait: Duration) -> Response<String> {
        let service = DeadlineLayer::new(Duration::from_millis(50)).layer(service_fn(
            move |_: Request<()>| async move {
                tokio::time::sleep(wait).await;
                Ok::<_, Infallible>(Response::new("done".to_owned()))
            },
        ));
        service.oneshot(Request::new(())).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_answered_in_time_is_untouched() {
        let response = answer_after(Duration::from_millis(10)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), "done");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_still_waiting_at_the_deadline_is_answered_408() {
        let started = tokio::time::Instant::now();
        let response = answer_after(Duration::from_secs(3600)).await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.body(), "");
        assert_eq!(started.elapsed(), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_is_armed_only_once_the_request_waits() {
        let mut service = DeadlineLayer::new(Duration::from_millis(50)).layer(service_fn(
            |request: Request<bool>| async move {
                if *request.body() {
                    tokio::task::yield_now().await;
                }
                Ok::<_, Infallible>(Response::new(String::new()))
            },
        ));
        let mut cx = Context::from_waker(std::task::Waker::noop());

        let mut at_once = std::pin::pin!(service.call(Request::new(false)));
        assert!(at_once.as_mut().poll(&mut cx).is_ready());
        assert!(at_once.timer.is_none());

        let mut waiting = std::pin::pin!(service.call(Request::new(true)));
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert!(waiting.timer.is_some());
    }
}
