//! The `session.start` configuration and the sparse `session.update` configuration.
//!
//! The server **rejects unknown fields** in these objects (`unknown_parameter`), so every type
//! here serializes only the fields the reference defines and omits unset ones; nothing is ever
//! sent as `null` to mean "unset". The WebRTC-only `client` capability block is deliberately not
//! representable: this crate talks to the WebSocket endpoint, where it must not be sent.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::known::{ReasoningEffort, ReasoningSummary, ServiceTier, Verbosity};

/// Most messages the reference accepts in `session.input`.
pub const MAX_INPUT_ITEMS: usize = 128;

/// Smallest `max_output_tokens` the Responses backend accepts.
pub const MIN_MAX_OUTPUT_TOKENS: u32 = 16;

/// Built-in voice names listed by the reference SDK (openai 3.54.0). The server validates voices
/// and newer editions of the guide list more, so [`Voice`] accepts any name.
pub const BUILT_IN_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "beacon", "bossa", "cedar", "cinder", "coral", "delta", "echo",
    "gleam", "marin", "meridian", "quartz", "ripple", "sage", "shida", "shimmer", "stone", "tempo",
    "verse", "vesper", "willow",
];

/// The voice the server uses when none is configured.
pub const DEFAULT_VOICE: &str = "marin";

/// Why a configuration or command cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `session.model` is empty.
    #[error("session model must not be empty")]
    EmptyModel,
    /// `session.input` holds more messages than the reference allows.
    #[error("session input has {count} messages; at most {max} are allowed")]
    TooManyInputItems {
        /// Messages supplied.
        count: usize,
        /// The limit ([`MAX_INPUT_ITEMS`]).
        max: usize,
    },
    /// `delegation.responses.model` is empty.
    #[error("responses delegation model must not be empty")]
    EmptyDelegationModel,
    /// `delegation.responses.max_output_tokens` is below the backend's minimum.
    #[error("max_output_tokens is {value}; the minimum is {min}")]
    MaxOutputTokensTooSmall {
        /// The configured value.
        value: u32,
        /// The minimum ([`MIN_MAX_OUTPUT_TOKENS`]).
        min: u32,
    },
    /// A function tool has an empty name.
    #[error("function tool name must not be empty")]
    EmptyToolName,
    /// A DTMF key outside `0-9`, `A-D`, `*`, `#`.
    #[error("invalid DTMF key {0:?}; expected one of 0-9, A-D, *, #")]
    InvalidDtmfKey(char),
}

// ---------------------------------------------------------------------------------------------
// Audio
// ---------------------------------------------------------------------------------------------

/// The WebSocket audio format (`session.audio.format`), shared by input and output.
///
/// Only the combinations the reference allows are representable. Every variant serializes
/// with an explicit `rate`, which GPT-Live's schema expects even for G.711:
///
/// ```
/// use openai_realtime::live::AudioFormat;
/// let json = serde_json::to_string(&AudioFormat::Pcmu).unwrap();
/// assert_eq!(json, r#"{"type":"audio/pcmu","rate":8000}"#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// G.711 μ-law at 8 kHz, one byte per sample (Twilio Media Streams pass-through).
    Pcmu,
    /// G.711 A-law at 8 kHz, one byte per sample.
    Pcma,
    /// Signed 16-bit little-endian mono PCM at 16 kHz.
    Pcm16k,
    /// Signed 16-bit little-endian mono PCM at 24 kHz (the server default).
    Pcm24k,
}

