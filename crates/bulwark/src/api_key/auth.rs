//! [`ApiKeyAuth`]: creates keys, and verifies presented ones with a short-lived cache in
//! front of the store.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;

use super::{
    ApiKey, ApiKeyHasher, ApiKeyIdentity, ApiKeyMapper, ApiKeyRecord, ApiKeyStore, Grant, Inserted,
    KeyHash, PresentedKey,
    cache::{Cache, Known, TtlMap},
    identity::FnMapper,
    store::DEFAULT_MAX_KEYS_PER_SUBJECT,
};
use crate::{error::HttpError, store::StoreError};

/// How long a verified key (or a refusal of it) is trusted without asking the store again, by
/// default: a key deleted on any instance stops working everywhere within this time.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(1);

/// How long a prefix the store does not know is refused without asking it again, by default.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(1);

/// How many keys the cache holds at most, by default (past it, keys are verified against the
/// store until entries expire).
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// How many unknown prefixes the cache holds at most, by default.
pub const DEFAULT_NEGATIVE_CAPACITY: usize = 10_000;

/// How many times [`ApiKeyAuth::create`] draws a new key when its prefix is taken.
const CREATE_ATTEMPTS: usize = 4;

/// The current time in Unix seconds.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The settings of an [`ApiKeyAuth`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use bulwark::api_key::ApiKeyConfig;
///
/// let config = ApiKeyConfig::default()
///     .cache_ttl(Duration::from_millis(500))
///     .max_keys_per_subject(5);
/// assert_eq!(config.cache_ttl_value(), Duration::from_millis(500));
/// ```
#[derive(Debug, Clone)]
pub struct ApiKeyConfig {
    cache_ttl: Duration,
    negative_ttl: Duration,
    cache_capacity: usize,
    negative_capacity: usize,
    max_keys_per_subject: u32,
}

impl Default for ApiKeyConfig {
    fn default() -> Self {
        Self {
            cache_ttl: DEFAULT_CACHE_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            negative_capacity: DEFAULT_NEGATIVE_CAPACITY,
            max_keys_per_subject: DEFAULT_MAX_KEYS_PER_SUBJECT,
        }
    }
}

impl ApiKeyConfig {
    /// How long a key read from the store (and the mapper's answer for it) is used without
    /// reading it again: the longest a key deleted elsewhere, or a user disabled, still works
    /// on this instance. `Duration::ZERO` turns the cache off (every request asks the store).
    #[must_use]
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How long a prefix the store does not know is refused without asking it again.
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The most keys cached at once.
    #[must_use]
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// The most unknown prefixes cached at once.
    #[must_use]
    pub fn negative_capacity(mut self, capacity: usize) -> Self {
        self.negative_capacity = capacity;
        self
    }

    /// The most keys a subject may hold ([`ApiKeyAuth::create`] refuses more).
    #[must_use]
    pub fn max_keys_per_subject(mut self, max: u32) -> Self {
        self.max_keys_per_subject = max;
        self
    }

    /// See [`ApiKeyConfig::cache_ttl`].
    pub fn cache_ttl_value(&self) -> Duration {
        self.cache_ttl
    }

    /// See [`ApiKeyConfig::negative_ttl`].
    pub fn negative_ttl_value(&self) -> Duration {
        self.negative_ttl
    }

    /// See [`ApiKeyConfig::max_keys_per_subject`].
    pub fn max_keys_per_subject_value(&self) -> u32 {
        self.max_keys_per_subject
    }
}

/// Why a presented key was not accepted. The public answer is one 401
/// `{"detail": "Invalid API key"}` for all but an outage; the variant is for logs and tests,
/// and carries nothing of the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// Not shaped like a key (refused before any lookup).
    #[error("malformed API key")]
    Malformed,
    /// No key has this prefix, or the key is not the one stored under it.
    #[error("unknown API key")]
    Unknown,
    /// The key has expired.
    #[error("expired API key")]
    Expired,
    /// The mapper refused the key (its user is disabled or gone).
    #[error("API key refused for its user")]
    Refused,
    /// The store (or the mapper's own lookup) failed: 503 when it is unavailable, else 500.
    #[error("API key lookup failed: {0}")]
    Store(#[from] StoreError),
}

