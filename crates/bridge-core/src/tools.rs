//! Tools the agent can call, and call control expressed as tool outcomes.
//!
//! The engine never runs a tool on the audio path: the driver spawns each call as its own task
//! with a timeout, and the result comes back as an input to the engine. Call control (hanging
//! up, transferring) is not implemented here: a tool returns a [`CallAction`], and the engine
//! turns it into an output the server executes at the right moment (for a hang-up: after the
//! goodbye has been heard).

use async_trait::async_trait;

/// A tool as declared to the agent session.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    /// Function name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: serde_json::Value,
}

/// One tool call to execute.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInvocation {
    /// The agent's call id.
    pub call_id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as JSON text, exactly as the model produced them (validate before use).
    pub arguments: String,
    /// The telephony call id (Twilio `CallSid`) the tool runs for.
    pub phone_call_id: String,
}

/// Something a tool asks the call to do once its result has been delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallAction {
    /// Hang up after the agent's goodbye has been played to the caller.
    Hangup,
    /// Transfer the caller to this number (E.164) or SIP address.
    Transfer {
        /// Where to.
        to: String,
    },
}

/// The result of a tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// JSON text returned to the agent: the result, or an error object such as
    /// `{"error":"…"}`.
    pub output: String,
    /// Call control requested by the tool, if any.
    pub action: Option<CallAction>,
}

impl ToolOutput {
    /// A successful result with no call action.
    pub fn json(value: &serde_json::Value) -> Self {
        ToolOutput {
            output: value.to_string(),
            action: None,
        }
    }

    /// An error object `{"error": message}` for the agent.
    pub fn error(message: impl Into<String>) -> Self {
        ToolOutput {
            output: serde_json::json!({ "error": message.into() }).to_string(),
            action: None,
        }
    }
}

/// Runs tools. Implementations must be cheap to share (`Arc`) and safe to call concurrently.
#[async_trait]
pub trait ToolExecutor: Send + Sync {
    /// The tools to declare to the agent.
    fn definitions(&self) -> Vec<ToolDefinition>;

    /// Runs one call. Errors are reported to the agent as a [`ToolOutput::error`] object; the
    /// driver enforces a timeout and cancels calls still running at teardown.
    async fn call(&self, invocation: ToolInvocation) -> ToolOutput;
}

/// A [`ToolExecutor`] with no tools.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTools;

#[async_trait]
impl ToolExecutor for NoTools {
    fn definitions(&self) -> Vec<ToolDefinition> {
        Vec::new()
    }

    async fn call(&self, invocation: ToolInvocation) -> ToolOutput {
        ToolOutput::error(format!("unknown tool `{}`", invocation.name))
    }
}
