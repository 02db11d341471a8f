//! HTTP webhook tools (`[[tools]]`): the model's arguments, checked against the tool's schema,
//! are sent with the call's context to the configured URL; the answer becomes the
//! `function_call_output`.
//!
//! Request (`POST` unless configured otherwise), `Content-Type: application/json`:
//!
//! ```json
//! {"tool":"opening_hours","call_id":"call_…","arguments":{"day":"saturday"},
//!  "call":{"call_sid":"CA…","from":"+1…","to":"+1…","profile":"restaurant","parameters":{…}}}
//! ```
//!
//! Signature (when `webhooks.signing_secret` is set): header
//! `X-Phone-Agent-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
//! A receiver recomputes the HMAC over the raw body and rejects old timestamps (replay):
//!
//! ```python
//! import hashlib, hmac, time
//!
//! def verify(secret: bytes, body: bytes, header: str, max_age=300) -> bool:
//!     fields = dict(part.split("=", 1) for part in header.split(","))
//!     t, sig = fields.get("t", ""), fields.get("v1", "")
//!     if not t.isdigit() or abs(time.time() - int(t)) > max_age:
//!         return False
//!     expected = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
//!     return hmac.compare_digest(expected, sig)
//! ```
//!
//! Answer: a 2xx with a JSON body is passed to the model as is; any other body as
//! `{"result": "<text>"}`; an empty body as `{"result": ""}`. Arguments that fail the schema,
//! a timeout, a non-2xx status, invalid JSON (with a JSON content type) and a body over
//! `webhooks.max_response_bytes` each become a tool error object the model can speak about;
//! the call goes on. A slow tool makes the agent say the tool's `filler` line once
//! `filler_after_ms` has passed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bridge_core::tools::{ToolInvocation, ToolOutput};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::config::WebhookTool;
use super::{CallContext, ToolServices};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-phone-agent-signature";

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>." + body)>`.
///
/// ```
/// use phone_agent_server::tools::webhook::signature;
/// assert_eq!(
///     signature(b"secret", 1700000000, br#"{"a":1}"#),
///     "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
/// );
/// ```
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = format!("t={timestamp},v1=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Runs one webhook tool call.
pub(crate) async fn call(
    tool: &WebhookTool,
    services: &ToolServices,
    ctx: &CallContext,
    invocation: &ToolInvocation,
) -> ToolOutput {
    let name = &tool.name;
    let arguments: Value = match serde_json::from_str(&invocation.arguments) {
        Ok(v) => v,
        Err(e) => {
            return fail(
                name,
                format!("the arguments are not valid JSON ({e}); call it again with valid JSON"),
            );
        }
    };
    if let Err(e) = super::schema::validate(&tool.parameters, &arguments) {
        tracing::info!(tool = %name, error = %e, "tool arguments refused by the schema");
        return fail(
            name,
            format!(
                "the arguments do not match the tool's parameters: {e}; the tool was not called"
            ),
        );
    }
    let body = json!({
        "tool": name,
        "call_id": invocation.call_id,
        "arguments": arguments,
        "call": ctx.to_json(),
    })
    .to_string();
    let mut request = services
        .http
        .request(tool.method.clone(), &tool.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::ACCEPT,
            "application/json, text/plain;q=0.9, */*;q=0.5",
        )
        .timeout(tool.timeout);
    for (header, value) in &tool.headers {
        let mut value = match http::HeaderValue::from_str(value.expose()) {
            Ok(v) => v,
            Err(_) => continue, // checked at startup
        };
        value.set_sensitive(true);
        request = request.header(header.clone(), value);
    }
    if let Some(secret) = &services.signing_secret {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        request = request.header(
            SIGNATURE_HEADER,
            signature(secret.expose().as_bytes(), now, body.as_bytes()),
        );
    }
    let started = std::time::Instant::now();
    let exchange = exchange(
        request.body(body),
        services.max_response_bytes,
        tool.timeout,
    );
    tokio::pin!(exchange);
    let result = match &tool.filler {
        Some(filler) => {
            tokio::select! {
                result = &mut exchange => result,
                () = tokio::time::sleep(tool.filler_after) => {
                    if ctx.say(filler) {
                        tracing::debug!(tool = %name, "tool is slow: the agent says the filler line");
                    }
                    exchange.await
                }
            }
        }
        None => exchange.await,
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(output) => {
            tracing::info!(tool = %name, elapsed_ms, bytes = output.len(), "webhook tool answered");
            ToolOutput {
                output,
                action: None,
            }
        }
        Err(e) => {
            tracing::warn!(tool = %name, elapsed_ms, error = %e, "webhook tool failed");
            fail(name, e)
        }
    }
}

fn fail(name: &str, reason: impl std::fmt::Display) -> ToolOutput {
    ToolOutput::error(format!("{name} failed: {reason}"))
}

/// Sends the request and turns the answer into output text.
async fn exchange(
    request: reqwest::RequestBuilder,
    max_bytes: usize,
    timeout: Duration,
) -> Result<String, String> {
    let timed_out = || {
        format!(
            "the service did not answer within {} ms",
            timeout.as_millis()
        )
    };
    let mut response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            timed_out()
        } else {
            format!(
                "the service could not be reached ({})",
                crate::twilio_rest::describe(&e)
            )
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the service answered HTTP {}", status.as_u16()));
    }
    let json_body = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json") || ct.contains("+json")
        });
    if response
        .content_length()
        .is_some_and(|n| n > max_bytes as u64)
    {
        return Err(format!("the answer is larger than {max_bytes} bytes"));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max_bytes {
                    return Err(format!("the answer is larger than {max_bytes} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => return Err(timed_out()),
            Err(e) => {
                return Err(format!(
                    "the answer could not be read ({})",
                    crate::twilio_rest::describe(&e)
                ));
            }
        }
    }
    if json_body {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("the service answered invalid JSON ({e})"))?;
        return Ok(value.to_string());
    }
    let text = String::from_utf8(body).map_err(|_| "the answer is not UTF-8 text".to_owned())?;
    Ok(json!({ "result": text.trim() }).to_string())
}
