//! Lean mode of the peers (`cargo xtask bench`): what a lean caller
//! ([`twilio::lean`](crate::twilio::lean)) and the lean agent
//! ([`openai::lean`](crate::openai::lean)) of one call share: frame stamps, send times, and
//! sequence tracking.
//!
//! Both run in the load process, so they read one clock ([`now_ns`]): a frame's latency is
//! the receiver's clock minus the sender's, read from a per-call ring of send times indexed by
//! the frame's sequence number (carried in the audio bytes, see [`stamp_id`]).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Send times kept per direction (power of two). 1024 frames is 20 s of audio: far more than
/// any frame spends in flight.
pub const RING: usize = 1024;

/// Bits of a stamp id holding the frame's sequence number.
const SEQ_BITS: u32 = 20;
/// Bits of a stamp id holding the call's index (mod 2048): a frame delivered to the wrong
/// call is detected.
const CALL_BITS: u32 = 11;
const SEQ_MASK: u32 = (1 << SEQ_BITS) - 1;
const CALL_MASK: u32 = (1 << CALL_BITS) - 1;
/// The top bit marks caller frames that carry speech (the mock agent's "VAD" reads it).
const SPEECH_BIT: u32 = 1 << 31;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the load process's epoch (monotonic; 0 is never returned, so 0 can
/// mean "unset").
pub fn now_ns() -> u64 {
    to_ns(Instant::now())
}

/// `t` in nanoseconds since the epoch (at least 1).
pub fn to_ns(t: Instant) -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(t.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX) + 1
}

/// The instant `ns` nanoseconds after the epoch (the inverse of [`to_ns`]).
pub fn from_ns(ns: u64) -> Instant {
    let epoch = *EPOCH.get_or_init(Instant::now);
    epoch + std::time::Duration::from_nanos(ns.saturating_sub(1))
}

/// Initializes the epoch (call before any call starts).
pub fn init_clock() {
    let _ = now_ns();
}

/// The stamp id of frame `seq` of call `call`, optionally flagged as speech.
pub fn stamp_id(call: u32, seq: u32, speech: bool) -> u32 {
    let flag = if speech { SPEECH_BIT } else { 0 };
    flag | ((call & CALL_MASK) << SEQ_BITS) | (seq & SEQ_MASK)
}

/// A decoded stamp id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Call index (mod 2048).
    pub call: u32,
    /// Frame sequence number (from 1, mod 2^20).
    pub seq: u32,
    /// The caller frame carries speech.
    pub speech: bool,
}

impl Stamp {
    /// Decodes a stamp id.
    pub fn from_id(id: u32) -> Stamp {
        Stamp {
            call: (id >> SEQ_BITS) & CALL_MASK,
            seq: id & SEQ_MASK,
            speech: id & SPEECH_BIT != 0,
        }
    }

    /// Whether the stamp belongs to call `idx`.
    pub fn is_call(&self, idx: u32) -> bool {
        self.call == idx & CALL_MASK
    }
}

/// Microseconds between two instants in ns (0 if `to` is before `from`), saturated to u32.
pub fn micros_between(from_ns: u64, to_ns: u64) -> u32 {
    u32::try_from(to_ns.saturating_sub(from_ns) / 1_000).unwrap_or(u32::MAX)
}

/// Per-call state shared by the caller task and the mock agent's session for that call.
#[derive(Debug)]
pub struct CallSlot {
    /// The call's index in the level.
    pub idx: u32,
    /// Caller frame `seq` was sent at `caller_sent[seq % RING]` (ns).
    pub caller_sent: Box<[AtomicU64]>,
    /// Agent frame `seq` was sent by the mock at `agent_sent[seq % RING]` (ns).
    pub agent_sent: Box<[AtomicU64]>,
    /// The last agent frame the mock has sent (0 = none).
    pub agent_last_seq: AtomicU32,
    /// When the mock last sent `input_audio_buffer.speech_started` (ns, 0 = never).
    pub speech_started_at: AtomicU64,
    /// What the mock agent observed, deposited when its session ends.
    pub agent_report: Mutex<Option<AgentReport>>,
}

