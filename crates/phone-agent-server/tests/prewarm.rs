//! Pre-warmed agent sessions (issue 10, "Also"): `/voice` opens the call's Realtime session,
//! the call's stream claims it; unclaimed ones are closed after the stream token's lifetime;
//! a failed pre-warm leaves the call to connect at stream start as before.

mod common;

use common::{FakeTwilio, TestServer, WAIT, post_voice, start, stream_parameters};
use phone_agent_server::PrewarmCounts;
use testkit::openai::{ClientEventKind, ClosedBy, MockRealtime, ResponseScript, Script};

const PROMPT: &str = "You answer call {{call_sid}} from {{from}}.";

async fn server(mock: &MockRealtime, extra: &[(&str, &str)]) -> TestServer {
    let prompt = common::prompt_file(PROMPT);
    let base = mock.base_url();
    let mut vars = vec![
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
        ("PHONE_AGENT_AGENT__PREWARM", "true"),
    ];
    vars.extend_from_slice(extra);
    start(&vars).await
}

fn greeting_mock() -> Script {
    Script::new().then(ResponseScript::say("Hello from the pre-warmed agent.", 400))
}

/// The session is opened and configured (with the prompt rendered for this call) when `/voice`
/// answers, before the stream starts; the stream takes it over: the mock sees exactly one
/// session, and the greeting comes out of it.
#[tokio::test]
async fn the_calls_stream_claims_the_session_prewarmed_at_voice() {
    let mock = MockRealtime::builder()
        .script(greeting_mock())
        .start()
        .await
        .unwrap();
    let server = server(&mock, &[]).await;
    let sid = "CA00000000000000000000000000000301";
    let (status, twiml) = post_voice(&server, sid, None).await;
    assert_eq!(status, 200, "{twiml}");

    // Before any stream: the session is open and configured for this call.
    let session = mock.wait_for_session(1, WAIT).await.unwrap();
    let update = session
        .wait_for_event_type("session.update", WAIT)
        .await
        .unwrap();
    let ClientEventKind::SessionUpdate { session: update } = &update.kind else {
        panic!("not a session.update: {update:?}");
    };
    assert_eq!(
        update["instructions"],
        format!("You answer call {sid} from +14155551234.")
    );

    let mut twilio = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    assert!(
        twilio.read_until_audio(|a| a.len() >= 400 * 8).await,
        "the greeting is heard"
    );
    assert_eq!(mock.sessions().len(), 1, "no second session");
    let types: Vec<String> = session
        .client_events()
        .iter()
        .map(|e| e.event_type().to_owned())
        .collect();
    assert_eq!(
        types.iter().filter(|t| *t == "session.update").count(),
        1,
        "{types:?}"
    );
    assert_eq!(
        server.handle.prewarm_counts(),
        PrewarmCounts {
            started: 1,
            claimed: 1,
            expired: 0,
            failed: 0
        }
    );
    twilio.stop(sid).await;
    assert!(matches!(
        session.wait_closed(WAIT).await.unwrap().by,
        ClosedBy::ClientClose { .. }
    ));
}

/// A call whose stream never comes here (it hung up, or its stream went to another instance):
/// its pre-warmed session is closed once the stream token expired, and counted as expired.
#[tokio::test]
async fn an_unclaimed_prewarmed_session_is_closed_after_the_token_lifetime() {
    let mock = MockRealtime::start().await.unwrap();
    let server = server(&mock, &[("PHONE_AGENT_TWILIO__STREAM_TOKEN_TTL_SECS", "1")]).await;
    let (status, _) = post_voice(&server, "CA00000000000000000000000000000302", None).await;
    assert_eq!(status, 200);
    let session = mock.wait_for_session(1, WAIT).await.unwrap();
    let closed = session.wait_closed(WAIT).await.unwrap();
    assert_eq!(
        closed.by,
        ClosedBy::ClientClose {
            code: Some(1000),
            reason: "call ended".into()
        }
    );
    assert_eq!(
        server.handle.prewarm_counts(),
        PrewarmCounts {
            started: 1,
            claimed: 0,
            expired: 1,
            failed: 0
        }
    );
}

/// A pre-warm that fails (the agent refused the upgrade, no retry left) is no failed call: the
/// stream connects as without pre-warming, and the caller hears the greeting.
#[tokio::test]
async fn a_failed_prewarm_connects_at_stream_start() {
    let mock = MockRealtime::builder()
        .script(greeting_mock())
        .start()
        .await
        .unwrap();
    mock.refuse_next_upgrades(1, 503);
    let server = server(&mock, &[("PHONE_AGENT_OPENAI__CONNECT_ATTEMPTS", "1")]).await;
    let sid = "CA00000000000000000000000000000303";
    let (_, twiml) = post_voice(&server, sid, None).await;
    mock.wait_for_refused_upgrade(1, WAIT).await.unwrap();
    let mut twilio = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    assert!(
        twilio.read_until_audio(|a| a.len() >= 400 * 8).await,
        "the greeting is heard"
    );
    assert_eq!(mock.sessions().len(), 1);
    assert_eq!(mock.refused_upgrades().len(), 1);
    assert_eq!(
        server.handle.prewarm_counts(),
        PrewarmCounts {
            started: 1,
            claimed: 0,
            expired: 0,
            failed: 1
        }
    );
    twilio.stop(sid).await;
}

/// Behind a load balancer without affinity the stream reaches another instance: that one
/// connects its own session as usual, and the first instance closes its unclaimed one.
#[tokio::test]
async fn a_stream_on_another_instance_connects_there_and_the_prewarm_expires() {
    let mock = MockRealtime::builder()
        .script(greeting_mock().fallback(ResponseScript::say("Hello again.", 400)))
        .start()
        .await
        .unwrap();
    let shared = [
        ("PHONE_AGENT_TWILIO__STREAM_TOKEN_TTL_SECS", "2"),
        (
            "PHONE_AGENT_TWILIO__STREAM_TOKEN_SECRET",
            "a-secret-both-instances-share-0123456789",
        ),
    ];
    let a = server(&mock, &shared).await;
    let b = server(&mock, &shared).await;
    let sid = "CA00000000000000000000000000000304";
    let (_, twiml) = post_voice(&a, sid, None).await;
    let prewarmed = mock.wait_for_session(1, WAIT).await.unwrap();
    let mut twilio = FakeTwilio::open(&b, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    assert!(twilio.read_until_audio(|a| a.len() >= 400 * 8).await);
    assert_eq!(mock.sessions().len(), 2, "instance B connected its own");
    prewarmed.wait_closed(WAIT).await.unwrap();
    assert_eq!(a.handle.prewarm_counts().expired, 1);
    assert_eq!(b.handle.prewarm_counts(), PrewarmCounts::default());
    twilio.stop(sid).await;
}
