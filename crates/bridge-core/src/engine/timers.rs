//! The call's timer table: every deadline of a call in one place, keyed by [`Timer`].
//!
//! A part of the engine arms ([`Timers::set`]) or disarms ([`Timers::stop`]) its own entry
//! when its state changes; [`Timers::next`] (the engine's `poll_timeout`) is the minimum of the
//! table and [`Timers::take_expired`] hands out the expired entries one by one, in the order of
//! the enum (the ones that end the call first). No deadline is ever recomputed from state: what
//! is in the table is what fires.

use std::time::Instant;

/// One deadline of a call. The declaration order is the firing order when several have expired
/// at the same `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// [`super::CallConfig::max_duration`] after the start.
    MaxDuration,
    /// [`super::CallConfig::agent_connect_timeout`] after the start, until the agent is ready.
    AgentConnect,
    /// [`super::CallConfig::agent_response_timeout`] after the last agent event, while a
    /// response is requested or running.
    AgentResponse,
    /// [`super::CallConfig::caller_inactivity_timeout`] after the last caller audio.
    CallerInactivity,
    /// The guard of a pending call action: its goodbye was not heard in time.
    Goodbye,
    /// The caller has been speaking for [`super::CallConfig::min_barge_in_speech`]: interrupt.
    BargeIn,
    /// The caller stayed silent after the agent finished ([`super::IdleConfig`]).
    Idle,
    /// The next agent reconnect attempt is due (backoff).
    Reconnect,
    /// The hold audio of a reconnect gap has played: send it again.
    Hold,
    /// The session reached [`super::ReconnectConfig::recycle_after`]: recycle at a pause.
    Recycle,
    /// The next attempt at a standby session for recycling is due (backoff).
    Standby,
    /// The bounded wait for a pause before a handover ([`super::CallConfig::handover`]) ran
    /// out: hand over anyway.
    Handover,
}

const COUNT: usize = 12;
const ALL: [Timer; COUNT] = [
    Timer::MaxDuration,
    Timer::AgentConnect,
    Timer::AgentResponse,
    Timer::CallerInactivity,
    Timer::Goodbye,
    Timer::BargeIn,
    Timer::Idle,
    Timer::Reconnect,
    Timer::Hold,
    Timer::Recycle,
    Timer::Standby,
    Timer::Handover,
];

/// The table: at most one deadline per [`Timer`].
#[derive(Debug, Default, Clone)]
pub(crate) struct Timers {
    at: [Option<Instant>; COUNT],
}

impl Timers {
    /// Arms `timer` for `at` (replacing its previous deadline).
    #[inline]
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = Some(at);
    }

    /// Disarms `timer`.
    #[inline]
    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    /// True if `timer` is armed.
    #[inline]
    pub(crate) fn is_armed(&self, timer: Timer) -> bool {
        self.at[timer as usize].is_some()
    }

    /// Disarms everything (the call ended).
    pub(crate) fn clear(&mut self) {
        self.at = [None; COUNT];
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// Disarms and returns the first timer (in firing order) whose deadline is at or before
    /// `now`.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = ALL
            .into_iter()
            .find(|t| self.at[*t as usize].is_some_and(|at| at <= now))?;
        self.stop(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn next_is_the_minimum_and_expired_entries_fire_in_order() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut timers = Timers::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::Idle, ms(50));
        timers.set(Timer::MaxDuration, ms(80));
        timers.set(Timer::Goodbye, ms(50));
        assert_eq!(timers.next(), Some(ms(50)));
        assert_eq!(timers.take_expired(ms(49)), None);
        // Both expired at 50: the goodbye (declared first) fires first.
        assert_eq!(timers.take_expired(ms(60)), Some(Timer::Goodbye));
        assert_eq!(timers.take_expired(ms(60)), Some(Timer::Idle));
        assert_eq!(timers.take_expired(ms(60)), None);
        assert_eq!(timers.next(), Some(ms(80)));
        timers.set(Timer::MaxDuration, ms(90));
        assert_eq!(timers.next(), Some(ms(90)));
        timers.stop(Timer::MaxDuration);
        assert!(!timers.is_armed(Timer::MaxDuration));
        timers.set(Timer::BargeIn, ms(1));
        timers.clear();
        assert_eq!(timers.next(), None);
    }
}
