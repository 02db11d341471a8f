//! # bridge-core
//!
//! The phone-call engine of phone-agent: it relays audio between a **caller** (the telephony
//! leg, e.g. a Twilio Media Stream) and an **agent** (the AI leg, e.g. an OpenAI Realtime or
//! GPT-Live session), and gets the hard parts exactly right — the caller interrupting the agent
//! (barge-in with truncation at the audio actually heard), greeting, keypad input, tool calls
//! that hang up or transfer after the goodbye was heard, timers, and a teardown that never
//! leaves an agent session running.
//!
//! ## What it refuses to do
//!
//! No sockets, no HTTP, no JSON wire formats, no WebSocket library, and no process clock in
//! the engine: protocols are adapted to the [`caller`] and [`agent`] seams by the server, and
//! time is an input. That keeps the engine deterministic and testable in microseconds, and lets
//! the same engine drive any telephony provider and any agent back end.
//!
//! ## Entry points
//!
//! * [`engine::Call`] — the sans-IO state machine (inputs with `now`, outputs drained with
//!   [`engine::Call::poll_output`], next deadline from [`engine::Call::poll_timeout`]);
//!   configured by [`engine::CallConfig`]; reports [`engine::CallEvent`]s and a final
//!   [`engine::CallSummary`].
//! * [`driver::run_call`] — the thin async task that runs a `Call` over a
//!   [`caller::CallerEndpoint`], a still-connecting [`agent::AgentEndpoint`], a
//!   [`tools::ToolExecutor`] and a [`driver::CallControl`].
//! * [`format`](mod@format) — audio formats and zero-copy base64 payloads; [`audio`] — G.711 codecs,
//!   resampling and transcoding for the paths where the two sides' formats differ.
//!
//! ## Driving the machine by hand
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bridge_core::agent::{AgentCapabilities, AgentCommand, AgentEvent};
//! use bridge_core::caller::{CallerCommand, CallerEvent, CallerInfo, MarkId};
//! use bridge_core::engine::{Call, CallConfig, Output};
//! use bridge_core::format::{AudioFormat, Base64Audio};
//!
//! let t0 = Instant::now(); // any clock: the engine never reads one
//! let mut call = Call::new(CallConfig::default(), AudioFormat::Mulaw8k, t0);
//! call.handle_caller(CallerEvent::Started(CallerInfo::default()), t0);
//! call.agent_connected(
//!     AgentCapabilities {
//!         input_format: AudioFormat::Mulaw8k,
//!         output_format: AudioFormat::Mulaw8k,
//!         truncation: true,
//!         interrupts_itself: true,
//!         reports_speech: true,
//!         continuous_input: false,
//!         restore_at_start: false,
//!         final_close: false,
//!     },
//!     t0,
//! );
//! call.handle_agent(AgentEvent::Ready, t0);
//! while call.poll_output().is_some() {} // observer events
//!
//! // The agent speaks 200 ms: two 100 ms pieces, each followed by its mark.
//! let t1 = t0 + Duration::from_millis(100);
//! call.handle_agent(AgentEvent::ResponseStarted { response_id: "r1".into() }, t1);
//! call.handle_agent(
//!     AgentEvent::Audio {
//!         audio: Base64Audio::encode(&[0xFF; 1600]),
//!         response_id: Some("r1".into()),
//!         item_id: Some("item1".into()),
//!     },
//!     t1,
//! );
//! let sent: Vec<Output> = std::iter::from_fn(|| call.poll_output()).collect();
//! assert_eq!(sent.len(), 4);
//! assert_eq!(sent[1], Output::Caller(CallerCommand::Mark(MarkId(1))));
//!
//! // The caller heard the first piece (its echo after 130 ms: a 30 ms round trip), and the
//! // second for another 30 ms, then started talking: truncated at 130 ms.
//! call.handle_caller(CallerEvent::MarkPlayed(MarkId(1)), t1 + Duration::from_millis(130));
//! call.handle_agent(AgentEvent::SpeechStarted, t1 + Duration::from_millis(160));
//! assert_eq!(call.poll_output(), Some(Output::Caller(CallerCommand::Clear)));
//! assert_eq!(
//!     call.poll_output(),
//!     Some(Output::Agent(AgentCommand::Truncate { item_id: "item1".into(), audio_end_ms: 130 }))
//! );
//! assert!(call.poll_timeout().is_some()); // timers: inactivity, idle, max duration
//! ```
#![warn(missing_docs)]

pub mod agent;
pub mod audio;
pub mod caller;
pub mod driver;
pub mod endpoint;
pub mod engine;
pub mod format;
pub mod tools;
