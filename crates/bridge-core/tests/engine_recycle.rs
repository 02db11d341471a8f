//! Session-cap recycling, make-before-break, on injected time: a standby session is opened
//! when recycling is due, the switch waits for a pause with the standby ready, every caller
//! frame reaches exactly one session in order, the caller hears no hold tone; standby
//! failures are retried and never touch the call; when no standby can be had the engine
//! falls back to break-before-make, bounded by `recycle_max_gap`.

mod engine_support;

use std::time::Duration;

use bridge_core::agent::{AgentEvent, ResponseStatus, Speaker};
use bridge_core::engine::{CallConfig, ReconnectConfig};
use engine_support::*;

fn config(max_attempts: u32) -> CallConfig {
    CallConfig {
        mark_interval: Duration::from_millis(100),
        reconnect: Some(ReconnectConfig {
            max_attempts,
            hold_audio: Some(ulaw(0x7f, 800)),
            recycle_after: Some(Duration::from_secs(60)),
            recycle_max_gap: Duration::from_millis(1500),
            ..ReconnectConfig::default()
        }),
        ..quiet_config()
    }
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

fn live_line(speaker: Speaker, text: &str) -> In {
    In::Agent(AgentEvent::Transcript {
        speaker,
        text: text.into(),
        is_final: true,
        timing: None,
        item_id: None,
    })
}

fn standby(event: In) -> In {
    match event {
        In::Agent(e) => In::Standby(e),
        other => panic!("not an agent event: {other:?}"),
    }
}

/// What each side got, split by session: caller frames per agent session (a new session
/// starts at `switch-to-standby` or `agent-lost`), the audio the caller was sent, and every
/// other output with its time.
#[derive(Default)]
struct Trace {
    to_agent: Vec<Vec<String>>,
    to_caller: Vec<String>,
    rest: Vec<String>,
}

impl Trace {
    fn feed(&mut self, s: &mut Scenario, at: u64, input: In) -> Vec<String> {
        if self.to_agent.is_empty() {
            self.to_agent.push(Vec::new());
        }
        let out = s.step(at, input);
        for line in &out {
            if let Some(rest) = line.strip_prefix("A audio ") {
                self.to_agent.last_mut().unwrap().push(rest.to_owned());
            } else if let Some(rest) = line.strip_prefix("C audio ") {
                self.to_caller.push(rest.to_owned());
            } else {
                if line == "switch-to-standby" || line == "agent-lost" {
                    self.to_agent.push(Vec::new());
                }
                self.rest.push(format!("{at}: {line}"));
            }
        }
        out
    }
}

/// Recycling due while an answer plays: the standby is requested at once and becomes ready
/// mid-answer, but the switch waits for the pause (the answer's last mark echoed). Then, in
/// one step: the old session closed, the standby switched to, the conversation replayed,
/// and the very next caller frame goes to the fresh session. Across the whole recycle every
/// numbered caller frame reached exactly one session, in order; the caller heard the old
/// session's answer and then the new one's, each once, and no hold tone.
#[test]
fn a_standby_is_switched_to_at_the_pause_without_losing_or_repeating_audio() {
    let mut s = Scenario::ready(config(3), REALTIME);
    let mut t = Trace::default();
    let mut sent_frames: Vec<String> = Vec::new();
    let mut frame = 0u8;
    t.feed(&mut s, 59_000, line(Speaker::Caller, "u1", "Tell me more."));
    // A caller frame every 20 ms from 59.9 s to 60.8 s; an answer plays from 59.96 s.
    for at in (59_900..=60_800).step_by(20) {
        frame = frame.wrapping_add(1);
        sent_frames.push(format!("160 #{frame:02x}"));
        t.feed(&mut s, at, caller_audio(frame, 160));
        match at {
            59_940 => _ = t.feed(&mut s, at, response_started("r1")),
            59_960 => {
                t.feed(&mut s, at, agent_audio("r1", "i1", 0x11, 1600));
                t.feed(&mut s, at, line(Speaker::Agent, "i1", "Here is more."));
                t.feed(&mut s, at, response_done("r1", ResponseStatus::Completed));
            }
            // Due while the answer still plays: a standby is opened, nothing else changes.
            60_000 => assert_eq!(t.feed(&mut s, at, In::Timeout), ["connect-standby #1"]),
            60_040 => assert!(
                t.feed(&mut s, at, In::StandbyConnected(REALTIME))
                    .is_empty()
            ),
            60_060 => _ = t.feed(&mut s, at, echo(1)),
            60_080 => {
                // Ready mid-answer: no switch. Anything else it says is not the call's.
                assert!(t.feed(&mut s, at, standby(ready())).is_empty());
                let stray = standby(agent_audio("x1", "y1", 0x55, 160));
                assert!(t.feed(&mut s, at, stray).is_empty());
            }
            // The last mark: the answer has been heard; the pause starts here.
            60_160 => {
                assert_eq!(
                    t.feed(&mut s, at, echo(2)),
                    [
                        "A close",
                        "switch-to-standby",
                        "A restore Message { speaker: Caller, text: \"Tell me more.\" }",
                        "A restore Message { speaker: Agent, text: \"Here is more.\" }",
                        "event recycled 0ms restored=2",
                    ]
                );
            }
            // The fresh session answers the caller.
            60_400 => {
                t.feed(&mut s, at, response_started("n1"));
                t.feed(&mut s, at, agent_audio("n1", "j1", 0x22, 800));
            }
            _ => {}
        }
    }
    // Frames up to the one at 60.16 s went to the old session, every later one to the new.
    let switch_at = (60_160 - 59_900) / 20 + 1;
    assert_eq!(t.to_agent.len(), 2);
    assert_eq!(t.to_agent[0], sent_frames[..switch_at]);
    assert_eq!(t.to_agent[1], sent_frames[switch_at..]);
    assert_eq!(t.to_agent.concat(), sent_frames);
    // 1600 bytes in two pieces cut on whole base64 groups, then the new answer: no hold tone.
    assert_eq!(t.to_caller, ["801 #11", "799 #11", "800 #22"]);
    let summary = s.call.summary(s.now);
    assert_eq!((summary.recycles, summary.reconnects), (1, 0));
    assert_eq!(summary.recycle_standby_failures, 0);
    assert_eq!(summary.reconnect_dropped_ms, 0);
    assert_eq!(summary.pre_ready_dropped_ms, 0);
    // The fresh session's age counts from its `Ready`: recycled again 60 s after that.
    assert_eq!(s.next_deadline_ms(), Some(120_080));
}

/// The caller speaking (or a tool running, or a response pending) is not a pause: a ready
/// standby waits; the switch comes when the turn is over.
#[test]
fn a_ready_standby_waits_while_the_caller_speaks_or_a_tool_runs() {
    let mut s = Scenario::ready(config(3), REALTIME);
    s.step(60_000, In::Timeout);
    s.step(60_010, speech_started());
    s.step(60_020, In::StandbyConnected(REALTIME));
    assert!(s.step(60_030, standby(ready())).is_empty());
    assert_eq!(s.cmds(60_040, caller_audio(1, 160)), ["A audio 160 #01"]);
    // The caller stops: the agent owes the answer (its own turn-taking), not a pause. The
    // answer starts with a tool call.
    assert!(s.step(60_050, speech_stopped()).is_empty());
    s.step(60_055, response_started("r1"));
    s.step(60_060, tool_call("c1", "lookup", Some("r1")));
    s.step(60_070, response_done("r1", ResponseStatus::Completed));
    assert_eq!(s.cmds(60_080, caller_audio(2, 160)), ["A audio 160 #02"]);
    // The tool's result asks for a response: still not a pause.
    let out = s.cmds(60_090, tool_done("c1", "{}", None));
    assert_eq!(out, ["A tool-result c1 {}", "A respond"]);
    s.step(60_100, response_started("r2"));
    // The pause: the response ended without audio.
    let out = s.cmds(60_200, response_done("r2", ResponseStatus::Completed));
    assert_eq!(out[..2], ["A close", "switch-to-standby"]);
    assert_eq!(s.cmds(60_220, caller_audio(3, 160)), ["A audio 160 #03"]);
    assert_eq!(s.call.summary(s.now).recycles, 1);
}

/// A standby that fails (refused connection, dropped after connecting, an error) is retried
/// with the reconnect backoff; the call is untouched meanwhile: caller audio keeps going to
/// the serving session, its answers keep reaching the caller, no hold tone.
#[test]
fn a_failing_standby_is_retried_and_the_call_is_untouched() {
    let mut s = Scenario::ready(config(3), REALTIME);
    s.check(&[
        (60_000, In::Timeout, &["connect-standby #1"]),
        (
            60_100,
            In::StandbyConnectFailed("HTTP 503", true),
            &[
                "drop-standby",
                "event error Agent \"standby agent session for recycling: HTTP 503\"",
            ],
        ),
        (60_120, caller_audio(1, 160), &["A audio 160 #01"]),
        (60_130, response_started("r1"), &[]),
        (
            60_140,
            agent_audio("r1", "i1", 0x11, 800),
            &["C audio 800 #11", "C mark 1"],
        ),
    ]);
    // Attempt 2 after the backoff (250 ms).
    assert_eq!(s.next_deadline_ms(), Some(60_350));
    s.check(&[
        (60_350, In::Timeout, &["connect-standby #2"]),
        (60_400, In::StandbyConnected(REALTIME), &[]),
        (
            60_450,
            In::StandbyLost("connection reset"),
            &[
                "drop-standby",
                "event error Agent \"standby agent session for recycling: connection reset\"",
            ],
        ),
        (60_460, caller_audio(2, 160), &["A audio 160 #02"]),
    ]);
    // Attempt 3 after 500 ms; it becomes ready; the answer still plays until mark 1 echoes.
    assert_eq!(s.next_deadline_ms(), Some(60_950));
    s.check(&[
        (60_950, In::Timeout, &["connect-standby #3"]),
        (61_000, In::StandbyConnected(REALTIME), &[]),
        (61_010, standby(ready()), &[]),
        (61_020, response_done("r1", ResponseStatus::Completed), &[]),
    ]);
    let out = s.cmds(61_030, echo(1));
    assert_eq!(out[..2], ["A close", "switch-to-standby"]);
    let summary = s.call.summary(s.now);
    assert_eq!(summary.recycles, 1);
    assert_eq!(summary.recycle_standby_failures, 2);
    assert!(!s.call.is_finished());
}

/// A standby refused for good (401) ends recycling for this call; the serving session goes
/// on (its own limit, then the reconnect path, is the last resort).
#[test]
fn a_refused_standby_stops_recycling_and_the_call_goes_on() {
    let mut s = Scenario::ready(config(3), REALTIME);
    s.step(60_000, In::Timeout);
    let out = s.step(60_100, In::StandbyConnectFailed("HTTP 401", false));
    assert_eq!(
        out,
        [
            "drop-standby",
            "event error Agent \"standby agent session for recycling: HTTP 401\"",
        ]
    );
    assert_eq!(s.next_deadline_ms(), None, "no further attempt");
    assert_eq!(s.cmds(60_200, caller_audio(1, 160)), ["A audio 160 #01"]);
    assert!(!s.call.is_finished());
    assert!(!s.call.is_reconnecting());
}

/// When every standby attempt of a recycle failed, the engine falls back to break-before-make
/// at the next pause: the old session is closed, a fresh one opened, caller audio held
/// meanwhile and sent after the replay, in order; the measured gap is reported.
#[test]
fn with_no_standby_the_recycle_falls_back_to_break_before_make_within_the_bound() {
    let mut s = Scenario::ready(config(2), REALTIME);
    s.step(10_000, line(Speaker::Caller, "u1", "Hello?"));
    s.step(60_000, In::Timeout);
    s.step(60_100, In::StandbyConnectFailed("HTTP 503", true));
    s.step(60_350, In::Timeout);
    // The second (last) attempt fails: nothing left to try; this is a pause, so the
    // fallback switch happens at once.
    let out = s.step(60_400, In::StandbyConnectFailed("HTTP 503", true));
    assert_eq!(
        out,
        [
            "drop-standby",
            "event error Agent \"standby agent session for recycling: HTTP 503\"",
            "A close",
            "agent-lost",
        ]
    );
    s.check(&[
        (60_400, In::Timeout, &["connect-agent #1"]),
        // Held, not dropped: the switch is within its bound.
        (60_420, caller_audio(1, 160), &[]),
        (60_440, caller_audio(2, 160), &[]),
        (60_500, In::Connected(REALTIME), &[]),
        (
            60_600,
            ready(),
            &[
                "A restore Message { speaker: Caller, text: \"Hello?\" }",
                "event recycled 200ms restored=1",
                "A audio 160 #01",
                "A audio 160 #02",
            ],
        ),
        (60_620, caller_audio(3, 160), &["A audio 160 #03"]),
    ]);
    let summary = s.call.summary(s.now);
    assert_eq!((summary.recycles, summary.reconnects), (1, 0));
    assert_eq!(summary.recycle_standby_failures, 2);
    assert_eq!(summary.reconnect_dropped_ms, 0);
}

/// A break-before-make switch whose fresh session is not ready within `recycle_max_gap`
/// becomes a reconnect, the last resort: the hold tone plays, the caller audio held so far
/// and from then on is dropped and counted, and the fresh session resumes the call.
#[test]
fn a_fallback_switch_slower_than_the_bound_becomes_a_reconnect_with_the_hold_tone() {
    let mut s = Scenario::ready(config(1), REALTIME);
    s.step(60_000, In::Timeout);
    s.step(60_100, In::StandbyConnectFailed("HTTP 503", true));
    s.step(60_100, In::Timeout);
    s.step(60_120, caller_audio(1, 160));
    assert_eq!(s.next_deadline_ms(), Some(61_600));
    s.check(&[
        (
            61_600,
            In::Timeout,
            &[
                "event reconnecting #1 \"the recycled session was not ready within 1500 ms\"",
                "C audio 800 #7f",
                "C mark 1",
            ],
        ),
        (61_620, caller_audio(2, 160), &[]),
        (61_700, In::Connected(REALTIME), &[]),
        (
            61_800,
            ready(),
            &[
                "event reconnected after 1 attempts 1700ms restored=0",
                "A respond \"The line was briefly interrupted. In one short sentence, say you are back; then finish what you were saying if you were cut off, or ask the caller to go on.\"",
            ],
        ),
    ]);
    let summary = s.call.summary(s.now);
    assert_eq!((summary.recycles, summary.reconnects), (0, 1));
    assert_eq!(summary.reconnect_dropped_ms, 40);
}

/// An agent that takes history only as its session starts (GPT-Live, `restore_at_start`)
/// and reports pauses itself (`RecycleNow`): the standby gets the conversation as it is
/// opened; at the agent's next pause report it is switched to (no replay after it). If the
/// conversation grew in between, that standby is discarded and another one opened with the
/// whole conversation. A running tool is not a pause.
#[test]
fn an_agent_taking_history_at_start_gets_a_standby_seeded_with_the_current_conversation() {
    let mut s = Scenario::ready(config(3), LIVE);
    s.step(10, live_line(Speaker::Caller, "Hello?"));
    s.check(&[
        (
            20,
            tool_call("d1", "lookup", None),
            &["event tool-started d1 lookup", "run d1 lookup {} for CA1"],
        ),
        // Due (the agent's report opens the recycle); a tool runs: no switch in any case.
        (
            30,
            In::Agent(AgentEvent::RecycleNow),
            &["connect-standby #1"],
        ),
        (
            40,
            In::StandbyConnected(LIVE),
            &[
                "S restore Message { speaker: Caller, text: \"Hello?\" }",
                "S restore ToolCall { call_id: \"d1\", name: \"lookup\", arguments: \"{}\" }",
            ],
        ),
        (50, standby(ready()), &[]),
        (
            60,
            tool_done("d1", "{}", None),
            &[
                "A tool-result d1 {}",
                "event tool-finished d1 40ms",
                "A respond",
            ],
        ),
        // The conversation grew (the tool's output): this standby is stale.
        (
            1_100,
            In::Agent(AgentEvent::RecycleNow),
            &["S close", "drop-standby", "connect-standby #2"],
        ),
        (
            1_200,
            In::StandbyConnected(LIVE),
            &[
                "S restore Message { speaker: Caller, text: \"Hello?\" }",
                "S restore ToolCall { call_id: \"d1\", name: \"lookup\", arguments: \"{}\" }",
                "S restore ToolOutput { call_id: \"d1\", output: \"{}\" }",
            ],
        ),
        (1_300, standby(ready()), &[]),
        (1_400, caller_audio(1, 160), &["A audio 160 #01"]),
        // Ready, but only the agent knows when it is at a pause.
        (2_000, echo(1), &[]),
        (
            2_100,
            In::Agent(AgentEvent::RecycleNow),
            &[
                "A close",
                "switch-to-standby",
                "event recycled 0ms restored=3",
            ],
        ),
        (2_120, caller_audio(2, 160), &["A audio 160 #02"]),
    ]);
    let summary = s.call.summary(s.now);
    assert_eq!(summary.recycles, 1);
    assert_eq!(summary.recycle_standby_failures, 1);

    // Without reconnects the agent's report changes nothing.
    let mut off = Scenario::ready(quiet_config(), LIVE);
    assert!(off.cmds(10, In::Agent(AgentEvent::RecycleNow)).is_empty());
}

/// The serving session lost while a standby is open: the standby is closed and dropped, and
/// the ordinary reconnect carries the call (hold tone, replay, resume).
#[test]
fn a_loss_of_the_serving_session_discards_the_standby_and_reconnects() {
    let mut s = Scenario::ready(config(3), REALTIME);
    s.step(60_000, In::Timeout);
    s.step(60_050, In::StandbyConnected(REALTIME));
    let out = s.step(60_100, In::Lost("connection reset", true));
    assert_eq!(
        out,
        [
            "S close",
            "drop-standby",
            "agent-lost",
            "event reconnecting #1 \"connection reset\"",
            "C audio 800 #7f",
            "C mark 1",
        ]
    );
    assert!(s.call.is_reconnecting());
    // Its late events change nothing.
    assert!(s.step(60_150, standby(ready())).is_empty());
}

/// The call ending with a standby open closes the standby too (it is billed).
#[test]
fn the_standby_is_closed_when_the_call_ends() {
    let mut s = Scenario::ready(config(3), REALTIME);
    s.step(60_000, In::Timeout);
    s.step(60_040, speech_started());
    s.step(60_050, In::StandbyConnected(REALTIME));
    assert!(s.step(60_060, standby(ready())).is_empty());
    let out = s.cmds(60_100, hangup());
    assert_eq!(out, ["A close", "S close", "finished caller_hung_up"]);
}
