//! `bridge_core::format::Base64Audio` on arbitrary payload text: `from_text` / `from_shared`,
//! `decoded_len`, `decode` and `split_chunks` (the audio payloads both peers send us).
//!
//! Input layout: the first two bytes (little-endian) are the `split_chunks` size in decoded
//! bytes, the rest is the payload text.
//!
//! Invariants:
//! * `from_text` and `from_shared` agree;
//! * for an accepted payload, `decoded_len()` equals `decode().len()` whenever it decodes;
//! * the pieces of `split_chunks(n)` are accepted payloads, each at most `max(3, n - n % 3)`
//!   decoded bytes, every piece but the last exactly that many, their `decoded_len`s sum to
//!   the whole, their texts concatenate to the whole, and (when the whole decodes) their
//!   decodings concatenate to the whole's decoding;
//! * `encode` of the decoded bytes gives back the canonical text.
#![no_main]

use bridge_core::format::Base64Audio;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (max_bytes, text) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (160, data),
    };
    let text = String::from_utf8_lossy(text);

    let from_text = Base64Audio::from_text(&text);
    let from_shared = Base64Audio::from_shared(Bytes::copy_from_slice(text.as_bytes()));
    assert_eq!(from_text, from_shared);
    let Ok(payload) = from_text else {
        return;
    };
    assert_eq!(payload.as_str(), &*text);
    assert_eq!(payload.text_len(), text.len());
    let _ = format!("{payload:?}");

    let decoded = payload.decode();
    if let Ok(raw) = &decoded {
        assert_eq!(
            payload.decoded_len(),
            raw.len(),
            "decoded_len is wrong for {text:?}"
        );
        assert_eq!(
            Base64Audio::encode(raw),
            payload,
            "decode/encode is not the identity"
        );
    }

    let step = (max_bytes / 3).max(1) * 3;
    let pieces: Vec<Base64Audio> = payload.split_chunks(max_bytes).collect();
    let mut joined_text = String::new();
    let mut joined_raw = Vec::new();
    let mut total = 0;
    for (i, piece) in pieces.iter().enumerate() {
        assert!(
            Base64Audio::from_text(piece.as_str()).is_ok(),
            "piece {i} of {text:?} is not a valid payload"
        );
        let len = piece.decoded_len();
        assert!(len <= step, "piece {i} holds {len} > {step} bytes");
        if i + 1 < pieces.len() {
            assert_eq!(len, step, "inner piece {i} is short");
        }
        total += len;
        joined_text.push_str(piece.as_str());
        if decoded.is_ok() {
            joined_raw.extend(
                piece
                    .decode()
                    .expect("pieces of a decodable payload decode"),
            );
        }
    }
    assert_eq!(joined_text, *text);
    assert_eq!(total, payload.decoded_len());
    if let Ok(raw) = decoded {
        assert_eq!(joined_raw, raw);
    }
});
