//! Graceful endings: a WebSocket close with a reason, and GPT-Live's `session.close`.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::connection::{
    CloseReason, Connection, Incoming, Receiver, Sender, TransportError, WebSocketTransport,
};

/// How long [`close_live_session`] callers should wait for `session.closed` by default.
///
/// The server drains for up to about 10 s before it answers; OpenAI's own example waits 15 s.
pub const DEFAULT_LIVE_CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long to wait for the peer's close frame after sending ours, by default.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The GPT-Live client event that starts a graceful shutdown.
const SESSION_CLOSE: &str = r#"{"type":"session.close"}"#;

/// What happened while waiting for a connection to end.
#[non_exhaustive]
pub struct CloseReport {
    /// Every text message received while waiting, in order. For GPT-Live this includes late
    /// `session.usage.updated`, `error` (e.g. `session_storage_failed`) and, when
    /// [`end`](Self::end) is [`CloseEnd::SessionClosed`], the `session.closed` event itself
    /// as the last element.
    pub frames: Vec<Utf8Bytes>,
    /// Why waiting stopped.
    pub end: CloseEnd,
}

impl fmt::Debug for CloseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Frames may hold transcripts or audio: print their number only.
        f.debug_struct("CloseReport")
            .field("frames", &self.frames.len())
            .field("end", &self.end)
            .finish()
    }
}

/// Why [`close_with_reason`] or [`close_live_session`] stopped waiting.
#[derive(Debug)]
#[non_exhaustive]
pub enum CloseEnd {
    /// GPT-Live's `session.closed` arrived (final usage is authoritative). The server closes
    /// the socket next; drop the connection or call [`close_with_reason`].
    SessionClosed,
    /// The peer's close frame arrived (`None`: no status code).
    PeerClosed(Option<CloseReason>),
    /// The socket ended without a close frame.
    SocketEnded,
    /// The timeout elapsed first.
    TimedOut,
    /// Reading failed.
    Failed(TransportError),
}

/// Sends a close frame (`code`, `reason`) and reads until the peer's close frame, the end of
/// the socket, or `timeout`, collecting any text messages that arrive meanwhile. For the
/// halves of a [`split`](super::Connection::split) connection; an unsplit one has
/// [`Connection::close_with_reason`](super::Connection::close_with_reason).
///
/// A connection that is already closing is not an error: the close frame is skipped and the
/// wait proceeds. Returns `Err` only if the close frame could not be sent for another reason.
pub async fn close_with_reason<W: WebSocketTransport>(
    sender: &mut Sender<W>,
    receiver: &mut Receiver<W>,
    code: u16,
    reason: &str,
    timeout: Duration,
) -> Result<CloseReport, TransportError> {
    close_with_reason_on(&mut (sender, receiver), code, reason, timeout).await
}

/// GPT-Live graceful shutdown: sends `{"type":"session.close"}` and reads until a
/// `session.closed` event, the socket's end, or `timeout` ([`DEFAULT_LIVE_CLOSE_TIMEOUT`] is
/// a good value), returning every text message seen. For the halves of a
/// [`split`](super::Connection::split) connection; an unsplit one has
/// [`Connection::close_live_session`](super::Connection::close_live_session).
///
/// Nothing is parsed beyond each message's `type`. Returns `Err` only if `session.close`
/// could not be sent.
pub async fn close_live_session<W: WebSocketTransport>(
    sender: &mut Sender<W>,
    receiver: &mut Receiver<W>,
    timeout: Duration,
) -> Result<CloseReport, TransportError> {
    close_live_session_on(&mut (sender, receiver), timeout).await
}

/// Both directions of one connection, whether a [`Connection`] or its split halves: what the
/// graceful endings need, so one implementation serves both.
pub(super) trait Duplex {
    /// Sends a close frame after everything queued (see [`Connection::close`]).
    async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError>;
    /// Sends one text message and flushes.
    async fn send_text(&mut self, text: Utf8Bytes) -> Result<(), TransportError>;
    /// The next text message or close frame (cancel-safe).
    async fn recv(&mut self) -> Option<Result<Incoming, TransportError>>;
}

impl<W: WebSocketTransport> Duplex for Connection<W> {
    async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        Connection::close(self, code, reason).await
    }

    async fn send_text(&mut self, text: Utf8Bytes) -> Result<(), TransportError> {
        Connection::send_text(self, text).await
    }

    async fn recv(&mut self) -> Option<Result<Incoming, TransportError>> {
        Connection::recv(self).await
    }
}

impl<W: WebSocketTransport> Duplex for (&mut Sender<W>, &mut Receiver<W>) {
    async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        self.0.close(code, reason).await
    }

    async fn send_text(&mut self, text: Utf8Bytes) -> Result<(), TransportError> {
        self.0.send_text(text).await
    }

    async fn recv(&mut self) -> Option<Result<Incoming, TransportError>> {
        self.1.recv().await
    }
}

/// [`close_with_reason`] for either shape of connection.
pub(super) async fn close_with_reason_on(
    connection: &mut impl Duplex,
    code: u16,
    reason: &str,
    timeout: Duration,
) -> Result<CloseReport, TransportError> {
    match connection.close(code, reason).await {
        Ok(()) | Err(TransportError::Closed) => {}
        Err(err) => return Err(err),
    }
    Ok(drain(connection, timeout, |_| false).await)
}

/// [`close_live_session`] for either shape of connection.
pub(super) async fn close_live_session_on(
    connection: &mut impl Duplex,
    timeout: Duration,
) -> Result<CloseReport, TransportError> {
    connection
        .send_text(Utf8Bytes::from_static(SESSION_CLOSE))
        .await?;
    Ok(drain(connection, timeout, |text| {
        event_type(text).as_deref() == Some("session.closed")
    })
    .await)
}

async fn drain(
    connection: &mut impl Duplex,
    timeout: Duration,
    is_final: impl Fn(&str) -> bool,
) -> CloseReport {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut frames = Vec::new();
    let end = loop {
        match tokio::time::timeout_at(deadline, connection.recv()).await {
            Err(_elapsed) => break CloseEnd::TimedOut,
            Ok(None) => break CloseEnd::SocketEnded,
            Ok(Some(Err(err))) => break CloseEnd::Failed(err),
            Ok(Some(Ok(Incoming::Close(reason)))) => break CloseEnd::PeerClosed(reason),
            Ok(Some(Ok(Incoming::Text(text)))) => {
                let done = is_final(text.as_str());
                frames.push(text);
                if done {
                    break CloseEnd::SessionClosed;
                }
            }
        }
    };
    CloseReport { frames, end }
}

/// The `type` of a JSON event, or `None` if it is not an object with a string `type`.
fn event_type(text: &str) -> Option<Cow<'_, str>> {
    #[derive(serde::Deserialize)]
    struct Typed<'a> {
        #[serde(borrow, rename = "type")]
        kind: Cow<'a, str>,
    }
    serde_json::from_str::<Typed<'_>>(text)
        .ok()
        .map(|typed| typed.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_is_read_without_the_rest() {
        assert_eq!(
            event_type(r#"{"event_id":"e","type":"session.closed","usage":{}}"#).as_deref(),
            Some("session.closed")
        );
        assert_eq!(
            event_type(r#"{"type":"session\u002eclosed"}"#).as_deref(),
            Some("session.closed")
        );
        assert_eq!(event_type(r#"{"kind":"x"}"#), None);
        assert_eq!(event_type("not json"), None);
        assert_eq!(event_type(r#"{"type":7}"#), None);
    }
}
