//! Twilio's playout buffer, modelled on an explicit clock (sans-IO).
//!
//! Audio the server sends is queued and played back to back at 8 bytes/ms; a `mark` is due
//! when everything queued before it has played (immediately when nothing is queued); `clear`
//! discards what has not been played yet and makes every pending mark due at once
//! (PROTOCOLS.md §1.5). [`crate::twilio::ActiveCall`] drives one of these with the tokio clock;
//! it is public so other tests can model Twilio the same way.
//!
//! ```
//! use std::time::Duration;
//! use testkit::twilio::Playout;
//! use tokio::time::Instant;
//!
//! let t0 = Instant::now();
//! let mut p = Playout::new();
//! p.push_media(t0, &[0xFF; 800]); // 100 ms
//! let due = p.push_mark(t0, "m1");
//! assert_eq!(due, t0 + Duration::from_millis(100));
//! assert!(p.take_due_marks(t0 + Duration::from_millis(99)).is_empty());
//! assert_eq!(p.heard_len_at(t0 + Duration::from_millis(40)), 320);
//! let cleared = p.clear(t0 + Duration::from_millis(40));
//! assert_eq!(cleared.discarded_bytes, 480);
//! assert_eq!(cleared.flushed_marks, vec!["m1".to_string()]);
//! assert_eq!(p.heard_len_at(t0 + Duration::from_secs(9)), 320);
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Nanoseconds per μ-law byte at 8 kHz.
const NS_PER_BYTE: u64 = 125_000;

/// Duration of `bytes` μ-law bytes.
pub fn bytes_duration(bytes: usize) -> Duration {
    Duration::from_nanos(bytes as u64 * NS_PER_BYTE)
}

/// One `media` message's audio as it was (or will be) played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayedSegment {
    /// When the message arrived.
    pub received_at: Instant,
    /// When its first byte starts (started) playing.
    pub starts_at: Instant,
    /// Offset of its bytes in [`Playout::received`].
    pub offset: usize,
    /// Number of bytes.
    pub len: usize,
    /// Bytes actually played before a `clear` cut it (`None` if not cut).
    pub cut_at: Option<usize>,
}

impl PlayedSegment {
    /// When it ends (ended) playing, ignoring a cut.
    pub fn ends_at(&self) -> Instant {
        self.starts_at + bytes_duration(self.len)
    }

    /// How many of its bytes had been heard at `t`.
    pub fn heard_len_at(&self, t: Instant) -> usize {
        if t <= self.starts_at {
            return 0;
        }
        let elapsed = (t - self.starts_at).as_nanos() / u128::from(NS_PER_BYTE);
        let limit = self.cut_at.unwrap_or(self.len);
        usize::try_from(elapsed).unwrap_or(usize::MAX).min(limit)
    }
}

/// What a `clear` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleared {
    /// Queued bytes discarded (never heard).
    pub discarded_bytes: usize,
    /// Pending marks, in order, now due.
    pub flushed_marks: Vec<String>,
}

/// The playout buffer.
#[derive(Debug, Clone, Default)]
pub struct Playout {
    received: Vec<u8>,
    segments: Vec<PlayedSegment>,
    queue_end: Option<Instant>,
    pending: VecDeque<(String, Instant)>,
}

impl Playout {
    /// An empty, idle buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `bytes` received at `now`; returns when they start playing.
    pub fn push_media(&mut self, now: Instant, bytes: &[u8]) -> Instant {
        let start = self.queue_end.map_or(now, |end| end.max(now));
        self.segments.push(PlayedSegment {
            received_at: now,
            starts_at: start,
            offset: self.received.len(),
            len: bytes.len(),
            cut_at: None,
        });
        self.received.extend_from_slice(bytes);
        self.queue_end = Some(start + bytes_duration(bytes.len()));
        start
    }

    /// Queues mark `name` received at `now`; returns when it is due (all audio queued before
    /// it played; `now` if nothing is queued).
    pub fn push_mark(&mut self, now: Instant, name: &str) -> Instant {
        let due = self.queue_end.map_or(now, |end| end.max(now));
        self.pending.push_back((name.to_string(), due));
        due
    }

    /// Discards audio not yet played at `now` and makes every pending mark due.
    pub fn clear(&mut self, now: Instant) -> Cleared {
        let mut discarded = 0;
        for seg in self.segments.iter_mut().rev() {
            if seg.ends_at() <= now || seg.cut_at.is_some() {
                break;
            }
            let heard = seg.heard_len_at(now);
            discarded += seg.len - heard;
            seg.cut_at = Some(heard);
        }
        if self.queue_end.is_some_and(|end| end > now) {
            self.queue_end = Some(now);
        }
        let mut flushed = Vec::with_capacity(self.pending.len());
        for (name, due) in &mut self.pending {
            *due = (*due).min(now);
            flushed.push(name.clone());
        }
        Cleared {
            discarded_bytes: discarded,
            flushed_marks: flushed,
        }
    }

