//! `twilio_media::stream::parse` on arbitrary text frames (what Twilio, or anyone who reaches
//! the Media Stream WebSocket, sends us).
//!
//! Invariants checked on every input that parses:
//! * a borrowed `media.payload` / `mark.name` is a slice of the input text, and
//!   `Media::payload_range` locates exactly that slice;
//! * `Media::decoded_len()` equals the length base64 decoding yields (when it decodes);
//! * `into_owned()` is equal to the borrowed event, and the accessors agree with the variant;
//! * an unknown event's name is the `event` member of the raw JSON it keeps (unless the
//!   object repeats a member name);
//! * parsing is deterministic.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use twilio_media::stream::{self, Event};

fuzz_target!(|data: &[u8]| {
    // Frames arrive as WebSocket text, which is UTF-8; a lossy conversion still lets
    // non-UTF-8 mutations exercise the parser.
    let text = String::from_utf8_lossy(data);
    let text: &str = &text;
    let Ok(event) = stream::parse(text) else {
        return;
    };

    // Deterministic.
    let again = stream::parse(text).expect("a frame that parsed once parses again");
    assert_eq!(event, again);

    // Accessors agree with the variant.
    let name = event.name().to_owned();
    match &event {
        Event::Connected(_) => {
            assert_eq!(name, "connected");
            assert!(event.stream_sid().is_none() && event.sequence_number().is_none());
        }
        Event::Start(start) => {
            assert_eq!(name, "start");
            assert_eq!(event.sequence_number(), Some(start.sequence_number));
            for (key, value) in &start.custom_parameters {
                assert_eq!(start.parameter(key), Some(&**value));
            }
            let _ = start.media_format.is_mulaw_8k_mono();
        }
        Event::Media(media) => {
            assert_eq!(name, "media");
            assert_eq!(event.sequence_number(), Some(media.sequence_number));
            assert_eq!(event.stream_sid(), Some(&media.stream_sid));
            let _ = media.track.as_str();
            check_media_payload(text, media);
        }
        Event::Mark(mark) => {
            assert_eq!(name, "mark");
            if let std::borrow::Cow::Borrowed(n) = &mark.name {
                assert!(
                    is_within(text, n),
                    "borrowed mark name is not a slice of the input"
                );
            }
        }
        Event::Dtmf(dtmf) => {
            assert_eq!(name, "dtmf");
            let _ = dtmf.track.as_str();
        }
        Event::Stop(stop) => {
            assert_eq!(name, "stop");
            assert_eq!(event.sequence_number(), Some(stop.sequence_number));
        }
        Event::Unknown { event: tag, raw } => {
            assert_eq!(&name, tag);
            assert!(
                raw.is_object(),
                "an unknown event keeps the whole JSON object"
            );
            // Except when the object repeats a member name: the name comes from the first
            // `event`, the raw JSON keeps the last (see `has_duplicate_keys`; reported).
            if !phone_agent_fuzz::has_duplicate_keys(text) {
                assert_eq!(
                    raw.get("event").and_then(serde_json::Value::as_str),
                    Some(tag.as_str()),
                    "an unknown event's name differs from its raw `event`"
                );
            }
            assert!(
                !matches!(
                    tag.as_str(),
                    "connected" | "start" | "media" | "mark" | "dtmf" | "stop"
                ),
                "known event {tag:?} parsed as Unknown"
            );
        }
        _ => {}
    }

    // Detaching changes nothing.
    let owned = event.clone().into_owned();
    assert_eq!(owned, event);
});

fn check_media_payload(text: &str, media: &stream::Media<'_>) {
    match media.borrowed_payload() {
        Some(payload) => {
            assert!(
                is_within(text, payload),
                "borrowed payload is not a slice of the input"
            );
            let range = media
                .payload_range(text)
                .expect("a borrowed payload has a range in its own text");
            assert_eq!(&text[range], payload);
        }
        None => assert!(media.payload_range(text).is_none()),
    }
    if let Ok(decoded) = STANDARD.decode(media.payload.as_bytes()) {
        assert_eq!(
            media.decoded_len(),
            decoded.len(),
            "decoded_len disagrees with base64 decoding of {:?}",
            media.payload
        );
    }
}

/// True when `part` points inside `whole` (pointer containment, not substring search).
fn is_within(whole: &str, part: &str) -> bool {
    let start = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    p >= start && p + part.len() <= start + whole.len()
}
