//! `openai_realtime::realtime::ServerEvent::parse` (OpenAI Realtime GA) on arbitrary frames.
//!
//! Invariants on every frame that parses (the round trip only for frames whose objects do
//! not repeat a member name; see `phone_agent_fuzz::has_duplicate_keys`):
//! * `parse_owned` and `into_owned` give the same event;
//! * the event re-serialized with `to_json` parses again, to the same event type, and
//!   serializing that gives the same JSON (a fixed point after one trip, up to float ulps:
//!   see `phone_agent_fuzz::json_eq_modulo_float_ulps`);
//! * a borrowed audio delta is a slice of the input.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use openai_realtime::realtime::ServerEvent;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;
    let Ok(event) = ServerEvent::parse(text) else {
        return;
    };
    let _ = event.event_id();
    if let ServerEvent::OutputAudioDelta(delta) = &event
        && let Cow::Borrowed(d) = &delta.delta
    {
        let (start, p) = (text.as_ptr() as usize, d.as_ptr() as usize);
        assert!(p >= start && p + d.len() <= start + text.len());
    }

    let owned = ServerEvent::parse_owned(text).expect("parse_owned agrees with parse");
    assert_eq!(owned, event.clone().into_owned());

    // Repeated member names make the raw fallbacks legitimately change meaning through a
    // round trip (see `has_duplicate_keys`); the round trip is checked on all other input.
    if phone_agent_fuzz::has_duplicate_keys(text) {
        return;
    }
    let json = event.to_json();
    let reparsed = ServerEvent::parse(&json).unwrap_or_else(|e| {
        panic!(
            "re-serialized {:?} does not parse: {e}\n{json}",
            event.event_type()
        )
    });
    assert_eq!(
        reparsed.event_type(),
        event.event_type(),
        "event type changed through a round trip:\n{json}"
    );
    phone_agent_fuzz::assert_same_json(&json, &reparsed.to_json());
});
