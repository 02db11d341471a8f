//! Lean mode of the call simulator: one simulated Twilio call, lean enough to run a thousand
//! of them next to the server (`cargo xtask bench`). [`CallSimulator`]'s own calls record and
//! validate every event and can be awaited step by step; a lean call ([`run`]) only counts and
//! measures, and returns a [`CallOutcome`] at the end. Its agent is
//! [`openai::lean`](crate::openai::lean); what both share is [`crate::lean`].
//!
//! The call is placed like Twilio places it — the signed voice webhook through the test kit's
//! [`CallSimulator`] (TwiML parsed, per-call token taken from its `<Parameter>`s), then the
//! signed Media Stream upgrade — and then this task plays Twilio's side of the stream:
//!
//! * `connected`, `start`, and a 160-byte μ-law `media` frame every 20 ms on the real clock
//!   (the schedule does not drift: frame `k` is due at `start + 20 ms · k`), each stamped with
//!   the call, its sequence number and whether it is "speech" ([`shared::stamp_id`](crate::lean::stamp_id)); frames are
//!   written from pre-encoded base64 (only the 15 stamped bytes are encoded per frame);
//! * **real playout** of the server's audio: queued back to back at 8 bytes/ms, a `mark` is
//!   echoed only once the audio before it has played, `clear` drops the queue and echoes every
//!   pending mark at once; server messages are checked (event, `streamSid`, base64) and
//!   counted as violations otherwise;
//! * a conversation: it listens to the greeting, speaks 600 ms after 800 ms of quiet, lets the
//!   answer play for 1.2 s and **barges in**, listens to the next answer in full, and so on;
//! * after the call's duration it stops sending audio, keeps playing for [`DRAIN`], then sends
//!   `stop` and closes.
//!
//! Measured: agent → caller latency of every stamped agent frame (read from the agent's send
//! time in the [`CallSlot`]), loss/duplication/reordering of agent frames, barge-in latency
//! (the mock's `speech_started` → `clear` here), first-audio latency (`start` sent → first
//! agent audio received), and how late each frame left compared with its schedule (the load
//! process's own lag).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::twilio::CallSimulator;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use crate::lean::{self as shared, CallSlot, SeqTracker, Stamp, StampScanner};
use crate::openai::lean::Registry;

const FRAME_BYTES: usize = crate::audio::FRAME_BYTES;
const FRAME: Duration = Duration::from_millis(20);
/// Playout and mark echoes continue this long after the last frame before `stop`.
pub const DRAIN: Duration = Duration::from_millis(400);
/// The caller speaks this many frames (600 ms) per turn.
const SPEECH_FRAMES: u32 = 30;
/// Barge in once this much of an answer has been heard (1.2 s).
const BARGE_AFTER_BYTES: u64 = 9_600;
/// ... if at least this much is still queued (200 ms).
const BARGE_MIN_QUEUED_BYTES: u64 = 1_600;
/// In a listening turn, speak after this much quiet.
const QUIET_BEFORE_SPEAKING: Duration = Duration::from_millis(800);
/// Nanoseconds of audio per μ-law byte.
const NS_PER_BYTE: u64 = 125_000;

/// What all the lean calls of a level share.
#[derive(Debug)]
pub struct LevelContext {
    /// Places the calls (signed voice webhook, TwiML).
    sim: CallSimulator,
    /// `host:port` of the server.
    server_addr: String,
    /// Signs the Media Stream upgrades.
    auth_token: String,
    /// Where each call registers its [`CallSlot`] for the lean agent to find.
    registry: Arc<Registry>,
    /// Pre-encoded base64 of frame bytes 15..160: silence, and "speech".
    silence_tail: String,
    speech_tail: String,
    /// Frame bytes 0..15 (stamped per frame), silence and "speech".
    silence_head: [u8; 15],
    speech_head: [u8; 15],
}

