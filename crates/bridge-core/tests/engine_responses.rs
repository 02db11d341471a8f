//! One response at a time: a requested response is tracked until it starts, a second request
//! waits for the first one's end, a refused request is retried, failed responses are retried
//! once and then apologized for, and an agent error before the session is ready ends the call
//! at once.

mod engine_support;

use bridge_core::agent::ResponseStatus;
use bridge_core::engine::{CallConfig, DtmfMode};
use engine_support::*;

fn respond_to_dtmf() -> CallConfig {
    CallConfig {
        dtmf: DtmfMode::ForwardAndRespond,
        ..quiet_config()
    }
}

#[test]
fn second_response_request_waits_for_the_first_to_be_done() {
    let mut s = Scenario::ready(respond_to_dtmf(), REALTIME);
    s.check(&[
        (
            0,
            tool_call("c1", "lookup", None),
            &["event tool-started c1 lookup", "run c1 lookup {} for CA1"],
        ),
        (
            10,
            dtmf('1'),
            &[
                "A context \"The caller pressed 1 on the keypad.\"",
                "A respond",
            ],
        ),
        // Within a round trip of that request (no `response.created` yet): held back, not
        // refused by the agent.
        (
            20,
            tool_done("c1", "{}", None),
            &["A tool-result c1 {}", "event tool-finished c1 20ms"],
        ),
        (60, response_started("r1"), &[]),
        (
            200,
            response_done("r1", ResponseStatus::Completed),
            &["A respond"],
        ),
    ]);
}

#[test]
fn refused_response_request_is_retried_after_the_running_response() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.step(0, tool_call("c1", "lookup", None));
    s.check(&[
        (
            10,
            tool_done("c1", "{}", None),
            &[
                "A tool-result c1 {}",
                "event tool-finished c1 10ms",
                "A respond",
            ],
        ),
        // The agent had started a response of its own; ours is refused.
        (20, response_started("own"), &[]),
        (
            30,
            agent_error(
                Some("conversation_already_has_active_response"),
                "Conversation already has an active response in progress: own.",
            ),
            &[
                "event error Agent \"Conversation already has an active response in progress: own.\"",
            ],
        ),
        (500, response_done("own", ResponseStatus::Completed), &["A respond"]),
    ]);
}

#[test]
fn refused_request_before_any_response_start_is_retried_after_the_next_done() {
    let mut s = Scenario::ready(respond_to_dtmf(), REALTIME);
    s.step(0, dtmf('5'));
    s.check(&[
        (
            10,
            agent_error(Some("conversation_already_has_active_response"), "busy"),
            &["event error Agent \"busy\""],
        ),
        (20, response_started("own"), &[]),
        (
            90,
            response_done("own", ResponseStatus::Completed),
            &["A respond"],
        ),
    ]);
}

#[test]
fn failed_response_is_retried_once_then_the_apology_is_requested() {
    let config = CallConfig {
        greeting: Some("Say hello.".into()),
        apology: Some("Say sorry.".into()),
        ..quiet_config()
    };
    let mut s = Scenario::new(config);
    s.step(0, started());
    s.step(0, In::Connected(REALTIME));
    assert_eq!(s.cmds(0, ready()), ["A respond \"Say hello.\""]);
    s.step(10, response_started("r1"));
    assert_eq!(
        s.step(
            20,
            response_done("r1", ResponseStatus::Failed("server_error".into()))
        ),
        [
            "event error Agent \"response r1 failed: server_error\"",
            "A respond \"Say hello.\"",
        ]
    );
    s.step(30, response_started("r2"));
    assert_eq!(
        s.cmds(
            40,
            response_done("r2", ResponseStatus::Failed("server_error".into()))
        ),
        ["A respond \"Say sorry.\""]
    );
    s.step(50, response_started("r3"));
    // The apology failed too: nothing more is asked (no loop), the error is reported.
    assert_eq!(
        s.cmds(
            60,
            response_done("r3", ResponseStatus::Failed("server_error".into()))
        ),
        Vec::<String>::new()
    );
    // A completed response resets the count.
    s.step(70, response_started("r4"));
    s.step(80, response_done("r4", ResponseStatus::Completed));
    s.step(90, response_started("r5"));
    assert_eq!(
        s.cmds(
            95,
            response_done("r5", ResponseStatus::Failed("server_error".into()))
        ),
        ["A respond"]
    );
}

#[test]
fn failed_response_without_apology_is_retried_once_only() {
    let config = CallConfig {
        apology: None,
        ..quiet_config()
    };
    let mut s = Scenario::ready(config, REALTIME);
    s.step(0, response_started("r1"));
    assert_eq!(
        s.cmds(5, response_done("r1", ResponseStatus::Failed("x".into()))),
        ["A respond"]
    );
    s.step(6, response_started("r2"));
    assert_eq!(
        s.cmds(7, response_done("r2", ResponseStatus::Failed("x".into()))),
        Vec::<String>::new()
    );
}

#[test]
fn agent_error_before_ready_ends_the_call_at_once() {
    let mut s = Scenario::new(quiet_config());
    s.step(0, started());
    s.step(10, In::Connected(REALTIME));
    s.check(&[(
        20,
        agent_error(
            Some("invalid_value"),
            "Invalid value: 'nope'. Supported voices are ...",
        ),
        &[
            "event error Agent \"Invalid value: 'nope'. Supported voices are ...\" fatal",
            "A close",
            "C close",
            "event ended agent_connect_failed",
            "finished agent_connect_failed",
        ],
    )]);
    assert_eq!(s.next_deadline_ms(), None);
}
