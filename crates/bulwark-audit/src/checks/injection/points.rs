//! Where the input checks put their payloads: one parameter or top-level body field of one
//! operation at a time ("points"), on a request that is otherwise valid (generated from the
//! schemas, with the session's credentials and, for item paths, the id of an object the audit
//! created). Shared by the injection, XSS, error and redirect checks.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::atomic::{AtomicU64, Ordering},
};

use http::Method;
use serde_json::Value;

use crate::{
    api::{Api, BodyKind, Operation, ParamIn},
    context::Context,
    generate::{Fill, request_for, scalar_text, value_for},
    objects::{self, Object},
    probe::{Auth, Exchange, ProbeRequest},
};

/// A random number (std's randomly keyed SipHash over a counter and the clock: enough for
/// canaries, which only need to be unguessable by chance).
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    RandomState::new().hash_one((n, now))
}

/// Ten random lowercase letters and digits.
pub(crate) fn random_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = random_u64();
    let mut out = String::with_capacity(10);
    for _ in 0..10 {
        out.push(char::from(ALPHABET[(x % 36) as usize]));
        x /= 36;
        if x == 0 {
            x = random_u64();
        }
    }
    out
}

/// Where a point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A `{name}` segment of the path.
    Path,
    /// A query parameter.
    Query,
    /// A top-level field of the body.
    Body,
}

/// What a point holds, as far as payloads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Free text: every payload fits.
    Text,
    /// A number (or an id that looks like one).
    Number,
    /// Anything else (enums, booleans, formatted strings): probed last, if at all.
    Other,
}

/// One place for a payload.
#[derive(Debug, Clone)]
pub(crate) struct Point {
    /// Where it is.
    pub(crate) place: Place,
    /// The parameter's or field's name.
    pub(crate) name: String,
    /// Its schema (`{}` when unknown).
    pub(crate) schema: Value,
    /// The valid value the request carries when not probed.
    pub(crate) baseline: Value,
    /// What it holds.
    pub(crate) kind: Kind,
}

impl Point {
    /// `query parameter q`, `body field name`, `path parameter id`.
    pub(crate) fn label(&self) -> String {
        let place = match self.place {
            Place::Path => "path parameter",
            Place::Query => "query parameter",
            Place::Body => "body field",
        };
        format!("{place} `{}`", self.name)
    }

    /// The baseline value as text.
    pub(crate) fn baseline_text(&self) -> String {
        scalar_text(&self.baseline)
    }

    /// The schema's `format`, lowercase, or empty.
    pub(crate) fn format(&self) -> String {
        self.schema
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    }
}

fn kind_of(schema: &Value, baseline: &Value) -> Kind {
    if schema.get("enum").is_some() || schema.get("const").is_some() {
        return Kind::Other;
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or(""),
        _ => "",
    };
    match ty {
        "integer" | "number" => Kind::Number,
        "boolean" | "array" | "object" | "null" => Kind::Other,
        _ => match baseline {
            Value::String(s) => {
                let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
                if matches!(
                    format,
                    "date"
                        | "date-time"
                        | "time"
                        | "uuid"
                        | "email"
                        | "ipv4"
                        | "ipv6"
                        | "binary"
                        | "byte"
                ) {
                    Kind::Other
                } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                    Kind::Number
                } else {
                    Kind::Text
                }
            }
            Value::Number(_) => Kind::Number,
            _ => Kind::Other,
        },
    }
}

/// An operation ready to be probed: its valid request, the session it goes as, and its points
/// (text first).
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    /// The operation.
    pub(crate) op: &'a Operation,
    /// Path values (object ids) and the baseline body.
    pub(crate) fill: Fill,
    /// The credentials it carries, if any.
    pub(crate) auth: Option<Auth>,
    /// Where payloads go, text first.
    pub(crate) points: Vec<Point>,
}

/// A value that no answer holds by chance: stands for a raw payload while the request is built,
/// then replaced by the payload, as it is, on the wire.
const RAW_MARK: &str = "bwkrawmark7q";

