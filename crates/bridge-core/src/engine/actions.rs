//! The call-actions part of a call: a hang-up or transfer requested by a tool, carried out
//! after the agent's goodbye has been heard.
//!
//! Phases: the goodbye's `response.create` is awaited (held back while a response runs) →
//! its response is awaited → it is speaking → it ended and its audio is draining (marks not
//! yet echoed) → the action is executing (a transfer, until its result comes back). The guard
//! deadline is the engine's timer-table entry `Goodbye`; this part says where it moves: from
//! the tool's result while no goodbye audio has come, then to the goodbye's last audio (when
//! it will have played) plus the configured timeout.
//!
//! An agent without response boundaries (GPT-Live: audio without response ids, a continuous
//! output track) never reports the goodbye's start or end. Once it says it has been handed
//! the text to say ([`crate::agent::AgentEvent::SpeechQueued`]), its goodbye is the speech
//! that starts after [`ONSET_QUIET`] of quiet from then on (speech going on then — an
//! acknowledgement said while the tool ran — must pause first; the voice model needs longer
//! than that to start saying what it was handed); it is over once that speech was followed by the configured
//! quiet (quiet audio forwarded, no agent transcript fragment meanwhile): then it drains until
//! the mark that followed the quiet is echoed. Quiet audio does not move the guard deadline,
//! so a silent output track cannot keep the call open; without the signal only the guard
//! ends the goodbye.

use std::time::{Duration, Instant};

use crate::caller::MarkId;
use crate::tools::CallAction;

