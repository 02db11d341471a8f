//! Sine tones and silence: test signals, comfort tones, and frames for mocks.
//!
//! [`Tone`] is a streaming sine generator: its phase continues across calls, so consecutive
//! frames join without clicks, and it derives every sample from the absolute sample index
//! (no accumulated phase error), so output is identical however it is chunked.
//!
//! ```
//! use bridge_core::audio::tone::{self, Tone};
//! use bridge_core::format::AudioFormat;
//!
//! // 20 ms of a 440 Hz tone at −20 dBFS, as PCM16 at 24 kHz.
//! let mut t = Tone::with_dbfs(440.0, -20.0, 24_000);
//! let mut pcm = Vec::new();
//! t.pcm16_into(480, &mut pcm);
//! assert_eq!(pcm.len(), 480);
//!
//! // A base64 payload of 20 ms of μ-law silence.
//! let silence = tone::silence(AudioFormat::Mulaw8k, 20);
//! assert_eq!(silence.decoded_len(), 160);
//! ```

use super::g711;
use crate::format::{AudioFormat, Base64Audio};

/// A streaming sine generator producing 16-bit samples.
#[derive(Debug, Clone)]
pub struct Tone {
    freq_hz: f64,
    peak: f64,
    sample_rate: u32,
    position: u64,
}

impl Tone {
    /// A sine of `freq_hz` with the given peak amplitude (in 16-bit units; values beyond
    /// ±32767 clip) sampled at `sample_rate` Hz.
    pub fn new(freq_hz: f64, peak: f64, sample_rate: u32) -> Tone {
        Tone {
            freq_hz,
            peak,
            sample_rate,
            position: 0,
        }
    }

    /// A sine whose RMS level is `dbfs` relative to a full-scale square wave (so a full-scale
    /// sine is −3.01 dBFS), matching [`super::energy`]'s levels.
    pub fn with_dbfs(freq_hz: f64, dbfs: f64, sample_rate: u32) -> Tone {
        let peak = 32_768.0 * 10f64.powf(dbfs / 20.0) * std::f64::consts::SQRT_2;
        Tone::new(freq_hz, peak, sample_rate)
    }

    /// The sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The number of samples generated so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next sample (rounded, clamped to the `i16` range; a zero sample rate yields 0).
    pub fn next_sample(&mut self) -> i16 {
        let cycles = (self.freq_hz * self.position as f64 / f64::from(self.sample_rate)).fract();
        self.position += 1;
        let v = (self.peak * (std::f64::consts::TAU * cycles).sin()).round();
        // Float-to-int `as` saturates (and maps NaN to 0), which is the clamp we want.
        v as i16
    }

    /// Fills `out` with the next samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        for s in out {
            *s = self.next_sample();
        }
    }

    /// Appends the next `n` samples to `out`.
    pub fn pcm16_into(&mut self, n: usize, out: &mut Vec<i16>) {
        out.extend((0..n).map(|_| self.next_sample()));
    }

    /// Appends the next `n` samples to `out`, μ-law encoded.
    pub fn ulaw_into(&mut self, n: usize, out: &mut Vec<u8>) {
        out.extend((0..n).map(|_| g711::ulaw_encode(self.next_sample())));
    }

    /// Appends the next `n` samples to `out`, A-law encoded.
    pub fn alaw_into(&mut self, n: usize, out: &mut Vec<u8>) {
        out.extend((0..n).map(|_| g711::alaw_encode(self.next_sample())));
    }

    /// The next `ms` milliseconds in `format` as a base64 payload (the tone's own sample rate
    /// is used for the sample count; build the tone at `format.sample_rate()`).
    pub fn payload(&mut self, format: AudioFormat, ms: u64) -> Base64Audio {
        let n = (ms * u64::from(self.sample_rate) / 1000) as usize;
        let mut raw = Vec::with_capacity(n * format.bytes_per_sample() as usize);
        match format {
            AudioFormat::Mulaw8k => self.ulaw_into(n, &mut raw),
            AudioFormat::Alaw8k => self.alaw_into(n, &mut raw),
            AudioFormat::Pcm16 { .. } => {
                for _ in 0..n {
                    raw.extend_from_slice(&self.next_sample().to_le_bytes());
                }
            }
        }
        Base64Audio::encode(&raw)
    }
}

/// Raw bytes of `ms` milliseconds of digital silence in `format` (μ-law `0xFF`, A-law `0xD5`,
/// PCM16 zeros).
pub fn silence_bytes(format: AudioFormat, ms: u64) -> Vec<u8> {
    let samples = format.ms_to_samples(ms) as usize;
    match format.silence_byte() {
        Some(byte) => vec![byte; samples],
        None => vec![0; samples * format.bytes_per_sample() as usize],
    }
}

/// A base64 payload of `ms` milliseconds of digital silence in `format`.
pub fn silence(format: AudioFormat, ms: u64) -> Base64Audio {
    Base64Audio::encode(&silence_bytes(format, ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_does_not_change_the_signal() {
        let mut a = Tone::new(1234.5, 20_000.0, 8_000);
        let mut b = a.clone();
        let mut whole = Vec::new();
        a.pcm16_into(500, &mut whole);
        let mut parts = Vec::new();
        for n in [1, 7, 160, 332] {
            b.pcm16_into(n, &mut parts);
        }
        assert_eq!(whole, parts);
        assert_eq!(b.position(), 500);
    }

    #[test]
    fn peak_and_level() {
        let mut t = Tone::new(1000.0, 10_000.0, 8_000);
        let mut s = vec![0i16; 8];
        t.fill(&mut s);
        // 1 kHz at 8 kHz: sin(k·π/4) × 10 000.
        assert_eq!(s, [0, 7071, 10_000, 7071, 0, -7071, -10_000, -7071]);
        let full = Tone::with_dbfs(1000.0, -3.0103, 8_000);
        assert!((full.peak - 32_768.0).abs() < 1.0);
        let mut loud = Tone::new(50.0, 1e9, 8_000);
        let mut out = Vec::new();
        loud.pcm16_into(160, &mut out);
        assert!(out.contains(&i16::MAX) && out.contains(&i16::MIN));
    }

    #[test]
    fn silence_in_every_format() {
        assert_eq!(silence_bytes(AudioFormat::Mulaw8k, 20), vec![0xFF; 160]);
        assert_eq!(silence_bytes(AudioFormat::Alaw8k, 10), vec![0xD5; 80]);
        assert_eq!(
            silence_bytes(AudioFormat::Pcm16 { rate: 24_000 }, 20),
            vec![0; 960]
        );
        assert_eq!(
            silence(AudioFormat::Pcm16 { rate: 16_000 }, 20).decoded_len(),
            640
        );
        let mut t = Tone::new(440.0, 1000.0, 24_000);
        assert_eq!(
            t.payload(AudioFormat::Pcm16 { rate: 24_000 }, 20)
                .decoded_len(),
            960
        );
        let mut t = Tone::new(440.0, 1000.0, 8_000);
        assert_eq!(t.payload(AudioFormat::Alaw8k, 20).decoded_len(), 160);
    }
}
