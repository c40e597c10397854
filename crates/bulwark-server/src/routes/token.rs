//! `POST /token`: the OAuth2 password flow.

use axum::http::StatusCode;
use axum::{
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use bulwark::{
    error::{ErrorDetail, HttpError},
    jwt::CurrentUser,
    validation::{Form, JsonOrForm},
};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use bulwark::client_ip::ClientIp;

use crate::{
    audit::{self, AuditEvent, AuditKind},
    routes::internal,
    sessions::{self, TokenResponse, issue_pair},
    state::AppState,
};

/// The token routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

/// The OAuth2 password-flow form. Extra OAuth2 fields (`client_id`, ...) are ignored.
#[derive(Deserialize, ToSchema)]
pub struct LoginForm {
    /// Username (case-insensitive). An empty field counts as missing.
    #[schema(min_length = 1)]
    pub username: String,
    /// Password; never echoed in errors. An empty field counts as missing.
    #[schema(format = Password, min_length = 1)]
    pub password: String,
    /// `password` when present.
    #[schema(pattern = "^password$", nullable = false)]
    pub grant_type: Option<String>,
    /// Ignored: scopes are not used.
    #[schema(nullable = false)]
    pub scope: Option<String>,
}

const BAD_CREDENTIALS: &str = "Incorrect username or password";

/// Exchange a username and password for an access token (OAuth2 password flow).
///
/// Unknown user, wrong password and disabled user all answer the same 401, after the same
/// amount of work (a dummy hash is verified for unknown users).
#[utoipa::path(post, path = "/token", tag = "auth",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse),
        (status = 401, description = "Incorrect username or password (unknown user, wrong password or disabled user alike)"),
        (status = 415), (status = 422),
        (status = 503, description = "Rate-limit store (Redis) unreachable: login limits fail closed")))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Some(grant) = form.grant_type.as_deref()
        && grant != "password"
    {
        return bulwark::error::ValidationErrors::from(
            ErrorDetail::new(
                "string_pattern_mismatch",
                ["body", "grant_type"],
                "String should match pattern '^password$'",
            )
            .with_input(serde_json::json!(grant)),
        )
        .into_response();
    }
    // Per-username limit (the per-IP one ran in the middleware), checked before any password
    // work so a guessing attack costs the server nothing once it is over the limit.
    let limit = match check_username_limit(&state, &form.username, ip).await {
        Ok(decision) => decision,
        Err(response) => return response,
    };
    let mut response = match authenticate(&state, &form.username, form.password, ip).await {
        Ok(Some(user)) => match issue_pair(&state, &user).await {
            Ok(pair) => {
                let mut response = axum::Json(pair).into_response();
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Err(response) => response,
        },
        Ok(None) => HttpError::unauthorized(BAD_CREDENTIALS).into_response(),
        Err(response) => response,
    };
    if let Some(decision) = limit {
        decision.apply_headers(response.headers_mut());
    }
    response
}

/// Checks a username and password. `Ok(None)` for unknown user, wrong password or disabled
/// user alike; a legacy or outdated hash is replaced after a good login.
///
/// # Errors
/// A 500 response when the database or hasher fails.
pub async fn authenticate(
    state: &AppState,
    username: &str,
    password: String,
    ip: std::net::IpAddr,
) -> Result<Option<crate::db::User>, Response> {
    let outcome = verify_credentials(state, username, password).await?;
    state.metrics.login(outcome.is_some());
    let (kind, user_id) = match &outcome {
        Some(user) => (AuditKind::LoginSucceeded, Some(user.id)),
        None => (AuditKind::LoginFailed, None),
    };
    audit::record(
        state,
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
    state: &AppState,
    username: &str,
    ip: std::net::IpAddr,
) -> Result<Option<bulwark::rate_limit::Decision>, Response> {
    let result = state.limits.check_login_username(username).await;
    if let Err(response) = &result
        && response.status() == axum::http::StatusCode::TOO_MANY_REQUESTS
    {
        state.metrics.rate_limited("login_username");
        // Counted, never awaited: one audit row per client and window (crate::refusals).
        state
            .refusals
            .count_for(AuditKind::LoginRateLimited, ip, Some(username), || {
                "per-username limit".to_owned()
            });
    }
    result
}

async fn verify_credentials(
    state: &AppState,
    username: &str,
    password: String,
) -> Result<Option<crate::db::User>, Response> {
    let password = SecretString::from(password);
    let credentials = state
        .repo
        .find_credentials(username)
        .await
        .map_err(internal)?;
    let stored = credentials.as_ref().map(|c| c.password_hash.as_str());
    let verification = state
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
        let (hasher, repo, id) = (
            state.hasher.clone(),
            state.repo.clone(),
            credentials.user.id,
        );
        // Written only over the hash just verified: a password changed while this re-hash ran
        // must not be replaced by the old one.
        let verified = credentials.password_hash;
        tokio::spawn(async move {
            match hasher.hash(password).await {
                Ok(hash) => match repo
                    .upgrade_password_hash(id, &verified, hash.as_str())
                    .await
                {
                    Ok(true) => tracing::info!(user_id = id, "password hash upgraded to Argon2id"),
                    Ok(false) => {
                        tracing::info!(user_id = id, "password changed meanwhile; re-hash dropped");
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

/// 401 for a bad login, exposed for other login routes.
pub fn bad_credentials() -> HttpError {
    HttpError::unauthorized(BAD_CREDENTIALS)
}

/// Body of `POST /token/refresh` (JSON or form).
#[derive(Deserialize, ToSchema)]
pub struct RefreshBody {
    /// The refresh token from the last pair. Never echoed in errors. An empty form field counts
    /// as missing.
    #[schema(min_length = 1)]
    pub refresh_token: String,
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Exchange a refresh token for a new pair. The presented token is spent; presenting a spent
/// token again revokes its whole family (every token descended from the same login).
#[utoipa::path(post, path = "/token/refresh", tag = "auth",
    request_body(content(
        (RefreshBody = "application/json"),
        (RefreshBody = "application/x-www-form-urlencoded")
    )),
    responses((status = 200, body = TokenResponse), (status = 401), (status = 415), (status = 422)))]
async fn refresh(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonOrForm(body): JsonOrForm<RefreshBody>,
) -> Response {
    match sessions::refresh(&state, &body.refresh_token, ip).await {
        Ok(Ok(pair)) => {
            state.metrics.refresh("success");
            no_store(axum::Json(pair).into_response())
        }
        Ok(Err(refused)) => {
            // A reuse was counted as `reuse_detected`: outcomes do not overlap.
            if refused != sessions::RefreshRefused::Reused {
                state.metrics.refresh("refused");
            }
            HttpError::unauthorized("Invalid refresh token").into_response()
        }
        Err(response) => response,
    }
}

/// Revoke the presented access token and its refresh family at once. With the session cookie
/// (which needs a CSRF token), the cookie is cleared too.
#[utoipa::path(post, path = "/logout", tag = "auth",
    responses((status = 204), (status = 401), (status = 403)))]
async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    source: Option<axum::Extension<bulwark::jwt::AuthSource>>,
    CurrentUser(claims): CurrentUser,
) -> Response {
    match sessions::logout(&state, &claims, ip).await {
        Ok(()) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            // A cookie session (which passed the CSRF check to get here) also loses its cookie.
            if matches!(
                source,
                Some(axum::Extension(bulwark::jwt::AuthSource::Cookie))
            ) {
                response.headers_mut().append(
                    header::SET_COOKIE,
                    super::browser::clear_session(state.csrf.secure()),
                );
            }
            response
        }
        Err(response) => response,
    }
}
