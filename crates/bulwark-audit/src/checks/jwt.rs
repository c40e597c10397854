//! The API's JSON Web Tokens: algorithm none, forged signatures, weak secrets, lifetimes.
//!
//! Each check starts from the access tokens of the logged-in sessions. The ones that need the API
//! to tell an accepted token from a refused one first find an *oracle*: an authenticated `GET`
//! that answers 2xx with the real token and 401/403 without it (the document's secured `GET`s
//! without path parameters first, then one on an object the audit created, else a few usual
//! paths such as `/users/me`). A forged token is *accepted* when it gets the real token's status
//! and body (confirmed by sending it twice), *refused* on anything else.

pub mod crack;
pub mod wordlist;

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::{
    catalog::CheckId,
    context::{Context, Outcome, Session},
    generate::{Fill, request_for},
    objects,
    probe::{Auth, Exchange, ProbeError, ProbeRequest},
    report::{Evidence, Finding},
};

use self::{crack::HsAlg, wordlist::Wordlist};

/// base64url without padding (JWTs), lenient about padding when decoding.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The longest access-token lifetime not reported (24 h).
const MAX_LIFETIME_SECS: f64 = 24.0 * 3600.0;

/// Paths tried as an oracle when the document offers none.
const USUAL_PATHS: &[&str] = &[
    "/users/me",
    "/users/me/",
    "/me",
    "/api/users/me",
    "/api/me",
    "/user",
    "/profile",
];

/// The most documented operations tried as an oracle.
const MAX_ORACLE_TRIES: usize = 6;

/// A compact JWS, decoded but not verified.
#[derive(Debug, Clone)]
pub struct Jwt {
    /// The header's fields (`alg`, `typ`, `kid`, ...).
    pub header: Map<String, Value>,
    /// The claims.
    pub claims: Map<String, Value>,
    /// The header as sent (base64url).
    pub header_b64: String,
    /// The payload as sent (base64url).
    pub payload_b64: String,
    /// The signature's bytes.
    pub signature: Vec<u8>,
}

impl Jwt {
    /// Decodes `token` (`header.payload.signature`, header and payload JSON objects).
    pub fn parse(token: &str) -> Option<Jwt> {
        let mut parts = token.trim().split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let object = |part: &str| -> Option<Map<String, Value>> {
            match serde_json::from_slice(&B64.decode(part).ok()?).ok()? {
                Value::Object(map) => Some(map),
                _ => None,
            }
        };
        Some(Jwt {
            header: object(h)?,
            claims: object(p)?,
            header_b64: h.to_owned(),
            payload_b64: p.to_owned(),
            signature: B64.decode(s).ok()?,
        })
    }

    /// The header's `alg` (empty when missing).
    pub fn alg(&self) -> &str {
        self.header.get("alg").and_then(Value::as_str).unwrap_or("")
    }

    /// What the signature covers: `header.payload`, as sent.
    pub fn signing_input(&self) -> String {
        format!("{}.{}", self.header_b64, self.payload_b64)
    }

    /// The same header and payload with `signature`.
    fn with_signature(&self, signature: &[u8]) -> String {
        format!("{}.{}", self.signing_input(), B64.encode(signature))
    }

