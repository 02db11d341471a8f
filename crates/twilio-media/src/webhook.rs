//! Twilio's HTTP requests to us, as typed structs: the voice webhook ([`VoiceRequest`]),
//! the `<Stream statusCallback>` ([`StreamStatusCallback`]) and the call status callback
//! ([`CallStatusCallback`]).
//!
//! Twilio sends these as `application/x-www-form-urlencoded` bodies (or, for GET, the
//! query string). Each struct keeps **every** pair in arrival order in [`Params`]: the
//! signature covers all of them (see [`crate::signature`]), and Twilio adds parameters over
//! time, so unknown ones stay accessible. Known parameters with an empty value are read as
//! absent.
//!
//! ```
//! use twilio_media::signature::RequestValidator;
//! use twilio_media::webhook::{CallStatus, Direction, VoiceRequest};
//!
//! let body = b"CallSid=CA00000000000000000000000000000001&AccountSid=AC00000000000000000000000000000001\
//!              &From=%2B14155551234&To=%2B15005550006&CallStatus=ringing&Direction=inbound&StirVerstat=TN-Validation-Passed-A";
//! let call = VoiceRequest::from_urlencoded(body)?;
//! assert_eq!(call.from.as_deref(), Some("+14155551234"));
//! assert_eq!(call.call_status, Some(CallStatus::Ringing));
//! assert_eq!(call.direction, Some(Direction::Inbound));
//! assert_eq!(call.params.get("StirVerstat"), Some("TN-Validation-Passed-A"));
//!
//! // The pairs feed the signature check directly.
//! let validator = RequestValidator::new("token");
//! let signature = validator.compute("https://example.com/voice", call.params.pairs());
//! assert!(validator.validate("https://example.com/voice", call.params.pairs(), &signature));
//! # Ok::<(), twilio_media::webhook::WebhookError>(())
//! ```
//!
//! This module only parses; it does not read requests, validate signatures or answer.

use std::fmt;

use crate::sid::{AccountSid, CallSid, StreamSid};

/// Why a webhook request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// A parameter this request always carries is absent (or empty).
    #[error("Twilio request is missing the parameter `{name}`")]
    MissingParam {
        /// The parameter name.
        name: &'static str,
    },
    /// A parameter has a value of the wrong shape (e.g. a non-numeric duration).
    #[error("Twilio request has an invalid `{name}`: {value:?}")]
    InvalidParam {
        /// The parameter name.
        name: &'static str,
        /// The value received.
        value: String,
    },
}

/// All form parameters of a request, in arrival order, repeats included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Decodes an `application/x-www-form-urlencoded` body (or a query string without the
    /// `?`). Never fails: malformed percent-escapes are kept literally, invalid UTF-8 is
    /// replaced, as browsers and Twilio's helper libraries do.
    pub fn from_urlencoded(body: &[u8]) -> Self {
        Self {
            pairs: form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// Collects already-decoded pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The first value of `name` (case-sensitive, as Twilio's names are).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'p>(&'p self, name: &'p str) -> impl Iterator<Item = &'p str> + 'p {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All pairs in arrival order: pass these to
    /// [`RequestValidator::validate`](crate::signature::RequestValidator::validate).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Iterates over `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The first non-empty value of `name`, owned.
    fn text(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    fn required(&self, name: &'static str) -> Result<String, WebhookError> {
        self.text(name).ok_or(WebhookError::MissingParam { name })
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str) -> Result<Option<T>, WebhookError> {
        match self.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| WebhookError::InvalidParam {
                name,
                value: v.to_owned(),
            }),
        }
    }
}

impl<'p> IntoIterator for &'p Params {
    type Item = &'p (String, String);
    type IntoIter = std::slice::Iter<'p, (String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.pairs.iter()
    }
}

macro_rules! wire_enum {
    (
        $(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal,)* }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A value this crate does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// Reads a wire value (never fails: unknown values become `Other`).
            pub fn parse(value: &str) -> Self {
                match value {
                    $($wire => Self::$variant,)*
                    other => Self::Other(other.to_owned()),
                }
            }

            /// The wire value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::Other(s) => s,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// `CallStatus`: where the call is in its life.
    CallStatus {
        /// `queued`
        Queued = "queued",
        /// `initiated`
        Initiated = "initiated",
        /// `ringing` (what an inbound voice webhook normally shows)
        Ringing = "ringing",
        /// `in-progress`
        InProgress = "in-progress",
        /// `completed`
        Completed = "completed",
        /// `busy`
        Busy = "busy",
        /// `failed`
        Failed = "failed",
        /// `no-answer`
        NoAnswer = "no-answer",
        /// `canceled`
        Canceled = "canceled",
    }
}

