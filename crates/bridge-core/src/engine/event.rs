//! What the engine tells observers: call events, end reasons and the final summary.

use crate::agent::{Speaker, TranscriptTiming, Usage};
use crate::caller::CallerInfo;
use crate::tools::CallAction;
use std::time::Duration;

/// Why a call ended. Plain and `Copy` so it can label metrics ([`EndReason::as_str`]); the
/// detail (an error message) is in [`CallSummary::end_detail`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The caller hung up (or the telephony stream stopped / closed).
    CallerHungUp,
    /// The agent session ended.
    AgentClosed,
    /// The agent reported a fatal error or its transport failed.
    AgentFailed,
    /// The agent did not become ready in time.
    AgentConnectTimeout,
    /// Connecting to the agent failed.
    AgentConnectFailed,
    /// The call reached [`super::CallConfig::max_duration`].
    MaxDuration,
    /// No caller audio arrived for [`super::CallConfig::caller_inactivity_timeout`].
    CallerInactive,
    /// The caller stayed silent (after the reprompt, if any).
    Idle,
    /// A tool hung up the call.
    HungUpByAgent,
    /// A tool transferred the call.
    Transferred,
    /// The server is shutting down.
    Shutdown,
    /// The server is shutting down and handed the call over: the stream ended at a pause with
    /// the conversation saved ([`CallEvent::HandedOver`]) for another instance to resume.
    HandedOver,
    /// The caller connection failed.
    CallerError,
}

impl EndReason {
    /// A stable snake_case name, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            EndReason::CallerHungUp => "caller_hung_up",
            EndReason::AgentClosed => "agent_closed",
            EndReason::AgentFailed => "agent_failed",
            EndReason::AgentConnectTimeout => "agent_connect_timeout",
            EndReason::AgentConnectFailed => "agent_connect_failed",
            EndReason::MaxDuration => "max_duration",
            EndReason::CallerInactive => "caller_inactive",
            EndReason::Idle => "idle",
            EndReason::HungUpByAgent => "hung_up_by_agent",
            EndReason::Transferred => "transferred",
            EndReason::Shutdown => "shutdown",
            EndReason::HandedOver => "handed_over",
            EndReason::CallerError => "caller_error",
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The totals of one call, produced once when it ends.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallSummary {
    /// The telephony call id (Twilio `CallSid`), if the caller's stream started.
    pub call_id: Option<String>,
    /// From the creation of the call engine to its end.
    pub duration: Duration,
    /// Why it ended (`None` only in a summary of a call still running).
    pub end_reason: Option<EndReason>,
    /// The error message or close reason behind `end_reason`, when there is one.
    pub end_detail: Option<String>,
    /// Barge-ins (caller interrupted audible agent speech).
    pub barge_ins: u32,
    /// Usage totals: token counts summed over all reports, billed seconds as last reported.
    pub usage: Usage,
    /// Final transcript lines, both speakers.
    pub transcript_turns: u32,
    /// Tool calls run.
    pub tool_calls: u32,
    /// Caller audio forwarded to the agent, in milliseconds.
    pub caller_audio_ms: u64,
    /// Agent audio forwarded to the caller, in milliseconds.
    pub agent_audio_ms: u64,
    /// Caller audio dropped because the pre-ready buffer overflowed, in milliseconds.
    pub pre_ready_dropped_ms: u64,
    /// Agent audio of interrupted responses dropped after a barge-in, in milliseconds.
    pub late_audio_dropped_ms: u64,
    /// Echoes of marks cleared by a barge-in, ignored.
    pub stale_mark_echoes: u32,
    /// The round trip to the caller side's playout and back, as last estimated from mark
    /// echoes (network both ways plus the caller side's start-up); `None` if never measured.
    pub playout_round_trip: Option<Duration>,
    /// Agent sessions reconnected mid-call (each seeded with the conversation so far).
    pub reconnects: u32,
    /// Caller audio dropped while the agent was reconnecting, in milliseconds.
    pub reconnect_dropped_ms: u64,
    /// Agent sessions recycled before their time limit.
    pub recycles: u32,
    /// Standby sessions opened for recycling that could not be switched to (failed to
    /// connect, dropped, refused, or discarded because the conversation grew after they were
    /// seeded). None of them touched the call.
    pub recycle_standby_failures: u32,
    /// Oldest conversation entries dropped to keep the replayable context within its bound.
    pub context_dropped: u64,
}

/// One item cut short by a barge-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The response the item belonged to, if the protocol has responses.
    pub response_id: Option<String>,
    /// The item, if the protocol has items.
    pub item_id: Option<String>,
    /// Milliseconds of the item forwarded to the caller (floor).
    pub sent_ms: u64,
    /// Milliseconds the caller had heard at the clear (floor): the position acknowledged by
    /// mark echoes ([`Truncation::confirmed_ms`]) plus, where it can be known, the real-time
    /// playout of the following piece since the last echo.
    pub played_ms: u64,
    /// Milliseconds acknowledged by mark echoes (floor; `confirmed_ms <= played_ms`).
    pub confirmed_ms: u64,
    /// The position sent in [`crate::agent::AgentCommand::Truncate`] (`floor(min(sent, played))`),
    /// or `None` when no truncate was sent (no item id, or the agent cannot truncate).
    pub audio_end_ms: Option<u64>,
}

