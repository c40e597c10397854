//! Revoking access tokens before they expire, on every instance within a second.
//!
//! **Threat model.** A stolen access token stays valid until it expires unless the server can
//! refuse it. Two kinds of [`Revocation`] cover the cases a user expects to "log out everywhere":
//!
//! - [`Revocation::Token`]: one token by `jti` (logout, a reused refresh family);
//! - [`Revocation::Subject`]: every token of a subject whose token version (`ver` claim) is below
//!   a minimum (password, role or status change).
//!
//! Checking must not cost a network round trip per request, so each instance keeps a
//! [`RevocationList`] in memory, checked by [`crate::jwt::JwtAuth::verify`] with two hash
//! lookups, and a [`Revoker`] publishes revocations to a [`RevocationStore`] shared by every
//! instance and pulls the others' every few hundred milliseconds.
//!
//! **Not covered.** Between a revocation on one instance and the next pull on another (the sync
//! interval, 250 ms by default) the other instance still accepts the token. Entries expire with
//! the tokens they revoke, so the list stays as small as the number of live revoked tokens.

pub mod store;

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::jwt::Claims;

pub use store::{RevocationStore, StoreError, memory::MemoryRevocationStore};

/// One revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// The token with this `jti`; kept until `expires_at` (Unix seconds), after which the token
    /// is dead anyway.
    Token {
        /// The token id.
        jti: String,
        /// The token's `exp`.
        expires_at: i64,
    },
    /// Every token of `sub` whose `ver` is below `min_version`.
    Subject {
        /// The subject.
        sub: String,
        /// The lowest version still accepted.
        min_version: u64,
    },
}

/// The in-memory view every request checks. Cheap: two read-locked hash lookups.
#[derive(Debug, Default)]
pub struct RevocationList {
    tokens: RwLock<HashMap<String, i64>>,
    subjects: RwLock<HashMap<String, u64>>,
}

impl RevocationList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when `claims` belong to a revoked token.
    pub fn is_revoked(&self, claims: &Claims) -> bool {
        let by_subject = self
            .subjects
            .read()
            .map(|s| s.get(&claims.sub).is_some_and(|min| claims.ver < *min))
            .unwrap_or(true);
        by_subject
            || self
                .tokens
                .read()
                .map(|t| t.contains_key(&claims.jti))
                .unwrap_or(true)
    }

    /// True when `jti` was revoked (also used for other one-time values, such as spent CSRF
    /// cookies).
    pub fn contains_jti(&self, jti: &str) -> bool {
        self.tokens
            .read()
            .map(|t| t.contains_key(jti))
            .unwrap_or(true)
    }

    /// Records a revocation (idempotent; subject minimums only ever rise).
    pub fn apply(&self, revocation: &Revocation) {
        match revocation {
            Revocation::Token { jti, expires_at } => {
                if let Ok(mut tokens) = self.tokens.write() {
                    tokens.insert(jti.clone(), *expires_at);
                }
            }
            Revocation::Subject { sub, min_version } => {
                if let Ok(mut subjects) = self.subjects.write() {
                    let entry = subjects.entry(sub.clone()).or_insert(0);
                    *entry = (*entry).max(*min_version);
                }
            }
        }
    }

    /// Forgets token entries whose tokens expired before `now` (less `leeway` seconds).
    pub fn prune(&self, now: i64, leeway: i64) {
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.retain(|_, exp| *exp + leeway >= now);
        }
    }

    /// How many token entries are held.
    pub fn len(&self) -> usize {
        self.tokens.read().map(|t| t.len()).unwrap_or(0)
    }

    /// True when no token entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Publishes revocations to a shared store and keeps the local list in step with it.
#[derive(Debug)]
pub struct Revoker {
    store: Arc<dyn RevocationStore>,
    list: Arc<RevocationList>,
    cursor: AtomicU64,
}

impl Revoker {
    /// A revoker over `store`, feeding `list`.
    pub fn new(store: Arc<dyn RevocationStore>, list: Arc<RevocationList>) -> Self {
        Self {
            store,
            list,
            cursor: AtomicU64::new(0),
        }
    }

    /// The local list.
    pub fn list(&self) -> &Arc<RevocationList> {
        &self.list
    }

    /// Publishes `revocation` and applies it locally at once.
    ///
    /// # Errors
    /// When the store cannot be written (the local list is updated all the same).
    pub async fn revoke(&self, revocation: Revocation) -> Result<(), StoreError> {
        self.list.apply(&revocation);
        self.store.publish(&revocation).await
    }

    /// Pulls what other instances published since the last pull.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn sync(&self) -> Result<usize, StoreError> {
        let cursor = self.cursor.load(Ordering::Acquire);
        let (revocations, next) = self.store.since(cursor).await?;
        for r in &revocations {
            self.list.apply(r);
        }
        self.cursor.fetch_max(next, Ordering::AcqRel);
        Ok(revocations.len())
    }

    /// Removes from the shared store what no live token can need any more (see
    /// [`RevocationStore::purge`]): token entries expired (with the clock leeway) by `now`, and
    /// subject entries older than `longest_token_lifetime` (with the leeway).
    ///
    /// # Errors
    /// When the store cannot be written.
    pub async fn purge(
        &self,
        now: i64,
        longest_token_lifetime: Duration,
    ) -> Result<u64, StoreError> {
        let leeway = crate::jwt::MAX_LEEWAY_SECS as i64;
        let lifetime = i64::try_from(longest_token_lifetime.as_secs()).unwrap_or(i64::MAX / 4);
        self.store
            .purge(now - leeway, now.saturating_sub(lifetime + leeway))
            .await
    }

    /// Syncs every `every` and prunes expired entries, until the returned task is aborted.
    pub fn spawn_sync(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if let Err(err) = self.sync().await {
                    tracing::warn!(error = %err, "revocation sync failed; retrying");
                }
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                self.list.prune(now, crate::jwt::MAX_LEEWAY_SECS as i64);
            }
        })
    }
}

#[cfg(test)]
mod tests;
