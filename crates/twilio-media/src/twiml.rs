//! A small TwiML writer: the `<Response>` documents a voice bridge needs.
//!
//! Verbs: [`Connect`] + [`Stream`] + `<Parameter>`, [`Say`], [`Pause`], `<Hangup>`,
//! [`Dial`], [`Reject`], [`Redirect`]. Output is compact XML with an XML declaration,
//! lowerCamelCase attribute names, and `& < > " '` escaped in attribute values and text.
//! Characters XML 1.0 cannot carry at all (control characters other than tab, line feed
//! and carriage return) are dropped; tab, line feed and carriage return in attribute
//! values are written as character references so they survive attribute normalisation.
//!
//! The writer does not validate URLs or phone numbers, except on request:
//! [`Stream::check_url`] enforces Twilio's rules for `<Stream url>` (`wss://` only, no
//! query string, no port other than 443).
//!
//! ```
//! use twilio_media::twiml::{Response, Stream};
//!
//! let xml = Response::new()
//!     .connect(
//!         Stream::new("wss://bridge.example.com/media")
//!             .parameter("call_sid", "CA00000000000000000000000000000001"),
//!     )
//!     .say("Sorry, the assistant is unavailable.")
//!     .to_xml();
//! assert_eq!(
//!     xml,
//!     r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://bridge.example.com/media"><Parameter name="call_sid" value="CA00000000000000000000000000000001"/></Stream></Connect><Say>Sorry, the assistant is unavailable.</Say></Response>"#
//! );
//! ```

use std::fmt;

/// Why a TwiML value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TwimlError {
    /// A `<Stream>` URL that is not an absolute `wss://` URL.
    #[error("a <Stream> url must be an absolute wss:// URL, got {url:?}")]
    StreamScheme {
        /// The offending URL.
        url: String,
    },
    /// A `<Stream>` URL without a host.
    #[error("a <Stream> url must name a host, got {url:?}")]
    StreamHost {
        /// The offending URL.
        url: String,
    },
    /// A `<Stream>` URL with a query string or fragment (Twilio rejects the handshake,
    /// error 31920; pass data with `<Parameter>` instead).
    #[error("a <Stream> url must not contain a query string or fragment, got {url:?}")]
    StreamQuery {
        /// The offending URL.
        url: String,
    },
    /// A `<Stream>` URL with an explicit port other than 443 (Twilio connects on 443).
    #[error("a <Stream> url must not name a port other than 443, got {url:?}")]
    StreamPort {
        /// The offending URL.
        url: String,
    },
}

/// HTTP method for callbacks (`method`, `statusCallbackMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST` (Twilio's default)
    Post,
}

impl Method {
    /// `"GET"` or `"POST"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A TwiML document: `<Response>` and its verbs, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Response {
    verbs: Vec<Verb>,
}

/// One verb inside a [`Response`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verb {
    /// `<Connect>…</Connect>`
    Connect(Connect),
    /// `<Say>…</Say>`
    Say(Say),
    /// `<Pause/>`
    Pause(Pause),
    /// `<Hangup/>`
    Hangup,
    /// `<Dial>…</Dial>`
    Dial(Dial),
    /// `<Reject/>`
    Reject(Reject),
    /// `<Redirect>…</Redirect>`
    Redirect(Redirect),
}

impl Response {
    /// An empty `<Response/>`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends any verb.
    pub fn verb(mut self, verb: impl Into<Verb>) -> Self {
        self.verbs.push(verb.into());
        self
    }

    /// Appends `<Connect>` (pass a [`Stream`] or a configured [`Connect`]).
    pub fn connect(self, connect: impl Into<Connect>) -> Self {
        self.verb(Verb::Connect(connect.into()))
    }

    /// Appends `<Say>` (pass text or a configured [`Say`]).
    pub fn say(self, say: impl Into<Say>) -> Self {
        self.verb(Verb::Say(say.into()))
    }

