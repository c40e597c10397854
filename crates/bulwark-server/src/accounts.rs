//! Self-service accounts: password change, e-mail address and its verification, password reset,
//! and deleting a user. The routes extract requests and answer what this returns; mails go
//! through the durable queue (`bulwark::mail`), never straight to the mail server.
//!
//! Tokens in mail links are 256 random bits from the OS generator, stored only as SHA-256
//! hashes, single-use (spent by one `DELETE ... RETURNING`), and short-lived. A newer token of a
//! user replaces their older ones of the same purpose; a password set by any path deletes every
//! reset token of the user (`UserRepo::set_password_hash`); a new address deletes the
//! verification tokens of the old one.

use std::{net::IpAddr, sync::Arc, time::Duration};

use askama::Template;
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use bulwark::{
    error::{ErrorDetail, HttpError, ValidationErrors},
    mail::{Mail, worker::MailSender},
    password::{PasswordHasher, PasswordPolicy},
    rate_limit::{FailMode, Quota, RateLimitPolicy},
    secret::{fingerprint, random_token},
    validation::with_safe_input,
};
use secrecy::SecretString;
use serde_json::json;

use crate::{
    audit::{self, AuditEvent, AuditKind},
    config::PublicUrl,
    db::{Repository, TokenPurpose, User, now},
    errors::internal,
    metrics::Metrics,
    sessions::{Sessions, TokenResponse},
};

/// The one answer to a bad, spent or expired mail token.
pub const INVALID_TOKEN: &str = "Invalid or expired token";

/// The one answer to a password-reset request, whatever the address.
pub const RESET_REQUESTED: &str = "If the address is known, a reset link is on its way";

/// Longest address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// A reset request recorded this long ago and still there was not handled by the process that
/// answered it (which takes milliseconds): the sweeper handles it.
pub const STALE_RESET_REQUEST: Duration = Duration::from_secs(5);

/// Reset requests being looked up and mailed at once, beyond which new ones are left to the
/// sweeper (and logged): a flood from many addresses must not pile up tasks without bound.
pub const MAX_PENDING_RESETS: usize = 256;

/// Why an account operation was refused.
#[derive(Debug)]
pub enum AccountError {
    /// 422 with these details.
    Invalid(ValidationErrors),
    /// 400 with this detail.
    BadRequest(&'static str),
    /// 404 with this detail.
    NotFound(&'static str),
    /// 409 with this detail.
    Conflict(&'static str),
    /// A response made elsewhere (a 429 or 503 of a rate limit, a 500).
    Response(Response),
}

impl IntoResponse for AccountError {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid(errors) => errors.into_response(),
            Self::BadRequest(detail) => {
                HttpError::new(StatusCode::BAD_REQUEST, detail).into_response()
            }
            Self::NotFound(detail) => HttpError::new(StatusCode::NOT_FOUND, detail).into_response(),
            Self::Conflict(detail) => HttpError::conflict(detail).into_response(),
            Self::Response(response) => response,
        }
    }
}

impl From<Response> for AccountError {
    fn from(response: Response) -> Self {
        Self::Response(response)
    }
}

fn failed(err: impl crate::errors::Failure) -> AccountError {
    AccountError::Response(internal(err))
}

/// Checks an e-mail address as the contract writes it (at most 254 characters, one `@`) and as
/// a mail server takes it; the detail is at `["body", field]`, without echoing the input when
/// it is long.
///
/// # Errors
/// The 422 detail.
pub fn check_email(email: &str, field: &str) -> Result<(), ErrorDetail> {
    let loc: Vec<bulwark::error::LocItem> = vec!["body".into(), field.into()];
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(ErrorDetail::new(
            "string_too_long",
            loc,
            "String should have at most 254 characters",
        )
        .with_ctx(json!({"max_length": MAX_EMAIL_CHARS})));
    }
    let one_at = email.matches('@').count() == 1;
    if !one_at || bulwark::mail::check_address(email).is_err() {
        return Err(with_safe_input(
            ErrorDetail::new(
                "value_error",
                loc,
                "value is not a valid email address: expected one address such as ada@example.com",
            ),
            json!(email),
        ));
    }
    Ok(())
}

