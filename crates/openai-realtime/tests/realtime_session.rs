//! Session configuration (PROTOCOLS §6.3–§6.4): exact `session.update` text for the telephony
//! config, the §6.3 example rebuilt with the builder, tri-state fields, range validation, and
//! parsing of the server's session object.

use openai_realtime::realtime::{
    AudioFormat, ClientEvent, ConfigError, Eagerness, FunctionTool, MaxOutputTokens, Modality,
    NoiseReduction, Nullable, Prompt, ReasoningEffort, SemanticVad, ServerVad, Session,
    SessionConfig, SessionType, Tool, ToolChoice, ToolChoiceMode, Tracing, Transcription,
    Truncation, TurnDetection, Voice, models,
};
use serde_json::{Value, json};

fn value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON ({e}): {text}"))
}

const TELEPHONY_UPDATE: &str = concat!(
    r#"{"type":"session.update","session":{"type":"realtime","#,
    r#""instructions":"You are the phone assistant for Acme. Be brief.","#,
    r#""output_modalities":["audio"],"#,
    r#""audio":{"input":{"format":{"type":"audio/pcmu"},"#,
    r#""turn_detection":{"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,"#,
    r#""silence_duration_ms":500,"create_response":true,"interrupt_response":true}},"#,
    r#""output":{"format":{"type":"audio/pcmu"},"voice":"marin"}}}}"#
);

