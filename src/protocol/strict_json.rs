//! Reading a payload into a JSON object that holds every key once, at any depth.
//!
//! JSON leaves a repeated key undefined: serde_json keeps the last value, other readers (a
//! gateway, a broker plugin, a console) keep the first. A payload read one way by them and
//! another way here is a parser differential (`{"actor":"u-3","actor":"u-1"}` would pass a
//! gateway as a member and run here as the host), so a repeated key makes the whole payload
//! refused. serde_json has no switch for it; its maintainers point to a `Deserialize` of one's
//! own, which is this: the same single pass as `serde_json::Value`'s, with the insert checked.
//!
//! Must not touch: what the fields mean (the decoders in `protocol`).

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// A payload that is a JSON object, and the first key found twice in it, if any.
pub(super) struct Object {
    pub map: Map<String, Value>,
    /// Where the first repeated key is, e.g. `actor` or `account.tier`. The map keeps the
    /// first value of that key; the payload must be refused anyway.
    pub repeated: Option<String>,
}

/// Parses `payload` as one JSON object. The `Err` is a sentence for a `bad_request`.
pub(super) fn parse_object(payload: &[u8]) -> Result<Object, String> {
    let text =
        std::str::from_utf8(payload).map_err(|_| "the payload is not UTF-8 text".to_owned())?;
    let repeated = RefCell::new(None);
    let seed = Strict {
        at: Path::Root,
        repeated: &repeated,
    };
    let mut reader = serde_json::Deserializer::from_str(text);
    let value = seed
        .deserialize(&mut reader)
        .and_then(|v| reader.end().map(|()| v))
        .map_err(|e| format!("the payload is not valid JSON ({e})"))?;
    match value {
        Value::Object(map) => Ok(Object {
            map,
            repeated: repeated.into_inner(),
        }),
        _ => Err("the payload must be a JSON object".into()),
    }
}

/// The sentence for a payload with a repeated key.
pub(super) fn repeated_message(path: &str) -> String {
    format!(
        "field '{path}' appears more than once; send each field once (JSON readers disagree on which value counts)"
    )
}

/// Where a value sits in the payload; built on the stack, written out only for a message.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(Path::Root, key) => f.write_str(key),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Reads one value at `at`, noting the first repeated key in `repeated`.
#[derive(Clone, Copy)]
struct Strict<'a> {
    at: Path<'a>,
    repeated: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity, so this is never `Null` in practice.
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut list = Vec::with_capacity(items.size_hint().unwrap_or(0).min(64));
        loop {
            let seed = Strict {
                at: Path::Index(&self.at, list.len()),
                repeated: self.repeated,
            };
            match items.next_element_seed(seed)? {
                Some(value) => list.push(value),
                None => return Ok(Value::Array(list)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            let seed = Strict {
                at: Path::Key(&self.at, &key),
                repeated: self.repeated,
            };
            let value = entries.next_value_seed(seed)?;
            match map.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(first) => {
                    let mut repeated = self.repeated.borrow_mut();
                    if repeated.is_none() {
                        *repeated = Some(Path::Key(&self.at, first.key()).to_string());
                    }
                }
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repeated(text: &str) -> Option<String> {
        parse_object(text.as_bytes()).expect(text).repeated
    }

    #[test]
    fn a_repeated_key_is_found_at_any_depth() {
        let cases = [
            (r#"{"a":1,"b":2}"#, None),
            (r#"{"a":1,"a":1}"#, Some("a")),
            (r#"{"a":1,"b":{"c":1,"d":2,"c":3}}"#, Some("b.c")),
            (r#"{"l":[{"x":1},{"x":1,"x":2}]}"#, Some("l[1].x")),
            (r#"{"a":{"x":1},"b":{"x":1}}"#, None),
            (r#"{"a":[1,1,1],"b":[{"a":1}]}"#, None),
            // The first repeat is reported, however many there are.
            (r#"{"a":1,"b":1,"b":2,"a":2}"#, Some("b")),
        ];
        for (text, want) in cases {
            assert_eq!(repeated(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn values_read_as_serde_json_reads_them() {
        let text = r#"{"s":"é\n","n":-3,"u":18446744073709551615,"f":1.5,"t":true,
            "z":null,"l":[1,"x",{"k":[]}],"o":{}}"#;
        let strict = parse_object(text.as_bytes()).unwrap();
        let plain: Value = serde_json::from_str(text).unwrap();
        assert_eq!(Value::Object(strict.map), plain);
    }

    #[test]
    fn not_an_object_or_not_json_is_said_so() {
        let err = |t: &str| parse_object(t.as_bytes()).err().unwrap_or_default();
        assert!(err("[1]").contains("must be a JSON object"));
        assert!(err("{\"a\":1} x").contains("not valid JSON"));
        assert!(err("{\"a\":").contains("not valid JSON"));
        assert!(parse_object(b"\xff").err().unwrap().contains("UTF-8"));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(err(&format!(r#"{{"a":{deep}}}"#)).contains("recursion limit"));
    }
}