impl Target<'_> {
    /// `METHOD /path`.
    pub(crate) fn label(&self) -> String {
        self.op.label()
    }

    /// The request with `value` at `point` (the rest valid).
    pub(crate) fn request(&self, point: &Point, value: Value) -> ProbeRequest {
        let mut fill = self.fill.clone();
        match point.place {
            Place::Path => {
                fill.path.insert(point.name.clone(), scalar_text(&value));
            }
            Place::Query => {
                fill.query.insert(point.name.clone(), scalar_text(&value));
            }
            Place::Body => {
                let mut body = fill
                    .body
                    .take()
                    .unwrap_or(Value::Object(Default::default()));
                if let Some(obj) = body.as_object_mut() {
                    obj.insert(point.name.clone(), value);
                }
                fill.body = Some(body);
            }
        }
        self.finish(request_for(self.op, &fill))
    }

    /// The request with `text` at `point`, as text.
    pub(crate) fn with_text(&self, point: &Point, text: &str) -> ProbeRequest {
        self.request(point, Value::String(text.to_owned()))
    }

    /// The baseline request for `point` (its valid value).
    pub(crate) fn baseline(&self, point: &Point) -> ProbeRequest {
        self.request(point, point.baseline.clone())
    }

    /// The request with `raw` at `point` exactly as given on the wire (no percent-encoding), for
    /// path and query points; body points take it as text.
    pub(crate) fn with_raw(&self, point: &Point, raw: &str) -> ProbeRequest {
        if point.place == Place::Body {
            return self.with_text(point, raw);
        }
        let mut request = self.with_text(point, RAW_MARK);
        request.path = request.path.replace(RAW_MARK, raw);
        request
    }

    /// The request with a whole body of raw bytes (for malformed documents).
    pub(crate) fn with_body_bytes(&self, content_type: &str, body: Vec<u8>) -> ProbeRequest {
        let mut request = request_for(self.op, &self.fill);
        request
            .headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        request.body = Some(body);
        request = request.header("Content-Type", content_type);
        self.finish(request)
    }

    /// The valid request as generated.
    pub(crate) fn valid(&self) -> ProbeRequest {
        self.finish(request_for(self.op, &self.fill))
    }

    fn finish(&self, request: ProbeRequest) -> ProbeRequest {
        match &self.auth {
            Some(auth) => request.with_auth(auth),
            None => request,
        }
    }

    /// Whether the body is JSON.
    pub(crate) fn json_body(&self) -> bool {
        self.op
            .body
            .as_ref()
            .is_some_and(|b| b.kind == BodyKind::Json)
    }
}

/// Words in a `POST` path that say it reads or computes rather than stores: such operations
/// are probed like `GET`s. Other `POST`s (which may create things the audit could not remove)
/// are left alone, or probed through [`objects::create`] only.
const READ_LIKE: &[&str] = &[
    "token",
    "login",
    "signin",
    "sign-in",
    "auth",
    "session",
    "search",
    "query",
    "find",
    "lookup",
    "filter",
    "render",
    "preview",
    "template",
    "validate",
    "verify",
    "check",
    "convert",
    "format",
    "parse",
    "calc",
    "compute",
    "echo",
    "greet",
    "hello",
    "fetch",
    "proxy",
    "download",
    "export",
    "report",
    "graphql",
    "resolve",
    "translate",
    "evaluate",
];

/// Whether `op` may be sent with payloads: a `GET`, or a `POST` whose path says it reads (the
/// login endpoint included).
pub(crate) fn read_like(cx: &Context, op: &Operation) -> bool {
    if op.method == Method::GET {
        return true;
    }
    if op.method != Method::POST {
        return false;
    }
    // A `POST` that creates objects is probed through `objects::create` only.
    if let Some(api) = cx.api.as_ref()
        && objects::item_path_of(api, &op.path).is_some()
    {
        return false;
    }
    let trim = |p: &str| p.trim_end_matches('/').to_ascii_lowercase();
    if trim(&op.path) == trim(&cx.token_url) {
        return true;
    }
    op.path
        .split('/')
        .rfind(|s| !s.is_empty() && !s.starts_with('{'))
        .is_some_and(|last| {
            let last = last.to_ascii_lowercase();
            READ_LIKE.iter().any(|w| last.contains(w))
        })
}

/// Builds [`Target`]s, creating (once per collection) the objects whose ids fill item paths.
pub(crate) struct Planner<'a> {
    cx: &'a Context,
    api: &'a Api,
    objects: HashMap<String, Option<Object>>,
}

impl<'a> Planner<'a> {
    /// A planner for the context's API; `None` without a document.
    pub(crate) fn new(cx: &'a Context) -> Option<Self> {
        Some(Planner {
            cx,
            api: cx.api.as_ref()?,
            objects: HashMap::new(),
        })
    }