    /// The claim names, sorted (never their values).
    fn claim_names(&self) -> String {
        let mut names: Vec<&str> = self.claims.keys().map(String::as_str).collect();
        names.sort_unstable();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

/// base64url of a JSON value.
fn encode_json(value: &Value) -> String {
    B64.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// The sessions whose bearer token is a JWT, with it decoded (one per distinct token), or why
/// there are none.
fn jwt_sessions(cx: &Context) -> Result<Vec<(usize, Jwt)>, String> {
    if cx.sessions.is_empty() {
        return Err("no session: give --credentials with users or tokens".into());
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (i, session) in cx.sessions.iter().enumerate() {
        let Some(token) = session.auth.token.as_deref() else {
            continue;
        };
        if seen.contains(&token) {
            continue;
        }
        seen.push(token);
        if let Some(jwt) = Jwt::parse(token) {
            out.push((i, jwt));
        }
    }
    if out.is_empty() {
        Err("the sessions' credentials are not JWTs".into())
    } else {
        Ok(out)
    }
}

/// A session's credentials with its bearer token replaced by `token` (or removed).
fn auth_with(session: &Session, token: Option<&str>) -> Auth {
    Auth {
        token: token.map(str::to_owned),
        headers: session.auth.headers.clone(),
    }
}

/// Random bytes (the standard library's per-process random keys; no cryptographic need here).
fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut counter = 0u64;
    while out.len() < len {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(counter);
        counter += 1;
        out.extend_from_slice(&hasher.finish().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An authenticated `GET` that tells accepted tokens from refused ones.
#[derive(Debug, Clone)]
struct Oracle {
    /// Index of the session whose token it was found with.
    session: usize,
    /// The request, without credentials.
    request: ProbeRequest,
    /// `GET /path/template`.
    label: String,
    /// The answer with the real token.
    status: StatusCode,
    /// Its body.
    body: Bytes,
}

impl Oracle {
    /// The oracle's request carrying `token` (and the session's other headers).
    fn with_token(&self, cx: &Context, token: Option<&str>) -> ProbeRequest {
        self.request
            .clone()
            .with_auth(&auth_with(&cx.sessions[self.session], token))
    }

    /// Whether `token` is accepted: the answer the real token gets (status and body), twice.
    /// `expected` replaces the real token's body (a token carrying another user's claims).
    async fn accepts(
        &self,
        cx: &Context,
        token: &str,
        expected: Option<&Bytes>,
    ) -> Result<Option<Exchange>, ProbeError> {
        let first = cx.send(self.with_token(cx, Some(token))).await?;
        if !self.same_answer(cx, &first, expected).await? {
            return Ok(None);
        }
        let again = cx.send(self.with_token(cx, Some(token))).await?;
        if !self.same_answer(cx, &again, expected).await? {
            return Ok(None);
        }
        Ok(Some(first))
    }

    /// Whether `answer` is the real token's (or `expected`): same 2xx status and same body, or,
    /// when the real token's body changes from one request to the next, the same status.
    async fn same_answer(
        &self,
        cx: &Context,
        answer: &Exchange,
        expected: Option<&Bytes>,
    ) -> Result<bool, ProbeError> {
        if answer.status != self.status || !answer.status.is_success() {
            return Ok(false);
        }
        let body = expected.unwrap_or(&self.body);
        if answer.body == *body {
            return Ok(true);
        }
        if expected.is_some() {
            return Ok(false);
        }
        // Different body: is the real token's own answer stable?
        let real = cx
            .send(self.with_token(cx, cx.sessions[self.session].auth.token.as_deref()))
            .await?;
        Ok(real.status == self.status && real.body != self.body)
    }
}

/// Finds an oracle with session `index`'s real token: 2xx with it, 401/403 without it.
async fn find_oracle(cx: &Context, index: usize) -> Result<Option<Oracle>, ProbeError> {
    let session = &cx.sessions[index];
    let Some(token) = session.auth.token.as_deref() else {
        return Ok(None);
    };
    let mut candidates: Vec<(ProbeRequest, String)> = Vec::new();
    if let Some(api) = &cx.api {
        let mut gets: Vec<_> = api
            .operations
            .iter()
            .filter(|o| o.method == Method::GET && o.path_params().next().is_none())
            .collect();
        // Secured first, then the caller's own (`/me`), then document order.
        gets.sort_by_key(|o| (!o.secured, !o.path.trim_end_matches('/').ends_with("/me")));
        candidates.extend(
            gets.into_iter()
                .take(MAX_ORACLE_TRIES)
                .map(|o| (request_for(o, &Fill::default()), o.label())),
        );
    } else {
        candidates.extend(
            USUAL_PATHS
                .iter()
                .map(|p| (ProbeRequest::get(*p), format!("GET {p}"))),
        );
    }
    for (request, label) in candidates {
        if let Some(oracle) = try_oracle(cx, index, token, request, label).await? {
            return Ok(Some(oracle));
        }
    }
    // Last resort: a GET on an object the audit creates.
    let Some(api) = &cx.api else {
        return Ok(None);
    };
    for collection in objects::collections(api).into_iter().take(2) {
        let Some((object, _)) = objects::create(cx, collection, index, None).await? else {
            continue;
        };
        let Some(op) = api.find(&Method::GET, &object.item_path) else {
            continue;
        };
        let mut fill = Fill::default();
        fill.path.insert(object.param.clone(), object.id.clone());
        if let Some(oracle) =
            try_oracle(cx, index, token, request_for(op, &fill), op.label()).await?
        {
            return Ok(Some(oracle));
        }
    }
    Ok(None)
}

/// `request` as an oracle, if it answers 2xx with `token` and 401/403 without.
async fn try_oracle(
    cx: &Context,
    index: usize,
    token: &str,
    request: ProbeRequest,
    label: String,
) -> Result<Option<Oracle>, ProbeError> {
    let session = &cx.sessions[index];
    let with = cx
        .send(request.clone().with_auth(&auth_with(session, Some(token))))
        .await?;
    if !with.status.is_success() {
        return Ok(None);
    }
    let without = cx
        .send(request.clone().with_auth(&auth_with(session, None)))
        .await?;
    if !matches!(without.status.as_u16(), 401 | 403) {
        return Ok(None);
    }
    Ok(Some(Oracle {
        session: index,
        request,
        label,
        status: with.status,
        body: with.body,
    }))
}

/// The first oracle any JWT session gives, with that session's token.
async fn oracle_for(
    cx: &Context,
    sessions: &[(usize, Jwt)],
) -> Result<Option<(Oracle, Jwt)>, ProbeError> {
    for (index, jwt) in sessions {
        if let Some(oracle) = find_oracle(cx, *index).await? {
            return Ok(Some((oracle, jwt.clone())));
        }
    }
    Ok(None)
}

/// Why the token-acceptance checks cannot run without an oracle.
const NO_ORACLE: &str = "no authenticated GET answers 2xx with the token and 401/403 without it";

/// Evidence of `exchange` with a first line saying what the token was (never the token).
fn evidence_with_note(cx: &Context, exchange: &Exchange, note: &str) -> Evidence {
    let mut evidence = cx.evidence(exchange);
    evidence.request = format!("# {}\n{}", cx.secrets.mask(note), evidence.request);
    evidence
}

/// `jwt-alg-none`: the real token's claims under header `{"alg":"none"}` and no signature.
pub async fn alg_none(cx: &Context) -> Outcome {
    match alg_none_inner(cx).await {
        Ok(outcome) => outcome,
        Err(e) => e.into(),
    }
}

async fn alg_none_inner(cx: &Context) -> Result<Outcome, ProbeError> {
    let sessions = match jwt_sessions(cx) {
        Ok(s) => s,
        Err(why) => return Ok(Outcome::Skipped(why)),
    };
    let Some((oracle, jwt)) = oracle_for(cx, &sessions).await? else {
        return Ok(Outcome::Skipped(NO_ORACLE.into()));
    };
    if jwt.alg().eq_ignore_ascii_case("none") {
        return Ok(Outcome::Skipped(
            "the API's own tokens are unsigned (alg none)".into(),
        ));
    }
    let user = &cx.sessions[oracle.session].label;
    let mut tried = 0;
    for alg in ["none", "None", "NONE"] {
        let header = encode_json(&json!({"alg": alg, "typ": "JWT"}));
        for dot in [".", ""] {
            tried += 1;
            let token = format!("{header}.{}{dot}", jwt.payload_b64);
            if let Some(exchange) = oracle.accepts(cx, &token, None).await? {
                let note = format!(
                    "token: header {{\"alg\":\"{alg}\",\"typ\":\"JWT\"}}, {user}'s claims unchanged, no signature{}",
                    if dot.is_empty() {
                        " and no trailing dot"
                    } else {
                        ""
                    }
                );
                let finding = Finding::new(
                    CheckId::JwtAlgNone,
                    oracle.label.clone(),
                    evidence_with_note(cx, &exchange, &note),
                )
                .titled(format!(
                    "A token with alg \"{alg}\" and no signature is accepted as {user}"
                ));
                return Ok(Outcome::Found(vec![finding]));
            }
        }
    }
    Ok(Outcome::Passed(Some(format!(
        "{tried} unsigned tokens refused on {}",
        oracle.label
    ))))
}

/// `jwt-signature-not-verified`: the real token with its signature altered or replaced, and
/// (with two users) one user's claims under the other's signature.
pub async fn signature_not_verified(cx: &Context) -> Outcome {
    match signature_not_verified_inner(cx).await {
        Ok(outcome) => outcome,
        Err(e) => e.into(),
    }
}

async fn signature_not_verified_inner(cx: &Context) -> Result<Outcome, ProbeError> {
    let sessions = match jwt_sessions(cx) {
        Ok(s) => s,
        Err(why) => return Ok(Outcome::Skipped(why)),
    };
    let Some((oracle, jwt)) = oracle_for(cx, &sessions).await? else {
        return Ok(Outcome::Skipped(NO_ORACLE.into()));
    };
    if jwt.signature.is_empty() {
        return Ok(Outcome::Skipped(
            "the API's own tokens carry no signature".into(),
        ));
    }
    let user = cx.sessions[oracle.session].label.clone();
    let mut flipped = jwt.signature.clone();
    let len = flipped.len();
    for b in &mut flipped[len.saturating_sub(4)..] {
        *b ^= 0xA5;
    }
    let variants = [
        (
            flipped,
            format!("token: {user}'s header and claims, the last signature bytes flipped"),
        ),
        (
            random_bytes(len),
            format!("token: {user}'s header and claims, a signature of random bytes"),
        ),
    ];
    let mut tried = 0;
    for (signature, note) in variants {
        tried += 1;
        let token = jwt.with_signature(&signature);
        if let Some(exchange) = oracle.accepts(cx, &token, None).await? {
            let finding = Finding::new(
                CheckId::JwtSignatureNotVerified,
                oracle.label.clone(),
                evidence_with_note(cx, &exchange, &note),
            )
            .titled(format!(
                "A token with a forged signature is accepted as {user}"
            ));
            return Ok(Outcome::Found(vec![finding]));
        }
    }
    // Another user's claims under this user's signature.
    if let Some((other, other_jwt)) = sessions.iter().find(|(i, j)| {
        *i != oracle.session
            && j.claims.get("sub").is_some()
            && j.claims.get("sub") != jwt.claims.get("sub")
    }) {
        let other_label = cx.sessions[*other].label.clone();
        let real = cx
            .send(oracle.with_token(cx, cx.sessions[*other].auth.token.as_deref()))
            .await?;
        if real.status.is_success() && real.body != oracle.body {
            tried += 1;
            let token = format!(
                "{}.{}.{}",
                jwt.header_b64,
                other_jwt.payload_b64,
                B64.encode(&jwt.signature)
            );
            if let Some(exchange) = oracle.accepts(cx, &token, Some(&real.body)).await? {
                let note =
                    format!("token: {user}'s header and signature around {other_label}'s claims");
                let finding = Finding::new(
                    CheckId::JwtSignatureNotVerified,
                    oracle.label.clone(),
                    evidence_with_note(cx, &exchange, &note),
                )
                .titled(format!(
                    "A token whose claims were changed to {other_label}'s without re-signing is accepted"
                ));
                return Ok(Outcome::Found(vec![finding]));
            }
        }
    }
    Ok(Outcome::Passed(Some(format!(
        "{tried} tokens with forged signatures refused on {}",
        oracle.label
    ))))
}

/// `jwt-no-expiry`: the tokens' `exp` (decoded, not verified): missing, or over 24 h after
/// `iat` (or from now when there is no `iat`). No request.
pub async fn no_expiry(cx: &Context) -> Outcome {
    let sessions = match jwt_sessions(cx) {
        Ok(s) => s,
        Err(why) => return Outcome::Skipped(why),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut notes = Vec::new();
    for (index, jwt) in &sessions {
        let session = &cx.sessions[*index];
        let number = |name: &str| jwt.claims.get(name).and_then(Value::as_f64);
        let problem = match (number("exp"), number("iat")) {
            (None, _) => Some(if jwt.claims.contains_key("exp") {
                "has an `exp` claim that is not a number: it never expires".to_owned()
            } else {
                "has no `exp` claim: it never expires".to_owned()
            }),
            (Some(exp), Some(iat)) if exp - iat > MAX_LIFETIME_SECS => Some(format!(
                "lives {} (exp - iat = {:.0} s, over 24 h)",
                human(exp - iat),
                exp - iat
            )),
            (Some(exp), None) if exp - now > MAX_LIFETIME_SECS => Some(format!(
                "has no `iat` and expires in {} (exp - now = {:.0} s, over 24 h)",
                human(exp - now),
                exp - now
            )),
            (Some(exp), iat) => {
                notes.push(format!(
                    "{}'s token lives {}",
                    session.label,
                    human(exp - iat.unwrap_or(now))
                ));
                None
            }
        };
        if let Some(problem) = problem {
            let (operation, origin) = match &session.username {
                Some(_) => (
                    format!("POST {}", cx.token_url),
                    format!("issued by POST {}", cx.token_url),
                ),
                None => ("*".to_owned(), "given in the credentials".to_owned()),
            };
            let evidence = Evidence {
                request: cx.secrets.mask(&format!(
                    "{}'s access token ({origin}), decoded without verification",
                    session.label
                )),
                response: cx.secrets.mask(&format!(
                    "header alg: {}; claims: {}; {problem}",
                    jwt.alg(),
                    jwt.claim_names()
                )),
            };
            let title = format!("{}'s access token {problem}", session.label);
            let finding = Finding::new(CheckId::JwtNoExpiry, operation, evidence).titled(title);
            return Outcome::Found(vec![finding]);
        }
    }
    Outcome::Passed(Some(notes.join("; ")))
}

/// A duration in words (`15 min`, `7 d`).
fn human(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0} s")
    } else if secs < 7200.0 {
        format!("{:.0} min", secs / 60.0)
    } else if secs < 172_800.0 {
        format!("{:.0} h", secs / 3600.0)
    } else {
        format!("{:.0} d", secs / 86_400.0)
    }
}

/// `jwt-weak-secret`: every secret of the bundled wordlist against an HMAC token's signature
/// (offline, on every core, off the async workers); when one matches, a token re-signed with it
/// is sent once to show the API accepts it. The secret never appears in output.
pub async fn weak_secret(cx: &Context) -> Outcome {
    match weak_secret_inner(cx).await {
        Ok(outcome) => outcome,
        Err(e) => e.into(),
    }
}

async fn weak_secret_inner(cx: &Context) -> Result<Outcome, ProbeError> {
    let sessions = match jwt_sessions(cx) {
        Ok(s) => s,
        Err(why) => return Ok(Outcome::Skipped(why)),
    };
    let Some((index, jwt, alg)) = sessions
        .iter()
        .find_map(|(i, j)| HsAlg::from_name(j.alg()).map(|a| (*i, j.clone(), a)))
    else {
        let algs: Vec<&str> = sessions.iter().map(|(_, j)| j.alg()).collect();
        return Ok(Outcome::Skipped(format!(
            "the tokens are not HMAC-signed (alg {})",
            algs.join(", ")
        )));
    };
    let started = Instant::now();
    let signing_input = jwt.signing_input().into_bytes();
    let signature = jwt.signature.clone();
    let cracked =
        tokio::task::spawn_blocking(move || -> Result<(Option<String>, usize), String> {
            let list = Wordlist::get()?;
            let threads = std::thread::available_parallelism().map_or(1, usize::from);
            let found = crack::crack(alg, &signing_input, &signature, list.text(), threads);
            Ok((found.map(str::to_owned), list.len()))
        })
        .await;
    let (found, tried) = match cracked {
        Ok(Ok(result)) => result,
        Ok(Err(why)) => return Ok(Outcome::Skipped(why)),
        Err(e) => return Ok(Outcome::Skipped(format!("the secret search failed: {e}"))),
    };
    let elapsed = started.elapsed();
    let user = cx.sessions[index].label.clone();
    let Some(secret) = found else {
        return Ok(Outcome::Passed(Some(format!(
            "{} secret not among the {tried} candidates of the bundled wordlist ({} ms)",
            alg.name(),
            elapsed.as_millis()
        ))));
    };
    // Masked from here on, wherever it might turn up.
    cx.secrets.add(&secret);
    let mut title = format!(
        "The {} signing secret of {user}'s token is in the bundled wordlist of known and common secrets",
        alg.name()
    );
    let offline = format!(
        "offline: HMAC-{} of {user}'s token's signing input under a wordlist entry (not shown) equals its signature",
        &alg.name()[2..]
    );
    let sessions_for_oracle: Vec<(usize, Jwt)> = vec![(index, jwt.clone())];
    let evidence = match oracle_for(cx, &sessions_for_oracle).await? {
        Some((oracle, _)) => {
            // The same claims plus one of ours, signed with the secret found.
            let mut claims = jwt.claims.clone();
            claims.insert("bulwark_audit".into(), Value::String("forged".into()));
            let input = format!("{}.{}", jwt.header_b64, encode_json(&Value::Object(claims)));
            let forged_sig = alg.sign(secret.as_bytes(), input.as_bytes());
            let token = format!("{input}.{}", B64.encode(forged_sig));
            let exchange = cx.send(oracle.with_token(cx, Some(&token))).await?;
            let accepted = exchange.status == oracle.status && exchange.status.is_success();
            if accepted {
                title.push_str("; a token forged with it is accepted");
            }
            let note = format!(
                "{offline}; token: {user}'s claims plus a `bulwark_audit` claim, signed {} with that secret{}",
                alg.name(),
                if accepted { "" } else { " (not accepted here)" }
            );
            evidence_with_note(cx, &exchange, &note)
        }
        None => Evidence {
            request: cx.secrets.mask(&offline),
            response: NO_ORACLE.to_owned(),
        },
    };
    let operation = match &cx.sessions[index].username {
        Some(_) => format!("POST {}", cx.token_url),
        None => "*".to_owned(),
    };
    let finding = Finding::new(CheckId::JwtWeakSecret, operation, evidence).titled(title);
    Ok(Outcome::Found(vec![finding]))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::{
        Json, Router,
        extract::State,
        http::HeaderMap,
        response::{IntoResponse, Response},
        routing::get,
    };
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

    use super::*;
    use crate::{
        api::{Api, Operation},
        report::Finding,
        testing::{context, serve},
    };

    /// How the test API checks its tokens.
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        /// HS256 with a random secret, `exp` required: the right way.
        Verified,
        /// HS256 with the guide's "your-secret-key", `exp` not required.
        WeakSecretNoExp,
        /// Verified, except that a header `alg` of none (any case) skips verification.
        AcceptsAlgNone,
        /// Refuses alg none, but never checks the signature.
        SkipsSignature,
        /// Trusts any token whose signature is one it issued, whatever its claims.
        KnownSignatures,
    }

    struct App {
        mode: Mode,
        secret: Vec<u8>,
        issued: Vec<Vec<u8>>,
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    }

    fn sign(secret: &[u8], claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret).expect("key"),
        )
        .expect("sign")
    }

    fn verify(secret: &[u8], token: &str, require_exp: bool) -> Option<Value> {
        let mut validation = Validation::new(Algorithm::HS256);
        if !require_exp {
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
        }
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(secret).ok()?, &validation)
            .ok()
            .map(|d| d.claims)
    }

    async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let unverified = Jwt::parse(token);
        let claims = match app.mode {
            Mode::Verified | Mode::WeakSecretNoExp => {
                verify(&app.secret, token, app.mode == Mode::Verified)
            }
            Mode::AcceptsAlgNone => match &unverified {
                Some(jwt) if jwt.alg().eq_ignore_ascii_case("none") => {
                    Some(Value::Object(jwt.claims.clone()))
                }
                _ => verify(&app.secret, token, true),
            },
            Mode::SkipsSignature => unverified
                .filter(|j| j.alg() == "HS256")
                .map(|j| Value::Object(j.claims)),
            Mode::KnownSignatures => unverified
                .filter(|j| app.issued.contains(&j.signature))
                .map(|j| Value::Object(j.claims)),
        };
        match claims.as_ref().and_then(|c| c.get("sub")?.as_str()) {
            Some(sub) => Json(json!({"username": sub, "email": format!("{sub}@example.com")}))
                .into_response(),
            None => (StatusCode::UNAUTHORIZED, "Could not validate credentials").into_response(),
        }
    }

