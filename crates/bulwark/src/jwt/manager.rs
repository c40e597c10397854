use std::{sync::Arc, time::Duration};

use tokio::sync::Mutex;

use super::{
    KeyRing, KeyState, SigningKey,
    auth::KeyRefresh,
    store::{KeyStore, StoredKey},
};
use crate::secret::{MasterSecret, Sealer};

/// Which algorithm new keys use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// HMAC-SHA256 with a 256-bit random key (default).
    Hs256,
    /// Ed25519 signatures; the public keys are published as a JWKS.
    EdDsa,
}

impl<'de> serde::Deserialize<'de> for KeyAlgorithm {
    /// Exactly `"HS256"` or `"EdDSA"`, as JOSE names them; the error names what is allowed.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "HS256" => Ok(Self::Hs256),
            "EdDSA" => Ok(Self::EdDsa),
            _ => Err(serde::de::Error::custom(format_args!(
                "{text:?} is not supported; allowed: \"HS256\", \"EdDSA\""
            ))),
        }
    }
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A stored key cannot be unsealed (the master secret changed?) or used.
    #[error("signing key {kid} is unusable: {reason}")]
    Unusable {
        /// The key.
        kid: String,
        /// Why (never material).
        reason: String,
    },
    /// No such key.
    #[error("no signing key {0}")]
    NotFound(String),
}

/// A key operation's failure as an answer: 404 for an unknown key, 503 while the store is
/// unreachable, else a generic 500; the cause is logged, never sent.
impl From<KeyError> for crate::error::HttpError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::NotFound(_) => Self::not_found(),
            KeyError::Store(store) if store.is_unavailable() => {
                tracing::warn!(error = %store, "key store unavailable");
                Self::unavailable("Service temporarily unavailable")
            }
            other => {
                tracing::error!(error = %other, "key operation failed");
                Self::internal()
            }
        }
    }
}

