//! Tool calls: held until their response completes, batched results, cancellation at
//! teardown, and call control after the goodbye has been heard.

mod engine_support;

use bridge_core::agent::ResponseStatus;
use bridge_core::caller::CallerEvent;
use bridge_core::engine::{CallConfig, GoodbyeBargeIn};
use bridge_core::tools::CallAction;
use engine_support::*;

#[test]
fn tool_call_runs_only_after_its_response_completed() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (0, response_started("r1"), &[]),
        (10, tool_call("c1", "lookup", Some("r1")), &[]),
        (
            20,
            response_done("r1", ResponseStatus::Completed),
            &["event tool-started c1 lookup", "run c1 lookup {} for CA1"],
        ),
        (
            520,
            tool_done("c1", "{\"ok\":true}", None),
            &[
                "A tool-result c1 {\"ok\":true}",
                "event tool-finished c1 500ms",
                "A respond",
            ],
        ),
        (600, response_started("r2"), &[]),
        (
            700,
            agent_audio("r2", "i2", 1, 160),
            &[
                "event first-audio ToolResults 180ms",
                "C audio 160 #01",
                "C mark 1",
            ],
        ),
    ]);
    assert_eq!(s.call.summary(s.now).tool_calls, 1);
}

#[test]
fn tool_calls_of_cancelled_responses_are_discarded() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (0, response_started("r1"), &[]),
        (10, tool_call("c1", "lookup", Some("r1")), &[]),
        (
            20,
            response_done("r1", ResponseStatus::Cancelled),
            &["event tool-discarded c1 lookup"],
        ),
        // Arguments reported after the cancelled response ended: discarded as well.
        (
            21,
            tool_call("c2", "lookup", Some("r1")),
            &["event tool-discarded c2 lookup"],
        ),
        // A late result for a call never run is ignored.
        (30, tool_done("c1", "{}", None), &[]),
    ]);
    assert_eq!(s.call.summary(s.now).tool_calls, 0);
}

#[test]
fn tool_call_reported_after_its_completed_response_runs() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (0, response_started("r1"), &[]),
        (5, response_done("r1", ResponseStatus::Completed), &[]),
        (
            6,
            tool_call("c1", "lookup", Some("r1")),
            &["event tool-started c1 lookup", "run c1 lookup {} for CA1"],
        ),
    ]);
}

#[test]
fn parallel_calls_get_one_response_after_all_results() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (0, response_started("r1"), &[]),
        (1, tool_call("a", "one", Some("r1")), &[]),
        (2, tool_call("b", "two", Some("r1")), &[]),
        (
            3,
            response_done("r1", ResponseStatus::Completed),
            &[
                "event tool-started a one",
                "run a one {} for CA1",
                "event tool-started b two",
                "run b two {} for CA1",
            ],
        ),
        (
            100,
            tool_done("b", "2", None),
            &["A tool-result b 2", "event tool-finished b 97ms"],
        ),
        (
            200,
            tool_done("a", "1", None),
            &[
                "A tool-result a 1",
                "event tool-finished a 197ms",
                "A respond",
            ],
        ),
    ]);
}

#[test]
fn tool_call_while_speaking_does_not_disturb_playout() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (0, response_started("r1"), &[]),
        (
            0,
            agent_audio("r1", "i1", 1, 160),
            &["C audio 160 #01", "C mark 1"],
        ),
        // A call without response id runs at once, audio keeps flowing.
        (
            5,
            tool_call("c1", "lookup", None),
            &["event tool-started c1 lookup", "run c1 lookup {} for CA1"],
        ),
        (
            6,
            agent_audio("r1", "i1", 2, 160),
            &["C audio 160 #02", "C mark 2"],
        ),
        (20, echo(1), &[]),
        // The result goes at once; the follow-up response waits for r1 to finish.
        (
            30,
            tool_done("c1", "{}", None),
            &["A tool-result c1 {}", "event tool-finished c1 25ms"],
        ),
        (
            35,
            agent_audio("r1", "i1", 3, 160),
            &["C audio 160 #03", "C mark 3"],
        ),
        (40, echo(2), &[]),
        (
            50,
            response_done("r1", ResponseStatus::Completed),
            &["A respond"],
        ),
        (60, echo(3), &[]),
    ]);
}

