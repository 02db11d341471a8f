//! End to end, many calls at once: the real server between the mock OpenAI Realtime server and
//! simulated Twilio calls. Fifty concurrent calls without cross-talk, a misbehaving call that
//! leaves its neighbours untouched, and forged or missing signatures that never open an agent
//! session.
//!
//! Measurements are printed (`cargo test -p phone-agent-server --test e2e_isolation --
//! --nocapture`).
#![allow(clippy::print_stderr)]

mod e2e_support;

use std::time::Duration;

use e2e_support::{
    AUTH_TOKEN, Bridge, PUBLIC, WAIT, assert_caller_audio_relayed, assert_clean, logs, ms,
    relay_latencies, report, say, session_of, summary, turn_latencies,
};
use testkit::audio::{self, FRAME_BYTES};
use testkit::openai::{ClosedBy, MockRealtime, ResponseScript, Script};
use testkit::twilio::{
    ActiveCall, CallEnd, CallEvent, CallSimulator, Malformed, Signing, SimError,
};
use tokio::time::Instant;

/// `frames` 20 ms frames of `make(ms)` audio, frame `k` stamped `first_id + k`.
fn stamped(first_id: u32, frames: usize, make: fn(u32) -> Vec<u8>) -> Vec<u8> {
    let mut bytes = make(frames as u32 * 20);
    for (k, frame) in bytes.chunks_mut(FRAME_BYTES).enumerate() {
        audio::stamp(frame, first_id + k as u32);
    }
    bytes
}

/// Stamp ids of caller `i`'s frames: `(i + 1) << 16 | k`.
fn caller_id(i: usize) -> u32 {
    ((i + 1) as u32) << 16
}

/// Stamp ids of agent `i`'s audio: `0x4000_0000 | (i + 1) << 12 | k`.
fn agent_id(i: usize) -> u32 {
    0x4000_0000 | ((i + 1) as u32) << 12
}

struct CallResult {
    speech_end_to_audio: Duration,
    speech_stopped_to_audio: Duration,
    relay: Vec<Duration>,
    teardown: Duration,
}

/// One of the concurrent calls: the caller sends 500 ms of quiet frames and 300 ms of speech,
/// all stamped with its own ids; its agent answers with 400 ms of audio stamped with ids of its
/// own. Checks both directions byte for byte.
async fn identified_call(mock: MockRealtime, sim: CallSimulator, i: usize) -> CallResult {
    let call = sim
        .call()
        .from(&format!("+1415555{i:04}"))
        .connect()
        .await
        .unwrap();
    // 500–860 ms of quiet frames: the calls do not all speak at the same instant.
    let quiet = 25 + 2 * (i % 10);
    let mut queued = say(&call, stamped(caller_id(i), quiet, audio::silence));
    let session = session_of(&mock, call.call_sid()).await;
    let answer = audio::agent_tone(agent_id(i), 400);
    session.push_response(ResponseScript::say_audio(
        &format!("Agent {i}."),
        answer.clone(),
    ));
    call.wait_caller_audio_sent(WAIT).await.unwrap();
    queued.extend(say(
        &call,
        stamped(caller_id(i) + quiet as u32, 15, audio::speech),
    ));

    // The caller hears exactly its own agent's answer, and nothing else.
    let done = session.wait_for_response_done(1, WAIT).await.unwrap();
    assert_eq!(done.status, "completed");
    call.wait_heard(answer.len(), WAIT).await.unwrap();
    assert_eq!(
        call.received_audio(),
        answer,
        "call {i} heard foreign audio"
    );
    assert_eq!(call.heard(), answer);

    let stop_sent = Instant::now();
    call.stop(WAIT).await.unwrap();
    let closed = session.wait_closed(WAIT).await.unwrap();
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up", "{:?}", ended.line);

    // The agent session received exactly its own caller's frames, in order.
    assert_caller_audio_relayed(&call, &session, &queued);
    let stamps = audio::find_stamps(&session.received_audio());
    let ids: Vec<u32> = stamps.iter().map(|&(_, id)| id).collect();
    let own: Vec<u32> = (0..quiet as u32 + 15).map(|k| caller_id(i) + k).collect();
    assert_eq!(ids, own, "session of call {i} received foreign frames");
    assert_clean(&call, &session);
    let turns = turn_latencies(&call, &session);
    assert_eq!(turns.len(), 1);
    CallResult {
        speech_end_to_audio: turns[0].speech_end_to_audio,
        speech_stopped_to_audio: turns[0].speech_stopped_to_audio,
        relay: relay_latencies(&call, &session),
        teardown: closed.at.saturating_duration_since(stop_sent),
    }
}

