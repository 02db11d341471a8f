//! Call handover on shutdown (issue 15, item 5): two processes of the real binary share one
//! call store (an SQLite file in WAL mode: both open it, `busy_timeout` serialises writers).
//! A call runs on instance A; A gets SIGTERM; at the next pause A ends the stream with the
//! conversation saved; the simulated Twilio follows the `<Redirect>` after `</Connect>` like
//! Twilio and lands on instance B (as a load balancer that took A out would send it), which
//! answers a new `<Connect><Stream>` for the same CallSid; B's agent session is seeded with
//! exactly the saved conversation (no second greeting) and the caller hears B's agent.
//!
//! Also: a GPT-Live call handed over the same way (the conversation as `session.start`
//! `input`); Twilio's final status callback ending a call at once with handover on;
//! `/voice/next` for a handed-over call with nothing saved answers a spoken goodbye, a forged
//! signature is refused (403), a pending REST fallback in the store makes it wait, and the
//! call keeps one record.
#![allow(clippy::print_stderr)]

mod e2e_support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e_support::{AUTH_TOKEN, PROMPT, WAIT, say, session_of};
use serde_json::{Value, json};
use testkit::audio;
use testkit::openai::{MockRealtime, ResponseScript, Script, SessionHandle};
use testkit::twilio::twiml::{Twiml, Verb};
use testkit::twilio::{CallEnd, CallSimulator};
use tokio::io::{AsyncBufReadExt, BufReader};

const GREETING: &str = "Thanks for calling Acme, how can I help?";
const ANSWER: &str = "Your parcel arrives on Friday.";
const AFTER: &str = "Is there anything else about the parcel?";
/// The public URL both instances sign and mint for (the load balancer's, in production).
const PUBLIC: &str = "http://public.handover.test";
const GOODBYE: &str = "Sorry, we could not continue this call. Please call again. Goodbye.";

struct Instance {
    child: tokio::process::Child,
    pid: String,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Instance {
    async fn start(name: &str, env: &[(&str, String)]) -> Instance {
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("handover-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_phone-agent-server"));
        command.current_dir(&dir).env_clear();
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the server binary");
        let pid = child.id().expect("running").to_string();
        let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let addr = tokio::time::timeout(WAIT, async {
            loop {
                let line = reader.next_line().await.unwrap().expect("server output");
                let v: Value = serde_json::from_str(&line).expect("JSON log line");
                if v["message"] == "phone-agent server listening" {
                    return v["local_addr"].as_str().unwrap().parse().unwrap();
                }
            }
        })
        .await
        .expect("the instance starts");
        let sink = Arc::clone(&lines);
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                }
            }
        });
        Instance {
            child,
            pid,
            addr,
            lines,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn logged(&self, message: &str) -> bool {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|l| l["message"] == message)
    }

    fn sigterm(&self) {
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &self.pid])
            .status()
            .unwrap();
        assert!(kill.success());
    }
}

/// One test's scratch directory: the prompt file written into it, the call store's SQLite file
/// and its URL.
struct Scratch {
    prompt: String,
    db_path: std::path::PathBuf,
    database: String,
}

fn scratch(name: &str) -> Scratch {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prompt = dir.join("prompt.md");
    std::fs::write(&prompt, PROMPT).unwrap();
    let db_path = dir.join("calls.db");
    Scratch {
        prompt: prompt.to_str().unwrap().to_owned(),
        database: format!("sqlite://{}", db_path.display()),
        db_path,
    }
}

/// The test's own handle on the call store the instances share.
fn open_db(path: &std::path::Path) -> phone_agent_server::store::Db {
    phone_agent_server::store::Db::open(&phone_agent_server::config::DatabaseConfig::Sqlite {
        path: path.to_owned(),
    })
    .unwrap()
    .unwrap()
}

fn env(mock: &MockRealtime, database: &str, prompt: &str) -> Vec<(&'static str, String)> {
    env_at(&mock.base_url(), database, prompt)
}

