//! Calls that survive: the agent's connection drops mid-answer, the server reconnects, the
//! fresh session gets exactly the conversation the caller heard, and the call goes on (the
//! caller hears the hold tone during the gap, then the new session's voice). An agent that
//! refuses the reconnect ends the call into the fallback, with no session left open.

mod e2e_support;

use std::time::Duration;

use bridge_core::audio::tone::{self, Tone};
use bridge_core::engine::DEFAULT_RESUME;
use bridge_core::format::AudioFormat;
use e2e_support::*;
use serde_json::{Value, json};
use testkit::openai::{MockRealtime, ResponseFault, ResponseScript, Script, SessionHandle};
use testkit::twilio::twiml::{Twiml, Verb};

const GREETING: &str = "Hello, this is Acme. How can I help you today?";
const BACK: &str = "Sorry about that, I am back.";

/// The server's hold tone (call.rs): 250 ms of 440 Hz at −24 dBFS, then 750 ms of silence.
fn hold_clip() -> Vec<u8> {
    let mut clip = Vec::new();
    Tone::with_dbfs(440.0, -24.0, 8000).ulaw_into(2000, &mut clip);
    clip.extend_from_slice(&tone::silence_bytes(AudioFormat::Mulaw8k, 750));
    clip
}

/// The agent's transcript fragments that reached the bridge before the drop.
fn transcript_sent(session: &SessionHandle) -> String {
    session
        .server_events()
        .iter()
        .filter(|e| e.event_type == "response.output_audio_transcript.delta")
        .map(|e| e.json().unwrap()["delta"].as_str().unwrap().to_owned())
        .collect()
}

/// What the bridge sent the session, caller audio left out.
fn client_events(session: &SessionHandle) -> Vec<Value> {
    session
        .client_events()
        .iter()
        .filter(|e| e.event_type() != "input_audio_buffer.append")
        .map(|e| e.json().unwrap())
        .collect()
}

/// The value of one series of the server's `/metrics` (process-wide: only this file's tests
/// run in this process, and only the first test reconnects, only the second gives up).
async fn metric(bridge: &Bridge, series: &str) -> f64 {
    let text = testkit::http::get(&format!(
        "http://{}/metrics",
        bridge.handle.metrics_addr().expect("metrics are served")
    ))
    .await
    .unwrap()
    .text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no series {series} in /metrics:\n{text}"))
}

