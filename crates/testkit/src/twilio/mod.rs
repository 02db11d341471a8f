//! Twilio's side of a call: webhook, TwiML, the Media Stream with real playout.
//!
//! [`CallSimulator`] plays Twilio against a running server (e.g. `http://127.0.0.1:PORT`):
//!
//! 1. [`CallBuilder::place`] posts the voice webhook — `POST {voice_path}` with Twilio's form
//!    parameters (`CallSid`, `AccountSid`, `From`, `To`, `Direction`, `CallStatus`,
//!    `ApiVersion`, `Caller`, `Called`, geo fields; SIDs are prefix + 32 hex), signed with
//!    `X-Twilio-Signature` over the server's **public** URL — and parses the TwiML answer
//!    ([`twiml::Twiml`]): `<Connect><Stream url>` + `<Parameter>`s, `<Reject>`, `<Say>`, ...
//! 2. [`PlacedCall::open_stream`] opens the WebSocket named by `<Stream url>`
//!    (`wss://public-host/media`): the upgrade is signed over that exact URL and carries the
//!    public `Host`, but connects to the local server over plain `ws://`. The signatures can
//!    be omitted or forged ([`Signing`]).
//! 3. The [`ActiveCall`] sends `connected`, `start` (`tracks: ["inbound"]`, the custom
//!    parameters, `mediaFormat`), then a 160-byte μ-law `media` frame every 20 ms on the real
//!    (tokio) clock — silence, or audio queued with [`ActiveCall::send_audio`] — with
//!    `sequenceNumber`, `chunk` and `timestamp` as strings exactly as Twilio sends them; plus
//!    `dtmf`, `stop`, abrupt drops and malformed frames on demand.
//! 4. Server audio is **played out in real time** ([`Playout`]): queued back to back at 8
//!    bytes/ms; a `mark` is echoed only once all audio queued before it has played
//!    (immediately if nothing is queued); `clear` discards the unplayed audio and echoes every
//!    pending mark at once. Every server message is validated exactly (only `media
//!    {streamSid, media{payload}}`, `mark {streamSid, mark{name}}`, `clear {streamSid}`, with
//!    exactly those fields, the right `streamSid`, valid base64, text frames) and refused ones
//!    are recorded as [`StreamViolation`]s, as Twilio would ignore them.
//! 5. Everything is timestamped in a [`TimelineEntry`] list, and the call answers "which agent
//!    bytes had the caller heard at time T" ([`ActiveCall::heard_at`]) — all awaitable without
//!    sleeping ([`ActiveCall::wait_for`], [`ActiveCall::wait_heard`], ...).
//!
//! Linked to a [`crate::rest::MockTwilioRest`] ([`CallSimulator::rest`]), placed calls are
//! registered there, and a REST hang-up or redirect ends the stream with `stop` as Twilio does.
//!
//! After the stream, [`PlacedCall::after_stream`] goes on with the TwiML like Twilio when the
//! server ended the stream: the verbs after `</Connect>`, `<Redirect>`s fetched (signed).
//!
//! What it does not do: TLS, fetching `<Redirect>`/`Url` TwiML on its own while a stream
//! runs, executing verbs other than `<Connect><Stream>` (after the stream they are only
//! listed), status callbacks, the outbound track.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use testkit::audio::CallerAudio;
//! use testkit::twilio::{CallEvent, CallSimulator};
//!
//! let sim = CallSimulator::new("http://127.0.0.1:8080")
//!     .public_url("https://bridge.example.com")
//!     .auth_token("0123456789abcdef0123456789abcdef");
//! let call = sim.call().from("+14155551234").connect().await?;
//! // The greeting plays; wait until the caller heard one second of it.
//! let heard = call.wait_heard(8000, Duration::from_secs(10)).await?;
//! assert_eq!(heard.len(), 8000);
//! // Barge in.
//! call.send_audio(CallerAudio::new().speech(800).silence(1000));
//! call.wait_for(|e| matches!(e, CallEvent::ClearReceived { .. }), Duration::from_secs(5)).await?;
//! call.stop(Duration::from_secs(5)).await?;
//! assert!(call.violations().is_empty());
//! # Ok(()) }
//! ```

mod call;
pub mod lean;
mod playout;
mod script;
pub mod signature;
pub mod twiml;