impl CallSlot {
    /// The slot of call `idx` (the call's index in the level).
    pub fn new(idx: u32) -> CallSlot {
        let ring = || (0..RING).map(|_| AtomicU64::new(0)).collect();
        CallSlot {
            idx,
            caller_sent: ring(),
            agent_sent: ring(),
            agent_last_seq: AtomicU32::new(0),
            speech_started_at: AtomicU64::new(0),
            agent_report: Mutex::new(None),
        }
    }

    /// Records when caller frame `seq` was sent.
    pub fn set_caller_sent(&self, seq: u32, at: u64) {
        self.caller_sent[seq as usize % RING].store(at, Ordering::Relaxed);
    }

    /// When caller frame `seq` was sent (0: unknown).
    pub fn caller_sent(&self, seq: u32) -> u64 {
        self.caller_sent[seq as usize % RING].load(Ordering::Relaxed)
    }

    /// Records when agent frame `seq` was sent.
    pub fn set_agent_sent(&self, seq: u32, at: u64) {
        self.agent_sent[seq as usize % RING].store(at, Ordering::Relaxed);
    }

    /// When agent frame `seq` was sent (0: unknown).
    pub fn agent_sent(&self, seq: u32) -> u64 {
        self.agent_sent[seq as usize % RING].load(Ordering::Relaxed)
    }

    /// The agent session's report, deposited when it ends.
    pub fn deposit(&self, report: AgentReport) {
        // A poisoned lock only means another thread panicked while holding it; the value is
        // still a plain Option.
        let mut slot = self.agent_report.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(report);
    }

