//! Token pairs over their whole life: issue, refresh with reuse detection, logout, and
//! invalidation when a user's password, roles or status change.

use axum::response::Response;
use bulwark::{
    jwt::{Claims, TokenSubject},
    revocation::Revocation,
    secret::{fingerprint, random_token},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    db::{SpendOutcome, User, now},
    routes::internal,
    state::AppState,
};

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

fn ttl_secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// Issues an access token and a refresh token for `user`, in a new family (a login).
///
/// # Errors
/// A 500 response when signing or storing fails.
pub async fn issue_pair(state: &AppState, user: &User) -> Result<TokenResponse, Response> {
    issue_in_family(state, user, &random_token(16))
        .await?
        .ok_or_else(|| internal("a new refresh family was already revoked"))
}

/// Issues the next pair of `family`, unless the family is revoked (`None`). A revocation racing
/// this is caught on one side or the other: the mark is written before the family's tokens are
/// spent, and the mark is checked again once the successor is stored; when found then, the
/// family is revoked once more, which spends the successor and revokes its access token.
async fn issue_in_family(
    state: &AppState,
    user: &User,
    family: &str,
) -> Result<Option<TokenResponse>, Response> {
    let issued = state
        .jwt
        .issue_for(&TokenSubject {
            sub: user.id.to_string(),
            name: Some(user.username.clone()),
            roles: user.roles.clone(),
            version: user.token_version,
        })
        .map_err(internal)?;
    let refresh = random_token(32);
    let expires_at = now().saturating_add(ttl_secs(state.settings.refresh_token_ttl.0));
    let stored = state
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
    if state.repo.family_revoked(family).await.map_err(internal)? {
        revoke_family(state, family).await?;
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
pub fn issue_session(state: &AppState, user: &User) -> Result<String, Response> {
    state
        .jwt
        .issue_for(&TokenSubject {
            sub: user.id.to_string(),
            name: Some(user.username.clone()),
            roles: user.roles.clone(),
            version: user.token_version,
        })
        .map(|issued| issued.token)
        .map_err(internal)
}

/// Why a refresh was refused. All answer the same 401.
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshRefused {
    /// Unknown, expired, or its user is gone or disabled.
    Invalid,
    /// Spent before: the family was revoked.
    Reused,
}

/// Spends `refresh_token` and issues the next pair of its family. A token spent before revokes
/// its whole family (every refresh token and the access tokens issued with them).
///
/// # Errors
/// `Ok(Err(_))` for a refused token; `Err` (a 500 response) when storage fails.
pub async fn refresh(
    state: &AppState,
    refresh_token: &str,
    ip: std::net::IpAddr,
) -> Result<Result<TokenResponse, RefreshRefused>, Response> {
    match state
        .repo
        .spend_refresh(&fingerprint(refresh_token))
        .await
        .map_err(internal)?
    {
        SpendOutcome::Invalid => Ok(Err(RefreshRefused::Invalid)),
        SpendOutcome::Reused { family_id, user_id } => {
            state.metrics.refresh("reuse_detected");
            tracing::warn!(user_id, "refresh token reused: revoking its family");
            // The name is a convenience for the reader of the trail: never worth failing for.
            let username = state
                .repo
                .get_user(user_id)
                .await
                .ok()
                .flatten()
                .map(|u| u.username);
            crate::audit::record(
                state,
                crate::audit::AuditKind::RefreshReuseDetected,
                crate::audit::AuditEvent {
                    user_id: Some(user_id),
                    username,
                    ip: Some(ip),
                    detail: Some("refresh family revoked".to_owned()),
                },
            )
            .await;
            revoke_family(state, &family_id).await?;
            Ok(Err(RefreshRefused::Reused))
        }
        SpendOutcome::Spent {
            family_id,
            user_id,
            token_version,
        } => {
            let user = state.repo.get_user(user_id).await.map_err(internal)?;
            match user {
                // A version that moved since the spend (a password, role or status change
                // racing this refresh) refuses too.
                Some(user) if !user.disabled && user.token_version == token_version => {
                    Ok(issue_in_family(state, &user, &family_id)
                        .await?
                        .ok_or(RefreshRefused::Invalid))
                }
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
pub async fn revoke_family(state: &AppState, family_id: &str) -> Result<(), Response> {
    // Every token of the family expires before a token issued now would.
    let mark_expires_at = now().saturating_add(ttl_secs(state.settings.refresh_token_ttl.0));
    let access = state
        .repo
        .revoke_family(family_id, mark_expires_at)
        .await
        .map_err(internal)?;
    let ttl = ttl_secs(state.settings.access_token_ttl.0);
    for (jti, issued_at) in access {
        state
            .revoker
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
pub async fn logout(
    state: &AppState,
    claims: &Claims,
    ip: std::net::IpAddr,
) -> Result<(), Response> {
    crate::audit::record(
        state,
        crate::audit::AuditKind::Logout,
        crate::audit::AuditEvent {
            user_id: claims.sub.parse().ok(),
            username: claims.name.clone(),
            ip: Some(ip),
            detail: None,
        },
    )
    .await;
    state
        .revoker
        .revoke(Revocation::Token {
            jti: claims.jti.clone(),
            expires_at: claims.exp,
        })
        .await
        .map_err(internal)?;
    if let Some(family) = state
        .repo
        .family_of_access(&claims.jti)
        .await
        .map_err(internal)?
    {
        revoke_family(state, &family).await?;
    }
    Ok(())
}

/// Revokes every outstanding token of a user (after a password, role or status change), on
/// every instance within the revocation sync interval.
///
/// # Errors
/// When storage fails.
pub async fn invalidate_user_tokens(state: &AppState, user_id: i64) -> anyhow::Result<()> {
    if let Some(version) = state.repo.bump_token_version(user_id).await? {
        state
            .revoker
            .revoke(Revocation::Subject {
                sub: user_id.to_string(),
                min_version: version,
            })
            .await?;
    }
    Ok(())
}
