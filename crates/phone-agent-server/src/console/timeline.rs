//! The timeline picture of one call, drawn server-side as SVG from its record.
//!
//! One time axis, three lanes:
//!
//! * **agent**: a bar per agent turn, from its first audio sent to the caller to the first of:
//!   the barge-in that cut it (drawn as a cut mark), the next agent turn, the call's end. Above
//!   each bar, the turn's latency (its trigger → first audio) as a bracket and a label.
//! * **caller**: a bar per caller turn the agent answered, ending where the caller stopped
//!   speaking (the agent's answer minus its latency) and starting where the caller cut in, or
//!   else where the agent's previous turn ended. Barge-ins are vertical markers across both
//!   speech lanes.
//! * **tools**: a bar per tool call, from its start for its duration, with its name.
//!
//! The engine reports turns, not frames, so an agent bar is the span of its turn on the line
//! (the audio may have finished a little earlier when the caller was quiet). Every text in the
//! picture (tool names) goes through [`super::escape::html`]; styling comes from classes in the
//! console's CSS (no `style` attributes, so the page's CSP can forbid inline styles).

use std::fmt::Write as _;

use super::escape::html;
use crate::record::CallRecord;

/// The picture's width in user units.
const WIDTH: f64 = 1000.0;
/// Left margin (lane labels).
const LEFT: f64 = 70.0;
/// Right margin.
const RIGHT: f64 = 20.0;
const CALLER_Y: f64 = 40.0;
const AGENT_Y: f64 = 90.0;
const TOOLS_Y: f64 = 140.0;
const LANE_H: f64 = 22.0;
const AXIS_Y: f64 = 180.0;
const HEIGHT: f64 = 205.0;

/// A span of the picture, in milliseconds since the stream started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Span {
    pub(crate) start_ms: u64,
    pub(crate) end_ms: u64,
}

/// What the picture shows, computed from the record (kept apart from the drawing so it can be
/// checked exactly).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Layout {
    pub(crate) duration_ms: u64,
    /// Agent turns: span, latency, whether cut by a barge-in.
    pub(crate) agent: Vec<(Span, u64, bool)>,
    pub(crate) caller: Vec<Span>,
    pub(crate) barge_ins: Vec<u64>,
    /// Tool calls: span and name.
    pub(crate) tools: Vec<(Span, String)>,
}

/// The layout of `record`'s timeline.
pub(crate) fn layout(record: &CallRecord) -> Layout {
    let duration = record.duration_ms;
    let turns = &record.timeline.agent_turns;
    let barge_ins: Vec<u64> = record.timeline.barge_ins.iter().map(|b| b.at_ms).collect();
    let mut agent = Vec::new();
    for (i, turn) in turns.iter().enumerate() {
        let start = turn.at_ms.min(duration);
        let next = turns.get(i + 1).map_or(duration, |t| t.at_ms.min(duration));
        let cut = barge_ins.iter().copied().find(|&b| b >= start && b < next);
        let end = cut.unwrap_or(next).max(start);
        agent.push((
            Span {
                start_ms: start,
                end_ms: end,
            },
            turn.latency_ms,
            cut.is_some(),
        ));
    }
    let mut caller: Vec<Span> = Vec::new();
    for (i, turn) in turns.iter().enumerate() {
        if turn.trigger != "caller_stopped_speaking" {
            continue;
        }
        let end = turn.at_ms.saturating_sub(turn.latency_ms).min(duration);
        let floor = caller.last().map_or(0, |s| s.end_ms);
        let cut_in = barge_ins.iter().copied().rfind(|&b| b >= floor && b <= end);
        let after_agent = agent[..i]
            .iter()
            .rev()
            .map(|(s, _, _)| s.end_ms)
            .find(|&e| e <= end);
        let start = cut_in.or(after_agent).unwrap_or(floor).max(floor).min(end);
        caller.push(Span {
            start_ms: start,
            end_ms: end,
        });
    }
    let tools = record
        .tool_calls
        .iter()
        .map(|t| {
            let start = t.at_ms.min(duration);
            let end = (t.at_ms + t.latency_ms.unwrap_or(0))
                .min(duration)
                .max(start);
            (
                Span {
                    start_ms: start,
                    end_ms: end,
                },
                t.name.clone(),
            )
        })
        .collect();
    Layout {
        duration_ms: duration,
        agent,
        caller,
        barge_ins,
        tools,
    }
}

