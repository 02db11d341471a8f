//! Playout tracking: what was sent to the caller, what the caller has heard, and which mark
//! echoes to ignore after a clear.
//!
//! Positions are counted in samples of the agent's output format, per item (response id + item
//! id). Every forwarded piece of agent audio is followed by a uniquely numbered mark; the
//! caller side echoes a mark once everything queued before it has played, so an echo advances
//! the `played` position of the mark's item to the mark's end position.
//!
//! Between echoes the played position is interpolated: the caller side plays in real time, so
//! once mark `k` has been echoed, the piece after it has been playing since that echo —
//! provided the piece had already reached the caller side when mark `k`'s audio ended. The
//! tracker knows that when the piece was forwarded at least one round trip (plus
//! [`INTERPOLATION_MARGIN`]) before the echo arrived; the round trip is measured from the
//! echoes of pieces forwarded to an empty queue (forwarded at `s`, `d` long, echoed at `e`:
//! `e − s − d` covers the trip there, the caller side's start-up and the trip back). The
//! estimate never passes the end of the piece (its echo would have said so) and lags the
//! truth by the echo's transit time, so it errs on the side of "heard less". Without a
//! measured round trip, or for a piece that may have arrived late (an underrun), the played
//! position stays at the last echoed mark.
//!
//! Mark ids increase monotonically over the whole call, and the caller side plays (and echoes)
//! in order. Two consequences keep this allocation-free and O(1) per mark:
//!
//! * pending marks form a FIFO queue; an echo pops every mark up to and including its id (an
//!   echo means everything queued before it has played);
//! * after a clear, the marks that were pending are exactly the ids up to the last one
//!   allocated, so one watermark (`cleared_through`) identifies every stale echo, however many
//!   clears the call sees.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::caller::MarkId;
use crate::format::AudioFormat;

/// How much earlier than strictly needed (one measured round trip before the previous mark's
/// echo) a piece must have been forwarded for the played position to be interpolated into it:
/// headroom for jitter on the way to the caller side.
const INTERPOLATION_MARGIN: Duration = Duration::from_millis(20);

/// A mark sent and not echoed yet. 32 bytes: a call with seconds of audio queued at the
/// caller side holds dozens of these. Its id is not stored: pending ids are consecutive,
/// ending at [`Playout::last_mark`].
#[derive(Debug, Clone, Copy)]
struct PendingMark {
    /// The item's position at the end of the piece before this mark.
    end: u64,
    /// When the piece and its mark were forwarded, in nanoseconds after [`Playout::epoch`].
    sent_at: u64,
    /// The item's [`Item::seq`].
    item: u32,
    /// The piece's length in samples.
    samples: u32,
    /// Nothing was queued at the caller side when it was forwarded: its echo measures the
    /// round trip.
    to_empty_queue: bool,
}

const _: () = assert!(std::mem::size_of::<PendingMark>() == 32);

/// One item's playout state.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    seq: u32,
    pub(crate) response_id: Option<String>,
    pub(crate) item_id: Option<String>,
    /// Samples forwarded to the caller.
    pub(crate) sent: u64,
    /// Samples acknowledged as played by mark echoes (`played <= sent`).
    pub(crate) played: u64,
    /// Samples estimated as played at the clear: `played` plus the interpolation into the
    /// piece playing then (`played <= heard <= sent`). Set by [`Playout::clear`].
    pub(crate) heard: u64,
    /// No more audio will come for this item (audio done, or its response ended).
    pub(crate) done: bool,
}

impl Item {
    /// All of the item's audio has arrived and been heard.
    pub(crate) fn fully_played(&self) -> bool {
        self.done && self.played >= self.sent
    }

    fn matches(&self, response_id: Option<&str>, item_id: Option<&str>) -> bool {
        self.response_id.as_deref() == response_id && self.item_id.as_deref() == item_id
    }
}

/// The outcome of a mark echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Echo {
    /// The echo advanced the played position.
    Played,
    /// The mark was pending at a clear: its audio was discarded, not played. Ignored.
    Stale,
    /// Not a pending mark (a duplicate, or never sent). Ignored.
    Unknown,
}

/// The tracker.
#[derive(Debug, Default)]
pub(crate) struct Playout {
    /// The last mark allocated; the pending ones are the last `pending.len()` ids up to it.
    last_mark: u64,
    /// What [`PendingMark::sent_at`] counts from: the first forward's time.
    epoch: Option<Instant>,
    cleared_through: u64,
    pending: VecDeque<PendingMark>,
    items: Vec<Item>,
    next_item: u32,
    /// The format the positions count samples of (`None` until known: no interpolation).
    format: Option<AudioFormat>,
    /// When the last echo that advanced a position arrived (reset by a clear).
    last_echo: Option<Instant>,
    /// Round trip to the caller side's playout and back (rises at once with a slower sample,
    /// decays by an eighth of the difference with a faster one).
    round_trip: Option<Duration>,
}

