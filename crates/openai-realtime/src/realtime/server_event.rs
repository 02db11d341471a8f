//! Server events — what OpenAI sends us (PROTOCOLS §6.6, §6.6b).
//!
//! [`ServerEvent::parse`] turns one WebSocket text frame into a typed event. It never fails on
//! an unknown event type ([`ServerEvent::Unknown`] keeps the raw JSON) or on unknown fields
//! (ignored); a known event with a missing or mistyped required field is a
//! [`ParseError::Event`] naming the event.
//!
//! # Hot path
//!
//! `response.output_audio.delta` (and `input_audio_buffer.speech_started`) are parsed with no
//! `serde_json::Value` and no allocation: every string is a `Cow::Borrowed` slice of the input
//! (base64 and ids contain no JSON escapes). The envelope is read like this:
//!
//! 1. If the text starts with `{"type":"<tag>"` — the order OpenAI's servers write — the tag is
//!    sliced out by scanning the first few dozen bytes, and the event struct for that tag is
//!    deserialized from the text in **one serde pass** (the `type` member is skipped like any
//!    other unknown field).
//! 2. Otherwise (e.g. `event_id` written first), a first serde pass reads only `type`, skipping
//!    every other member without allocating, then the typed pass runs. The audio payload is
//!    scanned twice but still not copied.
//!
//! Serde's internally tagged enums were not used: they buffer every member into an
//! intermediate tree (one allocation per event) before choosing the variant, and cannot keep
//! unknown types. Measured with `examples/realtime_parse_bench.rs` (release, a shared 2-core
//! machine, so only the ranking is firm): for a 423-byte audio delta, type-first one pass
//! ≈ 0.3–0.5 µs, serde's tagged enum ≈ 0.45–0.8 µs, `Value` first ≈ 0.55–0.9 µs, our
//! two-pass fallback ≈ 0.5–1.0 µs; at 6.6 KB string scanning dominates (one pass and the
//! tagged enum ≈ 1.5 µs, `Value` first ≈ 2.1 µs, two passes ≈ 2.5 µs). Captured OpenAI traffic
//! writes `type` first, so the one-pass path is the one that runs.
//!
//! ```
//! use std::borrow::Cow;
//! use openai_realtime::realtime::ServerEvent;
//! let text = r#"{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1",
//!               "item_id":"item_1","output_index":0,"content_index":0,"delta":"/////w=="}"#;
//! let ServerEvent::OutputAudioDelta(delta) = ServerEvent::parse(text)? else { unreachable!() };
//! assert!(matches!(delta.delta, Cow::Borrowed("/////w==")));
//!
//! let future = ServerEvent::parse(r#"{"type":"some.future.event","x":1}"#)?;
//! assert_eq!(future.event_type(), "some.future.event");
//! # Ok::<(), openai_realtime::realtime::ParseError>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ErrorDetails, ParseError};
use super::item::{ContentPart, Item};
use super::response::Response;
use super::session::Session;
use super::wire::{AudioLen, TypeTag, de_opt_cow, impl_into_owned, open_enum, sniff_leading_type};

// ---------------------------------------------------------------------------------------------
// Session and conversation events.

/// `session.created` / `session.updated`: the full effective session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The session.
    pub session: Session,
}
impl_into_owned!(SessionEvent {
    cow: [event_id],
    keep: [session]
});

/// `conversation.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationCreated<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The conversation resource.
    pub conversation: Conversation,
}
impl_into_owned!(ConversationCreated {
    cow: [event_id],
    keep: [conversation]
});

/// The conversation resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// `conv_…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `"realtime.conversation"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// `conversation.item.added` / `.done` / legacy `.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemEvent<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The preceding item, if any.
    #[serde(
        default,
        borrow,
        deserialize_with = "de_opt_cow",
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_item_id: Option<Cow<'a, str>>,
    /// The item (model output is added empty with `status: "in_progress"`; no audio bytes).
    pub item: Item,
}
impl_into_owned!(ItemEvent {
    cow: [event_id],
    opt: [previous_item_id],
    keep: [item]
});

