//! Reading an OpenAPI document (3.0, 3.1, Swagger 2.0; JSON or YAML) into [`crate::api::Api`].
//!
//! Every local `$ref` (`#/components/...`, `#/definitions/...`, any JSON pointer into the
//! document) is replaced by what it points to, with a guard against cycles (a schema that refers
//! to itself stops at `{}`), depth and size; references to other files become `{}`.

use std::cell::Cell;

use http::Method;
use serde_json::{Map, Value, json};

use crate::{
    AuditError,
    api::{Api, BodyKind, Operation, Param, ParamIn, RequestBody, Response},
    context::Context,
    probe::{ProbeError, ProbeRequest},
    target::Target,
};

/// Where a document is looked for when none is given, in this order.
pub const DISCOVERY_PATHS: &[&str] = &[
    "/openapi.json",
    "/openapi.yaml",
    "/docs/openapi.json",
    "/v3/api-docs",
    "/swagger.json",
];

/// How deep references nest before the guard stops them.
const MAX_DEPTH: usize = 48;
/// How many references one document may expand in all (a guard against documents that blow up).
const MAX_EXPANSIONS: usize = 200_000;

/// The API's document: `given` (a URL on the target or a file), else the first of the usual
/// places that answers one (`/openapi.json`, `/openapi.yaml`, `/docs/openapi.json`,
/// `/v3/api-docs`, `/swagger.json`). `None` when there is none.
pub async fn discover(cx: &Context, given: Option<&str>) -> Result<Option<Api>, AuditError> {
    let target = cx.probe.target();
    if let Some(given) = given {
        let text = read_given(cx, given).await?;
        let api = parse(&text, Some(target))
            .map_err(|e| AuditError::Usage(format!("OpenAPI document {given}: {e}")))?;
        return Ok(Some(api));
    }
    for path in DISCOVERY_PATHS {
        let request = ProbeRequest::get(*path).header(
            "Accept",
            "application/json, application/yaml;q=0.9, */*;q=0.5",
        );
        let exchange = match cx.send(request).await {
            Ok(x) => x,
            Err(ProbeError::Budget) => return Ok(None),
            Err(_) => continue,
        };
        if exchange.status != 200 {
            continue;
        }
        if let Ok(api) = parse(&exchange.text(), Some(target)) {
            return Ok(Some(api));
        }
    }
    Ok(None)
}

/// The text of the document given with `--openapi`: fetched when it is a URL (on the target's
/// origin only), else read from the file.
async fn read_given(cx: &Context, given: &str) -> Result<String, AuditError> {
    if given.starts_with("http://") || given.starts_with("https://") {
        let url = url::Url::parse(given)
            .map_err(|e| AuditError::Usage(format!("OpenAPI document URL {given}: {e}")))?;
        if url.origin() != cx.probe.target().origin() {
            return Err(AuditError::Usage(format!(
                "OpenAPI document URL {given} is not on the target's origin: save it to a file and pass the file"
            )));
        }
        let exchange = cx
            .send(ProbeRequest::get(url.as_str()))
            .await
            .map_err(|e| AuditError::Usage(format!("OpenAPI document {given}: {e}")))?;
        if !exchange.status.is_success() {
            return Err(AuditError::Usage(format!(
                "OpenAPI document {given}: answered {}",
                exchange.status
            )));
        }
        Ok(exchange.text().into_owned())
    } else {
        tokio::fs::read_to_string(given)
            .await
            .map_err(|e| AuditError::Usage(format!("OpenAPI document {given}: {e}")))
    }
}

/// Parses a document's text (JSON, else YAML) into the model. `target`, when known, turns an
/// absolute token URL on its origin into a path relative to it.
pub fn parse(text: &str, target: Option<&Target>) -> Result<Api, String> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let doc: Value = if trimmed.starts_with('{') {
        serde_json::from_str(trimmed).map_err(|e| format!("not valid JSON: {e}"))?
    } else {
        serde_norway::from_str(trimmed).map_err(|e| format!("not valid JSON or YAML: {e}"))?
    };
    from_document(&doc, target)
}

/// Which dialect a document is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Swagger2,
    OpenApi3,
}

