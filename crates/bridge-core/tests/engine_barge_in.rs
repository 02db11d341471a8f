//! Playout tracking and barge-in, scripted on a fake clock. In every barge-in the truncation
//! position must equal the mark-acknowledged played position exactly and never exceed the
//! audio sent (μ-law: 8 bytes = 1 ms).

mod engine_support;

use bridge_core::agent::ResponseStatus;
use bridge_core::engine::{CallEvent, Output};
use engine_support::*;

#[test]
fn chunks_are_split_into_marked_pieces_and_passed_through() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (100, response_started("r1"), &[]),
        // 20 ms exactly: one piece, one mark.
        (
            100,
            agent_audio("r1", "i1", 0x01, 160),
            &["C audio 160 #01", "C mark 1"],
        ),
        // 60 ms: three equal pieces cut on base64 groups (162 = 54 groups).
        (
            110,
            agent_audio("r1", "i1", 0x02, 480),
            &[
                "C audio 162 #02",
                "C mark 2",
                "C audio 162 #02",
                "C mark 3",
                "C audio 156 #02",
                "C mark 4",
            ],
        ),
        // Tiny chunks are not padded.
        (
            120,
            agent_audio("r1", "i1", 0x03, 5),
            &["C audio 5 #03", "C mark 5"],
        ),
    ]);
}

#[test]
fn passthrough_forwards_the_same_shared_bytes() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    let payload = ulaw(0x42, 160);
    let out = s.outputs(
        10,
        In::Agent(bridge_core::agent::AgentEvent::Audio {
            audio: payload.clone(),
            response_id: Some("r".into()),
            item_id: Some("i".into()),
        }),
    );
    let Output::Caller(bridge_core::caller::CallerCommand::Audio(sent)) = &out[0] else {
        panic!("expected caller audio, got {out:?}");
    };
    // Same buffer, not a copy.
    assert_eq!(sent.as_bytes().as_ptr(), payload.as_bytes().as_ptr());

    let frame = ulaw(0x11, 160);
    let out = s.outputs(
        20,
        In::Caller(bridge_core::caller::CallerEvent::Audio(frame.clone())),
    );
    let Output::Agent(bridge_core::agent::AgentCommand::Audio(sent)) = &out[0] else {
        panic!("expected agent audio, got {out:?}");
    };
    assert_eq!(sent.as_bytes().as_ptr(), frame.as_bytes().as_ptr());
}

#[test]
fn barge_in_during_the_first_chunk() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (100, response_started("r1"), &[]),
        (
            100,
            agent_audio("r1", "i1", 0x01, 480),
            &[
                "C audio 162 #01",
                "C mark 1",
                "C audio 162 #01",
                "C mark 2",
                "C audio 156 #01",
                "C mark 3",
            ],
        ),
        // The caller heard the first piece: 162 bytes = 20.25 ms. Sent to an empty queue,
        // its echo measures the round trip: 25 − 20.25 = 4.75 ms.
        (125, echo(1), &[]),
        // The second piece was forwarded long enough before that echo (a round trip plus the
        // 20 ms margin) to have been playing since: 5 ms of it are heard too.
        (
            130,
            speech_started(),
            &[
                "C clear",
                "A truncate i1 @25",
                "event barge-in cleared=2 [i1:sent=60,played=25(confirmed 20),end=25]",
            ],
        ),
        // Deltas still in flight from the interrupted response are dropped.
        (131, agent_audio("r1", "i1", 0x02, 160), &[]),
        // Echoes of the cleared marks are ignored.
        (132, echo(2), &[]),
        (132, echo(3), &[]),
        (140, audio_done("r1", "i1"), &[]),
        (140, response_done("r1", ResponseStatus::Cancelled), &[]),
        // The next response plays normally, with fresh positions.
        (900, response_started("r2"), &[]),
        (
            900,
            agent_audio("r2", "i2", 0x03, 160),
            &["C audio 160 #03", "C mark 4"],
        ),
        (920, echo(4), &[]),
    ]);
    let summary = s.call.summary(s.now);
    assert_eq!(summary.barge_ins, 1);
    assert_eq!(summary.stale_mark_echoes, 2);
    assert_eq!(summary.late_audio_dropped_ms, 20);
    assert_eq!(s.call.pending_marks(), 0);
}

