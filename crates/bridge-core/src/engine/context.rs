//! The context part of a call: the conversation so far, kept in a bounded form so a fresh
//! agent session can be seeded with it ([`crate::agent::AgentCommand::Restore`]) after the
//! agent connection was lost.
//!
//! What is kept, in the order the engine learnt it:
//!
//! * final transcript lines of both sides ([`ContextItem::Message`]);
//! * the agent's lines **as heard**: an item cut by a barge-in keeps the share of its text
//!   that matches the share of its audio the caller heard (`played_ms / sent_ms`, rounded down
//!   to a word boundary; nothing when nothing was heard), whether the cut comes before or after
//!   the item's final transcript; an item still streaming when the connection was lost keeps
//!   the transcript fragments received so far (they accompany the audio that was forwarded);
//! * tool calls and their outputs ([`ContextItem::ToolCall`], [`ContextItem::ToolOutput`]);
//! * notes the engine added (keypad presses, a failed transfer: [`ContextItem::Note`]).
//!
//! Bound: at most [`ContextLimits::max_items`] entries and [`ContextLimits::max_chars`]
//! characters of text in all. Beyond either, the **oldest** entries are dropped first and
//! counted ([`Conversation::dropped`]); dropping a tool call drops its output too (an output
//! without its call is refused by the Realtime API). The order is arrival order: a caller
//! line transcribed after the agent started answering comes after that answer's start.

use std::collections::VecDeque;

use crate::agent::{ContextItem, Speaker};

/// The bound of the kept conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextLimits {
    /// Most entries kept. Default 64.
    pub max_items: usize,
    /// Most characters of text (transcripts, arguments, outputs) kept in all. Default 24 000
    /// (about 6 000 tokens: a small share of a Realtime session's context).
    pub max_chars: usize,
}

impl Default for ContextLimits {
    fn default() -> Self {
        ContextLimits {
            max_items: 64,
            max_chars: 24_000,
        }
    }
}

/// Agent items whose text is still being assembled (fragments), at most this many.
const OPEN_ITEMS: usize = 4;
/// Barge-in cuts remembered for items whose final transcript has not arrived yet.
const PENDING_CUTS: usize = 8;

#[derive(Debug)]
struct Entry {
    item: ContextItem,
    /// The agent item it came from, for a cut that arrives later.
    item_id: Option<String>,
}

/// The conversation so far. See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Conversation {
    limits: ContextLimits,
    entries: VecDeque<Entry>,
    chars: usize,
    dropped: u64,
    /// Agent items streaming now: their fragments so far.
    open: VecDeque<(String, String)>,
    /// Cuts (heard fraction as `played_ms`, `sent_ms`) for items not final yet.
    cuts: VecDeque<(String, u64, u64)>,
    /// Lines streaming now whose fragments carry no item id (GPT-Live: its transcript
    /// fragments, grouped into lines by the adapter), at most one per speaker, in the order
    /// they started: kept when the stream ends before the agent made them final (a handover).
    unkeyed: Vec<(Speaker, String)>,
}

impl Conversation {
    /// An empty conversation with these limits.
    pub(crate) fn new(limits: ContextLimits) -> Self {
        Conversation {
            limits,
            ..Conversation::default()
        }
    }

    /// Entries dropped so far to stay within the bound.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Entries kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// A transcript fragment of the agent (accumulated until the line is final).
    pub(crate) fn fragment(&mut self, item_id: &str, text: &str) {
        if let Some((_, acc)) = self.open.iter_mut().find(|(id, _)| id == item_id) {
            if acc.len() < self.limits.max_chars {
                acc.push_str(text);
            }
            return;
        }
        if self.open.len() >= OPEN_ITEMS {
            self.open.pop_front();
        }
        self.open.push_back((item_id.to_owned(), text.to_owned()));
    }

