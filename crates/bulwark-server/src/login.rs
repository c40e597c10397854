//! Logging in, by the OAuth2 password flow (`POST /token`) or from a browser (`POST /login`):
//! the per-username limit, the credential check (with the re-hash of an outdated hash), the
//! audit trail, and the token pair or session cookie. The routes extract the request and answer
//! what this returns.

use std::{net::IpAddr, sync::Arc};

use axum::{
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use bulwark::{
    csrf::{self, Csrf},
    error::HttpError,
    password::PasswordHasher,
    rate_limit::{Decision, RateLimitPolicy},
};
use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    audit::{self, AuditEvent, AuditKind},
    db::{Repository, User},
    errors::internal,
    metrics::Metrics,
    refusals::RefusalLog,
    sessions::{self, Sessions},
};

/// The one answer to a refused login, whatever the reason.
pub const BAD_CREDENTIALS: &str = "Incorrect username or password";

/// The 403 of a good login refused by `require_verified_email`.
pub const EMAIL_NOT_VERIFIED: &str = "Email not verified";

/// Whether `user` may log in under `require_verified_email`: a verified address, or the `admin`
/// role (the first admin, created without an address, must never be locked out).
fn verified_enough(user: &User) -> bool {
    user.email_verified || user.roles.iter().any(|r| r == "admin")
}

/// 401 for a bad login.
pub fn bad_credentials() -> HttpError {
    HttpError::unauthorized(BAD_CREDENTIALS)
}

/// A short answer (the browser login's).
#[derive(Serialize, ToSchema)]
pub struct DetailOut {
    /// `OK`.
    pub detail: &'static str,
}

