//! The GA session object (PROTOCOLS §6.3–§6.4): [`SessionConfig`] for `session.update`, its
//! [`SessionBuilder`] with range validation, and the server's [`Session`] echoed in
//! `session.created` / `session.updated`.
//!
//! Serialization writes exactly the GA shape: `type: "realtime"` always, nested
//! `audio.input` / `audio.output`, and only the fields you set. Fields that the protocol lets
//! you turn off (`turn_detection`, `transcription`, `noise_reduction`, `tracing`, `prompt`) are
//! [`Nullable`]: absent = unchanged, `null` = off, value = set.
//!
//! ```
//! use openai_realtime::realtime::{SessionConfig, Voice};
//! let cfg = SessionConfig::telephony("You are Acme's phone assistant.", Voice::Marin);
//! let json = serde_json::to_value(&cfg).unwrap();
//! assert_eq!(json["type"], "realtime");
//! assert_eq!(json["audio"]["input"]["format"]["type"], "audio/pcmu");
//! assert_eq!(json["audio"]["output"]["voice"], "marin");
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::models;
use super::wire::{Nullable, open_enum, string_literal};

open_enum! {
    /// `session.type`: what kind of session this is (default `realtime`).
    #[derive(Default)]
    pub enum SessionType {
        /// `realtime` — speech-to-speech (what this crate is for).
        #[default]
        Realtime = "realtime",
        /// `transcription` — transcription-only session.
        Transcription = "transcription",
    }
}

open_enum! {
    /// An output modality. GA accepts `["audio"]` (audio plus transcript) or `["text"]`, never
    /// both.
    pub enum Modality {
        /// `audio` — spoken answer plus its transcript.
        Audio = "audio",
        /// `text` — text only.
        Text = "text",
    }
}

/// An audio format (`audio.input.format`, `audio.output.format`).
///
/// ```
/// use openai_realtime::realtime::AudioFormat;
/// assert_eq!(serde_json::to_string(&AudioFormat::Pcmu).unwrap(), r#"{"type":"audio/pcmu"}"#);
/// assert_eq!(
///     serde_json::to_string(&AudioFormat::pcm24k()).unwrap(),
///     r#"{"type":"audio/pcm","rate":24000}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AudioFormat {
    /// `audio/pcm`: 16-bit little-endian mono PCM. Only `rate: 24000` is accepted by the API.
    #[serde(rename = "audio/pcm")]
    Pcm {
        /// Sample rate in Hz; must be 24000.
        #[serde(default = "pcm_rate_default")]
        rate: u32,
    },
    /// `audio/pcmu`: G.711 μ-law, 8 kHz (no `rate` field). Twilio's native format.
    #[serde(rename = "audio/pcmu")]
    Pcmu,
    /// `audio/pcma`: G.711 A-law, 8 kHz (no `rate` field).
    #[serde(rename = "audio/pcma")]
    Pcma,
    /// A format this crate does not model, kept verbatim.
    #[serde(untagged)]
    Unknown(Value),
}

fn pcm_rate_default() -> u32 {
    24_000
}

impl AudioFormat {
    /// `{"type":"audio/pcm","rate":24000}`.
    pub fn pcm24k() -> Self {
        Self::Pcm { rate: 24_000 }
    }

    /// The sample rate in Hz, if known.
    pub fn sample_rate(&self) -> Option<u32> {
        match self {
            Self::Pcm { rate } => Some(*rate),
            Self::Pcmu | Self::Pcma => Some(8_000),
            Self::Unknown(_) => None,
        }
    }

    /// Bytes of (decoded base64) audio per millisecond: 8 for G.711, 48 for PCM16 at 24 kHz.
    /// Use it to turn received audio into `audio_end_ms` for truncation (PROTOCOLS §6.10).
    pub fn bytes_per_ms(&self) -> Option<u32> {
        match self {
            Self::Pcm { rate } => Some(rate / 1000 * 2),
            Self::Pcmu | Self::Pcma => Some(8),
            Self::Unknown(_) => None,
        }
    }
}

/// A voice: one of the built-in names, any other name (accepted as-is), or a custom voice
/// object `{"id":"voice_…"}`. The voice cannot change after the model has spoken once.
///
/// ```
/// use openai_realtime::realtime::Voice;
/// assert_eq!(Voice::from("marin"), Voice::Marin);
/// assert_eq!(serde_json::to_string(&Voice::Marin).unwrap(), r#""marin""#);
/// let custom = Voice::Custom { id: "voice_123".into() };
/// assert_eq!(serde_json::to_string(&custom).unwrap(), r#"{"id":"voice_123"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Voice {
    /// `alloy` (the server default).
    #[default]
    Alloy,
    /// `ash`.
    Ash,
    /// `ballad`.
    Ballad,
    /// `coral`.
    Coral,
    /// `echo`.
    Echo,
    /// `sage`.
    Sage,
    /// `shimmer`.
    Shimmer,
    /// `verse`.
    Verse,
    /// `marin` (recommended by OpenAI).
    Marin,
    /// `cedar` (recommended by OpenAI).
    Cedar,
    /// Any other voice name, sent verbatim.
    Other(String),
    /// A custom voice object `{"id": …}`.
    Custom {
        /// The custom voice id, e.g. `voice_1234`.
        id: String,
    },
}

