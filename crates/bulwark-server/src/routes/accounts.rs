//! Self-service accounts: password change, e-mail address and verification, password reset,
//! user deletion, and the two pages mail links open. The work is `crate::accounts`'s.
//!
//! `POST /password-reset/confirm` and `POST /verify-email/confirm` take JSON (API clients) or a
//! form (the pages). A form post needs the page's CSRF token and an allowed origin, like
//! `POST /login`; JSON cannot be sent cross-site without a CORS preflight, and the token in the
//! body is the only authority either way.

use std::net::IpAddr;

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bulwark::{
    client_ip::ClientIp,
    csrf,
    validation::{Json, JsonOrForm, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    accounts::RESET_REQUESTED, audit::AuditKind, auth::CurrentUser, pages, routes::users::UserOut,
    sessions::TokenResponse, state::AppState,
};

/// The account routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(change_password))
        .routes(routes!(change_email))
        .routes(routes!(resend_verification))
        .routes(routes!(verify_email_page))
        .routes(routes!(confirm_email))
        .routes(routes!(request_reset))
        .routes(routes!(reset_page))
        .routes(routes!(confirm_reset))
}

/// A short answer.
#[derive(Serialize, ToSchema)]
pub struct Detail {
    /// What happened.
    pub detail: &'static str,
}

/// Body of `POST /users/me/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    /// The password in use now.
    #[schema(format = Password)]
    pub current_password: String,
    /// 12-128 characters, not common, not weak.
    #[schema(format = Password, min_length = 12, max_length = 128)]
    pub new_password: String,
}

/// Body of `POST /users/me/email`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    /// At most 254 characters, one `@`.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
}

/// Body of `POST /password-reset/request` (JSON, or the `/password-reset` page's form).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestBody {
    /// At most 254 characters, one `@`.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// Form posts only: the page's CSRF token.
    #[schema(nullable = false)]
    pub csrf_token: Option<String>,
}

/// Body of `POST /verify-email/confirm` (JSON, or the page's form).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmEmailBody {
    /// The token of the mailed link.
    pub token: String,
    /// Form posts only: the page's CSRF token.
    #[schema(nullable = false)]
    pub csrf_token: Option<String>,
}

/// Body of `POST /password-reset/confirm` (JSON, or the page's form).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmResetBody {
    /// The token of the mailed link.
    pub token: String,
    /// 12-128 characters, not common, not weak.
    #[schema(format = Password, min_length = 12, max_length = 128)]
    pub new_password: String,
    /// Form posts only: the page's CSRF token.
    #[schema(nullable = false)]
    pub csrf_token: Option<String>,
}

/// The token a mail link carries.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// The token of the mailed link.
    pub token: Option<String>,
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A browser's own submission of a page's form (no script): a form body, and `Accept` naming
/// HTML (`fetch` sends `*/*`). It gets a page saying what happened instead of the API's answer.
fn from_browser_form(headers: &HeaderMap) -> bool {
    is_form(headers)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// The result page of a refused browser form post: the API's status, and its message.
fn refused_page(response: Response, retry: (&str, &str)) -> Response {
    let status = response.status();
    let message = match status {
        StatusCode::FORBIDDEN => "This page has expired. Go back, reload it and try again.",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts. Wait a little and try again.",
        StatusCode::BAD_REQUEST => "This link is invalid or has expired. Ask for a new one.",
        StatusCode::UNPROCESSABLE_ENTITY => {
            "The new password is too short, too common or too easy to guess. Go back and choose a stronger one."
        }
        _ => "Something went wrong. Try again later.",
    };
    pages::result_page(status, "Not done", message, retry)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// A form post must carry the page's CSRF token, bound to this browser's CSRF cookie, from an
/// allowed origin; JSON needs neither.
fn check_form_csrf(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&str>,
    ip: IpAddr,
    route: &str,
) -> Result<(), Response> {
    if !is_form(headers) {
        return Ok(());
    }
    let token_ok = token.is_some_and(|t| state.csrf.verify(headers, t));
    if token_ok && state.csrf.origin_allowed(headers, state.scheme()) {
        return Ok(());
    }
    state.metrics.csrf_rejected.inc();
    // Counted, never awaited: one audit row per client and window (crate::refusals).
    state
        .refusals
        .count_for(AuditKind::CsrfRejected, ip, None, || route.to_owned());
    Err(csrf::refusal())
}

/// Change the caller's password: every earlier token, refresh family and session of the user is
/// revoked, and a new token pair answered (API keys stay).
#[utoipa::path(post, path = "/users/me/password", tag = "users", request_body = ChangePasswordBody,
    responses((status = 200, body = TokenResponse), (status = 400, description = "Incorrect password"),
        (status = 401), (status = 422), (status = 429)))]
