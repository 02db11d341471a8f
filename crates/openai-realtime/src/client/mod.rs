//! The async WebSocket transport shared by the Realtime GA and GPT-Live back ends
//! (feature `client`).
//!
//! It moves JSON text: you hand it strings or `Serialize` values, it hands you each text
//! message as received ([`Utf8Bytes`], no copy) so you can parse events with borrowed fields.
//! It knows the two endpoints' URLs and authentication, nothing about their event types.
//!
//! * [`Endpoint`] — validated configuration: base URL with the official SDKs'
//!   `OPENAI_BASE_URL` semantics (`https`→`wss`, `http`→`ws`, trailing `/` ignored; default
//!   `https://api.openai.com/v1`), `Authorization: Bearer` or Azure's `api-key` header,
//!   optional `OpenAI-Organization`/`OpenAI-Project`, extra headers, `User-Agent:
//!   phone-agent/<version>`, connect timeout, [`RetryPolicy`], WebSocket and TLS settings.
//!   The key is an [`ApiKey`], which never prints.
//! * [`Target`] — Realtime GA (`{base}/realtime?model=…`) or GPT-Live (`{base}/live/sessions`).
//! * [`Endpoint::connect`] — DNS, TCP with `TCP_NODELAY`, TLS with rustls using the `ring`
//!   provider explicitly (independent of any process-wide default; the server still installs
//!   `ring` as the default at startup for other rustls users) and webpki roots, then the
//!   upgrade; each attempt bounded by the connect timeout; transient failures (refused,
//!   reset, timeout, DNS, HTTP 408/429/5xx) retried with exponential backoff, permanent ones
//!   (400/401/403/404, certificates) returned at once as a [`ConnectError`] carrying the
//!   status, a body snippet and `x-request-id`.
//! * [`Connection`] — one open socket: `send_text`, `send_json`, `feed_*` + `flush` to
//!   coalesce, `close`; cancel-safe `recv` yielding [`Incoming::Text`] or [`Incoming::Close`]
//!   (pings answered, binary frames skipped and counted); the `Sink`-shaped `poll_ready`,
//!   `start_send_text`, `queue_text`, `poll_flush` and `poll_recv` for poll loops;
//!   `send_text_unbuffered` for a large message sent once (a `session.update` with the
//!   instructions and tools), written around the socket's write buffer so that buffer, which
//!   never shrinks, stays sized for the messages that follow. One task drives both directions
//!   with no lock between them; [`Connection::split`] gives a [`Sender`] and a [`Receiver`]
//!   with the buffered methods for two tasks.
//! * [`SocketWebSocket`] — what a [`Connection`] from [`Endpoint::connect`] runs on:
//!   tungstenite's state machine driven straight from the socket's readiness ([`ReadinessIo`]),
//!   over a [`ClientSocket`] (TCP, or rustls over it). A read or write is tried at once; the
//!   task's waker goes to the runtime only when the socket answers `WouldBlock` — no waker
//!   proxies per message, as tokio-tungstenite's `AsyncRead`/`AsyncWrite` adapter has. It
//!   works in the server role too, for a server's own accepted sockets. A [`Connection`] can
//!   also wrap any other [`WebSocketTransport`], such as tokio-tungstenite's
//!   [`WebSocketStream`] over an in-memory pipe in tests.
//! * [`Connection::close_with_reason`] and GPT-Live's [`Connection::close_live_session`] (and
//!   [`close_with_reason`]/[`close_live_session`] for split halves) for graceful endings.
//!
//! Limits: incoming messages and frames up to [`MAX_MESSAGE_SIZE`] (16 MiB; `session.updated`
//! and `conversation.item.retrieved` can be large). Writes are buffered until flushed;
//! `send_*` flush each message.
//!
//! What it refuses to do: send `OpenAI-Beta` (the GA interface rejects beta-shaped sessions);
//! negotiate permessage-deflate (base64 audio compresses poorly; tungstenite does not offer
//! it); go through HTTP proxies; reconnect on its own once connected (a new socket is a new
//! session, so that is the caller's decision); log keys, headers or payloads.
//!
//! # Example
//!
//! ```no_run
//! use openai_realtime::client::{ApiKey, Endpoint, Incoming, Target};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = Endpoint::builder(ApiKey::new(std::env::var("OPENAI_API_KEY")?))
//!     .base_url("https://api.openai.com/v1")
//!     .build()?;
//! let mut connection = endpoint.connect(&Target::realtime("gpt-realtime")).await?;
//!
//! connection
//!     .send_json(&serde_json::json!({
//!         "type": "session.update",
//!         "session": { "type": "realtime", "instructions": "Be brief." }
//!     }))
//!     .await?;
//!
//! while let Some(item) = connection.recv().await {
//!     match item? {
//!         Incoming::Text(text) => {
//!             // Parse with borrowed fields straight from the received buffer.
//!             #[derive(serde::Deserialize)]
//!             struct Event<'a> {
//!                 #[serde(rename = "type")]
//!                 kind: &'a str,
//!             }
//!             let event: Event<'_> = serde_json::from_str(text.as_str())?;
//!             if event.kind == "session.updated" {
//!                 connection.close(1000, "done").await?;
//!             }
//!         }
//!         Incoming::Close(reason) => eprintln!("closed by the server: {reason:?}"),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! In a bridge, one `tokio::select!` loop (or poll loop) usually owns the whole connection;
//! `recv` is cancel-safe, so losing the race to another branch drops nothing.

mod close;
mod connect;
mod connection;
mod endpoint;
mod outbox;
pub mod socket;
mod tls;

pub use close::{
    CloseEnd, CloseReport, DEFAULT_CLOSE_TIMEOUT, DEFAULT_LIVE_CLOSE_TIMEOUT, close_live_session,
    close_with_reason,
};
pub use connect::{
    ConnectError, ConnectErrorKind, ConnectionInfo, HttpRejection, MAX_ERROR_BODY,
    default_tls_config,
};
pub use connection::{
    CloseReason, Connection, DefaultWebSocket, Incoming, MAX_CLOSE_REASON, Receiver, Sender,
    TransportError, WebSocketTransport,
};
pub use endpoint::{
    ApiKey, AuthStyle, DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_USER_AGENT, Endpoint,
    EndpointBuilder, EndpointError, MAX_MESSAGE_SIZE, RetryPolicy, Target,
};

pub use socket::{ReadinessIo, SocketWebSocket};
pub use tls::ClientSocket;

/// Re-exported: the other [`WebSocketTransport`], for [`Connection::from_websocket`] over any
/// `AsyncRead + AsyncWrite` stream.
pub use tokio_tungstenite::WebSocketStream;
/// Re-exported so callers can name the types in this API without depending on tungstenite.
pub use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
/// Re-exported: the zero-copy buffers of received messages.
pub use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};
/// Re-exported: [`SocketWebSocket`]'s messages and errors.
pub use tokio_tungstenite::tungstenite::{Error as WsError, Message};
