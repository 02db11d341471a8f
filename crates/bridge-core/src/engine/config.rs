//! Every knob of a call, as plain data.

use std::time::Duration;

pub use super::context::ContextLimits;
use crate::format::Base64Audio;

/// Reconnecting the agent when its connection is lost mid-call (see the engine's module docs,
/// "Reconnect").
///
/// Attempt 1 starts at once; attempt `n ≥ 2` waits `backoff · 2^(n-2)`, at most
/// `max_backoff`. The call ends ([`super::EndReason::AgentFailed`], so the caller hears the
/// fallback) after `max_attempts` failed attempts, when the gap reaches `max_gap`, or at once
/// on a permanent failure (a refusal such as 401/403/404 or an invalid model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectConfig {
    /// Connection attempts per gap. Default 3.
    pub max_attempts: u32,
    /// Reconnects per call: a loss after this many ends the call (a session that keeps
    /// dropping is not reopened forever). Default 5.
    pub max_reconnects: u32,
    /// Longest gap (loss → fresh session ready) before giving up. Default 15 s.
    pub max_gap: Duration,
    /// Wait before attempt 2; doubled for each further attempt. Default 250 ms.
    pub backoff: Duration,
    /// Longest wait between attempts. Default 2 s.
    pub max_backoff: Duration,
    /// What the caller hears during the gap, in the agent's output format (a short line or a
    /// hold tone): sent like agent audio when the gap starts and again each time it has
    /// played, until the agent is back. `None`: silence. Default `None`.
    pub hold_audio: Option<Base64Audio>,
    /// Instructions of one response requested after the context was replayed (the agent
    /// picks up where it was cut off). `None`: the agent waits for the caller. Default
    /// [`DEFAULT_RESUME`].
    pub resume_instructions: Option<String>,
    /// Session-cap recycling, make-before-break: once a session is this old, a **standby**
    /// session is opened beside it (attempts and backoff as for a reconnect, within
    /// `max_attempts`) while the old one keeps serving the call. At the first natural pause
    /// (agent audio all played, no response requested or running, no tool running, no call
    /// action pending, the caller not speaking; for an agent that does not report speech, the
    /// pause the agent reports with [`crate::agent::AgentEvent::RecycleNow`]) with the standby
    /// ready, the engine switches: the old session is closed, the standby becomes the agent
    /// and gets the conversation, and the next caller frame goes to it: no caller audio is
    /// held, lost or sent twice, no hold audio, no resume response. `None`: sessions are not
    /// recycled (an agent may still ask with `RecycleNow`). Default `None`.
    pub recycle_after: Option<Duration>,
    /// The longest the caller may be left without a session at a recycle's switch. A
    /// make-before-break switch leaves no gap (reported as 0 in
    /// [`super::CallEvent::AgentRecycled`]). Only when every standby attempt of a recycle
    /// failed does the engine fall back to break-before-make at the next pause (the old
    /// session closed, a fresh one opened, caller audio held meanwhile, bounded by
    /// [`CallConfig::pre_ready_buffer`], and sent after the replay); if the fresh session is
    /// not ready within this bound, the switch becomes a reconnect: the hold audio plays,
    /// caller audio is dropped and counted, and `max_gap` (from the switch) applies. Default
    /// 1.5 s.
    pub recycle_max_gap: Duration,
}

/// The default instructions after a reconnect ([`ReconnectConfig::resume_instructions`]).
pub const DEFAULT_RESUME: &str = "The line was briefly interrupted. In one short sentence, say \
     you are back; then finish what you were saying if you were cut off, or ask the caller to \
     go on.";

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            max_attempts: 3,
            max_reconnects: 5,
            max_gap: Duration::from_secs(15),
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            hold_audio: None,
            resume_instructions: Some(DEFAULT_RESUME.to_owned()),
            recycle_after: None,
            recycle_max_gap: Duration::from_millis(1500),
        }
    }
}

impl ReconnectConfig {
    /// The wait before attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (attempt - 2).min(16);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What the engine does with the caller's keypad presses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtmfMode {
    /// Ignore them.
    Off,
    /// Tell the agent ([`crate::agent::AgentCommand::AddContext`]) without asking it to answer.
    #[default]
    Forward,
    /// Tell the agent and ask it to answer ([`crate::agent::AgentCommand::CreateResponse`]; held
    /// back while a response is still running so playout is never disturbed).
    ForwardAndRespond,
}

/// What a caller speaking during the agent's goodbye (the response after a tool requested a
/// hang-up or transfer) does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GoodbyeBargeIn {
    /// The goodbye keeps playing and the action waits until it has been heard (or
    /// [`CallConfig::goodbye_timeout`] after its last audio): a cough or a "thanks, bye" over
    /// the goodbye does not cut it off and hang up at once.
    #[default]
    Finish,
    /// The caller's speech interrupts the goodbye like any barge-in, and the action is
    /// executed at once if the goodbye response has ended.
    Interrupt,
}

