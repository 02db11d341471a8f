//! Aggregation and reporting: percentiles, the per-level result, the table, the JSON line.

use std::collections::BTreeMap;

use serde_json::json;

/// A latency distribution, from samples in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Dist {
    pub(crate) n: usize,
    pub(crate) p50_ms: f64,
    /// Reported for tool round trips only (the relay columns keep p50 / p99 / max).
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

impl Dist {
    /// Sorts `samples` and reads the nearest-rank percentiles.
    pub(crate) fn of(samples: &mut [u32]) -> Dist {
        if samples.is_empty() {
            return Dist::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            f64::from(samples[rank - 1]) / 1000.0
        };
        Dist {
            n: samples.len(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }

    fn cell(&self) -> String {
        if self.n == 0 {
            return "-".to_owned();
        }
        format!(
            "{} / {} / {}",
            ms(self.p50_ms),
            ms(self.p99_ms),
            ms(self.max_ms)
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({"n": self.n, "p50": round3(self.p50_ms), "p99": round3(self.p99_ms),
               "max": round3(self.max_ms)})
    }

    /// p50 / p90 / p99 / max.
    fn cell4(&self) -> String {
        if self.n == 0 {
            return "-".to_owned();
        }
        format!(
            "{} / {} / {} / {}",
            ms(self.p50_ms),
            ms(self.p90_ms),
            ms(self.p99_ms),
            ms(self.max_ms)
        )
    }

    fn json4(&self) -> serde_json::Value {
        json!({"n": self.n, "p50": round3(self.p50_ms), "p90": round3(self.p90_ms),
               "p99": round3(self.p99_ms), "max": round3(self.max_ms)})
    }
}

/// What a level's calls went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Subject {
    /// The phone-agent server.
    #[default]
    PhoneAgent,
    /// The reference relay (`--reference-relay`).
    ReferenceRelay,
}

impl Subject {
    /// The JSON line's `bench` field.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Subject::PhoneAgent => "phone-agent",
            Subject::ReferenceRelay => "reference-relay",
        }
    }

    /// The table's first column: the calls, and which relay unless it is the server.
    fn label(self, calls: usize) -> String {
        match self {
            Subject::PhoneAgent => calls.to_string(),
            Subject::ReferenceRelay => format!("{calls} (reference relay)"),
        }
    }
}

/// `--tool-calls`: the tool round trips of one level.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolResult {
    /// Function calls the mock agent makes per call (its first caller turns).
    pub(crate) per_call: u32,
    /// Function calls sent by the mock agent.
    pub(crate) sent: u64,
    /// `function_call_output` sent → received, as the agent sees it.
    pub(crate) round_trip: Dist,
    /// Outputs that were not the webhook's answer or answered no pending call.
    pub(crate) bad_outputs: u64,
    /// Requests the bench webhook answered, and refused (unsigned, wrong path or method).
    pub(crate) webhook_answered: u64,
    pub(crate) webhook_refused: u64,
}

impl ToolResult {
    fn json(&self) -> serde_json::Value {
        json!({"per_call": self.per_call, "sent": self.sent,
               "answered": self.round_trip.n, "bad_outputs": self.bad_outputs,
               "round_trip_ms": self.round_trip.json4(),
               "webhook": {"answered": self.webhook_answered, "refused": self.webhook_refused}})
    }
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Frame accounting for one direction.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Frames {
    pub(crate) expected: u64,
    pub(crate) received: u64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) reordered: u64,
    pub(crate) misrouted: u64,
}

impl Frames {
    fn json(&self) -> serde_json::Value {
        json!({"expected": self.expected, "received": self.received, "lost": self.lost,
               "duplicated": self.duplicated, "reordered": self.reordered,
               "misrouted": self.misrouted})
    }
}

