//! The `agent_voicemail` AMD policy end to end: the real server between the mock OpenAI
//! Realtime server, the simulated callee (real playout) answering an outbound call placed
//! through `POST /api/calls` at the mock Twilio REST API, and a real call store (SQLite, and a
//! real PostgreSQL started by the test kit).
//!
//! `/twilio/amd` says `machine_end_beep` → the call's agent gets exactly the rendered
//! instructions (`response.create`) → it speaks → the hang-up reaches the mock REST API only
//! once the message has been heard in full → the record holds `answered_by` and the end
//! reason. A call whose stream is not on this instance gets the `<Say>` fallback.

mod e2e_support;

use std::time::Duration;

use e2e_support::{AUTH_TOKEN, Bridge, PUBLIC, WAIT, logs, session_of};
use serde_json::{Value, json};
use testkit::http;
use testkit::openai::{MockRealtime, ResponseScript, Script};
use testkit::postgres::PgCluster;
use testkit::rest::{MockTwilioRest, RequestKind};
use testkit::twilio::CallSimulator;
use tokio::time::Instant;

const ADMIN: &str = "voicemail-test-admin-token-0123456789";
const FROM: &str = "+15005550006";
const TO: &str = "+15551234567";
const MESSAGE: &str = "This is Acme Parcel Services about your delivery. Please call us back.";
const INSTRUCTIONS: &str =
    "Voicemail for {{name}} (call {{call_sid}}): say exactly this: {{voicemail_message}}";
const HELLO: &str = "Hello, this is Acme Parcel Services.";
const SPOKEN: &str = "Hi Ada, this is Acme Parcel Services about your delivery. Please call us \
    back.";

async fn bridge(mock: &MockRealtime, rest: &MockTwilioRest, database_url: &str) -> Bridge {
    let base = rest.base_url();
    let vars = [
        ("TWILIO_ACCOUNT_SID", rest.account_sid()),
        ("PHONE_AGENT_TWILIO__REST_BASE_URL", base.as_str()),
        ("PHONE_AGENT_DATABASE__URL", database_url),
        ("PHONE_AGENT_ADMIN__TOKEN", ADMIN),
        ("PHONE_AGENT_OUTBOUND__ALLOWED_DESTINATIONS", "+1555"),
        ("PHONE_AGENT_OUTBOUND__FROM", FROM),
        ("PHONE_AGENT_OUTBOUND__ON_MACHINE", "agent_voicemail"),
        ("PHONE_AGENT_OUTBOUND__VOICEMAIL_MESSAGE", MESSAGE),
        ("PHONE_AGENT_OUTBOUND__VOICEMAIL_INSTRUCTIONS", INSTRUCTIONS),
    ];
    let mut bridge = Bridge::start(&mock.base_url(), &vars).await;
    assert_eq!(rest.auth_token(), AUTH_TOKEN);
    bridge.sim = CallSimulator::new(&format!("http://{}", bridge.addr))
        .public_url(PUBLIC)
        .auth_token(AUTH_TOKEN)
        .rest(rest);
    bridge
}

async fn admin(bridge: &Bridge, method: ::http::Method, path: &str, body: Value) -> Value {
    let auth = format!("Bearer {ADMIN}");
    let r = http::request(
        method,
        &format!("http://{}{path}", bridge.addr),
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        bytes::Bytes::from(body.to_string()),
    )
    .await
    .unwrap();
    assert!(r.status < 300, "{path}: {} {}", r.status, r.text());
    r.json().unwrap()
}

