//! G.711 codecs against every entry of `fixtures/g711_vectors.json`, plus exhaustive
//! properties over all 65 536 `i16` inputs and all 256 codes.

use bridge_core::audio::g711;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    encode_examples: Vec<EncodeExample>,
    ulaw_decode_table: Vec<i16>,
    alaw_decode_table: Vec<i16>,
    silence_frame_20ms: SilenceFrame,
}

#[derive(Deserialize)]
struct EncodeExample {
    pcm16: i16,
    ulaw_classic: u8,
    ulaw_sun_cpython: u8,
    alaw: u8,
}

#[derive(Deserialize)]
struct SilenceFrame {
    ulaw_byte: String,
    alaw_byte: String,
    bytes: usize,
    ulaw_base64: String,
    alaw_base64: String,
}

fn vectors() -> Vectors {
    let text = include_str!("fixtures/g711_vectors.json");
    serde_json::from_str(text).expect("fixture is valid JSON of the documented shape")
}

#[test]
fn every_encode_example() {
    let v = vectors();
    assert_eq!(v.encode_examples.len(), 29);
    for e in &v.encode_examples {
        assert_eq!(
            g711::ulaw_encode(e.pcm16),
            e.ulaw_classic,
            "μ-law encode {}",
            e.pcm16
        );
        assert_eq!(
            g711::alaw_encode(e.pcm16),
            e.alaw,
            "A-law encode {}",
            e.pcm16
        );
        // The other μ-law variant may differ by at most one code, decoding within a step.
        let ours = i32::from(g711::ulaw_decode(e.ulaw_classic));
        let sun = i32::from(g711::ulaw_decode(e.ulaw_sun_cpython));
        assert!(
            (ours - sun).abs() <= g711::ulaw_step(e.ulaw_classic),
            "variant {}",
            e.pcm16
        );
    }
}

#[test]
fn every_decode_table_entry() {
    let v = vectors();
    assert_eq!(v.ulaw_decode_table.len(), 256);
    assert_eq!(v.alaw_decode_table.len(), 256);
    for code in 0..=255u8 {
        let i = usize::from(code);
        assert_eq!(
            g711::ulaw_decode(code),
            v.ulaw_decode_table[i],
            "μ-law {code:#04x}"
        );
        assert_eq!(
            g711::alaw_decode(code),
            v.alaw_decode_table[i],
            "A-law {code:#04x}"
        );
        assert_eq!(g711::ULAW_TO_LINEAR[i], v.ulaw_decode_table[i]);
        assert_eq!(g711::ALAW_TO_LINEAR[i], v.alaw_decode_table[i]);
    }
}

#[test]
fn silence_frames() {
    let v = vectors();
    let s = &v.silence_frame_20ms;
    assert_eq!(
        s.ulaw_byte,
        format!("{:#04X}", g711::ULAW_SILENCE).replace("0X", "0x")
    );
    assert_eq!(
        s.alaw_byte,
        format!("{:#04X}", g711::ALAW_SILENCE).replace("0X", "0x")
    );
    let mut ulaw = Vec::new();
    let mut alaw = Vec::new();
    g711::encode_ulaw_into(&vec![0; s.bytes], &mut ulaw);
    g711::encode_alaw_into(&vec![0; s.bytes], &mut alaw);
    let ulaw64 = bridge_core::format::Base64Audio::encode(&ulaw);
    let alaw64 = bridge_core::format::Base64Audio::encode(&alaw);
    assert_eq!(ulaw64.as_str(), s.ulaw_base64);
    assert_eq!(alaw64.as_str(), s.alaw_base64);
}

#[test]
fn both_ulaw_zeros_decode_to_zero() {
    assert_eq!(g711::ulaw_decode(0xFF), 0);
    assert_eq!(g711::ulaw_decode(0x7F), 0);
    let zeros = (0..=255u8).filter(|&c| g711::ulaw_decode(c) == 0).count();
    assert_eq!(zeros, 2);
}

#[test]
fn ulaw_every_i16_round_trips_within_half_a_step() {
    for s in i16::MIN..=i16::MAX {
        let code = g711::ulaw_encode(s);
        let back = i32::from(g711::ulaw_decode(code));
        // The encoder clips magnitudes at CLIP; within the clip range the decoded value is the
        // midpoint of the quantisation interval.
        let clipped = i32::from(s).clamp(-g711::ULAW_CLIP, g711::ULAW_CLIP);
        let err = (back - clipped).abs();
        assert!(
            err <= g711::ulaw_step(code) / 2,
            "s={s} code={code:#04x} back={back}"
        );
        // And never further than one step from the unclipped input.
        assert!(
            (back - i32::from(s)).abs() <= g711::ulaw_step(code),
            "s={s}"
        );
    }
}

#[test]
fn alaw_every_i16_round_trips_within_half_a_step() {
    for s in i16::MIN..=i16::MAX {
        let code = g711::alaw_encode(s);
        let back = i32::from(g711::alaw_decode(code));
        // A-law encodes negative inputs as −s−1, hence one extra unit on that side.
        let slack = i32::from(s < 0);
        let err = (back - i32::from(s)).abs();
        assert!(
            err <= g711::alaw_step(code) / 2 + slack,
            "s={s} code={code:#04x} back={back}"
        );
    }
}

#[test]
fn encoders_are_monotonic_and_decoders_are_exact_inverses() {
    let mut prev_u = i16::MIN;
    let mut prev_a = i16::MIN;
    for s in i16::MIN..=i16::MAX {
        let u = g711::ulaw_decode(g711::ulaw_encode(s));
        let a = g711::alaw_decode(g711::alaw_encode(s));
        assert!(u >= prev_u && a >= prev_a, "non-monotonic at {s}");
        prev_u = u;
        prev_a = a;
    }
    for code in 0..=255u8 {
        // Decoded values are fixed points of encode∘decode (except μ-law −0 → +0).
        let u = g711::ulaw_encode(g711::ulaw_decode(code));
        assert_eq!(u, if code == 0x7F { 0xFF } else { code });
        assert_eq!(g711::alaw_encode(g711::alaw_decode(code)), code);
    }
}

#[test]
fn slice_apis_append_and_reuse_buffers() {
    let pcm: Vec<i16> = (0..160).map(|i| (i * 409 - 32_000) as i16).collect();
    let mut codes = Vec::with_capacity(320);
    g711::encode_ulaw_into(&pcm, &mut codes);
    g711::encode_alaw_into(&pcm, &mut codes);
    assert_eq!(codes.len(), 320);
    let cap = codes.capacity();
    let mut decoded = Vec::with_capacity(320);
    g711::decode_ulaw_into(&codes[..160], &mut decoded);
    g711::decode_alaw_into(&codes[160..], &mut decoded);
    for (i, &s) in pcm.iter().enumerate() {
        assert_eq!(decoded[i], g711::ulaw_decode(g711::ulaw_encode(s)));
        assert_eq!(decoded[160 + i], g711::alaw_decode(g711::alaw_encode(s)));
    }
    codes.clear();
    g711::encode_ulaw_into(&pcm, &mut codes);
    assert_eq!(codes.capacity(), cap, "reused buffer did not reallocate");
}
