//! Configuration of what the agent can do: `[[tools]]` (HTTP webhook tools), `[webhooks]`
//! (their shared settings), `[call_control]` (the built-in `end_call` and `transfer_call`),
//! `[[mcp_servers]]` and `[profiles.NAME]`. Raw (deserialized) forms and their validation; every
//! error names the key, e.g. `tools[1].url`.
//!
//! Values of `headers`, `authorization` and `signing_secret` may reference environment
//! variables as `${NAME}` (resolved once at startup from the same sources as every setting), so
//! secrets stay out of the file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use bridge_core::engine::GoodbyeBargeIn;
use serde::Deserialize;
use serde_json::Value;

use crate::config::{ConfigError, Secret, parse_goodbye_barge_in};

/// Names of the built-in tools.
pub const END_CALL: &str = "end_call";
/// Names of the built-in tools.
pub const TRANSFER_CALL: &str = "transfer_call";

// ---- raw -----------------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawWebhookTool {
    name: String,
    description: String,
    parameters: Value,
    url: String,
    method: String,
    headers: BTreeMap<String, String>,
    timeout_ms: Option<u64>,
    filler: String,
    filler_after_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawWebhooks {
    signing_secret: String,
    timeout_ms: u64,
    filler_after_ms: u64,
    max_response_bytes: u64,
}

