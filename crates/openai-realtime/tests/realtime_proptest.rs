//! Property tests: `ServerEvent::parse` never panics on arbitrary bytes, arbitrary JSON, or
//! objects whose `type` is a known event with a random body; whatever it accepts serializes
//! and parses again; the hot audio event round-trips exactly on both envelope paths; the fast
//! append writer matches serde for every string.

use std::borrow::Cow;

use openai_realtime::realtime::server_event::OutputAudioDelta;
use openai_realtime::realtime::{ClientEvent, ServerEvent, write_input_audio_append};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Field names real events use, so random bodies often hit the typed parsers.
const FIELD_NAMES: &[&str] = &[
    "type",
    "event_id",
    "response_id",
    "item_id",
    "output_index",
    "content_index",
    "delta",
    "audio_start_ms",
    "audio_end_ms",
    "previous_item_id",
    "item",
    "response",
    "session",
    "part",
    "error",
    "conversation",
    "rate_limits",
    "transcript",
    "text",
    "call_id",
    "name",
    "arguments",
    "usage",
    "logprobs",
    "event",
    "received_at",
    "id",
    "speaker",
    "start",
    "end",
    "obfuscation",
    "role",
    "content",
    "status",
    "audio",
    "format",
    "voice",
    "output",
    "input",
    "turn_detection",
    "code",
    "message",
    "param",
    "seconds",
    "rate",
    "tools",
    "max_output_tokens",
    "tracing",
];

/// Strings that are meaningful somewhere in the protocol (type tags of items, parts, formats…).
const WORDS: &[&str] = &[
    "",
    "message",
    "function_call",
    "function_call_output",
    "user",
    "assistant",
    "system",
    "input_text",
    "input_audio",
    "output_audio",
    "output_text",
    "audio",
    "text",
    "audio/pcmu",
    "audio/pcm",
    "server_vad",
    "semantic_vad",
    "realtime",
    "completed",
    "cancelled",
    "inf",
    "auto",
    "tokens",
    "duration",
    "marin",
    "resp_1",
    "item_1",
    "//7+/w==",
    "é\"\\\n",
];

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        (0u64..5000).prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        prop::sample::select(WORDS).prop_map(|s| Value::String(s.to_owned())),
        any::<String>().prop_map(Value::String),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELD_NAMES), inner), 0..6).prop_map(
                |pairs| {
                    Value::Object(
                        pairs
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect::<Map<String, Value>>(),
                    )
                }
            ),
        ]
    })
}

/// A JSON object body (without `type`) built from protocol field names and random values.
fn arb_body() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec(
        (
            prop_oneof![
                prop::sample::select(FIELD_NAMES).prop_map(str::to_owned),
                "[a-z_]{1,12}",
            ],
            arb_json(),
        ),
        0..10,
    )
}

fn arb_event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(ServerEvent::KNOWN_TYPES).prop_map(str::to_owned),
        1 => "[a-z_.]{0,40}",
        1 => any::<String>(),
    ]
}

/// Writes `{"type":<t>, body…}` with `type` first (fast envelope path) and
/// `{body…, "type":<t>}` with `type` last (two-pass path).
fn render(event_type: &str, body: &[(String, Value)]) -> (String, String) {
    let tag = serde_json::to_string(event_type).unwrap_or_default();
    let members: Vec<String> = body
        .iter()
        .filter(|(k, _)| k != "type")
        .map(|(k, v)| {
            format!(
                "{}:{}",
                serde_json::to_string(k).unwrap_or_default(),
                serde_json::to_string(v).unwrap_or_default()
            )
        })
        .collect();
    let mut first = vec![format!("\"type\":{tag}")];
    first.extend(members.iter().cloned());
    let mut last = members;
    last.push(format!("\"type\":{tag}"));
    (
        format!("{{{}}}", first.join(",")),
        format!("{{{}}}", last.join(",")),
    )
}

/// Whatever parses must report the right type, serialize, and parse again to the same type.
fn check_accepted(text: &str, expected_type: Option<&str>) {
    let Ok(event) = ServerEvent::parse(text) else {
        return;
    };
    if let Some(t) = expected_type {
        assert_eq!(event.event_type(), t);
    }
    let _ = event.event_id();
    let out = event.to_json();
    let again = ServerEvent::parse(&out).unwrap_or_else(|e| {
        panic!("re-parse of accepted event failed: {e}\nin:  {text}\nout: {out}")
    });
    assert_eq!(again.event_type(), event.event_type());
    let owned = event.into_owned();
    assert_eq!(owned.event_type(), again.event_type());
}

