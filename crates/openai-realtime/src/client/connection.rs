//! An open WebSocket, split into a [`Sender`] and a [`Receiver`].

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::connect::ConnectionInfo;

/// The byte stream under a connection made by [`Endpoint::connect`](super::Endpoint::connect).
pub type DefaultStream = MaybeTlsStream<TcpStream>;

/// Longest close reason the protocol allows (control frames carry ≤ 125 bytes, 2 are the code).
pub const MAX_CLOSE_REASON: usize = 123;

/// Something the peer sent that the application should see.
///
/// Pings are answered and pongs consumed inside [`Receiver::recv`]; binary frames are skipped
/// (OpenAI's voice APIs only send text) and counted, see [`Receiver::skipped_binary_frames`].
///
/// `Debug` prints the text length only: frames carry audio and transcripts.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// A complete text message, exactly as received (no copy). Parse it with borrowed fields,
    /// e.g. `serde_json::from_str::<Event<'_>>(text.as_str())`, and slice audio out of it.
    Text(Utf8Bytes),
    /// The peer's close frame: `None` when it carried no status code (1005). Keep calling
    /// [`Receiver::recv`] until it returns `None` to see the socket end; the close reply has
    /// already been sent (or queued, if the socket could not take it yet).
    Close(Option<CloseReason>),
}

impl Incoming {
    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text.as_str()),
            Self::Close(_) => None,
        }
    }

    /// The text buffer, if this is a text message.
    pub fn into_text(self) -> Option<Utf8Bytes> {
        match self {
            Self::Text(text) => Some(text),
            Self::Close(_) => None,
        }
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f
                .debug_struct("Text")
                .field("len", &text.len())
                .finish_non_exhaustive(),
            Self::Close(reason) => f.debug_tuple("Close").field(reason).finish(),
        }
    }
}

/// A close frame's status code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// RFC 6455 status code (1000 normal, 1001 going away, 1011 server error, 4xxx private…).
    pub code: u16,
    /// Human-readable reason (may be empty).
    pub reason: Utf8Bytes,
}

impl From<CloseFrame> for CloseReason {
    fn from(frame: CloseFrame) -> Self {
        Self {
            code: frame.code.into(),
            reason: frame.reason,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} ({})", self.code, self.reason.as_str())
        }
    }
}

/// A failure on an open connection.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The connection is closed (or closing) and cannot send.
    #[error("the WebSocket connection is closed")]
    Closed,
    /// An outgoing value could not be serialized; nothing was sent.
    #[error("serializing an outgoing message: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A close code that must not be sent (1005, 1006, 1015, reserved or out of range).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// The socket or the WebSocket protocol failed (I/O error, reset, oversized message…).
    #[error("WebSocket: {0}")]
    WebSocket(#[source] tungstenite::Error),
}

impl TransportError {
    /// Whether this is [`TransportError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
    }
}

impl From<tungstenite::Error> for TransportError {
    fn from(err: tungstenite::Error) -> Self {
        match err {
            tungstenite::Error::ConnectionClosed
            | tungstenite::Error::AlreadyClosed
            | tungstenite::Error::Protocol(tungstenite::error::ProtocolError::SendAfterClosing) => {
                Self::Closed
            }
            other => Self::WebSocket(other),
        }
    }
}

impl fmt::Debug for TransportError {
    // Hand-written: tungstenite's `WriteBufferFull` would debug-print a whole message (audio).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("Closed"),
            Self::Serialize(err) => f.debug_tuple("Serialize").field(err).finish(),
            Self::InvalidCloseCode(code) => f.debug_tuple("InvalidCloseCode").field(code).finish(),
            Self::WebSocket(err) => f
                .debug_tuple("WebSocket")
                .field(&format_args!("{err}"))
                .finish(),
        }
    }
}

/// An open WebSocket to OpenAI: the two halves plus what is known about the connection.
///
/// Use [`halves`](Self::halves) when one `select!` loop owns both directions, or
/// [`split`](Self::split) to move the halves into different tasks.
pub struct Connection<S = DefaultStream> {
    sender: Sender<S>,
    receiver: Receiver<S>,
    info: ConnectionInfo,
}

