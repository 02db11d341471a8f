//! Where and how to connect: base URL, authentication, headers, timeouts, retry policy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The base URL the official SDKs use when `OPENAI_BASE_URL` is unset.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// The default `User-Agent`: `phone-agent/<crate version>`.
pub const DEFAULT_USER_AGENT: &str = concat!("phone-agent/", env!("CARGO_PKG_VERSION"));

/// Default bound on one connection attempt (DNS + TCP + TLS + WebSocket handshake).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest incoming message and frame accepted (16 MiB).
///
/// `session.updated`, `conversation.item.retrieved` and `response.done` can carry large
/// instructions, tool schemas or transcripts; 16 MiB leaves ample room while bounding memory.
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// An API key (or Entra ID token): a secret.
///
/// `Debug` and `Display` print `[redacted]`, so a key cannot leak through logs or error
/// messages by accident. Read it with [`ApiKey::expose_secret`] only where it is sent.
///
/// ```
/// use openai_realtime::client::ApiKey;
/// let key = ApiKey::new("sk-very-secret");
/// assert_eq!(format!("{key:?} {key}"), "[redacted] [redacted]");
/// assert_eq!(key.expose_secret(), "sk-very-secret");
/// ```
#[derive(Clone)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(Arc::from(key.into()))
    }

    /// The key itself. Call this only to put it on the wire.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How the key is presented on the upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>` (OpenAI; also Azure with an Entra ID token).
    #[default]
    Bearer,
    /// `api-key: <key>` (Azure OpenAI resource keys).
    AzureApiKey,
}

/// Which API to open a WebSocket to, relative to the base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Realtime GA: `{base}/realtime?model=<model>` (the model is percent-encoded).
    Realtime {
        /// Model (OpenAI) or deployment name (Azure), e.g. `gpt-realtime`.
        model: String,
    },
    /// GPT-Live: `{base}/live/sessions`, no query (the model goes in `session.start`).
    Live,
    /// Any other path under the base URL, with query parameters (percent-encoded here), for
    /// example Azure's `?api-version=preview` fallback or a GPT-Live sideband `attach` path.
    Custom {
        /// Path relative to the base URL; a leading `/` is optional.
        path: String,
        /// Query parameters, in order.
        query: Vec<(String, String)>,
    },
}

impl Target {
    /// Realtime GA for `model`.
    pub fn realtime(model: impl Into<String>) -> Self {
        Self::Realtime {
            model: model.into(),
        }
    }

    /// GPT-Live.
    pub fn live() -> Self {
        Self::Live
    }
}

/// When and how often a failed connection attempt is repeated.
///
/// Only transient failures are retried: refused/reset/aborted connections, DNS failures,
/// timeouts, HTTP 408/429/5xx on the upgrade. Authentication, permission, not-found and
/// other client errors (400/401/403/404…) fail at once. The delay before attempt `n + 1` is
/// `min(max_delay, base_delay · 2^(n-1))`, optionally jittered down to half of that, and
/// never less than a `Retry-After` the server sent (still capped by `max_delay`). Delays use
/// tokio's clock, so tests can run them with paused time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; `1` disables retries. `0` is treated as `1`.
    pub max_attempts: u32,
    /// Delay after the first failure.
    pub base_delay: Duration,
    /// Upper bound for any delay.
    pub max_delay: Duration,
    /// Randomize each delay within `[d/2, d]` to spread reconnect storms.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// 4 attempts, 250 ms doubling up to 4 s, jittered.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// A single attempt, no retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay after failed attempt number `attempt` (1-based), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        self.base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay)
    }

    /// The delay actually slept after failed attempt `attempt`, given an optional
    /// server-requested `Retry-After`.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let mut delay = self.backoff(attempt);
        if self.jitter && !delay.is_zero() {
            // Equal jitter: half fixed, half random.
            let half = delay / 2;
            let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
            let random = if nanos == 0 {
                0
            } else {
                random_u64() % (nanos + 1)
            };
            delay = half + Duration::from_nanos(random);
        }
        match retry_after {
            Some(after) => delay.max(after.min(self.max_delay)),
            None => delay,
        }
    }
}

/// A per-call random number without a dependency: `RandomState` is seeded randomly per
/// process and its keys advance per instance.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    hasher.finish()
}

