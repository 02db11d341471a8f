//! The agent endpoint for OpenAI Realtime (GA) over WebSocket.
//!
//! On connect it sends one `session.update`: μ-law in and out (Twilio's format, so audio is
//! never transcoded), the voice, the call's rendered instructions, turn detection (server or
//! semantic VAD, with `interrupt_response`, `create_response` and `idle_timeout_ms` from the
//! configuration), input transcription, noise reduction and the tools. [`AgentEvent::Ready`]
//! is reported as soon as that `session.update` is written: OpenAI processes a session's
//! events in order, so the greeting's `response.create` and the caller's audio can follow it at
//! once instead of a round trip later. An `error` before the answering `session.updated` means
//! the configuration was refused and is fatal (the call ends at once).
//!
//! Server events map onto the seam as in ARCHITECTURE.md: audio deltas are forwarded **without
//! copying** (a [`Bytes::slice_ref`] of the received frame), function calls carry their
//! response id (the engine runs them only once that response completed), transcripts, usage
//! from `response.done`, errors (fatal only when the session cannot continue) and the close.
//! Caller audio goes out with openai-realtime's allocation-light `input_audio_buffer.append`
//! writer; commands are queued on the socket and written on `poll_flush`; `close` is the
//! closing handshake.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use async_trait::async_trait;
use bridge_core::agent::{
    AgentCapabilities, AgentCommand, AgentEndpoint, AgentEvent, ContextItem, ResponseStatus,
    Speaker, ToolCallRequest, Usage,
};
use bridge_core::caller::EndpointError;
use bridge_core::format::{AudioFormat, Base64Audio};
use bridge_core::tools::ToolDefinition;
use bytes::Bytes;
use openai_realtime::client::{
    ApiKey, AuthStyle, Connection, Endpoint, Incoming, MAX_MESSAGE_SIZE, RetryPolicy, Target,
    TransportError, WebSocketConfig,
};
use openai_realtime::realtime::{
    self as rt, ClientEvent, Item, ResponseCreateParams, ServerEvent, SessionConfig,
};

use super::{Direction, RelayClock};
use crate::tools::AgentSideChannel;
use crate::tools::config::{McpApproval, McpServer};

/// How long to wait for OpenAI's reply to our close frame before dropping the socket.
const CLOSE_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
use crate::config::{AgentConfig, NoiseReduction, OpenAiConfig, TurnDetection};

/// Builds the reusable connection settings (TLS roots, headers) once per server.
pub fn endpoint(openai: &OpenAiConfig) -> Result<Endpoint, String> {
    let key = openai.api_key.as_ref().ok_or("OPENAI_API_KEY is not set")?;
    Endpoint::builder(ApiKey::new(key.expose()))
        .auth_style(match openai.auth {
            crate::config::OpenAiAuth::Bearer => AuthStyle::Bearer,
            crate::config::OpenAiAuth::ApiKey => AuthStyle::AzureApiKey,
        })
        .base_url(openai.base_url.clone())
        .connect_timeout(openai.connect_timeout)
        .retry(RetryPolicy {
            max_attempts: openai.connect_attempts,
            ..RetryPolicy::default()
        })
        .websocket_config(websocket_config())
        .build()
        .map_err(|e| e.to_string())
}

/// WebSocket settings for the OpenAI side: the client's message limits with a 4 KiB read
/// buffer. tungstenite zero-fills its whole read buffer before every read, so the default
/// 128 KiB cost a 128 KiB `memset` per read (a sixth of the server's CPU under load) and
/// made every page of it resident (~128 KiB per call); audio deltas are a few KiB, and a
/// larger message is still read whole (the buffer grows to fit it). Queued writes go out
/// once 3 KiB are waiting (a dozen caller frames), so the write buffer, which never shrinks
/// and grows by doubling, stays at ~4 KB per call (8 KiB let it reach 9–17 KB under load).
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(3 * 1024)
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
}

