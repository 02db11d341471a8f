//! Server → client events (what GPT-Live sends us), parsed strictly but tolerantly.
//!
//! [`ServerEvent::parse`] reads one WebSocket text frame:
//!
//! - the per-frame events (`session.output_audio.delta`, the sideband
//!   `session.input_audio.append`, and both transcript deltas) are decoded in **one pass** with
//!   no intermediate `serde_json::Value`, and their text is **borrowed** from the frame;
//! - every other known event is decoded into its typed struct;
//! - an unknown `type` becomes [`ServerEvent::Unknown`] with the raw JSON kept;
//! - unknown fields are ignored everywhere;
//! - a known event with a missing or mistyped required field is a [`ParseError::Malformed`]
//!   naming the event. Nothing here panics on peer input.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::client_event::ClientEvent;
use super::config::{AudioFormat, InitialItem, SessionAudio, Voice, lenient};
use super::known::{CloseReason, DelegationTarget, ErrorCode};

/// Every server event `type` this crate parses into a typed variant (reference order).
pub const SERVER_EVENT_TYPES: &[&str] = &[
    "session.started",
    "session.updated",
    "session.output_audio.delta",
    "session.input_transcript.delta",
    "session.output_transcript.delta",
    "session.instructions.appended",
    "session.thinking.appended",
    "session.commentary.appended",
    "session.input_audio.muted",
    "session.input_audio.unmuted",
    "session.output_audio.fixture.playing",
    "session.output_audio.fixture.played",
    "session.delegation.created",
    "response.event",
    "session.usage.updated",
    "session.closed",
    "error",
    "info",
    "decision.event",
    "decision.item.created",
    "decision.item.deleted",
    "session.input_audio.append",
    "transport.dtmf.received",
    "transport.dtmf.sent",
    "transport.dtmf.send",
    "transport.ringing",
    "transport.answered",
    "transport.failed",
];

/// Why a server message could not be parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The text is not a single JSON object.
    #[error("GPT-Live server message is not a JSON object: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The object has no string `type`.
    #[error("GPT-Live server message has no string `type` field")]
    MissingType,
    /// A known event lacks a required field or has a field of the wrong type.
    #[error("malformed GPT-Live `{event_type}` event: {source}")]
    Malformed {
        /// The event's `type`.
        event_type: &'static str,
        /// What was wrong.
        #[source]
        source: serde_json::Error,
    },
}

impl ParseError {
    /// The `type` of the malformed event, when the message was recognizably one.
    pub fn event_type(&self) -> Option<&'static str> {
        match self {
            ParseError::Malformed { event_type, .. } => Some(event_type),
            ParseError::InvalidJson(_) | ParseError::MissingType => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Payload types
// ---------------------------------------------------------------------------------------------

/// The resolved session (`session.started`, `session.updated`, `session.closed`).
///
/// Required per the reference: `id`, `expires_at`, `model`. Sub-objects whose shape this crate
/// does not recognize (a future audio format, say) parse as `None` rather than failing the
/// event; `delegation`, `client` and `triggers` are kept as raw JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionResource {
    /// Opaque session id (`live_…`); log it with the call ids, keep it byte-exact.
    pub id: String,
    /// Unix seconds at which the session expires; plan a graceful wrap-up before it.
    pub expires_at: i64,
    /// The voice model.
    pub model: String,
    /// Always `"active"`, even in `session.closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Audio format and voice.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub audio: Option<SessionAudio>,
    /// WebRTC frontend capabilities (raw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Value>,
    /// Delegation settings (raw; see [`delegation_type`](Self::delegation_type)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<Value>,
    /// Initial history.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub input: Option<Vec<InitialItem>>,
    /// Voice-model instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// End-user safety identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<String>,
    /// Whether the session is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Decisions triggers (raw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Value>,
}

impl SessionResource {
    /// The session audio format, when reported and known. A telephony bridge should refuse to
    /// run unless this equals the format it requested.
    pub fn audio_format(&self) -> Option<AudioFormat> {
        self.audio.as_ref().and_then(|audio| audio.format)
    }

    /// The output voice, when reported.
    pub fn voice(&self) -> Option<&Voice> {
        self.audio
            .as_ref()
            .and_then(|audio| audio.output.as_ref())
            .and_then(|output| output.voice.as_ref())
    }

    /// The delegation mode (`"client"`, `"responses"`, `"decisions"`); `None` (absent or
    /// `null`) means client delegation.
    pub fn delegation_type(&self) -> Option<&str> {
        self.delegation.as_ref()?.get("type")?.as_str()
    }
}

/// `session.started` / `session.updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of the command answered (`session.start` / `session.update`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    /// The resolved session.
    pub session: Box<SessionResource>,
}

