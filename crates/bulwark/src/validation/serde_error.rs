//! Turns serde's error messages into pydantic-style [`ErrorDetail`]s.
//!
//! serde reports structure in text (`missing field `x``, `invalid type: ..., expected u32`), so
//! this module reads that text. Only the parts serde writes from the *type* (field names, the
//! expected type) are reused; the parts that quote the *input* never reach a message.

use serde_json::{Value, json};
use serde_path_to_error::{Path, Segment};

use super::detail::{is_echo_safe, value_error, with_safe_input};
use crate::error::{ErrorDetail, LocItem};

/// How the input was written: JSON carries types; form, query and path values are text to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    Json,
    Text,
}

/// What serde complained about, read from its message.
#[derive(Debug, PartialEq)]
enum Problem<'a> {
    Nul,
    Missing(&'a str),
    Unknown(&'a str),
    Variant(Vec<&'a str>),
    Expected(&'a str),
    Custom(&'a str),
}

fn parse(msg: &str) -> Problem<'_> {
    if msg == NUL_MESSAGE {
        return Problem::Nul;
    }
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        return Problem::Missing(field);
    }
    // The quoted field comes from the input, so cut at the *last* separator serde wrote.
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let field = rest
            .strip_suffix("`, there are no fields")
            .or_else(|| rest.rfind("`, expected ").map(|end| &rest[..end]));
        if let Some(field) = field {
            return Problem::Unknown(field);
        }
    }
    if msg.starts_with("unknown variant `") {
        let sep = "`, expected ";
        let tail = msg.rfind(sep).map_or("", |i| &msg[i + sep.len()..]);
        return Problem::Variant(tail.split('`').skip(1).step_by(2).collect());
    }
    let typed = ["invalid type: ", "invalid value: ", "invalid length "];
    let sep = ", expected ";
    if typed.iter().any(|prefix| msg.starts_with(prefix))
        && let Some(i) = msg.rfind(sep)
    {
        return Problem::Expected(&msg[i + sep.len()..]);
    }
    Problem::Custom(msg)
}

const INTEGERS: [&str; 12] = [
    "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize",
];

/// The kind and message pydantic gives a value of the wrong type, or `None` when the expected
/// type is not one pydantic names. `expected` is serde's wording (`u32`, `a string`,
/// `struct Item`) or a Rust type name.
pub(crate) fn type_error(syntax: Syntax, expected: &str) -> Option<(&'static str, &'static str)> {
    let expected = expected.trim_start_matches("a nonzero ");
    let name = expected.rsplit("::").next().unwrap_or(expected);
    let int = name.starts_with("NonZero") || INTEGERS.contains(&name);
    let text = syntax == Syntax::Text;
    Some(match name {
        _ if int && text => (
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        _ if int => ("int_type", "Input should be a valid integer"),
        "f32" | "f64" if text => (
            "float_parsing",
            "Input should be a valid number, unable to parse string as a number",
        ),
        "f32" | "f64" => ("float_type", "Input should be a valid number"),
        "a boolean" | "bool" if text => (
            "bool_parsing",
            "Input should be a valid boolean, unable to interpret input",
        ),
        "a boolean" | "bool" => ("bool_type", "Input should be a valid boolean"),
        "a string" | "a borrowed string" | "a character" | "char" | "String" => {
            ("string_type", "Input should be a valid string")
        }
        n if n == "a sequence" || n.starts_with("a tuple") || n.starts_with("an array") => {
            ("list_type", "Input should be a valid list")
        }
        n if n == "a map" || n.starts_with("struct ") => (
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        ),
        _ => return None,
    })
}

/// The location serde_path_to_error tracked, as `loc` items (without the source prefix).
fn loc_of(path: &Path) -> Vec<LocItem> {
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(LocItem::Index(*index)),
            Segment::Map { key } => Some(LocItem::Key(key.clone())),
            Segment::Enum { variant } => Some(LocItem::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

/// The JSON value at `loc` (without the source prefix), if there is one.
pub(crate) fn value_at<'a>(root: &'a Value, loc: &[LocItem]) -> Option<&'a Value> {
    loc.iter().try_fold(root, |value, item| match item {
        LocItem::Key(key) => value.get(key),
        LocItem::Index(index) => value.get(index),
    })
}

/// Builds the detail for one serde error: `prefix` is the source (`body`, `query`), `input_at`
/// finds the raw input at a location below it.
pub(crate) fn to_detail(
    prefix: &'static str,
    syntax: Syntax,
    path: &Path,
    message: &str,
    input_at: impl Fn(&[LocItem]) -> Option<Value>,
) -> ErrorDetail {
    detail_at(prefix, syntax, loc_of(path), message, input_at)
}

/// As [`to_detail`], for an error at `loc` (without the source prefix).
pub(crate) fn detail_at(
    prefix: &'static str,
    syntax: Syntax,
    mut loc: Vec<LocItem>,
    message: &str,
    input_at: impl Fn(&[LocItem]) -> Option<Value>,
) -> ErrorDetail {
    let problem = parse(message);
    let input = match (&problem, syntax) {
        // pydantic echoes the enclosing object for JSON; FastAPI sends null for a form field.
        (Problem::Missing(_), Syntax::Json) => input_at(&loc),
        (Problem::Missing(_), Syntax::Text) => Some(Value::Null),
        _ => None,
    };
    // serde_path_to_error ends the path with an unknown key already, never with a missing one.
    match problem {
        Problem::Missing(field) => loc.push(LocItem::Key(field.to_owned())),
        Problem::Unknown(field) if loc.last() != Some(&LocItem::Key(field.to_owned())) => {
            loc.push(LocItem::Key(field.to_owned()));
        }
        _ => {}
    }
    let input = input.or_else(|| input_at(&loc)).unwrap_or(Value::Null);
    loc.insert(0, LocItem::from(prefix));

    let detail = match problem {
        Problem::Nul => return contains_nul(loc),
        Problem::Missing(_) => ErrorDetail::new("missing", loc, "Field required"),
        Problem::Unknown(_) => {
            ErrorDetail::new("extra_forbidden", loc, "Extra inputs are not permitted")
        }
        Problem::Variant(names) => {
            let expected = one_of(&names);
            ErrorDetail::new("enum", loc, format!("Input should be {expected}"))
                .with_ctx(json!({ "expected": expected }))
        }
        Problem::Expected(expected) => match type_error(syntax, expected) {
            Some((kind, msg)) => ErrorDetail::new(kind, loc, msg),
            None => return value_error(loc, format_args!("expected {expected}"), input),
        },
        Problem::Custom(text) => {
            let text = sanitize(text, &loc, &input);
            return value_error(loc, text, input);
        }
    };
    with_safe_input(detail, input)
}

/// pydantic's list of choices: `'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`.
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("'{name}'")).collect();
    match quoted.split_last() {
        None => "a known variant".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// A custom message (a `TryFrom` error, a third-party type's complaint) made safe to send: one
/// line, at most 200 characters, and never quoting a secret input.
pub(crate) fn sanitize(text: &str, loc: &[LocItem], input: &Value) -> String {
    if let Value::String(secret) = input
        && !secret.is_empty()
        && !is_echo_safe(loc, input)
        && text.contains(secret.as_str())
    {
        return "invalid value".to_owned();
    }
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// What the body and query deserializers say when a field takes in text that holds NUL.
pub(crate) const NUL_MESSAGE: &str = "text contains the NUL character";

/// The detail for text that contains NUL (U+0000) at `loc`: refused wherever text enters, since
/// PostgreSQL cannot store it in text and SQLite's C functions stop at it (a `LIKE` pattern cut
/// at a NUL matches everything). The input is not echoed: the field may be a secret.
pub(crate) fn contains_nul(loc: Vec<LocItem>) -> ErrorDetail {
    ErrorDetail::new(
        "string_contains_nul",
        loc,
        "Text must not contain the NUL character (U+0000)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_message_serde_writes() {
        assert_eq!(parse("missing field `name`"), Problem::Missing("name"));
        assert_eq!(
            parse("unknown field `a`, expected b`, expected `name` or `price`"),
            Problem::Unknown("a`, expected b")
        );
        assert_eq!(
            parse("unknown field `x`, there are no fields"),
            Problem::Unknown("x")
        );
        assert_eq!(
            parse("unknown variant `x`, expected one of `a`, `b`, `c`"),
            Problem::Variant(vec!["a", "b", "c"])
        );
        assert_eq!(
            parse(r#"invalid type: string ", expected f64", expected u32"#),
            Problem::Expected("u32")
        );
        assert_eq!(
            parse("price must be > 0"),
            Problem::Custom("price must be > 0")
        );
    }

    #[test]
    fn names_choices_like_pydantic() {
        assert_eq!(one_of(&["password"]), "'password'");
        assert_eq!(one_of(&["a", "b", "c"]), "'a', 'b' or 'c'");
    }

    #[test]
    fn classifies_expected_types_and_rust_type_names() {
        assert_eq!(
            type_error(Syntax::Json, "u8").map(|t| t.0),
            Some("int_type")
        );
        assert_eq!(
            type_error(Syntax::Text, "core::num::nonzero::NonZero<u32>").map(|t| t.0),
            Some("int_parsing")
        );
        assert_eq!(
            type_error(Syntax::Json, "struct Item").map(|t| t.0),
            Some("model_attributes_type")
        );
        assert_eq!(type_error(Syntax::Json, "a UUID"), None);
    }

    #[test]
    fn a_secret_quoted_in_a_custom_message_is_not_sent() {
        let loc = [LocItem::from("body"), LocItem::from("password")];
        let text = sanitize("weak: hunter2", &loc, &json!("hunter2"));
        assert_eq!(text, "invalid value");
    }
}
