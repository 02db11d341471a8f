//! Shared harness of the end-to-end tests (`tests/e2e_*.rs`): the real server, in process on
//! `127.0.0.1:0`, between the test kit's mock OpenAI Realtime server and its Twilio call
//! simulator (signed webhook and stream over a public `https://` URL, 20 ms caller frames on the
//! real clock, real playout with mark/clear semantics).
//!
//! What it adds on top of the kit:
//!
//! * [`Bridge`]: a server configured for the mock, with a per-test prompt that names the call
//!   (so a mock session can be matched to its call), and a clean shutdown check;
//! * [`logs`]: a process-wide capture of the server's JSON log lines (the observable surface
//!   for a call's end reason), awaitable per call;
//! * [`GatedProxy`]: a TCP proxy that holds the agent connection until the test opens it (an
//!   agent that is slow to answer);
//! * exact accounting of what crossed the bridge: [`expected_caller_audio`] rebuilds the bytes
//!   the simulator sent, [`attribute_segments`] maps every `media` message the caller received
//!   to the assistant item (and position) it came from, [`check_barge_in`] measures a barge-in
//!   against what the simulated caller had heard when the `clear` arrived.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use phone_agent_server::config::Config;
use phone_agent_server::{Server, ServerHandle};
use serde_json::Value;
use testkit::audio::{FRAME_BYTES, SILENCE};
use testkit::openai::{AssistantItem, SessionHandle, Truncation};
use testkit::twilio::{ActiveCall, CallEvent, CallSimulator, PlayedSegment};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// Upper bound of any single wait (a hang fails the test instead of blocking it).
pub const WAIT: Duration = Duration::from_secs(10);
/// The public URL Twilio uses (signatures cover it).
pub const PUBLIC: &str = "https://bridge.example.com";
/// The Twilio auth token of the tests.
pub const AUTH_TOKEN: &str = "0123456789abcdef0123456789abcdef";
/// The prompt of every test server; `{{call_sid}}` ties a mock session to its call.
pub const PROMPT: &str = "You are the e2e test agent on call {{call_sid}} from {{from}}.";

// ---- the server -------------------------------------------------------------------------------

/// A running server configured for a (mock) OpenAI at `openai_base`, and a simulator signing
/// for it.
pub struct Bridge {
    pub handle: ServerHandle,
    pub addr: SocketAddr,
    pub sim: CallSimulator,
}

impl Bridge {
    /// Starts the server with the defaults of these tests plus `extra` (later keys win).
    pub async fn start(openai_base: &str, extra: &[(&str, &str)]) -> Bridge {
        Self::start_with_tools(openai_base, extra, None).await
    }

