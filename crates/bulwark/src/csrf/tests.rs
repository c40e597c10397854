#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::{Router, routing::post};
use http::{HeaderMap, Request, header};
use tower::ServiceExt as _;

use super::*;
use crate::revocation::{MemoryRevocationStore, RevocationList, Revoker};

fn csrf() -> Csrf {
    Csrf::new(
        &MasterSecret::generate(),
        false,
        &["https://app.example".to_owned()],
        "session",
    )
}

fn with_cookie(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::COOKIE,
        format!("session=s; {COOKIE}={value}").parse().unwrap(),
    );
    h
}

fn cookie_value(set: &HeaderValue) -> String {
    set.to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

#[test]
fn a_token_verifies_only_with_its_own_cookie_and_key() {
    let csrf = csrf();
    let (token, set) = csrf.issue(&HeaderMap::new());
    let set = set.expect("a fresh cookie");
    let text = set.to_str().unwrap();
    assert!(text.contains("HttpOnly") && text.contains("SameSite=Lax") && text.contains("Path=/"));
    let cookie = cookie_value(&set);
    assert!(csrf.verify(&with_cookie(&cookie), &token));
    assert!(
        !csrf.verify(&with_cookie(&csrf.mint_cookie()), &token),
        "other cookie"
    );
    assert!(!csrf.verify(&HeaderMap::new(), &token), "no cookie");
    assert!(
        !Csrf::new(&MasterSecret::generate(), false, &[], "session")
            .verify(&with_cookie(&cookie), &token),
        "other key"
    );
    let mut tampered = URL_SAFE_NO_PAD.decode(&token).unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(!csrf.verify(&with_cookie(&cookie), &URL_SAFE_NO_PAD.encode(tampered)));
    assert!(!csrf.verify(&with_cookie(&cookie), "garbage"));
    assert!(!csrf.verify(&with_cookie(&cookie), ""));
    // An existing good cookie is reused: several tabs keep working.
    let (second, none) = csrf.issue(&with_cookie(&cookie));
    assert!(none.is_none());
    assert!(csrf.verify(&with_cookie(&cookie), &second));
}

/// Found by fuzzing (fuzz target `csrf`, binary mode): a token whose timestamp is near
/// `i64::MIN` overflowed the age computation — a panic wherever overflow checks are on — before
/// its MAC was even looked at. Any timestamp must simply be refused.
#[test]
fn a_token_with_an_extreme_timestamp_is_refused_without_overflow() {
    let csrf = csrf();
    let (_, set) = csrf.issue(&HeaderMap::new());
    let headers = with_cookie(&cookie_value(&set.expect("a fresh cookie")));
    for ts in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX] {
        let mut raw = ts.to_be_bytes().to_vec();
        raw.resize(TOKEN_LEN, 0);
        assert!(
            !csrf.verify(&headers, &URL_SAFE_NO_PAD.encode(&raw)),
            "{ts}"
        );
    }
}

#[tokio::test]
async fn a_spent_cookie_and_its_tokens_are_refused() {
    let list = Arc::new(RevocationList::new());
    let revoker = Arc::new(Revoker::new(Arc::new(MemoryRevocationStore::new()), list));
    let csrf = csrf().with_spent_store(revoker);
    let (token, set) = csrf.issue(&HeaderMap::new());
    let headers = with_cookie(&cookie_value(&set.unwrap()));
    assert!(csrf.verify(&headers, &token));
    let cleared = csrf.spend(&headers).await.unwrap();
    assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
    assert!(!csrf.verify(&headers, &token), "replay refused");
    let (_, fresh) = csrf.issue(&headers);
    assert!(fresh.is_some(), "a spent cookie is replaced, never reused");
}

