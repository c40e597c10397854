//! The load benchmark's ceiling: the cheapest JSON route axum can serve on this machine.
//!
//! `bench/load.sh` runs it beside the real server, pinned to the same core and driven the same
//! way, and reports every Bulwark figure as a share of this one. It does nothing else: no
//! middleware, no state, no logging. The runtime is multi-threaded like the server's so the two
//! pay the same scheduling costs.
//!
//! ```text
//! cargo run --release -p bulwark-axum --example ceiling -- 127.0.0.1:18090
//! curl http://127.0.0.1:18090/health   # {"status":"ok"}
//! ```
//!
//! With `with-401` after the address, it also serves `GET /protected`: the 401 of S5 (a bad
//! token) with the headers the contract puts on it (security headers, rate-limit headers, a
//! request id, `WWW-Authenticate`), written as constants with no logic at all. `bench/load.sh`
//! prints it apart from the ratios: it tells how much of S5's distance to the ceiling is the
//! answer's own size, for the server that writes it and for the load generator that reads it
//! (docs/performance.md).

use axum::{
    Json, Router,
    body::Body,
    http::{HeaderName, HeaderValue, Response, StatusCode},
    routing::get,
};
use serde_json::{Value, json};

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The headers of Bulwark's 401 on `/protected` (without `Date` and `Content-Length`, which
/// hyper writes for both), as the benchmark's rate limits make them.
const UNAUTHORIZED_HEADERS: [(&str, &str); 12] = [
    ("content-type", "application/json"),
    ("www-authenticate", "Bearer"),
    ("ratelimit-limit", "1000000"),
    ("ratelimit-remaining", "999999"),
    ("ratelimit-reset", "1"),
    ("x-request-id", "7a36ff66-57e4-4b55-9e34-b2fdcdfe6246"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cache-control", "no-store"),
];

async fn unauthorized() -> Response<Body> {
    let mut response = Response::new(Body::from(
        &br#"{"detail":"Could not validate credentials"}"#[..],
    ));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.reserve(UNAUTHORIZED_HEADERS.len());
    for (name, value) in UNAUTHORIZED_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

fn main() -> std::io::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".to_owned());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&bind).await?;
            eprintln!("ceiling listening on {}", listener.local_addr()?);
            let mut app = Router::new().route("/health", get(health));
            // Only when asked, so that the ceiling's own router stays one route.
            if std::env::args().nth(2).as_deref() == Some("with-401") {
                app = app.route("/protected", get(unauthorized));
            }
            axum::serve(listener, app).await
        })
}
