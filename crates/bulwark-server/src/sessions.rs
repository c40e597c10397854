//! Token pairs over their whole life: issue, refresh with reuse detection, logout, and
//! invalidation when a user's password, roles or status change.

use std::{sync::Arc, time::Duration};

use axum::{http::HeaderValue, response::Response};
use bulwark::{
    cookie,
    jwt::{Claims, JwtAuth, TokenSubject},
    revocation::{Revocation, Revoker},
    secret::{fingerprint, random_token},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    audit::{self, AuditEvent, AuditKind},
    db::{Repository, SpendOutcome, User, now},
    errors::internal,
    metrics::Metrics,
};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "session";

/// Sets the session cookie to `token`, for `ttl_secs`.
pub fn set_session(token: &str, ttl_secs: u64, secure: bool) -> HeaderValue {
    cookie::set(SESSION_COOKIE, token, ttl_secs, secure)
}

/// Clears the session cookie (for logout).
pub fn clear_session(secure: bool) -> HeaderValue {
    cookie::clear(SESSION_COOKIE, secure)
}

/// The token service, built at start-up: what it issues, stores and revokes with, and the
/// lifetimes it issues for.
pub struct Sessions {
    jwt: JwtAuth,
    repo: Arc<dyn Repository>,
    revoker: Arc<Revoker>,
    metrics: Arc<Metrics>,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

/// A token pair, as `/token` and `/token/refresh` answer.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT access token.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
    /// Opaque refresh token (256 random bits); single use.
    pub refresh_token: String,
}

