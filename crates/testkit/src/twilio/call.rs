//! One simulated Media Stream: Twilio's side of the WebSocket, with real playout.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::playout::{PlayedSegment, Playout};
use crate::WaitError;
use crate::audio::{FRAME_BYTES, SILENCE};
use crate::rest::{CallControl, MockTwilioRest};
use crate::wait::Observed;

/// Identity and options of a simulated stream.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// `MZ…` stream SID.
    pub stream_sid: String,
    /// `AC…` account SID.
    pub account_sid: String,
    /// `CA…` call SID.
    pub call_sid: String,
    /// `start.customParameters`, from the TwiML `<Parameter>`s, in order.
    pub custom_parameters: Vec<(String, String)>,
    /// `start.tracks` (default `["inbound"]`).
    pub tracks: Vec<String>,
    /// Stamp every caller frame with its `chunk` number ([`crate::audio::stamp`]).
    pub stamp_frames: bool,
    /// Send silence frames when no caller audio is queued, as Twilio does (default `true`).
    /// When `false`, media flows only while audio is queued.
    pub idle_silence: bool,
    /// A linked REST mock: call updates for `call_sid` stop this stream.
    pub rest: Option<MockTwilioRest>,
    /// Record a [`CallEvent::MediaSent`] timeline entry per caller frame (default `true`;
    /// turn off for long or many calls — counters are kept either way).
    pub record_frames: bool,
}

impl StreamOptions {
    /// Options for `call_sid` of `account_sid`, with a fresh stream SID.
    pub fn new(call_sid: &str, account_sid: &str) -> Self {
        Self {
            stream_sid: crate::sid::new_sid("MZ"),
            account_sid: account_sid.to_string(),
            call_sid: call_sid.to_string(),
            custom_parameters: Vec::new(),
            tracks: vec!["inbound".to_string()],
            stamp_frames: false,
            idle_silence: true,
            rest: None,
            record_frames: true,
        }
    }
}

/// A problem with a message the server sent (Twilio would log warning 31950/31951 and
/// ignore the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamViolationKind {
    /// A binary frame (31950).
    BinaryFrame,
    /// Not JSON, or not an object (31951).
    MalformedJson,
    /// No string `event`.
    MissingEvent,
    /// An `event` other than `media`, `mark`, `clear`.
    UnknownEvent,
    /// A required field is missing (or `null`).
    MissingField,
    /// A field the message must not carry (e.g. `media.track`, `sequenceNumber`, a `null`).
    UnexpectedField,
    /// A field of the wrong JSON type.
    WrongType,
    /// `streamSid` differs from the stream's.
    WrongStreamSid,
    /// `media.payload` is not valid standard base64.
    InvalidBase64,
}

/// A server message the simulator refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamViolation {
    /// When it arrived.
    pub at: Instant,
    /// What is wrong.
    pub kind: StreamViolationKind,
    /// Details.
    pub detail: String,
    /// The frame (first 300 characters).
    pub raw: String,
}

/// How a simulated stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEnd {
    /// The caller side sent `stop` and closed (hang-up, [`ActiveCall::stop`]).
    CallerStopped,
    /// The caller side dropped the connection without `stop` or close frame.
    CallerDropped,
    /// The server sent a close frame.
    ServerClosed {
        /// Close code.
        code: Option<u16>,
        /// Close reason.
        reason: String,
    },
    /// The connection ended without a close frame from the server.
    ServerVanished {
        /// What the WebSocket layer reported.
        error: String,
    },
    /// A REST update (hang-up or new TwiML) ended the stream; Twilio sent `stop` and closed.
    Rest(CallControl),
}

/// Deliberately broken frames the simulator can send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// Truncated JSON.
    BadJson,
    /// A `media` message whose payload is not base64.
    BadBase64,
    /// A well-formed message with an unknown `event`.
    UnknownEvent,
    /// A `media` message carrying this many bytes of silence in one frame.
    Oversized(usize),
    /// A binary frame.
    Binary,
}

