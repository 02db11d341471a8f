//! End to end, tools and call control: the real server between the mock OpenAI Realtime
//! server, the simulated Twilio call (real playout) and the mock Twilio REST API, with webhook
//! tools served by a local test server. Configuration goes through a TOML file, as a user
//! writes it.

mod e2e_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use e2e_support::{AUTH_TOKEN, Bridge, PUBLIC, WAIT, logs, say, session_of};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use phone_agent_server::tools::webhook::signature;
use serde_json::{Value, json};
use testkit::audio;
use testkit::openai::{MockRealtime, Pacing, ResponseScript, Script, SessionHandle};
use testkit::rest::{CallControl, MockTwilioRest};
use testkit::twilio::{ActiveCall, CallEvent, CallSimulator};
use tokio::time::Instant;

const SECRET: &str = "whsec-test-secret";

// ---- a webhook server ------------------------------------------------------------------------

/// What a webhook route answers.
#[derive(Clone)]
enum Reply {
    Json(&'static str),
    Status(u16),
    Raw {
        content_type: &'static str,
        body: String,
    },
    Slow(Duration, &'static str),
}

#[derive(Debug, Clone)]
struct Received {
    path: String,
    method: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

#[derive(Clone)]
struct Webhooks {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Webhooks {
    async fn start(routes: Vec<(&'static str, Reply)>) -> Webhooks {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(routes);
        let rec = Arc::clone(&received);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let routes = Arc::clone(&routes);
                let rec = Arc::clone(&rec);
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let routes = Arc::clone(&routes);
                        let rec = Arc::clone(&rec);
                        async move {
                            let path = req.uri().path().to_owned();
                            let method = req.method().to_string();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            rec.lock().unwrap().push(Received {
                                path: path.clone(),
                                method,
                                headers,
                                body: body.to_vec(),
                            });
                            let reply = routes
                                .iter()
                                .find(|(p, _)| *p == path)
                                .map(|(_, r)| r.clone())
                                .unwrap_or(Reply::Status(404));
                            let (status, ct, body) = match reply {
                                Reply::Json(b) => (200, "application/json", b.to_owned()),
                                Reply::Status(s) => (s, "text/plain", "nope".to_owned()),
                                Reply::Raw { content_type, body } => (200, content_type, body),
                                Reply::Slow(d, b) => {
                                    tokio::time::sleep(d).await;
                                    (200, "application/json", b.to_owned())
                                }
                            };
                            let mut response = http::Response::new(Full::new(Bytes::from(body)));
                            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            response
                                .headers_mut()
                                .insert("content-type", ct.parse().unwrap());
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Webhooks { addr, received }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

// ---- helpers ---------------------------------------------------------------------------------

fn temp_file(name: &str, text: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("phone-agent-e2e-tools");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-{n}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// A bridge configured with `toml` (and the mock REST API when given).
async fn bridge(mock: &MockRealtime, toml: &str, rest: Option<&MockTwilioRest>) -> Bridge {
    let file = temp_file("config.toml", toml);
    let mut extra = vec![
        (
            "PHONE_AGENT_CONFIG".to_owned(),
            file.to_str().unwrap().to_owned(),
        ),
        ("TEST_WEBHOOK_KEY".to_owned(), "key-123".to_owned()),
        ("TEST_SIGNING_SECRET".to_owned(), SECRET.to_owned()),
    ];
    if let Some(rest) = rest {
        extra.push(("TWILIO_ACCOUNT_SID".into(), rest.account_sid().into()));
        extra.push(("PHONE_AGENT_TWILIO__REST_BASE_URL".into(), rest.base_url()));
    }
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut bridge = Bridge::start(&mock.base_url(), &extra).await;
    if let Some(rest) = rest {
        assert_eq!(rest.auth_token(), AUTH_TOKEN);
        bridge.sim = CallSimulator::new(&format!("http://{}", bridge.addr))
            .public_url(PUBLIC)
            .auth_token(AUTH_TOKEN)
            .account_sid(rest.account_sid())
            .rest(rest);
    }
    bridge
}

/// The `function_call_output` of the `n`-th (1-based) function call, once sent.
async fn output_of(session: &SessionHandle, n: usize) -> (String, Value) {
    session
        .wait_for_server_event("response.function_call_arguments.done", n, WAIT)
        .await
        .unwrap();
    let call_id = session.function_calls()[n - 1].call_id.clone();
    let record = session
        .wait_for_function_output(&call_id, WAIT)
        .await
        .unwrap();
    let output = record.output.clone().unwrap();
    let value = serde_json::from_str(&output).unwrap_or(Value::String(output));
    (call_id, value)
}

fn error_of(output: &Value) -> &str {
    output["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not a tool error: {output}"))
}

async fn hang_up(call: &ActiveCall, session: &SessionHandle) {
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
}

fn webhook_tool(name: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
[[tools]]
name = "{name}"
description = "Test tool {name}."
url = "{url}"
parameters = {{ type = "object", properties = {{ day = {{ type = "string" }} }}, required = ["day"] }}
{extra}
"#
    )
}

// ---- webhook tools ---------------------------------------------------------------------------

/// The model calls a webhook tool: the webhook receives exactly the arguments and the call's
/// context, signed; its JSON answer is the `function_call_output`, and one `response.create`
/// follows.
#[tokio::test]
async fn webhook_tool_round_trip_with_exact_body_and_valid_signature() {
    let hooks = Webhooks::start(vec![(
        "/hours",
        Reply::Json(r#"{"open": "09:00", "close": "22:00"}"#),
    )])
    .await;
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(
                    ResponseScript::say("Let me check.", 200)
                        .then_call("opening_hours", r#"{"day":"saturday"}"#),
                )
                .then(ResponseScript::say("We open at nine.", 300)),
        )
        .start()
        .await
        .unwrap();
    let toml = format!(
        "[webhooks]\nsigning_secret = \"${{TEST_SIGNING_SECRET}}\"\n{}",
        webhook_tool(
            "opening_hours",
            &hooks.url("/hours"),
            "headers = { X-Api-Key = \"${TEST_WEBHOOK_KEY}\" }"
        )
    );
    let bridge = bridge(&mock, &toml, None).await;
    let call = bridge
        .sim
        .call()
        .to("+15550001111")
        .connect()
        .await
        .unwrap();
    let session = session_of(&mock, call.call_sid()).await;

    // Declared to the model exactly as configured.
    let tools = session.session_config()["tools"].clone();
    assert_eq!(
        tools,
        json!([{
            "type": "function",
            "name": "opening_hours",
            "description": "Test tool opening_hours.",
            "parameters": {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]}
        }])
    );

    let (call_id, output) = output_of(&session, 1).await;
    assert_eq!(output, json!({"open": "09:00", "close": "22:00"}));

    let received = hooks.received("/hours");
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["x-api-key"], "key-123");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({
            "tool": "opening_hours",
            "call_id": call_id,
            "arguments": {"day": "saturday"},
            "call": {
                "call_sid": call.call_sid(),
                "from": "+14155551234",
                "to": "+15550001111",
                "profile": "default",
                "parameters": {
                    "call_sid": call.call_sid(),
                    "from": "+14155551234",
                    "to": "+15550001111",
                    "profile": "default"
                }
            }
        })
    );
    // The signature: t=<unix>,v1=HMAC-SHA256(secret, "<t>." + body).
    let header = &r.headers["x-phone-agent-signature"];
    let t: u64 = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(t) < 60, "timestamp {t} vs now {now}");
    assert_eq!(header, &signature(SECRET.as_bytes(), t, &r.body));

    // One response.create after the output, and the answer is heard.
    let answer = session.wait_for_response_done(2, WAIT).await.unwrap();
    assert_eq!(answer.trigger, testkit::openai::ResponseTrigger::Client);
    let calls = session.function_calls();
    assert!(calls[0].followed_by_response_create);
    let output_index = session
        .client_events_of_type("conversation.item.create")
        .iter()
        .find(|e| e.raw.contains("function_call_output"))
        .unwrap()
        .index;
    let creates_after = session
        .client_events_of_type("response.create")
        .iter()
        .filter(|e| e.index > output_index)
        .count();
    assert_eq!(creates_after, 1);
    hang_up(&call, &session).await;
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.line["tool_calls"], 1);
    bridge.finish().await;
}

/// A slow tool: the agent says the filler line (a `response.create` with it as instructions)
/// before the tool's output goes back.
#[tokio::test]
async fn a_slow_tool_makes_the_agent_say_the_filler_first() {
    let hooks = Webhooks::start(vec![(
        "/slow",
        Reply::Slow(Duration::from_millis(800), r#"{"table": "free"}"#),
    )])
    .await;
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::function_call(
                    "check_table",
                    r#"{"day":"friday"}"#,
                ))
                .then(ResponseScript::say("One moment while I check.", 300))
                .then(ResponseScript::say("A table is free.", 300)),
        )
        .start()
        .await
        .unwrap();
    let toml = webhook_tool(
        "check_table",
        &hooks.url("/slow"),
        "filler = \"One moment while I check.\"\nfiller_after_ms = 100",
    );
    let bridge = bridge(&mock, &toml, None).await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    let (_, output) = output_of(&session, 1).await;
    assert_eq!(output, json!({"table": "free"}));

    let events = session.client_events();
    let filler = events
        .iter()
        .find(|e| {
            e.event_type() == "response.create" && e.raw.contains("One moment while I check.")
        })
        .expect("the filler was asked for");
    let output_event = events
        .iter()
        .find(|e| e.raw.contains("function_call_output"))
        .unwrap();
    assert!(filler.index < output_event.index);
    let request: Value = serde_json::from_str(&filler.raw).unwrap();
    assert_eq!(
        request,
        json!({"type": "response.create", "response": {"instructions":
            "While you wait for a tool, say exactly this to the caller, nothing else: One moment while I check."}})
    );
    // The filler is spoken (response 2) before the tool's answer (response 3), and heard.
    session.wait_for_response_done(3, WAIT).await.unwrap();
    let items = session.assistant_items();
    assert_eq!(items.len(), 2);
    call.wait_received_audio(items[0].audio.len() + items[1].audio.len(), WAIT)
        .await
        .unwrap();
    assert!(call.received_audio().starts_with(&items[0].audio));
    hang_up(&call, &session).await;
    bridge.finish().await;
}

/// Timeout, HTTP 500, invalid JSON, an oversized answer and arguments that fail the schema
/// each reach the model as a clear tool error; the schema-invalid call never reaches the
/// webhook; the call goes on (the next response is relayed and heard).
#[tokio::test]
async fn failing_tools_give_the_model_errors_and_the_call_continues() {
    let hooks = Webhooks::start(vec![
        ("/timeout", Reply::Slow(Duration::from_secs(3), "{}")),
        ("/500", Reply::Status(500)),
        (
            "/badjson",
            Reply::Raw {
                content_type: "application/json",
                body: "{not json".into(),
            },
        ),
        (
            "/big",
            Reply::Raw {
                content_type: "application/json",
                body: format!("{{\"x\":\"{}\"}}", "a".repeat(2000)),
            },
        ),
        ("/schema", Reply::Json("{}")),
    ])
    .await;
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(
                    ResponseScript::function_call("t_timeout", r#"{"day":"mon"}"#)
                        .then_call("t_500", r#"{"day":"mon"}"#)
                        .then_call("t_badjson", r#"{"day":"mon"}"#)
                        .then_call("t_big", r#"{"day":"mon"}"#)
                        .then_call("t_schema", r#"{"day":5}"#),
                )
                .then(ResponseScript::say("Sorry, I could not check that.", 400)),
        )
        .start()
        .await
        .unwrap();
    let toml = [
        "[webhooks]\nmax_response_bytes = 1024\n".to_owned(),
        webhook_tool("t_timeout", &hooks.url("/timeout"), "timeout_ms = 300"),
        webhook_tool("t_500", &hooks.url("/500"), ""),
        webhook_tool("t_badjson", &hooks.url("/badjson"), ""),
        webhook_tool("t_big", &hooks.url("/big"), ""),
        webhook_tool("t_schema", &hooks.url("/schema"), ""),
    ]
    .concat();
    let bridge = bridge(&mock, &toml, None).await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    let mut errors = HashMap::new();
    for n in 1..=5 {
        let (_, output) = output_of(&session, n).await;
        let name = session.function_calls()[n - 1].name.clone();
        errors.insert(name, error_of(&output).to_owned());
    }
    assert_eq!(
        errors["t_timeout"],
        "t_timeout failed: the service did not answer within 300 ms"
    );
    assert_eq!(
        errors["t_500"],
        "t_500 failed: the service answered HTTP 500"
    );
    assert!(
        errors["t_badjson"].starts_with("t_badjson failed: the service answered invalid JSON"),
        "{}",
        errors["t_badjson"]
    );
    assert_eq!(
        errors["t_big"],
        "t_big failed: the answer is larger than 1024 bytes"
    );
    assert_eq!(
        errors["t_schema"],
        "t_schema failed: the arguments do not match the tool's parameters: day: expected \
         string, got integer; the tool was not called"
    );
    assert!(hooks.received("/schema").is_empty(), "never called");

    // One response.create after all five outputs, and the call goes on: the answer is heard.
    session.wait_for_response_done(2, WAIT).await.unwrap();
    let item = session.assistant_items()[0].clone();
    call.wait_received_audio(item.audio.len(), WAIT)
        .await
        .unwrap();
    call.wait_playout_idle(WAIT).await.unwrap();
    assert_eq!(call.heard(), item.audio);
    let last_output = session
        .client_events()
        .iter()
        .filter(|e| e.raw.contains("function_call_output"))
        .map(|e| e.index)
        .max()
        .unwrap();
    let creates_after = session
        .client_events_of_type("response.create")
        .iter()
        .filter(|e| e.index > last_output)
        .count();
    assert_eq!(creates_after, 1);
    hang_up(&call, &session).await;
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up");
    bridge.finish().await;
}

// ---- end_call and transfer_call --------------------------------------------------------------

/// `end_call`: Twilio REST `Status=completed` arrives only once the caller has heard the last
/// byte of the goodbye.
#[tokio::test]
async fn end_call_hangs_up_over_rest_after_the_goodbye_was_heard() {
    let rest = MockTwilioRest::start().await.unwrap();
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say("Hello, how can I help?", 300))
                .then(ResponseScript::function_call(
                    "end_call",
                    r#"{"reason":"done"}"#,
                ))
                .then(ResponseScript::say("Goodbye, have a nice day!", 800)),
        )
        .start()
        .await
        .unwrap();
    let bridge = bridge(&mock, "[call_control]\nend_call = true\n", Some(&rest)).await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    let tools = session.session_config()["tools"].clone();
    assert_eq!(tools[0]["name"], "end_call");

    // The greeting is heard in full before the caller speaks.
    let greeting = session.wait_for_response_done(1, WAIT).await.unwrap();
    assert_eq!(greeting.status, "completed");
    call.wait_received_audio(session.assistant_items()[0].audio.len(), WAIT)
        .await
        .unwrap();
    call.wait_playout_idle(WAIT).await.unwrap();
    say(&call, audio::speech(300));

    let (_, output) = output_of(&session, 1).await;
    assert_eq!(output["status"], "ending");
    let update = rest.wait_for_update(call.call_sid(), WAIT).await.unwrap();
    assert_eq!(
        update.params,
        vec![("Status".to_owned(), "completed".to_owned())]
    );
    assert!(update.authenticated);
    assert!(update.succeeded());

    // Everything the agent said, the goodbye included, had been heard when the hang-up came.
    let items = session.assistant_items();
    assert_eq!(items.len(), 2);
    let total = items[0].audio.len() + items[1].audio.len();
    assert_eq!(call.received_audio().len(), total);
    assert_eq!(
        call.heard_at(update.at).len(),
        total,
        "heard all of the goodbye first"
    );
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "hung_up_by_agent", "{:?}", ended.line);
    session.wait_closed(WAIT).await.unwrap();
    bridge.finish().await;
}

/// `end_call` asked for while the greeting is still playing is refused; nothing is hung up.
#[tokio::test]
async fn end_call_is_refused_while_the_greeting_plays() {
    let rest = MockTwilioRest::start().await.unwrap();
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(
                    ResponseScript::say("Hello and welcome to the test line.", 2000)
                        .then_call("end_call", "{}"),
                )
                .then(ResponseScript::say("How can I help?", 300)),
        )
        .start()
        .await
        .unwrap();
    let bridge = bridge(&mock, "[call_control]\nend_call = true\n", Some(&rest)).await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    let (_, output) = output_of(&session, 1).await;
    assert_eq!(
        error_of(&output),
        "end_call is not available while the greeting is playing; continue the conversation"
    );
    session.wait_for_response_done(2, WAIT).await.unwrap();
    assert!(rest.requests().is_empty(), "{:?}", rest.requests());
    hang_up(&call, &session).await;
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up");
    bridge.finish().await;
}

/// `end_call` without Twilio REST configured: once the goodbye has been heard, the server
/// closes the media stream (which ends a `<Connect><Stream>` call); nothing is hung up over
/// REST.
#[tokio::test]
async fn end_call_without_rest_closes_the_stream_after_the_goodbye_was_heard() {
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say("Hello, how can I help?", 300))
                .then(ResponseScript::function_call(
                    "end_call",
                    r#"{"reason":"done"}"#,
                ))
                .then(ResponseScript::say("Goodbye, have a nice day!", 800)),
        )
        .start()
        .await
        .unwrap();
    let bridge = bridge(&mock, "[call_control]\nend_call = true\n", None).await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    session.wait_for_response_done(1, WAIT).await.unwrap();
    call.wait_received_audio(session.assistant_items()[0].audio.len(), WAIT)
        .await
        .unwrap();
    call.wait_playout_idle(WAIT).await.unwrap();
    say(&call, audio::speech(300));
    let (_, output) = output_of(&session, 1).await;
    assert_eq!(output["status"], "ending");

