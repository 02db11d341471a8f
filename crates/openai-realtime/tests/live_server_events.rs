//! GPT-Live server events: every event type of PROTOCOLS-LIVE §6 parsed from reference JSON and
//! written back unchanged; borrowing, tolerance (unknown events/fields) and typed errors.

use std::borrow::Cow;
use std::collections::BTreeSet;

use openai_realtime::live::{
    Ack, AudioFormat, CloseReason, DelegationTarget, ErrorCode, InitialItem, OutputAudioDelta,
    ParseError, SERVER_EVENT_TYPES, ServerEvent, SessionClosed, SessionUsage, Voice,
};
use serde_json::Value;

/// Removes `null` members (the reference treats absent and `null` alike for optional fields,
/// and the serializer omits them).
fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

fn parse(text: &str) -> ServerEvent<'_> {
    match ServerEvent::parse(text) {
        Ok(event) => event,
        Err(error) => panic!("{text} failed to parse: {error}"),
    }
}

/// Parses `text`, checks the variant with `check`, and checks that serializing the event gives
/// back the same JSON (so no field was dropped or renamed).
fn round_trip(text: &str, check: Check) -> String {
    let event = parse(text);
    assert!(check(&event), "unexpected variant for {text}: {event:?}");
    let input: Value = serde_json::from_str(text).expect("test JSON is valid");
    assert_eq!(event.event_type(), input["type"].as_str().expect("type"));
    let output = serde_json::to_value(&event).expect("server events serialize");
    // Raw (Decisions, unknown) events keep their nulls; typed ones omit unset optionals.
    assert_eq!(
        strip_nulls(output),
        strip_nulls(input),
        "round trip of {text}"
    );
    let owned = event.clone().into_owned();
    assert_eq!(owned, event, "into_owned keeps the value");
    event.event_type().to_owned()
}

const SESSION: &str = r#"{"id":"live_u1_3f9c","expires_at":1796000000,"status":"active","model":"gpt-live-1","instructions":"You are Robin.","audio":{"format":{"type":"audio/pcmu","rate":8000},"output":{"voice":"marin"}},"delegation":{"type":"responses","acknowledgement_delay_ms":0,"responses":{"model":"gpt-5.6-luna"}},"input":[{"type":"message","role":"developer","content":[{"type":"input_text","text":"VIP caller"}]}],"store":false}"#;

