//! Telemetry (named so as not to shadow the `metrics` crate): the `metrics` facade recorded by a Prometheus recorder that our own `/metrics` route
//! renders, on a listener of its own (`metrics_server`, `metrics.bind`), never on the
//! public call port (no push gateway).
//!
//! The recorder is process-global (the facade has one global slot), installed once by the first
//! server started in the process; later servers share it. Latency histograms have explicit
//! buckets so Prometheus can aggregate them across instances.
//!
//! The per-frame relay histogram is not the recorder's: [`RelayHistogram`] counts straight into
//! fixed buckets (two relaxed atomic additions per frame into the recording thread's own shard,
//! constant memory), where the recorder's histograms keep every sample until the next upkeep —
//! a hundred samples per call and second. `/metrics` appends it to the recorder's output.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `phone_agent_active_calls` | gauge | |
//! | `phone_agent_calls_total` | counter | `end_reason` |
//! | `phone_agent_calls_rejected_total` | counter | `reason` (`busy`, `signature`, `draining`, `token`, `account`, `pending`, `no_start`, `admin_token`, `console_login`, `console_session`, `console_csrf`) |
//! | `phone_agent_barge_ins_total` | counter | |
//! | `phone_agent_agent_connect_seconds` | histogram | `backend` |
//! | `phone_agent_first_audio_seconds` | histogram | `trigger` |
//! | `phone_agent_relay_seconds` | histogram | `direction` (`caller_to_agent`, `agent_to_caller`) |
//! | `phone_agent_errors_total` | counter | `kind` |
//! | `phone_agent_http_requests_total` | counter | `route`, `status` |
//! | `phone_agent_twilio_rest_requests_total` | counter | `result` (`ok`, `error`) |
//! | `phone_agent_tool_calls_total` | counter | `kind` (`builtin`, `webhook`, `mcp`), `result` (`ok`, `error`) |

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::adapters::Direction;

/// Gauge: calls in progress.
pub const ACTIVE_CALLS: &str = "phone_agent_active_calls";
/// Counter: finished calls, by `end_reason`.
pub const CALLS_TOTAL: &str = "phone_agent_calls_total";
/// Counter: calls refused before they started, by `reason`.
pub const CALLS_REJECTED: &str = "phone_agent_calls_rejected_total";
/// Counter: barge-ins.
pub const BARGE_INS: &str = "phone_agent_barge_ins_total";
/// Counter: agent reconnects mid-call, by `outcome` (`reconnected`: the call went on with a
/// fresh session; `failed`: it ended into the fallback; `recycled`: a session replaced at a
/// pause before its time limit).
pub const AGENT_RECONNECTS: &str = "phone_agent_agent_reconnects_total";
/// Histogram: call start → agent ready, by `backend`.
pub const AGENT_CONNECT_SECONDS: &str = "phone_agent_agent_connect_seconds";
/// Histogram: turn trigger (caller stopped speaking, greeting, …) → first agent audio sent to the
/// caller, by `trigger`.
pub const FIRST_AUDIO_SECONDS: &str = "phone_agent_first_audio_seconds";
/// Histogram: a frame received on one side → written on the other, by `direction`.
pub const RELAY_SECONDS: &str = "phone_agent_relay_seconds";
/// Counter: errors, by `kind`.
pub const ERRORS_TOTAL: &str = "phone_agent_errors_total";
/// Counter: HTTP requests, by `route` and `status`.
pub const HTTP_REQUESTS: &str = "phone_agent_http_requests_total";
/// Counter: Twilio REST requests (after retries), by `result`.
pub const TWILIO_REST_REQUESTS: &str = "phone_agent_twilio_rest_requests_total";
/// Counter: pre-warmed agent sessions, by how they ended (`outcome`: `claimed`, `expired`,
/// `failed`).
pub const PREWARM_TOTAL: &str = "phone_agent_prewarm_total";
/// Counter: tool calls, by `kind` and `result`.
pub const TOOL_CALLS: &str = "phone_agent_tool_calls_total";
/// Counter: `POST /api/calls` outcomes, by `result` (`placed`, `refused`, `failed`,
/// `unknown`).
pub const OUTBOUND_CALLS: &str = "phone_agent_outbound_calls_total";
/// Counter: answering machine detection results, by `answered_by` and the `action` taken.
pub const AMD_RESULTS: &str = "phone_agent_amd_results_total";