/// `conversation.item.retrieved`: the item including its audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRetrieved<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The item.
    pub item: Item,
}
impl_into_owned!(ItemRetrieved {
    cow: [event_id],
    keep: [item]
});

/// `conversation.item.truncated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemTruncated<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The truncated assistant item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// The content part.
    pub content_index: u32,
    /// Where the audio was cut, ms.
    pub audio_end_ms: u64,
}
impl_into_owned!(ItemTruncated {
    cow: [event_id, item_id],
    keep: [content_index, audio_end_ms]
});

/// `conversation.item.deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDeleted<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The deleted item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
}
impl_into_owned!(ItemDeleted {
    cow: [event_id, item_id]
});

// ---------------------------------------------------------------------------------------------
// Input audio transcription.

/// A log probability of one transcription token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogProb {
    /// The token.
    #[serde(default)]
    pub token: String,
    /// The token's UTF-8 bytes.
    #[serde(default)]
    pub bytes: Vec<u8>,
    /// Log probability.
    #[serde(default)]
    pub logprob: f64,
}

/// `conversation.item.input_audio_transcription.delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionDelta<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The user item being transcribed.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Content part index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_index: Option<u32>,
    /// Text delta (empty if absent).
    #[serde(default, borrow)]
    pub delta: Cow<'a, str>,
    /// Log probabilities (with `include: ["item.input_audio_transcription.logprobs"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<LogProb>>,
}
impl_into_owned!(TranscriptionDelta {
    cow: [event_id, item_id, delta],
    keep: [content_index, logprobs]
});

/// Usage of a transcription (billed at the transcription model's price).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TranscriptionUsage {
    /// `{"type":"tokens", …}`.
    #[serde(rename = "tokens")]
    Tokens(TranscriptionTokens),
    /// `{"type":"duration","seconds":…}`.
    #[serde(rename = "duration")]
    Duration {
        /// Input audio duration, s.
        seconds: f64,
    },
    /// Anything else, kept verbatim.
    #[serde(untagged)]
    Unknown(Value),
}

/// Token usage of a transcription.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptionTokens {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Total.
    pub total_tokens: u64,
    /// Input breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_token_details: Option<TranscriptionInputTokens>,
}

/// Input breakdown of a transcription's token usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptionInputTokens {
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u64>,
}

/// A language detected in the audio.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectedLanguage {
    /// ISO-639-1 code.
    pub code: String,
}

/// `conversation.item.input_audio_transcription.completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionCompleted<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The user item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Content part index.
    pub content_index: u32,
    /// The transcript (approximate: a separate ASR model, not what the model "heard").
    #[serde(borrow)]
    pub transcript: Cow<'a, str>,
    /// Usage. Required by the current schema; optional here because older servers omitted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TranscriptionUsage>,
    /// Log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<LogProb>>,
    /// Detected languages (`gpt-transcribe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<DetectedLanguage>>,
}
impl_into_owned!(TranscriptionCompleted {
    cow: [event_id, item_id, transcript],
    keep: [content_index, usage, logprobs, languages]
});

/// The `error` of a failed transcription.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptionError {
    /// Error type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// `conversation.item.input_audio_transcription.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptionFailed<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The user item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Content part index.
    pub content_index: u32,
    /// What went wrong.
    pub error: TranscriptionError,
}
impl_into_owned!(TranscriptionFailed {
    cow: [event_id, item_id],
    keep: [content_index, error]
});

/// `conversation.item.input_audio_transcription.segment` (diarization).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionSegment<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The user item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Content part index.
    pub content_index: u32,
    /// Segment id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// Segment text.
    #[serde(borrow)]
    pub text: Cow<'a, str>,
    /// Speaker label.
    #[serde(borrow)]
    pub speaker: Cow<'a, str>,
    /// Start, s.
    pub start: f64,
    /// End, s.
    pub end: f64,
}
impl_into_owned!(TranscriptionSegment {
    cow: [event_id, item_id, id, text, speaker],
    keep: [content_index, start, end]
});

