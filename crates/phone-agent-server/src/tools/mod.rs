//! What the agent can do on a call: the built-in `end_call` and `transfer_call`, HTTP webhook
//! tools from `[[tools]]`, and (declared, OpenAI-run) MCP servers.
//!
//! Where tools run (see ARCHITECTURE.md): bridge-core's driver spawns each function call the
//! model makes as its own task, off the audio path, bounded by the tool timeout; the task calls
//! [`CallTools`], this call's [`ToolExecutor`]. Its result goes back to the model as
//! `function_call_output` followed by one `response.create`. A built-in tool's result carries a
//! [`CallAction`] that the engine executes — through
//! [`control::TwilioCallControl`], i.e. the Twilio REST API — once the agent's following words
//! (the goodbye, the transfer line) have been heard.
//!
//! * [`ToolSet`]: the tools of one profile, built once at startup (definitions, webhooks by
//!   name, transfer allow-list).
//! * [`CallContext`]: what one call's tools know (call SID, from, to, profile, stream
//!   parameters), its pending transfer, whether the greeting is still playing, and the
//!   [`AgentSideChannel`] for lines the agent says while a tool runs.
//! * [`CallTools`]: a `ToolSet` bound to one call.

pub mod config;
pub(crate) mod control;
pub mod schema;
pub mod webhook;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bridge_core::caller::CallerInfo;
use bridge_core::tools::{CallAction, ToolDefinition, ToolExecutor, ToolInvocation, ToolOutput};
use serde_json::{Value, json};

use crate::config::{PublicUrl, Secret};
use crate::twilio_rest::TwilioRest;
use config::{
    CallControlConfig, END_CALL, TRANSFER_CALL, ToolsConfig, TransferDestination, WebhookTool,
};

/// What every call's tools share (one per server).
#[derive(Debug)]
pub(crate) struct ToolServices {
    /// The HTTP client (webhooks; the REST client has its own handle to the same pool type).
    pub(crate) http: reqwest::Client,
    /// The Twilio REST API, if configured.
    pub(crate) rest: Option<TwilioRest>,
    /// Key of the webhook signature.
    pub(crate) signing_secret: Option<Secret>,
    /// Largest webhook answer accepted.
    pub(crate) max_response_bytes: usize,
    /// For the whisper URL of transfers.
    pub(crate) public_url: Option<PublicUrl>,
    /// Transfer settings (caller ID, ring timeout, whisper).
    pub(crate) call_control: CallControlConfig,
}

/// The tools of one profile.
#[derive(Debug)]
pub(crate) struct ToolSet {
    definitions: Vec<ToolDefinition>,
    webhooks: HashMap<String, Arc<WebhookTool>>,
    end_call: bool,
    destinations: Vec<TransferDestination>,
    control: CallControlConfig,
}

impl ToolSet {
    /// The tools named in `names` (`None`: every configured tool), with the transfer
    /// destinations named in `destinations` (`None`: all).
    pub(crate) fn build(
        tools: &ToolsConfig,
        names: Option<&[String]>,
        destinations: Option<&[String]>,
    ) -> ToolSet {
        let wanted = |name: &str| names.is_none_or(|n| n.iter().any(|x| x == name));
        let control = tools.call_control.clone();
        let destinations: Vec<TransferDestination> = control
            .destinations
            .iter()
            .filter(|d| destinations.is_none_or(|n| n.contains(&d.name)))
            .cloned()
            .collect();
        let end_call = control.end_call && wanted(END_CALL);
        let transfer = !destinations.is_empty() && wanted(TRANSFER_CALL);
        let mut definitions = Vec::new();
        let mut webhooks = HashMap::new();
        for tool in tools.webhooks.iter().filter(|t| wanted(&t.name)) {
            definitions.push(ToolDefinition {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters: tool.parameters.clone(),
            });
            webhooks.insert(tool.name.clone(), Arc::new(tool.clone()));
        }
        if end_call {
            definitions.push(end_call_definition());
        }
        let destinations = if transfer { destinations } else { Vec::new() };
        if !destinations.is_empty() {
            definitions.push(transfer_definition(&destinations));
        }
        ToolSet {
            definitions,
            webhooks,
            end_call,
            destinations,
            control,
        }
    }

    /// The function tools declared to the model.
    pub(crate) fn definitions(&self) -> &[ToolDefinition] {
        &self.definitions
    }