/// A tick step (ms) giving about eight ticks over `duration_ms`.
fn tick_step(duration_ms: u64) -> u64 {
    let target = duration_ms.max(1) / 8;
    [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
        600_000, 1_800_000,
    ]
    .into_iter()
    .find(|&s| s >= target)
    .unwrap_or(3_600_000)
}

fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// The SVG element of `record`'s timeline.
pub(crate) fn svg(record: &CallRecord) -> String {
    let l = layout(record);
    let scale = (WIDTH - LEFT - RIGHT) / l.duration_ms.max(1) as f64;
    let x = |ms: u64| LEFT + ms as f64 * scale;
    let w = |s: &Span| ((s.end_ms - s.start_ms) as f64 * scale).max(2.0);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="timeline" id="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Call timeline">"#
    );
    for (label, y) in [("caller", CALLER_Y), ("agent", AGENT_Y), ("tools", TOOLS_Y)] {
        let _ = write!(
            out,
            r#"<text class="lane-label" x="4" y="{:.1}">{label}</text><line class="lane" x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/>"#,
            y + LANE_H * 0.7,
            WIDTH - RIGHT,
            y + LANE_H,
            y + LANE_H
        );
    }
    for s in &l.caller {
        let _ = write!(
            out,
            r#"<rect class="bar caller" x="{:.1}" y="{CALLER_Y}" width="{:.1}" height="{LANE_H}"><title>caller speaking {}–{}</title></rect>"#,
            x(s.start_ms),
            w(s),
            seconds(s.start_ms),
            seconds(s.end_ms)
        );
    }
    for (s, latency, cut) in &l.agent {
        let _ = write!(
            out,
            r#"<rect class="bar agent{}" x="{:.1}" y="{AGENT_Y}" width="{:.1}" height="{LANE_H}"><title>agent turn {}–{}, {latency} ms to first audio</title></rect>"#,
            if *cut { " interrupted" } else { "" },
            x(s.start_ms),
            w(s),
            seconds(s.start_ms),
            seconds(s.end_ms)
        );
        let from = x(s.start_ms.saturating_sub(*latency));
        let _ = write!(
            out,
            r#"<line class="latency" x1="{from:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/><text class="latency-label" x="{:.1}" y="{:.1}">{latency} ms</text>"#,
            x(s.start_ms),
            AGENT_Y - 4.0,
            AGENT_Y - 4.0,
            x(s.start_ms),
            AGENT_Y - 8.0
        );
        if *cut {
            let _ = write!(
                out,
                r#"<line class="cut" x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}"><title>agent cut at {3}</title></line>"#,
                x(s.end_ms),
                AGENT_Y - 2.0,
                AGENT_Y + LANE_H + 2.0,
                seconds(s.end_ms)
            );
        }
    }
    for &b in &l.barge_ins {
        let _ = write!(
            out,
            r#"<line class="barge-in" x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}"><title>barge-in at {3}</title></line>"#,
            x(b),
            CALLER_Y - 6.0,
            AGENT_Y + LANE_H + 6.0,
            seconds(b)
        );
    }
    for (s, name) in &l.tools {
        let _ = write!(
            out,
            r#"<rect class="bar tool" x="{:.1}" y="{TOOLS_Y}" width="{:.1}" height="{LANE_H}"><title>{} {} ms</title></rect><text class="tool-label" x="{:.1}" y="{:.1}">{}</text>"#,
            x(s.start_ms),
            w(s),
            html(name),
            s.end_ms - s.start_ms,
            x(s.start_ms) + 3.0,
            TOOLS_Y + LANE_H * 0.7,
            html(name)
        );
    }
    let step = tick_step(l.duration_ms);
    let _ = write!(
        out,
        r#"<line class="axis" x1="{LEFT}" x2="{:.1}" y1="{AXIS_Y}" y2="{AXIS_Y}"/>"#,
        WIDTH - RIGHT
    );
    let mut t = 0;
    while t <= l.duration_ms {
        let _ = write!(
            out,
            r#"<line class="tick" x1="{0:.1}" x2="{0:.1}" y1="{AXIS_Y}" y2="{1:.1}"/><text class="tick-label" x="{0:.1}" y="{2:.1}">{3}</text>"#,
            x(t),
            AXIS_Y + 5.0,
            AXIS_Y + 18.0,
            seconds(t)
        );
        t += step;
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{AgentTurnMark, BargeInMark, ToolCallRecord};

    fn record() -> CallRecord {
        let json = serde_json::json!({
            "call_sid": "CA1", "stream_sid": null, "account_sid": null, "direction": "inbound",
            "from": null, "to": null, "profile": "default", "backend": "realtime", "model": null,
            "voice": null, "times": {"webhook_at_ms": null, "stream_started_at_ms": 0,
            "agent_ready_at_ms": null, "first_agent_audio_at_ms": null, "ended_at_ms": 10000},
            "duration_ms": 10000, "end_reason": "caller_hung_up", "end_detail": null,
            "barge_ins": 1, "transcript": [], "tool_calls": [], "usage": {"input_tokens": 0,
            "output_tokens": 0, "input_audio_tokens": 0, "output_audio_tokens": 0,
            "billed_seconds": null}, "cost": {"usd": 0.0, "text_input_per_mtok": 0.0,
            "text_output_per_mtok": 0.0, "audio_input_per_mtok": 0.0,
            "audio_output_per_mtok": 0.0, "live_per_minute": 0.0},
            "latency": {"agent_connect_ms": null, "first_audio_ms": null,
            "relay_caller_to_agent": {"p50_ms": null, "p99_ms": null},
            "relay_agent_to_caller": {"p50_ms": null, "p99_ms": null}},
        });
        let mut r: CallRecord = serde_json::from_value(json).unwrap();
        let turn = |at_ms, latency_ms, trigger: &'static str| AgentTurnMark {
            at_ms,
            latency_ms,
            trigger: trigger.into(),
        };
        r.timeline.agent_turns = vec![
            turn(500, 300, "greeting"),
            turn(4000, 600, "caller_stopped_speaking"),
            turn(6000, 200, "tool_results"),
        ];
        r.timeline.barge_ins = vec![BargeInMark { at_ms: 1500 }];
        r.tool_calls = vec![ToolCallRecord {
            call_id: "c1".into(),
            name: "<b>lookup</b>".into(),
            arguments: serde_json::Value::Null,
            outcome: "ok".into(),
            output: None,
            latency_ms: Some(1200),
            at_ms: 4500,
            action: None,
        }];
        r
    }

    #[test]
    fn lays_out_turns_barge_ins_and_tools() {
        let l = layout(&record());
        let span = |start_ms, end_ms| Span { start_ms, end_ms };
        assert_eq!(
            l.agent,
            vec![
                (span(500, 1500), 300, true),
                (span(4000, 6000), 600, false),
                (span(6000, 10000), 200, false),
            ]
        );
        // The caller cut in at 1.5 s and stopped 600 ms before the answer's first audio.
        assert_eq!(l.caller, vec![span(1500, 3400)]);
        assert_eq!(l.barge_ins, vec![1500]);
        assert_eq!(
            l.tools,
            vec![(span(4500, 5700), "<b>lookup</b>".to_owned())]
        );
    }

    #[test]
    fn draws_escaped_svg_with_classes_only() {
        let svg = svg(&record());
        assert!(svg.starts_with("<svg class=\"timeline\""));
        assert_eq!(svg.matches("class=\"bar caller\"").count(), 1);
        assert_eq!(svg.matches("class=\"bar agent").count(), 3);
        assert_eq!(svg.matches("class=\"bar agent interrupted\"").count(), 1);
        assert_eq!(svg.matches("class=\"barge-in\"").count(), 1);
        assert_eq!(svg.matches("class=\"cut\"").count(), 1);
        assert_eq!(svg.matches("class=\"bar tool\"").count(), 1);
        assert!(svg.contains("&lt;b&gt;lookup&lt;/b&gt;"));
        assert!(!svg.contains("<b>"));
        assert!(!svg.contains("style="));
        assert!(svg.contains(">600 ms</text>"));
        // Ticks every two seconds over ten seconds, 0 s to 10 s.
        assert_eq!(svg.matches("class=\"tick\"").count(), 6);
        assert!(svg.contains(">10s</text>"));
    }
}
