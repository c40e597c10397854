//! The OpenAPI document's shared parts: the error bodies, and the answers that come from the
//! middleware stack rather than from a handler.
//!
//! Handlers' `#[utoipa::path]` annotations list the statuses their own code answers. Some
//! answers come from layers every route passes through, and are added here once for every
//! operation they apply to, so that the document lists everything the server can send:
//!
//! - 429 on every operation: every route is rate limited (`rate_limits.enabled`);
//! - 413 and 415 on every operation with a request body: the body limit (1 MiB) and the body
//!   extractors' `Content-Type` check;
//! - 403 on every unsafe operation that accepts the `session` cookie: the CSRF layer refuses such a
//!   request carrying a session cookie and no bearer token, before authentication.
//!
//! Every error response then gets a description, the contract's FastAPI-shaped body
//! (`HTTPError`, or `HTTPValidationError` for 422) and its headers (`WWW-Authenticate` on 401,
//! `Retry-After` on 429). Schemathesis (`reliability/schemathesis.sh`) checks the server against
//! this document.

use http::Method;
use serde::Serialize;
use utoipa::{
    ToSchema,
    openapi::{
        ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr, ResponseBuilder,
        path::{Operation, PathItem},
        schema::Type,
    },
};

/// `{"detail": "<message>"}`: every error other than 422.
#[derive(Serialize, ToSchema)]
#[schema(as = HTTPError)]
pub struct HttpErrorOut {
    /// What went wrong, for a person. Never a secret, a stack trace or SQL.
    pub detail: String,
}

/// `{"detail": [...]}`: 422, one entry per problem found.
#[derive(Serialize, ToSchema)]
#[schema(as = HTTPValidationError)]
pub struct HttpValidationErrorOut {
    /// The problems.
    pub detail: Vec<ValidationErrorOut>,
}

/// One problem of a 422, in pydantic's shape.
#[derive(Serialize, ToSchema)]
#[schema(as = ValidationError)]
pub struct ValidationErrorOut {
    /// Machine-readable kind: `missing`, `extra_forbidden`, `json_invalid`, `string_too_long`...
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: String,
    /// Where: the source (`body`, `query`, `path`, `header`, `cookie`), then keys and indexes.
    pub loc: Vec<LocItemOut>,
    /// What went wrong, for a person.
    pub msg: String,
    /// The offending input; absent where echoing it could leak a secret (a password).
    #[schema(required = false, value_type = Option<Value>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// Limits or expected values, when there are any.
    #[schema(required = false, value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<serde_json::Value>,
}

/// A key, or an index (or the byte offset of malformed JSON).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LocItemOut {
    /// A source or an object key.
    Key(String),
    /// An array index or a byte offset.
    Index(u64),
}

/// Adds the layers' answers to every operation they apply to and completes every error
/// response (description, body, headers). Runs on the merged document.
pub fn complete(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let limited = !crate::config::UNLIMITED_ROUTES.contains(&path.as_str());
        for (method, op) in operations_mut(item) {
            if let Some(op) = op.as_mut() {
                if crate::routes::requires_authentication(path, &method) {
                    op.security = Some(caller_security());
                }
                complete_operation(op, !method.is_safe(), limited);
            }
        }
    }
    forbid_nul(doc);
}

/// The ways a caller may authenticate, as alternatives: the OAuth2 password flow's bearer
/// token (what Swagger UI's "Authorize" gets), any bearer JWT, or the browser's session cookie.
fn caller_security() -> Vec<utoipa::openapi::security::SecurityRequirement> {
    ["OAuth2PasswordBearer", "HTTPBearer", "session"]
        .map(|scheme| {
            utoipa::openapi::security::SecurityRequirement::new(scheme, Vec::<String>::new())
        })
        .into()
}

/// The pattern that says what every text input must be: without NUL (U+0000), which the
/// server refuses with 422 wherever text enters (contract v1.2).
pub const NO_NUL: &str = "^[^\\u0000]*$";

/// The component schemas of error answers, which echo client input (`loc`, `input`).
const ERROR_SCHEMAS: &[&str] = &[
    "HTTPError",
    "HTTPValidationError",
    "ValidationError",
    "LocItemOut",
];