impl CallStatus {
    /// True for the statuses after which the call is over: `completed`, `busy`,
    /// `failed`, `no-answer`, `canceled`.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Busy | Self::Failed | Self::NoAnswer | Self::Canceled
        )
    }
}

wire_enum! {
    /// `Direction` of the call.
    Direction {
        /// `inbound`: someone called our number.
        Inbound = "inbound",
        /// `outbound-api`: we created the call through the REST API.
        OutboundApi = "outbound-api",
        /// `outbound-dial`: a leg created by `<Dial>`.
        OutboundDial = "outbound-dial",
    }
}

wire_enum! {
    /// `StreamEvent` of a `<Stream statusCallback>` request.
    StreamEvent {
        /// `stream-started`
        Started = "stream-started",
        /// `stream-stopped`
        Stopped = "stream-stopped",
        /// `stream-error` (see `StreamError`)
        Error = "stream-error",
    }
}

/// Geographic lookup data Twilio adds when available (`FromCity`, `ToState`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Geo {
    /// `…City`
    pub city: Option<String>,
    /// `…State`
    pub state: Option<String>,
    /// `…Zip`
    pub zip: Option<String>,
    /// `…Country`
    pub country: Option<String>,
}

impl Geo {
    fn read(params: &Params, prefix: &str) -> Self {
        let field = |suffix: &str| params.text(&format!("{prefix}{suffix}"));
        Self {
            city: field("City"),
            state: field("State"),
            zip: field("Zip"),
            country: field("Country"),
        }
    }
}

/// The voice webhook: Twilio asks what to do with a call and expects TwiML back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceRequest {
    /// `CallSid` (required).
    pub call_sid: CallSid<'static>,
    /// `AccountSid` (required).
    pub account_sid: AccountSid<'static>,
    /// `From`: E.164 number, `client:name`, or a SIP URI.
    pub from: Option<String>,
    /// `To`: the called number or identity.
    pub to: Option<String>,
    /// `Direction`.
    pub direction: Option<Direction>,
    /// `CallStatus`.
    pub call_status: Option<CallStatus>,
    /// `ApiVersion`, such as `2010-04-01`.
    pub api_version: Option<String>,
    /// `Caller` (legacy duplicate of `From`).
    pub caller: Option<String>,
    /// `Called` (legacy duplicate of `To`).
    pub called: Option<String>,
    /// `ForwardedFrom`.
    pub forwarded_from: Option<String>,
    /// `CallerName` (caller ID name lookup, when enabled).
    pub caller_name: Option<String>,
    /// `ParentCallSid` (for legs created by `<Dial>` or similar).
    pub parent_call_sid: Option<CallSid<'static>>,
    /// `CallToken`.
    pub call_token: Option<String>,
    /// `StirVerstat`: SHAKEN/STIR attestation result.
    pub stir_verstat: Option<String>,
    /// `FromCity`, `FromState`, `FromZip`, `FromCountry`.
    pub from_geo: Geo,
    /// `ToCity`, `ToState`, `ToZip`, `ToCountry`.
    pub to_geo: Geo,
    /// Every parameter, in arrival order (including the ones above).
    pub params: Params,
}

impl VoiceRequest {
    /// Reads a form-encoded body.
    pub fn from_urlencoded(body: &[u8]) -> Result<Self, WebhookError> {
        Self::from_params(Params::from_urlencoded(body))
    }

