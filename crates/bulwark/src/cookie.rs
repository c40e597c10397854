//! Reading request cookies and writing `Set-Cookie` values with safe attributes.

use http::{HeaderMap, HeaderValue, header};

/// The value of cookie `name` in the request's `Cookie` headers, if present.
///
/// # Examples
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("cookie", "a=1; session=xyz".parse().unwrap());
/// assert_eq!(bulwark::cookie::get(&headers, "session"), Some("xyz"));
/// assert_eq!(bulwark::cookie::get(&headers, "nope"), None);
/// ```
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Lax; Path=/`, `Secure` when `secure`, and
/// `Max-Age` (0 deletes the cookie).
///
/// The value must be a cookie-safe token (the callers only pass base64url and JWT text).
pub fn set(name: &str, value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text =
        format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn clear(name: &str, secure: bool) -> HeaderValue {
    set(name, "", 0, secure)
}
