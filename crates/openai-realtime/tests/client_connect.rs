//! Connecting: URLs, headers, TCP_NODELAY, retries, timeouts, handshake errors.
#![cfg(feature = "client")]

mod client_support;

use std::time::Duration;

use client_support::{KEY, accept, endpoint, listen, reject};
use openai_realtime::client::{
    ApiKey, AuthStyle, ConnectErrorKind, DEFAULT_USER_AGENT, RetryPolicy, Target,
};
use tokio::net::TcpSocket;
use tokio::time::Instant;

fn retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        jitter: false,
    }
}

#[tokio::test]
async fn realtime_upgrade_request_has_path_query_and_headers() {
    let (listener, base) = listen().await;
    let endpoint = endpoint(&format!("{base}/"))
        .organization("org_123")
        .project("proj_456")
        .header("X-Trace-Id", "trace-1")
        .build()
        .expect("valid endpoint");

    let server = tokio::spawn(async move { accept(&listener).await });
    let connection = endpoint
        .connect(&Target::realtime("gpt-realtime"))
        .await
        .expect("connect");
    let (_ws, seen) = server.await.expect("server task");

    assert_eq!(seen.path_and_query, "/v1/realtime?model=gpt-realtime");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(seen.header("api-key"), None);
    assert_eq!(
        seen.header("openai-beta"),
        None,
        "GA must not send OpenAI-Beta"
    );
    assert_eq!(
        seen.header("sec-websocket-extensions"),
        None,
        "no permessage-deflate"
    );
    assert_eq!(seen.header("user-agent"), Some(DEFAULT_USER_AGENT));
    assert!(DEFAULT_USER_AGENT.starts_with("phone-agent/"));
    assert_eq!(seen.header("openai-organization"), Some("org_123"));
    assert_eq!(seen.header("openai-project"), Some("proj_456"));
    assert_eq!(seen.header("x-trace-id"), Some("trace-1"));

    let info = connection.info();
    assert_eq!(
        info.url(),
        format!(
            "{}/realtime?model=gpt-realtime",
            base.replacen("http", "ws", 1)
        )
    );
    assert_eq!(info.request_id(), Some("req_test_101"));
    assert_eq!(info.attempts(), 1);
    assert_eq!(
        info.tcp_nodelay(),
        Some(true),
        "TCP_NODELAY read back from the client socket"
    );
    assert!(info.peer_addr().is_some());
}

#[tokio::test]
async fn live_upgrade_request_with_azure_api_key_header() {
    let (listener, base) = listen().await;
    let endpoint = endpoint(&base)
        .auth_style(AuthStyle::AzureApiKey)
        .build()
        .expect("valid endpoint");

    let server = tokio::spawn(async move { accept(&listener).await });
    endpoint.connect(&Target::live()).await.expect("connect");
    let (_ws, seen) = server.await.expect("server task");

    assert_eq!(
        seen.path_and_query, "/v1/live/sessions",
        "no query for GPT-Live"
    );
    assert_eq!(seen.header("api-key"), Some(KEY));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("openai-beta"), None);
    assert_eq!(seen.header("user-agent"), Some(DEFAULT_USER_AGENT));
}

