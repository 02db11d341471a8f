//! An open WebSocket: a [`Connection`] used by one task, or split into a [`Sender`] and a
//! [`Receiver`] for two.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::connect::ConnectionInfo;
use super::socket::{ReadinessIo, SocketWebSocket};
use super::tls::ClientSocket;

/// The WebSocket under a connection made by [`Endpoint::connect`](super::Endpoint::connect):
/// driven straight from the socket's readiness, over TCP or TLS.
pub type DefaultWebSocket = SocketWebSocket<ClientSocket>;

/// A WebSocket a [`Connection`] can drive: tungstenite's messages as a `Stream` and a `Sink`,
/// plus raw writes to the socket for [`Connection::send_text_unbuffered`].
///
/// Implemented by [`SocketWebSocket`] (what [`Endpoint::connect`](super::Endpoint::connect)
/// makes) and by tokio-tungstenite's [`WebSocketStream`] over any `AsyncRead + AsyncWrite`
/// stream (an in-memory `tokio::io::duplex` in tests, say).
pub trait WebSocketTransport:
    Stream<Item = Result<Message, tungstenite::Error>>
    + Sink<Message, Error = tungstenite::Error>
    + Unpin
{
    /// Writes `bytes` to the socket as they are (a frame the caller formatted, after
    /// everything queued was flushed); returns how many the socket took.
    fn poll_write_raw(
        &mut self,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>>;
    /// Sends whatever the socket's layers kept back of raw writes.
    fn poll_flush_raw(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>;
}

impl<S: ReadinessIo> WebSocketTransport for SocketWebSocket<S> {
    fn poll_write_raw(
        &mut self,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        SocketWebSocket::poll_write_raw(self, cx, bytes)
    }
    fn poll_flush_raw(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        SocketWebSocket::poll_flush_raw(self, cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketTransport for WebSocketStream<S> {
    fn poll_write_raw(
        &mut self,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.get_mut()).poll_write(cx, bytes)
    }
    fn poll_flush_raw(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.get_mut()).poll_flush(cx)
    }
}

/// Longest close reason the protocol allows (control frames carry ≤ 125 bytes, 2 are the code).
pub const MAX_CLOSE_REASON: usize = 123;

/// Something the peer sent that the application should see.
///
/// Pings are answered and pongs consumed inside [`Connection::recv`] (and [`Receiver::recv`]);
/// binary frames are skipped (OpenAI's voice APIs only send text) and counted, see
/// [`Connection::skipped_binary_frames`].
///
/// `Debug` prints the text length only: frames carry audio and transcripts.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// A complete text message, exactly as received (no copy). Parse it with borrowed fields,
    /// e.g. `serde_json::from_str::<Event<'_>>(text.as_str())`, and slice audio out of it.
    Text(Utf8Bytes),
    /// The peer's close frame: `None` when it carried no status code (1005). Keep calling
    /// `recv` until it returns `None` to see the socket end; the close reply has
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

/// An open WebSocket to OpenAI, plus what is known about the connection.
///
/// One task that both reads and writes (a `select!` loop, or an endpoint driven by a poll
/// loop) uses the connection as it is: [`recv`](Self::recv)/[`poll_recv`](Self::poll_recv)
/// to receive, [`send_text`](Self::send_text)/[`send_json`](Self::send_json) to send,
/// [`feed_text`](Self::feed_text)/[`feed_json`](Self::feed_json) and [`flush`](Self::flush)
/// to coalesce, the `Sink`-shaped [`poll_ready`](Self::poll_ready),
/// [`queue_text`](Self::queue_text) and [`poll_flush`](Self::poll_flush) from a poll loop.
/// Nothing stands between the two directions: no lock, no extra allocation. To read and
/// write from different tasks, [`split`](Self::split) it into a [`Sender`] and a
/// [`Receiver`] (which then share the socket through a lock).
///
/// [`recv`](Self::recv) is **cancel-safe** (a `select!` branch that lost drops nothing);
/// sending is **not** (a dropped send future may or may not have queued its message; do not
/// put sends in a `select!` branch that can lose). Pings are answered and the peer's close
/// frame is replied to while receiving, as described on [`Receiver`].
///
/// # Example
///
/// ```no_run
/// use openai_realtime::client::{Connection, Incoming, TransportError};
///
/// /// Sends `response.create` and returns the first message that comes back.
/// async fn first_reply(connection: &mut Connection) -> Result<Option<String>, TransportError> {
///     connection.send_text(r#"{"type":"response.create"}"#).await?;
///     while let Some(item) = connection.recv().await {
///         match item? {
///             Incoming::Text(text) => return Ok(Some(text.as_str().to_owned())),
///             _ => {} // the peer's close frame: `recv` returns `None` next
///         }
///     }
///     Ok(None)
/// }
/// ```
pub struct Connection<W = DefaultWebSocket> {
    websocket: W,
    outbox: Outbox,
    inbox: Inbox,
    info: ConnectionInfo,
}

impl<W> fmt::Debug for Connection<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("info", &self.info)
            .field("skipped_binary", &self.inbox.skipped_binary)
            .finish_non_exhaustive()
    }
}

impl<W: WebSocketTransport> Connection<W> {
    /// Wraps an already-upgraded WebSocket (for example a tokio-tungstenite
    /// [`WebSocketStream`] over `tokio::io::duplex` in tests).
    /// [`Endpoint::connect`](super::Endpoint::connect) is the usual way to get a connection.
    pub fn from_websocket(websocket: W, info: ConnectionInfo) -> Self {
        Self {
            websocket,
            outbox: Outbox::default(),
            inbox: Inbox::default(),
            info,
        }
    }

    pub(crate) fn new(websocket: W, info: ConnectionInfo) -> Self {
        Self::from_websocket(websocket, info)
    }

    /// Connection details (URL, `x-request-id`, attempts, `TCP_NODELAY`).
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Moves the connection details out (to log them once), so a connection kept for a
    /// whole call does not hold their URL and request id; [`info`](Self::info) describes
    /// an unknown connection afterwards (`ConnectionInfo::new("")`).
    pub fn take_info(&mut self) -> ConnectionInfo {
        std::mem::replace(&mut self.info, ConnectionInfo::new(""))
    }

    /// Separates the two directions so they can live in different tasks (they share the
    /// socket through a lock from then on; a single task is better served by the connection
    /// itself). Anything queued but not yet written stays queued in the [`Sender`]; take
    /// [`info`](Self::info) first if you need it.
    ///
    /// ```no_run
    /// use openai_realtime::client::{Connection, Incoming};
    ///
    /// # async fn run(connection: Connection) -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut sender, mut receiver) = connection.split();
    /// let reader = tokio::spawn(async move {
    ///     while let Some(Ok(Incoming::Text(text))) = receiver.recv().await {
    ///         println!("{} bytes", text.len());
    ///     }
    /// });
    /// sender.send_text(r#"{"type":"response.create"}"#).await?;
    /// reader.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn split(self) -> (Sender<W>, Receiver<W>) {
        let (sink, stream) = self.websocket.split();
        (
            Sender {
                sink,
                outbox: self.outbox,
            },
            Receiver {
                stream,
                inbox: self.inbox,
            },
        )
    }

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
        self.inbox.poll_recv(&mut self.websocket, cx)
    }

    /// How many binary frames were skipped so far.
    pub fn skipped_binary_frames(&self) -> u64 {
        self.inbox.skipped_binary
    }

    /// Sends one text message and flushes. `String` and `Utf8Bytes` are moved, not copied.
    pub async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), TransportError> {
        self.outbox.send(&mut self.websocket, text.into()).await
    }

    /// Serializes `value` straight to a string (no intermediate `serde_json::Value`), sends it
    /// as one text message and flushes.
    pub async fn send_json<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), TransportError> {
        self.send_text(to_text(value)?).await
    }

    /// Sends one large text message that is sent once (a `session.update` carrying the
    /// instructions and tools) without growing the socket's write buffer to its size.
    ///
    /// tungstenite copies every outgoing frame into one write buffer that never shrinks, so a
    /// 10 KB setup message would keep 10 KB allocated for the life of the connection, while
    /// the messages that follow (audio appends) need a few hundred bytes. This flushes what is
    /// queued, then writes the message as one masked client frame straight to the socket: the
    /// same frame on the wire as [`send_text`](Self::send_text) sends, after everything sent
    /// before it. For client connections (the only kind [`Endpoint`](super::Endpoint) makes;
    /// one built with [`from_websocket`](Self::from_websocket) must be client-side too). If
    /// the future is dropped midway, the connection is unusable.
    pub async fn send_text_unbuffered(
        &mut self,
        text: impl Into<Utf8Bytes>,
    ) -> Result<(), TransportError> {
        use tungstenite::protocol::frame::Frame;
        use tungstenite::protocol::frame::coding::{Data, OpCode};

        self.flush().await?;
        let text: Utf8Bytes = text.into();
        let mut frame = Frame::message(
            tungstenite::Bytes::from(text),
            OpCode::Data(Data::Text),
            true,
        );
        // RFC 6455 §5.3: every client frame is masked with a fresh, unpredictable key.
        frame.header_mut().mask = Some(rand::random());
        let mut wire = Vec::with_capacity(frame.len());
        frame.format(&mut wire)?;
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let n = std::future::poll_fn(|cx| self.websocket.poll_write_raw(cx, rest))
                .await
                .map_err(tungstenite::Error::Io)?;
            if n == 0 {
                return Err(tungstenite::Error::Io(std::io::ErrorKind::WriteZero.into()).into());
            }
            rest = &rest[n..];
        }
        std::future::poll_fn(|cx| self.websocket.poll_flush_raw(cx))
            .await
            .map_err(|e| tungstenite::Error::Io(e).into())
    }

    /// Queues one text message without flushing (it sits in the socket's write buffer until
    /// [`flush`](Self::flush)); waits while the socket takes no more.
    pub async fn feed_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), TransportError> {
        self.outbox.feed(&mut self.websocket, text.into()).await
    }

    /// Serializes `value` and queues it without flushing.
    pub async fn feed_json<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), TransportError> {
        self.feed_text(to_text(value)?).await
    }

    /// Queues one text message behind everything queued before it, without waiting; it goes
    /// into the socket's write buffer at the next [`poll_ready`](Self::poll_ready) or
    /// [`poll_flush`](Self::poll_flush). Call `poll_ready` first to keep the queue short (it
    /// is the backpressure).
    pub fn queue_text(&mut self, text: impl Into<Utf8Bytes>) {
        self.outbox.queue(text.into());
    }

    /// Hands one text message to the socket's write buffer, like `Sink::start_send`: call it
    /// after [`poll_ready`](Self::poll_ready) returned `Ready(Ok)` (which leaves nothing
    /// queued), and [`poll_flush`](Self::poll_flush) after the last one. If something is
    /// queued after all, the message goes behind it, so order is kept either way.
    pub fn start_send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), TransportError> {
        self.outbox.start_send(&mut self.websocket, text.into())
    }

    /// `Ready` when everything queued is in the socket's write buffer and it takes more;
    /// `Pending` (the task is woken) while the socket does not take more.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.outbox.poll_ready(&mut self.websocket, cx)
    }

    /// Writes everything queued (by [`queue_text`](Self::queue_text) and the `feed_*`
    /// methods); `Pending` (the task is woken) while the socket does not take it.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.outbox.poll_flush(&mut self.websocket, cx)
    }

    /// Writes everything queued by the `feed_*` methods (and [`queue_text`](Self::queue_text)).
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        self.outbox.flush(&mut self.websocket).await
    }

    /// Starts the closing handshake: sends a close frame with `code` and `reason` (cut to
    /// [`MAX_CLOSE_REASON`] bytes at a character boundary) after everything queued, and
    /// flushes. The peer's reply arrives through [`recv`](Self::recv) as
    /// [`Incoming::Close`]. After this, sends fail with [`TransportError::Closed`].
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        self.outbox.close(&mut self.websocket, code, reason).await
    }

    /// Sends a close frame and waits (at most `timeout`) for the peer's close frame or the
    /// socket's end; see [`close_with_reason`](super::close_with_reason).
    pub async fn close_with_reason(
        &mut self,
        code: u16,
        reason: &str,
        timeout: std::time::Duration,
    ) -> Result<super::CloseReport, TransportError> {
        super::close::close_with_reason_on(self, code, reason, timeout).await
    }

    /// GPT-Live: sends `session.close` and waits (at most `timeout`) for `session.closed` or
    /// the socket's end; see [`close_live_session`](super::close_live_session).
    pub async fn close_live_session(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<super::CloseReport, TransportError> {
        super::close::close_live_session_on(self, timeout).await
    }
}