    /// [`Bridge::start`] with a tool executor.
    pub async fn start_with_tools(
        openai_base: &str,
        extra: &[(&str, &str)],
        tools: Option<std::sync::Arc<dyn bridge_core::tools::ToolExecutor>>,
    ) -> Bridge {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let prompt = prompt_file();
        let mut env: HashMap<String, String> = [
            ("PUBLIC_URL", PUBLIC),
            ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
            ("OPENAI_API_KEY", "sk-e2e"),
            ("OPENAI_BASE_URL", openai_base),
            ("PROMPT_PATH", prompt.to_str().expect("utf-8 temp path")),
            // Short turns keep the calls short.
            (
                "PHONE_AGENT_OPENAI__TURN_DETECTION__SILENCE_DURATION_MS",
                "200",
            ),
            ("PHONE_AGENT_SERVER__SHUTDOWN_GRACE_SECS", "5"),
            ("PHONE_AGENT_METRICS__BIND", "127.0.0.1:0"),
            ("PHONE_AGENT_SERVER__SHUTDOWN_NOTICE_SECS", "0"),
            // Call records off unless a test turns them on (tests write only to temp dirs).
            ("PHONE_AGENT_DATABASE__URL", "off"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::from_env_map(&env).expect("valid test configuration");
        // The log capture must be in place before the server logs anything.
        logs();
        let mut server = Server::new(config);
        if let Some(tools) = tools {
            server = server.with_tools(tools);
        }
        let handle = server.serve(listener).expect("server starts");
        let sim = CallSimulator::new(&format!("http://{addr}"))
            .public_url(PUBLIC)
            .auth_token(AUTH_TOKEN);
        Bridge { handle, addr, sim }
    }

    /// Shuts the server down and asserts that no call was still running (every call of the
    /// test ended on its own) and that shutdown was clean.
    pub async fn finish(self) {
        let deadline = Instant::now() + WAIT;
        // A call's slot is released just after its summary line; wait for that instant.
        while self.handle.active_calls() > 0 && Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert_eq!(self.handle.active_calls(), 0, "calls still running");
        self.handle.shutdown();
        let report = self.handle.wait().await;
        assert_eq!(report.calls_at_shutdown, 0, "{report:?}");
        assert_eq!(report.calls_ended, 0, "{report:?}");
        assert!(report.clean, "{report:?}");
    }
}

fn prompt_file() -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("phone-agent-e2e");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join(format!("{}-{n}-prompt.md", std::process::id()));
    std::fs::write(&path, PROMPT).expect("write prompt");
    path
}

/// The mock session whose instructions name `call_sid` (waits for sessions in order; every
/// session of the mock must eventually send its `session.update`).
pub async fn session_of(mock: &testkit::openai::MockRealtime, call_sid: &str) -> SessionHandle {
    let needle = format!("on call {call_sid} ");
    for n in 1.. {
        let session = mock
            .wait_for_session(n, WAIT)
            .await
            .unwrap_or_else(|e| panic!("no session for {call_sid}: {e}"));
        let update = session
            .wait_for_event_type("session.update", WAIT)
            .await
            .expect("the bridge configures every session");
        if update.raw.contains(&needle) {
            return session;
        }
    }
    unreachable!("`1..` is endless")
}

// ---- logs -------------------------------------------------------------------------------------

/// The server's log lines (JSON, one object per event), captured for the whole test process.
pub struct LogCapture {
    lines: Mutex<Vec<Value>>,
    version: watch::Sender<u64>,
}

/// A call's summary line (`"call ended"`).
#[derive(Debug, Clone)]
pub struct CallEnded {
    pub end_reason: String,
    pub end_detail: String,
    pub barge_ins: u64,
    pub line: Value,
}

impl LogCapture {
    fn push(&self, line: Value) {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Every captured line so far.
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every captured line of the call `call_sid` (lines inside its `call` span).
    pub fn for_call(&self, call_sid: &str) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| l["span"]["call_sid"] == call_sid)
            .cloned()
            .collect()
    }

    /// Waits for the summary line of call `call_sid`.
    pub async fn call_ended(&self, call_sid: &str, timeout: Duration) -> CallEnded {
        let mut rx = self.version.subscribe();
        let find = || {
            self.for_call(call_sid)
                .into_iter()
                .find(|l| l["message"] == "call ended")
        };
        let wait = async {
            loop {
                rx.borrow_and_update();
                if let Some(line) = find() {
                    return line;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let line = tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no \"call ended\" line for {call_sid} within {timeout:?}; its lines: {:?}",
                    self.for_call(call_sid)
                )
            });
        CallEnded {
            end_reason: line["end_reason"].as_str().unwrap_or_default().to_owned(),
            end_detail: line["end_detail"].as_str().unwrap_or_default().to_owned(),
            barge_ins: line["barge_ins"].as_u64().unwrap_or_default(),
            line,
        }
    }
}

struct LineWriter {
    capture: &'static LogCapture,
    buf: Vec<u8>,
}

impl std::io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        for line in self.buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Value>(line) {
                Ok(v) => self.capture.push(v),
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "unparsable log line ({e}): {}",
                        String::from_utf8_lossy(line)
                    );
                }
            }
        }
    }
}

/// The process-wide log capture (installs the global subscriber on first use: JSON lines at
/// `info`, with the current span, so every line of a call carries its `call_sid`).
pub fn logs() -> &'static LogCapture {
    static CAPTURE: OnceLock<&'static LogCapture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static LogCapture = Box::leak(Box::new(LogCapture {
            lines: Mutex::new(Vec::new()),
            version: watch::Sender::new(0),
        }));
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(move || LineWriter {
                capture,
                buf: Vec::with_capacity(512),
            })
            .try_init()
            .expect("the e2e tests install the only global subscriber");
        capture
    })
}

