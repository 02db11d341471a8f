//! The console's HTML, rendered on the server. Every value that a caller, a tool or the
//! database controls goes through [`html`]; pages have no inline script and no `style`
//! attributes (the CSP forbids both), only the console's own JS and CSS files.

use std::fmt::Write as _;

use super::escape::{html, url_component};
use super::history::{Filters, Period, Totals};
use super::live::{Line, LiveSummary};
use crate::record::CallRecord;

/// A whole page: `body` inside the common layout (`csrf`: the session's token, for the
/// sign-out form; `None` on the sign-in page).
pub(crate) fn layout(title: &str, csrf: Option<&str>, body: &str) -> String {
    let nav = match csrf {
        Some(csrf) => format!(
            r#"<nav><a href="/console">Live calls</a> <a href="/console/history">History</a><form method="post" action="/console/logout" class="inline"><input type="hidden" name="csrf" value="{}"><button type="submit">Sign out</button></form></nav>"#,
            html(csrf)
        ),
        None => String::new(),
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · phone-agent console</title>
<link rel="stylesheet" href="/console/assets/console.css">
<script src="/console/assets/console.js" defer></script>
</head><body><header><span class="brand">phone-agent console</span>{nav}</header>
<main>{body}</main></body></html>
"#,
        html(title)
    )
}

/// The sign-in form (`failed`: the previous attempt had a wrong token).
pub(crate) fn login(failed: bool) -> String {
    let error = if failed {
        r#"<p class="error" id="login-error">Wrong token.</p>"#
    } else {
        ""
    };
    layout(
        "Sign in",
        None,
        &format!(
            r#"<h1>Sign in</h1>{error}<form method="post" action="/console/login" class="login"><label>Admin token <input type="password" name="token" id="token" autocomplete="current-password" required></label><button type="submit" id="sign-in">Sign in</button></form>"#
        ),
    )
}

/// `ms` as `MM:SS` (or `H:MM:SS`).
pub(crate) fn clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// Unix epoch milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn transcript_item(speaker: &str, at_ms: u64, text: &str, extra: &str) -> String {
    format!(
        r#"<li class="line {0}"><span class="at">{1}</span> <span class="speaker">{0}</span> <span class="text">{2}</span>{extra}</li>"#,
        html(speaker),
        clock(at_ms),
        html(text)
    )
}

/// A live call as the page shows it: summary, latest lines, lines so far, transfer destinations.
pub(crate) type LiveView = (LiveSummary, Vec<Line>, usize, Vec<String>);