#[test]
fn barge_in_before_any_echo_truncates_at_zero() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (0, response_started("r1"), &[]),
        (
            0,
            agent_audio("r1", "i1", 1, 160),
            &["C audio 160 #01", "C mark 1"],
        ),
        (
            5,
            speech_started(),
            &[
                "C clear",
                "A truncate i1 @0",
                "event barge-in cleared=1 [i1:sent=20,played=0,end=0]",
            ],
        ),
    ]);
}

#[test]
fn barge_in_in_a_later_chunk() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.step(0, response_started("r1"));
    // Five 100 ms chunks (800 bytes → 5 pieces of ≤ 162 bytes each): marks 1..=25.
    for chunk in 0..5u8 {
        let out = s.cmds(u64::from(chunk), agent_audio("r1", "i1", chunk, 800));
        assert_eq!(out.len(), 10);
    }
    // The caller hears the first 13 pieces: 2 chunks (1600 bytes) + 3 pieces of chunk 3.
    for mark in [3, 7, 10, 13] {
        assert!(s.step(500, echo(mark)).is_empty());
    }
    // 800 bytes → pieces of 162,162,162,162,152: 1600 + 486 = 2086 bytes = 260.75 ms.
    s.check(&[(
        1300,
        speech_started(),
        &[
            "C clear",
            "A truncate i1 @260",
            "event barge-in cleared=12 [i1:sent=500,played=260,end=260]",
        ],
    )]);
    for mark in 14..=25 {
        assert!(s.step(1301, echo(mark)).is_empty());
    }
    assert_eq!(s.call.summary(s.now).stale_mark_echoes, 12);
}

#[test]
fn no_barge_in_after_everything_played() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (0, response_started("r1"), &[]),
        (
            0,
            agent_audio("r1", "i1", 1, 160),
            &["C audio 160 #01", "C mark 1"],
        ),
        (
            0,
            agent_audio("r1", "i1", 2, 160),
            &["C audio 160 #02", "C mark 2"],
        ),
        (1, audio_done("r1", "i1"), &[]),
        (1, response_done("r1", ResponseStatus::Completed), &[]),
        (20, echo(1), &[]),
        (40, echo(2), &[]),
        // Nothing queued, nothing streaming: no clear, no truncate.
        (3000, speech_started(), &[]),
    ]);
    assert_eq!(s.call.summary(s.now).barge_ins, 0);
}

#[test]
fn fully_played_items_are_not_truncated_but_later_ones_are() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (0, response_started("r1"), &[]),
        (
            0,
            agent_audio("r1", "a", 1, 160),
            &["C audio 160 #01", "C mark 1"],
        ),
        (0, audio_done("r1", "a"), &[]),
        (
            0,
            agent_audio("r1", "b", 2, 160),
            &["C audio 160 #02", "C mark 2"],
        ),
        (
            0,
            agent_audio("r1", "b", 3, 160),
            &["C audio 160 #03", "C mark 3"],
        ),
        // Item a fully heard (round trip 0), b confirmed up to 20 ms, and its second piece,
        // queued long before, playing for 10 ms since.
        (20, echo(1), &[]),
        (40, echo(2), &[]),
        (
            50,
            speech_started(),
            &[
                "C clear",
                "A truncate b @30",
                "event barge-in cleared=1 [b:sent=40,played=30(confirmed 20),end=30]",
            ],
        ),
    ]);
}

