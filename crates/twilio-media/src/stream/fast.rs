//! The fast path of [`super::parse`] for the two per-frame messages, `media` and `mark`, in the
//! exact layout Twilio sends them:
//!
//! ```text
//! {"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"…"},"streamSid":"MZ…"}
//! {"event":"mark","sequenceNumber":"4","streamSid":"MZ…","mark":{"name":"…"}}
//! ```
//!
//! A message is taken here only if it is byte for byte that layout: no whitespace, those keys
//! in that order, numbers as decimal digit strings, strings without escapes or control
//! characters. The result is then exactly what the general parser returns (a test checks
//! both on the same inputs). Anything else — another order, an extra field, an escape, a
//! malformed number — returns `None` and goes through the general parser, which also reports
//! the errors. This skips serde's per-key work on the ~75 messages per second of every call.

use std::borrow::Cow;

use super::inbound::{Mark, Media, Track};
use crate::sid::StreamSid;

/// A cursor over the message bytes.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Consumes `lit` if the text continues with it.
    fn lit(&mut self, lit: &str) -> Option<()> {
        let rest = self.text.as_bytes().get(self.pos..)?;
        if rest.starts_with(lit.as_bytes()) {
            self.pos += lit.len();
            Some(())
        } else {
            None
        }
    }

    /// The body of a JSON string up to (not including) its closing quote, which must be next
    /// after it; `None` if it holds an escape or a control character.
    fn plain_str(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut i = start;
        // Skip 16-byte blocks with no quote, backslash or control character (branch-free per
        // block, so it vectorises), then find the end byte by byte.
        while let Some(block) = bytes.get(i..i + 16) {
            let special = block.iter().fold(false, |acc, &b| {
                acc | (b == b'"') | (b == b'\\') | (b < 0x20)
            });
            if special {
                break;
            }
            i += 16;
        }
        loop {
            match *bytes.get(i)? {
                b'"' => break,
                b'\\' => return None,
                b if b < 0x20 => return None,
                _ => i += 1,
            }
        }
        self.pos = i;
        // Both ends are at ASCII bytes (the opening quote before `start`, `"` at `i`), so
        // they are char boundaries.
        self.text.get(start..i)
    }

    /// A decimal digit string's value (1 to 20 digits, no overflow), up to its closing quote.
    fn digits(&mut self) -> Option<u64> {
        let s = self.plain_str()?;
        if s.is_empty() || s.len() > 20 {
            return None;
        }
        s.bytes().try_fold(0u64, |n, b| {
            if b.is_ascii_digit() {
                n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
            } else {
                None
            }
        })
    }

    fn at_end(&self) -> bool {
        self.pos == self.text.len()
    }
}

