//! Stateful conversion of base64 audio payloads between two [`AudioFormat`]s.
//!
//! # Pass-through is the point
//!
//! [`Transcoder::new`] returns `Ok(None)` when the two formats are equal. That is the main
//! path (Twilio μ-law 8 kHz ⇄ OpenAI `audio/pcmu`): the bridge then forwards each payload
//! **untouched** — no base64 decode, no re-encode, no copy, no added delay. A transcoder only
//! exists when an endpoint really speaks something else (A-law, or PCM16 at 8, 16 or 24 kHz).
//!
//! # Pipeline
//!
//! base64 → bytes → `i16` samples (G.711 table decode or PCM16 LE) → [`Resampler`] if the rates
//! differ → G.711 encode or PCM16 LE → base64. All intermediate buffers live in the
//! transcoder and are reused, so the steady state allocates only the outgoing payload.
//!
//! The transcoder is a stream: the resampler keeps filter history across payloads (no clicks
//! at frame boundaries) and an odd trailing byte of PCM16 input is carried into the next
//! payload. Call [`Transcoder::reset`] when the stream is cut (for example when buffered agent
//! audio is cleared on barge-in) so stale history does not leak into the next utterance.
//!
//! Sample counts are exact: `n` input samples in total always yield `⌈n·L/M⌉` output samples,
//! so one 20 ms μ-law frame (160 bytes) becomes exactly 480 samples (960 bytes) of PCM16 at
//! 24 kHz, and back. The resampler's group delay is [`Transcoder::delay`] (1.875 ms for
//! 8 ⇄ 24 kHz; zero when only the encoding changes).
//!
//! ```
//! use bridge_core::audio::transcode::Transcoder;
//! use bridge_core::format::{AudioFormat, Base64Audio};
//!
//! // Same format on both sides: no transcoder, forward payloads as they are.
//! assert!(Transcoder::new(AudioFormat::Mulaw8k, AudioFormat::Mulaw8k)?.is_none());
//!
//! // μ-law 8 kHz (Twilio) → PCM16 24 kHz.
//! let mut up = Transcoder::new(AudioFormat::Mulaw8k, AudioFormat::Pcm16 { rate: 24_000 })?
//!     .expect("formats differ");
//! let frame = Base64Audio::encode(&[0xFF; 160]); // 20 ms of μ-law silence
//! let pcm = up.process(&frame)?;
//! assert_eq!(pcm.decoded_len(), 960); // 480 samples × 2 bytes
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::g711;
use super::pcm;
use super::resample::Resampler;
use crate::format::{AudioFormat, Base64Audio, PayloadError};

/// The two formats cannot be converted (a PCM16 rate pair the resampler does not support).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot transcode {from:?} to {to:?}: sample rates must be non-zero and in a ratio L/M \
     with L and M at most 8"
)]
pub struct UnsupportedConversion {
    /// The input format.
    pub from: AudioFormat,
    /// The output format.
    pub to: AudioFormat,
}

/// A stateful converter of base64 payloads from one format to another. See the
/// [module docs](self).
#[derive(Debug)]
pub struct Transcoder {
    from: AudioFormat,
    to: AudioFormat,
    resampler: Option<Resampler>,
    /// Raw input bytes (the carried PCM16 byte, then the decoded payload).
    raw: Vec<u8>,
    /// Input samples.
    samples: Vec<i16>,
    /// Resampled samples.
    resampled: Vec<i16>,
    /// Encoded output bytes.
    encoded: Vec<u8>,
    /// Odd trailing byte of PCM16 input, waiting for its partner.
    carry: Option<u8>,
}

impl Transcoder {
    /// A transcoder from `from` to `to`, or `Ok(None)` when the formats are equal and payloads
    /// should be passed through untouched.
    ///
    /// Fails only for PCM16 rates the [`Resampler`] cannot convert between (zero, or a ratio
    /// whose lowest terms exceed 8, such as 44.1 kHz ⇄ 8 kHz). Every combination of μ-law,
    /// A-law and PCM16 at 8, 16, 24 and 48 kHz is supported.
    pub fn new(
        from: AudioFormat,
        to: AudioFormat,
    ) -> Result<Option<Transcoder>, UnsupportedConversion> {
        if from == to {
            return Ok(None);
        }
        let (from_rate, to_rate) = (from.sample_rate(), to.sample_rate());
        let resampler = if from_rate == to_rate {
            if from_rate == 0 {
                return Err(UnsupportedConversion { from, to });
            }
            None
        } else {
            Some(
                Resampler::new(from_rate, to_rate)
                    .map_err(|_| UnsupportedConversion { from, to })?,
            )
        };
        Ok(Some(Transcoder {
            from,
            to,
            resampler,
            raw: Vec::new(),
            samples: Vec::new(),
            resampled: Vec::new(),
            encoded: Vec::new(),
            carry: None,
        }))
    }