    /// The API.
    pub(crate) fn api(&self) -> &'a Api {
        self.api
    }

    /// The operations payloads may go to ([`read_like`]), in document order.
    pub(crate) fn operations(&self) -> Vec<&'a Operation> {
        let mut ops: Vec<&'a Operation> = self
            .api
            .operations
            .iter()
            .filter(|op| read_like(self.cx, op))
            .collect();
        // Operations with query parameters or a body first (searches, filters, forms: where
        // input meets queries most), then those with path parameters only.
        ops.sort_by_key(|op| {
            !(op.body.is_some() || op.params.iter().any(|p| p.location == ParamIn::Query))
        });
        ops
    }

    /// The credentials `op` goes with: session 0's when it is secured and there is one.
    pub(crate) fn auth_for(&self, op: &Operation) -> Option<Auth> {
        if op.secured {
            self.cx.sessions.first().map(|s| s.auth.clone())
        } else {
            None
        }
    }

    /// `op` ready to probe, with an object the audit created for its item path when it has one.
    pub(crate) async fn target(&mut self, op: &'a Operation) -> Target<'a> {
        let mut path = std::collections::BTreeMap::new();
        if op.path_params().next().is_some()
            && let Some(object) = self.object_for(op).await
        {
            path = object.path_values();
        }
        self.plan(op, path)
    }

    /// `op` ready to probe when one of its points is `wanted` (creating an object for its item
    /// path only then); `None` when none is.
    pub(crate) async fn target_if(
        &mut self,
        op: &'a Operation,
        wanted: impl Fn(&Target<'_>, &Point) -> bool,
    ) -> Option<Target<'a>> {
        let plan = self.plan(op, Default::default());
        if !plan.points.iter().any(|p| wanted(&plan, p)) {
            return None;
        }
        if op.path_params().next().is_none() {
            return Some(plan);
        }
        Some(self.target(op).await)
    }

    fn plan(
        &self,
        op: &'a Operation,
        path: std::collections::BTreeMap<String, String>,
    ) -> Target<'a> {
        let mut fill = Fill {
            path,
            ..Fill::default()
        };
        if let Some(body) = &op.body {
            fill.body = Some(
                body.example
                    .clone()
                    .unwrap_or_else(|| value_for(&body.schema)),
            );
        }
        let mut points = Vec::new();
        for p in &op.params {
            let place = match p.location {
                ParamIn::Path => Place::Path,
                ParamIn::Query => Place::Query,
                ParamIn::Header | ParamIn::Cookie => continue,
            };
            let baseline = match fill.path.get(&p.name) {
                Some(id) if place == Place::Path => Value::String(id.clone()),
                _ => p.example.clone().unwrap_or_else(|| value_for(&p.schema)),
            };
            points.push(Point {
                place,
                name: p.name.clone(),
                kind: kind_of(&p.schema, &baseline),
                schema: p.schema.clone(),
                baseline,
            });
        }
        if let (Some(body), Some(Value::Object(values))) = (&op.body, &fill.body)
            && matches!(body.kind, BodyKind::Json | BodyKind::Form)
        {
            for (name, value) in values {
                if value.is_object() || value.is_array() {
                    continue;
                }
                let schema = property_schema(&body.schema, name);
                points.push(Point {
                    place: Place::Body,
                    name: name.clone(),
                    kind: kind_of(&schema, value),
                    schema,
                    baseline: value.clone(),
                });
            }
        }
        points.sort_by_key(|p| p.kind);
        Target {
            op,
            auth: self.auth_for(op),
            fill,
            points,
        }
    }

    /// The object (created on first use) whose item path `op` is on or under.
    async fn object_for(&mut self, op: &Operation) -> Option<Object> {
        if self.cx.sessions.is_empty() {
            return None;
        }
        let collection = objects::collections(self.api).into_iter().find(|c| {
            objects::item_path_of(self.api, &c.path).is_some_and(|(item, _)| {
                op.path == item
                    || op
                        .path
                        .starts_with(&format!("{}/", item.trim_end_matches('/')))
            })
        })?;
        let key = collection.path.clone();
        if let Some(known) = self.objects.get(&key) {
            return known.clone();
        }
        let made = match objects::create(self.cx, collection, 0, None).await {
            Ok(Some((object, _))) => Some(object),
            _ => None,
        };
        self.objects.insert(key, made.clone());
        made
    }
}

/// The `GET` operations that may show `object`, each with the fill that reaches it: the item
/// path, every `GET` under it (`/items/{id}/page`), and the collection's `GET`.
pub(crate) fn readers<'a>(api: &'a Api, object: &Object) -> Vec<(&'a Operation, Fill)> {
    let collection = object.collection.trim_end_matches('/');
    let under = format!("{}/", object.item_path.trim_end_matches('/'));
    let fill = object.fill();
    api.operations
        .iter()
        .filter(|o| o.method == Method::GET)
        .filter(|o| {
            o.path == object.item_path
                || o.path.starts_with(&under)
                || o.path.trim_end_matches('/') == collection
        })
        .map(|o| (o, fill.clone()))
        .collect()
}

/// The schema of a top-level property (through `allOf`), `{}` when unknown.
fn property_schema(schema: &Value, name: &str) -> Value {
    if let Some(p) = schema.get("properties").and_then(|p| p.get(name)) {
        return p.clone();
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(parts) = schema.get(key).and_then(Value::as_array) {
            for part in parts {
                let found = property_schema(part, name);
                if !found.as_object().is_none_or(|o| o.is_empty()) {
                    return found;
                }
            }
        }
    }
    Value::Object(Default::default())
}

