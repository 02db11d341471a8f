//! Several instances behind a real load balancer, as on Kubernetes: three processes of the real
//! binary share one real PostgreSQL (a throwaway cluster) behind a real HAProxy (round-robin,
//! no affinity, health checks on `/ready`, WebSocket timeouts), and `PUBLIC_URL` is HAProxy's
//! address, so every webhook, every media stream (its URL and stream token come from whichever
//! instance answered `/voice`) and every status callback goes through it.
//!
//! 1. **Thirty calls, every request anywhere.** Each call's `/voice`, `/media` and status
//!    callbacks reach different instances — each instance's own log says which requests it
//!    served, and its `/metrics` counters agree. Every call has audio both ways, byte for byte,
//!    and one complete record in PostgreSQL, assembled from writes of several instances and
//!    read back through any instance's admin API.
//! 2. **One instance drains.** Mid-calls, one instance gets SIGTERM: `/ready` answers 503,
//!    HAProxy takes it out, new calls go to the other two; the calls on the other instances
//!    complete untouched; the drained instance's own calls go on as its drain is documented
//!    (README, Operations): during the notice period it still accepts the stream of a call
//!    another instance answered (a load balancer slower to notice), the calls that end during
//!    the grace period complete with full audio, the one still running at the deadline is
//!    ended on both sides (`shutdown`), and its record is written before the process exits 0.
//!
//! Needs Debian's `postgresql` and `haproxy` packages (`.ci/run` installs them); without them,
//! outside CI, the test says loudly that it is skipped.
#![allow(clippy::print_stderr)]

mod e2e_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e_support::{
    AUTH_TOKEN, PROMPT, WAIT, assert_caller_audio_relayed, assert_clean, report, say, session_of,
};
use futures_util::future::join_all;
use serde_json::Value;
use testkit::audio;
use testkit::haproxy::{Backend, Haproxy};
use testkit::http;
use testkit::openai::{ClosedBy, MockRealtime, ResponseScript, Script, SessionHandle};
use testkit::postgres::PgCluster;
use testkit::twilio::{ActiveCall, CallEnd, CallEvent, CallSimulator};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio::time::Instant;

const ADMIN: &str = "multi-instance-admin-token-0123456789";
const GREETING: &str = "Thanks for calling Acme, how can I help?";
const ANSWER: &str = "Your parcel arrives on Friday.";
/// Seconds an instance keeps listening after SIGTERM (`/ready` 503), then the grace period.
const NOTICE_SECS: &str = "5";
const GRACE_SECS: &str = "5";
/// Calls of the first part, of the drain.
const CALLS: usize = 30;
const CALLS_BEFORE_DRAIN: usize = 9;
const CALLS_DURING_DRAIN: usize = 6;
/// Instance names (HAProxy's server names).
const NAMES: [&str; 3] = ["a", "b", "c"];

// ---- an instance: the real binary -------------------------------------------------------------

/// One instance's JSON log lines, awaitable.
#[derive(Default)]
struct Log {
    lines: Mutex<Vec<Value>>,
    version: watch::Sender<u64>,
}

impl Log {
    fn push(&self, line: Value) {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn find(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|l| pred(l))
            .cloned()
            .collect()
    }
}

struct Instance {
    name: &'static str,
    child: tokio::process::Child,
    pid: String,
    addr: SocketAddr,
    metrics: SocketAddr,
    log: Arc<Log>,
}

impl Instance {
    async fn start(name: &'static str, env: &[(String, String)]) -> Instance {
        let dir = tmp_dir().join(format!("instance-{name}"));
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
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let log = Arc::new(Log::default());
        let (addr, metrics) = tokio::time::timeout(WAIT, async {
            loop {
                let line = lines.next_line().await.unwrap().expect("server output");
                let v: Value = serde_json::from_str(&line).expect("JSON log line");
                if v["message"] == "phone-agent server listening" {
                    let addr = |k: &str| v[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
                    let found = (addr("local_addr"), addr("metrics_addr"));
                    log.push(v);
                    return found;
                }
                log.push(v);
            }
        })
        .await
        .expect("the instance starts");
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str(&line) {
                    Ok(v) => sink.push(v),
                    Err(e) => eprintln!("instance {name}: unparsable log line ({e}): {line}"),
                }
            }
        });
        Instance {
            name,
            child,
            pid,
            addr,
            metrics,
            log,
        }
    }

    /// `phone_agent_http_requests_total` of one route and status, from this instance's
    /// `/metrics`.
    async fn requests(&self, route: &str, status: &str) -> u64 {
        let text = http::get(&format!("http://{}/metrics", self.metrics))
            .await
            .unwrap()
            .text();
        let (route, status) = (format!("route=\"{route}\""), format!("status=\"{status}\""));
        text.lines()
            .filter(|l| l.starts_with("phone_agent_http_requests_total{"))
            .filter(|l| l.contains(&route) && l.contains(&status))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    fn sigterm(&self) {
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &self.pid])
            .status()
            .unwrap();
        assert!(kill.success());
    }
}