    /// The transfer allow-list (empty when `transfer_call` is not offered).
    pub(crate) fn destinations(&self) -> &[TransferDestination] {
        &self.destinations
    }

    /// Whether `transfer_call` is offered.
    pub(crate) fn has_transfer(&self) -> bool {
        !self.destinations.is_empty()
    }

    /// The longest webhook timeout (the driver's tool timeout must exceed it).
    pub(crate) fn longest_timeout(&self) -> Option<std::time::Duration> {
        self.webhooks.values().map(|w| w.timeout).max()
    }
}

fn end_call_definition() -> ToolDefinition {
    ToolDefinition {
        name: END_CALL.into(),
        description: "Hang up the phone call. Use it when the conversation is finished or the \
                      caller wants to end the call. After calling it, say a short goodbye: the \
                      call ends once the caller has heard it."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "reason": {"type": "string", "description": "Why the call ends, in a few words."}
            }
        }),
    }
}

fn transfer_definition(destinations: &[TransferDestination]) -> ToolDefinition {
    let mut description = String::from(
        "Transfer the caller to a person or another line. Only these destinations exist:",
    );
    for d in destinations {
        description.push_str(&format!("\n- {}: {}", d.name, d.description));
    }
    let names: Vec<&str> = destinations.iter().map(|d| d.name.as_str()).collect();
    ToolDefinition {
        name: TRANSFER_CALL.into(),
        description,
        parameters: json!({
            "type": "object",
            "properties": {
                "destination": {
                    "type": "string",
                    "enum": names,
                    "description": "Where to transfer the caller."
                },
                "summary": {
                    "type": "string",
                    "description": "One sentence for the person taking the call: who is calling and what they need."
                }
            },
            "required": ["destination"]
        }),
    }
}

/// Client events the bridge sends to the agent besides the engine's commands: the filler line
/// of a slow tool, answers to MCP approval requests. Queued here by tools and the agent's
/// decoder; the Realtime adapter writes them with its next command (caller audio arrives every
/// 20 ms). Checking costs one atomic load per command.
#[derive(Debug, Default)]
pub struct AgentSideChannel {
    pending: AtomicBool,
    queue: Mutex<Vec<String>>,
}

impl AgentSideChannel {
    /// Queues one client event (JSON text).
    pub fn push(&self, event: String) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.push(event);
        self.pending.store(true, Ordering::Release);
    }

    /// The queued events, if any.
    pub fn take(&self) -> Option<Vec<String>> {
        if !self.pending.load(Ordering::Acquire) {
            return None;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        self.pending.store(false, Ordering::Release);
        Some(std::mem::take(&mut *queue))
    }
}

/// A transfer the model asked for, executed once its line has been heard.
#[derive(Debug, Clone)]
pub(crate) struct PendingTransfer {
    pub(crate) destination: TransferDestination,
    pub(crate) summary: Option<String>,
}

/// What the tools of one call know and share with its call control.
#[derive(Debug)]
pub(crate) struct CallContext {
    pub(crate) call_sid: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) profile: String,
    /// Stream parameters (the per-call token left out).
    pub(crate) parameters: Vec<(String, String)>,
    /// Lines said while a tool runs.
    pub(crate) side: Arc<AgentSideChannel>,
    /// Whether the agent can take out-of-band lines (the Realtime back end).
    pub(crate) side_supported: bool,
    /// Set once the greeting has been heard in full (or was interrupted, or there is none).
    pub(crate) greeting_over: Arc<AtomicBool>,
    pub(crate) transfer: Mutex<Option<PendingTransfer>>,
    /// MCP activity, for the call summary.
    pub(crate) mcp: Arc<crate::adapters::realtime::McpStats>,
    /// The `agent_voicemail` state (outbound calls answered by a machine).
    pub(crate) voicemail: Arc<crate::outbound::voicemail::AgentVoicemail>,
}

impl CallContext {
    pub(crate) fn new(
        info: &CallerInfo,
        profile: &str,
        greeting: bool,
        side_supported: bool,
    ) -> Self {
        let param = |k: &str| info.parameter(k).unwrap_or_default().to_owned();
        CallContext {
            call_sid: info.call_id.clone(),
            from: param("from"),
            to: param("to"),
            profile: profile.to_owned(),
            parameters: info
                .parameters
                .iter()
                .filter(|(k, _)| k != "token")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            side: Arc::new(AgentSideChannel::default()),
            side_supported,
            greeting_over: Arc::new(AtomicBool::new(!greeting)),
            transfer: Mutex::new(None),
            voicemail: Arc::default(),
            mcp: Arc::default(),
        }
    }