/// How many requests a check may still send: its own cap, and the audit's budget.
pub(crate) struct Budget {
    start: u64,
    cap: u64,
}

impl Budget {
    /// A cap of `cap` requests from now.
    pub(crate) fn new(cx: &Context, cap: u64) -> Self {
        Budget {
            start: cx.probe.sent(),
            cap,
        }
    }

    /// Whether `n` more requests fit.
    pub(crate) fn allows(&self, cx: &Context, n: u64) -> bool {
        cx.probe.sent().saturating_sub(self.start) + n <= self.cap && cx.probe.remaining() >= n
    }
}

/// Sends `request`; `None` when it got no answer (budget, transport).
pub(crate) async fn send(cx: &Context, request: ProbeRequest) -> Option<Exchange> {
    cx.send(request).await.ok()
}

/// Whether an answer says "not now" rather than anything about the input (rate limits,
/// outages, gateways): such answers prove nothing.
pub(crate) fn inconclusive(x: &Exchange) -> bool {
    matches!(x.status.as_u16(), 429 | 502 | 503 | 504)
}

/// The ways a value may come back in an answer: as sent, JSON-escaped, HTML-escaped,
/// percent-encoded.
fn echo_forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_owned()];
    if let Ok(json) = serde_json::to_string(value) {
        forms.push(json[1..json.len() - 1].to_owned());
    }
    let html = value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    forms.push(html.replace('\'', "&#x27;"));
    forms.push(html.replace('\'', "&#39;"));
    let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    forms.push(encoded.replace('+', "%20"));
    forms.push(encoded);
    forms.retain(|f| !f.is_empty());
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

/// An answer's status and body, with every echo of `sent` (longest first) replaced by one mark,
/// so that answers to different inputs compare on what the server did, not on what it repeated.
pub(crate) fn normalized(x: &Exchange, sent: &[&str]) -> (u16, String) {
    let mut body = x.text().into_owned();
    let mut sent: Vec<&str> = sent.iter().copied().filter(|s| !s.is_empty()).collect();
    sent.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sent {
        for form in echo_forms(s) {
            if body.contains(&form) {
                body = body.replace(&form, "\u{1}");
            }
        }
    }
    (x.status.as_u16(), body)
}

/// A short excerpt of `text` around byte `at` (about `radius` bytes each side), on one line.
pub(crate) fn excerpt_around(text: &str, at: usize, len: usize, radius: usize) -> String {
    let mut start = at.saturating_sub(radius);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + len + radius).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    let mut out: String = text[start..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if start > 0 {
        out.insert(0, '…');
    }
    if end < text.len() {
        out.push('…');
    }
    out
}

/// The most points tried per operation.
pub(crate) const POINTS_PER_OP: usize = 3;

/// Runs `per_point` on the points of every operation payloads may go to, within `cap` requests
/// (`need` each), stopping at an operation's first finding. Points are filtered by `wanted`.
macro_rules! each_point_impl {
    ($cx:expr, $cap:expr, $need:expr, $wanted:expr, |$target:ident, $point:ident| $body:expr) => {{
        let cx: &$crate::context::Context = $cx;
        let Some(mut planner) = $crate::checks::injection::points::Planner::new(cx) else {
            return $crate::context::Outcome::Skipped(
                $crate::checks::injection::NO_DOCUMENT.into(),
            );
        };
        let budget = $crate::checks::injection::points::Budget::new(cx, $cap);
        let mut findings: Vec<$crate::report::Finding> = Vec::new();
        let mut tried = 0usize;
        let mut short = false;
        'ops: for op in planner.operations() {
            if !budget.allows(cx, $need) {
                short = true;
                break;
            }
            let Some($target) = planner.target_if(op, $wanted).await else {
                continue;
            };
            let wanted: Vec<&$crate::checks::injection::points::Point> = $target
                .points
                .iter()
                .filter(|p| $wanted(&$target, *p))
                .take($crate::checks::injection::points::POINTS_PER_OP)
                .collect();
            for $point in wanted {
                if !budget.allows(cx, $need) {
                    short = true;
                    break 'ops;
                }
                tried += 1;
                let found: Option<$crate::report::Finding> = $body;
                if let Some(f) = found {
                    findings.push(f);
                    continue 'ops;
                }
            }
        }
        (findings, tried, short)
    }};
}

pub(crate) use each_point_impl as each_point;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_echoes_are_masked() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 10);
        assert_ne!(a, b);
        let forms = echo_forms("a' <b>");
        assert!(forms.contains(&"a&#x27; &lt;b&gt;".to_owned()), "{forms:?}");
        assert!(forms.contains(&"a%27%20%3Cb%3E".to_owned()), "{forms:?}");
    }
}