/// Valid events of varied shapes; mutated below so nested parsers see near-valid input.
const SAMPLES: &[&str] = &[
    r#"{"type":"response.output_audio.delta","event_id":"e","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"AAAA"}"#,
    r#"{"type":"input_audio_buffer.speech_started","event_id":"e","audio_start_ms":10,"item_id":"i"}"#,
    r#"{"type":"response.done","event_id":"e","response":{"id":"resp_1","object":"realtime.response","status":"cancelled","status_details":{"type":"cancelled","reason":"turn_detected"},"output":[{"id":"fc","type":"function_call","status":"completed","name":"end_call","call_id":"c","arguments":"{}"},{"id":"m","type":"message","role":"assistant","content":[{"type":"output_audio","transcript":"hi"},{"type":"text","text":"t"}]}],"max_output_tokens":"inf","audio":{"output":{"format":{"type":"audio/pcmu"},"voice":"marin"}},"usage":{"total_tokens":3,"input_token_details":{"cached_tokens":1,"cached_tokens_details":{"text_tokens":1}},"output_token_details":{"audio_tokens":2}}}}"#,
    r#"{"type":"session.updated","event_id":"e","session":{"type":"realtime","id":"sess_1","object":"realtime.session","expires_at":1,"model":"gpt-realtime-2.1","instructions":"x","output_modalities":["audio"],"audio":{"input":{"format":{"type":"audio/pcm","rate":24000},"turn_detection":{"type":"server_vad","threshold":0.5,"idle_timeout_ms":null},"transcription":{"model":"whisper-1","language":"en"},"noise_reduction":{"type":"far_field"}},"output":{"format":{"type":"audio/pcmu"},"voice":{"id":"voice_1"},"speed":1.0}},"tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"f"},"max_output_tokens":100,"truncation":{"type":"retention_ratio","retention_ratio":0.5,"token_limits":{"post_instructions":10}},"tracing":{"workflow_name":"w"},"prompt":{"id":"p","variables":{"a":"b"}},"reasoning":{"effort":"low"},"include":["item.input_audio_transcription.logprobs"]}}"#,
    r#"{"type":"conversation.item.added","event_id":"e","previous_item_id":null,"item":{"id":"i","type":"message","status":"completed","role":"user","content":[{"type":"input_audio","transcript":"x"},{"type":"input_text","text":"y"},{"type":"input_image","image_url":"data:image/png;base64,AA","detail":"low"}]}}"#,
    r#"{"type":"conversation.item.done","event_id":"e","item":{"type":"function_call_output","call_id":"c","output":"{}"}}"#,
    r#"{"type":"response.content_part.added","event_id":"e","response_id":"r","item_id":"i","output_index":0,"content_index":0,"part":{"type":"audio","transcript":""}}"#,
    r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"invalid_event","message":"m","param":null,"event_id":"x"}}"#,
    r#"{"type":"conversation.item.input_audio_transcription.completed","event_id":"e","item_id":"i","content_index":0,"transcript":"t","usage":{"type":"tokens","input_tokens":1,"output_tokens":2,"total_tokens":3,"input_token_details":{"audio_tokens":1}},"logprobs":[{"token":"a","bytes":[97],"logprob":-0.1}],"languages":[{"code":"en"}]}"#,
    r#"{"type":"rate_limits.updated","event_id":"e","rate_limits":[{"name":"requests","limit":1,"remaining":0,"reset_seconds":1.5}]}"#,
    r#"{"type":"response.function_call_arguments.done","event_id":"e","response_id":"r","item_id":"i","output_index":0,"call_id":"c","name":"n","arguments":"{}"}"#,
    r#"{"type":"input_audio_buffer.dtmf_event_received","event":"5","received_at":1}"#,
];

/// Every JSON pointer inside `v` (objects and arrays), including the root.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    Insert(usize, String, Value),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), arb_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        2 => any::<usize>().prop_map(Mutation::Remove),
        1 => (any::<usize>(), prop::sample::select(FIELD_NAMES), arb_json())
            .prop_map(|(i, k, v)| Mutation::Insert(i, k.to_owned(), v)),
    ]
}

