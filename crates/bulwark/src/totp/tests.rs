#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use super::{
    hotp::{Hash, HotpKey},
    store::memory::MemoryTotpStepStore,
    *,
};

/// The RFC 4226 / RFC 6238 SHA-1 seed: "12345678901234567890".
const SEED_SHA1: &[u8] = b"12345678901234567890";
/// The RFC 6238 SHA-256 seed (32 bytes).
const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
/// The RFC 6238 SHA-512 seed (64 bytes).
const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

fn rfc_secret() -> TotpSecret {
    TotpSecret::from_bytes(SEED_SHA1.to_vec()).unwrap()
}

/// RFC 6238 Appendix B: every row (time, T in hex, 8-digit TOTP for SHA-1, SHA-256, SHA-512).
#[test]
fn rfc6238_appendix_b_vectors() {
    let rows: [(i64, u64, [&str; 3]); 6] = [
        (59, 0x1, ["94287082", "46119246", "90693936"]),
        (
            1_111_111_109,
            0x023_523EC,
            ["07081804", "68084774", "25091201"],
        ),
        (
            1_111_111_111,
            0x023_523ED,
            ["14050471", "67062674", "99943326"],
        ),
        (
            1_234_567_890,
            0x273_EF07,
            ["89005924", "91819424", "93441116"],
        ),
        (
            2_000_000_000,
            0x3F9_40AA,
            ["69279037", "90698825", "38618901"],
        ),
        (
            20_000_000_000,
            0x27B_C86AA,
            ["65353130", "77737706", "47863826"],
        ),
    ];
    let keys = [
        HotpKey::new(Hash::Sha1, SEED_SHA1),
        HotpKey::new(Hash::Sha256, SEED_SHA256),
        HotpKey::new(Hash::Sha512, SEED_SHA512),
    ];
    for (time, t, codes) in rows {
        assert_eq!(Totp::step_at(time), t, "T at {time}");
        for (key, code) in keys.iter().zip(codes) {
            assert_eq!(key.code_text(t, 8), code, "at {time}");
        }
        // The public API (SHA-1, 6 digits) gives the last six digits of the SHA-1 row, and
        // verifies them at that time.
        let six = &codes[0][2..];
        assert_eq!(Totp::new().code_at(&rfc_secret(), time), six, "at {time}");
        assert_eq!(Totp::new().verify(&rfc_secret(), six, time).unwrap(), t);
    }
}

/// RFC 4226 Appendix D: HOTP of counts 0 to 9 (6 digits, SHA-1).
#[test]
fn rfc4226_appendix_d_vectors() {
    let expected = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];
    let key = HotpKey::new(Hash::Sha1, SEED_SHA1);
    for (count, code) in expected.iter().enumerate() {
        assert_eq!(key.code_text(count as u64, 6), *code, "count {count}");
    }
    // Codes with leading zeros keep them (count 0 of another key is not needed: pad check).
    assert_eq!(format!("{:06}", 7), "000007");
}

/// One step either side is accepted and answers the step the code belongs to; two are not.
#[test]
fn one_step_of_skew_is_accepted_two_are_refused() {
    let secret = TotpSecret::generate();
    let totp = Totp::new();
    let t = 1_700_000_015; // the middle of a step
    let step = Totp::step_at(t);
    let code = totp.code_at(&secret, t);
    for skew in [-30, 0, 30] {
        assert_eq!(
            totp.verify(&secret, &code, t + skew).unwrap(),
            step,
            "skew {skew}"
        );
    }
    // At the edges of the window: 44 s late is still the next step, 45 s the one after.
    assert!(totp.verify(&secret, &code, t + 44).is_ok());
    for skew in [-60, 60, 90, -90] {
        assert!(
            matches!(
                totp.verify(&secret, &code, t + skew),
                Err(TotpError::Mismatch)
            ),
            "skew {skew}"
        );
    }
    // A code made one step early (a phone a little fast) or late (typed slowly):
    assert_eq!(
        totp.verify(&secret, &totp.code_at(&secret, t + 30), t)
            .unwrap(),
        step + 1
    );
    assert_eq!(
        totp.verify(&secret, &totp.code_at(&secret, t - 30), t)
            .unwrap(),
        step - 1
    );
}