/// The instances' environment, with the agent (a mock) at `openai_base`.
fn env_at(openai_base: &str, database: &str, prompt: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PORT", "0".into()),
        ("PHONE_AGENT_SERVER__BIND_ADDRESS", "127.0.0.1".into()),
        ("PHONE_AGENT_AGENT__PREWARM", "false".into()),
        ("PUBLIC_URL", PUBLIC.into()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.into()),
        ("OPENAI_API_KEY", "sk-e2e".into()),
        ("OPENAI_BASE_URL", openai_base.into()),
        ("PROMPT_PATH", prompt.into()),
        (
            "PHONE_AGENT_OPENAI__TURN_DETECTION__SILENCE_DURATION_MS",
            "200".into(),
        ),
        ("PHONE_AGENT_DATABASE__URL", database.into()),
        ("PHONE_AGENT_SERVER__SHUTDOWN_NOTICE_SECS", "0".into()),
        ("PHONE_AGENT_SERVER__SHUTDOWN_GRACE_SECS", "10".into()),
        ("PHONE_AGENT_METRICS__BIND", "off".into()),
        ("PHONE_AGENT_LOG__FORMAT", "json".into()),
        ("PHONE_AGENT_AGENT__GREETING", "Greet the caller.".into()),
    ]
}

/// The items the bridge created in `session`, as (role, text).
fn created_items(session: &SessionHandle) -> Vec<Value> {
    session
        .client_events()
        .iter()
        .filter(|e| e.event_type() == "conversation.item.create")
        .map(|e| e.json().unwrap()["item"].clone())
        .collect()
}

/// The caller's line as the mock transcribed it.
fn caller_transcript(session: &SessionHandle) -> String {
    session
        .server_events()
        .iter()
        .find(|e| e.event_type == "conversation.item.input_audio_transcription.completed")
        .map(|e| e.json().unwrap()["transcript"].as_str().unwrap().to_owned())
        .expect("the caller's line was transcribed")
}

