//! A `serde_json::Value` deserialized as it deserializes itself, except that text a field takes
//! in must not hold NUL (U+0000): PostgreSQL cannot store it in text, and SQLite's C functions
//! stop at it. Values nobody takes in (extra fields a type ignores) are not looked at.
//!
//! Type errors are the `Value`'s own (every scalar is handed to it), so the 422 details stay
//! the same; only objects and arrays are walked here, to reach the text inside them.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::serde_error::NUL_MESSAGE;

/// See the module docs.
pub(crate) struct NoNul<'a>(pub(crate) &'a Value);

type Error = serde_json::Error;

impl<'a> NoNul<'a> {
    fn text(&self) -> Result<(), Error> {
        match self.0 {
            Value::String(text) if text.contains('\0') => Err(de::Error::custom(NUL_MESSAGE)),
            _ => Ok(()),
        }
    }
}

macro_rules! delegate {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            self.0.$method(visitor)
        }
    )*};
}

impl<'a> Deserializer<'a> for NoNul<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(Seq(items.iter())),
            Value::Object(map) => visitor.visit_map(Map {
                entries: map.iter(),
                value: None,
            }),
            _ => {
                self.text()?;
                self.0.deserialize_any(visitor)
            }
        }
    }

    delegate! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_bytes deserialize_byte_buf
        deserialize_unit
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.text()?;
        self.0.deserialize_char(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.text()?;
        self.0.deserialize_str(visitor)
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.text()?;
        self.0.deserialize_string(visitor)
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.text()?;
        self.0.deserialize_identifier(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(Seq(items.iter())),
            _ => self.0.deserialize_seq(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(Seq(items.iter())),
            _ => self.0.deserialize_tuple(len, visitor),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(Seq(items.iter())),
            _ => self.0.deserialize_tuple_struct(name, len, visitor),
        }
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Map {
                entries: map.iter(),
                value: None,
            }),
            _ => self.0.deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(Seq(items.iter())),
            Value::Object(map) => visitor.visit_map(Map {
                entries: map.iter(),
                value: None,
            }),
            _ => self.0.deserialize_struct(name, fields, visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.text()?;
        self.0.deserialize_enum(name, variants, visitor)
    }

    /// An extra field nobody takes in: not looked at, NUL or not.
    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct Seq<'a>(std::slice::Iter<'a, Value>);

impl<'a> SeqAccess<'a> for Seq<'a> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(NoNul(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Map<'a> {
    entries: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
}

impl<'a> MapAccess<'a> for Map<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        // A key names a field; one with NUL names none (ignored, or refused as unknown), and a
        // map that takes keys in takes them as text.
        seed.deserialize(de::value::BorrowedStrDeserializer::<Error>::new(
            key.as_str(),
        ))
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a map value without its key"))?;
        seed.deserialize(NoNul(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Item {
        name: String,
        tags: Vec<String>,
        note: Option<String>,
        price: f64,
    }

    fn parse<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
        T::deserialize(NoNul(&value)).map_err(|e| e.to_string())
    }

    #[test]
    fn text_taken_in_must_not_hold_nul_and_ignored_fields_are_not_looked_at() {
        let ok = json!({"name": "a", "tags": ["b"], "note": null, "price": 1.5,
            "extra": {"x\u{0}": ["y\u{0}"]}});
        assert_eq!(
            parse::<Item>(ok).unwrap(),
            Item {
                name: "a".into(),
                tags: vec!["b".into()],
                note: None,
                price: 1.5
            }
        );
        for bad in [
            json!({"name": "a\u{0}", "tags": [], "price": 1}),
            json!({"name": "a", "tags": ["\u{0}"], "price": 1}),
            json!({"name": "a", "tags": [], "note": "\u{0}", "price": 1}),
        ] {
            assert_eq!(parse::<Item>(bad).unwrap_err(), NUL_MESSAGE);
        }
        assert_eq!(
            parse::<HashMap<String, String>>(json!({"k": "\u{0}"})).unwrap_err(),
            NUL_MESSAGE
        );
        // Type errors are the Value's own.
        let err = parse::<Item>(json!({"name": 1, "tags": [], "price": 1})).unwrap_err();
        let direct = Item::deserialize(&json!({"name": 1, "tags": [], "price": 1})).unwrap_err();
        assert_eq!(err, direct.to_string());
    }
}