#[test]
fn caller_hangs_up_during_a_tool_call() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (
            0,
            tool_call("c1", "slow", None),
            &["event tool-started c1 slow", "run c1 slow {} for CA1"],
        ),
        (
            1000,
            hangup(),
            &[
                "cancel-tools",
                "A close",
                "event ended caller_hung_up",
                "finished caller_hung_up",
            ],
        ),
        (2000, tool_done("c1", "{}", None), &[]),
    ]);
    assert!(s.call.is_finished());
    assert_eq!(s.call.poll_timeout(), None);
}

#[test]
fn hangup_tool_waits_for_the_goodbye_to_be_heard() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (0, response_started("r1"), &[]),
        (1, tool_call("c1", "end_call", Some("r1")), &[]),
        (
            2,
            response_done("r1", ResponseStatus::Completed),
            &[
                "event tool-started c1 end_call",
                "run c1 end_call {} for CA1",
            ],
        ),
        (
            10,
            tool_done("c1", "{\"ok\":true}", Some(CallAction::Hangup)),
            &[
                "A tool-result c1 {\"ok\":true}",
                "event tool-finished c1 8ms Hangup",
                "A respond",
            ],
        ),
        (100, response_started("bye"), &[]),
        (
            200,
            agent_audio("bye", "b1", 1, 160),
            &[
                "event first-audio ToolResults 190ms",
                "C audio 160 #01",
                "C mark 1",
            ],
        ),
        (
            200,
            agent_audio("bye", "b1", 2, 160),
            &["C audio 160 #02", "C mark 2"],
        ),
        (210, audio_done("bye", "b1"), &[]),
        (210, response_done("bye", ResponseStatus::Completed), &[]),
        // The first piece was heard; the goodbye is not over yet.
        (220, echo(1), &[]),
        (
            240,
            echo(2),
            &[
                "event action Hangup",
                "action hangup",
                "A close",
                "C close",
                "event ended hung_up_by_agent",
                "finished hung_up_by_agent",
            ],
        ),
    ]);
}

#[test]
fn hangup_is_guarded_by_a_timeout() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.step(0, tool_call("c1", "end_call", None));
    s.step(10, tool_done("c1", "{}", Some(CallAction::Hangup)));
    s.step(100, response_started("bye"));
    s.step(100, agent_audio("bye", "b1", 1, 160));
    s.step(110, response_done("bye", ResponseStatus::Completed));
    // The goodbye's mark never echoes: the guard (10 s from the end of the goodbye's audio:
    // 20 ms forwarded at 100 ms) fires.
    assert_eq!(s.next_deadline_ms(), Some(10_120));
    s.check(&[(
        10_120,
        In::Timeout,
        &[
            "event action Hangup (timed out)",
            "action hangup",
            "A close",
            "C close",
            "event ended hung_up_by_agent",
            "finished hung_up_by_agent",
        ],
    )]);
}

#[test]
fn transfer_after_the_goodbye_and_barge_in_during_it() {
    let config = CallConfig {
        goodbye_barge_in: GoodbyeBargeIn::Interrupt,
        ..quiet_config()
    };
    let mut s = Scenario::ready(config, REALTIME);
    s.step(0, tool_call("c1", "transfer", None));
    s.check(&[
        (
            10,
            tool_done(
                "c1",
                "{}",
                Some(CallAction::Transfer {
                    to: "+15550100".into(),
                }),
            ),
            &[
                "A tool-result c1 {}",
                "event tool-finished c1 10ms Transfer { to: \"+15550100\" }",
                "A respond",
            ],
        ),
        (20, response_started("t"), &[]),
        (
            30,
            agent_audio("t", "ti", 1, 160),
            &[
                "event first-audio ToolResults 20ms",
                "C audio 160 #01",
                "C mark 1",
            ],
        ),
        (40, response_done("t", ResponseStatus::Completed), &[]),
        // The caller talks over the goodbye: cleared, then the transfer proceeds.
        (
            45,
            speech_started(),
            &[
                "C clear",
                "A truncate ti @0",
                "event barge-in cleared=1 [ti:sent=20,played=0,end=0]",
                "event action Transfer { to: \"+15550100\" }",
                "action transfer +15550100",
            ],
        ),
        // The transfer succeeded.
        (
            60,
            In::ActionDone(Ok(())),
            &[
                "A close",
                "C close",
                "event ended transferred",
                "finished transferred",
            ],
        ),
    ]);
}