// ---- a slow agent -----------------------------------------------------------------------------

/// A TCP proxy in front of the mock OpenAI server. It accepts connections at once but forwards
/// them only once [`Proxy::open`] was called (an agent slow to answer), and can delay the
/// bridge → OpenAI direction (a slow uplink: the agent keeps streaming for that long after it
/// detected the caller's speech, before the bridge's `response.cancel` reaches it).
pub struct Proxy {
    addr: SocketAddr,
    gate: watch::Sender<bool>,
}

impl Proxy {
    /// A proxy to `target`, closed until [`Proxy::open`], delaying bridge → OpenAI bytes by
    /// `uplink_delay`.
    pub async fn start(target: SocketAddr, uplink_delay: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let gate = watch::Sender::new(false);
        let rx = gate.subscribe();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    if rx.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    pipe(inbound, outbound, uplink_delay).await;
                });
            }
        });
        Proxy { addr, gate }
    }

    /// `http://127.0.0.1:PORT/v1`, for `OPENAI_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Lets held and future connections through.
    pub fn open(&self) {
        self.gate.send_replace(true);
    }
}

async fn pipe(inbound: TcpStream, outbound: TcpStream, uplink_delay: Duration) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    let down = async move {
        let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
        let _ = in_write.shutdown().await;
    };
    let up = async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        let read = async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = in_read.read(&mut buf).await {
                if n == 0
                    || tx
                        .send((Instant::now() + uplink_delay, buf[..n].to_vec()))
                        .is_err()
                {
                    break;
                }
            }
        };
        let write = async {
            while let Some((due, bytes)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                if out_write.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = out_write.shutdown().await;
        };
        tokio::join!(read, write);
    };
    tokio::join!(down, up);
}

// ---- caller audio -----------------------------------------------------------------------------

/// Queues `audio` on `call` and returns the bytes as the simulator will frame them (padded to
/// whole 20 ms frames with silence). Keep the returned bytes, in order, for
/// [`expected_caller_audio`].
pub fn say(call: &ActiveCall, audio: Vec<u8>) -> Vec<u8> {
    let mut framed = audio.clone();
    framed.resize(audio.len().div_ceil(FRAME_BYTES) * FRAME_BYTES, SILENCE);
    call.send_audio(audio);
    framed
}

/// Rebuilds, from the simulator's timeline, the exact bytes of every caller frame sent so far,
/// in order: idle frames are silence, the others come from `queued` (everything passed to
/// [`say`], in order); frames are stamped with their chunk number when stamping is on.
pub fn expected_caller_audio(call: &ActiveCall, queued: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = queued.chunks(FRAME_BYTES);
    for entry in call.timeline() {
        if let CallEvent::MediaSent { idle, stamp, .. } = entry.event {
            let mut frame = if idle {
                [SILENCE; FRAME_BYTES]
            } else {
                let chunk = next.next().expect("more frames sent than queued");
                <[u8; FRAME_BYTES]>::try_from(chunk).expect("queued audio is framed")
            };
            if let Some(id) = stamp {
                testkit::audio::stamp(&mut frame, id);
            }
            out.extend_from_slice(&frame);
        }
    }
    out
}

/// Asserts that the mock session received exactly the caller's frames, byte for byte, in
/// order, from the first frame on (call this once both sides are closed).
pub fn assert_caller_audio_relayed(call: &ActiveCall, session: &SessionHandle, queued: &[u8]) {
    let expected = expected_caller_audio(call, queued);
    let received = session.received_audio();
    assert!(!expected.is_empty(), "the caller sent audio");
    if received != expected {
        let common = received
            .iter()
            .zip(&expected)
            .take_while(|(a, b)| a == b)
            .count();
        panic!(
            "the agent received {} caller bytes, the caller sent {}; they agree on the first {} \
             bytes (frame {}); stamps received near there: {:?}",
            received.len(),
            expected.len(),
            common,
            common / FRAME_BYTES,
            testkit::audio::find_stamps(
                &received[common.saturating_sub(2 * FRAME_BYTES)
                    ..received.len().min(common + 2 * FRAME_BYTES)]
            )
        );
    }
}

// ---- agent audio ------------------------------------------------------------------------------