fn mutate(mut v: Value, mutation: &Mutation) -> Value {
    let mut ps = Vec::new();
    pointers(&v, String::new(), &mut ps);
    // Never touch the top-level `type`: that is covered by the random-type properties.
    ps.retain(|p| p != "/type");
    if ps.is_empty() {
        return v;
    }
    let pick = |i: usize| ps[i % ps.len()].clone();
    match mutation {
        Mutation::Replace(i, new) => {
            if let Some(slot) = v.pointer_mut(&pick(*i)) {
                *slot = new.clone();
            }
        }
        Mutation::Remove(i) => {
            let p = pick(*i);
            let (parent, key) = p.rsplit_once('/').unwrap_or(("", ""));
            match v.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(&key.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(a)) => {
                    if let Ok(idx) = key.parse::<usize>()
                        && idx < a.len()
                    {
                        a.remove(idx);
                    }
                }
                _ => {}
            }
        }
        Mutation::Insert(i, key, new) => {
            if let Some(Value::Object(m)) = v.pointer_mut(&pick(*i)) {
                m.insert(key.clone(), new.clone());
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        check_accepted(&text, None);
    }

    #[test]
    fn known_type_prefix_with_garbage_never_panics(
        event_type in prop::sample::select(ServerEvent::KNOWN_TYPES),
        tail in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let text = format!("{{\"type\":\"{event_type}\"{}", String::from_utf8_lossy(&tail));
        check_accepted(&text, Some(event_type));
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let text = serde_json::to_string(&v).unwrap_or_default();
        check_accepted(&text, None);
    }

    #[test]
    fn random_bodies_for_known_and_unknown_types(event_type in arb_event_type(), body in arb_body()) {
        let (type_first, type_last) = render(&event_type, &body);
        check_accepted(&type_first, Some(&event_type));
        check_accepted(&type_last, Some(&event_type));
        // Both envelope paths agree.
        match (ServerEvent::parse(&type_first), ServerEvent::parse(&type_last)) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a.event_type(), b.event_type()),
            (Err(_), Err(_)) => {}
            // Member order can change which error serde reports first, never Ok vs Err,
            // except for duplicate keys (first vs last occurrence) which `render` never emits
            // for `type`.
            (a, b) => prop_assert!(false, "paths disagree: {:?} vs {:?}", a.map(|e| e.event_type().to_owned()), b.map(|e| e.event_type().to_owned())),
        }
    }

    #[test]
    fn truncated_valid_events_never_panic(cut in 0usize..400) {
        let text = r#"{"type":"response.done","event_id":"e","response":{"id":"resp_1","status":"completed","output":[{"id":"fc","type":"function_call","status":"completed","name":"end_call","call_id":"c","arguments":"{}"},{"type":"message","role":"assistant","content":[{"type":"output_audio","transcript":"hi"}]}],"usage":{"total_tokens":3}}}"#;
        let end = cut.min(text.len());
        check_accepted(&text[..end], None);
    }

    #[test]
    fn audio_delta_round_trips_on_both_paths(
        event_id in any::<String>(),
        response_id in any::<String>(),
        item_id in any::<String>(),
        output_index in any::<u32>(),
        content_index in any::<u32>(),
        delta in "[A-Za-z0-9+/]{0,64}={0,2}",
    ) {
        let event = ServerEvent::OutputAudioDelta(OutputAudioDelta {
            event_id: Cow::Owned(event_id),
            response_id: Cow::Owned(response_id),
            item_id: Cow::Owned(item_id),
            output_index,
            content_index,
            delta: Cow::Owned(delta.clone()),
        });
        let text = event.to_json();
        let parsed = ServerEvent::parse(&text).expect("own output parses");
        prop_assert_eq!(&parsed, &event);
        let ServerEvent::OutputAudioDelta(d) = &parsed else { unreachable!() };
        prop_assert!(matches!(d.delta, Cow::Borrowed(_)), "base64 delta must be borrowed");
        // Move `type` to the end: the two-pass path gives the same event.
        let v: Value = serde_json::from_str(&text).expect("json");
        let body: Vec<(String, Value)> = v.as_object().expect("object").iter()
            .map(|(k, v)| (k.clone(), v.clone())).collect();
        let (_, type_last) = render("response.output_audio.delta", &body);
        prop_assert_eq!(ServerEvent::parse(&type_last).expect("type last"), event);
    }

    #[test]
    fn fast_append_writer_matches_serde_for_any_string(audio in any::<String>()) {
        let mut buf = String::new();
        write_input_audio_append(&mut buf, &audio);
        let serde = serde_json::to_string(&ClientEvent::input_audio_append(audio.as_str())).expect("serde");
        prop_assert_eq!(buf, serde);
    }

    #[test]
    fn mutated_valid_events_never_panic(
        sample in prop::sample::select(SAMPLES),
        mutations in prop::collection::vec(arb_mutation(), 1..4),
    ) {
        let mut v: Value = serde_json::from_str(sample).expect("sample JSON");
        for m in &mutations {
            v = mutate(v, m);
        }
        let event_type = v["type"].as_str().unwrap_or_default().to_owned();
        let body: Vec<(String, Value)> = v.as_object().expect("object").iter()
            .map(|(k, v)| (k.clone(), v.clone())).collect();
        let (type_first, type_last) = render(&event_type, &body);
        check_accepted(&type_first, Some(&event_type));
        check_accepted(&type_last, Some(&event_type));
        prop_assert_eq!(
            ServerEvent::parse(&type_first).is_ok(),
            ServerEvent::parse(&type_last).is_ok()
        );
    }

    #[test]
    fn unmutated_samples_parse_typed(sample in prop::sample::select(SAMPLES)) {
        let event = ServerEvent::parse(sample).expect("sample parses");
        let typed = !matches!(event, ServerEvent::Unknown { .. });
        prop_assert!(typed, "sample parsed as Unknown: {}", sample);
    }
}
