//! Application state, built once at start-up and handed to extractors through `FromRef`.

use std::{ops::Deref, sync::Arc};

use axum::extract::FromRef;
use bulwark::{
    jwt::{JwtAuth, KeyManager},
    password::{PasswordHasher, PasswordPolicy},
    rate_limit::{RateLimitPolicy, store::redis::RedisRateLimitStore},
    revocation::Revoker,
};

use crate::{config::Settings, db::Repository};

impl Services {
    /// The scheme browsers use to reach this server, for same-origin checks.
    pub fn scheme(&self) -> &'static str {
        self.settings.scheme()
    }
}

/// Everything a handler may need, behind one `Arc`: axum clones the state for every request (the
/// handler service and each `State` extractor), so a clone must be one reference-count increment,
/// not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Wraps the services built at start-up.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

impl FromRef<AppState> for JwtAuth {
    fn from_ref(state: &AppState) -> Self {
        state.jwt.clone()
    }
}

/// The services of [`AppState`].
pub struct Services {
    /// The data layer.
    pub repo: Arc<dyn Repository>,
    /// Access-token issuing and verification.
    pub jwt: JwtAuth,
    /// Password hashing, off the async threads.
    pub hasher: PasswordHasher,
    /// Rules for new passwords.
    pub policy: Arc<PasswordPolicy>,
    /// The signing-key ring and its rotation.
    pub keys: Arc<KeyManager>,
    /// Token revocation, shared through the database.
    pub revoker: Arc<Revoker>,
    /// Token pairs and session tokens: issue, refresh, logout, invalidation.
    pub sessions: Arc<crate::sessions::Sessions>,
    /// Logging in, by the password flow or from a browser.
    pub login: crate::login::Login,
    /// Self-service accounts: password change and reset, e-mail verification, deletion.
    pub accounts: Arc<crate::accounts::Accounts>,
    /// The mail worker, taken and run by `Application::run_until_stopped`.
    pub mail_worker: std::sync::Mutex<Option<bulwark::mail::worker::MailWorker>>,
    /// Where mails go, for the start-up banner: `smtp://host:port` or the outbox folder.
    pub mail_transport: String,
    /// Becomes `true` when the server begins shutting down (WebSockets close with 1001).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Flips [`AppState::shutdown`].
    pub shutdown_sender: Arc<tokio::sync::watch::Sender<bool>>,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Item change events for WebSockets, on every instance.
    pub events: Arc<dyn crate::events::EventBus>,
    /// Open WebSockets per user, to cap them.
    pub sockets: Arc<crate::sockets::SocketCounter>,
    /// CSRF tokens for cookie sessions.
    pub csrf: Arc<bulwark::csrf::Csrf>,
    /// Rate limits and their store.
    pub limits: Arc<RateLimitPolicy>,
    /// Refusals waiting for their audit row (one per client and window).
    pub refusals: Arc<crate::refusals::RefusalLog>,
    /// One line per request, when the server logs at info (see [`crate::telemetry::AccessLog`]).
    pub access_log: Option<crate::telemetry::AccessLog>,
    /// The Redis rate-limit store, when `redis_url` is set (for readiness checks).
    pub redis: Option<RedisRateLimitStore>,
    /// Resolved settings.
    pub settings: Arc<Settings>,
}
