use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHasher as _, phc};

use super::*;

const FAST: Argon2Params = Argon2Params {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

fn hasher() -> PasswordHasher {
    PasswordHasher::new(FAST).expect("valid params")
}

#[tokio::test]
async fn a_hashed_password_verifies_and_needs_no_rehash() {
    let hasher = hasher();
    let hash = hasher.hash(secret("s3cret-Passw0rd")).await.expect("hash");
    assert!(hash.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));

    let outcome = hasher
        .verify(secret("s3cret-Passw0rd"), Some(hash.as_str()))
        .await
        .expect("verify");
    assert_eq!(
        outcome,
        Verification::Match {
            needs_rehash: false
        }
    );
}

#[tokio::test]
async fn a_wrong_password_does_not_match() {
    let hasher = hasher();
    let hash = hasher.hash(secret("s3cret-Passw0rd")).await.expect("hash");
    let outcome = hasher
        .verify(secret("s3cret-passw0rd"), Some(hash.as_str()))
        .await
        .expect("verify");
    assert_eq!(outcome, Verification::NoMatch);
}

#[tokio::test]
async fn an_unknown_user_never_matches() {
    let hasher = hasher();
    // Not even the dummy hash's own password.
    for password in ["", "bulwark dummy password for unknown users"] {
        let outcome = hasher.verify(secret(password), None).await.expect("verify");
        assert_eq!(outcome, Verification::NoMatch);
    }
}

#[cfg(feature = "legacy-bcrypt")]
#[tokio::test]
async fn a_bcrypt_hash_verifies_and_needs_a_rehash() {
    let hasher = hasher();
    let stored = bcrypt::hash("password1", 4).expect("bcrypt");
    assert!(stored.starts_with("$2b$04$"));
    // passlib and PHP write the same algorithm under the `$2a$` and `$2y$` prefixes.
    for prefix in ["$2a$", "$2b$", "$2y$"] {
        let stored = format!("{prefix}{}", &stored[4..]);
        let right = hasher.verify(secret("password1"), Some(&stored)).await;
        assert_eq!(
            right.expect("verify"),
            Verification::Match { needs_rehash: true }
        );
        let wrong = hasher.verify(secret("password2"), Some(&stored)).await;
        assert_eq!(wrong.expect("verify"), Verification::NoMatch);
    }
}

#[cfg(feature = "legacy-bcrypt")]
#[tokio::test]
async fn a_hash_from_the_fastapi_tutorial_verifies() {
    // passlib's bcrypt hash of "secret" from FastAPI's OAuth2/JWT tutorial (cost 12).
    let stored = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";
    let outcome = hasher().verify(secret("secret"), Some(stored)).await;
    assert_eq!(
        outcome.expect("verify"),
        Verification::Match { needs_rehash: true }
    );
}

/// Without `legacy-bcrypt`, a bcrypt hash is an unknown format: the dummy check, then no match,
/// even for the right password.
#[cfg(not(feature = "legacy-bcrypt"))]
#[tokio::test]
async fn without_legacy_bcrypt_a_bcrypt_hash_never_matches() {
    // passlib's bcrypt hash of "secret" from FastAPI's OAuth2/JWT tutorial (cost 12).
    let stored = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";
    let outcome = hasher().verify(secret("secret"), Some(stored)).await;
    assert_eq!(outcome.expect("verify"), Verification::NoMatch);
}

#[cfg(feature = "legacy-bcrypt")]
#[tokio::test]
async fn bcrypt_reads_only_the_first_72_bytes_like_passlib() {
    let long = "a".repeat(72);
    let stored = bcrypt::hash(&long, 4).expect("bcrypt");
    let outcome = hasher()
        .verify(secret(&format!("{long}ignored")), Some(&stored))
        .await;
    assert!(outcome.expect("verify").is_match());
}

#[tokio::test]
async fn argon2_with_other_parameters_or_variant_needs_a_rehash() {
    let older = PasswordHasher::new(Argon2Params {
        memory_kib: 128,
        ..FAST
    })
    .expect("params");
    let stored = older.hash(secret("pw")).await.expect("hash");
    let outcome = hasher().verify(secret("pw"), Some(stored.as_str())).await;
    assert_eq!(
        outcome.expect("verify"),
        Verification::Match { needs_rehash: true }
    );

    let params = Params::new(64, 1, 1, None).expect("params");
    let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params);
    let stored: phc::PasswordHash = argon2i.hash_password(b"pw").expect("hash");
    let stored = stored.to_string();
    assert!(stored.starts_with("$argon2i$"));
    let outcome = hasher().verify(secret("pw"), Some(&stored)).await;
    assert_eq!(
        outcome.expect("verify"),
        Verification::Match { needs_rehash: true }
    );
}

#[tokio::test]
async fn an_unreadable_stored_hash_does_not_match() {
    let hasher = hasher();
    for stored in [
        "",
        "plaintext",
        "$argon2id$garbage",
        "$2b$12$short",
        "$1$md5crypt$abcdefgh",
        "$2b$04$££££££££££££££££££££££££££££££££££££££££££££££££££££",
    ] {
        let outcome = hasher.verify(secret("pw"), Some(stored)).await;
        assert_eq!(outcome.expect("verify"), Verification::NoMatch, "{stored}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn hashing_leaves_the_async_thread_free() {
    // One async thread. A task that counts while yielding can only make progress if the hash
    // runs elsewhere: inline hashing would hold the thread until it returns.
    let slow = PasswordHasher::new(Argon2Params {
        memory_kib: 8 * 1024,
        iterations: 3,
        parallelism: 1,
    })
    .expect("params");
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = Arc::clone(&ticks);
        async move {
            loop {
                ticks.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
    });
    tokio::task::yield_now().await;
    let before = ticks.load(Ordering::Relaxed);
    slow.hash(secret("pw")).await.expect("hash");
    let during = ticks.load(Ordering::Relaxed) - before;
    ticker.abort();
    assert!(during > 0, "the async thread was blocked while hashing");
}

#[tokio::test]
async fn invalid_parameters_are_rejected() {
    let err = PasswordHasher::new(Argon2Params {
        memory_kib: 1,
        ..FAST
    });
    assert!(matches!(err, Err(PasswordError::InvalidParams(_))));
}

#[tokio::test]
async fn debug_output_never_shows_a_hash() {
    let hasher = PasswordHasher::with_max_concurrency(FAST, 0).expect("params");
    assert_eq!(hasher.max_concurrency(), 1);
    let hash = hasher.hash(secret("pw")).await.expect("hash");
    assert_eq!(format!("{hash:?}"), "PasswordHash(..)");
    assert!(!format!("{hasher:?}").contains("$argon2"));
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn hashing_runs_under_the_idle_policy_at_nice_19() {
    const SCHED_IDLE: &str = "5";
    let hasher = PasswordHasher::with_max_concurrency(FAST, 1).expect("params");
    let (nice, policy) = hasher
        .run(|_, _| {
            let nice = rustix::process::getpriority_process(Some(rustix::thread::gettid()));
            // Field 41 of a thread's stat line is its scheduling policy; the fields after the
            // command name (in parentheses) start at the third.
            let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
            let after_name = &stat[stat.rfind(')').expect("(comm)") + 2..];
            let policy = after_name.split(' ').nth(41 - 3).map(str::to_owned);
            (nice, policy)
        })
        .await
        .expect("the job ran");
    assert_eq!(nice.expect("getpriority"), super::HASHING_NICE);
    assert_eq!(policy.as_deref(), Some(SCHED_IDLE));
}
