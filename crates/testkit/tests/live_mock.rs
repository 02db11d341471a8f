//! The GPT-Live mock against a raw WebSocket client: strict start, the input-timeline clock,
//! self-interruption, transcripts, both delegation modes, usage, every way a session ends.

use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use testkit::audio;
use testkit::live::{LiveSocketEnd, LiveTurn, LiveViolationKind, MockLive};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const T: Duration = Duration::from_secs(10);
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    seen: Vec<Value>,
}

impl Client {
    async fn connect(mock: &MockLive) -> Client {
        let mut req = mock.ws_url().into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", "Bearer sk-test".parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        Client {
            ws,
            seen: Vec::new(),
        }
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn start(mock: &MockLive, delegation: Value) -> Client {
        let mut c = Client::connect(mock).await;
        c.send(
            json!({"type": "session.start", "event_id": "start_1", "session": {
            "model": "gpt-live-1", "instructions": "Be brief.",
            "audio": {"format": {"type": "audio/pcmu", "rate": 8000}, "output": {"voice": "marin"}},
            "delegation": delegation}}),
        )
        .await;
        let started = c.next_of("session.started").await;
        assert_eq!(started["client_event_id"], "start_1");
        c
    }

    async fn audio(&mut self, mulaw: &[u8]) {
        for frame in mulaw.chunks(audio::FRAME_BYTES) {
            self.send(json!({"type": "session.input_audio.append", "audio": B64.encode(frame)}))
                .await;
        }
    }

    /// The next event of `ty` (everything read is kept in `seen`).
    async fn next_of(&mut self, ty: &str) -> Value {
        let read = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap();
                        self.seen.push(v.clone());
                        if v["type"] == ty {
                            return v;
                        }
                    }
                    Some(Ok(_)) => {}
                    other => panic!("socket ended waiting for {ty}: {other:?}"),
                }
            }
        };
        tokio::time::timeout(T, read)
            .await
            .unwrap_or_else(|_| panic!("no {ty}"))
    }
}

#[tokio::test]
async fn upgrades_need_bearer_and_no_query() {
    let mock = MockLive::start().await.unwrap();
    let req = mock.ws_url().into_client_request().unwrap();
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    let mut req = format!("{}?model=gpt-live-1", mock.ws_url())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer k".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    let refused: Vec<u16> = mock.refused().iter().map(|r| r.status).collect();
    assert_eq!(refused, [401, 400]);
}

#[tokio::test]
async fn start_is_strict_and_comes_first() {
    let mock = MockLive::start().await.unwrap();
    let mut c = Client::connect(&mock).await;
    c.audio(&audio::silence(20)).await;
    let err = c.next_of("error").await;
    assert_eq!(err["error"]["code"], "session_not_started");
    c.send(json!({"type": "session.start", "session": {"model": "gpt-live-1",
        "audio": {"format": {"type": "audio/pcmu", "rate": 8000}}, "turn_detection": {"type": "server_vad"}}}))
        .await;
    let err = c.next_of("error").await;
    assert_eq!(err["error"]["code"], "unknown_parameter");
    assert_eq!(err["error"]["param"], "session.turn_detection");
    let session = mock.wait_for_session(1, T).await.unwrap();
    let end = session.wait_closed(T).await.unwrap();
    assert!(
        matches!(
            end,
            LiveSocketEnd::MockClosed {
                code: Some(1008),
                ..
            }
        ),
        "{end:?}"
    );
    assert!(session.session_id().is_none());
    let kinds: Vec<_> = session.violations().iter().map(|v| v.kind).collect();
    assert_eq!(
        kinds,
        [
            LiveViolationKind::AudioBeforeStart,
            LiveViolationKind::InvalidStart
        ]
    );
}

