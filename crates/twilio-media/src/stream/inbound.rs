//! Messages Twilio sends on a Media Stream, and their single-pass parser.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::json::{Counter, CowStr};
use crate::sid::{AccountSid, CallSid, StreamSid};

/// Why a Media Streams message could not be parsed.
///
/// Unknown `event` values are **not** errors (they parse to [`Event::Unknown`]), and
/// unknown fields are ignored. Errors mean the text is not a JSON object, has no `event`,
/// or a known event lacks a documented field or carries one of the wrong type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The text is not valid JSON, or not a JSON object.
    #[error("Twilio stream message is not a JSON object: {0}")]
    Json(serde_json::Error),
    /// The object has no `event` field, or its `event` is not a string.
    #[error("Twilio stream message has no string `event` field")]
    MissingEvent,
    /// A known event lacks a required field.
    #[error("Twilio `{event}` message is missing the required field `{field}`")]
    MissingField {
        /// The event name (`"media"`, `"start"`, …).
        event: &'static str,
        /// The field path on the wire, such as `"media.payload"`.
        field: &'static str,
    },
    /// A known event carries a field of the wrong type or with an invalid value.
    #[error("Twilio `{event}` message has an invalid `{field}`: {cause}")]
    InvalidField {
        /// The event name (`"media"`, `"start"`, …).
        event: &'static str,
        /// The field path on the wire, such as `"media.timestamp"`.
        field: &'static str,
        /// What the JSON parser objected to (includes the line and column).
        cause: serde_json::Error,
    },
}

/// One message received from Twilio on a Media Stream.
///
/// Borrowing: strings borrow from the text passed to [`parse`] whenever the JSON string
/// contains no escape sequences (always the case for Twilio's base64 payloads and SIDs),
/// so parsing a `media` message does not allocate. [`Event::into_owned`] detaches it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// `connected`: the first message after the WebSocket upgrade.
    Connected(Connected<'a>),
    /// `start`: stream metadata, sent once after `connected`.
    Start(Start<'a>),
    /// `media`: one chunk of caller audio (the hot path, ~50 per second).
    Media(Media<'a>),
    /// `mark`: the echo of a mark we sent, once the audio queued before it has played
    /// (or was discarded by a `clear`).
    Mark(Mark<'a>),
    /// `dtmf`: the caller pressed a key (bidirectional streams only).
    Dtmf(Dtmf<'a>),
    /// `stop`: the stream ended. Twilio closes the socket afterwards.
    Stop(Stop<'a>),
    /// An event this crate does not know yet. Never an error: Twilio may add events.
    Unknown {
        /// The `event` value.
        event: String,
        /// The whole message.
        raw: serde_json::Value,
    },
}

/// The `connected` message: `{"event":"connected","protocol":"Call","version":"1.0.0"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected<'a> {
    /// Always `"Call"` today.
    pub protocol: Cow<'a, str>,
    /// Protocol version, such as `"1.0.0"`.
    pub version: Cow<'a, str>,
}

/// The `start` message: which call this stream belongs to, and how the audio is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start<'a> {
    /// Top-level `sequenceNumber` (`1` for `start`).
    pub sequence_number: u64,
    /// The stream (`streamSid`, top-level or `start.streamSid`).
    pub stream_sid: StreamSid<'a>,
    /// `start.accountSid`: the account that owns the call.
    pub account_sid: AccountSid<'a>,
    /// `start.callSid`: the call to control through the REST API.
    pub call_sid: CallSid<'a>,
    /// `start.tracks`, such as `[Inbound]` for `<Connect><Stream>`. Empty when absent.
    pub tracks: Vec<Track>,
    /// `start.customParameters`: the `<Parameter name value>` children of `<Stream>`.
    /// Empty when absent.
    pub custom_parameters: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    /// `start.mediaFormat`.
    pub media_format: MediaFormat<'a>,
}

impl Start<'_> {
    /// The value of the custom parameter `name` (from `<Parameter name=… value=…>`).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.custom_parameters.get(name).map(|v| &**v)
    }
}

/// `start.mediaFormat`: the audio encoding of `media` payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFormat<'a> {
    /// MIME type; always `"audio/x-mulaw"` (G.711 μ-law) today.
    pub encoding: Cow<'a, str>,
    /// Samples per second; always `8000` today.
    pub sample_rate: u32,
    /// Channel count; always `1` today.
    pub channels: u16,
}

