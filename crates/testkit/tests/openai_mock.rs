//! The mock Realtime server, driven by a raw tokio-tungstenite client.

use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use testkit::audio;
use testkit::openai::{
    ClosedBy, MockRealtime, Pacing, ResponseFault, ResponseScript, Script, ViolationKind,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const T: Duration = Duration::from_secs(5);

async fn connect_with(mock: &MockRealtime, headers: &[(&str, &str)]) -> Result<Ws, WsError> {
    let mut req = mock.ws_url("gpt-realtime").into_client_request()?;
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

async fn connect(mock: &MockRealtime) -> Ws {
    connect_with(mock, &[("authorization", "Bearer sk-test")])
        .await
        .expect("upgrade accepted")
}

async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(T, ws.next())
            .await
            .expect("server event in time")
            .expect("socket open")
            .expect("valid frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).expect("server events are JSON");
        }
    }
}

/// Receives events until one of type `ty` (inclusive).
async fn recv_until(ws: &mut Ws, ty: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let v = recv(ws).await;
        let done = v["type"] == ty;
        out.push(v);
        if done {
            return out;
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

async fn configure_pcmu(ws: &mut Ws, turn_detection: Value) -> Value {
    send(
        ws,
        json!({"type": "session.update", "session": {
            "type": "realtime",
            "audio": {
                "input": {"format": {"type": "audio/pcmu"}, "turn_detection": turn_detection},
                "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
            },
        }}),
    )
    .await;
    let v = recv(ws).await;
    assert_eq!(v["type"], "session.updated", "{v}");
    v
}

async fn append(ws: &mut Ws, mulaw: &[u8]) {
    for frame in mulaw.chunks(160) {
        send(
            ws,
            json!({"type": "input_audio_buffer.append",
                   "audio": base64::engine::general_purpose::STANDARD.encode(frame)}),
        )
        .await;
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn session_created_then_updated_with_merged_config() {
    let mock = MockRealtime::start().await.unwrap();
    assert!(mock.base_url().starts_with("http://127.0.0.1:"));
    assert!(mock.base_url().ends_with("/v1"));
    let mut ws = connect(&mock).await;
    let created = recv(&mut ws).await;
    assert_eq!(created["type"], "session.created");
    let s = &created["session"];
    assert_eq!(s["type"], "realtime");
    assert_eq!(s["model"], "gpt-realtime");
    assert_eq!(
        s["audio"]["input"]["format"],
        json!({"type": "audio/pcm", "rate": 24000})
    );
    assert_eq!(s["audio"]["input"]["turn_detection"]["type"], "server_vad");
    assert!(created["event_id"].as_str().unwrap().starts_with("event_"));

    let updated = configure_pcmu(
        &mut ws,
        json!({"type": "server_vad", "silence_duration_ms": 500}),
    )
    .await;
    let s = &updated["session"];
    // Formats are replaced, not merged: no stale "rate".
    assert_eq!(s["audio"]["input"]["format"], json!({"type": "audio/pcmu"}));
    assert_eq!(
        s["audio"]["output"]["format"],
        json!({"type": "audio/pcmu"})
    );
    assert_eq!(s["audio"]["output"]["voice"], "marin");
    assert_eq!(s["audio"]["output"]["speed"], 1.0);
    let td = &s["audio"]["input"]["turn_detection"];
    assert_eq!(td["silence_duration_ms"], 500);
    assert_eq!(td["threshold"], 0.5);
    assert_eq!(td["create_response"], true);
    assert_eq!(s["instructions"], created["session"]["instructions"]);

    let session = mock.wait_for_session(1, T).await.unwrap();
    assert_eq!(session.model(), "gpt-realtime");
    assert_eq!(
        session.request_header("authorization"),
        Some("Bearer sk-test")
    );
    assert_eq!(session.session_config(), updated["session"]);
    assert!(
        session.violations().is_empty(),
        "{:?}",
        session.violations()
    );
    let ev = session
        .wait_for_event_type("session.update", T)
        .await
        .unwrap();
    assert_eq!(ev.index, 0);
    assert_eq!(
        session.server_event_types(),
        vec!["session.created", "session.updated"]
    );

    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    let closed = session.wait_closed(T).await.unwrap();
    assert!(
        matches!(
            closed.by,
            ClosedBy::ClientClose {
                code: Some(1000),
                ..
            }
        ),
        "{closed:?}"
    );
}

#[tokio::test]
async fn upgrade_refusals() {
    let mock = MockRealtime::builder()
        .api_key("sk-right")
        .start()
        .await
        .unwrap();
    let status = |e: WsError| match e {
        WsError::Http(r) => {
            let body: Value =
                serde_json::from_slice(r.body().as_deref().unwrap_or_default()).unwrap();
            assert!(body["error"]["message"].is_string(), "{body}");
            r.status().as_u16()
        }
        other => panic!("expected an HTTP refusal, got {other}"),
    };
    assert_eq!(status(connect_with(&mock, &[]).await.unwrap_err()), 401);
    assert_eq!(
        status(
            connect_with(&mock, &[("authorization", "Bearer sk-wrong")])
                .await
                .unwrap_err()
        ),
        401
    );
    mock.refuse_next_upgrades(1, 500);
    assert_eq!(
        status(
            connect_with(&mock, &[("authorization", "Bearer sk-right")])
                .await
                .unwrap_err()
        ),
        500
    );
    let bad_path = format!("ws://{}/v1/other?model=x", mock.addr());
    let mut req = bad_path.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer sk-right".parse().unwrap());
    assert_eq!(
        status(tokio_tungstenite::connect_async(req).await.unwrap_err()),
        404
    );
    assert_eq!(mock.refused_upgrades().len(), 4);
    // The next one goes through.
    connect_with(&mock, &[("authorization", "Bearer sk-right")])
        .await
        .unwrap();
    mock.wait_for_session(1, T).await.unwrap();
}

#[tokio::test]
async fn vad_events_from_a_tone_burst_on_the_audio_clock() {
    let mock = MockRealtime::start().await.unwrap();
    let mut ws = connect(&mock).await;
    recv(&mut ws).await;
    configure_pcmu(
        &mut ws,
        json!({"type": "server_vad", "silence_duration_ms": 500, "prefix_padding_ms": 300,
               "create_response": false}),
    )
    .await;
    let caller = audio::CallerAudio::new()
        .silence(500)
        .speech(800)
        .silence(700);
    append(&mut ws, caller.as_bytes()).await;
    let events = recv_until(&mut ws, "conversation.item.done").await;
    assert_eq!(
        types(&events),
        vec![
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
        ]
    );
    let item_id = events[0]["item_id"].as_str().unwrap();
    assert_eq!(events[0]["audio_start_ms"], 200); // 500 ms onset − 300 ms prefix padding
    assert_eq!(events[1]["audio_end_ms"], 1800); // 1300 ms end of speech + 500 ms silence
    assert_eq!(events[1]["item_id"], item_id);
    assert_eq!(events[2]["item_id"], item_id);
    assert_eq!(events[3]["item"]["role"], "user");
    assert_eq!(events[3]["item"]["id"], item_id);

    let session = mock.wait_for_session(1, T).await.unwrap();
    session
        .wait_for_received_audio(caller.as_bytes().len(), T)
        .await
        .unwrap();
    assert_eq!(session.received_audio(), caller.as_bytes());
    assert!(session.responses().is_empty(), "create_response was false");
    assert!(
        session.violations().is_empty(),
        "{:?}",
        session.violations()
    );
}

#[tokio::test]
async fn scripted_response_in_ga_order_with_exact_audio() {
    let mock = MockRealtime::builder()
        .script(Script::new().then(ResponseScript::say("Hello there, caller.", 500)))
        .pacing(Pacing::Burst)
        .delta_bytes(1000)
        .start()
        .await
        .unwrap();
    let mut ws = connect(&mock).await;
    recv(&mut ws).await;
    configure_pcmu(&mut ws, Value::Null).await;
    send(
        &mut ws,
        json!({"type": "response.create", "event_id": "greet"}),
    )
    .await;
    let events = recv_until(&mut ws, "response.done").await;
    let t = types(&events);
    // 500 ms = 4000 bytes = 4 deltas of 1000 bytes, 3 transcript words.
    let expected: Vec<&str> = [
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
    ]
    .into_iter()
    .chain(
        [
            "response.output_audio.delta",
            "response.output_audio_transcript.delta",
        ]
        .into_iter()
        .cycle()
        .take(6),
    )
    .chain([
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ])
    .collect();
    assert_eq!(t, expected);
    let done = events.last().unwrap();
    assert_eq!(done["response"]["status"], "completed");
    assert!(done["response"]["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let item_id = events[2]["item"]["id"].as_str().unwrap();
    let mut audio_bytes = Vec::new();
    let mut transcript = String::new();
    for e in &events {
        match e["type"].as_str().unwrap() {
            "response.output_audio.delta" => {
                assert_eq!(e["item_id"], item_id);
                audio_bytes.extend(
                    base64::engine::general_purpose::STANDARD
                        .decode(e["delta"].as_str().unwrap())
                        .unwrap(),
                );
            }
            "response.output_audio_transcript.delta" => {
                transcript.push_str(e["delta"].as_str().unwrap())
            }
            _ => {}
        }
    }
    assert_eq!(transcript, "Hello there, caller.");
    assert_eq!(audio_bytes, audio::agent_tone(65536, 500));
    let session = mock.wait_for_session(1, T).await.unwrap();
    assert_eq!(session.assistant_audio(item_id).unwrap(), audio_bytes);
    let r = session.wait_for_response_done(1, T).await.unwrap();
    assert_eq!(r.status, "completed");
    assert_eq!(r.item_ids, vec![item_id.to_string()]);
    // Frames are identifiable: response 1, output 0, frames 0..25.
    let stamps: Vec<u32> = audio::find_stamps(&audio_bytes)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(stamps, (65536..65536 + 25).collect::<Vec<_>>());
}

#[tokio::test]
async fn speech_during_a_response_cancels_it() {
    let mock = MockRealtime::builder()
        .script(Script::new().then(ResponseScript::say("A very long answer", 10_000)))
        .pacing(Pacing::Speed(1.0))
        .delta_bytes(160)
        .start()
        .await
        .unwrap();
    let mut ws = connect(&mock).await;
    recv(&mut ws).await;
    configure_pcmu(&mut ws, json!({"type": "server_vad"})).await;
    send(&mut ws, json!({"type": "response.create"})).await;
    recv_until(&mut ws, "response.output_audio.delta").await;
    append(&mut ws, &audio::speech(100)).await;
    let events = recv_until(&mut ws, "response.done").await;
    let t = types(&events);
    let started = t
        .iter()
        .position(|&e| e == "input_audio_buffer.speech_started")
        .unwrap();
    assert_eq!(
        &t[started..],
        &[
            "input_audio_buffer.speech_started",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
    );
    let done = events.last().unwrap();
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "turn_detected"
    );
    assert_eq!(done["response"]["output"][0]["status"], "incomplete");
    let session = mock.wait_for_session(1, T).await.unwrap();
    let item = &session.assistant_items()[0];
    assert_eq!(item.status, "incomplete");
    assert!(item.audio.len() < 80_000, "deltas stopped mid-stream");
    assert_eq!(
        session.responses()[0].reason.as_deref(),
        Some("turn_detected")
    );
}

#[tokio::test]
async fn truncate_is_validated_like_the_service() {
    let mock = MockRealtime::builder()
        .script(Script::new().then(ResponseScript::say("One second of audio", 1000)))
        .pacing(Pacing::Burst)
        .start()
        .await
        .unwrap();
    let mut ws = connect(&mock).await;
    recv(&mut ws).await;
    configure_pcmu(&mut ws, Value::Null).await;
    send(&mut ws, json!({"type": "response.create"})).await;
    let events = recv_until(&mut ws, "response.done").await;
    let item_id = events[2]["item"]["id"].as_str().unwrap().to_string();

    send(
        &mut ws,
        json!({"type": "conversation.item.truncate", "event_id": "t1",
                         "item_id": item_id, "content_index": 0, "audio_end_ms": 1500}),
    )
    .await;
    let err = recv(&mut ws).await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert_eq!(
        err["error"]["message"],
        "Audio content of 1000ms is already shorter than 1500ms"
    );
    assert_eq!(err["error"]["event_id"], "t1");

    send(
        &mut ws,
        json!({"type": "conversation.item.truncate", "event_id": "t2",
                         "item_id": "item_nope", "content_index": 0, "audio_end_ms": 10}),
    )
    .await;
    let err = recv(&mut ws).await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["event_id"], "t2");

    send(
        &mut ws,
        json!({"type": "conversation.item.truncate",
                         "item_id": item_id, "content_index": 0, "audio_end_ms": 1000}),
    )
    .await;
    let ok = recv(&mut ws).await;
    assert_eq!(ok["type"], "conversation.item.truncated");
    assert_eq!(ok["audio_end_ms"], 1000);
    assert_eq!(ok["item_id"], item_id.as_str());

    let session = mock.wait_for_session(1, T).await.unwrap();
    let tr = session.truncations();
    assert_eq!(tr.len(), 3);
    assert!(!tr[0].accepted);
    assert_eq!(tr[0].audio_sent_ms, Some(1000));
    assert!(!tr[1].accepted);
    assert!(tr[2].accepted);
    assert_eq!(session.assistant_items()[0].truncated_at_ms, Some(1000));
}

#[tokio::test]
async fn response_lifecycle_errors() {
    let mock = MockRealtime::builder()
        .script(Script::new().then(ResponseScript::say("slow", 5000)))
        .pacing(Pacing::Speed(1.0))
        .start()
        .await
        .unwrap();
    let mut ws = connect(&mock).await;
    recv(&mut ws).await;
    configure_pcmu(&mut ws, Value::Null).await;
    send(
        &mut ws,
        json!({"type": "response.cancel", "event_id": "c0"}),
    )
    .await;
    let err = recv(&mut ws).await;
    assert_eq!(err["error"]["code"], "response_cancel_not_active");
    assert_eq!(err["error"]["event_id"], "c0");

    send(&mut ws, json!({"type": "response.create"})).await;
    recv_until(&mut ws, "response.created").await;
    send(
        &mut ws,
        json!({"type": "response.create", "event_id": "dup"}),
    )
    .await;
    let err = recv_until(&mut ws, "error").await.pop().unwrap();
    assert_eq!(
        err["error"]["code"],
        "conversation_already_has_active_response"
    );
    assert_eq!(err["error"]["event_id"], "dup");

    send(&mut ws, json!({"type": "response.cancel"})).await;
    let done = recv_until(&mut ws, "response.done").await.pop().unwrap();
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "client_cancelled"
    );

    let session = mock.wait_for_session(1, T).await.unwrap();
    // Errors are not violations: the client may legitimately race the server.
    assert!(
        session.violations().is_empty(),
        "{:?}",
        session.violations()
    );
}

#[tokio::test]
async fn protocol_violations_are_flagged() {
    let mock = MockRealtime::start().await.unwrap();
    let mut ws = connect_with(
        &mock,
        &[
            ("authorization", "Bearer k"),
            ("openai-beta", "realtime=v1"),
        ],
    )
    .await
    .unwrap();
    recv(&mut ws).await;
    // Audio before the session is configured for μ-law.
    append(&mut ws, &audio::silence(20)).await;
    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(recv(&mut ws).await["error"]["code"], "invalid_json");
    send(&mut ws, json!({"type": "response.audio.delta"})).await;
    let err = recv(&mut ws).await;
    assert_eq!(err["error"]["code"], "invalid_value");
    assert_eq!(err["error"]["param"], "type");
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"instructions": "x"}}),
    )
    .await;
    let err = recv(&mut ws).await;
    assert_eq!(
        err["error"]["message"],
        "Missing required parameter: 'session.type'."
    );
    send(
        &mut ws,
        json!({"type": "session.update",
                         "session": {"type": "realtime", "input_audio_format": "g711_ulaw"}}),
    )
    .await;
    let err = recv(&mut ws).await;
    assert_eq!(err["error"]["code"], "unknown_parameter");
    send(
        &mut ws,
        json!({"type": "input_audio_buffer.append", "audio": "%%%"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["type"], "error");
    send(&mut ws, json!({"event_id": "x"})).await;
    assert_eq!(recv(&mut ws).await["error"]["code"], "invalid_event");

    let session = mock.wait_for_session(1, T).await.unwrap();
    session
        .wait_for_violation(ViolationKind::MissingType, T)
        .await
        .unwrap();
    let kinds: Vec<ViolationKind> = session.violations().iter().map(|v| v.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ViolationKind::BetaHeader,
            ViolationKind::AudioBeforePcmuConfigured,
            ViolationKind::MalformedJson,
            ViolationKind::UnknownEventType,
            ViolationKind::MissingField,
            ViolationKind::UnknownField,
            ViolationKind::InvalidBase64,
            ViolationKind::MissingType,
        ]
    );
    assert_eq!(session.client_events().len(), 7);
}

#[tokio::test]
async fn function_call_flow_is_tracked() {
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(
                    ResponseScript::say("Goodbye", 100)
                        .then_call("end_call", r#"{"reason":"done"}"#)
                        .call_id("call_1"),
                )
                .then(ResponseScript::say("Ok", 100)),
        )
        .pacing(Pacing::Burst)
        .start()
        .await
        .unwrap();
    let mut ws = connect(&mock).await;
    recv(&mut ws).await;
    configure_pcmu(&mut ws, Value::Null).await;
    send(&mut ws, json!({"type": "response.create"})).await;
    let events = recv_until(&mut ws, "response.done").await;
    let args_done = events
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(args_done["call_id"], "call_1");
    assert_eq!(args_done["name"], "end_call");
    assert_eq!(args_done["arguments"], r#"{"reason":"done"}"#);
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, r#"{"reason":"done"}"#);
    assert_eq!(
        events.last().unwrap()["response"]["output"][1]["type"],
        "function_call"
    );

    send(
        &mut ws,
        json!({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "nope", "output": "{}"}}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["type"], "error");
    send(
        &mut ws,
        json!({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_1", "output": "{\"ok\":true}"}}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["type"], "conversation.item.added");
    assert_eq!(recv(&mut ws).await["type"], "conversation.item.done");
    send(&mut ws, json!({"type": "response.create"})).await;
    recv_until(&mut ws, "response.done").await;

    let session = mock.wait_for_session(1, T).await.unwrap();
    let call = session.wait_for_function_output("call_1", T).await.unwrap();
    assert!(call.response_completed);
    assert_eq!(call.output.as_deref(), Some("{\"ok\":true}"));
    assert!(call.followed_by_response_create);
    let kinds: Vec<ViolationKind> = session.violations().iter().map(|v| v.kind).collect();
    assert_eq!(kinds, vec![ViolationKind::UnknownCallId]);
}

#[tokio::test]
async fn scripted_tcp_drop_mid_response() {
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say("cut", 1000).fault(ResponseFault::DropAfterDeltas(2))),
        )
        .pacing(Pacing::Burst)
        .start()
        .await
        .unwrap();
    let mut ws = connect(&mock).await;
    recv(&mut ws).await;
    configure_pcmu(&mut ws, Value::Null).await;
    send(&mut ws, json!({"type": "response.create"})).await;
    let mut deltas = 0;
    let end = loop {
        match tokio::time::timeout(T, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "response.output_audio.delta" {
                    deltas += 1;
                }
            }
            Some(Ok(Message::Close(_))) => panic!("expected a drop without a close frame"),
            Some(Ok(_)) => {}
            Some(Err(e)) => break Some(e.to_string()),
            None => break None,
        }
    };
    assert_eq!(deltas, 2, "ended with {end:?}");
    let session = mock.wait_for_session(1, T).await.unwrap();
    assert_eq!(
        session.wait_closed(T).await.unwrap().by,
        ClosedBy::MockDropped
    );
}

