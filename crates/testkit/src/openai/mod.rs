//! Mock OpenAI Realtime GA server.
//!
//! [`MockRealtime`] binds `127.0.0.1:0` and accepts WebSocket upgrades on
//! `/v1/realtime?model=…` carrying any `Authorization: Bearer …` (or exactly the configured
//! key). Point the client's `OPENAI_BASE_URL` at [`MockRealtime::base_url`]
//! (`http://127.0.0.1:PORT/v1`). A missing/wrong key is answered `401`, an unknown path `404`,
//! both with OpenAI-shaped JSON error bodies; [`MockRealtime::refuse_next_upgrades`] scripts
//! other refusals (e.g. `500`).
//!
//! Per session it behaves like the GA service as described in PROTOCOLS.md §6:
//!
//! * sends `session.created` with the service defaults (`audio/pcm` 24 kHz in and out,
//!   `server_vad`), answers `session.update` with `session.updated` echoing the merged
//!   effective config, and refuses invalid updates (missing `session.type`, unknown fields such
//!   as beta-era `input_audio_format`, bad formats) with an `error` like the service's;
//! * runs an **energy VAD on the input-audio clock** (not the wall clock): appended audio is
//!   decoded (μ-law, A-law or PCM16), cut in 10 ms windows; speech starts after two windows
//!   whose RMS exceeds `threshold × 2000` (16-bit units; so the default `0.5` ⇒ RMS 1000 ≈
//!   −30 dBFS) and stops after `silence_duration_ms` of quieter audio. It emits
//!   `input_audio_buffer.speech_started` (`audio_start_ms` = onset − `prefix_padding_ms`),
//!   `speech_stopped`, `committed`, `conversation.item.added`/`done` (user) and, with
//!   `create_response`, starts the next scripted response; with `interrupt_response`, speech
//!   during a response cancels it (`response.done` `status:"cancelled"`,
//!   `reason:"turn_detected"`). `turn_detection: null` turns the VAD off;
//! * plays a [`Script`] of responses in the typical GA event order (`response.created`,
//!   `rate_limits.updated`, `response.output_item.added`, `conversation.item.added`,
//!   `response.content_part.added`, audio deltas interleaved with transcript deltas,
//!   `response.output_audio.done`, `…transcript.done`, `response.content_part.done`,
//!   `response.output_item.done`, `conversation.item.done`, `response.done`), audio sent
//!   **faster than real time** ([`Pacing`]) in configurable delta sizes; function calls
//!   (`response.function_call_arguments.delta/done`) expect a `function_call_output` and a
//!   `response.create` ([`FunctionCallRecord`]);
//! * validates `conversation.item.truncate` (`"Audio content of {sent}ms is already shorter
//!   than {requested}ms"`), answers `response.cancel` with nothing active with
//!   `response_cancel_not_active` and `response.create` during a response with
//!   `conversation_already_has_active_response`;
//! * records every client event, every server event, protocol [`Violation`]s, truncations,
//!   the exact audio bytes received and sent per assistant item, and how the socket closed —
//!   all awaitable without sleeping ([`SessionHandle::wait_for_event`], ...).
//!
//! The audio it speaks is identifiable: [`crate::audio::agent_tone`] frames carry a stamp
//! (see [`AgentAudio::Tone`]), so a test can assert exactly which bytes reached the caller.
//!
//! What it does not do: real speech recognition or generation, `semantic_vad` beyond treating
//! it as energy VAD with 500 ms silence, `idle_timeout_ms`, out-of-band (`conversation:
//! "none"`) responses in parallel, transcription sessions, MCP tools, WebRTC/SIP. Error codes
//! other than those quoted above are best-effort approximations of the service's wording.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use futures_util::SinkExt;
//! use testkit::openai::{MockRealtime, Pacing, ResponseScript, Script};
//! use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
//!
//! let mock = MockRealtime::builder()
//!     .script(Script::new().then(ResponseScript::say("Thanks for calling Acme!", 1500)))
//!     .pacing(Pacing::Burst)
//!     .start()
//!     .await?;
//! // The client is normally the server under test, configured with
//! // OPENAI_BASE_URL = mock.base_url(); here we play it with a raw WebSocket.
//! let mut req = mock.ws_url("gpt-realtime").into_client_request()?;
//! req.headers_mut().insert("authorization", "Bearer sk-test".parse()?);
//! let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
//! ws.send(Message::text(r#"{"type":"session.update","session":{"type":"realtime",
//!     "audio":{"input":{"format":{"type":"audio/pcmu"}},"output":{"format":{"type":"audio/pcmu"}}}}}"#))
//!     .await?;
//! ws.send(Message::text(r#"{"type":"response.create"}"#)).await?;
//!
//! let session = mock.wait_for_session(1, Duration::from_secs(5)).await?;
//! let done = session.wait_for_response_done(1, Duration::from_secs(5)).await?;
//! assert_eq!(done.status, "completed");
//! // The exact, identifiable audio the mock spoke:
//! assert_eq!(session.assistant_items()[0].audio, testkit::audio::agent_tone(65536, 1500));
//! assert!(session.violations().is_empty());
//! # Ok(()) }
//! ```