/// One entry of a call's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// `connected` sent.
    ConnectedSent,
    /// `start` sent.
    StartSent,
    /// A caller `media` frame sent.
    MediaSent {
        /// `media.chunk`.
        chunk: u64,
        /// `media.timestamp` (ms).
        timestamp_ms: u64,
        /// Payload bytes.
        bytes: usize,
        /// The stamp written into the frame, if stamping is on.
        stamp: Option<u32>,
        /// Whether it was idle silence (no caller audio queued).
        idle: bool,
    },
    /// `dtmf` sent.
    DtmfSent {
        /// The digit.
        digit: char,
    },
    /// `stop` sent.
    StopSent,
    /// A deliberately malformed or raw frame sent.
    RawSent {
        /// Frame length.
        len: usize,
    },
    /// A valid server `media` received and queued for playout.
    MediaReceived {
        /// Payload bytes.
        bytes: usize,
        /// When its audio starts playing.
        plays_at: Instant,
    },
    /// A valid server `mark` received.
    MarkReceived {
        /// Mark name.
        name: String,
    },
    /// A valid server `clear` received.
    ClearReceived {
        /// Queued bytes discarded.
        discarded_bytes: usize,
        /// Pending marks echoed at once because of it.
        flushed_marks: usize,
    },
    /// A mark echoed back to the server.
    MarkEchoed {
        /// Mark name.
        name: String,
        /// Whether it was flushed by a `clear` (its audio was not all heard).
        cleared: bool,
    },
    /// A server message was refused.
    Violation(StreamViolationKind),
    /// A REST update arrived for the call.
    RestControl(CallControl),
    /// The stream ended.
    Closed(CallEnd),
}

/// A timeline entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// When.
    pub at: Instant,
    /// What.
    pub event: CallEvent,
}

/// A mark's life: received, echoed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRecord {
    /// Name.
    pub name: String,
    /// When the server's mark arrived.
    pub received_at: Instant,
    /// When its echo was sent.
    pub echoed_at: Option<Instant>,
    /// Whether a `clear` flushed it.
    pub cleared: bool,
}

#[derive(Debug, Default)]
struct CallState {
    timeline: Vec<TimelineEntry>,
    violations: Vec<StreamViolation>,
    playout: Playout,
    marks: Vec<MarkRecord>,
    caller_bytes_queued: usize,
    caller_bytes_sent: usize,
    frames_sent: u64,
    closed: Option<CallEnd>,
}

impl CallState {
    fn push(&mut self, at: Instant, event: CallEvent) {
        self.timeline.push(TimelineEntry { at, event });
    }
}

fn describe(s: &CallState) -> String {
    let interesting: Vec<String> = s
        .timeline
        .iter()
        .filter(|e| !matches!(e.event, CallEvent::MediaSent { .. }))
        .map(|e| format!("{:?}", e.event))
        .collect();
    let tail = &interesting[interesting.len().saturating_sub(10)..];
    format!(
        "{} frames sent, {} agent bytes received, marks pending {:?}, violations {:?}, closed {:?}, last events [{}]",
        s.frames_sent,
        s.playout.received().len(),
        s.playout.pending_marks(),
        s.violations.iter().map(|v| v.kind).collect::<Vec<_>>(),
        s.closed,
        tail.join(", ")
    )
}

#[derive(Debug)]
enum Cmd {
    Audio(Vec<u8>),
    Gap(u32),
    Dtmf(char),
    Malformed(Malformed),
    RawText(String),
    Stop,
    Drop,
}

#[derive(Debug)]
struct Shared {
    opts: StreamOptions,
    state: Observed<CallState>,
    cmd: mpsc::UnboundedSender<Cmd>,
}

/// A live simulated Media Stream (Twilio's side). Cheap to clone.
///
/// Created by [`crate::twilio::CallBuilder::connect`] / [`crate::twilio::PlacedCall::open_stream`],
/// or over any WebSocket with [`ActiveCall::attach`]. As soon as it exists it has sent
/// `connected` and `start` and streams caller frames every 20 ms (silence unless audio is
/// queued with [`ActiveCall::send_audio`]).
///
/// Dropping the last handle hangs up (`stop`, then close), so an abandoned call does not keep
/// streaming to the server.
#[derive(Debug, Clone)]
pub struct ActiveCall {
    shared: Arc<Shared>,
    _hang_up_on_drop: Arc<HangUpOnDrop>,
}

#[derive(Debug)]
struct HangUpOnDrop(mpsc::UnboundedSender<Cmd>);

impl Drop for HangUpOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(Cmd::Stop);
    }
}

// ---- strict parsing of server messages --------------------------------------------------

type Field<T> = Option<Option<T>>;

fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerMsg<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    event: Field<Cow<'a, str>>,
    #[serde(rename = "streamSid", borrow, default, deserialize_with = "present")]
    stream_sid: Field<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    media: Field<MediaBody<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    mark: Field<MarkBody<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaBody<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    payload: Field<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkBody<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    name: Field<Cow<'a, str>>,
}

enum Parsed {
    Media(Vec<u8>),
    Mark(String),
    Clear,
}

fn parse_server(text: &str, stream_sid: &str) -> Result<Parsed, (StreamViolationKind, String)> {
    use StreamViolationKind as K;
    let msg: ServerMsg<'_> = serde_json::from_str(text).map_err(|e| {
        let m = e.to_string();
        let kind = if m.contains("unknown field") {
            K::UnexpectedField
        } else if e.is_syntax()
            || e.is_eof()
            || m.contains("expected struct")
            || m.contains("expected a map")
        {
            K::MalformedJson
        } else {
            K::WrongType
        };
        (kind, m)
    })?;
    let event = match msg.event {
        Some(Some(e)) => e,
        _ => return Err((K::MissingEvent, "no string `event`".into())),
    };
    let forbid = |name: &str, present: bool| {
        if present {
            Err((
                K::UnexpectedField,
                format!("`{name}` is not allowed in a `{event}` message"),
            ))
        } else {
            Ok(())
        }
    };
    let sid = match &msg.stream_sid {
        Some(Some(s)) => s,
        Some(None) => return Err((K::MissingField, "`streamSid` is null".into())),
        None => return Err((K::MissingField, "`streamSid` is missing".into())),
    };
    let check_sid = || {
        if sid.as_ref() == stream_sid {
            Ok(())
        } else {
            Err((
                K::WrongStreamSid,
                format!("streamSid {sid} is not {stream_sid}"),
            ))
        }
    };
    match event.as_ref() {
        "media" => {
            forbid("mark", msg.mark.is_some())?;
            let payload = match msg.media {
                Some(Some(MediaBody {
                    payload: Some(Some(p)),
                })) => p,
                Some(Some(_)) => {
                    return Err((K::MissingField, "`media.payload` is missing".into()));
                }
                _ => return Err((K::MissingField, "`media` is missing".into())),
            };
            check_sid()?;
            base64::engine::general_purpose::STANDARD
                .decode(payload.as_bytes())
                .map(Parsed::Media)
                .map_err(|e| (K::InvalidBase64, e.to_string()))
        }
        "mark" => {
            forbid("media", msg.media.is_some())?;
            let name = match msg.mark {
                Some(Some(MarkBody {
                    name: Some(Some(n)),
                })) => n,
                Some(Some(_)) => return Err((K::MissingField, "`mark.name` is missing".into())),
                _ => return Err((K::MissingField, "`mark` is missing".into())),
            };
            check_sid()?;
            Ok(Parsed::Mark(name.into_owned()))
        }
        "clear" => {
            forbid("media", msg.media.is_some())?;
            forbid("mark", msg.mark.is_some())?;
            check_sid()?;
            Ok(Parsed::Clear)
        }
        other => Err((K::UnknownEvent, format!("unknown event {other:?}"))),
    }
}

// ---- the task -----------------------------------------------------------------------------

struct Task<S> {
    ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    rest: Option<mpsc::UnboundedReceiver<CallControl>>,
    seq: u64,
    chunk: u64,
    media_ms: u64,
    frames: VecDeque<Option<[u8; FRAME_BYTES]>>,
    next_frame_at: Instant,
    buf: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Task<S> {
    fn record(&self, at: Instant, event: CallEvent) {
        self.shared.state.update(|s| s.push(at, event));
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    async fn send_text(&mut self, text: String) -> Result<(), String> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| e.to_string())
    }

    fn opts(&self) -> &StreamOptions {
        &self.shared.opts
    }