/// The same items as [`Connection::recv`].
impl<W: WebSocketTransport> Stream for Connection<W> {
    type Item = Result<Incoming, TransportError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

/// The sending half of a [`Connection`] after [`split`](Connection::split), for a task other
/// than the one that receives. Its methods behave like the [`Connection`]'s of the same name.
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
pub struct Sender<W = DefaultWebSocket> {
    sink: SplitSink<W, Message>,
    outbox: Outbox,
}

impl<W> fmt::Debug for Sender<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<W: WebSocketTransport> Sender<W> {
    /// Sends one text message and flushes. `String` and `Utf8Bytes` are moved, not copied.
    pub async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), TransportError> {
        self.outbox.send(&mut self.sink, text.into()).await
    }

    /// Serializes `value` straight to a string (no intermediate `serde_json::Value`), sends it
    /// as one text message and flushes.
    pub async fn send_json<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), TransportError> {
        self.send_text(to_text(value)?).await
    }

    /// Queues one text message without flushing.
    pub async fn feed_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), TransportError> {
        self.outbox.feed(&mut self.sink, text.into()).await
    }

    /// Queues one text message behind everything queued before it, without waiting; it goes
    /// into the socket's write buffer at the next [`poll_ready`](Self::poll_ready) or
    /// [`poll_flush`](Self::poll_flush). Call `poll_ready` first to keep the queue short (it
    /// is the backpressure).
    pub fn queue_text(&mut self, text: impl Into<Utf8Bytes>) {
        self.outbox.queue(text.into());
    }

    /// `Ready` when everything queued is in the socket's write buffer and it takes more;
    /// `Pending` (the task is woken) while the socket does not take more.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.outbox.poll_ready(&mut self.sink, cx)
    }

    /// Writes everything queued (by [`queue_text`](Self::queue_text) and the `feed_*`
    /// methods); `Pending` (the task is woken) while the socket does not take it.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        self.outbox.poll_flush(&mut self.sink, cx)
    }

    /// Serializes `value` and queues it without flushing.
    pub async fn feed_json<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), TransportError> {
        self.feed_text(to_text(value)?).await
    }

    /// Writes everything queued by the `feed_*` methods (and [`queue_text`](Self::queue_text)).
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        self.outbox.flush(&mut self.sink).await
    }

    /// Starts the closing handshake: sends a close frame with `code` and `reason` (cut to
    /// [`MAX_CLOSE_REASON`] bytes at a character boundary) after everything queued, and
    /// flushes. The peer's reply arrives through the [`Receiver`] as [`Incoming::Close`].
    /// After this, sends fail with [`TransportError::Closed`].
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        self.outbox.close(&mut self.sink, code, reason).await
    }
}

