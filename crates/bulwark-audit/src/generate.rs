//! Valid requests from an operation's schemas: examples first, then defaults, enums, formats and
//! bounds, so that a probe reaches the code behind validation.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::{
    api::{BodyKind, Operation, ParamIn},
    probe::ProbeRequest,
};

/// A valid value for `schema` (references already resolved).
pub fn value_for(schema: &Value) -> Value {
    value_at(schema, 0)
}

fn value_at(schema: &Value, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    let Some(obj) = schema.as_object() else {
        return json!("audit");
    };
    if let Some(example) = obj.get("example") {
        return example.clone();
    }
    if let Some(first) = obj
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    if let Some(default) = obj.get("default") {
        return default.clone();
    }
    if let Some(constant) = obj.get("const") {
        return constant.clone();
    }
    if let Some(first) = obj
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    for key in ["allOf"] {
        if let Some(parts) = obj.get(key).and_then(Value::as_array) {
            let mut merged = Map::new();
            for part in parts {
                match value_at(part, depth + 1) {
                    Value::Object(o) => merged.extend(o),
                    other if parts.len() == 1 => return other,
                    _ => {}
                }
            }
            return Value::Object(merged);
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(parts) = obj.get(key).and_then(Value::as_array) {
            // The first alternative that is not `null`.
            let pick = parts
                .iter()
                .find(|p| p.get("type").and_then(Value::as_str) != Some("null"))
                .or_else(|| parts.first());
            if let Some(p) = pick {
                return value_at(p, depth + 1);
            }
        }
    }
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        // 3.1: `type: [string, "null"]`.
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if obj.contains_key("properties") => "object",
        _ if obj.contains_key("items") => "array",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            let required: Vec<&str> = obj
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    let read_only = prop.get("readOnly").and_then(Value::as_bool) == Some(true);
                    if read_only && !required.contains(&name.as_str()) {
                        continue;
                    }
                    out.insert(name.clone(), value_at(prop, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let item = obj
                .get("items")
                .map_or(json!("audit"), |i| value_at(i, depth + 1));
            let min = obj
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1);
            Value::Array(vec![item; usize::try_from(min.min(4)).unwrap_or(1)])
        }
        "integer" => json!(number_in(obj, 1.0).round() as i64),
        "number" => json!(number_in(obj, 1.5)),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => Value::String(string_for(obj)),
    }
}

fn number_in(obj: &Map<String, Value>, preferred: f64) -> f64 {
    let min = obj.get("minimum").and_then(Value::as_f64).or_else(|| {
        obj.get("exclusiveMinimum")
            .and_then(Value::as_f64)
            .map(|m| m + 1.0)
    });
    let max = obj.get("maximum").and_then(Value::as_f64).or_else(|| {
        obj.get("exclusiveMaximum")
            .and_then(Value::as_f64)
            .map(|m| m - 1.0)
    });
    let mut v = preferred;
    if let Some(min) = min {
        v = v.max(min);
    }
    if let Some(max) = max {
        v = v.min(max);
    }
    v
}

fn string_for(obj: &Map<String, Value>) -> String {
    let format = obj.get("format").and_then(Value::as_str).unwrap_or("");
    let base = match format {
        "email" => "audit@example.com".to_owned(),
        "uuid" => "8d3f7a4e-1c2b-4e5f-9a6b-7c8d9e0f1a2b".to_owned(),
        "date-time" => "2026-01-01T00:00:00Z".to_owned(),
        "date" => "2026-01-01".to_owned(),
        "uri" | "url" => "https://example.com/".to_owned(),
        "ipv4" => "192.0.2.1".to_owned(),
        "ipv6" => "2001:db8::1".to_owned(),
        "password" => "Audit-Passw0rd-9f3k".to_owned(),
        _ => "audit".to_owned(),
    };
    let min = obj.get("minLength").and_then(Value::as_u64).unwrap_or(0);
    let max = obj
        .get("maxLength")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);
    let mut s = base;
    while (s.chars().count() as u64) < min {
        s.push('x');
    }
    if (s.chars().count() as u64) > max {
        s = s.chars().take(usize::try_from(max).unwrap_or(0)).collect();
    }
    s
}

/// What a request carries beyond the generated values.
#[derive(Debug, Clone, Default)]
pub struct Fill {
    /// Path parameters by name (e.g. an object's id).
    pub path: BTreeMap<String, String>,
    /// Query parameters by name, replacing or adding to the generated ones.
    pub query: BTreeMap<String, String>,
    /// The body, replacing the generated one.
    pub body: Option<Value>,
}

/// A valid request for `op`: every path parameter, the required query and header parameters,
/// and the body when there is one. No credentials: add them with
/// [`ProbeRequest::with_auth`].
pub fn request_for(op: &Operation, fill: &Fill) -> ProbeRequest {
    let mut path = op.path.clone();
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    let mut headers = Vec::new();
    for p in &op.params {
        let value = || p.example.clone().unwrap_or_else(|| value_for(&p.schema));
        match p.location {
            ParamIn::Path => {
                let v = fill
                    .path
                    .get(&p.name)
                    .cloned()
                    .unwrap_or_else(|| scalar_text(&value()));
                let encoded: String = url::form_urlencoded::byte_serialize(v.as_bytes())
                    .collect::<String>()
                    .replace('+', "%20");
                path = path.replace(&format!("{{{}}}", p.name), &encoded);
            }
            ParamIn::Query if p.required => {
                query.insert(p.name.clone(), scalar_text(&value()));
            }
            ParamIn::Header if p.required => {
                headers.push((p.name.clone(), scalar_text(&value())));
            }
            _ => {}
        }
    }
    query.extend(fill.query.clone());
    if !query.is_empty() {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish();
        path = format!("{path}?{q}");
    }
    let mut request = ProbeRequest::new(op.method.clone(), path);
    request.headers = headers;
    let body = fill.body.clone().or_else(|| {
        op.body
            .as_ref()
            .map(|b| b.example.clone().unwrap_or_else(|| value_for(&b.schema)))
    });
    if let Some(body) = body {
        match op.body.as_ref().map_or(BodyKind::Json, |b| b.kind) {
            BodyKind::Json => request = request.json(&body),
            BodyKind::Form | BodyKind::Multipart => {
                let fields: Vec<(String, String)> = body
                    .as_object()
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect())
                    .unwrap_or_default();
                let borrowed: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                request = request.form(&borrowed);
            }
        }
    }
    request
}

/// A value as it goes in a path, query or form: strings bare, the rest as JSON.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "required": ["name", "price"],
            "properties": {
                "id": {"type": "integer", "readOnly": true},
                "name": {"type": "string", "minLength": 8},
                "price": {"type": "number", "exclusiveMinimum": 0},
                "kind": {"enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"type": "string", "format": "email"}},
                "note": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 3}]}
            }
        });
        let v = value_for(&schema);
        assert_eq!(v["name"], "auditxxx");
        assert!(v["price"].as_f64().unwrap() > 0.0);
        assert_eq!(v["kind"], "a");
        assert_eq!(v["tags"][0], "audit@example.com");
        assert_eq!(v["note"], "aud");
        assert!(v.get("id").is_none());
    }
}
