//! Per-frame cost of the server's relay path, end to end on the server's own code (the
//! adapters' decoders and encoders, bridge-core's engine), without sockets:
//!
//! * `server_caller_frame`: a Twilio `media` message (text, as received) → [`TwilioDecoder`] →
//!   `Call::handle_caller` → `AgentCommand::Audio` → `input_audio_buffer.append` text;
//! * `server_agent_delta/20ms`, `server_agent_delta/100ms`: a `response.output_audio.delta` message →
//!   [`RealtimeDecoder`] → `Call::handle_agent` → Twilio `media` + `mark` texts (one and five
//!   pieces);
//! * `server_mark_echo`: a Twilio `mark` echo → decoder → `Call::handle_caller` (played position).
//!
//! Message construction (a refcount bump of the received buffer) is inside the timed region,
//! as in the server; the WebSocket framing and the socket are not (see `cargo xtask bench`).
//!
//! Run: `cargo bench -p phone-agent-server --bench per_frame`.
#![allow(missing_docs)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Instant;

use base64::Engine as _;
use bridge_core::agent::AgentCapabilities;
use bridge_core::caller::{CallerCommand, CallerEvent, MarkId};
use bridge_core::engine::{Call, CallConfig, Output};
use bridge_core::format::AudioFormat;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use phone_agent_server::adapters::realtime::{self, RealtimeDecoder};
use phone_agent_server::adapters::twilio::{self, TwilioDecoder};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Deltas per measured iteration (a fresh call for each, so playout state stays bounded).
const DELTAS: u64 = 16;
/// Mark echoes per measured iteration.
const ECHOES: u64 = 64;

const SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";

const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC00000000000000000000000000000001","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","callSid":"CA00000000000000000000000000000001","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"token":"t"}},"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}"#;

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

fn b64(bytes: usize) -> String {
    let audio: Vec<u8> = (0..bytes).map(|i| (i * 37 % 251) as u8).collect();
    base64::engine::general_purpose::STANDARD.encode(audio)
}

/// A Twilio media message as Twilio sends it.
fn media_message(chunk: u64) -> Utf8Bytes {
    format!(
        r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{}","payload":"{}"}},"streamSid":"{SID}"}}"#,
        chunk + 1,
        chunk * 20,
        b64(160)
    )
    .into()
}

fn delta_message(bytes: usize) -> Utf8Bytes {
    format!(
        r#"{{"type":"response.output_audio.delta","event_id":"event_CIbN5Qe0mFaVHkK4q3Gd2","response_id":"resp_CIbN5ZqvZ7Q3hRfS9Lq1x","item_id":"item_CIbN5Y0cOe1Xq9kQp2V3m","output_index":0,"content_index":0,"delta":"{}"}}"#,
        b64(bytes)
    )
    .into()
}

/// A call with the stream started, the agent ready and a response running, with the two
/// decoders that started it.
fn ready_call() -> (Call, TwilioDecoder, RealtimeDecoder) {
    let mut decoder = TwilioDecoder::default();
    let mut agent = RealtimeDecoder::default();
    let now = Instant::now();
    let mut call = Call::new(CallConfig::default(), AudioFormat::Mulaw8k, now);
    let Some(started) = decoder.decode(&START.into()) else {
        panic!("the start message decodes");
    };
    call.handle_caller(started, now);
    call.agent_connected(CAPS, now);
    let mut events = VecDeque::new();
    agent.decode(
        &r#"{"type":"session.updated","event_id":"e","session":{"type":"realtime"}}"#.into(),
        &mut events,
    );
    agent.decode(
        &r#"{"type":"response.created","event_id":"e","response":{"object":"realtime.response","id":"resp_CIbN5ZqvZ7Q3hRfS9Lq1x","status":"in_progress","output":[]}}"#.into(),
        &mut events,
    );
    assert_eq!(events.len(), 2, "ready and response started");
    for event in events {
        call.handle_agent(event, now);
    }
    while call.poll_output().is_some() {}
    (call, decoder, agent)
}

fn caller_frame(c: &mut Criterion) {
    let (mut call, mut twilio, _) = ready_call();
    let message = media_message(1);
    let now = Instant::now();
    let mut group = c.benchmark_group("server_caller_frame");
    group.throughput(Throughput::Elements(1));
    group.bench_function("20ms", |b| {
        b.iter(|| {
            let Some(event) = twilio.decode(black_box(&message)) else {
                panic!("media decodes");
            };
            call.handle_caller(event, now);
            while let Some(output) = call.poll_output() {
                if let Output::Agent(command) = output {
                    black_box(realtime::encode_command(command));
                }
            }
        });
    });
    group.finish();
}

fn agent_delta(c: &mut Criterion) {
    let mut group = c.benchmark_group("server_agent_delta");
    group.throughput(Throughput::Elements(DELTAS));
    for (name, bytes) in [("20ms", 160), ("100ms", 800)] {
        let message = delta_message(bytes);
        let now = Instant::now();
        let mut events = VecDeque::with_capacity(4);
        let mut out = String::with_capacity(2048);
        group.bench_function(name, |b| {
            // A fresh call per batch keeps the engine's pending marks bounded.
            b.iter_batched_ref(
                ready_call,
                |(call, _, agent)| {
                    for _ in 0..DELTAS {
                        agent.decode(black_box(&message), &mut events);
                        while let Some(event) = events.pop_front() {
                            call.handle_agent(event, now);
                        }
                        while let Some(output) = call.poll_output() {
                            if let Output::Caller(command) = output {
                                black_box(twilio::encode_command(SID, &command, &mut out));
                                black_box(out.len());
                            }
                        }
                    }
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn mark_echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("server_mark_echo");
    group.throughput(Throughput::Elements(ECHOES));
    let delta = delta_message(160);
    let now = Instant::now();
    group.bench_function("echo", |b| {
        b.iter_batched_ref(
            || {
                // A call with 64 marks pending, and the echo messages for them.
                let (mut call, twilio, mut agent) = ready_call();
                let mut events = VecDeque::new();
                let mut marks = Vec::new();
                for _ in 0..ECHOES {
                    agent.decode(&delta, &mut events);
                    while let Some(event) = events.pop_front() {
                        call.handle_agent(event, now);
                    }
                    while let Some(output) = call.poll_output() {
                        if let Output::Caller(CallerCommand::Mark(MarkId(id))) = output {
                            marks.push(Utf8Bytes::from(format!(
                                r#"{{"event":"mark","sequenceNumber":"{id}","streamSid":"{SID}","mark":{{"name":"m{id}"}}}}"#
                            )));
                        }
                    }
                }
                (call, twilio, marks)
            },
            |(call, twilio, marks)| {
                for message in marks.iter() {
                    let Some(event @ CallerEvent::MarkPlayed(_)) = twilio.decode(black_box(message))
                    else {
                        panic!("the echo decodes");
                    };
                    call.handle_caller(event, now);
                    while let Some(output) = call.poll_output() {
                        black_box(output);
                    }
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, caller_frame, agent_delta, mark_echo);
criterion_main!(benches);