    /// A transcript fragment without an item id, of either side (accumulated per speaker
    /// until that speaker's line is final).
    pub(crate) fn unkeyed_fragment(&mut self, speaker: Speaker, text: &str) {
        if let Some((_, acc)) = self.unkeyed.iter_mut().find(|(s, _)| *s == speaker) {
            if acc.len() < self.limits.max_chars {
                acc.push_str(text);
            }
            return;
        }
        self.unkeyed.push((speaker, text.to_owned()));
    }

    /// A final transcript line.
    pub(crate) fn line(&mut self, speaker: Speaker, text: &str, item_id: Option<&str>) {
        let mut text = text.to_owned();
        if item_id.is_none() {
            self.unkeyed.retain(|(s, _)| *s != speaker);
        }
        if let Some(id) = item_id {
            self.open.retain(|(open, _)| open != id);
            if speaker == Speaker::Agent
                && let Some(i) = self.cuts.iter().position(|(cut, _, _)| cut == id)
                && let Some((_, played, sent)) = self.cuts.remove(i)
            {
                text = cut_text(&text, played, sent);
            }
        }
        if text.trim().is_empty() {
            return;
        }
        self.push(Entry {
            item: ContextItem::Message { speaker, text },
            item_id: item_id.map(str::to_owned),
        });
    }

    /// A barge-in cut agent item `item_id` after `played_ms` of its `sent_ms`.
    pub(crate) fn cut(&mut self, item_id: &str, played_ms: u64, sent_ms: u64) {
        let found = self
            .entries
            .iter()
            .rposition(|e| e.item_id.as_deref() == Some(item_id));
        if let Some(i) = found {
            let ContextItem::Message { text, .. } = &self.entries[i].item else {
                return;
            };
            let cut = cut_text(text, played_ms, sent_ms);
            let before = text.chars().count();
            if cut.trim().is_empty() {
                self.entries.remove(i);
                self.chars -= before;
            } else {
                self.chars = self.chars - before + cut.chars().count();
                if let ContextItem::Message { text, .. } = &mut self.entries[i].item {
                    *text = cut;
                }
            }
            return;
        }
        if self.cuts.len() >= PENDING_CUTS {
            self.cuts.pop_front();
        }
        self.cuts
            .push_back((item_id.to_owned(), played_ms, sent_ms));
    }

    /// The agent connection was lost: the agent lines still streaming become lines with the
    /// fragments received so far (cut where a barge-in said so).
    pub(crate) fn connection_lost(&mut self) {
        for (speaker, text) in std::mem::take(&mut self.unkeyed) {
            self.line(speaker, text.trim(), None);
        }
        while let Some((id, text)) = self.open.pop_front() {
            self.line(Speaker::Agent, &text, Some(&id));
        }
        self.cuts.clear();
    }

    /// A tool call started.
    pub(crate) fn tool_call(&mut self, call_id: &str, name: &str, arguments: &str) {
        self.push(Entry {
            item: ContextItem::ToolCall {
                call_id: call_id.to_owned(),
                name: name.to_owned(),
                arguments: arguments.to_owned(),
            },
            item_id: None,
        });
    }

    /// A tool call's output. Kept only while its call is kept.
    pub(crate) fn tool_output(&mut self, call_id: &str, output: &str) {
        let known = self
            .entries
            .iter()
            .any(|e| matches!(&e.item, ContextItem::ToolCall { call_id: c, .. } if c == call_id));
        if !known {
            self.dropped += 1;
            return;
        }
        self.push(Entry {
            item: ContextItem::ToolOutput {
                call_id: call_id.to_owned(),
                output: output.to_owned(),
            },
            item_id: None,
        });
    }

    /// A note the engine gave the agent.
    pub(crate) fn note(&mut self, text: &str) {
        self.push(Entry {
            item: ContextItem::Note {
                text: text.to_owned(),
            },
            item_id: None,
        });
    }

    /// Seeds the conversation with one restored from elsewhere (a handed-over call), within
    /// the bound.
    pub(crate) fn seed(&mut self, items: &[ContextItem]) {
        for item in items {
            self.push(Entry {
                item: item.clone(),
                item_id: None,
            });
        }
    }

