//! The Twilio REST client against the test kit's mock REST API: auth (Auth Token and API key),
//! form bodies, "already gone" codes, retries on 429/5xx only for updates, and creates that are
//! never retried once they may have reached Twilio (429 only).

use std::time::Duration;

use phone_agent_server::config::Secret;
use phone_agent_server::twilio_rest::{
    RestCallError, RestSettings, TwilioRest, UpdateOutcome, http_client,
};
use testkit::rest::{MockTwilioRest, RequestKind, RestConfig, UnknownCallPolicy};
use twilio_media::rest::{CallSource, CreateCall, UpdateCall};
use twilio_media::twiml::{Dial, Response};

const SID: &str = "CA00000000000000000000000000000123";

fn client(rest: &MockTwilioRest, username: &str, password: &str, attempts: u32) -> TwilioRest {
    TwilioRest::new(
        http_client().unwrap(),
        RestSettings {
            base_url: rest.base_url(),
            account_sid: rest.account_sid().to_owned(),
            username: username.to_owned(),
            password: Secret::new(password),
            timeout: Duration::from_secs(5),
            attempts,
            backoff: Duration::from_millis(1),
        },
    )
}

#[tokio::test]
async fn hang_up_sends_status_completed_with_basic_auth() {
    let rest = MockTwilioRest::start().await.unwrap();
    rest.register_call(SID, "+14155551234", "+15005550006");
    let c = client(&rest, rest.account_sid(), rest.auth_token(), 3);
    let outcome = c.update_call(SID, &UpdateCall::hang_up()).await.unwrap();
    assert_eq!(outcome, UpdateOutcome::Updated);
    let requests = rest.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.kind, RequestKind::UpdateCall);
    assert!(r.authenticated);
    assert_eq!(r.username.as_deref(), Some(rest.account_sid()));
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        r.params,
        vec![("Status".to_owned(), "completed".to_owned())]
    );
    assert_eq!(rest.call(SID).unwrap().status, "completed");
}

#[tokio::test]
async fn api_key_authenticates_in_place_of_the_auth_token() {
    let key = (
        "SK00000000000000000000000000000001".to_owned(),
        "key-secret".to_owned(),
    );
    let rest = MockTwilioRest::start_with(RestConfig {
        api_keys: vec![key.clone()],
        ..RestConfig::default()
    })
    .await
    .unwrap();
    rest.register_call(SID, "+14155551234", "+15005550006");
    let twiml = Response::new()
        .dial(Dial::number("+15551234567").caller_id("+15005550006"))
        .to_xml();
    let c = client(&rest, &key.0, &key.1, 1);
    c.update_call(SID, &UpdateCall::twiml(twiml.clone()).unwrap())
        .await
        .unwrap();
    let r = rest
        .wait_for_update(SID, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(r.authenticated);
    assert_eq!(r.username.as_deref(), Some(key.0.as_str()));
    assert_eq!(r.param("Twiml"), Some(twiml.as_str()));
}

#[tokio::test]
async fn codes_21220_and_20404_mean_the_call_is_already_gone() {
    let rest = MockTwilioRest::start().await.unwrap();
    let c = client(&rest, rest.account_sid(), rest.auth_token(), 3);
    // Unknown call: the mock answers 21220 by default.
    match c.update_call(SID, &UpdateCall::hang_up()).await.unwrap() {
        UpdateOutcome::AlreadyGone(e) => assert_eq!(e.code, Some(21220)),
        other => panic!("{other:?}"),
    }
    let rest = MockTwilioRest::start_with(RestConfig {
        unknown_calls: UnknownCallPolicy::NotFound,
        ..RestConfig::default()
    })
    .await
    .unwrap();
    let c = client(&rest, rest.account_sid(), rest.auth_token(), 3);
    match c.update_call(SID, &UpdateCall::hang_up()).await.unwrap() {
        UpdateOutcome::AlreadyGone(e) => assert_eq!(e.code, Some(20404)),
        other => panic!("{other:?}"),
    }
    // Neither is retried.
    assert_eq!(rest.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_and_429_are_retried_then_succeed() {
    let rest = MockTwilioRest::start().await.unwrap();
    rest.register_call(SID, "+14155551234", "+15005550006");
    rest.fail_next(503, 20503, "Service unavailable");
    rest.fail_next(429, 20429, "Too many requests");
    let c = client(&rest, rest.account_sid(), rest.auth_token(), 3);
    let outcome = c.update_call(SID, &UpdateCall::hang_up()).await.unwrap();
    assert_eq!(outcome, UpdateOutcome::Updated);
    let statuses: Vec<u16> = rest.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 429, 200]);
}

#[tokio::test]
async fn retries_stop_after_the_configured_attempts() {
    let rest = MockTwilioRest::start().await.unwrap();
    rest.register_call(SID, "+14155551234", "+15005550006");
    for _ in 0..3 {
        rest.fail_next(500, 20500, "Internal error");
    }
    let c = client(&rest, rest.account_sid(), rest.auth_token(), 2);
    let err = c
        .update_call(SID, &UpdateCall::hang_up())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RestCallError::Status { status: 500 }),
        "{err}"
    );
    assert_eq!(rest.requests().len(), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let rest = MockTwilioRest::start().await.unwrap();
    rest.register_call(SID, "+14155551234", "+15005550006");
    let c = client(&rest, rest.account_sid(), "wrong-token", 3);
    let err = c
        .update_call(SID, &UpdateCall::hang_up())
        .await
        .unwrap_err();
    match &err {
        RestCallError::Api { status, error } => {
            assert_eq!(*status, 401);
            assert_eq!(error.code, Some(20003));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rest.requests().len(), 1);
    // The secret never appears in the error or the client's Debug output.
    assert!(!format!("{err} {err:?} {c:?}").contains("wrong-token"));
}

#[tokio::test]
async fn create_call_returns_the_call_resource() {
    let rest = MockTwilioRest::start().await.unwrap();
    let c = client(&rest, rest.account_sid(), rest.auth_token(), 1);
    let create = CreateCall::new(
        "+15551234567",
        "+15005550006",
        CallSource::Url {
            url: "https://bridge.example.com/voice".into(),
            method: None,
        },
    )
    .unwrap();
    let call = c.create_call(&create).await.unwrap();
    assert_eq!(call["status"], "queued");
    assert!(call["sid"].as_str().unwrap().starts_with("CA"));
}

#[tokio::test]
async fn an_unreachable_api_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = TwilioRest::new(
        http_client().unwrap(),
        RestSettings {
            base_url: format!("http://{addr}"),
            account_sid: "AC00000000000000000000000000000001".into(),
            username: "AC00000000000000000000000000000001".into(),
            password: Secret::new("x"),
            timeout: Duration::from_secs(2),
            attempts: 3,
            backoff: Duration::from_millis(1),
        },
    );
    let err = c
        .update_call(SID, &UpdateCall::hang_up())
        .await
        .unwrap_err();
    assert!(matches!(err, RestCallError::Transport(_)), "{err}");
}

