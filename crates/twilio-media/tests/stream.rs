//! Media Streams messages: inbound parsing and outbound serialization.

use std::borrow::Cow;
use std::collections::BTreeMap;

use twilio_media::stream::{
    self, Connected, Dtmf, Event, Mark, Media, MediaFormat, Outbound, Start, Stop, StreamError,
    Track,
};
use twilio_media::{AccountSid, CallSid, StreamSid};

const MZ: &str = "MZ00000000000000000000000000000001";
const AC: &str = "AC00000000000000000000000000000001";
const CA: &str = "CA00000000000000000000000000000001";

/// Parses `input` and compares with `expected`.
#[track_caller]
fn check(input: &str, expected: Event<'_>) {
    match stream::parse(input) {
        Ok(event) => assert_eq!(event, expected, "input: {input}"),
        Err(e) => panic!("{input}\n  failed: {e}"),
    }
}

/// Parses `input` and compares the error message with `expected` (without serde_json's
/// trailing " at line L column C", which is checked to be present for field errors).
#[track_caller]
fn check_err(input: &str, expected: &str) {
    match stream::parse(input) {
        Ok(event) => panic!("{input}\n  parsed as {event:?}, expected error {expected:?}"),
        Err(e) => {
            let message = e.to_string();
            let (message, position) = match message.rsplit_once(" at line 1 column ") {
                Some((m, column)) => (m.to_owned(), column.parse::<usize>().ok()),
                None => (message, None),
            };
            assert_eq!(message, expected, "input: {input}");
            if matches!(e, StreamError::InvalidField { .. }) {
                assert!(position.is_some_and(|c| c <= input.len()), "{e}");
            }
        }
    }
}

fn media(seq: u64, chunk: u64, timestamp: u64, payload: &str) -> Event<'_> {
    Event::Media(Media {
        sequence_number: seq,
        stream_sid: StreamSid::new(MZ),
        track: Track::Inbound,
        chunk,
        timestamp,
        payload: Cow::Borrowed(payload),
    })
}