    fn api() -> Api {
        Api {
            title: "test".into(),
            operations: vec![Operation {
                method: Method::GET,
                path: "/users/me".into(),
                operation_id: None,
                params: Vec::new(),
                body: None,
                secured: true,
                responses: Vec::new(),
            }],
            ..Api::default()
        }
    }

    /// Serves an app in `mode` and gives a context with one token per user in `subs`.
    async fn setup(mode: Mode, subs: &[&str], with_api: bool) -> Context {
        let secret = if mode == Mode::WeakSecretNoExp {
            b"your-secret-key".to_vec()
        } else {
            random_bytes(32)
        };
        let tokens: Vec<String> = subs
            .iter()
            .map(|sub| {
                let claims = if mode == Mode::WeakSecretNoExp {
                    json!({"sub": sub})
                } else {
                    json!({"sub": sub, "iat": now(), "exp": now() + 900})
                };
                sign(&secret, &claims)
            })
            .collect();
        let issued = tokens
            .iter()
            .map(|t| Jwt::parse(t).expect("jwt").signature)
            .collect();
        let app = Router::new()
            .route("/users/me", get(me))
            .with_state(Arc::new(App {
                mode,
                secret,
                issued,
            }));
        let url = serve(app).await;
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        context(&url, with_api.then(api), &tokens)
    }

