//! Twilio request signatures (`X-Twilio-Signature`), computed the way Twilio does
//! (PROTOCOLS.md §4): HMAC-SHA1 keyed with the auth token over the full URL followed by every
//! form parameter as `name` + `value`, names sorted by bytes, repeated values deduplicated and
//! sorted; the digest is base64-encoded.
//!
//! This is the *signing* side, written independently of the server's validator.
//!
//! ```
//! use testkit::twilio::signature::sign;
//! let sig = sign(
//!     "12345",
//!     "https://mycompany.com/myapp.php?foo=1&bar=2",
//!     &[
//!         ("CallSid", "CA1234567890ABCDE"),
//!         ("Caller", "+14158675309"),
//!         ("Digits", "1234"),
//!         ("From", "+14158675309"),
//!         ("To", "+18005551212"),
//!     ],
//! );
//! assert_eq!(sig, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
//! ```

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use hmac::{KeyInit, Mac};

/// The signature Twilio would send for a request to `url` with form `params`.
pub fn sign<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
) -> String {
    let mut by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (k, v) in params {
        by_name.entry(k.as_ref()).or_default().insert(v.as_ref());
    }
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("invariant: HMAC accepts keys of any length");
    mac.update(url.as_bytes());
    for (k, vs) in &by_name {
        for v in vs {
            mac.update(k.as_bytes());
            mac.update(v.as_bytes());
        }
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::sign;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn reference_vectors() {
        let voice = [
            ("AccountSid", "AC00000000000000000000000000000001"),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", "CA00000000000000000000000000000001"),
            ("CallStatus", "ringing"),
            ("Called", "+15005550006"),
            ("Caller", "+14155551234"),
            ("Direction", "inbound"),
            ("From", "+14155551234"),
            ("To", "+15005550006"),
        ];
        assert_eq!(
            sign(TOKEN, "https://bridge.example.com/twilio/voice", &voice),
            "UXJ3AqS1hsy5DvIGZslBGZ8WJG0="
        );
        assert_eq!(
            sign(TOKEN, "https://bridge.example.com:443/twilio/voice", &voice),
            "QR/DDkM+xONLFaWAnJYy4wPTY2U="
        );
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            sign(TOKEN, "wss://bridge.example.com/media-stream", &none),
            "0ZvicYzAOFzBhn5l69PEtGsZ3pk="
        );
        assert_eq!(
            sign(TOKEN, "https://bridge.example.com/media-stream", &none),
            "EeRO3/dKOQfrpbyue97XBwvuqA4="
        );
        let v5 = [
            ("CallSid", "CA00000000000000000000000000000001"),
            ("CallerName", "Zoë O'Neil & Co"),
            ("From", "+441234567890"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "initiated"),
            ("aLowercaseName", "x"),
        ];
        assert_eq!(
            sign(TOKEN, "https://bridge.example.com/twilio/status", &v5),
            "u/K0iNOa9yYR0rAiI7KbCgxbgyM="
        );
    }
}
