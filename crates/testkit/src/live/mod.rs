//! Mock OpenAI **GPT-Live** server (PROTOCOLS-LIVE.md), written with `serde_json` only.
//!
//! [`MockLive`] binds `127.0.0.1:0` and accepts WebSocket upgrades on `/v1/live/sessions`
//! with `Authorization: Bearer …` (any non-empty key, or exactly the configured one). The
//! model goes in `session.start`, never in the URL: a query string is refused with `400`, a
//! missing key with `401`, another path with `404` (OpenAI-shaped JSON bodies). Point the
//! client's `OPENAI_BASE_URL` at [`MockLive::base_url`].
//!
//! Per session it behaves as the reference describes:
//!
//! * the first message must be `session.start`, checked **strictly** (unknown fields anywhere
//!   → `error` `unknown_parameter` naming the field, then the socket is closed; `null` only
//!   for `delegation`; G.711 needs the explicit `"rate": 8000`); any other command first is
//!   refused with `session_not_started` and recorded; `session.started` carries a `live_…`
//!   id, `expires_at` (Unix seconds) and the resolved config;
//! * the **input timeline** is the clock: time advances only with appended audio. Output
//!   audio is produced as the timeline advances (one `session.output_audio.delta` of
//!   [`MockLiveBuilder::delta_bytes`] per step, silence included, no `event_id`), as are
//!   output transcript fragments, context-append acknowledgements and
//!   `session.usage.updated` (cumulative seconds) — a burst of input gives a burst of output;
//! * an **energy VAD** on μ-law input (10 ms windows, RMS ≥ [`MockLiveBuilder::vad_rms`],
//!   two windows to start, [`MockLiveBuilder::turn_silence_ms`] of quiet to end). Caller
//!   speech over the model's speech **stops it at once** (no event says so — the client only
//!   hears the output turn to silence). The end of a caller turn sends one
//!   `session.input_transcript.delta` (with `start_ms`/`end_ms`) and plays the next
//!   [`LiveTurn`] of the script;
//! * `session.commentary.append` with `delegation_id: null` is spoken (the real model
//!   paraphrases; the mock says the text as is); appends are acknowledged
//!   (`session.*.appended` with `start_ms`/`end_ms`) once the timeline has moved 100 ms on;
//!   the `delegation_id` key is required;
//! * delegation: a [`LiveTurn::Delegate`] under `responses` delegation sends
//!   `session.delegation.created` then the nested Responses stream in `response.event`
//!   (`response.created`, `output_item.added`, `function_call_arguments.delta/done`,
//!   `output_item.done` with the completed `function_call`, `response.completed` with the
//!   output stripped and usage); it takes `response.item.create` `function_call_output`s and
//!   refuses `response.create` while any call is unanswered (`function_call_outputs_required`);
//!   the continued response's result is spoken. Under `client` delegation it sends
//!   `session.delegation.created` (`target: "client"`) and speaks a `session.commentary.append`
//!   carrying that delegation id; `response.*` is refused;
//! * `session.close` → `session.closed` (`close_requested`, final usage), then the socket is
//!   closed without a status code; expiry ([`MockLiveBuilder::lifetime`], or
//!   [`MockLiveBuilder::no_audio_expiry`] without input) → `session.closed` `expired`;
//!   [`LiveSessionHandle::close_session`] ends it with any reason;
//! * records every client event (audio appends counted and concatenated), every server event,
//!   [`LiveViolation`]s, utterances with the exact audio, delegations and outputs, and how the
//!   socket ended — all awaitable.
//!
//! The model's audio is [`crate::audio::agent_tone`] stamped from id `0x20000` on, so a test
//! can tell exactly which bytes reached the caller.
//!
//! What it does not do: speech recognition or synthesis, WebRTC/SIP/sideband, audio fixtures,
//! Decisions, storage and forking; error codes beyond those quoted in the reference are
//! approximations.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use futures_util::{SinkExt, StreamExt};
//! use testkit::live::{LiveTurn, MockLive};
//! use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
//!
//! let mock = MockLive::builder().script([LiveTurn::say("Hello!", 500)]).start().await?;
//! let mut req = mock.ws_url().into_client_request()?;
//! req.headers_mut().insert("authorization", "Bearer sk-test".parse()?);
//! let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
//! ws.send(Message::text(r#"{"type":"session.start","session":{"model":"gpt-live-1",
//!     "audio":{"format":{"type":"audio/pcmu","rate":8000}}}}"#)).await?;
//! let session = mock.wait_for_session(1, Duration::from_secs(5)).await?;
//! let id = session.wait_for_started(Duration::from_secs(5)).await?;
//! assert!(id.starts_with("live_"));
//! ws.send(Message::text(r#"{"type":"session.close"}"#)).await?;
//! session.wait_for_server_event("session.closed", 1, Duration::from_secs(5)).await?;
//! assert!(session.violations().is_empty());
//! # Ok(()) }
//! ```

