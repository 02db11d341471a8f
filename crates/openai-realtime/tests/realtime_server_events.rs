//! Server events (PROTOCOLS §6.6, §6.6b): one data-driven case per event type — JSON text as
//! the reference documents it → `ServerEvent::parse` → variant and key fields → serialize →
//! compare with the expected JSON (`serde_json::Value` equality) → parse again → equal.

use std::borrow::Cow;
use std::collections::BTreeSet;

use openai_realtime::realtime::server_event::TranscriptionUsage;
use openai_realtime::realtime::{
    AudioFormat, ContentPart, ErrorCode, Item, ItemStatus, ParseError, ResponseStatus, Role,
    ServerEvent, StatusReason, TurnDetection, Voice,
};
use serde_json::Value;

struct Case {
    /// JSON as the server sends it.
    json: &'static str,
    /// Expected serialization when it differs from `json` (fields sent as `null` are omitted
    /// when absent is equivalent, unknown fields are dropped, integers become floats).
    reserialized: Option<&'static str>,
    /// Variant and key-field assertions.
    check: fn(&ServerEvent<'_>),
}

fn value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("test JSON is invalid ({e}): {text}"))
}

fn run(case: &Case) {
    let event = ServerEvent::parse(case.json)
        .unwrap_or_else(|e| panic!("failed to parse: {e}\n{}", case.json));
    assert!(
        !matches!(event, ServerEvent::Unknown { .. }),
        "parsed as Unknown: {}",
        case.json
    );
    assert_eq!(
        event.event_type(),
        value(case.json)["type"].as_str().unwrap_or_default()
    );
    (case.check)(&event);

    let out = event.to_json();
    let expected = value(case.reserialized.unwrap_or(case.json));
    assert_eq!(
        value(&out),
        expected,
        "reserialized JSON differs for {}",
        case.json
    );

    let again = ServerEvent::parse(&out).unwrap_or_else(|e| panic!("reparse failed: {e}\n{out}"));
    assert_eq!(again, event, "parse(serialize(e)) != e for {}", case.json);
    assert_eq!(again.clone().into_owned(), event);
}

const SESSION_CREATED: &str = r#"{"type":"session.created","event_id":"event_C9G5RJeJ2gF77mV7f2B1j",
  "session":{"type":"realtime","object":"realtime.session","id":"sess_C9G5QPteg4UIbotdKLoYQ",
    "model":"gpt-realtime-2025-08-28","output_modalities":["audio"],
    "instructions":"Your knowledge cutoff is 2023-10.","tools":[],"tool_choice":"auto",
    "max_output_tokens":"inf","tracing":null,"truncation":"auto","prompt":null,"expires_at":1756324625,
    "audio":{"input":{"format":{"type":"audio/pcm","rate":24000},"transcription":null,
        "noise_reduction":null,"turn_detection":{"type":"server_vad","threshold":0.5,
        "prefix_padding_ms":300,"silence_duration_ms":200,"idle_timeout_ms":null,
        "create_response":true,"interrupt_response":true}},
      "output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin","speed":1}},
    "include":null,"some_future_field":{"x":1}}}"#;

const SESSION_CREATED_OUT: &str = r#"{"type":"session.created","event_id":"event_C9G5RJeJ2gF77mV7f2B1j",
  "session":{"type":"realtime","object":"realtime.session","id":"sess_C9G5QPteg4UIbotdKLoYQ",
    "model":"gpt-realtime-2025-08-28","output_modalities":["audio"],
    "instructions":"Your knowledge cutoff is 2023-10.","tools":[],"tool_choice":"auto",
    "max_output_tokens":"inf","tracing":null,"truncation":"auto","prompt":null,"expires_at":1756324625,
    "audio":{"input":{"format":{"type":"audio/pcm","rate":24000},"transcription":null,
        "noise_reduction":null,"turn_detection":{"type":"server_vad","threshold":0.5,
        "prefix_padding_ms":300,"silence_duration_ms":200,
        "create_response":true,"interrupt_response":true}},
      "output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin","speed":1.0}}}}"#;

const SESSION_UPDATED: &str = r#"{"type":"session.updated","event_id":"event_2",
  "session":{"type":"realtime","object":"realtime.session","id":"sess_1","model":"gpt-realtime-2.1",
    "output_modalities":["audio"],"instructions":"Be brief.",
    "tools":[{"type":"function","name":"end_call","description":"Hang up.",
      "parameters":{"type":"object","properties":{"reason":{"type":"string"}},"required":["reason"]}},
      {"type":"mcp","server_label":"crm","server_url":"https://crm.example/mcp"}],
    "tool_choice":{"type":"function","name":"end_call"},"max_output_tokens":1024,
    "reasoning":{"effort":"low"},"parallel_tool_calls":false,
    "truncation":{"type":"retention_ratio","retention_ratio":0.8,"token_limits":{"post_instructions":8000}},
    "tracing":"auto","prompt":{"id":"pmpt_1","version":"2","variables":{"city":"Paris"}},
    "audio":{"input":{"format":{"type":"audio/pcmu"},
        "transcription":{"model":"gpt-4o-mini-transcribe","language":"en"},
        "noise_reduction":{"type":"far_field","strength":1.0},
        "turn_detection":{"type":"semantic_vad","eagerness":"low","create_response":true,
          "interrupt_response":true}},
      "output":{"format":{"type":"audio/pcma"},"voice":{"id":"voice_123"},"speed":1.25}}}}"#;

