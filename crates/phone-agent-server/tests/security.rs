//! Request signatures on `/voice` and on the `/media` upgrade, and the capacity limit. Refused requests must never open an agent session (asserted on the mock
//! OpenAI server).

mod common;

use std::time::Duration;

use common::{AUTH_TOKEN, FakeTwilio, TestServer, WAIT, post_voice, start, stream_parameters};
use testkit::openai::MockRealtime;
use tokio_tungstenite::tungstenite;

async fn realtime_server(mock: &MockRealtime, extra: &[(&str, &str)]) -> TestServer {
    let prompt = common::prompt_file("You answer calls from {{from}}.");
    let base = mock.base_url();
    let mut vars = vec![
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
    ];
    vars.extend_from_slice(extra);
    start(&vars).await
}

fn status_of(result: Result<FakeTwilio, tungstenite::Error>) -> u16 {
    match result {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected upgrade error: {e}"),
    }
}

#[tokio::test]
async fn voice_requires_a_valid_signature() {
    let server = start(&[
        ("PHONE_AGENT_AGENT__BACKEND", "echo"),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
    ])
    .await;
    let sid = "CA00000000000000000000000000000001";
    assert_eq!(
        post_voice(&server, sid, None).await.0,
        403,
        "missing signature"
    );
    assert_eq!(
        post_voice(&server, sid, Some("the-wrong-token")).await.0,
        403,
        "forged signature"
    );
    let (status, body) = post_voice(&server, sid, Some(AUTH_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Stream"));

    // A signature over another URL (e.g. built from the Host header) does not validate.
    let form = common::voice_form(sid);
    let wrong_url = "https://elsewhere.example.com/voice";
    let sig = testkit::twilio::signature::sign(AUTH_TOKEN, wrong_url, &form);
    let r = testkit::http::post_form(
        &server.url("/voice"),
        &[("x-twilio-signature", sig.as_str())],
        &form,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn danger_flag_accepts_unsigned_requests() {
    let server = start(&[
        ("PHONE_AGENT_AGENT__BACKEND", "echo"),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        (
            "PHONE_AGENT_TWILIO__DANGER_SKIP_SIGNATURE_VALIDATION",
            "true",
        ),
    ])
    .await;
    let (status, twiml) = post_voice(&server, "CA00000000000000000000000000000001", None).await;
    assert_eq!(status, 200);
    assert!(FakeTwilio::open(&server, &twiml, false).await.is_ok());
}

#[tokio::test]
async fn account_sid_is_checked() {
    let server = start(&[
        ("PHONE_AGENT_AGENT__BACKEND", "echo"),
        ("TWILIO_ACCOUNT_SID", "AC99999999999999999999999999999999"),
    ])
    .await;
    // The test form comes from account AC…01.
    assert_eq!(
        post_voice(&server, "CA00000000000000000000000000000001", None)
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn media_upgrade_requires_a_valid_signature_and_opens_no_session() {
    let mock = MockRealtime::start().await.unwrap();
    let server = realtime_server(&mock, &[]).await;

    assert_eq!(
        status_of(FakeTwilio::connect(&server, None).await),
        403,
        "missing signature"
    );
    assert_eq!(
        status_of(FakeTwilio::connect(&server, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA=")).await),
        403
    );
    // Signed over the https:// form of the URL (a classic mistake): refused.
    let https = server.media_url().replace("ws://", "https://");
    let sig = testkit::twilio::signature::sign::<&str, &str>(AUTH_TOKEN, &https, &[]);
    assert_eq!(
        status_of(FakeTwilio::connect(&server, Some(&sig)).await),
        403
    );
    assert!(
        mock.sessions().is_empty(),
        "a refused upgrade opened an OpenAI session"
    );

    // The same server with a proper signature and token does open a session.
    let sid = "CA00000000000000000000000000000005";
    let (status, twiml) = post_voice(&server, sid, Some(AUTH_TOKEN)).await;
    assert_eq!(status, 200);
    let mut twilio = FakeTwilio::open(&server, &twiml, true).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    mock.wait_for_session(1, WAIT)
        .await
        .expect("an OpenAI session for the signed call");
    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
}

// The stream token's own checks (path, signature coverage, statelessness, once per CallSid,
// the CallSid at start) are in tests/stream_token.rs.

#[tokio::test]
async fn capacity_limit_rejects_calls_as_busy() {
    let server = start(&[
        ("PHONE_AGENT_AGENT__BACKEND", "echo"),
        ("PHONE_AGENT_SERVER__MAX_CONCURRENT_CALLS", "1"),
    ])
    .await;
    let sid = "CA00000000000000000000000000000009";
    let (_, twiml) = post_voice(&server, sid, None).await;
    let mut call = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    call.start(sid, &stream_parameters(&twiml)).await;
    assert!(call.read_until_audio(|a| !a.is_empty()).await);
    assert_eq!(server.handle.active_calls(), 1);

    // Full: the webhook answers <Reject reason="busy"/>.
    let (status, body) = post_voice(&server, "CA00000000000000000000000000000010", None).await;
    assert_eq!(status, 200);
    let doc = testkit::twilio::twiml::Twiml::parse(&body).unwrap();
    assert_eq!(doc.reject(), Some(Some("busy")), "{body}");

    // Once the call ends there is room again.
    call.stop(sid).await;
    assert!(call.read_until_closed().await);
    let free = async {
        while server.handle.active_calls() != 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), free)
        .await
        .expect("the slot is released");
    let (_, body) = post_voice(&server, "CA00000000000000000000000000000011", None).await;
    assert!(body.contains("<Stream"), "{body}");
}
