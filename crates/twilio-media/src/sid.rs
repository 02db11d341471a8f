//! Newtypes for Twilio SIDs (string identifiers such as `CA…` for calls).
//!
//! A SID is a two-letter prefix followed by 32 hexadecimal digits. Parsing is
//! **permissive**: any string is accepted, so a format change on Twilio's side never
//! breaks a call. Call [`is_well_formed`](CallSid::is_well_formed) where you want
//! strictness (for example before putting a SID into a REST path).
//!
//! The newtypes wrap a `Cow<'a, str>`: a SID parsed out of a Media Streams message borrows
//! from the message text, so the per-frame path does not allocate. Use
//! [`into_owned`](StreamSid::into_owned) to keep one beyond the message's lifetime.
//!
//! ```
//! use twilio_media::{CallSid, StreamSid};
//!
//! let sid = CallSid::new("CA00000000000000000000000000000001");
//! assert!(sid.is_well_formed());
//! assert_eq!(sid, "CA00000000000000000000000000000001");
//!
//! // Anything parses; only `is_well_formed` is strict.
//! let odd = StreamSid::new("not-a-sid");
//! assert!(!odd.is_well_formed());
//! let kept: StreamSid<'static> = odd.into_owned();
//! assert_eq!(kept.as_str(), "not-a-sid");
//! ```

use std::borrow::{Borrow, Cow};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// True when `s` is `prefix` followed by exactly 32 ASCII hex digits (either case).
fn well_formed(s: &str, prefix: &str) -> bool {
    s.len() == prefix.len() + 32
        && s.starts_with(prefix)
        && s.as_bytes()[prefix.len()..]
            .iter()
            .all(u8::is_ascii_hexdigit)
}

macro_rules! sid {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name<'a>(Cow<'a, str>);

        impl<'a> $name<'a> {
            #[doc = concat!("The two-letter prefix of a well-formed SID of this kind: `", $prefix, "`.")]
            pub const PREFIX: &'static str = $prefix;

            /// Wraps a string without checking it (see [`is_well_formed`](Self::is_well_formed)).
            pub fn new(sid: impl Into<Cow<'a, str>>) -> Self {
                Self(sid.into())
            }

            /// The SID text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            #[doc = concat!("True when the SID is `", $prefix, "` followed by 32 hexadecimal digits.")]
            pub fn is_well_formed(&self) -> bool {
                well_formed(&self.0, $prefix)
            }

            /// Converts into a SID that owns its text.
            pub fn into_owned(self) -> $name<'static> {
                $name(Cow::Owned(self.0.into_owned()))
            }

            /// A SID borrowing this one's text (cheap, no allocation).
            pub fn as_borrowed(&self) -> $name<'_> {
                $name(Cow::Borrowed(&self.0))
            }

            /// The inner string.
            pub fn into_inner(self) -> Cow<'a, str> {
                self.0
            }
        }

        impl fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.as_str()).finish()
            }
        }

        impl fmt::Display for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name<'_> {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name<'_> {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl<'a> From<&'a str> for $name<'a> {
            fn from(sid: &'a str) -> Self {
                Self(Cow::Borrowed(sid))
            }
        }

        impl From<String> for $name<'static> {
            fn from(sid: String) -> Self {
                Self(Cow::Owned(sid))
            }
        }

        impl PartialEq<str> for $name<'_> {
            fn eq(&self, other: &str) -> bool {
                *self.0 == *other
            }
        }

        impl PartialEq<&str> for $name<'_> {
            fn eq(&self, other: &&str) -> bool {
                *self.0 == **other
            }
        }

        impl Serialize for $name<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de: 'a, 'a> Deserialize<'de> for $name<'a> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                crate::json::cow_str(deserializer).map(Self)
            }
        }
    };
}

sid!(
    /// A Media Stream SID (`MZ` + 32 hex digits), the `streamSid` of every stream message.
    StreamSid,
    "MZ"
);

sid!(
    /// A Call SID (`CA` + 32 hex digits): the call to control through the REST API.
    CallSid,
    "CA"
);

sid!(
    /// An Account SID (`AC` + 32 hex digits): the owner of a call and the REST path prefix.
    AccountSid,
    "AC"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formedness() {
        let check = |s: &str, expected: bool| {
            assert_eq!(CallSid::new(s).is_well_formed(), expected, "{s:?}");
        };
        check("CA00000000000000000000000000000001", true);
        check("CAabcdefABCDEF0123456789abcdef0123", true);
        check("CA0000000000000000000000000000001", false); // 31 digits
        check("CA000000000000000000000000000000011", false); // 33 digits
        check("MZ00000000000000000000000000000001", false); // wrong prefix
        check("ca00000000000000000000000000000001", false); // prefix is case-sensitive
        check("CA0000000000000000000000000000000g", false);
        check("", false);
        assert!(StreamSid::new("MZ00000000000000000000000000000001").is_well_formed());
        assert!(AccountSid::new("AC00000000000000000000000000000001").is_well_formed());
    }

    #[test]
    fn serde_borrows_and_round_trips() {
        let json = r#""MZ00000000000000000000000000000001""#;
        let sid: StreamSid<'_> = serde_json::from_str(json).unwrap();
        assert!(matches!(sid.0, Cow::Borrowed(_)));
        assert_eq!(serde_json::to_string(&sid).unwrap(), json);
        assert_eq!(format!("{sid}"), "MZ00000000000000000000000000000001");
        assert_eq!(
            format!("{sid:?}"),
            r#"StreamSid("MZ00000000000000000000000000000001")"#
        );
        let owned: StreamSid<'static> = sid.clone().into_owned();
        assert_eq!(owned, sid);
    }
}
