//! What happened on a simulated call: caller turns, agent turns, latencies, barge-ins, marks,
//! the hang-up — computed from the simulator's records, and rendered as an aligned timeline.
//!
//! Pure: [`analyze`] takes a [`CallRecord`] (the call simulator's timeline and playout segments
//! plus the caller audio that was queued) and returns a [`CallAnalysis`]; nothing here does I/O,
//! so the rules are unit-tested with synthetic records.
//!
//! Definitions (all times as observed by the simulated caller):
//! * a **caller turn** is one queued piece of caller audio; its *speech* runs from its first to
//!   its last energetic 20 ms frame (RMS above [`SPEECH_RMS`]). As on a real phone, a frame sent
//!   at `T` carries the audio spoken from `T − 20 ms` to `T`, so speech starts 20 ms before its
//!   first frame is sent and ends when its last frame is sent;
//! * an **agent turn** is a run of agent audio played back to back: a new turn starts after a
//!   `clear`, or when playback had been idle for more than [`AGENT_TURN_GAP`];
//! * the **reply** to a caller turn is the first agent turn whose audio arrives after the caller
//!   stopped speaking; its latency runs from the end of speech to that first audio (so it
//!   includes the silence the agent's voice-activity detection waits for);
//! * a **barge-in** is a `clear` received while agent audio was still queued; its latency runs
//!   from the start of the caller's speech to the `clear`.

use std::fmt::Write as _;
use std::time::Duration;

use testkit::audio::{FRAME_BYTES, SILENCE};
use testkit::twilio::{CallEnd, CallEvent, PlayedSegment, TimelineEntry, bytes_duration};
use tokio::time::Instant;

/// RMS (16-bit linear units) above which a caller frame counts as speech.
pub(crate) const SPEECH_RMS: f64 = 300.0;

/// Idle playback longer than this starts a new agent turn.
pub(crate) const AGENT_TURN_GAP: Duration = Duration::from_millis(250);

/// The voice webhook exchange that placed the call.
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    /// When the request was sent.
    pub(crate) at: Instant,
    /// How long the server took to answer.
    pub(crate) elapsed: Duration,
    /// HTTP status.
    pub(crate) status: u16,
    /// Whether the request carried a signature.
    pub(crate) signed: bool,
    /// The `<Stream url>` of the TwiML answer.
    pub(crate) stream_url: Option<String>,
}

/// Everything recorded about one call.
#[derive(Debug, Clone)]
pub(crate) struct CallRecord {
    /// Time zero of the timeline (just before the webhook).
    pub(crate) t0: Instant,
    /// The webhook exchange.
    pub(crate) webhook: Option<Webhook>,
    /// The simulator's timeline (with one entry per caller frame).
    pub(crate) timeline: Vec<TimelineEntry>,
    /// The agent's audio as played.
    pub(crate) segments: Vec<PlayedSegment>,
    /// Caller audio (μ-law) queued per turn, in order.
    pub(crate) caller_turns: Vec<Vec<u8>>,
    /// Protocol violations by the server, as text.
    pub(crate) violations: Vec<String>,
    /// The analysis horizon: nothing after this was heard (end of the call, or now).
    pub(crate) horizon: Instant,
}

/// One caller turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallerTurn {
    /// When the first energetic frame was sent (`None`: the turn had no speech or was not sent).
    pub(crate) speech_start: Option<Instant>,
    /// When the last energetic frame had been sent in full.
    pub(crate) speech_end: Option<Instant>,
    /// Whether agent audio was still playing when the first speech frame was sent (when the
    /// server could first hear the caller).
    pub(crate) over_agent: bool,
    /// The agent's reply: `(agent turn index, latency from the end of speech)`.
    pub(crate) reply: Option<(usize, Duration)>,
}

/// One agent turn as the caller heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgentTurn {
    /// When its first audio arrived.
    pub(crate) first_audio_at: Instant,
    /// When its playback started.
    pub(crate) plays_from: Instant,
    /// When its playback ended (at a cut, or after its last byte).
    pub(crate) plays_until: Instant,
    /// Offset of its first byte in the received agent audio.
    pub(crate) offset: usize,
    /// Bytes received.
    pub(crate) bytes: usize,
    /// Bytes heard by the horizon.
    pub(crate) heard: usize,
    /// When a `clear` cut it.
    pub(crate) cut_at: Option<Instant>,
    /// Marks the server sent with it.
    pub(crate) marks: usize,
}

