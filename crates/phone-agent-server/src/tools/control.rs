//! Call control over the Twilio REST API: the [`CallControl`] the engine calls once the
//! agent's goodbye or transfer line has been heard.
//!
//! * Hang-up: `Status=completed`. Without REST (no Account SID or credentials), or when Twilio
//!   says the call is already gone, nothing is sent; the engine closes the media stream next,
//!   which ends a `<Connect><Stream>` call with nothing after it (the fallback).
//! * Transfer: the call's TwiML is replaced with `<Dial>` to the chosen allow-listed
//!   destination (caller ID, ring timeout, optional whisper of the model's summary to the
//!   callee). Twilio then ends the media stream itself. A failure is returned to the engine,
//!   which tells the model.

use std::sync::Arc;

use async_trait::async_trait;
use bridge_core::caller::CallerInfo;
use bridge_core::driver::{CallControl, ControlError};
use bridge_core::tools::CallAction;
use twilio_media::rest::UpdateCall;
use twilio_media::twiml::{Dial, Response};

use super::config::{CallControlConfig, DialTarget};
use super::{CallContext, PendingTransfer, ToolServices};
use crate::twilio_rest::UpdateOutcome;

/// The REST-backed call control of one call.
#[derive(Debug)]
pub(crate) struct TwilioCallControl {
    pub(crate) services: Arc<ToolServices>,
    pub(crate) call: Arc<CallContext>,
}

/// The TwiML of a transfer.
pub(crate) fn transfer_twiml(
    config: &CallControlConfig,
    transfer: &PendingTransfer,
    called: &str,
    whisper_base: Option<&str>,
) -> String {
    let mut dial = match &transfer.destination.target {
        DialTarget::Number(n) => Dial::number(n.as_str()),
        DialTarget::Sip(uri) => Dial::sip(uri.as_str()),
    };
    let caller_id = config
        .transfer_caller_id
        .as_deref()
        .or(Some(called).filter(|c| !c.is_empty()));
    if let Some(caller_id) = caller_id {
        dial = dial.caller_id(caller_id);
    }
    dial = dial.timeout(config.transfer_timeout_secs);
    if config.whisper
        && let (Some(summary), Some(base)) = (&transfer.summary, whisper_base)
    {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("text", summary)
            .finish();
        dial = dial.whisper_url(format!("{base}/twilio/whisper?{query}"));
    }
    Response::new().dial(dial).to_xml()
}

#[async_trait]
impl CallControl for TwilioCallControl {
    async fn execute(&self, info: &CallerInfo, action: &CallAction) -> Result<(), ControlError> {
        match action {
            CallAction::Hangup => {
                if let Some(twiml) = self.call.voicemail.take_fallback() {
                    // The hang-up after an agent voicemail whose message was not heard in time
                    // (the guard expired, or the engine could not ask for it): `<Say>` it.
                    tracing::warn!(
                        "the agent's voicemail message was not heard: leaving it with <Say>"
                    );
                    crate::outbound::voicemail::say_over_rest(&self.services, &info.call_id, twiml)
                        .await;
                    return Ok(());
                }
                let Some(rest) = &self.services.rest else {
                    tracing::info!(
                        "hanging up by closing the media stream (Twilio REST is not configured)"
                    );
                    return Ok(());
                };
                match rest
                    .update_call(&info.call_id, &UpdateCall::hang_up())
                    .await
                {
                    Ok(UpdateOutcome::Updated) => {
                        tracing::info!("hung up over Twilio REST");
                        Ok(())
                    }
                    Ok(UpdateOutcome::AlreadyGone(e)) => {
                        tracing::info!(code = ?e.code, "hang-up: the call had already ended");
                        Ok(())
                    }
                    Err(e) => Err(ControlError(format!(
                        "hang-up over Twilio REST failed ({e}); closing the media stream instead"
                    ))),
                }
            }
            CallAction::Transfer { to } => {
                let Some(rest) = &self.services.rest else {
                    return Err(ControlError("the Twilio REST API is not configured".into()));
                };
                let pending = self
                    .call
                    .transfer
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .filter(|p| p.destination.target.as_str() == to);
                let Some(pending) = pending else {
                    return Err(ControlError(format!(
                        "{to} is not an allow-listed destination of this call"
                    )));
                };
                let twiml = transfer_twiml(
                    &self.services.call_control,
                    &pending,
                    &self.call.to,
                    self.services.public_url.as_ref().map(|u| u.http_base()),
                );
                let update = UpdateCall::twiml(twiml)
                    .map_err(|e| ControlError(format!("transfer TwiML: {e}")))?;
                match rest.update_call(&info.call_id, &update).await {
                    Ok(UpdateOutcome::Updated) => {
                        tracing::info!(destination = %pending.destination.name, "call transferred");
                        Ok(())
                    }
                    Ok(UpdateOutcome::AlreadyGone(_)) => {
                        Err(ControlError("the call had already ended".into()))
                    }
                    Err(e) => Err(ControlError(format!("the transfer failed: {e}"))),
                }
            }
        }
    }
}
