//! `POST /twilio/status`: Twilio's call status callbacks.
//!
//! Signed like every Twilio request (`X-Twilio-Signature` over `PUBLIC_URL/twilio/status`; a
//! bad or missing signature is 403 when `TWILIO_AUTH_TOKEN` is set). Each callback updates the
//! call's record (`ringing`, `in-progress` = answered, and the final status with Twilio's
//! `CallDuration`); callbacks may arrive out of order, `SequenceNumber` decides the current
//! status. A final status (`completed`, `busy`, `failed`, `no-answer`, `canceled`) for a call
//! whose stream is still open on this instance ends that call: Twilio's word is the
//! authoritative "the call is over" (the WebSocket may close without a `stop`).
//!
//! For inbound calls Twilio sends these only when the number's *Call status changes* webhook is
//! set to this URL (console, or `StatusCallback` on the IncomingPhoneNumber); TwiML cannot ask
//! for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use crate::record::{mask_number, now_ms};
use crate::routes::{self, Body};
use crate::server::AppState;
use crate::store::{StatusUpdate, Write};

/// How long a client may take to send a callback's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The calls whose media stream is open on this instance.
#[derive(Debug, Default)]
pub(crate) struct OpenCalls {
    calls: Mutex<HashMap<String, OpenCall>>,
}

#[derive(Debug, Clone)]
struct OpenCall {
    end: CancellationToken,
    completed: Arc<AtomicBool>,
    /// How `/twilio/amd` hands the call a message to leave (`agent_voicemail` calls only).
    voicemail: Option<crate::outbound::voicemail::VoicemailRoute>,
}

/// Keeps a call registered in [`OpenCalls`] while it runs.
#[derive(Debug)]
pub(crate) struct OpenCallGuard<'a> {
    calls: &'a OpenCalls,
    call_sid: String,
    completed: Arc<AtomicBool>,
}

impl OpenCallGuard<'_> {
    /// Whether Twilio's final status callback ended the call.
    pub(crate) fn completed_by_twilio(&self) -> bool {
        self.completed.load(Ordering::Acquire)
    }
}

impl Drop for OpenCallGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.calls.calls.lock() {
            calls.remove(&self.call_sid);
        }
    }
}

impl OpenCalls {
    /// Registers a call; cancelling `end` ends it.
    pub(crate) fn open(
        &self,
        call_sid: &str,
        end: CancellationToken,
        voicemail: Option<crate::outbound::voicemail::VoicemailRoute>,
    ) -> OpenCallGuard<'_> {
        let completed = Arc::new(AtomicBool::new(false));
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(
                call_sid.to_owned(),
                OpenCall {
                    end,
                    completed: Arc::clone(&completed),
                    voicemail,
                },
            );
        }
        OpenCallGuard {
            calls: self,
            call_sid: call_sid.to_owned(),
            completed,
        }
    }

    /// The route into a call whose stream is open here, for its voicemail message.
    pub(crate) fn voicemail_route(
        &self,
        call_sid: &str,
    ) -> Option<crate::outbound::voicemail::VoicemailRoute> {
        self.calls
            .lock()
            .ok()
            .and_then(|calls| calls.get(call_sid).and_then(|c| c.voicemail.clone()))
    }

    /// Ends the call if its stream is open here; whether it was.
    fn complete(&self, call_sid: &str) -> bool {
        let call = self
            .calls
            .lock()
            .ok()
            .and_then(|calls| calls.get(call_sid).cloned());
        match call {
            Some(call) => {
                call.completed.store(true, Ordering::Release);
                call.end.cancel();
                true
            }
            None => false,
        }
    }
}

/// A Twilio callback's form, after its signature and account were checked.
pub(crate) type Form = Vec<(String, String)>;