impl Voice {
    /// The built-in voice names (PROTOCOLS §6.1).
    pub const KNOWN: &'static [&'static str] = &[
        "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar",
    ];

    /// The voice name, or the custom voice id.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Alloy => "alloy",
            Self::Ash => "ash",
            Self::Ballad => "ballad",
            Self::Coral => "coral",
            Self::Echo => "echo",
            Self::Sage => "sage",
            Self::Shimmer => "shimmer",
            Self::Verse => "verse",
            Self::Marin => "marin",
            Self::Cedar => "cedar",
            Self::Other(name) => name,
            Self::Custom { id } => id,
        }
    }
}

impl From<&str> for Voice {
    fn from(name: &str) -> Self {
        match name {
            "alloy" => Self::Alloy,
            "ash" => Self::Ash,
            "ballad" => Self::Ballad,
            "coral" => Self::Coral,
            "echo" => Self::Echo,
            "sage" => Self::Sage,
            "shimmer" => Self::Shimmer,
            "verse" => Self::Verse,
            "marin" => Self::Marin,
            "cedar" => Self::Cedar,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl From<String> for Voice {
    fn from(name: String) -> Self {
        match Self::from(name.as_str()) {
            Self::Other(_) => Self::Other(name),
            known => known,
        }
    }
}

impl Serialize for Voice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Custom { id } => {
                #[derive(Serialize)]
                struct Custom<'a> {
                    id: &'a str,
                }
                Custom { id }.serialize(serializer)
            }
            named => serializer.serialize_str(named.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for Voice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Name(String),
            Custom { id: String },
        }
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Name(name) => Self::from(name),
            Repr::Custom { id } => Self::Custom { id },
        })
    }
}

/// Turn detection (`audio.input.turn_detection`, PROTOCOLS §6.4). Use
/// [`Nullable::Null`] in [`AudioInput::turn_detection`] for manual turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TurnDetection {
    /// `server_vad`: volume-based voice activity detection.
    #[serde(rename = "server_vad")]
    ServerVad(ServerVad),
    /// `semantic_vad`: model-based end-of-turn detection.
    #[serde(rename = "semantic_vad")]
    SemanticVad(SemanticVad),
    /// A turn-detection type this crate does not model, kept verbatim.
    #[serde(untagged)]
    Unknown(Value),
}

/// `server_vad` parameters. Every field is optional; `None` leaves the server default.
///
/// ```
/// use openai_realtime::realtime::ServerVad;
/// let vad = ServerVad::documented_defaults().silence_duration_ms(700).idle_timeout_ms(8_000);
/// assert_eq!(vad.threshold, Some(0.5));
/// assert_eq!(vad.idle_timeout_ms, Some(8_000));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerVad {
    /// Activation threshold 0.0–1.0 (default 0.5); higher needs louder speech.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Audio kept before detected speech, ms (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_padding_ms: Option<u32>,
    /// Silence that ends the turn, ms (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_duration_ms: Option<u32>,
    /// 5000–30000: after this much caller silence (counted from the end of the model's audio)
    /// the server emits `input_audio_buffer.timeout_triggered` and responds. `server_vad` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u32>,
    /// Create a response automatically at the end of speech (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_response: Option<bool>,
    /// Cancel the running response when speech starts (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupt_response: Option<bool>,
}

impl ServerVad {
    /// The documented defaults written out explicitly (threshold 0.5, prefix 300 ms, silence
    /// 500 ms, create and interrupt on), so behaviour does not drift with server defaults.
    pub fn documented_defaults() -> Self {
        Self {
            threshold: Some(0.5),
            prefix_padding_ms: Some(300),
            silence_duration_ms: Some(500),
            idle_timeout_ms: None,
            create_response: Some(true),
            interrupt_response: Some(true),
        }
    }

    /// Sets `threshold`.
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// Sets `prefix_padding_ms`.
    pub fn prefix_padding_ms(mut self, ms: u32) -> Self {
        self.prefix_padding_ms = Some(ms);
        self
    }

    /// Sets `silence_duration_ms`.
    pub fn silence_duration_ms(mut self, ms: u32) -> Self {
        self.silence_duration_ms = Some(ms);
        self
    }

