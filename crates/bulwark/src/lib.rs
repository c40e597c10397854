//! # Bulwark
//!
//! Security building blocks for [axum](https://docs.rs/axum) and [tower](https://docs.rs/tower)
//! APIs, secure by default: the protections a well-known guide to securing FastAPI APIs asks
//! for, as one request pipeline and extractors that read like the guide.
//!
//! # Quickstart
//!
//! A login through the OAuth2 password flow, a route for any caller and one for admins, with
//! rate limits (logins: 5 a minute per client IP), the security headers, FastAPI-shaped errors
//! and a hardened socket. `examples/quickstart.rs` adds cookie sessions and CSRF;
//! `examples/guide.rs` re-does the FastAPI guide practice by practice.
//!
//! ```no_run
//! use axum::{Router, extract::{FromRef, State}, routing::{get, post}};
//! use bulwark::prelude::*;
//! use secrecy::SecretString;
//! use serde::Deserialize;
//!
//! #[derive(Clone, FromRef)]
//! struct AppState {
//!     jwt: JwtAuth,
//!     hasher: PasswordHasher,
//!     admin_hash: String, // your user store
//! }
//!
//! #[derive(Deserialize)]
//! struct LoginForm { username: String, password: SecretString }
//!
//! async fn login(
//!     State(state): State<AppState>,
//!     Form(form): Form<LoginForm>,
//! ) -> Result<impl axum::response::IntoResponse, HttpError> {
//!     // Unknown users are checked against a dummy hash, off the async threads.
//!     let stored = (form.username == "admin").then_some(state.admin_hash.as_str());
//!     if !state.hasher.verify(form.password, stored).await?.is_match() {
//!         return Err(HttpError::invalid_login());
//!     }
//!     Ok(state.jwt.issue(&form.username, None, &["admin".to_owned()])?) // {"access_token": ...}
//! }
//!
//! async fn me(user: CurrentUser) -> String { format!("hello, {}", user.sub) } // else 401
//! async fn admin(admin: RequireRole<Admin>) -> String { admin.sub.clone() } // else 401 or 403
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let hasher = PasswordHasher::new(Default::default())?;
//!     let password = std::env::var("ADMIN_PASSWORD")?; // never in the code
//!     let admin_hash = hasher.hash(password.into()).await?.into_string();
//!     let jwt = JwtAuth::ephemeral(JwtConfig::new("my-api", "my-api"));
//!     let pipeline = Pipeline::builder()
//!         .authentication(jwt.clone())
//!         .login_route("POST /token")
//!         .build()?;
//!     let app = Router::new()
//!         .route("/token", post(login))
//!         .route("/me", get(me))
//!         .route("/admin", get(admin))
//!         .with_state(AppState { jwt, hasher, admin_hash })
//!         .layer(pipeline);
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     bulwark::serve::serve(listener, app, Default::default(), std::future::pending()).await;
//!     Ok(())
//! }
//! ```
//!
//! # Modules
//!
//! Each module protects against one class of attack and says in its own docs what it stops,
//! what it does not, and how to deploy it behind a proxy:
//!
//! | module | protects |
//! |---|---|
//! | [`pipeline`] | all of the below in one tower layer, in the order a request needs them |
//! | [`client_ip`] | client identity: the socket peer, or forwarded addresses only from trusted proxies |
//! | [`csrf`] | cross-site request forgery on cookie-authenticated requests |
//! | [`error`] | error bodies: FastAPI shapes, no internal detail ever sent |
//! | [`validation`] | typed request parsing with FastAPI-style 422 errors |
//! | [`jwt`] | bearer authentication: a rotating key ring, strict verification |
//! | [`api_key`] | machine clients: `bwk_` keys stored as an HMAC, checked in constant time, dead everywhere within 1 s of deletion |
//! | [`rate_limit`] | request floods and password guessing: exact GCRA limits, memory or Redis |
//! | [`rbac`] | role-based authorization (401 vs 403) |
//! | [`revocation`] | revoking tokens before they expire, shared across instances |
//! | [`totp`] | a leaked password alone: RFC 6238 codes used once per user, recovery codes |
//! | [`password`] | Argon2id hashing off the async threads, legacy bcrypt, strength policy |
//! | [`sanitize`] | XSS-safe user HTML over ammonia |
//! | [`headers`] | hardening response headers |
//! | [`secret`] | the master secret: strength checks, derived keys, sealing key material |
//! | [`serve`] | the socket: header-read and handshake timeouts, HTTP or HTTPS, graceful shutdown |
//! | [`tls`] | eavesdropping and tampering: rustls with TLS 1.2/1.3 only, reloadable certificates |
//!
//! The library knows nothing of users or items: state flows through axum's `FromRef`, never
//! through globals, so every protection can be configured once at start-up and tested alone.
//! [`prelude`] imports the items most applications use.
//!
//! # Cargo features
//!
//! Always compiled: JWT login and key rotation, roles, rate limits in memory, revocation lists,
//! CSRF, validation, error bodies, hardening headers, Argon2id hashing, the pipeline and
//! [`serve`] over plain HTTP. The rest is opt-in, so that an application compiles (and audits)
//! only what it uses:
//!
//! | feature | default | enables | pulls in |
//! |---|---|---|---|
//! | `sanitize` | yes | the `sanitize` module: XSS-safe user HTML | `ammonia` |
//! | `password-strength` | yes | `password::PasswordPolicy`: length, common-password list, zxcvbn score | `zxcvbn` |
//! | `redis` | no | `rate_limit::store::redis` and `revocation::store::redis`: limits and revocations shared across instances | `redis` |
//! | `legacy-bcrypt` | no | `password::PasswordHasher::verify` accepts `$2a$`/`$2b$`/`$2y$` hashes and asks for an Argon2id rehash; without it a bcrypt hash is an unknown format (no match, logged) | `bcrypt` |
//! | `tls` | no | the `tls` module and `serve::ServeOptions::tls`: HTTPS over rustls | `rustls`, `tokio-rustls` |
//! | `dev-certs` | no | `tls::self_signed`: self-signed development certificates; implies `tls` | `rcgen` |
//! | `sqlx-sqlite` | no | `store::sql::SqliteStores`: the signing-key ring and the revocation log in SQLite, with `migrate()` creating their tables | `sqlx` (SQLite, bundled) |
//! | `sqlx-postgres` | no | `store::sql::PgStores`: the same in PostgreSQL, shared by every instance on one database | `sqlx` (PostgreSQL) |
//! | `api-key` | no | the `api_key` module: `bwk_` API keys (HMAC-SHA256 under a key derived from the master secret, prefix lookup, constant-time comparison), a verifier with a 1 s cache and a caller hook for the user's roles, a key store (memory; `SqliteStores`/`PgStores` with `sqlx-*`, table `api_keys`) | |
//! | `mail` | no | the `mail` module: a `Mailer` over SMTP (`smtp://`, STARTTLS, implicit TLS; rustls) or to an `.eml` outbox folder, a durable queue and its worker | `lettre` |
//! | `totp` | no | the `totp` module: RFC 6238 codes (SHA-1, 6 digits, ±1 step), secrets and `otpauth://` URIs, replay protection through a step store (memory; Redis with `redis`; `SqliteStores`/`PgStores` with `sqlx-*`), recovery codes | `data-encoding` (already in the tree through axum) |
//! | `testing` | no | the `testing` module: conformance suites for store backends written elsewhere | |
//! | `fuzzing` | no | hidden hooks for the fuzz targets; not an API | |
//!
//! ```toml
//! # Defaults, plus HTTPS and Redis:
//! bulwark = { package = "bulwark-axum", version = "0.1", features = ["tls", "redis"] }
//! # The core alone:
//! bulwark = { package = "bulwark-axum", version = "0.1", default-features = false }
//! ```
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Links to items of a feature left out have nothing to point at; the docs with every feature on
// (docs.rs's, `cargo doc --all-features`) still check them all.
#![cfg_attr(
    not(all(
        feature = "redis",
        feature = "sanitize",
        feature = "password-strength",
        feature = "tls",
        feature = "dev-certs",
        feature = "totp",
        feature = "api-key"
    )),
    allow(rustdoc::broken_intra_doc_links)
)]

#[cfg(feature = "api-key")]
#[cfg_attr(docsrs, doc(cfg(feature = "api-key")))]
pub mod api_key;
pub mod client_ip;
pub mod cookie;
pub mod csrf;
pub mod error;
pub mod headers;
pub mod jwt;
#[cfg(feature = "mail")]
#[cfg_attr(docsrs, doc(cfg(feature = "mail")))]
pub mod mail;
pub mod password;
pub mod pipeline;
pub mod prelude;
pub mod rate_limit;
pub mod rbac;
pub mod revocation;
#[cfg(feature = "sanitize")]
#[cfg_attr(docsrs, doc(cfg(feature = "sanitize")))]
pub mod sanitize;
pub mod secret;
pub mod serve;
pub mod store;
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;
#[cfg(feature = "totp")]
#[cfg_attr(docsrs, doc(cfg(feature = "totp")))]
pub mod totp;
pub mod validation;
