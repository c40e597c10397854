//! Conformance suites that every store backend must pass, for backends written outside this
//! crate (the server's SQL stores). Enabled by the `testing` feature.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{sync::Arc, time::Duration};

use crate::{
    jwt::{
        JwtAuth, JwtConfig, JwtError, KeyAlgorithm, KeyError, KeyManager, KeyRing, store::KeyStore,
    },
    revocation::{Revocation, RevocationList, RevocationStore, Revoker},
    secret::MasterSecret,
};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn claims(sub: &str, jti: &str, ver: u64) -> crate::jwt::Claims {
    crate::jwt::Claims {
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

fn manager(store: Arc<dyn KeyStore>, secret: &MasterSecret) -> KeyManager {
    KeyManager::new(
        store,
        secret,
        Arc::new(KeyRing::new()),
        KeyAlgorithm::Hs256,
        Duration::from_secs(60),
        Duration::from_secs(3600),
    )
}

/// The behaviour every key store must have; run against each backend.
pub async fn key_store_conformance(store: Arc<dyn KeyStore>) {
    let secret = MasterSecret::generate();
    let a = manager(Arc::clone(&store), &secret);
    let b = manager(Arc::clone(&store), &secret);
    a.ensure_active().await.unwrap();
    b.ensure_active().await.unwrap();
    let first = a.ring().active().unwrap().kid().to_owned();
    assert_eq!(
        b.ring().active().unwrap().kid(),
        first,
        "one first key for both"
    );

    let auth = JwtAuth::new(Arc::clone(a.ring()), JwtConfig::new("i", "a"));
    let old_token = auth.issue("1", None, &[]).unwrap().token;
    let second = a.rotate().await.unwrap();
    assert_ne!(second, first);
    assert!(auth.verify(&old_token).is_ok(), "rotation logs no one out");
    let new_token = auth.issue("1", None, &[]).unwrap().token;
    let header = jsonwebtoken::decode_header(&new_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(second.as_str()));

    // A scheduled rotation in one slot happens once, whoever asks.
    let key = a.test_stored_key();
    assert!(store.rotate(&key, 0, Some(42)).await.unwrap());
    let key = a.test_stored_key();
    assert!(!store.rotate(&key, 0, Some(42)).await.unwrap());

    // Retirement after the grace period, then revocation.
    let retired = store.retire_due(now() + 3600).await.unwrap();
    assert!(retired >= 2);
    a.reload().await.unwrap();
    assert!(matches!(
        auth.verify(&old_token),
        Err(JwtError::KeyNotValid)
    ));
    let active = a.ring().active().unwrap().kid().to_owned();
    let token = auth.issue("1", None, &[]).unwrap().token;
    a.revoke(&active).await.unwrap();
    assert!(matches!(auth.verify(&token), Err(JwtError::KeyNotValid)));
    assert_ne!(
        a.ring().active().unwrap().kid(),
        active,
        "a new key replaces a revoked active one"
    );
    assert!(matches!(a.revoke("nope").await, Err(KeyError::NotFound(_))));
}

/// The behaviour every store must have; run against each backend.
pub async fn revocation_store_conformance(store: Arc<dyn RevocationStore>) {
    let far = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    let a = Revoker::new(Arc::clone(&store), Arc::new(RevocationList::new()));
    let b = Revoker::new(Arc::clone(&store), Arc::new(RevocationList::new()));
    a.revoke(Revocation::Token {
        jti: "t1".into(),
        expires_at: far,
    })
    .await
    .unwrap();
    a.revoke(Revocation::Subject {
        sub: "u1".into(),
        min_version: 3,
    })
    .await
    .unwrap();
    assert!(
        a.list().is_revoked(&claims("u0", "t1", 0)),
        "applied locally at once"
    );
    assert!(
        !b.list().is_revoked(&claims("u0", "t1", 0)),
        "not yet pulled"
    );
    assert!(b.sync().await.unwrap() >= 2);
    assert!(b.list().is_revoked(&claims("u0", "t1", 0)));
    assert!(b.list().is_revoked(&claims("u1", "t2", 2)));
    assert!(!b.list().is_revoked(&claims("u1", "t2", 3)));
    assert!(!b.list().is_revoked(&claims("u2", "t3", 0)));
    // A second pull may return recent entries again (allowed), never lose or undo any.
    b.sync().await.unwrap();
    assert!(b.list().is_revoked(&claims("u0", "t1", 0)));
    assert!(!b.list().is_revoked(&claims("u1", "t2", 3)));
    a.revoke(Revocation::Subject {
        sub: "u1".into(),
        min_version: 5,
    })
    .await
    .unwrap();
    b.sync().await.unwrap();
    assert!(b.list().is_revoked(&claims("u1", "t2", 4)));

    // Purging removes what has expired, and only that.
    let now = now();
    a.revoke(Revocation::Token {
        jti: "expired".into(),
        expires_at: now - 600,
    })
    .await
    .unwrap();
    let kept_by_time = store.purge(now - 60, now - 3600).await.unwrap();
    assert!(kept_by_time >= 1, "the expired token entry goes");
    let fresh = Revoker::new(Arc::clone(&store), Arc::new(RevocationList::new()));
    fresh.sync().await.unwrap();
    assert!(
        fresh.list().is_revoked(&claims("u0", "t1", 0)),
        "an unexpired token stays"
    );
    assert!(
        fresh.list().is_revoked(&claims("u1", "t2", 4)),
        "a recent subject entry stays"
    );
    assert!(!fresh.list().contains_jti("expired"));
    // Subject entries go once every token issued before them has expired.
    store.purge(now - 60, now + 60).await.unwrap();
    let later = Revoker::new(Arc::clone(&store), Arc::new(RevocationList::new()));
    later.sync().await.unwrap();
    assert!(!later.list().is_revoked(&claims("u1", "t2", 4)));
    assert!(
        later.list().is_revoked(&claims("u0", "t1", 0)),
        "the token entry still stays"
    );
}