#[test]
fn the_window_is_configurable() {
    let secret = TotpSecret::generate();
    let t = 1_700_000_015;
    let code = Totp::new().code_at(&secret, t);
    let strict = Totp::new().with_window(0);
    assert_eq!(strict.window(), 0);
    assert!(strict.verify(&secret, &code, t).is_ok());
    assert!(strict.verify(&secret, &code, t + 30).is_err());
    assert!(strict.verify(&secret, &code, t - 30).is_err());
    let wide = Totp::new().with_window(2);
    assert!(wide.verify(&secret, &code, t + 60).is_ok());
    assert!(wide.verify(&secret, &code, t - 60).is_ok());
    assert!(wide.verify(&secret, &code, t + 90).is_err());
    assert_eq!(Totp::default(), Totp::new());
    assert_eq!(Totp::new().window(), DEFAULT_WINDOW);
}

/// Anything but six digits is refused as malformed (before any HMAC); spaces are ignored.
#[test]
fn only_six_digits_are_read() {
    let secret = rfc_secret();
    let totp = Totp::new();
    for bad in [
        "",
        "28708",
        "2870820",
        "94287082",
        "28708a",
        "+28708",
        "-28708",
        "28708\u{0}",
        "２８７０８２", // full-width digits
        "287082\n",
        "\t287082",
        "28.708",
        &"2".repeat(10_000),
        "2 8 7 0 8 2 2",
    ] {
        assert!(
            matches!(totp.verify(&secret, bad, 59), Err(TotpError::Malformed)),
            "{bad:?}"
        );
    }
    for good in ["287082", " 287082 ", "287 082", "2 8 7 0 8 2"] {
        assert_eq!(totp.verify(&secret, good, 59).unwrap(), 1, "{good:?}");
    }
    assert!(matches!(
        totp.verify(&secret, "287083", 59),
        Err(TotpError::Mismatch)
    ));
    // Times before 1970 are step 0, and nothing breaks at the extremes.
    assert_eq!(Totp::step_at(-1), 0);
    assert_eq!(Totp::step_at(i64::MIN), 0);
    let _ = totp.verify(&secret, "287082", i64::MAX);
    let _ = totp.verify(&secret, "287082", i64::MIN);
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let store = MemoryTotpStepStore::new();
    let secret = TotpSecret::generate();
    let totp = Totp::new();
    let t = 1_700_000_015;
    let code = totp.code_at(&secret, t);
    let step = totp
        .verify_once(&store, "u1", &secret, &code, t)
        .await
        .unwrap();
    assert_eq!(step, Totp::step_at(t));
    // Again at once, and again within the window (one step later).
    for later in [t, t + 1, t + 30] {
        let again = totp.verify_once(&store, "u1", &secret, &code, later).await;
        assert!(matches!(again, Err(TotpError::Replayed)), "at {later}");
        assert!(again.unwrap_err().is_refusal());
    }
    // Another user with the same code (same secret, by chance) is not affected.
    assert!(
        totp.verify_once(&store, "u2", &secret, &code, t)
            .await
            .is_ok()
    );
    // The next step's code works.
    let next = totp.code_at(&secret, t + 30);
    assert_eq!(
        totp.verify_once(&store, "u1", &secret, &next, t + 30)
            .await
            .unwrap(),
        step + 1
    );
}