/// `session.output_audio.delta`: a chunk of the continuous output track (silence included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputAudioDelta<'a> {
    /// Base64 audio in the session format, borrowed from the frame (forward it to Twilio's
    /// `media.payload` unchanged).
    #[serde(borrow)]
    pub delta: Cow<'a, str>,
    /// Inclusive timeline start (sideband reflections only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<i64>,
    /// Exclusive timeline end (sideband reflections only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<i64>,
}

impl OutputAudioDelta<'_> {
    /// Detaches from the frame.
    pub fn into_owned(self) -> OutputAudioDelta<'static> {
        OutputAudioDelta {
            delta: Cow::Owned(self.delta.into_owned()),
            start_ms: self.start_ms,
            end_ms: self.end_ms,
        }
    }
}

/// `session.input_audio.append` as a **server** event: caller audio reflected to a sideband
/// observer (always PCM16 LE 24 kHz). Never arrives on a primary WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputAudioReflection<'a> {
    /// Base64 PCM16 LE 24 kHz, borrowed from the frame.
    #[serde(borrow)]
    pub audio: Cow<'a, str>,
}

impl InputAudioReflection<'_> {
    /// Detaches from the frame.
    pub fn into_owned(self) -> InputAudioReflection<'static> {
        InputAudioReflection {
            audio: Cow::Owned(self.audio.into_owned()),
        }
    }
}

/// `session.input_transcript.delta` / `session.output_transcript.delta`: a timed transcript
/// fragment. Append fragments exactly as received (they carry their own spaces); there is no
/// "done" event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptDelta<'a> {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of an associated command, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    /// The text fragment, borrowed from the frame when it has no JSON escapes.
    #[serde(borrow)]
    pub delta: Cow<'a, str>,
    /// Fragment start, ms from session start (inclusive).
    pub start_ms: i64,
    /// Fragment end, ms from session start (exclusive).
    pub end_ms: i64,
}

impl TranscriptDelta<'_> {
    /// Detaches from the frame.
    pub fn into_owned(self) -> TranscriptDelta<'static> {
        TranscriptDelta {
            event_id: self.event_id,
            client_event_id: self.client_event_id,
            delta: Cow::Owned(self.delta.into_owned()),
            start_ms: self.start_ms,
            end_ms: self.end_ms,
        }
    }
}

/// `session.instructions|thinking|commentary.appended`: the context reached the session
/// timeline. Proves acceptance, not that anything was spoken or heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextAppended {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of the append command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    /// Timeline start, ms.
    pub start_ms: i64,
    /// Timeline end, ms (may equal `start_ms`).
    pub end_ms: i64,
}

/// A bare acknowledgement (`session.input_audio.muted|unmuted`,
/// `session.output_audio.fixture.playing|played`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of the command acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
}

fn delegation_object_type() -> String {
    "delegation".to_owned()
}

/// The `delegation` object of `session.delegation.created` (metadata only, no task text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationInfo {
    /// Delegation id: pass it as `delegation_id` when answering a client delegation.
    pub id: String,
    /// Object type, always `"delegation"`.
    #[serde(rename = "type", default = "delegation_object_type")]
    pub object_type: String,
    /// Who handles the task.
    pub target: DelegationTarget,
    /// The backend response id (responses delegation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
}

/// `session.delegation.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationCreated {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of an associated command, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    /// Timeline position of the delegation, ms.
    pub offset_ms: i64,
    /// The delegation.
    pub delegation: DelegationInfo,
}

/// `response.event`: one event of the delegated Responses backend stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseEvent {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of an associated command (e.g. `response.create`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    /// The delegation this backend stream belongs to, when correlatable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation_id: Option<String>,
    /// The nested Responses streaming event (dispatch on its `type`).
    pub event: Value,
}

/// A completed function call requested by the Responses backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionCall<'e> {
    /// Answer with this id in `function_call_output`.
    pub call_id: &'e str,
    /// The function name.
    pub name: &'e str,
    /// The arguments, a JSON string.
    pub arguments: &'e str,
    /// The output item id, when present.
    pub item_id: Option<&'e str>,
}

impl FunctionCall<'_> {
    /// The `response.item.create` event answering this call.
    pub fn output_event(&self, output: impl Into<String>) -> ClientEvent<'static> {
        ClientEvent::function_call_output(self.call_id, output)
    }
}

/// Token details of a backend response's input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokensDetails {
    /// Cached input tokens.
    #[serde(default)]
    pub cached_tokens: u64,
}

/// Token details of a backend response's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokensDetails {
    /// Reasoning tokens.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

/// Backend token usage of one Responses response (billed separately from voice seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseUsage {
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Total tokens.
    #[serde(default)]
    pub total_tokens: u64,
    /// Input details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens_details: Option<InputTokensDetails>,
    /// Output details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OutputTokensDetails>,
}

impl ResponseEvent {
    /// The nested event's `type` (e.g. `response.output_item.done`).
    pub fn event_type(&self) -> Option<&str> {
        self.event.get("type")?.as_str()
    }

