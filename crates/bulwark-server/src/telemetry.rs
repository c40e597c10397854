//! Log set-up: lines to standard error, text or JSON, filtered by `RUST_LOG`.

use axum::response::Response;
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls do nothing.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Made once: inserting a header by `&str` copies a non-standard name on every call.
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

fn sane_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new request id: a random (v4) UUID, drawn from a thread-local generator seeded by the OS
/// (uuid's `fast-rng`: one system call per request would cost more than the rest of a cheap
/// request). Ids need to be unique, not secret.
fn new_request_id() -> http::HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    http::HeaderValue::from_str(text).unwrap_or_else(|_| http::HeaderValue::from_static("-"))
}

/// The request context, from routing to response: gives the request an id (`X-Request-Id` from
/// a trusted proxy, else a new UUID), records route template, client IP and request id on the
/// request span, and on the way out echoes the id, counts the request in the metrics and audits
/// refusals made by the CSRF and login rate-limit layers.
pub struct RequestScope {
    request_id: http::HeaderValue,
    route: crate::metrics::RouteMetrics,
    method: http::Method,
    client_ip: std::net::IpAddr,
    started: std::time::Instant,
}

impl RequestScope {
    /// Opens the scope of `request`, which came from `peer` (the socket address) on behalf of
    /// `client_ip`, to the route template `route`.
    pub fn begin(
        proxies: &bulwark::client_ip::TrustedProxies,
        peer: Option<std::net::IpAddr>,
        client_ip: std::net::IpAddr,
        route: crate::metrics::RouteMetrics,
        request: &axum::extract::Request,
    ) -> Self {
        let incoming = peer
            .is_some_and(|p| proxies.is_trusted(p))
            .then(|| request.headers().get(&X_REQUEST_ID))
            .flatten()
            .filter(|v| v.to_str().is_ok_and(sane_request_id))
            .cloned();
        let request_id = incoming.unwrap_or_else(new_request_id);
        // The request span is made by `crate::harden`, and only when this says so.
        if crate::harden::request_span_enabled() {
            let span = tracing::Span::current();
            span.record("route", &**route.label());
            span.record("request_id", request_id.to_str().unwrap_or_default());
            span.record("client_ip", tracing::field::display(client_ip));
        }
        Self {
            request_id,
            route,
            method: request.method().clone(),
            client_ip,
            started: std::time::Instant::now(),
        }
    }

    /// Closes the scope with the `response` about to be sent: metrics, the request id, and a
    /// refusal (CSRF, the login rate limit) counted for the audit trail
    /// ([`crate::refusals`]), which no request waits for.
    pub fn finish(self, state: &crate::state::AppState, mut response: Response) -> Response {
        let metrics = &state.metrics;
        self.route.count(
            crate::metrics::method_label(&self.method),
            response.status().as_u16(),
        );
        self.route.observe(self.started.elapsed().as_secs_f64());
        let csrf_refused = response
            .extensions()
            .get::<bulwark::csrf::Refused>()
            .is_some();
        let limited = response
            .extensions()
            .get::<bulwark::rate_limit::Refused>()
            .copied();
        if csrf_refused {
            metrics.csrf_rejected.inc();
        }
        if let Some(refused) = limited {
            metrics.rate_limited(if refused.login { "login_ip" } else { "default" });
        }
        response.headers_mut().insert(X_REQUEST_ID, self.request_id);
        let audit = if csrf_refused {
            Some((crate::audit::AuditKind::CsrfRejected, "CSRF check refused"))
        } else if limited.is_some_and(|r| r.login) {
            Some((crate::audit::AuditKind::LoginRateLimited, "per-IP limit"))
        } else {
            None
        };
        if let Some((kind, why)) = audit {
            let (method, route) = (&self.method, self.route.label());
            state
                .refusals
                .count(kind, self.client_ip, || format!("{why}: {method} {route}"));
        }
        response
    }
}
