//! Configuration: layered sources parsed once into a validated, typed [`Config`].
//!
//! Layers, lowest priority first:
//!
//! 1. built-in defaults (documented in `config/default.toml`, which mirrors them exactly);
//! 2. an optional TOML file named by `PHONE_AGENT_CONFIG`;
//! 3. a `.env` file in the working directory (read with dotenvy's iterator API: the process
//!    environment is **never** modified);
//! 4. the process environment.
//!
//! Layers 3 and 4 are merged into one *source map* before parsing, so tests (and embedders) can
//! pass a literal map to [`Config::from_env_map`] and nothing reads or writes the real
//! environment.
//!
//! Every setting has a prefixed variable name, `PHONE_AGENT_<SECTION>__<KEY>` (one underscore
//! after the prefix, two between section and key), e.g. `PHONE_AGENT_AGENT__VOICE=cedar`. The
//! seed's short names keep working: `OPENAI_API_KEY`, `OPENAI_MODEL`, `OPENAI_BASE_URL`,
//! `PUBLIC_URL`, `PORT`, `PROMPT_PATH`, `TWILIO_AUTH_TOKEN`, `TWILIO_ACCOUNT_SID` and
//! `RUST_LOG`; when both forms are set in the same layer the prefixed one wins.
//!
//! Unknown `PHONE_AGENT_…` settings are errors (a typo should not silently fall back to a
//! default). Empty values count as unset.
//!
//! ```
//! use std::collections::HashMap;
//! use phone_agent_server::config::{Backend, Config};
//!
//! let env = HashMap::from([
//!     ("PORT".to_string(), "8080".to_string()),
//!     ("PHONE_AGENT_AGENT__BACKEND".to_string(), "echo".to_string()),
//! ]);
//! let config = Config::from_env_map(&env).unwrap();
//! assert_eq!(config.server.port, 8080);
//! assert_eq!(config.agent.backend, Backend::Echo);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bridge_core::engine::{DtmfMode, GoodbyeBargeIn};
use serde::Deserialize;

pub use crate::store::settings::{AdminConfig, DatabaseConfig, Pricing, PrivacyConfig};
use crate::store::settings::{RawAdmin, RawDatabase, RawPricing, RawPrivacy};

/// The prefix of every setting's environment variable.
pub const ENV_PREFIX: &str = "PHONE_AGENT";

/// The variable naming an optional TOML configuration file.
pub const CONFIG_FILE_VAR: &str = "PHONE_AGENT_CONFIG";

/// The default OpenAI model.
pub const DEFAULT_MODEL: &str = "gpt-realtime-2.1";

/// The default OpenAI API base URL (WebSocket form).
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// Short, unprefixed variable names (kept from the original project) and the setting each one
/// sets.
pub const ENV_ALIASES: &[(&str, &str)] = &[
    ("OPENAI_API_KEY", "openai.api_key"),
    ("OPENAI_MODEL", "openai.model"),
    ("OPENAI_BASE_URL", "openai.base_url"),
    ("PUBLIC_URL", "server.public_url"),
    ("PORT", "server.port"),
    ("PROMPT_PATH", "agent.prompt_path"),
    ("TWILIO_AUTH_TOKEN", "twilio.auth_token"),
    ("TWILIO_ACCOUNT_SID", "twilio.account_sid"),
    ("TWILIO_API_KEY_SID", "twilio.api_key_sid"),
    ("TWILIO_API_KEY_SECRET", "twilio.api_key_secret"),
    ("RUST_LOG", "log.filter"),
];

/// A secret string (API key, auth token). `Debug` and `Display` print `[redacted]`, so a secret
/// can sit inside any logged structure without leaking.
///
/// ```
/// use phone_agent_server::config::Secret;
/// let key = Secret::new("sk-live-123");
/// assert_eq!(format!("{key:?}"), "[redacted]");
/// assert_eq!(key.expose(), "sk-live-123");
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call only where it is sent (an auth header, an HMAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why the configuration could not be loaded. Each message names the setting and the
/// variable(s) that set it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A source could not be read or a value has the wrong type / an unknown key.
    #[error("configuration error: {0}")]
    Source(String),
    /// The `.env` file exists but could not be parsed.
    #[error("could not read {path}: {message}")]
    DotEnv {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A setting has an invalid value.
    #[error("invalid {setting} ({vars}): {message}")]
    Invalid {
        /// The setting, e.g. `server.public_url`.
        setting: &'static str,
        /// The variables that set it, e.g. `PUBLIC_URL or PHONE_AGENT_SERVER__PUBLIC_URL`.
        vars: String,
        /// What is wrong.
        message: String,
    },
    /// The prompt file is missing or unreadable.
    #[error(
        "the agent prompt file {path} cannot be read ({message}); set PROMPT_PATH to an existing file"
    )]
    PromptFile {
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// Two settings contradict each other.
    #[error("contradictory settings: {0}")]
    Contradiction(String),
    /// A key of a table or array section (`[[tools]]`, `[profiles.NAME]`, …) is invalid.
    #[error("invalid {key}: {message}")]
    Key {
        /// The key, e.g. `tools[1].url` or `profiles.pizza.numbers`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Which agent answers calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// OpenAI Realtime (GA) over WebSocket.
    Realtime,
    /// OpenAI GPT-Live (full duplex) over WebSocket; settings in [`LiveConfig`].
    Live,
    /// The built-in echo agent: plays back what the caller said. Costs nothing; for checking
    /// the number, the tunnel and the audio path.
    Echo,
}

impl Backend {
    /// The name used in configuration and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Realtime => "realtime",
            Backend::Live => "live",
            Backend::Echo => "echo",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the call span's fields attached.
    Json,
}

/// The public base URL Twilio uses to reach this server (`PUBLIC_URL`).
///
/// Signatures are checked against URLs built from it, never from the `Host` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `https://host[:port][/prefix]`, without a trailing slash.
    http_base: String,
    /// The same with `wss` (or `ws` for plain `http`).
    ws_base: String,
}

impl PublicUrl {
    /// Parses and checks a public URL: `http` or `https`, a host, no query string or fragment,
    /// no user info. A trailing slash is removed.
    ///
    /// ```
    /// use phone_agent_server::config::PublicUrl;
    /// let url = PublicUrl::parse("https://agent.example.com/").unwrap();
    /// assert_eq!(url.voice_url(), "https://agent.example.com/voice");
    /// assert_eq!(url.media_url(), "wss://agent.example.com/media");
    /// assert!(PublicUrl::parse("agent.example.com").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| format!("{raw:?} is not an http(s) URL (expected https://host)"))?;
        let ws_scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => "wss",
            "http" => "ws",
            other => {
                return Err(format!(
                    "{raw:?} has scheme {other:?}; use https:// (Twilio requires TLS) or http:// for local tests"
                ));
            }
        };
        if rest.contains(['?', '#']) {
            return Err(format!(
                "{raw:?} has a query string or fragment; Twilio forbids them in stream URLs"
            ));
        }
        let rest = rest.trim_end_matches('/');
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() || host.contains('@') || host.contains(char::is_whitespace) {
            return Err(format!("{raw:?} has no valid host"));
        }
        if let Some((_, port)) = host.rsplit_once(':')
            && !host.ends_with(']')
            && port.parse::<u16>().is_err()
        {
            return Err(format!("{raw:?} has an invalid port"));
        }
        let scheme = scheme.to_ascii_lowercase();
        Ok(PublicUrl {
            http_base: format!("{scheme}://{rest}"),
            ws_base: format!("{ws_scheme}://{rest}"),
        })
    }

    /// The base URL (`https://host[/prefix]`).
    pub fn http_base(&self) -> &str {
        &self.http_base
    }

    /// Whether the URL uses TLS (`https`), as Twilio requires for Media Streams.
    pub fn is_tls(&self) -> bool {
        self.http_base.starts_with("https://")
    }

    /// The voice webhook URL to configure on the Twilio number (`…/voice`).
    pub fn voice_url(&self) -> String {
        format!("{}/voice", self.http_base)
    }

    /// The Media Stream URL written into the TwiML (`wss://…/media`).
    pub fn media_url(&self) -> String {
        format!("{}/media", self.ws_base)
    }
}

