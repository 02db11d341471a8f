//! Outbound calls end to end against a real server on loopback and the test kit's mock Twilio
//! REST API: `POST /api/calls` sends exactly the expected `Calls.create` form (AMD and
//! callbacks included) and the call's TwiML carries its profile and variables; AMD callbacks
//! drive the profile's policy (exact TwiML / `Status` at the mock); the allow-list, the admin
//! token and callback signatures refuse what they must, with no REST request; a create whose
//! answer never came is not retried; and the `call` subcommand of the binary places a call.

mod common;

use std::time::Duration;

use common::{AUTH_TOKEN, TestServer, WAIT};
use serde_json::{Value, json};
use testkit::http;
use testkit::rest::{MockTwilioRest, RequestKind};
use tokio::time::Instant;

const ADMIN: &str = "outbound-test-admin-token-0123456789";
const FROM: &str = "+15005550006";
const TO: &str = "+15551234567";
const VOICEMAIL: &str = "Hello, this is Acme Parcel Services. Please call us back.";

/// A configuration file with a `sales` profile whose machines are hung up on.
fn config_file() -> String {
    let path = common::temp_path("outbound.toml");
    std::fs::write(
        &path,
        "[profiles.sales]\non_machine = \"hangup\"\nvoicemail_message = \"Sales here.\"\n",
    )
    .unwrap();
    path.display().to_string()
}

async fn server(rest: &MockTwilioRest, extra: &[(&str, &str)]) -> TestServer {
    let config = config_file();
    let base = rest.base_url();
    let mut vars = vec![
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("TWILIO_ACCOUNT_SID", rest.account_sid()),
        ("PHONE_AGENT_TWILIO__REST_BASE_URL", base.as_str()),
        ("PHONE_AGENT_AGENT__BACKEND", "echo"),
        ("PHONE_AGENT_ADMIN__TOKEN", ADMIN),
        ("PHONE_AGENT_OUTBOUND__ALLOWED_DESTINATIONS", "+1555, +4420"),
        ("PHONE_AGENT_OUTBOUND__FROM", FROM),
        ("PHONE_AGENT_OUTBOUND__ON_MACHINE", "voicemail"),
        ("PHONE_AGENT_OUTBOUND__VOICEMAIL_MESSAGE", VOICEMAIL),
        ("PHONE_AGENT_CONFIG", config.as_str()),
    ];
    for (k, v) in extra {
        vars.retain(|(key, _)| key != k);
        vars.push((k, v));
    }
    common::start(&vars).await
}

async fn place(server: &TestServer, token: Option<&str>, body: Value) -> http::HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    http::request(
        ::http::Method::POST,
        &server.url("/api/calls"),
        &headers,
        body.to_string(),
    )
    .await
    .unwrap()
}