/// The model of a parsed document.
pub fn from_document(doc: &Value, target: Option<&Target>) -> Result<Api, String> {
    let root = doc
        .as_object()
        .ok_or("not an OpenAPI document (not an object)")?;
    let dialect = match (
        root.get("openapi").and_then(Value::as_str),
        root.get("swagger").and_then(Value::as_str),
    ) {
        (Some(v), _) if v.starts_with("3.") => Dialect::OpenApi3,
        (_, Some(v)) if v.starts_with("2.") => Dialect::Swagger2,
        (Some(v), _) | (_, Some(v)) => return Err(format!("unsupported OpenAPI version {v:?}")),
        _ => return Err("not an OpenAPI document (no `openapi` or `swagger` version)".into()),
    };
    let r = Resolver {
        doc,
        expansions: Cell::new(0),
    };
    let title = root
        .get("info")
        .and_then(|i| i.get("title"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let base_path = match dialect {
        Dialect::Swagger2 => root
            .get("basePath")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        Dialect::OpenApi3 => root
            .get("servers")
            .and_then(Value::as_array)
            .and_then(|s| s.first())
            .and_then(|s| s.get("url"))
            .and_then(Value::as_str)
            .map(server_path)
            .unwrap_or_default(),
    };
    let base_path = base_path.trim_end_matches('/').to_owned();
    let root_security = root.get("security");
    let root_consumes = root.get("consumes");
    let mut operations = Vec::new();
    if let Some(paths) = root.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            if !path.starts_with('/') {
                continue; // `x-` extensions.
            }
            let item = r.resolve(item);
            let Some(item) = item.as_object() else {
                continue;
            };
            let shared: Vec<Value> = item
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // Methods in the specification's order (the JSON map does not keep the document's).
            for key in METHODS {
                let Some(method) = method_of(key) else {
                    continue;
                };
                let Some(op) = item.get(*key).and_then(Value::as_object) else {
                    continue;
                };
                operations.push(operation(
                    &r,
                    dialect,
                    method,
                    path,
                    op,
                    &shared,
                    root_security,
                    root_consumes,
                ));
            }
        }
    }
    let token_url = password_token_url(&r, root, dialect).map(|u| relative_token_url(&u, target));
    Ok(Api {
        title,
        operations,
        token_url,
        base_path,
    })
}

/// The path of a server URL (`https://h/api` or `/api`), variables left as they are.
fn server_path(url: &str) -> String {
    if let Some((_, rest)) = url.split_once("://") {
        return rest
            .find('/')
            .map_or(String::new(), |i| rest[i..].to_owned());
    }
    if url.starts_with('/') {
        url.to_owned()
    } else {
        String::new()
    }
}

/// The operation keys of a path item, in the specification's order.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn method_of(key: &str) -> Option<Method> {
    Some(match key {
        "get" => Method::GET,
        "put" => Method::PUT,
        "post" => Method::POST,
        "delete" => Method::DELETE,
        "options" => Method::OPTIONS,
        "head" => Method::HEAD,
        "patch" => Method::PATCH,
        "trace" => Method::TRACE,
        _ => return None,
    })
}