mod record;
mod session;
mod validate;

pub use record::{
    Delegation, LiveClientEvent, LiveServerEvent, LiveSocketEnd, LiveViolation, LiveViolationKind,
    Utterance,
};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;

use crate::WaitError;
use crate::http::{ServerResponse, bind_local, json_response, spawn_server};
use crate::wait::Observed;
use record::{SessionRecord, describe};
use session::{Out, Session};

/// What the model does at the end of a caller turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveTurn {
    /// Say `text`, taking `ms` of audio.
    Say {
        /// The words (sent as output transcript fragments while the audio plays).
        text: String,
        /// Audio duration.
        ms: u32,
    },
    /// Delegate: under `responses` delegation these function calls (name, JSON arguments),
    /// all in one backend response; under `client` delegation one client delegation.
    Delegate {
        /// `(name, arguments)` of each call.
        calls: Vec<(String, String)>,
    },
    /// End the session with `session.closed` and this reason.
    Close {
        /// `expired`, `content`, `remote_hangup`, `connection_lost`, …
        reason: String,
    },
}

impl LiveTurn {
    /// [`LiveTurn::Say`].
    pub fn say(text: &str, ms: u32) -> LiveTurn {
        LiveTurn::Say {
            text: text.to_owned(),
            ms,
        }
    }

    /// One delegated function call.
    pub fn call(name: &str, arguments: &str) -> LiveTurn {
        LiveTurn::Delegate {
            calls: vec![(name.to_owned(), arguments.to_owned())],
        }
    }

    /// Several function calls in one backend response.
    pub fn calls(calls: &[(&str, &str)]) -> LiveTurn {
        LiveTurn::Delegate {
            calls: calls
                .iter()
                .map(|(n, a)| ((*n).to_owned(), (*a).to_owned()))
                .collect(),
        }
    }

    /// [`LiveTurn::Close`].
    pub fn close(reason: &str) -> LiveTurn {
        LiveTurn::Close {
            reason: reason.to_owned(),
        }
    }
}

