//! Transcoder: pass-through selection, every format pair, tone fidelity across a round trip,
//! exact sample bookkeeping, streaming state (odd PCM16 bytes, chunking) and error handling.

use bridge_core::audio::g711;
use bridge_core::audio::tone::Tone;
use bridge_core::audio::transcode::{Transcoder, UnsupportedConversion};
use bridge_core::format::{AudioFormat, Base64Audio, PayloadError};

const FORMATS: [AudioFormat; 6] = [
    AudioFormat::Mulaw8k,
    AudioFormat::Alaw8k,
    AudioFormat::Pcm16 { rate: 8_000 },
    AudioFormat::Pcm16 { rate: 16_000 },
    AudioFormat::Pcm16 { rate: 24_000 },
    AudioFormat::Pcm16 { rate: 48_000 },
];

fn transcoder(from: AudioFormat, to: AudioFormat) -> Transcoder {
    Transcoder::new(from, to)
        .expect("supported")
        .expect("formats differ")
}

/// Decodes raw bytes of `format` to samples.
fn samples_of(format: AudioFormat, raw: &[u8]) -> Vec<i16> {
    let mut out = Vec::new();
    match format {
        AudioFormat::Mulaw8k => g711::decode_ulaw_into(raw, &mut out),
        AudioFormat::Alaw8k => g711::decode_alaw_into(raw, &mut out),
        AudioFormat::Pcm16 { .. } => {
            bridge_core::audio::pcm::le_bytes_to_samples_into(raw, &mut out)
        }
    }
    out
}

/// `frames` consecutive 20 ms payloads of a tone in `format`.
fn tone_frames(format: AudioFormat, freq: f64, peak: f64, frames: usize) -> Vec<Base64Audio> {
    let mut t = Tone::new(freq, peak, format.sample_rate());
    (0..frames).map(|_| t.payload(format, 20)).collect()
}

/// Least-squares fit of a sinusoid: (amplitude, RMS of the residual).
fn fit_tone(x: &[i16], freq: f64, rate: u32) -> (f64, f64) {
    let w = std::f64::consts::TAU * freq / f64::from(rate);
    let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (n, &v) in x.iter().enumerate() {
        let (s, c) = (w * n as f64).sin_cos();
        let v = f64::from(v);
        (ss, cc, sc, xs, xc) = (ss + s * s, cc + c * c, sc + s * c, xs + v * s, xc + v * c);
    }
    let det = ss * cc - sc * sc;
    let (a, b) = ((xs * cc - xc * sc) / det, (xc * ss - xs * sc) / det);
    let residual = x
        .iter()
        .enumerate()
        .map(|(n, &v)| {
            let (s, c) = (w * n as f64).sin_cos();
            (f64::from(v) - a * s - b * c).powi(2)
        })
        .sum::<f64>();
    ((a * a + b * b).sqrt(), (residual / x.len() as f64).sqrt())
}

#[test]
fn equal_formats_mean_pass_through() {
    for f in FORMATS {
        assert!(Transcoder::new(f, f).unwrap().is_none(), "{f:?}");
    }
}

#[test]
fn unsupported_rates_are_refused() {
    for (from, to) in [
        (AudioFormat::Mulaw8k, AudioFormat::Pcm16 { rate: 44_100 }),
        (AudioFormat::Pcm16 { rate: 0 }, AudioFormat::Mulaw8k),
        (
            AudioFormat::Pcm16 { rate: 11_025 },
            AudioFormat::Pcm16 { rate: 16_000 },
        ),
    ] {
        assert_eq!(
            Transcoder::new(from, to).unwrap_err(),
            UnsupportedConversion { from, to }
        );
    }
}

#[test]
fn every_pair_carries_a_tone() {
    for from in FORMATS {
        for to in FORMATS {
            if from == to {
                continue;
            }
            let mut t = transcoder(from, to);
            let mut out = Vec::new();
            for frame in tone_frames(from, 1_000.0, 12_000.0, 10) {
                out.extend(t.process(&frame).unwrap().decode().unwrap());
            }
            // 200 ms in → 200 ms out, exactly.
            assert_eq!(
                out.len(),
                to.ms_to_samples(200) as usize * to.bytes_per_sample() as usize
            );
            let samples = samples_of(to, &out);
            let steady = &samples[samples.len() / 4..];
            let (amp, residual) = fit_tone(steady, 1_000.0, to.sample_rate());
            let gain_db = 20.0 * (amp / 12_000.0).log10();
            let snr_db = 20.0 * (amp / residual).log10();
            assert!(gain_db.abs() < 0.2, "{from:?}->{to:?} gain {gain_db:.2} dB");
            // G.711 on either side limits the SNR to ≈ 35–38 dB; PCM-only paths are far cleaner.
            let g711 = from.bytes_per_sample() == 1 || to.bytes_per_sample() == 1;
            let floor = if g711 { 30.0 } else { 50.0 };
            assert!(snr_db > floor, "{from:?}->{to:?} SNR {snr_db:.1} dB");
        }
    }
}

