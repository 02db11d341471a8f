//! OpenAI Realtime **GA** wire types (PROTOCOLS §6): client events we send, server events we
//! receive, the session configuration, items and responses. No I/O, no runtime.
//!
//! * [`ClientEvent`] — every client event of §6.5, serialized with serde (tag `type`,
//!   `event_id` only when set). The per-frame `input_audio_buffer.append` also has a fast
//!   writer, [`write_input_audio_append`], that copies the base64 audio straight into a reused
//!   buffer.
//! * [`ServerEvent::parse`] — every server event of §6.6/§6.6b, typed, with an open
//!   [`ServerEvent::Unknown`] fallback. `response.output_audio.delta` is parsed in one pass
//!   with every string borrowed from the frame (see [`server_event`] for how).
//! * [`SessionConfig`] — the GA `session` object with tri-state ([`Nullable`]) fields, a
//!   validating [`SessionBuilder`], and [`SessionConfig::telephony`] for Twilio calls
//!   (μ-law in and out, server VAD).
//!
//! What it refuses to do: the beta protocol (`OpenAI-Beta: realtime=v1`, flat session,
//! `response.audio.delta`) is shut off and not modelled — beta-only event names parse as
//! `Unknown`. Two legacy spellings that still appear in GA traffic are accepted when parsing:
//! the `conversation.item.created` event and `text`/`audio` content parts. It never decodes
//! audio, never validates what the server sends (only what we build), and never panics on peer
//! input.
//!
//! ```
//! use openai_realtime::realtime::{ClientEvent, ServerEvent, SessionConfig, Voice};
//!
//! // Configure the session for a phone call.
//! let session = SessionConfig::telephony("You are the phone assistant for Acme.", Voice::Marin);
//! let update = ClientEvent::session_update(&session).to_json();
//! assert!(update.contains(r#""format":{"type":"audio/pcmu"}"#));
//!
//! // Forward caller audio (base64 μ-law from Twilio, unchanged).
//! let mut frame = String::new();
//! openai_realtime::realtime::write_input_audio_append(&mut frame, "//7+/w==");
//!
//! // React to what the server sends.
//! let text = r#"{"type":"input_audio_buffer.speech_started","event_id":"event_7",
//!               "audio_start_ms":1000,"item_id":"item_9"}"#;
//! match ServerEvent::parse(text)? {
//!     ServerEvent::SpeechStarted(e) => assert_eq!(e.audio_start_ms, 1000),
//!     ServerEvent::OutputAudioDelta(_audio) => { /* send to Twilio */ }
//!     ServerEvent::Error(e) if e.error.is_harmless() => {}
//!     other => assert!(!other.event_type().is_empty()),
//! }
//! # Ok::<(), openai_realtime::realtime::ParseError>(())
//! ```

pub mod client_event;
pub mod error;
pub mod item;
pub mod models;
pub mod response;
pub mod server_event;
pub mod session;
mod wire;

pub use client_event::{ClientEvent, write_input_audio_append};
pub use error::{ErrorCode, ErrorDetails, ParseError};
pub use item::{
    ContentPart, FunctionCallItem, FunctionCallOutputItem, ImageDetail, Item, ItemReference,
    ItemStatus, MessageItem, ResponseInput, Role,
};
pub use response::{
    ConversationMode, Response, ResponseAudio, ResponseAudioOutput, ResponseCreateParams,
    ResponseStatus, StatusDetails, StatusReason, Usage,
};
pub use server_event::ServerEvent;
pub use session::{
    AudioConfig, AudioFormat, AudioInput, AudioOutput, ConfigError, Eagerness, ForcedTool,
    FunctionTool, MaxOutputTokens, Modality, NoiseReduction, NoiseReductionType, Prompt, Reasoning,
    ReasoningEffort, SemanticVad, ServerVad, Session, SessionBuilder, SessionConfig, SessionType,
    Tool, ToolChoice, ToolChoiceMode, Tracing, TracingConfig, Transcription, Truncation,
    TurnDetection, Voice,
};
pub use wire::Nullable;