#[test]
fn streaming_response_with_everything_heard_still_truncates_at_sent() {
    // All forwarded audio has been heard, but the response is still producing audio: the
    // caller heard exactly what was sent, and audio in flight must not count as heard.
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (0, response_started("r1"), &[]),
        (
            0,
            agent_audio("r1", "i1", 1, 160),
            &["C audio 160 #01", "C mark 1"],
        ),
        (20, echo(1), &[]),
        (
            30,
            speech_started(),
            &[
                "C clear",
                "A truncate i1 @20",
                "event barge-in cleared=0 [i1:sent=20,played=20,end=20]",
            ],
        ),
        (31, agent_audio("r1", "i1", 2, 160), &[]),
    ]);
}

#[test]
fn agent_that_does_not_interrupt_itself_is_cancelled() {
    let mut s = Scenario::ready(quiet_config(), REALTIME_NO_INTERRUPT);
    s.check(&[
        (0, response_started("r1"), &[]),
        (
            0,
            agent_audio("r1", "i1", 1, 320),
            &["C audio 162 #01", "C mark 1", "C audio 158 #01", "C mark 2"],
        ),
        (21, echo(1), &[]),
        (
            25,
            speech_started(),
            &[
                "C clear",
                "A cancel r1",
                "A truncate i1 @24",
                "event barge-in cleared=1 [i1:sent=40,played=24(confirmed 20),end=24] \
                 cancelled=r1",
            ],
        ),
        (26, agent_audio("r1", "i1", 2, 160), &[]),
        (27, response_done("r1", ResponseStatus::Cancelled), &[]),
        // A response running without audio yet is cancelled too (no clear: nothing playing).
        (100, response_started("r2"), &[]),
        (110, speech_started(), &["A cancel r2"]),
        (111, agent_audio("r2", "i2", 3, 160), &[]),
    ]);
}

#[test]
fn self_interrupting_agent_is_not_cancelled_after_its_response_ended() {
    let mut s = Scenario::ready(quiet_config(), REALTIME_NO_INTERRUPT);
    s.check(&[
        (0, response_started("r1"), &[]),
        (
            0,
            agent_audio("r1", "i1", 1, 160),
            &["C audio 160 #01", "C mark 1"],
        ),
        (1, response_done("r1", ResponseStatus::Completed), &[]),
        // Still playing, but no response is active: clear and truncate, no cancel.
        (
            5,
            speech_started(),
            &[
                "C clear",
                "A truncate i1 @0",
                "event barge-in cleared=1 [i1:sent=20,played=0,end=0]",
            ],
        ),
    ]);
}

#[test]
fn three_barge_ins_in_a_row_are_each_exact() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    let mut next_mark = 1u64;
    for (round, (pieces_heard, expected_ms)) in [(0u64, 0u64), (2, 40), (5, 100)].iter().enumerate()
    {
        let t = 1000 * round as u64;
        let response = format!("r{round}");
        let item = format!("i{round}");
        s.step(t, response_started(&response));
        // Eight 20 ms pieces.
        let first = next_mark;
        for k in 0..8u8 {
            let out = s.cmds(t, agent_audio(&response, &item, k, 160));
            assert_eq!(
                out,
                [
                    format!("C audio 160 #{k:02x}"),
                    format!("C mark {next_mark}")
                ]
            );
            next_mark += 1;
        }
        for m in first..first + pieces_heard {
            assert!(s.step(t + 10, echo(m)).is_empty());
        }
        let out = s.step(t + 20, speech_started());
        assert_eq!(
            out,
            [
                "C clear".to_string(),
                format!("A truncate {item} @{expected_ms}"),
                format!(
                    "event barge-in cleared={} [{item}:sent=160,played={expected_ms},end={expected_ms}]",
                    8 - pieces_heard
                ),
            ]
        );
        // Stale echoes of this round arrive late, some after the next response started.
        for m in first + pieces_heard..first + 8 {
            assert!(s.step(t + 30, echo(m)).is_empty());
        }
        s.step(t + 40, response_done(&response, ResponseStatus::Cancelled));
    }
    let summary = s.call.summary(s.now);
    assert_eq!(summary.barge_ins, 3);
    assert_eq!(summary.stale_mark_echoes, 8 + 6 + 3);
}

