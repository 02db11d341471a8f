//! Outbound calls: `POST /api/calls` places a call through Twilio's REST API
//! (`Calls.create`), whose TwiML comes from our signed `/voice/outbound` and streams to this
//! server like any inbound call, with status callbacks to `/twilio/status` and asynchronous
//! answering machine detection reporting to `/twilio/amd` ([`amd`]).
//!
//! ```text
//! POST /api/calls            Authorization: Bearer <admin token>
//! {"to": "+15551234567", "from": "+15005550006", "profile": "sales",
//!  "variables": {"name": "Ada"}}
//! → 201 {"call_sid": "CA…", "status": "queued", "to": …, "from": …, "profile": …}
//! ```
//!
//! The `Calls.create` form (PROTOCOLS.md §5.3, §5.7):
//!
//! ```text
//! To, From,
//! Url=PUBLIC_URL/voice/outbound?profile=NAME&var.KEY=VALUE…, Method=POST,
//! StatusCallback=PUBLIC_URL/twilio/status, StatusCallbackMethod=POST,
//! StatusCallbackEvent=initiated|ringing|answered|completed (repeated),
//! Timeout=outbound.ring_timeout_secs,
//! MachineDetection=DetectMessageEnd, AsyncAmd=true,
//! AsyncAmdStatusCallback=PUBLIC_URL/twilio/amd?profile=NAME, AsyncAmdStatusCallbackMethod=POST
//! ```
//!
//! The profile and the prompt variables ride in the URLs Twilio requests (and signs), so the
//! instance that answers `/voice/outbound` or `/twilio/amd` needs no shared state. Twilio
//! requests `/voice/outbound` when the callee answers; it answers TwiML like `/voice`, whose
//! stream carries `direction=outbound`, the profile and each variable as a `<Parameter>` (the
//! prompt's `{{KEY}}`).
//!
//! Refusals, before anything is sent to Twilio: no admin token configured → 404 (like every
//! `/api` route); wrong token → 401; malformed JSON, a number that is not E.164, an unknown
//! profile, bad variable names → 400; a destination outside `outbound.allowed_destinations`
//! → 403 (toll-fraud protection; the default list is empty); REST credentials, `PUBLIC_URL` or
//! request signatures not configured, or the server draining → 503. Twilio refusing the call
//! → 502 with `"call_placed": false`; a create whose outcome is unknown (timeout after
//! sending, 5xx) → 502 with `"call_placed": null`, **never retried**.

pub mod amd;
pub mod settings;
pub(crate) mod voicemail;

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use twilio_media::rest::{CallSource, CreateCall};
use twilio_media::twiml::Method;

use crate::record::mask_number;
use crate::routes::{self, Body};
use crate::server::AppState;
use crate::twilio_rest::RestCallError;

/// Largest `POST /api/calls` body.
const MAX_BODY: usize = 16 * 1024;
/// How long a client may take to send it.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most prompt variables per call.
pub const MAX_VARIABLES: usize = 20;
/// Longest variable name.
pub const MAX_NAME: usize = 64;
/// Longest variable value, in characters.
pub const MAX_VALUE: usize = 500;
/// The query-parameter prefix of a prompt variable in `/voice/outbound` URLs.
pub(crate) const VAR_PREFIX: &str = "var.";
/// Status callback events asked for.
pub const STATUS_EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];

/// The JSON body of `POST /api/calls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceCall {
    to: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    routes::with_body(
        status,
        "application/json",
        serde_json::json!({ "error": message }).to_string(),
    )
}

/// Whether `name` may be a prompt variable: letters, digits and `_`, not a parameter the
/// server sets itself.
fn valid_variable(state: &AppState, name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "variable name {name:?} must be 1–{MAX_NAME} letters, digits or _"
        ));
    }
    if crate::config::RESERVED_PARAMETERS.contains(&name)
        || state.config.twilio.stream_parameters.contains_key(name)
    {
        return Err(format!(
            "variable name {name:?} is reserved (the server sets it itself)"
        ));
    }
    Ok(())
}

/// The URL Twilio fetches the call's TwiML from: `/voice/outbound` with the profile and
/// variables in the query.
pub(crate) fn voice_url(base: &str, profile: &str, variables: &BTreeMap<String, String>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("profile", profile);
    for (k, v) in variables {
        query.append_pair(&format!("{VAR_PREFIX}{k}"), v);
    }
    format!("{base}/voice/outbound?{}", query.finish())
}

/// The `Calls.create` request for one call.
pub(crate) fn create_request(
    base: &str,
    to: &str,
    from: &str,
    profile: &str,
    variables: &BTreeMap<String, String>,
    ring_timeout_secs: u32,
) -> Result<CreateCall, twilio_media::rest::RestError> {
    let amd_url = {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("profile", profile);
        format!("{base}/twilio/amd?{}", q.finish())
    };
    Ok(CreateCall::new(
        to,
        from,
        CallSource::Url {
            url: voice_url(base, profile, variables),
            method: Some(Method::Post),
        },
    )?
    .status_callback(format!("{base}/twilio/status"), Method::Post)
    .status_callback_events(STATUS_EVENTS)
    .timeout(ring_timeout_secs)
    .machine_detection("DetectMessageEnd")
    .param("AsyncAmd", "true")
    .param("AsyncAmdStatusCallback", amd_url)
    .param("AsyncAmdStatusCallbackMethod", "POST"))
}

