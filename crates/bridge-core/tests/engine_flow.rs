//! Relay, pre-ready buffering, greeting, DTMF, transcripts and the transcoding path.

mod engine_support;

use std::time::Duration;

use bridge_core::agent::{AgentCapabilities, AgentEvent, ResponseStatus, Speaker, Usage};
use bridge_core::engine::{CallConfig, DtmfMode};
use bridge_core::format::{AudioFormat, Base64Audio};
use engine_support::*;

#[test]
fn caller_audio_before_started_is_ignored() {
    let mut s = Scenario::new(quiet_config());
    s.check(&[
        (0, In::Connected(REALTIME), &[]),
        (0, ready(), &["event agent-ready 0ms"]),
        (10, caller_audio(1, 160), &[]),
        (20, started(), &["event started CA1"]),
        (30, caller_audio(2, 160), &["A audio 160 #02"]),
    ]);
}

#[test]
fn audio_before_ready_is_buffered_and_flushed_in_order() {
    let mut s = Scenario::new(quiet_config());
    s.check(&[
        (0, started(), &["event started CA1"]),
        (0, caller_audio(1, 160), &[]),
        (20, caller_audio(2, 160), &[]),
        (40, dtmf('5'), &[]),
        (120, In::Connected(REALTIME), &[]),
        (140, caller_audio(3, 160), &[]),
        (
            250,
            ready(),
            &[
                "event agent-ready 250ms",
                "A audio 160 #01",
                "A audio 160 #02",
                "A context \"The caller pressed 5 on the keypad.\"",
                "A audio 160 #03",
            ],
        ),
        (260, caller_audio(4, 160), &["A audio 160 #04"]),
    ]);
    assert_eq!(s.call.summary(s.now).caller_audio_ms, 80);
}

#[test]
fn pre_ready_buffer_is_bounded_dropping_the_oldest() {
    let config = CallConfig {
        pre_ready_buffer: Duration::from_millis(40),
        ..quiet_config()
    };
    let mut s = Scenario::new(config);
    s.step(0, started());
    for tag in 1..=4u8 {
        assert!(
            s.step(u64::from(tag) * 20, caller_audio(tag, 160))
                .is_empty()
        );
    }
    s.step(100, In::Connected(REALTIME));
    s.check(&[(
        100,
        ready(),
        &[
            "event agent-ready 100ms",
            "A audio 160 #03",
            "A audio 160 #04",
        ],
    )]);
    let summary = s.call.summary(s.now);
    assert_eq!(summary.pre_ready_dropped_ms, 40);
    assert_eq!(summary.caller_audio_ms, 40);
}

#[test]
fn greeting_waits_for_ready_and_is_sent_once() {
    let config = CallConfig {
        greeting: Some("Say hello.".into()),
        ..quiet_config()
    };
    // Started first, then ready.
    let mut s = Scenario::new(config.clone());
    s.check(&[
        (0, started(), &["event started CA1"]),
        (10, In::Connected(REALTIME), &[]),
        (
            300,
            ready(),
            &["event agent-ready 300ms", "A respond \"Say hello.\""],
        ),
        (301, ready(), &[]),
        (600, response_started("g"), &[]),
        (
            700,
            agent_audio("g", "gi", 1, 160),
            &[
                "event first-audio Greeting 400ms",
                "C audio 160 #01",
                "C mark 1",
            ],
        ),
    ]);
    // Ready first, then started: the greeting follows the caller's start.
    let mut s = Scenario::new(config);
    s.check(&[
        (0, In::Connected(REALTIME), &[]),
        (100, ready(), &["event agent-ready 100ms"]),
        (
            150,
            started(),
            &["event started CA1", "A respond \"Say hello.\""],
        ),
        (160, started(), &[]),
    ]);
}

#[test]
fn no_greeting_without_one_configured() {
    let mut s = Scenario::new(quiet_config());
    s.check(&[
        (0, started(), &["event started CA1"]),
        (0, In::Connected(REALTIME), &[]),
        (5, ready(), &["event agent-ready 5ms"]),
    ]);
}

#[test]
fn dtmf_modes() {
    let mut off = Scenario::ready(
        CallConfig {
            dtmf: DtmfMode::Off,
            ..quiet_config()
        },
        REALTIME,
    );
    assert!(off.step(10, dtmf('1')).is_empty());

    let mut forward = Scenario::ready(quiet_config(), REALTIME);
    assert_eq!(
        forward.step(10, dtmf('#')),
        ["A context \"The caller pressed # on the keypad.\""]
    );

    let mut respond = Scenario::ready(
        CallConfig {
            dtmf: DtmfMode::ForwardAndRespond,
            ..quiet_config()
        },
        REALTIME,
    );
    assert_eq!(
        respond.step(10, dtmf('3')),
        [
            "A context \"The caller pressed 3 on the keypad.\"",
            "A respond"
        ]
    );
}

