use std::{sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, Header, Validation, decode, decode_header, encode};

use super::{
    claims::{Claims, TokenSubject},
    keyring::KeyRing,
};
use crate::revocation::RevocationList;

/// The most clock leeway accepted, in seconds (RFC 8725 advice: keep it small).
pub const MAX_LEEWAY_SECS: u64 = 60;

/// Tokens longer than this are rejected before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Seconds since the Unix epoch (`0` for a clock set before it): the claims' time scale, read
/// without building a calendar date.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Issuer, audience and lifetimes of access tokens.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    issuer: String,
    audience: String,
    access_ttl: Duration,
    leeway: u64,
    session_cookie: Option<String>,
}

impl JwtConfig {
    /// Issuer and audience, a 15-minute lifetime and 30 s of leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            access_ttl: Duration::from_secs(15 * 60),
            leeway: 30,
            session_cookie: None,
        }
    }

    /// Sets the access-token lifetime.
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Sets the clock leeway, capped at [`MAX_LEEWAY_SECS`].
    pub fn leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds.min(MAX_LEEWAY_SECS);
        self
    }

    /// Also accepts an access token in the cookie `name` (browser sessions) when a request has
    /// no `Authorization: Bearer` header. Pair it with [`crate::csrf`].
    pub fn session_cookie(mut self, name: impl Into<String>) -> Self {
        self.session_cookie = Some(name.into());
        self
    }

    /// The session cookie's name, when sessions are on.
    pub fn session_cookie_name(&self) -> Option<&str> {
        self.session_cookie.as_deref()
    }

    /// The access-token lifetime.
    pub fn access_ttl_value(&self) -> Duration {
        self.access_ttl
    }

    /// The clock leeway in seconds.
    pub fn leeway_value(&self) -> u64 {
        self.leeway
    }
}

/// Why a token was not issued or not accepted. The public answer is always a generic 401; the
/// variant is for logs and tests.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The ring has no active key.
    #[error("no active signing key")]
    NoActiveKey,
    /// Not a JWT, or too long.
    #[error("malformed token")]
    Malformed,
    /// No `kid`, or a `kid` the ring does not know.
    #[error("unknown key id")]
    UnknownKey,
    /// The key is retired or revoked.
    #[error("key no longer verifies")]
    KeyNotValid,
    /// The header's `alg` is not the key's algorithm (including `none`).
    #[error("algorithm does not match the key")]
    AlgorithmMismatch,
    /// The header names a key source (`jku`, `jwk`, `x5u`, `x5c`): never followed.
    #[error("token names an external key source")]
    ExternalKeySource,
    /// Signature, claims or times are wrong.
    #[error("invalid token: {0}")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(#[source] jsonwebtoken::errors::Error),
    /// The token (by `jti`) or every token of its subject (by version) was revoked.
    #[error("token revoked")]
    Revoked,
}

