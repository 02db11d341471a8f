//! Lean mode of the OpenAI peers: one mock serving Realtime GA (`/v1/realtime`) and GPT-Live
//! (`/v1/live/sessions`) sessions by the thousand, for `cargo xtask bench`.
//!
//! [`MockRealtime`](super::MockRealtime) and [`MockLive`](crate::live::MockLive) record every
//! event, validate it and run a real energy VAD: right for tests, too heavy to run a thousand
//! sessions next to the server on two cores. [`LeanAgent`] speaks the same wire protocols (the
//! event shapes those mocks send) with the least work per frame and records nothing but
//! counters and latencies, which each session deposits in its call's
//! [`CallSlot`] when it ends (the caller side is
//! [`twilio::lean`](crate::twilio::lean); what both share is [`crate::lean`]):
//!
//! * `input_audio_buffer.append` is recognised without building a JSON value and only the
//!   first 20 base64 characters are decoded: enough for the frame's stamp (call, sequence
//!   number, speech flag), which gives the caller → agent latency and loss;
//! * its "VAD" reads the speech flag of the stamps (the caller simulator sets it on the frames
//!   it "speaks"): `speech_started` on the first flagged frame, `speech_stopped`, `committed`,
//!   the user item and its transcript after 500 ms (25 frames) without the flag — on the
//!   input-audio clock, like the service — and then a new response (`create_response`);
//!   speech during a response cancels it (`interrupt_response`);
//! * responses follow the GA event order (`response.created`, item and part added, audio and
//!   transcript deltas, the `done` events, `response.done` with usage) and send
//!   [`RESPONSE_MS`] of stamped 440 Hz tone in 100 ms deltas at 4× real time, as the service
//!   sends audio faster than it is played;
//! * `conversation.item.truncate` is answered with `conversation.item.truncated`.
//!
//! With `agent.backend = "live"` the server connects to `/v1/live/sessions` and the same mock
//! speaks GPT-Live instead: `session.start` → `session.started`; output is one continuous
//! track paced to the input (a 100 ms delta per 100 ms of caller audio, stamped tone while
//! speaking, silence otherwise); caller speech stops the speech without any event (the model
//! interrupts itself); the greeting is a `session.commentary.append`; `session.close` →
//! `session.closed`, then the socket is closed.
//!
//! With `--tool-calls N` (Realtime only), the first N caller turns of each call are answered
//! with a function call instead of audio: a completed response whose one output item is a
//! `function_call` of the configured tool ([`LeanTool`]), in the GA event order
//! (`response.created`, `output_item.added`, `function_call_arguments.delta`/`.done`,
//! `output_item.done`, `response.done`). The server runs the webhook and sends the
//! `function_call_output` and a `response.create`, which the mock answers with audio as
//! usual. The time from `response.done` sent to the `function_call_output` received is the
//! tool round trip as the agent sees it; the output must be the webhook's answer.
//!
//! Every other client event is parsed as JSON (they are rare). Sessions are tied to their
//! simulated call by the call SID in the session instructions (the bench prompt contains
//! `{{call_sid}}`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::lean::{self as shared, AgentReport, CallSlot, Stamp};

/// Audio per response.
pub const RESPONSE_MS: u64 = 2_500;
/// Bytes per audio delta (100 ms of μ-law).
const DELTA_BYTES: usize = 800;
/// Deltas are sent at this multiple of real time.
const SPEED: u64 = 4;
/// Silence (in 20 ms frames) that ends the caller's turn (`silence_duration_ms` 500).
const SILENCE_FRAMES: u32 = 25;
/// `prefix_padding_ms`.
const PREFIX_PADDING_MS: u64 = 300;
/// The API key the benchmark configures.
pub const API_KEY: &str = "sk-bench-0000000000000000";

const APPEND_PREFIX: &str = r#"{"type":"input_audio_buffer.append","audio":""#;
const LIVE_APPEND_PREFIX: &str = r#"{"type":"session.input_audio.append","audio":""#;

/// The tool the lean agent's function calls name (`--tool-calls` in the benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeanTool {
    /// The tool's name, as the server has it configured.
    pub name: &'static str,
    /// The arguments of every call.
    pub arguments: &'static str,
    /// The `function_call_output` the server must send back (compared as JSON values).
    pub answer: &'static str,
}

