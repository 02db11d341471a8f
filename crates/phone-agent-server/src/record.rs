//! The call record: what a call leaves behind, built from the engine's observer events.
//!
//! A [`Recorder`] sits next to the call's metrics observer and accumulates the few events the
//! engine emits (never one per audio frame): the start, agent readiness, final transcript
//! lines, tool calls, barge-ins, usage, the end. [`Recorder::finish`] turns them into a
//! [`CallRecord`], which the call task hands to the store's writer without waiting.
//!
//! **The agent's interrupted lines.** OpenAI transcribes what the model *generated*; after a
//! barge-in the caller heard only the start of it. The engine reports, per interrupted item,
//! how much audio was forwarded (`sent_ms`) and heard (`audio_end_ms`, or `played_ms` when no
//! truncate was sent). The record keeps the heard part of the text, cut proportionally to
//! `heard / sent` and back to a word boundary (transcripts carry no word timing), and the rest
//! in `unheard_text`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bridge_core::agent::{Speaker, Usage};
use bridge_core::caller::CallerInfo;
use bridge_core::engine::{CallEvent, CallSummary, EndReason, LatencyTrigger};
use bridge_core::tools::CallAction;
use serde::{Deserialize, Serialize};

use crate::config::Pricing;

/// One call, as stored and served by `GET /api/calls/{sid}`. Times are Unix epoch
/// milliseconds (`*_at_ms`) or milliseconds since the stream started (`at_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Twilio `CallSid`.
    pub call_sid: String,
    /// Twilio `streamSid`.
    pub stream_sid: Option<String>,
    /// Twilio `AccountSid`.
    pub account_sid: Option<String>,
    /// `inbound` or `outbound` (Twilio's `outbound-api`/`outbound-dial`; from the voice
    /// webhook, `inbound` when unknown).
    pub direction: String,
    /// The caller's number (masked when `privacy.mask_numbers` is on).
    pub from: Option<String>,
    /// The called number (masked when `privacy.mask_numbers` is on).
    pub to: Option<String>,
    /// The agent profile that answered (`default` without per-number profiles).
    pub profile: String,
    /// The agent back end (`realtime`, `echo`, …).
    pub backend: String,
    /// The model, for model back ends.
    pub model: Option<String>,
    /// The voice, for model back ends.
    pub voice: Option<String>,
    /// When things happened.
    pub times: CallTimes,
    /// Stream start → end, in milliseconds.
    pub duration_ms: u64,
    /// Why the call ended (`caller_hung_up`, `twilio_completed`, …; see the README).
    pub end_reason: String,
    /// The error or close reason behind `end_reason`, if any.
    pub end_detail: Option<String>,
    /// Where the call was transferred (the destination the agent asked for), if it was.
    #[serde(default)]
    pub transfer_target: Option<String>,
    /// Times the caller interrupted the agent.
    pub barge_ins: u32,
    /// Times the agent's lost connection was restored mid-call (a fresh session seeded with
    /// the conversation so far).
    #[serde(default)]
    pub reconnects: u32,
    /// Times the agent session was recycled before its time limit (at a pause, the
    /// conversation replayed into a fresh session).
    #[serde(default)]
    pub recycles: u32,
    /// The longest gap the caller waited at a recycle's switch, in milliseconds: 0 when
    /// every switch was make-before-break (the standby was ready before the old session
    /// closed), the measured connect time of a break-before-make fallback otherwise.
    #[serde(default)]
    pub recycle_gap_ms: u64,
    /// Times the call was handed over to another server instance at shutdown (its stream
    /// ended at a pause, another instance resumed it with the conversation). A handed-over
    /// call has one record: the last part's, with the earlier parts merged in
    /// ([`CallRecord::continue_from`]).
    #[serde(default)]
    pub handovers: u32,
    /// Both sides' final lines, in the order they became final.
    pub transcript: Vec<Turn>,
    /// Tool calls, in the order they started.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Usage reported by the agent.
    pub usage: UsageRecord,
    /// The cost estimate from the configured price table.
    pub cost: CostEstimate,
    /// Latency figures of this call.
    pub latency: LatencyRecord,
    /// The call's recording (`recording.enabled`), a path as configured (`recording.dir`).
    #[serde(default)]
    pub recording_path: Option<String>,
    /// Twilio's view of the call (status callbacks); filled in by the store when read.
    #[serde(default)]
    pub twilio: TwilioStatus,
    /// Outbound calls: who answered, by answering machine detection (`human`,
    /// `machine_end_beep`, `fax`, `unknown`, …); filled in by the store when read.
    #[serde(default)]
    pub answered_by: Option<String>,
    /// Turn events for the console's timeline (records stored before it have none).
    #[serde(default)]
    pub timeline: TimelineRecord,
}

