//! The fallback after the media stream: never silent when a call fails.
//!
//! The `/voice` TwiML ends with `<Redirect method="POST">PUBLIC/voice/fallback</Redirect>`
//! after `</Connect>`. Twilio runs it only when the stream ended while the call is still up
//! (PROTOCOLS.md §2, §5.6): when the caller hung up, the call is gone and nothing runs. It runs
//! when the server closed the stream, which is either a normal end (the agent hung up without
//! REST call control, an idle caller, the maximum duration) or a failure (the agent could not
//! connect or died, the server shut down). `POST /voice/fallback` (signed like `/voice`) tells
//! them apart from the call's end reason, which this instance recorded when the call ended:
//!
//! * normal end → `<Hangup/>` (nothing is said);
//! * failure, or a call this instance does not know (it crashed, or the stream ran on another
//!   instance behind a load balancer) → the configured `[fallback]`: `<Say>` the line, then
//!   `<Hangup/>` or `<Dial>` a fallback number.
//!
//! A transfer or hang-up through Twilio's REST API replaces the call's TwiML, so the redirect
//! does not run then either.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bridge_core::engine::EndReason;
use http::{Request, Response};
use hyper::body::Incoming;
use twilio_media::twiml;

use crate::config::{FallbackAction, FallbackConfig};
use crate::routes::{self, Body};
use crate::server::AppState;

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
    inner: Mutex<HashMap<String, (bool, Instant)>>,
}

impl CallEnds {
    /// Records how `call_sid` ended.
    pub(crate) fn record(&self, call_sid: &str, normal: bool, now: Instant) {
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_REMEMBERED {
            map.retain(|_, (_, at)| now.duration_since(*at) < REMEMBER);
        }
        if map.len() < MAX_REMEMBERED {
            map.insert(call_sid.to_owned(), (normal, now));
        }
    }

    /// Whether `call_sid` ended normally; `None` when unknown here.
    pub(crate) fn ended_normally(&self, call_sid: &str) -> Option<bool> {
        let map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(call_sid).map(|(normal, _)| *normal)
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

/// `POST /voice/fallback`.
pub(crate) async fn handle(state: &AppState, req: Request<Incoming>) -> Response<Body> {
    let (_, params) = match crate::voice::read_signed(state, req, "/voice/fallback").await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let call_sid = params
        .iter()
        .find(|(k, _)| k == "CallSid")
        .map_or("", |(_, v)| v.as_str());
    let normal = state.call_ends.ended_normally(call_sid);
    if normal == Some(true) {
        tracing::info!(call_sid, "stream ended normally: hanging up");
        return routes::twiml(twiml::Response::new().hangup().to_xml());
    }
    tracing::warn!(
        call_sid,
        known = normal.is_some(),
        "the call's stream ended abnormally: playing the fallback"
    );
    crate::telemetry::error("fallback_played");
    routes::twiml(fallback_twiml(&state.config.fallback).to_xml())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_remembered_and_classified() {
        let ends = CallEnds::default();
        let now = Instant::now();
        ends.record("CA1", is_normal(Some(EndReason::HungUpByAgent)), now);
        ends.record("CA2", is_normal(Some(EndReason::AgentConnectFailed)), now);
        assert_eq!(ends.ended_normally("CA1"), Some(true));
        assert_eq!(ends.ended_normally("CA2"), Some(false));
        assert_eq!(ends.ended_normally("CA3"), None);
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