    /// Appends `<Pause>`.
    pub fn pause(self, pause: Pause) -> Self {
        self.verb(Verb::Pause(pause))
    }

    /// Appends `<Hangup/>`.
    pub fn hangup(self) -> Self {
        self.verb(Verb::Hangup)
    }

    /// Appends `<Dial>` (pass a number or a configured [`Dial`]).
    pub fn dial(self, dial: impl Into<Dial>) -> Self {
        self.verb(Verb::Dial(dial.into()))
    }

    /// Appends `<Reject>`.
    pub fn reject(self, reject: Reject) -> Self {
        self.verb(Verb::Reject(reject))
    }

    /// Appends `<Redirect>` (pass a URL or a configured [`Redirect`]).
    pub fn redirect(self, redirect: impl Into<Redirect>) -> Self {
        self.verb(Verb::Redirect(redirect.into()))
    }

    /// The verbs, in order.
    pub fn verbs(&self) -> &[Verb] {
        &self.verbs
    }

    /// The document, starting with `<?xml version="1.0" encoding="UTF-8"?>`.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(256);
        self.write_xml(&mut out);
        out
    }

    /// Appends the document to `out`.
    pub fn write_xml(&self, out: &mut String) {
        out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        if self.verbs.is_empty() {
            out.push_str("<Response/>");
            return;
        }
        out.push_str("<Response>");
        for verb in &self.verbs {
            verb.write(out);
        }
        out.push_str("</Response>");
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_xml())
    }
}

impl Verb {
    fn write(&self, out: &mut String) {
        match self {
            Verb::Connect(c) => c.write(out),
            Verb::Say(s) => s.write(out),
            Verb::Pause(p) => {
                let mut e = Element::open(out, "Pause");
                e.attr_num("length", p.length);
                e.close_empty();
            }
            Verb::Hangup => Element::open(out, "Hangup").close_empty(),
            Verb::Dial(d) => d.write(out),
            Verb::Reject(r) => {
                let mut e = Element::open(out, "Reject");
                e.attr("reason", r.reason.map(RejectReason::as_str));
                e.close_empty();
            }
            Verb::Redirect(r) => {
                let mut e = Element::open(out, "Redirect");
                e.attr("method", r.method.map(Method::as_str));
                e.text_and_close(&r.url);
            }
        }
    }
}

/// `<Connect>`: hand the call to a bidirectional `<Stream>` until the socket closes.
///
/// When our server closes the stream's WebSocket, Twilio continues with the verbs after
/// `</Connect>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Connect {
    stream: Stream,
    action: Option<String>,
    method: Option<Method>,
}

impl Connect {
    /// `<Connect>` around `stream`.
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            action: None,
            method: None,
        }
    }

    /// `action`: URL Twilio requests when the `<Connect>` ends (whether Twilio does so
    /// for `<Stream>` is not documented).
    pub fn action(mut self, url: impl Into<String>) -> Self {
        self.action = Some(url.into());
        self
    }

    /// `method` for `action`.
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    fn write(&self, out: &mut String) {
        let mut e = Element::open(out, "Connect");
        e.attr("action", self.action.as_deref());
        e.attr("method", self.method.map(Method::as_str));
        e.start_children();
        self.stream.write(out);
        out.push_str("</Connect>");
    }
}

impl From<Stream> for Connect {
    fn from(stream: Stream) -> Self {
        Self::new(stream)
    }
}

/// `<Stream>`: the Media Stream WebSocket Twilio opens, with `<Parameter>` children that
/// arrive as `start.customParameters`.
///
/// Twilio's rules for `url`: absolute `wss://` URL, **no query string** (pass per-call data
/// as parameters), Twilio connects on port 443. [`Stream::new`] accepts any string;
/// [`Stream::check_url`] / [`Stream::validate`] enforce the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Stream {
    url: String,
    name: Option<String>,
    status_callback: Option<String>,
    status_callback_method: Option<Method>,
    parameters: Vec<(String, String)>,
}