impl AudioFormat {
    /// The wire `type` (`audio/pcmu`, `audio/pcma` or `audio/pcm`).
    pub const fn mime_type(self) -> &'static str {
        match self {
            AudioFormat::Pcmu => "audio/pcmu",
            AudioFormat::Pcma => "audio/pcma",
            AudioFormat::Pcm16k | AudioFormat::Pcm24k => "audio/pcm",
        }
    }

    /// Samples per second.
    pub const fn rate(self) -> u32 {
        match self {
            AudioFormat::Pcmu | AudioFormat::Pcma => 8_000,
            AudioFormat::Pcm16k => 16_000,
            AudioFormat::Pcm24k => 24_000,
        }
    }

    /// Bytes in 20 ms of audio (160 for G.711, 640 / 960 for PCM16).
    pub const fn bytes_per_20ms(self) -> usize {
        match self {
            AudioFormat::Pcmu | AudioFormat::Pcma => 160,
            AudioFormat::Pcm16k => 640,
            AudioFormat::Pcm24k => 960,
        }
    }

    /// The format with this wire `type` and `rate`, if the reference allows the combination.
    pub fn from_wire(mime_type: &str, rate: u64) -> Option<Self> {
        match (mime_type, rate) {
            ("audio/pcmu", 8_000) => Some(AudioFormat::Pcmu),
            ("audio/pcma", 8_000) => Some(AudioFormat::Pcma),
            ("audio/pcm", 16_000) => Some(AudioFormat::Pcm16k),
            ("audio/pcm", 24_000) => Some(AudioFormat::Pcm24k),
            _ => None,
        }
    }
}

impl Serialize for AudioFormat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", self.mime_type())?;
        map.serialize_entry("rate", &self.rate())?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for AudioFormat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(rename = "type")]
            mime_type: String,
            rate: u64,
        }
        let wire = Wire::deserialize(deserializer)?;
        AudioFormat::from_wire(&wire.mime_type, wire.rate).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unsupported audio format {:?} at {} Hz",
                wire.mime_type, wire.rate
            ))
        })
    }
}

/// The output voice: a built-in name (see [`BUILT_IN_VOICES`]) or an authorized custom voice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Voice {
    /// A voice name such as `"marin"`; sent as a JSON string.
    Named(String),
    /// A custom voice; sent as `{"id": …}`.
    Custom {
        /// The custom voice id.
        id: String,
    },
}

impl Voice {
    /// A custom voice by id.
    pub fn custom(id: impl Into<String>) -> Self {
        Voice::Custom { id: id.into() }
    }
}

impl From<&str> for Voice {
    fn from(name: &str) -> Self {
        Voice::Named(name.to_owned())
    }
}

impl From<String> for Voice {
    fn from(name: String) -> Self {
        Voice::Named(name)
    }
}

/// `session.audio`: format (WebSocket only) and output voice. Both are immutable after startup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionAudio {
    /// Input and output encoding. When parsed from a server snapshot, `None` also means the
    /// server reported a format this crate does not know.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub format: Option<AudioFormat>,
    /// Output settings.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub output: Option<AudioOutput>,
}

/// `session.audio.output`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AudioOutput {
    /// The voice; the server default is [`DEFAULT_VOICE`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub voice: Option<Voice>,
}

/// Deserializes an optional value, mapping a present-but-unrecognized shape to `None` instead
/// of failing the whole event (used only for server snapshots, never on per-frame paths).
pub(crate) fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

// ---------------------------------------------------------------------------------------------
// Initial history
// ---------------------------------------------------------------------------------------------

/// The author of an [`InitialItem`]. There is no `system` role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitialRole {
    /// Trusted application context.
    Developer,
    /// Prior caller text.
    User,
    /// Prior assistant text.
    Assistant,
}

/// Status of a supplied history message; GPT-Live uses the text either way and does not resume
/// an incomplete message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// The message was cut off.
    Incomplete,
    /// The message was complete.
    Completed,
}

/// One text-only history message in `session.input`.
///
/// Each message has exactly one text part by construction. It serializes as
/// `{"type":"message","role":…,"content":[{"type":"input_text"|"output_text","text":…}]}`
/// (`output_text` for the assistant), plus `id` / `status` when set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct InitialItem {
    /// Who wrote the message.
    pub role: InitialRole,
    /// The message text.
    pub text: String,
    /// Optional message id.
    pub id: Option<String>,
    /// Optional status.
    pub status: Option<ItemStatus>,
}

impl InitialItem {
    /// A message with the given role and text.
    pub fn new(role: InitialRole, text: impl Into<String>) -> Self {
        InitialItem {
            role,
            text: text.into(),
            id: None,
            status: None,
        }
    }

    /// A developer (trusted context) message.
    pub fn developer(text: impl Into<String>) -> Self {
        Self::new(InitialRole::Developer, text)
    }

    /// A prior caller message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::new(InitialRole::User, text)
    }

    /// A prior assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::new(InitialRole::Assistant, text)
    }

    /// Sets the message id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the message status.
    #[must_use]
    pub fn with_status(mut self, status: ItemStatus) -> Self {
        self.status = Some(status);
        self
    }
}