/// A configuration error found by [`EndpointBuilder::build`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The base URL is not an absolute `http`, `https`, `ws` or `wss` URL without query or
    /// fragment.
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header name or value is not valid HTTP. The value is never included.
    #[error("invalid value for header {name:?}")]
    InvalidHeader {
        /// The header name as given.
        name: String,
    },
    /// The header is managed by the client (WebSocket handshake, auth) or must never be sent
    /// (`OpenAI-Beta`: the GA interface rejects beta-shaped sessions).
    #[error("header {name:?} cannot be set as an extra header")]
    ReservedHeader {
        /// The header name as given.
        name: String,
    },
    /// A required variable is missing from the configuration source.
    #[error("{name} is not set")]
    MissingVariable {
        /// The variable name.
        name: &'static str,
    },
}

/// Builds an [`Endpoint`]; see [`Endpoint::builder`].
#[derive(Clone)]
pub struct EndpointBuilder {
    api_key: ApiKey,
    auth: AuthStyle,
    base_url: Option<String>,
    organization: Option<String>,
    project: Option<String>,
    user_agent: Option<String>,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    connect_timeout: Duration,
    retry: RetryPolicy,
    websocket: Option<WebSocketConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

// Debug prints header names only: extra header values may be credentials.
impl fmt::Debug for EndpointBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointBuilder")
            .field("api_key", &self.api_key)
            .field("auth", &self.auth)
            .field("base_url", &self.base_url)
            .field("organization", &self.organization)
            .field("project", &self.project)
            .field("user_agent", &self.user_agent)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .field("query", &self.query)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("custom_tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl EndpointBuilder {
    /// Reads the official SDKs' variables from an injected source (for example
    /// `|name| std::env::var(name).ok()`): `OPENAI_API_KEY` (required), `OPENAI_BASE_URL`,
    /// `OPENAI_ORG_ID`, `OPENAI_PROJECT_ID`. Empty values count as unset.
    ///
    /// ```
    /// use openai_realtime::client::EndpointBuilder;
    /// let vars = |name: &str| match name {
    ///     "OPENAI_API_KEY" => Some("sk-test".to_owned()),
    ///     "OPENAI_BASE_URL" => Some("http://127.0.0.1:8080/v1/".to_owned()),
    ///     _ => None,
    /// };
    /// let endpoint = EndpointBuilder::from_vars(vars)?.build()?;
    /// assert_eq!(endpoint.base_url(), "ws://127.0.0.1:8080/v1");
    /// # Ok::<(), openai_realtime::client::EndpointError>(())
    /// ```
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, EndpointError> {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let key = var("OPENAI_API_KEY").ok_or(EndpointError::MissingVariable {
            name: "OPENAI_API_KEY",
        })?;
        let mut builder = Endpoint::builder(ApiKey::new(key));
        builder.base_url = var("OPENAI_BASE_URL");
        builder.organization = var("OPENAI_ORG_ID");
        builder.project = var("OPENAI_PROJECT_ID");
        Ok(builder)
    }

    /// Base URL as in `OPENAI_BASE_URL` (default [`DEFAULT_BASE_URL`]). `https` becomes
    /// `wss`, `http` becomes `ws`; `ws`/`wss` are kept; a trailing `/` is ignored. Azure:
    /// `https://<resource>.openai.azure.com/openai/v1`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// How the key is sent (default `Authorization: Bearer`).
    pub fn auth_style(mut self, style: AuthStyle) -> Self {
        self.auth = style;
        self
    }

    /// Sends `OpenAI-Organization`.
    pub fn organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = Some(organization.into());
        self
    }

    /// Sends `OpenAI-Project`.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Replaces the `User-Agent` (default [`DEFAULT_USER_AGENT`]).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Adds a header to every upgrade request. Handshake, auth, `User-Agent`,
    /// organization/project and `OpenAI-Beta` headers are refused by [`build`](Self::build).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a query parameter to every URL (after the target's own parameters).
    pub fn query_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Bound on each attempt: DNS, TCP, TLS and the WebSocket handshake together
    /// (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Retry policy (default [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Replaces the WebSocket configuration. The default limits messages and frames to
    /// [`MAX_MESSAGE_SIZE`] and keeps tungstenite's buffer sizes.
    pub fn websocket_config(mut self, config: WebSocketConfig) -> Self {
        self.websocket = Some(config);
        self
    }

