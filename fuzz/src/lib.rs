//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use serde_json::Value;

/// Structural JSON equality that tolerates the last-bits drift of floating-point numbers.
///
/// serde_json (built without its `float_roundtrip` feature, as in the product) parses some
/// float literals one ulp away from the correctly rounded value, so a float can change by an
/// ulp through a serialize → parse trip, e.g. the literal
/// `60006666666666666666666666666600000000000` parses to `6.000666666666668e40`, which
/// re-parses to `6.000666666666667e40`. Everything else must match exactly.
pub fn json_eq_modulo_float_ulps(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(x, y)| json_eq_modulo_float_ulps(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq_modulo_float_ulps(v, w)))
        }
        _ => a == b,
    }
}

/// Asserts that two serializations of the same event are the same JSON up to float ulps.
///
/// # Panics
///
/// When they differ (that is the point: libFuzzer records the input).
pub fn assert_same_json(first: &str, second: &str) {
    let a: Value = serde_json::from_str(first).expect("our own serialization is JSON");
    let b: Value = serde_json::from_str(second).expect("our own serialization is JSON");
    assert!(
        json_eq_modulo_float_ulps(&a, &b),
        "serialization is not a fixed point:\n first: {first}\nsecond: {second}"
    );
}

/// True when some JSON object in `text` repeats a member name (at any depth).
///
/// Such objects are legal but ill-defined JSON (RFC 8259 §4: "the behavior of software that
/// receives such an object is unpredictable"), and serde reads them two ways: typed structs
/// reject a repeated field, while `serde_json::Value` silently keeps the last one. The
/// parsers' raw fallbacks (unknown events and items kept as `Value`) therefore legitimately
/// change meaning through a serialize → parse round trip for such input, e.g.
/// `{"type":"m","type":"error"}` is an unknown event named `m` whose raw JSON says `error`.
/// The round-trip invariants are only checked on input without repeated names.
pub fn has_duplicate_keys(text: &str) -> bool {
    serde_json::from_str::<Unique>(text).is_err_and(|e| e.to_string().starts_with(DUPLICATE))
}

const DUPLICATE: &str = "repeated object member";

/// Deserializes any JSON value, failing on the first object that repeats a member name.
struct Unique;

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Unique, E> {
        Ok(Unique)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(serde::de::Error::custom(DUPLICATE));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}
