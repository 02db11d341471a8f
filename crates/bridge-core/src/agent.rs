//! The agent side of the seam: the AI leg of a call (OpenAI Realtime GA, GPT-Live, or the
//! built-in echo agent in the server).
//!
//! The vocabulary fits both protocol families:
//!
//! * **Turn-based with truncation** (Realtime GA): audio arrives per response/item, faster than
//!   real time; the server detects caller speech ([`AgentEvent::SpeechStarted`]) and the engine
//!   barges in by clearing the caller's queue and truncating each unfinished item at the audio
//!   the caller actually heard ([`AgentCommand::Truncate`]).
//! * **Full duplex** (GPT-Live): one continuous output track paced at real time, interruption
//!   handled inside the model, no truncation, no speech events; input must keep flowing. The
//!   adapter declares this in [`AgentCapabilities`] and the engine adapts.

pub use crate::endpoint::{Endpoint, EndpointError};
use crate::format::{AudioFormat, Base64Audio};

/// What an agent back end can do; the engine adapts its behaviour to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentCapabilities {
    /// Format of [`AgentCommand::Audio`] (what the agent wants to hear).
    pub input_format: AudioFormat,
    /// Format of [`AgentEvent::Audio`] (what the agent speaks).
    pub output_format: AudioFormat,
    /// The agent accepts [`AgentCommand::Truncate`] (Realtime GA: `conversation.item.truncate`).
    pub truncation: bool,
    /// The agent cancels its own response when the caller starts speaking (Realtime
    /// `interrupt_response: true`; GPT-Live always). When false the engine sends
    /// [`AgentCommand::CancelResponse`] on barge-in.
    pub interrupts_itself: bool,
    /// The agent emits [`AgentEvent::SpeechStarted`] when the caller starts talking (Realtime
    /// with VAD: yes; GPT-Live: no — it reacts inside the model).
    pub reports_speech: bool,
    /// Caller audio must keep flowing in real time, silence included (GPT-Live). The engine then
    /// never holds caller audio back once the agent is ready.
    pub continuous_input: bool,
    /// A fresh session takes the conversation only as it starts (GPT-Live: the `input` history
    /// of `session.start`). On a reconnect or recycle the engine then sends the
    /// [`AgentCommand::Restore`] entries right after the connection, before
    /// [`AgentEvent::Ready`], and the endpoint starts its session with them (at its first
    /// `poll_flush` or `poll_recv`, whichever comes first). When false (Realtime) they follow
    /// `Ready`.
    pub restore_at_start: bool,
    /// [`AgentEvent::Closed`] is the agent ending the session for good (GPT-Live:
    /// `session.closed` with a final reason such as `content` or `remote_hangup`): the call
    /// ends, it is never reconnected. Such an endpoint reports a lost connection as an error
    /// from `poll_recv` instead. When false (Realtime), a close we did not ask for is a lost
    /// connection (reconnected when configured).
    pub final_close: bool,
}

/// One usage report (tokens for Realtime, billed seconds for GPT-Live).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// Input tokens (all modalities), when reported.
    pub input_tokens: u64,
    /// Output tokens (all modalities), when reported.
    pub output_tokens: u64,
    /// Input audio tokens, when reported.
    pub input_audio_tokens: u64,
    /// Output audio tokens, when reported.
    pub output_audio_tokens: u64,
    /// Billed session seconds (GPT-Live: cumulative, replaces the previous value).
    pub billed_seconds: Option<f64>,
}

/// Who said a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Speaker {
    /// The person on the phone.
    Caller,
    /// The AI agent.
    Agent,
}

impl Speaker {
    /// `"caller"` or `"agent"`: the name records, logs and the console use.
    ///
    /// ```
    /// use bridge_core::agent::Speaker;
    /// assert_eq!(Speaker::Caller.as_str(), "caller");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Speaker::Caller => "caller",
            Speaker::Agent => "agent",
        }
    }
}

/// How a response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseStatus {
    /// Finished normally.
    Completed,
    /// Cancelled (by the server on turn detection, or by us).
    Cancelled,
    /// Cut short (e.g. max output tokens, content filter).
    Incomplete,
    /// Failed; the message says why.
    Failed(String),
}

/// Where a transcript fragment or line lies on the agent session's own timeline (GPT-Live
/// `start_ms`/`end_ms`: milliseconds from the session's start, half-open). Approximate
/// fragment timing, not word boundaries and not playback times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TranscriptTiming {
    /// Start, ms from the session's start (inclusive).
    pub start_ms: i64,
    /// End, ms from the session's start (exclusive).
    pub end_ms: i64,
}

/// A request from the agent to run a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallRequest {
    /// Correlates the result with the call (`call_id`).
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// Arguments as JSON text produced by the model (may be malformed: validate).
    pub arguments: String,
    /// The response the call belongs to. The engine runs calls that carry a response id only
    /// once that response has completed (Realtime emits call arguments for cancelled responses
    /// too); calls without one run immediately.
    pub response_id: Option<String>,
}

