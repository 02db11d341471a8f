//! The agent endpoint for OpenAI **GPT-Live** over WebSocket (PROTOCOLS-LIVE.md).
//!
//! Connection: `{OPENAI_BASE_URL}/live/sessions` with `Authorization: Bearer` and no query
//! (the model is in `session.start`). [`LiveAgent::connect`] sends the strict
//! `session.start` (model, the call's rendered instructions, `audio/pcmu` at 8000 Hz both
//! ways, voice, delegation with the tools); [`AgentEvent::Ready`] is reported on
//! `session.started`, whose session id (opaque, kept byte-exact) and `expires_at` are logged
//! and kept. Caller audio that arrives earlier is held by the engine and sent once the session
//! has started, in order.
//!
//! How the seam maps (see ARCHITECTURE.md):
//!
//! * caller audio → `session.input_audio.append` with Twilio's base64 unchanged. GPT-Live's
//!   clock is its input: if Twilio's stream has a gap, a 100 ms timer sends μ-law silence for
//!   each period in which no caller audio was fed ([`GAP_CHECK`]). The normal path pays one
//!   boolean store per frame for it, no clock read and no timer operation;
//! * `session.output_audio.delta` → agent audio (a zero-copy slice of the frame), no response
//!   or item ids: the output track is continuous and paced at real time, so Twilio's queue stays
//!   as short as the track's pacing and the model's own stop is heard at once; nothing is
//!   truncated or cleared (capabilities: no truncation, no speech events, interrupts itself,
//!   continuous input);
//! * transcript fragments → streaming transcripts with their `start_ms`/`end_ms`, and lines
//!   per speaker (fragments grouped until a gap of [`LINE_GAP_MS`]) as final transcripts;
//!   `session.usage.updated` (cumulative seconds) and backend token usage → usage;
//! * the greeting (a `CreateResponse` with text) → `session.commentary.append` verbatim with
//!   `delegation_id: null`, only after `session.started` (the engine asks once the agent is
//!   ready); keypad context → `session.thinking.append`;
//! * tools, `responses` delegation: completed `function_call` items from `response.event` →
//!   tool calls (run at once: no response boundary to wait for); results →
//!   `response.item.create` `function_call_output`, then **one** `response.create`, never while
//!   any call of the session is unanswered. `client` delegation: each
//!   `session.delegation.created` becomes a call of the configured client tool (arguments: the
//!   delegation id, its timeline offset and the recent transcript lines); its result goes back
//!   as `session.commentary.append` with that delegation id;
//! * lifetime: before `expires_at` (minus `live.wrap_up_before`) or the configured cap,
//!   the wrap-up line is appended as commentary and, `live.wrap_up_grace` later, the session
//!   ends ([`AgentEvent::Closed`]) so the call ends after the line;
//! * teardown: `session.close`, then reading until `session.closed` (bounded by
//!   `live.close_timeout`), whose reason and final usage are logged, then the WebSocket
//!   closing handshake. Every `session.closed` reason, `error` and close code maps to an end:
//!   errors before `session.started` are fatal (start-up failed), later ones are reported and
//!   the call goes on; `connection_lost` and abnormal close codes are failures, other reasons
//!   and normal closes end the call as "agent closed"; unknown or malformed events are logged
//!   and skipped, never fatal.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_trait::async_trait;
use bridge_core::agent::{
    AgentCapabilities, AgentCommand, AgentEndpoint, AgentEvent, ContextItem, Speaker,
    ToolCallRequest, TranscriptTiming, Usage,
};
use bridge_core::caller::EndpointError;
use bridge_core::format::{AudioFormat, Base64Audio};
use bridge_core::tools::ToolDefinition;
use bytes::Bytes;
use openai_realtime::client::{
    CloseEnd, Connection, Endpoint, Incoming, Target, TransportError, Utf8Bytes,
};
use openai_realtime::live::{
    self as lv, ClientEvent, CloseReason, Delegation, FunctionTool, InitialItem, MAX_INPUT_ITEMS,
    ResponsesDelegationConfig, ServerEvent, SessionConfig, SessionConfigBuilder,
    write_input_audio_append,
};
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use super::realtime::McpStats;
use super::{Direction, RelayClock};
use crate::config::{LiveConfig, LiveDelegation};
use crate::tools::config::{McpApproval, McpServer};

/// How often the input gap filler checks that caller audio was fed.
pub const GAP_CHECK: Duration = Duration::from_millis(100);
/// Agent audio forwarded ahead of real time beyond this is queued at Twilio: silent deltas are
/// then dropped until the lead is back under it (speech is never dropped).
pub const MAX_OUTPUT_LEAD: Duration = Duration::from_millis(200);
/// Transcript fragments of one speaker further apart than this start a new line.
pub const LINE_GAP_MS: i64 = 800;
/// Client delegation: transcript lines passed to the client tool.
const CONTEXT_LINES: usize = 12;
/// Longest text of one context append (the API allows 500 tokens).
const MAX_APPEND_CHARS: usize = 1800;
/// Bound on the WebSocket closing handshake after `session.closed`.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
/// `session.start`'s `input` cap in rendered tokens (PROTOCOLS-LIVE.md §4, §9).
pub const MAX_INPUT_TOKENS: usize = 8192;
/// Characters per token assumed when estimating the rendered size of the replayed history:
/// deliberately low (English averages about 4), so the estimate errs towards "too big".
const CHARS_PER_TOKEN: usize = 3;
/// Tokens assumed per message for its role and framing.
const TOKENS_PER_MESSAGE: usize = 4;
/// Silence on both sides (no transcript fragment, silent output) this long is a pause at
/// which a session near its expiry is recycled.
pub const RECYCLE_PAUSE: Duration = Duration::from_millis(1000);
/// The last history item of a session that replaces an earlier one of the same call.
pub const REPLAY_NOTE: &str = "Everything above happened earlier in this phone call, before \
    the connection to the voice service was renewed. Continue the same conversation from \
    here; do not greet the caller again.";

