//! Twilio REST request **shapes** for call control: paths, form bodies, the Basic
//! `Authorization` value, and the error body. There is no HTTP client here — send these
//! with whatever client you use:
//!
//! ```text
//! POST {API_BASE_URL}{path}
//! Authorization: {BasicAuth::header_value()}
//! Content-Type: application/x-www-form-urlencoded
//! Accept: application/json
//!
//! {form body}
//! ```
//!
//! ```
//! use twilio_media::rest::{self, BasicAuth, UpdateCall};
//! use twilio_media::twiml::{Response, Dial};
//!
//! let path = rest::call_path("AC00000000000000000000000000000001", "CA00000000000000000000000000000001");
//! assert_eq!(path, "/2010-04-01/Accounts/AC00000000000000000000000000000001/Calls/CA00000000000000000000000000000001.json");
//!
//! assert_eq!(UpdateCall::hang_up().to_form(), "Status=completed");
//!
//! let transfer = Response::new().dial(Dial::number("+15551234567").caller_id("+15005550006"));
//! let body = UpdateCall::twiml(transfer.to_xml())?.to_form();
//! assert!(body.starts_with("Twiml=%3C%3Fxml"));
//!
//! let auth = BasicAuth::new("AC00000000000000000000000000000001", "secret");
//! assert_eq!(format!("{auth:?}"), "BasicAuth([redacted])");
//!
//! let error = rest::ApiError::parse(br#"{"code":21220,"message":"Call is not in-progress. Cannot redirect.","more_info":"https://www.twilio.com/docs/errors/21220","status":400}"#)?;
//! assert!(error.is_call_gone());
//! # Ok::<(), twilio_media::rest::RestError>(())
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::twiml::Method;

/// Scheme and host of the Twilio REST API; paths below start with `/2010-04-01`.
pub const API_BASE_URL: &str = "https://api.twilio.com";

/// The API version prefix of every path.
pub const API_VERSION: &str = "2010-04-01";

/// `Content-Type` of request bodies.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// `Accept` header to send.
pub const ACCEPT: &str = "application/json";

/// Maximum length of a `Twiml` parameter, in characters.
pub const MAX_TWIML_CHARS: usize = 4000;

/// Why a REST request could not be built or a response understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// The `Twiml` parameter exceeds [`MAX_TWIML_CHARS`].
    #[error("TwiML is {chars} characters long; Twilio accepts at most {MAX_TWIML_CHARS}")]
    TwimlTooLong {
        /// The length in characters.
        chars: usize,
    },
    /// The error body is not the JSON Twilio documents.
    #[error("Twilio REST error body is not valid JSON: {0}")]
    ErrorBody(serde_json::Error),
}

