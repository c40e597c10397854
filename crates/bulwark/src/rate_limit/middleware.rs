use std::{
    collections::{HashMap, HashSet},
    fmt,
    net::IpAddr,
    str::FromStr,
    sync::Arc,
};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::Method;

use super::{Decision, FailMode, Quota, RateLimiter};
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

impl RouteKey {
    /// The route template.
    pub fn path(&self) -> &str {
        &self.path
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

impl<'de> serde::Deserialize<'de> for RouteKey {
    /// From its text form (`"POST /items/"`, [`FromStr`]); the error names what is allowed.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
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
    /// Routes limited per client IP whoever calls, authenticated or not (account recovery and
    /// other routes whose callers are anonymous by nature: a token must not buy a fresh
    /// budget). Their quota is the route's override, else the default.
    pub ip_routes: HashSet<RouteKey>,
    /// The limiter and its store.
    pub limiter: Arc<RateLimiter>,
    /// IPv6 clients share one per-IP budget per network of this prefix length (see
    /// [`crate::client_ip::ip_group`]); 64 is what one customer usually holds.
    pub ipv6_prefix: u8,
    /// Route templates never limited, whatever the method (health and readiness probes: many
    /// probes behind one proxy address must not be refused, and the routes reveal nothing).
    pub unlimited: Vec<String>,
}

impl RateLimitPolicy {
    /// A policy over `store` with the defaults: limits on, 600 requests a minute per user (per
    /// client IP when anonymous), 5 login attempts a minute per IP and per username, IPv6
    /// clients grouped by /64, no login route until [`RateLimitPolicy::login_route`] names one.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use bulwark::rate_limit::{Quota, RateLimitPolicy, store::memory::MemoryRateLimitStore};
    ///
    /// # fn main() -> Result<(), String> {
    /// let policy = RateLimitPolicy::new(Arc::new(MemoryRateLimitStore::default()))
    ///     .default_quota(Quota::new(100, Duration::from_secs(60)))
    ///     .login_route("POST /token".parse()?)
    ///     .route_quota("POST /items/".parse()?, "10/minute".parse().map_err(|e| format!("{e:?}"))?)
    ///     .unlimited("/health");
    /// # Ok(()) }
    /// ```
    pub fn new(store: Arc<dyn super::RateLimitStore>) -> Self {
        Self {
            enabled: true,
            default: Quota::new(600, std::time::Duration::from_secs(60)),
            login_per_ip: Quota::new(5, std::time::Duration::from_secs(60)),
            login_per_username: Quota::new(5, std::time::Duration::from_secs(60)),
            login_routes: HashSet::new(),
            routes: HashMap::new(),
            ip_routes: HashSet::new(),
            limiter: Arc::new(RateLimiter::new(store)),
            ipv6_prefix: 64,
            unlimited: Vec::new(),
        }
    }

    /// [`RateLimitPolicy::new`] over an in-memory store: limits of one instance (several
    /// instances share limits through a shared store, such as the Redis one).
    pub fn in_memory() -> Self {
        Self::new(Arc::new(
            super::store::memory::MemoryRateLimitStore::default(),
        ))
    }

    /// Turns every limit on or off.
    #[must_use]
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// The quota of each user (each client IP when anonymous) on every route without its own.
    #[must_use]
    pub fn default_quota(mut self, quota: Quota) -> Self {
        self.default = quota;
        self
    }

    /// `route` takes passwords: it is limited per client IP by the login quota (one budget
    /// across every login route), and the limit fails closed when the store is down.
    #[must_use]
    pub fn login_route(mut self, route: RouteKey) -> Self {
        self.login_routes.insert(route);
        self
    }

    /// The login quotas: per client IP (checked by the pipeline) and per username (checked by
    /// your login handler with [`RateLimitPolicy::check_login_username`]).
    #[must_use]
    pub fn login_quotas(mut self, per_ip: Quota, per_username: Quota) -> Self {
        self.login_per_ip = per_ip;
        self.login_per_username = per_username;
        self
    }

    /// A quota of its own for `route`, per user (per client IP when anonymous).
    #[must_use]
    pub fn route_quota(mut self, route: RouteKey, quota: Quota) -> Self {
        self.routes.insert(route, quota);
        self
    }

    /// A quota of its own for `route`, per client IP even when the caller is authenticated
    /// ([`RateLimitPolicy::ip_routes`]).
    #[must_use]
    pub fn route_quota_per_ip(mut self, route: RouteKey, quota: Quota) -> Self {
        self.ip_routes.insert(route.clone());
        self.routes.insert(route, quota);
        self
    }

    /// Never limit the route template `template` (health and readiness probes).
    #[must_use]
    pub fn unlimited(mut self, template: impl Into<String>) -> Self {
        self.unlimited.push(template.into());
        self
    }

    /// IPv6 clients share one per-IP budget per network of this prefix length (default 64).
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }
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

    /// Checks a limit of your own, counted under `key` (for instance per e-mail address on an
    /// account-recovery route, once the handler has parsed the body). Keys share the store with
    /// the policy's own: prefix them with what they count (`reset-address:`).
    ///
    /// # Errors
    /// The response to send: 429 when over the limit; 503 when the store is down and `mode` is
    /// [`FailMode::Closed`].
    pub async fn check_key(
        &self,
        key: &str,
        quota: &Quota,
        mode: FailMode,
    ) -> Result<Option<super::Decision>, Response> {
        if !self.enabled {
            return Ok(None);
        }
        match self.limiter.check(key, quota, mode).await {
            Ok(Some(d)) if !d.allowed => Err(d.too_many_requests()),
            Ok(decision) => Ok(decision),
            Err(unavailable) => Err(unavailable.into_response()),
        }
    }

    /// Whether requests to the route template `route` are limited.
    fn limits(&self, route: &str) -> bool {
        self.enabled && !self.unlimited.iter().any(|r| r == route)
    }

    /// The quota, outage policy and store key of a request from `ip` (canonical, as
    /// `ClientIp::of` gives it) to the route template `path`. Route lookups borrow the
    /// request's method and template; the key is the one allocation.
    fn resolve<B>(
        &self,
        request: &http::Request<B>,
        path: &str,
        ip: IpAddr,
    ) -> (Quota, FailMode, String) {
        use std::fmt::Write as _;
        let ip = crate::client_ip::ip_group(ip, self.ipv6_prefix);
        let method = request.method();
        // A scan that borrows, not a `get` that would build an owned `RouteKey` (a copy of
        // the template) for every request: the server configures account routes by default,
        // so this runs on every request, and override lists are a handful of entries.
        let override_quota = self
            .routes
            .iter()
            .find(|(r, _)| r.method == *method && r.path == path)
            .map(|(_, quota)| *quota);
        let mut key = String::with_capacity(64);
        if self
            .login_routes
            .iter()
            .any(|r| r.method == *method && r.path == path)
        {
            // One budget per client IP across every login route (a guesser gets no extra
            // attempts by switching between POST /token and POST /login), unless a route has
            // its own override.
            return match override_quota {
                Some(quota) => {
                    let _ = write!(key, "login-ip:{method} {path}:{ip}");
                    (quota, FailMode::Closed, key)
                }
                None => {
                    key.push_str("login-ip:");
                    push_ip(&mut key, ip);
                    (self.login_per_ip, FailMode::Closed, key)
                }
            };
        }
        let quota = match override_quota {
            Some(quota) => {
                let _ = write!(key, "route:{method} {path}:");
                quota
            }
            None => {
                key.push_str("all:");
                self.default
            }
        };
        let per_ip = !self.ip_routes.is_empty()
            && self
                .ip_routes
                .iter()
                .any(|r| r.method == *method && r.path == path);
        match request.extensions().get::<Arc<Claims>>() {
            Some(claims) if !per_ip => {
                key.push_str("user:");
                key.push_str(&claims.sub);
            }
            _ => {
                key.push_str("ip:");
                push_ip(&mut key, ip);
            }
        }
        (quota, FailMode::Open, key)
    }

    /// Checks `request` against its limit: what [`enforce`] does, for a middleware of your own.
    /// Run it after client-IP resolution and authentication (the key is the user, else the IP).
    /// The future does not borrow the request (whose body is not `Sync`).
    ///
    /// The route template is the request's [`MatchedPath`] (so the policy must run after
    /// routing, e.g. in a layer added with `Router::layer`); [`RateLimitPolicy::admit_route`]
    /// takes it from the caller instead.
    pub fn admit<'a>(
        &'a self,
        request: &Request,
    ) -> impl Future<Output = Admission> + Send + use<'a> {
        self.admit_route(request, matched_path(request))
    }

    /// [`RateLimitPolicy::admit`] for a request to the route template `route` ([`UNMATCHED`]
    /// when no route matched), for a pipeline that runs before the router and finds the
    /// template itself.
    pub fn admit_route<'a>(
        &'a self,
        request: &Request,
        route: &str,
    ) -> impl Future<Output = Admission> + Send + use<'a> {
        let resolved = self
            .limits(route)
            .then(|| self.resolve(request, route, ClientIp::of(request.extensions()).0));
        async move {
            let Some((quota, mode, key)) = resolved else {
                return Admission::Pass(None);
            };
            admission(self.limiter.check(&key, &quota, mode).await, mode)
        }
    }

    /// [`RateLimitPolicy::admit`] without waiting, for a pipeline that runs its steps in place
    /// when it can: `None`, having counted nothing, when the store cannot answer at once (a
    /// network store); then await [`RateLimitPolicy::admit`] instead.
    pub fn admit_now<B>(&self, request: &http::Request<B>) -> Option<Admission> {
        self.admit_route_now(request, matched_path(request))
    }

    /// [`RateLimitPolicy::admit_now`] for a request to the route template `route`, as
    /// [`RateLimitPolicy::admit_route`].
    pub fn admit_route_now<B>(&self, request: &http::Request<B>, route: &str) -> Option<Admission> {
        self.admit_route_now_from(request, route, ClientIp::of(request.extensions()).0)
    }

    /// [`admit_route_now`](Self::admit_route_now) for a request whose client address the caller
    /// resolved already (a pipeline that has not recorded it on the request).
    pub fn admit_route_now_from<B>(
        &self,
        request: &http::Request<B>,
        route: &str,
        client_ip: IpAddr,
    ) -> Option<Admission> {
        if !self.limits(route) {
            return Some(Admission::Pass(None));
        }
        // `resolve` keys it like `ClientIp::of` (IPv4-mapped IPv6 addresses as IPv4), with IPv6
        // networks grouped.
        let (quota, mode, key) = self.resolve(request, route, client_ip);
        let checked = self.limiter.check_now(&key, &quota, mode)?;
        Some(admission(checked, mode))
    }
}