/// When each agent turn began to be heard and when the caller cut in: the turn events the
/// console's timeline is drawn from (milliseconds since the stream started).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineRecord {
    /// Every agent turn, in order: its first audio sent to the caller.
    pub agent_turns: Vec<AgentTurnMark>,
    /// Every barge-in, in order.
    pub barge_ins: Vec<BargeInMark>,
}

/// The start of one agent turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTurnMark {
    /// The turn's first audio was sent to the caller.
    pub at_ms: u64,
    /// Its trigger → that first audio.
    pub latency_ms: u64,
    /// What it answered: `greeting`, `caller_stopped_speaking`, `tool_results`, `dtmf`,
    /// `reprompt`, `resumed` (after an agent reconnect). Borrowed from a constant when made
    /// by this process.
    pub trigger: Cow<'static, str>,
}

/// One barge-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BargeInMark {
    /// The caller cut in (the agent's audio was cleared).
    pub at_ms: u64,
}

/// When things happened (Unix epoch milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallTimes {
    /// The voice webhook (filled in by the store when read, if it reached this store).
    pub webhook_at_ms: Option<i64>,
    /// The media stream started.
    pub stream_started_at_ms: i64,
    /// The agent was ready.
    pub agent_ready_at_ms: Option<i64>,
    /// The first agent audio went to the caller.
    pub first_agent_audio_at_ms: Option<i64>,
    /// The call ended.
    pub ended_at_ms: i64,
}

/// One transcript line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// `caller` or `agent` (borrowed from a constant when the line is made by this process:
    /// no allocation per line).
    pub speaker: Cow<'static, str>,
    /// What was said; for an interrupted agent line, the part the caller heard.
    pub text: String,
    /// Milliseconds since the stream started when the line became final.
    pub at_ms: u64,
    /// The conversation item, where the back end has items.
    pub item_id: Option<String>,
    /// The caller interrupted this (agent) line.
    pub interrupted: bool,
    /// Interrupted lines: milliseconds of the line's audio the caller heard.
    pub heard_ms: Option<u64>,
    /// Interrupted lines: milliseconds of the line's audio forwarded to the caller.
    pub sent_ms: Option<u64>,
    /// Interrupted lines: the generated text the caller did not hear.
    pub unheard_text: Option<String>,
}

/// One tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// The agent's call id.
    pub call_id: String,
    /// The tool.
    pub name: String,
    /// The arguments (JSON, or the model's text when it is not JSON).
    pub arguments: serde_json::Value,
    /// `ok`, `error` (the tool returned an error object), `discarded` (its response was
    /// cancelled before it ran) or `unfinished` (the call ended first).
    pub outcome: String,
    /// What the agent got back (JSON, or text).
    pub output: Option<serde_json::Value>,
    /// Start → result, in milliseconds.
    pub latency_ms: Option<u64>,
    /// Milliseconds since the stream started.
    pub at_ms: u64,
    /// `hangup` or `transfer:<target>` when the tool asked for one.
    pub action: Option<String>,
}