    let end = call.wait_closed(WAIT).await.unwrap();
    assert!(
        matches!(end, testkit::twilio::CallEnd::ServerClosed { .. }),
        "{end:?}"
    );
    let closed_at = call
        .timeline()
        .iter()
        .find(|e| matches!(e.event, CallEvent::Closed(_)))
        .unwrap()
        .at;
    let items = session.assistant_items();
    assert_eq!(items.len(), 2);
    let all = [items[0].audio.as_slice(), items[1].audio.as_slice()].concat();
    assert_eq!(call.received_audio(), all);
    assert_eq!(
        call.heard_at(closed_at),
        all,
        "heard all of the goodbye first"
    );
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "hung_up_by_agent", "{:?}", ended.line);
    session.wait_closed(WAIT).await.unwrap();
    bridge.finish().await;
}

// ---- barge-in during the goodbye (agent.goodbye_barge_in) ------------------------------------

/// The goodbye of the barge-in tests: three seconds, so the caller is still hearing it when the
/// mock's VAD reports the speech started over it.
const GOODBYE_MS: u32 = 3000;

/// The number the barge-in tests call (`To`).
const SUPPORT_LINE: &str = "+15550007777";

/// A call of the barge-in tests, with the caller speaking over the goodbye.
struct GoodbyeCall {
    rest: MockTwilioRest,
    bridge: Bridge,
    call: ActiveCall,
    session: SessionHandle,
    /// The greeting's exact bytes.
    greeting: Vec<u8>,
    _mock: MockRealtime,
}

