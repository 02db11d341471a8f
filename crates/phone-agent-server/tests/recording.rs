//! Call recordings end to end: a simulated call whose greeting the caller interrupts leaves a
//! stereo 16-bit 8 kHz WAV whose left channel is exactly the caller audio sent and whose right
//! channel is exactly the agent audio the caller heard, where it was heard: each agent turn
//! sample for sample, the interrupted one cut where the caller stopped hearing it.

mod e2e_support;

use std::time::Duration;

use e2e_support::{Bridge, WAIT, attribute_segments, expected_caller_audio, say, session_of};
use serde_json::Value;
use testkit::audio;
use testkit::openai::{MockRealtime, ResponseScript, Script};
use testkit::twilio::CallEvent;
use tokio::time::Instant;

const ADMIN: &str = "recording-test-admin-token-0123456";
const GREETING: &str = "Welcome to Acme Parcel Services. I can look up any order for you, tell \
    you where it is, and when it will arrive at your door.";
const ANSWER: &str = "It shipped yesterday and arrives on Friday.";

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("recording-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The two channels of a stereo 16-bit PCM WAV at 8 kHz (checking the header).
fn read_wav(path: &str) -> (Vec<i16>, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..16], b"WAVEfmt ");
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!(u16_at(20), 1, "PCM");
    assert_eq!(u16_at(22), 2, "stereo");
    assert_eq!(u32_at(24), 8000, "8 kHz");
    assert_eq!(u16_at(34), 16, "16-bit");
    assert_eq!(&bytes[36..40], b"data");
    let data = u32_at(40) as usize;
    assert_eq!(bytes.len(), 44 + data);
    assert_eq!(u32_at(4) as usize, 36 + data);
    let samples: Vec<i16> = bytes[44..]
        .chunks_exact(2)
        .map(|s| i16::from_le_bytes([s[0], s[1]]))
        .collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recording_holds_the_caller_left_and_the_agent_as_heard_right() {
    let mock = MockRealtime::builder()
        .script(
            Script::new()
                .then(ResponseScript::say(GREETING, 3000))
                .then(ResponseScript::say(ANSWER, 600)),
        )
        .start()
        .await
        .unwrap();
    let dir = temp_dir("calls");
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

    // The greeting plays for a second, the caller speaks over it, hears the answer, hangs up.
    let call = bridge.sim.call().connect().await.unwrap();
    let sid = call.call_sid().to_owned();
    let session = session_of(&mock, &sid).await;
    call.wait_heard(1000 * 8, WAIT).await.unwrap();
    let queued = say(&call, audio::speech(400));
    let clear = call
        .wait_for_nth(|e| matches!(e, CallEvent::ClearReceived { .. }), 1, WAIT)
        .await
        .unwrap();
    session.wait_for_response_done(2, WAIT).await.unwrap();
    let items = session.assistant_items();
    assert_eq!(items.len(), 2);
    let heard_before = call.heard_at(clear.at).len();
    call.wait_heard(heard_before + items[1].audio.len(), WAIT)
        .await
        .unwrap();
    call.stop(WAIT).await.unwrap();
    session.wait_closed(WAIT).await.unwrap();

    // The record names the file.
    let record = {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = format!("http://{}/api/calls/{sid}", bridge.addr);
            let auth = format!("Bearer {ADMIN}");
            let r = testkit::http::request(
                ::http::Method::GET,
                &url,
                &[("authorization", auth.as_str())],
                bytes::Bytes::new(),
            )
            .await
            .unwrap();
            if r.status == 200 {
                let v: Value = r.json().unwrap();
                if v["end_reason"].is_string() {
                    break v;
                }
            }
            assert!(Instant::now() < deadline, "no record");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let path = record["recording_path"].as_str().expect("a recording path");
    assert_eq!(
        std::path::Path::new(path),
        std::path::Path::new(&recordings).join(format!("{sid}.wav"))
    );
    let (left, right) = read_wav(path);

    // Left: every caller frame sent, in order, from the first sample.
    let sent = audio::decode_all(&expected_caller_audio(&call, &queued));
    assert!(left.len() >= sent.len(), "{} < {}", left.len(), sent.len());
    assert_eq!(left[..sent.len()], sent[..], "the caller's audio");
    assert!(left[sent.len()..].iter().all(|&s| s == 0));

    // Right: each agent turn as heard, placed where the caller heard it.
    let timeline = call.timeline();
    let t0 = timeline
        .iter()
        .find(|e| e.event == CallEvent::StartSent)
        .unwrap()
        .at;
    let attributed = attribute_segments(&call, &items);
    let end = Instant::now();
    let mut rest = right.clone();
    let mut cut_error = 0;
    // Where each turn starts in the file: within 50 ms of where the caller heard it start
    // (the server's clock read `start` after the simulator sent it).
    let starts: Vec<usize> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let first = attributed.iter().find(|a| a.item == i).unwrap();
            let at = ((first.segment.starts_at - t0).as_nanos() / 125_000) as usize;
            let probe = &audio::decode_all(&item.audio[..160]);
            (at.saturating_sub(400)..at + 400)
                .find(|&q| right.get(q..q + 160) == Some(probe))
                .unwrap_or_else(|| panic!("turn {i} not found near sample {at}"))
        })
        .collect();
    for (i, item) in items.iter().enumerate() {
        let heard = e2e_support::item_heard_at(&attributed, i, end);
        let decoded = audio::decode_all(&item.audio);
        let start = starts[i];
        // How much of it the recording holds: up to the last non-silent sample before the
        // next turn.
        let limit = right
            .len()
            .min(start + decoded.len())
            .min(starts.get(i + 1).copied().unwrap_or(usize::MAX));
        let len = right[start..limit]
            .iter()
            .rposition(|&s| s != 0)
            .map_or(0, |p| p + 1);
        let mismatch = (0..len).find(|&k| right[start + k] != decoded[k]);
        assert_eq!(
            mismatch,
            None,
            "turn {i} (at {start}, {len} samples recorded, {} sent, {heard} heard): first \
             differing sample",
            decoded.len()
        );
        if i == 0 {
            // The interrupted greeting: cut where the caller stopped hearing it. The caller's
            // side of the socket is not observable: the server places the turn from when it
            // sent its first chunk and cuts it when it sent the `clear`, the caller from when
            // each arrived, so the two differ by the difference of those two flights, each
            // bounded by what the mock and the simulator saw (the mock sent the chunk before
            // the server could forward it, and the speech before the server could clear).
            assert!(heard < item.audio.len(), "the greeting was cut");
            let events = session.server_events();
            let sent_at = |kind: &str| events.iter().find(|e| e.event_type == kind).unwrap().at;
            let first = attributed.iter().find(|a| a.item == 0).unwrap();
            let chunk_flight = first.segment.received_at - sent_at("response.output_audio.delta");
            let clear_flight = clear.at - sent_at("input_audio_buffer.speech_started");
            let bound = chunk_flight.max(clear_flight).as_micros() as usize * 8 / 1000 + 1;
            cut_error = len.abs_diff(heard);
            assert!(
                cut_error <= bound,
                "greeting recorded for {len} samples, heard for {heard} (bound {bound}: \
                 chunk flight {chunk_flight:?}, clear flight {clear_flight:?})"
            );
        } else {
            assert_eq!(heard, item.audio.len());
            // Heard in full; trailing silence in the audio itself is not in `len`.
            assert!(decoded[len..].iter().all(|&s| s == 0));
        }
        rest[start..start + len].fill(0);
    }
    // Nothing else on the right: silence between and after the turns.
    assert!(
        rest.iter().all(|&s| s == 0),
        "agent audio the caller never heard"
    );
    e2e_support::report(
        "recording",
        &format!("greeting cut {cut_error} samples from what the caller heard"),
    );
    bridge.finish().await;
}
