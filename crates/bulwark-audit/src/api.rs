//! What the audit knows of the API: its operations, read from an OpenAPI document (3.0, 3.1 or
//! Swagger 2.0) into one model, with every `$ref` resolved. Parsing lives in `openapi`.

use http::Method;
use serde_json::Value;

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamIn {
    /// A `{name}` segment of the path template.
    Path,
    /// The query string.
    Query,
    /// A request header.
    Header,
    /// A cookie.
    Cookie,
}

/// One parameter of an operation.
#[derive(Debug, Clone)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Where it goes.
    pub location: ParamIn,
    /// Whether the operation requires it.
    pub required: bool,
    /// Its JSON Schema (references resolved), `{}` when the document gives none.
    pub schema: Value,
    /// An example from the document, if any.
    pub example: Option<Value>,
}

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json` (or `+json`).
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data`.
    Multipart,
}

/// An operation's request body.
#[derive(Debug, Clone)]
pub struct RequestBody {
    /// The media type chosen (JSON first, then form, then multipart).
    pub kind: BodyKind,
    /// Its JSON Schema (references resolved).
    pub schema: Value,
    /// Whether the body is required.
    pub required: bool,
    /// An example from the document, if any.
    pub example: Option<Value>,
}

/// One documented answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// `200`, `4XX`, `default`, ...
    pub status: String,
    /// The JSON schema of its body, if documented.
    pub schema: Option<Value>,
}

/// One operation: a method on a path template.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The method.
    pub method: Method,
    /// The path template as documented (`/items/{item_id}`), without the server's base path.
    pub path: String,
    /// `operationId`, if any.
    pub operation_id: Option<String>,
    /// Path, query, header and cookie parameters (path-level ones merged in).
    pub params: Vec<Param>,
    /// The request body, if the operation takes one.
    pub body: Option<RequestBody>,
    /// Whether the document says the operation requires credentials (its own `security`, else
    /// the document's; an empty requirement `{}` among them makes it optional).
    pub secured: bool,
    /// Documented answers.
    pub responses: Vec<Response>,
}

impl Operation {
    /// `METHOD /path/template`, as findings name operations.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path parameters.
    pub fn path_params(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| p.location == ParamIn::Path)
    }

    /// Whether `status` is one of the documented answers (exact, `4XX` ranges or `default`).
    pub fn documents(&self, status: u16) -> bool {
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        self.responses.iter().any(|r| {
            r.status == exact || r.status.eq_ignore_ascii_case(&range) || r.status == "default"
        })
    }
}

/// The API as its document describes it.
#[derive(Debug, Clone, Default)]
pub struct Api {
    /// Its title (`info.title`).
    pub title: String,
    /// Every operation, in document order.
    pub operations: Vec<Operation>,
    /// The OAuth2 password flow's `tokenUrl`, if the document declares one.
    pub token_url: Option<String>,
    /// The base path of the document's first server (`/api`), to strip from the target URL when
    /// the two overlap. Empty for none.
    pub base_path: String,
}

impl Api {
    /// The operation with this method and template, if documented.
    pub fn find(&self, method: &Method, path: &str) -> Option<&Operation> {
        self.operations
            .iter()
            .find(|o| o.method == *method && o.path == path)
    }
}
