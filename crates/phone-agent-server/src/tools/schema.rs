//! A documented subset of JSON Schema (draft 2020-12 keywords), enough for function-tool
//! parameters: checked once at startup ([`check_schema`]) and applied to every call's
//! arguments before a webhook is called ([`validate`]).
//!
//! Why not a general validator: the `jsonschema` crate pulls a regex engine, an HTTP
//! resolver and a few dozen crates for what tool parameters use (types, properties,
//! required, enums, bounds). The subset is small and exact:
//!
//! * `type` (a name or a list of names: `object`, `array`, `string`, `number`, `integer`,
//!   `boolean`, `null`), `enum`, `const`;
//! * objects: `properties`, `required`, `additionalProperties` (`false` or a schema),
//!   `minProperties`, `maxProperties`;
//! * arrays: `items` (one schema), `minItems`, `maxItems`, `uniqueItems`;
//! * strings: `minLength`, `maxLength` (in characters);
//! * numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`;
//! * `allOf`, `anyOf`, `oneOf`, `not`.
//!
//! Annotations (`description`, `title`, `default`, `examples`, `$schema`, …) are ignored, and
//! so are `pattern` and `format` (accepted, **not checked**: there is no regex engine here).
//! `$ref`/`$defs` are refused at startup, so nothing is silently unchecked.

use serde_json::Value;

const TYPES: &[&str] = &[
    "object", "array", "string", "number", "integer", "boolean", "null",
];

/// Checks that `schema` is a JSON Schema this module can apply, for tool parameters: an
/// object schema (`"type": "object"`). The error names the offending path.
pub fn check_parameters(schema: &Value) -> Result<(), String> {
    check_schema(schema, "")?;
    match schema.get("type") {
        Some(Value::String(t)) if t == "object" => Ok(()),
        _ => Err("tool parameters must be an object schema (\"type\": \"object\")".into()),
    }
}

fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn non_negative_int(v: &Value) -> bool {
    v.as_u64().is_some()
}

