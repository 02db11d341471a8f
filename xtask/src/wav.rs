//! Writing audio as a playable WAV file: 16-bit PCM, mono, 8 kHz.

use std::path::Path;

use anyhow::Context as _;

/// Sample rate of everything on a phone call.
pub(crate) const RATE: u32 = 8000;

/// A complete WAV file (RIFF header and data) of 16-bit mono PCM at `rate` Hz.
pub(crate) fn encode_pcm16(samples: &[i16], rate: u32) -> Vec<u8> {
    // WAV sizes are 32-bit; clamp absurd lengths rather than wrap (4 GiB = 74 h at 8 kHz).
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX - 36) & !1;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in &samples[..data_len as usize / 2] {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Writes `samples` (8 kHz) to `path` as a WAV file.
pub(crate) fn write_pcm16(path: &Path, samples: &[i16]) -> anyhow::Result<()> {
    std::fs::write(path, encode_pcm16(samples, RATE))
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_testkit_reader() {
        let mulaw = testkit::audio::tone(440.0, 6000, 100);
        let pcm = testkit::audio::decode_all(&mulaw);
        let wav = encode_pcm16(&pcm, RATE);
        assert_eq!(wav.len(), 44 + 1600);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes([wav[4], wav[5], wav[6], wav[7]]),
            36 + 1600
        );
        assert_eq!(
            u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
            8000
        );
        // The μ-law codes survive decode → WAV → encode.
        assert_eq!(testkit::audio::wav_to_mulaw(&wav).ok(), Some(mulaw));
    }

    #[test]
    fn empty_audio_is_a_valid_empty_file() {
        let wav = encode_pcm16(&[], RATE);
        assert_eq!(wav.len(), 44);
        assert_eq!(testkit::audio::wav_to_mulaw(&wav).ok(), Some(Vec::new()));
    }
}
