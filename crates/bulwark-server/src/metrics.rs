//! Prometheus metrics, served as text at `GET /metrics` on `metrics_bind` (off by default: a
//! separate address so that it is never exposed with the API).

use std::sync::{
    Arc, RwLock,
    atomic::{AtomicU64, Ordering},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// Labels of HTTP metrics: route template (never the raw path), method, status. Built for every
/// request, so nothing in them is allocated: the template is shared, the method one of a fixed
/// set (see [`method_label`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Route template.
    pub route: Arc<str>,
    /// Method.
    pub method: &'static str,
    /// Status code.
    pub status: u16,
}

/// The method as a label: the standard methods by name, any other as `OTHER`, so that a client
/// sending made-up methods cannot add label values (series) without bound.
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Labels with one `kind` or `policy` value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The kind.
    pub kind: String,
}

/// Labels of latency histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route template.
    pub route: Arc<str>,
}

/// A route's template as a metrics label, and its latency histogram: looked up once per route
/// (see `bulwark::pipeline`), not once per request.
#[derive(Clone)]
pub struct RouteMetrics(Arc<RouteInner>);

struct RouteInner {
    label: Arc<str>,
    latency: Histogram,
    requests: Family<HttpLabels, Counter>,
    /// This route's `http_requests_total` counters seen so far, by method and status: a short
    /// list scanned under a read lock, instead of hashing the labels into the family on every
    /// request. Bounded: further combinations go to the family directly.
    counters: RwLock<Vec<(&'static str, u16, Counter)>>,
}

/// The most (method, status) counters a route keeps at hand.
const ROUTE_COUNTERS: usize = 32;

impl RouteMetrics {
    /// The label and histogram of the route `template`.
    pub fn new(metrics: &Metrics, template: &str) -> Self {
        let label: Arc<str> = Arc::from(template);
        let latency = metrics
            .latency
            .get_or_create(&RouteLabels {
                route: Arc::clone(&label),
            })
            .clone();
        Self(Arc::new(RouteInner {
            label,
            latency,
            requests: metrics.requests.clone(),
            counters: RwLock::new(Vec::new()),
        }))
    }

    /// The route template.
    pub fn label(&self) -> &Arc<str> {
        &self.0.label
    }

    /// Records one request's latency.
    pub fn observe(&self, seconds: f64) {
        self.0.latency.observe(seconds);
    }

    /// Counts one request answered `status`.
    pub fn count(&self, method: &'static str, status: u16) {
        let known = |list: &Vec<(&'static str, u16, Counter)>| {
            list.iter()
                .find(|(m, s, _)| *s == status && *m == method)
                .map(|(_, _, c)| c.clone())
        };
        let seen = self.0.counters.read().ok().and_then(|list| known(&list));
        if let Some(counter) = seen {
            counter.inc();
            return;
        }
        let counter = self
            .0
            .requests
            .get_or_create(&HttpLabels {
                route: Arc::clone(&self.0.label),
                method,
                status,
            })
            .clone();
        counter.inc();
        if let Ok(mut list) = self.0.counters.write()
            && list.len() < ROUTE_COUNTERS
            && known(&list).is_none()
        {
            list.push((method, status, counter));
        }
    }
}

/// Every metric of the server.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub requests: Family<HttpLabels, Counter>,
    /// Request latency by route, in seconds.
    pub latency: Family<RouteLabels, Histogram>,
    /// Logins by outcome (`success`, `failure`).
    pub logins: Family<KindLabels, Counter>,
    /// Refreshes by outcome (`success`, `refused`, `reuse_detected`).
    pub refreshes: Family<KindLabels, Counter>,
    /// Rate-limit refusals by policy (`login_ip`, `login_username`, `default`).
    pub rate_limited: Family<KindLabels, Counter>,
    /// CSRF refusals.
    pub csrf_rejected: Counter,
    /// Mails by outcome: `queued`, `sent`, `retried`, `failed`.
    pub mails: Family<KindLabels, Counter>,
    store_errors: Counter<u64, AtomicU64>,
    key_rotations: Counter<u64, AtomicU64>,
    websockets: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("bulwark");
        let requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let logins = Family::<KindLabels, Counter>::default();
        registry.register("logins", "Logins by outcome", logins.clone());
        let refreshes = Family::<KindLabels, Counter>::default();
        registry.register(
            "token_refreshes",
            "Token refreshes by outcome",
            refreshes.clone(),
        );
        let rate_limited = Family::<KindLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by policy",
            rate_limited.clone(),
        );
        let csrf_rejected = Counter::default();
        registry.register(
            "csrf_rejected",
            "Requests refused by the CSRF check",
            csrf_rejected.clone(),
        );
        let mails = Family::<KindLabels, Counter>::default();
        registry.register(
            "mails",
            "Mails queued, sent, retried and given up",
            mails.clone(),
        );
        let store_errors = Counter::<u64, AtomicU64>::default();
        registry.register(
            "rate_limit_store_errors",
            "Rate-limit checks the store could not answer",
            store_errors.clone(),
        );
        let key_rotations = Counter::<u64, AtomicU64>::default();
        registry.register(
            "key_rotations",
            "Signing-key rotations made by this instance",
            key_rotations.clone(),
        );
        let websockets = Gauge::default();
        registry.register(
            "websocket_connections",
            "Open WebSocket connections",
            websockets.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            logins,
            refreshes,
            rate_limited,
            csrf_rejected,
            mails,
            store_errors,
            key_rotations,
            websockets,
        }
    }
}

