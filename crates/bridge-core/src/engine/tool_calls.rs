//! The tool-calls part of a call: which of the agent's tool calls run, when, and which are
//! still running.
//!
//! A call that names its response is held until that response has ended: it runs if the
//! response completed and is discarded if it was cancelled or failed (the model's turn did not
//! happen). A call reported after its response already ended is decided from a short memory
//! of finished responses. Results are matched back by call id; once none is running, the
//! engine asks for one response for all of them.

use std::collections::VecDeque;
use std::time::Instant;

use crate::agent::ToolCallRequest;

/// How many finished responses to remember (for tool calls reported after their response).
const DONE_MEMORY: usize = 8;

/// A tool call that was started and has not answered.
#[derive(Debug)]
pub(crate) struct RunningTool {
    pub(crate) call_id: String,
    pub(crate) name: String,
    pub(crate) started: Instant,
}

/// What to do with a tool call now.
#[derive(Debug, PartialEq)]
pub(crate) enum Admission {
    /// Run it.
    Run(ToolCallRequest),
    /// Its response is still running: held.
    Held,
    /// Its response did not complete: never run it.
    Discard(ToolCallRequest),
}

/// Held and running tool calls. See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct ToolCalls {
    held: Vec<ToolCallRequest>,
    running: Vec<RunningTool>,
    /// Recently finished responses and whether they completed.
    recent_done: VecDeque<(String, bool)>,
}

impl ToolCalls {
    /// The agent connection was lost: the calls held for a response that will never end are
    /// discarded (returned, in order).
    pub(crate) fn discard_held(&mut self) -> Vec<ToolCallRequest> {
        std::mem::take(&mut self.held)
    }

    /// The agent asked for a tool call.
    pub(crate) fn admit(&mut self, request: ToolCallRequest) -> Admission {
        let Some(response_id) = request.response_id.as_deref() else {
            return Admission::Run(request);
        };
        let finished = self
            .recent_done
            .iter()
            .find(|(id, _)| id == response_id)
            .map(|(_, completed)| *completed);
        match finished {
            None => {
                self.held.push(request);
                Admission::Held
            }
            Some(true) => Admission::Run(request),
            Some(false) => Admission::Discard(request),
        }
    }

    /// `response_id` ended: the calls it held, in order, each to run (`true`, the response
    /// completed) or to discard.
    pub(crate) fn response_done(
        &mut self,
        response_id: &str,
        completed: bool,
    ) -> Vec<(ToolCallRequest, bool)> {
        let mut released = Vec::new();
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].response_id.as_deref() == Some(response_id) {
                released.push((self.held.remove(i), completed));
            } else {
                i += 1;
            }
        }
        if self.recent_done.len() == DONE_MEMORY {
            self.recent_done.pop_front();
        }
        self.recent_done
            .push_back((response_id.to_owned(), completed));
        released
    }

    /// A call started running.
    pub(crate) fn started(&mut self, call_id: String, name: String, now: Instant) {
        self.running.push(RunningTool {
            call_id,
            name,
            started: now,
        });
    }

    /// A running call answered; `None` for an unknown or cancelled one.
    pub(crate) fn finished(&mut self, call_id: &str) -> Option<RunningTool> {
        let idx = self.running.iter().position(|t| t.call_id == call_id)?;
        Some(self.running.remove(idx))
    }

    /// True when no call is running.
    pub(crate) fn none_running(&self) -> bool {
        self.running.is_empty()
    }

    /// The call ended: forget everything; true if calls were running (they must be aborted).
    pub(crate) fn cancel_all(&mut self) -> bool {
        self.held.clear();
        let were_running = !self.running.is_empty();
        self.running.clear();
        were_running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str, response: Option<&str>) -> ToolCallRequest {
        ToolCallRequest {
            call_id: id.into(),
            name: "lookup".into(),
            arguments: "{}".into(),
            response_id: response.map(Into::into),
        }
    }

    #[test]
    fn calls_wait_for_their_response_and_run_only_if_it_completed() {
        let mut tools = ToolCalls::default();
        assert_eq!(
            tools.admit(call("free", None)),
            Admission::Run(call("free", None))
        );
        assert_eq!(tools.admit(call("a", Some("r1"))), Admission::Held);
        assert_eq!(tools.admit(call("b", Some("r2"))), Admission::Held);
        assert_eq!(tools.admit(call("c", Some("r1"))), Admission::Held);
        assert_eq!(
            tools.response_done("r1", true),
            [(call("a", Some("r1")), true), (call("c", Some("r1")), true)]
        );
        assert_eq!(
            tools.response_done("r2", false),
            [(call("b", Some("r2")), false)]
        );
        // Reported after their response ended: decided from memory.
        assert_eq!(
            tools.admit(call("d", Some("r1"))),
            Admission::Run(call("d", Some("r1")))
        );
        assert_eq!(
            tools.admit(call("e", Some("r2"))),
            Admission::Discard(call("e", Some("r2")))
        );
    }

    #[test]
    fn running_calls_are_matched_by_id_and_cancelled_at_the_end() {
        let now = Instant::now();
        let mut tools = ToolCalls::default();
        assert!(tools.none_running());
        tools.started("a".into(), "lookup".into(), now);
        tools.started("b".into(), "lookup".into(), now);
        assert!(tools.finished("zzz").is_none());
        assert_eq!(tools.finished("a").map(|t| t.call_id), Some("a".to_owned()));
        assert!(!tools.none_running());
        assert!(tools.cancel_all());
        assert!(tools.none_running());
        assert!(!tools.cancel_all());
        assert!(tools.finished("b").is_none());
    }
}
