//! Stateless per-call stream tokens, carried in the stream URL's path.
//!
//! `/voice` mints a token for the call and writes the stream URL as
//! `wss://HOST/media/<token>`. Twilio signs the upgrade over that exact URL, so the signature
//! covers the token, and the token is checked **before** the upgrade is accepted: a missing,
//! malformed, forged or expired token is refused with 403 (no slot, no session). After `start`,
//! the token's CallSid (and account) must be the stream's.
//!
//! A token is `<account>.<call_sid>.<expiry>.<mac>`: the AccountSid (`-` when the webhook had
//! none), the CallSid, the expiry in Unix seconds, and
//! `base64url(HMAC-SHA256(key, "phone-agent stream token v1\n" account "\n" call_sid "\n"
//! expiry))`. Nothing is stored: any instance with the same key checks it, so
//! `twilio.require_stream_token` works behind a load balancer without session affinity. The key
//! is `twilio.stream_token_secret` when set, else derived from the Twilio auth token
//! (`HMAC-SHA256(auth_token, "phone-agent stream token key v1")`, domain-separated from request
//! signatures), else random per process (one instance only).
//!
//! Tokens are bearer credentials that stay valid until they expire; [`UsedStreams`] makes each
//! CallSid's stream acceptable once per instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const DOMAIN: &str = "phone-agent stream token v1";
const KEY_DOMAIN: &str = "phone-agent stream token key v1";
/// Longest token accepted (an account and a call SID of 34 characters, 20 digits, 43 of MAC).
const MAX_TOKEN_LEN: usize = 160;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The stream URL carried no token.
    #[error("the stream URL has no token")]
    Missing,
    /// Not a token, or its MAC does not verify (forged or minted with another key).
    #[error("malformed or forged stream token")]
    Invalid,
    /// Past its expiry.
    #[error("expired stream token")]
    Expired,
    /// Minted for another call (or account).
    #[error("the stream token belongs to another call")]
    WrongCall,
    /// This call's stream was already accepted by this instance.
    #[error("this call's stream was already accepted")]
    AlreadyUsed,
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamClaims {
    /// The CallSid the token was minted for.
    pub call_sid: String,
    /// The AccountSid of the webhook (`None` when it carried none).
    pub account_sid: Option<String>,
    /// Expiry, in Unix seconds.
    pub expires: u64,
}

impl StreamClaims {
    /// Checks the stream's `start` against the token: same call, same account (when both
    /// are known).
    pub fn check_start(&self, call_sid: &str, account_sid: Option<&str>) -> Result<(), TokenError> {
        if self.call_sid != call_sid {
            return Err(TokenError::WrongCall);
        }
        match (&self.account_sid, account_sid) {
            (Some(a), Some(b)) if a != b => Err(TokenError::WrongCall),
            _ => Ok(()),
        }
    }
}

/// The HMAC key that mints and checks tokens.
#[derive(Clone)]
pub struct StreamTokenKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for StreamTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamTokenKey([redacted])")
    }
}

impl StreamTokenKey {
    /// A key from an explicit secret (`twilio.stream_token_secret`).
    pub fn from_secret(secret: &str) -> Self {
        StreamTokenKey {
            key: secret.as_bytes().to_vec(),
        }
    }