#[tokio::test]
async fn output_is_paced_to_input_and_greeting_commentary_is_spoken() {
    let mock = MockLive::builder()
        .usage_interval_ms(500)
        .start()
        .await
        .unwrap();
    let mut c = Client::start(&mock, Value::Null).await;
    let session = mock.wait_for_session(1, T).await.unwrap();
    let id = session.session_id().unwrap();
    assert!(id.starts_with("live_"));
    assert!(session.expires_at().unwrap() > 1_700_000_000);

    // No input, no output: the timeline has not moved.
    c.send(
        json!({"type": "session.commentary.append", "event_id": "greet", "delegation_id": null,
        "content": "Thanks for calling Acme."}),
    )
    .await;
    // 1 s of input → exactly 10 deltas of 800 bytes.
    c.audio(&audio::silence(1000)).await;
    let ack = c.next_of("session.commentary.appended").await;
    assert_eq!(ack["client_event_id"], "greet");
    c.next_of("session.usage.updated").await;
    let session_audio_len = session.wait_for_received_audio(8000, T).await.unwrap();
    assert_eq!(session_audio_len, 8000);
    session
        .wait_for_server_event("session.usage.updated", 2, T)
        .await
        .unwrap();
    let deltas = session
        .server_event_types()
        .iter()
        .filter(|t| *t == "session.output_audio.delta")
        .count();
    assert_eq!(deltas, 10);
    let transcript = c.next_of("session.output_transcript.delta").await;
    assert!(transcript["start_ms"].as_i64().unwrap() < transcript["end_ms"].as_i64().unwrap());
    c.audio(&audio::silence(600)).await;
    let greeting = session.wait_for_utterance_end(1, T).await.unwrap();
    assert_eq!(greeting.text, "Thanks for calling Acme.");
    assert_eq!(greeting.spoken_bytes, 1500 * 8);
    assert_eq!(greeting.ended_ms, Some(1500));
    session.wait_for_received_audio(12800, T).await.unwrap();
    c.next_of("session.usage.updated").await;
    let out = session.sent_audio();
    assert_eq!(&out[..12000], &audio::agent_tone(0x20000, 1500)[..]);
    assert!(out[12000..].iter().all(|&b| b == audio::SILENCE));
    assert_eq!(audio::find_stamps(&out).len(), 75);
    assert!(
        session.violations().is_empty(),
        "{:?}",
        session.violations()
    );
}

#[tokio::test]
async fn the_model_stops_itself_when_the_caller_talks_over_it() {
    let mock = MockLive::builder()
        .script([LiveTurn::say("A long answer that goes on and on.", 3000)])
        .caller_transcripts(&[" What are your hours?"])
        .start()
        .await
        .unwrap();
    let mut c = Client::start(&mock, json!({"type": "client"})).await;
    let session = mock.wait_for_session(1, T).await.unwrap();
    c.audio(&audio::speech(600)).await;
    c.audio(&audio::silence(1000)).await;
    let caller = c.next_of("session.input_transcript.delta").await;
    assert_eq!(caller["delta"], " What are your hours?");
    assert_eq!(caller["start_ms"], 0);
    let end = caller["end_ms"].as_i64().unwrap();
    assert!((550..=600).contains(&end), "{end}");
    session.wait_for_utterance(1, T).await.unwrap();
    // Talk over it.
    c.audio(&audio::speech(300)).await;
    let u = session.wait_for_utterance_end(1, T).await.unwrap();
    let at = u.interrupted_at_ms.expect("interrupted");
    assert!(u.spoken_bytes < 3000 * 8);
    assert!((1600..=1950).contains(&at), "{at}");
    // From then on the output is silence.
    c.audio(&audio::silence(1000)).await;
    session
        .wait_for_received_audio((600 + 1000 + 300 + 1000) * 8, T)
        .await
        .unwrap();
    let out = session.sent_audio();
    let cut = (at as usize) * 8;
    assert!(out[cut + 800..].iter().all(|&b| b == audio::SILENCE));
}