fn create() -> CreateCall {
    CreateCall::new(
        "+15551234567",
        "+15005550006",
        CallSource::Url {
            url: "https://bridge.example.com/voice/outbound?profile=default".into(),
            method: None,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn a_create_is_retried_after_429_only() {
    let rest = MockTwilioRest::start().await.unwrap();
    rest.fail_next(429, 20429, "Too many requests");
    let c = client(&rest, rest.account_sid(), rest.auth_token(), 3);
    let call = c.create_call(&create()).await.unwrap();
    assert_eq!(call["status"], "queued");
    let statuses: Vec<u16> = rest.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 201]);

    // A 5xx may come after the call was created: not retried, outcome unknown.
    rest.fail_next(503, 20503, "Service unavailable");
    let err = c.create_call(&create()).await.unwrap_err();
    assert!(err.outcome_unknown(), "{err}");
    assert_eq!(
        err.to_string(),
        "the outcome is unknown (Twilio answered 503): the call may have been placed; it was \
         not retried (check the Twilio console's call log before trying again)"
    );
    assert_eq!(rest.requests().len(), 3);
}

#[tokio::test]
async fn a_create_that_timed_out_is_not_retried_and_may_have_placed_the_call() {
    let rest = MockTwilioRest::start().await.unwrap();
    rest.stall_next();
    let c = TwilioRest::new(
        http_client().unwrap(),
        RestSettings {
            base_url: rest.base_url(),
            account_sid: rest.account_sid().to_owned(),
            username: rest.account_sid().to_owned(),
            password: Secret::new(rest.auth_token()),
            timeout: Duration::from_millis(200),
            attempts: 3,
            backoff: Duration::from_millis(1),
        },
    );
    let err = c.create_call(&create()).await.unwrap_err();
    assert!(matches!(err, RestCallError::OutcomeUnknown(_)), "{err}");
    // The mock did create it (the answer was lost): exactly one request, one call.
    assert_eq!(rest.requests().len(), 1);
    assert_eq!(rest.calls().len(), 1);
}

#[tokio::test]
async fn an_unreachable_api_places_no_call_for_sure() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = TwilioRest::new(
        http_client().unwrap(),
        RestSettings {
            base_url: format!("http://{addr}"),
            account_sid: "AC00000000000000000000000000000001".into(),
            username: "AC00000000000000000000000000000001".into(),
            password: Secret::new("x"),
            timeout: Duration::from_secs(2),
            attempts: 3,
            backoff: Duration::from_millis(1),
        },
    );
    let err = c.create_call(&create()).await.unwrap_err();
    assert!(matches!(err, RestCallError::Transport(_)), "{err}");
}
