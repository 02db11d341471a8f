//! Test audio: G.711 codecs, deterministic tones, frame stamps, WAV files and `espeak-ng`.
//!
//! Everything here produces **8 kHz G.711 μ-law** bytes (Twilio's `audio/x-mulaw`, OpenAI's
//! `audio/pcmu`): 1 byte per sample, [`BYTES_PER_MS`] bytes per millisecond, [`FRAME_BYTES`]
//! bytes per 20 ms Twilio frame.
//!
//! * [`tone`], [`silence`], [`speech`] and the [`CallerAudio`] builder make caller audio that
//!   does (or does not) trigger an energy-based VAD;
//! * [`stamp`], [`read_stamp`] and [`find_stamps`] embed and recover a 32-bit id in a frame
//!   (used to follow frames end to end: payloads pass through the bridge untouched);
//! * [`agent_tone`] is the identifiable audio the mock OpenAI server speaks: every 20 ms frame
//!   carries a stamp, so a test can tell exactly which agent bytes a caller heard;
//! * [`wav_to_mulaw`] and [`espeak`] turn real speech into μ-law.
//!
//! The codec is the classic G.711 μ-law encoder (bias 0x84, clip 32635); the resampler is
//! deliberately simple (box-filter decimation, linear interpolation) — good enough for test
//! audio, not for production.
//!
//! ```
//! use testkit::audio::{self, CallerAudio};
//!
//! // 400 ms silence, 800 ms of energetic "speech", 1.5 s silence.
//! let caller = CallerAudio::new().silence(400).speech(800).silence(1500);
//! assert_eq!(caller.duration_ms(), 2700);
//!
//! // Frame ids survive any pass-through of the bytes.
//! let mut frame = audio::silence(20);
//! audio::stamp(&mut frame, 42);
//! assert_eq!(audio::read_stamp(&frame), Some(42));
//! assert!(audio::rms(&audio::speech(20)) > audio::rms(&frame) * 10.0);
//! ```

use std::path::Path;

/// μ-law code for silence (positive zero).
pub const SILENCE: u8 = 0xFF;
/// μ-law bytes per millisecond of 8 kHz audio.
pub const BYTES_PER_MS: usize = 8;
/// Bytes in one 20 ms Twilio media frame.
pub const FRAME_BYTES: usize = 160;
/// Duration of one Twilio media frame in milliseconds.
pub const FRAME_MS: u64 = 20;
/// Number of bytes [`stamp`] writes at the start of a frame.
pub const STAMP_LEN: usize = 13;

/// Errors from loading or synthesising audio.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The bytes are not a RIFF/WAVE file.
    #[error("not a WAV file: {0}")]
    NotWav(&'static str),
    /// A WAV encoding this module does not convert.
    #[error("unsupported WAV encoding: format tag {format}, {bits} bits per sample")]
    UnsupportedWav {
        /// WAV format tag (1 = PCM, 7 = μ-law, ...).
        format: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// Reading a file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `espeak-ng` is not installed (tests should skip, not fail).
    #[error("espeak-ng is not installed")]
    EspeakNotInstalled,
    /// `espeak-ng` ran but failed.
    #[error("espeak-ng failed: {0}")]
    Espeak(String),
}

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// Encodes one 16-bit linear sample as G.711 μ-law (classic encoder, PROTOCOLS.md §8.2).
pub fn encode(sample: i16) -> u8 {
    let sample = i32::from(sample);
    let sign: i32 = if sample < 0 { 0x80 } else { 0 };
    let mut mag = sample.abs().min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && mag & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    mag >>= exponent + 3;
    let mantissa = mag & 0x0F;
    // The value fits in 8 bits: sign (0x80) | exponent (0..=7) << 4 | mantissa (0..=15).
    !((sign | (exponent << 4) | mantissa) as u8)
}

const fn decode_const(code: u8) -> i16 {
    let c = !code;
    let sign = c & 0x80;
    let exponent = (c >> 4) & 7;
    let mantissa = c & 0x0F;
    let mag = ((((mantissa as i32) << 3) + BIAS) << exponent) - BIAS;
    if sign != 0 { -mag as i16 } else { mag as i16 }
}

const fn build_decode_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = decode_const(i as u8);
        i += 1;
    }
    table
}

static DECODE: [i16; 256] = build_decode_table();

/// Decodes one μ-law byte to a 16-bit linear sample.
pub fn decode(code: u8) -> i16 {
    DECODE[usize::from(code)]
}

/// Encodes 16-bit samples as μ-law bytes.
pub fn encode_all(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| encode(s)).collect()
}

