//! Call records end to end, against a real SQLite file and a real PostgreSQL server (a
//! throwaway cluster started by the test kit): a simulated call with a tool call, a barge-in
//! and a hang-up produces exactly the expected record (the interrupted agent line cut at what
//! the caller heard); a database stopped in the middle of a call harms no call and loses no
//! record; the admin API is closed without a token, refuses wrong tokens and pages stably; and
//! status callbacks are signed, update the record, and end a call whose stream is still open.

mod e2e_support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bridge_core::tools::{ToolDefinition, ToolExecutor, ToolInvocation, ToolOutput};
use e2e_support::{Bridge, PUBLIC, WAIT, logs, say, session_of};
use serde_json::{Value, json};
use testkit::audio;
use testkit::http;
use testkit::openai::{MockRealtime, ResponseScript, Script};
use testkit::postgres::PgCluster;
use testkit::twilio::{ActiveCall, CallEvent};
use tokio::time::Instant;

const ADMIN: &str = "records-test-admin-token-0123456789";
const GREETING: &str = "Welcome to Acme Parcel Services. I can look up any order for you, tell \
    you where it is, and when it will arrive at your door.";
const CHECKING: &str = "Let me check that order.";
const ANSWER: &str = "It shipped yesterday and arrives on Friday.";

/// The tool of these calls: looks up an order.
struct LookupOrder;

#[async_trait]
impl ToolExecutor for LookupOrder {
    fn definitions(&self) -> Vec<ToolDefinition> {
        vec![ToolDefinition {
            name: "lookup_order".into(),
            description: "Looks up an order.".into(),
            parameters: json!({"type": "object", "properties": {"order": {"type": "string"}}}),
        }]
    }

    async fn call(&self, _invocation: ToolInvocation) -> ToolOutput {
        ToolOutput::json(&json!({"status": "shipped"}))
    }
}

