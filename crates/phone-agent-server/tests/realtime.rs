//! Full calls through the mock OpenAI Realtime server: the session configuration, the greeting
//! bytes reaching the caller, caller audio reaching OpenAI byte-identical, the prompt rendered
//! and re-read per call, and failures of the OpenAI side ending the call cleanly.

mod common;

use std::path::Path;

use common::{FakeTwilio, TestServer, WAIT, post_voice, start, stream_parameters};
use testkit::openai::{ClosedBy, MockRealtime, ResponseScript, Script};

async fn realtime_server(mock: &MockRealtime, prompt: &Path, extra: &[(&str, &str)]) -> TestServer {
    let base = mock.base_url();
    let mut vars = vec![
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
    ];
    vars.extend_from_slice(extra);
    start(&vars).await
}

/// Places a call: webhook, upgrade, `start` with the TwiML's parameters.
async fn call(server: &TestServer, sid: &str) -> FakeTwilio {
    let (status, twiml) = post_voice(server, sid, None).await;
    assert_eq!(status, 200, "{twiml}");
    let mut twilio = FakeTwilio::open(server, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    twilio
}

#[tokio::test]
async fn a_full_call_relays_both_directions_byte_identical() {
    let mock = MockRealtime::builder()
        .script(Script::new().then(ResponseScript::say("Thanks for calling!", 600)))
        .start()
        .await
        .unwrap();
    let prompt =
        common::prompt_file("Caller {{from}} dialled {{to}} on call {{call_sid}} for {{tenant}}.");
    let server = realtime_server(
        &mock,
        &prompt,
        &[
            ("PHONE_AGENT_TWILIO__STREAM_PARAMETERS__TENANT", "acme"),
            ("PHONE_AGENT_AGENT__VOICE", "cedar"),
        ],
    )
    .await;
    let sid = "CA00000000000000000000000000000030";
    let mut twilio = call(&server, sid).await;

    let session = mock.wait_for_session(1, WAIT).await.unwrap();
    assert_eq!(session.model(), "gpt-realtime-2.1");
    assert_eq!(
        session.request_header("authorization"),
        Some("Bearer sk-test")
    );
    assert!(session.request_header("openai-beta").is_none());
    session
        .wait_for_event_type("session.update", WAIT)
        .await
        .unwrap();

    // The session as configured for a phone call.
    let config = session.session_config();
    assert_eq!(
        config["instructions"],
        format!("Caller +14155551234 dialled +15005550006 on call {sid} for acme.")
    );
    assert_eq!(config["audio"]["input"]["format"]["type"], "audio/pcmu");
    assert_eq!(config["audio"]["output"]["format"]["type"], "audio/pcmu");
    assert_eq!(config["audio"]["output"]["voice"], "cedar");
    assert_eq!(
        config["audio"]["input"]["turn_detection"]["type"],
        "server_vad"
    );
    assert_eq!(
        config["audio"]["input"]["turn_detection"]["interrupt_response"],
        true
    );
    assert_eq!(
        config["audio"]["input"]["transcription"]["model"],
        "gpt-4o-mini-transcribe"
    );
    assert_eq!(
        config["audio"]["input"]["noise_reduction"]["type"],
        "near_field"
    );

    // The greeting: the server asks for it, and exactly the mock's audio reaches the caller.
    session
        .wait_for_event_type("response.create", WAIT)
        .await
        .unwrap();
    session.wait_for_response_done(1, WAIT).await.unwrap();
    let spoken = session.all_assistant_audio();
    assert_eq!(spoken.len(), 600 * 8);
    assert!(
        twilio.read_until_audio(|a| a.len() >= spoken.len()).await,
        "greeting reached the caller"
    );
    assert_eq!(twilio.received_audio, spoken, "greeting bytes identical");

    // Caller audio reaches OpenAI byte-identical.
    let caller = testkit::audio::speech(400);
    twilio.send_audio(&caller).await;
    session
        .wait_for_received_audio(caller.len(), WAIT)
        .await
        .unwrap();
    assert_eq!(session.received_audio(), caller);

    assert!(
        session.violations().is_empty(),
        "{:?}",
        session.violations()
    );

    // Hang up: the OpenAI session is closed with the call.
    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
    let closed = session.wait_closed(WAIT).await.unwrap();
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

    // The call shows up in the metrics.
    let metrics = async {
        loop {
            let text = testkit::http::get(&server.metrics_url())
                .await
                .unwrap()
                .text();
            if text.contains("phone_agent_calls_total{end_reason=") {
                return text;
            }
            tokio::task::yield_now().await;
        }
    };
    let text = tokio::time::timeout(WAIT, metrics)
        .await
        .expect("call metrics");
    assert!(text.contains(r#"end_reason="caller_hung_up""#), "{text}");
    assert!(
        text.contains("phone_agent_agent_connect_seconds_bucket"),
        "histogram buckets: {text}"
    );
    assert!(text.contains("phone_agent_relay_seconds_bucket"), "{text}");
    assert!(
        text.contains("phone_agent_first_audio_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("phone_agent_active_calls"), "{text}");
}

#[tokio::test]
async fn the_prompt_is_read_at_every_call() {
    let mock = MockRealtime::start().await.unwrap();
    let prompt = common::prompt_file("Version one for {{from}}.");
    let server = realtime_server(&mock, &prompt, &[("PHONE_AGENT_AGENT__GREETING", "off")]).await;

    let sid1 = "CA00000000000000000000000000000031";
    let mut first = call(&server, sid1).await;
    let session = mock.wait_for_session(1, WAIT).await.unwrap();
    session
        .wait_for_event_type("session.update", WAIT)
        .await
        .unwrap();
    assert_eq!(
        session.session_config()["instructions"],
        "Version one for +14155551234."
    );
    first.stop(sid1).await;
    assert!(first.read_until_closed().await);

    std::fs::write(&prompt, "Version two, call {{call_sid}}.").unwrap();
    let sid2 = "CA00000000000000000000000000000032";
    let mut second = call(&server, sid2).await;
    let session = mock.wait_for_session(2, WAIT).await.unwrap();
    session
        .wait_for_event_type("session.update", WAIT)
        .await
        .unwrap();
    assert_eq!(
        session.session_config()["instructions"],
        format!("Version two, call {sid2}.")
    );
    second.stop(sid2).await;
    assert!(second.read_until_closed().await);
}

#[tokio::test]
async fn openai_refusing_the_connection_ends_the_call() {
    let mock = MockRealtime::start().await.unwrap();
    mock.refuse_next_upgrades(10, 401);
    let prompt = common::prompt_file("hi");
    let server = realtime_server(&mock, &prompt, &[]).await;
    let sid = "CA00000000000000000000000000000033";
    let mut twilio = call(&server, sid).await;
    assert!(
        twilio.read_until_closed().await,
        "the call ends when the agent cannot connect"
    );
    assert!(mock.sessions().is_empty());
}

#[tokio::test]
async fn openai_closing_mid_call_ends_the_call_without_reconnects() {
    let mock = MockRealtime::start().await.unwrap();
    let prompt = common::prompt_file("hi");
    let server = realtime_server(
        &mock,
        &prompt,
        &[
            ("PHONE_AGENT_AGENT__GREETING", "off"),
            ("PHONE_AGENT_RECONNECT__ENABLED", "false"),
        ],
    )
    .await;
    let sid = "CA00000000000000000000000000000034";
    let mut twilio = call(&server, sid).await;
    let session = mock.wait_for_session(1, WAIT).await.unwrap();
    session
        .wait_for_event_type("session.update", WAIT)
        .await
        .unwrap();
    session.close(1011, "server error");
    assert!(
        twilio.read_until_closed().await,
        "Twilio's stream is closed when OpenAI goes away"
    );
}

/// A tool that records its invocations and answers `{"ok":true,"city":…}`.
struct Weather {
    calls: std::sync::Mutex<Vec<bridge_core::tools::ToolInvocation>>,
}

#[async_trait::async_trait]
impl bridge_core::tools::ToolExecutor for Weather {
    fn definitions(&self) -> Vec<bridge_core::tools::ToolDefinition> {
        vec![bridge_core::tools::ToolDefinition {
            name: "get_weather".into(),
            description: "The weather in a city.".into(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"]
            }),
        }]
    }

    async fn call(
        &self,
        invocation: bridge_core::tools::ToolInvocation,
    ) -> bridge_core::tools::ToolOutput {
        let city = serde_json::from_str::<serde_json::Value>(&invocation.arguments)
            .ok()
            .and_then(|v| v["city"].as_str().map(str::to_owned))
            .unwrap_or_default();
        self.calls.lock().unwrap().push(invocation);
        bridge_core::tools::ToolOutput::json(&serde_json::json!({"ok": true, "city": city}))
    }
}

#[tokio::test]
async fn tools_are_declared_run_and_answered() {
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(
                    ResponseScript::say("Let me check.", 200)
                        .then_call("get_weather", r#"{"city":"Oslo"}"#),
                )
                .then(ResponseScript::say("It is sunny in Oslo.", 200)),
        )
        .start()
        .await
        .unwrap();
    let prompt = common::prompt_file("hi");
    let base = mock.base_url();
    let tool = std::sync::Arc::new(Weather {
        calls: std::sync::Mutex::new(Vec::new()),
    });
    let server = common::start_with_tools(
        &[
            ("OPENAI_API_KEY", "sk-test"),
            ("OPENAI_BASE_URL", base.as_str()),
            ("PROMPT_PATH", prompt.to_str().unwrap()),
        ],
        Some(tool.clone()),
    )
    .await;
    let sid = "CA00000000000000000000000000000035";
    let mut twilio = call(&server, sid).await;
    let session = mock.wait_for_session(1, WAIT).await.unwrap();
    session
        .wait_for_event_type("session.update", WAIT)
        .await
        .unwrap();
    let config = session.session_config();
    assert_eq!(config["tools"][0]["type"], "function");
    assert_eq!(config["tools"][0]["name"], "get_weather");
    assert_eq!(config["tools"][0]["parameters"]["required"][0], "city");

    // The greeting response calls the tool; its output goes back, followed by a response.
    let calls = mock_function_calls(&session).await;
    let record = session
        .wait_for_function_output(&calls, WAIT)
        .await
        .unwrap();
    assert_eq!(
        record.output.as_deref(),
        Some(r#"{"city":"Oslo","ok":true}"#)
    );
    assert!(record.response_completed);
    {
        let invocations = tool.calls.lock().unwrap();
        assert_eq!(invocations.len(), 1);
        assert_eq!(invocations[0].phone_call_id, sid);
    }
    // The second response was asked for by us after the tool output (no caller audio was sent,
    // so VAD could not have started it).
    let second = session.wait_for_response_done(2, WAIT).await.unwrap();
    assert_eq!(second.trigger, testkit::openai::ResponseTrigger::Client);
    assert!(session.function_calls()[0].followed_by_response_create);

    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
    assert!(
        session.violations().is_empty(),
        "{:?}",
        session.violations()
    );
}

/// The call id of the first function call the mock made.
async fn mock_function_calls(session: &testkit::openai::SessionHandle) -> String {
    session
        .wait_for_server_event("response.function_call_arguments.done", 1, WAIT)
        .await
        .unwrap();
    session.function_calls()[0].call_id.clone()
}

#[tokio::test]
async fn keypad_presses_reach_the_agent_as_context() {
    let mock = MockRealtime::start().await.unwrap();
    let prompt = common::prompt_file("hi");
    let server = realtime_server(&mock, &prompt, &[("PHONE_AGENT_AGENT__GREETING", "off")]).await;
    let sid = "CA00000000000000000000000000000036";
    let mut twilio = call(&server, sid).await;
    let session = mock.wait_for_session(1, WAIT).await.unwrap();
    session
        .wait_for_event_type("session.update", WAIT)
        .await
        .unwrap();
    let stream_sid = twilio.stream_sid.clone();
    twilio
        .send_raw(&format!(
            r#"{{"event":"dtmf","streamSid":"{stream_sid}","sequenceNumber":"5","dtmf":{{"track":"inbound_track","digit":"7"}}}}"#
        ))
        .await;
    let item = session
        .wait_for_event_type("conversation.item.create", WAIT)
        .await
        .unwrap();
    assert!(item.raw.contains('7'), "{}", item.raw);
    assert!(item.raw.contains(r#""type":"message""#), "{}", item.raw);
    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
}

#[tokio::test]
async fn a_missing_prompt_file_at_call_time_falls_back_to_a_generic_prompt() {
    let mock = MockRealtime::start().await.unwrap();
    let prompt = common::prompt_file("Specific prompt.");
    let server = realtime_server(&mock, &prompt, &[("PHONE_AGENT_AGENT__GREETING", "off")]).await;
    std::fs::remove_file(&prompt).unwrap();
    let sid = "CA00000000000000000000000000000037";
    let mut twilio = call(&server, sid).await;
    let session = mock.wait_for_session(1, WAIT).await.unwrap();
    session
        .wait_for_event_type("session.update", WAIT)
        .await
        .unwrap();
    let instructions = session.session_config()["instructions"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(instructions.contains("voice assistant"), "{instructions}");
    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
}

/// A tool that asks to hang up.
struct HangUpTool;

#[async_trait::async_trait]
impl bridge_core::tools::ToolExecutor for HangUpTool {
    fn definitions(&self) -> Vec<bridge_core::tools::ToolDefinition> {
        vec![bridge_core::tools::ToolDefinition {
            name: "end_call".into(),
            description: "Ends the call.".into(),
            parameters: serde_json::json!({"type": "object", "properties": {}}),
        }]
    }

    async fn call(
        &self,
        _invocation: bridge_core::tools::ToolInvocation,
    ) -> bridge_core::tools::ToolOutput {
        bridge_core::tools::ToolOutput {
            output: r#"{"ok":true}"#.into(),
            action: Some(bridge_core::tools::CallAction::Hangup),
        }
    }
}

/// Call control that records what it was asked to do.
#[derive(Default)]
struct RecordingControl {
    executed: std::sync::Mutex<Vec<(String, bridge_core::tools::CallAction)>>,
    notify: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl bridge_core::driver::CallControl for RecordingControl {
    async fn execute(
        &self,
        call: &bridge_core::caller::CallerInfo,
        action: &bridge_core::tools::CallAction,
    ) -> Result<(), bridge_core::driver::ControlError> {
        self.executed
            .lock()
            .unwrap()
            .push((call.call_id.clone(), action.clone()));
        self.notify.notify_one();
        Ok(())
    }
}

/// `Server::with_call_control`: an injected call control executes the hang-up a tool asked
/// for, for the right call (instead of the built-in no-op).
#[tokio::test]
async fn an_injected_call_control_executes_the_tools_hang_up() {
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say("Goodbye then.", 200).then_call("end_call", "{}"))
                .then(ResponseScript::say("Bye!", 200)),
        )
        .start()
        .await
        .unwrap();
    let prompt = common::prompt_file("hi");
    let base = mock.base_url();
    let control = std::sync::Arc::new(RecordingControl::default());
    let server = common::start_with(
        &[
            ("OPENAI_API_KEY", "sk-test"),
            ("OPENAI_BASE_URL", base.as_str()),
            ("PROMPT_PATH", prompt.to_str().unwrap()),
        ],
        Some(std::sync::Arc::new(HangUpTool)),
        Some(control.clone()),
    )
    .await;
    let sid = "CA00000000000000000000000000000038";
    let mut twilio = call(&server, sid).await;
    let executed = async {
        loop {
            let notified = control.notify.notified();
            if !control.executed.lock().unwrap().is_empty() {
                break;
            }
            notified.await;
        }
    };
    // Keep reading (and echoing marks) so the goodbye is heard and the hang-up happens.
    tokio::select! {
        _ = tokio::time::timeout(WAIT, executed) => {}
        _ = twilio.read_until_closed() => {}
    }
    assert!(twilio.read_until_closed().await, "the call ends");
    let executed = control.executed.lock().unwrap().clone();
    assert_eq!(
        executed,
        vec![(sid.to_owned(), bridge_core::tools::CallAction::Hangup)]
    );
}

/// A stand-in OpenAI that accepts the WebSocket and records what it receives, answering only
/// what the test scripts (`replies` are sent after the first message, the `session.update`).
async fn silent_openai(
    replies: Vec<String>,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    use futures_util::{SinkExt as _, StreamExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let mut replies = Some(replies);
        while let Some(Ok(message)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                let _ = tx.send(serde_json::from_str(text.as_str()).unwrap());
                for reply in replies.take().unwrap_or_default() {
                    let _ = ws
                        .send(tokio_tungstenite::tungstenite::Message::text(reply))
                        .await;
                }
            }
        }
    });
    (base, rx)
}

/// The greeting's `response.create` follows the `session.update` at once: OpenAI processes a
/// session's events in order, so waiting a round trip for `session.updated` only delays the
/// greeting.
#[tokio::test]
async fn the_greeting_is_requested_right_after_the_session_update() {
    let (base, mut received) = silent_openai(Vec::new()).await;
    let prompt = common::prompt_file("hi");
    let server = start(&[
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
    ])
    .await;
    let sid = "CA00000000000000000000000000000039";
    let mut twilio = call(&server, sid).await;
    let first = tokio::time::timeout(WAIT, received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first["type"], "session.update");
    // Nothing answered the session.update, and yet:
    let second = tokio::time::timeout(WAIT, received.recv())
        .await
        .expect("the greeting is requested without waiting for session.updated")
        .unwrap();
    assert_eq!(second["type"], "response.create", "{second}");
    assert_eq!(
        second["response"]["instructions"],
        phone_agent_server::config::DEFAULT_GREETING
    );
    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
}

/// An `error` before `session.updated` means OpenAI refused the session configuration: the
/// call ends at once (it would otherwise wait out the connect timeout in silence).
#[tokio::test]
async fn an_error_before_session_updated_ends_the_call_at_once() {
    let error = r#"{"type":"error","event_id":"event_1","error":{"type":"invalid_request_error","code":"invalid_value","message":"Invalid value: 'nobody'. Supported values are: 'alloy', 'marin'.","param":"session.audio.output.voice","event_id":null}}"#;
    let (base, mut received) = silent_openai(vec![error.to_owned()]).await;
    let prompt = common::prompt_file("hi");
    let server = start(&[
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
        ("PHONE_AGENT_AGENT__VOICE", "nobody"),
    ])
    .await;
    let sid = "CA00000000000000000000000000000040";
    let mut twilio = call(&server, sid).await;
    let first = tokio::time::timeout(WAIT, received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first["type"], "session.update");
    assert!(
        twilio.read_until_closed().await,
        "the call ends on OpenAI's refusal, not after the connect timeout"
    );
}
