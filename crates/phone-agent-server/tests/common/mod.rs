//! Shared helpers for the server's integration tests: start a server on `127.0.0.1:0` with a
//! configuration map, and a minimal Twilio Media Streams client.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use phone_agent_server::config::Config;
use phone_agent_server::{Server, ServerHandle};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

/// Twilio's `connected` message.
pub fn connected_message() -> Value {
    json!({"event":"connected","protocol":"Call","version":"1.0.0"})
}

/// Twilio's `start` message (sequence number 1) with these custom parameters.
pub fn start_message(stream_sid: &str, call_sid: &str, parameters: &[(String, String)]) -> Value {
    let params: serde_json::Map<String, Value> = parameters
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream_sid,
        "start": {
            "streamSid": stream_sid,
            "accountSid": "AC00000000000000000000000000000001",
            "callSid": call_sid,
            "tracks": ["inbound"],
            "customParameters": params,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        }
    })
}

/// Upper bound for any single wait in a test (a hang fails instead of blocking forever).
pub const WAIT: Duration = Duration::from_secs(10);

/// Test auth token.
pub const AUTH_TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// A running server and its base URL.
pub struct TestServer {
    pub handle: ServerHandle,
    pub addr: SocketAddr,
    pub base: String,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /metrics` on the server's separate metrics listener.
    pub fn metrics_url(&self) -> String {
        let addr = self.handle.metrics_addr().expect("metrics are served");
        format!("http://{addr}/metrics")
    }

    /// The media URL as written in the TwiML (and signed by Twilio).
    pub fn media_url(&self) -> String {
        format!("ws://{}/media", self.addr)
    }
}

/// Starts a server with `PUBLIC_URL` = its own address plus `vars`. Metrics are served on a
/// free port; a test that runs a billed back end without `TWILIO_AUTH_TOKEN` gets
/// `twilio.danger_allow_unsigned_requests` (these tests check signatures separately).
pub async fn start(vars: &[(&str, &str)]) -> TestServer {
    start_with_tools(vars, None).await
}

/// [`start`] with tools offered to the agent.
pub async fn start_with_tools(
    vars: &[(&str, &str)],
    tools: Option<std::sync::Arc<dyn bridge_core::tools::ToolExecutor>>,
) -> TestServer {
    start_with(vars, tools, None).await
}

/// [`start`] with tools and call control.
pub async fn start_with(
    vars: &[(&str, &str)],
    tools: Option<std::sync::Arc<dyn bridge_core::tools::ToolExecutor>>,
    control: Option<std::sync::Arc<dyn bridge_core::driver::CallControl>>,
) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let base = format!("http://{addr}");
    // Call records off unless a test turns them on (tests write only to temp dirs).
    let mut env: HashMap<String, String> = HashMap::from([
        ("PUBLIC_URL".to_string(), base.clone()),
        ("PHONE_AGENT_DATABASE__URL".to_string(), "off".to_string()),
        // These tests count agent connections per stream; pre-warming (on by default, covered
        // by tests/prewarm.rs and the e2e tests) is opted into where a test wants it.
        (
            "PHONE_AGENT_AGENT__PREWARM".to_string(),
            "false".to_string(),
        ),
        (
            "PHONE_AGENT_METRICS__BIND".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        // Tests that shut a server down wait for it to stop listening.
        (
            "PHONE_AGENT_SERVER__SHUTDOWN_NOTICE_SECS".to_string(),
            "0".to_string(),
        ),
    ]);
    if !vars.iter().any(|(k, _)| *k == "TWILIO_AUTH_TOKEN") {
        env.insert(
            "PHONE_AGENT_TWILIO__DANGER_ALLOW_UNSIGNED_REQUESTS".to_string(),
            "true".to_string(),
        );
    }
    for (k, v) in vars {
        env.insert((*k).to_string(), (*v).to_string());
    }
    let config = Config::from_env_map(&env).expect("valid test configuration");
    let mut server = Server::new(config);
    if let Some(tools) = tools {
        server = server.with_tools(tools);
    }
    if let Some(control) = control {
        server = server.with_call_control(control);
    }
    let handle = server.serve(listener).expect("server starts");
    TestServer { handle, addr, base }
}

/// A unique temporary file path under the test target directory.
pub fn temp_path(name: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("phone-agent-server-tests");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir.join(format!("{}-{n}-{name}", std::process::id()))
}

/// Writes a prompt file and returns its path.
pub fn prompt_file(text: &str) -> PathBuf {
    let path = temp_path("prompt.md");
    std::fs::write(&path, text).expect("write prompt");
    path
}

/// The form Twilio posts to `/voice`.
pub fn voice_form(call_sid: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "AccountSid",
            "AC00000000000000000000000000000001".to_string(),
        ),
        ("ApiVersion", "2010-04-01".to_string()),
        ("CallSid", call_sid.to_string()),
        ("CallStatus", "ringing".to_string()),
        ("Direction", "inbound".to_string()),
        ("From", "+14155551234".to_string()),
        ("To", "+15005550006".to_string()),
    ]
}

/// POSTs the voice webhook (signed when `token` is given) and returns status and body.
pub async fn post_voice(server: &TestServer, call_sid: &str, token: Option<&str>) -> (u16, String) {
    let form = voice_form(call_sid);
    let url = server.url("/voice");
    let signature = token.map(|t| testkit::twilio::signature::sign(t, &url, &form));
    let headers: Vec<(&str, &str)> = signature
        .iter()
        .map(|s| ("x-twilio-signature", s.as_str()))
        .collect();
    let response = testkit::http::post_form(&url, &headers, &form)
        .await
        .expect("POST /voice");
    (response.status, response.text())
}

/// The `<Stream>` parameters of a TwiML answer.
pub fn stream_parameters(twiml: &str) -> Vec<(String, String)> {
    let doc = testkit::twilio::twiml::Twiml::parse(twiml).expect("valid TwiML");
    doc.stream()
        .expect("a <Connect><Stream>")
        .parameters
        .clone()
}

/// The `<Stream url>` of a TwiML answer.
pub fn stream_url(twiml: &str) -> String {
    let doc = testkit::twilio::twiml::Twiml::parse(twiml).expect("valid TwiML");
    doc.stream().expect("a <Connect><Stream>").url.clone()
}

/// The path of a `ws(s)://host/path` URL.
pub fn stream_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/')
        .map_or("/".to_owned(), |i| rest[i..].to_owned())
}