#[tokio::test]
async fn an_older_code_after_a_newer_one_is_refused() {
    let store = MemoryTotpStepStore::new();
    let secret = TotpSecret::generate();
    let totp = Totp::new();
    let t = 1_700_000_015;
    let newer = totp.code_at(&secret, t + 30); // a phone a step ahead
    let older = totp.code_at(&secret, t);
    totp.verify_once(&store, "u", &secret, &newer, t)
        .await
        .unwrap();
    let refused = totp.verify_once(&store, "u", &secret, &older, t).await;
    assert!(matches!(refused, Err(TotpError::Replayed)));
    // A wrong code is a mismatch, not a replay, and claims nothing.
    let window: Vec<String> = [-30, 0, 30]
        .iter()
        .map(|d| totp.code_at(&secret, t + d))
        .collect();
    let wrong = (0..)
        .map(|n| format!("{n:06}"))
        .find(|c| !window.contains(c))
        .unwrap();
    let wrong = totp.verify_once(&store, "v", &secret, &wrong, t).await;
    assert!(matches!(wrong, Err(TotpError::Mismatch)));
    assert!(
        totp.verify_once(&store, "v", &secret, &older, t)
            .await
            .is_ok()
    );
}

/// Steps 56188870 and 56188871 of the RFC seed share their code (617002): a code that matches
/// two steps of the window is claimed at the later one, or it could be used twice.
#[tokio::test]
async fn a_code_matching_two_steps_claims_the_later_one() {
    let secret = rfc_secret();
    let key = HotpKey::new(Hash::Sha1, SEED_SHA1);
    assert_eq!(key.code_text(56_188_870, 6), "617002");
    assert_eq!(key.code_text(56_188_871, 6), "617002");
    let totp = Totp::new();
    let t = 56_188_870 * 30 + 5;
    assert_eq!(totp.verify(&secret, "617002", t).unwrap(), 56_188_871);
    let store = MemoryTotpStepStore::new();
    totp.verify_once(&store, "u", &secret, "617002", t)
        .await
        .unwrap();
    let again = totp
        .verify_once(&store, "u", &secret, "617002", t + 30)
        .await;
    assert!(matches!(again, Err(TotpError::Replayed)));
}

/// A store that fails: the code is not accepted, and the error says it is the store's.
#[tokio::test]
async fn a_failing_store_accepts_nothing() {
    #[derive(Debug)]
    struct Down;
    impl TotpStepStore for Down {
        fn claim<'a>(&'a self, _: &'a str, _: u64, _: i64) -> crate::store::StoreFuture<'a, bool> {
            Box::pin(async { Err(StoreError::unavailable("down")) })
        }
        fn purge(&self, _: i64) -> crate::store::StoreFuture<'_, u64> {
            Box::pin(async { Ok(0) })
        }
    }
    let secret = TotpSecret::generate();
    let code = Totp::new().code_at(&secret, 1_700_000_000);
    let err = Totp::new()
        .verify_once(&Down, "u", &secret, &code, 1_700_000_000)
        .await
        .unwrap_err();
    assert!(!err.is_refusal());
    assert!(matches!(&err, TotpError::Store(e) if e.is_unavailable()));
}