    async fn send_connected_and_start(&mut self) -> Result<(), String> {
        self.send_text(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.into())
            .await?;
        self.record(Instant::now(), CallEvent::ConnectedSent);
        let seq = self.next_seq();
        let o = self.opts();
        let params: serde_json::Map<String, serde_json::Value> = o
            .custom_parameters
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let start = serde_json::json!({
            "event": "start",
            "sequenceNumber": seq.to_string(),
            "streamSid": o.stream_sid,
            "start": {
                "streamSid": o.stream_sid,
                "accountSid": o.account_sid,
                "callSid": o.call_sid,
                "tracks": o.tracks,
                "customParameters": params,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        });
        self.send_text(start.to_string()).await?;
        self.record(Instant::now(), CallEvent::StartSent);
        Ok(())
    }

    /// Writes a media message for `payload` into `self.buf`.
    fn media_json(&mut self, payload: &[u8], seq: u64, chunk: u64, timestamp: u64) {
        self.buf.clear();
        let _ = write!(
            self.buf,
            r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{timestamp}","payload":""#
        );
        base64::engine::general_purpose::STANDARD.encode_string(payload, &mut self.buf);
        let _ = write!(
            self.buf,
            r#""}},"streamSid":"{}"}}"#,
            self.shared.opts.stream_sid
        );
    }

    async fn send_frame(&mut self) -> Result<(), String> {
        let (frame, idle) = match self.frames.pop_front() {
            Some(Some(f)) => (f, false),
            Some(None) => {
                // A gap: the media clock advances, nothing is sent.
                self.media_ms += crate::audio::FRAME_MS;
                return Ok(());
            }
            None => ([SILENCE; FRAME_BYTES], true),
        };
        let mut frame = frame;
        self.chunk += 1;
        let chunk = self.chunk;
        let stamp = self.opts().stamp_frames.then(|| {
            // Chunk numbers fit in 32 bits for any realistic call (2^32 × 20 ms ≈ 2.7 years).
            let id = chunk as u32;
            crate::audio::stamp(&mut frame, id);
            id
        });
        let seq = self.next_seq();
        let ts = self.media_ms;
        self.media_ms += crate::audio::FRAME_MS;
        self.media_json(&frame, seq, chunk, ts);
        let text = std::mem::take(&mut self.buf);
        let result = self.send_text(text).await;
        let now = Instant::now();
        let record = self.shared.opts.record_frames;
        self.shared.state.update(|s| {
            s.frames_sent += 1;
            if !idle {
                s.caller_bytes_sent += FRAME_BYTES;
            }
            if !record {
                return;
            }
            s.push(
                now,
                CallEvent::MediaSent {
                    chunk,
                    timestamp_ms: ts,
                    bytes: FRAME_BYTES,
                    stamp,
                    idle,
                },
            );
        });
        result
    }

    async fn echo_marks(&mut self, now: Instant) -> Result<(), String> {
        let due = self.shared.state.update(|s| s.playout.take_due_marks(now));
        for name in due {
            let seq = self.next_seq();
            let msg = serde_json::json!({
                "event": "mark",
                "sequenceNumber": seq.to_string(),
                "streamSid": self.shared.opts.stream_sid,
                "mark": {"name": name},
            });
            self.send_text(msg.to_string()).await?;
            let at = Instant::now();
            self.shared.state.update(|s| {
                let rec = s
                    .marks
                    .iter_mut()
                    .find(|m| m.name == name && m.echoed_at.is_none());
                let cleared = rec.as_ref().is_some_and(|m| m.cleared);
                if let Some(m) = rec {
                    m.echoed_at = Some(at);
                }
                s.push(at, CallEvent::MarkEchoed { name, cleared });
            });
        }
        Ok(())
    }

    fn on_server_text(&mut self, now: Instant, text: &str) {
        match parse_server(text, &self.shared.opts.stream_sid) {
            Ok(Parsed::Media(bytes)) => self.shared.state.update(|s| {
                let plays_at = s.playout.push_media(now, &bytes);
                s.push(
                    now,
                    CallEvent::MediaReceived {
                        bytes: bytes.len(),
                        plays_at,
                    },
                );
            }),
            Ok(Parsed::Mark(name)) => self.shared.state.update(|s| {
                s.playout.push_mark(now, &name);
                s.marks.push(MarkRecord {
                    name: name.clone(),
                    received_at: now,
                    echoed_at: None,
                    cleared: false,
                });
                s.push(now, CallEvent::MarkReceived { name });
            }),
            Ok(Parsed::Clear) => self.shared.state.update(|s| {
                let c = s.playout.clear(now);
                for name in &c.flushed_marks {
                    if let Some(m) = s
                        .marks
                        .iter_mut()
                        .find(|m| &m.name == name && m.echoed_at.is_none())
                    {
                        m.cleared = true;
                    }
                }
                s.push(
                    now,
                    CallEvent::ClearReceived {
                        discarded_bytes: c.discarded_bytes,
                        flushed_marks: c.flushed_marks.len(),
                    },
                );
            }),
            Err((kind, detail)) => self.violation(now, kind, detail, text),
        }
    }

    fn violation(&self, now: Instant, kind: StreamViolationKind, detail: String, raw: &str) {
        let raw: String = raw.chars().take(300).collect();
        self.shared.state.update(|s| {
            s.violations.push(StreamViolation {
                at: now,
                kind,
                detail,
                raw,
            });
            s.push(now, CallEvent::Violation(kind));
        });
    }

    async fn send_stop_and_close(&mut self) {
        let seq = self.next_seq();
        let o = &self.shared.opts;
        let stop = serde_json::json!({
            "event": "stop",
            "sequenceNumber": seq.to_string(),
            "streamSid": o.stream_sid,
            "stop": {"accountSid": o.account_sid, "callSid": o.call_sid},
        });
        if self.send_text(stop.to_string()).await.is_ok() {
            self.record(Instant::now(), CallEvent::StopSent);
        }
        let _ = self
            .ws
            .send(Message::Close(Some(CloseFrame {
                code: 1000.into(),
                reason: "".into(),
            })))
            .await;
        // Let the server answer the close handshake (bounded).
        let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }

    async fn send_malformed(&mut self, m: Malformed) -> Result<(), String> {
        let sid = self.shared.opts.stream_sid.clone();
        let msg = match m {
            Malformed::BadJson => Message::text(r#"{"event":"media","streamSid":"#),
            Malformed::BadBase64 => {
                let seq = self.next_seq();
                self.chunk += 1;
                let ts = self.media_ms;
                self.media_ms += crate::audio::FRAME_MS;
                Message::text(format!(
                    r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{}","timestamp":"{ts}","payload":"@@not*base64@@"}},"streamSid":"{sid}"}}"#,
                    self.chunk
                ))
            }
            Malformed::UnknownEvent => {
                let seq = self.next_seq();
                Message::text(format!(
                    r#"{{"event":"unexpected","sequenceNumber":"{seq}","streamSid":"{sid}"}}"#
                ))
            }
            Malformed::Oversized(n) => {
                let seq = self.next_seq();
                self.chunk += 1;
                let chunk = self.chunk;
                let ts = self.media_ms;
                self.media_ms += (n / crate::audio::BYTES_PER_MS) as u64;
                self.media_json(&vec![SILENCE; n], seq, chunk, ts);
                Message::text(std::mem::take(&mut self.buf))
            }
            Malformed::Binary => Message::binary(vec![SILENCE; FRAME_BYTES]),
        };
        let len = match &msg {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 0,
        };
        self.ws.send(msg).await.map_err(|e| e.to_string())?;
        self.record(Instant::now(), CallEvent::RawSent { len });
        Ok(())
    }

    fn streaming(&self) -> bool {
        !self.frames.is_empty() || self.shared.opts.idle_silence
    }

    async fn run(mut self) {
        let end = self.run_inner().await;
        let now = Instant::now();
        if let Some(rest) = &self.shared.opts.rest
            && !matches!(
                end,
                CallEnd::Rest(CallControl::Twiml(_) | CallControl::Redirect(_))
            )
        {
            rest.set_call_status(&self.shared.opts.call_sid, "completed");
        }
        self.shared.state.update(|s| {
            s.closed = Some(end.clone());
            s.push(now, CallEvent::Closed(end));
        });
    }

    async fn run_inner(&mut self) -> CallEnd {
        if let Err(e) = self.send_connected_and_start().await {
            return CallEnd::ServerVanished { error: e };
        }
        self.next_frame_at = Instant::now();
        loop {
            let mark_due = self.shared.state.read(|s| s.playout.next_mark_due());
            let frame_due = self.streaming().then_some(self.next_frame_at);
            let rest = &mut self.rest;
            let rest_ctl = async {
                match rest.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            enum Ev {
                Cmd(Option<Cmd>),
                Rest(Option<CallControl>),
                Ws(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
                Mark,
                Frame,
            }
            let ev = tokio::select! {
                biased;
                c = self.cmds.recv() => Ev::Cmd(c),
                r = rest_ctl => Ev::Rest(r),
                m = self.ws.next() => Ev::Ws(m),
                _ = sleep_opt(mark_due) => Ev::Mark,
                _ = sleep_opt(frame_due) => Ev::Frame,
            };
            let result: Result<(), String> = match ev {
                Ev::Cmd(None) => Ok(()),
                Ev::Cmd(Some(cmd)) => match cmd {
                    Cmd::Audio(bytes) => {
                        let was_idle = self.frames.is_empty() && !self.shared.opts.idle_silence;
                        for chunk in bytes.chunks(FRAME_BYTES) {
                            let mut f = [SILENCE; FRAME_BYTES];
                            f[..chunk.len()].copy_from_slice(chunk);
                            self.frames.push_back(Some(f));
                        }
                        if was_idle {
                            self.next_frame_at = self.next_frame_at.max(Instant::now());
                        }
                        Ok(())
                    }
                    Cmd::Gap(n) => {
                        self.frames.extend(std::iter::repeat_n(None, n as usize));
                        Ok(())
                    }
                    Cmd::Dtmf(digit) => {
                        let seq = self.next_seq();
                        let msg = serde_json::json!({
                            "event": "dtmf",
                            "streamSid": self.shared.opts.stream_sid,
                            "sequenceNumber": seq.to_string(),
                            "dtmf": {"track": "inbound_track", "digit": digit.to_string()},
                        });
                        let r = self.send_text(msg.to_string()).await;
                        self.record(Instant::now(), CallEvent::DtmfSent { digit });
                        r
                    }
                    Cmd::Malformed(m) => self.send_malformed(m).await,
                    Cmd::RawText(t) => {
                        let len = t.len();
                        let r = self.send_text(t).await;
                        self.record(Instant::now(), CallEvent::RawSent { len });
                        r
                    }
                    Cmd::Stop => {
                        self.send_stop_and_close().await;
                        return CallEnd::CallerStopped;
                    }
                    Cmd::Drop => return CallEnd::CallerDropped,
                },
                Ev::Rest(None) => {
                    self.rest = None;
                    Ok(())
                }
                Ev::Rest(Some(ctl)) => {
                    self.record(Instant::now(), CallEvent::RestControl(ctl.clone()));
                    self.send_stop_and_close().await;
                    return CallEnd::Rest(ctl);
                }
                Ev::Ws(None) => {
                    return CallEnd::ServerVanished {
                        error: "connection closed without a close frame".into(),
                    };
                }
                Ev::Ws(Some(Err(e))) => {
                    return CallEnd::ServerVanished {
                        error: e.to_string(),
                    };
                }
                Ev::Ws(Some(Ok(msg))) => {
                    let now = Instant::now();
                    match msg {
                        Message::Text(t) => {
                            self.on_server_text(now, t.as_str());
                            Ok(())
                        }
                        Message::Binary(b) => {
                            self.violation(
                                now,
                                StreamViolationKind::BinaryFrame,
                                format!("binary frame of {} bytes", b.len()),
                                "",
                            );
                            Ok(())
                        }
                        Message::Close(frame) => {
                            let _ = self.ws.flush().await;
                            return CallEnd::ServerClosed {
                                code: frame.as_ref().map(|f| u16::from(f.code)),
                                reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                            };
                        }
                        _ => Ok(()),
                    }
                }
                Ev::Mark => self.echo_marks(Instant::now()).await,
                Ev::Frame => {
                    self.next_frame_at += Duration::from_millis(crate::audio::FRAME_MS);
                    self.send_frame().await
                }
            };
            if let Err(error) = result {
                return CallEnd::ServerVanished { error };
            }
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl ActiveCall {
    /// Runs Twilio's side of a Media Stream over an already-open WebSocket (for example an
    /// in-memory one from `tokio::io::duplex`): sends `connected` and `start` immediately,
    /// then caller frames every 20 ms, plays the server's audio in real time, echoes marks.
    pub fn attach<S>(ws: WebSocketStream<S>, opts: StreamOptions) -> ActiveCall
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (cmd, cmds) = mpsc::unbounded_channel();
        let rest = opts.rest.as_ref().map(|r| r.watch_call(&opts.call_sid));
        let shared = Arc::new(Shared {
            opts,
            state: Observed::new(CallState::default()),
            cmd,
        });
        let task = Task {
            ws,
            shared: shared.clone(),
            cmds,
            rest,
            seq: 0,
            chunk: 0,
            media_ms: 0,
            frames: VecDeque::new(),
            next_frame_at: Instant::now(),
            buf: String::with_capacity(512),
        };
        tokio::spawn(task.run());
        let guard = Arc::new(HangUpOnDrop(shared.cmd.clone()));
        ActiveCall {
            shared,
            _hang_up_on_drop: guard,
        }
    }

    fn state(&self) -> &Observed<CallState> {
        &self.shared.state
    }

    fn send(&self, cmd: Cmd) {
        let _ = self.shared.cmd.send(cmd);
    }

    /// The stream options (SIDs, custom parameters, ...).
    pub fn options(&self) -> &StreamOptions {
        &self.shared.opts
    }

    /// `MZ…`.
    pub fn stream_sid(&self) -> &str {
        &self.shared.opts.stream_sid
    }

    /// `CA…`.
    pub fn call_sid(&self) -> &str {
        &self.shared.opts.call_sid
    }

    /// `AC…`.
    pub fn account_sid(&self) -> &str {
        &self.shared.opts.account_sid
    }

    // ---- caller actions ----------------------------------------------------------------

    /// Queues caller audio (8 kHz μ-law) to be sent in 160-byte frames every 20 ms after
    /// anything queued before (the last frame is padded with silence).
    pub fn send_audio(&self, mulaw: impl Into<Vec<u8>>) {
        let bytes = mulaw.into();
        let padded = bytes.len().div_ceil(FRAME_BYTES) * FRAME_BYTES;
        self.state().update(|s| s.caller_bytes_queued += padded);
        self.send(Cmd::Audio(bytes));
    }

    /// Queues caller audio and waits until all queued audio has been sent.
    pub async fn play(
        &self,
        mulaw: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        self.send_audio(mulaw);
        self.wait_caller_audio_sent(timeout).await
    }

    /// Skips `frames` 20 ms frames (packet loss): the media clock (`timestamp`) advances but
    /// nothing is sent.
    pub fn skip_frames(&self, frames: u32) {
        self.send(Cmd::Gap(frames));
    }

    /// Sends a `dtmf` message now.
    pub fn send_dtmf(&self, digit: char) {
        self.send(Cmd::Dtmf(digit));
    }

    /// Sends a deliberately broken frame now.
    pub fn send_malformed(&self, m: Malformed) {
        self.send(Cmd::Malformed(m));
    }

    /// Sends an arbitrary text frame now.
    pub fn send_raw_text(&self, text: &str) {
        self.send(Cmd::RawText(text.to_string()));
    }

    /// Hangs up like Twilio: `stop`, close frame, then waits (bounded) for the stream to end.
    pub async fn stop(&self, timeout: Duration) -> Result<CallEnd, WaitError> {
        self.send(Cmd::Stop);
        self.wait_closed(timeout).await
    }

    /// Drops the connection abruptly (no `stop`, no close frame).
    pub async fn drop_connection(&self, timeout: Duration) -> Result<CallEnd, WaitError> {
        self.send(Cmd::Drop);
        self.wait_closed(timeout).await
    }

    // ---- records -------------------------------------------------------------------------

    /// Everything that happened, in order.
    pub fn timeline(&self) -> Vec<TimelineEntry> {
        self.state().read(|s| s.timeline.clone())
    }

    /// Number of timeline entries matching `pred`.
    pub fn count_events(&self, pred: impl Fn(&CallEvent) -> bool) -> usize {
        self.state()
            .read(|s| s.timeline.iter().filter(|e| pred(&e.event)).count())
    }

    /// Server messages refused so far.
    pub fn violations(&self) -> Vec<StreamViolation> {
        self.state().read(|s| s.violations.clone())
    }

    /// Marks received, with their echo times.
    pub fn marks(&self) -> Vec<MarkRecord> {
        self.state().read(|s| s.marks.clone())
    }

    /// Every agent audio byte received (including audio later cleared), in order.
    pub fn received_audio(&self) -> Vec<u8> {
        self.state().read(|s| s.playout.received().to_vec())
    }

    /// The agent bytes the caller had heard at `t`, in order.
    pub fn heard_at(&self, t: Instant) -> Vec<u8> {
        self.state().read(|s| s.playout.heard_at(t))
    }

    /// The agent bytes heard so far, in order.
    pub fn heard(&self) -> Vec<u8> {
        self.heard_at(Instant::now())
    }

    /// Each received `media` message's playout (start time, length, cut).
    pub fn played_segments(&self) -> Vec<PlayedSegment> {
        self.state().read(|s| s.playout.segments().to_vec())
    }

    /// When all audio queued so far will have played (`None` if none ever arrived).
    pub fn playout_ends_at(&self) -> Option<Instant> {
        self.state().read(|s| s.playout.queue_end())
    }

    /// Caller frames sent so far (including idle silence).
    pub fn frames_sent(&self) -> u64 {
        self.state().read(|s| s.frames_sent)
    }

    /// How the stream ended, if it has.
    pub fn closed(&self) -> Option<CallEnd> {
        self.state().read(|s| s.closed.clone())
    }

    // ---- waits ---------------------------------------------------------------------------

    /// Waits for the first timeline entry (past or future) matching `pred`.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&CallEvent) -> bool,
        timeout: Duration,
    ) -> Result<TimelineEntry, WaitError> {
        self.wait_for_nth(pred, 1, timeout).await
    }

    /// Waits for the `n`-th (1-based) timeline entry matching `pred`.
    pub async fn wait_for_nth(
        &self,
        pred: impl Fn(&CallEvent) -> bool,
        n: usize,
        timeout: Duration,
    ) -> Result<TimelineEntry, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("timeline entry #{n} matching the predicate"),
                |s| {
                    s.timeline
                        .iter()
                        .filter(|e| pred(&e.event))
                        .nth(n.saturating_sub(1))
                        .cloned()
                },
                describe,
            )
            .await
    }

    /// Waits until at least `bytes` agent audio bytes have been received.
    pub async fn wait_received_audio(
        &self,
        bytes: usize,
        timeout: Duration,
    ) -> Result<usize, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("{bytes} agent audio bytes"),
                |s| {
                    let n = s.playout.received().len();
                    (n >= bytes).then_some(n)
                },
                describe,
            )
            .await
    }

    /// Waits until the caller has heard at least `bytes` agent bytes (on the real clock).
    pub async fn wait_heard(&self, bytes: usize, timeout: Duration) -> Result<Vec<u8>, WaitError> {
        self.state()
            .wait_until_timed(
                timeout,
                || format!("{bytes} agent bytes heard"),
                |s, now| {
                    if s.playout.heard_len_at(now) >= bytes {
                        Ok(s.playout.heard_at(now))
                    } else {
                        Err(s.playout.time_when_heard(bytes))
                    }
                },
                describe,
            )
            .await
    }

    /// Waits until everything queued so far has played (returns at once if nothing is
    /// queued).
    pub async fn wait_playout_idle(&self, timeout: Duration) -> Result<(), WaitError> {
        self.state()
            .wait_until_timed(
                timeout,
                || "the playout queue to drain".to_string(),
                |s, now| match s.playout.queue_end() {
                    Some(end) if end > now => Err(Some(end)),
                    _ => Ok(()),
                },
                describe,
            )
            .await
    }

    /// Waits until mark `name` has been echoed; returns its record.
    pub async fn wait_mark_echoed(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<MarkRecord, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("mark {name:?} to be echoed"),
                |s| {
                    s.marks
                        .iter()
                        .find(|m| m.name == name && m.echoed_at.is_some())
                        .cloned()
                },
                describe,
            )
            .await
    }

    /// Waits until every caller byte queued so far has been sent.
    pub async fn wait_caller_audio_sent(&self, timeout: Duration) -> Result<(), WaitError> {
        self.state()
            .wait_until(
                timeout,
                || "queued caller audio to be sent".to_string(),
                |s| {
                    (s.caller_bytes_sent >= s.caller_bytes_queued || s.closed.is_some())
                        .then_some(())
                },
                describe,
            )
            .await
    }

    /// Waits for the first violation of `kind`.
    pub async fn wait_for_violation(
        &self,
        kind: StreamViolationKind,
        timeout: Duration,
    ) -> Result<StreamViolation, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || format!("a {kind:?} violation"),
                |s| s.violations.iter().find(|v| v.kind == kind).cloned(),
                describe,
            )
            .await
    }

    /// Waits until the stream has ended.
    pub async fn wait_closed(&self, timeout: Duration) -> Result<CallEnd, WaitError> {
        self.state()
            .wait_until(
                timeout,
                || "the stream to end".to_string(),
                |s| s.closed.clone(),
                describe,
            )
            .await
    }
}