/// The route label of a request no route matched (404, and what a fallback answers), in
/// rate-limit keys and route lookups.
pub const UNMATCHED: &str = "<unmatched>";

/// The route template axum matched, or [`UNMATCHED`].
fn matched_path<B>(request: &http::Request<B>) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
}

fn admission(
    checked: Result<Option<Decision>, super::LimiterUnavailable>,
    mode: FailMode,
) -> Admission {
    match checked {
        Err(unavailable) => Admission::Refuse(unavailable.into_response()),
        Ok(Some(d)) if !d.allowed => {
            let mut response = d.too_many_requests();
            response.extensions_mut().insert(Refused {
                login: mode == FailMode::Closed,
            });
            Admission::Refuse(response)
        }
        Ok(decision) => Admission::Pass(decision),
    }
}

/// What [`RateLimitPolicy::admit`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Let the request through, and write this decision's headers on its response (`None`:
    /// limits are off, or the store is down and the limit fails open).
    Pass(Option<Decision>),
    /// Answer this instead: 429 (marked [`Refused`]), or 503 when a fail-closed store is down.
    Refuse(Response),
}

/// Appends `ip` as `Display` writes it. IPv4 (nearly every client) is written digit by digit:
/// `fmt`'s machinery costs more than the rest of an anonymous request's key.
fn push_ip(key: &mut String, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        use std::fmt::Write as _;
        let _ = write!(key, "{ip}");
        return;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            key.push('.');
        }
        if octet >= 100 {
            key.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            key.push(char::from(b'0' + octet / 10 % 10));
        }
        key.push(char::from(b'0' + octet % 10));
    }
}

