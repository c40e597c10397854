//! Access control: operations without credentials, one user's objects reached by another, fields
//! a client must not set.
//!
//! Every oracle compares what the API does with and without the right credentials, on objects the
//! audit created itself: a read counts only when it returns the same data as the owner's read, a
//! change only when the owner's read then shows it, a deletion only when the owner then gets
//! `404`.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
};

use http::Method;
use serde_json::{Value, json};

use crate::{
    api::{Api, Operation},
    catalog::CheckId,
    context::{Context, Outcome},
    generate::{Fill, request_for, value_for},
    objects::{self, Object},
    probe::{Auth, Exchange, ProbeError, ProbeRequest},
    report::{Evidence, Finding},
};

/// The most operations `auth-missing` tries.
const MAX_OPERATIONS: usize = 30;
/// The most collections the object-level checks create objects in.
const MAX_COLLECTIONS: usize = 8;

/// Fields a client must never set: ownership and privileges.
const PRIVILEGED: &[&str] = &[
    "owner_id",
    "user_id",
    "owner",
    "role",
    "roles",
    "is_admin",
    "admin",
    "is_superuser",
];

/// Keys whose presence marks an answer as a user record with secrets in it.
const SECRET_KEYS: &[&str] = &[
    "hashed_password",
    "password_hash",
    "passwordhash",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "private_key",
    "secret",
    "otp_secret",
    "totp_secret",
    "ssn",
];

/// Keys that change from one answer to the next without meaning anything.
const VOLATILE_KEYS: &[&str] = &[
    "timestamp",
    "time",
    "now",
    "request_id",
    "requestid",
    "trace_id",
    "nonce",
    "csrf_token",
    "server_time",
];

/// Paths that are public by design: health, documentation, login.
fn is_public_path(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    let first = p.trim_start_matches('/').split('/').next().unwrap_or("");
    matches!(
        first,
        "" | "health"
            | "healthz"
            | "ready"
            | "readyz"
            | "live"
            | "livez"
            | "ping"
            | "status"
            | "version"
            | "metrics"
            | "docs"
            | "redoc"
            | "swagger"
            | "swagger-ui"
            | "openapi.json"
            | "openapi.yaml"
            | "swagger.json"
            | ".well-known"
            | "favicon.ico"
            | "static"
            | "assets"
            | "login"
            | "logout"
            | "token"
            | "auth"
            | "oauth"
            | "signup"
            | "register"
            | "csrftoken"
            | "csrf"
    ) || p.contains("/token")
        || p.ends_with("/login")
        || p.ends_with("/signup")
        || p.ends_with("/register")
        || p.contains("openapi")
}

/// A value that cannot occur by chance (`prefix` + 10 hex digits), different each call.
fn canary(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = nanos.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(
        COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x1000_0001),
    );
    format!("{prefix}{:010x}", n & 0xff_ffff_ffff)
}

/// Whether an answer carries data: a non-empty JSON object or array.
fn meaningful(v: &Value) -> bool {
    match v {
        Value::Object(o) => !o.is_empty(),
        Value::Array(a) => a.iter().any(|x| !x.is_null()),
        _ => false,
    }
}

/// Whether two answers show the same data (volatile keys such as timestamps aside).
fn same_data(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    VOLATILE_KEYS.contains(&k.to_ascii_lowercase().as_str())
                        || y.get(k).is_some_and(|w| same_data(v, w))
                })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_data(v, w))
        }
        _ => false,
    }
}

/// Whether `seen` is the audit's `object` as its owner sees it (`owner_view`): the same data, or
/// the same id with every field of the owner's view.
fn is_the_object(seen: &Value, owner_view: &Value, object: &Object) -> bool {
    if !meaningful(seen) {
        return false;
    }
    if same_data(seen, owner_view) {
        return true;
    }
    let (Some(s), Some(o)) = (seen.as_object(), owner_view.as_object()) else {
        return false;
    };
    objects::id_in(seen, &object.param).as_deref() == Some(object.id.as_str())
        && o.iter().all(|(k, v)| {
            VOLATILE_KEYS.contains(&k.to_ascii_lowercase().as_str()) || s.get(k) == Some(v)
        })
}

/// What marks `v` as private user data: a key holding a secret (`hashed_password`, ...), or a
/// record whose `username`/`email` is one of the audit's users. `None` when nothing does.
fn user_data(v: &Value, usernames: &[&str], depth: usize) -> Option<String> {
    if depth > 6 {
        return None;
    }
    match v {
        Value::Object(o) => {
            for (k, val) in o {
                let key = k.to_ascii_lowercase();
                if SECRET_KEYS.contains(&key.as_str()) && val.as_str().is_some_and(|s| s.len() >= 4)
                {
                    return Some(format!("a `{k}` field"));
                }
                if matches!(key.as_str(), "username" | "email" | "user" | "login")
                    && val
                        .as_str()
                        .is_some_and(|s| usernames.iter().any(|u| u.eq_ignore_ascii_case(s)))
                {
                    return Some("an audit user's record".into());
                }
            }
            o.values().find_map(|x| user_data(x, usernames, depth + 1))
        }
        Value::Array(a) => a
            .iter()
            .take(50)
            .find_map(|x| user_data(x, usernames, depth + 1)),
        _ => None,
    }
}

/// A request for `op` without credentials, on `object` when given.
fn request(op: &Operation, object: Option<&Object>, body: Option<Value>) -> ProbeRequest {
    match object {
        Some(o) => o.request(op, body),
        None => request_for(
            op,
            &Fill {
                body,
                ..Fill::default()
            },
        ),
    }
}

/// `request` with `auth` (when some).
fn authed(request: ProbeRequest, auth: Option<&Auth>) -> ProbeRequest {
    match auth {
        Some(a) => request.with_auth(a),
        None => request,
    }
}

/// A `DELETE` without the generated body `request_for` may add.
fn bare(mut request: ProbeRequest) -> ProbeRequest {
    request.body = None;
    request
        .headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    request
}

/// Reads `object` through its item `GET` with `auth`.
async fn read_object(
    cx: &Context,
    api: &Api,
    object: &Object,
    auth: Option<&Auth>,
) -> Result<Option<Exchange>, ProbeError> {
    let Some(get) = api.find(&Method::GET, &object.item_path) else {
        return Ok(None);
    };
    Ok(Some(
        cx.send(authed(object.request(get, None), auth)).await?,
    ))
}

/// The evidence of an exchange: secrets masked by the context, and the values of secret-looking
/// fields of the answer (`"hashed_password": "…"`) masked too: a finding shows that they leak,
/// not what they are.
fn evidence(cx: &Context, exchange: &Exchange) -> Evidence {
    let mut e = cx.evidence(exchange);
    e.response = scrub(&e.response);
    e
}

/// `text` with the string value of every [`SECRET_KEYS`] field (`"key": "value"`) replaced by
/// `***`.
fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(q) = rest.find('"') {
        let after_quote = &rest[q + 1..];
        let Some(end) = after_quote.find('"') else {
            break;
        };
        let key = &after_quote[..end];
        out.push_str(&rest[..q + 1]);
        out.push_str(key);
        out.push('"');
        rest = &after_quote[end + 1..];
        if !SECRET_KEYS.contains(&key.to_ascii_lowercase().as_str()) {
            continue;
        }
        let trimmed = rest.trim_start();
        let Some(value) = trimmed.strip_prefix(':').map(str::trim_start) else {
            continue;
        };
        let Some(body) = value.strip_prefix('"') else {
            continue;
        };
        // The closing quote (not an escaped one), or the end of the excerpt.
        let mut close = body.len();
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    close = i;
                    break;
                }
                _ => escaped = false,
            }
        }
        out.push_str(&rest[..rest.len() - value.len()]);
        out.push_str("\"***\"");
        rest = body.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Evidence from two exchanges: the request of `sent`, the answer of `shown` (a read-back).
