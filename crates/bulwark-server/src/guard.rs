//! The per-route request pipeline, as one layer: client identity → request context →
//! authentication → rate limiting → CSRF → the route.
//!
//! Each step is the library's own ([`TrustedProxies::client_ip`], [`JwtAuth::authenticate_request`],
//! [`RateLimitPolicy::admit`], [`Csrf::check_request`]) or the server's
//! ([`crate::telemetry::RequestScope`]), in the order their `from_fn` middlewares would run. They
//! are composed here by hand because every `axum::middleware::from_fn` layer costs, per request,
//! a boxed future, a boxed `Next`, and two clones of the whole boxed stack beneath it (axum
//! clones a route's service for each call): five such layers cost more than the request itself.
//! One layer costs one boxed future and one clone of the route.
//!
//! [`JwtAuth::authenticate_request`]: bulwark::jwt::JwtAuth::authenticate_request
//! [`RateLimitPolicy::admit`]: bulwark::rate_limit::RateLimitPolicy::admit
//! [`Csrf::check_request`]: bulwark::csrf::Csrf::check_request

use std::{
    convert::Infallible,
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request},
    response::Response,
};
use bulwark::{
    client_ip::{ClientIp, TrustedProxies},
    csrf::Scheme,
    rate_limit::Admission,
};
use tower::{Layer, Service};

use crate::{metrics::RouteMetrics, state::AppState, telemetry::RequestScope};

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
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let request = request.map(axum::body::Body::new);
        let route = self.route_metrics(&request);
        // The clone is not ready; the service polled ready goes with this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { Ok(shared.run(inner, route, request).await) })
    }
}

impl Shared {
    async fn run<S>(&self, mut inner: S, route: RouteMetrics, mut request: Request) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        let state = &self.state;
        // Client identity: forwarding headers are believed from trusted proxies only.
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let client_ip = self.proxies.client_ip(
            peer.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            request.headers(),
        );
        request.extensions_mut().insert(ClientIp(client_ip));
        let scope = RequestScope::begin(&self.proxies, peer, client_ip, route, &request);
        // A token that verifies is recorded for the limiter and the handler; a missing or bad
        // one is refused by the routes that need one.
        state.jwt.authenticate_request(&mut request).await;
        let response = match state.limits.admit(&request).await {
            Admission::Refuse(refusal) => refusal,
            Admission::Pass(decision) => {
                let mut response = match state.csrf.check_request(self.scheme, request).await {
                    Ok(request) => match inner.call(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                    Err(refusal) => refusal,
                };
                if let Some(decision) = decision {
                    decision.apply_headers(response.headers_mut());
                }
                response
            }
        };
        scope.finish(state, response).await
    }
}