#[test]
fn stale_echoes_arriving_after_new_audio_do_not_advance_it() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (0, response_started("r1"), &[]),
        (
            0,
            agent_audio("r1", "i1", 1, 160),
            &["C audio 160 #01", "C mark 1"],
        ),
        (
            0,
            agent_audio("r1", "i1", 1, 160),
            &["C audio 160 #01", "C mark 2"],
        ),
        (
            10,
            speech_started(),
            &[
                "C clear",
                "A truncate i1 @0",
                "event barge-in cleared=2 [i1:sent=40,played=0,end=0]",
            ],
        ),
        (11, response_done("r1", ResponseStatus::Cancelled), &[]),
        (12, response_started("r2"), &[]),
        (
            12,
            agent_audio("r2", "i2", 2, 160),
            &["C audio 160 #02", "C mark 3"],
        ),
        (
            12,
            agent_audio("r2", "i2", 2, 160),
            &["C audio 160 #02", "C mark 4"],
        ),
        // Stale echoes of marks 1 and 2 arrive now: they must not count as r2 being heard.
        (13, echo(1), &[]),
        (13, echo(2), &[]),
        (
            14,
            speech_started(),
            &[
                "C clear",
                "A truncate i2 @0",
                "event barge-in cleared=2 [i2:sent=40,played=0,end=0]",
            ],
        ),
    ]);
}

#[test]
fn first_audio_latency_is_measured_from_speech_stop() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (1000, speech_started(), &[]),
        (2000, speech_stopped(), &[]),
        (2100, response_started("r1"), &[]),
        (
            2350,
            agent_audio("r1", "i1", 1, 160),
            &[
                "event first-audio CallerStoppedSpeaking 350ms",
                "C audio 160 #01",
                "C mark 1",
            ],
        ),
        (
            2360,
            agent_audio("r1", "i1", 1, 160),
            &["C audio 160 #01", "C mark 2"],
        ),
    ]);
}

#[test]
fn gpt_live_output_is_forwarded_and_never_truncated() {
    let mut s = Scenario::ready(quiet_config(), LIVE);
    let live_audio = |tag: u8| {
        In::Agent(bridge_core::agent::AgentEvent::Audio {
            audio: ulaw(tag, 160),
            response_id: None,
            item_id: None,
        })
    };
    s.check(&[
        (0, live_audio(1), &["C audio 160 #01", "C mark 1"]),
        (20, live_audio(2), &["C audio 160 #02", "C mark 2"]),
        (20, echo(1), &[]),
        // Caller audio keeps flowing while the agent speaks.
        (20, caller_audio(9, 160), &["A audio 160 #09"]),
    ]);
    // Even if a speech event arrived, there is nothing to truncate against: clear only.
    let out = s.step(30, speech_started());
    assert_eq!(
        out,
        [
            "C clear",
            "event barge-in cleared=1 [-:sent=40,played=20,end=none]"
        ]
    );
    // The continuous track is not discarded (it has no ids): output resumes at once.
    assert_eq!(s.step(40, live_audio(3)), ["C audio 160 #03", "C mark 3"]);
    let events: Vec<_> = s
        .outputs(50, hangup())
        .into_iter()
        .filter_map(|o| match o {
            Output::Event(event) => match *event {
                CallEvent::Ended(summary) => Some(summary),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(events[0].agent_audio_ms, 60);
}

#[test]
fn repeated_speech_start_before_the_cancelled_response_ends_is_not_a_second_barge_in() {
    let mut s = Scenario::ready(quiet_config(), REALTIME_NO_INTERRUPT);
    s.check(&[
        (0, response_started("r1"), &[]),
        (
            0,
            agent_audio("r1", "i1", 1, 160),
            &["C audio 160 #01", "C mark 1"],
        ),
        (
            5,
            speech_started(),
            &[
                "C clear",
                "A cancel r1",
                "A truncate i1 @0",
                "event barge-in cleared=1 [i1:sent=20,played=0,end=0] cancelled=r1",
            ],
        ),
        (6, speech_stopped(), &[]),
        // VAD fires again while r1's cancellation is still in flight: nothing to do.
        (7, speech_started(), &[]),
        (8, agent_audio("r1", "i1", 2, 160), &[]),
        (9, response_done("r1", ResponseStatus::Cancelled), &[]),
    ]);
    assert_eq!(s.call.summary(s.now).barge_ins, 1);
}

#[test]
fn audio_of_an_interrupted_response_is_dropped_even_after_its_response_done() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (100, response_started("r1"), &[]),
        (
            100,
            agent_audio("r1", "i1", 0x01, 160),
            &["C audio 160 #01", "C mark 1"],
        ),
        (
            110,
            speech_started(),
            &[
                "C clear",
                "A truncate i1 @0",
                "event barge-in cleared=1 [i1:sent=20,played=0,end=0]",
            ],
        ),
        (111, echo(1), &[]),
        (120, response_done("r1", ResponseStatus::Cancelled), &[]),
        // A delta of the interrupted response that arrives after its `response.done`
        // (out of order, or a misbehaving server) is still dropped.
        (121, agent_audio("r1", "i1", 0x02, 160), &[]),
    ]);
    assert_eq!(s.call.summary(s.now).late_audio_dropped_ms, 20);
}

