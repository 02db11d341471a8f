//! Validation of Twilio's request signatures (`X-Twilio-Signature`).
//!
//! Twilio signs every webhook and the Media Stream WebSocket upgrade with
//! `base64(HMAC-SHA1(auth_token, url + sorted params))`:
//!
//! 1. the full URL Twilio requested — scheme, host, optional port, path, query string;
//! 2. for form POSTs, each parameter name followed by its value, names sorted by bytes;
//!    a repeated name contributes each distinct value once, values sorted;
//! 3. HMAC-SHA1 keyed with the account's Auth Token, then standard base64.
//!
//! [`RequestValidator::validate`] recomputes that and compares in constant time. Like
//! Twilio's helper libraries it also accepts the signature computed over the URL with its
//! port removed, or with the scheme's default port added (443 for `https`/`wss`, 80 for
//! `http`/`ws`), because Twilio is not consistent about ports.
//!
//! The URL must be the one **Twilio** used (what you configured, or wrote in TwiML), not
//! one rebuilt from what a TLS terminator or proxy passed on: build it from a configured
//! public base URL.
//!
//! # The Media Stream WebSocket upgrade
//!
//! The upgrade request is a GET with no body, and `<Stream url>` has no query string, so
//! the signature covers the `wss://` URL alone — exactly as written in the TwiML. Check it
//! before completing the upgrade:
//!
//! ```
//! use twilio_media::signature::RequestValidator;
//!
//! let validator = RequestValidator::new("0123456789abcdef0123456789abcdef");
//! let header = "0ZvicYzAOFzBhn5l69PEtGsZ3pk="; // X-Twilio-Signature of the upgrade
//! let no_params: &[(&str, &str)] = &[];
//! assert!(validator.validate("wss://bridge.example.com/media-stream", no_params, header));
//! // Rebuilding the URL as https:// is a common mistake; it does not validate.
//! assert!(!validator.validate("https://bridge.example.com/media-stream", no_params, header));
//! ```
//!
//! # Form POSTs
//!
//! ```
//! use twilio_media::signature::RequestValidator;
//!
//! let validator = RequestValidator::new("12345");
//! let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
//! let params = [
//!     ("CallSid", "CA1234567890ABCDE"),
//!     ("Caller", "+14158675309"),
//!     ("Digits", "1234"),
//!     ("From", "+14158675309"),
//!     ("To", "+18005551212"),
//! ];
//! assert_eq!(validator.compute(url, &params), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
//! assert!(validator.validate(url, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
//! ```
//!
//! This module refuses to do I/O: it never reads headers or bodies itself, and it does not
//! log. Secrets: the validator's `Debug` prints `[redacted]`.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The query parameter Twilio adds for JSON-bodied requests.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

/// Checks (and, for simulators, computes) Twilio request signatures for one Auth Token.
///
/// Cheap to clone; holds the HMAC key schedule, never prints it.
#[derive(Clone)]
pub struct RequestValidator {
    mac: Hmac<Sha1>,
}

impl fmt::Debug for RequestValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestValidator")
            .field("auth_token", &format_args!("[redacted]"))
            .finish()
    }
}

impl RequestValidator {
    /// A validator for the account whose Auth Token is `auth_token` (or, when requests
    /// are signed with an API key's secret, that secret).
    pub fn new(auth_token: impl AsRef<[u8]>) -> Self {
        // Invariant: HMAC accepts keys of any length (longer keys are hashed, shorter
        // ones padded), so `new_from_slice` cannot fail for `Hmac<Sha1>`.
        let mac = Hmac::<Sha1>::new_from_slice(auth_token.as_ref())
            .expect("HMAC accepts keys of any length");
        Self { mac }
    }

    /// The signature Twilio would send for `url` and form `params`, over exactly this URL
    /// (no port variants). For clients that sign requests, such as simulators.
    pub fn compute<K: AsRef<str>, V: AsRef<str>>(&self, url: &str, params: &[(K, V)]) -> String {
        let params = canonical(params);
        BASE64.encode(self.mac_for(url, &params).finalize().as_bytes())
    }

