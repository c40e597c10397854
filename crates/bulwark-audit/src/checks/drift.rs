//! Answers the OpenAPI document does not describe.
//!
//! Each documented `GET` (at most [`MAX_OPERATIONS`], with the first session's credentials when
//! the operation is secured) gets a valid request and, when it has a typed parameter, one with a
//! value of the wrong type. An answer whose status the operation does not document is a finding
//! (one per operation and status), and so is a JSON body that contradicts the schema documented
//! for its status: the wrong type, or a required property missing. Only `GET`s are sent: the
//! check changes nothing.

use std::collections::HashSet;

use http::Method;
use serde_json::Value;

use crate::{
    api::{Operation, ParamIn},
    catalog::CheckId,
    context::{Context, Outcome},
    generate::{self, Fill},
    probe::{Exchange, ProbeError},
    report::Finding,
};

/// Operations tried, at most.
const MAX_OPERATIONS: usize = 15;
/// A value no typed parameter accepts.
const INVALID: &str = "bwk-invalid";

/// Whether a `GET` may still change state by its name (`/logout`, `/users/1/delete`): such
/// operations are never called.
pub(crate) fn changes_state(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    [
        "logout",
        "log-out",
        "signout",
        "sign-out",
        "delete",
        "remove",
        "revoke",
        "unsubscribe",
    ]
    .iter()
    .any(|k| p.contains(k))
}

