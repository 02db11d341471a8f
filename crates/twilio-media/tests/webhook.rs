//! Typed webhook parameters.

use twilio_media::signature::RequestValidator;
use twilio_media::webhook::{
    CallStatus, CallStatusCallback, Direction, Geo, Params, StreamEvent, StreamStatusCallback,
    VoiceRequest, WebhookError,
};

const VOICE_BODY: &str = "Called=%2B15005550006&ToState=CA&CallerCountry=US&Direction=inbound\
&CallerState=CA&ToZip=94105&CallSid=CA00000000000000000000000000000001&To=%2B15005550006\
&CallerZip=94103&ToCountry=US&StirVerstat=TN-Validation-Passed-A&CallToken=%7B%22a%22%3A1%7D\
&CalledZip=94105&ApiVersion=2010-04-01&CalledCity=SAN+FRANCISCO&CallStatus=ringing\
&From=%2B14155551234&AccountSid=AC00000000000000000000000000000001&CalledCountry=US\
&CallerCity=SAN+FRANCISCO&ToCity=SAN+FRANCISCO&FromCountry=US&Caller=%2B14155551234\
&FromCity=SAN+FRANCISCO&CalledState=CA&FromZip=94103&FromState=CA&CallerName=Zo%C3%AB+O%27Neil\
&ForwardedFrom=&ParentCallSid=";

