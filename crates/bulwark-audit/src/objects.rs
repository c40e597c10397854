//! Objects the audit creates through the API to probe (one per collection and user), found from
//! the document: a `POST` on a collection path whose answer carries an id, and the operations on
//! the item path (`/items/{item_id}`) that take it.

use serde_json::Value;

use crate::{
    api::{Api, Operation},
    context::Context,
    probe::{Exchange, ProbeError},
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
}

/// The `POST` operations that create objects with an item path (a `GET` on
/// `{collection}/{param}`), in document order.
pub fn collections(api: &Api) -> Vec<&Operation> {
    let _ = api;
    Vec::new()
}

/// The operations on an item path (`GET`, `PUT`, `PATCH`, `DELETE` on `/items/{item_id}`).
pub fn item_operations<'a>(api: &'a Api, item_path: &str) -> Vec<&'a Operation> {
    api.operations
        .iter()
        .filter(|o| o.path == item_path)
        .collect()
}

/// Creates an object through `collection` as session `owner` (with `body`, else a generated
/// valid one), and remembers it for removal. `Ok(None)` when the API did not create one (not
/// 2xx, no id found).
pub async fn create(
    cx: &Context,
    collection: &Operation,
    owner: usize,
    body: Option<Value>,
) -> Result<Option<(Object, Exchange)>, ProbeError> {
    let _ = (cx, collection, owner, body);
    Ok(None)
}