impl MediaFormat<'_> {
    /// True for 8 kHz mono G.711 μ-law, the only format Twilio documents.
    pub fn is_mulaw_8k_mono(&self) -> bool {
        self.encoding == "audio/x-mulaw" && self.sample_rate == 8000 && self.channels == 1
    }
}

/// Which side of the call a `media` or `dtmf` message belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Track {
    /// The caller's audio (`"inbound"`; `dtmf` messages spell it `"inbound_track"`).
    Inbound,
    /// Audio played to the caller (`"outbound"` / `"outbound_track"`); unidirectional
    /// streams only.
    Outbound,
    /// Any other value, kept verbatim.
    Other(String),
}

impl Track {
    pub(super) fn from_wire(s: &str) -> Self {
        match s {
            "inbound" | "inbound_track" => Self::Inbound,
            "outbound" | "outbound_track" => Self::Outbound,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire spelling used in `media` messages (`"inbound"`, `"outbound"`, or the
    /// unknown value).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::Other(s) => s,
        }
    }
}

/// The `media` message: 20 ms (typically) of base64 μ-law caller audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    /// Top-level `sequenceNumber`.
    pub sequence_number: u64,
    /// Top-level `streamSid`.
    pub stream_sid: StreamSid<'a>,
    /// `media.track`.
    pub track: Track,
    /// `media.chunk`: 1-based counter of media messages on this track.
    pub chunk: u64,
    /// `media.timestamp`: milliseconds of audio since the stream started (media clock).
    pub timestamp: u64,
    /// `media.payload`: base64 (standard alphabet, padded) of raw μ-law bytes.
    /// Borrowed from the message text unless the JSON string contained escapes.
    pub payload: Cow<'a, str>,
}

impl<'a> Media<'a> {
    /// The payload as a slice of the original message text, if it was borrowed (always the
    /// case unless Twilio escaped characters, e.g. wrote `\/` for `/`).
    ///
    /// With the frame held in a `bytes::Bytes`, `frame.slice_ref(p.as_bytes())` then
    /// yields the payload without copying.
    pub fn borrowed_payload(&self) -> Option<&'a str> {
        match self.payload {
            Cow::Borrowed(p) => Some(p),
            Cow::Owned(_) => None,
        }
    }

    /// The byte range of the payload inside `text`, the string this message was parsed
    /// from. `None` if the payload was unescaped into an owned string or `text` is not the
    /// parsed text.
    ///
    /// ```
    /// use twilio_media::stream::{self, Event};
    ///
    /// let text = r#"{"event":"media","sequenceNumber":"2","streamSid":"MZ1",
    ///   "media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"//8A"}}"#;
    /// let Ok(Event::Media(m)) = stream::parse(text) else { panic!() };
    /// let range = m.payload_range(text).unwrap();
    /// assert_eq!(&text[range], "//8A");
    /// ```
    pub fn payload_range(&self, text: &str) -> Option<Range<usize>> {
        let p = self.borrowed_payload()?;
        let start = (p.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
        let end = start.checked_add(p.len())?;
        (end <= text.len()).then_some(start..end)
    }

    /// Number of audio bytes the payload decodes to, computed from its length without
    /// decoding. For μ-law at 8 kHz, 8 bytes are 1 ms.
    pub fn decoded_len(&self) -> usize {
        let p = self.payload.as_bytes();
        let padding = p.iter().rev().take(2).take_while(|&&b| b == b'=').count();
        (p.len() / 4 * 3 + (p.len() % 4).saturating_sub(1)).saturating_sub(padding)
    }

    /// Detaches the message from the text it was parsed from.
    pub fn into_owned(self) -> Media<'static> {
        Media {
            sequence_number: self.sequence_number,
            stream_sid: self.stream_sid.into_owned(),
            track: self.track,
            chunk: self.chunk,
            timestamp: self.timestamp,
            payload: Cow::Owned(self.payload.into_owned()),
        }
    }
}