/// One `media` message the caller received, attributed to the assistant item it belongs to.
#[derive(Debug, Clone)]
pub struct Attributed {
    /// Index in [`ActiveCall::played_segments`].
    pub index: usize,
    pub segment: PlayedSegment,
    /// Index in the session's assistant items.
    pub item: usize,
    /// Offset of the segment's bytes in the item's audio.
    pub item_offset: usize,
}

/// Attributes every `media` message the caller received to an assistant item of `session`, in
/// order: each message must be the continuation of the current item's audio or the start of a
/// later item (byte-identical, nothing skipped, nothing foreign). Panics with details otherwise.
pub fn attribute_segments(call: &ActiveCall, items: &[AssistantItem]) -> Vec<Attributed> {
    let received = call.received_audio();
    let mut out = Vec::new();
    let (mut item, mut pos) = (0usize, 0usize);
    for (index, segment) in call.played_segments().into_iter().enumerate() {
        let bytes = &received[segment.offset..segment.offset + segment.len];
        loop {
            let Some(current) = items.get(item) else {
                panic!(
                    "media message #{index} ({} bytes, stamps {:?}) is not the continuation of \
                     any assistant item in order (items: {:?})",
                    segment.len,
                    testkit::audio::find_stamps(bytes),
                    items
                        .iter()
                        .map(|i| (&i.item_id, i.audio.len()))
                        .collect::<Vec<_>>()
                );
            };
            if current.audio[pos.min(current.audio.len())..].starts_with(bytes) {
                out.push(Attributed {
                    index,
                    segment: segment.clone(),
                    item,
                    item_offset: pos,
                });
                pos += bytes.len();
                break;
            }
            item += 1;
            pos = 0;
        }
    }
    out
}

/// Bytes of item `item` the caller had heard at `t`.
pub fn item_heard_at(attributed: &[Attributed], item: usize, t: Instant) -> usize {
    attributed
        .iter()
        .filter(|a| a.item == item)
        .map(|a| a.segment.heard_len_at(t))
        .sum()
}

/// One truncation of a barge-in, measured against what the caller had heard.
#[derive(Debug, Clone)]
pub struct TruncationCheck {
    pub item_id: String,
    /// Bytes of the item heard when the `clear` reached the caller, in ms.
    pub heard_ms: f64,
    pub audio_end_ms: u64,
    /// `heard_ms − audio_end_ms`.
    pub error_ms: f64,
    /// From the mock's `speech_started` to the `clear` reaching the caller.
    pub clear_in_flight: Duration,
    /// When the caller had finished hearing the piece after the truncation point before the
    /// mock's `speech_started` (its mark echo was still on its way to the bridge): how long
    /// before.
    pub missed_echo: Option<Duration>,
}

/// How long a mark echo may take from the end of its audio's playout into the bridge's engine
/// (the simulator's echo, socket transit, task scheduling on a loaded debug build). A piece the
/// caller finished hearing longer than this before the agent reported the caller's speech must
/// be reflected in the truncation.
pub const ECHO_TRANSIT_MAX: Duration = Duration::from_millis(10);

/// Each mark the caller received: the item it follows and the item position (bytes) it marks.
fn mark_positions(call: &ActiveCall, attributed: &[Attributed]) -> HashMap<String, (usize, usize)> {
    let mut media = 0usize;
    let mut out = HashMap::new();
    for entry in call.timeline() {
        match entry.event {
            CallEvent::MediaReceived { .. } => media += 1,
            CallEvent::MarkReceived { name } => {
                let Some(last) = media.checked_sub(1).and_then(|i| attributed.get(i)) else {
                    panic!("mark {name} before any audio");
                };
                out.insert(name, (last.item, last.item_offset + last.segment.len));
            }
            _ => {}
        }
    }
    out
}

/// The longest piece of agent audio the bridge sends before a mark with the default
/// `agent.mark_interval_ms` (100 ms → 801 bytes at most, cut on base64 groups: 100.125 ms).
pub const PIECE_MAX_MS: f64 = 100.125;

