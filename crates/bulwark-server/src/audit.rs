//! The security audit trail: who did what security-relevant thing, from where, and when.
//!
//! Each event goes to the `audit_events` table (readable at `GET /admin/audit`) and to the log
//! (target `audit`). Events never hold a password, token, cookie or hash: only kinds, user ids,
//! usernames, client IPs and short fixed details.

use std::net::IpAddr;

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::AuditRepo;

/// Kinds of audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    /// A good login (token or form).
    LoginSucceeded,
    /// A refused login (the username as typed is recorded, never the password).
    LoginFailed,
    /// A spent refresh token presented again; its family was revoked.
    RefreshReuseDetected,
    /// A logout.
    Logout,
    /// A user was created.
    UserCreated,
    /// A user was disabled.
    UserDisabled,
    /// A user was enabled again.
    UserEnabled,
    /// A user's roles changed.
    RolesChanged,
    /// A user's password changed.
    PasswordChanged,
    /// The signing key rotated.
    KeyRotated,
    /// A signing key was revoked.
    KeyRevoked,
    /// A CSRF check refused a request.
    CsrfRejected,
    /// A login was refused by a rate limit.
    LoginRateLimited,
    /// A user was deleted (the trail keeps the event, with the user's id and name).
    UserDeleted,
    /// A user set or changed their e-mail address.
    EmailChanged,
    /// A verification mail was queued.
    VerificationSent,
    /// An address was verified through its link.
    EmailVerified,
    /// A password reset was asked for (recorded for known and unknown addresses alike; the
    /// detail says which, the answer never does).
    PasswordResetRequested,
    /// A password was set through a reset link.
    PasswordReset,
}

impl AuditKind {
    /// The stored name, e.g. `login.failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSucceeded => "login.succeeded",
            AuditKind::LoginFailed => "login.failed",
            AuditKind::RefreshReuseDetected => "refresh.reuse_detected",
            AuditKind::Logout => "logout",
            AuditKind::UserCreated => "user.created",
            AuditKind::UserDisabled => "user.disabled",
            AuditKind::UserEnabled => "user.enabled",
            AuditKind::RolesChanged => "user.roles_changed",
            AuditKind::PasswordChanged => "user.password_changed",
            AuditKind::KeyRotated => "key.rotated",
            AuditKind::KeyRevoked => "key.revoked",
            AuditKind::CsrfRejected => "csrf.rejected",
            AuditKind::LoginRateLimited => "login.rate_limited",
            AuditKind::UserDeleted => "user.deleted",
            AuditKind::EmailChanged => "user.email_changed",
            AuditKind::VerificationSent => "user.verification_sent",
            AuditKind::EmailVerified => "user.email_verified",
            AuditKind::PasswordResetRequested => "password_reset.requested",
            AuditKind::PasswordReset => "password_reset.completed",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    /// The user concerned, when known.
    pub user_id: Option<i64>,
    /// The username concerned (as typed, for failed logins).
    pub username: Option<String>,
    /// The client IP.
    pub ip: Option<IpAddr>,
    /// A short, fixed detail (never a secret).
    pub detail: Option<String>,
}

/// A stored audit event, as `GET /admin/audit` answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditOut {
    /// Id, increasing.
    pub id: i64,
    /// Kind, e.g. `login.failed`.
    pub kind: String,
    /// User id, when known.
    pub user_id: Option<i64>,
    /// Username, when known.
    pub username: Option<String>,
    /// Client IP, when known.
    pub ip: Option<String>,
    /// Short detail.
    pub detail: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// Records `event` in the table and the log. A storage failure is logged, never answered: the
/// action it describes already happened.
pub async fn record(repo: &dyn AuditRepo, kind: AuditKind, event: AuditEvent) {
    tracing::info!(
        target: "audit",
        kind = kind.as_str(),
        user_id = event.user_id,
        username = event.username.as_deref(),
        ip = event.ip.map(|ip| ip.to_string()),
        detail = event.detail.as_deref(),
        "audit event"
    );
    if let Err(err) = repo
        .insert_audit(
            kind.as_str(),
            event.user_id,
            event.username.as_deref(),
            event.ip.map(|ip| ip.to_string()).as_deref(),
            event.detail.as_deref(),
        )
        .await
    {
        tracing::error!(error = %err, kind = kind.as_str(), "cannot store an audit event");
    }
}