/// POSTs a form signed as Twilio signs it (over `PUBLIC_URL + path_and_query`).
async fn signed_post(server: &TestServer, path: &str, form: &[(&str, &str)]) -> http::HttpResponse {
    let url = server.url(path);
    let signature = testkit::twilio::signature::sign(AUTH_TOKEN, &url, form);
    http::post_form(&url, &[("x-twilio-signature", signature.as_str())], form)
        .await
        .unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn a_placed_call_sends_the_exact_create_form_and_its_twiml_carries_profile_and_variables() {
    let rest = MockTwilioRest::start().await.unwrap();
    let server = server(&rest, &[]).await;
    let r = place(
        &server,
        Some(ADMIN),
        json!({"to": TO, "profile": "sales", "variables": {"name": "Ada Lovelace", "order": "A&B"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = rest.wait_for_created_call(1, WAIT).await.unwrap();
    assert_eq!(
        r.json().unwrap(),
        json!({"call_sid": created.sid, "status": "queued", "to": TO, "from": FROM, "profile": "sales"})
    );
    let requests = rest.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].kind, RequestKind::CreateCall);
    let base = &server.base;
    let voice =
        format!("{base}/voice/outbound?profile=sales&var.name=Ada+Lovelace&var.order=A%26B");
    let status = format!("{base}/twilio/status");
    let amd = format!("{base}/twilio/amd?profile=sales");
    assert_eq!(
        requests[0].params,
        pairs(&[
            ("To", TO),
            ("From", FROM),
            ("Url", &voice),
            ("Method", "POST"),
            ("StatusCallback", &status),
            ("StatusCallbackMethod", "POST"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
            ("Timeout", "30"),
            ("MachineDetection", "DetectMessageEnd"),
            ("AsyncAmd", "true"),
            ("AsyncAmdStatusCallback", &amd),
            ("AsyncAmdStatusCallbackMethod", "POST"),
        ])
    );

    // Twilio fetches the TwiML when the callee answers: the stream knows the profile, the
    // direction and the variables without any state shared with the API request.
    let path = voice.strip_prefix(base.as_str()).unwrap();
    let form = [
        ("AccountSid", rest.account_sid()),
        ("CallSid", created.sid.as_str()),
        ("CallStatus", "in-progress"),
        ("Direction", "outbound-api"),
        ("From", FROM),
        ("To", TO),
    ];
    let unsigned = http::post_form(&server.url(path), &[], &form)
        .await
        .unwrap();
    assert_eq!(unsigned.status, 403);
    let twiml = signed_post(&server, path, &form).await;
    assert_eq!(twiml.status, 200, "{}", twiml.text());
    assert_eq!(
        common::stream_parameters(&twiml.text()),
        pairs(&[
            ("call_sid", created.sid.as_str()),
            ("from", FROM),
            ("to", TO),
            ("profile", "sales"),
            ("direction", "outbound"),
            ("name", "Ada Lovelace"),
            ("order", "A&B"),
        ])
    );
    server.handle.shutdown();
    server.handle.wait().await;
}

/// Waits (bounded) until the stored call satisfies `done`.
async fn stored_call(server: &TestServer, sid: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = http::request(
            ::http::Method::GET,
            &server.url(&format!("/api/calls/{sid}")),
            &[("authorization", &format!("Bearer {ADMIN}"))],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
        if r.status == 200 {
            let v = r.json().unwrap();
            if done(&v) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "call {sid}: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn placed_sid(server: &TestServer, body: Value) -> String {
    let r = place(server, Some(ADMIN), body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json().unwrap()["call_sid"].as_str().unwrap().to_owned()
}

fn amd_form<'a>(account: &'a str, sid: &'a str, answered_by: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("AccountSid", account),
        ("AnsweredBy", answered_by),
        ("CallSid", sid),
        ("MachineDetectionDuration", "4210"),
    ]
}

#[tokio::test]
async fn amd_results_drive_the_profiles_policy_and_land_in_the_record() {
    let rest = MockTwilioRest::start().await.unwrap();
    let db = common::temp_path("outbound-calls.db");
    let db = db.display().to_string();
    let server = server(&rest, &[("PHONE_AGENT_DATABASE__URL", db.as_str())]).await;
    let account = rest.account_sid().to_owned();

    // A human: the agent converses, nothing is sent to Twilio.
    let human = placed_sid(&server, json!({"to": TO})).await;
    let r = signed_post(
        &server,
        "/twilio/amd?profile=default",
        &amd_form(&account, &human, "human"),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());

    // A machine at the beep, default profile: the voicemail message, then hang up.
    let machine = placed_sid(&server, json!({"to": "+15551230000"})).await;
    // Twilio's status callbacks say where the call goes (outbound-api).
    let initiated = [
        ("AccountSid", account.as_str()),
        ("CallSid", machine.as_str()),
        ("CallStatus", "initiated"),
        ("Direction", "outbound-api"),
        ("From", FROM),
        ("To", "+15551230000"),
        ("SequenceNumber", "0"),
    ];
    assert_eq!(
        signed_post(&server, "/twilio/status", &initiated)
            .await
            .status,
        204
    );
    let r = signed_post(
        &server,
        "/twilio/amd?profile=default",
        &amd_form(&account, &machine, "machine_end_beep"),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let update = rest.wait_for_update(&machine, WAIT).await.unwrap();
    assert_eq!(
        update.params,
        pairs(&[(
            "Twiml",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Hello, this is Acme \
             Parcel Services. Please call us back.</Say><Hangup/></Response>"
        )])
    );

    // The `sales` profile hangs up on machines.
    let sales = placed_sid(&server, json!({"to": TO, "profile": "sales"})).await;
    let r = signed_post(
        &server,
        "/twilio/amd?profile=sales",
        &amd_form(&account, &sales, "machine_end_silence"),
    )
    .await;
    assert_eq!(r.status, 204);
    let update = rest.wait_for_update(&sales, WAIT).await.unwrap();
    assert_eq!(update.params, pairs(&[("Status", "completed")]));

    // Exactly: three creates and two updates (nothing for the human).
    let kinds: Vec<(RequestKind, Option<String>)> = rest
        .requests()
        .into_iter()
        .map(|r| {
            (
                r.kind,
                r.call_sid.filter(|_| r.kind == RequestKind::UpdateCall),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (RequestKind::CreateCall, None),
            (RequestKind::CreateCall, None),
            (RequestKind::UpdateCall, Some(machine.clone())),
            (RequestKind::CreateCall, None),
            (RequestKind::UpdateCall, Some(sales.clone())),
        ]
    );

    // The records: answered_by, direction, numbers.
    let record = stored_call(&server, &machine, |v| v["answered_by"].is_string()).await;
    assert_eq!(record["answered_by"], "machine_end_beep");
    assert_eq!(record["direction"], "outbound");
    assert_eq!(record["from"], FROM);
    assert_eq!(record["to"], "+15551230000");
    let record = stored_call(&server, &human, |v| v["answered_by"].is_string()).await;
    assert_eq!(record["answered_by"], "human");
    assert_eq!(record["direction"], "outbound");
    server.handle.shutdown();
    server.handle.wait().await;
}

#[tokio::test]
async fn destinations_off_the_allow_list_and_bad_requests_send_nothing_to_twilio() {
    let rest = MockTwilioRest::start().await.unwrap();
    let server = server(&rest, &[]).await;
    let r = place(&server, Some(ADMIN), json!({"to": "+16505550100"})).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json().unwrap(),
        json!({"error": "destination not allowed: add the number or its prefix to \
            outbound.allowed_destinations (PHONE_AGENT_OUTBOUND__ALLOWED_DESTINATIONS)"})
    );
    for (body, message) in [
        (
            json!({"to": "5551234567"}),
            "\"to\" must be an E.164 number (+ and 8–15 digits), not \"5551234567\"",
        ),
        (
            json!({"to": TO, "from": "Acme"}),
            "\"from\" must be an E.164 number, not \"Acme\"",
        ),
        (
            json!({"to": TO, "profile": "nope"}),
            "no profile named \"nope\"",
        ),
        (
            json!({"to": TO, "variables": {"from": "x"}}),
            "variable name \"from\" is reserved (the server sets it itself)",
        ),
        (
            json!({"to": TO, "variables": {"a b": "x"}}),
            "variable name \"a b\" must be 1–64 letters, digits or _",
        ),
    ] {
        let r = place(&server, Some(ADMIN), body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json().unwrap(), json!({"error": message}), "{body}");
    }
    server.handle.shutdown();
    server.handle.wait().await;

    // The default allow-list is empty: every destination is refused.
    let server = server_with_defaults(&rest).await;
    let r = place(&server, Some(ADMIN), json!({"to": TO})).await;
    assert_eq!(r.status, 403);
    assert!(rest.requests().is_empty(), "{:?}", rest.requests());
    server.handle.shutdown();
    server.handle.wait().await;
}

async fn server_with_defaults(rest: &MockTwilioRest) -> TestServer {
    let base = rest.base_url();
    common::start(&[
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("TWILIO_ACCOUNT_SID", rest.account_sid()),
        ("PHONE_AGENT_TWILIO__REST_BASE_URL", base.as_str()),
        ("PHONE_AGENT_AGENT__BACKEND", "echo"),
        ("PHONE_AGENT_ADMIN__TOKEN", ADMIN),
        ("PHONE_AGENT_OUTBOUND__FROM", FROM),
    ])
    .await
}

#[tokio::test]
async fn without_a_token_the_api_is_404_and_a_wrong_token_is_401() {
    let rest = MockTwilioRest::start().await.unwrap();
    let closed = server(&rest, &[("PHONE_AGENT_ADMIN__TOKEN", "")]).await;
    assert_eq!(
        place(&closed, Some(ADMIN), json!({"to": TO})).await.status,
        404
    );
    assert_eq!(place(&closed, None, json!({"to": TO})).await.status, 404);
    closed.handle.shutdown();
    closed.handle.wait().await;
    let open = server(&rest, &[]).await;
    assert_eq!(place(&open, None, json!({"to": TO})).await.status, 401);
    let wrong = format!("{ADMIN}x");
    assert_eq!(
        place(&open, Some(&wrong), json!({"to": TO})).await.status,
        401
    );
    assert!(rest.requests().is_empty());
    open.handle.shutdown();
    open.handle.wait().await;
}

#[tokio::test]
async fn unsigned_or_forged_status_and_amd_callbacks_are_refused() {
    let rest = MockTwilioRest::start().await.unwrap();
    let server = server(&rest, &[]).await;
    let sid = "CA00000000000000000000000000000abc";
    let account = rest.account_sid().to_owned();
    for path in ["/twilio/amd?profile=default", "/twilio/status"] {
        let mut form = amd_form(&account, sid, "machine_end_beep");
        form.push(("CallStatus", "completed"));
        let url = server.url(path);
        let unsigned = http::post_form(&url, &[], &form).await.unwrap();
        assert_eq!(unsigned.status, 403, "{path}");
        // Signed over another URL (the profile changed in transit).
        let other = testkit::twilio::signature::sign(
            AUTH_TOKEN,
            &server.url("/twilio/amd?profile=sales"),
            &form,
        );
        let forged = http::post_form(&url, &[("x-twilio-signature", other.as_str())], &form)
            .await
            .unwrap();
        assert_eq!(forged.status, 403, "{path}");
    }
    assert!(rest.requests().is_empty(), "{:?}", rest.requests());
    server.handle.shutdown();
    server.handle.wait().await;
}

#[tokio::test]
async fn a_create_whose_answer_never_came_is_not_retried() {
    let rest = MockTwilioRest::start().await.unwrap();
    let server = server(
        &rest,
        &[
            ("PHONE_AGENT_TWILIO__REST_TIMEOUT_MS", "300"),
            ("PHONE_AGENT_TWILIO__REST_ATTEMPTS", "3"),
        ],
    )
    .await;
    rest.stall_next();
    let r = place(&server, Some(ADMIN), json!({"to": TO})).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let body = r.json().unwrap();
    assert_eq!(body["call_placed"], Value::Null);
    assert_eq!(
        body["error"],
        "the outcome is unknown (timed out: operation timed out): the call may have been placed; \
         it was not retried (check the Twilio console's call log before trying again)"
    );
    assert_eq!(rest.requests().len(), 1);

    // A server error is not retried either; Twilio refusing the number says "not placed".
    rest.fail_next(500, 20500, "Internal Server Error");
    let r = place(&server, Some(ADMIN), json!({"to": TO})).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json().unwrap()["call_placed"], Value::Null);
    assert_eq!(rest.requests().len(), 2);
    rest.fail_next(400, 21211, "Invalid 'To' Phone Number");
    let r = place(&server, Some(ADMIN), json!({"to": TO})).await;
    assert_eq!(r.status, 502);
    assert_eq!(
        r.json().unwrap(),
        json!({"error": "the call was not placed: Twilio answered 400: Twilio error 21211: \
            Invalid 'To' Phone Number", "call_placed": false})
    );
    assert_eq!(rest.requests().len(), 3);
    server.handle.shutdown();
    server.handle.wait().await;
}

#[tokio::test]
async fn the_call_subcommand_places_a_call_through_the_running_server() {
    let rest = MockTwilioRest::start().await.unwrap();
    let server = server(&rest, &[]).await;
    let dir = common::temp_path("cli-cwd");
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: Vec<String>, token: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_phone-agent-server"))
            .current_dir(&dir)
            .env_clear()
            .env("PHONE_AGENT_ADMIN__TOKEN", token)
            .args(args)
            .kill_on_drop(true)
            .output()
    };
    let args = |to: &str| -> Vec<String> {
        [
            "call",
            to,
            "--profile",
            "sales",
            "--var",
            "name=Ada",
            "--server",
            &server.base,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let out = run(args(TO), ADMIN).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created = rest.wait_for_created_call(1, WAIT).await.unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n", created.sid)
    );
    assert_eq!(
        created.url.as_deref(),
        Some(format!("{}/voice/outbound?profile=sales&var.name=Ada", server.base).as_str())
    );

    let out = run(args("+16505550100"), ADMIN).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "phone-agent-server call: destination not allowed: add the number or its prefix to \
         outbound.allowed_destinations (PHONE_AGENT_OUTBOUND__ALLOWED_DESTINATIONS) (HTTP 403)\n"
    );
    let out = run(args(TO), "a-wrong-admin-token-000").await.unwrap();
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "phone-agent-server call: the server refused the admin token (PHONE_AGENT_ADMIN__TOKEN differs)\n"
    );
    assert_eq!(rest.requests().len(), 1);
    server.handle.shutdown();
    server.handle.wait().await;
}

/// The AMD action's REST update is retried with bounded backoff when Twilio fails
/// transiently (5xx, 429), and never on a 4xx (an answer: repeating it changes nothing).
#[tokio::test]
async fn the_amd_action_is_retried_on_transient_failures_and_not_on_4xx() {
    let rest = MockTwilioRest::start().await.unwrap();
    let server = server(&rest, &[]).await;
    let account = rest.account_sid().to_owned();
    let updates = |sid: &str| -> Vec<(u16, Vec<(String, String)>)> {
        rest.requests()
            .into_iter()
            .filter(|r| r.kind == RequestKind::UpdateCall && r.call_sid.as_deref() == Some(sid))
            .map(|r| (r.status, r.params))
            .collect()
    };
    let hang_up = pairs(&[("Status", "completed")]);

    // Twilio answers 503, then 429, then accepts: three attempts, the last one took.
    let sid = placed_sid(&server, json!({"to": TO, "profile": "sales"})).await;
    rest.fail_next(503, 20500, "Service Unavailable");
    rest.fail_next(429, 20429, "Too Many Requests");
    let r = signed_post(
        &server,
        "/twilio/amd?profile=sales",
        &amd_form(&account, &sid, "machine_end_beep"),
    )
    .await;
    // The route answers once its action is done.
    assert_eq!(r.status, 204);
    assert_eq!(
        updates(&sid),
        vec![
            (503, hang_up.clone()),
            (429, hang_up.clone()),
            (200, hang_up.clone())
        ]
    );

    // A 4xx is final: one attempt.
    let sid = placed_sid(&server, json!({"to": TO, "profile": "sales"})).await;
    rest.fail_next(400, 20001, "Invalid request");
    let r = signed_post(
        &server,
        "/twilio/amd?profile=sales",
        &amd_form(&account, &sid, "machine_end_beep"),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(updates(&sid), vec![(400, hang_up.clone())]);
    server.handle.shutdown();
    server.handle.wait().await;
}