    /// The input format.
    pub fn from_format(&self) -> AudioFormat {
        self.from
    }

    /// The output format.
    pub fn to_format(&self) -> AudioFormat {
        self.to
    }

    /// The delay the conversion adds (the resampler's group delay; zero without resampling).
    pub fn delay(&self) -> Duration {
        self.resampler
            .as_ref()
            .map_or(Duration::ZERO, Resampler::delay)
    }

    /// The resampler in use, if the sample rates differ.
    pub fn resampler(&self) -> Option<&Resampler> {
        self.resampler.as_ref()
    }

    /// Forgets all stream state (filter history, a carried PCM16 byte).
    pub fn reset(&mut self) {
        if let Some(r) = &mut self.resampler {
            r.reset();
        }
        self.carry = None;
    }

    /// Output bytes the next [`process_raw`](Self::process_raw) call yields for
    /// `input_bytes` raw input bytes.
    pub fn output_len(&self, input_bytes: usize) -> usize {
        let input_samples = match self.from {
            AudioFormat::Pcm16 { .. } => (input_bytes + usize::from(self.carry.is_some())) / 2,
            AudioFormat::Mulaw8k | AudioFormat::Alaw8k => input_bytes,
        };
        let output_samples = match &self.resampler {
            Some(r) => r.output_len(input_samples),
            None => input_samples,
        };
        output_samples * self.to.bytes_per_sample() as usize
    }

    /// Converts one base64 payload, returning the converted payload.
    ///
    /// On a base64 error the stream state is left unchanged and the payload is dropped.
    /// Output may be empty (for example a single PCM16 byte, or a few samples when
    /// downsampling); it is still a valid payload.
    pub fn process(&mut self, input: &Base64Audio) -> Result<Base64Audio, PayloadError> {
        self.raw.clear();
        self.raw.extend(self.carry);
        STANDARD
            .decode_vec(input.as_bytes(), &mut self.raw)
            .map_err(|_| PayloadError::NotBase64 {
                len: input.text_len(),
            })?;
        self.carry = None;
        let raw = std::mem::take(&mut self.raw);
        let mut encoded = std::mem::take(&mut self.encoded);
        encoded.clear();
        self.convert(&raw, &mut encoded);
        let output = Base64Audio::encode(&encoded);
        self.raw = raw;
        self.encoded = encoded;
        Ok(output)
    }

    /// Converts raw input bytes, **appending** the raw output bytes to `out`.
    pub fn process_raw(&mut self, input: &[u8], out: &mut Vec<u8>) {
        match self.carry.take() {
            Some(byte) => {
                let mut raw = std::mem::take(&mut self.raw);
                raw.clear();
                raw.push(byte);
                raw.extend_from_slice(input);
                self.convert(&raw, out);
                self.raw = raw;
            }
            None => self.convert(input, out),
        }
    }

    /// Decodes `raw` (any carried byte already prepended), resamples, encodes into `out`.
    fn convert(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        self.samples.clear();
        match self.from {
            AudioFormat::Mulaw8k => g711::decode_ulaw_into(raw, &mut self.samples),
            AudioFormat::Alaw8k => g711::decode_alaw_into(raw, &mut self.samples),
            AudioFormat::Pcm16 { .. } => {
                pcm::le_bytes_to_samples_into(raw, &mut self.samples);
                if raw.len() % 2 == 1 {
                    self.carry = raw.last().copied();
                }
            }
        }
        let samples = match &mut self.resampler {
            Some(r) => {
                self.resampled.clear();
                r.process(&self.samples, &mut self.resampled);
                &self.resampled
            }
            None => &self.samples,
        };
        match self.to {
            AudioFormat::Mulaw8k => g711::encode_ulaw_into(samples, out),
            AudioFormat::Alaw8k => g711::encode_alaw_into(samples, out),
            AudioFormat::Pcm16 { .. } => pcm::samples_to_le_bytes_into(samples, out),
        }
    }
}