    /// Sets `idle_timeout_ms` (validated to 5000–30000 by [`SessionBuilder::build`]).
    pub fn idle_timeout_ms(mut self, ms: u32) -> Self {
        self.idle_timeout_ms = Some(ms);
        self
    }

    /// Sets `create_response`.
    pub fn create_response(mut self, on: bool) -> Self {
        self.create_response = Some(on);
        self
    }

    /// Sets `interrupt_response`.
    pub fn interrupt_response(mut self, on: bool) -> Self {
        self.interrupt_response = Some(on);
        self
    }
}

impl From<ServerVad> for TurnDetection {
    fn from(vad: ServerVad) -> Self {
        Self::ServerVad(vad)
    }
}

open_enum! {
    /// `semantic_vad` eagerness: how quickly the model decides the caller has finished.
    pub enum Eagerness {
        /// `low` — waits longest (max 8 s).
        Low = "low",
        /// `medium` — max 4 s.
        Medium = "medium",
        /// `high` — responds quickly (max 2 s).
        High = "high",
        /// `auto` — the default, equivalent to `medium`.
        Auto = "auto",
    }
}

/// `semantic_vad` parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SemanticVad {
    /// How eager the model is to respond.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eagerness: Option<Eagerness>,
    /// Create a response automatically at the end of the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_response: Option<bool>,
    /// Cancel the running response when speech starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupt_response: Option<bool>,
}

impl From<SemanticVad> for TurnDetection {
    fn from(vad: SemanticVad) -> Self {
        Self::SemanticVad(vad)
    }
}

open_enum! {
    /// Transcription `delay` (only for `gpt-realtime-whisper`).
    pub enum TranscriptionDelay {
        /// `minimal`.
        Minimal = "minimal",
        /// `low`.
        Low = "low",
        /// `medium`.
        Medium = "medium",
        /// `high`.
        High = "high",
        /// `xhigh`.
        XHigh = "xhigh",
    }
}

/// Input transcription settings (`audio.input.transcription`). Transcription is asynchronous
/// and approximate; it is billed separately.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcription {
    /// Transcription model, e.g. `gpt-4o-mini-transcribe`, `gpt-transcribe`, `whisper-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Input language, ISO-639-1 (e.g. `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Guidance text (keywords for `whisper-1`, free text for gpt-4o transcribers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Possible languages (`gpt-transcribe` / `gpt-live-transcribe` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
    /// Words or phrases to guide transcription (`gpt-transcribe` / `gpt-live-transcribe` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    /// Latency/accuracy trade-off (`gpt-realtime-whisper` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<TranscriptionDelay>,
}

impl Transcription {
    /// Transcription with the given model and nothing else set.
    pub fn model(model: impl Into<String>) -> Self {
        Self {
            model: Some(model.into()),
            ..Self::default()
        }
    }

    /// Sets `language`.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// Sets `prompt`.
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }
}

open_enum! {
    /// Noise reduction profile.
    pub enum NoiseReductionType {
        /// `near_field` — close-talking microphones, headsets.
        NearField = "near_field",
        /// `far_field` — laptops, conference rooms, speakerphones.
        FarField = "far_field",
    }
}

/// Input noise reduction (`audio.input.noise_reduction`); filters audio before VAD and the
/// model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NoiseReduction {
    /// The profile.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<NoiseReductionType>,
    /// Suppression strength (server default 1 when first enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<f64>,
}

impl NoiseReduction {
    /// `{"type":"near_field"}`.
    pub fn near_field() -> Self {
        Self {
            kind: Some(NoiseReductionType::NearField),
            strength: None,
        }
    }

    /// `{"type":"far_field"}`.
    pub fn far_field() -> Self {
        Self {
            kind: Some(NoiseReductionType::FarField),
            strength: None,
        }
    }
}

/// `audio.input`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioInput {
    /// Format of the audio we append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    /// Turn detection; `Null` = manual turns.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub turn_detection: Nullable<TurnDetection>,
    /// Input transcription; `Null` = off.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub transcription: Nullable<Transcription>,
    /// Noise reduction; `Null` = off.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub noise_reduction: Nullable<NoiseReduction>,
}

/// `audio.output`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioOutput {
    /// Format of the audio the server sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    /// The voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<Voice>,
    /// Playback speed 0.25–1.5 (default 1.0); changeable only between turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
}

/// `audio`: input and output audio configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioConfig {
    /// `audio.input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<AudioInput>,
    /// `audio.output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<AudioOutput>,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Tool {
    /// `{"type":"function", name, description, parameters}`.
    #[serde(rename = "function")]
    Function(FunctionTool),
    /// MCP tools (`{"type":"mcp","server_label":…}`) and future tool types, as raw JSON. Build
    /// one with `Tool::Unknown(serde_json::json!({...}))`.
    #[serde(untagged)]
    Unknown(Value),
}