/// A `clear` from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clear {
    /// When it arrived.
    pub(crate) at: Instant,
    /// The caller turn whose speech it answered, if any.
    pub(crate) caller_turn: Option<usize>,
    /// From the start of that speech to the clear.
    pub(crate) latency: Option<Duration>,
    /// The agent turn it cut, if any.
    pub(crate) agent_turn: Option<usize>,
    /// Bytes of that agent turn heard when the clear arrived.
    pub(crate) heard_of_turn: usize,
    /// Queued agent bytes discarded.
    pub(crate) discarded: usize,
    /// Pending marks echoed at once.
    pub(crate) flushed_marks: usize,
}

impl Clear {
    /// Whether it interrupted agent audio (a barge-in) rather than clearing an empty buffer.
    pub(crate) fn interrupted(&self) -> bool {
        self.discarded > 0
    }
}

/// The analysis of one call.
#[derive(Debug, Clone)]
pub(crate) struct CallAnalysis {
    /// Time zero.
    pub(crate) t0: Instant,
    /// When `start` was sent.
    pub(crate) start_at: Option<Instant>,
    /// The agent turn that greeted the caller (before the caller first spoke).
    pub(crate) greeting: Option<usize>,
    /// Caller turns.
    pub(crate) caller_turns: Vec<CallerTurn>,
    /// Agent turns.
    pub(crate) agent_turns: Vec<AgentTurn>,
    /// Clears.
    pub(crate) clears: Vec<Clear>,
    /// Marks received from the server.
    pub(crate) marks_received: usize,
    /// Marks echoed back.
    pub(crate) marks_echoed: usize,
    /// Marks echoed early because of a clear.
    pub(crate) marks_flushed: usize,
    /// Caller frames sent (speech and idle silence).
    pub(crate) caller_frames: usize,
    /// Agent bytes received.
    pub(crate) agent_bytes: usize,
    /// Agent bytes heard by the horizon.
    pub(crate) agent_heard: usize,
    /// When the caller sent `stop`.
    pub(crate) stop_at: Option<Instant>,
    /// How and when the stream ended.
    pub(crate) end: Option<(Instant, CallEnd)>,
    /// Protocol violations by the server.
    pub(crate) violations: Vec<String>,
    /// The timeline, in time order.
    pub(crate) lines: Vec<Line>,
}

/// One timeline line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// When.
    pub(crate) at: Instant,
    /// Short label (`caller`, `agent`, `clear`, ...).
    pub(crate) label: &'static str,
    /// What happened.
    pub(crate) text: String,
}

impl CallAnalysis {
    /// Milliseconds from time zero to `at`.
    pub(crate) fn rel_ms(&self, at: Instant) -> u64 {
        ms(at.saturating_duration_since(self.t0))
    }

    /// Latency of the greeting: from `start` to its first audio.
    pub(crate) fn greeting_latency(&self) -> Option<Duration> {
        let turn = &self.agent_turns[self.greeting?];
        Some(
            turn.first_audio_at
                .saturating_duration_since(self.start_at?),
        )
    }

    /// The clears that interrupted agent audio.
    pub(crate) fn barge_ins(&self) -> impl Iterator<Item = &Clear> {
        self.clears.iter().filter(|c| c.interrupted())
    }
}

/// Whole milliseconds of `d`.
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds of `bytes` μ-law bytes.
pub(crate) fn audio_ms(bytes: usize) -> u64 {
    ms(bytes_duration(bytes))
}

/// `1.50 s` for an amount of audio.
pub(crate) fn secs(bytes: usize) -> String {
    format!("{:.2} s", bytes_duration(bytes).as_secs_f64())
}

/// RMS of μ-law audio (16-bit linear units).
fn rms(mulaw: &[u8]) -> f64 {
    testkit::audio::rms(mulaw)
}

/// The exact bytes the caller sent, reconstructed from the timeline: idle frames are silence,
/// other frames are the queued turns in order (each padded to whole frames with silence).
pub(crate) fn caller_bytes_sent(timeline: &[TimelineEntry], caller_turns: &[Vec<u8>]) -> Vec<u8> {
    let queued = padded_turns(caller_turns);
    let mut next = 0;
    let mut out = Vec::new();
    for entry in timeline {
        if let CallEvent::MediaSent { idle, bytes, .. } = entry.event {
            if idle {
                out.extend(std::iter::repeat_n(SILENCE, bytes));
            } else {
                let end = (next + bytes).min(queued.len());
                out.extend_from_slice(&queued[next..end]);
                next = end;
            }
        }
    }
    out
}

fn padded_turns(turns: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for turn in turns {
        out.extend_from_slice(turn);
        let padded = turn.len().div_ceil(FRAME_BYTES) * FRAME_BYTES;
        out.resize(out.len() + (padded - turn.len()), SILENCE);
    }
    out
}

