//! Client events — what we send to OpenAI (PROTOCOLS §6.5).
//!
//! [`ClientEvent`] serializes with serde (tag `type`, `event_id` only when set, no `null`s).
//! Audio is borrowed, and [`write_input_audio_append`] writes the per-frame
//! `input_audio_buffer.append` straight into a reusable `String` — byte-identical to the serde
//! output, with no intermediate `serde_json::Value` and no allocation once the buffer has grown
//! (≈ 20–35 ns for a 20 ms μ-law frame vs ≈ 200 ns through serde; see
//! `examples/realtime_parse_bench.rs`).
//!
//! ```
//! use openai_realtime::realtime::{ClientEvent, write_input_audio_append};
//! let mut buf = String::new();
//! write_input_audio_append(&mut buf, "/////w==");
//! assert_eq!(buf, r#"{"type":"input_audio_buffer.append","audio":"/////w=="}"#);
//! assert_eq!(buf, ClientEvent::input_audio_append("/////w==").to_json());
//!
//! let truncate = ClientEvent::truncate("item_abc", 0, 1240);
//! assert_eq!(
//!     truncate.to_json(),
//!     r#"{"type":"conversation.item.truncate","item_id":"item_abc","content_index":0,"audio_end_ms":1240}"#
//! );
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::item::Item;
use super::response::ResponseCreateParams;
use super::session::SessionConfig;
use super::wire::AudioLen;

/// A client event. Borrowed fields (`Cow`) avoid copying audio and ids; use the constructors
/// and [`ClientEvent::with_event_id`]. `Debug` prints the length of appended audio, not the
/// audio.
///
/// `Deserialize` is provided too (for mock servers and tests); it rejects unknown `type`s.
// The owned `Cow` forms of `SessionConfig`/`Item`/`ResponseCreateParams` make some variants a
// few hundred bytes. Events are built, serialized and dropped on the spot, and the per-frame
// audio path uses `write_input_audio_append`, so boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientEvent<'a> {
    /// `session.update` → `session.updated`.
    #[serde(rename = "session.update")]
    SessionUpdate {
        /// Optional client event id (echoed only in errors).
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        event_id: Option<Cow<'a, str>>,
        /// The configuration to apply (only present fields change).
        session: Cow<'a, SessionConfig>,
    },
    /// `input_audio_buffer.append` (no reply). Base64 audio in the session's input format,
    /// ≤ 15 MiB.
    #[serde(rename = "input_audio_buffer.append")]
    InputAudioBufferAppend {
        /// Optional client event id.
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        event_id: Option<Cow<'a, str>>,
        /// Base64 audio.
        #[serde(borrow)]
        audio: Cow<'a, str>,
    },
    /// `input_audio_buffer.commit` → `input_audio_buffer.committed` (manual turns only).
    #[serde(rename = "input_audio_buffer.commit")]
    InputAudioBufferCommit {
        /// Optional client event id.
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        event_id: Option<Cow<'a, str>>,
    },
    /// `input_audio_buffer.clear` → `input_audio_buffer.cleared`.
    #[serde(rename = "input_audio_buffer.clear")]
    InputAudioBufferClear {
        /// Optional client event id.
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        event_id: Option<Cow<'a, str>>,
    },
    /// `conversation.item.create` → `conversation.item.added` / `.done`.
    #[serde(rename = "conversation.item.create")]
    ConversationItemCreate {
        /// Optional client event id.
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        event_id: Option<Cow<'a, str>>,
        /// Insert after this item (`"root"` = at the start); absent = append.
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        previous_item_id: Option<Cow<'a, str>>,
        /// The item.
        item: Cow<'a, Item>,
    },
    /// `conversation.item.retrieve` → `conversation.item.retrieved` (with audio).
    #[serde(rename = "conversation.item.retrieve")]
    ConversationItemRetrieve {
        /// Optional client event id.
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        event_id: Option<Cow<'a, str>>,
        /// The item to fetch.
        #[serde(borrow)]
        item_id: Cow<'a, str>,
    },
    /// `conversation.item.truncate` → `conversation.item.truncated`: only the first
    /// `audio_end_ms` of an assistant item's audio was heard (PROTOCOLS §6.10).
    #[serde(rename = "conversation.item.truncate")]
    ConversationItemTruncate {
        /// Optional client event id.
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        event_id: Option<Cow<'a, str>>,
        /// The assistant message item.
        #[serde(borrow)]
        item_id: Cow<'a, str>,
        /// Content part index (use 0).
        content_index: u32,
        /// Audio heard, inclusive, in ms; must not exceed the item's audio duration.
        audio_end_ms: u64,
    },
    /// `conversation.item.delete` → `conversation.item.deleted`.
    #[serde(rename = "conversation.item.delete")]
    ConversationItemDelete {
        /// Optional client event id.
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        event_id: Option<Cow<'a, str>>,
        /// The item to delete.
        #[serde(borrow)]
        item_id: Cow<'a, str>,
    },
    /// `response.create` → `response.created` … `response.done`.
    #[serde(rename = "response.create")]
    ResponseCreate {
        /// Optional client event id.
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        event_id: Option<Cow<'a, str>>,
        /// Per-response options; absent = session defaults.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response: Option<Cow<'a, ResponseCreateParams>>,
    },
    /// `response.cancel` → `response.done` with `status: "cancelled"` (or the harmless
    /// `response_cancel_not_active` error).
    #[serde(rename = "response.cancel")]
    ResponseCancel {
        /// Optional client event id.
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        event_id: Option<Cow<'a, str>>,
        /// A specific response; absent = the active one.
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        response_id: Option<Cow<'a, str>>,
    },
    /// `output_audio_buffer.clear` — WebRTC/SIP only; not for WebSocket bridges.
    #[serde(rename = "output_audio_buffer.clear")]
    OutputAudioBufferClear {
        /// Optional client event id.
        #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
        event_id: Option<Cow<'a, str>>,
    },
}

