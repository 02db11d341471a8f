//! A WebSocket driven straight from its socket's readiness: tungstenite's state machine over a
//! non-blocking socket, with no waker proxies in between.
//!
//! tokio-tungstenite adapts an `AsyncRead + AsyncWrite` stream to tungstenite's blocking-style
//! `Read + Write` through two waker proxies (`Arc`s of two `AtomicWaker`s each): every poll
//! registers the task's waker in two of them, every readiness event wakes through them; for a
//! voice call that is per audio frame, twice per direction. [`SocketWebSocket`] gives
//! tungstenite the socket itself instead: a read or write is attempted at once
//! ([`ReadinessIo::try_read`], [`ReadinessIo::try_write`]), and only when the socket answers
//! `WouldBlock` is the task's waker registered with the runtime
//! ([`ReadinessIo::poll_read_ready`], [`ReadinessIo::poll_write_ready`]) — the registration
//! tokio's own socket types make. Once a read found the socket drained, the next poll asks the
//! readiness first, so polling a WebSocket with nothing to read makes no read attempt (a caller
//! may poll it on every wake-up of its task). What is sent waits in an outbox of whole frames,
//! written in one go at the next flush and not kept once written (no write buffer per
//! connection; see `outbox.rs`).
//!
//! It implements `Stream` and `Sink<Message>` with tokio-tungstenite's results and errors, has
//! the same methods as inherent ones ([`SocketWebSocket::poll_next`],
//! [`SocketWebSocket::poll_ready`], [`SocketWebSocket::start_send`],
//! [`SocketWebSocket::poll_flush`], and the async [`SocketWebSocket::next`],
//! [`SocketWebSocket::send`], [`SocketWebSocket::close`]), and works in either role: the
//! [`Endpoint`](super::Endpoint)'s connections are client-side ones over a [`ClientSocket`](super::ClientSocket)
//! (plain TCP or TLS), and a server that accepted a TCP socket and answered its upgrade (the
//! phone-agent server does, for Twilio's media stream) wraps it with
//! [`SocketWebSocket::from_partially_read`].
//!
//! ```no_run
//! # async fn demo(tcp: tokio::net::TcpStream) -> Result<(), openai_realtime::client::WsError> {
//! use openai_realtime::client::{Message, Role, SocketWebSocket};
//!
//! // `tcp` has just answered a WebSocket upgrade; nothing was read past the request.
//! let mut ws = SocketWebSocket::from_partially_read(tcp, Vec::new(), Role::Server, None);
//! while let Some(message) = ws.next().await {
//!     if let Message::Text(text) = message? {
//!         ws.send(Message::text(text.as_str().to_uppercase())).await?;
//!     }
//! }
//! # Ok(()) }
//! ```

use std::cell::RefCell;
use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::{Sink, Stream};
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::outbox::{MAX_SLICES, Outbox};

/// A non-blocking socket whose readiness the runtime tracks, with the semantics of tokio's
/// `TcpStream`. `try_read` / `try_write` / `try_flush` return `WouldBlock` only when the socket
/// itself did, and then the readiness the runtime had recorded is cleared (`try_read` may also
/// clear it after a short read, which drained the socket), so the next `poll_*_ready`
/// registers the waker and returns `Pending` until the socket is ready again.
///
/// Implemented by tokio's `TcpStream` and by [`ClientSocket`](super::ClientSocket) (TCP, or TLS over it).
pub trait ReadinessIo: Send + Unpin {
    /// Ready when the socket may be read (data, end of stream or an error).
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when the socket may be written.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// One non-blocking read; `Ok(0)` is the end of the stream.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// One non-blocking write. What it reports written is on its way: a layer that keeps
    /// bytes back (TLS records) sends them at the next `try_write` or `try_flush`.
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// One non-blocking write of `bufs` in order (used for batches of frames too large to
    /// gather), as one `writev` where the socket has it; by default the first non-empty buffer
    /// through [`try_write`](Self::try_write).
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(first) => self.try_write(first),
            None => Ok(0),
        }
    }
    /// Sends what an earlier `try_write` kept back; a plain socket keeps nothing.
    fn try_flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ReadinessIo for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_write_ready(self, cx)
    }
    /// A read that came back short drained the socket: like tokio's own `poll_read`, it clears
    /// the readiness the runtime recorded, so the next attempt registers for the next event
    /// instead of making a `recv` that can only answer `EAGAIN` (one system call per message
    /// saved). With epoll (edge-triggered), data arriving after the read is a new event.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wanted = buf.len();
        let mut short = None;
        let result = self.try_io(tokio::io::Interest::READABLE, || {
            let n = (&*socket2::SockRef::from(&*self)).read(buf)?;
            if n > 0 && n < wanted {
                short = Some(n);
                // `WouldBlock` makes tokio clear the readiness; the bytes are returned below.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match short {
            Some(n) => Ok(n),
            None => result,
        }
    }
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        tokio::net::TcpStream::try_write(self, buf)
    }
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        tokio::net::TcpStream::try_write_vectored(self, bufs)
    }
}