fn tmp_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("multi-instance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- who served what ---------------------------------------------------------------------------

/// The instance whose log has exactly one line matching `pred`. Waits (bounded) for the line:
/// an instance logs a request before answering it, but its log reaches the test through a
/// pipe, possibly after the answer.
async fn served_by<'a>(
    instances: &'a [Instance],
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> &'a str {
    let deadline = Instant::now() + WAIT;
    loop {
        let hits: Vec<&str> = instances
            .iter()
            .flat_map(|i| i.log.find(&pred).into_iter().map(move |_| i.name))
            .collect();
        if hits.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        assert_eq!(hits.len(), 1, "{what}: served by {hits:?}");
        return hits[0];
    }
}

fn is_voice(sid: &str) -> impl Fn(&Value) -> bool + '_ {
    move |l| l["message"] == "answering call with a media stream" && l["call_sid"] == sid
}

fn is_stream(sid: &str) -> impl Fn(&Value) -> bool + '_ {
    move |l| l["message"] == "call started" && l["span"]["call_sid"] == sid
}

fn is_status<'a>(sid: &'a str, status: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |l| l["message"] == "call status callback" && l["call_sid"] == sid && l["status"] == status
}

/// Waits (bounded) until `instance`'s log has a line matching `pred`, and returns it.
async fn wait_line(instance: &Instance, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut rx = instance.log.version.subscribe();
    let wait = async {
        loop {
            rx.borrow_and_update();
            if let Some(line) = instance.log.find(&pred).into_iter().next() {
                return line;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("instance {}: no {what} in its log", instance.name))
}

/// The instance holding the stream of `sid` (waits for its "call started" line).
async fn stream_host(instances: &[Instance], sid: &str) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let hosts: Vec<usize> = (0..instances.len())
            .filter(|&i| !instances[i].log.find(is_stream(sid)).is_empty())
            .collect();
        match hosts[..] {
            [one] => return one,
            [] if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
            _ => panic!("the stream of {sid} is on instances {hosts:?}"),
        }
    }
}

// ---- Twilio's requests through the load balancer -----------------------------------------------

/// A status callback as Twilio sends it, signed over the public URL, through HAProxy.
async fn status_callback(lb: &str, call: &ActiveCall, status: &str, sequence: u32) {
    let sequence = sequence.to_string();
    let mut form = vec![
        ("CallSid", call.call_sid()),
        ("AccountSid", call.account_sid()),
        ("CallStatus", status),
        ("SequenceNumber", sequence.as_str()),
        ("Direction", "inbound"),
    ];
    if status == "completed" {
        form.push(("CallDuration", "4"));
    }
    let url = format!("{lb}/twilio/status");
    let signature = testkit::twilio::signature::sign(AUTH_TOKEN, &url, &form);
    let r = http::post_form(&url, &[("x-twilio-signature", signature.as_str())], &form)
        .await
        .unwrap();
    assert_eq!(r.status, 204, "status callback {status}: {}", r.text());
}

/// Places a call through the load balancer and opens its stream; checks that the TwiML sends
/// the stream through the load balancer too.
async fn place(sim: &CallSimulator, lb: &str, n: usize) -> ActiveCall {
    let placed = sim
        .call()
        .from(&format!("+1415555{n:04}"))
        .place()
        .await
        .unwrap();
    let stream = placed.stream().expect("<Connect><Stream>").url.clone();
    let ws_lb = lb.replacen("http://", "ws://", 1);
    assert!(
        stream.starts_with(&format!("{ws_lb}/media/")),
        "the stream URL goes through the load balancer: {stream}"
    );
    placed.open_stream().await.unwrap()
}

/// What a call heard and said, checked once it ended.
struct Conversation {
    session: SessionHandle,
    queued: Vec<u8>,
}

/// The greeting reaches the caller byte-identical and is heard in full.
async fn hear_greeting(call: &ActiveCall, mock: &MockRealtime) -> SessionHandle {
    let session = session_of(mock, call.call_sid()).await;
    session.wait_for_response_done(1, WAIT).await.unwrap();
    let greeting = session.assistant_items()[0].audio.clone();
    assert_eq!(greeting.len(), 8000, "one second of greeting");
    let heard = call.wait_heard(greeting.len(), WAIT).await.unwrap();
    assert_eq!(heard, greeting, "{}: the whole greeting", call.call_sid());
    all_marks_echoed(call).await;
    session
}