/// Agent audio at or below this RMS level (dBFS) is quiet for [`CallConfig::goodbye_quiet`]:
/// digital silence and the quietest G.711 segment (about −48 dBFS) are, speech is far above.
pub const GOODBYE_QUIET_DBFS: f32 = -45.0;

/// The default instructions of the apology after a response failed twice in a row
/// ([`CallConfig::apology`]).
pub const DEFAULT_APOLOGY: &str = "Apologize in one short sentence: you had a brief technical \
     problem. Ask the caller to repeat what they said.";

/// The idle policy: what to do when the caller stays silent after the agent finished speaking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleConfig {
    /// Silence that counts as idle, measured from the moment the agent's audio has been heard in
    /// full (its last mark echoed) with no response running, no tool running and the caller not
    /// speaking.
    pub timeout: Duration,
    /// Instructions for one reprompt response ("ask whether they are still there"). After the
    /// reprompt has been heard, a second idle period ends the call. `None`: end at the first.
    pub reprompt: Option<String>,
}

impl Default for IdleConfig {
    fn default() -> Self {
        IdleConfig {
            timeout: Duration::from_secs(20),
            reprompt: Some(
                "The caller has been silent for a while. Briefly ask whether they are still \
                 there and whether you can help with anything else."
                    .to_owned(),
            ),
        }
    }
}