/// Middleware (for `axum::middleware::from_fn_with_state`, applied with `Router::layer` so the
/// route template is known) that enforces `policy`: 429 over the limit, rate-limit headers on
/// every limited response. Place it after client-IP resolution and authentication.
pub async fn enforce(
    State(policy): State<Arc<RateLimitPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    match policy.admit(&request).await {
        Admission::Refuse(response) => response,
        Admission::Pass(decision) => {
            let mut response = next.run(request).await;
            if let Some(d) = decision {
                d.apply_headers(response.headers_mut());
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, sub: Option<&str>) -> http::Request<()> {
        let mut request = http::Request::post(path).body(()).unwrap();
        if let Some(sub) = sub {
            request.extensions_mut().insert(Arc::new(Claims {
                sub: sub.to_owned(),
                name: None,
                roles: Vec::new(),
                iat: 0,
                nbf: 0,
                exp: 0,
                jti: String::new(),
                iss: String::new(),
                aud: String::new(),
                ver: 1,
            }));
        }
        request
    }

    #[test]
    fn ip_routes_count_per_client_ip_whoever_calls() {
        let quota = Quota::new(2, std::time::Duration::from_secs(60));
        let policy = RateLimitPolicy::in_memory()
            .route_quota_per_ip("POST /reset".parse().unwrap(), quota)
            .route_quota("POST /items/".parse().unwrap(), quota);
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let key = |path: &str, sub: Option<&str>| policy.resolve(&request(path, sub), path, ip).2;
        // A token buys no budget of its own on a per-IP route ...
        assert_eq!(key("/reset", Some("1")), key("/reset", None));
        assert_eq!(key("/reset", Some("2")), key("/reset", None));
        assert!(key("/reset", None).ends_with(":ip:203.0.113.9"));
        // ... while other routes stay per user.
        assert!(key("/items/", Some("1")).ends_with(":user:1"));
        assert_ne!(key("/items/", Some("1")), key("/items/", Some("2")));
    }

    #[test]
    fn ips_are_written_as_display_writes_them() {
        let mut ips: Vec<IpAddr> = ["0.0.0.0", "9.10.99.100", "255.255.255.255", "127.0.0.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        ips.extend((0..=255u8).map(|b| IpAddr::from([b, 0, b, 255 - b])));
        ips.push("2001:db8::1".parse().unwrap());
        ips.push("::ffff:10.0.0.1".parse().unwrap());
        for ip in ips {
            let mut key = String::from("ip:");
            push_ip(&mut key, ip);
            assert_eq!(key, format!("ip:{ip}"));
        }
    }
}