impl ApiKeyError {
    /// Whether this is an outage (answered 503) rather than a refusal or a fault.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Store(err) if err.is_unavailable())
    }
}

/// 401 `{"detail": "Invalid API key"}` with `WWW-Authenticate: Bearer`; for a store failure, 503
/// (unavailable) or 500, the cause logged and never sent.
impl axum::response::IntoResponse for ApiKeyError {
    fn into_response(self) -> axum::response::Response {
        HttpError::from(self).into_response()
    }
}

impl From<ApiKeyError> for HttpError {
    fn from(err: ApiKeyError) -> Self {
        match err {
            ApiKeyError::Store(err) if err.is_unavailable() => {
                tracing::warn!(error = %err, "API key not verified: store unavailable");
                HttpError::unavailable("Service temporarily unavailable")
            }
            ApiKeyError::Store(err) => {
                tracing::error!(error = %err, "API key not verified: store failed");
                HttpError::internal()
            }
            refused => {
                tracing::debug!(reason = %refused, "rejected API key");
                HttpError::unauthorized("Invalid API key")
            }
        }
    }
}

/// Why [`ApiKeyAuth::create`] made no key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateKeyError {
    /// The subject holds the most keys it may (the contract answers 409).
    #[error("the subject already holds {max} API keys")]
    LimitReached {
        /// The limit.
        max: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key just created: the key itself, to show its owner once, and its record as stored.
#[derive(Debug)]
#[non_exhaustive]
pub struct CreatedApiKey {
    /// The key. Show it once; never store or log it.
    pub key: ApiKey,
    /// What was stored.
    pub record: ApiKeyRecord,
}

/// The outcome of one store lookup, shared with the requests that waited for it.
type Flown = Result<Option<Arc<Known>>, Failure>;

/// A store error, shareable between the requests of one lookup.
#[derive(Debug, Clone)]
struct Failure {
    unavailable: bool,
    message: String,
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Self {
            unavailable: err.is_unavailable(),
            message: err.message,
        }
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        if failure.unavailable {
            StoreError::unavailable(failure.message)
        } else {
            StoreError::new(failure.message)
        }
    }
}

/// What the cache can tell about a presented key.
enum Cached {
    /// The answer.
    Done(Result<Arc<ApiKeyIdentity>, ApiKeyError>),
    /// The key is genuine and live, but the mapper has not been asked about it.
    NeedsGrant(Arc<Known>),
    /// Nothing cached: ask the store.
    Miss,
}

