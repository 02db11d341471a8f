//! Handing a call over at shutdown (`CallConfig::handover`): the stream ends at a natural
//! pause (or when the bounded wait runs out) with the conversation emitted, and a call seeded
//! with a saved conversation (`CallConfig::restore`) replays it first and skips the greeting.

mod engine_support;

use std::time::Duration;

use bridge_core::agent::{ContextItem, Speaker};
use bridge_core::engine::{CallConfig, CallEvent, EndReason, Output};
use engine_support::*;

fn config() -> CallConfig {
    CallConfig {
        handover: Some(Duration::from_secs(2)),
        greeting: Some("Say hello.".into()),
        ..quiet_config()
    }
}

fn handed_over(outputs: &[Output]) -> Option<Vec<ContextItem>> {
    outputs.iter().find_map(|o| match o.as_event() {
        Some(CallEvent::HandedOver { context, .. }) => Some(context.clone()),
        _ => None,
    })
}

#[test]
fn shutdown_waits_for_the_answer_to_be_heard_then_hands_over() {
    let mut s = Scenario::ready(config(), REALTIME);
    s.check(&[
        (
            10,
            transcript(Speaker::Caller, "When are you open?"),
            &["event transcript Caller \"When are you open?\""],
        ),
        (20, response_started("r1"), &[]),
        (
            30,
            agent_audio("r1", "i1", 0x11, 160),
            &[
                "event first-audio Greeting 30ms",
                "C audio 160 #11",
                "C mark 1",
            ],
        ),
        // Draining while the answer plays: nothing happens yet.
        (40, In::Shutdown, &[]),
        (
            50,
            transcript(Speaker::Agent, "Nine to five."),
            &["event transcript Agent \"Nine to five.\""],
        ),
        (
            60,
            response_done("r1", bridge_core::agent::ResponseStatus::Completed),
            &[],
        ),
    ]);
    // The last mark's echo: the answer was heard, nobody speaks, nothing runs: a pause.
    let out = s.outputs(70, echo(1));
    let rendered: Vec<String> = out.iter().map(render).collect();
    assert_eq!(
        rendered,
        [
            "event handed-over items=2 at_pause=true",
            "A close",
            "C close",
            "event ended handed_over",
            "finished handed_over",
        ]
    );
    assert_eq!(
        handed_over(&out).expect("handed over"),
        [
            ContextItem::Message {
                speaker: Speaker::Caller,
                text: "When are you open?".into()
            },
            ContextItem::Message {
                speaker: Speaker::Agent,
                text: "Nine to five.".into()
            },
        ]
    );
}

#[test]
fn a_caller_who_keeps_talking_is_handed_over_when_the_wait_runs_out() {
    let mut s = Scenario::ready(config(), REALTIME);
    s.check(&[(10, speech_started(), &[]), (20, In::Shutdown, &[])]);
    assert_eq!(s.next_deadline_ms(), Some(2020));
    let out = s.step(2020, In::Timeout);
    assert_eq!(out[0], "event handed-over items=0 at_pause=false");
    assert_eq!(out.last().map(String::as_str), Some("finished handed_over"));
}

#[test]
fn without_handover_or_before_the_stream_started_shutdown_ends_at_once() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    let out = s.step(10, In::Shutdown);
    assert_eq!(out.last().map(String::as_str), Some("finished shutdown"));

    let mut s = Scenario::new(config());
    let out = s.step(10, In::Shutdown);
    assert_eq!(out.last().map(String::as_str), Some("finished shutdown"));
}

#[test]
fn a_restored_call_replays_the_conversation_before_caller_audio_and_skips_the_greeting() {
    let restore = vec![
        ContextItem::Message {
            speaker: Speaker::Caller,
            text: "When are you open?".into(),
        },
        ContextItem::Message {
            speaker: Speaker::Agent,
            text: "Nine to five.".into(),
        },
    ];
    let mut s = Scenario::new(CallConfig {
        restore: restore.clone(),
        ..config()
    });
    s.check(&[
        (0, started(), &["event started CA1"]),
        (5, caller_audio(0xAA, 160), &[]),
        (10, In::Connected(REALTIME), &[]),
        (
            20,
            ready(),
            &[
                "event agent-ready 20ms",
                "A restore Message { speaker: Caller, text: \"When are you open?\" }",
                "A restore Message { speaker: Agent, text: \"Nine to five.\" }",
                "A audio 160 #aa",
            ],
        ),
    ]);
    // Handed over again: the restored conversation travels on.
    let out = s.outputs(30, In::Shutdown);
    assert_eq!(handed_over(&out).expect("handed over"), restore);
    assert_eq!(
        s.call.summary(s.now).end_reason,
        Some(EndReason::HandedOver)
    );
}
