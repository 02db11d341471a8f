//! The operator console in a real headless Chromium (Debian's `chromium` driven over WebDriver
//! by Debian's `chromedriver`): sign in; a simulated call appears among the live calls and its
//! transcript streams in; it is hung up from the page (the mock Twilio REST API receives
//! `Status=completed`); its record page shows the timeline with the expected bars and the
//! barge-in; a transcript line with `<script>` in it is shown as text and runs nothing; and
//! requests without the session cookie or with a wrong CSRF token are refused; a transfer goes
//! only to an allow-listed destination, after a confirmation. Screenshots of
//! the live view and of the call's page are saved under `target/console-screenshots/`.

mod e2e_support;
mod webdriver;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bridge_core::tools::{ToolDefinition, ToolExecutor, ToolInvocation, ToolOutput};
use e2e_support::{Bridge, PUBLIC, WAIT, say, session_of};
use serde_json::json;
use testkit::audio;
use testkit::http;
use testkit::openai::{MockRealtime, ResponseScript, Script};
use testkit::rest::MockTwilioRest;
use testkit::twilio::{CallEvent, CallSimulator};
use tokio::time::Instant;
use webdriver::Browser;

const ADMIN: &str = "console-test-admin-token-0123456789";
const GREETING: &str = "Welcome to Acme Parcel Services. I can look up any order for you, tell \
    you where it is, and when it will arrive at your door.";
const CHECKING: &str = "Let me check that order.";
/// The agent's answer carries markup: it must show as text and run nothing.
const ANSWER: &str =
    "It shipped <script>window.pwned = 1</script> yesterday <b>and</b> arrives Friday.";

struct LookupOrder;

#[async_trait]
impl ToolExecutor for LookupOrder {
    fn definitions(&self) -> Vec<ToolDefinition> {
        vec![ToolDefinition {
            name: "lookup_order".into(),
            description: "Looks up an order.".into(),
            parameters: json!({"type": "object", "properties": {"order": {"type": "string"}}}),
        }]
    }

    async fn call(&self, _invocation: ToolInvocation) -> ToolOutput {
        ToolOutput::json(&json!({"status": "shipped", "note": "<img src=x onerror=alert(1)>"}))
    }
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("console-screenshots")
}

