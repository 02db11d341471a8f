//! The live calls of this instance, fed by the same observer events that build the records.
//!
//! Only turn-level events reach it (the start, final transcript lines, first agent audio of a
//! turn, barge-ins, tool calls, the end): nothing on the per-frame audio path. Each change is
//! published on a bounded broadcast channel ([`UPDATES_CAPACITY`]) that the Server-Sent Events
//! streams read: publishing never waits, and a subscriber that falls behind loses updates
//! (it is told to reload) instead of slowing any call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bridge_core::engine::CallEvent;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::profiles::Profile;
use crate::record::{mask_number, now_ms};
use crate::tools::CallContext;

/// Updates buffered per subscriber before it is considered lagging.
pub(crate) const UPDATES_CAPACITY: usize = 256;
/// Transcript lines kept per live call (the oldest go first).
pub(crate) const MAX_LINES: usize = 500;

/// One transcript line of a live call.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Line {
    pub(crate) speaker: &'static str,
    pub(crate) text: String,
    /// Milliseconds since the stream started.
    pub(crate) at_ms: u64,
}

/// What the console shows of a live call.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LiveSummary {
    pub(crate) call_sid: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) profile: String,
    pub(crate) backend: &'static str,
    pub(crate) started_at_ms: i64,
    /// `agent`, `caller` or `-` (from the latest turn event: first agent audio, a barge-in,
    /// the caller's final line).
    pub(crate) speaking: &'static str,
    pub(crate) barge_ins: u32,
    pub(crate) tool_calls: u32,
}

/// A live call: its summary, transcript and what the console's actions need.
#[derive(Debug)]
pub(crate) struct LiveCall {
    pub(crate) summary: LiveSummary,
    /// The latest lines (at most [`MAX_LINES`]).
    pub(crate) lines: Vec<Line>,
    /// Lines so far (the index of the next one).
    pub(crate) total_lines: usize,
    /// The call's context (unmasked numbers, pending transfer).
    pub(crate) context: Arc<CallContext>,
    /// The call's profile (its transfer destinations).
    pub(crate) profile: Arc<Profile>,
    /// Cancelling it ends the call's media stream.
    pub(crate) end: CancellationToken,
}

/// One change, as sent to the browsers (JSON in an SSE `data:` line).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Update {
    /// A call started, or its summary changed.
    Call(LiveSummary),
    /// A final transcript line.
    Line {
        call_sid: String,
        /// Its index among the call's lines (a browser that missed one reloads).
        index: usize,
        #[serde(flatten)]
        line: Line,
    },
    /// A call ended.
    Ended { call_sid: String },
}

/// The registry.
#[derive(Debug)]
pub(crate) struct LiveCalls {
    calls: Mutex<BTreeMap<String, LiveCall>>,
    updates: broadcast::Sender<Update>,
}

impl Default for LiveCalls {
    fn default() -> Self {
        LiveCalls {
            calls: Mutex::default(),
            updates: broadcast::channel(UPDATES_CAPACITY).0,
        }
    }
}

/// What registering a call needs.
#[derive(Debug)]
pub(crate) struct NewCall {
    pub(crate) context: Arc<CallContext>,
    pub(crate) profile: Arc<Profile>,
    pub(crate) backend: &'static str,
    pub(crate) end: CancellationToken,
    pub(crate) mask_numbers: bool,
}