    /// Replaces the TLS configuration (for example a platform verifier or a private CA).
    /// The default uses the `ring` provider explicitly and Mozilla's roots (webpki-roots).
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Validates everything and builds the endpoint.
    pub fn build(self) -> Result<Endpoint, EndpointError> {
        let base = normalize_base_url(self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))?;

        let mut headers = HeaderMap::new();
        let user_agent = self.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT);
        headers.insert(
            http::header::USER_AGENT,
            header_value("User-Agent", user_agent)?,
        );
        if let Some(org) = &self.organization {
            headers.insert(
                "openai-organization",
                header_value("OpenAI-Organization", org)?,
            );
        }
        if let Some(project) = &self.project {
            headers.insert("openai-project", header_value("OpenAI-Project", project)?);
        }
        for (name, value) in &self.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| EndpointError::InvalidHeader { name: name.clone() })?;
            if is_reserved(&header_name) {
                return Err(EndpointError::ReservedHeader { name: name.clone() });
            }
            let mut value = header_value(name, value)?;
            // Extra headers may carry credentials; keep them out of `Debug` output.
            value.set_sensitive(true);
            headers.append(header_name, value);
        }

        let (auth_name, auth_value) = match self.auth {
            AuthStyle::Bearer => (
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.api_key.expose_secret()),
            ),
            AuthStyle::AzureApiKey => (
                HeaderName::from_static("api-key"),
                self.api_key.expose_secret().to_owned(),
            ),
        };
        let mut auth_value =
            HeaderValue::try_from(auth_value).map_err(|_| EndpointError::InvalidHeader {
                name: auth_name.as_str().to_owned(),
            })?;
        auth_value.set_sensitive(true);
        headers.insert(auth_name, auth_value);

        let websocket = self.websocket.unwrap_or_else(|| {
            WebSocketConfig::default()
                .max_message_size(Some(MAX_MESSAGE_SIZE))
                .max_frame_size(Some(MAX_MESSAGE_SIZE))
        });

        Ok(Endpoint {
            base,
            auth: self.auth,
            headers,
            query: self.query,
            connect_timeout: self.connect_timeout,
            retry: self.retry,
            websocket,
            tls: self.tls,
        })
    }
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, EndpointError> {
    HeaderValue::from_str(value).map_err(|_| EndpointError::InvalidHeader {
        name: name.to_owned(),
    })
}

fn is_reserved(name: &HeaderName) -> bool {
    const RESERVED: &[&str] = &[
        "host",
        "connection",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "authorization",
        "api-key",
        "user-agent",
        "openai-organization",
        "openai-project",
        "openai-beta",
    ];
    RESERVED.contains(&name.as_str())
}

/// `http(s)://host/path/` → `ws(s)://host/path`.
fn normalize_base_url(url: &str) -> Result<String, EndpointError> {
    let invalid = |reason| EndpointError::InvalidBaseUrl {
        url: url.to_owned(),
        reason,
    };
    let trimmed = url.trim();
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| invalid("missing scheme"))?;
    let ws_scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" | "wss" => "wss",
        "http" | "ws" => "ws",
        _ => return Err(invalid("scheme must be http, https, ws or wss")),
    };
    if rest.contains(['?', '#']) {
        return Err(invalid("query and fragment are not allowed"));
    }
    let rest = rest.trim_end_matches('/');
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(invalid("missing host"));
    }
    let base = format!("{ws_scheme}://{rest}");
    base.parse::<http::Uri>()
        .map_err(|_| invalid("not a valid URL"))?;
    Ok(base)
}