/// A hung agent: after two deltas the mock sends nothing more, although it still reads (and
/// records) what the client sends and notices the client's close.
#[tokio::test]
async fn scripted_stall_mid_response() {
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say("hung", 1000).fault(ResponseFault::StallAfterDeltas(2))),
        )
        .pacing(Pacing::Burst)
        .start()
        .await
        .unwrap();
    let mut ws = connect(&mock).await;
    recv(&mut ws).await;
    configure_pcmu(&mut ws, Value::Null).await;
    send(&mut ws, json!({"type": "response.create"})).await;
    let session = mock.wait_for_session(1, T).await.unwrap();
    session
        .wait_for_server_event("response.output_audio.delta", 2, T)
        .await
        .unwrap();
    // Unstalled, this would be refused with an error (a response is active).
    send(&mut ws, json!({"type": "response.create"})).await;
    session
        .wait_for_nth_event(|e| e.event_type() == "response.create", 2, T)
        .await
        .unwrap();
    ws.close(None).await.unwrap();
    let mut after_close = Vec::new();
    let mut deltas = 0;
    while let Some(Ok(message)) = tokio::time::timeout(T, ws.next()).await.unwrap() {
        if let Message::Text(t) = message {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "response.output_audio.delta" {
                deltas += 1;
            } else if deltas == 2 {
                after_close.push(v["type"].to_string());
            }
        }
    }
    assert_eq!(deltas, 2);
    assert!(
        after_close.is_empty(),
        "sent after the stall: {after_close:?}"
    );
    assert!(matches!(
        session.wait_closed(T).await.unwrap().by,
        ClosedBy::ClientClose { .. }
    ));
    assert_eq!(
        session
            .server_event_types()
            .iter()
            .filter(|t| *t == "response.output_audio.delta")
            .count(),
        2
    );
}

