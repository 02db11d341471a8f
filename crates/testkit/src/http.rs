//! Minimal HTTP/1.1 plumbing: the accept loop the mocks share, and a tiny one-shot client
//! (plain `http://` only) that tests can use to poke a server.
//!
//! ```no_run
//! # async fn f() -> Result<(), testkit::http::HttpError> {
//! use testkit::http;
//! let r = http::post_form("http://127.0.0.1:8080/voice", &[], &[("CallSid", "CA…")]).await?;
//! assert_eq!(r.status, 200);
//! let r = http::get("http://127.0.0.1:8080/health").await?;
//! println!("{}", r.text());
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Errors from [`request`] and friends.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not an absolute `http://` URL.
    #[error("unsupported URL {0:?} (need http://host[:port]/path)")]
    InvalidUrl(String),
    /// TCP connect failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    /// Building the request failed (invalid header value, ...).
    #[error("invalid request: {0}")]
    Request(#[from] http::Error),
}

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl HttpResponse {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// A header value, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `Basic …` authorization header value.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Encodes form parameters as `application/x-www-form-urlencoded`.
pub fn encode_form<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k.as_ref(), v.as_ref());
    }
    ser.finish()
}

/// Splits an absolute `http://` URL into (`host:port`, host header, path-and-query).
pub(crate) fn split_url(url: &str) -> Option<(String, String, String)> {
    let uri: Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let auth = uri.authority()?;
    let port = auth.port_u16().unwrap_or(80);
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    Some((
        format!("{}:{port}", auth.host()),
        auth.as_str().to_string(),
        path,
    ))
}

/// Sends one request on a fresh connection and reads the whole response.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<HttpResponse, HttpError> {
    let (addr, host, path) = split_url(url).ok_or_else(|| HttpError::InvalidUrl(url.into()))?;
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|source| HttpError::Connect { addr, source })?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "test HTTP client connection ended with an error");
        }
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(body.into()))?)
        .await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// `GET url`.
pub async fn get(url: &str) -> Result<HttpResponse, HttpError> {
    request(Method::GET, url, &[], Bytes::new()).await
}

/// `POST url` with a form body (`Content-Type: application/x-www-form-urlencoded`) and extra
/// headers.
pub async fn post_form<K: AsRef<str>, V: AsRef<str>>(
    url: &str,
    headers: &[(&str, &str)],
    form: &[(K, V)],
) -> Result<HttpResponse, HttpError> {
    let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    request(Method::POST, url, &all, encode_form(form)).await
}

// ---------------------------------------------------------------------------------------------
// Server side (crate-internal)

pub(crate) type ServerResponse = Response<Full<Bytes>>;

/// Binds `127.0.0.1:0`.
pub(crate) async fn bind_local() -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Serves HTTP/1.1 (with upgrades) on `listener` until `cancel` fires.
pub(crate) fn spawn_server<H, F>(listener: TcpListener, cancel: CancellationToken, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = ServerResponse> + Send + 'static,
{
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                _ = cancel.cancelled() => break,
                r = listener.accept() => match r {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        tracing::debug!(error = %e, "mock accept failed");
                        // Back off briefly on resource exhaustion instead of spinning.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let handler = handler.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades();
                tokio::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "mock HTTP connection error");
                        }
                    }
                    _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
                }
            });
        }
    });
}

/// A response with a JSON body.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> ServerResponse {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