pub use call::{
    ActiveCall, CallEnd, CallEvent, Malformed, MarkRecord, StreamOptions, StreamViolation,
    StreamViolationKind, TimelineEntry,
};
pub use playout::{Cleared, PlayedSegment, Playout, bytes_duration};
pub use script::{CallScript, CallStep, ScriptError};

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::http::{HttpError, HttpResponse, post_form, split_url};
use crate::rest::MockTwilioRest;
use twiml::{Twiml, TwimlError};

/// How a request is signed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Signing {
    /// Correctly, with the simulator's auth token over the exact URL (omitted if the simulator
    /// has no auth token).
    #[default]
    Valid,
    /// No `X-Twilio-Signature` header.
    Omit,
    /// This literal header value.
    Forged(String),
    /// Correctly computed, but with this auth token.
    WithToken(String),
    /// Correctly computed, but over this URL instead (e.g. `https://…` for a `wss://` stream).
    WithUrl(String),
}

/// Errors placing a call or opening its stream.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The webhook request failed.
    #[error("voice webhook: {0}")]
    Http(#[from] HttpError),
    /// The webhook answered with a non-2xx status.
    #[error("voice webhook answered {status}: {body}")]
    WebhookStatus {
        /// Status.
        status: u16,
        /// Body.
        body: String,
    },
    /// The answer is not valid TwiML.
    #[error("invalid TwiML answer: {0}")]
    Twiml(#[from] TwimlError),
    /// The TwiML has no `<Connect><Stream>`.
    #[error("the TwiML has no <Connect><Stream>: {0}")]
    NoStream(String),
    /// The `<Stream url>` is not an absolute `ws(s)://` URL.
    #[error("unusable <Stream url> {0:?}")]
    BadStreamUrl(String),
    /// The server's base URL is not `http://host:port`.
    #[error("unusable server URL {0:?}")]
    BadServerUrl(String),
    /// TCP connect to the server failed.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// Address.
        addr: String,
        /// Error.
        source: std::io::Error,
    },
    /// The server refused the WebSocket upgrade.
    #[error("stream upgrade refused with {status}: {body}")]
    StreamRejected {
        /// Status.
        status: u16,
        /// Body.
        body: String,
    },
    /// The WebSocket handshake failed otherwise.
    #[error("stream handshake: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
}

#[derive(Debug, Clone)]
struct SimConfig {
    server: String,
    public_url: String,
    voice_path: String,
    auth_token: Option<String>,
    account_sid: String,
    rest: Option<MockTwilioRest>,
}

/// Plays Twilio against a server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CallSimulator {
    cfg: Arc<SimConfig>,
}