/// A function tool: the model emits a `function_call` item with JSON arguments matching
/// `parameters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionTool {
    /// Function name.
    pub name: String,
    /// When and how to call it, and what to say while doing so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments (an object schema). `Null` is not written.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub parameters: Value,
}

impl FunctionTool {
    /// A function tool with a description and a JSON-schema `parameters` object.
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        Self {
            name: name.into(),
            description: Some(description.into()),
            parameters,
        }
    }
}

impl From<FunctionTool> for Tool {
    fn from(tool: FunctionTool) -> Self {
        Self::Function(tool)
    }
}

open_enum! {
    /// The string modes of `tool_choice`.
    pub enum ToolChoiceMode {
        /// `auto` (default): the model decides.
        Auto = "auto",
        /// `none`: no tool calls.
        None = "none",
        /// `required`: the model must call a tool.
        Required = "required",
    }
}

/// A specific tool the model must call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ForcedTool {
    /// `{"type":"function","name":…}`.
    #[serde(rename = "function")]
    Function {
        /// Function name.
        name: String,
    },
    /// `{"type":"mcp","server_label":…,"name":…}`.
    #[serde(rename = "mcp")]
    Mcp {
        /// MCP server label.
        server_label: String,
        /// Tool name on that server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

/// `tool_choice`: a mode string or a forced tool object.
///
/// ```
/// use openai_realtime::realtime::{ToolChoice, ToolChoiceMode};
/// assert_eq!(serde_json::to_string(&ToolChoice::Mode(ToolChoiceMode::Auto)).unwrap(), r#""auto""#);
/// assert_eq!(
///     serde_json::to_string(&ToolChoice::function("end_call")).unwrap(),
///     r#"{"type":"function","name":"end_call"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `"auto"`, `"none"`, `"required"`.
    Mode(ToolChoiceMode),
    /// A specific tool.
    Forced(ForcedTool),
    /// Anything else, kept verbatim.
    Unknown(Value),
}

impl ToolChoice {
    /// Forces the function `name`.
    pub fn function(name: impl Into<String>) -> Self {
        Self::Forced(ForcedTool::Function { name: name.into() })
    }
}

impl From<ToolChoiceMode> for ToolChoice {
    fn from(mode: ToolChoiceMode) -> Self {
        Self::Mode(mode)
    }
}

/// `max_output_tokens`: an integer 1–4096 or `"inf"`.
///
/// ```
/// use openai_realtime::realtime::MaxOutputTokens;
/// assert_eq!(serde_json::to_string(&MaxOutputTokens::Inf).unwrap(), r#""inf""#);
/// assert_eq!(serde_json::to_string(&MaxOutputTokens::Limit(512)).unwrap(), "512");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaxOutputTokens {
    /// A limit (1–4096, validated by the builders).
    Limit(u32),
    /// `"inf"`: the model's maximum (server default).
    Inf,
}

string_literal!(
    /// The string `"inf"`.
    InfLiteral = "inf"
);

impl Serialize for MaxOutputTokens {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Limit(n) => serializer.serialize_u32(*n),
            Self::Inf => InfLiteral.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for MaxOutputTokens {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Limit(u32),
            Inf(InfLiteral),
        }
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Limit(n) => Self::Limit(n),
            Repr::Inf(InfLiteral) => Self::Inf,
        })
    }
}

/// Truncation strategy when the conversation exceeds the context window.
#[derive(Debug, Clone, PartialEq)]
pub enum Truncation {
    /// `"auto"` (default): drop the oldest messages.
    Auto,
    /// `"disabled"`: return an error instead of dropping context.
    Disabled,
    /// `{"type":"retention_ratio", …}`: keep this fraction when truncating.
    RetentionRatio(RetentionRatio),
    /// Anything else, kept verbatim.
    Unknown(Value),
}

/// Parameters of the `retention_ratio` truncation strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetentionRatio {
    /// Fraction (0.0–1.0) of post-instruction tokens to retain.
    pub retention_ratio: f64,
    /// Optional custom token limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_limits: Option<TokenLimits>,
}

/// Token limits for [`RetentionRatio`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenLimits {
    /// Maximum tokens after the instructions before truncation happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_instructions: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type")]
enum TruncationObject {
    #[serde(rename = "retention_ratio")]
    RetentionRatio(RetentionRatio),
}

string_literal!(
    /// The string `"auto"`.
    AutoLiteral = "auto"
);
string_literal!(
    /// The string `"disabled"`.
    DisabledLiteral = "disabled"
);