#[tokio::test]
async fn claims_expire_after_the_window_with_a_step_to_spare() {
    let t = 1_700_000_015;
    let step = Totp::step_at(t);
    // The last time a code of `step` verifies is the end of step + 1; the claim is kept one
    // step longer.
    assert_eq!(Totp::new().expires_at(step), (step as i64 + 3) * 30);
    assert_eq!(
        Totp::new().with_window(0).expires_at(step),
        (step as i64 + 2) * 30
    );
    assert_eq!(Totp::new().expires_at(u64::MAX), i64::MAX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    crate::testing::totp_step_store_conformance(Arc::new(MemoryTotpStepStore::new())).await;
}

/// The memory store forgets expired entries as it grows: it stays bounded.
#[tokio::test]
async fn memory_store_stays_bounded() {
    let store = MemoryTotpStepStore::new();
    let past = time::OffsetDateTime::now_utc().unix_timestamp() - 1;
    for n in 0..10_000 {
        assert!(store.claim(&format!("u{n}"), 1, past).await.unwrap());
    }
    assert!(store.len() <= 1024, "{} entries", store.len());
    let future = past + 3600;
    store.claim("kept", 1, future).await.unwrap();
    let purged = store.purge(past + 2).await.unwrap();
    assert!(purged > 0);
    assert_eq!(store.len(), 1);
    assert!(!store.claim("kept", 1, future).await.unwrap());
    assert!(!store.is_empty());
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_conforms() {
    let Ok(url) = std::env::var("BULWARK_TEST_REDIS_URL") else {
        eprintln!("BULWARK_TEST_REDIS_URL is not set: Redis variant not run");
        return;
    };
    let prefix = format!("test-totp-{}:", crate::secret::random_token(8));
    let store =
        store::redis::RedisTotpStepStore::new(&url, &prefix, std::time::Duration::from_secs(5))
            .unwrap();
    crate::testing::totp_step_store_conformance(Arc::new(store)).await;
}

/// Two instances (two connections) claiming one step at once through Redis: one wins; the key
/// goes when its claim expires.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_instances_claim_a_step_once_and_entries_expire() {
    let Ok(url) = std::env::var("BULWARK_TEST_REDIS_URL") else {
        eprintln!("BULWARK_TEST_REDIS_URL is not set: Redis variant not run");
        return;
    };
    let prefix = format!("test-totp-{}:", crate::secret::random_token(8));
    let open = || {
        store::redis::RedisTotpStepStore::new(&url, &prefix, std::time::Duration::from_secs(5))
            .unwrap()
    };
    let stores: [Arc<dyn TotpStepStore>; 2] = [Arc::new(open()), Arc::new(open())];
    crate::testing::totp_one_claim_among(&stores, "shared", 1000).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(stores[0].claim("short", 5, now + 1).await.unwrap());
    assert!(!stores[1].claim("short", 5, now + 1).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(
        stores[1].claim("short", 5, now + 100).await.unwrap(),
        "expired and gone"
    );
}

#[test]
fn base32_round_trips() {
    for len in [
        MIN_SECRET_LEN,
        17,
        18,
        19,
        SECRET_LEN,
        32,
        33,
        MAX_SECRET_LEN,
    ] {
        for _ in 0..20 {
            let bytes = crate::secret::random_bytes(len);
            let secret = TotpSecret::from_bytes(bytes.clone()).unwrap();
            let text = secret.expose_base32();
            assert!(!text.contains('='), "no padding: {text}");
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
            );
            assert_eq!(text.len(), (len * 8).div_ceil(5));
            assert_eq!(TotpSecret::from_base32(&text).unwrap().expose(), bytes);
            let lower = text.to_lowercase();
            assert_eq!(TotpSecret::from_base32(&lower).unwrap().expose(), bytes);
            // As some services print them: groups of four, padded to a multiple of eight.
            let mut padded = text.clone();
            while !padded.len().is_multiple_of(8) {
                padded.push('=');
            }
            let grouped: Vec<String> = padded
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8(c.to_vec()).unwrap())
                .collect();
            let grouped = grouped.join(" ");
            assert_eq!(TotpSecret::from_base32(&grouped).unwrap().expose(), bytes);
        }
    }
    assert_eq!(TotpSecret::generate().expose().len(), SECRET_LEN);
    assert_ne!(
        TotpSecret::generate().expose(),
        TotpSecret::generate().expose()
    );
    // RFC 4648 section 10, extended to a secret's length: "foobar" repeated.
    let secret = TotpSecret::from_bytes(b"foobarfoobarfoobar".to_vec()).unwrap();
    assert_eq!(secret.expose_base32(), "MZXW6YTBOJTG633CMFZGM33PMJQXE");
}

