//! Conformance suites that every store backend must pass: the library runs them against its
//! own backends (memory, Redis, SQL), and a backend written outside this crate runs them in its
//! tests. Enabled by the `testing` feature.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{sync::Arc, time::Duration};

use crate::{
    jwt::{
        JwtAuth, JwtConfig, JwtError, KeyAlgorithm, KeyError, KeyManager, KeyRing, KeyState,
        store::{KeyStore, StoredKey},
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

/// The stored key `kid` (there must be one).
async fn stored(store: &dyn KeyStore, kid: &str) -> StoredKey {
    let keys = store.list().await.unwrap();
    let found: Vec<_> = keys.into_iter().filter(|k| k.kid == kid).collect();
    assert_eq!(found.len(), 1, "key {kid} is listed once");
    found.into_iter().next().unwrap()
}

/// How many keys are active.
async fn active_keys(store: &dyn KeyStore) -> usize {
    let keys = store.list().await.unwrap();
    keys.iter().filter(|k| k.state == KeyState::Active).count()
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
    let in_slot = a.test_stored_key();
    assert!(store.rotate(&in_slot, 0, Some(42)).await.unwrap());
    let refused = a.test_stored_key();
    assert!(!store.rotate(&refused, 0, Some(42)).await.unwrap());
    assert!(
        !store
            .list()
            .await
            .unwrap()
            .iter()
            .any(|k| k.kid == refused.kid),
        "a refused rotation inserts nothing"
    );

    // The store keeps what it was given, and the state rotation sets.
    let kept = stored(&*store, &in_slot.kid).await;
    assert_eq!(kept.state, KeyState::Active);
    assert_eq!(kept.alg, in_slot.alg);
    assert_eq!(kept.sealed, in_slot.sealed, "sealed material round-trips");
    assert_eq!(kept.created_at, in_slot.created_at);
    assert_eq!(
        kept.retires_at, None,
        "the active key has no retirement time"
    );
    let replaced = stored(&*store, &second).await;
    assert_eq!(replaced.state, KeyState::Verifying);
    assert_eq!(replaced.retires_at, Some(0), "retires when rotate said");
    assert_eq!(active_keys(&*store).await, 1, "one active key at a time");
    assert_eq!(stored(&*store, &first).await.state, KeyState::Verifying);

    // Retirement after the grace period: only verifying keys whose time has come, each once.
    assert_eq!(
        store.retire_due(0).await.unwrap(),
        1,
        "only the key due at 0 retires"
    );
    assert_eq!(stored(&*store, &second).await.state, KeyState::Retired);
    assert_eq!(stored(&*store, &first).await.state, KeyState::Verifying);
    assert_eq!(
        store.retire_due(0).await.unwrap(),
        0,
        "a retired key retires once"
    );
    let retired = store.retire_due(now() + 3600).await.unwrap();
    assert_eq!(retired, 1, "the first key's grace is over");
    assert_eq!(stored(&*store, &first).await.state, KeyState::Retired);
    assert_eq!(
        stored(&*store, &in_slot.kid).await.state,
        KeyState::Active,
        "an active key never retires"
    );
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
    assert!(
        !store.revoke("no-such-key").await.unwrap(),
        "revoking an unknown key answers false"
    );
    assert_eq!(stored(&*store, &active).await.state, KeyState::Revoked);
    assert!(
        store.revoke(&first).await.unwrap(),
        "a retired key can be revoked"
    );
    assert_eq!(stored(&*store, &first).await.state, KeyState::Revoked);
    assert_eq!(
        store.retire_due(i64::MAX / 2).await.unwrap(),
        0,
        "revoked and active keys are never retired"
    );
    assert_eq!(stored(&*store, &active).await.state, KeyState::Revoked);
    assert_eq!(active_keys(&*store).await, 1);
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
    // The log gives back what was published, field for field, and its cursor only moves on.
    let (entries, cursor) = store.since(0).await.unwrap();
    assert!(
        entries.contains(&Revocation::Token {
            jti: "t1".into(),
            expires_at: far,
        }),
        "{entries:?}"
    );
    assert!(
        entries.contains(&Revocation::Subject {
            sub: "u1".into(),
            min_version: 3,
        }),
        "{entries:?}"
    );
    assert!(cursor > 0, "the cursor moves past what was read");
    let (_, again) = store.since(cursor).await.unwrap();
    assert!(again >= cursor, "the cursor never goes back");
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
    // (In this order: a store may drop expired entries as new ones arrive.)
    a.revoke(Revocation::Token {
        jti: "edge".into(),
        expires_at: now - 30,
    })
    .await
    .unwrap();
    a.revoke(Revocation::Token {
        jti: "expired".into(),
        expires_at: now - 600,
    })
    .await
    .unwrap();
    let kept_by_time = store.purge(now - 30, now - 3600).await.unwrap();
    assert!(kept_by_time >= 1, "the expired token entry goes");
    let (entries, _) = store.since(0).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|r| matches!(r, Revocation::Token { jti, .. } if jti == "edge")),
        "the bound is strict: an entry expiring at `expired_before` stays"
    );
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

#[cfg(feature = "mail")]
pub use mail_queue::mail_queue_conformance;

/// The suite of mail queues (feature `mail`).
#[cfg(feature = "mail")]
mod mail_queue {
    use std::{
        collections::HashMap,
        sync::{
            Arc, Mutex,
            atomic::{AtomicUsize, Ordering},
        },
        time::{Duration, Instant},
    };

    use super::now;
    use crate::mail::{Mail, MailQueue, QueuedMail};

    fn mail(n: usize) -> Mail {
        Mail {
            to: format!("user{n}@example.com"),
            subject: format!("Message {n} — ünïcode"),
            text: format!("Line one of {n}\r\nline two: https://example.com/reset?token=t{n}\n"),
            html: format!(
                "<p>Message <b>{n}</b> &amp; 'quotes' \"too\"</p>\n{}",
                "x".repeat(10_000)
            ),
        }
    }

    async fn claim(queue: &dyn MailQueue, at: i64, lease: i64) -> Option<QueuedMail> {
        queue.claim(at, lease).await.unwrap()
    }

    async fn counts(queue: &dyn MailQueue) -> (u64, u64) {
        let c = queue.counts().await.unwrap();
        (c.queued, c.failed)
    }

    /// The behaviour every mail queue must have; run against each backend, on a multi-threaded
    /// runtime (its last part claims from 8 tasks at once). The queue must be empty.
    pub async fn mail_queue_conformance(queue: Arc<dyn MailQueue>) {
        let q = &*queue;
        assert_eq!(counts(q).await, (0, 0), "the suite expects an empty queue");
        assert_eq!(claim(q, now() + 10_000, 60).await, None, "nothing to claim");

        // Enqueued messages round-trip, due at once, oldest first; a claim holds its lease.
        let before = now();
        let ids = [
            q.enqueue(&mail(1)).await.unwrap(),
            q.enqueue(&mail(2)).await.unwrap(),
            q.enqueue(&mail(3)).await.unwrap(),
        ];
        let t = now();
        assert!(ids[0] < ids[1] && ids[1] < ids[2], "ids grow: {ids:?}");
        assert_eq!(counts(q).await, (3, 0));
        assert_eq!(
            claim(q, before - 10, 60).await,
            None,
            "not due before it was enqueued"
        );
        for (n, id) in ids.iter().enumerate() {
            let got = claim(q, t, 60).await.expect("a due message");
            assert_eq!(got.id, *id, "oldest first");
            assert_eq!(got.mail, mail(n + 1), "the message round-trips");
            assert_eq!(got.attempts, 0);
        }
        assert_eq!(claim(q, t, 60).await, None, "every message is leased");
        assert_eq!(
            claim(q, t + 59, 60).await,
            None,
            "leases hold until they expire"
        );
        assert_eq!(counts(q).await, (3, 0), "leased messages are still queued");

        // Completed: gone for good.
        q.complete(ids[1]).await.unwrap();
        assert_eq!(counts(q).await, (2, 0));
        q.complete(ids[1]).await.unwrap();
        q.complete(-1).await.unwrap();

        // A worker that died (kill -9): its lease expires and the message is claimed again,
        // oldest first, its attempts unchanged.
        let again = claim(q, t + 60, 30).await.expect("the lease expired");
        assert_eq!((again.id, again.attempts), (ids[0], 0));
        assert_eq!(again.mail, mail(1));
        let third = claim(q, t + 60, 30).await.expect("the other expired lease");
        assert_eq!(third.id, ids[2]);
        assert_eq!(claim(q, t + 89, 30).await, None, "the new leases hold");

        // Retry: attempts counted, lease freed, due at the time given (and not before).
        q.retry(ids[0], t + 200, "transient: connection refused")
            .await
            .unwrap();
        assert_eq!(
            claim(q, t + 199, 30).await.map(|m| m.id),
            Some(ids[2]),
            "not due yet; the other message's lease expired at t + 90"
        );
        assert_eq!(claim(q, t + 199, 30).await, None);
        let retried = claim(q, t + 200, 30).await.expect("due now");
        assert_eq!((retried.id, retried.attempts), (ids[0], 1));
        assert_eq!(retried.mail, mail(1));
        q.retry(ids[0], t, "transient: timed out").await.unwrap();
        let early = claim(q, t + 200, 30)
            .await
            .expect("a retry frees the lease");
        assert_eq!((early.id, early.attempts), (ids[0], 2));

        // Fail: final, kept, counted.
        q.fail(ids[0], "permanent: 550 no such user").await.unwrap();
        assert_eq!(counts(q).await, (1, 1));
        q.retry(ids[0], t, "late retry").await.unwrap();
        q.fail(ids[0], "again").await.unwrap();
        assert_eq!(counts(q).await, (1, 1), "failing twice counts once");
        assert_ne!(
            claim(q, i64::MAX / 4, 30).await.map(|m| m.id),
            Some(ids[0]),
            "a failed message is never claimed, not even by a late retry"
        );
        assert_eq!(claim(q, i64::MAX / 4, 30).await, None);
        q.complete(ids[2]).await.unwrap();
        assert_eq!(counts(q).await, (0, 1));
        assert_eq!(claim(q, i64::MAX / 4, 30).await, None);

        // An error of any length and content is accepted (kept short by the queue).
        let id = q.enqueue(&mail(4)).await.unwrap();
        let t = now();
        claim(q, t, 30).await.expect("due");
        q.retry(id, t, &"é'\"; --".repeat(500)).await.unwrap();
        assert_eq!(claim(q, t, 30).await.map(|m| m.attempts), Some(1));
        q.complete(id).await.unwrap();
        assert_eq!(counts(q).await, (0, 1));

        concurrent_claims(&queue).await;
        assert_eq!(counts(q).await, (0, 1));

        // Failed messages are purged once failed before the given time; queued ones never.
        let waiting = q.enqueue(&mail(5)).await.unwrap();
        assert_eq!(
            q.purge_failed(now() - 60).await.unwrap(),
            0,
            "failed just now"
        );
        assert_eq!(counts(q).await, (1, 1));
        assert_eq!(q.purge_failed(now() + 60).await.unwrap(), 1);
        assert_eq!(counts(q).await, (1, 0), "the queued message stays");
        q.complete(waiting).await.unwrap();
        assert_eq!(counts(q).await, (0, 0));
    }

    /// 8 tasks claim 50 messages at once: each message is claimed exactly once.
    async fn concurrent_claims(queue: &Arc<dyn MailQueue>) {
        const MESSAGES: usize = 50;
        let mut ids = Vec::with_capacity(MESSAGES);
        for n in 0..MESSAGES {
            ids.push(queue.enqueue(&mail(100 + n)).await.unwrap());
        }
        let t = now();
        let claimed = Arc::new(Mutex::new(HashMap::<i64, usize>::new()));
        let total = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (queue, claimed, total) =
                (Arc::clone(queue), Arc::clone(&claimed), Arc::clone(&total));
            tasks.spawn(async move {
                loop {
                    match queue.claim(t, 600).await.unwrap() {
                        Some(m) => {
                            *claimed.lock().unwrap().entry(m.id).or_default() += 1;
                            total.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                        }
                        None if total.load(Ordering::SeqCst) >= MESSAGES => break,
                        None => {
                            assert!(Instant::now() < deadline, "claims stalled");
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let claimed = claimed.lock().unwrap().clone();
        let twice: Vec<_> = claimed.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "claimed more than once: {twice:?}");
        let mut got: Vec<i64> = claimed.keys().copied().collect();
        got.sort_unstable();
        assert_eq!(got, ids, "every message claimed exactly once");
        assert_eq!(claim(&**queue, t, 600).await, None, "all leased");
        for id in ids {
            queue.complete(id).await.unwrap();
        }
    }
}

#[cfg(feature = "totp")]
pub use totp_steps::{totp_one_claim_among, totp_step_store_conformance};

/// The suite of TOTP step stores (feature `totp`).
#[cfg(feature = "totp")]
mod totp_steps {
    use std::sync::Arc;

    use super::now;
    use crate::totp::TotpStepStore;

    /// A step near today's (about 56 million), where real claims happen.
    const STEP: u64 = 56_000_000;

    async fn claim(store: &dyn TotpStepStore, subject: &str, step: u64) -> bool {
        store.claim(subject, step, now() + 3600).await.unwrap()
    }

    /// The behaviour every TOTP step store must have; run against each backend, on a
    /// multi-threaded runtime (it claims from 16 tasks at once). The store must be empty.
    pub async fn totp_step_store_conformance(store: Arc<dyn TotpStepStore>) {
        let s = &*store;
        // A code once: the first claim of a step wins, the same step again is refused.
        assert!(claim(s, "alice", STEP).await, "first claim");
        assert!(!claim(s, "alice", STEP).await, "a replay is refused");
        // An older code after a newer one is refused; a newer one is accepted.
        assert!(
            !claim(s, "alice", STEP - 1).await,
            "an older step is refused"
        );
        assert!(claim(s, "alice", STEP + 1).await, "the next step");
        assert!(!claim(s, "alice", STEP).await, "older than the last");
        assert!(
            claim(s, "alice", STEP + 5).await,
            "a later step, with a gap"
        );
        assert!(!claim(s, "alice", STEP + 3).await, "inside the gap: older");
        // Subjects are apart, whatever their text.
        assert!(claim(s, "bob", STEP).await, "another subject");
        assert!(claim(s, "Alice", STEP).await, "subjects are case-sensitive");
        for subject in [
            "ü'\"; -- DROP TABLE totp_steps",
            "a:b*c?[d]",
            " ",
            &"x".repeat(300),
        ] {
            assert!(claim(s, subject, STEP).await, "{subject:?}");
            assert!(!claim(s, subject, STEP).await, "{subject:?} again");
        }
        // Step 0 and large steps (2^52: exact in a double, for a Lua comparison).
        assert!(claim(s, "zero", 0).await);
        assert!(!claim(s, "zero", 0).await);
        let big = 1u64 << 52;
        assert!(claim(s, "big", big).await);
        assert!(!claim(s, "big", big - 1).await);
        assert!(claim(s, "big", big + 1).await);
        // A purge never removes an entry before its expiry.
        store.purge(now()).await.unwrap();
        assert!(!claim(s, "alice", STEP + 5).await, "kept by the purge");
        // An entry expired (and purged) is never needed again: claims of later steps work.
        assert!(s.claim("gone", STEP, now() - 10).await.unwrap());
        store.purge(now()).await.unwrap();
        assert!(claim(s, "gone", STEP + 10).await);

        // Real concurrency: 16 tasks with one code, then with 16 codes of steps in a row.
        totp_one_claim_among(std::slice::from_ref(&store), "race", STEP).await;
        let mut tasks = tokio::task::JoinSet::new();
        for k in 0..16 {
            let store = Arc::clone(&store);
            tasks.spawn(async move { claim(&*store, "steps", STEP + k).await });
        }
        let mut won = 0;
        while let Some(outcome) = tasks.join_next().await {
            won += usize::from(outcome.unwrap());
        }
        assert!(won >= 1, "at least the first claim wins");
        assert!(
            !claim(s, "steps", STEP + 15).await,
            "the last step is taken"
        );
        assert!(claim(s, "steps", STEP + 16).await);
    }

    /// 16 tasks claim `step` for `subject` at once, spread over `stores` (instances sharing one
    /// backend): exactly one claim wins, and the step stays taken. `subject` must have no step
    /// at or after `step` yet.
    pub async fn totp_one_claim_among(stores: &[Arc<dyn TotpStepStore>], subject: &str, step: u64) {
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let mut tasks = tokio::task::JoinSet::new();
        for k in 0..16 {
            let store = Arc::clone(&stores[k % stores.len()]);
            let (barrier, subject) = (Arc::clone(&barrier), subject.to_owned());
            tasks.spawn(async move {
                barrier.wait().await;
                claim(&*store, &subject, step).await
            });
        }
        let mut won = 0;
        while let Some(outcome) = tasks.join_next().await {
            won += usize::from(outcome.unwrap());
        }
        assert_eq!(won, 1, "exactly one of 16 concurrent claims of a step wins");
        for store in stores {
            assert!(
                !claim(&**store, subject, step).await,
                "the step stays taken"
            );
        }
    }
}

#[cfg(feature = "api-key")]
pub use api_keys::{api_key_instances_share_one_cap, api_key_store_conformance};

/// The suite of API key stores (feature `api-key`).
#[cfg(feature = "api-key")]
mod api_keys {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use crate::api_key::{ApiKey, ApiKeyHasher, ApiKeyRecord, ApiKeyStore, Inserted};

    /// A record of `subject` with a fresh random prefix and id.
    fn record(subject: &str, created_at: i64) -> ApiKeyRecord {
        let key = ApiKey::generate();
        ApiKeyRecord {
            id: uuid::Uuid::new_v4(),
            subject: subject.to_owned(),
            name: "CI — 'nightly' \"job\"; DROP TABLE api_keys; --".to_owned(),
            prefix: key.prefix().to_owned(),
            hash: ApiKeyHasher::new(&[5; 32]).hash(key.expose()),
            roles: vec!["reader".into(), "writer".into()],
            created_at,
            expires_at: Some(created_at + 3600),
            last_used_at: None,
        }
    }

    async fn insert(store: &dyn ApiKeyStore, record: &ApiKeyRecord, max: u32) -> Inserted {
        store.insert(record, max).await.unwrap()
    }

    async fn find(store: &dyn ApiKeyStore, prefix: &str) -> Option<ApiKeyRecord> {
        store.find_by_prefix(prefix).await.unwrap()
    }

    /// The behaviour every API key store must have; run against each backend, on a
    /// multi-threaded runtime (its last part inserts and deletes from many tasks at once). The
    /// store must be empty.
    pub async fn api_key_store_conformance(store: Arc<dyn ApiKeyStore>) {
        let s = &*store;
        // Empty.
        assert_eq!(find(s, "AbCd1234").await, None);
        assert!(
            s.list("u1").await.unwrap().is_empty(),
            "the suite expects an empty store"
        );
        assert_eq!(s.count("u1").await.unwrap(), 0);
        assert!(!s.delete(uuid::Uuid::new_v4(), "u1").await.unwrap());
        assert_eq!(s.delete_subject("u1").await.unwrap(), 0);
        assert!(!s.touch(uuid::Uuid::new_v4(), 60).await.unwrap());

        // Records round-trip field for field, whatever their text.
        let first = record("u1", 1_700_000_000);
        assert_eq!(insert(s, &first, 20).await, Inserted::Stored);
        assert_eq!(find(s, &first.prefix).await, Some(first.clone()));
        let mut bare = record("u1", 1_700_000_000);
        bare.roles = vec![];
        bare.expires_at = None;
        bare.name = "ünïcode ✓".into();
        assert_eq!(insert(s, &bare, 20).await, Inserted::Stored);
        assert_eq!(find(s, &bare.prefix).await, Some(bare.clone()));
        let older = record("u1", 1_600_000_000);
        assert_eq!(insert(s, &older, 20).await, Inserted::Stored);

        // Listed oldest first, then by id; counted; scoped to the subject.
        let mut tied = [&first, &bare];
        tied.sort_by_key(|r| r.id);
        let expected = vec![older.clone(), tied[0].clone(), tied[1].clone()];
        assert_eq!(s.list("u1").await.unwrap(), expected);
        assert_eq!(s.count("u1").await.unwrap(), 3);
        assert!(s.list("u2").await.unwrap().is_empty());
        assert!(s.list("U1").await.unwrap().is_empty(), "subjects are exact");

        // Prefixes are unique and exact (case counts); ids are unique.
        let mut same_prefix = record("u2", 0);
        same_prefix.prefix = first.prefix.clone();
        assert_eq!(insert(s, &same_prefix, 20).await, Inserted::Conflict);
        let mut same_id = record("u2", 0);
        same_id.id = first.id;
        assert_eq!(insert(s, &same_id, 20).await, Inserted::Conflict);
        assert_eq!(s.count("u2").await.unwrap(), 0, "a conflict stores nothing");
        let mut upper = record("u2", 0);
        upper.prefix = "AbCd1234".into();
        let mut lower = record("u2", 0);
        lower.prefix = "abcd1234".into();
        assert_eq!(insert(s, &upper, 20).await, Inserted::Stored);
        assert_eq!(find(s, "abcd1234").await, None);
        assert_eq!(insert(s, &lower, 20).await, Inserted::Stored);
        assert_eq!(find(s, "abcd1234").await.map(|r| r.id), Some(lower.id));
        assert_eq!(find(s, "AbCd1234").await.map(|r| r.id), Some(upper.id));
        assert_eq!(find(s, "AbCd123").await, None, "no prefix matching");
        assert_eq!(find(s, "AbCd1234%").await, None, "no pattern matching");

        // The cap counts the subject's keys only.
        assert_eq!(insert(s, &record("u1", 0), 3).await, Inserted::LimitReached);
        assert_eq!(s.count("u1").await.unwrap(), 3);
        assert_eq!(insert(s, &record("u1", 0), 4).await, Inserted::Stored);
        assert_eq!(insert(s, &record("u3", 0), 1).await, Inserted::Stored);
        assert_eq!(insert(s, &record("u3", 0), 1).await, Inserted::LimitReached);
        assert_eq!(insert(s, &record("u4", 0), 0).await, Inserted::LimitReached);

        // last_used_at only moves forward.
        assert!(s.touch(first.id, 1_700_000_040).await.unwrap());
        assert_eq!(
            find(s, &first.prefix).await.unwrap().last_used_at,
            Some(1_700_000_040)
        );
        assert!(
            !s.touch(first.id, 1_700_000_040).await.unwrap(),
            "same minute: no write"
        );
        assert!(
            !s.touch(first.id, 1_699_999_980).await.unwrap(),
            "never backwards"
        );
        assert!(s.touch(first.id, 1_700_000_100).await.unwrap());
        let touched = find(s, &first.prefix).await.unwrap();
        assert_eq!(touched.last_used_at, Some(1_700_000_100));
        assert_eq!(touched.hash, first.hash, "a touch changes nothing else");
        assert_eq!(touched.roles, first.roles);

        // Deleting: the owner's only, once.
        assert!(
            !s.delete(first.id, "u2").await.unwrap(),
            "another subject's key"
        );
        assert!(find(s, &first.prefix).await.is_some(), "still there");
        assert!(s.delete(first.id, "u1").await.unwrap());
        assert_eq!(find(s, &first.prefix).await, None);
        assert!(!s.delete(first.id, "u1").await.unwrap(), "deleted once");
        assert_eq!(s.count("u1").await.unwrap(), 3);
        // The prefix is free again.
        let mut reused = record("u2", 0);
        reused.prefix = first.prefix.clone();
        assert_eq!(insert(s, &reused, 20).await, Inserted::Stored);
        assert_eq!(s.delete_subject("u1").await.unwrap(), 3);
        assert_eq!(s.count("u1").await.unwrap(), 0);
        assert_eq!(find(s, &bare.prefix).await, None);
        assert_eq!(
            s.count("u2").await.unwrap(),
            3,
            "other subjects keep theirs"
        );
        assert_eq!(s.delete_subject("u2").await.unwrap(), 3);
        assert_eq!(s.delete_subject("u3").await.unwrap(), 1);

        concurrent_inserts_respect_the_cap(&store).await;
        concurrent_inserts_of_one_prefix(&store).await;
        concurrent_deletes_and_inserts(&store).await;
    }

    /// 40 tasks insert keys of one subject at once, capped at 20: exactly 20 are stored.
    async fn concurrent_inserts_respect_the_cap(store: &Arc<dyn ApiKeyStore>) {
        let stored = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..40 {
            let (store, stored) = (Arc::clone(store), Arc::clone(&stored));
            tasks.spawn(async move {
                match store.insert(&record("capped", n), 20).await.unwrap() {
                    Inserted::Stored => {
                        stored.fetch_add(1, Ordering::SeqCst);
                    }
                    Inserted::LimitReached => {}
                    other => panic!("{other:?}"),
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        assert_eq!(stored.load(Ordering::SeqCst), 20, "exactly the cap");
        assert_eq!(store.count("capped").await.unwrap(), 20);
        assert_eq!(store.delete_subject("capped").await.unwrap(), 20);
    }

    /// 10 tasks insert keys with one prefix at once (for different subjects): one is stored.
    async fn concurrent_inserts_of_one_prefix(store: &Arc<dyn ApiKeyStore>) {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..10 {
            let store = Arc::clone(store);
            tasks.spawn(async move {
                let mut r = record(&format!("p{n}"), 0);
                r.prefix = "Same0000".into();
                store.insert(&r, 20).await.unwrap()
            });
        }
        let mut outcomes = Vec::new();
        while let Some(done) = tasks.join_next().await {
            outcomes.push(done.unwrap());
        }
        let stored = outcomes.iter().filter(|o| **o == Inserted::Stored).count();
        let conflicts = outcomes
            .iter()
            .filter(|o| **o == Inserted::Conflict)
            .count();
        assert_eq!((stored, conflicts), (1, 9), "{outcomes:?}");
        let owner = find(&**store, "Same0000").await.unwrap().subject;
        assert_eq!(store.delete_subject(&owner).await.unwrap(), 1);
    }

    /// A subject at the cap: tasks delete half its keys (each twice) while others insert new
    /// ones. Every key is deleted once, and the subject never holds more than the cap.
    async fn concurrent_deletes_and_inserts(store: &Arc<dyn ApiKeyStore>) {
        let mut keys = Vec::new();
        for n in 0..20 {
            let r = record("busy", n);
            assert_eq!(insert(&**store, &r, 20).await, Inserted::Stored);
            keys.push(r);
        }
        let deleted = Arc::new(AtomicUsize::new(0));
        let stored = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for (n, key) in keys.iter().take(10).enumerate() {
            for _ in 0..2 {
                let (store, deleted, id) = (Arc::clone(store), Arc::clone(&deleted), key.id);
                tasks.spawn(async move {
                    if store.delete(id, "busy").await.unwrap() {
                        deleted.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            let (store, stored) = (Arc::clone(store), Arc::clone(&stored));
            tasks.spawn(async move {
                for m in 0..2 {
                    let r = record("busy", 100 + i64::try_from(2 * n + m).unwrap());
                    if store.insert(&r, 20).await.unwrap() == Inserted::Stored {
                        stored.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let (deleted, stored) = (
            deleted.load(Ordering::SeqCst),
            stored.load(Ordering::SeqCst),
        );
        assert_eq!(deleted, 10, "each key deleted exactly once");
        assert!(stored <= 10, "never past the cap: {stored} stored");
        let count = store.count("busy").await.unwrap();
        assert_eq!(count, u64::try_from(20 - deleted + stored).unwrap());
        for key in keys.iter().take(10) {
            assert_eq!(find(&**store, &key.prefix).await, None);
        }
        for key in keys.iter().skip(10) {
            assert_eq!(find(&**store, &key.prefix).await.as_ref(), Some(key));
        }
        assert_eq!(
            store.list("busy").await.unwrap().len(),
            usize::try_from(count).unwrap()
        );
        store.delete_subject("busy").await.unwrap();
    }

    /// Several instances (pools) over one database: inserts for one subject from all of them
    /// at once never pass the cap, and what one deletes the others no longer find. The
    /// database must be empty.
    pub async fn api_key_instances_share_one_cap(instances: Vec<Arc<dyn ApiKeyStore>>) {
        let stored = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..36 {
            let store = Arc::clone(&instances[n % instances.len()]);
            let stored = Arc::clone(&stored);
            tasks.spawn(async move {
                let r = record("shared", i64::try_from(n).unwrap());
                if store.insert(&r, 20).await.unwrap() == Inserted::Stored {
                    stored.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        assert_eq!(stored.load(Ordering::SeqCst), 20);
        for instance in &instances {
            assert_eq!(instance.count("shared").await.unwrap(), 20);
        }
        let listed = instances[0].list("shared").await.unwrap();
        let victim = &listed[0];
        assert!(instances[1].delete(victim.id, "shared").await.unwrap());
        for instance in &instances {
            assert_eq!(find(&**instance, &victim.prefix).await, None);
            assert!(!instance.delete(victim.id, "shared").await.unwrap());
        }
        assert_eq!(instances[0].delete_subject("shared").await.unwrap(), 19);
    }
}