mod engine;
pub mod lean;
mod record;
mod script;
mod vad;

pub use record::{
    AssistantItem, ClientEvent, ClientEventKind, CloseRecord, ClosedBy, FunctionCallRecord,
    ResponseRecord, ResponseTrigger, ServerEvent, Truncation, Violation, ViolationKind,
};
pub use script::{AgentAudio, OutputScript, Pacing, ResponseFault, ResponseScript, Script};

use std::collections::VecDeque;
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
use engine::{Engine, Out};

/// Mock-wide settings (fixed when the server starts).
#[derive(Debug, Clone)]
pub(crate) struct MockConfig {
    pub(crate) pacing: Pacing,
    pub(crate) delta_sizes: Vec<usize>,
    pub(crate) first_delta_delay: Duration,
    pub(crate) api_key: Option<String>,
    pub(crate) record_payloads: bool,
    pub(crate) rms_at_threshold_one: f64,
    pub(crate) vad_onset_windows: u32,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            pacing: Pacing::default(),
            delta_sizes: vec![800],
            first_delta_delay: Duration::ZERO,
            api_key: None,
            record_payloads: true,
            rms_at_threshold_one: 2000.0,
            vad_onset_windows: 2,
        }
    }
}

/// Builder for a [`MockRealtime`].
#[derive(Debug, Clone, Default)]
pub struct MockRealtimeBuilder {
    cfg: MockConfig,
    script: Script,
}

impl MockRealtimeBuilder {
    /// The script every new session starts with (default: [`Script::default`]).
    pub fn script(mut self, script: Script) -> Self {
        self.script = script;
        self
    }

    /// How fast audio deltas are sent (default `Speed(4.0)`).
    pub fn pacing(mut self, pacing: Pacing) -> Self {
        self.cfg.pacing = pacing;
        self
    }

    /// Size of every audio delta in bytes of the output format (default 800 = 100 ms of
    /// μ-law).
    pub fn delta_bytes(mut self, bytes: usize) -> Self {
        self.cfg.delta_sizes = vec![bytes.max(1)];
        self
    }

    /// Delta sizes used in turn, cyclically (e.g. `[160, 333, 1200]` to exercise re-chunking).
    pub fn delta_sizes(mut self, sizes: Vec<usize>) -> Self {
        self.cfg.delta_sizes = sizes;
        self
    }

    /// Delay between `response.created` and the first output item (default 0).
    pub fn first_delta_delay(mut self, delay: Duration) -> Self {
        self.cfg.first_delta_delay = delay;
        self
    }

    /// Accept only this API key (default: any non-empty bearer token).
    pub fn api_key(mut self, key: &str) -> Self {
        self.cfg.api_key = Some(key.to_string());
        self
    }