fn min_speech(ms: u64) -> bridge_core::engine::CallConfig {
    bridge_core::engine::CallConfig {
        min_barge_in_speech: std::time::Duration::from_millis(ms),
        ..quiet_config()
    }
}

/// The agent speaks 100 ms (five marked pieces) at t = 0 ms, interrupting itself (Realtime
/// with `interrupt_response: false`: the engine cancels).
fn speaking(config: bridge_core::engine::CallConfig) -> Scenario {
    let mut s = Scenario::ready(config, REALTIME_NO_INTERRUPT);
    s.step(0, response_started("r1"));
    s.step(0, agent_audio("r1", "i1", 1, 800));
    s
}

#[test]
fn speech_shorter_than_the_minimum_interrupts_nothing() {
    let mut s = speaking(min_speech(300));
    assert_eq!(s.step(20, speech_started()), Vec::<String>::new());
    assert_eq!(s.next_deadline_ms(), Some(320));
    // A cough: 150 ms.
    assert_eq!(s.step(170, speech_stopped()), Vec::<String>::new());
    assert_eq!(s.next_deadline_ms(), None);
    assert_eq!(s.call.summary(s.now).barge_ins, 0);
    // The agent's speech goes on and is heard to its end.
    assert_eq!(s.step(180, echo(5)), Vec::<String>::new());
}

#[test]
fn speech_longer_than_the_minimum_interrupts_where_the_caller_is_then() {
    let mut s = speaking(min_speech(300));
    s.step(20, echo(1));
    s.step(20, speech_started());
    s.step(40, echo(2));
    // Still speaking 300 ms after the start: cleared now, truncated at what was heard now.
    s.check(&[(
        320,
        In::Timeout,
        &[
            "C clear",
            "A cancel r1",
            // Echoed to 40 ms; the third piece was on its way before, so it counts as heard
            // to its end.
            "A truncate i1 @60",
            "event barge-in cleared=3 [i1:sent=100,played=60(confirmed 40),end=60] cancelled=r1",
        ],
    )]);
    assert_eq!(s.call.summary(s.now).barge_ins, 1);
}

#[test]
fn zero_minimum_interrupts_at_the_speech_start() {
    let mut s = speaking(min_speech(0));
    assert_eq!(
        s.cmds(20, speech_started()),
        ["C clear", "A cancel r1", "A truncate i1 @0"]
    );
}