/// The receiving half of a [`Connection`] after [`split`](Connection::split), for a task
/// other than the one that sends.
///
/// [`recv`](Self::recv) is **cancel-safe**: dropping its future (a `select!` branch that lost)
/// loses nothing; the next call resumes where the last one stopped. `Receiver` is also a
/// [`Stream`] of the same items.
///
/// Pings are answered without help from the [`Sender`]: tungstenite queues the pong when it
/// reads a ping, and `recv` keeps reading after a ping, and every read first writes any queued
/// control reply. So a task that only reads still answers pings promptly, as long as it is
/// waiting in `recv` (the usual `select!` loop is). The same holds for the reply to the peer's
/// close frame, which `recv` pushes out before returning [`Incoming::Close`]. (A
/// [`Connection`] receives the same way.)
pub struct Receiver<W = DefaultWebSocket> {
    stream: SplitStream<W>,
    inbox: Inbox,
}

impl<W> fmt::Debug for Receiver<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("skipped_binary", &self.inbox.skipped_binary)
            .finish_non_exhaustive()
    }
}

impl<W: WebSocketTransport> Receiver<W> {
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
        self.inbox.poll_recv(&mut self.stream, cx)
    }

    /// How many binary frames were skipped so far.
    pub fn skipped_binary_frames(&self) -> u64 {
        self.inbox.skipped_binary
    }
}