/// Speech span of one turn's audio, in frames: `(first, last)` energetic frame indices.
fn speech_frames(audio: &[u8]) -> Option<(usize, usize)> {
    let energetic: Vec<usize> = audio
        .chunks(FRAME_BYTES)
        .enumerate()
        .filter(|(_, frame)| rms(frame) > SPEECH_RMS)
        .map(|(i, _)| i)
        .collect();
    Some((*energetic.first()?, *energetic.last()?))
}

/// When a segment stops playing (at its cut, if it was cut).
fn segment_end(s: &PlayedSegment) -> Instant {
    s.starts_at + bytes_duration(s.cut_at.unwrap_or(s.len))
}

/// Analyzes a call.
pub(crate) fn analyze(rec: &CallRecord) -> CallAnalysis {
    let at_of = |pred: &dyn Fn(&CallEvent) -> bool| {
        rec.timeline.iter().find(|e| pred(&e.event)).map(|e| e.at)
    };
    let start_at = at_of(&|e| matches!(e, CallEvent::StartSent));
    let stop_at = at_of(&|e| matches!(e, CallEvent::StopSent));
    let end = rec.timeline.iter().find_map(|e| match &e.event {
        CallEvent::Closed(end) => Some((e.at, end.clone())),
        _ => None,
    });
    let horizon = end
        .as_ref()
        .map_or(rec.horizon, |(at, _)| (*at).min(rec.horizon));
    let clear_times: Vec<Instant> = rec
        .timeline
        .iter()
        .filter(|e| matches!(e.event, CallEvent::ClearReceived { .. }))
        .map(|e| e.at)
        .collect();

    // Agent turns from the playout segments.
    let mut agent_turns: Vec<AgentTurn> = Vec::new();
    let mut prev: Option<&PlayedSegment> = None;
    for seg in &rec.segments {
        let new_turn = match prev {
            None => true,
            Some(p) => {
                let cleared_between = clear_times
                    .iter()
                    .any(|c| *c >= p.received_at && *c <= seg.received_at);
                cleared_between || seg.starts_at > segment_end(p) + AGENT_TURN_GAP
            }
        };
        if new_turn {
            agent_turns.push(AgentTurn {
                first_audio_at: seg.received_at,
                plays_from: seg.starts_at,
                plays_until: segment_end(seg),
                offset: seg.offset,
                bytes: 0,
                heard: 0,
                cut_at: None,
                marks: 0,
            });
        }
        if let Some(turn) = agent_turns.last_mut() {
            turn.bytes += seg.len;
            turn.heard += seg.heard_len_at(horizon);
            turn.plays_until = segment_end(seg);
        }
        prev = Some(seg);
    }
    // Marks belong to the turn of the latest audio received before them.
    let turn_at = |t: Instant| agent_turns.iter().rposition(|a| a.first_audio_at <= t);
    let mut marks_received = 0;
    let mut marks_echoed = 0;
    let mut marks_flushed = 0;
    let mut mark_turns = Vec::new();
    for e in &rec.timeline {
        match &e.event {
            CallEvent::MarkReceived { .. } => {
                marks_received += 1;
                mark_turns.push(turn_at(e.at));
            }
            CallEvent::MarkEchoed { cleared, .. } => {
                marks_echoed += 1;
                marks_flushed += usize::from(*cleared);
            }
            _ => {}
        }
    }
    for i in mark_turns.into_iter().flatten() {
        agent_turns[i].marks += 1;
    }
    let playing_at = |t: Instant| {
        rec.segments
            .iter()
            .any(|s| s.starts_at <= t && t < segment_end(s))
    };

    // Caller turns: speech spans timed by the frames that carried them.
    let frame_times: Vec<Instant> = rec
        .timeline
        .iter()
        .filter(|e| matches!(e.event, CallEvent::MediaSent { idle: false, .. }))
        .map(|e| e.at)
        .collect();
    let caller_frames = rec
        .timeline
        .iter()
        .filter(|e| matches!(e.event, CallEvent::MediaSent { .. }))
        .count();
    let mut caller_turns = Vec::new();
    let mut first_frame = 0;
    for audio in &rec.caller_turns {
        let frames = audio.len().div_ceil(FRAME_BYTES);
        let span = speech_frames(audio).and_then(|(a, b)| {
            let start = *frame_times.get(first_frame + a)?;
            let end = *frame_times.get(first_frame + b)?;
            Some((start - Duration::from_millis(testkit::audio::FRAME_MS), end))
        });
        first_frame += frames;
        caller_turns.push(CallerTurn {
            speech_start: span.map(|s| s.0),
            speech_end: span.map(|s| s.1),
            over_agent: span.is_some_and(|(start, _)| {
                playing_at(start + Duration::from_millis(testkit::audio::FRAME_MS))
            }),
            reply: None,
        });
    }
    for turn in &mut caller_turns {
        let Some(end) = turn.speech_end else { continue };
        turn.reply = agent_turns
            .iter()
            .position(|a| a.first_audio_at >= end)
            .map(|i| {
                (
                    i,
                    agent_turns[i].first_audio_at.saturating_duration_since(end),
                )
            });
    }
    let first_speech = caller_turns.iter().find_map(|t| t.speech_start);
    let greeting = agent_turns
        .first()
        .filter(|a| first_speech.is_none_or(|s| a.first_audio_at < s))
        .map(|_| 0);

    // Clears.
    let mut clears = Vec::new();
    for e in &rec.timeline {
        let CallEvent::ClearReceived {
            discarded_bytes,
            flushed_marks,
        } = e.event
        else {
            continue;
        };
        let caller_turn = caller_turns
            .iter()
            .rposition(|t| t.speech_start.is_some_and(|s| s <= e.at));
        let latency = caller_turn
            .and_then(|i| caller_turns[i].speech_start)
            .map(|s| e.at.saturating_duration_since(s));
        let agent_turn = agent_turns.iter().rposition(|a| a.first_audio_at <= e.at);
        let heard_of_turn = agent_turn.map_or(0, |i| {
            let turn = &agent_turns[i];
            rec.segments
                .iter()
                .filter(|s| s.offset >= turn.offset && s.offset < turn.offset + turn.bytes)
                .map(|s| s.heard_len_at(e.at))
                .sum()
        });
        if discarded_bytes > 0
            && let Some(i) = agent_turn
        {
            agent_turns[i].cut_at = Some(e.at);
        }
        clears.push(Clear {
            at: e.at,
            caller_turn,
            latency,
            agent_turn: agent_turn.filter(|_| discarded_bytes > 0),
            heard_of_turn,
            discarded: discarded_bytes,
            flushed_marks,
        });
    }

    let mut analysis = CallAnalysis {
        t0: rec.t0,
        start_at,
        greeting,
        agent_bytes: agent_turns.iter().map(|a| a.bytes).sum(),
        agent_heard: agent_turns.iter().map(|a| a.heard).sum(),
        caller_turns,
        agent_turns,
        clears,
        marks_received,
        marks_echoed,
        marks_flushed,
        caller_frames,
        stop_at,
        end,
        violations: rec.violations.clone(),
        lines: Vec::new(),
    };
    analysis.lines = timeline_lines(rec, &analysis, horizon);
    analysis
}

