//! The per-session protocol engine of the mock Realtime server: client text in, server events
//! out, driven by an explicit clock. The socket task in `server.rs` only moves frames.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::MockConfig;
use super::SharedSession;
use super::record::{
    AssistantItem, ClientEvent, ClientEventKind, FunctionCallRecord, ResponseRecord,
    ResponseTrigger, ServerEvent, Truncation, Violation, ViolationKind,
};
use super::script::{AgentAudio, OutputScript, Pacing, ResponseFault, ResponseScript, Script};
use super::vad::{Format, TICKS_PER_MS, Vad, VadEvent, VadParams};

/// What the socket task must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Out {
    /// Send this text frame.
    Text(String),
    /// Drop the TCP connection without a close frame.
    Drop,
    /// Send a close frame and end.
    Close(u16, String),
}

const MAX_APPEND_BYTES: usize = 15 * 1024 * 1024;

/// Client event types of the GA interface.
const CLIENT_TYPES: &[&str] = &[
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum ItemKind {
    User,
    Other,
    Assistant { audio_bytes: usize },
    FunctionCall,
}

#[derive(Debug, Clone)]
struct Item {
    id: String,
    kind: ItemKind,
    json: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Created,
    RateLimits,
    ItemAdded(usize),
    PartAdded(usize),
    AudioDelta(usize, usize, usize),
    TranscriptDelta(usize, usize, usize),
    AudioDone(usize),
    TranscriptDone(usize),
    PartDone(usize),
    ArgsDelta(usize, usize, usize),
    ArgsDone(usize),
    ItemDone(usize),
    Done,
}

#[derive(Debug)]
enum OutKind {
    Message {
        audio: Vec<u8>,
        transcript: String,
        transcript_sent: usize,
    },
    Call {
        name: String,
        call_id: String,
        arguments: String,
    },
}

#[derive(Debug)]
struct OutState {
    item_id: String,
    kind: OutKind,
    added: bool,
    part_added: bool,
    audio_done: bool,
    transcript_done: bool,
    part_done: bool,
    args_done: bool,
    done: bool,
}

#[derive(Debug)]
struct ActiveResponse {
    id: String,
    started: Instant,
    steps: VecDeque<(Duration, Step)>,
    outputs: Vec<OutState>,
    deltas_sent: usize,
    faults: Vec<ResponseFault>,
    status: &'static str,
    status_details: Value,
    item_status: &'static str,
    audio_ms: u64,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow, default)]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Append<'a> {
    #[serde(borrow, default)]
    audio: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct AudioDeltaEvent<'a> {
    event_id: &'a str,
    #[serde(rename = "type")]
    ty: &'static str,
    response_id: &'a str,
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    delta: &'a str,
}

struct ErrorSpec {
    code: &'static str,
    message: String,
    param: Option<String>,
    violation: ViolationKind,
}

impl ErrorSpec {
    fn new(code: &'static str, message: String, param: Option<&str>, v: ViolationKind) -> Self {
        Self {
            code,
            message,
            param: param.map(str::to_string),
            violation: v,
        }
    }
}

/// Default effective session of a new connection (GA defaults from the spec's example).
pub(crate) fn default_session(id: &str, model: &str) -> Value {
    let expires_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        + 3600;
    json!({
        "type": "realtime",
        "object": "realtime.session",
        "id": id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "You are a helpful, witty, and friendly AI.",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": null,
        "truncation": "auto",
        "prompt": null,
        "expires_at": expires_at,
        "include": null,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": null,
                "noise_reduction": null,
                "turn_detection": server_vad_defaults(),
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "alloy",
                "speed": 1.0,
            },
        },
    })
}

fn server_vad_defaults() -> Value {
    json!({
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "idle_timeout_ms": null,
        "create_response": true,
        "interrupt_response": true,
    })
}

const SESSION_KEYS: &[&str] = &[
    "type",
    "model",
    "instructions",
    "output_modalities",
    "audio",
    "include",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "max_output_tokens",
    "truncation",
    "tracing",
    "prompt",
];

/// Paths whose value a `session.update` replaces as a whole instead of merging.
const REPLACE_WHOLE: &[&str] = &[
    "audio.input.format",
    "audio.output.format",
    "audio.input.turn_detection",
    "audio.input.transcription",
    "audio.input.noise_reduction",
    "tools",
    "tool_choice",
    "tracing",
    "prompt",
    "truncation",
    "reasoning",
    "include",
    "output_modalities",
];

fn merge(dst: &mut Value, src: &Value, path: &str) {
    let (Some(d), Some(s)) = (dst.as_object_mut(), src.as_object()) else {
        *dst = src.clone();
        return;
    };
    for (k, v) in s {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match d.get_mut(k) {
            Some(existing)
                if v.is_object()
                    && existing.is_object()
                    && !REPLACE_WHOLE.contains(&p.as_str()) =>
            {
                merge(existing, v, &p);
            }
            _ => {
                d.insert(k.clone(), v.clone());
            }
        }
    }
}

fn check_keys(
    obj: &serde_json::Map<String, Value>,
    allowed: &[&str],
    path: &str,
) -> Result<(), ErrorSpec> {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            let p = format!("{path}.{k}");
            return Err(ErrorSpec::new(
                "unknown_parameter",
                format!("Unknown parameter: '{p}'."),
                Some(&p),
                ViolationKind::UnknownField,
            ));
        }
    }
    Ok(())
}

fn invalid(param: &str, message: String) -> ErrorSpec {
    ErrorSpec::new(
        "invalid_value",
        message,
        Some(param),
        ViolationKind::InvalidValue,
    )
}

fn check_format(f: &Value, path: &str) -> Result<(), ErrorSpec> {
    let Some(obj) = f.as_object() else {
        return Err(invalid(
            path,
            format!("Invalid type for '{path}': expected an object."),
        ));
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("audio/pcm") => {
            check_keys(obj, &["type", "rate"], path)?;
            if let Some(rate) = obj.get("rate")
                && rate.as_u64() != Some(24000)
            {
                return Err(invalid(
                    &format!("{path}.rate"),
                    format!("Invalid value: '{rate}'. Supported values are: 24000."),
                ));
            }
            Ok(())
        }
        Some("audio/pcmu" | "audio/pcma") => check_keys(obj, &["type"], path),
        Some(other) => Err(invalid(
            &format!("{path}.type"),
            format!(
                "Invalid value: '{other}'. Supported values are: 'audio/pcm', 'audio/pcmu', and 'audio/pcma'."
            ),
        )),
        None => Err(ErrorSpec::new(
            "missing_required_parameter",
            format!("Missing required parameter: '{path}.type'."),
            Some(&format!("{path}.type")),
            ViolationKind::MissingField,
        )),
    }
}

