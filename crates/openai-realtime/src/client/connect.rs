//! Opening a connection: DNS, TCP (`TCP_NODELAY`), TLS (rustls + ring), WebSocket handshake,
//! per-attempt timeout and retry with backoff.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderMap, StatusCode, Uri};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use super::connection::{Connection, DefaultWebSocket};
use super::endpoint::{Endpoint, Target};
use super::socket::SocketWebSocket;
use super::tls::ClientSocket;

/// How much of an HTTP error body is kept (bytes, cut at a character boundary).
pub const MAX_ERROR_BODY: usize = 1024;

/// What is known about an established connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    url: String,
    request_id: Option<String>,
    attempts: u32,
    peer_addr: Option<SocketAddr>,
    tcp_nodelay: Option<bool>,
}

impl ConnectionInfo {
    /// Describes a connection made some other way (tests, in-memory transports).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            request_id: None,
            attempts: 1,
            peer_addr: None,
            tcp_nodelay: None,
        }
    }

    /// The WebSocket URL (never contains credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `x-request-id` of the upgrade response, for support requests.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// How many attempts it took (1 = first try).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The server's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// `TCP_NODELAY` as read back from the socket right after it was set, before TLS and the
    /// upgrade; `None` when the connection was not made by [`Endpoint::connect`].
    pub fn tcp_nodelay(&self) -> Option<bool> {
        self.tcp_nodelay
    }
}

/// The server refused the WebSocket upgrade with an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRejection {
    /// HTTP status, e.g. 401.
    pub status: StatusCode,
    /// Up to [`MAX_ERROR_BODY`] bytes of the body (lossy UTF-8), usually OpenAI's JSON error.
    /// Only what arrived with the headers is available.
    pub body: String,
    /// `x-request-id` response header.
    pub request_id: Option<String>,
    /// `Retry-After` response header, when given in seconds.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for HttpRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(id) = &self.request_id {
            write!(f, " (x-request-id {id})")?;
        }
        if !self.body.is_empty() {
            write!(f, ": {}", self.body)?;
        }
        Ok(())
    }
}

/// Why one connection attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectErrorKind {
    /// The URL could not be turned into a request (bad host, unsupported scheme).
    #[error("invalid request: {0}")]
    InvalidRequest(#[source] tungstenite::Error),
    /// Name resolution failed or returned no address.
    #[error("DNS lookup for {host} failed: {source}")]
    Dns {
        /// The host name.
        host: String,
        /// The resolver error.
        #[source]
        source: io::Error,
    },
    /// TCP connect failed (refused, unreachable, reset…).
    #[error("TCP connect failed: {0}")]
    Tcp(#[source] io::Error),
    /// The attempt took longer than the endpoint's connect timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The default TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    TlsConfig(#[source] rustls::Error),
    /// The server answered the upgrade with an HTTP error.
    #[error("upgrade rejected: {0}")]
    Http(HttpRejection),
    /// TLS or the WebSocket handshake failed (certificate, protocol, I/O).
    #[error("handshake failed: {0}")]
    Handshake(#[source] tungstenite::Error),
}

impl ConnectErrorKind {
    /// Whether another attempt may succeed: refused/reset/aborted connections, DNS failures,
    /// timeouts, HTTP 408, 429 and 5xx. Everything else (401, 403, 404, 400, certificate
    /// errors, bad configuration) is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::InvalidRequest(_) | Self::TlsConfig(_) => false,
            Self::Dns { .. } | Self::Timeout(_) => true,
            Self::Tcp(err) => is_transient_io(err),
            Self::Http(rejection) => {
                let status = rejection.status;
                status.is_server_error()
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT
            }
            Self::Handshake(tungstenite::Error::Io(err)) => is_transient_io(err),
            Self::Handshake(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::HandshakeIncomplete
                | tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => true,
            Self::Handshake(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Http(rejection) => rejection.retry_after,
            _ => None,
        }
    }
}

fn is_transient_io(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | TimedOut
            | UnexpectedEof
            | Interrupted
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
            | AddrNotAvailable
    )
}

/// Connecting failed: the last attempt's error, how many attempts were made, and the URL.
///
/// Never contains credentials (the URL carries none; headers are not included).
#[derive(Debug)]
pub struct ConnectError {
    url: String,
    attempts: u32,
    kind: ConnectErrorKind,
}

impl ConnectError {
    /// The error of the last attempt.
    pub fn kind(&self) -> &ConnectErrorKind {
        &self.kind
    }

    /// Consumes the error, returning the last attempt's error.
    pub fn into_kind(self) -> ConnectErrorKind {
        self.kind
    }

    /// Attempts made, including the first.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The URL that was tried.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The HTTP rejection, if the server answered the upgrade with an error status.
    pub fn http(&self) -> Option<&HttpRejection> {
        match &self.kind {
            ConnectErrorKind::Http(rejection) => Some(rejection),
            _ => None,
        }
    }

    /// Whether the last failure was transient (retries were exhausted) rather than permanent.
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connecting to {} failed after {} attempt(s): {}",
            self.url, self.attempts, self.kind
        )
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // `kind` is already part of `Display`; continue the chain below it.
        std::error::Error::source(&self.kind)
    }
}

