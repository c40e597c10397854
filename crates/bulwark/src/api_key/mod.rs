//! API keys for machine clients: a script or a CI job authenticates as its user with a
//! long-lived key instead of a stored password and a login every 15 minutes.
//!
//! **The key.** `bwk_` + an 8-character prefix + `_` + 32 random bytes in base62 (43
//! characters): 56 characters of `[A-Za-z0-9_]`, safe in a header, a shell variable or a URL,
//! and easy for a secret scanner to spot. The prefix is random and unique, stored in clear and
//! shown in listings: it names the key and finds its record with one indexed lookup. The
//! secret is never stored: only the keyed hash of the whole key is ([`ApiKeyHasher`]).
//!
//! **Threat model.** What this module stops:
//!
//! - *a stolen database* (a backup, an SQL injection elsewhere) gives no working key and no
//!   offline test of guesses: the stored hash is an HMAC-SHA256 under a key derived from the
//!   master secret, which is not in the database;
//! - *guessing*: a key holds 256 random bits, so no rate of guessing reaches one; a guess costs
//!   its sender a request and the server about a microsecond of hashing, and the comparison
//!   with the stored hash is in constant time, so timing tells nothing of it;
//! - *a key that should be dead*: a deleted key, an expired key, or the key of a user disabled or
//!   deleted (see [`ApiKeyMapper`]) stops working on every instance within the cache lifetime
//!   (1 s by default), and on the instance that deleted it at once;
//! - *floods of garbage keys*: anything not shaped exactly like a key is refused after a length
//!   check and one pass over at most 56 bytes, with no allocation and no store lookup; a
//!   well-shaped key whose prefix the store does not know is remembered as unknown for a
//!   second; requests missing the cache for one prefix at the same time share one lookup; and
//!   the cache is bounded (10 000 keys and 10 000 unknown prefixes by default), so memory does
//!   not grow with traffic;
//! - *leaks through logs*: no type of this module prints a key or a hash in `Debug` or
//!   `Display`, and nothing here logs one.
//!
//! **Why HMAC and not Argon2id, as for passwords.** A slow hash protects low-entropy secrets
//! that a dictionary can reach. A key's secret is 256 random bits: no dictionary exists, and
//! making each guess slower changes nothing, while a slow hash on every request would cost
//! tens of milliseconds of CPU per call (and make each request a denial-of-service lever). The
//! HMAC's key is what a stolen table lacks.
//!
//! **Why a prefix.** A keyed hash cannot be searched by the key without computing it for every
//! stored key, and a plain index on the hash would make the lookup the comparison (not in
//! constant time). The prefix finds the one candidate record; the comparison of its hash is
//! then constant-time.
//!
//! **Not covered here.** A key is a bearer credential: whoever holds it acts as its user (with
//! its roles) until it is deleted or expires. Serve over TLS; keys are for machines, so the
//! server should refuse what a key may not do (create keys, change the password, e-mail or
//! second factor). Per-key rate limits, the 401/403 answers and the routes to create, list and
//! delete keys are the application's; the roles a key gets at each use are the mapper's
//! (typically the key's roles intersected with the user's current roles). Expired keys are
//! refused but kept (and listed) until deleted.
//!
//! # Pieces
//!
//! | item | does |
//! |---|---|
//! | [`ApiKey`], [`PresentedKey`] | a new key; a presented key checked for shape |
//! | [`ApiKeyHasher`], [`KeyHash`] | HMAC-SHA256 under a key derived from the master secret; constant-time comparison |
//! | [`ApiKeyStore`] | where records live: [`MemoryApiKeyStore`] here, SQLite and PostgreSQL in [`crate::store::sql`] (table `api_keys`) |
//! | [`ApiKeyAuth`] | creates keys (at most 20 per user by default, enforced atomically by the store), verifies presented ones through the cache |
//! | [`ApiKeyMapper`] | the application's hook: refuse a disabled user, intersect roles |
//! | [`ApiKeyIdentity`] | who a verified key speaks for, with the `Claims` a JWT would give |
//! | [`presented_key`], [`ApiKeyAuth::authenticate_request`] | keys on requests: `X-API-Key`, or `Authorization: Bearer bwk_...` |
//!
//! # Examples
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use bulwark::{
//!     api_key::{ApiKeyAuth, ApiKeyConfig, ApiKeyHasher, ApiKeyIdentity, MemoryApiKeyStore},
//!     secret::MasterSecret,
//! };
//!
//! let secret = MasterSecret::generate();
//! let keys = ApiKeyAuth::new(
//!     Arc::new(MemoryApiKeyStore::new()), // or `store::sql::PgStores`, shared by every instance
//!     ApiKeyHasher::from_master(&secret),
//!     ApiKeyConfig::default(),
//! );
//! let created = keys.create("42", "nightly backup", &["reader".into()], None).await?;
//!
//! let mut request = http::Request::builder()
//!     .header("x-api-key", created.key.expose())
//!     .body(())?;
//! keys.authenticate_request(&mut request).await;
//! let identity = ApiKeyIdentity::of(request.extensions()).expect("authenticated");
//! assert_eq!(identity.subject(), "42");
//! assert!(request.extensions().get::<Arc<bulwark::jwt::Claims>>().is_some());
//! # Ok(())
//! # }
//! ```

mod auth;
mod cache;
mod hash;
mod identity;
mod key;
mod request;
pub mod store;

pub use auth::{
    ApiKeyAuth, ApiKeyConfig, ApiKeyError, CreateKeyError, CreatedApiKey, DEFAULT_CACHE_CAPACITY,
    DEFAULT_CACHE_TTL, DEFAULT_NEGATIVE_CAPACITY, DEFAULT_NEGATIVE_TTL,
};
pub use hash::{ApiKeyHasher, HASHER_PURPOSE, KeyHash};
pub use identity::{
    API_KEY_ISSUER, API_KEY_JTI_PREFIX, ApiKeyIdentity, ApiKeyMapper, Grant, GrantFuture,
};
pub use key::{
    ApiKey, KEY_LEN, KEY_START, MalformedKey, PREFIX_LEN, PresentedKey, SECRET_BYTES, SECRET_LEN,
};
pub use request::{X_API_KEY, presented_key, recorded_refusal};
pub use store::{
    ApiKeyRecord, ApiKeyStore, DEFAULT_MAX_KEYS_PER_SUBJECT, Inserted, memory::MemoryApiKeyStore,
};

#[cfg(test)]
mod tests;