#[test]
fn hangup_without_goodbye_audio_executes_when_the_response_ends() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.step(0, tool_call("c1", "end_call", None));
    s.step(1, tool_done("c1", "{}", Some(CallAction::Hangup)));
    s.step(2, response_started("bye"));
    let out = s.cmds(3, response_done("bye", ResponseStatus::Completed));
    assert_eq!(
        out,
        [
            "action hangup",
            "A close",
            "C close",
            "finished hung_up_by_agent"
        ]
    );
}

#[test]
fn tool_result_while_the_caller_speaks_leaves_the_response_to_the_agent() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (
            0,
            tool_call("c1", "lookup", None),
            &["event tool-started c1 lookup", "run c1 lookup {} for CA1"],
        ),
        (100, speech_started(), &[]),
        // "Are you still there?" — the result is delivered, no response of ours.
        (
            200,
            tool_done("c1", "{}", None),
            &["A tool-result c1 {}", "event tool-finished c1 200ms"],
        ),
        (300, speech_stopped(), &[]),
    ]);
}

#[test]
fn held_back_response_is_dropped_when_the_caller_starts_speaking() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (0, response_started("r1"), &[]),
        (
            0,
            tool_call("c1", "lookup", None),
            &["event tool-started c1 lookup", "run c1 lookup {} for CA1"],
        ),
        (
            10,
            tool_done("c1", "{}", None),
            &["A tool-result c1 {}", "event tool-finished c1 10ms"],
        ),
        (20, speech_started(), &[]),
        (30, response_done("r1", ResponseStatus::Cancelled), &[]),
    ]);
}

#[test]
fn hangup_decided_while_the_caller_speaks_waits_for_the_agents_next_response() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.step(0, tool_call("c1", "end_call", None));
    s.step(5, speech_started());
    s.check(&[
        (
            10,
            tool_done("c1", "{}", Some(CallAction::Hangup)),
            &["A tool-result c1 {}", "event tool-finished c1 10ms Hangup"],
        ),
        (20, speech_stopped(), &[]),
        (30, response_started("bye"), &[]),
        (
            40,
            agent_audio("bye", "b", 1, 160),
            &[
                "event first-audio CallerStoppedSpeaking 20ms",
                "C audio 160 #01",
                "C mark 1",
            ],
        ),
        (50, response_done("bye", ResponseStatus::Completed), &[]),
        (
            60,
            echo(1),
            &[
                "event action Hangup",
                "action hangup",
                "A close",
                "C close",
                "event ended hung_up_by_agent",
                "finished hung_up_by_agent",
            ],
        ),
    ]);
}