struct TextPart<'t> {
    kind: &'static str,
    text: &'t str,
}

impl Serialize for TextPart<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", self.kind)?;
        map.serialize_entry("text", self.text)?;
        map.end()
    }
}

struct OnePart<'t>(TextPart<'t>);

impl Serialize for OnePart<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(1))?;
        seq.serialize_element(&self.0)?;
        seq.end()
    }
}

impl Serialize for InitialItem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let kind = match self.role {
            InitialRole::Assistant => "output_text",
            InitialRole::Developer | InitialRole::User => "input_text",
        };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", "message")?;
        map.serialize_entry("role", &self.role)?;
        map.serialize_entry(
            "content",
            &OnePart(TextPart {
                kind,
                text: &self.text,
            }),
        )?;
        if let Some(id) = &self.id {
            map.serialize_entry("id", id)?;
        }
        if let Some(status) = &self.status {
            map.serialize_entry("status", status)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for InitialItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Part {
            text: String,
        }
        #[derive(Deserialize)]
        struct Wire {
            role: InitialRole,
            content: Vec<Part>,
            #[serde(default)]
            id: Option<String>,
            #[serde(default)]
            status: Option<ItemStatus>,
        }
        let wire = Wire::deserialize(deserializer)?;
        let count = wire.content.len();
        let Some(part) = wire.content.into_iter().next().filter(|_| count == 1) else {
            return Err(serde::de::Error::custom(format_args!(
                "history message must have exactly one text part, found {count}"
            )));
        };
        Ok(InitialItem {
            role: wire.role,
            text: part.text,
            id: wire.id,
            status: wire.status,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Delegation
// ---------------------------------------------------------------------------------------------

/// A function tool for the Responses backend.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FunctionTool {
    /// The name the backend uses when calling the function.
    pub name: String,
    /// What the function does and when to call it.
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Option<Value>,
    /// Whether the backend must follow the schema exactly.
    pub strict: Option<bool>,
}

impl FunctionTool {
    /// A function tool with only a name.
    pub fn new(name: impl Into<String>) -> Self {
        FunctionTool {
            name: name.into(),
            description: None,
            parameters: None,
            strict: None,
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the JSON Schema of the arguments.
    #[must_use]
    pub fn with_parameters(mut self, parameters: Value) -> Self {
        self.parameters = Some(parameters);
        self
    }

    /// Sets strict schema adherence.
    #[must_use]
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = Some(strict);
        self
    }
}

/// A tool available to the Responses backend.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Tool {
    /// `{"type":"function", name, description?, parameters?, strict?}`.
    Function(FunctionTool),
    /// `{"type":"web_search"}` (hosted; runs without the application).
    WebSearch,
    /// Any other hosted tool object, sent exactly as given.
    Raw(Value),
}

impl Serialize for Tool {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Tool::Function(function) => {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("type", "function")?;
                map.serialize_entry("name", &function.name)?;
                if let Some(description) = &function.description {
                    map.serialize_entry("description", description)?;
                }
                if let Some(parameters) = &function.parameters {
                    map.serialize_entry("parameters", parameters)?;
                }
                if let Some(strict) = &function.strict {
                    map.serialize_entry("strict", strict)?;
                }
                map.end()
            }
            Tool::WebSearch => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("type", "web_search")?;
                map.end()
            }
            Tool::Raw(value) => value.serialize(serializer),
        }
    }
}

impl From<FunctionTool> for Tool {
    fn from(function: FunctionTool) -> Self {
        Tool::Function(function)
    }
}

/// How the Responses backend chooses tools.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ToolChoice {
    /// `"auto"`.
    Auto,
    /// `"none"`.
    None,
    /// `"required"`.
    Required,
    /// `{"type":"function","name":…}`: force one function.
    Function(String),
    /// Any other tool-choice object (for example `allowed_tools`), sent exactly as given.
    Raw(Value),
}

impl Serialize for ToolChoice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ToolChoice::Auto => serializer.serialize_str("auto"),
            ToolChoice::None => serializer.serialize_str("none"),
            ToolChoice::Required => serializer.serialize_str("required"),
            ToolChoice::Function(name) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", "function")?;
                map.serialize_entry("name", name)?;
                map.end()
            }
            ToolChoice::Raw(value) => value.serialize(serializer),
        }
    }
}