/// Mock-wide settings.
#[derive(Debug, Clone)]
pub(crate) struct LiveConfig {
    pub(crate) api_key: Option<String>,
    /// Azure: the key may come in the `api-key` header (a resource key).
    pub(crate) azure: bool,
    pub(crate) delta_bytes: usize,
    pub(crate) lifetime: Duration,
    pub(crate) no_audio_expiry: Duration,
    pub(crate) usage_interval_ms: u64,
    pub(crate) turn_silence_ms: u64,
    pub(crate) vad_rms: f64,
    pub(crate) commentary_ms: u32,
    pub(crate) result_ms: u32,
    pub(crate) stamp_base: u32,
    pub(crate) record_payloads: bool,
    /// Sent as `session.output_transcript.delta` between `session.close` and `session.closed`.
    pub(crate) transcript_on_close: Option<String>,
    /// Accept `{"type":"mcp",…}` tools in `delegation.responses.tools`.
    pub(crate) mcp_tools: bool,
    /// Said at once when a delegation starts (the model's automatic acknowledgement).
    pub(crate) delegation_ack: Option<(String, u32)>,
    /// Timeline delay between a continued backend response and the start of its spoken
    /// result (the relay to the voice model).
    pub(crate) result_delay_ms: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            api_key: None,
            azure: false,
            delta_bytes: 800,
            lifetime: Duration::from_secs(2 * 3600),
            no_audio_expiry: Duration::from_secs(31),
            usage_interval_ms: 15_000,
            turn_silence_ms: 500,
            vad_rms: 1000.0,
            commentary_ms: 1500,
            result_ms: 1200,
            stamp_base: 0x20000,
            record_payloads: true,
            transcript_on_close: None,
            mcp_tools: false,
            delegation_ack: None,
            result_delay_ms: 0,
        }
    }
}

/// Builder for a [`MockLive`].
#[derive(Debug, Clone, Default)]
pub struct MockLiveBuilder {
    cfg: LiveConfig,
    script: Vec<LiveTurn>,
    caller_transcripts: Vec<String>,
}

impl MockLiveBuilder {
    /// What the model does at the end of each caller turn, in order (then nothing).
    pub fn script(mut self, turns: impl IntoIterator<Item = LiveTurn>) -> Self {
        self.script = turns.into_iter().collect();
        self
    }

    /// The input transcripts of the caller's turns, in order (default ` (caller speech)`).
    pub fn caller_transcripts(mut self, texts: &[&str]) -> Self {
        self.caller_transcripts = texts.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// Behave as an Azure OpenAI resource: the key may also come in the `api-key` header (a
    /// resource key; `Authorization: Bearer` stands for an Entra ID token).
    pub fn azure(mut self) -> Self {
        self.cfg.azure = true;
        self
    }

    /// Accept only this API key.
    pub fn api_key(mut self, key: &str) -> Self {
        self.cfg.api_key = Some(key.to_owned());
        self
    }

    /// Output delta size in bytes of the session format (default 800 = 100 ms of μ-law).
    pub fn delta_bytes(mut self, bytes: usize) -> Self {
        self.cfg.delta_bytes = bytes.max(1);
        self
    }

    /// Session lifetime: `expires_at` = start + this; `session.closed` `expired` then
    /// (default 2 h).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.cfg.lifetime = lifetime;
        self
    }

    /// A started session without any input audio for this long expires (default 31 s).
    pub fn no_audio_expiry(mut self, after: Duration) -> Self {
        self.cfg.no_audio_expiry = after;
        self
    }

    /// Timeline interval of `session.usage.updated` (default 15 000 ms).
    pub fn usage_interval_ms(mut self, ms: u64) -> Self {
        self.cfg.usage_interval_ms = ms.max(1);
        self
    }

    /// Quiet that ends a caller turn (default 500 ms).
    pub fn turn_silence_ms(mut self, ms: u64) -> Self {
        self.cfg.turn_silence_ms = ms;
        self
    }

    /// RMS (16-bit units) of speech for the VAD (default 1000).
    pub fn vad_rms(mut self, rms: f64) -> Self {
        self.cfg.vad_rms = rms;
        self
    }

    /// Duration of a spoken commentary (the greeting), default 1500 ms.
    pub fn commentary_ms(mut self, ms: u32) -> Self {
        self.cfg.commentary_ms = ms;
        self
    }

    /// Duration of a spoken delegation result, default 1200 ms.
    pub fn result_ms(mut self, ms: u32) -> Self {
        self.cfg.result_ms = ms;
        self
    }

    /// On `session.close`, send one more `session.output_transcript.delta` with `text` (the
    /// end of the model's words, transcribed late) before `session.closed`; its `start_ms` is
    /// the timeline's position then, `end_ms` 200 ms later.
    pub fn transcript_on_close(mut self, text: &str) -> Self {
        self.cfg.transcript_on_close = Some(text.to_owned());
        self
    }

