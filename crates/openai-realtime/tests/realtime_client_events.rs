//! Client events (PROTOCOLS §6.5): every event name, byte-exact serialization, equality with
//! the reference JSON, and parse-back through `Deserialize`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use openai_realtime::realtime::{
    ClientEvent, ConversationMode, Item, ItemReference, MaxOutputTokens, Modality, ResponseAudio,
    ResponseAudioOutput, ResponseCreateParams, ResponseInput, SessionConfig, ToolChoice, Voice,
    write_input_audio_append,
};
use serde_json::{Value, json};

fn value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON ({e}): {text}"))
}

/// Serializes `event`, compares byte-for-byte with `expected`, checks it is the same JSON value
/// as `expected`, and parses it back to an equal event.
fn check(event: &ClientEvent<'_>, expected: &str) {
    let json = event.to_json();
    assert_eq!(json, expected);
    assert_eq!(value(&json), value(expected));
    assert!(
        !json.contains("null"),
        "client events never send null here: {json}"
    );
    let back: ClientEvent<'_> = serde_json::from_str(&json).expect("parse back");
    assert_eq!(&back, event);
    assert_eq!(
        back.event_type(),
        value(expected)["type"].as_str().unwrap_or_default()
    );
    let mut buf = String::from("prefix:");
    event.write_json(&mut buf);
    assert_eq!(buf, format!("prefix:{expected}"));
}