/// POSTs Twilio's redirect after the stream, signed, and parses the answer.
async fn after_stream(bridge: &Bridge, call_sid: &str) -> Twiml {
    let form = vec![
        ("AccountSid", bridge.sim.account().to_owned()),
        ("CallSid", call_sid.to_owned()),
        ("CallStatus", "in-progress".to_owned()),
    ];
    let signature =
        testkit::twilio::signature::sign(AUTH_TOKEN, &format!("{PUBLIC}/voice/fallback"), &form);
    let r = testkit::http::post_form(
        &format!("http://{}/voice/fallback", bridge.addr),
        &[("x-twilio-signature", signature.as_str())],
        &form,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    Twiml::parse(&r.text()).unwrap()
}

#[tokio::test]
async fn a_dropped_agent_connection_is_reconnected_and_the_call_goes_on() {
    let mock = MockRealtime::builder()
        .script(Script::new().no_fallback())
        .start()
        .await
        .unwrap();
    // Session 1 greets and its TCP connection drops after four deltas (400 ms of audio);
    // session 2 answers the resume request.
    mock.push_session_script(
        Script::new()
            .then(ResponseScript::say(GREETING, 2000).fault(ResponseFault::DropAfterDeltas(4))),
    );
    mock.push_session_script(Script::new().then(ResponseScript::say(BACK, 600)));
    let bridge = Bridge::start(&mock.base_url(), &[]).await;
    let call = bridge.sim.call().connect().await.unwrap();

    let first = session_of(&mock, call.call_sid()).await;
    first.wait_closed(WAIT).await.unwrap();
    let second = mock.wait_for_session(2, WAIT).await.unwrap();
    let done = second
        .wait_for_response_done(1, WAIT)
        .await
        .expect("the new session answers");
    assert_eq!(done.status, "completed");

    // The new session got its configuration, then exactly the conversation as heard (the
    // greeting as far as it had streamed), then one request to pick up.
    let heard_text = transcript_sent(&first);
    assert!(!heard_text.is_empty() && GREETING.starts_with(&heard_text) && heard_text != GREETING);
    let events = client_events(&second);
    assert_eq!(events[0]["type"], "session.update", "{events:#?}");
    assert_eq!(
        events[1..],
        [
            json!({"type": "conversation.item.create", "item": {
                "type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": heard_text}]}}),
            json!({"type": "response.create", "response": {"instructions": DEFAULT_RESUME}}),
        ],
        "{events:#?}"
    );
    assert_eq!(
        second.session_config()["instructions"],
        first.session_config()["instructions"],
        "the same prompt"
    );

    // The caller heard the first session's audio, the hold tone during the gap (whole clips),
    // then the new session's voice.
    let before = first.assistant_items()[0].audio.clone();
    let after = second.assistant_items()[0].audio.clone();
    assert_eq!(before.len(), 3200);
    let clip = hold_clip();
    let total = before.len() + clip.len() + after.len();
    call.wait_heard(total, WAIT).await.unwrap();
    call.wait_playout_idle(WAIT).await.unwrap();
    let heard = call.heard();
    assert!(
        heard.starts_with(&before),
        "the first session's audio first"
    );
    assert!(heard.ends_with(&after), "the new session's voice last");
    let gap = &heard[before.len()..heard.len() - after.len()];
    assert!(
        !gap.is_empty() && gap.len() % clip.len() == 0 && gap.chunks(clip.len()).all(|c| c == clip),
        "the gap is filled with the hold tone: {} bytes",
        gap.len()
    );
    assert!(second.violations().is_empty(), "{:?}", second.violations());
    assert!(call.violations().is_empty(), "{:?}", call.violations());

    // The call goes on until the caller hangs up; every session is closed.
    call.stop(WAIT).await.unwrap();
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up", "{:?}", ended.line);
    second.wait_closed(WAIT).await.unwrap();
    let sessions = mock.sessions();
    assert_eq!(sessions.len(), 2);
    assert!(
        sessions.iter().all(|s| s.closed().is_some()),
        "a session leaked"
    );
    report(
        "reconnect",
        &format!(
            "dropped after 400 ms of greeting; gap filled with {} hold clip(s); replayed {:?}",
            gap.len() / clip.len(),
            heard_text
        ),
    );
    bridge.finish().await;
}

#[tokio::test]
async fn an_agent_refusing_the_reconnect_ends_the_call_into_the_fallback() {
    let mut failed = 0.0;
    for (status, refusals) in [(401, 1), (503, 3)] {
        let mock = MockRealtime::builder()
            .script(Script::new().no_fallback())
            .start()
            .await
            .unwrap();
        mock.push_session_script(
            Script::new()
                .then(ResponseScript::say(GREETING, 2000).fault(ResponseFault::DropAfterDeltas(2))),
        );
        for _ in 0..refusals {
            mock.push_refusal(status);
        }
        let bridge = Bridge::start(
            &mock.base_url(),
            &[
                ("PHONE_AGENT_OPENAI__CONNECT_ATTEMPTS", "1"),
                ("PHONE_AGENT_RECONNECT__ATTEMPTS", "3"),
                ("PHONE_AGENT_RECONNECT__BACKOFF_MS", "10"),
                ("PHONE_AGENT_RECONNECT__MAX_BACKOFF_MS", "20"),
            ],
        )
        .await;
        let call = bridge.sim.call().connect().await.unwrap();
        let first = session_of(&mock, call.call_sid()).await;
        first.wait_closed(WAIT).await.unwrap();
        call.wait_closed(WAIT).await.unwrap();
        let ended = logs().call_ended(call.call_sid(), WAIT).await;
        assert_eq!(ended.end_reason, "agent_failed", "{:?}", ended.line);
        assert!(
            ended
                .end_detail
                .starts_with("the agent connection was lost and could not be restored"),
            "{:?}",
            ended.line
        );
        // 401 is not retried; 503 is, up to the attempts.
        let refused = mock.refused_upgrades();
        assert_eq!(refused.len(), refusals, "{refused:?}");
        assert!(refused.iter().all(|r| r.status == status));
        // No session leaked: the one opened was closed.
        let sessions = mock.sessions();
        assert_eq!(sessions.len(), 1);
        assert!(sessions.iter().all(|s| s.closed().is_some()));
        // The caller hears the fallback line.
        let after = after_stream(&bridge, call.call_sid()).await;
        assert!(
            matches!(&after.verbs[0], Verb::Say { text, .. }
                if text == phone_agent_server::config::DEFAULT_FALLBACK_SAY),
            "{after:?}"
        );
        assert!(after.hangs_up());
        failed += 1.0;
        assert_eq!(
            metric(
                &bridge,
                "phone_agent_agent_reconnects_total{outcome=\"failed\"}"
            )
            .await,
            failed
        );
        bridge.finish().await;
    }
}

