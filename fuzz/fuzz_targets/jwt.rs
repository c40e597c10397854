//! JWT verification (`bulwark::jwt::JwtAuth::verify`) against arbitrary, tampered and forged
//! tokens.
//!
//! The ring holds four keys: an active HS256 key, a verifying EdDSA key, a retired HS256 key and
//! a revoked EdDSA key. Input: byte 0 picks the mode (`& 3`) and a selector (`>> 2`); the rest is
//! text in which `$ISS`, `$AUD`, `$NOW`, `$KID`, `$ALG` are replaced by real values.
//!
//! - mode 0, raw: the text is the token;
//! - mode 1, tamper: a token issued by one of the four keys (or a signed token with a wrong
//!   issuer) edited byte by byte (the text is the edit script);
//! - mode 2, forge: `header\nclaims` signed by an attacker (another HMAC key with the right
//!   `kid`, the EdDSA public key used as an HMAC secret, another Ed25519 key, no signature,
//!   `alg: none`, or signature bytes taken from the input);
//! - mode 3, signed: `header\nclaims` signed with the real secret of one ring key.
//!
//! Properties: never a panic; in modes 0-2 a token verifies only if it is byte for byte a token
//! the service issued; in mode 3 it verifies only when signed by a key that still verifies, with
//! that key's `kid` and algorithm, no external key source, and claims with the right issuer and
//! audience, not expired and not early (within the leeway).
#![no_main]

#[path = "common.rs"]
mod common;

use std::{
    collections::HashSet,
    sync::{Arc, LazyLock},
    time::Duration,
};

use aws_lc_rs::{hmac, signature::Ed25519KeyPair};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use bulwark::jwt::{JwtAuth, JwtConfig, KeyRing, KeyState, SigningKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ISS: &str = "https://fuzz.example";
const AUD: &str = "fuzz-api";
const LEEWAY: i64 = 30;

struct Fixture {
    auth: JwtAuth,
    /// Active HS256, verifying EdDSA, retired HS256, revoked EdDSA.
    keys: [Arc<SigningKey>; 4],
    /// Tokens that must verify.
    genuine: HashSet<String>,
    /// Genuine tokens first, then tokens that must not verify (dead keys, wrong issuer).
    bases: Vec<String>,
    attacker_hmac: hmac::Key,
    attacker_ed: Ed25519KeyPair,
}

fn config() -> JwtConfig {
    // Long-lived tokens: a long fuzz run must not see its genuine tokens expire.
    JwtConfig::new(ISS, AUD)
        .access_ttl(Duration::from_secs(7 * 86_400))
        .leeway(LEEWAY as u64)
}

/// Tokens signed by `key` while it was active, under `config`.
fn issue_with(key: &SigningKey, config: JwtConfig) -> Vec<String> {
    let ring = Arc::new(KeyRing::new());
    ring.replace(vec![key.with_state(KeyState::Active, None)]);
    let auth = JwtAuth::new(ring, config);
    let roles = ["admin".to_owned(), "user".to_owned()];
    vec![
        auth.issue("1", Some("alice"), &roles).expect("issue").token,
        auth.issue("2", None, &[]).expect("issue").token,
    ]
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let now = common::now();
    let active = SigningKey::generate_hs256(now - 10);
    let verifying = SigningKey::generate_ed25519(now - 20);
    let retired = SigningKey::generate_hs256(now - 30);
    let revoked = SigningKey::generate_ed25519(now - 40);
    let mut genuine = issue_with(&active, config());
    genuine.extend(issue_with(&verifying, config()));
    let mut dead = issue_with(&retired, config());
    dead.extend(issue_with(&revoked, config()));
    dead.extend(issue_with(
        &active,
        JwtConfig::new("https://other.example", AUD),
    ));
    dead.extend(issue_with(&verifying, JwtConfig::new(ISS, "other-api")));
    let keys = [
        Arc::new(active),
        Arc::new(verifying.with_state(KeyState::Verifying, Some(now + 30 * 86_400))),
        Arc::new(retired.with_state(KeyState::Retired, None)),
        Arc::new(revoked.with_state(KeyState::Revoked, None)),
    ];
    let ring = Arc::new(KeyRing::new());
    ring.replace(
        keys.iter()
            .map(|k| k.with_state(k.state(), k.retires_at()))
            .collect(),
    );
    let auth = JwtAuth::new(ring, config());
    for token in &genuine {
        assert!(auth.verify(token).is_ok(), "a genuine token must verify");
    }
    for token in &dead {
        assert!(auth.verify(token).is_err(), "a dead token must not verify");
    }
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let attacker_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("keygen");
    Fixture {
        auth,
        keys,
        bases: genuine.iter().chain(&dead).cloned().collect(),
        genuine: genuine.into_iter().collect(),
        attacker_hmac: hmac::Key::new(hmac::HMAC_SHA256, b"attacker-chosen-secret-000000000"),
        attacker_ed: Ed25519KeyPair::from_pkcs8(attacker_pkcs8.as_ref()).expect("pkcs8"),
    }
});