/// The live view: every live call with its transcript and actions.
pub(crate) fn live(calls: &[LiveView], csrf: &str) -> String {
    let mut body = format!(
        r#"<h1>Live calls <span class="count" id="live-count">{}</span></h1><div id="live" data-events="/console/events">"#,
        calls.len()
    );
    if calls.is_empty() {
        body.push_str(r#"<p class="empty" id="no-calls">No live calls on this instance.</p>"#);
    }
    for (call, lines, total, destinations) in calls {
        let sid = html(&call.call_sid);
        let path = url_component(&call.call_sid);
        let _ = write!(
            body,
            r#"<section class="call" data-call="{sid}" data-started="{}" data-lines="{total}"><h2><a href="/console/calls/{path}">{sid}</a></h2><dl>
<dt>From</dt><dd>{}</dd><dt>To</dt><dd>{}</dd><dt>Profile</dt><dd>{}</dd><dt>Back end</dt><dd>{}</dd>
<dt>Duration</dt><dd data-field="duration">–</dd><dt>Speaking</dt><dd data-field="speaking">{}</dd>
<dt>Barge-ins</dt><dd data-field="barge_ins">{}</dd><dt>Tool calls</dt><dd data-field="tool_calls">{}</dd></dl><ol class="transcript">"#,
            call.started_at_ms,
            html(&call.from),
            html(&call.to),
            html(&call.profile),
            html(call.backend),
            html(call.speaking),
            call.barge_ins,
            call.tool_calls
        );
        for line in lines {
            body.push_str(&transcript_item(line.speaker, line.at_ms, &line.text, ""));
        }
        let csrf = html(csrf);
        let _ = write!(
            body,
            r#"</ol><div class="actions"><form method="post" action="/console/calls/{path}/hangup"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" class="danger hangup">Hang up…</button></form>"#
        );
        if !destinations.is_empty() {
            let _ = write!(
                body,
                r#"<form method="post" action="/console/calls/{path}/transfer"><input type="hidden" name="csrf" value="{csrf}"><select name="destination">"#
            );
            for d in destinations {
                let _ = write!(body, r#"<option value="{0}">{0}</option>"#, html(d));
            }
            body.push_str(
                r#"</select> <button type="submit" class="transfer">Transfer…</button></form>"#,
            );
        }
        body.push_str("</div></section>");
    }
    body.push_str("</div>");
    layout("Live calls", Some(csrf), &body)
}

/// The page asking to confirm an action on a live call (`fields`: the form's other fields).
pub(crate) fn confirm(
    csrf: &str,
    call_sid: &str,
    action: &str,
    question: &str,
    fields: &[(&str, &str)],
) -> String {
    let mut hidden = String::new();
    for (name, value) in fields {
        let _ = write!(
            hidden,
            r#"<input type="hidden" name="{}" value="{}">"#,
            html(name),
            html(value)
        );
    }
    layout(
        "Confirm",
        Some(csrf),
        &format!(
            r#"<h1>{}</h1><form method="post" action="/console/calls/{}/{}" class="confirm"><input type="hidden" name="csrf" value="{}"><input type="hidden" name="confirm" value="yes">{hidden}<button type="submit" class="danger" id="confirm">Yes, do it</button> <a href="/console">Cancel</a></form>"#,
            html(question),
            url_component(call_sid),
            html(action),
            html(csrf)
        ),
    )
}

/// A short page saying what happened (after an action, or an error).
pub(crate) fn message(csrf: &str, title: &str, text: &str) -> String {
    layout(
        title,
        Some(csrf),
        &format!(
            r#"<h1>{}</h1><p id="message">{}</p><p><a href="/console">Back to the live calls</a></p>"#,
            html(title),
            html(text)
        ),
    )
}

fn money(usd: f64) -> String {
    format!("${usd:.4}")
}

fn opt_ms(v: Option<u64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v} ms"))
}

/// The history: filters, totals and the calls.
pub(crate) fn history(
    csrf: &str,
    filters: &Filters,
    totals: &Totals,
    calls: &[serde_json::Value],
    note: Option<&str>,
) -> String {
    let mut body = String::from(
        r#"<h1>History</h1><form method="get" action="/console/history" class="filters"><label>Period <select name="period">"#,
    );
    for p in Period::ALL {
        let _ = write!(
            body,
            r#"<option value="{}"{}>{}</option>"#,
            p.key(),
            if *p == filters.period {
                " selected"
            } else {
                ""
            },
            p.label()
        );
    }
    let field = |name: &str, label: &str, value: &Option<String>| {
        format!(
            r#"<label>{label} <input type="text" name="{name}" value="{}"></label>"#,
            html(value.as_deref().unwrap_or_default())
        )
    };
    body.push_str("</select></label>");
    body.push_str(&field("number", "Number", &filters.number));
    body.push_str(&field("end_reason", "End reason", &filters.end_reason));
    body.push_str(&field("profile", "Profile", &filters.profile));
    body.push_str(r#"<button type="submit">Filter</button></form>"#);
    let _ = write!(
        body,
        r#"<dl class="totals" id="totals"><dt>Calls</dt><dd>{}</dd><dt>Minutes</dt><dd>{:.1}</dd><dt>Cost</dt><dd>{}</dd><dt>Median first-audio latency</dt><dd>{}</dd></dl>"#,
        totals.calls,
        totals.minutes,
        money(totals.cost_usd),
        opt_ms(totals.median_first_audio_ms)
    );
    if let Some(note) = note {
        let _ = write!(body, r#"<p class="note">{}</p>"#, html(note));
    }
    body.push_str(r#"<table class="calls" id="history"><thead><tr><th>Started (UTC)</th><th>Call</th><th>From</th><th>To</th><th>Profile</th><th>Duration</th><th>End reason</th><th>Cost</th></tr></thead><tbody>"#);
    for call in calls {
        let s = |k: &str| call[k].as_str().unwrap_or("–").to_owned();
        let sid = s("call_sid");
        let started = call["times"]["stream_started_at_ms"]
            .as_i64()
            .or_else(|| call["created_at_ms"].as_i64())
            .map_or_else(|| "–".to_owned(), utc);
        let _ = write!(
            body,
            r#"<tr><td>{}</td><td><a href="/console/calls/{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            html(&started),
            url_component(&sid),
            html(&sid),
            html(&s("from")),
            html(&s("to")),
            html(&s("profile")),
            call["duration_ms"]
                .as_u64()
                .map_or_else(|| "–".to_owned(), clock),
            html(&s("end_reason")),
            call["cost"]["usd"]
                .as_f64()
                .map_or_else(|| "–".to_owned(), money)
        );
    }
    body.push_str("</tbody></table>");
    layout("History", Some(csrf), &body)
}

fn json_block(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        v => serde_json::to_string_pretty(v).unwrap_or_default(),
    };
    format!("<pre>{}</pre>", html(&text))
}

/// One call: its record, timeline, transcript and tool calls.
pub(crate) fn call(csrf: &str, record: &CallRecord, timeline_svg: &str) -> String {
    let r = record;
    let opt = |v: &Option<String>| html(v.as_deref().unwrap_or("–"));
    let mut body = format!(
        r#"<h1>Call <span id="call-sid">{}</span></h1><dl class="record">
<dt>Started (UTC)</dt><dd>{}</dd><dt>Direction</dt><dd>{}</dd><dt>From</dt><dd>{}</dd><dt>To</dt><dd>{}</dd>
<dt>Profile</dt><dd>{}</dd><dt>Back end</dt><dd>{}</dd><dt>Model</dt><dd>{}</dd><dt>Duration</dt><dd>{}</dd>
<dt>End reason</dt><dd id="end-reason">{}</dd><dt>Detail</dt><dd>{}</dd><dt>Barge-ins</dt><dd>{}</dd>
<dt>Agent connect</dt><dd>{}</dd><dt>First audio</dt><dd>{}</dd><dt>Cost</dt><dd id="cost">{}</dd>
<dt>Tokens</dt><dd>{} in ({} audio), {} out ({} audio)</dd><dt>Twilio status</dt><dd>{}</dd></dl>"#,
        html(&r.call_sid),
        html(&utc(r.times.stream_started_at_ms)),
        html(&r.direction),
        opt(&r.from),
        opt(&r.to),
        html(&r.profile),
        html(&r.backend),
        opt(&r.model),
        clock(r.duration_ms),
        html(&r.end_reason),
        opt(&r.end_detail),
        r.barge_ins,
        opt_ms(r.latency.agent_connect_ms),
        opt_ms(r.latency.first_audio_ms),
        money(r.cost.usd),
        r.usage.input_tokens,
        r.usage.input_audio_tokens,
        r.usage.output_tokens,
        r.usage.output_audio_tokens,
        opt(&r.twilio.status)
    );
    if r.recording_path.is_some() {
        let _ = write!(
            body,
            r#"<h2>Recording</h2><audio id="recording" controls preload="none" src="/console/calls/{}/recording.wav"></audio>"#,
            html(&r.call_sid)
        );
    }
    let _ = write!(
        body,
        r#"<h2>Timeline</h2><div class="timeline-box">{timeline_svg}</div><p class="legend"><span class="key caller">caller</span> <span class="key agent">agent</span> <span class="key interrupted">agent, cut by a barge-in</span> <span class="key barge">barge-in</span> <span class="key tool">tool call</span>; numbers above agent turns: ms from the turn's trigger to its first audio.</p>"#
    );
    body.push_str(r#"<h2>Transcript</h2><ol class="transcript" id="transcript">"#);
    for t in &r.transcript {
        let extra = match (&t.unheard_text, t.interrupted) {
            (Some(rest), true) if !rest.is_empty() => format!(
                r#" <span class="unheard" title="generated, not heard">[cut: {}]</span>"#,
                html(rest)
            ),
            (_, true) => r#" <span class="unheard">[cut]</span>"#.to_owned(),
            _ => String::new(),
        };
        body.push_str(&transcript_item(&t.speaker, t.at_ms, &t.text, &extra));
    }
    body.push_str("</ol>");
    body.push_str(r#"<h2>Tool calls</h2><table class="tools" id="tool-calls"><thead><tr><th>At</th><th>Tool</th><th>Arguments</th><th>Result</th><th>Outcome</th><th>Duration</th><th>Action</th></tr></thead><tbody>"#);
    for t in &r.tool_calls {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            clock(t.at_ms),
            html(&t.name),
            json_block(&t.arguments),
            t.output.as_ref().map_or_else(|| "–".to_owned(), json_block),
            html(&t.outcome),
            opt_ms(t.latency_ms),
            opt(&t.action)
        );
    }
    body.push_str("</tbody></table>");
    layout(&format!("Call {}", r.call_sid), Some(csrf), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_709_251_199_000), "2024-02-29 23:59:59");
        assert_eq!(utc(1_798_761_600_000), "2027-01-01 00:00:00");
        assert_eq!(clock(61_999), "01:01");
        assert_eq!(clock(3_723_000), "1:02:03");
    }

    #[test]
    fn the_layout_has_no_inline_script_or_style() {
        let page = login(true);
        assert!(page.contains(r#"<script src="/console/assets/console.js" defer></script>"#));
        assert_eq!(page.matches("<script").count(), 1);
        assert!(!page.contains("style="));
        assert!(!page.contains("<style"));
        assert!(!page.contains(" on"), "no event handler attributes");
    }

    #[test]
    fn live_lines_are_escaped() {
        let summary = LiveSummary {
            call_sid: "CA1".into(),
            from: "+44********56".into(),
            to: "<i>".into(),
            profile: "default".into(),
            backend: "realtime",
            started_at_ms: 1,
            speaking: "agent",
            barge_ins: 0,
            tool_calls: 0,
        };
        let line = Line {
            speaker: "caller",
            text: "<script>alert(1)</script>".into(),
            at_ms: 1500,
        };
        let page = live(
            &[(summary, vec![line], 1, vec!["front\"desk".into()])],
            "tok",
        );
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("<dd>&lt;i&gt;</dd>"));
        assert!(page.contains(r#"<option value="front&quot;desk">"#));
        assert_eq!(page.matches("<script").count(), 1);
    }
}
