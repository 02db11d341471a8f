//! The caller side of the seam: the telephony leg of a call (Twilio Media Streams in the server).
//!
//! An adapter turns its wire protocol into [`CallerEvent`]s and executes [`CallerCommand`]s.
//! Nothing here knows about JSON, WebSockets or Twilio's message names.

use crate::format::{AudioFormat, Base64Audio};

/// Identifies one playout mark. The engine allocates ids in increasing order per call; the
/// adapter turns them into wire names (for Twilio, a short string) and parses echoes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarkId(pub u64);

/// What the telephony side told us when its media stream started.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallerInfo {
    /// Provider call id (Twilio `CallSid`).
    pub call_id: String,
    /// Provider stream id (Twilio `streamSid`).
    pub stream_id: String,
    /// Provider account id (Twilio `AccountSid`), when known.
    pub account_id: Option<String>,
    /// Custom parameters passed with the stream (Twilio `<Parameter>`s), in order.
    pub parameters: Vec<(String, String)>,
}

impl CallerInfo {
    /// The value of a custom parameter, if present.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Something that happened on the caller side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerEvent {
    /// The media stream started; caller audio follows.
    Started(CallerInfo),
    /// A chunk of caller audio, in the format the caller endpoint declared.
    Audio(Base64Audio),
    /// The caller side finished playing all audio queued before this mark (Twilio echoes a
    /// `mark`). After a [`CallerCommand::Clear`] the echoes of cleared marks arrive too; the
    /// engine knows which ones to ignore.
    MarkPlayed(MarkId),
    /// The caller pressed a key (`0-9`, `*`, `#`, `A-D`).
    Dtmf(char),
    /// The caller hung up or the provider stopped the stream (Twilio `stop`).
    Hangup,
    /// The caller is a voicemail box that is recording now (answering machine detection heard
    /// the beep, out of band): the agent is asked for a message following `instructions`, and
    /// the call hangs up once that message has been heard, exactly like a goodbye (see
    /// [`crate::engine::CallEvent::LeaveMessage`] for whether the engine took it).
    LeaveMessage {
        /// For the agent's response (for an agent that says text verbatim, the message).
        instructions: String,
    },
}

/// Something the engine wants done on the caller side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerCommand {
    /// Queue agent audio for playout, in the caller's format.
    Audio(Base64Audio),
    /// Ask to be told (with [`CallerEvent::MarkPlayed`]) when all audio queued so far has played.
    Mark(MarkId),
    /// Discard all queued, unplayed audio at once (barge-in). Pending marks are echoed.
    Clear,
    /// End the media stream and the connection to the caller. The driver performs it with
    /// [`Endpoint::close`] (the closing handshake), after everything queued before it.
    Close,
}

pub use crate::endpoint::{Endpoint, EndpointError};

/// The telephony leg of a call: an [`Endpoint`] of caller events and commands, and the audio
/// format it speaks. Reads, writes and the closing handshake follow [`Endpoint`]'s rules.
pub trait CallerEndpoint: Endpoint<Event = CallerEvent, Command = CallerCommand> {
    /// The audio format of [`CallerEvent::Audio`] and [`CallerCommand::Audio`].
    fn format(&self) -> AudioFormat;
}

impl<T: CallerEndpoint + ?Sized> CallerEndpoint for Box<T> {
    fn format(&self) -> AudioFormat {
        (**self).format()
    }
}