#[test]
fn voice_request_typed_fields() {
    let call = VoiceRequest::from_urlencoded(VOICE_BODY.as_bytes()).expect("valid webhook");
    assert_eq!(call.call_sid, "CA00000000000000000000000000000001");
    assert!(call.call_sid.is_well_formed());
    assert_eq!(call.account_sid, "AC00000000000000000000000000000001");
    assert_eq!(call.from.as_deref(), Some("+14155551234"));
    assert_eq!(call.to.as_deref(), Some("+15005550006"));
    assert_eq!(call.direction, Some(Direction::Inbound));
    assert_eq!(call.call_status, Some(CallStatus::Ringing));
    assert_eq!(call.api_version.as_deref(), Some("2010-04-01"));
    assert_eq!(call.caller.as_deref(), Some("+14155551234"));
    assert_eq!(call.called.as_deref(), Some("+15005550006"));
    assert_eq!(call.caller_name.as_deref(), Some("Zoë O'Neil"));
    assert_eq!(call.call_token.as_deref(), Some(r#"{"a":1}"#));
    assert_eq!(call.stir_verstat.as_deref(), Some("TN-Validation-Passed-A"));
    // Empty values read as absent.
    assert_eq!(call.forwarded_from, None);
    assert_eq!(call.parent_call_sid, None);
    assert_eq!(
        call.from_geo,
        Geo {
            city: Some("SAN FRANCISCO".into()),
            state: Some("CA".into()),
            zip: Some("94103".into()),
            country: Some("US".into()),
        }
    );
    assert_eq!(call.to_geo.zip.as_deref(), Some("94105"));
    // Every pair is kept, in order, including the legacy and unknown ones.
    assert_eq!(call.params.len(), 30);
    assert_eq!(
        call.params.pairs()[0],
        ("Called".into(), "+15005550006".into())
    );
    assert_eq!(call.params.get("CalledCity"), Some("SAN FRANCISCO"));
    assert_eq!(call.params.get("ForwardedFrom"), Some(""));
    assert_eq!(call.params.get("Nope"), None);
    assert_eq!(call.params.iter().last(), Some(("ParentCallSid", "")));
    assert_eq!((&call.params).into_iter().count(), 30);
}

#[test]
fn pairs_feed_the_signature() {
    let call = VoiceRequest::from_urlencoded(VOICE_BODY.as_bytes()).expect("valid webhook");
    let validator = RequestValidator::new("0123456789abcdef0123456789abcdef");
    let url = "https://bridge.example.com/twilio/voice";
    let signature = validator.compute(url, call.params.pairs());
    assert!(validator.validate_urlencoded(url, VOICE_BODY.as_bytes(), &signature));
    assert!(validator.validate(url, call.params.pairs(), &signature));
}

#[test]
fn required_and_invalid_params() {
    let check = |body: &str, expected: WebhookError| {
        assert_eq!(
            VoiceRequest::from_urlencoded(body.as_bytes()),
            Err(expected),
            "{body}"
        );
    };
    check(
        "AccountSid=AC1",
        WebhookError::MissingParam { name: "CallSid" },
    );
    check(
        "CallSid=&AccountSid=AC1",
        WebhookError::MissingParam { name: "CallSid" },
    );
    check(
        "CallSid=CA1",
        WebhookError::MissingParam { name: "AccountSid" },
    );
    let minimal = VoiceRequest::from_urlencoded(b"CallSid=CA1&AccountSid=AC1").expect("minimal");
    assert_eq!(minimal.from, None);
    assert_eq!(minimal.direction, None);
    assert!(!minimal.call_sid.is_well_formed());

    let err = CallStatusCallback::from_urlencoded(
        b"CallSid=CA1&AccountSid=AC1&CallStatus=completed&CallDuration=abc",
    )
    .expect_err("bad duration");
    assert_eq!(
        err,
        WebhookError::InvalidParam {
            name: "CallDuration",
            value: "abc".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "Twilio request has an invalid `CallDuration`: \"abc\""
    );
    assert_eq!(
        WebhookError::MissingParam { name: "CallSid" }.to_string(),
        "Twilio request is missing the parameter `CallSid`"
    );
}

#[test]
fn repeated_and_malformed_pairs() {
    let params = Params::from_urlencoded(b"A=1&A=2&B&%ZZ=%4&=x&C=%E2%82%AC+%2B");
    assert_eq!(params.get("A"), Some("1"));
    assert_eq!(params.get_all("A").collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(params.get("B"), Some(""));
    assert_eq!(params.get("%ZZ"), Some("%4"));
    assert_eq!(params.get(""), Some("x"));
    assert_eq!(params.get("C"), Some("€ +"));
    assert!(!params.is_empty());
    let from_pairs = Params::from_pairs([("A", "1"), ("A", "2")]);
    assert_eq!(from_pairs.get_all("A").count(), 2);
    assert!(Params::default().is_empty());
    let call = VoiceRequest::from_pairs([
        ("CallSid", "CA1"),
        ("AccountSid", "AC1"),
        ("Direction", "outbound-api"),
    ])
    .expect("pairs");
    assert_eq!(call.direction, Some(Direction::OutboundApi));
}

#[test]
fn enums_round_trip_and_keep_unknown_values() {
    for s in [
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "failed",
        "no-answer",
        "canceled",
        "future",
    ] {
        assert_eq!(CallStatus::parse(s).as_str(), s);
        assert_eq!(CallStatus::parse(s).to_string(), s);
    }
    assert_eq!(
        CallStatus::parse("future"),
        CallStatus::Other("future".into())
    );
    let finals: Vec<_> = [
        "completed",
        "busy",
        "failed",
        "no-answer",
        "canceled",
        "ringing",
        "in-progress",
    ]
    .iter()
    .map(|s| CallStatus::parse(s).is_final())
    .collect();
    assert_eq!(finals, [true, true, true, true, true, false, false]);
    for s in ["inbound", "outbound-api", "outbound-dial", "trunking"] {
        assert_eq!(Direction::parse(s).as_str(), s);
    }
    assert_eq!(Direction::parse("outbound-dial"), Direction::OutboundDial);
    for s in [
        "stream-started",
        "stream-stopped",
        "stream-error",
        "stream-paused",
    ] {
        assert_eq!(StreamEvent::parse(s).as_str(), s);
    }
}

#[test]
fn stream_status_callback() {
    let body =
        b"AccountSid=AC00000000000000000000000000000001&CallSid=CA00000000000000000000000000000001\
&StreamSid=MZ00000000000000000000000000000001&StreamName=call-1&StreamEvent=stream-error\
&StreamError=WebSocket+handshake+failed&Timestamp=2026-11-23T10%3A00%3A00.000Z";
    let cb = StreamStatusCallback::from_urlencoded(body).expect("valid callback");
    assert_eq!(cb.stream_sid, "MZ00000000000000000000000000000001");
    assert!(cb.stream_sid.is_well_formed());
    assert_eq!(cb.call_sid, "CA00000000000000000000000000000001");
    assert_eq!(cb.account_sid, "AC00000000000000000000000000000001");
    assert_eq!(cb.stream_name.as_deref(), Some("call-1"));
    assert_eq!(cb.stream_event, StreamEvent::Error);
    assert_eq!(
        cb.stream_error.as_deref(),
        Some("WebSocket handshake failed")
    );
    assert_eq!(cb.timestamp.as_deref(), Some("2026-11-23T10:00:00.000Z"));
    assert_eq!(cb.params.len(), 7);
    assert_eq!(
        StreamStatusCallback::from_urlencoded(b"AccountSid=AC1&CallSid=CA1&StreamSid=MZ1"),
        Err(WebhookError::MissingParam {
            name: "StreamEvent"
        })
    );
}

#[test]
fn call_status_callback() {
    let body =
        b"CallSid=CA00000000000000000000000000000001&AccountSid=AC00000000000000000000000000000001\
&From=%2B14155551234&To=%2B15005550006&Direction=inbound&CallStatus=completed&CallDuration=42\
&Duration=1&SequenceNumber=3&Timestamp=Mon%2C+23+Nov+2026+10%3A00%3A00+%2B0000\
&CallbackSource=call-progress-events&SipResponseCode=200&ApiVersion=2010-04-01";
    let cb = CallStatusCallback::from_urlencoded(body).expect("valid callback");
    assert_eq!(cb.call_status, CallStatus::Completed);
    assert!(cb.call_status.is_final());
    assert_eq!(cb.call_duration, Some(42));
    assert_eq!(cb.duration, Some(1));
    assert_eq!(cb.sequence_number, Some(3));
    assert_eq!(
        cb.timestamp.as_deref(),
        Some("Mon, 23 Nov 2026 10:00:00 +0000")
    );
    assert_eq!(cb.callback_source.as_deref(), Some("call-progress-events"));
    assert_eq!(cb.sip_response_code, Some(200));
    assert_eq!(cb.call.call_sid, "CA00000000000000000000000000000001");
    assert_eq!(cb.call.call_status, Some(CallStatus::Completed));
    assert_eq!(cb.call.params.len(), 13);
    assert_eq!(
        CallStatusCallback::from_urlencoded(b"CallSid=CA1&AccountSid=AC1"),
        Err(WebhookError::MissingParam { name: "CallStatus" })
    );
    let ringing = CallStatusCallback::from_urlencoded(
        b"CallSid=CA1&AccountSid=AC1&CallStatus=ringing&CallDuration=",
    )
    .expect("empty duration is absent");
    assert_eq!(ringing.call_duration, None);
}