    /// Accept MCP tools (`{"type":"mcp", server_label, server_url, …}`) in
    /// `delegation.responses.tools`, checked strictly against the Responses API's MCP tool
    /// shape. Off by default: the GPT-Live guide documents only `function` and `web_search`
    /// there, and the mock refuses anything else (`invalid_value`) like that reading.
    pub fn accept_mcp_tools(mut self) -> Self {
        self.cfg.mcp_tools = true;
        self
    }

    /// Say `text` (`ms` of audio) as soon as a delegation starts, as the real model
    /// acknowledges a delegation by itself (`acknowledgement_delay_ms` 0); default: nothing.
    pub fn delegation_ack(mut self, text: &str, ms: u32) -> Self {
        self.cfg.delegation_ack = Some((text.to_owned(), ms));
        self
    }

    /// Timeline delay from the end of a continued backend response to the start of its
    /// spoken result (the relay to the voice model; default 0).
    pub fn result_delay_ms(mut self, ms: u64) -> Self {
        self.cfg.result_delay_ms = ms;
        self
    }

    /// Keep event texts and audio bytes (default `true`; off for load tests).
    pub fn record_payloads(mut self, on: bool) -> Self {
        self.cfg.record_payloads = on;
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(self) -> std::io::Result<MockLive> {
        let (listener, addr) = bind_local().await?;
        let shared = Arc::new(Shared {
            cfg: Arc::new(self.cfg),
            script: self.script,
            caller_transcripts: self.caller_transcripts,
            state: Observed::new(MockState::default()),
            cancel: CancellationToken::new(),
        });
        let s = Arc::clone(&shared);
        spawn_server(listener, shared.cancel.clone(), move |req| {
            let s = Arc::clone(&s);
            async move { handle_upgrade(s, req) }
        });
        Ok(MockLive {
            inner: Arc::new(Inner { addr, shared }),
        })
    }
}

/// A refused upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRefusal {
    /// Path and query.
    pub path: String,
    /// Status answered.
    pub status: u16,
    /// Body answered.
    pub body: String,
}

#[derive(Debug, Default)]
struct MockState {
    sessions: Vec<LiveSessionHandle>,
    refused: Vec<LiveRefusal>,
}

#[derive(Debug)]
struct Shared {
    cfg: Arc<LiveConfig>,
    script: Vec<LiveTurn>,
    caller_transcripts: Vec<String>,
    state: Observed<MockState>,
    cancel: CancellationToken,
}

#[derive(Debug)]
struct Inner {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

/// The mock GPT-Live server. Cheap to clone; shuts down when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct MockLive {
    inner: Arc<Inner>,
}

impl MockLive {
    /// A mock with default settings and no script.
    pub async fn start() -> std::io::Result<MockLive> {
        Self::builder().start().await
    }

    /// A builder.
    pub fn builder() -> MockLiveBuilder {
        MockLiveBuilder::default()
    }

    /// `http://127.0.0.1:PORT/v1` — the value for `OPENAI_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.inner.addr)
    }

    /// `ws://127.0.0.1:PORT/v1/live/sessions`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/live/sessions", self.inner.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Sessions accepted so far.
    pub fn sessions(&self) -> Vec<LiveSessionHandle> {
        self.inner.shared.state.read(|s| s.sessions.clone())
    }

    /// Upgrades refused so far.
    pub fn refused(&self) -> Vec<LiveRefusal> {
        self.inner.shared.state.read(|s| s.refused.clone())
    }

    /// Waits for the `n`-th (1-based) accepted session.
    pub async fn wait_for_session(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<LiveSessionHandle, WaitError> {
        self.inner
            .shared
            .state
            .wait_until(
                timeout,
                || format!("GPT-Live session #{n}"),
                |s| s.sessions.get(n.saturating_sub(1)).cloned(),
                |s| format!("{} sessions, {} refused", s.sessions.len(), s.refused.len()),
            )
            .await
    }

    /// Stops accepting connections and drops every session.
    pub fn shutdown(&self) {
        self.inner.shared.cancel.cancel();
    }
}

