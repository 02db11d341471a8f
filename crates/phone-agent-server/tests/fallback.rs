//! Never silent: when the agent fails, the stream ends at once and the TwiML after it plays the
//! configured fallback; a normal end (the agent hung up) skips it.

mod common;

use common::{FakeTwilio, TestServer, WAIT, post_voice, start, stream_parameters};
use testkit::openai::{MockRealtime, ResponseScript, Script};
use testkit::twilio::twiml::{Twiml, Verb};

/// POSTs Twilio's redirect after the stream for `call_sid` and parses the answer.
async fn after_stream(server: &TestServer, call_sid: &str) -> Twiml {
    let r = testkit::http::post_form(
        &server.url("/voice/fallback"),
        &[],
        &common::voice_form(call_sid),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    Twiml::parse(&r.text()).unwrap()
}

/// The `/voice` answer continues after `</Connect>` with a redirect to `/voice/next`.
fn assert_redirects_after_the_stream(server: &TestServer, twiml: &str) {
    let doc = Twiml::parse(twiml).unwrap();
    let redirect = doc
        .verbs
        .iter()
        .skip_while(|v| !matches!(v, Verb::Connect(_)))
        .find_map(|v| match v {
            Verb::Redirect { url, .. } => Some(url.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("nothing after </Connect>: {twiml}"));
    assert_eq!(redirect, server.url("/voice/next"));
}

/// An agent that refuses the connection for good (401) is not retried: the stream ends at once
/// and the caller hears the fallback line, then the call hangs up.
#[tokio::test]
async fn a_permanent_agent_failure_ends_the_stream_and_the_fallback_plays() {
    let mock = MockRealtime::start().await.unwrap();
    mock.refuse_next_upgrades(5, 401);
    let prompt = common::prompt_file("hi");
    let base = mock.base_url();
    let server = start(&[
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("PROMPT_PATH", prompt.to_str().unwrap()),
        ("PHONE_AGENT_OPENAI__CONNECT_ATTEMPTS", "3"),
    ])
    .await;
    let sid = "CA00000000000000000000000000000201";
    let (_, twiml) = post_voice(&server, sid, None).await;
    assert_redirects_after_the_stream(&server, &twiml);
    let mut twilio = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    assert!(twilio.read_until_closed().await, "the stream ends");
    assert_eq!(
        mock.refused_upgrades().len(),
        1,
        "a permanent refusal is not retried"
    );
    let after = after_stream(&server, sid).await;
    assert!(
        matches!(&after.verbs[0], Verb::Say { text, .. }
            if text == phone_agent_server::config::DEFAULT_FALLBACK_SAY),
        "{after:?}"
    );
    assert!(after.hangs_up());
}

/// The fallback can hand the caller to a human instead.
#[tokio::test]
async fn the_fallback_can_dial_a_number() {
    let server = start(&[
        ("PHONE_AGENT_AGENT__BACKEND", "echo"),
        ("PHONE_AGENT_FALLBACK__SAY", "off"),
        ("PHONE_AGENT_FALLBACK__ACTION", "dial"),
        ("PHONE_AGENT_FALLBACK__DIAL", "+15551234567"),
    ])
    .await;
    // A call this instance does not know (it ran elsewhere, or the process restarted): the
    // fallback errs on the side of not leaving the caller in silence.
    let after = after_stream(&server, "CA00000000000000000000000000000202").await;
    assert_eq!(
        after.dial().and_then(|d| d.number.as_deref()),
        Some("+15551234567")
    );
}

/// A tool that asks to hang up.
struct HangUpTool;

#[async_trait::async_trait]
impl bridge_core::tools::ToolExecutor for HangUpTool {
    fn definitions(&self) -> Vec<bridge_core::tools::ToolDefinition> {
        vec![bridge_core::tools::ToolDefinition {
            name: "end_call".into(),
            description: "Ends the call.".into(),
            parameters: serde_json::json!({"type": "object", "properties": {}}),
        }]
    }

    async fn call(
        &self,
        _invocation: bridge_core::tools::ToolInvocation,
    ) -> bridge_core::tools::ToolOutput {
        bridge_core::tools::ToolOutput {
            output: r#"{"ok":true}"#.into(),
            action: Some(bridge_core::tools::CallAction::Hangup),
        }
    }
}

/// When the agent hangs up (without REST call control the server closes the stream), the
/// redirect after the stream just hangs up: no apology after a normal goodbye.
#[tokio::test]
async fn a_normal_end_skips_the_fallback() {
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say("Goodbye then.", 200).then_call("end_call", "{}"))
                .then(ResponseScript::say("Bye!", 200)),
        )
        .start()
        .await
        .unwrap();
    let prompt = common::prompt_file("hi");
    let base = mock.base_url();
    let server = common::start_with_tools(
        &[
            ("OPENAI_API_KEY", "sk-test"),
            ("OPENAI_BASE_URL", base.as_str()),
            ("PROMPT_PATH", prompt.to_str().unwrap()),
        ],
        Some(std::sync::Arc::new(HangUpTool)),
    )
    .await;
    let sid = "CA00000000000000000000000000000203";
    let (_, twiml) = post_voice(&server, sid, None).await;
    let mut twilio = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    assert!(twilio.read_until_closed().await, "the agent hangs up");
    // The call's end is recorded just after its stream closed.
    let ended = async {
        loop {
            let after = after_stream(&server, sid).await;
            if after.verbs.iter().all(|v| matches!(v, Verb::Hangup)) {
                return after;
            }
            tokio::task::yield_now().await;
        }
    };
    let after = tokio::time::timeout(WAIT, ended)
        .await
        .expect("the normal end is recorded and skips the fallback");
    assert_eq!(after.verbs.len(), 1);
}
