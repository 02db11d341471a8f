//! The strict `session.start` check (PROTOCOLS-LIVE.md §4): unknown fields anywhere in the
//! session object are rejected with `unknown_parameter`, like the service; `null` is accepted
//! only for `delegation` (absent and `null` both mean client delegation); types and the
//! required fields are checked.

use serde_json::{Map, Value};

/// Why a `session.start` was refused: the `error` object's code, message and param.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) param: String,
}

fn reject(code: &'static str, param: &str, message: String) -> Rejection {
    Rejection {
        code,
        message,
        param: param.to_owned(),
    }
}

/// The delegation mode a session runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Client,
    Responses,
    Decisions,
}

/// What the mock needs from an accepted `session.start`.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub(crate) model: String,
    /// Bytes of the session's audio format per millisecond (8 for G.711).
    pub(crate) bytes_per_ms: u64,
    /// True for μ-law (the VAD decodes it; other formats are counted, never decoded).
    pub(crate) mulaw: bool,
    pub(crate) mode: Mode,
    /// The resolved `session` for `session.started` (without `id`/`expires_at`/`status`).
    pub(crate) resolved: Map<String, Value>,
}

fn object<'a>(v: &'a Value, param: &str) -> Result<&'a Map<String, Value>, Rejection> {
    v.as_object().ok_or_else(|| {
        reject(
            "invalid_type",
            param,
            format!(
                "Invalid type for '{param}': expected an object, but got {}.",
                kind(v)
            ),
        )
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn only(obj: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), Rejection> {
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            let param = format!("{path}.{key}");
            return Err(reject(
                "unknown_parameter",
                &param,
                format!("Unknown parameter: '{param}'."),
            ));
        }
    }
    Ok(())
}

fn string<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, Rejection> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => {
            let param = format!("{path}.{key}");
            Err(reject(
                "invalid_type",
                &param,
                format!(
                    "Invalid type for '{param}': expected a string, but got {}.",
                    kind(other)
                ),
            ))
        }
    }
}

fn typed(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    ok: fn(&Value) -> bool,
    want: &str,
) -> Result<(), Rejection> {
    match obj.get(key) {
        Some(v) if !ok(v) => {
            let param = format!("{path}.{key}");
            Err(reject(
                "invalid_type",
                &param,
                format!(
                    "Invalid type for '{param}': expected {want}, but got {}.",
                    kind(v)
                ),
            ))
        }
        _ => Ok(()),
    }
}

fn required<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, Rejection> {
    string(obj, key, path)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            let param = format!("{path}.{key}");
            reject(
                "missing_required_parameter",
                &param,
                format!("Missing required parameter: '{param}'."),
            )
        })
}

/// Checks a whole `session.start` event (including its top-level keys).
#[cfg(test)]
pub(crate) fn session_start(event: &Value) -> Result<Accepted, Rejection> {
    session_start_with(event, false)
}