/// Batches of frames up to this size are copied into [`GATHERED`] and sent with one write.
const GATHER_MAX: usize = 16 * 1024;

thread_local! {
    /// The thread's buffer for [`Attempt::write_outbox`] (at most [`GATHER_MAX`] bytes, reused
    /// by every connection the thread writes: nothing per connection).
    static GATHERED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The socket as tungstenite's `Read + Write`: each read one non-blocking attempt. During the
/// opening handshake each write is one too, and it remembers which direction last answered
/// `WouldBlock`, so the handshake waits for the right readiness. Once the connection is open,
/// what tungstenite writes (its control frames) joins the [`Outbox`] instead, behind the data
/// frames queued before it, and [`SocketWebSocket`] writes the outbox out.
#[derive(Debug)]
struct Attempt<S> {
    socket: S,
    blocked_writing: bool,
    /// The connection is open: tungstenite's writes go to `outbox`.
    open: bool,
    outbox: Outbox,
    /// tungstenite put a control frame (a pong, a close reply) in the outbox: written out by
    /// the next read if nothing else writes it first.
    control_queued: bool,
}

impl<S: ReadinessIo> Attempt<S> {
    fn new(socket: S) -> Self {
        Attempt {
            socket,
            blocked_writing: false,
            open: false,
            outbox: Outbox::default(),
            control_queued: false,
        }
    }

    fn note<T>(&mut self, result: io::Result<T>, writing: bool) -> io::Result<T> {
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.blocked_writing = writing;
        }
        result
    }

    /// Ready when the direction that last blocked may go on.
    fn poll_blocked_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.blocked_writing {
            self.socket.poll_write_ready(cx)
        } else {
            self.socket.poll_read_ready(cx)
        }
    }

    /// Writes the outbox until it is empty (then sends what the socket kept back, TLS records)
    /// or the socket answers `WouldBlock` (returned as such).
    ///
    /// Up to [`GATHER_MAX`] bytes at a time are copied into a buffer of the thread's (client
    /// payloads masked on the way) and sent with one plain write: measured, that is cheaper than
    /// a vectored write of the frames' pieces (`writev` goes through the file layer's hooks on
    /// every call, and the kernel then copies from many small slices). Larger batches of
    /// unmasked frames go vectored, uncopied.
    fn write_outbox(&mut self) -> io::Result<()> {
        while !self.outbox.is_empty() {
            let n = if self.outbox.len() <= GATHER_MAX || self.outbox.has_masked() {
                GATHERED.with_borrow_mut(|gathered| {
                    self.outbox.copy_front(gathered, GATHER_MAX);
                    self.socket.try_write(gathered)
                })?
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let filled = self.outbox.gather(&mut slices);
                self.socket.try_write_vectored(&slices[..filled])?
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.outbox.advance(n);
        }
        self.control_queued = false;
        self.socket.try_flush()
    }
}

impl<S: ReadinessIo> Read for Attempt<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.socket.try_read(buf);
        self.note(result, false)
    }
}

impl<S: ReadinessIo> Write for Attempt<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.open {
            self.outbox.push_bytes(buf);
            self.control_queued = true;
            return Ok(buf.len());
        }
        let result = self.socket.try_write(buf);
        self.note(result, true)
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.open {
            // Written with the outbox.
            return Ok(());
        }
        let result = self.socket.try_flush();
        self.note(result, true)
    }
}

fn would_block(e: &WsError) -> bool {
    matches!(e, WsError::Io(io) if io.kind() == io::ErrorKind::WouldBlock)
}

