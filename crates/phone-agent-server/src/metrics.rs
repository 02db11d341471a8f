//! Metrics: the `metrics` facade recorded by a Prometheus recorder that our own `/metrics` route
//! renders (no second HTTP server, no push gateway).
//!
//! The recorder is process-global (the facade has one global slot), installed once by the first
//! server started in the process; later servers share it. Latency histograms have explicit
//! buckets so Prometheus can aggregate them across instances.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `phone_agent_active_calls` | gauge | |
//! | `phone_agent_calls_total` | counter | `end_reason` |
//! | `phone_agent_calls_rejected_total` | counter | `reason` (`busy`, `signature`, `draining`, `token`, `account`) |
//! | `phone_agent_barge_ins_total` | counter | |
//! | `phone_agent_agent_connect_seconds` | histogram | `backend` |
//! | `phone_agent_first_audio_seconds` | histogram | `trigger` |
//! | `phone_agent_relay_seconds` | histogram | `direction` (`caller_to_agent`, `agent_to_caller`) |
//! | `phone_agent_errors_total` | counter | `kind` |
//! | `phone_agent_http_requests_total` | counter | `route`, `status` |

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Gauge: calls in progress.
pub const ACTIVE_CALLS: &str = "phone_agent_active_calls";
/// Counter: finished calls, by `end_reason`.
pub const CALLS_TOTAL: &str = "phone_agent_calls_total";
/// Counter: calls refused before they started, by `reason`.
pub const CALLS_REJECTED: &str = "phone_agent_calls_rejected_total";
/// Counter: barge-ins.
pub const BARGE_INS: &str = "phone_agent_barge_ins_total";
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

/// Buckets for relay latency: 50 µs … 250 ms.
const RELAY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
];
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
                .set_buckets_for_metric(Matcher::Full(RELAY_SECONDS.into()), RELAY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(AGENT_CONNECT_SECONDS.into()),
                        HUMAN_BUCKETS,
                    )
                })
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
    describe_histogram!(
        RELAY_SECONDS,
        Unit::Seconds,
        "A frame received on one side to written on the other."
    );
    describe_counter!(ERRORS_TOTAL, "Errors by kind.");
    describe_counter!(HTTP_REQUESTS, "HTTP requests by route and status.");
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
