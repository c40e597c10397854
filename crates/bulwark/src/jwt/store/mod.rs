//! Where the key ring is kept: a trait, one file per backend (the SQL backends, which keep
//! revocations too, are in `store::sql`: features `sqlx-sqlite` and `sqlx-postgres`).

pub mod memory;

pub use crate::store::{StoreError, StoreFuture};

use super::KeyState;

/// A key as stored: its material sealed with the master secret (see [`crate::secret::Sealer`]).
#[derive(Clone)]
pub struct StoredKey {
    /// Key id.
    pub kid: String,
    /// JOSE algorithm name: `HS256` or `EdDSA`.
    pub alg: String,
    /// State.
    pub state: KeyState,
    /// Sealed material; opens with the key id as context.
    pub sealed: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; when set, the key stops verifying then.
    pub retires_at: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("retires_at", &self.retires_at)
            .finish_non_exhaustive()
    }
}

/// Persistence of the key ring, shared by every instance that verifies the same tokens.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Every key.
    fn list(&self) -> StoreFuture<'_, Vec<StoredKey>>;

    /// Atomically: when `slot` is given and was already claimed, changes nothing and answers
    /// `false`; otherwise claims it, turns every `active` key into `verifying` with
    /// `retires_at = retire_at`, inserts `key` as the active key and answers `true`. The slot
    /// makes a scheduled rotation happen once per interval however many instances try.
    fn rotate<'a>(
        &'a self,
        key: &'a StoredKey,
        retire_at: i64,
        slot: Option<i64>,
    ) -> StoreFuture<'a, bool>;

    /// Marks `kid` revoked; `false` when there is no such key.
    fn revoke<'a>(&'a self, kid: &'a str) -> StoreFuture<'a, bool>;

    /// Marks `verifying` keys with `retires_at <= now` as `retired`; answers how many.
    fn retire_due(&self, now: i64) -> StoreFuture<'_, u64>;
}
