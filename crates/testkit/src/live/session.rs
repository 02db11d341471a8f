//! One mock GPT-Live session as a sans-IO state machine: client text in, server texts out.
//!
//! Everything is clocked by the **input timeline** (PROTOCOLS-LIVE.md §5.1, §7.2): the
//! session's time is the duration of the audio appended so far, and output audio, transcript
//! fragments, context acknowledgements and usage reports are produced only as it advances —
//! so output is paced to input, a burst of input gives a burst of output, and a stalled input
//! stalls everything.

use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::record::{Delegation, LiveViolation, LiveViolationKind, SessionRecord, Utterance};
use super::validate::{self, Mode};
use super::{LiveConfig, LiveTurn, SharedLive};
use crate::audio;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What the socket task must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Out {
    Text(String),
    /// Close frame (`None`: no status code, as observed after `session.closed`), then end.
    Close(Option<(u16, String)>),
}

/// 10 ms windows of μ-law audio for the energy VAD.
const WINDOW: usize = 80;

#[derive(Debug, Default)]
struct Vad {
    window: Vec<u8>,
    loud_windows: u32,
    quiet_ms: u64,
    speaking: bool,
    onset_ms: u64,
}

#[derive(Debug)]
struct Speaking {
    index: usize,
    audio: Vec<u8>,
    pos: usize,
    words: Vec<(usize, String)>,
    next_word: usize,
    start_ms: u64,
}

#[derive(Debug)]
struct PendingCall {
    call_id: String,
    output: Option<String>,
}

pub(crate) struct Session {
    cfg: Arc<LiveConfig>,
    shared: Arc<SharedLive>,
    pub(crate) out: Vec<Out>,
    accepted: Option<validate::Accepted>,
    closed: bool,
    input_bytes: u64,
    output_bytes: u64,
    vad: Vad,
    speaking: Option<Speaking>,
    queue: VecDeque<(String, u32)>,
    script: VecDeque<LiveTurn>,
    calls: Vec<PendingCall>,
    /// Results to say once the output timeline reaches their time (ms).
    delayed: VecDeque<(u64, String, u32)>,
    acks: Vec<(String, Option<String>, u64, u64)>,
    next_usage_ms: u64,
    stamp: u32,
    event_seq: u64,
    id_seq: u64,
    tag: String,
    pub(crate) started_at: Option<Instant>,
    last_input_at: Option<Instant>,
}

fn ms_from(bytes: u64, per_ms: u64) -> u64 {
    bytes / per_ms.max(1)
}

impl Session {
    pub(crate) fn new(
        cfg: Arc<LiveConfig>,
        shared: Arc<SharedLive>,
        script: Vec<LiveTurn>,
        tag: String,
    ) -> Session {
        Session {
            cfg,
            shared,
            out: Vec::new(),
            accepted: None,
            closed: false,
            input_bytes: 0,
            output_bytes: 0,
            vad: Vad::default(),
            speaking: None,
            queue: VecDeque::new(),
            script: script.into(),
            calls: Vec::new(),
            delayed: VecDeque::new(),
            acks: Vec::new(),
            next_usage_ms: 0,
            stamp: 0,
            event_seq: 0,
            id_seq: 0,
            tag,
            started_at: None,
            last_input_at: None,
        }
    }

    pub(crate) fn push_turn(&mut self, turn: LiveTurn) {
        self.script.push_back(turn);
    }

    fn bytes_per_ms(&self) -> u64 {
        self.accepted.as_ref().map_or(8, |a| a.bytes_per_ms)
    }

    /// The session timeline, in ms.
    fn now_ms(&self) -> u64 {
        ms_from(self.input_bytes, self.bytes_per_ms())
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.id_seq += 1;
        format!("{prefix}_{}{:04}", self.tag, self.id_seq)
    }

    fn record(&self, f: impl FnOnce(&mut SessionRecord)) {
        self.shared.state.update(f);
    }

