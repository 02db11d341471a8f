//! GPT-Live session configuration: strictness (no field §4 does not define, no `null` for
//! unset), audio formats, history items, delegation, updates and validation.

use std::collections::BTreeSet;

use openai_realtime::live::{
    AudioFormat, ConfigError, Delegation, DelegationUpdate, FunctionTool, InitialItem, InitialRole,
    ItemStatus, MAX_INPUT_ITEMS, Reasoning, ReasoningEffort, ReasoningSummary,
    ResponsesDelegationConfig, ResponsesDelegationUpdate, ServiceTier, SessionConfig,
    SessionUpdate, Tool, ToolChoice, Verbosity, Voice, models,
};
use serde_json::{Value, json};

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("config types serialize")
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// Fails if `value` contains a JSON `null` anywhere.
fn assert_no_nulls(value: &Value, path: &str) {
    match value {
        Value::Null => panic!("null at {path}"),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                assert_no_nulls(item, &format!("{path}[{index}]"));
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                assert_no_nulls(item, &format!("{path}.{key}"));
            }
        }
        _ => {}
    }
}

fn everything_set() -> SessionConfig {
    let backend = ResponsesDelegationConfig::new("gpt-5.6-luna")
        .with_instructions("backend prompt")
        .with_tool(
            FunctionTool::new("lookup")
                .with_description("d")
                .with_strict(true),
        )
        .with_tool(Tool::WebSearch)
        .with_tool_choice(ToolChoice::Function("lookup".into()))
        .with_parallel_tool_calls(false)
        .with_max_output_tokens(512)
        .with_reasoning(
            Reasoning::effort(ReasoningEffort::LOW).with_summary(ReasoningSummary::AUTO),
        )
        .with_verbosity(Verbosity::LOW)
        .with_service_tier(ServiceTier::PRIORITY);
    SessionConfig::builder(models::GPT_LIVE_1_1)
        .instructions("voice prompt")
        .input_item(InitialItem::developer("known customer"))
        .input_item(InitialItem::user("hello").with_id("m1"))
        .input_item(InitialItem::assistant("hi").with_status(ItemStatus::Completed))
        .audio_format(AudioFormat::Pcma)
        .voice(Voice::custom("voice_123"))
        .delegation(Delegation::responses(backend).with_acknowledgement_delay_ms(250))
        .store(true)
        .safety_identifier("caller-hash")
        .triggers([json!({"type":"transcript","on":"session.input_transcript.delta"})])
        .build()
        .expect("valid")
}

#[test]
fn minimal_config_is_only_the_model() {
    let config = SessionConfig::builder("gpt-live-1").build().expect("valid");
    assert_eq!(to_value(&config), json!({"model":"gpt-live-1"}));
}

#[test]
fn no_field_outside_section_4_and_no_nulls() {
    let value = to_value(&everything_set());
    assert_no_nulls(&value, "session");
    assert_eq!(
        keys(&value),
        set(&[
            "model",
            "instructions",
            "input",
            "audio",
            "delegation",
            "store",
            "safety_identifier",
            "triggers"
        ]),
        "top level (never `client` on WebSocket)"
    );
    assert_eq!(keys(&value["audio"]), set(&["format", "output"]));
    assert_eq!(keys(&value["audio"]["format"]), set(&["type", "rate"]));
    assert_eq!(keys(&value["audio"]["output"]), set(&["voice"]));
    assert_eq!(value["audio"]["output"]["voice"], json!({"id":"voice_123"}));
    assert_eq!(
        keys(&value["delegation"]),
        set(&["type", "responses", "acknowledgement_delay_ms"])
    );
    assert_eq!(
        keys(&value["delegation"]["responses"]),
        set(&[
            "model",
            "instructions",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "max_output_tokens",
            "reasoning",
            "text",
            "service_tier"
        ])
    );
    let responses = &value["delegation"]["responses"];
    assert_eq!(keys(&responses["reasoning"]), set(&["effort", "summary"]));
    assert_eq!(responses["text"], json!({"verbosity":"low"}));
    assert_eq!(responses["service_tier"], json!("priority"));
    assert_eq!(
        responses["tool_choice"],
        json!({"type":"function","name":"lookup"})
    );
    assert_eq!(
        responses["tools"],
        json!([{"type":"function","name":"lookup","description":"d","strict":true},{"type":"web_search"}])
    );
    for item in value["input"].as_array().expect("input is an array") {
        let allowed = set(&["type", "role", "content", "id", "status"]);
        assert!(keys(item).is_subset(&allowed), "history item keys {item}");
        let content = item["content"].as_array().expect("content is an array");
        assert_eq!(content.len(), 1, "exactly one text part");
        assert_eq!(keys(&content[0]), set(&["type", "text"]));
    }
}