/// A validated connection target: base URL, headers (auth included), timeouts, retry,
/// WebSocket and TLS settings. Cheap to clone; share one per process.
///
/// `Debug` never prints the key or extra header values.
#[derive(Clone)]
pub struct Endpoint {
    pub(crate) base: String,
    pub(crate) auth: AuthStyle,
    pub(crate) headers: HeaderMap,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) connect_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) websocket: WebSocketConfig,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &self.base)
            .field("auth", &self.auth)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("query", &self.query)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("custom_tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Starts a builder with the given key and every default: OpenAI's base URL, `Bearer`
    /// auth, [`DEFAULT_USER_AGENT`], [`DEFAULT_CONNECT_TIMEOUT`], [`RetryPolicy::default`].
    pub fn builder(api_key: ApiKey) -> EndpointBuilder {
        EndpointBuilder {
            api_key,
            auth: AuthStyle::Bearer,
            base_url: None,
            organization: None,
            project: None,
            user_agent: None,
            headers: Vec::new(),
            query: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: RetryPolicy::default(),
            websocket: None,
            tls: None,
        }
    }

    /// The normalized WebSocket base URL (`ws://` or `wss://`, no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// The per-attempt connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The WebSocket URL for `target`.
    ///
    /// ```
    /// use openai_realtime::client::{ApiKey, Endpoint, Target};
    /// let endpoint = Endpoint::builder(ApiKey::new("k")).build()?;
    /// assert_eq!(
    ///     endpoint.url(&Target::realtime("gpt-realtime")),
    ///     "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    /// );
    /// assert_eq!(endpoint.url(&Target::live()), "wss://api.openai.com/v1/live/sessions");
    /// # Ok::<(), openai_realtime::client::EndpointError>(())
    /// ```
    pub fn url(&self, target: &Target) -> String {
        let mut url = self.base.clone();
        let mut first = true;
        let mut push_param = |url: &mut String, name: &str, value: &str| {
            url.push(if first { '?' } else { '&' });
            first = false;
            percent_encode_into(url, name);
            url.push('=');
            percent_encode_into(url, value);
        };
        match target {
            Target::Realtime { model } => {
                url.push_str("/realtime");
                push_param(&mut url, "model", model);
            }
            Target::Live => url.push_str("/live/sessions"),
            Target::Custom { path, query } => {
                let path = path.trim_start_matches('/');
                if !path.is_empty() {
                    url.push('/');
                    url.push_str(path);
                }
                for (name, value) in query {
                    push_param(&mut url, name, value);
                }
            }
        }
        for (name, value) in &self.query {
            push_param(&mut url, name, value);
        }
        url
    }
}