/// A WebSocket over a [`ReadinessIo`] socket; see the [module docs](self).
#[derive(Debug)]
pub struct SocketWebSocket<S> {
    ws: WebSocket<Attempt<S>>,
    /// The read side returned its end (`None` or an error): later reads return `None`.
    ended: bool,
    /// A write was left queued by `WouldBlock`: `poll_ready` writes it out first.
    blocked: bool,
    /// A client masks every frame it sends.
    role: Role,
    /// tungstenite may hold a whole frame already read (its last read returned a message, or
    /// nothing has been read yet): the next read asks it first. Otherwise (its last read found
    /// the socket drained) the socket's readiness is checked first, so a side polled with
    /// nothing to read costs no read attempt (tungstenite zero-fills its buffer for each).
    read_pending: bool,
}

impl<S: ReadinessIo> SocketWebSocket<S> {
    /// Wraps a socket whose opening handshake is done; `part` is what was read past the
    /// handshake (tungstenite reads it first).
    pub fn from_partially_read(
        socket: S,
        part: Vec<u8>,
        role: Role,
        config: Option<WebSocketConfig>,
    ) -> Self {
        Self::from_websocket(
            WebSocket::from_partially_read(Attempt::new(socket), part, role, config),
            role,
        )
    }

    fn from_websocket(mut ws: WebSocket<Attempt<S>>, role: Role) -> Self {
        ws.get_mut().open = true;
        SocketWebSocket {
            ws,
            ended: false,
            blocked: false,
            role,
            read_pending: true,
        }
    }

    /// Performs the client side of the opening handshake over `socket` (connected, and through
    /// TLS already if any), waiting for the socket's readiness whenever it blocks. The frames
    /// the server sent right behind its response stay buffered for the first reads.
    pub async fn client_handshake(
        socket: S,
        request: Request,
        config: Option<WebSocketConfig>,
    ) -> Result<(Self, Response), WsError> {
        use tokio_tungstenite::tungstenite::HandshakeError;
        use tokio_tungstenite::tungstenite::handshake::client::ClientHandshake;

        let mut round = ClientHandshake::start(Attempt::new(socket), request, config)?.handshake();
        loop {
            match round {
                Ok((ws, response)) => {
                    return Ok((Self::from_websocket(ws, Role::Client), response));
                }
                Err(HandshakeError::Failure(e)) => return Err(e),
                Err(HandshakeError::Interrupted(mid)) => {
                    std::future::poll_fn(|cx| mid.get_ref().get_ref().poll_blocked_ready(cx))
                        .await?;
                    round = mid.handshake();
                }
            }
        }
    }

    fn socket(&self) -> &S {
        &self.ws.get_ref().socket
    }

    /// The next message: `None` once the connection is closed (after the closing handshake, or
    /// after an error was returned). Pongs and close replies are sent as tungstenite queues
    /// them.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, WsError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if !self.read_pending
            && let Err(e) = ready!(self.socket().poll_read_ready(cx))
        {
            self.ended = true;
            return Poll::Ready(Some(Err(WsError::Io(e))));
        }
        loop {
            let read = self.ws.read();
            self.read_pending = read.is_ok();
            if self.ws.get_ref().control_queued {
                // A pong or a close reply tungstenite queued while reading: on its way now if the
                // socket takes it (otherwise with the next write, or the next read).
                match self.ws.get_mut().write_outbox() {
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                        tracing::debug!(error = %e, "a control frame could not be written");
                    }
                    _ => {}
                }
            }
            match read {
                Ok(message) => return Poll::Ready(Some(Ok(message))),
                Err(e) if would_block(&e) => {
                    if let Err(e) = ready!(self.socket().poll_read_ready(cx)) {
                        self.ended = true;
                        return Poll::Ready(Some(Err(WsError::Io(e))));
                    }
                }
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                // A TLS peer that ends the stream without `close_notify` once the closing
                // handshake has begun loses nothing: the WebSocket close frames end the data.
                Err(WsError::Io(e))
                    if e.kind() == io::ErrorKind::UnexpectedEof && !self.ws.can_write() =>
                {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                Err(e) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    /// Ready when a message can be queued: what an earlier write left queued has been
    /// written.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        if !self.blocked {
            return Poll::Ready(Ok(()));
        }
        let result = ready!(self.poll_write_out(cx));
        self.blocked = false;
        Poll::Ready(result)
    }