#[test]
fn telephony_session_update_exact_text() {
    let cfg = SessionConfig::telephony("You are the phone assistant for Acme. Be brief.", "marin");
    assert_eq!(cfg.validate(), Ok(()));
    assert_eq!(
        ClientEvent::session_update(&cfg).to_json(),
        TELEPHONY_UPDATE
    );
    assert_eq!(cfg.input_format(), Some(&AudioFormat::Pcmu));
    assert_eq!(cfg.output_format(), Some(&AudioFormat::Pcmu));
    // With an event id and a custom voice.
    let cfg = SessionConfig::telephony(
        "Hi",
        Voice::Custom {
            id: "voice_1".into(),
        },
    );
    let json = ClientEvent::session_update(&cfg)
        .with_event_id("setup")
        .to_json();
    assert!(json.starts_with(r#"{"type":"session.update","event_id":"setup","session":{"#));
    assert!(
        json.ends_with(r#""output":{"format":{"type":"audio/pcmu"},"voice":{"id":"voice_1"}}}}}"#)
    );
    // It parses back as a client event.
    let back: ClientEvent<'_> = serde_json::from_str(TELEPHONY_UPDATE).expect("parse back");
    let ClientEvent::SessionUpdate { session, .. } = back else {
        panic!()
    };
    assert_eq!(
        *session,
        SessionConfig::telephony(
            "You are the phone assistant for Acme. Be brief.",
            Voice::Marin
        )
    );
}

/// The full example of PROTOCOLS §6.3, rebuilt with the builder.
#[test]
fn reference_example_rebuilt_with_the_builder() {
    let reference = json!({
      "type": "session.update",
      "session": {
        "type": "realtime",
        "instructions": "You are the phone assistant for Acme. Be brief.",
        "output_modalities": ["audio"],
        "audio": {
          "input": {
            "format": {"type": "audio/pcmu"},
            "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                               "silence_duration_ms": 500, "create_response": true,
                               "interrupt_response": true},
            "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
            "noise_reduction": {"type": "far_field"}
          },
          "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0}
        },
        "tools": [{"type": "function", "name": "end_call",
                   "description": "Hang up after saying goodbye.",
                   "parameters": {"type": "object", "properties": {"reason": {"type": "string"}},
                                  "required": ["reason"]}}],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "truncation": "auto",
        "tracing": null
      }
    });
    let cfg = SessionConfig::builder()
        .instructions("You are the phone assistant for Acme. Be brief.")
        .output_modalities([Modality::Audio])
        .audio_format(AudioFormat::Pcmu)
        .turn_detection(ServerVad::documented_defaults())
        .transcription(Transcription::model("gpt-4o-mini-transcribe").language("en"))
        .noise_reduction(NoiseReduction::far_field())
        .voice(Voice::Marin)
        .speed(1.0)
        .tool(FunctionTool::new(
            "end_call",
            "Hang up after saying goodbye.",
            json!({"type": "object", "properties": {"reason": {"type": "string"}},
                   "required": ["reason"]}),
        ))
        .tool_choice(ToolChoiceMode::Auto)
        .max_output_tokens(MaxOutputTokens::Inf)
        .truncation(Truncation::Auto)
        .tracing_off()
        .build()
        .expect("valid");
    let json = ClientEvent::session_update(&cfg).to_json();
    assert_eq!(value(&json), reference);
    // And the reference parses into the same configuration.
    let reference_text = reference.to_string();
    let back: ClientEvent<'_> = serde_json::from_str(&reference_text).expect("parse reference");
    assert_eq!(back, ClientEvent::session_update(&cfg));
}

#[test]
fn tri_state_fields() {
    // `null` turns a feature off; absence leaves it unchanged.
    let off = SessionConfig::builder()
        .noise_reduction_off()
        .build()
        .expect("valid");
    assert_eq!(
        ClientEvent::session_update(&off).to_json(),
        r#"{"type":"session.update","session":{"type":"realtime","audio":{"input":{"noise_reduction":null}}}}"#
    );
    let all_off = SessionConfig::builder()
        .turn_detection_off()
        .transcription_off()
        .noise_reduction_off()
        .tracing_off()
        .prompt_off()
        .build()
        .expect("valid");
    assert_eq!(
        serde_json::to_string(&all_off).expect("json"),
        r#"{"type":"realtime","audio":{"input":{"turn_detection":null,"transcription":null,"noise_reduction":null}},"tracing":null,"prompt":null}"#
    );
    let empty = SessionConfig::default();
    assert_eq!(
        serde_json::to_string(&empty).expect("json"),
        r#"{"type":"realtime"}"#
    );
    // Parsing keeps the three states apart.
    let parsed: SessionConfig = serde_json::from_str(
        r#"{"type":"realtime","audio":{"input":{"turn_detection":null,"transcription":{"model":"whisper-1"}}},"tracing":"auto"}"#,
    )
    .expect("parse");
    let input = parsed
        .audio
        .as_ref()
        .and_then(|a| a.input.as_ref())
        .expect("input");
    assert_eq!(input.turn_detection, Nullable::Null);
    assert_eq!(input.noise_reduction, Nullable::Absent);
    assert_eq!(
        input.transcription.value().and_then(|t| t.model.as_deref()),
        Some("whisper-1")
    );
    assert_eq!(parsed.tracing, Nullable::Value(Tracing::Auto));
    assert_eq!(parsed.prompt, Nullable::Absent);
    assert_eq!(parsed.turn_detection(), &Nullable::Null);
    assert_eq!(SessionConfig::default().turn_detection(), &Nullable::Absent);
}

#[test]
fn union_fields_serialize_exactly() {
    let cases: Vec<(Value, Value)> = vec![
        (
            json!(AudioFormat::pcm24k()),
            json!({"type": "audio/pcm", "rate": 24000}),
        ),
        (json!(AudioFormat::Pcma), json!({"type": "audio/pcma"})),
        (json!(Voice::from("verse")), json!("verse")),
        (json!(Voice::from("a-new-voice")), json!("a-new-voice")),
        (
            json!(Voice::Custom {
                id: "voice_1".into()
            }),
            json!({"id": "voice_1"}),
        ),
        (
            json!(ToolChoice::Mode(ToolChoiceMode::Required)),
            json!("required"),
        ),
        (json!(ToolChoice::Mode(ToolChoiceMode::None)), json!("none")),
        (
            json!(ToolChoice::function("end_call")),
            json!({"type": "function", "name": "end_call"}),
        ),
        (json!(MaxOutputTokens::Limit(4096)), json!(4096)),
        (json!(MaxOutputTokens::Inf), json!("inf")),
        (json!(Truncation::Disabled), json!("disabled")),
        (
            json!(Truncation::RetentionRatio(
                openai_realtime::realtime::session::RetentionRatio {
                    retention_ratio: 0.5,
                    token_limits: None
                }
            )),
            json!({"type": "retention_ratio", "retention_ratio": 0.5}),
        ),
        (json!(Tracing::Auto), json!("auto")),
        (
            json!(Tracing::Config(openai_realtime::realtime::TracingConfig {
                workflow_name: Some("calls".into()),
                group_id: None,
                metadata: Some(json!({"env": "test"})),
            })),
            json!({"workflow_name": "calls", "metadata": {"env": "test"}}),
        ),
        (
            json!(TurnDetection::SemanticVad(SemanticVad {
                eagerness: Some(Eagerness::High),
                create_response: Some(true),
                interrupt_response: None,
            })),
            json!({"type": "semantic_vad", "eagerness": "high", "create_response": true}),
        ),
        (
            json!(TurnDetection::ServerVad(ServerVad::default())),
            json!({"type": "server_vad"}),
        ),
        (
            json!(Prompt {
                id: "pmpt_1".into(),
                version: None,
                variables: None
            }),
            json!({"id": "pmpt_1"}),
        ),
        (
            json!(NoiseReduction::near_field()),
            json!({"type": "near_field"}),
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
    // And they parse back; unknown shapes are kept, not rejected.
    let f: AudioFormat = serde_json::from_value(json!({"type": "audio/opus", "rate": 48000}))
        .expect("unknown format");
    assert!(matches!(f, AudioFormat::Unknown(_)));
    assert_eq!(f.sample_rate(), None);
    let t: Truncation = serde_json::from_value(json!("smart")).expect("unknown truncation");
    assert_eq!(t, Truncation::Unknown(json!("smart")));
    let t: TurnDetection =
        serde_json::from_value(json!({"type": "neural_vad", "x": 1})).expect("unknown vad");
    assert!(matches!(t, TurnDetection::Unknown(_)));
    let c: ToolChoice = serde_json::from_value(json!("sometimes")).expect("unknown mode");
    assert_eq!(
        c,
        ToolChoice::Mode(ToolChoiceMode::Other("sometimes".into()))
    );
    let tool: Tool =
        serde_json::from_value(json!({"type": "mcp", "server_label": "crm"})).expect("mcp tool");
    assert!(matches!(tool, Tool::Unknown(_)));
    assert_eq!(
        serde_json::from_value::<MaxOutputTokens>(json!("inf")).expect("inf"),
        MaxOutputTokens::Inf
    );
    assert!(serde_json::from_value::<MaxOutputTokens>(json!("infinite")).is_err());
}

#[test]
fn audio_format_helpers() {
    assert_eq!(AudioFormat::Pcmu.bytes_per_ms(), Some(8));
    assert_eq!(AudioFormat::Pcma.sample_rate(), Some(8000));
    assert_eq!(AudioFormat::pcm24k().bytes_per_ms(), Some(48));
}

#[test]
fn builder_validates_documented_ranges() {
    let vad =
        |ms| SessionConfig::builder().turn_detection(ServerVad::default().idle_timeout_ms(ms));
    assert_eq!(
        vad(4_999).build(),
        Err(ConfigError::IdleTimeoutOutOfRange(4_999))
    );
    assert!(vad(5_000).build().is_ok());
    assert!(vad(30_000).build().is_ok());
    assert_eq!(
        vad(30_001).build(),
        Err(ConfigError::IdleTimeoutOutOfRange(30_001))
    );

    let speed = |s| SessionConfig::builder().speed(s).build();
    assert_eq!(speed(0.24), Err(ConfigError::SpeedOutOfRange(0.24)));
    assert!(speed(0.25).is_ok());
    assert!(speed(1.5).is_ok());
    assert_eq!(speed(1.51), Err(ConfigError::SpeedOutOfRange(1.51)));
    assert!(matches!(
        speed(f64::NAN),
        Err(ConfigError::SpeedOutOfRange(_))
    ));

    let max = |n| {
        SessionConfig::builder()
            .max_output_tokens(MaxOutputTokens::Limit(n))
            .build()
    };
    assert_eq!(max(0), Err(ConfigError::MaxOutputTokensOutOfRange(0)));
    assert!(max(1).is_ok());
    assert!(max(4096).is_ok());
    assert_eq!(max(4097), Err(ConfigError::MaxOutputTokensOutOfRange(4097)));

    let threshold = |t| {
        SessionConfig::builder()
            .turn_detection(ServerVad::default().threshold(t))
            .build()
    };
    assert!(threshold(0.0).is_ok() && threshold(1.0).is_ok());
    assert_eq!(threshold(1.5), Err(ConfigError::ThresholdOutOfRange(1.5)));

    assert_eq!(
        SessionConfig::builder()
            .input_format(AudioFormat::Pcm { rate: 16_000 })
            .build(),
        Err(ConfigError::UnsupportedPcmRate(16_000))
    );
    assert_eq!(
        SessionConfig::builder()
            .output_modalities([Modality::Audio, Modality::Text])
            .build(),
        Err(ConfigError::ConflictingModalities)
    );
    assert_eq!(
        SessionConfig::builder()
            .tool(FunctionTool::new("", "nameless", json!({})))
            .build(),
        Err(ConfigError::EmptyField("tools[].name"))
    );
    let ratio = |r| {
        SessionConfig::builder()
            .truncation(Truncation::RetentionRatio(
                openai_realtime::realtime::session::RetentionRatio {
                    retention_ratio: r,
                    token_limits: None,
                },
            ))
            .build()
    };
    assert!(ratio(0.8).is_ok());
    assert_eq!(ratio(1.2), Err(ConfigError::RetentionRatioOutOfRange(1.2)));
    assert_eq!(
        SessionConfig::builder().prompt(Prompt::default()).build(),
        Err(ConfigError::EmptyField("prompt.id"))
    );

    // `reasoning` only for gpt-realtime-2*; unknown models get the benefit of the doubt.
    let reasoning = |model: &str| {
        SessionConfig::builder()
            .model(model)
            .reasoning_effort(ReasoningEffort::Low)
            .build()
    };
    assert!(reasoning(models::GPT_REALTIME_2).is_ok());
    assert!(reasoning(models::DEFAULT).is_ok());
    assert!(reasoning("gpt-realtime-7-preview").is_ok());
    assert_eq!(
        reasoning(models::GPT_REALTIME_1_5),
        Err(ConfigError::ReasoningModelRequired {
            field: "reasoning",
            model: "gpt-realtime-1.5".into()
        })
    );
    let parallel = SessionConfig::builder()
        .model("gpt-realtime-mini")
        .parallel_tool_calls(true)
        .build();
    assert!(matches!(
        parallel,
        Err(ConfigError::ReasoningModelRequired {
            field: "parallel_tool_calls",
            ..
        })
    ));
    // Errors explain themselves.
    assert_eq!(
        ConfigError::IdleTimeoutOutOfRange(1).to_string(),
        "idle_timeout_ms must be within 5000..=30000, got 1"
    );
}

#[test]
fn builder_from_telephony() {
    let cfg = SessionConfig::telephony("Be brief.", Voice::Cedar)
        .into_builder()
        .turn_detection(ServerVad::documented_defaults().idle_timeout_ms(8_000))
        .noise_reduction(NoiseReduction::far_field())
        .model(models::DEFAULT)
        .reasoning_effort(ReasoningEffort::Minimal)
        .include(openai_realtime::realtime::session::INCLUDE_INPUT_TRANSCRIPTION_LOGPROBS)
        .build()
        .expect("valid");
    let json = value(&serde_json::to_string(&cfg).expect("json"));
    assert_eq!(
        json["audio"]["input"]["turn_detection"]["idle_timeout_ms"],
        8000
    );
    assert_eq!(
        json["audio"]["input"]["noise_reduction"]["type"],
        "far_field"
    );
    assert_eq!(json["reasoning"]["effort"], "minimal");
    assert_eq!(json["model"], "gpt-realtime-2.1");
    assert_eq!(
        json["include"][0],
        "item.input_audio_transcription.logprobs"
    );
}

#[test]
fn server_session_object_parses() {
    let text = r#"{"type":"realtime","object":"realtime.session","id":"sess_1","model":"gpt-realtime-2.1",
        "expires_at":1756324625,"instructions":"x","output_modalities":["audio"],
        "audio":{"input":{"format":{"type":"audio/pcmu"},"turn_detection":{"type":"server_vad",
          "threshold":0.5,"prefix_padding_ms":300,"silence_duration_ms":200,"idle_timeout_ms":null,
          "create_response":true,"interrupt_response":true,"new_knob":3},"transcription":null,
          "noise_reduction":null,"new_input_field":true},
          "output":{"format":{"type":"audio/pcmu"},"voice":"marin","speed":1.0}},
        "tools":[],"tool_choice":"auto","max_output_tokens":"inf","tracing":null,"prompt":null,
        "client_secret":null,"new_top_level":{"a":1}}"#;
    let s: Session = serde_json::from_str(text).expect("server session");
    assert_eq!(s.id.as_deref(), Some("sess_1"));
    assert_eq!(s.expires_at, Some(1_756_324_625));
    assert_eq!(s.config.session_type, SessionType::Realtime);
    assert_eq!(s.config.model.as_deref(), Some("gpt-realtime-2.1"));
    assert_eq!(s.config.max_output_tokens, Some(MaxOutputTokens::Inf));
    assert_eq!(s.config.tracing, Nullable::Null);
    // The server does not validate our ranges, and neither do we when parsing.
    let odd: Session =
        serde_json::from_str(r#"{"type":"transcription","audio":{"output":{"speed":9}}}"#)
            .expect("out-of-range values still parse");
    assert_eq!(odd.config.session_type, SessionType::Transcription);
    assert!(odd.config.validate().is_err());
}