#[test]
fn telephony_config_is_mulaw_8k() {
    let config = SessionConfig::telephony(models::GPT_LIVE_1, "Be brief.", "cedar");
    assert_eq!(config.audio_format(), Some(AudioFormat::Pcmu));
    assert_eq!(config.voice(), Some(&Voice::Named("cedar".into())));
    assert_eq!(
        to_value(&config),
        json!({"model":"gpt-live-1","instructions":"Be brief.",
               "audio":{"format":{"type":"audio/pcmu","rate":8000},"output":{"voice":"cedar"}}})
    );
    assert!(config.validate().is_ok());
}

#[test]
fn audio_formats_always_carry_an_explicit_rate() {
    let cases = [
        (
            AudioFormat::Pcmu,
            json!({"type":"audio/pcmu","rate":8000}),
            160,
        ),
        (
            AudioFormat::Pcma,
            json!({"type":"audio/pcma","rate":8000}),
            160,
        ),
        (
            AudioFormat::Pcm16k,
            json!({"type":"audio/pcm","rate":16000}),
            640,
        ),
        (
            AudioFormat::Pcm24k,
            json!({"type":"audio/pcm","rate":24000}),
            960,
        ),
    ];
    for (format, wire, bytes) in cases {
        assert_eq!(to_value(&format), wire);
        let parsed: AudioFormat = serde_json::from_value(wire).expect("known format parses");
        assert_eq!(parsed, format);
        assert_eq!(format.bytes_per_20ms(), bytes);
    }
    for invalid in [
        json!({"type":"audio/pcmu","rate":16000}),
        json!({"type":"audio/pcm","rate":8000}),
        json!({"type":"audio/opus","rate":48000}),
        json!({"type":"audio/pcmu"}),
    ] {
        assert!(
            serde_json::from_value::<AudioFormat>(invalid.clone()).is_err(),
            "{invalid} must be rejected"
        );
    }
}

#[test]
fn history_items_are_discriminated_by_role_with_one_text_part() {
    assert_eq!(
        to_value(&InitialItem::developer(
            "Caller is a known customer; open order A-1207 shipped yesterday."
        )),
        json!({"type":"message","role":"developer","content":[{"type":"input_text",
            "text":"Caller is a known customer; open order A-1207 shipped yesterday."}]})
    );
    assert_eq!(
        to_value(
            &InitialItem::user("hi")
                .with_id("u1")
                .with_status(ItemStatus::Incomplete)
        ),
        json!({"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}],
               "id":"u1","status":"incomplete"})
    );
    assert_eq!(
        to_value(&InitialItem::assistant("hello")),
        json!({"type":"message","role":"assistant","content":[{"type":"output_text","text":"hello"}]})
    );
    // Parsing accepts every form the reference allows (optional `type`s, `text` part).
    let parsed: InitialItem = serde_json::from_value(
        json!({"role":"assistant","content":[{"type":"text","text":"earlier"}]}),
    )
    .expect("valid history item");
    assert_eq!(parsed, InitialItem::new(InitialRole::Assistant, "earlier"));
    for invalid in [
        json!({"role":"system","content":[{"text":"x"}]}),
        json!({"role":"user","content":[]}),
        json!({"role":"user","content":[{"text":"a"},{"text":"b"}]}),
    ] {
        assert!(serde_json::from_value::<InitialItem>(invalid).is_err());
    }
}

