//! The statistics part of a call: counters that end up in the [`CallSummary`].
//!
//! Audio is counted in samples of its own format (exact, no rounding per frame) and turned into
//! milliseconds only when a summary is made.

use std::time::Duration;

use super::CallSummary;
use crate::agent::Usage;
use crate::format::AudioFormat;

/// Counters of one call. See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Caller audio forwarded to the agent (caller format).
    pub(crate) caller_samples: u64,
    /// Agent audio forwarded to the caller (agent output format).
    pub(crate) agent_samples: u64,
    /// Caller audio dropped from the pre-ready buffer (caller format).
    pub(crate) pre_ready_dropped_samples: u64,
    /// Late agent audio of interrupted responses dropped (agent output format).
    pub(crate) late_dropped_samples: u64,
    pub(crate) barge_ins: u32,
    pub(crate) transcript_turns: u32,
    pub(crate) tool_calls: u32,
    pub(crate) stale_mark_echoes: u32,
    /// Agent sessions reconnected (each replayed the context).
    pub(crate) reconnects: u32,
    /// Agent sessions recycled before their time limit.
    pub(crate) recycles: u32,
    /// Standby sessions for recycling that failed (refused, dropped, or discarded as stale).
    pub(crate) standby_failures: u32,
    /// Caller audio dropped while the agent was reconnecting (caller format).
    pub(crate) gap_dropped_samples: u64,
    /// Conversation entries dropped to keep the replayable context within its bound.
    pub(crate) context_dropped: u64,
    usage: Usage,
}

impl Stats {
    /// Adds a usage report: token counts are summed, billed seconds are as last reported.
    pub(crate) fn add_usage(&mut self, usage: &Usage) {
        let total = &mut self.usage;
        total.input_tokens += usage.input_tokens;
        total.output_tokens += usage.output_tokens;
        total.input_audio_tokens += usage.input_audio_tokens;
        total.output_audio_tokens += usage.output_audio_tokens;
        if usage.billed_seconds.is_some() {
            total.billed_seconds = usage.billed_seconds;
        }
    }

    /// The counters as a summary (the call's identity, duration, end and round trip are the
    /// caller's to fill in).
    pub(crate) fn summary(
        &self,
        caller_format: AudioFormat,
        agent_format: AudioFormat,
        duration: Duration,
    ) -> CallSummary {
        CallSummary {
            duration,
            barge_ins: self.barge_ins,
            usage: self.usage,
            transcript_turns: self.transcript_turns,
            tool_calls: self.tool_calls,
            caller_audio_ms: caller_format.samples_to_ms(self.caller_samples),
            agent_audio_ms: agent_format.samples_to_ms(self.agent_samples),
            pre_ready_dropped_ms: caller_format.samples_to_ms(self.pre_ready_dropped_samples),
            late_audio_dropped_ms: agent_format.samples_to_ms(self.late_dropped_samples),
            reconnects: self.reconnects,
            recycles: self.recycles,
            recycle_standby_failures: self.standby_failures,
            reconnect_dropped_ms: caller_format.samples_to_ms(self.gap_dropped_samples),
            context_dropped: self.context_dropped,
            stale_mark_echoes: self.stale_mark_echoes,
            ..CallSummary::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_become_the_summary() {
        let mut stats = Stats {
            caller_samples: 8000,
            agent_samples: 24_000,
            pre_ready_dropped_samples: 800,
            late_dropped_samples: 1600,
            barge_ins: 2,
            tool_calls: 1,
            ..Stats::default()
        };
        stats.add_usage(&Usage {
            input_tokens: 10,
            billed_seconds: Some(1.5),
            ..Usage::default()
        });
        stats.add_usage(&Usage {
            input_tokens: 5,
            ..Usage::default()
        });
        let s = stats.summary(
            AudioFormat::Mulaw8k,
            AudioFormat::Mulaw8k,
            Duration::from_secs(3),
        );
        assert_eq!(s.caller_audio_ms, 1000);
        assert_eq!(s.agent_audio_ms, 3000);
        assert_eq!(s.pre_ready_dropped_ms, 100);
        assert_eq!(s.late_audio_dropped_ms, 200);
        assert_eq!((s.barge_ins, s.tool_calls), (2, 1));
        assert_eq!(s.usage.input_tokens, 15);
        assert_eq!(s.usage.billed_seconds, Some(1.5));
        assert_eq!(s.duration, Duration::from_secs(3));
    }
}
