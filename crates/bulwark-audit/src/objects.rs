//! Objects the audit creates through the API to probe (one per collection and user), found from
//! the document: a `POST` on a collection path whose answer carries an id, and the operations on
//! the item path (`/items/{item_id}`) that take it.

use std::collections::BTreeMap;

use http::Method;
use serde_json::Value;

use crate::{
    api::{Api, Operation, ParamIn},
    context::Context,
    generate::{Fill, request_for, scalar_text, value_for},
    probe::{Exchange, ProbeError, ProbeRequest},
};

/// An object created by the audit.
#[derive(Debug, Clone)]
pub struct Object {
    /// The `POST` operation's path (`/items/`).
    pub collection: String,
    /// The item path template (`/items/{item_id}`).
    pub item_path: String,
    /// The item path's parameter (`item_id`).
    pub param: String,
    /// The id, as it goes in the path.
    pub id: String,
    /// Index of the session that owns it in `Context::sessions`.
    pub owner: usize,
    /// The body sent to create it.
    pub sent: Value,
    /// The body of the answer.
    pub answer: Value,
    /// Values of the collection path's own parameters (`/users/{user_id}/items/`), which the
    /// item path shares; empty for a top-level collection.
    pub parents: BTreeMap<String, String>,
}

impl Object {
    /// The path values that address this object: the parents' and `param` = `id`. Use it as
    /// `Fill { path: object.path_values(), .. }` for any operation on the item path.
    pub fn path_values(&self) -> BTreeMap<String, String> {
        let mut path = self.parents.clone();
        path.insert(self.param.clone(), self.id.clone());
        path
    }

    /// A [`Fill`] addressing this object (no body).
    pub fn fill(&self) -> Fill {
        Fill {
            path: self.path_values(),
            ..Fill::default()
        }
    }

    /// A valid request for `op` (an operation on the item path) on this object, without
    /// credentials, with `body` when given.
    pub fn request(&self, op: &Operation, body: Option<Value>) -> ProbeRequest {
        let mut fill = self.fill();
        fill.body = body;
        request_for(op, &fill)
    }
}

/// The item path of a collection path `P`: the path `P/{param}` (or `P{param}` when `P` ends with
/// `/`, with or without a trailing `/`) that has a `GET`, and its parameter name.
pub fn item_path_of(api: &Api, collection: &str) -> Option<(String, String)> {
    let base = collection.trim_end_matches('/');
    api.operations
        .iter()
        .filter(|o| o.method == Method::GET)
        .find_map(|o| {
            let rest = o.path.strip_prefix(base)?.strip_prefix('/')?;
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            let name = rest.strip_prefix('{')?.strip_suffix('}')?;
            (!name.is_empty() && !name.contains(['{', '}', '/']))
                .then(|| (o.path.clone(), name.to_owned()))
        })
}

/// The `POST` operations that create objects with an item path (a `GET` on
/// `{collection}/{param}`), in document order.
pub fn collections(api: &Api) -> Vec<&Operation> {
    api.operations
        .iter()
        .filter(|o| o.method == Method::POST && item_path_of(api, &o.path).is_some())
        .collect()
}

/// The operations on an item path (`GET`, `PUT`, `PATCH`, `DELETE` on `/items/{item_id}`).
pub fn item_operations<'a>(api: &'a Api, item_path: &str) -> Vec<&'a Operation> {
    api.operations
        .iter()
        .filter(|o| o.path == item_path)
        .collect()
}

/// The operation `method` on the object's item path, if documented.
pub fn item_operation<'a>(api: &'a Api, object: &Object, method: &Method) -> Option<&'a Operation> {
    api.find(method, &object.item_path)
}