/// The default TLS configuration: the `ring` provider passed explicitly (so it works whether
/// or not a process-wide default provider is installed, and never panics when both `ring` and
/// `aws-lc-rs` end up in the dependency graph) and Mozilla's roots from webpki-roots.
/// Built once per process.
///
/// The server still installs `ring` as the process default at startup, for other rustls users
/// that call `ClientConfig::builder()`.
pub fn default_tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(Arc::clone(config));
    }
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::clone(CONFIG.get_or_init(|| Arc::new(config))))
}

impl Endpoint {
    /// Opens a WebSocket to `target`, retrying transient failures per the endpoint's
    /// [`RetryPolicy`](super::RetryPolicy).
    ///
    /// Each attempt resolves the host, connects TCP with `TCP_NODELAY`, performs TLS for
    /// `wss://` (rustls, `ring`, webpki roots unless [`tls_config`] was set) and the upgrade,
    /// all bounded by the connect timeout. Sends the configured auth header, `User-Agent`,
    /// optional `OpenAI-Organization`/`OpenAI-Project` and extra headers; never
    /// `OpenAI-Beta`, never `Sec-WebSocket-Extensions` (no permessage-deflate).
    ///
    /// Cancel-safe in the sense that dropping the future abandons the attempt and closes any
    /// half-open socket.
    ///
    /// [`tls_config`]: super::EndpointBuilder::tls_config
    pub async fn connect(&self, target: &Target) -> Result<Connection, ConnectError> {
        let url = self.url(target);
        let max_attempts = self.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match tokio::time::timeout(self.connect_timeout, self.attempt(&url)).await
            {
                Ok(result) => result,
                Err(_elapsed) => Err(ConnectErrorKind::Timeout(self.connect_timeout)),
            };
            match result {
                Ok((stream, mut info)) => {
                    info.attempts = attempt;
                    tracing::debug!(
                        url = %info.url,
                        request_id = info.request_id.as_deref().unwrap_or(""),
                        attempts = attempt,
                        "WebSocket connected"
                    );
                    return Ok(Connection::new(stream, info));
                }
                Err(kind) if kind.is_transient() && attempt < max_attempts => {
                    let delay = self.retry.delay(attempt, kind.retry_after());
                    tracing::warn!(%url, attempt, ?delay, error = %kind, "WebSocket connect failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(kind) => {
                    // The caller gets the error and decides how loudly to report it.
                    tracing::debug!(%url, attempts = attempt, error = %kind, "WebSocket connect failed");
                    return Err(ConnectError {
                        url,
                        attempts: attempt,
                        kind,
                    });
                }
            }
        }
    }