/// The `session.update` for one call.
pub fn session_config(
    openai: &OpenAiConfig,
    agent: &AgentConfig,
    instructions: String,
    tools: &[ToolDefinition],
    mcp_tools: &[serde_json::Value],
) -> Result<SessionConfig, String> {
    let turn_detection: rt::TurnDetection = match &openai.turn_detection {
        TurnDetection::ServerVad {
            threshold,
            prefix_padding_ms,
            silence_duration_ms,
            create_response,
            interrupt_response,
            idle_timeout_ms,
        } => rt::ServerVad {
            threshold: Some(*threshold),
            prefix_padding_ms: Some(*prefix_padding_ms),
            silence_duration_ms: Some(*silence_duration_ms),
            idle_timeout_ms: *idle_timeout_ms,
            create_response: Some(*create_response),
            interrupt_response: Some(*interrupt_response),
        }
        .into(),
        TurnDetection::SemanticVad {
            eagerness,
            create_response,
            interrupt_response,
        } => rt::SemanticVad {
            eagerness: Some(rt::Eagerness::from(eagerness.as_str())),
            create_response: Some(*create_response),
            interrupt_response: Some(*interrupt_response),
        }
        .into(),
    };
    let mut builder = SessionConfig::builder()
        .instructions(instructions)
        .output_modalities([rt::Modality::Audio])
        .audio_format(rt::AudioFormat::Pcmu)
        .voice(agent.voice.as_str())
        .turn_detection(turn_detection);
    if let Some(model) = &openai.transcription_model {
        let mut transcription = rt::Transcription::model(model.as_str());
        if let Some(language) = &openai.transcription_language {
            transcription = transcription.language(language.as_str());
        }
        builder = builder.transcription(transcription);
    }
    builder = match openai.noise_reduction {
        NoiseReduction::Off => builder,
        NoiseReduction::NearField => builder.noise_reduction(rt::NoiseReduction::near_field()),
        NoiseReduction::FarField => builder.noise_reduction(rt::NoiseReduction::far_field()),
    };
    if !tools.is_empty() || !mcp_tools.is_empty() {
        builder = builder.tools(
            tools
                .iter()
                .map(|t| {
                    rt::Tool::Function(rt::FunctionTool::new(
                        t.name.clone(),
                        t.description.clone(),
                        t.parameters.clone(),
                    ))
                })
                .chain(mcp_tools.iter().cloned().map(rt::Tool::Unknown)),
        );
    }
    builder.build().map_err(|e| e.to_string())
}

/// The OpenAI Realtime agent endpoint.
pub struct RealtimeAgent {
    /// The socket, unsplit: this one task reads and writes it (no lock between directions).
    connection: Connection,
    interrupts_itself: bool,
    decoder: RealtimeDecoder,
    closed: bool,
    /// Events decoded but not returned yet.
    queued: VecDeque<AgentEvent>,
    clock: Arc<RelayClock>,
    audio_fed: bool,
    /// Out-of-band client events (a slow tool's filler line, MCP approval answers).
    side: Option<Arc<AgentSideChannel>>,
}

impl std::fmt::Debug for RealtimeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealtimeAgent")
            .field("ready", &self.decoder.ready)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// Turns OpenAI Realtime server events into [`AgentEvent`]s: the per-message half of
/// [`RealtimeAgent`] without the socket (usable on its own, e.g. in benchmarks).
///
/// An audio delta is not copied: the event's audio is a slice of the message's buffer.
/// `session.updated` becomes [`AgentEvent::Ready`] once (unless it was reported up front, see
/// [`RealtimeDecoder::ready_reported`]); an `error` before it is fatal; events that cannot be parsed are
/// logged (the first at `warn`), counted and skipped; unknown events are ignored.
///
/// ```
/// use std::collections::VecDeque;
/// use bridge_core::agent::AgentEvent;
/// use phone_agent_server::adapters::realtime::RealtimeDecoder;
///
/// let mut decoder = RealtimeDecoder::default();
/// let mut out = VecDeque::new();
/// let delta = r#"{"type":"response.output_audio.delta","event_id":"e1","response_id":"r1","item_id":"i1","output_index":0,"content_index":0,"delta":"//////8="}"#;
/// decoder.decode(&delta.into(), &mut out);
/// let Some(AgentEvent::Audio { audio, .. }) = out.pop_front() else { panic!() };
/// assert_eq!(audio.as_str(), "//////8=");
/// ```
#[derive(Debug, Default)]
pub struct RealtimeDecoder {
    /// [`AgentEvent::Ready`] was reported (by the decoder on `session.updated`, or up front by
    /// [`RealtimeAgent::connect`]).
    ready: bool,
    /// `session.updated` has been seen: OpenAI accepted the configuration.
    confirmed: bool,
    /// Server events skipped because they could not be parsed.
    skipped: u64,
    /// MCP observation and approvals, when the session has MCP servers.
    mcp: Option<McpPolicy>,
}