/// Waits (bounded) until the stored call satisfies `done`.
async fn stored_call(bridge: &Bridge, sid: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let auth = format!("Bearer {ADMIN}");
        let r = http::request(
            ::http::Method::GET,
            &format!("http://{}/api/calls/{sid}", bridge.addr),
            &[("authorization", auth.as_str())],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
        if r.status == 200 {
            let v = r.json().unwrap();
            if done(&v) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "call {sid}: {}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn amd(bridge: &Bridge, account: &str, sid: &str, answered_by: &str) {
    let form = [
        ("AccountSid", account),
        ("AnsweredBy", answered_by),
        ("CallSid", sid),
        ("MachineDetectionDuration", "4210"),
    ];
    let path = "/twilio/amd?profile=default";
    let signature = testkit::twilio::signature::sign(AUTH_TOKEN, &format!("{PUBLIC}{path}"), &form);
    let r = http::post_form(
        &format!("http://{}{path}", bridge.addr),
        &[("x-twilio-signature", signature.as_str())],
        &form,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

fn updates_of(rest: &MockTwilioRest, sid: &str) -> Vec<Vec<(String, String)>> {
    rest.requests()
        .into_iter()
        .filter(|r| r.kind == RequestKind::UpdateCall && r.call_sid.as_deref() == Some(sid))
        .map(|r| r.params)
        .collect()
}

async fn the_agent_leaves_the_voicemail_then_hangs_up(database_url: &str) {
    let rest = MockTwilioRest::start().await.unwrap();
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say(HELLO, 600))
                .then(ResponseScript::say(SPOKEN, 1500)),
        )
        .start()
        .await
        .unwrap();
    let bridge = bridge(&mock, &rest, database_url).await;
    let account = rest.account_sid().to_owned();

    // The call is placed and answered (by a machine, AMD will say).
    admin(
        &bridge,
        ::http::Method::POST,
        "/api/calls",
        json!({"to": TO, "variables": {"name": "Ada"}}),
    )
    .await;
    let created = rest.wait_for_created_call(1, WAIT).await.unwrap();
    let call = bridge.sim.answer_outbound(&created).await.unwrap();
    let sid = call.call_sid().to_owned();
    let session = session_of(&mock, &sid).await;
    // The agent's opening line is heard.
    session.wait_for_response_done(1, WAIT).await.unwrap();
    call.wait_received_audio(session.assistant_items()[0].audio.len(), WAIT)
        .await
        .unwrap();
    call.wait_playout_idle(WAIT).await.unwrap();
    assert!(updates_of(&rest, &sid).is_empty());

    // The beep: the agent is told to leave the message, with the call's variables.
    amd(&bridge, &account, &sid, "machine_end_beep").await;
    session.wait_for_response_done(2, WAIT).await.unwrap();
    let creates: Vec<Value> = session
        .client_events_of_type("response.create")
        .iter()
        .map(|e| serde_json::from_str(&e.raw).unwrap())
        .collect();
    assert_eq!(creates.len(), 2, "{creates:?}");
    let expected = format!(
        "Voicemail for Ada (call {sid}): say exactly this: This is Acme Parcel Services about \
         your delivery. Please call us back."
    );
    assert_eq!(
        creates[1],
        json!({"type": "response.create", "response": {"instructions": expected}}),
    );

    // The hang-up comes over REST once the whole message has been heard.
    let update = rest.wait_for_update(&sid, WAIT).await.unwrap();
    assert_eq!(
        update.params,
        vec![("Status".to_owned(), "completed".to_owned())]
    );
    assert!(update.succeeded());
    let items = session.assistant_items();
    assert_eq!(items.len(), 2);
    let total = items[0].audio.len() + items[1].audio.len();
    assert_eq!(call.received_audio().len(), total);
    assert_eq!(
        call.heard_at(update.at).len(),
        total,
        "the message was heard in full before the hang-up"
    );
    let ended = logs().call_ended(&sid, WAIT).await;
    assert_eq!(ended.end_reason, "hung_up_by_agent", "{:?}", ended.line);
    session.wait_closed(WAIT).await.unwrap();
    // No `<Say>` fallback after the agent's message: one update, the hang-up.
    assert_eq!(updates_of(&rest, &sid).len(), 1, "{:?}", rest.requests());

    // The record: who answered, why it ended, what was said.
    let record = stored_call(&bridge, &sid, |v| {
        v["answered_by"].is_string() && v["end_reason"].is_string()
    })
    .await;
    assert_eq!(record["answered_by"], "machine_end_beep");
    assert_eq!(record["end_reason"], "hung_up_by_agent");
    assert_eq!(record["direction"], "outbound");
    assert_eq!(record["to"], TO);

    // A call whose stream is not open on this instance: the `<Say>` fallback.
    admin(
        &bridge,
        ::http::Method::POST,
        "/api/calls",
        json!({"to": "+15551230000"}),
    )
    .await;
    let elsewhere = rest.wait_for_created_call(2, WAIT).await.unwrap();
    amd(&bridge, &account, &elsewhere.sid, "machine_end_beep").await;
    let update = rest.wait_for_update(&elsewhere.sid, WAIT).await.unwrap();
    assert_eq!(
        update.params,
        vec![(
            "Twiml".to_owned(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{MESSAGE}</Say>\
                 <Hangup/></Response>"
            )
        )]
    );
    let record = stored_call(&bridge, &elsewhere.sid, |v| v["answered_by"].is_string()).await;
    assert_eq!(record["answered_by"], "machine_end_beep");
    bridge.finish().await;
}

/// A unique SQLite file under the test target directory.
fn sqlite_url() -> String {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("agent-voicemail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("calls.db").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_at_the_beep_the_agent_leaves_the_message_then_hangs_up_sqlite() {
    the_agent_leaves_the_voicemail_then_hangs_up(&sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_at_the_beep_the_agent_leaves_the_message_then_hangs_up_postgres() {
    let Some(pg) = PgCluster::start_or_skip("agent voicemail in PostgreSQL").await else {
        return;
    };
    let url = pg.create_database("agent_voicemail").await.unwrap();
    the_agent_leaves_the_voicemail_then_hangs_up(&url).await;
}
