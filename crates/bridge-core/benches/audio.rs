//! Per-frame cost of the audio path: G.711 on a 20 ms frame, 20 ms of resampling each way, and
//! the full base64 transcoder per 20 ms frame.

use std::hint::black_box;

use bridge_core::audio::energy;
use bridge_core::audio::g711;
use bridge_core::audio::resample::Resampler;
use bridge_core::audio::tone::Tone;
use bridge_core::audio::transcode::Transcoder;
use bridge_core::format::AudioFormat;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn g711_frame(c: &mut Criterion) {
    let mut tone = Tone::with_dbfs(1_000.0, -20.0, 8_000);
    let mut pcm = Vec::new();
    tone.pcm16_into(160, &mut pcm);
    let mut ulaw = Vec::new();
    g711::encode_ulaw_into(&pcm, &mut ulaw);

    let mut group = c.benchmark_group("g711_160_samples");
    group.throughput(Throughput::Elements(160));
    let mut out_pcm = Vec::with_capacity(160);
    group.bench_function("ulaw_decode", |b| {
        b.iter(|| {
            out_pcm.clear();
            g711::decode_ulaw_into(black_box(&ulaw), &mut out_pcm);
            black_box(&out_pcm);
        })
    });
    let mut out_codes = Vec::with_capacity(160);
    group.bench_function("ulaw_encode", |b| {
        b.iter(|| {
            out_codes.clear();
            g711::encode_ulaw_into(black_box(&pcm), &mut out_codes);
            black_box(&out_codes);
        })
    });
    group.bench_function("alaw_encode", |b| {
        b.iter(|| {
            out_codes.clear();
            g711::encode_alaw_into(black_box(&pcm), &mut out_codes);
            black_box(&out_codes);
        })
    });
    group.bench_function("ulaw_dbfs", |b| {
        b.iter(|| energy::ulaw_dbfs(black_box(&ulaw)))
    });
    group.finish();
}

fn resample_20ms(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample_20ms");
    for (from, to) in [(8_000, 24_000), (24_000, 8_000), (16_000, 24_000)] {
        let mut tone = Tone::with_dbfs(1_000.0, -20.0, from);
        let mut input = Vec::new();
        tone.pcm16_into(from as usize / 50, &mut input);
        let mut r = Resampler::new(from, to).expect("supported pair");
        let mut out = Vec::with_capacity(to as usize / 50);
        group.throughput(Throughput::Elements(u64::from(to / 50)));
        group.bench_function(format!("{}k_to_{}k", from / 1000, to / 1000), |b| {
            b.iter(|| {
                out.clear();
                r.process(black_box(&input), &mut out);
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn transcode_20ms(c: &mut Criterion) {
    let mut group = c.benchmark_group("transcode_20ms_base64");
    let pcm24 = AudioFormat::Pcm16 { rate: 24_000 };
    for (name, from, to) in [
        ("ulaw8k_to_pcm24k", AudioFormat::Mulaw8k, pcm24),
        ("pcm24k_to_ulaw8k", pcm24, AudioFormat::Mulaw8k),
        (
            "ulaw8k_to_alaw8k",
            AudioFormat::Mulaw8k,
            AudioFormat::Alaw8k,
        ),
    ] {
        let mut tone = Tone::with_dbfs(1_000.0, -20.0, from.sample_rate());
        let frame = tone.payload(from, 20);
        let mut t = Transcoder::new(from, to)
            .expect("supported")
            .expect("formats differ");
        group.bench_function(name, |b| b.iter(|| t.process(black_box(&frame))));
    }
    group.finish();
}

criterion_group!(benches, g711_frame, resample_20ms, transcode_20ms);
criterion_main!(benches);
