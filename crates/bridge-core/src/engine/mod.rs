//! The sans-IO call engine: one phone call as a synchronous state machine.
//!
//! [`Call`] owns everything a call knows — playout positions, the active response, running
//! tools, timers — and nothing else: it never touches a socket and never reads a clock. Inputs
//! are method calls carrying `now` ([`Call::handle_caller`], [`Call::handle_agent`],
//! [`Call::tool_finished`], [`Call::handle_timeout`], …); outputs are drained with
//! [`Call::poll_output`] and the next deadline is read with [`Call::poll_timeout`]. The async
//! [`crate::driver`] moves values between the two endpoints and the machine; tests drive it by
//! hand with a fake clock, in microseconds.
//!
//! # Relay
//!
//! Caller audio becomes [`AgentCommand::Audio`], agent audio becomes [`CallerCommand::Audio`].
//! When the caller's format equals the agent's (the main path: G.711 μ-law 8 kHz both ways) the
//! [`Base64Audio`] is forwarded untouched — no decode, no copy; otherwise a transcoder is
//! inserted for that direction. Caller audio that arrives before the agent is ready is kept
//! (bounded by [`CallConfig::pre_ready_buffer`], oldest dropped first) and flushed in order on
//! [`AgentEvent::Ready`]; audio before the caller's `Started` is ignored.
//!
//! # Playout tracking and barge-in
//!
//! Each agent audio chunk is cut (without decoding) into pieces of at most
//! [`CallConfig::mark_interval`], and every forwarded piece is followed by a uniquely numbered
//! [`CallerCommand::Mark`]. Per item (response id + item id) the engine keeps the samples
//! **sent** and the samples **played**; only an echoed mark advances `played` (an echo means
//! everything queued before it has played). Between echoes the position is interpolated at
//! real time into the piece playing, when that piece is known to have reached the caller side
//! before the previous one ended (it was forwarded at least a measured round trip, plus a
//! margin, before the previous mark's echo arrived; round trips are measured from the echoes
//! of pieces forwarded to an empty queue). The estimate never passes the piece's end and lags
//! by the echo's transit time, so it errs towards "heard less"; without a measured round trip
//! it is the last echoed position. Marks are therefore only needed every 100 ms (the default
//! interval) for positions exact to a few milliseconds: 5 echoes a second instead of 50.
//!
//! On [`AgentEvent::SpeechStarted`] while agent audio is queued (marks pending) or streaming
//! (the active response has sent audio), the engine:
//!
//! 1. sends [`CallerCommand::Clear`] and remembers every pending mark: their echoes (the caller
//!    side echoes pending marks on a clear) are ignored;
//! 2. sends [`AgentCommand::CancelResponse`] for the active response, only if the agent does
//!    not cancel on its own ([`AgentCapabilities::interrupts_itself`]);
//! 3. truncates every item not fully played at `floor(min(sent, heard))` ms with
//!    [`AgentCommand::Truncate`], if the agent supports truncation — never beyond what was sent,
//!    so the agent's context holds exactly what the caller heard;
//! 4. discards the interrupted responses: their late audio still in flight is dropped;
//! 5. emits [`CallEvent::BargeIn`] with the positions.
//!
//! When nothing is playing there is no clear and no truncate. (If a response is running but
//! has produced no audio yet and the agent will not cancel it itself, it is cancelled and
//! discarded so it cannot talk over the caller.)
//!
//! # How the protocols map onto this
//!
//! * **OpenAI Realtime (GA)**, capabilities `truncation: true, reports_speech: true,
//!   continuous_input: false`, `interrupts_itself` = the session's `interrupt_response`.
//!   `input_audio_buffer.speech_started` is the barge-in trigger; `response.output_audio.delta`
//!   carries response and item ids; truncation is `conversation.item.truncate`. Audio arrives
//!   faster than real time, so seconds may be queued at the caller side — which is why played
//!   positions come from mark echoes, not from what was sent.
//! * **OpenAI GPT-Live**, capabilities `truncation: false, reports_speech: false,
//!   continuous_input: true, interrupts_itself: true`. No speech events, so the engine never
//!   clears or truncates on its own; output is paced at real time and forwarded immediately
//!   (the caller-side queue stays short and the model's own stop is heard at once). Marks are
//!   still sent, for local playout knowledge (hang-up after a goodbye, statistics). Caller
//!   audio is only held until `session.started` ([`AgentEvent::Ready`]); after that it always
//!   flows. GPT-Live has no response boundaries to tell when a tool-requested goodbye ended:
//!   with [`CallConfig::goodbye_quiet`] the goodbye is over once its speech was followed by
//!   that much quiet output (levels measured only while the goodbye is awaited) and the action
//!   follows the echo of the mark after the quiet; [`CallConfig::goodbye_timeout`], counted
//!   from the goodbye's last non-quiet audio, is the upper bound.
//!
//! # Greeting, DTMF, tools, timers, lifecycle
//!
//! * The greeting ([`CallConfig::greeting`]) is one [`AgentCommand::CreateResponse`], sent
//!   after both the agent's `Ready` and the caller's `Started`.
//! * Keypad presses become [`AgentCommand::AddContext`] (and a response, with
//!   [`DtmfMode::ForwardAndRespond`]). Responses we request while one is running are held back
//!   until it ends, so they never disturb playout. While the caller is speaking (and the agent
//!   reports speech, i.e. takes turns by itself) we request none and drop a held-back request:
//!   the agent answers the caller's turn with the new context, instead of talking over them.
//! * Tool calls carrying a response id run only once that response completed (calls of
//!   cancelled responses are discarded); the rest run at once. Each runs as
//!   [`Output::RunTool`]; results go back as [`AgentCommand::ToolResult`], and once all running
//!   calls have answered, one [`AgentCommand::CreateResponse`] follows. A [`CallAction`] in a
//!   result is executed ([`Output::Action`]) after the agent's following response (the goodbye)
//!   has been heard — its last mark echoed — or [`CallConfig::goodbye_timeout`] after the
//!   goodbye's audio ends. The caller speaking over the goodbye does not cut it off (unless
//!   [`CallConfig::goodbye_barge_in`] says so). A hang-up ends the call at once; a transfer's
//!   result comes back through [`Call::action_finished`]: success ends the call
//!   ([`EndReason::Transferred`]), failure is told to the agent and the call goes on.
//! * One response at a time: a [`AgentCommand::CreateResponse`] of ours is *pending* from the
//!   moment it is sent until the agent reports a response started; another request meanwhile
//!   (a tool result, a keypad press within a round trip) waits for that response's end. A
//!   request the agent refuses because a response was already running
//!   (`conversation_already_has_active_response`) is sent again after that response's end. A
//!   response that ends `failed` is asked for once more; if that fails too,
//!   [`CallConfig::apology`] is requested once. An agent error before `Ready` ends the call at
//!   once ([`EndReason::AgentConnectFailed`]): the session was refused.
//! * Barge-in can require [`CallConfig::min_barge_in_speech`] of caller speech (a timer on the
//!   engine's clock); speech that stops earlier interrupts nothing.
//! * A hung agent: while a response is requested or running, no agent event for
//!   [`CallConfig::agent_response_timeout`] counts as a lost connection: reconnected with
//!   [`CallConfig::reconnect`], otherwise the call ends as [`EndReason::AgentFailed`] (so the
//!   caller hears the fallback, not silence).
//! * Parts: `Call` composes `playout` (marks, heard position), `turns` (responses, requests,
//!   interrupted ids), `tool_calls` (held and running tool calls), `actions` (the goodbye and
//!   the hang-up/transfer after it), `stats` (the summary's counters) and `timers`; each is a
//!   private type with its own tests.
//! * Timers live in one table keyed by an enum (`timers::Timer`): agent connect (until
//!   `Ready`), maximum duration, caller inactivity (no caller audio), the goodbye's guard, the
//!   barge-in confirmation, idle (caller silent after the agent finished: one reprompt, then
//!   end). [`Call::poll_timeout`] is the table's minimum; [`Call::handle_timeout`] fires the
//!   expired entries.
//! * Either side ending ends the other (but see Reconnect); teardown cancels running tools
//!   ([`Output::CancelTools`]), closes the sides, emits [`CallEvent::Ended`] and finally
//!   [`Output::Finished`]. Teardown happens once; later inputs are ignored.