fn combined(cx: &Context, sent: &Exchange, shown: &Exchange) -> Evidence {
    let s = evidence(cx, sent);
    let r = evidence(cx, shown);
    Evidence {
        request: format!(
            "{}\n\n(then) {}",
            s.request,
            r.request.lines().next().unwrap_or("")
        ),
        response: format!(
            "{}\n\n(read back) {}",
            s.response.lines().next().unwrap_or(""),
            r.response
        ),
    }
}

/// A body for `op` (a `PUT`/`PATCH` on the item path) that keeps the object valid and sets one
/// plain string field to a canary: `(body, field, canary)`.
fn changed_body(op: &Operation, current: &Value, sent: &Value) -> Option<(Value, String, String)> {
    let schema = op.body.as_ref().map(|b| &b.schema);
    let mut body = op
        .body
        .as_ref()
        .map(|b| b.example.clone().unwrap_or_else(|| value_for(&b.schema)))
        .unwrap_or_else(|| json!({}));
    let props = schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object);
    let obj = body.as_object_mut()?;
    // Keep what the object holds, for the fields the operation takes.
    for source in [sent, current] {
        if let Some(src) = source.as_object() {
            for (k, v) in src {
                if props.is_none_or(|p| p.contains_key(k)) && obj.contains_key(k) {
                    obj.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let plain = |name: &str, prop: &Value| {
        let n = name.to_ascii_lowercase();
        let ty_string = match prop.get("type") {
            Some(Value::String(t)) => t == "string",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
            None => prop
                .get("anyOf")
                .is_some_and(|a| a.to_string().contains("\"string\"")),
            _ => false,
        };
        ty_string
            && prop.get("readOnly") != Some(&Value::Bool(true))
            && prop.get("enum").is_none()
            && prop.get("format").is_none()
            && prop
                .get("pattern")
                .and_then(Value::as_str)
                .is_none_or(|p| p.starts_with("^[^") && p.ends_with("]*$"))
            && prop
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_none_or(|m| m >= 16)
            && n != "id"
            && !n.ends_with("_id")
            && !PRIVILEGED.contains(&n.as_str())
            && !n.contains("password")
    };
    let field = match props {
        Some(p) => p.iter().find(|(k, v)| plain(k, v)).map(|(k, _)| k.clone()),
        None => obj
            .iter()
            .find(|(k, v)| v.is_string() && plain(k, &json!({"type": "string"})))
            .map(|(k, _)| k.clone()),
    }?;
    let mark = canary("bz");
    obj.insert(field.clone(), Value::String(mark.clone()));
    Some((body, field, mark))
}

/// The item path `object` lives at, when `op` works on it (`/items/{item_id}` or below).
fn on_item(op: &Operation, objects: &BTreeMap<String, Object>) -> Option<String> {
    objects
        .keys()
        .filter(|item| op.path == **item || op.path.starts_with(&format!("{item}/")))
        .max_by_key(|item| item.len())
        .cloned()
}

/// The documented `GET …/me` (or `/user`): the caller's own record.
fn me_operation(api: &Api) -> Option<&Operation> {
    api.operations.iter().find(|o| {
        o.method == Method::GET
            && o.path_params().next().is_none()
            && (o.path.trim_end_matches('/').ends_with("/me")
                || o.path.trim_end_matches('/') == "/user")
    })
}

/// Session `index`'s own record, from [`me_operation`], if any.
async fn me_of(cx: &Context, index: usize) -> Option<Value> {
    let api = cx.api.as_ref()?;
    let session = cx.sessions.get(index)?;
    let me = me_operation(api)?;
    let x = cx
        .send(request_for(me, &Fill::default()).with_auth(&session.auth))
        .await
        .ok()?;
    if !x.status.is_success() {
        return None;
    }
    x.json().filter(Value::is_object)
}

/// The id in a user record: `id`, `user_id` or `uuid`.
fn id_of(me: &Value) -> Option<Value> {
    ["id", "user_id", "uuid"]
        .iter()
        .find_map(|k| me.get(*k).filter(|x| x.is_number() || x.is_string()))
        .cloned()
}

/// Whether a user record says the user is an administrator (who may reach anyone's objects).
fn is_admin(me: &Value) -> bool {
    let admin = |s: &str| {
        matches!(
            s.to_ascii_lowercase().as_str(),
            "admin" | "administrator" | "superuser" | "root"
        )
    };
    ["role", "roles", "scopes", "groups"]
        .iter()
        .any(|k| match me.get(*k) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).any(admin),
            Some(Value::String(s)) => s.split([' ', ',']).any(admin),
            _ => false,
        })
        || ["is_admin", "admin", "is_superuser", "superuser", "is_staff"]
            .iter()
            .any(|k| me.get(*k) == Some(&Value::Bool(true)))
}

/// The id of session `index` as the API knows it (see [`me_of`]).
async fn user_id_of(cx: &Context, index: usize) -> Option<Value> {
    id_of(&me_of(cx, index).await?)
}

/// `auth-missing`: operations that answer without credentials what they answer with them (reads
/// of the same data), that change the audit's objects without credentials, or that hand out
/// user records (password hashes, the audit users' records) to anyone.
pub async fn auth_missing(cx: &Context) -> Outcome {
    let Some(api) = cx.api.as_ref() else {
        return Outcome::Skipped("no OpenAPI document".into());
    };
    match auth_missing_in(cx, api).await {
        Ok(o) => o,
        Err(e) => e.into(),
    }
}

async fn auth_missing_in(cx: &Context, api: &Api) -> Result<Outcome, ProbeError> {
    let owner = cx.sessions.first().map(|s| &s.auth);
    let usernames: Vec<&str> = cx
        .sessions
        .iter()
        .filter_map(|s| s.username.as_deref())
        .collect();
    // One object per collection, created by user A, for the operations on item paths.
    let mut objects_by_item: BTreeMap<String, Object> = BTreeMap::new();
    if owner.is_some() {
        for coll in objects::collections(api).into_iter().take(MAX_COLLECTIONS) {
            if let Some((o, _)) = objects::create(cx, coll, 0, None).await? {
                objects_by_item.entry(o.item_path.clone()).or_insert(o);
            }
        }
    }
    let mut findings = Vec::new();
    let mut tried = 0;
    for op in api
        .operations
        .iter()
        .filter(|o| !is_public_path(&o.path))
        .take(MAX_OPERATIONS)
    {
        let object = on_item(op, &objects_by_item).and_then(|k| objects_by_item.get(&k));
        let found = match op.method {
            Method::GET | Method::HEAD => {
                tried += 1;
                anonymous_read(cx, op, object, owner, &usernames).await?
            }
            Method::POST if owner.is_some() && op.secured && object.is_none() => {
                if objects::item_path_of(api, &op.path).is_none() {
                    continue;
                }
                tried += 1;
                anonymous_create(cx, api, op).await?
            }
            Method::PUT | Method::PATCH if op.path_params().count() > 0 => {
                let Some(object) = object.filter(|o| o.item_path == op.path) else {
                    continue;
                };
                tried += 1;
                anonymous_change(cx, api, op, object).await?
            }
            Method::DELETE => {
                let Some(object) = object.filter(|o| o.item_path == op.path) else {
                    continue;
                };
                tried += 1;
                anonymous_delete(cx, api, op, object).await?
            }
            _ => continue,
        };
        findings.extend(found);
    }
    let note = format!("{tried} operations sent without credentials");
    Ok(Outcome::from_findings(findings, Some(note)))
}

/// A read without credentials: a finding when it answers the data the owner gets and the
/// document says it needs credentials, or when the data is private (user records, or an object
/// user B may not read).
async fn anonymous_read(
    cx: &Context,
    op: &Operation,
    object: Option<&Object>,
    owner: Option<&Auth>,
    usernames: &[&str],
) -> Result<Option<Finding>, ProbeError> {
    let anon = cx.send(request(op, object, None)).await?;
    if !anon.status.is_success() {
        return Ok(None);
    }
    let Some(anon_body) = anon.json().filter(meaningful) else {
        return Ok(None);
    };
    let finding = |why: String| {
        Finding::new(CheckId::AuthMissing, op.label(), evidence(cx, &anon))
            .titled(format!("{} answers without credentials: {why}", op.label()))
    };
    // Secrets or the audit users' records, to anyone.
    if let Some(what) = user_data(&anon_body, usernames, 0) {
        // Confirm: the same again.
        let again = cx.send(request(op, object, None)).await?;
        if again.status.is_success() && again.json().is_some_and(|v| same_data(&v, &anon_body)) {
            return Ok(Some(finding(format!("it returns {what}"))));
        }
        return Ok(None);
    }
    let Some(auth) = owner else {
        return Ok(None);
    };
    let with = cx.send(request(op, object, None).with_auth(auth)).await?;
    if !with.status.is_success() {
        return Ok(None);
    }
    let Some(with_body) = with.json().filter(meaningful) else {
        return Ok(None);
    };
    if !same_data(&anon_body, &with_body) {
        return Ok(None);
    }
    if op.secured {
        return Ok(Some(finding(
            "the same data as with credentials, though the document requires them".into(),
        )));
    }
    // Undocumented: only when the data is private, i.e. another user may not read it.
    if let (Some(object), Some((_, b))) = (object, cx.two_sessions())
        && op.path == object.item_path
        && is_the_object(&anon_body, &with_body, object)
    {
        let by_b = cx
            .send(request(op, Some(object), None).with_auth(&b.auth))
            .await?;
        if matches!(by_b.status.as_u16(), 401 | 403 | 404) {
            return Ok(Some(finding(format!(
                "user A's object, which user B is refused ({})",
                by_b.status.as_u16()
            ))));
        }
    }
    Ok(None)
}

/// A documented-secured collection `POST` without credentials: a finding when it creates an
/// object that can then be read.
async fn anonymous_create(
    cx: &Context,
    api: &Api,
    op: &Operation,
) -> Result<Option<Finding>, ProbeError> {
    // `usize::MAX`: no session, no credentials.
    let Some((object, exchange)) = objects::create(cx, op, usize::MAX, None).await? else {
        return Ok(None);
    };
    let owner = cx.sessions.first().map(|s| &s.auth);
    if let Some(delete) = api.find(&Method::DELETE, &object.item_path)
        && let Some(auth) = owner
    {
        cx.created(bare(object.request(delete, None)).with_auth(auth));
    }
    for auth in [owner, None] {
        if let Some(read) = read_object(cx, api, &object, auth).await?
            && read.status.is_success()
            && read
                .json()
                .is_some_and(|v| objects::id_in(&v, &object.param).as_deref() == Some(&object.id))
        {
            return Ok(Some(
                Finding::new(
                    CheckId::AuthMissing,
                    op.label(),
                    combined(cx, &exchange, &read),
                )
                .titled(format!(
                    "{} creates objects without credentials, though the document requires them",
                    op.label()
                )),
            ));
        }
    }
    Ok(None)
}

/// A `PUT`/`PATCH` on user A's object without credentials: a finding when A's read then shows
/// the change.
async fn anonymous_change(
    cx: &Context,
    api: &Api,
    op: &Operation,
    object: &Object,
) -> Result<Option<Finding>, ProbeError> {
    let owner = cx.sessions.first().map(|s| &s.auth);
    let Some(before) = read_object(cx, api, object, owner).await? else {
        return Ok(None);
    };
    let current = before.json().unwrap_or(Value::Null);
    let Some((body, field, mark)) = changed_body(op, &current, &object.sent) else {
        return Ok(None);
    };
    let x = cx.send(object.request(op, Some(body))).await?;
    if !x.status.is_success() {
        return Ok(None);
    }
    let Some(after) = read_object(cx, api, object, owner).await? else {
        return Ok(None);
    };
    if after.status.is_success()
        && after.json().and_then(|v| v.get(&field).cloned()) == Some(Value::String(mark))
    {
        return Ok(Some(
            Finding::new(CheckId::AuthMissing, op.label(), combined(cx, &x, &after)).titled(
                format!("{} changes user A's object without credentials", op.label()),
            ),
        ));
    }
    Ok(None)
}

/// A `DELETE` of a fresh object of user A without credentials: a finding when A then gets
/// `404`/`410`.
async fn anonymous_delete(
    cx: &Context,
    api: &Api,
    op: &Operation,
    object: &Object,
) -> Result<Option<Finding>, ProbeError> {
    // A fresh object, so that the other probes keep theirs.
    let Some(coll) = api.find(&Method::POST, &object.collection) else {
        return Ok(None);
    };
    let Some((fresh, _)) = objects::create(cx, coll, object.owner, None).await? else {
        return Ok(None);
    };
    let owner = cx.sessions.get(object.owner).map(|s| &s.auth);
    match read_object(cx, api, &fresh, owner).await? {
        Some(r) if r.status.is_success() => {}
        _ => return Ok(None),
    }
    let x = cx.send(bare(fresh.request(op, None))).await?;
    if !x.status.is_success() {
        return Ok(None);
    }
    let Some(after) = read_object(cx, api, &fresh, owner).await? else {
        return Ok(None);
    };
    if matches!(after.status.as_u16(), 404 | 410) {
        return Ok(Some(
            Finding::new(CheckId::AuthMissing, op.label(), combined(cx, &x, &after)).titled(
                format!("{} deletes user A's object without credentials", op.label()),
            ),
        ));
    }
    Ok(None)
}

/// `bola`: user A creates an object; user B reads it (a finding when B gets A's object), changes
/// it (when A's read then shows B's change), deletes it (when A then gets `404`).
pub async fn bola(cx: &Context) -> Outcome {
    let Some(api) = cx.api.as_ref() else {
        return Outcome::Skipped("no OpenAPI document".into());
    };
    let Some((a, b)) = cx.two_sessions() else {
        return Outcome::Skipped(
            "needs two users (two `users` or `tokens` in --credentials)".into(),
        );
    };
    if a.username.is_some() && a.username == b.username
        || a.auth.token.is_some() && a.auth.token == b.auth.token
    {
        return Outcome::Skipped("the two sessions are the same user".into());
    }
    let collections = objects::collections(api);
    if collections.is_empty() {
        return Outcome::Skipped(
            "no collection with an item path (POST /x and GET /x/{id}) to create objects in".into(),
        );
    }
    // Two logins of the same account would make every object "another user's"; an
    // administrator may reach anyone's objects by design, so the owner is the administrator
    // if there is one, and the intruder must not be one.
    let (me_a, me_b) = (me_of(cx, 0).await, me_of(cx, 1).await);
    if let (Some(ia), Some(ib)) = (me_a.as_ref().and_then(id_of), me_b.as_ref().and_then(id_of))
        && ia == ib
    {
        return Outcome::Skipped("the two sessions are the same user".into());
    }
    let admin_a = me_a.as_ref().is_some_and(is_admin);
    let admin_b = me_b.as_ref().is_some_and(is_admin);
    let (owner, intruder) = match (admin_a, admin_b) {
        (_, false) => (0, 1),
        (false, true) => (1, 0),
        (true, true) => {
            return Outcome::Skipped(
                "both users are administrators: give a user without admin rights".into(),
            );
        }
    };
    match bola_in(cx, api, &collections, owner, intruder).await {
        Ok(o) => o,
        Err(e) => e.into(),
    }
}

async fn bola_in(
    cx: &Context,
    api: &Api,
    collections: &[&Operation],
    owner: usize,
    intruder: usize,
) -> Result<Outcome, ProbeError> {
    let a = &cx.sessions[owner].auth;
    let b = &cx.sessions[intruder].auth;
    let (la, lb) = (&cx.sessions[owner].label, &cx.sessions[intruder].label);
    let mut findings = Vec::new();
    let mut created = 0;
    // Whether the intruder reaches objects only because of a privilege (checked once, on the
    // first would-be finding: then the owner cannot reach the intruder's objects in return).
    let mut privileged: Option<bool> = None;
    for coll in collections.iter().take(MAX_COLLECTIONS) {
        let mut here = Vec::new();
        let Some((object, _)) = objects::create(cx, coll, owner, None).await? else {
            continue;
        };
        created += 1;
        let Some(a_read) = read_object(cx, api, &object, Some(a)).await? else {
            continue;
        };
        let Some(a_view) = a_read.json().filter(|_| a_read.status.is_success()) else {
            continue;
        };
        // B reads.
        if let Some(b_read) = read_object(cx, api, &object, Some(b)).await?
            && b_read.status.is_success()
            && b_read
                .json()
                .is_some_and(|v| is_the_object(&v, &a_view, &object))
        {
            let label = format!("GET {}", object.item_path);
            here.push(
                Finding::new(CheckId::Bola, label.clone(), evidence(cx, &b_read))
                    .titled(format!("{label}: {lb} reads {la}'s object")),
            );
        }
        // B changes.
        for method in [Method::PUT, Method::PATCH] {
            let Some(op) = api.find(&method, &object.item_path) else {
                continue;
            };
            let Some((body, field, mark)) = changed_body(op, &a_view, &object.sent) else {
                continue;
            };
            let x = cx.send(object.request(op, Some(body)).with_auth(b)).await?;
            if !x.status.is_success() {
                continue;
            }
            if let Some(after) = read_object(cx, api, &object, Some(a)).await?
                && after.status.is_success()
                && after.json().and_then(|v| v.get(&field).cloned()) == Some(Value::String(mark))
            {
                here.push(
                    Finding::new(CheckId::Bola, op.label(), combined(cx, &x, &after))
                        .titled(format!("{}: {lb} changes {la}'s object", op.label())),
                );
                break;
            }
        }
        // B deletes (last: the object is gone afterwards).
        if let Some(op) = api.find(&Method::DELETE, &object.item_path) {
            let x = cx.send(bare(object.request(op, None)).with_auth(b)).await?;
            if x.status.is_success()
                && let Some(after) = read_object(cx, api, &object, Some(a)).await?
                && matches!(after.status.as_u16(), 404 | 410)
            {
                here.push(
                    Finding::new(CheckId::Bola, op.label(), combined(cx, &x, &after))
                        .titled(format!("{}: {lb} deletes {la}'s object", op.label())),
                );
            }
        }
        if here.is_empty() {
            continue;
        }
        if privileged.is_none() {
            privileged = Some(one_way(cx, api, coll, owner, intruder).await?);
        }
        if privileged == Some(true) {
            return Ok(Outcome::Passed(Some(format!(
                "{lb} reaches {la}'s objects but not the reverse: {lb} looks privileged (an \
                 administrator?); give two ordinary users to test object-level access"
            ))));
        }
        findings.extend(here);
    }
    if created == 0 {
        return Ok(Outcome::Skipped(format!(
            "{la} could create no object to probe (no 2xx with an id)"
        )));
    }
    Ok(Outcome::from_findings(
        findings,
        Some(format!("{created} objects of {la} probed as {lb}")),
    ))
}

/// Whether access runs one way only: `owner` cannot read an object `intruder` creates in
/// `coll` (so the intruder's reach comes from a privilege, not a missing check). `false` when
/// the intruder cannot create one.
async fn one_way(
    cx: &Context,
    api: &Api,
    coll: &Operation,
    owner: usize,
    intruder: usize,
) -> Result<bool, ProbeError> {
    let Some((theirs, _)) = objects::create(cx, coll, intruder, None).await? else {
        return Ok(false);
    };
    let own = read_object(cx, api, &theirs, cx.sessions.get(intruder).map(|s| &s.auth)).await?;
    let Some(own_view) = own.filter(|x| x.status.is_success()).and_then(|x| x.json()) else {
        return Ok(false);
    };
    let by_owner = read_object(cx, api, &theirs, cx.sessions.get(owner).map(|s| &s.auth)).await?;
    Ok(!by_owner.is_some_and(|x| {
        x.status.is_success()
            && x.json()
                .is_some_and(|v| is_the_object(&v, &own_view, &theirs))
    }))
}

/// A field planted in a request, and the value that shows it applied.
#[derive(Debug, Clone)]
struct Planted {
    name: String,
    value: Value,
}

/// The type a schema gives a property (`string` when it gives none).
fn type_of(prop: Option<&Value>) -> &str {
    match prop.and_then(|p| p.get("type")) {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string"),
        _ => "",
    }
}

/// The fields to plant in a creation or update: the privileged ones, the schema's `readOnly`
/// ones, and the ones the answer has but the request may not set; each with a distinctive value.
fn plantable(
    request_schema: Option<&Value>,
    response_schema: Option<&Value>,
    baseline: &Value,
    other_id: Option<&Value>,
    skip: &[&str],
) -> Vec<Planted> {
    let req_props = request_schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object);
    let resp_props = response_schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object);
    let prop = |name: &str| {
        resp_props
            .and_then(|p| p.get(name))
            .or_else(|| req_props.and_then(|p| p.get(name)))
    };
    let mut names: Vec<String> = PRIVILEGED.iter().map(|s| (*s).to_owned()).collect();
    for props in [req_props, resp_props].into_iter().flatten() {
        for (k, v) in props {
            if v.get("readOnly") == Some(&Value::Bool(true)) {
                names.push(k.clone());
            }
        }
    }
    if let (Some(resp), Some(req)) = (resp_props, req_props) {
        // Answer-only fields, when their name says the server controls them (a field the
        // document merely forgot in the request schema is no privilege).
        names.extend(
            resp.keys()
                .filter(|k| !req.contains_key(*k) && server_controlled(k))
                .cloned(),
        );
    }
    let mut out: Vec<Planted> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        if out.iter().any(|p| p.name == *name)
            || lower == "id"
            || skip.contains(&name.as_str())
            || lower.contains("password")
        {
            continue;
        }
        let p = prop(name);
        let current = baseline.get(name);
        let ty = match type_of(p) {
            "" => match current {
                Some(Value::Bool(_)) => "boolean",
                Some(Value::Number(_)) => "integer",
                Some(Value::Array(_)) => "array",
                Some(Value::Object(_)) => "object",
                Some(Value::String(_)) => "string",
                _ => match lower.as_str() {
                    "is_admin" | "admin" | "is_superuser" => "boolean",
                    "roles" => "array",
                    n if n.ends_with("_id") => "integer",
                    _ => "string",
                },
            },
            t => t,
        };
        let ownerish = matches!(lower.as_str(), "owner_id" | "user_id" | "owner");
        let value = match (ty, lower.as_str()) {
            (_, _) if ownerish && other_id.is_some() => other_id.cloned().unwrap_or(Value::Null),
            ("boolean", _) => match current {
                Some(Value::Bool(b)) => Value::Bool(!b),
                _ => Value::Bool(true),
            },
            ("string", "role") => json!("admin"),
            ("array", "roles") => json!(["admin"]),
            ("array", _) | ("object", _) => continue,
            ("integer" | "number", _) => json!(987_650_011 + i as u64),
            ("string", _) => match p.and_then(|p| p.get("format")).and_then(Value::as_str) {
                Some("uuid") => json!(format!("0a0d17ed-0000-4000-8000-{:012}", 3_000 + i)),
                Some(_) => continue,
                None => Value::String(canary("ma")),
            },
            _ => continue,
        };
        if current == Some(&value) {
            continue;
        }
        out.push(Planted {
            name: name.clone(),
            value,
        });
        if out.len() >= 14 {
            break;
        }
    }
    out
}