    /// The completed function call carried by a nested `response.output_item.done` whose item
    /// is a `function_call` with status `completed` (or no status). `None` for anything else,
    /// including `response.function_call_arguments.done`, which lacks the name and call id.
    pub fn function_call(&self) -> Option<FunctionCall<'_>> {
        if self.event_type()? != "response.output_item.done" {
            return None;
        }
        let item = self.event.get("item")?;
        if item.get("type")?.as_str()? != "function_call" {
            return None;
        }
        match item.get("status") {
            None | Some(Value::Null) => {}
            Some(status) if status.as_str() == Some("completed") => {}
            Some(_) => return None,
        }
        Some(FunctionCall {
            call_id: item.get("call_id")?.as_str()?,
            name: item.get("name")?.as_str()?,
            arguments: item.get("arguments")?.as_str()?,
            item_id: item.get("id").and_then(Value::as_str),
        })
    }

    /// The backend response id from a lifecycle event (`response.created`,
    /// `response.in_progress`, `response.completed`, …).
    pub fn response_id(&self) -> Option<&str> {
        self.event.get("response")?.get("id")?.as_str()
    }

    /// Token usage from a terminal lifecycle event (`response.completed`, or
    /// `response.incomplete` / `response.failed` when they report usage). Count it once per
    /// [`response_id`](Self::response_id).
    pub fn usage(&self) -> Option<ResponseUsage> {
        match self.event_type()? {
            "response.completed" | "response.incomplete" | "response.failed" => {}
            _ => return None,
        }
        let usage = self.event.get("response")?.get("usage")?;
        ResponseUsage::deserialize(usage).ok()
    }
}

/// Cumulative billable voice usage. Each report replaces the previous one; never sum them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SessionUsage {
    /// Cumulative seconds.
    pub seconds: f64,
}

/// Context-window usage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContextWindow {
    /// Active context ÷ model limit (may drop after compaction).
    pub usage_ratio: f64,
}

/// `session.usage.updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageUpdated {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of an associated command, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    /// Cumulative voice usage.
    pub usage: SessionUsage,
    /// Context-window usage, omitted when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<ContextWindow>,
}

/// `session.closed`: the session finalized.
///
/// `session` and `usage` are required by the reference but optional here, so that a close is
/// never lost to a missing snapshot; a bridge should record the usage as unconfirmed if absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionClosed {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of `session.close`, if we sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    /// Why the session ended.
    pub reason: CloseReason,
    /// Final session snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Box<SessionResource>>,
    /// Final (authoritative) voice usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<SessionUsage>,
}

/// The `error` object of an `error` event.
///
/// The reference marks `type`, `code` and `message` required; they are read leniently here
/// (defaults / `None`) so that an error report is never itself lost to a parse error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Category, e.g. `invalid_request_error`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Machine-readable code (may be `null`).
    #[serde(default)]
    pub code: Option<ErrorCode>,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// The offending parameter, e.g. `session.delegation.type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// The `event_id` of the command that caused the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
}

/// `error`. Before `session.started` it means startup failed; afterwards the session may go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of the rejected command (top-level copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    /// Details.
    pub error: ErrorDetail,
}

impl ErrorEvent {
    /// The `event_id` of the rejected command, from `error.client_event_id` or the top level.
    pub fn command_event_id(&self) -> Option<&str> {
        self.error
            .client_event_id
            .as_deref()
            .or(self.client_event_id.as_deref())
    }

    /// The error code, if any.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.error.code.as_ref()
    }
}

/// `info`: an informational notice (e.g. `data_channel_permissions` on WebRTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoEvent {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of an associated command, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    /// Machine-readable code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// `transport.dtmf.received|sent|send` (SIP sideband observers only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportDtmf {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of `transport.dtmf.send`, when supplied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    /// The key.
    pub event: String,
}

/// `transport.ringing` / `transport.answered` (SIP sideband observers only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportCall {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of an associated command, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    /// The Live session id.
    pub session_id: String,
}

/// The `error` object of `transport.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportError {
    /// Always `call_error`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Call-setup failure code.
    pub code: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Related parameter, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// `transport.failed` (SIP sideband observers only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportFailed {
    /// Server event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The `event_id` of an associated command, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_event_id: Option<String>,
    /// The Live session id.
    pub session_id: String,
    /// The failure.
    pub error: TransportError,
}

// ---------------------------------------------------------------------------------------------
// The event enum
// ---------------------------------------------------------------------------------------------

