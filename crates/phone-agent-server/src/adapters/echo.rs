//! The built-in echo agent: plays back what the caller said once they pause.
//!
//! It exists so a new user can check their Twilio number, tunnel and audio path without an
//! OpenAI key (and without spending anything). It behaves like a real agent as far as the
//! engine can tell:
//!
//! * it hears μ-law 8 kHz and speaks μ-law 8 kHz (the caller's own bytes, passed through);
//! * an energy voice-activity detector over the decoded samples emits
//!   [`AgentEvent::SpeechStarted`] / [`AgentEvent::SpeechStopped`], so barge-in works on it too
//!   (speak while it plays back and it stops);
//! * each playback is a response (`ResponseStarted`, audio, `AudioDone`, `ResponseDone`);
//! * a [`AgentCommand::CreateResponse`] (the greeting) plays a short two-note tone.
//!
//! Everything happens synchronously inside `feed`; `recv` hands out the queued events.

use std::collections::VecDeque;

use async_trait::async_trait;
use base64::Engine as _;
use bridge_core::agent::{
    AgentCapabilities, AgentCommand, AgentEndpoint, AgentEvent, ResponseStatus,
};
use bridge_core::audio::{g711, tone::Tone};
use bridge_core::caller::EndpointError;
use bridge_core::format::{AudioFormat, Base64Audio};

use crate::config::EchoConfig;

/// Bytes of μ-law per millisecond.
const BYTES_PER_MS: usize = 8;
/// Audio kept from before the speech onset, so the first syllable is not clipped.
const PREROLL_MS: usize = 200;
/// Consecutive loud frames (~20 ms each) that start speech.
const ONSET_FRAMES: u32 = 2;
/// Frame level (dBFS) above which a frame counts as speech.
const SPEECH_DBFS: f64 = -40.0;
/// Trailing silence kept at the end of a playback.
const TAIL_MS: usize = 100;
/// Size of each audio event of a playback (the engine cuts them into 20 ms pieces).
const CHUNK_MS: usize = 200;

/// The echo agent endpoint.
#[derive(Debug)]
pub struct EchoAgent {
    pause_ms: usize,
    max_utterance_bytes: usize,
    events: VecDeque<AgentEvent>,
    /// Recent audio while not speaking (pre-roll).
    preroll: VecDeque<u8>,
    utterance: Vec<u8>,
    speaking: bool,
    loud_frames: u32,
    trailing_silence_ms: usize,
    next_id: u64,
    closed: bool,
    raw: Vec<u8>,
    pcm: Vec<i16>,
}

impl EchoAgent {
    /// A ready echo agent.
    pub fn new(config: &EchoConfig) -> Self {
        let mut events = VecDeque::new();
        events.push_back(AgentEvent::Ready);
        EchoAgent {
            pause_ms: usize::try_from(config.pause.as_millis()).unwrap_or(usize::MAX),
            max_utterance_bytes: usize::try_from(config.max_utterance.as_millis())
                .unwrap_or(usize::MAX / BYTES_PER_MS)
                .saturating_mul(BYTES_PER_MS),
            events,
            preroll: VecDeque::with_capacity(PREROLL_MS * BYTES_PER_MS),
            utterance: Vec::new(),
            speaking: false,
            loud_frames: 0,
            trailing_silence_ms: 0,
            next_id: 0,
            closed: false,
            raw: Vec::with_capacity(320),
            pcm: Vec::with_capacity(320),
        }
    }

