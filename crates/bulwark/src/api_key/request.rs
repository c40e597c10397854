//! API keys on requests: where a key is read from, and what authentication records.

use std::sync::Arc;

use axum::response::{IntoResponse as _, Response};
use http::HeaderMap;

use super::{ApiKeyAuth, ApiKeyError, ApiKeyIdentity, PresentedKey};
use crate::{error::HttpError, jwt::AuthSource};

/// The header a key may come in, besides `Authorization: Bearer`.
pub const X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

/// The API key a request presents: the `X-API-Key` header (whatever it holds: a client that
/// sends it means a key), else an `Authorization: Bearer` credential that starts with `bwk_`
/// (any other bearer credential is a JWT's business). Not checked beyond that; `None` when the
/// request presents no key.
///
/// # Examples
/// ```
/// use bulwark::api_key::presented_key;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("authorization", "Bearer bwk_abc".parse().unwrap());
/// assert_eq!(presented_key(&headers), Some("bwk_abc"));
/// headers.insert("authorization", "Bearer eyJhbGciOi".parse().unwrap());
/// assert_eq!(presented_key(&headers), None);
/// headers.insert("x-api-key", "bwk_def".parse().unwrap());
/// assert_eq!(presented_key(&headers), Some("bwk_def"));
/// ```
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(X_API_KEY) {
        // A value with bytes over 0x7F is no key: it is presented as an empty one (refused).
        return Some(value.to_str().map_or("", str::trim));
    }
    crate::jwt::bearer_token_of(headers).filter(|token| PresentedKey::looks_like_key(token))
}

/// Recorded when the request's key was refused, so that [`ApiKeyAuth::refusal_of`] answers
/// without verifying it again. Only this module makes one: a client cannot.
#[derive(Debug, Clone, Copy)]
struct KeyRefused(Refusal);

#[derive(Debug, Clone, Copy)]
enum Refusal {
    Invalid,
    Unavailable,
    Failed,
}

impl Refusal {
    fn response(self) -> Response {
        match self {
            Self::Invalid => HttpError::unauthorized("Invalid API key"),
            Self::Unavailable => HttpError::unavailable("Service temporarily unavailable"),
            Self::Failed => HttpError::internal(),
        }
        .into_response()
    }
}

impl ApiKeyAuth {
    /// When `request` presents an API key ([`presented_key`]) that verifies, records its
    /// identity in the request's extensions: an `Arc<`[`ApiKeyIdentity`]`>`, its
    /// `Arc<`[`Claims`](crate::jwt::Claims)`>` (what `CurrentUser`, `RequireRole` and the
    /// per-user rate limit read) and [`AuthSource::Bearer`] (a key is no ambient credential:
    /// no CSRF check applies). A key that does not verify is recorded as refused, for
    /// [`ApiKeyAuth::refusal_of`]. Nothing is answered here.
    pub async fn authenticate_request<B>(&self, request: &mut http::Request<B>)
    where
        B: Send,
    {
        let Some(key) = presented_key(request.headers()) else {
            return;
        };
        let verdict = self.verify(key).await;
        record(request, verdict);
    }

    /// [`ApiKeyAuth::authenticate_request`] without waiting, for a pipeline that runs its
    /// steps in place when it can: `true` when it is done (no key presented, or the cache
    /// decided; the same record made), `false`, having changed nothing, when the store must be
    /// asked: then await [`ApiKeyAuth::authenticate_request`] instead.
    pub fn authenticate_request_now<B>(&self, request: &mut http::Request<B>) -> bool {
        let Some(key) = presented_key(request.headers()) else {
            return true;
        };
        match self.verify_now(key) {
            Some(verdict) => {
                record(request, verdict);
                true
            }
            None => false,
        }
    }

    /// The answer to `request` when the key it presents was refused by
    /// [`ApiKeyAuth::authenticate_request`] (or `_now`): 401 `{"detail": "Invalid API key"}`
    /// with `WWW-Authenticate: Bearer`, or 503/500 when the store failed. `None` when it
    /// presents no key, a key that verified, or one not checked yet.
    pub fn refusal_of<B>(&self, request: &http::Request<B>) -> Option<Response> {
        recorded_refusal(request.extensions())
    }
}

/// [`ApiKeyAuth::refusal_of`] from a request's extensions alone, for code that holds no
/// [`ApiKeyAuth`] (an extractor such as `CurrentUser`, which should answer a refused key with
/// this rather than with its own "Not authenticated").
pub fn recorded_refusal(extensions: &http::Extensions) -> Option<Response> {
    extensions
        .get::<KeyRefused>()
        .map(|KeyRefused(refusal)| refusal.response())
}

/// What authentication learnt of a request's key, in its extensions.
fn record<B>(request: &mut http::Request<B>, verdict: Result<Arc<ApiKeyIdentity>, ApiKeyError>) {
    let extensions = request.extensions_mut();
    match verdict {
        Ok(identity) => {
            extensions.insert(Arc::clone(identity.claims()));
            extensions.insert(identity);
            extensions.insert(AuthSource::Bearer);
        }
        Err(err) => {
            let refusal = match &err {
                ApiKeyError::Store(store) if store.is_unavailable() => {
                    tracing::warn!(error = %store, "API key not verified: store unavailable");
                    Refusal::Unavailable
                }
                ApiKeyError::Store(store) => {
                    tracing::error!(error = %store, "API key not verified: store failed");
                    Refusal::Failed
                }
                refused => {
                    tracing::debug!(reason = %refused, "rejected API key");
                    Refusal::Invalid
                }
            };
            extensions.insert(KeyRefused(refusal));
        }
    }
}
