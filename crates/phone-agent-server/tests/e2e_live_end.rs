//! End to end with the GPT-Live back end, around the end of a call: words transcribed after
//! our `session.close` reach the stored record exactly once and in order; a tool's hang-up
//! follows the goodbye once its speech went quiet and the caller heard it (not the timeout);
//! MCP servers go into the responses delegation only when configured so, and combinations
//! that cannot work are refused at startup.

#![allow(clippy::print_stderr)]

mod e2e_support;

use std::path::PathBuf;
use std::time::Duration;

use e2e_support::{
    AUTH_TOKEN, Bridge, PUBLIC, WAIT, assert_no_violations, live_session_of, logs, say,
};
use serde_json::{Value, json};
use testkit::audio::{self, SILENCE};
use testkit::http;
use testkit::live::{LiveSessionHandle, LiveTurn, MockLive};
use testkit::rest::MockTwilioRest;
use testkit::twilio::{ActiveCall, CallSimulator};
use tokio::time::Instant;

const LIVE: (&str, &str) = ("PHONE_AGENT_AGENT__BACKEND", "live");
const NO_GREETING: (&str, &str) = ("PHONE_AGENT_LIVE__GREETING", "off");
const ADMIN: &str = "live-end-test-admin-token-0123456789";

fn temp_path(name: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("phone-agent-e2e-live-end");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{}-{n}-{name}", std::process::id()))
}