/// Percent-encodes a path segment (SIDs are alphanumeric; anything else is encoded so a
/// malformed SID cannot change the path).
fn push_segment(out: &mut String, segment: &str) {
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// `/2010-04-01/Accounts/{AccountSid}/Calls.json`: create a call (POST) or list calls.
pub fn calls_path(account_sid: &str) -> String {
    let mut path = format!("/{API_VERSION}/Accounts/");
    push_segment(&mut path, account_sid);
    path.push_str("/Calls.json");
    path
}

/// `/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`: update (POST) or fetch a call.
pub fn call_path(account_sid: &str, call_sid: &str) -> String {
    let mut path = format!("/{API_VERSION}/Accounts/");
    push_segment(&mut path, account_sid);
    path.push_str("/Calls/");
    push_segment(&mut path, call_sid);
    path.push_str(".json");
    path
}

fn check_twiml(twiml: &str) -> Result<(), RestError> {
    let chars = twiml.chars().count();
    if chars > MAX_TWIML_CHARS {
        return Err(RestError::TwimlTooLong { chars });
    }
    Ok(())
}

fn encode(pairs: &[(&'static str, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
        .finish()
}

/// The form body of "update a live call" (`POST` [`call_path`]).
///
/// Updating with TwiML or a URL interrupts whatever the call is doing, including a
/// `<Connect><Stream>`: Twilio ends the stream (`stop`, then the socket closes) and runs
/// the new instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct UpdateCall {
    pairs: Vec<(&'static str, String)>,
}

impl UpdateCall {
    /// `Status=completed`: hang up an in-progress call.
    pub fn hang_up() -> Self {
        Self {
            pairs: vec![("Status", "completed".into())],
        }
    }

    /// `Status=canceled`: cancel a call that is still queued or ringing.
    pub fn cancel() -> Self {
        Self {
            pairs: vec![("Status", "canceled".into())],
        }
    }

    /// `Twiml=…`: run this TwiML now (at most [`MAX_TWIML_CHARS`] characters).
    pub fn twiml(twiml: impl Into<String>) -> Result<Self, RestError> {
        let twiml = twiml.into();
        check_twiml(&twiml)?;
        Ok(Self {
            pairs: vec![("Twiml", twiml)],
        })
    }

    /// `Url=…&Method=…`: fetch new TwiML from `url`.
    pub fn redirect(url: impl Into<String>, method: Method) -> Self {
        Self {
            pairs: vec![("Url", url.into()), ("Method", method.as_str().into())],
        }
    }

    /// Adds `StatusCallback` (and its method).
    pub fn status_callback(mut self, url: impl Into<String>, method: Method) -> Self {
        self.pairs.push(("StatusCallback", url.into()));
        self.pairs
            .push(("StatusCallbackMethod", method.as_str().into()));
        self
    }

    /// Adds `TimeLimit` (seconds).
    pub fn time_limit(mut self, seconds: u32) -> Self {
        self.pairs.push(("TimeLimit", seconds.to_string()));
        self
    }

    /// The parameters, in order.
    pub fn pairs(&self) -> &[(&'static str, String)] {
        &self.pairs
    }

    /// The `application/x-www-form-urlencoded` body.
    pub fn to_form(&self) -> String {
        encode(&self.pairs)
    }
}

/// Where a new call gets its instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallSource {
    /// `Twiml=…` (checked against [`MAX_TWIML_CHARS`] by [`CreateCall::new`]).
    Twiml(String),
    /// `Url=…` with optional `Method`.
    Url {
        /// The TwiML URL.
        url: String,
        /// `Method` (Twilio's default is `POST`).
        method: Option<Method>,
    },
    /// `ApplicationSid=AP…`.
    ApplicationSid(String),
}

/// The form body of "create a call" (`POST` [`calls_path`]).
///
/// ```
/// use twilio_media::rest::{CallSource, CreateCall};
/// use twilio_media::twiml::{Method, Response, Stream};
///
/// let twiml = Response::new()
///     .connect(Stream::new("wss://bridge.example.com/media").parameter("token", "t1"))
///     .to_xml();
/// let body = CreateCall::new("+15551234567", "+15005550006", CallSource::Twiml(twiml))?
///     .status_callback("https://bridge.example.com/status", Method::Post)
///     .status_callback_events(["initiated", "answered", "completed"])
///     .timeout(30)
///     .to_form();
/// assert!(body.starts_with("To=%2B15551234567&From=%2B15005550006&Twiml="));
/// assert!(body.ends_with("StatusCallbackEvent=initiated&StatusCallbackEvent=answered&StatusCallbackEvent=completed&Timeout=30"));
/// # Ok::<(), twilio_media::rest::RestError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct CreateCall {
    pairs: Vec<(&'static str, String)>,
}

impl CreateCall {
    /// Call `to` from `from` (a Twilio number or verified caller ID) and run `source`.
    pub fn new(
        to: impl Into<String>,
        from: impl Into<String>,
        source: CallSource,
    ) -> Result<Self, RestError> {
        let mut pairs = vec![("To", to.into()), ("From", from.into())];
        match source {
            CallSource::Twiml(twiml) => {
                check_twiml(&twiml)?;
                pairs.push(("Twiml", twiml));
            }
            CallSource::Url { url, method } => {
                pairs.push(("Url", url));
                if let Some(method) = method {
                    pairs.push(("Method", method.as_str().into()));
                }
            }
            CallSource::ApplicationSid(sid) => pairs.push(("ApplicationSid", sid)),
        }
        Ok(Self { pairs })
    }

    /// `StatusCallback` and `StatusCallbackMethod`.
    pub fn status_callback(mut self, url: impl Into<String>, method: Method) -> Self {
        self.pairs.push(("StatusCallback", url.into()));
        self.pairs
            .push(("StatusCallbackMethod", method.as_str().into()));
        self
    }

    /// `StatusCallbackEvent`, repeated once per event (`initiated`, `ringing`,
    /// `answered`, `completed`). Without it Twilio only reports `completed`.
    pub fn status_callback_events<I, S>(mut self, events: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for event in events {
            self.pairs.push(("StatusCallbackEvent", event.into()));
        }
        self
    }

    /// `Timeout`: seconds to let the phone ring (Twilio: default 60, max 600).
    pub fn timeout(mut self, seconds: u32) -> Self {
        self.pairs.push(("Timeout", seconds.to_string()));
        self
    }

    /// `TimeLimit`: maximum call duration in seconds.
    pub fn time_limit(mut self, seconds: u32) -> Self {
        self.pairs.push(("TimeLimit", seconds.to_string()));
        self
    }

    /// `MachineDetection`: `Enable` or `DetectMessageEnd`.
    pub fn machine_detection(mut self, mode: impl Into<String>) -> Self {
        self.pairs.push(("MachineDetection", mode.into()));
        self
    }

    /// Any other documented parameter (e.g. `SendDigits`, `Record`).
    pub fn param(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.pairs.push((name, value.into()));
        self
    }

    /// The parameters, in order.
    pub fn pairs(&self) -> &[(&'static str, String)] {
        &self.pairs
    }

    /// The `application/x-www-form-urlencoded` body.
    pub fn to_form(&self) -> String {
        encode(&self.pairs)
    }
}

/// The `Authorization: Basic …` value for the REST API: the Account SID and Auth Token,
/// or an API key SID (`SK…`) and its secret. `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth(String);

impl BasicAuth {
    /// Builds `Basic base64(username:password)`.
    pub fn new(username: &str, password: &str) -> Self {
        let mut value = String::from("Basic ");
        BASE64.encode_string(format!("{username}:{password}"), &mut value);
        Self(value)
    }

    /// The header value, `Basic …`. Contains the secret: never log it.
    pub fn header_value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BasicAuth([redacted])")
    }
}

/// A Twilio REST error body: `{"code":…,"message":…,"more_info":…,"status":…}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[non_exhaustive]
pub struct ApiError {
    /// Twilio error code, such as `21220`.
    #[serde(default)]
    pub code: Option<u32>,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Link to the error's documentation.
    #[serde(default)]
    pub more_info: Option<String>,
    /// The HTTP status, repeated.
    #[serde(default)]
    pub status: Option<u16>,
}

impl ApiError {
    /// Twilio's code for "call is not in-progress" (updating a call that already ended).
    pub const CALL_NOT_IN_PROGRESS: u32 = 21220;
    /// Twilio's code for "the requested resource was not found".
    pub const NOT_FOUND: u32 = 20404;

    /// Parses an error response body. Unknown fields are ignored.
    pub fn parse(body: &[u8]) -> Result<Self, RestError> {
        serde_json::from_slice(body).map_err(RestError::ErrorBody)
    }

    /// True for code 21220: the call has already ended, so a hang-up or redirect has
    /// nothing to do. Treat as success ("already gone"), not as a failure.
    pub fn is_call_gone(&self) -> bool {
        self.code == Some(Self::CALL_NOT_IN_PROGRESS)
    }

    /// True for code 20404 (no such resource: wrong SID, or a call from another account).
    pub fn is_not_found(&self) -> bool {
        self.code == Some(Self::NOT_FOUND)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "Twilio error {code}: {}", self.message),
            None => write!(f, "Twilio error: {}", self.message),
        }
    }
}

impl std::error::Error for ApiError {}