/// A unique SQLite file under the test target directory.
fn sqlite_url(name: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("records-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The store creates the directory itself (`data/` on first start).
    dir.join(format!("{name}.db")).display().to_string()
}

async fn bridge(mock: &MockRealtime, database_url: &str, extra: &[(&str, &str)]) -> Bridge {
    let mut vars = vec![
        ("PHONE_AGENT_DATABASE__URL", database_url),
        ("PHONE_AGENT_ADMIN__TOKEN", ADMIN),
    ];
    vars.extend_from_slice(extra);
    Bridge::start_with_tools(&mock.base_url(), &vars, Some(Arc::new(LookupOrder))).await
}

async fn api(bridge: &Bridge, path: &str, token: Option<&str>) -> http::HttpResponse {
    let url = format!("http://{}{path}", bridge.addr);
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    http::request(::http::Method::GET, &url, &headers, bytes::Bytes::new())
        .await
        .unwrap()
}

/// Waits (bounded) until the stored call satisfies `done`, and returns it.
async fn stored_call(bridge: &Bridge, sid: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = api(bridge, &format!("/api/calls/{sid}"), Some(ADMIN)).await;
        if r.status == 200 {
            let v = r.json().unwrap();
            if done(&v) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "call {sid} not stored as expected: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn has_record(v: &Value) -> bool {
    v["end_reason"].is_string()
}

/// Replaces what depends on the clock (times, latencies, offsets) by whether it is present,
/// after checking the times are in order.
fn normalize(mut v: Value) -> Value {
    let t = v["times"].clone();
    let int = |k: &str| t[k].as_i64();
    let started = int("stream_started_at_ms").expect("stream start time");
    let ended = int("ended_at_ms").expect("end time");
    for k in ["webhook_at_ms"] {
        if let Some(at) = int(k) {
            assert!(at <= started, "{k} after the stream started: {t}");
        }
    }
    for k in ["agent_ready_at_ms", "first_agent_audio_at_ms"] {
        if let Some(at) = int(k) {
            assert!(started <= at && at <= ended, "{k} out of order: {t}");
        }
    }
    assert_eq!(v["duration_ms"].as_i64(), Some(ended - started));
    let present = |x: &Value| Value::Bool(!x.is_null());
    for k in [
        "webhook_at_ms",
        "stream_started_at_ms",
        "agent_ready_at_ms",
        "first_agent_audio_at_ms",
        "ended_at_ms",
    ] {
        v["times"][k] = present(&v["times"][k]);
    }
    v["duration_ms"] = json!(true);
    v["created_at_ms"] = present(&v["created_at_ms"]);
    for k in ["agent_connect_ms", "first_audio_ms"] {
        v["latency"][k] = present(&v["latency"][k]);
    }
    for d in ["relay_caller_to_agent", "relay_agent_to_caller"] {
        for p in ["p50_ms", "p99_ms"] {
            v["latency"][d][p] = present(&v["latency"][d][p]);
        }
    }
    let mut last = 0;
    for turn in v["transcript"].as_array_mut().into_iter().flatten() {
        let at = turn["at_ms"].as_u64().expect("turn offset");
        assert!(at >= last, "turns in order");
        last = at;
        turn["at_ms"] = json!(true);
    }
    for tool in v["tool_calls"].as_array_mut().into_iter().flatten() {
        tool["at_ms"] = present(&tool["at_ms"]);
        tool["latency_ms"] = present(&tool["latency_ms"]);
    }
    let mut last = 0;
    for turn in v["timeline"]["agent_turns"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let at = turn["at_ms"].as_u64().expect("turn start");
        assert!(at >= last, "agent turns in order");
        last = at;
        turn["at_ms"] = json!(true);
        turn["latency_ms"] = present(&turn["latency_ms"]);
    }
    for barge_in in v["timeline"]["barge_ins"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        barge_in["at_ms"] = present(&barge_in["at_ms"]);
    }
    v
}

/// The raw JSON of the mock's server events of `kind`, in order.
fn mock_events(session: &testkit::openai::SessionHandle, kind: &str) -> Vec<Value> {
    session
        .server_events()
        .iter()
        .filter(|e| e.event_type == kind)
        .map(|e| serde_json::from_str(&e.raw).unwrap())
        .collect()
}

/// One call: the greeting is interrupted after about a second, the caller's words make the
/// agent call a tool and answer, the caller hears the answer and hangs up. Returns the
/// expected record (normalized) and the call SID.
async fn tool_barge_in_hang_up(bridge: &Bridge, mock: &MockRealtime) -> (String, Value) {
    let call = bridge.sim.call().connect().await.unwrap();
    let sid = call.call_sid().to_owned();
    let session = session_of(mock, &sid).await;
    call.wait_heard(1000 * 8, WAIT).await.unwrap();
    say(&call, audio::speech(400));
    let clear = call
        .wait_for_nth(|e| matches!(e, CallEvent::ClearReceived { .. }), 1, WAIT)
        .await
        .unwrap();
    let heard_before = call.heard_at(clear.at).len();
    session.wait_for_response_done(3, WAIT).await.unwrap();
    let items = session.assistant_items();
    assert_eq!(items.len(), 3, "greeting, check, answer");
    let rest: usize = items[1..].iter().map(|i| i.audio.len()).sum();
    call.wait_heard(heard_before + rest, WAIT).await.unwrap();
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    let ended = logs().call_ended(&sid, WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up");

    // What the mock said and did, to state the record exactly.
    let truncation = session
        .truncations()
        .into_iter()
        .next()
        .expect("a truncate");
    assert_eq!(truncation.item_id, items[0].item_id);
    let sent = truncation.audio_sent_ms.expect("the greeting's audio");
    let heard = truncation.audio_end_ms;
    assert!(heard < sent, "the greeting was cut: {heard} of {sent} ms");
    let mut turns = Vec::new();
    for e in session.server_events() {
        let v: Value = serde_json::from_str(&e.raw).unwrap();
        match e.event_type.as_str() {
            "response.output_audio_transcript.done" => {
                let text = v["transcript"].as_str().unwrap().to_owned();
                let item = v["item_id"].as_str().unwrap().to_owned();
                if item == truncation.item_id {
                    let (kept, unheard) = phone_agent_server::record::cut_heard(&text, heard, sent);
                    // The heard part is a whole-word prefix of what was generated.
                    assert!(text.starts_with(&kept) && !kept.is_empty(), "{kept:?}");
                    assert_eq!(format!("{kept} {unheard}"), text);
                    turns.push(json!({"speaker": "agent", "text": kept, "at_ms": true,
                        "item_id": item, "interrupted": true, "heard_ms": heard,
                        "sent_ms": sent, "unheard_text": unheard}));
                } else {
                    turns.push(json!({"speaker": "agent", "text": text, "at_ms": true,
                        "item_id": item, "interrupted": false, "heard_ms": null,
                        "sent_ms": null, "unheard_text": null}));
                }
            }
            "conversation.item.input_audio_transcription.completed" => {
                turns.push(
                    json!({"speaker": "caller", "text": v["transcript"], "at_ms": true,
                    "item_id": v["item_id"], "interrupted": false, "heard_ms": null,
                    "sent_ms": null, "unheard_text": null}),
                );
            }
            _ => {}
        }
    }
    let texts: Vec<&str> = turns.iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert!(GREETING.starts_with(texts[0]), "{texts:?}");
    assert_eq!(texts[2..], [CHECKING, ANSWER]);

    let (mut input, mut output, mut input_audio, mut output_audio) = (0, 0, 0, 0);
    for done in mock_events(&session, "response.done") {
        let u = &done["response"]["usage"];
        input += u["input_tokens"].as_u64().unwrap_or(0);
        output += u["output_tokens"].as_u64().unwrap_or(0);
        input_audio += u["input_token_details"]["audio_tokens"]
            .as_u64()
            .unwrap_or(0);
        output_audio += u["output_token_details"]["audio_tokens"]
            .as_u64()
            .unwrap_or(0);
    }
    let usd = ((input - input_audio) as f64 * 4.0
        + (output - output_audio) as f64 * 16.0
        + input_audio as f64 * 32.0
        + output_audio as f64 * 64.0)
        / 1e6;
    let function_call = session.function_calls()[0].call_id.clone();
    let expected = json!({
        "call_sid": sid,
        "stream_sid": call.stream_sid(),
        "account_sid": call.account_sid(),
        "direction": "inbound",
        "from": "+14155551234",
        "to": "+15005550006",
        "profile": "default",
        "backend": "realtime",
        "model": "gpt-realtime-2.1",
        "voice": "marin",
        "times": {
            "webhook_at_ms": true,
            "stream_started_at_ms": true,
            "agent_ready_at_ms": true,
            "first_agent_audio_at_ms": true,
            "ended_at_ms": true,
        },
        "created_at_ms": true,
        "duration_ms": true,
        "end_reason": "caller_hung_up",
        "end_detail": null,
        "transfer_target": null,
        "barge_ins": 1,
        "reconnects": 0,
        "recycles": 0,
        "recycle_gap_ms": 0,
        "handovers": 0,
        "transcript": turns,
        "tool_calls": [{
            "call_id": function_call,
            "name": "lookup_order",
            "arguments": {"order": "A-7"},
            "outcome": "ok",
            "output": {"status": "shipped"},
            "latency_ms": true,
            "at_ms": true,
            "action": null,
        }],
        "usage": {
            "input_tokens": input,
            "output_tokens": output,
            "input_audio_tokens": input_audio,
            "output_audio_tokens": output_audio,
            "billed_seconds": null,
        },
        "cost": {
            "usd": usd,
            "text_input_per_mtok": 4.0,
            "text_output_per_mtok": 16.0,
            "audio_input_per_mtok": 32.0,
            "audio_output_per_mtok": 64.0,
            "live_per_minute": 0.05,
        },
        "latency": {
            "agent_connect_ms": true,
            "first_audio_ms": true,
            "relay_caller_to_agent": {"p50_ms": true, "p99_ms": true},
            "relay_agent_to_caller": {"p50_ms": true, "p99_ms": true},
        },
        "recording_path": null,
        "twilio": {
            "status": null,
            "ringing_at_ms": null,
            "answered_at_ms": null,
            "completed_at_ms": null,
            "duration_secs": null,
        },
        "timeline": {
            "agent_turns": [
                {"at_ms": true, "latency_ms": true, "trigger": "greeting"},
                {"at_ms": true, "latency_ms": true, "trigger": "caller_stopped_speaking"},
                {"at_ms": true, "latency_ms": true, "trigger": "tool_results"},
            ],
            "barge_ins": [{"at_ms": true}],
        },
        "answered_by": null,
    });
    (sid, expected)
}

fn mock_script() -> Script {
    Script::new()
        .then(ResponseScript::say(GREETING, 3000))
        .then(ResponseScript::say(CHECKING, 400).then_call("lookup_order", r#"{"order":"A-7"}"#))
        .then(ResponseScript::say(ANSWER, 600))
}

async fn the_call_is_recorded_exactly(database_url: &str) {
    let mock = MockRealtime::builder()
        .script(mock_script())
        .start()
        .await
        .unwrap();
    let bridge = bridge(&mock, database_url, &[]).await;
    let (sid, expected) = tool_barge_in_hang_up(&bridge, &mock).await;
    let stored = stored_call(&bridge, &sid, has_record).await;
    assert_eq!(normalize(stored), expected);

    // The transcript route: JSON, and plain text on request.
    let t = api(
        &bridge,
        &format!("/api/calls/{sid}/transcript"),
        Some(ADMIN),
    )
    .await;
    assert_eq!(t.status, 200);
    assert_eq!(t.json().unwrap()["transcript"].as_array().unwrap().len(), 4);
    let url = format!("http://{}/api/calls/{sid}/transcript", bridge.addr);
    let auth = format!("Bearer {ADMIN}");
    let plain = http::request(
        ::http::Method::GET,
        &url,
        &[("authorization", auth.as_str()), ("accept", "text/plain")],
        bytes::Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let text = plain.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].contains("] agent: Welcome") && lines[0].ends_with(" […]"),
        "{text}"
    );
    assert!(lines[3].ends_with(&format!("] agent: {ANSWER}")), "{text}");
    bridge.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_a_tool_a_barge_in_and_a_hang_up_is_recorded_exactly_in_sqlite() {
    let url = sqlite_url("calls");
    the_call_is_recorded_exactly(&url).await;
    // WAL mode, in the file named by the setting.
    assert!(
        std::path::Path::new(&format!("{url}-wal")).exists() || std::path::Path::new(&url).exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_a_tool_a_barge_in_and_a_hang_up_is_recorded_exactly_in_postgres() {
    let Some(pg) = PgCluster::start_or_skip("records in PostgreSQL").await else {
        return;
    };
    let url = pg.create_database("records_exact").await.unwrap();
    the_call_is_recorded_exactly(&url).await;
}

/// A short call: the greeting is heard in full, then the caller hangs up.
async fn greeting_call(bridge: &Bridge, mock: &MockRealtime) -> (ActiveCall, String) {
    let call = bridge.sim.call().connect().await.unwrap();
    let sid = call.call_sid().to_owned();
    let session = session_of(mock, &sid).await;
    session.wait_for_response_done(1, WAIT).await.unwrap();
    let greeting = session.assistant_items()[0].audio.clone();
    let heard = call.wait_heard(greeting.len(), WAIT).await.unwrap();
    assert_eq!(heard, greeting, "the whole greeting, byte-identical");
    (call, sid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_stopped_mid_call_harms_no_call_and_loses_no_record() {
    let Some(mut pg) = PgCluster::start_or_skip("database outage").await else {
        return;
    };
    let url = pg.create_database("records_outage").await.unwrap();
    let mock = MockRealtime::builder()
        .script(Script::new().fallback(ResponseScript::say("Hello from Acme.", 400)))
        .start()
        .await
        .unwrap();
    let bridge = bridge(&mock, &url, &[]).await;

    // A call recorded while the database is up.
    let (first, first_sid) = greeting_call(&bridge, &mock).await;
    first.stop(WAIT).await.unwrap();
    stored_call(&bridge, &first_sid, has_record).await;

    // The database goes away in the middle of the second call.
    let (second, second_sid) = greeting_call(&bridge, &mock).await;
    pg.stop().await.unwrap();
    second.stop(WAIT).await.unwrap();
    let ended = logs().call_ended(&second_sid, WAIT).await;
    assert_eq!(
        ended.end_reason, "caller_hung_up",
        "the call ended normally"
    );
    let deadline = Instant::now() + WAIT;
    while bridge.handle.store_counts().unwrap().database_errors == 0 {
        assert!(
            Instant::now() < deadline,
            "the failed write was not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A third call while it is down goes just as well.
    let (third, third_sid) = greeting_call(&bridge, &mock).await;
    third.stop(WAIT).await.unwrap();
    assert_eq!(
        logs().call_ended(&third_sid, WAIT).await.end_reason,
        "caller_hung_up"
    );

    // Back up: the held records are written, the earlier one is still there, new calls are
    // recorded again.
    pg.resume().await.unwrap();
    let (fourth, fourth_sid) = greeting_call(&bridge, &mock).await;
    fourth.stop(WAIT).await.unwrap();
    for sid in [&first_sid, &second_sid, &third_sid, &fourth_sid] {
        let call = stored_call(&bridge, sid, has_record).await;
        assert_eq!(call["end_reason"], "caller_hung_up");
        assert_eq!(call["transcript"][0]["text"], "Hello from Acme.");
    }
    let list = api(&bridge, "/api/calls", Some(ADMIN))
        .await
        .json()
        .unwrap();
    assert_eq!(list["calls"].as_array().unwrap().len(), 4);
    let counts = bridge.handle.store_counts().unwrap();
    assert_eq!((counts.rejected, counts.queue_full, counts.lost), (0, 0, 0));
    bridge.finish().await;
}

/// Posts a voice webhook signed as Twilio would (a call rings; no stream follows).
async fn ring(bridge: &Bridge, sid: &str, from: &str, direction: &str) {
    let form = [
        ("CallSid", sid),
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("From", from),
        ("To", "+15005550006"),
        ("CallStatus", "ringing"),
        ("Direction", direction),
    ];
    let r = signed_post(bridge, "/voice", &form).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn signed_post(bridge: &Bridge, path: &str, form: &[(&str, &str)]) -> http::HttpResponse {
    let signature =
        testkit::twilio::signature::sign(e2e_support::AUTH_TOKEN, &format!("{PUBLIC}{path}"), form);
    http::post_form(
        &format!("http://{}{path}", bridge.addr),
        &[("x-twilio-signature", signature.as_str())],
        form,
    )
    .await
    .unwrap()
}

fn sids(page: &Value) -> Vec<String> {
    page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_sid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_are_closed_without_a_token_refuse_wrong_ones_and_page_stably() {
    let mock = MockRealtime::start().await.unwrap();
    // No token: the routes do not exist.
    let closed = Bridge::start(
        &mock.base_url(),
        &[("PHONE_AGENT_DATABASE__URL", &sqlite_url("closed"))],
    )
    .await;
    for path in ["/api/calls", "/api/calls/CA1", "/api/calls/CA1/transcript"] {
        assert_eq!(api(&closed, path, Some(ADMIN)).await.status, 404, "{path}");
    }
    closed.finish().await;

    let bridge = bridge(&mock, &sqlite_url("admin"), &[]).await;
    let r = api(&bridge, "/api/calls", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"phone-agent\"")
    );
    assert_eq!(
        api(&bridge, "/api/calls", Some("wrong-token-0123456789"))
            .await
            .status,
        401
    );
    assert_eq!(api(&bridge, "/api/calls/CA1", Some("x")).await.status, 401);

    // Five calls ring (webhooks only), one of them outbound from another number.
    let sid = |n: u32| format!("CA{n:032}");
    for n in 1..=5 {
        let from = if n == 3 {
            "+447700900123"
        } else {
            "+14155551234"
        };
        let direction = if n == 3 { "outbound-api" } else { "inbound" };
        ring(&bridge, &sid(n), from, direction).await;
    }
    stored_call(&bridge, &sid(5), |_| true).await;

    let page1 = api(&bridge, "/api/calls?limit=2", Some(ADMIN))
        .await
        .json()
        .unwrap();
    assert_eq!(sids(&page1), [sid(5), sid(4)]);
    let cursor = page1["next_cursor"].as_str().unwrap().to_owned();
    // Calls arriving while the client pages go to the top and shift nothing.
    ring(&bridge, &sid(6), "+14155551234", "inbound").await;
    ring(&bridge, &sid(7), "+14155551234", "inbound").await;
    stored_call(&bridge, &sid(7), |_| true).await;
    let page2 = api(
        &bridge,
        &format!("/api/calls?limit=2&cursor={cursor}"),
        Some(ADMIN),
    )
    .await
    .json()
    .unwrap();
    assert_eq!(sids(&page2), [sid(3), sid(2)]);
    let cursor = page2["next_cursor"].as_str().unwrap().to_owned();
    let page3 = api(
        &bridge,
        &format!("/api/calls?limit=2&cursor={cursor}"),
        Some(ADMIN),
    )
    .await
    .json()
    .unwrap();
    assert_eq!(sids(&page3), [sid(1)]);
    assert!(page3["next_cursor"].is_null());
    let top = api(&bridge, "/api/calls?limit=2", Some(ADMIN))
        .await
        .json()
        .unwrap();
    assert_eq!(sids(&top), [sid(7), sid(6)]);

    // Filters.
    let by_number = api(&bridge, "/api/calls?number=%2B447700900123", Some(ADMIN))
        .await
        .json()
        .unwrap();
    assert_eq!(sids(&by_number), [sid(3)]);
    let outbound = api(&bridge, "/api/calls?direction=outbound", Some(ADMIN))
        .await
        .json()
        .unwrap();
    assert_eq!(sids(&outbound), [sid(3)]);
    assert_eq!(outbound["calls"][0]["from"], "+447700900123");
    let future = api(&bridge, "/api/calls?since_ms=99999999999999", Some(ADMIN))
        .await
        .json()
        .unwrap();
    assert!(sids(&future).is_empty());
    assert_eq!(
        api(&bridge, "/api/calls?limit=0", Some(ADMIN)).await.status,
        400
    );
    assert_eq!(
        api(&bridge, &format!("/api/calls/{}", sid(9)), Some(ADMIN))
            .await
            .status,
        404
    );
    bridge.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_callbacks_are_signed_update_the_record_and_end_an_open_call() {
    let mock = MockRealtime::builder()
        .script(Script::new().fallback(ResponseScript::say("Hello from Acme.", 400)))
        .start()
        .await
        .unwrap();
    let bridge = bridge(&mock, &sqlite_url("status"), &[]).await;

    // Unsigned and forged callbacks are refused.
    let form = [
        ("CallSid", "CA00000000000000000000000000000077"),
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("CallStatus", "completed"),
        ("CallDuration", "42"),
        ("SequenceNumber", "2"),
    ];
    let url = format!("http://{}/twilio/status", bridge.addr);
    assert_eq!(http::post_form(&url, &[], &form).await.unwrap().status, 403);
    let forged = http::post_form(
        &url,
        &[("x-twilio-signature", "bm90IGEgc2lnbmF0dXJl")],
        &form,
    )
    .await
    .unwrap();
    assert_eq!(forged.status, 403);

    // Signed ones update the record, in sequence order whatever order they arrive in.
    let sid = "CA00000000000000000000000000000077";
    assert_eq!(
        signed_post(&bridge, "/twilio/status", &form).await.status,
        204
    );
    let ringing = [
        ("CallSid", sid),
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("CallStatus", "ringing"),
        ("SequenceNumber", "0"),
    ];
    assert_eq!(
        signed_post(&bridge, "/twilio/status", &ringing)
            .await
            .status,
        204
    );
    let stored = stored_call(&bridge, sid, |v| !v["twilio"]["ringing_at_ms"].is_null()).await;
    assert_eq!(stored["twilio"]["status"], "completed");
    assert_eq!(stored["twilio"]["duration_secs"], 42);
    assert!(stored["twilio"]["completed_at_ms"].is_i64());

    // `completed` for a call whose stream is open here ends it.
    let (call, call_sid) = greeting_call(&bridge, &mock).await;
    let completed = [
        ("CallSid", call_sid.as_str()),
        ("AccountSid", call.account_sid()),
        ("CallStatus", "completed"),
        ("CallDuration", "3"),
        ("SequenceNumber", "3"),
    ];
    assert_eq!(
        signed_post(&bridge, "/twilio/status", &completed)
            .await
            .status,
        204
    );
    call.wait_closed(WAIT).await.unwrap();
    let record = stored_call(&bridge, &call_sid, has_record).await;
    assert_eq!(record["end_reason"], "twilio_completed");
    assert_eq!(record["twilio"]["status"], "completed");
    assert_eq!(record["twilio"]["duration_secs"], 3);
    bridge.finish().await;
}

/// Inserts a call in an open transaction of its own, as another instance's store writer does
/// (the server's writer commits each write in one transaction), and returns the id it drew.
async fn insert_uncommitted(tx: &mut sqlx::PgConnection, sid: &str) -> i64 {
    use sqlx::{Executor as _, Row as _};
    tx.execute("BEGIN").await.unwrap();
    let row = sqlx::query(
        "INSERT INTO calls (call_sid, created_at_ms, direction) VALUES ($1, 0, 'inbound') \
         RETURNING id",
    )
    .bind(sid)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    row.get::<i64, _>("id")
}

/// The race of issue 13: two transactions draw ids 3 and 4, the later one (4) commits first,
/// a client reads the first page, and only then does id 3 commit. Paged by id, the call with
/// id 3 would sit between two positions the client has already passed (below the top it saw,
/// above its cursor): skipped by the following pages and by "what is new since the top". Paged
/// by the position drawn at commit (migration 0004) it appears at the top: across the pages
/// read before and after, and the new calls above the first page's top, every call appears
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_skips_and_repeats_no_call_committed_out_of_id_order_in_postgres() {
    use sqlx::{Connection as _, Executor as _};
    let Some(pg) = PgCluster::start_or_skip("paging in PostgreSQL").await else {
        return;
    };
    let url = pg.create_database("paging").await.unwrap();
    let mock = MockRealtime::start().await.unwrap();
    let bridge = bridge(&mock, &url, &[]).await;
    let sid = |n: u32| format!("CA{n:032}");
    // A1 and A2 are stored by the server (its writer ran the migrations first).
    for n in [1, 2] {
        ring(&bridge, &sid(n), "+14155551234", "inbound").await;
        stored_call(&bridge, &sid(n), |_| true).await;
    }
    // Two other writers: T1 draws its id before T2, T2 commits first.
    let (t1, t2) = (sid(11), sid(12));
    let mut w1 = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut w2 = sqlx::PgConnection::connect(&url).await.unwrap();
    let id1 = insert_uncommitted(&mut w1, &t1).await;
    let id2 = insert_uncommitted(&mut w2, &t2).await;
    assert!(id1 < id2, "T1 drew {id1}, T2 {id2}");
    w2.execute("COMMIT").await.unwrap();
    // A3 is stored by the server while T1 is still open (nothing waits for T1).
    ring(&bridge, &sid(3), "+14155551234", "inbound").await;
    stored_call(&bridge, &sid(3), |_| true).await;

    // The client reads the first page: T1 is not committed, so not there.
    let page1 = api(&bridge, "/api/calls?limit=3", Some(ADMIN))
        .await
        .json()
        .unwrap();
    assert_eq!(sids(&page1), [sid(3), t2.clone(), sid(2)]);
    let mut cursor = page1["next_cursor"].as_str().unwrap().to_owned();
    let mut seen = sids(&page1);

    // Now T1 commits: by id it would be between T2 and A2, both already read.
    w1.execute("COMMIT").await.unwrap();

    // The rest of the pages.
    loop {
        let page = api(
            &bridge,
            &format!("/api/calls?limit=3&cursor={cursor}"),
            Some(ADMIN),
        )
        .await
        .json()
        .unwrap();
        seen.extend(sids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, [sid(3), t2.clone(), sid(2), sid(1)]);
    // What is new: the calls above the first page's top.
    let top = api(&bridge, "/api/calls?limit=200", Some(ADMIN))
        .await
        .json()
        .unwrap();
    let top = sids(&top);
    let new: Vec<String> = top
        .iter()
        .take_while(|s| **s != page1["calls"][0]["call_sid"])
        .cloned()
        .collect();
    assert_eq!(new, std::slice::from_ref(&t1));
    seen.extend(new);
    let mut all = seen.clone();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), seen.len(), "a call was listed twice: {seen:?}");
    assert_eq!(all.len(), 5, "a call was skipped: {seen:?}");
    // The list shows T1 at the top, in commit order.
    assert_eq!(top, [t1, sid(3), t2, sid(2), sid(1)]);
    w1.close().await.unwrap();
    w2.close().await.unwrap();
    bridge.finish().await;
}