    /// Queues `message`; the queue is written to the socket once it holds more than the
    /// configuration's `write_buffer_size` bytes. A socket that takes no more leaves it queued
    /// (`Ok`, and the next [`poll_ready`](Self::poll_ready) waits for it).
    ///
    /// A text or binary message is queued as its frame's header beside the message's own bytes
    /// (see `outbox`): tungstenite's rules for what may be sent when still apply, its write
    /// buffer is not used.
    pub fn start_send(&mut self, message: Message) -> Result<(), WsError> {
        let open = self.ws.can_write();
        let queued = self.ws.get_ref().outbox.len();
        let fits =
            |len: usize| queued.saturating_add(len) <= self.ws.get_config().max_write_buffer_size;
        let (opcode, payload) = match message {
            Message::Text(text) if open && fits(text.len()) => (Data::Text, text.into()),
            Message::Binary(bytes) if open && fits(bytes.len()) => (Data::Binary, bytes),
            message @ (Message::Text(_) | Message::Binary(_)) if open => {
                return Err(WsError::WriteBufferFull(Box::new(message)));
            }
            // Control frames, raw frames, and any message once the connection is closing:
            // tungstenite's own answer (its frames join the outbox in order).
            other => {
                return match self.ws.write(other).and_then(|()| self.ws.flush()) {
                    Ok(()) => self.write_if_full(),
                    Err(e) if would_block(&e) => Ok(()),
                    Err(e) => Err(e),
                };
            }
        };
        let mask = (self.role == Role::Client).then(rand::random::<[u8; 4]>);
        self.ws.get_mut().outbox.push_frame(opcode, payload, mask);
        self.write_if_full()
    }

    /// Writes the queue out once it holds more than `write_buffer_size` bytes, as tungstenite
    /// does with its buffer; a socket that takes no more leaves the rest for `poll_ready`.
    fn write_if_full(&mut self) -> Result<(), WsError> {
        if self.ws.get_ref().outbox.len() <= self.ws.get_config().write_buffer_size {
            return Ok(());
        }
        match self.ws.get_mut().write_outbox() {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.blocked = true;
                Ok(())
            }
            Err(e) => Err(WsError::Io(e)),
        }
    }

    /// Writes everything queued. A connection closed meanwhile (our close frame was the last
    /// thing out) counts as flushed.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let result = ready!(self.poll_write_out(cx));
        self.blocked = false;
        Poll::Ready(match result {
            Err(WsError::ConnectionClosed) => Ok(()),
            other => other,
        })
    }

    /// What tungstenite still holds (a pong it has not queued yet) into the outbox, then the
    /// outbox to the socket, waiting for write readiness on `WouldBlock`. tungstenite's answer
    /// (`ConnectionClosed` once a server's closing handshake is done) comes after the bytes.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let tungstenite = self.ws.flush();
        if let Err(e) = &tungstenite
            && !would_block(e)
            && !matches!(e, WsError::ConnectionClosed | WsError::AlreadyClosed)
        {
            return Poll::Ready(tungstenite);
        }
        ready!(self.poll_write_outbox(cx)).map_err(WsError::Io)?;
        Poll::Ready(match tungstenite {
            Err(e) if would_block(&e) => Ok(()),
            other => other,
        })
    }

    /// The outbox to the socket, waiting for write readiness on `WouldBlock`.
    fn poll_write_outbox(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.ws.get_mut().write_outbox() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.socket().poll_write_ready(cx))?;
                }
                other => return Poll::Ready(other),
            }
        }
    }

    /// Queues a close frame (once; later calls only write out) and writes everything queued,
    /// like `Sink::poll_close`. A connection already closed is not an error.
    pub fn poll_close(
        &mut self,
        frame: Option<CloseFrame>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), WsError>> {
        // tungstenite queues the frame (into the outbox) only while the connection is open;
        // later calls only write out.
        match self.ws.close(frame) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
        match ready!(self.poll_write_out(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Writes `bytes` to the socket as they are, bypassing the queue; for a frame formatted by
    /// the caller, after everything queued before it (written first, if
    /// [`poll_flush`](Self::poll_flush) has not). Returns how many bytes the socket took.
    pub fn poll_write_raw(
        &mut self,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_write_outbox(cx))?;
        loop {
            match self.ws.get_mut().socket.try_write(bytes) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.socket().poll_write_ready(cx))?;
                }
                other => return Poll::Ready(other),
            }
        }
    }

    /// Sends what the socket kept back of raw writes (TLS records).
    pub fn poll_flush_raw(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.ws.get_mut().socket.try_flush() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.socket().poll_write_ready(cx))?;
                }
                other => return Poll::Ready(other),
            }
        }
    }

    /// The next message (see [`poll_next`](Self::poll_next)).
    pub async fn next(&mut self) -> Option<Result<Message, WsError>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Queues `message` and writes everything queued.
    pub async fn send(&mut self, message: Message) -> Result<(), WsError> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await?;
        self.start_send(message)?;
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Queues a close frame (once; later calls only write out) and writes everything queued.
    /// A connection already closed is not an error.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), WsError> {
        let mut frame = Some(frame);
        std::future::poll_fn(|cx| self.poll_close(frame.take().flatten(), cx)).await
    }
}