#[test]
fn ulaw_to_pcm24k_and_back_reproduces_the_tone() {
    let mut up = transcoder(AudioFormat::Mulaw8k, AudioFormat::Pcm16 { rate: 24_000 });
    let mut down = transcoder(AudioFormat::Pcm16 { rate: 24_000 }, AudioFormat::Mulaw8k);
    let input = tone_frames(AudioFormat::Mulaw8k, 1_000.0, 16_000.0, 25); // 500 ms
    let mut original = Vec::new();
    let mut returned = Vec::new();
    for frame in &input {
        original.extend(samples_of(AudioFormat::Mulaw8k, &frame.decode().unwrap()));
        let pcm = up.process(frame).unwrap();
        assert_eq!(pcm.decoded_len(), 960);
        let back = down.process(&pcm).unwrap();
        assert_eq!(back.decoded_len(), 160);
        returned.extend(samples_of(AudioFormat::Mulaw8k, &back.decode().unwrap()));
    }
    // Exact, documented round-trip delay: 15 + 15 samples at 8 kHz.
    let delay = up.delay() + down.delay();
    assert_eq!(delay.as_micros(), 3_750);
    let lag = 30;
    let a = &original[200..original.len() - lag];
    let b = &returned[200 + lag..];
    let dot = |x: &[i16], y: &[i16]| {
        x.iter()
            .zip(y)
            .map(|(&p, &q)| f64::from(p) * f64::from(q))
            .sum::<f64>()
    };
    let correlation = dot(a, b) / (dot(a, a) * dot(b, b)).sqrt();
    assert!(correlation > 0.999, "correlation {correlation}");
    let noise: f64 = a
        .iter()
        .zip(b)
        .map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2))
        .sum();
    let snr_db = 10.0 * (dot(a, a) / noise).log10();
    assert!(snr_db > 30.0, "SNR {snr_db:.1} dB");
    // And it is the best alignment (a 1 kHz tone repeats every 8 samples, so compare only
    // lags within half a period).
    let corr_at = |l: usize| dot(&original[200..3_000], &returned[200 + l..3_000 + l]);
    assert!(
        (lag - 3..=lag + 3)
            .filter(|&l| l != lag)
            .all(|l| corr_at(l) < corr_at(lag))
    );
}

#[test]
fn sample_count_bookkeeping() {
    let frame = Base64Audio::encode(&[0xFF; 160]);
    let mut up = transcoder(AudioFormat::Mulaw8k, AudioFormat::Pcm16 { rate: 24_000 });
    assert_eq!(up.output_len(160), 960);
    let out = up.process(&frame).unwrap();
    assert_eq!(out.decoded_len(), 960);
    assert_eq!(
        AudioFormat::Pcm16 { rate: 24_000 }.samples_in(out.decoded_len()),
        480
    );
    assert_eq!(out.text_len(), 1_280);

    let mut wide = transcoder(
        AudioFormat::Pcm16 { rate: 16_000 },
        AudioFormat::Pcm16 { rate: 24_000 },
    );
    let mut narrow = transcoder(AudioFormat::Pcm16 { rate: 24_000 }, AudioFormat::Alaw8k);
    for _ in 0..5 {
        assert_eq!(
            wide.process(&Base64Audio::encode(&[0; 640]))
                .unwrap()
                .decoded_len(),
            960
        );
        assert_eq!(
            narrow
                .process(&Base64Audio::encode(&[0; 960]))
                .unwrap()
                .decoded_len(),
            160
        );
    }
    // Uneven chunks: totals stay exact (⌈n·L/M⌉ over the whole stream).
    let mut down = transcoder(AudioFormat::Pcm16 { rate: 24_000 }, AudioFormat::Mulaw8k);
    let mut total = 0;
    for bytes in [2, 4, 100, 962, 14] {
        let predicted = down.output_len(bytes);
        let out = down.process(&Base64Audio::encode(&vec![0; bytes])).unwrap();
        assert_eq!(out.decoded_len(), predicted);
        total += out.decoded_len();
    }
    assert_eq!(total, (1_082 / 2usize).div_ceil(3));
}