impl fmt::Debug for ClientEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = match self {
            Self::SessionUpdate { event_id, session } => {
                let mut d = f.debug_struct("SessionUpdate");
                d.field("event_id", event_id).field("session", session);
                d
            }
            Self::InputAudioBufferAppend { event_id, audio } => {
                let mut d = f.debug_struct("InputAudioBufferAppend");
                d.field("event_id", event_id)
                    .field("audio", &AudioLen(audio));
                d
            }
            Self::InputAudioBufferCommit { event_id } => {
                let mut d = f.debug_struct("InputAudioBufferCommit");
                d.field("event_id", event_id);
                d
            }
            Self::InputAudioBufferClear { event_id } => {
                let mut d = f.debug_struct("InputAudioBufferClear");
                d.field("event_id", event_id);
                d
            }
            Self::ConversationItemCreate {
                event_id,
                previous_item_id,
                item,
            } => {
                let mut d = f.debug_struct("ConversationItemCreate");
                d.field("event_id", event_id)
                    .field("previous_item_id", previous_item_id)
                    .field("item", item);
                d
            }
            Self::ConversationItemRetrieve { event_id, item_id } => {
                let mut d = f.debug_struct("ConversationItemRetrieve");
                d.field("event_id", event_id).field("item_id", item_id);
                d
            }
            Self::ConversationItemTruncate {
                event_id,
                item_id,
                content_index,
                audio_end_ms,
            } => {
                let mut d = f.debug_struct("ConversationItemTruncate");
                d.field("event_id", event_id)
                    .field("item_id", item_id)
                    .field("content_index", content_index)
                    .field("audio_end_ms", audio_end_ms);
                d
            }
            Self::ConversationItemDelete { event_id, item_id } => {
                let mut d = f.debug_struct("ConversationItemDelete");
                d.field("event_id", event_id).field("item_id", item_id);
                d
            }
            Self::ResponseCreate { event_id, response } => {
                let mut d = f.debug_struct("ResponseCreate");
                d.field("event_id", event_id).field("response", response);
                d
            }
            Self::ResponseCancel {
                event_id,
                response_id,
            } => {
                let mut d = f.debug_struct("ResponseCancel");
                d.field("event_id", event_id)
                    .field("response_id", response_id);
                d
            }
            Self::OutputAudioBufferClear { event_id } => {
                let mut d = f.debug_struct("OutputAudioBufferClear");
                d.field("event_id", event_id);
                d
            }
        };
        d.finish()
    }
}

/// The prefix of an `input_audio_buffer.append` without `event_id`.
const APPEND_PREFIX: &str = r#"{"type":"input_audio_buffer.append","audio":""#;
/// The suffix closing the audio string and the object.
const APPEND_SUFFIX: &str = r#""}"#;

/// Appends `{"type":"input_audio_buffer.append","audio":"<audio>"}` to `out`, byte-identical
/// to `ClientEvent::input_audio_append(audio).to_json()`. Base64 needs no escaping, so the
/// audio is copied with one `memcpy`; any other input is escaped exactly as `serde_json`
/// would. Clear and reuse `out` between frames to avoid allocating.
pub fn write_input_audio_append(out: &mut String, audio: &str) {
    out.reserve(APPEND_PREFIX.len() + audio.len() + APPEND_SUFFIX.len());
    out.push_str(APPEND_PREFIX);
    push_json_string_body(out, audio);
    out.push_str(APPEND_SUFFIX);
}