/// The account service, built at start-up.
pub struct Accounts {
    /// Users, account tokens and the audit trail.
    pub repo: Arc<dyn Repository>,
    /// Password hashing, off the async threads.
    pub hasher: PasswordHasher,
    /// Rules for new passwords.
    pub policy: Arc<PasswordPolicy>,
    /// Token pairs, and revoking a user's tokens.
    pub sessions: Arc<Sessions>,
    /// The mail queue's sender.
    pub mail: MailSender,
    /// Rate limits (the per-address limit of reset requests is checked here).
    pub limits: Arc<RateLimitPolicy>,
    /// `POST /password-reset/request` per address.
    pub reset_per_address: Quota,
    /// Verification mails per user (an address change or a resend): the server must not become
    /// a way to mail an arbitrary address over and over.
    pub verification_mails_per_user: Quota,
    /// Mail counters.
    pub metrics: Arc<Metrics>,
    /// The base of links in mails.
    pub public_url: PublicUrl,
    /// Lifetime of reset links.
    pub reset_ttl: Duration,
    /// Lifetime of verification links.
    pub verify_ttl: Duration,
    /// Reset requests being handled in the background.
    pub pending_resets: Arc<tokio::sync::Semaphore>,
}

/// A verification or reset mail's fields.
struct MailFields<'a> {
    username: &'a str,
    link: &'a str,
    ip: String,
    valid_for: String,
}

#[derive(Template)]
#[template(path = "mail/reset.txt")]
struct ResetText<'a> {
    m: &'a MailFields<'a>,
}

#[derive(Template)]
#[template(path = "mail/reset.html")]
struct ResetHtml<'a> {
    m: &'a MailFields<'a>,
}

#[derive(Template)]
#[template(path = "mail/verify.txt")]
struct VerifyText<'a> {
    m: &'a MailFields<'a>,
}

#[derive(Template)]
#[template(path = "mail/verify.html")]
struct VerifyHtml<'a> {
    m: &'a MailFields<'a>,
}

