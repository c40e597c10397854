//! Browser sessions: CSRF tokens, the login form, the session cookie, static assets.
//!
//! The `session` cookie holds an access token — a JWT like the bearer ones, with the same
//! lifetime (`access_token_ttl`), the same claims and the same revocation rules (logout, a
//! password/role/status change, a revoked signing key). It is `HttpOnly` (scripts cannot read
//! it), `SameSite=Lax` and `Secure` whenever TLS is on or `secure_cookies = true`. Every unsafe
//! request authenticated by it needs a CSRF token (see `bulwark::csrf`); bearer requests do not.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use bulwark::{csrf, error::HttpError, validation::Form};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    login::DetailOut,
    pages::{self, with_cookie},
    state::AppState,
};

/// The stylesheet's path (not in the OpenAPI document).
pub const STYLESHEET: &str = "/static/bulwark.css";

/// The script of the account pages (not in the OpenAPI document): posts their forms and shows
/// the answer in the page.
pub const ACCOUNT_SCRIPT: &str = "/static/account.js";

/// The browser routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(csrf_token))
        .routes(routes!(login_page, login))
        .route(STYLESHEET, axum::routing::get(stylesheet))
        .route(ACCOUNT_SCRIPT, axum::routing::get(account_script))
}

/// A CSRF token.
#[derive(Serialize, ToSchema)]
pub struct CsrfTokenOut {
    /// Send it as `X-CSRF-Token` (or the `csrf_token` form field) with unsafe requests
    /// authenticated by the session cookie.
    pub csrf_token: String,
}

/// A CSRF token bound to the browser's CSRF cookie (set when missing).
#[utoipa::path(get, path = "/csrftoken/", tag = "browser",
    responses((status = 200, body = CsrfTokenOut)))]
async fn csrf_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (token, set_cookie) = state.csrf.issue(&headers);
    with_cookie(
        axum::Json(CsrfTokenOut { csrf_token: token }).into_response(),
        set_cookie,
    )
}

/// The login form, with a hidden CSRF token.
#[utoipa::path(get, path = "/login", tag = "browser",
    responses((status = 200, content_type = "text/html", body = String)))]
async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    pages::login_page(&state.csrf, &headers)
}

/// The login form's fields.
#[derive(Deserialize, ToSchema)]
pub struct BrowserLogin {
    /// Username (case-insensitive). An empty field counts as missing.
    #[schema(min_length = 1)]
    pub username: String,
    /// Password; never echoed. An empty field counts as missing.
    #[schema(format = Password, min_length = 1)]
    pub password: String,
    /// The token from `/login` or `/csrftoken/`.
    #[schema(nullable = false)]
    pub csrf_token: Option<String>,
}

/// Log in from a browser: checks the CSRF token, then the credentials; sets the `session`
/// cookie and spends the CSRF cookie.
#[utoipa::path(post, path = "/login", tag = "browser",
    request_body(content = BrowserLogin, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = DetailOut),
        (status = 401, description = "Incorrect username or password"),
        (status = 403, description = "CSRF token missing or invalid: `csrf_token` must be the one issued with this browser's CSRF cookie, sent from an allowed origin"),
        (status = 422), (status = 429), (status = 503, description = "Rate-limit store (Redis) unreachable: login limits fail closed")))]
async fn login(
    State(state): State<AppState>,
    bulwark::client_ip::ClientIp(ip): bulwark::client_ip::ClientIp,
    headers: HeaderMap,
    Form(form): Form<BrowserLogin>,
) -> Response {
    state
        .login
        .browser(
            &form.username,
            form.password,
            form.csrf_token.as_deref(),
            &headers,
            ip,
        )
        .await
}

async fn stylesheet() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/bulwark.css"),
    )
        .into_response()
}

async fn account_script() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/account.js"),
    )
        .into_response()
}

/// 403 for pages, exposed for handlers that check CSRF themselves.
pub fn forbidden() -> HttpError {
    HttpError::new(StatusCode::FORBIDDEN, csrf::REFUSAL)
}
