//! The Twilio call simulator's stream side, driven against a tiny in-test WebSocket server over
//! an in-memory duplex, on tokio's paused clock: every duration below is exact.

use std::time::Duration;

use base64::Engine as _;
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use serde_json::{Value, json};
use testkit::audio;
use testkit::twilio::{
    ActiveCall, CallEnd, CallEvent, Malformed, StreamOptions, StreamViolationKind,
};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

const T: Duration = Duration::from_secs(30);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The server end: everything the simulator sends arrives on `rx` (as JSON, or
/// `{"binary": len}` / `{"close": code}`), and `send` writes frames.
struct Server {
    tx: SplitSink<WebSocketStream<DuplexStream>, Message>,
    rx: mpsc::UnboundedReceiver<(Instant, Value)>,
    sid: String,
}

impl Server {
    async fn send(&mut self, v: Value) {
        self.tx.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn send_text(&mut self, t: &str) {
        self.tx.send(Message::text(t.to_string())).await.unwrap();
    }

    async fn media(&mut self, bytes: &[u8]) {
        let payload = base64::engine::general_purpose::STANDARD.encode(bytes);
        let sid = self.sid.clone();
        self.send(json!({"event": "media", "streamSid": sid, "media": {"payload": payload}}))
            .await;
    }

    async fn mark(&mut self, name: &str) {
        let sid = self.sid.clone();
        self.send(json!({"event": "mark", "streamSid": sid, "mark": {"name": name}}))
            .await;
    }

    async fn clear(&mut self) {
        let sid = self.sid.clone();
        self.send(json!({"event": "clear", "streamSid": sid})).await;
    }

    /// Next message that is not a caller `media` frame.
    async fn next_non_media(&mut self) -> (Instant, Value) {
        loop {
            let (at, v) = tokio::time::timeout(T, self.rx.recv())
                .await
                .expect("message in time")
                .expect("stream open");
            if v["event"] != "media" {
                return (at, v);
            }
        }
    }

    async fn next_any(&mut self) -> (Instant, Value) {
        tokio::time::timeout(T, self.rx.recv())
            .await
            .expect("message in time")
            .expect("stream open")
    }
}

async fn start(opts: StreamOptions) -> (ActiveCall, Server) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let server_ws = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
    let client_ws = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
    let sid = opts.stream_sid.clone();
    let call = ActiveCall::attach(client_ws, opts);
    let (tx, mut read) = server_ws.split();
    let (fwd, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = read.next().await {
            let v = match msg {
                Message::Text(t) => {
                    serde_json::from_str(t.as_str()).unwrap_or(json!({"invalid": t.as_str()}))
                }
                Message::Binary(b) => json!({"binary": b.len()}),
                Message::Close(f) => json!({"close": f.map(|f| u16::from(f.code))}),
                _ => continue,
            };
            if fwd.send((Instant::now(), v)).is_err() {
                break;
            }
        }
    });
    (call, Server { tx, rx, sid })
}

fn opts() -> StreamOptions {
    let mut o = StreamOptions::new(
        "CA00000000000000000000000000000001",
        "AC00000000000000000000000000000001",
    );
    o.custom_parameters = vec![
        ("token".into(), "abc".into()),
        ("caller".into(), "+1".into()),
    ];
    o
}

