//! The `agent_voicemail` AMD action: the live call's agent leaves the message after the beep,
//! and the call hangs up once that message has been heard; `<Say>` is the fallback.
//!
//! ```text
//! /twilio/amd (machine_end_*) ──► OpenCalls: the call's stream is open on this instance?
//!     no  ──► REST update <Say>voicemail_message</Say><Hangup/> (as for `voicemail`)
//!     yes ──► CallerEvent::LeaveMessage{instructions} into the call's caller side (bounded
//!             channel, `try_send`) ──► engine: response.create with the instructions, then the
//!             goodbye machinery: hang up over REST once the message's last mark echoed
//! ```
//!
//! The fallback (`<Say>` over REST, once per call, whichever comes first): the engine refused
//! (the agent was not ready, a call action was pending), the goodbye guard expired before the
//! message had been heard (the hang-up becomes the `<Say>` update), or the call ended before the
//! message was left (the agent failed). [`AgentVoicemail`] holds that state for one call.
//!
//! Only calls that can use it pay for it: the channel and the caller-side wrapper
//! ([`Controlled`]) exist for outbound calls whose profile says `agent_voicemail`.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use bridge_core::caller::{CallerCommand, CallerEndpoint, CallerEvent, Endpoint, EndpointError};
use bridge_core::format::AudioFormat;
use tokio::sync::mpsc;
use twilio_media::rest::UpdateCall;
use twilio_media::twiml;

use crate::tools::ToolServices;
use crate::twilio_rest::UpdateOutcome;

/// Messages a call's control channel holds (one is ever sent; a duplicate AMD callback finds it
/// full or the call already told).
const CONTROL_CAPACITY: usize = 2;

/// The TwiML that leaves `message` after the beep and hangs up.
pub(crate) fn say_twiml(message: &str) -> String {
    twiml::Response::new()
        .say(twiml::Say::new(message))
        .hangup()
        .to_xml()
}

#[derive(Debug)]
enum Phase {
    /// Nothing asked.
    Idle,
    /// `/twilio/amd` sent the message to the call; the engine has not answered yet.
    Requested { fallback: String },
    /// The engine asked the agent; the hang-up after it is pending.
    Asked { fallback: String },
    /// The message was heard and the call hung up.
    Left,
    /// The `<Say>` fallback was used.
    FellBack,
}

/// The agent-voicemail state of one call: shared by the AMD route, the call's observer, its
/// call control and the call task. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct AgentVoicemail {
    phase: Mutex<Phase>,
}

impl Default for AgentVoicemail {
    fn default() -> Self {
        AgentVoicemail {
            phase: Mutex::new(Phase::Idle),
        }
    }
}

impl AgentVoicemail {
    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A message is asked for, with this `<Say>` fallback; false if one was asked already.
    fn request(&self, fallback: String) -> bool {
        let mut phase = self.phase();
        if !matches!(*phase, Phase::Idle) {
            return false;
        }
        *phase = Phase::Requested { fallback };
        true
    }

    /// The engine asked the agent for the message.
    pub(crate) fn accepted(&self) {
        let mut phase = self.phase();
        if let Phase::Requested { fallback } = &mut *phase {
            *phase = Phase::Asked {
                fallback: std::mem::take(fallback),
            };
        }
    }

    /// The hang-up after the message is executed because the message was heard.
    pub(crate) fn heard(&self) {
        let mut phase = self.phase();
        if matches!(*phase, Phase::Asked { .. }) {
            *phase = Phase::Left;
        }
    }

    /// The fallback TwiML, if a message was asked for and has not been left (nor fallen back
    /// already); from now on the fallback is used.
    pub(crate) fn take_fallback(&self) -> Option<String> {
        let mut phase = self.phase();
        match std::mem::replace(&mut *phase, Phase::FellBack) {
            Phase::Requested { fallback } | Phase::Asked { fallback } => Some(fallback),
            other => {
                *phase = other;
                None
            }
        }
    }

    /// Leaves the message with `<Say>` over REST if it is still owed (see
    /// [`AgentVoicemail::take_fallback`]).
    pub(crate) async fn fall_back(&self, services: &ToolServices, call_sid: &str) {
        if let Some(twiml) = self.take_fallback() {
            say_over_rest(services, call_sid, twiml).await;
        }
    }
}

/// Updates the live call with the `<Say>` TwiML (logged; a call already over is fine).
pub(crate) async fn say_over_rest(services: &ToolServices, call_sid: &str, twiml: String) {
    let Some(rest) = &services.rest else {
        tracing::error!(
            call_sid,
            "cannot leave the voicemail: the Twilio REST API is not configured"
        );
        return;
    };
    let update = match UpdateCall::twiml(twiml) {
        Ok(update) => update,
        Err(e) => {
            tracing::error!(call_sid, error = %e, "the voicemail message is too long; hanging up instead");
            UpdateCall::hang_up()
        }
    };
    match rest.update_call(call_sid, &update).await {
        Ok(UpdateOutcome::Updated) => {
            tracing::info!(call_sid, "voicemail left with <Say> (fallback)");
        }
        Ok(UpdateOutcome::AlreadyGone(_)) => {
            tracing::info!(call_sid, "voicemail fallback: the call had already ended");
        }
        Err(e) => {
            tracing::error!(call_sid, error = %e, "voicemail fallback failed");
            crate::telemetry::error("amd_action");
        }
    }
}