    /// Reads already-decoded pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self, WebhookError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::from_params(Params::from_pairs(pairs))
    }

    /// Reads the typed fields out of `params`.
    pub fn from_params(params: Params) -> Result<Self, WebhookError> {
        let p = &params;
        Ok(Self {
            call_sid: CallSid::from(p.required("CallSid")?),
            account_sid: AccountSid::from(p.required("AccountSid")?),
            from: p.text("From"),
            to: p.text("To"),
            direction: p
                .get("Direction")
                .filter(|v| !v.is_empty())
                .map(Direction::parse),
            call_status: p
                .get("CallStatus")
                .filter(|v| !v.is_empty())
                .map(CallStatus::parse),
            api_version: p.text("ApiVersion"),
            caller: p.text("Caller"),
            called: p.text("Called"),
            forwarded_from: p.text("ForwardedFrom"),
            caller_name: p.text("CallerName"),
            parent_call_sid: p.text("ParentCallSid").map(CallSid::from),
            call_token: p.text("CallToken"),
            stir_verstat: p.text("StirVerstat"),
            from_geo: Geo::read(p, "From"),
            to_geo: Geo::read(p, "To"),
            params,
        })
    }
}

/// A `<Stream statusCallback>` request: stream started, stopped, or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStatusCallback {
    /// `AccountSid` (required).
    pub account_sid: AccountSid<'static>,
    /// `CallSid` (required).
    pub call_sid: CallSid<'static>,
    /// `StreamSid` (required).
    pub stream_sid: StreamSid<'static>,
    /// `StreamName`: the `<Stream name>`, or the stream SID by default.
    pub stream_name: Option<String>,
    /// `StreamEvent` (required).
    pub stream_event: StreamEvent,
    /// `StreamError`: the error text when `StreamEvent` is `stream-error`.
    pub stream_error: Option<String>,
    /// `Timestamp`: ISO 8601 time of the event, verbatim.
    pub timestamp: Option<String>,
    /// Every parameter, in arrival order.
    pub params: Params,
}

impl StreamStatusCallback {
    /// Reads a form-encoded body.
    pub fn from_urlencoded(body: &[u8]) -> Result<Self, WebhookError> {
        Self::from_params(Params::from_urlencoded(body))
    }

    /// Reads the typed fields out of `params`.
    pub fn from_params(params: Params) -> Result<Self, WebhookError> {
        let p = &params;
        Ok(Self {
            account_sid: AccountSid::from(p.required("AccountSid")?),
            call_sid: CallSid::from(p.required("CallSid")?),
            stream_sid: StreamSid::from(p.required("StreamSid")?),
            stream_name: p.text("StreamName"),
            stream_event: StreamEvent::parse(&p.required("StreamEvent")?),
            stream_error: p.text("StreamError"),
            timestamp: p.text("Timestamp"),
            params,
        })
    }
}

/// A call status callback (`StatusCallback` of a call): the call moved to a new status.
///
/// Use the `completed` callback (or any [final](CallStatus::is_final) status) as the
/// authoritative "call is over" signal: the Media Stream may close without a `stop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStatusCallback {
    /// The new `CallStatus` (required).
    pub call_status: CallStatus,
    /// `CallDuration`: seconds, on completion.
    pub call_duration: Option<u64>,
    /// `Duration`: billed minutes, on completion (when sent).
    pub duration: Option<u64>,
    /// `SequenceNumber`: orders callbacks of one call.
    pub sequence_number: Option<u64>,
    /// `Timestamp`: RFC 2822 time of the event, verbatim.
    pub timestamp: Option<String>,
    /// `CallbackSource`, such as `call-progress-events`.
    pub callback_source: Option<String>,
    /// `SipResponseCode`, when sent.
    pub sip_response_code: Option<u16>,
    /// The call parameters shared with the voice webhook (SIDs, From, To, …), including
    /// every pair in [`VoiceRequest::params`].
    pub call: VoiceRequest,
}

impl CallStatusCallback {
    /// Reads a form-encoded body.
    pub fn from_urlencoded(body: &[u8]) -> Result<Self, WebhookError> {
        Self::from_params(Params::from_urlencoded(body))
    }

    /// Reads the typed fields out of `params`.
    pub fn from_params(params: Params) -> Result<Self, WebhookError> {
        let p = &params;
        let call_status = CallStatus::parse(&p.required("CallStatus")?);
        let call_duration = p.number("CallDuration")?;
        let duration = p.number("Duration")?;
        let sequence_number = p.number("SequenceNumber")?;
        let timestamp = p.text("Timestamp");
        let callback_source = p.text("CallbackSource");
        let sip_response_code = p.number("SipResponseCode")?;
        Ok(Self {
            call_status,
            call_duration,
            duration,
            sequence_number,
            timestamp,
            callback_source,
            sip_response_code,
            call: VoiceRequest::from_params(params)?,
        })
    }
}
