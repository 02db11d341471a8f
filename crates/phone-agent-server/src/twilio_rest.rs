//! The Twilio REST client: hang up, transfer (update a live call with new TwiML) and place
//! outbound calls.
//!
//! Request and response **shapes** (paths, form bodies, the Basic `Authorization` value, the
//! error body) come from [`twilio_media::rest`]; this module only sends them:
//!
//! * over the server's one HTTP client ([`http_client`]: reqwest on rustls with the `ring`
//!   provider and webpki roots, the same TLS stack as the OpenAI connection, no second one);
//! * with HTTP Basic auth: the Account SID and Auth Token, or an API key (`SK…` +
//!   secret, `TWILIO_API_KEY_SID` / `TWILIO_API_KEY_SECRET`; the path still names the
//!   account);
//! * form-encoded, each attempt bounded by `twilio.rest_timeout_ms`;
//! * updates are retried with exponential backoff (honouring a `Retry-After` of at most a few
//!   seconds) on **429 and 5xx only**: a 4xx is an answer, and a timeout is not retried
//!   because the update may have taken effect;
//! * **creates are never retried blindly**: a call placed twice is worse than an error the
//!   user sees. Only a 429 (Twilio refused before creating anything) is retried; a timeout
//!   after the request was sent, a 5xx or an unreadable 2xx answer is
//!   [`RestCallError::OutcomeUnknown`] ("the call may have been placed"), and a connection
//!   that never opened is [`RestCallError::Transport`] (nothing was sent);
//! * Twilio error codes 20404 and 21220 mean the call is already gone
//!   ([`UpdateOutcome::AlreadyGone`]): a hang-up has nothing left to do.
//!
//! The base URL is `twilio.rest_base_url` (`https://api.twilio.com`), so tests point it at the
//! test kit's mock REST API. Never on the audio path: call control runs when a tool asks for it.

use std::time::Duration;

use bytes::Bytes;
use twilio_media::rest::{self as shapes, ApiError, BasicAuth, CreateCall, UpdateCall};

use crate::config::{Config, Secret};

/// Longest `Retry-After` honoured; longer ones are capped (a call is waiting).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(4);

/// Largest response body read (call resources are ~2 KiB).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// The server's HTTP client (Twilio REST and webhook tools): rustls with `ring` and webpki
/// roots, HTTP/1.1, no proxy from the environment, no redirects (a webhook that redirects is
/// misconfigured; Twilio's API does not).
pub fn http_client() -> Result<reqwest::Client, String> {
    let tls = openai_realtime::client::default_tls_config()
        .map_err(|e| format!("TLS configuration: {e}"))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(concat!("phone-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// Settings of a [`TwilioRest`] client.
#[derive(Debug, Clone)]
pub struct RestSettings {
    /// Scheme and host, without the `/2010-04-01` path (`https://api.twilio.com`).
    pub base_url: String,
    /// The account whose calls are controlled (`AC…`).
    pub account_sid: String,
    /// Basic-auth user name: the Account SID or an API key SID (`SK…`).
    pub username: String,
    /// Basic-auth password: the Auth Token or the API key's secret.
    pub password: Secret,
    /// Bound on one attempt (connect, send, answer).
    pub timeout: Duration,
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
}

impl RestSettings {
    /// The settings from the configuration, or `None` when REST is not configured (no
    /// Account SID, or neither an Auth Token nor an API key).
    pub fn from_config(config: &Config) -> Option<RestSettings> {
        let twilio = &config.twilio;
        let account_sid = twilio.account_sid.clone()?;
        let (username, password) = match (&twilio.api_key_sid, &twilio.api_key_secret) {
            (Some(sid), Some(secret)) => (sid.clone(), secret.clone()),
            _ => (account_sid.clone(), twilio.auth_token.clone()?),
        };
        Some(RestSettings {
            base_url: twilio.rest_base_url.clone(),
            account_sid,
            username,
            password,
            timeout: twilio.rest_timeout,
            attempts: twilio.rest_attempts,
            backoff: Duration::from_millis(200),
        })
    }
}

/// What an update of a live call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Twilio accepted it.
    Updated,
    /// The call had already ended (Twilio error 21220 or 20404): nothing to do.
    AlreadyGone(ApiError),
}

/// Why a REST request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestCallError {
    /// The request could not be built (e.g. TwiML too long).
    #[error("invalid request: {0}")]
    Request(#[from] shapes::RestError),
    /// No answer (connection refused, timeout, TLS failure).
    #[error("Twilio REST API unreachable: {0}")]
    Transport(String),
    /// Twilio answered with an error.
    #[error("Twilio answered {status}: {error}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error body.
        error: ApiError,
    },
    /// Twilio answered with an error whose body is not Twilio's JSON.
    #[error("Twilio answered {status}")]
    Status {
        /// HTTP status.
        status: u16,
    },
    /// A create was sent but its outcome is unknown (timeout after sending, a 5xx, an
    /// unreadable answer): the call may have been placed. Never retried.
    #[error(
        "the outcome is unknown ({0}): the call may have been placed; it was not retried \
         (check the Twilio console's call log before trying again)"
    )]
    OutcomeUnknown(String),
}

impl RestCallError {
    /// Whether the request may have taken effect although it failed.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, RestCallError::OutcomeUnknown(_))
    }
}

