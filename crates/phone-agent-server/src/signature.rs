//! Twilio request signatures, checked with [`twilio_media::signature::RequestValidator`].

use twilio_media::signature::RequestValidator;

use crate::config::Secret;

/// True when `header` (the `X-Twilio-Signature` value, if present) signs `url` and `params` with
/// `key`. A missing header is invalid.
pub(crate) fn is_valid(
    key: &Secret,
    url: &str,
    params: &[(String, String)],
    header: Option<&str>,
) -> bool {
    match header {
        Some(signature) => RequestValidator::new(key.expose()).validate(url, params, signature),
        None => false,
    }
}
