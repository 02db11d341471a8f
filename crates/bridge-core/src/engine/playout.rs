//! Playout tracking: what was sent to the caller, what the caller has heard, and which mark
//! echoes to ignore after a clear.
//!
//! Positions are counted in samples of the agent's output format, per item (response id + item
//! id). Every forwarded piece of agent audio is followed by a uniquely numbered mark; the
//! caller side echoes a mark once everything queued before it has played, so an echo advances
//! the `played` position of the mark's item to the mark's end position.
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

use crate::caller::MarkId;

#[derive(Debug, Clone, Copy)]
struct PendingMark {
    id: u64,
    item: u64,
    end: u64,
}

/// One item's playout state.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    seq: u64,
    pub(crate) response_id: Option<String>,
    pub(crate) item_id: Option<String>,
    /// Samples forwarded to the caller.
    pub(crate) sent: u64,
    /// Samples acknowledged as played by mark echoes (`played <= sent`).
    pub(crate) played: u64,
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
    last_mark: u64,
    cleared_through: u64,
    pending: VecDeque<PendingMark>,
    items: Vec<Item>,
    next_item: u64,
}

impl Playout {
    /// Records `samples` forwarded for an item and allocates the mark that follows them.
    pub(crate) fn forward(
        &mut self,
        response_id: Option<&str>,
        item_id: Option<&str>,
        samples: u64,
    ) -> MarkId {
        let idx = match self
            .items
            .iter()
            .rposition(|it| !it.done && it.matches(response_id, item_id))
        {
            Some(idx) => idx,
            None => {
                self.next_item += 1;
                self.items.push(Item {
                    seq: self.next_item,
                    response_id: response_id.map(str::to_owned),
                    item_id: item_id.map(str::to_owned),
                    sent: 0,
                    played: 0,
                    done: false,
                });
                self.items.len() - 1
            }
        };
        let item = &mut self.items[idx];
        item.sent += samples;
        self.last_mark += 1;
        self.pending.push_back(PendingMark {
            id: self.last_mark,
            item: item.seq,
            end: item.sent,
        });
        MarkId(self.last_mark)
    }

    /// Handles a mark echo.
    pub(crate) fn echo(&mut self, mark: MarkId) -> Echo {
        let id = mark.0;
        if id <= self.cleared_through {
            return Echo::Stale;
        }
        match self.pending.front() {
            Some(front) if front.id <= id => {}
            _ => return Echo::Unknown,
        }
        while let Some(front) = self.pending.front().copied() {
            if front.id > id {
                break;
            }
            self.pending.pop_front();
            if let Some(item) = self.items.iter_mut().find(|it| it.seq == front.item) {
                item.played = item.played.max(front.end);
            }
        }
        self.prune();
        Echo::Played
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

    /// The clear: every pending mark becomes stale, and every tracked item is returned (in
    /// playout order) and forgotten. Items fully played have already been dropped.
    pub(crate) fn clear(&mut self) -> (usize, Vec<Item>) {
        let cleared = self.pending.len();
        self.pending.clear();
        self.cleared_through = self.last_mark;
        (cleared, std::mem::take(&mut self.items))
    }

    fn prune(&mut self) {
        self.items.retain(|it| !it.fully_played());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_advance_played_in_order() {
        let mut p = Playout::default();
        let m1 = p.forward(Some("r"), Some("i"), 160);
        let m2 = p.forward(Some("r"), Some("i"), 160);
        assert_eq!((m1, m2), (MarkId(1), MarkId(2)));
        assert_eq!(p.echo(m1), Echo::Played);
        assert_eq!(p.items[0].played, 160);
        assert_eq!(p.echo(m1), Echo::Unknown);
        // An echo implies every earlier mark played.
        let m3 = p.forward(Some("r"), Some("i"), 80);
        assert_eq!(p.echo(m3), Echo::Played);
        assert_eq!(p.items[0].played, 400);
        assert!(!p.is_playing());
        p.item_done(Some("r"), Some("i"));
        assert!(p.items.is_empty());
    }

    #[test]
    fn clear_makes_pending_marks_stale() {
        let mut p = Playout::default();
        let m1 = p.forward(Some("r"), Some("i"), 160);
        let m2 = p.forward(Some("r"), Some("i"), 160);
        p.echo(m1);
        let (cleared, items) = p.clear();
        assert_eq!(cleared, 1);
        assert_eq!((items[0].sent, items[0].played), (320, 160));
        assert_eq!(p.echo(m2), Echo::Stale);
        let m3 = p.forward(Some("r2"), Some("j"), 160);
        assert_eq!(m3, MarkId(3));
        assert_eq!(p.echo(m3), Echo::Played);
    }
}