impl<W: WebSocketTransport> Stream for Receiver<W> {
    type Item = Result<Incoming, TransportError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

/// Serializes `value` straight to a string (no intermediate `serde_json::Value`).
fn to_text<T: Serialize + ?Sized>(value: &T) -> Result<String, TransportError> {
    serde_json::to_string(value).map_err(TransportError::Serialize)
}

/// The sending logic of [`Connection`] and [`Sender`], over whichever sink each writes to
/// (the socket itself, or its half behind the split's lock).
#[derive(Default)]
struct Outbox {
    /// Messages queued by `queue_text`, not yet in the socket's buffer.
    backlog: VecDeque<Utf8Bytes>,
}

impl Outbox {
    fn queue(&mut self, text: Utf8Bytes) {
        self.backlog.push_back(text);
    }

    /// Straight into the sink when nothing is queued (the usual case after `poll_ready`),
    /// behind the backlog otherwise.
    fn start_send<K>(&mut self, sink: &mut K, text: Utf8Bytes) -> Result<(), TransportError>
    where
        K: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        if self.backlog.is_empty() {
            sink.start_send_unpin(Message::Text(text))
                .map_err(Into::into)
        } else {
            self.queue(text);
            Ok(())
        }
    }

    /// Moves the backlog into the sink, then reports whether the sink takes more.
    fn poll_ready<K>(
        &mut self,
        sink: &mut K,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TransportError>>
    where
        K: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        while !self.backlog.is_empty() {
            ready!(sink.poll_ready_unpin(cx))?;
            if let Some(text) = self.backlog.pop_front() {
                sink.start_send_unpin(Message::Text(text))?;
            }
        }
        sink.poll_ready_unpin(cx).map_err(Into::into)
    }