impl Stream {
    /// A `<Stream url="…">`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: None,
            status_callback: None,
            status_callback_method: None,
            parameters: Vec::new(),
        }
    }

    /// `name`: a name for the stream (defaults to the stream SID on Twilio's side).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// `statusCallback`: URL for stream-started / stream-stopped / stream-error requests.
    pub fn status_callback(mut self, url: impl Into<String>) -> Self {
        self.status_callback = Some(url.into());
        self
    }

    /// `statusCallbackMethod` (Twilio's default is `POST`).
    pub fn status_callback_method(mut self, method: Method) -> Self {
        self.status_callback_method = Some(method);
        self
    }

    /// Adds `<Parameter name="…" value="…"/>`. Keep the total small (Twilio does not
    /// document a limit).
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((name.into(), value.into()));
        self
    }

    /// The `url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks this stream's `url` with [`Stream::check_url`].
    pub fn validate(&self) -> Result<(), TwimlError> {
        Self::check_url(&self.url)
    }

    /// Checks a `<Stream url>` against Twilio's rules: scheme `wss` (case-insensitive), a
    /// host, no query string or fragment, no port other than 443.
    ///
    /// ```
    /// use twilio_media::twiml::{Stream, TwimlError};
    ///
    /// assert!(Stream::check_url("wss://bridge.example.com/media").is_ok());
    /// assert!(Stream::check_url("wss://bridge.example.com:443/media").is_ok());
    /// assert!(matches!(
    ///     Stream::check_url("wss://bridge.example.com/media?call=CA1"),
    ///     Err(TwimlError::StreamQuery { .. })
    /// ));
    /// assert!(matches!(
    ///     Stream::check_url("https://bridge.example.com/media"),
    ///     Err(TwimlError::StreamScheme { .. })
    /// ));
    /// ```
    pub fn check_url(url: &str) -> Result<(), TwimlError> {
        let owned = || url.to_owned();
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("wss") => rest,
            _ => return Err(TwimlError::StreamScheme { url: owned() }),
        };
        if url.contains(['?', '#']) {
            return Err(TwimlError::StreamQuery { url: owned() });
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let host_port = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = match host_port.strip_prefix('[') {
            // IPv6 literal: `[::1]` or `[::1]:443`.
            Some(v6) => match v6.split_once(']') {
                Some((host, after)) => (host, after.strip_prefix(':')),
                None => return Err(TwimlError::StreamHost { url: owned() }),
            },
            None => match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            },
        };
        if host.is_empty() {
            return Err(TwimlError::StreamHost { url: owned() });
        }
        match port {
            None | Some("443") => Ok(()),
            Some(_) => Err(TwimlError::StreamPort { url: owned() }),
        }
    }

    fn write(&self, out: &mut String) {
        let mut e = Element::open(out, "Stream");
        e.attr("url", Some(&self.url));
        e.attr("name", self.name.as_deref());
        e.attr("statusCallback", self.status_callback.as_deref());
        e.attr(
            "statusCallbackMethod",
            self.status_callback_method.map(Method::as_str),
        );
        if self.parameters.is_empty() {
            e.close_empty();
            return;
        }
        e.start_children();
        for (name, value) in &self.parameters {
            let mut p = Element::open(out, "Parameter");
            p.attr("name", Some(name));
            p.attr("value", Some(value));
            p.close_empty();
        }
        out.push_str("</Stream>");
    }
}

/// `<Say>`: text-to-speech.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Say {
    text: String,
    voice: Option<String>,
    language: Option<String>,
    loop_count: Option<u32>,
}

impl Say {
    /// `<Say>text</Say>`.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            voice: None,
            language: None,
            loop_count: None,
        }
    }

    /// `voice`, such as `"alice"`, `"Polly.Joanna"` or `"Google.en-US-Chirp3-HD-Aoede"`.
    pub fn voice(mut self, voice: impl Into<String>) -> Self {
        self.voice = Some(voice.into());
        self
    }

    /// `language`, such as `"en-US"`.
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// `loop`: how many times to repeat (`0` = until the call ends).
    pub fn loop_count(mut self, times: u32) -> Self {
        self.loop_count = Some(times);
        self
    }

    fn write(&self, out: &mut String) {
        let mut e = Element::open(out, "Say");
        e.attr("voice", self.voice.as_deref());
        e.attr("language", self.language.as_deref());
        e.attr_num("loop", self.loop_count);
        e.text_and_close(&self.text);
    }
}

