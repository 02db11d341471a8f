//! What the GPT-Live mock records about each session.

use std::collections::VecDeque;

use serde_json::Value;
use tokio::time::Instant;

use super::validate::Mode;

/// A client event as received (audio appends are only counted, not kept one by one).
#[derive(Debug, Clone)]
pub struct LiveClientEvent {
    /// When it was received.
    pub at: Instant,
    /// Its `type` (empty when it had none).
    pub event_type: String,
    /// The text as received (when payload recording is on).
    pub raw: Option<String>,
    /// The parsed JSON.
    pub json: Value,
}

/// A server event the mock sent.
#[derive(Debug, Clone)]
pub struct LiveServerEvent {
    /// When.
    pub at: Instant,
    /// Its `type` (`(raw)` for injected raw text).
    pub event_type: String,
    /// The text (not kept for audio deltas, or when payload recording is off).
    pub raw: Option<String>,
}

/// Something the client did that the real service refuses or the reference forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LiveViolationKind {
    /// Not JSON, or no string `type`.
    Malformed,
    /// A command other than `session.start` before the session started.
    NotStarted,
    /// Audio appended before `session.started`.
    AudioBeforeStart,
    /// A second `session.start`.
    DuplicateStart,
    /// `session.start` refused (unknown field, wrong type, missing model, …).
    InvalidStart,
    /// Input audio missing, empty or not base64.
    BadAudio,
    /// A context append without `content` or without the `delegation_id` key.
    BadAppend,
    /// A `delegation_id` that is not a pending client delegation.
    BadDelegationId,
    /// `response.*` without Responses delegation.
    ResponsesInClientMode,
    /// A malformed `response.item.create` / `response.create`.
    BadItem,
    /// `response.create` while a function call is unanswered.
    CreateWithUnansweredCall,
    /// A client event type GPT-Live does not have.
    UnknownEvent,
    /// Anything after `session.close`.
    AfterClose,
}

/// A recorded violation.
#[derive(Debug, Clone)]
pub struct LiveViolation {
    /// When.
    pub at: Instant,
    /// What.
    pub kind: LiveViolationKind,
    /// Details.
    pub detail: String,
}

/// One thing the model said (or started to say).
#[derive(Debug, Clone)]
pub struct Utterance {
    /// Its text (a scripted line, a commentary, or a delegation's result).
    pub text: String,
    /// Stamp id of its first 20 ms frame ([`crate::audio::agent_tone`]).
    pub first_stamp: u32,
    /// All of its audio.
    pub audio: Vec<u8>,
    /// Output timeline position where it started, ms.
    pub started_ms: u64,
    /// Where it ended (finished or interrupted), ms.
    pub ended_ms: Option<u64>,
    /// Input timeline position where the caller's speech stopped it.
    pub interrupted_at_ms: Option<u64>,
    /// When (wall clock) the mock stopped it.
    pub interrupted_at: Option<Instant>,
    /// Bytes of its audio that were sent.
    pub spoken_bytes: usize,
}

/// One delegation (for responses delegation: one per function call).
#[derive(Debug, Clone)]
pub struct Delegation {
    /// The delegation id (`item_…`).
    pub id: String,
    /// `responses` or `client`.
    pub target: String,
    /// Timeline position.
    pub offset_ms: u64,
    /// The function call id (responses delegation).
    pub call_id: Option<String>,
    /// The function name (responses delegation).
    pub name: Option<String>,
    /// The arguments (responses delegation).
    pub arguments: Option<String>,
    /// Outputs received: `function_call_output`s, or client appends with this delegation id.
    pub outputs: Vec<String>,
    /// A `response.create` continued the backend after the outputs.
    pub continued: bool,
}

/// How the session's socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveSocketEnd {
    /// The client sent a close frame.
    ClientClose {
        /// Its code.
        code: Option<u16>,
    },
    /// The connection ended without a close frame from the client.
    ClientVanished {
        /// What the read returned.
        error: String,
    },
    /// The mock closed the socket (after `session.closed`, or on request).
    MockClosed {
        /// The code sent (`None`: no status, as after `session.closed`).
        code: Option<u16>,
        /// Whether the client answered with its close frame.
        handshake_completed: bool,
    },
    /// The mock dropped the connection (fault injection).
    MockDropped,
    /// The mock shut down.
    Shutdown,
}

/// The recorded state of one session.
#[derive(Debug, Default)]
pub(crate) struct SessionRecord {
    pub(crate) session_id: Option<String>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) start: Option<Value>,
    pub(crate) mode: Option<Mode>,
    pub(crate) client_events: Vec<LiveClientEvent>,
    pub(crate) server_events: Vec<LiveServerEvent>,
    pub(crate) violations: Vec<LiveViolation>,
    pub(crate) audio_appends: usize,
    pub(crate) received_audio: Vec<u8>,
    pub(crate) received_audio_bytes: usize,
    pub(crate) sent_audio: Vec<u8>,
    pub(crate) sent_audio_bytes: usize,
    pub(crate) utterances: Vec<Utterance>,
    pub(crate) delegations: Vec<Delegation>,
    pub(crate) caller_turns: Vec<(u64, u64)>,
    pub(crate) caller_transcripts: VecDeque<String>,
    pub(crate) response_creates: usize,
    pub(crate) close_requested: bool,
    pub(crate) closed_reason: Option<String>,
    pub(crate) socket_end: Option<LiveSocketEnd>,
}

pub(crate) fn describe(s: &SessionRecord) -> String {
    let tail = |v: Vec<&str>| v[v.len().saturating_sub(8)..].join(", ");
    format!(
        "started: {:?}; {} client events (last: {}); {} audio appends ({} bytes); {} server events (last: {}); utterances: {}; delegations: {}; violations: {:?}; session.closed: {:?}; socket: {:?}",
        s.session_id,
        s.client_events.len(),
        tail(
            s.client_events
                .iter()
                .map(|e| e.event_type.as_str())
                .collect()
        ),
        s.audio_appends,
        s.received_audio_bytes,
        s.server_events.len(),
        tail(
            s.server_events
                .iter()
                .map(|e| e.event_type.as_str())
                .filter(|t| *t != "session.output_audio.delta")
                .collect()
        ),
        s.utterances.len(),
        s.delegations.len(),
        s.violations.iter().map(|v| v.kind).collect::<Vec<_>>(),
        s.closed_reason,
        s.socket_end,
    )
}