#[test]
fn origins_are_checked_against_own_and_allowed() {
    let csrf = csrf();
    let h = |pairs: &[(&str, &str)]| {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, "api.example:8000".parse().unwrap());
        for (k, v) in pairs {
            m.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    };
    assert!(csrf.origin_allowed(&h(&[]), "http"));
    assert!(csrf.origin_allowed(&h(&[("origin", "http://api.example:8000")]), "http"));
    assert!(
        !csrf.origin_allowed(&h(&[("origin", "https://api.example:8000")]), "http"),
        "scheme differs"
    );
    assert!(csrf.origin_allowed(&h(&[("origin", "https://app.example")]), "http"));
    assert!(!csrf.origin_allowed(&h(&[("origin", "http://evil.example")]), "http"));
    assert!(!csrf.origin_allowed(&h(&[("origin", "null")]), "http"));
    // `Origin: null` (a `no-referrer` page's own form or fetch POST) is believed only when the
    // browser attests the request is same-origin.
    assert!(csrf.origin_allowed(
        &h(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
        "http"
    ));
    for site in ["same-site", "cross-site", "none"] {
        assert!(
            !csrf.origin_allowed(&h(&[("origin", "null"), ("sec-fetch-site", site)]), "http"),
            "Origin: null with Sec-Fetch-Site: {site}"
        );
    }
    assert!(csrf.origin_allowed(
        &h(&[("referer", "http://api.example:8000/login?x=1")]),
        "http"
    ));
    assert!(!csrf.origin_allowed(&h(&[("referer", "http://evil.example/page")]), "http"));
    assert!(!csrf.origin_allowed(&h(&[("sec-fetch-site", "cross-site")]), "http"));
    assert!(csrf.origin_allowed(
        &h(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://app.example")
        ]),
        "http"
    ));
}

async fn call(csrf: Arc<Csrf>, request: Request<Body>) -> StatusCode {
    let app = Router::new()
        .route("/items", post(|| async { "created" }))
        .layer(axum::middleware::from_fn_with_state(
            (csrf, Scheme("http")),
            protect,
        ));
    app.oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn the_layer_guards_unsafe_cookie_requests_only() {
    let csrf = Arc::new(csrf());
    let (token, set) = csrf.issue(&HeaderMap::new());
    let cookie = cookie_value(&set.unwrap());
    let base = || {
        Request::post("/items")
            .header(header::HOST, "api.example")
            .header(header::COOKIE, format!("session=s; {COOKIE}={cookie}"))
    };
    // No token: refused.
    assert_eq!(
        call(Arc::clone(&csrf), base().body(Body::empty()).unwrap()).await,
        403
    );
    // Header token: passes.
    assert_eq!(
        call(
            Arc::clone(&csrf),
            base().header(HEADER, &token).body(Body::empty()).unwrap()
        )
        .await,
        200
    );
    // Form field token: passes.
    let form = base()
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("name=x&csrf_token={token}")))
        .unwrap();
    assert_eq!(call(Arc::clone(&csrf), form).await, 200);
    // Good token but a foreign Origin: refused.
    let foreign = base()
        .header(HEADER, &token)
        .header(header::ORIGIN, "http://evil.example")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(Arc::clone(&csrf), foreign).await, 403);
    // Bearer requests and requests without the session cookie are exempt.
    let bearer = base()
        .header(header::AUTHORIZATION, "Bearer x")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(Arc::clone(&csrf), bearer).await, 200);
    let anonymous = Request::post("/items").body(Body::empty()).unwrap();
    assert_eq!(call(Arc::clone(&csrf), anonymous).await, 200);
}

/// Found in review: `issue` adopted any 43-character cookie the client sent and minted tokens
/// for it, so a cookie tossed from a sibling subdomain fixed the cookie-token pair.
#[test]
fn only_cookies_this_server_issued_are_adopted_or_verified() {
    let csrf = csrf();
    let other_server = Csrf::new(&MasterSecret::generate(), false, &[], "session");
    for planted in [
        crate::secret::random_token(32),
        crate::secret::random_token(64),
        other_server.mint_cookie(),
        String::new(),
        "x".repeat(86),
    ] {
        let (token, set) = csrf.issue(&with_cookie(&planted));
        let fresh = cookie_value(&set.expect("a planted cookie is replaced"));
        assert_ne!(fresh, planted);
        assert!(
            csrf.verify(&with_cookie(&fresh), &token),
            "the token is for the fresh cookie"
        );
        assert!(
            !csrf.verify(&with_cookie(&planted), &token),
            "never for the planted one"
        );
    }
    // A cookie this server issued is kept.
    let ours = csrf.mint_cookie();
    let (token, set) = csrf.issue(&with_cookie(&ours));
    assert!(set.is_none());
    assert!(csrf.verify(&with_cookie(&ours), &token));
    // Its MAC covers every byte.
    let mut raw = URL_SAFE_NO_PAD.decode(&ours).unwrap();
    raw[0] ^= 1;
    assert!(!csrf.issued_here(&URL_SAFE_NO_PAD.encode(raw)));
}