/// Reasoning settings for each delegated response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Reasoning {
    /// Reasoning effort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<ReasoningEffort>,
    /// Reasoning summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<ReasoningSummary>,
}

impl Reasoning {
    /// Reasoning with the given effort.
    pub fn effort(effort: ReasoningEffort) -> Self {
        Reasoning {
            effort: Some(effort),
            summary: None,
        }
    }

    /// Sets the summary.
    #[must_use]
    pub fn with_summary(mut self, summary: ReasoningSummary) -> Self {
        self.summary = Some(summary);
        self
    }
}

/// Backend text settings (`text`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TextConfig {
    /// Verbosity of backend text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<Verbosity>,
}

/// Backend settings for Responses delegation (`delegation.responses`) at startup.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ResponsesDelegationConfig {
    /// The backend Responses model (required).
    pub model: String,
    /// Backend prompt, separate from the voice model's instructions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Tools available to the backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Tool-choice policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the backend may call several tools in one response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Output-token cap per delegated response (at least [`MIN_MAX_OUTPUT_TOKENS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Reasoning settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    /// Text settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    /// Service tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
}

macro_rules! responses_setters {
    () => {
        /// Sets the backend prompt.
        #[must_use]
        pub fn with_instructions(mut self, instructions: impl Into<String>) -> Self {
            self.instructions = Some(instructions.into());
            self
        }

        /// Adds one tool.
        #[must_use]
        pub fn with_tool(mut self, tool: impl Into<Tool>) -> Self {
            self.tools.get_or_insert_with(Vec::new).push(tool.into());
            self
        }

        /// Replaces the tool list (an empty list is sent as `[]`).
        #[must_use]
        pub fn with_tools(mut self, tools: impl IntoIterator<Item = Tool>) -> Self {
            self.tools = Some(tools.into_iter().collect());
            self
        }

        /// Sets the tool-choice policy.
        #[must_use]
        pub fn with_tool_choice(mut self, tool_choice: ToolChoice) -> Self {
            self.tool_choice = Some(tool_choice);
            self
        }

        /// Sets whether parallel tool calls are allowed.
        #[must_use]
        pub fn with_parallel_tool_calls(mut self, parallel: bool) -> Self {
            self.parallel_tool_calls = Some(parallel);
            self
        }

        /// Sets the per-response output-token cap.
        #[must_use]
        pub fn with_max_output_tokens(mut self, max_output_tokens: u32) -> Self {
            self.max_output_tokens = Some(max_output_tokens);
            self
        }

        /// Sets the reasoning settings.
        #[must_use]
        pub fn with_reasoning(mut self, reasoning: Reasoning) -> Self {
            self.reasoning = Some(reasoning);
            self
        }

        /// Sets the backend text verbosity.
        #[must_use]
        pub fn with_verbosity(mut self, verbosity: Verbosity) -> Self {
            self.text = Some(TextConfig {
                verbosity: Some(verbosity),
            });
            self
        }

        /// Sets the service tier.
        #[must_use]
        pub fn with_service_tier(mut self, service_tier: ServiceTier) -> Self {
            self.service_tier = Some(service_tier);
            self
        }

        fn validate_settings(&self) -> Result<(), ConfigError> {
            if let Some(value) = self.max_output_tokens
                && value < MIN_MAX_OUTPUT_TOKENS
            {
                return Err(ConfigError::MaxOutputTokensTooSmall {
                    value,
                    min: MIN_MAX_OUTPUT_TOKENS,
                });
            }
            let empty_function = self.tools.iter().flatten().any(|tool| {
                matches!(tool, Tool::Function(function) if function.name.is_empty())
            });
            if empty_function {
                return Err(ConfigError::EmptyToolName);
            }
            Ok(())
        }
    };
}

impl ResponsesDelegationConfig {
    /// Backend settings with only the (required) model.
    pub fn new(model: impl Into<String>) -> Self {
        ResponsesDelegationConfig {
            model: model.into(),
            instructions: None,
            tools: None,
            tool_choice: None,
            parallel_tool_calls: None,
            max_output_tokens: None,
            reasoning: None,
            text: None,
            service_tier: None,
        }
    }

