//! Conversation items and content parts (PROTOCOLS §6.7).
//!
//! Items we create (`conversation.item.create`) and items the server reports
//! (`conversation.item.*`, `response.output_item.*`, `response.output`) share one type,
//! [`Item`]. Unknown item types (MCP items, future types) are kept as raw JSON in
//! [`Item::Unknown`], and so are unknown content parts.
//!
//! Naming drift: assistant content parts inside items are `output_text` / `output_audio`, while
//! `response.content_part.*` events (and some older items) say `text` / `audio`. Both spellings
//! parse, into distinct variants, so whatever was received serializes back unchanged; use
//! [`ContentPart::text`] / [`ContentPart::transcript`] to read either.
//!
//! ```
//! use openai_realtime::realtime::Item;
//! let out = Item::function_call_output("call_001", r#"{"ok":true}"#);
//! assert_eq!(
//!     serde_json::to_string(&out).unwrap(),
//!     r#"{"type":"function_call_output","call_id":"call_001","output":"{\"ok\":true}"}"#
//! );
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wire::{open_enum, opt_audio_len};

open_enum! {
    /// The role of a message item.
    pub enum Role {
        /// `system`.
        System = "system",
        /// `user` (the caller).
        User = "user",
        /// `assistant` (the model).
        Assistant = "assistant",
    }
}

open_enum! {
    /// Item status (informational; it does not affect the conversation).
    pub enum ItemStatus {
        /// `completed`.
        Completed = "completed",
        /// `incomplete` (e.g. the response was cancelled or truncated).
        Incomplete = "incomplete",
        /// `in_progress` (model output being generated).
        InProgress = "in_progress",
    }
}

/// A conversation item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Item {
    /// `message` — system, user or assistant message.
    #[serde(rename = "message")]
    Message(MessageItem),
    /// `function_call` — the model calls one of our tools.
    #[serde(rename = "function_call")]
    FunctionCall(FunctionCallItem),
    /// `function_call_output` — our answer to a function call.
    #[serde(rename = "function_call_output")]
    FunctionCallOutput(FunctionCallOutputItem),
    /// Any other item (MCP items, future types, or a known type whose body does not match),
    /// kept verbatim.
    #[serde(untagged)]
    Unknown(Value),
}

impl Item {
    /// A system message with one `input_text` part.
    pub fn system_text(text: impl Into<String>) -> Self {
        Self::message(Role::System, ContentPart::InputText { text: text.into() })
    }

    /// A user message with one `input_text` part (e.g. "caller pressed 1").
    pub fn user_text(text: impl Into<String>) -> Self {
        Self::message(Role::User, ContentPart::InputText { text: text.into() })
    }

    /// An assistant message with one `output_text` part.
    pub fn assistant_text(text: impl Into<String>) -> Self {
        Self::message(
            Role::Assistant,
            ContentPart::OutputText { text: text.into() },
        )
    }

    fn message(role: Role, part: ContentPart) -> Self {
        Self::Message(MessageItem {
            id: None,
            object: None,
            status: None,
            role,
            content: vec![part],
        })
    }

    /// A `function_call_output` answering `call_id`.
    pub fn function_call_output(call_id: impl Into<String>, output: impl Into<String>) -> Self {
        Self::FunctionCallOutput(FunctionCallOutputItem {
            id: None,
            object: None,
            status: None,
            call_id: call_id.into(),
            output: output.into(),
        })
    }

    /// The item's `type` string.
    pub fn item_type(&self) -> &str {
        match self {
            Self::Message(_) => "message",
            Self::FunctionCall(_) => "function_call",
            Self::FunctionCallOutput(_) => "function_call_output",
            Self::Unknown(raw) => raw.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// The item id, if present.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Message(m) => m.id.as_deref(),
            Self::FunctionCall(f) => f.id.as_deref(),
            Self::FunctionCallOutput(f) => f.id.as_deref(),
            Self::Unknown(raw) => raw.get("id").and_then(Value::as_str),
        }
    }

    /// The item status, if present.
    pub fn status(&self) -> Option<&ItemStatus> {
        match self {
            Self::Message(m) => m.status.as_ref(),
            Self::FunctionCall(f) => f.status.as_ref(),
            Self::FunctionCallOutput(f) => f.status.as_ref(),
            Self::Unknown(_) => None,
        }
    }
}

/// A `message` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageItem {
    /// Item id (server-generated if omitted on create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `"realtime.item"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
    /// Who speaks.
    pub role: Role,
    /// Content parts (empty while the model is still generating).
    #[serde(default)]
    pub content: Vec<ContentPart>,
}

/// A `function_call` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallItem {
    /// Item id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `"realtime.item"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Status: execute the call only once it is `completed` in a completed response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
    /// Call id to answer with a `function_call_output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Function name.
    pub name: String,
    /// Arguments as JSON text (model-generated: parse defensively). Empty while in progress.
    #[serde(default)]
    pub arguments: String,
}