/// Quiet after the hand-over of the goodbye's text before speech counts as the goodbye's:
/// longer than the pauses between words, shorter than the voice model's relay of injected
/// text (measured 0.6–1.0 s, PROTOCOLS-LIVE.md §5.2).
pub(crate) const ONSET_QUIET: Duration = Duration::from_millis(300);

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
    /// No response boundaries: the agent said it was handed the goodbye's text.
    armed: bool,
    /// Armed: quiet forwarded since the hand-over (or since speech after it), until
    /// [`ONSET_QUIET`]; from then on speech is the goodbye's.
    onset_quiet: Duration,
    /// No response boundaries: the goodbye's speech was forwarded.
    spoke: bool,
    /// No response boundaries: quiet audio forwarded since the last speech.
    quiet: Duration,
    /// The goodbye is heard once this mark is echoed (set when the quiet ended it).
    heard_at_mark: Option<MarkId>,
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
            armed: false,
            onset_quiet: Duration::ZERO,
            spoke: false,
            quiet: Duration::ZERO,
            heard_at_mark: None,
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

    /// Whether agent audio of `response_id` is watched for quiet: a goodbye is awaited from
    /// an agent without response boundaries. Only then is the audio's level measured.
    pub(crate) fn watches_quiet(&self, response_id: Option<&str>) -> bool {
        response_id.is_none()
            && self
                .pending
                .as_ref()
                .is_some_and(|p| p.phase == Phase::AwaitingStart)
    }

    /// Agent audio of `duration` was forwarded at `now` (`quiet`: measured quiet, see
    /// [`CallActions::watches_quiet`]). If it is (or may be) the goodbye, the new guard
    /// deadline (`timeout` after the goodbye's audio will have played). Quiet audio without
    /// response boundaries is not the goodbye: it does not move the deadline.
    pub(crate) fn audio_forwarded(
        &mut self,
        response_id: Option<&str>,
        quiet: bool,
        duration: Duration,
        now: Instant,
        timeout: Duration,
    ) -> Option<Instant> {
        let p = self.pending.as_mut()?;
        let goodbye = match &p.phase {
            Phase::Speaking(id) => response_id.is_none_or(|r| r == id),
            // No response boundaries (GPT-Live): whatever is said after the request.
            Phase::AwaitingStart => response_id.is_none() && !quiet,
            Phase::AwaitingCreate | Phase::Draining | Phase::Executing => false,
        };
        if !goodbye {
            return None;
        }
        let end = p.audio_end.map_or(now, |end| end.max(now)) + duration;
        p.audio_end = Some(end);
        Some(end + timeout)
    }

    /// No response boundaries: watched audio of `duration` (`quiet` or speech) was forwarded,
    /// followed by `mark`. True when this ends the goodbye: speech came, then `needed` of
    /// quiet; it is draining now, heard once `mark` is echoed.
    pub(crate) fn quiet_forwarded(
        &mut self,
        quiet: bool,
        duration: Duration,
        mark: MarkId,
        needed: Duration,
    ) -> bool {
        let Some(p) = self.pending.as_mut() else {
            return false;
        };
        if p.phase != Phase::AwaitingStart {
            return false;
        }
        if !p.armed {
            return false;
        }
        if !quiet {
            if p.onset_quiet >= ONSET_QUIET {
                p.spoke = true;
                p.quiet = Duration::ZERO;
            } else {
                // Speech that was going on at the hand-over (or a word of it): not yet.
                p.onset_quiet = Duration::ZERO;
            }
            return false;
        }
        if !p.spoke {
            p.onset_quiet += duration;
            return false;
        }
        p.quiet += duration;
        if p.quiet < needed {
            return false;
        }
        p.phase = Phase::Draining;
        p.heard_at_mark = Some(mark);
        true
    }

    /// No response boundaries: the agent was handed the text it is about to say (the
    /// goodbye, while one is awaited). Measuring starts again from here.
    pub(crate) fn speech_queued(&mut self) {
        if let Some(p) = &mut self.pending
            && p.phase == Phase::AwaitingStart
        {
            p.armed = true;
            p.onset_quiet = Duration::ZERO;
            p.spoke = false;
            p.quiet = Duration::ZERO;
        }
    }

    /// No response boundaries: the agent's words are still being transcribed, so the quiet
    /// so far does not count.
    pub(crate) fn agent_words(&mut self) {
        if let Some(p) = &mut self.pending
            && p.phase == Phase::AwaitingStart
        {
            p.quiet = Duration::ZERO;
        }
    }

    /// Whether the echo of `mark` means the draining goodbye has been heard (its quiet
    /// included), for a goodbye that the quiet ended.
    pub(crate) fn heard_with(&self, mark: MarkId) -> bool {
        self.pending.as_ref().is_some_and(|p| {
            p.phase == Phase::Draining && p.heard_at_mark.is_some_and(|m| mark >= m)
        })
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
            actions.audio_forwarded(Some("old"), false, ms(20), t0, ms(1000)),
            None
        );
        actions.goodbye_requested();
        actions.response_started("bye");
        assert!(actions.goodbye_playing());
        assert_eq!(
            actions.audio_forwarded(Some("other"), false, ms(20), t0, ms(1000)),
            None
        );
        // Two pieces at once: they play one after the other.
        assert_eq!(
            actions.audio_forwarded(Some("bye"), false, ms(100), t0, ms(1000)),
            Some(t0 + ms(1100))
        );
        assert_eq!(
            actions.audio_forwarded(Some("bye"), false, ms(100), t0 + ms(50), ms(1000)),
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
    fn without_response_boundaries_quiet_after_speech_ends_the_goodbye() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let quiet = ms(800);
        let mut actions = CallActions::default();
        actions.request(CallAction::Hangup);
        assert!(!actions.watches_quiet(None), "not requested yet");
        actions.goodbye_requested();
        assert!(actions.watches_quiet(None));
        assert!(
            !actions.watches_quiet(Some("r1")),
            "audio with ids is not watched"
        );
        // Quiet before any speech: not the goodbye, and the guard stays where it was.
        assert_eq!(
            actions.audio_forwarded(None, true, ms(100), t0, ms(6000)),
            None
        );
        for m in 1..=10 {
            assert!(!actions.quiet_forwarded(true, ms(100), MarkId(m), quiet));
        }
        // An acknowledgement while the tool ran, then quiet: not the goodbye (not handed over
        // yet), though its speech moves the guard.
        assert_eq!(
            actions.audio_forwarded(None, false, ms(100), t0, ms(6000)),
            Some(t0 + ms(6100))
        );
        assert!(!actions.quiet_forwarded(false, ms(100), MarkId(11), quiet));
        for m in 12..=21 {
            assert!(!actions.quiet_forwarded(true, ms(100), MarkId(m), quiet));
        }
        // Handed over while the acknowledgement still speaks: its rest is not the goodbye.
        assert!(!actions.quiet_forwarded(false, ms(100), MarkId(22), quiet));
        actions.speech_queued();
        assert!(!actions.quiet_forwarded(false, ms(100), MarkId(23), quiet));
        for m in 24..=31 {
            assert!(!actions.quiet_forwarded(true, ms(100), MarkId(m), quiet));
        }
        // The goodbye: speech after a pause. Quiet after it does not move the guard.
        assert!(
            actions
                .audio_forwarded(None, false, ms(100), t0, ms(6000))
                .is_some()
        );
        assert!(!actions.quiet_forwarded(false, ms(100), MarkId(32), quiet));
        assert_eq!(
            actions.audio_forwarded(None, true, ms(100), t0, ms(6000)),
            None
        );
        for m in 33..=36 {
            assert!(!actions.quiet_forwarded(true, ms(100), MarkId(m), quiet));
        }
        // A transcript fragment: the words are not over, the quiet starts again.
        actions.agent_words();
        for m in 37..=43 {
            assert!(!actions.quiet_forwarded(true, ms(100), MarkId(m), quiet));
        }
        assert!(actions.quiet_forwarded(true, ms(100), MarkId(44), quiet));
        assert!(actions.is_draining());
        assert!(!actions.watches_quiet(None), "draining: no more measuring");
        assert!(!actions.heard_with(MarkId(43)));
        assert!(actions.heard_with(MarkId(44)));
        assert_eq!(actions.execute(), Some(CallAction::Hangup));
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