/// Usage totals reported by the agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Input tokens (all modalities).
    pub input_tokens: u64,
    /// Output tokens (all modalities).
    pub output_tokens: u64,
    /// Of which audio input.
    pub input_audio_tokens: u64,
    /// Of which audio output.
    pub output_audio_tokens: u64,
    /// Billed session seconds (GPT-Live).
    pub billed_seconds: Option<f64>,
}

/// The cost estimate and the prices it used (US dollars).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    /// The estimate.
    pub usd: f64,
    /// Text input, per million tokens.
    pub text_input_per_mtok: f64,
    /// Text output, per million tokens.
    pub text_output_per_mtok: f64,
    /// Audio input, per million tokens.
    pub audio_input_per_mtok: f64,
    /// Audio output, per million tokens.
    pub audio_output_per_mtok: f64,
    /// Per minute of GPT-Live session.
    pub live_per_minute: f64,
}

impl CostEstimate {
    /// Prices `usage` with `prices`: tokens by kind for token-billed back ends, session
    /// seconds when the back end reports them.
    pub fn compute(usage: &UsageRecord, prices: &Pricing) -> Self {
        let text_in = usage.input_tokens.saturating_sub(usage.input_audio_tokens) as f64;
        let text_out = usage
            .output_tokens
            .saturating_sub(usage.output_audio_tokens) as f64;
        let tokens = (text_in * prices.text_input_per_mtok
            + text_out * prices.text_output_per_mtok
            + usage.input_audio_tokens as f64 * prices.audio_input_per_mtok
            + usage.output_audio_tokens as f64 * prices.audio_output_per_mtok)
            / 1e6;
        let seconds = usage.billed_seconds.unwrap_or(0.0) / 60.0 * prices.live_per_minute;
        CostEstimate {
            usd: tokens + seconds,
            text_input_per_mtok: prices.text_input_per_mtok,
            text_output_per_mtok: prices.text_output_per_mtok,
            audio_input_per_mtok: prices.audio_input_per_mtok,
            audio_output_per_mtok: prices.audio_output_per_mtok,
            live_per_minute: prices.live_per_minute,
        }
    }
}

/// Latency figures of one call, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyRecord {
    /// Stream start → agent ready.
    pub agent_connect_ms: Option<u64>,
    /// The first turn's trigger (greeting request, end of the caller's speech) → first agent
    /// audio sent.
    pub first_audio_ms: Option<u64>,
    /// Caller frame received → written to the agent: median and 99th percentile (upper
    /// bounds of the relay histogram's buckets).
    pub relay_caller_to_agent: Percentiles,
    /// Agent audio received → written to the caller.
    pub relay_agent_to_caller: Percentiles,
}

/// Two percentiles of a latency distribution (milliseconds; `None` without samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
}

/// What Twilio's status callbacks said about the call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TwilioStatus {
    /// The latest `CallStatus` (by `SequenceNumber`).
    pub status: Option<String>,
    /// When the call rang (first `ringing` callback).
    pub ringing_at_ms: Option<i64>,
    /// When it was answered (first `in-progress` callback).
    pub answered_at_ms: Option<i64>,
    /// When Twilio reported it over (`completed`, `busy`, `failed`, `no-answer`, `canceled`).
    pub completed_at_ms: Option<i64>,
    /// Twilio's `CallDuration` in seconds, on completion.
    pub duration_secs: Option<i64>,
}

/// Unix epoch milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A phone number for logs (always) and for storage (with `privacy.mask_numbers`): the `+`,
/// the first two digits and the last two, the rest as `*`. Anything that is not a number is
/// masked entirely except its length.
pub fn mask_number(number: &str) -> String {
    let digits = number.trim_start_matches('+');
    let plus = if number.starts_with('+') { "+" } else { "" };
    let n = digits.chars().count();
    if n <= 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return "*".repeat(number.chars().count());
    }
    let head: String = digits.chars().take(2).collect();
    let tail: String = digits.chars().skip(n - 2).collect();
    format!("{plus}{head}{}{tail}", "*".repeat(n - 4))
}