/// Checks that `schema` is a schema of the supported subset.
pub fn check_schema(schema: &Value, path: &str) -> Result<(), String> {
    let Value::Object(map) = schema else {
        if schema.is_boolean() {
            return Ok(());
        }
        return Err(format!(
            "{}: a schema must be an object (or true/false), not {schema}",
            if path.is_empty() { "parameters" } else { path }
        ));
    };
    for (key, value) in map {
        let here = at(path, key);
        match key.as_str() {
            "type" => {
                let names: Vec<&Value> = match value {
                    Value::String(_) => vec![value],
                    Value::Array(list) if !list.is_empty() => list.iter().collect(),
                    _ => return Err(format!("{here}: must be a type name or a list of them")),
                };
                for name in names {
                    match name.as_str() {
                        Some(n) if TYPES.contains(&n) => {}
                        _ => {
                            return Err(format!(
                                "{here}: {name} is not a JSON Schema type (one of {})",
                                TYPES.join(", ")
                            ));
                        }
                    }
                }
            }
            "properties" => {
                let Value::Object(props) = value else {
                    return Err(format!("{here}: must be an object of schemas"));
                };
                for (name, sub) in props {
                    check_schema(sub, &at(&here, name))?;
                }
            }
            "required" => {
                let ok = value
                    .as_array()
                    .is_some_and(|l| l.iter().all(Value::is_string));
                if !ok {
                    return Err(format!("{here}: must be a list of property names"));
                }
            }
            "additionalProperties" | "items" | "not" => check_schema(value, &here)?,
            "allOf" | "anyOf" | "oneOf" => {
                let Some(list) = value.as_array().filter(|l| !l.is_empty()) else {
                    return Err(format!("{here}: must be a non-empty list of schemas"));
                };
                for (i, sub) in list.iter().enumerate() {
                    check_schema(sub, &format!("{here}[{i}]"))?;
                }
            }
            "enum" if !value.is_array() => return Err(format!("{here}: must be a list")),
            "minLength" | "maxLength" | "minItems" | "maxItems" | "minProperties"
            | "maxProperties"
                if !non_negative_int(value) =>
            {
                return Err(format!("{here}: must be a non-negative integer"));
            }
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum"
                if !value.is_number() =>
            {
                return Err(format!("{here}: must be a number"));
            }
            "multipleOf" if !value.as_f64().is_some_and(|m| m > 0.0) => {
                return Err(format!("{here}: must be a number greater than 0"));
            }
            "uniqueItems" if !value.is_boolean() => {
                return Err(format!("{here}: must be true or false"));
            }
            "$ref" | "$defs" | "definitions" | "$dynamicRef" | "patternProperties"
            | "prefixItems" | "if" | "then" | "else" | "dependentSchemas" => {
                return Err(format!(
                    "{here}: {key} is not supported by the built-in validator (see the \
                     README's list of JSON Schema keywords)"
                ));
            }
            // Annotations and unchecked assertions (`pattern`, `format`).
            _ => {}
        }
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, name: &str) -> bool {
    match name {
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        "number" => v.is_number(),
        other => type_name(v) == other,
    }
}

/// Validates `instance` against `schema` (which passed [`check_schema`]). The error names
/// the first offending path, e.g. `party_size: expected integer, got string`.
pub fn validate(schema: &Value, instance: &Value) -> Result<(), String> {
    validate_at(schema, instance, "")
}

fn validate_at(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    let here = |s: String| {
        if path.is_empty() {
            s
        } else {
            format!("{path}: {s}")
        }
    };
    let map = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(here("no value is allowed here".into())),
        Value::Object(map) => map,
        _ => return Ok(()),
    };
    if let Some(t) = map.get("type") {
        let names: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(l) => l.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.iter().any(|n| has_type(v, n)) {
            return Err(here(format!(
                "expected {}, got {}",
                names.join(" or "),
                type_name(v)
            )));
        }
    }
    if let Some(Value::Array(options)) = map.get("enum")
        && !options.iter().any(|o| json_eq(o, v))
    {
        return Err(here(format!(
            "{v} is not one of {}",
            Value::Array(options.clone())
        )));
    }
    if let Some(c) = map.get("const")
        && !json_eq(c, v)
    {
        return Err(here(format!("must be {c}")));
    }
    match v {
        Value::Object(obj) => {
            if let Some(Value::Array(required)) = map.get("required") {
                for name in required.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(name) {
                        return Err(here(format!("missing required property {name:?}")));
                    }
                }
            }
            let props = map.get("properties").and_then(Value::as_object);
            for (name, value) in obj {
                let sub_path = at(path, name);
                match props.and_then(|p| p.get(name)) {
                    Some(sub) => validate_at(sub, value, &sub_path)?,
                    None => match map.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            return Err(here(format!("unexpected property {name:?}")));
                        }
                        Some(extra) => validate_at(extra, value, &sub_path)?,
                        None => {}
                    },
                }
            }
            bound(
                map,
                "minProperties",
                obj.len(),
                |n, m| n >= m,
                &here,
                "properties",
            )?;
            bound(
                map,
                "maxProperties",
                obj.len(),
                |n, m| n <= m,
                &here,
                "properties",
            )?;
        }
        Value::Array(items) => {
            if let Some(item_schema) = map.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(item_schema, item, &format!("{path}[{i}]"))?;
                }
            }
            bound(map, "minItems", items.len(), |n, m| n >= m, &here, "items")?;
            bound(map, "maxItems", items.len(), |n, m| n <= m, &here, "items")?;
            if map.get("uniqueItems") == Some(&Value::Bool(true)) {
                for (i, a) in items.iter().enumerate() {
                    if items[..i].iter().any(|b| json_eq(a, b)) {
                        return Err(here("items must be unique".into()));
                    }
                }
            }
        }
        Value::String(s) => {
            let chars = s.chars().count();
            bound(map, "minLength", chars, |n, m| n >= m, &here, "characters")?;
            bound(map, "maxLength", chars, |n, m| n <= m, &here, "characters")?;
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let limit = |k: &str| map.get(k).and_then(Value::as_f64);
            if let Some(m) = limit("minimum")
                && x < m
            {
                return Err(here(format!("{n} is less than the minimum {m}")));
            }
            if let Some(m) = limit("maximum")
                && x > m
            {
                return Err(here(format!("{n} is greater than the maximum {m}")));
            }
            if let Some(m) = limit("exclusiveMinimum")
                && x <= m
            {
                return Err(here(format!("{n} must be greater than {m}")));
            }
            if let Some(m) = limit("exclusiveMaximum")
                && x >= m
            {
                return Err(here(format!("{n} must be less than {m}")));
            }
            if let Some(m) = limit("multipleOf") {
                let q = x / m;
                if (q - q.round()).abs() > 1e-9 {
                    return Err(here(format!("{n} is not a multiple of {m}")));
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Array(all)) = map.get("allOf") {
        for sub in all {
            validate_at(sub, v, path)?;
        }
    }
    if let Some(Value::Array(any)) = map.get("anyOf")
        && !any.iter().any(|sub| validate_at(sub, v, path).is_ok())
    {
        return Err(here("matches none of anyOf".into()));
    }
    if let Some(Value::Array(one)) = map.get("oneOf") {
        let matching = one
            .iter()
            .filter(|sub| validate_at(sub, v, path).is_ok())
            .count();
        if matching != 1 {
            return Err(here(format!(
                "matches {matching} of oneOf, not exactly one"
            )));
        }
    }
    if let Some(not) = map.get("not")
        && validate_at(not, v, path).is_ok()
    {
        return Err(here("matches a schema it must not match (not)".into()));
    }
    Ok(())
}

fn bound(
    map: &serde_json::Map<String, Value>,
    key: &str,
    actual: usize,
    ok: impl Fn(u64, u64) -> bool,
    here: &impl Fn(String) -> String,
    unit: &str,
) -> Result<(), String> {
    if let Some(limit) = map.get(key).and_then(Value::as_u64)
        && !ok(actual as u64, limit)
    {
        return Err(here(format!("{actual} {unit}, {key} is {limit}")));
    }
    Ok(())
}

/// JSON equality where `1` equals `1.0`.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| json_eq(a, b)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn booking() -> Value {
        json!({
            "type": "object",
            "properties": {
                "day": {"type": "string", "enum": ["mon", "tue"]},
                "party_size": {"type": "integer", "minimum": 1, "maximum": 12},
                "name": {"type": "string", "minLength": 1, "maxLength": 40},
                "notes": {"type": ["string", "null"]},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
            },
            "required": ["day", "party_size"],
            "additionalProperties": false
        })
    }

    #[test]
    fn accepts_valid_arguments() {
        let s = booking();
        check_parameters(&s).unwrap();
        validate(&s, &json!({"day": "mon", "party_size": 4})).unwrap();
        validate(
            &s,
            &json!({"day": "tue", "party_size": 4.0, "notes": null, "tags": ["a"]}),
        )
        .unwrap();
    }

    #[test]
    fn rejects_invalid_arguments_naming_the_path() {
        let s = booking();
        let err = |v: Value| validate(&s, &v).unwrap_err();
        assert_eq!(
            err(json!({"day": "mon"})),
            "missing required property \"party_size\""
        );
        assert_eq!(
            err(json!({"day": "mon", "party_size": "four"})),
            "party_size: expected integer, got string"
        );
        assert_eq!(
            err(json!({"day": "mon", "party_size": 13})),
            "party_size: 13 is greater than the maximum 12"
        );
        assert_eq!(
            err(json!({"day": "wed", "party_size": 2})),
            "day: \"wed\" is not one of [\"mon\",\"tue\"]"
        );
        assert_eq!(
            err(json!({"day": "mon", "party_size": 2, "x": 1})),
            "unexpected property \"x\""
        );
        assert_eq!(
            err(json!({"day": "mon", "party_size": 2, "tags": ["a", 1]})),
            "tags[1]: expected string, got integer"
        );
        assert_eq!(err(json!([])), "expected object, got array");
    }

    #[test]
    fn rejects_schemas_that_are_not_json_schema() {
        let bad = |v: Value| check_parameters(&v).unwrap_err();
        assert!(bad(json!("a string")).contains("must be an object"));
        assert!(bad(json!({"type": "strng"})).contains("\"strng\" is not a JSON Schema type"));
        assert!(
            bad(json!({"type": "object", "properties": {"a": {"type": "nope"}}}))
                .starts_with("properties.a.type")
        );
        assert!(bad(json!({"type": "object", "properties": 5})).starts_with("properties"));
        assert!(bad(json!({"type": "object", "required": "a"})).starts_with("required"));
        assert!(bad(json!({"type": "object", "$ref": "#/x"})).contains("not supported"));
        assert!(bad(json!({"type": "string"})).contains("object schema"));
    }

    #[test]
    fn combinators() {
        let s = json!({"anyOf": [{"type": "string"}, {"type": "integer"}]});
        check_schema(&s, "").unwrap();
        validate(&s, &json!("x")).unwrap();
        validate(&s, &json!(3)).unwrap();
        assert!(validate(&s, &json!(true)).is_err());
        let s = json!({"oneOf": [{"type": "number"}, {"type": "integer"}]});
        assert!(validate(&s, &json!(3)).is_err());
        validate(&s, &json!(3.5)).unwrap();
    }
}