/// What handing a message to a call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handed {
    /// The call's agent will leave it (or the call falls back itself).
    Taken,
    /// A message was asked for already (a repeated AMD callback): nothing to do.
    AlreadyAsked,
    /// The call is ending: the caller of the route leaves it with `<Say>`.
    Closed,
}

/// How `/twilio/amd` reaches a call whose stream is open on this instance.
#[derive(Debug, Clone)]
pub(crate) struct VoicemailRoute {
    tx: mpsc::Sender<CallerEvent>,
    /// The call's prompt variables.
    variables: Arc<Vec<(String, String)>>,
    /// The agent says text verbatim (GPT-Live): it gets the message itself, not instructions.
    verbatim: bool,
    state: Arc<AgentVoicemail>,
}

impl VoicemailRoute {
    /// A route into a call (its variables, whether its agent says text verbatim), the
    /// receiving end for [`Controlled`], and the call's state.
    pub(crate) fn new(
        variables: Vec<(String, String)>,
        verbatim: bool,
        state: Arc<AgentVoicemail>,
    ) -> (VoicemailRoute, mpsc::Receiver<CallerEvent>) {
        let (tx, rx) = mpsc::channel(CONTROL_CAPACITY);
        (
            VoicemailRoute {
                tx,
                variables: Arc::new(variables),
                verbatim,
                state,
            },
            rx,
        )
    }

    /// Hands the message to the call.
    pub(crate) fn leave_message(&self, instructions: &str, message: &str) -> Handed {
        let mut vars: Vec<(&str, &str)> = self
            .variables
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // The message itself is no template: the `<Say>` fallback of another instance, which
        // knows no variables, says the same words.
        vars.push(("voicemail_message", message));
        let text = if self.verbatim {
            message.to_owned()
        } else {
            crate::prompt::render(instructions, &vars)
        };
        if !self.state.request(say_twiml(message)) {
            return Handed::AlreadyAsked;
        }
        match self
            .tx
            .try_send(CallerEvent::LeaveMessage { instructions: text })
        {
            Ok(()) => Handed::Taken,
            Err(_) => {
                // The call's task is gone or going: the caller owns the fallback now.
                self.state.take_fallback();
                Handed::Closed
            }
        }
    }
}

/// A caller endpoint that also yields the events of a control channel (the AMD route's
/// [`CallerEvent::LeaveMessage`]); everything else is the wrapped endpoint's.
pub(crate) struct Controlled<C> {
    inner: C,
    control: mpsc::Receiver<CallerEvent>,
    /// The channel's senders are gone: only the inner endpoint is read.
    control_closed: bool,
}

impl<C> Controlled<C> {
    pub(crate) fn new(inner: C, control: mpsc::Receiver<CallerEvent>) -> Self {
        Controlled {
            inner,
            control,
            control_closed: false,
        }
    }
}

#[async_trait]
impl<C: CallerEndpoint> Endpoint for Controlled<C> {
    type Event = CallerEvent;
    type Command = CallerCommand;

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<CallerEvent, EndpointError>>> {
        // The control channel first; both register `cx` when pending.
        while !self.control_closed {
            match self.control.poll_recv(cx) {
                Poll::Ready(Some(event)) => return Poll::Ready(Some(Ok(event))),
                Poll::Ready(None) => self.control_closed = true,
                Poll::Pending => break,
            }
        }
        self.inner.poll_recv(cx)
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        self.inner.poll_ready(cx)
    }

    fn start_send(&mut self, command: CallerCommand) -> Result<(), EndpointError> {
        self.inner.start_send(command)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        self.inner.poll_flush(cx)
    }

    async fn close(&mut self) -> Result<(), EndpointError> {
        self.inner.close().await
    }
}

impl<C: CallerEndpoint> CallerEndpoint for Controlled<C> {
    fn format(&self) -> AudioFormat {
        self.inner.format()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_is_taken_once_and_never_after_the_message_was_heard() {
        let vm = AgentVoicemail::default();
        assert_eq!(vm.take_fallback(), None, "nothing asked");
        assert!(vm.request("<Say/>".into()));
        assert!(!vm.request("<Say/>".into()), "once per call");
        vm.accepted();
        assert_eq!(vm.take_fallback().as_deref(), Some("<Say/>"));
        assert_eq!(vm.take_fallback(), None, "once");

        let vm = AgentVoicemail::default();
        assert!(vm.request("<Say/>".into()));
        vm.accepted();
        vm.heard();
        assert_eq!(vm.take_fallback(), None, "the message was left");
    }

    #[tokio::test]
    async fn the_route_renders_instructions_with_the_message_and_the_calls_variables() {
        let state = Arc::new(AgentVoicemail::default());
        let (route, mut rx) = VoicemailRoute::new(
            vec![("name".into(), "Ada".into())],
            false,
            Arc::clone(&state),
        );
        assert_eq!(
            route.leave_message("For {{name}}: {{voicemail_message}}", "Call back."),
            Handed::Taken
        );
        assert_eq!(
            rx.recv().await,
            Some(CallerEvent::LeaveMessage {
                instructions: "For Ada: Call back.".into()
            })
        );
        assert_eq!(
            route.leave_message("again", "again"),
            Handed::AlreadyAsked,
            "once per call"
        );
        assert_eq!(
            state.take_fallback().as_deref(),
            Some(say_twiml("Call back.").as_str())
        );
    }
}