/// Splits `text` into what was heard and what was not, for audio of which `heard_ms` out of
/// `sent_ms` played: at the proportional character position, moved back to the start of the
/// word it falls in (a word is heard only when it was heard to its end).
pub fn cut_heard(text: &str, heard_ms: u64, sent_ms: u64) -> (String, String) {
    if sent_ms == 0 || heard_ms >= sent_ms {
        return (text.trim().to_owned(), String::new());
    }
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let pos = (chars.len() as u128 * u128::from(heard_ms) / u128::from(sent_ms)) as usize;
    // A cut between two words (at whitespace, or at the end) keeps the word before it.
    let mut cut = pos;
    let at_boundary = |i: usize| i >= chars.len() || chars[i].1.is_whitespace();
    if !at_boundary(cut) {
        while cut > 0 && !chars[cut - 1].1.is_whitespace() {
            cut -= 1;
        }
    }
    let byte = chars.get(cut).map_or(text.len(), |&(b, _)| b);
    (
        text[..byte].trim().to_owned(),
        text[byte..].trim().to_owned(),
    )
}

/// Accumulates one call's record from its observer events.
#[derive(Debug)]
pub struct Recorder {
    record: CallRecord,
    /// Per interrupted item: (heard, sent) in milliseconds.
    cuts: HashMap<String, (u64, u64)>,
    /// Running tool calls: call id → index in `record.tool_calls`.
    running: HashMap<String, usize>,
    /// Set when Twilio's `completed` status callback came while the stream was open here.
    completed_by_twilio: bool,
    mask_numbers: bool,
}

/// What a record says about the call besides its events.
#[derive(Debug, Clone)]
pub struct RecordContext {
    /// `inbound` / `outbound`.
    pub direction: String,
    /// The profile.
    pub profile: String,
    /// The back end.
    pub backend: String,
    /// The model, for model back ends.
    pub model: Option<String>,
    /// The voice, for model back ends.
    pub voice: Option<String>,
    /// Store numbers masked.
    pub mask_numbers: bool,
}

impl Recorder {
    /// A record for the call that just started (Twilio's `start` was read `started_at_ms`).
    pub fn new(info: &CallerInfo, context: RecordContext, started_at_ms: i64) -> Self {
        let number = |name: &str| {
            info.parameter(name).map(|n| {
                if context.mask_numbers {
                    mask_number(n)
                } else {
                    n.to_owned()
                }
            })
        };
        let record = CallRecord {
            call_sid: info.call_id.clone(),
            stream_sid: Some(info.stream_id.clone()),
            account_sid: info.account_id.clone(),
            direction: context.direction,
            from: number("from"),
            to: number("to"),
            profile: context.profile,
            backend: context.backend,
            model: context.model,
            voice: context.voice,
            times: CallTimes {
                stream_started_at_ms: started_at_ms,
                ..CallTimes::default()
            },
            duration_ms: 0,
            end_reason: String::new(),
            end_detail: None,
            transfer_target: None,
            barge_ins: 0,
            reconnects: 0,
            recycles: 0,
            recycle_gap_ms: 0,
            handovers: 0,
            transcript: Vec::new(),
            tool_calls: Vec::new(),
            usage: UsageRecord::default(),
            cost: CostEstimate::default(),
            latency: LatencyRecord::default(),
            recording_path: None,
            twilio: TwilioStatus::default(),
            answered_by: None,
            timeline: TimelineRecord::default(),
        };
        Recorder {
            record,
            cuts: HashMap::new(),
            running: HashMap::new(),
            completed_by_twilio: false,
            mask_numbers: context.mask_numbers,
        }
    }

    /// Whether numbers are stored masked.
    pub fn masks_numbers(&self) -> bool {
        self.mask_numbers
    }