// ---------------------------------------------------------------------------------------------
// Input audio buffer.

/// `input_audio_buffer.speech_started` — the barge-in trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechStarted<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// Offset of the speech start in the session's input audio, ms (includes prefix padding).
    pub audio_start_ms: u64,
    /// The user item that will be created.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
}
impl_into_owned!(SpeechStarted {
    cow: [event_id, item_id],
    keep: [audio_start_ms]
});

/// `input_audio_buffer.speech_stopped`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeechStopped<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// Offset of the speech end in the session's input audio, ms.
    pub audio_end_ms: u64,
    /// The user item that will be created.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
}
impl_into_owned!(SpeechStopped {
    cow: [event_id, item_id],
    keep: [audio_end_ms]
});

/// `input_audio_buffer.committed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferCommitted<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The item after which the new user item goes, if any.
    #[serde(
        default,
        borrow,
        deserialize_with = "de_opt_cow",
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_item_id: Option<Cow<'a, str>>,
    /// The user item that will be created.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
}
impl_into_owned!(BufferCommitted {
    cow: [event_id, item_id],
    opt: [previous_item_id]
});

/// `input_audio_buffer.cleared`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferCleared<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
}
impl_into_owned!(BufferCleared { cow: [event_id] });

/// `input_audio_buffer.timeout_triggered` (server VAD `idle_timeout_ms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutTriggered<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// Start of the silent segment, ms.
    pub audio_start_ms: u64,
    /// End of the silent segment, ms.
    pub audio_end_ms: u64,
    /// The item created for the (silent) audio.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
}
impl_into_owned!(TimeoutTriggered {
    cow: [event_id, item_id],
    keep: [audio_start_ms, audio_end_ms]
});

/// `input_audio_buffer.dtmf_event_received` (SIP only; Twilio media streams deliver DTMF
/// themselves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtmfReceived<'a> {
    /// Server event id (the schema does not list one for this event).
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The key: `0`–`9`, `*`, `#`, `A`–`D`.
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    /// When the server received it (Unix seconds, UTC).
    pub received_at: i64,
}
impl_into_owned!(DtmfReceived {
    cow: [event_id, event],
    keep: [received_at]
});

// ---------------------------------------------------------------------------------------------
// Responses.

/// `response.created` / `response.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseEvent<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response (`in_progress` when created; final, without audio, when done).
    pub response: Response,
}
impl_into_owned!(ResponseEvent {
    cow: [event_id],
    keep: [response]
});

/// `response.output_item.added` / `.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputItemEvent<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// Index of the item in the response output.
    pub output_index: u32,
    /// The item.
    pub item: Item,
}
impl_into_owned!(OutputItemEvent {
    cow: [event_id, response_id],
    keep: [output_index, item]
});

/// `response.content_part.added` / `.done` (`part.type` is `audio` or `text` here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPartEvent<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response output.
    pub output_index: u32,
    /// Index of the part in the item's content.
    pub content_index: u32,
    /// The part.
    pub part: ContentPart,
}
impl_into_owned!(ContentPartEvent {
    cow: [event_id, response_id, item_id],
    keep: [output_index, content_index, part]
});

/// `response.output_audio.delta` — model audio (the hot path; every string borrowed).
/// `Debug` prints the length of `delta`, not the audio.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputAudioDelta<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The assistant item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response output.
    pub output_index: u32,
    /// Index of the part in the item's content.
    pub content_index: u32,
    /// Base64 audio in the session's output format.
    #[serde(borrow)]
    pub delta: Cow<'a, str>,
}
impl fmt::Debug for OutputAudioDelta<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputAudioDelta")
            .field("event_id", &self.event_id)
            .field("response_id", &self.response_id)
            .field("item_id", &self.item_id)
            .field("output_index", &self.output_index)
            .field("content_index", &self.content_index)
            .field("delta", &AudioLen(&self.delta))
            .finish()
    }
}

impl_into_owned!(OutputAudioDelta {
    cow: [event_id, response_id, item_id, delta],
    keep: [output_index, content_index]
});

