//! Every route over real sockets: health, readiness, metrics, the voice webhook's TwiML, limits,
//! unknown paths and methods.

mod common;

use ::http::Method;
use common::{TestServer, post_voice, start, stream_parameters};
use testkit::http;

async fn echo_server(extra: &[(&str, &str)]) -> TestServer {
    let mut vars = vec![("PHONE_AGENT_AGENT__BACKEND", "echo")];
    vars.extend_from_slice(extra);
    start(&vars).await
}

#[tokio::test]
async fn health_and_ready() {
    let server = echo_server(&[]).await;
    let r = http::get(&server.url("/health")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap(), serde_json::json!({"status": "ok"}));
    assert_eq!(r.header("content-type"), Some("application/json"));

    let r = http::get(&server.url("/ready")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap()["status"], "ready");

    let r = http::request(Method::HEAD, &server.url("/health"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn not_found_and_method_not_allowed() {
    let server = echo_server(&[]).await;
    assert_eq!(http::get(&server.url("/nope")).await.unwrap().status, 404);
    assert_eq!(http::get(&server.url("/")).await.unwrap().status, 404);
    let r = http::request(Method::DELETE, &server.url("/voice"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = http::request(Method::POST, &server.url("/health"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 405);
    let r = http::request(Method::POST, &server.url("/media"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn media_without_websocket_headers_is_400() {
    let server = echo_server(&[("PHONE_AGENT_TWILIO__REQUIRE_STREAM_TOKEN", "false")]).await;
    let r = http::get(&server.url("/media")).await.unwrap();
    assert_eq!(r.status, 400);
    // With stream tokens (the default), a request without one is refused first.
    let server = echo_server(&[]).await;
    let r = http::get(&server.url("/media")).await.unwrap();
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn voice_answers_a_media_stream_with_parameters() {
    let server =
        echo_server(&[("PHONE_AGENT_TWILIO__STREAM_PARAMETERS__TENANT", "acme & co")]).await;
    let (status, body) = post_voice(&server, "CA00000000000000000000000000000042", None).await;
    assert_eq!(status, 200);
    let doc = testkit::twilio::twiml::Twiml::parse(&body).expect("valid TwiML");
    let stream = doc.stream().expect("<Connect><Stream>");
    let token = stream
        .url
        .strip_prefix(&format!("{}/", server.media_url()))
        .expect("wss://HOST/media/<token>");
    let params = stream_parameters(&body);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("call_sid"), Some("CA00000000000000000000000000000042"));
    assert_eq!(get("from"), Some("+14155551234"));
    assert_eq!(get("to"), Some("+15005550006"));
    assert_eq!(get("tenant"), Some("acme & co"));
    assert_eq!(get("token"), None, "the token is in the URL's path");
    assert!(
        token.contains("CA00000000000000000000000000000042"),
        "{token}"
    );
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
        "{token}"
    );

    // A second call gets another token.
    let (_, body2) = post_voice(&server, "CA00000000000000000000000000000043", None).await;
    assert_ne!(common::stream_url(&body2), common::stream_url(&body));
}

#[tokio::test]
async fn voice_content_type_and_get_variant() {
    let server = echo_server(&[]).await;
    let url = server.url("/voice?CallSid=CA00000000000000000000000000000007&From=%2B1555");
    let r = http::get(&url).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
    let params = stream_parameters(&r.text());
    assert!(params.contains(&("from".to_string(), "+1555".to_string())));
}

#[tokio::test]
async fn voice_without_call_sid_is_400() {
    let server = echo_server(&[]).await;
    let r = http::post_form::<&str, &str>(&server.url("/voice"), &[], &[("From", "+1")])
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn voice_body_is_limited() {
    let server = echo_server(&[("PHONE_AGENT_SERVER__VOICE_BODY_LIMIT_BYTES", "2048")]).await;
    let big = "x".repeat(4096);
    let r = http::post_form(
        &server.url("/voice"),
        &[],
        &[("CallSid", "CA1"), ("Junk", big.as_str())],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn voice_without_public_url_uses_the_host_header() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let env = std::collections::HashMap::from([
        ("PHONE_AGENT_AGENT__BACKEND".to_string(), "echo".to_string()),
        ("PHONE_AGENT_METRICS__BIND".to_string(), "off".to_string()),
        ("PHONE_AGENT_DATABASE__URL".to_string(), "off".to_string()),
    ]);
    let config = phone_agent_server::config::Config::from_env_map(&env).unwrap();
    let handle = phone_agent_server::Server::new(config)
        .serve(listener)
        .unwrap();
    let url = format!("http://{addr}/voice");
    let r = http::post_form(&url, &[], &common::voice_form("CA1"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let doc = testkit::twilio::twiml::Twiml::parse(&r.text()).unwrap();
    let url = &doc.stream().unwrap().url;
    assert!(url.starts_with(&format!("wss://{addr}/media/")), "{url}");
    handle.shutdown();
    assert!(handle.wait().await.clean);
}

/// Metrics are never on the public call port: only on their own listener (`metrics.bind`).
#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let server = echo_server(&[]).await;
    // Produce at least one labelled series.
    let _ = post_voice(&server, "CA00000000000000000000000000000099", None).await;
    let public = http::get(&server.url("/metrics")).await.unwrap();
    assert_eq!(public.status, 404, "the call port exposes no metrics");
    assert!(!public.text().contains("phone_agent_"));
    let metrics_addr = server.handle.metrics_addr().expect("a metrics listener");
    assert_ne!(metrics_addr.port(), server.addr.port());
    assert_eq!(
        http::get(&format!("http://{metrics_addr}/voice"))
            .await
            .unwrap()
            .status,
        404,
        "the metrics listener serves nothing else"
    );
    let r = http::get(&server.metrics_url()).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    assert!(text.contains("phone_agent_http_requests_total"), "{text}");
    assert!(text.contains(r#"route="voice""#), "{text}");

    let server = echo_server(&[("PHONE_AGENT_METRICS__ENABLED", "false")]).await;
    assert!(server.handle.metrics_addr().is_none());
    let server = echo_server(&[("PHONE_AGENT_METRICS__BIND", "off")]).await;
    assert!(server.handle.metrics_addr().is_none());
}
