//! The endpoint adapters: bridge-core's seam implemented over real protocols.
//!
//! * [`twilio::TwilioCaller`]: the caller side, over the upgraded Media Streams WebSocket.
//! * [`realtime::RealtimeAgent`]: OpenAI Realtime GA over its WebSocket.
//! * [`live::LiveAgent`]: OpenAI GPT-Live (full duplex) over its WebSocket.
//! * [`echo::EchoAgent`]: the built-in agent that plays the caller's words back.
//!
//! Both sides' WebSockets are openai-realtime's
//! [`SocketWebSocket`](openai_realtime::client::SocketWebSocket): tungstenite driven straight
//! from the socket's readiness (TCP for Twilio's media stream; TCP or TLS for OpenAI).
//!
//! Adding a back end means one more [`bridge_core::agent::AgentEndpoint`] here and one arm in
//! `connect_agent` (`src/call.rs`), plus a `Backend` variant in [`crate::config`].

pub mod echo;
pub mod live;
pub mod realtime;
pub mod twilio;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Per-call relay timestamps shared by the two adapters of a call, so each direction's relay
/// latency (frame received on one side → written on the other) is measured with two clock reads
/// and a few relaxed atomic operations per frame, into the process-wide
/// [`crate::telemetry::RelayHistogram`]s.
pub struct RelayClock {
    origin: Instant,
    /// Nanoseconds since `origin` (+1, 0 = none) of the last caller frame received.
    caller_rx: AtomicU64,
    /// Nanoseconds since `origin` (+1, 0 = none) of the last agent audio received.
    agent_rx: AtomicU64,
    /// This call's own relay latencies, for its record (only when call records are on).
    call: Option<crate::telemetry::CallRelay>,
}

impl std::fmt::Debug for RelayClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayClock")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Which way audio travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Caller audio to the agent.
    CallerToAgent = 0,
    /// Agent audio to the caller.
    AgentToCaller = 1,
}

impl Direction {
    /// The `direction` label of the relay histogram.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Direction::CallerToAgent => "caller_to_agent",
            Direction::AgentToCaller => "agent_to_caller",
        }
    }
}

impl Default for RelayClock {
    fn default() -> Self {
        Self::new()
    }
}

impl RelayClock {
    /// A clock starting now.
    pub fn new() -> Self {
        RelayClock {
            origin: Instant::now(),
            caller_rx: AtomicU64::new(0),
            agent_rx: AtomicU64::new(0),
            call: None,
        }
    }

    /// A clock that also keeps this call's relay latencies ([`Self::call_relay`]).
    pub fn with_call_relay() -> Self {
        RelayClock {
            call: Some(crate::telemetry::CallRelay::default()),
            ..Self::new()
        }
    }

    /// This call's relay latencies, when kept.
    pub fn call_relay(&self) -> Option<&crate::telemetry::CallRelay> {
        self.call.as_ref()
    }

    fn slot(&self, d: Direction) -> &AtomicU64 {
        match d {
            Direction::CallerToAgent => &self.caller_rx,
            Direction::AgentToCaller => &self.agent_rx,
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    /// A frame travelling in direction `d` was just received.
    pub fn received(&self, d: Direction) {
        self.slot(d).store(self.now_nanos(), Ordering::Relaxed);
    }

    /// The frame(s) travelling in direction `d` were just written on the other side: records
    /// the latency since the last reception once.
    pub fn written(&self, d: Direction) {
        let rx = self.slot(d).swap(0, Ordering::Relaxed);
        if rx != 0 {
            let nanos = self.now_nanos().saturating_sub(rx);
            crate::telemetry::relay_histogram(d).record(nanos);
            if let Some(call) = &self.call {
                call.record(d, nanos);
            }
        }
    }
}
