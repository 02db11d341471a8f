//! What the mock agent says: scripted responses.

use std::collections::VecDeque;
use std::time::Duration;

/// How fast the mock sends a response's audio deltas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Everything at once, with no waits between deltas.
    Burst,
    /// `factor` × real time: with `Speed(4.0)` one second of audio is sent over 250 ms, like
    /// the real service, which generates audio faster than it is played. Values ≤ 0 behave
    /// like [`Pacing::Burst`].
    Speed(f64),
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing::Speed(4.0)
    }
}

/// Audio of a scripted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAudio {
    /// These exact μ-law bytes (converted to the session's output format if that is not
    /// `audio/pcmu`).
    Mulaw(Vec<u8>),
    /// An identifiable tone of this many milliseconds: [`crate::audio::agent_tone`] with first
    /// stamp id `response_number · 65536 + output_index · 4096` (`response_number` counts the
    /// session's responses from 1).
    Tone {
        /// Duration in milliseconds.
        ms: u32,
    },
}

/// One output item of a scripted response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputScript {
    /// An assistant audio message with its transcript.
    Message {
        /// The audio.
        audio: AgentAudio,
        /// The transcript, streamed word by word alongside the audio.
        transcript: String,
    },
    /// A function call.
    FunctionCall {
        /// Function name.
        name: String,
        /// `call_id`; generated (`call_…`) when `None`.
        call_id: Option<String>,
        /// Arguments (JSON text), streamed in a few deltas.
        arguments: String,
    },
}

/// A fault injected while a response streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseFault {
    /// Drop the TCP connection (no close frame) once this many audio deltas of the response
    /// have been sent (0 = before the first delta).
    DropAfterDeltas(usize),
    /// Send a close frame with this code once this many audio deltas have been sent.
    CloseAfterDeltas(usize, u16),
    /// Send an `error` event once this many audio deltas have been sent, then carry on.
    ErrorAfterDeltas {
        /// Number of deltas sent before the error.
        after: usize,
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
    },
    /// End the response with `status: "failed"` once this many audio deltas have been sent.
    FailAfterDeltas(usize),
    /// Stop sending anything on this session once this many audio deltas have been sent (a
    /// hung agent): the connection stays open and client events are still read and recorded,
    /// but no server event is sent any more.
    StallAfterDeltas(usize),
}

/// One scripted response: its output items, and optionally pacing and faults.
///
/// ```
/// use testkit::openai::ResponseScript;
/// let greeting = ResponseScript::say("Thanks for calling Acme, how can I help?", 1500);
/// let hang_up = ResponseScript::say("Goodbye!", 600)
///     .then_call("end_call", r#"{"reason":"caller said bye"}"#);
/// assert_eq!(greeting.outputs().len(), 1);
/// assert_eq!(hang_up.outputs().len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseScript {
    pub(crate) outputs: Vec<OutputScript>,
    pub(crate) pacing: Option<Pacing>,
    pub(crate) first_delta_delay: Option<Duration>,
    pub(crate) faults: Vec<ResponseFault>,
}

impl ResponseScript {
    /// A response with no output items.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A spoken message: `ms` milliseconds of identifiable tone ([`AgentAudio::Tone`]) with
    /// `transcript`.
    pub fn say(transcript: &str, ms: u32) -> Self {
        Self::empty().then_say(transcript, ms)
    }

    /// A spoken message with these exact μ-law bytes.
    pub fn say_audio(transcript: &str, mulaw: Vec<u8>) -> Self {
        Self::empty().then_say_audio(transcript, mulaw)
    }

    /// A function call with `arguments` (JSON text).
    pub fn function_call(name: &str, arguments: &str) -> Self {
        Self::empty().then_call(name, arguments)
    }

    /// Adds a spoken message of `ms` milliseconds of tone.
    pub fn then_say(mut self, transcript: &str, ms: u32) -> Self {
        self.outputs.push(OutputScript::Message {
            audio: AgentAudio::Tone { ms },
            transcript: transcript.to_string(),
        });
        self
    }

    /// Adds a spoken message with these exact μ-law bytes.
    pub fn then_say_audio(mut self, transcript: &str, mulaw: Vec<u8>) -> Self {
        self.outputs.push(OutputScript::Message {
            audio: AgentAudio::Mulaw(mulaw),
            transcript: transcript.to_string(),
        });
        self
    }

    /// Adds a function call.
    pub fn then_call(mut self, name: &str, arguments: &str) -> Self {
        self.outputs.push(OutputScript::FunctionCall {
            name: name.to_string(),
            call_id: None,
            arguments: arguments.to_string(),
        });
        self
    }

    /// Sets the `call_id` of the last function call added.
    pub fn call_id(mut self, call_id: &str) -> Self {
        if let Some(OutputScript::FunctionCall { call_id: id, .. }) = self
            .outputs
            .iter_mut()
            .rev()
            .find(|o| matches!(o, OutputScript::FunctionCall { .. }))
        {
            *id = Some(call_id.to_string());
        }
        self
    }

    /// Overrides the mock's pacing for this response.
    pub fn pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = Some(pacing);
        self
    }

    /// Overrides the delay between `response.created` and the first output.
    pub fn first_delta_delay(mut self, delay: Duration) -> Self {
        self.first_delta_delay = Some(delay);
        self
    }

    /// Adds a fault.
    pub fn fault(mut self, fault: ResponseFault) -> Self {
        self.faults.push(fault);
        self
    }

    /// The output items.
    pub fn outputs(&self) -> &[OutputScript] {
        &self.outputs
    }
}

/// The responses a session plays, in order, and what it plays once they run out.
///
/// ```
/// use testkit::openai::{ResponseScript, Script};
/// let script = Script::new()
///     .then(ResponseScript::say("Hello, Acme here.", 1200))
///     .then(ResponseScript::say("Sure, one moment.", 800))
///     .fallback(ResponseScript::say("Anything else?", 500));
/// assert_eq!(script.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub(crate) responses: VecDeque<ResponseScript>,
    pub(crate) fallback: Option<ResponseScript>,
}

impl Default for Script {
    /// No scripted responses; every response is the default fallback (one second of tone,
    /// transcript "This is the mock agent.").
    fn default() -> Self {
        Self {
            responses: VecDeque::new(),
            fallback: Some(ResponseScript::say("This is the mock agent.", 1000)),
        }
    }
}

impl Script {
    /// The default script (see [`Script::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a response.
    pub fn then(mut self, response: ResponseScript) -> Self {
        self.responses.push_back(response);
        self
    }

    /// Sets the response played once the scripted ones are used up.
    pub fn fallback(mut self, response: ResponseScript) -> Self {
        self.fallback = Some(response);
        self
    }

    /// Once the scripted responses are used up, respond with no output items.
    pub fn no_fallback(mut self) -> Self {
        self.fallback = None;
        self
    }

    /// Number of scripted (non-fallback) responses left.
    pub fn len(&self) -> usize {
        self.responses.len()
    }

    /// Whether no scripted responses are left.
    pub fn is_empty(&self) -> bool {
        self.responses.is_empty()
    }

    pub(crate) fn next_response(&mut self) -> ResponseScript {
        self.responses
            .pop_front()
            .or_else(|| self.fallback.clone())
            .unwrap_or_default()
    }
}
