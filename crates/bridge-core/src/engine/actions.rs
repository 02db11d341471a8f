//! The call-actions part of a call: a hang-up or transfer requested by a tool, carried out
//! after the agent's goodbye has been heard.
//!
//! Phases: the goodbye's `response.create` is awaited (held back while a response runs) →
//! its response is awaited → it is speaking → it ended and its audio is draining (marks not
//! yet echoed) → the action is executing (a transfer, until its result comes back). The guard
//! deadline is the engine's timer-table entry `Goodbye`; this part says where it moves: from
//! the tool's result while no goodbye audio has come, then to the goodbye's last audio (when
//! it will have played) plus the configured timeout.

use std::time::{Duration, Instant};

use crate::tools::CallAction;

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// The response that speaks the goodbye has not been requested yet (held back).
    AwaitingCreate,
    /// Requested; waiting for it to start.
    AwaitingStart,
    /// The goodbye response is running.
    Speaking(String),
    /// The goodbye response ended; waiting for its last mark to echo.
    Draining,
    /// The action was output; waiting for its result (a transfer).
    Executing,
}

#[derive(Debug)]
struct Pending {
    action: CallAction,
    phase: Phase,
    /// When the goodbye audio forwarded so far will have played.
    audio_end: Option<Instant>,
}

/// At most one pending call action. See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct CallActions {
    pending: Option<Pending>,
}

impl CallActions {
    /// A tool asked for `action`; false if one is already pending (the second is ignored).
    pub(crate) fn request(&mut self, action: CallAction) -> bool {
        if self.pending.is_some() {
            return false;
        }
        self.pending = Some(Pending {
            action,
            phase: Phase::AwaitingCreate,
            audio_end: None,
        });
        true
    }

    /// True while an action is pending (requested and not finished).
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The goodbye was requested, or left to the agent's own next response.
    pub(crate) fn goodbye_requested(&mut self) {
        if let Some(p) = &mut self.pending
            && p.phase == Phase::AwaitingCreate
        {
            p.phase = Phase::AwaitingStart;
        }
    }

    /// A response started: the goodbye, if one was awaited.
    pub(crate) fn response_started(&mut self, id: &str) {
        if let Some(p) = &mut self.pending
            && p.phase == Phase::AwaitingStart
        {
            p.phase = Phase::Speaking(id.to_owned());
        }
    }

    /// A response ended; true if it was the goodbye (now draining).
    pub(crate) fn response_done(&mut self, id: &str) -> bool {
        if let Some(p) = &mut self.pending
            && matches!(&p.phase, Phase::Speaking(s) if s == id)
        {
            p.phase = Phase::Draining;
            return true;
        }
        false
    }

    /// The goodbye ended and its audio is still playing out.
    pub(crate) fn is_draining(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| p.phase == Phase::Draining)
    }

    /// The goodbye is speaking or draining.
    pub(crate) fn goodbye_playing(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| matches!(p.phase, Phase::Speaking(_) | Phase::Draining))
    }

    /// Agent audio of `duration` was forwarded at `now`. If it is (or may be) the goodbye,
    /// the new guard deadline (`timeout` after the goodbye's audio will have played).
    pub(crate) fn audio_forwarded(
        &mut self,
        response_id: Option<&str>,
        duration: Duration,
        now: Instant,
        timeout: Duration,
    ) -> Option<Instant> {
        let p = self.pending.as_mut()?;
        let goodbye = match &p.phase {
            Phase::Speaking(id) => response_id.is_none_or(|r| r == id),
            // No response boundaries (GPT-Live): whatever is said after the request.
            Phase::AwaitingStart => response_id.is_none(),
            Phase::AwaitingCreate | Phase::Draining | Phase::Executing => false,
        };
        if !goodbye {
            return None;
        }
        let end = p.audio_end.map_or(now, |end| end.max(now)) + duration;
        p.audio_end = Some(end);
        Some(end + timeout)
    }

    /// Execute now: the action to output, unless it is already executing. A hang-up is done
    /// with this; a transfer waits for [`CallActions::finished`].
    pub(crate) fn execute(&mut self) -> Option<CallAction> {
        let p = self.pending.as_mut()?;
        if p.phase == Phase::Executing {
            return None;
        }
        p.phase = Phase::Executing;
        let action = p.action.clone();
        if action == CallAction::Hangup {
            self.pending = None;
        }
        Some(action)
    }

    /// The executing action's result arrived: the action, if one was executing.
    pub(crate) fn finished(&mut self) -> Option<CallAction> {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.phase == Phase::Executing)
        {
            return self.pending.take().map(|p| p.action);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer() -> CallAction {
        CallAction::Transfer { to: "+1555".into() }
    }

    #[test]
    fn goodbye_phases_from_request_to_result() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut actions = CallActions::default();
        assert!(actions.request(transfer()));
        assert!(!actions.request(CallAction::Hangup), "one at a time");
        // Audio before the goodbye was requested is not the goodbye.
        assert_eq!(
            actions.audio_forwarded(Some("old"), ms(20), t0, ms(1000)),
            None
        );
        actions.goodbye_requested();
        actions.response_started("bye");
        assert!(actions.goodbye_playing());
        assert_eq!(
            actions.audio_forwarded(Some("other"), ms(20), t0, ms(1000)),
            None
        );
        // Two pieces at once: they play one after the other.
        assert_eq!(
            actions.audio_forwarded(Some("bye"), ms(100), t0, ms(1000)),
            Some(t0 + ms(1100))
        );
        assert_eq!(
            actions.audio_forwarded(Some("bye"), ms(100), t0 + ms(50), ms(1000)),
            Some(t0 + ms(1200))
        );
        assert!(!actions.response_done("other"));
        assert!(actions.response_done("bye"));
        assert!(actions.is_draining());
        assert_eq!(actions.finished(), None, "not executing yet");
        assert_eq!(actions.execute(), Some(transfer()));
        assert_eq!(actions.execute(), None, "already executing");
        assert!(actions.is_pending());
        assert_eq!(actions.finished(), Some(transfer()));
        assert!(!actions.is_pending());
    }

    #[test]
    fn a_hang_up_is_done_when_executed() {
        let mut actions = CallActions::default();
        actions.request(CallAction::Hangup);
        assert_eq!(actions.execute(), Some(CallAction::Hangup));
        assert!(!actions.is_pending());
        assert_eq!(actions.finished(), None);
    }
}
