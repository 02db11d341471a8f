//! Test kit for phone-agent (crate docs are completed below).
#![warn(missing_docs)]

pub mod audio;
pub mod http;
pub mod openai;
pub mod rest;
pub mod sid;
pub mod twilio;
mod wait;

use std::time::Duration;

/// A wait on recorded state did not succeed in time.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WaitError {
    /// The condition did not become true before the timeout.
    #[error("timed out after {after:?} waiting for {what}; state: {state}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The timeout.
        after: Duration,
        /// A summary of the recorded state, to debug the failure.
        state: String,
    },
}