#[derive(Debug)]
enum Command {
    Raw(String),
    Error(String, String),
    CloseSession(String),
    Drop,
    Close(u16, String),
    Push(LiveTurn),
}

/// One session's shared records.
#[derive(Debug)]
pub(crate) struct SharedLive {
    number: usize,
    headers: Vec<(String, String)>,
    pub(crate) state: Observed<SessionRecord>,
    cmd: mpsc::UnboundedSender<Command>,
}

/// A handle on one mock session: inspection, waiting, fault injection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveSessionHandle {
    inner: Arc<SharedLive>,
}

impl LiveSessionHandle {
    fn state(&self) -> &Observed<SessionRecord> {
        &self.inner.state
    }

    /// 1-based order of acceptance.
    pub fn number(&self) -> usize {
        self.inner.number
    }

    /// A header of the upgrade request.
    pub fn request_header(&self, name: &str) -> Option<String> {
        self.inner
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// The session id, once started.
    pub fn session_id(&self) -> Option<String> {
        self.state().read(|s| s.session_id.clone())
    }

    /// The `expires_at` sent in `session.started`.
    pub fn expires_at(&self) -> Option<i64> {
        self.state().read(|s| s.expires_at)
    }

    /// The accepted `session.start` `session` object, as sent.
    pub fn start_config(&self) -> Option<Value> {
        self.state().read(|s| s.start.clone())
    }

    /// Every non-audio client event.
    pub fn client_events(&self) -> Vec<LiveClientEvent> {
        self.state().read(|s| s.client_events.clone())
    }

    /// Client events of one type.
    pub fn client_events_of_type(&self, ty: &str) -> Vec<LiveClientEvent> {
        self.state().read(|s| {
            s.client_events
                .iter()
                .filter(|e| e.event_type == ty)
                .cloned()
                .collect()
        })
    }

    /// Server event types sent, in order (audio deltas included).
    pub fn server_event_types(&self) -> Vec<String> {
        self.state().read(|s| {
            s.server_events
                .iter()
                .map(|e| e.event_type.clone())
                .collect()
        })
    }

    /// Server events sent.
    pub fn server_events(&self) -> Vec<LiveServerEvent> {
        self.state().read(|s| s.server_events.clone())
    }

    /// Violations so far.
    pub fn violations(&self) -> Vec<LiveViolation> {
        self.state().read(|s| s.violations.clone())
    }

    /// How many `session.input_audio.append`s arrived.
    pub fn audio_appends(&self) -> usize {
        self.state().read(|s| s.audio_appends)
    }

    /// Every input audio byte, concatenated.
    pub fn received_audio(&self) -> Vec<u8> {
        self.state().read(|s| s.received_audio.clone())
    }

    /// Number of input audio bytes.
    pub fn received_audio_len(&self) -> usize {
        self.state().read(|s| s.received_audio_bytes)
    }

    /// Every output audio byte sent, concatenated (silence included).
    pub fn sent_audio(&self) -> Vec<u8> {
        self.state().read(|s| s.sent_audio.clone())
    }

    /// What the model said.
    pub fn utterances(&self) -> Vec<Utterance> {
        self.state().read(|s| s.utterances.clone())
    }

    /// Delegations so far.
    pub fn delegations(&self) -> Vec<Delegation> {
        self.state().read(|s| s.delegations.clone())
    }

    /// `response.create`s accepted.
    pub fn response_creates(&self) -> usize {
        self.state().read(|s| s.response_creates)
    }

    /// Caller turns the VAD found, `(start_ms, end_ms)` on the timeline.
    pub fn caller_turns(&self) -> Vec<(u64, u64)> {
        self.state().read(|s| s.caller_turns.clone())
    }

    /// Whether the client sent `session.close`.
    pub fn close_requested(&self) -> bool {
        self.state().read(|s| s.close_requested)
    }

    /// The reason of the `session.closed` sent, if any.
    pub fn closed_reason(&self) -> Option<String> {
        self.state().read(|s| s.closed_reason.clone())
    }

    /// How the socket ended, if it has.
    pub fn socket_end(&self) -> Option<LiveSocketEnd> {
        self.state().read(|s| s.socket_end.clone())
    }

    async fn wait<R>(
        &self,
        timeout: Duration,
        what: String,
        check: impl FnMut(&SessionRecord) -> Option<R>,
    ) -> Result<R, WaitError> {
        self.state()
            .wait_until(timeout, || what, check, describe)
            .await
    }

    /// Waits for `session.started`; returns the session id.
    pub async fn wait_for_started(&self, timeout: Duration) -> Result<String, WaitError> {
        self.wait(timeout, "session.started".into(), |s| s.session_id.clone())
            .await
    }

    /// Waits for the first client event of `ty`.
    pub async fn wait_for_event_type(
        &self,
        ty: &str,
        timeout: Duration,
    ) -> Result<LiveClientEvent, WaitError> {
        self.wait(timeout, format!("client event {ty}"), |s| {
            s.client_events.iter().find(|e| e.event_type == ty).cloned()
        })
        .await
    }

    /// Waits for the `n`-th (1-based) server event of `ty`.
    pub async fn wait_for_server_event(
        &self,
        ty: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<LiveServerEvent, WaitError> {
        self.wait(timeout, format!("server event #{n} {ty}"), |s| {
            s.server_events
                .iter()
                .filter(|e| e.event_type == ty)
                .nth(n.saturating_sub(1))
                .cloned()
        })
        .await
    }

    /// Waits until at least `bytes` input audio bytes arrived.
    pub async fn wait_for_received_audio(
        &self,
        bytes: usize,
        timeout: Duration,
    ) -> Result<usize, WaitError> {
        self.wait(timeout, format!("{bytes} input audio bytes"), |s| {
            (s.received_audio_bytes >= bytes).then_some(s.received_audio_bytes)
        })
        .await
    }

    /// Waits for the `n`-th (1-based) utterance to have ended (finished or interrupted).
    pub async fn wait_for_utterance_end(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Utterance, WaitError> {
        self.wait(timeout, format!("utterance #{n} to end"), |s| {
            s.utterances
                .get(n.saturating_sub(1))
                .filter(|u| u.ended_ms.is_some())
                .cloned()
        })
        .await
    }

    /// Waits for the `n`-th (1-based) utterance to start.
    pub async fn wait_for_utterance(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Utterance, WaitError> {
        self.wait(timeout, format!("utterance #{n}"), |s| {
            s.utterances.get(n.saturating_sub(1)).cloned()
        })
        .await
    }

    /// Waits for the `n`-th (1-based) delegation.
    pub async fn wait_for_delegation(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Delegation, WaitError> {
        self.wait(timeout, format!("delegation #{n}"), |s| {
            s.delegations.get(n.saturating_sub(1)).cloned()
        })
        .await
    }

    /// Waits until the `n`-th (1-based) delegation has an output (and, for responses
    /// delegation, was continued with `response.create`).
    pub async fn wait_for_delegation_answered(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Delegation, WaitError> {
        self.wait(timeout, format!("delegation #{n} answered"), |s| {
            s.delegations
                .get(n.saturating_sub(1))
                .filter(|d| !d.outputs.is_empty() && (d.target != "responses" || d.continued))
                .cloned()
        })
        .await
    }

    /// Waits for the first violation of `kind`.
    pub async fn wait_for_violation(
        &self,
        kind: LiveViolationKind,
        timeout: Duration,
    ) -> Result<LiveViolation, WaitError> {
        self.wait(timeout, format!("a {kind:?} violation"), |s| {
            s.violations.iter().find(|v| v.kind == kind).cloned()
        })
        .await
    }

    /// Waits until the socket has ended.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<LiveSocketEnd, WaitError> {
        self.wait(timeout, "the socket to end".into(), |s| {
            s.socket_end.clone()
        })
        .await
    }

    /// Sends a raw text frame (anything).
    pub fn send_raw(&self, text: &str) {
        let _ = self.inner.cmd.send(Command::Raw(text.to_owned()));
    }

    /// Sends an `error` event (the session continues).
    pub fn send_error(&self, code: &str, message: &str) {
        let _ = self
            .inner
            .cmd
            .send(Command::Error(code.to_owned(), message.to_owned()));
    }

    /// Ends the session: `session.closed` with `reason`, then the socket is closed.
    pub fn close_session(&self, reason: &str) {
        let _ = self
            .inner
            .cmd
            .send(Command::CloseSession(reason.to_owned()));
    }

    /// Drops the TCP connection (no `session.closed`, no close frame).
    pub fn drop_connection(&self) {
        let _ = self.inner.cmd.send(Command::Drop);
    }

    /// Sends a close frame (no `session.closed`) and ends.
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.inner.cmd.send(Command::Close(code, reason.to_owned()));
    }

    /// Appends a turn to this session's script.
    pub fn push_turn(&self, turn: LiveTurn) {
        let _ = self.inner.cmd.send(Command::Push(turn));
    }
}

fn openai_error(status: StatusCode, message: &str, code: Option<&str>) -> (StatusCode, Value) {
    (
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
    )
}

static SESSIONS: AtomicU64 = AtomicU64::new(1);

fn handle_upgrade(shared: Arc<Shared>, mut req: Request<Incoming>) -> ServerResponse {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let refuse = |(status, body): (StatusCode, Value)| {
        shared.state.update(|s| {
            s.refused.push(LiveRefusal {
                path: path.clone(),
                status: status.as_u16(),
                body: body.to_string(),
            })
        });
        json_response(status, &body)
    };
    if req.uri().path() != "/v1/live/sessions" {
        return refuse(openai_error(
            StatusCode::NOT_FOUND,
            &format!("Invalid URL ({} {})", req.method(), req.uri().path()),
            None,
        ));
    }
    if req.uri().query().is_some() {
        return refuse(openai_error(
            StatusCode::BAD_REQUEST,
            "GPT-Live sessions take no query parameters; send the model in session.start.",
            Some("unknown_parameter"),
        ));
    }
    let key = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            // Azure OpenAI: a resource key in `api-key` (or an Entra token as Bearer, above).
            req.headers()
                .get("api-key")
                .filter(|_| shared.cfg.azure)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
        });
    let Some(key) = key else {
        return refuse(openai_error(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            None,
        ));
    };
    if shared.cfg.api_key.as_ref().is_some_and(|k| k != &key) {
        return refuse(openai_error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            Some("invalid_api_key"),
        ));
    }
    let response =
        match tokio_tungstenite::tungstenite::handshake::server::create_response_with_body(
            &req,
            http_body_util::Full::<bytes::Bytes>::default,
        ) {
            Ok(r) => r,
            Err(e) => {
                return refuse(openai_error(
                    StatusCode::BAD_REQUEST,
                    &format!("WebSocket upgrade required: {e}"),
                    None,
                ));
            }
        };
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
    let tag = format!("{n:04x}");
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let session = shared.state.update(|s| {
        let session = Arc::new(SharedLive {
            number: s.sessions.len() + 1,
            headers,
            state: Observed::new(SessionRecord {
                caller_transcripts: shared.caller_transcripts.iter().cloned().collect(),
                ..SessionRecord::default()
            }),
            cmd: cmd_tx,
        });
        s.sessions.push(LiveSessionHandle {
            inner: Arc::clone(&session),
        });
        session
    });
    let engine = Session::new(
        Arc::clone(&shared.cfg),
        Arc::clone(&session),
        shared.script.clone(),
        tag,
    );
    let cancel = shared.cancel.clone();
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(&mut req).await {
            Ok(u) => u,
            Err(e) => {
                session.state.update(|s| {
                    s.socket_end = Some(LiveSocketEnd::ClientVanished {
                        error: format!("upgrade failed: {e}"),
                    })
                });
                return;
            }
        };
        let config = WebSocketConfig::default().max_message_size(Some(32 << 20));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        run(ws, engine, session, cmd_rx, cancel).await;
    });
    response
}

