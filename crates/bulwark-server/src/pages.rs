//! HTML pages: rendering a template with the strict HTML CSP, and the login form.

use askama::Template;
use axum::{
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use bulwark::{csrf::Csrf, headers::HTML_CSP};

use crate::errors::internal;

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

/// Adds `set_cookie` (when there is one) to `response`.
pub fn with_cookie(mut response: Response, set_cookie: Option<HeaderValue>) -> Response {
    if let Some(set) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    response
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf_token: &'a str,
}

/// The login form, with a hidden CSRF token bound to the browser's CSRF cookie (set when
/// missing).
pub fn login_page(csrf: &Csrf, headers: &HeaderMap) -> Response {
    let (token, set_cookie) = csrf.issue(headers);
    with_cookie(html_page(&LoginPage { csrf_token: &token }), set_cookie)
}

#[derive(Template)]
#[template(path = "password_reset.html")]
struct PasswordResetPage<'a> {
    csrf_token: &'a str,
    token: &'a str,
}

/// The page of a reset link: a form for the new password that posts the link's token to
/// `/password-reset/confirm`, with a hidden CSRF token (the cookie set when missing).
pub fn password_reset_page(csrf: &Csrf, headers: &HeaderMap, token: &str) -> Response {
    let (csrf_token, set_cookie) = csrf.issue(headers);
    with_cookie(
        html_page(&PasswordResetPage {
            csrf_token: &csrf_token,
            token,
        }),
        set_cookie,
    )
}

#[derive(Template)]
#[template(path = "verify_email.html")]
struct VerifyEmailPage<'a> {
    csrf_token: &'a str,
    token: &'a str,
}

/// The page of a verification link: a button that posts the link's token to
/// `/verify-email/confirm` (never confirmed by the GET alone), with a hidden CSRF token.
pub fn verify_email_page(csrf: &Csrf, headers: &HeaderMap, token: &str) -> Response {
    let (csrf_token, set_cookie) = csrf.issue(headers);
    with_cookie(
        html_page(&VerifyEmailPage {
            csrf_token: &csrf_token,
            token,
        }),
        set_cookie,
    )
}

#[derive(Template)]
#[template(path = "password_reset_request.html")]
struct PasswordResetRequestPage<'a> {
    csrf_token: &'a str,
}

/// `/password-reset` without a token: a form asking for a reset link, with a hidden CSRF token.
pub fn password_reset_request_page(csrf: &Csrf, headers: &HeaderMap) -> Response {
    let (csrf_token, set_cookie) = csrf.issue(headers);
    with_cookie(
        html_page(&PasswordResetRequestPage {
            csrf_token: &csrf_token,
        }),
        set_cookie,
    )
}

#[derive(Template)]
#[template(path = "account_result.html")]
struct ResultPage<'a> {
    title: &'a str,
    message: &'a str,
    next_href: &'a str,
    next_label: &'a str,
}

/// What a browser's own form post (no script) gets: a short page saying what happened, with
/// the status the API answers (200 in place of 204, which a browser cannot show).
pub fn result_page(
    status: axum::http::StatusCode,
    title: &str,
    message: &str,
    next: (&str, &str),
) -> Response {
    let mut response = html_page(&ResultPage {
        title,
        message,
        next_href: next.0,
        next_label: next.1,
    });
    if response.status().is_success() {
        *response.status_mut() = status;
    }
    response
}