impl LiveCalls {
    fn calls(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LiveCall>> {
        // Every update leaves the map consistent: a poisoned lock is still usable.
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish(&self, update: Update) {
        // No subscriber is fine; a lagging one sees `Lagged` on its side.
        let _ = self.updates.send(update);
    }

    /// A receiver of every update from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    /// Registers a call whose stream started; it stays listed until the entry is dropped.
    pub(crate) fn open(self: &Arc<Self>, call: NewCall) -> LiveEntry {
        let number = |n: &str| {
            if call.mask_numbers {
                mask_number(n)
            } else {
                n.to_owned()
            }
        };
        let summary = LiveSummary {
            call_sid: call.context.call_sid.clone(),
            from: number(&call.context.from),
            to: number(&call.context.to),
            profile: call.profile.name.clone(),
            backend: call.backend,
            started_at_ms: now_ms(),
            speaking: "-",
            barge_ins: 0,
            tool_calls: 0,
        };
        let call_sid = summary.call_sid.clone();
        self.calls().insert(
            call_sid.clone(),
            LiveCall {
                summary: summary.clone(),
                lines: Vec::new(),
                total_lines: 0,
                context: call.context,
                profile: call.profile,
                end: call.end,
            },
        );
        self.publish(Update::Call(summary));
        LiveEntry {
            calls: Arc::clone(self),
            call_sid,
            started_at_ms: now_ms(),
        }
    }

    /// The live calls, oldest first, with their latest lines and their number of lines so far.
    pub(crate) fn snapshot(&self) -> Vec<(LiveSummary, Vec<Line>, usize)> {
        let mut calls: Vec<_> = self
            .calls()
            .values()
            .map(|c| (c.summary.clone(), c.lines.clone(), c.total_lines))
            .collect();
        calls.sort_by_key(|(s, _, _)| s.started_at_ms);
        calls
    }

    /// Runs `f` on a live call.
    pub(crate) fn with_call<T>(&self, call_sid: &str, f: impl FnOnce(&LiveCall) -> T) -> Option<T> {
        self.calls().get(call_sid).map(f)
    }

    fn update(&self, call_sid: &str, f: impl FnOnce(&mut LiveCall) -> Option<Update>) {
        let update = self.calls().get_mut(call_sid).and_then(f);
        if let Some(update) = update {
            self.publish(update);
        }
    }
}

/// A call's place in the registry; dropping it removes the call.
#[derive(Debug)]
pub(crate) struct LiveEntry {
    calls: Arc<LiveCalls>,
    call_sid: String,
    started_at_ms: i64,
}

impl LiveEntry {
    /// Takes one observer event.
    pub(crate) fn on_event(&self, event: &CallEvent) {
        let summary_changed = |call: &mut LiveCall, f: &dyn Fn(&mut LiveSummary)| {
            f(&mut call.summary);
            Some(Update::Call(call.summary.clone()))
        };
        match event {
            CallEvent::Transcript { speaker, text, .. } => {
                let speaker = speaker.as_str();
                let line = Line {
                    speaker,
                    text: text.clone(),
                    at_ms: u64::try_from(now_ms() - self.started_at_ms).unwrap_or(0),
                };
                self.calls.update(&self.call_sid, |call| {
                    if call.lines.len() >= MAX_LINES {
                        call.lines.remove(0);
                    }
                    call.lines.push(line.clone());
                    call.total_lines += 1;
                    if speaker == "caller" && call.summary.speaking == "caller" {
                        call.summary.speaking = "-";
                    }
                    Some(Update::Line {
                        call_sid: call.summary.call_sid.clone(),
                        index: call.total_lines - 1,
                        line,
                    })
                });
            }
            CallEvent::FirstAudio { .. } => self.calls.update(&self.call_sid, |call| {
                summary_changed(call, &|s| s.speaking = "agent")
            }),
            CallEvent::BargeIn(_) => self.calls.update(&self.call_sid, |call| {
                summary_changed(call, &|s| {
                    s.speaking = "caller";
                    s.barge_ins += 1;
                })
            }),
            CallEvent::ToolStarted { .. } => self.calls.update(&self.call_sid, |call| {
                summary_changed(call, &|s| s.tool_calls += 1)
            }),
            _ => {}
        }
    }
}

impl Drop for LiveEntry {
    fn drop(&mut self) {
        self.calls.calls().remove(&self.call_sid);
        self.calls.publish(Update::Ended {
            call_sid: std::mem::take(&mut self.call_sid),
        });
    }
}