impl CallSimulator {
    /// A simulator for the server at `server` (`http://127.0.0.1:PORT`). By default the public
    /// URL is the same, the voice path is `/voice`, the account SID is generated and requests
    /// are not signed (no auth token).
    pub fn new(server: &str) -> Self {
        let server = server.trim_end_matches('/').to_string();
        Self {
            cfg: Arc::new(SimConfig {
                public_url: server.clone(),
                server,
                voice_path: "/voice".to_string(),
                auth_token: None,
                account_sid: crate::sid::new_sid("AC"),
                rest: None,
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut SimConfig)) -> Self {
        f(Arc::make_mut(&mut self.cfg));
        self
    }

    /// The server's public base URL (what Twilio requests, and what signatures cover), e.g.
    /// `https://bridge.example.com`.
    pub fn public_url(self, url: &str) -> Self {
        self.with(|c| c.public_url = url.trim_end_matches('/').to_string())
    }

    /// The voice webhook path (default `/voice`).
    pub fn voice_path(self, path: &str) -> Self {
        self.with(|c| c.voice_path = path.to_string())
    }

    /// The auth token to sign with.
    pub fn auth_token(self, token: &str) -> Self {
        self.with(|c| c.auth_token = Some(token.to_string()))
    }

    /// The account SID (`AC…`).
    pub fn account_sid(self, sid: &str) -> Self {
        self.with(|c| c.account_sid = sid.to_string())
    }

    /// Links a REST mock: uses its account SID and auth token, registers placed calls with
    /// it, and lets its call updates end streams.
    pub fn rest(self, rest: &MockTwilioRest) -> Self {
        self.with(|c| {
            c.account_sid = rest.account_sid().to_string();
            c.auth_token = Some(rest.auth_token().to_string());
            c.rest = Some(rest.clone());
        })
    }

    /// The account SID calls are placed for.
    pub fn account(&self) -> &str {
        &self.cfg.account_sid
    }

    /// A new call.
    pub fn call(&self) -> CallBuilder {
        CallBuilder {
            sim: self.clone(),
            from: "+14155551234".to_string(),
            to: "+15005550006".to_string(),
            call_sid: None,
            direction: "inbound".to_string(),
            params: Vec::new(),
            signing: Signing::Valid,
            stream_signing: Signing::Valid,
            stamp_frames: false,
            idle_silence: true,
            record_frames: true,
        }
    }

    /// Opens the Media Stream `stream` (from TwiML) for `call_sid`: signs the upgrade over the
    /// stream URL and connects to the local server over `ws://`.
    async fn connect_stream(
        &self,
        stream: &twiml::Stream,
        call_sid: &str,
        signing: &Signing,
        (stamp_frames, idle_silence, record_frames): (bool, bool, bool),
    ) -> Result<ActiveCall, SimError> {
        let (addr, _, _) = split_url(&self.cfg.server)
            .ok_or_else(|| SimError::BadServerUrl(self.cfg.server.clone()))?;
        let url = stream.url.as_str();
        let (_, rest) = url
            .split_once("://")
            .filter(|(s, _)| *s == "wss" || *s == "ws")
            .ok_or_else(|| SimError::BadStreamUrl(url.to_string()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let mut req = format!("ws://{addr}{path}").into_client_request()?;
        let h = req.headers_mut();
        h.insert(
            http::header::HOST,
            authority
                .parse()
                .map_err(|_| SimError::BadStreamUrl(url.to_string()))?,
        );
        h.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static("Twilio.TmeWs/1.0"),
        );
        if let Some(sig) = self.sign(signing, url, &[]) {
            h.insert(
                "x-twilio-signature",
                sig.parse()
                    .map_err(|_| SimError::BadStreamUrl(format!("unusable signature {sig:?}")))?,
            );
        }
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|source| SimError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let ws = match tokio_tungstenite::client_async(req, tcp).await {
            Ok((ws, _)) => ws,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                return Err(SimError::StreamRejected {
                    status: resp.status().as_u16(),
                    body: resp
                        .body()
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let mut opts = StreamOptions::new(call_sid, &self.cfg.account_sid);
        opts.custom_parameters.clone_from(&stream.parameters);
        opts.stamp_frames = stamp_frames;
        opts.idle_silence = idle_silence;
        opts.record_frames = record_frames;
        opts.rest.clone_from(&self.cfg.rest);
        Ok(ActiveCall::attach(ws, opts))
    }

    /// Answers an outbound call created through the REST mock (`POST …/Calls.json`), as the
    /// callee picking up: runs its `Twiml`, or fetches TwiML from its `Url` (a signed `POST`
    /// with `CallStatus=in-progress`, `Direction=outbound-api`; a `Url` under the public URL is
    /// requested from the local server), then opens the `<Connect><Stream>`.
    pub async fn answer_outbound(
        &self,
        call: &crate::rest::CallInfo,
    ) -> Result<ActiveCall, SimError> {
        let twiml_text = if let Some(url) = &call.url {
            let local = match url.strip_prefix(&self.cfg.public_url) {
                Some(path) => format!("{}{path}", self.cfg.server),
                None => url.clone(),
            };
            let params: Vec<(String, String)> = [
                ("AccountSid", self.cfg.account_sid.as_str()),
                ("ApiVersion", "2010-04-01"),
                ("CallSid", call.sid.as_str()),
                ("CallStatus", "in-progress"),
                ("Called", call.to.as_str()),
                ("Caller", call.from.as_str()),
                ("Direction", "outbound-api"),
                ("From", call.from.as_str()),
                ("To", call.to.as_str()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let sig = self.sign(&Signing::Valid, url, &params);
            let mut headers = vec![("user-agent", "TwilioProxy/1.1")];
            if let Some(s) = &sig {
                headers.push(("x-twilio-signature", s.as_str()));
            }
            let r = post_form(&local, &headers, &params).await?;
            if !(200..300).contains(&r.status) {
                return Err(SimError::WebhookStatus {
                    status: r.status,
                    body: r.text(),
                });
            }
            r.text()
        } else {
            call.twiml
                .clone()
                .ok_or_else(|| SimError::NoStream("the call has neither Url nor Twiml".into()))?
        };
        let twiml = Twiml::parse(&twiml_text)?;
        let stream = twiml
            .stream()
            .ok_or_else(|| SimError::NoStream(twiml_text.clone()))?;
        if let Some(rest) = &self.cfg.rest {
            rest.set_call_status(&call.sid, "in-progress");
        }
        self.connect_stream(stream, &call.sid, &Signing::Valid, (false, true, true))
            .await
    }

    fn sign(&self, mode: &Signing, url: &str, params: &[(String, String)]) -> Option<String> {
        let token = self.cfg.auth_token.as_deref();
        match mode {
            Signing::Valid => token.map(|t| signature::sign(t, url, params)),
            Signing::Omit => None,
            Signing::Forged(s) => Some(s.clone()),
            Signing::WithToken(t) => Some(signature::sign(t, url, params)),
            Signing::WithUrl(u) => token.map(|t| signature::sign(t, u, params)),
        }
    }
}

/// A call about to be placed.
#[derive(Debug, Clone)]
pub struct CallBuilder {
    sim: CallSimulator,
    from: String,
    to: String,
    call_sid: Option<String>,
    direction: String,
    params: Vec<(String, String)>,
    signing: Signing,
    stream_signing: Signing,
    stamp_frames: bool,
    idle_silence: bool,
    record_frames: bool,
}

impl CallBuilder {
    /// Caller number (default `+14155551234`).
    pub fn from(mut self, from: &str) -> Self {
        self.from = from.to_string();
        self
    }

    /// Called number (default `+15005550006`).
    pub fn to(mut self, to: &str) -> Self {
        self.to = to.to_string();
        self
    }

    /// Uses this call SID instead of a generated one.
    pub fn call_sid(mut self, sid: &str) -> Self {
        self.call_sid = Some(sid.to_string());
        self
    }

    /// `Direction` (default `inbound`).
    pub fn direction(mut self, direction: &str) -> Self {
        self.direction = direction.to_string();
        self
    }

    /// Adds (or overrides) a webhook form parameter.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.retain(|(k, _)| k != name);
        self.params.push((name.to_string(), value.to_string()));
        self
    }

    /// How the webhook is signed (default [`Signing::Valid`]).
    pub fn signature(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }

    /// How the stream upgrade is signed (default [`Signing::Valid`]).
    pub fn stream_signature(mut self, signing: Signing) -> Self {
        self.stream_signing = signing;
        self
    }

    /// Stamps every caller frame with its chunk number ([`crate::audio::stamp`]).
    pub fn stamp_frames(mut self, on: bool) -> Self {
        self.stamp_frames = on;
        self
    }

    /// Whether to send silence when no caller audio is queued (default `true`, as Twilio).
    pub fn idle_silence(mut self, on: bool) -> Self {
        self.idle_silence = on;
        self
    }

    /// Whether to record a timeline entry per caller frame (default `true`).
    pub fn record_frames(mut self, on: bool) -> Self {
        self.record_frames = on;
        self
    }

    /// Posts the voice webhook and parses the answer.
    pub async fn place(self) -> Result<PlacedCall, SimError> {
        let cfg = &self.sim.cfg;
        let call_sid = self
            .call_sid
            .clone()
            .unwrap_or_else(|| crate::sid::new_sid("CA"));
        let mut params: Vec<(String, String)> = [
            ("AccountSid", cfg.account_sid.as_str()),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", call_sid.as_str()),
            ("CallStatus", "ringing"),
            ("Called", self.to.as_str()),
            ("CalledCountry", "US"),
            ("Caller", self.from.as_str()),
            ("CallerCountry", "US"),
            ("Direction", self.direction.as_str()),
            ("From", self.from.as_str()),
            ("FromCountry", "US"),
            ("To", self.to.as_str()),
            ("ToCountry", "US"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in &self.params {
            params.retain(|(pk, _)| pk != k);
            params.push((k.clone(), v.clone()));
        }
        let signed_url = format!("{}{}", cfg.public_url, cfg.voice_path);
        let local_url = format!("{}{}", cfg.server, cfg.voice_path);
        let sig = self.sim.sign(&self.signing, &signed_url, &params);
        let mut headers = vec![("user-agent", "TwilioProxy/1.1"), ("accept", "*/*")];
        if let Some(s) = &sig {
            headers.push(("x-twilio-signature", s.as_str()));
        }
        let response = post_form(&local_url, &headers, &params).await?;
        if let Some(rest) = &cfg.rest {
            rest.register_call(&call_sid, &self.from, &self.to);
        }
        let twiml = Twiml::parse(&response.text());
        Ok(PlacedCall {
            call_sid,
            account_sid: cfg.account_sid.clone(),
            params,
            response,
            twiml,
            builder: self,
        })
    }

    /// Places the call and opens its stream (fails unless the server answers 2xx with
    /// `<Connect><Stream>`).
    pub async fn connect(self) -> Result<ActiveCall, SimError> {
        self.place().await?.open_stream().await
    }
}

/// A placed call: the webhook exchange and the TwiML answer.
#[derive(Debug)]
pub struct PlacedCall {
    /// `CA…`.
    pub call_sid: String,
    /// `AC…`.
    pub account_sid: String,
    /// The form parameters posted.
    pub params: Vec<(String, String)>,
    /// The server's HTTP answer.
    pub response: HttpResponse,
    /// The answer parsed as TwiML.
    pub twiml: Result<Twiml, TwimlError>,
    builder: CallBuilder,
}

impl PlacedCall {
    /// The webhook's status code.
    pub fn status(&self) -> u16 {
        self.response.status
    }

    /// The `<Connect><Stream>`, if any.
    pub fn stream(&self) -> Option<&twiml::Stream> {
        self.twiml.as_ref().ok()?.stream()
    }

    /// The `<Reject>` reason if the call was rejected (`Some(None)` = no reason).
    pub fn rejected(&self) -> Option<Option<&str>> {
        self.twiml.as_ref().ok()?.reject()
    }

    /// What Twilio does once the stream has ended while the call is still up (the server
    /// closed it; after a caller's hang-up nothing runs): it executes the verbs after
    /// `</Connect>`, fetching each `<Redirect>` like Twilio (a `POST`, or `GET` with
    /// `method="GET"`, signed over the redirect's URL, with the call's parameters and
    /// `CallStatus=in-progress`; a URL under the public URL is requested from the local
    /// server) and going on with the document it answers, until a `<Hangup/>`, a `<Reject>`,
    /// or the end of a document. Returns the verbs executed in order, redirects included
    /// (at most 10 redirects are followed, as a loop guard).
    pub async fn after_stream(&self) -> Result<Vec<twiml::Verb>, SimError> {
        Ok(self.run_after_stream(false).await?.0)
    }

    /// Sends this call's later requests (redirects, streams) to `server` instead
    /// (`http://127.0.0.1:PORT`), as a load balancer would route them to another instance;
    /// the public URL and signatures stay the same.
    pub fn reach(mut self, server: &str) -> Self {
        self.builder.sim = self
            .builder
            .sim
            .clone()
            .with(|c| c.server = server.trim_end_matches('/').to_string());
        self
    }

    /// Like [`Self::after_stream`], but a fetched document with `<Connect><Stream>` is
    /// connected, as Twilio does: the call goes on with a new stream (same call SID). Returns
    /// the verbs executed before it and, when the call went on, the new document as a
    /// [`PlacedCall`] (open its stream with [`Self::open_stream`]; its own
    /// [`Self::after_stream`] follows what comes after that stream).
    pub async fn follow_after_stream(
        &self,
    ) -> Result<(Vec<twiml::Verb>, Option<PlacedCall>), SimError> {
        let (executed, next) = self.run_after_stream(true).await?;
        Ok((
            executed,
            next.map(|(response, twiml)| PlacedCall {
                call_sid: self.call_sid.clone(),
                account_sid: self.account_sid.clone(),
                params: self.params.clone(),
                response,
                twiml: Ok(twiml),
                builder: self.builder.clone(),
            }),
        ))
    }

    async fn run_after_stream(
        &self,
        connect: bool,
    ) -> Result<(Vec<twiml::Verb>, Option<(HttpResponse, Twiml)>), SimError> {
        use twiml::Verb;
        let twiml = self.twiml.as_ref().map_err(Clone::clone)?;
        let mut pending: std::collections::VecDeque<Verb> = twiml
            .verbs
            .iter()
            .skip_while(|v| !matches!(v, Verb::Connect(_)))
            .skip(1)
            .cloned()
            .collect();
        let mut executed = Vec::new();
        let mut redirects = 0;
        let cfg = &self.builder.sim.cfg;
        while let Some(verb) = pending.pop_front() {
            executed.push(verb.clone());
            match verb {
                Verb::Hangup | Verb::Reject { .. } => break,
                Verb::Redirect { url, method } if redirects < 10 => {
                    redirects += 1;
                    let mut params = self.params.clone();
                    params.retain(|(k, _)| k != "CallStatus");
                    params.push(("CallStatus".to_string(), "in-progress".to_string()));
                    let local = match url.strip_prefix(&cfg.public_url) {
                        Some(path) => format!("{}{path}", cfg.server),
                        None => url.clone(),
                    };
                    let get = method
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case("GET"));
                    let response = if get {
                        let query = crate::http::encode_form(&params);
                        let sep = if url.contains('?') { '&' } else { '?' };
                        let signed = format!("{url}{sep}{query}");
                        let sig = self.builder.sim.sign(&Signing::Valid, &signed, &[]);
                        let mut headers = vec![("user-agent", "TwilioProxy/1.1")];
                        if let Some(s) = &sig {
                            headers.push(("x-twilio-signature", s.as_str()));
                        }
                        crate::http::request(
                            http::Method::GET,
                            &format!("{local}{sep}{query}"),
                            &headers,
                            bytes::Bytes::new(),
                        )
                        .await?
                    } else {
                        let sig = self.builder.sim.sign(&Signing::Valid, &url, &params);
                        let mut headers = vec![("user-agent", "TwilioProxy/1.1")];
                        if let Some(s) = &sig {
                            headers.push(("x-twilio-signature", s.as_str()));
                        }
                        post_form(&local, &headers, &params).await?
                    };
                    if !(200..300).contains(&response.status) {
                        return Err(SimError::WebhookStatus {
                            status: response.status,
                            body: response.text(),
                        });
                    }
                    let doc = Twiml::parse(&response.text())?;
                    if connect && doc.stream().is_some() {
                        return Ok((executed, Some((response, doc))));
                    }
                    pending = doc.verbs.into();
                }
                _ => {}
            }
        }
        Ok((executed, None))
    }

    /// Opens the Media Stream named by the TwiML.
    pub async fn open_stream(&self) -> Result<ActiveCall, SimError> {
        if !(200..300).contains(&self.response.status) {
            return Err(SimError::WebhookStatus {
                status: self.response.status,
                body: self.response.text(),
            });
        }
        let twiml = self.twiml.as_ref().map_err(Clone::clone)?;
        let stream = twiml
            .stream()
            .ok_or_else(|| SimError::NoStream(self.response.text()))?;
        let b = &self.builder;
        b.sim
            .connect_stream(
                stream,
                &self.call_sid,
                &b.stream_signing,
                (b.stamp_frames, b.idle_silence, b.record_frames),
            )
            .await
    }

    /// Opens the Media Stream named by the TwiML at another server than the simulator's
    /// (`http://127.0.0.1:PORT`), signed over the same public URL: one instance directly, as a
    /// load balancer that still routes to it would.
    pub async fn open_stream_at(&self, server: &str) -> Result<ActiveCall, SimError> {
        if !(200..300).contains(&self.response.status) {
            return Err(SimError::WebhookStatus {
                status: self.response.status,
                body: self.response.text(),
            });
        }
        let twiml = self.twiml.as_ref().map_err(Clone::clone)?;
        let stream = twiml
            .stream()
            .ok_or_else(|| SimError::NoStream(self.response.text()))?;
        let b = &self.builder;
        let sim = b
            .sim
            .clone()
            .with(|c| c.server = server.trim_end_matches('/').to_string());
        sim.connect_stream(
            stream,
            &self.call_sid,
            &b.stream_signing,
            (b.stamp_frames, b.idle_silence, b.record_frames),
        )
        .await
    }
}
