//! The per-route request pipeline, as one layer: client identity → request context →
//! authentication → rate limiting → CSRF → the route.
//!
//! Each step is the library's own ([`TrustedProxies::client_ip`], [`JwtAuth::authenticate_request`],
//! [`RateLimitPolicy::admit`], [`Csrf::check_request`]) or the server's
//! ([`crate::telemetry::RequestScope`]), in the order their `from_fn` middlewares would run. They
//! are composed here by hand because every `axum::middleware::from_fn` layer costs, per request,
//! a boxed future, a boxed `Next`, and two clones of the whole boxed stack beneath it (axum
//! clones a route's service for each call): five such layers cost more than the request itself.
//!
//! **Steps run in place when they can.** Most requests never wait before their route: the key
//! ring knows the token's key, the in-memory rate-limit store answers at once, and only
//! cookie-authenticated writes need a CSRF check. [`Guard`] runs those steps in `call` itself,
//! through each step's non-waiting form ([`JwtAuth::authenticate_request_now`],
//! [`RateLimitPolicy::admit_now`], [`Csrf::applies_to`]), calls the route, and its future only
//! waits on the route's. The first step that would wait (a key to reload, a Redis round trip,
//! a CSRF form to read) takes the rest of the pipeline into one boxed future instead; each
//! non-waiting form changes nothing when it declines, so no step runs twice. The common path
//! thus costs no boxed pipeline future (it was ~1.7 KB, allocated and copied per request) and no
//! extra clone of the route.
//!
//! [`JwtAuth::authenticate_request`]: bulwark::jwt::JwtAuth::authenticate_request
//! [`JwtAuth::authenticate_request_now`]: bulwark::jwt::JwtAuth::authenticate_request_now
//! [`RateLimitPolicy::admit`]: bulwark::rate_limit::RateLimitPolicy::admit
//! [`RateLimitPolicy::admit_now`]: bulwark::rate_limit::RateLimitPolicy::admit_now
//! [`Csrf::check_request`]: bulwark::csrf::Csrf::check_request
//! [`Csrf::applies_to`]: bulwark::csrf::Csrf::applies_to

use std::{
    convert::Infallible,
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll, ready},
};

use axum::response::IntoResponse as _;
use axum::{
    extract::{ConnectInfo, MatchedPath, Request},
    response::Response,
};
use bulwark::{
    client_ip::{ClientIp, TrustedProxies},
    csrf::Scheme,
    rate_limit::{Admission, Decision},
};
use tower::{Layer, Service};

use crate::{
    metrics::RouteMetrics,
    state::AppState,
    telemetry::{Finished, RequestScope},
};

/// Applies [`Guard`] to each route (add it with `Router::layer`, so that the route template is
/// known).
#[derive(Clone)]
pub struct GuardLayer {
    shared: Arc<Shared>,
}

struct Shared {
    state: AppState,
    proxies: Arc<TrustedProxies>,
    scheme: Scheme,
}

impl GuardLayer {
    /// The pipeline over `state`, believing forwarding headers from `proxies` only.
    pub fn new(state: AppState, proxies: Arc<TrustedProxies>) -> Self {
        let scheme = Scheme(state.scheme());
        Self {
            shared: Arc::new(Shared {
                state,
                proxies,
                scheme,
            }),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            shared: Arc::clone(&self.shared),
            route: Arc::default(),
        }
    }
}

/// The pipeline in front of one route.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    shared: Arc<Shared>,
    /// The route's template as a metrics label, and its latency histogram, made on its first
    /// request: axum builds one service per route, so every later request shares them instead
    /// of copying the text and looking the histogram up.
    route: Arc<OnceLock<RouteMetrics>>,
}

impl<S> Guard<S> {
    fn route_metrics(&self, request: &Request) -> RouteMetrics {
        let matched = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("<unmatched>", MatchedPath::as_str);
        let metrics = &self.shared.state.metrics;
        match self.route.get() {
            Some(route) if **route.label() == *matched => route.clone(),
            Some(_) => RouteMetrics::new(metrics, matched),
            None => self
                .route
                .get_or_init(|| RouteMetrics::new(metrics, matched))
                .clone(),
        }
    }
}

impl<S, B> Service<http::Request<B>> for Guard<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let mut request = request.map(axum::body::Body::new);
        let route = self.route_metrics(&request);
        let shared = &self.shared;
        let state = &shared.state;
        let (peer, client_ip) = shared.identify(&mut request);
        let scope = RequestScope::begin(&shared.proxies, peer, client_ip, route, &request);
        // Each step runs here when it can answer at once (a known signing key, an in-memory
        // rate-limit store, no CSRF check to make), and the future then only waits on the route.
        // The first step that has to wait takes the rest of the pipeline into a boxed future.
        // A token that verifies is recorded for the limiter and the handler; a missing or bad
        // one is refused by the routes that need one.
        if !state.jwt.authenticate_request_now(&mut request) {
            return self.wait(Step::Authenticate, scope, request);
        }
        let decision = match state.limits.admit_now(&request) {
            None => return self.wait(Step::Admit, scope, request),
            Some(Admission::Refuse(refusal)) => {
                return GuardFuture::finished(scope.finish(state, refusal));
            }
            Some(Admission::Pass(decision)) => decision,
        };
        if state.csrf.applies_to(&request) {
            return self.wait(Step::Csrf(decision), scope, request);
        }
        GuardFuture::Route {
            future: self.inner.call(request),
            rest: Some(Rest {
                shared: Arc::clone(shared),
                scope,
                decision,
            }),
        }
    }
}