/// Reads a call's record from the shared store until `pred` holds (the writer is a background
/// task: bounded wait, no fixed sleep).
async fn record_when(
    db: &phone_agent_server::store::Db,
    call_sid: &str,
    pred: impl Fn(&phone_agent_server::record::CallRecord) -> bool,
) -> phone_agent_server::record::CallRecord {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(Some(r)) = db.record(call_sid).await
            && pred(&r)
        {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the record of {call_sid} never matched"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_a_call_over_to_another_instance_with_its_conversation() {
    let mock = MockRealtime::builder()
        .script(Script::new().no_fallback())
        .start()
        .await
        .unwrap();
    mock.push_session_script(
        Script::new()
            .then(ResponseScript::say(GREETING, 600))
            .then(ResponseScript::say(ANSWER, 600)),
    );
    mock.push_session_script(Script::new().then(ResponseScript::say(AFTER, 600)));
    let Scratch {
        prompt,
        db_path,
        database,
    } = scratch("handover");
    let env = env(&mock, &database, &prompt);
    let mut a = Instance::start("a", &env).await;
    let b = Instance::start("b", &env).await;

    let sim = CallSimulator::new(&a.url())
        .public_url(PUBLIC)
        .auth_token(AUTH_TOKEN);
    let placed = sim.call().place().await.unwrap();
    let call = placed.open_stream().await.unwrap();
    let first = session_of(&mock, call.call_sid()).await;

    // The greeting, then a question and its answer, all heard on instance A.
    first.wait_for_response_done(1, WAIT).await.unwrap();
    let greeting = first.assistant_items()[0].audio.clone();
    call.wait_heard(greeting.len(), WAIT).await.unwrap();
    say(&call, audio::speech(300));
    first.wait_for_response_done(2, WAIT).await.unwrap();
    let answer = first.assistant_items()[1].audio.clone();
    call.wait_heard(greeting.len() + answer.len(), WAIT)
        .await
        .unwrap();
    call.wait_playout_idle(WAIT).await.unwrap();
    let question = caller_transcript(&first);

    // A drains: at this pause it ends the stream with the conversation saved, and exits.
    a.sigterm();
    let end = call.wait_closed(WAIT).await.unwrap();
    assert!(matches!(end, CallEnd::ServerClosed { .. }), "{end:?}");
    first.wait_closed(WAIT).await.unwrap();
    let status = tokio::time::timeout(WAIT, a.child.wait())
        .await
        .expect("A exits")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(a.logged("call handed over: its conversation is saved for the next instance"));

    // Twilio runs the redirect after </Connect>; the load balancer sends it to B.
    let placed = placed.reach(&b.url());
    let (executed, next) = placed.follow_after_stream().await.unwrap();
    assert!(
        matches!(executed.as_slice(), [Verb::Redirect { url, .. }] if url == &format!("{PUBLIC}/voice/next")),
        "{executed:?}"
    );
    let next = next.expect("B answers a new stream for the same call");
    let stream = next.stream().expect("<Connect><Stream>");
    assert!(
        stream
            .parameters
            .iter()
            .any(|(k, v)| k == "handover" && v == "1"),
        "{:?}",
        stream.parameters
    );
    let resumed = next.open_stream().await.unwrap();
    assert_eq!(resumed.call_sid(), call.call_sid());
    let second = mock.wait_for_session(2, WAIT).await.unwrap();

    // B's session got exactly the conversation, as the caller heard it, and no greeting.
    let deadline = tokio::time::Instant::now() + WAIT;
    while created_items(&second).len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no replay at B");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        created_items(&second),
        [
            json!({"type": "message", "role": "assistant",
                   "content": [{"type": "output_text", "text": GREETING}]}),
            json!({"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": question}]}),
            json!({"type": "message", "role": "assistant",
                   "content": [{"type": "output_text", "text": ANSWER}]}),
        ]
    );
    assert!(
        second.client_events_of_type("response.create").is_empty(),
        "no greeting after a handover"
    );

    // The conversation goes on at B: the caller speaks, B's agent answers, the caller hears it.
    say(&resumed, audio::speech(300));
    second.wait_for_response_done(1, WAIT).await.unwrap();
    let after = second.assistant_items()[0].audio.clone();
    let heard = resumed.wait_heard(after.len(), WAIT).await.unwrap();
    assert_eq!(heard, after, "the caller hears B's agent");
    assert!(
        resumed.violations().is_empty(),
        "{:?}",
        resumed.violations()
    );

    resumed.stop(WAIT).await.unwrap();
    second.wait_closed(WAIT).await.unwrap();
    assert_eq!(mock.sessions().len(), 2, "one session per instance");

    // One record for the call: B's part merged onto A's, the handover counted.
    let db = open_db(&db_path);
    let record = record_when(&db, call.call_sid(), |r| r.end_reason == "caller_hung_up").await;
    assert_eq!(record.handovers, 1);
    let agent_lines: Vec<&str> = record
        .transcript
        .iter()
        .filter(|t| t.speaker == "agent")
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(agent_lines, [GREETING, ANSWER, AFTER]);
    let rows = sqlx_count(&db, call.call_sid()).await;
    assert_eq!(rows, 1, "one record");
    db.close().await;
    drop(b);
}

/// Rows of `calls` for one call SID.
async fn sqlx_count(db: &phone_agent_server::store::Db, call_sid: &str) -> usize {
    let q = phone_agent_server::store::ListQuery {
        limit: 100,
        ..Default::default()
    };
    db.list(&q)
        .await
        .unwrap()
        .iter()
        .filter(|c| c.json["call_sid"] == call_sid)
        .count()
}

/// `/voice/next` signed over its public URL.
async fn post_next(instance: &Instance, call_sid: &str, forge: bool) -> (u16, String) {
    let form = vec![
        (
            "AccountSid",
            "AC00000000000000000000000000000000".to_owned(),
        ),
        ("CallSid", call_sid.to_owned()),
        ("CallStatus", "in-progress".to_owned()),
    ];
    let key = if forge {
        "ffffffffffffffffffffffffffffffff"
    } else {
        AUTH_TOKEN
    };
    let signature = testkit::twilio::signature::sign(key, &format!("{PUBLIC}/voice/next"), &form);
    let r = testkit::http::post_form(
        &format!("{}/voice/next", instance.url()),
        &[("x-twilio-signature", signature.as_str())],
        &form,
    )
    .await
    .unwrap();
    (r.status, r.text())
}