/// A call to [`SUPPORT_LINE`] configured with `toml` in which the agent greets, the caller
/// asks to end, the agent calls `end_call` and speaks `goodbye` (response 3). Returns once the
/// caller has heard the first goodbye byte (and, with `wait_goodbye_sent`, the mock has ended
/// the goodbye response) and has started speaking over it: four seconds of speech, longer than
/// what is left of the goodbye, so the mock's VAD does not end the caller's turn (and start a
/// response) while the call lasts.
async fn speak_over_the_goodbye(
    toml: &str,
    goodbye: ResponseScript,
    wait_goodbye_sent: bool,
) -> GoodbyeCall {
    let rest = MockTwilioRest::start().await.unwrap();
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say("Hello, how can I help?", 300))
                .then(ResponseScript::function_call(
                    "end_call",
                    r#"{"reason":"done"}"#,
                ))
                .then(goodbye)
                .no_fallback(),
        )
        .start()
        .await
        .unwrap();
    let toml = format!("[call_control]\nend_call = true\n{toml}");
    let bridge = bridge(&mock, &toml, Some(&rest)).await;
    let call = bridge.sim.call().to(SUPPORT_LINE).connect().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    session.wait_for_response_done(1, WAIT).await.unwrap();
    let greeting = session.assistant_items()[0].audio.clone();
    call.wait_received_audio(greeting.len(), WAIT)
        .await
        .unwrap();
    call.wait_playout_idle(WAIT).await.unwrap();
    say(&call, audio::speech(300));
    let (_, output) = output_of(&session, 1).await;
    assert_eq!(output["status"], "ending");
    if wait_goodbye_sent {
        // The goodbye response has ended at the mock: only its playout is left.
        let done = session.wait_for_response_done(3, WAIT).await.unwrap();
        assert_eq!(done.status, "completed");
    }
    call.wait_heard(greeting.len() + 1, WAIT).await.unwrap();
    say(&call, audio::speech(4000));
    GoodbyeCall {
        rest,
        bridge,
        call,
        session,
        greeting,
        _mock: mock,
    }
}