    /// True when `signature` (the `X-Twilio-Signature` header) matches `url` and the
    /// decoded form `params`, or the same URL with its port removed / default port added.
    ///
    /// Comparison is constant-time. An empty, malformed or wrong-length signature is
    /// simply invalid.
    pub fn validate<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        params: &[(K, V)],
        signature: &str,
    ) -> bool {
        let Some(expected) = decode_signature(signature) else {
            return false;
        };
        let params = canonical(params);
        url_variants(url)
            .iter()
            .flatten()
            .any(|u| self.mac_for(u, &params).verify_slice(&expected).is_ok())
    }

    /// [`validate`](Self::validate) for a raw `application/x-www-form-urlencoded` body.
    pub fn validate_urlencoded(&self, url: &str, body: &[u8], signature: &str) -> bool {
        let params: Vec<(Cow<'_, str>, Cow<'_, str>)> = form_urlencoded::parse(body).collect();
        self.validate(url, &params, signature)
    }

    /// Validates a JSON-bodied request: Twilio appends `bodySHA256=<hex sha256 of the
    /// body>` to the URL's query and signs the URL alone.
    ///
    /// True only when the signature matches `url_with_query` (with the port variants) with
    /// no params **and** the `bodySHA256` query value equals the SHA-256 of `raw_body`.
    /// Pass the body bytes exactly as received; never re-serialize the JSON.
    ///
    /// ```
    /// use twilio_media::signature::RequestValidator;
    ///
    /// let validator = RequestValidator::new("a-secret");
    /// let body = br#"{"CallSid":"CA1"}"#;
    /// let (url, signature) = validator.sign_body("https://example.com/hook", body);
    /// assert!(validator.validate_body(&url, body, &signature));
    /// assert!(!validator.validate_body(&url, br#"{"CallSid":"CA2"}"#, &signature));
    /// ```
    pub fn validate_body(&self, url_with_query: &str, raw_body: &[u8], signature: &str) -> bool {
        let Some(claimed) = query_param(url_with_query, BODY_SHA256_PARAM) else {
            return false;
        };
        let no_params: &[(&str, &str)] = &[];
        let signature_ok = self.validate(url_with_query, no_params, signature);
        let body_ok = claimed.eq_ignore_ascii_case(&body_sha256_hex(raw_body));
        signature_ok && body_ok
    }

    /// Signs a JSON-bodied request the way Twilio does: returns the URL with
    /// `bodySHA256=<hex>` appended to its query, and the signature of that URL.
    pub fn sign_body(&self, url: &str, raw_body: &[u8]) -> (String, String) {
        let separator = if url.contains('?') { '&' } else { '?' };
        let signed_url = format!(
            "{url}{separator}{BODY_SHA256_PARAM}={}",
            body_sha256_hex(raw_body)
        );
        let no_params: &[(&str, &str)] = &[];
        let signature = self.compute(&signed_url, no_params);
        (signed_url, signature)
    }

    fn mac_for(&self, url: &str, params: &[(&str, &str)]) -> Hmac<Sha1> {
        let mut mac = self.mac.clone();
        mac.update(url.as_bytes());
        for (name, value) in params {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
        mac
    }
}

/// The exact string Twilio signs for `url` and `params` — handy when debugging a
/// mismatch (compare it with what you expected Twilio to have requested).
///
/// ```
/// let s = twilio_media::signature::string_to_sign(
///     "https://example.com/voice",
///     &[("To", "+1555"), ("From", "+1444"), ("To", "+1555")],
/// );
/// assert_eq!(s, "https://example.com/voiceFrom+1444To+1555");
/// ```
pub fn string_to_sign<K: AsRef<str>, V: AsRef<str>>(url: &str, params: &[(K, V)]) -> String {
    let mut s = String::from(url);
    for (name, value) in canonical(params) {
        s.push_str(name);
        s.push_str(value);
    }
    s
}

/// Lowercase hex SHA-256 of `body`, the value of the `bodySHA256` query parameter.
pub fn body_sha256_hex(body: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(body);
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

/// Params sorted by (name, value) bytes, duplicates removed: the signing order.
fn canonical<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> Vec<(&str, &str)> {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}

/// Decodes a base64 HMAC-SHA1 signature (20 bytes); `None` if malformed.
fn decode_signature(signature: &str) -> Option<[u8; 20]> {
    let mut buf = [0u8; 32];
    match BASE64.decode_slice(signature, &mut buf) {
        Ok(20) => {
            let mut out = [0u8; 20];
            out.copy_from_slice(&buf[..20]);
            Some(out)
        }
        _ => None,
    }
}

/// The first value of query parameter `name` in `url`, percent-decoded.
fn query_param<'u>(url: &'u str, name: &str) -> Option<Cow<'u, str>> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The URLs whose signatures are accepted for `url`: the URL itself, plus the URL with
/// its port removed (if it has one) or with the scheme's default port added (if not).
fn url_variants(url: &str) -> [Option<Cow<'_, str>>; 2] {
    let Some(parts) = Authority::find(url) else {
        return [Some(Cow::Borrowed(url)), None];
    };
    let other = match parts.port {
        Some(colon) => Some(format!("{}{}", &url[..colon], &url[parts.end..])),
        None => default_port(&url[..parts.scheme_end])
            .map(|port| format!("{}:{port}{}", &url[..parts.end], &url[parts.end..])),
    };
    [Some(Cow::Borrowed(url)), other.map(Cow::Owned)]
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some(80)
    } else {
        None
    }
}

