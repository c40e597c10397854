//! Cross-site request forgery protection for cookie-authenticated requests.
//!
//! **Threat model.** A browser attaches cookies to requests that other sites make it send: a
//! page on `evil.example` can submit a form or fire a credentialed `fetch` at your API while the
//! victim is logged in. Requests authenticated by a cookie must therefore prove that they come
//! from your own pages. [`protect`] enforces, on every unsafe method (POST, PUT, PATCH, DELETE)
//! of a request that carries the session cookie and no bearer token — no handler has to
//! remember:
//!
//! 1. **Origin**: when the browser sends `Origin` (or, failing that, `Referer`), it must be the
//!    server's own origin (the request's scheme and `Host`) or one of `allowed_origins`; a
//!    `Sec-Fetch-Site: cross-site` request from any other origin is refused too. `Origin: null`
//!    passes only with `Sec-Fetch-Site: same-origin`: browsers send `null` for a page's own form
//!    or `fetch` POST when its referrer policy is `no-referrer` (every page behind
//!    [`crate::headers`]), and for sandboxed frames and pages that chose `no-referrer`;
//! 2. **Token**: a signed double-submit token in `X-CSRF-Token` (or the `csrf_token` field of a
//!    urlencoded form): HMAC-SHA256 under a key derived from the master secret, over the random
//!    value of the `HttpOnly` CSRF cookie, a timestamp and a nonce, checked in constant time. A
//!    cross-site page can neither read the cookie nor forge the token.
//!
//! **Only cookies the server issued.** The cookie's value carries its own MAC (a random value
//! and an HMAC of it under a second derived key). A cookie a sibling subdomain or a network
//! attacker planted in the browser ("cookie tossing") has none: it is never adopted, no token is
//! minted for it (`GET /csrftoken/` and the login form set a fresh cookie instead), and no token
//! verifies against it, so an attacker cannot fix the cookie-token pair in advance.
//!
//! A refusal is 403 `{"detail": "CSRF token missing or invalid"}` and the handler never runs.
//! Bearer requests carry no ambient authority and are exempt. `POST /login` spends its CSRF
//! cookie ([`Csrf::spend`]): a replayed cookie and token are refused.
//!
//! **Deployment.** Behind a proxy that rewrites `Host`, the server's own origin is the proxy's
//! view: list your public origin in `allowed_origins`. Tokens live two hours. `SameSite=Lax`
//! cookies already stop most cross-site POSTs in current browsers; the token check does not
//! depend on it.

use std::{sync::Arc, time::Duration};

use aws_lc_rs::hmac;
use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::{
    cookie,
    error::HttpError,
    revocation::{Revocation, Revoker},
    secret::MasterSecret,
};

/// The CSRF cookie's name.
pub const COOKIE: &str = "csrftoken";
/// The request header carrying the token.
pub const HEADER: &str = "x-csrf-token";
/// The form field carrying the token.
pub const FIELD: &str = "csrf_token";
/// The public refusal.
pub const REFUSAL: &str = "CSRF token missing or invalid";

const NONCE_LEN: usize = 16;
const MAC_LEN: usize = 32;
const TOKEN_LEN: usize = 8 + NONCE_LEN + MAC_LEN;
/// The cookie's random part; the cookie is that and its MAC, base64url.
const COOKIE_RANDOM_LEN: usize = 32;
const COOKIE_LEN: usize = COOKIE_RANDOM_LEN + MAC_LEN;

/// Issues and checks CSRF tokens; configured once at start-up.
#[derive(Debug)]
pub struct Csrf {
    key: hmac::Key,
    /// Signs the cookies this server issues.
    cookie_key: hmac::Key,
    secure: bool,
    max_age: Duration,
    allowed_origins: Vec<String>,
    session_cookie: String,
    spent: Option<Arc<Revoker>>,
}