/// The second `speech_started` (the caller over the goodbye), checked to have come while the
/// caller was still hearing the goodbye: the premise of the barge-in tests.
async fn speech_over_the_goodbye(g: &GoodbyeCall, goodbye_len: usize) -> Instant {
    let started = g
        .session
        .wait_for_server_event("input_audio_buffer.speech_started", 2, WAIT)
        .await
        .unwrap()
        .at;
    let heard = g.call.heard_at(started).len();
    assert!(
        heard > g.greeting.len() && heard < g.greeting.len() + goodbye_len,
        "the caller started speaking with {heard} bytes heard: not during the goodbye \
         ({} greeting + {goodbye_len} goodbye bytes)",
        g.greeting.len()
    );
    started
}

/// `agent.goodbye_barge_in = "finish"`: the caller speaking over the goodbye interrupts
/// nothing. No `clear` reaches the caller, nothing is truncated or cancelled, and REST
/// `Status=completed` comes once the caller has heard the goodbye's last byte (after the
/// speech started, after the last mark's echo).
#[tokio::test]
async fn speech_over_the_goodbye_with_finish_lets_it_play_out_then_hangs_up() {
    let goodbye =
        ResponseScript::say("Goodbye, have a nice day!", GOODBYE_MS).pacing(Pacing::Burst);
    let g = speak_over_the_goodbye("[agent]\ngoodbye_barge_in = \"finish\"\n", goodbye, true).await;
    let items = g.session.assistant_items();
    assert_eq!(items.len(), 2);
    let goodbye = items[1].audio.clone();
    assert_eq!(goodbye.len(), GOODBYE_MS as usize * 8);
    let started = speech_over_the_goodbye(&g, goodbye.len()).await;

    let update = g
        .rest
        .wait_for_update(g.call.call_sid(), WAIT)
        .await
        .unwrap();
    assert_eq!(
        update.params,
        vec![("Status".to_owned(), "completed".to_owned())]
    );
    assert!(update.succeeded());
    let ended = logs().call_ended(g.call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "hung_up_by_agent", "{:?}", ended.line);
    assert_eq!(ended.barge_ins, 0, "{:?}", ended.line);
    g.call.wait_closed(WAIT).await.unwrap();
    g.session.wait_closed(WAIT).await.unwrap();

    // Exactly the greeting and the whole goodbye, heard before the hang-up; nothing cleared.
    let all = [g.greeting.as_slice(), goodbye.as_slice()].concat();
    assert_eq!(g.call.received_audio(), all);
    assert_eq!(
        g.call.heard_at(update.at),
        all,
        "the whole goodbye, heard first"
    );
    assert_eq!(g.call.heard(), all);
    let timeline = g.call.timeline();
    assert!(
        !timeline
            .iter()
            .any(|e| matches!(e.event, CallEvent::ClearReceived { .. })),
        "no clear reaches the caller"
    );
    assert!(g.call.marks().iter().all(|m| !m.cleared));
    // Order: the caller's speech started, then the goodbye's last mark was echoed (its audio
    // played), then the hang-up.
    let last_echo = timeline
        .iter()
        .filter(|e| matches!(e.event, CallEvent::MarkEchoed { .. }))
        .map(|e| e.at)
        .max()
        .unwrap();
    let hang_up = timeline
        .iter()
        .find(|e| matches!(e.event, CallEvent::RestControl(CallControl::Hangup)))
        .expect("the simulator was hung up over REST")
        .at;
    assert!(started < last_echo, "{started:?} {last_echo:?}");
    assert!(last_echo <= update.at && update.at <= hang_up);
    assert!(
        g.call.playout_ends_at().unwrap() <= last_echo,
        "the last mark is echoed once its audio has played"
    );
    // Nothing of the goodbye was cut at the agent either.
    assert!(
        g.session.truncations().is_empty(),
        "{:?}",
        g.session.truncations()
    );
    assert!(
        g.session
            .client_events_of_type("response.cancel")
            .is_empty()
    );
    g.bridge.finish().await;
}