impl<S> fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps an already-upgraded WebSocket (for example over `tokio::io::duplex` in tests).
    /// [`Endpoint::connect`](super::Endpoint::connect) is the usual way to get a connection.
    pub fn from_websocket(websocket: WebSocketStream<S>, info: ConnectionInfo) -> Self {
        let (sink, stream) = websocket.split();
        Self {
            sender: Sender {
                sink,
                backlog: VecDeque::new(),
            },
            receiver: Receiver {
                stream,
                stash: None,
                skipped_binary: 0,
            },
            info,
        }
    }

    pub(crate) fn new(websocket: WebSocketStream<S>, info: ConnectionInfo) -> Self {
        Self::from_websocket(websocket, info)
    }

    /// Connection details (URL, `x-request-id`, attempts, `TCP_NODELAY`).
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Both halves, borrowed at once, for a single task that reads and writes.
    pub fn halves(&mut self) -> (&mut Sender<S>, &mut Receiver<S>) {
        (&mut self.sender, &mut self.receiver)
    }

    /// The sending half.
    pub fn sender(&mut self) -> &mut Sender<S> {
        &mut self.sender
    }

    /// The receiving half.
    pub fn receiver(&mut self) -> &mut Receiver<S> {
        &mut self.receiver
    }

    /// Separates the halves so they can live in different tasks. Take
    /// [`info`](Self::info) first if you need it.
    pub fn split(self) -> (Sender<S>, Receiver<S>) {
        (self.sender, self.receiver)
    }

    /// Sends a close frame and waits (at most `timeout`) for the peer's close frame or the
    /// socket's end; see [`close_with_reason`](super::close_with_reason).
    pub async fn close_with_reason(
        &mut self,
        code: u16,
        reason: &str,
        timeout: std::time::Duration,
    ) -> Result<super::CloseReport, TransportError> {
        super::close_with_reason(&mut self.sender, &mut self.receiver, code, reason, timeout).await
    }

    /// GPT-Live: sends `session.close` and waits (at most `timeout`) for `session.closed` or
    /// the socket's end; see [`close_live_session`](super::close_live_session).
    pub async fn close_live_session(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<super::CloseReport, TransportError> {
        super::close_live_session(&mut self.sender, &mut self.receiver, timeout).await
    }
}

/// The sending half of a [`Connection`].
///
/// [`send_text`](Self::send_text)/[`send_json`](Self::send_json) write and flush one message.
/// To coalesce several messages into one write (say, a burst of audio frames followed by a
/// marker), [`feed_text`](Self::feed_text)/[`feed_json`](Self::feed_json) each and
/// [`flush`](Self::flush) once; fed messages sit in a write buffer until then.
///
/// Sending is **not** cancel-safe: if a send future is dropped before completing, the message
/// may or may not have been queued. Do not put sends in a `select!` branch that can lose.
///
/// A caller that polls instead of awaiting (an endpoint driven by a poll loop) uses the `Sink`
/// shape: [`poll_ready`](Self::poll_ready), [`queue_text`](Self::queue_text),
/// [`poll_flush`](Self::poll_flush). Those never lose a message: `queue_text` keeps it in
/// order behind what is queued, and the polls move it into the socket's write buffer.
pub struct Sender<S = DefaultStream> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    /// Messages queued by [`queue_text`](Self::queue_text), not yet in the socket's buffer.
    backlog: VecDeque<Utf8Bytes>,
}