fn ttl_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl Sessions {
    /// The service over `jwt` (issuing), `repo` (refresh tokens, families, token versions) and
    /// `revoker`; access tokens live `access_ttl`, refresh tokens `refresh_ttl`.
    pub fn new(
        jwt: JwtAuth,
        repo: Arc<dyn Repository>,
        revoker: Arc<Revoker>,
        metrics: Arc<Metrics>,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Self {
        Self {
            jwt,
            repo,
            revoker,
            metrics,
            access_ttl,
            refresh_ttl,
        }
    }

    /// The access-token lifetime (the session cookie's too).
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Issues an access token and a refresh token for `user`, in a new family (a login).
    ///
    /// # Errors
    /// A 500 response when signing or storing fails.
    pub async fn issue_pair(&self, user: &User) -> Result<TokenResponse, Response> {
        self.issue_in_family(user, &random_token(16))
            .await?
            .ok_or_else(|| internal("a new refresh family was already revoked"))
    }

    /// Issues the next pair of `family`, unless the family is revoked (`None`). A revocation racing
    /// this is caught on one side or the other: the mark is written before the family's tokens are
    /// spent, and the mark is checked again once the successor is stored; when found then, the
    /// family is revoked once more, which spends the successor and revokes its access token.
    async fn issue_in_family(
        &self,
        user: &User,
        family: &str,
    ) -> Result<Option<TokenResponse>, Response> {
        let issued = self
            .jwt
            .issue_for(&TokenSubject {
                sub: user.id.to_string(),
                name: Some(user.username.clone()),
                roles: user.roles.clone(),
                version: user.token_version,
            })
            .map_err(internal)?;
        let refresh = random_token(32);
        let expires_at = now().saturating_add(ttl_secs(self.refresh_ttl));
        let stored = self
            .repo
            .insert_refresh(
                &fingerprint(&refresh),
                family,
                user.id,
                &issued.jti,
                user.token_version,
                expires_at,
            )
            .await
            .map_err(internal)?;
        if !stored {
            return Ok(None);
        }
        if self.repo.family_revoked(family).await.map_err(internal)? {
            self.revoke_family(family).await?;
            return Ok(None);
        }
        Ok(Some(TokenResponse {
            access_token: issued.token,
            token_type: "bearer",
            expires_in: issued.expires_in,
            refresh_token: refresh,
        }))
    }

    /// Issues the access token a browser session cookie carries (no refresh token: the browser logs
    /// in again when it expires).
    ///
    /// # Errors
    /// A 500 response when signing fails.
    pub fn issue_session(&self, user: &User) -> Result<String, Response> {
        self.jwt
            .issue_for(&TokenSubject {
                sub: user.id.to_string(),
                name: Some(user.username.clone()),
                roles: user.roles.clone(),
                version: user.token_version,
            })
            .map(|issued| issued.token)
            .map_err(internal)
    }

    /// Spends `refresh_token` and issues the next pair of its family. A token spent before revokes
    /// its whole family (every refresh token and the access tokens issued with them).
    ///
    /// # Errors
    /// `Ok(Err(_))` for a refused token; `Err` (a 500 response) when storage fails.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        ip: std::net::IpAddr,
    ) -> Result<Result<TokenResponse, RefreshRefused>, Response> {
        match self
            .repo
            .spend_refresh(&fingerprint(refresh_token))
            .await
            .map_err(internal)?
        {
            SpendOutcome::Invalid => Ok(Err(RefreshRefused::Invalid)),
            SpendOutcome::Reused { family_id, user_id } => {
                self.metrics.refresh("reuse_detected");
                tracing::warn!(user_id, "refresh token reused: revoking its family");
                // The name is a convenience for the reader of the trail: never worth failing for.
                let username = self
                    .repo
                    .get_user(user_id)
                    .await
                    .ok()
                    .flatten()
                    .map(|u| u.username);
                audit::record(
                    self.repo.as_ref(),
                    AuditKind::RefreshReuseDetected,
                    AuditEvent {
                        user_id: Some(user_id),
                        username,
                        ip: Some(ip),
                        detail: Some("refresh family revoked".to_owned()),
                    },
                )
                .await;
                self.revoke_family(&family_id).await?;
                Ok(Err(RefreshRefused::Reused))
            }
            SpendOutcome::Spent {
                family_id,
                user_id,
                token_version,
            } => {
                let user = self.repo.get_user(user_id).await.map_err(internal)?;
                match user {
                    // A version that moved since the spend (a password, role or status change
                    // racing this refresh) refuses too.
                    Some(user) if !user.disabled && user.token_version == token_version => Ok(self
                        .issue_in_family(&user, &family_id)
                        .await?
                        .ok_or(RefreshRefused::Invalid)),
                    _ => Ok(Err(RefreshRefused::Invalid)),
                }
            }
        }
    }

    /// Marks a family revoked for good, spends every refresh token of it and revokes the access
    /// tokens issued with them.
    ///
    /// # Errors
    /// A 500 response when storage fails.
    pub async fn revoke_family(&self, family_id: &str) -> Result<(), Response> {
        // Every token of the family expires before a token issued now would.
        let mark_expires_at = now().saturating_add(ttl_secs(self.refresh_ttl));
        let access = self
            .repo
            .revoke_family(family_id, mark_expires_at)
            .await
            .map_err(internal)?;
        let ttl = ttl_secs(self.access_ttl);
        for (jti, issued_at) in access {
            self.revoker
                .revoke(Revocation::Token {
                    jti,
                    expires_at: issued_at.saturating_add(ttl),
                })
                .await
                .map_err(internal)?;
        }
        Ok(())
    }

    /// Revokes the presented access token and its refresh family.
    ///
    /// # Errors
    /// A 500 response when storage fails.
    pub async fn logout(&self, claims: &Claims, ip: std::net::IpAddr) -> Result<(), Response> {
        audit::record(
            self.repo.as_ref(),
            AuditKind::Logout,
            AuditEvent {
                user_id: claims.sub.parse().ok(),
                username: claims.name.clone(),
                ip: Some(ip),
                detail: None,
            },
        )
        .await;
        self.revoker
            .revoke(Revocation::Token {
                jti: claims.jti.clone(),
                expires_at: claims.exp,
            })
            .await
            .map_err(internal)?;
        if let Some(family) = self
            .repo
            .family_of_access(&claims.jti)
            .await
            .map_err(internal)?
        {
            self.revoke_family(&family).await?;
        }
        Ok(())
    }

    /// Revokes every outstanding token of a user (after a password, role or status change), on
    /// every instance within the revocation sync interval.
    ///
    /// # Errors
    /// When storage fails.
    pub async fn invalidate_user_tokens(&self, user_id: i64) -> anyhow::Result<()> {
        if let Some(version) = self.repo.bump_token_version(user_id).await? {
            self.revoker
                .revoke(Revocation::Subject {
                    sub: user_id.to_string(),
                    min_version: version,
                })
                .await?;
        }
        Ok(())
    }
}

/// Why a refresh was refused. All answer the same 401.
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshRefused {
    /// Unknown, expired, or its user is gone or disabled.
    Invalid,
    /// Spent before: the family was revoked.
    Reused,
}
