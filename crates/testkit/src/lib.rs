//! Test kit for phone-agent: the peers of a phone bridge, simulated faithfully.
//!
//! A bridge sits between Twilio and OpenAI. This crate plays **both ends and the REST API**
//! so the server can be tested end to end on one machine, deterministically, with no network:
//!
//! | piece | plays | entry point |
//! |---|---|---|
//! | [`openai`] | the OpenAI Realtime GA service (WebSocket): session config, energy VAD, scripted responses and tool calls, cancellation, truncation rules, faults | [`openai::MockRealtime`] |
//! | [`twilio`] | Twilio placing a call: signed voice webhook, TwiML, signed Media Stream, paced caller audio, **real-time playout** of the agent's audio with exact `mark`/`clear` semantics | [`twilio::CallSimulator`] |
//! | [`live`] | the OpenAI GPT-Live service (WebSocket): strict `session.start`, output paced to the input timeline, self-interruption, timed transcripts, delegation (responses and client), usage, `session.closed` with every reason | [`live::MockLive`] |
//! | [`rest`] | the Twilio REST `Calls` API (hang-up, transfer, outbound calls) with Basic auth | [`rest::MockTwilioRest`] |
//! | [`haproxy`] | a real HAProxy load balancer (Debian's `haproxy`, generated configuration in a temp dir, round-robin over the given servers, health checks, runtime API) | [`haproxy::Haproxy`] |
//! | [`postgres`] | a throwaway PostgreSQL cluster (Debian's server binaries, temp dir, free loopback port) | [`postgres::PgCluster`] |
//! | lean mode: [`openai::lean`], [`twilio::lean`], [`lean`] | the same peers (Realtime GA and GPT-Live agent; Twilio caller with real 20 ms pacing and real playout) with nothing recorded but counters and latencies, for thousands of concurrent calls (`cargo xtask bench`) | [`openai::lean::LeanAgent`], [`twilio::lean::run`] |
//! | [`audio`] | μ-law tones, speech-like bursts, WAV/`espeak-ng` speech, and *stamps* that make frames identifiable end to end | [`audio::CallerAudio`], [`audio::stamp`] |
//!
//! **Independent by design.** The kit implements the wire protocols directly from the
//! references (PROTOCOLS.md) with `serde_json`; it does not use our `twilio-media`,
//! `openai-realtime` or `bridge-core` crates, so a misunderstanding in those crates shows up
//! as a test failure instead of being shared by both sides. It is strict where the real peers
//! are strict (every message the server sends is checked field by field, and problems are
//! recorded as *violations*) and otherwise tolerant.
//!
//! **Deterministic and awaitable.** Every mock binds `127.0.0.1:0`. Everything is recorded with
//! `tokio::time::Instant` timestamps and can be awaited (`wait_for_…` methods, built on watch
//! channels — never sleep-and-hope); a failed wait reports what *was* recorded. The playout
//! model and the simulator work under `#[tokio::test(start_paused = true)]`
//! (use [`twilio::ActiveCall::attach`] over `tokio::io::duplex` for exact timings).
//!
//! **What it is not.** Not a production component (`publish = false`), not a load generator
//! by itself (the benchmark builds on it), no TLS, no real speech recognition or synthesis.
//!
//! # An end-to-end test
//!
//! ```no_run
//! use std::time::Duration;
//! use testkit::audio::{self, CallerAudio};
//! use testkit::openai::{MockRealtime, ResponseScript, Script};
//! use testkit::rest::MockTwilioRest;
//! use testkit::twilio::{CallEvent, CallSimulator};
//! # async fn start_server_under_test(_openai: &str, _twilio_api: &str, _sid: &str, _token: &str)
//! #     -> String { String::from("http://127.0.0.1:8080") }
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! const T: Duration = Duration::from_secs(10);
//! let openai = MockRealtime::builder()
//!     .script(
//!         Script::new()
//!             .then(ResponseScript::say("Thanks for calling Acme, how can I help?", 2000))
//!             .then(ResponseScript::say("Goodbye!", 600).then_call("end_call", "{}")),
//!     )
//!     .start()
//!     .await?;
//! let rest = MockTwilioRest::start().await?;
//! let server = start_server_under_test(
//!     &openai.base_url(),
//!     &rest.base_url(),
//!     rest.account_sid(),
//!     rest.auth_token(),
//! )
//! .await; // e.g. "http://127.0.0.1:PORT"
//!
//! let sim = CallSimulator::new(&server)
//!     .public_url("https://bridge.example.com")
//!     .rest(&rest); // same account and auth token; REST hang-ups end the stream
//! let call = sim.call().from("+14155551234").connect().await?;
//!
//! // The bridge configured the session for μ-law and greeted.
//! let session = openai.wait_for_session(1, T).await?;
//! let greeting = session.wait_for_response_done(1, T).await?;
//!
//! // Listen to 500 ms of the greeting, then interrupt it.
//! call.wait_heard(4000, T).await?;
//! call.send_audio(CallerAudio::new().speech(800).silence(800));
//! call.wait_for(|e| matches!(e, CallEvent::ClearReceived { .. }), T).await?;
//! let truncation = session.wait_for_truncation(1, T).await?;
//! assert!(truncation.accepted);
//! assert_eq!(truncation.item_id, greeting.item_ids[0]);
//!
//! // What the caller heard is exactly a prefix of what the mock spoke.
//! let spoken = session.assistant_audio(&truncation.item_id).unwrap();
//! assert!(spoken.starts_with(&call.heard()));
//! assert!(audio::find_stamps(&call.heard()).len() >= 25);
//!
//! // The goodbye response calls end_call; the bridge hangs up over REST.
//! let update = rest.wait_for_update(call.call_sid(), T).await?;
//! assert_eq!(update.param("Status"), Some("completed"));
//! call.wait_closed(T).await?;
//! assert!(session.violations().is_empty() && call.violations().is_empty());
//! # Ok(()) }
//! ```
//!
//! Each module's documentation has a smaller example of its piece.
#![warn(missing_docs)]

pub mod audio;
pub mod haproxy;
pub mod http;
pub mod lean;
pub mod live;
pub mod openai;
pub mod postgres;
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