/// The `n`-th (1-based) mock session of `call_sid` (a reconnect opens a second one).
async fn nth_session_of(mock: &MockRealtime, call_sid: &str, nth: usize) -> SessionHandle {
    let needle = format!("on call {call_sid} ");
    let mut found = 0;
    for n in 1.. {
        let session = mock
            .wait_for_session(n, WAIT)
            .await
            .unwrap_or_else(|e| panic!("no session #{nth} for {call_sid}: {e}"));
        let update = session
            .wait_for_event_type("session.update", WAIT)
            .await
            .expect("the bridge configures every session");
        if update.raw.contains(&needle) {
            found += 1;
            if found == nth {
                return session;
            }
        }
    }
    unreachable!("`1..` is endless")
}

/// What happened to one call of the chaos run.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
enum Outcome {
    /// No drop: the call ran and the caller hung up.
    Normal,
    /// The agent dropped; the caller heard the hold tone, then the new session; the call went
    /// on until the caller hung up.
    ContinuedAfterReconnect,
}

/// 100 concurrent calls, the agent's TCP connection dropped on 30 of them while it greets:
/// every dropped call continues after a reconnect (hold tone in the gap, then the fresh
/// session's voice), every call ends with the caller hanging up, and no agent session is left
/// open. Figures: the longest silence a caller heard between the first agent audio and the
/// end of the reconnected session's answer.
#[tokio::test]
async fn a_hundred_calls_with_agent_drops_on_thirty_percent_continue() {
    const CALLS: usize = 100;
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say(GREETING, 600))
                .no_fallback(),
        )
        .start()
        .await
        .unwrap();
    let bridge = Bridge::start(&mock.base_url(), &[]).await;
    let clip = hold_clip();
    let mut tasks = Vec::new();
    for i in 0..CALLS {
        let drop = i % 10 < 3;
        let call = bridge.sim.call().connect().await.unwrap();
        let mock = mock.clone();
        let clip = clip.clone();
        tasks.push(tokio::spawn(async move {
            let first = nth_session_of(&mock, call.call_sid(), 1).await;
            let mut silence = Duration::ZERO;
            let outcome = if drop {
                first
                    .wait_for_server_event("response.output_audio.delta", 1, WAIT)
                    .await
                    .unwrap();
                first.drop_connection();
                first.wait_closed(WAIT).await.unwrap();
                let second = nth_session_of(&mock, call.call_sid(), 2).await;
                second.wait_for_response_done(1, WAIT).await.unwrap();
                // What the mock wrote just before the drop may be lost with the connection:
                // the caller heard a prefix of the greeting, then the hold tone, then all of
                // the new session's answer.
                let before = first.all_assistant_audio();
                let after = second.all_assistant_audio();
                let mut heard = call
                    .wait_heard(clip.len() + after.len(), WAIT)
                    .await
                    .unwrap();
                while !heard.ends_with(&after) {
                    heard = call.wait_heard(heard.len() + 1, WAIT).await.unwrap();
                }
                let greeting = heard.len() - after.len() - clip.len();
                let greeting = (0..=greeting)
                    .rev()
                    .find(|&n| {
                        before.starts_with(&heard[..n])
                            && (heard.len() - after.len() - n) % clip.len() == 0
                    })
                    .expect("a prefix of the greeting first");
                // (Nothing of it when the drop came before the first delta reached us.)
                let gap = &heard[greeting..heard.len() - after.len()];
                assert!(
                    !gap.is_empty()
                        && gap.len() % clip.len() == 0
                        && gap.chunks(clip.len()).all(|c| c == clip),
                    "call {i}: the gap is not the hold tone ({} bytes)",
                    gap.len()
                );
                let segments = call.played_segments();
                for pair in segments.windows(2) {
                    let quiet = pair[1]
                        .starts_at
                        .saturating_duration_since(pair[0].ends_at());
                    silence = silence.max(quiet);
                }
                Outcome::ContinuedAfterReconnect
            } else {
                first.wait_for_response_done(1, WAIT).await.unwrap();
                call.wait_heard(first.all_assistant_audio().len(), WAIT)
                    .await
                    .unwrap();
                Outcome::Normal
            };
            call.stop(WAIT).await.unwrap();
            let ended = logs().call_ended(call.call_sid(), WAIT).await;
            assert_eq!(
                ended.end_reason, "caller_hung_up",
                "call {i}: {:?}",
                ended.line
            );
            (outcome, silence)
        }));
    }
    let mut normal = 0;
    let mut continued = 0;
    let mut longest = Duration::ZERO;
    for task in tasks {
        let (outcome, silence) = task.await.unwrap();
        match outcome {
            Outcome::Normal => normal += 1,
            Outcome::ContinuedAfterReconnect => continued += 1,
        }
        longest = longest.max(silence);
    }
    assert_eq!((normal, continued), (70, 30));
    // No leaked session: every session the mock opened was closed (30 of them twice over).
    let sessions = mock.sessions();
    assert_eq!(sessions.len(), CALLS + 30);
    for session in &sessions {
        session.wait_closed(WAIT).await.unwrap();
    }
    report(
        "chaos: 100 calls, agent TCP drop on 30 %",
        &format!(
            "{normal} normal, {continued} continued after reconnect, 0 ended into the \
             fallback, 0 dead-air calls (every gap filled with the hold tone), {} sessions \
             opened = closed; longest silence heard in a dropped call {:.0} ms",
            sessions.len(),
            longest.as_secs_f64() * 1e3
        ),
    );
    bridge.finish().await;
}