#[allow(clippy::too_many_arguments)]
fn operation(
    r: &Resolver<'_>,
    dialect: Dialect,
    method: Method,
    path: &str,
    op: &Map<String, Value>,
    shared: &[Value],
    root_security: Option<&Value>,
    root_consumes: Option<&Value>,
) -> Operation {
    // Path-level parameters first, replaced by the operation's own of the same name and place.
    let mut raw: Vec<Map<String, Value>> = Vec::new();
    let own = op
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for p in shared.iter().chain(own.iter()) {
        let Value::Object(p) = r.resolve(p) else {
            continue;
        };
        let key = |m: &Map<String, Value>| {
            (
                m.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                m.get("in").and_then(Value::as_str).unwrap_or("").to_owned(),
            )
        };
        let k = key(&p);
        raw.retain(|q| key(q) != k);
        raw.push(p);
    }
    let mut params = Vec::new();
    let mut body = None;
    let mut form_props = Map::new();
    let mut form_required = Vec::new();
    let mut form_multipart = false;
    for p in &raw {
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        let required = p.get("required").and_then(Value::as_bool) == Some(true);
        let location = match p.get("in").and_then(Value::as_str).unwrap_or("") {
            "path" => ParamIn::Path,
            "query" => ParamIn::Query,
            "header" => ParamIn::Header,
            "cookie" => ParamIn::Cookie,
            "body" => {
                let schema = p.get("schema").map(|s| r.resolve(s)).unwrap_or(json!({}));
                let example = schema.get("example").cloned();
                body = Some(RequestBody {
                    kind: BodyKind::Json,
                    schema,
                    required,
                    example,
                });
                continue;
            }
            "formData" => {
                let schema = swagger2_schema(r, p);
                if schema.get("type").and_then(Value::as_str) == Some("file")
                    || p.get("type").and_then(Value::as_str) == Some("file")
                {
                    form_multipart = true;
                }
                if required {
                    form_required.push(Value::String(name.to_owned()));
                }
                form_props.insert(name.to_owned(), schema);
                continue;
            }
            _ => continue,
        };
        if name.is_empty() {
            continue;
        }
        let schema = match dialect {
            Dialect::Swagger2 => swagger2_schema(r, p),
            Dialect::OpenApi3 => p
                .get("schema")
                .map(|s| r.resolve(s))
                .or_else(|| {
                    p.get("content")
                        .and_then(Value::as_object)
                        .and_then(|c| c.values().next())
                        .and_then(|m| m.get("schema"))
                        .map(|s| r.resolve(s))
                })
                .unwrap_or(json!({})),
        };
        let example = p
            .get("example")
            .or_else(|| p.get("x-example"))
            .cloned()
            .or_else(|| first_example(p.get("examples"), r))
            .or_else(|| schema.get("example").cloned());
        params.push(Param {
            name: name.to_owned(),
            location,
            required: required || location == ParamIn::Path,
            schema,
            example,
        });
    }
    // Path parameters the template names but the document forgot.
    for segment in path.split('/') {
        let mut rest = segment;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let name = &rest[start + 1..start + len];
            if !name.is_empty()
                && !params
                    .iter()
                    .any(|p| p.location == ParamIn::Path && p.name == name)
            {
                params.push(Param {
                    name: name.to_owned(),
                    location: ParamIn::Path,
                    required: true,
                    schema: json!({"type": "string"}),
                    example: None,
                });
            }
            rest = &rest[start + len + 1..];
        }
    }
    if !form_props.is_empty() && body.is_none() {
        let consumes = op.get("consumes").or(root_consumes);
        let multipart = form_multipart
            || consumes.and_then(Value::as_array).is_some_and(|c| {
                c.iter()
                    .filter_map(Value::as_str)
                    .all(|m| m.starts_with("multipart/"))
            });
        let required = !form_required.is_empty();
        let mut schema = json!({"type": "object", "properties": form_props});
        if required {
            schema["required"] = Value::Array(form_required);
        }
        body = Some(RequestBody {
            kind: if multipart {
                BodyKind::Multipart
            } else {
                BodyKind::Form
            },
            schema,
            required,
            example: None,
        });
    }
    if dialect == Dialect::OpenApi3
        && let Some(Value::Object(rb)) = op.get("requestBody").map(|b| r.resolve(b))
    {
        body = request_body(r, &rb);
    }
    let responses = op
        .get("responses")
        .and_then(Value::as_object)
        .map(|rs| {
            rs.iter()
                .filter(|(status, _)| !status.starts_with("x-"))
                .map(|(status, resp)| {
                    let resp = r.resolve(resp);
                    let schema = match dialect {
                        Dialect::Swagger2 => resp.get("schema").cloned(),
                        Dialect::OpenApi3 => resp
                            .get("content")
                            .and_then(Value::as_object)
                            .and_then(|c| json_media(c))
                            .and_then(|m| m.get("schema"))
                            .cloned(),
                    };
                    Response {
                        status: status.clone(),
                        schema,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Operation {
        method,
        path: path.to_owned(),
        operation_id: op
            .get("operationId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        params,
        body,
        secured: is_secured(op.get("security").or(root_security)),
        responses,
    }
}

/// Whether a list of security requirements demands credentials: at least one, and no empty
/// `{}` (which makes them optional).
fn is_secured(security: Option<&Value>) -> bool {
    match security.and_then(Value::as_array) {
        Some(reqs) => {
            !reqs.is_empty()
                && !reqs
                    .iter()
                    .any(|r| r.as_object().is_some_and(Map::is_empty))
        }
        None => false,
    }
}

/// The JSON media type of a `content` map (`application/json`, `+json`, `*/*`), if any.
fn json_media(content: &Map<String, Value>) -> Option<&Value> {
    content
        .iter()
        .find(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k.starts_with("application/json") || k.contains("+json")
        })
        .or_else(|| content.iter().find(|(k, _)| k.as_str() == "*/*"))
        .map(|(_, v)| v)
}

/// A 3.x `requestBody` (resolved): JSON first, then form, then multipart.
fn request_body(r: &Resolver<'_>, rb: &Map<String, Value>) -> Option<RequestBody> {
    let content = rb.get("content").and_then(Value::as_object)?;
    let find = |pred: &dyn Fn(&str) -> bool| {
        content
            .iter()
            .find(|(k, _)| pred(&k.to_ascii_lowercase()))
            .map(|(_, v)| v)
    };
    let (kind, media) = if let Some(m) = json_media(content) {
        (BodyKind::Json, m)
    } else if let Some(m) = find(&|k| k.starts_with("application/x-www-form-urlencoded")) {
        (BodyKind::Form, m)
    } else if let Some(m) = find(&|k| k.starts_with("multipart/")) {
        (BodyKind::Multipart, m)
    } else {
        return None;
    };
    let schema = media
        .get("schema")
        .map(|s| r.resolve(s))
        .unwrap_or(json!({}));
    let example = media
        .get("example")
        .cloned()
        .or_else(|| first_example(media.get("examples"), r));
    Some(RequestBody {
        kind,
        schema,
        required: rb.get("required").and_then(Value::as_bool) == Some(true),
        example,
    })
}

/// The first value of a 3.x `examples` map (`{name: {value}}`).
fn first_example(examples: Option<&Value>, r: &Resolver<'_>) -> Option<Value> {
    let first = examples?.as_object()?.values().next()?;
    r.resolve(first).get("value").cloned()
}

/// A Swagger 2.0 non-body parameter's schema: the validation keywords it carries itself.
fn swagger2_schema(r: &Resolver<'_>, p: &Map<String, Value>) -> Value {
    if let Some(s) = p.get("schema") {
        return r.resolve(s);
    }
    const KEYS: &[&str] = &[
        "type",
        "format",
        "items",
        "enum",
        "default",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "uniqueItems",
        "multipleOf",
    ];
    let mut schema = Map::new();
    for k in KEYS {
        if let Some(v) = p.get(*k) {
            schema.insert((*k).to_owned(), r.resolve(v));
        }
    }
    // 2.0's boolean `exclusiveMinimum` means "the minimum is excluded".
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if schema.get(flag).and_then(Value::as_bool).is_some() {
            let on = schema.remove(flag).and_then(|v| v.as_bool()) == Some(true);
            if on && let Some(b) = schema.remove(bound) {
                schema.insert(flag.to_owned(), b);
            }
        }
    }
    if schema.get("type").and_then(Value::as_str) == Some("file") {
        schema.insert("type".into(), json!("string"));
        schema.insert("format".into(), json!("binary"));
    }
    if let Some(e) = p.get("x-example") {
        schema.insert("example".into(), e.clone());
    }
    Value::Object(schema)
}

/// The OAuth2 password flow's `tokenUrl` of the document's security schemes, if any.
fn password_token_url(
    r: &Resolver<'_>,
    root: &Map<String, Value>,
    dialect: Dialect,
) -> Option<String> {
    let schemes = match dialect {
        Dialect::Swagger2 => root.get("securityDefinitions"),
        Dialect::OpenApi3 => root
            .get("components")
            .and_then(|c| c.get("securitySchemes")),
    }?
    .as_object()?;
    schemes.values().find_map(|s| {
        let s = r.resolve(s);
        if s.get("type").and_then(Value::as_str) != Some("oauth2") {
            return None;
        }
        let url = match dialect {
            Dialect::OpenApi3 => s.pointer("/flows/password/tokenUrl"),
            Dialect::Swagger2 => (s.get("flow").and_then(Value::as_str) == Some("password"))
                .then(|| s.get("tokenUrl"))
                .flatten(),
        };
        url.and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
    })
}

/// A token URL as the audit sends it: a path relative to the target when it is one or when it is
/// an absolute URL under the target's base; an absolute URL on the target's origin but outside
/// its base stays absolute (the probe accepts it); one elsewhere stays as it is (and the probe
/// will refuse it).
fn relative_token_url(url: &str, target: Option<&Target>) -> String {
    if let Ok(absolute) = url::Url::parse(url) {
        let Some(target) = target else {
            return url.to_owned();
        };
        if absolute.origin() != target.origin() {
            return url.to_owned();
        }
        let base = target.base().path();
        let path = absolute.path();
        let tail = match path.strip_prefix(base) {
            Some(rest) => format!("/{rest}"),
            None if format!("{path}/") == base => "/".to_owned(),
            None => return url.to_owned(),
        };
        return match absolute.query() {
            Some(q) => format!("{tail}?{q}"),
            None => tail,
        };
    }
    format!("/{}", url.trim_start_matches("./").trim_start_matches('/'))
}

/// Replaces local `$ref`s by what they point to.
struct Resolver<'a> {
    doc: &'a Value,
    expansions: Cell<usize>,
}

impl Resolver<'_> {
    /// `value` with every local reference in it resolved.
    fn resolve(&self, value: &Value) -> Value {
        self.walk(value, &mut Vec::new())
    }

    fn walk(&self, value: &Value, stack: &mut Vec<String>) -> Value {
        match value {
            Value::Object(obj) => {
                if let Some(Value::String(reference)) = obj.get("$ref") {
                    let mut target = self.follow(reference, stack);
                    // 3.1 allows siblings next to `$ref`: they refine the target.
                    if obj.len() > 1
                        && let Value::Object(t) = &mut target
                    {
                        for (k, v) in obj.iter().filter(|(k, _)| k.as_str() != "$ref") {
                            t.insert(k.clone(), self.walk(v, stack));
                        }
                    }
                    return target;
                }
                Value::Object(
                    obj.iter()
                        .map(|(k, v)| (k.clone(), self.walk(v, stack)))
                        .collect(),
                )
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.walk(v, stack)).collect())
            }
            other => other.clone(),
        }
    }

    /// What `reference` points to, resolved; `{}` for a cycle, a reference elsewhere, one that
    /// points nowhere, or past the depth and size guards.
    fn follow(&self, reference: &str, stack: &mut Vec<String>) -> Value {
        let Some(pointer) = reference.strip_prefix('#') else {
            return json!({});
        };
        if stack.iter().any(|r| r == reference)
            || stack.len() >= MAX_DEPTH
            || self.expansions.get() >= MAX_EXPANSIONS
        {
            return json!({});
        }
        self.expansions.set(self.expansions.get() + 1);
        let pointer = percent_decode(pointer);
        let Some(found) = self.doc.pointer(&pointer) else {
            return json!({});
        };
        stack.push(reference.to_owned());
        let out = self.walk(found, stack);
        stack.pop();
        out
    }
}

