//! `bridge_core::audio::transcode::Transcoder::process` on arbitrary payload streams (the
//! audio either peer sends us, when the two sides speak different formats).
//!
//! Input layout (readable seeds): the first byte picks the format pair (low nibble: input,
//! high nibble: output, each `% 7` into μ-law, A-law, PCM16 at 8/16/24/48 kHz, or PCM16 at a
//! rate read from the next four little-endian bytes). The rest is newline-separated lines:
//! `!` resets the stream, `#…` is raw audio (base64-encoded by the harness, so every byte
//! value reaches the codecs), any other line is base64 payload text given to the transcoder
//! as it is (garbage included).
//!
//! Invariants:
//! * `process` never panics; a payload `Base64Audio` accepts but cannot decode is an error
//!   that leaves the stream state unchanged;
//! * each output has exactly `output_len(input bytes)` bytes, as announced beforehand;
//! * `process` (base64 in and out) and `process_raw` (bytes) produce identical audio;
//! * since the last reset, `n` input samples yield exactly `⌈n·L/M⌉` output samples.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bridge_core::audio::transcode::Transcoder;
use bridge_core::format::{AudioFormat, Base64Audio};
use libfuzzer_sys::fuzz_target;

fn format(selector: u8, rate: &mut impl FnMut() -> u32) -> AudioFormat {
    match selector % 7 {
        0 => AudioFormat::Mulaw8k,
        1 => AudioFormat::Alaw8k,
        2 => AudioFormat::Pcm16 { rate: 8_000 },
        3 => AudioFormat::Pcm16 { rate: 16_000 },
        4 => AudioFormat::Pcm16 { rate: 24_000 },
        5 => AudioFormat::Pcm16 { rate: 48_000 },
        _ => AudioFormat::Pcm16 { rate: rate() },
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let mut rate = || match rest {
        [a, b, c, d, tail @ ..] => {
            rest = tail;
            u32::from_le_bytes([*a, *b, *c, *d])
        }
        _ => 8_000,
    };
    let from = format(selector & 0x0f, &mut rate);
    let to = format(selector >> 4, &mut rate);

    let mut via_base64 = match Transcoder::new(from, to) {
        Ok(Some(t)) => t,
        // Same format: payloads pass through, nothing to transcode.
        Ok(None) => {
            assert_eq!(from, to);
            return;
        }
        Err(e) => {
            assert_eq!((e.from, e.to), (from, to));
            return;
        }
    };
    let mut via_raw = Transcoder::new(from, to)
        .expect("the same formats were accepted a moment ago")
        .expect("the formats differ");
    let _ = via_base64.delay();
    let (up, down) = via_base64.resampler().map_or((1, 1), |r| r.ratio());
    let (up, down) = (up as u128, down as u128);
    let in_width = from.bytes_per_sample() as u128;
    let out_width = to.bytes_per_sample() as usize;

    let (mut in_bytes, mut out_samples) = (0u128, 0u128);
    for line in rest.split(|&b| b == b'\n') {
        if line == b"!" {
            via_base64.reset();
            via_raw.reset();
            in_bytes = 0;
            out_samples = 0;
            continue;
        }
        let payload = match line.strip_prefix(b"#") {
            Some(raw) => Base64Audio::encode(raw),
            None => match Base64Audio::from_text(&String::from_utf8_lossy(line)) {
                Ok(p) => p,
                Err(_) => continue,
            },
        };
        let raw = match STANDARD.decode(payload.as_bytes()) {
            Ok(raw) => raw,
            Err(_) => {
                // Accepted by the shape check but not decodable: an error, state unchanged.
                let before: Vec<usize> = (0..4).map(|n| via_base64.output_len(n)).collect();
                assert!(via_base64.process(&payload).is_err());
                let after: Vec<usize> = (0..4).map(|n| via_base64.output_len(n)).collect();
                assert_eq!(before, after, "a rejected payload changed the stream state");
                continue;
            }
        };
        let announced = via_base64.output_len(raw.len());
        let out = via_base64
            .process(&payload)
            .expect("a decodable payload is converted");
        assert_eq!(
            out.decoded_len(),
            announced,
            "output_len announced the wrong size"
        );
        let out = out.decode().expect("the transcoder emits valid base64");
        assert_eq!(out.len(), announced);
        assert_eq!(out.len() % out_width, 0, "output splits a sample");

        let mut direct = Vec::new();
        via_raw.process_raw(&raw, &mut direct);
        assert_eq!(direct, out, "process and process_raw disagree");

        in_bytes += raw.len() as u128;
        out_samples += (out.len() / out_width) as u128;
        let in_samples = in_bytes / in_width;
        assert_eq!(
            out_samples,
            (in_samples * up).div_ceil(down),
            "{in_samples} input samples at {up}/{down} gave {out_samples} outputs"
        );
    }
});
