//! The caller side of the seam: the telephony leg of a call (Twilio Media Streams in the server).
//!
//! An adapter turns its wire protocol into [`CallerEvent`]s and executes [`CallerCommand`]s.
//! Nothing here knows about JSON, WebSockets or Twilio's message names.

use crate::format::{AudioFormat, Base64Audio};
use async_trait::async_trait;

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
    /// End the media stream and the connection to the caller.
    Close,
}

pub use crate::endpoint::EndpointError;

/// The telephony leg of a call.
///
/// `recv` must be **cancel-safe**: the driver polls it inside `tokio::select!` and may drop the
/// future when another branch wins; no event may be lost when that happens.
///
/// `recv` must also keep the [`Future`] contract to the letter: when it
/// returns `Pending`, the waker it was polled with must be woken once an event is available —
/// also when the event was produced by `feed` rather than by the network. The driver re-polls
/// a side only after its waker fired (or after it returned an event), so an endpoint that
/// waits to be polled again by chance would stall.
///
/// Sends are split into `feed` (queue a command) and `flush` (write everything queued), so the
/// driver can put a media message and its mark on the wire with one write.
///
/// `feed` and `flush` must be **cancel-safe** too: the driver polls them without waiting and
/// drops a pending future (so that a peer that does not read never stalls the other side); it
/// asks again when the endpoint wakes it. A dropped pending `feed` must not have sent its
/// command (it is fed again), a dropped pending `flush` must lose nothing (`SinkExt::feed` and
/// `SinkExt::flush` behave so). The one exception is the final `Close`: it is only ever fed
/// at teardown and awaited to completion, so an adapter may perform its closing handshake
/// there.
#[async_trait]
pub trait CallerEndpoint: Send {
    /// The audio format of [`CallerEvent::Audio`] and [`CallerCommand::Audio`].
    fn format(&self) -> AudioFormat;

    /// The next event; `None` once the connection has closed. Recoverable problems (a malformed
    /// message) should be logged by the adapter and skipped, not returned as errors.
    async fn recv(&mut self) -> Option<Result<CallerEvent, EndpointError>>;

    /// Queues a command for sending.
    async fn feed(&mut self, command: CallerCommand) -> Result<(), EndpointError>;

    /// Writes everything queued by [`Self::feed`].
    async fn flush(&mut self) -> Result<(), EndpointError>;
}

#[async_trait]
impl<T: CallerEndpoint + ?Sized> CallerEndpoint for Box<T> {
    fn format(&self) -> AudioFormat {
        (**self).format()
    }

    async fn recv(&mut self) -> Option<Result<CallerEvent, EndpointError>> {
        (**self).recv().await
    }

    async fn feed(&mut self, command: CallerCommand) -> Result<(), EndpointError> {
        (**self).feed(command).await
    }

    async fn flush(&mut self) -> Result<(), EndpointError> {
        (**self).flush().await
    }
}