/// A server → client event, borrowing audio and transcript text from the frame it was parsed
/// from (use [`into_owned`](Self::into_owned) to keep it longer).
///
/// `Serialize` writes the event back in wire form, `type` first. Payload structs have plain
/// public fields so mock servers and tests can build events directly.
///
/// ```
/// use openai_realtime::live::ServerEvent;
/// let frame = r#"{"type":"session.output_audio.delta","delta":"/////39/f3//////"}"#;
/// match ServerEvent::parse(frame).unwrap() {
///     ServerEvent::OutputAudioDelta(audio) => assert_eq!(audio.delta, "/////39/f3//////"),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent<'a> {
    /// `session.started`: the session is ready; send audio and commands from now on.
    SessionStarted(SessionEvent),
    /// `session.updated`: a `session.update` was accepted.
    SessionUpdated(SessionEvent),
    /// `session.output_audio.delta`.
    OutputAudioDelta(OutputAudioDelta<'a>),
    /// `session.input_transcript.delta` (caller speech).
    InputTranscriptDelta(TranscriptDelta<'a>),
    /// `session.output_transcript.delta` (assistant speech).
    OutputTranscriptDelta(TranscriptDelta<'a>),
    /// `session.instructions.appended`.
    InstructionsAppended(ContextAppended),
    /// `session.thinking.appended`.
    ThinkingAppended(ContextAppended),
    /// `session.commentary.appended`.
    CommentaryAppended(ContextAppended),
    /// `session.input_audio.muted`.
    InputAudioMuted(Ack),
    /// `session.input_audio.unmuted`.
    InputAudioUnmuted(Ack),
    /// `session.output_audio.fixture.playing`: the clip was accepted.
    OutputAudioFixturePlaying(Ack),
    /// `session.output_audio.fixture.played`: the clip drained from the server mixer.
    OutputAudioFixturePlayed(Ack),
    /// `session.delegation.created`.
    DelegationCreated(DelegationCreated),
    /// `response.event` (Responses backend stream).
    ResponseEvent(ResponseEvent),
    /// `session.usage.updated`.
    UsageUpdated(UsageUpdated),
    /// `session.closed`: final event of the session.
    SessionClosed(SessionClosed),
    /// `error`.
    Error(ErrorEvent),
    /// `info`.
    Info(InfoEvent),
    /// `decision.event` (Decisions feature; the whole event kept raw).
    DecisionEvent(Value),
    /// `decision.item.created` (Decisions feature; raw).
    DecisionItemCreated(Value),
    /// `decision.item.deleted` (Decisions feature; raw).
    DecisionItemDeleted(Value),
    /// `session.input_audio.append` reflected to a sideband observer.
    InputAudioAppend(InputAudioReflection<'a>),
    /// `transport.dtmf.received`.
    TransportDtmfReceived(TransportDtmf),
    /// `transport.dtmf.sent`.
    TransportDtmfSent(TransportDtmf),
    /// `transport.dtmf.send` (legacy server notification).
    TransportDtmfSend(TransportDtmf),
    /// `transport.ringing`.
    TransportRinging(TransportCall),
    /// `transport.answered`.
    TransportAnswered(TransportCall),
    /// `transport.failed`.
    TransportFailed(TransportFailed),
    /// Any event this crate does not know; log and ignore.
    Unknown {
        /// Its `type`.
        event_type: String,
        /// The whole event.
        raw: Value,
    },
}

fn malformed(event_type: &'static str, message: fmt::Arguments<'_>) -> ParseError {
    ParseError::Malformed {
        event_type,
        source: de::Error::custom(message),
    }
}

fn typed<'a, T: Deserialize<'a>>(text: &'a str, event_type: &'static str) -> Result<T, ParseError> {
    serde_json::from_str(text).map_err(|source| ParseError::Malformed { event_type, source })
}

fn required_str<'a>(
    field: Option<Loose<'a>>,
    name: &str,
    event_type: &'static str,
) -> Result<Cow<'a, str>, ParseError> {
    match field {
        Some(Loose::Str(value)) => Ok(value),
        None | Some(Loose::Null) => Err(malformed(
            event_type,
            format_args!("missing field `{name}`"),
        )),
        Some(_) => Err(malformed(
            event_type,
            format_args!("field `{name}` must be a string"),
        )),
    }
}

fn optional_string(
    field: Option<Loose<'_>>,
    name: &str,
    event_type: &'static str,
) -> Result<Option<String>, ParseError> {
    match field {
        Some(Loose::Str(value)) => Ok(Some(value.into_owned())),
        None | Some(Loose::Null) => Ok(None),
        Some(_) => Err(malformed(
            event_type,
            format_args!("field `{name}` must be a string or null"),
        )),
    }
}

fn optional_int(
    field: Option<Loose<'_>>,
    name: &str,
    event_type: &'static str,
) -> Result<Option<i64>, ParseError> {
    match field {
        Some(Loose::Int(value)) => Ok(Some(value)),
        None | Some(Loose::Null) => Ok(None),
        Some(_) => Err(malformed(
            event_type,
            format_args!("field `{name}` must be an integer"),
        )),
    }
}

fn required_int(
    field: Option<Loose<'_>>,
    name: &str,
    event_type: &'static str,
) -> Result<i64, ParseError> {
    optional_int(field, name, event_type)?
        .ok_or_else(|| malformed(event_type, format_args!("missing field `{name}`")))
}

impl<'a> ServerEvent<'a> {
    /// Parses one WebSocket text frame.
    ///
    /// - The per-frame events (`session.output_audio.delta`, the sideband
    ///   `session.input_audio.append`, both transcript deltas) are decoded in **one pass** with
    ///   no intermediate `serde_json::Value`; their text borrows from `text` (it is copied only
    ///   if the JSON string contains escapes).
    /// - Every other known event is decoded into its typed struct (a second, typed pass).
    /// - An unknown `type` becomes [`ServerEvent::Unknown`] with the raw JSON kept; unknown
    ///   fields are ignored everywhere.
    /// - Errors are typed: [`ParseError::InvalidJson`] (not one JSON object),
    ///   [`ParseError::MissingType`], or [`ParseError::Malformed`] naming the known event whose
    ///   required field is missing or mistyped. Nothing panics on peer input.
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        let mut probe: Probe<'a> = serde_json::from_str(text).map_err(ParseError::InvalidJson)?;
        let event_type = match probe.event_type.take() {
            Some(Loose::Str(event_type)) => event_type,
            _ => return Err(ParseError::MissingType),
        };
        let event = match &*event_type {
            "session.output_audio.delta" => {
                const T: &str = "session.output_audio.delta";
                ServerEvent::OutputAudioDelta(OutputAudioDelta {
                    delta: required_str(probe.delta, "delta", T)?,
                    start_ms: optional_int(probe.start_ms, "start_ms", T)?,
                    end_ms: optional_int(probe.end_ms, "end_ms", T)?,
                })
            }
            "session.input_transcript.delta" => ServerEvent::InputTranscriptDelta(
                probe.transcript("session.input_transcript.delta")?,
            ),
            "session.output_transcript.delta" => ServerEvent::OutputTranscriptDelta(
                probe.transcript("session.output_transcript.delta")?,
            ),
            "session.input_audio.append" => ServerEvent::InputAudioAppend(InputAudioReflection {
                audio: required_str(probe.audio, "audio", "session.input_audio.append")?,
            }),
            "session.started" => ServerEvent::SessionStarted(typed(text, "session.started")?),
            "session.updated" => ServerEvent::SessionUpdated(typed(text, "session.updated")?),
            "session.instructions.appended" => {
                ServerEvent::InstructionsAppended(typed(text, "session.instructions.appended")?)
            }
            "session.thinking.appended" => {
                ServerEvent::ThinkingAppended(typed(text, "session.thinking.appended")?)
            }
            "session.commentary.appended" => {
                ServerEvent::CommentaryAppended(typed(text, "session.commentary.appended")?)
            }
            "session.input_audio.muted" => {
                ServerEvent::InputAudioMuted(typed(text, "session.input_audio.muted")?)
            }
            "session.input_audio.unmuted" => {
                ServerEvent::InputAudioUnmuted(typed(text, "session.input_audio.unmuted")?)
            }
            "session.output_audio.fixture.playing" => ServerEvent::OutputAudioFixturePlaying(
                typed(text, "session.output_audio.fixture.playing")?,
            ),
            "session.output_audio.fixture.played" => ServerEvent::OutputAudioFixturePlayed(typed(
                text,
                "session.output_audio.fixture.played",
            )?),
            "session.delegation.created" => {
                ServerEvent::DelegationCreated(typed(text, "session.delegation.created")?)
            }
            "response.event" => ServerEvent::ResponseEvent(typed(text, "response.event")?),
            "session.usage.updated" => {
                ServerEvent::UsageUpdated(typed(text, "session.usage.updated")?)
            }
            "session.closed" => ServerEvent::SessionClosed(typed(text, "session.closed")?),
            "error" => ServerEvent::Error(typed(text, "error")?),
            "info" => ServerEvent::Info(typed(text, "info")?),
            "decision.event" => ServerEvent::DecisionEvent(typed(text, "decision.event")?),
            "decision.item.created" => {
                ServerEvent::DecisionItemCreated(typed(text, "decision.item.created")?)
            }
            "decision.item.deleted" => {
                ServerEvent::DecisionItemDeleted(typed(text, "decision.item.deleted")?)
            }
            "transport.dtmf.received" => {
                ServerEvent::TransportDtmfReceived(typed(text, "transport.dtmf.received")?)
            }
            "transport.dtmf.sent" => {
                ServerEvent::TransportDtmfSent(typed(text, "transport.dtmf.sent")?)
            }
            "transport.dtmf.send" => {
                ServerEvent::TransportDtmfSend(typed(text, "transport.dtmf.send")?)
            }
            "transport.ringing" => ServerEvent::TransportRinging(typed(text, "transport.ringing")?),
            "transport.answered" => {
                ServerEvent::TransportAnswered(typed(text, "transport.answered")?)
            }
            "transport.failed" => ServerEvent::TransportFailed(typed(text, "transport.failed")?),
            _ => ServerEvent::Unknown {
                event_type: event_type.into_owned(),
                raw: serde_json::from_str(text).map_err(ParseError::InvalidJson)?,
            },
        };
        Ok(event)
    }

    /// The wire `type`.
    pub fn event_type(&self) -> &str {
        match self {
            ServerEvent::SessionStarted(_) => "session.started",
            ServerEvent::SessionUpdated(_) => "session.updated",
            ServerEvent::OutputAudioDelta(_) => "session.output_audio.delta",
            ServerEvent::InputTranscriptDelta(_) => "session.input_transcript.delta",
            ServerEvent::OutputTranscriptDelta(_) => "session.output_transcript.delta",
            ServerEvent::InstructionsAppended(_) => "session.instructions.appended",
            ServerEvent::ThinkingAppended(_) => "session.thinking.appended",
            ServerEvent::CommentaryAppended(_) => "session.commentary.appended",
            ServerEvent::InputAudioMuted(_) => "session.input_audio.muted",
            ServerEvent::InputAudioUnmuted(_) => "session.input_audio.unmuted",
            ServerEvent::OutputAudioFixturePlaying(_) => "session.output_audio.fixture.playing",
            ServerEvent::OutputAudioFixturePlayed(_) => "session.output_audio.fixture.played",
            ServerEvent::DelegationCreated(_) => "session.delegation.created",
            ServerEvent::ResponseEvent(_) => "response.event",
            ServerEvent::UsageUpdated(_) => "session.usage.updated",
            ServerEvent::SessionClosed(_) => "session.closed",
            ServerEvent::Error(_) => "error",
            ServerEvent::Info(_) => "info",
            ServerEvent::DecisionEvent(_) => "decision.event",
            ServerEvent::DecisionItemCreated(_) => "decision.item.created",
            ServerEvent::DecisionItemDeleted(_) => "decision.item.deleted",
            ServerEvent::InputAudioAppend(_) => "session.input_audio.append",
            ServerEvent::TransportDtmfReceived(_) => "transport.dtmf.received",
            ServerEvent::TransportDtmfSent(_) => "transport.dtmf.sent",
            ServerEvent::TransportDtmfSend(_) => "transport.dtmf.send",
            ServerEvent::TransportRinging(_) => "transport.ringing",
            ServerEvent::TransportAnswered(_) => "transport.answered",
            ServerEvent::TransportFailed(_) => "transport.failed",
            ServerEvent::Unknown { event_type, .. } => event_type,
        }
    }

    /// The server `event_id` (absent on audio deltas and reflections).
    pub fn event_id(&self) -> Option<&str> {
        self.envelope().0
    }

    /// The `event_id` of the client command this event answers. For `error` this also looks
    /// inside the `error` object.
    pub fn client_event_id(&self) -> Option<&str> {
        match self {
            ServerEvent::Error(error) => error.command_event_id(),
            _ => self.envelope().1,
        }
    }

    fn envelope(&self) -> (Option<&str>, Option<&str>) {
        fn pair<'s>(
            a: &'s Option<String>,
            b: &'s Option<String>,
        ) -> (Option<&'s str>, Option<&'s str>) {
            (a.as_deref(), b.as_deref())
        }
        fn raw(value: &Value) -> (Option<&str>, Option<&str>) {
            (
                value.get("event_id").and_then(Value::as_str),
                value.get("client_event_id").and_then(Value::as_str),
            )
        }
        match self {
            ServerEvent::SessionStarted(e) | ServerEvent::SessionUpdated(e) => {
                pair(&e.event_id, &e.client_event_id)
            }
            ServerEvent::OutputAudioDelta(_) | ServerEvent::InputAudioAppend(_) => (None, None),
            ServerEvent::InputTranscriptDelta(e) | ServerEvent::OutputTranscriptDelta(e) => {
                pair(&e.event_id, &e.client_event_id)
            }
            ServerEvent::InstructionsAppended(e)
            | ServerEvent::ThinkingAppended(e)
            | ServerEvent::CommentaryAppended(e) => pair(&e.event_id, &e.client_event_id),
            ServerEvent::InputAudioMuted(e)
            | ServerEvent::InputAudioUnmuted(e)
            | ServerEvent::OutputAudioFixturePlaying(e)
            | ServerEvent::OutputAudioFixturePlayed(e) => pair(&e.event_id, &e.client_event_id),
            ServerEvent::DelegationCreated(e) => pair(&e.event_id, &e.client_event_id),
            ServerEvent::ResponseEvent(e) => pair(&e.event_id, &e.client_event_id),
            ServerEvent::UsageUpdated(e) => pair(&e.event_id, &e.client_event_id),
            ServerEvent::SessionClosed(e) => pair(&e.event_id, &e.client_event_id),
            ServerEvent::Error(e) => pair(&e.event_id, &e.client_event_id),
            ServerEvent::Info(e) => pair(&e.event_id, &e.client_event_id),
            ServerEvent::TransportDtmfReceived(e)
            | ServerEvent::TransportDtmfSent(e)
            | ServerEvent::TransportDtmfSend(e) => pair(&e.event_id, &e.client_event_id),
            ServerEvent::TransportRinging(e) | ServerEvent::TransportAnswered(e) => {
                pair(&e.event_id, &e.client_event_id)
            }
            ServerEvent::TransportFailed(e) => pair(&e.event_id, &e.client_event_id),
            ServerEvent::DecisionEvent(raw_event)
            | ServerEvent::DecisionItemCreated(raw_event)
            | ServerEvent::DecisionItemDeleted(raw_event)
            | ServerEvent::Unknown { raw: raw_event, .. } => raw(raw_event),
        }
    }

    /// Detaches the event from the frame it borrows from.
    pub fn into_owned(self) -> ServerEvent<'static> {
        match self {
            ServerEvent::SessionStarted(e) => ServerEvent::SessionStarted(e),
            ServerEvent::SessionUpdated(e) => ServerEvent::SessionUpdated(e),
            ServerEvent::OutputAudioDelta(e) => ServerEvent::OutputAudioDelta(e.into_owned()),
            ServerEvent::InputTranscriptDelta(e) => {
                ServerEvent::InputTranscriptDelta(e.into_owned())
            }
            ServerEvent::OutputTranscriptDelta(e) => {
                ServerEvent::OutputTranscriptDelta(e.into_owned())
            }
            ServerEvent::InstructionsAppended(e) => ServerEvent::InstructionsAppended(e),
            ServerEvent::ThinkingAppended(e) => ServerEvent::ThinkingAppended(e),
            ServerEvent::CommentaryAppended(e) => ServerEvent::CommentaryAppended(e),
            ServerEvent::InputAudioMuted(e) => ServerEvent::InputAudioMuted(e),
            ServerEvent::InputAudioUnmuted(e) => ServerEvent::InputAudioUnmuted(e),
            ServerEvent::OutputAudioFixturePlaying(e) => ServerEvent::OutputAudioFixturePlaying(e),
            ServerEvent::OutputAudioFixturePlayed(e) => ServerEvent::OutputAudioFixturePlayed(e),
            ServerEvent::DelegationCreated(e) => ServerEvent::DelegationCreated(e),
            ServerEvent::ResponseEvent(e) => ServerEvent::ResponseEvent(e),
            ServerEvent::UsageUpdated(e) => ServerEvent::UsageUpdated(e),
            ServerEvent::SessionClosed(e) => ServerEvent::SessionClosed(e),
            ServerEvent::Error(e) => ServerEvent::Error(e),
            ServerEvent::Info(e) => ServerEvent::Info(e),
            ServerEvent::DecisionEvent(e) => ServerEvent::DecisionEvent(e),
            ServerEvent::DecisionItemCreated(e) => ServerEvent::DecisionItemCreated(e),
            ServerEvent::DecisionItemDeleted(e) => ServerEvent::DecisionItemDeleted(e),
            ServerEvent::InputAudioAppend(e) => ServerEvent::InputAudioAppend(e.into_owned()),
            ServerEvent::TransportDtmfReceived(e) => ServerEvent::TransportDtmfReceived(e),
            ServerEvent::TransportDtmfSent(e) => ServerEvent::TransportDtmfSent(e),
            ServerEvent::TransportDtmfSend(e) => ServerEvent::TransportDtmfSend(e),
            ServerEvent::TransportRinging(e) => ServerEvent::TransportRinging(e),
            ServerEvent::TransportAnswered(e) => ServerEvent::TransportAnswered(e),
            ServerEvent::TransportFailed(e) => ServerEvent::TransportFailed(e),
            ServerEvent::Unknown { event_type, raw } => ServerEvent::Unknown { event_type, raw },
        }
    }
}