/// Upper bounds of the relay latency buckets (50 µs … 250 ms), in nanoseconds and as rendered.
const RELAY_BUCKETS: [(u64, &str); 12] = [
    (50_000, "0.00005"),
    (100_000, "0.0001"),
    (250_000, "0.00025"),
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
];
const RELAY_HELP: &str = "A frame received on one side to written on the other.";

/// The relay bucket a latency falls in (a bound is inclusive; `RELAY_BUCKETS.len()` is `+Inf`).
fn relay_bucket(nanos: u64) -> usize {
    RELAY_BUCKETS.partition_point(|&(le, _)| le < nanos)
}

/// A process-wide Prometheus histogram with fixed buckets, recorded lock-free.
///
/// Every worker thread records into a shard of its own (one cache line each, picked once per
/// thread), so the two additions per frame never bounce a line between cores; `/metrics` adds
/// the shards up.
#[derive(Debug)]
pub struct RelayHistogram {
    shards: [RelayShard; RELAY_SHARDS],
}

/// Enough for a worker thread each on most machines; more threads share shards (still correct).
const RELAY_SHARDS: usize = 16;

/// One thread's counts, alone on its cache line(s).
#[derive(Debug)]
#[repr(align(128))]
struct RelayShard {
    /// Observations per bucket (not cumulative); index `RELAY_BUCKETS.len()` is `+Inf` only.
    /// Their total is the count.
    buckets: [AtomicU64; RELAY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl RelayShard {
    const fn new() -> Self {
        RelayShard {
            buckets: [const { AtomicU64::new(0) }; RELAY_BUCKETS.len() + 1],
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// This thread's shard index, assigned round-robin on first use.
fn thread_shard() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|shard| {
        if shard.get() == usize::MAX {
            shard.set(NEXT.fetch_add(1, Ordering::Relaxed) % RELAY_SHARDS);
        }
        shard.get()
    })
}

impl RelayHistogram {
    const fn new() -> Self {
        RelayHistogram {
            shards: [const { RelayShard::new() }; RELAY_SHARDS],
        }
    }

    /// Records one latency.
    pub fn record(&self, nanos: u64) {
        let bucket = relay_bucket(nanos);
        let shard = &self.shards[thread_shard()];
        shard.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        shard.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations in bucket `i`, over all shards.
    fn bucket(&self, i: usize) -> u64 {
        self.shards
            .iter()
            .map(|s| s.buckets[i].load(Ordering::Relaxed))
            .sum()
    }

    fn render(&self, direction: &str, out: &mut String) {
        let mut cumulative = 0;
        for (i, (_, le)) in RELAY_BUCKETS.iter().enumerate() {
            cumulative += self.bucket(i);
            let _ = writeln!(
                out,
                "{RELAY_SECONDS}_bucket{{direction=\"{direction}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let count = cumulative + self.bucket(RELAY_BUCKETS.len());
        let sum_nanos: u64 = self
            .shards
            .iter()
            .map(|s| s.sum_nanos.load(Ordering::Relaxed))
            .sum();
        let sum = sum_nanos as f64 / 1e9;
        let _ = writeln!(
            out,
            "{RELAY_SECONDS}_bucket{{direction=\"{direction}\",le=\"+Inf\"}} {count}\n\
             {RELAY_SECONDS}_sum{{direction=\"{direction}\"}} {sum}\n\
             {RELAY_SECONDS}_count{{direction=\"{direction}\"}} {count}"
        );
    }
}

static RELAY: [RelayHistogram; 2] = [RelayHistogram::new(), RelayHistogram::new()];

/// The relay histogram of one direction.
pub(crate) fn relay_histogram(direction: Direction) -> &'static RelayHistogram {
    match direction {
        Direction::CallerToAgent => &RELAY[0],
        Direction::AgentToCaller => &RELAY[1],
    }
}

/// The recorder's output followed by the relay histograms, as `/metrics` serves it.
pub(crate) fn render(handle: &PrometheusHandle) -> String {
    let mut out = handle.render();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let _ = writeln!(out, "# HELP {RELAY_SECONDS} {RELAY_HELP}");
    let _ = writeln!(out, "# TYPE {RELAY_SECONDS} histogram");
    for direction in [Direction::CallerToAgent, Direction::AgentToCaller] {
        relay_histogram(direction).render(direction.label(), &mut out);
    }
    out
}
/// Buckets for human-scale latencies: 50 ms … 10 s.
const HUMAN_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global Prometheus recorder (once per process) and returns its handle.
///
/// Returns `None` when another global recorder was installed first (an embedding application's);
/// `/metrics` then serves nothing and a warning is logged.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(AGENT_CONNECT_SECONDS.into()), HUMAN_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(FIRST_AUDIO_SECONDS.into()), HUMAN_BUCKETS)
                });
            let builder = match builder {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics buckets rejected; histograms render as summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(_) => {
                    tracing::warn!("another metrics recorder is already installed; /metrics will be empty");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(ACTIVE_CALLS, "Calls in progress.");
    describe_counter!(CALLS_TOTAL, "Finished calls by end reason.");
    describe_counter!(
        CALLS_REJECTED,
        "Calls refused before they started, by reason."
    );
    describe_counter!(BARGE_INS, "Times the caller interrupted the agent.");
    describe_counter!(
        PREWARM_TOTAL,
        "Agent sessions opened at /voice, by outcome: claimed by the call's stream, expired \
         unclaimed (closed), failed to connect."
    );
    describe_counter!(
        AGENT_RECONNECTS,
        "Agent connections lost mid-call and reconnected (outcome=reconnected) or given up \
         (outcome=failed)."
    );
    metrics::describe_counter!(
        crate::handover::HANDOVERS,
        "Calls handed over between instances at shutdown: side=out (the stream ended at a \
         pause with the conversation saved), side=in (a handed-over call resumed here)."
    );
    describe_histogram!(
        AGENT_CONNECT_SECONDS,
        Unit::Seconds,
        "Call start to agent ready."
    );
    describe_histogram!(
        FIRST_AUDIO_SECONDS,
        Unit::Seconds,
        "Turn trigger (caller stopped speaking, greeting requested, ...) to the first agent audio sent to the caller."
    );
    describe_counter!(ERRORS_TOTAL, "Errors by kind.");
    describe_counter!(HTTP_REQUESTS, "HTTP requests by route and status.");
    describe_counter!(
        TWILIO_REST_REQUESTS,
        "Twilio REST requests (hang-up, transfer, outbound calls) by result, after retries."
    );
    describe_counter!(
        TOOL_CALLS,
        "Tool calls by kind (builtin, webhook, mcp) and result."
    );
    describe_counter!(
        OUTBOUND_CALLS,
        "Outbound call requests by result (placed, refused, failed, unknown)."
    );
    describe_counter!(
        AMD_RESULTS,
        "Answering machine detection results by answered_by and the action taken."
    );
}

/// Runs the recorder's upkeep (histogram bucket maintenance) every `period` until cancelled.
pub async fn upkeep(
    handle: PrometheusHandle,
    period: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

/// Counts an error of `kind`.
pub(crate) fn error(kind: &'static str) {
    metrics::counter!(ERRORS_TOTAL, "kind" => kind).increment(1);
}

/// Counts a rejected call.
pub(crate) fn rejected(reason: &'static str) {
    metrics::counter!(CALLS_REJECTED, "reason" => reason).increment(1);
}

/// Counts a tool call by `kind` and `result`.
pub(crate) fn tool_call(kind: &'static str, result: &'static str) {
    metrics::counter!(TOOL_CALLS, "kind" => kind, "result" => result).increment(1);
}

/// Counts an outbound call request by `result`.
pub(crate) fn outbound_call(result: &'static str) {
    metrics::counter!(OUTBOUND_CALLS, "result" => result).increment(1);
}

/// Counts an AMD result and the action taken.
pub(crate) fn amd_result(answered_by: &'static str, action: &'static str) {
    metrics::counter!(AMD_RESULTS, "answered_by" => answered_by, "action" => action).increment(1);
}

/// Counts a Twilio REST request by `result`.
pub(crate) fn rest_request(result: &'static str) {
    metrics::counter!(TWILIO_REST_REQUESTS, "result" => result).increment(1);
}

/// One call's relay latencies (both directions), for its record: the same fixed buckets as
/// the process-wide histogram, one relaxed atomic addition per relayed frame, kept only when
/// call records are on.
#[derive(Debug)]
pub struct CallRelay {
    buckets: [[AtomicU64; RELAY_BUCKETS.len() + 1]; 2],
}

impl Default for CallRelay {
    fn default() -> Self {
        CallRelay {
            buckets: [const { [const { AtomicU64::new(0) }; RELAY_BUCKETS.len() + 1] }; 2],
        }
    }
}

impl CallRelay {
    /// Records one latency of direction `d`.
    pub fn record(&self, d: Direction, nanos: u64) {
        let bucket = relay_bucket(nanos);
        self.buckets[d as usize][bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// The `q` quantile (0–1) of direction `d` in milliseconds: the upper bound of the bucket
    /// it falls in (`None` without samples, or above the last bucket's bound).
    pub fn quantile_ms(&self, d: Direction, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self.buckets[d as usize]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return RELAY_BUCKETS.get(i).map(|&(le, _)| le as f64 / 1e6);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_histogram_adds_up_the_shards_of_every_recording_thread() {
        let h = std::sync::Arc::new(RelayHistogram::new());
        // More threads than shards: some share one, and nothing is lost either way.
        let threads: Vec<_> = (0..RELAY_SHARDS + 4)
            .map(|_| {
                let h = std::sync::Arc::clone(&h);
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        h.record(3_000_000);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let recorded = 100 * (RELAY_SHARDS as u64 + 4);
        let five_ms = relay_bucket(3_000_000);
        assert_eq!(h.bucket(five_ms), recorded);
        let mut out = String::new();
        h.render("agent_to_caller", &mut out);
        assert!(out.contains(&format!(
            "phone_agent_relay_seconds_count{{direction=\"agent_to_caller\"}} {recorded}\n"
        )));
        assert!(out.contains(&format!(
            "phone_agent_relay_seconds_sum{{direction=\"agent_to_caller\"}} {}\n",
            (recorded * 3_000_000) as f64 / 1e9
        )));
    }

    #[test]
    fn relay_histogram_renders_cumulative_prometheus_buckets() {
        let h = RelayHistogram::new();
        for nanos in [10_000, 50_000, 50_001, 3_000_000, 900_000_000] {
            h.record(nanos);
        }
        let mut out = String::new();
        h.render("caller_to_agent", &mut out);
        let value = |series: &str| -> f64 {
            out.lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("{series} missing in {out}"))
                .parse()
                .unwrap()
        };
        let bucket = |le: &str| {
            value(&format!(
                "phone_agent_relay_seconds_bucket{{direction=\"caller_to_agent\",le=\"{le}\"}}"
            ))
        };
        // A bound is inclusive: 50 µs falls in le="0.00005".
        assert_eq!(bucket("0.00005"), 2.0);
        assert_eq!(bucket("0.0001"), 3.0);
        assert_eq!(bucket("0.0025"), 3.0);
        assert_eq!(bucket("0.005"), 4.0);
        assert_eq!(bucket("0.25"), 4.0);
        assert_eq!(bucket("+Inf"), 5.0);
        assert_eq!(
            value("phone_agent_relay_seconds_count{direction=\"caller_to_agent\"}"),
            5.0
        );
        let sum = value("phone_agent_relay_seconds_sum{direction=\"caller_to_agent\"}");
        assert!((sum - 0.903_110_001).abs() < 1e-9, "{sum}");
        assert_eq!(out.lines().count(), RELAY_BUCKETS.len() + 3);
    }
}