#[test]
fn every_client_event() {
    let greeting = ResponseCreateParams::instructions(
        "Greet the caller: 'Thanks for calling Acme, how can I help?'",
    );
    let session = SessionConfig {
        instructions: Some("Be brief.".into()),
        ..SessionConfig::default()
    };
    let cases: Vec<(ClientEvent<'_>, &str)> = vec![
        (
            ClientEvent::session_update(&session),
            r#"{"type":"session.update","session":{"type":"realtime","instructions":"Be brief."}}"#,
        ),
        (
            ClientEvent::input_audio_append("/////w=="),
            r#"{"type":"input_audio_buffer.append","audio":"/////w=="}"#,
        ),
        (
            ClientEvent::input_audio_append("AAAA").with_event_id("evt_1"),
            r#"{"type":"input_audio_buffer.append","event_id":"evt_1","audio":"AAAA"}"#,
        ),
        (
            ClientEvent::input_audio_commit(),
            r#"{"type":"input_audio_buffer.commit"}"#,
        ),
        (
            ClientEvent::input_audio_clear().with_event_id("c1"),
            r#"{"type":"input_audio_buffer.clear","event_id":"c1"}"#,
        ),
        (
            ClientEvent::item_create(Item::function_call_output("call_001", r#"{"ok":true}"#)),
            r#"{"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"call_001","output":"{\"ok\":true}"}}"#,
        ),
        (
            ClientEvent::ConversationItemCreate {
                event_id: Some(Cow::Borrowed("dtmf-1")),
                previous_item_id: Some(Cow::Borrowed("root")),
                item: Cow::Owned(Item::user_text("caller pressed 1")),
            },
            r#"{"type":"conversation.item.create","event_id":"dtmf-1","previous_item_id":"root","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"caller pressed 1"}]}}"#,
        ),
        (
            ClientEvent::item_create(Item::system_text("The caller is a VIP.")),
            r#"{"type":"conversation.item.create","item":{"type":"message","role":"system","content":[{"type":"input_text","text":"The caller is a VIP."}]}}"#,
        ),
        (
            ClientEvent::item_create(Item::assistant_text("Noted.")),
            r#"{"type":"conversation.item.create","item":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Noted."}]}}"#,
        ),
        (
            ClientEvent::item_retrieve("item_003"),
            r#"{"type":"conversation.item.retrieve","item_id":"item_003"}"#,
        ),
        (
            ClientEvent::truncate("item_abc", 0, 1240),
            r#"{"type":"conversation.item.truncate","item_id":"item_abc","content_index":0,"audio_end_ms":1240}"#,
        ),
        (
            ClientEvent::item_delete("item_003").with_event_id("del"),
            r#"{"type":"conversation.item.delete","event_id":"del","item_id":"item_003"}"#,
        ),
        (
            ClientEvent::response_create(None),
            r#"{"type":"response.create"}"#,
        ),
        (
            ClientEvent::response_create(Some(greeting)),
            r#"{"type":"response.create","response":{"instructions":"Greet the caller: 'Thanks for calling Acme, how can I help?'"}}"#,
        ),
        (
            ClientEvent::response_cancel(),
            r#"{"type":"response.cancel"}"#,
        ),
        (
            ClientEvent::response_cancel_id("resp_1").with_event_id("cancel-1"),
            r#"{"type":"response.cancel","event_id":"cancel-1","response_id":"resp_1"}"#,
        ),
        (
            ClientEvent::output_audio_clear(),
            r#"{"type":"output_audio_buffer.clear"}"#,
        ),
    ];
    let mut names = BTreeSet::new();
    for (event, expected) in &cases {
        check(event, expected);
        names.insert(event.event_type());
        // Detached copies are equal.
        assert_eq!(event.clone().into_owned(), *event);
    }
    // §6.5 lists eleven client events.
    let all: BTreeSet<&str> = [
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "conversation.item.delete",
        "response.create",
        "response.cancel",
        "output_audio_buffer.clear",
    ]
    .into();
    assert_eq!(names, all);
}

#[test]
fn response_create_with_every_option() {
    let params = ResponseCreateParams {
        output_modalities: Some(vec![Modality::Text]),
        instructions: Some("Classify the call.".into()),
        audio: Some(ResponseAudio {
            output: Some(ResponseAudioOutput {
                format: None,
                voice: Some(Voice::Cedar),
            }),
        }),
        tools: Some(vec![]),
        tool_choice: Some(ToolChoice::function("classify")),
        parallel_tool_calls: Some(false),
        reasoning: None,
        max_output_tokens: Some(MaxOutputTokens::Limit(200)),
        conversation: Some(ConversationMode::None),
        metadata: Some(BTreeMap::from([(
            "purpose".to_owned(),
            "classify".to_owned(),
        )])),
        prompt: None,
        input: Some(vec![
            ResponseInput::Reference(ItemReference::new("item_12")),
            ResponseInput::Item(Item::user_text("Summarize.")),
        ]),
    };
    assert_eq!(params.validate(), Ok(()));
    let event = ClientEvent::response_create(Some(params));
    let expected = json!({
        "type": "response.create",
        "response": {
            "output_modalities": ["text"],
            "instructions": "Classify the call.",
            "audio": {"output": {"voice": "cedar"}},
            "tools": [],
            "tool_choice": {"type": "function", "name": "classify"},
            "parallel_tool_calls": false,
            "max_output_tokens": 200,
            "conversation": "none",
            "metadata": {"purpose": "classify"},
            "input": [
                {"type": "item_reference", "id": "item_12"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Summarize."}]}
            ]
        }
    });
    let json = event.to_json();
    assert_eq!(value(&json), expected);
    let back: ClientEvent<'_> = serde_json::from_str(&json).expect("parse back");
    assert_eq!(back, event);
}

#[test]
fn response_create_validation() {
    let mut p = ResponseCreateParams {
        max_output_tokens: Some(MaxOutputTokens::Limit(0)),
        ..ResponseCreateParams::default()
    };
    assert!(p.validate().is_err());
    p.max_output_tokens = Some(MaxOutputTokens::Inf);
    assert_eq!(p.validate(), Ok(()));
    p.output_modalities = Some(vec![Modality::Audio, Modality::Text]);
    assert!(p.validate().is_err());
}

#[test]
fn deserialize_rejects_unknown_client_events() {
    assert!(serde_json::from_str::<ClientEvent<'_>>(r#"{"type":"session.delete"}"#).is_err());
    assert!(
        serde_json::from_str::<ClientEvent<'_>>(r#"{"type":"input_audio_buffer.append"}"#).is_err()
    );
    // A mock server can read borrowed audio back out.
    let text = r#"{"type":"input_audio_buffer.append","audio":"AAAA"}"#;
    let ClientEvent::InputAudioBufferAppend { audio, .. } =
        serde_json::from_str::<ClientEvent<'_>>(text).expect("append")
    else {
        panic!()
    };
    assert_eq!(audio, "AAAA");
}

#[test]
fn fast_append_writer_matches_serde() {
    let samples = [
        "",
        "/////w==",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+/8=",
        // Not base64: escaping must match serde_json exactly anyway.
        "quote\" backslash\\ newline\n tab\t cr\r bs\u{8} ff\u{c} nul\u{0} us\u{1f} del\u{7f}",
        "unicode é ✓ 😀 \u{2028}",
        "\"",
        "\\",
        "\u{0}",
    ];
    let mut buf = String::new();
    for audio in samples {
        buf.clear();
        write_input_audio_append(&mut buf, audio);
        let serde = serde_json::to_string(&ClientEvent::input_audio_append(audio)).expect("serde");
        assert_eq!(buf, serde, "{audio:?}");
        assert_eq!(value(&buf)["audio"], audio);
    }
    // The writer appends and reuses capacity.
    let mut buf = String::with_capacity(256);
    let ptr = buf.as_ptr();
    for _ in 0..100 {
        buf.clear();
        write_input_audio_append(&mut buf, "/////w==");
    }
    assert_eq!(buf.as_ptr(), ptr, "reused buffer must not reallocate");
}

#[test]
fn borrowed_audio_is_not_copied() {
    let frame = String::from("//7+/w==");
    let event = ClientEvent::input_audio_append(frame.as_str());
    let ClientEvent::InputAudioBufferAppend { audio, .. } = &event else {
        panic!()
    };
    assert!(matches!(audio, Cow::Borrowed(_)));
    assert_eq!(audio.as_ptr(), frame.as_ptr());
}

#[test]
fn session_update_borrows_or_owns() {
    let cfg = SessionConfig::telephony("x", "marin");
    let borrowed = ClientEvent::session_update(&cfg);
    let owned = ClientEvent::session_update(cfg.clone());
    assert_eq!(borrowed.to_json(), owned.to_json());
    assert!(matches!(
        borrowed,
        ClientEvent::SessionUpdate {
            session: Cow::Borrowed(_),
            ..
        }
    ));
    assert_eq!(borrowed.event_id(), None);
    assert_eq!(borrowed.with_event_id("s1").event_id(), Some("s1"));
}

#[test]
fn debug_output_never_contains_audio() {
    let audio = "U0VDUkVUQVVESU9QQVlMT0FE";
    let debug = format!(
        "{:?}",
        ClientEvent::input_audio_append(audio).with_event_id("x")
    );
    assert!(!debug.contains(audio), "{debug}");
    assert!(
        debug.contains("<24 base64 chars>") && debug.contains("\"x\""),
        "{debug}"
    );
    let debug = format!("{:?}", ClientEvent::truncate("item_1", 0, 5));
    assert!(
        debug.contains("item_1") && debug.contains("audio_end_ms: 5"),
        "{debug}"
    );
}
