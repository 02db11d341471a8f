//! Request-signature validation against the shared fixture vectors.

use serde_json::Value;
use twilio_media::signature::{self, RequestValidator, body_sha256_hex};

const VECTORS: &str = include_str!("fixtures/twilio_signature_vectors.json");

struct Vector {
    name: String,
    token: String,
    url: String,
    params: Vec<(String, String)>,
    string_to_sign: String,
    expected: String,
    raw_body: Option<String>,
    body_sha256_hex: Option<String>,
}

fn vectors() -> Vec<Vector> {
    let root: Value = serde_json::from_str(VECTORS).expect("fixture is valid JSON");
    let text = |v: &Value, key: &str| -> String {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} is a string"))
            .to_owned()
    };
    root["vectors"]
        .as_array()
        .expect("vectors is an array")
        .iter()
        .map(|v| {
            let mut params = Vec::new();
            for (name, value) in v["params"].as_object().expect("params is an object") {
                match value {
                    Value::String(s) => params.push((name.clone(), s.clone())),
                    Value::Array(values) => {
                        for s in values {
                            params
                                .push((name.clone(), s.as_str().expect("string value").to_owned()));
                        }
                    }
                    other => panic!("unexpected param value {other}"),
                }
            }
            Vector {
                name: text(v, "name"),
                token: text(v, "auth_token"),
                url: text(v, "url"),
                params,
                string_to_sign: text(v, "string_to_sign"),
                expected: text(v, "expected_signature"),
                raw_body: v["raw_body"].as_str().map(str::to_owned),
                body_sha256_hex: v["body_sha256_hex"].as_str().map(str::to_owned),
            }
        })
        .collect()
}

fn find<'v>(vectors: &'v [Vector], name: &str) -> &'v Vector {
    vectors
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("vector {name} is in the fixture"))
}

#[test]
fn every_vector_computes_and_validates() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 9, "fixture changed: review this test");
    for v in &vectors {
        let validator = RequestValidator::new(&v.token);
        assert_eq!(
            signature::string_to_sign(&v.url, &v.params),
            v.string_to_sign,
            "{}",
            v.name
        );
        assert_eq!(
            validator.compute(&v.url, &v.params),
            v.expected,
            "{}",
            v.name
        );
        assert!(
            validator.validate(&v.url, &v.params, &v.expected),
            "{}",
            v.name
        );
        // Any other token, URL or parameter set fails.
        assert!(
            !RequestValidator::new("wrong").validate(&v.url, &v.params, &v.expected),
            "{}",
            v.name
        );
        assert!(
            !validator.validate(&format!("{}x", v.url), &v.params, &v.expected),
            "{}",
            v.name
        );
        let mut extra = v.params.clone();
        extra.push(("Extra".into(), "1".into()));
        assert!(
            !validator.validate(&v.url, &extra, &v.expected),
            "{}",
            v.name
        );
        // Parameter order does not matter.
        let mut reversed = v.params.clone();
        reversed.reverse();
        assert!(
            validator.validate(&v.url, &reversed, &v.expected),
            "{}",
            v.name
        );
        // Body variant.
        if let (Some(body), Some(hash)) = (&v.raw_body, &v.body_sha256_hex) {
            assert_eq!(&body_sha256_hex(body.as_bytes()), hash, "{}", v.name);
            assert!(
                validator.validate_body(&v.url, body.as_bytes(), &v.expected),
                "{}",
                v.name
            );
            let tampered = body.replace("stream-started", "stream-stopped");
            assert!(
                !validator.validate_body(&v.url, tampered.as_bytes(), &v.expected),
                "{}",
                v.name
            );
        }
    }
}

#[test]
fn port_variants_validate_both_ways() {
    let vectors = vectors();
    for (plain, with_port) in [
        (
            "voice_webhook_form_post",
            "voice_webhook_form_post_with_port_443",
        ),
        (
            "media_stream_websocket_upgrade",
            "media_stream_websocket_upgrade_with_port",
        ),
    ] {
        let (plain, with_port) = (find(&vectors, plain), find(&vectors, with_port));
        let validator = RequestValidator::new(&plain.token);
        // Twilio signed with :443 but we know the URL without it, and vice versa.
        assert!(
            validator.validate(&plain.url, &plain.params, &with_port.expected),
            "{}",
            plain.name
        );
        assert!(
            validator.validate(&with_port.url, &with_port.params, &plain.expected),
            "{}",
            plain.name
        );
    }
    // wss uses 443 (the reference libraries wrongly add :80 to non-https schemes).
    let ws = find(&vectors, "media_stream_websocket_upgrade");
    let validator = RequestValidator::new(&ws.token);
    let none: &[(&str, &str)] = &[];
    let with_80 = validator.compute("wss://bridge.example.com:80/media-stream", none);
    assert!(!validator.validate(&ws.url, none, &with_80));
}

#[test]
fn negative_vector_wrong_scheme_does_not_validate() {
    let vectors = vectors();
    let wss = find(&vectors, "media_stream_websocket_upgrade");
    let https = find(&vectors, "media_stream_websocket_upgrade_wrong_scheme");
    assert_ne!(wss.expected, https.expected);
    let validator = RequestValidator::new(&wss.token);
    let none: &[(&str, &str)] = &[];
    assert!(!validator.validate(&wss.url, none, &https.expected));
    assert!(!validator.validate(&https.url, none, &wss.expected));
    // Also not through the :443 variants.
    let wss_443 = find(&vectors, "media_stream_websocket_upgrade_with_port");
    assert!(!validator.validate(&https.url, none, &wss_443.expected));
}

#[test]
fn urlencoded_body_validates_like_decoded_params() {
    let vectors = vectors();
    let v = find(&vectors, "special_characters_and_multivalue");
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(v.params.iter())
        .finish();
    assert!(body.contains("Zo%C3%AB+O%27Neil+%26+Co"), "{body}");
    let validator = RequestValidator::new(&v.token);
    assert!(validator.validate_urlencoded(&v.url, body.as_bytes(), &v.expected));
    assert!(!validator.validate_urlencoded(&v.url, b"CallSid=CA1", &v.expected));
}

#[test]
fn body_variant_requires_the_hash_parameter() {
    let vectors = vectors();
    let v = find(&vectors, "json_body_bodySHA256");
    let validator = RequestValidator::new(&v.token);
    let body = v.raw_body.as_deref().expect("raw body").as_bytes();
    // Without bodySHA256 in the URL, a JSON body cannot be validated.
    let none: &[(&str, &str)] = &[];
    let bare = "https://bridge.example.com/twilio/json-hook";
    let sig = validator.compute(bare, none);
    assert!(!validator.validate_body(bare, body, &sig));
    // A correct signature over a URL whose hash does not match the body.
    let other_url = format!("{bare}?bodySHA256={}", body_sha256_hex(b"{}"));
    let sig = validator.compute(&other_url, none);
    assert!(!validator.validate_body(&other_url, body, &sig));
    // sign_body reproduces the fixture.
    assert_eq!(
        validator.sign_body(bare, body),
        (v.url.clone(), v.expected.clone())
    );
    let (url, sig) = validator.sign_body("https://bridge.example.com/hook?x=1", body);
    assert!(url.starts_with("https://bridge.example.com/hook?x=1&bodySHA256="));
    assert!(validator.validate_body(&url, body, &sig));
}