impl Default for LeanTool {
    /// The benchmark's `order_status` tool.
    fn default() -> Self {
        LeanTool {
            name: "order_status",
            arguments: r#"{"order_id":"A1234"}"#,
            answer: r#"{"status":"shipped","eta":"tomorrow"}"#,
        }
    }
}

/// Calls by call SID, registered by the caller simulator before it places the call.
#[derive(Debug, Default)]
pub struct Registry {
    calls: Mutex<HashMap<String, Arc<CallSlot>>>,
}

impl Registry {
    /// Registers call `call_sid` (before it is placed).
    pub fn register(&self, call_sid: &str, slot: Arc<CallSlot>) {
        self.lock().insert(call_sid.to_owned(), slot);
    }

    fn find(&self, call_sid: &str) -> Option<Arc<CallSlot>> {
        self.lock().get(call_sid).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CallSlot>>> {
        // A poisoned map is still a valid map.
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running mock.
#[derive(Debug)]
pub struct LeanAgent {
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
    /// Sessions whose socket is still open.
    live: Arc<AtomicUsize>,
    /// Sessions that never named a known call.
    pub orphans: Arc<AtomicUsize>,
}

/// A function call sent and not yet answered.
struct PendingTool {
    call_id: String,
    /// When its `response.done` was sent ([`shared::now_ns`]).
    sent_ns: u64,
}

impl LeanAgent {
    /// Binds `127.0.0.1:0` and serves sessions for the calls in `registry`; each session
    /// answers its first `tool_calls` caller turns with a function call of `tool` (0: never).
    pub async fn start(
        registry: Arc<Registry>,
        tool_calls: u32,
        tool: LeanTool,
    ) -> std::io::Result<LeanAgent> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let live = Arc::new(AtomicUsize::new(0));
        let orphans = Arc::new(AtomicUsize::new(0));
        let (l, o) = (Arc::clone(&live), Arc::clone(&orphans));
        let accept = tokio::spawn(async move {
            loop {
                let (tcp, _) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(_) => {
                        // EMFILE and friends: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                let (registry, live, orphans) =
                    (Arc::clone(&registry), Arc::clone(&l), Arc::clone(&o));
                live.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(Box::pin(async move {
                    session(tcp, registry, orphans, tool_calls, tool).await;
                    live.fetch_sub(1, Ordering::Relaxed);
                }));
            }
        });
        Ok(LeanAgent {
            addr,
            accept,
            live,
            orphans,
        })
    }

    /// `OPENAI_BASE_URL` for the server.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Sessions still open.
    pub fn live_sessions(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

impl Drop for LeanAgent {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn session(
    tcp: TcpStream,
    registry: Arc<Registry>,
    orphans: Arc<AtomicUsize>,
    tool_calls: u32,
    tool: LeanTool,
) {
    let _ = tcp.set_nodelay(true);
    let is_live = std::sync::atomic::AtomicBool::new(false);
    // The signature is tungstenite's callback type.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let auth_ok = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {API_KEY}"));
        let path = req.uri().path();
        if (path == "/v1/realtime" || path == "/v1/live/sessions") && auth_ok {
            is_live.store(path == "/v1/live/sessions", Ordering::Relaxed);
            Ok(resp)
        } else {
            let mut refusal = ErrorResponse::new(Some("refused by the bench mock".into()));
            *refusal.status_mut() = http::StatusCode::UNAUTHORIZED;
            Err(refusal)
        }
    };
    // tungstenite zero-fills its whole read buffer before every read: keep it small.
    let config = WebSocketConfig::default().read_buffer_size(2 * 1024);
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(tcp, check, Some(config)).await
    else {
        return;
    };
    let mut s = Session::new(ws);
    s.live = is_live.load(Ordering::Relaxed);
    if !s.live {
        s.tools_left = tool_calls;
        s.tool = tool;
    }
    s.run(&registry).await;
    match s.slot.take() {
        Some(slot) => slot.deposit(std::mem::take(&mut s.report)),
        None => {
            orphans.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Active {
    id: String,
    item_id: String,
    bytes_left: usize,
    deltas: u32,
    next_delta: Instant,
}

struct Session {
    ws: WebSocketStream<TcpStream>,
    slot: Option<Arc<CallSlot>>,
    report: AgentReport,
    ready_at: u64,
    ids: u64,
    /// Input audio received, ms (the VAD's clock).
    audio_ms: u64,
    in_speech: bool,
    quiet_frames: u32,
    user_item: String,
    last_item: Option<String>,
    active: Option<Active>,
    agent_seq: u32,
    tone: Vec<u8>,
    stamp_buf: Vec<u8>,
    closed: bool,
    /// GPT-Live protocol (`/v1/live/sessions`).
    live: bool,
    /// GPT-Live: input bytes not yet matched by output.
    live_pending: usize,
    /// Caller turns still to be answered with a function call (`--tool-calls`).
    tools_left: u32,
    /// The function call awaiting its output.
    tool_pending: Option<PendingTool>,
    /// The tool the function calls name.
    tool: LeanTool,
}

impl Session {
    fn new(ws: WebSocketStream<TcpStream>) -> Session {
        Session {
            ws,
            slot: None,
            report: AgentReport::default(),
            ready_at: u64::MAX,
            ids: 0,
            audio_ms: 0,
            in_speech: false,
            quiet_frames: 0,
            user_item: String::new(),
            last_item: None,
            active: None,
            agent_seq: 0,
            tone: crate::audio::tone(
                crate::audio::AGENT_TONE_HZ,
                crate::audio::AGENT_TONE_AMPLITUDE,
                (DELTA_BYTES / crate::audio::BYTES_PER_MS) as u32,
            ),
            stamp_buf: Vec::with_capacity(16),
            closed: false,
            live: false,
            live_pending: 0,
            tools_left: 0,
            tool_pending: None,
            tool: LeanTool::default(),
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.ids += 1;
        format!("{prefix}_B{:020x}", self.ids)
    }

    /// Queues one server event (`body` gets `type` and `event_id`).
    async fn emit(&mut self, ty: &str, mut body: Value) {
        let event_id = self.id("event");
        if let Some(obj) = body.as_object_mut() {
            obj.insert("type".into(), Value::String(ty.to_owned()));
            obj.insert("event_id".into(), Value::String(event_id));
        }
        self.feed(body.to_string()).await;
    }

    async fn feed(&mut self, text: String) {
        if !self.closed && self.ws.feed(Message::text(text)).await.is_err() {
            self.closed = true;
        }
    }

    async fn flush(&mut self) {
        if !self.closed && self.ws.flush().await.is_err() {
            self.closed = true;
        }
    }

    async fn run(&mut self, registry: &Registry) {
        let sess = self.id("sess");
        if !self.live {
            self.emit_created(&sess).await;
        }
        let far = || Instant::now() + Duration::from_secs(86_400);
        let timer = tokio::time::sleep_until(far());
        tokio::pin!(timer);
        let mut armed = false;
        while !self.closed {
            // GPT-Live's output is paced by the input, not by a timer.
            let due = if self.live {
                None
            } else {
                self.active.as_ref().map(|a| a.next_delta)
            };
            match due {
                Some(at) if !armed || timer.deadline() != at => {
                    timer.as_mut().reset(at);
                    armed = true;
                }
                None if armed => {
                    timer.as_mut().reset(far());
                    armed = false;
                }
                _ => {}
            }
            tokio::select! {
                biased;
                msg = self.ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        self.on_text(text.as_str(), registry).await;
                        self.flush().await;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        // tungstenite answers the close handshake on the next write/flush.
                        let _ = self.ws.flush().await;
                        self.closed = true;
                    }
                    Some(Ok(_)) => {}
                },
                () = &mut timer, if armed => {
                    armed = false;
                    self.send_delta().await;
                    self.flush().await;
                }
            }
        }
    }

    /// Realtime: the `session.created` the service sends on connect.
    async fn emit_created(&mut self, sess: &str) {
        self.emit(
            "session.created",
            json!({"session": {"type": "realtime", "object": "realtime.session",
                "id": sess, "model": "gpt-realtime", "output_modalities": ["audio"],
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}},
                          "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}}}}),
        )
        .await;
        self.flush().await;
    }

    async fn on_text(&mut self, text: &str, registry: &Registry) {
        if let Some(audio) = text
            .strip_prefix(APPEND_PREFIX)
            .or_else(|| text.strip_prefix(LIVE_APPEND_PREFIX))
            .and_then(|rest| rest.strip_suffix(r#""}"#))
        {
            return self.on_audio(audio).await;
        }
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            self.report.protocol_errors += 1;
            return;
        };
        let ty = v.get("type").and_then(Value::as_str).unwrap_or_default();
        match ty {
            "input_audio_buffer.append" => match v.get("audio").and_then(Value::as_str) {
                Some(audio) => self.on_audio(audio).await,
                None => self.report.protocol_errors += 1,
            },
            "session.update" => self.on_session_update(&v, registry).await,
            "session.start" if self.live => self.on_session_start(&v, registry).await,
            "session.commentary.append"
            | "session.instructions.append"
            | "session.thinking.append"
                if self.live =>
            {
                let ack = ty.replace(".append", ".appended");
                let at = self.audio_ms;
                self.emit(
                    &ack,
                    json!({"client_event_id": v.get("event_id"), "start_ms": at, "end_ms": at}),
                )
                .await;
                if ty == "session.commentary.append" && self.active.is_none() {
                    self.start_live_speech();
                }
            }
            "session.close" if self.live => {
                let seconds = self.audio_ms as f64 / 1000.0;
                let id = self.id("live");
                self.emit(
                    "session.closed",
                    json!({"reason": "close_requested", "usage": {"seconds": seconds},
                        "session": {"id": id, "expires_at": 0, "model": "gpt-live-1", "status": "active"}}),
                )
                .await;
                self.flush().await;
                // The server closes the socket next; the client's close frame ends the loop.
                if self.ws.send(Message::Close(None)).await.is_err() {
                    self.closed = true;
                }
            }
            "response.create" => {
                if self.active.is_some() {
                    self.emit(
                        "error",
                        json!({"error": {"type": "invalid_request_error",
                        "code": "conversation_already_has_active_response",
                        "message": "Conversation already has an active response in progress.",
                        "param": null, "event_id": null}}),
                    )
                    .await;
                } else {
                    self.start_response().await;
                }
            }
            "response.cancel" => {
                if self.active.is_some() {
                    self.cancel_response("client_cancelled").await;
                } else {
                    self.emit(
                        "error",
                        json!({"error": {"type": "invalid_request_error",
                        "code": "response_cancel_not_active",
                        "message": "Cancellation failed: no active response found",
                        "param": null, "event_id": null}}),
                    )
                    .await;
                }
            }
            "conversation.item.truncate" => {
                self.report.truncates += 1;
                let item_id = v.get("item_id").cloned().unwrap_or(Value::Null);
                let end = v.get("audio_end_ms").cloned().unwrap_or(Value::Null);
                self.emit(
                    "conversation.item.truncated",
                    json!({"item_id": item_id, "content_index": 0, "audio_end_ms": end}),
                )
                .await;
            }
            "conversation.item.create" => {
                let item = v.get("item").cloned().unwrap_or(Value::Null);
                if item.get("type").and_then(Value::as_str) == Some("function_call_output") {
                    self.on_tool_output(&item);
                }
                self.emit(
                    "conversation.item.added",
                    json!({"previous_item_id": self.last_item, "item": item}),
                )
                .await;
            }
            _ => self.report.protocol_errors += 1,
        }
    }

    async fn on_session_update(&mut self, v: &Value, registry: &Registry) {
        let session = v.get("session").cloned().unwrap_or(Value::Null);
        let instructions = session
            .get("instructions")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if self.slot.is_none() {
            self.slot = find_call_sid(instructions).and_then(|sid| registry.find(sid));
        }
        let pcmu = |dir: &str| {
            session
                .pointer(&format!("/audio/{dir}/format/type"))
                .and_then(Value::as_str)
                == Some("audio/pcmu")
        };
        if !pcmu("input") || !pcmu("output") {
            self.report.protocol_errors += 1;
        }
        let mut effective = session;
        if let Some(obj) = effective.as_object_mut() {
            obj.insert("object".into(), json!("realtime.session"));
            let id = self.id("sess");
            obj.insert("id".into(), json!(id));
        }
        self.emit("session.updated", json!({"session": effective}))
            .await;
        self.ready_at = shared::now_ns();
    }

    async fn on_session_start(&mut self, v: &Value, registry: &Registry) {
        let session = v.get("session").cloned().unwrap_or(Value::Null);
        let instructions = session
            .get("instructions")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if self.slot.is_none() {
            self.slot = find_call_sid(instructions).and_then(|sid| registry.find(sid));
        }
        if session.pointer("/audio/format") != Some(&json!({"type": "audio/pcmu", "rate": 8000})) {
            self.report.protocol_errors += 1;
        }
        let id = self.id("live");
        self.emit(
            "session.started",
            json!({"client_event_id": v.get("event_id"), "session": {"id": id,
                "expires_at": 4_102_444_800_i64, "model": "gpt-live-1", "status": "active",
                "audio": {"format": {"type": "audio/pcmu", "rate": 8000}}}}),
        )
        .await;
        self.ready_at = shared::now_ns();
    }

    /// GPT-Live: the model starts saying something (stamped tone, output paced by input).
    fn start_live_speech(&mut self) {
        self.report.responses += 1;
        self.active = Some(Active {
            id: String::new(),
            item_id: String::new(),
            bytes_left: (RESPONSE_MS as usize) * crate::audio::BYTES_PER_MS,
            deltas: 0,
            next_delta: Instant::now(),
        });
    }

    /// GPT-Live: one output delta (speech while speaking, else silence).
    async fn send_live_delta(&mut self) {
        let mut audio = vec![crate::audio::SILENCE; DELTA_BYTES];
        let mut seqs = Vec::new();
        if let (Some(a), Some(slot)) = (self.active.as_mut(), self.slot.clone()) {
            let n = a.bytes_left.min(DELTA_BYTES);
            audio[..n].copy_from_slice(&self.tone[..n]);
            for frame in audio[..n].chunks_mut(crate::audio::FRAME_BYTES) {
                self.agent_seq += 1;
                if crate::audio::stamp(frame, shared::stamp_id(slot.idx, self.agent_seq, false)) {
                    seqs.push(self.agent_seq);
                }
            }
            a.bytes_left -= n;
            if a.bytes_left == 0 {
                self.active = None;
            }
            let now = shared::now_ns();
            for &seq in &seqs {
                slot.set_agent_sent(seq, now);
            }
            if let Some(&last) = seqs.last() {
                slot.agent_last_seq.store(last, Ordering::Relaxed);
            }
        }
        let mut text = String::with_capacity(64 + DELTA_BYTES.div_ceil(3) * 4);
        text.push_str(r#"{"type":"session.output_audio.delta","delta":""#);
        base64::engine::general_purpose::STANDARD.encode_string(&audio, &mut text);
        text.push_str(r#""}"#);
        self.feed(text).await;
    }

    /// One caller frame (base64 μ-law).
    async fn on_audio(&mut self, b64: &str) {
        let now = shared::now_ns();
        let bytes = b64.len() / 4 * 3;
        self.audio_ms += (bytes / crate::audio::BYTES_PER_MS) as u64;
        if self.live {
            self.live_pending += bytes;
            while self.live_pending >= DELTA_BYTES {
                self.live_pending -= DELTA_BYTES;
                self.send_live_delta().await;
            }
        }
        // The stamp is in the first 13 bytes: decode 20 characters (15 bytes).
        self.stamp_buf.clear();
        let stamp = b64
            .get(..20)
            .and_then(|head| {
                base64::engine::general_purpose::STANDARD
                    .decode_vec(head, &mut self.stamp_buf)
                    .ok()
            })
            .and_then(|()| crate::audio::read_stamp(&self.stamp_buf))
            .map(Stamp::from_id);
        let Some(stamp) = stamp else {
            // GPT-Live: the bridge fills gaps in Twilio's stream (here: before the first and
            // after the last caller frame) with μ-law silence, which carries no stamp.
            let gap_silence =
                self.live && self.stamp_buf.iter().all(|&b| b == crate::audio::SILENCE);
            if !gap_silence {
                self.report.unstamped += 1;
            }
            return;
        };
        let Some(slot) = self.slot.clone() else {
            return;
        };
        if !stamp.is_call(slot.idx) {
            self.report.misrouted += 1;
            return;
        }
        self.report.caller_frames.on(stamp.seq);
        let sent = slot.caller_sent(stamp.seq);
        if sent != 0 && sent >= self.ready_at {
            self.report
                .latencies_us
                .push(shared::micros_between(sent, now));
        }
        // The VAD, on the input-audio clock.
        if stamp.speech {
            self.quiet_frames = 0;
            if !self.in_speech && self.live {
                // The model stops by itself; nothing tells the client.
                self.in_speech = true;
                slot.speech_started_at.store(now, Ordering::Relaxed);
                if self.active.take().is_some() {
                    self.report.responses_cancelled += 1;
                }
            } else if !self.in_speech {
                self.in_speech = true;
                self.user_item = self.id("item");
                slot.speech_started_at.store(now, Ordering::Relaxed);
                let start = self.audio_ms.saturating_sub(PREFIX_PADDING_MS);
                let item = self.user_item.clone();
                self.emit(
                    "input_audio_buffer.speech_started",
                    json!({"audio_start_ms": start, "item_id": item}),
                )
                .await;
                if self.active.is_some() {
                    self.cancel_response("turn_detected").await;
                }
            }
        } else if self.in_speech {
            self.quiet_frames += 1;
            if self.quiet_frames >= SILENCE_FRAMES && self.live {
                self.in_speech = false;
                if self.active.is_none() {
                    self.start_live_speech();
                }
            } else if self.quiet_frames >= SILENCE_FRAMES {
                self.in_speech = false;
                self.end_user_turn().await;
                if self.active.is_none() && self.tool_pending.is_none() {
                    if self.tools_left > 0 {
                        self.tools_left -= 1;
                        self.call_tool().await;
                    } else {
                        self.start_response().await;
                    }
                }
            }
        }
    }

    async fn end_user_turn(&mut self) {
        let item_id = std::mem::take(&mut self.user_item);
        let end = self.audio_ms;
        self.emit(
            "input_audio_buffer.speech_stopped",
            json!({"audio_end_ms": end, "item_id": item_id}),
        )
        .await;
        let previous = self.last_item.clone();
        self.emit(
            "input_audio_buffer.committed",
            json!({"previous_item_id": previous, "item_id": item_id}),
        )
        .await;
        let item = json!({"id": item_id, "object": "realtime.item", "type": "message",
            "status": "completed", "role": "user",
            "content": [{"type": "input_audio", "transcript": null}]});
        self.emit(
            "conversation.item.added",
            json!({"previous_item_id": previous, "item": item}),
        )
        .await;
        self.emit(
            "conversation.item.done",
            json!({"previous_item_id": previous, "item": item}),
        )
        .await;
        self.emit(
            "conversation.item.input_audio_transcription.completed",
            json!({"item_id": item_id, "content_index": 0,
                "transcript": "Sorry, one more question about my order.",
                "usage": {"type": "duration", "seconds": 1.1}}),
        )
        .await;
        self.last_item = Some(item_id);
    }

    async fn start_response(&mut self) {
        let id = self.id("resp");
        let item_id = self.id("item");
        self.report.responses += 1;
        self.emit(
            "response.created",
            json!({"response": {"object": "realtime.response", "id": id,
                "status": "in_progress", "status_details": null, "output": [],
                "conversation_id": "conv_bench", "output_modalities": ["audio"],
                "max_output_tokens": "inf", "usage": null, "metadata": null}}),
        )
        .await;
        let item = json!({"id": item_id, "object": "realtime.item", "type": "message",
            "status": "in_progress", "role": "assistant", "content": []});
        self.emit(
            "response.output_item.added",
            json!({"response_id": id, "output_index": 0, "item": item}),
        )
        .await;
        let previous = self.last_item.clone();
        self.emit(
            "conversation.item.added",
            json!({"previous_item_id": previous, "item": item}),
        )
        .await;
        self.emit(
            "response.content_part.added",
            json!({"response_id": id, "item_id": item_id, "output_index": 0,
                "content_index": 0, "part": {"type": "audio", "transcript": ""}}),
        )
        .await;
        self.last_item = Some(item_id.clone());
        self.active = Some(Active {
            id,
            item_id,
            bytes_left: (RESPONSE_MS as usize) * crate::audio::BYTES_PER_MS,
            deltas: 0,
            next_delta: Instant::now(),
        });
    }

    /// Answers the caller's turn with a function call of the bench tool: a whole completed
    /// response, sent at once (the model's arguments are short).
    async fn call_tool(&mut self) {
        let id = self.id("resp");
        let item_id = self.id("item");
        let call_id = self.id("call");
        self.report.tool_calls += 1;
        let name = self.tool.name;
        let args = self.tool.arguments;
        self.emit(
            "response.created",
            json!({"response": {"object": "realtime.response", "id": id,
                "status": "in_progress", "status_details": null, "output": [],
                "conversation_id": "conv_bench", "output_modalities": ["audio"],
                "max_output_tokens": "inf", "usage": null, "metadata": null}}),
        )
        .await;
        let added = json!({"id": item_id, "object": "realtime.item", "type": "function_call",
            "status": "in_progress", "name": name, "call_id": call_id, "arguments": ""});
        self.emit(
            "response.output_item.added",
            json!({"response_id": id, "output_index": 0, "item": added}),
        )
        .await;
        let previous = self.last_item.clone();
        self.emit(
            "conversation.item.added",
            json!({"previous_item_id": previous, "item": added}),
        )
        .await;
        self.emit(
            "response.function_call_arguments.delta",
            json!({"response_id": id, "item_id": item_id, "output_index": 0,
                "call_id": call_id, "delta": args}),
        )
        .await;
        self.emit(
            "response.function_call_arguments.done",
            json!({"response_id": id, "item_id": item_id, "output_index": 0,
                "call_id": call_id, "name": name, "arguments": args}),
        )
        .await;
        let item = json!({"id": item_id, "object": "realtime.item", "type": "function_call",
            "status": "completed", "name": name, "call_id": call_id, "arguments": args});
        self.emit(
            "response.output_item.done",
            json!({"response_id": id, "output_index": 0, "item": item}),
        )
        .await;
        self.emit(
            "conversation.item.done",
            json!({"previous_item_id": previous, "item": item}),
        )
        .await;
        self.last_item = Some(item_id);
        self.emit(
            "response.done",
            json!({"response": {"object": "realtime.response", "id": id, "status": "completed",
                "status_details": null, "output": [item], "conversation_id": "conv_bench",
                "output_modalities": ["audio"], "max_output_tokens": "inf", "metadata": null,
                "usage": {"total_tokens": 190, "input_tokens": 170, "output_tokens": 20,
                    "input_token_details": {"text_tokens": 120, "audio_tokens": 50,
                        "image_tokens": 0, "cached_tokens": 0},
                    "output_token_details": {"text_tokens": 20, "audio_tokens": 0}}}}),
        )
        .await;
        // The round trip starts when the events leave: flush now, not after the caller's frame.
        self.flush().await;
        self.tool_pending = Some(PendingTool {
            call_id,
            sent_ns: shared::now_ns(),
        });
    }

    /// A `function_call_output` item: the round trip ends if it answers the pending call with
    /// the webhook's answer.
    fn on_tool_output(&mut self, item: &Value) {
        let now = shared::now_ns();
        let call_id = item.get("call_id").and_then(Value::as_str);
        let Some(pending) = self
            .tool_pending
            .take_if(|p| Some(p.call_id.as_str()) == call_id)
        else {
            self.report.tool_bad_outputs += 1;
            return;
        };
        self.report
            .tool_rtt_us
            .push(shared::micros_between(pending.sent_ns, now));
        if !is_tool_answer(item.get("output").and_then(Value::as_str), self.tool.answer) {
            self.report.tool_bad_outputs += 1;
        }
    }

    async fn send_delta(&mut self) {
        let Some(slot) = self.slot.clone() else {
            // No call to stamp for: the response produces no audio.
            return self.finish_response("completed").await;
        };
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let n = a.bytes_left.min(DELTA_BYTES);
        let mut audio = self.tone[..n].to_vec();
        let mut seqs = Vec::with_capacity(n.div_ceil(crate::audio::FRAME_BYTES));
        for frame in audio.chunks_mut(crate::audio::FRAME_BYTES) {
            self.agent_seq += 1;
            if crate::audio::stamp(frame, shared::stamp_id(slot.idx, self.agent_seq, false)) {
                seqs.push(self.agent_seq);
            }
        }
        self.ids += 1;
        let mut text = String::with_capacity(200 + n.div_ceil(3) * 4);
        text.push_str(r#"{"type":"response.output_audio.delta","event_id":"event_B"#);
        push_hex(&mut text, self.ids);
        text.push_str(r#"","response_id":""#);
        text.push_str(&a.id);
        text.push_str(r#"","item_id":""#);
        text.push_str(&a.item_id);
        text.push_str(r#"","output_index":0,"content_index":0,"delta":""#);
        base64::engine::general_purpose::STANDARD.encode_string(&audio, &mut text);
        text.push_str(r#""}"#);
        a.bytes_left -= n;
        a.deltas += 1;
        a.next_delta += Duration::from_millis(n as u64 / crate::audio::BYTES_PER_MS as u64 / SPEED);
        let transcript = (a.deltas % 2 == 1).then(|| {
            json!({"response_id": a.id, "item_id": a.item_id, "output_index": 0,
                "content_index": 0, "delta": "word "})
        });
        let done = a.bytes_left == 0;
        let now = shared::now_ns();
        for &seq in &seqs {
            slot.set_agent_sent(seq, now);
        }
        if let Some(&last) = seqs.last() {
            slot.agent_last_seq.store(last, Ordering::Relaxed);
        }
        self.feed(text).await;
        if let Some(body) = transcript {
            self.emit("response.output_audio_transcript.delta", body)
                .await;
        }
        if done {
            self.finish_response("completed").await;
        }
    }

    async fn cancel_response(&mut self, reason: &str) {
        self.report.responses_cancelled += 1;
        self.finish_response_with("cancelled", json!({"type": "cancelled", "reason": reason}))
            .await;
    }

    async fn finish_response(&mut self, status: &str) {
        self.finish_response_with(status, Value::Null).await;
    }

    async fn finish_response_with(&mut self, status: &str, details: Value) {
        let Some(a) = self.active.take() else {
            return;
        };
        let ids = json!({"response_id": a.id, "item_id": a.item_id, "output_index": 0,
            "content_index": 0});
        self.emit("response.output_audio.done", ids.clone()).await;
        let mut t = ids.clone();
        t["transcript"] = json!("Thanks for calling, how can I help you today?");
        self.emit("response.output_audio_transcript.done", t).await;
        let mut p = ids;
        p["part"] =
            json!({"type": "audio", "transcript": "Thanks for calling, how can I help you today?"});
        self.emit("response.content_part.done", p).await;
        let item_status = if status == "completed" {
            "completed"
        } else {
            "incomplete"
        };
        let item = json!({"id": a.item_id, "object": "realtime.item", "type": "message",
            "status": item_status, "role": "assistant",
            "content": [{"type": "output_audio", "transcript": "Thanks for calling, how can I help you today?"}]});
        self.emit(
            "response.output_item.done",
            json!({"response_id": a.id, "output_index": 0, "item": item}),
        )
        .await;
        self.emit(
            "conversation.item.done",
            json!({"previous_item_id": null, "item": item}),
        )
        .await;
        let audio_tokens = u64::from(a.deltas) * 5;
        self.emit(
            "response.done",
            json!({"response": {"object": "realtime.response", "id": a.id, "status": status,
                "status_details": details, "output": [item], "conversation_id": "conv_bench",
                "output_modalities": ["audio"], "max_output_tokens": "inf", "metadata": null,
                "usage": {"total_tokens": 180 + audio_tokens, "input_tokens": 170,
                    "output_tokens": 10 + audio_tokens,
                    "input_token_details": {"text_tokens": 120, "audio_tokens": 50,
                        "image_tokens": 0, "cached_tokens": 0},
                    "output_token_details": {"text_tokens": 10, "audio_tokens": audio_tokens}}}}),
        )
        .await;
    }
}

fn push_hex(out: &mut String, n: u64) {
    use std::fmt::Write as _;
    // Writing into a String cannot fail.
    let _ = write!(out, "{n:020x}");
}

/// Whether a `function_call_output`'s `output` is the bench webhook's answer (the same JSON
/// value; the server may re-serialise it).
fn is_tool_answer(output: Option<&str>, answer: &str) -> bool {
    let parse = |s: &str| serde_json::from_str::<Value>(s).ok();
    output
        .and_then(parse)
        .is_some_and(|v| Some(v) == parse(answer))
}

/// The first `CA` + 32 hex digits in `text`.
fn find_call_sid(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find("CA") {
        let start = from + pos;
        let end = start + 34;
        if end <= bytes.len() && bytes[start + 2..end].iter().all(u8::is_ascii_hexdigit) {
            return text.get(start..end);
        }
        from = start + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{LeanTool, find_call_sid, is_tool_answer};

    #[test]
    fn the_tool_output_must_be_the_webhook_answer() {
        let answer = LeanTool::default().answer;
        assert!(is_tool_answer(Some(answer), answer));
        assert!(is_tool_answer(
            Some(r#"{ "eta": "tomorrow", "status": "shipped" }"#),
            answer
        ));
        assert!(!is_tool_answer(Some(r#"{"error":"timed out"}"#), answer));
        assert!(!is_tool_answer(Some("shipped"), answer));
        assert!(!is_tool_answer(None, answer));
    }

    #[test]
    fn finds_the_call_sid_in_instructions() {
        let sid = "CA0123456789abcdef0123456789abcdef";
        assert_eq!(
            find_call_sid(&format!("Be brief. CAll id: CAx, {sid}.")),
            Some(sid)
        );
        assert_eq!(find_call_sid("no sid here CA0123"), None);
    }
}
