//! The built-in echo agent answering a call: greeting tone, then the caller's words played back
//! once they pause, byte for byte; barge-in clears a playback.

mod common;

use common::{FakeTwilio, contains, post_voice, start, stream_parameters};

#[tokio::test]
async fn echo_agent_plays_back_what_the_caller_said() {
    let server = start(&[]).await; // no OPENAI_API_KEY: the echo agent
    let sid = "CA00000000000000000000000000000020";
    let (_, twiml) = post_voice(&server, sid, None).await;
    let mut twilio = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;

    // Greeting: a 300 ms tone.
    assert!(
        twilio.read_until_audio(|a| a.len() >= 300 * 8).await,
        "greeting tone"
    );
    let greeting = std::mem::take(&mut twilio.received_audio);
    assert_eq!(greeting.len(), 300 * 8);

    // The caller says something, then pauses for a second.
    let speech = testkit::audio::speech(600);
    twilio.send_audio(&testkit::audio::silence(200)).await;
    twilio.send_audio(&speech).await;
    twilio.send_audio(&testkit::audio::silence(1000)).await;

    // The exact bytes come back.
    assert!(
        twilio.read_until_audio(|a| contains(a, &speech)).await,
        "speech echoed byte-identical"
    );
    // Every media message was followed by a mark.
    let events: Vec<&str> = twilio
        .received
        .iter()
        .filter_map(|m| m["event"].as_str())
        .collect();
    assert!(events.contains(&"mark"));

    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
}

#[tokio::test]
async fn speaking_over_the_echo_clears_it() {
    let server = start(&[("PHONE_AGENT_ECHO__GREETING_TONE", "false")]).await;
    let sid = "CA00000000000000000000000000000021";
    let (_, twiml) = post_voice(&server, sid, None).await;
    let mut twilio = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    // Marks are not echoed: the playback stays "queued" at the caller side.
    twilio.echo_marks = false;
    twilio.start(sid, &stream_parameters(&twiml)).await;

    let speech = testkit::audio::speech(400);
    twilio.send_audio(&speech).await;
    twilio.send_audio(&testkit::audio::silence(800)).await;
    assert!(twilio.read_until_audio(|a| contains(a, &speech)).await);

    // The caller talks again while the playback is queued: barge-in sends `clear`.
    twilio.send_audio(&testkit::audio::speech(200)).await;
    let cleared = async {
        loop {
            match twilio.next().await {
                Some(m) if m["event"] == "clear" => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    };
    assert!(
        tokio::time::timeout(common::WAIT, cleared)
            .await
            .unwrap_or(false),
        "clear sent on barge-in"
    );

    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
}

#[tokio::test]
async fn malformed_twilio_messages_are_skipped_and_the_call_continues() {
    let server = start(&[("PHONE_AGENT_ECHO__GREETING_TONE", "false")]).await;
    let sid = "CA00000000000000000000000000000022";
    let (_, twiml) = post_voice(&server, sid, None).await;
    let mut twilio = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;

    let stream_sid = twilio.stream_sid.clone();
    twilio.send_raw("this is not JSON").await;
    twilio
        .send_raw(r#"{"event":"media","streamSid":"MZ1"}"#)
        .await;
    twilio
        .send_raw(&format!(
            r#"{{"event":"media","sequenceNumber":"2","streamSid":"{stream_sid}","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"@@not base64@@"}}}}"#
        ))
        .await;
    twilio
        .send_raw(r#"{"event":"some_future_event","streamSid":"MZ1","x":1}"#)
        .await;
    twilio
        .send_raw(&format!(
            r#"{{"event":"mark","sequenceNumber":"3","streamSid":"{stream_sid}","mark":{{"name":"not-ours"}}}}"#
        ))
        .await;

    let speech = testkit::audio::speech(400);
    twilio.send_audio(&speech).await;
    twilio.send_audio(&testkit::audio::silence(800)).await;
    assert!(
        twilio.read_until_audio(|a| contains(a, &speech)).await,
        "the call survived bad input"
    );
    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
}

#[tokio::test]
async fn an_oversized_frame_ends_the_call_cleanly() {
    let server = start(&[("PHONE_AGENT_ECHO__GREETING_TONE", "false")]).await;
    let sid = "CA00000000000000000000000000000023";
    let (_, twiml) = post_voice(&server, sid, None).await;
    let mut twilio = FakeTwilio::open(&server, &twiml, false).await.unwrap();
    twilio.start(sid, &stream_parameters(&twiml)).await;
    let huge = format!(
        r#"{{"event":"media","padding":"{}"}}"#,
        "x".repeat(100 * 1024)
    );
    twilio.send_raw(&huge).await;
    assert!(twilio.read_until_closed().await, "the server ends the call");
    let idle = async {
        while server.handle.active_calls() != 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(common::WAIT, idle)
        .await
        .expect("the call slot is released");
}

/// Twilio's first messages may arrive in the same TCP segment as the upgrade request: the
/// bytes hyper read past the request must reach the call, in order, before anything else.
#[tokio::test]
async fn messages_sent_right_behind_the_upgrade_request_are_not_lost() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let server = start(&[]).await; // the echo agent: its greeting tone proves `start` arrived
    let sid = "CA00000000000000000000000000000024";
    let (_, twiml) = post_voice(&server, sid, None).await;
    let path = common::stream_path(&common::stream_url(&twiml));
    let stream_sid = "MZ00000000000000000000000000000024";
    let mut bytes = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.addr
    )
    .into_bytes();
    for message in [
        common::connected_message(),
        common::start_message(stream_sid, sid, &stream_parameters(&twiml)),
    ] {
        let text = message.to_string();
        let mut frame = Frame::message(text.into_bytes(), OpCode::Data(Data::Text), true);
        frame.header_mut().mask = Some([7, 1, 9, 3]);
        frame.format(&mut bytes).expect("frame");
    }
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&bytes).await.unwrap(); // request and both messages in one write
    // The response head, byte by byte so nothing after it is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.expect("response head"));
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
    let mut twilio = FakeTwilio::from_websocket(ws);
    twilio.stream_sid = stream_sid.to_owned();

    // The greeting: a 300 ms tone, addressed to the stream the early `start` named.
    assert!(
        twilio.read_until_audio(|a| a.len() >= 300 * 8).await,
        "greeting tone after the early start"
    );
    assert_eq!(twilio.received_audio.len(), 300 * 8);
    assert!(
        twilio
            .received
            .iter()
            .filter(|m| m["event"] == "media")
            .all(|m| m["streamSid"] == stream_sid)
    );
    twilio.stop(sid).await;
    assert!(twilio.read_until_closed().await);
}
