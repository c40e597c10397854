//! The pipeline's steps after hardening: client identity → request scope → authentication →
//! rate limiting → CSRF → the early 401 → the route.
//!
//! Each step is this crate's own ([`TrustedProxies::client_ip`],
//! [`JwtAuth::authenticate_request`], [`RateLimitPolicy::admit_route`], [`Csrf::check_request`]),
//! composed by hand because every `axum::middleware::from_fn` layer costs, per request, a
//! boxed future, a boxed `Next`, and two clones of the whole boxed stack beneath it (axum clones
//! a route's service for each call): five such layers cost more than the request itself.
//!
//! **Steps run in place when they can.** Most requests never wait before their route: the key
//! ring knows the token's key, the in-memory rate-limit store answers at once, and only
//! cookie-authenticated writes need a CSRF check. [`Guard`] runs those steps in `call` itself,
//! through each step's non-waiting form ([`JwtAuth::authenticate_request_now`],
//! [`RateLimitPolicy::admit_route_now_from`], [`Csrf::applies_to`]), calls the route, and its
//! future only waits on the route's. The first step that would wait (a key to reload, a Redis
//! round trip, a CSRF form to read) takes the rest of the pipeline into one boxed future
//! instead; each non-waiting form changes nothing when it declines, so no step runs twice.
//!
//! [`TrustedProxies::client_ip`]: crate::client_ip::TrustedProxies::client_ip
//! [`JwtAuth::authenticate_request`]: crate::jwt::JwtAuth::authenticate_request
//! [`JwtAuth::authenticate_request_now`]: crate::jwt::JwtAuth::authenticate_request_now
//! [`RateLimitPolicy::admit_route`]: crate::rate_limit::RateLimitPolicy::admit_route
//! [`RateLimitPolicy::admit_route_now_from`]: crate::rate_limit::RateLimitPolicy::admit_route_now_from
//! [`Csrf::check_request`]: crate::csrf::Csrf::check_request
//! [`Csrf::applies_to`]: crate::csrf::Csrf::applies_to

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use axum::{
    extract::{ConnectInfo, Request},
    response::{IntoResponse as _, Response},
};
use tower::Service;

use super::{
    Observer,
    builder::Shared,
    future::{GuardFuture, Rest},
    routes::FoundTemplate,
    scope::RequestScope,
};
use crate::{
    client_ip::ClientIp,
    error::HttpError,
    rate_limit::{Admission, Decision},
};

/// The pipeline's steps in front of the router.
pub(super) struct Guard<S, O: Observer> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared<O>>,
    /// The socket peer of this connection's requests, when the server handed it over
    /// ([`super::PipelineService::for_peer`], `bulwark::serve::serve_with_peers`) rather than
    /// recording it on each request as `ConnectInfo`. The guard then records it only on the
    /// requests it passes on (to the router, or to a step that waits): a refusal answered here
    /// allocates no extension map.
    pub(super) peer: Option<SocketAddr>,
}

impl<S: Clone, O: Observer> Clone for Guard<S, O> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            peer: self.peer,
        }
    }
}

impl<S, O: Observer> Guard<S, O> {
    /// Records the connection's peer on `request` as `ConnectInfo`, for what comes after the
    /// guard (client-IP extractors, the router's handlers), when the server handed it over.
    fn pass_on(&self, request: &mut Request) {
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
    }
}

/// Logged once per process: the first request without a socket address.
static NO_PEER_LOGGED: AtomicBool = AtomicBool::new(false);

/// The answer to a request without its socket address (see the module docs of
/// [`super`]): a 500, logged with the fix.
fn no_peer() -> Response {
    if !NO_PEER_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::error!(
            "bulwark pipeline: the request carries no client address, so it cannot be rate \
             limited per client; serve the app with \
             `app.into_make_service_with_connect_info::<SocketAddr>()` or `bulwark::serve::serve` \
             (in tests: axum's `MockConnectInfo` layer under the pipeline)"
        );
    }
    HttpError::internal().into_response()
}