/// `response.output_audio.done` (also sent when the response was interrupted or cancelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputAudioDone<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The assistant item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response output.
    pub output_index: u32,
    /// Index of the part in the item's content.
    pub content_index: u32,
}
impl_into_owned!(OutputAudioDone {
    cow: [event_id, response_id, item_id],
    keep: [output_index, content_index]
});

/// `response.output_audio_transcript.delta` / `response.output_text.delta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDelta<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The assistant item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response output.
    pub output_index: u32,
    /// Index of the part in the item's content.
    pub content_index: u32,
    /// The text delta.
    #[serde(borrow)]
    pub delta: Cow<'a, str>,
}
impl_into_owned!(TextDelta {
    cow: [event_id, response_id, item_id, delta],
    keep: [output_index, content_index]
});

/// `response.output_audio_transcript.done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptDone<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The assistant item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response output.
    pub output_index: u32,
    /// Index of the part in the item's content.
    pub content_index: u32,
    /// The full transcript of what the model said (not necessarily what the caller heard).
    #[serde(borrow)]
    pub transcript: Cow<'a, str>,
}
impl_into_owned!(TranscriptDone {
    cow: [event_id, response_id, item_id, transcript],
    keep: [output_index, content_index]
});

/// `response.output_text.done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDone<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The assistant item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response output.
    pub output_index: u32,
    /// Index of the part in the item's content.
    pub content_index: u32,
    /// The final text.
    #[serde(borrow)]
    pub text: Cow<'a, str>,
}
impl_into_owned!(TextDone {
    cow: [event_id, response_id, item_id, text],
    keep: [output_index, content_index]
});

/// `response.function_call_arguments.delta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCallArgumentsDelta<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The function call item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response output.
    pub output_index: u32,
    /// The call id.
    #[serde(borrow)]
    pub call_id: Cow<'a, str>,
    /// Arguments JSON fragment.
    #[serde(borrow)]
    pub delta: Cow<'a, str>,
}
impl_into_owned!(FunctionCallArgumentsDelta {
    cow: [event_id, response_id, item_id, call_id, delta],
    keep: [output_index]
});

/// `response.function_call_arguments.done`. Also emitted for interrupted or cancelled
/// responses: execute the call only after `response.done` reports `completed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCallArgumentsDone<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The function call item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response output.
    pub output_index: u32,
    /// The call id to answer with a `function_call_output`.
    #[serde(borrow)]
    pub call_id: Cow<'a, str>,
    /// Function name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Arguments as JSON text (model-generated: parse defensively).
    #[serde(borrow)]
    pub arguments: Cow<'a, str>,
}
impl_into_owned!(FunctionCallArgumentsDone {
    cow: [event_id, response_id, item_id, call_id, name, arguments],
    keep: [output_index]
});

open_enum! {
    /// Name of a rate limit.
    pub enum RateLimitName {
        /// `requests`.
        Requests = "requests",
        /// `tokens`.
        Tokens = "tokens",
    }
}

/// One entry of `rate_limits.updated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Which limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<RateLimitName>,
    /// The limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// What is left (output tokens of the new response are already reserved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// Seconds until reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_seconds: Option<f64>,
}

/// `rate_limits.updated` (at the start of each response).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimitsUpdated<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The limits.
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
}
impl_into_owned!(RateLimitsUpdated {
    cow: [event_id],
    keep: [rate_limits]
});

/// `error`. Most errors are recoverable; see [`ErrorDetails`] helpers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The error.
    pub error: ErrorDetails,
}
impl_into_owned!(ErrorEvent {
    cow: [event_id],
    keep: [error]
});

/// `output_audio_buffer.started` / `.stopped` / `.cleared` (WebRTC/SIP only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputAudioBufferEvent<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response whose audio this concerns.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
}
impl_into_owned!(OutputAudioBufferEvent {
    cow: [event_id, response_id]
});

// ---------------------------------------------------------------------------------------------
// MCP (only with `{"type":"mcp"}` tools; the bridge only observes).

/// `mcp_list_tools.in_progress` / `.completed` / `.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpListToolsEvent<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The `mcp_list_tools` item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
}
impl_into_owned!(McpListToolsEvent {
    cow: [event_id, item_id]
});

