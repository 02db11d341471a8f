//! Messages we send to Twilio on a bidirectional Media Stream.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::json::{Buffer, write_str};

/// A message we send to Twilio: `media`, `mark` or `clear`.
///
/// Twilio ignores (and logs warning 31951 for) a message with a missing or unexpected
/// field, so both the [`Serialize`] impl and the writers emit exactly the documented
/// fields, in the documented order, and nothing else:
///
/// * `{"event":"media","streamSid":"…","media":{"payload":"…"}}`
/// * `{"event":"mark","streamSid":"…","mark":{"name":"…"}}`
/// * `{"event":"clear","streamSid":"…"}`
///
/// ```
/// use twilio_media::stream::Outbound;
///
/// let clear = Outbound::clear("MZ00000000000000000000000000000001");
/// assert_eq!(
///     clear.to_json(),
///     r#"{"event":"clear","streamSid":"MZ00000000000000000000000000000001"}"#
/// );
/// assert_eq!(serde_json::to_string(&clear).unwrap(), clear.to_json());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outbound<'a> {
    /// Queue audio for playback: base64 of raw μ-law, 8 kHz mono, no header.
    Media {
        /// The stream's `streamSid`.
        stream_sid: Cow<'a, str>,
        /// Base64 audio (standard alphabet, padded).
        payload: Cow<'a, str>,
    },
    /// Ask Twilio to echo `name` once everything queued before it has played.
    Mark {
        /// The stream's `streamSid`.
        stream_sid: Cow<'a, str>,
        /// Any string; echoed back verbatim.
        name: Cow<'a, str>,
    },
    /// Discard all queued audio; Twilio then echoes every pending mark.
    Clear {
        /// The stream's `streamSid`.
        stream_sid: Cow<'a, str>,
    },
}

impl<'a> Outbound<'a> {
    /// A `media` message.
    pub fn media(stream_sid: impl Into<Cow<'a, str>>, payload: impl Into<Cow<'a, str>>) -> Self {
        Self::Media {
            stream_sid: stream_sid.into(),
            payload: payload.into(),
        }
    }

    /// A `mark` message.
    pub fn mark(stream_sid: impl Into<Cow<'a, str>>, name: impl Into<Cow<'a, str>>) -> Self {
        Self::Mark {
            stream_sid: stream_sid.into(),
            name: name.into(),
        }
    }

    /// A `clear` message.
    pub fn clear(stream_sid: impl Into<Cow<'a, str>>) -> Self {
        Self::Clear {
            stream_sid: stream_sid.into(),
        }
    }

    /// The `event` name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Media { .. } => "media",
            Self::Mark { .. } => "mark",
            Self::Clear { .. } => "clear",
        }
    }

    /// Appends the JSON text to `out` (a `String` or `Vec<u8>`), without allocating
    /// beyond growing `out`.
    pub fn write<B: Buffer + ?Sized>(&self, out: &mut B) {
        match self {
            Self::Media {
                stream_sid,
                payload,
            } => write_media(out, stream_sid, payload),
            Self::Mark { stream_sid, name } => write_mark(out, stream_sid, name),
            Self::Clear { stream_sid } => write_clear(out, stream_sid),
        }
    }

    /// The JSON text as a new `String`.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

/// Appends `{"event":"media","streamSid":…,"media":{"payload":…}}` to `out`.
///
/// Strings are JSON-escaped (base64 never needs escaping, so the payload is copied in one
/// `memcpy`).
///
/// ```
/// let mut frame = String::new();
/// twilio_media::stream::write_media(&mut frame, "MZ01", "//8A");
/// assert_eq!(frame, r#"{"event":"media","streamSid":"MZ01","media":{"payload":"//8A"}}"#);
/// ```
pub fn write_media<B: Buffer + ?Sized>(out: &mut B, stream_sid: &str, payload: &str) {
    const FIXED: usize = r#"{"event":"media","streamSid":"","media":{"payload":""}}"#.len();
    out.reserve(FIXED + stream_sid.len() + payload.len());
    out.push_str(r#"{"event":"media","streamSid":"#);
    write_str(out, stream_sid);
    out.push_str(r#","media":{"payload":"#);
    write_str(out, payload);
    out.push_str("}}");
}

/// Appends `{"event":"mark","streamSid":…,"mark":{"name":…}}` to `out`.
///
/// ```
/// let mut frame = Vec::new();
/// twilio_media::stream::write_mark(&mut frame, "MZ01", "item_7:1240");
/// assert_eq!(frame, br#"{"event":"mark","streamSid":"MZ01","mark":{"name":"item_7:1240"}}"#);
/// ```
pub fn write_mark<B: Buffer + ?Sized>(out: &mut B, stream_sid: &str, name: &str) {
    const FIXED: usize = r#"{"event":"mark","streamSid":"","mark":{"name":""}}"#.len();
    out.reserve(FIXED + stream_sid.len() + name.len());
    out.push_str(r#"{"event":"mark","streamSid":"#);
    write_str(out, stream_sid);
    out.push_str(r#","mark":{"name":"#);
    write_str(out, name);
    out.push_str("}}");
}

/// Appends `{"event":"clear","streamSid":…}` to `out`.
///
/// ```
/// let mut frame = String::new();
/// twilio_media::stream::write_clear(&mut frame, "MZ01");
/// assert_eq!(frame, r#"{"event":"clear","streamSid":"MZ01"}"#);
/// ```
pub fn write_clear<B: Buffer + ?Sized>(out: &mut B, stream_sid: &str) {
    const FIXED: usize = r#"{"event":"clear","streamSid":""}"#.len();
    out.reserve(FIXED + stream_sid.len());
    out.push_str(r#"{"event":"clear","streamSid":"#);
    write_str(out, stream_sid);
    out.push_str("}");
}

/// `{"payload":…}` / `{"name":…}`: a one-field object.
struct One<'s>(&'static str, &'s str);

impl Serialize for One<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Body", 1)?;
        s.serialize_field(self.0, self.1)?;
        s.end()
    }
}

impl Serialize for Outbound<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Media {
                stream_sid,
                payload,
            } => {
                let mut s = serializer.serialize_struct("Media", 3)?;
                s.serialize_field("event", "media")?;
                s.serialize_field("streamSid", stream_sid)?;
                s.serialize_field("media", &One("payload", payload))?;
                s.end()
            }
            Self::Mark { stream_sid, name } => {
                let mut s = serializer.serialize_struct("Mark", 3)?;
                s.serialize_field("event", "mark")?;
                s.serialize_field("streamSid", stream_sid)?;
                s.serialize_field("mark", &One("name", name))?;
                s.end()
            }
            Self::Clear { stream_sid } => {
                let mut s = serializer.serialize_struct("Clear", 2)?;
                s.serialize_field("event", "clear")?;
                s.serialize_field("streamSid", stream_sid)?;
                s.end()
            }
        }
    }
}