async fn run<S>(
    mut ws: WebSocketStream<S>,
    mut engine: Session,
    session: Arc<SharedLive>,
    mut cmds: mpsc::UnboundedReceiver<Command>,
    cancel: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let end = 'session: loop {
        for out in std::mem::take(&mut engine.out) {
            match out {
                Out::Text(t) => {
                    if let Err(e) = ws.feed(Message::text(t)).await {
                        break 'session LiveSocketEnd::ClientVanished {
                            error: e.to_string(),
                        };
                    }
                }
                Out::Close(frame) => {
                    let code = frame.as_ref().map(|f| f.0);
                    let frame = frame.map(|(code, reason)| CloseFrame {
                        code: code.into(),
                        reason: reason.into(),
                    });
                    let _ = ws.send(Message::Close(frame)).await;
                    // Wait (bounded) for the client's close frame, like a real server.
                    let handshake = async {
                        loop {
                            match ws.next().await {
                                Some(Ok(m)) if m.is_close() => return true,
                                Some(Ok(_)) => {}
                                Some(Err(
                                    tokio_tungstenite::tungstenite::Error::ConnectionClosed,
                                )) => {
                                    return true;
                                }
                                Some(Err(_)) | None => return false,
                            }
                        }
                    };
                    let handshake_completed =
                        tokio::time::timeout(Duration::from_secs(2), handshake)
                            .await
                            .unwrap_or(false);
                    break 'session LiveSocketEnd::MockClosed {
                        code,
                        handshake_completed,
                    };
                }
            }
        }
        if let Err(e) = ws.flush().await {
            break LiveSocketEnd::ClientVanished {
                error: e.to_string(),
            };
        }
        let deadline = engine.deadline();
        tokio::select! {
            biased;
            () = cancel.cancelled() => break LiveSocketEnd::Shutdown,
            cmd = cmds.recv() => match cmd {
                Some(Command::Raw(t)) => engine.send_raw(t),
                Some(Command::Error(code, message)) => engine.error(&code, &message, None, None),
                Some(Command::CloseSession(reason)) => engine.close_session(&reason, None),
                Some(Command::Drop) | None => break LiveSocketEnd::MockDropped,
                Some(Command::Close(code, reason)) => engine.out.push(Out::Close(Some((code, reason)))),
                Some(Command::Push(turn)) => engine.push_turn(turn),
            },
            () = async { if let Some(d) = deadline { tokio::time::sleep_until(d).await } }, if deadline.is_some() => {
                engine.on_deadline(Instant::now());
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => engine.on_text(Instant::now(), t.as_str()),
                Some(Ok(Message::Binary(_))) => engine.on_text(Instant::now(), "(binary frame)"),
                Some(Ok(Message::Close(frame))) => {
                    let _ = ws.flush().await;
                    break LiveSocketEnd::ClientClose { code: frame.map(|f| u16::from(f.code)) };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break LiveSocketEnd::ClientVanished { error: e.to_string() },
                None => break LiveSocketEnd::ClientVanished { error: "connection closed without a close frame".into() },
            },
        }
    };
    drop(ws);
    session.state.update(|s| s.socket_end = Some(end));
}