impl Serialize for Truncation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => AutoLiteral.serialize(serializer),
            Self::Disabled => DisabledLiteral.serialize(serializer),
            Self::RetentionRatio(r) => {
                #[derive(Serialize)]
                #[serde(tag = "type")]
                enum Ref<'a> {
                    #[serde(rename = "retention_ratio")]
                    RetentionRatio(&'a RetentionRatio),
                }
                Ref::RetentionRatio(r).serialize(serializer)
            }
            Self::Unknown(v) => v.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Truncation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Auto(AutoLiteral),
            Disabled(DisabledLiteral),
            Object(TruncationObject),
            Unknown(Value),
        }
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Auto(_) => Self::Auto,
            Repr::Disabled(_) => Self::Disabled,
            Repr::Object(TruncationObject::RetentionRatio(r)) => Self::RetentionRatio(r),
            Repr::Unknown(v) => Self::Unknown(v),
        })
    }
}

/// Tracing configuration: `"auto"` or explicit names. Wrap in [`Nullable::Null`] to send
/// `null` (off). Immutable once enabled for a session.
#[derive(Debug, Clone, PartialEq)]
pub enum Tracing {
    /// `"auto"`: default workflow name, group and metadata.
    Auto,
    /// Explicit trace settings.
    Config(TracingConfig),
}

/// Explicit trace settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TracingConfig {
    /// Workflow name shown in the traces dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    /// Group id for filtering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl Serialize for Tracing {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => AutoLiteral.serialize(serializer),
            Self::Config(c) => c.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Tracing {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Auto(AutoLiteral),
            Config(TracingConfig),
        }
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Auto(_) => Self::Auto,
            Repr::Config(c) => Self::Config(c),
        })
    }
}

/// A reference to a stored prompt template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    /// Prompt id.
    pub id: String,
    /// Prompt version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Template variables (strings or input objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<BTreeMap<String, Value>>,
}

open_enum! {
    /// `reasoning.effort` for reasoning models (`gpt-realtime-2` and later only).
    pub enum ReasoningEffort {
        /// `minimal`.
        Minimal = "minimal",
        /// `low` (server default).
        Low = "low",
        /// `medium`.
        Medium = "medium",
        /// `high`.
        High = "high",
        /// `xhigh`.
        XHigh = "xhigh",
    }
}

/// `reasoning`: only `gpt-realtime-2*` (reasoning) models accept it; older models reject the
/// session update. See [`models::is_reasoning_model`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reasoning {
    /// Reasoning effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<ReasoningEffort>,
}

/// The `include` value that adds log probabilities to input transcription events.
pub const INCLUDE_INPUT_TRANSCRIPTION_LOGPROBS: &str = "item.input_audio_transcription.logprobs";

/// The GA session configuration sent in `session.update` (and echoed by the server inside
/// [`Session`]). Only fields that are set are written.
///
/// Build one with [`SessionConfig::telephony`] (our main use), [`SessionConfig::builder`]
/// (validated), or by filling fields on `SessionConfig::default()` and calling
/// [`SessionConfig::validate`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// `type`: always written; `realtime` for speech-to-speech.
    #[serde(rename = "type", default)]
    pub session_type: SessionType,
    /// Model; normally chosen in the connect URL (it cannot change mid-session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// System instructions (`""` clears them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// `["audio"]` or `["text"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    /// Input/output audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioConfig>,
    /// Extra server outputs, e.g. [`INCLUDE_INPUT_TRANSCRIPTION_LOGPROBS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// Tools (`[]` clears them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Tool choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Parallel tool calls (reasoning models only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Reasoning settings (reasoning models only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    /// Per-response output token cap, tool calls included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<MaxOutputTokens>,
    /// Context truncation strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<Truncation>,
    /// Tracing; `Null` = off.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub tracing: Nullable<Tracing>,
    /// Stored prompt reference; `Null` = none.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub prompt: Nullable<Prompt>,
}

impl SessionConfig {
    /// The configuration for a Twilio phone call: G.711 μ-law in and out (Twilio's native
    /// format, so audio passes through untouched), `output_modalities: ["audio"]`, the given
    /// instructions and voice, and `server_vad` with its documented defaults written out
    /// explicitly. Everything else stays at the server default.
    ///
    /// ```
    /// use openai_realtime::realtime::{ClientEvent, SessionConfig};
    /// let cfg = SessionConfig::telephony("Be brief.", "marin");
    /// assert!(cfg.validate().is_ok());
    /// let json = ClientEvent::session_update(&cfg).to_json();
    /// assert!(json.starts_with(r#"{"type":"session.update","session":{"type":"realtime""#));
    /// ```
    pub fn telephony(instructions: impl Into<String>, voice: impl Into<Voice>) -> Self {
        Self {
            instructions: Some(instructions.into()),
            output_modalities: Some(vec![Modality::Audio]),
            audio: Some(AudioConfig {
                input: Some(AudioInput {
                    format: Some(AudioFormat::Pcmu),
                    turn_detection: Nullable::Value(TurnDetection::ServerVad(
                        ServerVad::documented_defaults(),
                    )),
                    ..AudioInput::default()
                }),
                output: Some(AudioOutput {
                    format: Some(AudioFormat::Pcmu),
                    voice: Some(voice.into()),
                    speed: None,
                }),
            }),
            ..Self::default()
        }
    }