/// Decodes μ-law bytes to 16-bit samples.
pub fn decode_all(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| decode(b)).collect()
}

/// Encodes one 16-bit sample as G.711 A-law (PROTOCOLS.md §8.3).
pub fn alaw_encode(sample: i16) -> u8 {
    let (mask, s) = if sample >= 0 {
        (0xD5u8, i32::from(sample))
    } else {
        (0x55u8, -i32::from(sample) - 1)
    };
    let m = s >> 3;
    let code = if m < 32 {
        m >> 1
    } else {
        let seg = (32 - (m as u32).leading_zeros()) as i32 - 5;
        (seg << 4) | ((m >> seg) & 0x0F)
    };
    // `code` is at most 0x7F: segment 0..=7 in bits 4..6, mantissa in bits 0..3.
    (code as u8) ^ mask
}

/// Decodes one A-law byte to a 16-bit sample.
pub fn alaw_decode(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    let seg = (a >> 4) & 7;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

/// Root-mean-square level of μ-law audio in 16-bit linear units (0 for empty input).
pub fn rms(mulaw: &[u8]) -> f64 {
    if mulaw.is_empty() {
        return 0.0;
    }
    let sum: f64 = mulaw
        .iter()
        .map(|&b| {
            let s = f64::from(decode(b));
            s * s
        })
        .sum();
    (sum / mulaw.len() as f64).sqrt()
}

fn ms_to_bytes(ms: u32) -> usize {
    ms as usize * BYTES_PER_MS
}

/// `ms` milliseconds of μ-law silence (`0xFF`).
pub fn silence(ms: u32) -> Vec<u8> {
    vec![SILENCE; ms_to_bytes(ms)]
}

/// A sine tone: `freq_hz`, peak `amplitude` (16-bit linear), `ms` milliseconds, as μ-law.
/// Deterministic: sample `n` is `amplitude · sin(2π · freq · n / 8000)`.
pub fn tone(freq_hz: f64, amplitude: i16, ms: u32) -> Vec<u8> {
    tone_from(freq_hz, amplitude, 0, ms_to_bytes(ms))
}

fn tone_from(freq_hz: f64, amplitude: i16, first_sample: usize, samples: usize) -> Vec<u8> {
    (first_sample..first_sample + samples)
        .map(|n| {
            let phase = 2.0 * std::f64::consts::PI * freq_hz * n as f64 / 8000.0;
            encode((f64::from(amplitude) * phase.sin()).round() as i16)
        })
        .collect()
}

/// Peak amplitude of [`speech`] (RMS ≈ 5 000, well above the mock VAD's default threshold).
pub const SPEECH_AMPLITUDE: i16 = 7000;

/// `ms` milliseconds of energetic "speech": a 300 Hz + 1 kHz two-tone that any energy VAD
/// (including [`crate::openai::MockRealtime`]'s) detects as speech.
pub fn speech(ms: u32) -> Vec<u8> {
    (0..ms_to_bytes(ms))
        .map(|n| {
            let t = n as f64 / 8000.0;
            let v = 0.5 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()
                + 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin();
            encode((f64::from(SPEECH_AMPLITUDE) * v).round() as i16)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Stamps

/// Magic prefix of a stamp: four quiet negative μ-law codes (|x| ≤ 56).
const STAMP_MAGIC: [u8; 4] = [0x7A, 0x71, 0x7C, 0x73];

/// Writes a stamp carrying `id` into the first [`STAMP_LEN`] bytes of `frame`.
///
/// The stamp is 4 magic bytes, the id as 8 nibbles and a check nibble, all encoded as quiet
/// μ-law codes (amplitude ≤ 120 of 32 767), so a stamped silent frame stays silent for a VAD
/// and a stamped tone still sounds like the tone. Returns `false` (and writes nothing) when
/// `frame` is shorter than [`STAMP_LEN`].
pub fn stamp(frame: &mut [u8], id: u32) -> bool {
    let Some(dst) = frame.get_mut(..STAMP_LEN) else {
        return false;
    };
    dst[..4].copy_from_slice(&STAMP_MAGIC);
    let mut check = 0x5u8;
    for i in 0..8 {
        // Nibble i from the most significant end; always < 16.
        let nibble = ((id >> (28 - 4 * i)) & 0xF) as u8;
        check ^= nibble;
        dst[4 + i] = 0xF0 | nibble;
    }
    dst[12] = 0xF0 | check;
    true
}

/// Reads a stamp written by [`stamp`] at the start of `frame`.
pub fn read_stamp(frame: &[u8]) -> Option<u32> {
    let s = frame.get(..STAMP_LEN)?;
    if s[..4] != STAMP_MAGIC {
        return None;
    }
    let mut id = 0u32;
    let mut check = 0x5u8;
    for &b in &s[4..12] {
        if b & 0xF0 != 0xF0 {
            return None;
        }
        let nibble = b & 0x0F;
        check ^= nibble;
        id = (id << 4) | u32::from(nibble);
    }
    (s[12] == 0xF0 | check).then_some(id)
}

/// Finds every stamp in a byte stream, wherever it starts (frames may have been re-chunked
/// on the way), returning `(offset, id)` pairs in order.
pub fn find_stamps(bytes: &[u8]) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + STAMP_LEN <= bytes.len() {
        if bytes[i] == STAMP_MAGIC[0]
            && let Some(id) = read_stamp(&bytes[i..])
        {
            out.push((i, id));
            i += STAMP_LEN;
            continue;
        }
        i += 1;
    }
    out
}

/// Frequency of [`agent_tone`].
pub const AGENT_TONE_HZ: f64 = 440.0;
/// Peak amplitude of [`agent_tone`].
pub const AGENT_TONE_AMPLITUDE: i16 = 6000;

/// The identifiable audio the mock agent speaks: `ms` milliseconds of a 440 Hz tone cut into
/// 20 ms frames, frame `k` stamped with id `first_id + k` (the last frame may be shorter and
/// is stamped when it has room). Deterministic for a given `(first_id, ms)`.
pub fn agent_tone(first_id: u32, ms: u32) -> Vec<u8> {
    let mut bytes = tone(AGENT_TONE_HZ, AGENT_TONE_AMPLITUDE, ms);
    for (k, frame) in bytes.chunks_mut(FRAME_BYTES).enumerate() {
        stamp(frame, first_id.wrapping_add(k as u32));
    }
    bytes
}

// ---------------------------------------------------------------------------------------------
// WAV, resampling, espeak-ng

/// Resamples 16-bit mono audio from `from_rate` to `to_rate` Hz: box-filter averaging when
/// decimating, linear interpolation when upsampling. Simple; fine for test audio.
pub fn resample(samples: &[i16], from_rate: u32, to_rate: u32) -> Vec<i16> {
    if from_rate == to_rate || samples.is_empty() || from_rate == 0 || to_rate == 0 {
        return samples.to_vec();
    }
    let (from, to) = (u64::from(from_rate), u64::from(to_rate));
    let n_out = (samples.len() as u64 * to / from) as usize;
    let mut out = Vec::with_capacity(n_out);
    if from > to {
        for i in 0..n_out as u64 {
            let start = (i * from / to) as usize;
            let end = (((i + 1) * from / to) as usize).clamp(start + 1, samples.len());
            let sum: i64 = samples[start..end].iter().map(|&s| i64::from(s)).sum();
            out.push((sum / (end - start) as i64) as i16);
        }
    } else {
        for i in 0..n_out {
            let pos = i as f64 * from as f64 / to as f64;
            let idx = pos.floor() as usize;
            let frac = pos - idx as f64;
            let a = f64::from(samples[idx.min(samples.len() - 1)]);
            let b = f64::from(samples[(idx + 1).min(samples.len() - 1)]);
            out.push((a + (b - a) * frac).round() as i16);
        }
    }
    out
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Converts a WAV file's bytes (PCM 8/16-bit any rate and channel count, or 8 kHz μ-law) to
/// 8 kHz mono μ-law. Channels are averaged. A data chunk whose declared size runs past the
/// end of the input (as streamed by `espeak-ng --stdout`) is read to the end.
pub fn wav_to_mulaw(wav: &[u8]) -> Result<Vec<u8>, AudioError> {
    if wav.len() < 12 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return Err(AudioError::NotWav("missing RIFF/WAVE header"));
    }
    let mut pos = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= wav.len() {
        let id = &wav[pos..pos + 4];
        let size = le_u32(wav, pos + 4).ok_or(AudioError::NotWav("truncated chunk"))? as usize;
        let body_start = pos + 8;
        let body_end = body_start.saturating_add(size).min(wav.len());
        let body = &wav[body_start..body_end];
        if id == b"fmt " {
            let mut format = le_u16(body, 0).ok_or(AudioError::NotWav("short fmt chunk"))?;
            let channels = le_u16(body, 2).ok_or(AudioError::NotWav("short fmt chunk"))?;
            let rate = le_u32(body, 4).ok_or(AudioError::NotWav("short fmt chunk"))?;
            let bits = le_u16(body, 14).ok_or(AudioError::NotWav("short fmt chunk"))?;
            if format == 0xFFFE {
                // WAVE_FORMAT_EXTENSIBLE: the real tag is the first 2 bytes of the sub-format GUID.
                format = le_u16(body, 24).ok_or(AudioError::NotWav("short extensible fmt"))?;
            }
            fmt = Some((format, channels.max(1), rate, bits));
        } else if id == b"data" {
            let (format, channels, rate, bits) =
                fmt.ok_or(AudioError::NotWav("data chunk before fmt chunk"))?;
            let channels = usize::from(channels);
            let mono: Vec<i16> = match (format, bits) {
                (1, 16) => body
                    .chunks_exact(2 * channels)
                    .map(|frame| {
                        let sum: i32 = frame
                            .chunks_exact(2)
                            .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                            .sum();
                        (sum / channels as i32) as i16
                    })
                    .collect(),
                (1, 8) => body
                    .chunks_exact(channels)
                    .map(|frame| {
                        let sum: i32 = frame.iter().map(|&s| (i32::from(s) - 128) << 8).sum();
                        (sum / channels as i32) as i16
                    })
                    .collect(),
                (7, 8) if channels == 1 && rate == 8000 => return Ok(body.to_vec()),
                (7, 8) => body
                    .chunks_exact(channels)
                    .map(|frame| {
                        let sum: i32 = frame.iter().map(|&s| i32::from(decode(s))).sum();
                        (sum / channels as i32) as i16
                    })
                    .collect(),
                _ => return Err(AudioError::UnsupportedWav { format, bits }),
            };
            return Ok(encode_all(&resample(&mono, rate, 8000)));
        }
        // Chunks are padded to an even size.
        pos = body_start.saturating_add(size).saturating_add(size & 1);
    }
    Err(AudioError::NotWav("no data chunk"))
}

/// Reads a WAV file and converts it with [`wav_to_mulaw`].
pub fn read_wav_file(path: impl AsRef<Path>) -> Result<Vec<u8>, AudioError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| AudioError::Io {
        path: path.display().to_string(),
        source,
    })?;
    wav_to_mulaw(&bytes)
}

/// Speaks `text` with `espeak-ng` (if installed) and returns 8 kHz μ-law.
///
/// Returns [`AudioError::EspeakNotInstalled`] when the program is missing, so tests can skip:
///
/// ```no_run
/// # async fn f() {
/// match testkit::audio::espeak("I would like to book a table").await {
///     Ok(mulaw) => assert!(!mulaw.is_empty()),
///     Err(testkit::audio::AudioError::EspeakNotInstalled) => { /* skip */ }
///     Err(e) => panic!("{e}"),
/// }
/// # }
/// ```
pub async fn espeak(text: &str) -> Result<Vec<u8>, AudioError> {
    let output = tokio::process::Command::new("espeak-ng")
        .arg("--stdout")
        .arg("--")
        .arg(text)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AudioError::EspeakNotInstalled,
            _ => AudioError::Espeak(e.to_string()),
        })?;
    if !output.status.success() {
        return Err(AudioError::Espeak(format!(
            "exit status {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    wav_to_mulaw(&output.stdout)
}

/// Builder for caller audio: a sequence of segments rendered to 8 kHz μ-law.
///
/// ```
/// use testkit::audio::CallerAudio;
/// let a = CallerAudio::new().silence(400).speech(800).silence(1500).tone(440.0, 3000, 100);
/// assert_eq!(a.as_bytes().len(), 2800 * 8);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerAudio {
    bytes: Vec<u8>,
}

impl CallerAudio {
    /// Empty audio.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `ms` of silence.
    pub fn silence(mut self, ms: u32) -> Self {
        self.bytes.extend(silence(ms));
        self
    }

    /// Appends `ms` of energetic speech-like audio (see [`speech`]).
    pub fn speech(mut self, ms: u32) -> Self {
        self.bytes.extend(speech(ms));
        self
    }

    /// Appends a sine tone.
    pub fn tone(mut self, freq_hz: f64, amplitude: i16, ms: u32) -> Self {
        self.bytes.extend(tone(freq_hz, amplitude, ms));
        self
    }

    /// Appends raw μ-law bytes.
    pub fn mulaw(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// Appends a WAV file's audio (converted with [`wav_to_mulaw`]).
    pub fn wav(mut self, wav: &[u8]) -> Result<Self, AudioError> {
        self.bytes.extend(wav_to_mulaw(wav)?);
        Ok(self)
    }

    /// Appends text spoken by `espeak-ng` (see [`espeak`]).
    pub async fn espeak(mut self, text: &str) -> Result<Self, AudioError> {
        self.bytes.extend(espeak(text).await?);
        Ok(self)
    }

    /// Duration in whole milliseconds.
    pub fn duration_ms(&self) -> u64 {
        (self.bytes.len() / BYTES_PER_MS) as u64
    }

    /// The μ-law bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The μ-law bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl From<CallerAudio> for Vec<u8> {
    fn from(a: CallerAudio) -> Self {
        a.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mulaw_matches_reference_examples() {
        for (s, c) in [
            (0i16, 0xFFu8),
            (-1, 0x7F),
            (100, 0xF2),
            (-100, 0x72),
            (1000, 0xCE),
            (-1000, 0x4E),
            (8000, 0xA0),
            (32767, 0x80),
            (-32768, 0x00),
        ] {
            assert_eq!(encode(s), c, "encode({s})");
        }
        assert_eq!(decode(0x80), 32124);
        assert_eq!(decode(0x00), -32124);
        assert_eq!(decode(0xFF), 0);
        assert_eq!(decode(0x7F), 0);
        for code in 0..=255u8 {
            assert_eq!(
                encode(decode(code)),
                code | if code == 0x7F { 0x80 } else { 0 }
            );
        }
    }

    #[test]
    fn alaw_round_trips_and_matches_silence() {
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        for code in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(code)), code);
        }
    }

    #[test]
    fn stamps_round_trip_and_are_quiet() {
        for id in [0u32, 1, 0xDEAD_BEEF, u32::MAX, 123_456] {
            let mut f = silence(20);
            assert!(stamp(&mut f, id));
            assert_eq!(read_stamp(&f), Some(id));
            assert!(rms(&f) < 40.0, "stamp is quiet: {}", rms(&f));
        }
        let mut short = [0u8; 5];
        assert!(!stamp(&mut short, 1));
        assert_eq!(read_stamp(&speech(20)), None);
        assert_eq!(read_stamp(&silence(20)), None);
    }

    #[test]
    fn find_stamps_survives_rechunking() {
        let audio = agent_tone(1000, 100);
        let mut shifted = vec![SILENCE; 7];
        shifted.extend_from_slice(&audio);
        let found = find_stamps(&shifted);
        assert_eq!(
            found,
            (0..5)
                .map(|k| (7 + k * FRAME_BYTES, 1000 + k as u32))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn speech_is_energetic_and_silence_is_not() {
        assert!(rms(&speech(100)) > 3000.0);
        assert_eq!(rms(&silence(100)), 0.0);
        assert!(rms(&agent_tone(0, 100)) > 2000.0);
    }

    #[test]
    fn resample_lengths_and_dc() {
        let dc = vec![1000i16; 22050];
        let out = resample(&dc, 22050, 8000);
        assert_eq!(out.len(), 8000);
        assert!(out.iter().all(|&s| s == 1000));
        let up = resample(&[0, 300], 4000, 8000);
        assert_eq!(up, vec![0, 150, 300, 300]);
    }

    fn wav16(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut w = Vec::new();
        w.extend_from_slice(b"RIFF");
        w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        w.extend_from_slice(b"WAVEfmt ");
        w.extend_from_slice(&16u32.to_le_bytes());
        w.extend_from_slice(&1u16.to_le_bytes());
        w.extend_from_slice(&channels.to_le_bytes());
        w.extend_from_slice(&rate.to_le_bytes());
        w.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
        w.extend_from_slice(&(2 * channels).to_le_bytes());
        w.extend_from_slice(&16u16.to_le_bytes());
        w.extend_from_slice(b"LIST");
        w.extend_from_slice(&3u32.to_le_bytes());
        w.extend_from_slice(b"abc\0");
        w.extend_from_slice(b"data");
        w.extend_from_slice(&(data.len() as u32).to_le_bytes());
        w.extend_from_slice(&data);
        w
    }

    #[test]
    fn wav_conversion() {
        let stereo: Vec<i16> = (0..16000).flat_map(|_| [2000i16, 0]).collect();
        let out = wav_to_mulaw(&wav16(16000, 2, &stereo)).expect("valid wav");
        assert_eq!(out.len(), 8000);
        assert!(out.iter().all(|&b| b == encode(1000)));
        assert!(matches!(
            wav_to_mulaw(b"RIFX...."),
            Err(AudioError::NotWav(_))
        ));
        let mut float = wav16(8000, 1, &[0; 10]);
        float[20] = 3;
        assert!(matches!(
            wav_to_mulaw(&float),
            Err(AudioError::UnsupportedWav { format: 3, .. })
        ));
    }
}
