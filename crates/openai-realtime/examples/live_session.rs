//! GPT-Live without a socket: build the `session.start` for a Twilio call, then walk a recorded
//! server sequence the way a bridge would.
//!
//! Run with `cargo run -p openai-realtime --example live_session`.
#![allow(clippy::print_stdout)]

use openai_realtime::live::{
    AudioFormat, ClientEvent, CloseReason, Delegation, FunctionTool, ResponsesDelegationConfig,
    ServerEvent, SessionConfig, SessionConfigBuilder, ToolChoice, models, write_input_audio_append,
};
use serde_json::json;

const INSTRUCTIONS: &str = "You are Robin, the phone assistant for Acme Dental. Speak warmly and briefly.
Backchannel policy: Use light backchannels.
Interruption policy: Stop speaking when the caller interrupts. Listen to what they say.
Delegation policy:
Backend tools:
- Appointments: look up, book, move or cancel appointments.
Delegate to the backend when:
- The caller asks about or wants to change an appointment.
Do not delegate to the backend when:
- You can answer from the conversation.
Delegate before giving an answer that depends on backend work. Do not guess the result while waiting.";

/// A session as it might be recorded from the wire (event ids shortened).
const RECORDED: &[&str] = &[
    r#"{"type":"session.started","event_id":"evt_01","client_event_id":"start_CA5f0e","session":{"id":"live_u1_3f9c","expires_at":1796000000,"status":"active","model":"gpt-live-1","audio":{"format":{"type":"audio/pcmu","rate":8000},"output":{"voice":"marin"}},"delegation":{"type":"responses","acknowledgement_delay_ms":0,"responses":{"model":"gpt-5.6-luna"}},"input":[],"store":false}}"#,
    r#"{"type":"session.instructions.appended","event_id":"evt_02","client_event_id":"greet_1","start_ms":1200,"end_ms":1200}"#,
    r#"{"type":"session.output_audio.delta","delta":"/////39/f3//////"}"#,
    r#"{"type":"session.output_transcript.delta","event_id":"evt_03","delta":"Hi, this is Robin from Acme Dental.","start_ms":1400,"end_ms":3200}"#,
    r#"{"type":"session.input_transcript.delta","event_id":"evt_04","delta":" Can I move my appointment?","start_ms":4100,"end_ms":5600}"#,
    r#"{"type":"session.delegation.created","event_id":"evt_05","offset_ms":5700,"delegation":{"id":"item_9Tk2","type":"delegation","target":"responses","response_id":"resp_1"}}"#,
    r#"{"type":"response.event","event_id":"evt_06","delegation_id":"item_9Tk2","event":{"type":"response.output_item.done","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_8Qx2","name":"find_appointments","arguments":"{\"date\":\"2026-12-03\"}","status":"completed"}}}"#,
    r#"{"type":"response.event","event_id":"evt_07","delegation_id":"item_9Tk2","event":{"type":"response.completed","response":{"id":"resp_1","status":"completed","output":[],"usage":{"input_tokens":812,"output_tokens":41,"total_tokens":853}}}}"#,
    r#"{"type":"session.usage.updated","event_id":"evt_08","usage":{"seconds":15.0},"context_window":{"usage_ratio":0.02}}"#,
    r#"{"type":"session.brand_new_event","event_id":"evt_09","whatever":true}"#,
    r#"{"type":"session.closed","event_id":"evt_10","client_event_id":"close_1","reason":"close_requested","session":{"id":"live_u1_3f9c","expires_at":1796000000,"model":"gpt-live-1","status":"active"},"usage":{"seconds":21.5}}"#,
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The first message: μ-law 8 kHz both ways, plus a Responses backend with one tool.
    let backend = ResponsesDelegationConfig::new("gpt-5.6-luna")
        .with_instructions("You support a live phone call. Use the tools; confirm before booking.")
        .with_tool(
            FunctionTool::new("find_appointments")
                .with_description("List open appointment slots for a date.")
                .with_parameters(json!({
                    "type": "object",
                    "properties": {"date": {"type": "string"}},
                    "required": ["date"],
                    "additionalProperties": false
                }))
                .with_strict(true),
        )
        .with_tool_choice(ToolChoice::Auto)
        .with_parallel_tool_calls(false);
    let config = SessionConfigBuilder::from(SessionConfig::telephony(
        models::GPT_LIVE_1,
        INSTRUCTIONS,
        "marin",
    ))
    .delegation(Delegation::responses(backend))
    .store(false)
    .safety_identifier("caller-7b1d9e")
    .build()?;
    let requested_format = config.audio_format();
    let start = ClientEvent::session_start(config).with_event_id("start_CA5f0e");
    println!("→ {}", start.to_json());

    // 2. Caller audio: the Twilio payload goes through untouched, into a reused buffer.
    let mut frame = String::with_capacity(512);
    write_input_audio_append(&mut frame, "//7+/f39/v7+/w==");
    println!("→ {frame}");

    // 3. The server side of the call.
    let mut transcript = String::new();
    for text in RECORDED {
        let event = match ServerEvent::parse(text) {
            Ok(event) => event,
            Err(error) => {
                println!("! unparseable event: {error}");
                continue;
            }
        };
        match &event {
            ServerEvent::SessionStarted(started) => {
                let session = &started.session;
                if session.audio_format() != requested_format {
                    return Err(format!(
                        "codec mismatch: asked {requested_format:?}, got {:?}",
                        session.audio_format()
                    )
                    .into());
                }
                println!(
                    "← started {} ({}), expires at {}",
                    session.id, session.model, session.expires_at
                );
                let greet = ClientEvent::instructions_append(
                    "Greet the caller now in English, then listen.",
                    None,
                )
                .with_event_id("greet_1");
                println!("→ {}", greet.to_json());
            }
            ServerEvent::OutputAudioDelta(audio) => {
                // Forward `audio.delta` as Twilio `media.payload`, as is.
                println!("← {} base64 chars of μ-law for Twilio", audio.delta.len());
            }
            ServerEvent::InputTranscriptDelta(delta) => {
                transcript.push_str("caller:");
                transcript.push_str(&delta.delta);
                transcript.push('\n');
            }
            ServerEvent::OutputTranscriptDelta(delta) => {
                transcript.push_str("robin: ");
                transcript.push_str(&delta.delta);
                transcript.push('\n');
            }
            ServerEvent::InstructionsAppended(ack) => {
                println!("← instructions on the timeline at {} ms", ack.start_ms);
            }
            ServerEvent::DelegationCreated(created) => {
                println!(
                    "← delegation {} to {} at {} ms",
                    created.delegation.id, created.delegation.target, created.offset_ms
                );
            }
            ServerEvent::ResponseEvent(response) => {
                if let Some(call) = response.function_call() {
                    println!("← backend calls {}({})", call.name, call.arguments);
                    let output = call.output_event(r#"{"slots":["10:00","14:30"]}"#);
                    println!("→ {}", output.to_json());
                    println!("→ {}", ClientEvent::response_create().to_json());
                }
                if let Some(usage) = response.usage() {
                    println!(
                        "← backend response {} used {} tokens",
                        response.response_id().unwrap_or("?"),
                        usage.total_tokens
                    );
                }
            }
            ServerEvent::UsageUpdated(update) => {
                println!("← {:.1} voice seconds so far", update.usage.seconds);
            }
            ServerEvent::SessionClosed(closed) => {
                let seconds = closed.usage.map_or(f64::NAN, |usage| usage.seconds);
                let expected = closed.reason == CloseReason::CLOSE_REQUESTED;
                println!(
                    "← closed: {} (expected: {expected}), final {seconds:.1} s",
                    closed.reason
                );
            }
            other => println!("← ignored {}", other.event_type()),
        }
    }
    println!("\ntranscript:\n{transcript}");
    debug_assert_eq!(requested_format, Some(AudioFormat::Pcmu));
    Ok(())
}