impl<S, O, B> Service<http::Request<B>> for Guard<S, O>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    O: Observer,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GuardFuture<S::Future, O>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let mut request = request.map(axum::body::Body::new);
        let shared = &self.shared;
        let index = shared.routes.find(request.uri().path());
        let slot = shared.routes.slot(index);
        if shared.record_templates {
            request
                .extensions_mut()
                .insert(FoundTemplate(Arc::clone(&slot.template)));
        }
        let Some((peer, client_ip)) = shared.identify(self.peer, &mut request) else {
            return GuardFuture::ready(no_peer());
        };
        let trusted_peer = shared.proxies.is_trusted(peer);
        let scope = RequestScope::begin(trusted_peer, client_ip, index, slot, &request);
        // Each step runs here when it can answer at once (a known signing key, an in-memory
        // rate-limit store, no CSRF check to make), and the future then only waits on the route.
        // The first step that has to wait takes the rest of the pipeline into a boxed future.
        // A token that verifies is recorded for the limiter and the handler; a missing or bad
        // one is refused by the routes that need one.
        if let Some(jwt) = &shared.jwt
            && !jwt.authenticate_request_now(&mut request)
        {
            return self.wait(Step::Authenticate, scope, request);
        }
        let decision = match &shared.limits {
            None => None,
            Some(limits) => {
                match limits.admit_route_now_from(&request, &slot.template, client_ip) {
                    None => return self.wait(Step::Admit, scope, request),
                    Some(Admission::Refuse(refusal)) => {
                        return GuardFuture::ready(shared.finish(scope, refusal));
                    }
                    Some(Admission::Pass(decision)) => decision,
                }
            }
        };
        if let Some(csrf) = &shared.csrf
            && csrf.applies_to(&request)
        {
            return self.wait(Step::Csrf(decision), scope, request);
        }
        // A route that requires an authenticated caller would refuse an unauthenticated request
        // in its extractor, which comes first in every such handler (after infallible ones):
        // the same refusal is answered here, without routing or running the handler.
        if slot.requires_authentication(request.method())
            && let Some(refusal) = shared.refusal_of(&request)
        {
            let rest = Rest {
                shared: Arc::clone(shared),
                scope,
                decision,
            };
            return GuardFuture::ready(rest.finish(refusal));
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

impl<S, O> Guard<S, O>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    O: Observer,
{
    /// The rest of the pipeline, from `step` on, as a boxed future.
    fn wait<F>(
        &mut self,
        step: Step,
        scope: RequestScope,
        mut request: Request,
    ) -> GuardFuture<F, O> {
        self.pass_on(&mut request);
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

impl<O: Observer> Shared<O> {
    /// The socket peer (the connection's, `peer`, else the request's `ConnectInfo`; `None`
    /// without either) and the client address, recorded on `request` only when it is not the
    /// socket peer's (a trusted proxy forwarded it), which readers fall back to.
    fn identify(
        &self,
        peer: Option<SocketAddr>,
        request: &mut Request,
    ) -> Option<(IpAddr, IpAddr)> {
        let peer = peer
            .or_else(|| {
                request
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0)
            })?
            .ip();
        // Forwarding headers are believed from trusted proxies only.
        let client_ip = self.proxies.client_ip(peer, request.headers());
        if ClientIp::differs_from_peer(client_ip, peer) {
            request.extensions_mut().insert(ClientIp(client_ip));
        }
        Some((peer, client_ip))
    }

    /// The refusal of a request without a valid credential, for a route that requires one.
    fn refusal_of(&self, request: &Request) -> Option<Response> {
        match &self.jwt {
            Some(jwt) => jwt
                .refusal_of(request)
                .map(axum::response::IntoResponse::into_response),
            None => Some(crate::jwt::AuthRejection::Missing.into_response()),
        }
    }

    /// Closes `scope` with `response`, answered without the route.
    pub(super) fn finish(&self, scope: RequestScope, response: Response) -> Response {
        let slot = self.routes.slot(scope.route);
        scope.finish(&self.observer, slot, response)
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
        let decision = match step {
            Step::Csrf(decision) => decision,
            Step::Authenticate | Step::Admit => {
                if let (Step::Authenticate, Some(jwt)) = (&step, &self.jwt) {
                    jwt.authenticate_request(&mut request).await;
                }
                match &self.limits {
                    None => None,
                    Some(limits) => {
                        let route = &self.routes.slot(scope.route).template;
                        match limits.admit_route(&request, route).await {
                            Admission::Refuse(refusal) => {
                                return Ok(self.finish(scope, refusal));
                            }
                            Admission::Pass(decision) => decision,
                        }
                    }
                }
            }
        };
        let request = match &self.csrf {
            Some(csrf) => match csrf.check_request(self.scheme, request).await {
                Ok(request) => request,
                Err(refusal) => {
                    return Ok(Rest {
                        shared: Arc::clone(&self),
                        scope,
                        decision,
                    }
                    .finish(refusal));
                }
            },
            None => request,
        };
        let slot = self.routes.slot(scope.route);
        let response = if slot.requires_authentication(request.method())
            && let Some(refusal) = self.refusal_of(&request)
        {
            refusal
        } else {
            match inner.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        };
        Ok(Rest {
            shared: Arc::clone(&self),
            scope,
            decision,
        }
        .finish(response))
    }
}
