//! Graceful shutdown: calls in progress are drained (or ended at the deadline, both sockets
//! closed), new connections are refused, and the real binary exits 0 on SIGTERM.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;

use common::{FakeTwilio, WAIT, contains, post_voice, start, stream_parameters};
use testkit::openai::{ClosedBy, MockRealtime};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Waits until connecting to `addr` is refused (the listener was dropped).
async fn until_refused(addr: SocketAddr) {
    let poll = async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, poll)
        .await
        .expect("the listener closes");
}

#[tokio::test]
async fn a_live_call_is_drained_on_shutdown() {
    let server = start(&[("PHONE_AGENT_SERVER__SHUTDOWN_GRACE_SECS", "60")]).await;
    let sid = "CA00000000000000000000000000000040";
    let (_, twiml) = post_voice(&server, sid, None).await;
    let mut twilio = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    assert!(twilio.read_until_audio(|a| !a.is_empty()).await);

    server.handle.shutdown();
    until_refused(server.addr).await;

    // The call goes on during the drain: the echo agent still answers.
    let speech = testkit::audio::speech(400);
    twilio.send_audio(&speech).await;
    twilio.send_audio(&testkit::audio::silence(800)).await;
    assert!(
        twilio.read_until_audio(|a| contains(a, &speech)).await,
        "calls continue while draining"
    );

    // The caller hangs up; the server finishes without ending anything itself.
    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
    let report = tokio::time::timeout(WAIT, server.handle.wait())
        .await
        .expect("drained");
    assert_eq!(report.calls_at_shutdown, 1);
    assert_eq!(report.calls_ended, 0);
    assert!(report.clean);
}

#[tokio::test]
async fn calls_still_running_at_the_deadline_are_ended_on_both_sides() {
    let mock = MockRealtime::start().await.unwrap();
    let prompt = common::prompt_file("hi");
    let base = mock.base_url();
    let server = start(&[
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
        ("PHONE_AGENT_AGENT__GREETING", "off"),
        ("PHONE_AGENT_SERVER__SHUTDOWN_GRACE_SECS", "0"),
    ])
    .await;
    let sid = "CA00000000000000000000000000000041";
    let (_, twiml) = post_voice(&server, sid, None).await;
    let mut twilio = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    let session = mock.wait_for_session(1, WAIT).await.unwrap();
    session
        .wait_for_event_type("session.update", WAIT)
        .await
        .unwrap();

    server.handle.shutdown();
    let report = tokio::time::timeout(WAIT, server.handle.wait())
        .await
        .expect("shut down");
    assert_eq!(report.calls_at_shutdown, 1);
    assert_eq!(report.calls_ended, 1);
    assert!(report.clean);

    assert!(
        twilio.read_until_closed().await,
        "the Twilio stream is closed"
    );
    let closed = session.wait_closed(WAIT).await.unwrap();
    assert!(
        matches!(closed.by, ClosedBy::ClientClose { .. }),
        "the OpenAI session is closed: {closed:?}"
    );
}

#[tokio::test]
async fn the_binary_exits_zero_on_sigterm_and_closes_the_call() {
    let dir = common::temp_path("bin-cwd");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_phone-agent-server"))
        .current_dir(&dir)
        .env_clear()
        .env("PORT", "0")
        .env("PHONE_AGENT_SERVER__BIND_ADDRESS", "127.0.0.1")
        .env("PHONE_AGENT_SERVER__SHUTDOWN_GRACE_SECS", "0")
        .env("PHONE_AGENT_SERVER__SHUTDOWN_NOTICE_SECS", "0")
        .env("PHONE_AGENT_METRICS__BIND", "127.0.0.1:0")
        .env("PHONE_AGENT_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the server binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    // The listening line carries the bound address.
    let addr: SocketAddr = tokio::time::timeout(WAIT, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("server output");
            let value: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            if value["message"] == "phone-agent server listening" {
                return value["local_addr"].as_str().unwrap().parse().unwrap();
            }
        }
    })
    .await
    .expect("the server starts");
    // Keep draining the log so the child never blocks on a full pipe.
    let log = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(line);
        }
        all
    });

    let health = testkit::http::get(&format!("http://{addr}/health"))
        .await
        .unwrap();
    assert_eq!(health.status, 200);

    let sid = "CA00000000000000000000000000000042";
    let form = common::voice_form(sid);
    let twiml = testkit::http::post_form(&format!("http://{addr}/voice"), &[], &form)
        .await
        .unwrap()
        .text();
    let mut twilio = FakeTwilio::open_at(addr, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    assert!(
        twilio.read_until_audio(|a| !a.is_empty()).await,
        "the call is up"
    );

    let pid = child.id().expect("running").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());

    assert!(
        twilio.read_until_closed().await,
        "the call is closed by the shutdown"
    );
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(status.code(), Some(0));

    let log = log.await.unwrap();
    let summary = log
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "call ended")
        .expect("a call summary line");
    assert_eq!(summary["end_reason"], "shutdown");
    assert_eq!(summary["span"]["call_sid"], sid, "{summary}");
}