const CASES: &[Case] = &[
    // ---- session / conversation ----
    Case {
        json: SESSION_CREATED,
        reserialized: Some(SESSION_CREATED_OUT),
        check: |e| {
            let ServerEvent::SessionCreated(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.event_id, "event_C9G5RJeJ2gF77mV7f2B1j");
            let s = &e.session;
            assert_eq!(s.id.as_deref(), Some("sess_C9G5QPteg4UIbotdKLoYQ"));
            assert_eq!(s.object.as_deref(), Some("realtime.session"));
            assert_eq!(s.expires_at, Some(1_756_324_625));
            assert_eq!(s.config.model.as_deref(), Some("gpt-realtime-2025-08-28"));
            assert_eq!(s.config.input_format(), Some(&AudioFormat::pcm24k()));
            assert!(s.config.tracing.is_null());
            let Some(TurnDetection::ServerVad(vad)) = s.config.turn_detection().value() else {
                panic!("no server_vad")
            };
            assert_eq!(vad.silence_duration_ms, Some(200));
            assert_eq!(vad.idle_timeout_ms, None);
        },
    },
    Case {
        json: SESSION_UPDATED,
        reserialized: None,
        check: |e| {
            let ServerEvent::SessionUpdated(e) = e else {
                panic!("{e:?}")
            };
            let c = &e.session.config;
            assert_eq!(c.input_format(), Some(&AudioFormat::Pcmu));
            assert_eq!(c.output_format(), Some(&AudioFormat::Pcma));
            let out = c
                .audio
                .as_ref()
                .and_then(|a| a.output.as_ref())
                .expect("output");
            assert_eq!(
                out.voice,
                Some(Voice::Custom {
                    id: "voice_123".into()
                })
            );
            assert_eq!(c.tools.as_ref().map(Vec::len), Some(2));
            assert!(matches!(
                c.turn_detection().value(),
                Some(TurnDetection::SemanticVad(_))
            ));
        },
    },
    Case {
        json: r#"{"type":"conversation.created","event_id":"event_9101",
                  "conversation":{"id":"conv_001","object":"realtime.conversation"}}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::ConversationCreated(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.conversation.id.as_deref(), Some("conv_001"));
        },
    },
    Case {
        json: r#"{"type":"conversation.item.added","event_id":"event_1920","previous_item_id":null,
                  "item":{"id":"item_001","object":"realtime.item","type":"message","status":"completed",
                          "role":"user","content":[{"type":"input_audio","transcript":null}]}}"#,
        reserialized: Some(
            r#"{"type":"conversation.item.added","event_id":"event_1920",
                "item":{"id":"item_001","object":"realtime.item","type":"message","status":"completed",
                        "role":"user","content":[{"type":"input_audio"}]}}"#,
        ),
        check: |e| {
            let ServerEvent::ConversationItemAdded(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.previous_item_id, None);
            let Item::Message(m) = &e.item else {
                panic!("{:?}", e.item)
            };
            assert_eq!(m.role, Role::User);
            assert_eq!(e.item.id(), Some("item_001"));
            assert!(m.content[0].is_audio());
        },
    },
    Case {
        json: r#"{"type":"conversation.item.done","event_id":"event_CCXLgMZPo3qioWCeQa4WH",
                  "previous_item_id":"item_CCXLecNJVIVR2HUy3ABLj",
                  "item":{"id":"item_CCXLfxmM5sXVJVz4mCa2S","type":"message","status":"completed",
                          "role":"assistant","content":[{"type":"output_audio",
                          "transcript":"Oh, I can hear you loud and clear!"}]}}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::ConversationItemDone(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(
                e.previous_item_id.as_deref(),
                Some("item_CCXLecNJVIVR2HUy3ABLj")
            );
            let Item::Message(m) = &e.item else {
                panic!("{:?}", e.item)
            };
            assert_eq!(m.role, Role::Assistant);
            assert_eq!(
                m.content[0].transcript(),
                Some("Oh, I can hear you loud and clear!")
            );
            assert_eq!(e.item.status(), Some(&ItemStatus::Completed));
        },
    },
    Case {
        // Legacy event name and legacy `audio` content part.
        json: r#"{"type":"conversation.item.created","event_id":"event_1","previous_item_id":"item_000",
                  "item":{"id":"item_002","object":"realtime.item","type":"message","status":"in_progress",
                          "role":"assistant","content":[{"type":"audio","transcript":"Hello"},
                          {"type":"text","text":"Hi"}]}}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::ConversationItemCreated(e) = e else {
                panic!("{e:?}")
            };
            let Item::Message(m) = &e.item else {
                panic!("{:?}", e.item)
            };
            assert!(matches!(m.content[0], ContentPart::Audio { .. }));
            assert_eq!(m.content[0].transcript(), Some("Hello"));
            assert_eq!(m.content[1].text(), Some("Hi"));
            assert_eq!(e.item.status(), Some(&ItemStatus::InProgress));
        },
    },
    Case {
        json: r#"{"type":"conversation.item.retrieved","event_id":"event_CCXGSizgEppa2d4XbKA7K",
                  "item":{"id":"item_CCXGRxbY0n6WE4EszhF5w","object":"realtime.item","type":"message",
                          "status":"completed","role":"assistant","content":[{"type":"output_audio",
                          "transcript":"Yes, I can hear you loud and clear.","audio":"//7+/w=="}]}}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::ConversationItemRetrieved(e) = e else {
                panic!("{e:?}")
            };
            let Item::Message(m) = &e.item else {
                panic!("{:?}", e.item)
            };
            let ContentPart::OutputAudio { audio, .. } = &m.content[0] else {
                panic!()
            };
            assert_eq!(audio.as_deref(), Some("//7+/w=="));
        },
    },
    Case {
        json: r#"{"type":"conversation.item.truncated","event_id":"event_2122","item_id":"item_002",
                  "content_index":0,"audio_end_ms":1500}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::ConversationItemTruncated(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(
                (e.item_id.as_ref(), e.content_index, e.audio_end_ms),
                ("item_002", 0, 1500)
            );
        },
    },
    Case {
        json: r#"{"type":"conversation.item.deleted","event_id":"event_2728","item_id":"item_003"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::ConversationItemDeleted(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.item_id, "item_003");
        },
    },
    // ---- input audio transcription ----
    Case {
        json: r#"{"type":"conversation.item.input_audio_transcription.delta","event_id":"event_001",
                  "item_id":"item_001","content_index":0,"delta":"Hello","obfuscation":"aBcD",
                  "logprobs":[{"token":"Hello","bytes":[72,101,108,108,111],"logprob":-0.25}]}"#,
        reserialized: Some(
            r#"{"type":"conversation.item.input_audio_transcription.delta","event_id":"event_001",
                "item_id":"item_001","content_index":0,"delta":"Hello",
                "logprobs":[{"token":"Hello","bytes":[72,101,108,108,111],"logprob":-0.25}]}"#,
        ),
        check: |e| {
            let ServerEvent::InputAudioTranscriptionDelta(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!((e.delta.as_ref(), e.content_index), ("Hello", Some(0)));
            assert_eq!(e.logprobs.as_ref().map(|l| l[0].bytes.len()), Some(5));
        },
    },
    Case {
        json: r#"{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_2122",
                  "item_id":"item_003","content_index":0,"transcript":"Hello, how are you?",
                  "usage":{"type":"tokens","total_tokens":48,"input_tokens":38,
                           "input_token_details":{"text_tokens":10,"audio_tokens":28},"output_tokens":10},
                  "languages":[{"code":"en"}]}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::InputAudioTranscriptionCompleted(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.transcript, "Hello, how are you?");
            let Some(TranscriptionUsage::Tokens(t)) = &e.usage else {
                panic!("{:?}", e.usage)
            };
            assert_eq!(
                (t.input_tokens, t.output_tokens, t.total_tokens),
                (38, 10, 48)
            );
            assert_eq!(e.languages.as_ref().map(|l| l[0].code.as_str()), Some("en"));
        },
    },
    Case {
        json: r#"{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_2",
                  "item_id":"item_004","content_index":0,"transcript":"Yes.",
                  "usage":{"type":"duration","seconds":1.5}}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::InputAudioTranscriptionCompleted(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.usage, Some(TranscriptionUsage::Duration { seconds: 1.5 }));
        },
    },
    Case {
        json: r#"{"type":"conversation.item.input_audio_transcription.failed","event_id":"event_2324",
                  "item_id":"item_001","content_index":0,"error":{"type":"transcription_error",
                  "code":"audio_unintelligible","message":"The audio could not be transcribed.","param":null}}"#,
        reserialized: Some(
            r#"{"type":"conversation.item.input_audio_transcription.failed","event_id":"event_2324",
                "item_id":"item_001","content_index":0,"error":{"type":"transcription_error",
                "code":"audio_unintelligible","message":"The audio could not be transcribed."}}"#,
        ),
        check: |e| {
            let ServerEvent::InputAudioTranscriptionFailed(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.error.code.as_deref(), Some("audio_unintelligible"));
        },
    },
    Case {
        json: r#"{"type":"conversation.item.input_audio_transcription.segment","event_id":"event_6501",
                  "item_id":"msg_011","content_index":0,"text":"hello","id":"seg_0001",
                  "speaker":"spk_1","start":0.0,"end":0.4}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::InputAudioTranscriptionSegment(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!((e.speaker.as_ref(), e.start, e.end), ("spk_1", 0.0, 0.4));
        },
    },
    // ---- input audio buffer ----
    Case {
        json: r#"{"type":"input_audio_buffer.speech_started","event_id":"event_1516",
                  "audio_start_ms":1000,"item_id":"msg_003"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::SpeechStarted(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!((e.audio_start_ms, e.item_id.as_ref()), (1000, "msg_003"));
            assert!(matches!(e.item_id, Cow::Borrowed(_)));
        },
    },
    Case {
        json: r#"{"type":"input_audio_buffer.speech_stopped","event_id":"event_1718",
                  "audio_end_ms":2000,"item_id":"msg_003"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::SpeechStopped(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.audio_end_ms, 2000);
        },
    },
    Case {
        json: r#"{"type":"input_audio_buffer.committed","event_id":"event_1121",
                  "previous_item_id":"msg_001","item_id":"msg_002"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::InputAudioBufferCommitted(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.previous_item_id.as_deref(), Some("msg_001"));
            assert!(matches!(e.previous_item_id, Some(Cow::Borrowed(_))));
        },
    },
    Case {
        json: r#"{"type":"input_audio_buffer.cleared","event_id":"event_1314"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::InputAudioBufferCleared(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.event_id, "event_1314");
        },
    },
    Case {
        json: r#"{"type":"input_audio_buffer.timeout_triggered","event_id":"event_CEKKrf1KTGvemCPyiJTJ2",
                  "audio_start_ms":13216,"audio_end_ms":19232,"item_id":"item_CEKKrf1KxqasQLk4ONFxp"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::InputAudioBufferTimeoutTriggered(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!((e.audio_start_ms, e.audio_end_ms), (13216, 19232));
        },
    },
    Case {
        // The schema lists no event_id for this SIP-only event.
        json: r#"{"type":"input_audio_buffer.dtmf_event_received","event":"5","received_at":1763605109}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::InputAudioBufferDtmfEventReceived(d) = e else {
                panic!("{e:?}")
            };
            assert_eq!((d.event.as_ref(), d.received_at), ("5", 1_763_605_109));
            assert_eq!(e.event_id(), "");
        },
    },
    // ---- responses ----
    Case {
        json: r#"{"type":"response.created","event_id":"event_C9G8pqbTEddBSIxbBN6Os",
                  "response":{"object":"realtime.response","id":"resp_C9G8p7IH2WxLbkgPNouYL",
                    "status":"in_progress","status_details":null,"output":[],
                    "conversation_id":"conv_C9G8mmBkLhQJwCon3hoJN","output_modalities":["audio"],
                    "max_output_tokens":"inf","audio":{"output":{"format":{"type":"audio/pcm","rate":24000},
                    "voice":"marin"}},"usage":null,"metadata":null}}"#,
        reserialized: Some(
            r#"{"type":"response.created","event_id":"event_C9G8pqbTEddBSIxbBN6Os",
                "response":{"object":"realtime.response","id":"resp_C9G8p7IH2WxLbkgPNouYL",
                  "status":"in_progress","output":[],
                  "conversation_id":"conv_C9G8mmBkLhQJwCon3hoJN","output_modalities":["audio"],
                  "max_output_tokens":"inf","audio":{"output":{"format":{"type":"audio/pcm","rate":24000},
                  "voice":"marin"}}}}"#,
        ),
        check: |e| {
            let ServerEvent::ResponseCreated(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.response.status, Some(ResponseStatus::InProgress));
            assert_eq!(e.response.id.as_deref(), Some("resp_C9G8p7IH2WxLbkgPNouYL"));
            assert!(e.response.output_items().is_empty());
        },
    },
    Case {
        json: r#"{"type":"response.done","event_id":"event_3132",
                  "response":{"id":"resp_001","object":"realtime.response","status":"completed",
                    "output":[{"id":"fc_001","object":"realtime.item","type":"function_call",
                      "status":"completed","name":"end_call","call_id":"call_001",
                      "arguments":"{\"reason\":\"done\"}"},
                      {"id":"mcp_1","type":"mcp_call","server_label":"crm","name":"lookup","arguments":"{}"}],
                    "conversation_id":"conv_1","metadata":{"topic":"greeting"},
                    "usage":{"total_tokens":253,"input_tokens":132,"output_tokens":121,
                      "input_token_details":{"text_tokens":119,"audio_tokens":13,"image_tokens":0,
                        "cached_tokens":64,"cached_tokens_details":{"text_tokens":64,"audio_tokens":0,"image_tokens":0}},
                      "output_token_details":{"text_tokens":30,"audio_tokens":91}}}}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::ResponseDone(e) = e else {
                panic!("{e:?}")
            };
            let r = &e.response;
            assert!(r.is_completed());
            let Item::FunctionCall(f) = &r.output_items()[0] else {
                panic!("{r:?}")
            };
            assert_eq!(
                (f.name.as_str(), f.call_id.as_deref()),
                ("end_call", Some("call_001"))
            );
            assert_eq!(f.arguments, r#"{"reason":"done"}"#);
            assert!(matches!(r.output_items()[1], Item::Unknown(_)));
            assert_eq!(r.output_items()[1].item_type(), "mcp_call");
            let usage = r.usage.as_ref().expect("usage");
            assert_eq!(usage.total_tokens, Some(253));
            let details = usage.input_token_details.as_ref().expect("details");
            assert_eq!(details.cached_tokens, Some(64));
            assert_eq!(
                usage
                    .output_token_details
                    .as_ref()
                    .and_then(|d| d.audio_tokens),
                Some(91)
            );
        },
    },
    Case {
        json: r#"{"type":"response.done","event_id":"event_9",
                  "response":{"id":"resp_002","object":"realtime.response","status":"cancelled",
                    "status_details":{"type":"cancelled","reason":"turn_detected"},"output":[]}}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::ResponseDone(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.response.status, Some(ResponseStatus::Cancelled));
            assert_eq!(e.response.reason(), Some(&StatusReason::TurnDetected));
        },
    },
    Case {
        json: r#"{"type":"response.done","event_id":"event_10",
                  "response":{"id":"resp_003","status":"failed","status_details":{"type":"failed",
                    "error":{"type":"server_error","code":"internal","message":"boom"}},
                    "some_new_field":true}}"#,
        reserialized: Some(
            r#"{"type":"response.done","event_id":"event_10",
                "response":{"id":"resp_003","status":"failed","status_details":{"type":"failed",
                  "error":{"type":"server_error","code":"internal","message":"boom"}}}}"#,
        ),
        check: |e| {
            let ServerEvent::ResponseDone(e) = e else {
                panic!("{e:?}")
            };
            let err = e
                .response
                .status_details
                .as_ref()
                .and_then(|d| d.error.as_ref());
            assert_eq!(err.and_then(|e| e.code.as_deref()), Some("internal"));
        },
    },
    Case {
        json: r#"{"type":"response.output_item.added","event_id":"event_3334","response_id":"resp_001",
                  "output_index":0,"item":{"id":"msg_007","object":"realtime.item","type":"message",
                  "status":"in_progress","role":"assistant","content":[]}}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::OutputItemAdded(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!((e.response_id.as_ref(), e.output_index), ("resp_001", 0));
            assert_eq!(e.item.id(), Some("msg_007"));
        },
    },
    Case {
        json: r#"{"type":"response.output_item.done","event_id":"event_3536","response_id":"resp_001",
                  "output_index":1,"item":{"id":"fc_001","object":"realtime.item","type":"function_call",
                  "status":"completed","name":"transfer_call","call_id":"call_9","arguments":"{}"}}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::OutputItemDone(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.item.item_type(), "function_call");
            assert_eq!(e.output_index, 1);
        },
    },
    Case {
        json: r#"{"type":"response.content_part.added","event_id":"event_3738","response_id":"resp_001",
                  "item_id":"msg_007","output_index":0,"content_index":0,"part":{"type":"audio","transcript":""}}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::ContentPartAdded(e) = e else {
                panic!("{e:?}")
            };
            assert!(matches!(e.part, ContentPart::Audio { .. }));
        },
    },
    Case {
        json: r#"{"type":"response.content_part.done","event_id":"event_3940","response_id":"resp_001",
                  "item_id":"msg_007","output_index":0,"content_index":0,
                  "part":{"type":"text","text":"Sure, I can help with that."}}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::ContentPartDone(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.part.text(), Some("Sure, I can help with that."));
        },
    },
    Case {
        json: r#"{"type":"response.output_audio.delta","event_id":"event_4950","response_id":"resp_001",
                  "item_id":"msg_008","output_index":0,"content_index":0,"delta":"Base64EncodedAudioDelta"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::OutputAudioDelta(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.delta, "Base64EncodedAudioDelta");
            for s in [&e.delta, &e.item_id, &e.response_id, &e.event_id] {
                assert!(matches!(s, Cow::Borrowed(_)), "hot path copied a string");
            }
        },
    },
    Case {
        json: r#"{"type":"response.output_audio.done","event_id":"event_5152","response_id":"resp_001",
                  "item_id":"msg_008","output_index":0,"content_index":0}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::OutputAudioDone(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.item_id, "msg_008");
        },
    },
    Case {
        json: r#"{"type":"response.output_audio_transcript.delta","event_id":"event_4546",
                  "response_id":"resp_001","item_id":"msg_008","output_index":0,"content_index":0,
                  "delta":"Hello, how can I a"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::OutputAudioTranscriptDelta(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.delta, "Hello, how can I a");
        },
    },
    Case {
        json: r#"{"type":"response.output_audio_transcript.done","event_id":"event_4748",
                  "response_id":"resp_001","item_id":"msg_008","output_index":0,"content_index":0,
                  "transcript":"Hello, how can I assist you today?"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::OutputAudioTranscriptDone(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.transcript, "Hello, how can I assist you today?");
        },
    },
    Case {
        json: r#"{"type":"response.output_text.delta","event_id":"event_4142","response_id":"resp_001",
                  "item_id":"msg_007","output_index":0,"content_index":0,"delta":"Sure, I can h"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::OutputTextDelta(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.delta, "Sure, I can h");
        },
    },
    Case {
        json: r#"{"type":"response.output_text.done","event_id":"event_4344","response_id":"resp_001",
                  "item_id":"msg_007","output_index":0,"content_index":0,
                  "text":"Sure, I can help with that."}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::OutputTextDone(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.text, "Sure, I can help with that.");
        },
    },
    Case {
        json: r#"{"type":"response.function_call_arguments.delta","event_id":"event_5354",
                  "response_id":"resp_002","item_id":"fc_001","output_index":0,"call_id":"call_001",
                  "delta":"{\"location\": \"San\""}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::FunctionCallArgumentsDelta(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.delta, r#"{"location": "San""#);
            // An escaped string cannot be borrowed; it is unescaped into an owned string.
            assert!(matches!(e.delta, Cow::Owned(_)));
            assert_eq!(e.call_id, "call_001");
        },
    },
    Case {
        json: r#"{"type":"response.function_call_arguments.done","event_id":"event_5556",
                  "response_id":"resp_002","item_id":"fc_001","output_index":0,"call_id":"call_001",
                  "name":"end_call","arguments":"{\"reason\": \"caller said bye\"}"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::FunctionCallArgumentsDone(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.name, "end_call");
            let args: Value = serde_json::from_str(&e.arguments).expect("arguments JSON");
            assert_eq!(args["reason"], "caller said bye");
        },
    },
    Case {
        json: r#"{"type":"rate_limits.updated","event_id":"event_5758","rate_limits":[
                  {"name":"requests","limit":1000,"remaining":999,"reset_seconds":60.0},
                  {"name":"tokens","limit":50000,"remaining":49950,"reset_seconds":0.06}]}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::RateLimitsUpdated(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.rate_limits.len(), 2);
            assert_eq!(e.rate_limits[1].remaining, Some(49950));
        },
    },
    Case {
        json: r#"{"type":"error","event_id":"event_890","error":{"type":"invalid_request_error",
                  "code":"invalid_event","message":"The 'type' field is missing.","param":null,
                  "event_id":"event_567"}}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::Error(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.error.kind, "invalid_request_error");
            assert_eq!(e.error.error_code(), Some(ErrorCode::InvalidEvent));
            assert_eq!(e.error.event_id.as_deref(), Some("event_567"));
            assert!(!e.error.is_harmless());
        },
    },
    Case {
        json: r#"{"type":"output_audio_buffer.started","event_id":"event_abc123","response_id":"resp_abc123"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::OutputAudioBufferStarted(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.response_id, "resp_abc123");
        },
    },
    Case {
        json: r#"{"type":"output_audio_buffer.stopped","event_id":"event_abc124","response_id":"resp_abc123"}"#,
        reserialized: None,
        check: |e| assert!(matches!(e, ServerEvent::OutputAudioBufferStopped(_))),
    },
    Case {
        json: r#"{"type":"output_audio_buffer.cleared","event_id":"event_abc125","response_id":"resp_abc123"}"#,
        reserialized: None,
        check: |e| assert!(matches!(e, ServerEvent::OutputAudioBufferCleared(_))),
    },
    // ---- MCP ----
    Case {
        json: r#"{"type":"mcp_list_tools.in_progress","event_id":"event_6101","item_id":"mcp_list_tools_001"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::McpListToolsInProgress(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.item_id, "mcp_list_tools_001");
        },
    },
    Case {
        json: r#"{"type":"mcp_list_tools.completed","event_id":"event_6102","item_id":"mcp_list_tools_001"}"#,
        reserialized: None,
        check: |e| assert!(matches!(e, ServerEvent::McpListToolsCompleted(_))),
    },
    Case {
        json: r#"{"type":"mcp_list_tools.failed","event_id":"event_6103","item_id":"mcp_list_tools_001"}"#,
        reserialized: None,
        check: |e| assert!(matches!(e, ServerEvent::McpListToolsFailed(_))),
    },
    Case {
        json: r#"{"type":"response.mcp_call_arguments.delta","event_id":"event_6201","response_id":"resp_001",
                  "item_id":"mcp_call_001","output_index":0,"delta":"{\"partial\":true}","obfuscation":"xyz"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::McpCallArgumentsDelta(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.obfuscation.as_deref(), Some("xyz"));
        },
    },
    Case {
        json: r#"{"type":"response.mcp_call_arguments.done","event_id":"event_6202","response_id":"resp_001",
                  "item_id":"mcp_call_001","output_index":0,"arguments":"{\"q\":\"weather\"}"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::McpCallArgumentsDone(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.arguments, r#"{"q":"weather"}"#);
        },
    },
    Case {
        json: r#"{"type":"response.mcp_call.in_progress","event_id":"event_6301","output_index":0,
                  "item_id":"mcp_call_001"}"#,
        reserialized: None,
        check: |e| {
            let ServerEvent::McpCallInProgress(e) = e else {
                panic!("{e:?}")
            };
            assert_eq!(e.output_index, 0);
        },
    },
    Case {
        json: r#"{"type":"response.mcp_call.completed","event_id":"event_6302","output_index":0,
                  "item_id":"mcp_call_001"}"#,
        reserialized: None,
        check: |e| assert!(matches!(e, ServerEvent::McpCallCompleted(_))),
    },
    Case {
        json: r#"{"type":"response.mcp_call.failed","event_id":"event_6303","output_index":0,
                  "item_id":"mcp_call_001"}"#,
        reserialized: None,
        check: |e| assert!(matches!(e, ServerEvent::McpCallFailed(_))),
    },
];