    fn found(outcome: Outcome) -> Finding {
        match outcome {
            Outcome::Found(mut f) => {
                assert_eq!(f.len(), 1);
                f.remove(0)
            }
            other => panic!("expected a finding, got {other:?}"),
        }
    }

    fn passed(outcome: Outcome) {
        assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
    }

    /// No finding text carries a token, or the secret when given.
    fn clean(f: &Finding, secret: Option<&str>) {
        for text in [&f.title, &f.evidence.request, &f.evidence.response] {
            assert!(!text.contains("eyJ"), "token in {text}");
            if let Some(s) = secret {
                assert!(!text.contains(s), "secret in {text}");
            }
        }
    }

    #[tokio::test]
    async fn a_properly_verifying_api_yields_no_jwt_finding() {
        let cx = setup(Mode::Verified, &["alice", "bob"], true).await;
        passed(alg_none(&cx).await);
        passed(signature_not_verified(&cx).await);
        passed(no_expiry(&cx).await);
        passed(weak_secret(&cx).await);
        assert!(cx.probe.sent() < 40, "{} requests", cx.probe.sent());
    }

    #[tokio::test]
    async fn the_guides_secret_and_a_token_without_exp_are_found() {
        let cx = setup(Mode::WeakSecretNoExp, &["alice"], true).await;
        let f = found(weak_secret(&cx).await);
        assert_eq!(f.id, CheckId::JwtWeakSecret);
        assert!(f.title.contains("wordlist"), "{}", f.title);
        assert!(
            f.title.contains("forged with it is accepted"),
            "{}",
            f.title
        );
        assert!(f.evidence.response.contains("HTTP 200"), "{f:?}");
        clean(&f, Some("your-secret-key"));
        let f = found(no_expiry(&cx).await);
        assert_eq!(f.id, CheckId::JwtNoExpiry);
        assert!(f.title.contains("no `exp`"), "{}", f.title);
        assert!(f.evidence.response.contains("claims: sub"), "{f:?}");
        clean(&f, None);
        // The signature is verified: neither forgery passes.
        passed(alg_none(&cx).await);
        passed(signature_not_verified(&cx).await);
    }