    fn on_audio(&mut self, audio: &Base64Audio) {
        self.raw.clear();
        if base64::engine::general_purpose::STANDARD
            .decode_vec(audio.as_bytes(), &mut self.raw)
            .is_err()
        {
            return;
        }
        if self.raw.is_empty() {
            return;
        }
        let frame_ms = self.raw.len() / BYTES_PER_MS;
        self.pcm.clear();
        g711::decode_ulaw_into(&self.raw, &mut self.pcm);
        let loud = level_dbfs(&self.pcm) > SPEECH_DBFS;

        if !self.speaking {
            for &b in &self.raw {
                if self.preroll.len() == PREROLL_MS * BYTES_PER_MS {
                    self.preroll.pop_front();
                }
                self.preroll.push_back(b);
            }
            self.loud_frames = if loud { self.loud_frames + 1 } else { 0 };
            if self.loud_frames >= ONSET_FRAMES {
                self.speaking = true;
                self.trailing_silence_ms = 0;
                self.utterance.clear();
                self.utterance.extend(self.preroll.drain(..));
                // Playbacks are complete responses as soon as they are emitted (like Realtime,
                // faster than real time), so stopping is the engine's barge-in: it clears the
                // caller's queue.
                self.events.push_back(AgentEvent::SpeechStarted);
            }
            return;
        }

        if self.utterance.len() < self.max_utterance_bytes {
            let room = self.max_utterance_bytes - self.utterance.len();
            self.utterance
                .extend_from_slice(&self.raw[..self.raw.len().min(room)]);
        }
        self.trailing_silence_ms = if loud {
            0
        } else {
            self.trailing_silence_ms + frame_ms
        };
        if self.trailing_silence_ms >= self.pause_ms {
            self.speaking = false;
            self.loud_frames = 0;
            self.events.push_back(AgentEvent::SpeechStopped);
            // Play back the speech with a short tail of the pause.
            let trailing = (self.trailing_silence_ms.saturating_sub(TAIL_MS)) * BYTES_PER_MS;
            let keep = self.utterance.len().saturating_sub(trailing);
            self.utterance.truncate(keep);
            let speech = std::mem::take(&mut self.utterance);
            self.respond(&speech);
        }
    }

    /// Emits one response that "speaks" `raw` μ-law audio.
    fn respond(&mut self, raw: &[u8]) {
        if raw.is_empty() {
            return;
        }
        self.next_id += 1;
        let response_id = format!("echo_resp_{}", self.next_id);
        let item_id = format!("echo_item_{}", self.next_id);
        self.events.push_back(AgentEvent::ResponseStarted {
            response_id: response_id.clone(),
        });
        for chunk in raw.chunks(CHUNK_MS * BYTES_PER_MS) {
            self.events.push_back(AgentEvent::Audio {
                audio: Base64Audio::encode(chunk),
                response_id: Some(response_id.clone()),
                item_id: Some(item_id.clone()),
            });
        }
        self.events.push_back(AgentEvent::AudioDone {
            response_id: Some(response_id.clone()),
            item_id: Some(item_id),
        });
        self.events.push_back(AgentEvent::ResponseDone {
            response_id,
            status: ResponseStatus::Completed,
            usage: None,
        });
    }

    /// The greeting: two short notes.
    fn greet(&mut self) {
        if self.speaking {
            return;
        }
        let mut raw = Vec::with_capacity(320 * BYTES_PER_MS);
        Tone::with_dbfs(660.0, -14.0, 8000).ulaw_into(150 * BYTES_PER_MS, &mut raw);
        Tone::with_dbfs(880.0, -14.0, 8000).ulaw_into(150 * BYTES_PER_MS, &mut raw);
        self.respond(&raw);
    }
}

/// RMS level of `samples` in dBFS (−∞ for digital silence, clamped to −120).
fn level_dbfs(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return -120.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len() as f64).sqrt();
    if rms <= 0.0 {
        -120.0
    } else {
        (20.0 * (rms / 32768.0).log10()).max(-120.0)
    }
}

#[async_trait]
impl AgentEndpoint for EchoAgent {
    fn capabilities(&self) -> AgentCapabilities {
        AgentCapabilities {
            input_format: AudioFormat::Mulaw8k,
            output_format: AudioFormat::Mulaw8k,
            truncation: false,
            interrupts_itself: true,
            reports_speech: true,
            continuous_input: false,
        }
    }

    async fn recv(&mut self) -> Option<Result<AgentEvent, EndpointError>> {
        if let Some(event) = self.events.pop_front() {
            return Some(Ok(event));
        }
        if self.closed {
            return None;
        }
        // Events only arise from `feed`, which the driver calls between polls of `recv`; the
        // next poll sees them. Pending here is cancel-safe (nothing is held).
        std::future::pending().await
    }

    async fn feed(&mut self, command: AgentCommand) -> Result<(), EndpointError> {
        if self.closed {
            return Ok(());
        }
        match command {
            AgentCommand::Audio(audio) => self.on_audio(&audio),
            AgentCommand::CreateResponse { .. } => self.greet(),
            AgentCommand::Close => {
                self.closed = true;
                self.events.clear();
            }
            AgentCommand::Truncate { .. }
            | AgentCommand::CancelResponse { .. }
            | AgentCommand::ToolResult { .. }
            | AgentCommand::AddContext { .. } => {}
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), EndpointError> {
        Ok(())
    }
}
