//! An open connection: sending, receiving, coalescing, pings, binary frames, closing.
#![cfg(feature = "client")]

mod client_support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use client_support::{accept, duplex_pair, endpoint, listen, ws_pair};
use futures_util::{FutureExt, SinkExt, StreamExt};
use openai_realtime::client::{
    CloseEnd, CloseReason, DEFAULT_LIVE_CLOSE_TIMEOUT, Incoming, MAX_MESSAGE_SIZE, Target,
    TransportError, Utf8Bytes, close_live_session, close_with_reason,
};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Bound for waits that succeed immediately when the code is right (never slept through).
const FAILSAFE: Duration = Duration::from_secs(10);

fn text(item: Option<Result<Incoming, TransportError>>) -> String {
    match item {
        Some(Ok(Incoming::Text(text))) => text.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Reads a connection (or its receiving half) until the peer's close frame; the texts seen.
async fn texts_until_close(
    mut incoming: impl futures_util::Stream<Item = Result<Incoming, TransportError>> + Unpin,
) -> Vec<String> {
    let mut texts = Vec::new();
    while let Some(item) = incoming.next().await {
        match item.expect("no transport error") {
            Incoming::Text(text) => texts.push(text.as_str().to_owned()),
            Incoming::Close(_) => break,
            _ => {}
        }
    }
    texts
}

async fn next_server_message<S>(server: &mut tokio_tungstenite::WebSocketStream<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(FAILSAFE, server.next())
        .await
        .expect("server received something")
        .expect("stream open")
        .expect("valid frame")
}

#[derive(Serialize)]
struct Append<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    audio: &'a str,
}

#[tokio::test]
async fn send_and_receive_round_trip_over_tcp() {
    let (listener, base) = listen().await;
    let endpoint = endpoint(&base).build().expect("valid endpoint");
    let server = tokio::spawn(async move {
        let (mut ws, _) = accept(&listener).await;
        // Echo every text message until the client closes.
        while let Some(Ok(message)) = ws.next().await {
            if message.is_text() {
                ws.send(message).await.expect("echo");
            }
        }
    });

    let connection = endpoint
        .connect(&Target::realtime("gpt-realtime"))
        .await
        .expect("connect");
    let (mut sender, mut receiver) = connection.split();

    sender
        .send_text(String::from(r#"{"type":"response.create"}"#))
        .await
        .expect("send_text");
    assert_eq!(text(receiver.recv().await), r#"{"type":"response.create"}"#);

    let append = Append {
        kind: "input_audio_buffer.append",
        audio: "//79/A==",
    };
    sender.send_json(&append).await.expect("send_json");
    assert_eq!(
        text(receiver.recv().await),
        r#"{"type":"input_audio_buffer.append","audio":"//79/A=="}"#
    );

    // Coalesced: three fed messages, one flush, all echoed in order.
    for n in 0..3 {
        sender
            .feed_json(&serde_json::json!({ "type": "mark", "n": n }))
            .await
            .expect("feed");
    }
    sender.flush().await.expect("flush");
    for n in 0..3 {
        assert_eq!(
            text(receiver.recv().await),
            format!(r#"{{"n":{n},"type":"mark"}}"#)
        );
    }

    sender.close(1000, "done").await.expect("close");
    match receiver.recv().await {
        Some(Ok(Incoming::Close(Some(reason)))) => assert_eq!(reason.code, 1000),
        other => panic!("expected the close echo, got {other:?}"),
    }
    assert!(
        receiver.recv().await.is_none(),
        "ends after the close handshake"
    );
    server.await.expect("server task");
}

#[tokio::test]
async fn feed_buffers_until_flush_writes_once() {
    let (mut connection, writes, mut server) = ws_pair().await;

    connection.feed_text("one").await.expect("feed");
    connection
        .feed_json(&serde_json::json!({ "type": "two" }))
        .await
        .expect("feed");
    connection
        .feed_text(Utf8Bytes::from_static("three"))
        .await
        .expect("feed");
    assert_eq!(
        writes.load(Ordering::SeqCst),
        0,
        "nothing written before flush"
    );

    connection.flush().await.expect("flush");
    assert_eq!(
        writes.load(Ordering::SeqCst),
        1,
        "one write for three messages"
    );

    for expected in ["one", r#"{"type":"two"}"#, "three"] {
        assert_eq!(
            next_server_message(&mut server).await,
            Message::text(expected)
        );
    }

    connection.send_text("four").await.expect("send");
    assert_eq!(
        writes.load(Ordering::SeqCst),
        2,
        "send_text flushes at once"
    );
    assert_eq!(
        next_server_message(&mut server).await,
        Message::text("four")
    );
}

#[tokio::test]
async fn serialization_failure_sends_nothing() {
    let (mut connection, writes, _server) = ws_pair().await;
    let mut bad = BTreeMap::new();
    bad.insert(vec![1u8], 1); // JSON object keys must be strings
    let err = connection
        .send_json(&bad)
        .await
        .expect_err("not serializable");
    assert!(matches!(err, TransportError::Serialize(_)), "{err:?}");
    assert_eq!(writes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn client_close_reason_reaches_the_server() {
    let (mut connection, _writes, mut server) = ws_pair().await;

    connection.close(4000, "call ended").await.expect("close");
    let expected = CloseFrame {
        code: CloseCode::from(4000),
        reason: "call ended".into(),
    };
    assert_eq!(
        next_server_message(&mut server).await,
        Message::Close(Some(expected))
    );

    // The server's next read sends its reply (the same frame) and ends its stream.
    assert!(server.next().await.is_none());
    assert_eq!(
        connection.recv().await.expect("item").expect("ok"),
        Incoming::Close(Some(CloseReason {
            code: 4000,
            reason: "call ended".into()
        }))
    );
    drop(server);
    assert!(connection.recv().await.is_none());

    let err = connection.send_text("late").await.expect_err("closed");
    assert!(err.is_closed(), "{err:?}");
}

#[tokio::test]
async fn close_reason_is_cut_to_the_protocol_limit_and_bad_codes_are_refused() {
    let (mut connection, _writes, mut server) = ws_pair().await;
    let err = connection
        .close(1006, "abnormal")
        .await
        .expect_err("1006 may not be sent");
    assert!(
        matches!(err, TransportError::InvalidCloseCode(1006)),
        "{err:?}"
    );

    let long = "é".repeat(100); // 200 bytes
    connection.close(1000, &long).await.expect("close");
    match next_server_message(&mut server).await {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Normal);
            assert_eq!(
                frame.reason.len(),
                122,
                "≤ 123 bytes, on a character boundary"
            );
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn server_close_is_reported_and_answered_without_further_reads() {
    let (mut connection, _writes, mut server) = ws_pair().await;

    let frame = CloseFrame {
        code: CloseCode::Away,
        reason: "going away".into(),
    };
    server
        .send(Message::Close(Some(frame.clone())))
        .await
        .expect("server close");

    let item = connection.recv().await.expect("item").expect("ok");
    assert_eq!(
        item,
        Incoming::Close(Some(CloseReason {
            code: 1001,
            reason: "going away".into()
        }))
    );
    assert_eq!(item.as_text(), None);

    // The client does not call recv again, yet its close reply is already on the wire.
    assert_eq!(
        next_server_message(&mut server).await,
        Message::Close(Some(frame))
    );
    drop(server);
    assert!(connection.recv().await.is_none());
}

#[tokio::test]
async fn server_close_over_tcp_is_seen_by_the_client() {
    let (listener, base) = listen().await;
    let endpoint = endpoint(&base).build().expect("valid endpoint");
    let server = tokio::spawn(async move {
        let (mut ws, _) = accept(&listener).await;
        ws.send(Message::text(r#"{"type":"session.closed"}"#))
            .await
            .expect("send");
        ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .expect("close");
        // Wait for the client's reply, completing the handshake.
        while ws.next().await.is_some() {}
    });

    let mut connection = endpoint.connect(&Target::live()).await.expect("connect");
    assert_eq!(
        text(connection.recv().await),
        r#"{"type":"session.closed"}"#
    );
    match connection.recv().await {
        Some(Ok(Incoming::Close(Some(reason)))) => {
            assert_eq!((reason.code, reason.reason.as_str()), (1000, "bye"));
            assert_eq!(reason.to_string(), "1000 (bye)");
        }
        other => panic!("expected the server's close frame, got {other:?}"),
    }
    tokio::time::timeout(FAILSAFE, server)
        .await
        .expect("server saw the handshake end")
        .expect("task");
    assert!(connection.recv().await.is_none());
}

#[tokio::test]
async fn a_reader_only_task_answers_pings() {
    let (connection, _writes, mut server) = ws_pair().await;
    let (sender, receiver) = connection.split();
    let reader = tokio::spawn(texts_until_close(receiver));

    // The reader is parked in recv; nothing else runs on the client.
    server
        .send(Message::Ping("are you there".into()))
        .await
        .expect("ping");
    assert_eq!(
        next_server_message(&mut server).await,
        Message::Pong("are you there".into())
    );
    server
        .send(Message::Ping("again".into()))
        .await
        .expect("ping");
    assert_eq!(
        next_server_message(&mut server).await,
        Message::Pong("again".into())
    );

    server
        .send(Message::text("after pings"))
        .await
        .expect("text");
    server.send(Message::Close(None)).await.expect("close");
    let texts = tokio::time::timeout(FAILSAFE, reader)
        .await
        .expect("reader ended")
        .expect("task");
    assert_eq!(texts, ["after pings"]);
    drop(sender);
}

#[tokio::test]
async fn binary_frames_are_skipped_and_counted() {
    let (mut connection, _writes, mut server) = ws_pair().await;
    server
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("binary");
    server
        .send(Message::binary(vec![4u8]))
        .await
        .expect("binary");
    server.send(Message::text("kept")).await.expect("text");

    assert_eq!(text(connection.recv().await), "kept");
    assert_eq!(connection.skipped_binary_frames(), 2);
}

#[tokio::test]
async fn recv_is_cancel_safe_mid_frame() {
    let (mut connection, _writes, mut raw_server) = duplex_pair().await;
    let payload = br#"{"type":"response.output_audio.delta","delta":"AAAA"}"#;
    let mut frame = vec![0x81, u8::try_from(payload.len()).expect("short frame")];
    frame.extend_from_slice(payload);
    let (head, tail) = frame.split_at(10);

    raw_server.write_all(head).await.expect("first half");
    // Poll once with half a frame buffered, then drop the future (a lost select! branch).
    assert!(
        connection.recv().now_or_never().is_none(),
        "incomplete frame must not resolve"
    );
    raw_server.write_all(tail).await.expect("second half");
    assert_eq!(text(connection.recv().await).as_bytes(), payload);

    // And in a real select! that the other branch wins first.
    let mut ticks = 0;
    raw_server
        .write_all(&[0x81, 2, b'h', b'i'])
        .await
        .expect("frame");
    loop {
        tokio::select! {
            biased;
            _ = std::future::ready(()), if ticks < 3 => ticks += 1,
            item = connection.recv() => {
                assert_eq!(text(item), "hi");
                break;
            }
        }
    }
    assert_eq!(ticks, 3);
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let (listener, base) = listen().await;
    let endpoint = endpoint(&base).build().expect("valid endpoint");
    let server = tokio::spawn(async move {
        let (mut ws, _) = accept(&listener).await;
        // The client stops reading mid-message, so these writes may fail.
        ws.send(Message::text("x".repeat(MAX_MESSAGE_SIZE + 1)))
            .await
            .ok();
        ws.send(Message::text("never seen")).await.ok();
    });
    let mut connection = endpoint.connect(&Target::live()).await.expect("connect");
    match connection.recv().await {
        Some(Err(TransportError::WebSocket(err))) => {
            assert!(err.to_string().contains("too long"), "{err}")
        }
        other => panic!("expected a capacity error, got {other:?}"),
    }
    assert!(
        connection.recv().await.is_none(),
        "the stream ends after an error"
    );
    drop(connection);
    server.await.expect("server task");
}

#[tokio::test]
async fn incoming_debug_hides_payloads() {
    let incoming = Incoming::Text(Utf8Bytes::from_static(r#"{"delta":"c2VjcmV0IGF1ZGlv"}"#));
    let shown = format!("{incoming:?}");
    assert!(!shown.contains("c2VjcmV0"), "{shown}");
    assert!(shown.contains("len: 28"), "{shown}");
    assert_eq!(incoming.clone().into_text().map(|t| t.len()), Some(28));
}

/// A scripted GPT-Live server: expects `session.close`, answers with `frames`, then closes.
async fn live_server<S>(
    server: &mut tokio_tungstenite::WebSocketStream<S>,
    frames: &[&str],
    close: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    assert_eq!(
        next_server_message(server).await,
        Message::text(r#"{"type":"session.close"}"#)
    );
    for frame in frames {
        server.send(Message::text(*frame)).await.expect("send");
    }
    if close {
        server.close(None).await.expect("close");
    }
}

#[tokio::test]
async fn live_close_collects_frames_until_session_closed() {
    let (mut connection, _writes, mut server) = ws_pair().await;
    let usage = r#"{"type":"session.usage.updated","usage":{"seconds":12.5}}"#;
    let closed = r#"{"type":"session.closed","event_id":"evt_9","reason":"close_requested","usage":{"seconds":12.5}}"#;
    let script = async { live_server(&mut server, &[usage, closed], true).await };
    let (report, ()) = tokio::join!(
        connection.close_live_session(DEFAULT_LIVE_CLOSE_TIMEOUT),
        script
    );
    let report = report.expect("session.close sent");

    assert!(matches!(report.end, CloseEnd::SessionClosed), "{report:?}");
    let frames: Vec<_> = report.frames.iter().map(Utf8Bytes::as_str).collect();
    assert_eq!(frames, [usage, closed]);
    assert_eq!(
        format!("{report:?}"),
        "CloseReport { frames: 2, end: SessionClosed }"
    );
}

#[tokio::test]
async fn live_close_without_session_closed_reports_the_socket_close() {
    let (mut connection, _writes, mut server) = ws_pair().await;
    let error = r#"{"type":"error","error":{"type":"server_error","code":"session_storage_failed","message":"x"}}"#;
    let script = async { live_server(&mut server, &[error], true).await };
    let (report, ()) = tokio::join!(
        connection.close_live_session(DEFAULT_LIVE_CLOSE_TIMEOUT),
        script
    );
    let report = report.expect("session.close sent");
    assert!(
        matches!(report.end, CloseEnd::PeerClosed(None)),
        "{report:?}"
    );
    assert_eq!(report.frames.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn live_close_gives_up_after_the_timeout() {
    let (mut connection, _writes, mut server) = ws_pair().await;
    let usage = r#"{"type":"session.usage.updated","usage":{"seconds":3.0}}"#;
    let script = async { live_server(&mut server, &[usage], false).await };
    let start = tokio::time::Instant::now();
    let (report, ()) = tokio::join!(
        connection.close_live_session(DEFAULT_LIVE_CLOSE_TIMEOUT),
        script
    );
    let report = report.expect("session.close sent");
    assert!(matches!(report.end, CloseEnd::TimedOut), "{report:?}");
    assert_eq!(report.frames.len(), 1);
    assert_eq!(start.elapsed(), DEFAULT_LIVE_CLOSE_TIMEOUT);
}

#[tokio::test]
async fn close_with_reason_waits_for_the_peer_close() {
    let (mut connection, _writes, mut server) = ws_pair().await;
    let script = async move {
        server.send(Message::text("in flight")).await.expect("send");
        // tungstenite's server answers our close frame by itself while reading, then the
        // server drops the socket (as a server does after the handshake).
        while let Some(Ok(_)) = server.next().await {}
    };
    let (report, ()) = tokio::join!(connection.close_with_reason(1000, "bye", FAILSAFE), script);
    let report = report.expect("close sent");
    match report.end {
        CloseEnd::PeerClosed(Some(reason)) => {
            assert_eq!((reason.code, reason.reason.as_str()), (1000, "bye"))
        }
        other => panic!("expected the peer's close frame, got {other:?}"),
    }
    assert_eq!(
        report
            .frames
            .iter()
            .map(Utf8Bytes::as_str)
            .collect::<Vec<_>>(),
        ["in flight"]
    );

    // Closing again is not an error; the socket has ended.
    let again = connection
        .close_with_reason(1000, "bye", FAILSAFE)
        .await
        .expect("already closed is fine");
    assert!(matches!(again.end, CloseEnd::SocketEnded), "{again:?}");
}

#[tokio::test]
async fn a_peer_vanishing_without_a_close_frame_ends_the_stream() {
    let (mut connection, _writes, mut raw_server) = duplex_pair().await;
    raw_server
        .write_all(&[0x81, 2, b'o', b'k'])
        .await
        .expect("frame");
    drop(raw_server);
    assert_eq!(text(connection.recv().await), "ok");
    match connection.recv().await {
        Some(Err(TransportError::WebSocket(err))) => {
            assert!(err.to_string().contains("closing handshake"), "{err}")
        }
        other => panic!("expected a reset error, got {other:?}"),
    }
    assert!(connection.recv().await.is_none());
}

#[tokio::test]
async fn queued_messages_keep_their_order_through_the_poll_api_and_a_split() {
    let (mut connection, writes, mut server) = ws_pair().await;
    connection.queue_text("one");
    connection.queue_text(String::from("two"));
    std::future::poll_fn(|cx| connection.poll_ready(cx))
        .await
        .expect("ready");
    connection.queue_text(Utf8Bytes::from_static("three"));
    assert_eq!(
        writes.load(Ordering::SeqCst),
        0,
        "nothing written before a flush"
    );

    // What is queued moves with the split: the sender writes it, in order, in one write.
    let (mut sender, _receiver) = connection.split();
    std::future::poll_fn(|cx| sender.poll_flush(cx))
        .await
        .expect("flush");
    assert_eq!(writes.load(Ordering::SeqCst), 1, "one write for three");
    for expected in ["one", "two", "three"] {
        assert_eq!(
            next_server_message(&mut server).await,
            Message::text(expected)
        );
    }
}

#[tokio::test]
async fn a_connection_waiting_in_recv_answers_pings() {
    let (connection, _writes, mut server) = ws_pair().await;
    let client = tokio::spawn(texts_until_close(connection));

    server
        .send(Message::Ping("ping".into()))
        .await
        .expect("ping");
    assert_eq!(
        next_server_message(&mut server).await,
        Message::Pong("ping".into())
    );
    server.send(Message::text("after")).await.expect("text");
    server.send(Message::Close(None)).await.expect("close");
    let texts = tokio::time::timeout(FAILSAFE, client)
        .await
        .expect("client ended")
        .expect("task");
    assert_eq!(texts, ["after"]);
}

#[tokio::test]
async fn split_halves_close_with_a_reason_like_the_connection() {
    let (connection, _writes, mut server) = ws_pair().await;
    let (mut sender, mut receiver) = connection.split();
    let script = async move {
        server.send(Message::text("in flight")).await.expect("send");
        while let Some(Ok(_)) = server.next().await {}
    };
    let (report, ()) = tokio::join!(
        close_with_reason(&mut sender, &mut receiver, 4000, "call ended", FAILSAFE),
        script
    );
    let report = report.expect("close sent");
    match report.end {
        CloseEnd::PeerClosed(Some(reason)) => {
            assert_eq!((reason.code, reason.reason.as_str()), (4000, "call ended"))
        }
        other => panic!("expected the peer's close frame, got {other:?}"),
    }
    assert_eq!(
        report
            .frames
            .iter()
            .map(Utf8Bytes::as_str)
            .collect::<Vec<_>>(),
        ["in flight"]
    );
}

#[tokio::test]
async fn split_halves_close_a_live_session_like_the_connection() {
    let (connection, _writes, mut server) = ws_pair().await;
    let (mut sender, mut receiver) = connection.split();
    let closed = r#"{"type":"session.closed","reason":"close_requested"}"#;
    let script = async { live_server(&mut server, &[closed], true).await };
    let (report, ()) = tokio::join!(
        close_live_session(&mut sender, &mut receiver, DEFAULT_LIVE_CLOSE_TIMEOUT),
        script
    );
    let report = report.expect("session.close sent");
    assert!(matches!(report.end, CloseEnd::SessionClosed), "{report:?}");
    let frames: Vec<_> = report.frames.iter().map(Utf8Bytes::as_str).collect();
    assert_eq!(frames, [closed]);
}

#[tokio::test]
async fn connection_details_can_be_taken_out() {
    let (mut connection, _writes, _server) = ws_pair().await;
    let info = connection.take_info();
    assert_eq!(info.url(), "ws://in-memory/v1/live/sessions");
    assert_eq!(connection.info().url(), "");
    assert_eq!(connection.info().request_id(), None);
}

#[tokio::test]
async fn a_large_message_sent_unbuffered_arrives_whole_masked_and_in_order() {
    let (mut connection, _writes, mut server) = ws_pair().await;
    let large = format!(
        r#"{{"type":"session.update","instructions":"{}"}}"#,
        "x".repeat(10_000)
    );
    connection.queue_text("before");
    connection
        .send_text_unbuffered(large.clone())
        .await
        .expect("unbuffered send");
    connection.send_text("after").await.expect("send");
    // tungstenite's server side refuses unmasked client frames: arriving at all proves the mask.
    for expected in ["before", large.as_str(), "after"] {
        assert_eq!(
            next_server_message(&mut server).await,
            Message::text(expected)
        );
    }
}

#[tokio::test]
async fn an_unbuffered_frame_is_exact_on_the_wire_with_a_fresh_mask_each_time() {
    use tokio::io::AsyncReadExt as _;

    let (mut connection, _writes, mut raw) = duplex_pair().await;
    let payload = "y".repeat(300);
    let mut keys = Vec::new();
    for _ in 0..2 {
        connection
            .send_text_unbuffered(payload.clone())
            .await
            .expect("unbuffered send");
        // FIN + text; MASK + 126 (a 16-bit length follows); length; key; masked payload.
        let mut head = [0u8; 8];
        raw.read_exact(&mut head).await.expect("frame head");
        assert_eq!(&head[..4], &[0x81, 0x80 | 126, 0x01, 0x2c]);
        let key = [head[4], head[5], head[6], head[7]];
        let mut body = vec![0u8; 300];
        raw.read_exact(&mut body).await.expect("frame body");
        let unmasked: Vec<u8> = body
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(unmasked, payload.as_bytes());
        keys.push(key);
    }
    assert_ne!(keys[0], keys[1], "each frame gets a fresh masking key");
}

#[tokio::test]
async fn start_send_goes_straight_to_the_socket_buffer_and_never_overtakes_the_queue() {
    let (mut connection, writes, mut server) = ws_pair().await;
    std::future::poll_fn(|cx| connection.poll_ready(cx))
        .await
        .expect("ready");
    connection.start_send_text("one").expect("start_send");
    connection
        .start_send_text(String::from("two"))
        .expect("start_send");
    // Queued without a `poll_ready` in between: what follows goes behind it.
    connection.queue_text("three");
    connection.start_send_text("four").expect("start_send");
    assert_eq!(
        writes.load(Ordering::SeqCst),
        0,
        "nothing written before a flush"
    );
    std::future::poll_fn(|cx| connection.poll_flush(cx))
        .await
        .expect("flush");
    assert_eq!(writes.load(Ordering::SeqCst), 1, "one write for four");
    for expected in ["one", "two", "three", "four"] {
        assert_eq!(
            next_server_message(&mut server).await,
            Message::text(expected)
        );
    }
}