/// `finish` with a goodbye still being generated, and the agent stopping it on its own at
/// the caller's speech (`interrupt_response = true`, the default): the bridge clears nothing
/// and truncates nothing; the caller hears every byte the agent had sent, and the hang-up
/// follows the cancelled response's end and that audio's last mark.
#[tokio::test]
async fn finish_plays_what_was_sent_when_the_agent_stops_its_goodbye_itself() {
    let goodbye =
        ResponseScript::say("Goodbye, have a nice day!", GOODBYE_MS).pacing(Pacing::Speed(1.0));
    let g =
        speak_over_the_goodbye("[agent]\ngoodbye_barge_in = \"finish\"\n", goodbye, false).await;
    let started = speech_over_the_goodbye(&g, GOODBYE_MS as usize * 8).await;

    let update = g
        .rest
        .wait_for_update(g.call.call_sid(), WAIT)
        .await
        .unwrap();
    assert_eq!(
        update.params,
        vec![("Status".to_owned(), "completed".to_owned())]
    );
    let ended = logs().call_ended(g.call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "hung_up_by_agent", "{:?}", ended.line);
    assert_eq!(ended.barge_ins, 0, "{:?}", ended.line);
    g.call.wait_closed(WAIT).await.unwrap();
    g.session.wait_closed(WAIT).await.unwrap();

    // The agent cut its own goodbye at the speech.
    let goodbye_response = &g.session.responses()[2];
    assert_eq!(goodbye_response.status, "cancelled");
    assert_eq!(goodbye_response.reason.as_deref(), Some("turn_detected"));
    let done_at = goodbye_response.done_at.unwrap();
    assert!(started <= done_at && done_at <= update.at);
    let items = g.session.assistant_items();
    let goodbye = items[1].audio.clone();
    assert!(goodbye.len() < GOODBYE_MS as usize * 8);
    // Everything sent was heard, nothing cleared, before the hang-up.
    let all = [g.greeting.as_slice(), goodbye.as_slice()].concat();
    assert_eq!(g.call.received_audio(), all);
    assert_eq!(g.call.heard_at(update.at), all);
    let timeline = g.call.timeline();
    assert!(
        !timeline
            .iter()
            .any(|e| matches!(e.event, CallEvent::ClearReceived { .. }))
    );
    let last_echo = timeline
        .iter()
        .filter(|e| matches!(e.event, CallEvent::MarkEchoed { .. }))
        .map(|e| e.at)
        .max()
        .unwrap();
    assert!(
        last_echo <= update.at,
        "the hang-up follows the last mark echo"
    );
    assert!(
        g.session.truncations().is_empty(),
        "{:?}",
        g.session.truncations()
    );
    assert!(
        g.session
            .client_events_of_type("response.cancel")
            .is_empty()
    );
    g.bridge.finish().await;
}

/// `agent.goodbye_barge_in = "interrupt"`, the goodbye response already ended at the agent
/// (only its playout is left): the caller's speech clears the caller's queue and truncates the
/// goodbye like any barge-in, and the engine hangs up in the same step (the goodbye is
/// draining, so the action is executed at once): REST `Status=completed` follows the `clear`
/// with the goodbye heard only up to the speech.
#[tokio::test]
async fn speech_over_the_goodbye_with_interrupt_clears_it_and_hangs_up_at_once() {
    let goodbye =
        ResponseScript::say("Goodbye, have a nice day!", GOODBYE_MS).pacing(Pacing::Burst);
    let g =
        speak_over_the_goodbye("[agent]\ngoodbye_barge_in = \"interrupt\"\n", goodbye, true).await;
    let items = g.session.assistant_items();
    assert_eq!(items.len(), 2);
    let goodbye = items[1].audio.clone();
    let started = speech_over_the_goodbye(&g, goodbye.len()).await;

    let update = g
        .rest
        .wait_for_update(g.call.call_sid(), WAIT)
        .await
        .unwrap();
    assert_eq!(
        update.params,
        vec![("Status".to_owned(), "completed".to_owned())]
    );
    let ended = logs().call_ended(g.call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "hung_up_by_agent", "{:?}", ended.line);
    assert_eq!(ended.barge_ins, 1, "{:?}", ended.line);
    g.call.wait_closed(WAIT).await.unwrap();
    g.session.wait_closed(WAIT).await.unwrap();

    // The caller got one clear, after the speech started and before the hang-up.
    let timeline = g.call.timeline();
    let clears: Vec<_> = timeline
        .iter()
        .filter(|e| matches!(e.event, CallEvent::ClearReceived { .. }))
        .collect();
    assert_eq!(clears.len(), 1, "{clears:?}");
    let clear_at = clears[0].at;
    let hang_up = timeline
        .iter()
        .find(|e| matches!(e.event, CallEvent::RestControl(CallControl::Hangup)))
        .expect("the simulator was hung up over REST")
        .at;
    assert!(started < clear_at && clear_at <= update.at && update.at <= hang_up);
    // What the caller heard: the greeting and the goodbye up to the clear, nothing after it;
    // the whole goodbye had reached the caller, so the clear cut it.
    let all = [g.greeting.as_slice(), goodbye.as_slice()].concat();
    assert_eq!(g.call.received_audio(), all);
    let heard = g.call.heard();
    assert_eq!(g.call.heard_at(clear_at), heard);
    assert!(heard.len() < all.len(), "the goodbye was cut short");
    assert_eq!(heard, all[..heard.len()]);
    // The agent is told where the goodbye was cut; its response had ended, nothing to cancel.
    let truncations = g.session.truncations();
    assert_eq!(truncations.len(), 1, "{truncations:?}");
    let t = &truncations[0];
    assert_eq!(t.item_id, items[1].item_id);
    assert!(t.accepted);
    let goodbye_heard_ms = ((heard.len() - g.greeting.len()) / 8) as u64;
    assert!(
        t.audio_end_ms <= goodbye_heard_ms,
        "truncated at {} ms, heard {goodbye_heard_ms} ms",
        t.audio_end_ms
    );
    assert!(
        g.session
            .client_events_of_type("response.cancel")
            .is_empty()
    );
    g.bridge.finish().await;
}