/// What call records are built from: a tool call's arguments and output, and each final
/// transcript line's item and time in the call.
#[test]
fn observer_events_carry_tool_arguments_outputs_and_transcript_items() {
    use bridge_core::agent::{AgentEvent, Speaker, ToolCallRequest};
    use bridge_core::engine::{CallEvent, Output};
    use std::time::Duration;

    fn events(outputs: Vec<Output>) -> Vec<CallEvent> {
        outputs
            .into_iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(*e),
                _ => None,
            })
            .collect()
    }

    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.step(0, response_started("r1"));
    s.step(
        10,
        In::Agent(AgentEvent::ToolCall(ToolCallRequest {
            call_id: "c1".into(),
            name: "lookup".into(),
            arguments: r#"{"order":"A-7"}"#.into(),
            response_id: Some("r1".into()),
        })),
    );
    let started = events(s.outputs(20, response_done("r1", ResponseStatus::Completed)));
    assert_eq!(
        started,
        [CallEvent::ToolStarted {
            call_id: "c1".into(),
            name: "lookup".into(),
            arguments: r#"{"order":"A-7"}"#.into(),
        }]
    );
    let finished = events(s.outputs(520, tool_done("c1", r#"{"status":"shipped"}"#, None)));
    assert_eq!(
        finished,
        [CallEvent::ToolFinished {
            call_id: "c1".into(),
            name: "lookup".into(),
            duration: Duration::from_millis(500),
            output: r#"{"status":"shipped"}"#.into(),
            action: None,
        }]
    );
    let line = events(s.outputs(
        700,
        In::Agent(AgentEvent::Transcript {
            speaker: Speaker::Agent,
            text: "It has shipped.".into(),
            is_final: true,
            timing: None,
            item_id: Some("i2".into()),
        }),
    ));
    assert_eq!(
        line,
        [CallEvent::Transcript {
            speaker: Speaker::Agent,
            text: "It has shipped.".into(),
            timing: None,
            item_id: Some("i2".into()),
            at: Duration::from_millis(700),
        }]
    );
}

/// A ready call whose hang-up or transfer tool finished at 10 ms; the goodbye was requested.
fn goodbye_requested(config: CallConfig, action: CallAction) -> Scenario {
    let mut s = Scenario::ready(config, REALTIME);
    s.step(0, tool_call("c1", "end", None));
    s.step(10, tool_done("c1", "{}", Some(action)));
    s
}

#[test]
fn goodbye_guard_counts_from_the_goodbyes_last_audio() {
    let mut s = goodbye_requested(quiet_config(), CallAction::Hangup);
    // Before any goodbye audio the guard counts from the tool's result.
    assert_eq!(s.next_deadline_ms(), Some(10_010));
    s.step(100, response_started("bye"));
    // A 12 s goodbye arrives at once (faster than real time) in 1 s chunks.
    for _ in 0..12 {
        s.step(100, agent_audio("bye", "b1", 1, 8000));
    }
    s.step(150, response_done("bye", ResponseStatus::Completed));
    // It plays until 12.1 s; the guard is 10 s after that, not 10 s after the result.
    assert_eq!(s.next_deadline_ms(), Some(22_100));
    assert_eq!(s.cmds(10_010, In::Timeout), Vec::<String>::new());
    assert_eq!(
        s.cmds(22_100, In::Timeout),
        [
            "action hangup",
            "A close",
            "C close",
            "finished hung_up_by_agent"
        ]
    );
}

#[test]
fn caller_speaking_during_the_goodbye_does_not_hang_up_at_once() {
    let mut s = goodbye_requested(quiet_config(), CallAction::Hangup);
    s.step(20, response_started("bye"));
    s.step(30, agent_audio("bye", "b1", 1, 160));
    s.step(30, agent_audio("bye", "b1", 2, 160));
    s.step(40, response_done("bye", ResponseStatus::Completed));
    // "Thanks, bye!" over the goodbye: nothing is cleared, nothing executed yet.
    assert_eq!(s.step(45, speech_started()), Vec::<String>::new());
    assert_eq!(s.step(50, echo(1)), Vec::<String>::new());
    s.step(60, speech_stopped());
    // Once the goodbye has been heard, the call is hung up.
    assert_eq!(
        s.cmds(70, echo(2)),
        [
            "action hangup",
            "A close",
            "C close",
            "finished hung_up_by_agent"
        ]
    );
}

#[test]
fn failed_transfer_is_told_to_the_agent_and_the_call_goes_on() {
    let mut s = goodbye_requested(
        quiet_config(),
        CallAction::Transfer {
            to: "+15550100".into(),
        },
    );
    s.step(20, response_started("t"));
    s.step(30, agent_audio("t", "ti", 1, 160));
    s.step(40, response_done("t", ResponseStatus::Completed));
    assert_eq!(s.cmds(60, echo(1)), ["action transfer +15550100"]);
    // Still executing: the call goes on meanwhile.
    assert_eq!(s.cmds(70, caller_audio(9, 160)), ["A audio 160 #09"]);
    s.check(&[(
        100,
        In::ActionDone(Err("Twilio answered 404: call not found".into())),
        &[
            "event error Control \"Transfer { to: \\\"+15550100\\\" }: Twilio answered 404: call not found\"",
            "A context \"The transfer to +15550100 failed (Twilio answered 404: call not found). The call is still connected: tell the caller and continue helping them.\"",
            "A respond",
        ],
    )]);
    assert!(!s.call.is_finished());
    // A later result of the same transfer changes nothing.
    assert_eq!(s.step(110, In::ActionDone(Ok(()))), Vec::<String>::new());
    s.step(120, response_started("sorry"));
    s.step(130, response_done("sorry", ResponseStatus::Completed));
    assert!(!s.call.is_finished());
}

#[test]
fn successful_transfer_ends_the_call_as_transferred() {
    let mut s = goodbye_requested(
        quiet_config(),
        CallAction::Transfer {
            to: "+15550100".into(),
        },
    );
    s.step(20, response_started("t"));
    assert_eq!(
        s.cmds(30, response_done("t", ResponseStatus::Completed)),
        ["action transfer +15550100"]
    );
    assert_eq!(
        s.cmds(90, In::ActionDone(Ok(()))),
        ["A close", "C close", "finished transferred"]
    );
}

// ---- a voicemail message (CallerEvent::LeaveMessage) ------------------------------------------

fn leave_message(instructions: &str) -> In {
    In::Caller(CallerEvent::LeaveMessage {
        instructions: instructions.to_owned(),
    })
}

/// The caller is a voicemail box recording now: the agent is asked for the message, and the
/// hang-up follows its last heard byte, exactly like a goodbye.
#[test]
fn a_voicemail_message_is_asked_for_and_hung_up_after_once_it_was_heard() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (
            0,
            leave_message("Leave the message."),
            &["event leave-message", "A respond \"Leave the message.\""],
        ),
        (100, response_started("vm"), &[]),
        (
            200,
            agent_audio("vm", "v1", 1, 160),
            &[
                "event first-audio Voicemail 200ms",
                "C audio 160 #01",
                "C mark 1",
            ],
        ),
        (
            200,
            agent_audio("vm", "v1", 2, 160),
            &["C audio 160 #02", "C mark 2"],
        ),
        (210, audio_done("vm", "v1"), &[]),
        (210, response_done("vm", ResponseStatus::Completed), &[]),
        (220, echo(1), &[]),
        (
            240,
            echo(2),
            &[
                "event action Hangup",
                "action hangup",
                "A close",
                "C close",
                "event ended hung_up_by_agent",
                "finished hung_up_by_agent",
            ],
        ),
    ]);
}