#[tokio::test]
async fn responses_delegation_refuses_create_until_every_call_is_answered() {
    let mock = MockLive::builder()
        .script([LiveTurn::calls(&[
            ("lookup", r#"{"id":1}"#),
            ("hours", "{}"),
        ])])
        .start()
        .await
        .unwrap();
    let mut c = Client::start(
        &mock,
        json!({"type": "responses", "responses": {"model": "gpt-5.6-luna",
        "tools": [{"type": "function", "name": "lookup"}, {"type": "function", "name": "hours"}]}}),
    )
    .await;
    let session = mock.wait_for_session(1, T).await.unwrap();
    c.audio(&audio::speech(400)).await;
    c.audio(&audio::silence(600)).await;
    let created = c.next_of("session.delegation.created").await;
    assert_eq!(created["delegation"]["target"], "responses");
    let mut calls = Vec::new();
    while calls.len() < 2 {
        let e = c.next_of("response.event").await;
        let nested = &e["event"];
        if nested["type"] == "response.output_item.done" && nested["item"]["status"] == "completed"
        {
            calls.push(nested["item"]["call_id"].as_str().unwrap().to_owned());
        }
    }
    c.send(json!({"type": "response.item.create", "item": {"type": "function_call_output", "call_id": calls[0], "output": "{\"ok\":true}"}})).await;
    c.send(json!({"type": "response.create"})).await;
    let err = c.next_of("error").await;
    assert_eq!(err["error"]["code"], "function_call_outputs_required");
    c.send(json!({"type": "response.item.create", "item": {"type": "function_call_output", "call_id": calls[1], "output": "9-5"}})).await;
    c.send(json!({"type": "response.create"})).await;
    c.audio(&audio::silence(200)).await;
    let answered = session.wait_for_delegation_answered(2, T).await.unwrap();
    assert_eq!(answered.outputs, ["9-5"]);
    assert_eq!(session.response_creates(), 1);
    let result = session.wait_for_utterance(1, T).await.unwrap();
    assert_eq!(result.text, "{\"ok\":true}; 9-5");
    let kinds: Vec<_> = session.violations().iter().map(|v| v.kind).collect();
    assert_eq!(kinds, [LiveViolationKind::CreateWithUnansweredCall]);
}

#[tokio::test]
async fn client_delegation_is_answered_with_an_append() {
    let mock = MockLive::builder()
        .script([LiveTurn::call("ignored", "{}")])
        .start()
        .await
        .unwrap();
    let mut c = Client::start(&mock, json!({"type": "client"})).await;
    let session = mock.wait_for_session(1, T).await.unwrap();
    c.audio(&audio::speech(400)).await;
    c.audio(&audio::silence(600)).await;
    let created = c.next_of("session.delegation.created").await;
    assert_eq!(created["delegation"]["target"], "client");
    assert!(created["delegation"].get("response_id").is_none());
    let id = created["delegation"]["id"].as_str().unwrap().to_owned();
    c.send(json!({"type": "response.create"})).await;
    assert_eq!(
        c.next_of("error").await["error"]["code"],
        "invalid_delegation_mode"
    );
    c.send(json!({"type": "session.commentary.append", "delegation_id": id, "content": "Your order shipped."})).await;
    c.audio(&audio::silence(200)).await;
    c.next_of("session.commentary.appended").await;
    let d = session.wait_for_delegation_answered(1, T).await.unwrap();
    assert_eq!(d.outputs, ["Your order shipped."]);
    assert_eq!(
        session.wait_for_utterance(1, T).await.unwrap().text,
        "Your order shipped."
    );
}

#[tokio::test]
async fn session_close_answers_session_closed_with_final_usage() {
    let mock = MockLive::start().await.unwrap();
    let mut c = Client::start(&mock, Value::Null).await;
    let session = mock.wait_for_session(1, T).await.unwrap();
    c.audio(&audio::silence(500)).await;
    c.send(json!({"type": "session.close", "event_id": "bye"}))
        .await;
    let closed = c.next_of("session.closed").await;
    assert_eq!(closed["reason"], "close_requested");
    assert_eq!(closed["client_event_id"], "bye");
    assert_eq!(closed["usage"]["seconds"], 0.5);
    assert_eq!(closed["session"]["status"], "active");
    // The server closes next (no status code); answer it.
    loop {
        match c.ws.next().await {
            Some(Ok(Message::Close(frame))) => {
                assert!(frame.is_none());
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    // Reading on writes tungstenite's close reply.
    while c.ws.next().await.is_some() {}
    let end = session.wait_closed(T).await.unwrap();
    assert_eq!(
        end,
        LiveSocketEnd::MockClosed {
            code: None,
            handshake_completed: true
        }
    );
    assert!(session.close_requested());
}

#[tokio::test]
async fn sessions_expire_and_can_be_closed_with_any_reason() {
    let mock = MockLive::builder()
        .lifetime(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut c = Client::start(&mock, Value::Null).await;
    let closed = c.next_of("session.closed").await;
    assert_eq!(closed["reason"], "expired");

    let mock = MockLive::start().await.unwrap();
    let mut c = Client::start(&mock, Value::Null).await;
    let session = mock.wait_for_session(1, T).await.unwrap();
    session.close_session("content");
    assert_eq!(c.next_of("session.closed").await["reason"], "content");
    assert_eq!(session.closed_reason().as_deref(), Some("content"));
}

#[tokio::test]
async fn appends_need_the_delegation_id_key() {
    let mock = MockLive::start().await.unwrap();
    let mut c = Client::start(&mock, Value::Null).await;
    c.send(json!({"type": "session.thinking.append", "content": "x"}))
        .await;
    assert_eq!(c.next_of("error").await["error"]["param"], "delegation_id");
    c.send(json!({"type": "input_audio_buffer.append", "audio": "AAAA"}))
        .await;
    assert_eq!(c.next_of("error").await["error"]["code"], "invalid_value");
    let session = mock.wait_for_session(1, T).await.unwrap();
    let kinds: Vec<_> = session.violations().iter().map(|v| v.kind).collect();
    assert_eq!(
        kinds,
        [
            LiveViolationKind::BadAppend,
            LiveViolationKind::UnknownEvent
        ]
    );
}