    /// Whether to keep raw event texts and audio bytes (default `true`; turn off for load
    /// tests — counts, types and timestamps are still recorded).
    pub fn record_payloads(mut self, record: bool) -> Self {
        self.cfg.record_payloads = record;
        self
    }

    /// RMS (16-bit units) that `threshold: 1.0` maps to (default 2000).
    pub fn vad_rms_at_threshold_one(mut self, rms: f64) -> Self {
        self.cfg.rms_at_threshold_one = rms;
        self
    }

    /// Energetic 10 ms windows needed before `speech_started` (default 2).
    pub fn vad_onset_windows(mut self, windows: u32) -> Self {
        self.cfg.vad_onset_windows = windows.max(1);
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(self) -> std::io::Result<MockRealtime> {
        MockRealtime::start_inner(self.cfg, self.script).await
    }
}

/// Records of one session, shared between its task and [`SessionHandle`]s.
#[derive(Debug, Default)]
pub(crate) struct SessionState {
    pub(crate) client_events: Vec<ClientEvent>,
    pub(crate) server_events: Vec<ServerEvent>,
    pub(crate) violations: Vec<Violation>,
    pub(crate) truncations: Vec<Truncation>,
    pub(crate) received_audio: Vec<u8>,
    pub(crate) received_audio_bytes: usize,
    pub(crate) assistant_items: Vec<AssistantItem>,
    pub(crate) responses: Vec<ResponseRecord>,
    pub(crate) function_calls: Vec<FunctionCallRecord>,
    pub(crate) session: Value,
    pub(crate) closed: Option<CloseRecord>,
}

#[derive(Debug)]
enum Command {
    SendRaw(String),
    Error(String, String),
    Drop,
    Close(u16, String),
    Push(ResponseScript),
}

#[derive(Debug)]
pub(crate) struct SharedSession {
    id: String,
    model: String,
    number: usize,
    opened_at: Instant,
    headers: Vec<(String, String)>,
    pub(crate) state: Observed<SessionState>,
    cmd: mpsc::UnboundedSender<Command>,
}

/// A handle on one mock session: inspection, waiting and fault injection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    inner: Arc<SharedSession>,
}

fn describe_session(s: &SessionState) -> String {
    let tail = |n: usize, v: &[String]| v[v.len().saturating_sub(n)..].join(", ");
    let client: Vec<String> = s
        .client_events
        .iter()
        .map(|e| e.event_type().to_string())
        .collect();
    let server: Vec<String> = s
        .server_events
        .iter()
        .map(|e| e.event_type.clone())
        .collect();
    format!(
        "{} client events (last: {}); {} server events (last: {}); violations: {:?}; closed: {:?}",
        client.len(),
        tail(8, &client),
        server.len(),
        tail(8, &server),
        s.violations.iter().map(|v| v.kind).collect::<Vec<_>>(),
        s.closed.as_ref().map(|c| &c.by)
    )
}

impl SessionHandle {
    fn state(&self) -> &Observed<SessionState> {
        &self.inner.state
    }

    /// The session id (`sess_…`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The `model` query parameter of the upgrade.
    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// 1-based order in which the mock accepted this session.
    pub fn number(&self) -> usize {
        self.inner.number
    }

    /// When the upgrade was accepted.
    pub fn opened_at(&self) -> Instant {
        self.inner.opened_at
    }

    /// The upgrade request's headers (names lower-case), including `authorization`.
    pub fn request_headers(&self) -> &[(String, String)] {
        &self.inner.headers
    }

