//! GPT-Live client events: every event type serialized exactly as PROTOCOLS-LIVE §4–5 define it.

use std::borrow::Cow;
use std::collections::BTreeSet;

use openai_realtime::live::{
    AudioFormat, CLIENT_EVENT_TYPES, ClientEvent, Delegation, DelegationUpdate, DtmfKey,
    FunctionTool, ResponseInputItem, ResponsesDelegationConfig, ResponsesDelegationUpdate,
    SessionConfig, SessionUpdate, ToolChoice, models, write_input_audio_append,
};
use serde_json::{Value, json};

/// Serializes `event` and compares it, as a JSON value, with `expected`.
fn check(event: &ClientEvent<'_>, expected: &Value) {
    let text = event.to_json();
    let actual: Value = serde_json::from_str(&text).expect("ClientEvent emits valid JSON");
    assert_eq!(&actual, expected, "wire form of {}", event.event_type());
    assert_eq!(
        actual["type"],
        json!(event.event_type()),
        "type tag of {}",
        event.event_type()
    );
    let mut buffer = Vec::new();
    event.write_json(&mut buffer);
    assert_eq!(buffer, text.as_bytes(), "write_json equals to_json");
}

const INSTRUCTIONS_4_4: &str = "You are Robin, the phone assistant for Acme Dental. Speak warmly and briefly.\nBackchannel policy: Use light backchannels.\nInterruption policy: Stop speaking when the caller interrupts. Listen to what they say.\nDelegation policy:\nBackend tools:\n- Appointments: look up, book, move or cancel appointments.\nDelegate to the backend when:\n- The caller asks about or wants to change an appointment.\nDo not delegate to the backend when:\n- You can answer from the conversation.\nDelegate before giving an answer that depends on backend work. Do not guess the result while waiting.";

/// The §4.4 `session.start` example, verbatim.
fn example_4_4() -> Value {
    json!({
      "type": "session.start",
      "event_id": "start_CA5f0e",
      "session": {
        "model": "gpt-live-1",
        "instructions": INSTRUCTIONS_4_4,
        "audio": {
          "format": { "type": "audio/pcmu", "rate": 8000 },
          "output": { "voice": "marin" }
        },
        "delegation": {
          "type": "responses",
          "responses": {
            "model": "gpt-5.6-luna",
            "instructions": "You support a live phone call. Transcripts may contain errors. Use the tools; confirm before booking.",
            "tools": [
              {
                "type": "function",
                "name": "find_appointments",
                "description": "List open appointment slots for a date.",
                "parameters": {
                  "type": "object",
                  "properties": { "date": { "type": "string" } },
                  "required": ["date"],
                  "additionalProperties": false
                },
                "strict": true
              }
            ],
            "tool_choice": "auto",
            "parallel_tool_calls": false
          }
        },
        "store": false,
        "safety_identifier": "caller-7b1d9e"
      }
    })
}

fn config_4_4() -> SessionConfig {
    let backend = ResponsesDelegationConfig::new("gpt-5.6-luna")
        .with_instructions("You support a live phone call. Transcripts may contain errors. Use the tools; confirm before booking.")
        .with_tool(
            FunctionTool::new("find_appointments")
                .with_description("List open appointment slots for a date.")
                .with_parameters(json!({
                    "type": "object",
                    "properties": { "date": { "type": "string" } },
                    "required": ["date"],
                    "additionalProperties": false
                }))
                .with_strict(true),
        )
        .with_tool_choice(ToolChoice::Auto)
        .with_parallel_tool_calls(false);
    SessionConfig::builder(models::GPT_LIVE_1)
        .instructions(INSTRUCTIONS_4_4)
        .audio_format(AudioFormat::Pcmu)
        .voice("marin")
        .delegation(Delegation::responses(backend))
        .store(false)
        .safety_identifier("caller-7b1d9e")
        .build()
        .expect("the §4.4 configuration is valid")
}

#[test]
fn session_start_matches_section_4_4_exactly() {
    let event = ClientEvent::session_start(config_4_4()).with_event_id("start_CA5f0e");
    check(&event, &example_4_4());
}