/// Fifty calls at once: every caller hears only its own agent, every agent session receives
/// only its own caller's frames (byte-identical, in order), and all of them end cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_calls_without_cross_talk() {
    const CALLS: usize = 50;
    let mock = MockRealtime::builder()
        .script(Script::new().no_fallback())
        .start()
        .await
        .unwrap();
    let bridge = Bridge::start(&mock.base_url(), &[("PHONE_AGENT_AGENT__GREETING", "off")]).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| tokio::spawn(identified_call(mock.clone(), bridge.sim.clone(), i)))
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    assert_eq!(mock.sessions().len(), CALLS, "one agent session per call");
    // The server's own view of its relay latency (process-wide, so it includes this binary's
    // other tests): how much of the end-to-end latency above is the bridge itself.
    let metrics = testkit::http::get(&format!(
        "http://{}/metrics",
        bridge.handle.metrics_addr().expect("metrics are served")
    ))
    .await
    .unwrap()
    .text();
    let series = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no series {name} in /metrics"))
    };
    for direction in ["agent_to_caller", "caller_to_agent"] {
        let count = series(&format!(
            "phone_agent_relay_seconds_count{{direction=\"{direction}\"}}"
        ));
        let bucket = |le: &str| {
            series(&format!(
                "phone_agent_relay_seconds_bucket{{direction=\"{direction}\",le=\"{le}\"}}"
            ))
        };
        assert!(count >= 1.0);
        report(
            &format!("server-internal relay {direction} (frame read → written, process-wide)"),
            &format!(
                "{count} frames, {:.1}% ≤ 0.5 ms, {:.1}% ≤ 10 ms",
                100.0 * bucket("0.0005") / count,
                100.0 * bucket("0.01") / count
            ),
        );
    }
    report(
        "50 concurrent calls",
        &format!("all done in {:.0} ms", ms(elapsed)),
    );
    report(
        "50 calls: caller speech end → first agent audio (incl. 200 ms VAD silence)",
        &summary(
            &results
                .iter()
                .map(|r| ms(r.speech_end_to_audio))
                .collect::<Vec<_>>(),
        ),
    );
    report(
        "50 calls: speech_stopped → first agent audio at the caller",
        &summary(
            &results
                .iter()
                .map(|r| ms(r.speech_stopped_to_audio))
                .collect::<Vec<_>>(),
        ),
    );
    report(
        "50 calls: mock audio delta → caller (bridge relay), every delta",
        &summary(
            &results
                .iter()
                .flat_map(|r| r.relay.iter().map(|&d| ms(d)))
                .collect::<Vec<_>>(),
        ),
    );
    report(
        "50 calls: teardown (stop sent → agent socket closed)",
        &summary(&results.iter().map(|r| ms(r.teardown)).collect::<Vec<_>>()),
    );
    bridge.finish().await;
}

/// A normal call next to the misbehaving ones: streams stamped frames until told to speak,
/// gets its answer, hangs up; everything it sent reached its agent.
async fn bystander(
    call: ActiveCall,
    session: testkit::openai::SessionHandle,
    speak: tokio::sync::oneshot::Receiver<()>,
) {
    speak.await.unwrap();
    let queued = say(&call, audio::speech(300));
    session.wait_for_response_done(1, WAIT).await.unwrap();
    let answer = session.assistant_items()[0].audio.clone();
    call.wait_heard(answer.len(), WAIT).await.unwrap();
    assert_eq!(call.received_audio(), answer);
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up", "{:?}", ended.line);
    assert_caller_audio_relayed(&call, &session, &queued);
    assert_clean(&call, &session);
}

fn media_sent(call: &ActiveCall) -> usize {
    call.count_events(|e| matches!(e, CallEvent::MediaSent { .. }))
}