#[tokio::test]
async fn a_resume_with_nothing_saved_says_goodbye_and_a_forged_one_is_refused() {
    let mock = MockRealtime::start().await.unwrap();
    let Scratch {
        prompt,
        db_path,
        database,
    } = scratch("handover-goodbye");
    let env = env(&mock, &database, &prompt);
    let b = Instance::start("goodbye", &env).await;

    // Handed over, but nothing to resume with (the conversation was lost).
    let sid = "CA00000000000000000000000000000901";
    let db = open_db(&db_path);
    let end = phone_agent_server::store::StreamEnd {
        call_sid: sid.to_owned(),
        outcome: phone_agent_server::store::StreamOutcome::HandedOver,
        context: None,
        parameters: None,
        handovers: 1,
    };
    // The instance applies the migrations when its writer first reaches the file.
    let deadline = tokio::time::Instant::now() + WAIT;
    while db.save_stream_end(&end).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store never got its tables"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = post_next(&b, sid, false).await;
    assert_eq!(status, 200, "{body}");
    let doc = Twiml::parse(&body).unwrap();
    assert_eq!(
        doc.verbs,
        [
            Verb::Say {
                text: GOODBYE.to_owned(),
                voice: None,
                language: None,
            },
            Verb::Hangup
        ],
        "{body}"
    );

    // A forged signature: refused before anything is read.
    let (status, _) = post_next(&b, sid, true).await;
    assert_eq!(status, 403);
    assert!(mock.sessions().is_empty(), "no agent session opened");
    db.close().await;
}

/// The caller's frames contain `needle` (contiguous) once the bridge has relayed it.
async fn wait_heard_containing(call: &testkit::twilio::ActiveCall, needle: &[u8]) {
    let contains = |h: &[u8]| h.windows(needle.len()).any(|w| w == needle);
    let mut have = call.received_audio().len();
    while !contains(&call.received_audio()) {
        have = call.wait_received_audio(have + 1, WAIT).await.unwrap();
    }
}

/// A `session.start` `input` message as GPT-Live's reference spells it.
fn input_message(role: &str, text: &str) -> Value {
    let kind = if role == "assistant" {
        "output_text"
    } else {
        "input_text"
    };
    json!({"type": "message", "role": role, "content": [{"type": kind, "text": text}]})
}

