//! Twilio's form-encoded webhook bodies on arbitrary bytes: `Params::from_urlencoded`,
//! `VoiceRequest`, `StreamStatusCallback` and `CallStatusCallback::from_urlencoded`.
//!
//! Invariants:
//! * the typed readers succeed exactly when their required parameters are present and
//!   non-empty, and the typed SIDs equal the first raw value;
//! * every request keeps every pair (`params` equals `Params::from_urlencoded` of the body);
//! * re-encoding the decoded pairs and parsing again yields the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twilio_media::webhook::{
    CallStatusCallback, Params, StreamStatusCallback, VoiceRequest, WebhookError,
};

fuzz_target!(|body: &[u8]| {
    let params = Params::from_urlencoded(body);
    assert_eq!(params.len(), params.pairs().len());
    assert_eq!(params.is_empty(), params.pairs().is_empty());
    assert_eq!(params.iter().count(), params.len());
    let nonempty = |name: &str| params.get(name).is_some_and(|v| !v.is_empty());

    let voice = VoiceRequest::from_urlencoded(body);
    match &voice {
        Ok(call) => {
            assert_eq!(call.params, params);
            assert_eq!(Some(call.call_sid.as_str()), params.get("CallSid"));
            assert_eq!(Some(call.account_sid.as_str()), params.get("AccountSid"));
            let _ = (
                call.call_sid.is_well_formed(),
                call.account_sid.is_well_formed(),
            );
            if let Some(status) = &call.call_status {
                assert_eq!(Some(status.as_str()), params.get("CallStatus"));
                let _ = status.is_final();
            }
            if let Some(direction) = &call.direction {
                assert_eq!(Some(direction.as_str()), params.get("Direction"));
            }
        }
        Err(WebhookError::MissingParam { name }) => assert!(!nonempty(name)),
        Err(other) => panic!("VoiceRequest only reports missing parameters, got {other:?}"),
    }
    assert_eq!(voice.is_ok(), nonempty("CallSid") && nonempty("AccountSid"));

    let stream_status = StreamStatusCallback::from_urlencoded(body);
    match &stream_status {
        Ok(cb) => {
            assert_eq!(cb.params, params);
            assert_eq!(Some(cb.stream_sid.as_str()), params.get("StreamSid"));
            assert_eq!(Some(cb.stream_event.as_str()), params.get("StreamEvent"));
        }
        Err(WebhookError::MissingParam { name }) => assert!(!nonempty(name)),
        Err(other) => panic!("StreamStatusCallback only reports missing parameters, got {other:?}"),
    }
    assert_eq!(
        stream_status.is_ok(),
        ["AccountSid", "CallSid", "StreamSid", "StreamEvent"]
            .iter()
            .all(|name| nonempty(name))
    );

    let call_status = CallStatusCallback::from_urlencoded(body);
    match &call_status {
        Ok(cb) => {
            assert_eq!(cb.call.params, params);
            assert_eq!(Some(cb.call_status.as_str()), params.get("CallStatus"));
            if let Some(d) = cb.call_duration {
                assert_eq!(
                    params.get("CallDuration").map(str::parse::<u64>),
                    Some(Ok(d))
                );
            }
        }
        Err(WebhookError::MissingParam { name }) => assert!(!nonempty(name)),
        Err(WebhookError::InvalidParam { name, value }) => {
            assert_eq!(params.get(name), Some(value.as_str()));
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }

    // Re-encode what was decoded: the same pairs, hence the same requests, come back.
    let mut encoder = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params.iter() {
        encoder.append_pair(name, value);
    }
    let reencoded = encoder.finish();
    let params2 = Params::from_urlencoded(reencoded.as_bytes());
    assert_eq!(
        params2, params,
        "re-encoded form {reencoded:?} decodes differently"
    );
    assert_eq!(VoiceRequest::from_urlencoded(reencoded.as_bytes()), voice);
    assert_eq!(
        StreamStatusCallback::from_urlencoded(reencoded.as_bytes()),
        stream_status
    );
    assert_eq!(
        CallStatusCallback::from_urlencoded(reencoded.as_bytes()),
        call_status
    );
});