/// Session-cap recycling through the server (`reconnect.recycle_after_secs = 1`),
/// make-before-break: a standby session is opened when the session is due, and after the
/// greeting, at the pause, the old session is closed properly and the standby gets the
/// conversation (no hold tone, no resume request); every switch left the caller no gap;
/// every caller frame reached exactly one session, in order, byte for byte.
#[tokio::test]
async fn a_session_is_recycled_at_a_pause_and_no_caller_audio_is_lost() {
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say(GREETING, 300))
                .no_fallback(),
        )
        .start()
        .await
        .unwrap();
    let bridge = Bridge::start(
        &mock.base_url(),
        &[("PHONE_AGENT_RECONNECT__RECYCLE_AFTER_SECS", "1")],
    )
    .await;
    let call = bridge
        .sim
        .call()
        .stamp_frames(true)
        .connect()
        .await
        .unwrap();
    let first = nth_session_of(&mock, call.call_sid(), 1).await;
    let second = nth_session_of(&mock, call.call_sid(), 2).await;
    let closed = first.wait_closed(WAIT).await.unwrap();
    assert!(
        matches!(
            closed.by,
            testkit::openai::ClosedBy::ClientClose {
                code: Some(1000),
                ..
            }
        ),
        "the old session is closed properly: {closed:?}"
    );
    second.wait_for_received_audio(1600, WAIT).await.unwrap();
    let events = client_events(&second);
    assert_eq!(
        events[1..],
        [json!({"type": "conversation.item.create", "item": {
            "type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": GREETING}]}})],
        "{events:#?}"
    );
    let heard_greeting = first.all_assistant_audio();
    call.stop(WAIT).await.unwrap();
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up", "{:?}", ended.line);
    // Every session of the call, in order (a slow run may recycle more than once).
    let mut received = Vec::new();
    let mut sessions = 0;
    for session in mock.sessions() {
        let update = session
            .wait_for_event_type("session.update", WAIT)
            .await
            .unwrap();
        if update
            .raw
            .contains(&format!("on call {} ", call.call_sid()))
        {
            session.wait_closed(WAIT).await.unwrap();
            received.extend(session.received_audio());
            sessions += 1;
        }
    }
    assert!(sessions >= 2);
    assert_eq!(
        received,
        expected_caller_audio(&call, &[]),
        "caller frames lost or repeated across the switch"
    );
    // The caller heard the greeting once and no hold tone.
    assert_eq!(call.heard(), heard_greeting);
    assert_switches_left_no_gap(call.call_sid());
    bridge.finish().await;
}

/// Every recycle of the call was make-before-break: the standby was ready before the old
/// session was closed, so the caller waited for nothing at the switch (`gap_ms` 0).
fn assert_switches_left_no_gap(call_sid: &str) {
    let recycled: Vec<_> = logs()
        .for_call(call_sid)
        .into_iter()
        .filter(|l| l["message"] == "agent session recycled; conversation replayed")
        .collect();
    assert!(!recycled.is_empty(), "no recycle logged");
    assert!(recycled.iter().all(|l| l["gap_ms"] == 0), "{recycled:#?}");
}