/// `%7B` and friends decoded (references may percent-encode path templates).
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target::parse("http://127.0.0.1:8000/").unwrap()
    }

    const V30: &str = r##"
openapi: 3.0.3
info: {title: Shop}
servers: [{url: "http://127.0.0.1:8000/"}]
security: [{oauth: []}]
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows:
        password: {tokenUrl: "http://127.0.0.1:8000/auth/token", scopes: {}}
  parameters:
    ItemId: {name: item_id, in: path, required: true, schema: {type: integer, example: 3}}
  schemas:
    Item:
      type: object
      required: [name]
      properties:
        id: {type: integer, readOnly: true}
        name: {type: string}
        parent: {$ref: "#/components/schemas/Item"}
        tags: {type: array, items: {$ref: "#/components/schemas/Tag"}}
    Tag: {type: string, enum: [a, b]}
  requestBodies:
    ItemBody:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/Item"}
paths:
  /health:
    get:
      security: []
      responses: {"200": {description: ok}}
  /items/:
    post:
      requestBody: {$ref: "#/components/requestBodies/ItemBody"}
      responses:
        200:
          description: ok
          content: {application/json: {schema: {$ref: "#/components/schemas/Item"}}}
  /items/{item_id}:
    parameters:
      - $ref: "#/components/parameters/ItemId"
      - {name: verbose, in: query, schema: {type: boolean}}
    get:
      security: [{}, {oauth: []}]
      parameters:
        - {name: verbose, in: query, required: true, schema: {type: string}}
      responses: {"200": {description: ok}, "4XX": {description: no}}
    delete:
      responses: {"204": {description: gone}}
  /login:
    post:
      security: []
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema: {type: object, properties: {username: {type: string}}}
      responses: {default: {description: any}}