/// `30 minutes`, `24 hours`, `2 days`.
fn describe(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs.is_multiple_of(86_400) && secs >= 86_400 && secs / 86_400 != 1 {
        (secs / 86_400, "day")
    } else if secs.is_multiple_of(3600) && secs >= 3600 {
        (secs / 3600, "hour")
    } else {
        (secs.div_ceil(60), "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn ttl_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl Accounts {
    /// A token pair for `user` after a successful change of password: the current password
    /// checked, the new one held to the policy, every earlier token, refresh family and session
    /// of the user revoked (API keys stay).
    ///
    /// # Errors
    /// 400 `Incorrect password`, 422 for a weak new password, the per-username login limit's
    /// 429, 500.
    pub async fn change_password(
        &self,
        login: &crate::login::Login,
        user_id: i64,
        current: String,
        new: String,
        ip: IpAddr,
    ) -> Result<TokenResponse, AccountError> {
        let user = self.live_user(user_id).await?;
        // Guessing the current password with a stolen token costs what guessing it at /token
        // does: the per-username login limit.
        login.check_username_limit(&user.username, ip).await?;
        let credentials = self
            .repo
            .find_credentials(&user.username)
            .await
            .map_err(failed)?
            .filter(|c| c.user.id == user.id)
            .ok_or_else(|| AccountError::Response(not_authenticated()))?;
        let verification = self
            .hasher
            .verify(
                SecretString::from(current),
                Some(&credentials.password_hash),
            )
            .await
            .map_err(failed)?;
        if !verification.is_match() {
            audit::record(
                self.repo.as_ref(),
                AuditKind::LoginFailed,
                event(&user, ip, "password change: wrong current password"),
            )
            .await;
            return Err(AccountError::BadRequest("Incorrect password"));
        }
        self.check_password(&new, &user, "new_password")?;
        self.set_password(&user, new).await?;
        audit::record(
            self.repo.as_ref(),
            AuditKind::PasswordChanged,
            event(&user, ip, "by the user"),
        )
        .await;
        let user = self.live_user(user_id).await?;
        self.sessions
            .issue_pair(&user)
            .await
            .map_err(AccountError::Response)
    }

    /// Sets the caller's address (unverified) and mails a verification link to it.
    ///
    /// # Errors
    /// 422 for a bad address, 409 when another user has it, 500.
    pub async fn set_email(
        &self,
        user_id: i64,
        email: &str,
        ip: IpAddr,
    ) -> Result<User, AccountError> {
        check_email(email, "email").map_err(one_error)?;
        let user = self.live_user(user_id).await?;
        // A taken address is refused before it costs a verification mail of the budget.
        if self
            .repo
            .find_by_email(email)
            .await
            .map_err(failed)?
            .is_some_and(|other| other.id != user.id)
        {
            return Err(AccountError::Conflict("Email already registered"));
        }
        self.check_verification_limit(&user).await?;
        match self.repo.set_email(user.id, Some(email)).await {
            Ok(true) => {}
            Ok(false) => return Err(AccountError::Response(not_authenticated())),
            Err(crate::db::DbError::Conflict) => {
                return Err(AccountError::Conflict("Email already registered"));
            }
            Err(err) => return Err(failed(err)),
        }
        let user = self.live_user(user_id).await?;
        audit::record(
            self.repo.as_ref(),
            AuditKind::EmailChanged,
            event(&user, ip, "by the user"),
        )
        .await;
        self.send_verification_mail(&user, ip).await?;
        Ok(user)
    }

    /// Mails (again) a verification link to the caller's unverified address.
    ///
    /// # Errors
    /// 400 when there is no address or it is verified, 500.
    pub async fn resend_verification(&self, user_id: i64, ip: IpAddr) -> Result<(), AccountError> {
        let user = self.live_user(user_id).await?;
        match (&user.email, user.email_verified) {
            (None, _) => Err(AccountError::BadRequest("No email address to verify")),
            (Some(_), true) => Err(AccountError::BadRequest("Email already verified")),
            (Some(_), false) => {
                self.check_verification_limit(&user).await?;
                self.send_verification_mail(&user, ip).await
            }
        }
    }

    /// The per-user limit of verification mails.
    async fn check_verification_limit(&self, user: &User) -> Result<(), AccountError> {
        let key = format!("verify-mail:{}", user.id);
        self.limits
            .check_key(&key, &self.verification_mails_per_user, FailMode::Open)
            .await
            .map(drop)
            .map_err(|response| {
                if response.status() == StatusCode::TOO_MANY_REQUESTS {
                    self.metrics.rate_limited("verification_mail");
                }
                AccountError::Response(response)
            })
    }

    /// Mails a verification link to a new user's address (signup, admin creation), so that a
    /// user who cannot log in before verifying (`require_verified_email`) can verify. A failure
    /// to queue is logged: the user exists, and can ask again once logged in.
    pub async fn welcome(&self, user: &User, ip: IpAddr) {
        if user.email.is_none() {
            return;
        }
        if let Err(err) = self.send_verification_mail(user, ip).await {
            let status = err.into_response().status();
            tracing::error!(user_id = user.id, %status, "verification mail of a new user not queued");
        }
    }

    /// Spends a verification token: the address it was sent to is verified, if it is still the
    /// user's.
    ///
    /// # Errors
    /// 400 `Invalid or expired token`, 500.
    pub async fn confirm_email(&self, token: &str, ip: IpAddr) -> Result<User, AccountError> {
        let spent = self
            .repo
            .spend_account_token(&fingerprint(token), TokenPurpose::VerifyEmail, now())
            .await
            .map_err(failed)?
            .ok_or(AccountError::BadRequest(INVALID_TOKEN))?;
        let Some(email) = spent.email else {
            return Err(AccountError::BadRequest(INVALID_TOKEN));
        };
        if !self
            .repo
            .mark_email_verified(spent.user_id, &email)
            .await
            .map_err(failed)?
        {
            return Err(AccountError::BadRequest(INVALID_TOKEN));
        }
        let user = self
            .repo
            .get_user(spent.user_id)
            .await
            .map_err(failed)?
            .ok_or(AccountError::BadRequest(INVALID_TOKEN))?;
        audit::record(
            self.repo.as_ref(),
            AuditKind::EmailVerified,
            event(&user, ip, "through the mailed link"),
        )
        .await;
        Ok(user)
    }

    /// A password-reset request: the per-address limit (counted whatever the address), then
    /// the rest in the background, so that the answer and its timing are the same for a known,
    /// unknown, unverified or disabled address. Only a known, enabled user gets a mail.
    ///
    /// # Errors
    /// 422 for a malformed address; the per-address limit's 429 (or 503 when its store is
    /// down).
    pub async fn request_reset(
        self: &Arc<Self>,
        email: &str,
        ip: IpAddr,
    ) -> Result<Option<bulwark::rate_limit::Decision>, AccountError> {
        check_email(email, "email").map_err(one_error)?;
        let key = format!("reset-address:{}", email.trim().to_lowercase());
        let decision = self
            .limits
            .check_key(&key, &self.reset_per_address, FailMode::Closed)
            .await?;
        // The same write for every address; durable, so that a request answered just before a
        // crash is handled after the restart (`Accounts::spawn_sweeper`).
        let id = self
            .repo
            .insert_reset_request(email, Some(&ip.to_string()))
            .await
            .map_err(failed)?;
        match Arc::clone(&self.pending_resets).try_acquire_owned() {
            Ok(permit) => {
                let (accounts, email) = (Arc::clone(self), email.to_owned());
                tokio::spawn(async move {
                    accounts.mail_reset_link(&email, ip).await;
                    if let Err(err) = accounts.repo.delete_reset_request(id).await {
                        // Left for the sweeper: handled again (a second link) rather than lost.
                        tracing::warn!(error = %err, "a handled reset request stays recorded");
                    }
                    drop(permit);
                });
            }
            Err(_) => tracing::warn!(
                "too many password-reset requests in progress: one left for the sweeper"
            ),
        }
        Ok(decision)
    }

    /// Handles reset requests that were answered but not handled (their process died, or too
    /// many were in progress): at start and then every `every`, each request recorded more than
    /// [`STALE_RESET_REQUEST`] ago. Instances sharing a database take each request once.
    pub fn spawn_sweeper(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let before = now().saturating_sub(ttl_secs(STALE_RESET_REQUEST));
                loop {
                    match self.repo.take_stale_reset_request(before).await {
                        Ok(Some(request)) => {
                            let ip = request
                                .ip
                                .as_deref()
                                .and_then(|ip| ip.parse().ok())
                                .unwrap_or(IpAddr::from([0, 0, 0, 0]));
                            tracing::info!(id = request.id, "handling a reset request left over");
                            self.mail_reset_link(&request.email, ip).await;
                        }
                        Ok(None) => break,
                        Err(err) => {
                            tracing::warn!(error = %err, "reset requests left over: cannot read them now");
                            break;
                        }
                    }
                }
            }
        })
    }

    /// The background half of [`Accounts::request_reset`].
    async fn mail_reset_link(&self, email: &str, ip: IpAddr) {
        let user = match self.repo.find_by_email(email).await {
            Ok(user) => user,
            Err(err) => {
                tracing::error!(error = %err, "password reset: cannot look the address up");
                return;
            }
        };
        let (user, detail) = match user {
            Some(user) if !user.disabled => (user, "link mailed"),
            Some(user) => {
                let event = event(&user, ip, "disabled user: no mail");
                audit::record(self.repo.as_ref(), AuditKind::PasswordResetRequested, event).await;
                return;
            }
            None => {
                let event = AuditEvent {
                    ip: Some(ip),
                    detail: Some("unknown address: no mail".to_owned()),
                    ..Default::default()
                };
                audit::record(self.repo.as_ref(), AuditKind::PasswordResetRequested, event).await;
                return;
            }
        };
        let to = user.email.clone().unwrap_or_else(|| email.to_owned());
        let result = self
            .send_link(&user, TokenPurpose::PasswordReset, &to, ip)
            .await;
        if let Err(err) = result {
            tracing::error!(error = %err, user_id = user.id, "password reset: mail not queued");
            return;
        }
        audit::record(
            self.repo.as_ref(),
            AuditKind::PasswordResetRequested,
            event(&user, ip, detail),
        )
        .await;
    }

    /// Sets a new password through a reset link. A weak password is refused before the token is
    /// spent (it stays usable); then the token is spent (once, whatever the concurrency), the
    /// password set, every other reset token deleted, and every token, session and refresh
    /// family of the user revoked.
    ///
    /// # Errors
    /// 400 `Invalid or expired token`, 422 for a weak password, 500.
    pub async fn confirm_reset(
        &self,
        token: &str,
        new_password: String,
        ip: IpAddr,
    ) -> Result<(), AccountError> {
        let hash = fingerprint(token);
        let found = self
            .repo
            .find_account_token(&hash, TokenPurpose::PasswordReset, now())
            .await
            .map_err(failed)?
            .ok_or(AccountError::BadRequest(INVALID_TOKEN))?;
        let user = match self.repo.get_user(found.user_id).await.map_err(failed)? {
            Some(user) if !user.disabled => user,
            _ => return Err(AccountError::BadRequest(INVALID_TOKEN)),
        };
        self.check_password(&new_password, &user, "new_password")?;
        let password_hash = self
            .hasher
            .hash(SecretString::from(new_password))
            .await
            .map_err(failed)?;
        // Spent only now, once the password is known to be acceptable; of two requests racing
        // with one token, one gets it.
        self.repo
            .spend_account_token(&hash, TokenPurpose::PasswordReset, now())
            .await
            .map_err(failed)?
            .ok_or(AccountError::BadRequest(INVALID_TOKEN))?;
        self.repo
            .set_password_hash(user.id, password_hash.as_str())
            .await
            .map_err(failed)?;
        self.sessions
            .invalidate_user_tokens(user.id)
            .await
            .map_err(failed)?;
        audit::record(
            self.repo.as_ref(),
            AuditKind::PasswordReset,
            event(&user, ip, "through the mailed link"),
        )
        .await;
        Ok(())
    }

    /// Deletes a user with their items and tokens; their outstanding tokens are revoked first
    /// (on every instance, like a disabled user's). The audit trail keeps the event.
    ///
    /// # Errors
    /// 409 when an admin deletes themself, 404 for no such user, 500.
    pub async fn delete_user(
        &self,
        admin: &bulwark::jwt::Claims,
        user_id: i64,
        ip: IpAddr,
    ) -> Result<(), AccountError> {
        if admin.sub == user_id.to_string() {
            return Err(AccountError::Conflict("You cannot delete yourself"));
        }
        let user = self
            .repo
            .get_user(user_id)
            .await
            .map_err(failed)?
            .ok_or(AccountError::NotFound("User not found"))?;
        delete_user(self.repo.as_ref(), &self.sessions, &user)
            .await
            .map_err(failed)?;
        audit::record(
            self.repo.as_ref(),
            AuditKind::UserDeleted,
            AuditEvent {
                user_id: Some(user.id),
                username: Some(user.username.clone()),
                ip: Some(ip),
                detail: Some(format!("by admin {}", admin.sub)),
            },
        )
        .await;
        Ok(())
    }

    /// The user, if they exist and are enabled (else the request's token is stale: 401).
    async fn live_user(&self, user_id: i64) -> Result<User, AccountError> {
        match self.repo.get_user(user_id).await.map_err(failed)? {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(AccountError::Response(not_authenticated())),
        }
    }

    fn check_password(&self, password: &str, user: &User, field: &str) -> Result<(), AccountError> {
        let mut inputs = vec![user.username.as_str()];
        if let Some(email) = &user.email {
            inputs.push(email.as_str());
        }
        self.policy
            .check(password, &inputs)
            .map_err(|v| one_error(v.to_error_detail(["body", field])))
    }

    /// Hashes and stores a new password (which deletes the user's reset tokens), then revokes
    /// every token of the user.
    async fn set_password(&self, user: &User, password: String) -> Result<(), AccountError> {
        let hash = self
            .hasher
            .hash(SecretString::from(password))
            .await
            .map_err(failed)?;
        self.repo
            .set_password_hash(user.id, hash.as_str())
            .await
            .map_err(failed)?;
        self.sessions
            .invalidate_user_tokens(user.id)
            .await
            .map_err(failed)
    }

    async fn send_verification_mail(&self, user: &User, ip: IpAddr) -> Result<(), AccountError> {
        let Some(to) = user.email.clone() else {
            return Err(AccountError::BadRequest("No email address to verify"));
        };
        self.send_link(user, TokenPurpose::VerifyEmail, &to, ip)
            .await
            .map_err(failed)?;
        audit::record(
            self.repo.as_ref(),
            AuditKind::VerificationSent,
            event(user, ip, "link mailed"),
        )
        .await;
        Ok(())
    }

    /// Stores a new token for `purpose` (replacing the user's older ones) and queues the mail
    /// carrying its link to `to`.
    async fn send_link(
        &self,
        user: &User,
        purpose: TokenPurpose,
        to: &str,
        ip: IpAddr,
    ) -> anyhow::Result<()> {
        let token = random_token(32);
        let (ttl, page) = match purpose {
            TokenPurpose::PasswordReset => (self.reset_ttl, "/password-reset"),
            TokenPurpose::VerifyEmail => (self.verify_ttl, "/verify-email"),
        };
        let email = (purpose == TokenPurpose::VerifyEmail).then_some(to);
        self.repo
            .insert_account_token(
                &fingerprint(&token),
                purpose,
                user.id,
                email,
                now().saturating_add(ttl_secs(ttl)),
            )
            .await?;
        let link = format!("{}?token={token}", self.public_url.join(page));
        let fields = MailFields {
            username: &user.username,
            link: &link,
            ip: ip.to_string(),
            valid_for: describe(ttl),
        };
        let mail = match purpose {
            TokenPurpose::PasswordReset => Mail {
                to: to.to_owned(),
                subject: "Reset your password".to_owned(),
                text: ResetText { m: &fields }.render()?,
                html: ResetHtml { m: &fields }.render()?,
            },
            TokenPurpose::VerifyEmail => Mail {
                to: to.to_owned(),
                subject: "Confirm your email address".to_owned(),
                text: VerifyText { m: &fields }.render()?,
                html: VerifyHtml { m: &fields }.render()?,
            },
        };
        self.mail.send(&mail).await?;
        self.metrics.mail("queued");
        Ok(())
    }
}

