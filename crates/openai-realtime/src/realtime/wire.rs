//! Small serde building blocks shared by the Realtime wire types: the tri-state [`Nullable`],
//! open string enums (known values plus `Other(String)`), borrowed optional strings and the
//! `into_owned` plumbing for borrowed events.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A field that can be absent, explicitly `null`, or set — the three states `session.update`
/// distinguishes (PROTOCOLS §6.3).
///
/// * [`Nullable::Absent`] — the field is not written at all: in `session.update` this leaves the
///   server's current setting unchanged; when parsing, the server did not send the field.
/// * [`Nullable::Null`] — the field is written as `null`: in `session.update` this turns the
///   feature **off** (e.g. `turn_detection: null` = manual turns, `noise_reduction: null`).
/// * [`Nullable::Value`] — the field is written with this value.
///
/// Struct fields of this type carry `#[serde(default, skip_serializing_if = "Nullable::is_absent")]`
/// so absence round-trips.
///
/// ```
/// use openai_realtime::realtime::Nullable;
/// let off: Nullable<u32> = Nullable::Null;
/// assert_eq!(serde_json::to_string(&off).unwrap(), "null");
/// assert_eq!(Nullable::from(Some(3)), Nullable::Value(3));
/// assert_eq!(Nullable::<u32>::from(None), Nullable::Null);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Nullable<T> {
    /// Not written (unchanged / not sent by the server).
    #[default]
    Absent,
    /// Written as `null` (turned off).
    Null,
    /// Written with a value.
    Value(T),
}

impl<T> Nullable<T> {
    /// True for [`Nullable::Absent`]; used by `skip_serializing_if`.
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    /// True for [`Nullable::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// The value, if one is set.
    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Value(v) => Some(v),
            Self::Absent | Self::Null => None,
        }
    }

    /// Mutable access to the value, if one is set.
    pub fn value_mut(&mut self) -> Option<&mut T> {
        match self {
            Self::Value(v) => Some(v),
            Self::Absent | Self::Null => None,
        }
    }
}

impl<T> From<Option<T>> for Nullable<T> {
    /// `Some(v)` → [`Nullable::Value`], `None` → [`Nullable::Null`] (explicitly off).
    fn from(value: Option<T>) -> Self {
        match value {
            Some(v) => Self::Value(v),
            None => Self::Null,
        }
    }
}

impl<T: Serialize> Serialize for Nullable<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // `Absent` is normally skipped by `skip_serializing_if`; standing alone it can only
            // be written as `null`.
            Self::Absent | Self::Null => serializer.serialize_none(),
            Self::Value(v) => serializer.serialize_some(v),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nullable<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A present field is either `null` or a value; absence is handled by `#[serde(default)]`.
        Ok(Option::<T>::deserialize(deserializer)?.into())
    }
}

/// Defines an open string enum: named known values plus `Other(String)` for values this crate
/// does not know yet. Serializes as the wire string; parsing never fails on an unknown string.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        ///
        /// Open enum: unknown wire values parse into `Other` and serialize back unchanged.
        /// Build values with `From<&str>` so known spellings map to their named variant.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate version does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $wire => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $( $wire => Self::$variant, )+
                    _ => Self::Other(s),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl ::serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok($name::from(v))
                    }
                    fn visit_string<E: ::serde::de::Error>(self, v: String) -> Result<$name, E> {
                        Ok($name::from(v))
                    }
                }
                deserializer.deserialize_str(V)
            }
        }
    };
}
pub(crate) use open_enum;

/// Defines a unit type that (de)serializes as one fixed string, e.g. `"auto"` inside an
/// untagged union.
macro_rules! string_literal {
    ($(#[$meta:meta])* $name:ident = $wire:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub struct $name;

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str($wire)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl ::serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str(concat!("the string \"", $wire, "\""))
                    }
                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        if v == $wire {
                            Ok($name)
                        } else {
                            Err(E::invalid_value(::serde::de::Unexpected::Str(v), &self))
                        }
                    }
                }
                deserializer.deserialize_str(V)
            }
        }
    };
}
pub(crate) use string_literal;

/// Generates `into_owned(self) -> Self<'static>` for a struct with borrowed string fields.
/// `cow` fields are `Cow<'a, str>`, `opt` fields `Option<Cow<'a, str>>`, `keep` fields own
/// their data already.
macro_rules! impl_into_owned {
    ($name:ident { cow: [$($cow:ident),* $(,)?] $(, opt: [$($opt:ident),* $(,)?])? $(, keep: [$($keep:ident),* $(,)?])? $(,)? }) => {
        impl $name<'_> {
            /// Copies every borrowed string so the event no longer borrows the input text.
            pub fn into_owned(self) -> $name<'static> {
                $name {
                    $( $cow: ::std::borrow::Cow::Owned(self.$cow.into_owned()), )*
                    $($( $opt: self.$opt.map(|c| ::std::borrow::Cow::Owned(c.into_owned())), )*)?
                    $($( $keep: self.$keep, )*)?
                }
            }
        }
    };
}
pub(crate) use impl_into_owned;