/// Checks a whole `session.start` event, accepting MCP tools in a responses delegation when
/// `mcp_tools`.
pub(crate) fn session_start_with(event: &Value, mcp_tools: bool) -> Result<Accepted, Rejection> {
    let top = object(event, "event")?;
    only(top, &["type", "event_id", "session"], "event")?;
    string(top, "event_id", "event")?;
    let Some(session) = top.get("session") else {
        return Err(reject(
            "missing_required_parameter",
            "session",
            "Missing required parameter: 'session'.".into(),
        ));
    };
    let s = object(session, "session")?;
    if s.contains_key("client") {
        return Err(reject(
            "unknown_parameter",
            "session.client",
            "Unknown parameter: 'session.client'. Client data-channel settings apply to WebRTC sessions only.".into(),
        ));
    }
    only(
        s,
        &[
            "model",
            "instructions",
            "input",
            "audio",
            "delegation",
            "store",
            "safety_identifier",
            "triggers",
        ],
        "session",
    )?;
    let model = required(s, "model", "session")?.to_owned();
    string(s, "instructions", "session")?;
    string(s, "safety_identifier", "session")?;
    typed(s, "store", "session", Value::is_boolean, "a boolean")?;
    typed(s, "triggers", "session", Value::is_array, "an array")?;
    if let Some(input) = s.get("input") {
        let Value::Array(items) = input else {
            return Err(reject(
                "invalid_type",
                "session.input",
                "Invalid type for 'session.input': expected an array.".into(),
            ));
        };
        if items.len() > 128 {
            return Err(reject(
                "array_above_max_length",
                "session.input",
                "Invalid 'session.input': array too long (max 128).".into(),
            ));
        }
        for (i, item) in items.iter().enumerate() {
            let path = format!("session.input[{i}]");
            let o = object(item, &path)?;
            only(o, &["type", "id", "status", "role", "content"], &path)?;
            let role = required(o, "role", &path)?;
            if !["developer", "user", "assistant"].contains(&role) {
                return Err(reject(
                    "invalid_value",
                    &format!("{path}.role"),
                    format!("Invalid value: '{role}'."),
                ));
            }
            let parts = o
                .get("content")
                .and_then(Value::as_array)
                .filter(|p| p.len() == 1);
            let Some(parts) = parts else {
                return Err(reject(
                    "invalid_value",
                    &format!("{path}.content"),
                    "Each input message must have exactly one content part.".into(),
                ));
            };
            let part = object(&parts[0], &format!("{path}.content[0]"))?;
            only(part, &["type", "text"], &format!("{path}.content[0]"))?;
            required(part, "text", &format!("{path}.content[0]"))?;
        }
    }

    let mut bytes_per_ms = 48;
    let mut mulaw = false;
    let mut format = serde_json::json!({"type": "audio/pcm", "rate": 24000});
    let mut voice = Value::String("marin".into());
    if let Some(audio) = s.get("audio") {
        let a = object(audio, "session.audio")?;
        only(a, &["format", "output"], "session.audio")?;
        if let Some(f) = a.get("format") {
            let fo = object(f, "session.audio.format")?;
            only(fo, &["type", "rate"], "session.audio.format")?;
            let ty = required(fo, "type", "session.audio.format")?;
            let rate = fo.get("rate");
            let rate_n = rate.and_then(Value::as_u64);
            if rate.is_some() && rate_n.is_none() {
                return Err(reject(
                    "invalid_type",
                    "session.audio.format.rate",
                    "Invalid type for 'session.audio.format.rate': expected an integer.".into(),
                ));
            }
            (bytes_per_ms, mulaw) = match (ty, rate_n) {
                ("audio/pcm", None | Some(24000)) => (48, false),
                ("audio/pcm", Some(16000)) => (32, false),
                ("audio/pcmu", Some(8000)) => (8, true),
                ("audio/pcma", Some(8000)) => (8, false),
                ("audio/pcmu" | "audio/pcma", None) => {
                    return Err(reject(
                        "missing_required_parameter",
                        "session.audio.format.rate",
                        "Missing required parameter: 'session.audio.format.rate'.".into(),
                    ));
                }
                ("audio/pcm" | "audio/pcmu" | "audio/pcma", Some(r)) => {
                    return Err(reject(
                        "invalid_value",
                        "session.audio.format.rate",
                        format!("Invalid value: {r}. Unsupported rate for {ty}."),
                    ));
                }
                _ => {
                    return Err(reject(
                        "invalid_value",
                        "session.audio.format.type",
                        format!(
                            "Invalid value: '{ty}'. Supported values are: 'audio/pcm', 'audio/pcmu' and 'audio/pcma'."
                        ),
                    ));
                }
            };
            format = f.clone();
        }
        if let Some(o) = a.get("output") {
            let oo = object(o, "session.audio.output")?;
            only(oo, &["voice"], "session.audio.output")?;
            match oo.get("voice") {
                None => {}
                Some(Value::String(v)) if !v.is_empty() => voice = Value::String(v.clone()),
                Some(Value::Object(c)) => {
                    only(c, &["id"], "session.audio.output.voice")?;
                    required(c, "id", "session.audio.output.voice")?;
                    voice = Value::Object(c.clone());
                }
                Some(other) => {
                    return Err(reject(
                        "invalid_type",
                        "session.audio.output.voice",
                        format!(
                            "Invalid type for 'session.audio.output.voice': got {}.",
                            kind(other)
                        ),
                    ));
                }
            }
        }
    }

    let (mode, delegation) = match s.get("delegation") {
        None | Some(Value::Null) => (Mode::Client, serde_json::json!({"type": "client"})),
        Some(d) => delegation(d, mcp_tools)?,
    };

    let mut resolved = Map::new();
    resolved.insert("model".into(), Value::String(model.clone()));
    resolved.insert(
        "instructions".into(),
        s.get("instructions")
            .cloned()
            .unwrap_or(Value::String(String::new())),
    );
    resolved.insert(
        "audio".into(),
        serde_json::json!({"format": format, "output": {"voice": voice}}),
    );
    resolved.insert("delegation".into(), delegation);
    resolved.insert(
        "input".into(),
        s.get("input").cloned().unwrap_or(Value::Array(vec![])),
    );
    resolved.insert(
        "store".into(),
        s.get("store").cloned().unwrap_or(Value::Bool(false)),
    );
    if let Some(id) = s.get("safety_identifier") {
        resolved.insert("safety_identifier".into(), id.clone());
    }
    Ok(Accepted {
        model,
        bytes_per_ms,
        mulaw,
        mode,
        resolved,
    })
}