/// The documented schema of the answer with `status`: the exact code, else its range (`4XX`),
/// else `default`.
fn response_schema(op: &Operation, status: u16) -> Option<&Value> {
    let exact = status.to_string();
    let range = format!("{}XX", status / 100);
    let pick = |want: &dyn Fn(&str) -> bool| {
        op.responses
            .iter()
            .find(|r| want(&r.status))
            .and_then(|r| r.schema.as_ref())
    };
    op.responses
        .iter()
        .find(|r| r.status == exact)
        .map(|r| r.schema.as_ref())
        .unwrap_or_else(|| {
            pick(&|s: &str| s.eq_ignore_ascii_case(&range)).or_else(|| pick(&|s| s == "default"))
        })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn fits(ty: &str, v: &Value) -> bool {
    match ty {
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

/// Why `v` contradicts `schema`, if it does (`at` names the place: `the body`, `items[0].id`).
/// Only what cannot be read two ways: an explicit `type`, and `required` properties (but not
/// `writeOnly` ones, which answers leave out). `oneOf`/`anyOf`/`not` are not judged.
pub(crate) fn mismatch(schema: &Value, v: &Value, at: &str, depth: usize) -> Option<String> {
    if depth > 4 {
        return None;
    }
    let obj = schema.as_object()?;
    if ["oneOf", "anyOf", "not"]
        .iter()
        .any(|k| obj.contains_key(*k))
    {
        return None;
    }
    if let Some(parts) = obj.get("allOf").and_then(Value::as_array) {
        for part in parts {
            if let Some(why) = mismatch(part, v, at, depth + 1) {
                return Some(why);
            }
        }
    }
    let mut types: Vec<&str> = match obj.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        if obj.get("nullable").and_then(Value::as_bool) == Some(true) {
            types.push("null");
        }
        if !types.iter().any(|t| fits(t, v)) {
            return Some(format!(
                "{at} is {} where the document says {}",
                kind(v),
                types.join(" or ")
            ));
        }
    }
    let props = obj.get("properties").and_then(Value::as_object);
    match v {
        Value::Object(o) => {
            for name in obj
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let write_only = props
                    .and_then(|p| p.get(name))
                    .and_then(|p| p.get("writeOnly"))
                    .and_then(Value::as_bool)
                    == Some(true);
                if !write_only && !o.contains_key(name) {
                    return Some(format!(
                        "the required property `{name}` is missing from {at}"
                    ));
                }
            }
            for (name, child) in props.into_iter().flatten() {
                if let Some(value) = o.get(name) {
                    let place = if depth == 0 {
                        format!("`{name}`")
                    } else {
                        format!("{}.{name}`", at.trim_end_matches('`'))
                    };
                    if let Some(why) = mismatch(child, value, &place, depth + 1) {
                        return Some(why);
                    }
                }
            }
            None
        }
        Value::Array(items) => {
            let (schema, first) = (obj.get("items")?, items.first()?);
            let place = if depth == 0 {
                "`[0]`".to_owned()
            } else {
                format!("{}[0]`", at.trim_end_matches('`'))
            };
            mismatch(schema, first, &place, depth + 1)
        }
        _ => None,
    }
}

/// A request for `op` with a value of the wrong type in its first typed parameter (an integer,
/// number or boolean, or an enum), if it has one.
fn invalid_fill(op: &Operation) -> Option<Fill> {
    let param = op.params.iter().find(|p| {
        matches!(p.location, ParamIn::Path | ParamIn::Query)
            && (p.schema.get("enum").is_some()
                || matches!(
                    p.schema.get("type").and_then(Value::as_str),
                    Some("integer" | "number" | "boolean")
                ))
    })?;
    let mut fill = Fill::default();
    match param.location {
        ParamIn::Path => fill.path.insert(param.name.clone(), INVALID.into()),
        _ => fill.query.insert(param.name.clone(), INVALID.into()),
    };
    Some(fill)
}

/// What is wrong with `x` as an answer of `op`: an undocumented status, or a body against the
/// documented schema. (kind, title)
fn judge(op: &Operation, x: &Exchange) -> Option<(&'static str, String)> {
    let status = x.status.as_u16();
    // Left out: 429, and 503 with Retry-After. A rate limit or an overload can answer any
    // route at any moment, and the audit's own pace causes them; they say nothing about the
    // operation. Every other status (401, 403, 404, 405, 5xx included) is the operation's
    // answer and belongs in its document.
    if status == 429 || (status == 503 && x.header("retry-after").is_some()) {
        return None;
    }
    if !op.documents(status) {
        return Some((
            "status",
            format!(
                "{} answered {status}, which the document does not list",
                op.label()
            ),
        ));
    }
    let schema = response_schema(op, status)?;
    let is_json = x
        .header("content-type")
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    if !is_json {
        return None;
    }
    let body = x.json()?;
    let why = mismatch(schema, &body, "the body", 0)?;
    Some((
        "schema",
        format!(
            "{} answered {status} with a body the documented schema does not allow: {why}",
            op.label()
        ),
    ))
}

/// `openapi-drift`: see the module's documentation.
pub async fn openapi_drift(cx: &Context) -> Outcome {
    let Some(api) = &cx.api else {
        return Outcome::Skipped("no OpenAPI document".into());
    };
    let operations: Vec<&Operation> = api
        .operations
        .iter()
        .filter(|o| o.method == Method::GET && !changes_state(&o.path))
        .filter(|o| !o.secured || !cx.sessions.is_empty())
        .take(MAX_OPERATIONS)
        .collect();
    if operations.is_empty() {
        return Outcome::Skipped("the document has no GET operation the audit can call".into());
    }
    let mut findings = Vec::new();
    let mut seen: HashSet<(String, u16, &'static str)> = HashSet::new();
    let mut sent = 0usize;
    'operations: for op in &operations {
        let auth = op
            .secured
            .then(|| cx.sessions.first().map(|s| &s.auth))
            .flatten();
        let mut fills = vec![Fill::default()];
        fills.extend(invalid_fill(op));
        for fill in fills {
            let mut request = generate::request_for(op, &fill);
            if let Some(auth) = auth {
                request = request.with_auth(auth);
            }
            let x = match cx.send(request).await {
                Ok(x) => x,
                Err(ProbeError::Budget) => break 'operations,
                Err(_) => continue,
            };
            sent += 1;
            if let Some((kind, title)) = judge(op, &x)
                && seen.insert((op.label(), x.status.as_u16(), kind))
            {
                findings.push(
                    Finding::new(CheckId::OpenapiDrift, op.label(), cx.evidence(&x)).titled(title),
                );
            }
        }
    }
    Outcome::from_findings(
        findings,
        Some(format!(
            "{sent} answers of {} GET operations match the document",
            operations.len()
        )),
    )
}

#[cfg(test)]
mod tests;