#[test]
fn every_case_round_trips() {
    for case in CASES {
        run(case);
    }
}

#[test]
fn every_known_event_type_has_a_case() {
    let covered: BTreeSet<String> = CASES
        .iter()
        .map(|c| {
            value(c.json)["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let known: BTreeSet<String> = ServerEvent::KNOWN_TYPES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(covered, known);
    // §6.6 + §6.6b list 46 event types.
    assert_eq!(known.len(), 46);
}

#[test]
fn key_order_does_not_matter() {
    // `event_id` first takes the two-pass path; the result must be identical and still
    // borrowed.
    let type_first = r#"{"type":"response.output_audio.delta","event_id":"e1","response_id":"r1","item_id":"i1","output_index":0,"content_index":0,"delta":"AAAA"}"#;
    let type_last = r#"{"event_id":"e1","response_id":"r1","item_id":"i1","output_index":0,"content_index":0,"delta":"AAAA","type":"response.output_audio.delta"}"#;
    let pretty = "{\n  \"type\" : \"response.output_audio.delta\",\n  \"event_id\": \"e1\", \"response_id\": \"r1\",\n  \"item_id\": \"i1\", \"output_index\": 0, \"content_index\": 0, \"delta\": \"AAAA\"\n}\n";
    let a = ServerEvent::parse(type_first).expect("type first");
    let b = ServerEvent::parse(type_last).expect("type last");
    let c = ServerEvent::parse(pretty).expect("pretty");
    assert_eq!(a, b);
    assert_eq!(a, c);
    let ServerEvent::OutputAudioDelta(d) = b else {
        panic!("{b:?}")
    };
    assert!(matches!(d.delta, Cow::Borrowed("AAAA")));

    let started = r#"{"event_id":"e","item_id":"i","audio_start_ms":5,"type":"input_audio_buffer.speech_started"}"#;
    assert!(matches!(
        ServerEvent::parse(started),
        Ok(ServerEvent::SpeechStarted(ref s)) if s.audio_start_ms == 5
    ));
}

#[test]
fn escaped_type_tag_still_dispatches() {
    let text = r#"{"type":"response.output_audio\u002edelta","event_id":"e","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"AA=="}"#;
    assert!(matches!(
        ServerEvent::parse(text),
        Ok(ServerEvent::OutputAudioDelta(_))
    ));
}

#[test]
fn unknown_event_types_are_kept_raw() {
    for text in [
        r#"{"type":"some.future.event","event_id":"event_1","payload":{"a":[1,2,3]}}"#,
        // Beta-only names are not GA events: they parse as Unknown, never fail.
        r#"{"type":"response.audio.delta","event_id":"event_2","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"AA=="}"#,
        r#"{"type":"response.text.delta","event_id":"event_3","delta":"x"}"#,
        r#"{"event_id":"event_4","type":"transcription_session.updated","session":{}}"#,
        r#"{"type":"","event_id":"event_5"}"#,
    ] {
        let event = ServerEvent::parse(text).expect("unknown events parse");
        let ServerEvent::Unknown { event_type, raw } = &event else {
            panic!("expected Unknown: {event:?}")
        };
        assert_eq!(Some(event_type.as_str()), value(text)["type"].as_str());
        assert_eq!(raw, &value(text));
        assert!(event.event_id().starts_with("event_"));
        assert_eq!(value(&event.to_json()), value(text));
        assert_eq!(ServerEvent::parse_owned(text).expect("owned"), event);
    }
}

#[test]
fn unknown_fields_are_ignored() {
    let text = r#"{"type":"input_audio_buffer.speech_started","event_id":"e","audio_start_ms":1,"item_id":"i",
                   "obfuscation":"zz","new_object":{"deep":[{"x":null}]},"new_number":1e300}"#;
    let ServerEvent::SpeechStarted(s) = ServerEvent::parse(text).expect("parses") else {
        panic!()
    };
    assert_eq!(s.item_id, "i");
    // Unknown item fields and content parts are kept/ignored, not fatal.
    let text = r#"{"type":"conversation.item.added","event_id":"e","item":{"id":"item_1","type":"message",
                   "role":"user","content":[{"type":"input_video","url":"x"}],"new":1}}"#;
    let ServerEvent::ConversationItemAdded(e) = ServerEvent::parse(text).expect("parses") else {
        panic!()
    };
    let Item::Message(m) = &e.item else {
        panic!("{:?}", e.item)
    };
    assert!(matches!(m.content[0], ContentPart::Unknown(_)));
    // A new role is an open enum value, not an error.
    let text = r#"{"type":"conversation.item.added","event_id":"e","item":{"type":"message","role":"developer","content":[]}}"#;
    let ServerEvent::ConversationItemAdded(e) = ServerEvent::parse(text).expect("parses") else {
        panic!()
    };
    let Item::Message(m) = &e.item else {
        panic!("{:?}", e.item)
    };
    assert_eq!(m.role, Role::Other("developer".into()));
    // A new response status too.
    let text = r#"{"type":"response.done","event_id":"e","response":{"status":"paused","status_details":{"reason":"thinking"}}}"#;
    let ServerEvent::ResponseDone(e) = ServerEvent::parse(text).expect("parses") else {
        panic!()
    };
    assert_eq!(
        e.response.status,
        Some(ResponseStatus::Other("paused".into()))
    );
    assert_eq!(
        e.response.reason(),
        Some(&StatusReason::Other("thinking".into()))
    );
}