async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    user: CurrentUser,
    Json(body): Json<ChangePasswordBody>,
) -> Response {
    match state
        .accounts
        .change_password(
            &state.login,
            user.id,
            body.current_password,
            body.new_password,
            ip,
        )
        .await
    {
        Ok(pair) => no_store(axum::Json(pair).into_response()),
        Err(err) => err.into_response(),
    }
}

/// Set the caller's e-mail address: unverified, and a verification link is mailed to it.
#[utoipa::path(post, path = "/users/me/email", tag = "users", request_body = EmailBody,
    responses((status = 200, body = UserOut), (status = 401), (status = 409), (status = 422)))]
async fn change_email(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    user: CurrentUser,
    Json(body): Json<EmailBody>,
) -> Response {
    match state.accounts.set_email(user.id, &body.email, ip).await {
        Ok(user) => no_store(axum::Json(UserOut::from(user)).into_response()),
        Err(err) => err.into_response(),
    }
}

/// Mail (again) a verification link to the caller's unverified address.
#[utoipa::path(post, path = "/users/me/verify-email", tag = "users",
    responses((status = 202, body = Detail), (status = 400, description = "No address, or it is verified"), (status = 401)))]
async fn resend_verification(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    user: CurrentUser,
) -> Response {
    match state.accounts.resend_verification(user.id, ip).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            axum::Json(Detail {
                detail: "Verification mail sent",
            }),
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}

/// The page a verification link opens: confirms on a button press, never on the GET alone.
#[utoipa::path(get, path = "/verify-email", tag = "browser", params(LinkQuery),
    responses((status = 200, content_type = "text/html", body = String), (status = 422)))]
async fn verify_email_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LinkQuery>,
) -> Response {
    match query.token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => no_store(pages::verify_email_page(&state.csrf, &headers, token)),
        None => no_store(pages::result_page(
            StatusCode::OK,
            "Incomplete link",
            "This link is incomplete: open it from the mail again, or ask for a new one once signed in.",
            ("/login", "Sign in"),
        )),
    }
}

/// Verify an address with the token of its mailed link.
#[utoipa::path(post, path = "/verify-email/confirm", tag = "users",
    request_body(content(
        (ConfirmEmailBody = "application/json"),
        (ConfirmEmailBody = "application/x-www-form-urlencoded"))),
    responses((status = 200, body = UserOut),
        (status = 400, description = "Invalid or expired token"),
        (status = 403, description = "Form posts: CSRF token missing or invalid"),
        (status = 422), (status = 429)))]
async fn confirm_email(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonOrForm(body): JsonOrForm<ConfirmEmailBody>,
) -> Response {
    let browser = from_browser_form(&headers);
    let back = ("/login", "Sign in");
    if let Err(refused) = check_form_csrf(
        &state,
        &headers,
        body.csrf_token.as_deref(),
        ip,
        "POST /verify-email/confirm",
    ) {
        return if browser {
            refused_page(refused, back)
        } else {
            refused
        };
    }
    match state.accounts.confirm_email(&body.token, ip).await {
        Ok(_) if browser => pages::result_page(
            StatusCode::OK,
            "Address confirmed",
            "Your email address is confirmed.",
            back,
        ),
        Ok(user) => no_store(axum::Json(UserOut::from(user)).into_response()),
        Err(err) if browser => refused_page(err.into_response(), back),
        Err(err) => err.into_response(),
    }
}