/// Checks the `n`-th (1-based) barge-in of a call whose every `speech_started` interrupted the
/// agent:
///
/// * the caller received a `clear`;
/// * every item whose audio the `clear` cut is truncated and every truncation is accepted by
///   the mock;
/// * `audio_end_ms` is never beyond what the caller had heard when the `clear` arrived, and at
///   most one piece beyond the last position it confirmed (the bridge interpolates inside the
///   piece playing); it includes every piece the caller finished hearing more than
///   [`ECHO_TRANSIT_MAX`] before the agent reported the speech; hence it is at most one piece
///   ([`PIECE_MAX_MS`]), plus the `clear`'s own flight time and that echo transit, short of
///   what the caller had heard (a few milliseconds where interpolation applies);
/// * no audio of a truncated item reached the caller after the `clear`.
///
/// Call it once the call has ended (it reads the final records).
pub fn check_barge_in(
    call: &ActiveCall,
    session: &SessionHandle,
    n: usize,
) -> Vec<TruncationCheck> {
    let timeline = call.timeline();
    let is_clear = |e: &CallEvent| matches!(e, CallEvent::ClearReceived { .. });
    let clears: Vec<usize> = (0..timeline.len())
        .filter(|&i| is_clear(&timeline[i].event))
        .collect();
    let Some(&clear_index) = clears.get(n - 1) else {
        panic!("barge-in #{n}: only {} clears received", clears.len());
    };
    let clear_at = timeline[clear_index].at;
    let media_before = |end: usize| {
        timeline[..end]
            .iter()
            .filter(|e| matches!(e.event, CallEvent::MediaReceived { .. }))
            .count()
    };
    // Media messages [first, last) arrived between the previous clear and this one.
    let first = clears
        .get(n.wrapping_sub(2))
        .map_or(0, |&prev| media_before(prev));
    let last = media_before(clear_index);

    let items = session.assistant_items();
    let attributed = attribute_segments(call, &items);
    let marks = mark_positions(call, &attributed);
    let speech_started: Vec<Instant> = session
        .server_events()
        .iter()
        .filter(|e| e.event_type == "input_audio_buffer.speech_started")
        .map(|e| e.at)
        .collect();
    let started_at = speech_started[n - 1];
    let window_end = speech_started.get(n).copied();
    let truncations: Vec<Truncation> = session
        .truncations()
        .into_iter()
        .filter(|t| t.at >= started_at && window_end.is_none_or(|end| t.at < end))
        .collect();
    assert!(
        !truncations.is_empty(),
        "barge-in #{n}: no truncation (all: {:?})",
        session.truncations()
    );

    // Items whose queued audio this clear cut must be truncated.
    for a in &attributed[first..last] {
        if a.segment.cut_at.is_some() {
            let id = &items[a.item].item_id;
            assert!(
                truncations.iter().any(|t| &t.item_id == id),
                "barge-in #{n}: item {id} was cut by the clear but not truncated ({truncations:?})"
            );
        }
    }
    let in_flight = clear_at.saturating_duration_since(started_at);
    let mut checks = Vec::new();
    for t in &truncations {
        assert!(t.accepted, "barge-in #{n}: truncation refused: {t:?}");
        assert_eq!(t.content_index, 0, "{t:?}");
        let item = items
            .iter()
            .position(|i| i.item_id == t.item_id)
            .unwrap_or_else(|| panic!("truncation of an unknown item: {t:?}"));
        // Positions of this item the caller confirmed as heard before the clear.
        let confirmed: Vec<(u64, Instant)> = call
            .marks()
            .iter()
            .filter(|m| !m.cleared)
            .filter_map(|m| Some((m.echoed_at.filter(|&at| at <= clear_at)?, &m.name)))
            .filter_map(|(at, name)| {
                let &(mark_item, end) = marks.get(name)?;
                (mark_item == item).then_some((end as u64 / 8, at))
            })
            .collect();
        // Interpolation places the truncation inside the piece playing, never beyond it: at
        // most one piece past the last position the caller confirmed.
        let last_confirmed = confirmed.iter().map(|&(ms, _)| ms).max().unwrap_or(0);
        assert!(
            t.audio_end_ms <= last_confirmed + PIECE_MAX_MS.ceil() as u64,
            "barge-in #{n}: item {} truncated at {} ms, more than a piece beyond the last \
             position the caller confirmed ({confirmed:?})",
            t.item_id,
            t.audio_end_ms
        );
        // The first piece beyond the truncation point: if the caller had finished hearing it
        // before the agent reported the speech, its echo was still on its way (the simulated
        // caller echoes when the audio has played; then the echo crosses a socket and waits
        // for the bridge's task).
        let missed_echo = attributed[..last]
            .iter()
            .filter(|a| a.item == item && a.segment.cut_at.is_none())
            .filter(|a| (a.item_offset + a.segment.len) as u64 / 8 > t.audio_end_ms)
            .map(|a| a.segment.ends_at())
            .min()
            .filter(|&played| played <= started_at)
            .map(|played| started_at - played);
        assert!(
            missed_echo.is_none_or(|lag| lag <= ECHO_TRANSIT_MAX),
            "barge-in #{n}: item {} truncated at {} ms although the caller had finished hearing \
             the next piece {missed_echo:?} before the agent reported the speech ({confirmed:?})",
            t.item_id,
            t.audio_end_ms
        );
        let heard = item_heard_at(&attributed, item, clear_at);
        let heard_ms = heard as f64 / 8.0;
        let error_ms = heard_ms - t.audio_end_ms as f64;
        // Never more than the caller heard (interpolation lags by the echo's transit). At
        // most one piece less (where interpolation cannot apply), plus the flooring to whole
        // milliseconds (< 1 ms), the clear's flight and an echo still in transit.
        let bound = PIECE_MAX_MS + 1.0 + ms(in_flight) + missed_echo.map_or(0.0, ms);
        assert!(
            (0.0..=bound).contains(&error_ms),
            "barge-in #{n}: item {} truncated at {} ms but the caller had heard {heard_ms} ms \
             (error {error_ms} ms, bound {bound} ms)",
            t.item_id,
            t.audio_end_ms
        );
        // Late audio of the interrupted item never reaches the caller.
        let late: Vec<&Attributed> = attributed[last..]
            .iter()
            .filter(|a| a.item == item)
            .collect();
        assert!(
            late.is_empty(),
            "barge-in #{n}: {} media messages of the interrupted item {} arrived after the clear",
            late.len(),
            t.item_id
        );
        checks.push(TruncationCheck {
            item_id: t.item_id.clone(),
            heard_ms,
            audio_end_ms: t.audio_end_ms,
            error_ms,
            clear_in_flight: in_flight,
            missed_echo,
        });
    }
    checks
}