    /// A key derived from the Twilio auth token, domain-separated from request signatures.
    pub fn derived_from_auth_token(auth_token: &str) -> Self {
        let mut mac = hmac(auth_token.as_bytes());
        mac.update(KEY_DOMAIN.as_bytes());
        StreamTokenKey {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    /// A random key for this process only (256 bits from the system RNG, as hex).
    pub fn random() -> Self {
        StreamTokenKey {
            key: format!("{}{}", random_hex(), random_hex()).into_bytes(),
        }
    }

    /// A token for `call_sid` of `account_sid`, valid until `expires` (Unix seconds).
    pub fn mint(&self, call_sid: &str, account_sid: Option<&str>, expires: u64) -> String {
        let account = account_sid.unwrap_or("-");
        let mac = self.mac(account, call_sid, expires);
        format!(
            "{account}.{call_sid}.{expires}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// A stable pseudonym of `value` (a caller's number) for a third party: `caller-` and the
    /// first 128 bits of HMAC-SHA256 under this key (domain-separated from stream tokens), as
    /// hex. Not reversible without the key (a plain hash of a phone number would be, by brute
    /// force); the same across instances and restarts when the key is configured
    /// (`twilio.stream_token_secret` or the auth token), per process otherwise.
    pub fn pseudonym(&self, value: &str) -> String {
        let mut mac = hmac(&self.key);
        mac.update(b"phone-agent pseudonym v1\0");
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(7 + 32);
        out.push_str("caller-");
        for b in &digest[..16] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// A token valid for `ttl` from now.
    pub fn mint_for(&self, call_sid: &str, account_sid: Option<&str>, ttl: Duration) -> String {
        self.mint(
            call_sid,
            account_sid,
            unix_now().saturating_add(ttl.as_secs().max(1)),
        )
    }

    /// Checks a token (its MAC and expiry against `now`, in Unix seconds).
    pub fn verify(&self, token: Option<&str>, now: u64) -> Result<StreamClaims, TokenError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let mut parts = token.split('.');
        let (Some(account), Some(call_sid), Some(expires), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Invalid);
        };
        let is_sid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
        if !(is_sid(call_sid) && (account == "-" || is_sid(account))) {
            return Err(TokenError::Invalid);
        }
        let expires: u64 = expires.parse().map_err(|_| TokenError::Invalid)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| TokenError::Invalid)?;
        self.mac(account, call_sid, expires)
            .verify_slice(&mac)
            .map_err(|_| TokenError::Invalid)?;
        if expires <= now {
            return Err(TokenError::Expired);
        }
        Ok(StreamClaims {
            call_sid: call_sid.to_owned(),
            account_sid: (account != "-").then(|| account.to_owned()),
            expires,
        })
    }

    fn mac(&self, account: &str, call_sid: &str, expires: u64) -> Hmac<Sha256> {
        let mut mac = hmac(&self.key);
        mac.update(DOMAIN.as_bytes());
        for field in [account, call_sid, &expires.to_string()] {
            mac.update(b"\n");
            mac.update(field.as_bytes());
        }
        mac
    }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// Seconds since the Unix epoch (tokens must be checkable on any instance, so wall-clock time).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The CallSids whose stream this instance accepted, until their token expired (after that the
/// token is refused anyway). Bounded: when full of unexpired entries, new streams are refused
/// (fail closed) rather than the set growing without limit.
#[derive(Debug)]
pub struct UsedStreams {
    max: usize,
    inner: Mutex<HashMap<String, u64>>,
}

impl UsedStreams {
    /// An empty set holding at most `max` CallSids.
    pub fn new(max: usize) -> Self {
        UsedStreams {
            max,
            inner: Mutex::new(HashMap::new()),
        }
    }

    /// Records `claims`' CallSid as used; refused when it already was (or the set is full).
    pub fn use_once(&self, claims: &StreamClaims, now: u64) -> Result<(), TokenError> {
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= self.max {
            map.retain(|_, expires| *expires > now);
        }
        if map.contains_key(&claims.call_sid) {
            return Err(TokenError::AlreadyUsed);
        }
        if map.len() >= self.max {
            tracing::warn!(max = self.max, "too many recent streams to track; refusing");
            return Err(TokenError::AlreadyUsed);
        }
        map.insert(claims.call_sid.clone(), claims.expires);
        Ok(())
    }

    /// CallSids tracked (including expired ones not yet pruned).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 128 random bits as 32 hex characters, from the process's cryptographic RNG (ring, via the
/// rustls provider already linked for TLS).
pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    if rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .is_err()
    {
        // The OS RNG failing is not recoverable in any meaningful way; fall back to a hash of
        // the time and an address so keys stay unique per process.
        let seed = format!("{:?}{:p}", Instant::now(), &bytes);
        let h =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), seed);
        bytes[..8].copy_from_slice(&h.to_le_bytes());
    }
    let mut out = String::with_capacity(32);
    for b in bytes {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xF), 16).unwrap_or('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL: &str = "CA00000000000000000000000000000001";
    const ACCOUNT: &str = "AC00000000000000000000000000000001";

    #[test]
    fn minted_tokens_verify_on_any_instance_with_the_key() {
        let a = StreamTokenKey::from_secret("s3cret");
        let b = StreamTokenKey::from_secret("s3cret");
        let token = a.mint(CALL, Some(ACCOUNT), 1000);
        assert!(token.len() <= MAX_TOKEN_LEN);
        assert!(!token.contains(['/', '?', '#', '+', '=']), "{token}");
        let claims = b.verify(Some(&token), 999).unwrap();
        assert_eq!(claims.call_sid, CALL);
        assert_eq!(claims.account_sid.as_deref(), Some(ACCOUNT));
        assert_eq!(claims.check_start(CALL, Some(ACCOUNT)), Ok(()));
        assert_eq!(
            claims.check_start("CA2", Some(ACCOUNT)),
            Err(TokenError::WrongCall)
        );
        assert_eq!(
            claims.check_start(CALL, Some("AC2")),
            Err(TokenError::WrongCall)
        );
        let no_account = a.mint(CALL, None, 1000);
        assert_eq!(b.verify(Some(&no_account), 1).unwrap().account_sid, None);
    }

    #[test]
    fn refusals() {
        let key = StreamTokenKey::from_secret("s3cret");
        let token = key.mint(CALL, Some(ACCOUNT), 1000);
        assert_eq!(key.verify(None, 1), Err(TokenError::Missing));
        assert_eq!(key.verify(Some(""), 1), Err(TokenError::Missing));
        assert_eq!(key.verify(Some(&token), 1000), Err(TokenError::Expired));
        assert_eq!(key.verify(Some("nope"), 1), Err(TokenError::Invalid));
        let other = StreamTokenKey::from_secret("other");
        assert_eq!(other.verify(Some(&token), 1), Err(TokenError::Invalid));
        // Any change to a field breaks the MAC.
        let later = token.replace(".1000.", ".9999.");
        assert_eq!(key.verify(Some(&later), 1), Err(TokenError::Invalid));
        let other_call = token.replace(CALL, "CA00000000000000000000000000000002");
        assert_eq!(key.verify(Some(&other_call), 1), Err(TokenError::Invalid));
        let long = "A".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(key.verify(Some(&long), 1), Err(TokenError::Invalid));
    }

    #[test]
    fn derived_keys_are_domain_separated_from_the_auth_token() {
        let derived = StreamTokenKey::derived_from_auth_token("tok");
        let raw = StreamTokenKey::from_secret("tok");
        let token = derived.mint(CALL, None, 10);
        assert!(derived.verify(Some(&token), 1).is_ok());
        assert_eq!(raw.verify(Some(&token), 1), Err(TokenError::Invalid));
        let r1 = StreamTokenKey::random();
        let r2 = StreamTokenKey::random();
        assert_eq!(
            r2.verify(Some(&r1.mint(CALL, None, 10)), 1),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn each_stream_is_used_once_and_the_set_is_bounded() {
        let used = UsedStreams::new(2);
        let claims = |sid: &str, expires| StreamClaims {
            call_sid: sid.into(),
            account_sid: None,
            expires,
        };
        assert_eq!(used.use_once(&claims("CA1", 10), 1), Ok(()));
        assert_eq!(
            used.use_once(&claims("CA1", 10), 2),
            Err(TokenError::AlreadyUsed)
        );
        assert_eq!(used.use_once(&claims("CA2", 10), 2), Ok(()));
        assert_eq!(
            used.use_once(&claims("CA3", 10), 3),
            Err(TokenError::AlreadyUsed),
            "full of unexpired entries: fail closed"
        );
        // Expired entries make room.
        assert_eq!(used.use_once(&claims("CA3", 30), 11), Ok(()));
        assert_eq!(used.len(), 1);
    }
}
