//! The reference relay: a measuring stick for `cargo xtask bench --reference-relay`, **not a
//! product**.
//!
//! The least a Twilio ↔ OpenAI Realtime relay can do, written the plain way with tokio and
//! tokio-tungstenite only (plus serde_json to read the peers' JSON): no engine, no
//! configuration, no store, no metrics, no logs, no signature checks, no timers. It runs as
//! its own process (`xtask reference-relay`, the release build of xtask) under exactly the load
//! the server gets, so the server's CPU, memory and latency can be compared with it from one
//! sitting (issue 11: the server's CPU per call-second at or below this relay's).
//!
//! * `POST /voice` → TwiML `<Connect><Stream url="wss://PUBLIC_HOST/media"/>`; `GET /health` →
//!   200; a WebSocket upgrade on `/media` is the call's Media Stream. HTTP/1.1 by hand, one
//!   request per connection.
//! * On the stream's `start`: connect `OPENAI_BASE_URL/realtime` (bearer key), send one
//!   `session.update` (μ-law both ways, server VAD with `interrupt_response`, the prompt of
//!   `PROMPT_PATH` with `{{call_sid}}` replaced) and one `response.create` (the greeting).
//! * Then one task per call relays: Twilio `media` → `input_audio_buffer.append` (the base64
//!   payload copied as is); `response.output_audio.delta` → `media` + a `mark` (echoes are
//!   read and ignored); `input_audio_buffer.speech_started` → `clear` (no truncation: the
//!   relay does not track what was heard). Every other message is read and dropped. Twilio's
//!   `stop` or either side closing ends the call.
//!
//! Like the server, it keeps tungstenite's read buffers small (2 KiB Twilio, 4 KiB agent).
//! The environment is the server's (the bench passes both the same variables): `OPENAI_BASE_URL`,
//! `OPENAI_API_KEY`, `PUBLIC_URL`, `PROMPT_PATH`. It binds `127.0.0.1:0`, prints one JSON line
//! with `local_addr` on stdout (as the server's log does) and exits 0 on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// tungstenite's read buffers (its default is 128 KiB, zero-filled before every read): the
/// sizes the server uses, so memory per call compares like with like.
const TWILIO_READ_BUFFER: usize = 2 * 1024;
const AGENT_READ_BUFFER: usize = 4 * 1024;

/// What every call of the relay needs.
#[derive(Debug, Clone)]
pub(crate) struct RelayConfig {
    /// `ws://host:port/v1/realtime?model=gpt-realtime`.
    pub(crate) agent_url: String,
    /// `authorization` header value.
    pub(crate) bearer: String,
    /// The host the TwiML's stream URL names.
    pub(crate) public_host: String,
    /// The instructions, with `{{call_sid}}` still in them.
    pub(crate) prompt: String,
}

impl RelayConfig {
    /// From the environment the bench gives the server.
    pub(crate) fn from_env() -> anyhow::Result<RelayConfig> {
        let var = |k: &str| std::env::var(k).with_context(|| format!("{k} is not set"));
        let base = var("OPENAI_BASE_URL")?;
        let base = base
            .strip_prefix("http://")
            .map(|rest| format!("ws://{rest}"))
            .unwrap_or(base);
        let public = var("PUBLIC_URL")?;
        let public_host = public
            .split_once("://")
            .map_or(public.as_str(), |(_, rest)| rest)
            .trim_end_matches('/')
            .to_owned();
        let prompt_path = var("PROMPT_PATH")?;
        let prompt = std::fs::read_to_string(&prompt_path)
            .with_context(|| format!("reading {prompt_path}"))?;
        Ok(RelayConfig {
            agent_url: format!("{}/realtime?model=gpt-realtime", base.trim_end_matches('/')),
            bearer: format!("Bearer {}", var("OPENAI_API_KEY")?),
            public_host,
            prompt,
        })
    }
}

/// `xtask reference-relay`: serves until SIGTERM (then exits 0).
pub(crate) fn main() -> anyhow::Result<()> {
    let config = Arc::new(RelayConfig::from_env()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        println!(
            r#"{{"level":"INFO","message":"reference relay listening","local_addr":"{addr}"}}"#
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            () = serve(listener, config) => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })?;
    // Open calls are simply dropped with the process.
    std::process::exit(0)
}

/// Accepts connections until the listener fails for good.
pub(crate) async fn serve(listener: TcpListener, config: Arc<RelayConfig>) {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // EMFILE and friends: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let _ = connection(tcp, &config).await;
        });
    }
}

/// One connection: a Media Stream upgrade, or one plain HTTP request.
async fn connection(mut tcp: TcpStream, config: &RelayConfig) -> std::io::Result<()> {
    let mut peeked = [0u8; 11];
    let mut n = 0;
    while n < peeked.len() {
        n = tcp.peek(&mut peeked).await?;
        if n == 0 {
            return Ok(());
        }
        if !b"GET /media ".starts_with(&peeked[..n]) {
            break;
        }
    }
    if peeked[..n] == *b"GET /media " {
        let config_ws = WebSocketConfig::default().read_buffer_size(TWILIO_READ_BUFFER);
        if let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config_ws)).await {
            call(ws, config).await;
        }
        return Ok(());
    }
    // Plain HTTP/1.1: the head, then `content-length` bytes of body (ignored).
    let mut buf = Vec::with_capacity(2048);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 || tcp.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        if tcp.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
    let (status, content_type, body) = if head.starts_with("POST /voice") {
        let twiml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://{}/media"/></Connect></Response>"#,
            config.public_host
        );
        ("200 OK", "text/xml", twiml)
    } else if head.starts_with("GET /health") {
        ("200 OK", "text/plain", "ok".to_owned())
    } else {
        ("404 Not Found", "text/plain", "not found".to_owned())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(response.as_bytes()).await?;
    tcp.shutdown().await
}

