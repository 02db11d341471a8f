//! Signed 16-bit little-endian PCM ⇄ `i16` samples.
//!
//! OpenAI's `audio/pcm` is mono PCM16 LE. These helpers append to caller-owned buffers so a
//! caller that reuses them never allocates per frame.
//!
//! ```
//! use bridge_core::audio::pcm;
//! let mut samples = Vec::new();
//! pcm::le_bytes_to_samples_into(&[0x01, 0x00, 0xFF, 0xFF], &mut samples);
//! assert_eq!(samples, [1, -1]);
//! let mut bytes = Vec::new();
//! pcm::samples_to_le_bytes_into(&samples, &mut bytes);
//! assert_eq!(bytes, [0x01, 0x00, 0xFF, 0xFF]);
//! ```

/// Parses little-endian PCM16 bytes, **appending** the samples to `out`.
///
/// A trailing odd byte is ignored; callers that stream odd-sized chunks carry it over (as
/// [`super::transcode::Transcoder`] does).
pub fn le_bytes_to_samples_into(bytes: &[u8], out: &mut Vec<i16>) {
    out.extend(
        bytes
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]])),
    );
}

/// Serialises samples as little-endian PCM16 bytes, **appending** them to `out`.
pub fn samples_to_le_bytes_into(samples: &[i16], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + samples.len() * 2, 0);
    for (pair, s) in out[start..].chunks_exact_mut(2).zip(samples) {
        pair.copy_from_slice(&s.to_le_bytes());
    }
}
