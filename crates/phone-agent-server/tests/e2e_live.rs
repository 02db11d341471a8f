//! End to end with the GPT-Live back end: the real server between the test kit's mock GPT-Live
//! server and the simulated Twilio call. Exact audio both ways, the greeting only after
//! `session.started`, the input clock kept running across a gap in Twilio's stream, tool round
//! trips in both delegation modes, every way a session ends, junk from the service, and a
//! Realtime call beside a GPT-Live call.

#![allow(clippy::print_stderr)]

mod e2e_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bridge_core::tools::{ToolDefinition, ToolExecutor, ToolInvocation, ToolOutput};
use e2e_support::{
    AUTH_TOKEN, Bridge, Proxy, WAIT, assert_no_violations, expected_caller_audio, live_session_of,
    logs, say,
};
use testkit::audio::{self, FRAME_BYTES, SILENCE};
use testkit::live::{LiveSessionHandle, LiveSocketEnd, LiveTurn, MockLive};
use testkit::twilio::{ActiveCall, CallEvent};

const LIVE: (&str, &str) = ("PHONE_AGENT_AGENT__BACKEND", "live");
const GREETING: &str = "Hi, this is the e2e line.";

fn is_media_sent(e: &CallEvent) -> bool {
    matches!(e, CallEvent::MediaSent { .. })
}

/// The caller frames the mock received, with the gap-filling silence frames (whole 160-byte
/// frames of `0xFF`, which a stamped caller frame never is) taken out, and how many there were.
fn without_filler(received: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(received.len());
    let mut filler = 0;
    for frame in received.chunks(FRAME_BYTES) {
        if frame.len() == FRAME_BYTES && frame.iter().all(|&b| b == SILENCE) {
            filler += 1;
        } else {
            out.extend_from_slice(frame);
        }
    }
    (out, filler)
}