    /// A request header's value.
    pub fn request_header(&self, name: &str) -> Option<&str> {
        self.inner
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every client event received so far.
    pub fn client_events(&self) -> Vec<ClientEvent> {
        self.state().read(|s| s.client_events.clone())
    }

    /// Client events of one `type`.
    pub fn client_events_of_type(&self, event_type: &str) -> Vec<ClientEvent> {
        self.state().read(|s| {
            s.client_events
                .iter()
                .filter(|e| e.event_type() == event_type)
                .cloned()
                .collect()
        })
    }

    /// Every server event sent so far.
    pub fn server_events(&self) -> Vec<ServerEvent> {
        self.state().read(|s| s.server_events.clone())
    }

    /// The `type`s of the server events sent so far, in order.
    pub fn server_event_types(&self) -> Vec<String> {
        self.state().read(|s| {
            s.server_events
                .iter()
                .map(|e| e.event_type.clone())
                .collect()
        })
    }

    /// Protocol violations detected so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.state().read(|s| s.violations.clone())
    }

    /// Truncation requests so far (accepted or not).
    pub fn truncations(&self) -> Vec<Truncation> {
        self.state().read(|s| s.truncations.clone())
    }

    /// All audio bytes received via `input_audio_buffer.append`, concatenated (empty when
    /// payload recording is off).
    pub fn received_audio(&self) -> Vec<u8> {
        self.state().read(|s| s.received_audio.clone())
    }

    /// Number of audio bytes received via appends.
    pub fn received_audio_len(&self) -> usize {
        self.state().read(|s| s.received_audio_bytes)
    }

    /// Assistant audio messages produced so far.
    pub fn assistant_items(&self) -> Vec<AssistantItem> {
        self.state().read(|s| s.assistant_items.clone())
    }

    /// The exact audio bytes sent so far for assistant item `item_id`.
    pub fn assistant_audio(&self, item_id: &str) -> Option<Vec<u8>> {
        self.state().read(|s| {
            s.assistant_items
                .iter()
                .find(|a| a.item_id == item_id)
                .map(|a| a.audio.clone())
        })
    }

    /// All assistant audio sent in this session, in order of items.
    pub fn all_assistant_audio(&self) -> Vec<u8> {
        self.state().read(|s| {
            s.assistant_items
                .iter()
                .flat_map(|a| a.audio.clone())
                .collect()
        })
    }

    /// Responses so far.
    pub fn responses(&self) -> Vec<ResponseRecord> {
        self.state().read(|s| s.responses.clone())
    }

    /// Function calls made so far.
    pub fn function_calls(&self) -> Vec<FunctionCallRecord> {
        self.state().read(|s| s.function_calls.clone())
    }

    /// The current effective session configuration.
    pub fn session_config(&self) -> Value {
        self.state().read(|s| s.session.clone())
    }

    /// How the socket ended, if it has.
    pub fn closed(&self) -> Option<CloseRecord> {
        self.state().read(|s| s.closed.clone())
    }

    /// Waits for the first client event (received before or after this call) matching `pred`.
    pub async fn wait_for_event(
        &self,
        pred: impl Fn(&ClientEvent) -> bool,
        timeout: Duration,
    ) -> Result<ClientEvent, WaitError> {
        self.wait_for_nth_event(pred, 1, timeout).await
    }

