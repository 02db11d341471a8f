//! A tiny local WebSocket server and in-memory pairs for the client tests.
#![allow(dead_code, unreachable_pub)] // each test file uses a different subset

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use openai_realtime::client::{
    ApiKey, Connection, ConnectionInfo, Endpoint, EndpointBuilder, RetryPolicy, WebSocketConfig,
};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderMap, StatusCode};
use tokio_tungstenite::tungstenite::protocol::Role;

pub const KEY: &str = "sk-test-very-secret-key";

/// What the server saw on the upgrade request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path_and_query: String,
    pub headers: HeaderMap,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Binds `127.0.0.1:0` and returns the listener and an `http://` base URL with `/v1`.
pub async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    (listener, format!("http://{addr}/v1"))
}

/// A builder for `base_url` with the test key, no retries and no jitter.
pub fn endpoint(base_url: &str) -> EndpointBuilder {
    Endpoint::builder(ApiKey::new(KEY))
        .base_url(base_url)
        .retry(RetryPolicy::none())
}

/// Accepts one TCP connection and completes the upgrade, answering with `x-request-id`.
pub async fn accept(listener: &TcpListener) -> (WebSocketStream<TcpStream>, Seen) {
    let (tcp, _) = listener.accept().await.expect("accept");
    upgrade(tcp).await
}

/// Completes the server side of the upgrade on `stream`, answering with `x-request-id`.
#[allow(clippy::result_large_err)] // tungstenite's callback signature
pub async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> (WebSocketStream<S>, Seen) {
    let mut seen = None;
    let callback = |request: &Request, mut response: Response| {
        seen = Some(capture(request));
        response
            .headers_mut()
            .insert("x-request-id", "req_test_101".parse().expect("valid"));
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async(stream, callback)
        .await
        .expect("server handshake");
    (ws, seen.expect("callback ran"))
}

/// Accepts one TCP connection and answers the upgrade with `status`, a JSON `body` and an
/// `x-request-id` (plus `Retry-After: retry_after` if given).
#[allow(clippy::result_large_err)] // tungstenite's callback signature
pub async fn reject(
    listener: &TcpListener,
    status: u16,
    body: &str,
    retry_after: Option<u64>,
) -> Seen {
    let (tcp, _) = listener.accept().await.expect("accept");
    let mut seen = None;
    let callback = |request: &Request, _response: Response| -> Result<Response, ErrorResponse> {
        seen = Some(capture(request));
        let mut builder = tokio_tungstenite::tungstenite::http::Response::builder()
            .status(StatusCode::from_u16(status).expect("valid status"))
            .header("content-type", "application/json")
            .header("content-length", body.len().to_string())
            .header("x-request-id", "req_rejected_1");
        if let Some(seconds) = retry_after {
            builder = builder.header("retry-after", seconds.to_string());
        }
        Err(builder.body(Some(body.to_owned())).expect("valid response"))
    };
    let result = tokio_tungstenite::accept_hdr_async(tcp, callback).await;
    assert!(result.is_err(), "the handshake was meant to fail");
    seen.expect("callback ran")
}

fn capture(request: &Request) -> Seen {
    Seen {
        path_and_query: request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: request.headers().clone(),
    }
}

/// Counts successful `poll_write` calls on the wrapped stream.
#[derive(Debug)]
pub struct CountingIo<S> {
    inner: S,
    writes: Arc<AtomicUsize>,
}

impl<S> CountingIo<S> {
    pub fn new(inner: S) -> (Self, Arc<AtomicUsize>) {
        let writes = Arc::new(AtomicUsize::new(0));
        (
            Self {
                inner,
                writes: Arc::clone(&writes),
            },
            writes,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountingIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = result {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An in-memory client connection and the raw server end of the same pipe.
pub async fn duplex_pair() -> (
    Connection<WebSocketStream<CountingIo<DuplexStream>>>,
    Arc<AtomicUsize>,
    DuplexStream,
) {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (counting, writes) = CountingIo::new(client_io);
    let config = WebSocketConfig::default();
    let ws = WebSocketStream::from_raw_socket(counting, Role::Client, Some(config)).await;
    (
        Connection::from_websocket(ws, ConnectionInfo::new("ws://in-memory/v1/live/sessions")),
        writes,
        server_io,
    )
}

/// An in-memory client connection and a WebSocket server on the other end.
pub async fn ws_pair() -> (
    Connection<WebSocketStream<CountingIo<DuplexStream>>>,
    Arc<AtomicUsize>,
    WebSocketStream<DuplexStream>,
) {
    let (connection, writes, server_io) = duplex_pair().await;
    let server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
    (connection, writes, server)
}
