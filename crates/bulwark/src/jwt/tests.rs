#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use super::*;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn setup() -> (JwtAuth, Arc<SigningKey>) {
    let ring = Arc::new(KeyRing::new());
    ring.replace(vec![SigningKey::generate_hs256(now())]);
    let key = ring.active().unwrap();
    (JwtAuth::new(ring, JwtConfig::new("iss", "aud")), key)
}

fn claims_json(overrides: serde_json::Value) -> serde_json::Value {
    let t = now();
    let mut base = json!({"sub": "1", "iat": t, "nbf": t, "exp": t + 600, "jti": "j", "iss": "iss", "aud": "aud"});
    if let (Some(b), Some(o)) = (base.as_object_mut(), overrides.as_object()) {
        for (k, v) in o {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

fn sign(key: &SigningKey, header: Header, claims: serde_json::Value) -> String {
    encode(
        &header,
        &claims,
        &EncodingKey::from_secret(key.expose_secret()).unwrap(),
    )
    .unwrap()
}

fn header_for(key: &SigningKey) -> Header {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(key.kid().to_owned());
    h
}

#[test]
fn issued_tokens_verify_and_carry_the_contract_claims() {
    let (auth, key) = setup();
    let issued = auth.issue("7", Some("bob"), &["admin".into()]).unwrap();
    let header = jsonwebtoken::decode_header(&issued.token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(key.kid()));
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let claims = auth.verify(&issued.token).unwrap();
    assert_eq!(claims.sub, "7");
    assert_eq!(claims.exp - claims.iat, 900);
    assert_eq!(claims.jti, issued.jti);
    assert!(claims.has_role("admin"));
}

#[test]
fn alg_none_is_rejected() {
    let (auth, key) = setup();
    let header = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
        key.kid()
    ));
    let payload = URL_SAFE_NO_PAD.encode(claims_json(json!({})).to_string());
    assert!(auth.verify(&format!("{header}.{payload}.")).is_err());
}

#[test]
fn unknown_or_missing_kid_is_rejected() {
    let (auth, key) = setup();
    let mut h = header_for(&key);
    h.kid = Some("nope".into());
    assert!(matches!(
        auth.verify(&sign(&key, h, claims_json(json!({})))),
        Err(JwtError::UnknownKey)
    ));
    let h = Header::new(Algorithm::HS256);
    assert!(matches!(
        auth.verify(&sign(&key, h, claims_json(json!({})))),
        Err(JwtError::UnknownKey)
    ));
}

#[test]
fn a_different_algorithm_than_the_keys_is_rejected() {
    let (auth, key) = setup();
    let mut h = header_for(&key);
    h.alg = Algorithm::HS512;
    assert!(matches!(
        auth.verify(&sign(&key, h, claims_json(json!({})))),
        Err(JwtError::AlgorithmMismatch)
    ));
}

#[test]
fn external_key_sources_are_never_followed() {
    let (auth, key) = setup();
    let mut h = header_for(&key);
    h.jku = Some("https://evil.example/jwks.json".into());
    assert!(matches!(
        auth.verify(&sign(&key, h, claims_json(json!({})))),
        Err(JwtError::ExternalKeySource)
    ));
    let mut h = header_for(&key);
    h.x5u = Some("https://evil.example/cert".into());
    assert!(matches!(
        auth.verify(&sign(&key, h, claims_json(json!({})))),
        Err(JwtError::ExternalKeySource)
    ));
}

#[test]
fn expired_future_and_misaddressed_tokens_are_rejected() {
    let (auth, key) = setup();
    let t = now();
    for bad in [
        json!({"exp": t - 120}),
        json!({"nbf": t + 120}),
        json!({"iss": "other"}),
        json!({"aud": "other"}),
    ] {
        let token = sign(&key, header_for(&key), claims_json(bad.clone()));
        assert!(auth.verify(&token).is_err(), "{bad}");
    }
    for missing in ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"] {
        let mut claims = claims_json(json!({}));
        claims.as_object_mut().unwrap().remove(missing);
        assert!(
            auth.verify(&sign(&key, header_for(&key), claims)).is_err(),
            "{missing}"
        );
    }
    // Within the leeway: accepted.
    let token = sign(&key, header_for(&key), claims_json(json!({"exp": t - 10})));
    assert!(auth.verify(&token).is_ok());
}

