//! Deserializing `key=value` pairs (a form body or a query string) into a type.
//!
//! serde_urlencoded reports a bad number as `invalid digit found in string`, which does not say
//! what was expected. This deserializer parses each value itself and reports
//! `invalid value: string "...", expected u32`, which [`serde_error`](super::serde_error) maps to
//! pydantic's `int_parsing`, `float_parsing` and `bool_parsing`.

use std::{collections::BTreeMap, marker::PhantomData};

use serde::de::{
    self, DeserializeOwned, Deserializer, IntoDeserializer, Unexpected, Visitor,
    value::MapDeserializer,
};
use serde_json::Value;

use super::serde_error::{self, Syntax};
use crate::error::{ErrorDetail, LocItem, ValidationErrors};

/// Parses `application/x-www-form-urlencoded` text into pairs; `+` and `%XX` are decoded, and
/// invalid UTF-8 is replaced, so this cannot fail on any input.
pub(crate) fn pairs(encoded: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(encoded).unwrap_or_default()
}

/// Deserializes `pairs` into `T`, with errors located under `prefix` (`body` or `query`).
///
/// A key given twice keeps its last value, as Starlette does.
///
/// # Errors
/// One [`ValidationErrors`] entry for the first field that does not fit.
pub(crate) fn from_pairs<T: DeserializeOwned>(
    prefix: &'static str,
    pairs: Vec<(String, String)>,
) -> Result<T, ValidationErrors> {
    let mut fields: BTreeMap<String, String> = pairs.into_iter().collect();
    let mut errors = ValidationErrors::new();
    // Like FastAPI, every missing field is listed, not only the first: serde stops at the first
    // one, so each missing field is filled with a stand-in and the parse tried again (at most
    // once per field of `T`). A later error about a stand-in itself (a number field, say) ends
    // the list there; an error about a field the client sent is listed too.
    let mut stand_ins: Vec<String> = Vec::new();
    loop {
        let detail = match parse::<T>(prefix, &fields) {
            Ok(value) => return errors.into_result(value),
            Err(detail) => detail,
        };
        let field = match detail.loc.as_slice() {
            [_, LocItem::Key(field)] => Some(field.clone()),
            _ => None,
        };
        let about_stand_in = field.as_ref().is_some_and(|f| stand_ins.contains(f));
        match field {
            Some(field) if detail.kind == "missing" && !about_stand_in && stand_ins.len() < 64 => {
                errors.push(detail);
                fields.insert(field.clone(), "0".to_owned());
                stand_ins.push(field);
            }
            _ => {
                if !about_stand_in {
                    errors.push(detail);
                }
                return Err(errors);
            }
        }
    }
}

/// One parse of `fields` into `T`: the first field that does not fit, as a detail.
fn parse<T: DeserializeOwned>(
    prefix: &'static str,
    fields: &BTreeMap<String, String>,
) -> Result<T, ErrorDetail> {
    let entries = fields.iter().map(|(k, v)| (k.as_str(), Text::new(v)));
    let deserializer = MapDeserializer::<_, de::value::Error>::new(entries);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let message = err.inner().to_string();
        let input_at = |loc: &[LocItem]| match loc {
            [LocItem::Key(key)] => fields.get(key).cloned().map(Value::String),
            _ => None,
        };
        serde_error::to_detail(prefix, Syntax::Text, err.path(), &message, input_at)
    })
}

/// One text value, parsed into whatever type the visitor asks for.
struct Text<'de, E> {
    value: &'de str,
    error: PhantomData<E>,
}

impl<'de, E> Text<'de, E> {
    fn new(value: &'de str) -> Self {
        Self {
            value,
            error: PhantomData,
        }
    }

    fn invalid<V: Visitor<'de>>(&self, visitor: &V) -> E
    where
        E: de::Error,
    {
        E::invalid_value(Unexpected::Str(self.value), visitor)
    }
}

impl<'de, E: de::Error> IntoDeserializer<'de, E> for Text<'de, E> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parse_as {
    ($($method:ident => $visit:ident,)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
            match self.value.parse() {
                Ok(parsed) => visitor.$visit(parsed),
                Err(_) => Err(self.invalid(&visitor)),
            }
        }
    )*};
}

impl<'de, E: de::Error> Text<'de, E> {
    /// The text, when it may be taken in: never with NUL (which would reach SQL).
    fn text(&self) -> Result<&'de str, E> {
        if self.value.contains('\0') {
            return Err(E::custom(serde_error::NUL_MESSAGE));
        }
        Ok(self.value)
    }
}

impl<'de, E: de::Error> Deserializer<'de> for Text<'de, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_borrowed_str(self.text()?)
    }

    /// A field nobody takes in (an extra OAuth2 field, say): not looked at, NUL or not.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_unit()
    }

    /// The spellings pydantic accepts for a boolean.
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => visitor.visit_bool(true),
            "false" | "0" | "no" | "off" | "f" | "n" => visitor.visit_bool(false),
            _ => Err(self.invalid(&visitor)),
        }
    }

    parse_as! {
        deserialize_i8 => visit_i8, deserialize_i16 => visit_i16,
        deserialize_i32 => visit_i32, deserialize_i64 => visit_i64,
        deserialize_i128 => visit_i128, deserialize_u8 => visit_u8,
        deserialize_u16 => visit_u16, deserialize_u32 => visit_u32,
        deserialize_u64 => visit_u64, deserialize_u128 => visit_u128,
        deserialize_f32 => visit_f32, deserialize_f64 => visit_f64,
        deserialize_char => visit_char,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_enum(self.text()?.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    enum Grant {
        #[serde(rename = "password")]
        Password,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Params {
        limit: Option<u32>,
        ratio: f64,
        active: bool,
        grant: Option<Grant>,
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_numbers_booleans_and_enums_from_text() {
        let input = owned(&[("limit", "5"), ("ratio", "0.5"), ("active", "on")]);
        let mut input = input;
        input.push(("grant".into(), "password".into()));
        let params: Params = from_pairs("query", input).expect("valid");
        let expected = Params {
            limit: Some(5),
            ratio: 0.5,
            active: true,
            grant: Some(Grant::Password),
        };
        assert_eq!(params, expected);
    }

    #[test]
    fn the_last_of_repeated_keys_wins() {
        let input = owned(&[("ratio", "x"), ("active", "no"), ("ratio", "2")]);
        let params: Params = from_pairs("query", input).expect("valid");
        assert_eq!(params.ratio, 2.0);
    }

    #[test]
    fn a_bad_boolean_is_bool_parsing() {
        let input = owned(&[("ratio", "1"), ("active", "maybe")]);
        let errors = from_pairs::<Params>("query", input).expect_err("invalid");
        let body = serde_json::to_value(&errors).expect("serializable");
        assert_eq!(body["detail"][0]["type"], "bool_parsing");
        assert_eq!(body["detail"][0]["loc"], json!(["query", "active"]));
        assert_eq!(body["detail"][0]["input"], "maybe");
    }

    #[test]
    fn an_unknown_choice_is_enum() {
        let input = owned(&[("ratio", "1"), ("active", "1"), ("grant", "magic")]);
        let errors = from_pairs::<Params>("body", input).expect_err("invalid");
        let body = serde_json::to_value(&errors).expect("serializable");
        assert_eq!(body["detail"][0]["type"], "enum");
        assert_eq!(body["detail"][0]["msg"], "Input should be 'password'");
        assert_eq!(body["detail"][0]["input"], "magic");
    }
}