    /// Waits for the `n`-th (1-based) client event matching `pred`.
    pub async fn wait_for_nth_event(
        &self,
        pred: impl Fn(&ClientEvent) -> bool,
        n: usize,
        timeout: Duration,
    ) -> Result<ClientEvent, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("client event #{n} matching the predicate"),
                |s| {
                    s.client_events
                        .iter()
                        .filter(|e| pred(e))
                        .nth(n.saturating_sub(1))
                        .cloned()
                },
                describe_session,
            )
            .await
    }

    /// Waits for the first client event of `event_type`.
    pub async fn wait_for_event_type(
        &self,
        event_type: &str,
        timeout: Duration,
    ) -> Result<ClientEvent, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("client event {event_type}"),
                |s| {
                    s.client_events
                        .iter()
                        .find(|e| e.event_type() == event_type)
                        .cloned()
                },
                describe_session,
            )
            .await
    }

    /// Waits for the `n`-th (1-based) server event of `event_type` the mock sent.
    pub async fn wait_for_server_event(
        &self,
        event_type: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<ServerEvent, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("server event #{n} of type {event_type}"),
                |s| {
                    s.server_events
                        .iter()
                        .filter(|e| e.event_type == event_type)
                        .nth(n.saturating_sub(1))
                        .cloned()
                },
                describe_session,
            )
            .await
    }

    /// Waits until the `n`-th (1-based) response has ended (`response.done` sent).
    pub async fn wait_for_response_done(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<ResponseRecord, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("response #{n} to finish"),
                |s| {
                    s.responses
                        .get(n.saturating_sub(1))
                        .filter(|r| r.done_at.is_some())
                        .cloned()
                },
                describe_session,
            )
            .await
    }

    /// Waits for the `n`-th (1-based) truncation request.
    pub async fn wait_for_truncation(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Truncation, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("truncation #{n}"),
                |s| s.truncations.get(n.saturating_sub(1)).cloned(),
                describe_session,
            )
            .await
    }

    /// Waits for the first violation of `kind`.
    pub async fn wait_for_violation(
        &self,
        kind: ViolationKind,
        timeout: Duration,
    ) -> Result<Violation, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("a {kind:?} violation"),
                |s| s.violations.iter().find(|v| v.kind == kind).cloned(),
                describe_session,
            )
            .await
    }

    /// Waits until at least `bytes` audio bytes have been appended.
    pub async fn wait_for_received_audio(
        &self,
        bytes: usize,
        timeout: Duration,
    ) -> Result<usize, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("{bytes} appended audio bytes"),
                |s| (s.received_audio_bytes >= bytes).then_some(s.received_audio_bytes),
                describe_session,
            )
            .await
    }

    /// Waits until the function call `call_id` has been answered with a
    /// `function_call_output` (and returns its record).
    pub async fn wait_for_function_output(
        &self,
        call_id: &str,
        timeout: Duration,
    ) -> Result<FunctionCallRecord, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("function_call_output for {call_id}"),
                |s| {
                    s.function_calls
                        .iter()
                        .find(|c| c.call_id == call_id && c.output.is_some())
                        .cloned()
                },
                describe_session,
            )
            .await
    }

    /// Waits until the socket has ended.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<CloseRecord, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || "the session socket to close".to_string(),
                |s| s.closed.clone(),
                describe_session,
            )
            .await
    }

    /// Appends a response to this session's script.
    pub fn push_response(&self, response: ResponseScript) {
        let _ = self.inner.cmd.send(Command::Push(response));
    }

    /// Sends a raw text frame (anything, even invalid).
    pub fn send_raw(&self, text: &str) {
        let _ = self.inner.cmd.send(Command::SendRaw(text.to_string()));
    }

    /// Sends an `error` event with `code` and `message`.
    pub fn send_error(&self, code: &str, message: &str) {
        let _ = self
            .inner
            .cmd
            .send(Command::Error(code.to_string(), message.to_string()));
    }

    /// Drops the TCP connection without a close frame.
    pub fn drop_connection(&self) {
        let _ = self.inner.cmd.send(Command::Drop);
    }

    /// Sends a close frame with `code` and `reason` and ends the session.
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self
            .inner
            .cmd
            .send(Command::Close(code, reason.to_string()));
    }
}

/// A refused upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedUpgrade {
    /// When.
    pub at: Instant,
    /// Request path and query.
    pub path: String,
    /// Status answered.
    pub status: u16,
    /// Body answered.
    pub body: String,
}

#[derive(Debug, Default)]
struct MockState {
    sessions: Vec<SessionHandle>,
    refused: Vec<RefusedUpgrade>,
    refuse_queue: VecDeque<u16>,
    script: Script,
    /// What the next upgrades get, one each, in order (then `script`).
    plans: VecDeque<Plan>,
}

