//! [`Validated`]: rules a parsed value must also satisfy, answered as FastAPI answers them.

use std::fmt::Display;

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    response::{IntoResponse, Response},
};
use http::request::Parts;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Form, Json, JsonOrForm, Path, Query, with_safe_input};
use crate::error::{ErrorDetail, LocItem, ValidationErrors};

/// Rules a value must satisfy beyond its type: lengths, ranges, cross-field checks. Checked by
/// [`Validated`] after parsing; record every broken rule (all of them, as pydantic lists them)
/// through the [`Rules`] given.
pub trait Validate {
    /// Records each rule `self` breaks.
    fn validate(&self, rules: &mut Rules);
}

/// The broken rules of one value, each at `[<location>, <field>]` in pydantic's words and
/// kinds (`string_too_short`, `greater_than_equal`, `value_error`...), with the input echoed
/// unless the field names a secret.
#[derive(Debug)]
pub struct Rules {
    loc: &'static str,
    errors: ValidationErrors,
}

impl Rules {
    /// Rules of a value found at `loc` (`"body"`, `"query"`, `"path"`).
    pub fn at(loc: &'static str) -> Self {
        Self {
            loc,
            errors: ValidationErrors::new(),
        }
    }

    fn push(&mut self, field: &str, kind: &'static str, msg: String, input: Value, ctx: Value) {
        let loc: [LocItem; 2] = [self.loc.into(), field.into()];
        let detail = with_safe_input(ErrorDetail::new(kind, loc, msg), input).with_ctx(ctx);
        self.errors.push(detail);
    }

    /// `value` has between `min` and `max` characters (Unicode scalar values, as Python counts).
    pub fn length(&mut self, field: &str, value: &str, min: usize, max: usize) -> &mut Self {
        let n = value.chars().count();
        if n < min {
            let s = if min == 1 { "" } else { "s" };
            self.push(
                field,
                "string_too_short",
                format!("String should have at least {min} character{s}"),
                json!(value),
                json!({ "min_length": min }),
            );
        } else if n > max {
            let s = if max == 1 { "" } else { "s" };
            self.push(
                field,
                "string_too_long",
                format!("String should have at most {max} character{s}"),
                json!(value),
                json!({ "max_length": max }),
            );
        }
        self
    }

    /// `value` is at least `min` and at most `max`.
    pub fn range<T>(&mut self, field: &str, value: T, min: T, max: T) -> &mut Self
    where
        T: PartialOrd + Display + Serialize + Copy,
    {
        if value < min {
            self.push(
                field,
                "greater_than_equal",
                format!("Input should be greater than or equal to {min}"),
                json!(value),
                json!({ "ge": min }),
            );
        } else if value > max {
            self.push(
                field,
                "less_than_equal",
                format!("Input should be less than or equal to {max}"),
                json!(value),
                json!({ "le": max }),
            );
        }
        self
    }

    /// A rule of your own: when `ok` is false, a `value_error` saying `message` (keep the input
    /// out of it: it is echoed apart, and only when the field is not a secret).
    pub fn check(
        &mut self,
        field: &str,
        ok: bool,
        message: impl Display,
        input: impl Serialize,
    ) -> &mut Self {
        if !ok {
            let input = serde_json::to_value(input).unwrap_or(Value::Null);
            self.push(
                field,
                "value_error",
                format!("Value error, {message}"),
                input,
                json!({ "error": message.to_string() }),
            );
        }
        self
    }

    /// The broken rules: `Ok` when there is none.
    ///
    /// # Errors
    /// The 422 listing every broken rule.
    pub fn finish(self) -> Result<(), ValidationErrors> {
        self.errors.into_result(())
    }
}

/// An extractor of this module whose value [`Validated`] checks, and where its value comes from.
pub trait Extracted {
    /// The parsed value.
    type Value: Validate;
    /// Its location in error details.
    const LOC: &'static str;
    /// The parsed value.
    fn value(&self) -> &Self::Value;
}

macro_rules! extracted {
    ($($extractor:ident => $loc:literal),*) => {$(
        impl<T: Validate> Extracted for $extractor<T> {
            type Value = T;
            const LOC: &'static str = $loc;
            fn value(&self) -> &T {
                &self.0
            }
        }
    )*};
}

extracted!(Json => "body", Form => "body", JsonOrForm => "body", Query => "query", Path => "path");

