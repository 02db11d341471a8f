//! Aggregation and reporting: percentiles, the per-level result, the table, the JSON line.

use std::collections::BTreeMap;

use serde_json::json;

/// A latency distribution, from samples in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Dist {
    pub(crate) n: usize,
    pub(crate) p50_ms: f64,
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
}

impl LevelResult {
    /// The machine-readable line.
    pub(crate) fn json_line(&self) -> String {
        json!({
            "bench": "phone-agent",
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
        })
        .to_string()
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
            r.calls,
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
            r.calls,
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
    out
}

#[cfg(test)]
mod tests {
    use super::Dist;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        let d = Dist::of(&mut v);
        assert_eq!(d.n, 100);
        assert_eq!(d.p50_ms, 50.0);
        assert_eq!(d.p99_ms, 99.0);
        assert_eq!(d.max_ms, 100.0);
        assert_eq!(Dist::of(&mut []).n, 0);
    }
}