    /// Removes and returns the marks due at `now`, in order.
    pub fn take_due_marks(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((_, due)) = self.pending.front() {
            if *due > now {
                break;
            }
            if let Some((name, _)) = self.pending.pop_front() {
                out.push(name);
            }
        }
        out
    }

    /// When the next pending mark is due.
    pub fn next_mark_due(&self) -> Option<Instant> {
        self.pending.front().map(|(_, d)| *d)
    }

    /// Names of marks not yet echoed.
    pub fn pending_marks(&self) -> Vec<String> {
        self.pending.iter().map(|(n, _)| n.clone()).collect()
    }

    /// When everything queued so far will have played (`None` if nothing was ever queued).
    pub fn queue_end(&self) -> Option<Instant> {
        self.queue_end
    }

    /// Every audio byte received, in order (including bytes later cleared).
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[PlayedSegment] {
        &self.segments
    }

    /// Number of bytes heard by `t`.
    pub fn heard_len_at(&self, t: Instant) -> usize {
        self.segments.iter().map(|s| s.heard_len_at(t)).sum()
    }

    /// The bytes heard by `t`, in order.
    pub fn heard_at(&self, t: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        for s in &self.segments {
            let n = s.heard_len_at(t);
            out.extend_from_slice(&self.received[s.offset..s.offset + n]);
        }
        out
    }

    /// The earliest time at which `bytes` bytes will have been heard, if the audio already
    /// queued suffices (and no `clear` intervenes).
    pub fn time_when_heard(&self, bytes: usize) -> Option<Instant> {
        let mut remaining = bytes;
        for s in &self.segments {
            let avail = s.cut_at.unwrap_or(s.len);
            if remaining <= avail {
                return Some(s.starts_at + bytes_duration(remaining));
            }
            remaining -= avail;
        }
        (remaining == 0).then(|| {
            self.segments
                .last()
                .map_or_else(Instant::now, |s| s.starts_at)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn back_to_back_playout_and_marks() {
        let t0 = Instant::now();
        let mut p = Playout::new();
        assert_eq!(p.push_mark(t0, "early"), t0, "nothing queued: due at once");
        assert_eq!(p.push_media(t0, &[1; 160]), t0);
        assert_eq!(p.push_media(t0 + ms(5), &[2; 160]), t0 + ms(20));
        assert_eq!(p.push_mark(t0 + ms(5), "a"), t0 + ms(40));
        // Audio arriving after the queue drained starts at arrival.
        assert_eq!(p.push_media(t0 + ms(100), &[3; 80]), t0 + ms(100));
        assert_eq!(p.push_mark(t0 + ms(100), "b"), t0 + ms(110));
        assert_eq!(p.take_due_marks(t0), vec!["early"]);
        assert!(p.take_due_marks(t0 + ms(39)).is_empty());
        assert_eq!(p.take_due_marks(t0 + ms(40)), vec!["a"]);
        assert_eq!(p.next_mark_due(), Some(t0 + ms(110)));
        assert_eq!(p.heard_len_at(t0 + ms(30)), 240);
        assert_eq!(
            p.heard_at(t0 + ms(30)),
            [vec![1; 160], vec![2; 80]].concat()
        );
        assert_eq!(p.heard_len_at(t0 + ms(105)), 360);
        assert_eq!(p.time_when_heard(360), Some(t0 + ms(105)));
        assert_eq!(p.time_when_heard(401), None);
    }

    #[test]
    fn clear_cuts_playing_audio_and_flushes_marks() {
        let t0 = Instant::now();
        let mut p = Playout::new();
        p.push_media(t0, &[1; 800]);
        p.push_mark(t0, "m1");
        p.push_media(t0, &[2; 800]);
        p.push_mark(t0, "m2");
        let c = p.clear(t0 + ms(50));
        assert_eq!(c.discarded_bytes, 1200);
        assert_eq!(c.flushed_marks, vec!["m1", "m2"]);
        assert_eq!(p.take_due_marks(t0 + ms(50)), vec!["m1", "m2"]);
        assert_eq!(p.heard_len_at(t0 + ms(1000)), 400);
        // New audio after the clear plays at once.
        assert_eq!(p.push_media(t0 + ms(60), &[3; 8]), t0 + ms(60));
        assert_eq!(p.heard_at(t0 + ms(1000)).len(), 408);
        assert_eq!(p.received().len(), 1608);
    }
}