/// A barge-in: the caller started speaking while agent audio was queued or streaming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BargeIn {
    /// Time since the call started.
    pub at: Duration,
    /// The items cut short, in playout order.
    pub truncations: Vec<Truncation>,
    /// Marks pending at the clear (their echoes are ignored).
    pub cleared_marks: usize,
    /// The response cancelled by us ([`crate::agent::AgentCommand::CancelResponse`]), if any.
    pub cancelled_response: Option<String>,
}

/// What started the wait measured by [`CallEvent::FirstAudio`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyTrigger {
    /// The caller stopped speaking (the agent's VAD said so).
    CallerStoppedSpeaking,
    /// We asked for the greeting.
    Greeting,
    /// We asked for a response after tool results.
    ToolResults,
    /// We asked for a response after a keypad press.
    Dtmf,
    /// We asked for the idle reprompt.
    Reprompt,
    /// We asked the reconnected agent to pick up the conversation.
    Resumed,
    /// We asked the agent to leave a message on a voicemail box.
    Voicemail,
}

/// Where an error reported by [`CallEvent::Error`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorSource {
    /// The agent reported it.
    Agent,
    /// The caller connection.
    Caller,
    /// Audio conversion between the two sides.
    Audio,
    /// A tool (or the driver running it).
    Tool,
    /// Call control (hang-up, transfer) failed.
    Control,
}

