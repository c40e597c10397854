//! Hand-built API models for the input checks' tests.

use http::Method;
use serde_json::{Value, json};

use crate::api::{Api, BodyKind, Operation, Param, ParamIn, RequestBody, Response};

/// An operation without parameters or body, answering 200.
pub(crate) fn op(method: Method, path: &str) -> Operation {
    Operation {
        method,
        path: path.into(),
        operation_id: None,
        params: Vec::new(),
        body: None,
        secured: false,
        responses: vec![Response {
            status: "200".into(),
            schema: None,
        }],
    }
}

/// A parameter.
pub(crate) fn param(location: ParamIn, name: &str, schema: Value) -> Param {
    Param {
        name: name.into(),
        location,
        required: location == ParamIn::Path,
        schema,
        example: None,
    }
}

/// A string query parameter.
pub(crate) fn query(name: &str) -> Param {
    param(ParamIn::Query, name, json!({"type": "string"}))
}

/// A string path parameter.
pub(crate) fn path(name: &str) -> Param {
    param(ParamIn::Path, name, json!({"type": "string"}))
}

/// A body.
pub(crate) fn body(kind: BodyKind, schema: Value) -> RequestBody {
    RequestBody {
        kind,
        schema,
        required: true,
        example: None,
    }
}

/// `op` with these parameters.
pub(crate) fn with(mut o: Operation, params: Vec<Param>) -> Operation {
    o.params = params;
    o
}

/// An API of these operations.
pub(crate) fn api(operations: Vec<Operation>) -> Api {
    Api {
        title: "test".into(),
        operations,
        token_url: None,
        base_path: String::new(),
    }
}