impl From<&str> for Say {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for Say {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

/// `<Pause>`: silence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct Pause {
    length: Option<u32>,
}

impl Pause {
    /// `<Pause/>` (Twilio's default length is one second).
    pub fn new() -> Self {
        Self::default()
    }

    /// `<Pause length="seconds"/>`.
    pub fn seconds(seconds: u32) -> Self {
        Self {
            length: Some(seconds),
        }
    }

    /// `length` in seconds.
    pub fn length(mut self, seconds: u32) -> Self {
        self.length = Some(seconds);
        self
    }
}

/// `<Dial>number</Dial>`: transfer the caller to a phone number, or (with [`Dial::sip`]) to a
/// SIP URI as `<Dial><Sip>uri</Sip></Dial>`.
///
/// With [`Dial::whisper_url`], the number is written as a `<Number url="…">` noun (`<Sip
/// url="…">` for SIP): Twilio fetches that URL when the callee answers and plays the TwiML it
/// returns to the **callee only** (a "whisper") before connecting the two parties.
///
/// ```
/// use twilio_media::twiml::{Dial, Response};
/// let xml = Response::new()
///     .dial(Dial::number("+15551234567").caller_id("+15005550006").timeout(20)
///         .whisper_url("https://bridge.example.com/twilio/whisper?text=Hi"))
///     .to_xml();
/// assert!(xml.ends_with(r#"<Dial callerId="+15005550006" timeout="20"><Number url="https://bridge.example.com/twilio/whisper?text=Hi">+15551234567</Number></Dial></Response>"#));
/// let sip = Response::new().dial(Dial::sip("sip:desk@pbx.example.com")).to_xml();
/// assert!(sip.ends_with("<Dial><Sip>sip:desk@pbx.example.com</Sip></Dial></Response>"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Dial {
    number: String,
    sip: bool,
    noun_url: Option<String>,
    caller_id: Option<String>,
    timeout: Option<u32>,
    time_limit: Option<u32>,
    action: Option<String>,
    method: Option<Method>,
}

impl Dial {
    /// Dial `number` (E.164 such as `+15551234567`, written as the element's text).
    pub fn number(number: impl Into<String>) -> Self {
        Self {
            number: number.into(),
            sip: false,
            noun_url: None,
            caller_id: None,
            timeout: None,
            time_limit: None,
            action: None,
            method: None,
        }
    }

    /// Dial a SIP URI (`sip:user@host`), written as a `<Sip>` noun.
    pub fn sip(uri: impl Into<String>) -> Self {
        Self {
            sip: true,
            ..Self::number(uri)
        }
    }

    /// `url` of the `<Number>`/`<Sip>` noun: TwiML played to the callee before connecting.
    pub fn whisper_url(mut self, url: impl Into<String>) -> Self {
        self.noun_url = Some(url.into());
        self
    }

    /// `callerId`: the number shown to the dialed party.
    pub fn caller_id(mut self, caller_id: impl Into<String>) -> Self {
        self.caller_id = Some(caller_id.into());
        self
    }

    /// `timeout`: seconds to ring before giving up.
    pub fn timeout(mut self, seconds: u32) -> Self {
        self.timeout = Some(seconds);
        self
    }

    /// `timeLimit`: maximum duration of the dialed call, in seconds.
    pub fn time_limit(mut self, seconds: u32) -> Self {
        self.time_limit = Some(seconds);
        self
    }

    /// `action`: URL requested when the dialed call ends (otherwise Twilio continues with
    /// the next verb).
    pub fn action(mut self, url: impl Into<String>) -> Self {
        self.action = Some(url.into());
        self
    }