/// Something observers (logs, metrics, call records) want to know. Never emitted per audio
/// frame.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// The caller's media stream started.
    Started(CallerInfo),
    /// The agent is ready; `connect_latency` is measured from the call's start.
    AgentReady {
        /// Call start → agent ready.
        connect_latency: Duration,
    },
    /// A final transcript line.
    Transcript {
        /// Who spoke.
        speaker: Speaker,
        /// What was said (for the agent: what it generated, which a barge-in may have cut
        /// short; see [`CallEvent::BargeIn`] for the item with the same `item_id`).
        text: String,
        /// Its position on the agent session's timeline, where the protocol reports one.
        timing: Option<TranscriptTiming>,
        /// The conversation item, where the protocol has items.
        item_id: Option<String>,
        /// Time since the call started when the line became final.
        at: Duration,
    },
    /// A tool call started running.
    ToolStarted {
        /// The agent's call id.
        call_id: String,
        /// The tool.
        name: String,
        /// The arguments as the model produced them (JSON text, unvalidated).
        arguments: String,
    },
    /// A tool call was discarded unrun because its response did not complete.
    ToolDiscarded {
        /// The agent's call id.
        call_id: String,
        /// The tool.
        name: String,
    },
    /// A tool call finished and its result was sent to the agent.
    ToolFinished {
        /// The agent's call id.
        call_id: String,
        /// The tool.
        name: String,
        /// Start → result.
        duration: Duration,
        /// The JSON text returned to the agent (a result or an error object).
        output: String,
        /// The call action the tool requested, if any.
        action: Option<CallAction>,
    },
    /// The caller interrupted the agent.
    BargeIn(BargeIn),
    /// Latency from a turn's trigger to the first agent audio forwarded to the caller.
    FirstAudio {
        /// What started the wait.
        trigger: LatencyTrigger,
        /// Trigger → first audio sent to the caller.
        latency: Duration,
    },
    /// The caller stayed silent and the agent was asked to reprompt.
    Reprompted,
    /// A usage report (as received; totals are in the summary).
    Usage(Usage),
    /// A [`crate::caller::CallerEvent::LeaveMessage`] arrived. `refused: None`: the message
    /// was asked for, and the next [`CallEvent::Action`] (a hang-up) follows it — with
    /// `timed_out: false` once it has been heard. `Some(reason)`: nothing was asked (the agent
    /// is not ready, or a call action is already pending); the caller side must leave the
    /// message some other way.
    LeaveMessage {
        /// Why the message was not asked for.
        refused: Option<String>,
    },
    /// A call action is being executed now (its goodbye has been heard or the guard expired).
    Action {
        /// The action.
        action: CallAction,
        /// True when executed because the goodbye guard expired rather than after the goodbye
        /// was heard.
        timed_out: bool,
    },
    /// Something went wrong; `fatal` errors end the call.
    Error {
        /// Where it came from.
        source: ErrorSource,
        /// Machine-readable code, when known.
        code: Option<String>,
        /// What happened.
        message: String,
        /// Whether the call ends because of it.
        fatal: bool,
    },
    /// The agent connection was lost (or a reconnect attempt failed): attempt `attempt`
    /// follows. Meanwhile the caller hears the hold audio and their audio is dropped.
    AgentReconnecting {
        /// The attempt about to be made (1-based).
        attempt: u32,
        /// Why the connection (or the previous attempt) failed.
        reason: String,
    },
    /// A fresh agent session is ready and was seeded with the conversation so far.
    AgentReconnected {
        /// Attempts it took.
        attempts: u32,
        /// Loss → fresh session ready.
        gap: Duration,
        /// Conversation entries replayed.
        restored: usize,
    },
    /// The session was recycled before its time limit: a fresh one, seeded with the
    /// conversation, took over at a pause.
    AgentRecycled {
        /// What the caller waited at the switch: from the old session's last caller frame to
        /// the fresh session taking the next one. Zero for a make-before-break switch (the
        /// standby was ready before the old session was closed); the measured connect time
        /// when the engine fell back to break-before-make
        /// ([`super::ReconnectConfig::recycle_max_gap`]).
        gap: Duration,
        /// Conversation entries replayed.
        restored: usize,
    },
    /// The call is being handed over ([`super::CallConfig::handover`]): the conversation so
    /// far, to be saved for the instance that resumes the call
    /// ([`super::CallConfig::restore`]). Emitted just before [`CallEvent::Ended`] with
    /// [`EndReason::HandedOver`].
    HandedOver {
        /// The conversation, oldest first, as a fresh session would be seeded with it.
        context: Vec<crate::agent::ContextItem>,
        /// Whether the call reached a pause (`false`: the bounded wait ran out).
        at_pause: bool,
    },
    /// Reconnecting gave up; the call ends ([`EndReason::AgentFailed`]).
    AgentReconnectFailed {
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed (or why no attempt was made).
        reason: String,
    },
    /// The call ended. The last event of every call.
    Ended(CallSummary),
}