/// The `mark` message: Twilio echoes the name of a mark we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark<'a> {
    /// Top-level `sequenceNumber`.
    pub sequence_number: u64,
    /// Top-level `streamSid`.
    pub stream_sid: StreamSid<'a>,
    /// `mark.name`: exactly the name we sent (borrowed unless escaped).
    pub name: Cow<'a, str>,
}

/// The `dtmf` message: the caller pressed a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtmf<'a> {
    /// Top-level `sequenceNumber`.
    pub sequence_number: u64,
    /// Top-level `streamSid`.
    pub stream_sid: StreamSid<'a>,
    /// `dtmf.track` (Twilio sends `"inbound_track"`, parsed as [`Track::Inbound`]).
    pub track: Track,
    /// `dtmf.digit`: `0`–`9`, `*`, `#` (possibly `A`–`D`).
    pub digit: Cow<'a, str>,
}

/// The `stop` message: the stream has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop<'a> {
    /// Top-level `sequenceNumber`.
    pub sequence_number: u64,
    /// Top-level `streamSid`.
    pub stream_sid: StreamSid<'a>,
    /// `stop.accountSid`.
    pub account_sid: AccountSid<'a>,
    /// `stop.callSid`.
    pub call_sid: CallSid<'a>,
}

fn owned(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

impl Event<'_> {
    /// The `event` name on the wire (`"media"`, `"start"`, … or the unknown name).
    pub fn name(&self) -> &str {
        match self {
            Event::Connected(_) => "connected",
            Event::Start(_) => "start",
            Event::Media(_) => "media",
            Event::Mark(_) => "mark",
            Event::Dtmf(_) => "dtmf",
            Event::Stop(_) => "stop",
            Event::Unknown { event, .. } => event,
        }
    }

    /// The top-level `streamSid` (absent on `connected` and unknown events).
    pub fn stream_sid(&self) -> Option<&StreamSid<'_>> {
        match self {
            Event::Start(e) => Some(&e.stream_sid),
            Event::Media(e) => Some(&e.stream_sid),
            Event::Mark(e) => Some(&e.stream_sid),
            Event::Dtmf(e) => Some(&e.stream_sid),
            Event::Stop(e) => Some(&e.stream_sid),
            Event::Connected(_) | Event::Unknown { .. } => None,
        }
    }

    /// The top-level `sequenceNumber` (absent on `connected` and unknown events).
    pub fn sequence_number(&self) -> Option<u64> {
        match self {
            Event::Start(e) => Some(e.sequence_number),
            Event::Media(e) => Some(e.sequence_number),
            Event::Mark(e) => Some(e.sequence_number),
            Event::Dtmf(e) => Some(e.sequence_number),
            Event::Stop(e) => Some(e.sequence_number),
            Event::Connected(_) | Event::Unknown { .. } => None,
        }
    }

    /// Detaches the event from the text it was parsed from.
    pub fn into_owned(self) -> Event<'static> {
        match self {
            Event::Connected(c) => Event::Connected(Connected {
                protocol: owned(c.protocol),
                version: owned(c.version),
            }),
            Event::Start(s) => Event::Start(Start {
                sequence_number: s.sequence_number,
                stream_sid: s.stream_sid.into_owned(),
                account_sid: s.account_sid.into_owned(),
                call_sid: s.call_sid.into_owned(),
                tracks: s.tracks,
                custom_parameters: s
                    .custom_parameters
                    .into_iter()
                    .map(|(k, v)| (owned(k), owned(v)))
                    .collect(),
                media_format: MediaFormat {
                    encoding: owned(s.media_format.encoding),
                    sample_rate: s.media_format.sample_rate,
                    channels: s.media_format.channels,
                },
            }),
            Event::Media(m) => Event::Media(m.into_owned()),
            Event::Mark(m) => Event::Mark(Mark {
                sequence_number: m.sequence_number,
                stream_sid: m.stream_sid.into_owned(),
                name: owned(m.name),
            }),
            Event::Dtmf(d) => Event::Dtmf(Dtmf {
                sequence_number: d.sequence_number,
                stream_sid: d.stream_sid.into_owned(),
                track: d.track,
                digit: owned(d.digit),
            }),
            Event::Stop(s) => Event::Stop(Stop {
                sequence_number: s.sequence_number,
                stream_sid: s.stream_sid.into_owned(),
                account_sid: s.account_sid.into_owned(),
                call_sid: s.call_sid.into_owned(),
            }),
            Event::Unknown { event, raw } => Event::Unknown { event, raw },
        }
    }
}

