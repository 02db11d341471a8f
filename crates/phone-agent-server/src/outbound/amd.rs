//! `POST /twilio/amd?profile=NAME`: the asynchronous answering machine detection result of an
//! outbound call (PROTOCOLS.md §5.7).
//!
//! Signed like every Twilio request (over `PUBLIC_URL/twilio/amd?profile=NAME`; unsigned or
//! forged → 403). `AnsweredBy` goes into the call's record (`answered_by`), then the profile's
//! policy ([`super::settings::AmdPolicy`]) decides:
//!
//! | `AnsweredBy` | action |
//! |---|---|
//! | `human` | converse: nothing to do, the agent is already talking |
//! | `machine_end_beep`, `machine_end_silence`, `machine_end_other` | `on_machine` |
//! | `fax` | `on_fax` |
//! | `unknown` (and `machine_start`, sent only with `MachineDetection=Enable`) | `on_unknown` |
//!
//! `voicemail` updates the live call with `<Response><Say>MESSAGE</Say><Hangup/></Response>`
//! (which ends its media stream: the agent stops and Twilio says the message after the beep);
//! `agent_voicemail` hands the message to the call's agent when the call's stream is open on
//! this instance (see [`super::voicemail`]), and falls back to that `<Say>` otherwise;
//! `hangup` updates it with `Status=completed`. A call already over (Twilio 21220/20404) is
//! fine. The profile comes from the callback URL, written there by `POST /api/calls`.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use twilio_media::rest::UpdateCall;

use super::settings::AmdAction;
use super::voicemail::Handed;
use crate::routes::{self, Body};
use crate::server::AppState;
use crate::status::{param, read_signed_form};
use crate::store::{AmdUpdate, Write};
use crate::twilio_rest::UpdateOutcome;

/// Twilio's `AnsweredBy` values, as metric labels (anything else counts as `other`).
const KNOWN: [&str; 7] = [
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
];

pub(crate) async fn handle(state: &AppState, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::POST {
        return routes::method_not_allowed("POST");
    }
    let profile_name = form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "profile")
        .map(|(_, v)| v.into_owned());
    let form = match read_signed_form(state, req, "/twilio/amd", "amd").await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let (Some(call_sid), Some(answered_by)) = (param(&form, "CallSid"), param(&form, "AnsweredBy"))
    else {
        return routes::text(
            StatusCode::BAD_REQUEST,
            "missing CallSid or AnsweredBy (is this an AMD status callback?)\n",
        );
    };
    let label = KNOWN
        .iter()
        .copied()
        .find(|k| *k == answered_by)
        .unwrap_or("other");
    let profile = state.profiles.named(profile_name.as_deref());
    let action = profile.amd.action_for(answered_by);
    tracing::info!(
        call_sid,
        answered_by = label,
        profile = %profile.name,
        action = action.as_str(),
        detection_ms = param(&form, "MachineDetectionDuration"),
        "answering machine detection result"
    );
    crate::telemetry::amd_result(label, action.as_str());
    if let Some(store) = &state.store {
        store.submit(Write::Amd(AmdUpdate {
            call_sid: call_sid.to_owned(),
            // Twilio's value, bounded (it is stored and shown as is).
            answered_by: answered_by.chars().take(32).collect(),
        }));
    }
    // Invariant: configuration validation refuses `voicemail` and `agent_voicemail` without a
    // message.
    let message = profile.amd.voicemail_message.as_deref().unwrap_or_default();
    let say = match action {
        AmdAction::AgentVoicemail => {
            let route = state.open_calls.voicemail_route(call_sid);
            match route.map(|r| r.leave_message(&profile.amd.voicemail_instructions, message)) {
                Some(Handed::Taken) => {
                    tracing::info!(call_sid, "AMD: the call's agent leaves the voicemail");
                    false
                }
                Some(Handed::AlreadyAsked) => {
                    // A repeated callback: the first one's message (or fallback) stands.
                    tracing::info!(call_sid, "AMD: the message was asked for already");
                    false
                }
                Some(Handed::Closed) => {
                    tracing::info!(call_sid, "AMD: the call is ending; <Say> instead");
                    true
                }
                None => {
                    tracing::info!(
                        call_sid,
                        "AMD: the call's stream is not open on this instance; <Say> instead"
                    );
                    true
                }
            }
        }
        AmdAction::Voicemail => true,
        AmdAction::Converse | AmdAction::Hangup => false,
    };
    let update = match action {
        AmdAction::Converse => None,
        AmdAction::AgentVoicemail if !say => None,
        AmdAction::Hangup => Some(UpdateCall::hang_up()),
        AmdAction::Voicemail | AmdAction::AgentVoicemail => {
            let xml = super::voicemail::say_twiml(message);
            match UpdateCall::twiml(xml) {
                Ok(update) => Some(update),
                Err(e) => {
                    tracing::error!(call_sid, error = %e, "the voicemail message is too long; hanging up instead");
                    Some(UpdateCall::hang_up())
                }
            }
        }
    };
    if let Some(update) = update {
        match &state.tool_services.rest {
            None => {
                tracing::error!(
                    call_sid,
                    "cannot act on the AMD result: the Twilio REST API is not configured"
                );
            }
            Some(rest) => match rest.update_call(call_sid, &update).await {
                Ok(UpdateOutcome::Updated) => {
                    tracing::info!(call_sid, action = action.as_str(), "AMD action done");
                }
                Ok(UpdateOutcome::AlreadyGone(_)) => {
                    tracing::info!(call_sid, "AMD action: the call had already ended");
                }
                Err(e) => {
                    tracing::error!(call_sid, error = %e, "AMD action failed");
                    crate::telemetry::error("amd_action");
                }
            },
        }
    }
    routes::with_body(StatusCode::NO_CONTENT, "text/plain; charset=utf-8", "")
}