/// Marks a response the CSRF layer refused, so that outer layers (an audit trail, metrics) can
/// tell it from other 403s without reading the body.
#[derive(Debug, Clone, Copy)]
pub struct Refused;

fn layer_refusal() -> Response {
    let mut response = refusal();
    response.extensions_mut().insert(Refused);
    response
}

/// The 403 answer.
pub fn refusal() -> Response {
    HttpError::new(StatusCode::FORBIDDEN, REFUSAL).into_response()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Csrf {
    /// Tokens signed with a key derived from `secret`; `secure` marks the cookie `Secure`;
    /// `allowed_origins` are trusted besides the server's own origin; `session_cookie` names the
    /// cookie whose presence makes unsafe requests need a token.
    pub fn new(
        secret: &MasterSecret,
        secure: bool,
        allowed_origins: &[String],
        session_cookie: impl Into<String>,
    ) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret.derive_key("csrf")),
            cookie_key: hmac::Key::new(hmac::HMAC_SHA256, &secret.derive_key("csrf-cookie")),
            secure,
            max_age: Duration::from_secs(2 * 3600),
            allowed_origins: allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            session_cookie: session_cookie.into(),
            spent: None,
        }
    }

    /// Records spent cookies in `revoker` (shared between instances), so a replayed login
    /// cookie is refused everywhere.
    #[must_use]
    pub fn with_spent_store(mut self, revoker: Arc<Revoker>) -> Self {
        self.spent = Some(revoker);
        self
    }

    fn spent_id(cookie: &str) -> String {
        format!("csrf:{}", crate::secret::fingerprint(cookie))
    }

    fn is_spent(&self, cookie: &str) -> bool {
        self.spent
            .as_ref()
            .is_some_and(|r| r.list().contains_jti(&Self::spent_id(cookie)))
    }

    /// A fresh cookie value: random bytes and their MAC.
    fn mint_cookie(&self) -> String {
        let random = crate::secret::random_bytes(COOKIE_RANDOM_LEN);
        let mut value = Vec::with_capacity(COOKIE_LEN);
        value.extend_from_slice(&random);
        value.extend_from_slice(hmac::sign(&self.cookie_key, &cookie_message(&random)).as_ref());
        URL_SAFE_NO_PAD.encode(value)
    }

    /// Whether `cookie` is one this server issued (its MAC checks out, in constant time).
    fn issued_here(&self, cookie: &str) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(cookie) else {
            return false;
        };
        if raw.len() != COOKIE_LEN {
            return false;
        }
        let (random, mac) = raw.split_at(COOKIE_RANDOM_LEN);
        hmac::verify(&self.cookie_key, &cookie_message(random), mac).is_ok()
    }

    /// A token for the request's CSRF cookie, and the `Set-Cookie` to send when the request had
    /// no usable cookie: none, one this server did not issue, or a spent one (a fresh one is
    /// made).
    pub fn issue(&self, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
        let existing =
            cookie::get(headers, COOKIE).filter(|c| self.issued_here(c) && !self.is_spent(c));
        let (value, set_cookie) = match existing {
            Some(c) => (c.to_owned(), None),
            None => {
                let c = self.mint_cookie();
                let set = cookie::set(COOKIE, &c, self.max_age.as_secs(), self.secure);
                (c, Some(set))
            }
        };
        let ts = now().to_be_bytes();
        let nonce = crate::secret::random_bytes(NONCE_LEN);
        let mut token = Vec::with_capacity(TOKEN_LEN);
        token.extend_from_slice(&ts);
        token.extend_from_slice(&nonce);
        token.extend_from_slice(
            hmac::sign(&self.key, &signed_message(&value, &ts, &nonce)).as_ref(),
        );
        (URL_SAFE_NO_PAD.encode(token), set_cookie)
    }

    /// True when `token` was issued for the request's CSRF cookie, which this server issued, is
    /// younger than two hours, and the cookie was not spent. Constant-time in the MAC
    /// comparisons.
    pub fn verify(&self, headers: &HeaderMap, token: &str) -> bool {
        let Some(cookie) = cookie::get(headers, COOKIE) else {
            return false;
        };
        if !self.issued_here(cookie) {
            return false;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        if raw.len() != TOKEN_LEN || self.is_spent(cookie) {
            return false;
        }
        let (ts, rest) = raw.split_at(8);
        let (nonce, mac) = rest.split_at(NONCE_LEN);
        let issued = i64::from_be_bytes(ts.try_into().unwrap_or([0; 8]));
        // The timestamp is attacker-controlled until the MAC is checked: a value far in the
        // past or future must be refused, not overflow.
        let Some(age) = now().checked_sub(issued) else {
            return false;
        };
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        if age > max_age || age < -60 {
            return false;
        }
        hmac::verify(&self.key, &signed_message(cookie, ts, nonce), mac).is_ok()
    }

    /// Marks the request's CSRF cookie spent (everywhere, when a spent store is set) and answers
    /// the `Set-Cookie` that clears it.
    ///
    /// # Errors
    /// When the spent store cannot be written.
    pub async fn spend(
        &self,
        headers: &HeaderMap,
    ) -> Result<HeaderValue, crate::store::StoreError> {
        if let (Some(cookie), Some(revoker)) = (cookie::get(headers, COOKIE), &self.spent) {
            let expires_at = now() + i64::try_from(self.max_age.as_secs()).unwrap_or(0);
            revoker
                .revoke(Revocation::Token {
                    jti: Self::spent_id(cookie),
                    expires_at,
                })
                .await?;
        }
        Ok(cookie::clear(COOKIE, self.secure))
    }

    /// True when the browser-supplied origin of the request (from `Origin`, else `Referer`) is
    /// acceptable: absent, the server's own, or allowed. `Sec-Fetch-Site: cross-site` needs an
    /// allowed origin.
    ///
    /// `Origin: null` is accepted only with `Sec-Fetch-Site: same-origin`: browsers send `null`
    /// for a same-origin form or `fetch` POST from a page whose referrer policy is `no-referrer`
    /// (every page of this server), and also for sandboxed frames and cross-origin pages that
    /// chose `no-referrer`; `Sec-Fetch-Site`, which page content cannot set, tells them apart.
    pub fn origin_allowed(&self, headers: &HeaderMap, scheme: &str) -> bool {
        let fetch_site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let null_origin = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| o.trim().eq_ignore_ascii_case("null"));
        if null_origin {
            return fetch_site.as_deref() == Some("same-origin");
        }
        let own = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|host| format!("{scheme}://{}", host.to_ascii_lowercase()));
        let claimed = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .or_else(|| {
                headers
                    .get(header::REFERER)
                    .and_then(|r| r.to_str().ok())
                    .and_then(origin_of)
            });
        let cross_site = fetch_site.as_deref() == Some("cross-site");
        match claimed {
            None => !cross_site,
            Some(origin) => {
                let listed = self.allowed_origins.contains(&origin);
                listed || (!cross_site && own.as_deref() == Some(origin.as_str()))
            }
        }
    }

    /// The name of the cookie that makes a request cookie-authenticated.
    pub fn session_cookie(&self) -> &str {
        &self.session_cookie
    }

    /// Whether cookies are marked `Secure`.
    pub fn secure(&self) -> bool {
        self.secure
    }
}