fn delegation(d: &Value, mcp_tools: bool) -> Result<(Mode, Value), Rejection> {
    let o = object(d, "session.delegation")?;
    let ty = required(o, "type", "session.delegation")?;
    match ty {
        "client" => {
            only(o, &["type"], "session.delegation")?;
            Ok((Mode::Client, d.clone()))
        }
        "decisions" => {
            only(o, &["type", "decisions"], "session.delegation")?;
            Ok((Mode::Decisions, d.clone()))
        }
        "responses" => {
            only(
                o,
                &["type", "responses", "acknowledgement_delay_ms"],
                "session.delegation",
            )?;
            typed(
                o,
                "acknowledgement_delay_ms",
                "session.delegation",
                Value::is_u64,
                "an integer",
            )?;
            let Some(r) = o.get("responses") else {
                return Err(reject(
                    "missing_required_parameter",
                    "session.delegation.responses",
                    "Missing required parameter: 'session.delegation.responses'.".into(),
                ));
            };
            let path = "session.delegation.responses";
            let r = object(r, path)?;
            only(
                r,
                &[
                    "model",
                    "instructions",
                    "tools",
                    "tool_choice",
                    "parallel_tool_calls",
                    "max_output_tokens",
                    "reasoning",
                    "text",
                    "service_tier",
                ],
                path,
            )?;
            required(r, "model", path)?;
            string(r, "instructions", path)?;
            string(r, "service_tier", path)?;
            typed(
                r,
                "parallel_tool_calls",
                path,
                Value::is_boolean,
                "a boolean",
            )?;
            if r.get("max_output_tokens")
                .is_some_and(|m| m.as_u64().is_none_or(|m| m < 16))
            {
                return Err(reject(
                    "integer_below_min_value",
                    &format!("{path}.max_output_tokens"),
                    "Invalid 'max_output_tokens': integer below minimum value (16).".into(),
                ));
            }
            if let Some(reasoning) = r.get("reasoning") {
                only(
                    object(reasoning, &format!("{path}.reasoning"))?,
                    &["effort", "summary"],
                    &format!("{path}.reasoning"),
                )?;
            }
            if let Some(text) = r.get("text") {
                only(
                    object(text, &format!("{path}.text"))?,
                    &["verbosity"],
                    &format!("{path}.text"),
                )?;
            }
            if let Some(tools) = r.get("tools") {
                let Value::Array(tools) = tools else {
                    return Err(reject(
                        "invalid_type",
                        &format!("{path}.tools"),
                        "Invalid type for 'tools': expected an array.".into(),
                    ));
                };
                for (i, t) in tools.iter().enumerate() {
                    let tp = format!("{path}.tools[{i}]");
                    let to = object(t, &tp)?;
                    match required(to, "type", &tp)? {
                        "function" => {
                            only(
                                to,
                                &["type", "name", "description", "parameters", "strict"],
                                &tp,
                            )?;
                            required(to, "name", &tp)?;
                            string(to, "description", &tp)?;
                            typed(to, "parameters", &tp, Value::is_object, "an object")?;
                            typed(to, "strict", &tp, Value::is_boolean, "a boolean")?;
                        }
                        "web_search" => {}
                        "mcp" if mcp_tools => mcp_tool(to, &tp)?,
                        other => {
                            return Err(reject(
                                "invalid_value",
                                &format!("{tp}.type"),
                                format!(
                                    "Invalid value: '{other}'. Supported tools are 'function' and 'web_search'."
                                ),
                            ));
                        }
                    }
                }
            }
            Ok((Mode::Responses, d.clone()))
        }
        other => Err(reject(
            "invalid_value",
            "session.delegation.type",
            format!(
                "Invalid value: '{other}'. Supported values are: 'client', 'responses' and 'decisions'."
            ),
        )),
    }
}

