//! Building 422 details by hand, with the one rule every detail obeys: a secret is never echoed.

use std::{borrow::Cow, fmt::Display};

use serde_json::Value;

use crate::error::{ErrorDetail, LocItem};

/// Words that mark a field as secret, compared case-insensitively.
const SECRET_WORDS: [&str; 3] = ["password", "secret", "token"];

/// True when a field with this name holds a secret: its name contains `password`, `secret` or
/// `token`, in any case (`password`, `new_password`, `client_secret`, `refresh_token`,
/// `csrf_token`, ...). Errors about such a field never carry its `input`.
///
/// # Examples
/// ```
/// use bulwark::validation::is_secret_key;
///
/// assert!(is_secret_key("Password"));
/// assert!(is_secret_key("refresh_token"));
/// assert!(!is_secret_key("username"));
/// ```
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| key.contains(word))
}

/// True when `input` may be echoed in an error at `loc`: it is `null`, or it is not the whole body
/// as text, no key of `loc` names a secret, and `input` holds no object key or text that does
/// (so an enclosing object echoed for a `missing` error cannot carry a password beside it, and a
/// request encoded twice is not echoed).
///
/// # Examples
/// ```
/// use bulwark::{error::LocItem, validation::is_echo_safe};
/// use serde_json::json;
///
/// let price = [LocItem::from("body"), LocItem::from("price")];
/// assert!(is_echo_safe(&price, &json!("free")));
/// let password = [LocItem::from("body"), LocItem::from("password")];
/// assert!(!is_echo_safe(&password, &json!("hunter2")));
/// assert!(!is_echo_safe(&price, &json!({"password": "hunter2"})));
/// // A body encoded twice: a string that is the whole request.
/// let body = [LocItem::from("body")];
/// assert!(!is_echo_safe(&body, &json!("{\"username\": \"a\", \"password\": \"hunter2\"}")));
/// assert!(!is_echo_safe(&price, &json!("my password is hunter2")));
/// ```
pub fn is_echo_safe(loc: &[LocItem], input: &Value) -> bool {
    if input.is_null() {
        return true; // a missing value: nothing to leak
    }
    // A whole body that is text (a request encoded twice, say) is the request itself.
    if loc.len() <= 1 && input.is_string() {
        return false;
    }
    let secret_loc = loc
        .iter()
        .any(|item| matches!(item, LocItem::Key(key) if is_secret_key(key)));
    !secret_loc && !holds_secret(input)
}

/// Whether `value` holds a secret: an object key that names one, or text that mentions one (a
/// JSON document inside a string: `"{\"password\": ...}"`).
fn holds_secret(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| is_secret_key(k) || holds_secret(v)),
        Value::Array(items) => items.iter().any(holds_secret),
        Value::String(text) => is_secret_key(text),
        _ => false,
    }
}

/// Sets the detail's `input`, unless [`is_echo_safe`] says echoing it could leak a secret; then
/// `input` stays absent.
///
/// # Examples
/// ```
/// use bulwark::{error::ErrorDetail, validation::with_safe_input};
/// use serde_json::json;
///
/// let detail = ErrorDetail::new("string_too_short", ["body", "password"], "Too short");
/// assert_eq!(with_safe_input(detail, json!("abc")).input, None);
/// ```
pub fn with_safe_input(detail: ErrorDetail, input: Value) -> ErrorDetail {
    if is_echo_safe(&detail.loc, &input) {
        detail.with_input(input)
    } else {
        detail
    }
}

/// A detail at `["body", field]` that echoes `input` unless the field is a secret: the helper for
/// domain checks a handler runs after extraction.
///
/// # Examples
/// ```
/// use bulwark::{error::ValidationErrors, validation::body_error};
/// use serde_json::json;
///
/// let detail = body_error("price", "greater_than", "Input should be greater than 0", json!(-1));
/// assert_eq!(detail.input, Some(json!(-1)));
/// let errors = ValidationErrors::from(detail); // answers 422
/// ```
pub fn body_error(
    field: &str,
    kind: impl Into<Cow<'static, str>>,
    msg: impl Into<Cow<'static, str>>,
    input: Value,
) -> ErrorDetail {
    with_safe_input(ErrorDetail::new(kind, ["body", field], msg), input)
}

/// A pydantic `value_error` at `loc`: `msg` is `"Value error, <message>"`, `input` is echoed
/// unless secret. Keep input out of `message` itself.
///
/// # Examples
/// ```
/// use bulwark::validation::value_error;
/// use serde_json::json;
///
/// let detail = value_error(["body", "name"], "must not be blank", json!(" "));
/// assert_eq!(detail.kind, "value_error");
/// assert_eq!(detail.msg, "Value error, must not be blank");
/// ```
pub fn value_error(
    loc: impl IntoIterator<Item = impl Into<LocItem>>,
    message: impl Display,
    input: Value,
) -> ErrorDetail {
    let detail = ErrorDetail::new("value_error", loc, format!("Value error, {message}"));
    with_safe_input(detail, input)
}
