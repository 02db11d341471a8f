//! The built-in echo agent: plays back what the caller said once they pause.
//!
//! It exists so a new user can check their Twilio number, tunnel and audio path without an
//! OpenAI key (and without spending anything). It behaves like a real agent as far as the
//! engine can tell:
//!
//! * it hears μ-law 8 kHz and speaks μ-law 8 kHz (the caller's own bytes, passed through);
//! * bridge-core's energy voice-activity detector ([`EnergyVad`]) emits
//!   [`AgentEvent::SpeechStarted`] / [`AgentEvent::SpeechStopped`], so barge-in works on it too
//!   (speak while it plays back and it stops);
//! * each playback is a response (`ResponseStarted`, audio, `AudioDone`, `ResponseDone`);
//! * a [`AgentCommand::CreateResponse`] (the greeting) plays a short two-note tone.
//!
//! Everything happens synchronously inside `start_send`; `poll_recv` hands out the queued
//! events.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use base64::Engine as _;
use bridge_core::agent::{
    AgentCapabilities, AgentCommand, AgentEndpoint, AgentEvent, ResponseStatus,
};
use bridge_core::audio::energy::{EnergyVad, VadConfig, VadEvent};
use bridge_core::audio::tone::Tone;
use bridge_core::caller::{Endpoint, EndpointError};
use bridge_core::format::{AudioFormat, Base64Audio};

use crate::config::EchoConfig;

/// Bytes of μ-law per millisecond.
const BYTES_PER_MS: usize = 8;
/// Audio kept from before the detected onset (which is reported `min_speech_ms` after the
/// speech began), so the first syllable is not clipped.
const PREROLL_MS: usize = 300;
/// Trailing silence kept at the end of a playback.
const TAIL_MS: u64 = 100;
/// Size of each audio event of a playback (the engine cuts them into pieces of at most
/// `agent.mark_interval_ms`).
const CHUNK_MS: usize = 200;

/// The echo agent endpoint.
#[derive(Debug)]
pub struct EchoAgent {
    vad: EnergyVad,
    max_utterance_bytes: usize,
    events: VecDeque<AgentEvent>,
    /// Recent audio while the caller is silent (pre-roll).
    preroll: VecDeque<u8>,
    /// The current utterance (from the pre-roll on), while the caller speaks.
    utterance: Option<Utterance>,
    /// Caller audio received so far, in bytes (the VAD's clock, 8 bytes per ms).
    position: u64,
    next_id: u64,
    closed: bool,
    raw: Vec<u8>,
    /// The task waiting in `poll_recv`, woken when `start_send` produces events.
    waker: Option<Waker>,
}

#[derive(Debug)]
struct Utterance {
    /// Position of the first byte of `audio`.
    start: u64,
    audio: Vec<u8>,
}

impl EchoAgent {
    /// A ready echo agent.
    pub fn new(config: &EchoConfig) -> Self {
        let mut events = VecDeque::new();
        events.push_back(AgentEvent::Ready);
        let vad = EnergyVad::new(VadConfig {
            // The pause that ends an utterance is the detector's hangover.
            hangover_ms: u32::try_from(config.pause.as_millis()).unwrap_or(u32::MAX),
            ..VadConfig::default()
        });
        EchoAgent {
            vad,
            max_utterance_bytes: usize::try_from(config.max_utterance.as_millis())
                .unwrap_or(usize::MAX / BYTES_PER_MS)
                .saturating_mul(BYTES_PER_MS),
            events,
            preroll: VecDeque::with_capacity(PREROLL_MS * BYTES_PER_MS),
            utterance: None,
            position: 0,
            next_id: 0,
            closed: false,
            raw: Vec::with_capacity(320),
            waker: None,
        }
    }