/// Asserts the mock sent no `error` event and neither side recorded a protocol violation.
pub fn assert_clean(call: &ActiveCall, session: &SessionHandle) {
    let errors: Vec<String> = session
        .server_events()
        .into_iter()
        .filter(|e| e.event_type == "error")
        .map(|e| e.raw)
        .collect();
    assert!(errors.is_empty(), "the mock answered errors: {errors:?}");
    assert!(
        session.violations().is_empty(),
        "OpenAI-side violations: {:?}",
        session.violations()
    );
    assert!(
        call.violations().is_empty(),
        "Twilio-side violations: {:?}",
        call.violations()
    );
}

/// Latency of one agent turn that answered the caller.
#[derive(Debug, Clone, Copy)]
pub struct TurnLatency {
    /// Last caller speech frame sent → first agent audio received by the caller (includes the
    /// VAD's end-of-turn silence).
    pub speech_end_to_audio: Duration,
    /// The mock's `speech_stopped` → first agent audio received by the caller.
    pub speech_stopped_to_audio: Duration,
    /// The mock's first audio delta of the response → received by the caller (the bridge).
    pub delta_to_caller: Duration,
}

/// Latencies of every response the mock's VAD started (the caller's turns), in order.
pub fn turn_latencies(call: &ActiveCall, session: &SessionHandle) -> Vec<TurnLatency> {
    let items = session.assistant_items();
    let attributed = attribute_segments(call, &items);
    let speech_frames: Vec<Instant> = call
        .timeline()
        .iter()
        .filter_map(|e| match e.event {
            CallEvent::MediaSent { idle: false, .. } => Some(e.at),
            _ => None,
        })
        .collect();
    let events = session.server_events();
    let mut out = Vec::new();
    for response in session.responses() {
        if response.trigger != testkit::openai::ResponseTrigger::Vad {
            continue;
        }
        let Some(item_id) = response.item_ids.first() else {
            continue;
        };
        let Some(item) = items.iter().position(|i| &i.item_id == item_id) else {
            continue;
        };
        let Some(first) = attributed.iter().find(|a| a.item == item) else {
            continue;
        };
        let received = first.segment.received_at;
        let speech_end = speech_frames
            .iter()
            .copied()
            .filter(|&t| t <= response.created_at)
            .max()
            .expect("a caller turn has speech frames");
        let stopped = events
            .iter()
            .filter(|e| {
                e.event_type == "input_audio_buffer.speech_stopped" && e.at <= response.created_at
            })
            .map(|e| e.at)
            .max()
            .expect("a VAD turn has speech_stopped");
        let delta = events
            .iter()
            .find(|e| {
                e.event_type == "response.output_audio.delta" && e.raw.contains(item_id.as_str())
            })
            .expect("the item's first delta")
            .at;
        out.push(TurnLatency {
            speech_end_to_audio: received - speech_end,
            speech_stopped_to_audio: received - stopped,
            delta_to_caller: received - delta,
        });
    }
    out
}