#[tokio::test]
async fn manual_turns_without_vad() {
    let mock = MockRealtime::builder()
        .pacing(Pacing::Burst)
        .start()
        .await
        .unwrap();
    let mut ws = connect(&mock).await;
    recv(&mut ws).await;
    let updated = configure_pcmu(&mut ws, Value::Null).await;
    assert!(updated["session"]["audio"]["input"]["turn_detection"].is_null());
    send(
        &mut ws,
        json!({"type": "input_audio_buffer.commit", "event_id": "c1"}),
    )
    .await;
    let err = recv(&mut ws).await;
    assert_eq!(err["error"]["code"], "input_audio_buffer_commit_empty");
    assert_eq!(err["error"]["event_id"], "c1");
    // Speech without VAD: no speech events, only an explicit commit.
    append(&mut ws, &audio::speech(300)).await;
    send(&mut ws, json!({"type": "input_audio_buffer.commit"})).await;
    let events = recv_until(&mut ws, "conversation.item.done").await;
    assert_eq!(
        types(&events),
        vec![
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done"
        ]
    );
    send(&mut ws, json!({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "caller pressed 1"}]}})).await;
    let added = recv(&mut ws).await;
    assert_eq!(added["type"], "conversation.item.added");
    assert_eq!(added["previous_item_id"], events[0]["item_id"]);
    assert_eq!(recv(&mut ws).await["type"], "conversation.item.done");
    // The default script answers with the fallback response.
    send(&mut ws, json!({"type": "response.create"})).await;
    let done = recv_until(&mut ws, "response.done").await.pop().unwrap();
    assert_eq!(done["response"]["status"], "completed");
    let session = mock.wait_for_session(1, T).await.unwrap();
    assert!(
        session.violations().is_empty(),
        "{:?}",
        session.violations()
    );
    assert_eq!(
        session.assistant_items()[0].transcript,
        "This is the mock agent."
    );
}