impl<'a> Event<'a> {
    /// Same as [`parse`].
    pub fn parse(text: &'a str) -> Result<Self, StreamError> {
        parse(text)
    }
}

/// Parses one Media Streams text frame.
///
/// Known events are parsed in a single pass straight into typed structs, with strings
/// borrowed from `text`; no `serde_json::Value` is built. Only unknown events (and the
/// error path) look at the text a second time.
///
/// ```
/// use twilio_media::stream::{self, Event};
///
/// let text = r#"{"event":"mark","sequenceNumber":"93","streamSid":"MZ00000000000000000000000000000001","mark":{"name":"item_7:1240"}}"#;
/// match stream::parse(text)? {
///     Event::Mark(mark) => assert_eq!(mark.name, "item_7:1240"),
///     other => panic!("unexpected {other:?}"),
/// }
///
/// // New event types are not errors.
/// let later = stream::parse(r#"{"event":"hologram","streamSid":"MZ1"}"#)?;
/// assert!(matches!(later, Event::Unknown { ref event, .. } if event == "hologram"));
///
/// // A known event with a bad field is a clear error.
/// let err = stream::parse(r#"{"event":"mark","sequenceNumber":"9","streamSid":"MZ1","mark":{}}"#)
///     .unwrap_err();
/// assert_eq!(err.to_string(), "Twilio `mark` message is missing the required field `mark.name`");
/// # Ok::<(), twilio_media::stream::StreamError>(())
/// ```
pub fn parse(text: &str) -> Result<Event<'_>, StreamError> {
    // `media` and `mark` (the per-frame messages) in Twilio's exact layout skip serde; the
    // result is the same (see `fast`).
    if let Some(media) = super::fast::media(text) {
        return Ok(Event::Media(media));
    }
    if let Some(mark) = super::fast::mark(text) {
        return Ok(Event::Mark(mark));
    }
    parse_general(text)
}

/// [`parse`] without the fast path.
pub(super) fn parse_general(text: &str) -> Result<Event<'_>, StreamError> {
    match parse_with(text, Tag::Unseen) {
        Ok(event) => Ok(event),
        Err(Failure::Report(error)) => Err(error),
        // The error happened before the `event` field was seen (a body or top-level
        // field preceded it). Find the tag, then parse again knowing the event, which
        // skips the bodies of other events exactly as the fast path does.
        Err(Failure::NeedTag(first)) => match find_tag(text) {
            Ok(Some(tag)) => match Kind::from_tag(&tag) {
                Some(kind) => match parse_with(text, Tag::Known(kind)) {
                    Ok(event) => Ok(event),
                    Err(Failure::Report(error)) => Err(error),
                    // Unreachable in practice (the kind is known), but keep the first error.
                    Err(Failure::NeedTag(_)) => Err(StreamError::Json(first)),
                },
                None => unknown(tag, text),
            },
            Ok(None) => Err(StreamError::MissingEvent),
            Err(error) => Err(error),
        },
    }
}

/// Internal outcome of one parsing attempt.
enum Failure {
    Report(StreamError),
    /// A data error before the event tag was known.
    NeedTag(serde_json::Error),
}

fn parse_with(text: &str, tag: Tag) -> Result<Event<'_>, Failure> {
    let ctx = Ctx {
        tag: Cell::new(tag),
        field: Cell::new(""),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = EnvelopeSeed { ctx: &ctx }
        .deserialize(&mut de)
        .and_then(|envelope| de.end().map(|()| envelope));
    match result {
        Ok(envelope) => envelope.into_event(text).map_err(Failure::Report),
        Err(error) if !error.is_data() => Err(Failure::Report(StreamError::Json(error))),
        Err(error) => match (ctx.tag.get(), ctx.field.get()) {
            (_, "") => Err(Failure::Report(StreamError::Json(error))),
            (_, "event") => Err(Failure::Report(StreamError::MissingEvent)),
            (Tag::Known(kind), field) => Err(Failure::Report(StreamError::InvalidField {
                event: kind.name(),
                field,
                cause: error,
            })),
            (Tag::Unseen | Tag::Unrecognized, _) => Err(Failure::NeedTag(error)),
        },
    }
}