/// HTTP server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// TCP port (`PORT`); 0 picks a free port.
    pub port: u16,
    /// Address to bind.
    pub bind_address: IpAddr,
    /// Public base URL (`PUBLIC_URL`). Without it the TwiML uses the request's `Host` header
    /// (fine behind a tunnel, but signatures cannot be checked).
    pub public_url: Option<PublicUrl>,
    /// Maximum concurrent calls; further calls are rejected as busy.
    pub max_concurrent_calls: usize,
    /// How long a client may take to send request headers.
    pub header_read_timeout: Duration,
    /// Maximum size of the `/voice` request body.
    pub voice_body_limit: usize,
    /// How long active calls may continue after a shutdown signal before they are ended
    /// (counted from the end of the notice period).
    pub shutdown_grace: Duration,
    /// After a shutdown signal: how long the server keeps accepting connections while draining
    /// (`/ready` 503, `/health`, webhooks of calls in flight, new calls answered "busy") before
    /// it stops listening.
    pub shutdown_notice: Duration,
    /// Media streams accepted but still waiting for Twilio's `start`; further upgrades get 503.
    /// Separate from the call capacity, so idle upgrades cannot make callers hear "busy".
    pub max_pending_streams: usize,
}

/// Twilio settings.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// Auth token (`TWILIO_AUTH_TOKEN`); when set, signatures are required.
    pub auth_token: Option<Secret>,
    /// Account SID (`TWILIO_ACCOUNT_SID`); when set, calls from other accounts are refused.
    pub account_sid: Option<String>,
    /// Accept unsigned requests even with an auth token (local tunnels only).
    pub danger_skip_signature_validation: bool,
    /// Allow a billed back end (OpenAI Realtime) to run without `TWILIO_AUTH_TOKEN`, i.e.
    /// without request signatures. Off by default: such a server refuses to start.
    pub danger_allow_unsigned_requests: bool,
    /// Require the per-call token that `/voice` writes into the stream URL's path
    /// (`wss://HOST/media/<token>`), checked before the upgrade.
    pub require_stream_token: bool,
    /// How long a minted stream token stays valid (and how long `/voice` reserves the call's
    /// capacity for its stream).
    pub stream_token_ttl: Duration,
    /// The key of stream tokens; `None`: derived from the auth token (or random per process
    /// without one). Set the same value on every instance behind a load balancer when the
    /// auth token is not set.
    pub stream_token_secret: Option<Secret>,
    /// Extra `<Parameter>`s added to every stream (also available to the prompt).
    pub stream_parameters: BTreeMap<String, String>,
    /// Base URL of the REST API (`https://api.twilio.com`; tests point it at a mock).
    pub rest_base_url: String,
    /// API key SID (`SK…`, `TWILIO_API_KEY_SID`): REST requests authenticate with it and
    /// [`Self::api_key_secret`] instead of the Auth Token.
    pub api_key_sid: Option<String>,
    /// The API key's secret (`TWILIO_API_KEY_SECRET`).
    pub api_key_secret: Option<Secret>,
    /// Bound on one REST request attempt.
    pub rest_timeout: Duration,
    /// REST attempts in all; 429 and 5xx answers are retried with backoff.
    pub rest_attempts: u32,
}

impl TwilioConfig {
    /// The auth token to validate signatures with, or `None` when validation is off.
    pub fn signature_key(&self) -> Option<&Secret> {
        if self.danger_skip_signature_validation {
            None
        } else {
            self.auth_token.as_ref()
        }
    }
}

/// Agent settings shared by every back end.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The back end that answers calls.
    pub backend: Backend,
    /// The prompt file (`PROMPT_PATH`), read at every call.
    pub prompt_path: PathBuf,
    /// Voice name.
    pub voice: String,
    /// Instructions for the agent's first words; `None` (configured as `""` or `"off"`) waits
    /// for the caller to speak first.
    pub greeting: Option<String>,
    /// Calls are ended after this long.
    pub max_call_duration: Duration,
    /// A call whose caller sends no audio for this long is ended.
    pub media_inactivity_timeout: Duration,
    /// How long to wait for Twilio's `start` message after the upgrade.
    pub stream_start_timeout: Duration,
    /// The caller's silence (after the agent finished) that triggers the idle policy; `None`
    /// disables it.
    pub idle_timeout: Option<Duration>,
    /// Instructions for one reprompt when the caller is idle; `None` ends the call at once.
    pub idle_reprompt: Option<String>,
    /// What keypad presses do.
    pub dtmf: DtmfMode,
    /// The longest piece of agent audio sent to Twilio before a mark (see
    /// [`bridge_core::engine::CallConfig::mark_interval`]).
    pub mark_interval: Duration,
    /// Instructions for one response after a failed response's retry failed too; `None`
    /// (configured as `""` or `"off"`) asks nothing more (see
    /// [`bridge_core::engine::CallConfig::apology`]).
    pub apology: Option<String>,
    /// How long the caller must speak before the agent's audio is cleared (see
    /// [`bridge_core::engine::CallConfig::min_barge_in_speech`]); zero clears at once.
    pub min_barge_in: Duration,
    /// What the caller speaking over the agent's goodbye (after `end_call` or
    /// `transfer_call`) does (see [`bridge_core::engine::CallConfig::goodbye_barge_in`]).
    pub goodbye_barge_in: GoodbyeBargeIn,
    /// A Realtime agent that owes a response and sends nothing for this long has failed (see
    /// [`bridge_core::engine::CallConfig::agent_response_timeout`]); `None` (configured as 0):
    /// never.
    pub response_timeout: Option<Duration>,
    /// Open the Realtime session when `/voice` answers (see [`crate::prewarm`]); GPT-Live is
    /// never pre-warmed.
    pub prewarm: bool,
}

/// OpenAI Realtime settings.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// How the key is sent on the WebSocket upgrade (Realtime and GPT-Live alike).
    pub auth: OpenAiAuth,
    /// API key (`OPENAI_API_KEY`).
    pub api_key: Option<Secret>,
    /// Model (`OPENAI_MODEL`).
    pub model: String,
    /// API base URL (`OPENAI_BASE_URL`), as the official SDKs read it: `https://…/v1`
    /// (`wss://`, `http://` and `ws://` are accepted too; `http` means plain WebSocket).
    pub base_url: String,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
    /// Connection attempts before the call is given up.
    pub connect_attempts: u32,
    /// Input transcription model; `None` turns transcription off.
    pub transcription_model: Option<String>,
    /// Transcription language hint (ISO-639-1).
    pub transcription_language: Option<String>,
    /// Noise reduction applied before VAD.
    pub noise_reduction: NoiseReduction,
    /// Turn detection.
    pub turn_detection: TurnDetection,
}

/// Input noise reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseReduction {
    /// None.
    Off,
    /// For close-talking microphones (handsets, headsets).
    NearField,
    /// For far-field microphones (speakerphones).
    FarField,
}

/// Turn detection of the Realtime session.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnDetection {
    /// Volume-based VAD.
    ServerVad {
        /// 0.0–1.0; higher needs louder speech.
        threshold: f64,
        /// Audio kept before detected speech.
        prefix_padding_ms: u32,
        /// Silence that ends a turn.
        silence_duration_ms: u32,
        /// Respond automatically at the end of a turn.
        create_response: bool,
        /// Cancel the running response when the caller starts speaking.
        interrupt_response: bool,
        /// Prompt the caller after this much silence (5000–30000 ms).
        idle_timeout_ms: Option<u32>,
    },
    /// Model-based end-of-turn detection.
    SemanticVad {
        /// `low`, `medium`, `high` or `auto`.
        eagerness: String,
        /// Respond automatically at the end of a turn.
        create_response: bool,
        /// Cancel the running response when the caller starts speaking.
        interrupt_response: bool,
    },
}

impl TurnDetection {
    /// Whether the server cancels its own response on caller speech.
    pub fn interrupts_itself(&self) -> bool {
        match self {
            TurnDetection::ServerVad {
                interrupt_response, ..
            }
            | TurnDetection::SemanticVad {
                interrupt_response, ..
            } => *interrupt_response,
        }
    }
}

/// Who answers GPT-Live's delegations (tool work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveDelegation {
    /// A Responses model run by OpenAI (`live.backend_model`) with the server's tools; their
    /// function calls are executed here.
    Responses,
    /// This server: each delegation becomes a call of `live.client_tool`.
    Client,
}

