//! The turn-taking part of a call: which response is running, the `response.create` we sent
//! and the one we hold back, failed-response retries, and which responses and items were
//! interrupted (their late audio is dropped).
//!
//! One response at a time: a request of ours is *pending* from the moment it is sent until the
//! agent reports a response started; while a response is pending or running, another request
//! is held back (merged into one) and released by [`Turns::next_request`] once nothing runs.
//! A request the agent refused because a response was already running is held back again
//! ([`Turns::refused`]). A failed response is asked for once more, then the apology once.
//!
//! Interrupted responses and items are remembered as [`IdKey`]s — 64-bit keys of their ids,
//! compared as integers — in small bounded rings.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use super::LatencyTrigger;
use crate::agent::ResponseStatus;

/// How many discarded response/item ids to remember (late audio only comes for recent ones).
const DISCARD_MEMORY: usize = 32;

/// A `response.create` of ours: its instructions and what triggered it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Requested {
    pub(crate) instructions: Option<String>,
    pub(crate) trigger: LatencyTrigger,
}

/// A response or item id as a fixed-size key (SipHash with fixed keys: deterministic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdKey(u64);

impl IdKey {
    pub(crate) fn of(id: &str) -> IdKey {
        let mut hasher = std::hash::DefaultHasher::new();
        id.hash(&mut hasher);
        IdKey(hasher.finish())
    }
}

/// A bounded set of recent keys (oldest forgotten first).
#[derive(Debug, Default)]
struct Recent(VecDeque<IdKey>);

impl Recent {
    fn contains(&self, key: IdKey) -> bool {
        self.0.contains(&key)
    }

    fn insert(&mut self, key: IdKey) {
        if !self.contains(key) {
            if self.0.len() == DISCARD_MEMORY {
                self.0.pop_front();
            }
            self.0.push_back(key);
        }
    }
}

#[derive(Debug)]
struct ActiveResponse {
    id: String,
    key: IdKey,
    sent_audio: bool,
    /// What we asked for, if we requested this response (retried as is if it fails).
    requested: Option<Requested>,
}

/// Responses and requests. See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Turns {
    active: Option<ActiveResponse>,
    /// Sent and not started yet.
    pending: Option<Requested>,
    /// Held back until nothing is pending or running.
    deferred: Option<Requested>,
    /// Failed responses in a row (reset by a completed one): 1 → retried, 2 → apology.
    failed_streak: u8,
    discarded_responses: Recent,
    discarded_items: Recent,
}

impl Turns {
    /// A request: `Some` to send now, `None` when it was held back.
    pub(crate) fn request(&mut self, request: Requested) -> Option<Requested> {
        if self.active.is_some() || self.pending.is_some() {
            // A second `response.create` before the first one's `response.done` would be
            // refused by the agent.
            self.defer(request);
            return None;
        }
        Some(request)
    }

    /// The request was sent; `track` unless the agent has no response boundaries (GPT-Live)
    /// to clear it by.
    pub(crate) fn sent(&mut self, request: &Requested, track: bool) {
        if track {
            self.pending = Some(request.clone());
        }
    }

    /// Holds a request back (merged with one already held: the first instructions win, a
    /// plain request adopts later ones).
    fn defer(&mut self, request: Requested) {
        match &mut self.deferred {
            Some(existing) => {
                if existing.instructions.is_none() {
                    existing.instructions = request.instructions;
                }
            }
            None => self.deferred = Some(request),
        }
    }

    /// The held-back request, once nothing is pending or running.
    pub(crate) fn next_request(&mut self) -> Option<Requested> {
        if self.active.is_some() || self.pending.is_some() {
            return None;
        }
        self.deferred.take()
    }

    /// The caller started a turn the agent answers by itself: a held-back request is dropped
    /// (true if there was one) and one in flight is answered as part of that turn.
    pub(crate) fn caller_took_turn(&mut self) -> bool {
        self.pending = None;
        self.deferred.take().is_some()
    }

    /// The agent refused our request (a response was already running): hold it back until
    /// that response is done. True if there was one.
    pub(crate) fn refused(&mut self) -> bool {
        // If a response started meanwhile, it was the agent's own, not ours.
        let request = self
            .pending
            .take()
            .or_else(|| self.active.as_mut().and_then(|a| a.requested.take()));
        match request {
            Some(request) => {
                self.defer(request);
                true
            }
            None => false,
        }
    }

    /// A response started (ours, if one was pending).
    pub(crate) fn started(&mut self, id: String) {
        self.active = Some(ActiveResponse {
            key: IdKey::of(&id),
            id,
            sent_audio: false,
            requested: self.pending.take(),
        });
    }

    /// A response ended. A failed one is asked for again once (as it was requested), then
    /// `apology` once; the request is held until [`Turns::next_request`].
    pub(crate) fn done(&mut self, id: &str, status: &ResponseStatus, apology: Option<&str>) {
        let mut requested = None;
        if self.active.as_ref().is_some_and(|a| a.id == id) {
            requested = self.active.take().and_then(|a| a.requested);
        }
        match status {
            ResponseStatus::Completed => self.failed_streak = 0,
            ResponseStatus::Failed(_) => {
                self.failed_streak = self.failed_streak.saturating_add(1);
                let trigger = requested
                    .as_ref()
                    .map_or(LatencyTrigger::CallerStoppedSpeaking, |r| r.trigger);
                let retry = match self.failed_streak {
                    // Once, as it was asked for (the agent's own turn: a plain request).
                    1 => Some(requested.and_then(|r| r.instructions)),
                    2 => apology.map(|a| Some(a.to_owned())),
                    _ => None,
                };
                if let Some(instructions) = retry {
                    self.defer(Requested {
                        instructions,
                        trigger,
                    });
                }
            }
            ResponseStatus::Cancelled | ResponseStatus::Incomplete => {}
        }
    }