/// Reads a Twilio `POST` callback to `path` and checks its signature (against
/// `PUBLIC_URL + path`) and account. The error is the response to send.
pub(crate) async fn read_signed_form(
    state: &AppState,
    req: Request<Incoming>,
    path: &str,
    route: &'static str,
) -> Result<Form, Response<Body>> {
    let (parts, body) = req.into_parts();
    let config = &state.config;
    let limited = Limited::new(body, config.server.voice_body_limit);
    let body: Bytes = match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(routes::text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large\n",
                ));
            }
            return Err(routes::text(
                StatusCode::BAD_REQUEST,
                "could not read the request body\n",
            ));
        }
        Err(_) => {
            return Err(routes::text(
                StatusCode::REQUEST_TIMEOUT,
                "request body timed out\n",
            ));
        }
    };
    let params: Form = form_urlencoded::parse(&body).into_owned().collect();
    if let Some(key) = config.twilio.signature_key() {
        let Some(public) = &config.server.public_url else {
            return Err(routes::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "PUBLIC_URL is not configured\n",
            ));
        };
        let mut url = format!("{}{path}", public.http_base());
        if let Some(q) = parts.uri.query() {
            url.push('?');
            url.push_str(q);
        }
        let header = parts
            .headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok());
        if !crate::signature::is_valid(key, &url, &params, header) {
            tracing::warn!(
                route,
                signature_present = header.is_some(),
                "refusing a Twilio callback: invalid signature"
            );
            crate::telemetry::rejected("signature");
            return Err(routes::text(StatusCode::FORBIDDEN, "invalid signature\n"));
        }
    }
    if let Some(expected) = &config.twilio.account_sid
        && param(&params, "AccountSid") != Some(expected.as_str())
    {
        tracing::warn!(route, "refusing a Twilio callback for another account");
        crate::telemetry::rejected("account");
        return Err(routes::text(StatusCode::FORBIDDEN, "wrong account\n"));
    }
    Ok(params)
}

/// The first value of a form parameter.
pub(crate) fn param<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `inbound`, or `outbound` for Twilio's `outbound-api` / `outbound-dial`.
pub(crate) fn direction(twilio: &str) -> &'static str {
    if twilio.starts_with("outbound") {
        "outbound"
    } else {
        "inbound"
    }
}

/// A number as stored: in full, or masked with `privacy.mask_numbers`.
pub(crate) fn stored_number(state: &AppState, number: Option<&str>) -> Option<String> {
    number.map(|n| {
        if state.config.privacy.mask_numbers {
            mask_number(n)
        } else {
            n.to_owned()
        }
    })
}

pub(crate) async fn handle(state: &AppState, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::POST {
        return routes::method_not_allowed("POST");
    }
    let form = match read_signed_form(state, req, "/twilio/status", "status").await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let (Some(call_sid), Some(status)) = (param(&form, "CallSid"), param(&form, "CallStatus"))
    else {
        return routes::text(
            StatusCode::BAD_REQUEST,
            "missing CallSid or CallStatus (is this a Twilio status callback?)\n",
        );
    };
    let final_status = matches!(
        status,
        "completed" | "busy" | "failed" | "no-answer" | "canceled"
    );
    let ended_here = final_status && state.open_calls.complete(call_sid);
    tracing::info!(
        call_sid,
        status,
        ended_open_call = ended_here,
        "call status callback"
    );
    if let Some(store) = &state.store {
        store.submit(Write::Status(StatusUpdate {
            call_sid: call_sid.to_owned(),
            status: status.to_owned(),
            sequence: param(&form, "SequenceNumber").and_then(|s| s.parse().ok()),
            at_ms: now_ms(),
            duration_secs: param(&form, "CallDuration").and_then(|s| s.parse().ok()),
            direction: param(&form, "Direction").map(|d| direction(d).to_owned()),
            from: stored_number(state, param(&form, "From")),
            to: stored_number(state, param(&form, "To")),
            account_sid: param(&form, "AccountSid").map(str::to_owned),
        }));
    }
    routes::with_body(StatusCode::NO_CONTENT, "text/plain; charset=utf-8", "")
}