/// Creates an object through `collection` as session `owner` (with `body`, else a generated
/// valid one), and remembers it for removal (through the item path's `DELETE`, when documented,
/// with the owner's credentials). An `owner` index with no session (e.g. `usize::MAX`) sends no
/// credentials. `Ok(None)` when the API did not create one (not 2xx, no id found).
pub async fn create(
    cx: &Context,
    collection: &Operation,
    owner: usize,
    body: Option<Value>,
) -> Result<Option<(Object, Exchange)>, ProbeError> {
    let Some(api) = cx.api.as_ref() else {
        return Ok(None);
    };
    let Some((item_path, param)) = item_path_of(api, &collection.path) else {
        return Ok(None);
    };
    let parents: BTreeMap<String, String> = collection
        .params
        .iter()
        .filter(|p| p.location == ParamIn::Path)
        .map(|p| {
            let v = p.example.clone().unwrap_or_else(|| value_for(&p.schema));
            (p.name.clone(), scalar_text(&v))
        })
        .collect();
    let sent = body.clone().or_else(|| {
        collection
            .body
            .as_ref()
            .map(|b| b.example.clone().unwrap_or_else(|| value_for(&b.schema)))
    });
    let fill = Fill {
        path: parents.clone(),
        body: sent.clone(),
        ..Fill::default()
    };
    let mut request = request_for(collection, &fill);
    if let Some(session) = cx.sessions.get(owner) {
        request = request.with_auth(&session.auth);
    }
    let exchange = cx.send(request).await?;
    if !exchange.status.is_success() {
        return Ok(None);
    }
    let answer = exchange.json().unwrap_or(Value::Null);
    let id = id_in(&answer, &param).or_else(|| {
        exchange
            .header("location")
            .and_then(|l| id_from_location(l, &collection.path))
    });
    let Some(id) = id else {
        return Ok(None);
    };
    let object = Object {
        collection: collection.path.clone(),
        item_path,
        param,
        id,
        owner,
        sent: sent.unwrap_or(Value::Null),
        answer,
        parents,
    };
    if let Some(delete) = api.find(&Method::DELETE, &object.item_path) {
        let mut request = object.request(delete, None);
        // A DELETE documented with a body would get a generated one: none is wanted.
        request.body = None;
        request
            .headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        if let Some(session) = cx.sessions.get(owner) {
            request = request.with_auth(&session.auth);
        }
        cx.created(request);
    }
    Ok(Some((object, exchange)))
}