/// Revokes every outstanding token of `user`, then deletes them with their items, refresh
/// tokens and account tokens (shared by the admin route and `bulwark users delete`).
///
/// # Errors
/// When storage fails.
pub async fn delete_user(
    repo: &dyn Repository,
    sessions: &Sessions,
    user: &User,
) -> anyhow::Result<()> {
    sessions.invalidate_user_tokens(user.id).await?;
    repo.delete_user(user.id).await?;
    Ok(())
}

fn one_error(detail: ErrorDetail) -> AccountError {
    let mut errors = ValidationErrors::new();
    errors.push(detail);
    AccountError::Invalid(errors)
}

fn not_authenticated() -> Response {
    HttpError::unauthorized("Could not validate credentials").into_response()
}

fn event(user: &User, ip: IpAddr, detail: &str) -> AuditEvent {
    AuditEvent {
        user_id: Some(user.id),
        username: Some(user.username.clone()),
        ip: Some(ip),
        detail: Some(detail.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn lifetimes_are_said_in_words() {
        assert_eq!(super::describe(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(super::describe(Duration::from_secs(60)), "1 minute");
        assert_eq!(super::describe(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(super::describe(Duration::from_secs(3600)), "1 hour");
        assert_eq!(super::describe(Duration::from_secs(2 * 86_400)), "2 days");
        assert_eq!(super::describe(Duration::from_secs(90)), "2 minutes");
    }

    #[test]
    fn addresses_follow_the_contract() {
        assert!(super::check_email("ada@example.com", "email").is_ok());
        assert!(super::check_email("Ada.Lovelace+x@Example.COM", "email").is_ok());
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "ada",
            "ada@@example.com",
            "a@b@example.com",
            "ada@",
            long.as_str(),
        ] {
            assert!(super::check_email(bad, "email").is_err(), "{bad:?}");
        }
    }
}