fn check_session(s: &Value) -> Result<(), ErrorSpec> {
    let Some(obj) = s.as_object() else {
        return Err(ErrorSpec::new(
            "missing_required_parameter",
            "Missing required parameter: 'session'.".into(),
            Some("session"),
            ViolationKind::MissingField,
        ));
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("realtime") => {}
        Some(other) => {
            return Err(invalid(
                "session.type",
                format!("Invalid value: '{other}'. The mock only serves 'realtime' sessions."),
            ));
        }
        None => {
            return Err(ErrorSpec::new(
                "missing_required_parameter",
                "Missing required parameter: 'session.type'.".into(),
                Some("session.type"),
                ViolationKind::MissingField,
            ));
        }
    }
    check_keys(obj, SESSION_KEYS, "session")?;
    if let Some(m) = obj.get("output_modalities") {
        let ok = m
            .as_array()
            .is_some_and(|a| a.len() == 1 && matches!(a[0].as_str(), Some("audio" | "text")));
        if !ok {
            return Err(invalid(
                "session.output_modalities",
                format!("Invalid value: {m}. Expected [\"audio\"] or [\"text\"]."),
            ));
        }
    }
    if let Some(audio) = obj.get("audio") {
        let Some(audio) = audio.as_object() else {
            return Err(invalid(
                "session.audio",
                "Invalid type for 'session.audio'.".into(),
            ));
        };
        check_keys(audio, &["input", "output"], "session.audio")?;
        if let Some(input) = audio.get("input") {
            let Some(input) = input.as_object() else {
                return Err(invalid(
                    "session.audio.input",
                    "Invalid type for 'session.audio.input'.".into(),
                ));
            };
            check_keys(
                input,
                &[
                    "format",
                    "transcription",
                    "noise_reduction",
                    "turn_detection",
                ],
                "session.audio.input",
            )?;
            if let Some(f) = input.get("format") {
                check_format(f, "session.audio.input.format")?;
            }
            if let Some(td) = input.get("turn_detection")
                && !td.is_null()
            {
                let p = "session.audio.input.turn_detection";
                let Some(td) = td.as_object() else {
                    return Err(invalid(p, format!("Invalid type for '{p}'.")));
                };
                match td.get("type").and_then(Value::as_str) {
                    Some("server_vad") => check_keys(
                        td,
                        &[
                            "type",
                            "threshold",
                            "prefix_padding_ms",
                            "silence_duration_ms",
                            "create_response",
                            "interrupt_response",
                            "idle_timeout_ms",
                        ],
                        p,
                    )?,
                    Some("semantic_vad") => check_keys(
                        td,
                        &["type", "eagerness", "create_response", "interrupt_response"],
                        p,
                    )?,
                    Some(other) => {
                        return Err(invalid(
                            &format!("{p}.type"),
                            format!(
                                "Invalid value: '{other}'. Supported values are: 'server_vad' and 'semantic_vad'."
                            ),
                        ));
                    }
                    None => {
                        return Err(ErrorSpec::new(
                            "missing_required_parameter",
                            format!("Missing required parameter: '{p}.type'."),
                            Some(&format!("{p}.type")),
                            ViolationKind::MissingField,
                        ));
                    }
                }
                if let Some(t) = td.get("threshold")
                    && !t.as_f64().is_some_and(|t| (0.0..=1.0).contains(&t))
                {
                    return Err(invalid(
                        &format!("{p}.threshold"),
                        format!("Invalid value: {t}. Expected a number between 0 and 1."),
                    ));
                }
            }
        }
        if let Some(output) = audio.get("output") {
            let Some(output) = output.as_object() else {
                return Err(invalid(
                    "session.audio.output",
                    "Invalid type for 'session.audio.output'.".into(),
                ));
            };
            check_keys(
                output,
                &["format", "voice", "speed"],
                "session.audio.output",
            )?;
            if let Some(f) = output.get("format") {
                check_format(f, "session.audio.output.format")?;
            }
            if let Some(sp) = output.get("speed")
                && !sp.as_f64().is_some_and(|v| (0.25..=1.5).contains(&v))
            {
                return Err(invalid(
                    "session.audio.output.speed",
                    format!("Invalid value: {sp}. Expected a number between 0.25 and 1.5."),
                ));
            }
        }
    }
    Ok(())
}

/// Splits `text` into word-sized pieces (each keeps its trailing whitespace).
fn word_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == ' ' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push((start, text.len()));
    }
    out
}

/// Splits `s` into `n` roughly equal pieces on char boundaries.
fn char_chunks(s: &str, n: usize) -> Vec<(usize, usize)> {
    let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
    let chars = bounds.len() - 1;
    if chars == 0 {
        return Vec::new();
    }
    let n = n.clamp(1, chars);
    (0..n)
        .map(|k| (bounds[k * chars / n], bounds[(k + 1) * chars / n]))
        .collect()
}

pub(crate) struct Engine {
    /// Call ids of `function_call` items the client created (a replayed conversation): a
    /// `function_call_output` may answer them.
    client_calls: Vec<String>,
    cfg: Arc<MockConfig>,
    rec: Arc<SharedSession>,
    pub(crate) out: Vec<Out>,
    session: Value,
    tag: String,
    next_id: u64,
    input_format: Format,
    output_format: Format,
    input_ticks: u64,
    buffer_start_tick: u64,
    vad: Vad,
    vad_params: Option<VadParams>,
    create_response: bool,
    interrupt_response: bool,
    transcription: bool,
    pending_user_item: Option<String>,
    items: Vec<Item>,
    active: Option<ActiveResponse>,
    script: Script,
    response_count: u32,
    assistant_audio_produced: bool,
    flagged: HashSet<ViolationKind>,
    delta_cursor: usize,
    client_index: usize,
    dead: bool,
    /// A [`ResponseFault::StallAfterDeltas`] fired: nothing is sent any more.
    stalled: bool,
    vad_events: Vec<VadEvent>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub(crate) fn new(
        cfg: Arc<MockConfig>,
        rec: Arc<SharedSession>,
        script: Script,
        tag: String,
    ) -> Self {
        let session = rec.state.read(|s| s.session.clone());
        let mut e = Self {
            cfg,
            rec,
            out: Vec::new(),
            session,
            tag,
            next_id: 0,
            input_format: Format::Pcm24k,
            output_format: Format::Pcm24k,
            input_ticks: 0,
            buffer_start_tick: 0,
            vad: Vad::default(),
            vad_params: None,
            create_response: true,
            interrupt_response: true,
            transcription: false,
            pending_user_item: None,
            items: Vec::new(),
            client_calls: Vec::new(),
            active: None,
            script,
            response_count: 0,
            assistant_audio_produced: false,
            flagged: HashSet::new(),
            delta_cursor: 0,
            client_index: 0,
            dead: false,
            stalled: false,
            vad_events: Vec::new(),
        };
        e.apply_session();
        e
    }

    /// Appends a response to the script.
    pub(crate) fn push_response(&mut self, response: ResponseScript) {
        self.script.responses.push_back(response);
    }