/// A GPT-Live call is handed over too: A ends the stream with the conversation saved, the
/// redirect lands on B, and B's GPT-Live session starts with the conversation as its
/// `session.start` `input` (exactly: the greeting, the caller's line, the answer, the replay
/// note), says no greeting, and audio flows both ways through B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpt_live_call_is_handed_over_with_its_conversation_in_session_start() {
    use testkit::live::{LiveTurn, MockLive};
    const LIVE_GREETING: &str = "Hi, this is the parcel line.";
    const QUESTION: &str = "Where is my parcel?";
    let mock = MockLive::builder()
        .script([LiveTurn::say(ANSWER, 600)])
        .caller_transcripts(&[" Where is my parcel?"])
        .start()
        .await
        .unwrap();
    let Scratch {
        prompt,
        db_path,
        database,
    } = scratch("handover-live");
    let mut env = env_at(&mock.base_url(), &database, &prompt);
    env.push(("PHONE_AGENT_AGENT__BACKEND", "live".into()));
    env.push(("PHONE_AGENT_LIVE__GREETING", LIVE_GREETING.into()));
    let mut a = Instance::start("live-a", &env).await;
    let b = Instance::start("live-b", &env).await;

    let sim = CallSimulator::new(&a.url())
        .public_url(PUBLIC)
        .auth_token(AUTH_TOKEN);
    let placed = sim.call().place().await.unwrap();
    let call = placed.open_stream().await.unwrap();
    let first = mock.wait_for_session(1, WAIT).await.unwrap();
    first.wait_for_started(WAIT).await.unwrap();
    assert!(first.start_config().unwrap().get("input").is_none());

    // The greeting, then the caller's question and the whole answer, heard on A.
    let greeting = first.wait_for_utterance_end(1, WAIT).await.unwrap();
    assert_eq!(greeting.text, LIVE_GREETING);
    wait_heard_containing(&call, &greeting.audio).await;
    say(&call, audio::speech(400));
    let answer = first.wait_for_utterance_end(2, WAIT).await.unwrap();
    assert_eq!(answer.text, ANSWER);
    wait_heard_containing(&call, &answer.audio).await;

    // A drains: the stream ends with the conversation saved; A exits 0.
    a.sigterm();
    let end = call.wait_closed(WAIT).await.unwrap();
    assert!(matches!(end, CallEnd::ServerClosed { .. }), "{end:?}");
    first.wait_closed(WAIT).await.unwrap();
    assert!(
        first.close_requested(),
        "A closed its session with session.close"
    );
    let status = tokio::time::timeout(WAIT, a.child.wait())
        .await
        .expect("A exits")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(a.logged("call handed over: its conversation is saved for the next instance"));

    // The redirect reaches B, which resumes the call with a new stream.
    let placed = placed.reach(&b.url());
    let (_, next) = placed.follow_after_stream().await.unwrap();
    let next = next.expect("B answers a new stream for the same call");
    let resumed = next.open_stream().await.unwrap();
    assert_eq!(resumed.call_sid(), call.call_sid());
    let second = mock.wait_for_session(2, WAIT).await.unwrap();
    second.wait_for_started(WAIT).await.unwrap();
    let start = second.start_config().unwrap();
    assert_eq!(
        start["input"],
        json!([
            input_message("assistant", LIVE_GREETING),
            input_message("user", QUESTION),
            input_message("assistant", ANSWER),
            input_message("developer", phone_agent_server::adapters::live::REPLAY_NOTE),
        ]),
        "{start:#}"
    );
    assert_eq!(
        start["instructions"],
        first.start_config().unwrap()["instructions"],
        "the same prompt"
    );
    assert!(
        second
            .client_events_of_type("session.commentary.append")
            .is_empty(),
        "no greeting after a handover"
    );

    // Audio both ways through B: the caller's speech reaches B's session, whose answer the
    // caller hears byte for byte.
    let before = second.received_audio_len();
    say(&resumed, audio::speech(400));
    second
        .wait_for_received_audio(before + 8 * 400, WAIT)
        .await
        .unwrap();
    let again = second.wait_for_utterance_end(1, WAIT).await.unwrap();
    wait_heard_containing(&resumed, &again.audio).await;
    assert!(second.violations().is_empty(), "{:?}", second.violations());

    resumed.stop(WAIT).await.unwrap();
    second.wait_closed(WAIT).await.unwrap();
    assert_eq!(mock.sessions().len(), 2, "one session per instance");
    let db = open_db(&db_path);
    let record = record_when(&db, call.call_sid(), |r| r.end_reason == "caller_hung_up").await;
    assert_eq!(record.handovers, 1);
    assert_eq!(record.backend, "live");
    db.close().await;
    drop(b);
}

/// A status callback as Twilio sends it, signed over the public URL.
async fn status_callback(instance: &Instance, call_sid: &str, status: &str, sequence: u32) {
    let sequence = sequence.to_string();
    let form = vec![
        ("CallSid", call_sid.to_owned()),
        (
            "AccountSid",
            "AC00000000000000000000000000000000".to_owned(),
        ),
        ("CallStatus", status.to_owned()),
        ("SequenceNumber", sequence),
        ("Direction", "inbound".to_owned()),
    ];
    let signature =
        testkit::twilio::signature::sign(AUTH_TOKEN, &format!("{PUBLIC}/twilio/status"), &form);
    let r = testkit::http::post_form(
        &format!("{}/twilio/status", instance.url()),
        &[("x-twilio-signature", signature.as_str())],
        &form,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204, "status callback {status}: {}", r.text());
}