    /// Notes that Twilio's `completed` status callback came while the call's stream was open
    /// here. If that is what ended the call (the engine ended it as a shutdown), its end reason
    /// is `twilio_completed`; a call that had already ended for another reason keeps it.
    pub fn completed_by_twilio(&mut self) {
        self.completed_by_twilio = true;
    }

    fn since_start(&self, now_ms: i64) -> u64 {
        u64::try_from(now_ms - self.record.times.stream_started_at_ms).unwrap_or(0)
    }

    /// Takes one event, observed at `now_ms` (Unix epoch milliseconds).
    pub fn on_event(&mut self, event: &CallEvent, now_ms: i64) {
        match event {
            CallEvent::AgentReady { connect_latency } => {
                self.record.times.agent_ready_at_ms = Some(now_ms);
                self.record.latency.agent_connect_ms = Some(millis(*connect_latency));
            }
            CallEvent::FirstAudio { latency, trigger } => {
                let at_ms = self.since_start(now_ms);
                self.record.timeline.agent_turns.push(AgentTurnMark {
                    at_ms,
                    latency_ms: millis(*latency),
                    trigger: Cow::Borrowed(trigger_name(*trigger)),
                });
                if self.record.times.first_agent_audio_at_ms.is_none() {
                    self.record.times.first_agent_audio_at_ms = Some(now_ms);
                    self.record.latency.first_audio_ms = Some(millis(*latency));
                }
            }
            CallEvent::Transcript {
                speaker,
                text,
                item_id,
                at,
                ..
            } => self.record.transcript.push(Turn {
                speaker: Cow::Borrowed(speaker.as_str()),
                text: text.clone(),
                at_ms: millis(*at),
                item_id: item_id.clone(),
                interrupted: false,
                heard_ms: None,
                sent_ms: None,
                unheard_text: None,
            }),
            CallEvent::ToolStarted {
                call_id,
                name,
                arguments,
            } => {
                let at_ms = self.since_start(now_ms);
                self.running
                    .insert(call_id.clone(), self.record.tool_calls.len());
                self.record.tool_calls.push(ToolCallRecord {
                    call_id: call_id.clone(),
                    name: name.clone(),
                    arguments: json_or_text(arguments),
                    outcome: "unfinished".into(),
                    output: None,
                    latency_ms: None,
                    at_ms,
                    action: None,
                });
            }
            CallEvent::ToolDiscarded { call_id, name } => {
                let at_ms = self.since_start(now_ms);
                self.record.tool_calls.push(ToolCallRecord {
                    call_id: call_id.clone(),
                    name: name.clone(),
                    arguments: serde_json::Value::Null,
                    outcome: "discarded".into(),
                    output: None,
                    latency_ms: None,
                    at_ms,
                    action: None,
                });
            }
            CallEvent::ToolFinished {
                call_id,
                duration,
                output,
                action,
                ..
            } => {
                if let Some(tool) = self
                    .running
                    .remove(call_id)
                    .and_then(|i| self.record.tool_calls.get_mut(i))
                {
                    let output = json_or_text(output);
                    tool.outcome = if output.get("error").is_some() {
                        "error"
                    } else {
                        "ok"
                    }
                    .into();
                    tool.output = Some(output);
                    tool.latency_ms = Some(millis(*duration));
                    tool.action = action.as_ref().map(|a| match a {
                        CallAction::Hangup => "hangup".to_owned(),
                        CallAction::Transfer { to } => format!("transfer:{to}"),
                    });
                }
            }
            CallEvent::BargeIn(barge_in) => {
                self.record.barge_ins += 1;
                self.record.timeline.barge_ins.push(BargeInMark {
                    at_ms: millis(barge_in.at),
                });
                for t in &barge_in.truncations {
                    if let Some(item) = &t.item_id {
                        let heard = t.audio_end_ms.unwrap_or(t.played_ms);
                        self.cuts.insert(item.clone(), (heard, t.sent_ms));
                    }
                }
            }
            CallEvent::AgentReconnected { .. } => self.record.reconnects += 1,
            CallEvent::AgentRecycled { gap, .. } => {
                self.record.recycles += 1;
                let gap_ms = u64::try_from(gap.as_millis()).unwrap_or(u64::MAX);
                self.record.recycle_gap_ms = self.record.recycle_gap_ms.max(gap_ms);
            }
            CallEvent::Action {
                action: CallAction::Transfer { to },
                ..
            } => self.record.transfer_target = Some(to.clone()),
            CallEvent::Started(_)
            | CallEvent::AgentReconnecting { .. }
            | CallEvent::HandedOver { .. }
            | CallEvent::AgentReconnectFailed { .. }
            | CallEvent::Reprompted
            | CallEvent::Usage(_)
            | CallEvent::Action { .. }
            | CallEvent::Error { .. }
            | CallEvent::LeaveMessage { .. }
            | CallEvent::Ended(_) => {}
        }
    }

