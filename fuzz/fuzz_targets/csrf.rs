//! CSRF tokens (`bulwark::csrf::Csrf`): verification of arbitrary and tampered token/cookie
//! pairs, the issue/verify round trip, and the origin check.
//!
//! Input: byte 0 picks the mode (`& 7`, modulo 5) and a selector (`>> 3`); the rest is text where
//! `$COOKIE`, `$COOKIE2`, `$TOKEN`, `$TOKEN2` and `$FOREIGN` (a token for `$COOKIE` signed under
//! another master secret) stand for real values.
//!
//! - mode 0, pair: every line but the last is a `Cookie` header, the last line is the token;
//! - mode 1, tamper: a genuine pair with its token (or, by selector, its cookie) edited byte by
//!   byte (the text is the edit script);
//! - mode 2, issue: lines are `Cookie` headers; a token is issued for that request;
//! - mode 3, origin: lines are `Name: value` request headers for `Csrf::origin_allowed`;
//! - mode 4, binary: the input bytes, base64url-encoded, are the token sent with `$COOKIE`: the
//!   fuzzer controls the decoded timestamp, nonce and MAC directly.
//!
//! Properties: never a panic; a token verifies only if the signer issued exactly that token for
//! exactly that cookie; only a cookie the signer issued is ever kept; an issued token verifies
//! with the request's cookie, or with the fresh cookie it came with; a cross-site or `null` origin passes only in the documented cases.
#![no_main]

#[path = "common.rs"]
mod common;

use std::{
    collections::{HashMap, HashSet},
    sync::LazyLock,
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use bulwark::{
    cookie,
    csrf::{COOKIE, Csrf},
    secret::MasterSecret,
};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

const ALLOWED_ORIGIN: &str = "https://app.example";

struct Fixture {
    csrf: Csrf,
    /// Cookie value -> the raw (decoded) tokens issued for it.
    issued: HashMap<String, HashSet<Vec<u8>>>,
    /// (Cookie header, token) pairs to tamper with: genuine ones, then a foreign one.
    bases: Vec<(String, String)>,
    vars: Vec<(&'static str, String)>,
}

fn cookie_of(set: &HeaderValue) -> String {
    let text = set.to_str().expect("Set-Cookie is ASCII");
    let pair = text.split(';').next().expect("a pair");
    pair.split_once('=').expect("name=value").1.to_owned()
}

fn with_cookies<'a>(lines: impl IntoIterator<Item = &'a str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Ok(value) = HeaderValue::from_str(line) {
            headers.append(header::COOKIE, value);
        }
    }
    headers
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let csrf = Csrf::new(
        &MasterSecret::generate(),
        false,
        &[ALLOWED_ORIGIN.to_owned()],
        "session",
    );
    let (token, set) = csrf.issue(&HeaderMap::new());
    let cookie = cookie_of(&set.expect("a fresh cookie"));
    let cookie_header = format!("session=s; {COOKIE}={cookie}");
    let (token_b, none) = csrf.issue(&with_cookies([cookie_header.as_str()]));
    assert!(none.is_none(), "an existing cookie is reused");
    let (token2, set2) = csrf.issue(&HeaderMap::new());
    let cookie2 = cookie_of(&set2.expect("a fresh cookie"));
    let other = Csrf::new(&MasterSecret::generate(), false, &[], "session");
    let (foreign, _) = other.issue(&with_cookies([cookie_header.as_str()]));
    let raw = |t: &str| URL_SAFE_NO_PAD.decode(t).expect("base64url");
    let mut issued: HashMap<String, HashSet<Vec<u8>>> = HashMap::new();
    issued
        .entry(cookie.clone())
        .or_default()
        .extend([raw(&token), raw(&token_b)]);
    issued
        .entry(cookie2.clone())
        .or_default()
        .insert(raw(&token2));
    for (c, t) in [(&cookie, &token), (&cookie, &token_b), (&cookie2, &token2)] {
        assert!(csrf.verify(&with_cookies([format!("{COOKIE}={c}").as_str()]), t));
    }
    assert!(!csrf.verify(&with_cookies([cookie_header.as_str()]), &foreign));
    let bases = vec![
        (cookie_header.clone(), token.clone()),
        (format!("{COOKIE}={cookie2}"), token2.clone()),
        (cookie_header, foreign.clone()),
    ];
    let vars = vec![
        ("COOKIE", cookie),
        ("COOKIE2", cookie2),
        ("TOKEN", token),
        ("TOKEN2", token2),
        ("FOREIGN", foreign),
    ];
    Fixture {
        csrf,
        issued,
        bases,
        vars,
    }
});