//!
//! # Reconnect
//!
//! The `context` part keeps the conversation so far in a bounded form (see its docs and
//! [`ContextLimits`]). With [`CallConfig::reconnect`] set, a **transient** loss of the agent
//! connection after the agent was ready ([`Call::agent_lost`] with `transient`, an
//! [`AgentEvent::Closed`] we did not ask for, a fatal `session_expired`) does not end the call:
//!
//! 1. [`Output::AgentLost`]: the driver drops the endpoint. The running response, pending
//!    requests and tool calls held for a response are forgotten; running tools keep running
//!    (their outputs join the context). Agent audio already forwarded keeps playing.
//! 2. The hold audio ([`ReconnectConfig::hold_audio`]) is queued to the caller like agent
//!    audio and repeated each time it has played; caller audio is dropped and counted
//!    ([`CallSummary::reconnect_dropped_ms`]), keypad presses are kept for the new session.
//! 3. [`Output::ConnectAgent`] at once, then after each transient failure with backoff
//!    ([`ReconnectConfig::delay`]); a permanent refusal ([`Call::agent_connect_refused`]), the
//!    attempts or the gap running out end the call ([`EndReason::AgentFailed`],
//!    [`CallEvent::AgentReconnectFailed`]).
//! 4. On the fresh session's `Ready`: one [`AgentCommand::Restore`] per context entry, then
//!    one response with [`ReconnectConfig::resume_instructions`];
//!    [`CallEvent::AgentReconnected`]. An agent with
//!    [`AgentCapabilities::restore_at_start`] (GPT-Live) gets the entries right after the
//!    connection instead, before `Ready` (its session starts with them).
//!
//! An agent with [`AgentCapabilities::final_close`] reports losses as errors; its
//! [`AgentEvent::Closed`] ends the call. A loss while a recycle's standby is open (below)
//! closes the standby ([`Output::Standby`] `Close`, [`Output::DropStandby`]) and reconnects
//! as above.
//!
//! Nothing of this touches the per-frame path of a healthy call: caller audio checks the gap
//! only where it already branches on "agent not ready".
//!
//! # Recycling (make-before-break)
//!
//! A session due for recycling ([`ReconnectConfig::recycle_after`] after its `Ready`, or the
//! agent's [`AgentEvent::RecycleNow`] near its expiry) is replaced without the caller waiting:
//!
//! 1. [`Output::ConnectStandby`]: the driver opens a standby connection beside the agent,
//!    which keeps serving the call normally (audio both ways, barge-in, tools). An agent with
//!    [`AgentCapabilities::restore_at_start`] (GPT-Live) gets the conversation as it stands
//!    right after the standby connected ([`Output::Standby`] with [`AgentCommand::Restore`]).
//!    Of the standby's events ([`Call::handle_standby`]) only `Ready` and failures count.
//! 2. At the first natural pause with the standby ready — nothing playing, the caller not
//!    speaking and no answer owed to their last turn, no response requested or running, no
//!    tool running, no call action pending; for an agent that does not report speech, only
//!    when it reports the pause itself with `RecycleNow` — the switch, in one step:
//!    [`AgentCommand::Close`] to the old session, [`Output::SwitchToStandby`], one
//!    [`AgentCommand::Restore`] per context entry (unless the standby started with them),
//!    [`CallEvent::AgentRecycled`] with a zero gap. The next caller frame goes to the fresh
//!    session: each frame reaches exactly one session, in order, none is held. No hold audio,
//!    no resume response. The fresh session's age counts from its own `Ready`.
//! 3. A standby seeded at its start is switched to only if the conversation is still exactly
//!    what it was seeded with; otherwise it is closed and another one opened at once (this is
//!    a pause), counted as a failed attempt.
//! 4. A standby that fails (connect error, loss, an error) is dropped, counted
//!    ([`CallSummary::recycle_standby_failures`]) and reported as a non-fatal error; the call
//!    is untouched. The next attempt follows the reconnect backoff, within
//!    [`ReconnectConfig::max_attempts`] per recycle. A refusal (or an error before its
//!    `Ready`) stops recycling for the call: the session serves until its own limit (then the
//!    reconnect above, or the agent's wrap-up).
//! 5. With every attempt used up, the recycle falls back to break-before-make at the next
//!    pause: the old session closed, [`Output::AgentLost`], a fresh connection; caller audio
//!    is held (pre-ready buffer) and sent after the replay, and the measured gap reported. If
//!    the fresh session is not ready within [`ReconnectConfig::recycle_max_gap`] the switch
//!    becomes a reconnect: hold audio, held and further caller audio dropped and counted,
//!    `max_gap` from the switch.
//!
//! A call without a recycle under way pays one branch per input for all of this.

mod actions;
mod config;
mod context;
mod event;
mod playout;
mod stats;
mod timers;
mod tool_calls;
mod turns;

pub use config::{
    CallConfig, ContextLimits, DEFAULT_APOLOGY, DEFAULT_RESUME, DtmfMode, GOODBYE_QUIET_DBFS,
    GoodbyeBargeIn, IdleConfig, ReconnectConfig,
};
pub use event::{
    BargeIn, CallEvent, CallSummary, EndReason, ErrorSource, LatencyTrigger, Truncation,
};

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::agent::{
    AgentCapabilities, AgentCommand, AgentEvent, ResponseStatus, Speaker, ToolCallRequest,
    TranscriptTiming, Usage,
};
use crate::audio::transcode::Transcoder;
use crate::caller::{CallerCommand, CallerEvent, CallerInfo, MarkId};
use crate::format::{AudioFormat, Base64Audio};
use crate::tools::{CallAction, ToolInvocation, ToolOutput};
use actions::CallActions;
use context::Conversation;
use playout::{Echo, Playout};
use stats::Stats;
use timers::{Timer, Timers};
use tool_calls::{Admission, ToolCalls};
use turns::{Requested, Turns};

/// Something the engine wants done. Drain with [`Call::poll_output`] after every input and
/// execute in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send to the caller side.
    Caller(CallerCommand),
    /// Send to the agent side.
    Agent(AgentCommand),
    /// Run a tool call concurrently (with a timeout) and report with [`Call::tool_finished`].
    RunTool(Box<ToolInvocation>),
    /// Abort every tool call still running; their results are no longer wanted.
    CancelTools,
    /// Execute call control now. A hang-up ends the call right after this output (the media
    /// stream is closed whatever the result); for a transfer report the result with
    /// [`Call::action_finished`]: the call ends ([`EndReason::Transferred`]) on success and goes
    /// on, with the model told, on failure.
    Action(CallAction),
    /// The agent connection is lost and a reconnect follows: drop the agent endpoint (no
    /// close handshake; anything still queued for it is discarded), unless an
    /// [`AgentCommand::Close`] was output just before (a session retired by recycling): then
    /// finish its writes and close it off the call's path. Agent commands output until the
    /// next connection are dropped.
    AgentLost,
    /// Open a fresh agent connection now (reconnect attempt `attempt`, 1-based) and report
    /// it with [`Call::agent_connected`] or [`Call::agent_connect_failed`] /
    /// [`Call::agent_connect_refused`].
    ConnectAgent {
        /// The attempt.
        attempt: u32,
    },
    /// Open a **standby** agent connection beside the agent (make-before-break recycling,
    /// attempt `attempt` of this recycle, 1-based) and report it with
    /// [`Call::standby_connected`] or [`Call::standby_connect_failed`]; then feed its events
    /// to [`Call::handle_standby`] (and a read error or end to [`Call::standby_lost`]). The
    /// agent keeps serving the call meanwhile.
    ConnectStandby {
        /// The attempt.
        attempt: u32,
    },
    /// Send to the standby connection (the conversation it starts with, for an agent with
    /// [`AgentCapabilities::restore_at_start`]; [`AgentCommand::Close`] when it is discarded).
    Standby(AgentCommand),
    /// The standby is given up: if [`AgentCommand::Close`] was sent to it just before, finish
    /// its writes and close it off the call's path, otherwise drop it; a standby connection
    /// still in progress is dropped.
    DropStandby,
    /// The switch of a recycle: the standby becomes the agent (commands output as
    /// [`Output::Agent`] from here on are for it, its events are the agent's); the old agent,
    /// sent [`AgentCommand::Close`] just before, is closed off the call's path.
    SwitchToStandby,
    /// Tell observers. (Boxed, like the other rare large variants, so that an `Output` — one
    /// per relayed frame — stays as small as an agent command.)
    Event(Box<CallEvent>),
    /// The call is over: nothing more will be output. Carries the same summary as
    /// [`CallEvent::Ended`].
    Finished(Box<CallSummary>),
}

/// The agent's error code for a `response.create` sent while a response is running.
const ACTIVE_RESPONSE_ERROR: &str = "conversation_already_has_active_response";
/// The agent's error code when a session reached its time limit (Realtime: 60 minutes).
const SESSION_EXPIRED: &str = "session_expired";

/// A standby session of a make-before-break recycle.
#[derive(Debug)]
struct Standby {
    phase: StandbyPhase,
    /// Its capabilities, once connected.
    caps: Option<AgentCapabilities>,
    /// The conversation it started with (an agent with `restore_at_start`): it is switched
    /// to only if the conversation is still exactly this.
    seeded: Option<Vec<crate::agent::ContextItem>>,
    /// When it became ready: its age, for the next recycle, counts from here.
    ready_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StandbyPhase {
    /// Waiting for its attempt (backoff after a failed one: `Timer::Standby`).
    Backoff,
    /// [`Output::ConnectStandby`] was output.
    Connecting,
    /// Connected, not ready yet.
    Connected,
    /// Ready: switched to at the next pause.
    Ready,
}

/// A reconnect gap: since when, and the attempts made so far.
#[derive(Debug)]
struct Gap {
    since: Instant,
    attempts: u32,
    /// A planned switch (a recycle fallen back to break-before-make), not a loss.
    recycle: bool,
}

#[derive(Debug)]
enum Buffered {
    Audio(Base64Audio),
    Command(AgentCommand),
}

/// One phone call, as a sans-IO state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Call {
    /// Shared with every call of the same configuration (read only).
    config: Arc<CallConfig>,
    caller_format: AudioFormat,
    started_at: Instant,
    out: VecDeque<Output>,
    finished: bool,

    info: Option<CallerInfo>,
    timers: Timers,
    caps: Option<AgentCapabilities>,
    ready: bool,

    pre_ready: VecDeque<Buffered>,
    pre_ready_samples: u64,
    pre_ready_budget: u64,
    /// Only when the formats differ (boxed: the main path has none).
    to_agent: Option<Box<Transcoder>>,
    to_caller: Option<Box<Transcoder>>,
    piece_max_bytes: usize,
    piece_unit: usize,

    playout: Playout,
    turns: Turns,
    greeted: bool,
    turn_start: Option<(Instant, LatencyTrigger)>,

    caller_speaking: bool,
    /// The caller's turn ended (an agent that reports speech and answers turns by itself)
    /// and no response has started since: the answer is owed, so this is no pause to
    /// recycle at.
    answer_owed: bool,
    reprompted: bool,

    tools: ToolCalls,
    actions: CallActions,

    stats: Stats,
    /// The conversation so far, for a reconnect's replay.
    context: Conversation,
    /// The agent is being reconnected.
    gap: Option<Gap>,
    /// The session is old enough to be recycled: a standby is being made ready, switched to
    /// at the next pause.
    recycle_due: bool,
    /// The standby session of the recycle under way.
    standby: Option<Standby>,
    /// Standby attempts made for the recycle under way.
    recycle_attempts: u32,
    /// Every standby attempt failed: recycle break-before-make at the next pause.
    recycle_fallback: bool,
    /// A standby was refused for good: no more recycling in this call (the session serves
    /// until its own limit).
    recycle_off: bool,
    /// The agent reported a pause ([`AgentEvent::RecycleNow`]) in this input: the playout
    /// and caller-speech checks of the recycling pause are the agent's.
    agent_pause: bool,
    /// The server is draining: hand the call over at the next pause.
    handover_due: bool,
    /// A restored conversation waits for the first session's `Ready` to be replayed.
    restore_pending: bool,
    /// Why and how the call ended, once it has.
    ended: Option<(EndReason, Option<String>)>,
}