/// The `input` history that seeds a session replacing an earlier one of the same call: the
/// conversation so far ([`ContextItem`]s, oldest first) as text-only messages (caller lines
/// as `user`, agent lines as `assistant`, tool calls, their outputs and the engine's notes
/// as `developer` context; GPT-Live's voice model has no function-call items), then
/// [`REPLAY_NOTE`]. Within the caps of PROTOCOLS-LIVE.md §4.2/§9: at most
/// [`MAX_INPUT_ITEMS`] messages and [`MAX_INPUT_TOKENS`] estimated rendered tokens
/// (characters / [`CHARS_PER_TOKEN`] + [`TOKENS_PER_MESSAGE`] each); beyond either the
/// **oldest** messages are dropped first. Returns the items and how many were dropped.
pub fn replay_input(context: &[ContextItem]) -> (Vec<InitialItem>, usize) {
    let mut items: Vec<InitialItem> = context
        .iter()
        .filter_map(|item| {
            let message = match item {
                ContextItem::Message {
                    speaker: Speaker::Caller,
                    text,
                } => InitialItem::user(text.as_str()),
                ContextItem::Message {
                    speaker: Speaker::Agent,
                    text,
                } => InitialItem::assistant(text.as_str()),
                ContextItem::ToolCall {
                    name, arguments, ..
                } => InitialItem::developer(format!(
                    "The backend called the tool {name} with the arguments {arguments}."
                )),
                ContextItem::ToolOutput { output, .. } => {
                    InitialItem::developer(format!("The tool returned: {output}"))
                }
                ContextItem::Note { text } => InitialItem::developer(text.as_str()),
            };
            (!message.text.trim().is_empty()).then_some(message)
        })
        .collect();
    items.push(InitialItem::developer(REPLAY_NOTE));
    let tokens = |item: &InitialItem| {
        item.text.chars().count().div_ceil(CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE
    };
    let mut total: usize = items.iter().map(tokens).sum();
    let mut dropped = 0;
    // The note (last) always stays.
    while items.len() > 1 && (items.len() > MAX_INPUT_ITEMS || total > MAX_INPUT_TOKENS) {
        total -= tokens(&items[0]);
        items.remove(0);
        dropped += 1;
    }
    (items, dropped)
}

/// The billed voice seconds of a call's GPT-Live sessions. Each session reports cumulative
/// seconds of its own; a call with reconnects or recycles has several. The adapter reports
/// `settled + this session's seconds` (so the engine's replace-the-snapshot rule gives the
/// call's total) and settles each session when it ends: its final usage from
/// `session.closed` (also when that arrives after our `session.close`, during teardown, when
/// the call's summary is already made: the server reads [`LiveBilling::settled`] then), or
/// the last `session.usage.updated` (unconfirmed) when the session was lost.
#[derive(Debug, Default)]
pub struct LiveBilling {
    settled: std::sync::Mutex<Option<f64>>,
}

impl LiveBilling {
    /// Seconds of the sessions that ended, if any reported usage.
    pub fn settled(&self) -> Option<f64> {
        *self.settled.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn base(&self) -> f64 {
        self.settled().unwrap_or(0.0)
    }

    fn settle(&self, seconds: f64) {
        let mut settled = self.settled.lock().unwrap_or_else(|e| e.into_inner());
        *settled = Some(settled.unwrap_or(0.0) + seconds);
    }
}

/// A final transcript line that became complete at a session's teardown (after the engine
/// stopped reading): fragments that came after our `session.close`, and the lines still being
/// assembled then. The server adds them to the call's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateLine {
    /// Who spoke.
    pub speaker: Speaker,
    /// The line.
    pub text: String,
    /// Its position on the session's timeline.
    pub timing: Option<TranscriptTiming>,
    /// When it became final (Unix epoch milliseconds).
    pub at_ms: i64,
}

/// The lines a call's GPT-Live sessions completed at their teardown, for the record
/// ([`LateLine`]); shared like [`LiveBilling`] (several sessions per call with reconnects).
#[derive(Debug, Default)]
pub struct LateLines {
    lines: std::sync::Mutex<Vec<LateLine>>,
}

impl LateLines {
    /// Takes the lines collected so far, oldest first.
    pub fn take(&self) -> Vec<LateLine> {
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, line: LateLine) {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }
}

/// How one GPT-Live session of a call is opened, besides the `[live]` settings.
#[derive(Debug, Clone)]
pub struct LivePlan {
    /// The `session.start` (its `input` is filled from the replayed conversation).
    pub session: SessionConfig,
    /// This session replaces an earlier one of the same call (a reconnect or a recycle): it
    /// starts with the conversation the engine restores, and text the engine asks to be said
    /// (the resume instructions) goes as `session.instructions.append`, not as a line.
    pub replaces: bool,
    /// Lost sessions are reconnected (`[reconnect]` on): `session.closed` `expired` is then a
    /// loss to reconnect from, not the end of the call.
    pub reconnects: bool,
    /// Replace the session at a pause before it expires ([`AgentEvent::RecycleNow`]) instead
    /// of ending the call with the wrap-up line (which stays the fallback).
    pub recycle: bool,
    /// When the call reaches `agent.max_call_secs`: the wrap-up line ends it then.
    pub call_deadline: Instant,
    /// The call's billed seconds across its sessions.
    pub billing: Arc<LiveBilling>,
    /// Transcript lines completed at the teardown of the call's sessions.
    pub late_lines: Arc<LateLines>,
    /// The call's MCP counts, when the delegation carries MCP servers.
    pub mcp: Option<Arc<McpStats>>,
}

/// The `session.start` for one call. `mcp_tools` (the profile's `{"type":"mcp",…}` tools, with
/// their secrets: never log the result) go into `delegation.responses.tools` after the
/// functions; [`check_startup`] allows them only with `live.mcp_servers` on and responses
/// delegation.
pub fn session_config(
    live: &LiveConfig,
    instructions: String,
    tools: &[ToolDefinition],
    mcp_tools: &[serde_json::Value],
) -> Result<SessionConfig, String> {
    let mut builder = SessionConfigBuilder::from(SessionConfig::telephony(
        live.model.as_str(),
        instructions,
        live.voice.as_str(),
    ));
    builder = match live.delegation {
        LiveDelegation::Client => builder.delegation(Delegation::client()),
        LiveDelegation::Responses => {
            let mut backend = ResponsesDelegationConfig::new(live.backend_model.as_str());
            if let Some(instructions) = &live.backend_instructions {
                backend = backend.with_instructions(instructions.as_str());
            }
            if !tools.is_empty() || !mcp_tools.is_empty() {
                backend = backend
                    .with_tools(
                        tools
                            .iter()
                            .map(|t| {
                                FunctionTool::new(t.name.as_str())
                                    .with_description(t.description.as_str())
                                    .with_parameters(t.parameters.clone())
                                    .into()
                            })
                            .chain(mcp_tools.iter().cloned().map(lv::Tool::Raw)),
                    )
                    .with_parallel_tool_calls(false);
            }
            builder.delegation(Delegation::responses(backend))
        }
    };
    builder.build().map_err(|e| e.to_string())
}

/// Startup checks of the `[live]` settings against a profile's tools and MCP servers: the
/// session config builds; in client delegation the client tool exists; MCP servers only with
/// `live.mcp_servers` on (the guide documents only `function` and `web_search` tools in a
/// delegation), only under responses delegation (client delegation has no OpenAI backend to
/// call them) and only with `require_approval = "never"` (the bridge answers no approval
/// requests on GPT-Live).
pub fn check_startup(
    live: &LiveConfig,
    definitions: &[bridge_core::tools::ToolDefinition],
    mcp_servers: &[McpServer],
) -> Result<(), String> {
    if !mcp_servers.is_empty() {
        let labels = mcp_servers
            .iter()
            .map(|m| m.label.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if !live.mcp_servers {
            return Err(format!(
                "MCP servers ({labels}) are configured, but GPT-Live takes them into its \
                 delegation only with live.mcp_servers = true (the GPT-Live guide documents only \
                 function and web_search tools there; see docs/gpt-live.md): turn it on, or give \
                 the profile mcp_servers = []"
            ));
        }
        if live.delegation == LiveDelegation::Client {
            return Err(format!(
                "MCP servers ({labels}) need live.delegation = \"responses\": under client \
                 delegation no OpenAI backend runs that could call them"
            ));
        }
        if let Some(m) = mcp_servers
            .iter()
            .find(|m| m.require_approval != McpApproval::Never)
        {
            return Err(format!(
                "MCP server {:?}: GPT-Live delegation needs require_approval = \"never\" (the \
                 bridge does not answer MCP approval requests from a delegated backend)",
                m.label
            ));
        }
    }
    let mcp_tools: Vec<serde_json::Value> = if live.mcp_servers {
        mcp_servers.iter().map(McpServer::session_tool).collect()
    } else {
        Vec::new()
    };
    session_config(live, String::new(), definitions, &mcp_tools)?;
    if let Some(tool) = &live.client_tool
        && live.delegation == LiveDelegation::Client
        && !definitions.iter().any(|d| &d.name == tool)
    {
        return Err(format!(
            "live.client_tool = {tool:?} is not one of the configured tools ({})",
            definitions
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

/// What the adapter keeps from `session.started`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedSession {
    /// The opaque session id (`live_…`, `rtc_…`, …), byte-exact.
    pub id: String,
    /// Unix seconds at which the session expires.
    pub expires_at: i64,
}

/// A transcript line being assembled from fragments.
#[derive(Debug, Default)]
struct Line {
    text: String,
    start_ms: i64,
    end_ms: i64,
}

/// Turns GPT-Live server events into [`AgentEvent`]s: the per-message half of [`LiveAgent`]
/// without the socket (unit-testable). It also holds the session's tool bookkeeping.
#[derive(Debug)]
pub struct LiveDecoder {
    mode: LiveDelegation,
    client_tool: Option<String>,
    started: Option<StartedSession>,
    /// `session.closed` has been seen (its reason is final).
    closed: bool,
    skipped: u64,
    /// Responses delegation: calls reported and not answered yet.
    pending_calls: HashSet<String>,
    /// Responses delegation: outputs sent since the last `response.create`.
    outputs_since_create: usize,
    /// Responses delegation: a `response.create` is due once every call is answered.
    create_wanted: bool,
    /// Responses delegation: our `response.create` was sent and its backend response has not
    /// ended yet; when it ends, what it produced is handed to the voice model to say. Holds
    /// the backend response that was running before (whose own late end does not count).
    continuing: Option<Option<String>>,
    /// The backend response whose lifecycle was seen last.
    last_response: Option<String>,
    /// A line to be said went out as commentary: [`AgentEvent::SpeechQueued`] is due.
    speech_queued: bool,
    /// Client delegation: delegations handed to the client tool, not answered yet.
    client_delegations: HashSet<String>,
    /// Backend responses whose usage was counted.
    counted: HashSet<String>,
    /// The call's MCP counts, when the delegation has MCP servers (`live.mcp_servers`).
    mcp: Option<Arc<McpStats>>,
    lines: [Line; 2],
    history: VecDeque<(Speaker, String)>,
    /// `session.closed` `expired` is a loss (reconnects on), not a final close.
    expired_is_loss: bool,
    /// The session replaces an earlier one: text to be said is an instruction (the resume).
    replaces: bool,
    /// The session was lost (`session.closed` `connection_lost`, or `expired` with
    /// reconnects): reported as a transport error once the events before it are out.
    lost: Option<String>,
    /// Billed seconds of the call's earlier sessions, added to this session's reports.
    billed_base: f64,
    /// This session's latest cumulative seconds, and whether `session.closed` confirmed them.
    billed: Option<(f64, bool)>,
}

impl LiveDecoder {
    /// A decoder for a session in delegation `mode`; `client_tool` answers client delegations.
    pub fn new(mode: LiveDelegation, client_tool: Option<String>) -> Self {
        LiveDecoder {
            mode,
            client_tool,
            started: None,
            closed: false,
            skipped: 0,
            pending_calls: HashSet::new(),
            outputs_since_create: 0,
            create_wanted: false,
            continuing: None,
            last_response: None,
            speech_queued: false,
            client_delegations: HashSet::new(),
            counted: HashSet::new(),
            mcp: None,
            lines: [Line::default(), Line::default()],
            history: VecDeque::new(),
            expired_is_loss: false,
            replaces: false,
            lost: None,
            billed_base: 0.0,
            billed: None,
        }
    }

    /// Counts the backend's MCP activity into `stats` (the delegation has MCP servers).
    pub fn with_mcp(mut self, stats: Option<Arc<McpStats>>) -> Self {
        self.mcp = stats;
        self
    }

    /// Adds `base` seconds (the call's earlier sessions) to the usage this session reports.
    pub fn with_billed_base(mut self, base: f64) -> Self {
        self.billed_base = base;
        self
    }

    /// This session's latest billed seconds and whether `session.closed` confirmed them.
    pub fn billed(&self) -> Option<(f64, bool)> {
        self.billed
    }

    fn usage_seconds(&mut self, seconds: f64, confirmed: bool, out: &mut VecDeque<AgentEvent>) {
        self.billed = Some((seconds, confirmed));
        out.push_back(AgentEvent::Usage(Usage {
            billed_seconds: Some(self.billed_base + seconds),
            ..Usage::default()
        }));
    }

    /// Treats `session.closed` `expired` as a loss to reconnect from (`[reconnect]` on).
    pub fn with_expired_as_loss(mut self, on: bool) -> Self {
        self.expired_is_loss = on;
        self
    }

    /// The session replaces an earlier one of the call: a `CreateResponse` with text (the
    /// resume instructions) goes as `session.instructions.append`.
    pub fn replacing(mut self, on: bool) -> Self {
        self.replaces = on;
        self
    }

    /// Whether a line to be said went out as commentary since the last call (the endpoint
    /// then reports [`AgentEvent::SpeechQueued`]).
    pub fn take_speech_queued(&mut self) -> bool {
        std::mem::take(&mut self.speech_queued)
    }

    /// Whether the session was lost (see [`LiveDecoder::with_expired_as_loss`]); taken once.
    pub fn take_lost(&mut self) -> Option<String> {
        self.lost.take()
    }

    /// No backend call or client delegation is waiting for its answer.
    pub fn nothing_delegated(&self) -> bool {
        self.pending_calls.is_empty() && self.client_delegations.is_empty()
    }

    /// The session, once started.
    pub fn started(&self) -> Option<&StartedSession> {
        self.started.as_ref()
    }

    /// Whether `session.closed` was seen.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Events skipped because they could not be parsed.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn slot(speaker: Speaker) -> usize {
        match speaker {
            Speaker::Caller => 0,
            Speaker::Agent => 1,
        }
    }

    fn fragment(
        &mut self,
        speaker: Speaker,
        delta: &lv::TranscriptDelta<'_>,
        out: &mut VecDeque<AgentEvent>,
    ) {
        let line = &mut self.lines[Self::slot(speaker)];
        if !line.text.is_empty() && delta.start_ms - line.end_ms > LINE_GAP_MS {
            self.finish_line(speaker, out);
        }
        let line = &mut self.lines[Self::slot(speaker)];
        if line.text.is_empty() {
            line.start_ms = delta.start_ms;
        }
        line.text.push_str(&delta.delta);
        line.end_ms = line.end_ms.max(delta.end_ms);
        out.push_back(AgentEvent::Transcript {
            speaker,
            text: delta.delta.clone().into_owned(),
            is_final: false,
            timing: Some(TranscriptTiming {
                start_ms: delta.start_ms,
                end_ms: delta.end_ms,
            }),
            item_id: None,
        });
    }

    fn finish_line(&mut self, speaker: Speaker, out: &mut VecDeque<AgentEvent>) {
        let line = std::mem::take(&mut self.lines[Self::slot(speaker)]);
        let text = line.text.trim().to_owned();
        if text.is_empty() {
            return;
        }
        if self.history.len() == CONTEXT_LINES {
            self.history.pop_front();
        }
        self.history.push_back((speaker, text.clone()));
        out.push_back(AgentEvent::Transcript {
            speaker,
            text,
            is_final: true,
            timing: Some(TranscriptTiming {
                start_ms: line.start_ms,
                end_ms: line.end_ms,
            }),
            item_id: None,
        });
    }

    /// Emits the lines still being assembled (at the end of the session).
    pub fn finish_lines(&mut self, out: &mut VecDeque<AgentEvent>) {
        self.finish_line(Speaker::Caller, out);
        self.finish_line(Speaker::Agent, out);
    }

    fn skip(&mut self, error: &dyn std::fmt::Display) {
        self.skipped += 1;
        crate::telemetry::error("openai_event_unparsed");
        if self.skipped == 1 {
            tracing::warn!(error = %error, "skipping a GPT-Live event we could not parse (further ones at debug)");
        } else {
            tracing::debug!(error = %error, "skipping a GPT-Live event we could not parse");
        }
    }

    /// Maps one server event (a text message) to zero or more seam events, pushed to `out`.
    pub fn decode(&mut self, text: &Utf8Bytes, out: &mut VecDeque<AgentEvent>) {
        let event = match ServerEvent::parse(text.as_str()) {
            Ok(event) => event,
            Err(e) => return self.skip(&e),
        };
        match event {
            ServerEvent::OutputAudioDelta(delta) => {
                let audio = match &delta.delta {
                    std::borrow::Cow::Borrowed(b64) => {
                        let frame = Bytes::from(text.clone());
                        Base64Audio::from_shared(frame.slice_ref(b64.as_bytes()))
                    }
                    std::borrow::Cow::Owned(b64) => Base64Audio::from_text(b64),
                };
                match audio {
                    Ok(audio) => out.push_back(AgentEvent::Audio {
                        audio,
                        response_id: None,
                        item_id: None,
                    }),
                    Err(e) => {
                        crate::telemetry::error("openai_bad_audio");
                        tracing::debug!(error = %e, "skipping a GPT-Live audio delta with a bad payload");
                    }
                }
            }
            ServerEvent::SessionStarted(started) => self.on_started(&started.session, out),
            ServerEvent::InputTranscriptDelta(delta) => self.fragment(Speaker::Caller, &delta, out),
            ServerEvent::OutputTranscriptDelta(delta) => self.fragment(Speaker::Agent, &delta, out),
            ServerEvent::UsageUpdated(usage) => self.usage_seconds(usage.usage.seconds, false, out),
            ServerEvent::DelegationCreated(created) => self.on_delegation(&created, out),
            ServerEvent::ResponseEvent(event) => self.on_response_event(&event, out),
            ServerEvent::SessionClosed(closed) => {
                self.closed = true;
                self.finish_lines(out);
                if let Some(usage) = closed.usage {
                    self.usage_seconds(usage.seconds, true, out);
                }
                tracing::info!(
                    session_id = self.started.as_ref().map_or("", |s| s.id.as_str()),
                    reason = closed.reason.as_str(),
                    billed_seconds = closed.usage.map(|u| u.seconds),
                    "GPT-Live session closed"
                );
                let reason = &closed.reason;
                if *reason == CloseReason::CONNECTION_LOST
                    || (*reason == CloseReason::EXPIRED && self.expired_is_loss)
                {
                    self.lost = Some(format!(
                        "GPT-Live session lost (session.closed: {})",
                        reason.as_str()
                    ));
                } else {
                    out.push_back(closed_event(reason));
                }
            }
            ServerEvent::Error(error) => {
                let code = error.code().map(|c| c.as_str().to_owned());
                let fatal = self.started.is_none();
                if fatal {
                    tracing::warn!(code = ?code, message = %error.error.message, "GPT-Live refused the session");
                }
                out.push_back(AgentEvent::Error {
                    message: match &code {
                        Some(code) => format!("GPT-Live error {code}: {}", error.error.message),
                        None => format!("GPT-Live error: {}", error.error.message),
                    },
                    code,
                    fatal,
                });
            }
            ServerEvent::InstructionsAppended(ack)
            | ServerEvent::ThinkingAppended(ack)
            | ServerEvent::CommentaryAppended(ack) => tracing::debug!(
                client_event_id = ?ack.client_event_id,
                start_ms = ack.start_ms,
                "GPT-Live context appended"
            ),
            ServerEvent::Unknown { event_type, .. } => {
                tracing::debug!(event_type, "unknown GPT-Live event")
            }
            other => tracing::trace!(event = ?std::mem::discriminant(&other), "GPT-Live event"),
        }
    }

    fn on_started(&mut self, session: &lv::SessionResource, out: &mut VecDeque<AgentEvent>) {
        if self.started.is_some() {
            return;
        }
        if let Some(format) = session.audio_format()
            && format != lv::AudioFormat::Pcmu
        {
            out.push_back(AgentEvent::Error {
                code: Some("audio_format_mismatch".into()),
                message: format!(
                    "GPT-Live started the session with {} audio instead of audio/pcmu at 8000 Hz",
                    format.mime_type()
                ),
                fatal: true,
            });
            return;
        }
        tracing::info!(
            session_id = %session.id,
            expires_at = session.expires_at,
            model = %session.model,
            "GPT-Live session started"
        );
        self.started = Some(StartedSession {
            id: session.id.clone(),
            expires_at: session.expires_at,
        });
        out.push_back(AgentEvent::Ready);
    }

    fn on_delegation(&mut self, created: &lv::DelegationCreated, out: &mut VecDeque<AgentEvent>) {
        let info = &created.delegation;
        tracing::debug!(delegation_id = %info.id, target = info.target.as_str(), offset_ms = created.offset_ms, "GPT-Live delegation");
        if info.target.as_str() != "client" {
            return;
        }
        let Some(tool) = &self.client_tool else {
            tracing::warn!(delegation_id = %info.id, "client delegation without a client tool configured (live.client_tool); it stays unanswered");
            return;
        };
        let transcript: Vec<serde_json::Value> = self
            .history
            .iter()
            .chain(
                [Speaker::Caller, Speaker::Agent]
                    .iter()
                    .zip(&self.lines)
                    .filter(|(_, l)| !l.text.trim().is_empty())
                    .map(|(s, l)| (*s, l.text.trim().to_owned()))
                    .collect::<Vec<_>>()
                    .iter(),
            )
            .map(|(speaker, text)| {
                serde_json::json!({
                    "speaker": speaker.as_str(),
                    "text": text,
                })
            })
            .collect();
        self.client_delegations.insert(info.id.clone());
        out.push_back(AgentEvent::ToolCall(ToolCallRequest {
            call_id: info.id.clone(),
            name: tool.clone(),
            arguments: serde_json::json!({
                "delegation_id": info.id,
                "offset_ms": created.offset_ms,
                "transcript": transcript,
            })
            .to_string(),
            response_id: None,
        }));
    }

    fn on_response_event(&mut self, event: &lv::ResponseEvent, out: &mut VecDeque<AgentEvent>) {
        if let Some(call) = event.function_call() {
            if self.pending_calls.insert(call.call_id.to_owned()) {
                out.push_back(AgentEvent::ToolCall(ToolCallRequest {
                    call_id: call.call_id.to_owned(),
                    name: call.name.to_owned(),
                    arguments: call.arguments.to_owned(),
                    response_id: None,
                }));
            }
            return;
        }
        if let (Some(usage), Some(id)) = (event.usage(), event.response_id())
            && self.counted.insert(id.to_owned())
        {
            out.push_back(AgentEvent::Usage(Usage {
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                ..Usage::default()
            }));
        }
        if event.event_type() == Some("response.output_item.done")
            && event.event.pointer("/item/type").and_then(|t| t.as_str())
                == Some("mcp_approval_request")
        {
            crate::telemetry::error("live_mcp_approval_unanswered");
            tracing::warn!(
                server = ?event.event.pointer("/item/server_label"),
                tool = ?event.event.pointer("/item/name"),
                "GPT-Live backend asked to approve an MCP call; not answered \
                 (require_approval = \"never\" is required for GPT-Live)"
            );
        }
        if event.event_type() == Some("response.failed") {
            tracing::info!(response_id = ?event.response_id(), "GPT-Live backend response failed");
        }
        if let Some(stats) = &self.mcp {
            self.on_mcp_event(stats, event);
        }
        let id = event.response_id();
        match event.event_type() {
            Some("response.created" | "response.in_progress") => {
                self.last_response = id.map(str::to_owned);
            }
            Some("response.completed" | "response.failed" | "response.incomplete")
                if self
                    .continuing
                    .as_ref()
                    .is_some_and(|before| before.as_deref() != id) =>
            {
                // The continuation after our tool results ended: the voice model says its
                // result from here (a pending goodbye is measured from now).
                self.continuing = None;
                out.push_back(AgentEvent::SpeechQueued);
            }
            _ => {}
        }
    }

    /// The backend's MCP events (OpenAI runs the calls; the bridge observes and counts, as on
    /// the Realtime path).
    fn on_mcp_event(&self, stats: &McpStats, event: &lv::ResponseEvent) {
        let item_id = event.event.get("item_id").and_then(|i| i.as_str());
        match event.event_type() {
            Some("mcp_list_tools.completed") => {
                McpStats::bump(&stats.lists_completed);
                tracing::info!(item_id, "MCP tools listed (GPT-Live backend)");
            }
            Some("mcp_list_tools.failed") => {
                McpStats::bump(&stats.lists_failed);
                crate::telemetry::error("mcp_list_tools");
                tracing::warn!(
                    item_id,
                    "listing an MCP server's tools failed (GPT-Live backend)"
                );
            }
            Some("response.mcp_call.completed") => {
                McpStats::bump(&stats.calls_completed);
                crate::telemetry::tool_call("mcp", "ok");
                tracing::info!(item_id, "MCP call completed (GPT-Live backend)");
            }
            Some("response.mcp_call.failed") => {
                McpStats::bump(&stats.calls_failed);
                crate::telemetry::tool_call("mcp", "error");
                tracing::warn!(item_id, "MCP call failed (GPT-Live backend)");
            }
            _ => {}
        }
    }

    /// The messages for one command (none for commands GPT-Live has no use for). `Close` is
    /// handled by the endpoint, not here.
    pub fn encode(&mut self, command: AgentCommand, out: &mut Vec<String>) {
        match command {
            AgentCommand::Audio(audio) => {
                let mut frame = String::with_capacity(audio.text_len() + 48);
                write_input_audio_append(&mut frame, audio.as_str());
                out.push(frame);
            }
            AgentCommand::ToolResult { call_id, output } => {
                if self.pending_calls.remove(&call_id) {
                    out.push(ClientEvent::function_call_output(call_id, output).to_json());
                    self.outputs_since_create += 1;
                    if self.create_wanted && self.pending_calls.is_empty() {
                        self.create_wanted = false;
                        self.outputs_since_create = 0;
                        self.continuing = Some(self.last_response.clone());
                        out.push(ClientEvent::response_create().to_json());
                    }
                } else if self.client_delegations.remove(&call_id) {
                    out.push(
                        ClientEvent::commentary_append(clip(&output), Some(call_id.into()))
                            .to_json(),
                    );
                    self.speech_queued = true;
                } else {
                    tracing::debug!(call_id, "tool result for no pending GPT-Live call");
                }
            }
            AgentCommand::CreateResponse {
                instructions: Some(text),
            } if self.replaces => {
                // The resume after a reconnect: direction for the model, not a line to say.
                out.push(ClientEvent::instructions_append(clip(&text), None).to_json());
            }
            AgentCommand::CreateResponse {
                instructions: Some(text),
            } => {
                // The greeting: said aloud, verbatim, once the session has started.
                out.push(ClientEvent::commentary_append(clip(&text), None).to_json());
                self.speech_queued = true;
            }
            AgentCommand::CreateResponse { instructions: None } => {
                if self.mode == LiveDelegation::Responses && self.outputs_since_create > 0 {
                    if self.pending_calls.is_empty() {
                        self.outputs_since_create = 0;
                        self.continuing = Some(self.last_response.clone());
                        out.push(ClientEvent::response_create().to_json());
                    } else {
                        self.create_wanted = true;
                    }
                }
            }
            AgentCommand::AddContext { text } => {
                out.push(ClientEvent::thinking_append(clip(&text), None).to_json());
            }
            // GPT-Live takes history only in `session.start`: restored entries are collected
            // by the endpoint before the start (`restore_at_start`), never sent mid-session.
            AgentCommand::Truncate { .. }
            | AgentCommand::CancelResponse { .. }
            | AgentCommand::Restore(_)
            | AgentCommand::Close => {}
        }
    }
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_APPEND_CHARS) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// The seam event for a `session.closed` reason.
pub fn closed_event(reason: &CloseReason) -> AgentEvent {
    if *reason == CloseReason::CONNECTION_LOST {
        return AgentEvent::Error {
            code: Some(reason.as_str().to_owned()),
            message: "GPT-Live lost its connection (session.closed: connection_lost)".into(),
            fatal: true,
        };
    }
    let what = if *reason == CloseReason::EXPIRED {
        "the session expired"
    } else if *reason == CloseReason::CONTENT {
        "a safety filter ended the session"
    } else if *reason == CloseReason::REMOTE_HANGUP {
        "the remote connection hung up"
    } else if *reason == CloseReason::CLOSE_REQUESTED {
        "the session was closed on request"
    } else {
        "the session closed"
    };
    AgentEvent::Closed {
        reason: format!("GPT-Live: {what} ({})", reason.as_str()),
    }
}

/// The seam event for a WebSocket close frame that came without `session.closed`.
pub fn close_frame_event(
    reason: Option<&openai_realtime::client::CloseReason>,
    started: bool,
) -> AgentEvent {
    let code = reason.map(|r| r.code);
    let text = reason.map_or_else(|| "no status".to_owned(), |r| r.to_string());
    match code {
        Some(1000 | 1001) | None if started => AgentEvent::Closed {
            reason: format!("GPT-Live closed the socket without session.closed ({text})"),
        },
        _ => AgentEvent::Error {
            code: code.map(|c| format!("websocket_close_{c}")),
            message: format!("GPT-Live closed the socket ({text})"),
            fatal: true,
        },
    }
}

/// Whether μ-law audio is (near) silence: every sample in the quietest segment (|x| below
/// about −48 dBFS; exact digital silence is `0xFF`/`0x7F`).
pub fn is_silence(mulaw: &[u8]) -> bool {
    mulaw.iter().all(|&b| b & 0x70 == 0x70)
}

/// μ-law silence filling a gap of `ms` in Twilio's stream (whole 20 ms frames).
fn silence_append(ms: u64) -> String {
    let bytes = (ms / 20).clamp(1, 50) as usize * 160;
    let audio = Base64Audio::encode(&vec![0xFF; bytes]);
    let mut frame = String::with_capacity(audio.text_len() + 48);
    write_input_audio_append(&mut frame, audio.as_str());
    frame
}

/// Where the session-lifetime wrap-up stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WrapUp {
    /// Not armed (session not started yet, or no limit).
    Idle,
    /// Waiting for the recycling window to open (`expires_at − live.recycle_before`).
    RecycleAt,
    /// The window is open: at the next pause the engine is asked to recycle the session
    /// ([`AgentEvent::RecycleNow`]); the timer is armed for the wrap-up line as the fallback.
    Recycling,
    /// Waiting for the moment to say the line.
    Armed,
    /// The line was appended; the session ends when the timer fires again.
    Said,
    /// Done.
    Over,
}

/// The GPT-Live agent endpoint.
pub struct LiveAgent {
    /// The socket, unsplit: this one task reads and writes it (no lock between directions).
    connection: Connection,
    decoder: LiveDecoder,
    settings: Arc<LiveConfig>,
    queued: VecDeque<AgentEvent>,
    outgoing: Vec<String>,
    clock: Arc<RelayClock>,
    audio_fed: bool,
    closed: bool,
    /// Caller audio was fed since the last gap check.
    fed_since_check: bool,
    /// Caller audio was ever fed: the session relays the call (a recycle's standby does not
    /// yet; its silence is not a gap in Twilio's stream and is not counted as one).
    relaying: bool,
    gap_check: Interval,
    last_check: Instant,
    /// Queued by `poll_recv` (`session.start`, gap silence, wrap-up line), not flushed yet.
    needs_flush: bool,
    connected_at: Instant,
    wrap_up: WrapUp,
    wrap_up_timer: Pin<Box<Sleep>>,
    /// Output lead: when the first agent audio arrived, and how much has been forwarded since.
    output: Option<(Instant, Duration)>,
    /// The `session.start` not sent yet: it goes out at the first `poll_flush` or `poll_recv`, with the
    /// conversation restored before it (`restore_at_start`).
    start: Option<SessionConfig>,
    restored: Vec<ContextItem>,
    /// A loss to report once the events before it are out; then the stream ends.
    pending_error: Option<EndpointError>,
    failed: bool,
    plan_recycle: bool,
    call_deadline: Instant,
    /// Last transcript fragment (either side) and last non-silent output while recycling.
    last_activity: Instant,
    /// When the engine was last asked to recycle.
    recycle_asked: Option<Instant>,
    /// When the wrap-up line is due (set when the session starts).
    wrap_up_at: Instant,
    billing: Arc<LiveBilling>,
    /// This session's seconds were added to `billing`.
    settled: bool,
    late_lines: Arc<LateLines>,
}

impl std::fmt::Debug for LiveAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveAgent")
            .field("started", &self.decoder.started)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn transport(e: TransportError) -> EndpointError {
    match e {
        TransportError::Closed => EndpointError::Closed("GPT-Live connection closed".into()),
        other => EndpointError::Transport(other.to_string()),
    }
}

impl LiveAgent {
    /// Connects. `session.start` follows at the endpoint's first `poll_flush` or `poll_recv` (after
    /// the engine's [`AgentCommand::Restore`] entries, for a session that replaces another);
    /// `Ready` follows as an event on `session.started`. A refusal that retrying cannot fix
    /// (401/403/404, TLS) is [`EndpointError::Protocol`], never retried.
    pub async fn connect(
        endpoint: &Endpoint,
        settings: Arc<LiveConfig>,
        plan: LivePlan,
        clock: Arc<RelayClock>,
    ) -> Result<Self, EndpointError> {
        let mut connection = endpoint.connect(&Target::live()).await.map_err(|e| {
            if e.is_transient() {
                EndpointError::Transport(format!("connecting to GPT-Live: {e}"))
            } else {
                crate::telemetry::error("agent_connect_permanent");
                tracing::error!(
                    error = %e,
                    "GPT-Live refused the connection permanently (not retried): check \
                     OPENAI_API_KEY and OPENAI_BASE_URL"
                );
                EndpointError::Protocol(format!("GPT-Live refused the connection (permanent): {e}"))
            }
        })?;
        // Taken, not borrowed: the connection then holds no URL or request id for the call.
        let info = connection.take_info();
        tracing::debug!(
            attempts = info.attempts(),
            request_id = info.request_id(),
            "connected to GPT-Live"
        );
        let mut gap_check = tokio::time::interval(GAP_CHECK);
        gap_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let now = Instant::now();
        Ok(LiveAgent {
            connection,
            decoder: LiveDecoder::new(settings.delegation, settings.client_tool.clone())
                .with_expired_as_loss(plan.reconnects)
                .replacing(plan.replaces)
                .with_mcp(plan.mcp)
                .with_billed_base(plan.billing.base()),
            settings,
            queued: VecDeque::new(),
            outgoing: Vec::new(),
            clock,
            audio_fed: false,
            closed: false,
            fed_since_check: true,
            relaying: false,
            gap_check,
            last_check: now,
            needs_flush: false,
            connected_at: now,
            wrap_up: WrapUp::Idle,
            wrap_up_timer: Box::pin(tokio::time::sleep_until(now)),
            output: None,
            start: Some(plan.session),
            restored: Vec::new(),
            pending_error: None,
            failed: false,
            plan_recycle: plan.recycle,
            call_deadline: plan.call_deadline,
            last_activity: now,
            recycle_asked: None,
            wrap_up_at: now,
            billing: plan.billing,
            settled: false,
            late_lines: plan.late_lines,
        })
    }

    /// Adds this session's billed seconds to the call's, once (at its end).
    fn settle_billing(&mut self) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        if let Some((seconds, confirmed)) = self.decoder.billed() {
            if !confirmed {
                tracing::info!(
                    billed_seconds = seconds,
                    "GPT-Live session ended without session.closed: final usage unconfirmed"
                );
            }
            self.billing.settle(seconds);
        }
    }

    /// Queues `session.start` if it has not been sent, with the restored conversation as its
    /// `input`; it leaves with the next flush.
    fn queue_start(&mut self) {
        let Some(mut session) = self.start.take() else {
            return;
        };
        if !self.restored.is_empty() || self.decoder.replaces {
            let (input, dropped) = replay_input(&self.restored);
            if dropped > 0 {
                tracing::info!(
                    dropped,
                    kept = input.len(),
                    "GPT-Live history cap: oldest replayed entries dropped"
                );
            }
            session.input = input;
            self.restored = Vec::new();
        }
        self.connection
            .queue_text(ClientEvent::session_start(session).to_json());
        self.needs_flush = true;
    }

    /// The session has not been started yet (`session.start` not queued).
    fn start_pending(&self) -> bool {
        self.start.is_some()
    }

    /// The session id and expiry, once started.
    pub fn session(&self) -> Option<&StartedSession> {
        self.decoder.started()
    }

    /// Keeps Twilio's queue short. GPT-Live's output is clocked by its input, so a burst of
    /// input (the caller audio held until `session.started`, flushed at once) gives a burst of
    /// output that would otherwise sit in Twilio's queue for the whole call and delay the
    /// model's own stop by as much. While the audio forwarded so far is more than
    /// [`MAX_OUTPUT_LEAD`] ahead of real time, silent deltas among the events from `from` on
    /// are dropped. On the normal path this costs one clock read per delta; deltas are only
    /// decoded while the lead is too long.
    fn keep_lead_short(&mut self, from: usize) {
        let now = Instant::now();
        let (first, forwarded) = self.output.get_or_insert((now, Duration::ZERO));
        let first = *first;
        let mut i = from;
        while i < self.queued.len() {
            let AgentEvent::Audio { audio, .. } = &self.queued[i] else {
                i += 1;
                continue;
            };
            let duration = AudioFormat::Mulaw8k.samples_to_duration(audio.decoded_len() as u64);
            let lead = forwarded.saturating_sub(now.duration_since(first));
            if lead > MAX_OUTPUT_LEAD && audio.decode().is_ok_and(|b| is_silence(&b)) {
                tracing::debug!(
                    lead_ms = lead.as_millis() as u64,
                    "dropping silent GPT-Live output to keep Twilio's queue short"
                );
                self.queued.remove(i);
                continue;
            }
            *forwarded += duration;
            i += 1;
        }
    }

    /// Arms the session's end: the wrap-up line at the earliest of `expires_at −
    /// live.wrap_up_before`, the cap (`live.session_cap` after connecting) minus the same and
    /// the call's deadline; before it, when recycling is on and the session (not the call)
    /// ends first, the recycling window from `live.recycle_before` before the session's end.
    fn arm_wrap_up(&mut self) {
        let Some(started) = self.decoder.started() else {
            return;
        };
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let left = u64::try_from(started.expires_at - now_unix).unwrap_or(0);
        let now = Instant::now();
        let session_end =
            (now + Duration::from_secs(left)).min(self.connected_at + self.settings.session_cap);
        let at = session_end
            .checked_sub(self.settings.wrap_up_before)
            .unwrap_or(now)
            .min(self.call_deadline)
            .max(now);
        self.wrap_up_at = at;
        let recycle_at = session_end
            .checked_sub(self.settings.recycle_before)
            .unwrap_or(now)
            .max(now);
        if self.plan_recycle && recycle_at < at && at < self.call_deadline {
            tracing::debug!(
                in_secs = (recycle_at - now).as_secs(),
                wrap_up_in_secs = (at - now).as_secs(),
                "GPT-Live recycling armed"
            );
            self.wrap_up_timer.as_mut().reset(recycle_at);
            self.wrap_up = WrapUp::RecycleAt;
            return;
        }
        tracing::debug!(in_secs = (at - now).as_secs(), "GPT-Live wrap-up armed");
        self.wrap_up_timer.as_mut().reset(at);
        self.wrap_up = WrapUp::Armed;
    }

    /// While the recycling window is open: at a pause (no transcript fragment and no speech
    /// in the output for [`RECYCLE_PAUSE`], nothing delegated), ask the engine to recycle,
    /// at most once per pause length.
    fn maybe_ask_recycle(&mut self) {
        if self.wrap_up != WrapUp::Recycling || !self.decoder.nothing_delegated() {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.last_activity) < RECYCLE_PAUSE
            || self
                .recycle_asked
                .is_some_and(|t| now.duration_since(t) < RECYCLE_PAUSE)
        {
            return;
        }
        tracing::info!("GPT-Live session near its expiry, at a pause: asking to recycle it");
        self.recycle_asked = Some(now);
        // The lines so far are complete (a pause is longer than a line gap): the engine keeps
        // them for the replay.
        let mut out = VecDeque::new();
        self.decoder.finish_lines(&mut out);
        self.queued.extend(out);
        self.queued.push_back(AgentEvent::RecycleNow);
    }

    /// The gap check fired: silence for the period if no caller audio was fed in it.
    fn on_gap_check(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_check);
        self.last_check = now;
        if std::mem::take(&mut self.fed_since_check) {
            return;
        }
        tracing::trace!(
            ms = elapsed.as_millis() as u64,
            "caller audio gap: sending silence"
        );
        if self.relaying {
            crate::telemetry::error("live_input_gap_filled");
        }
        self.connection
            .queue_text(silence_append(elapsed.as_millis() as u64));
        self.needs_flush = true;
    }

    /// The session was lost: the lines being assembled go out, then the loss (a transient
    /// transport error: the engine reconnects when configured).
    fn lose(&mut self, reason: String) {
        tracing::info!(reason, "GPT-Live session lost");
        let mut out = VecDeque::new();
        self.decoder.finish_lines(&mut out);
        self.queued.extend(out);
        self.pending_error = Some(EndpointError::Transport(reason));
    }

    /// While recycling: a transcript fragment or speech in the output among the events from
    /// `from` on ends the current pause.
    fn note_activity(&mut self, from: usize) {
        let active = self.queued.range(from..).any(|e| match e {
            AgentEvent::Transcript { .. } => true,
            AgentEvent::Audio { audio, .. } => !audio.decode().is_ok_and(|b| is_silence(&b)),
            _ => false,
        });
        if active {
            self.last_activity = Instant::now();
        }
    }

    fn on_wrap_up_timer(&mut self) {
        match self.wrap_up {
            WrapUp::RecycleAt => {
                self.wrap_up = WrapUp::Recycling;
                // Speech must be absent for a whole pause from now on.
                self.last_activity = Instant::now();
                let at = self.wrap_up_at;
                self.wrap_up_timer.as_mut().reset(at);
            }
            WrapUp::Armed | WrapUp::Recycling => {
                tracing::info!("GPT-Live session lifetime nearly reached: saying the wrap-up line");
                let line = ClientEvent::commentary_append(clip(&self.settings.wrap_up_line), None)
                    .to_json();
                self.connection.queue_text(line);
                self.needs_flush = true;
                self.wrap_up = WrapUp::Said;
                let at = Instant::now() + self.settings.wrap_up_grace;
                self.wrap_up_timer.as_mut().reset(at);
            }
            WrapUp::Said => {
                self.wrap_up = WrapUp::Over;
                self.queued.push_back(AgentEvent::Closed {
                    reason: "GPT-Live session lifetime reached: ended after the wrap-up line"
                        .into(),
                });
            }
            WrapUp::Idle | WrapUp::Over => {}
        }
    }
}

impl AgentEndpoint for LiveAgent {
    fn capabilities(&self) -> AgentCapabilities {
        AgentCapabilities {
            input_format: AudioFormat::Mulaw8k,
            output_format: AudioFormat::Mulaw8k,
            truncation: false,
            interrupts_itself: true,
            reports_speech: false,
            continuous_input: true,
            restore_at_start: true,
            final_close: true,
        }
    }
}

#[async_trait]
impl bridge_core::agent::Endpoint for LiveAgent {
    type Event = AgentEvent;
    type Command = AgentCommand;

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AgentEvent, EndpointError>>> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if let Some(error) = self.pending_error.take() {
                self.failed = true;
                return Poll::Ready(Some(Err(error)));
            }
            if self.failed {
                return Poll::Ready(None);
            }
            if self.start_pending() && !self.closed {
                self.queue_start();
            }
            if self.needs_flush && !self.closed {
                // What is queued here (`session.start`, gap silence, the wrap-up line). A
                // socket that does not take it now does not stop the reading: the flush
                // resumes at the next poll (or with the driver's next write).
                match self.connection.poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.needs_flush = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(transport(e)))),
                    Poll::Pending => {}
                }
            }
            let started = self.decoder.started().is_some() && !self.closed;
            let wrap_up = started
                && matches!(
                    self.wrap_up,
                    WrapUp::RecycleAt | WrapUp::Recycling | WrapUp::Armed | WrapUp::Said
                );
            if let Poll::Ready(incoming) = self.connection.poll_recv(cx) {
                match incoming {
                    Some(Ok(Incoming::Text(text))) => {
                        let before = self.queued.len();
                        let was_started = self.decoder.started().is_some();
                        self.decoder.decode(&text, &mut self.queued);
                        if self
                            .queued
                            .range(before..)
                            .any(|e| matches!(e, AgentEvent::Audio { .. }))
                        {
                            self.clock.received(Direction::AgentToCaller);
                            self.keep_lead_short(before);
                        }
                        if self.wrap_up == WrapUp::Recycling {
                            self.note_activity(before);
                        }
                        if !was_started && self.decoder.started().is_some() {
                            self.arm_wrap_up();
                        }
                        if let Some(lost) = self.decoder.take_lost() {
                            self.lose(lost);
                        }
                    }
                    Some(Ok(Incoming::Close(reason))) => {
                        if self.decoder.is_closed() {
                            return Poll::Ready(None);
                        }
                        let started = self.decoder.started().is_some();
                        let normal =
                            matches!(reason.as_ref().map(|r| r.code), Some(1000 | 1001) | None);
                        if started && !normal {
                            let text = reason.as_ref().map_or_else(String::new, |r| r.to_string());
                            self.lose(format!(
                                "GPT-Live closed the socket without session.closed ({text})"
                            ));
                        } else {
                            let mut out = VecDeque::new();
                            self.decoder.finish_lines(&mut out);
                            self.queued.extend(out);
                            self.queued
                                .push_back(close_frame_event(reason.as_ref(), started));
                        }
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(TransportError::Closed)) => {
                        if self.decoder.is_closed() || self.closed {
                            return Poll::Ready(None);
                        }
                        self.lose("GPT-Live connection lost without session.closed".into());
                    }
                    Some(Err(e)) => {
                        if self.decoder.is_closed() || self.closed {
                            return Poll::Ready(Some(Err(transport(e))));
                        }
                        self.lose(format!("GPT-Live connection lost: {e}"));
                    }
                }
                continue;
            }
            // Nothing to read: the session's own clocks (each only queues a message).
            if started && self.gap_check.poll_tick(cx).is_ready() {
                self.on_gap_check();
                self.maybe_ask_recycle();
                continue;
            }
            if wrap_up && self.wrap_up_timer.as_mut().poll(cx).is_ready() {
                self.on_wrap_up_timer();
                continue;
            }
            return Poll::Pending;
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        self.connection.poll_ready(cx).map_err(transport)
    }

    fn start_send(&mut self, command: AgentCommand) -> Result<(), EndpointError> {
        if self.closed {
            return Ok(());
        }
        match command {
            AgentCommand::Audio(audio) => {
                self.fed_since_check = true;
                self.relaying = true;
                self.audio_fed = true;
                let mut frame = String::with_capacity(audio.text_len() + 48);
                write_input_audio_append(&mut frame, audio.as_str());
                self.connection.queue_text(frame);
            }
            // Not a message: the driver calls `close`.
            AgentCommand::Close => {}
            AgentCommand::Restore(item) => {
                if self.start_pending() {
                    self.restored.push(item);
                }
            }
            other => {
                self.decoder.encode(other, &mut self.outgoing);
                for text in self.outgoing.drain(..) {
                    self.connection.queue_text(text);
                }
                if self.decoder.take_speech_queued() {
                    // Read with the next event (the output track never pauses for long).
                    self.queued.push_back(AgentEvent::SpeechQueued);
                }
            }
        }
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        if self.start_pending() {
            self.queue_start();
        }
        ready!(self.connection.poll_flush(cx)).map_err(transport)?;
        self.needs_flush = false;
        if std::mem::take(&mut self.audio_fed) {
            self.clock.written(Direction::CallerToAgent);
        }
        Poll::Ready(Ok(()))
    }

    async fn close(&mut self) -> Result<(), EndpointError> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        self.close_session().await;
        Ok(())
    }
}