/// Malformed frames: bad JSON, bad base64, an unknown event and a binary frame are skipped and
/// the call carries on; an oversized frame ends that call only (its agent session is closed).
/// Two ordinary calls running alongside are untouched.
#[tokio::test]
async fn malformed_frames_affect_only_their_own_call() {
    let mock = MockRealtime::builder()
        .script(Script::new().fallback(ResponseScript::say("Got it.", 300)))
        .start()
        .await
        .unwrap();
    let bridge = Bridge::start(&mock.base_url(), &[("PHONE_AGENT_AGENT__GREETING", "off")]).await;
    let connect = || async {
        let call = bridge
            .sim
            .call()
            .stamp_frames(true)
            .connect()
            .await
            .unwrap();
        let session = session_of(&mock, call.call_sid()).await;
        (call, session)
    };
    let (sloppy, sloppy_session) = connect().await;
    let (big, big_session) = connect().await;
    let mut bystanders = Vec::new();
    let mut go = Vec::new();
    for _ in 0..2 {
        let (call, session) = connect().await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        go.push(tx);
        bystanders.push((
            call.clone(),
            session.clone(),
            tokio::spawn(bystander(call, session, rx)),
        ));
    }

    // Bad frames are skipped; the call goes on.
    for m in [
        Malformed::BadJson,
        Malformed::BadBase64,
        Malformed::UnknownEvent,
        Malformed::Binary,
    ] {
        sloppy.send_malformed(m);
    }
    let raw_sent = |c: &ActiveCall| c.count_events(|e| matches!(e, CallEvent::RawSent { .. }));
    sloppy
        .wait_for_nth(|e| matches!(e, CallEvent::RawSent { .. }), 4, WAIT)
        .await
        .unwrap();
    assert_eq!(raw_sent(&sloppy), 4);

    // An oversized frame (100 000 bytes of audio, ~133 KB of JSON) ends that call.
    let frames_before = bystanders
        .iter()
        .map(|(c, _, _)| media_sent(c))
        .collect::<Vec<_>>();
    big.send_malformed(Malformed::Oversized(100_000));
    let sent_at = big
        .wait_for(|e| matches!(e, CallEvent::RawSent { .. }), WAIT)
        .await
        .unwrap()
        .at;
    // The server stops reading mid-frame and closes; with the rest of the frame unread, the
    // close can reach the caller as a reset rather than a close frame.
    let end = big.wait_closed(WAIT).await.unwrap();
    assert!(
        matches!(
            end,
            CallEnd::ServerClosed { .. } | CallEnd::ServerVanished { .. }
        ),
        "{end:?}"
    );
    let big_ended_at = big
        .wait_for(|e| matches!(e, CallEvent::Closed(_)), WAIT)
        .await
        .unwrap()
        .at;
    report(
        "oversized frame",
        &format!(
            "the call ended {:.2} ms after it was sent; the caller saw {end:?}",
            ms(big_ended_at - sent_at)
        ),
    );
    let big_closed = big_session.wait_closed(WAIT).await.unwrap();
    assert!(
        matches!(big_closed.by, ClosedBy::ClientClose { .. }),
        "{big_closed:?}"
    );
    let ended = logs().call_ended(big.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_error", "{:?}", ended.line);
    assert!(ended.end_detail.contains("size limit"), "{:?}", ended.line);
    assert_clean(&big, &big_session);

    // Nobody else noticed: the other sessions are open and keep receiving their caller's
    // frames after the big call ended.
    for ((call, session, _), before) in bystanders.iter().zip(&frames_before) {
        assert!(session.closed().is_none());
        assert!(call.closed().is_none());
        call.wait_for_nth(
            |e| matches!(e, CallEvent::MediaSent { .. }),
            before + 25,
            WAIT,
        )
        .await
        .unwrap();
        session
            .wait_for_received_audio((before + 20) * FRAME_BYTES, WAIT)
            .await
            .unwrap();
    }
    assert!(sloppy_session.closed().is_none());

    // The sloppy caller speaks and is answered like anyone else.
    let queued = say(&sloppy, audio::speech(300));
    sloppy_session
        .wait_for_response_done(1, WAIT)
        .await
        .unwrap();
    let answer = sloppy_session.assistant_items()[0].audio.clone();
    sloppy.wait_heard(answer.len(), WAIT).await.unwrap();
    assert_eq!(sloppy.received_audio(), answer);
    sloppy.stop(WAIT).await.unwrap();
    sloppy_session.wait_closed(WAIT).await.unwrap();
    let ended = logs().call_ended(sloppy.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up", "{:?}", ended.line);
    // The bad base64 payload was not forwarded (the mock would flag it), and every good frame
    // was, in order.
    assert_caller_audio_relayed(&sloppy, &sloppy_session, &queued);
    assert_clean(&sloppy, &sloppy_session);
    let skipped = logs()
        .for_call(sloppy.call_sid())
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("skipping a Twilio stream message"))
        })
        .count();
    assert_eq!(
        skipped, 1,
        "the first skipped frame is logged at warn, the rest at debug"
    );

    for tx in go {
        tx.send(()).unwrap();
    }
    for (_, _, task) in bystanders {
        task.await.unwrap();
    }
    assert_eq!(mock.sessions().len(), 4);
    bridge.finish().await;
}