/// What one upgrade gets ([`MockRealtime::push_session_script`], [`MockRealtime::push_refusal`]).
#[derive(Debug)]
enum Plan {
    Script(Script),
    Refuse(u16),
}

#[derive(Debug)]
struct Shared {
    cfg: Arc<MockConfig>,
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

/// The mock OpenAI Realtime server. Cheap to clone; it shuts down when the last clone is
/// dropped (open sessions are dropped too).
#[derive(Debug, Clone)]
pub struct MockRealtime {
    inner: Arc<Inner>,
}

impl MockRealtime {
    /// Starts a mock with default settings and the default script.
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    /// A builder for custom settings.
    pub fn builder() -> MockRealtimeBuilder {
        MockRealtimeBuilder::default()
    }

    async fn start_inner(cfg: MockConfig, script: Script) -> std::io::Result<Self> {
        let (listener, addr) = bind_local().await?;
        let shared = Arc::new(Shared {
            cfg: Arc::new(cfg),
            state: Observed::new(MockState {
                script,
                ..MockState::default()
            }),
            cancel: CancellationToken::new(),
        });
        let s = shared.clone();
        spawn_server(listener, shared.cancel.clone(), move |req| {
            let s = s.clone();
            async move { handle_upgrade(s, req) }
        });
        Ok(Self {
            inner: Arc::new(Inner { addr, shared }),
        })
    }

    /// `http://127.0.0.1:PORT/v1` — the value for `OPENAI_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.inner.addr)
    }

    /// `ws://127.0.0.1:PORT/v1/realtime?model={model}`.
    pub fn ws_url(&self, model: &str) -> String {
        format!("ws://{}/v1/realtime?model={model}", self.inner.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    fn state(&self) -> &Observed<MockState> {
        &self.inner.shared.state
    }

    /// Replaces the script used by sessions opened from now on.
    pub fn set_script(&self, script: Script) {
        self.state().update(|s| s.script = script);
    }

    /// The next upgrade accepted plays `script`. Plans are queued, one per upgrade, in order
    /// (with [`MockRealtime::push_refusal`]); once they are used, sessions play the mock's
    /// script again. Lets a test script each session of a reconnecting call.
    pub fn push_session_script(&self, script: Script) {
        self.state()
            .update(|s| s.plans.push_back(Plan::Script(script)));
    }

    /// The next upgrade, once the plans queued before it are used, is refused with HTTP
    /// `status` (and an OpenAI-shaped JSON error).
    pub fn push_refusal(&self, status: u16) {
        self.state()
            .update(|s| s.plans.push_back(Plan::Refuse(status)));
    }

    /// Refuses the next `count` upgrades with HTTP `status` (and an OpenAI-shaped JSON error).
    pub fn refuse_next_upgrades(&self, count: usize, status: u16) {
        self.state()
            .update(|s| s.refuse_queue.extend(std::iter::repeat_n(status, count)));
    }

    /// Upgrades refused so far (bad auth, bad path, scripted refusals).
    pub fn refused_upgrades(&self) -> Vec<RefusedUpgrade> {
        self.state().read(|s| s.refused.clone())
    }

    /// Sessions accepted so far, in order.
    pub fn sessions(&self) -> Vec<SessionHandle> {
        self.state().read(|s| s.sessions.clone())
    }

    /// Waits for the `n`-th (1-based) accepted session.
    pub async fn wait_for_session(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<SessionHandle, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("session #{n}"),
                |s| s.sessions.get(n.saturating_sub(1)).cloned(),
                |s| {
                    format!(
                        "{} sessions, {} refused upgrades",
                        s.sessions.len(),
                        s.refused.len()
                    )
                },
            )
            .await
    }

    /// Waits for the `n`-th (1-based) refused upgrade.
    pub async fn wait_for_refused_upgrade(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<RefusedUpgrade, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("refused upgrade #{n}"),
                |s| s.refused.get(n.saturating_sub(1)).cloned(),
                |s| format!("{} refused upgrades", s.refused.len()),
            )
            .await
    }

