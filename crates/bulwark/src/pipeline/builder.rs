//! [`PipelineBuilder`]: the pipeline's settings, checked once, at start-up.

use std::{sync::Arc, time::Duration};

use http::{HeaderValue, Method, header};

use super::{Observer, PipelineLayer, harden::Harden, routes::Routes};
use crate::{
    client_ip::TrustedProxies, csrf::Csrf, csrf::Scheme, jwt::JwtAuth, rate_limit::RateLimitPolicy,
};

/// The default body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

/// The default request timeout: 30 s from the request's first wait.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Entry point of the pipeline's builder: [`Pipeline::builder`].
#[derive(Debug)]
pub struct Pipeline;

impl Pipeline {
    /// A builder with the secure defaults: no forwarding header believed, 1 MiB bodies, 30 s
    /// timeout, no HSTS (plain HTTP), no CORS, rate limits in memory with the defaults of
    /// [`RateLimitPolicy::new`] (600 requests a minute per user or client IP), and no
    /// authentication or CSRF until you add them.
    pub fn builder() -> PipelineBuilder<()> {
        PipelineBuilder {
            proxies: TrustedProxies::none(),
            jwt: None,
            limits: Limits::Default,
            login_routes: Vec::new(),
            csrf: None,
            https: false,
            max_body: DEFAULT_MAX_BODY,
            timeout: DEFAULT_TIMEOUT,
            origins: Vec::new(),
            templates: Vec::new(),
            record_templates: false,
            observer: (),
        }
    }
}

/// A setting the pipeline cannot work with: a malformed or conflicting route template, an
/// origin that is not `scheme://host[:port]`.
#[derive(Debug, thiserror::Error)]
#[error("pipeline: {0}")]
pub struct PipelineError(pub(super) String);

/// The pipeline's settings; [`PipelineBuilder::build`] checks them and makes the layer.
#[must_use]
pub struct PipelineBuilder<O> {
    proxies: TrustedProxies,
    jwt: Option<JwtAuth>,
    limits: Limits,
    login_routes: Vec<String>,
    csrf: Option<Arc<Csrf>>,
    https: bool,
    max_body: usize,
    timeout: Duration,
    origins: Vec<String>,
    templates: Vec<(String, Vec<Method>)>,
    record_templates: bool,
    observer: O,
}

/// The rate limits a builder was given.
enum Limits {
    /// [`RateLimitPolicy::in_memory`], made at build.
    Default,
    Given(Arc<RateLimitPolicy>),
    Off,
}

impl<O> std::fmt::Debug for PipelineBuilder<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("https", &self.https)
            .field("max_body", &self.max_body)
            .field("timeout", &self.timeout)
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

impl<O: Observer> PipelineBuilder<O> {
    /// Believe the forwarding header of these proxies only (see [`crate::client_ip`]); by
    /// default none is believed and the client is the socket peer.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Authenticate requests with these tokens (bearer header, or the session cookie when
    /// configured): the claims of a token that verifies go in the request's extensions, for
    /// [`crate::jwt::CurrentUser`] and the rate limit's per-user key.
    pub fn authentication(mut self, jwt: JwtAuth) -> Self {
        self.jwt = Some(jwt);
        self
    }

    /// Limit requests by this policy instead of the default one; the templates it names (login
    /// routes, per-route quotas, unlimited routes) are known to the pipeline.
    pub fn rate_limits(mut self, policy: impl Into<Arc<RateLimitPolicy>>) -> Self {
        self.limits = Limits::Given(policy.into());
        self
    }

    /// No rate limit at all (a service behind a gateway that limits for it).
    pub fn without_rate_limits(mut self) -> Self {
        self.limits = Limits::Off;
        self
    }

    /// `route` (`"POST /login"`) takes passwords: limited per client IP by the policy's login
    /// quota (5 a minute by default), failing closed when the store is down. See
    /// [`RateLimitPolicy::login_route`].
    pub fn login_route(mut self, route: &str) -> Self {
        self.login_routes.push(route.to_owned());
        self
    }

    /// Refuse cross-site writes on cookie-authenticated requests (see [`crate::csrf`]).
    pub fn csrf(mut self, csrf: impl Into<Arc<Csrf>>) -> Self {
        self.csrf = Some(csrf.into());
        self
    }

    /// Whether browsers reach the service over HTTPS (directly or through a proxy): answers
    /// then carry HSTS, and the CSRF origin check expects `https://`.
    pub fn https(mut self, https: bool) -> Self {
        self.https = https;
        self
    }

    /// The most bytes a request body may have (`413` past it; default 1 MiB).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// How long a request may wait before it is answered `408` (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Let pages of these origins (`https://app.example.com`) call the API with credentials
    /// (CORS). Never a wildcard: every origin is listed.
    pub fn allowed_origins<I, T>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// A route template of your router (axum's syntax: `/items/{item_id}`), so that the
    /// pipeline reports it by name to the observer.
    pub fn route(mut self, template: impl Into<String>) -> Self {
        self.templates.push((template.into(), Vec::new()));
        self
    }

