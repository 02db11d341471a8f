//! Property tests: `ServerEvent::parse` never panics on arbitrary input, fails only with the
//! right typed error, and the fast audio writer always matches the serde path.

use openai_realtime::live::{
    ClientEvent, ParseError, SERVER_EVENT_TYPES, ServerEvent, write_input_audio_append,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Field names that matter to some event, mixed with arbitrary ones.
fn field_name() -> impl Strategy<Value = String> {
    const KNOWN: &[&str] = &[
        "type",
        "event_id",
        "client_event_id",
        "delta",
        "audio",
        "start_ms",
        "end_ms",
        "offset_ms",
        "session",
        "id",
        "expires_at",
        "model",
        "status",
        "format",
        "rate",
        "voice",
        "input",
        "role",
        "content",
        "text",
        "delegation",
        "target",
        "event",
        "item",
        "usage",
        "seconds",
        "context_window",
        "usage_ratio",
        "reason",
        "error",
        "code",
        "message",
        "param",
        "session_id",
        "item_id",
    ];
    prop_oneof![
        3 => proptest::sample::select(KNOWN).prop_map(str::to_owned),
        1 => "[a-z_]{1,8}",
    ]
}

/// Arbitrary JSON. Floats are quarter-integers so they print and re-parse exactly.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-4000i32..4000).prop_map(|n| Value::from(f64::from(n) / 4.0)),
        "\\PC{0,12}".prop_map(Value::String),
        proptest::sample::select(SERVER_EVENT_TYPES).prop_map(Value::from),
        Just(Value::from("audio/pcmu")),
        Just(Value::from(8000)),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// An object whose `type` is a known server event and whose other fields are arbitrary.
fn known_type_object() -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(SERVER_EVENT_TYPES),
        proptest::collection::btree_map(field_name(), arb_json(), 0..8),
    )
        .prop_map(|(event_type, fields)| {
            let mut map: Map<String, Value> = fields.into_iter().collect();
            map.insert("type".to_owned(), Value::from(event_type));
            Value::Object(map)
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = ServerEvent::parse(&text);
    }

    #[test]
    fn arbitrary_strings_never_panic(text in "\\PC{0,256}") {
        let _ = ServerEvent::parse(&text);
    }

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        let text = value.to_string();
        match ServerEvent::parse(&text) {
            Ok(_) => prop_assert!(value.get("type").is_some_and(Value::is_string)),
            Err(ParseError::InvalidJson(_)) => prop_assert!(!value.is_object()),
            Err(ParseError::MissingType) => {
                prop_assert!(value.is_object() && !value.get("type").is_some_and(Value::is_string));
            }
            Err(ParseError::Malformed { .. }) => prop_assert!(value.is_object()),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn known_types_parse_or_fail_as_malformed_and_reparse_identically(value in known_type_object()) {
        let text = value.to_string();
        let event_type = value["type"].as_str().unwrap_or_default();
        match ServerEvent::parse(&text) {
            Ok(event) => {
                prop_assert_eq!(event.event_type(), event_type);
                // Writing the event back and parsing it again is stable.
                let written = serde_json::to_string(&event).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let again = ServerEvent::parse(&written).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(again, event);
            }
            Err(error) => prop_assert_eq!(error.event_type(), Some(event_type), "{}", error),
        }
    }

    #[test]
    fn fast_audio_writer_matches_serde(audio in "\\PC{0,64}|[A-Za-z0-9+/=]{0,256}|[\\x00-\\x7f]{0,32}") {
        let mut frame = String::from("prefix");
        write_input_audio_append(&mut frame, &audio);
        let expected = format!("prefix{}", ClientEvent::input_audio_append(&audio).to_json());
        prop_assert_eq!(frame, expected);
    }

    #[test]
    fn audio_deltas_round_trip_and_borrow(payload in "[A-Za-z0-9+/]{0,400}={0,2}") {
        let text = format!(r#"{{"type":"session.output_audio.delta","delta":"{payload}"}}"#);
        match ServerEvent::parse(&text) {
            Ok(ServerEvent::OutputAudioDelta(delta)) => {
                prop_assert_eq!(delta.delta.as_ref(), payload.as_str());
                prop_assert!(matches!(delta.delta, std::borrow::Cow::Borrowed(_)));
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
