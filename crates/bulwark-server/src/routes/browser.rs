//! Browser sessions: CSRF tokens, the login form, the session cookie, static assets.
//!
//! The `session` cookie holds an access token — a JWT like the bearer ones, with the same
//! lifetime (`access_token_ttl`), the same claims and the same revocation rules (logout, a
//! password/role/status change, a revoked signing key). It is `HttpOnly` (scripts cannot read
//! it), `SameSite=Lax` and `Secure` whenever TLS is on or `secure_cookies = true`. Every unsafe
//! request authenticated by it needs a CSRF token (see `bulwark::csrf`); bearer requests do not.

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bulwark::{cookie, csrf, error::HttpError, headers::HTML_CSP, validation::Form};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{routes::internal, state::AppState};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "session";

/// The stylesheet's path (not in the OpenAPI document).
pub const STYLESHEET: &str = "/static/bulwark.css";

/// The browser routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(csrf_token))
        .routes(routes!(login_page, login))
        .route(STYLESHEET, axum::routing::get(stylesheet))
}

/// A CSRF token.
#[derive(Serialize, ToSchema)]
pub struct CsrfTokenOut {
    /// Send it as `X-CSRF-Token` (or the `csrf_token` form field) with unsafe requests
    /// authenticated by the session cookie.
    pub csrf_token: String,
}

/// A short answer.
#[derive(Serialize, ToSchema)]
pub struct DetailOut {
    /// `OK`.
    pub detail: &'static str,
}

fn with_cookie(mut response: Response, set_cookie: Option<HeaderValue>) -> Response {
    if let Some(set) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    response
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

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf_token: &'a str,
}

/// Renders a template as an HTML page with the strict HTML CSP (scripts and styles from this
/// server only, no inline script).
pub fn html_page(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            [(header::CONTENT_SECURITY_POLICY, HTML_CSP)],
            axum::response::Html(html),
        )
            .into_response(),
        Err(err) => internal(err),
    }
}

/// The login form, with a hidden CSRF token.
#[utoipa::path(get, path = "/login", tag = "browser",
    responses((status = 200, content_type = "text/html", body = String)))]
async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (token, set_cookie) = state.csrf.issue(&headers);
    with_cookie(html_page(&LoginPage { csrf_token: &token }), set_cookie)
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
    let token_ok = form
        .csrf_token
        .as_deref()
        .is_some_and(|t| state.csrf.verify(&headers, t));
    if !token_ok || !state.csrf.origin_allowed(&headers, state.scheme()) {
        // Refused here, not by the CSRF layer: counted and audited here too.
        state.metrics.csrf_rejected.inc();
        crate::audit::record(
            &state,
            crate::audit::AuditKind::CsrfRejected,
            crate::audit::AuditEvent {
                ip: Some(ip),
                detail: Some("POST /login".to_owned()),
                ..Default::default()
            },
        )
        .await;
        return csrf::refusal();
    }
    let limit = match super::token::check_username_limit(&state, &form.username, ip).await {
        Ok(decision) => decision,
        Err(response) => return response,
    };
    let mut response =
        match super::token::authenticate(&state, &form.username, form.password, ip).await {
            Ok(Some(user)) => match crate::sessions::issue_session(&state, &user) {
                Ok(token) => {
                    let spent = match state.csrf.spend(&headers).await {
                        Ok(clear) => clear,
                        Err(err) => return internal(err),
                    };
                    let ttl = state.settings.access_token_ttl.0.as_secs();
                    let mut response = axum::Json(DetailOut { detail: "OK" }).into_response();
                    let h = response.headers_mut();
                    h.append(
                        header::SET_COOKIE,
                        cookie::set(SESSION_COOKIE, &token, ttl, state.csrf.secure()),
                    );
                    h.append(header::SET_COOKIE, spent);
                    response
                }
                Err(response) => response,
            },
            Ok(None) => super::token::bad_credentials().into_response(),
            Err(response) => response,
        };
    if let Some(decision) = limit {
        decision.apply_headers(response.headers_mut());
    }
    response
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

/// Clears the session cookie (for logout).
pub fn clear_session(secure: bool) -> HeaderValue {
    cookie::clear(SESSION_COOKIE, secure)
}

/// 403 for pages, exposed for handlers that check CSRF themselves.
pub fn forbidden() -> HttpError {
    HttpError::new(StatusCode::FORBIDDEN, csrf::REFUSAL)
}