/// Starts the real binary with `envs` (echo agent, port 0) and returns it with its address and
/// a task collecting its log lines.
async fn spawn_binary(
    envs: &[(&str, &str)],
) -> (
    tokio::process::Child,
    SocketAddr,
    tokio::task::JoinHandle<Vec<String>>,
) {
    let dir = common::temp_path("bin-cwd");
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_phone-agent-server"));
    command
        .current_dir(&dir)
        .env_clear()
        .env("PORT", "0")
        .env("PHONE_AGENT_SERVER__BIND_ADDRESS", "127.0.0.1")
        .env("PHONE_AGENT_METRICS__BIND", "127.0.0.1:0")
        .env("PHONE_AGENT_LOG__FORMAT", "json");
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the server binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr: SocketAddr = tokio::time::timeout(WAIT, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("server output");
            let value: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            if value["message"] == "phone-agent server listening" {
                return value["local_addr"].as_str().unwrap().parse().unwrap();
            }
        }
    })
    .await
    .expect("the server starts");
    let log = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(line);
        }
        all
    });
    (child, addr, log)
}

/// SIGTERM sets draining first and keeps serving for the notice period: `/ready` answers 503
/// (load balancers take the instance out), `/health` 200, a new call hears "busy", and the
/// stream of a call answered just before the signal is still accepted.
#[tokio::test]
async fn after_sigterm_ready_is_503_while_the_notice_period_serves() {
    let (mut child, addr, _log) = spawn_binary(&[
        ("PHONE_AGENT_SERVER__SHUTDOWN_NOTICE_SECS", "60"),
        ("PHONE_AGENT_SERVER__SHUTDOWN_GRACE_SECS", "0"),
    ])
    .await;
    let ready = testkit::http::get(&format!("http://{addr}/ready"))
        .await
        .unwrap();
    assert_eq!(ready.status, 200);
    // A call answered before the signal.
    let answered = "CA00000000000000000000000000000043";
    let twiml = testkit::http::post_form(
        &format!("http://{addr}/voice"),
        &[],
        &common::voice_form(answered),
    )
    .await
    .unwrap()
    .text();
    assert!(twiml.contains("<Stream"), "{twiml}");

    let pid = child.id().expect("running").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());

    // The signal is handled asynchronously: wait for the 503 (a refused connection fails).
    let drained = async {
        loop {
            let r = testkit::http::get(&format!("http://{addr}/ready"))
                .await
                .expect("the server still listens during the notice period");
            if r.status == 503 {
                return r.text();
            }
            tokio::task::yield_now().await;
        }
    };
    let body = tokio::time::timeout(WAIT, drained).await.expect("503");
    assert_eq!(body, r#"{"status":"draining"}"#);
    let health = testkit::http::get(&format!("http://{addr}/health"))
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    let busy = testkit::http::post_form(
        &format!("http://{addr}/voice"),
        &[],
        &common::voice_form("CA00000000000000000000000000000044"),
    )
    .await
    .unwrap();
    assert_eq!(busy.status, 200);
    let doc = testkit::twilio::twiml::Twiml::parse(&busy.text()).unwrap();
    assert_eq!(doc.reject(), Some(Some("busy")));
    // The call answered before the signal still gets its stream.
    let mut twilio = FakeTwilio::open_at(addr, &twiml, false).await.unwrap();
    twilio.start(answered, &stream_parameters(&twiml)).await;
    assert!(
        twilio.read_until_audio(|a| !a.is_empty()).await,
        "the answered call is up"
    );
    child.kill().await.unwrap();
}