#[tokio::test(start_paused = true)]
async fn connected_start_and_paced_media_exactly_as_twilio() {
    let t0 = Instant::now();
    let (call, mut srv) = start(opts()).await;
    let (_, connected) = srv.next_any().await;
    assert_eq!(
        connected,
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    );
    let (_, start) = srv.next_any().await;
    assert_eq!(
        start,
        json!({
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": call.stream_sid(),
            "start": {
                "streamSid": call.stream_sid(),
                "accountSid": "AC00000000000000000000000000000001",
                "callSid": "CA00000000000000000000000000000001",
                "tracks": ["inbound"],
                "customParameters": {"token": "abc", "caller": "+1"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            }
        })
    );
    assert!(testkit::sid::is_sid("MZ", call.stream_sid()));
    let silence = base64::engine::general_purpose::STANDARD.encode([0xFFu8; 160]);
    for k in 0..5u64 {
        let (at, m) = srv.next_any().await;
        assert_eq!(at - t0, ms(20 * k), "frame {k} paced on the 20 ms grid");
        assert_eq!(
            m,
            json!({"event": "media", "sequenceNumber": (k + 2).to_string(),
                   "media": {"track": "inbound", "chunk": (k + 1).to_string(),
                             "timestamp": (20 * k).to_string(), "payload": silence},
                   "streamSid": call.stream_sid()})
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_mark_is_echoed_only_when_its_audio_has_played() {
    let (call, mut srv) = start(opts()).await;
    srv.next_any().await;
    srv.next_any().await;
    // Nothing queued: immediate echo.
    srv.mark("idle").await;
    let (_, echo) = srv.next_non_media().await;
    assert_eq!(echo["event"], "mark");
    assert_eq!(echo["mark"]["name"], "idle");
    assert_eq!(echo["streamSid"], call.stream_sid());
    assert!(echo["sequenceNumber"].is_string());
    let idle = call.wait_mark_echoed("idle", T).await.unwrap();
    assert_eq!(idle.echoed_at, Some(idle.received_at));

    // 125 ms of audio, then a mark; then 60 ms more and another mark. (Timers have 1 ms
    // resolution, so sub-millisecond dues are echoed on the next millisecond.)
    srv.media(&[0x11; 1000]).await;
    srv.mark("m1").await;
    srv.media(&[0x22; 480]).await;
    srv.mark("m2").await;
    let (t1, e1) = srv.next_non_media().await;
    let (t2, e2) = srv.next_non_media().await;
    assert_eq!(e1["mark"]["name"], "m1");
    assert_eq!(e2["mark"]["name"], "m2");
    let m1 = call.wait_mark_echoed("m1", T).await.unwrap();
    let m2 = call.wait_mark_echoed("m2", T).await.unwrap();
    assert_eq!(m1.echoed_at.unwrap() - m1.received_at, ms(125));
    assert_eq!(m2.echoed_at.unwrap() - m2.received_at, ms(185));
    assert_eq!(t2 - t1, ms(60));
    assert!(!m1.cleared && !m2.cleared);
    // Sequence numbers keep counting across media and marks.
    let s1: u64 = e1["sequenceNumber"].as_str().unwrap().parse().unwrap();
    let s2: u64 = e2["sequenceNumber"].as_str().unwrap().parse().unwrap();
    assert!(s2 > s1);
    assert_eq!(call.heard(), [vec![0x11; 1000], vec![0x22; 480]].concat());
    assert!(call.violations().is_empty(), "{:?}", call.violations());
}

#[tokio::test(start_paused = true)]
async fn clear_discards_unplayed_audio_and_echoes_pending_marks_at_once() {
    let (call, mut srv) = start(opts()).await;
    srv.next_any().await;
    srv.next_any().await;
    let t0 = Instant::now();
    srv.media(&audio::agent_tone(100, 1000)).await;
    srv.mark("a").await;
    srv.media(&audio::agent_tone(200, 1000)).await;
    srv.mark("b").await;
    tokio::time::sleep(ms(300)).await;
    srv.clear().await;
    let (ta, ea) = srv.next_non_media().await;
    let (tb, eb) = srv.next_non_media().await;
    assert_eq!(
        (ea["mark"]["name"].as_str(), eb["mark"]["name"].as_str()),
        (Some("a"), Some("b"))
    );
    assert_eq!(ta, t0 + ms(300));
    assert_eq!(tb, t0 + ms(300));
    let marks = call.marks();
    assert!(marks.iter().all(|m| m.cleared));
    let clear = call
        .wait_for(|e| matches!(e, CallEvent::ClearReceived { .. }), T)
        .await
        .unwrap();
    assert_eq!(
        clear.event,
        CallEvent::ClearReceived {
            discarded_bytes: 16_000 - 2400,
            flushed_marks: 2
        }
    );
    // Exactly 300 ms of the first tone was heard; nothing after.
    tokio::time::sleep(ms(2000)).await;
    let heard = call.heard();
    assert_eq!(heard, audio::agent_tone(100, 1000)[..2400].to_vec());
    assert_eq!(
        audio::find_stamps(&heard).last().map(|s| s.1),
        Some(100 + 14)
    );
    assert_eq!(call.heard_at(t0 + ms(100)).len(), 800);
    // Audio after the clear plays at once.
    srv.media(&[0x33; 80]).await;
    srv.mark("c").await;
    let (tc, _) = srv.next_non_media().await;
    let c = call.wait_mark_echoed("c", T).await.unwrap();
    assert_eq!(tc - c.received_at, ms(10));
    assert!(!c.cleared);
}

#[tokio::test(start_paused = true)]
async fn wait_heard_follows_the_real_clock() {
    let (call, mut srv) = start(opts()).await;
    srv.next_any().await;
    srv.next_any().await;
    let t0 = Instant::now();
    let tone = audio::agent_tone(7, 200);
    for part in tone.chunks(600) {
        srv.media(part).await;
    }
    let heard = call.wait_heard(800, T).await.unwrap();
    assert_eq!(Instant::now() - t0, ms(100));
    assert_eq!(heard, tone[..800].to_vec());
    call.wait_playout_idle(T).await.unwrap();
    assert_eq!(Instant::now() - t0, ms(200));
    let segs = call.played_segments();
    assert_eq!(segs.len(), 3);
    assert_eq!(segs[1].starts_at - t0, ms(75));
    assert_eq!(call.received_audio(), tone);
}

#[tokio::test(start_paused = true)]
async fn server_messages_are_validated_exactly() {
    let (call, mut srv) = start(opts()).await;
    srv.next_any().await;
    srv.next_any().await;
    let sid = call.stream_sid().to_string();
    let cases: Vec<(String, StreamViolationKind)> = vec![
        ("{not json".into(), StreamViolationKind::MalformedJson),
        (json!({"streamSid": sid}).to_string(), StreamViolationKind::MissingEvent),
        (json!({"event": "play", "streamSid": sid}).to_string(), StreamViolationKind::UnknownEvent),
        (json!({"event": "media", "streamSid": sid, "media": {"payload": "//8=", "track": "outbound"}}).to_string(), StreamViolationKind::UnexpectedField),
        (json!({"event": "media", "streamSid": sid, "sequenceNumber": "1", "media": {"payload": "//8="}}).to_string(), StreamViolationKind::UnexpectedField),
        (json!({"event": "media", "streamSid": "MZ0", "media": {"payload": "//8="}}).to_string(), StreamViolationKind::WrongStreamSid),
        (json!({"event": "media", "streamSid": sid, "media": {"payload": "not base64!"}}).to_string(), StreamViolationKind::InvalidBase64),
        (json!({"event": "media", "streamSid": sid, "media": {}}).to_string(), StreamViolationKind::MissingField),
        (json!({"event": "mark", "streamSid": sid}).to_string(), StreamViolationKind::MissingField),
        (json!({"event": "mark", "streamSid": sid, "mark": {"name": null}}).to_string(), StreamViolationKind::MissingField),
        (json!({"event": "clear", "streamSid": sid, "mark": {"name": "x"}}).to_string(), StreamViolationKind::UnexpectedField),
        (json!({"event": "clear"}).to_string(), StreamViolationKind::MissingField),
        (json!({"event": "media", "streamSid": sid, "media": {"payload": 5}}).to_string(), StreamViolationKind::WrongType),
    ];
    for (text, _) in &cases {
        srv.send_text(text).await;
    }
    srv.tx.send(Message::binary(vec![0xFF; 160])).await.unwrap();
    let v = call
        .wait_for_violation(StreamViolationKind::BinaryFrame, T)
        .await
        .unwrap();
    assert_eq!(v.kind, StreamViolationKind::BinaryFrame);
    let got: Vec<StreamViolationKind> = call.violations().iter().map(|v| v.kind).collect();
    let mut want: Vec<StreamViolationKind> = cases.iter().map(|c| c.1).collect();
    want.push(StreamViolationKind::BinaryFrame);
    assert_eq!(got, want);
    // Refused messages are ignored: nothing was queued for playout.
    assert!(call.received_audio().is_empty());
    assert!(call.marks().is_empty());
}

#[tokio::test(start_paused = true)]
async fn caller_audio_dtmf_gaps_stamps_and_stop() {
    let mut o = opts();
    o.stamp_frames = true;
    let (call, mut srv) = start(o).await;
    srv.next_any().await;
    srv.next_any().await;
    let speech = audio::speech(40);
    call.send_audio(speech.clone());
    call.skip_frames(2);
    call.send_dtmf('5');
    let mut media = Vec::new();
    let mut dtmf = None;
    while media.len() < 6 {
        let (_, v) = srv.next_any().await;
        match v["event"].as_str() {
            Some("media") => media.push(v),
            Some("dtmf") => dtmf = Some(v),
            other => panic!("unexpected {other:?}"),
        }
    }
    let dtmf = dtmf.expect("dtmf sent");
    assert_eq!(
        dtmf["dtmf"],
        json!({"track": "inbound_track", "digit": "5"})
    );
    assert_eq!(dtmf["streamSid"], call.stream_sid());
    let payloads: Vec<Vec<u8>> = media
        .iter()
        .map(|m| {
            base64::engine::general_purpose::STANDARD
                .decode(m["media"]["payload"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    // The first frame may be idle silence sent before the audio was queued.
    let first_speech = payloads
        .iter()
        .position(|p| p[audio::STAMP_LEN..] == speech[audio::STAMP_LEN..160])
        .expect("speech frame sent");
    assert_eq!(
        payloads[first_speech + 1][audio::STAMP_LEN..],
        speech[160 + audio::STAMP_LEN..]
    );
    for (m, p) in media.iter().zip(&payloads) {
        let chunk: u32 = m["media"]["chunk"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            audio::read_stamp(p),
            Some(chunk),
            "frame stamped with its chunk"
        );
    }
    // The gap: two frames' worth of timestamp skipped after the speech.
    let ts = |i: usize| -> u64 {
        media[i]["media"]["timestamp"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(ts(first_speech + 2) - ts(first_speech + 1), 60);
    call.wait_caller_audio_sent(T).await.unwrap();

    let stopping = call.clone();
    let stopper = tokio::spawn(async move { stopping.stop(T).await });
    let (_, stop) = srv.next_non_media().await;
    assert_eq!(
        stop["stop"],
        json!({"accountSid": "AC00000000000000000000000000000001",
               "callSid": "CA00000000000000000000000000000001"})
    );
    let (_, close) = srv.next_non_media().await;
    assert_eq!(close["close"], 1000);
    drop(srv);
    assert_eq!(stopper.await.unwrap().unwrap(), CallEnd::CallerStopped);
}

#[tokio::test(start_paused = true)]
async fn malformed_frames_on_demand_and_server_close() {
    let (call, mut srv) = start(opts()).await;
    srv.next_any().await;
    srv.next_any().await;
    call.send_malformed(Malformed::BadJson);
    call.send_malformed(Malformed::BadBase64);
    call.send_malformed(Malformed::UnknownEvent);
    call.send_malformed(Malformed::Oversized(64 * 1024));
    call.send_malformed(Malformed::Binary);
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let (_, v) = srv.next_any().await;
        if v["event"] == "media"
            && v["media"]["payload"]
                .as_str()
                .is_some_and(|p| p.len() == 216)
        {
            continue; // a regular frame
        }
        seen.push(v);
    }
    assert!(seen[0]["invalid"].is_string());
    assert_eq!(seen[1]["media"]["payload"], "@@not*base64@@");
    assert_eq!(seen[2]["event"], "unexpected");
    assert_eq!(
        seen[3]["media"]["payload"].as_str().unwrap().len(),
        64 * 1024 / 3 * 4 + 4
    );
    assert_eq!(seen[4]["binary"], 160);
    srv.tx
        .send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: 1000.into(),
                reason: "done".into(),
            },
        )))
        .await
        .unwrap();
    assert_eq!(
        call.wait_closed(T).await.unwrap(),
        CallEnd::ServerClosed {
            code: Some(1000),
            reason: "done".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_hangs_up() {
    let (call, mut srv) = start(opts()).await;
    srv.next_any().await;
    srv.next_any().await;
    let observer = call.clone();
    drop(call);
    // A clone still exists: nothing happens yet.
    srv.media(&[0xFF; 8]).await;
    observer.wait_received_audio(8, T).await.unwrap();
    drop(observer);
    let (_, stop) = srv.next_non_media().await;
    assert_eq!(stop["event"], "stop");
    let (_, close) = srv.next_non_media().await;
    assert_eq!(close["close"], 1000);
}