    fn poll_flush<K>(
        &mut self,
        sink: &mut K,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TransportError>>
    where
        K: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        ready!(self.poll_ready(sink, cx))?;
        sink.poll_flush_unpin(cx).map_err(Into::into)
    }

    async fn send<K>(&mut self, sink: &mut K, text: Utf8Bytes) -> Result<(), TransportError>
    where
        K: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        self.queue(text);
        self.flush(sink).await
    }

    async fn feed<K>(&mut self, sink: &mut K, text: Utf8Bytes) -> Result<(), TransportError>
    where
        K: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        self.queue(text);
        std::future::poll_fn(|cx| self.poll_ready(sink, cx)).await
    }

    async fn flush<K>(&mut self, sink: &mut K) -> Result<(), TransportError>
    where
        K: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
        std::future::poll_fn(|cx| self.poll_flush(sink, cx)).await
    }

    async fn close<K>(
        &mut self,
        sink: &mut K,
        code: u16,
        reason: &str,
    ) -> Result<(), TransportError>
    where
        K: Sink<Message, Error = tungstenite::Error> + Unpin,
    {
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
        std::future::poll_fn(|cx| self.poll_ready(sink, cx)).await?;
        sink.send(Message::Close(Some(frame)))
            .await
            .map_err(Into::into)
    }
}

/// The receiving logic of [`Connection`] and [`Receiver`], over whichever stream each reads
/// from (the socket itself, or its half behind the split's lock).
#[derive(Default)]
struct Inbox {
    /// An item read ahead while flushing a close reply, returned by the next call.
    stash: Option<Option<Result<Message, tungstenite::Error>>>,
    skipped_binary: u64,
}

impl Inbox {
    fn poll_recv<T>(
        &mut self,
        stream: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Incoming, TransportError>>>
    where
        T: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
    {
        loop {
            let item = match self.stash.take() {
                Some(item) => item,
                None => ready!(stream.poll_next_unpin(cx)),
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
                    if let Poll::Ready(next) = stream.poll_next_unpin(cx) {
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
}