    /// Sends a raw frame (recorded with its `type`, or `raw` if it has none).
    pub(crate) fn send_raw(&mut self, now: Instant, text: String) {
        let ty = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("type")?.as_str().map(str::to_string))
            .unwrap_or_else(|| "raw".to_string());
        self.push_text(now, &ty, text);
    }

    /// Whether the engine asked for the connection to end.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{}{:08}", self.tag, self.next_id)
    }

    fn record(&self) -> bool {
        self.cfg.record_payloads
    }

    // ---- output helpers ------------------------------------------------------------------

    fn push_text(&mut self, now: Instant, ty: &str, text: String) {
        if self.stalled {
            return;
        }
        let raw = if self.record() {
            text.clone()
        } else {
            String::new()
        };
        self.rec.state.update(|s| {
            s.server_events.push(ServerEvent {
                at: now,
                event_type: ty.to_string(),
                raw,
            })
        });
        self.out.push(Out::Text(text));
    }

    fn emit(&mut self, now: Instant, ty: &str, mut body: Value) {
        let id = self.new_id("event");
        if let Some(obj) = body.as_object_mut() {
            obj.insert("event_id".into(), Value::String(id));
            obj.insert("type".into(), Value::String(ty.to_string()));
        }
        self.push_text(now, ty, body.to_string());
    }

    /// Sends an `error` event.
    pub(crate) fn error(
        &mut self,
        now: Instant,
        code: Option<&str>,
        message: &str,
        param: Option<&str>,
        event_id: Option<&str>,
    ) {
        self.emit(
            now,
            "error",
            json!({"error": {
                "type": "invalid_request_error",
                "code": code,
                "message": message,
                "param": param,
                "event_id": event_id,
            }}),
        );
    }

    fn violate(&mut self, now: Instant, kind: ViolationKind, detail: String, index: Option<usize>) {
        let once = matches!(
            kind,
            ViolationKind::AudioBeforePcmuConfigured | ViolationKind::BinaryFrame
        );
        if once && !self.flagged.insert(kind) {
            return;
        }
        self.rec.state.update(|s| {
            s.violations.push(Violation {
                at: now,
                kind,
                detail,
                event_index: index,
            })
        });
    }

    fn reject(&mut self, now: Instant, spec: ErrorSpec, index: usize, event_id: Option<&str>) {
        self.violate(now, spec.violation, spec.message.clone(), Some(index));
        self.error(
            now,
            Some(spec.code),
            &spec.message,
            spec.param.as_deref(),
            event_id,
        );
    }

    // ---- session -------------------------------------------------------------------------

    /// Sends `session.created`.
    pub(crate) fn start(&mut self, now: Instant) {
        let session = self.session.clone();
        self.emit(now, "session.created", json!({"session": session}));
    }

    fn apply_session(&mut self) {
        let input = self.session.pointer("/audio/input/format");
        let new_input = Format::from_session(input);
        if new_input != self.input_format {
            self.vad.reset();
        }
        self.input_format = new_input;
        self.output_format = Format::from_session(self.session.pointer("/audio/output/format"));
        self.transcription = self
            .session
            .pointer("/audio/input/transcription")
            .is_some_and(|t| !t.is_null());
        let td = self.session.pointer("/audio/input/turn_detection").cloned();
        match td {
            Some(td) if td.is_object() => {
                let f = |k: &str| td.get(k);
                let semantic = f("type").and_then(Value::as_str) == Some("semantic_vad");
                let threshold = f("threshold").and_then(Value::as_f64).unwrap_or(0.5);
                let silence = if semantic {
                    500
                } else {
                    f("silence_duration_ms")
                        .and_then(Value::as_u64)
                        .unwrap_or(200)
                };
                self.vad_params = Some(VadParams {
                    rms_threshold: threshold * self.cfg.rms_at_threshold_one,
                    silence_ms: silence,
                    prefix_ms: f("prefix_padding_ms")
                        .and_then(Value::as_u64)
                        .unwrap_or(300),
                    onset_windows: self.cfg.vad_onset_windows,
                });
                self.create_response = f("create_response")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                self.interrupt_response = f("interrupt_response")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
            }
            _ => {
                self.vad_params = None;
                self.vad.reset();
            }
        }
        let session = self.session.clone();
        self.rec.state.update(|s| s.session = session);
    }

    fn on_session_update(&mut self, now: Instant, v: &Value, index: usize, event_id: Option<&str>) {
        let session = v.get("session").cloned().unwrap_or(Value::Null);
        if let Err(spec) = check_session(&session) {
            return self.reject(now, spec, index, event_id);
        }
        if self.assistant_audio_produced
            && let Some(voice) = session.pointer("/audio/output/voice")
            && Some(voice) != self.session.pointer("/audio/output/voice")
        {
            let spec = ErrorSpec::new(
                "cannot_update_voice",
                "Cannot update a conversation's voice if assistant audio is present.".into(),
                Some("session.audio.output.voice"),
                ViolationKind::InvalidValue,
            );
            return self.reject(now, spec, index, event_id);
        }
        let mut merged = self.session.clone();
        merge(&mut merged, &session, "");
        // Fill defaults of a replaced turn_detection object.
        if let Some(td) = merged.pointer_mut("/audio/input/turn_detection")
            && td.get("type").and_then(Value::as_str) == Some("server_vad")
        {
            let mut full = server_vad_defaults();
            merge(&mut full, td, "");
            *td = full;
        } else if let Some(td) = merged.pointer_mut("/audio/input/turn_detection")
            && td.get("type").and_then(Value::as_str) == Some("semantic_vad")
        {
            let mut full = json!({"type": "semantic_vad", "eagerness": "auto",
                                  "create_response": true, "interrupt_response": true});
            merge(&mut full, td, "");
            *td = full;
        }
        self.session = merged;
        self.apply_session();
        let session = self.session.clone();
        self.emit(now, "session.updated", json!({"session": session}));
    }

    // ---- client input --------------------------------------------------------------------

    fn push_client(
        &mut self,
        now: Instant,
        event_id: Option<&str>,
        kind: ClientEventKind,
        raw: &str,
    ) -> usize {
        let index = self.client_index;
        self.client_index += 1;
        let raw = if self.record() {
            raw.to_string()
        } else {
            String::new()
        };
        let event_id = event_id.map(str::to_string);
        self.rec.state.update(|s| {
            s.client_events.push(ClientEvent {
                at: now,
                index,
                event_id,
                kind,
                raw,
            })
        });
        index
    }

    /// A binary frame from the client.
    pub(crate) fn on_binary(&mut self, now: Instant, len: usize) {
        let index = self.push_client(now, None, ClientEventKind::Malformed, "");
        self.violate(
            now,
            ViolationKind::BinaryFrame,
            format!("binary frame of {len} bytes; the Realtime API takes JSON text frames"),
            Some(index),
        );
        self.error(
            now,
            Some("invalid_event"),
            "Binary frames are not supported.",
            None,
            None,
        );
    }

    /// A text frame from the client.
    pub(crate) fn on_text(&mut self, now: Instant, text: &str) {
        let head: Head<'_> = match serde_json::from_str(text) {
            Ok(h) => h,
            Err(e) => {
                let valid_json = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
                let index = self.push_client(now, None, ClientEventKind::Malformed, text);
                if valid_json {
                    self.violate(now, ViolationKind::MissingType, format!("{e}"), Some(index));
                    self.error(
                        now,
                        Some("invalid_event"),
                        "The 'type' field is missing or is not a string.",
                        Some("type"),
                        None,
                    );
                } else {
                    self.violate(
                        now,
                        ViolationKind::MalformedJson,
                        format!("{e}"),
                        Some(index),
                    );
                    self.error(
                        now,
                        Some("invalid_json"),
                        &format!("Failed to parse the client event as JSON: {e}"),
                        None,
                        None,
                    );
                }
                return;
            }
        };
        let event_id = head.event_id.as_deref();
        let Some(ty) = head.ty.as_deref() else {
            let index = self.push_client(now, event_id, ClientEventKind::Malformed, text);
            self.violate(
                now,
                ViolationKind::MissingType,
                "no 'type' field".into(),
                Some(index),
            );
            self.error(
                now,
                Some("invalid_event"),
                "The 'type' field is missing.",
                Some("type"),
                event_id,
            );
            return;
        };
        if ty == "input_audio_buffer.append" {
            self.on_append(now, text, event_id);
            self.poll(now);
            return;
        }
        // Everything else is rare: parse the whole event.
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let kind = match ty {
            "session.update" => ClientEventKind::SessionUpdate {
                session: v.get("session").cloned().unwrap_or(Value::Null),
            },
            "input_audio_buffer.commit" => ClientEventKind::InputAudioCommit,
            "input_audio_buffer.clear" => ClientEventKind::InputAudioClear,
            "conversation.item.create" => {
                let item = v.get("item");
                let is = |k: &str| {
                    item.and_then(|i| i.get(k))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                ClientEventKind::ItemCreate {
                    item_type: is("type"),
                    role: is("role"),
                    call_id: is("call_id"),
                    output: is("output"),
                    previous_item_id: s("previous_item_id"),
                }
            }
            "conversation.item.retrieve" => ClientEventKind::ItemRetrieve {
                item_id: s("item_id"),
            },
            "conversation.item.truncate" => ClientEventKind::ItemTruncate {
                item_id: s("item_id"),
                content_index: v.get("content_index").and_then(Value::as_u64),
                audio_end_ms: v.get("audio_end_ms").and_then(Value::as_u64),
            },
            "conversation.item.delete" => ClientEventKind::ItemDelete {
                item_id: s("item_id"),
            },
            "response.create" => ClientEventKind::ResponseCreate {
                response: v.get("response").cloned(),
            },
            "response.cancel" => ClientEventKind::ResponseCancel {
                response_id: s("response_id"),
            },
            "output_audio_buffer.clear" => ClientEventKind::OutputAudioBufferClear,
            other => ClientEventKind::Unknown {
                event_type: other.to_string(),
            },
        };
        let index = self.push_client(now, event_id, kind, text);
        if let Some(id) = event_id
            && id.chars().count() > 512
        {
            let n = id.chars().count();
            self.violate(
                now,
                ViolationKind::EventIdTooLong,
                format!("event_id of {n} characters"),
                Some(index),
            );
            self.error(
                now,
                Some("string_above_max_length"),
                &format!("Invalid 'event_id': string too long. Expected a string with maximum length 512, but got a string with length {n} instead."),
                Some("event_id"),
                None,
            );
            return;
        }
        match ty {
            "session.update" => self.on_session_update(now, &v, index, event_id),
            "input_audio_buffer.commit" => self.on_commit(now, event_id),
            "input_audio_buffer.clear" => {
                self.buffer_start_tick = self.input_ticks;
                self.vad.reset();
                self.pending_user_item = None;
                self.emit(now, "input_audio_buffer.cleared", json!({}));
            }
            "conversation.item.create" => self.on_item_create(now, &v, index, event_id),
            "conversation.item.retrieve" => self.on_item_retrieve(now, &v, index, event_id),
            "conversation.item.truncate" => self.on_truncate(now, &v, index, event_id),
            "conversation.item.delete" => self.on_item_delete(now, &v, index, event_id),
            "response.create" => {
                if let Some(a) = &self.active {
                    let msg = format!(
                        "Conversation already has an active response in progress: {}. Wait until the response is finished before creating a new one.",
                        a.id
                    );
                    self.error(
                        now,
                        Some("conversation_already_has_active_response"),
                        &msg,
                        None,
                        event_id,
                    );
                } else {
                    self.rec.state.update(|s| {
                        for c in &mut s.function_calls {
                            if c.output.is_some() {
                                c.followed_by_response_create = true;
                            }
                        }
                    });
                    self.start_response(now, ResponseTrigger::Client, v.get("response").cloned());
                }
            }
            "response.cancel" => {
                let wanted = s("response_id");
                let matches = self
                    .active
                    .as_ref()
                    .is_some_and(|a| wanted.as_deref().is_none_or(|w| w == a.id));
                if matches {
                    self.cancel(now, "client_cancelled");
                } else {
                    self.error(
                        now,
                        Some("response_cancel_not_active"),
                        "Cancellation failed: no active response found",
                        None,
                        event_id,
                    );
                }
            }
            "output_audio_buffer.clear" => self.violate(
                now,
                ViolationKind::NotForWebSocket,
                "output_audio_buffer.clear is only for WebRTC/SIP connections".into(),
                Some(index),
            ),
            other => {
                let supported = CLIENT_TYPES
                    .iter()
                    .map(|t| format!("'{t}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let msg = format!("Invalid value: '{other}'. Supported values are: {supported}.");
                self.violate(
                    now,
                    ViolationKind::UnknownEventType,
                    msg.clone(),
                    Some(index),
                );
                self.error(now, Some("invalid_value"), &msg, Some("type"), event_id);
            }
        }
        self.poll(now);
    }

    fn on_append(&mut self, now: Instant, text: &str, event_id: Option<&str>) {
        let append: Append<'_> = serde_json::from_str(text).unwrap_or(Append { audio: None });
        let Some(b64) = append.audio else {
            let index = self.push_client(
                now,
                event_id,
                ClientEventKind::InputAudioAppend { bytes: 0 },
                text,
            );
            let spec = ErrorSpec::new(
                "missing_required_parameter",
                "Missing required parameter: 'audio'.".into(),
                Some("audio"),
                ViolationKind::MissingField,
            );
            return self.reject(now, spec, index, event_id);
        };
        let decoded = base64::engine::general_purpose::STANDARD.decode(b64.as_bytes());
        let bytes = decoded.as_ref().map_or(0, Vec::len);
        let index = self.push_client(
            now,
            event_id,
            ClientEventKind::InputAudioAppend { bytes },
            text,
        );
        let Ok(audio) = decoded else {
            let spec = ErrorSpec::new(
                "invalid_value",
                "Invalid 'audio'. Expected base64-encoded audio bytes.".into(),
                Some("audio"),
                ViolationKind::InvalidBase64,
            );
            return self.reject(now, spec, index, event_id);
        };
        if audio.len() > MAX_APPEND_BYTES {
            self.violate(
                now,
                ViolationKind::AppendTooLarge,
                format!("append of {} bytes exceeds 15 MiB", audio.len()),
                Some(index),
            );
        }
        if self.input_format != Format::Pcmu {
            self.violate(
                now,
                ViolationKind::AudioBeforePcmuConfigured,
                format!(
                    "audio appended while the input format is {:?}, not audio/pcmu",
                    self.input_format
                ),
                Some(index),
            );
        }
        let record = self.record();
        self.rec.state.update(|s| {
            s.received_audio_bytes += audio.len();
            if record {
                s.received_audio.extend_from_slice(&audio);
            }
        });
        let start_tick = self.input_ticks;
        self.input_ticks += audio.len() as u64 * self.input_format.ticks_per_byte();
        if let Some(params) = self.vad_params {
            let mut events = std::mem::take(&mut self.vad_events);
            events.clear();
            self.vad
                .feed(self.input_format, &audio, start_tick, &params, &mut events);
            for ev in events.drain(..) {
                match ev {
                    VadEvent::Started { onset_tick } => {
                        let start_ms = (onset_tick / TICKS_PER_MS)
                            .saturating_sub(params.prefix_ms)
                            .max(self.buffer_start_tick / TICKS_PER_MS);
                        let item_id = self.new_id("item");
                        self.pending_user_item = Some(item_id.clone());
                        self.emit(
                            now,
                            "input_audio_buffer.speech_started",
                            json!({"audio_start_ms": start_ms, "item_id": item_id}),
                        );
                        if self.interrupt_response && self.active.is_some() {
                            self.cancel(now, "turn_detected");
                        }
                    }
                    VadEvent::Stopped { tick } => {
                        let item_id = self
                            .pending_user_item
                            .take()
                            .unwrap_or_else(|| self.new_id("item"));
                        self.emit(
                            now,
                            "input_audio_buffer.speech_stopped",
                            json!({"audio_end_ms": tick / TICKS_PER_MS, "item_id": item_id}),
                        );
                        self.commit(now, item_id, tick);
                        if self.create_response && self.active.is_none() && !self.dead {
                            self.start_response(now, ResponseTrigger::Vad, None);
                        }
                    }
                }
            }
            self.vad_events = events;
        }
    }

    fn on_commit(&mut self, now: Instant, event_id: Option<&str>) {
        let have_ms = (self.input_ticks - self.buffer_start_tick) as f64 / TICKS_PER_MS as f64;
        if have_ms < 100.0 {
            let msg = format!(
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has {have_ms:.2}ms of audio."
            );
            self.error(
                now,
                Some("input_audio_buffer_commit_empty"),
                &msg,
                None,
                event_id,
            );
            return;
        }
        let item_id = self
            .pending_user_item
            .take()
            .unwrap_or_else(|| self.new_id("item"));
        self.vad.reset();
        self.commit(now, item_id, self.input_ticks);
    }

    fn last_item_id(&self) -> Value {
        self.items
            .last()
            .map_or(Value::Null, |i| Value::String(i.id.clone()))
    }

    fn commit(&mut self, now: Instant, item_id: String, tick: u64) {
        let previous = self.last_item_id();
        self.emit(
            now,
            "input_audio_buffer.committed",
            json!({"previous_item_id": previous, "item_id": item_id}),
        );
        let item = json!({
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": null}],
        });
        self.emit(
            now,
            "conversation.item.added",
            json!({"previous_item_id": previous, "item": item}),
        );
        self.emit(
            now,
            "conversation.item.done",
            json!({"previous_item_id": previous, "item": item}),
        );
        let ms = (tick - self.buffer_start_tick) / TICKS_PER_MS;
        self.items.push(Item {
            id: item_id.clone(),
            kind: ItemKind::User,
            json: item,
        });
        self.buffer_start_tick = tick;
        if self.transcription {
            let transcript = format!("(caller audio, {ms} ms)");
            self.emit(
                now,
                "conversation.item.input_audio_transcription.completed",
                json!({
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": transcript,
                    "usage": {"type": "duration", "seconds": ms as f64 / 1000.0},
                }),
            );
        }
    }

    fn on_item_create(&mut self, now: Instant, v: &Value, index: usize, event_id: Option<&str>) {
        let Some(item) = v.get("item").filter(|i| i.is_object()) else {
            let spec = ErrorSpec::new(
                "missing_required_parameter",
                "Missing required parameter: 'item'.".into(),
                Some("item"),
                ViolationKind::MissingField,
            );
            return self.reject(now, spec, index, event_id);
        };
        let Some(item_type) = item.get("type").and_then(Value::as_str) else {
            let spec = ErrorSpec::new(
                "missing_required_parameter",
                "Missing required parameter: 'item.type'.".into(),
                Some("item.type"),
                ViolationKind::MissingField,
            );
            return self.reject(now, spec, index, event_id);
        };
        if let Some(prev) = v.get("previous_item_id").and_then(Value::as_str)
            && prev != "root"
            && !self.items.iter().any(|i| i.id == prev)
        {
            let spec = invalid(
                "previous_item_id",
                format!("Previous item with id '{prev}' not found in the conversation."),
            );
            return self.reject(now, spec, index, event_id);
        }
        let kind = match item_type {
            "message" => {
                match item.get("role").and_then(Value::as_str) {
                    Some("user") => ItemKind::User,
                    Some("system" | "assistant") => ItemKind::Other,
                    _ => {
                        let spec = invalid("item.role", "Invalid or missing 'item.role'; expected 'user', 'assistant' or 'system'.".into());
                        return self.reject(now, spec, index, event_id);
                    }
                }
            }
            "function_call" => {
                if let Some(call_id) = item.get("call_id").and_then(Value::as_str) {
                    self.client_calls.push(call_id.to_string());
                }
                ItemKind::FunctionCall
            }
            "function_call_output" => {
                let Some(call_id) = item.get("call_id").and_then(Value::as_str) else {
                    let spec = ErrorSpec::new(
                        "missing_required_parameter",
                        "Missing required parameter: 'item.call_id'.".into(),
                        Some("item.call_id"),
                        ViolationKind::MissingField,
                    );
                    return self.reject(now, spec, index, event_id);
                };
                let output = item
                    .get("output")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let known = self.rec.state.update(|s| {
                    match s.function_calls.iter_mut().find(|c| c.call_id == call_id) {
                        Some(c) => {
                            c.output = Some(output);
                            c.output_at = Some(now);
                            true
                        }
                        None => false,
                    }
                });
                if !known && !self.client_calls.iter().any(|c| c == call_id) {
                    let spec = ErrorSpec::new(
                        "invalid_value",
                        format!("Tool call ID '{call_id}' not found in conversation."),
                        Some("item.call_id"),
                        ViolationKind::UnknownCallId,
                    );
                    return self.reject(now, spec, index, event_id);
                }
                ItemKind::Other
            }
            other => {
                let spec = invalid(
                    "item.type",
                    format!(
                        "Invalid value: '{other}'. Supported values are: 'message', 'function_call', and 'function_call_output'."
                    ),
                );
                return self.reject(now, spec, index, event_id);
            }
        };
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| self.new_id("item"), str::to_string);
        let mut full = item.clone();
        if let Some(o) = full.as_object_mut() {
            o.insert("id".into(), Value::String(id.clone()));
            o.insert("object".into(), json!("realtime.item"));
            o.entry("status").or_insert(json!("completed"));
        }
        let previous = self.last_item_id();
        self.emit(
            now,
            "conversation.item.added",
            json!({"previous_item_id": previous, "item": full}),
        );
        self.emit(
            now,
            "conversation.item.done",
            json!({"previous_item_id": previous, "item": full}),
        );
        self.items.push(Item {
            id,
            kind,
            json: full,
        });
    }

    fn required_str<'v>(
        &mut self,
        now: Instant,
        v: &'v Value,
        key: &str,
        index: usize,
        event_id: Option<&str>,
    ) -> Option<&'v str> {
        let r = v.get(key).and_then(Value::as_str);
        if r.is_none() {
            let spec = ErrorSpec::new(
                "missing_required_parameter",
                format!("Missing required parameter: '{key}'."),
                Some(key),
                ViolationKind::MissingField,
            );
            self.reject(now, spec, index, event_id);
        }
        r
    }

    fn on_item_retrieve(&mut self, now: Instant, v: &Value, index: usize, event_id: Option<&str>) {
        let Some(id) = self.required_str(now, v, "item_id", index, event_id) else {
            return;
        };
        let Some(item) = self.items.iter().find(|i| i.id == id) else {
            let msg = format!("Item with item_id '{id}' not found.");
            self.error(now, Some("item_not_found"), &msg, Some("item_id"), event_id);
            return;
        };
        let mut json = item.json.clone();
        if let ItemKind::Assistant { .. } = item.kind {
            let audio = self.rec.state.read(|s| {
                s.assistant_items
                    .iter()
                    .find(|a| a.item_id == id)
                    .map(|a| base64::engine::general_purpose::STANDARD.encode(&a.audio))
            });
            if let (Some(a), Some(part)) = (audio, json.pointer_mut("/content/0"))
                && let Some(o) = part.as_object_mut()
            {
                o.insert("audio".into(), Value::String(a));
            }
        }
        self.emit(now, "conversation.item.retrieved", json!({"item": json}));
    }

    fn on_item_delete(&mut self, now: Instant, v: &Value, index: usize, event_id: Option<&str>) {
        let Some(id) = self.required_str(now, v, "item_id", index, event_id) else {
            return;
        };
        let Some(pos) = self.items.iter().position(|i| i.id == id) else {
            let msg = format!("Item with item_id '{id}' not found.");
            self.error(now, Some("item_not_found"), &msg, Some("item_id"), event_id);
            return;
        };
        self.items.remove(pos);
        self.emit(now, "conversation.item.deleted", json!({"item_id": id}));
    }

    fn on_truncate(&mut self, now: Instant, v: &Value, index: usize, event_id: Option<&str>) {
        let Some(item_id) = self.required_str(now, v, "item_id", index, event_id) else {
            return;
        };
        let item_id = item_id.to_string();
        let (Some(content_index), Some(audio_end_ms)) = (
            v.get("content_index").and_then(Value::as_u64),
            v.get("audio_end_ms").and_then(Value::as_u64),
        ) else {
            let key = if v.get("content_index").and_then(Value::as_u64).is_none() {
                "content_index"
            } else {
                "audio_end_ms"
            };
            let spec = ErrorSpec::new(
                "missing_required_parameter",
                format!("Missing required parameter: '{key}' (a non-negative integer)."),
                Some(key),
                ViolationKind::MissingField,
            );
            return self.reject(now, spec, index, event_id);
        };
        let found = self
            .items
            .iter()
            .find(|i| i.id == item_id)
            .map(|i| i.kind.clone());
        let sent_bytes = match found {
            Some(ItemKind::Assistant { audio_bytes }) if audio_bytes > 0 => Some(audio_bytes),
            _ => None,
        };
        let sent_ticks = sent_bytes.map(|b| b as u64 * self.output_format.ticks_per_byte());
        let audio_sent_ms = sent_ticks.map(|t| t / TICKS_PER_MS);
        let error: Option<(&str, String, &str)> = match (&found, sent_ticks) {
            (None, _) => Some((
                "invalid_value",
                format!("Item with item_id '{item_id}' not found."),
                "item_id",
            )),
            (Some(_), None) => Some((
                "invalid_value",
                "Only model output audio messages can be truncated".to_string(),
                "item_id",
            )),
            (Some(_), Some(_)) if content_index != 0 => Some((
                "invalid_value",
                format!(
                    "Invalid content_index: {content_index}. The item has one audio content part, at index 0."
                ),
                "content_index",
            )),
            (Some(_), Some(ticks)) if audio_end_ms * TICKS_PER_MS > ticks => Some((
                "invalid_value",
                format!(
                    "Audio content of {}ms is already shorter than {audio_end_ms}ms",
                    ticks / TICKS_PER_MS
                ),
                "audio_end_ms",
            )),
            _ => None,
        };
        let accepted = error.is_none();
        let truncation = Truncation {
            at: now,
            event_id: event_id.map(str::to_string),
            item_id: item_id.clone(),
            content_index,
            audio_end_ms,
            audio_sent_ms,
            accepted,
            error: error.as_ref().map(|e| e.1.clone()),
        };
        self.rec.state.update(|s| {
            if accepted && let Some(a) = s.assistant_items.iter_mut().find(|a| a.item_id == item_id)
            {
                a.truncated_at_ms = Some(audio_end_ms);
            }
            s.truncations.push(truncation);
        });
        match error {
            Some((code, msg, param)) => self.error(now, Some(code), &msg, Some(param), event_id),
            None => self.emit(
                now,
                "conversation.item.truncated",
                json!({"item_id": item_id, "content_index": content_index, "audio_end_ms": audio_end_ms}),
            ),
        }
    }

    // ---- responses -----------------------------------------------------------------------

    fn next_delta_size(&mut self) -> usize {
        let sizes = &self.cfg.delta_sizes;
        if sizes.is_empty() {
            return 800;
        }
        let s = sizes[self.delta_cursor % sizes.len()].max(1);
        self.delta_cursor += 1;
        s
    }

    fn start_response(&mut self, now: Instant, trigger: ResponseTrigger, params: Option<Value>) {
        let script = self.script.next_response();
        self.response_count += 1;
        let number = self.response_count;
        let id = self.new_id("resp");
        let pacing = script.pacing.unwrap_or(self.cfg.pacing);
        let speed = match pacing {
            Pacing::Speed(f) if f > 0.0 => Some(f),
            _ => None,
        };
        let first_delay = script
            .first_delta_delay
            .unwrap_or(self.cfg.first_delta_delay);
        let mut outputs = Vec::new();
        let mut steps: VecDeque<(Duration, Step)> = VecDeque::new();
        steps.push_back((Duration::ZERO, Step::Created));
        steps.push_back((Duration::ZERO, Step::RateLimits));
        let mut t = first_delay;
        let mut audio_ms = 0;
        for (oi, o) in script.outputs.iter().enumerate() {
            let item_id = self.new_id("item");
            steps.push_back((t, Step::ItemAdded(oi)));
            match o {
                OutputScript::Message { audio, transcript } => {
                    let mulaw = match audio {
                        AgentAudio::Mulaw(b) => b.clone(),
                        AgentAudio::Tone { ms } => crate::audio::agent_tone(
                            number.wrapping_mul(65536).wrapping_add(oi as u32 * 4096),
                            *ms,
                        ),
                    };
                    let wire = self.output_format.encode_mulaw(&mulaw);
                    audio_ms += self.output_format.ms(wire.len());
                    steps.push_back((t, Step::PartAdded(oi)));
                    let mut ranges = Vec::new();
                    let mut pos = 0;
                    while pos < wire.len() {
                        let end = (pos + self.next_delta_size()).min(wire.len());
                        ranges.push((pos, end));
                        pos = end;
                    }
                    let words = word_ranges(transcript);
                    let (n, m) = (ranges.len(), words.len());
                    let mut w = 0;
                    if n == 0 {
                        for &(a, b) in &words {
                            steps.push_back((t, Step::TranscriptDelta(oi, a, b)));
                        }
                    }
                    for (k, &(a, b)) in ranges.iter().enumerate() {
                        steps.push_back((t, Step::AudioDelta(oi, a, b)));
                        while w < m && w * n / m <= k {
                            steps.push_back((t, Step::TranscriptDelta(oi, words[w].0, words[w].1)));
                            w += 1;
                        }
                        if let Some(f) = speed {
                            let ticks = (b - a) as f64 * self.output_format.ticks_per_byte() as f64;
                            t +=
                                Duration::from_secs_f64(ticks / (TICKS_PER_MS as f64 * 1000.0) / f);
                        }
                    }
                    steps.push_back((t, Step::AudioDone(oi)));
                    steps.push_back((t, Step::TranscriptDone(oi)));
                    steps.push_back((t, Step::PartDone(oi)));
                    outputs.push(OutState::new(
                        item_id,
                        OutKind::Message {
                            audio: wire,
                            transcript: transcript.clone(),
                            transcript_sent: 0,
                        },
                    ));
                }
                OutputScript::FunctionCall {
                    name,
                    call_id,
                    arguments,
                } => {
                    for (a, b) in char_chunks(arguments, 3) {
                        steps.push_back((t, Step::ArgsDelta(oi, a, b)));
                    }
                    steps.push_back((t, Step::ArgsDone(oi)));
                    let call_id = call_id.clone().unwrap_or_else(|| self.new_id("call"));
                    outputs.push(OutState::new(
                        item_id,
                        OutKind::Call {
                            name: name.clone(),
                            call_id,
                            arguments: arguments.clone(),
                        },
                    ));
                }
            }
            steps.push_back((t, Step::ItemDone(oi)));
        }
        steps.push_back((t, Step::Done));
        self.rec.state.update(|s| {
            s.responses.push(ResponseRecord {
                id: id.clone(),
                number,
                trigger,
                created_at: now,
                done_at: None,
                status: "in_progress".into(),
                reason: None,
                params,
                item_ids: outputs.iter().map(|o| o.item_id.clone()).collect(),
            })
        });
        self.active = Some(ActiveResponse {
            id,
            started: now,
            steps,
            outputs,
            deltas_sent: 0,
            faults: script.faults,
            status: "completed",
            status_details: Value::Null,
            item_status: "completed",
            audio_ms,
        });
    }

    /// When the next scripted step is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if self.stalled {
            return None;
        }
        let a = self.active.as_ref()?;
        a.steps.front().map(|(d, _)| a.started + *d)
    }

    /// Emits every scripted step due at `now`.
    pub(crate) fn poll(&mut self, now: Instant) {
        while !self.dead && !self.stalled {
            let Some(a) = self.active.as_mut() else {
                return;
            };
            let Some(&(due, step)) = a.steps.front() else {
                return;
            };
            if a.started + due > now {
                return;
            }
            a.steps.pop_front();
            self.exec(now, step);
        }
    }

    /// Ends the active response early: `cancelled` with `reason`.
    fn cancel(&mut self, now: Instant, reason: &str) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        a.status = "cancelled";
        a.status_details = json!({"type": "cancelled", "reason": reason});
        a.item_status = "incomplete";
        self.finish_early(now);
    }

    fn fail(&mut self, now: Instant) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        a.status = "failed";
        a.status_details =
            json!({"type": "failed", "error": {"type": "server_error", "code": "server_error"}});
        a.item_status = "incomplete";
        self.finish_early(now);
    }

    fn finish_early(&mut self, now: Instant) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let mut closing = VecDeque::new();
        for (oi, o) in a.outputs.iter().enumerate() {
            if !o.added || o.done {
                continue;
            }
            match o.kind {
                OutKind::Message { .. } => {
                    if o.part_added {
                        if !o.audio_done {
                            closing.push_back((Duration::ZERO, Step::AudioDone(oi)));
                        }
                        if !o.transcript_done {
                            closing.push_back((Duration::ZERO, Step::TranscriptDone(oi)));
                        }
                        if !o.part_done {
                            closing.push_back((Duration::ZERO, Step::PartDone(oi)));
                        }
                    }
                }
                OutKind::Call { .. } => {
                    if !o.args_done {
                        closing.push_back((Duration::ZERO, Step::ArgsDone(oi)));
                    }
                }
            }
            closing.push_back((Duration::ZERO, Step::ItemDone(oi)));
        }
        closing.push_back((Duration::ZERO, Step::Done));
        a.steps = closing;
        a.started = now;
        self.poll(now);
    }

    fn check_faults(&mut self, now: Instant) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let sent = a.deltas_sent;
        let mut fired = Vec::new();
        a.faults.retain(|f| {
            let n = match f {
                ResponseFault::DropAfterDeltas(n)
                | ResponseFault::CloseAfterDeltas(n, _)
                | ResponseFault::FailAfterDeltas(n)
                | ResponseFault::StallAfterDeltas(n) => *n,
                ResponseFault::ErrorAfterDeltas { after, .. } => *after,
            };
            if n == sent {
                fired.push(f.clone());
                false
            } else {
                true
            }
        });
        for f in fired {
            match f {
                ResponseFault::DropAfterDeltas(_) => {
                    self.out.push(Out::Drop);
                    self.dead = true;
                }
                ResponseFault::CloseAfterDeltas(_, code) => {
                    self.out.push(Out::Close(code, "scripted close".into()));
                    self.dead = true;
                }
                ResponseFault::ErrorAfterDeltas { code, message, .. } => {
                    self.emit(
                        now,
                        "error",
                        json!({"error": {"type": "server_error", "code": code, "message": message,
                                         "param": null, "event_id": null}}),
                    );
                }
                ResponseFault::FailAfterDeltas(_) => self.fail(now),
                ResponseFault::StallAfterDeltas(_) => self.stalled = true,
            }
            if self.dead {
                return;
            }
        }
    }

    fn item_json(&self, oi: usize, final_state: bool) -> Value {
        let Some(a) = self.active.as_ref() else {
            return Value::Null;
        };
        let o = &a.outputs[oi];
        let status = if final_state {
            a.item_status
        } else {
            "in_progress"
        };
        match &o.kind {
            OutKind::Message {
                transcript,
                transcript_sent,
                ..
            } => {
                let content = if final_state {
                    let t = if a.item_status == "completed" {
                        transcript.as_str()
                    } else {
                        &transcript[..*transcript_sent]
                    };
                    json!([{"type": "output_audio", "transcript": t}])
                } else {
                    json!([])
                };
                json!({"id": o.item_id, "object": "realtime.item", "type": "message",
                       "status": status, "role": "assistant", "content": content})
            }
            OutKind::Call {
                name,
                call_id,
                arguments,
            } => json!({"id": o.item_id, "object": "realtime.item", "type": "function_call",
                        "status": status, "name": name, "call_id": call_id,
                        "arguments": if final_state { arguments.as_str() } else { "" }}),
        }
    }

    fn response_json(&self, final_state: bool) -> Value {
        let Some(a) = self.active.as_ref() else {
            return Value::Null;
        };
        let output: Vec<Value> = if final_state {
            (0..a.outputs.len())
                .filter(|&i| a.outputs[i].added)
                .map(|i| self.item_json(i, true))
                .collect()
        } else {
            Vec::new()
        };
        let words: usize = a
            .outputs
            .iter()
            .map(|o| match &o.kind {
                OutKind::Message { transcript, .. } => transcript.split_whitespace().count(),
                OutKind::Call { arguments, .. } => arguments.len() / 4,
            })
            .sum();
        let audio_tokens = a.audio_ms / 50;
        let input_tokens = 100 + self.items.len() as u64 * 20;
        let usage = if final_state {
            json!({
                "total_tokens": input_tokens + words as u64 + audio_tokens,
                "input_tokens": input_tokens,
                "output_tokens": words as u64 + audio_tokens,
                "input_token_details": {"text_tokens": 100, "audio_tokens": input_tokens - 100,
                                        "image_tokens": 0, "cached_tokens": 0,
                                        "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}},
                "output_token_details": {"text_tokens": words, "audio_tokens": audio_tokens},
            })
        } else {
            Value::Null
        };
        json!({
            "object": "realtime.response",
            "id": a.id,
            "status": if final_state { a.status } else { "in_progress" },
            "status_details": if final_state { a.status_details.clone() } else { Value::Null },
            "output": output,
            "conversation_id": format!("conv_{}", self.tag),
            "output_modalities": self.session.get("output_modalities").cloned().unwrap_or(json!(["audio"])),
            "max_output_tokens": self.session.get("max_output_tokens").cloned().unwrap_or(json!("inf")),
            "audio": {"output": {
                "format": self.session.pointer("/audio/output/format").cloned().unwrap_or(Value::Null),
                "voice": self.session.pointer("/audio/output/voice").cloned().unwrap_or(Value::Null),
            }},
            "usage": usage,
            "metadata": null,
        })
    }

    fn exec(&mut self, now: Instant, step: Step) {
        let Some(a) = self.active.as_ref() else {
            return;
        };
        let rid = a.id.clone();
        match step {
            Step::Created => {
                let response = self.response_json(false);
                self.emit(now, "response.created", json!({"response": response}));
                self.check_faults(now);
            }
            Step::RateLimits => self.emit(
                now,
                "rate_limits.updated",
                json!({"rate_limits": [
                    {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
                    {"name": "tokens", "limit": 400000, "remaining": 395000, "reset_seconds": 0.75},
                ]}),
            ),
            Step::ItemAdded(oi) => {
                let item = self.item_json(oi, false);
                let previous = self.last_item_id();
                let (item_id, kind) = {
                    let o = &a.outputs[oi];
                    (
                        o.item_id.clone(),
                        match &o.kind {
                            OutKind::Message { transcript, .. } => (
                                true,
                                transcript.clone(),
                                String::new(),
                                String::new(),
                                String::new(),
                            ),
                            OutKind::Call {
                                name,
                                call_id,
                                arguments,
                            } => (
                                false,
                                String::new(),
                                name.clone(),
                                call_id.clone(),
                                arguments.clone(),
                            ),
                        },
                    )
                };
                self.emit(
                    now,
                    "response.output_item.added",
                    json!({"response_id": rid, "output_index": oi, "item": item}),
                );
                self.emit(
                    now,
                    "conversation.item.added",
                    json!({"previous_item_id": previous, "item": item}),
                );
                let (is_msg, transcript, name, call_id, arguments) = kind;
                self.items.push(Item {
                    id: item_id.clone(),
                    kind: if is_msg {
                        ItemKind::Assistant { audio_bytes: 0 }
                    } else {
                        ItemKind::FunctionCall
                    },
                    json: item,
                });
                self.rec.state.update(|s| {
                    if is_msg {
                        s.assistant_items.push(AssistantItem {
                            item_id: item_id.clone(),
                            response_id: rid.clone(),
                            audio: Vec::new(),
                            deltas: 0,
                            transcript,
                            status: "in_progress".into(),
                            truncated_at_ms: None,
                        });
                    } else {
                        s.function_calls.push(FunctionCallRecord {
                            call_id,
                            item_id: item_id.clone(),
                            response_id: rid.clone(),
                            name,
                            arguments,
                            response_completed: false,
                            output: None,
                            output_at: None,
                            followed_by_response_create: false,
                        });
                    }
                });
                if let Some(a) = self.active.as_mut() {
                    a.outputs[oi].added = true;
                }
            }
            Step::PartAdded(oi) => {
                let item_id = a.outputs[oi].item_id.clone();
                self.emit(
                    now,
                    "response.content_part.added",
                    json!({
                    "response_id": rid, "item_id": item_id, "output_index": oi, "content_index": 0,
                    "part": {"type": "audio", "transcript": ""}}),
                );
                if let Some(a) = self.active.as_mut() {
                    a.outputs[oi].part_added = true;
                }
            }
            Step::AudioDelta(oi, from, to) => {
                let o = &a.outputs[oi];
                let OutKind::Message { audio, .. } = &o.kind else {
                    return;
                };
                let chunk = audio[from..to].to_vec();
                let item_id = o.item_id.clone();
                let b64 = base64::engine::general_purpose::STANDARD.encode(&chunk);
                let event_id = self.new_id("event");
                let text = serde_json::to_string(&AudioDeltaEvent {
                    event_id: &event_id,
                    ty: "response.output_audio.delta",
                    response_id: &rid,
                    item_id: &item_id,
                    output_index: oi,
                    content_index: 0,
                    delta: &b64,
                })
                .unwrap_or_default();
                self.push_text(now, "response.output_audio.delta", text);
                self.assistant_audio_produced = true;
                if let Some(it) = self.items.iter_mut().find(|i| i.id == item_id)
                    && let ItemKind::Assistant { audio_bytes } = &mut it.kind
                {
                    *audio_bytes += chunk.len();
                }
                let record = self.record();
                self.rec.state.update(|s| {
                    if let Some(ai) = s.assistant_items.iter_mut().find(|x| x.item_id == item_id) {
                        ai.deltas += 1;
                        if record {
                            ai.audio.extend_from_slice(&chunk);
                        }
                    }
                });
                if let Some(a) = self.active.as_mut() {
                    a.deltas_sent += 1;
                }
                self.check_faults(now);
            }
            Step::TranscriptDelta(oi, from, to) => {
                let o = &a.outputs[oi];
                let OutKind::Message { transcript, .. } = &o.kind else {
                    return;
                };
                let delta = transcript[from..to].to_string();
                let item_id = o.item_id.clone();
                self.emit(
                    now,
                    "response.output_audio_transcript.delta",
                    json!({
                    "response_id": rid, "item_id": item_id, "output_index": oi, "content_index": 0,
                    "delta": delta}),
                );
                if let Some(a) = self.active.as_mut()
                    && let OutKind::Message {
                        transcript_sent, ..
                    } = &mut a.outputs[oi].kind
                {
                    *transcript_sent = to;
                }
            }
            Step::AudioDone(oi) => {
                let item_id = a.outputs[oi].item_id.clone();
                self.emit(now, "response.output_audio.done", json!({
                    "response_id": rid, "item_id": item_id, "output_index": oi, "content_index": 0}));
                if let Some(a) = self.active.as_mut() {
                    a.outputs[oi].audio_done = true;
                }
            }
            Step::TranscriptDone(oi) | Step::PartDone(oi) => {
                let o = &a.outputs[oi];
                let OutKind::Message {
                    transcript,
                    transcript_sent,
                    ..
                } = &o.kind
                else {
                    return;
                };
                let t = if a.status == "completed" {
                    transcript.clone()
                } else {
                    transcript[..*transcript_sent].to_string()
                };
                let item_id = o.item_id.clone();
                if matches!(step, Step::TranscriptDone(_)) {
                    self.emit(now, "response.output_audio_transcript.done", json!({
                        "response_id": rid, "item_id": item_id, "output_index": oi, "content_index": 0,
                        "transcript": t}));
                    if let Some(a) = self.active.as_mut() {
                        a.outputs[oi].transcript_done = true;
                    }
                } else {
                    self.emit(now, "response.content_part.done", json!({
                        "response_id": rid, "item_id": item_id, "output_index": oi, "content_index": 0,
                        "part": {"type": "audio", "transcript": t}}));
                    if let Some(a) = self.active.as_mut() {
                        a.outputs[oi].part_done = true;
                    }
                }
            }
            Step::ArgsDelta(oi, from, to) => {
                let o = &a.outputs[oi];
                let OutKind::Call {
                    call_id, arguments, ..
                } = &o.kind
                else {
                    return;
                };
                let body = json!({"response_id": rid, "item_id": o.item_id, "output_index": oi,
                                  "call_id": call_id, "delta": &arguments[from..to]});
                self.emit(now, "response.function_call_arguments.delta", body);
            }
            Step::ArgsDone(oi) => {
                let o = &a.outputs[oi];
                let OutKind::Call {
                    name,
                    call_id,
                    arguments,
                } = &o.kind
                else {
                    return;
                };
                let body = json!({"response_id": rid, "item_id": o.item_id, "output_index": oi,
                                  "call_id": call_id, "name": name, "arguments": arguments});
                self.emit(now, "response.function_call_arguments.done", body);
                if let Some(a) = self.active.as_mut() {
                    a.outputs[oi].args_done = true;
                }
            }
            Step::ItemDone(oi) => {
                let item = self.item_json(oi, true);
                let item_id = a.outputs[oi].item_id.clone();
                let status = a.item_status;
                let pos = self.items.iter().position(|i| i.id == item_id);
                let previous = match pos {
                    Some(p) if p > 0 => Value::String(self.items[p - 1].id.clone()),
                    _ => Value::Null,
                };
                if let Some(p) = pos {
                    self.items[p].json = item.clone();
                }
                self.emit(
                    now,
                    "response.output_item.done",
                    json!({"response_id": rid, "output_index": oi, "item": item}),
                );
                self.emit(
                    now,
                    "conversation.item.done",
                    json!({"previous_item_id": previous, "item": item}),
                );
                self.rec.state.update(|s| {
                    if let Some(ai) = s.assistant_items.iter_mut().find(|x| x.item_id == item_id) {
                        ai.status = status.to_string();
                    }
                });
                if let Some(a) = self.active.as_mut() {
                    a.outputs[oi].done = true;
                }
            }
            Step::Done => {
                let response = self.response_json(true);
                let status = a.status;
                let reason = a
                    .status_details
                    .get("reason")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                self.emit(now, "response.done", json!({"response": response}));
                self.rec.state.update(|s| {
                    if let Some(r) = s.responses.iter_mut().find(|r| r.id == rid) {
                        r.status = status.to_string();
                        r.reason = reason;
                        r.done_at = Some(now);
                    }
                    for c in s.function_calls.iter_mut().filter(|c| c.response_id == rid) {
                        c.response_completed = status == "completed";
                    }
                });
                self.active = None;
            }
        }
    }
}

impl OutState {
    fn new(item_id: String, kind: OutKind) -> Self {
        Self {
            item_id,
            kind,
            added: false,
            part_added: false,
            audio_done: false,
            transcript_done: false,
            part_done: false,
            args_done: false,
            done: false,
        }
    }
}