/// Keeps a [`KeyRing`] in step with a [`KeyStore`]: creates the first key, rotates on a schedule
/// or on demand, retires keys once every token they signed has expired, revokes in an emergency.
///
/// Rotation makes the new key active and turns the previous one `verifying` until
/// `now + grace` (the access-token lifetime plus leeway), so no valid token stops verifying:
/// rotation never logs anyone out. Revocation rejects a key's tokens at once.
#[derive(Debug)]
pub struct KeyManager {
    store: Arc<dyn KeyStore>,
    sealer: Sealer,
    ring: Arc<KeyRing>,
    algorithm: KeyAlgorithm,
    grace: Duration,
    interval: Duration,
    loaded: Mutex<Vec<(String, KeyState, Option<i64>)>>,
    rotations: std::sync::atomic::AtomicU64,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl KeyManager {
    /// A manager; `grace` is how long a replaced key keeps verifying, `interval` how often keys
    /// rotate on schedule.
    pub fn new(
        store: Arc<dyn KeyStore>,
        secret: &MasterSecret,
        ring: Arc<KeyRing>,
        algorithm: KeyAlgorithm,
        grace: Duration,
        interval: Duration,
    ) -> Self {
        Self {
            store,
            sealer: secret.sealer(),
            ring,
            algorithm,
            grace,
            interval,
            loaded: Mutex::new(Vec::new()),
            rotations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many rotations (and first keys) this manager made.
    pub fn rotations(&self) -> u64 {
        self.rotations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The in-memory ring.
    pub fn ring(&self) -> &Arc<KeyRing> {
        &self.ring
    }

    /// Reloads the ring from the store when anything changed; answers whether it did.
    ///
    /// # Errors
    /// When the store fails or a key cannot be unsealed.
    pub async fn reload(&self) -> Result<bool, KeyError> {
        // Held from before the read until the ring is replaced: two reloads (the maintenance
        // task's and a revocation's) must not read in one order and install in the other, or an
        // older snapshot (a revoked key still verifying) would replace a newer one.
        let mut loaded = self.loaded.lock().await;
        let stored = self.store.list().await?;
        let mut fingerprint: Vec<_> = stored
            .iter()
            .map(|k| (k.kid.clone(), k.state, k.retires_at))
            .collect();
        fingerprint.sort_by(|a, b| a.0.cmp(&b.0));
        if *loaded == fingerprint {
            return Ok(false);
        }
        let mut keys = Vec::with_capacity(stored.len());
        for k in stored {
            let unusable = |reason: &str| KeyError::Unusable {
                kid: k.kid.clone(),
                reason: reason.to_owned(),
            };
            let material = self
                .sealer
                .open(&k.sealed, k.kid.as_bytes())
                .map_err(|_| unusable("cannot unseal it: was the master secret changed?"))?;
            let key = SigningKey::from_material(
                &k.alg,
                k.kid.clone(),
                material,
                k.state,
                k.created_at,
                k.retires_at,
            )
            .map_err(|_| unusable("bad material or unsupported algorithm"))?;
            keys.push(key);
        }
        self.ring.replace(keys);
        *loaded = fingerprint;
        Ok(true)
    }

    fn generate(&self) -> SigningKey {
        match self.algorithm {
            KeyAlgorithm::Hs256 => SigningKey::generate_hs256(now()),
            KeyAlgorithm::EdDsa => SigningKey::generate_ed25519(now()),
        }
    }

    fn seal(&self, key: &SigningKey) -> StoredKey {
        StoredKey {
            kid: key.kid().to_owned(),
            alg: key.alg_name().to_owned(),
            state: KeyState::Active,
            sealed: self.sealer.seal(key.expose_secret(), key.kid().as_bytes()),
            created_at: key.created_at(),
            retires_at: None,
        }
    }

    /// A freshly generated, sealed key (for store conformance tests).
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn test_stored_key(&self) -> StoredKey {
        self.seal(&self.generate())
    }

    async fn rotate_in_slot(&self, slot: Option<i64>) -> Result<Option<String>, KeyError> {
        let key = self.generate();
        let stored = self.seal(&key);
        let rotated = self
            .store
            .rotate(&stored, now() + secs(self.grace), slot)
            .await?;
        self.reload().await?;
        if rotated {
            self.rotations
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(kid = key.kid(), alg = key.alg_name(), "signing key rotated");
        }
        Ok(rotated.then(|| key.kid().to_owned()))
    }

    /// Loads the ring and makes sure it has an active key (creating the first one; with several
    /// instances starting together, one creates it and the others load it).
    ///
    /// # Errors
    /// As [`KeyManager::reload`].
    pub async fn ensure_active(&self) -> Result<(), KeyError> {
        self.reload().await?;
        if self.ring.active().is_none() {
            // Slot 0 is the bootstrap slot; when it was used before (every key since revoked),
            // rotate unconditionally.
            if self.rotate_in_slot(Some(0)).await?.is_none() && self.ring.active().is_none() {
                self.rotate_in_slot(None).await?;
            }
        }
        Ok(())
    }

    /// Rotates now: a new active key; the previous one verifies until its tokens expire.
    /// Answers the new key's id.
    ///
    /// # Errors
    /// As [`KeyManager::reload`].
    pub async fn rotate(&self) -> Result<String, KeyError> {
        self.rotate_in_slot(None)
            .await?
            .ok_or_else(|| KeyError::NotFound("rotation did not happen".to_owned()))
    }

    /// Rotates when the active key is older than the current interval slot. Several instances
    /// may call this together: the store's slot claim lets exactly one rotate.
    ///
    /// # Errors
    /// As [`KeyManager::reload`].
    pub async fn rotate_if_due(&self) -> Result<bool, KeyError> {
        let interval = secs(self.interval).max(1);
        let t = now();
        let slot = t / interval;
        let due = self
            .ring
            .active()
            .is_none_or(|k| k.created_at() < slot * interval);
        if !due {
            return Ok(false);
        }
        Ok(self.rotate_in_slot(Some(slot)).await?.is_some())
    }

    /// Revokes `kid` at once: its tokens stop verifying on this instance now and on the others
    /// at their next reload. When it was the active key, a new one is made.
    ///
    /// # Errors
    /// [`KeyError::NotFound`] for an unknown key, or a store failure.
    pub async fn revoke(&self, kid: &str) -> Result<(), KeyError> {
        if !self.store.revoke(kid).await? {
            return Err(KeyError::NotFound(kid.to_owned()));
        }
        tracing::warn!(kid, "signing key revoked");
        self.ensure_active().await
    }

    /// One maintenance pass: retire keys past their grace, rotate when due, reload.
    ///
    /// # Errors
    /// As [`KeyManager::reload`].
    pub async fn maintain(&self) -> Result<(), KeyError> {
        self.store.retire_due(now()).await?;
        self.reload().await?;
        self.rotate_if_due().await?;
        Ok(())
    }

    /// Runs [`KeyManager::maintain`] every `every` until the task is aborted.
    pub fn spawn_maintenance(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(err) = self.maintain().await {
                    tracing::warn!(error = %err, "key maintenance failed; retrying");
                }
            }
        })
    }
}

impl KeyRefresh for KeyManager {
    fn refresh(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if let Err(err) = self.reload().await {
                tracing::warn!(error = %err, "key ring reload failed");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::jwt::{JwtAuth, JwtConfig, store::memory::MemoryKeyStore};

    fn manager(store: Arc<dyn KeyStore>, secret: &MasterSecret, alg: KeyAlgorithm) -> KeyManager {
        KeyManager::new(
            store,
            secret,
            Arc::new(KeyRing::new()),
            alg,
            Duration::from_secs(60),
            Duration::from_secs(3600),
        )
    }

    #[tokio::test]
    async fn memory_key_store_conforms() {
        crate::testing::key_store_conformance(Arc::new(MemoryKeyStore::new())).await;
    }

    #[tokio::test]
    async fn eddsa_keys_sign_verify_and_publish_only_public_parts() {
        let store: Arc<dyn KeyStore> = Arc::new(MemoryKeyStore::new());
        let m = manager(store, &MasterSecret::generate(), KeyAlgorithm::EdDsa);
        m.ensure_active().await.unwrap();
        let key = m.ring().active().unwrap();
        let auth = JwtAuth::new(Arc::clone(m.ring()), JwtConfig::new("i", "a"));
        let token = auth.issue("1", None, &[]).unwrap().token;
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().alg,
            jsonwebtoken::Algorithm::EdDSA
        );
        assert!(auth.verify(&token).is_ok());
        let jwk = key.public_jwk().unwrap();
        assert_eq!(jwk["kty"], "OKP");
        assert!(jwk.get("d").is_none());
    }

    #[tokio::test]
    async fn a_key_sealed_under_another_master_secret_is_refused() {
        let store: Arc<dyn KeyStore> = Arc::new(MemoryKeyStore::new());
        manager(
            Arc::clone(&store),
            &MasterSecret::generate(),
            KeyAlgorithm::Hs256,
        )
        .ensure_active()
        .await
        .unwrap();
        let other = manager(store, &MasterSecret::generate(), KeyAlgorithm::Hs256);
        assert!(matches!(
            other.reload().await,
            Err(KeyError::Unusable { .. })
        ));
    }

    /// A store whose next `list` reads at once but answers only when released: a reload
    /// that read before a revocation, still on its way.
    #[derive(Debug)]
    struct SlowList {
        inner: MemoryKeyStore,
        hold_next: std::sync::atomic::AtomicBool,
        release: tokio::sync::Notify,
    }

    impl KeyStore for SlowList {
        fn list(&self) -> crate::store::StoreFuture<'_, Vec<StoredKey>> {
            let hold = self
                .hold_next
                .swap(false, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                let snapshot = self.inner.list().await;
                if hold {
                    self.release.notified().await;
                }
                snapshot
            })
        }