    fn on_audio(&mut self, audio: &Base64Audio) {
        self.raw.clear();
        if base64::engine::general_purpose::STANDARD
            .decode_vec(audio.as_bytes(), &mut self.raw)
            .is_err()
            || self.raw.is_empty()
        {
            return;
        }
        let event = self.vad.push_ulaw(&self.raw);
        self.position += self.raw.len() as u64;

        match &mut self.utterance {
            None => {
                for &b in &self.raw {
                    if self.preroll.len() == PREROLL_MS * BYTES_PER_MS {
                        self.preroll.pop_front();
                    }
                    self.preroll.push_back(b);
                }
                if let Some(VadEvent::SpeechStarted { .. }) = event {
                    let audio: Vec<u8> = self.preroll.drain(..).collect();
                    let start = self.position - audio.len() as u64;
                    self.utterance = Some(Utterance { start, audio });
                    // Playbacks are complete responses as soon as they are emitted (like
                    // Realtime, faster than real time), so stopping one is the engine's
                    // barge-in: it clears the caller's queue.
                    self.events.push_back(AgentEvent::SpeechStarted);
                }
            }
            Some(utterance) => {
                if utterance.audio.len() < self.max_utterance_bytes {
                    let room = self.max_utterance_bytes - utterance.audio.len();
                    utterance
                        .audio
                        .extend_from_slice(&self.raw[..self.raw.len().min(room)]);
                }
                if let Some(VadEvent::SpeechStopped { audio_end_ms }) = event {
                    // Play back the speech with a short tail of the pause.
                    let end = (audio_end_ms + TAIL_MS) * BYTES_PER_MS as u64;
                    let keep =
                        usize::try_from(end.saturating_sub(utterance.start)).unwrap_or(usize::MAX);
                    utterance.audio.truncate(keep);
                    let audio = std::mem::take(&mut utterance.audio);
                    self.utterance = None;
                    self.events.push_back(AgentEvent::SpeechStopped);
                    self.respond(&audio);
                }
            }
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
        if self.utterance.is_some() {
            return;
        }
        let mut raw = Vec::with_capacity(300 * BYTES_PER_MS);
        Tone::with_dbfs(660.0, -14.0, 8000).ulaw_into(150 * BYTES_PER_MS, &mut raw);
        Tone::with_dbfs(880.0, -14.0, 8000).ulaw_into(150 * BYTES_PER_MS, &mut raw);
        self.respond(&raw);
    }
}

impl AgentEndpoint for EchoAgent {
    fn capabilities(&self) -> AgentCapabilities {
        AgentCapabilities {
            input_format: AudioFormat::Mulaw8k,
            output_format: AudioFormat::Mulaw8k,
            truncation: false,
            interrupts_itself: true,
            reports_speech: true,
            continuous_input: false,
            restore_at_start: false,
            final_close: false,
        }
    }
}

#[async_trait]
impl Endpoint for EchoAgent {
    type Event = AgentEvent;
    type Command = AgentCommand;

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AgentEvent, EndpointError>>> {
        // Events only arise from `start_send`, which wakes the waker of a pending poll (the
        // driver polls a side only after its waker fired).
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(Some(Ok(event)));
        }
        if self.closed {
            return Poll::Ready(None);
        }
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(&mut self, command: AgentCommand) -> Result<(), EndpointError> {
        if self.closed {
            return Ok(());
        }
        match command {
            AgentCommand::Audio(audio) => self.on_audio(&audio),
            AgentCommand::CreateResponse { .. } => self.greet(),
            AgentCommand::Truncate { .. }
            | AgentCommand::CancelResponse { .. }
            | AgentCommand::ToolResult { .. }
            | AgentCommand::Restore(_)
            | AgentCommand::AddContext { .. }
            | AgentCommand::Close => {}
        }
        if !self.events.is_empty()
            && let Some(waker) = self.waker.take()
        {
            waker.wake();
        }
        Ok(())
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        Poll::Ready(Ok(()))
    }

    async fn close(&mut self) -> Result<(), EndpointError> {
        self.closed = true;
        self.events.clear();
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
        Ok(())
    }
}