/// A minimal Twilio Media Streams client (the Twilio side of `/media`).
pub struct FakeTwilio {
    ws: WebSocketStream<TcpStream>,
    pub stream_sid: String,
    /// Audio received from the server (decoded μ-law), in order.
    pub received_audio: Vec<u8>,
    /// Every message received from the server.
    pub received: Vec<Value>,
    /// Echo marks back at once (as if the audio had played instantly).
    pub echo_marks: bool,
    sequence: u64,
    chunk: u64,
}

impl FakeTwilio {
    /// Opens `/media`, with `X-Twilio-Signature` when `signature` is given.
    pub async fn connect(
        server: &TestServer,
        signature: Option<&str>,
    ) -> Result<Self, tungstenite::Error> {
        Self::connect_to(server.addr, signature).await
    }

    /// Opens the stream URL of a `/voice` answer (its path, on the server's address), signed
    /// with [`AUTH_TOKEN`] over that URL when `signed`.
    pub async fn open(
        server: &TestServer,
        twiml: &str,
        signed: bool,
    ) -> Result<Self, tungstenite::Error> {
        Self::open_at(server.addr, twiml, signed).await
    }

    /// [`Self::open`] against `addr`.
    pub async fn open_at(
        addr: SocketAddr,
        twiml: &str,
        signed: bool,
    ) -> Result<Self, tungstenite::Error> {
        let url = stream_url(twiml);
        let path = stream_path(&url);
        let sig =
            signed.then(|| testkit::twilio::signature::sign::<&str, &str>(AUTH_TOKEN, &url, &[]));
        Self::connect_path(addr, &path, sig.as_deref()).await
    }

    /// Opens `ws://addr/media`.
    pub async fn connect_to(
        addr: SocketAddr,
        signature: Option<&str>,
    ) -> Result<Self, tungstenite::Error> {
        Self::connect_path(addr, "/media", signature).await
    }