#[test]
fn missing_event_id_is_tolerated() {
    let text = r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"AA=="}"#;
    let event = ServerEvent::parse(text).expect("parses");
    assert_eq!(event.event_id(), "");
    assert_eq!(value(&event.to_json()), value(text));
}

#[test]
fn malformed_known_events_name_the_event() {
    let cases = [
        // required field missing
        (
            r#"{"type":"response.output_audio.delta","event_id":"e","response_id":"r","item_id":"i","output_index":0,"content_index":0}"#,
            "response.output_audio.delta",
        ),
        // wrong type
        (
            r#"{"type":"response.output_audio.delta","event_id":"e","response_id":"r","item_id":"i","output_index":"0","content_index":0,"delta":"AA"}"#,
            "response.output_audio.delta",
        ),
        // negative offset
        (
            r#"{"type":"input_audio_buffer.speech_started","event_id":"e","audio_start_ms":-5,"item_id":"i"}"#,
            "input_audio_buffer.speech_started",
        ),
        // delta null
        (
            r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":null}"#,
            "response.output_audio.delta",
        ),
        // item missing
        (
            r#"{"type":"conversation.item.added","event_id":"e"}"#,
            "conversation.item.added",
        ),
        // error object missing
        (r#"{"type":"error","event_id":"e"}"#, "error"),
        // response not an object
        (
            r#"{"type":"response.done","event_id":"e","response":"oops"}"#,
            "response.done",
        ),
        // duplicate field
        (
            r#"{"type":"conversation.item.deleted","item_id":"a","item_id":"b"}"#,
            "conversation.item.deleted",
        ),
        // truncated text after a known type
        (
            r#"{"type":"response.output_audio.delta","delta":"AAA"#,
            "response.output_audio.delta",
        ),
        // session with a wrongly typed field
        (
            r#"{"type":"session.updated","event_id":"e","session":{"type":"realtime","instructions":5}}"#,
            "session.updated",
        ),
    ];
    for (text, event_type) in cases {
        let err = ServerEvent::parse(text).expect_err(text);
        assert_eq!(err.event_type(), Some(event_type), "{text}: {err}");
        assert!(matches!(err, ParseError::Event { .. }));
        assert!(err.to_string().contains(event_type), "{err}");
    }
}

#[test]
fn non_events_are_typed_errors() {
    for text in [
        "",
        " ",
        "null",
        "5",
        "\"type\"",
        "[]",
        r#"["response.output_audio.delta"]"#,
        "{",
        r#"{"type":"x","#,
        "{}}",
    ] {
        let err = ServerEvent::parse(text).expect_err(text);
        assert!(matches!(err, ParseError::Json(_)), "{text}: {err:?}");
    }
    for text in [
        "{}",
        r#"{"event_id":"e"}"#,
        r#"{"type":5}"#,
        r#"{"type":null}"#,
        r#"{"type":{"a":"b"}}"#,
        r#"{"nested":{"type":"error"}}"#,
    ] {
        let err = ServerEvent::parse(text).expect_err(text);
        assert!(matches!(err, ParseError::MissingType), "{text}: {err:?}");
    }
}

#[test]
fn error_helpers() {
    let parse = |code: &str, message: &str| {
        let text = format!(
            r#"{{"type":"error","event_id":"e","error":{{"type":"invalid_request_error","code":{code},"message":"{message}","param":null,"event_id":null}}}}"#
        );
        let ServerEvent::Error(e) = ServerEvent::parse(&text).expect("error event").into_owned()
        else {
            panic!()
        };
        e.error
    };
    let e = parse(
        r#""response_cancel_not_active""#,
        "Cancellation failed: no active response found",
    );
    assert!(e.is_harmless() && !e.is_session_fatal());
    assert_eq!(e.error_code(), Some(ErrorCode::ResponseCancelNotActive));
    let e = parse(r#""conversation_already_has_active_response""#, "busy");
    assert!(e.is_active_response_conflict() && !e.is_harmless());
    let e = parse(r#""input_audio_buffer_commit_empty""#, "buffer too small");
    assert!(e.is_commit_empty());
    let e = parse(
        "null",
        "Error committing input audio buffer: the buffer is empty.",
    );
    assert!(e.is_commit_empty());
    assert_eq!(e.error_code(), None);
    let e = parse(
        r#""session_expired""#,
        "Your session hit the maximum duration of 60 minutes.",
    );
    assert!(e.is_session_fatal());
    let e = parse(r#""beta_api_shape_disabled""#, "beta");
    assert!(e.is_session_fatal());
    let e = parse(r#""brand_new_code""#, "x");
    assert_eq!(
        e.error_code(),
        Some(ErrorCode::Other("brand_new_code".into()))
    );
    // A minimal error object (type/message missing) still parses.
    let ServerEvent::Error(e) =
        ServerEvent::parse(r#"{"type":"error","error":{"code":"x"}}"#).expect("minimal")
    else {
        panic!()
    };
    assert_eq!(e.error.message, "");
}

#[test]
fn into_owned_detaches_from_the_input() {
    let owned: ServerEvent<'static> = {
        let text = String::from(
            r#"{"type":"response.output_audio.delta","event_id":"e","response_id":"r","item_id":"i","output_index":2,"content_index":1,"delta":"QUJD"}"#,
        );
        ServerEvent::parse(&text).expect("parses").into_owned()
    };
    let ServerEvent::OutputAudioDelta(d) = owned else {
        panic!()
    };
    assert_eq!(
        (d.delta.as_ref(), d.output_index, d.content_index),
        ("QUJD", 2, 1)
    );
}

#[test]
fn debug_output_never_contains_audio() {
    let audio = "U0VDUkVUQVVESU9QQVlMT0FE";
    let text = format!(
        r#"{{"type":"response.output_audio.delta","event_id":"e","response_id":"r","item_id":"i","output_index":0,"content_index":0,"delta":"{audio}"}}"#
    );
    let event = ServerEvent::parse(&text).expect("parses");
    let debug = format!("{event:?}");
    assert!(!debug.contains(audio), "{debug}");
    assert!(debug.contains("<24 base64 chars>"), "{debug}");
    assert!(debug.contains("item_id"), "{debug}");

    let text = format!(
        r#"{{"type":"conversation.item.retrieved","event_id":"e","item":{{"type":"message","role":"user","content":[{{"type":"input_audio","audio":"{audio}","transcript":"hi"}}]}}}}"#
    );
    let debug = format!("{:?}", ServerEvent::parse(&text).expect("parses"));
    assert!(!debug.contains(audio), "{debug}");
    assert!(debug.contains("\"hi\""), "{debug}");
}
