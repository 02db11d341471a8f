//! Builds the telephony `session.update`, then parses a recorded Realtime GA server-event
//! sequence (one spoken turn with a barge-in and a tool call) and prints the typed events.
//!
//! Run: `cargo run -p openai-realtime --example realtime_session`
#![allow(clippy::print_stdout)]

use openai_realtime::realtime::{
    ClientEvent, Item, ServerEvent, SessionConfig, Voice, write_input_audio_append,
};

/// A recorded sequence, in the order a server-VAD turn typically produces (PROTOCOLS §6.6).
const RECORDED: &[&str] = &[
    r#"{"type":"session.created","event_id":"event_1","session":{"type":"realtime","object":"realtime.session","id":"sess_1","model":"gpt-realtime-2.1","expires_at":1756324625,"output_modalities":["audio"],"audio":{"input":{"format":{"type":"audio/pcm","rate":24000},"turn_detection":{"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,"silence_duration_ms":200,"idle_timeout_ms":null,"create_response":true,"interrupt_response":true},"transcription":null,"noise_reduction":null},"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"alloy","speed":1.0}},"tools":[],"tool_choice":"auto","max_output_tokens":"inf","tracing":null}}"#,
    r#"{"type":"session.updated","event_id":"event_2","session":{"type":"realtime","object":"realtime.session","id":"sess_1","model":"gpt-realtime-2.1","audio":{"input":{"format":{"type":"audio/pcmu"}},"output":{"format":{"type":"audio/pcmu"},"voice":"marin"}}}}"#,
    r#"{"type":"input_audio_buffer.speech_started","event_id":"event_3","audio_start_ms":480,"item_id":"item_user_1"}"#,
    r#"{"type":"input_audio_buffer.speech_stopped","event_id":"event_4","audio_end_ms":2120,"item_id":"item_user_1"}"#,
    r#"{"type":"input_audio_buffer.committed","event_id":"event_5","previous_item_id":null,"item_id":"item_user_1"}"#,
    r#"{"type":"conversation.item.added","event_id":"event_6","previous_item_id":null,"item":{"id":"item_user_1","object":"realtime.item","type":"message","status":"completed","role":"user","content":[{"type":"input_audio","transcript":null}]}}"#,
    r#"{"type":"response.created","event_id":"event_7","response":{"id":"resp_1","object":"realtime.response","status":"in_progress","output":[]}}"#,
    r#"{"type":"rate_limits.updated","event_id":"event_8","rate_limits":[{"name":"tokens","limit":40000,"remaining":39000,"reset_seconds":1.5}]}"#,
    r#"{"type":"response.output_item.added","event_id":"event_9","response_id":"resp_1","output_index":0,"item":{"id":"item_asst_1","object":"realtime.item","type":"message","status":"in_progress","role":"assistant","content":[]}}"#,
    r#"{"type":"response.content_part.added","event_id":"event_10","response_id":"resp_1","item_id":"item_asst_1","output_index":0,"content_index":0,"part":{"type":"audio","transcript":""}}"#,
    r#"{"type":"response.output_audio.delta","event_id":"event_11","response_id":"resp_1","item_id":"item_asst_1","output_index":0,"content_index":0,"delta":"//7+/f7///////////8="}"#,
    r#"{"type":"response.output_audio_transcript.delta","event_id":"event_12","response_id":"resp_1","item_id":"item_asst_1","output_index":0,"content_index":0,"delta":"Sure, let me"}"#,
    r#"{"type":"input_audio_buffer.speech_started","event_id":"event_13","audio_start_ms":3010,"item_id":"item_user_2"}"#,
    r#"{"type":"response.output_audio.done","event_id":"event_14","response_id":"resp_1","item_id":"item_asst_1","output_index":0,"content_index":0}"#,
    r#"{"type":"response.done","event_id":"event_15","response":{"id":"resp_1","object":"realtime.response","status":"cancelled","status_details":{"type":"cancelled","reason":"turn_detected"},"output":[{"id":"item_asst_1","type":"message","status":"incomplete","role":"assistant","content":[{"type":"output_audio","transcript":"Sure, let me"}]}]}}"#,
    r#"{"type":"conversation.item.truncated","event_id":"event_16","item_id":"item_asst_1","content_index":0,"audio_end_ms":640}"#,
    r#"{"type":"response.function_call_arguments.done","event_id":"event_17","response_id":"resp_2","item_id":"item_fc_1","output_index":0,"call_id":"call_1","name":"end_call","arguments":"{\"reason\":\"caller said goodbye\"}"}"#,
    r#"{"type":"response.done","event_id":"event_18","response":{"id":"resp_2","status":"completed","output":[{"id":"item_fc_1","type":"function_call","status":"completed","name":"end_call","call_id":"call_1","arguments":"{\"reason\":\"caller said goodbye\"}"}],"usage":{"total_tokens":420,"input_tokens":300,"output_tokens":120}}}"#,
    r#"{"type":"error","event_id":"event_19","error":{"type":"invalid_request_error","code":"response_cancel_not_active","message":"Cancellation failed: no active response found","param":null,"event_id":"cancel_1"}}"#,
    r#"{"type":"response.some_new_event","event_id":"event_20","detail":"added after this crate was written"}"#,
];

