//! The single-instance backend: keys in process memory (lost at exit).

use std::{collections::HashSet, sync::Mutex};

use super::{KeyStore, StoreError, StoreFuture, StoredKey};
use crate::jwt::KeyState;

/// Keeps keys in memory. For tests and single-process deployments that accept new keys (and so
/// logging everyone out) at each restart.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    keys: Vec<StoredKey>,
    slots: HashSet<i64>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::new("poisoned lock"))
    }
}

impl KeyStore for MemoryKeyStore {
    fn list(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        Box::pin(async move { Ok(self.lock()?.keys.clone()) })
    }

    fn rotate<'a>(
        &'a self,
        key: &'a StoredKey,
        retire_at: i64,
        slot: Option<i64>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            if let Some(slot) = slot
                && !inner.slots.insert(slot)
            {
                return Ok(false);
            }
            for k in inner
                .keys
                .iter_mut()
                .filter(|k| k.state == KeyState::Active)
            {
                k.state = KeyState::Verifying;
                k.retires_at = Some(retire_at);
            }
            inner.keys.push(StoredKey {
                state: KeyState::Active,
                ..key.clone()
            });
            Ok(true)
        })
    }

    fn revoke<'a>(&'a self, kid: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            let found = inner.keys.iter_mut().find(|k| k.kid == kid);
            Ok(found
                .map(|k| {
                    k.state = KeyState::Revoked;
                })
                .is_some())
        })
    }

    fn retire_due(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            let mut n = 0;
            for k in inner.keys.iter_mut().filter(|k| {
                k.state == KeyState::Verifying && k.retires_at.is_some_and(|t| t <= now)
            }) {
                k.state = KeyState::Retired;
                n += 1;
            }
            Ok(n)
        })
    }
}