/// `interrupt` while the goodbye is still being generated (streamed in real time, and the
/// agent does not cancel on its own: `interrupt_response = false`), set by the called
/// number's profile over a top-level `finish`: the caller's speech clears the goodbye and the
/// bridge cancels the response; the hang-up is executed once that response has ended (its
/// `response.done`, cancelled), not at the speech.
#[tokio::test]
async fn interrupt_from_the_profile_cancels_a_goodbye_still_speaking_then_hangs_up() {
    let goodbye =
        ResponseScript::say("Goodbye, have a nice day!", GOODBYE_MS).pacing(Pacing::Speed(1.0));
    let toml = format!(
        "[agent]\ngoodbye_barge_in = \"finish\"\n\
         [openai.turn_detection]\ninterrupt_response = false\n\
         [profiles.support]\nnumbers = [\"{SUPPORT_LINE}\"]\ngoodbye_barge_in = \"interrupt\"\n"
    );
    let g = speak_over_the_goodbye(&toml, goodbye, false).await;
    assert_eq!(
        g.session.session_config()["audio"]["input"]["turn_detection"]["interrupt_response"],
        false
    );
    let started = speech_over_the_goodbye(&g, GOODBYE_MS as usize * 8).await;

    let update = g
        .rest
        .wait_for_update(g.call.call_sid(), WAIT)
        .await
        .unwrap();
    assert_eq!(
        update.params,
        vec![("Status".to_owned(), "completed".to_owned())]
    );
    let ended = logs().call_ended(g.call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "hung_up_by_agent", "{:?}", ended.line);
    assert_eq!(ended.barge_ins, 1, "{:?}", ended.line);
    g.call.wait_closed(WAIT).await.unwrap();
    g.session.wait_closed(WAIT).await.unwrap();

    // The goodbye response was cancelled by the bridge, and ended cancelled.
    let goodbye_response = &g.session.responses()[2];
    assert_eq!(goodbye_response.status, "cancelled");
    assert_eq!(goodbye_response.reason.as_deref(), Some("client_cancelled"));
    let cancel = g
        .session
        .client_events_of_type("response.cancel")
        .first()
        .cloned()
        .expect("the bridge cancelled the goodbye");
    let done_at = goodbye_response.done_at.unwrap();
    // Order: speech → clear at the caller; speech → cancel → response.done → hang-up.
    let timeline = g.call.timeline();
    let clears: Vec<_> = timeline
        .iter()
        .filter(|e| matches!(e.event, CallEvent::ClearReceived { .. }))
        .collect();
    assert_eq!(clears.len(), 1, "{clears:?}");
    let clear_at = clears[0].at;
    assert!(started < clear_at && clear_at <= update.at);
    assert!(started < cancel.at && cancel.at <= done_at && done_at <= update.at);
    // Heard: the greeting and the goodbye up to the clear; never more.
    let items = g.session.assistant_items();
    let goodbye = &items[1].audio;
    assert!(
        goodbye.len() < GOODBYE_MS as usize * 8,
        "the goodbye was cut at the agent"
    );
    let all = [g.greeting.as_slice(), goodbye.as_slice()].concat();
    let heard = g.call.heard();
    assert_eq!(g.call.heard_at(clear_at), heard);
    assert!(heard.len() > g.greeting.len() && heard.len() < all.len());
    assert_eq!(heard, all[..heard.len()]);
    let truncations = g.session.truncations();
    assert_eq!(truncations.len(), 1, "{truncations:?}");
    assert_eq!(truncations[0].item_id, items[1].item_id);
    g.bridge.finish().await;
}

const TRANSFER_TOML: &str = r#"
[call_control]
transfer_caller_id = "+15005550006"
transfer_timeout_secs = 25
[[call_control.destinations]]
name = "front_desk"
number = "+15551230000"
description = "A person at the front desk."
[[call_control.destinations]]
name = "kitchen"
sip = "sip:kitchen@pbx.example.com"
description = "The kitchen."
"#;

/// An allow-listed transfer: after the transfer line, the call's TwiML is replaced with the
/// exact `<Dial>` (caller ID, timeout, whisper of the summary to the callee).
#[tokio::test]
async fn transfer_to_an_allowed_destination_sends_the_exact_dial_twiml() {
    let rest = MockTwilioRest::start().await.unwrap();
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::function_call(
                    "transfer_call",
                    r#"{"destination":"front_desk","summary":"Anna wants a table for 4 tonight."}"#,
                ))
                .then(ResponseScript::say("I am transferring you now.", 500)),
        )
        .start()
        .await
        .unwrap();
    let bridge = bridge(&mock, TRANSFER_TOML, Some(&rest)).await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    let tool = &session.session_config()["tools"][0];
    assert_eq!(tool["name"], "transfer_call");
    assert_eq!(
        tool["parameters"]["properties"]["destination"]["enum"],
        json!(["front_desk", "kitchen"])
    );
    let (_, output) = output_of(&session, 1).await;
    assert_eq!(output["status"], "transferring");
    let update = rest.wait_for_update(call.call_sid(), WAIT).await.unwrap();
    assert_eq!(
        update.param("Twiml"),
        Some(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial callerId=\"+15005550006\" \
             timeout=\"25\"><Number url=\"https://bridge.example.com/twilio/whisper?text=Anna+wants+a+table+for+4+tonight.\">\
             +15551230000</Number></Dial></Response>"
        )
    );
    let item = session.assistant_items()[0].clone();
    assert_eq!(
        call.heard_at(update.at),
        item.audio,
        "the transfer line was heard first"
    );
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "transferred", "{:?}", ended.line);
    bridge.finish().await;
}