fn main() {
    // 1. What we send right after `session.created`.
    let session = SessionConfig::telephony(
        "You are the phone assistant for Acme. Be brief.",
        Voice::Marin,
    );
    println!("→ {}", ClientEvent::session_update(&session).to_json());

    // Caller audio is forwarded with the fast writer into a reused buffer.
    let mut frame = String::new();
    write_input_audio_append(&mut frame, "//7+/f7///////////8=");
    println!("→ {frame}");

    // 2. What the server sends.
    for text in RECORDED {
        let event = match ServerEvent::parse(text) {
            Ok(event) => event,
            Err(e) => {
                println!("✗ {e}");
                continue;
            }
        };
        match &event {
            ServerEvent::SessionCreated(e) | ServerEvent::SessionUpdated(e) => println!(
                "← {}: id={:?} input={:?} output={:?}",
                event.event_type(),
                e.session.id,
                e.session.config.input_format(),
                e.session.config.output_format()
            ),
            ServerEvent::SpeechStarted(e) => {
                println!(
                    "← speech started at {} ms (item {}) → barge-in",
                    e.audio_start_ms, e.item_id
                );
            }
            ServerEvent::OutputAudioDelta(e) => println!(
                "← audio delta for {} ({} base64 chars, borrowed: {})",
                e.item_id,
                e.delta.len(),
                matches!(e.delta, std::borrow::Cow::Borrowed(_))
            ),
            ServerEvent::ResponseDone(e) => println!(
                "← response {:?} done: status={:?} reason={:?} items={}",
                e.response.id,
                e.response.status.as_ref().map(|s| s.as_str()),
                e.response.reason().map(|r| r.as_str()),
                e.response.output_items().len()
            ),
            ServerEvent::FunctionCallArgumentsDone(e) => {
                println!("← call {}({}) id={}", e.name, e.arguments, e.call_id);
                let output = Item::function_call_output(e.call_id.as_ref(), r#"{"ok":true}"#);
                println!("→ {}", ClientEvent::item_create(output).to_json());
            }
            ServerEvent::Error(e) if e.error.is_harmless() => {
                println!("← harmless error {:?}", e.error.code);
            }
            ServerEvent::Unknown { event_type, .. } => {
                println!("← unknown event {event_type} (kept raw)")
            }
            other => println!("← {}", other.event_type()),
        }
    }

    // 3. After a barge-in: truncate what the caller did not hear, then a cancel.
    println!(
        "→ {}",
        ClientEvent::truncate("item_asst_1", 0, 640).to_json()
    );
    println!(
        "→ {}",
        ClientEvent::response_cancel()
            .with_event_id("cancel_1")
            .to_json()
    );
}