impl LevelContext {
    /// Calls placed through `sim` (its public URL, auth token and account), streams opened
    /// to `server_addr` (`host:port`) signed with `auth_token`, sessions found through
    /// `registry` (the lean agent's).
    pub fn new(
        sim: CallSimulator,
        server_addr: String,
        auth_token: String,
        registry: Arc<Registry>,
    ) -> LevelContext {
        let silence = [crate::audio::SILENCE; FRAME_BYTES];
        let speech = crate::audio::speech(20);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let head = |b: &[u8]| {
            let mut h = [0u8; 15];
            h.copy_from_slice(&b[..15]);
            h
        };
        LevelContext {
            sim,
            server_addr,
            auth_token,
            registry,
            silence_tail: b64(&silence[15..]),
            speech_tail: b64(&speech[15..FRAME_BYTES]),
            silence_head: head(&silence),
            speech_head: head(&speech),
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    /// The voice webhook failed or did not answer `<Connect><Stream>`.
    Webhook,
    /// The Media Stream upgrade failed.
    Upgrade,
    /// The server ended the stream before the caller hung up.
    ServerEnded,
    /// No agent audio arrived.
    NoAgentAudio,
    /// The mock agent never saw this call's session.
    NoAgentSession,
}

impl Failure {
    /// The name in the bench's `failures` counts.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Webhook => "webhook",
            Failure::Upgrade => "upgrade",
            Failure::ServerEnded => "server_ended",
            Failure::NoAgentAudio => "no_agent_audio",
            Failure::NoAgentSession => "no_agent_session",
        }
    }
}

/// What one call measured.
#[derive(Debug, Default)]
pub struct CallOutcome {
    /// Why the call failed, if it did.
    pub failure: Option<Failure>,
    /// The failure's detail (an error message).
    pub detail: String,
    /// Caller frames sent (the last sequence number).
    pub frames_sent: u32,
    /// The mock's last agent frame when the caller stopped sending.
    pub agent_frames_expected: u32,
    /// Stamped agent frames received.
    pub agent_frames: SeqTracker,
    /// Agent → caller latency of each stamped agent frame (µs).
    pub a2c_us: Vec<u32>,
    /// Barge-in latency (µs): the agent's `speech_started` sent → `clear` received.
    pub barge_us: Vec<u32>,
    /// `start` sent → the first agent audio received (µs).
    pub first_audio_us: Option<u32>,
    /// How late each caller frame left after its schedule (µs).
    pub lag_us: Vec<u32>,
    /// Times the caller started speaking into the agent's audio.
    pub barge_attempts: u64,
    /// `clear`s that answered a barge-in.
    pub clears: u64,
    /// `clear`s with no barge-in to answer.
    pub unexpected_clears: u64,
    /// Server messages that were not well-formed Media Streams messages of this stream.
    pub violations: u64,
    /// Agent frames stamped for another call.
    pub misrouted: u64,
    /// `mark`s echoed (after their audio played, or at a `clear`).
    pub marks_echoed: u64,
    /// When the stream started and ended (for call-seconds).
    pub streamed: Duration,
}

/// Places call `idx` at `start`, streams until `end`, hangs up.
pub async fn run(
    ctx: Arc<LevelContext>,
    slot: Arc<CallSlot>,
    call_sid: String,
    start: Instant,
    end: Instant,
) -> CallOutcome {
    tokio::time::sleep_until(start).await;
    let mut outcome = CallOutcome::default();
    ctx.registry.register(&call_sid, Arc::clone(&slot));
    let placed = match ctx
        .sim
        .call()
        .call_sid(&call_sid)
        .from(&format!("+1415555{:04}", slot.idx % 10_000))
        .place()
        .await
    {
        Ok(placed) => placed,
        Err(e) => {
            outcome.failure = Some(Failure::Webhook);
            outcome.detail = e.to_string();
            return outcome;
        }
    };
    let Some(stream) = placed.stream().filter(|_| placed.status() == 200) else {
        outcome.failure = Some(Failure::Webhook);
        outcome.detail = format!("status {}: {}", placed.status(), placed.response.text());
        return outcome;
    };
    let ws = match open_stream(&ctx, &stream.url).await {
        Ok(ws) => ws,
        Err(e) => {
            outcome.failure = Some(Failure::Upgrade);
            outcome.detail = e;
            return outcome;
        }
    };
    let stream_sid = crate::sid::new_sid("MZ");
    let mut caller = Caller {
        ws,
        ctx: Arc::clone(&ctx),
        slot,
        call_sid,
        stream_sid,
        msg_seq: 0,
        chunk: 0,
        decoded: Vec::with_capacity(256),
        scanner: StampScanner::default(),
        queue_end: 0,
        speech_end: 0,
        pending: VecDeque::new(),
        turn_bytes: 0,
        speaking_left: 0,
        barge_turn: true,
        expecting_clear: false,
        start_sent_at: 0,
        out: outcome,
    };
    let result = caller.stream(&stream.parameters, end).await;
    if let Err(e) = result {
        caller.out.failure = Some(Failure::ServerEnded);
        caller.out.detail = e;
    } else if caller.out.first_audio_us.is_none() {
        caller.out.failure = Some(Failure::NoAgentAudio);
    }
    caller.out
}