#[test]
fn delegation_modes_serialize_as_defined() {
    assert_eq!(to_value(&Delegation::client()), json!({"type":"client"}));
    assert_eq!(
        to_value(&Delegation::client().with_acknowledgement_delay_ms(400)),
        json!({"type":"client","acknowledgement_delay_ms":400})
    );
    assert_eq!(
        to_value(&Delegation::responses(ResponsesDelegationConfig::new("m"))),
        json!({"type":"responses","responses":{"model":"m"}})
    );
    assert_eq!(
        to_value(&Delegation::decisions(json!({"model":"d","questions":[]}))),
        json!({"type":"decisions","decisions":{"model":"d","questions":[]}})
    );
    assert_eq!(
        to_value(
            &ResponsesDelegationConfig::new("m")
                .with_tools([])
                .with_tool_choice(ToolChoice::Required)
        ),
        json!({"model":"m","tools":[],"tool_choice":"required"})
    );
    assert_eq!(to_value(&ToolChoice::None), json!("none"));
    assert_eq!(
        to_value(&ToolChoice::Raw(
            json!({"type":"allowed_tools","mode":"auto","tools":[]})
        )),
        json!({"type":"allowed_tools","mode":"auto","tools":[]})
    );
}

#[test]
fn session_update_is_sparse() {
    assert_eq!(to_value(&SessionUpdate::default()), json!({}));
    assert_eq!(
        to_value(&SessionUpdate::triggers([])),
        json!({"triggers":[]}),
        "an empty list disables triggers and must be sent"
    );
    assert_eq!(
        to_value(&SessionUpdate::delegation(DelegationUpdate::Client {
            acknowledgement_delay_ms: Some(0)
        })),
        json!({"delegation":{"type":"client","acknowledgement_delay_ms":0}})
    );
    let update = SessionUpdate::delegation(DelegationUpdate::responses(
        ResponsesDelegationUpdate::new()
            .with_instructions("new rules")
            .with_max_output_tokens(1024),
    ));
    assert_eq!(
        to_value(&update),
        json!({"delegation":{"type":"responses","responses":{"instructions":"new rules","max_output_tokens":1024}}})
    );
    assert!(update.validate().is_ok());
    let bad = SessionUpdate::delegation(DelegationUpdate::responses(
        ResponsesDelegationUpdate::new().with_max_output_tokens(8),
    ));
    assert_eq!(
        bad.validate(),
        Err(ConfigError::MaxOutputTokensTooSmall { value: 8, min: 16 })
    );
}

#[test]
fn builder_validates_what_the_reference_states() {
    assert_eq!(
        SessionConfig::builder("").build(),
        Err(ConfigError::EmptyModel)
    );
    let at_limit = SessionConfig::builder("gpt-live-1")
        .input((0..MAX_INPUT_ITEMS).map(|i| InitialItem::user(format!("m{i}"))))
        .build();
    assert!(at_limit.is_ok(), "128 history messages are allowed");
    assert_eq!(
        SessionConfig::builder("gpt-live-1")
            .input((0..=MAX_INPUT_ITEMS).map(|i| InitialItem::user(format!("m{i}"))))
            .build(),
        Err(ConfigError::TooManyInputItems {
            count: 129,
            max: 128
        })
    );
    assert_eq!(
        SessionConfig::builder("gpt-live-1")
            .delegation(Delegation::responses(ResponsesDelegationConfig::new("")))
            .build(),
        Err(ConfigError::EmptyDelegationModel)
    );
    assert_eq!(
        SessionConfig::builder("gpt-live-1")
            .delegation(Delegation::responses(
                ResponsesDelegationConfig::new("m").with_max_output_tokens(15)
            ))
            .build(),
        Err(ConfigError::MaxOutputTokensTooSmall { value: 15, min: 16 })
    );
    assert!(
        SessionConfig::builder("gpt-live-1")
            .delegation(Delegation::responses(
                ResponsesDelegationConfig::new("m").with_max_output_tokens(16)
            ))
            .build()
            .is_ok()
    );
    assert_eq!(
        SessionConfig::builder("gpt-live-1")
            .delegation(Delegation::responses(
                ResponsesDelegationConfig::new("m").with_tool(FunctionTool::new(""))
            ))
            .build(),
        Err(ConfigError::EmptyToolName)
    );
    let message = ConfigError::TooManyInputItems {
        count: 129,
        max: 128,
    }
    .to_string();
    assert_eq!(
        message,
        "session input has 129 messages; at most 128 are allowed"
    );
}

#[test]
fn voices_accept_any_name_and_custom_ids() {
    assert_eq!(to_value(&Voice::from("marin")), json!("marin"));
    assert_eq!(to_value(&Voice::from("harema".to_owned())), json!("harema"));
    assert_eq!(to_value(&Voice::custom("v_1")), json!({"id":"v_1"}));
    assert!(openai_realtime::live::BUILT_IN_VOICES.contains(&openai_realtime::live::DEFAULT_VOICE));
}