/// What the agent is saying when the message is asked for is finished first; the message's
/// response follows it.
#[test]
fn a_voicemail_message_waits_for_the_running_response() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.step(0, response_started("hello"));
    s.step(0, agent_audio("hello", "h1", 1, 160));
    assert_eq!(
        s.step(10, leave_message("Leave it.")),
        ["event leave-message"],
        "held back while a response runs"
    );
    s.check(&[(
        20,
        response_done("hello", ResponseStatus::Completed),
        &["A respond \"Leave it.\""],
    )]);
}

/// Before the agent is ready, or while a call action is pending, nothing is asked: the
/// caller side is told why (and leaves the message some other way).
#[test]
fn a_voicemail_message_is_refused_before_the_agent_is_ready_or_during_a_goodbye() {
    let mut s = Scenario::new(quiet_config());
    s.step(0, started());
    assert_eq!(
        s.step(5, leave_message("Leave it.")),
        ["event leave-message refused: the agent is not ready"]
    );
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.step(0, tool_call("c1", "end_call", None));
    s.step(10, tool_done("c1", "{}", Some(CallAction::Hangup)));
    assert_eq!(
        s.step(20, leave_message("Leave it.")),
        ["event leave-message refused: a call action is already pending"]
    );
}

use bridge_core::agent::{AgentEvent, Speaker};
use std::time::Duration;

/// GPT-Live-shaped audio (no response or item ids) of `bytes` μ-law bytes, all `tag`.
fn live_audio(tag: u8, bytes: usize) -> In {
    In::Agent(AgentEvent::Audio {
        audio: ulaw(tag, bytes),
        response_id: None,
        item_id: None,
    })
}

/// The last mark among rendered outputs.
fn last_mark(out: &[String]) -> u64 {
    out.iter()
        .rev()
        .find_map(|o| o.strip_prefix("C mark ")?.parse().ok())
        .expect("a mark was sent")
}

/// 0x00 is a loud μ-law code (speech); 0xFF is digital silence.
const SPEECH: u8 = 0x00;
const SILENT: u8 = 0xFF;

fn live_goodbye_config(quiet: Option<u64>) -> CallConfig {
    CallConfig {
        goodbye_timeout: Duration::from_secs(6),
        goodbye_quiet: quiet.map(Duration::from_millis),
        ..quiet_config()
    }
}