/// A token that verifies was issued by this signer for the request's own cookie.
fn check_pair(fx: &Fixture, headers: &HeaderMap, token: &str) {
    if !fx.csrf.verify(headers, token) {
        return;
    }
    let cookie = cookie::get(headers, COOKIE).expect("a verified request has a cookie");
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim())
        .expect("a verified token is base64url");
    assert!(
        fx.issued
            .get(cookie)
            .is_some_and(|tokens| tokens.contains(&raw)),
        "a token verified that was not issued for this cookie: cookie={cookie:?} token={token:?}"
    );
}

fn round_trip(fx: &Fixture, text: &str) {
    let headers = with_cookies(text.lines());
    let (token, set) = fx.csrf.issue(&headers);
    match set {
        None => {
            let existing = cookie::get(&headers, COOKIE).expect("reused a cookie");
            // Only a cookie this signer issued is kept (it carries its own MAC): the fuzzer
            // cannot make one, so a kept cookie is one of the fixture's.
            assert!(
                fx.issued.contains_key(existing),
                "reused a cookie the server did not issue: {existing:?}"
            );
            assert!(fx.csrf.verify(&headers, &token), "issued token must verify");
        }
        Some(set) => {
            let text = set.to_str().expect("Set-Cookie is ASCII");
            assert!(
                text.contains("HttpOnly") && text.contains("SameSite=Lax"),
                "{text}"
            );
            let fresh = with_cookies([format!("{COOKIE}={}", cookie_of(&set)).as_str()]);
            assert!(fx.csrf.verify(&fresh, &token), "issued token must verify");
            if fx.csrf.verify(&headers, &token) {
                assert_eq!(
                    cookie::get(&headers, COOKIE),
                    Some(cookie_of(&set).as_str())
                );
            }
        }
    }
}

fn origin(fx: &Fixture, selector: u8, text: &str) {
    let mut headers = HeaderMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }
    let scheme = if selector & 1 == 1 { "https" } else { "http" };
    if !fx.csrf.origin_allowed(&headers, scheme) {
        return;
    }
    let text_of = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let fetch_site = text_of("sec-fetch-site").map(str::to_ascii_lowercase);
    let origin = text_of("origin");
    if origin.is_some_and(|o| o.trim().eq_ignore_ascii_case("null")) {
        assert_eq!(
            fetch_site.as_deref(),
            Some("same-origin"),
            "null origin passed"
        );
        return;
    }
    if let Some(origin) = origin {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let own = text_of("host").map(|h| format!("{scheme}://{}", h.to_ascii_lowercase()));
        assert!(
            origin == ALLOWED_ORIGIN || own.as_deref() == Some(origin.as_str()),
            "foreign origin {origin:?} passed (own {own:?})"
        );
        if fetch_site.as_deref() == Some("cross-site") {
            assert_eq!(origin, ALLOWED_ORIGIN, "cross-site request passed");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = &*FIXTURE;
    let Some(&first) = data.first() else {
        return;
    };
    let (mode, selector) = ((first & 7) % 5, first >> 3);
    if mode == 4 {
        let token = URL_SAFE_NO_PAD.encode(&data[1..]);
        check_pair(fx, &with_cookies([fx.bases[0].0.as_str()]), &token);
        return;
    }
    let text = common::expand(&common::text(data), &fx.vars);
    match mode {
        0 => {
            let lines: Vec<&str> = text.split('\n').collect();
            let (token, cookies) = lines.split_last().expect("split yields a line");
            check_pair(fx, &with_cookies(cookies.iter().copied()), token);
        }
        1 => {
            let (cookie_header, token) = &fx.bases[usize::from(selector >> 1) % fx.bases.len()];
            let (cookie_header, token) = if selector & 1 == 0 {
                (cookie_header.clone(), common::mutate(token, &data[1..]))
            } else {
                (common::mutate(cookie_header, &data[1..]), token.clone())
            };
            check_pair(fx, &with_cookies([cookie_header.as_str()]), &token);
        }
        2 => round_trip(fx, &text),
        _ => origin(fx, selector, &text),
    }
});