    /// Opens `ws://addr{path}`.
    pub async fn connect_path(
        addr: SocketAddr,
        path: &str,
        signature: Option<&str>,
    ) -> Result<Self, tungstenite::Error> {
        let mut request = format!("ws://{addr}{path}").into_client_request()?;
        if let Some(sig) = signature {
            request
                .headers_mut()
                .insert("x-twilio-signature", sig.parse().expect("header value"));
        }
        let tcp = TcpStream::connect(addr).await?;
        let (ws, _) = tokio_tungstenite::client_async(request, tcp).await?;
        Ok(Self::from_websocket(ws))
    }

    /// Wraps a client WebSocket opened some other way.
    pub fn from_websocket(ws: WebSocketStream<TcpStream>) -> Self {
        FakeTwilio {
            ws,
            stream_sid: testkit::sid::new_sid("MZ"),
            received_audio: Vec::new(),
            received: Vec::new(),
            echo_marks: true,
            sequence: 0,
            chunk: 0,
        }
    }

    /// Opens `/media` signed with [`AUTH_TOKEN`].
    pub async fn connect_signed(server: &TestServer) -> Self {
        let sig =
            testkit::twilio::signature::sign::<&str, &str>(AUTH_TOKEN, &server.media_url(), &[]);
        Self::connect(server, Some(&sig))
            .await
            .expect("signed upgrade accepted")
    }

    async fn send(&mut self, value: Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .await
            .expect("send to server");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("send to server");
    }

    /// Sends `connected` and `start` with these custom parameters.
    pub async fn start(&mut self, call_sid: &str, parameters: &[(String, String)]) {
        self.send(connected_message()).await;
        self.sequence = 1;
        let start = start_message(&self.stream_sid, call_sid, parameters);
        self.send(start).await;
    }

    /// Sends caller audio in 20 ms frames.
    pub async fn send_audio(&mut self, mulaw: &[u8]) {
        for frame in mulaw.chunks(160) {
            self.sequence += 1;
            self.chunk += 1;
            let payload = base64::engine::general_purpose::STANDARD.encode(frame);
            let msg = json!({
                "event": "media",
                "sequenceNumber": self.sequence.to_string(),
                "streamSid": self.stream_sid,
                "media": {"track": "inbound", "chunk": self.chunk.to_string(),
                          "timestamp": ((self.chunk - 1) * 20).to_string(), "payload": payload}
            });
            self.send(msg).await;
        }
    }

    /// Sends `stop`.
    pub async fn stop(&mut self, call_sid: &str) {
        self.sequence += 1;
        let msg = json!({
            "event": "stop",
            "sequenceNumber": self.sequence.to_string(),
            "streamSid": self.stream_sid,
            "stop": {"accountSid": "AC00000000000000000000000000000001", "callSid": call_sid}
        });
        self.send(msg).await;
    }

    /// Reads the next server message (`None` once the server closed the socket). Media is
    /// collected into `received_audio`; marks are echoed when `echo_marks` is set.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(text)) => {
                    let value: Value =
                        serde_json::from_str(text.as_str()).expect("server sends JSON");
                    match value["event"].as_str() {
                        Some("media") => {
                            let payload = value["media"]["payload"].as_str().expect("payload");
                            let bytes = base64::engine::general_purpose::STANDARD
                                .decode(payload)
                                .expect("server sends base64");
                            self.received_audio.extend_from_slice(&bytes);
                        }
                        Some("mark") if self.echo_marks => {
                            self.sequence += 1;
                            let echo = json!({
                                "event": "mark",
                                "sequenceNumber": self.sequence.to_string(),
                                "streamSid": self.stream_sid,
                                "mark": {"name": value["mark"]["name"]}
                            });
                            // Best effort: the server may be closing the stream.
                            let _ = self.ws.send(Message::text(echo.to_string())).await;
                        }
                        _ => {}
                    }
                    self.received.push(value.clone());
                    return Some(value);
                }
                Ok(Message::Close(_)) => continue,
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Reads until `predicate` holds for the received audio, or the socket closes.
    pub async fn read_until_audio(&mut self, mut predicate: impl FnMut(&[u8]) -> bool) -> bool {
        let read = async {
            while !predicate(&self.received_audio) {
                if self.next().await.is_none() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(WAIT, read).await.unwrap_or(false)
    }

    /// Reads until the server closes the socket; true if it did within [`WAIT`].
    pub async fn read_until_closed(&mut self) -> bool {
        let read = async { while self.next().await.is_some() {} };
        tokio::time::timeout(WAIT, read).await.is_ok()
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