/// The items of [`SocketWebSocket::poll_next`].
impl<S: ReadinessIo> Stream for SocketWebSocket<S> {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        SocketWebSocket::poll_next(self.get_mut(), cx)
    }
}

/// The inherent methods of the same names; `poll_close` sends a close frame without a code.
impl<S: ReadinessIo> Sink<Message> for SocketWebSocket<S> {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        SocketWebSocket::poll_ready(self.get_mut(), cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), WsError> {
        SocketWebSocket::start_send(self.get_mut(), message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        SocketWebSocket::poll_flush(self.get_mut(), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        SocketWebSocket::poll_close(self.get_mut(), None, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    /// Two connected loopback sockets: (the accepted one, the client's).
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (accepted.unwrap().0, client.unwrap())
    }

    /// A connected pair: ours (`SocketWebSocket`, server role) and a tokio-tungstenite client.
    async fn pair(
        config: Option<WebSocketConfig>,
    ) -> (SocketWebSocket<TcpStream>, WebSocketStream<TcpStream>) {
        let (accepted, client) = tcp_pair().await;
        let server =
            SocketWebSocket::from_partially_read(accepted, Vec::new(), Role::Server, config);
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (server, client)
    }

    #[tokio::test]
    async fn messages_both_ways_in_order() {
        let (mut server, mut client) = pair(None).await;
        for i in 0..100 {
            client.send(Message::text(format!("up {i}"))).await.unwrap();
        }
        for i in 0..100 {
            let got = server.next().await.unwrap().unwrap();
            assert_eq!(got, Message::text(format!("up {i}")));
        }
        for i in 0..100 {
            server
                .send(Message::text(format!("down {i}")))
                .await
                .unwrap();
        }
        for i in 0..100 {
            let got = client.next().await.unwrap().unwrap();
            assert_eq!(got, Message::text(format!("down {i}")));
        }
    }

    #[tokio::test]
    async fn bytes_read_past_the_handshake_come_first() {
        let (accepted, client) = tcp_pair().await;
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        // The first message's frame, as if hyper had read it with the upgrade request: a
        // masked text frame "early" (zero masking key, so the payload reads as is).
        let first = [&[0x81u8, 0x85, 0, 0, 0, 0][..], b"early"].concat();
        let mut server = SocketWebSocket::from_partially_read(accepted, first, Role::Server, None);
        client.send(Message::text("late")).await.unwrap();
        assert_eq!(
            server.next().await.unwrap().unwrap(),
            Message::text("early")
        );
        assert_eq!(server.next().await.unwrap().unwrap(), Message::text("late"));
    }

    #[tokio::test]
    async fn frames_arriving_byte_by_byte_are_read_whole() {
        let (accepted, mut raw) = tcp_pair().await;
        let mut server =
            SocketWebSocket::from_partially_read(accepted, Vec::new(), Role::Server, None);
        // Three masked text frames (zero masking key), written one byte at a time, the server
        // polled after each: every read is short, and each must leave the server waiting for
        // the next byte rather than for an event that already came.
        let mut wire = Vec::new();
        for word in ["one", "two", "three"] {
            wire.extend_from_slice(&[0x81, 0x80 | word.len() as u8, 0, 0, 0, 0]);
            wire.extend_from_slice(word.as_bytes());
        }
        let mut got = Vec::new();
        for byte in wire {
            raw.write_all(&[byte]).await.unwrap();
            if let Poll::Ready(message) =
                std::future::poll_fn(|cx| Poll::Ready(server.poll_next(cx))).await
            {
                got.push(message.unwrap().unwrap());
            }
        }
        while got.len() < 3 {
            got.push(server.next().await.unwrap().unwrap());
        }
        assert_eq!(
            got,
            [
                Message::text("one"),
                Message::text("two"),
                Message::text("three")
            ]
        );
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_blocks_writes_until_it_reads_again() {
        // Small write buffer: every message goes to the socket as it is queued.
        let config = WebSocketConfig::default().write_buffer_size(0);
        let (mut server, mut client) = pair(Some(config)).await;
        let payload = "x".repeat(16 * 1024);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        // Queue until the socket takes no more: the client is not reading.
        let mut queued = 0usize;
        loop {
            match server.poll_ready(&mut cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => panic!("{e}"),
                Poll::Pending => break,
            }
            server.start_send(Message::text(payload.clone())).unwrap();
            queued += 1;
            assert!(queued < 10_000, "the socket never pushed back");
        }
        assert!(server.poll_flush(&mut cx).is_pending());
        // The client reads: everything arrives, in order, and the flush completes.
        let reader = tokio::spawn(async move {
            let mut n = 0usize;
            while n < queued {
                match client.next().await.unwrap().unwrap() {
                    Message::Text(t) => assert_eq!(t.len(), 16 * 1024),
                    other => panic!("{other:?}"),
                }
                n += 1;
            }
            client
        });
        std::future::poll_fn(|cx| server.poll_flush(cx))
            .await
            .unwrap();
        let _client = reader.await.unwrap();
    }

    #[tokio::test]
    async fn close_handshake_from_our_side() {
        let (mut server, mut client) = pair(None).await;
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "call ended".into(),
        };
        server.close(Some(frame.clone())).await.unwrap();
        // The client sees our close frame; its library replies and waits for us to drop the
        // connection (the server closes TCP first).
        let client = tokio::spawn(async move {
            let first = client.next().await;
            let then = client.next().await;
            (first, then)
        });
        // We read the client's reply; then our read side ends, and stays ended.
        assert!(matches!(server.next().await, Some(Ok(Message::Close(_)))));
        assert!(server.next().await.is_none());
        assert!(server.next().await.is_none());
        drop(server);
        let (first, then) = client.await.unwrap();
        assert_eq!(first.unwrap().unwrap(), Message::Close(Some(frame)));
        assert!(then.is_none());
    }

    #[tokio::test]
    async fn close_handshake_from_the_peer() {
        let (mut server, mut client) = pair(None).await;
        client.close(None).await.unwrap();
        assert!(matches!(
            server.next().await,
            Some(Ok(Message::Close(None)))
        ));
        // tungstenite queued the reply; the next read writes it and reports the end.
        assert!(server.next().await.is_none());
        drop(server);
        assert!(matches!(
            client.next().await,
            Some(Ok(Message::Close(None)))
        ));
        assert!(client.next().await.is_none());
    }

    #[tokio::test]
    async fn a_ping_is_answered_while_we_only_read() {
        let (mut server, mut client) = pair(None).await;
        client
            .send(Message::Ping("are you there".into()))
            .await
            .unwrap();
        client.send(Message::text("after the ping")).await.unwrap();
        // Our side only reads; the pong goes out as the ping is read.
        assert_eq!(
            server.next().await.unwrap().unwrap(),
            Message::Ping("are you there".into())
        );
        assert_eq!(
            server.next().await.unwrap().unwrap(),
            Message::text("after the ping")
        );
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::Pong("are you there".into())
        );
    }

    #[tokio::test]
    async fn messages_queued_before_the_peer_closes_go_out_before_the_close_reply() {
        let (mut server, mut client) = pair(None).await;
        // Queued, not flushed (smaller than the write buffer).
        server.start_send(Message::text("one")).unwrap();
        server.start_send(Message::binary(vec![2u8; 3])).unwrap();
        client.close(None).await.unwrap();
        assert!(matches!(
            server.next().await,
            Some(Ok(Message::Close(None)))
        ));
        // Closing now: tungstenite refuses further messages, as before.
        assert!(matches!(
            server.start_send(Message::text("too late")),
            Err(WsError::Protocol(_))
        ));
        assert!(server.next().await.is_none());
        drop(server);
        assert_eq!(client.next().await.unwrap().unwrap(), Message::text("one"));
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::binary(vec![2u8; 3])
        );
        assert!(matches!(
            client.next().await,
            Some(Ok(Message::Close(None)))
        ));
        assert!(client.next().await.is_none());
    }