impl<S> Guard<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    /// The rest of the pipeline, from `step` on, as a boxed future.
    fn wait<F>(&mut self, step: Step, scope: RequestScope, request: Request) -> GuardFuture<F> {
        // The clone is not ready; the service polled ready goes with this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        GuardFuture::Waiting {
            future: Box::pin(Arc::clone(&self.shared).run_from(step, inner, scope, request)),
        }
    }
}

/// Where a request's pipeline goes on waiting.
enum Step {
    /// Authentication (its token names a key to load first), then everything after.
    Authenticate,
    /// The rate limit (a network store), then everything after.
    Admit,
    /// The CSRF check, the rate limit passed with this decision.
    Csrf(Option<Decision>),
}

impl Shared {
    /// The client address, recorded on `request` only when it is not the socket peer's (a
    /// trusted proxy forwarded it), which readers fall back to; and the socket peer.
    fn identify(&self, request: &mut Request) -> (Option<IpAddr>, IpAddr) {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let socket_ip = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        // Forwarding headers are believed from trusted proxies only.
        let client_ip = self.proxies.client_ip(socket_ip, request.headers());
        if ClientIp::differs_from_peer(client_ip, socket_ip) {
            request.extensions_mut().insert(ClientIp(client_ip));
        }
        (peer, client_ip)
    }

    /// The pipeline from `step` on, when a step has to wait.
    async fn run_from<S>(
        self: Arc<Self>,
        step: Step,
        mut inner: S,
        scope: RequestScope,
        mut request: Request,
    ) -> Result<Response, Infallible>
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        let state = &self.state;
        let decision = match step {
            Step::Csrf(decision) => decision,
            Step::Authenticate | Step::Admit => {
                if matches!(step, Step::Authenticate) {
                    state.jwt.authenticate_request(&mut request).await;
                }
                match state.limits.admit(&request).await {
                    Admission::Refuse(refusal) => {
                        return Ok(scope.finish(state, refusal).response().await);
                    }
                    Admission::Pass(decision) => decision,
                }
            }
        };
        let response = match state.csrf.check_request(self.scheme, request).await {
            Ok(request) => match inner.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            Err(refusal) => refusal,
        };
        Ok(Rest {
            shared: Arc::clone(&self),
            scope,
            decision,
        }
        .finish(response)
        .response()
        .await)
    }
}

/// What the pipeline does once the route answered.
struct Rest {
    shared: Arc<Shared>,
    scope: RequestScope,
    decision: Option<Decision>,
}

impl Rest {
    fn finish(self, mut response: Response) -> Finished {
        if let Some(decision) = self.decision {
            decision.apply_headers(response.headers_mut());
        }
        self.scope.finish(&self.shared.state, response)
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Guard`]: the route's own future when every step ran at once (the
    /// common case), else the boxed rest of the pipeline.
    #[project = GuardProj]
    pub enum GuardFuture<F> {
        /// Waiting on the route; then its response gets the rate-limit headers and closes the
        /// request scope.
        Route { #[pin] future: F, rest: Option<Rest> },
        /// A step had to wait, or an audit record is being written.
        Waiting { future: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>> },
        /// Answered without the route (a refusal).
        Ready { response: Option<Response> },
    }
}

impl<F> GuardFuture<F> {
    fn finished(finished: Finished) -> Self {
        match finished {
            Finished::Done(response) => Self::Ready {
                response: Some(response),
            },
            Finished::Audit(audited) => Self::Waiting {
                future: Box::pin(async move { Ok(audited.await) }),
            },
        }
    }
}

impl<F> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let finished = match self.as_mut().project() {
            GuardProj::Route { future, rest } => {
                let response = match ready!(future.poll(cx)) {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                match rest.take() {
                    Some(rest) => rest.finish(response),
                    None => Finished::Done(response),
                }
            }
            GuardProj::Waiting { future } => return future.as_mut().poll(cx),
            GuardProj::Ready { response } => {
                return Poll::Ready(Ok(response
                    .take()
                    .unwrap_or_else(|| bulwark::error::HttpError::internal().into_response())));
            }
        };
        match finished {
            Finished::Done(response) => Poll::Ready(Ok(response)),
            Finished::Audit(audited) => {
                self.set(Self::finished(Finished::Audit(audited)));
                self.poll(cx)
            }
        }
    }
}
