//! REST request shapes and error bodies.

use twilio_media::rest::{
    self, ACCEPT, API_BASE_URL, ApiError, BasicAuth, CallSource, CreateCall, FORM_CONTENT_TYPE,
    MAX_TWIML_CHARS, RestError, UpdateCall,
};
use twilio_media::twiml::{Dial, Method, Response, Stream};

const AC: &str = "AC00000000000000000000000000000001";
const CA: &str = "CA00000000000000000000000000000001";

fn decode(form: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect()
}

#[test]
fn paths() {
    assert_eq!(
        rest::call_path(AC, CA),
        "/2010-04-01/Accounts/AC00000000000000000000000000000001/Calls/CA00000000000000000000000000000001.json"
    );
    assert_eq!(
        rest::calls_path(AC),
        "/2010-04-01/Accounts/AC00000000000000000000000000000001/Calls.json"
    );
    // A malformed SID cannot escape its path segment.
    assert_eq!(
        rest::call_path("AC1/../x", "CA 1?y"),
        "/2010-04-01/Accounts/AC1%2F..%2Fx/Calls/CA%201%3Fy.json"
    );
    assert_eq!(
        format!("{API_BASE_URL}{}", rest::calls_path(AC))
            .split("//")
            .count(),
        2
    );
    assert_eq!(FORM_CONTENT_TYPE, "application/x-www-form-urlencoded");
    assert_eq!(ACCEPT, "application/json");
}

#[test]
fn update_call_bodies() {
    assert_eq!(UpdateCall::hang_up().to_form(), "Status=completed");
    assert_eq!(UpdateCall::cancel().to_form(), "Status=canceled");
    assert_eq!(
        UpdateCall::redirect("https://bridge.example.com/twilio/next?x=1", Method::Post).to_form(),
        "Url=https%3A%2F%2Fbridge.example.com%2Ftwilio%2Fnext%3Fx%3D1&Method=POST"
    );
    let transfer = Response::new()
        .say("Connecting you.")
        .dial(Dial::number("+15551234567").caller_id("+15005550006"))
        .to_xml();
    let update = UpdateCall::twiml(transfer.clone())
        .expect("short TwiML")
        .status_callback("https://bridge.example.com/status", Method::Get)
        .time_limit(600);
    assert_eq!(
        decode(&update.to_form()),
        [
            ("Twiml".to_owned(), transfer),
            (
                "StatusCallback".to_owned(),
                "https://bridge.example.com/status".to_owned()
            ),
            ("StatusCallbackMethod".to_owned(), "GET".to_owned()),
            ("TimeLimit".to_owned(), "600".to_owned()),
        ]
    );
    assert_eq!(update.pairs().len(), 4);
}

#[test]
fn twiml_length_limit() {
    let at_limit = "é".repeat(MAX_TWIML_CHARS);
    assert!(
        UpdateCall::twiml(at_limit.clone()).is_ok(),
        "counted in characters, not bytes"
    );
    let over = format!("{at_limit}x");
    let err = UpdateCall::twiml(over.clone()).expect_err("too long");
    assert!(matches!(err, RestError::TwimlTooLong { chars: 4001 }));
    assert_eq!(
        err.to_string(),
        "TwiML is 4001 characters long; Twilio accepts at most 4000"
    );
    assert!(matches!(
        CreateCall::new("+1", "+2", CallSource::Twiml(over)),
        Err(RestError::TwimlTooLong { chars: 4001 })
    ));
}

#[test]
fn create_call_bodies() {
    let twiml = Response::new()
        .connect(Stream::new("wss://bridge.example.com/media").parameter("token", "t&1"))
        .to_xml();
    let create = CreateCall::new(
        "+15551234567",
        "+15005550006",
        CallSource::Twiml(twiml.clone()),
    )
    .expect("short TwiML")
    .status_callback("https://bridge.example.com/status", Method::Post)
    .status_callback_events(["initiated", "answered"])
    .timeout(30)
    .time_limit(3600)
    .machine_detection("Enable")
    .param("SendDigits", "1234#");
    let pairs = decode(&create.to_form());
    let expected: Vec<(String, String)> = [
        ("To", "+15551234567"),
        ("From", "+15005550006"),
        ("Twiml", twiml.as_str()),
        ("StatusCallback", "https://bridge.example.com/status"),
        ("StatusCallbackMethod", "POST"),
        ("StatusCallbackEvent", "initiated"),
        ("StatusCallbackEvent", "answered"),
        ("Timeout", "30"),
        ("TimeLimit", "3600"),
        ("MachineDetection", "Enable"),
        ("SendDigits", "1234#"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(pairs, expected);
    assert_eq!(create.pairs().len(), expected.len());

    let by_url = CreateCall::new(
        "client:alice",
        "+15005550006",
        CallSource::Url {
            url: "https://bridge.example.com/voice".into(),
            method: Some(Method::Get),
        },
    )
    .expect("url source");
    assert_eq!(
        by_url.to_form(),
        "To=client%3Aalice&From=%2B15005550006&Url=https%3A%2F%2Fbridge.example.com%2Fvoice&Method=GET"
    );
    let by_url_default = CreateCall::new(
        "+1",
        "+2",
        CallSource::Url {
            url: "u".into(),
            method: None,
        },
    )
    .expect("url source");
    assert_eq!(by_url_default.to_form(), "To=%2B1&From=%2B2&Url=u");
    let by_app =
        CreateCall::new("+1", "+2", CallSource::ApplicationSid("AP1".into())).expect("app");
    assert_eq!(by_app.to_form(), "To=%2B1&From=%2B2&ApplicationSid=AP1");
}

#[test]
fn basic_auth() {
    let auth = BasicAuth::new("AC00000000000000000000000000000001", "s3cr3t:with:colons");
    assert_eq!(
        auth.header_value(),
        "Basic QUMwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMTpzM2NyM3Q6d2l0aDpjb2xvbnM="
    );
    assert_eq!(format!("{auth:?}"), "BasicAuth([redacted])");
    assert!(!format!("{auth:?}").contains("s3cr3t"));
    assert_eq!(BasicAuth::new("a", "b").header_value(), "Basic YTpi");
}

#[test]
fn error_bodies() {
    let gone = ApiError::parse(
        br#"{"code":21220,"message":"Call is not in-progress. Cannot redirect.","more_info":"https://www.twilio.com/docs/errors/21220","status":400}"#,
    )
    .expect("error body");
    assert_eq!(gone.code, Some(21220));
    assert_eq!(gone.status, Some(400));
    assert_eq!(
        gone.more_info.as_deref(),
        Some("https://www.twilio.com/docs/errors/21220")
    );
    assert!(gone.is_call_gone());
    assert!(!gone.is_not_found());
    assert_eq!(
        gone.to_string(),
        "Twilio error 21220: Call is not in-progress. Cannot redirect."
    );

    let missing = ApiError::parse(br#"{"code":20404,"message":"The requested resource was not found","status":404,"extra":true}"#)
        .expect("error body with an unknown field");
    assert!(missing.is_not_found());
    assert!(!missing.is_call_gone());
    assert_eq!(missing.more_info, None);

    let bare = ApiError::parse(br#"{"message":"Oops"}"#).expect("minimal body");
    assert_eq!(bare.code, None);
    assert_eq!(bare.to_string(), "Twilio error: Oops");

    let err = ApiError::parse(b"<html>502</html>").expect_err("not JSON");
    assert!(
        err.to_string()
            .starts_with("Twilio REST error body is not valid JSON")
    );
}
