//! What the mock records about each session.

use tokio::time::Instant;

/// A typed summary of a client event.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEventKind {
    /// `session.update` (the `session` object as sent).
    SessionUpdate {
        /// The `session` field, or `null` if absent.
        session: serde_json::Value,
    },
    /// `input_audio_buffer.append`.
    InputAudioAppend {
        /// Decoded audio bytes (0 if the audio was missing or not base64).
        bytes: usize,
    },
    /// `input_audio_buffer.commit`.
    InputAudioCommit,
    /// `input_audio_buffer.clear`.
    InputAudioClear,
    /// `conversation.item.create`.
    ItemCreate {
        /// `item.type` (`message`, `function_call_output`, ...).
        item_type: Option<String>,
        /// `item.role` for messages.
        role: Option<String>,
        /// `item.call_id` for function call outputs.
        call_id: Option<String>,
        /// `item.output` for function call outputs.
        output: Option<String>,
        /// `previous_item_id`.
        previous_item_id: Option<String>,
    },
    /// `conversation.item.retrieve`.
    ItemRetrieve {
        /// `item_id`.
        item_id: Option<String>,
    },
    /// `conversation.item.truncate`.
    ItemTruncate {
        /// `item_id`.
        item_id: Option<String>,
        /// `content_index`.
        content_index: Option<u64>,
        /// `audio_end_ms`.
        audio_end_ms: Option<u64>,
    },
    /// `conversation.item.delete`.
    ItemDelete {
        /// `item_id`.
        item_id: Option<String>,
    },
    /// `response.create`.
    ResponseCreate {
        /// The optional `response` parameters.
        response: Option<serde_json::Value>,
    },
    /// `response.cancel`.
    ResponseCancel {
        /// `response_id`.
        response_id: Option<String>,
    },
    /// `output_audio_buffer.clear` (WebRTC/SIP only).
    OutputAudioBufferClear,
    /// A `type` the GA API does not have.
    Unknown {
        /// The `type`.
        event_type: String,
    },
    /// Not a JSON object with a string `type` (or a binary frame).
    Malformed,
}

/// A client event as received.
#[derive(Debug, Clone)]
pub struct ClientEvent {
    /// When it was received.
    pub at: Instant,
    /// Position among the session's client events (0-based).
    pub index: usize,
    /// The client's `event_id`, if any.
    pub event_id: Option<String>,
    /// Typed summary.
    pub kind: ClientEventKind,
    /// The frame text (empty when payload recording is off).
    pub raw: String,
}

impl ClientEvent {
    /// The wire `type` (`"malformed"` for unparsable frames).
    pub fn event_type(&self) -> &str {
        match &self.kind {
            ClientEventKind::SessionUpdate { .. } => "session.update",
            ClientEventKind::InputAudioAppend { .. } => "input_audio_buffer.append",
            ClientEventKind::InputAudioCommit => "input_audio_buffer.commit",
            ClientEventKind::InputAudioClear => "input_audio_buffer.clear",
            ClientEventKind::ItemCreate { .. } => "conversation.item.create",
            ClientEventKind::ItemRetrieve { .. } => "conversation.item.retrieve",
            ClientEventKind::ItemTruncate { .. } => "conversation.item.truncate",
            ClientEventKind::ItemDelete { .. } => "conversation.item.delete",
            ClientEventKind::ResponseCreate { .. } => "response.create",
            ClientEventKind::ResponseCancel { .. } => "response.cancel",
            ClientEventKind::OutputAudioBufferClear => "output_audio_buffer.clear",
            ClientEventKind::Unknown { event_type } => event_type,
            ClientEventKind::Malformed => "malformed",
        }
    }

    /// The raw frame parsed as JSON (`None` if not recorded or not JSON).
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.raw).ok()
    }
}

/// A server event the mock sent.
#[derive(Debug, Clone)]
pub struct ServerEvent {
    /// When it was sent.
    pub at: Instant,
    /// Its `type`.
    pub event_type: String,
    /// The frame text (empty when payload recording is off).
    pub raw: String,
}

impl ServerEvent {
    /// The frame parsed as JSON (`None` if not recorded).
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.raw).ok()
    }
}

