//! Measures the hot paths of the Realtime wire types against the obvious alternatives, to
//! back the design notes in `realtime::server_event`:
//!
//! * parsing `response.output_audio.delta`: our envelope (`type` first → one pass; `type` not
//!   first → two passes), serde's internally tagged enum, and `serde_json::Value` first;
//! * writing `input_audio_buffer.append`: the fast writer vs. serde.
//!
//! Run: `cargo run --release -p openai-realtime --example realtime_parse_bench`
//! (numbers are per operation, best of 5 rounds; they vary by machine).
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use openai_realtime::realtime::server_event::OutputAudioDelta;
use openai_realtime::realtime::{ClientEvent, ServerEvent, write_input_audio_append};
use serde::Deserialize;

/// serde's own internally tagged representation, for comparison.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum Tagged<'a> {
    #[serde(rename = "response.output_audio.delta", borrow)]
    OutputAudioDelta(OutputAudioDelta<'a>),
}

fn bench(name: &str, iterations: u32, mut f: impl FnMut()) {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        best = best.min(start.elapsed().as_secs_f64() / f64::from(iterations));
    }
    println!("{name:<58} {:>9.0} ns", best * 1e9);
}

fn main() {
    for audio_bytes in [160usize, 800, 4800] {
        // Base64 of `audio_bytes` of μ-law (20 ms, 100 ms, 600 ms at 8 kHz).
        let delta: String = "/+7d".repeat(audio_bytes.div_ceil(3));
        let type_first = format!(
            r#"{{"type":"response.output_audio.delta","event_id":"event_CCXGSizgEppa2d4XbKA7K","response_id":"resp_CCXGRxbY0n6WE4EszhF5w","item_id":"item_CCXGRxbY0n6WE4EszhF5w","output_index":0,"content_index":0,"delta":"{delta}"}}"#
        );
        let type_last = format!(
            r#"{{"event_id":"event_CCXGSizgEppa2d4XbKA7K","response_id":"resp_CCXGRxbY0n6WE4EszhF5w","item_id":"item_CCXGRxbY0n6WE4EszhF5w","output_index":0,"content_index":0,"delta":"{delta}","type":"response.output_audio.delta"}}"#
        );
        println!(
            "response.output_audio.delta, {} bytes of JSON:",
            type_first.len()
        );
        let n = 200_000;
        bench("  ServerEvent::parse, type first (one pass)", n, || {
            let e = ServerEvent::parse(black_box(&type_first));
            assert!(matches!(e, Ok(ServerEvent::OutputAudioDelta(_))));
            black_box(e).ok();
        });
        bench("  ServerEvent::parse, type last (two passes)", n, || {
            let e = ServerEvent::parse(black_box(&type_last));
            assert!(matches!(e, Ok(ServerEvent::OutputAudioDelta(_))));
            black_box(e).ok();
        });
        bench(
            "  serde internally tagged enum (buffers content)",
            n,
            || {
                let e: Result<Tagged<'_>, _> = serde_json::from_str(black_box(&type_first));
                let Ok(Tagged::OutputAudioDelta(d)) = e else {
                    panic!("tagged parse failed")
                };
                black_box(d);
            },
        );
        bench(
            "  serde_json::Value first, then the struct from the Value",
            n,
            || {
                let v: Result<serde_json::Value, _> = serde_json::from_str(black_box(&type_first));
                if let Ok(v) = v {
                    black_box(OutputAudioDelta::deserialize(&v)).ok();
                }
            },
        );
    }

    let started = r#"{"type":"input_audio_buffer.speech_started","event_id":"event_1516","audio_start_ms":1000,"item_id":"item_CCXGRxbY0n6WE4EszhF5w"}"#;
    println!("input_audio_buffer.speech_started:");
    bench("  ServerEvent::parse", 1_000_000, || {
        black_box(ServerEvent::parse(black_box(started))).ok();
    });

    let frame = "/+7d".repeat(54); // 160 bytes of μ-law = one 20 ms Twilio frame.
    println!("input_audio_buffer.append, 20 ms frame:");
    let mut buf = String::new();
    bench(
        "  write_input_audio_append (reused buffer)",
        2_000_000,
        || {
            buf.clear();
            write_input_audio_append(&mut buf, black_box(&frame));
            black_box(&buf);
        },
    );
    bench("  serde_json::to_string(&ClientEvent)", 2_000_000, || {
        black_box(serde_json::to_string(&ClientEvent::input_audio_append(
            black_box(frame.as_str()),
        )))
        .ok();
    });
}