    /// Stops accepting connections and drops every open session.
    pub fn shutdown(&self) {
        self.inner.shared.cancel.cancel();
    }
}

fn openai_error(status: StatusCode, message: &str, code: Option<&str>) -> (StatusCode, Value) {
    (
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
    )
}

static SESSION_COUNTER: AtomicU64 = AtomicU64::new(1);

fn handle_upgrade(shared: Arc<Shared>, mut req: Request<Incoming>) -> ServerResponse {
    let now = Instant::now();
    let path_q = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let refuse = |status: StatusCode, body: Value| {
        shared.state.update(|s| {
            s.refused.push(RefusedUpgrade {
                at: now,
                path: path_q.clone(),
                status: status.as_u16(),
                body: body.to_string(),
            })
        });
        json_response(status, &body)
    };
    if req.uri().path() != "/v1/realtime" {
        let (st, body) = openai_error(
            StatusCode::NOT_FOUND,
            &format!("Invalid URL ({} {})", req.method(), req.uri().path()),
            None,
        );
        return refuse(st, body);
    }
    let bearer = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    let Some(key) = bearer else {
        let (st, body) = openai_error(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            None,
        );
        return refuse(st, body);
    };
    if let Some(expected) = &shared.cfg.api_key
        && &key != expected
    {
        let shown: String = key
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let (st, body) = openai_error(
            StatusCode::UNAUTHORIZED,
            &format!("Incorrect API key provided: ****{shown}."),
            Some("invalid_api_key"),
        );
        return refuse(st, body);
    }
    let planned = shared.state.update(|s| match s.plans.front() {
        Some(Plan::Refuse(status)) => {
            let status = *status;
            s.plans.pop_front();
            Some(status)
        }
        _ => s.refuse_queue.pop_front(),
    });
    if let Some(status) = planned {
        let st = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (st, body) = openai_error(
            st,
            "The mock was scripted to refuse this upgrade.",
            Some("mock_refused"),
        );
        return refuse(st, body);
    }
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let model = query
        .iter()
        .find(|(k, _)| k == "model")
        .map(|(_, v)| v.clone());
    let Some(model) = model.or_else(|| {
        query
            .iter()
            .any(|(k, _)| k == "call_id")
            .then(|| "gpt-realtime".to_string())
    }) else {
        let (st, body) = openai_error(
            StatusCode::BAD_REQUEST,
            "Missing required parameter: 'model'.",
            Some("missing_required_parameter"),
        );
        return refuse(st, body);
    };
    let response =
        match tokio_tungstenite::tungstenite::handshake::server::create_response_with_body(
            &req,
            http_body_util::Full::<bytes::Bytes>::default,
        ) {
            Ok(r) => r,
            Err(e) => {
                let (st, body) = openai_error(
                    StatusCode::BAD_REQUEST,
                    &format!("WebSocket upgrade required: {e}"),
                    None,
                );
                return refuse(st, body);
            }
        };
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let n = SESSION_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag = format!("{n:04x}");
    let id = format!("sess_{tag}{:016x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let beta = req.headers().contains_key("openai-beta");
    let script = shared.state.update(|s| match s.plans.front() {
        Some(Plan::Script(_)) => match s.plans.pop_front() {
            Some(Plan::Script(script)) => script,
            _ => s.script.clone(),
        },
        _ => s.script.clone(),
    });
    let mut session = SharedSession {
        id: id.clone(),
        model: model.clone(),
        number: 0,
        opened_at: now,
        headers,
        state: Observed::new(SessionState {
            session: engine::default_session(&id, &model),
            ..SessionState::default()
        }),
        cmd: cmd_tx,
    };
    if beta {
        session.state.update(|s| {
            s.violations.push(Violation {
                at: now,
                kind: ViolationKind::BetaHeader,
                detail: "OpenAI-Beta header present; the GA interface takes none".into(),
                event_index: None,
            })
        });
    }
    let session = shared.state.update(|s| {
        session.number = s.sessions.len() + 1;
        let session = Arc::new(session);
        s.sessions.push(SessionHandle {
            inner: session.clone(),
        });
        session
    });
    let cfg = shared.cfg.clone();
    let cancel = shared.cancel.clone();
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(&mut req).await {
            Ok(u) => u,
            Err(e) => {
                session.state.update(|s| {
                    s.closed = Some(CloseRecord {
                        at: Instant::now(),
                        by: ClosedBy::ClientVanished {
                            error: format!("upgrade failed: {e}"),
                        },
                    })
                });
                return;
            }
        };
        let config = WebSocketConfig::default().max_message_size(Some(32 << 20));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let engine = Engine::new(cfg, session.clone(), script, tag);
        run_session(ws, engine, session, cmd_rx, cancel).await;
    });
    response
}