#[derive(Serialize)]
struct Tagged<'t, T> {
    #[serde(rename = "type")]
    event_type: &'t str,
    #[serde(flatten)]
    body: &'t T,
}

fn tagged<'t, T: Serialize, S: serde::Serializer>(
    event_type: &'t str,
    body: &'t T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    Tagged { event_type, body }.serialize(serializer)
}

impl Serialize for ServerEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event_type = self.event_type();
        match self {
            ServerEvent::SessionStarted(e) | ServerEvent::SessionUpdated(e) => {
                tagged(event_type, e, serializer)
            }
            ServerEvent::OutputAudioDelta(e) => tagged(event_type, e, serializer),
            ServerEvent::InputTranscriptDelta(e) | ServerEvent::OutputTranscriptDelta(e) => {
                tagged(event_type, e, serializer)
            }
            ServerEvent::InstructionsAppended(e)
            | ServerEvent::ThinkingAppended(e)
            | ServerEvent::CommentaryAppended(e) => tagged(event_type, e, serializer),
            ServerEvent::InputAudioMuted(e)
            | ServerEvent::InputAudioUnmuted(e)
            | ServerEvent::OutputAudioFixturePlaying(e)
            | ServerEvent::OutputAudioFixturePlayed(e) => tagged(event_type, e, serializer),
            ServerEvent::DelegationCreated(e) => tagged(event_type, e, serializer),
            ServerEvent::ResponseEvent(e) => tagged(event_type, e, serializer),
            ServerEvent::UsageUpdated(e) => tagged(event_type, e, serializer),
            ServerEvent::SessionClosed(e) => tagged(event_type, e, serializer),
            ServerEvent::Error(e) => tagged(event_type, e, serializer),
            ServerEvent::Info(e) => tagged(event_type, e, serializer),
            ServerEvent::InputAudioAppend(e) => tagged(event_type, e, serializer),
            ServerEvent::TransportDtmfReceived(e)
            | ServerEvent::TransportDtmfSent(e)
            | ServerEvent::TransportDtmfSend(e) => tagged(event_type, e, serializer),
            ServerEvent::TransportRinging(e) | ServerEvent::TransportAnswered(e) => {
                tagged(event_type, e, serializer)
            }
            ServerEvent::TransportFailed(e) => tagged(event_type, e, serializer),
            ServerEvent::DecisionEvent(raw)
            | ServerEvent::DecisionItemCreated(raw)
            | ServerEvent::DecisionItemDeleted(raw)
            | ServerEvent::Unknown { raw, .. } => raw.serialize(serializer),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Single-pass probe
// ---------------------------------------------------------------------------------------------

/// A field value read without knowing the event type yet: strings are borrowed, integers kept,
/// anything else skipped without allocation.
enum Loose<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Null,
    Other,
}

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Loose::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Loose::Other, Loose::Int))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
}

