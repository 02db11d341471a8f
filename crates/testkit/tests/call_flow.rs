//! CallSimulator end to end against a tiny in-test bridge (hyper + tungstenite) over real TCP,
//! linked to the REST mock.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use testkit::rest::{CallControl, MockTwilioRest};
use testkit::twilio::signature::sign;
use testkit::twilio::{CallEnd, CallEvent, CallSimulator, Signing, SimError};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

const PUBLIC: &str = "https://bridge.example.com";
const T: Duration = Duration::from_secs(5);

/// A minimal bridge: validates signatures like a real server would, answers TwiML, and on the
/// stream plays 100 ms of audio followed by a mark. Reports what it saw on `events`.
async fn bridge(token: &'static str) -> (String, mpsc::UnboundedReceiver<Value>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(req, token, tx.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (format!("http://{addr}"), rx)
}

fn reply(status: u16, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status.try_into().unwrap();
    r.headers_mut()
        .insert("content-type", "text/xml".parse().unwrap());
    r
}

async fn handle(
    mut req: Request<Incoming>,
    token: &'static str,
    events: mpsc::UnboundedSender<Value>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let sig = req
        .headers()
        .get("x-twilio-signature")
        .map(|v| v.to_str().unwrap().to_string());
    match req.uri().path() {
        "/voice" => {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let params: Vec<(String, String)> =
                form_urlencoded::parse(&body).into_owned().collect();
            if sig != Some(sign(token, &format!("{PUBLIC}/voice"), &params)) {
                return Ok(reply(403, "bad signature"));
            }
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let _ = events.send(
                json!({"webhook": params.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
                                       "call_sid": get("CallSid")}),
            );
            if get("From").as_deref() == Some("+19999999999") {
                return Ok(reply(
                    200,
                    r#"<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>"#,
                ));
            }
            Ok(reply(
                200,
                &format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://bridge.example.com/media"><Parameter name="token" value="t&amp;1"/><Parameter name="from" value="{}"/></Stream></Connect><Say>Bye</Say></Response>"#,
                    get("From").unwrap_or_default()
                ),
            ))
        }
        "/media" => {
            let host = req
                .headers()
                .get("host")
                .map(|h| h.to_str().unwrap().to_string());
            if sig
                != Some(sign(
                    token,
                    "wss://bridge.example.com/media",
                    &[] as &[(&str, &str)],
                ))
                || host.as_deref() != Some("bridge.example.com")
            {
                return Ok(reply(403, "bad stream signature"));
            }
            let resp =
                tokio_tungstenite::tungstenite::handshake::server::create_response_with_body(
                    &req,
                    Full::<Bytes>::default,
                )
                .unwrap();
            tokio::spawn(async move {
                let up = hyper::upgrade::on(&mut req).await.unwrap();
                let mut ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
                let mut sid = String::new();
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(t) = msg else { continue };
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    match v["event"].as_str().unwrap() {
                        "start" => {
                            sid = v["streamSid"].as_str().unwrap().to_string();
                            let _ = events.send(v.clone());
                            let payload = base64::Engine::encode(
                                &base64::engine::general_purpose::STANDARD,
                                testkit::audio::agent_tone(1, 100),
                            );
                            ws.send(Message::text(json!({"event": "media", "streamSid": sid, "media": {"payload": payload}}).to_string())).await.unwrap();
                            ws.send(Message::text(
                                json!({"event": "mark", "streamSid": sid, "mark": {"name": "m"}})
                                    .to_string(),
                            ))
                            .await
                            .unwrap();
                        }
                        "media" | "connected" => {}
                        _ => {
                            let _ = events.send(v);
                        }
                    }
                }
                let _ = events.send(json!({"closed": sid}));
            });
            Ok(resp)
        }
        _ => Ok(reply(404, "")),
    }
}