/// Reloads the key ring from wherever keys are kept, when a token names a `kid` the ring does not
/// know yet (another instance may have just rotated).
pub trait KeyRefresh: Send + Sync + std::fmt::Debug {
    /// Reloads; errors are the implementation's to log.
    fn refresh(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

/// A freshly issued access token.
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWT. Never log it.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp` (Unix seconds).
    pub expires_at: i64,
    /// Lifetime in seconds, for `expires_in`.
    pub expires_in: u64,
}

impl IssuedToken {
    /// A `Set-Cookie` carrying the token as the session cookie `name` (`HttpOnly`,
    /// `SameSite=Lax`, `Path=/`, `Secure` when `secure`), expiring with the token. Configure
    /// the same name with [`JwtConfig::session_cookie`] and protect cookie-authenticated
    /// writes with [`crate::csrf`].
    pub fn session_cookie(&self, name: &str, secure: bool) -> http::HeaderValue {
        crate::cookie::set(name, &self.token, self.expires_in, secure)
    }
}

/// The OAuth2 token response (RFC 6749 §5.1), as FastAPI's `OAuth2PasswordBearer` clients
/// expect it: `{"access_token": ..., "token_type": "bearer", "expires_in": ...}` with
/// `Cache-Control: no-store`, so that no cache keeps the token.
///
/// ```
/// use axum::response::IntoResponse;
/// # use std::sync::Arc;
/// # use bulwark::jwt::{JwtAuth, JwtConfig, KeyRing, SigningKey};
/// # let ring = Arc::new(KeyRing::new());
/// # ring.replace(vec![SigningKey::generate_hs256(0)]);
/// # let jwt = JwtAuth::new(ring, JwtConfig::new("api", "api"));
/// let response = jwt.issue("42", Some("alice"), &[]).unwrap().into_response();
/// assert_eq!(response.headers()["cache-control"], "no-store");
/// ```
impl axum::response::IntoResponse for IssuedToken {
    fn into_response(self) -> axum::response::Response {
        let body = serde_json::json!({
            "access_token": self.token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        });
        let mut response = axum::Json(body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        headers.insert(
            http::header::PRAGMA,
            http::HeaderValue::from_static("no-cache"),
        );
        response
    }
}

/// A token that cannot be issued (no active key, a signer failure) is the server's fault: a
/// generic 500, the cause logged and never sent. Lets a login handler write `jwt.issue(..)?`.
impl From<JwtError> for crate::error::HttpError {
    fn from(err: JwtError) -> Self {
        tracing::error!(error = %err, "token not issued");
        Self::internal()
    }
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Issues and verifies access tokens with a [`KeyRing`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JwtAuth {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ring: Arc<KeyRing>,
    config: JwtConfig,
    hs256: Validation,
    eddsa: Validation,
    revocations: Option<Arc<RevocationList>>,
    refresher: Option<Arc<dyn KeyRefresh>>,
    headers: std::sync::RwLock<std::collections::HashMap<String, Arc<ParsedHeader>>>,
    verified: std::sync::RwLock<std::collections::HashMap<String, Arc<VerifiedToken>>>,
    last_refresh_ms: std::sync::atomic::AtomicI64,
}

/// A parsed JOSE header: only what verification needs.
#[derive(Debug)]
struct ParsedHeader {
    alg: Algorithm,
    kid: String,
}

/// A token whose signature and claims were verified once: the exact same bytes need no second
/// signature check, only the checks that can change with time (expiry, key state, revocation).
/// Shared, so that a hit costs two reference counts, not a copy of every claim.
#[derive(Debug)]
struct VerifiedToken {
    kid: String,
    claims: Arc<Claims>,
}

/// Verified tokens remembered. Only genuine tokens (issued by this service and verified) enter,
/// so the set is bounded by what clients hold; past the cap an arbitrary entry is dropped.
const MAX_VERIFIED: usize = 4096;

/// Distinct headers remembered (a handful per key; garbage is never cached).
const MAX_CACHED_HEADERS: usize = 256;

/// Unknown-`kid` reloads happen at most this often, so garbage tokens cannot hammer the store.
const REFRESH_INTERVAL_MS: i64 = 1_000;

impl JwtAuth {
    /// Ties a ring to a configuration.
    pub fn new(ring: Arc<KeyRing>, config: JwtConfig) -> Self {
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = config.leeway;
            v.validate_exp = true;
            v.validate_nbf = true;
            v.set_issuer(&[&config.issuer]);
            v.set_audience(&[&config.audience]);
            v.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]);
            v
        };
        let hs256 = validation(Algorithm::HS256);
        let eddsa = validation(Algorithm::EdDSA);
        Self {
            inner: Arc::new(Inner {
                ring,
                config,
                hs256,
                eddsa,
                revocations: None,
                refresher: None,
                headers: Default::default(),
                verified: Default::default(),
                last_refresh_ms: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
            }),
        }
    }

    /// Tokens signed with a fresh HS256 key held in memory only, issued and checked by
    /// `config`: for a quickstart, a test or a single instance that may log everyone out when
    /// it restarts. A service that must survive restarts or run several
    /// instances keeps its keys in a store with [`super::KeyManager`], which also rotates them.
    pub fn ephemeral(config: JwtConfig) -> Self {
        let ring = Arc::new(KeyRing::new());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        ring.replace(vec![super::SigningKey::generate_hs256(now)]);
        Self::new(ring, config)
    }

    /// Checks every verified token against `list` (revoked `jti`s and subject versions).
    ///
    /// # Panics
    /// If called after the value was cloned (configure once, at start-up).
    #[must_use]
    pub fn with_revocations(mut self, list: Arc<RevocationList>) -> Self {
        Arc::get_mut(&mut self.inner)
            .map(|inner| inner.revocations = Some(list))
            .unwrap_or_else(|| unreachable!("JwtAuth is configured before it is cloned"));
        self
    }

    /// Reloads the ring through `refresher` (at most once a second) when a token names an
    /// unknown `kid`.
    ///
    /// # Panics
    /// If called after the value was cloned (configure once, at start-up).
    #[must_use]
    pub fn with_key_refresh(mut self, refresher: Arc<dyn KeyRefresh>) -> Self {
        Arc::get_mut(&mut self.inner)
            .map(|inner| inner.refresher = Some(refresher))
            .unwrap_or_else(|| unreachable!("JwtAuth is configured before it is cloned"));
        self
    }

    /// The revocation list, when configured.
    pub fn revocations(&self) -> Option<&Arc<RevocationList>> {
        self.inner.revocations.as_ref()
    }

    /// Whether a token of an unknown key makes [`JwtAuth::verify_refreshing`] reload the key
    /// ring (and so wait) before it answers.
    pub(crate) fn can_refresh(&self) -> bool {
        self.inner.refresher.is_some()
    }

    /// [`JwtAuth::verify`], and on an unknown `kid` one ring reload (rate-limited) and a retry.
    ///
    /// # Errors
    /// As [`JwtAuth::verify`].
    pub async fn verify_refreshing(&self, token: &str) -> Result<Arc<Claims>, JwtError> {
        match self.verify(token) {
            Err(JwtError::UnknownKey) if self.can_refresh() => {
                let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
                let last = self
                    .inner
                    .last_refresh_ms
                    .load(std::sync::atomic::Ordering::Relaxed);
                if now_ms - last < REFRESH_INTERVAL_MS
                    || self
                        .inner
                        .last_refresh_ms
                        .compare_exchange(
                            last,
                            now_ms,
                            std::sync::atomic::Ordering::AcqRel,
                            std::sync::atomic::Ordering::Relaxed,
                        )
                        .is_err()
                {
                    return Err(JwtError::UnknownKey);
                }
                if let Some(refresher) = &self.inner.refresher {
                    refresher.refresh().await;
                }
                self.verify(token)
            }
            other => other,
        }
    }

    /// The key ring.
    pub fn ring(&self) -> &Arc<KeyRing> {
        &self.inner.ring
    }

    /// The configuration.
    pub fn config(&self) -> &JwtConfig {
        &self.inner.config
    }

    /// Signs a token for `subject` with the active key.
    ///
    /// # Errors
    /// [`JwtError::NoActiveKey`] when the ring has no active key; [`JwtError::Signing`] if the
    /// signer fails.
    pub fn issue(
        &self,
        subject: &str,
        name: Option<&str>,
        roles: &[String],
    ) -> Result<IssuedToken, JwtError> {
        self.issue_for(&TokenSubject {
            sub: subject.to_owned(),
            name: name.map(str::to_owned),
            roles: roles.to_vec(),
            version: 0,
        })
    }

    /// Signs a token for `subject` (with its token version) with the active key.
    ///
    /// # Errors
    /// As [`JwtAuth::issue`].
    pub fn issue_for(&self, subject: &TokenSubject) -> Result<IssuedToken, JwtError> {
        let key = self.inner.ring.active().ok_or(JwtError::NoActiveKey)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ttl = self.inner.config.access_ttl.as_secs();
        let exp = now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
        let jti = crate::secret::random_token(16);
        let claims = Claims {
            sub: subject.sub.clone(),
            name: subject.name.clone(),
            roles: subject.roles.clone(),
            ver: subject.version,
            iat: now,
            nbf: now,
            exp,
            jti: jti.clone(),
            iss: self.inner.config.issuer.clone(),
            aud: self.inner.config.audience.clone(),
        };
        let mut header = Header::new(key.alg());
        header.typ = Some("JWT".to_owned());
        header.kid = Some(key.kid().to_owned());
        let token = encode(&header, &claims, key.encoding_key()).map_err(JwtError::Signing)?;
        Ok(IssuedToken {
            token,
            jti,
            expires_at: exp,
            expires_in: ttl,
        })
    }

    /// The token's header, parsed once per distinct header text: every token a key signs has
    /// the same header, so after the first token of a key this is a hash lookup. Headers naming
    /// an external key source, or no `kid`, are refused and never cached.
    fn header_of(&self, token: &str) -> Result<Arc<ParsedHeader>, JwtError> {
        let segment = token.split_once('.').map_or(token, |(header, _)| header);
        if let Ok(cache) = self.inner.headers.read()
            && let Some(found) = cache.get(segment)
        {
            return Ok(Arc::clone(found));
        }
        let header = decode_header(token).map_err(|_| JwtError::Malformed)?;
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
        {
            return Err(JwtError::ExternalKeySource);
        }
        let kid = header.kid.ok_or(JwtError::UnknownKey)?;
        let known = self.inner.ring.get(&kid).is_some();
        let parsed = Arc::new(ParsedHeader {
            alg: header.alg,
            kid,
        });
        // Cache only headers of known keys, and only a few: garbage headers cannot fill memory.
        if known
            && let Ok(mut cache) = self.inner.headers.write()
            && cache.len() < MAX_CACHED_HEADERS
        {
            cache.insert(segment.to_owned(), Arc::clone(&parsed));
        }
        Ok(parsed)
    }

    /// Whether `token` could be a JWT at all: not over the length limit, and starting with
    /// `eyJ` (every JWT header is a JSON object, `{"…`, which base64url-encodes to `eyJ`).
    /// [`JwtAuth::verify`] refuses anything else as [`JwtError::Malformed`] before decoding.
    pub(crate) fn shaped_like_jwt(token: &str) -> bool {
        token.len() <= MAX_TOKEN_LEN && token.starts_with("eyJ")
    }

    /// Verifies a compact JWT: key by `kid`, the key's own algorithm, signature, then every
    /// registered claim. The claims are shared with the cache of verified tokens.
    ///
    /// # Errors
    /// A [`JwtError`] naming the first thing wrong.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, JwtError> {
        // Every JWT's header is a JSON object, `{"…`, which base64url-encodes to `eyJ`: anything
        // else is refused before any decoding (garbage tokens are what a flood is made of).
        if !Self::shaped_like_jwt(token) {
            return Err(JwtError::Malformed);
        }
        let now = unix_now();
        let cached = self
            .inner
            .verified
            .read()
            .ok()
            .and_then(|cache| cache.get(token).map(Arc::clone));
        if let Some(hit) = cached {
            return self.recheck(&hit, now);
        }
        let header = self.header_of(token)?;
        let key = self
            .inner
            .ring
            .get(&header.kid)
            .ok_or(JwtError::UnknownKey)?;
        if header.alg != key.alg() {
            return Err(JwtError::AlgorithmMismatch);
        }
        if !key.verifies_at(now) {
            return Err(JwtError::KeyNotValid);
        }
        let validation = match key.alg() {
            Algorithm::EdDSA => &self.inner.eddsa,
            _ => &self.inner.hs256,
        };
        let claims = Arc::new(
            decode::<Claims>(token, key.decoding_key(), validation)
                .map_err(JwtError::Invalid)?
                .claims,
        );
        if let Some(list) = &self.inner.revocations
            && list.is_revoked(&claims)
        {
            return Err(JwtError::Revoked);
        }
        if let Ok(mut cache) = self.inner.verified.write() {
            if cache.len() >= MAX_VERIFIED
                && let Some(victim) = cache.keys().next().cloned()
            {
                cache.remove(&victim);
            }
            cache.insert(
                token.to_owned(),
                Arc::new(VerifiedToken {
                    kid: header.kid.clone(),
                    claims: Arc::clone(&claims),
                }),
            );
        }
        Ok(claims)
    }

    /// The checks a verified token must pass again on every use: its key still verifies, it
    /// has not expired (nor is it early), and it was not revoked.
    fn recheck(&self, hit: &VerifiedToken, now: i64) -> Result<Arc<Claims>, JwtError> {
        let key = self.inner.ring.get(&hit.kid).ok_or(JwtError::UnknownKey)?;
        if !key.verifies_at(now) {
            return Err(JwtError::KeyNotValid);
        }
        let leeway = i64::try_from(self.inner.config.leeway).unwrap_or(0);
        if hit.claims.exp < now - leeway {
            return Err(JwtError::Invalid(
                jsonwebtoken::errors::ErrorKind::ExpiredSignature.into(),
            ));
        }
        if hit.claims.nbf > now + leeway {
            return Err(JwtError::Invalid(
                jsonwebtoken::errors::ErrorKind::ImmatureSignature.into(),
            ));
        }
        if let Some(list) = &self.inner.revocations
            && list.is_revoked(&hit.claims)
        {
            return Err(JwtError::Revoked);
        }
        Ok(Arc::clone(&hit.claims))
    }
}