enum ProbeKey {
    Type,
    EventId,
    ClientEventId,
    Delta,
    Audio,
    StartMs,
    EndMs,
    Other,
}

impl<'de> Deserialize<'de> for ProbeKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = ProbeKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ProbeKey, E> {
                Ok(match v {
                    "type" => ProbeKey::Type,
                    "event_id" => ProbeKey::EventId,
                    "client_event_id" => ProbeKey::ClientEventId,
                    "delta" => ProbeKey::Delta,
                    "audio" => ProbeKey::Audio,
                    "start_ms" => ProbeKey::StartMs,
                    "end_ms" => ProbeKey::EndMs,
                    _ => ProbeKey::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// The fields of the per-frame events, captured in one pass over any event object. Other
/// fields are skipped; other events are decoded by a second, typed pass.
#[derive(Default)]
struct Probe<'a> {
    event_type: Option<Loose<'a>>,
    event_id: Option<Loose<'a>>,
    client_event_id: Option<Loose<'a>>,
    delta: Option<Loose<'a>>,
    audio: Option<Loose<'a>>,
    start_ms: Option<Loose<'a>>,
    end_ms: Option<Loose<'a>>,
}

impl<'a> Probe<'a> {
    fn transcript(self, event_type: &'static str) -> Result<TranscriptDelta<'a>, ParseError> {
        Ok(TranscriptDelta {
            event_id: optional_string(self.event_id, "event_id", event_type)?,
            client_event_id: optional_string(self.client_event_id, "client_event_id", event_type)?,
            delta: required_str(self.delta, "delta", event_type)?,
            start_ms: required_int(self.start_ms, "start_ms", event_type)?,
            end_ms: required_int(self.end_ms, "end_ms", event_type)?,
        })
    }
}

impl<'de> Deserialize<'de> for Probe<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ProbeVisitor;
        impl<'de> Visitor<'de> for ProbeVisitor {
            type Value = Probe<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe<'de>, A::Error> {
                let mut probe = Probe::default();
                while let Some(key) = map.next_key::<ProbeKey>()? {
                    let slot = match key {
                        ProbeKey::Type => &mut probe.event_type,
                        ProbeKey::EventId => &mut probe.event_id,
                        ProbeKey::ClientEventId => &mut probe.client_event_id,
                        ProbeKey::Delta => &mut probe.delta,
                        ProbeKey::Audio => &mut probe.audio,
                        ProbeKey::StartMs => &mut probe.start_ms,
                        ProbeKey::EndMs => &mut probe.end_ms,
                        ProbeKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(probe)
            }
        }
        deserializer.deserialize_map(ProbeVisitor)
    }
}