/// Appends the body of a JSON string literal (without quotes), escaping like `serde_json`:
/// `"` and `\` with a backslash, control characters as `\b \f \n \r \t` or `\u00XX`.
fn push_json_string_body(out: &mut String, s: &str) {
    if !any_needs_escape(s.as_bytes()) {
        out.push_str(s);
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        // `i` is the index of an ASCII byte, so both slice ends are char boundaries.
        out.push_str(s.get(start..i).unwrap_or_default());
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether any byte needs escaping. Scans fixed-size chunks without an early exit inside a
/// chunk so the compiler can vectorize the comparison (several times faster than a
/// short-circuiting byte loop on base64 frames).
fn any_needs_escape(bytes: &[u8]) -> bool {
    bytes
        .chunks(32)
        .any(|chunk| chunk.iter().fold(false, |acc, &b| acc | needs_escape(b)))
}

impl<'a> ClientEvent<'a> {
    /// `session.update` with `session`.
    pub fn session_update(session: impl Into<Cow<'a, SessionConfig>>) -> Self {
        Self::SessionUpdate {
            event_id: None,
            session: session.into(),
        }
    }

    /// `input_audio_buffer.append` with base64 `audio`.
    pub fn input_audio_append(audio: impl Into<Cow<'a, str>>) -> Self {
        Self::InputAudioBufferAppend {
            event_id: None,
            audio: audio.into(),
        }
    }

    /// `input_audio_buffer.commit`.
    pub fn input_audio_commit() -> Self {
        Self::InputAudioBufferCommit { event_id: None }
    }

    /// `input_audio_buffer.clear`.
    pub fn input_audio_clear() -> Self {
        Self::InputAudioBufferClear { event_id: None }
    }

    /// `conversation.item.create` appending `item`.
    pub fn item_create(item: impl Into<Cow<'a, Item>>) -> Self {
        Self::ConversationItemCreate {
            event_id: None,
            previous_item_id: None,
            item: item.into(),
        }
    }

    /// `conversation.item.retrieve`.
    pub fn item_retrieve(item_id: impl Into<Cow<'a, str>>) -> Self {
        Self::ConversationItemRetrieve {
            event_id: None,
            item_id: item_id.into(),
        }
    }

    /// `conversation.item.truncate`.
    pub fn truncate(
        item_id: impl Into<Cow<'a, str>>,
        content_index: u32,
        audio_end_ms: u64,
    ) -> Self {
        Self::ConversationItemTruncate {
            event_id: None,
            item_id: item_id.into(),
            content_index,
            audio_end_ms,
        }
    }

    /// `conversation.item.delete`.
    pub fn item_delete(item_id: impl Into<Cow<'a, str>>) -> Self {
        Self::ConversationItemDelete {
            event_id: None,
            item_id: item_id.into(),
        }
    }

    /// `response.create`, optionally with per-response options.
    pub fn response_create(response: Option<ResponseCreateParams>) -> Self {
        Self::ResponseCreate {
            event_id: None,
            response: response.map(Cow::Owned),
        }
    }

    /// `response.cancel` of the active response.
    pub fn response_cancel() -> Self {
        Self::ResponseCancel {
            event_id: None,
            response_id: None,
        }
    }

    /// `response.cancel` of a specific response.
    pub fn response_cancel_id(response_id: impl Into<Cow<'a, str>>) -> Self {
        Self::ResponseCancel {
            event_id: None,
            response_id: Some(response_id.into()),
        }
    }

    /// `output_audio_buffer.clear` (WebRTC/SIP only).
    pub fn output_audio_clear() -> Self {
        Self::OutputAudioBufferClear { event_id: None }
    }

    /// Sets `event_id` (≤ 512 characters; echoed in `error.event_id` if this event fails).
    pub fn with_event_id(mut self, id: impl Into<Cow<'a, str>>) -> Self {
        *self.event_id_mut() = Some(id.into());
        self
    }

    fn event_id_mut(&mut self) -> &mut Option<Cow<'a, str>> {
        match self {
            Self::SessionUpdate { event_id, .. }
            | Self::InputAudioBufferAppend { event_id, .. }
            | Self::InputAudioBufferCommit { event_id }
            | Self::InputAudioBufferClear { event_id }
            | Self::ConversationItemCreate { event_id, .. }
            | Self::ConversationItemRetrieve { event_id, .. }
            | Self::ConversationItemTruncate { event_id, .. }
            | Self::ConversationItemDelete { event_id, .. }
            | Self::ResponseCreate { event_id, .. }
            | Self::ResponseCancel { event_id, .. }
            | Self::OutputAudioBufferClear { event_id } => event_id,
        }
    }

    /// The `event_id`, if set.
    pub fn event_id(&self) -> Option<&str> {
        match self {
            Self::SessionUpdate { event_id, .. }
            | Self::InputAudioBufferAppend { event_id, .. }
            | Self::InputAudioBufferCommit { event_id }
            | Self::InputAudioBufferClear { event_id }
            | Self::ConversationItemCreate { event_id, .. }
            | Self::ConversationItemRetrieve { event_id, .. }
            | Self::ConversationItemTruncate { event_id, .. }
            | Self::ConversationItemDelete { event_id, .. }
            | Self::ResponseCreate { event_id, .. }
            | Self::ResponseCancel { event_id, .. }
            | Self::OutputAudioBufferClear { event_id } => event_id.as_deref(),
        }
    }

    /// The wire `type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::SessionUpdate { .. } => "session.update",
            Self::InputAudioBufferAppend { .. } => "input_audio_buffer.append",
            Self::InputAudioBufferCommit { .. } => "input_audio_buffer.commit",
            Self::InputAudioBufferClear { .. } => "input_audio_buffer.clear",
            Self::ConversationItemCreate { .. } => "conversation.item.create",
            Self::ConversationItemRetrieve { .. } => "conversation.item.retrieve",
            Self::ConversationItemTruncate { .. } => "conversation.item.truncate",
            Self::ConversationItemDelete { .. } => "conversation.item.delete",
            Self::ResponseCreate { .. } => "response.create",
            Self::ResponseCancel { .. } => "response.cancel",
            Self::OutputAudioBufferClear { .. } => "output_audio_buffer.clear",
        }
    }

    /// Serializes to JSON text. An `input_audio_buffer.append` without `event_id` takes the
    /// [`write_input_audio_append`] fast path.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Appends the JSON text to `out` (reuse the buffer across events).
    pub fn write_json(&self, out: &mut String) {
        if let Self::InputAudioBufferAppend {
            event_id: None,
            audio,
        } = self
        {
            write_input_audio_append(out, audio);
            return;
        }
        // Invariant: serialization cannot fail — every map key is a string, no custom
        // `Serialize` impl in this module returns an error, and serde_json writes non-finite
        // floats as `null` instead of failing.
        let json = serde_json::to_string(self).unwrap_or_default();
        out.push_str(&json);
    }

    /// Copies every borrowed part so the event no longer borrows its inputs.
    pub fn into_owned(self) -> ClientEvent<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        fn own_opt(c: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            c.map(own)
        }
        match self {
            Self::SessionUpdate { event_id, session } => ClientEvent::SessionUpdate {
                event_id: own_opt(event_id),
                session: Cow::Owned(session.into_owned()),
            },
            Self::InputAudioBufferAppend { event_id, audio } => {
                ClientEvent::InputAudioBufferAppend {
                    event_id: own_opt(event_id),
                    audio: own(audio),
                }
            }
            Self::InputAudioBufferCommit { event_id } => ClientEvent::InputAudioBufferCommit {
                event_id: own_opt(event_id),
            },
            Self::InputAudioBufferClear { event_id } => ClientEvent::InputAudioBufferClear {
                event_id: own_opt(event_id),
            },
            Self::ConversationItemCreate {
                event_id,
                previous_item_id,
                item,
            } => ClientEvent::ConversationItemCreate {
                event_id: own_opt(event_id),
                previous_item_id: own_opt(previous_item_id),
                item: Cow::Owned(item.into_owned()),
            },
            Self::ConversationItemRetrieve { event_id, item_id } => {
                ClientEvent::ConversationItemRetrieve {
                    event_id: own_opt(event_id),
                    item_id: own(item_id),
                }
            }
            Self::ConversationItemTruncate {
                event_id,
                item_id,
                content_index,
                audio_end_ms,
            } => ClientEvent::ConversationItemTruncate {
                event_id: own_opt(event_id),
                item_id: own(item_id),
                content_index,
                audio_end_ms,
            },
            Self::ConversationItemDelete { event_id, item_id } => {
                ClientEvent::ConversationItemDelete {
                    event_id: own_opt(event_id),
                    item_id: own(item_id),
                }
            }
            Self::ResponseCreate { event_id, response } => ClientEvent::ResponseCreate {
                event_id: own_opt(event_id),
                response: response.map(|r| Cow::Owned(r.into_owned())),
            },
            Self::ResponseCancel {
                event_id,
                response_id,
            } => ClientEvent::ResponseCancel {
                event_id: own_opt(event_id),
                response_id: own_opt(response_id),
            },
            Self::OutputAudioBufferClear { event_id } => ClientEvent::OutputAudioBufferClear {
                event_id: own_opt(event_id),
            },
        }
    }
}

/// `From` impls so the constructors accept both owned values and references.
macro_rules! cow_from {
    ($($ty:ty),*) => {$(
        impl<'a> From<&'a $ty> for Cow<'a, $ty> {
            fn from(value: &'a $ty) -> Self {
                Cow::Borrowed(value)
            }
        }
        impl From<$ty> for Cow<'_, $ty> {
            fn from(value: $ty) -> Self {
                Cow::Owned(value)
            }
        }
    )*};
}
cow_from!(SessionConfig, Item, ResponseCreateParams);