    #[tokio::test]
    async fn a_token_with_alg_none_accepted_is_found() {
        let cx = setup(Mode::AcceptsAlgNone, &["alice"], true).await;
        let f = found(alg_none(&cx).await);
        assert_eq!(f.id, CheckId::JwtAlgNone);
        assert_eq!(f.operation, "GET /users/me");
        assert!(f.evidence.request.contains("\"alg\":\"none\""), "{f:?}");
        clean(&f, None);
        passed(signature_not_verified(&cx).await);
        passed(no_expiry(&cx).await);
        passed(weak_secret(&cx).await);
    }

    #[tokio::test]
    async fn an_unverified_signature_is_found_without_a_document() {
        // No OpenAPI document: the oracle is found among the usual paths.
        let cx = setup(Mode::SkipsSignature, &["alice"], false).await;
        let f = found(signature_not_verified(&cx).await);
        assert_eq!(f.id, CheckId::JwtSignatureNotVerified);
        assert_eq!(f.operation, "GET /users/me");
        assert!(f.evidence.request.contains("flipped"), "{f:?}");
        clean(&f, None);
        passed(alg_none(&cx).await);
    }

    #[tokio::test]
    async fn another_users_claims_under_a_known_signature_are_found() {
        let cx = setup(Mode::KnownSignatures, &["alice", "bob"], true).await;
        let f = found(signature_not_verified(&cx).await);
        assert!(f.title.contains("user B's"), "{}", f.title);
        assert!(f.evidence.response.contains("bob@example.com"), "{f:?}");
        clean(&f, None);
        // With one user there is no claim to swap: nothing provable.
        let cx = setup(Mode::KnownSignatures, &["alice"], true).await;
        passed(signature_not_verified(&cx).await);
    }