impl Call {
    /// A call that starts now. `caller_format` is the caller endpoint's audio format; the
    /// agent's formats arrive with [`Call::agent_connected`].
    pub fn new(
        config: impl Into<Arc<CallConfig>>,
        caller_format: AudioFormat,
        now: Instant,
    ) -> Call {
        let config = config.into();
        let pre_ready_budget = caller_format.duration_to_samples(config.pre_ready_buffer);
        let config_context = config.context;
        let mut timers = Timers::default();
        if let Some(max) = config.max_duration {
            timers.set(Timer::MaxDuration, now + max);
        }
        timers.set(Timer::AgentConnect, now + config.agent_connect_timeout);
        if let Some(t) = config.caller_inactivity_timeout {
            timers.set(Timer::CallerInactivity, now + t);
        }
        let mut context = Conversation::new(config_context);
        context.seed(&config.restore);
        let restore_pending = !config.restore.is_empty();
        Call {
            config,
            caller_format,
            started_at: now,
            out: VecDeque::with_capacity(8),
            finished: false,
            info: None,
            timers,
            caps: None,
            ready: false,
            pre_ready: VecDeque::new(),
            pre_ready_samples: 0,
            pre_ready_budget,
            to_agent: None,
            to_caller: None,
            piece_max_bytes: 0,
            piece_unit: 3,
            playout: Playout::default(),
            turns: Turns::default(),
            // A restored call was greeted by the instance that handed it over.
            greeted: restore_pending,
            turn_start: None,
            caller_speaking: false,
            answer_owed: false,
            reprompted: false,
            tools: ToolCalls::default(),
            actions: CallActions::default(),
            stats: Stats::default(),
            context,
            gap: None,
            recycle_due: false,
            standby: None,
            recycle_attempts: 0,
            recycle_fallback: false,
            recycle_off: false,
            agent_pause: false,
            handover_due: false,
            restore_pending,
            ended: None,
        }
    }

    /// The next output, if any. Drain after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The earliest deadline at which [`Call::handle_timeout`] must be called; `None` when no
    /// timer is armed (and always once the call has finished).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// True once the call has ended ([`Output::Finished`] has been queued).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// What the caller side said when its stream started, if it has.
    pub fn caller_info(&self) -> Option<&CallerInfo> {
        self.info.as_ref()
    }

    /// Marks sent to the caller whose echo has not arrived yet (agent audio still queued).
    pub fn pending_marks(&self) -> usize {
        self.playout.pending_marks()
    }

    /// True while the agent is being reconnected (between [`Output::AgentLost`] and the
    /// fresh session's `Ready`).
    pub fn is_reconnecting(&self) -> bool {
        self.gap.is_some()
    }

    /// The configuration.
    pub fn config(&self) -> &CallConfig {
        &self.config
    }

    /// The totals so far (the final summary comes with [`Output::Finished`]).
    pub fn summary(&self, now: Instant) -> CallSummary {
        let mut s = self.stats.summary(
            self.caller_format,
            self.agent_output_format(),
            now.saturating_duration_since(self.started_at),
        );
        s.call_id = self.info.as_ref().map(|i| i.call_id.clone());
        s.playout_round_trip = self.playout.round_trip();
        s.context_dropped = self.context.dropped();
        if let Some((reason, detail)) = &self.ended {
            s.end_reason = Some(*reason);
            s.end_detail.clone_from(detail);
        }
        s
    }

    // ---------------------------------------------------------------------------------------
    // Inputs
    // ---------------------------------------------------------------------------------------

    /// An event from the caller side.
    pub fn handle_caller(&mut self, event: CallerEvent, now: Instant) {
        if self.finished {
            return;
        }
        match event {
            CallerEvent::Started(info) => self.on_caller_started(info, now),
            CallerEvent::Audio(audio) => self.on_caller_audio(audio, now),
            CallerEvent::MarkPlayed(mark) => self.on_mark_played(mark, now),
            CallerEvent::Dtmf(digit) => self.on_dtmf(digit, now),
            CallerEvent::Hangup => self.end(EndReason::CallerHungUp, None, now),
            CallerEvent::LeaveMessage { instructions } => self.leave_message(instructions, now),
        }
        self.after_input(now);
    }

    /// An event from the agent side.
    pub fn handle_agent(&mut self, event: AgentEvent, now: Instant) {
        if self.finished {
            return;
        }
        // The agent is alive: the hung-agent watchdog counts from its last event.
        self.timers.stop(Timer::AgentResponse);
        match event {
            AgentEvent::Ready => self.on_agent_ready(now),
            AgentEvent::Audio {
                audio,
                response_id,
                item_id,
            } => self.on_agent_audio(audio, response_id.as_deref(), item_id.as_deref(), now),
            AgentEvent::AudioDone {
                response_id,
                item_id,
            } => self
                .playout
                .item_done(response_id.as_deref(), item_id.as_deref()),
            AgentEvent::SpeechStarted => self.on_speech_started(now),
            AgentEvent::SpeechStopped => {
                self.caller_speaking = false;
                self.answer_owed = self.caps.is_some_and(|c| c.reports_speech);
                if self.timers.is_armed(Timer::BargeIn) {
                    // Shorter than `min_barge_in_speech`: not an interruption.
                    self.timers.stop(Timer::BargeIn);
                    tracing::debug!("caller speech too short to interrupt the agent");
                }
                self.turn_start = Some((now, LatencyTrigger::CallerStoppedSpeaking));
            }
            AgentEvent::ResponseStarted { response_id } => self.on_response_started(response_id),
            AgentEvent::ResponseDone {
                response_id,
                status,
                usage,
            } => self.on_response_done(response_id, status, usage, now),
            AgentEvent::Transcript {
                speaker,
                text,
                is_final,
                timing,
                item_id,
            } => self.on_transcript(speaker, text, is_final, timing, item_id, now),
            AgentEvent::ToolCall(request) => self.on_tool_call(request, now),
            AgentEvent::Usage(usage) => self.add_usage(usage),
            AgentEvent::Error {
                code,
                message,
                fatal,
            } => self.on_agent_error(code, message, fatal, now),
            AgentEvent::SpeechQueued => self.actions.speech_queued(),
            AgentEvent::RecycleNow => {
                // Recycled below (`after_input`) if nothing else is going on; otherwise ignored.
                self.agent_pause = self.config.reconnect.is_some();
            }
            AgentEvent::Closed { reason } => {
                // Nothing ends a Realtime session but us: a close we did not ask for is a loss.
                // An agent whose closes are final (GPT-Live) reports losses as errors instead.
                let fin = self.caps.is_some_and(|c| c.final_close);
                if fin || !self.lose_agent(&reason, true, now) {
                    self.end(EndReason::AgentClosed, Some(reason), now);
                }
            }
        }
        self.after_input(now);
    }

    /// The agent endpoint connected; it is not ready for audio until [`AgentEvent::Ready`].
    pub fn agent_connected(&mut self, capabilities: AgentCapabilities, now: Instant) {
        if self.finished || (self.caps.is_some() && self.gap.is_none()) {
            return;
        }
        if let Err(e) = self.set_caps(capabilities) {
            return self.agent_failed(e, now);
        }
        if capabilities.restore_at_start && (self.gap.is_some() || self.restore_pending) {
            // A handed-over call's conversation goes with the first connection too.
            self.restore_pending = false;
            // The fresh session starts with the conversation (before `Ready`).
            for item in self.context.items() {
                self.out
                    .push_back(Output::Agent(AgentCommand::Restore(item)));
            }
        }
        self.after_input(now);
    }

    /// The agent's capabilities: the transcoders and piece sizes that follow from them.
    fn set_caps(&mut self, capabilities: AgentCapabilities) -> Result<(), String> {
        self.caps = Some(capabilities);
        let transcoders =
            Transcoder::new(self.caller_format, capabilities.input_format).and_then(|to_agent| {
                Transcoder::new(capabilities.output_format, self.caller_format)
                    .map(|to_caller| (to_agent, to_caller))
            });
        match transcoders {
            Ok((to_agent, to_caller)) => {
                self.to_agent = to_agent.map(Box::new);
                self.to_caller = to_caller.map(Box::new);
            }
            Err(e) => return Err(e.to_string()),
        }
        let out = capabilities.output_format;
        let bps = out.bytes_per_sample() as usize;
        // Whole base64 groups (3 bytes) and whole samples.
        self.piece_unit = 3 * bps;
        let max = out.duration_to_samples(self.config.mark_interval) as usize * bps;
        // Rounded up to the unit, so a chunk of exactly one interval stays one piece.
        self.piece_max_bytes = max.div_ceil(self.piece_unit).max(1) * self.piece_unit;
        self.playout.set_format(out);
        Ok(())
    }

    /// The standby connection of a recycle ([`Output::ConnectStandby`]) is open; it is not
    /// switched to before its [`AgentEvent::Ready`] (fed to [`Call::handle_standby`]). An agent
    /// with [`AgentCapabilities::restore_at_start`] gets the conversation now
    /// ([`Output::Standby`] with [`AgentCommand::Restore`]), as it stands: if it grows before
    /// the switch, this standby is discarded and another one opened.
    pub fn standby_connected(&mut self, capabilities: AgentCapabilities, now: Instant) {
        if self.finished {
            return;
        }
        let Some(standby) = self
            .standby
            .as_mut()
            .filter(|s| s.phase == StandbyPhase::Connecting)
        else {
            return;
        };
        standby.phase = StandbyPhase::Connected;
        standby.caps = Some(capabilities);
        if capabilities.restore_at_start {
            let items = self.context.items();
            for item in &items {
                self.out
                    .push_back(Output::Standby(AgentCommand::Restore(item.clone())));
            }
            standby.seeded = Some(items);
        }
        self.after_input(now);
    }

    /// Opening the standby connection failed: the call is untouched; another standby is
    /// tried after a backoff (within [`ReconnectConfig::max_attempts`] per recycle), unless
    /// the failure is permanent (`transient` false: no more recycling in this call).
    pub fn standby_connect_failed(
        &mut self,
        reason: impl Into<String>,
        transient: bool,
        now: Instant,
    ) {
        if self.finished
            || !self
                .standby
                .as_ref()
                .is_some_and(|s| s.phase == StandbyPhase::Connecting)
        {
            return;
        }
        self.standby_failed(&reason.into(), transient, now);
        self.after_input(now);
    }

