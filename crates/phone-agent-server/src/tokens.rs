//! Per-call stream tokens (defense in depth on top of request signatures).
//!
//! `/voice` issues a random token bound to the `CallSid` and writes it into the TwiML as a
//! `<Parameter name="token">`; when the stream's `start` message arrives, the token must map to
//! the same `CallSid`. Tokens are single-use and expire after a short TTL, so a stolen stream URL
//! cannot be replayed.
//!
//! Tokens live in this process's memory: behind a load balancer, `/voice` and `/media` of one
//! call must reach the same instance, or `twilio.require_stream_token` must be off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The stream carried no token parameter.
    #[error("the stream has no token parameter")]
    Missing,
    /// Unknown, already used or expired.
    #[error("unknown, used or expired stream token")]
    Unknown,
    /// Issued for another call.
    #[error("the stream token belongs to another call")]
    WrongCall,
}

/// The token store.
#[derive(Debug)]
pub struct StreamTokens {
    ttl: Duration,
    inner: Mutex<HashMap<String, (String, Instant)>>,
}

impl StreamTokens {
    /// An empty store whose tokens live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        StreamTokens {
            ttl,
            inner: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a fresh token for `call_sid`.
    pub fn issue(&self, call_sid: &str, now: Instant) -> String {
        let token = random_token();
        let mut map = self.lock();
        map.retain(|_, (_, expires)| *expires > now);
        map.insert(token.clone(), (call_sid.to_owned(), now + self.ttl));
        token
    }

    /// Consumes `token`, checking it was issued for `call_sid` and has not expired.
    pub fn redeem(
        &self,
        token: Option<&str>,
        call_sid: &str,
        now: Instant,
    ) -> Result<(), TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        let mut map = self.lock();
        let (sid, expires) = map.remove(token).ok_or(TokenError::Unknown)?;
        if expires <= now {
            return Err(TokenError::Unknown);
        }
        if sid != call_sid {
            return Err(TokenError::WrongCall);
        }
        Ok(())
    }

    /// Tokens currently stored (including expired ones not yet pruned).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        // A panic while holding this lock cannot leave the map inconsistent (single insert or
        // remove), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// 128 random bits as 32 hex characters, from the process's cryptographic RNG (ring, via the
/// rustls provider already linked for TLS).
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .is_err()
    {
        // The OS RNG failing is not recoverable in any meaningful way; fall back to a hash of
        // the time and an address so tokens stay unique (they are defense in depth, the
        // signature is the primary check).
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

    #[test]
    fn issue_and_redeem_once() {
        let store = StreamTokens::new(Duration::from_secs(60));
        let now = Instant::now();
        let t = store.issue("CA1", now);
        assert_eq!(t.len(), 32);
        assert_eq!(store.redeem(Some(&t), "CA1", now), Ok(()));
        assert_eq!(store.redeem(Some(&t), "CA1", now), Err(TokenError::Unknown));
    }

    #[test]
    fn refusals() {
        let store = StreamTokens::new(Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(store.redeem(None, "CA1", now), Err(TokenError::Missing));
        assert_eq!(
            store.redeem(Some("nope"), "CA1", now),
            Err(TokenError::Unknown)
        );
        let t = store.issue("CA1", now);
        assert_eq!(
            store.redeem(Some(&t), "CA2", now),
            Err(TokenError::WrongCall)
        );
        let t = store.issue("CA1", now);
        assert_eq!(
            store.redeem(Some(&t), "CA1", now + Duration::from_secs(61)),
            Err(TokenError::Unknown)
        );
    }

    #[test]
    fn expired_tokens_are_pruned_and_tokens_differ() {
        let store = StreamTokens::new(Duration::from_secs(1));
        let now = Instant::now();
        let a = store.issue("CA1", now);
        let b = store.issue("CA2", now + Duration::from_secs(5));
        assert_ne!(a, b);
        assert_eq!(store.len(), 1);
    }
}