/// A SIP destination on the list: the call's TwiML is replaced with `<Dial><Sip>` to its URI
/// (the whisper on the `<Sip>` noun).
#[tokio::test]
async fn transfer_to_a_sip_destination_dials_the_sip_uri() {
    let rest = MockTwilioRest::start().await.unwrap();
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::function_call(
                    "transfer_call",
                    r#"{"destination":"kitchen","summary":"Allergy question."}"#,
                ))
                .then(ResponseScript::say("Connecting you to the kitchen.", 400)),
        )
        .start()
        .await
        .unwrap();
    let bridge = bridge(&mock, TRANSFER_TOML, Some(&rest)).await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    let (_, output) = output_of(&session, 1).await;
    assert_eq!(output["status"], "transferring");
    let update = rest.wait_for_update(call.call_sid(), WAIT).await.unwrap();
    assert_eq!(
        update.param("Twiml"),
        Some(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial callerId=\"+15005550006\" \
             timeout=\"25\"><Sip url=\"https://bridge.example.com/twilio/whisper?text=Allergy+question.\">\
             sip:kitchen@pbx.example.com</Sip></Dial></Response>"
        )
    );
    let item = session.assistant_items()[0].clone();
    assert_eq!(
        call.heard_at(update.at),
        item.audio,
        "the transfer line was heard first"
    );
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "transferred", "{:?}", ended.line);
    bridge.finish().await;
}

/// A destination that is not on the list is refused as a tool error and never dialled.
#[tokio::test]
async fn transfer_to_an_unknown_destination_is_a_tool_error_and_no_rest_request() {
    let rest = MockTwilioRest::start().await.unwrap();
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::function_call(
                    "transfer_call",
                    r#"{"destination":"+15559999999"}"#,
                ))
                .then(ResponseScript::say("I cannot transfer you there.", 300)),
        )
        .start()
        .await
        .unwrap();
    let bridge = bridge(&mock, TRANSFER_TOML, Some(&rest)).await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    let (_, output) = output_of(&session, 1).await;
    assert_eq!(
        error_of(&output),
        "\"+15559999999\" is not a transfer destination; the destinations are: front_desk, kitchen"
    );
    session.wait_for_response_done(2, WAIT).await.unwrap();
    let item = session.assistant_items()[0].clone();
    call.wait_received_audio(item.audio.len(), WAIT)
        .await
        .unwrap();
    call.wait_playout_idle(WAIT).await.unwrap();
    assert!(rest.requests().is_empty(), "{:?}", rest.requests());
    hang_up(&call, &session).await;
    bridge.finish().await;
}

/// The REST update fails (Twilio answers 500 to every attempt): the model is told, and the
/// call goes on.
#[tokio::test]
async fn a_failed_transfer_is_told_to_the_model_and_the_call_goes_on() {
    let rest = MockTwilioRest::start().await.unwrap();
    for _ in 0..3 {
        rest.fail_next(500, 20500, "Internal Server Error");
    }
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::function_call(
                    "transfer_call",
                    r#"{"destination":"front_desk"}"#,
                ))
                .then(ResponseScript::say("I am transferring you now.", 300))
                .then(ResponseScript::say(
                    "Sorry, the transfer did not work.",
                    300,
                )),
        )
        .start()
        .await
        .unwrap();
    let bridge = bridge(&mock, TRANSFER_TOML, Some(&rest)).await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    let told = session
        .wait_for_event(
            |e| e.raw.contains("The transfer to +15551230000 failed"),
            WAIT,
        )
        .await
        .unwrap();
    assert!(told.raw.contains("Twilio answered 500"), "{}", told.raw);
    let statuses: Vec<u16> = rest.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![500, 500, 500],
        "three attempts, then the model is told"
    );
    // The apology is asked for and heard; the call is still up.
    session.wait_for_response_done(3, WAIT).await.unwrap();
    let items = session.assistant_items();
    let total = items[0].audio.len() + items[1].audio.len();
    call.wait_received_audio(total, WAIT).await.unwrap();
    call.wait_playout_idle(WAIT).await.unwrap();
    assert!(call.closed().is_none(), "the call goes on");
    hang_up(&call, &session).await;
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up", "{:?}", ended.line);
    bridge.finish().await;
}

/// The whisper route speaks the summary to the callee, and only with a valid signature.
#[tokio::test]
async fn the_whisper_route_answers_a_say_of_the_summary() {
    let mock = MockRealtime::start().await.unwrap();
    let bridge = bridge(&mock, TRANSFER_TOML, None).await;
    let path = "/twilio/whisper?text=Anna+wants+a+table.";
    let params = [("CallSid", "CA00000000000000000000000000000077")];
    let url = format!("{PUBLIC}{path}");
    let signature = testkit::twilio::signature::sign(AUTH_TOKEN, &url, &params);
    let r = testkit::http::post_form(
        &format!("http://{}{path}", bridge.addr),
        &[("x-twilio-signature", signature.as_str())],
        &params,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Anna wants a table.</Say></Response>"
    );
    let r = testkit::http::post_form(&format!("http://{}{path}", bridge.addr), &[], &params)
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    bridge.finish().await;
}

// ---- MCP ---------------------------------------------------------------------------------------