    /// A response of ours is pending or a response is running: the agent owes us events.
    pub(crate) fn awaits_agent(&self) -> bool {
        self.active.is_some() || self.pending.is_some()
    }

    /// Nothing running, pending or held back.
    pub(crate) fn is_idle(&self) -> bool {
        self.active.is_none() && self.pending.is_none() && self.deferred.is_none()
    }

    /// The running response unless a barge-in already discarded it: its id and whether it
    /// has sent audio.
    pub(crate) fn live_active(&self) -> Option<(&str, bool)> {
        self.active
            .as_ref()
            .filter(|a| !self.discarded_responses.contains(a.key))
            .map(|a| (a.id.as_str(), a.sent_audio))
    }

    /// Audio of `response_id` is being forwarded.
    pub(crate) fn audio_sent(&mut self, response_id: Option<&str>) {
        if let Some(active) = &mut self.active
            && response_id == Some(active.id.as_str())
        {
            active.sent_audio = true;
        }
    }

    /// True if audio of this response or item must be dropped (it was interrupted).
    pub(crate) fn is_discarded(&self, response_id: Option<&str>, item_id: Option<&str>) -> bool {
        (!self.discarded_responses.0.is_empty()
            && response_id.is_some_and(|r| self.discarded_responses.contains(IdKey::of(r))))
            || (!self.discarded_items.0.is_empty()
                && item_id.is_some_and(|i| self.discarded_items.contains(IdKey::of(i))))
    }

    /// Drop the rest of this response's audio.
    pub(crate) fn discard_response(&mut self, id: &str) {
        self.discarded_responses.insert(IdKey::of(id));
    }

    /// Drop the rest of this item's audio (protocols without response ids).
    pub(crate) fn discard_item(&mut self, id: &str) {
        self.discarded_items.insert(IdKey::of(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(instructions: Option<&str>) -> Requested {
        Requested {
            instructions: instructions.map(Into::into),
            trigger: LatencyTrigger::ToolResults,
        }
    }

    #[test]
    fn one_request_at_a_time() {
        let mut turns = Turns::default();
        let first = turns.request(req(None)).expect("sent at once");
        turns.sent(&first, true);
        // Pending (sent, not started): the next one waits, merged with a third.
        assert_eq!(turns.request(req(None)), None);
        assert_eq!(turns.request(req(Some("x"))), None);
        assert_eq!(turns.next_request(), None);
        turns.started("r1".into());
        assert_eq!(turns.next_request(), None);
        turns.done("r1", &ResponseStatus::Completed, None);
        assert_eq!(turns.next_request(), Some(req(Some("x"))));
        assert!(turns.is_idle());
    }

    #[test]
    fn untracked_requests_do_not_block() {
        let mut turns = Turns::default();
        turns.sent(&req(None), false);
        assert_eq!(turns.request(req(None)), Some(req(None)));
    }

    #[test]
    fn a_refused_request_is_held_until_the_running_response_ends() {
        let mut turns = Turns::default();
        turns.sent(&req(Some("a")), true);
        // The agent's own response starts, and takes our request's place…
        turns.started("own".into());
        // …until the refusal says otherwise.
        assert!(turns.refused());
        assert_eq!(turns.next_request(), None);
        turns.done("own", &ResponseStatus::Completed, None);
        assert_eq!(turns.next_request(), Some(req(Some("a"))));
        assert!(!turns.refused());
    }

    #[test]
    fn failed_responses_are_retried_once_then_apologized_for() {
        let mut turns = Turns::default();
        let failed = ResponseStatus::Failed("x".into());
        turns.sent(&req(Some("a")), true);
        turns.started("r1".into());
        turns.done("r1", &failed, Some("sorry"));
        assert_eq!(turns.next_request(), Some(req(Some("a"))));
        turns.started("r2".into());
        turns.done("r2", &failed, Some("sorry"));
        assert_eq!(
            turns.next_request().and_then(|r| r.instructions).as_deref(),
            Some("sorry")
        );
        turns.started("r3".into());
        turns.done("r3", &failed, Some("sorry"));
        assert_eq!(turns.next_request(), None);
    }

    #[test]
    fn discarded_ids_are_remembered_boundedly() {
        let mut turns = Turns::default();
        assert!(!turns.is_discarded(Some("r0"), Some("i0")));
        turns.started("r0".into());
        turns.audio_sent(Some("r0"));
        assert_eq!(turns.live_active(), Some(("r0", true)));
        turns.discard_response("r0");
        turns.discard_item("i9");
        assert_eq!(turns.live_active(), None);
        assert!(turns.is_discarded(Some("r0"), None));
        assert!(turns.is_discarded(None, Some("i9")));
        for n in 1..=DISCARD_MEMORY {
            turns.discard_response(&format!("r{n}"));
        }
        assert!(
            !turns.is_discarded(Some("r0"), None),
            "the oldest is forgotten"
        );
        assert!(turns.is_discarded(Some("r1"), None));
        assert!(!turns.caller_took_turn());
    }
}
