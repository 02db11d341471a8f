//! Timers on injected time, and the end of a call from every side.

mod engine_support;

use std::time::Duration;

use bridge_core::agent::{AgentEvent, ResponseStatus};
use bridge_core::engine::{CallConfig, EndReason, IdleConfig};
use engine_support::*;

#[test]
fn agent_connect_timeout_before_connection() {
    let config = CallConfig {
        agent_connect_timeout: Duration::from_secs(8),
        ..quiet_config()
    };
    let mut s = Scenario::new(config);
    s.step(0, started());
    assert_eq!(s.next_deadline_ms(), Some(8000));
    assert!(s.step(7999, In::Timeout).is_empty());
    s.check(&[(
        8000,
        In::Timeout,
        &[
            "C close",
            "event ended agent_connect_timeout",
            "finished agent_connect_timeout",
        ],
    )]);
    assert_eq!(s.next_deadline_ms(), None);
}

#[test]
fn agent_connect_timeout_when_connected_but_never_ready_closes_the_agent() {
    let config = CallConfig {
        agent_connect_timeout: Duration::from_secs(8),
        ..quiet_config()
    };
    let mut s = Scenario::new(config);
    s.step(0, started());
    s.step(500, In::Connected(REALTIME));
    s.check(&[(
        8000,
        In::Timeout,
        &[
            "A close",
            "C close",
            "event ended agent_connect_timeout",
            "finished agent_connect_timeout",
        ],
    )]);
}

#[test]
fn ready_disarms_the_connect_timer() {
    let config = CallConfig {
        agent_connect_timeout: Duration::from_secs(8),
        ..quiet_config()
    };
    let mut s = Scenario::new(config);
    s.step(0, started());
    s.step(100, In::Connected(REALTIME));
    s.step(200, ready());
    assert_eq!(s.next_deadline_ms(), None);
}

#[test]
fn agent_connect_failure_closes_the_caller() {
    let mut s = Scenario::new(quiet_config());
    s.step(0, started());
    s.check(&[(
        300,
        In::ConnectFailed("401 unauthorized"),
        &[
            "event error Agent \"401 unauthorized\" fatal",
            "C close",
            "event ended agent_connect_failed",
            "finished agent_connect_failed",
        ],
    )]);
}

#[test]
fn max_duration_ends_the_call() {
    let config = CallConfig {
        max_duration: Some(Duration::from_secs(60)),
        ..quiet_config()
    };
    let mut s = Scenario::ready(config, REALTIME);
    assert_eq!(s.next_deadline_ms(), Some(60_000));
    let out = s.outputs(60_000, In::Timeout);
    assert_eq!(
        out.iter().map(render).collect::<Vec<_>>(),
        [
            "A close",
            "C close",
            "event ended max_duration",
            "finished max_duration"
        ]
    );
    let summary = finished_summary(&out).expect("finished");
    assert_eq!(summary.duration, Duration::from_secs(60));
    assert_eq!(summary.end_reason, Some(EndReason::MaxDuration));
    assert_eq!(summary.call_id.as_deref(), Some("CA1"));
}

#[test]
fn caller_inactivity_ends_the_call() {
    let config = CallConfig {
        caller_inactivity_timeout: Some(Duration::from_secs(10)),
        ..quiet_config()
    };
    let mut s = Scenario::ready(config, REALTIME);
    s.step(1000, caller_audio(1, 160));
    s.step(2000, caller_audio(2, 160));
    // Marks and DTMF are not media.
    s.step(5000, dtmf('1'));
    assert_eq!(s.next_deadline_ms(), Some(12_000));
    s.check(&[(
        12_000,
        In::Timeout,
        &[
            "A close",
            "C close",
            "event ended caller_inactive",
            "finished caller_inactive",
        ],
    )]);
}

#[test]
fn idle_reprompts_once_then_ends() {
    let config = CallConfig {
        idle: Some(IdleConfig {
            timeout: Duration::from_secs(5),
            reprompt: Some("Still there?".into()),
        }),
        ..quiet_config()
    };
    let mut s = Scenario::ready(config, REALTIME);
    // The agent speaks; idle is measured from the moment its audio has been heard.
    s.step(0, response_started("r1"));
    s.step(0, agent_audio("r1", "i1", 1, 160));
    s.step(10, response_done("r1", ResponseStatus::Completed));
    assert_eq!(s.next_deadline_ms(), None);
    s.step(1000, echo(1));
    assert_eq!(s.next_deadline_ms(), Some(6000));
    s.check(&[(
        6000,
        In::Timeout,
        &["event reprompted", "A respond \"Still there?\""],
    )]);
    s.step(6100, response_started("r2"));
    assert_eq!(s.next_deadline_ms(), None);
    s.step(6200, agent_audio("r2", "i2", 2, 160));
    s.step(6300, response_done("r2", ResponseStatus::Completed));
    s.step(7000, echo(2));
    assert_eq!(s.next_deadline_ms(), Some(12_000));
    s.check(&[(
        12_000,
        In::Timeout,
        &["A close", "C close", "event ended idle", "finished idle"],
    )]);
}

#[test]
fn caller_speech_resets_the_idle_timer_and_the_reprompt() {
    let config = CallConfig {
        idle: Some(IdleConfig {
            timeout: Duration::from_secs(5),
            reprompt: Some("Still there?".into()),
        }),
        ..quiet_config()
    };
    let mut s = Scenario::ready(config, REALTIME);
    assert_eq!(s.next_deadline_ms(), Some(5000));
    s.step(5000, In::Timeout);
    s.step(5100, speech_started());
    assert_eq!(s.next_deadline_ms(), None, "caller speaking");
    s.step(6000, speech_stopped());
    assert_eq!(s.next_deadline_ms(), Some(11_000));
    // The reprompt is available again after the caller spoke.
    s.check(&[(
        11_000,
        In::Timeout,
        &["event reprompted", "A respond \"Still there?\""],
    )]);
}