/// Forged or missing signatures on the webhook and on the stream upgrade are refused, and no
/// agent session is ever opened for them; a correctly signed call then works.
#[tokio::test]
async fn forged_or_missing_signatures_open_no_agent_session() {
    let mock = MockRealtime::start().await.unwrap();
    // Without pre-warming: the refused streams below follow correctly signed webhooks, which
    // may pre-warm a session (closed unclaimed after the token TTL, tests/prewarm.rs); this
    // test is about what a forged request opens.
    let bridge = Bridge::start(&mock.base_url(), &[("PHONE_AGENT_AGENT__PREWARM", "false")]).await;
    let refusals = |message: &str| {
        logs()
            .lines()
            .iter()
            .filter(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .count()
    };
    let voice_before = refusals("refusing /voice: invalid Twilio signature");
    let media_before = refusals("refusing /media upgrade: invalid Twilio signature");
    let local = format!("http://{}", bridge.addr);
    let bad = [
        Signing::Omit,
        Signing::Forged("bm90IGEgc2lnbmF0dXJl".into()),
        Signing::WithToken("ffffffffffffffffffffffffffffffff".into()),
        // Signed over the local address instead of the public URL.
        Signing::WithUrl(format!("{local}/voice")),
    ];
    for signing in bad.clone() {
        let placed = bridge
            .sim
            .call()
            .signature(signing.clone())
            .place()
            .await
            .unwrap();
        assert_eq!(placed.status(), 403, "{signing:?}");
        assert!(placed.stream().is_none(), "{signing:?}");
    }
    let bad_stream = [
        Signing::Omit,
        Signing::Forged("bm90IGEgc2lnbmF0dXJl".into()),
        Signing::WithToken("ffffffffffffffffffffffffffffffff".into()),
        // The webhook's https:// URL instead of the stream's wss:// one.
        Signing::WithUrl(format!("{PUBLIC}/media")),
        Signing::WithUrl(format!("ws://{}/media", bridge.addr)),
    ];
    for signing in bad_stream.clone() {
        let placed = bridge
            .sim
            .call()
            .stream_signature(signing.clone())
            .place()
            .await
            .unwrap();
        assert_eq!(
            placed.status(),
            200,
            "the webhook itself is signed correctly"
        );
        match placed.open_stream().await {
            Err(SimError::StreamRejected { status, .. }) => assert_eq!(status, 403, "{signing:?}"),
            other => panic!("{signing:?}: the stream was not refused: {other:?}"),
        }
    }
    assert_eq!(
        refusals("refusing /voice: invalid Twilio signature") - voice_before,
        bad.len()
    );
    assert_eq!(
        refusals("refusing /media upgrade: invalid Twilio signature") - media_before,
        bad_stream.len()
    );

    // A correctly signed call gets the first and only agent session.
    let good = CallSimulator::new(&local)
        .public_url(PUBLIC)
        .auth_token(AUTH_TOKEN);
    let call = good.call().connect().await.unwrap();
    let session = session_of(&mock, call.call_sid()).await;
    assert_eq!(
        session.number(),
        1,
        "no session was opened for a refused call"
    );
    call.wait_heard(800, WAIT).await.unwrap();
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    assert_clean(&call, &session);
    assert_eq!(mock.sessions().len(), 1);
    assert!(
        mock.refused_upgrades().is_empty(),
        "no attempt to connect either"
    );
    bridge.finish().await;
}
