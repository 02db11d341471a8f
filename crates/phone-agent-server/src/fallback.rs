//! The fallback after the media stream: never silent when a call fails.
//!
//! Which end is normal ([`is_normal`]), the fallback's verbs ([`fallback_twiml`]) and, for a
//! server without a call store, this instance's memory of how its calls ended ([`CallEnds`]).
//! The route that plays them is `/voice/next` ([`crate::handover`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bridge_core::engine::EndReason;
use twilio_media::twiml;

use crate::config::{FallbackAction, FallbackConfig};
use crate::store::StreamOutcome;

/// How long an ended call's reason is remembered for its redirect (Twilio requests it right
/// after the stream closed).
const REMEMBER: Duration = Duration::from_secs(300);
/// The most ended calls remembered (a bound on memory); beyond it, unknown calls get the
/// fallback, which errs on the side of saying something.
const MAX_REMEMBERED: usize = 65_536;

/// Whether a call that ended for `reason` ended normally (no fallback).
pub(crate) fn is_normal(reason: Option<EndReason>) -> bool {
    matches!(
        reason,
        Some(
            EndReason::CallerHungUp
                | EndReason::HungUpByAgent
                | EndReason::Transferred
                | EndReason::Idle
                | EndReason::MaxDuration
        )
    )
}

/// The recent calls of this instance and whether each ended normally.
#[derive(Debug, Default)]
pub(crate) struct CallEnds {
    inner: Mutex<HashMap<String, (StreamOutcome, Instant)>>,
}

impl CallEnds {
    /// Records how `call_sid`'s stream ended (the handover states are never kept here: there
    /// is no handover without a call store).
    pub(crate) fn record(&self, call_sid: &str, outcome: StreamOutcome, now: Instant) {
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_REMEMBERED {
            map.retain(|_, (_, at)| now.duration_since(*at) < REMEMBER);
        }
        if map.len() < MAX_REMEMBERED {
            map.insert(call_sid.to_owned(), (outcome, now));
        }
    }

    /// How `call_sid`'s stream ended and when that was recorded; `None` when unknown here.
    pub(crate) fn outcome(&self, call_sid: &str) -> Option<(StreamOutcome, Instant)> {
        let map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(call_sid).copied()
    }
}

/// The fallback verbs: the line, then hang up or dial.
pub(crate) fn fallback_twiml(config: &FallbackConfig) -> twiml::Response {
    let mut response = twiml::Response::new();
    if let Some(line) = &config.say {
        response = response.say(line.as_str());
    }
    match &config.action {
        FallbackAction::Hangup => response.hangup(),
        FallbackAction::Dial(number) => response.dial(twiml::Dial::number(number.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_remembered_and_classified() {
        let ends = CallEnds::default();
        let now = Instant::now();
        ends.record("CA1", StreamOutcome::Normal, now);
        ends.record("CA2", StreamOutcome::Failed, now);
        assert_eq!(ends.outcome("CA1"), Some((StreamOutcome::Normal, now)));
        assert_eq!(ends.outcome("CA2"), Some((StreamOutcome::Failed, now)));
        assert_eq!(ends.outcome("CA3"), None);
        assert!(!is_normal(None));
        assert!(!is_normal(Some(EndReason::Shutdown)));
        assert!(!is_normal(Some(EndReason::AgentFailed)));
        assert!(is_normal(Some(EndReason::Idle)));
    }

    #[test]
    fn the_fallback_says_then_hangs_up_or_dials() {
        let hangup = FallbackConfig {
            enabled: true,
            say: Some("Sorry & goodbye.".into()),
            action: FallbackAction::Hangup,
        };
        assert!(
            fallback_twiml(&hangup)
                .to_xml()
                .ends_with("<Response><Say>Sorry &amp; goodbye.</Say><Hangup/></Response>")
        );
        let dial = FallbackConfig {
            enabled: true,
            say: None,
            action: FallbackAction::Dial("+15551234567".into()),
        };
        assert!(
            fallback_twiml(&dial)
                .to_xml()
                .ends_with("<Response><Dial>+15551234567</Dial></Response>")
        );
    }
}
