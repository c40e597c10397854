//! The signing-key ring's persistence: keys live in the `signing_keys` table, their material
//! sealed with a key derived from the master secret, and are loaded into the in-memory
//! [`KeyRing`] that verification reads.

use std::sync::Arc;

use anyhow::Context as _;
use bulwark::{
    jwt::{KeyRing, KeyState, SigningKey},
    secret::{MasterSecret, Sealer},
};

use crate::db::{Repository, StoredKey, now};

/// Loads, creates and lists signing keys.
pub struct KeyManager {
    repo: Arc<dyn Repository>,
    sealer: Sealer,
    ring: Arc<KeyRing>,
}

impl KeyManager {
    /// A manager for `ring`, sealing with `secret`.
    pub fn new(repo: Arc<dyn Repository>, secret: &MasterSecret, ring: Arc<KeyRing>) -> Self {
        Self {
            repo,
            sealer: secret.sealer(),
            ring,
        }
    }

    /// The in-memory ring.
    pub fn ring(&self) -> &Arc<KeyRing> {
        &self.ring
    }

    /// Reloads the ring from the database.
    ///
    /// # Errors
    /// When the database fails, or a key cannot be unsealed (another master secret).
    pub async fn reload(&self) -> anyhow::Result<()> {
        let stored = self.repo.list_keys().await?;
        let mut keys = Vec::with_capacity(stored.len());
        for key in stored {
            let state = KeyState::parse(&key.state)
                .with_context(|| format!("key {}: unknown state {:?}", key.kid, key.state))?;
            let material = self
                .sealer
                .open(&key.sealed, key.kid.as_bytes())
                .with_context(|| {
                    format!(
                        "signing key {} cannot be unsealed: was the master secret changed?",
                        key.kid
                    )
                })?;
            let key = match key.alg.as_str() {
                "HS256" => SigningKey::from_hs256_secret(
                    key.kid.clone(),
                    material,
                    state,
                    key.created_at,
                    key.retires_at,
                )
                .with_context(|| format!("signing key {} is unusable", key.kid))?,
                other => anyhow::bail!("signing key {}: unsupported algorithm {other}", key.kid),
            };
            keys.push(key);
        }
        self.ring.replace(keys);
        Ok(())
    }

    /// Loads the ring and, when it has no active key, creates one.
    ///
    /// # Errors
    /// As [`KeyManager::reload`], or when the new key cannot be stored.
    pub async fn ensure_active(&self) -> anyhow::Result<()> {
        self.reload().await?;
        if self.ring.active().is_none() {
            self.insert(SigningKey::generate_hs256(now())).await?;
            self.reload().await?;
        }
        Ok(())
    }

    async fn insert(&self, key: SigningKey) -> anyhow::Result<()> {
        let stored = StoredKey {
            kid: key.kid().to_owned(),
            alg: key.alg_name().to_owned(),
            state: key.state().as_str().to_owned(),
            sealed: self.sealer.seal(key.expose_secret(), key.kid().as_bytes()),
            created_at: key.created_at(),
            retires_at: key.retires_at(),
        };
        self.repo.insert_key(&stored).await?;
        tracing::info!(kid = key.kid(), alg = key.alg_name(), "created signing key");
        Ok(())
    }
}
