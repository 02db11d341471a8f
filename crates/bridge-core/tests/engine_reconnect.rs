//! Reconnecting a lost agent connection: the gap (hold audio, caller audio dropped), the
//! bounded attempts with backoff, the replay of the conversation as heard, and the end into
//! the fallback when the agent cannot come back.

mod engine_support;

use std::time::Duration;

use bridge_core::agent::{AgentEvent, Speaker};
use bridge_core::engine::{CallConfig, EndReason, ReconnectConfig};
use engine_support::*;

fn config(max_attempts: u32) -> CallConfig {
    CallConfig {
        mark_interval: Duration::from_millis(100),
        reconnect: Some(ReconnectConfig {
            max_attempts,
            max_gap: Duration::from_secs(5),
            hold_audio: Some(ulaw(0x7f, 800)),
            resume_instructions: Some("Pick up where you left off.".into()),
            ..ReconnectConfig::default()
        }),
        ..quiet_config()
    }
}

fn fragment(item: &str, text: &str) -> In {
    In::Agent(AgentEvent::Transcript {
        speaker: Speaker::Agent,
        text: text.into(),
        is_final: false,
        timing: None,
        item_id: Some(item.into()),
    })
}

fn line(speaker: Speaker, item: &str, text: &str) -> In {
    In::Agent(AgentEvent::Transcript {
        speaker,
        text: text.into(),
        is_final: true,
        timing: None,
        item_id: Some(item.into()),
    })
}

#[test]
fn a_lost_connection_is_reconnected_with_the_conversation_replayed() {
    let mut s = Scenario::ready(config(3), REALTIME);
    s.check(&[
        (
            10,
            line(Speaker::Caller, "u1", "When are you open?"),
            &["event transcript Caller \"When are you open?\""],
        ),
        (20, tool_call("call_1", "hours", Some("r1")), &[]),
        (
            30,
            response_done("r1", bridge_core::agent::ResponseStatus::Completed),
            &[
                "event tool-started call_1 hours",
                "run call_1 hours {} for CA1",
            ],
        ),
        (
            40,
            tool_done("call_1", "{\"open\":\"9-5\"}", None),
            &[
                "A tool-result call_1 {\"open\":\"9-5\"}",
                "event tool-finished call_1 10ms",
                "A respond",
            ],
        ),
        (50, response_started("r2"), &[]),
        (
            60,
            agent_audio("r2", "i2", 0x11, 800),
            &[
                "event first-audio ToolResults 20ms",
                "C audio 800 #11",
                "C mark 1",
            ],
        ),
        (61, fragment("i2", "We are open "), &[]),
        (62, fragment("i2", "nine to"), &[]),
    ]);
    // The connection drops mid-answer: the caller keeps hearing what was queued, then the
    // hold clip; a reconnect attempt starts at once.
    s.check(&[
        (
            100,
            In::Lost("connection reset", true),
            &[
                "agent-lost",
                "event reconnecting #1 \"connection reset\"",
                "C audio 800 #7f",
                "C mark 2",
            ],
        ),
        (100, In::Timeout, &["connect-agent #1"]),
        // Caller audio during the gap is dropped (counted), not buffered.
        (120, caller_audio(0xAA, 160), &[]),
        (
            150,
            In::ConnectFailed("HTTP 503"),
            &["event reconnecting #2 \"HTTP 503\""],
        ),
    ]);
    // Attempt 2 after the first backoff (250 ms); the hold clip is repeated once it played.
    assert_eq!(s.next_deadline_ms(), Some(200));
    s.check(&[
        (200, In::Timeout, &["C audio 800 #7f", "C mark 3"]),
        (400, In::Timeout, &["connect-agent #2", "C audio 800 #7f", "C mark 4"]),
        (450, In::Connected(REALTIME), &[]),
        (460, ready(), &[
            "A restore Message { speaker: Caller, text: \"When are you open?\" }",
            "A restore ToolCall { call_id: \"call_1\", name: \"hours\", arguments: \"{}\" }",
            "A restore ToolOutput { call_id: \"call_1\", output: \"{\\\"open\\\":\\\"9-5\\\"}\" }",
            "A restore Message { speaker: Agent, text: \"We are open nine to\" }",
            "event reconnected after 2 attempts 360ms restored=4",
            "A respond \"Pick up where you left off.\"",
        ]),
        // The call goes on: the fresh session's answer reaches the caller, caller audio flows.
        (470, response_started("n1"), &[]),
        (480, agent_audio("n1", "j1", 0x22, 800), &[
            "event first-audio Resumed 20ms",
            "C audio 800 #22",
            "C mark 5",
        ]),
        (490, caller_audio(0xAB, 160), &["A audio 160 #ab"]),
    ]);
    assert!(!s.call.is_reconnecting());
    let summary = s.call.summary(s.now);
    assert_eq!(summary.reconnects, 1);
    assert_eq!(summary.reconnect_dropped_ms, 20);
    assert_eq!(summary.context_dropped, 0);
}