/// `POST /api/calls` (the admin token was checked by [`crate::admin`]).
pub(crate) async fn place(state: &AppState, req: Request<Incoming>) -> Response<Body> {
    let body = match tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY).collect(),
    )
    .await
    {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(_)) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body must be JSON of at most {MAX_BODY} bytes"),
            );
        }
        Err(_) => return error(StatusCode::REQUEST_TIMEOUT, "request body timed out"),
    };
    let request: PlaceCall = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "expected {{\"to\": \"+E164\", \"from\"?, \"profile\"?, \"variables\"?}}: {e}"
                ),
            );
        }
    };
    let config = &state.config;
    let outbound = &config.outbound;
    let to = request.to.trim();
    if !crate::tools::config::is_e164(to) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("\"to\" must be an E.164 number (+ and 8–15 digits), not {to:?}"),
        );
    }
    let Some(from) = request
        .from
        .as_deref()
        .map(str::trim)
        .or(outbound.from.as_deref())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "no caller ID: pass \"from\" or set outbound.from (PHONE_AGENT_OUTBOUND__FROM)",
        );
    };
    if !crate::tools::config::is_e164(from) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("\"from\" must be an E.164 number, not {from:?}"),
        );
    }
    let profile = match request.profile.as_deref() {
        Some(name) => match state.profiles.get(name) {
            Some(p) => p,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("no profile named {name:?}"),
                );
            }
        },
        // Our number is the caller here: the profile answering it places the call.
        None => state.profiles.for_number(Some(from)),
    };
    if request.variables.len() > MAX_VARIABLES {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("at most {MAX_VARIABLES} variables"),
        );
    }
    for (k, v) in &request.variables {
        if let Err(message) = valid_variable(state, k) {
            return error(StatusCode::BAD_REQUEST, &message);
        }
        if v.chars().count() > MAX_VALUE {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("variable {k:?} is longer than {MAX_VALUE} characters"),
            );
        }
    }
    if !outbound.allows(to) {
        tracing::warn!(
            to = %mask_number(to),
            "refusing an outbound call: the destination is not in outbound.allowed_destinations"
        );
        crate::telemetry::outbound_call("refused");
        return error(
            StatusCode::FORBIDDEN,
            "destination not allowed: add the number or its prefix to \
             outbound.allowed_destinations (PHONE_AGENT_OUTBOUND__ALLOWED_DESTINATIONS)",
        );
    }
    let Some(rest) = &state.tool_services.rest else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "outbound calls need the Twilio REST API: set TWILIO_ACCOUNT_SID and \
             TWILIO_AUTH_TOKEN (or an API key)",
        );
    };
    let Some(public) = &config.server.public_url else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "outbound calls need PUBLIC_URL (Twilio fetches the call's TwiML there)",
        );
    };
    if config.twilio.auth_token.is_none() && !config.twilio.danger_allow_unsigned_requests {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "outbound calls need TWILIO_AUTH_TOKEN: their callbacks must be signed",
        );
    }
    if state.is_draining() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    }
    let create = match create_request(
        public.http_base(),
        to,
        from,
        &profile.name,
        &request.variables,
        outbound.ring_timeout_secs,
    ) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match rest.create_call(&create).await {
        Ok(call) => {
            let Some(sid) = call.get("sid").and_then(|s| s.as_str()) else {
                tracing::error!("Twilio created a call but its answer has no sid");
                return routes::with_body(
                    StatusCode::BAD_GATEWAY,
                    "application/json",
                    serde_json::json!({
                        "error": "Twilio accepted the call but its answer has no call SID",
                        "call_placed": true,
                    })
                    .to_string(),
                );
            };
            tracing::info!(
                call_sid = sid,
                to = %mask_number(to),
                profile = %profile.name,
                "outbound call placed"
            );
            crate::telemetry::outbound_call("placed");
            routes::with_body(
                StatusCode::CREATED,
                "application/json",
                serde_json::json!({
                    "call_sid": sid,
                    "status": call.get("status").cloned().unwrap_or_default(),
                    "to": to,
                    "from": from,
                    "profile": profile.name,
                })
                .to_string(),
            )
        }
        Err(e) => {
            let unknown = e.outcome_unknown();
            tracing::error!(
                to = %mask_number(to),
                error = %e,
                outcome_unknown = unknown,
                "outbound call failed"
            );
            crate::telemetry::outbound_call(if unknown { "unknown" } else { "failed" });
            let message = match &e {
                RestCallError::OutcomeUnknown(_) => e.to_string(),
                other => format!("the call was not placed: {other}"),
            };
            routes::with_body(
                StatusCode::BAD_GATEWAY,
                "application/json",
                serde_json::json!({
                    "error": message,
                    "call_placed": if unknown { serde_json::Value::Null } else { false.into() },
                })
                .to_string(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voice_url_carries_profile_and_variables() {
        let vars = BTreeMap::from([
            ("name".to_owned(), "Ada Lovelace".to_owned()),
            ("order".to_owned(), "A&B=1".to_owned()),
        ]);
        assert_eq!(
            voice_url("https://b.example.com", "sales", &vars),
            "https://b.example.com/voice/outbound?profile=sales&var.name=Ada+Lovelace&var.order=A%26B%3D1"
        );
    }
}