impl Drop for LiveAgent {
    fn drop(&mut self) {
        // A session dropped without `close` (lost, or retired by a reconnect).
        self.settle_billing();
    }
}

impl LiveAgent {
    /// Keeps the final transcript lines among `events` (decoded at teardown, when the engine
    /// no longer reads) for the call's record, in timeline order.
    fn keep_late_lines(&self, events: VecDeque<AgentEvent>) {
        let at_ms = crate::record::now_ms();
        let mut lines: Vec<LateLine> = events
            .into_iter()
            .filter_map(|event| match event {
                AgentEvent::Transcript {
                    speaker,
                    text,
                    is_final: true,
                    timing,
                    ..
                } => Some(LateLine {
                    speaker,
                    text,
                    timing,
                    at_ms,
                }),
                _ => None,
            })
            .collect();
        lines.sort_by_key(|l| l.timing.map_or(i64::MAX, |t| t.start_ms));
        for line in lines {
            tracing::debug!(speaker = ?line.speaker, "GPT-Live transcript line completed at teardown");
            self.late_lines.push(line);
        }
    }

    /// `session.close`, wait (bounded) for `session.closed`, then the closing handshake.
    async fn close_session(&mut self) {
        let session_id = self
            .decoder
            .started()
            .map(|s| s.id.clone())
            .unwrap_or_default();
        // What the session says from here on, decoded after the engine stopped reading.
        let mut tail = VecDeque::new();
        if !self.decoder.is_closed() && !self.start_pending() {
            let _ = self.connection.flush().await;
            match self
                .connection
                .close_live_session(self.settings.close_timeout)
                .await
            {
                Ok(report) => {
                    let closed =
                        report.frames.iter().rev().find_map(|f| {
                            match ServerEvent::parse(f.as_str()) {
                                Ok(ServerEvent::SessionClosed(closed)) => Some(closed),
                                _ => None,
                            }
                        });
                    // Transcript fragments that came after our `session.close` complete the
                    // lines (below); the final usage goes into the call's total (the record
                    // reads it after the call: `LiveBilling`).
                    let mut late = VecDeque::new();
                    for frame in &report.frames {
                        if !frame.as_str().contains("\"session.closed\"") {
                            self.decoder.decode(frame, &mut late);
                        }
                    }
                    if let Some(usage) = closed.as_ref().and_then(|c| c.usage) {
                        self.decoder.usage_seconds(usage.seconds, true, &mut late);
                    }
                    tail.extend(late);
                    match (&report.end, closed) {
                        (CloseEnd::SessionClosed, Some(closed)) => tracing::info!(
                            session_id,
                            reason = closed.reason.as_str(),
                            billed_seconds = closed.usage.map(|u| u.seconds),
                            "GPT-Live session closed"
                        ),
                        (end, _) => tracing::info!(
                            session_id,
                            end = ?end,
                            "GPT-Live session ended without session.closed (final usage unconfirmed)"
                        ),
                    }
                }
                Err(e) => tracing::debug!(error = %e, "sending session.close"),
            }
        }
        // The lines still being assembled (a line is final only at the next gap): without
        // this the call's last words would never reach the record.
        self.decoder.finish_lines(&mut tail);
        self.keep_late_lines(tail);
        self.settle_billing();
        match self
            .connection
            .close_with_reason(1000, "call ended", CLOSE_HANDSHAKE_TIMEOUT)
            .await
        {
            Ok(report) => tracing::debug!(end = ?report.end, "closed the GPT-Live socket"),
            Err(e) => tracing::debug!(error = %e, "closing the GPT-Live socket"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(decoder: &mut LiveDecoder, text: &str) -> Vec<AgentEvent> {
        let mut out = VecDeque::new();
        decoder.decode(&Utf8Bytes::from(text.to_owned()), &mut out);
        out.into()
    }

    const STARTED: &str = r#"{"type":"session.started","event_id":"e1","session":{"id":"rtc_abc","expires_at":1796000000,"model":"gpt-live-1","status":"active","audio":{"format":{"type":"audio/pcmu","rate":8000}}}}"#;

    #[test]
    fn replayed_history_keeps_the_newest_within_the_caps() {
        let msg = |speaker, text: &str| ContextItem::Message {
            speaker,
            text: text.into(),
        };
        let (items, dropped) = replay_input(&[
            msg(Speaker::Caller, "Hi"),
            msg(Speaker::Agent, " "),
            ContextItem::ToolCall {
                call_id: "c1".into(),
                name: "lookup".into(),
                arguments: "{}".into(),
            },
            ContextItem::ToolOutput {
                call_id: "c1".into(),
                output: "{\"ok\":true}".into(),
            },
            ContextItem::Note {
                text: "The caller pressed 3 on the keypad.".into(),
            },
        ]);
        assert_eq!(dropped, 0);
        let json: Vec<String> = items
            .iter()
            .map(|i| serde_json::to_string(i).unwrap())
            .collect();
        assert_eq!(
            json[..4],
            [
                r#"{"type":"message","role":"user","content":[{"type":"input_text","text":"Hi"}]}"#,
                r#"{"type":"message","role":"developer","content":[{"type":"input_text","text":"The backend called the tool lookup with the arguments {}."}]}"#,
                r#"{"type":"message","role":"developer","content":[{"type":"input_text","text":"The tool returned: {\"ok\":true}"}]}"#,
                r#"{"type":"message","role":"developer","content":[{"type":"input_text","text":"The caller pressed 3 on the keypad."}]}"#,
            ]
        );
        assert_eq!(items[4].text, REPLAY_NOTE, "the note comes last");

        // 200 lines: the newest 127 and the note (128 messages).
        let many: Vec<ContextItem> = (0..200)
            .map(|i| msg(Speaker::Caller, &format!("line {i}")))
            .collect();
        let (items, dropped) = replay_input(&many);
        assert_eq!((items.len(), dropped), (MAX_INPUT_ITEMS, 73));
        assert_eq!(items[0].text, "line 73");
        // Long lines: the estimated tokens stay within the cap, the oldest go first.
        let long: Vec<ContextItem> = (0..10)
            .map(|i| msg(Speaker::Agent, &format!("{i}{}", "x".repeat(6000))))
            .collect();
        let (items, dropped) = replay_input(&long);
        let tokens: usize = items
            .iter()
            .map(|i| i.text.chars().count().div_ceil(CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE)
            .sum();
        assert!(tokens <= MAX_INPUT_TOKENS, "{tokens}");
        assert_eq!(dropped, 10 - (items.len() - 1));
        assert!(
            items[items.len() - 2].text.starts_with('9'),
            "the newest kept"
        );
    }

    #[test]
    fn silence_is_the_quietest_mulaw_segment() {
        assert!(is_silence(&[0xFF, 0x7F, 0xF3, 0x7A]));
        assert!(!is_silence(&[0xFF, 0x80]));
        assert!(!is_silence(&[0x00]));
    }

    #[test]
    fn started_is_ready_with_the_opaque_id() {
        let mut d = LiveDecoder::new(LiveDelegation::Responses, None);
        assert_eq!(decode(&mut d, STARTED), [AgentEvent::Ready]);
        assert_eq!(d.started().unwrap().id, "rtc_abc");
        assert_eq!(d.started().unwrap().expires_at, 1_796_000_000);
        // Once only.
        assert!(decode(&mut d, STARTED).is_empty());
    }

    #[test]
    fn a_different_codec_is_refused() {
        let mut d = LiveDecoder::new(LiveDelegation::Responses, None);
        let started = STARTED.replace(r#""audio/pcmu","rate":8000"#, r#""audio/pcm","rate":24000"#);
        let events = decode(&mut d, &started);
        assert!(
            matches!(&events[..], [AgentEvent::Error { fatal: true, .. }]),
            "{events:?}"
        );
    }

    #[test]
    fn errors_are_fatal_only_before_start_and_junk_is_skipped() {
        let mut d = LiveDecoder::new(LiveDelegation::Responses, None);
        let err = r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"unknown_parameter","message":"Unknown parameter: 'session.x'."}}"#;
        assert!(matches!(
            &decode(&mut d, err)[..],
            [AgentEvent::Error { fatal: true, .. }]
        ));
        decode(&mut d, STARTED);
        assert!(matches!(
            &decode(&mut d, err)[..],
            [AgentEvent::Error { fatal: false, .. }]
        ));
        assert!(decode(&mut d, "not json").is_empty());
        assert!(decode(&mut d, r#"{"type":"session.brand_new","x":1}"#).is_empty());
        assert!(
            decode(
                &mut d,
                r#"{"type":"session.usage.updated","usage":{"seconds":"many"}}"#
            )
            .is_empty()
        );
        assert_eq!(d.skipped(), 2);
    }

    #[test]
    fn closed_reasons_map_to_ends() {
        assert!(matches!(
            closed_event(&CloseReason::CONNECTION_LOST),
            AgentEvent::Error { fatal: true, .. }
        ));
        for reason in [
            CloseReason::EXPIRED,
            CloseReason::CONTENT,
            CloseReason::REMOTE_HANGUP,
            CloseReason::CLOSE_REQUESTED,
            CloseReason::new("brand_new"),
        ] {
            let AgentEvent::Closed { reason: text } = closed_event(&reason) else {
                panic!()
            };
            assert!(text.contains(reason.as_str()), "{text}");
        }
        assert!(matches!(
            close_frame_event(None, true),
            AgentEvent::Closed { .. }
        ));
        assert!(matches!(
            close_frame_event(None, false),
            AgentEvent::Error { fatal: true, .. }
        ));
    }

    #[test]
    fn transcripts_stream_and_group_into_timed_lines() {
        let mut d = LiveDecoder::new(LiveDelegation::Responses, None);
        decode(&mut d, STARTED);
        let frag = |s: i64, e: i64, t: &str| {
            format!(
                r#"{{"type":"session.input_transcript.delta","event_id":"x","delta":"{t}","start_ms":{s},"end_ms":{e}}}"#
            )
        };
        assert_eq!(decode(&mut d, &frag(0, 200, " I'd like")).len(), 1);
        decode(&mut d, &frag(200, 400, " to book"));
        let events = decode(&mut d, &frag(2000, 2200, " Thanks"));
        let AgentEvent::Transcript {
            text,
            is_final: true,
            timing,
            ..
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!(text, "I'd like to book");
        assert_eq!(
            *timing,
            Some(TranscriptTiming {
                start_ms: 0,
                end_ms: 400
            })
        );
    }

    #[test]
    fn responses_calls_are_answered_then_continued_once() {
        let mut d = LiveDecoder::new(LiveDelegation::Responses, None);
        decode(&mut d, STARTED);
        decode(
            &mut d,
            r#"{"type":"response.event","event_id":"e","delegation_id":"item_1","event":{"type":"response.created","response":{"id":"resp_1","status":"in_progress","output":[]}}}"#,
        );
        let call = |id: &str| {
            format!(
                r#"{{"type":"response.event","event_id":"e","delegation_id":"item_1","event":{{"type":"response.output_item.done","output_index":0,"item":{{"type":"function_call","id":"fc","call_id":"{id}","name":"lookup","arguments":"{{}}","status":"completed"}}}}}}"#
            )
        };
        let events = decode(&mut d, &call("c1"));
        assert!(
            matches!(&events[..], [AgentEvent::ToolCall(r)] if r.call_id == "c1" && r.response_id.is_none())
        );
        assert!(decode(&mut d, &call("c1")).is_empty(), "reported once");
        decode(&mut d, &call("c2"));
        let mut out = Vec::new();
        d.encode(
            AgentCommand::ToolResult {
                call_id: "c1".into(),
                output: "1".into(),
            },
            &mut out,
        );
        d.encode(
            AgentCommand::CreateResponse { instructions: None },
            &mut out,
        );
        assert_eq!(
            out.len(),
            1,
            "no response.create while c2 is unanswered: {out:?}"
        );
        d.encode(
            AgentCommand::ToolResult {
                call_id: "c2".into(),
                output: "2".into(),
            },
            &mut out,
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[2], r#"{"type":"response.create"}"#);
        // The response that made the calls ends late: not the continuation.
        let first_done = r#"{"type":"response.event","event_id":"e","delegation_id":null,"event":{"type":"response.completed","response":{"id":"resp_1","status":"completed","output":[]}}}"#;
        assert!(!decode(&mut d, first_done).contains(&AgentEvent::SpeechQueued));
        // The continuation ends: its result is handed to the voice model to say.
        let completed = r#"{"type":"response.event","event_id":"e","delegation_id":null,"event":{"type":"response.completed","response":{"id":"resp_2","status":"completed","output":[]}}}"#;
        assert_eq!(decode(&mut d, completed), [AgentEvent::SpeechQueued]);
        assert!(
            decode(&mut d, completed).is_empty(),
            "once per continuation"
        );
        // Nothing to continue: no response.create.
        d.encode(
            AgentCommand::CreateResponse { instructions: None },
            &mut out,
        );
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn backend_mcp_events_are_counted() {
        let stats = Arc::new(McpStats::default());
        let mut d = LiveDecoder::new(LiveDelegation::Responses, None).with_mcp(Some(stats.clone()));
        decode(&mut d, STARTED);
        let nested = |ty: &str| {
            format!(
                r#"{{"type":"response.event","event_id":"e","delegation_id":"item_1","event":{{"type":"{ty}","item_id":"mcp_1","output_index":0}}}}"#
            )
        };
        for ty in [
            "mcp_list_tools.completed",
            "response.mcp_call.completed",
            "response.mcp_call.completed",
            "response.mcp_call.failed",
            "mcp_list_tools.failed",
        ] {
            assert!(decode(&mut d, &nested(ty)).is_empty(), "{ty}");
        }
        assert_eq!(McpStats::get(&stats.lists_completed), 1);
        assert_eq!(McpStats::get(&stats.lists_failed), 1);
        assert_eq!(McpStats::get(&stats.calls_completed), 2);
        assert_eq!(McpStats::get(&stats.calls_failed), 1);
    }

    #[test]
    fn client_delegations_go_to_the_client_tool_and_back_as_commentary() {
        let mut d = LiveDecoder::new(LiveDelegation::Client, Some("backend".into()));
        decode(&mut d, STARTED);
        let created = r#"{"type":"session.delegation.created","event_id":"e","offset_ms":4200,"delegation":{"id":"item_9","type":"delegation","target":"client"}}"#;
        let events = decode(&mut d, created);
        let [AgentEvent::ToolCall(request)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(
            (request.call_id.as_str(), request.name.as_str()),
            ("item_9", "backend")
        );
        let args: serde_json::Value = serde_json::from_str(&request.arguments).unwrap();
        assert_eq!(args["offset_ms"], 4200);
        let mut out = Vec::new();
        d.encode(
            AgentCommand::ToolResult {
                call_id: "item_9".into(),
                output: "Shipped.".into(),
            },
            &mut out,
        );
        d.encode(
            AgentCommand::CreateResponse { instructions: None },
            &mut out,
        );
        assert_eq!(
            out,
            [
                r#"{"type":"session.commentary.append","content":"Shipped.","delegation_id":"item_9"}"#
            ]
        );
        assert!(d.take_speech_queued(), "the result is to be said");
        assert!(!d.take_speech_queued());
    }

    #[test]
    fn greeting_is_commentary_and_digits_are_thinking() {
        let mut d = LiveDecoder::new(LiveDelegation::Responses, None);
        let mut out = Vec::new();
        d.encode(
            AgentCommand::CreateResponse {
                instructions: Some("Hi, Acme here.".into()),
            },
            &mut out,
        );
        d.encode(
            AgentCommand::AddContext {
                text: "The caller pressed 3.".into(),
            },
            &mut out,
        );
        d.encode(
            AgentCommand::Truncate {
                item_id: "i".into(),
                audio_end_ms: 1,
            },
            &mut out,
        );
        assert_eq!(
            out,
            [
                r#"{"type":"session.commentary.append","content":"Hi, Acme here.","delegation_id":null}"#,
                r#"{"type":"session.thinking.append","content":"The caller pressed 3.","delegation_id":null}"#,
            ]
        );
    }
}
