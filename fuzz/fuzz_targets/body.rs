//! Body extraction (`bulwark::validation::{Json, Form, JsonOrForm}`) through a real axum router.
//!
//! Input: byte 0 picks the route (`& 7`, modulo 6), the `Content-Type` (`>> 3 & 7`) and, with
//! bit 6, a 64-byte body limit instead of axum's default; the rest is the body, raw bytes.
//!
//! Properties: never a panic; the answer is 200, or 400, 413, 415 or 422 in FastAPI's shapes:
//! `{"detail": "<message>"}` with the canonical message for 400/413/415, and for 422
//! `{"detail": [{"type", "loc", "msg", "input"?, "ctx"?}, ...]}` with `loc` starting at `body`;
//! no detail echoes an `input` under a secret key (`password`, `secret`, `token`) or holding
//! one, and the value of a secret field appears nowhere in the answer (unless another field of
//! the body contains it too).
#![no_main]

use std::{collections::HashMap, sync::LazyLock};

use axum::{Router, body::Body, extract::DefaultBodyLimit, routing::post};
use bulwark::validation::{Form, Json, JsonOrForm, is_secret_key};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt as _;

/// A body shaped like the server's: every field kind the extractors map to a pydantic error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct NewUser {
    username: Name,
    password: String,
    email: Option<String>,
    age: Option<u8>,
    score: Option<f64>,
    active: Option<bool>,
    role: Option<Role>,
    tags: Option<Vec<Tag>>,
    refresh_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
struct Name(#[allow(dead_code)] String);

impl TryFrom<String> for Name {
    type Error = &'static str;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.trim().is_empty() || value.len() > 32 {
            Err("must be 1 to 32 characters")
        } else {
            Ok(Self(value))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Role {
    Admin,
    User,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Tag {
    label: String,
    weight: Option<i32>,
}

const CONTENT_TYPES: [Option<&str>; 8] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/x-www-form-urlencoded"),
    Some("application/problem+json"),
    Some("text/plain"),
    None,
    Some("Application/X-WWW-Form-Urlencoded; charset=latin1"),
    Some("application/+json"),
];

const ROUTES: [&str; 6] = [
    "/json/user",
    "/json/value",
    "/json/list",
    "/form/user",
    "/form/map",
    "/either/user",
];

fn router() -> Router {
    async fn ok() -> &'static str {
        "ok"
    }
    Router::new()
        .route("/json/user", post(|_: Json<NewUser>| ok()))
        .route("/json/value", post(|_: Json<Value>| ok()))
        .route("/json/list", post(|_: Json<Vec<u32>>| ok()))
        .route("/form/user", post(|_: Form<NewUser>| ok()))
        .route("/form/map", post(|_: Form<HashMap<String, String>>| ok()))
        .route("/either/user", post(|_: JsonOrForm<NewUser>| ok()))
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    default_limit: Router,
    small_limit: Router,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| Fixture {
    runtime: tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime"),
    default_limit: router(),
    small_limit: router().layer(DefaultBodyLimit::max(64)),
});

fn holds_secret(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| is_secret_key(k) || holds_secret(v)),
        Value::Array(items) => items.iter().any(holds_secret),
        _ => false,
    }
}

fn check_detail(detail: &Value, answer: &str) {
    let item = detail
        .as_object()
        .unwrap_or_else(|| panic!("detail item: {answer}"));
    for key in item.keys() {
        assert!(
            ["type", "loc", "msg", "input", "ctx"].contains(&key.as_str()),
            "unexpected {key}: {answer}"
        );
    }
    assert!(item.get("type").is_some_and(Value::is_string), "{answer}");
    assert!(item.get("msg").is_some_and(Value::is_string), "{answer}");
    let loc = item["loc"]
        .as_array()
        .unwrap_or_else(|| panic!("loc: {answer}"));
    assert_eq!(loc.first(), Some(&Value::from("body")), "{answer}");
    assert!(loc.iter().all(|l| l.is_string() || l.is_u64()), "{answer}");
    if let Some(ctx) = item.get("ctx") {
        assert!(ctx.is_object(), "{answer}");
    }
    if let Some(input) = item.get("input") {
        let secret_loc = loc.iter().any(|l| l.as_str().is_some_and(is_secret_key));
        assert!(input.is_null() || !secret_loc, "secret echoed: {answer}");
        assert!(!holds_secret(input), "secret echoed: {answer}");
    }
}

/// Values under secret keys that the answer has no innocent reason to contain: no other key or
/// value of the body contains them (an echoed neighbour could), and they are made of letters and
/// digits (every fixed message is words without digits; a location index is digits alone).
fn secrets(body: &[u8], json: bool) -> Vec<String> {
    let mut secret = Vec::new();
    let mut other = Vec::new();
    if json {
        fn walk(value: &Value, secret: &mut Vec<String>, other: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        other.push(k.clone());
                        match v {
                            Value::String(s) if is_secret_key(k) => secret.push(s.clone()),
                            _ => walk(v, secret, other),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, secret, other)),
                Value::String(s) => other.push(s.clone()),
                _ => {}
            }
        }
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            walk(&value, &mut secret, &mut other);
        }
    } else {
        // Decoded as the extractor decodes them.
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        for (k, v) in pairs {
            if is_secret_key(&k) {
                secret.push(v);
            } else {
                other.push(v);
            }
            other.push(k);
        }
    }
    secret.retain(|s| {
        s.len() >= 6
            && s.bytes().all(|b| b.is_ascii_alphanumeric())
            && s.bytes().any(|b| b.is_ascii_digit())
            && s.bytes().any(|b| b.is_ascii_alphabetic())
            && !other.iter().any(|o| o.contains(s.as_str()))
    });
    secret
}

/// Every key and string of a JSON value, decoded.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out);
        }),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::String(s) => out.push(s.clone()),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let fx = &*FIXTURE;
    let route = ROUTES[usize::from(first & 7) % ROUTES.len()];
    let content_type = CONTENT_TYPES[usize::from((first >> 3) & 7)];
    let app = if first & 0x40 == 0 {
        fx.default_limit.clone()
    } else {
        fx.small_limit.clone()
    };
    let mut request = Request::post(route);
    if let Some(ct) = content_type {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    let request = request.body(Body::from(body.to_vec())).expect("request");
    let (status, bytes) = fx.runtime.block_on(async move {
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, bytes)
    });
    let answer = String::from_utf8_lossy(&bytes);
    if status == StatusCode::OK {
        assert_eq!(answer, "ok");
        return;
    }
    let parsed: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("{status} without a JSON body: {answer}"));
    let object = parsed.as_object().unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(object.len(), 1, "only `detail`: {answer}");
    let detail = &parsed["detail"];
    match status.as_u16() {
        400 => assert_eq!(detail, "Bad Request"),
        413 => assert_eq!(detail, "Request body too large"),
        415 => assert_eq!(detail, "Unsupported Media Type"),
        422 => {
            let items = detail
                .as_array()
                .unwrap_or_else(|| panic!("422 list: {answer}"));
            assert!(!items.is_empty(), "{answer}");
            items.iter().for_each(|item| check_detail(item, &answer));
        }
        other => panic!("status {other} for a body: {answer}"),
    }
    let json = content_type.is_some_and(|ct| ct.contains("json"));
    let mut said = Vec::new();
    strings(&parsed, &mut said);
    for secret in secrets(body, json) {
        assert!(
            !said.iter().any(|s| s.contains(&secret)),
            "secret {secret:?} in the answer {answer}"
        );
    }
});
