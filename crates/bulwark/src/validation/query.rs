//! The query-string extractor.

use std::ops::{Deref, DerefMut};

use axum::extract::FromRequestParts;
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::urlencoded;
use crate::error::ValidationErrors;

/// The query string parsed into `T`; a bad parameter answers 422 with `loc: ["query", name]`.
///
/// No query string parses as an empty one, so `Option` and `#[serde(default)]` fields apply.
/// Parameters `T` does not name are ignored (don't put `deny_unknown_fields` on a query type:
/// caches, trackers and proxies add parameters). A repeated parameter keeps its last value; an
/// empty one (`q=`) is the empty string, so `Option<u32>` rejects it with `int_parsing`, as
/// FastAPI does. The rejection is [`ValidationErrors`].
///
/// # Examples
/// ```
/// use axum::{Router, body::Body, http::Request, routing::get};
/// use bulwark::validation::Query;
/// use serde::Deserialize;
/// use tower::ServiceExt;
///
/// #[derive(Deserialize)]
/// struct Page {
///     q: Option<String>,
///     #[serde(default = "twenty")]
///     limit: u32,
/// }
///
/// fn twenty() -> u32 {
///     20
/// }
///
/// async fn list(Query(page): Query<Page>) -> String {
///     format!("{:?} {}", page.q, page.limit)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = Router::new().route("/items/", get(list));
/// let request = Request::get("/items/?limit=lots").body(Body::empty()).unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// // {"detail": [{"type": "int_parsing", "loc": ["query", "limit"], "msg": ..., "input": "lots"}]}
/// assert_eq!(response.status(), 422);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> Query<T> {
    /// Parses a query string (without the `?`), reporting errors as [`Query`] does.
    ///
    /// # Errors
    /// One detail for the first parameter that does not fit `T`.
    ///
    /// # Examples
    /// ```
    /// use bulwark::validation::Query;
    /// use std::collections::BTreeMap;
    ///
    /// let Query(query) = Query::<BTreeMap<String, u8>>::from_query("a=1&b=2").unwrap();
    /// assert_eq!(query["b"], 2);
    /// ```
    pub fn from_query(query: &str) -> Result<Self, ValidationErrors> {
        urlencoded::from_pairs("query", urlencoded::pairs(query.as_bytes())).map(Query)
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ValidationErrors;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_query(parts.uri.query().unwrap_or_default())
    }
}

impl<T> Deref for Query<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Query<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, routing::get};
    use http::StatusCode;
    use serde::Deserialize;
    use serde_json::{Value, json};

    use super::*;
    use crate::validation::test_support::{only_detail, request, send};

    #[derive(Debug, Deserialize)]
    struct Page {
        q: Option<String>,
        #[serde(default)]
        offset: u64,
        limit: Option<u8>,
        min_price: Option<f64>,
    }

    #[derive(Debug, Deserialize)]
    struct Search {
        #[allow(dead_code)]
        q: String,
    }

    fn app() -> Router {
        let list = |Query(page): Query<Page>| async move {
            axum::Json(json!([page.q, page.offset, page.limit, page.min_price]))
        };
        let search = |Query(_): Query<Search>| async { "ok" };
        Router::new()
            .route("/items/", get(list))
            .route("/search", get(search))
    }

    async fn get_json(uri: &str) -> (StatusCode, Value) {
        send(app(), request("GET", uri, "text/plain", "")).await
    }

    #[tokio::test]
    async fn a_query_parses_and_unknown_parameters_are_ignored() {
        let (status, answer) =
            get_json("/items/?q=h%C3%A4t&limit=5&utm_source=x&min_price=1.5").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer, json!(["hät", 0, 5, 1.5]));
    }

    #[tokio::test]
    async fn no_query_string_is_an_empty_one() {
        let (status, answer) = get_json("/items/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer, json!([null, 0, null, null]));
    }

    #[tokio::test]
    async fn a_bad_integer_is_int_parsing_at_its_name() {
        let (status, answer) = get_json("/items/?limit=abc").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let expected = json!({
            "type": "int_parsing",
            "loc": ["query", "limit"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "input": "abc",
        });
        assert_eq!(only_detail(&answer), &expected);
        let (_, answer) = get_json("/items/?min_price=").await;
        assert_eq!(only_detail(&answer)["type"], "float_parsing");
        assert_eq!(only_detail(&answer)["input"], "");
    }

    #[tokio::test]
    async fn a_missing_parameter_is_missing() {
        let (status, answer) = get_json("/search?other=1").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let expected = json!({"type": "missing", "loc": ["query", "q"], "msg": "Field required", "input": null});
        assert_eq!(only_detail(&answer), &expected);
    }
}