/// A Twilio Media Streams message (only what the relay reads).
#[derive(Deserialize)]
struct TwilioIn<'a> {
    event: &'a str,
    #[serde(borrow, default)]
    media: Option<Payload<'a>>,
    #[serde(borrow, default)]
    start: Option<Start<'a>>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    payload: &'a str,
}

#[derive(Deserialize)]
struct Start<'a> {
    #[serde(rename = "streamSid")]
    stream_sid: &'a str,
    #[serde(rename = "callSid")]
    call_sid: &'a str,
}

/// A Realtime server event (only what the relay reads).
#[derive(Deserialize)]
struct AgentIn<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    #[serde(borrow, default)]
    delta: Option<&'a str>,
}

type Ws = WebSocketStream<TcpStream>;

/// One call: wait for `start`, connect the agent, relay until either side ends.
async fn call(mut twilio: Ws, config: &RelayConfig) {
    let (stream_sid, call_sid) = loop {
        match twilio.next().await {
            Some(Ok(Message::Text(text))) => {
                if let Ok(TwilioIn {
                    event: "start",
                    start: Some(s),
                    ..
                }) = serde_json::from_str(text.as_str())
                {
                    break (s.stream_sid.to_owned(), s.call_sid.to_owned());
                }
            }
            Some(Ok(_)) => {}
            _ => return,
        }
    };
    let Ok(mut agent) = connect_agent(config, &call_sid).await else {
        let _ = twilio.close(None).await;
        return;
    };
    let mut marks: u64 = 0;
    loop {
        tokio::select! {
            msg = twilio.next() => {
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(text) = msg else { continue };
                let Ok(m) = serde_json::from_str::<TwilioIn<'_>>(text.as_str()) else { continue };
                match (m.event, m.media) {
                    ("media", Some(media)) => {
                        let mut out = String::with_capacity(60 + media.payload.len());
                        out.push_str(r#"{"type":"input_audio_buffer.append","audio":""#);
                        out.push_str(media.payload);
                        out.push_str(r#""}"#);
                        if agent.send(Message::text(out)).await.is_err() {
                            break;
                        }
                    }
                    ("stop", _) => break,
                    _ => {}
                }
            }
            msg = agent.next() => {
                let Some(Ok(msg)) = msg else { break };
                let Message::Text(text) = msg else { continue };
                let Ok(e) = serde_json::from_str::<AgentIn<'_>>(text.as_str()) else { continue };
                let sent = match (e.ty, e.delta) {
                    ("response.output_audio.delta", Some(delta)) => {
                        marks += 1;
                        let mut media = String::with_capacity(80 + delta.len());
                        media.push_str(r#"{"event":"media","streamSid":""#);
                        media.push_str(&stream_sid);
                        media.push_str(r#"","media":{"payload":""#);
                        media.push_str(delta);
                        media.push_str(r#""}}"#);
                        let mark = format!(
                            r#"{{"event":"mark","streamSid":"{stream_sid}","mark":{{"name":"m{marks}"}}}}"#
                        );
                        let fed = twilio.feed(Message::text(media)).await;
                        match fed {
                            Ok(()) => twilio.send(Message::text(mark)).await,
                            Err(e) => Err(e),
                        }
                    }
                    ("input_audio_buffer.speech_started", _) => {
                        let clear = format!(r#"{{"event":"clear","streamSid":"{stream_sid}"}}"#);
                        twilio.send(Message::text(clear)).await
                    }
                    _ => Ok(()),
                };
                if sent.is_err() {
                    break;
                }
            }
        }
    }
    let _ = agent.close(None).await;
    let _ = twilio.close(None).await;
}

/// Opens the call's Realtime session: `session.update`, then the greeting's `response.create`.
async fn connect_agent(config: &RelayConfig, call_sid: &str) -> anyhow::Result<Ws> {
    let mut req = config.agent_url.as_str().into_client_request()?;
    req.headers_mut()
        .insert(http::header::AUTHORIZATION, config.bearer.parse()?);
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .context("no host in the agent URL")?;
    let tcp = TcpStream::connect(&host).await?;
    let _ = tcp.set_nodelay(true);
    let ws_config = WebSocketConfig::default().read_buffer_size(AGENT_READ_BUFFER);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(req, tcp, Some(ws_config)).await?;
    let instructions = config.prompt.replace("{{call_sid}}", call_sid);
    let update = serde_json::json!({
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": instructions,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {"type": "server_vad", "interrupt_response": true,
                        "create_response": true},
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy"},
            },
        },
    });
    ws.feed(Message::text(update.to_string())).await?;
    ws.send(Message::text(r#"{"type":"response.create"}"#))
        .await?;
    Ok(ws)
}