impl Playout {
    /// Sets the format the positions count samples of, which interpolation needs.
    pub(crate) fn set_format(&mut self, format: AudioFormat) {
        self.format = Some(format);
    }

    /// The measured round trip, if any.
    pub(crate) fn round_trip(&self) -> Option<Duration> {
        self.round_trip
    }

    /// Records `samples` forwarded for an item at `now` and allocates the mark that follows
    /// them.
    pub(crate) fn forward(
        &mut self,
        response_id: Option<&str>,
        item_id: Option<&str>,
        samples: u64,
        now: Instant,
    ) -> MarkId {
        let to_empty_queue = self.pending.is_empty();
        let idx = match self
            .items
            .iter()
            .rposition(|it| !it.done && it.matches(response_id, item_id))
        {
            Some(idx) => idx,
            None => {
                self.next_item = self.next_item.wrapping_add(1);
                self.items.push(Item {
                    seq: self.next_item,
                    response_id: response_id.map(str::to_owned),
                    item_id: item_id.map(str::to_owned),
                    sent: 0,
                    played: 0,
                    heard: 0,
                    done: false,
                });
                self.items.len() - 1
            }
        };
        let item = &mut self.items[idx];
        item.sent += samples;
        self.last_mark += 1;
        let epoch = *self.epoch.get_or_insert(now);
        self.pending.push_back(PendingMark {
            end: item.sent,
            sent_at: u64::try_from(now.saturating_duration_since(epoch).as_nanos())
                .unwrap_or(u64::MAX),
            item: item.seq,
            // A piece is at most a few seconds of audio.
            samples: u32::try_from(samples).unwrap_or(u32::MAX),
            to_empty_queue,
        });
        MarkId(self.last_mark)
    }

    /// Handles a mark echo received at `now`.
    pub(crate) fn echo(&mut self, mark: MarkId, now: Instant) -> Echo {
        let id = mark.0;
        if id <= self.cleared_through {
            return Echo::Stale;
        }
        // Pending ids are consecutive and end at `last_mark`.
        let mut front_id = self.last_mark + 1 - self.pending.len() as u64;
        if self.pending.is_empty() || front_id > id {
            return Echo::Unknown;
        }
        while front_id <= id {
            let Some(front) = self.pending.pop_front() else {
                break;
            };
            if front_id == id && front.to_empty_queue {
                self.measure_round_trip(&front, now);
            }
            if let Some(item) = self.items.iter_mut().find(|it| it.seq == front.item) {
                item.played = item.played.max(front.end);
            }
            front_id += 1;
        }
        self.last_echo = Some(now);
        self.prune();
        Echo::Played
    }

    fn measure_round_trip(&mut self, mark: &PendingMark, now: Instant) {
        let Some(format) = self.format else { return };
        let playing = format.samples_to_duration(u64::from(mark.samples));
        let sample = now
            .saturating_duration_since(self.sent_at(mark))
            .saturating_sub(playing);
        self.round_trip = Some(match self.round_trip {
            Some(rtt) if sample < rtt => rtt - (rtt - sample) / 8,
            _ => sample,
        });
    }

    /// When `mark`'s piece was forwarded.
    fn sent_at(&self, mark: &PendingMark) -> Instant {
        // `epoch` is set by the first forward, so it is always there when a mark is.
        let epoch = self.epoch.unwrap_or_else(Instant::now);
        epoch + Duration::from_nanos(mark.sent_at)
    }

    /// The interpolated position at `now` of the piece playing (the first pending one), as
    /// `(item seq, position)`; `None` when it cannot be known to have been playing since the
    /// last echo. (A round trip is only measured once the format is known.)
    fn interpolated(&self, now: Instant) -> Option<(u32, u64)> {
        let front = self.pending.front()?;
        let echoed = self.last_echo?;
        let rtt = self.round_trip?;
        let format = self.format?;
        if self.sent_at(front) + rtt + INTERPOLATION_MARGIN > echoed {
            return None;
        }
        let samples = u64::from(front.samples);
        let into = format
            .duration_to_samples(now.saturating_duration_since(echoed))
            .min(samples);
        Some((front.item, front.end - samples + into))
    }

