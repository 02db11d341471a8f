//! Small JSON helpers shared by the parsers and writers: borrowed-or-owned strings,
//! string-or-number counters, and a fast string escaper.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A string that borrows from the input when the JSON string has no escapes.
///
/// `Cow<'de, str>`'s own `Deserialize` impl always allocates; this wrapper asks the
/// deserializer for a borrowed string first.
pub(crate) struct CowStr<'de>(pub(crate) Cow<'de, str>);

struct CowStrVisitor;

impl<'de> Visitor<'de> for CowStrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(CowStrVisitor).map(CowStr)
    }
}

/// Deserializes a borrowed-when-possible string (used by the SID newtypes).
pub(crate) fn cow_str<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Cow<'de, str>, D::Error> {
    deserializer.deserialize_str(CowStrVisitor)
}

/// A non-negative integer sent either as a JSON number or as a JSON string holding a
/// decimal integer (Twilio sends `sequenceNumber`, `chunk` and `timestamp` as strings).
pub(crate) struct Counter(pub(crate) u64);

struct CounterVisitor;

impl Visitor<'_> for CounterVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer (as a number or a decimal string)")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        // `u64::from_str` accepts a leading `+`; Twilio never sends one, and we only
        // accept plain ASCII digits.
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(E::invalid_value(de::Unexpected::Str(v), &self));
        }
        v.parse::<u64>()
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

impl<'de> Deserialize<'de> for Counter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CounterVisitor).map(Counter)
    }
}

/// A byte buffer the outbound writers can append JSON text to: [`String`] or `Vec<u8>`.
///
/// This trait is sealed; it exists so that the writers in [`crate::stream`] accept both
/// buffer types without an intermediate copy.
pub trait Buffer: sealed::Sealed {
    /// Appends `s`.
    fn push_str(&mut self, s: &str);
    /// Reserves room for at least `additional` more bytes.
    fn reserve(&mut self, additional: usize);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for String {}
    impl Sealed for Vec<u8> {}
}

impl Buffer for String {
    #[inline]
    fn push_str(&mut self, s: &str) {
        String::push_str(self, s);
    }

    #[inline]
    fn reserve(&mut self, additional: usize) {
        String::reserve(self, additional);
    }
}

impl Buffer for Vec<u8> {
    #[inline]
    fn push_str(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }

    #[inline]
    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional);
    }
}

/// Appends `s` as a quoted JSON string, escaping exactly like `serde_json` does:
/// `"` and `\` are backslash-escaped, `\b \f \n \r \t` use their short forms, the other
/// control characters below U+0020 become `\u00XX` (lowercase hex); everything else,
/// including non-ASCII text, is copied verbatim.
pub(crate) fn write_str<B: Buffer + ?Sized>(out: &mut B, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\"");
    let bytes = s.as_bytes();
    // Fast path (base64 payloads, SIDs, typical mark names): nothing to escape. The
    // non-short-circuiting fold lets the compiler vectorize the check.
    let needs_escape = bytes.iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        out.push_str(s);
        out.push_str("\"");
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every byte matched above is ASCII, so `start..i` lies on char boundaries.
        out.push_str(&s[start..i]);
        if short.is_empty() {
            let mut hex = [0u8; 4];
            out.push_str("\\u00");
            out.push_str(char::from(HEX[usize::from(b >> 4)]).encode_utf8(&mut hex));
            out.push_str(char::from(HEX[usize::from(b & 0xf)]).encode_utf8(&mut hex));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push_str("\"");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        let mut out = String::new();
        write_str(&mut out, input);
        assert_eq!(out, expected);
        assert_eq!(out, serde_json::to_string(input).unwrap());
    }

    #[test]
    fn escapes_like_serde_json() {
        check("", r#""""#);
        check("plain/base64+==", r#""plain/base64+==""#);
        check("q\"b\\", r#""q\"b\\""#);
        check("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#);
        check("\u{0}\u{1f}\u{7f}", "\"\\u0000\\u001f\u{7f}\"");
        check("zoë 📞 \u{2028}", "\"zoë 📞 \u{2028}\"");
    }

    #[test]
    fn counters_accept_strings_and_numbers() {
        let ok = |j: &str| serde_json::from_str::<Counter>(j).map(|c| c.0).ok();
        assert_eq!(ok("\"42\""), Some(42));
        assert_eq!(ok("42"), Some(42));
        assert_eq!(ok("\"18446744073709551615\""), Some(u64::MAX));
        assert_eq!(ok("\"18446744073709551616\""), None);
        assert_eq!(ok("-1"), None);
        assert_eq!(ok("\"-1\""), None);
        assert_eq!(ok("\"+1\""), None);
        assert_eq!(ok("\"\""), None);
        assert_eq!(ok("\" 1\""), None);
        assert_eq!(ok("1.5"), None);
        assert_eq!(ok("null"), None);
    }

    #[test]
    fn cow_str_borrows_unless_escaped() {
        let s: CowStr<'_> = serde_json::from_str(r#""abc""#).unwrap();
        assert!(matches!(s.0, Cow::Borrowed("abc")));
        let s: CowStr<'_> = serde_json::from_str(r#""a\/c""#).unwrap();
        assert!(matches!(s.0, Cow::Owned(ref o) if o == "a/c"));
    }
}