/// `response.mcp_call_arguments.delta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpCallArgumentsDelta<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The `mcp_call` item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response output.
    pub output_index: u32,
    /// Arguments JSON fragment.
    #[serde(borrow)]
    pub delta: Cow<'a, str>,
    /// Present if the delta was obfuscated.
    #[serde(
        default,
        borrow,
        deserialize_with = "de_opt_cow",
        skip_serializing_if = "Option::is_none"
    )]
    pub obfuscation: Option<Cow<'a, str>>,
}
impl_into_owned!(McpCallArgumentsDelta {
    cow: [event_id, response_id, item_id, delta],
    opt: [obfuscation],
    keep: [output_index]
});

/// `response.mcp_call_arguments.done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpCallArgumentsDone<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The response.
    #[serde(borrow)]
    pub response_id: Cow<'a, str>,
    /// The `mcp_call` item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response output.
    pub output_index: u32,
    /// Final arguments JSON text.
    #[serde(borrow)]
    pub arguments: Cow<'a, str>,
}
impl_into_owned!(McpCallArgumentsDone {
    cow: [event_id, response_id, item_id, arguments],
    keep: [output_index]
});

/// `response.mcp_call.in_progress` / `.completed` / `.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpCallEvent<'a> {
    /// Server event id.
    #[serde(default, borrow, skip_serializing_if = "str::is_empty")]
    pub event_id: Cow<'a, str>,
    /// The `mcp_call` item.
    #[serde(borrow)]
    pub item_id: Cow<'a, str>,
    /// Index of the item in the response output.
    pub output_index: u32,
}
impl_into_owned!(McpCallEvent {
    cow: [event_id, item_id],
    keep: [output_index]
});

// ---------------------------------------------------------------------------------------------
// The event enum.

/// Serializes `{"type": <tag>, ...fields of event}`.
#[derive(Serialize)]
struct Tagged<'t, T> {
    #[serde(rename = "type")]
    event_type: &'static str,
    #[serde(flatten)]
    event: &'t T,
}

macro_rules! server_events {
    ( $( $(#[$doc:meta])* $variant:ident($ty:ident) = $name:literal, )+ ) => {
        /// A server event. Match on the variants you act on and ignore the rest; new event
        /// types arrive as [`ServerEvent::Unknown`].
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum ServerEvent<'a> {
            $( $(#[$doc])* #[doc = concat!("\n\nWire type: `", $name, "`.")] $variant($ty<'a>), )+
            /// An event type this crate does not know (or not yet). Never an error.
            Unknown {
                /// The `type` member.
                event_type: String,
                /// The whole event.
                raw: Value,
            },
        }

        impl<'a> ServerEvent<'a> {
            /// Every server event type this crate parses into a typed variant.
            pub const KNOWN_TYPES: &'static [&'static str] = &[$($name),+];

            /// The wire `type`.
            pub fn event_type(&self) -> &str {
                match self {
                    $( Self::$variant(_) => $name, )+
                    Self::Unknown { event_type, .. } => event_type,
                }
            }

            /// The server `event_id` (empty if the server sent none).
            pub fn event_id(&self) -> &str {
                match self {
                    $( Self::$variant(e) => &e.event_id, )+
                    Self::Unknown { raw, .. } => {
                        raw.get("event_id").and_then(Value::as_str).unwrap_or("")
                    }
                }
            }

            /// Copies every borrowed string so the event no longer borrows the input text.
            pub fn into_owned(self) -> ServerEvent<'static> {
                match self {
                    $( Self::$variant(e) => ServerEvent::$variant(e.into_owned()), )+
                    Self::Unknown { event_type, raw } => ServerEvent::Unknown { event_type, raw },
                }
            }

            /// Parses `text` as the known event `event_type`; `None` if the type is unknown.
            fn parse_known(event_type: &str, text: &'a str) -> Option<Result<Self, ParseError>> {
                Some(match event_type {
                    $( $name => serde_json::from_str::<$ty<'a>>(text)
                        .map(Self::$variant)
                        .map_err(|source| ParseError::Event { event_type: $name, source }), )+
                    _ => return None,
                })
            }
        }

        impl Serialize for ServerEvent<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $( Self::$variant(event) => {
                        Tagged { event_type: $name, event }.serialize(serializer)
                    } )+
                    Self::Unknown { raw, .. } => raw.serialize(serializer),
                }
            }
        }
    };
}