/// An MCP tool as the Responses API takes it (PROTOCOLS.md §6.12b): `server_label` and
/// `server_url` required; `server_description`, `authorization`, `headers` (strings),
/// `allowed_tools` (names, or `{tool_names, read_only}`), `require_approval` (`"never"`,
/// `"always"` or `{never|always: {tool_names}}`).
fn mcp_tool(to: &Map<String, Value>, tp: &str) -> Result<(), Rejection> {
    only(
        to,
        &[
            "type",
            "server_label",
            "server_url",
            "server_description",
            "authorization",
            "headers",
            "allowed_tools",
            "require_approval",
        ],
        tp,
    )?;
    required(to, "server_label", tp)?;
    required(to, "server_url", tp)?;
    string(to, "server_description", tp)?;
    string(to, "authorization", tp)?;
    if let Some(headers) = to.get("headers") {
        let headers = object(headers, &format!("{tp}.headers"))?;
        for key in headers.keys() {
            string(headers, key, &format!("{tp}.headers"))?;
        }
    }
    match to.get("allowed_tools") {
        None | Some(Value::Object(_)) => {}
        Some(Value::Array(names)) if names.iter().all(Value::is_string) => {}
        Some(_) => {
            return Err(reject(
                "invalid_type",
                &format!("{tp}.allowed_tools"),
                "Invalid type for 'allowed_tools': expected an array of strings or an object."
                    .into(),
            ));
        }
    }
    match to.get("require_approval") {
        None | Some(Value::Object(_)) => {}
        Some(Value::String(v)) if v == "never" || v == "always" => {}
        Some(other) => {
            return Err(reject(
                "invalid_value",
                &format!("{tp}.require_approval"),
                format!("Invalid value: {other}. Supported values are: 'never' and 'always'."),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn start(session: Value) -> Result<Accepted, Rejection> {
        session_start(&json!({"type": "session.start", "session": session}))
    }

    #[test]
    fn a_telephony_start_is_accepted() {
        let ok = start(json!({
            "model": "gpt-live-1",
            "instructions": "Be brief.",
            "audio": {"format": {"type": "audio/pcmu", "rate": 8000}, "output": {"voice": "marin"}},
            "delegation": {"type": "responses", "responses": {"model": "gpt-5.6-luna",
                "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]}}
        }))
        .unwrap();
        assert_eq!(ok.bytes_per_ms, 8);
        assert!(ok.mulaw);
        assert_eq!(ok.mode, Mode::Responses);
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_path() {
        let e = start(json!({"model": "gpt-live-1", "turn_detection": null})).unwrap_err();
        assert_eq!(
            (e.code, e.param.as_str()),
            ("unknown_parameter", "session.turn_detection")
        );
        let e = start(json!({"model": "gpt-live-1", "audio": {"format": {"type": "audio/pcmu", "rate": 8000, "x": 1}}}))
            .unwrap_err();
        assert_eq!(e.param, "session.audio.format.x");
        let e =
            session_start(&json!({"type": "session.start", "session": {"model": "m"}, "extra": 1}))
                .unwrap_err();
        assert_eq!(e.param, "event.extra");
    }

    #[test]
    fn g711_needs_an_explicit_rate_and_model_is_required() {
        let e = start(json!({"model": "gpt-live-1", "audio": {"format": {"type": "audio/pcmu"}}}))
            .unwrap_err();
        assert_eq!(e.code, "missing_required_parameter");
        let e = start(json!({"instructions": "x"})).unwrap_err();
        assert_eq!(e.param, "session.model");
        let e = start(json!({"model": "gpt-live-1", "instructions": null})).unwrap_err();
        assert_eq!(e.code, "invalid_type");
    }

    #[test]
    fn null_delegation_means_client_mode() {
        assert_eq!(
            start(json!({"model": "gpt-live-1", "delegation": null}))
                .unwrap()
                .mode,
            Mode::Client
        );
        assert_eq!(
            start(json!({"model": "gpt-live-1"})).unwrap().mode,
            Mode::Client
        );
        let e =
            start(json!({"model": "gpt-live-1", "delegation": {"type": "responses"}})).unwrap_err();
        assert_eq!(e.param, "session.delegation.responses");
    }
}