fn unknown(event: String, text: &str) -> Result<Event<'_>, StreamError> {
    let raw = serde_json::from_str(text).map_err(StreamError::Json)?;
    Ok(Event::Unknown { event, raw })
}

/// Reads only the `event` field of a JSON object (cold path).
fn find_tag(text: &str) -> Result<Option<String>, StreamError> {
    #[derive(Deserialize)]
    struct TagOnly {
        event: Option<serde_json::Value>,
    }
    match serde_json::from_str::<TagOnly>(text) {
        Ok(TagOnly { event: None }) => Ok(None),
        Ok(TagOnly {
            event: Some(serde_json::Value::String(tag)),
        }) => Ok(Some(tag)),
        Ok(TagOnly { event: Some(_) }) => Err(StreamError::MissingEvent),
        Err(error) => Err(StreamError::Json(error)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connected,
    Start,
    Media,
    Mark,
    Dtmf,
    Stop,
}

impl Kind {
    fn from_tag(tag: &str) -> Option<Self> {
        Some(match tag {
            "connected" => Self::Connected,
            "start" => Self::Start,
            "media" => Self::Media,
            "mark" => Self::Mark,
            "dtmf" => Self::Dtmf,
            "stop" => Self::Stop,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Start => "start",
            Self::Media => "media",
            Self::Mark => "mark",
            Self::Dtmf => "dtmf",
            Self::Stop => "stop",
        }
    }
}

/// What the parser knows about the `event` tag so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Unseen,
    Known(Kind),
    /// Seen, and not one of ours: everything else is skipped.
    Unrecognized,
}

impl Tag {
    /// Whether the body or fields belonging to `kind` must be parsed.
    fn wants(self, kind: Kind) -> bool {
        match self {
            Tag::Unseen => true,
            Tag::Known(k) => k == kind,
            Tag::Unrecognized => false,
        }
    }
}

/// Shared parse state: the tag, and the path of the field being parsed (for errors).
struct Ctx {
    tag: Cell<Tag>,
    field: Cell<&'static str>,
}

impl Ctx {
    fn value<'de, A, T>(&self, map: &mut A, path: &'static str) -> Result<T, A::Error>
    where
        A: MapAccess<'de>,
        T: Deserialize<'de>,
    {
        self.field.set(path);
        map.next_value()
    }

    fn value_seed<'de, A, S>(
        &self,
        map: &mut A,
        path: &'static str,
        seed: S,
    ) -> Result<S::Value, A::Error>
    where
        A: MapAccess<'de>,
        S: DeserializeSeed<'de>,
    {
        self.field.set(path);
        map.next_value_seed(seed)
    }

    fn text<'de, A: MapAccess<'de>>(
        &self,
        map: &mut A,
        path: &'static str,
    ) -> Result<Cow<'de, str>, A::Error> {
        self.value::<A, CowStr<'de>>(map, path).map(|s| s.0)
    }

    fn counter<'de, A: MapAccess<'de>>(
        &self,
        map: &mut A,
        path: &'static str,
    ) -> Result<u64, A::Error> {
        self.value::<A, Counter>(map, path).map(|c| c.0)
    }
}

/// Maps an object key to its index in a fixed list of names (`names.len()` if absent),
/// without allocating even when the key contains escapes.
struct Keys(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Keys {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Keys {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        Ok(self.0.iter().position(|n| *n == v).unwrap_or(self.0.len()))
    }
}

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}

#[derive(Default)]
struct Envelope<'a> {
    event: Option<Cow<'a, str>>,
    sequence_number: Option<u64>,
    stream_sid: Option<Cow<'a, str>>,
    protocol: Option<Cow<'a, str>>,
    version: Option<Cow<'a, str>>,
    start: Option<StartBody<'a>>,
    media: Option<MediaBody<'a>>,
    mark: Option<MarkBody<'a>>,
    dtmf: Option<DtmfBody<'a>>,
    stop: Option<StopBody<'a>>,
}