    /// An event of the standby connection. Only its `Ready` and its failures matter before
    /// the switch: its audio (GPT-Live's continuous track), transcripts and usage are not part
    /// of the call yet and are ignored. An error before `Ready` is a refusal of its
    /// configuration (permanent); a fatal one later, or its close, a transient failure.
    pub fn handle_standby(&mut self, event: AgentEvent, now: Instant) {
        if self.finished {
            return;
        }
        let Some(standby) = self.standby.as_mut() else {
            return;
        };
        match event {
            AgentEvent::Ready if standby.phase == StandbyPhase::Connected => {
                standby.phase = StandbyPhase::Ready;
                standby.ready_at = Some(now);
                tracing::debug!("standby agent session ready: switched to at the next pause");
            }
            AgentEvent::Error { message, fatal, .. }
                if fatal || standby.phase != StandbyPhase::Ready =>
            {
                let permanent = standby.phase != StandbyPhase::Ready;
                self.standby_failed(&message, !permanent, now);
            }
            AgentEvent::Closed { reason } => self.standby_failed(&reason, true, now),
            _ => {}
        }
        self.after_input(now);
    }

    /// The standby connection was lost (a read or write failed, or it ended): a transient
    /// failure of the standby; the call is untouched.
    pub fn standby_lost(&mut self, reason: impl Into<String>, now: Instant) {
        if self.finished || self.standby.is_none() {
            return;
        }
        self.standby_failed(&reason.into(), true, now);
        self.after_input(now);
    }

    /// Connecting to the agent failed; the call ends — unless this was a reconnect attempt
    /// (a transient failure: the next attempt follows, within the bounds).
    pub fn agent_connect_failed(&mut self, reason: impl Into<String>, now: Instant) {
        let reason = reason.into();
        if self.gap.is_some() {
            return self.attempt_failed(reason, now);
        }
        self.fail(
            ErrorSource::Agent,
            EndReason::AgentConnectFailed,
            reason,
            now,
        );
    }

    /// Connecting to the agent was refused for good (401/403/404, an invalid model): the call
    /// ends, also during a reconnect (never retried).
    pub fn agent_connect_refused(&mut self, reason: impl Into<String>, now: Instant) {
        let reason = reason.into();
        if self.gap.is_some() {
            return self.give_up(reason, now);
        }
        self.fail(
            ErrorSource::Agent,
            EndReason::AgentConnectFailed,
            reason,
            now,
        );
    }

    /// The agent's connection was lost (a read or write failed, or it stopped taking
    /// commands). With [`CallConfig::reconnect`] and a `transient` cause, after the agent was
    /// ready, a reconnect starts ([`Output::AgentLost`]); otherwise the call ends as with
    /// [`Call::agent_failed`].
    pub fn agent_lost(&mut self, reason: impl Into<String>, transient: bool, now: Instant) {
        let reason = reason.into();
        if !self.lose_agent(&reason, transient, now) {
            self.agent_failed(reason, now);
        }
        self.after_input(now);
    }

    /// The agent's transport failed (a send or receive error); the call ends.
    pub fn agent_failed(&mut self, reason: impl Into<String>, now: Instant) {
        self.fail(
            ErrorSource::Agent,
            EndReason::AgentFailed,
            reason.into(),
            now,
        );
    }

    /// The caller's transport failed; the call ends.
    pub fn caller_failed(&mut self, reason: impl Into<String>, now: Instant) {
        self.fail(
            ErrorSource::Caller,
            EndReason::CallerError,
            reason.into(),
            now,
        );
    }

    /// Reports a fatal error from one side and ends the call.
    fn fail(&mut self, source: ErrorSource, end: EndReason, reason: String, now: Instant) {
        if self.finished {
            return;
        }
        self.emit(CallEvent::Error {
            source,
            code: None,
            message: reason.clone(),
            fatal: true,
        });
        self.end(end, Some(reason), now);
    }

    /// A tool call started by [`Output::RunTool`] finished. Unknown or cancelled call ids are
    /// ignored.
    pub fn tool_finished(&mut self, call_id: &str, output: ToolOutput, now: Instant) {
        if self.finished {
            return;
        }
        let Some(tool) = self.tools.finished(call_id) else {
            return;
        };
        let ToolOutput { output, action } = output;
        self.context.tool_output(&tool.call_id, &output);
        self.out.push_back(Output::Agent(AgentCommand::ToolResult {
            call_id: tool.call_id.clone(),
            output: output.clone(),
        }));
        self.emit(CallEvent::ToolFinished {
            call_id: tool.call_id,
            name: tool.name,
            duration: now.saturating_duration_since(tool.started),
            output,
            action: action.clone(),
        });
        if let Some(action) = action {
            if self.actions.request(action.clone()) {
                self.timers
                    .set(Timer::Goodbye, now + self.config.goodbye_timeout);
            } else {
                self.emit(CallEvent::Error {
                    source: ErrorSource::Tool,
                    code: None,
                    message: format!("ignored a second call action: {action:?}"),
                    fatal: false,
                });
            }
        }
        if self.tools.none_running() {
            self.request_response(None, LatencyTrigger::ToolResults, now);
        }
        self.after_input(now);
    }

