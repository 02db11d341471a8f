//! Property tests: the parser never panics, the writers always produce valid JSON that
//! round-trips, and signatures/TwiML escaping hold for arbitrary input.

use std::borrow::Cow;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use twilio_media::signature::RequestValidator;
use twilio_media::stream::{self, Event, Outbound};
use twilio_media::twiml::{Response, Say, Stream};

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".*".prop_map(Value::String),
        "[0-9]{1,25}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names: mostly the ones the parser looks at, sometimes anything.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "event", "sequenceNumber", "streamSid", "protocol", "version", "start", "media",
            "mark", "dtmf", "stop", "track", "chunk", "timestamp", "payload", "name", "digit",
            "accountSid", "callSid", "tracks", "customParameters", "mediaFormat", "encoding",
            "sampleRate", "channels",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,8}",
    ]
}

fn event_name() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => prop::sample::select(vec!["connected", "start", "media", "mark", "dtmf", "stop"])
            .prop_map(Value::from),
        1 => ".{0,10}".prop_map(Value::from),
        1 => json_value(),
    ]
}

/// Objects shaped like Twilio messages, with arbitrary (often wrong) field values.
fn message_like() -> impl Strategy<Value = Value> {
    (
        event_name(),
        prop::collection::btree_map(field_name(), json_value(), 0..8),
    )
        .prop_map(|(event, fields)| {
            let mut map: Map<String, Value> = fields.into_iter().collect();
            map.insert("event".into(), event);
            Value::Object(map)
        })
}

/// Checks the invariants of any successful parse.
fn check_parsed(text: &str, event: &Event<'_>) {
    if let Event::Media(m) = event {
        if let Some(range) = m.payload_range(text) {
            assert_eq!(&text[range], m.payload);
        }
        let _ = m.decoded_len();
    }
    if let Event::Unknown { raw, .. } = event {
        assert_eq!(
            raw,
            &serde_json::from_str::<Value>(text).expect("unknown events are valid JSON")
        );
    }
    let _ = (event.name(), event.stream_sid(), event.sequence_number());
}