server_events! {
    // Hot events first: the dispatch `match` compares tags in this order.
    /// Model audio (base64 in the output format) — forward to the caller.
    OutputAudioDelta(OutputAudioDelta) = "response.output_audio.delta",
    /// The caller started speaking — the barge-in trigger.
    SpeechStarted(SpeechStarted) = "input_audio_buffer.speech_started",
    /// Transcript of the model's audio, incrementally.
    OutputAudioTranscriptDelta(TextDelta) = "response.output_audio_transcript.delta",
    /// The caller stopped speaking.
    SpeechStopped(SpeechStopped) = "input_audio_buffer.speech_stopped",
    /// The session as created (first event).
    SessionCreated(SessionEvent) = "session.created",
    /// The full effective session after a `session.update`.
    SessionUpdated(SessionEvent) = "session.updated",
    /// The default conversation was created.
    ConversationCreated(ConversationCreated) = "conversation.created",
    /// An item entered the conversation.
    ConversationItemAdded(ItemEvent) = "conversation.item.added",
    /// An item was finalized (no audio bytes).
    ConversationItemDone(ItemEvent) = "conversation.item.done",
    /// Legacy (beta) name still listed in the GA union; handle like `added`.
    ConversationItemCreated(ItemEvent) = "conversation.item.created",
    /// Answer to `conversation.item.retrieve` (with audio).
    ConversationItemRetrieved(ItemRetrieved) = "conversation.item.retrieved",
    /// Answer to `conversation.item.truncate`.
    ConversationItemTruncated(ItemTruncated) = "conversation.item.truncated",
    /// Answer to `conversation.item.delete`.
    ConversationItemDeleted(ItemDeleted) = "conversation.item.deleted",
    /// Caller transcript, incrementally.
    InputAudioTranscriptionDelta(TranscriptionDelta) =
        "conversation.item.input_audio_transcription.delta",
    /// Caller transcript of one turn.
    InputAudioTranscriptionCompleted(TranscriptionCompleted) =
        "conversation.item.input_audio_transcription.completed",
    /// Caller transcription failed.
    InputAudioTranscriptionFailed(TranscriptionFailed) =
        "conversation.item.input_audio_transcription.failed",
    /// A diarized transcription segment.
    InputAudioTranscriptionSegment(TranscriptionSegment) =
        "conversation.item.input_audio_transcription.segment",
    /// The input buffer was committed into a user item.
    InputAudioBufferCommitted(BufferCommitted) = "input_audio_buffer.committed",
    /// Answer to `input_audio_buffer.clear`.
    InputAudioBufferCleared(BufferCleared) = "input_audio_buffer.cleared",
    /// Idle timeout fired (server VAD `idle_timeout_ms`).
    InputAudioBufferTimeoutTriggered(TimeoutTriggered) = "input_audio_buffer.timeout_triggered",
    /// DTMF key received (SIP only).
    InputAudioBufferDtmfEventReceived(DtmfReceived) = "input_audio_buffer.dtmf_event_received",
    /// A response started (`status: in_progress`).
    ResponseCreated(ResponseEvent) = "response.created",
    /// A response ended, whatever the outcome.
    ResponseDone(ResponseEvent) = "response.done",
    /// An output item was added to a response.
    OutputItemAdded(OutputItemEvent) = "response.output_item.added",
    /// An output item finished.
    OutputItemDone(OutputItemEvent) = "response.output_item.done",
    /// A content part was added to an assistant item.
    ContentPartAdded(ContentPartEvent) = "response.content_part.added",
    /// A content part finished.
    ContentPartDone(ContentPartEvent) = "response.content_part.done",
    /// The audio of a part finished (also on interruption).
    OutputAudioDone(OutputAudioDone) = "response.output_audio.done",
    /// The transcript of a part finished.
    OutputAudioTranscriptDone(TranscriptDone) = "response.output_audio_transcript.done",
    /// Text output, incrementally (text modality).
    OutputTextDelta(TextDelta) = "response.output_text.delta",
    /// Text output finished.
    OutputTextDone(TextDone) = "response.output_text.done",
    /// Function call arguments, incrementally.
    FunctionCallArgumentsDelta(FunctionCallArgumentsDelta) =
        "response.function_call_arguments.delta",
    /// Function call arguments finished (also on interruption).
    FunctionCallArgumentsDone(FunctionCallArgumentsDone) = "response.function_call_arguments.done",
    /// Rate limits at the start of a response.
    RateLimitsUpdated(RateLimitsUpdated) = "rate_limits.updated",
    /// An error; most are recoverable.
    Error(ErrorEvent) = "error",
    /// Server-side playback started (WebRTC/SIP only).
    OutputAudioBufferStarted(OutputAudioBufferEvent) = "output_audio_buffer.started",
    /// Server-side playback drained (WebRTC/SIP only).
    OutputAudioBufferStopped(OutputAudioBufferEvent) = "output_audio_buffer.stopped",
    /// Server-side playback cleared (WebRTC/SIP only).
    OutputAudioBufferCleared(OutputAudioBufferEvent) = "output_audio_buffer.cleared",
    /// Listing an MCP server's tools.
    McpListToolsInProgress(McpListToolsEvent) = "mcp_list_tools.in_progress",
    /// MCP tools listed.
    McpListToolsCompleted(McpListToolsEvent) = "mcp_list_tools.completed",
    /// MCP tool listing failed.
    McpListToolsFailed(McpListToolsEvent) = "mcp_list_tools.failed",
    /// MCP call arguments, incrementally.
    McpCallArgumentsDelta(McpCallArgumentsDelta) = "response.mcp_call_arguments.delta",
    /// MCP call arguments finished.
    McpCallArgumentsDone(McpCallArgumentsDone) = "response.mcp_call_arguments.done",
    /// A hosted MCP call started.
    McpCallInProgress(McpCallEvent) = "response.mcp_call.in_progress",
    /// A hosted MCP call completed.
    McpCallCompleted(McpCallEvent) = "response.mcp_call.completed",
    /// A hosted MCP call failed.
    McpCallFailed(McpCallEvent) = "response.mcp_call.failed",
}