#[test]
fn telephony_constructor_plus_builder_reproduces_4_4() {
    let base = SessionConfig::telephony(models::GPT_LIVE_1, INSTRUCTIONS_4_4, "marin");
    let full = config_4_4();
    let rebuilt = openai_realtime::live::SessionConfigBuilder::from(base)
        .delegation(full.delegation.clone().expect("4.4 has delegation"))
        .store(false)
        .safety_identifier("caller-7b1d9e")
        .build()
        .expect("valid");
    assert_eq!(rebuilt, full);
}

/// One row per client event type: the event and the JSON the reference defines for it.
fn client_event_table() -> Vec<(ClientEvent<'static>, Value)> {
    let update = SessionUpdate::delegation(DelegationUpdate::responses(
        ResponsesDelegationUpdate::new().with_model("gpt-5.6-terra"),
    ));
    vec![
        (
            ClientEvent::session_start(SessionConfig::telephony(
                models::GPT_LIVE_1,
                "Be brief.",
                "marin",
            )),
            json!({"type":"session.start","session":{"model":"gpt-live-1","instructions":"Be brief.",
                "audio":{"format":{"type":"audio/pcmu","rate":8000},"output":{"voice":"marin"}}}}),
        ),
        (
            ClientEvent::session_update(update).with_event_id("upd_3"),
            json!({"type":"session.update","event_id":"upd_3",
                "session":{"delegation":{"type":"responses","responses":{"model":"gpt-5.6-terra"}}}}),
        ),
        (
            ClientEvent::input_audio_append("//7+/f39/v7+/w=="),
            json!({"type":"session.input_audio.append","audio":"//7+/f39/v7+/w=="}),
        ),
        (
            ClientEvent::input_audio_mute().with_event_id("mute_1"),
            json!({"type":"session.input_audio.mute","event_id":"mute_1"}),
        ),
        (
            ClientEvent::input_audio_unmute(),
            json!({"type":"session.input_audio.unmute"}),
        ),
        (
            ClientEvent::instructions_append("Greet the caller now in English.", None)
                .with_event_id("greet_1"),
            json!({"type":"session.instructions.append","event_id":"greet_1",
                "content":"Greet the caller now in English.","delegation_id":null}),
        ),
        (
            ClientEvent::thinking_append(
                "Caller is verified as Ana Ruiz. No appointment has been booked yet.",
                None,
            )
            .with_event_id("ctx_12"),
            json!({"type":"session.thinking.append","event_id":"ctx_12","delegation_id":null,
                "content":"Caller is verified as Ana Ruiz. No appointment has been booked yet."}),
        ),
        (
            ClientEvent::commentary_append(
                "The 10:00 slot is free.",
                Some(Cow::Borrowed("item_9Tk2")),
            ),
            json!({"type":"session.commentary.append","content":"The 10:00 slot is free.",
                "delegation_id":"item_9Tk2"}),
        ),
        (
            ClientEvent::output_audio_fixture_play("AAAAAA==").with_event_id("fx_1"),
            json!({"type":"session.output_audio.fixture.play","event_id":"fx_1","audio":"AAAAAA=="}),
        ),
        (
            ClientEvent::function_call_output("call_8Qx2", r#"{"slots":["10:00","14:30"]}"#)
                .with_event_id("tool_out_1"),
            json!({"type":"response.item.create","event_id":"tool_out_1",
                "item":{"type":"function_call_output","call_id":"call_8Qx2",
                        "output":"{\"slots\":[\"10:00\",\"14:30\"]}"}}),
        ),
        (
            ClientEvent::response_create().with_event_id("continue_1"),
            json!({"type":"response.create","event_id":"continue_1"}),
        ),
        (
            ClientEvent::session_close().with_event_id("close_1"),
            json!({"type":"session.close","event_id":"close_1"}),
        ),
        (
            ClientEvent::decision_create("dec_1"),
            json!({"type":"decision.create","event_id":"dec_1"}),
        ),
        (
            ClientEvent::decision_item_create(json!({"type":"message","role":"user",
                "content":[{"type":"input_text","text":"hi"}]})),
            json!({"type":"decision.item.create","item":{"type":"message","role":"user",
                "content":[{"type":"input_text","text":"hi"}]}}),
        ),
        (
            ClientEvent::decision_item_delete("ditem_1").with_event_id("del_1"),
            json!({"type":"decision.item.delete","event_id":"del_1","item_id":"ditem_1"}),
        ),
        (
            ClientEvent::transport_dtmf_send(DtmfKey::new('#').expect("valid key")),
            json!({"type":"transport.dtmf.send","event":"#"}),
        ),
    ]
}

#[test]
fn every_client_event_type_serializes_as_the_reference_defines() {
    let table = client_event_table();
    for (event, expected) in &table {
        check(event, expected);
    }
    let covered: BTreeSet<&str> = table.iter().map(|(event, _)| event.event_type()).collect();
    let all: BTreeSet<&str> = CLIENT_EVENT_TYPES.iter().copied().collect();
    assert_eq!(covered, all, "the table covers every client event type");
}

#[test]
fn context_appends_always_carry_delegation_id() {
    let events = [
        ClientEvent::instructions_append("a", None),
        ClientEvent::thinking_append("b", None),
        ClientEvent::commentary_append("c", None),
    ];
    for event in &events {
        let value: Value = serde_json::from_str(&event.to_json()).expect("valid JSON");
        let object = value.as_object().expect("an object");
        assert_eq!(object.get("delegation_id"), Some(&Value::Null));
        let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["type", "content", "delegation_id"]));
    }
}