impl Default for RawWebhooks {
    fn default() -> Self {
        RawWebhooks {
            signing_secret: String::new(),
            timeout_ms: 5000,
            filler_after_ms: 1500,
            max_response_bytes: 16 * 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawCallControl {
    end_call: bool,
    transfer_line: String,
    transfer_caller_id: String,
    transfer_timeout_secs: u32,
    whisper: bool,
    destinations: Vec<RawDestination>,
}

/// Default instructions for the line said before a transfer.
pub const DEFAULT_TRANSFER_LINE: &str =
    "Tell the caller in one short sentence that you are transferring them now.";

impl Default for RawCallControl {
    fn default() -> Self {
        RawCallControl {
            end_call: false,
            transfer_line: DEFAULT_TRANSFER_LINE.into(),
            transfer_caller_id: String::new(),
            transfer_timeout_secs: 30,
            whisper: true,
            destinations: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawDestination {
    name: String,
    number: String,
    sip: String,
    description: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawMcpServer {
    label: String,
    url: String,
    description: String,
    authorization: String,
    headers: BTreeMap<String, String>,
    allowed_tools: Vec<String>,
    require_approval: String,
    approve_tools: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawProfile {
    numbers: Vec<String>,
    prompt_path: Option<String>,
    voice: Option<String>,
    greeting: Option<String>,
    backend: Option<String>,
    goodbye_barge_in: Option<String>,
    tools: Option<Vec<String>>,
    mcp_servers: Option<Vec<String>>,
    transfer_destinations: Option<Vec<String>>,
    voicemail_message: Option<String>,
    voicemail_instructions: Option<String>,
    on_machine: Option<String>,
    on_fax: Option<String>,
    on_unknown: Option<String>,
}

/// The raw sections, as deserialized.
#[derive(Debug, Default)]
pub(crate) struct RawSections {
    pub(crate) tools: Vec<RawWebhookTool>,
    pub(crate) webhooks: RawWebhooks,
    pub(crate) call_control: RawCallControl,
    pub(crate) mcp_servers: Vec<RawMcpServer>,
    pub(crate) profiles: BTreeMap<String, RawProfile>,
}

// ---- validated -----------------------------------------------------------------------------

/// An HTTP webhook tool (`[[tools]]`).
#[derive(Debug, Clone)]
pub struct WebhookTool {
    /// Function name declared to the model.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the arguments (an object schema of the supported subset).
    pub parameters: Value,
    /// `http://` or `https://` URL.
    pub url: String,
    /// `POST`, `PUT` or `PATCH` (the body is JSON).
    pub method: http::Method,
    /// Extra request headers, `${VAR}` references resolved. Values are secrets.
    pub headers: Vec<(http::HeaderName, Secret)>,
    /// Bound on the whole request.
    pub timeout: Duration,
    /// Said by the agent when the tool has not answered after [`Self::filler_after`].
    pub filler: Option<String>,
    /// When the filler is said.
    pub filler_after: Duration,
}

/// Where a transfer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// An E.164 number (`+15551234567`).
    Number(String),
    /// A SIP URI (`sip:desk@pbx.example.com`).
    Sip(String),
}

impl DialTarget {
    /// The number or URI.
    pub fn as_str(&self) -> &str {
        match self {
            DialTarget::Number(s) | DialTarget::Sip(s) => s,
        }
    }
}

/// One entry of the transfer allow-list (`[[call_control.destinations]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferDestination {
    /// The name the model picks (`front_desk`).
    pub name: String,
    /// The number or SIP URI dialled.
    pub target: DialTarget,
    /// When to pick it, for the model.
    pub description: String,
}

/// The built-in tools (`[call_control]`).
#[derive(Debug, Clone)]
pub struct CallControlConfig {
    /// Offer `end_call`.
    pub end_call: bool,
    /// Instructions for what the agent says before the transfer.
    pub transfer_line: String,
    /// `callerId` of the `<Dial>`; `None`: the number the caller called (`To`).
    pub transfer_caller_id: Option<String>,
    /// `timeout` of the `<Dial>` (seconds of ringing).
    pub transfer_timeout_secs: u32,
    /// Whisper a one-line summary to the callee before connecting (`<Number url>` /
    /// `<Sip url>` pointing at the server's `/twilio/whisper`; needs `PUBLIC_URL`).
    pub whisper: bool,
    /// The allow-list; `transfer_call` is offered when it is not empty.
    pub destinations: Vec<TransferDestination>,
}

/// What the bridge answers when OpenAI asks to approve an MCP call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpApproval {
    /// `require_approval: "never"`: OpenAI calls tools without asking.
    Never,
    /// `require_approval: "always"`: every call is asked; the bridge approves the tools in
    /// `approve_tools` and denies the rest.
    Always,
}

/// An MCP server the Realtime session may use (`[[mcp_servers]]`). OpenAI calls it; the bridge
/// declares it and observes.
#[derive(Debug, Clone)]
pub struct McpServer {
    /// `server_label`.
    pub label: String,
    /// `server_url`.
    pub url: String,
    /// `server_description`.
    pub description: Option<String>,
    /// `authorization` (an OAuth access token), `${VAR}` resolved.
    pub authorization: Option<Secret>,
    /// `headers`, `${VAR}` resolved.
    pub headers: BTreeMap<String, Secret>,
    /// `allowed_tools`; empty: all.
    pub allowed_tools: Vec<String>,
    /// `require_approval`.
    pub require_approval: McpApproval,
    /// Tools the bridge approves when asked.
    pub approve_tools: Vec<String>,
}

impl McpServer {
    /// The `{"type":"mcp",…}` tool of `session.tools` (PROTOCOLS.md §6.12b). Contains the
    /// secrets: never log it.
    pub fn session_tool(&self) -> Value {
        let mut tool = serde_json::Map::new();
        tool.insert("type".into(), "mcp".into());
        tool.insert("server_label".into(), self.label.clone().into());
        tool.insert("server_url".into(), self.url.clone().into());
        if let Some(d) = &self.description {
            tool.insert("server_description".into(), d.clone().into());
        }
        if let Some(a) = &self.authorization {
            tool.insert("authorization".into(), a.expose().into());
        }
        if !self.headers.is_empty() {
            let headers: serde_json::Map<String, Value> = self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().into()))
                .collect();
            tool.insert("headers".into(), headers.into());
        }
        if !self.allowed_tools.is_empty() {
            tool.insert("allowed_tools".into(), self.allowed_tools.clone().into());
        }
        let approval = match self.require_approval {
            McpApproval::Never => "never",
            McpApproval::Always => "always",
        };
        tool.insert("require_approval".into(), approval.into());
        Value::Object(tool)
    }
}

/// A per-number profile (`[profiles.NAME]`). Unset fields inherit the top-level settings.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The table's name.
    pub name: String,
    /// Called numbers (`To`, E.164) answered with this profile.
    pub numbers: Vec<String>,
    /// Prompt file.
    pub prompt_path: Option<PathBuf>,
    /// Voice.
    pub voice: Option<String>,
    /// Greeting instructions (`Some(None)`: no greeting).
    pub greeting: Option<Option<String>>,
    /// Back end name (`realtime`, `echo`, `live`).
    pub backend: Option<String>,
    /// What the caller speaking over the goodbye does (`agent.goodbye_barge_in`).
    pub goodbye_barge_in: Option<GoodbyeBargeIn>,
    /// Tools offered (webhook tools by name, `end_call`, `transfer_call`); `None`: all.
    pub tools: Option<Vec<String>>,
    /// MCP servers by label; `None`: all.
    pub mcp_servers: Option<Vec<String>>,
    /// Transfer destinations by name; `None`: all.
    pub transfer_destinations: Option<Vec<String>>,
    /// Outbound calls: overrides of `outbound.voicemail_message`.
    pub voicemail_message: Option<String>,
    /// … of `outbound.voicemail_instructions`.
    pub voicemail_instructions: Option<String>,
    /// … of `outbound.on_machine`.
    pub on_machine: Option<String>,
    /// … of `outbound.on_fax`.
    pub on_fax: Option<String>,
    /// … of `outbound.on_unknown`.
    pub on_unknown: Option<String>,
}

/// Everything the agent can do, validated.
#[derive(Debug, Clone)]
pub struct ToolsConfig {
    /// `[[tools]]`.
    pub webhooks: Vec<WebhookTool>,
    /// Key of the `X-Phone-Agent-Signature` HMAC; `None`: requests are not signed.
    pub signing_secret: Option<Secret>,
    /// Largest webhook response accepted.
    pub max_response_bytes: usize,
    /// `[call_control]`.
    pub call_control: CallControlConfig,
    /// `[[mcp_servers]]`.
    pub mcp_servers: Vec<McpServer>,
    /// `[profiles.NAME]`, by name.
    pub profiles: Vec<Profile>,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        message: message.into(),
    }
}

/// Replaces every `${NAME}` in `value` with the variable's value.
fn expand(value: &str, key: &str, env: &HashMap<String, String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(err(key, "unterminated ${…} reference"));
        };
        let name = &after[..end];
        match env.get(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push_str(v),
            None => {
                return Err(err(
                    key,
                    format!("environment variable {name} (referenced as ${{{name}}}) is not set"),
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A function name the Realtime API accepts.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn http_url(url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || url.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no valid host"));
    }
    reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
    Ok(())
}

/// `+` and 8 to 15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

fn is_sip_uri(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("sip:").or_else(|| s.strip_prefix("sips:")) else {
        return false;
    };
    let host = rest.rsplit('@').next().unwrap_or_default();
    !rest.is_empty()
        && !host.is_empty()
        && !s.contains(char::is_whitespace)
        && !s.contains(['<', '>', '"'])
}

/// Validates the sections. `env` is the full source map (for `${VAR}` references).
pub(crate) fn validate(
    raw: RawSections,
    env: &HashMap<String, String>,
) -> Result<ToolsConfig, ConfigError> {
    let RawSections {
        tools,
        webhooks,
        call_control,
        mcp_servers,
        profiles,
    } = raw;

    // --- [webhooks]
    if webhooks.timeout_ms == 0 || webhooks.timeout_ms > 15_000 {
        return Err(err(
            "webhooks.timeout_ms",
            "must be between 1 and 15000 (the call waits for the tool)",
        ));
    }
    if webhooks.max_response_bytes < 64 || webhooks.max_response_bytes > 1024 * 1024 {
        return Err(err(
            "webhooks.max_response_bytes",
            "must be between 64 and 1048576",
        ));
    }
    let signing_secret = match webhooks.signing_secret.trim() {
        "" => None,
        s => Some(Secret::new(expand(s, "webhooks.signing_secret", env)?)),
    };

    // --- [[tools]]
    let mut names: HashSet<String> = HashSet::new();
    let mut webhook_tools = Vec::with_capacity(tools.len());
    for (i, t) in tools.into_iter().enumerate() {
        let key = |field: &str| format!("tools[{i}].{field}");
        let name = t.name.trim().to_owned();
        if !valid_name(&name) {
            return Err(err(
                key("name"),
                format!("{name:?} must be 1-64 letters, digits, _ or -"),
            ));
        }
        if name == END_CALL || name == TRANSFER_CALL {
            return Err(err(
                key("name"),
                format!("{name:?} is a built-in tool; enable it in [call_control]"),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(err(
                key("name"),
                format!("duplicate tool name {name:?}: every tool needs its own name"),
            ));
        }
        let description = t.description.trim().to_owned();
        if description.is_empty() {
            return Err(err(
                key("description"),
                "must not be empty (the model reads it to decide when to call the tool)",
            ));
        }
        let parameters = match t.parameters {
            Value::Null => serde_json::json!({"type": "object", "properties": {}}),
            Value::String(text) => serde_json::from_str(&text)
                .map_err(|e| err(key("parameters"), format!("is not valid JSON: {e}")))?,
            other => other,
        };
        super::schema::check_parameters(&parameters).map_err(|m| {
            err(
                key("parameters"),
                format!("is not a usable JSON Schema: {m}"),
            )
        })?;
        let url = t.url.trim().to_owned();
        http_url(&url).map_err(|m| err(key("url"), m))?;
        let method = match t.method.trim().to_ascii_uppercase().as_str() {
            "" | "POST" => http::Method::POST,
            "PUT" => http::Method::PUT,
            "PATCH" => http::Method::PATCH,
            other => {
                return Err(err(
                    key("method"),
                    format!(
                        "{other:?} is not one of POST, PUT, PATCH (the arguments are sent as a JSON body)"
                    ),
                ));
            }
        };
        let mut headers = Vec::with_capacity(t.headers.len());
        for (h, v) in &t.headers {
            let hkey = format!("tools[{i}].headers.{h}");
            let header = http::HeaderName::try_from(h.as_str())
                .map_err(|_| err(&hkey, format!("{h:?} is not a valid header name")))?;
            let value = expand(v, &hkey, env)?;
            http::HeaderValue::try_from(value.as_str())
                .map_err(|_| err(&hkey, "is not a valid header value"))?;
            headers.push((header, Secret::new(value)));
        }
        let timeout_ms = t.timeout_ms.unwrap_or(webhooks.timeout_ms);
        if timeout_ms == 0 || timeout_ms > 15_000 {
            return Err(err(key("timeout_ms"), "must be between 1 and 15000"));
        }
        let filler = Some(t.filler.trim().to_owned()).filter(|f| !f.is_empty());
        let filler_after =
            Duration::from_millis(t.filler_after_ms.unwrap_or(webhooks.filler_after_ms));
        webhook_tools.push(WebhookTool {
            name,
            description,
            parameters,
            url,
            method,
            headers,
            timeout: Duration::from_millis(timeout_ms),
            filler,
            filler_after,
        });
    }

    // --- [call_control]
    let mut destinations = Vec::with_capacity(call_control.destinations.len());
    let mut dest_names = HashSet::new();
    for (i, d) in call_control.destinations.into_iter().enumerate() {
        let key = |field: &str| format!("call_control.destinations[{i}].{field}");
        let name = d.name.trim().to_owned();
        if name.is_empty() {
            return Err(err(key("name"), "must not be empty"));
        }
        if !dest_names.insert(name.clone()) {
            return Err(err(key("name"), format!("duplicate destination {name:?}")));
        }
        let target = match (d.number.trim(), d.sip.trim()) {
            (n, "") if is_e164(n) => DialTarget::Number(n.to_owned()),
            ("", s) if is_sip_uri(s) => DialTarget::Sip(s.to_owned()),
            ("", "") => return Err(err(key("number"), "set number (E.164) or sip (a SIP URI)")),
            (n, "") => {
                return Err(err(
                    key("number"),
                    format!("{n:?} is not an E.164 number (+ and 8-15 digits, e.g. +15551234567)"),
                ));
            }
            ("", s) => {
                return Err(err(
                    key("sip"),
                    format!("{s:?} is not a SIP URI (sip:user@host)"),
                ));
            }
            _ => return Err(err(key("number"), "set number or sip, not both")),
        };
        destinations.push(TransferDestination {
            name,
            target,
            description: d.description.trim().to_owned(),
        });
    }
    let transfer_caller_id =
        Some(call_control.transfer_caller_id.trim().to_owned()).filter(|c| !c.is_empty());
    if let Some(c) = &transfer_caller_id
        && !is_e164(c)
    {
        return Err(err(
            "call_control.transfer_caller_id",
            format!("{c:?} is not an E.164 number"),
        ));
    }
    if !(5..=600).contains(&call_control.transfer_timeout_secs) {
        return Err(err(
            "call_control.transfer_timeout_secs",
            "must be between 5 and 600",
        ));
    }
    let transfer_line = call_control.transfer_line.trim().to_owned();
    if transfer_line.is_empty() {
        return Err(err("call_control.transfer_line", "must not be empty"));
    }
    let call_control = CallControlConfig {
        end_call: call_control.end_call,
        transfer_line,
        transfer_caller_id,
        transfer_timeout_secs: call_control.transfer_timeout_secs,
        whisper: call_control.whisper,
        destinations,
    };

    // --- [[mcp_servers]]
    let mut labels = HashSet::new();
    let mut mcp = Vec::with_capacity(mcp_servers.len());
    for (i, m) in mcp_servers.into_iter().enumerate() {
        let key = |field: &str| format!("mcp_servers[{i}].{field}");
        let label = m.label.trim().to_owned();
        if !valid_name(&label) {
            return Err(err(
                key("label"),
                format!("{label:?} must be 1-64 letters, digits, _ or -"),
            ));
        }
        if !labels.insert(label.clone()) {
            return Err(err(
                key("label"),
                format!("duplicate MCP server label {label:?}"),
            ));
        }
        let url = m.url.trim().to_owned();
        http_url(&url).map_err(|msg| err(key("url"), msg))?;
        let authorization = match m.authorization.trim() {
            "" => None,
            a => Some(Secret::new(expand(a, &key("authorization"), env)?)),
        };
        let mut headers = BTreeMap::new();
        for (h, v) in &m.headers {
            let hkey = format!("mcp_servers[{i}].headers.{h}");
            headers.insert(h.clone(), Secret::new(expand(v, &hkey, env)?));
        }
        let require_approval = match m.require_approval.trim() {
            "" | "never" => McpApproval::Never,
            "always" => McpApproval::Always,
            other => {
                return Err(err(
                    key("require_approval"),
                    format!("{other:?} is not one of never, always"),
                ));
            }
        };
        mcp.push(McpServer {
            label,
            url,
            description: Some(m.description.trim().to_owned()).filter(|d| !d.is_empty()),
            authorization,
            headers,
            allowed_tools: m.allowed_tools,
            require_approval,
            approve_tools: m.approve_tools,
        });
    }

    // --- [profiles.NAME]
    let all_tool_names: HashSet<&str> = webhook_tools
        .iter()
        .map(|t| t.name.as_str())
        .chain([END_CALL, TRANSFER_CALL])
        .collect();
    let mut numbers_seen: HashMap<String, String> = HashMap::new();
    let mut out_profiles = Vec::with_capacity(profiles.len());
    for (name, p) in profiles {
        let key = |field: &str| format!("profiles.{name}.{field}");
        if !valid_name(&name) {
            return Err(err(
                format!("profiles.{name}"),
                "profile names are letters, digits, _ or -",
            ));
        }
        for n in &p.numbers {
            if !is_e164(n) {
                return Err(err(key("numbers"), format!("{n:?} is not an E.164 number")));
            }
            if let Some(other) = numbers_seen.insert(n.clone(), name.clone()) {
                return Err(err(
                    key("numbers"),
                    format!("{n} is also a number of profile {other:?}"),
                ));
            }
        }
        if let Some(tools) = &p.tools {
            for t in tools {
                if !all_tool_names.contains(t.as_str()) {
                    return Err(err(key("tools"), format!("{t:?} is not a configured tool")));
                }
            }
        }
        if let Some(servers) = &p.mcp_servers {
            for s in servers {
                if !mcp.iter().any(|m| &m.label == s) {
                    return Err(err(
                        key("mcp_servers"),
                        format!("{s:?} is not a configured MCP server label"),
                    ));
                }
            }
        }
        if let Some(dests) = &p.transfer_destinations {
            for d in dests {
                if !call_control.destinations.iter().any(|x| &x.name == d) {
                    return Err(err(
                        key("transfer_destinations"),
                        format!("{d:?} is not a configured destination"),
                    ));
                }
            }
        }
        if let Some(b) = &p.backend
            && !["realtime", "echo", "live"].contains(&b.trim())
        {
            return Err(err(
                key("backend"),
                format!("{b:?} is not one of realtime, echo, live"),
            ));
        }
        let goodbye_barge_in = p
            .goodbye_barge_in
            .as_deref()
            .map(parse_goodbye_barge_in)
            .transpose()
            .map_err(|message| err(key("goodbye_barge_in"), message))?;
        let prompt_path = p.prompt_path.map(|s| PathBuf::from(s.trim()));
        if let Some(path) = &prompt_path
            && !path.is_file()
        {
            return Err(err(
                key("prompt_path"),
                format!("{} is not a readable file", path.display()),
            ));
        }
        if let Some(v) = &p.voice
            && v.trim().is_empty()
        {
            return Err(err(key("voice"), "must not be empty"));
        }
        out_profiles.push(Profile {
            numbers: p.numbers,
            prompt_path,
            voice: p.voice.map(|v| v.trim().to_owned()),
            greeting: p.greeting.map(|g| {
                Some(g.trim().to_owned())
                    .filter(|g| !g.is_empty() && !g.eq_ignore_ascii_case("off"))
            }),
            backend: p.backend.map(|b| b.trim().to_owned()),
            goodbye_barge_in,
            tools: p.tools,
            mcp_servers: p.mcp_servers,
            transfer_destinations: p.transfer_destinations,
            voicemail_message: p.voicemail_message,
            voicemail_instructions: p.voicemail_instructions,
            on_machine: p.on_machine,
            on_fax: p.on_fax,
            on_unknown: p.on_unknown,
            name,
        });
    }

    Ok(ToolsConfig {
        webhooks: webhook_tools,
        signing_secret,
        max_response_bytes: webhooks.max_response_bytes as usize,
        call_control,
        mcp_servers: mcp,
        profiles: out_profiles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_and_sip() {
        assert!(is_e164("+15551234567"));
        assert!(!is_e164("15551234567"));
        assert!(!is_e164("+1555"));
        assert!(!is_e164("+0155512345"));
        assert!(is_sip_uri("sip:desk@pbx.example.com"));
        assert!(!is_sip_uri("desk@pbx"));
        assert!(!is_sip_uri("sip:"));
    }

    #[test]
    fn env_references() {
        let env = HashMap::from([("TOKEN".to_owned(), "abc".to_owned())]);
        assert_eq!(expand("Bearer ${TOKEN}", "k", &env).unwrap(), "Bearer abc");
        let e = expand("${MISSING}", "tools[0].headers.x", &env).unwrap_err();
        assert!(e.to_string().contains("tools[0].headers.x"), "{e}");
        assert!(e.to_string().contains("MISSING"), "{e}");
    }
}