/// A kind of protocol violation by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// A frame that is not valid JSON.
    MalformedJson,
    /// A JSON frame without a string `type`.
    MissingType,
    /// A `type` the GA API does not have.
    UnknownEventType,
    /// A required field is missing (e.g. `session.type`, `audio`, `item_id`).
    MissingField,
    /// A field the GA API does not accept (e.g. beta-era `session.input_audio_format`).
    UnknownField,
    /// A field with an invalid value.
    InvalidValue,
    /// Audio appended while the session's input format was not `audio/pcmu` (recorded once).
    AudioBeforePcmuConfigured,
    /// Audio that is not valid base64.
    InvalidBase64,
    /// The upgrade request carried an `OpenAI-Beta` header (beta interface).
    BetaHeader,
    /// A binary WebSocket frame.
    BinaryFrame,
    /// `event_id` longer than 512 characters.
    EventIdTooLong,
    /// An append larger than 15 MiB.
    AppendTooLarge,
    /// A `function_call_output` for a `call_id` the conversation does not have.
    UnknownCallId,
    /// `output_audio_buffer.clear`, which only exists for WebRTC/SIP.
    NotForWebSocket,
}

/// A protocol violation by the client.
#[derive(Debug, Clone)]
pub struct Violation {
    /// When it was detected.
    pub at: Instant,
    /// What kind.
    pub kind: ViolationKind,
    /// Details.
    pub detail: String,
    /// Index of the offending client event, if it came from one.
    pub event_index: Option<usize>,
}

/// A `conversation.item.truncate` and how the mock judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// When it was received.
    pub at: Instant,
    /// The client's `event_id`.
    pub event_id: Option<String>,
    /// `item_id`.
    pub item_id: String,
    /// `content_index`.
    pub content_index: u64,
    /// `audio_end_ms` requested.
    pub audio_end_ms: u64,
    /// Audio of that item sent so far, in milliseconds (floor), when the request arrived
    /// (`None` when the item is unknown or not an assistant audio message).
    pub audio_sent_ms: Option<u64>,
    /// Whether the mock answered `conversation.item.truncated` (vs. an `error`).
    pub accepted: bool,
    /// The error message, if refused.
    pub error: Option<String>,
}

/// An assistant audio message the mock produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssistantItem {
    /// `item_id`.
    pub item_id: String,
    /// `response_id`.
    pub response_id: String,
    /// The exact audio bytes sent in `response.output_audio.delta`s so far (wire format).
    pub audio: Vec<u8>,
    /// Number of audio deltas sent.
    pub deltas: usize,
    /// Full scripted transcript.
    pub transcript: String,
    /// `completed`, `incomplete` (cancelled) or `in_progress`.
    pub status: String,
    /// `audio_end_ms` of the accepted truncation, if any.
    pub truncated_at_ms: Option<u64>,
}

/// What started a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseTrigger {
    /// Server VAD with `create_response: true`.
    Vad,
    /// A client `response.create`.
    Client,
}

/// A response the mock produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseRecord {
    /// `resp_…`.
    pub id: String,
    /// 1-based number within the session.
    pub number: u32,
    /// What started it.
    pub trigger: ResponseTrigger,
    /// When `response.created` was sent.
    pub created_at: Instant,
    /// When `response.done` was sent.
    pub done_at: Option<Instant>,
    /// `in_progress`, `completed`, `cancelled` or `failed`.
    pub status: String,
    /// `status_details.reason` (`turn_detected`, `client_cancelled`).
    pub reason: Option<String>,
    /// The `response` parameters of the client's `response.create`.
    pub params: Option<serde_json::Value>,
    /// Output item ids.
    pub item_ids: Vec<String>,
}

/// A function call the mock made and what the client did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCallRecord {
    /// `call_id`.
    pub call_id: String,
    /// `item_id`.
    pub item_id: String,
    /// `response_id`.
    pub response_id: String,
    /// Function name.
    pub name: String,
    /// Arguments (JSON text).
    pub arguments: String,
    /// Whether its response completed (only then should the client execute it).
    pub response_completed: bool,
    /// The `function_call_output.output` the client sent.
    pub output: Option<String>,
    /// When the output arrived.
    pub output_at: Option<Instant>,
    /// Whether a `response.create` followed the output.
    pub followed_by_response_create: bool,
}

/// How a session's WebSocket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosedBy {
    /// The client sent a close frame.
    ClientClose {
        /// Close code.
        code: Option<u16>,
        /// Close reason.
        reason: String,
    },
    /// The connection ended without a close frame (TCP drop or protocol error).
    ClientVanished {
        /// What the WebSocket layer reported.
        error: String,
    },
    /// The mock dropped the connection (scripted fault or [`super::SessionHandle::drop_connection`]).
    MockDropped,
    /// The mock sent a close frame.
    MockClosed {
        /// Close code sent.
        code: u16,
    },
    /// The mock server was shut down.
    Shutdown,
}

/// When and how a session's WebSocket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRecord {
    /// When.
    pub at: Instant,
    /// How.
    pub by: ClosedBy,
}