/// Creates API keys and verifies presented ones.
///
/// **Verification** of a presented key: its shape ([`PresentedKey::parse`]: cheap, no
/// allocation), its keyed hash ([`ApiKeyHasher`]), then the key stored under its prefix,
/// compared in constant time, its expiry, and the [`ApiKeyMapper`]'s grant. The result is an
/// [`ApiKeyIdentity`].
///
/// **The cache.** What the store said about a prefix (the record, or "unknown") and the
/// mapper's grant are kept in memory for at most [`ApiKeyConfig::cache_ttl`] (1 s), counted
/// from the moment the store was asked: a hot key costs no store round trip and no user lookup,
/// and a key deleted on any instance (or a user disabled) stops working everywhere within that
/// time. On the instance that deletes ([`ApiKeyAuth::delete`]), at once. The cache holds
/// hashes and records, never a key: the presented key is only read during the call. Requests
/// that miss the cache for one prefix at the same time share one store lookup. Memory is
/// bounded: at most [`ApiKeyConfig::cache_capacity`] keys and
/// [`ApiKeyConfig::negative_capacity`] unknown prefixes, each entry gone after its lifetime.
///
/// **`last_used_at`** is written by the verifier, in the background, at most once a minute per
/// key on each instance, rounded down to the minute; the store only moves it forward, so
/// instances racing in one minute write it once.
///
/// Cheap to clone (one `Arc`).
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use bulwark::{
///     api_key::{ApiKeyAuth, ApiKeyConfig, ApiKeyError, ApiKeyHasher, Grant, MemoryApiKeyStore},
///     secret::MasterSecret,
/// };
///
/// let secret = MasterSecret::generate();
/// let auth = ApiKeyAuth::new(
///     Arc::new(MemoryApiKeyStore::new()),
///     ApiKeyHasher::from_master(&secret),
///     ApiKeyConfig::default(),
/// )
/// // Your user lookup: refuse disabled users, keep only the roles the user still has.
/// .with_mapper_fn(|key| {
///     let roles = key.roles.iter().filter(|r| *r != "admin").cloned().collect();
///     async move { Ok(Some(Grant::new(roles))) }
/// });
///
/// let created = auth.create("42", "ci", &["reader".into(), "admin".into()], None).await?;
/// let shown_once = created.key.expose(); // "bwk_..."
///
/// let identity = auth.verify(shown_once).await?;
/// assert_eq!(identity.subject(), "42");
/// assert_eq!(identity.roles(), ["reader"]);
/// // Within the cache lifetime, without waiting:
/// assert!(auth.verify_now(shown_once).is_some_and(|r| r.is_ok()));
///
/// assert!(auth.delete(created.record.id, "42").await?);
/// assert!(matches!(auth.verify(shown_once).await, Err(ApiKeyError::Unknown)));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ApiKeyAuth {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ApiKeyStore>,
    hasher: ApiKeyHasher,
    config: ApiKeyConfig,
    mapper: Option<Arc<dyn ApiKeyMapper>>,
    cache: RwLock<Cache>,
    /// The store lookups in flight, by prefix: later requests for the prefix wait for it.
    flights: Mutex<HashMap<Box<str>, watch::Receiver<Option<Flown>>>>,
    /// Raised by every local deletion: a lookup that began before one caches nothing.
    forgets: AtomicU64,
}

impl std::fmt::Debug for ApiKeyAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyAuth")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .field("mapper", &self.inner.mapper.is_some())
            .finish_non_exhaustive()
    }
}

impl ApiKeyAuth {
    /// Verifies keys of `store` hashed by `hasher`, configured by `config`, with no mapper (a
    /// key gets its own roles).
    pub fn new(store: Arc<dyn ApiKeyStore>, hasher: ApiKeyHasher, config: ApiKeyConfig) -> Self {
        let cache = Cache {
            known: TtlMap::new(config.cache_capacity),
            unknown: TtlMap::new(config.negative_capacity),
        };
        Self {
            inner: Arc::new(Inner {
                store,
                hasher,
                config,
                mapper: None,
                cache: RwLock::new(cache),
                flights: Mutex::default(),
                forgets: AtomicU64::new(0),
            }),
        }
    }

    /// Asks `mapper` for the grant of every genuine, unexpired key (see [`ApiKeyMapper`]).
    ///
    /// # Panics
    /// If called after the value was cloned (configure once, at start-up).
    #[must_use]
    pub fn with_mapper(mut self, mapper: Arc<dyn ApiKeyMapper>) -> Self {
        Arc::get_mut(&mut self.inner)
            .map(|inner| inner.mapper = Some(mapper))
            .unwrap_or_else(|| unreachable!("ApiKeyAuth is configured before it is cloned"));
        self
    }