    /// Time passed: fire every deadline at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while !self.finished
            && let Some(timer) = self.timers.take_expired(now)
        {
            match timer {
                Timer::MaxDuration => self.end(EndReason::MaxDuration, None, now),
                Timer::AgentConnect if self.gap.as_ref().is_some_and(|g| g.recycle) => {
                    self.recycle_gap_too_long(now);
                }
                Timer::AgentConnect if self.gap.is_some() => {
                    let limit = self
                        .config
                        .reconnect
                        .as_ref()
                        .map_or(0, |r| r.max_gap.as_millis());
                    self.give_up(format!("no agent session within {limit} ms"), now);
                }
                Timer::AgentConnect => self.end(EndReason::AgentConnectTimeout, None, now),
                Timer::Reconnect => {
                    if let Some(gap) = &mut self.gap {
                        gap.attempts += 1;
                        let attempt = gap.attempts;
                        self.out.push_back(Output::ConnectAgent { attempt });
                    }
                }
                Timer::Hold => {
                    if self.gap.is_some() {
                        self.send_hold(now);
                    }
                }
                Timer::Recycle => self.recycle_due = true,
                Timer::Standby => {
                    if let Some(standby) = self
                        .standby
                        .as_mut()
                        .filter(|s| s.phase == StandbyPhase::Backoff)
                    {
                        standby.phase = StandbyPhase::Connecting;
                        let attempt = self.recycle_attempts;
                        self.out.push_back(Output::ConnectStandby { attempt });
                    }
                }
                Timer::Handover => self.hand_over(false, now),
                Timer::AgentResponse => {
                    // A hung connection is a lost one: reconnected when that is configured,
                    // otherwise the call ends into the fallback.
                    let waited = self.config.agent_response_timeout.unwrap_or_default();
                    self.agent_lost(
                        format!(
                            "the agent sent nothing for {} ms while a response was due",
                            waited.as_millis()
                        ),
                        true,
                        now,
                    );
                }
                Timer::CallerInactivity => self.end(EndReason::CallerInactive, None, now),
                Timer::Goodbye => self.execute_action(true, now),
                Timer::BargeIn => {
                    if self.caller_speaking {
                        self.interrupt(now);
                    }
                }
                Timer::Idle => {
                    let reprompt = self.config.idle.as_ref().and_then(|i| i.reprompt.clone());
                    match reprompt {
                        Some(text) if !self.reprompted => {
                            self.reprompted = true;
                            self.emit(CallEvent::Reprompted);
                            self.request_response(Some(text), LatencyTrigger::Reprompt, now);
                        }
                        _ => self.end(EndReason::Idle, None, now),
                    }
                }
            }
        }
        self.after_input(now);
    }

    /// The result of a transfer output as [`Output::Action`]: on success the call ends
    /// ([`EndReason::Transferred`]); on failure the error is reported, the agent is told (as
    /// context, and asked to respond) and the call goes on. Ignored when no transfer is being
    /// executed (a hang-up has already ended the call).
    pub fn action_finished(&mut self, result: Result<(), String>, now: Instant) {
        if self.finished {
            return;
        }
        let Some(action) = self.actions.finished() else {
            return;
        };
        match result {
            Ok(()) => self.end(EndReason::Transferred, None, now),
            Err(error) => {
                let what = match &action {
                    CallAction::Transfer { to } => format!("The transfer to {to}"),
                    CallAction::Hangup => "Hanging up".to_owned(),
                };
                self.emit(CallEvent::Error {
                    source: ErrorSource::Control,
                    code: None,
                    message: format!("{action:?}: {error}"),
                    fatal: false,
                });
                let text = format!(
                    "{what} failed ({error}). The call is still connected: tell the caller and \
                     continue helping them."
                );
                self.context.note(&text);
                self.out
                    .push_back(Output::Agent(AgentCommand::AddContext { text }));
                self.request_response(None, LatencyTrigger::ToolResults, now);
                self.after_input(now);
            }
        }
    }

    /// The server is draining. With [`CallConfig::handover`] and a conversation under way
    /// (the caller's stream started, an agent session ready or being reconnected), the call
    /// is handed over at the next pause, or when the wait runs out
    /// ([`CallEvent::HandedOver`], then [`EndReason::HandedOver`]); otherwise it ends cleanly
    /// now ([`EndReason::Shutdown`]).
    pub fn shutdown(&mut self, now: Instant) {
        if self.finished || self.handover_due {
            return;
        }
        match self.config.handover {
            Some(wait) if self.info.is_some() && (self.ready || self.gap.is_some()) => {
                tracing::info!("handing the call over at the next pause");
                self.handover_due = true;
                self.timers.set(Timer::Handover, now + wait);
                self.after_input(now);
            }
            _ => self.end(EndReason::Shutdown, None, now),
        }
    }

    /// The call is over elsewhere (Twilio reported it completed): it ends now
    /// ([`EndReason::Shutdown`]), never handed over, even while a handover waits for a pause.
    pub fn hang_up(&mut self, now: Instant) {
        self.end(EndReason::Shutdown, None, now);
    }

    /// Hands the call over if it is at a pause (a reconnect gap counts as one: no session
    /// is talking).
    fn handover_at_pause(&mut self, now: Instant) {
        let pause = self.gap.is_some()
            || (self.ready
                && !self.playout.is_playing()
                && self.turns.is_idle()
                && self.tools.none_running()
                && !self.actions.is_pending()
                && !self.caller_speaking);
        if pause {
            self.hand_over(true, now);
        }
    }

    /// Ends the stream with the conversation so far emitted for the next instance.
    fn hand_over(&mut self, at_pause: bool, now: Instant) {
        if self.finished {
            return;
        }
        self.context.connection_lost();
        let context = self.context.items();
        tracing::info!(
            items = context.len(),
            at_pause,
            "call handed over; conversation saved"
        );
        self.emit(CallEvent::HandedOver { context, at_pause });
        self.end(EndReason::HandedOver, None, now);
    }

    // ---------------------------------------------------------------------------------------
    // Caller side
    // ---------------------------------------------------------------------------------------

    fn on_caller_started(&mut self, info: CallerInfo, now: Instant) {
        if self.info.is_some() {
            return;
        }
        self.caller_media(now);
        self.emit(CallEvent::Started(info.clone()));
        self.info = Some(info);
        self.maybe_greet(now);
    }

    fn on_caller_audio(&mut self, audio: Base64Audio, now: Instant) {
        if self.info.is_none() {
            return;
        }
        self.caller_media(now);
        let samples = self.caller_format.samples_in(audio.decoded_len());
        if self.ready {
            self.stats.caller_samples += samples;
            self.send_caller_audio(audio);
        } else if self.gap.as_ref().is_some_and(|g| !g.recycle) {
            // Nobody to hear it: dropped (documented), counted.
            self.stats.gap_dropped_samples += samples;
        } else {
            self.pre_ready_samples += samples;
            self.pre_ready.push_back(Buffered::Audio(audio));
            while self.pre_ready_samples > self.pre_ready_budget {
                let Some(idx) = self
                    .pre_ready
                    .iter()
                    .position(|b| matches!(b, Buffered::Audio(_)))
                else {
                    break;
                };
                if let Some(Buffered::Audio(old)) = self.pre_ready.remove(idx) {
                    let n = self.caller_format.samples_in(old.decoded_len());
                    self.pre_ready_samples -= n;
                    self.stats.pre_ready_dropped_samples += n;
                }
            }
        }
    }

    fn send_caller_audio(&mut self, audio: Base64Audio) {
        let audio = match &mut self.to_agent {
            None => audio,
            Some(conv) => match conv.process(&audio) {
                Ok(converted) => converted,
                Err(e) => {
                    self.emit(CallEvent::Error {
                        source: ErrorSource::Audio,
                        code: None,
                        message: format!("caller audio: {e}"),
                        fatal: false,
                    });
                    return;
                }
            },
        };
        if audio.text_len() > 0 {
            self.out
                .push_back(Output::Agent(AgentCommand::Audio(audio)));
        }
    }

    fn on_mark_played(&mut self, mark: MarkId, now: Instant) {
        match self.playout.echo(mark, now) {
            Echo::Played => {
                if self.actions.is_draining()
                    && (!self.playout.is_playing() || self.actions.heard_with(mark))
                {
                    self.execute_action(false, now);
                }
            }
            Echo::Stale => self.stats.stale_mark_echoes += 1,
            Echo::Unknown => tracing::trace!(mark = mark.0, "echo of an unknown mark ignored"),
        }
    }

    fn on_dtmf(&mut self, digit: char, now: Instant) {
        self.caller_activity();
        if self.config.dtmf == DtmfMode::Off {
            return;
        }
        let text = format!("The caller pressed {digit} on the keypad.");
        self.context.note(&text);
        let context = AgentCommand::AddContext { text };
        if self.ready {
            self.out.push_back(Output::Agent(context));
        } else {
            self.pre_ready.push_back(Buffered::Command(context));
        }
        if self.config.dtmf == DtmfMode::ForwardAndRespond {
            if self.ready {
                self.request_response(None, LatencyTrigger::Dtmf, now);
            } else {
                self.pre_ready
                    .push_back(Buffered::Command(AgentCommand::CreateResponse {
                        instructions: None,
                    }));
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Agent side
    // ---------------------------------------------------------------------------------------

    fn on_agent_ready(&mut self, now: Instant) {
        if self.ready || self.caps.is_none() {
            return;
        }
        self.ready = true;
        self.timers.stop(Timer::AgentConnect);
        self.arm_recycle(now);
        if let Some(gap) = self.gap.take() {
            return self.resume(gap, now);
        }
        self.emit(CallEvent::AgentReady {
            connect_latency: now.saturating_duration_since(self.started_at),
        });
        if std::mem::take(&mut self.restore_pending) {
            // A handed-over call: its conversation first, then the caller's audio.
            let items = self.context.items();
            tracing::info!(
                restored = items.len(),
                "conversation restored from a handover"
            );
            for item in items {
                self.out
                    .push_back(Output::Agent(AgentCommand::Restore(item)));
            }
            self.stats.context_dropped = self.context.dropped();
        }
        while let Some(buffered) = self.pre_ready.pop_front() {
            match buffered {
                Buffered::Audio(audio) => {
                    self.stats.caller_samples += self.caller_format.samples_in(audio.decoded_len());
                    self.send_caller_audio(audio);
                }
                Buffered::Command(cmd) => self.out.push_back(Output::Agent(cmd)),
            }
        }
        self.pre_ready_samples = 0;
        self.maybe_greet(now);
    }

    fn maybe_greet(&mut self, now: Instant) {
        if self.ready && self.info.is_some() && !self.greeted {
            self.greeted = true;
            if let Some(greeting) = self.config.greeting.clone() {
                self.request_response(Some(greeting), LatencyTrigger::Greeting, now);
            }
        }
    }

    fn on_agent_audio(
        &mut self,
        audio: Base64Audio,
        response_id: Option<&str>,
        item_id: Option<&str>,
        now: Instant,
    ) {
        let Some(caps) = self.caps else { return };
        let format = caps.output_format;
        if self.info.is_none() {
            // No caller stream to play it on yet.
            return;
        }
        if self.turns.is_discarded(response_id, item_id) {
            self.stats.late_dropped_samples += format.samples_in(audio.decoded_len());
            return;
        }
        let total = audio.decoded_len();
        if total == 0 {
            return;
        }
        self.turns.audio_sent(response_id);
        if let Some((since, trigger)) = self.turn_start.take() {
            self.emit(CallEvent::FirstAudio {
                trigger,
                latency: now.saturating_duration_since(since),
            });
        }
        if total <= self.piece_max_bytes {
            self.forward_piece(audio, format, response_id, item_id, now);
        } else {
            let pieces = total.div_ceil(self.piece_max_bytes);
            let step = total.div_ceil(pieces).div_ceil(self.piece_unit) * self.piece_unit;
            for piece in audio.split_chunks(step) {
                self.forward_piece(piece, format, response_id, item_id, now);
            }
        }
    }

    fn forward_piece(
        &mut self,
        piece: Base64Audio,
        format: AudioFormat,
        response_id: Option<&str>,
        item_id: Option<&str>,
        now: Instant,
    ) {
        let samples = format.samples_in(piece.decoded_len());
        // Only while a goodbye is awaited from an agent without response boundaries: is this
        // piece quiet? (One decode per piece then; nothing on the normal path.)
        let watched = self.actions.is_pending() && self.actions.watches_quiet(response_id);
        let quiet = watched && is_quiet(&piece, format);
        let payload = match &mut self.to_caller {
            None => piece,
            Some(conv) => match conv.process(&piece) {
                Ok(converted) => converted,
                Err(e) => {
                    self.emit(CallEvent::Error {
                        source: ErrorSource::Audio,
                        code: None,
                        message: format!("agent audio: {e}"),
                        fatal: false,
                    });
                    return;
                }
            },
        };
        let mark = self.playout.forward(response_id, item_id, samples, now);
        self.stats.agent_samples += samples;
        let duration = format.samples_to_duration(samples);
        if self.actions.is_pending()
            && let Some(deadline) = self.actions.audio_forwarded(
                response_id,
                quiet,
                duration,
                now,
                self.config.goodbye_timeout,
            )
        {
            self.timers.set(Timer::Goodbye, deadline);
        }
        if watched
            && let Some(needed) = self.config.goodbye_quiet
            && self.actions.quiet_forwarded(quiet, duration, mark, needed)
        {
            tracing::debug!(
                mark = mark.0,
                quiet_ms = needed.as_millis() as u64,
                "the goodbye went quiet: the action follows once this mark is heard"
            );
        }
        // A transcoder may hold a few samples back (resampler history); the mark still
        // follows, so positions stay in the agent's samples.
        if payload.text_len() > 0 {
            self.out
                .push_back(Output::Caller(CallerCommand::Audio(payload)));
        }
        self.out
            .push_back(Output::Caller(CallerCommand::Mark(mark)));
    }

    fn on_speech_started(&mut self, now: Instant) {
        self.caller_speaking = true;
        self.caller_activity();
        let Some(caps) = self.caps else { return };
        if caps.reports_speech {
            // The agent takes this turn by itself; a request of ours still in flight is
            // answered (or refused) as part of it.
            if self.turns.caller_took_turn() {
                self.response_left_to_agent();
            }
        }
        if self.config.min_barge_in_speech.is_zero() {
            self.interrupt(now);
        } else if !self.timers.is_armed(Timer::BargeIn) {
            // Interrupt only if the caller is still speaking then.
            self.timers
                .set(Timer::BargeIn, now + self.config.min_barge_in_speech);
        }
    }

    /// The caller is speaking over the agent: clear what is queued, truncate, cancel.
    fn interrupt(&mut self, now: Instant) {
        let Some(caps) = self.caps else { return };
        if self.config.goodbye_barge_in == GoodbyeBargeIn::Finish && self.actions.goodbye_playing()
        {
            // The goodbye plays to its end; the action follows once it has been heard.
            tracing::debug!("caller speech during the goodbye: the goodbye keeps playing");
            return;
        }
        // The active response, unless a previous barge-in already discarded it.
        let live_active = self
            .turns
            .live_active()
            .map(|(id, audio)| (id.to_owned(), audio));
        let streaming = live_active.as_ref().is_some_and(|(_, audio)| *audio);
        if !self.playout.is_playing() && !streaming {
            // Nothing audible to interrupt. A response that is running without audio yet would
            // still talk over the caller if the agent does not cancel it itself.
            if !caps.interrupts_itself
                && let Some((id, _)) = live_active
            {
                self.turns.discard_response(&id);
                self.out
                    .push_back(Output::Agent(AgentCommand::CancelResponse {
                        response_id: Some(id),
                    }));
            }
            return;
        }

        self.out.push_back(Output::Caller(CallerCommand::Clear));
        let (cleared_marks, items) = self.playout.clear(now);
        if let Some(transcoder) = &mut self.to_caller {
            // The queued stream was cut: no stale filter history into the next utterance.
            transcoder.reset();
        }

        let mut cancelled_response = None;
        if let Some((id, _)) = live_active {
            self.turns.discard_response(&id);
            if !caps.interrupts_itself {
                self.out
                    .push_back(Output::Agent(AgentCommand::CancelResponse {
                        response_id: Some(id.clone()),
                    }));
                cancelled_response = Some(id);
            }
        }

        let format = caps.output_format;
        let mut truncations = Vec::with_capacity(items.len());
        for item in items {
            let heard = item.sent.min(item.heard);
            let audio_end_ms = match &item.item_id {
                Some(item_id) if caps.truncation => {
                    let ms = format.samples_to_ms(heard);
                    self.out.push_back(Output::Agent(AgentCommand::Truncate {
                        item_id: item_id.clone(),
                        audio_end_ms: ms,
                    }));
                    Some(ms)
                }
                _ => None,
            };
            match (&item.response_id, &item.item_id) {
                (Some(r), _) => self.turns.discard_response(r),
                (None, Some(i)) => self.turns.discard_item(i),
                (None, None) => {}
            }
            if let Some(item_id) = &item.item_id {
                self.context.cut(
                    item_id,
                    format.samples_to_ms(heard),
                    format.samples_to_ms(item.sent),
                );
            }
            truncations.push(Truncation {
                response_id: item.response_id,
                item_id: item.item_id,
                sent_ms: format.samples_to_ms(item.sent),
                confirmed_ms: format.samples_to_ms(item.played),
                played_ms: format.samples_to_ms(heard),
                audio_end_ms,
            });
        }
        self.turn_start = None;
        self.stats.barge_ins += 1;
        tracing::debug!(
            cleared_marks,
            items = truncations.len(),
            "barge-in: cleared caller playout"
        );
        self.emit(CallEvent::BargeIn(BargeIn {
            at: now.saturating_duration_since(self.started_at),
            truncations,
            cleared_marks,
            cancelled_response,
        }));
        self.after_barge_in(now);
    }

    fn after_barge_in(&mut self, now: Instant) {
        if self.actions.is_draining() {
            self.execute_action(false, now);
        }
    }

    fn on_response_started(&mut self, response_id: String) {
        self.answer_owed = false;
        self.actions.response_started(&response_id);
        self.turns.started(response_id);
    }

    fn on_response_done(
        &mut self,
        response_id: String,
        status: ResponseStatus,
        usage: Option<Usage>,
        now: Instant,
    ) {
        if let Some(usage) = usage {
            self.add_usage(usage);
        }
        if let ResponseStatus::Failed(message) = &status {
            self.emit(CallEvent::Error {
                source: ErrorSource::Agent,
                code: None,
                message: format!("response {response_id} failed: {message}"),
                fatal: false,
            });
        }
        self.playout.response_done(&response_id);
        self.turns
            .done(&response_id, &status, self.config.apology.as_deref());
        // The response stays in `discarded_responses` (bounded): audio of an interrupted
        // response that arrives even after its `response.done` must not reach the caller.
        let completed = status == ResponseStatus::Completed;

        // Tool calls of this response: run them if it completed, else discard them.
        for (request, run) in self.tools.response_done(&response_id, completed) {
            if run {
                self.run_tool(request, now);
            } else {
                self.emit(CallEvent::ToolDiscarded {
                    call_id: request.call_id,
                    name: request.name,
                });
            }
        }

        if self.actions.response_done(&response_id) && !self.playout.is_playing() {
            self.execute_action(false, now);
            return;
        }
        if let Some(Requested {
            instructions,
            trigger,
        }) = self.turns.next_request()
        {
            self.send_create(instructions, trigger, now);
        }
    }

    fn on_agent_error(&mut self, code: Option<String>, message: String, fatal: bool, now: Instant) {
        // Before `Ready` the session was not set up: nothing will make it ready, so waiting
        // for the connect timeout would only be dead air.
        let before_ready = !self.ready;
        let refused_create = code.as_deref() == Some(ACTIVE_RESPONSE_ERROR);
        let expired = code.as_deref() == Some(SESSION_EXPIRED);
        self.emit(CallEvent::Error {
            source: ErrorSource::Agent,
            code,
            message: message.clone(),
            fatal: fatal || before_ready,
        });
        if before_ready && self.gap.is_some() {
            // The fresh session refused its configuration: a permanent failure.
            self.out.push_back(Output::AgentLost);
            self.give_up(message, now);
        } else if before_ready {
            self.end(EndReason::AgentConnectFailed, Some(message), now);
        } else if fatal && expired && self.lose_agent(&message, true, now) {
            // The session reached its time limit: a fresh one carries the call on.
        } else if fatal {
            self.end(EndReason::AgentFailed, Some(message), now);
        } else if refused_create && self.turns.refused() {
            // Our request met a response we had not seen start yet: asked again once it is
            // done.
            self.turn_start = None;
        }
    }

    fn on_transcript(
        &mut self,
        speaker: Speaker,
        text: String,
        is_final: bool,
        timing: Option<TranscriptTiming>,
        item_id: Option<String>,
        now: Instant,
    ) {
        if speaker == Speaker::Caller {
            self.caller_activity();
        }
        if !is_final {
            match &item_id {
                Some(id) if speaker == Speaker::Agent => self.context.fragment(id, &text),
                Some(_) => {}
                // GPT-Live: fragments of either side, made final later by the adapter.
                None => self.context.unkeyed_fragment(speaker, &text),
            }
            if speaker == Speaker::Agent && self.actions.is_pending() {
                self.actions.agent_words();
            }
            return;
        }
        self.context.line(speaker, &text, item_id.as_deref());
        self.stats.transcript_turns += 1;
        self.emit(CallEvent::Transcript {
            speaker,
            text,
            timing,
            item_id,
            at: now.saturating_duration_since(self.started_at),
        });
    }

    fn add_usage(&mut self, usage: Usage) {
        self.stats.add_usage(&usage);
        self.emit(CallEvent::Usage(usage));
    }

    // ---------------------------------------------------------------------------------------
    // Responses, tools, actions
    // ---------------------------------------------------------------------------------------

    /// Asks the agent to speak, now or — if a response is running — once it ends.
    fn request_response(
        &mut self,
        instructions: Option<String>,
        trigger: LatencyTrigger,
        now: Instant,
    ) {
        if self.caller_speaking && self.caps.is_some_and(|c| c.reports_speech) {
            // The agent answers the caller's turn by itself (server VAD), with whatever we
            // added in context; a response of ours now would talk over the caller and collide.
            self.response_left_to_agent();
            return;
        }
        if let Some(Requested {
            instructions,
            trigger,
        }) = self.turns.request(Requested {
            instructions,
            trigger,
        }) {
            self.send_create(instructions, trigger, now);
        }
    }

    /// We asked for a response but leave it to the agent's own turn-taking: the next response
    /// it starts is the one a pending call action waits for.
    fn response_left_to_agent(&mut self) {
        self.actions.goodbye_requested();
    }

    fn send_create(&mut self, instructions: Option<String>, trigger: LatencyTrigger, now: Instant) {
        // Tracked until `ResponseStarted` (or the agent's refusal). A continuous agent
        // (GPT-Live) has no response boundaries to clear it.
        let track = self.caps.is_some_and(|c| !c.continuous_input);
        self.turns.sent(
            &Requested {
                instructions: instructions.clone(),
                trigger,
            },
            track,
        );
        self.out
            .push_back(Output::Agent(AgentCommand::CreateResponse { instructions }));
        self.turn_start = Some((now, trigger));
        self.actions.goodbye_requested();
    }

    fn on_tool_call(&mut self, request: ToolCallRequest, now: Instant) {
        match self.tools.admit(request) {
            Admission::Run(request) => self.run_tool(request, now),
            Admission::Held => {}
            Admission::Discard(request) => self.emit(CallEvent::ToolDiscarded {
                call_id: request.call_id,
                name: request.name,
            }),
        }
    }

    fn run_tool(&mut self, request: ToolCallRequest, now: Instant) {
        let ToolCallRequest {
            call_id,
            name,
            arguments,
            ..
        } = request;
        self.stats.tool_calls += 1;
        self.context.tool_call(&call_id, &name, &arguments);
        self.tools.started(call_id.clone(), name.clone(), now);
        self.emit(CallEvent::ToolStarted {
            call_id: call_id.clone(),
            name: name.clone(),
            arguments: arguments.clone(),
        });
        self.out.push_back(Output::RunTool(Box::new(ToolInvocation {
            call_id,
            name,
            arguments,
            phone_call_id: self
                .info
                .as_ref()
                .map(|i| i.call_id.clone())
                .unwrap_or_default(),
        })));
    }

    /// The caller is a voicemail box recording now: ask for the message and hang up once it
    /// has been heard (the goodbye's phases and guard), or refuse when that cannot be done.
    /// What the agent is saying already is finished first (the request is held back).
    fn leave_message(&mut self, instructions: String, now: Instant) {
        let refused = if !self.ready || self.gap.is_some() {
            Some("the agent is not ready")
        } else if self.actions.is_pending() {
            Some("a call action is already pending")
        } else {
            None
        };
        if let Some(reason) = refused {
            self.emit(CallEvent::LeaveMessage {
                refused: Some(reason.to_owned()),
            });
            return;
        }
        self.actions.request(CallAction::Hangup);
        self.timers
            .set(Timer::Goodbye, now + self.config.goodbye_timeout);
        self.emit(CallEvent::LeaveMessage { refused: None });
        self.context.note(&instructions);
        if self.caller_speaking && self.caps.is_some_and(|c| c.reports_speech) {
            // The agent answers the sound it hears by itself; the instructions go with it.
            self.out.push_back(Output::Agent(AgentCommand::AddContext {
                text: instructions.clone(),
            }));
        }
        self.request_response(Some(instructions), LatencyTrigger::Voicemail, now);
    }

    /// The goodbye was heard (or its guard fired): output the action. A hang-up ends the call
    /// here; a transfer waits for its result ([`Call::action_finished`]).
    fn execute_action(&mut self, timed_out: bool, now: Instant) {
        let Some(action) = self.actions.execute() else {
            return;
        };
        self.timers.stop(Timer::Goodbye);
        self.emit(CallEvent::Action {
            action: action.clone(),
            timed_out,
        });
        self.out.push_back(Output::Action(action.clone()));
        if action == CallAction::Hangup {
            self.end(EndReason::HungUpByAgent, None, now);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Reconnect
    // ---------------------------------------------------------------------------------------

    /// The agent connection was lost. Starts a reconnect (true) when one is configured, the
    /// cause is transient and the call was under way with a ready agent; a loss during a gap
    /// counts as a failed attempt (true). False: the caller ends the call.
    fn lose_agent(&mut self, reason: &str, transient: bool, now: Instant) -> bool {
        if self.finished {
            return true;
        }
        if self.gap.is_some() {
            // The fresh connection failed before it was ready.
            self.out.push_back(Output::AgentLost);
            if transient {
                self.attempt_failed(reason.to_owned(), now);
            } else {
                self.give_up(reason.to_owned(), now);
            }
            return true;
        }
        let Some(reconnect) = &self.config.reconnect else {
            return false;
        };
        if !transient
            || !self.ready
            || self.info.is_none()
            || self.stats.reconnects >= reconnect.max_reconnects
        {
            return false;
        }
        let max_gap = reconnect.max_gap;
        tracing::info!(reason, "agent connection lost: reconnecting");
        // A recycle under way is abandoned: the reconnect brings a fresh session anyway.
        self.discard_standby();
        self.ready = false;
        self.gap = Some(Gap {
            since: now,
            attempts: 0,
            recycle: false,
        });
        self.context.connection_lost();
        self.stats.context_dropped = self.context.dropped();
        self.playout.session_lost();
        // Nothing of the old session will answer: its responses, requests and held tool
        // calls are gone (running tools keep running; their outputs are replayed).
        self.turns = Turns::default();
        self.turn_start = None;
        self.caller_speaking = false;
        self.answer_owed = false;
        for request in self.tools.discard_held() {
            self.emit(CallEvent::ToolDiscarded {
                call_id: request.call_id,
                name: request.name,
            });
        }
        self.timers.stop(Timer::BargeIn);
        self.timers.stop(Timer::Idle);
        self.out.push_back(Output::AgentLost);
        self.emit(CallEvent::AgentReconnecting {
            attempt: 1,
            reason: reason.to_owned(),
        });
        self.timers.set(Timer::AgentConnect, now + max_gap);
        self.timers.set(Timer::Reconnect, now);
        self.send_hold(now);
        true
    }

    /// A reconnect attempt failed transiently: the next one, or give up.
    fn attempt_failed(&mut self, reason: String, now: Instant) {
        let (Some(gap), Some(reconnect)) = (&self.gap, &self.config.reconnect) else {
            return;
        };
        if gap.attempts >= reconnect.max_attempts {
            return self.give_up(reason, now);
        }
        let attempt = gap.attempts + 1;
        let delay = reconnect.delay(attempt);
        self.emit(CallEvent::AgentReconnecting { attempt, reason });
        self.timers.set(Timer::Reconnect, now + delay);
    }

    /// Reconnecting failed for good: the call ends as [`EndReason::AgentFailed`].
    fn give_up(&mut self, reason: String, now: Instant) {
        let attempts = self.gap.take().map_or(0, |g| g.attempts);
        self.emit(CallEvent::AgentReconnectFailed {
            attempts,
            reason: reason.clone(),
        });
        self.fail(
            ErrorSource::Agent,
            EndReason::AgentFailed,
            format!("the agent connection was lost and could not be restored: {reason}"),
            now,
        );
    }

    /// The fresh session is ready: replay the conversation, then let the agent pick up.
    fn resume(&mut self, gap: Gap, now: Instant) {
        self.timers.stop(Timer::Reconnect);
        self.timers.stop(Timer::Hold);
        self.turns = Turns::default();
        let items = self.context.items();
        let restored = items.len();
        if !self.caps.is_some_and(|c| c.restore_at_start) {
            for item in items {
                self.out
                    .push_back(Output::Agent(AgentCommand::Restore(item)));
            }
        }
        self.stats.context_dropped = self.context.dropped();
        if gap.recycle {
            // Caller audio kept during the switch follows the replay, in order.
            self.stats.recycles += 1;
            tracing::info!(restored, "agent session recycled; conversation replayed");
            self.emit(CallEvent::AgentRecycled {
                gap: now.saturating_duration_since(gap.since),
                restored,
            });
            while let Some(buffered) = self.pre_ready.pop_front() {
                match buffered {
                    Buffered::Audio(audio) => {
                        self.stats.caller_samples +=
                            self.caller_format.samples_in(audio.decoded_len());
                        self.send_caller_audio(audio);
                    }
                    Buffered::Command(cmd) => self.out.push_back(Output::Agent(cmd)),
                }
            }
            self.pre_ready_samples = 0;
            return;
        }
        self.stats.reconnects += 1;
        tracing::info!(
            attempts = gap.attempts,
            restored,
            "agent reconnected; conversation replayed"
        );
        self.emit(CallEvent::AgentReconnected {
            attempts: gap.attempts,
            gap: now.saturating_duration_since(gap.since),
            restored,
        });
        // Keypad presses during the gap.
        while let Some(buffered) = self.pre_ready.pop_front() {
            if let Buffered::Command(cmd) = buffered {
                self.out.push_back(Output::Agent(cmd));
            }
        }
        self.pre_ready_samples = 0;
        let resume = self
            .config
            .reconnect
            .as_ref()
            .and_then(|r| r.resume_instructions.clone());
        if let Some(instructions) = resume {
            self.request_response(Some(instructions), LatencyTrigger::Resumed, now);
        }
    }

    /// Arms the recycling of the session that just became ready (`at`), and forgets any
    /// recycle under way.
    fn arm_recycle(&mut self, at: Instant) {
        self.recycle_due = false;
        self.recycle_attempts = 0;
        self.recycle_fallback = false;
        self.timers.stop(Timer::Recycle);
        if let Some(after) = self.config.reconnect.as_ref().and_then(|r| r.recycle_after) {
            self.timers.set(Timer::Recycle, at + after);
        }
    }

    /// The recycle under way, after each input: a standby is opened as soon as recycling is
    /// due, and switched to at a natural pause once it is ready (see [`ReconnectConfig`]).
    fn recycle_step(&mut self, now: Instant) {
        // The agent's own report of a pause (an agent that does not report speech).
        let agent_pause = std::mem::take(&mut self.agent_pause);
        if self.recycle_off {
            self.recycle_due = false;
            return;
        }
        if agent_pause {
            self.recycle_due = true;
        }
        if !self.ready || self.gap.is_some() || self.info.is_none() {
            return;
        }
        if self.standby.is_none() && !self.recycle_fallback {
            self.open_standby(false, now);
        }
        let reports_speech = self.caps.is_some_and(|c| c.reports_speech);
        let quiet = agent_pause
            || (reports_speech
                && !self.playout.is_playing()
                && !self.caller_speaking
                && !self.answer_owed);
        let pause = quiet
            && self.turns.is_idle()
            && self.tools.none_running()
            && !self.actions.is_pending();
        if !pause {
            return;
        }
        match self.standby.as_ref().map(|s| s.phase) {
            Some(StandbyPhase::Ready) => self.switch_to_standby(now),
            None if self.recycle_fallback => self.break_before_make(now),
            _ => {}
        }
    }

    /// Starts the next standby attempt of this recycle: at once (`after_failure` false, or
    /// the first attempt) or after the reconnect backoff. With the attempts used up, the
    /// recycle falls back to break-before-make at the next pause.
    fn open_standby(&mut self, after_failure: bool, now: Instant) {
        let Some(reconnect) = &self.config.reconnect else {
            return;
        };
        if self.recycle_attempts >= reconnect.max_attempts {
            tracing::warn!(
                attempts = self.recycle_attempts,
                "no standby agent session for recycling: break-before-make at the next pause"
            );
            self.recycle_fallback = true;
            return;
        }
        self.recycle_attempts += 1;
        let attempt = self.recycle_attempts;
        let delay = if after_failure {
            reconnect.delay(attempt)
        } else {
            std::time::Duration::ZERO
        };
        let phase = if delay.is_zero() {
            self.out.push_back(Output::ConnectStandby { attempt });
            StandbyPhase::Connecting
        } else {
            self.timers.set(Timer::Standby, now + delay);
            StandbyPhase::Backoff
        };
        self.standby = Some(Standby {
            phase,
            caps: None,
            seeded: None,
            ready_at: None,
        });
    }

    /// The standby failed (it never touched the call): counted, reported, dropped; another
    /// one after a backoff, or none for good after a permanent failure.
    fn standby_failed(&mut self, reason: &str, transient: bool, now: Instant) {
        self.standby = None;
        self.timers.stop(Timer::Standby);
        self.out.push_back(Output::DropStandby);
        self.stats.standby_failures += 1;
        tracing::warn!(
            reason,
            transient,
            "standby agent session for recycling failed"
        );
        self.emit(CallEvent::Error {
            source: ErrorSource::Agent,
            code: None,
            message: format!("standby agent session for recycling: {reason}"),
            fatal: false,
        });
        if transient {
            self.open_standby(true, now);
        } else {
            self.recycle_off = true;
            self.recycle_due = false;
        }
    }

    /// Closes and forgets the standby, if there is one (a reconnect makes it pointless).
    fn discard_standby(&mut self) {
        self.timers.stop(Timer::Standby);
        if let Some(standby) = self.standby.take() {
            if standby.phase != StandbyPhase::Backoff {
                self.out.push_back(Output::Standby(AgentCommand::Close));
            }
            self.out.push_back(Output::DropStandby);
        }
    }

    /// The make-before-break switch, at a pause with the standby ready: the old session is
    /// closed, the standby becomes the agent and gets the conversation (unless it started
    /// with it), and the next caller frame goes to it. For an agent that started with the
    /// conversation, a conversation that grew since then discards the standby instead, and
    /// another one is opened at once (this is a pause).
    fn switch_to_standby(&mut self, now: Instant) {
        let Some(standby) = self.standby.take() else {
            return;
        };
        let (Some(caps), Some(ready_at)) = (standby.caps, standby.ready_at) else {
            return;
        };
        self.context.connection_lost();
        let items = self.context.items();
        if caps.restore_at_start && standby.seeded.as_ref() != Some(&items) {
            tracing::info!(
                "the conversation grew since the standby session started: opening another"
            );
            self.stats.standby_failures += 1;
            self.out.push_back(Output::Standby(AgentCommand::Close));
            self.out.push_back(Output::DropStandby);
            return self.open_standby(false, now);
        }
        self.timers.stop(Timer::Standby);
        // The old session's writes finish, then it is closed off the call's path.
        self.out.push_back(Output::Agent(AgentCommand::Close));
        self.out.push_back(Output::SwitchToStandby);
        if let Err(e) = self.set_caps(caps) {
            return self.agent_failed(e, now);
        }
        let restored = items.len();
        if !caps.restore_at_start {
            for item in items {
                self.out
                    .push_back(Output::Agent(AgentCommand::Restore(item)));
            }
        }
        self.stats.context_dropped = self.context.dropped();
        // Nothing of the old session is running (this is a pause).
        self.turns = Turns::default();
        self.answer_owed = false;
        self.turn_start = None;
        self.playout.session_lost();
        self.timers.stop(Timer::Idle);
        self.timers.stop(Timer::AgentResponse);
        self.stats.recycles += 1;
        tracing::info!(restored, "agent session recycled (make-before-break)");
        // The next caller frame goes to the fresh session: the caller waited for nothing.
        self.emit(CallEvent::AgentRecycled {
            gap: std::time::Duration::ZERO,
            restored,
        });
        self.arm_recycle(ready_at);
    }

    /// The fallback when no standby could be made ready: at this pause the old session is
    /// closed and a fresh one opened; caller audio is kept (pre-ready buffer) and sent after
    /// the replay, for at most [`ReconnectConfig::recycle_max_gap`].
    fn break_before_make(&mut self, now: Instant) {
        let Some(reconnect) = &self.config.reconnect else {
            return;
        };
        let bound = reconnect.recycle_max_gap;
        self.recycle_due = false;
        self.recycle_fallback = false;
        tracing::info!("recycling the agent session at a pause (break-before-make)");
        self.ready = false;
        self.gap = Some(Gap {
            since: now,
            attempts: 0,
            recycle: true,
        });
        self.context.connection_lost();
        self.turns = Turns::default();
        self.turn_start = None;
        self.timers.stop(Timer::Idle);
        // The old session is closed properly (the driver does it off the call's path).
        self.out.push_back(Output::Agent(AgentCommand::Close));
        self.out.push_back(Output::AgentLost);
        self.timers.set(Timer::AgentConnect, now + bound);
        self.timers.set(Timer::Reconnect, now);
    }

    /// A break-before-make switch took longer than [`ReconnectConfig::recycle_max_gap`]: it
    /// becomes a reconnect (the hold audio plays, the caller audio kept so far and from now
    /// on is dropped and counted, `max_gap` from the switch applies).
    fn recycle_gap_too_long(&mut self, now: Instant) {
        let (Some(gap), Some(reconnect)) = (self.gap.as_mut(), self.config.reconnect.as_ref())
        else {
            return;
        };
        gap.recycle = false;
        let deadline = (gap.since + reconnect.max_gap).max(now);
        let attempt = gap.attempts.max(1);
        let waited = reconnect.recycle_max_gap.as_millis();
        let mut kept = VecDeque::new();
        for buffered in self.pre_ready.drain(..) {
            match buffered {
                Buffered::Audio(audio) => {
                    self.stats.gap_dropped_samples +=
                        self.caller_format.samples_in(audio.decoded_len());
                }
                Buffered::Command(cmd) => kept.push_back(Buffered::Command(cmd)),
            }
        }
        self.pre_ready = kept;
        self.pre_ready_samples = 0;
        tracing::warn!(
            waited_ms = waited as u64,
            "recycled session not ready in time: reconnecting"
        );
        self.emit(CallEvent::AgentReconnecting {
            attempt,
            reason: format!("the recycled session was not ready within {waited} ms"),
        });
        self.timers.set(Timer::AgentConnect, deadline);
        self.send_hold(now);
    }

    /// Queues the hold audio for the caller (as agent audio without a response), and arms
    /// its repetition once it will have played.
    fn send_hold(&mut self, now: Instant) {
        let Some(clip) = self
            .config
            .reconnect
            .as_ref()
            .and_then(|r| r.hold_audio.clone())
        else {
            return;
        };
        let Some(caps) = self.caps else { return };
        let format = caps.output_format;
        let total = clip.decoded_len();
        if total == 0 || self.piece_max_bytes == 0 {
            return;
        }
        let pieces = total.div_ceil(self.piece_max_bytes);
        let step = total.div_ceil(pieces).div_ceil(self.piece_unit) * self.piece_unit;
        for piece in clip.split_chunks(step) {
            self.forward_piece(piece, format, None, None, now);
        }
        let length = format.samples_to_duration(format.samples_in(total));
        self.timers.set(Timer::Hold, now + length);
    }

    // ---------------------------------------------------------------------------------------
    // Idle, teardown, helpers
    // ---------------------------------------------------------------------------------------

    fn caller_activity(&mut self) {
        self.timers.stop(Timer::Idle);
        self.reprompted = false;
    }

    /// Caller audio (or the stream's start): the media stream is alive.
    #[inline]
    fn caller_media(&mut self, now: Instant) {
        if let Some(t) = self.config.caller_inactivity_timeout {
            self.timers.set(Timer::CallerInactivity, now + t);
        }
    }

    fn after_input(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        if self.handover_due {
            self.handover_at_pause(now);
            if self.finished {
                return;
            }
        }
        if self.recycle_due || self.agent_pause {
            self.recycle_step(now);
        }
        self.agent_pause = false;
        self.watch_agent(now);
        let Some(idle) = &self.config.idle else {
            return;
        };
        let quiet = self.ready
            && self.info.is_some()
            && !self.playout.is_playing()
            && self.turns.is_idle()
            && self.tools.none_running()
            && !self.actions.is_pending()
            && !self.caller_speaking;
        if !quiet {
            self.timers.stop(Timer::Idle);
        } else if !self.timers.is_armed(Timer::Idle) {
            self.timers.set(Timer::Idle, now + idle.timeout);
        }
    }

    /// The hung-agent watchdog ([`CallConfig::agent_response_timeout`]): armed while the agent
    /// owes a response (from the last agent event, which disarmed it), disarmed otherwise.
    fn watch_agent(&mut self, now: Instant) {
        let Some(timeout) = self.config.agent_response_timeout else {
            return;
        };
        let boundaries = self.caps.is_some_and(|c| !c.continuous_input);
        if self.ready && boundaries && self.turns.awaits_agent() {
            if !self.timers.is_armed(Timer::AgentResponse) {
                self.timers.set(Timer::AgentResponse, now + timeout);
            }
        } else {
            self.timers.stop(Timer::AgentResponse);
        }
    }

    fn emit(&mut self, event: CallEvent) {
        self.out.push_back(Output::Event(Box::new(event)));
    }

    fn agent_output_format(&self) -> AudioFormat {
        self.caps.map_or(self.caller_format, |c| c.output_format)
    }

    fn end(&mut self, reason: EndReason, detail: Option<String>, now: Instant) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.timers.clear();
        if self.tools.cancel_all() {
            self.out.push_back(Output::CancelTools);
        }
        // The agent first: its session is billed until it is closed.
        if self.caps.is_some() && reason != EndReason::AgentClosed {
            self.out.push_back(Output::Agent(AgentCommand::Close));
        }
        if self.standby.take().is_some() {
            // Closed at the teardown, with the agent.
            self.out.push_back(Output::Standby(AgentCommand::Close));
        }
        if !matches!(reason, EndReason::CallerHungUp | EndReason::CallerError) {
            self.out.push_back(Output::Caller(CallerCommand::Close));
        }
        tracing::debug!(reason = reason.as_str(), "call ended");
        self.ended = Some((reason, detail));
        let summary = self.summary(now);
        self.emit(CallEvent::Ended(summary.clone()));
        self.out.push_back(Output::Finished(Box::new(summary)));
    }
}

/// Samples of `format` in `duration` (rounded down).
impl Output {
    /// The caller command, if this is one.
    pub fn as_caller(&self) -> Option<&CallerCommand> {
        match self {
            Output::Caller(c) => Some(c),
            _ => None,
        }
    }

    /// The agent command, if this is one.
    pub fn as_agent(&self) -> Option<&AgentCommand> {
        match self {
            Output::Agent(c) => Some(c),
            _ => None,
        }
    }

    /// The event, if this is one.
    pub fn as_event(&self) -> Option<&CallEvent> {
        match self {
            Output::Event(e) => Some(e),
            _ => None,
        }
    }
}

/// Whether a piece of agent audio is quiet ([`GOODBYE_QUIET_DBFS`] or below). Decodes the
/// piece: used only while a goodbye is watched for its end ([`CallConfig::goodbye_quiet`]).
/// Audio that cannot be decoded counts as speech (it never ends the goodbye early).
fn is_quiet(piece: &Base64Audio, format: AudioFormat) -> bool {
    let Ok(bytes) = piece.decode() else {
        return false;
    };
    if bytes.is_empty() {
        return true;
    }
    let level = match format {
        AudioFormat::Mulaw8k => crate::audio::energy::ulaw_dbfs(&bytes),
        AudioFormat::Alaw8k => crate::audio::energy::alaw_dbfs(&bytes),
        AudioFormat::Pcm16 { .. } => {
            let mut samples = Vec::with_capacity(bytes.len() / 2);
            crate::audio::pcm::le_bytes_to_samples_into(&bytes, &mut samples);
            crate::audio::energy::pcm16_dbfs(&samples)
        }
    };
    level <= GOODBYE_QUIET_DBFS
}