/// Something that happened on the agent side.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// The session is configured and ready for audio (Realtime `session.updated` after our
    /// `session.update`; GPT-Live `session.started`).
    Ready,
    /// Agent speech, in [`AgentCapabilities::output_format`].
    Audio {
        /// The audio.
        audio: Base64Audio,
        /// The response it belongs to, where the protocol has one.
        response_id: Option<String>,
        /// The conversation item it belongs to (the truncation target), where the protocol has one.
        item_id: Option<String>,
    },
    /// All audio of an item has been sent (Realtime `response.output_audio.done`).
    AudioDone {
        /// The response.
        response_id: Option<String>,
        /// The item.
        item_id: Option<String>,
    },
    /// The agent heard the caller start speaking: the barge-in trigger.
    SpeechStarted,
    /// The agent heard the caller stop speaking.
    SpeechStopped,
    /// The agent started a response.
    ResponseStarted {
        /// Response id.
        response_id: String,
    },
    /// A response ended.
    ResponseDone {
        /// Response id.
        response_id: String,
        /// How it ended.
        status: ResponseStatus,
        /// Usage of this response, when reported.
        usage: Option<Usage>,
    },
    /// Transcript text.
    Transcript {
        /// Who spoke.
        speaker: Speaker,
        /// The text (a fragment when `is_final` is false).
        text: String,
        /// True for a completed utterance, false for a streaming fragment.
        is_final: bool,
        /// Its position on the session timeline, where the protocol reports one (GPT-Live).
        timing: Option<TranscriptTiming>,
        /// The conversation item the text belongs to, where the protocol has items (ties an
        /// agent line to its [`crate::engine::Truncation`]).
        item_id: Option<String>,
    },
    /// The agent wants a tool run.
    ToolCall(ToolCallRequest),
    /// A usage snapshot outside of a response (GPT-Live `session.usage.updated`).
    Usage(Usage),
    /// The agent reported an error. `fatal` errors end the call.
    Error {
        /// Machine-readable code, when given.
        code: Option<String>,
        /// Human-readable message.
        message: String,
        /// Whether the session is unusable after this error.
        fatal: bool,
    },
    /// The session's lifetime ends soon and the agent is at a natural pause (nobody speaking,
    /// nothing delegated): replace it with a fresh session now, the conversation replayed
    /// (GPT-Live: before `expires_at`). With reconnects off, or tools or a goodbye still
    /// running, the engine ignores it (the endpoint reports the next pause again, and ends the
    /// session gracefully itself if none comes in time).
    RecycleNow,
    /// The agent has been handed text it is about to say, for an agent without response
    /// boundaries (GPT-Live: the backend finished the response that follows our tool results,
    /// or a line went out as commentary). Speech that starts after this is that text: a
    /// pending goodbye is measured from it ([`crate::engine::CallConfig::goodbye_quiet`]), so
    /// an acknowledgement the model said while the tool ran is not taken for the goodbye.
    SpeechQueued,
    /// The agent session ended.
    Closed {
        /// Why, as reported by the agent or the transport.
        reason: String,
    },
}

/// One entry of the conversation so far, replayed into a fresh agent session
/// ([`AgentCommand::Restore`]; Realtime: one `conversation.item.create` each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextItem {
    /// A transcript line (an agent line as far as the caller heard it).
    Message {
        /// Who said it.
        speaker: Speaker,
        /// What was said.
        text: String,
    },
    /// A tool call the agent made.
    ToolCall {
        /// The call id (its output names it).
        call_id: String,
        /// The tool.
        name: String,
        /// Arguments as JSON text.
        arguments: String,
    },
    /// A tool call's output.
    ToolOutput {
        /// The call it answers.
        call_id: String,
        /// JSON text.
        output: String,
    },
    /// Context the engine gave the agent (a keypad press, a failed transfer).
    Note {
        /// The text.
        text: String,
    },
}

/// Something the engine wants done on the agent side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCommand {
    /// Caller audio, in [`AgentCapabilities::input_format`].
    Audio(Base64Audio),
    /// Tell the agent only the first `audio_end_ms` of an item were heard (Realtime
    /// `conversation.item.truncate`). Never sent to agents without truncation support.
    Truncate {
        /// The assistant item.
        item_id: String,
        /// Milliseconds of the item's audio the caller heard; never more than was sent.
        audio_end_ms: u64,
    },
    /// Cancel the active response (Realtime `response.cancel`).
    CancelResponse {
        /// The response to cancel, when known.
        response_id: Option<String>,
    },
    /// The outcome of a tool call (JSON text).
    ToolResult {
        /// The call it answers.
        call_id: String,
        /// JSON text: the tool's result or an error object.
        output: String,
    },
    /// Add context the agent should know but not necessarily answer (e.g. "the caller pressed 1").
    AddContext {
        /// The text.
        text: String,
    },
    /// Ask the agent to speak now (greeting, reprompt, continuing after tool results). With
    /// instructions, they apply to this response only (Realtime) or are appended (GPT-Live).
    CreateResponse {
        /// Per-response instructions, if any.
        instructions: Option<String>,
    },
    /// Seed a fresh session (after a reconnect) with one entry of the conversation so far.
    /// Sent after the session is ready and before any response is requested; back ends that
    /// cannot add history mid-session ignore it.
    Restore(ContextItem),
    /// End the session gracefully (GPT-Live `session.close`; Realtime closes the socket). The
    /// driver performs it with [`Endpoint::close`], after everything queued before it.
    Close,
}

/// The AI leg of a call: an [`Endpoint`] of agent events and commands, and what the back end
/// can do. Reads, writes and the closing handshake follow [`Endpoint`]'s rules.
pub trait AgentEndpoint: Endpoint<Event = AgentEvent, Command = AgentCommand> {
    /// What this agent can do.
    fn capabilities(&self) -> AgentCapabilities;
}

impl<T: AgentEndpoint + ?Sized> AgentEndpoint for Box<T> {
    fn capabilities(&self) -> AgentCapabilities {
        (**self).capabilities()
    }
}