/// Configuration of one call. Plain data; [`Default`] gives production-sensible values.
///
/// The engine ([`super::Call`]) reads everything except `tool_timeout`, `send_timeout` and
/// `control_timeout`, which bound the async driver's I/O ([`crate::driver`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallConfig {
    /// Maximum duration of one forwarded piece of agent audio; each piece is followed by its
    /// own mark. Echoes confirm the played position piece by piece and the engine interpolates
    /// at real time within the piece playing (see [`super`]), so a barge-in is placed to within
    /// a few milliseconds while the audio flows; the interval bounds the error where
    /// interpolation is not possible (the first piece of an answer, an underrun) and costs one
    /// echo (a message in, on the caller's socket) per piece. Pieces are cut without decoding,
    /// on whole base64 groups (3 bytes) and whole samples, so the limit is rounded up to the
    /// next such boundary (20 ms of μ-law = 160 bytes → at most 162 bytes, 20.25 ms; a
    /// 160-byte chunk stays one piece). A longer chunk is cut into equal pieces rather than full
    /// pieces plus a sliver. Default 100 ms.
    pub mark_interval: Duration,
    /// Caller audio kept while the agent is still connecting (before
    /// [`crate::agent::AgentEvent::Ready`]); beyond this the oldest audio is dropped and
    /// counted. Default 5 s.
    pub pre_ready_buffer: Duration,
    /// Instructions for the agent's first utterance, sent once after the agent is ready and the
    /// caller's stream has started. `None`: the agent waits for the caller. Default `None`.
    pub greeting: Option<String>,
    /// Keypad handling. Default [`DtmfMode::Forward`].
    pub dtmf: DtmfMode,
    /// The agent must be connected and ready within this long after the call starts. Default 10 s.
    pub agent_connect_timeout: Duration,
    /// Hard limit on the call's duration. Default 55 min (OpenAI Realtime sessions end at 60).
    pub max_duration: Option<Duration>,
    /// No caller audio for this long ends the call (the media stream is dead). Default 10 s.
    pub caller_inactivity_timeout: Option<Duration>,
    /// The idle policy. Default: 20 s, one reprompt, then end.
    pub idle: Option<IdleConfig>,
    /// How long a tool-requested hang-up or transfer waits for the agent's goodbye to be heard
    /// before it is executed anyway, counted from the end of the goodbye's audio as forwarded
    /// (when it was forwarded plus its duration), or from the tool's result while no goodbye
    /// audio has come. Default 10 s.
    pub goodbye_timeout: Duration,
    /// For an agent without response boundaries (GPT-Live: agent audio carries no response
    /// id, the output track never ends): the goodbye is the speech that starts after the
    /// agent reported [`crate::agent::AgentEvent::SpeechQueued`] and 300 ms of quiet; it is
    /// over once that speech was followed by this much quiet output (audio below [`GOODBYE_QUIET_DBFS`], and no agent transcript
    /// fragment meanwhile), counted in audio forwarded, not in wall time; the action follows
    /// when the mark after that quiet is echoed, i.e. once the caller has heard the goodbye
    /// and the quiet. PROTOCOLS-LIVE.md §7.3.8 and §11.10: nothing marks the end of a spoken
    /// reply; "output transcript quiet + outbound audio silent for a few hundred ms". `None`:
    /// only [`CallConfig::goodbye_timeout`] (counted from the goodbye's last non-quiet audio)
    /// ends such a goodbye. Agents with response boundaries (Realtime) never use it. Default
    /// `None`.
    pub goodbye_quiet: Option<Duration>,
    /// Instructions for one response after a response failed ([`crate::agent::ResponseStatus::Failed`])
    /// and its single retry failed too. `None`: nothing after the retry. Default
    /// [`DEFAULT_APOLOGY`].
    pub apology: Option<String>,
    /// How long the caller must have been speaking before the agent's audio is cleared (a
    /// barge-in), measured on the engine's clock from the agent's speech-start report; speech
    /// that stops earlier (a cough, a "mm-hm") interrupts nothing. The trade-off: every real
    /// interruption is heard over the agent's voice for this long, and the truncation lands
    /// that much later. Pointless when the agent cancels its own response on speech start
    /// ([`crate::agent::AgentCapabilities::interrupts_itself`]: the answer is cut short anyway,
    /// only what is queued keeps playing). Default zero: clear at once.
    pub min_barge_in_speech: Duration,
    /// What the caller speaking during a goodbye does. Default [`GoodbyeBargeIn::Finish`].
    pub goodbye_barge_in: GoodbyeBargeIn,
    /// A hung agent: while a response of the agent is requested or running, no agent event for
    /// this long counts as a lost connection — reconnected with [`CallConfig::reconnect`],
    /// otherwise the call ends ([`super::EndReason::AgentFailed`], so the caller hears the
    /// fallback instead of silence). Re-armed by every agent event; disarmed while no response
    /// is requested or running (a tool running, the caller's turn). Only for agents with
    /// response boundaries (not [`crate::agent::AgentCapabilities::continuous_input`]).
    /// `None`: never. Default `None`.
    pub agent_response_timeout: Option<Duration>,
    /// Driver: a tool call taking longer than this is answered with an error object. Default 20 s.
    pub tool_timeout: Duration,
    /// Driver: a side that takes no commands for this long (its peer stopped reading) ends the
    /// call; meanwhile its commands wait in its own bounded outbox and the other side keeps
    /// moving. Also bounds the closing writes at teardown. Default 5 s.
    pub send_timeout: Duration,
    /// Driver: bound on executing a call action (hang-up, transfer). Default 5 s.
    pub control_timeout: Duration,
    /// Reconnecting a lost agent connection. `None`: a lost connection ends the call.
    /// Default `None`.
    pub reconnect: Option<ReconnectConfig>,
    /// The bound of the conversation kept for a reconnect's replay. Default
    /// [`ContextLimits::default`].
    pub context: ContextLimits,
    /// Handing the call over at shutdown ([`super::Call::shutdown`]): wait at most this long
    /// for a natural pause (nobody speaking, nothing playing, no response or tool in flight),
    /// then end the stream with the conversation emitted ([`super::CallEvent::HandedOver`],
    /// [`super::EndReason::HandedOver`]) — at the pause, or anyway when the wait runs out.
    /// `None`: shutdown ends the call at once ([`super::EndReason::Shutdown`]). Default `None`.
    pub handover: Option<Duration>,
    /// A conversation to seed the call's first agent session with (a call handed over by
    /// another instance): replayed ([`crate::agent::AgentCommand::Restore`]) as soon as the
    /// session is ready, before any caller audio; the greeting is not requested then (the
    /// caller heard it already). Kept within [`CallConfig::context`]. Default empty.
    pub restore: Vec<crate::agent::ContextItem>,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            mark_interval: Duration::from_millis(100),
            pre_ready_buffer: Duration::from_secs(5),
            greeting: None,
            dtmf: DtmfMode::default(),
            agent_connect_timeout: Duration::from_secs(10),
            max_duration: Some(Duration::from_secs(55 * 60)),
            caller_inactivity_timeout: Some(Duration::from_secs(10)),
            idle: Some(IdleConfig::default()),
            goodbye_timeout: Duration::from_secs(10),
            goodbye_quiet: None,
            apology: Some(DEFAULT_APOLOGY.to_owned()),
            min_barge_in_speech: Duration::ZERO,
            goodbye_barge_in: GoodbyeBargeIn::default(),
            agent_response_timeout: None,
            tool_timeout: Duration::from_secs(20),
            send_timeout: Duration::from_secs(5),
            control_timeout: Duration::from_secs(5),
            reconnect: None,
            context: ContextLimits::default(),
            handover: None,
            restore: Vec::new(),
        }
    }
}