    /// The agent session was lost: its items keep playing (their marks still count) but
    /// belong to no session any more: complete, and without ids, so a later barge-in clears
    /// them without truncating an item the fresh session never had.
    pub(crate) fn session_lost(&mut self) {
        for item in &mut self.items {
            item.done = true;
            item.response_id = None;
            item.item_id = None;
        }
    }

    /// Marks an item's audio complete.
    pub(crate) fn item_done(&mut self, response_id: Option<&str>, item_id: Option<&str>) {
        for item in &mut self.items {
            if item.matches(response_id, item_id) {
                item.done = true;
            }
        }
        self.prune();
    }

    /// Marks every item of a response complete (the response ended).
    pub(crate) fn response_done(&mut self, response_id: &str) {
        for item in &mut self.items {
            if item.response_id.as_deref() == Some(response_id) {
                item.done = true;
            }
        }
        self.prune();
    }

    /// Marks are pending: agent audio is queued at the caller side.
    pub(crate) fn is_playing(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Number of marks pending.
    pub(crate) fn pending_marks(&self) -> usize {
        self.pending.len()
    }

    /// The clear at `now`: every pending mark becomes stale, and every tracked item is returned
    /// (in playout order, with its [`Item::heard`] estimate) and forgotten. Items fully played
    /// have already been dropped.
    pub(crate) fn clear(&mut self, now: Instant) -> (usize, Vec<Item>) {
        let interpolated = self.interpolated(now);
        for item in &mut self.items {
            item.heard = item.played;
            if let Some((seq, position)) = interpolated
                && seq == item.seq
            {
                item.heard = item.heard.max(position).min(item.sent);
            }
        }
        let cleared = self.pending.len();
        self.pending.clear();
        self.cleared_through = self.last_mark;
        self.last_echo = None;
        (cleared, std::mem::take(&mut self.items))
    }

    fn prune(&mut self) {
        self.items.retain(|it| !it.fully_played());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn echoes_advance_played_in_order() {
        let t0 = Instant::now();
        let mut p = Playout::default();
        let m1 = p.forward(Some("r"), Some("i"), 160, t0);
        let m2 = p.forward(Some("r"), Some("i"), 160, t0);
        assert_eq!((m1, m2), (MarkId(1), MarkId(2)));
        assert_eq!(p.echo(m1, t0), Echo::Played);
        assert_eq!(p.items[0].played, 160);
        assert_eq!(p.echo(m1, t0), Echo::Unknown);
        // An echo implies every earlier mark played.
        let m3 = p.forward(Some("r"), Some("i"), 80, t0);
        assert_eq!(p.echo(m3, t0), Echo::Played);
        assert_eq!(p.items[0].played, 400);
        assert!(!p.is_playing());
        p.item_done(Some("r"), Some("i"));
        assert!(p.items.is_empty());
    }

    #[test]
    fn clear_makes_pending_marks_stale() {
        let t0 = Instant::now();
        let mut p = Playout::default();
        let m1 = p.forward(Some("r"), Some("i"), 160, t0);
        let m2 = p.forward(Some("r"), Some("i"), 160, t0);
        p.echo(m1, t0);
        let (cleared, items) = p.clear(t0);
        assert_eq!(cleared, 1);
        assert_eq!(
            (items[0].sent, items[0].played, items[0].heard),
            (320, 160, 160)
        );
        assert_eq!(p.echo(m2, t0), Echo::Stale);
        let m3 = p.forward(Some("r2"), Some("j"), 160, t0);
        assert_eq!(m3, MarkId(3));
        assert_eq!(p.echo(m3, t0), Echo::Played);
    }

    /// 100 ms pieces of 8 kHz audio forwarded at 4× real time; the first echo measures a 30 ms
    /// round trip.
    fn queued_answer(t0: Instant) -> (Playout, Vec<MarkId>) {
        let mut p = Playout::default();
        p.set_format(AudioFormat::Mulaw8k);
        let marks = (0..5)
            .map(|i| p.forward(Some("r"), Some("i"), 800, ms(t0, 25 * i)))
            .collect();
        (p, marks)
    }

    #[test]
    fn round_trip_is_measured_from_a_piece_sent_to_an_empty_queue() {
        let t0 = Instant::now();
        let (mut p, marks) = queued_answer(t0);
        assert_eq!(p.round_trip(), None);
        p.echo(marks[0], ms(t0, 130));
        assert_eq!(p.round_trip(), Some(Duration::from_millis(30)));
        // Later pieces were sent to a busy queue: they measure nothing.
        p.echo(marks[1], ms(t0, 400));
        assert_eq!(p.round_trip(), Some(Duration::from_millis(30)));
        // A faster sample pulls the estimate down by an eighth of the difference; a slower one
        // raises it at once.
        let m = p.forward(Some("r2"), Some("j"), 800, ms(t0, 1000));
        p.clear(ms(t0, 1000));
        let m = MarkId(m.0 + 1);
        assert_eq!(p.forward(Some("r3"), Some("k"), 800, ms(t0, 2000)), m);
        p.echo(m, ms(t0, 2110));
        assert_eq!(p.round_trip(), Some(Duration::from_micros(27_500)));
        let m = p.forward(Some("r3"), Some("k"), 800, ms(t0, 3000));
        p.echo(m, ms(t0, 3150));
        assert_eq!(p.round_trip(), Some(Duration::from_millis(50)));
    }

    #[test]
    fn played_is_interpolated_into_the_piece_playing() {
        let t0 = Instant::now();
        let (mut p, marks) = queued_answer(t0);
        p.echo(marks[0], ms(t0, 130));
        p.echo(marks[1], ms(t0, 230));
        // 37 ms into the third piece (sent at 50 ms, long before the echo at 230 ms).
        let (_, items) = p.clear(ms(t0, 267));
        assert_eq!(items[0].played, 1600);
        assert_eq!(items[0].heard, 1600 + 37 * 8);
    }

    #[test]
    fn interpolation_stops_at_the_end_of_the_piece() {
        let t0 = Instant::now();
        let (mut p, marks) = queued_answer(t0);
        p.echo(marks[0], ms(t0, 130));
        p.echo(marks[1], ms(t0, 230));
        // The third piece's echo is overdue (in transit): never beyond its end.
        let (_, items) = p.clear(ms(t0, 400));
        assert_eq!(items[0].heard, 2400);
    }

    #[test]
    fn no_interpolation_without_a_round_trip() {
        let t0 = Instant::now();
        let mut p = Playout::default();
        p.set_format(AudioFormat::Mulaw8k);
        let _a = p.forward(Some("r"), Some("i"), 800, t0);
        let b = p.forward(Some("r"), Some("i"), 800, t0);
        // One echo for both pieces: the piece sent to the empty queue was not the one echoed,
        // so this measures nothing.
        p.echo(b, ms(t0, 230));
        assert_eq!(p.round_trip(), None);
        let _c = p.forward(Some("r"), Some("i"), 800, ms(t0, 240));
        let (_, items) = p.clear(ms(t0, 300));
        assert_eq!((items[0].played, items[0].heard), (1600, 1600));

        // With a round trip known, but before the answer's first echo: nothing is known to be
        // playing yet.
        let (mut p, marks) = queued_answer(t0);
        p.round_trip = Some(Duration::from_millis(30));
        let (_, items) = p.clear(ms(t0, 60));
        assert_eq!(items[0].heard, 0);
        assert_eq!(p.echo(marks[0], ms(t0, 130)), Echo::Stale);
    }

    #[test]
    fn a_piece_that_may_have_arrived_late_is_not_interpolated() {
        let t0 = Instant::now();
        let mut p = Playout::default();
        p.set_format(AudioFormat::Mulaw8k);
        let m1 = p.forward(Some("r"), Some("i"), 800, t0);
        p.echo(m1, ms(t0, 130));
        assert_eq!(p.round_trip(), Some(Duration::from_millis(30)));
        // The agent fell behind: the next piece left 10 ms before the previous one finished at
        // the caller side, less than a round trip. It may have started late (an underrun).
        let m2 = p.forward(Some("r"), Some("i"), 800, ms(t0, 200));
        let _m3 = p.forward(Some("r"), Some("i"), 800, ms(t0, 205));
        p.echo(m2, ms(t0, 210 + 130));
        let (_, items) = p.clear(ms(t0, 400));
        // Piece 3 was sent at 205 ms, 135 ms before echo 2: interpolated (60 ms into it).
        assert_eq!(items[0].heard, 1600 + 60 * 8);

        let mut p = Playout::default();
        p.set_format(AudioFormat::Mulaw8k);
        let m1 = p.forward(Some("r"), Some("i"), 800, t0);
        p.echo(m1, ms(t0, 130));
        let m2 = p.forward(Some("r"), Some("i"), 800, ms(t0, 140));
        let _m3 = p.forward(Some("r"), Some("i"), 800, ms(t0, 215));
        // Piece 3 left 25 ms before echo 2: less than round trip + margin.
        p.echo(m2, ms(t0, 240));
        let (_, items) = p.clear(ms(t0, 280));
        assert_eq!(items[0].heard, 1600);
    }
}