    /// The items to seed a fresh session with, oldest first.
    pub(crate) fn items(&self) -> Vec<ContextItem> {
        self.entries.iter().map(|e| e.item.clone()).collect()
    }

    fn push(&mut self, entry: Entry) {
        self.chars += chars_of(&entry.item);
        self.entries.push_back(entry);
        while self.entries.len() > self.limits.max_items || self.chars > self.limits.max_chars {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.chars -= chars_of(&old.item);
            self.dropped += 1;
            if let ContextItem::ToolCall { call_id, .. } = &old.item {
                let call_id = call_id.clone();
                let before = self.entries.len();
                let mut freed = 0;
                self.entries.retain(|e| match &e.item {
                    ContextItem::ToolOutput { call_id: c, .. } if *c == call_id => {
                        freed += chars_of(&e.item);
                        false
                    }
                    _ => true,
                });
                self.chars -= freed;
                self.dropped += (before - self.entries.len()) as u64;
            }
        }
    }
}

fn chars_of(item: &ContextItem) -> usize {
    match item {
        ContextItem::Message { text, .. } | ContextItem::Note { text } => text.chars().count(),
        ContextItem::ToolCall {
            name, arguments, ..
        } => name.chars().count() + arguments.chars().count(),
        ContextItem::ToolOutput { output, .. } => output.chars().count(),
    }
}