    fn violation(&self, kind: LiveViolationKind, detail: String) {
        self.record(|s| {
            s.violations.push(LiveViolation {
                at: Instant::now(),
                kind,
                detail,
            })
        });
    }

    /// Sends one server event (an object with `type`); `event_id` is added unless `bare`.
    fn send(&mut self, mut event: Value, bare: bool) {
        if !bare {
            self.event_seq += 1;
            event["event_id"] = Value::String(format!("event_{}{:05}", self.tag, self.event_seq));
        }
        let text = event.to_string();
        let ty = event["type"].as_str().unwrap_or_default().to_owned();
        let keep = self.cfg.record_payloads && ty != "session.output_audio.delta";
        self.record(|s| {
            s.server_events.push(super::record::LiveServerEvent {
                at: Instant::now(),
                event_type: ty,
                raw: keep.then(|| text.clone()),
            })
        });
        self.out.push(Out::Text(text));
    }

    pub(crate) fn error(
        &mut self,
        code: &str,
        message: &str,
        param: Option<&str>,
        client_event_id: Option<&str>,
    ) {
        self.send(
            json!({
                "type": "error",
                "client_event_id": client_event_id,
                "error": {"type": "invalid_request_error", "code": code, "message": message,
                          "param": param, "client_event_id": client_event_id}
            }),
            false,
        );
    }

    pub(crate) fn send_raw(&mut self, text: String) {
        self.record(|s| {
            s.server_events.push(super::record::LiveServerEvent {
                at: Instant::now(),
                event_type: "(raw)".into(),
                raw: Some(text.clone()),
            })
        });
        self.out.push(Out::Text(text));
    }

    fn snapshot(&self) -> Value {
        let mut session = self
            .accepted
            .as_ref()
            .map(|a| a.resolved.clone())
            .unwrap_or_default();
        let (id, expires_at) = self
            .shared
            .state
            .read(|s| (s.session_id.clone(), s.expires_at));
        session.insert("id".into(), Value::String(id.unwrap_or_default()));
        session.insert("expires_at".into(), json!(expires_at.unwrap_or(0)));
        session.insert("status".into(), Value::String("active".into()));
        Value::Object(session)
    }

    /// Ends the session with `session.closed` (`reason`), then closes the socket.
    pub(crate) fn close_session(&mut self, reason: &str, client_event_id: Option<&str>) {
        if self.closed {
            return;
        }
        self.flush_speaking_record();
        let seconds = self.now_ms() as f64 / 1000.0;
        let snapshot = self.snapshot();
        self.send(
            json!({"type": "session.closed", "client_event_id": client_event_id, "reason": reason,
                   "session": snapshot, "usage": {"seconds": seconds}}),
            false,
        );
        self.closed = true;
        let reason = reason.to_owned();
        self.record(|s| s.closed_reason = Some(reason));
        self.out.push(Out::Close(None));
    }

