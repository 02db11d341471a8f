//! Shared helpers for the engine tests: a fake clock, input builders and a compact, readable
//! rendering of every output so scenarios can assert exact output sequences.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use bridge_core::agent::{
    AgentCapabilities, AgentCommand, AgentEvent, ResponseStatus, Speaker, ToolCallRequest,
};
use bridge_core::caller::{CallerCommand, CallerEvent, CallerInfo, MarkId};
use bridge_core::engine::{Call, CallConfig, CallEvent, Output};
use bridge_core::format::{AudioFormat, Base64Audio};
use bridge_core::tools::{CallAction, ToolOutput};

/// Realtime GA with server VAD and `interrupt_response: true`.
pub const REALTIME: AgentCapabilities = AgentCapabilities {
    input_format: AudioFormat::Mulaw8k,
    output_format: AudioFormat::Mulaw8k,
    truncation: true,
    interrupts_itself: true,
    reports_speech: true,
    continuous_input: false,
    restore_at_start: false,
    final_close: false,
};

/// Realtime GA with `interrupt_response: false` (the engine must cancel).
pub const REALTIME_NO_INTERRUPT: AgentCapabilities = AgentCapabilities {
    interrupts_itself: false,
    ..REALTIME
};

/// GPT-Live.
pub const LIVE: AgentCapabilities = AgentCapabilities {
    input_format: AudioFormat::Mulaw8k,
    output_format: AudioFormat::Mulaw8k,
    truncation: false,
    interrupts_itself: true,
    reports_speech: false,
    continuous_input: true,
    restore_at_start: true,
    final_close: true,
};