/// Waits until the mark that follows the last audio the caller received has been echoed: the
/// echo leaves on the stream before any later caller frame, so the bridge knows the audio was
/// heard before it hears the caller speak (the speech is then no barge-in).
async fn all_marks_echoed(call: &ActiveCall) {
    let deadline = Instant::now() + WAIT;
    loop {
        let timeline = call.timeline();
        let after_media = timeline
            .iter()
            .rposition(|e| matches!(e.event, CallEvent::MediaReceived { .. }))
            .map_or(0, |i| i + 1);
        let mark = timeline[after_media..].iter().find_map(|e| match &e.event {
            CallEvent::MarkReceived { name } => Some(name.clone()),
            _ => None,
        });
        if let Some(name) = mark
            && call
                .marks()
                .iter()
                .any(|m| m.name == name && m.echoed_at.is_some())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: the mark after the last audio was not echoed",
            call.call_sid()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The caller speaks, hears the whole answer (exact bytes) and hangs up.
async fn answer_and_hang_up(call: &ActiveCall, session: SessionHandle) -> Conversation {
    let queued = say(call, audio::speech(300));
    session.wait_for_response_done(2, WAIT).await.unwrap();
    let items = session.assistant_items();
    assert_eq!(items.len(), 2, "greeting and answer");
    let all = [items[0].audio.clone(), items[1].audio.clone()].concat();
    let heard = call.wait_heard(all.len(), WAIT).await.unwrap();
    assert_eq!(heard, all, "{}: greeting and answer", call.call_sid());
    all_marks_echoed(call).await;
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    assert_caller_audio_relayed(call, &session, &queued);
    assert_clean(call, &session);
    Conversation { session, queued }
}

// ---- the record -------------------------------------------------------------------------------

/// `GET /api/calls/{sid}` through the load balancer until the record satisfies `done`.
async fn stored_call(lb: &str, sid: &str, done: impl Fn(&Value) -> bool) -> Value {
    let url = format!("{lb}/api/calls/{sid}");
    let auth = format!("Bearer {ADMIN}");
    let deadline = Instant::now() + WAIT;
    loop {
        let r = http::request(
            ::http::Method::GET,
            &url,
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
        assert!(
            Instant::now() < deadline,
            "{sid} not stored as expected: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every write of the call has landed: the stream's record and the three status callbacks
/// (written by different instances, so in any order).
fn finished(v: &Value) -> bool {
    let tw = &v["twilio"];
    v["end_reason"].is_string()
        && tw["status"] == "completed"
        && ["ringing_at_ms", "answered_at_ms", "completed_at_ms"]
            .iter()
            .all(|k| tw[*k].is_i64())
}

/// Checks that a stored record is complete: what `/voice` wrote (webhook time, numbers), what
/// the stream's instance wrote (times, transcript, usage) and what the status callbacks wrote.
fn assert_complete(record: &Value, call: &ActiveCall, session: &SessionHandle, end_reason: &str) {
    let sid = call.call_sid();
    assert_eq!(record["call_sid"], sid);
    assert_eq!(record["stream_sid"], call.stream_sid(), "{record}");
    assert_eq!(record["account_sid"], call.account_sid());
    assert_eq!(record["direction"], "inbound");
    assert!(record["from"].as_str().unwrap().starts_with("+1415555"));
    assert_eq!(record["to"], "+15005550006");
    assert_eq!(record["profile"], "default");
    assert_eq!(record["backend"], "realtime");
    assert_eq!(record["end_reason"], end_reason, "{record}");
    assert_eq!(record["barge_ins"], 0, "{record}");
    let t = &record["times"];
    for k in [
        "webhook_at_ms",
        "stream_started_at_ms",
        "agent_ready_at_ms",
        "first_agent_audio_at_ms",
        "ended_at_ms",
    ] {
        assert!(t[k].is_i64(), "{sid}: {k} missing: {record}");
    }
    assert!(t["webhook_at_ms"].as_i64() <= t["stream_started_at_ms"].as_i64());
    assert!(t["stream_started_at_ms"].as_i64() <= t["ended_at_ms"].as_i64());
    // The transcript: what the mock said and transcribed, in order.
    let mut expected = Vec::new();
    for e in session.server_events() {
        let v: Value = serde_json::from_str(&e.raw).unwrap();
        match e.event_type.as_str() {
            "response.output_audio_transcript.done" => {
                expected.push((
                    "agent".to_owned(),
                    v["transcript"].as_str().unwrap().to_owned(),
                ));
            }
            "conversation.item.input_audio_transcription.completed" => {
                expected.push((
                    "caller".to_owned(),
                    v["transcript"].as_str().unwrap().to_owned(),
                ));
            }
            _ => {}
        }
    }
    let stored: Vec<(String, String)> = record["transcript"]
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
    assert_eq!(stored, expected, "{sid}: {}", record["transcript"]);
    assert_eq!(stored[0].1, GREETING);
    // Usage: the sum of the mock's responses.
    let output: u64 = session
        .server_events()
        .iter()
        .filter(|e| e.event_type == "response.done")
        .map(|e| {
            let v: Value = serde_json::from_str(&e.raw).unwrap();
            v["response"]["usage"]["output_tokens"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert!(output > 0);
    assert_eq!(record["usage"]["output_tokens"], output, "{sid}");
    // Twilio's side, from the status callbacks (each possibly on another instance).
    let tw = &record["twilio"];
    assert_eq!(tw["status"], "completed");
    assert_eq!(tw["duration_secs"], 4);
    for k in ["ringing_at_ms", "answered_at_ms", "completed_at_ms"] {
        assert!(tw[k].is_i64(), "{sid}: twilio.{k} missing: {record}");
    }
}

// ---- the test ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_behind_haproxy_share_every_call_and_one_drains_without_touching_the_others()
 {
    let started = Instant::now();
    if !Haproxy::installed_or_skip("multi-instance") {
        return;
    }
    let Some(pg) = PgCluster::start_or_skip("multi-instance").await else {
        return;
    };
    let database = pg.create_database("multi_instance").await.unwrap();
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say(GREETING, 1000))
                .then(ResponseScript::say(ANSWER, 600)),
        )
        .start()
        .await
        .unwrap();

    // The load balancer's port first: it is the public URL every instance signs and mints for.
    let lb_port = testkit::haproxy::free_port().unwrap();
    let lb = format!("http://127.0.0.1:{lb_port}");
    let prompt = tmp_dir().join("prompt.md");
    std::fs::write(&prompt, PROMPT).unwrap();
    // This test documents the drain without handover (the other test covers handover).
    let env = cluster_env(&lb, &mock, &prompt, &database, false, NOTICE_SECS);
    let Some((mut instances, haproxy)) =
        start_cluster("multi-instance", &NAMES, &env, lb_port).await
    else {
        return;
    };

    // Twilio, as seen from the internet: everything goes to the load balancer.
    let sim = CallSimulator::new(&lb)
        .public_url(&lb)
        .auth_token(AUTH_TOKEN);

    // ---- 1. thirty calls, every request anywhere ----
    // Each call is answered (`/voice`), streamed (`/media`) and reported ringing and answered
    // (two status callbacks), one request after the other: round-robin sends consecutive
    // requests to consecutive instances.
    let mut calls = Vec::new();
    for n in 0..CALLS {
        let call = place(&sim, &lb, n).await;
        status_callback(&lb, &call, "ringing", 0).await;
        status_callback(&lb, &call, "in-progress", 1).await;
        calls.push(call);
    }
    let conversations = join_all(calls.iter().map(|call| async {
        let session = hear_greeting(call, &mock).await;
        let conversation = answer_and_hang_up(call, session).await;
        status_callback(&lb, call, "completed", 2).await;
        conversation
    }))
    .await;

    // Where each request went, as each instance's own log says.
    let mut per_instance: BTreeMap<&str, [usize; 3]> = NAMES.iter().map(|n| (*n, [0; 3])).collect();
    let mut split = 0;
    for call in &calls {
        let sid = call.call_sid();
        let voice = served_by(&instances, "/voice", is_voice(sid)).await;
        let media = served_by(&instances, "/media", is_stream(sid)).await;
        let mut statuses = Vec::new();
        for s in ["ringing", "in-progress", "completed"] {
            statuses.push(served_by(&instances, "status callback", is_status(sid, s)).await);
        }
        per_instance.get_mut(voice).unwrap()[0] += 1;
        per_instance.get_mut(media).unwrap()[1] += 1;
        for s in &statuses {
            per_instance.get_mut(s).unwrap()[2] += 1;
        }
        if voice != media {
            split += 1;
        }
        // The webhook's instance is never the stream's, nor the next request's: consecutive
        // requests went to consecutive instances.
        assert_ne!(
            voice, media,
            "{sid}: /voice and /media on the same instance"
        );
        assert_ne!(media, statuses[0], "{sid}: /media and the next callback");
    }
    assert_eq!(split, CALLS);
    for (name, [voice, media, status]) in &per_instance {
        // Strict round-robin over 4 × 30 consecutive requests, then 30 concurrent callbacks.
        assert_eq!((*voice, *media), (CALLS / 3, CALLS / 3), "instance {name}");
        assert!(
            *status >= CALLS * 2 / 3,
            "instance {name}: {status} callbacks"
        );
    }
    // Each instance's metrics agree with its log.
    for instance in &instances {
        let [voice, media, status] = per_instance[instance.name];
        assert_eq!(instance.requests("voice", "200").await, voice as u64);
        assert_eq!(instance.requests("media", "101").await, media as u64);
        assert_eq!(instance.requests("status", "204").await, status as u64);
    }
    // Every call ended normally on the instance that held its stream, and its record is
    // complete in the shared database, whichever instance answers the admin API.
    for (call, conversation) in calls.iter().zip(&conversations) {
        let host = &instances[stream_host(&instances, call.call_sid()).await];
        let sid = call.call_sid();
        let ended = wait_line(host, "call ended", |l| {
            l["message"] == "call ended" && l["span"]["call_sid"] == sid
        })
        .await;
        assert_eq!(ended["end_reason"], "caller_hung_up", "{ended}");
        let record = stored_call(&lb, sid, finished).await;
        assert_complete(&record, call, &conversation.session, "caller_hung_up");
        assert!(!conversation.queued.is_empty());
    }
    let phase1 = started.elapsed();
    report(
        "multi-instance",
        &format!(
            "{CALLS} calls through HAProxy: (/voice, /media, status callbacks) per instance \
             {per_instance:?}; every call's /voice and /media on different instances; \
             {:.1} s since the test started",
            phase1.as_secs_f64()
        ),
    );

    // ---- 2. one instance drains in the middle of calls ----
    let mut live = Vec::new();
    for n in 0..CALLS_BEFORE_DRAIN {
        live.push(place(&sim, &lb, 100 + n).await);
    }
    let sessions = join_all(live.iter().map(|call| hear_greeting(call, &mock))).await;
    let mut hosts = Vec::new();
    for call in &live {
        hosts.push(stream_host(&instances, call.call_sid()).await);
    }
    // The instance holding the most of these calls drains (round-robin spreads them: each
    // instance holds some).
    let victim = (0..3)
        .max_by_key(|&i| hosts.iter().filter(|&&h| h == i).count())
        .unwrap();
    let on_victim: Vec<usize> = (0..live.len()).filter(|&c| hosts[c] == victim).collect();
    assert!(
        on_victim.len() >= 2 && on_victim.len() < live.len(),
        "calls per instance: {hosts:?}"
    );
    // One of its calls stays on the line past the grace period; the others end during it.
    let held = on_victim[0];
    let victim_name = instances[victim].name;
    instances[victim].sigterm();
    let drain_started = Instant::now();

    // Draining: `/ready` answers 503 (asked directly), so HAProxy takes the instance out.
    let ready_url = format!("http://{}/ready", instances[victim].addr);
    let deadline = Instant::now() + WAIT;
    loop {
        let r = http::get(&ready_url)
            .await
            .expect("the instance still listens during the notice period");
        if r.status == 503 {
            assert_eq!(r.text(), r#"{"status":"draining"}"#);
            break;
        }
        assert!(Instant::now() < deadline, "/ready never answered 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    haproxy
        .wait_for_state(victim_name, "DOWN", WAIT)
        .await
        .unwrap();
    let taken_out = drain_started.elapsed();

    // A load balancer slower to notice would still send the draining instance the stream of a
    // call another instance answered: it is accepted (the stream token says the call was
    // answered; refusing it would fail a caller who was not told "busy") and drained.
    let placed = sim.call().from("+14155550300").place().await.unwrap();
    let straggler = placed
        .open_stream_at(&format!("http://{}", instances[victim].addr))
        .await
        .expect("the draining instance accepts the stream of an answered call");
    let straggler_session = hear_greeting(&straggler, &mock).await;
    let answered_by = served_by(&instances, "/voice", is_voice(straggler.call_sid())).await;
    assert_ne!(answered_by, victim_name);
    assert_eq!(stream_host(&instances, straggler.call_sid()).await, victim);
    live.push(straggler);
    let mut sessions: Vec<Option<SessionHandle>> = sessions.into_iter().map(Some).collect();
    sessions.push(Some(straggler_session));

    // Meanwhile, every call except the held one talks on and hangs up; new calls arrive and
    // go to the two other instances only.
    let held_session = sessions[held].take().unwrap();
    let ongoing = join_all(
        live.iter()
            .zip(sessions)
            .filter_map(|(call, s)| Some((call, s?)))
            .map(|(call, session)| answer_and_hang_up(call, session)),
    );
    let arriving = async {
        let mut new = Vec::new();
        for n in 0..CALLS_DURING_DRAIN {
            new.push(place(&sim, &lb, 200 + n).await);
        }
        let done = join_all(new.iter().map(|call| async {
            let session = hear_greeting(call, &mock).await;
            answer_and_hang_up(call, session).await
        }))
        .await;
        (new, done)
    };
    let (ongoing, (new, new_done)) = tokio::join!(ongoing, arriving);
    for call in &new {
        let sid = call.call_sid();
        let voice = served_by(&instances, "/voice", is_voice(sid)).await;
        let media = served_by(&instances, "/media", is_stream(sid)).await;
        assert!(
            voice != victim_name && media != victim_name,
            "{sid}: a new call reached the draining instance ({voice}, {media})"
        );
    }

    // The held call: ended by the drained instance at the end of its grace period, on both
    // sides (Twilio's stream closed by the server, the agent session closed cleanly).
    let held_call = &live[held];
    let end = held_call.wait_closed(WAIT).await.unwrap();
    assert!(
        matches!(end, CallEnd::ServerClosed { .. }),
        "the server closed the held call: {end:?}"
    );
    let closed = held_session.wait_closed(WAIT).await.unwrap();
    assert!(
        matches!(closed.by, ClosedBy::ClientClose { .. }),
        "the agent session was closed: {closed:?}"
    );
    assert_clean(held_call, &held_session);
    let status = tokio::time::timeout(WAIT, instances[victim].child.wait())
        .await
        .expect("the drained instance exits")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let drained = drain_started.elapsed();
    let bye = wait_line(&instances[victim], "bye", |l| l["message"] == "bye").await;
    assert_eq!(bye["calls_ended"], 1, "{bye}");
    assert_eq!(bye["clean"], true, "{bye}");

    // How every call of this part ended, on the instance that held it.
    let mut ongoing = ongoing.into_iter();
    let mut expected_end = Vec::new();
    for (c, call) in live.iter().enumerate() {
        let reason = if c == held {
            "shutdown"
        } else {
            "caller_hung_up"
        };
        let session = if c == held {
            held_session.clone()
        } else {
            ongoing.next().unwrap().session
        };
        expected_end.push((call, session, reason));
    }
    for (call, conversation) in new.iter().zip(new_done) {
        expected_end.push((call, conversation.session, "caller_hung_up"));
    }
    for (call, session, reason) in &expected_end {
        let sid = call.call_sid();
        let host = &instances[stream_host(&instances, sid).await];
        let ended = wait_line(host, "call ended", |l| {
            l["message"] == "call ended" && l["span"]["call_sid"] == sid
        })
        .await;
        assert_eq!(
            ended["end_reason"], *reason,
            "{sid} on {}: {ended}",
            host.name
        );
        status_callback(&lb, call, "ringing", 0).await;
        status_callback(&lb, call, "in-progress", 1).await;
        status_callback(&lb, call, "completed", 2).await;
        let record = stored_call(&lb, sid, finished).await;
        assert_complete(&record, call, session, reason);
    }
    let survivors: Vec<&str> = NAMES
        .iter()
        .copied()
        .filter(|n| *n != victim_name)
        .collect();
    report(
        "multi-instance drain",
        &format!(
            "instance {victim_name} drained with {} of {CALLS_BEFORE_DRAIN} calls and the \
             stream of a call answered elsewhere: out of HAProxy {:.0} ms after SIGTERM, exited \
             0 after {:.1} s (notice {NOTICE_SECS} s, grace {GRACE_SECS} s; one call ended at \
             the deadline); {CALLS_DURING_DRAIN} new calls meanwhile on {survivors:?}; whole \
             test {:.1} s",
            on_victim.len(),
            taken_out.as_secs_f64() * 1e3,
            drained.as_secs_f64(),
            started.elapsed().as_secs_f64()
        ),
    );
    drop(instances);
    drop(haproxy);
    drop(pg);
    let _ = std::fs::remove_dir_all(tmp_dir());
}

// ---- 3. handover through the load balancer ----------------------------------------------------

const AFTER: &str = "Is there anything else about the parcel?";

/// The items the bridge created in `session` (`conversation.item.create`).
fn created_items(session: &SessionHandle) -> Vec<Value> {
    session
        .client_events()
        .iter()
        .filter(|e| e.event_type() == "conversation.item.create")
        .map(|e| e.json().unwrap()["item"].clone())
        .collect()
}

/// `shutdown.handover = true` with the real load balancer and the real PostgreSQL: a call
/// placed through HAProxy; the instance holding its stream gets SIGTERM mid-call; `/ready`
/// answers 503 and HAProxy takes it out during the notice period; when the notice is over the
/// instance ends the stream at the pause with the conversation saved in PostgreSQL and exits 0;
/// the simulated Twilio fetches the `<Redirect>` after `</Connect>` THROUGH HAProxy, which sends
/// it (and the new stream) to the surviving instances; the new agent session gets exactly the
/// conversation, the caller hears the new agent byte for byte, and PostgreSQL has one record
/// with `handovers = 1`, read back through the load balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_through_haproxy_and_postgresql_moves_a_call_to_a_surviving_instance() {
    const HANDOVER_NAMES: [&str; 3] = ["ha", "hb", "hc"];
    if !Haproxy::installed_or_skip("multi-instance handover") {
        return;
    }
    let Some(pg) = PgCluster::start_or_skip("multi-instance handover").await else {
        return;
    };
    let database = pg.create_database("handover").await.unwrap();
    let mock = MockRealtime::builder()
        .script(Script::new().no_fallback())
        .start()
        .await
        .unwrap();
    mock.push_session_script(
        Script::new()
            .then(ResponseScript::say(GREETING, 1000))
            .then(ResponseScript::say(ANSWER, 600)),
    );
    mock.push_session_script(Script::new().then(ResponseScript::say(AFTER, 600)));
    let lb_port = testkit::haproxy::free_port().unwrap();
    let lb = format!("http://127.0.0.1:{lb_port}");
    // Its own directory: the other test of this file removes `tmp_dir()` when it is done.
    let prompt_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("multi-instance-handover-{}", std::process::id()));
    std::fs::create_dir_all(&prompt_dir).unwrap();
    let prompt = prompt_dir.join("prompt.md");
    std::fs::write(&prompt, PROMPT).unwrap();
    let env = cluster_env(&lb, &mock, &prompt, &database, true, "2");
    let Some((mut instances, haproxy)) =
        start_cluster("multi-instance handover", &HANDOVER_NAMES, &env, lb_port).await
    else {
        return;
    };
    let sim = CallSimulator::new(&lb)
        .public_url(&lb)
        .auth_token(AUTH_TOKEN);

    // A call through the load balancer: the greeting, a question and its answer.
    let placed = sim.call().from("+14155550400").place().await.unwrap();
    let call = placed.open_stream().await.unwrap();
    let sid = call.call_sid().to_owned();
    let first = hear_greeting(&call, &mock).await;
    say(&call, audio::speech(300));
    first.wait_for_response_done(2, WAIT).await.unwrap();
    let items = first.assistant_items();
    let heard_before = [items[0].audio.clone(), items[1].audio.clone()].concat();
    let heard = call.wait_heard(heard_before.len(), WAIT).await.unwrap();
    assert_eq!(heard, heard_before, "greeting and answer");
    all_marks_echoed(&call).await;
    call.wait_playout_idle(WAIT).await.unwrap();
    let question = first
        .server_events()
        .iter()
        .find(|e| e.event_type == "conversation.item.input_audio_transcription.completed")
        .map(|e| e.json().unwrap()["transcript"].as_str().unwrap().to_owned())
        .expect("the caller's line was transcribed");

    // The instance holding the stream drains: out of HAProxy during the notice period.
    let victim = stream_host(&instances, &sid).await;
    let victim_name = instances[victim].name;
    instances[victim].sigterm();
    let drain_started = Instant::now();
    let ready_url = format!("http://{}/ready", instances[victim].addr);
    loop {
        let r = http::get(&ready_url)
            .await
            .expect("the instance still listens during the notice period");
        if r.status == 503 {
            break;
        }
        assert!(drain_started.elapsed() < WAIT, "/ready never answered 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    haproxy
        .wait_for_state(victim_name, "DOWN", WAIT)
        .await
        .unwrap();
    let taken_out = drain_started.elapsed();
    // At the notice's end the call is handed over at this pause; the instance exits 0.
    let end = call.wait_closed(WAIT).await.unwrap();
    assert!(matches!(end, CallEnd::ServerClosed { .. }), "{end:?}");
    let handed = drain_started.elapsed();
    first.wait_closed(WAIT).await.unwrap();
    let line = wait_line(&instances[victim], "handover", |l| {
        l["message"] == "call handed over: its conversation is saved for the next instance"
    })
    .await;
    assert_eq!(line["at_pause"], true, "{line}");
    // Only once the notice period was over (the load balancer had it to take the instance
    // out) and the instance had stopped listening: its log has them in this order.
    let order: Vec<String> = instances[victim]
        .log
        .find(|l| {
            l["message"] == "shutting down: no longer accepting; waiting for calls to finish"
                || l["message"]
                    == "call handed over: its conversation is saved for the next instance"
        })
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        order,
        [
            "shutting down: no longer accepting; waiting for calls to finish",
            "call handed over: its conversation is saved for the next instance"
        ]
    );
    let status = tokio::time::timeout(WAIT, instances[victim].child.wait())
        .await
        .expect("the drained instance exits")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let bye = wait_line(&instances[victim], "bye", |l| l["message"] == "bye").await;
    assert_eq!(bye["calls_ended"], 0, "{bye}");
    assert_eq!(bye["clean"], true, "{bye}");

    // Twilio runs the redirect through the load balancer: a surviving instance resumes the call.
    let (executed, next) = placed.follow_after_stream().await.unwrap();
    assert!(
        matches!(executed.as_slice(), [testkit::twilio::twiml::Verb::Redirect { url, .. }]
            if url == &format!("{lb}/voice/next")),
        "{executed:?}"
    );
    let next = next.expect("a new stream for the same call");
    let stream = next.stream().expect("<Connect><Stream>");
    assert!(
        stream
            .url
            .starts_with(&format!("{}/media/", lb.replacen("http://", "ws://", 1))),
        "the resumed stream goes through the load balancer: {}",
        stream.url
    );
    assert!(
        stream
            .parameters
            .iter()
            .any(|(k, v)| k == "handover" && v == "1"),
        "{:?}",
        stream.parameters
    );
    let resumed_by = served_by(&instances, "/voice/next", |l| {
        l["message"] == "resuming a handed-over call with a new stream" && l["call_sid"] == sid
    })
    .await;
    assert_ne!(resumed_by, victim_name);
    let resumed = next.open_stream().await.unwrap();
    assert_eq!(resumed.call_sid(), sid);
    let second = mock.wait_for_session(2, WAIT).await.unwrap();
    let streamed_on: Vec<&str> = instances
        .iter()
        .filter(|i| i.name != victim_name && !i.log.find(is_stream(&sid)).is_empty())
        .map(|i| i.name)
        .collect();
    assert_eq!(streamed_on.len(), 1, "{streamed_on:?}");

    // The new session got exactly the conversation (from PostgreSQL) and greets no one.
    let deadline = Instant::now() + WAIT;
    while created_items(&second).len() < 3 {
        assert!(Instant::now() < deadline, "no replay on the survivor");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        created_items(&second),
        [
            serde_json::json!({"type": "message", "role": "assistant",
                   "content": [{"type": "output_text", "text": GREETING}]}),
            serde_json::json!({"type": "message", "role": "user",
                   "content": [{"type": "input_text", "text": question}]}),
            serde_json::json!({"type": "message", "role": "assistant",
                   "content": [{"type": "output_text", "text": ANSWER}]}),
        ]
    );
    assert!(second.client_events_of_type("response.create").is_empty());

    // The conversation goes on: the caller speaks, hears the new agent byte for byte.
    let queued = say(&resumed, audio::speech(300));
    second.wait_for_response_done(1, WAIT).await.unwrap();
    let after = second.assistant_items()[0].audio.clone();
    let heard = resumed.wait_heard(after.len(), WAIT).await.unwrap();
    assert_eq!(heard, after, "the caller hears the new agent");
    all_marks_echoed(&resumed).await;
    resumed.stop(WAIT).await.unwrap();
    second.wait_closed(WAIT).await.unwrap();
    assert_caller_audio_relayed(&resumed, &second, &queued);
    assert_clean(&resumed, &second);
    assert_eq!(mock.sessions().len(), 2, "one session per stream");

    // One record in PostgreSQL, the handover counted, read through the load balancer.
    let record = stored_call(&lb, &sid, |v| {
        v["handovers"] == 1 && v["end_reason"] == "caller_hung_up"
    })
    .await;
    let agent_lines: Vec<&str> = record["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["speaker"] == "agent")
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert_eq!(agent_lines, [GREETING, ANSWER, AFTER], "{record}");
    let survivor = instances.iter().find(|i| i.name == streamed_on[0]).unwrap();
    let metrics = http::get(&format!("http://{}/metrics", survivor.metrics))
        .await
        .unwrap()
        .text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("phone_agent_handovers_total{side=\"in\"} 1")),
        "{metrics}"
    );
    report(
        "multi-instance handover",
        &format!(
            "instance {victim_name} out of HAProxy {:.0} ms after SIGTERM; call handed over \
             {:.2} s after SIGTERM (notice 2 s); resumed by {resumed_by} (/voice/next), \
             stream on {}",
            taken_out.as_secs_f64() * 1e3,
            handed.as_secs_f64(),
            streamed_on[0]
        ),
    );
    drop(instances);
    drop(haproxy);
    drop(pg);
    let _ = std::fs::remove_dir_all(prompt_dir);
}

/// The environment of every instance behind the load balancer at `lb` (its public URL), one
/// mock agent and one call store; `handover` and the shutdown notice as given.
fn cluster_env(
    lb: &str,
    mock: &MockRealtime,
    prompt: &std::path::Path,
    database: &str,
    handover: bool,
    notice_secs: &str,
) -> Vec<(String, String)> {
    [
        ("PORT", "0"),
        ("PHONE_AGENT_SERVER__BIND_ADDRESS", "127.0.0.1"),
        // Round-robin sends a call's stream to another instance than its /voice: with
        // pre-warming each call would also open (and later close) an unclaimed session, which
        // these tests' one-session-per-call accounting does not expect. That case is covered by
        // tests/prewarm.rs (a_stream_on_another_instance_connects_there_and_the_prewarm_expires).
        ("PHONE_AGENT_AGENT__PREWARM", "false"),
        ("PUBLIC_URL", lb),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("OPENAI_API_KEY", "sk-e2e"),
        ("OPENAI_BASE_URL", mock.base_url().as_str()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
        (
            "PHONE_AGENT_OPENAI__TURN_DETECTION__SILENCE_DURATION_MS",
            "200",
        ),
        ("PHONE_AGENT_DATABASE__URL", database),
        ("PHONE_AGENT_ADMIN__TOKEN", ADMIN),
        (
            "PHONE_AGENT_SHUTDOWN__HANDOVER",
            if handover { "true" } else { "false" },
        ),
        ("PHONE_AGENT_SERVER__SHUTDOWN_NOTICE_SECS", notice_secs),
        ("PHONE_AGENT_SERVER__SHUTDOWN_GRACE_SECS", GRACE_SECS),
        ("PHONE_AGENT_METRICS__BIND", "127.0.0.1:0"),
        ("PHONE_AGENT_LOG__FORMAT", "json"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Starts one instance per name with `env` behind a real HAProxy on `lb_port` and waits until
/// every one is UP; `None` (the test is skipped) without HAProxy.
async fn start_cluster(
    label: &str,
    names: &[&'static str],
    env: &[(String, String)],
    lb_port: u16,
) -> Option<(Vec<Instance>, Haproxy)> {
    let mut instances = Vec::new();
    for name in names {
        instances.push(Instance::start(name, env).await);
    }
    let backends: Vec<Backend> = instances
        .iter()
        .map(|i| Backend {
            name: i.name.to_owned(),
            addr: i.addr,
        })
        .collect();
    let haproxy = Haproxy::start_or_skip(label, lb_port, "/ready", &backends).await?;
    for name in names {
        haproxy.wait_for_state(name, "UP", WAIT).await.unwrap();
    }
    Some((instances, haproxy))
}
