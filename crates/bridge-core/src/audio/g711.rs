//! G.711 μ-law and A-law codecs (ITU-T G.711), table-driven and allocation-free.
//!
//! * **μ-law** uses the classic 16-bit encoder (BIAS `0x84`, CLIP 32635, sign/exponent/mantissa,
//!   all bits inverted). It is bit-exact with the `ulaw_classic` column of the project's test
//!   vectors. The Sun `g711.c` / CPython `audioop` encoder differs by one code for 381 negative
//!   inputs at segment boundaries (for example −1 → `0x7E` there, `0x7F` here); both decode to within
//!   one quantisation step and the decode tables are identical.
//! * **A-law** follows G.711 with the even bits inverted (XOR `0x55`); it matches CPython
//!   `audioop.lin2alaw` / `alaw2lin` for every input.
//!
//! Decoding is a lookup in a 256-entry `const` table ([`ULAW_TO_LINEAR`], [`ALAW_TO_LINEAR`]);
//! encoding is a handful of integer operations. The slice functions append to a caller-owned
//! `Vec`, so a caller that keeps its buffers between frames never allocates.
//!
//! What this module does not do: it does not resample (see [`super::resample`]) and it does not
//! touch base64 (see [`super::transcode`]).
//!
//! ```
//! use bridge_core::audio::g711;
//!
//! assert_eq!(g711::ulaw_encode(1000), 0xCE);
//! assert_eq!(g711::ulaw_decode(0xCE), 988);
//! assert_eq!(g711::alaw_encode(0), 0xD5);
//!
//! // Reusable buffers: clear, then decode/encode a whole 20 ms frame.
//! let frame = [0xFFu8; 160];
//! let mut pcm = Vec::with_capacity(160);
//! let mut out = Vec::with_capacity(160);
//! g711::decode_ulaw_into(&frame, &mut pcm);
//! g711::encode_ulaw_into(&pcm, &mut out);
//! assert_eq!(out, frame);
//! ```

/// μ-law encoder bias (added to the magnitude before finding the segment).
pub const ULAW_BIAS: i32 = 0x84;
/// μ-law encoder clip level: magnitudes above this encode as the largest code.
pub const ULAW_CLIP: i32 = 32_635;

/// The μ-law code of digital silence (+0). `0x7F` (−0) also decodes to 0.
pub const ULAW_SILENCE: u8 = 0xFF;
/// The A-law code of near-silence (+8). `0x55` decodes to −8.
pub const ALAW_SILENCE: u8 = 0xD5;

/// μ-law code → 16-bit linear value (range ±32124).
pub const ULAW_TO_LINEAR: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = ulaw_decode_formula(code as u8);
        code += 1;
    }
    table
};

/// A-law code → 16-bit linear value (range ±32256).
pub const ALAW_TO_LINEAR: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = alaw_decode_formula(code as u8);
        code += 1;
    }
    table
};

const fn ulaw_decode_formula(code: u8) -> i16 {
    let c = !code;
    let exponent = (c >> 4) & 0x07;
    let mantissa = (c & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if c & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode_formula(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let segment = (a >> 4) & 0x07;
    match segment {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (segment - 1),
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

/// Decodes one μ-law code to a 16-bit linear sample (table lookup).
#[inline]
pub const fn ulaw_decode(code: u8) -> i16 {
    ULAW_TO_LINEAR[code as usize]
}

/// Decodes one A-law code to a 16-bit linear sample (table lookup).
#[inline]
pub const fn alaw_decode(code: u8) -> i16 {
    ALAW_TO_LINEAR[code as usize]
}

/// Encodes one 16-bit linear sample to μ-law (classic encoder: BIAS `0x84`, CLIP 32635).
#[inline]
pub const fn ulaw_encode(sample: i16) -> u8 {
    let s = sample as i32;
    let (sign, magnitude) = if s < 0 { (0x80, -s) } else { (0x00, s) };
    let magnitude = if magnitude > ULAW_CLIP {
        ULAW_CLIP
    } else {
        magnitude
    } + ULAW_BIAS;
    // magnitude is in 132..=32767, so its highest set bit is 7..=14 and the exponent 0..=7.
    let exponent = (31 - magnitude.leading_zeros() as i32) - 7;
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Encodes one 16-bit linear sample to A-law (G.711, even bits inverted).
#[inline]
pub const fn alaw_encode(sample: i16) -> u8 {
    let s = sample as i32;
    let (mask, magnitude) = if s >= 0 {
        (0xD5u8, s)
    } else {
        (0x55u8, -s - 1)
    };
    // 13-bit magnitude 0..=4095.
    let m = magnitude >> 3;
    let code = if m < 32 {
        m >> 1
    } else {
        // Segment = bit length of m minus 5 (1 for 32..=63 … 7 for 2048..=4095).
        let segment = (32 - m.leading_zeros() as i32) - 5;
        (segment << 4) | ((m >> segment) & 0x0F)
    };
    (code as u8) ^ mask
}

/// Decodes μ-law codes, **appending** the samples to `out` (clear it first to reuse it).
pub fn decode_ulaw_into(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| ULAW_TO_LINEAR[c as usize]));
}

/// Decodes A-law codes, **appending** the samples to `out` (clear it first to reuse it).
pub fn decode_alaw_into(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| ALAW_TO_LINEAR[c as usize]));
}

/// Encodes samples to μ-law, **appending** the codes to `out` (clear it first to reuse it).
pub fn encode_ulaw_into(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&s| ulaw_encode(s)));
}