/// GPT-Live settings (`[live]`).
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Voice model (`gpt-live-1`, `gpt-live-1.1`; on Azure the deployment name).
    pub model: String,
    /// Voice.
    pub voice: String,
    /// The first line, said (via `session.commentary.append`) once the session has started;
    /// `None` waits for the caller.
    pub greeting: Option<String>,
    /// Who handles delegations.
    pub delegation: LiveDelegation,
    /// Responses delegation: the backend model.
    pub backend_model: String,
    /// Responses delegation: the backend's instructions.
    pub backend_instructions: Option<String>,
    /// Client delegation: the tool (of the server's tool executor) that answers delegations.
    pub client_tool: Option<String>,
    /// Longest session before the wrap-up (sessions are observed to close after about 2 h;
    /// the call's `agent.max_call_secs` applies too).
    pub session_cap: Duration,
    /// The wrap-up starts this long before `expires_at`.
    pub wrap_up_before: Duration,
    /// Session recycling (with `[reconnect]` on): from this long before `expires_at` (or the
    /// cap) the session is replaced at the next pause by a fresh one seeded with the
    /// conversation; the wrap-up line stays the fallback. Zero: off.
    pub recycle_before: Duration,
    /// The line said at the wrap-up.
    pub wrap_up_line: String,
    /// Time given to the wrap-up line before the call ends.
    pub wrap_up_grace: Duration,
    /// How long to wait for `session.closed` after `session.close`.
    pub close_timeout: Duration,
    /// The upper bound on how long a tool-requested hang-up or transfer waits for the goodbye,
    /// counted from its last speech (GPT-Live has no response boundaries to tell when it
    /// ended).
    pub goodbye_timeout: Duration,
    /// The goodbye is over once its speech was followed by this much quiet output (and no
    /// output transcript fragment): the action follows once the caller has heard it
    /// (`CallConfig::goodbye_quiet`). `None` (0): only `goodbye_timeout`.
    pub goodbye_quiet: Option<Duration>,
    /// Put the profile's MCP servers into `delegation.responses.tools` (the guide documents
    /// only `function` and `web_search` there: off by default, see docs/gpt-live.md).
    pub mcp_servers: bool,
    /// Send `session.safety_identifier`: a keyed pseudonym of the caller's number
    /// (`StreamTokenKey::pseudonym`), for OpenAI's abuse detection. Never the number itself.
    pub safety_identifier: bool,
}

/// Settings of the built-in echo agent.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// Silence after speech that ends an utterance and starts the playback.
    pub pause: Duration,
    /// Longest utterance kept; longer speech is cut at this length.
    pub max_utterance: Duration,
    /// Play a short tone when the call starts.
    pub greeting_tone: bool,
}

/// What follows the media stream in the call's TwiML: played when the call ends for a reason
/// other than a normal hang-up (the agent failed or could not connect, the server shut down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackConfig {
    /// Whether the `/voice` TwiML continues after the stream at all.
    pub enabled: bool,
    /// The line spoken (`<Say>`); `None` says nothing.
    pub say: Option<String>,
    /// What happens after the line.
    pub action: FallbackAction,
}

/// How the OpenAI key is presented on the WebSocket upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenAiAuth {
    /// `Authorization: Bearer <key>` (OpenAI; Azure with a Microsoft Entra token).
    #[default]
    Bearer,
    /// `api-key: <key>` (an Azure OpenAI resource key).
    ApiKey,
}

/// Reconnecting a call's agent session (Realtime or GPT-Live) when its connection is lost
/// mid-call (a TCP drop, a close we did not ask for, a 5xx or timeout when reconnecting). Echo
/// calls are not reconnected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectSettings {
    /// Whether lost connections are reconnected at all.
    pub enabled: bool,
    /// Connection attempts per gap.
    pub attempts: u32,
    /// Reconnects per call; a further loss ends the call.
    pub max_per_call: u32,
    /// Longest gap (loss → fresh session ready) before the call ends into the fallback.
    pub max_gap: Duration,
    /// Wait before the second attempt, doubled for each further one.
    pub backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Play the hold tone to the caller during the gap (else silence).
    pub hold_tone: bool,
    /// Instructions for the agent's first response after the replay; `None`: wait for the
    /// caller.
    pub resume_instructions: Option<String>,
    /// Most conversation entries kept for the replay.
    pub context_max_items: usize,
    /// Most characters of conversation text kept for the replay.
    pub context_max_chars: usize,
    /// Recycle a session this long after it became ready, at the next pause; `None`: never.
    pub recycle_after: Option<Duration>,
    /// The longest the caller may be left without a session at a recycle's switch
    /// (`bridge_core::engine::ReconnectConfig::recycle_max_gap`): a make-before-break switch
    /// leaves none; a break-before-make fallback slower than this becomes a reconnect.
    pub recycle_max_gap: Duration,
}

/// Handing calls over to another instance when this one shuts down (see
/// `crate::handover`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// On SIGTERM (once the notice period is over), end each Realtime or GPT-Live call's
    /// stream at a natural pause with its conversation saved in the call store, for another
    /// instance to resume (needs `database.url`; without a store calls drain as before).
    pub handover: bool,
    /// The longest wait for a pause before the stream is ended anyway.
    pub handover_wait: Duration,
    /// What a caller hears when a call cannot be resumed (nothing saved for it): `<Say>`
    /// this, then `<Hangup/>`; `None` hangs up without a word.
    pub goodbye: Option<String>,
}

/// The end of the fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackAction {
    /// `<Hangup/>`.
    Hangup,
    /// `<Dial>` this E.164 number (e.g. a human line).
    Dial(String),
}

/// Whether `s` is an E.164 phone number: `+`, then 7 to 15 digits, not starting with 0.
pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Text or JSON.
    pub format: LogFormat,
    /// `RUST_LOG`-style filter directives.
    pub filter: String,
}

/// Metrics settings.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Record metrics (and serve them when [`Self::bind`] is set).
    pub enabled: bool,
    /// The address of the separate metrics listener (`GET /metrics`); `None` (configured as
    /// `""` or `"off"`) serves no metrics. Never the call port: the public port must not
    /// expose metrics.
    pub bind: Option<std::net::SocketAddr>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Twilio.
    pub twilio: TwilioConfig,
    /// Agent (all back ends).
    pub agent: AgentConfig,
    /// OpenAI Realtime.
    pub openai: OpenAiConfig,
    /// GPT-Live.
    pub live: LiveConfig,
    /// Echo agent.
    pub echo: EchoConfig,
    /// What the caller hears when a call ends abnormally.
    pub fallback: FallbackConfig,
    /// Reconnecting a lost agent connection.
    pub reconnect: ReconnectSettings,
    /// Call handover at shutdown.
    pub shutdown: ShutdownSettings,
    /// Logging.
    pub log: LogConfig,
    /// Metrics.
    pub metrics: MetricsConfig,
    /// Tools, call control, MCP servers and per-number profiles.
    pub tools: crate::tools::config::ToolsConfig,
    /// Where call records are stored.
    pub database: DatabaseConfig,
    /// The admin API.
    pub admin: AdminConfig,
    /// What personal data is stored.
    pub privacy: PrivacyConfig,
    /// The price table of the records' cost estimates.
    pub pricing: Pricing,
    /// Outbound calls (`POST /api/calls`): allow-list, caller ID, AMD policy.
    pub outbound: crate::outbound::settings::OutboundConfig,
    /// The end-of-call webhook.
    pub call_webhook: crate::store::CallWebhookConfig,
    /// Call recordings.
    pub recording: crate::recording::RecordingConfig,
}