"##;

    #[test]
    fn openapi_30_yaml_with_refs_cycles_and_token_url() {
        let api = parse(V30, Some(&target())).unwrap();
        assert_eq!(api.title, "Shop");
        assert_eq!(api.token_url.as_deref(), Some("/auth/token"));
        assert_eq!(api.base_path, "");
        let labels: Vec<String> = api.operations.iter().map(Operation::label).collect();
        assert_eq!(
            labels,
            [
                "GET /health",
                "POST /items/",
                "GET /items/{item_id}",
                "DELETE /items/{item_id}",
                "POST /login"
            ]
        );
        let health = api.find(&Method::GET, "/health").unwrap();
        assert!(!health.secured);
        let post = api.find(&Method::POST, "/items/").unwrap();
        assert!(post.secured, "root security applies");
        let body = post.body.as_ref().unwrap();
        assert_eq!(body.kind, BodyKind::Json);
        assert!(body.required);
        assert_eq!(body.schema["properties"]["name"]["type"], "string");
        assert_eq!(body.schema["properties"]["tags"]["items"]["enum"][1], "b");
        // The cycle stops at `{}`.
        assert_eq!(body.schema["properties"]["parent"], json!({}));
        let response = post.responses.iter().find(|r| r.status == "200").unwrap();
        assert_eq!(response.schema.as_ref().unwrap()["type"], "object");

        let get = api.find(&Method::GET, "/items/{item_id}").unwrap();
        assert!(!get.secured, "an empty requirement makes it optional");
        assert_eq!(get.params.len(), 2);
        let id = get.path_params().next().unwrap();
        assert_eq!(id.name, "item_id");
        assert_eq!(id.example, Some(json!(3)));
        let verbose = get.params.iter().find(|p| p.name == "verbose").unwrap();
        assert!(verbose.required, "the operation's own parameter wins");
        assert_eq!(verbose.schema["type"], "string");
        assert!(get.documents(404) && get.documents(200) && !get.documents(500));
        let delete = api.find(&Method::DELETE, "/items/{item_id}").unwrap();
        assert!(delete.secured);
        assert_eq!(
            delete.path_params().count(),
            1,
            "path-level parameters merged"
        );
        let login = api.find(&Method::POST, "/login").unwrap();
        assert_eq!(login.body.as_ref().unwrap().kind, BodyKind::Form);
        assert!(login.documents(500), "default documents everything");
    }

    #[test]
    fn openapi_31_json_with_siblings_and_relative_token_url() {
        let doc = json!({
            "openapi": "3.1.0",
            "info": {"title": "T"},
            "servers": [{"url": "/api/v1/"}],
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "pw": {"type": "oauth2", "flows": {"password": {"tokenUrl": "token", "scopes": {}}}}
                },
                "schemas": {
                    "Node": {"type": "object", "properties": {
                        "next": {"anyOf": [{"$ref": "#/components/schemas/Node"}, {"type": "null"}]},
                        "name": {"type": ["string", "null"], "examples": ["n1"]}
                    }},
                    "A": {"$ref": "#/components/schemas/B"},
                    "B": {"$ref": "#/components/schemas/A"}
                }
            },
            "paths": {
                "/nodes/{node_id}": {
                    "get": {
                        "security": [{"bearer": []}],
                        "parameters": [{"name": "node_id", "in": "path", "required": true,
                            "schema": {"type": "string", "format": "uuid"}}],
                        "responses": {"200": {"description": "ok", "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Node",
                                "description": "the node"}}}}}
                    },
                    "put": {
                        "requestBody": {"content": {"application/merge-patch+json": {
                            "schema": {"$ref": "#/components/schemas/A"},
                            "examples": {"one": {"value": {"x": 1}}}}}},
                        "responses": {}
                    }
                },
                "/weird/{a}/{b}": {"get": {"responses": {}}}
            }
        });
        let api = from_document(&doc, Some(&target())).unwrap();
        assert_eq!(api.token_url.as_deref(), Some("/token"));
        assert_eq!(api.base_path, "/api/v1");
        let get = api.find(&Method::GET, "/nodes/{node_id}").unwrap();
        assert!(get.secured);
        let schema = get.responses[0].schema.as_ref().unwrap();
        assert_eq!(schema["description"], "the node");
        assert_eq!(schema["properties"]["name"]["examples"][0], "n1");
        assert_eq!(schema["properties"]["next"]["anyOf"][0], json!({}));
        let put = api.find(&Method::PUT, "/nodes/{node_id}").unwrap();
        assert!(!put.secured, "no security anywhere");
        let body = put.body.as_ref().unwrap();
        assert_eq!(body.kind, BodyKind::Json);
        assert_eq!(body.example, Some(json!({"x": 1})));
        assert_eq!(body.schema, json!({}), "a pure cycle resolves to {{}}");
        let weird = api.find(&Method::GET, "/weird/{a}/{b}").unwrap();
        assert_eq!(
            weird.path_params().count(),
            2,
            "undeclared path parameters added"
        );
    }

    #[test]
    fn swagger_20_with_body_form_definitions_and_password_flow() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Old"},
            "basePath": "/v2",
            "securityDefinitions": {
                "key": {"type": "apiKey", "in": "header", "name": "X-Key"},
                "pw": {"type": "oauth2", "flow": "password",
                    "tokenUrl": "http://127.0.0.1:8000/oauth/token"}
            },
            "security": [{"key": []}],
            "definitions": {
                "Pet": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"},
                    "owner": {"$ref": "#/definitions/User"}}},
                "User": {"type": "object", "properties": {
                    "pets": {"type": "array", "items": {"$ref": "#/definitions/Pet"}}}}
            },
            "paths": {
                "/pets": {
                    "post": {
                        "parameters": [{"in": "body", "name": "pet", "required": true,
                            "schema": {"$ref": "#/definitions/Pet"}}],
                        "responses": {"200": {"description": "ok",
                            "schema": {"$ref": "#/definitions/Pet"}}}
                    }
                },
                "/pets/{petId}": {
                    "parameters": [{"name": "petId", "in": "path", "required": true,
                        "type": "integer", "minimum": 1, "exclusiveMinimum": true}],
                    "get": {"security": [], "responses": {"200": {"description": "ok"}}},
                    "post": {
                        "consumes": ["application/x-www-form-urlencoded"],
                        "parameters": [
                            {"name": "name", "in": "formData", "type": "string", "required": true},
                            {"name": "status", "in": "formData", "type": "string", "enum": ["sold"]}
                        ],
                        "responses": {}
                    }
                },
                "/pets/{petId}/photo": {
                    "post": {
                        "parameters": [{"name": "petId", "in": "path", "required": true, "type": "integer"},
                            {"name": "file", "in": "formData", "type": "file"}],
                        "responses": {}
                    }
                }
            }
        });
        let api = from_document(&doc, Some(&target())).unwrap();
        assert_eq!(api.base_path, "/v2");
        assert_eq!(api.token_url.as_deref(), Some("/oauth/token"));
        let post = api.find(&Method::POST, "/pets").unwrap();
        assert!(post.secured);
        let body = post.body.as_ref().unwrap();
        assert_eq!(body.kind, BodyKind::Json);
        assert_eq!(body.schema["required"][0], "name");
        assert_eq!(
            body.schema["properties"]["owner"]["properties"]["pets"]["items"],
            json!({})
        );
        assert_eq!(post.responses[0].schema.as_ref().unwrap()["type"], "object");
        let get = api.find(&Method::GET, "/pets/{petId}").unwrap();
        assert!(!get.secured);
        let id = get.path_params().next().unwrap();
        assert_eq!(id.schema, json!({"type": "integer", "exclusiveMinimum": 1}));
        let form = api.find(&Method::POST, "/pets/{petId}").unwrap();
        let fb = form.body.as_ref().unwrap();
        assert_eq!(fb.kind, BodyKind::Form);
        assert_eq!(fb.schema["properties"]["status"]["enum"][0], "sold");
        assert_eq!(fb.schema["required"], json!(["name"]));
        let photo = api.find(&Method::POST, "/pets/{petId}/photo").unwrap();
        assert_eq!(photo.body.as_ref().unwrap().kind, BodyKind::Multipart);
    }

    #[test]
    fn bad_documents_are_refused() {
        assert!(parse("{not json", None).is_err());
        assert!(parse("just: [yaml", None).is_err());
        assert!(
            parse("{\"hello\": 1}", None)
                .unwrap_err()
                .contains("not an OpenAPI")
        );
        assert!(
            parse("swagger: '1.2'", None)
                .unwrap_err()
                .contains("unsupported")
        );
        // Remote references are left out, not followed.
        let api = parse(
            r#"{"openapi": "3.0.0", "paths": {"/a": {"post": {"requestBody": {"content":
              {"application/json": {"schema": {"$ref": "other.yaml#/X"}}}}, "responses": {}}}}}"#,
            None,
        )
        .unwrap();
        assert_eq!(api.operations[0].body.as_ref().unwrap().schema, json!({}));
    }

    #[test]
    fn token_urls_become_relative_to_the_target() {
        let t = Target::parse("http://127.0.0.1:8000/api/").unwrap();
        assert_eq!(
            relative_token_url("http://127.0.0.1:8000/api/token", Some(&t)),
            "/token"
        );
        assert_eq!(
            relative_token_url("http://127.0.0.1:8000/token", Some(&t)),
            "http://127.0.0.1:8000/token"
        );
        assert_eq!(
            relative_token_url("http://elsewhere.example/token", Some(&t)),
            "http://elsewhere.example/token"
        );
        assert_eq!(relative_token_url("token", Some(&t)), "/token");
        assert_eq!(relative_token_url("/auth/token", None), "/auth/token");
        assert_eq!(
            percent_decode("/paths/~1items~1%7Bid%7D"),
            "/paths/~1items~1{id}"
        );
    }

    #[test]
    fn bulwark_own_document_parses() {
        // A snapshot of `bulwark openapi`, kept in tests/data.
        let text = include_str!("../tests/data/openapi/bulwark.json");
        let api = parse(text, Some(&target())).unwrap();
        assert_eq!(api.token_url.as_deref(), Some("/token"));
        for (method, path) in [
            (Method::GET, "/items/"),
            (Method::POST, "/items/"),
            (Method::GET, "/items/{item_id}"),
            (Method::PUT, "/items/{item_id}"),
            (Method::DELETE, "/items/{item_id}"),
        ] {
            let op = api
                .find(&method, path)
                .unwrap_or_else(|| panic!("{method} {path}"));
            assert!(op.secured, "{method} {path}");
        }
        assert!(!api.find(&Method::GET, "/health").unwrap().secured);
        let post = api.find(&Method::POST, "/items/").unwrap();
        assert!(post.body.is_some());
        assert_eq!(
            crate::objects::collections(&api)
                .iter()
                .map(|o| o.path.as_str())
                .collect::<Vec<_>>(),
            ["/items/"]
        );
    }

    #[tokio::test]
    async fn discovery_finds_the_first_parsable_document() {
        let app = axum::Router::new()
            .route(
                "/openapi.json",
                axum::routing::get(|| async { "<html>not it</html>" }),
            )
            .route(
                "/openapi.yaml",
                axum::routing::get(|| async { "openapi: 3.0.0\ninfo: {title: Y}\npaths: {}\n" }),
            )
            .route(
                "/swagger.json",
                axum::routing::get(|| async { r#"{"swagger": "2.0", "paths": {}}"# }),
            );
        let url = crate::testing::serve(app).await;
        let cx = crate::testing::context(&url, None, &[]);
        let api = discover(&cx, None).await.unwrap().unwrap();
        assert_eq!(api.title, "Y");
        assert_eq!(cx.probe.sent(), 2);

        let empty = crate::testing::serve(axum::Router::new()).await;
        let cx = crate::testing::context(&empty, None, &[]);
        assert!(discover(&cx, None).await.unwrap().is_none());
        assert_eq!(cx.probe.sent(), 5);
    }

    #[tokio::test]
    async fn a_given_document_must_be_readable() {
        let app = axum::Router::new().route(
            "/spec",
            axum::routing::get(|| async {
                r#"{"openapi": "3.1.0", "info": {"title": "G"}, "paths": {}}"#
            }),
        );
        let url = crate::testing::serve(app).await;
        let cx = crate::testing::context(&url, None, &[]);
        let given = format!("{url}spec");
        let api = discover(&cx, Some(&given)).await.unwrap().unwrap();
        assert_eq!(api.title, "G");
        let missing = format!("{url}nope");
        assert!(matches!(
            discover(&cx, Some(&missing)).await,
            Err(AuditError::Usage(m)) if m.contains("404")
        ));
        assert!(matches!(
            discover(&cx, Some("http://elsewhere.example/openapi.json")).await,
            Err(AuditError::Usage(m)) if m.contains("origin")
        ));
        let dir =
            std::env::temp_dir().join(format!("bulwark-audit-openapi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.yaml");
        std::fs::write(&bad, "openapi: [").unwrap();
        assert!(matches!(
            discover(&cx, Some(bad.to_str().unwrap())).await,
            Err(AuditError::Usage(_))
        ));
        let good = dir.join("good.yaml");
        std::fs::write(&good, "swagger: '2.0'\ninfo: {title: F}\npaths: {}\n").unwrap();
        let api = discover(&cx, Some(good.to_str().unwrap()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(api.title, "F");
        assert!(matches!(
            discover(&cx, Some(dir.join("absent.json").to_str().unwrap())).await,
            Err(AuditError::Usage(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