    /// Takes the agent session's report (`None`: no session found this call).
    pub fn take_report(&self) -> Option<AgentReport> {
        self.agent_report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// What the mock agent saw of one call.
#[derive(Debug, Default)]
pub struct AgentReport {
    /// Caller frames received, in order of arrival.
    pub caller_frames: SeqTracker,
    /// Caller → agent latencies (µs) of frames sent after the session was ready.
    pub latencies_us: Vec<u32>,
    /// Caller frames that arrived carrying another call's stamp.
    pub misrouted: u64,
    /// Appends whose audio carried no readable stamp.
    pub unstamped: u64,
    /// Client events the mock could not parse or did not expect.
    pub protocol_errors: u64,
    /// Responses started, and how many were cut by the caller's speech.
    pub responses: u64,
    /// Responses cut by the caller's speech.
    pub responses_cancelled: u64,
    /// `conversation.item.truncate` received.
    pub truncates: u64,
    /// `--tool-calls`: function calls sent.
    pub tool_calls: u64,
    /// Tool round trips (µs): `response.done` of the function call sent → its
    /// `function_call_output` received.
    pub tool_rtt_us: Vec<u32>,
    /// `function_call_output`s that answered no pending call or carried another output than
    /// the webhook's answer (a tool error).
    pub tool_bad_outputs: u64,
}

/// Tracks a stream of sequence numbers (from 1): in order, lost (gaps), duplicated and
/// reordered, with a window of the last [`RING`] numbers.
#[derive(Debug, Clone)]
pub struct SeqTracker {
    /// The next number expected.
    next: u32,
    seen: Box<[u64; RING / 64]>,
    /// Distinct numbers received.
    pub received: u64,
    /// Numbers skipped (a later one arrived first), minus those that arrived late.
    pub gaps: u64,
    /// Numbers received again.
    pub duplicated: u64,
    /// Numbers that arrived after a later one (and were not duplicates).
    pub reordered: u64,
}

impl Default for SeqTracker {
    fn default() -> Self {
        SeqTracker {
            next: 1,
            seen: Box::new([0; RING / 64]),
            received: 0,
            gaps: 0,
            duplicated: 0,
            reordered: 0,
        }
    }
}

impl SeqTracker {
    fn bit(seq: u32) -> (usize, u64) {
        let i = seq as usize % RING;
        (i / 64, 1u64 << (i % 64))
    }

    /// Records `seq`.
    pub fn on(&mut self, seq: u32) {
        if seq >= self.next {
            let skipped = seq - self.next;
            if skipped as usize >= RING {
                self.seen.fill(0);
            } else {
                for s in self.next..seq {
                    let (w, b) = Self::bit(s);
                    self.seen[w] &= !b;
                }
            }
            let (w, b) = Self::bit(seq);
            self.seen[w] |= b;
            self.gaps += u64::from(skipped);
            self.received += 1;
            self.next = seq + 1;
        } else if self.next - seq > RING as u32 {
            // Too old to tell a duplicate from a late arrival: count it as reordered.
            self.reordered += 1;
        } else {
            let (w, b) = Self::bit(seq);
            if self.seen[w] & b != 0 {
                self.duplicated += 1;
            } else {
                self.seen[w] |= b;
                self.reordered += 1;
                self.received += 1;
                self.gaps = self.gaps.saturating_sub(1);
            }
        }
    }

    /// The highest number received (0 = none).
    pub fn highest(&self) -> u32 {
        self.next - 1
    }

    /// Frames lost out of `1..=last_sent`: the gaps plus the tail that never arrived.
    pub fn lost(&self, last_sent: u32) -> u64 {
        self.gaps + u64::from(last_sent.saturating_sub(self.highest()))
    }
}

/// Finds stamps in a byte stream delivered in pieces (the bridge may re-cut agent audio at
/// any byte): keeps the last `STAMP_LEN - 1` bytes of each piece to catch stamps that
/// straddle two pieces.
#[derive(Debug, Default)]
pub struct StampScanner {
    buf: Vec<u8>,
}

const STAMP_LEN: usize = crate::audio::STAMP_LEN;

impl StampScanner {
    /// Scans `piece` (following everything scanned before) and calls `found` with the id of
    /// each stamp completed by it.
    pub fn scan(&mut self, piece: &[u8], mut found: impl FnMut(u32)) {
        let carry = self.buf.len();
        self.buf.extend_from_slice(piece);
        let bytes = &self.buf[..];
        let mut i = 0;
        while i + STAMP_LEN <= bytes.len() {
            // Stamps start with the magic byte 0x7A; skip quickly to candidates.
            if bytes[i] == 0x7A
                && i + STAMP_LEN > carry
                && let Some(id) = crate::audio::read_stamp(&bytes[i..])
            {
                found(id);
                i += STAMP_LEN;
                continue;
            }
            i += 1;
        }
        let keep = self.buf.len().min(STAMP_LEN - 1);
        let from = self.buf.len() - keep;
        self.buf.copy_within(from.., 0);
        self.buf.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_ids_round_trip() {
        let id = stamp_id(1234, 56789, true);
        let s = Stamp::from_id(id);
        assert_eq!(
            s,
            Stamp {
                call: 1234,
                seq: 56789,
                speech: true
            }
        );
        assert!(s.is_call(1234));
        assert!(s.is_call(1234 + 2048));
        assert!(!s.is_call(1235));
        assert!(!Stamp::from_id(stamp_id(7, 1, false)).speech);
    }

    #[test]
    fn tracker_counts_gaps_duplicates_and_late_frames() {
        let mut t = SeqTracker::default();
        for s in [1, 2, 3, 5, 6, 6, 4, 8] {
            t.on(s);
        }
        assert_eq!(t.received, 7);
        assert_eq!(t.duplicated, 1);
        assert_eq!(t.reordered, 1);
        assert_eq!(t.gaps, 1); // 7
        assert_eq!(t.highest(), 8);
        assert_eq!(t.lost(10), 3); // 7, 9, 10
    }

    #[test]
    fn scanner_finds_stamps_across_pieces() {
        let mut audio = crate::audio::agent_tone(100, 100); // five stamped 20 ms frames
        audio.extend_from_slice(&[0xFF; 7]);
        let mut ids = Vec::new();
        let mut scanner = StampScanner::default();
        for piece in audio.chunks(162) {
            scanner.scan(piece, |id| ids.push(id));
        }
        assert_eq!(ids, vec![100, 101, 102, 103, 104]);
        // Byte by byte, too.
        let mut ids = Vec::new();
        let mut scanner = StampScanner::default();
        for b in &audio {
            scanner.scan(std::slice::from_ref(b), |id| ids.push(id));
        }
        assert_eq!(ids, vec![100, 101, 102, 103, 104]);
    }
}