    /// A final transcript line that was completed after the call's events (GPT-Live: at the
    /// session's teardown), at `now_ms` (Unix epoch milliseconds). It goes after every line
    /// that became final no later, so the transcript stays in the order lines became final.
    pub fn late_line(&mut self, speaker: Speaker, text: String, now_ms: i64) {
        let at_ms = self.since_start(now_ms);
        let at = self
            .record
            .transcript
            .iter()
            .rposition(|t| t.at_ms <= at_ms)
            .map_or(0, |i| i + 1);
        self.record.transcript.insert(
            at,
            Turn {
                speaker: Cow::Borrowed(speaker.as_str()),
                text,
                at_ms,
                item_id: None,
                interrupted: false,
                heard_ms: None,
                sent_ms: None,
                unheard_text: None,
            },
        );
    }

    /// The finished record.
    pub fn finish(
        mut self,
        summary: &CallSummary,
        relay: [Percentiles; 2],
        prices: &Pricing,
        ended_at_ms: i64,
    ) -> CallRecord {
        for turn in &mut self.record.transcript {
            if turn.speaker != "agent" {
                continue;
            }
            let Some(&(heard, sent)) = turn.item_id.as_ref().and_then(|i| self.cuts.get(i)) else {
                continue;
            };
            let (kept, rest) = cut_heard(&turn.text, heard, sent);
            turn.text = kept;
            turn.interrupted = true;
            turn.heard_ms = Some(heard);
            turn.sent_ms = Some(sent);
            turn.unheard_text = Some(rest);
        }
        let r = &mut self.record;
        r.times.ended_at_ms = ended_at_ms;
        r.duration_ms = u64::try_from(ended_at_ms - r.times.stream_started_at_ms).unwrap_or(0);
        r.end_reason = match summary.end_reason {
            // Twilio's `completed` ends a running call through its hang-up signal, which the
            // engine records as a shutdown. A call that had already ended for a reason of its
            // own (the caller hung up, and the callback came during the teardown) keeps it.
            Some(EndReason::Shutdown) | None if self.completed_by_twilio => {
                "twilio_completed".to_owned()
            }
            reason => reason.map_or("unknown", |e| e.as_str()).to_owned(),
        };
        r.end_detail = summary.end_detail.clone();
        r.usage = usage_record(&summary.usage);
        r.cost = CostEstimate::compute(&r.usage, prices);
        r.latency.relay_caller_to_agent = relay[0];
        r.latency.relay_agent_to_caller = relay[1];
        self.record
    }
}

