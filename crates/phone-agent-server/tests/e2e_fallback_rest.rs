//! Spoken fallback through REST (issue 15, item 3): when the agent cannot come back and
//! Twilio REST is configured, the live call is updated with the `[fallback]` TwiML, so the
//! caller hears it even if the redirect after the stream never runs; the two never both speak.
//! (Its own test binary: the reconnect metrics of `e2e_reconnect.rs` are process-wide.)

mod e2e_support;

use e2e_support::*;
use testkit::openai::{MockRealtime, ResponseFault, ResponseScript, Script};
use testkit::twilio::twiml::{Twiml, Verb};

const GREETING: &str = "Hello, this is Acme. How can I help you today?";

/// POSTs Twilio's redirect after the stream, signed, and parses the answer.
async fn after_stream(bridge: &Bridge, call_sid: &str) -> Twiml {
    let form = vec![
        ("AccountSid", bridge.sim.account().to_owned()),
        ("CallSid", call_sid.to_owned()),
        ("CallStatus", "in-progress".to_owned()),
    ];
    let signature =
        testkit::twilio::signature::sign(AUTH_TOKEN, &format!("{PUBLIC}/voice/next"), &form);
    let r = testkit::http::post_form(
        &format!("http://{}/voice/next", bridge.addr),
        &[("x-twilio-signature", signature.as_str())],
        &form,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    Twiml::parse(&r.text()).unwrap()
}

/// The server with fast agent reconnects (plus `extra`) and Twilio REST at `rest`, and a
/// simulated Twilio that applies the REST updates to its calls.
async fn bridge_with_rest(
    mock: &MockRealtime,
    rest: &testkit::rest::MockTwilioRest,
    extra: &[(&str, &str)],
) -> Bridge {
    let rest_url = rest.base_url();
    let mut env = vec![
        ("PHONE_AGENT_OPENAI__CONNECT_ATTEMPTS", "1"),
        ("PHONE_AGENT_RECONNECT__BACKOFF_MS", "10"),
        ("PHONE_AGENT_RECONNECT__MAX_BACKOFF_MS", "20"),
        ("TWILIO_ACCOUNT_SID", rest.account_sid()),
        ("PHONE_AGENT_TWILIO__REST_BASE_URL", rest_url.as_str()),
    ];
    env.extend_from_slice(extra);
    let mut bridge = Bridge::start(&mock.base_url(), &env).await;
    bridge.sim = testkit::twilio::CallSimulator::new(&format!("http://{}", bridge.addr))
        .public_url(PUBLIC)
        .auth_token(AUTH_TOKEN)
        .account_sid(rest.account_sid())
        .rest(rest);
    bridge
}

/// With Twilio REST configured, an agent that cannot come back (a 401 refusal, or 5xx until
/// the attempts run out) gets the fallback played on the live call through REST: exactly the
/// `[fallback]` TwiML at the REST API, the stream ended, no session left open, and the
/// redirect after the stream (should Twilio run it) hangs up without speaking again.
#[tokio::test]
async fn an_agent_that_cannot_come_back_gets_the_fallback_through_rest() {
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
        let rest = testkit::rest::MockTwilioRest::start().await.unwrap();
        let bridge =
            bridge_with_rest(&mock, &rest, &[("PHONE_AGENT_RECONNECT__ATTEMPTS", "3")]).await;
        let call = bridge.sim.call().connect().await.unwrap();
        let first = session_of(&mock, call.call_sid()).await;
        first.wait_closed(WAIT).await.unwrap();
        let update = rest.wait_for_update(call.call_sid(), WAIT).await.unwrap();
        assert_eq!(
            update.param("Twiml"),
            Some(
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{}</Say><Hangup/></Response>",
                    phone_agent_server::config::DEFAULT_FALLBACK_SAY
                )
                .as_str()
            ),
            "{update:?}"
        );
        assert!(update.succeeded());
        call.wait_closed(WAIT).await.unwrap();
        let ended = logs().call_ended(call.call_sid(), WAIT).await;
        assert_eq!(ended.end_reason, "agent_failed", "{:?}", ended.line);
        assert_eq!(mock.refused_upgrades().len(), refusals);
        let sessions = mock.sessions();
        assert_eq!(sessions.len(), 1);
        assert!(
            sessions.iter().all(|s| s.closed().is_some()),
            "a session leaked"
        );
        // One update only, and the redirect would not speak a second time.
        let updates = rest
            .requests()
            .into_iter()
            .filter(|r| r.call_sid.as_deref() == Some(call.call_sid()))
            .count();
        assert_eq!(updates, 1);
        let after = after_stream(&bridge, call.call_sid()).await;
        assert_eq!(after.verbs, [Verb::Hangup], "{after:?}");
        bridge.finish().await;
    }
}

