//! What verifying an access token through the key ring costs, against two baselines measured
//! in the same run:
//!
//! - `hmac_only`: the bare HMAC-SHA256 check of the token's signature (aws-lc-rs), no parsing;
//! - `jsonwebtoken_static_key`: `jsonwebtoken::decode` with one fixed key and HS256 validation
//!   (what a single-key service does);
//! - `bulwark_key_ring`: `JwtAuth::verify`: key by `kid`, algorithm bound to the key, every
//!   registered claim, and the revocation check. Warm: the same token again (the exact bytes
//!   were verified before, so only key state, times and revocation are re-checked); cold: each
//!   token for the first time.
//!
//! Run: `cargo bench -p bulwark-axum --bench jwt_verify`. Prints ns/verification (median of 7 runs)
//! and the ratios.

use std::{hint::black_box, sync::Arc, time::Instant};

use aws_lc_rs::hmac;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use bulwark::{
    jwt::{JwtAuth, JwtConfig, KeyRing, SigningKey, TokenSubject},
    revocation::{Revocation, RevocationList},
};

fn median_ns(iterations: u32, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[3]
}

fn main() {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let ring = Arc::new(KeyRing::new());
    ring.replace(vec![SigningKey::generate_hs256(now)]);
    let secret = ring
        .active()
        .map(|k| k.expose_secret().to_vec())
        .unwrap_or_default();
    let revocations = Arc::new(RevocationList::new());
    // A realistic list: some revoked tokens and subjects.
    for i in 0..1000 {
        revocations.apply(&Revocation::Token {
            jti: format!("revoked-{i}"),
            expires_at: now + 900,
        });
        revocations.apply(&Revocation::Subject {
            sub: format!("{i}"),
            min_version: 1,
        });
    }
    let auth = JwtAuth::new(Arc::clone(&ring), JwtConfig::new("bulwark", "bulwark-api"))
        .with_revocations(revocations);
    let token = auth
        .issue_for(&TokenSubject {
            sub: "123456".into(),
            name: Some("alice".into()),
            roles: vec!["user".into()],
            version: 3,
        })
        .map(|t| t.token)
        .unwrap_or_default();
    assert!(auth.verify(&token).is_ok(), "the benchmark token verifies");

    // Baseline 1: HMAC only.
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let (signing_input, signature) = token.rsplit_once('.').unwrap_or_default();
    let hmac_only = || {
        let sig = URL_SAFE_NO_PAD
            .decode(black_box(signature))
            .unwrap_or_default();
        black_box(hmac::verify(&key, black_box(signing_input).as_bytes(), &sig).is_ok());
    };

    // Baseline 2: jsonwebtoken with one static key.
    let decoding =
        jsonwebtoken::DecodingKey::from_secret(&secret).unwrap_or_else(|_| unreachable!());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&["bulwark"]);
    validation.set_audience(&["bulwark-api"]);
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]);
    let static_key = || {
        black_box(
            jsonwebtoken::decode::<bulwark::jwt::Claims>(black_box(&token), &decoding, &validation)
                .is_ok(),
        );
    };

    let ours = || {
        black_box(auth.verify(black_box(&token)).is_ok());
    };

    // Cold: every token seen for the first time (signature, claims, then remembered).
    let fresh: Vec<String> = (0..20_000)
        .map(|i| {
            auth.issue_for(&TokenSubject {
                sub: format!("{i}"),
                name: Some("alice".into()),
                roles: vec!["user".into()],
                version: 3,
            })
            .map(|t| t.token)
            .unwrap_or_default()
        })
        .collect();
    let mut next = 0usize;
    let cold = || {
        black_box(auth.verify(black_box(&fresh[next % fresh.len()])).is_ok());
        next += 1;
    };

    let n = 200_000;
    // Warm up.
    let _ = median_ns(n / 10, ours);
    let a = median_ns(n, hmac_only);
    let b = median_ns(n, static_key);
    let c = median_ns(n, ours);
    let d = median_ns(20_000, cold);
    println!("token length: {} bytes", token.len());
    println!("hmac_only                 {a:8.0} ns/verification");
    println!("jsonwebtoken_static_key   {b:8.0} ns/verification");
    println!(
        "bulwark_key_ring (warm)   {c:8.0} ns/verification (the same token again: key state, exp/nbf, revocation re-checked)"
    );
    println!(
        "bulwark_key_ring (cold)   {d:8.0} ns/verification (first sight: kid, bound algorithm, signature, claims, revocation)"
    );
    println!("ratio warm / hmac_only   = {:.3}", c / a);
    println!("ratio cold / hmac_only   = {:.3}", d / a);
    println!("ratio cold / static_key  = {:.3}", d / b);
}