/// Counts of a call's MCP activity (OpenAI runs the calls; the bridge observes).
#[derive(Debug, Default)]
pub struct McpStats {
    /// `mcp_list_tools.completed`.
    pub lists_completed: std::sync::atomic::AtomicU64,
    /// `mcp_list_tools.failed`.
    pub lists_failed: std::sync::atomic::AtomicU64,
    /// `response.mcp_call.completed`.
    pub calls_completed: std::sync::atomic::AtomicU64,
    /// `response.mcp_call.failed`.
    pub calls_failed: std::sync::atomic::AtomicU64,
    /// Approval requests answered yes.
    pub approved: std::sync::atomic::AtomicU64,
    /// Approval requests answered no.
    pub denied: std::sync::atomic::AtomicU64,
}

impl McpStats {
    pub(crate) fn bump(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A counter's value.
    pub fn get(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// How a session's MCP events are observed and approval requests answered: requests for a
/// tool in its server's `approve_tools` are approved, anything else denied; answers go out as
/// `conversation.item.create` of an `mcp_approval_response` through the side channel.
#[derive(Debug)]
pub struct McpPolicy {
    approve: Vec<(String, McpApproval, Vec<String>)>,
    side: Arc<AgentSideChannel>,
    stats: Arc<McpStats>,
    answered: std::collections::HashSet<String>,
}

impl McpPolicy {
    /// The policy of `servers`, answering through `side`, counting into `stats`.
    pub fn new(servers: &[McpServer], side: Arc<AgentSideChannel>, stats: Arc<McpStats>) -> Self {
        McpPolicy {
            approve: servers
                .iter()
                .map(|s| (s.label.clone(), s.require_approval, s.approve_tools.clone()))
                .collect(),
            side,
            stats,
            answered: std::collections::HashSet::new(),
        }
    }

    fn on_item(&mut self, item: &Item) {
        let Item::Unknown(raw) = item else {
            return;
        };
        if raw.get("type").and_then(serde_json::Value::as_str) != Some("mcp_approval_request") {
            return;
        }
        let str_of = |k: &str| raw.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
        let (id, server, tool) = (str_of("id"), str_of("server_label"), str_of("name"));
        if id.is_empty() || !self.answered.insert(id.to_owned()) {
            return;
        }
        let approve = self
            .approve
            .iter()
            .any(|(label, _, tools)| label == server && tools.iter().any(|t| t == tool));
        let mut item = serde_json::json!({
            "type": "mcp_approval_response",
            "approval_request_id": id,
            "approve": approve,
        });
        if approve {
            McpStats::bump(&self.stats.approved);
            tracing::info!(server, tool, "MCP call approved (approve_tools)");
        } else {
            McpStats::bump(&self.stats.denied);
            item["reason"] = "This tool is not approved for phone calls.".into();
            tracing::info!(server, tool, "MCP call denied (not in approve_tools)");
        }
        self.side.push(
            serde_json::json!({"type": "conversation.item.create", "item": item}).to_string(),
        );
    }
}

/// The text message for `command` (`None` for [`AgentCommand::Close`], which is no message).
/// Audio is written with openai-realtime's `input_audio_buffer.append` writer (the base64
/// text copied once, no JSON value).
///
/// ```
/// use bridge_core::agent::AgentCommand;
/// use bridge_core::format::Base64Audio;
/// use phone_agent_server::adapters::realtime::encode_command;
///
/// let audio = Base64Audio::from_text("//////8=").unwrap();
/// assert_eq!(
///     encode_command(AgentCommand::Audio(audio)).as_deref(),
///     Some(r#"{"type":"input_audio_buffer.append","audio":"//////8="}"#)
/// );
/// assert_eq!(encode_command(AgentCommand::Close), None);
/// ```
pub fn encode_command(command: AgentCommand) -> Option<String> {
    Some(match command {
        AgentCommand::Audio(audio) => {
            let mut frame = String::with_capacity(audio.text_len() + 48);
            rt::write_input_audio_append(&mut frame, audio.as_str());
            frame
        }
        AgentCommand::Truncate {
            item_id,
            audio_end_ms,
        } => ClientEvent::truncate(item_id, 0, audio_end_ms).to_json(),
        AgentCommand::CancelResponse { response_id } => match response_id {
            Some(id) => ClientEvent::response_cancel_id(id).to_json(),
            None => ClientEvent::response_cancel().to_json(),
        },
        AgentCommand::ToolResult { call_id, output } => {
            ClientEvent::item_create(Item::function_call_output(call_id, output)).to_json()
        }
        AgentCommand::AddContext { text } => {
            ClientEvent::item_create(Item::system_text(text)).to_json()
        }
        AgentCommand::Restore(item) => ClientEvent::item_create(restore_item(item)).to_json(),
        AgentCommand::CreateResponse { instructions } => {
            ClientEvent::response_create(instructions.map(ResponseCreateParams::instructions))
                .to_json()
        }
        AgentCommand::Close => return None,
    })
}

/// The `conversation.item.create` item replaying one entry of the conversation (PROTOCOLS.md
/// §6.7): a caller line as a user message with `input_text`, an agent line as an assistant
/// message with `output_text` (assistant audio cannot be created), a tool call as a
/// `function_call` item, its output as `function_call_output`, a note as a system message.
pub fn restore_item(item: ContextItem) -> Item {
    match item {
        ContextItem::Message {
            speaker: Speaker::Caller,
            text,
        } => Item::user_text(text),
        ContextItem::Message {
            speaker: Speaker::Agent,
            text,
        } => Item::assistant_text(text),
        ContextItem::ToolCall {
            call_id,
            name,
            arguments,
        } => Item::FunctionCall(rt::FunctionCallItem {
            id: None,
            object: None,
            status: None,
            call_id: Some(call_id),
            name,
            arguments,
        }),
        ContextItem::ToolOutput { call_id, output } => Item::function_call_output(call_id, output),
        ContextItem::Note { text } => Item::system_text(text),
    }
}

fn transport(e: TransportError) -> EndpointError {
    match e {
        TransportError::Closed => EndpointError::Closed("OpenAI connection closed".into()),
        other => EndpointError::Transport(other.to_string()),
    }
}

impl RealtimeAgent {
    /// Connects and configures the session (`session.update` is sent before this returns;
    /// `Ready` follows as an event).
    pub async fn connect(
        endpoint: &Endpoint,
        openai: &OpenAiConfig,
        session: &SessionConfig,
        clock: Arc<RelayClock>,
    ) -> Result<Self, EndpointError> {
        let mut connection = endpoint
            .connect(&Target::realtime(openai.model.as_str()))
            .await
            .map_err(|e| {
                if e.is_transient() {
                    EndpointError::Transport(format!("connecting to OpenAI Realtime: {e}"))
                } else {
                    // 401/403/404, an invalid model, a TLS failure: retrying cannot help, so
                    // the call ends at once (and the caller hears the fallback).
                    crate::telemetry::error("agent_connect_permanent");
                    tracing::error!(
                        error = %e,
                        "OpenAI refused the connection permanently (not retried): check \
                         OPENAI_API_KEY, OPENAI_MODEL and OPENAI_BASE_URL"
                    );
                    EndpointError::Protocol(format!(
                        "OpenAI Realtime refused the connection (permanent): {e}"
                    ))
                }
            })?;
        // Taken, not borrowed: the connection then holds no URL or request id for the call.
        let info = connection.take_info();
        tracing::debug!(attempts = info.attempts(), "connected to OpenAI Realtime");
        connection
            .send_text_unbuffered(ClientEvent::session_update(session).to_json())
            .await
            .map_err(transport)?;
        // Ready now: everything the engine sends next is processed after the update.
        let mut decoder = RealtimeDecoder::default();
        decoder.ready_reported();
        Ok(RealtimeAgent {
            connection,
            interrupts_itself: openai.turn_detection.interrupts_itself(),
            decoder,
            closed: false,
            queued: VecDeque::from([AgentEvent::Ready]),
            clock,
            audio_fed: false,
            side: None,
        })
    }

    /// Measures relay latency on `clock` from now on (a session pre-warmed before its call's
    /// stream, and so its clock, existed).
    pub fn with_clock(mut self, clock: Arc<RelayClock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends the events queued on `side` with the next command.
    pub fn with_side_channel(mut self, side: Arc<AgentSideChannel>) -> Self {
        self.side = Some(side);
        self
    }

    /// Observes MCP events and answers approval requests per `policy`.
    pub fn with_mcp(mut self, policy: McpPolicy) -> Self {
        self.decoder.mcp = Some(policy);
        self
    }
}

impl RealtimeDecoder {
    /// Whether `session.updated` (OpenAI accepted the configuration) has been seen.
    pub fn is_ready(&self) -> bool {
        self.confirmed
    }

    /// [`AgentEvent::Ready`] was reported by the caller of the decoder (once the
    /// `session.update` was written): `session.updated` then reports nothing more.
    pub fn ready_reported(&mut self) {
        self.ready = true;
    }

    /// Events skipped so far because they could not be parsed.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Maps one server event (a text message) to zero or more seam events, pushed to `out`.
    pub fn decode(
        &mut self,
        text: &tokio_tungstenite::tungstenite::Utf8Bytes,
        out: &mut VecDeque<AgentEvent>,
    ) {
        let event = match ServerEvent::parse(text.as_str()) {
            Ok(event) => event,
            Err(e) => {
                self.skipped += 1;
                crate::telemetry::error("openai_event_unparsed");
                if self.skipped == 1 {
                    tracing::warn!(error = %e, "skipping an OpenAI event we could not parse (further ones at debug)");
                } else {
                    tracing::debug!(error = %e, "skipping an OpenAI event we could not parse");
                }
                return;
            }
        };
        match event {
            ServerEvent::OutputAudioDelta(delta) => {
                let audio = match &delta.delta {
                    std::borrow::Cow::Borrowed(b64) => {
                        let frame = Bytes::from(text.clone());
                        Base64Audio::from_shared(frame.slice_ref(b64.as_bytes()))
                    }
                    std::borrow::Cow::Owned(b64) => Base64Audio::from_text(b64),
                };
                match audio {
                    Ok(audio) => {
                        tracing::trace!(bytes = audio.decoded_len(), "agent audio");
                        out.push_back(AgentEvent::Audio {
                            audio,
                            response_id: Some(delta.response_id.into_owned()),
                            item_id: Some(delta.item_id.into_owned()),
                        });
                    }
                    Err(e) => {
                        crate::telemetry::error("openai_bad_audio");
                        tracing::debug!(error = %e, "skipping an audio delta with a bad payload");
                    }
                }
            }
            ServerEvent::SpeechStarted(_) => out.push_back(AgentEvent::SpeechStarted),
            ServerEvent::SpeechStopped(_) => out.push_back(AgentEvent::SpeechStopped),
            ServerEvent::OutputAudioDone(done) => out.push_back(AgentEvent::AudioDone {
                response_id: Some(done.response_id.into_owned()),
                item_id: Some(done.item_id.into_owned()),
            }),
            ServerEvent::SessionUpdated(_) => {
                self.confirmed = true;
                if !self.ready {
                    self.ready = true;
                    out.push_back(AgentEvent::Ready);
                }
            }
            ServerEvent::SessionCreated(_) => tracing::debug!("OpenAI session created"),
            ServerEvent::ResponseCreated(created) => {
                out.push_back(AgentEvent::ResponseStarted {
                    response_id: created.response.id.unwrap_or_default(),
                });
            }
            ServerEvent::ResponseDone(done) => {
                let response = done.response;
                let status = match response.status {
                    Some(rt::ResponseStatus::Completed) | None => ResponseStatus::Completed,
                    Some(rt::ResponseStatus::Cancelled) => ResponseStatus::Cancelled,
                    Some(rt::ResponseStatus::Incomplete) => ResponseStatus::Incomplete,
                    Some(rt::ResponseStatus::Failed) => ResponseStatus::Failed(
                        response
                            .status_details
                            .as_ref()
                            .and_then(|d| d.error.as_ref())
                            .and_then(|e| e.message.clone().or_else(|| e.code.clone()))
                            .unwrap_or_else(|| "response failed".into()),
                    ),
                    Some(other) => {
                        ResponseStatus::Failed(format!("unexpected status {}", other.as_str()))
                    }
                };
                let usage = response.usage.as_ref().map(|u| Usage {
                    input_tokens: u.input_tokens.unwrap_or(0),
                    output_tokens: u.output_tokens.unwrap_or(0),
                    input_audio_tokens: u
                        .input_token_details
                        .as_ref()
                        .and_then(|d| d.audio_tokens)
                        .unwrap_or(0),
                    output_audio_tokens: u
                        .output_token_details
                        .as_ref()
                        .and_then(|d| d.audio_tokens)
                        .unwrap_or(0),
                    billed_seconds: None,
                });
                out.push_back(AgentEvent::ResponseDone {
                    response_id: response.id.unwrap_or_default(),
                    status,
                    usage,
                });
            }
            ServerEvent::FunctionCallArgumentsDone(call) => {
                out.push_back(AgentEvent::ToolCall(ToolCallRequest {
                    call_id: call.call_id.into_owned(),
                    name: call.name.into_owned(),
                    arguments: call.arguments.into_owned(),
                    response_id: Some(call.response_id.into_owned()),
                }));
            }
            ServerEvent::OutputAudioTranscriptDelta(delta) => {
                out.push_back(AgentEvent::Transcript {
                    speaker: Speaker::Agent,
                    text: delta.delta.into_owned(),
                    is_final: false,
                    timing: None,
                    item_id: Some(delta.item_id.into_owned()),
                })
            }
            ServerEvent::OutputAudioTranscriptDone(done) => out.push_back(AgentEvent::Transcript {
                speaker: Speaker::Agent,
                text: done.transcript.into_owned(),
                is_final: true,
                timing: None,
                item_id: Some(done.item_id.into_owned()),
            }),
            ServerEvent::InputAudioTranscriptionDelta(delta) => {
                out.push_back(AgentEvent::Transcript {
                    speaker: Speaker::Caller,
                    text: delta.delta.into_owned(),
                    is_final: false,
                    timing: None,
                    item_id: Some(delta.item_id.into_owned()),
                })
            }
            ServerEvent::InputAudioTranscriptionCompleted(done) => {
                out.push_back(AgentEvent::Transcript {
                    speaker: Speaker::Caller,
                    text: done.transcript.into_owned(),
                    is_final: true,
                    timing: None,
                    item_id: Some(done.item_id.into_owned()),
                })
            }
            ServerEvent::InputAudioTranscriptionFailed(failed) => {
                tracing::debug!(error = ?failed.error, "caller transcription failed");
            }
            ServerEvent::Error(error) => {
                let details = error.error;
                if details.is_harmless() {
                    tracing::debug!(code = ?details.code, "harmless OpenAI error");
                } else if !self.confirmed {
                    // Before `session.updated`, an error answers our `session.update`: the
                    // session cannot be configured and will never be usable.
                    out.push_back(AgentEvent::Error {
                        fatal: true,
                        code: details.code,
                        message: format!(
                            "OpenAI refused the session configuration: {}",
                            details.message
                        ),
                    });
                } else {
                    out.push_back(AgentEvent::Error {
                        fatal: details.is_session_fatal(),
                        code: details.code,
                        message: details.message,
                    });
                }
            }
            ServerEvent::InputAudioBufferTimeoutTriggered(_) => {
                tracing::debug!("OpenAI idle timeout triggered");
            }
            ServerEvent::Unknown { event_type, .. } => {
                tracing::debug!(event_type, "unknown OpenAI event");
            }
            ServerEvent::McpListToolsCompleted(e) => {
                if let Some(mcp) = &self.mcp {
                    McpStats::bump(&mcp.stats.lists_completed);
                }
                tracing::info!(item_id = %e.item_id, "MCP tools listed");
            }
            ServerEvent::McpListToolsFailed(e) => {
                if let Some(mcp) = &self.mcp {
                    McpStats::bump(&mcp.stats.lists_failed);
                }
                crate::telemetry::error("mcp_list_tools");
                tracing::warn!(item_id = %e.item_id, "listing an MCP server's tools failed");
            }
            ServerEvent::McpCallArgumentsDone(e) => {
                tracing::debug!(item_id = %e.item_id, "MCP call arguments complete");
            }
            ServerEvent::McpCallCompleted(e) => {
                if let Some(mcp) = &self.mcp {
                    McpStats::bump(&mcp.stats.calls_completed);
                }
                crate::telemetry::tool_call("mcp", "ok");
                tracing::info!(item_id = %e.item_id, "MCP call completed");
            }
            ServerEvent::McpCallFailed(e) => {
                if let Some(mcp) = &self.mcp {
                    McpStats::bump(&mcp.stats.calls_failed);
                }
                crate::telemetry::tool_call("mcp", "error");
                tracing::warn!(item_id = %e.item_id, "MCP call failed");
            }
            ServerEvent::ConversationItemDone(e) => {
                if let Some(mcp) = &mut self.mcp {
                    mcp.on_item(&e.item);
                }
            }
            ServerEvent::OutputItemDone(e) => {
                if let Some(mcp) = &mut self.mcp {
                    mcp.on_item(&e.item);
                }
            }
            other => tracing::trace!(event_type = other.event_type(), "OpenAI event"),
        }
    }
}

impl AgentEndpoint for RealtimeAgent {
    fn capabilities(&self) -> AgentCapabilities {
        AgentCapabilities {
            input_format: AudioFormat::Mulaw8k,
            output_format: AudioFormat::Mulaw8k,
            truncation: true,
            interrupts_itself: self.interrupts_itself,
            reports_speech: true,
            continuous_input: false,
            restore_at_start: false,
            final_close: false,
        }
    }
}

#[async_trait]
impl bridge_core::agent::Endpoint for RealtimeAgent {
    type Event = AgentEvent;
    type Command = AgentCommand;

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AgentEvent, EndpointError>>> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            match ready!(self.connection.poll_recv(cx)) {
                None => return Poll::Ready(None),
                Some(Ok(Incoming::Text(text))) => {
                    let before = self.queued.len();
                    self.decoder.decode(&text, &mut self.queued);
                    if self
                        .queued
                        .range(before..)
                        .any(|e| matches!(e, AgentEvent::Audio { .. }))
                    {
                        self.clock.received(Direction::AgentToCaller);
                    }
                }
                Some(Ok(Incoming::Close(reason))) => {
                    let reason =
                        reason.map_or_else(|| "closed by OpenAI".to_owned(), |r| r.to_string());
                    return Poll::Ready(Some(Ok(AgentEvent::Closed { reason })));
                }
                Some(Ok(_)) => {}
                Some(Err(TransportError::Closed)) => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(transport(e)))),
            }
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        // The side channel's events (a tool's filler line) go out before the next command:
        // one atomic load when there are none.
        if let Some(side) = &self.side
            && let Some(events) = side.take()
        {
            for event in events {
                self.connection.queue_text(event);
            }
        }
        self.connection.poll_ready(cx).map_err(transport)
    }

    fn start_send(&mut self, command: AgentCommand) -> Result<(), EndpointError> {
        if self.closed {
            return Ok(());
        }
        self.audio_fed |= matches!(command, AgentCommand::Audio(_));
        // `None`: `Close`, which is not a message (the driver calls `close`).
        match encode_command(command) {
            Some(text) => self.connection.start_send_text(text).map_err(transport),
            None => Ok(()),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        ready!(self.connection.poll_flush(cx)).map_err(transport)?;
        if std::mem::take(&mut self.audio_fed) {
            self.clock.written(Direction::CallerToAgent);
        }
        Poll::Ready(Ok(()))
    }

    /// Completes the closing handshake (bounded): dropping the socket with unread data would
    /// reset the connection and OpenAI could see a reset instead of our close. Best effort:
    /// the socket may already be gone.
    async fn close(&mut self) -> Result<(), EndpointError> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        match self
            .connection
            .close_with_reason(1000, "call ended", CLOSE_HANDSHAKE_TIMEOUT)
            .await
        {
            Ok(report) => tracing::debug!(end = ?report.end, "closed the OpenAI socket"),
            Err(e) => tracing::debug!(error = %e, "closing the OpenAI socket"),
        }
        Ok(())
    }
}
