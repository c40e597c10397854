//! Who a verified key speaks for ([`ApiKeyIdentity`]), and the caller's hook that decides it
//! ([`ApiKeyMapper`]).

use std::{future::Future, pin::Pin, sync::Arc};

use super::ApiKeyRecord;
use crate::{jwt::Claims, store::StoreError};

/// The issuer and audience of the [`Claims`] an API key authenticates with
/// ([`ApiKeyIdentity::claims`]): no JWT carries them, so such claims are never mistaken for a
/// token's.
pub const API_KEY_ISSUER: &str = "bulwark:api-key";

/// The `jti` prefix of the [`Claims`] an API key authenticates with: `apikey:` + the key's id.
pub const API_KEY_JTI_PREFIX: &str = "apikey:";

/// What a key's caller may do now, as the [`ApiKeyMapper`] decides it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// The user's display name (`Claims::name`), if the mapper knows it.
    pub name: Option<String>,
    /// The roles the request gets (e.g. the key's roles intersected with the user's current
    /// roles).
    pub roles: Vec<String>,
}

impl Grant {
    /// The roles `roles`, no name.
    pub fn new(roles: Vec<String>) -> Self {
        Self { name: None, roles }
    }

    /// With the user's display name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// The future an [`ApiKeyMapper`] returns: `Ok(Some(grant))` admits the key with that grant,
/// `Ok(None)` refuses it (the user is disabled or gone), `Err` is an outage (nothing is
/// cached, the request answers 503 or 500).
pub type GrantFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Grant>, StoreError>> + Send + 'a>>;

/// The caller's hook between "this key is genuine and live" and "the request is
/// authenticated": a server looks the user up, refuses a disabled or deleted one, and
/// intersects the key's roles with the user's current roles.
///
/// Its answer is cached with the key, for at most the verifier's cache lifetime (1 s by
/// default): a user disabled, deleted or stripped of a role is seen within that time, and a hot
/// key costs no user lookup either. Without a mapper, a key is admitted with its own roles.
///
/// A closure `Fn(&ApiKeyRecord) -> impl Future<...>` works too, through
/// [`super::ApiKeyAuth::with_mapper_fn`].
pub trait ApiKeyMapper: Send + Sync + 'static {
    /// The grant of a genuine, unexpired `key` (its record as stored).
    fn grant<'a>(&'a self, key: &'a ApiKeyRecord) -> GrantFuture<'a>;
}

/// A closure as an [`ApiKeyMapper`].
pub(super) struct FnMapper<F>(pub(super) F);

impl<F, Fut> ApiKeyMapper for FnMapper<F>
where
    F: Fn(&ApiKeyRecord) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Grant>, StoreError>> + Send + 'static,
{
    fn grant<'a>(&'a self, key: &'a ApiKeyRecord) -> GrantFuture<'a> {
        Box::pin((self.0)(key))
    }
}

/// Who a verified API key speaks for: its user (`subject`), the key, and the roles granted.
///
/// It carries the [`Claims`] the request is authenticated with, so that everything written
/// for JWTs (`CurrentUser`, `RequireRole`, the per-user rate limit) works unchanged: `sub` is
/// the user's id, `roles` the granted roles, `name` the grant's name, `jti` is
/// `apikey:<key id>`, `iss` and `aud` are [`API_KEY_ISSUER`], `iat` and `nbf` the key's creation
/// time, `exp` its expiry (`i64::MAX` for none) and `ver` 0 (token versions do not apply to
/// keys: the [`ApiKeyMapper`] sees a changed user within the cache lifetime instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyIdentity {
    key_id: uuid::Uuid,
    key_name: String,
    prefix: String,
    expires_at: Option<i64>,
    claims: Arc<Claims>,
}

impl ApiKeyIdentity {
    /// The identity of `record`'s key with `grant`.
    pub(super) fn new(record: &ApiKeyRecord, grant: Grant) -> Self {
        let claims = Claims {
            sub: record.subject.clone(),
            name: grant.name,
            roles: grant.roles,
            iat: record.created_at,
            nbf: record.created_at,
            exp: record.expires_at.unwrap_or(i64::MAX),
            jti: format!("{API_KEY_JTI_PREFIX}{}", record.id),
            iss: API_KEY_ISSUER.to_owned(),
            aud: API_KEY_ISSUER.to_owned(),
            ver: 0,
        };
        Self {
            key_id: record.id,
            key_name: record.name.clone(),
            prefix: record.prefix.clone(),
            expires_at: record.expires_at,
            claims: Arc::new(claims),
        }
    }

    /// The key's id.
    pub fn key_id(&self) -> uuid::Uuid {
        self.key_id
    }

    /// The key's name, as its owner gave it.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// The key's prefix (its public name).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The user the key belongs to (`Claims::sub`).
    pub fn subject(&self) -> &str {
        &self.claims.sub
    }

    /// The roles granted (`Claims::roles`).
    pub fn roles(&self) -> &[String] {
        &self.claims.roles
    }

    /// When the key expires (Unix seconds), if it does.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    /// The claims the request is authenticated with (shared: cloning the `Arc` copies nothing).
    pub fn claims(&self) -> &Arc<Claims> {
        &self.claims
    }

    /// The identity recorded on a request authenticated by an API key
    /// ([`super::ApiKeyAuth::authenticate_request`]), if it was: what a handler checks to
    /// refuse what keys may not do ("Not allowed with an API key").
    pub fn of(extensions: &http::Extensions) -> Option<&Arc<Self>> {
        extensions.get::<Arc<Self>>()
    }
}