// ---------------------------------------------------------------------------------------------
// Raw (deserialized) form. Defaults here are the single source of truth; `config/default.toml`
// mirrors them and a test keeps the two equal.

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Raw {
    server: RawServer,
    twilio: RawTwilio,
    agent: RawAgent,
    openai: RawOpenAi,
    live: RawLive,
    echo: RawEcho,
    fallback: RawFallback,
    reconnect: RawReconnect,
    shutdown: RawShutdown,
    log: RawLog,
    metrics: RawMetrics,
    tools: Vec<crate::tools::config::RawWebhookTool>,
    webhooks: crate::tools::config::RawWebhooks,
    call_control: crate::tools::config::RawCallControl,
    mcp_servers: Vec<crate::tools::config::RawMcpServer>,
    profiles: BTreeMap<String, crate::tools::config::RawProfile>,
    database: RawDatabase,
    admin: RawAdmin,
    privacy: RawPrivacy,
    pricing: RawPricing,
    outbound: crate::outbound::settings::RawOutbound,
    call_webhook: crate::store::webhook::RawCallWebhook,
    recording: crate::recording::RawRecording,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawServer {
    port: i64,
    bind_address: String,
    public_url: String,
    max_concurrent_calls: i64,
    header_read_timeout_ms: u64,
    voice_body_limit_bytes: u64,
    shutdown_grace_secs: u64,
    shutdown_notice_secs: u64,
    max_pending_streams: i64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            port: 3000,
            bind_address: "0.0.0.0".into(),
            public_url: String::new(),
            max_concurrent_calls: 100,
            header_read_timeout_ms: 10_000,
            voice_body_limit_bytes: 64 * 1024,
            shutdown_grace_secs: 30,
            shutdown_notice_secs: 5,
            max_pending_streams: 50,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawTwilio {
    auth_token: String,
    account_sid: String,
    danger_skip_signature_validation: bool,
    danger_allow_unsigned_requests: bool,
    require_stream_token: bool,
    stream_token_ttl_secs: u64,
    stream_token_secret: String,
    stream_parameters: BTreeMap<String, String>,
    rest_base_url: String,
    api_key_sid: String,
    api_key_secret: String,
    rest_timeout_ms: u64,
    rest_attempts: u32,
}

impl Default for RawTwilio {
    fn default() -> Self {
        RawTwilio {
            auth_token: String::new(),
            account_sid: String::new(),
            danger_skip_signature_validation: false,
            danger_allow_unsigned_requests: false,
            require_stream_token: true,
            stream_token_ttl_secs: 60,
            stream_token_secret: String::new(),
            stream_parameters: BTreeMap::new(),
            rest_base_url: twilio_media::rest::API_BASE_URL.into(),
            api_key_sid: String::new(),
            api_key_secret: String::new(),
            rest_timeout_ms: 5000,
            rest_attempts: 3,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawAgent {
    backend: String,
    prompt_path: String,
    voice: String,
    greeting: String,
    max_call_secs: u64,
    media_inactivity_timeout_secs: u64,
    stream_start_timeout_secs: u64,
    idle_timeout_secs: u64,
    idle_reprompt: String,
    dtmf: String,
    mark_interval_ms: u64,
    apology: String,
    min_barge_in_ms: u64,
    goodbye_barge_in: String,
    response_timeout_secs: u64,
    prewarm: bool,
}

/// The default greeting instructions.
pub const DEFAULT_GREETING: &str =
    "Greet the caller in one short sentence and ask how you can help.";

/// The default idle reprompt instructions.
pub const DEFAULT_IDLE_REPROMPT: &str = "The caller has been silent for a while. Briefly ask \
    whether they are still there and whether you can help with anything else.";

impl Default for RawAgent {
    fn default() -> Self {
        RawAgent {
            backend: "auto".into(),
            prompt_path: "config/agent_prompt.md".into(),
            voice: "marin".into(),
            greeting: DEFAULT_GREETING.into(),
            max_call_secs: 3300,
            media_inactivity_timeout_secs: 15,
            stream_start_timeout_secs: 10,
            idle_timeout_secs: 20,
            idle_reprompt: DEFAULT_IDLE_REPROMPT.into(),
            dtmf: "forward".into(),
            mark_interval_ms: 100,
            apology: bridge_core::engine::DEFAULT_APOLOGY.into(),
            min_barge_in_ms: 0,
            goodbye_barge_in: "finish".into(),
            response_timeout_secs: 15,
            prewarm: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawOpenAi {
    api_key: String,
    auth: String,
    model: String,
    base_url: String,
    connect_timeout_ms: u64,
    connect_attempts: u32,
    transcription_model: String,
    transcription_language: String,
    noise_reduction: String,
    turn_detection: RawTurnDetection,
}

impl Default for RawOpenAi {
    fn default() -> Self {
        RawOpenAi {
            api_key: String::new(),
            auth: "bearer".into(),
            model: DEFAULT_MODEL.into(),
            base_url: DEFAULT_OPENAI_BASE_URL.into(),
            connect_timeout_ms: 5000,
            connect_attempts: 2,
            transcription_model: "gpt-4o-mini-transcribe".into(),
            transcription_language: String::new(),
            noise_reduction: "near_field".into(),
            turn_detection: RawTurnDetection::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLive {
    model: String,
    voice: String,
    greeting: String,
    delegation: String,
    backend_model: String,
    backend_instructions: String,
    client_tool: String,
    session_cap_secs: u64,
    wrap_up_before_secs: u64,
    recycle_before_secs: u64,
    wrap_up_line: String,
    wrap_up_grace_secs: u64,
    close_timeout_ms: u64,
    goodbye_timeout_secs: u64,
    goodbye_quiet_ms: u64,
    mcp_servers: bool,
    safety_identifier: bool,
}

/// The default GPT-Live model.
pub const DEFAULT_LIVE_MODEL: &str = "gpt-live-1";

/// The default GPT-Live greeting (said as is).
pub const DEFAULT_LIVE_GREETING: &str = "Hello, thanks for calling. How can I help you today?";

/// The default GPT-Live wrap-up line.
pub const DEFAULT_LIVE_WRAP_UP: &str = "I'm sorry, we have reached the time limit for this \
    call. Please call again if there is anything else. Goodbye!";

/// The default instructions of GPT-Live's Responses backend.
pub const DEFAULT_LIVE_BACKEND_INSTRUCTIONS: &str = "You support a live phone call. Caller \
    transcripts may contain errors. Use the tools when they help; keep results short and \
    factual, for the voice model to say.";

impl Default for RawLive {
    fn default() -> Self {
        RawLive {
            model: DEFAULT_LIVE_MODEL.into(),
            voice: "marin".into(),
            greeting: DEFAULT_LIVE_GREETING.into(),
            delegation: "responses".into(),
            backend_model: "gpt-5.6-luna".into(),
            backend_instructions: DEFAULT_LIVE_BACKEND_INSTRUCTIONS.into(),
            client_tool: String::new(),
            session_cap_secs: 6600,
            wrap_up_before_secs: 60,
            recycle_before_secs: 600,
            wrap_up_line: DEFAULT_LIVE_WRAP_UP.into(),
            wrap_up_grace_secs: 8,
            close_timeout_ms: 3000,
            goodbye_timeout_secs: 6,
            goodbye_quiet_ms: 800,
            mcp_servers: false,
            safety_identifier: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawTurnDetection {
    #[serde(rename = "type")]
    kind: String,
    threshold: f64,
    prefix_padding_ms: u32,
    silence_duration_ms: u32,
    create_response: bool,
    interrupt_response: bool,
    idle_timeout_ms: u32,
    eagerness: String,
}

impl Default for RawTurnDetection {
    fn default() -> Self {
        RawTurnDetection {
            kind: "server_vad".into(),
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
            create_response: true,
            interrupt_response: true,
            idle_timeout_ms: 0,
            eagerness: "auto".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawEcho {
    pause_ms: u64,
    max_utterance_ms: u64,
    greeting_tone: bool,
}

impl Default for RawEcho {
    fn default() -> Self {
        RawEcho {
            pause_ms: 700,
            max_utterance_ms: 10_000,
            greeting_tone: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawReconnect {
    enabled: bool,
    attempts: u32,
    max_per_call: u32,
    max_gap_ms: u64,
    backoff_ms: u64,
    max_backoff_ms: u64,
    hold: String,
    resume_instructions: String,
    context_max_items: usize,
    context_max_chars: usize,
    recycle_after_secs: u64,
    recycle_max_gap_ms: u64,
}

impl Default for RawReconnect {
    fn default() -> Self {
        RawReconnect {
            enabled: true,
            attempts: 3,
            max_per_call: 5,
            max_gap_ms: 15_000,
            backoff_ms: 250,
            max_backoff_ms: 2_000,
            hold: "tone".into(),
            resume_instructions: bridge_core::engine::DEFAULT_RESUME.into(),
            context_max_items: 64,
            context_max_chars: 24_000,
            recycle_after_secs: 0,
            recycle_max_gap_ms: 1_500,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawFallback {
    enabled: bool,
    say: String,
    action: String,
    dial: String,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawShutdown {
    handover: bool,
    handover_wait_ms: u64,
    goodbye: String,
}

/// The default goodbye of a call that cannot be resumed.
pub const DEFAULT_HANDOVER_GOODBYE: &str =
    "Sorry, we could not continue this call. Please call again. Goodbye.";

impl Default for RawShutdown {
    fn default() -> Self {
        RawShutdown {
            handover: true,
            handover_wait_ms: 5000,
            goodbye: DEFAULT_HANDOVER_GOODBYE.into(),
        }
    }
}

/// The default fallback line.
pub const DEFAULT_FALLBACK_SAY: &str =
    "Sorry, our assistant is not available right now. Please call again later.";

impl Default for RawFallback {
    fn default() -> Self {
        RawFallback {
            enabled: true,
            say: DEFAULT_FALLBACK_SAY.into(),
            action: "hangup".into(),
            dial: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLog {
    format: String,
    filter: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawMetrics {
    enabled: bool,
    bind: String,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            enabled: true,
            bind: "127.0.0.1:9090".into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// The variable names that set a setting, for error messages.
fn vars_for(setting: &str) -> String {
    let prefixed = format!(
        "{ENV_PREFIX}_{}",
        setting.replace('.', "__").to_ascii_uppercase()
    );
    match ENV_ALIASES.iter().find(|(_, s)| *s == setting) {
        Some((alias, _)) => format!("{alias} or {prefixed}"),
        None => prefixed,
    }
}

/// `agent.goodbye_barge_in` (and a profile's): `"finish"` or `"interrupt"`; the error says
/// what was given and what is allowed.
pub(crate) fn parse_goodbye_barge_in(value: &str) -> Result<GoodbyeBargeIn, String> {
    match value.trim() {
        "finish" => Ok(GoodbyeBargeIn::Finish),
        "interrupt" => Ok(GoodbyeBargeIn::Interrupt),
        other => Err(format!("{other:?} is not one of finish, interrupt")),
    }
}

pub(crate) fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        vars: vars_for(setting),
        message: message.into(),
    }
}

pub(crate) fn non_empty(s: String) -> Option<String> {
    let t = s.trim();
    if t.is_empty() {
        None
    } else {
        Some(t.to_string())
    }
}

/// Reads `.env` (if present) with dotenvy's iterator API and overlays the process environment.
/// Nothing is written to the environment.
pub fn env_map_from_process(dotenv_path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let mut map = HashMap::new();
    match dotenvy::from_path_iter(dotenv_path) {
        Ok(iter) => {
            let mut file = Vec::new();
            for item in iter {
                file.push(item.map_err(|e| ConfigError::DotEnv {
                    path: dotenv_path.to_path_buf(),
                    message: e.to_string(),
                })?);
            }
            overlay(&mut map, file);
        }
        Err(e) if e.not_found() => {}
        Err(e) => {
            return Err(ConfigError::DotEnv {
                path: dotenv_path.to_path_buf(),
                message: e.to_string(),
            });
        }
    }
    let process = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    overlay(&mut map, process);
    Ok(map)
}

/// Overlays one layer onto another, resolving aliases within the layer first so that a later
/// layer's short name beats an earlier layer's prefixed name.
fn overlay(base: &mut HashMap<String, String>, layer: impl IntoIterator<Item = (String, String)>) {
    let layer: HashMap<String, String> = layer.into_iter().collect();
    let layer = canonicalize(&layer);
    base.extend(layer);
}

/// Maps short names to prefixed ones (prefixed wins within one layer).
fn canonicalize(map: &HashMap<String, String>) -> HashMap<String, String> {
    let mut out = map.clone();
    for (alias, setting) in ENV_ALIASES {
        if let Some(v) = map.get(*alias) {
            let prefixed = format!(
                "{ENV_PREFIX}_{}",
                setting.replace('.', "__").to_ascii_uppercase()
            );
            out.remove(*alias);
            out.entry(prefixed).or_insert_with(|| v.clone());
        }
    }
    out
}

impl Config {
    /// Loads the configuration the way the binary does: `.env` in the working directory and the
    /// process environment (see the module docs for the layers).
    pub fn load() -> Result<Config, ConfigError> {
        let env = env_map_from_process(Path::new(".env"))?;
        Config::from_env_map(&env)
    }

    /// Parses and validates the configuration from a source map (environment-style names and
    /// values). The TOML file named by `PHONE_AGENT_CONFIG` in the map, if any, is read as the
    /// layer below the map.
    pub fn from_env_map(env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let env_source = env;
        let mut env = canonicalize(env);
        let file = env.remove(CONFIG_FILE_VAR).and_then(non_empty);
        // Only our own variables reach the parser (unknown ones under our prefix are errors).
        let prefix = format!("{ENV_PREFIX}_");
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.to_ascii_uppercase().starts_with(&prefix))
            .collect();

        let mut builder = config::Config::builder();
        if let Some(path) = &file {
            if !Path::new(path).is_file() {
                return Err(ConfigError::Source(format!(
                    "the configuration file {path} ({CONFIG_FILE_VAR}) does not exist"
                )));
            }
            builder = builder
                .add_source(config::File::new(path, config::FileFormat::Toml).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator("__")
                .ignore_empty(true)
                .source(Some(env)),
        );
        let raw: Raw = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Source(explain(&e.to_string())))?;
        Config::validate(raw, env_source)
    }

    fn validate(raw: Raw, env_source: &HashMap<String, String>) -> Result<Config, ConfigError> {
        // --- server
        let port = u16::try_from(raw.server.port).map_err(|_| {
            invalid(
                "server.port",
                format!("{} is out of range (0–65535)", raw.server.port),
            )
        })?;
        let bind_address: IpAddr = raw.server.bind_address.trim().parse().map_err(|_| {
            invalid(
                "server.bind_address",
                format!("{:?} is not an IP address", raw.server.bind_address),
            )
        })?;
        let public_url = match non_empty(raw.server.public_url) {
            Some(u) => Some(PublicUrl::parse(&u).map_err(|m| invalid("server.public_url", m))?),
            None => None,
        };
        let max_concurrent_calls = usize::try_from(raw.server.max_concurrent_calls)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                invalid(
                    "server.max_concurrent_calls",
                    format!("{} must be at least 1", raw.server.max_concurrent_calls),
                )
            })?;
        if raw.server.header_read_timeout_ms == 0 {
            return Err(invalid(
                "server.header_read_timeout_ms",
                "must be greater than 0",
            ));
        }
        if raw.server.voice_body_limit_bytes < 1024 {
            return Err(invalid(
                "server.voice_body_limit_bytes",
                "must be at least 1024 (Twilio's webhook form is about 1–2 KiB)",
            ));
        }
        let server = ServerConfig {
            port,
            bind_address,
            public_url,
            max_concurrent_calls,
            header_read_timeout: Duration::from_millis(raw.server.header_read_timeout_ms),
            voice_body_limit: usize::try_from(raw.server.voice_body_limit_bytes)
                .unwrap_or(usize::MAX),
            shutdown_grace: Duration::from_secs(raw.server.shutdown_grace_secs),
            shutdown_notice: Duration::from_secs(raw.server.shutdown_notice_secs),
            max_pending_streams: usize::try_from(raw.server.max_pending_streams)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    invalid(
                        "server.max_pending_streams",
                        format!("{} must be at least 1", raw.server.max_pending_streams),
                    )
                })?,
        };

        // --- twilio
        let account_sid = non_empty(raw.twilio.account_sid);
        if let Some(sid) = &account_sid
            && !(sid.len() == 34 && sid.starts_with("AC"))
        {
            return Err(invalid(
                "twilio.account_sid",
                format!("{sid:?} is not an account SID (AC followed by 32 hex digits)"),
            ));
        }
        if raw.twilio.require_stream_token && raw.twilio.stream_token_ttl_secs == 0 {
            return Err(invalid(
                "twilio.stream_token_ttl_secs",
                "must be greater than 0",
            ));
        }
        for name in raw.twilio.stream_parameters.keys() {
            if RESERVED_PARAMETERS.contains(&name.as_str()) {
                return Err(invalid(
                    "twilio.stream_parameters",
                    format!("{name:?} is reserved (the server sets it itself)"),
                ));
            }
        }
        let rest_base_url = raw
            .twilio
            .rest_base_url
            .trim()
            .trim_end_matches('/')
            .to_owned();
        PublicUrl::parse(&rest_base_url).map_err(|m| invalid("twilio.rest_base_url", m))?;
        let api_key_sid = non_empty(raw.twilio.api_key_sid);
        let api_key_secret = non_empty(raw.twilio.api_key_secret).map(Secret);
        match (&api_key_sid, &api_key_secret) {
            (Some(sid), Some(_)) if !sid.starts_with("SK") => {
                return Err(invalid(
                    "twilio.api_key_sid",
                    format!("{sid:?} is not an API key SID (SK followed by 32 hex digits)"),
                ));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Contradiction(
                    "TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET must be set together".into(),
                ));
            }
            _ => {}
        }
        if raw.twilio.rest_attempts == 0 {
            return Err(invalid("twilio.rest_attempts", "must be at least 1"));
        }
        if raw.twilio.rest_timeout_ms == 0 {
            return Err(invalid("twilio.rest_timeout_ms", "must be greater than 0"));
        }
        let twilio = TwilioConfig {
            auth_token: non_empty(raw.twilio.auth_token).map(Secret),
            account_sid,
            danger_skip_signature_validation: raw.twilio.danger_skip_signature_validation,
            danger_allow_unsigned_requests: raw.twilio.danger_allow_unsigned_requests,
            require_stream_token: raw.twilio.require_stream_token,
            stream_token_ttl: Duration::from_secs(raw.twilio.stream_token_ttl_secs),
            stream_token_secret: non_empty(raw.twilio.stream_token_secret).map(Secret),
            stream_parameters: raw.twilio.stream_parameters,
            rest_base_url,
            api_key_sid,
            api_key_secret,
            rest_timeout: Duration::from_millis(raw.twilio.rest_timeout_ms),
            rest_attempts: raw.twilio.rest_attempts,
        };
        if twilio.signature_key().is_some() && server.public_url.is_none() {
            return Err(ConfigError::Contradiction(
                "TWILIO_AUTH_TOKEN is set, so request signatures are checked, but PUBLIC_URL is \
                 not: signatures are computed over the public URL Twilio calls. Set PUBLIC_URL \
                 (e.g. https://agent.example.com)"
                    .into(),
            ));
        }

        // --- openai
        let api_key = non_empty(raw.openai.api_key).map(Secret);
        let model = non_empty(raw.openai.model)
            .ok_or_else(|| invalid("openai.model", "must not be empty"))?;
        normalize_ws_base(&raw.openai.base_url).map_err(|m| invalid("openai.base_url", m))?;
        let base_url = raw.openai.base_url.trim().to_string();
        if raw.openai.connect_attempts == 0 {
            return Err(invalid("openai.connect_attempts", "must be at least 1"));
        }
        if raw.openai.connect_timeout_ms == 0 {
            return Err(invalid(
                "openai.connect_timeout_ms",
                "must be greater than 0",
            ));
        }
        let noise_reduction = match raw.openai.noise_reduction.trim() {
            "" | "off" | "none" => NoiseReduction::Off,
            "near_field" => NoiseReduction::NearField,
            "far_field" => NoiseReduction::FarField,
            other => {
                return Err(invalid(
                    "openai.noise_reduction",
                    format!("{other:?} is not one of off, near_field, far_field"),
                ));
            }
        };
        let td = raw.openai.turn_detection;
        if !td.create_response {
            // The engine answers tool results, keypad presses, the greeting and reprompts by
            // itself, but each caller turn is answered by the agent's turn detection.
            return Err(ConfigError::Contradiction(
                "openai.turn_detection.create_response = false would leave every caller turn \
                 unanswered: the call engine relies on the agent to answer the caller's turns; \
                 set it to true"
                    .into(),
            ));
        }
        let turn_detection = match td.kind.trim() {
            "server_vad" => {
                if !(0.0..=1.0).contains(&td.threshold) {
                    return Err(invalid(
                        "openai.turn_detection.threshold",
                        format!("{} is not between 0.0 and 1.0", td.threshold),
                    ));
                }
                let idle_timeout_ms = match td.idle_timeout_ms {
                    0 => None,
                    ms @ 5000..=30000 => Some(ms),
                    ms => {
                        return Err(invalid(
                            "openai.turn_detection.idle_timeout_ms",
                            format!("{ms} must be 0 (off) or between 5000 and 30000"),
                        ));
                    }
                };
                TurnDetection::ServerVad {
                    threshold: td.threshold,
                    prefix_padding_ms: td.prefix_padding_ms,
                    silence_duration_ms: td.silence_duration_ms,
                    create_response: td.create_response,
                    interrupt_response: td.interrupt_response,
                    idle_timeout_ms,
                }
            }
            "semantic_vad" => {
                if td.idle_timeout_ms != 0 {
                    return Err(ConfigError::Contradiction(
                        "openai.turn_detection.idle_timeout_ms only works with type = \
                         \"server_vad\", not \"semantic_vad\""
                            .into(),
                    ));
                }
                let eagerness = td.eagerness.trim().to_string();
                if !["low", "medium", "high", "auto"].contains(&eagerness.as_str()) {
                    return Err(invalid(
                        "openai.turn_detection.eagerness",
                        format!("{eagerness:?} is not one of low, medium, high, auto"),
                    ));
                }
                TurnDetection::SemanticVad {
                    eagerness,
                    create_response: td.create_response,
                    interrupt_response: td.interrupt_response,
                }
            }
            other => {
                return Err(invalid(
                    "openai.turn_detection.type",
                    format!(
                        "{other:?} is not one of server_vad, semantic_vad (a phone call needs \
                         turn detection)"
                    ),
                ));
            }
        };
        let auth = match raw.openai.auth.trim() {
            "" | "bearer" => OpenAiAuth::Bearer,
            "api-key" | "api_key" => OpenAiAuth::ApiKey,
            other => {
                return Err(invalid(
                    "openai.auth",
                    format!("{other:?} is not one of bearer, api-key"),
                ));
            }
        };
        let openai = OpenAiConfig {
            auth,
            api_key,
            model,
            base_url,
            connect_timeout: Duration::from_millis(raw.openai.connect_timeout_ms),
            connect_attempts: raw.openai.connect_attempts,
            transcription_model: non_empty(raw.openai.transcription_model),
            transcription_language: non_empty(raw.openai.transcription_language),
            noise_reduction,
            turn_detection,
        };

        // --- agent
        let backend = match raw.agent.backend.trim() {
            "" | "auto" => {
                if openai.api_key.is_some() {
                    Backend::Realtime
                } else {
                    Backend::Echo
                }
            }
            "realtime" => {
                if openai.api_key.is_none() {
                    return Err(ConfigError::Contradiction(
                        "agent.backend = \"realtime\" needs OPENAI_API_KEY; set the key, or use \
                         backend \"auto\" to fall back to the built-in echo agent"
                            .into(),
                    ));
                }
                Backend::Realtime
            }
            "echo" => Backend::Echo,
            "live" => {
                if openai.api_key.is_none() {
                    return Err(ConfigError::Contradiction(
                        "agent.backend = \"live\" needs OPENAI_API_KEY".into(),
                    ));
                }
                Backend::Live
            }
            other => {
                return Err(invalid(
                    "agent.backend",
                    format!("{other:?} is not one of auto, realtime, live, echo"),
                ));
            }
        };
        let prompt_path = PathBuf::from(
            non_empty(raw.agent.prompt_path)
                .ok_or_else(|| invalid("agent.prompt_path", "must not be empty"))?,
        );
        if backend != Backend::Echo {
            std::fs::metadata(&prompt_path)
                .and_then(|m| {
                    if m.is_file() {
                        Ok(())
                    } else {
                        Err(std::io::Error::other("not a regular file"))
                    }
                })
                .map_err(|e| ConfigError::PromptFile {
                    path: prompt_path.clone(),
                    message: e.to_string(),
                })?;
        }
        let voice = non_empty(raw.agent.voice)
            .ok_or_else(|| invalid("agent.voice", "must not be empty"))?;
        if raw.agent.max_call_secs == 0 {
            return Err(invalid("agent.max_call_secs", "must be greater than 0"));
        }
        if raw.agent.media_inactivity_timeout_secs == 0 {
            return Err(invalid(
                "agent.media_inactivity_timeout_secs",
                "must be greater than 0",
            ));
        }
        if raw.agent.stream_start_timeout_secs == 0 {
            return Err(invalid(
                "agent.stream_start_timeout_secs",
                "must be greater than 0",
            ));
        }
        let dtmf = match raw.agent.dtmf.trim() {
            "forward" => DtmfMode::Forward,
            "respond" => DtmfMode::ForwardAndRespond,
            "off" => DtmfMode::Off,
            other => {
                return Err(invalid(
                    "agent.dtmf",
                    format!("{other:?} is not one of forward, respond, off"),
                ));
            }
        };
        let goodbye_barge_in = parse_goodbye_barge_in(&raw.agent.goodbye_barge_in)
            .map_err(|message| invalid("agent.goodbye_barge_in", message))?;
        if raw.agent.min_barge_in_ms > 2000 {
            return Err(invalid(
                "agent.min_barge_in_ms",
                "must be at most 2000 (the caller would talk over the agent for that long)",
            ));
        }
        if !(20..=1000).contains(&raw.agent.mark_interval_ms) {
            return Err(invalid(
                "agent.mark_interval_ms",
                "must be between 20 and 1000",
            ));
        }
        let idle_timeout = match raw.agent.idle_timeout_secs {
            0 => None,
            s => Some(Duration::from_secs(s)),
        };
        let agent = AgentConfig {
            backend,
            prompt_path,
            voice,
            greeting: non_empty(raw.agent.greeting).filter(|g| !g.eq_ignore_ascii_case("off")),
            max_call_duration: Duration::from_secs(raw.agent.max_call_secs),
            media_inactivity_timeout: Duration::from_secs(raw.agent.media_inactivity_timeout_secs),
            stream_start_timeout: Duration::from_secs(raw.agent.stream_start_timeout_secs),
            idle_timeout,
            idle_reprompt: non_empty(raw.agent.idle_reprompt)
                .filter(|r| !r.eq_ignore_ascii_case("off")),
            dtmf,
            mark_interval: Duration::from_millis(raw.agent.mark_interval_ms),
            apology: non_empty(raw.agent.apology).filter(|a| !a.eq_ignore_ascii_case("off")),
            min_barge_in: Duration::from_millis(raw.agent.min_barge_in_ms),
            goodbye_barge_in,
            response_timeout: match raw.agent.response_timeout_secs {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            prewarm: raw.agent.prewarm,
        };

        // --- live
        let live = Self::validate_live(raw.live)?;

        // --- echo
        if raw.echo.pause_ms < 100 {
            return Err(invalid("echo.pause_ms", "must be at least 100"));
        }
        if raw.echo.max_utterance_ms < 500 {
            return Err(invalid("echo.max_utterance_ms", "must be at least 500"));
        }
        let echo = EchoConfig {
            pause: Duration::from_millis(raw.echo.pause_ms),
            max_utterance: Duration::from_millis(raw.echo.max_utterance_ms),
            greeting_tone: raw.echo.greeting_tone,
        };

        // --- log, metrics
        let format = match raw.log.format.trim() {
            "text" | "" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log.format",
                    format!("{other:?} is not one of text, json"),
                ));
            }
        };
        let filter = non_empty(raw.log.filter).unwrap_or_else(|| "info".into());
        let log = LogConfig { format, filter };

        // --- fallback
        // --- reconnect
        let r = raw.reconnect;
        if r.attempts == 0 || r.attempts > 10 {
            return Err(invalid("reconnect.attempts", "must be between 1 and 10"));
        }
        if !(1_000..=120_000).contains(&r.max_gap_ms) {
            return Err(invalid(
                "reconnect.max_gap_ms",
                "must be between 1000 and 120000",
            ));
        }
        if r.backoff_ms > r.max_backoff_ms || r.max_backoff_ms > r.max_gap_ms {
            return Err(invalid(
                "reconnect.max_backoff_ms",
                "needs backoff_ms <= max_backoff_ms <= max_gap_ms",
            ));
        }
        if r.context_max_items == 0 || r.context_max_chars == 0 {
            return Err(invalid(
                "reconnect.context_max_items",
                "the context bounds must be positive",
            ));
        }
        if !(100..=r.max_gap_ms).contains(&r.recycle_max_gap_ms) {
            return Err(invalid(
                "reconnect.recycle_max_gap_ms",
                "must be between 100 and max_gap_ms",
            ));
        }
        let hold_tone = match r.hold.trim() {
            "tone" => true,
            "off" | "silence" => false,
            _ => return Err(invalid("reconnect.hold", "must be \"tone\" or \"off\"")),
        };
        let reconnect = ReconnectSettings {
            enabled: r.enabled,
            attempts: r.attempts,
            max_per_call: r.max_per_call,
            max_gap: Duration::from_millis(r.max_gap_ms),
            backoff: Duration::from_millis(r.backoff_ms),
            max_backoff: Duration::from_millis(r.max_backoff_ms),
            hold_tone,
            resume_instructions: non_empty(r.resume_instructions)
                .filter(|s| !s.eq_ignore_ascii_case("off")),
            context_max_items: r.context_max_items,
            context_max_chars: r.context_max_chars,
            recycle_after: (r.recycle_after_secs > 0)
                .then(|| Duration::from_secs(r.recycle_after_secs)),
            recycle_max_gap: Duration::from_millis(r.recycle_max_gap_ms),
        };

        let fallback_say = non_empty(raw.fallback.say).filter(|s| !s.eq_ignore_ascii_case("off"));
        let fallback_action = match raw.fallback.action.trim() {
            "hangup" => FallbackAction::Hangup,
            "dial" => {
                let number = raw.fallback.dial.trim();
                if !is_e164(number) {
                    return Err(invalid(
                        "fallback.dial",
                        format!(
                            "{number:?} is not an E.164 number (+ and 7 to 15 digits, e.g. \
                             +15551234567); fallback.action = \"dial\" needs one"
                        ),
                    ));
                }
                FallbackAction::Dial(number.to_owned())
            }
            other => {
                return Err(invalid(
                    "fallback.action",
                    format!("{other:?} is not one of hangup, dial"),
                ));
            }
        };
        if !(100..=60_000).contains(&raw.shutdown.handover_wait_ms) {
            return Err(invalid(
                "shutdown.handover_wait_ms",
                format!(
                    "{} is out of range (100 to 60000 ms)",
                    raw.shutdown.handover_wait_ms
                ),
            ));
        }
        let shutdown = ShutdownSettings {
            handover: raw.shutdown.handover,
            handover_wait: Duration::from_millis(raw.shutdown.handover_wait_ms),
            goodbye: non_empty(raw.shutdown.goodbye).filter(|s| !s.eq_ignore_ascii_case("off")),
        };
        let fallback = FallbackConfig {
            enabled: raw.fallback.enabled,
            say: fallback_say,
            action: fallback_action,
        };
        let bind = match raw.metrics.bind.trim() {
            "" | "off" => None,
            other => Some(other.parse().map_err(|_| {
                invalid(
                    "metrics.bind",
                    format!("{other:?} is not an address:port (e.g. 127.0.0.1:9090), \"\" or off"),
                )
            })?),
        };
        let metrics = MetricsConfig {
            enabled: raw.metrics.enabled,
            bind,
        };
        let (database, admin, privacy, pricing) =
            crate::store::settings::validate(raw.database, raw.admin, raw.privacy, raw.pricing)?;
        let outbound = crate::outbound::settings::validate(raw.outbound)?;
        let call_webhook = crate::store::webhook::validate(raw.call_webhook)?;
        let recording = crate::recording::validate(raw.recording)?;

        // A billed back end must not be open to anyone who finds the URL.
        if backend != Backend::Echo
            && twilio.auth_token.is_none()
            && !twilio.danger_allow_unsigned_requests
        {
            return Err(ConfigError::Contradiction(format!(
                "agent.backend {:?} is billed, but TWILIO_AUTH_TOKEN is not set, so anyone who \
                 finds this server's URL could place calls through it at your expense. Set \
                 TWILIO_AUTH_TOKEN (your Twilio account's Auth Token) and PUBLIC_URL; or, for a \
                 local experiment only, set PHONE_AGENT_TWILIO__DANGER_ALLOW_UNSIGNED_REQUESTS=true",
                backend.as_str()
            )));
        }
        let tools = crate::tools::config::validate(
            crate::tools::config::RawSections {
                tools: raw.tools,
                webhooks: raw.webhooks,
                call_control: raw.call_control,
                mcp_servers: raw.mcp_servers,
                profiles: raw.profiles,
            },
            env_source,
        )?;
        for p in &tools.profiles {
            outbound
                .amd
                .with_overrides(
                    p.on_machine.as_deref(),
                    p.on_fax.as_deref(),
                    p.on_unknown.as_deref(),
                    p.voicemail_message.as_deref(),
                    p.voicemail_instructions.as_deref(),
                    &format!("profiles.{}", p.name),
                )
                .map_err(|(key, message)| ConfigError::Key { key, message })?;
        }
        if call_webhook.url.is_some() {
            if database == DatabaseConfig::Off {
                return Err(ConfigError::Contradiction(
                    "call_webhook.url is set but database.url is off: the webhook's outbox lives \
                     in the call store (set database.url, or unset call_webhook.url)"
                        .into(),
                ));
            }
            if tools.signing_secret.is_none() {
                return Err(ConfigError::Contradiction(
                    "call_webhook.url is set but webhooks.signing_secret is empty: call records \
                     (numbers, transcripts) must not go out unsigned; set \
                     PHONE_AGENT_WEBHOOKS__SIGNING_SECRET"
                        .into(),
                ));
            }
        }

        Ok(Config {
            server,
            twilio,
            agent,
            openai,
            live,
            echo,
            fallback,
            reconnect,
            shutdown,
            log,
            metrics,
            tools,
            database,
            admin,
            privacy,
            pricing,
            outbound,
            call_webhook,
            recording,
        })
    }

    fn validate_live(raw: RawLive) -> Result<LiveConfig, ConfigError> {
        let model =
            non_empty(raw.model).ok_or_else(|| invalid("live.model", "must not be empty"))?;
        let voice =
            non_empty(raw.voice).ok_or_else(|| invalid("live.voice", "must not be empty"))?;
        let delegation = match raw.delegation.trim() {
            "responses" => LiveDelegation::Responses,
            "client" => LiveDelegation::Client,
            other => {
                return Err(invalid(
                    "live.delegation",
                    format!("{other:?} is not one of responses, client"),
                ));
            }
        };
        let backend_model = raw.backend_model.trim().to_owned();
        if delegation == LiveDelegation::Responses && backend_model.is_empty() {
            return Err(invalid(
                "live.backend_model",
                "must be set for delegation = \"responses\" (e.g. gpt-5.6-luna)",
            ));
        }
        let client_tool = non_empty(raw.client_tool);
        if delegation == LiveDelegation::Client && client_tool.is_none() {
            return Err(invalid(
                "live.client_tool",
                "must name the tool that answers delegations when delegation = \"client\"",
            ));
        }
        if raw.session_cap_secs < 60 {
            return Err(invalid("live.session_cap_secs", "must be at least 60"));
        }
        let wrap_up_line = non_empty(raw.wrap_up_line)
            .ok_or_else(|| invalid("live.wrap_up_line", "must not be empty"))?;
        if raw.recycle_before_secs != 0 && raw.recycle_before_secs <= raw.wrap_up_before_secs {
            return Err(invalid(
                "live.recycle_before_secs",
                "must be 0 (off) or more than live.wrap_up_before_secs (recycling comes first, \
                 the wrap-up line is its fallback)",
            ));
        }
        if raw.wrap_up_grace_secs == 0 || raw.wrap_up_grace_secs > 60 {
            return Err(invalid(
                "live.wrap_up_grace_secs",
                "must be between 1 and 60",
            ));
        }
        // The call driver bounds every send by 5 s; the close must finish within it.
        if !(100..=4500).contains(&raw.close_timeout_ms) {
            return Err(invalid(
                "live.close_timeout_ms",
                "must be between 100 and 4500",
            ));
        }
        if raw.goodbye_timeout_secs == 0 || raw.goodbye_timeout_secs > 60 {
            return Err(invalid(
                "live.goodbye_timeout_secs",
                "must be between 1 and 60",
            ));
        }
        if raw.goodbye_quiet_ms != 0 && !(100..=5000).contains(&raw.goodbye_quiet_ms) {
            return Err(invalid(
                "live.goodbye_quiet_ms",
                "must be 0 (off) or between 100 and 5000",
            ));
        }
        Ok(LiveConfig {
            model,
            voice,
            greeting: non_empty(raw.greeting).filter(|g| !g.eq_ignore_ascii_case("off")),
            delegation,
            backend_model,
            backend_instructions: non_empty(raw.backend_instructions),
            client_tool,
            session_cap: Duration::from_secs(raw.session_cap_secs),
            wrap_up_before: Duration::from_secs(raw.wrap_up_before_secs),
            recycle_before: Duration::from_secs(raw.recycle_before_secs),
            wrap_up_line,
            wrap_up_grace: Duration::from_secs(raw.wrap_up_grace_secs),
            close_timeout: Duration::from_millis(raw.close_timeout_ms),
            goodbye_timeout: Duration::from_secs(raw.goodbye_timeout_secs),
            goodbye_quiet: (raw.goodbye_quiet_ms > 0)
                .then(|| Duration::from_millis(raw.goodbye_quiet_ms)),
            mcp_servers: raw.mcp_servers,
            safety_identifier: raw.safety_identifier,
        })
    }

    /// Warnings to log once at startup (insecure or surprising settings). Never contains
    /// secrets.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.agent.backend == Backend::Echo && self.openai.api_key.is_none() {
            out.push(
                "OPENAI_API_KEY is not set: calls are answered by the built-in echo agent, which \
                 plays back what the caller says. Set OPENAI_API_KEY (in .env or the environment) \
                 to talk to an OpenAI Realtime agent."
                    .to_string(),
            );
        }
        match (
            &self.twilio.auth_token,
            self.twilio.danger_skip_signature_validation,
        ) {
            (None, _) if self.agent.backend != Backend::Echo => out.push(
                "DANGER: twilio.danger_allow_unsigned_requests is on and TWILIO_AUTH_TOKEN is not \
                 set: Twilio request signatures are NOT checked, so anyone who finds this \
                 server's URL can hold billed OpenAI sessions open. Never in production: set \
                 TWILIO_AUTH_TOKEN and PUBLIC_URL."
                    .to_string(),
            ),
            (None, _) => out.push(
                "TWILIO_AUTH_TOKEN is not set: Twilio request signatures are NOT checked, so \
                 anyone who finds this server's URL can place calls through it (and spend your OpenAI credit). Set \
                 TWILIO_AUTH_TOKEN and PUBLIC_URL in production."
                    .to_string(),
            ),
            (Some(_), true) => out.push(
                "DANGER: twilio.danger_skip_signature_validation is on: Twilio request signatures \
                 are NOT checked. Use this only with a local tunnel, never in production."
                    .to_string(),
            ),
            (Some(_), false) => {}
        }
        match &self.server.public_url {
            None => out.push(
                "PUBLIC_URL is not set: the stream URL is built from each request's Host header. \
                 Set PUBLIC_URL to the https:// address Twilio uses."
                    .to_string(),
            ),
            Some(url) if !url.is_tls() => out.push(format!(
                "PUBLIC_URL {} is not https: Twilio only connects Media Streams over wss:// on \
                 port 443 (fine for local tests)",
                url.http_base()
            )),
            Some(_) => {}
        }
        out
    }
}

/// Parameter names the server writes into every `<Stream>` itself (`token` is kept reserved:
/// the stream token used to be a parameter and now rides in the stream URL's path).
pub const RESERVED_PARAMETERS: &[&str] =
    &["token", "call_sid", "from", "to", "profile", "direction"];

/// Turns an http(s)/ws(s) base URL into its ws(s) form without a trailing slash.
fn normalize_ws_base(raw: &str) -> Result<String, String> {
    let raw = raw.trim().trim_end_matches('/');
    let (scheme, rest) = raw
        .split_once("://")
        .ok_or_else(|| format!("{raw:?} is not a URL (expected wss://host/v1)"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "wss" | "https" => "wss",
        "ws" | "http" => "ws",
        other => return Err(format!("{raw:?} has unsupported scheme {other:?}")),
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{raw:?} has no host"));
    }
    Ok(format!("{scheme}://{rest}"))
}

/// Adds a hint to the `config` crate's messages about how keys map to variables.
fn explain(message: &str) -> String {
    format!(
        "{message} (settings are set with PHONE_AGENT_<SECTION>__<KEY> variables, e.g. \
         PHONE_AGENT_AGENT__VOICE, or in the file named by {CONFIG_FILE_VAR}; see .env.example)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn vars_for_names_both_forms() {
        assert_eq!(vars_for("server.port"), "PORT or PHONE_AGENT_SERVER__PORT");
        assert_eq!(vars_for("agent.voice"), "PHONE_AGENT_AGENT__VOICE");
    }

    #[test]
    fn prefixed_wins_over_alias_in_one_layer() {
        let c = Config::from_env_map(&env(&[
            ("PORT", "1"),
            ("PHONE_AGENT_SERVER__PORT", "2"),
            ("PHONE_AGENT_AGENT__BACKEND", "echo"),
        ]))
        .unwrap();
        assert_eq!(c.server.port, 2);
    }

    #[test]
    fn later_layer_alias_beats_earlier_prefixed() {
        let mut base = HashMap::new();
        overlay(&mut base, env(&[("PHONE_AGENT_SERVER__PORT", "2")]));
        overlay(&mut base, env(&[("PORT", "5")]));
        assert_eq!(
            base.get("PHONE_AGENT_SERVER__PORT").map(String::as_str),
            Some("5")
        );
    }

    #[test]
    fn recycle_max_gap_defaults_and_is_bounded_by_the_reconnect_gap() {
        let echo = ("PHONE_AGENT_AGENT__BACKEND", "echo");
        let c = Config::from_env_map(&env(&[echo])).unwrap();
        assert_eq!(c.reconnect.recycle_max_gap, Duration::from_millis(1500));
        let c = Config::from_env_map(&env(&[
            echo,
            ("PHONE_AGENT_RECONNECT__RECYCLE_MAX_GAP_MS", "800"),
        ]))
        .unwrap();
        assert_eq!(c.reconnect.recycle_max_gap, Duration::from_millis(800));
        // Below 100 ms, or beyond max_gap_ms (15000 by default), is refused.
        for bad in ["50", "15001"] {
            let err = Config::from_env_map(&env(&[
                echo,
                ("PHONE_AGENT_RECONNECT__RECYCLE_MAX_GAP_MS", bad),
            ]))
            .unwrap_err()
            .to_string();
            assert!(err.contains("reconnect.recycle_max_gap_ms"), "{err}");
        }
    }

    #[test]
    fn ws_base_normalization() {
        assert_eq!(
            normalize_ws_base("https://api.openai.com/v1/").unwrap(),
            "wss://api.openai.com/v1"
        );
        assert_eq!(
            normalize_ws_base("ws://127.0.0.1:9/v1").unwrap(),
            "ws://127.0.0.1:9/v1"
        );
        assert!(normalize_ws_base("ftp://x").is_err());
        assert!(normalize_ws_base("nope").is_err());
    }
}
