use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use http::{header, request::Parts};

use super::{
    auth::{JwtAuth, JwtError},
    claims::Claims,
    rejection::AuthRejection,
};

/// The verified claims of the caller's access token.
///
/// Reads `Authorization: Bearer <JWT>` (scheme compared case-insensitively), verifies it with the
/// [`JwtAuth`] found in the state through `FromRef`, and rejects anything else with a 401 and
/// `WWW-Authenticate: Bearer`.
///
/// # Examples
/// ```
/// use axum::{Router, routing::get, extract::FromRef};
/// use bulwark::jwt::{CurrentUser, JwtAuth};
///
/// #[derive(Clone, FromRef)]
/// struct AppState { jwt: JwtAuth }
///
/// async fn me(CurrentUser(claims): CurrentUser) -> String {
///     claims.sub.clone()
/// }
///
/// fn app(jwt: JwtAuth) -> Router {
///     Router::new().route("/me", get(me)).with_state(AppState { jwt })
/// }
/// ```
/// The claims are shared (`Arc`) with the request's extensions and the cache of verified tokens:
/// extracting them copies nothing.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Arc<Claims>);

impl std::ops::Deref for CurrentUser {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSource {
    /// `Authorization: Bearer`: no ambient authority, no CSRF check needed.
    Bearer,
    /// The session cookie: a browser sends it by itself, so unsafe requests need CSRF proof.
    Cookie,
}

/// The request's token and where it came from: the bearer header first, else the session cookie
/// (when configured).
pub fn credentials<'a>(
    headers: &'a http::HeaderMap,
    auth: &JwtAuth,
) -> Option<(&'a str, AuthSource)> {
    if let Some(token) = bearer_token_of(headers) {
        return Some((token, AuthSource::Bearer));
    }
    let name = auth.config().session_cookie_name()?;
    crate::cookie::get(headers, name).map(|t| (t, AuthSource::Cookie))
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    bearer_token_of(&parts.headers)
}

/// The token of an `Authorization: Bearer` header in `headers`, if there is one.
pub fn bearer_token_of(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    // `Bearer <token>`, the scheme in any case (RFC 9110 §11.1).
    let (scheme, token) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    // A header value holds no control character but may hold bytes over 0x7F, which no token
    // has: those are refused here, as `HeaderValue::to_str` would.
    let token = std::str::from_utf8(token.trim_ascii()).ok()?;
    (!token.is_empty() && token.is_ascii()).then_some(token)
}

impl<S> FromRequestParts<S> for CurrentUser
where
    JwtAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<Arc<Claims>>() {
            return Ok(Self(Arc::clone(claims)));
        }
        if let Some(Rejected(err)) = parts.extensions.get::<Rejected>() {
            return Err(AuthRejection::Invalid(err.clone()));
        }
        let auth = JwtAuth::from_ref(state);
        let (token, source) = credentials(&parts.headers, &auth).ok_or(AuthRejection::Missing)?;
        let claims = auth.verify_refreshing(token).await?;
        parts.extensions.insert(Arc::clone(&claims));
        parts.extensions.insert(source);
        Ok(Self(claims))
    }
}

/// Middleware (for `axum::middleware::from_fn_with_state`) that verifies a bearer token when
/// the request has one and records its claims (an `Arc<`[`Claims`]`>` extension) for the layers
/// after it (a rate limiter keyed by user) and for [`CurrentUser`], which then does not verify
/// again. A missing or invalid token is not refused here: routes that need authentication refuse
/// it with their 401.
pub async fn authenticate(
    axum::extract::State(auth): axum::extract::State<JwtAuth>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    auth.authenticate_request(&mut request).await;
    next.run(request).await
}

impl JwtAuth {
    /// The refusal [`CurrentUser`] gives `request`, once [`JwtAuth::authenticate_request`]
    /// (or [`JwtAuth::authenticate_request_now`], having returned `true`) ran on it: `Missing`
    /// without credentials, `Invalid` for credentials that did not verify; `None` when they
    /// verified. For a pipeline that answers, before routing, the requests that a route
    /// requiring authentication would refuse in its extractor.
    pub fn refusal_of<B>(&self, request: &http::Request<B>) -> Option<AuthRejection> {
        let extensions = request.extensions();
        if extensions.get::<Arc<Claims>>().is_some() {
            return None;
        }
        if let Some(Rejected(err)) = extensions.get::<Rejected>() {
            return Some(AuthRejection::Invalid(err.clone()));
        }
        match credentials(request.headers(), self) {
            None => Some(AuthRejection::Missing),
            // Refused for its shape alone, and so not recorded (see `record`).
            Some((token, _)) if !JwtAuth::shaped_like_jwt(token) => {
                Some(AuthRejection::Invalid(JwtError::Malformed))
            }
            // Not authenticated yet: the extractor decides.
            Some(_) => None,
        }
    }

    /// What [`authenticate`] does, for a middleware of your own: when `request` carries a token
    /// (bearer header, else the session cookie) that verifies, records its claims and
    /// [`AuthSource`] in the request's extensions. Nothing is refused here.
    pub async fn authenticate_request(&self, request: &mut axum::extract::Request) {
        let Some((token, source)) = credentials(request.headers(), self) else {
            return;
        };
        let shaped = JwtAuth::shaped_like_jwt(token);
        let verified = self.verify_refreshing(token).await;
        record(request, source, shaped, verified);
    }

    /// [`JwtAuth::authenticate_request`] without waiting, for a pipeline that runs its steps
    /// in place when it can: `true` when it is done (the same record made), `false`, having
    /// changed nothing, when the token names a key this instance does not know yet and the key
    /// ring must be reloaded first: then await [`JwtAuth::authenticate_request`] instead.
    pub fn authenticate_request_now<B>(&self, request: &mut http::Request<B>) -> bool {
        let Some((token, source)) = credentials(request.headers(), self) else {
            return true;
        };
        let shaped = JwtAuth::shaped_like_jwt(token);
        let verified = self.verify(token);
        if matches!(verified, Err(JwtError::UnknownKey)) && self.can_refresh() {
            return false;
        }
        record(request, source, shaped, verified);
        true
    }
}

/// What authentication learnt of a request's token (`shaped`: like a JWT at all), in its
/// extensions: the claims and their source when it verified, else why not.
fn record<B>(
    request: &mut http::Request<B>,
    source: AuthSource,
    shaped: bool,
    verified: Result<Arc<Claims>, JwtError>,
) {
    match verified {
        Ok(claims) => {
            let extensions = request.extensions_mut();
            extensions.insert(claims);
            extensions.insert(source);
        }
        // A token that is not even shaped like a JWT is refused again by the extractor for
        // the price of a prefix check: no record of it (an extension is an allocation, and
        // the fourth one of a request regrows its table).
        Err(_) if !shaped => {}
        Err(err) => {
            request.extensions_mut().insert(Rejected(err));
        }
    }
}

/// Recorded when the request's token did not verify, so that [`CurrentUser`] refuses it
/// without verifying it a second time. Only this module makes one: a client cannot.
#[derive(Debug, Clone)]
struct Rejected(JwtError);