/// With handover on, Twilio's final status callback still ends the call at once: not at the
/// next pause (the agent is in the middle of a 30-second line), not after
/// `shutdown.handover_wait_ms` (a minute here), and not handed over (nothing saved to
/// resume, no handover counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilios_final_status_ends_a_call_at_once_with_handover_on() {
    let mock = MockRealtime::builder()
        .script(Script::new().then(ResponseScript::say(GREETING, 30_000)))
        .start()
        .await
        .unwrap();
    let Scratch {
        prompt,
        db_path,
        database,
    } = scratch("handover-completed");
    let mut env = env(&mock, &database, &prompt);
    env.push(("PHONE_AGENT_SHUTDOWN__HANDOVER", "true".into()));
    env.push(("PHONE_AGENT_SHUTDOWN__HANDOVER_WAIT_MS", "60000".into()));
    let a = Instance::start("completed", &env).await;
    let sim = CallSimulator::new(&a.url())
        .public_url(PUBLIC)
        .auth_token(AUTH_TOKEN);
    let placed = sim.call().place().await.unwrap();
    let call = placed.open_stream().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    // The greeting is playing (a second of it heard; 29 to go).
    call.wait_heard(8000, WAIT).await.unwrap();

    status_callback(&a, call.call_sid(), "completed", 2).await;
    let end = call.wait_closed(WAIT).await.unwrap();
    assert!(matches!(end, CallEnd::ServerClosed { .. }), "{end:?}");
    session.wait_closed(WAIT).await.unwrap();
    assert!(
        call.received_audio().len() < 8000 * 29,
        "ended before the greeting was over"
    );

    let db = open_db(&db_path);
    let record = record_when(&db, call.call_sid(), |_| true).await;
    assert_eq!(record.end_reason, "twilio_completed");
    assert_eq!(record.handovers, 0);
    let saved = db.stream_end(call.call_sid()).await.unwrap();
    assert!(
        saved.as_ref().is_none_or(|s| s.outcome
            != phone_agent_server::store::StreamOutcome::HandedOver
            && s.context.is_none()),
        "nothing saved for a resume: {saved:?}"
    );
    assert!(!a.logged("call handed over: its conversation is saved for the next instance"));
    assert_eq!(mock.sessions().len(), 1);
    db.close().await;
    drop(a);
}

/// With a call store, a `fallback_pending` row (the fallback's REST update sent, Twilio's
/// answer not in yet) makes `/voice/next` on any instance wait: a one-second pause and the
/// same redirect; once the answer is saved (`normal`: Twilio took the update) it hangs up.
#[tokio::test]
async fn a_pending_rest_fallback_in_the_store_makes_the_redirect_wait() {
    let mock = MockRealtime::start().await.unwrap();
    let Scratch {
        prompt,
        db_path,
        database,
    } = scratch("handover-pending");
    let env = env(&mock, &database, &prompt);
    let b = Instance::start("pending", &env).await;
    let sid = "CA00000000000000000000000000000902";
    let db = open_db(&db_path);
    let mut end = phone_agent_server::store::StreamEnd {
        call_sid: sid.to_owned(),
        outcome: phone_agent_server::store::StreamOutcome::FallbackPending,
        context: None,
        parameters: None,
        handovers: 0,
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while db.save_stream_end(&end).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store never got its tables"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = post_next(&b, sid, false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        Twiml::parse(&body).unwrap().verbs,
        [
            Verb::Pause { length: Some(1) },
            Verb::Redirect {
                url: format!("{PUBLIC}/voice/next"),
                method: Some("POST".to_owned()),
            }
        ],
        "{body}"
    );
    end.outcome = phone_agent_server::store::StreamOutcome::Normal;
    db.save_stream_end(&end).await.unwrap();
    let (_, body) = post_next(&b, sid, false).await;
    assert_eq!(Twiml::parse(&body).unwrap().verbs, [Verb::Hangup], "{body}");
    assert!(mock.sessions().is_empty(), "no agent session opened");
    db.close().await;
}
