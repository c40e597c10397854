//! Application state, built once at start-up and handed to extractors through `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;
use bulwark::{
    jwt::{JwtAuth, KeyManager},
    password::{PasswordHasher, PasswordPolicy},
    revocation::Revoker,
};

use crate::{config::Settings, db::Repository};

/// Everything a handler may need. Cheap to clone (all `Arc`s).
#[derive(Clone, FromRef)]
pub struct AppState {
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
    /// Resolved settings.
    pub settings: Arc<Settings>,
}