/// Encodes samples to A-law, **appending** the codes to `out` (clear it first to reuse it).
pub fn encode_alaw_into(samples: &[i16], out: &mut Vec<u8>) {
    out.extend(samples.iter().map(|&s| alaw_encode(s)));
}

/// Decodes μ-law codes into an equally long sample slice.
///
/// Returns the number of samples written, `min(codes.len(), out.len())`.
pub fn decode_ulaw_slice(codes: &[u8], out: &mut [i16]) -> usize {
    let n = codes.len().min(out.len());
    for (o, &c) in out[..n].iter_mut().zip(&codes[..n]) {
        *o = ULAW_TO_LINEAR[c as usize];
    }
    n
}

/// Encodes samples into an equally long μ-law slice.
///
/// Returns the number of codes written, `min(samples.len(), out.len())`.
pub fn encode_ulaw_slice(samples: &[i16], out: &mut [u8]) -> usize {
    let n = samples.len().min(out.len());
    for (o, &s) in out[..n].iter_mut().zip(&samples[..n]) {
        *o = ulaw_encode(s);
    }
    n
}

/// The μ-law quantisation step (distance between adjacent decoded levels) around `code`.
///
/// Useful to state round-trip tolerances: `|decode(encode(x)) − x| ≤ step / 2` for
/// `|x| ≤ ULAW_CLIP`.
pub const fn ulaw_step(code: u8) -> i32 {
    let exponent = ((!code) >> 4) & 0x07;
    8 << exponent
}

/// The A-law quantisation step around `code` (16 in segments 0 and 1, doubling per segment).
pub const fn alaw_step(code: u8) -> i32 {
    let segment = ((code ^ 0x55) >> 4) & 0x07;
    if segment <= 1 {
        16
    } else {
        16 << (segment - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_examples() {
        for (s, c) in [
            (0, 0xFF),
            (-1, 0x7F),
            (100, 0xF2),
            (-100, 0x72),
            (1000, 0xCE),
            (-1000, 0x4E),
            (8000, 0xA0),
            (32767, 0x80),
            (-32768, 0x00),
        ] {
            assert_eq!(ulaw_encode(s), c, "ulaw_encode({s})");
        }
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_decode(ALAW_SILENCE), 8);
        assert_eq!(alaw_decode(0x55), -8);
    }

    #[test]
    fn slices_match_scalars() {
        let codes: Vec<u8> = (0..=255).collect();
        let mut pcm = vec![0i16; 256];
        assert_eq!(decode_ulaw_slice(&codes, &mut pcm), 256);
        let mut back = vec![0u8; 300];
        assert_eq!(encode_ulaw_slice(&pcm, &mut back), 256);
        // Every code but 0x7F (−0, which re-encodes as +0 = 0xFF) round-trips exactly.
        for c in 0..=255u8 {
            let expected = if c == 0x7F { 0xFF } else { c };
            assert_eq!(back[c as usize], expected);
        }
    }
}
