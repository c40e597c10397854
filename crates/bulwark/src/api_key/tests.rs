//! The verifier against a memory store that counts its lookups: what the cache saves, what it
//! must never serve, and what reaches a request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::response::IntoResponse as _;

use super::*;
use crate::store::StoreError;

/// A memory store that counts lookups and touches, and can be made slow or down.
#[derive(Debug, Default)]
struct Counting {
    inner: MemoryApiKeyStore,
    lookups: AtomicUsize,
    touches: AtomicUsize,
    delay_ms: std::sync::atomic::AtomicU64,
    down: AtomicBool,
}

impl Counting {
    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl ApiKeyStore for Counting {
    fn insert<'a>(
        &'a self,
        record: &'a ApiKeyRecord,
        max: u32,
    ) -> crate::store::StoreFuture<'a, Inserted> {
        self.inner.insert(record, max)
    }

    fn find_by_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> crate::store::StoreFuture<'a, Option<ApiKeyRecord>> {
        Box::pin(async move {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let delay = self.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::unavailable("down"));
            }
            self.inner.find_by_prefix(prefix).await
        })
    }

    fn list<'a>(&'a self, subject: &'a str) -> crate::store::StoreFuture<'a, Vec<ApiKeyRecord>> {
        self.inner.list(subject)
    }

    fn count<'a>(&'a self, subject: &'a str) -> crate::store::StoreFuture<'a, u64> {
        self.inner.count(subject)
    }

    fn delete<'a>(
        &'a self,
        id: uuid::Uuid,
        subject: &'a str,
    ) -> crate::store::StoreFuture<'a, bool> {
        self.inner.delete(id, subject)
    }

    fn delete_subject<'a>(&'a self, subject: &'a str) -> crate::store::StoreFuture<'a, u64> {
        self.inner.delete_subject(subject)
    }

    fn touch(&self, id: uuid::Uuid, at: i64) -> crate::store::StoreFuture<'_, bool> {
        self.touches.fetch_add(1, Ordering::SeqCst);
        self.inner.touch(id, at)
    }
}

fn setup(config: ApiKeyConfig) -> (ApiKeyAuth, Arc<Counting>) {
    let store = Arc::new(Counting::default());
    let hasher = ApiKeyHasher::new(&[9; 32]);
    let auth = ApiKeyAuth::new(Arc::clone(&store) as Arc<dyn ApiKeyStore>, hasher, config);
    (auth, store)
}

/// A second instance on the same store (same hasher key).
fn instance(store: &Arc<Counting>, config: ApiKeyConfig) -> ApiKeyAuth {
    ApiKeyAuth::new(
        Arc::clone(store) as Arc<dyn ApiKeyStore>,
        ApiKeyHasher::new(&[9; 32]),
        config,
    )
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn roles(names: &[&str]) -> Vec<String> {
    names.iter().map(|r| (*r).to_owned()).collect()
}

#[tokio::test]
async fn a_created_key_verifies_as_its_user_with_its_roles() {
    let (auth, store) = setup(ApiKeyConfig::default());
    let created = auth
        .create("42", "ci", &roles(&["reader", "writer"]), None)
        .await
        .unwrap();
    let key = created.key.expose();
    assert_eq!(created.record.prefix, created.key.prefix());
    assert_eq!(created.record.subject, "42");
    assert!(auth.hasher().verify(key, &created.record.hash));
    assert!(
        auth.verify_now(key).is_none(),
        "cold: the store must be asked"
    );
    let identity = auth.verify(key).await.unwrap();
    assert_eq!(identity.subject(), "42");
    assert_eq!(identity.key_id(), created.record.id);
    assert_eq!(identity.key_name(), "ci");
    assert_eq!(identity.prefix(), created.key.prefix());
    assert_eq!(identity.roles(), ["reader", "writer"]);
    let claims = identity.claims();
    assert_eq!(claims.sub, "42");
    assert_eq!(claims.jti, format!("apikey:{}", created.record.id));
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        (API_KEY_ISSUER, API_KEY_ISSUER)
    );
    assert_eq!(claims.exp, i64::MAX);
    assert_eq!(store.lookups(), 1);
    // Hot: answered from the cache, without waiting, as the same shared identity.
    for _ in 0..1000 {
        let again = auth.verify_now(key).unwrap().unwrap();
        assert!(Arc::ptr_eq(&again, &identity));
    }
    auth.verify(key).await.unwrap();
    assert_eq!(store.lookups(), 1, "a hot key costs no store round trip");
}