/// Byte offsets of the pieces of `scheme://[userinfo@]host[:port]` in a URL.
struct Authority {
    /// End of the scheme (index of `:` in `://`).
    scheme_end: usize,
    /// Index of the `:` that starts the port, if any.
    port: Option<usize>,
    /// End of the authority (start of path, query or fragment, or the URL's end).
    end: usize,
}

impl Authority {
    fn find(url: &str) -> Option<Self> {
        let scheme_end = url.find("://")?;
        let scheme = &url[..scheme_end];
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return None;
        }
        let start = scheme_end + 3;
        let end = url[start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| start + i);
        let host_start = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
        let host_port = &url[host_start..end];
        let port = if host_port.starts_with('[') {
            // IPv6 literal: a port may only follow the closing bracket.
            let close = host_port.find(']')?;
            host_port[close..]
                .starts_with("]:")
                .then_some(host_start + close + 1)
        } else {
            host_port.rfind(':').map(|i| host_start + i)
        };
        if let Some(colon) = port
            && !url[colon + 1..end].bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(Self {
            scheme_end,
            port,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variants(url: &str) -> Vec<String> {
        url_variants(url)
            .into_iter()
            .flatten()
            .map(Cow::into_owned)
            .collect()
    }

    #[test]
    fn port_variants() {
        let check = |url: &str, expected: &[&str]| assert_eq!(variants(url), expected, "{url}");
        check(
            "https://h.example/p",
            &["https://h.example/p", "https://h.example:443/p"],
        );
        check(
            "https://h.example:443/p",
            &["https://h.example:443/p", "https://h.example/p"],
        );
        check(
            "wss://h.example/m",
            &["wss://h.example/m", "wss://h.example:443/m"],
        );
        check(
            "WSS://h.example",
            &["WSS://h.example", "WSS://h.example:443"],
        );
        check(
            "ws://h.example/m",
            &["ws://h.example/m", "ws://h.example:80/m"],
        );
        check(
            "http://h.example?x=1",
            &["http://h.example?x=1", "http://h.example:80?x=1"],
        );
        check(
            "https://h.example:8443/p?q=1#f",
            &[
                "https://h.example:8443/p?q=1#f",
                "https://h.example/p?q=1#f",
            ],
        );
        check(
            "https://u:pw@h.example/p",
            &["https://u:pw@h.example/p", "https://u:pw@h.example:443/p"],
        );
        check(
            "https://[::1]/p",
            &["https://[::1]/p", "https://[::1]:443/p"],
        );
        check(
            "https://[::1]:8443/p",
            &["https://[::1]:8443/p", "https://[::1]/p"],
        );
        check(
            "https://h.example/p:80",
            &["https://h.example/p:80", "https://h.example:443/p:80"],
        );
        check("ftp://h.example/p", &["ftp://h.example/p"]);
        check("not a url", &["not a url"]);
        check("https://h.example:x/p", &["https://h.example:x/p"]);
    }

    #[test]
    fn debug_redacts_the_token() {
        let v = RequestValidator::new("super-secret-token");
        let debug = format!("{v:?}");
        assert_eq!(debug, "RequestValidator { auth_token: [redacted] }");
    }

    #[test]
    fn malformed_signatures_are_invalid() {
        let v = RequestValidator::new("t");
        let p: &[(&str, &str)] = &[];
        let good = v.compute("https://a/b", p);
        assert!(v.validate("https://a/b", p, &good));
        for bad in [
            "",
            "=",
            "not base64!",
            "AAAA",
            &good[..27],
            &format!("{good}AAAA"),
            &good.to_lowercase(),
        ] {
            assert!(!v.validate("https://a/b", p, bad), "{bad:?}");
        }
    }

    #[test]
    fn body_hash() {
        assert_eq!(
            body_sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
