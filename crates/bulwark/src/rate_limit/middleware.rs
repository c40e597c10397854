use std::{
    collections::{HashMap, HashSet},
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::Method;

use super::{FailMode, Quota, RateLimiter};
use crate::{client_ip::ClientIp, jwt::Claims};

/// Marks a response the rate-limit middleware refused (429), so that outer layers (an audit
/// trail, metrics) can count it; `login` tells a login limit from the others.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    /// The limit was a login limit (per client IP).
    pub login: bool,
}

/// A route as configuration names it: `"POST /items/"`, `"GET /items/{item_id}"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteKey {
    method: Method,
    path: String,
}

impl RouteKey {
    /// `method` on the route template `path`.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
        }
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

impl FromStr for RouteKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (method, path) = s
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("invalid route {s:?}: expected \"METHOD /path/template\""))?;
        let method = Method::from_bytes(method.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("invalid route {s:?}: unknown method"))?;
        let path = path.trim();
        if !path.starts_with('/') {
            return Err(format!("invalid route {s:?}: the path must start with /"));
        }
        Ok(Self::new(method, path))
    }
}

/// Which limit applies to which request, resolved once at start-up.
#[derive(Debug)]
pub struct RateLimitPolicy {
    /// Whether limits apply at all.
    pub enabled: bool,
    /// Everything else: per authenticated user, or per client IP when anonymous.
    pub default: Quota,
    /// Login routes, per client IP.
    pub login_per_ip: Quota,
    /// Login routes, per username (checked by the login handler, which has parsed the body).
    pub login_per_username: Quota,
    /// The login routes (`POST /token`, `POST /login`): their limits fail closed.
    pub login_routes: HashSet<RouteKey>,
    /// Per-route overrides.
    pub routes: HashMap<RouteKey, Quota>,
    /// The limiter and its store.
    pub limiter: Arc<RateLimiter>,
}

impl RateLimitPolicy {
    /// Checks the per-username login limit (the username compared case-insensitively, so
    /// changing letter case does not give a fresh budget).
    ///
    /// # Errors
    /// The response to send: 429 when over the limit, 503 when the store is down.
    pub async fn check_login_username(
        &self,
        username: &str,
    ) -> Result<Option<super::Decision>, Response> {
        if !self.enabled {
            return Ok(None);
        }
        let key = format!("login-user:{}", username.trim().to_lowercase());
        match self
            .limiter
            .check(&key, &self.login_per_username, FailMode::Closed)
            .await
        {
            Ok(Some(d)) if !d.allowed => Err(d.too_many_requests()),
            Ok(decision) => Ok(decision),
            Err(unavailable) => Err(unavailable.into_response()),
        }
    }

    fn resolve(&self, request: &Request) -> (Quota, FailMode, String) {
        let path = request
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_else(|| "<unmatched>".to_owned());
        let route = RouteKey::new(request.method().clone(), path);
        let ip = client_ip(request);
        if self.login_routes.contains(&route) {
            // One budget per client IP across every login route (a guesser gets no extra
            // attempts by switching between POST /token and POST /login), unless a route has
            // its own override.
            return match self.routes.get(&route) {
                Some(quota) => (*quota, FailMode::Closed, format!("login-ip:{route}:{ip}")),
                None => (
                    self.login_per_ip,
                    FailMode::Closed,
                    format!("login-ip:{ip}"),
                ),
            };
        }
        let who = match request.extensions().get::<Claims>() {
            Some(claims) => format!("user:{}", claims.sub),
            None => format!("ip:{ip}"),
        };
        match self.routes.get(&route) {
            Some(quota) => (*quota, FailMode::Open, format!("route:{route}:{who}")),
            None => (self.default, FailMode::Open, format!("all:{who}")),
        }
    }
}

fn client_ip(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ClientIp>()
        .map(|c| c.0)
        .or_else(|| {
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Middleware (for `axum::middleware::from_fn_with_state`, applied with `Router::layer` so the
/// route template is known) that enforces `policy`: 429 over the limit, rate-limit headers on
/// every limited response. Place it after client-IP resolution and authentication.
pub async fn enforce(
    State(policy): State<Arc<RateLimitPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if !policy.enabled {
        return next.run(request).await;
    }
    let (quota, mode, key) = policy.resolve(&request);
    let decision = match policy.limiter.check(&key, &quota, mode).await {
        Ok(decision) => decision,
        Err(unavailable) => return unavailable.into_response(),
    };
    match decision {
        Some(d) if !d.allowed => {
            let mut response = d.too_many_requests();
            response.extensions_mut().insert(Refused {
                login: mode == FailMode::Closed,
            });
            response
        }
        Some(d) => {
            let mut response = next.run(request).await;
            d.apply_headers(response.headers_mut());
            response
        }
        None => next.run(request).await,
    }
}