fn sqlite_url() -> String {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("console-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("calls.db").display().to_string()
}

async fn raw(
    bridge: &Bridge,
    method: ::http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::HttpResponse {
    let url = format!("http://{}{path}", bridge.addr);
    http::request(method, &url, headers, bytes::Bytes::from(body.to_owned()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_live_call_hangs_it_up_and_draws_its_timeline() {
    let Some(browser) = Browser::start_or_skip("console in Chromium").await else {
        return;
    };
    let rest = MockTwilioRest::start().await.unwrap();
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say(GREETING, 3000))
                .then(
                    ResponseScript::say(CHECKING, 400)
                        .then_call("lookup_order", r#"{"order":"A-7"}"#),
                )
                .then(ResponseScript::say(ANSWER, 600)),
        )
        .start()
        .await
        .unwrap();
    let db = sqlite_url();
    let rest_base = rest.base_url();
    let mut bridge = Bridge::start_with_tools(
        &mock.base_url(),
        &[
            ("PHONE_AGENT_DATABASE__URL", db.as_str()),
            ("PHONE_AGENT_ADMIN__TOKEN", ADMIN),
            ("PHONE_AGENT_PRIVACY__MASK_NUMBERS", "true"),
            ("TWILIO_ACCOUNT_SID", rest.account_sid()),
            ("PHONE_AGENT_TWILIO__REST_BASE_URL", rest_base.as_str()),
        ],
        Some(Arc::new(LookupOrder)),
    )
    .await;
    bridge.sim = CallSimulator::new(&format!("http://{}", bridge.addr))
        .public_url(PUBLIC)
        .auth_token(e2e_support::AUTH_TOKEN)
        .account_sid(rest.account_sid())
        .rest(&rest);
    let base = format!("http://{}", bridge.addr);

    // Without a session: pages send the browser to sign in; actions and events are refused.
    let r = raw(&bridge, ::http::Method::GET, "/console", &[], "").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/console/login"));
    let csp = r.header("content-security-policy").unwrap().to_owned();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = raw(
        &bridge,
        ::http::Method::POST,
        "/console/calls/CA1/hangup",
        &form,
        "csrf=x&confirm=yes",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (403, "sign in first\n"));
    let r = raw(&bridge, ::http::Method::GET, "/console/events", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (403, "sign in first\n"));
    let r = raw(
        &bridge,
        ::http::Method::POST,
        "/console/login",
        &form,
        "token=wrong-token-0123456789",
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());

    // Sign in.
    browser.goto(&format!("{base}/console")).await;
    assert_eq!(browser.url().await, format!("{base}/console/login"));
    let token = browser.find("#token").await;
    browser.type_text(&token, ADMIN).await;
    browser.click(&browser.find("#sign-in").await).await;
    browser
        .wait_text("#no-calls", |t| t == "No live calls on this instance.")
        .await;
    assert_eq!(browser.url().await, format!("{base}/console"));
    let cookie = browser.cookie("pa_console").await.expect("session cookie");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    assert_eq!(cookie["path"], "/console");
    let session = format!("pa_console={}", cookie["value"].as_str().unwrap());
    // Wait for the page's event stream before the call starts.
    let deadline = Instant::now() + WAIT;
    while browser
        .eval("return document.getElementById('live').dataset.connected || ''")
        .await
        != "yes"
    {
        assert!(Instant::now() < deadline, "the live view never connected");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // A call: the greeting is cut by the caller, a tool runs, the agent answers.
    let call = bridge.sim.call().connect().await.unwrap();
    let sid = call.call_sid().to_owned();
    let section = format!("section.call[data-call=\"{sid}\"]");
    let session_handle = session_of(&mock, &sid).await;
    // The live page re-renders a call's section as events arrive: read it by selector.
    let shown = browser
        .wait_text(&format!("{section} dl"), |t| t.contains("+14*******34"))
        .await;
    assert!(shown.contains("+14*******34"), "numbers masked: {shown}");
    assert!(!shown.contains("+14155551234"), "{shown}");
    assert!(
        shown.contains("realtime") && shown.contains("default"),
        "{shown}"
    );
    call.wait_heard(1000 * 8, WAIT).await.unwrap();
    say(&call, audio::speech(400));
    call.wait_for_nth(|e| matches!(e, CallEvent::ClearReceived { .. }), 1, WAIT)
        .await
        .unwrap();
    session_handle
        .wait_for_response_done(3, WAIT)
        .await
        .unwrap();
    // The transcript streams in: greeting (cut), the caller, the check, the answer.
    let transcript = format!("{section} ol.transcript");
    let text = browser
        .wait_text(&transcript, |t| t.contains("arrives Friday."))
        .await;
    assert!(text.contains("agent Welcome to Acme"), "{text}");
    assert!(text.contains("caller (caller audio,"), "{text}");
    assert!(text.contains(&format!("agent {CHECKING}")), "{text}");
    assert!(
        text.contains(&format!("agent {ANSWER}")),
        "markup shown as text: {text}"
    );
    browser
        .wait_text(&format!("{section} [data-field=\"barge_ins\"]"), |t| {
            t == "1"
        })
        .await;
    browser
        .wait_text(&format!("{section} [data-field=\"tool_calls\"]"), |t| {
            t == "1"
        })
        .await;
    assert_eq!(
        browser.eval("return typeof window.pwned").await,
        "undefined"
    );
    assert_eq!(browser.eval("return document.scripts.length").await, 1);
    browser.screenshot(&screenshots().join("live.png")).await;

    // A hang-up with a wrong CSRF token (and the right cookie) is refused; the call goes on.
    let csrf = browser
        .eval(&format!(
            "return document.querySelector('{} input[name=csrf]').value",
            section.replace('\'', "\\'")
        ))
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(csrf.len(), 64);
    let with_cookie = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("cookie", session.as_str()),
    ];
    let hangup = format!("/console/calls/{sid}/hangup");
    let r = raw(
        &bridge,
        ::http::Method::POST,
        &hangup,
        &with_cookie,
        "csrf=0000&confirm=yes",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (403, "invalid CSRF token\n"));
    let r = raw(
        &bridge,
        ::http::Method::POST,
        &hangup,
        &with_cookie,
        "confirm=yes",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (403, "invalid CSRF token\n"));
    // …and so is one from another origin, even with the right token.
    let cross = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("cookie", session.as_str()),
        ("origin", "https://evil.example"),
    ];
    let r = raw(
        &bridge,
        ::http::Method::POST,
        &hangup,
        &cross,
        &format!("csrf={csrf}&confirm=yes"),
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (403, "cross-origin request refused\n")
    );
    assert!(rest.requests().is_empty(), "nothing reached Twilio");
    assert!(call.closed().is_none(), "the call goes on");

    // Hang up from the page: a confirmation, then Twilio REST `Status=completed`.
    browser
        .click(&browser.find(&format!("{section} button.hangup")).await)
        .await;
    let question = browser.wait_text("h1", |t| t.starts_with("Hang up")).await;
    assert_eq!(question, format!("Hang up call {sid}?"));
    browser.click(&browser.find("#confirm").await).await;
    browser
        .wait_text("#message", |t| t == "Twilio is hanging up the call.")
        .await;
    let update = rest.wait_for_update(&sid, WAIT).await.unwrap();
    assert_eq!(
        update.params,
        vec![("Status".to_owned(), "completed".to_owned())]
    );
    assert!(update.authenticated);
    session_handle.wait_closed(WAIT).await.unwrap();

    // The call's page: record, transcript, tool call, and the timeline.
    let record = {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = raw(
                &bridge,
                ::http::Method::GET,
                &format!("/api/calls/{sid}"),
                &[("authorization", &format!("Bearer {ADMIN}"))],
                "",
            )
            .await;
            let v = r.json().unwrap_or_default();
            if v["end_reason"].is_string() {
                break v;
            }
            assert!(Instant::now() < deadline, "record not stored: {}", r.text());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    browser.goto(&format!("{base}/console/calls/{sid}")).await;
    browser.wait_text("#call-sid", |t| t == sid).await;
    let end_reason = browser.text(&browser.find("#end-reason").await).await;
    assert_eq!(end_reason, record["end_reason"].as_str().unwrap());
    let svg = "svg#timeline";
    browser.find(svg).await;
    assert_eq!(
        browser
            .find_all(&format!("{svg} rect.bar.agent"))
            .await
            .len(),
        3
    );
    assert_eq!(
        browser
            .find_all(&format!("{svg} rect.bar.agent.interrupted"))
            .await
            .len(),
        1
    );
    assert_eq!(
        browser
            .find_all(&format!("{svg} rect.bar.caller"))
            .await
            .len(),
        1
    );
    assert_eq!(
        browser
            .find_all(&format!("{svg} line.barge-in"))
            .await
            .len(),
        1
    );
    assert_eq!(browser.find_all(&format!("{svg} line.cut")).await.len(), 1);
    assert_eq!(
        browser
            .find_all(&format!("{svg} rect.bar.tool"))
            .await
            .len(),
        1
    );
    // The caller's bar starts at the barge-in; the interrupted agent bar ends there.
    let geometry = browser
        .eval(
            "const x = s => Number(document.querySelector(s).getAttribute('x'));
             const w = s => Number(document.querySelector(s).getAttribute('width'));
             return [x('rect.bar.caller'), x('line.barge-in') === undefined ? -1 :
                     Number(document.querySelector('line.barge-in').getAttribute('x1')),
                     x('rect.bar.agent.interrupted') + w('rect.bar.agent.interrupted')];",
        )
        .await;
    let g: Vec<f64> = geometry
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        (g[0] - g[1]).abs() < 0.2 && (g[2] - g[1]).abs() < 0.2,
        "{g:?}"
    );
    let text = browser.text(&browser.find("#transcript").await).await;
    assert!(text.contains(ANSWER), "{text}");
    assert!(
        text.contains("[cut:"),
        "the unheard rest of the greeting: {text}"
    );
    let tools = browser.text(&browser.find("#tool-calls").await).await;
    assert!(
        tools.contains("lookup_order") && tools.contains("\"order\": \"A-7\""),
        "{tools}"
    );
    assert!(tools.contains("<img src=x onerror=alert(1)>"), "{tools}");
    assert_eq!(
        browser.eval("return typeof window.pwned").await,
        "undefined"
    );
    assert_eq!(browser.eval("return document.scripts.length").await, 1);
    assert_eq!(browser.eval("return document.images.length").await, 0);
    browser.screenshot(&screenshots().join("call.png")).await;

    // History: the call, and totals.
    browser
        .goto(&format!("{base}/console/history?period=1h"))
        .await;
    let totals = browser.wait_text("#totals", |t| !t.is_empty()).await;
    assert!(totals.starts_with("Calls\n1\nMinutes"), "{totals}");
    let table = browser.text(&browser.find("#history").await).await;
    assert!(
        table.contains(&sid) && table.contains("+14*******34"),
        "{table}"
    );
    browser.screenshot(&screenshots().join("history.png")).await;

    // Sign out: the cookie no longer opens the console.
    browser.goto(&format!("{base}/console")).await;
    browser.click(&browser.find("header button").await).await;
    browser.find("#token").await;
    let r = raw(
        &bridge,
        ::http::Method::GET,
        "/console",
        &[("cookie", session.as_str())],
        "",
    )
    .await;
    assert_eq!(r.status, 303);

    browser.close().await;
    bridge.finish().await;
}

const TRANSFER_TOML: &str = r#"
[call_control]
transfer_caller_id = "+15005550006"
transfer_timeout_secs = 25
[[call_control.destinations]]
name = "front_desk"
number = "+15551230000"
description = "A person at the front desk."
"#;

/// Signs in over plain HTTP; returns the session cookie and the live page's CSRF token.
async fn sign_in(bridge: &Bridge) -> (String, String) {
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = raw(
        bridge,
        ::http::Method::POST,
        "/console/login",
        &form,
        &format!("token={ADMIN}"),
    )
    .await;
    assert_eq!(r.status, 303);
    let set_cookie = r.header("set-cookie").unwrap();
    assert!(
        set_cookie.ends_with("; Path=/console; Max-Age=43200; HttpOnly; SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let page = raw(
        bridge,
        ::http::Method::GET,
        "/console",
        &[("cookie", cookie.as_str())],
        "",
    )
    .await;
    assert_eq!(page.status, 200);
    let html = page.text();
    let at = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    (cookie, html[at..at + 64].to_owned())
}

/// A transfer from the console: only to the call's allow-listed destinations, after a
/// confirmation, with the same `<Dial>` TwiML the agent's `transfer_call` sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_from_the_console_dials_an_allowed_destination_after_confirmation() {
    let rest = MockTwilioRest::start().await.unwrap();
    let mock = MockRealtime::builder()
        .script(Script::new().then(ResponseScript::say(GREETING, 3000)))
        .start()
        .await
        .unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("console-transfer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("config.toml");
    std::fs::write(&toml, TRANSFER_TOML).unwrap();
    let rest_base = rest.base_url();
    let mut bridge = Bridge::start(
        &mock.base_url(),
        &[
            ("PHONE_AGENT_CONFIG", toml.to_str().unwrap()),
            ("PHONE_AGENT_ADMIN__TOKEN", ADMIN),
            ("TWILIO_ACCOUNT_SID", rest.account_sid()),
            ("PHONE_AGENT_TWILIO__REST_BASE_URL", rest_base.as_str()),
        ],
    )
    .await;
    bridge.sim = CallSimulator::new(&format!("http://{}", bridge.addr))
        .public_url(PUBLIC)
        .auth_token(e2e_support::AUTH_TOKEN)
        .account_sid(rest.account_sid())
        .rest(&rest);
    let call = bridge.sim.call().connect().await.unwrap();
    let sid = call.call_sid().to_owned();
    session_of(&mock, &sid).await;
    let (cookie, csrf) = sign_in(&bridge).await;
    // The agent session may be the one pre-warmed at `/voice`, open before the stream has
    // started and the call is listed as live: read the page until the call is on it.
    let option = r#"<option value="front_desk">front_desk</option>"#;
    let deadline = Instant::now() + WAIT;
    let page = loop {
        let page = raw(
            &bridge,
            ::http::Method::GET,
            "/console",
            &[("cookie", cookie.as_str())],
            "",
        )
        .await;
        if page.text().contains(option) || Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(page.text().contains(option), "{}", page.text());
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("cookie", cookie.as_str()),
    ];
    let path = format!("/console/calls/{sid}/transfer");

    // Not on the list: refused, nothing sent to Twilio.
    let r = raw(
        &bridge,
        ::http::Method::POST,
        &path,
        &headers,
        &format!("csrf={csrf}&destination=%2B15559999999&confirm=yes"),
    )
    .await;
    assert_eq!(r.status, 502);
    assert!(
        r.text()
            .contains("&quot;+15559999999&quot; is not a transfer destination of this call"),
        "{}",
        r.text()
    );
    // Without the confirmation: the question, nothing sent.
    let r = raw(
        &bridge,
        ::http::Method::POST,
        &path,
        &headers,
        &format!("csrf={csrf}&destination=front_desk"),
    )
    .await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.contains(&format!("<h1>Transfer call {sid} to front_desk?</h1>")),
        "{text}"
    );
    assert!(text.contains(r#"<input type="hidden" name="destination" value="front_desk">"#));
    assert!(rest.requests().is_empty(), "{:?}", rest.requests());

    // Confirmed: the exact <Dial> (no whisper: an operator's transfer has no summary).
    let r = raw(
        &bridge,
        ::http::Method::POST,
        &path,
        &headers,
        &format!("csrf={csrf}&destination=front_desk&confirm=yes"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("Transferring the call to front_desk."),
        "{}",
        r.text()
    );
    let update = rest.wait_for_update(&sid, WAIT).await.unwrap();
    assert_eq!(
        update.param("Twiml"),
        Some(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial callerId=\"+15005550006\" \
             timeout=\"25\">+15551230000</Dial></Response>"
        )
    );
    call.wait_closed(WAIT).await.unwrap();
    bridge.finish().await;
}

/// Without the admin token the console does not exist.
#[tokio::test]
async fn the_console_is_closed_without_the_admin_token() {
    let bridge = Bridge::start("http://127.0.0.1:9", &[]).await;
    for path in [
        "/console",
        "/console/login",
        "/console/events",
        "/console/assets/console.js",
    ] {
        let r = raw(&bridge, ::http::Method::GET, path, &[], "").await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (404, "not found\n"),
            "{path}"
        );
    }
    bridge.finish().await;
}

/// A recorded call: its page has a player, the player's URL serves exactly the file (only with
/// the session cookie), and a recording whose file is gone is a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_page_plays_the_calls_recording() {
    let mock = MockRealtime::builder()
        .script(Script::new().then(ResponseScript::say(GREETING, 600)))
        .start()
        .await
        .unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("console-recording-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("calls.db").display().to_string();
    let recordings = dir.join("recordings").display().to_string();
    let bridge = Bridge::start(
        &mock.base_url(),
        &[
            ("PHONE_AGENT_DATABASE__URL", db.as_str()),
            ("PHONE_AGENT_ADMIN__TOKEN", ADMIN),
            ("PHONE_AGENT_RECORDING__ENABLED", "true"),
            ("PHONE_AGENT_RECORDING__DIR", recordings.as_str()),
        ],
    )
    .await;
    let call = bridge.sim.call().connect().await.unwrap();
    let sid = call.call_sid().to_owned();
    let session = session_of(&mock, &sid).await;
    session.wait_for_response_done(1, WAIT).await.unwrap();
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();
    let (cookie, _) = sign_in(&bridge).await;
    let with_cookie = [("cookie", cookie.as_str())];

    // The call page, once the record is stored: a player pointing at the recording route.
    let page_path = format!("/console/calls/{sid}");
    let deadline = Instant::now() + WAIT;
    let html = loop {
        let r = raw(&bridge, ::http::Method::GET, &page_path, &with_cookie, "").await;
        if r.status == 200 {
            break r.text();
        }
        assert!(Instant::now() < deadline, "no record: {}", r.status);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let wav_path = format!("/console/calls/{sid}/recording.wav");
    let player =
        format!(r#"<audio id="recording" controls preload="none" src="{wav_path}"></audio>"#);
    assert!(html.contains(&player), "{html}");

    // With the session: exactly the file's bytes, as inline audio, under the console's CSP
    // (whose `default-src 'self'` lets the page's player load it).
    let file = PathBuf::from(&recordings).join(format!("{sid}.wav"));
    let on_disk = std::fs::read(&file).unwrap();
    assert!(on_disk.len() > 44, "a WAV with audio");
    let r = raw(&bridge, ::http::Method::GET, &wav_path, &with_cookie, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("inline; filename=\"call-{sid}.wav\"").as_str())
    );
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .starts_with("default-src 'self';")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.body[..], on_disk[..]);

    // Without the session: sent to sign in like every console page, no audio.
    let r = raw(&bridge, ::http::Method::GET, &wav_path, &[], "").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/console/login"));
    assert!(r.body.is_empty());
    // Not a GET.
    let r = raw(&bridge, ::http::Method::PUT, &wav_path, &with_cookie, "").await;
    assert_eq!(r.status, 405);

    // No such call, and a recording whose file is gone: 404.
    let r = raw(
        &bridge,
        ::http::Method::GET,
        "/console/calls/CA0000/recording.wav",
        &with_cookie,
        "",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (404, "no recording\n"));
    std::fs::remove_file(&file).unwrap();
    let r = raw(&bridge, ::http::Method::GET, &wav_path, &with_cookie, "").await;
    assert_eq!((r.status, r.text().as_str()), (404, "no recording\n"));
    bridge.finish().await;
}