fn kind(kind: &str) -> KindLabels {
    KindLabels {
        kind: kind.to_owned(),
    }
}

impl Metrics {
    /// Counts a login.
    pub fn login(&self, success: bool) {
        self.logins
            .get_or_create(&kind(if success { "success" } else { "failure" }))
            .inc();
    }

    /// Counts a refresh outcome.
    pub fn refresh(&self, outcome: &str) {
        self.refreshes.get_or_create(&kind(outcome)).inc();
    }

    /// Counts one mail event: `queued`, `sent`, `retried` or `failed`.
    pub fn mail(&self, outcome: &str) {
        self.mails.get_or_create(&kind(outcome)).inc();
    }

    /// Counts a rate-limit refusal.
    pub fn rate_limited(&self, policy: &str) {
        self.rate_limited.get_or_create(&kind(policy)).inc();
    }

    /// The Prometheus text, with the values read from elsewhere brought up to date.
    pub fn render(&self, readings: Readings) -> String {
        set_counter(&self.store_errors, readings.store_failures);
        set_counter(&self.key_rotations, readings.key_rotations);
        self.websockets
            .set(i64::try_from(readings.open_sockets).unwrap_or(i64::MAX));
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            tracing::error!("cannot encode metrics");
        }
        out
    }
}

/// The values [`Metrics::render`] reads from elsewhere, at the time of a scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readings {
    /// Rate-limit checks the store could not answer, since start.
    pub store_failures: u64,
    /// Signing-key rotations made by this instance, since start.
    pub key_rotations: u64,
    /// WebSockets open now.
    pub open_sockets: usize,
}

/// Raises a counter to `value` (counters read from an atomic elsewhere only grow).
fn set_counter(counter: &Counter<u64, AtomicU64>, value: u64) {
    let current = counter.get();
    if value > current {
        counter
            .inner()
            .fetch_add(value - current, Ordering::Relaxed);
    }
}

/// Serves `GET /metrics` (`metrics`, with the values `read` returns at each scrape) on its own
/// listener until `shutdown` turns `true`.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    read: impl Fn() -> Readings + Clone + Send + Sync + 'static,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics_bind: cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "metrics at /metrics");
    let router = axum::Router::new().route(
        "/metrics",
        get(move || {
            let text = metrics.render(read());
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    Ok(tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|down| *down).await;
        };
        bulwark::serve::serve(listener, router, Default::default(), stop).await;
    }))
}