/// A `media` message in Twilio's exact layout.
pub(super) fn media(text: &str) -> Option<Media<'_>> {
    let mut c = Cursor { text, pos: 0 };
    c.lit(r#"{"event":"media","sequenceNumber":""#)?;
    let sequence_number = c.digits()?;
    c.lit(r#"","media":{"track":""#)?;
    let track = c.plain_str()?;
    c.lit(r#"","chunk":""#)?;
    let chunk = c.digits()?;
    c.lit(r#"","timestamp":""#)?;
    let timestamp = c.digits()?;
    c.lit(r#"","payload":""#)?;
    let payload = c.plain_str()?;
    c.lit(r#""},"streamSid":""#)?;
    let sid = c.plain_str()?;
    c.lit(r#""}"#)?;
    if !c.at_end() {
        return None;
    }
    Some(Media {
        sequence_number,
        stream_sid: StreamSid::new(Cow::Borrowed(sid)),
        track: Track::from_wire(track),
        chunk,
        timestamp,
        payload: Cow::Borrowed(payload),
    })
}

/// A `mark` message in Twilio's exact layout.
pub(super) fn mark(text: &str) -> Option<Mark<'_>> {
    let mut c = Cursor { text, pos: 0 };
    c.lit(r#"{"event":"mark","sequenceNumber":""#)?;
    let sequence_number = c.digits()?;
    c.lit(r#"","streamSid":""#)?;
    let sid = c.plain_str()?;
    c.lit(r#"","mark":{"name":""#)?;
    let name = c.plain_str()?;
    c.lit(r#""}}"#)?;
    if !c.at_end() {
        return None;
    }
    Some(Mark {
        sequence_number,
        stream_sid: StreamSid::new(Cow::Borrowed(sid)),
        name: Cow::Borrowed(name),
    })
}

#[cfg(test)]
mod tests {
    use super::super::inbound::{Event, parse_general};
    use super::*;

    const SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

    fn media_text(seq: &str, track: &str, chunk: &str, ts: &str, payload: &str) -> String {
        format!(
            r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"{track}","chunk":"{chunk}","timestamp":"{ts}","payload":"{payload}"}},"streamSid":"{SID}"}}"#
        )
    }

    fn mark_text(seq: &str, name: &str) -> String {
        format!(
            r#"{{"event":"mark","sequenceNumber":"{seq}","streamSid":"{SID}","mark":{{"name":"{name}"}}}}"#
        )
    }

    /// The fast path either declines or agrees exactly with the general parser.
    fn check(text: &str) -> bool {
        let general = parse_general(text);
        let fast = media(text)
            .map(Event::Media)
            .or_else(|| mark(text).map(Event::Mark));
        match (fast, general) {
            (None, _) => false,
            (Some(f), Ok(g)) => {
                assert_eq!(f, g, "{text}");
                true
            }
            (Some(f), Err(e)) => panic!("fast path accepted {text} as {f:?}; parser: {e}"),
        }
    }

    #[test]
    fn twilio_layouts_take_the_fast_path_and_agree() {
        let payload = "f39/fn5+fn9/f39/fH9+fn5/fn9+fH9+fn5/f399fn5+fn5+fX1+fn59fX5/f31/fX5+fn59fX19fn59fX19fX1+fn59fn59fX1+fX5+fn1+fX1+fn59fX59fX59fX59fX59fX59fX19fn59fX5+fX59fX19fX19fn19fX19fn19fX19fX1+fX19fX19fX19fX19fX1+fX19fX19fX19fX0=";
        assert!(check(&media_text("3", "inbound", "1", "5", payload)));
        assert!(check(&media_text(
            "18446744073709551615",
            "outbound",
            "0",
            "0",
            ""
        )));
        assert!(check(&media_text(
            "007",
            "inbound_track",
            "2",
            "40",
            "AAAA"
        )));
        assert!(check(&media_text("9", "unheard-of", "2", "40", "//8=")));
        assert!(check(&mark_text("4", "m17")));
        assert!(check(&mark_text("4", "item_7:1240 é")));
        assert!(check(&mark_text("4", "")));
    }

    #[test]
    fn anything_else_takes_the_general_parser() {
        for text in [
            // Whitespace, another order, an extra field, an escape, a control character.
            media_text("3", "inbound", "1", "5", "AAAA").replace(',', ", "),
            format!(
                r#"{{"event":"media","media":{{"track":"inbound","chunk":"1","timestamp":"5","payload":"AAAA"}},"sequenceNumber":"3","streamSid":"{SID}"}}"#
            ),
            media_text("3", "inbound", "1", "5", "AAAA")
                .replace(r#"},"streamSid""#, r#"},"extra":1,"streamSid""#),
            media_text("3", "inbound", "1", "5", r"AA\/A"),
            mark_text("4", "a\u{1}b"),
            mark_text("4", r#"a\"b"#),
            // Numbers: empty, signed, not decimal, too large, as JSON numbers.
            media_text("", "inbound", "1", "5", "AAAA"),
            media_text("+3", "inbound", "1", "5", "AAAA"),
            media_text("3", "inbound", "0x1", "5", "AAAA"),
            media_text("18446744073709551616", "inbound", "1", "5", "AAAA"),
            media_text("3", "inbound", "1", "5", "AAAA").replace(r#""chunk":"1""#, r#""chunk":1"#),
            // Truncated, or something after the object.
            media_text("3", "inbound", "1", "5", "AAAA")[..40].to_owned(),
            format!("{} ", mark_text("4", "m1")),
            mark_text("4", "m1").replace("}}", "}"),
        ] {
            assert!(!check(&text), "took the fast path: {text}");
        }
    }

    #[test]
    fn random_fields_agree_with_the_general_parser() {
        // Deterministic xorshift; fields drawn from digits, base64, quotes, backslashes,
        // control characters and non-ASCII text.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = "0123456789+/=AZaz \"\\\u{0}\u{1f}é€:_-".chars().collect();
        let mut field = |max: u64| -> String {
            let len = next() % max;
            (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        };
        let mut taken = 0;
        for _ in 0..5_000 {
            let (a, b, c, d, e) = (field(4), field(12), field(4), field(4), field(40));
            taken += usize::from(check(&media_text(&a, &b, &c, &d, &e)));
            taken += usize::from(check(&mark_text(&a, &e)));
        }
        assert!(taken > 100, "the fast path was taken {taken} times");
    }

    #[test]
    fn strings_of_every_length_around_the_block_size() {
        for n in 0..70 {
            let name: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(check(&mark_text("1", &name)));
            for special in ["\\n", "\\\"", "\u{7}"] {
                let mut bad = name.clone();
                bad.insert_str(n / 2, special);
                assert!(!check(&mark_text("1", &bad)));
            }
        }
    }
}
