//! The request pipeline, as one tower layer: every protection of this crate in the order a
//! request needs them, configured once by a typed builder.
//!
//! ```text
//! hardening (span, body limit, panic → 500, timeout → 408, error shape, security headers)
//!   → CORS (listed origins only) → client identity (trusted proxies) → request id
//!   → authentication (JWT key ring + revocations) → rate limit (per route, user or IP, logins)
//!   → CSRF (cookie-authenticated writes) → early 401 (routes that require a caller) → your router
//! ```
//!
//! This is the exact code the `bulwark` server runs in front of its router; it answers most
//! requests without a boxed future or an extra clone of the router (see [`PipelineService`]).
//!
//! # Example
//! ```
//! use std::{net::SocketAddr, sync::Arc, time::Duration};
//! use axum::{Router, routing::get};
//! use bulwark::{
//!     jwt::{JwtAuth, JwtConfig, KeyRing, SigningKey},
//!     pipeline::Pipeline,
//!     rate_limit::{RateLimitPolicy, Quota, store::memory::MemoryRateLimitStore},
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ring = Arc::new(KeyRing::new());
//! ring.replace(vec![SigningKey::generate_hs256(0)]);
//! let jwt = JwtAuth::new(ring, JwtConfig::new("my-api", "my-api"));
//! let limits = RateLimitPolicy::new(Arc::new(MemoryRateLimitStore::default()))
//!     .default_quota(Quota::new(100, Duration::from_secs(60)))
//!     .login_route("POST /token".parse()?);
//!
//! let pipeline = Pipeline::builder()
//!     .authentication(jwt)
//!     .rate_limits(limits)
//!     .authenticated("/me", [http::Method::GET])
//!     .build()?;
//! let app = Router::new()
//!     .route("/me", get(|| async { "me" }))
//!     .layer(pipeline);
//! // The pipeline needs each request's socket address (client identity, rate limits): serve
//! // with `ConnectInfo`, or with `bulwark::serve::serve`, which records it.
//! let _make = app.into_make_service_with_connect_info::<SocketAddr>();
//! # Ok(()) }
//! ```
//!
//! # Client identity
//! The client is the socket peer, or the address a trusted proxy forwarded (see
//! [`crate::client_ip`]). The pipeline never guesses: a request without its socket address
//! (an app served by `axum::serve(listener, app)` without
//! `into_make_service_with_connect_info`, or a test calling the service directly) is answered
//! `500` and logged with the fix, instead of sharing one rate-limit bucket with every other
//! client. In tests, add `axum::extract::connect_info::MockConnectInfo` under the pipeline.
//!
//! # Route templates
//! The pipeline runs before the router, so it finds each request's route template itself from
//! the templates it was told about: those named by the rate-limit policy (login routes,
//! per-route quotas, unlimited routes), by [`PipelineBuilder::authenticated`] and by
//! [`PipelineBuilder::route`]. A request to any other path is limited by the default quota
//! (per user, else per IP) and reported to the [`Observer`] as [`UNMATCHED`].

mod builder;
mod future;
mod guard;
mod harden;
mod layer;
mod routes;
mod scope;
mod service;

use std::{net::IpAddr, time::Duration};

use axum::response::Response;

pub use builder::{DEFAULT_MAX_BODY, DEFAULT_TIMEOUT, Pipeline, PipelineBuilder, PipelineError};
pub use future::PipelineFuture;
pub use layer::PipelineLayer;
pub use routes::check_template;
pub use service::PipelineService;

pub use crate::rate_limit::UNMATCHED;

/// The target of the access line the pipeline writes for a request it answered before it
/// finished (`413` on a declared length, `408`, a panic): `RUST_LOG=bulwark::access=off`
/// silences it with the rest of an access log.
pub const ACCESS_TARGET: &str = "bulwark::access";

/// The request id header: taken from a trusted proxy when it is sane, else a new UUID; echoed
/// on every answer.
pub const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// What the pipeline reports about each request it passed through, once its answer is ready:
/// metrics, an access log, an audit trail of refusals. Called on the request's own task, before
/// the answer is sent: never wait or block here (hand work to a background task).
///
/// `()` observes nothing.
pub trait Observer: Send + Sync + 'static {
    /// What the observer keeps per route template (a set of metrics, say), made on the first
    /// request to the route so that unused routes cost nothing.
    type Route: Send + Sync + 'static;

    /// The per-route state of `template` ([`UNMATCHED`] for requests no known route matched).
    fn route(&self, template: &str) -> Self::Route;

    /// `request` was answered with `response` (whose headers the observer may still read; the
    /// request id is set after this call).
    fn finished(&self, route: &Self::Route, request: &Finished<'_>, response: &Response);
}

impl Observer for () {
    type Route = ();

    fn route(&self, _template: &str) {}

    fn finished(&self, _route: &(), _request: &Finished<'_>, _response: &Response) {}
}

/// A request the pipeline finished, as reported to an [`Observer`]: never its path, query or
/// headers (they carry ids, tokens and user data).
#[derive(Debug)]
#[non_exhaustive]
pub struct Finished<'a> {
    /// The request method.
    pub method: &'a http::Method,
    /// The route template ([`UNMATCHED`] when none matched).
    pub route: &'a str,
    /// The client's address (see [`crate::client_ip`]).
    pub client_ip: IpAddr,
    /// The request id (sanitized: letters, digits, `-_.:` only).
    pub request_id: &'a str,
    /// From the request's arrival in the pipeline to its answer.
    pub elapsed: Duration,
}

#[cfg(test)]
mod tests;