    /// The `call` object of a webhook body.
    pub(crate) fn to_json(&self) -> Value {
        let parameters: serde_json::Map<String, Value> = self
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "call_sid": self.call_sid,
            "from": self.from,
            "to": self.to,
            "profile": self.profile,
            "parameters": parameters,
        })
    }

    /// Makes the agent say `line` now (as its own short response).
    pub(crate) fn say(&self, line: &str) -> bool {
        if !self.side_supported {
            return false;
        }
        let instructions = format!(
            "While you wait for a tool, say exactly this to the caller, nothing else: {line}"
        );
        let event = json!({
            "type": "response.create",
            "response": {"instructions": instructions}
        });
        self.side.push(event.to_string());
        true
    }
}

/// A [`ToolSet`] bound to one call.
#[derive(Debug)]
pub(crate) struct CallTools {
    pub(crate) set: Arc<ToolSet>,
    pub(crate) services: Arc<ToolServices>,
    pub(crate) call: Arc<CallContext>,
}

#[async_trait]
impl ToolExecutor for CallTools {
    fn definitions(&self) -> Vec<ToolDefinition> {
        self.set.definitions.clone()
    }

    async fn call(&self, invocation: ToolInvocation) -> ToolOutput {
        let name = invocation.name.as_str();
        let (kind, output) = if let Some(tool) = self.set.webhooks.get(name) {
            let output = webhook::call(tool, &self.services, &self.call, &invocation).await;
            ("webhook", output)
        } else if name == END_CALL && self.set.end_call {
            ("builtin", self.end_call())
        } else if name == TRANSFER_CALL && !self.set.destinations.is_empty() {
            ("builtin", self.transfer(&invocation.arguments))
        } else {
            tracing::warn!(tool = name, "the agent called a tool that does not exist");
            (
                "unknown",
                ToolOutput::error(format!("there is no tool named {name:?}")),
            )
        };
        let ok = !output.output.starts_with("{\"error\"");
        crate::telemetry::tool_call(kind, if ok { "ok" } else { "error" });
        output
    }
}

impl CallTools {
    fn end_call(&self) -> ToolOutput {
        if !self.call.greeting_over.load(Ordering::Acquire) {
            tracing::info!("end_call refused: the greeting is still playing");
            return ToolOutput::error(
                "end_call is not available while the greeting is playing; continue the conversation",
            );
        }
        ToolOutput {
            output: json!({
                "status": "ending",
                "instructions": "Say a short goodbye now. The call ends once the caller has heard it."
            })
            .to_string(),
            action: Some(CallAction::Hangup),
        }
    }

    fn transfer(&self, arguments: &str) -> ToolOutput {
        let args: Value = match serde_json::from_str(arguments) {
            Ok(v) => v,
            Err(e) => return ToolOutput::error(format!("the arguments are not JSON: {e}")),
        };
        let wanted = args
            .get("destination")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(destination) = self.set.destinations.iter().find(|d| d.name == wanted) else {
            let names: Vec<&str> = self
                .set
                .destinations
                .iter()
                .map(|d| d.name.as_str())
                .collect();
            tracing::info!(
                destination = wanted,
                "transfer refused: not on the allow-list"
            );
            return ToolOutput::error(format!(
                "{wanted:?} is not a transfer destination; the destinations are: {}",
                names.join(", ")
            ));
        };
        if self.services.rest.is_none() {
            return ToolOutput::error(
                "transfers are not available on this line (the Twilio REST API is not configured); tell the caller",
            );
        }
        let summary = args
            .get("summary")
            .and_then(Value::as_str)
            .map(|s| s.trim().chars().take(300).collect::<String>())
            .filter(|s| !s.is_empty());
        *self.call.transfer.lock().unwrap_or_else(|e| e.into_inner()) = Some(PendingTransfer {
            destination: destination.clone(),
            summary,
        });
        tracing::info!(destination = %destination.name, "transfer requested");
        ToolOutput {
            output: json!({
                "status": "transferring",
                "destination": destination.name,
                "instructions": self.set.control.transfer_line,
            })
            .to_string(),
            action: Some(CallAction::Transfer {
                to: destination.target.as_str().to_owned(),
            }),
        }
    }
}
