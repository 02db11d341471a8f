//! The stream token: stateless (HMAC over CallSid, expiry and account), carried in the stream
//! URL's path so the upgrade's signature covers it, checked before the upgrade is accepted,
//! one stream per CallSid; capacity reserved at `/voice`; idle upgrades never hold call slots.

mod common;

use common::{AUTH_TOKEN, FakeTwilio, WAIT, post_voice, start, stream_parameters, stream_url};
use testkit::openai::MockRealtime;
use tokio_tungstenite::tungstenite;

fn status_of(result: Result<FakeTwilio, tungstenite::Error>) -> u16 {
    match result {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected upgrade error: {e}"),
    }
}

const SECRET: &str = "a-shared-stream-token-secret-of-32b";

/// The token rides in the stream URL's path (covered by the upgrade's signature), not in a
/// `<Parameter>`; a missing, malformed or forged token is refused before the upgrade.
#[tokio::test]
async fn the_token_is_in_the_signed_stream_path_and_checked_before_the_upgrade() {
    let mock = MockRealtime::start().await.unwrap();
    let prompt = common::prompt_file("hi");
    let base = mock.base_url();
    let server = start(&[
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
    ])
    .await;
    let sid = "CA00000000000000000000000000000101";
    let (status, twiml) = post_voice(&server, sid, Some(AUTH_TOKEN)).await;
    assert_eq!(status, 200, "{twiml}");
    let url = stream_url(&twiml);
    let prefix = format!("ws://{}/media/", server.addr);
    assert!(url.starts_with(&prefix), "{url}");
    let token = &url[prefix.len()..];
    assert!(
        !token.is_empty() && !token.contains(['/', '?', '#']),
        "{url}"
    );
    assert!(
        stream_parameters(&twiml).iter().all(|(k, _)| k != "token"),
        "the token is no longer a parameter"
    );

    // Signed, but without the token / with a forged one: 403 before the upgrade.
    let sign = |url: &str| testkit::twilio::signature::sign::<&str, &str>(AUTH_TOKEN, url, &[]);
    let bare = format!("ws://{}/media", server.addr);
    assert_eq!(
        status_of(FakeTwilio::connect_path(server.addr, "/media", Some(&sign(&bare))).await),
        403
    );
    let forged = format!("{prefix}{}x", &token[..token.len() - 1]);
    let forged_path = common::stream_path(&forged);
    assert_eq!(
        status_of(FakeTwilio::connect_path(server.addr, &forged_path, Some(&sign(&forged))).await),
        403
    );
    // A signature over the bare URL does not cover the token's URL.
    let path = common::stream_path(&url);
    assert_eq!(
        status_of(FakeTwilio::connect_path(server.addr, &path, Some(&sign(&bare))).await),
        403
    );
    assert!(
        mock.sessions().is_empty(),
        "refused upgrades open no session"
    );

    // The real one works.
    let mut twilio = FakeTwilio::open(&server, &twiml, true).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    mock.wait_for_session(1, WAIT).await.unwrap();
    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
}

/// No in-process state: a token minted by one instance opens the stream on another that shares
/// the secret (a load balancer without affinity), and `require_stream_token` stays on.
#[tokio::test]
async fn a_token_minted_by_another_instance_is_accepted() {
    let vars = [
        ("PHONE_AGENT_AGENT__BACKEND", "echo"),
        ("PHONE_AGENT_TWILIO__STREAM_TOKEN_SECRET", SECRET),
    ];
    let a = start(&vars).await;
    let b = start(&vars).await;
    let sid = "CA00000000000000000000000000000102";
    let (_, twiml) = post_voice(&a, sid, None).await;
    let mut twilio = FakeTwilio::open(&b, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    assert!(
        twilio.read_until_audio(|a| !a.is_empty()).await,
        "the call is up on the other instance"
    );
    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
}

/// Each CallSid's stream is accepted once per instance: a replayed stream URL is refused
/// before the upgrade.
#[tokio::test]
async fn a_calls_stream_is_accepted_once() {
    let server = start(&[("PHONE_AGENT_AGENT__BACKEND", "echo")]).await;
    let sid = "CA00000000000000000000000000000103";
    let (_, twiml) = post_voice(&server, sid, None).await;
    let mut first = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    first.start(sid, &stream_parameters(&twiml)).await;
    assert!(first.read_until_audio(|a| !a.is_empty()).await);
    assert_eq!(
        status_of(FakeTwilio::open(&server, &twiml, false).await),
        403,
        "a replayed stream URL is refused before the upgrade"
    );
    first.stop(sid).await;
    assert!(first.read_until_closed().await);
}

/// The token is bound to its CallSid: a stream whose `start` names another call is refused
/// before any agent session opens.
#[tokio::test]
async fn a_token_for_another_call_is_refused_at_start() {
    let mock = MockRealtime::start().await.unwrap();
    let prompt = common::prompt_file("hi");
    let base = mock.base_url();
    let server = start(&[
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
    ])
    .await;
    let (_, twiml) = post_voice(&server, "CA00000000000000000000000000000104", None).await;
    let mut twilio = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    twilio
        .start(
            "CA00000000000000000000000000000105",
            &stream_parameters(&twiml),
        )
        .await;
    assert!(twilio.read_until_closed().await, "refused");
    assert!(mock.sessions().is_empty());
}

/// Upgrades that never send `start` wait in their own bounded pool: they hold no call slot,
/// so real callers are not told "busy" — and past that pool's cap they are refused (503).
#[tokio::test]
async fn idle_upgrades_hold_no_call_slot() {
    let server = start(&[
        ("PHONE_AGENT_AGENT__BACKEND", "echo"),
        ("PHONE_AGENT_TWILIO__REQUIRE_STREAM_TOKEN", "false"),
        ("PHONE_AGENT_SERVER__MAX_CONCURRENT_CALLS", "1"),
        ("PHONE_AGENT_SERVER__MAX_PENDING_STREAMS", "1"),
    ])
    .await;
    let idle = FakeTwilio::connect(&server, None).await.unwrap();
    assert_eq!(
        status_of(FakeTwilio::connect(&server, None).await),
        503,
        "the pending pool is full"
    );
    let sid = "CA00000000000000000000000000000106";
    let (_, twiml) = post_voice(&server, sid, None).await;
    assert!(twiml.contains("<Stream"), "not busy: {twiml}");
    drop(idle);
}

/// A caller who was not rejected at `/voice` has a slot waiting at `/media`: the slot is
/// reserved by the webhook, so a second caller is rejected at `/voice` (busy signal) instead of
/// being dropped after the answer.
#[tokio::test]
async fn capacity_is_reserved_at_the_webhook() {
    let server = start(&[
        ("PHONE_AGENT_AGENT__BACKEND", "echo"),
        ("PHONE_AGENT_SERVER__MAX_CONCURRENT_CALLS", "1"),
    ])
    .await;
    let first = "CA00000000000000000000000000000107";
    let (_, twiml) = post_voice(&server, first, None).await;
    assert!(twiml.contains("<Stream"), "{twiml}");
    let (_, second) = post_voice(&server, "CA00000000000000000000000000000108", None).await;
    let doc = testkit::twilio::twiml::Twiml::parse(&second).unwrap();
    assert_eq!(doc.reject(), Some(Some("busy")), "{second}");
    let mut twilio = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    twilio.start(first, &stream_parameters(&twiml)).await;
    assert!(twilio.read_until_audio(|a| !a.is_empty()).await);
    twilio.stop(first).await;
    assert!(twilio.read_until_closed().await);
}
