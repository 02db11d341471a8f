//! Twilio's side of a phone call bridge, as pure protocol code: Media Streams messages,
//! a TwiML writer, request-signature validation, typed webhooks and REST request shapes.
//!
//! # What is here
//!
//! | module | what | entry points |
//! |---|---|---|
//! | [`stream`] | Media Streams WebSocket messages, both directions | [`stream::parse`], [`stream::write_media`], [`stream::write_mark`], [`stream::write_clear`], [`stream::Outbound`] |
//! | [`twiml`] | `<Response>` documents: `<Connect><Stream>`, `<Say>`, `<Dial>`, … | [`twiml::Response`], [`twiml::Stream::check_url`] |
//! | [`signature`] | `X-Twilio-Signature` validation (form POSTs, JSON bodies, the WebSocket upgrade) | [`signature::RequestValidator`] |
//! | [`webhook`] | voice webhook and status callbacks as typed structs | [`webhook::VoiceRequest`], [`webhook::StreamStatusCallback`], [`webhook::CallStatusCallback`] |
//! | [`rest`] | REST call-control request shapes and the error body | [`rest::call_path`], [`rest::UpdateCall`], [`rest::CreateCall`], [`rest::ApiError`] |
//! | [`sid`] | SID newtypes | [`StreamSid`], [`CallSid`], [`AccountSid`] |
//!
//! # What it refuses to do
//!
//! No I/O: no sockets, no HTTP client or server, no async runtime, no clocks, no logging,
//! no global state. It knows nothing about OpenAI or any agent. You bring the bytes; it
//! tells you what they mean and gives you the bytes to send back. That keeps every piece
//! testable in microseconds and reusable from any Rust project.
//!
//! # Conventions
//!
//! * Everything **received** is parsed strictly but tolerantly: unknown stream events
//!   become [`stream::Event::Unknown`] (never an error), unknown fields and parameters are
//!   ignored (and kept where they matter, such as webhook pairs), malformed input is a
//!   typed error naming the event and field — never a panic.
//! * Everything **sent** carries exactly the documented fields: Twilio ignores a stream
//!   message with an unexpected field.
//! * The per-frame path allocates nothing: a `media` message is parsed in one pass with its
//!   base64 payload borrowed from the frame, and outbound frames are written straight into
//!   a caller-supplied buffer.
//! * Secrets (Auth Token, Basic credentials) print as `[redacted]`.
//!
//! # Example: one call, end to end
//!
//! ```
//! use twilio_media::signature::RequestValidator;
//! use twilio_media::stream::{self, Event};
//! use twilio_media::twiml::{Response, Stream};
//! use twilio_media::webhook::VoiceRequest;
//!
//! // 1. The voice webhook: check the signature, read the call, answer with TwiML.
//! let validator = RequestValidator::new("0123456789abcdef0123456789abcdef");
//! let body = b"CallSid=CA00000000000000000000000000000001&AccountSid=AC00000000000000000000000000000001&From=%2B14155551234&To=%2B15005550006";
//! let url = "https://bridge.example.com/twilio/voice";
//! // (In a real request this is the `X-Twilio-Signature` header.)
//! # let signature = validator.compute(url, twilio_media::webhook::Params::from_urlencoded(body).pairs());
//! assert!(validator.validate_urlencoded(url, body, &signature));
//! let call = VoiceRequest::from_urlencoded(body)?;
//! let stream_url = "wss://bridge.example.com/media";
//! Stream::check_url(stream_url)?;
//! let twiml = Response::new()
//!     .connect(Stream::new(stream_url).parameter("call_sid", call.call_sid.as_str()))
//!     .to_xml();
//! assert!(twiml.contains(r#"<Parameter name="call_sid" value="CA00000000000000000000000000000001"/>"#));
//!
//! // 2. The Media Stream: parse frames, answer with frames.
//! let frame = r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ00000000000000000000000000000001","media":{"track":"inbound","chunk":"2","timestamp":"20","payload":"/////w=="}}"#;
//! let mut out = String::new();
//! if let Event::Media(media) = stream::parse(frame)? {
//!     // Forward `media.payload` (borrowed from `frame`) to the agent; send audio back:
//!     stream::write_media(&mut out, media.stream_sid.as_str(), "f39/fw==");
//! }
//! assert_eq!(out, r#"{"event":"media","streamSid":"MZ00000000000000000000000000000001","media":{"payload":"f39/fw=="}}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A longer walk-through is in `examples/media_stream.rs`.
#![warn(missing_docs)]

mod json;
pub mod rest;
pub mod sid;
pub mod signature;
pub mod stream;
pub mod twiml;
pub mod webhook;

pub use sid::{AccountSid, CallSid, StreamSid};
