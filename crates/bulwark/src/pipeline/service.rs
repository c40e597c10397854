//! [`PipelineService`]: the pipeline around one service (a router).

use std::{
    convert::Infallible,
    net::SocketAddr,
    panic::{AssertUnwindSafe, catch_unwind},
    task::{Context, Poll},
    time::Instant,
};

use axum::{body::Body, extract::Request, response::Response};
use http_body::Body as _;
use http_body_util::Limited;
use tower::Service;

use super::{
    Observer, PipelineFuture,
    future::{InnerFuture, State},
    guard::Guard,
    harden::{self, Harden},
    scope::request_span_enabled,
};

/// The guard, with CORS around it when origins are listed.
// Boxing the CORS variant would make every clone of the service (one per request) allocate.
#[allow(clippy::large_enum_variant)]
pub(super) enum Inner<S, O: Observer> {
    Plain(Guard<S, O>),
    Cors(tower_http::cors::Cors<Guard<S, O>>),
}

impl<S: Clone, O: Observer> Clone for Inner<S, O> {
    fn clone(&self) -> Self {
        match self {
            Self::Plain(guard) => Self::Plain(guard.clone()),
            Self::Cors(cors) => Self::Cors(cors.clone()),
        }
    }
}

/// The pipeline around a service (your router), made by [`super::PipelineLayer`].
///
/// **Cost.** Most requests never wait before their route: the key ring knows the token's key,
/// the in-memory rate-limit store answers at once, and only cookie-authenticated writes need a
/// CSRF check. Those steps then run in `call` itself, and the future only waits on the route's:
/// no boxed future, no extra clone of the router. The first step that would wait (a key to
/// reload, a Redis round trip, a CSRF form to read) takes the rest of the pipeline into one
/// boxed future.
pub struct PipelineService<S, O: Observer = ()> {
    pub(super) inner: Inner<S, O>,
    pub(super) harden: Harden,
}

impl<S: Clone, O: Observer> Clone for PipelineService<S, O> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            harden: self.harden,
        }
    }
}

impl<S, O: Observer> std::fmt::Debug for PipelineService<S, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineService").finish_non_exhaustive()
    }
}

impl<S, O: Observer> PipelineService<S, O> {
    /// This service for the requests of one connection, from `peer`: they need not carry a
    /// `ConnectInfo` (see `bulwark::serve::serve_with_peers`, which saves every request that
    /// extension map).
    #[must_use]
    pub fn for_peer(&self, peer: SocketAddr) -> Self
    where
        S: Clone,
    {
        let mut service = self.clone();
        match &mut service.inner {
            Inner::Plain(guard) => guard.peer = Some(peer),
            Inner::Cors(cors) => cors.get_mut().peer = Some(peer),
        }
        service
    }
}

impl<S, O> Service<Request<Body>> for PipelineService<S, O>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    O: Observer,
{
    type Response = Response;
    type Error = Infallible;
    type Future = PipelineFuture<S::Future, O>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match &mut self.inner {
            Inner::Plain(guard) => Service::<Request>::poll_ready(guard, cx),
            Inner::Cors(cors) => Service::<Request>::poll_ready(cors, cx),
        }
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // No path or query (they carry ids and user data) and no header: the route template,
        // client IP and request id are recorded once the guard found them. A debug span: with
        // its level filtered out this is one cached check, and no clock read.
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
        let state = if !bodyless && self.harden.declared_too_long(&request) {
            State::Answered {
                answer: Some(harden::status_only(http::StatusCode::PAYLOAD_TOO_LARGE)),
            }
        } else {
            let request = if bodyless {
                request
            } else {
                let max = self.harden.max_body;
                request.map(|body| Body::new(Limited::new(body, max)))
            };
            let inner = &mut self.inner;
            match catch_unwind(AssertUnwindSafe(|| match inner {
                Inner::Plain(guard) => InnerFuture::Plain {
                    future: guard.call(request),
                },
                Inner::Cors(cors) => InnerFuture::Cors {
                    future: cors.call(request),
                },
            })) {
                Ok(future) => State::Running { future },
                Err(panic) => State::Answered {
                    answer: Some(crate::error::panic_response(panic)),
                },
            }
        };
        drop(_entered);
        PipelineFuture {
            state,
            span,
            started,
            timer: None,
            timeout: self.harden.timeout,
            hsts: self.harden.hsts,
        }
    }
}