/// No response boundaries (GPT-Live): the goodbye is the speech after the agent was handed
/// its text ([`AgentEvent::SpeechQueued`]; an acknowledgement and its pause before that do
/// not count); it is over once that speech was followed by `goodbye_quiet` of quiet output
/// with no transcript fragment meanwhile, and the hang-up follows the echo of the mark after
/// that quiet — long before the guard. Quiet output never moves the guard.
#[test]
fn live_goodbye_ends_after_its_speech_went_quiet_and_was_heard() {
    let mut s = Scenario::ready(live_goodbye_config(Some(300)), LIVE);
    s.step(0, tool_call("c1", "end", None));
    s.step(10, tool_done("c1", "{}", Some(CallAction::Hangup)));
    assert_eq!(s.next_deadline_ms(), Some(6_010));
    // The continuous track: silence first (not the goodbye: the guard stays).
    s.step(15, live_audio(SILENT, 800));
    assert_eq!(s.next_deadline_ms(), Some(6_010));
    // The model acknowledges while the backend works, then pauses longer than the quiet:
    // not the goodbye, its text was not handed over yet.
    s.step(16, live_audio(SPEECH, 800));
    s.step(17, live_audio(SILENT, 800));
    s.step(18, live_audio(SILENT, 800));
    s.step(19, live_audio(SILENT, 800));
    s.step(19, In::Agent(AgentEvent::SpeechQueued));
    // The voice model takes a moment to start saying it.
    s.step(20, live_audio(SILENT, 800));
    s.step(21, live_audio(SILENT, 800));
    s.step(22, live_audio(SILENT, 800));
    s.step(120, live_audio(SPEECH, 800));
    s.step(220, live_audio(SPEECH, 800));
    // The goodbye's speech plays until 320 ms: the guard is 6 s after that, and stays there.
    assert_eq!(s.next_deadline_ms(), Some(6_320));
    s.step(320, live_audio(SILENT, 800));
    // Its last words are still being transcribed: the quiet starts again.
    s.step(
        330,
        In::Agent(AgentEvent::Transcript {
            speaker: Speaker::Agent,
            text: " bye.".into(),
            is_final: false,
            timing: None,
            item_id: None,
        }),
    );
    s.step(420, live_audio(SILENT, 800));
    s.step(520, live_audio(SILENT, 800));
    let out = s.step(620, live_audio(SILENT, 800));
    let heard_at = last_mark(&out);
    // More of the track follows; the guard has not moved.
    let later = s.step(720, live_audio(SILENT, 800));
    assert_eq!(s.next_deadline_ms(), Some(6_320));
    assert_eq!(s.cmds(800, echo(heard_at - 1)), Vec::<String>::new());
    assert_eq!(
        s.cmds(820, echo(heard_at)),
        [
            "action hangup",
            "A close",
            "C close",
            "finished hung_up_by_agent"
        ]
    );
    assert!(last_mark(&later) > heard_at, "the track went on");
}

/// Without `goodbye_quiet` a silent output track does not keep the call open either: the
/// guard counts from the goodbye's last speech, and fires then (timed out).
#[test]
fn live_goodbye_guard_is_not_moved_by_a_silent_track() {
    let mut s = Scenario::ready(live_goodbye_config(None), LIVE);
    s.step(0, tool_call("c1", "end", None));
    s.step(10, tool_done("c1", "{}", Some(CallAction::Hangup)));
    s.step(20, In::Agent(AgentEvent::SpeechQueued));
    s.step(21, live_audio(SILENT, 800));
    s.step(22, live_audio(SILENT, 800));
    s.step(23, live_audio(SILENT, 800));
    s.step(120, live_audio(SPEECH, 800));
    let mut at = 220;
    let mut marks = 0;
    while at < 6_200 {
        marks = last_mark(&s.step(at, live_audio(SILENT, 800)));
        at += 100;
    }
    assert_eq!(s.next_deadline_ms(), Some(6_220));
    assert_eq!(s.cmds(6_210, echo(marks)), Vec::<String>::new());
    assert_eq!(
        s.cmds(6_220, In::Timeout),
        [
            "action hangup",
            "A close",
            "C close",
            "finished hung_up_by_agent"
        ]
    );
}