    /// A validating builder starting from an empty `realtime` session.
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    /// A validating builder starting from this configuration.
    pub fn into_builder(self) -> SessionBuilder {
        SessionBuilder { config: self }
    }

    /// The input audio format, if set.
    pub fn input_format(&self) -> Option<&AudioFormat> {
        self.audio.as_ref()?.input.as_ref()?.format.as_ref()
    }

    /// The output audio format, if set.
    pub fn output_format(&self) -> Option<&AudioFormat> {
        self.audio.as_ref()?.output.as_ref()?.format.as_ref()
    }

    /// The turn detection setting (absent if `audio.input` is absent).
    pub fn turn_detection(&self) -> &Nullable<TurnDetection> {
        const ABSENT: &Nullable<TurnDetection> = &Nullable::Absent;
        self.audio
            .as_ref()
            .and_then(|a| a.input.as_ref())
            .map_or(ABSENT, |i| &i.turn_detection)
    }

    /// Checks every documented range (PROTOCOLS §6.3, §6.12): `idle_timeout_ms` 5000–30000,
    /// `speed` 0.25–1.5, `max_output_tokens` 1–4096, `threshold` and `retention_ratio`
    /// 0.0–1.0, PCM only at 24000 Hz, not both output modalities, non-empty tool names, and no
    /// `reasoning` / `parallel_tool_calls` on a known non-reasoning model.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(m) = &self.output_modalities {
            validate_modalities(m)?;
        }
        if let Some(audio) = &self.audio {
            if let Some(input) = &audio.input {
                if let Some(f) = &input.format {
                    validate_format(f)?;
                }
                match &input.turn_detection {
                    Nullable::Value(TurnDetection::ServerVad(vad)) => validate_server_vad(vad)?,
                    Nullable::Value(_) | Nullable::Null | Nullable::Absent => {}
                }
            }
            if let Some(output) = &audio.output {
                if let Some(f) = &output.format {
                    validate_format(f)?;
                }
                if let Some(speed) = output.speed
                    && !(0.25..=1.5).contains(&speed)
                {
                    return Err(ConfigError::SpeedOutOfRange(speed));
                }
            }
        }
        if let Some(tools) = &self.tools {
            validate_tools(tools)?;
        }
        if let Some(max) = self.max_output_tokens {
            validate_max_output_tokens(max)?;
        }
        if let Some(Truncation::RetentionRatio(r)) = &self.truncation
            && !(0.0..=1.0).contains(&r.retention_ratio)
        {
            return Err(ConfigError::RetentionRatioOutOfRange(r.retention_ratio));
        }
        if let Nullable::Value(p) = &self.prompt
            && p.id.is_empty()
        {
            return Err(ConfigError::EmptyField("prompt.id"));
        }
        if let Some(model) = &self.model {
            validate_reasoning_fields(
                model,
                self.reasoning.is_some(),
                self.parallel_tool_calls.is_some(),
            )?;
        }
        Ok(())
    }
}

pub(crate) fn validate_modalities(m: &[Modality]) -> Result<(), ConfigError> {
    if m.contains(&Modality::Audio) && m.contains(&Modality::Text) {
        return Err(ConfigError::ConflictingModalities);
    }
    Ok(())
}

pub(crate) fn validate_format(f: &AudioFormat) -> Result<(), ConfigError> {
    match f {
        AudioFormat::Pcm { rate } if *rate != 24_000 => Err(ConfigError::UnsupportedPcmRate(*rate)),
        _ => Ok(()),
    }
}

pub(crate) fn validate_max_output_tokens(max: MaxOutputTokens) -> Result<(), ConfigError> {
    match max {
        MaxOutputTokens::Limit(n) if !(1..=4096).contains(&n) => {
            Err(ConfigError::MaxOutputTokensOutOfRange(n))
        }
        _ => Ok(()),
    }
}

pub(crate) fn validate_tools(tools: &[Tool]) -> Result<(), ConfigError> {
    for tool in tools {
        if let Tool::Function(f) = tool
            && f.name.is_empty()
        {
            return Err(ConfigError::EmptyField("tools[].name"));
        }
    }
    Ok(())
}

