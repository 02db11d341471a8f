//! A WebSocket driven straight from its socket's readiness: tungstenite's state machine over a
//! non-blocking socket, with no waker proxies in between.
//!
//! tokio-tungstenite adapts an `AsyncRead + AsyncWrite` stream to tungstenite's blocking-style
//! `Read + Write` through two waker proxies (`Arc`s of two `AtomicWaker`s each): every poll
//! registers the task's waker in two of them, every readiness event wakes through them. On the
//! caller side that is per message, twice per direction. [`SocketWebSocket`] gives tungstenite
//! the socket itself instead: a read or write is attempted at once ([`ReadinessIo::try_read`],
//! [`ReadinessIo::try_write`]), and only when the socket answers `WouldBlock` is the task's
//! waker registered with the runtime ([`ReadinessIo::poll_read_ready`],
//! [`ReadinessIo::poll_write_ready`]) — the registration tokio's own socket types make.
//!
//! The poll methods mirror tokio-tungstenite's `Stream` and `Sink` (same results, same errors):
//! [`SocketWebSocket::poll_next`], [`SocketWebSocket::poll_ready`],
//! [`SocketWebSocket::start_send`], [`SocketWebSocket::poll_flush`]; [`SocketWebSocket::close`]
//! queues a close frame and writes it out.
//!
//! ```no_run
//! # async fn demo(tcp: tokio::net::TcpStream) -> Result<(), tokio_tungstenite::tungstenite::Error> {
//! use phone_agent_server::adapters::socket_ws::SocketWebSocket;
//! use tokio_tungstenite::tungstenite::Message;
//! use tokio_tungstenite::tungstenite::protocol::Role;
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

use std::io::{self, Read, Write};
use std::task::{Context, Poll, ready};

use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A non-blocking socket whose readiness the runtime tracks, with the semantics of tokio's
/// `TcpStream` (the one implementation). `try_read` / `try_write` return `WouldBlock` when the socket is not
/// ready and clear the readiness the runtime had recorded (`try_read` may also clear it after a
/// short read, which drained the socket), so the next `poll_*_ready` registers the waker and
/// returns `Pending` until the socket is ready again.
pub trait ReadinessIo: Send + Unpin {
    /// Ready when the socket may be read (data, end of stream or an error).
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when the socket may be written.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// One non-blocking read.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// One non-blocking write.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
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
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let wanted = buf.len();
        let mut short = None;
        let result = self.try_io(tokio::io::Interest::READABLE, || {
            let n = (&*socket2::SockRef::from(self)).read(buf)?;
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
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        tokio::net::TcpStream::try_write(self, buf)
    }
}

/// The socket as tungstenite's `Read + Write`: each call one non-blocking attempt.
#[derive(Debug)]
struct Attempt<S>(S);

impl<S: ReadinessIo> Read for Attempt<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl<S: ReadinessIo> Write for Attempt<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    /// A socket keeps nothing back in user space: written is sent.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
        SocketWebSocket {
            ws: WebSocket::from_partially_read(Attempt(socket), part, role, config),
            ended: false,
            blocked: false,
        }
    }

    fn socket(&self) -> &S {
        &self.ws.get_ref().0
    }

    /// The next message: `None` once the connection is closed (after the closing handshake, or
    /// after an error was returned). Pongs and close replies are sent as tungstenite queues
    /// them.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, WsError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            match self.ws.read() {
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

    /// Queues `message`; tungstenite writes its buffer once it holds `write_buffer_size`
    /// bytes. A socket that takes no more leaves it queued (`Ok`, and the next
    /// [`poll_ready`](Self::poll_ready) waits for it).
    pub fn start_send(&mut self, message: Message) -> Result<(), WsError> {
        match self.ws.write(message) {
            Ok(()) => Ok(()),
            Err(e) if would_block(&e) => {
                self.blocked = true;
                Ok(())
            }
            Err(e) => Err(e),
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

    /// `flush` until done or failed, waiting for write readiness on `WouldBlock`.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        loop {
            match self.ws.flush() {
                Err(e) if would_block(&e) => {
                    ready!(self.socket().poll_write_ready(cx)).map_err(WsError::Io)?;
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
        match self.ws.close(frame) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => return Ok(()),
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(e),
        }
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
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