#[test]
fn response_create_has_no_body() {
    assert_eq!(
        ClientEvent::response_create().to_json(),
        r#"{"type":"response.create"}"#
    );
    assert_eq!(
        ClientEvent::response_create().with_event_id("c1").to_json(),
        r#"{"type":"response.create","event_id":"c1"}"#
    );
}

#[test]
fn bodyless_commands_serialize_to_type_only() {
    for (event, text) in [
        (ClientEvent::session_close(), r#"{"type":"session.close"}"#),
        (
            ClientEvent::input_audio_mute(),
            r#"{"type":"session.input_audio.mute"}"#,
        ),
        (
            ClientEvent::input_audio_unmute(),
            r#"{"type":"session.input_audio.unmute"}"#,
        ),
    ] {
        assert_eq!(event.to_json(), text);
        assert_eq!(event.event_id(), None);
    }
}

#[test]
fn user_message_item_is_typed() {
    let event = ClientEvent::user_message("Order number 1207");
    check(
        &event,
        &json!({"type":"response.item.create","item":{"type":"message","role":"user",
            "content":[{"type":"input_text","text":"Order number 1207"}]}}),
    );
    let raw = ClientEvent::response_item_create(ResponseInputItem::Raw(
        json!({"type":"custom_tool_call_output","call_id":"c","output":"x"}),
    ));
    check(
        &raw,
        &json!({"type":"response.item.create",
            "item":{"type":"custom_tool_call_output","call_id":"c","output":"x"}}),
    );
}

#[test]
fn with_event_id_replaces_and_reads_back() {
    let event = ClientEvent::decision_create("first").with_event_id("second");
    assert_eq!(event.event_id(), Some("second"));
    let owned_id = String::from("owned");
    let event = ClientEvent::session_close().with_event_id(owned_id);
    assert_eq!(event.event_id(), Some("owned"));
}

#[test]
fn dtmf_keys_are_validated() {
    for key in "0123456789ABCD*#".chars() {
        assert_eq!(DtmfKey::new(key).map(DtmfKey::as_char), Ok(key));
    }
    for key in ['a', 'E', ' ', 'w', '+'] {
        assert!(DtmfKey::new(key).is_err(), "{key:?} must be rejected");
    }
}

#[test]
fn fast_audio_writer_is_byte_identical_to_serde() {
    let inputs = [
        "",
        "//7+/f39/v7+/w==",
        "AAAA",
        "quote\"and\\backslash",
        "control\u{1}\n\t\r\u{1f}",
        "unicodé ✓ \u{7f}",
    ];
    let mut buffer = String::new();
    for audio in inputs {
        buffer.clear();
        write_input_audio_append(&mut buffer, audio);
        assert_eq!(buffer, ClientEvent::input_audio_append(audio).to_json());
    }
    // The writer appends: a reused buffer holds consecutive frames.
    buffer.clear();
    write_input_audio_append(&mut buffer, "AA==");
    write_input_audio_append(&mut buffer, "AQ==");
    assert_eq!(
        buffer,
        r#"{"type":"session.input_audio.append","audio":"AA=="}{"type":"session.input_audio.append","audio":"AQ=="}"#
    );
}
