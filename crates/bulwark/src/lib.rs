//! # Bulwark
//!
//! Security building blocks for [axum](https://docs.rs/axum) and [tower](https://docs.rs/tower)
//! APIs, secure by default. Each module protects against one class of attack and says in its own
//! docs what it stops, what it does not, and how to deploy it behind a proxy:
//!
//! | module | protects |
//! |---|---|
//! | [`client_ip`] | client identity: the socket peer, or forwarded addresses only from trusted proxies |
//! | [`csrf`] | cross-site request forgery on cookie-authenticated requests |
//! | [`error`] | error bodies: FastAPI shapes, no internal detail ever sent |
//! | [`validation`] | typed request parsing with FastAPI-style 422 errors |
//! | [`jwt`] | bearer authentication: a rotating key ring, strict verification |
//! | [`rate_limit`] | request floods and password guessing: exact GCRA limits, memory or Redis |
//! | [`rbac`] | role-based authorization (401 vs 403) |
//! | [`revocation`] | revoking tokens before they expire, shared across instances |
//! | [`password`] | Argon2id hashing off the async threads, legacy bcrypt, strength policy |
//! | [`sanitize`] | XSS-safe user HTML over ammonia |
//! | [`headers`] | hardening response headers |
//! | [`secret`] | the master secret: strength checks, derived keys, sealing key material |
//! | [`pipeline`] | all of the above in one tower layer, in the order a request needs them |
//! | [`serve`] | the socket: header-read and handshake timeouts, HTTP or HTTPS, graceful shutdown |
//! | [`tls`] | eavesdropping and tampering: rustls with TLS 1.2/1.3 only, reloadable certificates |
//!
//! The library knows nothing of users or items: state flows through axum's `FromRef`, never
//! through globals, so every protection can be configured once at start-up and tested alone.
#![warn(missing_docs)]

pub mod client_ip;
pub mod cookie;
pub mod csrf;
pub mod error;
pub mod headers;
pub mod jwt;
pub mod password;
pub mod pipeline;
pub mod rate_limit;
pub mod rbac;
pub mod revocation;
pub mod sanitize;
pub mod secret;
pub mod serve;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;
pub mod validation;