/// Everything measured at one level.
#[derive(Debug, Clone, Default)]
pub(crate) struct LevelResult {
    /// What the calls went through.
    pub(crate) subject: Subject,
    pub(crate) calls: usize,
    pub(crate) duration_s: f64,
    pub(crate) ramp_s: f64,
    pub(crate) failed: usize,
    pub(crate) failures: BTreeMap<&'static str, usize>,
    pub(crate) first_failure: Option<String>,
    pub(crate) c2a: Dist,
    pub(crate) a2c: Dist,
    pub(crate) barge_in: Dist,
    pub(crate) first_audio: Dist,
    pub(crate) c2a_frames: Frames,
    pub(crate) a2c_frames: Frames,
    pub(crate) barge_attempts: u64,
    pub(crate) clears: u64,
    pub(crate) unexpected_clears: u64,
    pub(crate) violations: u64,
    pub(crate) agent_protocol_errors: u64,
    pub(crate) truncates: u64,
    pub(crate) marks_echoed: u64,
    /// Server CPU per call-second over the steady window (all calls up), ms.
    pub(crate) cpu_ms_per_call_s: f64,
    /// Server CPU per call-second over the whole level (setup and teardown included), ms.
    pub(crate) cpu_ms_per_call_s_total: f64,
    pub(crate) window_s: f64,
    pub(crate) baseline_rss_kib: u64,
    pub(crate) peak_rss_kib: u64,
    pub(crate) rss_kib_per_call: f64,
    pub(crate) server_warnings: u64,
    pub(crate) server_errors: u64,
    pub(crate) first_server_warning: Option<String>,
    /// The load process (callers + mock agent) per call-second over the window, ms.
    pub(crate) load_cpu_ms_per_call_s: f64,
    /// CPU used by other processes on the machine during the window, % of one core.
    pub(crate) other_cpu_pct: f64,
    /// How late the simulated callers sent their frames (load-process saturation).
    pub(crate) send_lag: Dist,
    /// `--tool-calls`: the tool round trips (`None` without tools).
    pub(crate) tools: Option<ToolResult>,
}

impl LevelResult {
    /// The machine-readable line.
    pub(crate) fn json_line(&self) -> String {
        let mut line = json!({
            "bench": self.subject.name(),
            "calls": self.calls,
            "duration_s": self.duration_s,
            "ramp_s": self.ramp_s,
            "failed_calls": self.failed,
            "failures": self.failures,
            "latency_ms": {
                "caller_to_agent": self.c2a.json(),
                "agent_to_caller": self.a2c.json(),
                "barge_in": self.barge_in.json(),
                "first_audio": self.first_audio.json(),
            },
            "frames": {
                "caller_to_agent": self.c2a_frames.json(),
                "agent_to_caller": self.a2c_frames.json(),
            },
            "barge_ins": {"attempted": self.barge_attempts, "cleared": self.clears,
                          "unexpected_clears": self.unexpected_clears,
                          "truncates": self.truncates},
            "marks_echoed": self.marks_echoed,
            "violations": {"twilio_side": self.violations, "openai_side": self.agent_protocol_errors},
            "server": {
                "cpu_ms_per_call_s": round3(self.cpu_ms_per_call_s),
                "cpu_ms_per_call_s_total": round3(self.cpu_ms_per_call_s_total),
                "cpu_window_s": round3(self.window_s),
                "baseline_rss_kib": self.baseline_rss_kib,
                "peak_rss_kib": self.peak_rss_kib,
                "rss_kib_per_call": round3(self.rss_kib_per_call),
                "log_warnings": self.server_warnings,
                "log_errors": self.server_errors,
            },
            "load": {
                "cpu_ms_per_call_s": round3(self.load_cpu_ms_per_call_s),
                "send_lag_ms": self.send_lag.json(),
            },
            "machine": {"other_processes_cpu_pct": (self.other_cpu_pct * 10.0).round() / 10.0},
        });
        // Without tools the line stays exactly as it was before `--tool-calls` existed.
        if let (Some(tools), Some(obj)) = (&self.tools, line.as_object_mut()) {
            obj.insert("tools".to_owned(), tools.json());
        }
        line.to_string()
    }
}