    /// `methods` on the route template `template` require an authenticated caller: a request
    /// without a valid token is answered `401` before routing, as the route's extractor would.
    pub fn authenticated(
        mut self,
        template: impl Into<String>,
        methods: impl IntoIterator<Item = Method>,
    ) -> Self {
        self.templates
            .push((template.into(), methods.into_iter().collect()));
        self
    }

    /// Record on each request the template the pipeline found, for
    /// [`super::check_template`] (tests and debug builds of an app that lists every route).
    pub fn record_templates(mut self, on: bool) -> Self {
        self.record_templates = on;
        self
    }

    /// Report every finished request to `observer` (metrics, access log, audit).
    pub fn observer<P: Observer>(self, observer: P) -> PipelineBuilder<P> {
        PipelineBuilder {
            proxies: self.proxies,
            jwt: self.jwt,
            limits: self.limits,
            login_routes: self.login_routes,
            csrf: self.csrf,
            https: self.https,
            max_body: self.max_body,
            timeout: self.timeout,
            origins: self.origins,
            templates: self.templates,
            record_templates: self.record_templates,
            observer,
        }
    }

    /// Checks the settings and makes the layer.
    ///
    /// # Errors
    /// A malformed or conflicting route template (as axum would refuse it), a malformed login
    /// route, login routes added to a policy that is shared already (add them to the policy
    /// itself), or an allowed origin that is not `scheme://host[:port]`.
    pub fn build(self) -> Result<PipelineLayer<O>, PipelineError> {
        let mut templates = self.templates;
        let limits = match self.limits {
            Limits::Off if !self.login_routes.is_empty() => {
                return Err(PipelineError(
                    "login routes named with rate limits off".to_owned(),
                ));
            }
            Limits::Off => None,
            Limits::Default => Some(Arc::new(RateLimitPolicy::in_memory())),
            Limits::Given(policy) => Some(policy),
        };
        let limits = match (limits, self.login_routes.is_empty()) {
            (Some(mut policy), false) => {
                let Some(owned) = Arc::get_mut(&mut policy) else {
                    return Err(PipelineError(
                        "login routes added to a shared rate-limit policy: add them to the policy"
                            .to_owned(),
                    ));
                };
                for route in &self.login_routes {
                    let key = route
                        .parse()
                        .map_err(|err: String| PipelineError(format!("login route: {err}")))?;
                    owned.login_routes.insert(key);
                }
                Some(policy)
            }
            (limits, _) => limits,
        };
        if let Some(limits) = &limits {
            let named = limits
                .login_routes
                .iter()
                .chain(limits.routes.keys())
                .map(|r| r.path().to_owned())
                .chain(limits.unlimited.iter().cloned());
            templates.extend(named.map(|t| (t, Vec::new())));
        }
        let cors = cors_layer(&self.origins)?;
        let shared = Shared {
            proxies: self.proxies,
            jwt: self.jwt,
            limits,
            csrf: self.csrf,
            scheme: Scheme(if self.https { "https" } else { "http" }),
            routes: Routes::new(templates)?,
            record_templates: self.record_templates,
            observer: self.observer,
            harden: Harden {
                max_body: self.max_body,
                timeout: self.timeout,
                hsts: self.https,
            },
        };
        Ok(PipelineLayer {
            shared: Arc::new(shared),
            cors,
        })
    }
}

/// What every request of a pipeline shares.
pub(super) struct Shared<O: Observer> {
    pub(super) proxies: TrustedProxies,
    pub(super) jwt: Option<JwtAuth>,
    pub(super) limits: Option<Arc<RateLimitPolicy>>,
    pub(super) csrf: Option<Arc<Csrf>>,
    pub(super) scheme: Scheme,
    pub(super) routes: Routes<O::Route>,
    pub(super) record_templates: bool,
    pub(super) observer: O,
    pub(super) harden: Harden,
}

/// CORS for `origins`, with credentials: the methods and headers the pipeline's protections
/// use, preflights cached for 10 minutes.
fn cors_layer(origins: &[String]) -> Result<Option<tower_http::cors::CorsLayer>, PipelineError> {
    if origins.is_empty() {
        return Ok(None);
    }
    let origins = origins
        .iter()
        .map(|o| {
            let origin = o.trim_end_matches('/');
            let shaped = origin.split_once("://").is_some_and(|(scheme, host)| {
                matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/')
            });
            HeaderValue::from_str(origin)
                .ok()
                .filter(|_| shaped)
                .ok_or_else(|| {
                    PipelineError(format!(
                        "allowed origin {o:?}: expected scheme://host[:port]"
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static(crate::csrf::HEADER),
            ])
            .allow_credentials(true)
            .max_age(Duration::from_secs(600)),
    ))
}