pub(crate) fn validate_reasoning_fields(
    model: &str,
    reasoning: bool,
    parallel_tool_calls: bool,
) -> Result<(), ConfigError> {
    if !models::is_known_non_reasoning_model(model) {
        return Ok(());
    }
    let field = if reasoning {
        "reasoning"
    } else if parallel_tool_calls {
        "parallel_tool_calls"
    } else {
        return Ok(());
    };
    Err(ConfigError::ReasoningModelRequired {
        field,
        model: model.to_owned(),
    })
}

fn validate_server_vad(vad: &ServerVad) -> Result<(), ConfigError> {
    if let Some(ms) = vad.idle_timeout_ms
        && !(5_000..=30_000).contains(&ms)
    {
        return Err(ConfigError::IdleTimeoutOutOfRange(ms));
    }
    if let Some(t) = vad.threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(ConfigError::ThresholdOutOfRange(t));
    }
    Ok(())
}

/// A configuration value outside its documented range (PROTOCOLS §6.3, §6.4, §6.12).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `server_vad.idle_timeout_ms` outside 5000–30000.
    #[error("idle_timeout_ms must be within 5000..=30000, got {0}")]
    IdleTimeoutOutOfRange(u32),
    /// `audio.output.speed` outside 0.25–1.5 (or NaN).
    #[error("audio.output.speed must be within 0.25..=1.5, got {0}")]
    SpeedOutOfRange(f64),
    /// `max_output_tokens` outside 1–4096.
    #[error("max_output_tokens must be within 1..=4096 (or \"inf\"), got {0}")]
    MaxOutputTokensOutOfRange(u32),
    /// `server_vad.threshold` outside 0.0–1.0 (or NaN).
    #[error("server_vad threshold must be within 0.0..=1.0, got {0}")]
    ThresholdOutOfRange(f64),
    /// `truncation.retention_ratio` outside 0.0–1.0 (or NaN).
    #[error("truncation retention_ratio must be within 0.0..=1.0, got {0}")]
    RetentionRatioOutOfRange(f64),
    /// `audio/pcm` with a rate other than 24000.
    #[error("audio/pcm supports only rate 24000, got {0}")]
    UnsupportedPcmRate(u32),
    /// Both `audio` and `text` in `output_modalities`.
    #[error("output_modalities must be [\"audio\"] or [\"text\"], not both")]
    ConflictingModalities,
    /// A required string is empty.
    #[error("`{0}` must not be empty")]
    EmptyField(&'static str),
    /// `reasoning` or `parallel_tool_calls` set for a known non-reasoning model.
    #[error("`{field}` needs a reasoning model (gpt-realtime-2 or later), not {model}")]
    ReasoningModelRequired {
        /// The offending field.
        field: &'static str,
        /// The session's model.
        model: String,
    },
}

/// Validating builder for [`SessionConfig`].
///
/// ```
/// use openai_realtime::realtime::{
///     AudioFormat, ConfigError, FunctionTool, MaxOutputTokens, ServerVad, SessionConfig,
/// };
/// let cfg = SessionConfig::builder()
///     .instructions("Be brief.")
///     .audio_format(AudioFormat::Pcmu)
///     .voice("cedar")
///     .turn_detection(ServerVad::documented_defaults().idle_timeout_ms(10_000))
///     .tool(FunctionTool::new("end_call", "Hang up.", serde_json::json!({"type": "object"})))
///     .max_output_tokens(MaxOutputTokens::Limit(1024))
///     .build()?;
/// assert_eq!(cfg.tools.as_ref().map(Vec::len), Some(1));
///
/// let err = SessionConfig::builder().speed(3.0).build().unwrap_err();
/// assert_eq!(err, ConfigError::SpeedOutOfRange(3.0));
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionBuilder {
    config: SessionConfig,
}

impl SessionBuilder {
    fn input(&mut self) -> &mut AudioInput {
        self.config
            .audio
            .get_or_insert_with(AudioConfig::default)
            .input
            .get_or_insert_with(AudioInput::default)
    }

    fn output(&mut self) -> &mut AudioOutput {
        self.config
            .audio
            .get_or_insert_with(AudioConfig::default)
            .output
            .get_or_insert_with(AudioOutput::default)
    }