struct EnvelopeSeed<'c> {
    ctx: &'c Ctx,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Envelope<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Envelope<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Twilio Media Streams message (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
        const KEYS: &[&str] = &[
            "event",
            "sequenceNumber",
            "streamSid",
            "protocol",
            "version",
            "start",
            "media",
            "mark",
            "dtmf",
            "stop",
        ];
        let ctx = self.ctx;
        let mut env = Envelope::default();
        while let Some(key) = map.next_key_seed(Keys(KEYS))? {
            let tag = ctx.tag.get();
            // Fields every event but `connected` carries.
            let common = match tag {
                Tag::Unseen => true,
                Tag::Known(kind) => kind != Kind::Connected,
                Tag::Unrecognized => false,
            };
            match key {
                0 if env.event.is_none() => {
                    let event = ctx.text(&mut map, "event")?;
                    if tag == Tag::Unseen {
                        ctx.tag
                            .set(Kind::from_tag(&event).map_or(Tag::Unrecognized, Tag::Known));
                    }
                    env.event = Some(event);
                }
                1 if common => env.sequence_number = Some(ctx.counter(&mut map, "sequenceNumber")?),
                2 if common => env.stream_sid = Some(ctx.text(&mut map, "streamSid")?),
                3 if tag.wants(Kind::Connected) => {
                    env.protocol = Some(ctx.text(&mut map, "protocol")?)
                }
                4 if tag.wants(Kind::Connected) => {
                    env.version = Some(ctx.text(&mut map, "version")?)
                }
                5 if tag.wants(Kind::Start) => {
                    env.start = Some(ctx.value_seed(&mut map, "start", StartSeed(ctx))?);
                }
                6 if tag.wants(Kind::Media) => {
                    env.media = Some(ctx.value_seed(&mut map, "media", MediaSeed(ctx))?);
                }
                7 if tag.wants(Kind::Mark) => {
                    env.mark = Some(ctx.value_seed(&mut map, "mark", MarkSeed(ctx))?);
                }
                8 if tag.wants(Kind::Dtmf) => {
                    env.dtmf = Some(ctx.value_seed(&mut map, "dtmf", DtmfSeed(ctx))?);
                }
                9 if tag.wants(Kind::Stop) => {
                    env.stop = Some(ctx.value_seed(&mut map, "stop", StopSeed(ctx))?);
                }
                _ => skip(&mut map)?,
            }
        }
        Ok(env)
    }
}

fn require<T>(value: Option<T>, event: Kind, field: &'static str) -> Result<T, StreamError> {
    value.ok_or(StreamError::MissingField {
        event: event.name(),
        field,
    })
}