/// Whether a field's name says the server, not the client, sets it (ownership, privileges,
/// verification, money).
fn server_controlled(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with("_id")
        || n.starts_with("is_")
        || n.starts_with("has_")
        || [
            "owner",
            "role",
            "admin",
            "permission",
            "scope",
            "verified",
            "balance",
            "credit",
            "tier",
            "plan",
            "privilege",
            "approved",
        ]
        .iter()
        .any(|w| n.contains(w))
}

/// The fields of `planted` that `view` shows with their planted value (and `baseline` did not).
fn applied(planted: &[Planted], view: &Value, baseline: &Value) -> Vec<String> {
    planted
        .iter()
        .filter(|p| view.get(&p.name) == Some(&p.value) && baseline.get(&p.name) != Some(&p.value))
        .map(|p| p.name.clone())
        .collect()
}

/// The JSON schema of an operation's success answer, if documented.
fn success_schema(op: &Operation) -> Option<&Value> {
    op.responses
        .iter()
        .filter(|r| r.status.starts_with('2'))
        .find_map(|r| r.schema.as_ref())
}

/// `mass-assignment`: creations and updates with privileged or read-only fields added
/// (`owner_id`, `role`, `is_admin`, ...); a finding only when the object read back with `GET`
/// holds a planted value.
pub async fn mass_assignment(cx: &Context) -> Outcome {
    let Some(api) = cx.api.as_ref() else {
        return Outcome::Skipped("no OpenAPI document".into());
    };
    // A sign-up that takes an admin flag needs no session: the new account shows it.
    let signup = match signup_as_admin(cx, api).await {
        Ok(found) => found,
        Err(e) => return e.into(),
    };
    if cx.sessions.is_empty() {
        return match signup {
            Some(f) => Outcome::Found(vec![f]),
            None => Outcome::Skipped("needs a logged-in user".into()),
        };
    }
    let collections = objects::collections(api);
    if collections.is_empty() {
        return match signup {
            Some(f) => Outcome::Found(vec![f]),
            None => Outcome::Skipped(
                "no collection with an item path (POST /x and GET /x/{id}) to create objects in"
                    .into(),
            ),
        };
    }
    match mass_assignment_in(cx, api, &collections).await {
        Ok(Outcome::Found(mut found)) => {
            found.extend(signup);
            Outcome::Found(found)
        }
        Ok(other) => match signup {
            Some(f) => Outcome::Found(vec![f]),
            None => other,
        },
        Err(e) => e.into(),
    }
}