fn temp_file(name: &str, text: &str) -> String {
    let path = temp_path(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

// ---- words after session.close ----------------------------------------------------------------

async fn api(bridge: &Bridge, path: &str) -> http::HttpResponse {
    let url = format!("http://{}{path}", bridge.addr);
    let auth = format!("Bearer {ADMIN}");
    http::request(
        ::http::Method::GET,
        &url,
        &[("authorization", auth.as_str())],
        bytes::Bytes::new(),
    )
    .await
    .unwrap()
}

/// The stored record of `sid`, once written (bounded wait).
async fn stored_call(bridge: &Bridge, sid: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = api(bridge, &format!("/api/calls/{sid}")).await;
        if r.status == 200 {
            let v = r.json().unwrap();
            if v["end_reason"].is_string() {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "call {sid} not stored: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The caller asks, the model answers, the caller hangs up; the service transcribes the
/// model's last words only after our `session.close` (before `session.closed`). The stored
/// record (SQLite, read through the admin API) has every line exactly once, in order: the
/// caller's question and the answer (both still being assembled when the call ended) and the
/// words that came after the close.
#[tokio::test]
async fn live_words_after_session_close_reach_the_record_once_in_order() {
    let mock = MockLive::builder()
        .caller_transcripts(&[" Where is my order?"])
        .script([LiveTurn::say("It shipped yesterday.", 800)])
        .transcript_on_close(" Thanks for calling.")
        .start()
        .await
        .unwrap();
    let database = temp_path("records.db").display().to_string();
    let bridge = Bridge::start(
        &mock.base_url(),
        &[
            LIVE,
            NO_GREETING,
            ("PHONE_AGENT_DATABASE__URL", database.as_str()),
            ("PHONE_AGENT_ADMIN__TOKEN", ADMIN),
        ],
    )
    .await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = live_session_of(&mock, call.call_sid()).await;
    say(&call, audio::speech(400));
    let answer = session.wait_for_utterance_end(1, WAIT).await.unwrap();
    assert_eq!(answer.text, "It shipped yesterday.");
    // The timeline moves 1.5 s past the answer: the words after the close are a line of
    // their own (lines split at gaps over 800 ms).
    let ended_ms = answer.ended_ms.unwrap();
    session
        .wait_for_received_audio((ended_ms as usize + 1500) * 8, WAIT)
        .await
        .unwrap();
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    // The mock sent the late words between our close and its `session.closed`.
    let types = session.server_event_types();
    let closed = types.iter().rposition(|t| t == "session.closed").unwrap();
    assert_eq!(types[closed - 1], "session.output_transcript.delta");
    assert!(session.close_requested());

    let record = stored_call(&bridge, call.call_sid()).await;
    assert_eq!(record["end_reason"], "caller_hung_up");
    let lines: Vec<(String, String)> = record["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["speaker"].as_str().unwrap().to_owned(),
                t["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("caller".to_owned(), "Where is my order?".to_owned()),
            ("agent".to_owned(), "It shipped yesterday.".to_owned()),
            ("agent".to_owned(), "Thanks for calling.".to_owned()),
        ]
    );
    assert_no_violations(&call, &session);
    bridge.finish().await;
}

// ---- the goodbye of a tool's hang-up ----------------------------------------------------------

/// A GPT-Live call whose backend calls `turn`'s tool after the caller's first turn: the model
/// acknowledges the delegation at once ("Sure, one moment."), and 2 s of timeline after the
/// continuation ended the tool's result is said (the goodbye, 1.2 s), then the output track
/// goes silent. `toml`: extra configuration.
struct LiveGoodbye {
    rest: MockTwilioRest,
    bridge: Bridge,
    call: ActiveCall,
    session: LiveSessionHandle,
    /// The tool's output.
    output: Value,
    ack: testkit::live::Utterance,
    goodbye: testkit::live::Utterance,
    _mock: MockLive,
}

async fn live_goodbye(turn: LiveTurn, toml: &str) -> LiveGoodbye {
    let rest = MockTwilioRest::start().await.unwrap();
    let mock = MockLive::builder()
        .script([turn])
        .delegation_ack("Sure, one moment.", 600)
        .result_delay_ms(2000)
        .result_ms(1200)
        .start()
        .await
        .unwrap();
    let config = temp_file("config.toml", toml);
    let bridge = Bridge::start(
        &mock.base_url(),
        &[
            LIVE,
            NO_GREETING,
            ("PHONE_AGENT_CONFIG", config.as_str()),
            ("PHONE_AGENT_LIVE__GOODBYE_QUIET_MS", "800"),
            ("PHONE_AGENT_LIVE__GOODBYE_TIMEOUT_SECS", "6"),
            ("TWILIO_ACCOUNT_SID", rest.account_sid()),
            ("PHONE_AGENT_TWILIO__REST_BASE_URL", &rest.base_url()),
        ],
    )
    .await;
    assert_eq!(rest.auth_token(), AUTH_TOKEN);
    let sim = CallSimulator::new(&format!("http://{}", bridge.addr))
        .public_url(PUBLIC)
        .auth_token(AUTH_TOKEN)
        .account_sid(rest.account_sid())
        .rest(&rest);
    let call = sim.call().connect().await.unwrap();
    let session = live_session_of(&mock, call.call_sid()).await;
    say(&call, audio::speech(400));
    let answered = session.wait_for_delegation_answered(1, WAIT).await.unwrap();
    assert_eq!(answered.outputs.len(), 1);
    let output: Value = serde_json::from_str(&answered.outputs[0]).unwrap();
    let ack = session.wait_for_utterance_end(1, WAIT).await.unwrap();
    assert_eq!(ack.text, "Sure, one moment.");
    let goodbye = session.wait_for_utterance_end(2, WAIT).await.unwrap();
    assert_eq!(goodbye.audio.len(), 1200 * 8);
    assert!(
        goodbye.started_ms >= ack.ended_ms.unwrap() + 1000,
        "a pause longer than the quiet between them: {} .. {}",
        ack.ended_ms.unwrap(),
        goodbye.started_ms
    );
    LiveGoodbye {
        rest,
        bridge,
        call,
        session,
        output,
        ack,
        goodbye,
        _mock: mock,
    }
}

impl LiveGoodbye {
    /// Asserts what the caller heard before `at` (the REST request): the acknowledgement, the
    /// whole goodbye byte for byte, then at least the quiet (800 ms of the silent track); and
    /// that the action was the goodbye being heard, not the guard expiring.
    fn assert_heard_first(&self, at: Instant) {
        let action = logs()
            .for_call(self.call.call_sid())
            .into_iter()
            .find(|l| l["message"] == "executing call action")
            .expect("the action is logged");
        assert_eq!(action["timed_out"], false, "{action}");
        let heard = self.call.heard_at(at);
        let find = |audio: &[u8]| heard.windows(audio.len()).position(|w| w == audio);
        let ack_at = find(&self.ack.audio).expect("the acknowledgement was heard");
        let at = find(&self.goodbye.audio).expect("the whole goodbye was heard first");
        assert!(
            ack_at + self.ack.audio.len() <= at,
            "the acknowledgement came first"
        );
        let after = &heard[at + self.goodbye.audio.len()..];
        assert!(
            after.len() >= 800 * 8,
            "only {} bytes heard after the goodbye",
            after.len()
        );
        assert!(
            after.iter().all(|&b| b == SILENCE),
            "nothing but the silent track after the goodbye"
        );
    }
}

/// `end_call` on GPT-Live ([`live_goodbye`]): the pause after the model's acknowledgement
/// (longer than the quiet) is not taken for the end of the goodbye. The hang-up (REST
/// `Status=completed`) comes once the goodbye's speech was followed by
/// `live.goodbye_quiet_ms` of quiet and the caller heard it (the mark after the quiet
/// echoed) — not by the 6 s guard: the action is logged with `timed_out: false`.
#[tokio::test]
async fn live_goodbye_hangs_up_once_its_speech_went_quiet_and_was_heard() {
    let g = live_goodbye(
        LiveTurn::call("end_call", r#"{"reason":"done"}"#),
        "[call_control]\nend_call = true\n",
    )
    .await;
    assert_eq!(g.output["status"], "ending");
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
    g.call.wait_closed(WAIT).await.unwrap();
    g.session.wait_closed(WAIT).await.unwrap();
    g.assert_heard_first(update.at);
    assert_no_violations(&g.call, &g.session);
    g.bridge.finish().await;
}

/// `transfer_call` on GPT-Live: the same goodbye timing, then the call's TwiML is replaced
/// with the exact `<Dial>` (no summary: no whisper), and the call ends `transferred`.
#[tokio::test]
async fn live_transfer_follows_the_goodbye_once_heard() {
    let g = live_goodbye(
        LiveTurn::call("transfer_call", r#"{"destination":"front_desk"}"#),
        r#"
[call_control]
transfer_caller_id = "+15005550006"
transfer_timeout_secs = 25
[[call_control.destinations]]
name = "front_desk"
number = "+15551230000"
description = "A person at the front desk."
"#,
    )
    .await;
    assert_eq!(g.output["status"], "transferring");
    let update = g
        .rest
        .wait_for_update(g.call.call_sid(), WAIT)
        .await
        .unwrap();
    assert_eq!(
        update.param("Twiml"),
        Some(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial callerId=\"+15005550006\" \
             timeout=\"25\">+15551230000</Dial></Response>"
        )
    );
    let ended = logs().call_ended(g.call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "transferred", "{:?}", ended.line);
    g.session.wait_closed(WAIT).await.unwrap();
    g.assert_heard_first(update.at);
    assert_no_violations(&g.call, &g.session);
    g.bridge.finish().await;
}

// ---- MCP servers in the delegation ------------------------------------------------------------

const MCP_SERVER: &str = r#"
[[mcp_servers]]
label = "crm"
url = "https://mcp.example.com/mcp"
description = "Customer records."
headers = { "X-Tenant" = "acme" }
allowed_tools = ["lookup_customer"]
require_approval = "never"
"#;

/// With `live.mcp_servers = true` the profile's MCP servers go into
/// `delegation.responses.tools` after the functions, in the Realtime path's shape; the mock
/// (accepting MCP tools, checked strictly) starts the session.
#[tokio::test]
async fn live_mcp_servers_go_into_the_responses_delegation_when_configured() {
    let mock = MockLive::builder()
        .accept_mcp_tools()
        .start()
        .await
        .unwrap();
    let config = temp_file(
        "config.toml",
        &format!("[call_control]\nend_call = true\n\n[live]\nmcp_servers = true\n{MCP_SERVER}"),
    );
    let bridge = Bridge::start(
        &mock.base_url(),
        &[LIVE, NO_GREETING, ("PHONE_AGENT_CONFIG", config.as_str())],
    )
    .await;
    let call = bridge.sim.call().connect().await.unwrap();
    let session = live_session_of(&mock, call.call_sid()).await;
    session.wait_for_started(WAIT).await.unwrap();
    let start = session.start_config().unwrap();
    assert_eq!(start["delegation"]["type"], "responses");
    let tools = &start["delegation"]["responses"]["tools"];
    assert_eq!(tools[0]["type"], "function");
    assert_eq!(tools[0]["name"], "end_call");
    assert_eq!(
        tools[1],
        json!({
            "type": "mcp",
            "server_label": "crm",
            "server_url": "https://mcp.example.com/mcp",
            "server_description": "Customer records.",
            "headers": {"X-Tenant": "acme"},
            "allowed_tools": ["lookup_customer"],
            "require_approval": "never"
        })
    );
    assert_eq!(tools.as_array().unwrap().len(), 2);
    assert_eq!(
        start["delegation"]["responses"]["parallel_tool_calls"],
        false
    );
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    assert_no_violations(&call, &session);
    bridge.finish().await;
}

/// Startup refuses what cannot work, with the reason: MCP servers on a GPT-Live profile
/// without `live.mcp_servers` (the guide's reading: only function and web_search tools in a
/// delegation), with client delegation, and with `require_approval = "always"`.
#[tokio::test]
async fn live_mcp_combinations_that_cannot_work_are_refused_at_startup() {
    let refused = |toml: String| async move {
        let config = temp_file("config.toml", &toml);
        let prompt = temp_file("prompt.md", "You are a test agent.");
        let env: std::collections::HashMap<String, String> = [
            ("PUBLIC_URL", PUBLIC),
            ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
            ("OPENAI_API_KEY", "sk-e2e"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ("PHONE_AGENT_METRICS__BIND", "off"),
            ("PHONE_AGENT_DATABASE__URL", "off"),
            ("PHONE_AGENT_CONFIG", config.as_str()),
            ("PROMPT_PATH", prompt.as_str()),
            LIVE,
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = phone_agent_server::config::Config::from_env_map(&env).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        match phone_agent_server::Server::new(config).serve(listener) {
            Ok(_) => panic!("the server started with {toml}"),
            Err(e) => e.to_string(),
        }
    };
    let e = refused(MCP_SERVER.to_owned()).await;
    assert!(
        e.contains(
            "GPT-Live configuration: MCP servers (crm) are configured, but GPT-Live takes them \
             into its delegation only with live.mcp_servers = true (the GPT-Live guide \
             documents only function and web_search tools there; see docs/gpt-live.md): turn \
             it on, or give the profile mcp_servers = [] (profile default)"
        ),
        "{e}"
    );
    let e = refused(format!(
        "[call_control]\nend_call = true\n\n[live]\nmcp_servers = true\n\
         delegation = \"client\"\nclient_tool = \"end_call\"\n{MCP_SERVER}"
    ))
    .await;
    assert!(
        e.contains(
            "GPT-Live configuration: MCP servers (crm) need live.delegation = \"responses\": \
             under client delegation no OpenAI backend runs that could call them"
        ),
        "{e}"
    );
    let e = refused(format!(
        "[live]\nmcp_servers = true\n{}",
        MCP_SERVER.replace("\"never\"", "\"always\"")
    ))
    .await;
    assert!(
        e.contains(
            "GPT-Live configuration: MCP server \"crm\": GPT-Live delegation needs \
             require_approval = \"never\" (the bridge does not answer MCP approval requests \
             from a delegated backend)"
        ),
        "{e}"
    );
}