async fn run_session<S>(
    mut ws: WebSocketStream<S>,
    mut engine: Engine,
    session: Arc<SharedSession>,
    mut cmds: mpsc::UnboundedReceiver<Command>,
    cancel: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    engine.start(Instant::now());
    let closed_by = 'session: loop {
        // Flush what the engine produced.
        for out in std::mem::take(&mut engine.out) {
            match out {
                Out::Text(t) => {
                    if let Err(e) = ws.send(Message::text(t)).await {
                        break 'session ClosedBy::ClientVanished {
                            error: e.to_string(),
                        };
                    }
                }
                Out::Drop => break 'session ClosedBy::MockDropped,
                Out::Close(code, reason) => {
                    let _ = ws
                        .send(Message::Close(Some(CloseFrame {
                            code: code.into(),
                            reason: reason.into(),
                        })))
                        .await;
                    break 'session ClosedBy::MockClosed { code };
                }
            }
        }
        if engine.is_dead() {
            break ClosedBy::MockDropped;
        }
        let due = engine.next_due();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break ClosedBy::Shutdown,
            cmd = cmds.recv() => match cmd {
                Some(Command::SendRaw(t)) => engine.send_raw(Instant::now(), t),
                Some(Command::Error(code, message)) => {
                    engine.error(Instant::now(), Some(&code), &message, None, None);
                }
                Some(Command::Drop) => break ClosedBy::MockDropped,
                Some(Command::Close(code, reason)) => {
                    let _ = ws.send(Message::Close(Some(CloseFrame { code: code.into(), reason: reason.into() }))).await;
                    break ClosedBy::MockClosed { code };
                }
                Some(Command::Push(r)) => engine.push_response(r),
                None => {}
            },
            _ = async { if let Some(d) = due { tokio::time::sleep_until(d).await } }, if due.is_some() => {
                engine.poll(Instant::now());
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => engine.on_text(Instant::now(), t.as_str()),
                Some(Ok(Message::Binary(b))) => engine.on_binary(Instant::now(), b.len()),
                Some(Ok(Message::Close(frame))) => {
                    // Let tungstenite answer the close handshake.
                    let _ = ws.flush().await;
                    break ClosedBy::ClientClose {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break ClosedBy::ClientVanished { error: e.to_string() },
                None => break ClosedBy::ClientVanished { error: "connection closed without a close frame".into() },
            },
        }
    };
    let at = Instant::now();
    if matches!(closed_by, ClosedBy::MockClosed { .. }) {
        // Complete the closing handshake like a real server: wait (bounded) for the client's
        // close frame before dropping the connection. Dropping it at once would reset it while
        // the client's data is unread, and the client could see a broken pipe instead of the
        // close frame.
        let handshake = async {
            while let Some(Ok(message)) = ws.next().await {
                if message.is_close() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), handshake).await;
    }
    drop(ws);
    session
        .state
        .update(|s| s.closed = Some(CloseRecord { at, by: closed_by }));
}
