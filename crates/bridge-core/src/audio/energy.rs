//! Frame levels (dBFS) and a small energy-based voice-activity detector.
//!
//! Levels are RMS relative to full scale: `10·log10(mean(x²) / 32768²)`, so a full-scale
//! square wave is 0 dBFS and a full-scale sine −3.01 dBFS. Digital silence and empty frames
//! report [`DBFS_FLOOR`] instead of −∞. μ-law and A-law frames are metered straight from the
//! codes through 256-entry tables of squared magnitudes ([`ULAW_SQUARED`], [`ALAW_SQUARED`]):
//! one lookup and one add per sample, no decode pass.
//!
//! [`EnergyVad`] turns per-frame levels into `SpeechStarted` / `SpeechStopped` transitions
//! with a start threshold, hysteresis, a minimum speech duration (rejects clicks) and a
//! hangover (bridges pauses between words). It is what the built-in echo agent and the test
//! kit's mock agent use to notice a caller talking. It is an energy detector, not a speech
//! classifier: loud noise counts as speech, and it does not adapt to the noise floor.
//!
//! ```
//! use bridge_core::audio::energy::{self, EnergyVad, VadConfig, VadEvent};
//! use bridge_core::audio::tone::Tone;
//!
//! let silence = [0xFFu8; 160]; // 20 ms of μ-law silence
//! let mut speech = Vec::new();
//! Tone::with_dbfs(300.0, -20.0, 8_000).ulaw_into(160, &mut speech);
//! assert!((energy::ulaw_dbfs(&speech) + 20.0).abs() < 0.5);
//!
//! let mut vad = EnergyVad::new(VadConfig { min_speech_ms: 40, hangover_ms: 100, ..VadConfig::default() });
//! assert_eq!(vad.push_ulaw(&silence), None);
//! assert_eq!(vad.push_ulaw(&speech), None); // 20 ms of speech: not yet
//! assert_eq!(vad.push_ulaw(&speech), Some(VadEvent::SpeechStarted { audio_start_ms: 20 }));
//! for _ in 0..4 {
//!     assert_eq!(vad.push_ulaw(&silence), None); // still in the hangover
//! }
//! assert_eq!(vad.push_ulaw(&silence), Some(VadEvent::SpeechStopped { audio_end_ms: 60 }));
//! ```

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::g711::{ALAW_TO_LINEAR, ULAW_TO_LINEAR};
use crate::format::{AudioFormat, Base64Audio, PayloadError};

/// The level reported for digital silence and empty frames, in dBFS.
pub const DBFS_FLOOR: f32 = -100.0;

/// Squared magnitude of each μ-law code's linear value (fits `u32`: at most 32124²).
pub const ULAW_SQUARED: [u32; 256] = squares(&ULAW_TO_LINEAR);
/// Squared magnitude of each A-law code's linear value (at most 32256²).
pub const ALAW_SQUARED: [u32; 256] = squares(&ALAW_TO_LINEAR);

const fn squares(linear: &[i16; 256]) -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let v = linear[i] as i32;
        table[i] = (v * v) as u32;
        i += 1;
    }
    table
}

/// Sum of squared sample values of a μ-law frame.
pub fn ulaw_energy(frame: &[u8]) -> u64 {
    frame
        .iter()
        .map(|&c| u64::from(ULAW_SQUARED[usize::from(c)]))
        .sum()
}

/// Sum of squared sample values of an A-law frame.
pub fn alaw_energy(frame: &[u8]) -> u64 {
    frame
        .iter()
        .map(|&c| u64::from(ALAW_SQUARED[usize::from(c)]))
        .sum()
}

/// Sum of squared sample values of PCM16 samples.
pub fn pcm16_energy(samples: &[i16]) -> u64 {
    samples
        .iter()
        .map(|&s| (i64::from(s) * i64::from(s)) as u64)
        .sum()
}

/// RMS level in dBFS of `samples` samples whose squares sum to `energy` (floored at
/// [`DBFS_FLOOR`]).
pub fn dbfs(energy: u64, samples: usize) -> f32 {
    if energy == 0 || samples == 0 {
        return DBFS_FLOOR;
    }
    let mean_square = energy as f64 / samples as f64;
    let level = 10.0 * (mean_square / (32_768.0 * 32_768.0)).log10();
    (level as f32).max(DBFS_FLOOR)
}

/// RMS level of a μ-law frame in dBFS.
pub fn ulaw_dbfs(frame: &[u8]) -> f32 {
    dbfs(ulaw_energy(frame), frame.len())
}

/// RMS level of an A-law frame in dBFS.
pub fn alaw_dbfs(frame: &[u8]) -> f32 {
    dbfs(alaw_energy(frame), frame.len())
}

/// RMS level of PCM16 samples in dBFS.
pub fn pcm16_dbfs(samples: &[i16]) -> f32 {
    dbfs(pcm16_energy(samples), samples.len())
}

/// Settings of an [`EnergyVad`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// A frame at or above this level (dBFS) counts as speech while silent.
    pub threshold_dbfs: f32,
    /// While speaking, a frame counts as silence only below `threshold_dbfs − hysteresis_db`.
    pub hysteresis_db: f32,
    /// Speech must last this long (ms of audio) before `SpeechStarted` is reported.
    pub min_speech_ms: u32,
    /// Silence must last this long (ms of audio) before `SpeechStopped` is reported.
    pub hangover_ms: u32,
}