#[test]
fn an_answer_cut_by_a_barge_in_is_replayed_as_heard() {
    let mut s = Scenario::ready(config(3), REALTIME);
    s.step(0, response_started("r1"));
    // One second of answer in one piece... cut into 100 ms pieces.
    s.step(0, agent_audio("r1", "i1", 0x11, 8000));
    s.step(
        0,
        line(
            Speaker::Agent,
            "i1",
            "one two three four five six seven eight nine ten",
        ),
    );
    // Five pieces heard (their marks echoed), then the caller barges in.
    for mark in 1..=5 {
        s.step(100 * mark, echo(mark));
    }
    let out = s.cmds(500, speech_started());
    assert_eq!(out, ["C clear", "A truncate i1 @500"]);
    s.step(600, In::Lost("gone", true));
    s.step(600, In::Timeout);
    s.step(610, In::Connected(REALTIME));
    let restored: Vec<String> = s
        .cmds(620, ready())
        .into_iter()
        .filter(|c| c.starts_with("A restore"))
        .collect();
    // 48 characters · 500/1000 = 24 → "one two three four five" (whole words).
    assert_eq!(
        restored,
        ["A restore Message { speaker: Agent, text: \"one two three four five\" }"]
    );
}

#[test]
fn a_permanent_refusal_is_never_retried_and_ends_the_call() {
    let mut s = Scenario::ready(config(3), REALTIME);
    s.step(100, In::Lost("connection reset", true));
    s.check(&[
        (100, In::Timeout, &["connect-agent #1"]),
        (150, In::ConnectRefused("HTTP 401"), &[
            "event reconnect-failed after 1 \"HTTP 401\"",
            "event error Agent \"the agent connection was lost and could not be restored: HTTP 401\" fatal",
            "A close",
            "C close",
            "event ended agent_failed",
            "finished agent_failed",
        ]),
    ]);
}

#[test]
fn attempts_are_bounded_and_back_off() {
    let mut s = Scenario::ready(
        CallConfig {
            reconnect: Some(ReconnectConfig {
                max_attempts: 3,
                hold_audio: None,
                ..ReconnectConfig::default()
            }),
            ..quiet_config()
        },
        REALTIME,
    );
    s.step(0, In::Lost("eof", true));
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let at = s.next_deadline_ms().expect("an attempt is scheduled");
        let out = s.cmds(at, In::Timeout);
        assert!(
            out.iter().any(|c| c.starts_with("connect-agent")),
            "{out:?}"
        );
        attempts.push(at);
        s.step(at, In::ConnectFailed("HTTP 502"));
    }
    // At once, then 250 ms, then 500 ms later.
    assert_eq!(attempts, [0, 250, 750]);
    let summary = finished_summary(&s.outputs(750, In::Timeout));
    assert!(summary.is_none(), "nothing more is due");
    assert!(s.call.is_finished());
    assert_eq!(
        s.call.summary(s.now).end_reason,
        Some(EndReason::AgentFailed)
    );
}

#[test]
fn the_gap_is_bounded_in_time() {
    let mut s = Scenario::ready(config(10), REALTIME);
    s.step(0, In::Lost("eof", true));
    s.step(0, In::Timeout);
    // The attempt hangs (its connect timeout is the adapter's); the gap's bound ends the call.
    let out = s.step(5000, In::Timeout);
    assert!(
        out.contains(
            &"event reconnect-failed after 1 \"no agent session within 5000 ms\"".to_owned()
        ),
        "{out:?}"
    );
    assert!(out.contains(&"finished agent_failed".to_owned()), "{out:?}");
}

#[test]
fn without_reconnect_or_with_a_permanent_cause_a_loss_ends_the_call() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    let out = s.cmds(10, In::Lost("connection reset", true));
    assert_eq!(out, ["A close", "C close", "finished agent_failed"]);

    let mut s = Scenario::ready(config(3), REALTIME);
    let out = s.cmds(10, In::Lost("protocol error: junk", false));
    assert_eq!(out, ["A close", "C close", "finished agent_failed"]);

    // Before the agent was ever ready there is nothing to resume: the first connect's rules.
    let mut s = Scenario::new(config(3));
    s.step(0, started());
    s.step(0, In::Connected(REALTIME));
    let out = s.cmds(10, In::Lost("connection reset", true));
    assert_eq!(out, ["A close", "C close", "finished agent_failed"]);
}

