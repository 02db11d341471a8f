//! # phone-agent-server
//!
//! The deployable server of phone-agent: answers Twilio phone calls with an OpenAI Realtime
//! voice agent (or, without an API key, a built-in echo agent for testing the audio path).
//!
//! * `POST /voice` — Twilio's voice webhook; reserves the call's capacity and answers TwiML
//!   that opens a bidirectional Media Stream to `wss://<PUBLIC_URL host>/media/<token>` (a
//!   stateless per-call token, see [`tokens`]), followed by a redirect to `/voice/next`.
//! * `GET /media/<token>` — the Media Stream WebSocket; each call is relayed to one agent session
//!   by bridge-core's engine through the [`adapters`].
//! * `POST /voice/next` (also at its old path `/voice/fallback`) — requested by Twilio when the
//!   stream ended with the caller still on the line: from why it ended (saved in the call store
//!   by the instance that ran it), a resumed stream after a handover, `<Hangup/>` after a
//!   normal end, the configured `[fallback]` otherwise (see [`handover`]).
//! * `GET /health`, `GET /ready` — liveness, readiness (503 while draining).
//! * `GET /metrics` — Prometheus metrics, on a separate listener (`metrics.bind`, default
//!   `127.0.0.1:9090`), never on the call port.
//! * `POST /twilio/status` — Twilio's call status callbacks (signed), into the call's record.
//! * `GET /api/calls`, `/api/calls/{sid}`, `/api/calls/{sid}/transcript` — the call records
//!   ([`store`], [`record`]), only with an admin token.
//! * `POST /api/calls` — places an outbound call (admin token; destinations on an allow-list),
//!   whose TwiML comes from `POST /voice/outbound`, with answering machine detection results
//!   at `POST /twilio/amd` ([`outbound`]).
//!
//! The server only translates and wires: Twilio's protocol lives in `twilio-media`, OpenAI's in
//! `openai-realtime`, the call logic (relay, playout tracking, barge-in, tools, timers) in
//! `bridge-core`. It refuses unauthenticated calls **before** any agent session opens when
//! `TWILIO_AUTH_TOKEN` is set (and refuses to start a billed back end without it unless
//! `twilio.danger_allow_unsigned_requests`), never logs audio or secrets, and ends every agent
//! session with its call.
//!
//! Embedding (tests, `cargo xtask demo`): build a [`config::Config`] from a map, bind a listener,
//! start, and shut down:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::HashMap;
//! use phone_agent_server::{config::Config, Server};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let config = Config::from_env_map(&HashMap::from([
//!     ("PUBLIC_URL".to_string(), format!("http://{addr}")),
//!     ("PHONE_AGENT_AGENT__BACKEND".to_string(), "echo".to_string()),
//! ]))?;
//! let server = Server::new(config).serve(listener)?;
//! // ... place calls against server.local_addr() ...
//! server.shutdown();
//! let report = server.wait().await;
//! assert!(report.clean);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
// An application crate: its module docs describe the design and link to private items on
// purpose (read them with `cargo doc --document-private-items`).
#![allow(rustdoc::private_intra_doc_links)]

pub mod adapters;
mod admin;
mod call;
pub mod cli;
pub mod config;
mod console;
mod fallback;
pub mod handover;
pub mod healthcheck;
pub mod logging;
mod media;
mod metrics_server;
pub mod outbound;
pub mod prewarm;
mod profiles;
pub mod prompt;
pub mod record;
pub mod recording;
mod routes;
mod server;
pub mod shutdown;
mod signature;
mod status;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod tools;
pub mod twilio_rest;
mod voice;
mod whisper;

pub use prewarm::PrewarmCounts;
pub use server::{Server, ServerHandle, ShutdownReport};
