//! The request pipeline in front of the router, as one layer: client identity → request context →
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
    extract::{ConnectInfo, Request},
    response::Response,
};
use bulwark::{
    client_ip::{ClientIp, TrustedProxies},
    csrf::Scheme,
    rate_limit::{Admission, Decision},
};
use tower::{Layer, Service};

use crate::{metrics::RouteMetrics, state::AppState, telemetry::RequestScope};

/// Applies [`Guard`] to the router (add it around the whole router: the guard finds each
/// request's route template itself, see [`Routes`]).
#[derive(Clone)]
pub struct GuardLayer {
    shared: Arc<Shared>,
}

struct Shared {
    state: AppState,
    proxies: Arc<TrustedProxies>,
    scheme: Scheme,
    routes: Routes,
}

impl GuardLayer {
    /// The pipeline over `state`, believing forwarding headers from `proxies` only, in front of
    /// a router whose route templates are `templates` (axum's syntax: `/items/{item_id}`), each
    /// with the methods whose handlers require an authenticated caller.
    ///
    /// # Errors
    /// When a template is malformed or conflicts with another (as axum would refuse it).
    pub fn new(
        state: AppState,
        proxies: Arc<TrustedProxies>,
        templates: impl IntoIterator<Item = crate::routes::Template>,
    ) -> anyhow::Result<Self> {
        let scheme = Scheme(state.scheme());
        Ok(Self {
            shared: Arc::new(Shared {
                state,
                proxies,
                scheme,
                routes: Routes::new(templates)?,
            }),
        })
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            shared: Arc::clone(&self.shared),
            peer: None,
        }
    }
}

/// The route templates of the router, matched the way axum matches them (the same `matchit`
/// table), so that the pipeline knows a request's route before the router runs: its rate
/// limit, its metrics label.
///
/// **Why not per route.** A guard added with `Router::layer` is told the template by axum, but
/// axum then wraps each route's boxed service in a second boxed service: every request paid
/// for cloning both (two allocations), a second boxed future and the layers of futures
/// between them, about 1 100 instructions more than this lookup (docs/performance.md).
struct Routes {
    table: matchit::Router<usize>,
    /// Each template with its metrics, made on its first request so that only routes that
    /// were used appear in `/metrics`.
    slots: Vec<RouteSlot>,
    /// Requests no route matched (404, and what the fallback answers).
    unmatched: RouteSlot,
}

struct RouteSlot {
    template: Box<str>,
    metrics: OnceLock<RouteMetrics>,
    /// The methods whose handlers require an authenticated caller.
    authenticated: Vec<http::Method>,
}

impl RouteSlot {
    fn new(template: &str, authenticated: Vec<http::Method>) -> Self {
        Self {
            template: template.into(),
            metrics: OnceLock::new(),
            authenticated,
        }
    }

    /// Whether the handler of `method` here requires an authenticated caller (`HEAD` is served
    /// by the `GET` handler).
    fn requires_authentication(&self, method: &http::Method) -> bool {
        let method = if method == http::Method::HEAD {
            &http::Method::GET
        } else {
            method
        };
        self.authenticated.contains(method)
    }

    fn metrics(&self, metrics: &crate::metrics::Metrics) -> RouteMetrics {
        self.metrics
            .get_or_init(|| RouteMetrics::new(metrics, &self.template))
            .clone()
    }
}

impl Routes {
    fn new(templates: impl IntoIterator<Item = crate::routes::Template>) -> anyhow::Result<Self> {
        let mut table = matchit::Router::new();
        let mut slots = Vec::new();
        for (template, authenticated) in templates {
            table
                .insert(template.as_str(), slots.len())
                .map_err(|err| anyhow::anyhow!("route {template}: {err}"))?;
            slots.push(RouteSlot::new(&template, authenticated));
        }
        Ok(Self {
            table,
            slots,
            unmatched: RouteSlot::new(bulwark::rate_limit::UNMATCHED, Vec::new()),
        })
    }

    /// The slot of the route `path` matches, by index (`None`: no route).
    fn find(&self, path: &str) -> Option<usize> {
        self.table.at(path).ok().map(|m| *m.value)
    }

    fn slot(&self, index: Option<usize>) -> &RouteSlot {
        index
            .and_then(|i| self.slots.get(i))
            .unwrap_or(&self.unmatched)
    }
}

/// The pipeline in front of the router.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    shared: Arc<Shared>,
    /// The socket peer of this connection's requests, when the server handed it over
    /// ([`Guard::for_peer`], `bulwark::serve::serve_with_peers`) rather than recording it on
    /// each request as `ConnectInfo`. The guard then records it only on the requests it passes
    /// on (to the router, or to a step that waits): a refusal answered here allocates no
    /// extension map.
    peer: Option<SocketAddr>,
}

impl<S> Guard<S> {
    /// The guard of the connection from `peer`.
    pub fn for_peer(&mut self, peer: SocketAddr) {
        self.peer = Some(peer);
    }

    /// Records the connection's peer on `request` as `ConnectInfo`, for what comes after the
    /// guard (client-IP extractors, the router's handlers), when the server handed it over.
    fn pass_on(&self, request: &mut Request) {
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
    }
}

/// The template the guard found for a request, recorded in debug builds only, for
/// [`check_template`].
#[cfg(debug_assertions)]
#[derive(Clone)]
struct FoundTemplate(Arc<str>);