/// The fallback through REST is never played twice, and never lost: `fallback_pending` is saved
/// before the update is sent. Twilio acts on the update but its answer is late (held at the
/// mock past the 2 s the stream waits): the redirect, should Twilio run it, answers a pause and
/// asks again while the answer is out, then hangs up once Twilio's answer says it took the
/// update. An update Twilio refuses (an error answer) lets the redirect play the fallback.
#[tokio::test]
async fn a_late_rest_answer_never_plays_the_fallback_twice_and_a_refused_one_still_plays_it() {
    let fallback = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{}</Say><Hangup/></Response>",
        phone_agent_server::config::DEFAULT_FALLBACK_SAY
    );
    for late in [true, false] {
        let mock = MockRealtime::builder()
            .script(Script::new().no_fallback())
            .start()
            .await
            .unwrap();
        mock.push_session_script(
            Script::new()
                .then(ResponseScript::say(GREETING, 2000).fault(ResponseFault::DropAfterDeltas(2))),
        );
        mock.push_refusal(401);
        let rest = testkit::rest::MockTwilioRest::start().await.unwrap();
        if late {
            rest.hold_next();
        } else {
            rest.fail_next(400, 21218, "Invalid ApplicationSid");
        }
        let bridge = bridge_with_rest(
            &mock,
            &rest,
            &[
                ("PHONE_AGENT_RECONNECT__ATTEMPTS", "1"),
                // The held answer is released by the test, long before the client gives up.
                ("PHONE_AGENT_TWILIO__REST_TIMEOUT_MS", "30000"),
            ],
        )
        .await;
        let call = bridge.sim.call().connect().await.unwrap();
        let sid = call.call_sid().to_owned();
        let update = rest.wait_for_update(&sid, WAIT).await.unwrap();
        assert_eq!(update.param("Twiml"), Some(fallback.as_str()), "{update:?}");
        call.wait_closed(WAIT).await.unwrap();
        if late {
            // Twilio took the update; its answer has not come: the redirect waits.
            let waiting = after_stream(&bridge, &sid).await;
            assert_eq!(
                waiting.verbs,
                [
                    Verb::Pause { length: Some(1) },
                    Verb::Redirect {
                        url: format!("{PUBLIC}/voice/next"),
                        method: Some("POST".to_owned()),
                    }
                ],
                "{waiting:?}"
            );
            rest.release_held();
            // Twilio follows the redirect again (after the pause) until the answer is in.
            let deadline = tokio::time::Instant::now() + WAIT;
            let after = loop {
                let after = after_stream(&bridge, &sid).await;
                if after.verbs != waiting.verbs {
                    break after;
                }
                assert!(tokio::time::Instant::now() < deadline, "still waiting");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            };
            assert_eq!(after.verbs, [Verb::Hangup], "never twice: {after:?}");
        } else {
            // Refused: the redirect plays the fallback, once.
            let ended = logs().call_ended(&sid, WAIT).await;
            assert_eq!(ended.end_reason, "agent_failed", "{:?}", ended.line);
            let after = after_stream(&bridge, &sid).await;
            assert_eq!(
                after.verbs,
                [
                    Verb::Say {
                        text: phone_agent_server::config::DEFAULT_FALLBACK_SAY.to_owned(),
                        voice: None,
                        language: None,
                    },
                    Verb::Hangup
                ],
                "{after:?}"
            );
        }
        let updates = rest
            .requests()
            .into_iter()
            .filter(|r| r.call_sid.as_deref() == Some(sid.as_str()))
            .count();
        assert_eq!(updates, 1, "one update");
        assert!(
            mock.sessions().iter().all(|s| s.closed().is_some()),
            "a session leaked"
        );
        bridge.finish().await;
    }
}