impl<'a> Envelope<'a> {
    fn into_event(self, text: &'a str) -> Result<Event<'a>, StreamError> {
        let Some(event) = self.event else {
            return Err(StreamError::MissingEvent);
        };
        let Some(kind) = Kind::from_tag(&event) else {
            return unknown(event.into_owned(), text);
        };
        let sequence_number = self.sequence_number;
        let top_sid = self.stream_sid;
        let seq = || require(sequence_number, kind, "sequenceNumber");
        Ok(match kind {
            Kind::Media => {
                let body = require(self.media, kind, "media")?;
                Event::Media(Media {
                    sequence_number: seq()?,
                    stream_sid: StreamSid::new(require(top_sid, kind, "streamSid")?),
                    track: require(body.track, kind, "media.track")?,
                    chunk: require(body.chunk, kind, "media.chunk")?,
                    timestamp: require(body.timestamp, kind, "media.timestamp")?,
                    payload: require(body.payload, kind, "media.payload")?,
                })
            }
            Kind::Mark => {
                let body = require(self.mark, kind, "mark")?;
                Event::Mark(Mark {
                    sequence_number: seq()?,
                    stream_sid: StreamSid::new(require(top_sid, kind, "streamSid")?),
                    name: require(body.name, kind, "mark.name")?,
                })
            }
            Kind::Dtmf => {
                let body = require(self.dtmf, kind, "dtmf")?;
                Event::Dtmf(Dtmf {
                    sequence_number: seq()?,
                    stream_sid: StreamSid::new(require(top_sid, kind, "streamSid")?),
                    track: require(body.track, kind, "dtmf.track")?,
                    digit: require(body.digit, kind, "dtmf.digit")?,
                })
            }
            Kind::Stop => {
                let body = require(self.stop, kind, "stop")?;
                Event::Stop(Stop {
                    sequence_number: seq()?,
                    stream_sid: StreamSid::new(require(top_sid, kind, "streamSid")?),
                    account_sid: AccountSid::new(require(
                        body.account_sid,
                        kind,
                        "stop.accountSid",
                    )?),
                    call_sid: CallSid::new(require(body.call_sid, kind, "stop.callSid")?),
                })
            }
            Kind::Start => {
                let body = require(self.start, kind, "start")?;
                let stream_sid = top_sid.or(body.stream_sid);
                let format = require(body.media_format, kind, "start.mediaFormat")?;
                Event::Start(Start {
                    sequence_number: seq()?,
                    stream_sid: StreamSid::new(require(stream_sid, kind, "streamSid")?),
                    account_sid: AccountSid::new(require(
                        body.account_sid,
                        kind,
                        "start.accountSid",
                    )?),
                    call_sid: CallSid::new(require(body.call_sid, kind, "start.callSid")?),
                    tracks: body.tracks.unwrap_or_default(),
                    custom_parameters: body.custom_parameters.unwrap_or_default(),
                    media_format: MediaFormat {
                        encoding: require(format.encoding, kind, "start.mediaFormat.encoding")?,
                        sample_rate: require(
                            format.sample_rate,
                            kind,
                            "start.mediaFormat.sampleRate",
                        )?,
                        channels: require(format.channels, kind, "start.mediaFormat.channels")?,
                    },
                })
            }
            Kind::Connected => Event::Connected(Connected {
                protocol: require(self.protocol, kind, "protocol")?,
                version: require(self.version, kind, "version")?,
            }),
        })
    }
}

/// Declares a seed + visitor that parses one JSON object field by field.
macro_rules! object_seed {
    (
        $seed:ident -> $body:ident<$de:lifetime>, $expecting:literal,
        |$ctx:ident, $map:ident, $b:ident| { $($idx:literal => $arm:expr,)* }
        keys: [$($key:literal),* $(,)?]
    ) => {
        struct $seed<'c>(&'c Ctx);

        impl<$de> DeserializeSeed<$de> for $seed<'_> {
            type Value = $body<$de>;

            fn deserialize<D: Deserializer<$de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
                deserializer.deserialize_map(self)
            }
        }

        impl<$de> Visitor<$de> for $seed<'_> {
            type Value = $body<$de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($expecting)
            }

            fn visit_map<A: MapAccess<$de>>(self, mut $map: A) -> Result<Self::Value, A::Error> {
                const KEYS: &[&str] = &[$($key),*];
                let $ctx = self.0;
                let mut $b = $body::default();
                while let Some(key) = $map.next_key_seed(Keys(KEYS))? {
                    match key {
                        $($idx => $arm,)*
                        _ => skip(&mut $map)?,
                    }
                }
                Ok($b)
            }
        }
    };
}

#[derive(Default)]
struct MediaBody<'a> {
    track: Option<Track>,
    chunk: Option<u64>,
    timestamp: Option<u64>,
    payload: Option<Cow<'a, str>>,
}

object_seed! {
    MediaSeed -> MediaBody<'de>, "the `media` object",
    |ctx, map, b| {
        0 => b.track = Some(ctx.value::<A, TrackValue>(&mut map, "media.track")?.0),
        1 => b.chunk = Some(ctx.counter(&mut map, "media.chunk")?),
        2 => b.timestamp = Some(ctx.counter(&mut map, "media.timestamp")?),
        3 => b.payload = Some(ctx.text(&mut map, "media.payload")?),
    }
    keys: ["track", "chunk", "timestamp", "payload"]
}

#[derive(Default)]
struct MarkBody<'a> {
    name: Option<Cow<'a, str>>,
}

object_seed! {
    MarkSeed -> MarkBody<'de>, "the `mark` object",
    |ctx, map, b| {
        0 => b.name = Some(ctx.text(&mut map, "mark.name")?),
    }
    keys: ["name"]
}

#[derive(Default)]
struct DtmfBody<'a> {
    track: Option<Track>,
    digit: Option<Cow<'a, str>>,
}