impl<S> fmt::Debug for Sender<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sender<S> {
    /// Sends one text message and flushes. `String` and `Utf8Bytes` are moved, not copied.
    pub async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), TransportError> {
        self.queue_text(text);
        self.flush().await
    }

    /// Serializes `value` straight to a string (no intermediate `serde_json::Value`), sends it
    /// as one text message and flushes.
    pub async fn send_json<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), TransportError> {
        let text = serde_json::to_string(value).map_err(TransportError::Serialize)?;
        self.send_text(text).await
    }

    /// Queues one text message without flushing.
    pub async fn feed_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), TransportError> {
        self.queue_text(text);
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// Queues one text message behind everything queued before it, without waiting; it goes
    /// into the socket's write buffer at the next [`poll_ready`](Self::poll_ready) or
    /// [`poll_flush`](Self::poll_flush). Call `poll_ready` first to keep the queue short (it
    /// is the backpressure).
    pub fn queue_text(&mut self, text: impl Into<Utf8Bytes>) {
        self.backlog.push_back(text.into());
    }

    /// `Ready` when everything queued is in the socket's write buffer and it takes more;
    /// `Pending` (the task is woken) while the socket does not take more.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        while !self.backlog.is_empty() {
            ready!(self.sink.poll_ready_unpin(cx))?;
            if let Some(text) = self.backlog.pop_front() {
                self.sink.start_send_unpin(Message::Text(text))?;
            }
        }
        self.sink.poll_ready_unpin(cx).map_err(Into::into)
    }

    /// Writes everything queued (by [`queue_text`](Self::queue_text) and the `feed_*`
    /// methods); `Pending` (the task is woken) while the socket does not take it.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        ready!(self.poll_ready(cx))?;
        self.sink.poll_flush_unpin(cx).map_err(Into::into)
    }

    /// Serializes `value` and queues it without flushing.
    pub async fn feed_json<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), TransportError> {
        let text = serde_json::to_string(value).map_err(TransportError::Serialize)?;
        self.feed_text(text).await
    }

    /// Writes everything queued by the `feed_*` methods (and [`queue_text`](Self::queue_text)).
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Starts the closing handshake: sends a close frame with `code` and `reason` (cut to
    /// [`MAX_CLOSE_REASON`] bytes at a character boundary) and flushes. The peer's reply
    /// arrives through the [`Receiver`] as [`Incoming::Close`]. After this, sends fail with
    /// [`TransportError::Closed`].
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        let close_code = CloseCode::from(code);
        if !close_code.is_allowed() {
            return Err(TransportError::InvalidCloseCode(code));
        }
        let mut end = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let frame = CloseFrame {
            code: close_code,
            reason: Utf8Bytes::from(&reason[..end]),
        };
        // What was queued goes first.
        std::future::poll_fn(|cx| self.poll_ready(cx)).await?;
        self.sink
            .send(Message::Close(Some(frame)))
            .await
            .map_err(Into::into)
    }
}

/// The receiving half of a [`Connection`].
///
/// [`recv`](Self::recv) is **cancel-safe**: dropping its future (a `select!` branch that lost)
/// loses nothing; the next call resumes where the last one stopped. `Receiver` is also a
/// [`Stream`] of the same items.
///
/// Pings are answered without help from the [`Sender`]: tungstenite queues the pong when it
/// reads a ping, and `recv` keeps reading after a ping, and every read first writes any queued
/// control reply. So a task that only reads still answers pings promptly, as long as it is
/// waiting in `recv` (the usual `select!` loop is). The same holds for the reply to the peer's
/// close frame, which `recv` pushes out before returning [`Incoming::Close`].
pub struct Receiver<S = DefaultStream> {
    stream: SplitStream<WebSocketStream<S>>,
    /// An item read ahead while flushing a close reply, returned by the next call.
    stash: Option<Option<Result<Message, tungstenite::Error>>>,
    skipped_binary: u64,
}

impl<S> fmt::Debug for Receiver<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("skipped_binary", &self.skipped_binary)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Receiver<S> {
    /// The next text message or close frame; `None` once the connection has ended (after a
    /// close handshake, or after an error was returned). Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Incoming, TransportError>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll form of [`recv`](Self::recv).
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Incoming, TransportError>>> {
        loop {
            let item = match self.stash.take() {
                Some(item) => item,
                None => ready!(self.stream.poll_next_unpin(cx)),
            };
            match item {
                None => return Poll::Ready(None),
                Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                Some(Ok(Message::Text(text))) => {
                    return Poll::Ready(Some(Ok(Incoming::Text(text))));
                }
                Some(Ok(Message::Close(frame))) => {
                    // tungstenite queued the close reply; reading again writes it now, even if
                    // the caller stops reading after this item. Keep whatever that read yields.
                    if let Poll::Ready(next) = self.stream.poll_next_unpin(cx) {
                        self.stash = Some(next);
                    }
                    return Poll::Ready(Some(Ok(Incoming::Close(frame.map(CloseReason::from)))));
                }
                Some(Ok(Message::Binary(bytes))) => {
                    self.skipped_binary += 1;
                    if self.skipped_binary == 1 {
                        tracing::warn!(
                            len = bytes.len(),
                            "skipping unexpected binary WebSocket frame"
                        );
                    } else {
                        tracing::trace!(len = bytes.len(), "skipping binary WebSocket frame");
                    }
                }
                // Pings: the pong is written by the next read (this loop). Pongs and raw
                // frames carry nothing for the application.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            }
        }
    }

    /// How many binary frames were skipped so far.
    pub fn skipped_binary_frames(&self) -> u64 {
        self.skipped_binary
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for Receiver<S> {
    type Item = Result<Incoming, TransportError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}