        fn rotate<'a>(
            &'a self,
            key: &'a StoredKey,
            retire_at: i64,
            slot: Option<i64>,
        ) -> crate::store::StoreFuture<'a, bool> {
            self.inner.rotate(key, retire_at, slot)
        }

        fn revoke<'a>(&'a self, kid: &'a str) -> crate::store::StoreFuture<'a, bool> {
            self.inner.revoke(kid)
        }

        fn retire_due(&self, now: i64) -> crate::store::StoreFuture<'_, u64> {
            self.inner.retire_due(now)
        }
    }

    #[tokio::test]
    async fn a_reload_that_read_before_a_revocation_cannot_undo_it() {
        let store = Arc::new(SlowList {
            inner: MemoryKeyStore::new(),
            hold_next: false.into(),
            release: tokio::sync::Notify::new(),
        });
        let m = Arc::new(manager(
            Arc::clone(&store) as Arc<dyn KeyStore>,
            &MasterSecret::generate(),
            KeyAlgorithm::Hs256,
        ));
        m.ensure_active().await.unwrap();
        let newest = m.rotate().await.unwrap();
        let first = m
            .ring()
            .keys()
            .into_iter()
            .find(|k| k.kid() != newest)
            .unwrap();
        let first = first.kid().to_owned();

        // A maintenance reload reads (the first key still verifying) and is held.
        store
            .hold_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let stale = tokio::spawn({
            let m = Arc::clone(&m);
            async move { m.reload().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The first key is revoked meanwhile; its own reload waits for the held one.
        let revoke = tokio::spawn({
            let m = Arc::clone(&m);
            let first = first.clone();
            async move { m.revoke(&first).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        store.release.notify_one();
        stale.await.unwrap().unwrap();
        revoke.await.unwrap().unwrap();

        assert_eq!(m.ring().get(&first).unwrap().state(), KeyState::Revoked);
    }
}