    responses_setters!();

    /// Checks what the reference states: a non-empty model, `max_output_tokens` ≥ 16, named
    /// function tools.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.model.is_empty() {
            return Err(ConfigError::EmptyDelegationModel);
        }
        self.validate_settings()
    }
}

/// Who handles tasks the voice model delegates (`session.delegation`). Chosen at startup; the
/// mode cannot change later. Omitting it selects client delegation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Delegation {
    /// `{"type":"client"}`: your application handles tasks and answers with context appends.
    Client {
        /// Delay before the model is prompted to acknowledge a new delegation aloud.
        #[serde(skip_serializing_if = "Option::is_none")]
        acknowledgement_delay_ms: Option<u32>,
    },
    /// `{"type":"responses","responses":{…}}`: a Responses model run by OpenAI handles tasks;
    /// your application still executes custom functions.
    Responses {
        /// Backend settings.
        responses: Box<ResponsesDelegationConfig>,
        /// Delay before the model is prompted to acknowledge a new delegation aloud.
        #[serde(skip_serializing_if = "Option::is_none")]
        acknowledgement_delay_ms: Option<u32>,
    },
    /// `{"type":"decisions","decisions":{…}}`: the Decisions feature (configuration kept raw).
    Decisions {
        /// The raw `decisions` configuration (`{model, questions}`).
        decisions: Value,
        /// Delay before the model is prompted to acknowledge a new delegation aloud.
        #[serde(skip_serializing_if = "Option::is_none")]
        acknowledgement_delay_ms: Option<u32>,
    },
}

impl Delegation {
    /// Client delegation with server defaults.
    pub fn client() -> Self {
        Delegation::Client {
            acknowledgement_delay_ms: None,
        }
    }

    /// Responses delegation with the given backend settings.
    pub fn responses(config: ResponsesDelegationConfig) -> Self {
        Delegation::Responses {
            responses: Box::new(config),
            acknowledgement_delay_ms: None,
        }
    }

    /// Decisions delegation with a raw `decisions` configuration.
    pub fn decisions(config: Value) -> Self {
        Delegation::Decisions {
            decisions: config,
            acknowledgement_delay_ms: None,
        }
    }

    /// Sets `acknowledgement_delay_ms`.
    #[must_use]
    pub fn with_acknowledgement_delay_ms(mut self, delay_ms: u32) -> Self {
        match &mut self {
            Delegation::Client {
                acknowledgement_delay_ms,
            }
            | Delegation::Responses {
                acknowledgement_delay_ms,
                ..
            }
            | Delegation::Decisions {
                acknowledgement_delay_ms,
                ..
            } => *acknowledgement_delay_ms = Some(delay_ms),
        }
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Delegation::Responses { responses, .. } => responses.validate(),
            Delegation::Client { .. } | Delegation::Decisions { .. } => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Session configuration
// ---------------------------------------------------------------------------------------------

/// The `session` object of `session.start`.
///
/// Build it with [`SessionConfig::builder`] (validated) or [`SessionConfig::telephony`]. Only
/// fields the reference defines exist, and unset ones are omitted from the JSON.
///
/// ```
/// use openai_realtime::live::{AudioFormat, SessionConfig, models};
/// let config = SessionConfig::builder(models::GPT_LIVE_1)
///     .instructions("You are Robin.")
///     .audio_format(AudioFormat::Pcmu)
///     .voice("marin")
///     .build()
///     .unwrap();
/// let json = serde_json::to_value(&config).unwrap();
/// assert_eq!(json["audio"]["format"], serde_json::json!({"type": "audio/pcmu", "rate": 8000}));
/// assert!(json.get("store").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The voice model, e.g. [`models::GPT_LIVE_1`](super::models::GPT_LIVE_1) (on Azure, the
    /// deployment name).
    pub model: String,
    /// Voice-model instructions (style, interruption and delegation policy). Immutable after
    /// startup; add more with `session.instructions.append`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Text-only prior history (at most [`MAX_INPUT_ITEMS`]); omitted when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<InitialItem>,
    /// Audio format and voice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<SessionAudio>,
    /// Delegation mode; omitted means client delegation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegation: Option<Delegation>,
    /// Keep the session for forking and recording download.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Stable end-user id for abuse detection (for example a hash of the caller number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<String>,
    /// Decisions triggers, sent exactly as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<Value>>,
}

impl SessionConfig {
    /// Starts a validated builder.
    pub fn builder(model: impl Into<String>) -> SessionConfigBuilder {
        SessionConfigBuilder {
            config: SessionConfig {
                model: model.into(),
                instructions: None,
                input: Vec::new(),
                audio: None,
                delegation: None,
                store: None,
                safety_identifier: None,
                triggers: None,
            },
        }
    }

