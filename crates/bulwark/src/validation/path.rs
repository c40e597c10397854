//! The path-parameter extractor.

use std::ops::{Deref, DerefMut};

use axum::extract::{
    FromRequestParts, RawPathParams, path::ErrorKind, rejection::PathRejection as AxumPathRejection,
};
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    PathRejection,
    serde_error::{self, Syntax, sanitize},
    value_error, with_safe_input,
};
use crate::error::{ErrorDetail, LocItem};

/// Path parameters parsed into `T` (a value, a tuple or a struct), as `axum::extract::Path`
/// does; a value that does not parse answers 422 with `loc: ["path", name]`.
///
/// An integer parameter that is not one gives `int_parsing`, a float `float_parsing`, a boolean
/// `bool_parsing`; a custom parse failure (a `TryFrom` newtype) gives `value_error`. The raw
/// value is echoed as `input`. A route whose parameters cannot fit `T` at all is a bug: it is
/// logged and answered 500 (see [`PathRejection`]).
///
/// # Examples
/// ```
/// use axum::{Router, body::Body, http::Request, routing::get};
/// use bulwark::validation::Path;
/// use tower::ServiceExt;
///
/// async fn show(Path(item_id): Path<u64>) -> String {
///     item_id.to_string()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = Router::new().route("/items/{item_id}", get(show));
/// let request = Request::get("/items/abc").body(Body::empty()).unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// // {"detail": [{"type": "int_parsing", "loc": ["path", "item_id"], "msg": ..., "input": "abc"}]}
/// assert_eq!(response.status(), 422);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = PathRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => {
                let params = match RawPathParams::from_request_parts(parts, state).await {
                    Ok(raw) => raw
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                    Err(_) => Vec::new(),
                };
                Err(reject(rejection, &params))
            }
        }
    }
}

/// Maps axum's rejection; `params` are the route's `(name, value)` pairs, in order.
fn reject(rejection: AxumPathRejection, params: &[(String, String)]) -> PathRejection {
    let AxumPathRejection::FailedToDeserializePathParams(failure) = rejection else {
        tracing::error!(error = %rejection.body_text(), "path parameters unavailable");
        return PathRejection::Internal;
    };
    // The name of the parameter holding `value`, when the error does not say.
    let named = |value: &str| match params {
        [(name, _)] => Some(name.clone()),
        _ => params
            .iter()
            .find(|(_, v)| v == value)
            .map(|(k, _)| k.clone()),
    };
    let detail = match failure.into_kind() {
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => parse_error(Some(key), value, expected_type),
        ErrorKind::ParseErrorAtIndex {
            index,
            value,
            expected_type,
        } => parse_error(params.get(index).map(|p| p.0.clone()), value, expected_type),
        ErrorKind::ParseError {
            value,
            expected_type,
        } => parse_error(named(&value), value, expected_type),
        ErrorKind::DeserializeError {
            key,
            value,
            message,
        } => {
            let loc = loc(Some(key));
            let input = Value::String(value);
            value_error(loc.clone(), sanitize(&message, &loc, &input), input)
        }
        ErrorKind::InvalidUtf8InPathParam { key } => ErrorDetail::new(
            "string_unicode",
            loc(Some(key)),
            "Input should be a valid string, unable to parse raw data as a unicode string",
        ),
        // An enum parameter with an unknown value: "unknown variant `<value>`, expected ...".
        ErrorKind::Message(message) if message.starts_with("unknown variant `") => {
            let param = params
                .iter()
                .find(|(_, v)| message.starts_with(&format!("unknown variant `{v}`")));
            let at = param.map(|(k, _)| vec![LocItem::Key(k.clone())]);
            let input = param.map(|(_, v)| Value::String(v.clone()));
            serde_error::detail_at(
                "path",
                Syntax::Text,
                at.unwrap_or_default(),
                &message,
                |_| input.clone(),
            )
        }
        other => {
            tracing::error!(error = %other, "path parameters do not fit the extracted type");
            return PathRejection::Internal;
        }
    };
    PathRejection::Invalid(detail.into())
}