async fn open_stream(ctx: &LevelContext, url: &str) -> Result<WebSocketStream<TcpStream>, String> {
    let (authority, path) = url
        .split_once("://")
        .map(|(_, rest)| rest.split_at(rest.find('/').unwrap_or(rest.len())))
        .ok_or_else(|| format!("bad stream URL {url}"))?;
    let mut req = format!("ws://{}{path}", ctx.server_addr)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let sig = crate::twilio::signature::sign::<&str, &str>(&ctx.auth_token, url, &[]);
    let h = req.headers_mut();
    h.insert(
        http::header::HOST,
        authority.parse().map_err(|_| "bad host".to_owned())?,
    );
    h.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("Twilio.TmeWs/1.0"),
    );
    h.insert(
        "x-twilio-signature",
        sig.parse().map_err(|_| "bad signature".to_owned())?,
    );
    let tcp = TcpStream::connect(&ctx.server_addr)
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    // tungstenite zero-fills its whole read buffer before every read: keep it small.
    let config = WebSocketConfig::default().read_buffer_size(2 * 1024);
    tokio_tungstenite::client_async_with_config(req, tcp, Some(config))
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerMsg<'a> {
    event: &'a str,
    #[serde(rename = "streamSid")]
    stream_sid: &'a str,
    #[serde(default, borrow)]
    media: Option<MediaBody<'a>>,
    #[serde(default, borrow)]
    mark: Option<MarkBody<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaBody<'a> {
    payload: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkBody<'a> {
    name: &'a str,
}

struct Caller {
    ws: WebSocketStream<TcpStream>,
    ctx: Arc<LevelContext>,
    slot: Arc<CallSlot>,
    call_sid: String,
    stream_sid: String,
    /// `sequenceNumber` of the last message sent.
    msg_seq: u64,
    /// `chunk` of the last media frame sent (= its stamp's sequence number).
    chunk: u32,
    decoded: Vec<u8>,
    scanner: StampScanner,
    /// When the queued agent audio finishes playing (ns; 0 = never queued).
    queue_end: u64,
    /// When the last stamped (spoken) agent audio ends playing: silence between words
    /// (GPT-Live's continuous track carries unstamped silence) is no agent speech.
    speech_end: u64,
    /// Marks not yet echoed: name and when they are due (ns).
    pending: VecDeque<(String, u64)>,
    /// Agent audio bytes received since the caller last spoke.
    turn_bytes: u64,
    speaking_left: u32,
    /// This turn ends with a barge-in (otherwise the answer is heard in full).
    barge_turn: bool,
    expecting_clear: bool,
    start_sent_at: u64,
    out: CallOutcome,
}

impl Caller {
    fn next_msg_seq(&mut self) -> u64 {
        self.msg_seq += 1;
        self.msg_seq
    }