/// Which failures a request retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// 429 and 5xx (updates: repeating one is harmless).
    Transient,
    /// 429 only, and anything after sending is [`RestCallError::OutcomeUnknown`] (creates).
    CreateOnce,
}

/// A Twilio REST client for one account. Cheap to clone.
#[derive(Clone)]
pub struct TwilioRest {
    http: reqwest::Client,
    base_url: String,
    account_sid: String,
    auth: BasicAuth,
    timeout: Duration,
    attempts: u32,
    backoff: Duration,
}

impl std::fmt::Debug for TwilioRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioRest")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl TwilioRest {
    /// A client sending with `http` (see [`http_client`]).
    pub fn new(http: reqwest::Client, settings: RestSettings) -> TwilioRest {
        TwilioRest {
            http,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            auth: BasicAuth::new(&settings.username, settings.password.expose()),
            account_sid: settings.account_sid,
            timeout: settings.timeout,
            attempts: settings.attempts.max(1),
            backoff: settings.backoff,
        }
    }

    /// The account SID in request paths.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// Updates a live call (`POST …/Calls/{call_sid}.json`): hang up, or run new TwiML.
    pub async fn update_call(
        &self,
        call_sid: &str,
        update: &UpdateCall,
    ) -> Result<UpdateOutcome, RestCallError> {
        let path = shapes::call_path(&self.account_sid, call_sid);
        match self.post(&path, update.to_form(), Retry::Transient).await {
            Ok(_) => Ok(UpdateOutcome::Updated),
            Err(RestCallError::Api { error, .. })
                if error.is_call_gone() || error.is_not_found() =>
            {
                Ok(UpdateOutcome::AlreadyGone(error))
            }
            Err(e) => Err(e),
        }
    }

    /// Places an outbound call (`POST …/Calls.json`); returns the call resource Twilio
    /// answered (`sid`, `status`, …). Never retried except after a 429: see the module docs.
    pub async fn create_call(
        &self,
        create: &CreateCall,
    ) -> Result<serde_json::Value, RestCallError> {
        let path = shapes::calls_path(&self.account_sid);
        let body = self
            .post(&path, create.to_form(), Retry::CreateOnce)
            .await?;
        serde_json::from_slice(&body).map_err(|e| {
            RestCallError::OutcomeUnknown(format!("Twilio's answer is not a call resource: {e}"))
        })
    }

    /// POSTs a form, retrying as `retry` says; the body of the 2xx answer.
    async fn post(&self, path: &str, form: String, retry: Retry) -> Result<Bytes, RestCallError> {
        let url = format!("{}{path}", self.base_url);
        let mut attempt = 1;
        loop {
            match self.post_once(&url, form.clone(), retry).await {
                Ok(body) => {
                    tracing::debug!(path, attempt, "Twilio REST request done");
                    crate::telemetry::rest_request("ok");
                    return Ok(body);
                }
                Err(Failure::Retryable {
                    status,
                    retry_after,
                }) if attempt < self.attempts => {
                    let delay = retry_after
                        .unwrap_or(self.backoff * 2u32.saturating_pow(attempt - 1))
                        .min(MAX_RETRY_AFTER);
                    tracing::info!(
                        path,
                        attempt,
                        status,
                        delay_ms = delay.as_millis() as u64,
                        "Twilio REST request failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(failure) => {
                    let error = failure.into_error();
                    crate::telemetry::rest_request("error");
                    tracing::warn!(path, attempt, error = %error, "Twilio REST request failed");
                    return Err(error);
                }
            }
        }
    }

    async fn post_once(&self, url: &str, form: String, retry: Retry) -> Result<Bytes, Failure> {
        // After the request may have reached Twilio, a create's failure leaves its outcome
        // unknown; before (no connection), nothing was sent.
        let lost = |e: String, sent: bool| {
            Failure::Final(if retry == Retry::CreateOnce && sent {
                RestCallError::OutcomeUnknown(e)
            } else {
                RestCallError::Transport(e)
            })
        };
        let response = self
            .http
            .post(url)
            .header(http::header::AUTHORIZATION, self.auth.header_value())
            .header(http::header::CONTENT_TYPE, shapes::FORM_CONTENT_TYPE)
            .header(http::header::ACCEPT, shapes::ACCEPT)
            .body(form)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| lost(describe(&e), !e.is_connect()))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_capped(response).await.map_err(|e| lost(e, true))?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        if status >= 500 && retry == Retry::CreateOnce {
            return Err(lost(format!("Twilio answered {status}"), true));
        }
        if status == 429 || status >= 500 {
            return Err(Failure::Retryable {
                status,
                retry_after,
            });
        }
        Err(Failure::Final(match ApiError::parse(&body) {
            Ok(error) => RestCallError::Api { status, error },
            Err(_) => RestCallError::Status { status },
        }))
    }
}

/// One attempt's failure.
enum Failure {
    Retryable {
        status: u16,
        retry_after: Option<Duration>,
    },
    Final(RestCallError),
}

impl Failure {
    fn into_error(self) -> RestCallError {
        match self {
            Failure::Retryable { status, .. } => RestCallError::Status { status },
            Failure::Final(e) => e,
        }
    }
}

/// A reqwest error with its causes (reqwest's `Display` omits them).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Reads a response body up to [`MAX_RESPONSE_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Bytes, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("response larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}