#[test]
fn dtmf_while_the_agent_speaks_does_not_disturb_playout() {
    let mut s = Scenario::ready(
        CallConfig {
            dtmf: DtmfMode::ForwardAndRespond,
            ..quiet_config()
        },
        REALTIME,
    );
    s.check(&[
        (0, response_started("r1"), &[]),
        (
            0,
            agent_audio("r1", "i1", 1, 160),
            &["C audio 160 #01", "C mark 1"],
        ),
        // Context goes at once; the response request waits for r1 to end. No clear.
        (
            10,
            dtmf('7'),
            &["A context \"The caller pressed 7 on the keypad.\""],
        ),
        (
            15,
            agent_audio("r1", "i1", 2, 160),
            &["C audio 160 #02", "C mark 2"],
        ),
        (20, echo(1), &[]),
        (
            30,
            response_done("r1", ResponseStatus::Completed),
            &["A respond"],
        ),
        (40, echo(2), &[]),
    ]);
}

#[test]
fn transcripts_and_usage_reach_observers_and_the_summary() {
    let mut s = Scenario::ready(quiet_config(), REALTIME);
    s.check(&[
        (
            10,
            transcript(Speaker::Caller, "hello"),
            &["event transcript Caller \"hello\""],
        ),
        (
            11,
            In::Agent(AgentEvent::Transcript {
                speaker: Speaker::Agent,
                text: "Hi th".into(),
                is_final: false,
                timing: None,
                item_id: None,
            }),
            &[],
        ),
        (
            12,
            transcript(Speaker::Agent, "Hi there"),
            &["event transcript Agent \"Hi there\""],
        ),
        (
            13,
            In::Agent(AgentEvent::ResponseDone {
                response_id: "r1".into(),
                status: ResponseStatus::Completed,
                usage: Some(Usage {
                    input_tokens: 10,
                    output_tokens: 20,
                    ..Usage::default()
                }),
            }),
            &["event usage in=10 out=20"],
        ),
        (
            14,
            In::Agent(AgentEvent::Usage(Usage {
                input_tokens: 1,
                output_tokens: 2,
                billed_seconds: Some(3.5),
                ..Usage::default()
            })),
            &["event usage in=1 out=2"],
        ),
        (
            15,
            In::Agent(AgentEvent::Error {
                code: Some("conversation_already_has_active_response".into()),
                message: "busy".into(),
                fatal: false,
            }),
            &["event error Agent \"busy\""],
        ),
    ]);
    let summary = s.call.summary(s.now);
    assert_eq!(summary.transcript_turns, 2);
    assert_eq!(summary.usage.input_tokens, 11);
    assert_eq!(summary.usage.output_tokens, 22);
    assert_eq!(summary.usage.billed_seconds, Some(3.5));
}

const PCM24: AgentCapabilities = AgentCapabilities {
    input_format: AudioFormat::Pcm16 { rate: 24_000 },
    output_format: AudioFormat::Pcm16 { rate: 24_000 },
    ..REALTIME
};

fn pcm24_audio(response: &str, item: &str, samples: usize) -> In {
    let raw: Vec<u8> = std::iter::repeat_n([0u8, 0u8], samples).flatten().collect();
    In::Agent(AgentEvent::Audio {
        audio: Base64Audio::encode(&raw),
        response_id: Some(response.into()),
        item_id: Some(item.into()),
    })
}

#[test]
fn transcoding_path_when_formats_differ() {
    let mut s = Scenario::ready(quiet_config(), PCM24);
    // Caller μ-law 20 ms (160 bytes) → PCM16 24 kHz (480 samples, 960 bytes).
    let out = s.step(10, caller_audio(0xFF, 160));
    assert_eq!(out, ["A audio 960 #00"]);

    s.step(20, response_started("r1"));
    // 60 ms of agent PCM16 at 24 kHz: three 20 ms pieces (960 bytes), each → 160 μ-law bytes.
    let out = s.cmds(20, pcm24_audio("r1", "i1", 1440));
    assert_eq!(
        out,
        [
            "C audio 160 #ff",
            "C mark 1",
            "C audio 160 #ff",
            "C mark 2",
            "C audio 160 #ff",
            "C mark 3",
        ]
    );
    s.step(45, echo(1));
    // Positions are in agent samples (24 kHz): one 20 ms piece confirmed (a 5 ms round
    // trip), and 5 ms of the next one, queued long before, interpolated at real time.
    assert_eq!(
        s.step(50, speech_started()),
        [
            "C clear",
            "A truncate i1 @25",
            "event barge-in cleared=2 [i1:sent=60,played=25(confirmed 20),end=25]"
        ]
    );
}

#[test]
fn unsupported_conversion_fails_the_call() {
    let caps = AgentCapabilities {
        output_format: AudioFormat::Pcm16 { rate: 44_100 },
        ..REALTIME
    };
    let mut s = Scenario::new(quiet_config());
    s.step(0, started());
    let out = s.step(10, In::Connected(caps));
    assert_eq!(out.len(), 5, "{out:?}");
    assert!(out[0].starts_with("event error Agent \"cannot transcode"));
    assert_eq!(
        &out[1..],
        [
            "A close",
            "C close",
            "event ended agent_failed",
            "finished agent_failed"
        ]
    );
}