/// MCP servers are declared in `session.update` exactly as PROTOCOLS.md §6.12b describes; MCP
/// events are counted into the call summary and approval requests answered by the policy.
#[tokio::test]
async fn mcp_servers_are_declared_observed_and_approved_by_policy() {
    let mock = MockRealtime::builder()
        .script(Script::new().fallback(ResponseScript::say("OK.", 200)))
        .start()
        .await
        .unwrap();
    let toml = r#"
[[mcp_servers]]
label = "crm"
url = "https://mcp.example.com/mcp"
description = "Customer records."
authorization = "${TEST_WEBHOOK_KEY}"
headers = { "X-Tenant" = "acme" }
allowed_tools = ["lookup_customer", "update_customer"]
require_approval = "always"
approve_tools = ["lookup_customer"]
"#;
    let bridge = bridge(&mock, toml, None).await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    assert_eq!(
        session.session_config()["tools"],
        json!([{
            "type": "mcp",
            "server_label": "crm",
            "server_url": "https://mcp.example.com/mcp",
            "server_description": "Customer records.",
            "authorization": "key-123",
            "headers": {"X-Tenant": "acme"},
            "allowed_tools": ["lookup_customer", "update_customer"],
            "require_approval": "always"
        }])
    );
    session.send_raw(r#"{"type":"mcp_list_tools.in_progress","event_id":"e1","item_id":"mcpl_1"}"#);
    session.send_raw(r#"{"type":"mcp_list_tools.completed","event_id":"e2","item_id":"mcpl_1"}"#);
    for (id, tool) in [("mcpr_1", "lookup_customer"), ("mcpr_2", "update_customer")] {
        session.send_raw(&format!(
            r#"{{"type":"conversation.item.done","event_id":"e3{id}","previous_item_id":null,"item":{{"id":"{id}","type":"mcp_approval_request","server_label":"crm","name":"{tool}","arguments":"{{}}"}}}}"#
        ));
    }
    session.send_raw(r#"{"type":"response.mcp_call_arguments.done","event_id":"e4","response_id":"r9","item_id":"mcp_1","output_index":0,"arguments":"{}"}"#);
    session.send_raw(r#"{"type":"response.mcp_call.in_progress","event_id":"e5","item_id":"mcp_1","output_index":0}"#);
    session.send_raw(r#"{"type":"response.mcp_call.completed","event_id":"e6","item_id":"mcp_1","output_index":0}"#);
    session.send_raw(
        r#"{"type":"response.mcp_call.failed","event_id":"e7","item_id":"mcp_2","output_index":0}"#,
    );

    // The answers go out with the caller's next audio.
    session
        .wait_for_nth_event(|e| e.raw.contains("mcp_approval_response"), 2, WAIT)
        .await
        .unwrap();
    let answers: Vec<Value> = session
        .client_events_of_type("conversation.item.create")
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.raw).unwrap())
        .filter(|v| v["item"]["type"] == "mcp_approval_response")
        .collect();
    assert_eq!(
        answers,
        vec![
            json!({"type": "conversation.item.create", "item": {
                "type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": true}}),
            json!({"type": "conversation.item.create", "item": {
                "type": "mcp_approval_response", "approval_request_id": "mcpr_2", "approve": false,
                "reason": "This tool is not approved for phone calls."}}),
        ]
    );
    hang_up(&call, &session).await;
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.line["mcp_calls"], 1);
    assert_eq!(ended.line["mcp_calls_failed"], 1);
    assert_eq!(ended.line["mcp_approvals"], 1);
    assert_eq!(ended.line["mcp_denials"], 1);
    bridge.finish().await;
}

// ---- profiles ----------------------------------------------------------------------------------

/// Two numbers, two profiles: each call gets its profile's prompt, voice and tools, chosen
/// by `To`; other numbers get the top-level settings.
#[tokio::test]
async fn profiles_are_chosen_by_the_called_number() {
    let hooks = Webhooks::start(vec![("/hours", Reply::Json("{}"))]).await;
    let mock = MockRealtime::start().await.unwrap();
    let pizza = temp_file("pizza.md", "Pizza line on call {{call_sid}} for {{to}}.");
    let salon = temp_file("salon.md", "Salon line on call {{call_sid}} for {{to}}.");
    let toml = format!(
        r#"
[call_control]
end_call = true
{}
[profiles.pizza]
numbers = ["+15550001111"]
prompt_path = "{}"
voice = "cedar"
tools = ["opening_hours"]
[profiles.salon]
numbers = ["+15550002222"]
prompt_path = "{}"
voice = "ash"
greeting = "off"
tools = ["end_call"]
"#,
        webhook_tool("opening_hours", &hooks.url("/hours"), ""),
        pizza.display(),
        salon.display()
    );
    let bridge = bridge(&mock, &toml, None).await;

    let mut expected = Vec::new();
    for (to, prompt, voice, tools, profile) in [
        (
            "+15550001111",
            "Pizza line",
            "cedar",
            vec!["opening_hours"],
            "pizza",
        ),
        (
            "+15550002222",
            "Salon line",
            "ash",
            vec!["end_call"],
            "salon",
        ),
        (
            "+15550003333",
            "You are the e2e test agent",
            "marin",
            vec!["opening_hours", "end_call"],
            "default",
        ),
    ] {
        let placed = bridge.sim.call().to(to).place().await.unwrap();
        let stream = placed.stream().unwrap();
        assert_eq!(
            stream
                .parameters
                .iter()
                .find(|(k, _)| k == "profile")
                .map(|(_, v)| v.as_str()),
            Some(profile)
        );
        let call = placed.open_stream().await.unwrap();
        expected.push((call, to, prompt, voice, tools));
    }
    for (call, to, prompt, voice, tools) in &expected {
        let session = session_of(&mock, call.call_sid()).await;
        let config = session.session_config();
        let instructions = config["instructions"].as_str().unwrap();
        assert!(instructions.starts_with(prompt), "{instructions}");
        if *prompt != "You are the e2e test agent" {
            assert!(
                instructions.ends_with(&format!("for {to}.")),
                "{instructions}"
            );
        }
        assert_eq!(config["audio"]["output"]["voice"], *voice);
        let names: Vec<&str> = config["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(&names, tools);
        hang_up(call, &session).await;
    }
    bridge.finish().await;
}
