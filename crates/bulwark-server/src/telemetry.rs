//! Log set-up: lines to standard error, text or JSON, filtered by `RUST_LOG`.

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls do nothing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// What the request-context middleware needs: the trusted proxies (only they may set the
/// request id) and the state (for audit events).
#[derive(Clone)]
pub struct RequestContext {
    /// Proxies whose `X-Request-Id` is kept.
    pub proxies: std::sync::Arc<bulwark::client_ip::TrustedProxies>,
    /// The application state.
    pub state: crate::state::AppState,
}

fn sane_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Route-level middleware: gives the request an id (`X-Request-Id` from a trusted proxy, else a
/// new UUID), records route template, client IP and request id on the request span, echoes the
/// id in the response, and audits refusals made by the CSRF and login rate-limit layers.
pub async fn request_context(
    axum::extract::State(ctx): axum::extract::State<RequestContext>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::extract::{ConnectInfo, MatchedPath};
    use http::HeaderValue;

    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let incoming = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .filter(|_| peer.is_some_and(|p| ctx.proxies.is_trusted(p)))
        .map(str::to_owned);
    let request_id = incoming.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "<unmatched>".to_owned());
    let client_ip = request
        .extensions()
        .get::<bulwark::client_ip::ClientIp>()
        .map(|c| c.0);
    let span = tracing::Span::current();
    span.record("route", route.as_str());
    span.record("request_id", request_id.as_str());
    if let Some(ip) = client_ip {
        span.record("client_ip", tracing::field::display(ip));
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        request.headers_mut().insert("x-request-id", value);
    }
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let metrics = &ctx.state.metrics;
    metrics
        .requests
        .get_or_create(&crate::metrics::HttpLabels {
            route: route.clone(),
            method: method.to_string(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .latency
        .get_or_create(&crate::metrics::RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    if response
        .extensions()
        .get::<bulwark::csrf::Refused>()
        .is_some()
    {
        metrics.csrf_rejected.inc();
    }
    if let Some(refused) = response.extensions().get::<bulwark::rate_limit::Refused>() {
        metrics.rate_limited(if refused.login { "login_ip" } else { "default" });
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let audit = if response
        .extensions()
        .get::<bulwark::csrf::Refused>()
        .is_some()
    {
        Some((crate::audit::AuditKind::CsrfRejected, "CSRF check refused"))
    } else if response
        .extensions()
        .get::<bulwark::rate_limit::Refused>()
        .is_some_and(|r| r.login)
    {
        Some((crate::audit::AuditKind::LoginRateLimited, "per-IP limit"))
    } else {
        None
    };
    if let Some((kind, why)) = audit {
        crate::audit::record(
            &ctx.state,
            kind,
            crate::audit::AuditEvent {
                ip: client_ip,
                detail: Some(format!("{why}: {method} {route}")),
                ..Default::default()
            },
        )
        .await;
    }
    response
}
