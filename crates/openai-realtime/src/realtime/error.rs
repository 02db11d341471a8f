//! Errors: the server's `error` event payload ([`ErrorDetails`], PROTOCOLS §6.11) with helpers
//! for the known codes, and [`ParseError`] for server events we could not parse.

use serde::{Deserialize, Serialize};

use super::wire::open_enum;

open_enum! {
    /// Known `error.code` values (PROTOCOLS §6.11). Codes marked unverified there are included
    /// so they can be matched, but nothing depends on them being exact.
    pub enum ErrorCode {
        /// `invalid_event`: a malformed client event.
        InvalidEvent = "invalid_event",
        /// `conversation_already_has_active_response`: `response.create` while a response is
        /// running.
        ConversationAlreadyHasActiveResponse = "conversation_already_has_active_response",
        /// `response_cancel_not_active`: `response.cancel` with nothing to cancel — harmless.
        ResponseCancelNotActive = "response_cancel_not_active",
        /// `input_audio_buffer_commit_empty`: commit with an empty buffer.
        InputAudioBufferCommitEmpty = "input_audio_buffer_commit_empty",
        /// `beta_api_shape_disabled`: a beta-shaped request after the beta shutdown.
        BetaApiShapeDisabled = "beta_api_shape_disabled",
        /// `session_expired`: the 60-minute limit was reached; the connection closes.
        SessionExpired = "session_expired",
    }
}

/// The `error` object of an `error` event. Most errors are recoverable: log them and keep the
/// session open.
///
/// ```
/// use openai_realtime::realtime::{ErrorCode, ErrorDetails};
/// let e: ErrorDetails = serde_json::from_str(
///     r#"{"type":"invalid_request_error","code":"response_cancel_not_active",
///         "message":"no active response","param":null,"event_id":"cancel-1"}"#,
/// ).unwrap();
/// assert_eq!(e.error_code(), Some(ErrorCode::ResponseCancelNotActive));
/// assert!(e.is_harmless());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetails {
    /// Error type, e.g. `invalid_request_error`, `server_error` (empty if the server omitted
    /// it).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Error code, if any.
    #[serde(default)]
    pub code: Option<String>,
    /// Human-readable message (empty if the server omitted it).
    #[serde(default)]
    pub message: String,
    /// The parameter at fault, if any.
    #[serde(default)]
    pub param: Option<String>,
    /// The `event_id` of our client event that caused the error, if it had one.
    #[serde(default)]
    pub event_id: Option<String>,
}

impl ErrorDetails {
    /// The code as a known [`ErrorCode`] (or `ErrorCode::Other`), if a code is present.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code.as_deref().map(ErrorCode::from)
    }

    /// True for errors that need no reaction: `response_cancel_not_active` (a redundant
    /// cancel after the server already cancelled on barge-in).
    pub fn is_harmless(&self) -> bool {
        self.code.as_deref() == Some(ErrorCode::ResponseCancelNotActive.as_str())
    }

    /// True if `response.create` failed because another response is active.
    pub fn is_active_response_conflict(&self) -> bool {
        self.code.as_deref() == Some(ErrorCode::ConversationAlreadyHasActiveResponse.as_str())
    }

    /// True if a commit found the input buffer empty: code
    /// `input_audio_buffer_commit_empty`, or (older sessions) no code and a message saying the
    /// buffer is empty.
    pub fn is_commit_empty(&self) -> bool {
        match self.code.as_deref() {
            Some(code) => code == ErrorCode::InputAudioBufferCommitEmpty.as_str(),
            None => {
                self.message.contains("buffer is empty")
                    || self.message.contains("buffer too small")
            }
        }
    }

    /// True if the session cannot continue (`session_expired`, `beta_api_shape_disabled`):
    /// end or restart the session instead of retrying.
    pub fn is_session_fatal(&self) -> bool {
        matches!(
            self.error_code(),
            Some(ErrorCode::SessionExpired | ErrorCode::BetaApiShapeDisabled)
        )
    }
}

/// A server event that could not be parsed. Never produced for an unknown event type (that is
/// [`super::ServerEvent::Unknown`]) or for unknown fields (ignored).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The text is not a JSON object (syntax error, array, scalar, trailing garbage).
    #[error("server event is not a valid JSON object: {0}")]
    Json(#[source] serde_json::Error),
    /// A JSON object without a string `type` member.
    #[error("server event has no string `type` member")]
    MissingType,
    /// A known event type whose body does not match the documented shape (a required field
    /// missing or of the wrong type).
    #[error("malformed `{event_type}` server event: {source}")]
    Event {
        /// The event type, e.g. `response.output_audio.delta`.
        event_type: &'static str,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
}

impl ParseError {
    /// The event type named by the error, for a malformed known event.
    pub fn event_type(&self) -> Option<&'static str> {
        match self {
            Self::Event { event_type, .. } => Some(event_type),
            Self::Json(_) | Self::MissingType => None,
        }
    }
}
