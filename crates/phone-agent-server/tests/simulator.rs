//! Production-shaped calls: the test kit's Twilio simulator (signed webhook and upgrade over a
//! public `https://` URL, 20 ms media on the real clock, real playout with mark/clear
//! semantics, strict validation of what we send) against the server and the mock OpenAI.

mod common;

use common::{AUTH_TOKEN, WAIT, contains, start};
use testkit::audio::CallerAudio;
use testkit::openai::{MockRealtime, ResponseScript, Script};
use testkit::twilio::{CallEvent, CallSimulator};

const PUBLIC: &str = "https://bridge.example.com";

#[tokio::test]
async fn greeting_then_barge_in_truncates_at_what_was_heard() {
    let mock = MockRealtime::builder()
        .script(Script::new().then(ResponseScript::say("Welcome to the test line.", 4000)))
        .start()
        .await
        .unwrap();
    let prompt = common::prompt_file("You are a test agent for {{from}}.");
    let base = mock.base_url();
    let server = start(&[
        ("PUBLIC_URL", PUBLIC),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
    ])
    .await;
    let sim = CallSimulator::new(&server.base)
        .public_url(PUBLIC)
        .auth_token(AUTH_TOKEN);
    let call = sim.call().connect().await.expect("the call connects");
    let session = mock.wait_for_session(1, WAIT).await.unwrap();

    // The caller hears the greeting exactly as the agent produced it.
    let heard = call.wait_heard(400 * 8, WAIT).await.unwrap();
    let spoken = session.all_assistant_audio();
    assert_eq!(heard[..], spoken[..heard.len()]);

    // The caller talks over it: the queue is cleared and the item truncated at what was heard.
    call.send_audio(CallerAudio::new().speech(600).silence(800).into_bytes());
    call.wait_for(|e| matches!(e, CallEvent::ClearReceived { .. }), WAIT)
        .await
        .unwrap();
    let truncation = session.wait_for_truncation(1, WAIT).await.unwrap();
    assert!(truncation.accepted, "{truncation:?}");
    let heard_ms = call.heard().len() as u64 / 8;
    assert!(
        truncation.audio_end_ms <= heard_ms + 20,
        "{truncation:?} vs heard {heard_ms} ms"
    );
    assert!(truncation.audio_end_ms < 4000);

    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    assert!(call.violations().is_empty(), "{:?}", call.violations());
    assert!(
        session.violations().is_empty(),
        "{:?}",
        session.violations()
    );
}

#[tokio::test]
async fn echo_agent_over_a_real_paced_call() {
    let server = start(&[("PUBLIC_URL", PUBLIC), ("TWILIO_AUTH_TOKEN", AUTH_TOKEN)]).await;
    let sim = CallSimulator::new(&server.base)
        .public_url(PUBLIC)
        .auth_token(AUTH_TOKEN);
    let call = sim.call().connect().await.expect("the call connects");

    // The greeting tone plays, then the caller's words come back once they pause.
    call.wait_heard(300 * 8, WAIT).await.unwrap();
    let speech = testkit::audio::speech(500);
    call.send_audio(CallerAudio::new().mulaw(&speech).silence(900).into_bytes());
    let is_media = |e: &CallEvent| matches!(e, CallEvent::MediaReceived { .. });
    let greeting_pieces = call.count_events(is_media);
    // The first piece of the playback arrives; the rest of it is in the same burst.
    call.wait_for_nth(is_media, greeting_pieces + 1, WAIT)
        .await
        .unwrap();
    call.wait_playout_idle(WAIT).await.unwrap();
    assert!(
        contains(&call.heard(), &speech),
        "the caller hears their own words"
    );
    call.stop(WAIT).await.unwrap();
    assert!(call.violations().is_empty(), "{:?}", call.violations());
}

#[tokio::test]
async fn unsigned_and_forged_calls_are_refused() {
    let mock = MockRealtime::start().await.unwrap();
    let prompt = common::prompt_file("hi");
    let base = mock.base_url();
    let server = start(&[
        ("PUBLIC_URL", PUBLIC),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
    ])
    .await;
    let forged = CallSimulator::new(&server.base)
        .public_url(PUBLIC)
        .auth_token("not-the-token");
    let placed = forged.call().place().await.unwrap();
    assert_eq!(placed.status(), 403);
    let unsigned = CallSimulator::new(&server.base).public_url(PUBLIC);
    assert_eq!(unsigned.call().place().await.unwrap().status(), 403);
    assert!(mock.sessions().is_empty());
}
