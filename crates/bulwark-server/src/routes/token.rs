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
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use bulwark::client_ip::ClientIp;

use crate::{
    sessions::{self, TokenResponse},
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
    state
        .login
        .token_pair(&form.username, form.password, ip)
        .await
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
    match state.sessions.refresh(&body.refresh_token, ip).await {
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
    match state.sessions.logout(&claims, ip).await {
        Ok(()) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            // A cookie session (which passed the CSRF check to get here) also loses its cookie.
            if matches!(
                source,
                Some(axum::Extension(bulwark::jwt::AuthSource::Cookie))
            ) {
                response.headers_mut().append(
                    header::SET_COOKIE,
                    sessions::clear_session(state.csrf.secure()),
                );
            }
            response
        }
        Err(response) => response,
    }
}