/// For every audio delta the mock sent that reached the caller: the time from the mock sending
/// it to the caller receiving its first piece (the bridge's relay latency, plus two localhost
/// hops).
pub fn relay_latencies(call: &ActiveCall, session: &SessionHandle) -> Vec<Duration> {
    use base64::Engine as _;
    let items = session.assistant_items();
    let attributed = attribute_segments(call, &items);
    let mut offsets: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for event in session.server_events() {
        if event.event_type != "response.output_audio.delta" {
            continue;
        }
        let Some(v) = event.json() else { continue };
        let (Some(item_id), Some(delta)) = (v["item_id"].as_str(), v["delta"].as_str()) else {
            continue;
        };
        let len = base64::engine::general_purpose::STANDARD
            .decode(delta)
            .map_or(0, |b| b.len());
        let offset = offsets.entry(item_id.to_owned()).or_default();
        let start = *offset;
        *offset += len;
        let Some(item) = items.iter().position(|i| i.item_id == item_id) else {
            continue;
        };
        if let Some(a) = attributed
            .iter()
            .find(|a| a.item == item && a.item_offset == start)
        {
            out.push(a.segment.received_at.saturating_duration_since(event.at));
        }
    }
    out
}

// ---- measurements -----------------------------------------------------------------------------

/// `min / median / max` of `values` (ms), for the test output.
pub fn summary(values: &[f64]) -> String {
    if values.is_empty() {
        return "no samples".to_owned();
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    format!(
        "n={} min={:.2} median={:.2} max={:.2} ms",
        v.len(),
        v[0],
        median,
        v[v.len() - 1]
    )
}

/// Milliseconds of a duration, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints a measurement line (shown with `--nocapture`, and on failure).
pub fn report(what: &str, line: &str) {
    eprintln!("[e2e measurement] {what}: {line}");
}

/// The mock GPT-Live session whose `session.start` instructions name `call_sid`.
pub async fn live_session_of(
    mock: &testkit::live::MockLive,
    call_sid: &str,
) -> testkit::live::LiveSessionHandle {
    let needle = format!("on call {call_sid} ");
    for n in 1.. {
        let session = mock
            .wait_for_session(n, WAIT)
            .await
            .unwrap_or_else(|e| panic!("no session for {call_sid}: {e}"));
        let start = session
            .wait_for_event_type("session.start", WAIT)
            .await
            .expect("the bridge starts every session");
        if start.json["session"]["instructions"]
            .as_str()
            .is_some_and(|i| i.contains(&needle))
        {
            return session;
        }
    }
    unreachable!("`1..` is endless")
}

/// Neither the simulated Twilio nor the mock GPT-Live session saw a protocol violation.
pub fn assert_no_violations(
    call: &testkit::twilio::ActiveCall,
    session: &testkit::live::LiveSessionHandle,
) {
    assert!(
        session.violations().is_empty(),
        "GPT-Live side: {:?}",
        session.violations()
    );
    assert!(
        call.violations().is_empty(),
        "Twilio side: {:?}",
        call.violations()
    );
}