fn timeline_lines(rec: &CallRecord, a: &CallAnalysis, horizon: Instant) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut push = |at: Instant, label: &'static str, text: String| {
        lines.push(Line { at, label, text });
    };
    if let Some(w) = &rec.webhook {
        let answer = match &w.stream_url {
            Some(url) => format!("<Connect><Stream url=\"{url}\">"),
            None => "no <Connect><Stream>".to_string(),
        };
        push(
            w.at,
            "webhook",
            format!(
                "POST /voice ({}) answered {} in {} ms: {answer}",
                if w.signed { "signed" } else { "unsigned" },
                w.status,
                ms(w.elapsed)
            ),
        );
    }
    for e in &rec.timeline {
        match &e.event {
            CallEvent::ConnectedSent => push(
                e.at,
                "connected",
                "media stream open (WebSocket upgrade accepted)".into(),
            ),
            CallEvent::StartSent => push(
                e.at,
                "start",
                "stream started; caller audio flows every 20 ms".into(),
            ),
            CallEvent::DtmfSent { digit } => push(e.at, "dtmf", format!("caller pressed {digit}")),
            CallEvent::StopSent => push(e.at, "hang-up", "caller sends stop and closes".into()),
            CallEvent::Violation(kind) => push(
                e.at,
                "VIOLATION",
                format!("the server sent an invalid message: {kind:?}"),
            ),
            CallEvent::Closed(end) => push(e.at, "closed", describe_end(end)),
            _ => {}
        }
    }
    for (i, turn) in a.caller_turns.iter().enumerate() {
        let (Some(start), Some(end)) = (turn.speech_start, turn.speech_end) else {
            continue;
        };
        let over = if turn.over_agent {
            " over the agent (barge-in)"
        } else {
            ""
        };
        push(
            start,
            "caller",
            format!("turn {}: starts speaking{over}", i + 1),
        );
        push(
            end,
            "caller",
            format!(
                "turn {}: stops speaking ({} ms of speech)",
                i + 1,
                ms(end.saturating_duration_since(start))
            ),
        );
    }
    for (i, turn) in a.agent_turns.iter().enumerate() {
        let why = if a.greeting == Some(i) {
            match a.greeting_latency() {
                Some(l) => format!("greeting: first audio {} ms after start", ms(l)),
                None => "greeting: first audio".to_string(),
            }
        } else if let Some((c, (_, latency))) = a
            .caller_turns
            .iter()
            .enumerate()
            .find_map(|(c, t)| t.reply.filter(|(r, _)| *r == i).map(|r| (c, r)))
        {
            format!(
                "answers turn {}: first audio {} ms after the caller stopped speaking",
                c + 1,
                ms(latency)
            )
        } else {
            "starts speaking".to_string()
        };
        push(turn.first_audio_at, "agent", why);
        if turn.cut_at.is_none() && turn.plays_until <= horizon {
            push(
                turn.plays_until,
                "agent",
                format!(
                    "finished: {} ms played, {} marks",
                    audio_ms(turn.heard),
                    turn.marks
                ),
            );
        }
    }
    for c in &a.clears {
        let text = if c.interrupted() {
            let after = match (c.latency, c.caller_turn) {
                (Some(l), Some(t)) => {
                    format!("{} ms after the caller started turn {}: ", ms(l), t + 1)
                }
                _ => String::new(),
            };
            format!(
                "{after}agent cut off after {} ms heard; {} ms of queued audio discarded, {} marks flushed",
                audio_ms(c.heard_of_turn),
                audio_ms(c.discarded),
                c.flushed_marks
            )
        } else {
            "nothing was playing; nothing to discard".to_string()
        };
        push(c.at, "clear", text);
    }
    // Stable: lines at the same instant keep the order they were produced in.
    lines.sort_by_key(|l| l.at);
    lines
}

