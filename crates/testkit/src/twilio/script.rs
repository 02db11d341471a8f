//! Driving a whole call from a script of caller steps.

use std::time::Duration;

use super::call::{ActiveCall, CallEvent};
use crate::WaitError;

/// One step of a scripted call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallStep {
    /// Queue caller audio (8 kHz μ-law) and wait until it has all been sent.
    Say(Vec<u8>),
    /// Queue caller audio and go on at once.
    Queue(Vec<u8>),
    /// Let time pass (idle frames keep flowing; agent audio keeps playing).
    Wait(Duration),
    /// Press a key.
    Dtmf(char),
    /// Wait until the caller has heard this many agent bytes in total.
    WaitHeard(usize),
    /// Wait until this many agent bytes have been received in total.
    WaitAgentAudio(usize),
    /// Wait until everything queued for playout has played.
    WaitPlayoutIdle,
    /// Wait for the `n`-th `clear` of the call (1-based, counted from the start of the call).
    WaitClear(usize),
    /// Wait until this mark has been echoed.
    WaitMark(String),
    /// Wait until the stream has ended (e.g. the server hangs up).
    WaitClosed,
    /// Hang up: `stop`, then close.
    Stop,
    /// Drop the connection abruptly.
    Drop,
}

/// A sequence of caller steps, each bounded by a timeout.
///
/// ```
/// use std::time::Duration;
/// use testkit::audio::CallerAudio;
/// use testkit::twilio::CallScript;
///
/// let script = CallScript::new()
///     .wait_heard_ms(1000)                                  // listen to 1 s of the greeting
///     .say(CallerAudio::new().speech(800).silence(600))      // barge in
///     .wait_clear(1)                                        // the bridge must clear playout
///     .wait_agent_audio(8000)
///     .wait_playout_idle()
///     .stop();
/// assert_eq!(script.steps().len(), 6);
/// # let _ = Duration::ZERO;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallScript {
    steps: Vec<CallStep>,
    step_timeout: Duration,
}

impl Default for CallScript {
    fn default() -> Self {
        Self {
            steps: Vec::new(),
            step_timeout: Duration::from_secs(10),
        }
    }
}

/// A scripted step that did not complete.
#[derive(Debug, Clone, thiserror::Error)]
#[error("call script step {index} ({step:?}) failed: {error}")]
pub struct ScriptError {
    /// 0-based index of the step.
    pub index: usize,
    /// The step.
    pub step: CallStep,
    /// Why.
    pub error: WaitError,
}

impl CallScript {
    /// An empty script (10 s per-step timeout).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a step.
    pub fn step(mut self, step: CallStep) -> Self {
        self.steps.push(step);
        self
    }

    /// Sets the timeout of each waiting step (default 10 s).
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.step_timeout = timeout;
        self
    }

    /// [`CallStep::Say`].
    pub fn say(self, mulaw: impl Into<Vec<u8>>) -> Self {
        self.step(CallStep::Say(mulaw.into()))
    }

    /// [`CallStep::Queue`].
    pub fn queue(self, mulaw: impl Into<Vec<u8>>) -> Self {
        self.step(CallStep::Queue(mulaw.into()))
    }

    /// [`CallStep::Wait`].
    pub fn wait(self, d: Duration) -> Self {
        self.step(CallStep::Wait(d))
    }

    /// [`CallStep::Dtmf`].
    pub fn dtmf(self, digit: char) -> Self {
        self.step(CallStep::Dtmf(digit))
    }

    /// [`CallStep::WaitHeard`].
    pub fn wait_heard(self, bytes: usize) -> Self {
        self.step(CallStep::WaitHeard(bytes))
    }

    /// [`CallStep::WaitHeard`] in milliseconds of audio.
    pub fn wait_heard_ms(self, ms: u64) -> Self {
        self.step(CallStep::WaitHeard(
            ms as usize * crate::audio::BYTES_PER_MS,
        ))
    }

    /// [`CallStep::WaitAgentAudio`].
    pub fn wait_agent_audio(self, bytes: usize) -> Self {
        self.step(CallStep::WaitAgentAudio(bytes))
    }

    /// [`CallStep::WaitPlayoutIdle`].
    pub fn wait_playout_idle(self) -> Self {
        self.step(CallStep::WaitPlayoutIdle)
    }

    /// [`CallStep::WaitClear`].
    pub fn wait_clear(self, n: usize) -> Self {
        self.step(CallStep::WaitClear(n))
    }

    /// [`CallStep::WaitMark`].
    pub fn wait_mark(self, name: &str) -> Self {
        self.step(CallStep::WaitMark(name.to_string()))
    }

    /// [`CallStep::WaitClosed`].
    pub fn wait_closed(self) -> Self {
        self.step(CallStep::WaitClosed)
    }

    /// [`CallStep::Stop`].
    pub fn stop(self) -> Self {
        self.step(CallStep::Stop)
    }

    /// [`CallStep::Drop`].
    pub fn drop_connection(self) -> Self {
        self.step(CallStep::Drop)
    }

    /// The steps.
    pub fn steps(&self) -> &[CallStep] {
        &self.steps
    }
}

impl ActiveCall {
    /// Runs `script` step by step; stops at the first step that times out.
    pub async fn run(&self, script: &CallScript) -> Result<(), ScriptError> {
        let t = script.step_timeout;
        for (index, step) in script.steps.iter().enumerate() {
            let r = match step {
                CallStep::Say(a) => self.play(a.clone(), t).await,
                CallStep::Queue(a) => {
                    self.send_audio(a.clone());
                    Ok(())
                }
                CallStep::Wait(d) => {
                    tokio::time::sleep(*d).await;
                    Ok(())
                }
                CallStep::Dtmf(d) => {
                    let sent = |e: &CallEvent| matches!(e, CallEvent::DtmfSent { .. });
                    let before = self.count_events(sent);
                    self.send_dtmf(*d);
                    self.wait_for_nth(sent, before + 1, t).await.map(drop)
                }
                CallStep::WaitHeard(n) => self.wait_heard(*n, t).await.map(drop),
                CallStep::WaitAgentAudio(n) => self.wait_received_audio(*n, t).await.map(drop),
                CallStep::WaitPlayoutIdle => self.wait_playout_idle(t).await,
                CallStep::WaitClear(n) => self
                    .wait_for_nth(|e| matches!(e, CallEvent::ClearReceived { .. }), *n, t)
                    .await
                    .map(drop),
                CallStep::WaitMark(name) => self.wait_mark_echoed(name, t).await.map(drop),
                CallStep::WaitClosed => self.wait_closed(t).await.map(drop),
                CallStep::Stop => self.stop(t).await.map(drop),
                CallStep::Drop => self.drop_connection(t).await.map(drop),
            };
            r.map_err(|error| ScriptError {
                index,
                step: step.clone(),
                error,
            })?;
        }
        Ok(())
    }
}