fn no_escape_needed(s: &str) -> bool {
    !s.chars().any(|c| c == '"' || c == '\\' || c < ' ')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(event) = stream::parse(&text) {
            check_parsed(&text, &event);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        let text = value.to_string();
        if let Ok(event) = stream::parse(&text) {
            check_parsed(&text, &event);
        }
    }

    #[test]
    fn message_like_json_never_panics(value in message_like(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&value).expect("serializable")
        } else {
            value.to_string()
        };
        match stream::parse(&text) {
            Ok(event) => {
                check_parsed(&text, &event);
                // Events we do not know are always `Unknown`, never errors.
                if let Some(tag) = value["event"].as_str() {
                    let known = ["connected", "start", "media", "mark", "dtmf", "stop"].contains(&tag);
                    prop_assert_eq!(matches!(event, Event::Unknown { .. }), !known);
                }
            }
            Err(e) => {
                let tag = value["event"].as_str();
                // Only known events (or a missing/ill-typed tag) can fail.
                prop_assert!(
                    tag.is_none_or(|t| ["connected", "start", "media", "mark", "dtmf", "stop"].contains(&t)),
                    "{} failed: {}", text, e
                );
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn media_round_trips_any_payload(
        payload in ".*",
        seq in any::<u64>(),
        chunk in any::<u64>(),
        ts in any::<u64>(),
        numbers in any::<bool>(),
    ) {
        let counter = |n: u64| if numbers { json!(n) } else { json!(n.to_string()) };
        let text = json!({
            "event": "media",
            "sequenceNumber": counter(seq),
            "streamSid": "MZ00000000000000000000000000000001",
            "media": {"track": "inbound", "chunk": counter(chunk), "timestamp": counter(ts), "payload": payload},
        })
        .to_string();
        let Ok(Event::Media(m)) = stream::parse(&text) else {
            panic!("not media: {text}");
        };
        prop_assert_eq!(&m.payload, &payload);
        prop_assert_eq!((m.sequence_number, m.chunk, m.timestamp), (seq, chunk, ts));
        // Borrowed exactly when JSON needed no escapes (serde_json escapes only these).
        prop_assert_eq!(matches!(m.payload, Cow::Borrowed(_)), no_escape_needed(&payload));
    }

    #[test]
    fn outbound_writers_produce_valid_round_tripping_json(sid in ".*", text in ".*") {
        for message in [
            Outbound::media(sid.as_str(), text.as_str()),
            Outbound::mark(sid.as_str(), text.as_str()),
            Outbound::clear(sid.as_str()),
        ] {
            let written = message.to_json();
            // Byte-identical to serde_json's own output for the Serialize impl.
            prop_assert_eq!(&written, &serde_json::to_string(&message).expect("serializable"));
            let value: Value = serde_json::from_str(&written).expect("valid JSON");
            let expected = match &message {
                Outbound::Media { .. } => json!({"event": "media", "streamSid": sid, "media": {"payload": text}}),
                Outbound::Mark { .. } => json!({"event": "mark", "streamSid": sid, "mark": {"name": text}}),
                Outbound::Clear { .. } => json!({"event": "clear", "streamSid": sid}),
            };
            prop_assert_eq!(value, expected);
            let mut bytes = Vec::new();
            message.write(&mut bytes);
            prop_assert_eq!(bytes, written.into_bytes());
        }
        // A mark's echo parses back to the same name.
        let echo = Outbound::mark(sid.as_str(), text.as_str())
            .to_json()
            .replacen(r#"{"event":"mark","#, r#"{"event":"mark","sequenceNumber":"1","#, 1);
        let Ok(Event::Mark(mark)) = stream::parse(&echo) else {
            panic!("not a mark: {echo}");
        };
        prop_assert_eq!(mark.name, text);
        prop_assert_eq!(mark.stream_sid.as_str(), sid);
    }

    #[test]
    fn signatures_validate_regardless_of_order(
        token in ".{0,40}",
        path in "[a-z/]{0,20}",
        mut params in prop::collection::vec((".{0,6}", ".{0,6}"), 0..8),
        port in any::<bool>(),
    ) {
        let validator = RequestValidator::new(&token);
        let url = format!("https://h.example{}/{path}", if port { ":443" } else { "" });
        let signature = validator.compute(&url, &params);
        prop_assert!(validator.validate(&url, &params, &signature));
        // Without/with the default port, in any order, duplicates included.
        let other = if port { format!("https://h.example/{path}") } else { format!("https://h.example:443/{path}") };
        params.reverse();
        if let Some(first) = params.first().cloned() {
            params.push(first);
        }
        prop_assert!(validator.validate(&other, &params, &signature));
        let wrong_url = format!("{url}x");
        prop_assert!(!validator.validate(&wrong_url, &params, &signature));
    }

    #[test]
    fn twiml_escaping_round_trips(text in ".*") {
        let xml = Response::new()
            .connect(Stream::new("wss://h.example/m").parameter("p", text.as_str()))
            .say(Say::new(text.as_str()))
            .to_xml();
        // What XML 1.0 can carry survives, via a minimal unescaper.
        let keep: String = text
            .chars()
            .filter(|&c| !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}'))
            .collect();
        let unescape = |s: &str| {
            s.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&#9;", "\t")
                .replace("&#10;", "\n")
                .replace("&#13;", "\r")
                .replace("&amp;", "&")
        };
        let attr = xml
            .split(r#"<Parameter name="p" value=""#)
            .nth(1)
            .and_then(|rest| rest.split("\"/>").next())
            .expect("parameter present");
        prop_assert!(!attr.contains(['<', '>', '"', '\'', '\t', '\n', '\r']));
        prop_assert_eq!(unescape(attr), keep.clone());
        let body = xml
            .split("<Say>")
            .nth(1)
            .and_then(|rest| rest.split("</Say>").next());
        match body {
            Some(body) => {
                prop_assert!(!body.contains(['<', '>', '"', '\'', '\r']));
                prop_assert_eq!(unescape(body), keep);
            }
            None => prop_assert!(keep.is_empty() && xml.contains("<Say/>")),
        }
    }
}