    #[tokio::test]
    async fn nothing_is_kept_for_writing_once_written() {
        let (mut server, mut client) = pair(None).await;
        for i in 0..20 {
            server
                .start_send(Message::text("z".repeat(1000 + i)))
                .unwrap();
        }
        std::future::poll_fn(|cx| server.poll_flush(cx))
            .await
            .unwrap();
        assert!(server.ws.get_ref().outbox.is_empty());
        for i in 0..20 {
            assert_eq!(
                client.next().await.unwrap().unwrap(),
                Message::text("z".repeat(1000 + i))
            );
        }
    }

    /// tokio's `TcpStream`, counting read attempts.
    struct CountingReads {
        tcp: TcpStream,
        reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl ReadinessIo for CountingReads {
        fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.tcp.poll_read_ready(cx)
        }
        fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.tcp.poll_write_ready(cx)
        }
        fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ReadinessIo::try_read(&mut self.tcp, buf)
        }
        fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
            ReadinessIo::try_write(&mut self.tcp, buf)
        }
    }

    #[tokio::test]
    async fn a_drained_socket_is_polled_without_a_read_attempt() {
        let (accepted, client) = tcp_pair().await;
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let socket = CountingReads {
            tcp: accepted,
            reads: std::sync::Arc::clone(&reads),
        };
        let mut server =
            SocketWebSocket::from_partially_read(socket, Vec::new(), Role::Server, None);
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        client.send(Message::text("one")).await.unwrap();
        assert_eq!(server.next().await.unwrap().unwrap(), Message::text("one"));
        // The call's task polls this side on every wake-up of the call, most of them for the
        // other side's traffic: once drained, such a poll is the socket's readiness only.
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(server.poll_next(&mut cx).is_pending());
        let after_drain = reads.load(std::sync::atomic::Ordering::Relaxed);
        for _ in 0..100 {
            assert!(server.poll_next(&mut cx).is_pending());
        }
        assert_eq!(
            reads.load(std::sync::atomic::Ordering::Relaxed),
            after_drain
        );
        // And what comes next is read as before.
        client.send(Message::text("two")).await.unwrap();
        assert_eq!(server.next().await.unwrap().unwrap(), Message::text("two"));
    }

    #[tokio::test]
    async fn a_message_beyond_the_write_limit_is_handed_back() {
        let config = WebSocketConfig::default()
            .write_buffer_size(64)
            .max_write_buffer_size(256);
        let (mut server, mut client) = pair(Some(config)).await;
        let big = Message::text("b".repeat(300));
        match server.start_send(big.clone()) {
            Err(WsError::WriteBufferFull(back)) => assert_eq!(*back, big),
            other => panic!("expected WriteBufferFull, got {other:?}"),
        }
        // Nothing of it was queued; a message within the limit still goes.
        server.send(Message::text("small")).await.unwrap();
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::text("small")
        );
    }

    #[tokio::test]
    async fn a_client_masks_what_it_sends() {
        // Our side as the client, tokio-tungstenite as the server (which refuses unmasked
        // frames from a client).
        let (accepted, client) = tcp_pair().await;
        let mut ours = SocketWebSocket::from_partially_read(client, Vec::new(), Role::Client, None);
        let mut server = WebSocketStream::from_raw_socket(accepted, Role::Server, None).await;
        let texts: Vec<String> = (0..50).map(|i| "m".repeat(i * 37)).collect();
        for text in &texts {
            ours.send(Message::text(text.clone())).await.unwrap();
        }
        for text in &texts {
            assert_eq!(
                server.next().await.unwrap().unwrap(),
                Message::text(text.clone())
            );
        }
    }

    #[tokio::test]
    async fn an_abrupt_disconnect_is_an_error_then_the_end() {
        let (mut server, client) = pair(None).await;
        drop(client);
        match server.next().await {
            Some(Err(WsError::Protocol(_))) => {}
            other => panic!("expected a protocol error (reset without closing), got {other:?}"),
        }
        assert!(server.next().await.is_none());
    }

    #[tokio::test]
    async fn oversized_frames_are_refused() {
        let config = WebSocketConfig::default()
            .max_message_size(Some(1024))
            .max_frame_size(Some(1024));
        let (mut server, mut client) = pair(Some(config)).await;
        client.send(Message::text("y".repeat(4096))).await.unwrap();
        assert!(matches!(
            server.next().await,
            Some(Err(WsError::Capacity(_)))
        ));
        assert!(server.next().await.is_none());
    }
}
