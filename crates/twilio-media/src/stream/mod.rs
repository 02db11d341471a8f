//! Twilio Media Streams messages: the JSON text frames exchanged on the stream WebSocket.
//!
//! * Inbound (Twilio → us): [`parse`] turns one text frame into an [`Event`]:
//!   `connected`, `start`, `media`, `mark`, `dtmf`, `stop`, or [`Event::Unknown`] for any
//!   event this crate does not know (never an error). Unknown fields are ignored.
//!   `sequenceNumber`, `chunk` and `timestamp` are accepted as JSON strings (what Twilio
//!   sends) or numbers.
//! * Outbound (us → Twilio): [`Outbound`] (implements `Serialize`) and the allocation-free
//!   writers [`write_media`], [`write_mark`], [`write_clear`], which emit exactly the
//!   documented fields — Twilio ignores a message carrying anything else.
//!
//! # The hot path
//!
//! A `media` message is parsed in one pass over the text, without building a
//! `serde_json::Value`, and its `payload` borrows from the text, so a relay can forward the
//! base64 untouched ([`Media::borrowed_payload`], [`Media::payload_range`]). The same goes
//! for a `mark`'s name. This module does no I/O and keeps no state: pairing marks with
//! audio, detecting gaps and so on belong to the caller.
//!
//! ```
//! use twilio_media::stream::{self, Event};
//!
//! let frame = r#"{"event":"media","sequenceNumber":"2","streamSid":"MZ00000000000000000000000000000001",
//!   "media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"/////w=="}}"#;
//! let Event::Media(media) = stream::parse(frame)? else { unreachable!() };
//! assert_eq!(media.timestamp, 0);
//! assert_eq!(media.borrowed_payload(), Some("/////w=="));
//! assert_eq!(media.decoded_len(), 4);
//!
//! // Echo the audio back, followed by a mark.
//! let mut out = String::new();
//! stream::write_media(&mut out, media.stream_sid.as_str(), &media.payload);
//! assert_eq!(
//!     out,
//!     r#"{"event":"media","streamSid":"MZ00000000000000000000000000000001","media":{"payload":"/////w=="}}"#
//! );
//! out.clear();
//! stream::write_mark(&mut out, media.stream_sid.as_str(), "reply-1");
//! # Ok::<(), twilio_media::stream::StreamError>(())
//! ```

mod fast;
mod inbound;
mod outbound;

pub use crate::json::Buffer;
pub use inbound::{
    Connected, Dtmf, Event, Mark, Media, MediaFormat, Start, Stop, StreamError, Track, parse,
};
pub use outbound::{Outbound, write_clear, write_mark, write_media};