    #[tokio::test]
    async fn a_lifetime_over_a_day_is_found_and_opaque_tokens_are_skipped() {
        let secret = random_bytes(32);
        let long = sign(
            &secret,
            &json!({"sub": "a", "iat": now(), "exp": now() + 30 * 86_400}),
        );
        let no_iat = sign(&secret, &json!({"sub": "a", "exp": now() + 2 * 86_400}));
        let short = sign(&secret, &json!({"sub": "a", "exp": now() + 3600}));
        let url = "http://127.0.0.1:9/";
        let f = found(no_expiry(&context(url, None, &[&long])).await);
        assert!(f.title.contains("30 d"), "{}", f.title);
        clean(&f, None);
        let f = found(no_expiry(&context(url, None, &[&no_iat])).await);
        assert!(f.title.contains("no `iat`"), "{}", f.title);
        passed(no_expiry(&context(url, None, &[&short])).await);
        let opaque = context(url, None, &["an-opaque-session-token"]);
        for outcome in [
            no_expiry(&opaque).await,
            weak_secret(&opaque).await,
            alg_none(&opaque).await,
            signature_not_verified(&opaque).await,
        ] {
            assert!(matches!(outcome, Outcome::Skipped(_)), "{outcome:?}");
        }
        assert!(matches!(
            no_expiry(&context(url, None, &[])).await,
            Outcome::Skipped(_)
        ));
    }

    #[test]
    fn tokens_decode_and_re_encode() {
        let token = sign(b"k", &json!({"sub": "a"}));
        let jwt = Jwt::parse(&token).expect("jwt");
        assert_eq!(jwt.alg(), "HS256");
        assert_eq!(jwt.claims["sub"], "a");
        assert_eq!(jwt.with_signature(&jwt.signature), token);
        assert_eq!(
            crack::HsAlg::Hs256.sign(b"k", jwt.signing_input().as_bytes()),
            jwt.signature
        );
        assert!(Jwt::parse("a.b").is_none());
        assert!(Jwt::parse("not-a-token").is_none());
        assert!(Jwt::parse(&format!("{token}.x")).is_none());
    }
}
