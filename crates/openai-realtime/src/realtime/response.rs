//! The response resource (`response.created` / `response.done`, PROTOCOLS §6.6) and the
//! options of `response.create` (§6.8).
//!
//! ```
//! use openai_realtime::realtime::{ResponseCreateParams, ClientEvent};
//! let greet = ResponseCreateParams::instructions("Greet the caller.");
//! assert_eq!(
//!     ClientEvent::response_create(Some(greet)).to_json(),
//!     r#"{"type":"response.create","response":{"instructions":"Greet the caller."}}"#
//! );
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::item::{Item, ResponseInput};
use super::session::{
    AudioFormat, ConfigError, MaxOutputTokens, Modality, Prompt, Reasoning, Tool, ToolChoice,
    Voice, validate_format, validate_max_output_tokens, validate_modalities, validate_tools,
};
use super::wire::open_enum;

open_enum! {
    /// `response.status`.
    pub enum ResponseStatus {
        /// `in_progress` (in `response.created`).
        InProgress = "in_progress",
        /// `completed`.
        Completed = "completed",
        /// `cancelled` (barge-in or `response.cancel`).
        Cancelled = "cancelled",
        /// `failed` (see `status_details.error`).
        Failed = "failed",
        /// `incomplete` (token limit or content filter).
        Incomplete = "incomplete",
    }
}

open_enum! {
    /// `status_details.reason`: why a response did not complete.
    pub enum StatusReason {
        /// `turn_detected`: the caller started speaking (cancelled by server VAD).
        TurnDetected = "turn_detected",
        /// `client_cancelled`: we sent `response.cancel`.
        ClientCancelled = "client_cancelled",
        /// `max_output_tokens`: hit the token limit (incomplete).
        MaxOutputTokens = "max_output_tokens",
        /// `content_filter`: the safety filter cut it off (incomplete).
        ContentFilter = "content_filter",
    }
}

/// The response resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// `resp_…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `"realtime.response"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// Why it ended as it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_details: Option<StatusDetails>,
    /// Output items (no audio bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Vec<Item>>,
    /// `conv_…`, or `null` for out-of-band responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Modalities used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    /// Token cap used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<MaxOutputTokens>,
    /// Audio output settings used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<ResponseAudio>,
    /// Metadata given in `response.create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Token usage (billing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl Response {
    /// True when `status` is `completed` — the only state in which function calls of this
    /// response should be executed (PROTOCOLS §6.9).
    pub fn is_completed(&self) -> bool {
        self.status == Some(ResponseStatus::Completed)
    }

    /// The `status_details.reason`, if any.
    pub fn reason(&self) -> Option<&StatusReason> {
        self.status_details.as_ref()?.reason.as_ref()
    }

    /// The output items (empty if absent).
    pub fn output_items(&self) -> &[Item] {
        self.output.as_deref().unwrap_or(&[])
    }
}

/// `status_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusDetails {
    /// Mirrors `status` (`completed`, `cancelled`, `incomplete`, `failed`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ResponseStatus>,
    /// Reason for `cancelled` / `incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<StatusReason>,
    /// Error for `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StatusError>,
}

/// `status_details.error`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusError {
    /// Error type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `audio` of a response (also used in `response.create`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseAudio {
    /// `audio.output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ResponseAudioOutput>,
}

/// `audio.output` of a response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseAudioOutput {
    /// Output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    /// Voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Voice>,
}

/// `usage` of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input + output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// Input tokens (text + audio + image, cached included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Input breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_token_details: Option<InputTokenDetails>,
    /// Output breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_token_details: Option<OutputTokenDetails>,
}

/// `usage.input_token_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTokenDetails {
    /// Text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u64>,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Image tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tokens: Option<u64>,
    /// Cached tokens (a subset of the input tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Cached breakdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens_details: Option<CachedTokenDetails>,
}

/// `usage.input_token_details.cached_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedTokenDetails {
    /// Cached text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u64>,
    /// Cached audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Cached image tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tokens: Option<u64>,
}

/// `usage.output_token_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputTokenDetails {
    /// Text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_tokens: Option<u64>,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
}

open_enum! {
    /// `response.create` `conversation`: where the response is written.
    pub enum ConversationMode {
        /// `auto` (default): the default conversation.
        Auto = "auto",
        /// `none`: out-of-band, not written to the conversation.
        None = "none",
    }
}

/// Options of `response.create` (PROTOCOLS §6.8); every field optional, overriding the
/// session for this response only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseCreateParams {
    /// `["audio"]` or `["text"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    /// Instructions for this response only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Audio output format/voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<ResponseAudio>,
    /// Tools for this response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Tool choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Parallel tool calls (reasoning models only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Reasoning (reasoning models only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    /// Token cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<MaxOutputTokens>,
    /// `auto` or `none` (out-of-band).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationMode>,
    /// String tags (e.g. to tell parallel responses apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Stored prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Prompt>,
    /// A fresh context for this response: items and item references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Vec<ResponseInput>>,
}

impl ResponseCreateParams {
    /// Parameters with only `instructions` set (e.g. a greeting).
    pub fn instructions(instructions: impl Into<String>) -> Self {
        Self {
            instructions: Some(instructions.into()),
            ..Self::default()
        }
    }

    /// Checks the documented ranges: `max_output_tokens` 1–4096, one output modality, PCM at
    /// 24000 Hz, non-empty tool names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(m) = &self.output_modalities {
            validate_modalities(m)?;
        }
        if let Some(max) = self.max_output_tokens {
            validate_max_output_tokens(max)?;
        }
        if let Some(f) = self
            .audio
            .as_ref()
            .and_then(|a| a.output.as_ref())
            .and_then(|o| o.format.as_ref())
        {
            validate_format(f)?;
        }
        if let Some(tools) = &self.tools {
            validate_tools(tools)?;
        }
        Ok(())
    }
}