/// Checks, in debug builds (every test), that the template [`Guard`] found for a request is the
/// one axum routed it to: a route missing from the guard's table would otherwise be limited
/// and counted as unmatched. Added with `Router::route_layer`, so it sees routed requests only.
///
/// # Panics
/// When the templates differ (the panic becomes a 500, failing the test that made the request).
#[cfg(debug_assertions)]
pub async fn check_template(request: Request, next: axum::middleware::Next) -> Response {
    let matched = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str);
    if let (Some(matched), Some(found)) = (matched, request.extensions().get::<FoundTemplate>()) {
        assert_eq!(
            &*found.0, matched,
            "the guard's route table is missing a route that axum has"
        );
    }
    next.run(request).await
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
        let shared = &self.shared;
        let state = &shared.state;
        let index = shared.routes.find(request.uri().path());
        let slot = shared.routes.slot(index);
        let route = slot.metrics(&state.metrics);
        #[cfg(debug_assertions)]
        request
            .extensions_mut()
            .insert(FoundTemplate(Arc::clone(route.label())));
        let (peer, client_ip) = shared.identify(self.peer, &mut request);
        let scope = RequestScope::begin(&shared.proxies, peer, client_ip, route, &request);
        // Each step runs here when it can answer at once (a known signing key, an in-memory
        // rate-limit store, no CSRF check to make), and the future then only waits on the route.
        // The first step that has to wait takes the rest of the pipeline into a boxed future.
        // A token that verifies is recorded for the limiter and the handler; a missing or bad
        // one is refused by the routes that need one.
        if !state.jwt.authenticate_request_now(&mut request) {
            return self.wait(Step::Authenticate(index), scope, request);
        }
        let decision = match state
            .limits
            .admit_route_now_from(&request, &slot.template, client_ip)
        {
            None => return self.wait(Step::Admit(index), scope, request),
            Some(Admission::Refuse(refusal)) => {
                return GuardFuture::ready(scope.finish(state, refusal));
            }
            Some(Admission::Pass(decision)) => decision,
        };
        if state.csrf.applies_to(&request) {
            return self.wait(Step::Csrf(decision), scope, request);
        }
        // A route that requires an authenticated caller would refuse an unauthenticated request
        // in its extractor, which comes first in every such handler (after infallible ones):
        // the same refusal is answered here, without routing or running the handler.
        if slot.requires_authentication(request.method())
            && let Some(refusal) = state.jwt.refusal_of(&request)
        {
            let rest = Rest {
                shared: Arc::clone(shared),
                scope,
                decision,
            };
            return GuardFuture::ready(rest.finish(refusal.into_response()));
        }
        self.pass_on(&mut request);
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
    fn wait<F>(&mut self, step: Step, scope: RequestScope, mut request: Request) -> GuardFuture<F> {
        self.pass_on(&mut request);
        // The clone is not ready; the service polled ready goes with this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        GuardFuture::Waiting {
            future: Box::pin(Arc::clone(&self.shared).run_from(step, inner, scope, request)),
        }
    }
}

/// Where a request's pipeline goes on waiting (with the request's route, by index in
/// [`Routes`], for the rate limit).
enum Step {
    /// Authentication (its token names a key to load first), then everything after.
    Authenticate(Option<usize>),
    /// The rate limit (a network store), then everything after.
    Admit(Option<usize>),
    /// The CSRF check, the rate limit passed with this decision.
    Csrf(Option<Decision>),
}

impl Shared {
    /// The client address, recorded on `request` only when it is not the socket peer's (a
    /// trusted proxy forwarded it), which readers fall back to; and the socket peer: the
    /// connection's (`peer`), else the request's `ConnectInfo`.
    fn identify(
        &self,
        peer: Option<SocketAddr>,
        request: &mut Request,
    ) -> (Option<IpAddr>, IpAddr) {
        let peer = peer
            .or_else(|| {
                request
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0)
            })
            .map(|p| p.ip());
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
            Step::Authenticate(index) | Step::Admit(index) => {
                if matches!(step, Step::Authenticate(_)) {
                    state.jwt.authenticate_request(&mut request).await;
                }
                let route = &self.routes.slot(index).template;
                match state.limits.admit_route(&request, route).await {
                    Admission::Refuse(refusal) => {
                        return Ok(scope.finish(state, refusal));
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
        .finish(response))
    }
}

/// What the pipeline does once the route answered.
struct Rest {
    shared: Arc<Shared>,
    scope: RequestScope,
    decision: Option<Decision>,
}

/// The most headers the pipeline and the hardening layer add to a route's answer: the three
/// rate-limit headers, the request id, and the security headers (six, and HSTS).
const ADDED_HEADERS: usize = 11;

impl Rest {
    fn finish(self, mut response: Response) -> Response {
        // Room for them at once: a handler's answer usually has one or two headers, and its map
        // would otherwise grow twice, moving and rehashing its entries each time. An error
        // answer already has the room (`bulwark::error`).
        let headers = response.headers_mut();
        // `capacity` counts names, as `keys_len` does (`len` also counts a name's extra values,
        // e.g. several `Set-Cookie`).
        if headers.capacity().saturating_sub(headers.keys_len()) < ADDED_HEADERS {
            headers.reserve(ADDED_HEADERS);
        }
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
        /// A step had to wait.
        Waiting { future: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>> },
        /// Answered without the route (a refusal).
        Ready { response: Option<Response> },
    }
}

impl<F> GuardFuture<F> {
    fn ready(response: Response) -> Self {
        Self::Ready {
            response: Some(response),
        }
    }
}

impl<F> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
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
                .unwrap_or_else(|| bulwark::error::HttpError::internal().into_response()))),
        }
    }
}