/// Parses with the extractor `E` ([`Json`], [`Form`], [`JsonOrForm`], [`Query`], [`Path`]),
/// then checks the value's [`Validate`] rules: a value that breaks any is answered 422 with
/// every broken rule listed, in FastAPI's shape, and the handler never runs.
///
/// Over a body extractor it goes last among a handler's arguments, as the extractor would.
///
/// # Examples
/// ```
/// use axum::{Router, routing::post};
/// use bulwark::validation::{Json, Rules, Validate, Validated};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct NewItem { name: String, price: f64 }
///
/// impl Validate for NewItem {
///     fn validate(&self, rules: &mut Rules) {
///         rules
///             .length("name", &self.name, 1, 100)
///             .range("price", self.price, 0.0, 1_000_000.0)
///             .check("name", !self.name.trim().is_empty(), "must not be blank", &self.name);
///     }
/// }
///
/// async fn create(Validated(Json(item)): Validated<Json<NewItem>>) -> String {
///     item.name
/// }
///
/// let app: Router = Router::new().route("/items", post(create));
/// # let _ = app;
/// ```
/// `{"name": "", "price": -1}` is answered
/// ```json
/// {"detail": [
///   {"type": "string_too_short", "loc": ["body", "name"], "msg": "String should have at least 1 character", "input": "", "ctx": {"min_length": 1}},
///   {"type": "greater_than_equal", "loc": ["body", "price"], "msg": "Input should be greater than or equal to 0", "input": -1.0, "ctx": {"ge": 0.0}},
///   {"type": "value_error", "loc": ["body", "name"], "msg": "Value error, must not be blank", "input": "", "ctx": {"error": "must not be blank"}}
/// ]}
/// ```
#[derive(Debug, Clone)]
pub struct Validated<E>(pub E);

impl<E> std::ops::Deref for Validated<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.0
    }
}

impl<S, E> FromRequest<S> for Validated<E>
where
    E: FromRequest<S> + Extracted,
    E::Rejection: IntoResponse,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let extracted = E::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        check(extracted)
    }
}

impl<S, E> FromRequestParts<S> for Validated<E>
where
    E: FromRequestParts<S> + Extracted,
    E::Rejection: IntoResponse,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let extracted = E::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        check(extracted)
    }
}

fn check<E: Extracted>(extracted: E) -> Result<Validated<E>, Response> {
    let mut rules = Rules::at(E::LOC);
    extracted.value().validate(&mut rules);
    rules.finish().map_err(IntoResponse::into_response)?;
    Ok(Validated(extracted))
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, routing::post};
    use http_body_util::BodyExt as _;
    use serde::Deserialize;
    use tower::ServiceExt as _;

    use super::*;

    #[derive(Deserialize)]
    struct Signup {
        username: String,
        password: String,
        age: i64,
    }

    impl Validate for Signup {
        fn validate(&self, rules: &mut Rules) {
            rules
                .length("username", &self.username, 3, 8)
                .length("password", &self.password, 12, 128)
                .range("age", self.age, 13, 150);
        }
    }

    async fn post_json(body: &str) -> (u16, Value) {
        let app: Router = Router::new().route(
            "/",
            post(|Validated(Json(s)): Validated<Json<Signup>>| async move { s.username }),
        );
        let response = app
            .oneshot(
                Request::post("/")
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_owned()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn every_broken_rule_is_listed_and_secrets_are_not_echoed() {
        let (status, body) =
            post_json(r#"{"username": "émilie-anne", "password": "short", "age": 7}"#).await;
        assert_eq!(status, 422);
        let detail = body["detail"].as_array().unwrap();
        assert_eq!(detail.len(), 3);
        assert_eq!(detail[0]["type"], "string_too_long");
        assert_eq!(detail[0]["loc"], json!(["body", "username"]));
        assert_eq!(detail[0]["msg"], "String should have at most 8 characters");
        assert_eq!(detail[0]["input"], "émilie-anne");
        assert_eq!(detail[1]["type"], "string_too_short");
        assert!(
            detail[1].get("input").is_none(),
            "a password is never echoed"
        );
        assert_eq!(detail[2]["type"], "greater_than_equal");
        assert_eq!(detail[2]["ctx"], json!({"ge": 13}));
    }

    #[tokio::test]
    async fn a_valid_value_reaches_the_handler_and_a_malformed_one_keeps_its_parse_error() {
        let (status, _) =
            post_json(r#"{"username": "alice", "password": "long enough pass", "age": 30}"#).await;
        assert_eq!(status, 200);
        let (status, body) = post_json(r#"{"username": "alice"}"#).await;
        assert_eq!(status, 422);
        assert_eq!(body["detail"][0]["type"], "missing");
    }
}