impl CallRecord {
    /// Makes this record (a part resumed after a handover) the whole call's: the earlier
    /// part's turns, tool calls, timeline and counters come first (their times stay relative
    /// to the call's first stream start, this part's are shifted onto it), the start and the
    /// first-audio figures are the earlier part's, usage and cost are summed.
    pub fn continue_from(&mut self, earlier: CallRecord) {
        let offset =
            u64::try_from(self.times.stream_started_at_ms - earlier.times.stream_started_at_ms)
                .unwrap_or(0);
        for turn in &mut self.transcript {
            turn.at_ms += offset;
        }
        for tool in &mut self.tool_calls {
            tool.at_ms += offset;
        }
        for mark in &mut self.timeline.agent_turns {
            mark.at_ms += offset;
        }
        for mark in &mut self.timeline.barge_ins {
            mark.at_ms += offset;
        }
        let mut transcript = earlier.transcript;
        transcript.append(&mut self.transcript);
        self.transcript = transcript;
        let mut tools = earlier.tool_calls;
        tools.append(&mut self.tool_calls);
        self.tool_calls = tools;
        let mut turns = earlier.timeline.agent_turns;
        turns.append(&mut self.timeline.agent_turns);
        self.timeline.agent_turns = turns;
        let mut barge_ins = earlier.timeline.barge_ins;
        barge_ins.append(&mut self.timeline.barge_ins);
        self.timeline.barge_ins = barge_ins;
        self.times.webhook_at_ms = earlier.times.webhook_at_ms.or(self.times.webhook_at_ms);
        self.times.stream_started_at_ms = earlier.times.stream_started_at_ms;
        self.times.agent_ready_at_ms = earlier
            .times
            .agent_ready_at_ms
            .or(self.times.agent_ready_at_ms);
        self.times.first_agent_audio_at_ms = earlier
            .times
            .first_agent_audio_at_ms
            .or(self.times.first_agent_audio_at_ms);
        if earlier.latency.first_audio_ms.is_some() {
            self.latency.first_audio_ms = earlier.latency.first_audio_ms;
        }
        if earlier.latency.agent_connect_ms.is_some() {
            self.latency.agent_connect_ms = earlier.latency.agent_connect_ms;
        }
        self.duration_ms =
            u64::try_from(self.times.ended_at_ms - self.times.stream_started_at_ms).unwrap_or(0);
        self.barge_ins += earlier.barge_ins;
        self.reconnects += earlier.reconnects;
        self.recycles += earlier.recycles;
        self.recycle_gap_ms = self.recycle_gap_ms.max(earlier.recycle_gap_ms);
        self.handovers = self.handovers.max(earlier.handovers);
        let (a, b) = (&mut self.usage, earlier.usage);
        a.input_tokens += b.input_tokens;
        a.output_tokens += b.output_tokens;
        a.input_audio_tokens += b.input_audio_tokens;
        a.output_audio_tokens += b.output_audio_tokens;
        a.billed_seconds = match (a.billed_seconds, b.billed_seconds) {
            (Some(x), Some(y)) => Some(x + y),
            (x, y) => x.or(y),
        };
        self.cost.usd += earlier.cost.usd;
        self.stream_sid = self.stream_sid.take().or(earlier.stream_sid);
        self.transfer_target = self.transfer_target.take().or(earlier.transfer_target);
    }
}

/// The name of a turn's trigger, as records and metrics label it.
pub fn trigger_name(trigger: LatencyTrigger) -> &'static str {
    use LatencyTrigger as T;
    match trigger {
        T::CallerStoppedSpeaking => "caller_stopped_speaking",
        T::Greeting => "greeting",
        T::ToolResults => "tool_results",
        T::Dtmf => "dtmf",
        T::Reprompt => "reprompt",
        T::Resumed => "resumed",
        T::Voicemail => "voicemail",
    }
}

