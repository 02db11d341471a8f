//! Pre-warmed agent sessions: the OpenAI Realtime session of a call is opened when `/voice`
//! answers, so it is connected and configured when the call's media stream starts.
//!
//! `/voice` knows everything the session is configured with — the profile (chosen by `To`),
//! and the prompt's variables (`call_sid`, `from`, `to`, `profile`, the configured stream
//! parameters: exactly the `<Parameter>`s it writes into the TwiML) — so it starts the
//! connection (connect, then `session.update`) in the background and files it under the
//! CallSid. When the stream of that call starts **on this instance**, [`Prewarms::claim`]
//! hands the session over (awaiting it if it is still connecting) and the greeting's
//! `response.create` goes out at once, instead of after the TCP/TLS/WebSocket handshakes. A
//! stream that reaches another instance (a load balancer without affinity) finds nothing
//! there and connects as before; a pre-warm that failed is reported by the claim and the call
//! connects as before too.
//!
//! Never leaked: a session nobody claims within the stream token's lifetime
//! (`twilio.stream_token_ttl_secs`, after which the stream would be refused anyway) is closed,
//! and so is every unclaimed one at shutdown. Each pre-warm ends counted once, as `claimed`,
//! `expired` or `failed` (`phone_agent_prewarm_total{outcome}` and [`PrewarmCounts`]).
//!
//! Only for the Realtime back end (billed by tokens: an open session costs nothing until it
//! is used); GPT-Live bills by the minute from the session's start, so it is never pre-warmed.
//! `agent.prewarm = false` turns it off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bridge_core::agent::Endpoint as _;
use bridge_core::caller::EndpointError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::adapters::realtime::RealtimeAgent;

/// How a pre-warm ended (the metric's `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The call's stream took it over.
    Claimed,
    /// Nobody claimed it in time (or the server shut down): closed.
    Expired,
    /// Connecting failed; the call connected at stream start instead.
    Failed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Claimed => "claimed",
            Outcome::Expired => "expired",
            Outcome::Failed => "failed",
        }
    }
}

/// Pre-warms that ended, by outcome, since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrewarmCounts {
    /// Started at `/voice`.
    pub started: u64,
    /// Taken over by their call's stream.
    pub claimed: u64,
    /// Closed unclaimed (after the TTL, or at shutdown).
    pub expired: u64,
    /// Failed to connect (the call connected at stream start).
    pub failed: u64,
}

/// One pre-warm in flight or ready: the connection task and the end of its TTL.
struct Pending {
    connect: JoinHandle<Result<RealtimeAgent, EndpointError>>,
    /// Cancelled when it is claimed, so its expiry task ends at once.
    claimed: CancellationToken,
}

/// The pre-warmed sessions of this instance, by CallSid.
#[derive(Default)]
pub(crate) struct Prewarms {
    pending: Mutex<HashMap<String, Pending>>,
    started: AtomicU64,
    claimed: AtomicU64,
    expired: AtomicU64,
    failed: AtomicU64,
}

impl std::fmt::Debug for Prewarms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prewarms")
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl Prewarms {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Claimed => &self.claimed,
            Outcome::Expired => &self.expired,
            Outcome::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::telemetry::PREWARM_TOTAL, "outcome" => outcome.label())
            .increment(1);
    }

    /// The counters.
    pub(crate) fn counts(&self) -> PrewarmCounts {
        PrewarmCounts {
            started: self.started.load(Ordering::Relaxed),
            claimed: self.claimed.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// Starts connecting `connect` for `call_sid` (unless one is already filed for it: a
    /// replayed webhook does not open a second session). Unclaimed after `ttl`, it is closed.
    pub(crate) fn start<F>(self: &std::sync::Arc<Self>, call_sid: &str, ttl: Duration, connect: F)
    where
        F: std::future::Future<Output = Result<RealtimeAgent, EndpointError>> + Send + 'static,
    {
        let claimed = CancellationToken::new();
        {
            let mut pending = self.lock();
            if pending.contains_key(call_sid) {
                return;
            }
            pending.insert(
                call_sid.to_owned(),
                Pending {
                    connect: tokio::spawn(connect),
                    claimed: claimed.clone(),
                },
            );
        }
        self.started.fetch_add(1, Ordering::Relaxed);
        let this = std::sync::Arc::clone(self);
        let call_sid = call_sid.to_owned();
        tokio::spawn(async move {
            tokio::select! {
                () = claimed.cancelled() => {}
                () = tokio::time::sleep(ttl) => {
                    let expired = this.lock().remove(&call_sid);
                    if let Some(pending) = expired {
                        tracing::info!(call_sid, "pre-warmed agent session not claimed in time: closing it");
                        this.close(pending).await;
                    }
                }
            }
        });
    }

    /// Takes the pre-warmed session of `call_sid`, waiting for it if it is still connecting:
    /// `None` when there is none on this instance, `Some(Err)` when it failed to connect.
    pub(crate) async fn claim(
        &self,
        call_sid: &str,
    ) -> Option<Result<RealtimeAgent, EndpointError>> {
        let pending = self.lock().remove(call_sid)?;
        pending.claimed.cancel();
        let result = pending.connect.await.unwrap_or_else(|e| {
            Err(EndpointError::Transport(format!(
                "the pre-warm task failed: {e}"
            )))
        });
        self.count(match &result {
            Ok(_) => Outcome::Claimed,
            Err(_) => Outcome::Failed,
        });
        Some(result)
    }

    /// Closes every unclaimed pre-warm (at shutdown).
    pub(crate) async fn close_all(&self) {
        let all: Vec<Pending> = self.lock().drain().map(|(_, p)| p).collect();
        for pending in all {
            pending.claimed.cancel();
            self.close(pending).await;
        }
    }

    /// Ends an unclaimed pre-warm: closes its session (or counts its failure).
    async fn close(&self, pending: Pending) {
        match pending.connect.await {
            Ok(Ok(mut agent)) => {
                self.count(Outcome::Expired);
                let _ = agent.close().await;
            }
            Ok(Err(_)) | Err(_) => self.count(Outcome::Failed),
        }
    }
}