#[test]
fn bad_secrets_are_refused() {
    for bad in [
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ0", // 0 is not base32
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ8",
        "GEZDGNBV-GY3TQOJQ-GEZDGNBV-GY3TQOJQ",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ", // a length no bytes encode to
        "GEZDGNBVGY3TQOJQ=GEZDGNBVGY3TQOJQ",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ========", // a whole group of padding
        "MZXW6YTBOJTG633CMFZGM33PMJQXE=",           // padding that does not end a group
        "MZXW6YTBOJTG633CMFZGM33PMJQXF",            // non-zero trailing bits
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\u{e9}",
    ] {
        assert_eq!(
            TotpSecret::from_base32(bad).unwrap_err(),
            SecretError::Base32,
            "{bad:?}"
        );
    }
    // Valid base32, wrong length.
    for (text, len) in [
        ("", 0),
        ("MZXW6YTBOI", 6),
        ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOI", 19),
    ] {
        let err = TotpSecret::from_base32(text).map(|_| ());
        let expected = if len >= MIN_SECRET_LEN {
            Ok(())
        } else {
            Err(SecretError::Length {
                len,
                min: MIN_SECRET_LEN,
                max: MAX_SECRET_LEN,
            })
        };
        assert_eq!(err, expected, "{text:?}");
    }
    assert!(matches!(
        TotpSecret::from_bytes(vec![1; 15]),
        Err(SecretError::Length { len: 15, .. })
    ));
    assert!(matches!(
        TotpSecret::from_bytes(vec![1; 65]),
        Err(SecretError::Length { len: 65, .. })
    ));
    assert_eq!(
        SecretError::Length {
            len: 3,
            min: 16,
            max: 64
        }
        .to_string(),
        "a TOTP secret has 16 to 64 bytes, not 3"
    );
}

#[test]
fn the_otpauth_uri_follows_the_contract() {
    let secret = TotpSecret::generate();
    let b32 = secret.expose_base32();
    assert_eq!(
        secret.otpauth_uri("Bulwark", "alice"),
        format!("otpauth://totp/Bulwark:alice?secret={b32}&issuer=Bulwark")
    );
    assert_eq!(
        secret.otpauth_uri("Bulwark", "alice_smith-2.0~x"),
        format!("otpauth://totp/Bulwark:alice_smith-2.0~x?secret={b32}&issuer=Bulwark")
    );
    // Whatever could break the label or the query is encoded, in both places.
    assert_eq!(
        secret.otpauth_uri("Big Co: Ops", "José&x=1?#/%+"),
        format!(
            "otpauth://totp/Big%20Co%3A%20Ops:Jos%C3%A9%26x%3D1%3F%23%2F%25%2B?secret={b32}&issuer=Big%20Co%3A%20Ops"
        )
    );
    // The secret in the URI is the secret.
    let uri = secret.otpauth_uri("Bulwark", "alice");
    let text = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert_eq!(
        TotpSecret::from_base32(text).unwrap().expose(),
        secret.expose()
    );
}

/// No secret, code or key in any `Debug` or `Display` output of the module.
#[test]
fn debug_never_shows_a_secret() {
    let secret = rfc_secret();
    let b32 = secret.expose_base32();
    let debug = format!("{secret:?} {secret:#?}");
    assert!(
        !debug.contains(&b32) && !debug.contains("1234567890"),
        "{debug}"
    );
    assert!(debug.contains("REDACTED"));

    let code = RecoveryCode::generate();
    let bare = code.expose().replace('-', "");
    let debug = format!("{code:?} {:?}", RecoveryCode::generate_set());
    assert!(
        !debug.contains(code.expose()) && !debug.contains(&bare),
        "{debug}"
    );

    let key = [0x5au8; 32];
    let hasher = RecoveryCodeHasher::new(&key);
    let debug = format!("{hasher:?}");
    assert_eq!(debug, "RecoveryCodeHasher([REDACTED])");

    let normalized = normalize_recovery_code(code.expose()).unwrap();
    assert!(!format!("{normalized:?}").contains(&bare));

    let totp = Totp::new();
    let current = totp.code_at(&secret, 59);
    for err in [
        totp.verify(&secret, "287083", 59).unwrap_err(),
        totp.verify(&secret, "2870", 59).unwrap_err(),
        TotpError::Replayed,
    ] {
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(&current) && !shown.contains("287083"),
            "{shown}"
        );
    }
    let err = TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ0").unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("GEZDGNBV"), "{shown}");
    let store = MemoryTotpStepStore::new();
    assert!(!format!("{store:?}").contains(&b32));
}

