//! Console sign-in: the admin token exchanged for a session cookie, the server-side session
//! table, and the CSRF token of each session.
//!
//! * The session id is 32 random bytes (hex) from the OS RNG; the cookie carries only that id
//!   (`HttpOnly`, `SameSite=Strict`, `Path=/console`, `Secure` when the console is reached over
//!   HTTPS) and lives [`SESSION_TTL`]. The table holds at most [`MAX_SESSIONS`]; signing in
//!   beyond that drops the session closest to expiry.
//! * Every state-changing request (`POST`) must carry the session's CSRF token (a form field),
//!   compared in constant time; tokens (admin and CSRF) are compared by their SHA-256 digests so
//!   neither content nor length leaks through timing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderMap;
use http::header;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The cookie's name.
pub(crate) const COOKIE: &str = "pa_console";
/// How long a session lasts after sign-in.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once.
pub(crate) const MAX_SESSIONS: usize = 256;

/// Whether `given` equals `expected`, in constant time (over their SHA-256 digests).
pub(crate) fn same_secret(expected: &str, given: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    bool::from(given.as_slice().ct_eq(expected.as_slice()))
}

/// 32 random bytes as 64 hex digits.
fn random_id() -> String {
    format!(
        "{}{}",
        crate::tokens::random_hex(),
        crate::tokens::random_hex()
    )
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The CSRF token of its forms.
    pub(crate) csrf: String,
    expires: Instant,
}

/// The server-side session table.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    table: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // Inserts and removes only: a poisoned lock leaves the map consistent.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session; returns its id.
    pub(crate) fn create(&self, now: Instant) -> String {
        let id = random_id();
        let mut table = self.table();
        table.retain(|_, s| s.expires > now);
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            table.remove(&oldest);
        }
        table.insert(
            id.clone(),
            Session {
                csrf: random_id(),
                expires: now + SESSION_TTL,
            },
        );
        id
    }

    /// The live session of the request's cookie.
    pub(crate) fn of_request(&self, headers: &HeaderMap, now: Instant) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let mut table = self.table();
        match table.get(id) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                table.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends the request's session.
    pub(crate) fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            self.table().remove(id);
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value of a new session (`secure`: the console is reached over HTTPS).
pub(crate) fn session_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn cleared_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the console is reached over HTTPS: `server.public_url` is `https` and the request
/// did not come straight to a loopback address (a browser on the same machine reaches the
/// plain-HTTP listener, where a `Secure` cookie would never be sent back).
pub(crate) fn is_https(public_https: bool, headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    public_https && !loopback
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        h
    }

    #[test]
    fn sessions_expire_and_end() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions.create(t0);
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        let h = headers(&format!("other=1; {COOKIE}={id}"));
        let s = sessions.of_request(&h, t0).expect("signed in");
        assert_eq!(s.csrf.len(), 64);
        assert_ne!(s.csrf, id);
        assert!(sessions.of_request(&h, t0 + SESSION_TTL).is_none());
        // Expired sessions are forgotten.
        assert!(sessions.of_request(&h, t0).is_none());
        let id = sessions.create(t0);
        let h = headers(&format!("{COOKIE}={id}"));
        sessions.remove(&h);
        assert!(sessions.of_request(&h, t0).is_none());
        assert!(
            sessions
                .of_request(&headers("pa_console=forged"), t0)
                .is_none()
        );
        assert!(sessions.of_request(&HeaderMap::new(), t0).is_none());
    }

    #[test]
    fn the_table_is_bounded() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let first = sessions.create(t0);
        for i in 1..=MAX_SESSIONS as u64 {
            sessions.create(t0 + Duration::from_millis(i));
        }
        assert_eq!(sessions.table().len(), MAX_SESSIONS);
        assert!(
            sessions
                .of_request(&headers(&format!("{COOKIE}={first}")), t0)
                .is_none()
        );
    }

    #[test]
    fn cookies_and_secrets() {
        assert_eq!(
            session_cookie("ab", true),
            "pa_console=ab; Path=/console; Max-Age=43200; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            session_cookie("ab", false),
            "pa_console=ab; Path=/console; Max-Age=43200; HttpOnly; SameSite=Strict"
        );
        assert!(same_secret("0123456789abcdef", "0123456789abcdef"));
        assert!(!same_secret("0123456789abcdef", "0123456789abcdeX"));
        assert!(!same_secret("0123456789abcdef", ""));
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("bridge.example.com"));
        assert!(is_https(true, &h));
        assert!(!is_https(false, &h));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(!is_https(true, &h));
    }
}