#[test]
fn tampered_or_foreign_signatures_are_rejected() {
    let (auth, key) = setup();
    let token = auth.issue("1", None, &[]).unwrap().token;
    let (head, _sig) = token.rsplit_once('.').unwrap();
    let forged_payload = URL_SAFE_NO_PAD.encode(claims_json(json!({"sub": "2"})).to_string());
    let (h, _) = head.split_once('.').unwrap();
    assert!(
        auth.verify(&format!("{h}.{forged_payload}.{_sig}"))
            .is_err()
    );
    let other = SigningKey::generate_hs256(now());
    let mut h = header_for(&key);
    h.kid = Some(key.kid().to_owned());
    let foreign = sign(&other, h, claims_json(json!({})));
    assert!(auth.verify(&foreign).is_err());
    assert!(auth.verify("garbage").is_err());
    assert!(auth.verify(&"a".repeat(10_000)).is_err());
}

#[test]
fn old_keys_keep_verifying_until_they_retire_and_revoked_keys_stop_at_once() {
    let ring = Arc::new(KeyRing::new());
    let t = now();
    let old = SigningKey::generate_hs256(t - 100);
    let old_secret = old.expose_secret().to_vec();
    let old_kid = old.kid().to_owned();
    ring.replace(vec![old]);
    let auth = JwtAuth::new(
        Arc::clone(&ring),
        JwtConfig::new("iss", "aud").access_ttl(Duration::from_secs(60)),
    );
    let token = auth.issue("1", None, &[]).unwrap().token;
    let newer = SigningKey::generate_hs256(t);
    let newer_kid = newer.kid().to_owned();
    let verifying = SigningKey::from_hs256_secret(
        old_kid.clone(),
        old_secret.clone(),
        KeyState::Verifying,
        t - 100,
        Some(t + 60),
    )
    .unwrap();
    ring.replace(vec![verifying, newer]);
    assert!(
        auth.verify(&token).is_ok(),
        "rotation must not log anyone out"
    );
    assert_eq!(ring.active().unwrap().kid(), newer_kid);
    let retired = SigningKey::from_hs256_secret(
        old_kid.clone(),
        old_secret.clone(),
        KeyState::Verifying,
        t - 100,
        Some(t - 1),
    )
    .unwrap();
    ring.replace(vec![retired]);
    assert!(matches!(auth.verify(&token), Err(JwtError::KeyNotValid)));
    let revoked =
        SigningKey::from_hs256_secret(old_kid, old_secret, KeyState::Revoked, t - 100, None)
            .unwrap();
    ring.replace(vec![revoked]);
    assert!(matches!(auth.verify(&token), Err(JwtError::KeyNotValid)));
    assert!(matches!(
        auth.issue("1", None, &[]),
        Err(JwtError::NoActiveKey)
    ));
}

#[test]
fn debug_output_never_shows_key_material_or_tokens() {
    let (auth, key) = setup();
    let issued = auth.issue("1", None, &[]).unwrap();
    assert!(!format!("{issued:?}").contains(&issued.token));
    let dbg = format!("{key:?}");
    assert!(!dbg.contains("secret") || dbg.contains(".."));
    assert!(!format!("{auth:?}").contains(&URL_SAFE_NO_PAD.encode(key.expose_secret())));
}

#[test]
fn a_remembered_token_still_expires() {
    let ring = Arc::new(KeyRing::new());
    ring.replace(vec![SigningKey::generate_hs256(now())]);
    let auth = JwtAuth::new(
        ring,
        JwtConfig::new("iss", "aud")
            .access_ttl(Duration::from_secs(1))
            .leeway(0),
    );
    let token = auth.issue("1", None, &[]).unwrap().token;
    assert!(auth.verify(&token).is_ok());
    assert!(
        auth.verify(&token).is_ok(),
        "second use, from the verified set"
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert!(
        auth.verify(&token).is_err(),
        "expired even though remembered"
    );
}