/// Asserts that `received` is the mock's output track `sent` (800-byte deltas), in order and
/// byte for byte, with at most some all-silent deltas left out.
fn assert_track_relayed(sent: &[u8], received: &[u8]) -> usize {
    let mut at = 0;
    let mut dropped = 0;
    for delta in sent.chunks(800) {
        if at == received.len() {
            break;
        }
        if received[at..].starts_with(delta) {
            at += delta.len();
        } else {
            assert!(
                delta.iter().all(|&b| b == SILENCE),
                "agent speech missing at byte {at} of what the caller received"
            );
            dropped += 1;
        }
    }
    assert_eq!(
        at,
        received.len(),
        "the caller received only the mock's audio"
    );
    eprintln!("{dropped} silent deltas dropped to keep Twilio's queue short");
    dropped
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Caller → agent byte-identical from the first frame (sent while the agent was still
/// connecting) and in order; agent → caller byte-identical (the continuous track, silence
/// included); the greeting is appended as commentary, verbatim, after `session.started`.
#[tokio::test]
async fn live_audio_is_byte_identical_both_ways_and_the_greeting_follows_session_started() {
    let mock = MockLive::builder()
        .script([LiveTurn::say("Sure, one moment.", 600)])
        .commentary_ms(1000)
        .start()
        .await
        .unwrap();
    let proxy = Proxy::start(mock.addr(), Duration::ZERO).await;
    let bridge = Bridge::start(
        &proxy.base_url(),
        &[LIVE, ("PHONE_AGENT_LIVE__GREETING", GREETING)],
    )
    .await;
    let call = bridge
        .sim
        .call()
        .stamp_frames(true)
        .connect()
        .await
        .unwrap();
    call.wait_for_nth(is_media_sent, 25, WAIT).await.unwrap();
    assert!(mock.sessions().is_empty(), "the agent is still connecting");
    proxy.open();
    let session = live_session_of(&mock, call.call_sid()).await;

    // The strict session.start the bridge sent.
    let start = session.start_config().expect("started");
    assert_eq!(start["model"], "gpt-live-1");
    assert_eq!(
        start["audio"]["format"],
        serde_json::json!({"type": "audio/pcmu", "rate": 8000})
    );
    assert_eq!(start["delegation"]["type"], "responses");
    assert!(
        session
            .request_header("authorization")
            .unwrap()
            .starts_with("Bearer ")
    );

    // The greeting: commentary, verbatim, after session.started, spoken, relayed exactly.
    let greeting_event = session
        .wait_for_event_type("session.commentary.append", WAIT)
        .await
        .unwrap();
    assert_eq!(greeting_event.json["content"], GREETING);
    assert!(greeting_event.json["delegation_id"].is_null());
    let started_at = session
        .wait_for_server_event("session.started", 1, WAIT)
        .await
        .unwrap()
        .at;
    assert!(greeting_event.at >= started_at);
    let greeting = session.wait_for_utterance_end(1, WAIT).await.unwrap();
    assert_eq!(greeting.text, GREETING);

    let mut queued = Vec::new();
    queued.extend(say(&call, audio::speech(400)));
    let answer = session.wait_for_utterance_end(2, WAIT).await.unwrap();
    call.wait_received_audio(session.sent_audio().len(), WAIT)
        .await
        .unwrap();
    let heard = call.wait_heard(4000, WAIT).await.unwrap();
    assert!(!heard.is_empty());

    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up", "{:?}", ended.line);

    // Agent → caller: exactly what the mock sent, in order (silence included), except silent
    // deltas dropped while the track ran ahead of real time (the caller audio held until
    // `session.started` came back as a burst of output).
    let sent = session.sent_audio();
    let received = call.received_audio();
    assert!(received.len() > 8 * 1000);
    let dropped = assert_track_relayed(&sent, &received);
    assert!(
        dropped >= 1,
        "the output burst after session.started (the held caller audio) was not let queue up"
    );
    assert!(
        contains(&received, &greeting.audio),
        "the whole greeting reached the caller"
    );
    assert!(
        contains(&received, &answer.audio),
        "the whole answer reached the caller"
    );

    // Caller → agent: every frame, in order, from the first one on.
    let (frames, _filler) = without_filler(&session.received_audio());
    let expected = expected_caller_audio(&call, &queued);
    assert_eq!(frames.len(), expected.len());
    assert!(
        frames == expected,
        "the agent got the caller's frames, byte for byte"
    );
    assert_eq!(audio::find_stamps(&frames[..FRAME_BYTES]), vec![(0, 1)]);
    assert!(session.close_requested());
    assert_no_violations(&call, &session);
    bridge.finish().await;
}

/// A second of Twilio's stream missing: the bridge keeps GPT-Live's clock moving with μ-law
/// silence, so the session's timeline (and its output) does not stall.
#[tokio::test]
async fn live_input_never_stalls_across_a_twilio_gap() {
    let mock = MockLive::start().await.unwrap();
    let bridge = Bridge::start(
        &mock.base_url(),
        &[LIVE, ("PHONE_AGENT_LIVE__GREETING", "off")],
    )
    .await;
    let call = bridge
        .sim
        .call()
        .stamp_frames(true)
        .connect()
        .await
        .unwrap();
    let session = live_session_of(&mock, call.call_sid()).await;
    session
        .wait_for_received_audio(10 * FRAME_BYTES, WAIT)
        .await
        .unwrap();
    call.skip_frames(50);
    let before = call.frames_sent();
    call.wait_for_nth(is_media_sent, before as usize + 10, WAIT)
        .await
        .unwrap();
    session
        .wait_for_received_audio((before as usize + 10) * FRAME_BYTES, WAIT)
        .await
        .unwrap();
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();

    let received = session.received_audio();
    let (frames, filler) = without_filler(&received);
    // The caller's frames all arrived, in order; silence filled the gap.
    assert_eq!(frames, expected_caller_audio(&call, &[]));
    assert!(filler >= 25, "{filler} silence frames filled the 1 s gap");
    // The filler sits where the gap was: between two consecutive caller frames.
    let frames_with_filler: Vec<&[u8]> = received.chunks(FRAME_BYTES).collect();
    let is_filler = |f: &[u8]| f.iter().all(|&b| b == SILENCE);
    let (mut best, mut run_start, mut run) = ((0, 0), 0, 0);
    for (i, f) in frames_with_filler.iter().enumerate() {
        if is_filler(f) {
            if run == 0 {
                run_start = i;
            }
            run += 1;
            if run > best.1 {
                best = (run_start, run);
            }
        } else {
            run = 0;
        }
    }
    assert!(best.1 >= 25, "longest silence run: {} frames", best.1);
    let before = audio::read_stamp(frames_with_filler[best.0 - 1]).unwrap();
    let after = audio::read_stamp(frames_with_filler[best.0 + best.1]).unwrap();
    assert_eq!(after, before + 1, "no caller frame lost around the gap");
    assert_no_violations(&call, &session);
    bridge.finish().await;
}

/// A tool executor with one tool, recording its invocations.
struct TestTools {
    name: &'static str,
    output: &'static str,
    calls: Mutex<Vec<ToolInvocation>>,
}

#[async_trait]
impl ToolExecutor for TestTools {
    fn definitions(&self) -> Vec<ToolDefinition> {
        vec![ToolDefinition {
            name: self.name.into(),
            description: "Looks an order up.".into(),
            parameters: serde_json::json!({"type": "object", "properties": {"order": {"type": "string"}}}),
        }]
    }

    async fn call(&self, invocation: ToolInvocation) -> ToolOutput {
        self.calls.lock().unwrap().push(invocation);
        ToolOutput {
            output: self.output.into(),
            action: None,
        }
    }
}

/// Responses delegation: the backend's function call runs on the server's tool executor; the
/// output goes back as `function_call_output` and one `response.create`; the result is said.
#[tokio::test]
async fn live_tool_round_trip_with_responses_delegation() {
    let mock = MockLive::builder()
        .script([LiveTurn::call("lookup_order", r#"{"order":"A-1207"}"#)])
        .start()
        .await
        .unwrap();
    let tools = Arc::new(TestTools {
        name: "lookup_order",
        output: r#"{"status":"shipped"}"#,
        calls: Mutex::new(Vec::new()),
    });
    let bridge = Bridge::start_with_tools(
        &mock.base_url(),
        &[LIVE, ("PHONE_AGENT_LIVE__GREETING", "off")],
        Some(tools.clone()),
    )
    .await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = live_session_of(&mock, call.call_sid()).await;
    let start = session.start_config().unwrap();
    assert_eq!(
        start["delegation"]["responses"]["tools"][0]["name"],
        "lookup_order"
    );
    assert_eq!(start["delegation"]["responses"]["model"], "gpt-5.6-luna");

    say(&call, audio::speech(400));
    let answered = session.wait_for_delegation_answered(1, WAIT).await.unwrap();
    assert_eq!(answered.outputs, [r#"{"status":"shipped"}"#]);
    assert_eq!(session.response_creates(), 1);
    let result = session.wait_for_utterance_end(1, WAIT).await.unwrap();
    assert_eq!(result.text, r#"{"status":"shipped"}"#);
    call.wait_received_audio(8 * 2400, WAIT).await.unwrap();
    {
        let calls = tools.calls.lock().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].arguments, r#"{"order":"A-1207"}"#);
        assert_eq!(calls[0].phone_call_id, call.call_sid());
    }
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    assert!(contains(&call.received_audio(), &result.audio));
    assert_no_violations(&call, &session);
    bridge.finish().await;
}

/// Client delegation: the delegation runs the configured client tool with the recent
/// transcript; its result goes back as commentary for that delegation and is said.
#[tokio::test]
async fn live_tool_round_trip_with_client_delegation() {
    let mock = MockLive::builder()
        .script([LiveTurn::call("ignored", "{}")])
        .caller_transcripts(&[" Where is my order?"])
        .start()
        .await
        .unwrap();
    let tools = Arc::new(TestTools {
        name: "backend_agent",
        output: "Your order shipped yesterday.",
        calls: Mutex::new(Vec::new()),
    });
    let bridge = Bridge::start_with_tools(
        &mock.base_url(),
        &[
            LIVE,
            ("PHONE_AGENT_LIVE__GREETING", "off"),
            ("PHONE_AGENT_LIVE__DELEGATION", "client"),
            ("PHONE_AGENT_LIVE__CLIENT_TOOL", "backend_agent"),
        ],
        Some(tools.clone()),
    )
    .await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = live_session_of(&mock, call.call_sid()).await;
    assert_eq!(
        session.start_config().unwrap()["delegation"],
        serde_json::json!({"type": "client"})
    );
    say(&call, audio::speech(400));
    let delegation = session.wait_for_delegation_answered(1, WAIT).await.unwrap();
    assert_eq!(delegation.target, "client");
    assert_eq!(delegation.outputs, ["Your order shipped yesterday."]);
    let append = session
        .wait_for_event_type("session.commentary.append", WAIT)
        .await
        .unwrap();
    assert_eq!(append.json["delegation_id"], delegation.id.as_str());
    let said = session.wait_for_utterance(1, WAIT).await.unwrap();
    assert_eq!(said.text, "Your order shipped yesterday.");
    {
        let calls = tools.calls.lock().unwrap();
        let args: serde_json::Value = serde_json::from_str(&calls[0].arguments).unwrap();
        assert_eq!(args["delegation_id"], delegation.id.as_str());
        assert_eq!(args["transcript"][0]["text"], "Where is my order?");
    }
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    assert_eq!(session.response_creates(), 0);
    assert_no_violations(&call, &session);
    bridge.finish().await;
}

/// The caller hangs up: the bridge sends `session.close`, reads `session.closed` and completes
/// the socket's closing handshake.
#[tokio::test]
async fn live_caller_hang_up_closes_the_session() {
    let mock = MockLive::start().await.unwrap();
    let bridge = Bridge::start(&mock.base_url(), &[LIVE]).await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = live_session_of(&mock, call.call_sid()).await;
    session.wait_for_started(WAIT).await.unwrap();
    call.stop(WAIT).await.unwrap();
    let end = session.wait_closed(WAIT).await.unwrap();
    assert_eq!(
        end,
        LiveSocketEnd::MockClosed {
            code: None,
            handshake_completed: true
        }
    );
    assert!(session.close_requested());
    assert_eq!(session.closed_reason().as_deref(), Some("close_requested"));
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up");
    let closed_line = logs()
        .for_call(call.call_sid())
        .into_iter()
        .find(|l| l["message"] == "GPT-Live session closed")
        .expect("the close is logged");
    assert_eq!(closed_line["reason"], "close_requested");
    assert_eq!(
        closed_line["session_id"],
        session.session_id().unwrap().as_str()
    );
    assert_no_violations(&call, &session);
    bridge.finish().await;
}

/// The service ends the session (here `remote_hangup`, then `content`): the call ends cleanly,
/// the socket's closing handshake completes, and no `session.close` is sent after the close.
#[tokio::test]
async fn live_session_closed_by_the_service_ends_the_call() {
    for reason in ["remote_hangup", "content"] {
        let mock = MockLive::start().await.unwrap();
        let bridge = Bridge::start(&mock.base_url(), &[LIVE]).await;
        let call = bridge.sim.call().connect().await.unwrap();
        let session = live_session_of(&mock, call.call_sid()).await;
        session.wait_for_started(WAIT).await.unwrap();
        session.close_session(reason);
        call.wait_closed(WAIT).await.unwrap();
        let ended = logs().call_ended(call.call_sid(), WAIT).await;
        assert_eq!(ended.end_reason, "agent_closed", "{:?}", ended.line);
        assert!(ended.end_detail.contains(reason), "{}", ended.end_detail);
        let end = session.wait_closed(WAIT).await.unwrap();
        assert_eq!(
            end,
            LiveSocketEnd::MockClosed {
                code: None,
                handshake_completed: true
            }
        );
        assert!(!session.close_requested());
        assert_no_violations(&call, &session);
        bridge.finish().await;
    }
}

/// With reconnects (and so recycling) off: before `expires_at` the bridge says the wrap-up
/// line and ends the call; a session that expires anyway ends the call as well.
#[tokio::test]
async fn live_session_expiry_is_wrapped_up_gracefully() {
    let mock = MockLive::builder()
        .lifetime(Duration::from_secs(62))
        .start()
        .await
        .unwrap();
    let bridge = Bridge::start(
        &mock.base_url(),
        &[
            LIVE,
            ("PHONE_AGENT_LIVE__WRAP_UP_BEFORE_SECS", "61"),
            ("PHONE_AGENT_LIVE__WRAP_UP_GRACE_SECS", "1"),
            ("PHONE_AGENT_LIVE__WRAP_UP_LINE", "Time is up, goodbye!"),
            ("PHONE_AGENT_RECONNECT__ENABLED", "false"),
        ],
    )
    .await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = live_session_of(&mock, call.call_sid()).await;
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "agent_closed", "{:?}", ended.line);
    assert!(
        ended.end_detail.contains("lifetime"),
        "{}",
        ended.end_detail
    );
    let lines: Vec<String> = session
        .client_events_of_type("session.commentary.append")
        .iter()
        .map(|e| e.json["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        lines.iter().any(|l| l == "Time is up, goodbye!"),
        "{lines:?}"
    );
    session.wait_closed(WAIT).await.unwrap();
    assert!(
        session.close_requested(),
        "the session was closed with session.close"
    );
    assert_eq!(session.closed_reason().as_deref(), Some("close_requested"));
    call.wait_closed(WAIT).await.unwrap();

    // `expired` mid-call.
    let call = bridge.sim.call().connect().await.unwrap();
    let session = live_session_of(&mock, call.call_sid()).await;
    session.wait_for_started(WAIT).await.unwrap();
    session.close_session("expired");
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "agent_closed");
    assert!(ended.end_detail.contains("expired"), "{}", ended.end_detail);
    call.wait_closed(WAIT).await.unwrap();
    bridge.finish().await;
}

/// Malformed JSON, unknown events, known events with bad fields and `error` events after the
/// start never end a call: the conversation goes on.
#[tokio::test]
async fn live_junk_from_the_service_never_ends_a_call() {
    let mock = MockLive::builder()
        .script([LiveTurn::say("Still here.", 400)])
        .start()
        .await
        .unwrap();
    let bridge = Bridge::start(
        &mock.base_url(),
        &[LIVE, ("PHONE_AGENT_LIVE__GREETING", "off")],
    )
    .await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = live_session_of(&mock, call.call_sid()).await;
    session.wait_for_started(WAIT).await.unwrap();
    session.send_raw("this is not json");
    session.send_raw(r#"{"type":"session.brand_new_event","x":{"y":1}}"#);
    session.send_raw(r#"{"type":"session.usage.updated","usage":{"seconds":"lots"}}"#);
    session.send_raw(r#"{"type":"session.output_audio.delta","delta":"%%%"}"#);
    session.send_raw(r#"{"no_type":true}"#);
    session.send_error("rate_limit_exceeded", "Slow down.");
    say(&call, audio::speech(400));
    let said = session.wait_for_utterance_end(1, WAIT).await.unwrap();
    call.wait_received_audio(session.sent_audio().len(), WAIT)
        .await
        .unwrap();
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    assert!(contains(&call.received_audio(), &said.audio));
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up", "{:?}", ended.line);
    assert_no_violations(&call, &session);
    bridge.finish().await;
}

/// Routes each connection to one of two mocks by its request path (`/v1/live/…` to the
/// GPT-Live mock, the rest to the Realtime mock): one `OPENAI_BASE_URL` for both back ends, as
/// with the real service.
async fn path_router(live: std::net::SocketAddr, realtime: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match inbound.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let target = if head.starts_with(b"GET /v1/live/") {
                    live
                } else {
                    realtime
                };
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                if outbound.write_all(&head).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    format!("http://{addr}/v1")
}

/// The same call through the `realtime` back end and, on another number, a profile with
/// `backend = "live"`, on one server at the same time.
#[tokio::test]
async fn realtime_and_live_calls_run_side_by_side() {
    let live_mock = MockLive::builder()
        .script([LiveTurn::say("Live here.", 400)])
        .start()
        .await
        .unwrap();
    let rt_mock = testkit::openai::MockRealtime::builder()
        .script(
            testkit::openai::Script::new()
                .then(testkit::openai::ResponseScript::say("Realtime here.", 400)),
        )
        .start()
        .await
        .unwrap();
    let base = path_router(live_mock.addr(), rt_mock.addr()).await;
    let toml = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("e2e-live-profiles-{}.toml", std::process::id()));
    std::fs::write(
        &toml,
        "[profiles.gptlive]\nnumbers = [\"+15550004444\"]\nbackend = \"live\"\n",
    )
    .unwrap();
    let bridge = Bridge::start(
        &base,
        &[
            ("PHONE_AGENT_CONFIG", toml.to_str().unwrap()),
            ("PHONE_AGENT_AGENT__BACKEND", "realtime"),
            ("PHONE_AGENT_AGENT__GREETING", "off"),
            ("PHONE_AGENT_LIVE__GREETING", "off"),
        ],
    )
    .await;
    let (live, realtime) = (&bridge, &bridge);
    let live_call = live.sim.call().to("+15550004444").connect().await.unwrap();
    let rt_call = realtime.sim.call().connect().await.unwrap();
    let live_session = live_session_of(&live_mock, live_call.call_sid()).await;
    let rt_session = e2e_support::session_of(&rt_mock, rt_call.call_sid()).await;
    say(&live_call, audio::speech(400));
    say(&rt_call, audio::speech(400));
    let live_said = live_session.wait_for_utterance_end(1, WAIT).await.unwrap();
    let rt_said = rt_session.wait_for_response_done(1, WAIT).await.unwrap();
    assert_eq!(rt_said.status, "completed");
    let rt_audio = rt_session.assistant_items()[0].audio.clone();
    rt_call
        .wait_received_audio(rt_audio.len(), WAIT)
        .await
        .unwrap();
    live_call
        .wait_received_audio(live_session.sent_audio().len(), WAIT)
        .await
        .unwrap();
    live_call.stop(WAIT).await.unwrap();
    rt_call.stop(WAIT).await.unwrap();
    live_session.wait_closed(WAIT).await.unwrap();
    rt_session.wait_closed(WAIT).await.unwrap();
    assert!(contains(&live_call.received_audio(), &live_said.audio));
    assert_eq!(rt_call.received_audio(), rt_audio);
    assert!(!contains(
        &rt_call.received_audio(),
        &live_said.audio[..800]
    ));
    assert_eq!(
        logs()
            .call_ended(live_call.call_sid(), WAIT)
            .await
            .end_reason,
        "caller_hung_up"
    );
    assert_eq!(
        logs().call_ended(rt_call.call_sid(), WAIT).await.end_reason,
        "caller_hung_up"
    );
    bridge.finish().await;
}

/// The transcript fragments of `ty` (`session.input_transcript.delta` or
/// `session.output_transcript.delta`) the mock sent, joined and trimmed: one line, as the
/// bridge groups them (the tests keep each side to one line).
fn transcript_line(session: &LiveSessionHandle, ty: &str) -> String {
    session
        .server_events()
        .iter()
        .filter(|e| e.event_type == ty)
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(e.raw.as_deref().unwrap()).unwrap();
            v["delta"].as_str().unwrap().to_owned()
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A `session.start` `input` message as the reference spells it.
fn input_message(role: &str, text: &str) -> serde_json::Value {
    let kind = if role == "assistant" {
        "output_text"
    } else {
        "input_text"
    };
    serde_json::json!({"type": "message", "role": role, "content": [{"type": kind, "text": text}]})
}

/// The server's hold tone (call.rs): 250 ms of 440 Hz at −24 dBFS, then 750 ms of silence.
fn hold_clip() -> Vec<u8> {
    use bridge_core::audio::tone::{self, Tone};
    use bridge_core::format::AudioFormat;
    let mut clip = Vec::new();
    Tone::with_dbfs(440.0, -24.0, 8000).ulaw_into(2000, &mut clip);
    clip.extend_from_slice(&tone::silence_bytes(AudioFormat::Mulaw8k, 750));
    clip
}

/// Waits until the caller has received `audio` (contiguous) from the bridge.
async fn wait_received_containing(call: &ActiveCall, audio: &[u8]) {
    let mut have = call.received_audio().len();
    while !contains(&call.received_audio(), audio) {
        have = call.wait_received_audio(have + 1, WAIT).await.unwrap();
    }
}

/// GPT-Live's TCP connection drops while the model is answering: the bridge reconnects, the
/// new session's `session.start` carries the conversation so far as `input` (the caller's
/// line, the answer as far as its transcript had come, then the replay note), the resume is
/// an instruction, the caller hears the hold tone in the gap, and audio flows again both ways.
#[tokio::test]
async fn live_drop_mid_answer_reconnects_with_the_conversation_in_session_start() {
    let mock = MockLive::builder()
        // Two words over 4 s: the second fragment comes 2 s into the answer, long after the
        // drop below.
        .script([LiveTurn::say("Shipped yesterday.", 4000)])
        .caller_transcripts(&[" Where is my order?", " Thanks."])
        .start()
        .await
        .unwrap();
    let bridge = Bridge::start(
        &mock.base_url(),
        &[LIVE, ("PHONE_AGENT_LIVE__GREETING", "off")],
    )
    .await;
    let call = bridge.sim.call().connect().await.unwrap();
    let first = live_session_of(&mock, call.call_sid()).await;
    first.wait_for_started(WAIT).await.unwrap();
    assert!(first.start_config().unwrap().get("input").is_none());

    say(&call, audio::speech(400));
    let answer = first.wait_for_utterance(1, WAIT).await.unwrap();
    // The caller got the answer's first 200 ms: the bridge has read the fragment that came
    // with its first delta.
    wait_received_containing(&call, &answer.audio[..1600]).await;
    first.drop_connection();

    let second = mock.wait_for_session(2, WAIT).await.unwrap();
    second.wait_for_started(WAIT).await.unwrap();
    let start = second.start_config().unwrap();
    let heard = transcript_line(&first, "session.output_transcript.delta");
    assert!(
        !heard.is_empty()
            && "Shipped yesterday.".starts_with(&heard)
            && heard != "Shipped yesterday.",
        "mid-answer: {heard:?}"
    );
    assert_eq!(
        start["input"],
        serde_json::json!([
            input_message("user", "Where is my order?"),
            input_message("assistant", &heard),
            input_message("developer", phone_agent_server::adapters::live::REPLAY_NOTE),
        ]),
        "{start:#}"
    );
    assert_eq!(
        start["instructions"],
        first.start_config().unwrap()["instructions"],
        "the same prompt"
    );
    // The resume is an instruction to the model, not a line to read out.
    let resume = second
        .wait_for_event_type("session.instructions.append", WAIT)
        .await
        .unwrap();
    assert_eq!(
        resume.json["content"],
        bridge_core::engine::DEFAULT_RESUME,
        "{:?}",
        resume.json
    );
    assert!(
        second
            .client_events_of_type("session.commentary.append")
            .is_empty()
    );

    // Audio flows again: the caller's next turn reaches the new session, whose answer
    // reaches the caller; the gap was filled with the hold tone.
    let before = second.received_audio_len();
    say(&call, audio::speech(400));
    second
        .wait_for_received_audio(before + 8 * 400, WAIT)
        .await
        .unwrap();
    let again = second.wait_for_utterance_end(1, WAIT).await.unwrap();
    wait_received_containing(&call, &again.audio).await;
    assert!(
        contains(&call.received_audio(), &hold_clip()),
        "the caller heard the hold tone during the gap"
    );

    call.stop(WAIT).await.unwrap();
    second.wait_closed(WAIT).await.unwrap();
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up", "{:?}", ended.line);
    assert!(second.close_requested());
    assert_eq!(mock.sessions().len(), 2, "one reconnect");
    assert_no_violations(&call, &second);
    bridge.finish().await;
}

/// A session near its `expires_at` is recycled make-before-break: at a pause a standby starts
/// with the conversation as `input`, at the next pause it takes over (no gap at the switch) and
/// the old one is closed with `session.close`; no wrap-up line is said, and the call goes on in
/// the new session.
#[tokio::test]
async fn live_session_is_recycled_before_it_expires() {
    let mock = MockLive::builder()
        .script([LiveTurn::say("Shipped yesterday.", 600)])
        .caller_transcripts(&[" Where is my order?", " Thanks."])
        // expires_at about 66 s after the start: the recycling window opens after about 4 s
        // (the conversation below is over by then), the wrap-up line would come after 36 s.
        .lifetime(Duration::from_secs(66))
        .start()
        .await
        .unwrap();
    let bridge = Bridge::start(
        &mock.base_url(),
        &[
            LIVE,
            ("PHONE_AGENT_LIVE__GREETING", "off"),
            ("PHONE_AGENT_LIVE__RECYCLE_BEFORE_SECS", "62"),
            ("PHONE_AGENT_LIVE__WRAP_UP_BEFORE_SECS", "30"),
        ],
    )
    .await;
    let call = bridge.sim.call().connect().await.unwrap();
    let first = live_session_of(&mock, call.call_sid()).await;
    first.wait_for_started(WAIT).await.unwrap();
    say(&call, audio::speech(400));
    let answer = first.wait_for_utterance_end(1, WAIT).await.unwrap();
    assert_eq!(answer.text, "Shipped yesterday.");

    let second = mock.wait_for_session(2, WAIT).await.unwrap();
    second.wait_for_started(WAIT).await.unwrap();
    first.wait_closed(WAIT).await.unwrap();
    assert!(
        first.close_requested(),
        "the old session closed with session.close"
    );
    assert_eq!(first.closed_reason().as_deref(), Some("close_requested"));
    // The conversation happened before the switch, entirely in the first session.
    assert_eq!(first.utterances().len(), 1);
    assert_eq!(
        second.start_config().unwrap()["input"],
        serde_json::json!([
            input_message("user", "Where is my order?"),
            input_message("assistant", "Shipped yesterday."),
            input_message("developer", phone_agent_server::adapters::live::REPLAY_NOTE),
        ])
    );
    assert!(
        first
            .client_events_of_type("session.commentary.append")
            .is_empty(),
        "no wrap-up line"
    );

    // The call goes on in the new session.
    let before = second.received_audio_len();
    say(&call, audio::speech(400));
    second
        .wait_for_received_audio(before + 8 * 400, WAIT)
        .await
        .unwrap();
    let again = second.wait_for_utterance_end(1, WAIT).await.unwrap();
    wait_received_containing(&call, &again.audio).await;
    call.stop(WAIT).await.unwrap();
    second.wait_closed(WAIT).await.unwrap();
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up", "{:?}", ended.line);
    assert_no_violations(&call, &second);
    assert!(first.violations().is_empty(), "{:?}", first.violations());
    let recycled: Vec<_> = logs()
        .for_call(call.call_sid())
        .into_iter()
        .filter(|l| l["message"] == "agent session recycled; conversation replayed")
        .collect();
    assert_eq!(recycled.len(), 1, "{recycled:#?}");
    assert_eq!(
        recycled[0]["gap_ms"], 0,
        "the standby was ready before the switch"
    );
    bridge.finish().await;
}

/// With reconnects on, `session.closed` `expired` mid-call is a loss like a dropped socket: a
/// fresh session carries the call on with the conversation in its `session.start`.
#[tokio::test]
async fn live_session_expired_mid_call_is_replaced() {
    let mock = MockLive::builder()
        .script([LiveTurn::say("Shipped yesterday.", 600)])
        .caller_transcripts(&[" Where is my order?"])
        .start()
        .await
        .unwrap();
    let bridge = Bridge::start(
        &mock.base_url(),
        &[LIVE, ("PHONE_AGENT_LIVE__GREETING", "off")],
    )
    .await;
    let call = bridge.sim.call().connect().await.unwrap();
    let first = live_session_of(&mock, call.call_sid()).await;
    first.wait_for_started(WAIT).await.unwrap();
    say(&call, audio::speech(400));
    let answer = first.wait_for_utterance_end(1, WAIT).await.unwrap();
    // The bridge has read the whole answer (and its transcript) once the caller got it all.
    wait_received_containing(&call, &answer.audio).await;
    first.close_session("expired");
    let second = mock.wait_for_session(2, WAIT).await.unwrap();
    second.wait_for_started(WAIT).await.unwrap();
    assert_eq!(
        second.start_config().unwrap()["input"],
        serde_json::json!([
            input_message("user", "Where is my order?"),
            input_message("assistant", "Shipped yesterday."),
            input_message("developer", phone_agent_server::adapters::live::REPLAY_NOTE),
        ])
    );
    assert!(!first.close_requested());
    call.stop(WAIT).await.unwrap();
    second.wait_closed(WAIT).await.unwrap();
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up", "{:?}", ended.line);
    assert_no_violations(&call, &second);
    bridge.finish().await;
}

/// Azure resource keys: with `openai.auth = "api-key"` the key goes in the `api-key` header
/// (no `Authorization`), and it never appears in the logs. The strict mock accepts the
/// `session.start`, which carries `safety_identifier`: a keyed pseudonym of the caller's number,
/// never the number.
#[tokio::test]
async fn live_azure_api_key_header_and_safety_identifier() {
    const KEY: &str = "azure-resource-key-e2e-9f3b";
    const FROM: &str = "+15005550006";
    let mock = MockLive::builder().azure().start().await.unwrap();
    let bridge = Bridge::start(
        &mock.base_url(),
        &[
            LIVE,
            ("PHONE_AGENT_LIVE__GREETING", "off"),
            ("OPENAI_API_KEY", KEY),
            ("PHONE_AGENT_OPENAI__AUTH", "api-key"),
        ],
    )
    .await;
    let call = bridge.sim.call().from(FROM).connect().await.unwrap();
    let session = live_session_of(&mock, call.call_sid()).await;
    session.wait_for_started(WAIT).await.unwrap();
    assert_eq!(session.request_header("api-key").as_deref(), Some(KEY));
    assert_eq!(session.request_header("authorization"), None);

    let start = session.start_config().unwrap();
    let expected = phone_agent_server::tokens::StreamTokenKey::derived_from_auth_token(AUTH_TOKEN)
        .pseudonym(FROM);
    assert_eq!(start["safety_identifier"], expected.as_str());
    assert!(expected.starts_with("caller-") && expected.len() == 7 + 32);
    assert!(!expected.contains("5005550006"));
    assert!(
        session.violations().is_empty(),
        "{:?}",
        session.violations()
    );

    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    logs().call_ended(call.call_sid(), WAIT).await;
    let logged = serde_json::to_string(&logs().lines()).unwrap();
    assert!(!logged.contains(KEY), "the key was logged");
    bridge.finish().await;

    // Off: no safety_identifier.
    let bridge = Bridge::start(
        &mock.base_url(),
        &[
            LIVE,
            ("PHONE_AGENT_LIVE__GREETING", "off"),
            ("PHONE_AGENT_LIVE__SAFETY_IDENTIFIER", "false"),
        ],
    )
    .await;
    let call = bridge.sim.call().from(FROM).connect().await.unwrap();
    let session = live_session_of(&mock, call.call_sid()).await;
    session.wait_for_started(WAIT).await.unwrap();
    assert!(
        session
            .start_config()
            .unwrap()
            .get("safety_identifier")
            .is_none()
    );
    assert_eq!(
        session.request_header("authorization").as_deref(),
        Some("Bearer sk-e2e")
    );
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    bridge.finish().await;
}

/// The `seconds` of the last `ty` event the mock sent (`session.usage.updated` or
/// `session.closed`).
fn usage_sent(session: &LiveSessionHandle, ty: &str) -> Option<f64> {
    session
        .server_events()
        .iter()
        .rev()
        .find(|e| e.event_type == ty)
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(e.raw.as_deref().unwrap()).unwrap();
            v["usage"]["seconds"].as_f64().unwrap()
        })
}

/// The final usage that `session.closed` brings after our `session.close` (at teardown, after
/// the call's summary was made) is the call's billed seconds; with a reconnect, the sessions'
/// seconds add up (the lost one's last `session.usage.updated`, unconfirmed).
#[tokio::test]
async fn live_final_usage_after_session_close_is_the_calls_billed_seconds() {
    let mock = MockLive::builder()
        .usage_interval_ms(300)
        .start()
        .await
        .unwrap();
    let bridge = Bridge::start(
        &mock.base_url(),
        &[LIVE, ("PHONE_AGENT_LIVE__GREETING", "off")],
    )
    .await;
    let call = bridge.sim.call().connect().await.unwrap();
    let first = live_session_of(&mock, call.call_sid()).await;
    first
        .wait_for_server_event("session.usage.updated", 2, WAIT)
        .await
        .unwrap();
    first.drop_connection();
    let second = mock.wait_for_session(2, WAIT).await.unwrap();
    second.wait_for_started(WAIT).await.unwrap();
    call.stop(WAIT).await.unwrap();
    second.wait_closed(WAIT).await.unwrap();
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    let lost = usage_sent(&first, "session.usage.updated").unwrap();
    let last = usage_sent(&second, "session.closed").expect("session.closed carries usage");
    assert!(second.close_requested());
    let billed = ended.line["billed_seconds"]
        .as_f64()
        .expect("billed seconds logged");
    assert!(
        (billed - (lost + last)).abs() < 1e-9,
        "billed {billed} = {lost} (lost session) + {last} (final)"
    );
    bridge.finish().await;
}