/// How a stream ended, in words.
pub(crate) fn describe_end(end: &CallEnd) -> String {
    match end {
        CallEnd::CallerStopped => "stream closed after the caller's stop".into(),
        CallEnd::CallerDropped => "the caller dropped the connection".into(),
        CallEnd::ServerClosed { code, reason } => {
            let code = code.map_or("no code".to_string(), |c| c.to_string());
            if reason.is_empty() {
                format!("the server closed the stream ({code})")
            } else {
                format!("the server closed the stream ({code}: {reason})")
            }
        }
        CallEnd::ServerVanished { error } => format!("the server vanished: {error}"),
        CallEnd::Rest(ctl) => format!("ended over the REST API: {ctl:?}"),
    }
}

/// Renders the timeline with aligned columns.
pub(crate) fn render_timeline(a: &CallAnalysis) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  {:>9}  {:<9}  what happened", "time", "event");
    let _ = writeln!(out, "  {:>9}  {:<9}  {}", "-----", "-----", "-".repeat(60));
    for line in &a.lines {
        let _ = writeln!(
            out,
            "  {:>9}  {:<9}  {}",
            format!("+{} ms", a.rel_ms(line.at)),
            line.label,
            line.text
        );
    }
    out
}

/// Renders `label: value` rows with the values aligned.
pub(crate) fn render_rows(rows: &[(String, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let pad = width - k.chars().count();
        let _ = writeln!(out, "  {k}{}  {v}", " ".repeat(pad));
    }
    out
}

/// The generic summary rows of a call (what the caller observed).
pub(crate) fn summary_rows(a: &CallAnalysis) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    rows.push((
        "greeting".to_string(),
        match a.greeting_latency() {
            Some(l) => format!("first audio {} ms after start", ms(l)),
            None => "none (the caller spoke first, or the agent stayed silent)".to_string(),
        },
    ));
    for (i, t) in a.caller_turns.iter().enumerate() {
        let value = match (t.speech_end, t.reply) {
            (None, _) => "no speech detected in this audio".to_string(),
            (Some(_), Some((_, l))) => {
                format!("agent's first audio {} ms after the caller stopped", ms(l))
            }
            (Some(_), None) => "no reply before the end of the call".to_string(),
        };
        rows.push((format!("turn {}", i + 1), value));
    }
    let barge_ins: Vec<&Clear> = a.barge_ins().collect();
    if barge_ins.is_empty() {
        rows.push(("barge-ins".into(), "none".into()));
    }
    for (i, c) in barge_ins.iter().enumerate() {
        rows.push((
            format!("barge-in {}", i + 1),
            format!(
                "clear {} after speech start; agent cut after {} ms heard",
                c.latency
                    .map_or("(no caller speech)".to_string(), |l| format!(
                        "{} ms",
                        ms(l)
                    )),
                audio_ms(c.heard_of_turn)
            ),
        ));
    }
    rows.push((
        "audio".into(),
        format!(
            "caller sent {} frames ({}); agent sent {}, caller heard {}",
            a.caller_frames,
            secs(a.caller_frames * FRAME_BYTES),
            secs(a.agent_bytes),
            secs(a.agent_heard)
        ),
    ));
    rows.push((
        "marks".into(),
        format!(
            "{} received, {} echoed ({} flushed early by a clear)",
            a.marks_received, a.marks_echoed, a.marks_flushed
        ),
    ));
    rows.push((
        "ended".into(),
        match &a.end {
            Some((at, end)) => format!("{} at +{} ms", describe_end(end), a.rel_ms(*at)),
            None => "still open".to_string(),
        },
    ));
    rows.push((
        "violations".into(),
        if a.violations.is_empty() {
            "none: every message the server sent was valid".to_string()
        } else {
            a.violations.join("; ")
        },
    ));
    rows
}

