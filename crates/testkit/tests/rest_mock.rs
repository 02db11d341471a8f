//! The mock Twilio REST API with Basic auth.

use std::time::Duration;

use testkit::http::{basic_auth, get, post_form, request};
use testkit::rest::{MockTwilioRest, RequestKind, RestConfig, UnknownCallPolicy};

const T: Duration = Duration::from_secs(5);
const CALL: &str = "CA00000000000000000000000000000001";

fn calls_url(rest: &MockTwilioRest) -> String {
    format!(
        "{}/2010-04-01/Accounts/{}/Calls",
        rest.base_url(),
        rest.account_sid()
    )
}

#[tokio::test]
async fn basic_auth_is_checked() {
    let rest = MockTwilioRest::start_with(RestConfig {
        api_keys: vec![("SK00000000000000000000000000000001".into(), "secret".into())],
        ..RestConfig::default()
    })
    .await
    .unwrap();
    rest.register_call(CALL, "+14155551234", "+15005550006");
    let url = format!("{}/{CALL}.json", calls_url(&rest));

    let r = get(&url).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    let body = r.json().unwrap();
    assert_eq!(body["code"], 20003);
    assert_eq!(body["status"], 401);
    assert_eq!(
        body["more_info"],
        "https://www.twilio.com/docs/errors/20003"
    );

    let wrong = basic_auth(rest.account_sid(), "nope");
    let r = request(http::Method::GET, &url, &[("authorization", &wrong)], "")
        .await
        .unwrap();
    assert_eq!(r.status, 401);

    for auth in [
        basic_auth(rest.account_sid(), rest.auth_token()),
        basic_auth("SK00000000000000000000000000000001", "secret"),
    ] {
        let r = request(http::Method::GET, &url, &[("authorization", &auth)], "")
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json().unwrap()["sid"], CALL);
    }
    let reqs = rest.requests();
    assert_eq!(reqs.len(), 4);
    assert!(!reqs[0].authenticated && reqs[0].username.is_none());
    assert_eq!(
        reqs[3].username.as_deref(),
        Some("SK00000000000000000000000000000001")
    );
    assert!(reqs.iter().all(|r| r.kind == RequestKind::FetchCall));
}

