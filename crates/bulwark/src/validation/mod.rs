//! Typed request parsing with FastAPI-style errors.
//!
//! [`Json`], [`Form`], [`Query`] and [`Path`] replace axum's extractors of the same names. They
//! parse untrusted input into a Rust type at the boundary, so a handler only ever sees values of
//! the shape it declared, and every rejection comes out in the shapes of [`crate::error`]:
//!
//! | failure | answer |
//! |---|---|
//! | wrong `Content-Type` for a body | 415 `{"detail": "Unsupported Media Type"}` |
//! | body over `DefaultBodyLimit` | 413 `{"detail": "Request body too large"}` |
//! | malformed JSON | 422 `json_invalid` at `["body", <byte offset>]` |
//! | a field that does not fit | 422 `missing`, `extra_forbidden`, `int_type`, `int_parsing`, `enum`, `value_error`, ... at `["body" \| "query" \| "path", ...]` |
//!
//! # Threat model
//!
//! - **Mass assignment.** A body that carries fields the type does not declare (`owner_id`,
//!   `roles`, `id`) must not be applied. serde ignores unknown fields unless told otherwise, so
//!   put `#[serde(deny_unknown_fields)]` on every body type: they then answer 422
//!   `extra_forbidden`. The extractors cannot add this for you. Don't combine it with
//!   `#[serde(flatten)]`, which disables it. Query types should *not* deny unknown parameters.
//! - **Type confusion.** JSON types are strict: `"1"` is not a number and `1` is not a string
//!   (stricter than pydantic's lax mode). Range and format rules belong in domain newtypes with
//!   `#[serde(try_from = "...")]`; their error text becomes a `value_error`, so write it without
//!   quoting the input.
//! - **Echoed secrets.** An error's `input` is omitted whenever its location names a secret
//!   ([`is_secret_key`]: `password`, `secret`, `token`) or the echoed value contains such a key.
//!   Messages never quote the input: serde's `invalid type: string "hunter2", ...` becomes
//!   `Input should be a valid integer`.
//! - **Resource exhaustion.** Bodies are read within axum's `DefaultBodyLimit` (2 MB unless the
//!   application sets another, e.g. `DefaultBodyLimit::max(1 << 20)`); JSON nesting is bounded
//!   by serde_json's recursion limit (128), which answers `json_invalid`.
//! - **Parameter pollution.** A form field or query parameter given twice keeps its last value,
//!   as Starlette does.
//!
//! Not covered: serde stops at the first error, so a 422 carries one detail where pydantic would
//! list them all. Header and cookie values are not parsed here.
//!
//! [`Validated`] adds rules beyond the type (lengths, ranges, checks of your own), listed all at
//! once in the same 422 shape.
//!
//! For checks a handler runs itself, build details with [`body_error`] or [`value_error`], which
//! apply the same secret rule, and answer `Err(ValidationErrors)`.

mod body;
mod detail;
mod form;
mod json;
mod json_or_form;
mod no_nul;
mod path;
mod query;
mod rejection;
mod serde_error;
mod urlencoded;
mod validated;

#[cfg(test)]
mod test_support;

pub use detail::{body_error, is_echo_safe, is_secret_key, value_error, with_safe_input};
pub use form::Form;
pub use json::Json;
pub use json_or_form::JsonOrForm;
pub use path::Path;
pub use query::Query;
pub use rejection::{BodyRejection, PathRejection};
pub use validated::{Extracted, Rules, Validate, Validated};