    async fn attempt(
        &self,
        url: &str,
    ) -> Result<(DefaultWebSocket, ConnectionInfo), ConnectErrorKind> {
        let mut request = url
            .into_client_request()
            .map_err(ConnectErrorKind::InvalidRequest)?;
        request
            .headers_mut()
            .extend(self.headers.iter().map(|(k, v)| (k.clone(), v.clone())));

        let uri = request.uri();
        let (host, port, tls) = host_port(uri)?;
        let tls = if tls {
            let config = match &self.tls {
                Some(config) => Arc::clone(config),
                None => default_tls_config().map_err(ConnectErrorKind::TlsConfig)?,
            };
            let server_name = ServerName::try_from(host.clone()).map_err(|_| {
                ConnectErrorKind::InvalidRequest(tungstenite::Error::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{host} is not a valid TLS server name"),
                )))
            })?;
            Some((config, server_name))
        } else {
            None
        };

        let tcp = connect_tcp(&host, port).await?;
        tcp.set_nodelay(true).map_err(ConnectErrorKind::Tcp)?;
        let tcp_nodelay = tcp.nodelay().ok();
        let peer_addr = tcp.peer_addr().ok();

        let socket = match tls {
            Some((config, server_name)) => ClientSocket::tls(tcp, config, server_name)
                .await
                .map_err(|e| ConnectErrorKind::Handshake(tungstenite::Error::Io(e)))?,
            None => ClientSocket::plain(tcp),
        };
        let (websocket, response) =
            SocketWebSocket::client_handshake(socket, request, Some(self.websocket))
                .await
                .map_err(handshake_error)?;

        let info = ConnectionInfo {
            url: url.to_owned(),
            request_id: request_id(response.headers()),
            attempts: 1,
            peer_addr,
            tcp_nodelay,
        };
        Ok((websocket, info))
    }
}

fn host_port(uri: &Uri) -> Result<(String, u16, bool), ConnectErrorKind> {
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => {
            return Err(ConnectErrorKind::InvalidRequest(tungstenite::Error::Url(
                tungstenite::error::UrlError::UnsupportedUrlScheme,
            )));
        }
    };
    let host = uri
        .host()
        .ok_or(ConnectErrorKind::InvalidRequest(tungstenite::Error::Url(
            tungstenite::error::UrlError::NoHostName,
        )))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok((host, port, tls))
}

/// Resolves `host` and connects to each address in turn, returning the last error.
async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, ConnectErrorKind> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ConnectErrorKind::Dns {
            host: host.to_owned(),
            source,
        })?;
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(socket) => return Ok(socket),
            Err(err) => last_error = Some(err),
        }
    }
    Err(match last_error {
        Some(err) => ConnectErrorKind::Tcp(err),
        None => ConnectErrorKind::Dns {
            host: host.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        },
    })
}

fn handshake_error(err: tungstenite::Error) -> ConnectErrorKind {
    match err {
        tungstenite::Error::Http(response) => {
            let headers = response.headers();
            let retry_after = headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = response
                .body()
                .as_deref()
                .map(body_snippet)
                .unwrap_or_default();
            ConnectErrorKind::Http(HttpRejection {
                status: response.status(),
                body,
                request_id: request_id(headers),
                retry_after,
            })
        }
        tungstenite::Error::Url(_) | tungstenite::Error::HttpFormat(_) => {
            ConnectErrorKind::InvalidRequest(err)
        }
        other => ConnectErrorKind::Handshake(other),
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn body_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= MAX_ERROR_BODY {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_config_builds_without_a_process_default_provider() {
        // Nothing in this test binary installs a default provider.
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        let config = default_tls_config().expect("ring supports the safe default versions");
        assert!(Arc::ptr_eq(&config, &default_tls_config().expect("cached")));
        assert!(
            rustls::crypto::CryptoProvider::get_default().is_none(),
            "must not install a global"
        );
    }

    #[test]
    fn transient_classification() {
        let http = |status: u16| {
            ConnectErrorKind::Http(HttpRejection {
                status: StatusCode::from_u16(status).expect("valid status"),
                body: String::new(),
                request_id: None,
                retry_after: None,
            })
        };
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(http(status).is_transient(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 422] {
            assert!(!http(status).is_transient(), "{status}");
        }
        let io = |kind| ConnectErrorKind::Tcp(io::Error::from(kind));
        assert!(io(io::ErrorKind::ConnectionRefused).is_transient());
        assert!(io(io::ErrorKind::ConnectionReset).is_transient());
        assert!(!io(io::ErrorKind::PermissionDenied).is_transient());
        assert!(ConnectErrorKind::Timeout(Duration::from_secs(1)).is_transient());
        let tls = ConnectErrorKind::Handshake(tungstenite::Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "invalid peer certificate",
        )));
        assert!(!tls.is_transient());
    }

    #[test]
    fn body_snippets_are_bounded_at_char_boundaries() {
        assert_eq!(body_snippet(b"  {\"error\":1}\n"), "{\"error\":1}");
        let long = "é".repeat(MAX_ERROR_BODY);
        let snippet = body_snippet(long.as_bytes());
        assert!(snippet.len() <= MAX_ERROR_BODY + '…'.len_utf8());
        assert!(snippet.ends_with('…'));
    }
}