#[test]
fn chunking_and_odd_pcm_bytes_do_not_change_the_stream() {
    let from = AudioFormat::Pcm16 { rate: 24_000 };
    let to = AudioFormat::Mulaw8k;
    let mut whole_raw = Vec::new();
    for f in tone_frames(from, 440.0, 9_000.0, 5) {
        whole_raw.extend(f.decode().unwrap());
    }
    let whole = transcoder(from, to)
        .process(&Base64Audio::encode(&whole_raw))
        .unwrap();

    let mut t = transcoder(from, to);
    let mut pieces = Vec::new();
    let mut rest = &whole_raw[..];
    for n in [1usize, 7, 160, 3, 961].iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*n).min(rest.len()));
        pieces.extend(
            t.process(&Base64Audio::encode(chunk))
                .unwrap()
                .decode()
                .unwrap(),
        );
        rest = tail;
    }
    assert_eq!(pieces, whole.decode().unwrap());

    // The raw API agrees with the base64 one.
    let mut t = transcoder(from, to);
    let mut raw_out = Vec::new();
    for chunk in whole_raw.chunks(333) {
        t.process_raw(chunk, &mut raw_out);
    }
    assert_eq!(raw_out, whole.decode().unwrap());
}

#[test]
fn bad_base64_is_an_error_and_leaves_the_stream_intact() {
    let from = AudioFormat::Pcm16 { rate: 16_000 };
    let to = AudioFormat::Mulaw8k;
    let frames = tone_frames(from, 700.0, 8_000.0, 3);
    let mut reference = transcoder(from, to);
    let expected: Vec<_> = frames
        .iter()
        .map(|f| reference.process(f).unwrap())
        .collect();

    let mut t = transcoder(from, to);
    // An odd byte is pending when the bad payload arrives.
    let odd = Base64Audio::encode(&[0x34]);
    assert_eq!(t.process(&odd).unwrap().decoded_len(), 0);
    t.reset();
    // Shape-valid but not decodable (non-zero trailing bits).
    let bad = Base64Audio::from_text("AB==").unwrap();
    assert_eq!(t.process(&bad), Err(PayloadError::NotBase64 { len: 4 }));
    for (f, e) in frames.iter().zip(&expected) {
        assert_eq!(&t.process(f).unwrap(), e);
    }
}

#[test]
fn reset_clears_history() {
    let mut t = transcoder(AudioFormat::Mulaw8k, AudioFormat::Pcm16 { rate: 24_000 });
    let frames = tone_frames(AudioFormat::Mulaw8k, 1_000.0, 10_000.0, 2);
    let first = t.process(&frames[0]).unwrap();
    t.process(&frames[1]).unwrap();
    t.reset();
    assert_eq!(t.process(&frames[0]).unwrap(), first);
    assert_eq!(t.from_format(), AudioFormat::Mulaw8k);
    assert_eq!(t.to_format(), AudioFormat::Pcm16 { rate: 24_000 });
    assert_eq!(t.resampler().map(|r| r.ratio()), Some((3, 1)));
}

#[test]
fn codec_only_conversions_have_no_delay_and_are_sample_exact() {
    let mut t = transcoder(AudioFormat::Mulaw8k, AudioFormat::Alaw8k);
    assert!(t.delay().is_zero() && t.resampler().is_none());
    let codes: Vec<u8> = (0..=255).collect();
    let out = t
        .process(&Base64Audio::encode(&codes))
        .unwrap()
        .decode()
        .unwrap();
    for (&u, &a) in codes.iter().zip(&out) {
        assert_eq!(a, g711::alaw_encode(g711::ulaw_decode(u)));
    }
    let mut t = transcoder(AudioFormat::Mulaw8k, AudioFormat::Pcm16 { rate: 8_000 });
    let out = t
        .process(&Base64Audio::encode(&codes))
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(
        samples_of(AudioFormat::Pcm16 { rate: 8_000 }, &out),
        samples_of(AudioFormat::Mulaw8k, &codes)
    );
}

#[test]
fn transcoder_is_send() {
    fn assert_send<T: Send + 'static>() {}
    assert_send::<Transcoder>();
}
