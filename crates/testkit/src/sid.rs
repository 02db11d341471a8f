//! Twilio-style SIDs: a two-letter prefix and 32 lowercase hex digits.

use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A new SID: `prefix` followed by 32 lowercase hex digits, unique within the process
/// (e.g. `new_sid("CA")` → `CA3f…`). Deterministic in creation order.
///
/// ```
/// let sid = testkit::sid::new_sid("MZ");
/// assert!(testkit::sid::is_sid("MZ", &sid));
/// ```
pub fn new_sid(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hi = splitmix64(n);
    let lo = splitmix64(n ^ 0xA5A5_A5A5_5A5A_5A5A);
    format!("{prefix}{hi:016x}{lo:016x}")
}

/// Whether `sid` is `prefix` followed by exactly 32 hex digits.
pub fn is_sid(prefix: &str, sid: &str) -> bool {
    sid.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_well_formed_and_unique() {
        let a = new_sid("CA");
        let b = new_sid("CA");
        assert_ne!(a, b);
        assert_eq!(a.len(), 34);
        assert!(is_sid("CA", &a));
        assert!(!is_sid("MZ", &a));
        assert!(!is_sid("CA", "CA123"));
    }
}