    async fn send(&mut self, text: String) -> Result<(), String> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    /// Runs the stream until `end` (+ drain), then hangs up. `Err` when the server ended it.
    async fn stream(
        &mut self,
        parameters: &[(String, String)],
        end: Instant,
    ) -> Result<(), String> {
        let started = Instant::now();
        self.send(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.to_owned())
            .await?;
        let params: serde_json::Map<String, serde_json::Value> = parameters
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let seq = self.next_msg_seq();
        let start = serde_json::json!({
            "event": "start",
            "sequenceNumber": seq.to_string(),
            "start": {
                "accountSid": self.ctx.sim.account(),
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": params,
            },
            "streamSid": self.stream_sid,
        });
        self.send(start.to_string()).await?;
        self.start_sent_at = shared::now_ns();

        let first_frame = Instant::now();
        let mut next_frame = first_frame;
        let drain_end = end + DRAIN;
        let frame_timer = tokio::time::sleep_until(next_frame);
        let mark_timer = tokio::time::sleep_until(drain_end);
        tokio::pin!(frame_timer, mark_timer);
        let mut mark_armed = false;
        let mut sending = true;
        loop {
            match self.pending.front() {
                Some(&(_, due)) => {
                    let at = ns_to_instant(due);
                    if !mark_armed || mark_timer.deadline() != at {
                        mark_timer.as_mut().reset(at);
                        mark_armed = true;
                    }
                }
                None => mark_armed = false,
            }
            tokio::select! {
                biased;
                msg = self.ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => self.on_server_text(text.as_str()).await?,
                    Some(Ok(Message::Close(frame))) => {
                        let _ = self.ws.flush().await;
                        return Err(format!("server closed the stream: {frame:?}"));
                    }
                    Some(Ok(Message::Binary(_))) => self.out.violations += 1,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(format!("stream failed: {e}")),
                    None => return Err("stream ended without a close frame".to_owned()),
                },
                () = &mut mark_timer, if mark_armed => {
                    mark_armed = false;
                    self.echo_due_marks(shared::now_ns()).await?;
                }
                () = &mut frame_timer, if sending => {
                    let now = Instant::now();
                    if next_frame >= end {
                        sending = false;
                        self.out.frames_sent = self.chunk;
                        self.out.agent_frames_expected =
                            self.slot.agent_last_seq.load(Ordering::Relaxed);
                        continue;
                    }
                    self.out.lag_us.push(u32::try_from(
                        now.saturating_duration_since(next_frame).as_micros(),
                    ).unwrap_or(u32::MAX));
                    self.send_frame(shared::to_ns(now.into_std())).await?;
                    next_frame += FRAME;
                    frame_timer.as_mut().reset(next_frame);
                }
                () = tokio::time::sleep_until(drain_end), if !sending => break,
            }
        }
        self.out.streamed = started.elapsed();
        self.hang_up().await;
        Ok(())
    }

    async fn send_frame(&mut self, now: u64) -> Result<(), String> {
        self.decide_turn(now);
        let speech = self.speaking_left > 0;
        if speech {
            self.speaking_left -= 1;
        }
        self.chunk += 1;
        let chunk = self.chunk;
        let seq = self.next_msg_seq();
        let (mut head, tail) = if speech {
            (self.ctx.speech_head, &self.ctx.speech_tail)
        } else {
            (self.ctx.silence_head, &self.ctx.silence_tail)
        };
        crate::audio::stamp(&mut head, shared::stamp_id(self.slot.idx, chunk, speech));
        let timestamp = u64::from(chunk - 1) * 20;
        let mut text = String::with_capacity(160 + tail.len() + self.stream_sid.len());
        text.push_str(r#"{"event":"media","sequenceNumber":""#);
        push_u64(&mut text, seq);
        text.push_str(r#"","media":{"track":"inbound","chunk":""#);
        push_u64(&mut text, u64::from(chunk));
        text.push_str(r#"","timestamp":""#);
        push_u64(&mut text, timestamp);
        text.push_str(r#"","payload":""#);
        base64::engine::general_purpose::STANDARD.encode_string(head, &mut text);
        text.push_str(tail);
        text.push_str(r#""},"streamSid":""#);
        text.push_str(&self.stream_sid);
        text.push_str(r#""}"#);
        self.slot.set_caller_sent(chunk, shared::now_ns());
        self.send(text).await
    }

    /// The conversation: when to start speaking.
    fn decide_turn(&mut self, now: u64) {
        if self.speaking_left > 0 {
            return;
        }
        let queued = self.speech_end.saturating_sub(now) / NS_PER_BYTE;
        let heard = self.turn_bytes.saturating_sub(queued);
        let quiet_for = now.saturating_sub(self.speech_end);
        let barge =
            self.barge_turn && heard >= BARGE_AFTER_BYTES && queued >= BARGE_MIN_QUEUED_BYTES;
        let answered_and_quiet = self.turn_bytes > 0
            && queued == 0
            && quiet_for >= QUIET_BEFORE_SPEAKING.as_nanos() as u64;
        if barge || answered_and_quiet {
            if barge {
                self.out.barge_attempts += 1;
                self.expecting_clear = true;
            }
            self.speaking_left = SPEECH_FRAMES;
            self.turn_bytes = 0;
            self.barge_turn = !self.barge_turn;
        }
    }

    async fn on_server_text(&mut self, text: &str) -> Result<(), String> {
        let now = shared::now_ns();
        let msg = match serde_json::from_str::<ServerMsg<'_>>(text) {
            Ok(msg) if msg.stream_sid == self.stream_sid => msg,
            _ => {
                self.out.violations += 1;
                return Ok(());
            }
        };
        match (msg.event, msg.media, msg.mark) {
            ("media", Some(media), None) => {
                self.decoded.clear();
                if base64::engine::general_purpose::STANDARD
                    .decode_vec(media.payload, &mut self.decoded)
                    .is_err()
                {
                    self.out.violations += 1;
                    return Ok(());
                }
                if self.out.first_audio_us.is_none() {
                    self.out.first_audio_us = Some(shared::micros_between(self.start_sent_at, now));
                }
                let len = self.decoded.len() as u64;
                let (slot, out) = (&self.slot, &mut self.out);
                let mut spoken = false;
                self.scanner.scan(&self.decoded, |id| {
                    spoken = true;
                    let stamp = Stamp::from_id(id);
                    if !stamp.is_call(slot.idx) {
                        out.misrouted += 1;
                        return;
                    }
                    out.agent_frames.on(stamp.seq);
                    let sent = slot.agent_sent(stamp.seq);
                    if sent != 0 {
                        out.a2c_us.push(shared::micros_between(sent, now));
                    }
                });
                self.queue_end = self.queue_end.max(now) + len * NS_PER_BYTE;
                if spoken {
                    self.speech_end = self.queue_end;
                    self.turn_bytes += len;
                }
            }
            ("mark", None, Some(mark)) => {
                let due = self.queue_end.max(now);
                self.pending.push_back((mark.name.to_owned(), due));
                if due <= now {
                    self.echo_due_marks(now).await?;
                }
            }
            ("clear", None, None) => {
                self.queue_end = now;
                self.speech_end = now;
                let started = self.slot.speech_started_at.load(Ordering::Relaxed);
                if self.expecting_clear && started != 0 {
                    self.expecting_clear = false;
                    self.out.clears += 1;
                    self.out.barge_us.push(shared::micros_between(started, now));
                } else {
                    self.out.unexpected_clears += 1;
                }
                for entry in &mut self.pending {
                    entry.1 = now;
                }
                self.echo_due_marks(now).await?;
            }
            _ => self.out.violations += 1,
        }
        Ok(())
    }

    async fn echo_due_marks(&mut self, now: u64) -> Result<(), String> {
        let mut fed = false;
        while self.pending.front().is_some_and(|&(_, due)| due <= now) {
            let Some((name, _)) = self.pending.pop_front() else {
                break;
            };
            let seq = self.next_msg_seq();
            let mut text = String::with_capacity(120 + name.len());
            text.push_str(r#"{"event":"mark","sequenceNumber":""#);
            push_u64(&mut text, seq);
            text.push_str(r#"","streamSid":""#);
            text.push_str(&self.stream_sid);
            text.push_str(r#"","mark":{"name":""#);
            text.push_str(&name);
            text.push_str(r#""}}"#);
            self.ws
                .feed(Message::text(text))
                .await
                .map_err(|e| format!("send: {e}"))?;
            self.out.marks_echoed += 1;
            fed = true;
        }
        if fed {
            self.ws.flush().await.map_err(|e| format!("send: {e}"))?;
        }
        Ok(())
    }

    async fn hang_up(&mut self) {
        let seq = self.next_msg_seq();
        let stop = serde_json::json!({
            "event": "stop",
            "sequenceNumber": seq.to_string(),
            "streamSid": self.stream_sid,
            "stop": {"accountSid": self.ctx.sim.account(), "callSid": self.call_sid},
        });
        let _ = self.send(stop.to_string()).await;
        let _ = self
            .ws
            .send(Message::Close(Some(CloseFrame {
                code: 1000.into(),
                reason: "".into(),
            })))
            .await;
        let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(3), drain).await;
    }
}

fn push_u64(out: &mut String, n: u64) {
    use std::fmt::Write as _;
    // Writing into a String cannot fail.
    let _ = write!(out, "{n}");
}

fn ns_to_instant(ns: u64) -> Instant {
    Instant::from_std(shared::from_ns(ns))
}