/// `Debug` stand-in for a base64 audio payload: prints only its length, so `{:?}` of an event
/// never puts audio (personal data) into logs.
pub(crate) struct AudioLen<'a>(pub(crate) &'a str);

impl fmt::Debug for AudioLen<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} base64 chars>", self.0.len())
    }
}

/// [`AudioLen`] for optional payloads.
pub(crate) fn opt_audio_len(audio: &Option<String>) -> Option<AudioLen<'_>> {
    audio.as_deref().map(AudioLen)
}

/// Deserializes an optional string, borrowing from the input when it contains no escapes
/// (`Option<Cow<str>>` alone always allocates). Use with
/// `#[serde(default, borrow, deserialize_with = "de_opt_cow")]`.
pub(crate) fn de_opt_cow<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'b>(#[serde(borrow)] Cow<'b, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(deserializer)?.map(|b| b.0))
}

/// Result of the envelope pre-pass: the `type` tag of a JSON object, if it has a string one.
/// Deserializes from JSON objects only (arrays and scalars are rejected) and skips every other
/// member without allocating.
pub(crate) struct TypeTag<'a>(pub(crate) Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for TypeTag<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = TypeTag<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut tag = None;
                while let Some(IsTypeKey(is_type)) = map.next_key()? {
                    if is_type && tag.is_none() {
                        tag = map.next_value::<MaybeStr<'de>>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(TypeTag(tag))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A map key that only records whether it is `"type"` (no allocation).
struct IsTypeKey(bool);

impl<'de> Deserialize<'de> for IsTypeKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = IsTypeKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IsTypeKey, E> {
                Ok(IsTypeKey(v == "type"))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Any JSON value; keeps it only if it is a string (borrowed when possible).
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyVisitor;
        impl<'de> Visitor<'de> for AnyVisitor {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        deserializer.deserialize_any(AnyVisitor)
    }
}

/// Fast path of the envelope: if `text` starts with `{"type":"<tag>"` (JSON whitespace allowed
/// between tokens) and the tag has no escapes, returns the tag. Anything else returns `None` and
/// the caller falls back to [`TypeTag`]. Only looks at the first few dozen bytes; the full
/// document is validated by the typed parse that follows.
pub(crate) fn sniff_leading_type(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if !b.get(i..)?.starts_with(b"\"type\"") {
        return None;
    }
    i = skip_ws(b, i + 6);
    if b.get(i) != Some(&b':') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let rest = b.get(start..)?;
    let len = rest
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    if rest.get(len) != Some(&b'"') {
        return None;
    }
    text.get(start..start + len)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        } else {
            break;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_accepts_leading_type_only() {
        assert_eq!(sniff_leading_type(r#"{"type":"a.b","x":1}"#), Some("a.b"));
        assert_eq!(sniff_leading_type(" {\n \"type\" : \"a\" }"), Some("a"));
        assert_eq!(sniff_leading_type(r#"{"event_id":"e","type":"a"}"#), None);
        assert_eq!(sniff_leading_type(r#"{"type":"a\"b"}"#), None);
        assert_eq!(sniff_leading_type(r#"{"type":5}"#), None);
        assert_eq!(sniff_leading_type(r#"{"type":"unterminated"#), None);
        assert_eq!(sniff_leading_type(r#"["type"]"#), None);
        assert_eq!(sniff_leading_type(""), None);
        assert_eq!(sniff_leading_type("{"), None);
        assert_eq!(sniff_leading_type(r#"{"typ"#), None);
    }

    #[test]
    fn type_tag_borrows_and_rejects_non_objects() {
        let text = r#"{"event_id":"e","nested":{"type":"no"},"type":"x.y"}"#;
        let tag: TypeTag<'_> = serde_json::from_str(text).unwrap();
        assert!(matches!(tag.0, Some(Cow::Borrowed("x.y"))));
        let tag: TypeTag<'_> = serde_json::from_str(r#"{"type":[1,{"a":2}],"b":null}"#).unwrap();
        assert!(tag.0.is_none());
        assert!(serde_json::from_str::<TypeTag<'_>>(r#"["x"]"#).is_err());
        assert!(serde_json::from_str::<TypeTag<'_>>("7").is_err());
    }

    #[test]
    fn nullable_three_states() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct S {
            #[serde(default, skip_serializing_if = "Nullable::is_absent")]
            f: Nullable<u32>,
        }
        for (json, state) in [
            ("{}", Nullable::Absent),
            (r#"{"f":null}"#, Nullable::Null),
            (r#"{"f":4}"#, Nullable::Value(4)),
        ] {
            let s: S = serde_json::from_str(json).unwrap();
            assert_eq!(s.f, state);
            assert_eq!(serde_json::to_string(&s).unwrap(), json);
        }
    }
}