/// The share `played / sent` of `text`, rounded down to a word boundary.
fn cut_text(text: &str, played_ms: u64, sent_ms: u64) -> String {
    if sent_ms == 0 || played_ms >= sent_ms {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let keep = (chars.len() as u64 * played_ms / sent_ms) as usize;
    if keep == 0 {
        return String::new();
    }
    // Whole words only: a word is kept when the cut falls after its end.
    let mut end = keep;
    if end < chars.len() && !chars[end].is_whitespace() {
        while end > 0 && !chars[end - 1].is_whitespace() {
            end -= 1;
        }
    }
    chars[..end]
        .iter()
        .collect::<String>()
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(speaker: Speaker, text: &str) -> ContextItem {
        ContextItem::Message {
            speaker,
            text: text.to_owned(),
        }
    }

    #[test]
    fn lines_tools_and_notes_are_kept_in_order() {
        let mut c = Conversation::new(ContextLimits::default());
        c.line(Speaker::Agent, "Hello, Acme here.", Some("i1"));
        c.line(Speaker::Caller, "Are you open today?", Some("u1"));
        c.tool_call("call_1", "hours", "{\"day\":\"today\"}");
        c.tool_output("call_1", "{\"open\":\"9-17\"}");
        c.note("The caller pressed 1 on the keypad.");
        assert_eq!(
            c.items(),
            vec![
                msg(Speaker::Agent, "Hello, Acme here."),
                msg(Speaker::Caller, "Are you open today?"),
                ContextItem::ToolCall {
                    call_id: "call_1".into(),
                    name: "hours".into(),
                    arguments: "{\"day\":\"today\"}".into()
                },
                ContextItem::ToolOutput {
                    call_id: "call_1".into(),
                    output: "{\"open\":\"9-17\"}".into()
                },
                ContextItem::Note {
                    text: "The caller pressed 1 on the keypad.".into()
                },
            ]
        );
        assert_eq!(c.dropped(), 0);
    }

    #[test]
    fn an_agent_line_is_cut_at_what_was_heard_before_or_after_its_transcript() {
        // Cut after the line: half of 2000 ms heard.
        let mut c = Conversation::new(ContextLimits::default());
        c.line(Speaker::Agent, "one two three four five six", Some("i1"));
        c.cut("i1", 1000, 2000);
        // 27 chars · 1/2 = 13 → inside "four": back to "one two three".
        assert_eq!(c.items(), vec![msg(Speaker::Agent, "one two three")]);

        // Cut before the line (the transcript comes after the barge-in).
        let mut c = Conversation::new(ContextLimits::default());
        c.cut("i2", 500, 2000);
        c.line(Speaker::Agent, "one two three four five six", Some("i2"));
        // 27 · 1/4 = 6 → inside "two": "one".
        assert_eq!(c.items(), vec![msg(Speaker::Agent, "one")]);

        // Nothing heard: nothing kept.
        let mut c = Conversation::new(ContextLimits::default());
        c.line(Speaker::Agent, "unheard", Some("i3"));
        c.cut("i3", 0, 800);
        assert!(c.items().is_empty());
        // All heard: untouched.
        c.line(Speaker::Agent, "all of it", Some("i4"));
        c.cut("i4", 900, 800);
        assert_eq!(c.items(), vec![msg(Speaker::Agent, "all of it")]);
    }

    #[test]
    fn a_line_still_streaming_when_the_connection_drops_keeps_its_fragments() {
        let mut c = Conversation::new(ContextLimits::default());
        c.fragment("i1", "Our opening ");
        c.fragment("i1", "hours are");
        c.connection_lost();
        assert_eq!(
            c.items(),
            vec![msg(Speaker::Agent, "Our opening hours are")]
        );
        // A final line closes its fragments: no duplicate on a later loss.
        c.fragment("i2", "Bye");
        c.line(Speaker::Agent, "Bye now.", Some("i2"));
        c.connection_lost();
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn lines_without_item_ids_still_streaming_are_kept_in_the_order_they_started() {
        let mut c = Conversation::new(ContextLimits::default());
        c.unkeyed_fragment(Speaker::Agent, "Hello.");
        c.line(Speaker::Agent, "Hello.", None);
        c.unkeyed_fragment(Speaker::Caller, " Where is it?");
        c.unkeyed_fragment(Speaker::Agent, "It ships ");
        c.unkeyed_fragment(Speaker::Agent, "today.");
        c.connection_lost();
        assert_eq!(
            c.items(),
            vec![
                msg(Speaker::Agent, "Hello."),
                msg(Speaker::Caller, "Where is it?"),
                msg(Speaker::Agent, "It ships today."),
            ]
        );
        // Made final before the loss: no duplicate.
        c.unkeyed_fragment(Speaker::Caller, "Thanks");
        c.line(Speaker::Caller, "Thanks.", None);
        c.connection_lost();
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn the_oldest_entries_are_dropped_first_and_counted() {
        let mut c = Conversation::new(ContextLimits {
            max_items: 3,
            max_chars: 1000,
        });
        for n in 0..5 {
            c.line(Speaker::Caller, &format!("line {n}"), None);
        }
        assert_eq!(
            c.items(),
            vec![
                msg(Speaker::Caller, "line 2"),
                msg(Speaker::Caller, "line 3"),
                msg(Speaker::Caller, "line 4"),
            ]
        );
        assert_eq!(c.dropped(), 2);

        // By characters: 10 chars at most.
        let mut c = Conversation::new(ContextLimits {
            max_items: 100,
            max_chars: 10,
        });
        c.line(Speaker::Caller, "abcdef", None);
        c.line(Speaker::Agent, "ghijkl", None);
        assert_eq!(c.items(), vec![msg(Speaker::Agent, "ghijkl")]);
        assert_eq!(c.dropped(), 1);
    }

    #[test]
    fn dropping_a_tool_call_drops_its_output() {
        let mut c = Conversation::new(ContextLimits {
            max_items: 3,
            max_chars: 1000,
        });
        c.tool_call("c1", "t", "{}");
        c.line(Speaker::Caller, "hi", None);
        c.tool_output("c1", "{\"ok\":true}");
        // A fourth entry pushes the call out, and its output with it.
        c.line(Speaker::Agent, "done", None);
        assert_eq!(
            c.items(),
            vec![msg(Speaker::Caller, "hi"), msg(Speaker::Agent, "done")]
        );
        assert_eq!(c.dropped(), 2);
        // An output whose call is gone is not kept.
        c.tool_output("c1", "late");
        assert_eq!(c.len(), 2);
        assert_eq!(c.dropped(), 3);
    }
}
