use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use super::key::{KeyState, SigningKey};

/// The set of keys a service signs and verifies with, swapped as a whole when keys change.
///
/// Readers take a cheap snapshot (`Arc` clone under a read lock held for nanoseconds), so
/// verification never waits on a rotation. The ring lives in application state and is reached
/// through axum's `FromRef`, never through a global: a global cannot rotate, nor be tested alone.
#[derive(Debug, Default)]
pub struct KeyRing {
    inner: RwLock<Arc<Snapshot>>,
}

#[derive(Debug, Default)]
struct Snapshot {
    keys: HashMap<String, Arc<SigningKey>>,
    active: Option<Arc<SigningKey>>,
}

impl KeyRing {
    /// An empty ring: it verifies nothing and cannot sign until keys are loaded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces every key. The newest `Active` key becomes the signing key.
    pub fn replace(&self, keys: Vec<SigningKey>) {
        let keys: HashMap<String, Arc<SigningKey>> = keys
            .into_iter()
            .map(|k| (k.kid().to_owned(), Arc::new(k)))
            .collect();
        let active = keys
            .values()
            .filter(|k| k.state() == KeyState::Active)
            .max_by(|a, b| {
                a.created_at()
                    .cmp(&b.created_at())
                    .then_with(|| a.kid().cmp(b.kid()))
            })
            .cloned();
        let snapshot = Arc::new(Snapshot { keys, active });
        match self.inner.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        match self.inner.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The key that signs new tokens, if any.
    pub fn active(&self) -> Option<Arc<SigningKey>> {
        self.snapshot().active.clone()
    }

    /// The key with id `kid`, whatever its state.
    pub fn get(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.snapshot().keys.get(kid).cloned()
    }

    /// Every key, newest first.
    pub fn keys(&self) -> Vec<Arc<SigningKey>> {
        let mut keys: Vec<_> = self.snapshot().keys.values().cloned().collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at()));
        keys
    }
}
