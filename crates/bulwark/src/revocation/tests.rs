#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::*;

fn claims(sub: &str, jti: &str, ver: u64) -> Claims {
    Claims {
        sub: sub.into(),
        name: None,
        roles: vec![],
        iat: 0,
        nbf: 0,
        exp: i64::MAX / 2,
        jti: jti.into(),
        iss: "i".into(),
        aud: "a".into(),
        ver,
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_store_conforms() {
    let Ok(url) = std::env::var("BULWARK_TEST_REDIS_URL") else {
        eprintln!("BULWARK_TEST_REDIS_URL is not set: Redis variant not run");
        return;
    };
    let prefix = format!("test-rev-{}:", crate::secret::random_token(8));
    let store = store::redis::RedisRevocationStore::new(
        &url,
        &prefix,
        std::time::Duration::from_millis(500),
    )
    .unwrap();
    crate::testing::revocation_store_conformance(Arc::new(store)).await;
}

/// Found in review: the Redis log kept only its newest 100 000 entries, and Redis held the only
/// copy of revocations: a flood of logouts could push out a revocation whose token still worked.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_never_trims_an_unexpired_revocation() {
    let Ok(url) = std::env::var("BULWARK_TEST_REDIS_URL") else {
        eprintln!("BULWARK_TEST_REDIS_URL is not set: Redis variant not run");
        return;
    };
    let prefix = format!("test-rev-{}:", crate::secret::random_token(8));
    let store = Arc::new(
        store::redis::RedisRevocationStore::new(&url, &prefix, std::time::Duration::from_secs(5))
            .unwrap(),
    );
    let far = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let first = Revocation::Token {
        jti: "the-first".into(),
        expires_at: far,
    };
    store.publish(&first).await.unwrap();
    for chunk in 0..101 {
        let mut publishes = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let store = Arc::clone(&store);
            publishes.spawn(async move {
                let r = Revocation::Token {
                    jti: format!("flood-{chunk}-{i}"),
                    expires_at: far,
                };
                store.publish(&r).await
            });
        }
        while let Some(result) = publishes.join_next().await {
            result.unwrap().unwrap();
        }
    }
    let list = RevocationList::new();
    let (entries, _) = store.since(0).await.unwrap();
    for r in &entries {
        list.apply(r);
    }
    assert_eq!(entries.len(), 101_001);
    assert!(
        list.contains_jti("the-first"),
        "the oldest unexpired revocation is still there"
    );
    // Purging keeps them all: none has expired.
    assert_eq!(store.purge(far - 1, 0).await.unwrap(), 0);
    // Once they expire, a purge removes them all, in batches.
    assert_eq!(store.purge(far + 1, 0).await.unwrap(), 101_001);
    assert!(store.since(0).await.unwrap().0.is_empty());
}

#[tokio::test]
async fn memory_store_conforms() {
    crate::testing::revocation_store_conformance(Arc::new(MemoryRevocationStore::new())).await;
}

#[test]
fn subject_minimums_only_rise_and_expired_tokens_are_pruned() {
    let list = RevocationList::new();
    list.apply(&Revocation::Subject {
        sub: "u".into(),
        min_version: 4,
    });
    list.apply(&Revocation::Subject {
        sub: "u".into(),
        min_version: 2,
    });
    assert!(list.is_revoked(&claims("u", "x", 3)));
    list.apply(&Revocation::Token {
        jti: "old".into(),
        expires_at: 100,
    });
    list.apply(&Revocation::Token {
        jti: "new".into(),
        expires_at: 10_000,
    });
    list.prune(1_000, 60);
    assert_eq!(list.len(), 1);
    assert!(list.is_revoked(&claims("v", "new", 0)));
    assert!(!list.is_revoked(&claims("v", "old", 0)));
}

#[test]
fn revoked_tokens_fail_verification() {
    use crate::jwt::{JwtAuth, JwtConfig, JwtError, KeyRing, SigningKey, TokenSubject};
    let ring = Arc::new(KeyRing::new());
    ring.replace(vec![SigningKey::generate_hs256(0)]);
    let list = Arc::new(RevocationList::new());
    let auth = JwtAuth::new(ring, JwtConfig::new("i", "a")).with_revocations(Arc::clone(&list));
    let subject = TokenSubject {
        sub: "7".into(),
        version: 1,
        ..Default::default()
    };
    let issued = auth.issue_for(&subject).unwrap();
    assert!(auth.verify(&issued.token).is_ok());
    list.apply(&Revocation::Token {
        jti: issued.jti.clone(),
        expires_at: issued.expires_at,
    });
    assert!(matches!(auth.verify(&issued.token), Err(JwtError::Revoked)));
    let other = auth.issue_for(&subject).unwrap();
    list.apply(&Revocation::Subject {
        sub: "7".into(),
        min_version: 2,
    });
    assert!(matches!(auth.verify(&other.token), Err(JwtError::Revoked)));
    let fresh = auth
        .issue_for(&TokenSubject {
            version: 2,
            ..subject
        })
        .unwrap();
    assert!(auth.verify(&fresh.token).is_ok());
}
