//! The socket under a client connection: plain TCP for `ws://`, TLS (rustls) over it for
//! `wss://`, both driven from the TCP socket's readiness (see [`ReadinessIo`]).
//!
//! The TLS layer is rustls's own state machine fed straight from the socket: a read takes the
//! records the socket has (one non-blocking `recv`) and returns the plaintext they carry; a
//! write encrypts into rustls's buffer and sends what the socket takes, keeping the rest for
//! the next write or flush. It follows tokio-rustls's handling of every case (the handshake
//! loop, alerts on a failed record, a peer that ends the stream without `close_notify`
//! reported as `UnexpectedEof`), without its waker adapters.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::socket::ReadinessIo;

/// A client connection's socket: TCP, or TLS over TCP. Made by
/// [`Endpoint::connect`](super::Endpoint::connect); usable on its own with
/// [`SocketWebSocket::client_handshake`](super::SocketWebSocket::client_handshake).
#[derive(Debug)]
pub struct ClientSocket(Layer);

#[derive(Debug)]
enum Layer {
    Plain(TcpStream),
    // Boxed: rustls's connection state is ~1 KB, and plain sockets should not carry it.
    Tls(Box<TlsSocket>),
}

impl ClientSocket {
    /// A plain TCP socket (`ws://`).
    pub fn plain(tcp: TcpStream) -> Self {
        ClientSocket(Layer::Plain(tcp))
    }

    /// Performs the TLS handshake with `server_name` over `tcp` (`wss://`): certificate checks
    /// per `config`, no early data.
    pub async fn tls(
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<Self> {
        let session = ClientConnection::new(config, server_name).map_err(io::Error::other)?;
        let mut socket = TlsSocket { tcp, session };
        socket.handshake().await?;
        Ok(ClientSocket(Layer::Tls(Box::new(socket))))
    }

    /// The TCP socket under it.
    pub fn tcp(&self) -> &TcpStream {
        match &self.0 {
            Layer::Plain(tcp) => tcp,
            Layer::Tls(tls) => &tls.tcp,
        }
    }
}

impl ReadinessIo for ClientSocket {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_read_ready(cx)
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_write_ready(cx)
    }
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            Layer::Plain(tcp) => ReadinessIo::try_read(tcp, buf),
            Layer::Tls(tls) => tls.try_read(buf),
        }
    }
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Layer::Plain(tcp) => ReadinessIo::try_write(tcp, buf),
            Layer::Tls(tls) => tls.try_write(buf),
        }
    }
    fn try_write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match &mut self.0 {
            Layer::Plain(tcp) => ReadinessIo::try_write_vectored(tcp, bufs),
            Layer::Tls(tls) => tls.try_write_vectored(bufs),
        }
    }
    fn try_flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Layer::Plain(_) => Ok(()),
            Layer::Tls(tls) => tls.send_records(),
        }
    }
}

/// rustls over a TCP socket.
#[derive(Debug)]
struct TlsSocket {
    tcp: TcpStream,
    session: ClientConnection,
}

/// The TCP socket as rustls's record reader and writer: each call one non-blocking attempt.
struct Records<'a>(&'a mut TcpStream);

impl Read for Records<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        ReadinessIo::try_read(self.0, buf)
    }
}

impl Write for Records<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        ReadinessIo::try_write(self.0, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsSocket {
    /// Drives the handshake to its end, waiting for the socket's readiness whenever it
    /// blocks; the client's last handshake flight is sent before returning.
    async fn handshake(&mut self) -> io::Result<()> {
        loop {
            match self.send_records() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.tcp.writable().await?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            if !self.session.is_handshaking() {
                return Ok(());
            }
            match self.receive_records() {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server ended the connection during the TLS handshake",
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.tcp.readable().await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends the records rustls holds; `WouldBlock` if the socket took not all of them.
    fn send_records(&mut self) -> io::Result<()> {
        while self.session.wants_write() {
            if self.session.write_tls(&mut Records(&mut self.tcp))? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Reads records from the socket (one attempt) and processes them; `Ok(0)` at the end of
    /// the stream. A record that fails (bad MAC, unexpected message) sends rustls's alert and
    /// is an `InvalidData` error.
    fn receive_records(&mut self) -> io::Result<usize> {
        let n = self.session.read_tls(&mut Records(&mut self.tcp))?;
        if let Err(err) = self.session.process_new_packets() {
            // The alert is best effort: the connection is over either way.
            let _ = self.send_records();
            return Err(io::Error::new(io::ErrorKind::InvalidData, err));
        }
        Ok(n)
    }

    /// Plaintext already decrypted first; otherwise records from the socket. `Ok(0)` once
    /// the server sent `close_notify`; `UnexpectedEof` if the stream ended without it.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.session.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            if self.receive_records()? == 0 {
                // rustls has seen the end: its reader now answers `Ok(0)` or `UnexpectedEof`.
                return match self.session.reader().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        Err(io::ErrorKind::UnexpectedEof.into())
                    }
                    other => other,
                };
            }
            // Records may call for a reply (a key update): sent now if the socket takes it,
            // otherwise before the next write.
            match self.send_records() {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
        }
    }

    /// Encrypts `buf` once the records of earlier writes are out (so what rustls holds stays
    /// bounded by one write), then sends what the socket takes.
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.try_write_vectored(&[io::IoSlice::new(buf)])
    }

    /// [`try_write`](Self::try_write) of several buffers: rustls makes records of them as of
    /// one.
    fn try_write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.send_records()?;
        let n = self.session.writer().write_vectored(bufs)?;
        match self.send_records() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(n),
        }
    }
}