fn start_event(custom: &[(&'static str, &'static str)]) -> Event<'static> {
    Event::Start(Start {
        sequence_number: 1,
        stream_sid: StreamSid::new(MZ),
        account_sid: AccountSid::new(AC),
        call_sid: CallSid::new(CA),
        tracks: vec![Track::Inbound],
        custom_parameters: custom
            .iter()
            .map(|&(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
            .collect::<BTreeMap<_, _>>(),
        media_format: MediaFormat {
            encoding: "audio/x-mulaw".into(),
            sample_rate: 8000,
            channels: 1,
        },
    })
}

#[test]
fn connected() {
    check(
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
        Event::Connected(Connected {
            protocol: "Call".into(),
            version: "1.0.0".into(),
        }),
    );
}

#[test]
fn start_with_all_fields() {
    let text = r#"{
      "event": "start",
      "sequenceNumber": "1",
      "streamSid": "MZ00000000000000000000000000000001",
      "start": {
        "streamSid": "MZ00000000000000000000000000000001",
        "accountSid": "AC00000000000000000000000000000001",
        "callSid": "CA00000000000000000000000000000001",
        "tracks": ["inbound"],
        "customParameters": {"tenant": "acme", "token": "b1f0"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
      }
    }"#;
    check(text, start_event(&[("tenant", "acme"), ("token", "b1f0")]));
    let Ok(Event::Start(s)) = stream::parse(text) else {
        panic!("not a start")
    };
    assert_eq!(s.parameter("token"), Some("b1f0"));
    assert_eq!(s.parameter("missing"), None);
    assert!(s.media_format.is_mulaw_8k_mono());
    assert!(s.stream_sid.is_well_formed() && s.call_sid.is_well_formed());
}

#[test]
fn start_variants() {
    // Empty customParameters, no tracks, streamSid only inside `start`, numbers as strings.
    let mut expected = start_event(&[]);
    if let Event::Start(s) = &mut expected {
        s.tracks.clear();
    }
    check(
        r#"{"event":"start","sequenceNumber":1,"start":{"streamSid":"MZ00000000000000000000000000000001","accountSid":"AC00000000000000000000000000000001","callSid":"CA00000000000000000000000000000001","customParameters":{},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":"8000","channels":"1"}}}"#,
        expected,
    );
    // Both tracks, and the `_track` spelling.
    let Ok(Event::Start(s)) = stream::parse(
        r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","callSid":"CA1","tracks":["inbound","outbound_track","future"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#,
    ) else {
        panic!("not a start")
    };
    assert_eq!(
        s.tracks,
        [
            Track::Inbound,
            Track::Outbound,
            Track::Other("future".into())
        ]
    );
    assert!(!s.stream_sid.is_well_formed());
}

#[test]
fn media_messages() {
    check(
        r#"{"event":"media","sequenceNumber":"2","streamSid":"MZ00000000000000000000000000000001","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"/////w=="}}"#,
        media(2, 1, 0, "/////w=="),
    );
    // Numbers instead of strings, fields in another order, unknown fields everywhere.
    check(
        r#"{"media":{"payload":"AAAA","extra":[1,{"x":null}],"timestamp":20,"chunk":2,"track":"inbound"},"streamSid":"MZ00000000000000000000000000000001","sequenceNumber":3,"newTopLevel":{"a":1},"event":"media"}"#,
        media(3, 2, 20, "AAAA"),
    );
}

#[test]
fn media_payload_is_borrowed_from_the_text() {
    let payload = "/".repeat(213) + "w==";
    let text = format!(
        r#"{{"event":"media","sequenceNumber":"2","streamSid":"{MZ}","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"{payload}"}}}}"#
    );
    let Ok(Event::Media(m)) = stream::parse(&text) else {
        panic!("not media")
    };
    let borrowed = m.borrowed_payload().expect("payload is borrowed");
    assert_eq!(borrowed, payload);
    let range = m.payload_range(&text).expect("payload lies in the text");
    assert_eq!(&text[range.clone()], payload);
    assert_eq!(borrowed.as_ptr(), text[range].as_ptr());
    assert_eq!(m.decoded_len(), 160);
    assert!(matches!(
        m.stream_sid.clone().into_inner(),
        Cow::Borrowed(_)
    ));
    // Not the parsed text: no range.
    assert_eq!(m.payload_range(&text.clone()), None);
}

#[test]
fn escaped_payload_is_correct_and_owned() {
    let text = r#"{"event":"media","sequenceNumber":"2","streamSid":"MZ00000000000000000000000000000001","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"\/\/\/\/\/w=="}}"#;
    let Ok(Event::Media(m)) = stream::parse(text) else {
        panic!("not media")
    };
    assert_eq!(m.payload, "/////w==");
    assert!(matches!(m.payload, Cow::Owned(_)));
    assert_eq!(m.borrowed_payload(), None);
    assert_eq!(m.payload_range(text), None);
    assert_eq!(m.decoded_len(), 4);
    let owned: Event<'static> = Event::Media(m).into_owned();
    assert_eq!(owned, media(2, 1, 0, "/////w=="));
}

#[test]
fn mark_dtmf_stop() {
    let text = r#"{"event":"mark","sequenceNumber":"93","streamSid":"MZ00000000000000000000000000000001","mark":{"name":"msg_007:1240:17"}}"#;
    check(
        text,
        Event::Mark(Mark {
            sequence_number: 93,
            stream_sid: StreamSid::new(MZ),
            name: "msg_007:1240:17".into(),
        }),
    );
    let Ok(Event::Mark(m)) = stream::parse(text) else {
        panic!("not a mark")
    };
    assert!(matches!(m.name, Cow::Borrowed(_)), "mark name is borrowed");

    check(
        r#"{"event":"dtmf","streamSid":"MZ00000000000000000000000000000001","sequenceNumber":"57","dtmf":{"track":"inbound_track","digit":"1"}}"#,
        Event::Dtmf(Dtmf {
            sequence_number: 57,
            stream_sid: StreamSid::new(MZ),
            track: Track::Inbound,
            digit: "1".into(),
        }),
    );
    check(
        r#"{"event":"stop","sequenceNumber":"1201","streamSid":"MZ00000000000000000000000000000001","stop":{"accountSid":"AC00000000000000000000000000000001","callSid":"CA00000000000000000000000000000001"}}"#,
        Event::Stop(Stop {
            sequence_number: 1201,
            stream_sid: StreamSid::new(MZ),
            account_sid: AccountSid::new(AC),
            call_sid: CallSid::new(CA),
        }),
    );
}

#[test]
fn unknown_events_keep_the_raw_json() {
    let text =
        r#"{"event":"transcription","streamSid":"MZ1","transcription":{"text":"hi","n":[1,2]}}"#;
    check(
        text,
        Event::Unknown {
            event: "transcription".into(),
            raw: serde_json::from_str(text).unwrap(),
        },
    );
    // The body of an unknown event may have any shape, even one that clashes with ours.
    let text = r#"{"media":{"payload":5},"sequenceNumber":false,"event":"media-v2"}"#;
    check(
        text,
        Event::Unknown {
            event: "media-v2".into(),
            raw: serde_json::from_str(text).unwrap(),
        },
    );
    let event = stream::parse(text).unwrap();
    assert_eq!(event.name(), "media-v2");
    assert_eq!(event.stream_sid(), None);
    assert_eq!(event.sequence_number(), None);
}

#[test]
fn bodies_of_other_events_are_ignored() {
    // A foreign body with a clashing shape, before and after the `event` field.
    check(
        r#"{"start":{"callSid":7},"event":"media","sequenceNumber":"2","streamSid":"MZ00000000000000000000000000000001","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"AAAA"}}"#,
        media(2, 1, 0, "AAAA"),
    );
    check(
        r#"{"event":"media","start":{"callSid":7},"sequenceNumber":"2","streamSid":"MZ00000000000000000000000000000001","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"AAAA"}}"#,
        media(2, 1, 0, "AAAA"),
    );
    // `connected` ignores stray counters.
    check(
        r#"{"sequenceNumber":[],"event":"connected","protocol":"Call","version":"1.0.0"}"#,
        Event::Connected(Connected {
            protocol: "Call".into(),
            version: "1.0.0".into(),
        }),
    );
}

#[test]
fn accessors() {
    let event = stream::parse(
        r#"{"event":"mark","sequenceNumber":"9","streamSid":"MZ1","mark":{"name":"a"}}"#,
    )
    .unwrap();
    assert_eq!(event.name(), "mark");
    assert_eq!(event.sequence_number(), Some(9));
    assert_eq!(event.stream_sid().map(StreamSid::as_str), Some("MZ1"));
    assert_eq!(
        Event::parse(r#"{"event":"connected","protocol":"Call","version":"1"}"#)
            .unwrap()
            .name(),
        "connected"
    );
}

#[test]
fn malformed_known_events_are_clear_errors() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"0"}}"#,
            "Twilio `media` message is missing the required field `media.payload`",
        ),
        (
            r#"{"event":"media","sequenceNumber":"2","streamSid":"MZ1"}"#,
            "Twilio `media` message is missing the required field `media`",
        ),
        (
            r#"{"event":"media","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"AA=="}}"#,
            "Twilio `media` message is missing the required field `sequenceNumber`",
        ),
        (
            r#"{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"AA=="}}"#,
            "Twilio `media` message is missing the required field `streamSid`",
        ),
        (
            r#"{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"-5","payload":"AA=="}}"#,
            "Twilio `media` message has an invalid `media.timestamp`: invalid value: string \"-5\", expected a non-negative integer (as a number or a decimal string)",
        ),
        (
            r#"{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":42}}"#,
            "Twilio `media` message has an invalid `media.payload`: invalid type: integer `42`, expected a string",
        ),
        // The error is found before the `event` field, and still attributed precisely.
        (
            r#"{"media":{"payload":null},"event":"media","sequenceNumber":"2","streamSid":"MZ1"}"#,
            "Twilio `media` message has an invalid `media.payload`: invalid type: null, expected a string",
        ),
        (
            r#"{"sequenceNumber":"two","event":"mark","streamSid":"MZ1","mark":{"name":"a"}}"#,
            "Twilio `mark` message has an invalid `sequenceNumber`: invalid value: string \"two\", expected a non-negative integer (as a number or a decimal string)",
        ),
        (
            r#"{"event":"mark","sequenceNumber":"9","streamSid":"MZ1","mark":{}}"#,
            "Twilio `mark` message is missing the required field `mark.name`",
        ),
        (
            r#"{"event":"mark","sequenceNumber":"9","streamSid":"MZ1","mark":"name"}"#,
            "Twilio `mark` message has an invalid `mark`: invalid type: string \"name\", expected the `mark` object",
        ),
        (
            r#"{"event":"dtmf","sequenceNumber":"9","streamSid":"MZ1","dtmf":{"track":"inbound_track"}}"#,
            "Twilio `dtmf` message is missing the required field `dtmf.digit`",
        ),
        (
            r#"{"event":"stop","sequenceNumber":"9","streamSid":"MZ1","stop":{"accountSid":"AC1"}}"#,
            "Twilio `stop` message is missing the required field `stop.callSid`",
        ),
        (
            r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#,
            "Twilio `start` message is missing the required field `start.callSid`",
        ),
        (
            r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","callSid":"CA1"}}"#,
            "Twilio `start` message is missing the required field `start.mediaFormat`",
        ),
        (
            r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","callSid":"CA1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":70000}}}"#,
            "Twilio `start` message has an invalid `start.mediaFormat.channels`: invalid value: integer `70000`, expected a channel count that fits in 16 bits",
        ),
        (
            r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","callSid":"CA1","customParameters":{"a":1},"mediaFormat":{}}}"#,
            "Twilio `start` message has an invalid `start.customParameters`: invalid type: integer `1`, expected a string",
        ),
        (
            r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","callSid":"CA1","tracks":"inbound","mediaFormat":{}}}"#,
            "Twilio `start` message has an invalid `start.tracks`: invalid type: string \"inbound\", expected an array of track names",
        ),
        (
            r#"{"event":"connected","protocol":"Call"}"#,
            "Twilio `connected` message is missing the required field `version`",
        ),
    ];
    for (input, expected) in cases {
        check_err(input, expected);
    }
}