fn usage_record(u: &Usage) -> UsageRecord {
    UsageRecord {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        input_audio_tokens: u.input_audio_tokens,
        output_audio_tokens: u.output_audio_tokens,
        billed_seconds: u.billed_seconds,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn json_or_text(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

/// The transcript as plain text, one line per turn: `[mm:ss.mmm] caller: …`; interrupted
/// agent lines end with ` […]`.
pub fn transcript_text(record: &CallRecord) -> String {
    let mut out = String::new();
    for t in &record.transcript {
        let (m, s, ms) = (t.at_ms / 60_000, t.at_ms / 1000 % 60, t.at_ms % 1000);
        out.push_str(&format!(
            "[{m:02}:{s:02}.{ms:03}] {}: {}",
            t.speaker, t.text
        ));
        if t.interrupted {
            out.push_str(" […]");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_word_boundaries() {
        let text = "Your order shipped yesterday and arrives Friday.";
        assert_eq!(cut_heard(text, 0, 1000), (String::new(), text.to_owned()));
        assert_eq!(
            cut_heard(text, 1000, 1000),
            (text.to_owned(), String::new())
        );
        // 48 chars; half is char 24 ("shipped yesterday|" ends at 25): inside "yesterday".
        assert_eq!(
            cut_heard(text, 500, 1000),
            (
                "Your order shipped".to_owned(),
                "yesterday and arrives Friday.".to_owned()
            )
        );
        // Exactly at the space after "order" (char 10).
        assert_eq!(
            cut_heard("Your order shipped", 10, 18),
            ("Your order".to_owned(), "shipped".to_owned())
        );
        // Multi-byte text never splits a character.
        let (heard, rest) = cut_heard("Grüße aus Köln", 7, 14);
        assert_eq!(format!("{heard} {rest}"), "Grüße aus Köln");
    }

    #[test]
    fn masks_numbers() {
        assert_eq!(mask_number("+447911123456"), "+44********56");
        assert_eq!(mask_number("+1234"), "*****");
        assert_eq!(mask_number("client:alice"), "************");
    }

    #[test]
    fn cost_uses_every_price() {
        let prices = Pricing {
            text_input_per_mtok: 4.0,
            text_output_per_mtok: 16.0,
            audio_input_per_mtok: 32.0,
            audio_output_per_mtok: 64.0,
            live_per_minute: 0.05,
        };
        let usage = UsageRecord {
            input_tokens: 1_500_000,
            output_tokens: 1_250_000,
            input_audio_tokens: 1_000_000,
            output_audio_tokens: 1_000_000,
            billed_seconds: Some(120.0),
        };
        let cost = CostEstimate::compute(&usage, &prices);
        // 0.5M text in ($2) + 0.25M text out ($4) + 1M audio in ($32) + 1M audio out ($64)
        // + 2 minutes ($0.10).
        assert!((cost.usd - 102.10).abs() < 1e-9, "{}", cost.usd);
    }

    #[test]
    fn twilio_completed_is_the_end_reason_only_when_it_ended_the_call() {
        let info = CallerInfo {
            call_id: "CA1".to_owned(),
            stream_id: "MZ1".to_owned(),
            ..CallerInfo::default()
        };
        let context = RecordContext {
            direction: "inbound".to_owned(),
            profile: "default".to_owned(),
            backend: "realtime".to_owned(),
            model: None,
            voice: None,
            mask_numbers: false,
        };
        let prices = Pricing {
            text_input_per_mtok: 0.0,
            text_output_per_mtok: 0.0,
            audio_input_per_mtok: 0.0,
            audio_output_per_mtok: 0.0,
            live_per_minute: 0.0,
        };
        let end = |reason: Option<EndReason>, completed: bool| {
            let mut recorder = Recorder::new(&info, context.clone(), 1_000);
            if completed {
                recorder.completed_by_twilio();
            }
            let summary = CallSummary {
                end_reason: reason,
                ..CallSummary::default()
            };
            recorder
                .finish(&summary, Default::default(), &prices, 2_000)
                .end_reason
        };
        // The callback ended a running call (its hang-up signal: a shutdown to the engine).
        assert_eq!(end(Some(EndReason::Shutdown), true), "twilio_completed");
        // The caller hung up first; the callback came while the call was tearing down.
        assert_eq!(end(Some(EndReason::CallerHungUp), true), "caller_hung_up");
        assert_eq!(end(Some(EndReason::CallerHungUp), false), "caller_hung_up");
        assert_eq!(end(Some(EndReason::Shutdown), false), "shutdown");
    }
}
