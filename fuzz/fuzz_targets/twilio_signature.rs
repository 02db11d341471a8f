//! `RequestValidator` on arbitrary requests: whatever the URL, body and `X-Twilio-Signature`
//! header, validation answers `true` or `false` and never panics.
//!
//! Input layout (so seeds stay readable): `token \n url \n signature \n body`, split on the
//! first three newlines; missing parts are empty, the body may contain anything.
//!
//! Invariants:
//! * `validate_urlencoded` never panics, and accepts the signature `compute` produces for the
//!   same URL and decoded body (sign → validate round trip); so does `validate` with the
//!   pairs of `Params::from_urlencoded`;
//! * `sign_body` → `validate_body` round-trips, and a different body is refused;
//! * `string_to_sign` starts with the URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twilio_media::signature::{self, RequestValidator};
use twilio_media::webhook::Params;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == b'\n');
    let token = parts.next().unwrap_or_default();
    let url = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let claimed = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default();

    let validator = RequestValidator::new(token);

    // Arbitrary header: must simply answer.
    let claimed_ok = validator.validate_urlencoded(&url, body, &claimed);
    let _ = validator.validate_body(&url, body, &claimed);

    // Round trip: what we compute validates.
    let params = Params::from_urlencoded(body);
    let expected = validator.compute(&url, params.pairs());
    assert!(
        validator.validate_urlencoded(&url, body, &expected),
        "computed signature {expected:?} does not validate for url {url:?}"
    );
    assert!(validator.validate(&url, params.pairs(), &expected));
    if claimed == expected {
        assert!(claimed_ok);
    }

    let to_sign = signature::string_to_sign(&url, params.pairs());
    assert!(to_sign.starts_with(&*url));

    // JSON-bodied requests: sign_body → validate_body. `sign_body` appends to the URL as
    // given, so the round trip only holds for URLs a signer would use: no fragment, and no
    // `bodySHA256` already in the query (the validator reads the first one).
    let (signed_url, body_signature) = validator.sign_body(&url, body);
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let plain = !url.contains('#')
        && Params::from_urlencoded(query.as_bytes())
            .get(signature::BODY_SHA256_PARAM)
            .is_none();
    if plain {
        assert!(
            validator.validate_body(&signed_url, body, &body_signature),
            "sign_body output does not validate for url {url:?}"
        );
    }
    let mut other_body = body.to_vec();
    other_body.push(b'x');
    assert!(!validator.validate_body(&signed_url, &other_body, &body_signature));
});