    /// `method` for `action`.
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    fn write(&self, out: &mut String) {
        let mut e = Element::open(out, "Dial");
        e.attr("callerId", self.caller_id.as_deref());
        e.attr_num("timeout", self.timeout);
        e.attr_num("timeLimit", self.time_limit);
        e.attr("action", self.action.as_deref());
        e.attr("method", self.method.map(Method::as_str));
        if !self.sip && self.noun_url.is_none() {
            e.text_and_close(&self.number);
            return;
        }
        e.start_children();
        let mut noun = Element::open(out, if self.sip { "Sip" } else { "Number" });
        noun.attr("url", self.noun_url.as_deref());
        noun.text_and_close(&self.number);
        out.push_str("</Dial>");
    }
}

impl From<&str> for Dial {
    fn from(number: &str) -> Self {
        Self::number(number)
    }
}

impl From<String> for Dial {
    fn from(number: String) -> Self {
        Self::number(number)
    }
}

/// Why a call is rejected: the tone the caller hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// `busy`: a busy signal.
    Busy,
    /// `rejected`: "not in service" (Twilio's default).
    Rejected,
}

impl RejectReason {
    /// `"busy"` or `"rejected"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Rejected => "rejected",
        }
    }
}

/// `<Reject>`: refuse the call without answering it (not billed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct Reject {
    reason: Option<RejectReason>,
}

impl Reject {
    /// `<Reject/>`.
    pub fn new() -> Self {
        Self::default()
    }

    /// `<Reject reason="busy"/>` (e.g. when over capacity).
    pub fn busy() -> Self {
        Self::new().reason(RejectReason::Busy)
    }

    /// `<Reject reason="rejected"/>`.
    pub fn rejected() -> Self {
        Self::new().reason(RejectReason::Rejected)
    }

    /// `reason`.
    pub fn reason(mut self, reason: RejectReason) -> Self {
        self.reason = Some(reason);
        self
    }
}

/// `<Redirect>url</Redirect>`: fetch new TwiML from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Redirect {
    url: String,
    method: Option<Method>,
}

impl Redirect {
    /// Redirect to `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: None,
        }
    }

    /// `method` (Twilio's default is `POST`).
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }
}

impl From<&str> for Redirect {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl From<String> for Redirect {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

macro_rules! verb_from {
    ($($ty:ident),*) => {
        $(impl From<$ty> for Verb {
            fn from(v: $ty) -> Self {
                Verb::$ty(v)
            }
        })*
    };
}

verb_from!(Connect, Say, Pause, Dial, Reject, Redirect);

/// Writes one element: `open`, any `attr`s, then one of the closing methods.
struct Element<'o> {
    out: &'o mut String,
    tag: &'static str,
}

impl<'o> Element<'o> {
    fn open(out: &'o mut String, tag: &'static str) -> Self {
        out.push('<');
        out.push_str(tag);
        Self { out, tag }
    }

    fn attr(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.out.push(' ');
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape(self.out, value, true);
            self.out.push('"');
        }
    }

    fn attr_num(&mut self, name: &str, value: Option<u32>) {
        if let Some(value) = value {
            self.attr(name, Some(&value.to_string()));
        }
    }

    fn close_empty(self) {
        self.out.push_str("/>");
    }

    fn start_children(self) {
        self.out.push('>');
    }

    fn text_and_close(self, text: &str) {
        if text.is_empty() {
            self.close_empty();
            return;
        }
        self.out.push('>');
        escape(self.out, text, false);
        self.out.push_str("</");
        self.out.push_str(self.tag);
        self.out.push('>');
    }
}

/// Escapes XML special characters; drops characters XML 1.0 forbids.
fn escape(out: &mut String, s: &str, in_attribute: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' if in_attribute => out.push_str("&#9;"),
            '\n' if in_attribute => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => {}
            c => out.push(c),
        }
    }
}