/// The human-readable tables (latencies: p50 / p99 / max, ms).
pub(crate) fn table(results: &[LevelResult]) -> String {
    let mut out = String::new();
    out.push_str("| calls | failed | caller→agent ms | agent→caller ms | barge-in ms | first audio ms | frames lost / dup / reord (c→a, a→c) | barge-ins cleared |\n");
    out.push_str("|---:|---:|---|---|---|---|---|---|\n");
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {}/{}/{}, {}/{}/{} | {}/{} |\n",
            r.subject.label(r.calls),
            r.failed,
            r.c2a.cell(),
            r.a2c.cell(),
            r.barge_in.cell(),
            r.first_audio.cell(),
            r.c2a_frames.lost,
            r.c2a_frames.duplicated,
            r.c2a_frames.reordered,
            r.a2c_frames.lost,
            r.a2c_frames.duplicated,
            r.a2c_frames.reordered,
            r.clears,
            r.barge_attempts,
        ));
    }
    out.push('\n');
    out.push_str("| calls | server CPU ms / call-s (steady, whole run) | server RSS KiB / call (peak − idle) | idle / peak RSS MiB | load CPU ms / call-s | load send lag p99 / max ms | other processes' CPU |\n");
    out.push_str("|---:|---|---:|---|---:|---|---:|\n");
    for r in results {
        out.push_str(&format!(
            "| {} | {:.3}, {:.3} | {:.1} | {:.1} / {:.1} | {:.3} | {} / {} | {:.0}% |\n",
            r.subject.label(r.calls),
            r.cpu_ms_per_call_s,
            r.cpu_ms_per_call_s_total,
            r.rss_kib_per_call,
            r.baseline_rss_kib as f64 / 1024.0,
            r.peak_rss_kib as f64 / 1024.0,
            r.load_cpu_ms_per_call_s,
            ms(r.send_lag.p99_ms),
            ms(r.send_lag.max_ms),
            r.other_cpu_pct,
        ));
    }
    if results.iter().any(|r| r.tools.is_some()) {
        out.push('\n');
        out.push_str("| calls | tool calls / call | sent | answered | bad outputs | tool round trip ms (p50 / p90 / p99 / max) | webhook answered / refused |\n");
        out.push_str("|---:|---:|---:|---:|---:|---|---|\n");
        for r in results {
            if let Some(t) = &r.tools {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} / {} |\n",
                    r.calls,
                    t.per_call,
                    t.sent,
                    t.round_trip.n,
                    t.bad_outputs,
                    t.round_trip.cell4(),
                    t.webhook_answered,
                    t.webhook_refused,
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Dist, LevelResult, ToolResult, table};
    use serde_json::json;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        let d = Dist::of(&mut v);
        assert_eq!(d.n, 100);
        assert_eq!(d.p50_ms, 50.0);
        assert_eq!(d.p90_ms, 90.0);
        assert_eq!(d.p99_ms, 99.0);
        assert_eq!(d.max_ms, 100.0);
        assert_eq!(Dist::of(&mut []).n, 0);
        // Unsorted input, few samples: nearest rank.
        let mut v = vec![7000, 1000, 3000];
        let d = Dist::of(&mut v);
        assert_eq!(
            (d.p50_ms, d.p90_ms, d.p99_ms, d.max_ms),
            (3.0, 7.0, 7.0, 7.0)
        );
    }

    /// Without tools the JSON line has no `tools` key and the table no tool table; with
    /// tools both carry the exact figures.
    #[test]
    fn tool_figures_only_with_tools() {
        let plain = LevelResult {
            calls: 100,
            ..LevelResult::default()
        };
        let v: serde_json::Value = serde_json::from_str(&plain.json_line()).unwrap();
        assert!(v.get("tools").is_none());
        assert!(!table(std::slice::from_ref(&plain)).contains("tool round trip"));

        let mut samples: Vec<u32> = (1..=10).map(|i| i * 1500).collect();
        let with = LevelResult {
            calls: 100,
            tools: Some(ToolResult {
                per_call: 2,
                sent: 200,
                round_trip: Dist::of(&mut samples),
                bad_outputs: 1,
                webhook_answered: 200,
                webhook_refused: 0,
            }),
            ..LevelResult::default()
        };
        let v: serde_json::Value = serde_json::from_str(&with.json_line()).unwrap();
        assert_eq!(
            v["tools"],
            json!({"per_call": 2, "sent": 200, "answered": 10, "bad_outputs": 1,
                   "round_trip_ms": {"n": 10, "p50": 7.5, "p90": 13.5, "p99": 15.0, "max": 15.0},
                   "webhook": {"answered": 200, "refused": 0}})
        );
        // The relay figures are the same keys as without tools.
        assert_eq!(
            v["latency_ms"],
            serde_json::from_str::<serde_json::Value>(&plain.json_line()).unwrap()["latency_ms"]
        );
        assert!(
            table(&[with])
                .contains("| 100 | 2 | 200 | 10 | 1 | 7.50 / 13.5 / 15.0 / 15.0 | 200 / 0 |")
        );
    }
}