fn vars(key: &SigningKey) -> Vec<(&'static str, String)> {
    vec![
        ("ISS", ISS.to_owned()),
        ("AUD", AUD.to_owned()),
        ("NOW", common::now().to_string()),
        ("KID", key.kid().to_owned()),
        ("ALG", key.alg_name().to_owned()),
    ]
}

/// `header` and `claims` from the text (`header\nclaims`), or a default header and the whole
/// text as claims.
fn parts(text: &str, key: &SigningKey) -> (String, String) {
    let (header, claims) = text
        .split_once('\n')
        .unwrap_or((r#"{"alg":"$ALG","typ":"JWT","kid":"$KID"}"#, text));
    let vars = vars(key);
    (common::expand(header, &vars), common::expand(claims, &vars))
}

fn signing_input(header: &str, claims: &str) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

fn assert_only_genuine(fx: &Fixture, token: &str) {
    if let Ok(claims) = fx.auth.verify(token) {
        assert!(
            fx.genuine.contains(token),
            "a token the service never issued verified: {token:?} -> {claims:?}"
        );
    }
}

fn forge(fx: &Fixture, selector: u8, text: &str) {
    let key = &fx.keys[usize::from(selector) % 4];
    let (header, claims) = parts(text, key);
    let input = signing_input(&header, &claims);
    let signature = match (selector >> 2) % 6 {
        0 => hmac::sign(&fx.attacker_hmac, input.as_bytes())
            .as_ref()
            .to_vec(),
        // Algorithm confusion: the EdDSA public key used as an HMAC secret.
        1 => {
            let public = fx.keys[1].public_jwk().expect("EdDSA key has a JWK");
            let x = URL_SAFE_NO_PAD
                .decode(public["x"].as_str().expect("x"))
                .expect("x is base64url");
            let confused = hmac::Key::new(hmac::HMAC_SHA256, &x);
            hmac::sign(&confused, input.as_bytes()).as_ref().to_vec()
        }
        2 => fx.attacker_ed.sign(input.as_bytes()).as_ref().to_vec(),
        3 => Vec::new(),
        4 => {
            // alg: none, whatever the text's header says.
            let none = signing_input(r#"{"alg":"none","typ":"JWT"}"#, &claims);
            assert_only_genuine(fx, &format!("{none}."));
            return;
        }
        _ => text.bytes().rev().take(64).collect(),
    };
    assert_only_genuine(
        fx,
        &format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)),
    );
}

fn sign_with_ring_key(key: &SigningKey, input: &str) -> Vec<u8> {
    match key.alg_name() {
        "HS256" => {
            let mac = hmac::Key::new(hmac::HMAC_SHA256, key.expose_secret());
            hmac::sign(&mac, input.as_bytes()).as_ref().to_vec()
        }
        _ => Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.expose_secret())
            .expect("the ring's EdDSA key")
            .sign(input.as_bytes())
            .as_ref()
            .to_vec(),
    }
}

fn signed(fx: &Fixture, selector: u8, text: &str) {
    let key = &fx.keys[usize::from(selector) % 4];
    let (header, claims) = parts(text, key);
    let input = signing_input(&header, &claims);
    let token = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(sign_with_ring_key(key, &input))
    );
    let Ok(verified) = fx.auth.verify(&token) else {
        return;
    };
    let now = common::now();
    assert!(
        key.verifies_at(now),
        "a token of a {:?} key verified: {token}",
        key.state()
    );
    let header: Value = serde_json::from_str(&header).expect("a verified header is JSON");
    assert_eq!(header["alg"], key.alg_name(), "alg of the key: {header}");
    assert_eq!(header["kid"], key.kid(), "kid of the signer: {header}");
    for source in ["jku", "jwk", "x5u", "x5c"] {
        assert!(header.get(source).is_none(), "{source} accepted: {header}");
    }
    assert_eq!(verified.iss, ISS, "{claims}");
    assert_eq!(verified.aud, AUD, "{claims}");
    assert!(
        verified.exp >= now - LEEWAY,
        "expired token verified: {claims}"
    );
    assert!(
        verified.nbf <= now + LEEWAY,
        "early token verified: {claims}"
    );
    let raw: Value = serde_json::from_str(&claims).expect("verified claims are JSON");
    for claim in ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"] {
        assert!(raw.get(claim).is_some(), "{claim} missing: {claims}");
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = &*FIXTURE;
    let Some(&first) = data.first() else {
        return;
    };
    let (mode, selector) = (first & 3, first >> 2);
    match mode {
        0 => assert_only_genuine(fx, &common::text(data)),
        1 => {
            let base = &fx.bases[usize::from(selector) % fx.bases.len()];
            let token = common::mutate(base, &data[1..]);
            assert_only_genuine(fx, &token);
        }
        2 => forge(fx, selector, &common::text(data)),
        _ => signed(fx, selector, &common::text(data)),
    }
});