#[tokio::test]
async fn wrong_secrets_unknown_prefixes_and_malformed_keys_are_refused() {
    let (auth, store) = setup(ApiKeyConfig::default());
    let created = auth.create("42", "ci", &[], None).await.unwrap();
    let key = created.key.expose();
    // The right prefix with another secret.
    let mut forged = key[..13].to_owned();
    forged.push_str(&ApiKey::generate().expose()[13..]);
    assert!(matches!(
        auth.verify(&forged).await,
        Err(ApiKeyError::Unknown)
    ));
    assert_eq!(store.lookups(), 1);
    // The record is cached now: a forged secret is refused without the store, and the genuine
    // key still needs its grant (made without a mapper, at once).
    assert!(matches!(
        auth.verify_now(&forged),
        Some(Err(ApiKeyError::Unknown))
    ));
    auth.verify(key).await.unwrap();
    assert_eq!(store.lookups(), 1);

    // Malformed keys never reach the store.
    for garbage in ["", "bwk_", "eyJhbGciOi.x.y", &key[..55], &format!("{key}x")] {
        assert!(matches!(
            auth.verify(garbage).await,
            Err(ApiKeyError::Malformed)
        ));
        assert!(matches!(
            auth.verify_now(garbage),
            Some(Err(ApiKeyError::Malformed))
        ));
    }
    assert!(matches!(
        auth.verify(&"bwk_".repeat(1 << 20)).await,
        Err(ApiKeyError::Malformed)
    ));
    assert_eq!(store.lookups(), 1);
}

#[tokio::test]
async fn unknown_prefixes_are_cached_for_a_short_time_in_bounded_number() {
    let config = ApiKeyConfig::default()
        .negative_ttl(Duration::from_millis(300))
        .negative_capacity(50);
    let (auth, store) = setup(config);
    let garbage = ApiKey::generate();
    for _ in 0..100 {
        assert!(matches!(
            auth.verify(garbage.expose()).await,
            Err(ApiKeyError::Unknown)
        ));
    }
    assert_eq!(
        store.lookups(),
        1,
        "one lookup for a repeated unknown prefix"
    );
    assert!(matches!(
        auth.verify_now(garbage.expose()),
        Some(Err(ApiKeyError::Unknown))
    ));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(auth.verify_now(garbage.expose()).is_none(), "expired");
    auth.verify(garbage.expose()).await.unwrap_err();
    assert_eq!(store.lookups(), 2);
    // A flood of distinct unknown prefixes: each costs a lookup, the cache stays bounded.
    for _ in 0..500 {
        auth.verify(ApiKey::generate().expose()).await.unwrap_err();
    }
    let (known, unknown) = auth.cached_entries();
    assert_eq!(known, 0);
    assert!(unknown <= 50, "{unknown}");
}

