//! The mock's energy VAD, on the input-audio clock (not the wall clock).

/// Input audio clock unit: 1/48 000 s, so that one μ-law/A-law byte (1/8000 s) is 6 ticks and
/// one PCM16@24 kHz byte (half a sample) is 1 tick.
pub(crate) const TICKS_PER_MS: u64 = 48;
const WINDOW_TICKS: u32 = 480; // 10 ms

/// Audio formats of the GA API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Pcm24k,
    Pcmu,
    Pcma,
}

impl Format {
    pub(crate) fn from_session(format: Option<&serde_json::Value>) -> Format {
        match format.and_then(|f| f.get("type")).and_then(|t| t.as_str()) {
            Some("audio/pcmu") => Format::Pcmu,
            Some("audio/pcma") => Format::Pcma,
            _ => Format::Pcm24k,
        }
    }

    /// Clock ticks per byte.
    pub(crate) fn ticks_per_byte(self) -> u64 {
        match self {
            Format::Pcm24k => 1,
            Format::Pcmu | Format::Pcma => 6,
        }
    }

    /// Whole milliseconds of audio in `bytes` (floor).
    pub(crate) fn ms(self, bytes: usize) -> u64 {
        bytes as u64 * self.ticks_per_byte() / TICKS_PER_MS
    }

    /// Converts μ-law bytes to this format.
    pub(crate) fn encode_mulaw(self, mulaw: &[u8]) -> Vec<u8> {
        match self {
            Format::Pcmu => mulaw.to_vec(),
            Format::Pcma => mulaw
                .iter()
                .map(|&b| crate::audio::alaw_encode(crate::audio::decode(b)))
                .collect(),
            Format::Pcm24k => {
                let s = crate::audio::decode_all(mulaw);
                crate::audio::resample(&s, 8000, 24000)
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect()
            }
        }
    }
}

/// VAD parameters derived from the session's `turn_detection`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct VadParams {
    pub(crate) rms_threshold: f64,
    pub(crate) silence_ms: u64,
    pub(crate) prefix_ms: u64,
    pub(crate) onset_windows: u32,
}

/// A VAD decision, with its position on the input clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VadEvent {
    /// Speech began at this tick (before prefix padding).
    Started { onset_tick: u64 },
    /// Speech ended; `tick` is where the trailing silence reached `silence_ms`.
    Stopped { tick: u64 },
}

#[derive(Debug, Default)]
pub(crate) struct Vad {
    sumsq: f64,
    samples: u32,
    window_ticks: u32,
    carry: Option<u8>,
    speech_windows: u32,
    silence_ms: u64,
    pub(crate) speaking: bool,
}

impl Vad {
    /// Forgets a partial window and the speaking state (format change, buffer clear).
    pub(crate) fn reset(&mut self) {
        *self = Vad::default();
    }

    /// Feeds `bytes` that start at clock tick `start_tick`.
    pub(crate) fn feed(
        &mut self,
        format: Format,
        bytes: &[u8],
        start_tick: u64,
        params: &VadParams,
        out: &mut Vec<VadEvent>,
    ) {
        let mut tick = start_tick;
        let mut sample = |s: i16, ticks: u32, tick_after: u64, this: &mut Vad| {
            let v = f64::from(s);
            this.sumsq += v * v;
            this.samples += 1;
            this.window_ticks += ticks;
            if this.window_ticks >= WINDOW_TICKS {
                this.end_window(tick_after, params, out);
            }
        };
        match format {
            Format::Pcmu | Format::Pcma => {
                for &b in bytes {
                    tick += 6;
                    let s = if format == Format::Pcmu {
                        crate::audio::decode(b)
                    } else {
                        crate::audio::alaw_decode(b)
                    };
                    sample(s, 6, tick, self);
                }
            }
            Format::Pcm24k => {
                for &b in bytes {
                    tick += 1;
                    match self.carry.take() {
                        None => self.carry = Some(b),
                        Some(lo) => sample(i16::from_le_bytes([lo, b]), 2, tick, self),
                    }
                }
            }
        }
    }

    fn end_window(&mut self, tick: u64, params: &VadParams, out: &mut Vec<VadEvent>) {
        let rms = (self.sumsq / f64::from(self.samples.max(1))).sqrt();
        self.sumsq = 0.0;
        self.samples = 0;
        self.window_ticks = 0;
        let energetic = rms >= params.rms_threshold;
        if !self.speaking {
            if energetic {
                self.speech_windows += 1;
                if self.speech_windows >= params.onset_windows.max(1) {
                    self.speaking = true;
                    self.silence_ms = 0;
                    let onset = tick
                        .saturating_sub(u64::from(self.speech_windows) * u64::from(WINDOW_TICKS));
                    self.speech_windows = 0;
                    out.push(VadEvent::Started { onset_tick: onset });
                }
            } else {
                self.speech_windows = 0;
            }
        } else if energetic {
            self.silence_ms = 0;
        } else {
            self.silence_ms += u64::from(WINDOW_TICKS) / TICKS_PER_MS;
            if self.silence_ms >= params.silence_ms {
                self.speaking = false;
                self.silence_ms = 0;
                out.push(VadEvent::Stopped { tick });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio;

    fn params() -> VadParams {
        VadParams {
            rms_threshold: 1000.0,
            silence_ms: 200,
            prefix_ms: 300,
            onset_windows: 2,
        }
    }

    #[test]
    fn detects_a_burst_on_the_audio_clock() {
        let mut vad = Vad::default();
        let mut out = Vec::new();
        let mut audio = audio::silence(500);
        audio.extend(audio::speech(800));
        audio.extend(audio::silence(1000));
        // Feed in odd-sized pieces; the result must not depend on chunking.
        let mut tick = 0;
        for chunk in audio.chunks(77) {
            vad.feed(Format::Pcmu, chunk, tick, &params(), &mut out);
            tick += chunk.len() as u64 * 6;
        }
        assert_eq!(
            out,
            vec![
                VadEvent::Started {
                    onset_tick: 500 * TICKS_PER_MS
                },
                VadEvent::Stopped {
                    tick: (500 + 800 + 200) * TICKS_PER_MS
                },
            ]
        );
    }

    #[test]
    fn pcm16_input_is_decoded() {
        let mut vad = Vad::default();
        let mut out = Vec::new();
        let pcm = Format::Pcm24k.encode_mulaw(&audio::speech(100));
        vad.feed(Format::Pcm24k, &pcm, 0, &params(), &mut out);
        assert_eq!(out, vec![VadEvent::Started { onset_tick: 0 }]);
        assert_eq!(Format::Pcm24k.ms(pcm.len()), 100);
    }
}