/// Privileged fields a sign-up body is given, with the values that would make an administrator.
fn admin_fields() -> [(&'static str, Value); 5] {
    [
        ("is_admin", Value::Bool(true)),
        ("admin", Value::Bool(true)),
        ("is_superuser", Value::Bool(true)),
        ("role", json!("admin")),
        ("roles", json!(["admin"])),
    ]
}

/// Mass assignment at sign-up: a new account whose body also says it is an administrator, then
/// logged in and read back through `GET …/me`. A finding only when the stored account is an
/// administrator; the account is removed when the document says how.
async fn signup_as_admin(cx: &Context, api: &Api) -> Result<Option<Finding>, ProbeError> {
    let Some(op) = super::login::signup_operations(api, &cx.token_url)
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let Some(me) = me_operation(api) else {
        return Ok(None);
    };
    let account = format!("bwkaudit{}", super::login::nonce());
    let password = format!("Bwk-{}-Aa9!", super::login::nonce());
    cx.secrets.add(&password);
    let mut body = super::login::signup_body(op, &account, &password);
    if let Some(o) = body.as_object_mut() {
        for (name, value) in admin_fields() {
            o.insert(name.to_owned(), value);
        }
    }
    let created = cx
        .send(request_for(
            op,
            &Fill {
                body: Some(body),
                ..Fill::default()
            },
        ))
        .await?;
    if !created.status.is_success() {
        return Ok(None);
    }
    let user = crate::UserCredential {
        username: account.clone(),
        password: Some(password.clone()),
    };
    let removal =
        super::login::removal(cx, api, op, &account, &password, created.json().as_ref()).await;
    let Ok((token, _)) = cx.login(&user).await else {
        if let Some(delete) = removal {
            cx.created(delete);
        }
        return Ok(None);
    };
    let read = cx
        .send(request_for(me, &Fill::default()).bearer(&token))
        .await?;
    let admitted = Some(&read)
        .filter(|x| x.status.is_success())
        .and_then(Exchange::json)
        .is_some_and(|v| is_admin(&v));
    let mut title = format!(
        "{} makes the new account an administrator: the body's admin flag or role is applied",
        op.label()
    );
    match removal {
        Some(delete) => cx.created(delete),
        None if admitted => title.push_str(&format!(
            " (the account {account} it created could not be removed: the document has no delete for it; remove it by hand)"
        )),
        None => {}
    }
    Ok(admitted.then(|| {
        Finding::new(
            CheckId::MassAssignment,
            op.label(),
            combined(cx, &created, &read),
        )
        .titled(title)
    }))
}

async fn mass_assignment_in(
    cx: &Context,
    api: &Api,
    collections: &[&Operation],
) -> Result<Outcome, ProbeError> {
    let a = &cx.sessions[0].auth;
    let b = cx.two_sessions().map(|(_, b)| &b.auth);
    let mut other_id = if b.is_some() {
        user_id_of(cx, 1).await
    } else {
        None
    };
    let mut findings = Vec::new();
    let mut tried = 0;
    for coll in collections.iter().take(MAX_COLLECTIONS) {
        let Some((base, _)) = objects::create(cx, coll, 0, None).await? else {
            continue;
        };
        let Some(base_read) = read_object(cx, api, &base, Some(a)).await? else {
            continue;
        };
        let Some(base_view) = base_read.json().filter(|_| base_read.status.is_success()) else {
            continue;
        };
        let Some(sent) = base.sent.as_object().cloned() else {
            continue;
        };
        // B's id from an object of B's, when no `/me` told it.
        if other_id.is_none()
            && b.is_some()
            && let Some((theirs, _)) = objects::create(cx, coll, 1, None).await?
        {
            other_id = ["owner_id", "user_id", "owner"]
                .iter()
                .find_map(|k| {
                    theirs
                        .answer
                        .get(*k)
                        .filter(|v| v.is_number() || v.is_string())
                })
                .cloned();
        }
        let get = api.find(&Method::GET, &base.item_path);
        let response_schema = get
            .and_then(success_schema)
            .or_else(|| success_schema(coll));
        let planted = plantable(
            coll.body.as_ref().map(|x| &x.schema),
            response_schema,
            &base_view,
            other_id.as_ref(),
            &[base.param.as_str()],
        );
        if planted.is_empty() {
            continue;
        }
        tried += 1;
        // Creations with the planted fields: ownership last and apart, since a planted owner may
        // take the object out of user A's reach and hide the other fields.
        let mut hit: Option<(Exchange, Exchange, Vec<String>)> = None;
        for group in owner_last(&planted) {
            let mut body = sent.clone();
            for p in &group {
                body.insert(p.name.clone(), p.value.clone());
            }
            let Some((object, exchange)) =
                objects::create(cx, coll, 0, Some(Value::Object(body))).await?
            else {
                continue;
            };
            if let (Some(b), Some(delete)) = (b, api.find(&Method::DELETE, &object.item_path)) {
                cx.created(bare(object.request(delete, None)).with_auth(b));
            }
            if let Some((read, fields)) =
                read_back(cx, api, &object, &group, &base_view, a, b).await?
            {
                match &mut hit {
                    Some((_, _, all)) => all.extend(fields),
                    None => hit = Some((exchange, read, fields)),
                }
            }
        }
        if let Some((sent_x, read, fields)) = hit {
            findings.push(mass_finding(cx, coll, &sent_x, &read, &fields));
        }
        // Updates of the baseline object with the planted fields (a planted owner may hand it
        // to user B: B removes it then).
        if let (Some(b), Some(delete)) = (b, api.find(&Method::DELETE, &base.item_path)) {
            cx.created(bare(base.request(delete, None)).with_auth(b));
        }
        for method in [Method::PUT, Method::PATCH] {
            let Some(op) = api.find(&method, &base.item_path) else {
                continue;
            };
            let mut body = op
                .body
                .as_ref()
                .map(|x| x.example.clone().unwrap_or_else(|| value_for(&x.schema)))
                .unwrap_or_else(|| json!({}));
            let Some(obj) = body.as_object_mut() else {
                continue;
            };
            for (k, v) in &sent {
                if obj.contains_key(k) {
                    obj.insert(k.clone(), v.clone());
                }
            }
            let planted = plantable(
                op.body.as_ref().map(|x| &x.schema),
                response_schema,
                &base_view,
                other_id.as_ref(),
                &[base.param.as_str()],
            );
            let mut hit: Option<(Exchange, Exchange, Vec<String>)> = None;
            for group in owner_last(&planted) {
                let mut body = obj.clone();
                for p in &group {
                    body.insert(p.name.clone(), p.value.clone());
                }
                let x = cx
                    .send(base.request(op, Some(Value::Object(body))).with_auth(a))
                    .await?;
                if !x.status.is_success() {
                    continue;
                }
                if let Some((read, fields)) =
                    read_back(cx, api, &base, &group, &base_view, a, b).await?
                {
                    match &mut hit {
                        Some((_, _, all)) => all.extend(fields),
                        None => hit = Some((x, read, fields)),
                    }
                }
            }
            if let Some((sent_x, read, fields)) = hit {
                findings.push(mass_finding(cx, op, &sent_x, &read, &fields));
                break;
            }
        }
    }
    Ok(Outcome::from_findings(
        findings,
        Some(format!("{tried} collections probed with privileged fields")),
    ))
}

/// The planted fields in groups: the others first, then the ownership ones.
fn owner_last(planted: &[Planted]) -> Vec<Vec<Planted>> {
    let (owner, other): (Vec<Planted>, Vec<Planted>) = planted.iter().cloned().partition(|p| {
        matches!(
            p.name.to_ascii_lowercase().as_str(),
            "owner_id" | "user_id" | "owner"
        )
    });
    [other, owner]
        .into_iter()
        .filter(|g| !g.is_empty())
        .collect()
}

/// A `mass-assignment` finding on `op`: the request that planted, the read that shows it.
fn mass_finding(
    cx: &Context,
    op: &Operation,
    sent: &Exchange,
    read: &Exchange,
    fields: &[String],
) -> Finding {
    Finding::new(
        CheckId::MassAssignment,
        op.label(),
        combined(cx, sent, read),
    )
    .titled(format!(
        "{} applies fields the client must not set: {}",
        op.label(),
        fields.join(", ")
    ))
}

/// Reads `object` back as A (then as B, whom a planted owner may have made its owner): the read
/// and the planted fields it shows applied, if any.
async fn read_back(
    cx: &Context,
    api: &Api,
    object: &Object,
    planted: &[Planted],
    baseline: &Value,
    a: &Auth,
    b: Option<&Auth>,
) -> Result<Option<(Exchange, Vec<String>)>, ProbeError> {
    for auth in [Some(a), b].into_iter().flatten() {
        let Some(read) = read_object(cx, api, object, Some(auth)).await? else {
            return Ok(None);
        };
        if !read.status.is_success() {
            continue;
        }
        let Some(view) = read.json() else {
            continue;
        };
        let fields = applied(planted, &view, baseline);
        if !fields.is_empty() {
            return Ok(Some((read, fields)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        sync::{Arc, Mutex},
    };

    use axum::{
        Json, Router,
        extract::{Path, State},
        http::{HeaderMap, StatusCode},
        response::{IntoResponse, Response},
        routing::get,
    };

    use super::*;
    use crate::api::{BodyKind, RequestBody, Response as ApiResponse};

    /// What the test API gets wrong.
    #[derive(Clone, Copy, Default)]
    struct Flaws {
        read_without_auth: bool,
        write_without_auth: bool,
        any_owner: bool,
        mass_assignment: bool,
        /// The creation answer echoes every field sent (stored or not).
        echo: bool,
        user_list_leak: bool,
        /// Bob is an administrator, who may reach every item.
        bob_admin: bool,
    }

    struct App {
        flaws: Flaws,
        items: Mutex<BTreeMap<u64, Value>>,
        next: Mutex<u64>,
    }

    const ALICE: &str = "tok-alice-0001";
    const BOB: &str = "tok-bob-0002";

    fn user(headers: &HeaderMap) -> Option<u64> {
        match headers.get("authorization")?.to_str().ok()? {
            v if v == format!("Bearer {ALICE}") => Some(1),
            v if v == format!("Bearer {BOB}") => Some(2),
            _ => None,
        }
    }

    fn status(code: StatusCode) -> Response {
        (code, Json(json!({"detail": code.as_str()}))).into_response()
    }

    async fn create(
        State(app): State<Arc<App>>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        let Some(uid) = user(&headers) else {
            return status(StatusCode::UNAUTHORIZED);
        };
        let Some(name) = body.get("name").and_then(Value::as_str) else {
            return status(StatusCode::UNPROCESSABLE_ENTITY);
        };
        let id = {
            let mut next = app.next.lock().unwrap();
            *next += 1;
            *next
        };
        let mut item = json!({"id": id, "name": name, "owner_id": uid, "is_admin": false});
        if app.flaws.mass_assignment {
            for k in ["owner_id", "is_admin"] {
                if let Some(v) = body.get(k) {
                    item[k] = v.clone();
                }
            }
        }
        app.items.lock().unwrap().insert(id, item.clone());
        let mut answer = item;
        if app.flaws.echo
            && let (Some(a), Some(b)) = (answer.as_object_mut(), body.as_object())
        {
            for (k, v) in b {
                a.insert(k.clone(), v.clone());
            }
        }
        (StatusCode::CREATED, Json(answer)).into_response()
    }

    /// The item, when `headers` may reach it: `Err` with the refusal otherwise.
    fn reach(app: &App, headers: &HeaderMap, id: u64, write: bool) -> Result<Value, Response> {
        let uid = user(headers);
        let open = if write {
            app.flaws.write_without_auth
        } else {
            app.flaws.read_without_auth
        };
        if uid.is_none() && !open {
            return Err(status(StatusCode::UNAUTHORIZED));
        }
        let item = app
            .items
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .ok_or_else(|| status(StatusCode::NOT_FOUND))?;
        let admin = app.flaws.bob_admin && uid == Some(2);
        if uid.is_some() && !app.flaws.any_owner && !admin && item["owner_id"] != json!(uid) {
            return Err(status(StatusCode::NOT_FOUND));
        }
        Ok(item)
    }

    async fn read(
        State(app): State<Arc<App>>,
        headers: HeaderMap,
        Path(id): Path<u64>,
    ) -> Response {
        match reach(&app, &headers, id, false) {
            Ok(item) => Json(item).into_response(),
            Err(r) => r,
        }
    }

    async fn replace(
        State(app): State<Arc<App>>,
        headers: HeaderMap,
        Path(id): Path<u64>,
        Json(body): Json<Value>,
    ) -> Response {
        let mut item = match reach(&app, &headers, id, true) {
            Ok(item) => item,
            Err(r) => return r,
        };
        if let Some(name) = body.get("name") {
            item["name"] = name.clone();
        }
        if app.flaws.mass_assignment {
            for k in ["owner_id", "is_admin"] {
                if let Some(v) = body.get(k) {
                    item[k] = v.clone();
                }
            }
        }
        app.items.lock().unwrap().insert(id, item.clone());
        Json(item).into_response()
    }

    async fn remove(
        State(app): State<Arc<App>>,
        headers: HeaderMap,
        Path(id): Path<u64>,
    ) -> Response {
        if let Err(r) = reach(&app, &headers, id, true) {
            return r;
        }
        app.items.lock().unwrap().remove(&id);
        StatusCode::NO_CONTENT.into_response()
    }

    async fn users(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
        if !app.flaws.user_list_leak && user(&headers).is_none() {
            return status(StatusCode::UNAUTHORIZED);
        }
        Json(json!([{"username": "alice", "hashed_password": "$2b$12$abcdefghijklmnopqrstuv"}]))
            .into_response()
    }

    async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
        match user(&headers) {
            Some(2) if app.flaws.bob_admin => {
                Json(json!({"id": 2, "roles": ["user", "admin"]})).into_response()
            }
            Some(id) => Json(json!({"id": id, "roles": ["user"]})).into_response(),
            None => status(StatusCode::UNAUTHORIZED),
        }
    }

    fn router(flaws: Flaws) -> (Router, Arc<App>) {
        let app = Arc::new(App {
            flaws,
            items: Mutex::new(BTreeMap::new()),
            next: Mutex::new(0),
        });
        let router = Router::new()
            .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/items/", axum::routing::post(create))
            .route("/items/{item_id}", get(read).put(replace).delete(remove))
            .route("/users", get(users))
            .route("/users/me", get(me))
            .with_state(app.clone());
        (router, app)
    }

    fn op(method: Method, path: &str, secured: bool) -> Operation {
        Operation {
            secured,
            ..crate::testing::op(method, path, None, &[])
        }
    }

    fn api() -> Api {
        let item_schema = json!({"type": "object", "properties": {
            "id": {"type": "integer", "readOnly": true},
            "name": {"type": "string"},
            "owner_id": {"type": "integer", "readOnly": true},
            "is_admin": {"type": "boolean"}
        }});
        let input = RequestBody {
            kind: BodyKind::Json,
            schema: json!({"type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}}}),
            required: true,
            example: None,
        };
        let mut post = op(Method::POST, "/items/", true);
        post.body = Some(input.clone());
        let mut get_item = op(Method::GET, "/items/{item_id}", true);
        get_item.responses = vec![ApiResponse {
            status: "200".into(),
            schema: Some(item_schema),
        }];
        let mut put = op(Method::PUT, "/items/{item_id}", true);
        put.body = Some(input);
        Api {
            title: "test".into(),
            operations: vec![
                op(Method::GET, "/health", false),
                post,
                get_item,
                put,
                op(Method::DELETE, "/items/{item_id}", true),
                op(Method::GET, "/users", false),
                op(Method::GET, "/users/me", true),
            ],
            ..Api::default()
        }
    }

    async fn run<F, Fut>(flaws: Flaws, tokens: &[&str], check: F) -> (Outcome, Arc<App>)
    where
        F: FnOnce(Arc<Context>) -> Fut,
        Fut: std::future::Future<Output = Outcome>,
    {
        run_api(flaws, api(), tokens, check).await
    }

    async fn run_api<F, Fut>(
        flaws: Flaws,
        api: Api,
        tokens: &[&str],
        check: F,
    ) -> (Outcome, Arc<App>)
    where
        F: FnOnce(Arc<Context>) -> Fut,
        Fut: std::future::Future<Output = Outcome>,
    {
        let (router, app) = router(flaws);
        let url = crate::testing::serve(router).await;
        let cx = Arc::new(crate::testing::context(&url, Some(api), tokens));
        let outcome = check(cx.clone()).await;
        assert_eq!(cx.clean_up().await, 0, "every object removed");
        (outcome, app)
    }

    fn labels(outcome: &Outcome) -> Vec<String> {
        match outcome {
            Outcome::Found(f) => {
                for finding in f {
                    let text = format!("{finding:?}");
                    assert!(!text.contains(ALICE) && !text.contains(BOB), "{text}");
                }
                f.iter().map(|f| f.operation.clone()).collect()
            }
            _ => Vec::new(),
        }
    }

    #[tokio::test]
    async fn auth_missing_finds_reads_writes_and_leaks_without_credentials() {
        let flaws = Flaws {
            read_without_auth: true,
            write_without_auth: true,
            user_list_leak: true,
            ..Flaws::default()
        };
        let (outcome, app) =
            run(flaws, &[ALICE], |cx| async move { auth_missing(&cx).await }).await;
        let found = labels(&outcome);
        for expected in [
            "GET /items/{item_id}",
            "PUT /items/{item_id}",
            "DELETE /items/{item_id}",
            "GET /users",
        ] {
            assert!(
                found.iter().any(|f| f == expected),
                "{expected} in {found:?}"
            );
        }
        assert!(!found.iter().any(|f| f.contains("/health")), "{found:?}");
        assert!(
            !format!("{outcome:?}").contains("$2b$"),
            "no hash in evidence"
        );
        assert!(app.items.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn auth_missing_passes_an_api_that_demands_credentials() {
        let (outcome, app) = run(Flaws::default(), &[ALICE], |cx| async move {
            auth_missing(&cx).await
        })
        .await;
        assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
        assert!(app.items.lock().unwrap().is_empty());
        // Owner checks alone (bola-vulnerable) are not missing authentication.
        let flaws = Flaws {
            any_owner: true,
            ..Flaws::default()
        };
        let (outcome, _) = run(
            flaws,
            &[ALICE, BOB],
            |cx| async move { auth_missing(&cx).await },
        )
        .await;
        assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
    }

    #[tokio::test]
    async fn bola_finds_reads_changes_and_deletions_by_another_user() {
        let flaws = Flaws {
            any_owner: true,
            ..Flaws::default()
        };
        let (outcome, app) = run(flaws, &[ALICE, BOB], |cx| async move { bola(&cx).await }).await;
        let found = labels(&outcome);
        assert_eq!(
            found,
            [
                "GET /items/{item_id}",
                "PUT /items/{item_id}",
                "DELETE /items/{item_id}"
            ]
        );
        assert!(app.items.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn bola_passes_owner_checks_and_needs_two_users() {
        let (outcome, app) = run(Flaws::default(), &[ALICE, BOB], |cx| async move {
            bola(&cx).await
        })
        .await;
        assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
        assert!(app.items.lock().unwrap().is_empty());
        let (outcome, _) = run(
            Flaws::default(),
            &[ALICE],
            |cx| async move { bola(&cx).await },
        )
        .await;
        assert!(matches!(outcome, Outcome::Skipped(ref why) if why.contains("two users")));
        // The same user twice is no second user.
        let (outcome, _) = run(
            Flaws {
                any_owner: true,
                ..Flaws::default()
            },
            &[ALICE, ALICE],
            |cx| async move { bola(&cx).await },
        )
        .await;
        assert!(matches!(outcome, Outcome::Skipped(_)), "{outcome:?}");
    }

    #[tokio::test]
    async fn bola_does_not_count_an_administrator_reaching_objects() {
        let flaws = Flaws {
            bob_admin: true,
            ..Flaws::default()
        };
        let (outcome, app) = run(flaws, &[ALICE, BOB], |cx| async move { bola(&cx).await }).await;
        assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
        assert!(app.items.lock().unwrap().is_empty());
        // Without a `/me` to tell, the one-way access gives the administrator away.
        let mut no_me = api();
        no_me.operations.retain(|o| o.path != "/users/me");
        let (outcome, app) = run_api(
            flaws,
            no_me,
            &[ALICE, BOB],
            |cx| async move { bola(&cx).await },
        )
        .await;
        assert!(
            matches!(outcome, Outcome::Passed(Some(ref note)) if note.contains("privileged")),
            "{outcome:?}"
        );
        assert!(app.items.lock().unwrap().is_empty());
        assert!(is_admin(&json!({"roles": ["admin"]})) && is_admin(&json!({"is_admin": true})));
        assert!(is_admin(&json!({"scope": "x", "scopes": "items admin"})));
        assert!(!is_admin(&json!({"roles": ["user"], "is_admin": false})));
    }

    #[tokio::test]
    async fn mass_assignment_finds_stored_privileged_fields() {
        let flaws = Flaws {
            mass_assignment: true,
            ..Flaws::default()
        };
        let (outcome, app) = run(flaws, &[ALICE, BOB], |cx| async move {
            mass_assignment(&cx).await
        })
        .await;
        let found = labels(&outcome);
        assert!(found.iter().any(|f| f == "POST /items/"), "{found:?}");
        assert!(
            found.iter().any(|f| f == "PUT /items/{item_id}"),
            "{found:?}"
        );
        if let Outcome::Found(f) = &outcome {
            assert!(f[0].title.contains("is_admin"), "{}", f[0].title);
            assert!(f[0].title.contains("owner_id"), "{}", f[0].title);
        }
        assert!(app.items.lock().unwrap().is_empty());
        // With one user, a canary owner.
        let (outcome, _) = run(
            flaws,
            &[ALICE],
            |cx| async move { mass_assignment(&cx).await },
        )
        .await;
        assert!(matches!(outcome, Outcome::Found(_)), "{outcome:?}");
    }

    #[tokio::test]
    async fn mass_assignment_ignores_fields_echoed_but_not_stored() {
        let flaws = Flaws {
            echo: true,
            ..Flaws::default()
        };
        let (outcome, app) = run(flaws, &[ALICE, BOB], |cx| async move {
            mass_assignment(&cx).await
        })
        .await;
        assert!(matches!(outcome, Outcome::Passed(_)), "{outcome:?}");
        assert!(app.items.lock().unwrap().is_empty());
    }

    #[test]
    fn oracles_compare_data_not_status() {
        assert!(same_data(
            &json!({"a": 1, "time": 2}),
            &json!({"a": 1, "time": 3})
        ));
        assert!(!same_data(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!meaningful(&json!({})) && !meaningful(&json!([])) && meaningful(&json!([1])));
        assert_eq!(
            user_data(
                &json!([{"username": "bob", "hashed_password": "$2b$..."}]),
                &[],
                0
            ),
            Some("a `hashed_password` field".into())
        );
        assert_eq!(
            user_data(&json!({"username": "carol"}), &["alice"], 0),
            None
        );
        assert!(user_data(&json!({"user": {"email": "Alice"}}), &["alice"], 0).is_some());
        assert!(is_public_path("/health") && is_public_path("/openapi.json"));
        assert!(is_public_path("/token/refresh") && !is_public_path("/items/{id}"));
        let request = json!({"properties": {"name": {"type": "string"}}});
        let response = json!({"properties": {
            "name": {"type": "string"}, "note": {"type": "string"},
            "tier": {"type": "string"}, "stamp": {"type": "string", "readOnly": true},
            "is_admin": {"type": "boolean"}, "owner_id": {"type": "integer"}
        }});
        let baseline = json!({"name": "n", "is_admin": false, "owner_id": 1});
        let planted = plantable(
            Some(&request),
            Some(&response),
            &baseline,
            Some(&json!(2)),
            &[],
        );
        let names: Vec<&str> = planted.iter().map(|p| p.name.as_str()).collect();
        for expected in ["owner_id", "is_admin", "role", "stamp", "tier"] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
        assert!(
            !names.contains(&"note") && !names.contains(&"name"),
            "{names:?}"
        );
        let owner = planted.iter().find(|p| p.name == "owner_id").unwrap();
        assert_eq!(owner.value, json!(2));
        let admin = planted.iter().find(|p| p.name == "is_admin").unwrap();
        assert_eq!(admin.value, json!(true));
        let view = json!({"name": "n", "is_admin": true, "owner_id": 1});
        assert_eq!(applied(&planted, &view, &baseline), ["is_admin"]);
        assert!(applied(&planted, &baseline, &baseline).is_empty());
        assert_eq!(
            scrub(
                r#"[{"username": "bob", "hashed_password": "$2b$12$a\"b", "id": 1}, {"password":"#
            ),
            r#"[{"username": "bob", "hashed_password": "***", "id": 1}, {"password":"#
        );
        assert_eq!(scrub(r#"{"secret": "abcd…"#), r#"{"secret": "***""#);
        let a = canary("x");
        assert_ne!(a, canary("x"));
        assert_eq!(a.len(), 11);
    }
}