    /// [`ApiKeyAuth::with_mapper`] with a closure that takes the key's record and returns the
    /// future of its grant (`Ok(None)` refuses the key).
    ///
    /// # Panics
    /// If called after the value was cloned (configure once, at start-up).
    #[must_use]
    pub fn with_mapper_fn<F, Fut>(self, mapper: F) -> Self
    where
        F: Fn(&ApiKeyRecord) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Grant>, StoreError>> + Send + 'static,
    {
        self.with_mapper(Arc::new(FnMapper(mapper)))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ApiKeyStore> {
        &self.inner.store
    }

    /// The hasher.
    pub fn hasher(&self) -> &ApiKeyHasher {
        &self.inner.hasher
    }

    /// The configuration.
    pub fn config(&self) -> &ApiKeyConfig {
        &self.inner.config
    }

    /// Creates a key for `subject` named `name` with `roles`, expiring at `expires_at` (Unix
    /// seconds) if given, and stores its record. The caller checks the name and that `roles`
    /// are the subject's own; the key itself is in the answer only.
    ///
    /// # Errors
    /// [`CreateKeyError::LimitReached`] when the subject holds
    /// [`ApiKeyConfig::max_keys_per_subject`] keys already (checked atomically by the store);
    /// [`CreateKeyError::Store`] when the store fails.
    pub async fn create(
        &self,
        subject: &str,
        name: &str,
        roles: &[String],
        expires_at: Option<i64>,
    ) -> Result<CreatedApiKey, CreateKeyError> {
        let max = self.inner.config.max_keys_per_subject;
        for _ in 0..CREATE_ATTEMPTS {
            let key = ApiKey::generate();
            let record = ApiKeyRecord {
                id: uuid::Uuid::new_v4(),
                subject: subject.to_owned(),
                name: name.to_owned(),
                prefix: key.prefix().to_owned(),
                hash: self.inner.hasher.hash(key.expose()),
                roles: roles.to_vec(),
                created_at: unix_now(),
                expires_at,
                last_used_at: None,
            };
            match self.inner.store.insert(&record, max).await? {
                Inserted::Stored => {
                    // A presentation of this prefix before it existed is forgotten.
                    self.write_cache().unknown.remove(&record.prefix);
                    return Ok(CreatedApiKey { key, record });
                }
                Inserted::LimitReached => return Err(CreateKeyError::LimitReached { max }),
                Inserted::Conflict => {}
            }
        }
        Err(StoreError::new("no free API key prefix found").into())
    }

    /// Deletes the key `id` if it is `subject`'s, and forgets it here at once (other instances
    /// within [`ApiKeyConfig::cache_ttl`]). `false` when there is no such key of `subject`.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn delete(&self, id: uuid::Uuid, subject: &str) -> Result<bool, StoreError> {
        let deleted = self.inner.store.delete(id, subject).await?;
        self.forget_where(|known| known.record.id == id);
        Ok(deleted)
    }