#[test]
fn recovery_codes_are_readable_random_and_distinct() {
    let codes = RecoveryCode::generate_set();
    assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
    assert_eq!(RECOVERY_CODE_COUNT, 10);
    let mut seen: Vec<&str> = codes.iter().map(RecoveryCode::expose).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 10, "distinct");
    // Every position takes every letter of the alphabet: 12 characters x 5 bits, all random.
    let mut at = vec![std::collections::HashSet::new(); 14];
    for _ in 0..2000 {
        let code = RecoveryCode::generate();
        let text = code.expose();
        assert_eq!(text.len(), 14, "{text}");
        for (i, c) in text.char_indices() {
            if i == 4 || i == 9 {
                assert_eq!(c, '-');
            } else {
                assert!(c.is_ascii_lowercase() || ('2'..='7').contains(&c), "{text}");
                at[i].insert(c);
            }
        }
    }
    for (i, letters) in at.iter().enumerate() {
        if i != 4 && i != 9 {
            assert_eq!(letters.len(), 32, "position {i}");
        }
    }
}

#[test]
fn typed_recovery_codes_are_normalised_then_hashed() {
    use secrecy::ExposeSecret as _;

    let code = RecoveryCode::generate();
    let bare = code.expose().replace('-', "");
    for typed in [
        code.expose().to_owned(),
        code.expose().to_uppercase(),
        bare.clone(),
        format!("  {}\t", code.expose().replace('-', " - ")),
        bare.chars()
            .map(|c| c.to_ascii_uppercase())
            .collect::<String>(),
    ] {
        let normalized = normalize_recovery_code(&typed).unwrap();
        assert_eq!(normalized.expose_secret(), bare, "{typed:?}");
    }
    for bad in [
        "",
        "abcd-efgh-234",
        "abcd-efgh-23456",
        "abcd-efgh-2340",
        "abcd-efgh-2341",
        "abcd_efgh_2345",
        "abcd-efgh-234é",
        "123456",
        &"a".repeat(100),
    ] {
        assert!(normalize_recovery_code(bad).is_none(), "{bad:?}");
    }

    let hasher = RecoveryCodeHasher::new(&[1; 32]);
    let codes = RecoveryCode::generate_set();
    let stored: Vec<String> = codes.iter().map(|c| hasher.hash(c)).collect();
    for (i, code) in codes.iter().enumerate() {
        assert_eq!(stored[i].len(), 64);
        assert!(
            stored[i]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(hasher.find(&code.expose().to_uppercase(), &stored), Some(i));
        assert_eq!(hasher.hash_input(code.expose()).as_ref(), Some(&stored[i]));
    }
    assert_eq!(
        hasher.find(RecoveryCode::generate().expose(), &stored),
        None
    );
    assert_eq!(hasher.find("not a code", &stored), None);
    assert_eq!(hasher.hash_input("not a code"), None);
    // Keyed: another key gives other hashes, and the hash is not a bare SHA-256 of the code.
    let other = RecoveryCodeHasher::new(&[2; 32]);
    assert_ne!(other.hash(&codes[0]), stored[0]);
    let bare0 = codes[0].expose().replace('-', "");
    assert_ne!(crate::secret::fingerprint(&bare0), stored[0]);
    // HMAC-SHA256 of the normalised code, under the key (RFC 4231 style check with our own key).
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[1; 32]),
        bare0.as_bytes(),
    );
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, stored[0]);
    // From the master secret: the key derived for the purpose.
    let master = crate::secret::MasterSecret::generate();
    let derived = RecoveryCodeHasher::new(&master.derive_key(RecoveryCodeHasher::KEY_PURPOSE));
    assert_eq!(
        RecoveryCodeHasher::from_master(&master).hash(&codes[0]),
        derived.hash(&codes[0])
    );
}