    /// The earliest wall-clock deadline (expiry), if any.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let started = self.started_at?;
        let expiry = started + self.cfg.lifetime;
        let idle = self.last_input_at.unwrap_or(started) + self.cfg.no_audio_expiry;
        Some(expiry.min(idle))
    }

    pub(crate) fn on_deadline(&mut self, now: Instant) {
        if self.deadline().is_some_and(|d| d <= now) {
            self.close_session("expired", None);
        }
    }

    // ---- client events -------------------------------------------------------------------

    pub(crate) fn on_text(&mut self, now: Instant, text: &str) {
        let Ok(event) = serde_json::from_str::<Value>(text) else {
            self.violation(
                LiveViolationKind::Malformed,
                format!("not JSON: {}", truncate(text)),
            );
            self.error(
                "invalid_json",
                "The message could not be parsed as JSON.",
                None,
                None,
            );
            return;
        };
        let ty = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let client_event_id = event
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let cid = client_event_id.as_deref();
        if ty == "session.input_audio.append" {
            self.record(|s| s.audio_appends += 1);
        } else {
            let raw = self.cfg.record_payloads.then(|| text.to_owned());
            self.record(|s| {
                s.client_events.push(super::record::LiveClientEvent {
                    at: now,
                    event_type: ty.clone(),
                    raw,
                    json: event.clone(),
                })
            });
        }
        if self.closed {
            self.violation(
                LiveViolationKind::AfterClose,
                format!("{ty} after session.close"),
            );
            return;
        }
        if self.accepted.is_none() && ty != "session.start" {
            let kind = if ty == "session.input_audio.append" {
                LiveViolationKind::AudioBeforeStart
            } else {
                LiveViolationKind::NotStarted
            };
            self.violation(kind, format!("{ty} before session.started"));
            self.error(
                "session_not_started",
                "The session has not started: send session.start first.",
                Some("type"),
                cid,
            );
            return;
        }
        match ty.as_str() {
            "session.start" => self.on_start(now, &event, cid),
            "session.input_audio.append" => self.on_audio(now, &event, cid),
            "session.instructions.append"
            | "session.thinking.append"
            | "session.commentary.append" => self.on_append(&ty, &event, cid),
            "response.item.create" => self.on_item_create(&event, cid),
            "response.create" => self.on_response_create(&event, cid),
            "session.close" => {
                if let Some(extra) = extra_keys(&event, &["type", "event_id"]) {
                    self.error(
                        "unknown_parameter",
                        &format!("Unknown parameter: '{extra}'."),
                        Some(&extra),
                        cid,
                    );
                }
                self.record(|s| s.close_requested = true);
                if let Some(text) = self.cfg.transcript_on_close.clone() {
                    let start = self.now_ms();
                    self.send(
                        json!({"type": "session.output_transcript.delta", "delta": text, "start_ms": start, "end_ms": start + 200}),
                        false,
                    );
                }
                self.close_session("close_requested", cid);
            }
            "session.update" => {
                let snapshot = self.snapshot();
                self.send(
                    json!({"type": "session.updated", "client_event_id": cid, "session": snapshot}),
                    false,
                );
            }
            "session.input_audio.mute" => self.send(
                json!({"type": "session.input_audio.muted", "client_event_id": cid}),
                false,
            ),
            "session.input_audio.unmute" => self.send(
                json!({"type": "session.input_audio.unmuted", "client_event_id": cid}),
                false,
            ),
            _ => {
                self.violation(
                    LiveViolationKind::UnknownEvent,
                    format!("client event {ty:?}"),
                );
                self.error(
                    "invalid_value",
                    &format!("Invalid value: '{ty}'. Supported values are: 'session.start', 'session.update', 'session.input_audio.append', 'session.input_audio.mute', 'session.input_audio.unmute', 'session.instructions.append', 'session.thinking.append', 'session.commentary.append', 'session.output_audio.fixture.play', 'response.item.create', 'response.create' and 'session.close'."),
                    Some("type"),
                    cid,
                );
            }
        }
    }

    fn on_start(&mut self, now: Instant, event: &Value, cid: Option<&str>) {
        if self.accepted.is_some() {
            self.violation(
                LiveViolationKind::DuplicateStart,
                "a second session.start".into(),
            );
            self.error(
                "session_already_started",
                "The session has already started.",
                Some("type"),
                cid,
            );
            return;
        }
        match validate::session_start_with(event, self.cfg.mcp_tools) {
            Ok(accepted) if !accepted.model.starts_with("gpt-live") => {
                let message = format!(
                    "The model `{}` does not exist or you do not have access to it.",
                    accepted.model
                );
                self.violation(LiveViolationKind::InvalidStart, message.clone());
                self.error("model_not_found", &message, Some("session.model"), cid);
                self.out
                    .push(Out::Close(Some((1008, "invalid session".into()))));
                self.closed = true;
            }
            Ok(accepted) => {
                let id = format!(
                    "live_{}{:016x}",
                    self.tag,
                    u64::from_str_radix(&self.tag, 16)
                        .unwrap_or(1)
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                );
                let unix = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let expires_at = unix + self.cfg.lifetime.as_secs() as i64;
                let mode = accepted.mode;
                self.accepted = Some(accepted);
                self.started_at = Some(now);
                self.next_usage_ms = self.cfg.usage_interval_ms;
                self.record(|s| {
                    s.session_id = Some(id);
                    s.expires_at = Some(expires_at);
                    s.start = Some(event["session"].clone());
                    s.mode = Some(mode);
                });
                let snapshot = self.snapshot();
                self.send(
                    json!({"type": "session.started", "client_event_id": cid, "session": snapshot}),
                    false,
                );
            }
            Err(rejection) => {
                self.violation(LiveViolationKind::InvalidStart, rejection.message.clone());
                self.error(
                    rejection.code,
                    &rejection.message,
                    Some(&rejection.param),
                    cid,
                );
                self.out
                    .push(Out::Close(Some((1008, "invalid session.start".into()))));
                self.closed = true;
            }
        }
    }

    fn on_audio(&mut self, now: Instant, event: &Value, cid: Option<&str>) {
        let decoded = event
            .get("audio")
            .and_then(Value::as_str)
            .and_then(|a| B64.decode(a).ok())
            .filter(|_| extra_keys(event, &["type", "event_id", "audio"]).is_none());
        let Some(bytes) = decoded.filter(|b| !b.is_empty()) else {
            self.violation(
                LiveViolationKind::BadAudio,
                "input audio missing, empty or not base64".into(),
            );
            self.error(
                "invalid_audio",
                "Invalid audio: expected non-empty base64 audio in the session format.",
                Some("audio"),
                cid,
            );
            return;
        };
        self.last_input_at = Some(now);
        let record = self.cfg.record_payloads;
        self.record(|s| {
            s.received_audio_bytes += bytes.len();
            if record {
                s.received_audio.extend_from_slice(&bytes);
            }
        });
        let mulaw = self.accepted.as_ref().is_some_and(|a| a.mulaw);
        // VAD and output, in steps of at most one output delta, so interruptions and turn
        // ends land where the audio puts them.
        let step = self.cfg.delta_bytes.max(1);
        for chunk in bytes.chunks(step) {
            if mulaw {
                self.vad(chunk);
            }
            self.input_bytes += chunk.len() as u64;
            self.produce();
        }
    }

    fn vad(&mut self, chunk: &[u8]) {
        for &b in chunk {
            self.vad.window.push(b);
            if self.vad.window.len() < WINDOW {
                continue;
            }
            let window = std::mem::take(&mut self.vad.window);
            let window_end_ms = self.now_ms() + 10;
            if audio::rms(&window) >= self.cfg.vad_rms {
                self.vad.loud_windows += 1;
                self.vad.quiet_ms = 0;
                if !self.vad.speaking && self.vad.loud_windows >= 2 {
                    self.vad.speaking = true;
                    self.vad.onset_ms = window_end_ms.saturating_sub(20);
                    self.interrupt();
                }
            } else {
                self.vad.loud_windows = 0;
                if self.vad.speaking {
                    self.vad.quiet_ms += 10;
                    if self.vad.quiet_ms >= self.cfg.turn_silence_ms {
                        self.vad.speaking = false;
                        let end = window_end_ms - self.vad.quiet_ms;
                        self.caller_turn_ended(self.vad.onset_ms, end);
                    }
                }
            }
        }
    }

    /// The caller talks over the model: it stops at once (no event tells the client).
    fn interrupt(&mut self) {
        let Some(speaking) = self.speaking.take() else {
            return;
        };
        let at = self.now_ms();
        let spoken = speaking.pos;
        self.record(|s| {
            if let Some(u) = s.utterances.get_mut(speaking.index) {
                u.interrupted_at_ms = Some(at);
                u.interrupted_at = Some(Instant::now());
                u.spoken_bytes = spoken;
                u.ended_ms = Some(at);
            }
        });
        self.queue.clear();
    }

    fn caller_turn_ended(&mut self, start_ms: u64, end_ms: u64) {
        let text = self
            .shared
            .state
            .update(|s| s.caller_transcripts.pop_front());
        let text = text.unwrap_or_else(|| " (caller speech)".to_owned());
        self.record(|s| s.caller_turns.push((start_ms, end_ms)));
        self.send(
            json!({"type": "session.input_transcript.delta", "delta": text, "start_ms": start_ms, "end_ms": end_ms}),
            false,
        );
        match self.script.pop_front() {
            Some(LiveTurn::Say { text, ms }) => self.say(text, ms),
            Some(LiveTurn::Delegate { calls }) => self.delegate(calls),
            Some(LiveTurn::Close { reason }) => self.close_session(&reason, None),
            None => {}
        }
    }

    fn say(&mut self, text: String, ms: u32) {
        if self.speaking.is_some() {
            self.queue.push_back((text, ms));
        } else {
            self.start_utterance(text, ms);
        }
    }

    fn start_utterance(&mut self, text: String, ms: u32) {
        let first_stamp = self.cfg.stamp_base + self.stamp;
        self.stamp += ms.div_ceil(20);
        let audio = audio::agent_tone(first_stamp, ms);
        let words: Vec<&str> = text.split_inclusive(' ').collect();
        let n = words.len().max(1);
        let words = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                (
                    audio.len() * i / n,
                    format!("{}{}", if i == 0 { " " } else { "" }, w),
                )
            })
            .collect();
        let start_ms = ms_from(self.output_bytes, self.bytes_per_ms());
        let index = self.shared.state.update(|s| {
            s.utterances.push(Utterance {
                text,
                first_stamp,
                audio: audio.clone(),
                started_ms: start_ms,
                ended_ms: None,
                interrupted_at_ms: None,
                interrupted_at: None,
                spoken_bytes: 0,
            });
            s.utterances.len() - 1
        });
        self.speaking = Some(Speaking {
            index,
            audio,
            pos: 0,
            words,
            next_word: 0,
            start_ms,
        });
    }

    fn flush_speaking_record(&mut self) {
        if let Some(sp) = &self.speaking {
            let (i, pos) = (sp.index, sp.pos);
            self.record(|s| {
                if let Some(u) = s.utterances.get_mut(i) {
                    u.spoken_bytes = pos;
                }
            });
        }
    }

    /// Emits output (audio deltas, transcripts, acks, usage) up to the input timeline.
    fn produce(&mut self) {
        let delta = self.cfg.delta_bytes.max(1) as u64;
        while self.output_bytes + delta <= self.input_bytes {
            while self
                .delayed
                .front()
                .is_some_and(|d| d.0 <= ms_from(self.output_bytes, self.bytes_per_ms()))
            {
                let (_, text, ms) = self.delayed.pop_front().expect("front");
                self.say(text, ms);
            }
            let mut chunk = Vec::with_capacity(delta as usize);
            let mut finished = Vec::new();
            let mut transcript = String::new();
            let (mut t_start, mut t_end) = (None, 0);
            while (chunk.len() as u64) < delta {
                let Some(sp) = self.speaking.as_mut() else {
                    chunk.resize(delta as usize, audio::SILENCE);
                    break;
                };
                let take = (delta as usize - chunk.len()).min(sp.audio.len() - sp.pos);
                let from = sp.pos;
                chunk.extend_from_slice(&sp.audio[from..from + take]);
                sp.pos += take;
                while sp.next_word < sp.words.len() && sp.words[sp.next_word].0 < sp.pos {
                    transcript.push_str(&sp.words[sp.next_word].1);
                    t_start.get_or_insert(sp.start_ms + sp.words[sp.next_word].0 as u64 / 8);
                    t_end = sp.start_ms + sp.pos as u64 / 8;
                    sp.next_word += 1;
                }
                if sp.pos >= sp.audio.len() {
                    let done = self.speaking.take().expect("speaking");
                    let end_ms = done.start_ms + done.audio.len() as u64 / 8;
                    // Recorded with the delta that carries its end (below).
                    finished.push((done.index, end_ms, done.audio.len()));
                    if let Some((text, ms)) = self.queue.pop_front() {
                        self.start_utterance(text, ms);
                    }
                }
            }
            self.output_bytes += delta;
            let record = self.cfg.record_payloads;
            self.record(|s| {
                s.sent_audio_bytes += chunk.len();
                if record {
                    s.sent_audio.extend_from_slice(&chunk);
                }
                for (index, end_ms, len) in finished {
                    if let Some(u) = s.utterances.get_mut(index) {
                        u.ended_ms = Some(end_ms);
                        u.spoken_bytes = len;
                    }
                }
            });
            self.send(
                json!({"type": "session.output_audio.delta", "delta": B64.encode(&chunk)}),
                true,
            );
            if let Some(start) = t_start {
                self.send(
                    json!({"type": "session.output_transcript.delta", "delta": transcript, "start_ms": start, "end_ms": t_end}),
                    false,
                );
            }
        }
        let now_ms = self.now_ms();
        let due: Vec<_> = {
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.acks)
                .into_iter()
                .partition(|a| a.3 <= now_ms);
            self.acks = later;
            due
        };
        for (ty, cid, start, end) in due {
            self.send(
                json!({"type": ty, "client_event_id": cid, "start_ms": start, "end_ms": end}),
                false,
            );
        }
        while self.next_usage_ms > 0 && now_ms >= self.next_usage_ms {
            self.next_usage_ms += self.cfg.usage_interval_ms;
            let seconds = now_ms as f64 / 1000.0;
            self.send(
                json!({"type": "session.usage.updated", "usage": {"seconds": seconds}, "context_window": {"usage_ratio": (seconds / 10_000.0).min(1.0)}}),
                false,
            );
        }
    }

    // ---- context and delegation ------------------------------------------------------------

    fn on_append(&mut self, ty: &str, event: &Value, cid: Option<&str>) {
        let content = event.get("content").and_then(Value::as_str);
        let has_key = event
            .as_object()
            .is_some_and(|o| o.contains_key("delegation_id"));
        let delegation_id = event
            .get("delegation_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if content.is_none()
            || !has_key
            || extra_keys(event, &["type", "event_id", "content", "delegation_id"]).is_some()
        {
            self.violation(
                LiveViolationKind::BadAppend,
                format!("{ty} needs `content` and the `delegation_id` key"),
            );
            self.error(
                "missing_required_parameter",
                "Missing required parameter: 'delegation_id'.",
                Some("delegation_id"),
                cid,
            );
            return;
        }
        let content = content.unwrap_or_default().to_owned();
        let mode = self.accepted.as_ref().map(|a| a.mode);
        if let Some(id) = &delegation_id {
            let known = self.shared.state.read(|s| {
                s.delegations
                    .iter()
                    .any(|d| &d.id == id && d.target == "client")
            });
            if mode != Some(Mode::Client) || !known {
                self.violation(
                    LiveViolationKind::BadDelegationId,
                    format!("{ty} with delegation_id {id}"),
                );
                self.error(
                    "invalid_delegation_id",
                    &format!("Unknown client delegation id '{id}'."),
                    Some("delegation_id"),
                    cid,
                );
                return;
            }
        }
        let now = self.now_ms();
        let ack = ty.replace(".append", ".appended");
        self.acks
            .push((ack, cid.map(str::to_owned), now, now + 100));
        if let Some(id) = delegation_id {
            let is_result = ty == "session.commentary.append";
            self.record(|s| {
                if let Some(d) = s.delegations.iter_mut().find(|d| d.id == id) {
                    d.outputs.push(content.clone());
                }
            });
            if is_result {
                self.say(content, self.cfg.result_ms);
            }
        } else if ty == "session.commentary.append" {
            // Said aloud (paraphrased by the real model; verbatim here).
            self.say(content, self.cfg.commentary_ms);
        }
    }

    fn delegate(&mut self, calls: Vec<(String, String)>) {
        let mode = self.accepted.as_ref().map_or(Mode::Client, |a| a.mode);
        let id = self.next_id("item");
        let offset = self.now_ms();
        if let Some((text, ms)) = self.cfg.delegation_ack.clone() {
            self.say(text, ms);
        }
        if mode == Mode::Responses {
            let response_id = self.next_id("resp");
            self.send(json!({"type": "session.delegation.created", "offset_ms": offset,
                "delegation": {"id": id, "type": "delegation", "target": "responses", "response_id": response_id}}), false);
            let nested =
                |e: Value| json!({"type": "response.event", "delegation_id": id, "event": e});
            let created = nested(
                json!({"type": "response.created", "response": {"id": response_id, "object": "response", "status": "in_progress", "output": [], "tools": [], "instructions": null}}),
            );
            self.send(created, false);
            let mut call_ids = Vec::new();
            for (i, (name, arguments)) in calls.iter().enumerate() {
                let call_id = self.next_id("call");
                let item_id = self.next_id("fc");
                let added = nested(
                    json!({"type": "response.output_item.added", "output_index": i,
                    "item": {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": "", "status": "in_progress"}}),
                );
                self.send(added, false);
                self.send(nested(json!({"type": "response.function_call_arguments.delta", "item_id": item_id, "output_index": i, "delta": arguments})), false);
                self.send(nested(json!({"type": "response.function_call_arguments.done", "item_id": item_id, "output_index": i, "arguments": arguments})), false);
                let done = nested(
                    json!({"type": "response.output_item.done", "output_index": i,
                    "item": {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": arguments, "status": "completed"}}),
                );
                self.send(done, false);
                self.calls.push(PendingCall {
                    call_id: call_id.clone(),
                    output: None,
                });
                call_ids.push((call_id, name.clone(), arguments.clone()));
            }
            let completed = nested(
                json!({"type": "response.completed", "response": {"id": response_id, "object": "response", "status": "completed", "output": [], "tools": [], "instructions": null,
                "usage": {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150, "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}}}),
            );
            self.send(completed, false);
            self.record(|s| {
                for (call_id, name, arguments) in call_ids {
                    s.delegations.push(Delegation {
                        id: id.clone(),
                        target: "responses".into(),
                        offset_ms: offset,
                        call_id: Some(call_id),
                        name: Some(name),
                        arguments: Some(arguments),
                        outputs: Vec::new(),
                        continued: false,
                    });
                }
            });
        } else {
            self.send(
                json!({"type": "session.delegation.created", "offset_ms": offset,
                "delegation": {"id": id, "type": "delegation", "target": "client"}}),
                false,
            );
            self.record(|s| {
                s.delegations.push(Delegation {
                    id: id.clone(),
                    target: "client".into(),
                    offset_ms: offset,
                    call_id: None,
                    name: None,
                    arguments: None,
                    outputs: Vec::new(),
                    continued: false,
                })
            });
        }
    }

    fn responses_only(&mut self, what: &str, cid: Option<&str>) -> bool {
        if self
            .accepted
            .as_ref()
            .is_some_and(|a| a.mode == Mode::Responses)
        {
            return true;
        }
        self.violation(
            LiveViolationKind::ResponsesInClientMode,
            format!("{what} without responses delegation"),
        );
        self.error(
            "invalid_delegation_mode",
            &format!("{what} requires Responses delegation."),
            Some("type"),
            cid,
        );
        false
    }

    fn on_item_create(&mut self, event: &Value, cid: Option<&str>) {
        if !self.responses_only("response.item.create", cid) {
            return;
        }
        let item = event.get("item");
        let call_id = item
            .and_then(|i| i.get("call_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let output = item
            .and_then(|i| i.get("output"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let ty = item.and_then(|i| i.get("type")).and_then(Value::as_str);
        if ty == Some("message") {
            return;
        }
        let (Some(call_id), Some(output), Some("function_call_output")) = (call_id, output, ty)
        else {
            self.violation(
                LiveViolationKind::BadItem,
                "response.item.create without a function_call_output".into(),
            );
            self.error(
                "invalid_value",
                "Invalid 'item': expected a function_call_output with call_id and output.",
                Some("item"),
                cid,
            );
            return;
        };
        let Some(call) = self.calls.iter_mut().find(|c| c.call_id == call_id) else {
            self.violation(
                LiveViolationKind::BadItem,
                format!("output for unknown call {call_id}"),
            );
            self.error(
                "invalid_value",
                &format!("No function call found with call_id '{call_id}'."),
                Some("item.call_id"),
                cid,
            );
            return;
        };
        call.output = Some(output.clone());
        self.record(|s| {
            if let Some(d) = s
                .delegations
                .iter_mut()
                .find(|d| d.call_id.as_deref() == Some(&call_id))
            {
                d.outputs.push(output);
            }
        });
    }

    fn on_response_create(&mut self, event: &Value, cid: Option<&str>) {
        if !self.responses_only("response.create", cid) {
            return;
        }
        if let Some(extra) = extra_keys(event, &["type", "event_id"]) {
            self.violation(
                LiveViolationKind::BadItem,
                format!("response.create with {extra}"),
            );
            self.error(
                "unknown_parameter",
                &format!("Unknown parameter: '{extra}'."),
                Some(&extra),
                cid,
            );
            return;
        }
        if let Some(missing) = self.calls.iter().find(|c| c.output.is_none()) {
            let message = format!(
                "No tool output found for function call {}.",
                missing.call_id
            );
            self.violation(LiveViolationKind::CreateWithUnansweredCall, message.clone());
            self.error("function_call_outputs_required", &message, None, cid);
            return;
        }
        let outputs: Vec<String> = self.calls.drain(..).filter_map(|c| c.output).collect();
        let response_id = self.next_id("resp");
        self.record(|s| {
            for d in s.delegations.iter_mut().filter(|d| d.target == "responses") {
                d.continued = true;
            }
            s.response_creates += 1;
        });
        let nested = |e: Value| json!({"type": "response.event", "delegation_id": null, "client_event_id": cid, "event": e});
        self.send(nested(json!({"type": "response.created", "response": {"id": response_id, "status": "in_progress", "output": []}})), false);
        let text = outputs.join("; ");
        self.send(
            nested(json!({"type": "response.output_text.delta", "delta": text})),
            false,
        );
        self.send(nested(json!({"type": "response.completed", "response": {"id": response_id, "status": "completed", "output": [],
            "usage": {"input_tokens": 200, "output_tokens": 20, "total_tokens": 220}}})), false);
        if !outputs.is_empty() {
            if self.cfg.result_delay_ms == 0 {
                self.say(text, self.cfg.result_ms);
            } else {
                let at = ms_from(self.output_bytes, self.bytes_per_ms()) + self.cfg.result_delay_ms;
                self.delayed.push_back((at, text, self.cfg.result_ms));
            }
        }
    }
}

fn extra_keys(event: &Value, allowed: &[&str]) -> Option<String> {
    event
        .as_object()?
        .keys()
        .find(|k| !allowed.contains(&k.as_str()))
        .cloned()
}

fn truncate(text: &str) -> String {
    text.chars().take(120).collect()
}