/// States the NUL rule on every string schema of the document's inputs (parameters, request
/// bodies, component schemas) that has no pattern of its own, no enum and no format other than
/// `password` (values that cannot hold NUL, or whose generators a pattern would confuse), so
/// that clients and API testers know it.
fn forbid_nul(doc: &mut OpenApi) {
    use utoipa::openapi::{
        RefOr,
        schema::{
            AdditionalProperties, ArrayItems, KnownFormat, Schema, SchemaFormat, SchemaType, Type,
        },
    };

    fn schema(node: &mut RefOr<Schema>) {
        let RefOr::T(node) = node else { return };
        match node {
            Schema::Object(object) => {
                let string = match &object.schema_type {
                    SchemaType::Type(t) => *t == Type::String,
                    SchemaType::Array(types) => types.contains(&Type::String),
                    _ => false,
                };
                let free_text = object.pattern.is_none()
                    && object.enum_values.is_none()
                    && matches!(
                        object.format,
                        None | Some(SchemaFormat::KnownFormat(KnownFormat::Password))
                    );
                if string && free_text {
                    object.pattern = Some(NO_NUL.to_owned());
                }
                object.properties.values_mut().for_each(schema);
                if let Some(extra) = object.additional_properties.as_deref_mut()
                    && let AdditionalProperties::RefOr(extra) = extra
                {
                    schema(extra);
                }
            }
            Schema::Array(array) => {
                if let ArrayItems::RefOrSchema(items) = &mut array.items {
                    schema(items);
                }
            }
            Schema::OneOf(one_of) => one_of.items.iter_mut().for_each(schema),
            Schema::AllOf(all_of) => all_of.items.iter_mut().for_each(schema),
            Schema::AnyOf(any_of) => any_of.items.iter_mut().for_each(schema),
            _ => {}
        }
    }

    if let Some(components) = doc.components.as_mut() {
        // The error shapes are answers, not inputs: a 422 names the client's own keys in `loc`
        // (an unknown key holding NUL among them), so the rule must not be stated on them.
        components
            .schemas
            .iter_mut()
            .filter(|(name, _)| !ERROR_SCHEMAS.contains(&name.as_str()))
            .for_each(|(_, node)| schema(node));
    }
    for item in doc.paths.paths.values_mut() {
        for (_, op) in operations_mut(item) {
            let Some(op) = op.as_mut() else { continue };
            for parameter in op.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter
                    && let Some(node) = parameter.schema.as_mut()
                {
                    schema(node);
                }
            }
            if let Some(RefOr::T(body)) = op.request_body.as_mut() {
                for content in body.content.values_mut() {
                    if let RefOr::T(content) = content
                        && let Some(node) = content.schema.as_mut()
                    {
                        schema(node);
                    }
                }
            }
        }
    }
}

/// A path item's operations by method (utoipa keeps one field per method).
fn operations_mut(item: &mut PathItem) -> [(Method, &mut Option<Operation>); 8] {
    [
        (Method::GET, &mut item.get),
        (Method::HEAD, &mut item.head),
        (Method::OPTIONS, &mut item.options),
        (Method::TRACE, &mut item.trace),
        (Method::POST, &mut item.post),
        (Method::PUT, &mut item.put),
        (Method::PATCH, &mut item.patch),
        (Method::DELETE, &mut item.delete),
    ]
}

/// Whether `session` is one of the operation's security alternatives. (utoipa keeps a
/// requirement's scheme names private: its JSON form is the way to read them.)
fn accepts_session_cookie(op: &Operation) -> bool {
    op.security.as_ref().is_some_and(|requirements| {
        requirements.iter().any(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_object().map(|o| o.contains_key("session")))
                .unwrap_or(false)
        })
    })
}

fn complete_operation(op: &mut Operation, unsafe_method: bool, rate_limited: bool) {
    let mut added = Vec::new();
    if rate_limited {
        added.push(("429", describe("429")));
    }
    if op.request_body.is_some() {
        added.extend([("413", describe("413")), ("415", describe("415"))]);
    }
    if unsafe_method && accepts_session_cookie(op) {
        added.push(("403", CSRF_REFUSED));
    }
    let responses = &mut op.responses.responses;
    for (status, description) in added {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| ResponseBuilder::new().description(description).into());
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if response.description.is_empty() {
            response.description = describe(status).to_owned();
        }
        let is_error = status.starts_with('4') || status.starts_with('5');
        if !is_error || !response.content.is_empty() {
            continue;
        }
        let schema = if status == "422" {
            "HTTPValidationError"
        } else {
            "HTTPError"
        };
        response.content.insert(
            "application/json".to_owned(),
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .into(),
        );
        match status.as_str() {
            "401" => {
                response.headers.insert(
                    "WWW-Authenticate".to_owned(),
                    header(Type::String, "`Bearer`: authenticate with a bearer token.").into(),
                );
            }
            "429" => {
                response.headers.insert(
                    "Retry-After".to_owned(),
                    header(Type::Integer, "Seconds to wait before trying again.").into(),
                );
            }
            _ => {}
        }
    }
}

fn header(kind: Type, description: &str) -> utoipa::openapi::Header {
    HeaderBuilder::new()
        .schema(Some(
            utoipa::openapi::ObjectBuilder::new().schema_type(kind),
        ))
        .description(Some(description))
        .build()
}

/// The CSRF layer's refusal (session cookie, no bearer token, no valid CSRF token or origin).
pub const CSRF_REFUSED: &str = "CSRF token missing or invalid: a session-cookie request needs `X-CSRF-Token` (or the \
    `csrf_token` form field) and an allowed origin";

/// The default description of a status, where the annotation gives none.
fn describe(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "204" => "No Content",
        "401" => "Not authenticated, or the credentials are invalid, expired or revoked",
        "403" => {
            "Insufficient permissions; or, with the session cookie, CSRF token missing or invalid"
        }
        "404" => "Not Found",
        "409" => "Conflict",
        "413" => "Request body over 1 MiB",
        "415" => "Unsupported Media Type: the body's `Content-Type` is not one documented here",
        "422" => "Validation error: one entry per problem, with its location",
        "429" => "Too Many Requests: over a rate limit",
        "503" => "Service Unavailable",
        _ => "Response",
    }
}