/// One input to the machine.
#[derive(Debug, Clone)]
pub enum In {
    Caller(CallerEvent),
    Agent(AgentEvent),
    Connected(AgentCapabilities),
    ConnectFailed(&'static str),
    /// A refusal that is never retried ([`Call::agent_connect_refused`]).
    ConnectRefused(&'static str),
    /// The agent connection was lost ([`Call::agent_lost`]): reason, transient.
    Lost(&'static str, bool),
    /// The standby connection of a recycle opened ([`Call::standby_connected`]).
    StandbyConnected(AgentCapabilities),
    /// Opening the standby failed ([`Call::standby_connect_failed`]): reason, transient.
    StandbyConnectFailed(&'static str, bool),
    /// An event of the standby connection ([`Call::handle_standby`]).
    Standby(AgentEvent),
    /// The standby connection was lost ([`Call::standby_lost`]).
    StandbyLost(&'static str),
    ToolDone(&'static str, ToolOutput),
    /// The result of a transfer ([`Call::action_finished`]).
    ActionDone(Result<(), String>),
    Timeout,
    Shutdown,
}

/// A μ-law payload of `bytes` bytes, every byte `tag` (so traces show which chunk it was).
pub fn ulaw(tag: u8, bytes: usize) -> Base64Audio {
    Base64Audio::encode(&vec![tag; bytes])
}

pub fn started() -> In {
    In::Caller(CallerEvent::Started(CallerInfo {
        call_id: "CA1".into(),
        stream_id: "MZ1".into(),
        account_id: None,
        parameters: vec![],
    }))
}

pub fn caller_audio(tag: u8, bytes: usize) -> In {
    In::Caller(CallerEvent::Audio(ulaw(tag, bytes)))
}

pub fn echo(mark: u64) -> In {
    In::Caller(CallerEvent::MarkPlayed(MarkId(mark)))
}

pub fn dtmf(digit: char) -> In {
    In::Caller(CallerEvent::Dtmf(digit))
}

pub fn hangup() -> In {
    In::Caller(CallerEvent::Hangup)
}

pub fn ready() -> In {
    In::Agent(AgentEvent::Ready)
}

pub fn speech_started() -> In {
    In::Agent(AgentEvent::SpeechStarted)
}

pub fn speech_stopped() -> In {
    In::Agent(AgentEvent::SpeechStopped)
}

pub fn response_started(id: &str) -> In {
    In::Agent(AgentEvent::ResponseStarted {
        response_id: id.into(),
    })
}

pub fn response_done(id: &str, status: ResponseStatus) -> In {
    In::Agent(AgentEvent::ResponseDone {
        response_id: id.into(),
        status,
        usage: None,
    })
}

pub fn agent_audio(response: &str, item: &str, tag: u8, bytes: usize) -> In {
    In::Agent(AgentEvent::Audio {
        audio: ulaw(tag, bytes),
        response_id: Some(response.into()),
        item_id: Some(item.into()),
    })
}

pub fn audio_done(response: &str, item: &str) -> In {
    In::Agent(AgentEvent::AudioDone {
        response_id: Some(response.into()),
        item_id: Some(item.into()),
    })
}

pub fn tool_call(call_id: &str, name: &str, response: Option<&str>) -> In {
    In::Agent(AgentEvent::ToolCall(ToolCallRequest {
        call_id: call_id.into(),
        name: name.into(),
        arguments: "{}".into(),
        response_id: response.map(Into::into),
    }))
}

pub fn agent_error(code: Option<&str>, message: &str) -> In {
    In::Agent(AgentEvent::Error {
        code: code.map(Into::into),
        message: message.into(),
        fatal: false,
    })
}

pub fn transcript(speaker: Speaker, text: &str) -> In {
    In::Agent(AgentEvent::Transcript {
        speaker,
        text: text.into(),
        is_final: true,
        timing: None,
        item_id: None,
    })
}

pub fn tool_done(call_id: &'static str, output: &str, action: Option<CallAction>) -> In {
    In::ToolDone(
        call_id,
        ToolOutput {
            output: output.into(),
            action,
        },
    )
}

/// Config with every timer off, so tests opt into the one they exercise.
pub fn quiet_config() -> CallConfig {
    CallConfig {
        max_duration: None,
        caller_inactivity_timeout: None,
        idle: None,
        agent_connect_timeout: Duration::from_secs(3600),
        // The scripted tests reason in 20 ms pieces, one mark each.
        mark_interval: Duration::from_millis(20),
        ..CallConfig::default()
    }
}

/// A call on a fake clock.
pub struct Scenario {
    pub call: Call,
    pub t0: Instant,
    pub now: Instant,
}

impl Scenario {
    pub fn new(config: CallConfig) -> Self {
        Self::with_format(config, AudioFormat::Mulaw8k)
    }

    pub fn with_format(config: CallConfig, caller_format: AudioFormat) -> Self {
        let t0 = Instant::now();
        Scenario {
            call: Call::new(config, caller_format, t0),
            t0,
            now: t0,
        }
    }

    /// A call whose caller has started and whose agent is ready at t = 0; outputs drained.
    pub fn ready(config: CallConfig, caps: AgentCapabilities) -> Self {
        let mut s = Self::new(config);
        s.step(0, started());
        s.step(0, In::Connected(caps));
        s.step(0, ready());
        s
    }

    /// Feeds one input at `at_ms` after the start and returns the rendered outputs.
    pub fn step(&mut self, at_ms: u64, input: In) -> Vec<String> {
        self.outputs(at_ms, input).iter().map(render).collect()
    }

    /// Like [`Self::step`] but without the observer events.
    pub fn cmds(&mut self, at_ms: u64, input: In) -> Vec<String> {
        self.outputs(at_ms, input)
            .iter()
            .filter(|o| !matches!(o, Output::Event(_)))
            .map(render)
            .collect()
    }

    /// Feeds one input and returns the raw outputs.
    pub fn outputs(&mut self, at_ms: u64, input: In) -> Vec<Output> {
        let now = self.t0 + Duration::from_millis(at_ms);
        assert!(now >= self.now, "scenario time went backwards");
        self.now = now;
        match input {
            In::Caller(e) => self.call.handle_caller(e, now),
            In::Agent(e) => self.call.handle_agent(e, now),
            In::Connected(caps) => self.call.agent_connected(caps, now),
            In::ConnectFailed(reason) => self.call.agent_connect_failed(reason, now),
            In::ConnectRefused(reason) => self.call.agent_connect_refused(reason, now),
            In::Lost(reason, transient) => self.call.agent_lost(reason, transient, now),
            In::StandbyConnected(caps) => self.call.standby_connected(caps, now),
            In::StandbyConnectFailed(reason, transient) => {
                self.call.standby_connect_failed(reason, transient, now)
            }
            In::Standby(e) => self.call.handle_standby(e, now),
            In::StandbyLost(reason) => self.call.standby_lost(reason, now),
            In::ToolDone(id, out) => self.call.tool_finished(id, out, now),
            In::ActionDone(result) => self.call.action_finished(result, now),
            In::Timeout => self.call.handle_timeout(now),
            In::Shutdown => self.call.shutdown(now),
        }
        std::iter::from_fn(|| self.call.poll_output()).collect()
    }

    /// Milliseconds after the start of the next deadline.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.call
            .poll_timeout()
            .map(|t| t.duration_since(self.t0).as_millis() as u64)
    }

    /// Runs a data-driven script: each step's rendered outputs must equal the expectation.
    pub fn check(&mut self, script: &[(u64, In, &[&str])]) {
        for (i, (at, input, expected)) in script.iter().enumerate() {
            let got = self.step(*at, input.clone());
            assert_eq!(
                got, *expected,
                "step {i} at {at} ms ({input:?}) produced unexpected outputs"
            );
        }
    }
}

fn audio_tag(audio: &Base64Audio) -> String {
    let bytes = audio.decode().expect("engine output is valid base64");
    match bytes.first() {
        Some(&first) if bytes.iter().all(|&b| b == first) => {
            format!("{} #{first:02x}", bytes.len())
        }
        _ => format!("{}", bytes.len()),
    }
}

/// One output as a short line.
pub fn render(output: &Output) -> String {
    match output {
        Output::Caller(cmd) => match cmd {
            CallerCommand::Audio(a) => format!("C audio {}", audio_tag(a)),
            CallerCommand::Mark(m) => format!("C mark {}", m.0),
            CallerCommand::Clear => "C clear".into(),
            CallerCommand::Close => "C close".into(),
        },
        Output::Agent(cmd) => format!("A {}", render_agent(cmd)),
        Output::Standby(cmd) => format!("S {}", render_agent(cmd)),
        Output::ConnectStandby { attempt } => format!("connect-standby #{attempt}"),
        Output::DropStandby => "drop-standby".into(),
        Output::SwitchToStandby => "switch-to-standby".into(),
        Output::RunTool(inv) => format!(
            "run {} {} {} for {}",
            inv.call_id, inv.name, inv.arguments, inv.phone_call_id
        ),
        Output::CancelTools => "cancel-tools".into(),
        Output::AgentLost => "agent-lost".into(),
        Output::ConnectAgent { attempt } => format!("connect-agent #{attempt}"),
        Output::Action(CallAction::Hangup) => "action hangup".into(),
        Output::Action(CallAction::Transfer { to }) => format!("action transfer {to}"),
        Output::Event(e) => format!("event {}", render_event(e)),
        Output::Finished(s) => format!("finished {}", s.end_reason.map_or("?", |r| r.as_str())),
    }
}

/// An agent command as a short line (without the side's prefix).
fn render_agent(cmd: &AgentCommand) -> String {
    match cmd {
        AgentCommand::Audio(a) => format!("audio {}", audio_tag(a)),
        AgentCommand::Truncate {
            item_id,
            audio_end_ms,
        } => format!("truncate {item_id} @{audio_end_ms}"),
        AgentCommand::CancelResponse { response_id } => {
            format!("cancel {}", response_id.as_deref().unwrap_or("-"))
        }
        AgentCommand::ToolResult { call_id, output } => {
            format!("tool-result {call_id} {output}")
        }
        AgentCommand::AddContext { text } => format!("context {text:?}"),
        AgentCommand::CreateResponse { instructions } => match instructions {
            Some(i) => format!("respond {i:?}"),
            None => "respond".into(),
        },
        AgentCommand::Restore(item) => format!("restore {item:?}"),
        AgentCommand::Close => "close".into(),
    }
}

fn render_event(e: &CallEvent) -> String {
    match e {
        CallEvent::Started(info) => format!("started {}", info.call_id),
        CallEvent::AgentReady { connect_latency } => {
            format!("agent-ready {}ms", connect_latency.as_millis())
        }
        CallEvent::Transcript { speaker, text, .. } => format!("transcript {speaker:?} {text:?}"),
        CallEvent::ToolStarted { call_id, name, .. } => format!("tool-started {call_id} {name}"),
        CallEvent::ToolDiscarded { call_id, name } => format!("tool-discarded {call_id} {name}"),
        CallEvent::ToolFinished {
            call_id,
            duration,
            action,
            ..
        } => format!(
            "tool-finished {call_id} {}ms{}",
            duration.as_millis(),
            action.as_ref().map_or(String::new(), |a| format!(" {a:?}"))
        ),
        CallEvent::BargeIn(b) => {
            let cuts: Vec<String> = b
                .truncations
                .iter()
                .map(|t| {
                    let confirmed = if t.confirmed_ms == t.played_ms {
                        String::new()
                    } else {
                        format!("(confirmed {})", t.confirmed_ms)
                    };
                    format!(
                        "{}:sent={},played={}{confirmed},end={}",
                        t.item_id.as_deref().unwrap_or("-"),
                        t.sent_ms,
                        t.played_ms,
                        t.audio_end_ms
                            .map_or("none".to_string(), |ms| ms.to_string())
                    )
                })
                .collect();
            format!(
                "barge-in cleared={} [{}]{}",
                b.cleared_marks,
                cuts.join(" "),
                b.cancelled_response
                    .as_ref()
                    .map_or(String::new(), |r| format!(" cancelled={r}"))
            )
        }
        CallEvent::FirstAudio { trigger, latency } => {
            format!("first-audio {trigger:?} {}ms", latency.as_millis())
        }
        CallEvent::Reprompted => "reprompted".into(),
        CallEvent::LeaveMessage { refused } => match refused {
            None => "leave-message".into(),
            Some(reason) => format!("leave-message refused: {reason}"),
        },
        CallEvent::Usage(u) => format!("usage in={} out={}", u.input_tokens, u.output_tokens),
        CallEvent::Action { action, timed_out } => {
            format!(
                "action {action:?}{}",
                if *timed_out { " (timed out)" } else { "" }
            )
        }
        CallEvent::Error {
            source,
            message,
            fatal,
            ..
        } => format!(
            "error {source:?} {message:?}{}",
            if *fatal { " fatal" } else { "" }
        ),
        CallEvent::AgentReconnecting { attempt, reason } => {
            format!("reconnecting #{attempt} {reason:?}")
        }
        CallEvent::AgentReconnected {
            attempts,
            gap,
            restored,
        } => format!(
            "reconnected after {attempts} attempts {}ms restored={restored}",
            gap.as_millis()
        ),
        CallEvent::HandedOver { context, at_pause } => {
            format!("handed-over items={} at_pause={at_pause}", context.len())
        }
        CallEvent::AgentRecycled { gap, restored } => {
            format!("recycled {}ms restored={restored}", gap.as_millis())
        }
        CallEvent::AgentReconnectFailed { attempts, reason } => {
            format!("reconnect-failed after {attempts} {reason:?}")
        }
        CallEvent::Ended(s) => format!("ended {}", s.end_reason.map_or("?", |r| r.as_str())),
    }
}

/// The summary carried by the `Finished` output, if any.
pub fn finished_summary(outputs: &[Output]) -> Option<bridge_core::engine::CallSummary> {
    outputs.iter().find_map(|o| match o {
        Output::Finished(s) => Some((**s).clone()),
        _ => None,
    })
}