#[tokio::test]
async fn the_positive_cache_is_bounded_too() {
    let (auth, store) = setup(ApiKeyConfig::default().cache_capacity(5));
    let mut keys = Vec::new();
    for n in 0..8 {
        keys.push(auth.create(&n.to_string(), "k", &[], None).await.unwrap());
    }
    for created in &keys {
        auth.verify(created.key.expose()).await.unwrap();
    }
    assert_eq!(auth.cached_entries().0, 5);
    // Past the capacity, keys still verify (from the store).
    for created in &keys {
        auth.verify(created.key.expose()).await.unwrap();
    }
    assert_eq!(store.lookups(), 8 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_missing_one_prefix_at_once_share_one_lookup() {
    let (auth, store) = setup(ApiKeyConfig::default());
    let created = auth.create("42", "ci", &[], None).await.unwrap();
    let key: Arc<str> = created.key.expose().into();
    let unknown: Arc<str> = ApiKey::generate().expose().into();
    store.delay_ms.store(100, Ordering::SeqCst);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..64 {
        let (auth, key, unknown) = (auth.clone(), Arc::clone(&key), Arc::clone(&unknown));
        tasks.spawn(async move {
            if n % 2 == 0 {
                auth.verify(&key).await.map(|_| ())
            } else {
                auth.verify(&unknown).await.map(|_| ())
            }
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(()) => ok += 1,
            Err(ApiKeyError::Unknown) => refused += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!((ok, refused), (32, 32));
    assert_eq!(store.lookups(), 2, "one lookup per prefix");
    assert_eq!(auth.flights_in_progress(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_whose_request_went_away_does_not_strand_the_others() {
    let (auth, store) = setup(ApiKeyConfig::default());
    let created = auth.create("42", "ci", &[], None).await.unwrap();
    let key: Arc<str> = created.key.expose().into();
    store.delay_ms.store(300, Ordering::SeqCst);
    let leader = {
        let (auth, key) = (auth.clone(), Arc::clone(&key));
        tokio::spawn(async move { auth.verify(&key).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiter = {
        let (auth, key) = (auth.clone(), Arc::clone(&key));
        tokio::spawn(async move { auth.verify(&key).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    store.delay_ms.store(0, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter goes on")
        .unwrap()
        .unwrap();
    assert_eq!(auth.flights_in_progress(), 0);
}

/// The contract's rule: a key deleted on one instance stops working on every other within
/// 1 s; on the deleting instance, at once.
#[tokio::test]
async fn a_deleted_key_stops_working_everywhere_within_the_cache_lifetime() {
    let (a, store) = setup(ApiKeyConfig::default());
    let b = instance(&store, ApiKeyConfig::default());
    let created = a.create("42", "ci", &[], None).await.unwrap();
    let key = created.key.expose();
    a.verify(key).await.unwrap();
    b.verify(key).await.unwrap();
    assert!(a.delete(created.record.id, "42").await.unwrap());
    let deleted = Instant::now();
    assert!(
        matches!(a.verify_now(key), None | Some(Err(_))),
        "the deleting instance forgot it"
    );
    assert!(matches!(a.verify(key).await, Err(ApiKeyError::Unknown)));
    // B still has it cached (that is the cache working) ... but never past 1 s.
    assert!(b.verify_now(key).is_some_and(|r| r.is_ok()));
    let refused_after = loop {
        match b.verify(key).await {
            Ok(_) => {
                assert!(
                    deleted.elapsed() < DEFAULT_CACHE_TTL,
                    "served from the cache past the lifetime"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(ApiKeyError::Unknown) => break deleted.elapsed(),
            Err(other) => panic!("{other}"),
        }
    };
    assert!(refused_after <= DEFAULT_CACHE_TTL + Duration::from_millis(50));
    assert!(
        refused_after >= Duration::from_millis(500),
        "cached meanwhile: {refused_after:?}"
    );
    // Another user cannot delete it, and deleting twice finds nothing.
    assert!(!a.delete(created.record.id, "42").await.unwrap());
}

#[tokio::test]
async fn deleting_someone_elses_key_does_nothing() {
    let (auth, _) = setup(ApiKeyConfig::default());
    let created = auth.create("42", "ci", &[], None).await.unwrap();
    auth.verify(created.key.expose()).await.unwrap();
    assert!(!auth.delete(created.record.id, "43").await.unwrap());
    auth.verify(created.key.expose()).await.unwrap();
    assert_eq!(auth.delete_subject("42").await.unwrap(), 1);
    assert!(matches!(
        auth.verify(created.key.expose()).await,
        Err(ApiKeyError::Unknown)
    ));
}

#[tokio::test]
async fn expired_keys_are_refused_from_the_store_and_from_the_cache() {
    let (auth, store) = setup(ApiKeyConfig::default().cache_ttl(Duration::from_secs(60)));
    let past = auth
        .create("42", "old", &[], Some(now() - 1))
        .await
        .unwrap();
    assert!(matches!(
        auth.verify(past.key.expose()).await,
        Err(ApiKeyError::Expired)
    ));
    let at_now = auth.create("42", "edge", &[], Some(now())).await.unwrap();
    assert!(matches!(
        auth.verify(at_now.key.expose()).await,
        Err(ApiKeyError::Expired)
    ));
    let soon = auth
        .create("42", "soon", &[], Some(now() + 1))
        .await
        .unwrap();
    auth.verify(soon.key.expose()).await.unwrap();
    let lookups = store.lookups();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        auth.verify_now(soon.key.expose()),
        Some(Err(ApiKeyError::Expired))
    ));
    assert_eq!(store.lookups(), lookups, "refused from the cache");
    let later = auth
        .create("42", "later", &[], Some(now() + 3600))
        .await
        .unwrap();
    assert_eq!(
        auth.verify(later.key.expose()).await.unwrap().expires_at(),
        later.record.expires_at
    );
}

#[tokio::test]
async fn the_mapper_grants_refuses_and_is_cached_with_the_key() {
    let calls = Arc::new(AtomicUsize::new(0));
    let disabled = Arc::new(AtomicBool::new(false));
    let failing = Arc::new(AtomicBool::new(false));
    let store = Arc::new(Counting::default());
    let auth = {
        let (calls, disabled, failing) = (
            Arc::clone(&calls),
            Arc::clone(&disabled),
            Arc::clone(&failing),
        );
        instance(
            &store,
            ApiKeyConfig::default().cache_ttl(Duration::from_millis(300)),
        )
        .with_mapper_fn(move |key: &ApiKeyRecord| {
            calls.fetch_add(1, Ordering::SeqCst);
            // The user's current roles: "admin" was taken away.
            let granted: Vec<String> = key
                .roles
                .iter()
                .filter(|r| *r != "admin")
                .cloned()
                .collect();
            let (disabled, failing) = (
                disabled.load(Ordering::SeqCst),
                failing.load(Ordering::SeqCst),
            );
            async move {
                if failing {
                    return Err(StoreError::unavailable("users table down"));
                }
                Ok((!disabled).then(|| Grant::new(granted).with_name("alice")))
            }
        })
    };
    let created = auth
        .create("42", "ci", &roles(&["admin", "reader"]), None)
        .await
        .unwrap();
    let key = created.key.expose();
    let identity = auth.verify(key).await.unwrap();
    assert_eq!(identity.roles(), ["reader"]);
    assert_eq!(identity.claims().name.as_deref(), Some("alice"));
    for _ in 0..100 {
        auth.verify_now(key).unwrap().unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "cached with the key");

    // A forged secret never reaches the mapper.
    let mut forged = key[..13].to_owned();
    forged.push_str(&ApiKey::generate().expose()[13..]);
    tokio::time::sleep(Duration::from_millis(350)).await;
    auth.verify(&forged).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // After a forged lookup the record is cached without a grant: the genuine key asks the
    // mapper, without the store.
    let lookups = store.lookups();
    assert!(auth.verify_now(key).is_none());
    auth.verify(key).await.unwrap();
    assert_eq!(
        (store.lookups(), calls.load(Ordering::SeqCst)),
        (lookups, 2)
    );

    // The user is disabled: refused within the cache lifetime, and the refusal is cached.
    disabled.store(true, Ordering::SeqCst);
    auth.forget_subject("42");
    assert!(matches!(auth.verify(key).await, Err(ApiKeyError::Refused)));
    assert!(matches!(
        auth.verify_now(key),
        Some(Err(ApiKeyError::Refused))
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // A mapper outage is an outage (503), and is not cached.
    disabled.store(false, Ordering::SeqCst);
    failing.store(true, Ordering::SeqCst);
    auth.forget_subject("42");
    let err = auth.verify(key).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(err.into_response().status(), 503);
    failing.store(false, Ordering::SeqCst);
    auth.verify(key).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_store_outage_is_answered_503_and_not_cached() {
    let (auth, store) = setup(ApiKeyConfig::default());
    let created = auth.create("42", "ci", &[], None).await.unwrap();
    store.down.store(true, Ordering::SeqCst);
    let err = auth.verify(created.key.expose()).await.unwrap_err();
    assert!(err.is_unavailable());
    assert!(auth.verify_now(created.key.expose()).is_none());
    store.down.store(false, Ordering::SeqCst);
    auth.verify(created.key.expose()).await.unwrap();
}

#[tokio::test]
async fn a_subject_holds_at_most_the_configured_number_of_keys() {
    let (auth, _) = setup(ApiKeyConfig::default().max_keys_per_subject(3));
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            auth.create("42", &format!("k{n}"), &[], None)
                .await
                .unwrap()
                .record
                .id,
        );
    }
    assert!(matches!(
        auth.create("42", "k3", &[], None).await,
        Err(CreateKeyError::LimitReached { max: 3 })
    ));
    auth.create("43", "other", &[], None).await.unwrap();
    assert!(auth.delete(ids[0], "42").await.unwrap());
    auth.create("42", "k3", &[], None).await.unwrap();
    assert_eq!(DEFAULT_MAX_KEYS_PER_SUBJECT, 20);
}

#[tokio::test]
async fn last_use_is_recorded_to_the_minute_at_most_once_a_minute() {
    let (auth, store) = setup(ApiKeyConfig::default().cache_ttl(Duration::from_millis(100)));
    let b = instance(&store, ApiKeyConfig::default());
    let created = auth.create("42", "ci", &[], None).await.unwrap();
    let key = created.key.expose();
    auth.verify(key).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let used = loop {
        let listed = store.list("42").await.unwrap();
        if let Some(at) = listed[0].last_used_at {
            break at;
        }
        assert!(Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(used % 60, 0, "rounded down to the minute");
    assert!((now() - used) < 60 && used <= now());
    // Many uses, on two instances, cache entries expiring meanwhile: no second write this
    // minute (unless the minute turned).
    for _ in 0..20 {
        auth.verify(key).await.unwrap();
        b.verify(key).await.unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    tokio::task::yield_now().await;
    let touches = store.touches.load(Ordering::SeqCst);
    let minute_turned = now() - now().rem_euclid(60) != used;
    assert!(touches == 1 || minute_turned, "{touches} writes");
}

#[tokio::test]
async fn requests_carry_the_identity_or_the_refusal() {
    let (auth, _) = setup(ApiKeyConfig::default());
    let created = auth
        .create("42", "ci", &roles(&["reader"]), None)
        .await
        .unwrap();
    let key = created.key.expose();
    let request = |name: &str, value: &str| {
        http::Request::builder()
            .header(name, value)
            .body(())
            .unwrap()
    };

    for mut req in [
        request("x-api-key", key),
        request("authorization", &format!("Bearer {key}")),
        request("authorization", &format!("bearer  {key} ")),
    ] {
        // Cold: the in-place step declines and changes nothing; the waiting one records.
        auth.forget_subject("42");
        assert!(!auth.authenticate_request_now(&mut req));
        assert!(ApiKeyIdentity::of(req.extensions()).is_none());
        auth.authenticate_request(&mut req).await;
        let identity = ApiKeyIdentity::of(req.extensions()).unwrap();
        assert_eq!(identity.subject(), "42");
        let claims = req.extensions().get::<Arc<crate::jwt::Claims>>().unwrap();
        assert!(Arc::ptr_eq(claims, identity.claims()));
        assert_eq!(
            req.extensions().get::<crate::jwt::AuthSource>(),
            Some(&crate::jwt::AuthSource::Bearer)
        );
        assert!(auth.refusal_of(&req).is_none());
        // Warm: in place.
        let mut again = req.map(|()| ());
        again.extensions_mut().clear();
        assert!(auth.authenticate_request_now(&mut again));
        assert!(ApiKeyIdentity::of(again.extensions()).is_some());
    }

    // Refused keys: 401 "Invalid API key", recorded, no identity.
    let unknown = ApiKey::generate();
    for mut req in [
        request("x-api-key", "nonsense"),
        request("x-api-key", ""),
        request("x-api-key", unknown.expose()),
        request("authorization", "Bearer bwk_short"),
    ] {
        auth.authenticate_request(&mut req).await;
        assert!(ApiKeyIdentity::of(req.extensions()).is_none());
        assert!(req.extensions().get::<Arc<crate::jwt::Claims>>().is_none());
        assert!(recorded_refusal(req.extensions()).is_some());
        let refusal = auth.refusal_of(&req).expect("refused");
        assert_eq!(refusal.status(), 401);
        assert_eq!(refusal.headers()["www-authenticate"], "Bearer");
        let body = axum::body::to_bytes(refusal.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"detail":"Invalid API key"}"#);
    }
    let mut non_ascii = http::Request::builder().body(()).unwrap();
    non_ascii.headers_mut().insert(
        X_API_KEY,
        http::HeaderValue::from_bytes("bwk_é".as_bytes()).unwrap(),
    );
    auth.authenticate_request(&mut non_ascii).await;
    assert_eq!(auth.refusal_of(&non_ascii).unwrap().status(), 401);

    // The waiting step's future can be boxed by a pipeline (`Send`, over axum's body).
    fn boxable<F: Future<Output = ()> + Send>(future: F) -> F {
        future
    }
    let mut axum_request = axum::extract::Request::new(axum::body::Body::empty());
    axum_request
        .headers_mut()
        .insert(X_API_KEY, key.parse().unwrap());
    boxable(auth.authenticate_request(&mut axum_request)).await;
    assert!(ApiKeyIdentity::of(axum_request.extensions()).is_some());

    // Not a key: left to the JWT path, nothing recorded.
    for mut req in [
        request("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"),
        request("cookie", "session=bwk_x"),
        http::Request::builder().body(()).unwrap(),
    ] {
        assert!(auth.authenticate_request_now(&mut req));
        assert!(req.extensions().is_empty());
        assert!(auth.refusal_of(&req).is_none());
    }
}

#[tokio::test]
async fn nothing_prints_a_key_or_a_hash() {
    let (auth, store) = setup(ApiKeyConfig::default());
    let created = auth
        .create("42", "ci", &roles(&["reader"]), None)
        .await
        .unwrap();
    let key = created.key.expose().to_owned();
    let secret = &key[13..];
    let identity = auth.verify(&key).await.unwrap();
    let hash_hex: String = created
        .record
        .hash
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let hash_bytes = format!("{:?}", created.record.hash.as_bytes());
    let mut forged = key[..13].to_owned();
    forged.push_str(&ApiKey::generate().expose()[13..]);
    let errors = [
        auth.verify(&forged).await.unwrap_err(),
        auth.verify("bwk_nope").await.unwrap_err(),
    ];
    let shown = format!(
        "{created:?} {identity:?} {auth:?} {store:?} {:?} {errors:?} {} {}",
        store.list("42").await.unwrap(),
        errors[0],
        errors[1],
    );
    for secret_text in [
        key.as_str(),
        secret,
        &hash_hex,
        &hash_bytes[1..40],
        &forged[13..],
    ] {
        assert!(!shown.contains(secret_text), "{secret_text} in {shown}");
    }
    assert!(
        shown.contains(created.key.prefix()),
        "the prefix is no secret"
    );
}