#[test]
fn a_close_of_the_agent_is_a_loss_when_reconnect_is_on() {
    let mut s = Scenario::ready(config(3), REALTIME);
    let out = s.cmds(
        10,
        In::Agent(AgentEvent::Closed {
            reason: "agent connection closed".into(),
        }),
    );
    assert_eq!(out, ["agent-lost", "C audio 800 #7f", "C mark 1"]);
    assert!(s.call.is_reconnecting());
}

/// Audio of the lost session still queued at the caller keeps playing; a barge-in over it
/// after the reconnect clears it but truncates nothing in the fresh session (which never had
/// that item).
#[test]
fn a_barge_in_after_the_reconnect_truncates_no_item_of_the_old_session() {
    let mut s = Scenario::ready(
        CallConfig {
            reconnect: Some(ReconnectConfig {
                hold_audio: None,
                resume_instructions: None,
                ..ReconnectConfig::default()
            }),
            ..quiet_config()
        },
        REALTIME,
    );
    s.step(0, response_started("r1"));
    s.step(0, agent_audio("r1", "i1", 0x11, 1600));
    s.step(10, In::Lost("eof", true));
    s.step(10, In::Timeout);
    s.step(20, In::Connected(REALTIME));
    assert_eq!(s.cmds(30, ready()), Vec::<String>::new());
    assert!(s.call.pending_marks() > 0, "the old audio is still playing");
    assert_eq!(s.cmds(40, speech_started()), ["C clear"]);
}

/// A hung agent (connection open, nothing sent while its answer is due) is treated like a
/// lost connection: the watchdog starts a reconnect instead of leaving the caller in silence.
#[test]
fn a_hung_agent_is_reconnected() {
    let mut s = Scenario::ready(
        CallConfig {
            agent_response_timeout: Some(Duration::from_secs(4)),
            ..config(3)
        },
        REALTIME,
    );
    s.step(0, response_started("r1"));
    s.step(10, agent_audio("r1", "i1", 0x11, 800));
    assert_eq!(s.next_deadline_ms(), Some(4010));
    let out = s.step(4010, In::Timeout);
    assert_eq!(
        out[..2],
        [
            "agent-lost",
            "event reconnecting #1 \"the agent sent nothing for 4000 ms while a response was due\"",
        ],
        "{out:?}"
    );
    assert!(s.call.is_reconnecting());
}

fn live_line(speaker: Speaker, text: &str) -> In {
    In::Agent(AgentEvent::Transcript {
        speaker,
        text: text.into(),
        is_final: true,
        timing: None,
        item_id: None,
    })
}

/// An agent that takes history only as its session starts (GPT-Live, `restore_at_start`):
/// the conversation is restored right after the fresh connection, before `Ready`; `Ready`
/// then brings only the resume request. A close it reports is final (`final_close`): never
/// reconnected.
#[test]
fn an_agent_taking_history_at_start_gets_it_before_ready() {
    let mut s = Scenario::ready(config(3), LIVE);
    s.step(10, live_line(Speaker::Caller, "Where is my order?"));
    s.step(20, live_line(Speaker::Agent, "Shipped"));
    s.check(&[
        (
            100,
            In::Lost("GPT-Live connection lost", true),
            &[
                "agent-lost",
                "event reconnecting #1 \"GPT-Live connection lost\"",
                "C audio 800 #7f",
                "C mark 1",
            ],
        ),
        (100, In::Timeout, &["connect-agent #1"]),
        (
            150,
            In::Connected(LIVE),
            &[
                "A restore Message { speaker: Caller, text: \"Where is my order?\" }",
                "A restore Message { speaker: Agent, text: \"Shipped\" }",
            ],
        ),
        (
            160,
            ready(),
            &[
                "event reconnected after 1 attempts 60ms restored=2",
                "A respond \"Pick up where you left off.\"",
            ],
        ),
    ]);
    let out = s.cmds(
        200,
        In::Agent(AgentEvent::Closed {
            reason: "GPT-Live: a safety filter ended the session (content)".into(),
        }),
    );
    assert!(!out.contains(&"agent-lost".to_owned()), "{out:?}");
    assert!(!s.call.is_reconnecting());
    assert!(s.call.is_finished());
}