#[test]
fn not_a_message() {
    check_err(
        r#"{"streamSid":"MZ1"}"#,
        "Twilio stream message has no string `event` field",
    );
    check_err(
        r#"{"event":5}"#,
        "Twilio stream message has no string `event` field",
    );
    check_err(
        r#"{"media":{"payload":1},"event":null}"#,
        "Twilio stream message has no string `event` field",
    );
    check_err(
        r#"{"media":{"payload":1}}"#,
        "Twilio stream message has no string `event` field",
    );
    for input in [
        "",
        "[]",
        "null",
        "\"media\"",
        "{",
        r#"{"event":"media"} x"#,
        "{\"event\":\"media\",}",
    ] {
        assert!(
            matches!(stream::parse(input), Err(StreamError::Json(_))),
            "{input:?}: {:?}",
            stream::parse(input)
        );
    }
    // A syntax error after a data error is reported as invalid JSON.
    assert!(matches!(
        stream::parse(r#"{"media":{"payload":1},"event":"media",#"#),
        Err(StreamError::Json(_))
    ));
}

#[test]
fn error_variants_carry_event_and_field() {
    let err = stream::parse(r#"{"event":"media","sequenceNumber":"x"}"#).unwrap_err();
    assert!(matches!(
        err,
        StreamError::InvalidField {
            event: "media",
            field: "sequenceNumber",
            ..
        }
    ));
    let err = stream::parse(
        r#"{"event":"stop","sequenceNumber":"1","streamSid":"MZ1","stop":{"callSid":"CA1"}}"#,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        StreamError::MissingField {
            event: "stop",
            field: "stop.accountSid"
        }
    ));
}

