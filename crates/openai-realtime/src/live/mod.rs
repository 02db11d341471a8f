//! OpenAI **GPT-Live** wire types: the full-duplex voice API at `wss://…/v1/live/sessions`.
//!
//! GPT-Live is not the Realtime API: there are no turns, no voice-model tools and no
//! `response.*` from the voice model. The client sends `session.start` once, then streams
//! caller audio continuously (silence included) and injects context with the three
//! `session.*.append` commands; the server streams one continuous output-audio track, timed
//! transcript fragments, delegation notices, the Responses backend stream (`response.event`),
//! usage, and finally `session.closed`.
//!
//! What this module gives you:
//!
//! - [`SessionConfig`] — the strict `session.start` object (builder with validation, and
//!   [`SessionConfig::telephony`] for a μ-law 8 kHz Twilio call), plus [`SessionUpdate`].
//! - [`ClientEvent`] — every client command, serialized exactly as the reference defines it,
//!   and [`write_input_audio_append`] for the per-frame audio path.
//! - [`ServerEvent`] — every server event, parsed by [`ServerEvent::parse`] in a single pass
//!   for audio/transcript frames with the payload borrowed, typed errors for malformed known
//!   events, and an open [`ServerEvent::Unknown`] fallback.
//! - Open vocabularies ([`CloseReason`], [`ErrorCode`], …) that keep unknown values.
//!
//! What it refuses to do: it does no I/O (see the `client` feature for a socket), never sends
//! a field the reference does not define for the strict session object (so the WebRTC-only
//! `client` block and a `null` "unset" cannot be expressed), and never decodes audio.
//!
//! ```
//! use openai_realtime::live::{ClientEvent, ServerEvent, SessionConfig, models, write_input_audio_append};
//!
//! // 1. Start a telephony session (μ-law 8 kHz both ways).
//! let config = SessionConfig::telephony(models::GPT_LIVE_1, "You are Robin, the phone assistant.", "marin");
//! let start = ClientEvent::session_start(config).with_event_id("start_1").to_json();
//! assert!(start.contains(r#""format":{"type":"audio/pcmu","rate":8000}"#));
//!
//! // 2. Forward caller audio (Twilio `media.payload`, unchanged) into a reused buffer.
//! let mut frame = String::new();
//! write_input_audio_append(&mut frame, "//7+/f39/v7+/w==");
//! assert_eq!(frame, r#"{"type":"session.input_audio.append","audio":"//7+/f39/v7+/w=="}"#);
//!
//! // 3. Read server events.
//! let text = r#"{"type":"session.output_audio.delta","delta":"/////39/f3//////"}"#;
//! if let ServerEvent::OutputAudioDelta(audio) = ServerEvent::parse(text)? {
//!     // `audio.delta` borrows from `text`: forward it to Twilio as `media.payload`.
//!     assert_eq!(audio.delta, "/////39/f3//////");
//! }
//! let text = r#"{"type":"session.closed","event_id":"evt_9","reason":"close_requested","usage":{"seconds":187.0}}"#;
//! if let ServerEvent::SessionClosed(closed) = ServerEvent::parse(text)? {
//!     assert_eq!(closed.reason, openai_realtime::live::CloseReason::CLOSE_REQUESTED);
//! }
//! # Ok::<(), openai_realtime::live::ParseError>(())
//! ```

mod client_event;
mod config;
mod known;
mod server_event;

pub use client_event::{ClientEvent, DtmfKey, ResponseInputItem, write_input_audio_append};
pub use config::{
    AudioFormat, AudioOutput, BUILT_IN_VOICES, ConfigError, DEFAULT_VOICE, Delegation,
    DelegationUpdate, FunctionTool, InitialItem, InitialRole, ItemStatus, MAX_INPUT_ITEMS,
    MIN_MAX_OUTPUT_TOKENS, Reasoning, ResponsesDelegationConfig, ResponsesDelegationUpdate,
    SessionAudio, SessionConfig, SessionConfigBuilder, SessionUpdate, TextConfig, Tool, ToolChoice,
    Voice,
};
pub use known::{
    CloseReason, DelegationTarget, ErrorCode, ReasoningEffort, ReasoningSummary, ServiceTier,
    Verbosity,
};
pub use server_event::{
    Ack, ContextAppended, ContextWindow, DelegationCreated, DelegationInfo, ErrorDetail,
    ErrorEvent, FunctionCall, InfoEvent, InputAudioReflection, InputTokensDetails,
    OutputAudioDelta, OutputTokensDetails, ParseError, ResponseEvent, ResponseUsage,
    SERVER_EVENT_TYPES, ServerEvent, SessionClosed, SessionEvent, SessionResource, SessionUsage,
    TranscriptDelta, TransportCall, TransportDtmf, TransportError, TransportFailed, UsageUpdated,
};

/// The OpenAI WebSocket endpoint for a primary GPT-Live session. No query parameters: the
/// model goes in `session.start`. Authenticate with `Authorization: Bearer <key>`.
pub const WEBSOCKET_URL: &str = "wss://api.openai.com/v1/live/sessions";

/// Every client event `type` [`ClientEvent`] can send (reference order).
pub const CLIENT_EVENT_TYPES: &[&str] = &[
    "session.start",
    "session.update",
    "session.input_audio.append",
    "session.input_audio.mute",
    "session.input_audio.unmute",
    "session.instructions.append",
    "session.thinking.append",
    "session.commentary.append",
    "session.output_audio.fixture.play",
    "response.item.create",
    "response.create",
    "session.close",
    "decision.create",
    "decision.item.create",
    "decision.item.delete",
    "transport.dtmf.send",
];

/// GPT-Live model names (on Azure, `session.model` is your deployment name instead).
pub mod models {
    /// `gpt-live-1`: the first GPT-Live snapshot.
    pub const GPT_LIVE_1: &str = "gpt-live-1";
    /// `gpt-live-1.1`: same endpoint and session shape, better transcription; concurrency is
    /// limited separately per model.
    pub const GPT_LIVE_1_1: &str = "gpt-live-1.1";
}