#[test]
fn agent_dies_mid_response() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.step(0, response_started("r1"));
    s.step(0, agent_audio("r1", "i1", 1, 160));
    let out = s.outputs(
        50,
        In::Agent(AgentEvent::Closed {
            reason: "socket reset".into(),
        }),
    );
    assert_eq!(
        out.iter().map(render).collect::<Vec<_>>(),
        [
            "C close",
            "event ended agent_closed",
            "finished agent_closed"
        ]
    );
    let summary = finished_summary(&out).expect("finished");
    assert_eq!(summary.end_detail.as_deref(), Some("socket reset"));
}

#[test]
fn fatal_agent_error_closes_both_sides() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[(
        10,
        In::Agent(AgentEvent::Error {
            code: Some("session_expired".into()),
            message: "expired".into(),
            fatal: true,
        }),
        &[
            "event error Agent \"expired\" fatal",
            "A close",
            "C close",
            "event ended agent_failed",
            "finished agent_failed",
        ],
    )]);
}

#[test]
fn shutdown_ends_cleanly_and_teardown_is_idempotent() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.step(0, tool_call("c1", "slow", None));
    s.check(&[
        (
            10,
            In::Shutdown,
            &[
                "cancel-tools",
                "A close",
                "C close",
                "event ended shutdown",
                "finished shutdown",
            ],
        ),
        (11, In::Shutdown, &[]),
        (12, hangup(), &[]),
        (13, caller_audio(1, 160), &[]),
        (14, agent_audio("r", "i", 1, 160), &[]),
        (15, In::Timeout, &[]),
    ]);
}

#[test]
fn caller_hangup_closes_the_agent() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[(
        10,
        hangup(),
        &[
            "A close",
            "event ended caller_hung_up",
            "finished caller_hung_up",
        ],
    )]);
}

#[test]
fn caller_hangup_before_the_agent_connected() {
    let mut s = Scenario::new(quiet_config());
    s.step(0, started());
    s.check(&[
        (
            10,
            hangup(),
            &["event ended caller_hung_up", "finished caller_hung_up"],
        ),
        (20, In::Connected(REALTIME), &[]),
    ]);
}

#[test]
fn default_config_arms_every_timer() {
    let mut s = Scenario::new(CallConfig::default());
    s.step(0, started());
    // Caller inactivity (10 s) and agent connect (10 s) come first.
    assert_eq!(s.next_deadline_ms(), Some(10_000));
    s.step(0, In::Connected(REALTIME));
    s.step(100, ready());
    s.step(9000, caller_audio(1, 160));
    // Idle: 20 s after ready (nothing said yet); inactivity: 10 s after the last frame.
    assert_eq!(s.next_deadline_ms(), Some(19_000));
}

/// A hung agent (the connection open, nothing sent) in the middle of its answer: the watchdog
/// ends the call as an agent failure after `agent_response_timeout` without agent events, so
/// the caller is not left in silence. Caller audio does not keep it alive.
#[test]
fn a_hung_agent_mid_response_ends_the_call_as_failed() {
    let config = CallConfig {
        agent_response_timeout: Some(Duration::from_secs(4)),
        ..quiet_config()
    };
    let mut s = Scenario::ready(config, REALTIME);
    assert_eq!(s.next_deadline_ms(), None, "nothing owed by the agent");
    s.step(0, response_started("r1"));
    assert_eq!(s.next_deadline_ms(), Some(4000));
    s.step(1000, agent_audio("r1", "i1", 1, 160));
    assert_eq!(
        s.next_deadline_ms(),
        Some(5000),
        "re-armed by every agent event"
    );
    s.step(3000, caller_audio(7, 160));
    assert_eq!(
        s.next_deadline_ms(),
        Some(5000),
        "caller audio does not re-arm it"
    );
    assert!(s.step(4999, In::Timeout).is_empty());
    s.check(&[(
        5000,
        In::Timeout,
        &[
            "event error Agent \"the agent sent nothing for 4000 ms while a response was due\" fatal",
            "A close",
            "C close",
            "event ended agent_failed",
            "finished agent_failed",
        ],
    )]);
}

/// The watchdog only runs while a response is owed: after `response.done` (the caller's turn,
/// a tool running) the agent may be quiet for as long as it likes; a request of ours arms it.
#[test]
fn the_hung_agent_watchdog_runs_only_while_a_response_is_owed() {
    let config = CallConfig {
        agent_response_timeout: Some(Duration::from_secs(4)),
        greeting: Some("Greet.".into()),
        ..quiet_config()
    };
    let mut s = Scenario::ready(config, REALTIME);
    // The greeting was requested at the start: owed until it starts and ends.
    assert_eq!(s.next_deadline_ms(), Some(4000));
    s.step(100, response_started("r1"));
    s.step(200, agent_audio("r1", "i1", 1, 160));
    s.step(300, response_done("r1", ResponseStatus::Completed));
    assert_eq!(s.next_deadline_ms(), None);
    let out = s.step(60_000, caller_audio(7, 160));
    assert_eq!(out, ["A audio 160 #07"], "the call goes on");
    assert_eq!(s.next_deadline_ms(), None);
}
