//! Per-frame cost of the call engine on the main path (μ-law 8 kHz both sides, pass-through).
//!
//! * `caller_frame`: one 20 ms caller frame → `AgentCommand::Audio` (and drain).
//! * `agent_chunk/20ms`, `agent_chunk/100ms`: one agent audio chunk → caller audio + mark
//!   outputs (one and five pieces), drained. Event construction and mark echoes are outside the
//!   timed region.
//! * `mark_echo`: one mark echo advancing the played position.
//!
//! Run: `cargo bench -p bridge-core --bench per_frame`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bridge_core::agent::{AgentCapabilities, AgentEvent};
use bridge_core::caller::{CallerCommand, CallerEvent, CallerInfo, MarkId};
use bridge_core::engine::{Call, CallConfig, Output};
use bridge_core::format::{AudioFormat, Base64Audio};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CAPS: AgentCapabilities = AgentCapabilities {
    input_format: AudioFormat::Mulaw8k,
    output_format: AudioFormat::Mulaw8k,
    truncation: true,
    interrupts_itself: true,
    reports_speech: true,
    continuous_input: false,
    restore_at_start: false,
    final_close: false,
};

const BATCH: u64 = 1_000;

fn ready_call(now: Instant) -> Call {
    let mut call = Call::new(CallConfig::default(), AudioFormat::Mulaw8k, now);
    call.handle_caller(
        CallerEvent::Started(CallerInfo {
            call_id: "CA00000000000000000000000000000001".into(),
            stream_id: "MZ00000000000000000000000000000001".into(),
            ..CallerInfo::default()
        }),
        now,
    );
    call.agent_connected(CAPS, now);
    call.handle_agent(AgentEvent::Ready, now);
    call.handle_agent(
        AgentEvent::ResponseStarted {
            response_id: "resp_0000000000000000000001".into(),
        },
        now,
    );
    while call.poll_output().is_some() {}
    call
}

fn chunk_event(audio: &Base64Audio) -> AgentEvent {
    AgentEvent::Audio {
        audio: audio.clone(),
        response_id: Some("resp_0000000000000000000001".into()),
        item_id: Some("item_0000000000000000000001".into()),
    }
}

/// Drains outputs, returning the last mark sent to the caller.
fn drain(call: &mut Call) -> Option<MarkId> {
    let mut last = None;
    while let Some(output) = call.poll_output() {
        if let Output::Caller(CallerCommand::Mark(m)) = &output {
            last = Some(*m);
        }
        black_box(output);
    }
    last
}

fn caller_frame(c: &mut Criterion) {
    let now = Instant::now();
    let mut call = ready_call(now);
    let frame = Base64Audio::encode(&[0xFF; 160]);
    let mut group = c.benchmark_group("caller_frame");
    group.throughput(Throughput::Elements(1));
    group.bench_function("20ms", |b| {
        b.iter(|| {
            call.handle_caller(CallerEvent::Audio(black_box(frame.clone())), now);
            drain(&mut call);
        })
    });
    group.finish();
}

fn agent_chunk(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("agent_chunk");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in [("20ms", 160usize), ("100ms", 800)] {
        let audio = Base64Audio::encode(&vec![0xFF; bytes]);
        let mut call = ready_call(now);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(BATCH);
                    left -= n;
                    let events: Vec<AgentEvent> = (0..n).map(|_| chunk_event(&audio)).collect();
                    let mut last = None;
                    let start = Instant::now();
                    for event in events {
                        call.handle_agent(event, now);
                        last = drain(&mut call).or(last);
                    }
                    total += start.elapsed();
                    // Untimed: the caller side hears everything, keeping state bounded.
                    if let Some(mark) = last {
                        call.handle_caller(CallerEvent::MarkPlayed(mark), now);
                        drain(&mut call);
                    }
                }
                total
            })
        });
    }
    group.finish();
}

fn mark_echo(c: &mut Criterion) {
    let now = Instant::now();
    let audio = Base64Audio::encode(&[0xFF; 160]);
    let mut call = ready_call(now);
    let mut group = c.benchmark_group("mark_echo");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_piece", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH);
                left -= n;
                // Untimed: queue n pieces, each with its mark.
                let mut marks = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    call.handle_agent(chunk_event(&audio), now);
                    marks.extend(drain(&mut call));
                }
                let start = Instant::now();
                for mark in marks {
                    call.handle_caller(CallerEvent::MarkPlayed(black_box(mark)), now);
                    drain(&mut call);
                }
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, caller_frame, agent_chunk, mark_echo);
criterion_main!(benches);