    /// Sets `model` (normally left to the connect URL).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.config.model = Some(model.into());
        self
    }

    /// Sets `instructions`.
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        self.config.instructions = Some(instructions.into());
        self
    }

    /// Sets `output_modalities`.
    pub fn output_modalities(mut self, modalities: impl IntoIterator<Item = Modality>) -> Self {
        self.config.output_modalities = Some(modalities.into_iter().collect());
        self
    }

    /// Sets `audio.input.format`.
    pub fn input_format(mut self, format: AudioFormat) -> Self {
        self.input().format = Some(format);
        self
    }

    /// Sets `audio.output.format`.
    pub fn output_format(mut self, format: AudioFormat) -> Self {
        self.output().format = Some(format);
        self
    }

    /// Sets both input and output formats.
    pub fn audio_format(self, format: AudioFormat) -> Self {
        self.input_format(format.clone()).output_format(format)
    }

    /// Sets `audio.output.voice`.
    pub fn voice(mut self, voice: impl Into<Voice>) -> Self {
        self.output().voice = Some(voice.into());
        self
    }

    /// Sets `audio.output.speed` (0.25–1.5).
    pub fn speed(mut self, speed: f64) -> Self {
        self.output().speed = Some(speed);
        self
    }

    /// Sets `audio.input.turn_detection`.
    pub fn turn_detection(mut self, turn_detection: impl Into<TurnDetection>) -> Self {
        self.input().turn_detection = Nullable::Value(turn_detection.into());
        self
    }

    /// Sends `turn_detection: null` (manual turns: commit and `response.create` yourself).
    pub fn turn_detection_off(mut self) -> Self {
        self.input().turn_detection = Nullable::Null;
        self
    }

    /// Sets `audio.input.transcription`.
    pub fn transcription(mut self, transcription: Transcription) -> Self {
        self.input().transcription = Nullable::Value(transcription);
        self
    }

    /// Sends `transcription: null`.
    pub fn transcription_off(mut self) -> Self {
        self.input().transcription = Nullable::Null;
        self
    }

    /// Sets `audio.input.noise_reduction`.
    pub fn noise_reduction(mut self, noise_reduction: NoiseReduction) -> Self {
        self.input().noise_reduction = Nullable::Value(noise_reduction);
        self
    }

    /// Sends `noise_reduction: null`.
    pub fn noise_reduction_off(mut self) -> Self {
        self.input().noise_reduction = Nullable::Null;
        self
    }

    /// Appends one tool.
    pub fn tool(mut self, tool: impl Into<Tool>) -> Self {
        self.config
            .tools
            .get_or_insert_with(Vec::new)
            .push(tool.into());
        self
    }

    /// Replaces the tool list (an empty list clears the server's tools).
    pub fn tools(mut self, tools: impl IntoIterator<Item = Tool>) -> Self {
        self.config.tools = Some(tools.into_iter().collect());
        self
    }

    /// Sets `tool_choice`.
    pub fn tool_choice(mut self, choice: impl Into<ToolChoice>) -> Self {
        self.config.tool_choice = Some(choice.into());
        self
    }

    /// Sets `parallel_tool_calls` (reasoning models only).
    pub fn parallel_tool_calls(mut self, on: bool) -> Self {
        self.config.parallel_tool_calls = Some(on);
        self
    }

    /// Sets `reasoning.effort` (reasoning models `gpt-realtime-2*` only).
    pub fn reasoning_effort(mut self, effort: ReasoningEffort) -> Self {
        self.config.reasoning = Some(Reasoning {
            effort: Some(effort),
        });
        self
    }

    /// Sets `max_output_tokens`.
    pub fn max_output_tokens(mut self, max: MaxOutputTokens) -> Self {
        self.config.max_output_tokens = Some(max);
        self
    }

    /// Sets `truncation`.
    pub fn truncation(mut self, truncation: Truncation) -> Self {
        self.config.truncation = Some(truncation);
        self
    }

    /// Appends an `include` entry.
    pub fn include(mut self, what: impl Into<String>) -> Self {
        self.config
            .include
            .get_or_insert_with(Vec::new)
            .push(what.into());
        self
    }

    /// Sets `tracing`.
    pub fn tracing(mut self, tracing: Tracing) -> Self {
        self.config.tracing = Nullable::Value(tracing);
        self
    }

    /// Sends `tracing: null`.
    pub fn tracing_off(mut self) -> Self {
        self.config.tracing = Nullable::Null;
        self
    }

    /// Sets `prompt`.
    pub fn prompt(mut self, prompt: Prompt) -> Self {
        self.config.prompt = Nullable::Value(prompt);
        self
    }

    /// Sends `prompt: null`.
    pub fn prompt_off(mut self) -> Self {
        self.config.prompt = Nullable::Null;
        self
    }

    /// Validates ([`SessionConfig::validate`]) and returns the configuration.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

impl From<SessionConfig> for SessionBuilder {
    fn from(config: SessionConfig) -> Self {
        Self { config }
    }
}

/// The server's session object in `session.created` / `session.updated`: the full effective
/// configuration plus server-only fields. Parsing ignores unknown fields and never validates
/// ranges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// `sess_…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `"realtime.session"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// When the session ends (Unix seconds; sessions last at most 60 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The effective configuration (including `model`).
    #[serde(flatten)]
    pub config: SessionConfig,
}