/// Percent-encodes everything except RFC 3986 unreserved characters.
fn percent_encode_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in value.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(base: &str) -> Endpoint {
        Endpoint::builder(ApiKey::new("sk-secret"))
            .base_url(base)
            .build()
            .expect("valid base URL")
    }

    #[test]
    fn base_url_follows_sdk_semantics() {
        for (given, expected) in [
            ("https://api.openai.com/v1", "wss://api.openai.com/v1"),
            ("https://api.openai.com/v1/", "wss://api.openai.com/v1"),
            ("http://127.0.0.1:9000/v1//", "ws://127.0.0.1:9000/v1"),
            (
                "HTTPS://res.openai.azure.com/openai/v1",
                "wss://res.openai.azure.com/openai/v1",
            ),
            ("wss://proxy.example/v1", "wss://proxy.example/v1"),
            ("ws://[::1]:8080", "ws://[::1]:8080"),
        ] {
            assert_eq!(endpoint(given).base_url(), expected, "{given}");
        }
        let default = Endpoint::builder(ApiKey::new("k"))
            .build()
            .expect("default base URL");
        assert_eq!(default.base_url(), "wss://api.openai.com/v1");
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for bad in [
            "api.openai.com/v1",
            "ftp://x/v1",
            "https:///v1",
            "https://h/v1?x=1",
            "https://h/#f",
        ] {
            let result = Endpoint::builder(ApiKey::new("k")).base_url(bad).build();
            assert!(
                matches!(result, Err(EndpointError::InvalidBaseUrl { .. })),
                "{bad}: {result:?}"
            );
        }
    }

    #[test]
    fn urls_for_each_target() {
        let e = endpoint("http://localhost:1234/v1/");
        assert_eq!(
            e.url(&Target::realtime("gpt-realtime")),
            "ws://localhost:1234/v1/realtime?model=gpt-realtime"
        );
        assert_eq!(
            e.url(&Target::realtime("my model/v2&x=1")),
            "ws://localhost:1234/v1/realtime?model=my%20model%2Fv2%26x%3D1"
        );
        assert_eq!(e.url(&Target::Live), "ws://localhost:1234/v1/live/sessions");
        let custom = Target::Custom {
            path: "/live/sessions/live_1/attach".into(),
            query: vec![("graceful_close".into(), "true".into())],
        };
        assert_eq!(
            e.url(&custom),
            "ws://localhost:1234/v1/live/sessions/live_1/attach?graceful_close=true"
        );

        let azure = Endpoint::builder(ApiKey::new("k"))
            .base_url("https://res.openai.azure.com/openai/v1")
            .query_param("api-version", "preview")
            .build()
            .expect("valid");
        assert_eq!(
            azure.url(&Target::Live),
            "wss://res.openai.azure.com/openai/v1/live/sessions?api-version=preview"
        );
        assert_eq!(
            azure.url(&Target::realtime("dep")),
            "wss://res.openai.azure.com/openai/v1/realtime?model=dep&api-version=preview"
        );
    }

    #[test]
    fn auth_header_styles() {
        let bearer = endpoint("https://h/v1");
        assert_eq!(
            bearer
                .headers
                .get("authorization")
                .map(HeaderValue::as_bytes),
            Some(&b"Bearer sk-secret"[..])
        );
        assert!(bearer.headers.get("api-key").is_none());
        let azure = Endpoint::builder(ApiKey::new("az-key"))
            .auth_style(AuthStyle::AzureApiKey)
            .build()
            .expect("valid");
        assert_eq!(
            azure.headers.get("api-key").map(HeaderValue::as_bytes),
            Some(&b"az-key"[..])
        );
        assert!(azure.headers.get("authorization").is_none());
        assert_eq!(
            azure.headers.get("user-agent").map(HeaderValue::as_bytes),
            Some(DEFAULT_USER_AGENT.as_bytes())
        );
    }

    #[test]
    fn reserved_and_invalid_headers_are_refused() {
        for name in [
            "OpenAI-Beta",
            "Authorization",
            "api-key",
            "Sec-WebSocket-Key",
            "Host",
            "user-agent",
        ] {
            let result = Endpoint::builder(ApiKey::new("k"))
                .header(name, "x")
                .build();
            assert!(
                matches!(result, Err(EndpointError::ReservedHeader { .. })),
                "{name}: {result:?}"
            );
        }
        let result = Endpoint::builder(ApiKey::new("k"))
            .header("X-Trace", "bad\nvalue")
            .build();
        assert!(
            matches!(result, Err(EndpointError::InvalidHeader { .. })),
            "{result:?}"
        );
        let result = Endpoint::builder(ApiKey::new("bad\nkey")).build();
        match result {
            Err(err @ EndpointError::InvalidHeader { .. }) => {
                assert!(!err.to_string().contains("bad"))
            }
            other => panic!("expected InvalidHeader, got {other:?}"),
        }
    }

    #[test]
    fn from_vars_reads_sdk_variables() {
        let vars = |name: &str| {
            match name {
                "OPENAI_API_KEY" => Some("sk-env"),
                "OPENAI_BASE_URL" => Some(""),
                "OPENAI_ORG_ID" => Some("org_1"),
                "OPENAI_PROJECT_ID" => Some("proj_1"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let e = EndpointBuilder::from_vars(vars)
            .expect("key present")
            .build()
            .expect("valid");
        assert_eq!(e.base_url(), "wss://api.openai.com/v1");
        assert_eq!(
            e.headers
                .get("openai-organization")
                .map(HeaderValue::as_bytes),
            Some(&b"org_1"[..])
        );
        assert_eq!(
            e.headers.get("openai-project").map(HeaderValue::as_bytes),
            Some(&b"proj_1"[..])
        );
        let missing = EndpointBuilder::from_vars(|_| None);
        assert!(matches!(
            missing,
            Err(EndpointError::MissingVariable {
                name: "OPENAI_API_KEY"
            })
        ));
    }

    #[test]
    fn debug_output_never_contains_secrets() {
        let builder = Endpoint::builder(ApiKey::new("sk-super-secret"))
            .header("X-Custom-Token", "tok-hidden")
            .organization("org_visible");
        let rendered = format!("{builder:?} {:?}", builder.clone().build().expect("valid"));
        assert!(!rendered.contains("sk-super-secret"), "{rendered}");
        assert!(!rendered.contains("tok-hidden"), "{rendered}");
        assert!(
            rendered.contains("x-custom-token") || rendered.contains("X-Custom-Token"),
            "{rendered}"
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            jitter: false,
        };
        let delays: Vec<_> = (1..=6).map(|n| policy.delay(n, None).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(
            policy.delay(1, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(60))),
            Duration::from_millis(1000)
        );
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(1000));
        let jittered = RetryPolicy {
            jitter: true,
            ..policy
        };
        for n in 1..=6 {
            let d = jittered.delay(n, None);
            let full = policy.backoff(n);
            assert!(d >= full / 2 && d <= full, "attempt {n}: {d:?} vs {full:?}");
        }
    }
}