    /// A configuration for a Twilio Media Streams call: G.711 μ-law at 8 kHz both ways (so
    /// audio passes through as base64 untouched), with the given instructions and voice.
    /// Convert into a [`SessionConfigBuilder`] with `From` to add delegation or history.
    ///
    /// ```
    /// use openai_realtime::live::{AudioFormat, SessionConfig, models};
    /// let config = SessionConfig::telephony(models::GPT_LIVE_1, "You are Robin.", "marin");
    /// assert_eq!(config.audio_format(), Some(AudioFormat::Pcmu));
    /// ```
    pub fn telephony(
        model: impl Into<String>,
        instructions: impl Into<String>,
        voice: impl Into<Voice>,
    ) -> Self {
        SessionConfig {
            instructions: Some(instructions.into()),
            audio: Some(SessionAudio {
                format: Some(AudioFormat::Pcmu),
                output: Some(AudioOutput {
                    voice: Some(voice.into()),
                }),
            }),
            ..Self::builder(model).config
        }
    }

    /// The configured audio format, if any.
    pub fn audio_format(&self) -> Option<AudioFormat> {
        self.audio.as_ref().and_then(|audio| audio.format)
    }

    /// The configured voice, if any.
    pub fn voice(&self) -> Option<&Voice> {
        self.audio
            .as_ref()
            .and_then(|audio| audio.output.as_ref())
            .and_then(|output| output.voice.as_ref())
    }

    /// Checks what the reference states: a non-empty model, at most [`MAX_INPUT_ITEMS`]
    /// history messages, and valid Responses backend settings. Token limits (instructions
    /// ≤ 16,384, history ≤ 8,192 rendered tokens) need a tokenizer and are left to the server.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.model.is_empty() {
            return Err(ConfigError::EmptyModel);
        }
        if self.input.len() > MAX_INPUT_ITEMS {
            return Err(ConfigError::TooManyInputItems {
                count: self.input.len(),
                max: MAX_INPUT_ITEMS,
            });
        }
        if let Some(delegation) = &self.delegation {
            delegation.validate()?;
        }
        Ok(())
    }
}

/// Builder for [`SessionConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
#[must_use]
pub struct SessionConfigBuilder {
    config: SessionConfig,
}

impl From<SessionConfig> for SessionConfigBuilder {
    fn from(config: SessionConfig) -> Self {
        SessionConfigBuilder { config }
    }
}

impl SessionConfigBuilder {
    /// Sets the voice-model instructions.
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        self.config.instructions = Some(instructions.into());
        self
    }

    /// Appends one history message.
    pub fn input_item(mut self, item: InitialItem) -> Self {
        self.config.input.push(item);
        self
    }

    /// Appends history messages.
    pub fn input(mut self, items: impl IntoIterator<Item = InitialItem>) -> Self {
        self.config.input.extend(items);
        self
    }

    /// Sets the WebSocket audio format.
    pub fn audio_format(mut self, format: AudioFormat) -> Self {
        self.config
            .audio
            .get_or_insert_with(SessionAudio::default)
            .format = Some(format);
        self
    }

    /// Sets the output voice (a name, or [`Voice::custom`]).
    pub fn voice(mut self, voice: impl Into<Voice>) -> Self {
        self.config
            .audio
            .get_or_insert_with(SessionAudio::default)
            .output
            .get_or_insert_with(AudioOutput::default)
            .voice = Some(voice.into());
        self
    }

    /// Sets the delegation mode.
    pub fn delegation(mut self, delegation: Delegation) -> Self {
        self.config.delegation = Some(delegation);
        self
    }

    /// Sets `store`.
    pub fn store(mut self, store: bool) -> Self {
        self.config.store = Some(store);
        self
    }

    /// Sets the end-user safety identifier.
    pub fn safety_identifier(mut self, id: impl Into<String>) -> Self {
        self.config.safety_identifier = Some(id.into());
        self
    }

    /// Sets the raw Decisions triggers.
    pub fn triggers(mut self, triggers: impl IntoIterator<Item = Value>) -> Self {
        self.config.triggers = Some(triggers.into_iter().collect());
        self
    }

    /// Validates (see [`SessionConfig::validate`]) and returns the configuration.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