#[tokio::test]
async fn model_is_percent_encoded_on_the_wire() {
    let (listener, base) = listen().await;
    let endpoint = endpoint(&base).build().expect("valid endpoint");
    let server = tokio::spawn(async move { accept(&listener).await });
    endpoint
        .connect(&Target::realtime("my deployment/v2"))
        .await
        .expect("connect");
    let (_ws, seen) = server.await.expect("server task");
    assert_eq!(
        seen.path_and_query,
        "/v1/realtime?model=my%20deployment%2Fv2"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_connection_refused_then_succeeds() {
    // A bound socket that is not listening refuses connections, and holding it keeps the port
    // ours; `listen` later turns it into the server without any port race.
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let addr = socket.local_addr().expect("bound address");
    let endpoint = endpoint(&format!("http://{addr}/v1"))
        .retry(retry(5))
        .build()
        .expect("valid endpoint");

    let start = Instant::now();
    let client = tokio::spawn(async move { endpoint.connect(&Target::live()).await });

    // Attempts at t=0 and t=100ms are refused; the third, at t=300ms, finds a listener.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let listener = socket.listen(8).expect("listen");
    let (_ws, seen) = accept(&listener).await;
    let connection = client
        .await
        .expect("client task")
        .expect("connected after retries");

    assert_eq!(seen.path_and_query, "/v1/live/sessions");
    assert_eq!(connection.info().attempts(), 3);
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(300),
        "backoff 100 ms then 200 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn gives_up_on_refused_after_max_attempts() {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let addr = socket.local_addr().expect("bound address");
    let endpoint = endpoint(&format!("http://{addr}/v1"))
        .retry(retry(3))
        .build()
        .expect("valid endpoint");

    let start = Instant::now();
    let err = endpoint
        .connect(&Target::live())
        .await
        .expect_err("nobody listens");
    assert_eq!(err.attempts(), 3);
    assert!(err.is_transient());
    match err.kind() {
        ConnectErrorKind::Tcp(io) => assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected a refused TCP connect, got {other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    drop(socket);
}

#[tokio::test(start_paused = true)]
async fn retries_503_honouring_retry_after_then_succeeds() {
    let (listener, base) = listen().await;
    let endpoint = endpoint(&base)
        .retry(retry(4))
        .build()
        .expect("valid endpoint");

    let start = Instant::now();
    let client =
        tokio::spawn(async move { endpoint.connect(&Target::realtime("gpt-realtime")).await });
    reject(
        &listener,
        503,
        r#"{"error":{"message":"overloaded"}}"#,
        None,
    )
    .await;
    reject(
        &listener,
        429,
        r#"{"error":{"code":"rate_limit_exceeded"}}"#,
        Some(1),
    )
    .await;
    let (_ws, _seen) = accept(&listener).await;
    let connection = client
        .await
        .expect("client task")
        .expect("connected after retries");

    assert_eq!(connection.info().attempts(), 3);
    // 100 ms after the 503; after the 429 max(200 ms, Retry-After 1 s) capped at 1 s.
    assert_eq!(start.elapsed(), Duration::from_millis(1100));
}

#[tokio::test(start_paused = true)]
async fn does_not_retry_401_and_reports_status_body_and_request_id() {
    let (listener, base) = listen().await;
    let endpoint = endpoint(&base)
        .retry(retry(5))
        .build()
        .expect("valid endpoint");
    let body = r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}"#;

    let server = tokio::spawn(async move {
        let seen = reject(&listener, 401, body, None).await;
        (seen, listener)
    });
    let err = endpoint
        .connect(&Target::realtime("gpt-realtime"))
        .await
        .expect_err("401");
    let (seen, listener) = server.await.expect("server task");

    assert_eq!(err.attempts(), 1);
    assert!(!err.is_transient());
    let rejection = err.http().expect("an HTTP rejection");
    assert_eq!(rejection.status.as_u16(), 401);
    assert_eq!(rejection.body, body);
    assert_eq!(rejection.request_id.as_deref(), Some("req_rejected_1"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );

    let shown = format!("{err} / {err:?}");
    assert!(
        shown.contains("401")
            && shown.contains("req_rejected_1")
            && shown.contains("invalid_api_key"),
        "{shown}"
    );
    assert!(!shown.contains(KEY), "the key leaked: {shown}");

    // No second attempt is pending: nothing else connects.
    let second = tokio::time::timeout(Duration::from_secs(60), listener.accept()).await;
    assert!(second.is_err(), "a 401 must not be retried");
}

#[tokio::test(start_paused = true)]
async fn other_client_errors_are_not_retried() {
    for status in [400u16, 403, 404] {
        let (listener, base) = listen().await;
        let endpoint = endpoint(&base)
            .retry(retry(5))
            .build()
            .expect("valid endpoint");
        let server =
            tokio::spawn(async move { reject(&listener, status, r#"{"error":{}}"#, None).await });
        let err = endpoint
            .connect(&Target::live())
            .await
            .expect_err("rejected");
        server.await.expect("server task");
        assert_eq!(err.attempts(), 1, "{status}");
        assert_eq!(err.http().map(|r| r.status.as_u16()), Some(status));
    }
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_when_the_server_never_answers() {
    // The kernel completes the TCP handshake from the backlog; nobody ever answers the upgrade.
    let (listener, base) = listen().await;
    let endpoint = endpoint(&base)
        .connect_timeout(Duration::from_secs(3))
        .retry(retry(2))
        .build()
        .expect("valid endpoint");

    let start = Instant::now();
    let err = endpoint
        .connect(&Target::live())
        .await
        .expect_err("times out");
    assert!(
        matches!(err.kind(), ConnectErrorKind::Timeout(d) if *d == Duration::from_secs(3)),
        "{err:?}"
    );
    assert_eq!(err.attempts(), 2, "timeouts are transient");
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(6100),
        "3 s + 100 ms backoff + 3 s"
    );
    drop(listener);
}

#[tokio::test]
async fn secrets_never_appear_in_debug_output() {
    let (listener, base) = listen().await;
    let builder = endpoint(&base).header("X-Extra-Secret", "extra-secret-value");
    let endpoint = builder.clone().build().expect("valid endpoint");
    let server = tokio::spawn(async move { accept(&listener).await });
    let connection = endpoint.connect(&Target::live()).await.expect("connect");
    let _server = server.await.expect("server task");

    let rendered = format!(
        "{builder:?}\n{endpoint:?}\n{connection:?}\n{:?}\n{}",
        ApiKey::new(KEY),
        ApiKey::new(KEY)
    );
    assert!(!rendered.contains(KEY), "{rendered}");
    assert!(!rendered.contains("extra-secret-value"), "{rendered}");
    assert!(rendered.contains("[redacted]"));
}

#[tokio::test]
async fn a_message_sent_in_the_same_write_as_the_upgrade_response_comes_first() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

    let (listener, base) = listen().await;
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.expect("request byte"));
        }
        let head = String::from_utf8(head).expect("ASCII request");
        let key = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .expect("a key");
        // The 101 response and the server's first frame (unmasked text) in one write, as a
        // server that sends `session.created` at once may well do.
        let mut wire = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        )
        .into_bytes();
        let first = br#"{"type":"session.created"}"#;
        wire.extend_from_slice(&[0x81, first.len() as u8]);
        wire.extend_from_slice(first);
        tcp.write_all(&wire).await.expect("write");
        tcp
    });
    let mut connection = endpoint(&base)
        .build()
        .expect("valid endpoint")
        .connect(&Target::realtime("gpt-realtime"))
        .await
        .expect("connect");
    match connection.recv().await {
        Some(Ok(openai_realtime::client::Incoming::Text(text))) => {
            assert_eq!(text.as_str(), r#"{"type":"session.created"}"#)
        }
        other => panic!("expected the first message, got {other:?}"),
    }
    drop(server.await.expect("server task"));
}