/// The id in a creation answer: the item path's parameter name, then `id`, the parameter without
/// `_id`/`Id`, `uuid`, `_id`; in the answer itself or one level down (`{"data": {...}}`).
pub fn id_in(answer: &Value, param: &str) -> Option<String> {
    let mut keys = vec![param.to_owned(), "id".to_owned()];
    for suffix in ["_id", "Id", "ID", "-id"] {
        if let Some(stem) = param.strip_suffix(suffix).filter(|s| !s.is_empty()) {
            keys.push(stem.to_owned());
        }
    }
    keys.push("uuid".into());
    keys.push("_id".into());
    let direct = |obj: &serde_json::Map<String, Value>| {
        keys.iter().find_map(|k| match obj.get(k) {
            Some(Value::String(s)) if !s.is_empty() && !s.contains('/') => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    let obj = answer.as_object()?;
    direct(obj).or_else(|| {
        ["data", "item", "result", "object"]
            .iter()
            .find_map(|k| obj.get(*k).and_then(Value::as_object).and_then(direct))
    })
}

/// The id in a `Location` header pointing under the collection: its last non-empty segment.
fn id_from_location(location: &str, collection: &str) -> Option<String> {
    let path = match url::Url::parse(location) {
        Ok(u) => u.path().to_owned(),
        Err(_) => location.split(['?', '#']).next().unwrap_or("").to_owned(),
    };
    let last_fixed = collection
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let id = segments.next()?;
    let parent = segments.next()?;
    (!id.is_empty() && (last_fixed.is_empty() || parent == last_fixed || last_fixed.contains('{')))
        .then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BodyKind, RequestBody};
    use axum::{
        Json, Router,
        extract::Path,
        http::StatusCode,
        routing::{get, post},
    };
    use serde_json::json;

    fn op(method: Method, path: &str) -> Operation {
        Operation {
            secured: true,
            ..crate::testing::op(method, path, None, &[])
        }
    }

    fn items_api() -> Api {
        let mut post = op(Method::POST, "/items/");
        post.body = Some(RequestBody {
            kind: BodyKind::Json,
            schema: json!({"type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}}}),
            required: true,
            example: None,
        });
        Api {
            operations: vec![
                op(Method::GET, "/health"),
                post,
                op(Method::GET, "/items/{item_id}"),
                op(Method::DELETE, "/items/{item_id}"),
                op(Method::POST, "/login"),
                op(Method::POST, "/users/{user_id}/notes"),
                op(Method::GET, "/users/{user_id}/notes/{note_id}"),
            ],
            ..Api::default()
        }
    }

    #[test]
    fn collections_have_an_item_path_with_a_get() {
        let api = items_api();
        let found: Vec<String> = collections(&api).iter().map(|o| o.path.clone()).collect();
        assert_eq!(found, ["/items/", "/users/{user_id}/notes"]);
        assert_eq!(
            item_path_of(&api, "/items/"),
            Some(("/items/{item_id}".into(), "item_id".into()))
        );
        assert_eq!(item_operations(&api, "/items/{item_id}").len(), 2);
    }

    #[test]
    fn ids_are_found_in_answers_and_locations() {
        assert_eq!(
            id_in(&json!({"item_id": 7, "id": 9}), "item_id").as_deref(),
            Some("7")
        );
        assert_eq!(
            id_in(&json!({"id": "a-b"}), "item_id").as_deref(),
            Some("a-b")
        );
        assert_eq!(id_in(&json!({"item": 3}), "item_id").as_deref(), Some("3"));
        assert_eq!(
            id_in(&json!({"data": {"uuid": "u1"}}), "x").as_deref(),
            Some("u1")
        );
        assert_eq!(id_in(&json!({"name": "n"}), "item_id"), None);
        assert_eq!(
            id_from_location("http://h/items/42", "/items/").as_deref(),
            Some("42")
        );
        assert_eq!(id_from_location("/other/42", "/items/"), None);
    }

    #[tokio::test]
    async fn create_posts_finds_the_id_and_cleans_up() {
        use std::sync::{Arc, Mutex};
        let deleted = Arc::new(Mutex::new(Vec::<String>::new()));
        let d = deleted.clone();
        let app = Router::new()
            .route(
                "/items/",
                post(|Json(body): Json<Value>| async move {
                    (
                        StatusCode::CREATED,
                        Json(json!({"id": 41, "name": body["name"]})),
                    )
                }),
            )
            .route(
                "/items/{item_id}",
                get(|Path(id): Path<String>| async move { Json(json!({"id": id})) }).delete(
                    move |Path(id): Path<String>| {
                        let d = d.clone();
                        async move {
                            d.lock().unwrap().push(id);
                            StatusCode::NO_CONTENT
                        }
                    },
                ),
            );
        let url = crate::testing::serve(app).await;
        let api = items_api();
        let cx = crate::testing::context(&url, Some(api.clone()), &["tok-a-1234"]);
        let post = api.find(&Method::POST, "/items/").unwrap();
        let (object, exchange) = create(&cx, post, 0, None).await.unwrap().unwrap();
        assert_eq!(exchange.status, 201);
        assert_eq!(object.id, "41");
        assert_eq!(object.item_path, "/items/{item_id}");
        assert_eq!(object.sent["name"], "audit");
        assert_eq!(
            exchange
                .request
                .headers
                .iter()
                .find(|(k, _)| k == "Authorization")
                .unwrap()
                .1,
            "Bearer tok-a-1234"
        );
        let get_op = item_operation(&api, &object, &Method::GET).unwrap();
        assert_eq!(object.request(get_op, None).path, "/items/41");
        assert_eq!(cx.clean_up().await, 0);
        assert_eq!(*deleted.lock().unwrap(), ["41"]);
    }

    #[tokio::test]
    async fn create_is_none_when_the_api_refuses() {
        let app = Router::new().route(
            "/items/",
            post(|| async { (StatusCode::FORBIDDEN, Json(json!({"detail": "no"}))) }),
        );
        let url = crate::testing::serve(app).await;
        let api = items_api();
        let cx = crate::testing::context(&url, Some(api.clone()), &["tok-a-1234"]);
        let post = api.find(&Method::POST, "/items/").unwrap();
        assert!(create(&cx, post, 0, None).await.unwrap().is_none());
        assert_eq!(cx.clean_up().await, 0);
    }
}
