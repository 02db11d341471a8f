//! # openai-realtime
//!
//! OpenAI voice API wire types (Realtime GA in [`realtime`], GPT-Live in [`live`]) and, behind
//! the `client` feature, an async WebSocket client (work in progress).
#![warn(missing_docs)]

pub mod live;
pub mod realtime;

#[cfg(feature = "client")]
pub mod client;