fn cookie_message(random: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(23 + random.len());
    m.extend_from_slice(b"bulwark-csrf-cookie-v1\0");
    m.extend_from_slice(random);
    m
}

fn signed_message(cookie: &str, ts: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + cookie.len() + 1 + ts.len() + nonce.len());
    m.extend_from_slice(b"bulwark-csrf-v1\0");
    m.extend_from_slice(cookie.as_bytes());
    m.push(0);
    m.extend_from_slice(ts);
    m.extend_from_slice(nonce);
    m
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| {
        format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        )
    })
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The request's scheme as the browser sees it, for the own-origin comparison.
#[derive(Debug, Clone, Copy)]
pub struct Scheme(pub &'static str);

/// The CSRF token endpoint (route it at `GET /csrf-token`): `{"csrf_token": "..."}` for the
/// request's CSRF cookie, with the cookie set when the request had no usable one. A page sends
/// the token back in the `X-CSRF-Token` header or the `csrf_token` form field.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use bulwark::{csrf::{self, Csrf}, secret::MasterSecret};
///
/// let csrf = Arc::new(Csrf::new(&MasterSecret::generate(), true, &[], "session"));
/// let app: Router = Router::new().route("/csrf-token", get(csrf::token_endpoint)).with_state(csrf);
/// # let _ = app;
/// ```
pub async fn token_endpoint(State(csrf): State<Arc<Csrf>>, headers: HeaderMap) -> Response {
    let (token, set_cookie) = csrf.issue(&headers);
    let mut response = axum::Json(serde_json::json!({ "csrf_token": token })).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(set_cookie) = set_cookie {
        headers.insert(header::SET_COOKIE, set_cookie);
    }
    response
}

/// Middleware (for `axum::middleware::from_fn_with_state`) enforcing CSRF on unsafe methods of
/// cookie-authenticated requests; see the module docs.
pub async fn protect(
    State((csrf, scheme)): State<(Arc<Csrf>, Scheme)>,
    request: Request,
    next: Next,
) -> Response {
    match csrf.check_request(scheme, request).await {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal,
    }
}

impl Csrf {
    /// Whether [`Csrf::check_request`] would check `request` at all: an unsafe method
    /// (`POST`, `PUT`, `PATCH`, `DELETE`) that carries the session cookie and no bearer token.
    /// Every other request passes untouched, so a pipeline can skip the (larger, asynchronous)
    /// check for them.
    pub fn applies_to<B>(&self, request: &http::Request<B>) -> bool {
        is_unsafe(request.method())
            && cookie::get(request.headers(), &self.session_cookie).is_some()
            && crate::jwt::bearer_token_of(request.headers()).is_none()
    }

    /// What [`protect`] does, for a middleware of your own: the request back when it needs no
    /// check or passes it (a urlencoded body read for its token is put back), else the answer to
    /// send — 403 marked [`Refused`], or 413 when a form body is over 1 MiB.
    ///
    /// # Errors
    /// The refusal, as above.
    pub async fn check_request(
        &self,
        scheme: Scheme,
        request: Request,
    ) -> Result<Request, Response> {
        if !self.applies_to(&request) {
            return Ok(request);
        }
        if !self.origin_allowed(request.headers(), scheme.0) {
            tracing::warn!(method = %request.method(), path = %request.uri().path(), "CSRF: origin refused");
            return Err(layer_refusal());
        }
        let header_token = request
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (request, token) = match header_token {
            Some(t) => (Some(request), Some(t)),
            // Boxed: reading a form body makes a large future, and this one is awaited inside
            // every request's pipeline, which would otherwise carry its size on every request.
            None => Box::pin(form_token(request)).await,
        };
        let Some(request) = request else {
            return Err(
                HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
                    .into_response(),
            );
        };
        match token {
            Some(t) if self.verify(request.headers(), &t) => Ok(request),
            _ => {
                tracing::warn!(method = %request.method(), path = %request.uri().path(), "CSRF: token missing or invalid");
                Err(layer_refusal())
            }
        }
    }
}

/// The `csrf_token` field of a urlencoded body, with the request rebuilt around the buffered
/// body. `None` request when the body is over 1 MiB.
async fn form_token(request: Request) -> (Option<Request>, Option<String>) {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (Some(request), None);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1024 * 1024).await else {
        return (None, None);
    };
    let token = form_urlencoded_field(&bytes, FIELD);
    (Some(Request::from_parts(parts, Body::from(bytes))), token)
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests;