impl Default for VadConfig {
    /// −40 dBFS, 4 dB hysteresis, 60 ms minimum speech, 500 ms hangover: catches normal
    /// telephone speech (active level around −25 dBFS) over a quiet line.
    fn default() -> Self {
        VadConfig {
            threshold_dbfs: -40.0,
            hysteresis_db: 4.0,
            min_speech_ms: 60,
            hangover_ms: 500,
        }
    }
}

/// A transition reported by [`EnergyVad`]. Positions are milliseconds of audio since the
/// detector started (or was reset), like OpenAI's `audio_start_ms` / `audio_end_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VadEvent {
    /// Speech began at `audio_start_ms` (the start of the first loud frame); reported
    /// `min_speech_ms` later.
    SpeechStarted {
        /// Where speech began, in ms of audio.
        audio_start_ms: u64,
    },
    /// Speech ended at `audio_end_ms` (the start of the first quiet frame); reported
    /// `hangover_ms` later.
    SpeechStopped {
        /// Where speech ended, in ms of audio.
        audio_end_ms: u64,
    },
}

/// An energy voice-activity detector fed frame by frame. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct EnergyVad {
    config: VadConfig,
    speaking: bool,
    /// Audio processed so far, ns.
    position_ns: u64,
    /// Length and start of the current run of frames that argue for a state change, ns.
    run_ns: u64,
    run_start_ns: u64,
    /// Scratch buffer for base64 input.
    scratch: Vec<u8>,
}

impl EnergyVad {
    /// A detector in the silent state at position 0.
    pub fn new(config: VadConfig) -> EnergyVad {
        EnergyVad {
            config,
            speaking: false,
            position_ns: 0,
            run_ns: 0,
            run_start_ns: 0,
            scratch: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &VadConfig {
        &self.config
    }

    /// Whether the detector is in the speaking state.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Milliseconds of audio processed since start or [`reset`](Self::reset).
    pub fn position_ms(&self) -> u64 {
        self.position_ns / 1_000_000
    }

    /// Back to silence at position 0.
    pub fn reset(&mut self) {
        self.speaking = false;
        self.position_ns = 0;
        self.run_ns = 0;
        self.run_start_ns = 0;
    }

    /// Feeds one μ-law frame (8 kHz).
    pub fn push_ulaw(&mut self, frame: &[u8]) -> Option<VadEvent> {
        self.push_level(ulaw_dbfs(frame), audio_duration(frame.len(), 8_000))
    }

    /// Feeds one A-law frame (8 kHz).
    pub fn push_alaw(&mut self, frame: &[u8]) -> Option<VadEvent> {
        self.push_level(alaw_dbfs(frame), audio_duration(frame.len(), 8_000))
    }

    /// Feeds one frame of PCM16 samples at `sample_rate` Hz.
    pub fn push_pcm16(&mut self, samples: &[i16], sample_rate: u32) -> Option<VadEvent> {
        self.push_level(
            pcm16_dbfs(samples),
            audio_duration(samples.len(), sample_rate),
        )
    }

    /// Feeds one base64 payload of `format` (decoded into a reused internal buffer).
    pub fn push_base64(
        &mut self,
        format: AudioFormat,
        payload: &Base64Audio,
    ) -> Result<Option<VadEvent>, PayloadError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let decoded = STANDARD.decode_vec(payload.as_bytes(), &mut scratch);
        let result = match decoded {
            Err(_) => Err(PayloadError::NotBase64 {
                len: payload.text_len(),
            }),
            Ok(()) => Ok(match format {
                AudioFormat::Mulaw8k => self.push_ulaw(&scratch),
                AudioFormat::Alaw8k => self.push_alaw(&scratch),
                AudioFormat::Pcm16 { rate } => {
                    let energy: u64 = scratch
                        .chunks_exact(2)
                        .map(|p| {
                            let s = i64::from(i16::from_le_bytes([p[0], p[1]]));
                            (s * s) as u64
                        })
                        .sum();
                    let n = scratch.len() / 2;
                    self.push_level(dbfs(energy, n), audio_duration(n, rate))
                }
            }),
        };
        self.scratch = scratch;
        result
    }

    /// Feeds the level of a frame lasting `duration` (of audio). Zero-length frames are
    /// ignored.
    pub fn push_level(&mut self, level_dbfs: f32, duration: Duration) -> Option<VadEvent> {
        let duration_ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        if duration_ns == 0 {
            return None;
        }
        let start = self.position_ns;
        self.position_ns = self.position_ns.saturating_add(duration_ns);
        let against = if self.speaking {
            level_dbfs < self.config.threshold_dbfs - self.config.hysteresis_db
        } else {
            level_dbfs >= self.config.threshold_dbfs
        };
        if !against {
            self.run_ns = 0;
            return None;
        }
        if self.run_ns == 0 {
            self.run_start_ns = start;
        }
        self.run_ns = self.run_ns.saturating_add(duration_ns);
        let needed_ms = if self.speaking {
            self.config.hangover_ms
        } else {
            self.config.min_speech_ms
        };
        if self.run_ns < u64::from(needed_ms) * 1_000_000 {
            return None;
        }
        self.speaking = !self.speaking;
        self.run_ns = 0;
        let at_ms = self.run_start_ns / 1_000_000;
        Some(if self.speaking {
            VadEvent::SpeechStarted {
                audio_start_ms: at_ms,
            }
        } else {
            VadEvent::SpeechStopped {
                audio_end_ms: at_ms,
            }
        })
    }
}

/// Duration of `samples` samples at `rate` Hz (zero for a zero rate), to the nanosecond.
fn audio_duration(samples: usize, rate: u32) -> Duration {
    if rate == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos((samples as u64).saturating_mul(1_000_000_000) / u64::from(rate))
}