// ---------------------------------------------------------------------------------------------
// Session update
// ---------------------------------------------------------------------------------------------

/// Backend settings to change with `session.update` (`delegation.responses`); every field is
/// optional and omitted fields keep their values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ResponsesDelegationUpdate {
    /// New backend model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// New backend prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Replacement tool list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// New tool-choice policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// New parallel-tool-calls setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// New output-token cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// New reasoning settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    /// New text settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    /// New service tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
}

impl ResponsesDelegationUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the backend model.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    responses_setters!();

    /// Checks what the reference states (non-empty model when set, `max_output_tokens` ≥ 16,
    /// named function tools).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.model.as_deref() == Some("") {
            return Err(ConfigError::EmptyDelegationModel);
        }
        self.validate_settings()
    }
}

/// Delegation changes in `session.update`; the `type` must match the session's current mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum DelegationUpdate {
    /// Client delegation settings.
    Client {
        /// New acknowledgement delay.
        #[serde(skip_serializing_if = "Option::is_none")]
        acknowledgement_delay_ms: Option<u32>,
    },
    /// Responses delegation settings.
    Responses {
        /// Backend settings to change.
        #[serde(skip_serializing_if = "Option::is_none")]
        responses: Option<Box<ResponsesDelegationUpdate>>,
        /// New acknowledgement delay.
        #[serde(skip_serializing_if = "Option::is_none")]
        acknowledgement_delay_ms: Option<u32>,
    },
    /// Decisions settings (raw).
    Decisions {
        /// Raw `decisions` changes.
        #[serde(skip_serializing_if = "Option::is_none")]
        decisions: Option<Value>,
        /// New acknowledgement delay.
        #[serde(skip_serializing_if = "Option::is_none")]
        acknowledgement_delay_ms: Option<u32>,
    },
}

impl DelegationUpdate {
    /// A Responses update with the given backend changes.
    pub fn responses(update: ResponsesDelegationUpdate) -> Self {
        DelegationUpdate::Responses {
            responses: Some(Box::new(update)),
            acknowledgement_delay_ms: None,
        }
    }
}

/// The sparse `session` object of `session.update`: only delegation settings (within the
/// current mode) and triggers can change; omitted fields keep their values. A `null`
/// delegation is deliberately not expressible (a responses session rejects it with
/// `immutable_field_update`).
///
/// ```
/// use openai_realtime::live::{ClientEvent, DelegationUpdate, ResponsesDelegationUpdate, SessionUpdate};
/// let update = SessionUpdate::delegation(DelegationUpdate::responses(
///     ResponsesDelegationUpdate::new().with_model("gpt-5.6-terra"),
/// ));
/// assert_eq!(
///     ClientEvent::session_update(update).to_json(),
///     r#"{"type":"session.update","session":{"delegation":{"type":"responses","responses":{"model":"gpt-5.6-terra"}}}}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SessionUpdate {
    /// Delegation changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegation: Option<DelegationUpdate>,
    /// Replacement Decisions trigger list (`[]` disables triggers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<Value>>,
}

impl SessionUpdate {
    /// An update of the delegation settings.
    pub fn delegation(delegation: DelegationUpdate) -> Self {
        SessionUpdate {
            delegation: Some(delegation),
            triggers: None,
        }
    }

    /// An update replacing the trigger list.
    pub fn triggers(triggers: impl IntoIterator<Item = Value>) -> Self {
        SessionUpdate {
            delegation: None,
            triggers: Some(triggers.into_iter().collect()),
        }
    }

    /// Validates the Responses backend changes, if any.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.delegation {
            Some(DelegationUpdate::Responses {
                responses: Some(update),
                ..
            }) => update.validate(),
            _ => Ok(()),
        }
    }
}
