//! Where API keys are kept: the [`ApiKeyStore`] trait and [`memory::MemoryApiKeyStore`]. The
//! SQL backends (`SqliteStores`, `PgStores`, table `api_keys`) live in [`crate::store::sql`]
//! (features `sqlx-sqlite` and `sqlx-postgres`).

pub mod memory;

pub use crate::store::{StoreError, StoreFuture};

use super::KeyHash;

/// The most keys a subject may hold, by default (the contract's "at most 20 keys per user").
pub const DEFAULT_MAX_KEYS_PER_SUBJECT: u32 = 20;

/// One stored key: everything but the key itself, which only its owner ever sees. `Debug`
/// shows no hash.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key's id (random, so that ids tell nothing about other keys).
    pub id: uuid::Uuid,
    /// Whose key it is: the user's stable id.
    pub subject: String,
    /// The name its owner gave it.
    pub name: String,
    /// The key's prefix: its public name, unique in the store.
    pub prefix: String,
    /// The keyed hash of the whole key ([`super::ApiKeyHasher`]).
    pub hash: KeyHash,
    /// The roles the key was created with (the caller intersects them with the user's current
    /// roles at each use).
    pub roles: Vec<String>,
    /// Created at (Unix seconds).
    pub created_at: i64,
    /// Expires at (Unix seconds); `None`: never.
    pub expires_at: Option<i64>,
    /// Last used (Unix seconds, rounded down to the minute); `None`: never.
    pub last_used_at: Option<i64>,
}

impl ApiKeyRecord {
    /// Whether the key has expired at `now` (Unix seconds): from `expires_at` on.
    pub fn is_expired_at(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

impl std::fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("roles", &self.roles)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("last_used_at", &self.last_used_at)
            .finish_non_exhaustive()
    }
}

/// What [`ApiKeyStore::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inserted {
    /// The key is stored.
    Stored,
    /// The subject holds the most keys it may already: nothing stored.
    LimitReached,
    /// Another key has this prefix (or this id): nothing stored; try again with a new key.
    Conflict,
}

/// The stored API keys. Prefixes are unique; every method but [`ApiKeyStore::find_by_prefix`]
/// and [`ApiKeyStore::touch`] is scoped to one subject, so that a caller cannot list or delete
/// another subject's keys by mistake.
///
/// With a shared backend (SQL), every instance sees the same keys: the verifier's cache
/// ([`super::ApiKeyAuth`]) is what bounds how late an instance notices a deletion.
pub trait ApiKeyStore: Send + Sync + std::fmt::Debug {
    /// Stores `record` unless its subject already holds `max_per_subject` keys or another key
    /// has its prefix or id. The count and the insert are one atomic step: however many
    /// inserts of one subject run at once, on however many instances, the subject never holds
    /// more than `max_per_subject` keys.
    fn insert<'a>(
        &'a self,
        record: &'a ApiKeyRecord,
        max_per_subject: u32,
    ) -> StoreFuture<'a, Inserted>;

    /// The key with this prefix, if any.
    fn find_by_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Option<ApiKeyRecord>>;

    /// The subject's keys, oldest first (by `created_at`, then `id`), expired ones included.
    fn list<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<ApiKeyRecord>>;

    /// How many keys the subject holds, expired ones included.
    fn count<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, u64>;

    /// Deletes the key `id` if it is `subject`'s: `false` when there is no such key or it is
    /// another subject's (which stays).
    fn delete<'a>(&'a self, id: uuid::Uuid, subject: &'a str) -> StoreFuture<'a, bool>;

    /// Deletes every key of the subject (the user is deleted); how many there were.
    fn delete_subject<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, u64>;

    /// Sets the key's `last_used_at` to `at` (Unix seconds, which the caller rounds down to
    /// the minute) when it is unset or earlier: it only moves forward, so instances writing
    /// the same minute at once write it once. `true` when it changed; an unknown id is not an
    /// error (`false`).
    fn touch(&self, id: uuid::Uuid, at: i64) -> StoreFuture<'_, bool>;
}