#[tokio::test]
async fn signed_call_streams_plays_and_is_hung_up_over_rest() {
    let rest = MockTwilioRest::start().await.unwrap();
    let token: &'static str = Box::leak(rest.auth_token().to_string().into_boxed_str());
    let (server, mut events) = bridge(token).await;
    let sim = CallSimulator::new(&server).public_url(PUBLIC).rest(&rest);

    let call = sim.call().from("+14155550100").connect().await.unwrap();
    let webhook = events.recv().await.unwrap();
    for p in [
        "AccountSid",
        "ApiVersion",
        "CallSid",
        "CallStatus",
        "Called",
        "Caller",
        "Direction",
        "From",
        "To",
    ] {
        assert!(
            webhook["webhook"].as_array().unwrap().contains(&json!(p)),
            "{p} posted"
        );
    }
    assert_eq!(webhook["call_sid"], call.call_sid());
    let start = events.recv().await.unwrap();
    assert_eq!(
        start["start"]["customParameters"],
        json!({"token": "t&1", "from": "+14155550100"})
    );
    assert_eq!(start["start"]["accountSid"], rest.account_sid());
    assert_eq!(start["start"]["callSid"], call.call_sid());

    // The bridge's mark comes back after its 100 ms of audio played.
    let m = call.wait_mark_echoed("m", T).await.unwrap();
    let played = call.played_segments();
    assert_eq!(played.len(), 1);
    assert!(m.echoed_at.unwrap() >= played[0].ends_at());
    assert_eq!(
        played[0].ends_at() - played[0].starts_at,
        Duration::from_millis(100)
    );
    assert_eq!(events.recv().await.unwrap()["mark"]["name"], "m");
    assert_eq!(call.heard(), testkit::audio::agent_tone(1, 100));
    assert_eq!(rest.call(call.call_sid()).unwrap().status, "in-progress");

    // The "bridge" hangs up through the REST API: Twilio stops the stream.
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Calls/{}.json",
        rest.base_url(),
        rest.account_sid(),
        call.call_sid()
    );
    let auth = testkit::http::basic_auth(rest.account_sid(), rest.auth_token());
    let r = testkit::http::post_form(
        &url,
        &[("authorization", &auth)],
        &[("Status", "completed")],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        call.wait_closed(T).await.unwrap(),
        CallEnd::Rest(CallControl::Hangup)
    );
    let stop = events.recv().await.unwrap();
    assert_eq!(stop["event"], "stop");
    assert_eq!(stop["stop"]["callSid"], call.call_sid());
    assert!(events.recv().await.unwrap()["closed"].is_string());
    assert!(
        call.timeline()
            .iter()
            .any(|e| e.event == CallEvent::StopSent)
    );
    assert!(call.violations().is_empty(), "{:?}", call.violations());
    assert_eq!(rest.call(call.call_sid()).unwrap().status, "completed");
}

#[tokio::test]
async fn bad_signatures_rejects_and_missing_streams() {
    let token = "0123456789abcdef0123456789abcdef";
    let (server, _events) = bridge(token).await;
    let sim = CallSimulator::new(&server)
        .public_url(PUBLIC)
        .auth_token(token);

    let placed = sim.call().signature(Signing::Omit).place().await.unwrap();
    assert_eq!(placed.status(), 403);
    assert!(matches!(
        placed.open_stream().await,
        Err(SimError::WebhookStatus { status: 403, .. })
    ));
    let placed = sim
        .call()
        .signature(Signing::WithToken("wrong".into()))
        .place()
        .await
        .unwrap();
    assert_eq!(placed.status(), 403);

    // Signing the stream over https:// instead of wss:// is refused by the bridge.
    let err = sim
        .call()
        .stream_signature(Signing::WithUrl("https://bridge.example.com/media".into()))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, SimError::StreamRejected { status: 403, .. }),
        "{err}"
    );

    let placed = sim.call().from("+19999999999").place().await.unwrap();
    assert_eq!(placed.rejected(), Some(Some("busy")));
    assert!(matches!(
        placed.open_stream().await,
        Err(SimError::NoStream(_))
    ));

    // Valid everything: the stream opens.
    let placed = sim.call().place().await.unwrap();
    assert_eq!(
        placed.stream().unwrap().url,
        "wss://bridge.example.com/media"
    );
    assert!(placed.twiml.as_ref().unwrap().issues().is_empty());
    let call = placed.open_stream().await.unwrap();
    call.wait_mark_echoed("m", T).await.unwrap();
    assert_eq!(
        call.drop_connection(T).await.unwrap(),
        CallEnd::CallerDropped
    );
}

#[tokio::test]
async fn outbound_call_answered_and_driven_by_a_script() {
    let rest = MockTwilioRest::start().await.unwrap();
    let token: &'static str = Box::leak(rest.auth_token().to_string().into_boxed_str());
    let (server, mut events) = bridge(token).await;
    let sim = CallSimulator::new(&server).public_url(PUBLIC).rest(&rest);

    // The "bridge" places an outbound call whose TwiML is fetched from its own /voice.
    let auth = testkit::http::basic_auth(rest.account_sid(), rest.auth_token());
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Calls.json",
        rest.base_url(),
        rest.account_sid()
    );
    let r = testkit::http::post_form(
        &url,
        &[("authorization", &auth)],
        &[
            ("To", "+15551234567"),
            ("From", "+15005550006"),
            ("Url", "https://bridge.example.com/voice"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201);
    let created = rest.wait_for_created_call(1, T).await.unwrap();
    let call = sim.answer_outbound(&created).await.unwrap();
    assert_eq!(call.call_sid(), created.sid);
    assert_eq!(rest.call(&created.sid).unwrap().status, "in-progress");
    assert_eq!(
        events.recv().await.unwrap()["call_sid"],
        created.sid.as_str()
    );
    assert_eq!(events.recv().await.unwrap()["event"], "start");

    let script = testkit::twilio::CallScript::new()
        .wait_mark("m")
        .wait_heard_ms(100)
        .dtmf('7')
        .say(testkit::audio::speech(40))
        .wait_playout_idle()
        .stop();
    call.run(&script).await.unwrap();
    assert_eq!(events.recv().await.unwrap()["event"], "mark");
    assert_eq!(events.recv().await.unwrap()["dtmf"]["digit"], "7");
    assert_eq!(events.recv().await.unwrap()["event"], "stop");
    assert_eq!(call.closed(), Some(CallEnd::CallerStopped));
    assert_eq!(rest.call(&created.sid).unwrap().status, "completed");
}