#[tokio::test]
async fn hang_up_then_21220() {
    let rest = MockTwilioRest::start().await.unwrap();
    rest.register_call(CALL, "+14155551234", "+15005550006");
    let auth = basic_auth(rest.account_sid(), rest.auth_token());
    let url = format!("{}/{CALL}.json", calls_url(&rest));
    let mut control = rest.watch_call(CALL);

    let r = post_form(
        &url,
        &[("authorization", &auth)],
        &[("Status", "completed")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let call = r.json().unwrap();
    assert_eq!(call["sid"], CALL);
    assert_eq!(call["status"], "completed");
    assert_eq!(call["account_sid"], rest.account_sid());
    assert_eq!(call["api_version"], "2010-04-01");
    assert!(call["date_created"].as_str().unwrap().ends_with("+0000"));
    assert!(call["end_time"].is_string());
    assert_eq!(
        call["uri"],
        format!(
            "/2010-04-01/Accounts/{}/Calls/{CALL}.json",
            rest.account_sid()
        )
    );
    for field in [
        "parent_call_sid",
        "to_formatted",
        "from_formatted",
        "price",
        "direction",
        "answered_by",
        "forwarded_from",
        "caller_name",
        "queue_time",
        "subresource_uris",
    ] {
        assert!(call.get(field).is_some(), "{field}");
    }
    assert_eq!(
        control.recv().await,
        Some(testkit::rest::CallControl::Hangup)
    );

    let r = post_form(
        &url,
        &[("authorization", &auth)],
        &[("Twiml", "<Response><Hangup/></Response>")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    let e = r.json().unwrap();
    assert_eq!(e["code"], 21220);
    assert_eq!(e["status"], 400);
    assert_eq!(e["more_info"], "https://www.twilio.com/docs/errors/21220");
    assert!(e["message"].is_string());

    // Unknown calls: 21220 by default.
    let other = format!(
        "{}/CA00000000000000000000000000000009.json",
        calls_url(&rest)
    );
    let r = post_form(
        &other,
        &[("authorization", &auth)],
        &[("Status", "completed")],
    )
    .await
    .unwrap();
    assert_eq!(r.json().unwrap()["code"], 21220);

    let first = rest.wait_for_update(CALL, T).await.unwrap();
    assert_eq!(first.param("Status"), Some("completed"));
    assert_eq!(
        first.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert!(first.succeeded());
}

#[tokio::test]
async fn transfer_twiml_is_parsed_and_recorded() {
    let rest = MockTwilioRest::start_with(RestConfig {
        unknown_calls: UnknownCallPolicy::AcceptAsInProgress,
        ..RestConfig::default()
    })
    .await
    .unwrap();
    let auth = basic_auth(rest.account_sid(), rest.auth_token());
    let url = format!("{}/{CALL}.json", calls_url(&rest));
    let twiml = r#"<Response><Dial callerId="+15005550006">+15551234567</Dial></Response>"#;
    let r = post_form(&url, &[("authorization", &auth)], &[("Twiml", twiml)])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap()["status"], "in-progress");
    let update = rest.wait_for_update(CALL, T).await.unwrap();
    let parsed = update.twiml().unwrap().unwrap();
    assert_eq!(
        parsed.dial().unwrap().number.as_deref(),
        Some("+15551234567")
    );
    assert_eq!(
        rest.call(CALL).unwrap().twiml_updates,
        vec![twiml.to_string()]
    );

    let r = post_form(
        &url,
        &[("authorization", &auth)],
        &[("Twiml", "<Response><Dial>")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json().unwrap()["code"], 12100);
}

#[tokio::test]
async fn create_call_and_scripted_failures() {
    let rest = MockTwilioRest::start().await.unwrap();
    let auth = basic_auth(rest.account_sid(), rest.auth_token());
    let url = format!("{}.json", calls_url(&rest));
    let twiml =
        r#"<Response><Connect><Stream url="wss://bridge.example.com/media"/></Connect></Response>"#;

    let r = post_form(
        &url,
        &[("authorization", &auth)],
        &[("From", "+15005550006"), ("Twiml", twiml)],
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, r.json().unwrap()["code"].clone()),
        (400, 21201.into())
    );
    let r = post_form(
        &url,
        &[("authorization", &auth)],
        &[("To", "+15551234567"), ("From", "+15005550006")],
    )
    .await
    .unwrap();
    assert_eq!(r.json().unwrap()["code"], 21205);

    rest.fail_next(503, 20500, "Service unavailable");
    let params = [
        ("To", "+15551234567"),
        ("From", "+15005550006"),
        ("Twiml", twiml),
    ];
    let r = post_form(&url, &[("authorization", &auth)], &params)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.json().unwrap()["code"].clone()),
        (503, 20500.into())
    );

    let r = post_form(&url, &[("authorization", &auth)], &params)
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let call = r.json().unwrap();
    assert_eq!(call["status"], "queued");
    assert_eq!(call["direction"], "outbound-api");
    assert_eq!(call["to"], "+15551234567");
    let sid = call["sid"].as_str().unwrap();
    assert!(testkit::sid::is_sid("CA", sid));
    let created = rest.wait_for_created_call(1, T).await.unwrap();
    assert_eq!(created.sid, sid);
    assert_eq!(created.twiml.as_deref(), Some(twiml));

    // Wrong account in the path.
    let foreign = format!(
        "{}/2010-04-01/Accounts/AC00000000000000000000000000000099/Calls.json",
        rest.base_url()
    );
    let r = post_form(&foreign, &[("authorization", &auth)], &params)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.json().unwrap()["code"].clone()),
        (404, 20404.into())
    );
}
