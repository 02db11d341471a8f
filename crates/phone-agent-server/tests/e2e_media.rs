//! End to end, one call at a time: the real server between the mock OpenAI Realtime server and
//! the simulated Twilio call with real playout. Exact audio both ways (with an agent that is
//! slow to connect), barge-ins truncated at what the caller heard, hang-ups, and an agent that
//! dies mid-call.
//!
//! Measurements are printed (`cargo test -p phone-agent-server --test e2e_media -- --nocapture`).
#![allow(clippy::print_stderr)]

mod e2e_support;

use std::time::Duration;

use e2e_support::{
    Bridge, GatedProxy, WAIT, assert_caller_audio_relayed, assert_clean, attribute_segments, logs,
    ms, report, say, session_of, summary, turn_latencies,
};
use testkit::audio;
use testkit::openai::{MockRealtime, ResponseScript, Script};
use testkit::twilio::CallEvent;
use tokio::time::Instant;

fn is_media_sent(e: &CallEvent) -> bool {
    matches!(e, CallEvent::MediaSent { .. })
}

/// The greeting reaches the caller byte-identical and is heard in full; the caller's audio
/// reaches the agent byte-identical and in order from the very first frame, although the agent
/// connection was held until half a second of caller audio had been sent.
#[tokio::test]
async fn audio_is_byte_identical_both_ways_even_when_the_agent_is_slow_to_connect() {
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say(
                    "Thanks for calling, how can I help?",
                    1000,
                ))
                .then(ResponseScript::say("Sure, one moment.", 600)),
        )
        .start()
        .await
        .unwrap();
    let proxy = GatedProxy::start(mock.addr()).await;
    let bridge = Bridge::start(&proxy.base_url(), &[]).await;
    let call = bridge
        .sim
        .call()
        .stamp_frames(true)
        .connect()
        .await
        .unwrap();
    let mut queued = Vec::new();

    // 25 caller frames (500 ms) go out while the agent connection is held.
    call.wait_for_nth(is_media_sent, 25, WAIT).await.unwrap();
    assert!(mock.sessions().is_empty(), "the agent is still connecting");
    let opened_at = Instant::now();
    proxy.open();
    let session = session_of(&mock, call.call_sid()).await;

    // The greeting: every byte the mock spoke reaches the caller, in order, and is heard.
    let greeting = session.wait_for_response_done(1, WAIT).await.unwrap();
    assert_eq!(greeting.status, "completed");
    let item1 = session.assistant_items()[0].clone();
    assert_eq!(item1.audio.len(), 8000);
    call.wait_received_audio(item1.audio.len(), WAIT)
        .await
        .unwrap();
    call.wait_playout_idle(WAIT).await.unwrap();
    assert_eq!(call.received_audio(), item1.audio);
    assert_eq!(
        call.heard(),
        item1.audio,
        "the caller heard the whole greeting"
    );

    // The caller speaks; the answer is relayed just as exactly.
    queued.extend(say(&call, audio::speech(300)));
    let answer = session.wait_for_response_done(2, WAIT).await.unwrap();
    assert_eq!(answer.status, "completed");
    let items = session.assistant_items();
    assert_eq!(items.len(), 2);
    let all: Vec<u8> = [items[0].audio.clone(), items[1].audio.clone()].concat();
    call.wait_received_audio(all.len(), WAIT).await.unwrap();
    call.wait_playout_idle(WAIT).await.unwrap();
    assert_eq!(call.heard(), all);
    assert_eq!(
        attribute_segments(&call, &items).len(),
        call.played_segments().len()
    );

    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    let ended = logs().call_ended(call.call_sid(), WAIT).await;
    assert_eq!(ended.end_reason, "caller_hung_up", "{:?}", ended.line);

    // Caller → agent: byte-identical, in order, nothing lost while the agent connected.
    let early = call
        .timeline()
        .iter()
        .filter(|e| is_media_sent(&e.event) && e.at < opened_at)
        .count();
    assert!(
        early >= 25,
        "{early} frames sent before the agent connected"
    );
    let first_append = session
        .wait_for_event_type("input_audio_buffer.append", WAIT)
        .await
        .unwrap();
    assert!(first_append.at >= opened_at);
    assert_caller_audio_relayed(&call, &session, &queued);
    assert_eq!(
        audio::find_stamps(&session.received_audio()[..160]),
        vec![(0, 1)],
        "the first frame the agent got is the caller's first frame"
    );
    assert_clean(&call, &session);

    let turns = turn_latencies(&call, &session);
    assert_eq!(turns.len(), 1);
    report(
        "slow agent",
        &format!(
            "{early} caller frames ({} ms) buffered before the agent connected, all relayed; \
             caller speech end → first agent audio {:.1} ms (speech_stopped → audio {:.1} ms, \
             mock delta → caller {:.2} ms)",
            early * 20,
            ms(turns[0].speech_end_to_audio),
            ms(turns[0].speech_stopped_to_audio),
            ms(turns[0].delta_to_caller)
        ),
    );
    bridge.finish().await;
}

#[allow(dead_code)]
fn _unused(_: Duration) -> String {
    summary(&[])
}