/// A `function_call_output` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallOutputItem {
    /// Item id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `"realtime.item"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
    /// The call this answers.
    pub call_id: String,
    /// Free text, usually JSON.
    pub output: String,
}

open_enum! {
    /// `detail` of an `input_image` part.
    pub enum ImageDetail {
        /// `auto` (= high).
        Auto = "auto",
        /// `low`.
        Low = "low",
        /// `high`.
        High = "high",
    }
}

/// A content part of a message item (or the `part` of a `response.content_part.*` event).
/// `Debug` prints the length of `audio` payloads, not the audio.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ContentPart {
    /// `input_text` (system and user messages).
    #[serde(rename = "input_text")]
    InputText {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// `input_audio` (user messages): base64 audio in the input format.
    #[serde(rename = "input_audio")]
    InputAudio {
        /// Base64 audio (absent in `conversation.item.added/done`; use retrieve).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio: Option<String>,
        /// Transcript, if transcription is on and finished.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transcript: Option<String>,
    },
    /// `input_image` (user messages).
    #[serde(rename = "input_image")]
    InputImage {
        /// A `data:image/png;base64,…` URI.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_url: Option<String>,
        /// Detail level.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<ImageDetail>,
    },
    /// `output_text` (assistant messages, GA spelling).
    #[serde(rename = "output_text")]
    OutputText {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// `output_audio` (assistant messages, GA spelling).
    #[serde(rename = "output_audio")]
    OutputAudio {
        /// Base64 audio (omitted in most events).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio: Option<String>,
        /// Transcript of the spoken audio.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transcript: Option<String>,
    },
    /// `text`: the spelling of `response.content_part.*` events and of legacy items.
    #[serde(rename = "text")]
    Text {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// `audio`: the spelling of `response.content_part.*` events and of legacy items.
    #[serde(rename = "audio")]
    Audio {
        /// Base64 audio (usually omitted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio: Option<String>,
        /// Transcript of the spoken audio.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transcript: Option<String>,
    },
    /// Any other part, kept verbatim.
    #[serde(untagged)]
    Unknown(Value),
}

impl fmt::Debug for ContentPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InputText { text } => f.debug_struct("InputText").field("text", text).finish(),
            Self::OutputText { text } => f.debug_struct("OutputText").field("text", text).finish(),
            Self::Text { text } => f.debug_struct("Text").field("text", text).finish(),
            Self::InputAudio { audio, transcript } => f
                .debug_struct("InputAudio")
                .field("audio", &opt_audio_len(audio))
                .field("transcript", transcript)
                .finish(),
            Self::OutputAudio { audio, transcript } => f
                .debug_struct("OutputAudio")
                .field("audio", &opt_audio_len(audio))
                .field("transcript", transcript)
                .finish(),
            Self::Audio { audio, transcript } => f
                .debug_struct("Audio")
                .field("audio", &opt_audio_len(audio))
                .field("transcript", transcript)
                .finish(),
            Self::InputImage { image_url, detail } => f
                .debug_struct("InputImage")
                .field("image_url", &opt_audio_len(image_url))
                .field("detail", detail)
                .finish(),
            Self::Unknown(raw) => f.debug_tuple("Unknown").field(raw).finish(),
        }
    }
}

impl ContentPart {
    /// The text of a text part (`input_text`, `output_text`, `text`).
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::InputText { text } | Self::OutputText { text } | Self::Text { text } => {
                Some(text)
            }
            _ => None,
        }
    }

    /// The transcript of an audio part (`input_audio`, `output_audio`, `audio`).
    pub fn transcript(&self) -> Option<&str> {
        match self {
            Self::InputAudio { transcript, .. }
            | Self::OutputAudio { transcript, .. }
            | Self::Audio { transcript, .. } => transcript.as_deref(),
            _ => None,
        }
    }

    /// Whether this is an audio part in either spelling.
    pub fn is_audio(&self) -> bool {
        matches!(
            self,
            Self::InputAudio { .. } | Self::OutputAudio { .. } | Self::Audio { .. }
        )
    }
}

/// A reference to an existing item, for [`super::ResponseCreateParams::input`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "item_reference", from = "ItemReferenceRepr")]
pub struct ItemReference {
    /// The referenced item's id.
    pub id: String,
}

/// Deserialization shape of [`ItemReference`]: unlike a struct-level `tag`, a tagged enum
/// actually checks that `type` is `item_reference`.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum ItemReferenceRepr {
    #[serde(rename = "item_reference")]
    ItemReference { id: String },
}

impl From<ItemReferenceRepr> for ItemReference {
    fn from(repr: ItemReferenceRepr) -> Self {
        let ItemReferenceRepr::ItemReference { id } = repr;
        Self { id }
    }
}

impl ItemReference {
    /// A reference to item `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }
}

/// One entry of `response.create`'s `input`: a full item or a reference to an existing one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResponseInput {
    /// `{"type":"item_reference","id":…}`.
    Reference(ItemReference),
    /// A full item.
    Item(Item),
}