// ---- outbound --------------------------------------------------------------------------

#[track_caller]
fn check_out(message: &Outbound<'_>, expected: &str) {
    assert_eq!(message.to_json(), expected);
    assert_eq!(serde_json::to_string(message).unwrap(), expected);
    let mut bytes = b"prefix".to_vec();
    message.write(&mut bytes);
    assert_eq!(&bytes[6..], expected.as_bytes());
}

#[test]
fn outbound_is_byte_exact() {
    check_out(
        &Outbound::media(MZ, "/////w=="),
        r#"{"event":"media","streamSid":"MZ00000000000000000000000000000001","media":{"payload":"/////w=="}}"#,
    );
    check_out(
        &Outbound::mark(MZ, "msg_007:1240:17"),
        r#"{"event":"mark","streamSid":"MZ00000000000000000000000000000001","mark":{"name":"msg_007:1240:17"}}"#,
    );
    check_out(
        &Outbound::clear(MZ),
        r#"{"event":"clear","streamSid":"MZ00000000000000000000000000000001"}"#,
    );
    check_out(
        &Outbound::mark("MZ\"1", "a\\b\n\u{1}é"),
        r#"{"event":"mark","streamSid":"MZ\"1","mark":{"name":"a\\b\n\u0001é"}}"#,
    );
    assert_eq!(Outbound::clear(MZ).name(), "clear");
    assert_eq!(Outbound::media(MZ, "").name(), "media");
    assert_eq!(Outbound::mark(MZ, "").name(), "mark");
}

#[test]
fn writers_append() {
    let mut out = String::from("[");
    stream::write_media(&mut out, "MZ1", "AAAA");
    out.push(',');
    stream::write_mark(&mut out, "MZ1", "m1");
    out.push(',');
    stream::write_clear(&mut out, "MZ1");
    out.push(']');
    assert_eq!(
        out,
        r#"[{"event":"media","streamSid":"MZ1","media":{"payload":"AAAA"}},{"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}},{"event":"clear","streamSid":"MZ1"}]"#
    );
}

#[test]
fn mark_echo_round_trip() {
    // What we send comes back as an inbound `mark` with the same name, even when escaped.
    let name = "quote\" backslash\\ tab\t";
    let sent = Outbound::mark(MZ, name).to_json();
    let echoed = sent.replacen(
        r#"{"event":"mark","#,
        r#"{"event":"mark","sequenceNumber":"4","#,
        1,
    );
    let Ok(Event::Mark(mark)) = stream::parse(&echoed) else {
        panic!("not a mark")
    };
    assert_eq!(mark.name, name);
}