object_seed! {
    DtmfSeed -> DtmfBody<'de>, "the `dtmf` object",
    |ctx, map, b| {
        0 => b.track = Some(ctx.value::<A, TrackValue>(&mut map, "dtmf.track")?.0),
        1 => b.digit = Some(ctx.text(&mut map, "dtmf.digit")?),
    }
    keys: ["track", "digit"]
}

#[derive(Default)]
struct StopBody<'a> {
    account_sid: Option<Cow<'a, str>>,
    call_sid: Option<Cow<'a, str>>,
}

object_seed! {
    StopSeed -> StopBody<'de>, "the `stop` object",
    |ctx, map, b| {
        0 => b.account_sid = Some(ctx.text(&mut map, "stop.accountSid")?),
        1 => b.call_sid = Some(ctx.text(&mut map, "stop.callSid")?),
    }
    keys: ["accountSid", "callSid"]
}

#[derive(Default)]
struct StartBody<'a> {
    stream_sid: Option<Cow<'a, str>>,
    account_sid: Option<Cow<'a, str>>,
    call_sid: Option<Cow<'a, str>>,
    tracks: Option<Vec<Track>>,
    custom_parameters: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
    media_format: Option<FormatBody<'a>>,
}

object_seed! {
    StartSeed -> StartBody<'de>, "the `start` object",
    |ctx, map, b| {
        0 => b.stream_sid = Some(ctx.text(&mut map, "start.streamSid")?),
        1 => b.account_sid = Some(ctx.text(&mut map, "start.accountSid")?),
        2 => b.call_sid = Some(ctx.text(&mut map, "start.callSid")?),
        3 => b.tracks = Some(ctx.value::<A, Tracks>(&mut map, "start.tracks")?.0),
        4 => b.custom_parameters = Some(ctx.value::<A, Params<'de>>(&mut map, "start.customParameters")?.0),
        5 => b.media_format = Some(ctx.value_seed(&mut map, "start.mediaFormat", FormatSeed(ctx))?),
    }
    keys: ["streamSid", "accountSid", "callSid", "tracks", "customParameters", "mediaFormat"]
}

#[derive(Default)]
struct FormatBody<'a> {
    encoding: Option<Cow<'a, str>>,
    sample_rate: Option<u32>,
    channels: Option<u16>,
}

fn narrow<T: TryFrom<u64>, E: de::Error>(v: u64, what: &'static str) -> Result<T, E> {
    T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &what))
}

object_seed! {
    FormatSeed -> FormatBody<'de>, "the `mediaFormat` object",
    |ctx, map, b| {
        0 => b.encoding = Some(ctx.text(&mut map, "start.mediaFormat.encoding")?),
        1 => b.sample_rate = Some(narrow(ctx.counter(&mut map, "start.mediaFormat.sampleRate")?, "a sample rate that fits in 32 bits")?),
        2 => b.channels = Some(narrow(ctx.counter(&mut map, "start.mediaFormat.channels")?, "a channel count that fits in 16 bits")?),
    }
    keys: ["encoding", "sampleRate", "channels"]
}

/// A track name, mapped to [`Track`] without allocating for the known values.
struct TrackValue(Track);

impl<'de> Deserialize<'de> for TrackValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Track;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a track name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Track, E> {
                Ok(Track::from_wire(v))
            }
        }
        deserializer.deserialize_str(V).map(TrackValue)
    }
}

/// `start.tracks`: an array of track names.
struct Tracks(Vec<Track>);

impl<'de> Deserialize<'de> for Tracks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<Track>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of track names")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Vec<Track>, S::Error> {
                let mut tracks = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(4));
                while let Some(TrackValue(t)) = seq.next_element()? {
                    tracks.push(t);
                }
                Ok(tracks)
            }
        }
        deserializer.deserialize_seq(V).map(Tracks)
    }
}

/// `start.customParameters`: an object of string values.
struct Params<'a>(BTreeMap<Cow<'a, str>, Cow<'a, str>>);

impl<'de> Deserialize<'de> for Params<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BTreeMap<Cow<'de, str>, Cow<'de, str>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut params = BTreeMap::new();
                while let Some(CowStr(name)) = map.next_key()? {
                    let CowStr(value) = map.next_value()?;
                    params.insert(name, value);
                }
                Ok(params)
            }
        }
        deserializer.deserialize_map(V).map(Params)
    }
}