/// The login service, built at start-up.
pub struct Login {
    /// Users and their password hashes, and the audit trail.
    pub repo: Arc<dyn Repository>,
    /// Password hashing, off the async threads.
    pub hasher: PasswordHasher,
    /// The per-username login limit.
    pub limits: Arc<RateLimitPolicy>,
    /// Refusals waiting for their audit row.
    pub refusals: Arc<RefusalLog>,
    /// Login, rate-limit and CSRF counters.
    pub metrics: Arc<Metrics>,
    /// Token pairs and session tokens.
    pub sessions: Arc<Sessions>,
    /// CSRF tokens (the browser login checks and spends one).
    pub csrf: Arc<Csrf>,
    /// The scheme browsers use to reach this server, for same-origin checks.
    pub scheme: &'static str,
    /// Refuse (403) a good login of a user without a verified address (admins excepted).
    pub require_verified_email: bool,
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl Login {
    /// `POST /token`: a token pair for good credentials (`Cache-Control: no-store`), the same
    /// 401 for an unknown user, a wrong password or a disabled user.
    pub async fn token_pair(&self, username: &str, password: String, ip: IpAddr) -> Response {
        self.attempt(username, password, ip, async |user| {
            Ok(match self.sessions.issue_pair(&user).await {
                Ok(pair) => no_store(axum::Json(pair).into_response()),
                Err(response) => response,
            })
        })
        .await
    }

    /// `POST /login` from a browser: checks the CSRF token (`csrf_token`, bound to the CSRF
    /// cookie in `headers`) and the origin, then the credentials; sets the `session` cookie and
    /// spends the CSRF cookie.
    pub async fn browser(
        &self,
        username: &str,
        password: String,
        csrf_token: Option<&str>,
        headers: &HeaderMap,
        ip: IpAddr,
    ) -> Response {
        let token_ok = csrf_token.is_some_and(|t| self.csrf.verify(headers, t));
        if !token_ok || !self.csrf.origin_allowed(headers, self.scheme) {
            // Refused here, not by the CSRF layer: counted and audited here too.
            self.metrics.csrf_rejected.inc();
            audit::record(
                self.repo.as_ref(),
                AuditKind::CsrfRejected,
                AuditEvent {
                    ip: Some(ip),
                    detail: Some("POST /login".to_owned()),
                    ..Default::default()
                },
            )
            .await;
            return csrf::refusal();
        }
        self.attempt(username, password, ip, async |user| {
            let token = match self.sessions.issue_session(&user) {
                Ok(token) => token,
                Err(response) => return Ok(response),
            };
            let spent = self.csrf.spend(headers).await.map_err(internal)?;
            let ttl = self.sessions.access_ttl().as_secs();
            let mut response = axum::Json(DetailOut { detail: "OK" }).into_response();
            let h = response.headers_mut();
            h.append(
                header::SET_COOKIE,
                sessions::set_session(&token, ttl, self.csrf.secure()),
            );
            h.append(header::SET_COOKIE, spent);
            Ok(response)
        })
        .await
    }

    /// The per-username limit (the per-IP one ran in the middleware), checked before any
    /// password work so a guessing attack costs the server nothing once it is over the limit;
    /// then the credentials. A good login is answered by `answer`; the limit's headers go on
    /// every answer but an `Err` of `answer`, which is sent as it is.
    async fn attempt(
        &self,
        username: &str,
        password: String,
        ip: IpAddr,
        answer: impl AsyncFnOnce(User) -> Result<Response, Response>,
    ) -> Response {
        let limit = match self.check_username_limit(username, ip).await {
            Ok(decision) => decision,
            Err(response) => return response,
        };
        let mut response = match self.authenticate(username, password, ip).await {
            Ok(Some(user)) if self.require_verified_email && !verified_enough(&user) => {
                HttpError::new(axum::http::StatusCode::FORBIDDEN, EMAIL_NOT_VERIFIED)
                    .into_response()
            }
            Ok(Some(user)) => match answer(user).await {
                Ok(response) => response,
                Err(response) => return response,
            },
            Ok(None) => bad_credentials().into_response(),
            Err(response) => response,
        };
        if let Some(decision) = limit {
            decision.apply_headers(response.headers_mut());
        }
        response
    }

    /// Checks a username and password, counts and audits the outcome. `Ok(None)` for unknown
    /// user, wrong password or disabled user alike; a legacy or outdated hash is replaced after
    /// a good login.
    ///
    /// # Errors
    /// A 500 response when the database or hasher fails.
    pub async fn authenticate(
        &self,
        username: &str,
        password: String,
        ip: IpAddr,
    ) -> Result<Option<User>, Response> {
        let outcome = self.verify_credentials(username, password).await?;
        self.metrics.login(outcome.is_some());
        let (kind, user_id) = match &outcome {
            Some(user) => (AuditKind::LoginSucceeded, Some(user.id)),
            None => (AuditKind::LoginFailed, None),
        };
        audit::record(
            self.repo.as_ref(),
            kind,
            AuditEvent {
                user_id,
                username: Some(username.chars().take(64).collect()),
                ip: Some(ip),
                detail: None,
            },
        )
        .await;
        Ok(outcome)
    }

    /// The per-username login limit, with an audit event when it refuses.
    ///
    /// # Errors
    /// The 429 (or 503) response to send.
    pub async fn check_username_limit(
        &self,
        username: &str,
        ip: IpAddr,
    ) -> Result<Option<Decision>, Response> {
        let result = self.limits.check_login_username(username).await;
        if let Err(response) = &result
            && response.status() == axum::http::StatusCode::TOO_MANY_REQUESTS
        {
            self.metrics.rate_limited("login_username");
            // Counted, never awaited: one audit row per client and window (crate::refusals).
            self.refusals
                .count_for(AuditKind::LoginRateLimited, ip, Some(username), || {
                    "per-username limit".to_owned()
                });
        }
        result
    }

    async fn verify_credentials(
        &self,
        username: &str,
        password: String,
    ) -> Result<Option<User>, Response> {
        let password = SecretString::from(password);
        let credentials = self
            .repo
            .find_credentials(username)
            .await
            .map_err(internal)?;
        let stored = credentials.as_ref().map(|c| c.password_hash.as_str());
        let verification = self
            .hasher
            .verify(password.clone(), stored)
            .await
            .map_err(internal)?;
        let Some(credentials) = credentials else {
            return Ok(None);
        };
        if !verification.is_match() || credentials.user.disabled {
            return Ok(None);
        }
        if verification.needs_rehash() {
            let (hasher, repo, id) = (self.hasher.clone(), self.repo.clone(), credentials.user.id);
            // Written only over the hash just verified: a password changed while this re-hash
            // ran must not be replaced by the old one.
            let verified = credentials.password_hash;
            tokio::spawn(async move {
                match hasher.hash(password).await {
                    Ok(hash) => match repo
                        .upgrade_password_hash(id, &verified, hash.as_str())
                        .await
                    {
                        Ok(true) => {
                            tracing::info!(user_id = id, "password hash upgraded to Argon2id")
                        }
                        Ok(false) => {
                            tracing::info!(
                                user_id = id,
                                "password changed meanwhile; re-hash dropped"
                            );
                        }
                        Err(err) => {
                            tracing::error!(error = %err, user_id = id, "could not store re-hashed password");
                        }
                    },
                    Err(err) => tracing::error!(error = %err, user_id = id, "re-hashing failed"),
                }
            });
        }
        Ok(Some(credentials.user))
    }
}