/// A predicate on the parsed variant and its fields.
type Check = fn(&ServerEvent<'_>) -> bool;

fn server_event_table() -> Vec<(String, Check)> {
    let started = format!(
        r#"{{"type":"session.started","event_id":"evt_01","client_event_id":"start_CA5f0e","session":{SESSION}}}"#
    );
    let updated = format!(
        r#"{{"type":"session.updated","event_id":"evt_02","client_event_id":"upd_3","session":{SESSION}}}"#
    );
    vec![
        (started, |e| {
            matches!(e, ServerEvent::SessionStarted(s)
                if s.session.id == "live_u1_3f9c"
                && s.session.expires_at == 1_796_000_000
                && s.session.audio_format() == Some(AudioFormat::Pcmu)
                && s.session.voice() == Some(&Voice::Named("marin".into()))
                && s.session.delegation_type() == Some("responses")
                && s.session.input.as_deref() == Some(&[InitialItem::developer("VIP caller")][..])
                && s.client_event_id.as_deref() == Some("start_CA5f0e"))
        }),
        (updated, |e| matches!(e, ServerEvent::SessionUpdated(s) if s.session.store == Some(false))),
        (
            r#"{"type":"session.output_audio.delta","delta":"/////39/f3//////"}"#.into(),
            |e| {
                matches!(e, ServerEvent::OutputAudioDelta(d)
                    if d.delta == "/////39/f3//////" && d.start_ms.is_none() && e.event_id().is_none())
            },
        ),
        (
            r#"{"type":"session.output_audio.delta","delta":"AAAA","start_ms":1000,"end_ms":1100}"#.into(),
            |e| matches!(e, ServerEvent::OutputAudioDelta(d) if d.start_ms == Some(1000) && d.end_ms == Some(1100)),
        ),
        (
            r#"{"type":"session.input_transcript.delta","event_id":"evt_88","delta":" I'd like to move","start_ms":41200,"end_ms":41400}"#.into(),
            |e| {
                matches!(e, ServerEvent::InputTranscriptDelta(d)
                    if d.delta == " I'd like to move" && d.start_ms == 41_200 && d.end_ms == 41_400
                    && d.event_id.as_deref() == Some("evt_88"))
            },
        ),
        (
            r#"{"type":"session.output_transcript.delta","event_id":"evt_89","delta":" Sure,","start_ms":41500,"end_ms":41700}"#.into(),
            |e| matches!(e, ServerEvent::OutputTranscriptDelta(d) if d.delta == " Sure,"),
        ),
        (
            r#"{"type":"session.instructions.appended","event_id":"evt_10","client_event_id":"greet_1","start_ms":3000,"end_ms":3000}"#.into(),
            |e| matches!(e, ServerEvent::InstructionsAppended(a) if a.start_ms == 3000 && e.client_event_id() == Some("greet_1")),
        ),
        (
            r#"{"type":"session.thinking.appended","event_id":"evt_11","client_event_id":"ctx_12","start_ms":5000,"end_ms":5200}"#.into(),
            |e| matches!(e, ServerEvent::ThinkingAppended(a) if a.end_ms == 5200),
        ),
        (
            r#"{"type":"session.commentary.appended","event_id":"evt_12","start_ms":6000,"end_ms":6100}"#.into(),
            |e| matches!(e, ServerEvent::CommentaryAppended(a) if a.client_event_id.is_none()),
        ),
        (
            r#"{"type":"session.input_audio.muted","event_id":"evt_13","client_event_id":"mute_1"}"#.into(),
            |e| matches!(e, ServerEvent::InputAudioMuted(_)) && e.client_event_id() == Some("mute_1"),
        ),
        (
            r#"{"type":"session.input_audio.unmuted","event_id":"evt_14"}"#.into(),
            |e| matches!(e, ServerEvent::InputAudioUnmuted(_)) && e.event_id() == Some("evt_14"),
        ),
        (
            r#"{"type":"session.output_audio.fixture.playing","event_id":"evt_15","client_event_id":"fx_1"}"#.into(),
            |e| matches!(e, ServerEvent::OutputAudioFixturePlaying(_)),
        ),
        (
            r#"{"type":"session.output_audio.fixture.played","event_id":"evt_16","client_event_id":"fx_1"}"#.into(),
            |e| matches!(e, ServerEvent::OutputAudioFixturePlayed(_)),
        ),
        (
            r#"{"type":"session.delegation.created","event_id":"evt_90","offset_ms":42800,"delegation":{"id":"item_9Tk2","type":"delegation","target":"client"}}"#.into(),
            |e| {
                matches!(e, ServerEvent::DelegationCreated(d)
                    if d.offset_ms == 42_800 && d.delegation.id == "item_9Tk2"
                    && d.delegation.target == DelegationTarget::CLIENT && d.delegation.response_id.is_none())
            },
        ),
        (
            r#"{"type":"session.delegation.created","event_id":"evt_91","offset_ms":50000,"delegation":{"id":"item_A","type":"delegation","target":"responses","response_id":"resp_1"}}"#.into(),
            |e| matches!(e, ServerEvent::DelegationCreated(d) if d.delegation.response_id.as_deref() == Some("resp_1")),
        ),
        (
            r#"{"type":"response.event","event_id":"evt_93","delegation_id":"item_9Tk2","event":{"type":"response.output_item.done","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_8Qx2","name":"find_appointments","arguments":"{\"date\":\"2026-12-03\"}","status":"completed"}}}"#.into(),
            |e| matches!(e, ServerEvent::ResponseEvent(r) if r.function_call().is_some()),
        ),
        (
            r#"{"type":"session.usage.updated","event_id":"evt_120","usage":{"seconds":74.0},"context_window":{"usage_ratio":0.11}}"#.into(),
            |e| {
                matches!(e, ServerEvent::UsageUpdated(u)
                    if u.usage.seconds == 74.0 && u.context_window.map(|c| c.usage_ratio) == Some(0.11))
            },
        ),
        (
            r#"{"type":"session.closed","event_id":"evt_999","client_event_id":"close_1","reason":"close_requested","session":{"id":"live_u1_3f9c","expires_at":1796000000,"model":"gpt-live-1","status":"active"},"usage":{"seconds":187.0}}"#.into(),
            |e| {
                matches!(e, ServerEvent::SessionClosed(c)
                    if c.reason == CloseReason::CLOSE_REQUESTED
                    && c.usage.map(|u| u.seconds) == Some(187.0)
                    && c.session.as_ref().map(|s| s.id.as_str()) == Some("live_u1_3f9c"))
            },
        ),
        (
            r#"{"type":"error","event_id":"evt_77","client_event_id":"upd_3","error":{"type":"invalid_request_error","code":"immutable_field_update","message":"The delegation type cannot change after session startup.","param":"session.delegation.type","client_event_id":"upd_3"}}"#.into(),
            |e| {
                matches!(e, ServerEvent::Error(err)
                    if err.code() == Some(&ErrorCode::IMMUTABLE_FIELD_UPDATE)
                    && err.error.param.as_deref() == Some("session.delegation.type")
                    && err.error.kind == "invalid_request_error")
                    && e.client_event_id() == Some("upd_3")
            },
        ),
        (
            r#"{"type":"info","event_id":"evt_5","code":"data_channel_permissions","message":"Frontend events restricted."}"#.into(),
            |e| matches!(e, ServerEvent::Info(i) if i.code == "data_channel_permissions"),
        ),
        (
            r#"{"type":"decision.event","event_id":"evt_200","delegation_id":null,"source_event_id":"evt_88","source_event_type":"session.input_transcript.delta","trigger_id":"trg_1","event":{"type":"decision.completed","decision":{"answers":[]}}}"#.into(),
            |e| matches!(e, ServerEvent::DecisionEvent(raw) if raw["trigger_id"] == "trg_1") && e.event_id() == Some("evt_200"),
        ),
        (
            r#"{"type":"decision.item.created","event_id":"evt_201","client_event_id":"dic_1","item":{"type":"function_call_output","id":"ditem_1","call_id":"c1","output":"ok"}}"#.into(),
            |e| matches!(e, ServerEvent::DecisionItemCreated(_)) && e.client_event_id() == Some("dic_1"),
        ),
        (
            r#"{"type":"decision.item.deleted","event_id":"evt_202","item_id":"ditem_1"}"#.into(),
            |e| matches!(e, ServerEvent::DecisionItemDeleted(raw) if raw["item_id"] == "ditem_1"),
        ),
        (
            r#"{"type":"session.input_audio.append","audio":"AAAAAAAA"}"#.into(),
            |e| matches!(e, ServerEvent::InputAudioAppend(a) if a.audio == "AAAAAAAA") && e.event_id().is_none(),
        ),
        (
            r#"{"type":"transport.dtmf.received","event_id":"evt_300","event":"5"}"#.into(),
            |e| matches!(e, ServerEvent::TransportDtmfReceived(d) if d.event == "5"),
        ),
        (
            r##"{"type":"transport.dtmf.sent","event_id":"evt_301","client_event_id":"dtmf_1","event":"#"}"##.into(),
            |e| matches!(e, ServerEvent::TransportDtmfSent(d) if d.event == "#"),
        ),
        (
            r#"{"type":"transport.dtmf.send","event_id":"evt_302","event":"1"}"#.into(),
            |e| matches!(e, ServerEvent::TransportDtmfSend(_)),
        ),
        (
            r#"{"type":"transport.ringing","event_id":"evt_303","session_id":"live_1"}"#.into(),
            |e| matches!(e, ServerEvent::TransportRinging(t) if t.session_id == "live_1"),
        ),
        (
            r#"{"type":"transport.answered","event_id":"evt_304","session_id":"live_1"}"#.into(),
            |e| matches!(e, ServerEvent::TransportAnswered(_)),
        ),
        (
            r#"{"type":"transport.failed","event_id":"evt_305","session_id":"live_1","error":{"type":"call_error","code":"busy","message":"Callee busy."}}"#.into(),
            |e| matches!(e, ServerEvent::TransportFailed(f) if f.error.code == "busy"),
        ),
    ]
}

#[test]
fn every_server_event_type_round_trips() {
    let mut covered = BTreeSet::new();
    for (text, check) in server_event_table() {
        covered.insert(round_trip(&text, check));
    }
    let all: BTreeSet<String> = SERVER_EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(covered, all, "the table covers every server event type");
}

#[test]
fn audio_delta_borrows_the_payload() {
    let text = r#"{"type":"session.output_audio.delta","delta":"/////39/f3//////"}"#;
    let ServerEvent::OutputAudioDelta(audio) = parse(text) else {
        panic!("expected an audio delta");
    };
    let Cow::Borrowed(delta) = audio.delta else {
        panic!("delta must borrow from the frame");
    };
    let range = text.as_bytes().as_ptr_range();
    assert!(
        range.contains(&delta.as_ptr()),
        "delta points into the frame"
    );
}

#[test]
fn audio_delta_with_escapes_is_unescaped() {
    // Some JSON encoders escape '/' as "\/"; the payload must still be exact.
    let text = r#"{"type":"session.output_audio.delta","delta":"\/\/\/\/"}"#;
    let ServerEvent::OutputAudioDelta(audio) = parse(text) else {
        panic!("expected an audio delta");
    };
    assert_eq!(audio.delta, "////");
    assert!(matches!(audio.delta, Cow::Owned(_)));
}

#[test]
fn field_order_does_not_matter() {
    let text = r#"{"delta":"QUJD","end_ms":20,"start_ms":0,"type":"session.output_audio.delta"}"#;
    assert!(matches!(parse(text), ServerEvent::OutputAudioDelta(d)
        if d.delta == "QUJD" && d.start_ms == Some(0) && d.end_ms == Some(20)));
    let text = r#"{"session":{"id":"s","expires_at":1,"model":"gpt-live-1"},"event_id":"e","type":"session.started"}"#;
    assert!(matches!(parse(text), ServerEvent::SessionStarted(s) if s.session.id == "s"));
}

#[test]
fn transcript_deltas_borrow_and_accept_null_ids() {
    let text = r#"{"type":"session.output_transcript.delta","event_id":"e1","client_event_id":null,"delta":" hi","start_ms":0,"end_ms":200}"#;
    let ServerEvent::OutputTranscriptDelta(delta) = parse(text) else {
        panic!("expected a transcript delta");
    };
    assert!(matches!(delta.delta, Cow::Borrowed(" hi")));
    assert_eq!(delta.client_event_id, None);
}

#[test]
fn unknown_events_keep_their_raw_json() {
    let text = r#"{"type":"session.future_thing","event_id":"evt_x","payload":{"a":[1,2,3]}}"#;
    let event = parse(text);
    let ServerEvent::Unknown { event_type, raw } = &event else {
        panic!("expected Unknown, got {event:?}");
    };
    assert_eq!(event_type, "session.future_thing");
    assert_eq!(raw["payload"]["a"][2], 3);
    assert_eq!(event.event_id(), Some("evt_x"));
    assert_eq!(
        serde_json::to_value(&event).expect("serializes"),
        serde_json::from_str::<Value>(text).expect("valid")
    );
    // Events that do not exist in GPT-Live are unknown too, never mistaken for Live events.
    for realtime_only in ["session.created", "response.done", "rate_limits.updated"] {
        let text = format!(r#"{{"type":"{realtime_only}","event_id":"e"}}"#);
        assert!(matches!(parse(&text), ServerEvent::Unknown { .. }));
    }
}

#[test]
fn unknown_fields_are_ignored() {
    let cases = [
        r#"{"type":"session.output_audio.delta","delta":"AAAA","future":{"nested":[1,{"x":null}]},"event_id":"new"}"#,
        r#"{"type":"session.input_transcript.delta","event_id":"e","delta":"a","start_ms":1,"end_ms":2,"confidence":0.9,"words":[]}"#,
        r#"{"type":"session.closed","event_id":"e","reason":"expired","usage":{"seconds":31.0,"extra":1},"session":{"id":"s","expires_at":1,"model":"m","status":"active","brand_new":true},"note":"x"}"#,
        r#"{"type":"error","event_id":"e","error":{"type":"server_error","code":"x","message":"m","retry_after":3},"trace":"t"}"#,
        r#"{"type":"session.usage.updated","event_id":"e","usage":{"seconds":1.5},"tokens":{"audio":3}}"#,
    ];
    for text in cases {
        let event = parse(text);
        assert!(!matches!(event, ServerEvent::Unknown { .. }), "{text}");
    }
}

#[test]
fn session_snapshot_tolerates_unrecognized_sub_objects() {
    let text = r#"{"type":"session.started","event_id":"e","session":{"id":"s","expires_at":1,"model":"gpt-live-1","audio":{"format":{"type":"audio/opus","rate":48000},"output":{"voice":{"id":"v1"}}},"input":[{"role":"system","content":[]}],"delegation":null}}"#;
    let ServerEvent::SessionStarted(started) = parse(text) else {
        panic!("expected session.started");
    };
    assert_eq!(
        started.session.audio_format(),
        None,
        "unknown format is None"
    );
    assert_eq!(started.session.voice(), Some(&Voice::custom("v1")));
    assert_eq!(started.session.input, None, "unrecognized history is None");
    assert_eq!(
        started.session.delegation_type(),
        None,
        "null means client mode"
    );
}

#[test]
fn close_reasons_and_error_codes_pass_unknown_values_through() {
    let text = r#"{"type":"session.closed","event_id":"e","reason":"operator_ended","usage":{"seconds":3.0}}"#;
    let ServerEvent::SessionClosed(closed) = parse(text) else {
        panic!("expected session.closed");
    };
    assert_eq!(closed.reason, "operator_ended");
    assert!(!closed.reason.is_known());
    assert!(closed.session.is_none());

    for reason in CloseReason::KNOWN {
        let text = format!(r#"{{"type":"session.closed","event_id":"e","reason":"{reason}"}}"#);
        assert!(
            matches!(parse(&text), ServerEvent::SessionClosed(c) if c.reason == *reason && c.reason.is_known())
        );
    }

    let text = r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"brand_new_code","message":"m"}}"#;
    let ServerEvent::Error(error) = parse(text) else {
        panic!("expected error");
    };
    assert_eq!(error.code(), Some(&ErrorCode::new("brand_new_code")));
    assert!(!error.code().is_some_and(ErrorCode::is_known));

    let text = r#"{"type":"error","event_id":"e","error":{"type":"server_error","code":null,"message":"m"}}"#;
    assert!(matches!(parse(text), ServerEvent::Error(e) if e.code().is_none()));
}

#[test]
fn error_client_event_id_is_read_from_either_place() {
    let inner_only = r#"{"type":"error","event_id":"e","error":{"type":"t","code":"function_call_outputs_required","message":"m","client_event_id":"continue_1"}}"#;
    let top_only = r#"{"type":"error","event_id":"e","client_event_id":"continue_2","error":{"type":"t","code":"c","message":"m"}}"#;
    assert_eq!(parse(inner_only).client_event_id(), Some("continue_1"));
    assert_eq!(parse(top_only).client_event_id(), Some("continue_2"));
    let ServerEvent::Error(error) = parse(inner_only) else {
        panic!("expected error");
    };
    assert_eq!(
        error.code(),
        Some(&ErrorCode::FUNCTION_CALL_OUTPUTS_REQUIRED)
    );
    assert_eq!(error.client_event_id, None);
    assert_eq!(error.error.client_event_id.as_deref(), Some("continue_1"));
}

#[test]
fn response_event_helpers() {
    let done = r#"{"type":"response.event","event_id":"evt_93","delegation_id":"item_9Tk2","event":{"type":"response.output_item.done","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_8Qx2","name":"find_appointments","arguments":"{\"date\":\"2026-12-03\"}","status":"completed"}}}"#;
    let ServerEvent::ResponseEvent(response) = parse(done) else {
        panic!("expected response.event");
    };
    let call = response.function_call().expect("a completed function call");
    assert_eq!(call.call_id, "call_8Qx2");
    assert_eq!(call.name, "find_appointments");
    assert_eq!(call.arguments, r#"{"date":"2026-12-03"}"#);
    assert_eq!(call.item_id, Some("fc_1"));
    assert_eq!(
        call.output_event("{\"slots\":[]}").to_json(),
        r#"{"type":"response.item.create","item":{"type":"function_call_output","call_id":"call_8Qx2","output":"{\"slots\":[]}"}}"#
    );
    assert_eq!(response.event_type(), Some("response.output_item.done"));
    assert_eq!(response.delegation_id.as_deref(), Some("item_9Tk2"));
    assert_eq!(response.response_id(), None);
    assert_eq!(response.usage(), None);

    let not_calls = [
        r#"{"type":"response.event","event_id":"e","event":{"type":"response.output_item.done","item":{"type":"function_call","call_id":"c","name":"n","arguments":"{}","status":"in_progress"}}}"#,
        r#"{"type":"response.event","event_id":"e","event":{"type":"response.output_item.added","item":{"type":"function_call","call_id":"c","name":"n","arguments":"","status":"in_progress"}}}"#,
        r#"{"type":"response.event","event_id":"e","event":{"type":"response.function_call_arguments.done","arguments":"{}"}}"#,
        r#"{"type":"response.event","event_id":"e","event":{"type":"response.output_item.done","item":{"type":"message","role":"assistant","content":[]}}}"#,
        r#"{"type":"response.event","event_id":"e","delegation_id":null,"event":{"type":"response.output_item.done","item":{"type":"function_call","name":"n","arguments":"{}"}}}"#,
    ];
    for text in not_calls {
        let ServerEvent::ResponseEvent(response) = parse(text) else {
            panic!("expected response.event");
        };
        assert_eq!(response.function_call(), None, "{text}");
    }

    let created = r#"{"type":"response.event","event_id":"e","delegation_id":"d1","event":{"type":"response.created","response":{"id":"resp_1","status":"in_progress","output":[]}}}"#;
    let ServerEvent::ResponseEvent(response) = parse(created) else {
        panic!("expected response.event");
    };
    assert_eq!(response.response_id(), Some("resp_1"));
    assert_eq!(response.usage(), None, "usage only from terminal events");

    let completed = r#"{"type":"response.event","event_id":"e","event":{"type":"response.completed","response":{"id":"resp_1","status":"completed","output":[],"usage":{"input_tokens":120,"output_tokens":30,"total_tokens":150,"input_tokens_details":{"cached_tokens":64},"output_tokens_details":{"reasoning_tokens":8}}}}}"#;
    let ServerEvent::ResponseEvent(response) = parse(completed) else {
        panic!("expected response.event");
    };
    let usage = response.usage().expect("usage on response.completed");
    assert_eq!(
        (usage.input_tokens, usage.output_tokens, usage.total_tokens),
        (120, 30, 150)
    );
    assert_eq!(
        usage.input_tokens_details.map(|d| d.cached_tokens),
        Some(64)
    );
    assert_eq!(
        usage.output_tokens_details.map(|d| d.reasoning_tokens),
        Some(8)
    );
    assert_eq!(response.response_id(), Some("resp_1"));
}

#[test]
fn malformed_known_events_name_the_event() {
    let cases = [
        (
            r#"{"type":"session.output_audio.delta"}"#,
            "session.output_audio.delta",
        ),
        (
            r#"{"type":"session.output_audio.delta","delta":42}"#,
            "session.output_audio.delta",
        ),
        (
            r#"{"type":"session.output_audio.delta","delta":null}"#,
            "session.output_audio.delta",
        ),
        (
            r#"{"type":"session.output_audio.delta","delta":"AA","start_ms":"0"}"#,
            "session.output_audio.delta",
        ),
        (
            r#"{"type":"session.output_audio.delta","delta":"AA","end_ms":1.5}"#,
            "session.output_audio.delta",
        ),
        (
            r#"{"type":"session.input_transcript.delta","delta":"a","start_ms":1}"#,
            "session.input_transcript.delta",
        ),
        (
            r#"{"type":"session.output_transcript.delta","delta":"a","start_ms":1,"end_ms":2,"event_id":7}"#,
            "session.output_transcript.delta",
        ),
        (
            r#"{"type":"session.input_audio.append","audio":[]}"#,
            "session.input_audio.append",
        ),
        (
            r#"{"type":"session.started","event_id":"e"}"#,
            "session.started",
        ),
        (
            r#"{"type":"session.started","session":{"id":"s","model":"m"}}"#,
            "session.started",
        ),
        (
            r#"{"type":"session.updated","session":"nope"}"#,
            "session.updated",
        ),
        (
            r#"{"type":"session.thinking.appended","event_id":"e","start_ms":1}"#,
            "session.thinking.appended",
        ),
        (
            r#"{"type":"session.delegation.created","delegation":{"id":"d","target":"client"}}"#,
            "session.delegation.created",
        ),
        (
            r#"{"type":"response.event","event_id":"e"}"#,
            "response.event",
        ),
        (
            r#"{"type":"session.usage.updated","usage":{"seconds":"many"}}"#,
            "session.usage.updated",
        ),
        (r#"{"type":"session.closed","reason":42}"#, "session.closed"),
        (r#"{"type":"error","error":"boom"}"#, "error"),
        (r#"{"type":"info","code":"x"}"#, "info"),
        (
            r#"{"type":"session.input_audio.muted","event_id":5}"#,
            "session.input_audio.muted",
        ),
        (
            r#"{"type":"transport.failed","session_id":"s"}"#,
            "transport.failed",
        ),
        (
            r#"{"type":"transport.dtmf.received","event_id":"e"}"#,
            "transport.dtmf.received",
        ),
    ];
    for (text, event_type) in cases {
        match ServerEvent::parse(text) {
            Err(error @ ParseError::Malformed { .. }) => {
                assert_eq!(error.event_type(), Some(event_type), "{text}");
                assert!(error.to_string().contains(event_type), "{error}");
            }
            other => panic!("{text}: expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn non_events_are_typed_errors() {
    for text in [
        "",
        "not json",
        "[1,2]",
        "\"session.started\"",
        "42",
        "{\"type\":",
        "{} trailing",
    ] {
        assert!(
            matches!(ServerEvent::parse(text), Err(ParseError::InvalidJson(_))),
            "{text:?}"
        );
    }
    for text in [
        "{}",
        r#"{"type":7}"#,
        r#"{"type":null}"#,
        r#"{"type":{"a":1}}"#,
        r#"{"event_id":"e"}"#,
    ] {
        assert!(
            matches!(ServerEvent::parse(text), Err(ParseError::MissingType)),
            "{text:?}"
        );
    }
}

#[test]
fn owned_events_outlive_the_frame() {
    let owned = {
        let frame = String::from(
            r#"{"type":"session.input_transcript.delta","event_id":"e","delta":"hello","start_ms":0,"end_ms":200}"#,
        );
        ServerEvent::parse(&frame).expect("valid").into_owned()
    };
    assert!(matches!(owned, ServerEvent::InputTranscriptDelta(d) if d.delta == "hello"));
}

#[test]
fn mock_servers_can_build_and_write_events() {
    let audio = ServerEvent::OutputAudioDelta(OutputAudioDelta {
        delta: Cow::Borrowed("AAAA"),
        start_ms: None,
        end_ms: None,
    });
    assert_eq!(
        serde_json::to_string(&audio).expect("serializes"),
        r#"{"type":"session.output_audio.delta","delta":"AAAA"}"#
    );
    let muted = ServerEvent::InputAudioMuted(Ack {
        event_id: Some("evt_1".into()),
        client_event_id: Some("mute_1".into()),
    });
    assert_eq!(
        serde_json::to_string(&muted).expect("serializes"),
        r#"{"type":"session.input_audio.muted","event_id":"evt_1","client_event_id":"mute_1"}"#
    );
    let closed = ServerEvent::SessionClosed(SessionClosed {
        event_id: Some("evt_9".into()),
        client_event_id: None,
        reason: CloseReason::EXPIRED,
        session: None,
        usage: Some(SessionUsage { seconds: 31.0 }),
    });
    let text = serde_json::to_string(&closed).expect("serializes");
    assert_eq!(
        text,
        r#"{"type":"session.closed","event_id":"evt_9","reason":"expired","usage":{"seconds":31.0}}"#
    );
    assert_eq!(parse(&text), closed);
}