/// Ask for a password-reset link. The answer is the same whether or not the address is known,
/// verified, or a disabled user's; only a known, enabled user gets a mail.
#[utoipa::path(post, path = "/password-reset/request", tag = "users",
    request_body(content(
        (ResetRequestBody = "application/json"),
        (ResetRequestBody = "application/x-www-form-urlencoded"))),
    responses((status = 202, body = Detail),
        (status = 403, description = "Form posts: CSRF token missing or invalid"),
        (status = 422), (status = 429),
        (status = 503, description = "Rate-limit store (Redis) unreachable: the per-address limit fails closed")))]
async fn request_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonOrForm(body): JsonOrForm<ResetRequestBody>,
) -> Response {
    let browser = from_browser_form(&headers);
    let again = ("/password-reset", "Try again");
    if let Err(refused) = check_form_csrf(
        &state,
        &headers,
        body.csrf_token.as_deref(),
        ip,
        "POST /password-reset/request",
    ) {
        return if browser {
            refused_page(refused, again)
        } else {
            refused
        };
    }
    match state.accounts.request_reset(&body.email, ip).await {
        Ok(_) if browser => pages::result_page(
            StatusCode::ACCEPTED,
            "Check your mail",
            RESET_REQUESTED,
            ("/login", "Sign in"),
        ),
        Ok(decision) => {
            let mut response = (
                StatusCode::ACCEPTED,
                axum::Json(Detail {
                    detail: RESET_REQUESTED,
                }),
            )
                .into_response();
            if let Some(decision) = decision {
                decision.apply_headers(response.headers_mut());
            }
            response
        }
        Err(err) => {
            let response = err.into_response();
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                state.metrics.rate_limited("password_reset_address");
            }
            if browser {
                refused_page(response, again)
            } else {
                response
            }
        }
    }
}

/// The page a reset link opens: a form for the new password; without a token, a form asking
/// for a link.
#[utoipa::path(get, path = "/password-reset", tag = "browser", params(LinkQuery),
    responses((status = 200, content_type = "text/html", body = String), (status = 422)))]
async fn reset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LinkQuery>,
) -> Response {
    // Without a token (or a link cut short by a mail client): the form asking for a link.
    match query.token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => no_store(pages::password_reset_page(&state.csrf, &headers, token)),
        None => no_store(pages::password_reset_request_page(&state.csrf, &headers)),
    }
}

/// Set a new password with the token of a reset link: every token, session and refresh family
/// of the user is revoked, and their other reset links die. A weak password answers 422 and
/// leaves the token usable.
#[utoipa::path(post, path = "/password-reset/confirm", tag = "users",
    request_body(content(
        (ConfirmResetBody = "application/json"),
        (ConfirmResetBody = "application/x-www-form-urlencoded"))),
    responses((status = 204),
        (status = 400, description = "Invalid or expired token"),
        (status = 403, description = "Form posts: CSRF token missing or invalid"),
        (status = 422), (status = 429)))]
async fn confirm_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    JsonOrForm(body): JsonOrForm<ConfirmResetBody>,
) -> Response {
    let browser = from_browser_form(&headers);
    let again = ("/password-reset", "Ask for a new link");
    if let Err(refused) = check_form_csrf(
        &state,
        &headers,
        body.csrf_token.as_deref(),
        ip,
        "POST /password-reset/confirm",
    ) {
        return if browser {
            refused_page(refused, again)
        } else {
            refused
        };
    }
    match state
        .accounts
        .confirm_reset(&body.token, body.new_password, ip)
        .await
    {
        Ok(()) if browser => pages::result_page(
            StatusCode::OK,
            "Password changed",
            "Your password has been changed. Every session of your account was signed out: sign in again with the new password.",
            ("/login", "Sign in"),
        ),
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) if browser => refused_page(err.into_response(), again),
        Err(err) => err.into_response(),
    }
}