    /// Deletes every key of `subject` (the user is deleted) and forgets them here at once;
    /// how many there were.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn delete_subject(&self, subject: &str) -> Result<u64, StoreError> {
        let deleted = self.inner.store.delete_subject(subject).await?;
        self.forget_subject(subject);
        Ok(deleted)
    }

    /// Forgets what this instance cached about `subject`'s keys, so that the next request with
    /// one asks the store and the mapper again: call it when the user is disabled or their roles
    /// change, for the change to apply here at once (other instances see it within
    /// [`ApiKeyConfig::cache_ttl`]).
    pub fn forget_subject(&self, subject: &str) {
        self.forget_where(|known| known.record.subject == subject);
    }

    /// Drops the cached keys `drop` picks, and keeps lookups already in flight from caching
    /// what they read before.
    fn forget_where(&self, drop: impl FnMut(&Arc<Known>) -> bool) {
        let mut cache = self.write_cache();
        self.inner.forgets.fetch_add(1, Ordering::AcqRel);
        cache.known.remove_where(drop);
    }

    /// Verifies `presented` from the cache alone, without waiting: `Some` answer when the
    /// cache (or the key's shape) decides, `None` when the store or the mapper must be asked:
    /// then call [`ApiKeyAuth::verify`]. For a pipeline that runs its steps in place when it
    /// can.
    pub fn verify_now(&self, presented: &str) -> Option<Result<Arc<ApiKeyIdentity>, ApiKeyError>> {
        let Ok(key) = PresentedKey::parse(presented) else {
            return Some(Err(ApiKeyError::Malformed));
        };
        let hash = self.inner.hasher.hash(key.expose());
        match self.cached(key.prefix(), &hash) {
            Cached::Done(answer) => Some(answer),
            Cached::NeedsGrant(_) | Cached::Miss => None,
        }
    }

    /// Verifies `presented`: from the cache when it can, else from the store (one lookup for
    /// all the requests missing one prefix at once) and the mapper.
    ///
    /// # Errors
    /// An [`ApiKeyError`] naming what is wrong; [`ApiKeyError::Store`] when the store or the
    /// mapper failed.
    pub async fn verify(&self, presented: &str) -> Result<Arc<ApiKeyIdentity>, ApiKeyError> {
        let key = PresentedKey::parse(presented).map_err(|_| ApiKeyError::Malformed)?;
        let hash = self.inner.hasher.hash(key.expose());
        let prefix = key.prefix();
        // A few rounds: a lookup whose leader was cancelled, or an entry evicted in between,
        // sends the request round again; nothing loops for ever.
        for _ in 0..4 {
            let known = match self.cached(prefix, &hash) {
                Cached::Done(answer) => return answer,
                Cached::NeedsGrant(known) => known,
                Cached::Miss => match self.fly(prefix, &hash).await {
                    None => continue,
                    Some(Err(failure)) => return Err(StoreError::from(failure).into()),
                    Some(Ok(None)) => return Err(ApiKeyError::Unknown),
                    Some(Ok(Some(known))) => match self.judge(&known, &hash) {
                        Cached::Done(answer) => return answer,
                        Cached::NeedsGrant(known) => known,
                        Cached::Miss => continue,
                    },
                },
            };
            self.fill_grant(&known).await?;
            if let Cached::Done(answer) = self.judge(&known, &hash) {
                return answer;
            }
        }
        Err(StoreError::unavailable("API key lookup did not settle").into())
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What the cache says about the key with `prefix` and `hash`.
    fn cached(&self, prefix: &str, hash: &KeyHash) -> Cached {
        let now = Instant::now();
        let known = {
            let cache = self.read_cache();
            if let Some(known) = cache.known.get(prefix, now) {
                Arc::clone(known)
            } else if cache.unknown.get(prefix, now).is_some() {
                return Cached::Done(Err(ApiKeyError::Unknown));
            } else {
                return Cached::Miss;
            }
        };
        self.judge(&known, hash)
    }

    /// What `known` (read from the store) says about the key with `hash`.
    fn judge(&self, known: &Arc<Known>, hash: &KeyHash) -> Cached {
        // Constant time (`KeyHash`'s `==`).
        if known.record.hash != *hash {
            return Cached::Done(Err(ApiKeyError::Unknown));
        }
        let now = unix_now();
        if known.record.is_expired_at(now) {
            return Cached::Done(Err(ApiKeyError::Expired));
        }
        match known.grant.get() {
            Some(Some(identity)) => {
                self.touch_if_due(known, now);
                Cached::Done(Ok(Arc::clone(identity)))
            }
            Some(None) => Cached::Done(Err(ApiKeyError::Refused)),
            None => Cached::NeedsGrant(Arc::clone(known)),
        }
    }

    /// Records the key's use (rounded down to the minute) in the background, unless this
    /// instance did (or read it) this minute already.
    fn touch_if_due(&self, known: &Known, now: i64) {
        let minute = now - now.rem_euclid(60);
        if known.touched.fetch_max(minute, Ordering::Relaxed) >= minute {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = Arc::clone(&self.inner.store);
        let id = known.record.id;
        runtime.spawn(async move {
            if let Err(err) = store.touch(id, minute).await {
                tracing::warn!(key_id = %id, error = %err, "API key use not recorded");
            }
        });
    }

    /// Asks the mapper for `known`'s grant (or takes the key's own roles without one), unless
    /// some request did already.
    async fn fill_grant(&self, known: &Known) -> Result<(), StoreError> {
        if known.grant.get().is_some() {
            return Ok(());
        }
        let grant = match &self.inner.mapper {
            Some(mapper) => mapper.grant(&known.record).await?,
            None => Some(Grant::new(known.record.roles.clone())),
        };
        let identity = grant.map(|grant| Arc::new(ApiKeyIdentity::new(&known.record, grant)));
        // A request racing this one may have set it: both answers are as fresh as the entry.
        let _ = known.grant.set(identity);
        Ok(())
    }

    /// The store lookup of `prefix`, shared: the first request to miss the cache makes it
    /// (`hash` is its key's), the others wait for its outcome. `None` when the request that made
    /// it went away before it finished: look again.
    async fn fly(&self, prefix: &str, hash: &KeyHash) -> Option<Flown> {
        enum Role {
            Leader(watch::Sender<Option<Flown>>),
            Waiter(watch::Receiver<Option<Flown>>),
        }
        let role = {
            let mut flights = self
                .inner
                .flights
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match flights.get(prefix) {
                Some(waiting) => Role::Waiter(waiting.clone()),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    flights.insert(prefix.into(), receiver);
                    Role::Leader(sender)
                }
            }
        };
        match role {
            Role::Leader(sender) => {
                let landing = Landing {
                    inner: &self.inner,
                    prefix,
                };
                let flown = self.lookup(prefix, hash).await;
                drop(landing);
                sender.send_replace(Some(flown.clone()));
                Some(flown)
            }
            Role::Waiter(mut receiver) => loop {
                if let Some(flown) = receiver.borrow_and_update().clone() {
                    return Some(flown);
                }
                if receiver.changed().await.is_err() {
                    return receiver.borrow().clone();
                }
            },
        }
    }

    /// Reads the key with `prefix` from the store and caches what it said; asks the mapper too
    /// when the key is the one presented (`hash`) and live, so that the requests waiting for
    /// this lookup need not.
    async fn lookup(&self, prefix: &str, hash: &KeyHash) -> Flown {
        let asked = Instant::now();
        let forgets = self.inner.forgets.load(Ordering::Acquire);
        let found = self.inner.store.find_by_prefix(prefix).await?;
        let Some(record) = found.filter(|record| record.prefix == prefix) else {
            let until = asked + self.inner.config.negative_ttl;
            self.write_cache()
                .unknown
                .insert(prefix, (), until, Instant::now());
            return Ok(None);
        };
        let known = Arc::new(Known::new(record));
        if self.inner.mapper.is_none()
            || (known.record.hash == *hash && !known.record.is_expired_at(unix_now()))
        {
            self.fill_grant(&known).await?;
        }
        // Counted from before the store was asked: nothing it said is used past this.
        let until = asked + self.inner.config.cache_ttl;
        let mut cache = self.write_cache();
        // (Under the lock that forgetting takes: a deletion either ran before the read above
        // and is seen by it, or counted before this check.)
        if self.inner.forgets.load(Ordering::Acquire) == forgets {
            cache.unknown.remove(prefix);
            cache
                .known
                .insert(prefix, Arc::clone(&known), until, Instant::now());
        }
        Ok(Some(known))
    }
}

/// Ends a store lookup's flight, whether the lookup finished or its request went away: later
/// requests then start their own.
struct Landing<'a> {
    inner: &'a Inner,
    prefix: &'a str,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(self.prefix);
    }
}

/// What the tests inspect.
#[cfg(test)]
impl ApiKeyAuth {
    pub(super) fn cached_entries(&self) -> (usize, usize) {
        let cache = self.read_cache();
        (cache.known.len(), cache.unknown.len())
    }

    pub(super) fn flights_in_progress(&self) -> usize {
        self.inner
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