/// The caller's timeline of heard agent audio as 16-bit PCM at 8 kHz, from `from` to the
/// horizon: silence where nothing played, cuts where a `clear` cut.
pub(crate) fn heard_pcm(
    segments: &[PlayedSegment],
    received: &[u8],
    from: Instant,
    until: Instant,
) -> Vec<i16> {
    let total = usize::try_from(until.saturating_duration_since(from).as_nanos() / 125_000)
        .unwrap_or(usize::MAX);
    let mut pcm = vec![0i16; total];
    for s in segments {
        let heard = s.heard_len_at(until);
        let start =
            usize::try_from(s.starts_at.saturating_duration_since(from).as_nanos() / 125_000)
                .unwrap_or(usize::MAX);
        let Some(bytes) = received.get(s.offset..s.offset + heard) else {
            continue;
        };
        for (k, &b) in bytes.iter().enumerate() {
            if let Some(slot) = pcm.get_mut(start.saturating_add(k)) {
                *slot = testkit::audio::decode(b);
            }
        }
    }
    pcm
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::audio::{silence, speech};

    fn t(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    struct Builder {
        t0: Instant,
        timeline: Vec<TimelineEntry>,
        segments: Vec<PlayedSegment>,
        received: usize,
        turns: Vec<Vec<u8>>,
    }

    impl Builder {
        fn new() -> Self {
            let t0 = Instant::now();
            Builder {
                t0,
                timeline: vec![
                    TimelineEntry {
                        at: t(t0, 10),
                        event: CallEvent::ConnectedSent,
                    },
                    TimelineEntry {
                        at: t(t0, 11),
                        event: CallEvent::StartSent,
                    },
                ],
                segments: Vec::new(),
                received: 0,
                turns: Vec::new(),
            }
        }
        fn ev(&mut self, ms: u64, event: CallEvent) {
            self.timeline.push(TimelineEntry {
                at: t(self.t0, ms),
                event,
            });
        }
        /// Agent media of `len` bytes arriving at `ms`, queued after what is queued.
        fn media(&mut self, ms: u64, len: usize) {
            let at = t(self.t0, ms);
            let starts_at = self.segments.last().map_or(at, |s| segment_end(s).max(at));
            self.segments.push(PlayedSegment {
                received_at: at,
                starts_at,
                offset: self.received,
                len,
                cut_at: None,
            });
            self.received += len;
            self.ev(
                ms,
                CallEvent::MediaReceived {
                    bytes: len,
                    plays_at: starts_at,
                },
            );
        }
        /// Caller audio spoken from `ms` on: each 20 ms frame is sent once it has been spoken.
        fn caller(&mut self, ms: u64, audio: Vec<u8>) {
            for k in 0..audio.len().div_ceil(FRAME_BYTES) {
                self.ev(
                    ms + 20 * (k as u64 + 1),
                    CallEvent::MediaSent {
                        chunk: 0,
                        timestamp_ms: 0,
                        bytes: FRAME_BYTES,
                        stamp: None,
                        idle: false,
                    },
                );
            }
            self.turns.push(audio);
        }
        fn clear(&mut self, ms: u64) {
            let at = t(self.t0, ms);
            let mut discarded = 0;
            for s in self.segments.iter_mut() {
                if segment_end(s) > at {
                    let heard = s.heard_len_at(at);
                    discarded += s.len - heard;
                    s.cut_at = Some(heard);
                }
            }
            self.ev(
                ms,
                CallEvent::ClearReceived {
                    discarded_bytes: discarded,
                    flushed_marks: 2,
                },
            );
        }
        fn record(mut self, horizon_ms: u64) -> CallRecord {
            self.timeline.sort_by_key(|e| e.at);
            CallRecord {
                t0: self.t0,
                webhook: Some(Webhook {
                    at: self.t0,
                    elapsed: Duration::from_millis(4),
                    status: 200,
                    signed: true,
                    stream_url: Some("wss://example.com/media".into()),
                }),
                timeline: self.timeline,
                segments: self.segments,
                caller_turns: self.turns,
                violations: Vec::new(),
                horizon: t(self.t0, horizon_ms),
            }
        }
    }

    /// Greeting, a turn with a reply, a barge-in, a reply, hang-up.
    fn sample() -> CallRecord {
        let mut b = Builder::new();
        // Greeting: 1 s of audio in two pieces at +100 ms, each with a mark.
        b.media(100, 4000);
        b.ev(100, CallEvent::MarkReceived { name: "m1".into() });
        b.media(101, 4000);
        b.ev(101, CallEvent::MarkReceived { name: "m2".into() });
        b.ev(
            600,
            CallEvent::MarkEchoed {
                name: "m1".into(),
                cleared: false,
            },
        );
        b.ev(
            1100,
            CallEvent::MarkEchoed {
                name: "m2".into(),
                cleared: false,
            },
        );
        // Turn 1: 200 ms silence then 400 ms speech, from +1200 ms: speech 1400..1800.
        let mut turn1 = silence(200);
        turn1.extend(speech(400));
        b.caller(1200, turn1);
        // Reply at +2400 ms (600 ms after the end of speech): 2 s of audio.
        b.media(2400, 16000);
        // Turn 2 over the agent from +2900, cleared at +2940.
        b.caller(2900, speech(300));
        b.clear(2940);
        // Reply to turn 2 at +3700.
        b.media(3700, 2400);
        b.ev(4200, CallEvent::StopSent);
        b.ev(4210, CallEvent::Closed(CallEnd::CallerStopped));
        b.record(5000)
    }

    #[test]
    fn turns_latencies_and_barge_in() {
        let a = analyze(&sample());
        assert_eq!(a.agent_turns.len(), 3, "{:?}", a.agent_turns);
        assert_eq!(a.greeting, Some(0));
        assert_eq!(a.greeting_latency(), Some(Duration::from_millis(89)));
        assert_eq!(a.agent_turns[0].marks, 2);
        assert_eq!(a.agent_turns[0].heard, 8000);

        assert_eq!(a.caller_turns.len(), 2);
        let t1 = &a.caller_turns[0];
        assert_eq!(t1.speech_start.map(|s| a.rel_ms(s)), Some(1400));
        assert_eq!(t1.speech_end.map(|s| a.rel_ms(s)), Some(1800));
        assert!(!t1.over_agent);
        assert_eq!(t1.reply, Some((1, Duration::from_millis(600))));

        let t2 = &a.caller_turns[1];
        assert!(t2.over_agent);
        assert_eq!(t2.reply, Some((2, Duration::from_millis(500))));

        assert_eq!(a.clears.len(), 1);
        let c = &a.clears[0];
        assert!(c.interrupted());
        assert_eq!(c.caller_turn, Some(1));
        assert_eq!(c.latency, Some(Duration::from_millis(40)));
        assert_eq!(c.agent_turn, Some(1));
        // 540 ms of the reply heard, the other 1460 ms discarded.
        assert_eq!(c.heard_of_turn, 540 * 8);
        assert_eq!(c.discarded, 1460 * 8);
        assert_eq!(a.agent_turns[1].cut_at.map(|c| a.rel_ms(c)), Some(2940));
        assert_eq!(a.agent_heard, 8000 + 540 * 8 + 2400);
        assert_eq!(a.marks_received, 2);
        assert_eq!(a.marks_echoed, 2);
        assert_eq!(a.stop_at.map(|s| a.rel_ms(s)), Some(4200));
        assert_eq!(a.end.as_ref().map(|e| &e.1), Some(&CallEnd::CallerStopped));
    }

    #[test]
    fn timeline_is_ordered_aligned_and_complete() {
        let a = analyze(&sample());
        let text = render_timeline(&a);
        let expected = [
            "      +0 ms  webhook    POST /voice (signed) answered 200 in 4 ms: <Connect><Stream url=\"wss://example.com/media\">",
            "     +10 ms  connected  media stream open (WebSocket upgrade accepted)",
            "     +11 ms  start      stream started; caller audio flows every 20 ms",
            "    +100 ms  agent      greeting: first audio 89 ms after start",
            "   +1100 ms  agent      finished: 1000 ms played, 2 marks",
            "   +1400 ms  caller     turn 1: starts speaking",
            "   +1800 ms  caller     turn 1: stops speaking (400 ms of speech)",
            "   +2400 ms  agent      answers turn 1: first audio 600 ms after the caller stopped speaking",
            "   +2900 ms  caller     turn 2: starts speaking over the agent (barge-in)",
            "   +2940 ms  clear      40 ms after the caller started turn 2: agent cut off after 540 ms heard; 1460 ms of queued audio discarded, 2 marks flushed",
            "   +3200 ms  caller     turn 2: stops speaking (300 ms of speech)",
            "   +3700 ms  agent      answers turn 2: first audio 500 ms after the caller stopped speaking",
            "   +4000 ms  agent      finished: 300 ms played, 0 marks",
            "   +4200 ms  hang-up    caller sends stop and closes",
            "   +4210 ms  closed     stream closed after the caller's stop",
        ];
        let body: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(body, expected, "\n{text}");
        assert!(
            text.lines()
                .next()
                .is_some_and(|l| l.contains("what happened"))
        );
    }

    #[test]
    fn summary_rows_name_every_turn() {
        let a = analyze(&sample());
        let rows = summary_rows(&a);
        let get = |k: &str| {
            rows.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or_default()
        };
        assert_eq!(get("greeting"), "first audio 89 ms after start");
        assert_eq!(
            get("turn 1"),
            "agent's first audio 600 ms after the caller stopped"
        );
        assert_eq!(
            get("barge-in 1"),
            "clear 40 ms after speech start; agent cut after 540 ms heard"
        );
        assert!(get("violations").starts_with("none"));
        let rendered = render_rows(&rows);
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for ((key, value), line) in rows.iter().zip(rendered.lines()) {
            assert_eq!(&line[2..2 + key.len()], key);
            assert_eq!(&line[4 + width..], value, "values are aligned:\n{rendered}");
        }
    }

    #[test]
    fn a_silent_turn_and_a_call_without_greeting() {
        let mut b = Builder::new();
        b.caller(100, silence(200));
        b.caller(400, speech(200));
        let a = analyze(&b.record(1000));
        assert_eq!(a.greeting, None);
        assert_eq!(a.caller_turns[0].speech_start, None);
        assert_eq!(
            a.caller_turns[1].speech_start.map(|s| a.rel_ms(s)),
            Some(400)
        );
        assert_eq!(a.caller_turns[1].reply, None);
        let rows = summary_rows(&a);
        assert!(
            rows.iter()
                .any(|(k, v)| k == "turn 1" && v.contains("no speech"))
        );
        assert!(
            rows.iter()
                .any(|(k, v)| k == "turn 2" && v.contains("no reply"))
        );
        assert!(rows.iter().any(|(k, v)| k == "barge-ins" && v == "none"));
    }

    #[test]
    fn a_pause_in_playback_starts_a_new_agent_turn() {
        let mut b = Builder::new();
        b.media(100, 800); // plays 100..200
        b.media(300, 800); // 100 ms gap: same turn
        b.media(800, 800); // 400 ms gap: new turn
        let a = analyze(&b.record(2000));
        assert_eq!(a.agent_turns.len(), 2);
        assert_eq!(a.agent_turns[0].bytes, 1600);
        assert_eq!(a.agent_turns[1].offset, 1600);
    }

    #[test]
    fn caller_bytes_are_reconstructed_exactly() {
        let mut b = Builder::new();
        b.ev(
            20,
            CallEvent::MediaSent {
                chunk: 1,
                timestamp_ms: 0,
                bytes: FRAME_BYTES,
                stamp: None,
                idle: true,
            },
        );
        let audio: Vec<u8> = (0..200u8).collect();
        b.caller(40, audio.clone());
        let rec = b.record(100);
        let sent = caller_bytes_sent(&rec.timeline, &rec.caller_turns);
        let mut expected = vec![SILENCE; FRAME_BYTES];
        expected.extend_from_slice(&audio);
        expected.extend(std::iter::repeat_n(SILENCE, 120));
        assert_eq!(sent, expected);
    }

    #[test]
    fn heard_pcm_is_time_aligned_and_respects_cuts() {
        let t0 = Instant::now();
        let received = vec![0x80u8; 1600];
        let segments = vec![
            PlayedSegment {
                received_at: t(t0, 10),
                starts_at: t(t0, 10),
                offset: 0,
                len: 800,
                cut_at: None,
            },
            PlayedSegment {
                received_at: t(t0, 200),
                starts_at: t(t0, 200),
                offset: 800,
                len: 800,
                cut_at: Some(400),
            },
        ];
        let pcm = heard_pcm(&segments, &received, t0, t(t0, 400));
        assert_eq!(pcm.len(), 3200);
        let loud = testkit::audio::decode(0x80);
        assert_eq!(pcm[79], 0);
        assert_eq!(pcm[80], loud);
        assert_eq!(pcm[879], loud);
        assert_eq!(pcm[880], 0);
        assert_eq!(pcm[1600], loud);
        assert_eq!(pcm[1999], loud);
        assert_eq!(pcm[2000], 0);
    }
}