impl<'a> ServerEvent<'a> {
    /// Parses one server event, borrowing strings from `text` where possible (see the module
    /// docs for the hot-path strategy).
    pub fn parse(text: &'a str) -> Result<Self, ParseError> {
        if let Some(event_type) = sniff_leading_type(text) {
            return Self::parse_as(event_type, text);
        }
        let TypeTag(tag) = serde_json::from_str::<TypeTag<'a>>(text).map_err(ParseError::Json)?;
        let tag = tag.ok_or(ParseError::MissingType)?;
        Self::parse_as(&tag, text)
    }

    /// Parses and detaches from `text` in one call (for sending events across tasks).
    pub fn parse_owned(text: &str) -> Result<ServerEvent<'static>, ParseError> {
        ServerEvent::parse(text).map(ServerEvent::into_owned)
    }

    fn parse_as(event_type: &str, text: &'a str) -> Result<Self, ParseError> {
        if let Some(result) = Self::parse_known(event_type, text) {
            return result;
        }
        let raw: Value = serde_json::from_str(text).map_err(ParseError::Json)?;
        Ok(Self::Unknown {
            event_type: event_type.to_owned(),
            raw,
        })
    }

    /// Serializes to JSON text (for mock servers and logs of non-audio events).
    pub fn to_json(&self) -> String {
        // Invariant: serialization cannot fail — all map keys are strings and no `Serialize`
        // impl used here returns an error (serde_json writes non-finite floats as `null`).
        serde_json::to_string(self).unwrap_or_default()
    }
}