fn loc(name: Option<String>) -> Vec<LocItem> {
    let mut loc = vec![LocItem::from("path")];
    loc.extend(name.map(LocItem::Key));
    loc
}

fn parse_error(name: Option<String>, value: String, expected_type: &str) -> ErrorDetail {
    let loc = loc(name);
    let input = Value::String(value);
    match serde_error::type_error(Syntax::Text, expected_type) {
        Some((kind, msg)) => with_safe_input(ErrorDetail::new(kind, loc, msg), input),
        None => value_error(loc, format_args!("expected {expected_type}"), input),
    }
}

impl<T> Deref for Path<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Path<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, routing::get};
    use http::StatusCode;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::validation::test_support::{only_detail, request, send};

    #[derive(Debug, Deserialize)]
    struct Owned {
        user_id: u32,
        item_id: u64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Format {
        Html,
        Json,
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/items/{item_id}",
                get(|Path(id): Path<u64>| async move { id.to_string() }),
            )
            .route(
                "/users/{user_id}/items/{item_id}",
                get(|Path(p): Path<Owned>| async move { format!("{} {}", p.user_id, p.item_id) }),
            )
            .route(
                "/pairs/{a}/{b}",
                get(|Path((a, b)): Path<(u8, f64)>| async move { format!("{a} {b}") }),
            )
            .route(
                "/export/{format}",
                get(|Path(f): Path<Format>| async move { matches!(f, Format::Html).to_string() }),
            )
            .route(
                "/reset/{token}",
                get(|Path(t): Path<u64>| async move { t.to_string() }),
            )
            .route(
                "/broken/{id}",
                get(|Path(p): Path<(u32, u32)>| async move { p.0.to_string() }),
            )
    }

    async fn get_path(uri: &str) -> (StatusCode, Value) {
        send(app(), request("GET", uri, "text/plain", "")).await
    }

    #[tokio::test]
    async fn a_well_formed_path_parses() {
        assert_eq!(get_path("/items/42").await.0, StatusCode::OK);
        assert_eq!(get_path("/users/1/items/2").await.0, StatusCode::OK);
        assert_eq!(get_path("/export/json").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_non_integer_id_is_int_parsing_at_its_name() {
        let (status, answer) = get_path("/items/abc").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let expected = json!({
            "type": "int_parsing",
            "loc": ["path", "item_id"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "input": "abc",
        });
        assert_eq!(only_detail(&answer), &expected);
    }

    #[tokio::test]
    async fn structs_and_tuples_are_located_by_parameter_name() {
        let (_, answer) = get_path("/users/1/items/x").await;
        assert_eq!(only_detail(&answer)["loc"], json!(["path", "item_id"]));
        let (_, answer) = get_path("/pairs/300/1").await;
        assert_eq!(only_detail(&answer)["loc"], json!(["path", "a"]));
        let (_, answer) = get_path("/pairs/3/one").await;
        let detail = only_detail(&answer);
        assert_eq!(detail["loc"], json!(["path", "b"]));
        assert_eq!(detail["type"], "float_parsing");
        assert_eq!(detail["input"], "one");
    }

    #[tokio::test]
    async fn an_unknown_choice_is_enum() {
        let (status, answer) = get_path("/export/pdf").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let expected = json!({
            "type": "enum",
            "loc": ["path", "format"],
            "msg": "Input should be 'html' or 'json'",
            "input": "pdf",
            "ctx": {"expected": "'html' or 'json'"},
        });
        assert_eq!(only_detail(&answer), &expected);
    }

    #[tokio::test]
    async fn a_secret_parameter_is_not_echoed() {
        let (_, answer) = get_path("/reset/s3cr3t").await;
        assert!(only_detail(&answer).get("input").is_none(), "{answer}");
    }

    #[tokio::test]
    async fn a_route_that_does_not_fit_the_type_is_a_generic_500() {
        let (status, answer) = get_path("/broken/1").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer, json!({"detail": "Internal Server Error"}));
    }
}
