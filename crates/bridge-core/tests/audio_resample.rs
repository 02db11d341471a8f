//! Resampler properties: DC gain, passband flatness, stopband/image rejection, exact group
//! delay, chunk-size independence and clamping, for every 8/16/24 kHz direction.

use bridge_core::audio::resample::Resampler;
use bridge_core::audio::tone::Tone;

const PAIRS: [(u32, u32); 6] = [
    (8_000, 16_000),
    (16_000, 8_000),
    (8_000, 24_000),
    (24_000, 8_000),
    (16_000, 24_000),
    (24_000, 16_000),
];

fn resample_all(from: u32, to: u32, input: &[i16]) -> Vec<i16> {
    let mut r = Resampler::new(from, to).expect("supported pair");
    let mut out = Vec::new();
    r.process(input, &mut out);
    out
}

fn tone(freq: f64, peak: f64, rate: u32, n: usize) -> Vec<i16> {
    let mut t = Tone::new(freq, peak, rate);
    let mut v = Vec::new();
    t.pcm16_into(n, &mut v);
    v
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Least-squares amplitude of a sinusoid at `freq` in `x` (sampled at `rate`), and the RMS of
/// what is left after removing it.
fn fit_tone(x: &[i16], freq: f64, rate: u32) -> (f64, f64) {
    let w = std::f64::consts::TAU * freq / f64::from(rate);
    let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (n, &v) in x.iter().enumerate() {
        let (s, c) = (w * n as f64).sin_cos();
        let v = f64::from(v);
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += v * s;
        xc += v * c;
    }
    let det = ss * cc - sc * sc;
    let a = (xs * cc - xc * sc) / det;
    let b = (xc * ss - xs * sc) / det;
    let residual: f64 = x
        .iter()
        .enumerate()
        .map(|(n, &v)| {
            let (s, c) = (w * n as f64).sin_cos();
            (f64::from(v) - a * s - b * c).powi(2)
        })
        .sum::<f64>()
        / x.len() as f64;
    ((a * a + b * b).sqrt(), residual.sqrt())
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

#[test]
fn dc_gain_is_exactly_one_after_settling() {
    for (from, to) in PAIRS {
        for level in [10_000i16, -20_000, 32_767, -32_768, 1] {
            let out = resample_all(from, to, &vec![level; from as usize / 10]);
            let r = Resampler::new(from, to).unwrap();
            // Once the whole filter span holds input, the output is settled.
            let settle = r.filter_len() / r.ratio().1 as usize + 1;
            for &y in &out[settle..] {
                // The brief asks for ±1 %; per-branch normalisation makes it exact.
                assert_eq!(y, level, "{from}->{to} level {level}");
            }
        }
    }
}

#[test]
fn passband_tone_is_flat_within_half_a_db() {
    for (from, to) in PAIRS {
        for freq in [300.0, 1000.0, 2000.0, 3000.0, 3400.0] {
            let input = tone(freq, 10_000.0, from, from as usize / 5);
            let out = resample_all(from, to, &input);
            let steady = &out[out.len() / 4..];
            let (amp, residual) = fit_tone(steady, freq, to);
            let gain = db(amp / 10_000.0);
            assert!(gain.abs() <= 0.5, "{from}->{to} {freq} Hz: {gain:.3} dB");
            // Everything else (images, aliases, rounding) is at least 40 dB down.
            assert!(
                db(residual / amp) < -40.0,
                "{from}->{to} {freq} Hz: residual"
            );
        }
    }
}

#[test]
fn decimation_rejects_tones_above_the_output_nyquist() {
    // (from, to, tones above 1.15 × the output Nyquist that would alias into the band)
    let cases: [(u32, u32, &[f64]); 4] = [
        (
            24_000,
            8_000,
            &[5_000.0, 6_000.0, 7_000.0, 9_000.0, 11_000.0],
        ),
        (16_000, 8_000, &[5_000.0, 6_000.0, 7_000.0]),
        (24_000, 16_000, &[9_500.0, 11_000.0]),
        (24_000, 8_000, &[4_700.0]),
    ];
    for (from, to, freqs) in cases {
        for &freq in freqs {
            let input = tone(freq, 20_000.0, from, from as usize / 5);
            let out = resample_all(from, to, &input);
            let steady = &out[out.len() / 4..];
            let attenuation = db(rms(steady) / rms(&input));
            assert!(
                attenuation <= -55.0,
                "{from}->{to} {freq} Hz: {attenuation:.1} dB"
            );
        }
    }
    // The brief's reference case: 5 kHz at 24 kHz → 8 kHz, at least 40 dB down.
    let input = tone(5_000.0, 20_000.0, 24_000, 4_800);
    let out = resample_all(24_000, 8_000, &input);
    assert!(db(rms(&out[400..]) / rms(&input)) <= -40.0);
}

#[test]
fn group_delay_equals_the_documented_value() {
    for (from, to) in PAIRS {
        let r = Resampler::new(from, to).unwrap();
        let (l, m) = r.ratio();
        let (l, m) = (l as usize, m as usize);
        let delay = r.delay_output_samples();
        assert_eq!(delay * m, r.delay_input_samples() * l);
        // An impulse at input index i0 (a multiple of M, so it lands on an output instant)
        // must come out centred at output index (i0·L)/M + delay.
        let i0 = 4 * m;
        let mut input = vec![0i16; 400];
        input[i0] = 16_384;
        let out = resample_all(from, to, &input);
        let expected = i0 * l / m + delay;
        let peak = (0..out.len()).max_by_key(|&n| out[n]).unwrap();
        assert_eq!(peak, expected, "{from}->{to} peak");
        let total: f64 = out.iter().map(|&y| f64::from(y)).sum();
        let centroid: f64 = out
            .iter()
            .enumerate()
            .map(|(n, &y)| n as f64 * f64::from(y))
            .sum::<f64>()
            / total;
        assert!(
            (centroid - expected as f64).abs() < 0.02,
            "{from}->{to} centroid {centroid}"
        );
        // Linear phase: the response is exactly symmetric about the peak.
        for k in 1..expected {
            assert_eq!(
                out[expected - k],
                out[expected + k],
                "{from}->{to} asymmetric at {k}"
            );
        }
        // Documented duration: 1.875 ms for the 8/24 kHz pair.
        if (from, to) == (8_000, 24_000) || (from, to) == (24_000, 8_000) {
            assert_eq!(r.delay().as_micros(), 1875);
            assert_eq!(r.delay_output_samples(), if to == 24_000 { 45 } else { 15 });
        }
    }
}

#[test]
fn a_tone_comes_out_delayed_by_exactly_the_documented_delay() {
    // Cross-correlate the 8 → 24 kHz output with the ideal 24 kHz tone over candidate lags.
    let input = tone(700.0, 12_000.0, 8_000, 1_600);
    let ideal = tone(700.0, 12_000.0, 24_000, 4_800);
    let out = resample_all(8_000, 24_000, &input);
    let delay = Resampler::new(8_000, 24_000)
        .unwrap()
        .delay_output_samples();
    let error_at = |lag: usize| -> f64 {
        (600..4_000)
            .map(|n| (f64::from(out[n]) - f64::from(ideal[n - lag])).powi(2))
            .sum()
    };
    let best = (0..100)
        .min_by(|&a, &b| error_at(a).total_cmp(&error_at(b)))
        .unwrap();
    assert_eq!(best, delay);
    let snr = db(rms(&ideal[600..4_000]) / (error_at(best) / 3_400.0).sqrt());
    assert!(snr > 50.0, "SNR {snr:.1} dB");
}

fn noise(n: usize, seed: u32) -> Vec<i16> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 16) as i16
        })
        .collect()
}

#[test]
fn chunk_size_does_not_change_the_output() {
    for (from, to) in PAIRS {
        let input = noise(3_000, from ^ to);
        let whole = resample_all(from, to, &input);
        for pattern in [&[1usize][..], &[7], &[160], &[1, 7, 160, 3, 480, 2]] {
            let mut r = Resampler::new(from, to).unwrap();
            let mut out = Vec::new();
            let mut rest = &input[..];
            for &n in pattern.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                r.process(chunk, &mut out);
                rest = tail;
            }
            assert_eq!(out, whole, "{from}->{to} chunks {pattern:?}");
        }
        // Total output length is ⌈n·L/M⌉.
        let r = Resampler::new(from, to).unwrap();
        let (l, m) = r.ratio();
        assert_eq!(whole.len(), (3_000 * l as usize).div_ceil(m as usize));
    }
}

#[test]
fn reset_restarts_from_silence() {
    let mut r = Resampler::new(24_000, 8_000).unwrap();
    let input = noise(480, 9);
    let mut first = Vec::new();
    r.process(&input, &mut first);
    r.process(&noise(100, 3), &mut Vec::new());
    r.reset();
    let mut again = Vec::new();
    r.process(&input, &mut again);
    assert_eq!(first, again);
}

#[test]
fn full_scale_input_clamps_instead_of_wrapping() {
    // A full-scale square wave overshoots after low-pass filtering (Gibbs); the output must
    // saturate, never wrap around.
    let input: Vec<i16> = (0..1_600)
        .map(|n| if n % 40 < 20 { i16::MAX } else { i16::MIN })
        .collect();
    for (from, to) in PAIRS {
        let out = resample_all(from, to, &input);
        assert!(
            out.contains(&i16::MAX) && out.contains(&i16::MIN),
            "{from}->{to} saturates"
        );
        let r = Resampler::new(from, to).unwrap();
        let (l, m) = r.ratio();
        let delay = r.delay_output_samples();
        // In the middle of each half period the output has the input's sign.
        for (n, &y) in out.iter().enumerate().skip(delay + 200) {
            let t_in = (n - delay) * m as usize / l as usize; // input index at that instant
            let pos_in_period = t_in % 40;
            if (7..13).contains(&pos_in_period) {
                assert!(y > 20_000, "{from}->{to} n={n}: {y}");
            } else if (27..33).contains(&pos_in_period) {
                assert!(y < -20_000, "{from}->{to} n={n}: {y}");
            }
        }
        // Random full-scale input must not overflow the accumulator (debug builds would panic).
        let wild: Vec<i16> = noise(5_000, 77)
            .iter()
            .map(|&s| if s < 0 { i16::MIN } else { i16::MAX })
            .collect();
        assert_eq!(
            resample_all(from, to, &wild).len(),
            (5_000 * l as usize).div_ceil(m as usize)
        );
    }
}

#[test]
fn upsampling_keeps_the_original_samples_exactly() {
    // The interpolation filter is a Nyquist filter: every L-th output is an input sample,
    // delayed by the documented delay, untouched.
    for (from, to) in [(8_000, 24_000), (8_000, 16_000), (16_000, 48_000)] {
        let input = noise(1_000, to);
        let out = resample_all(from, to, &input);
        let r = Resampler::new(from, to).unwrap();
        let l = r.ratio().0 as usize;
        let d = r.delay_output_samples();
        for (n, &x) in input
            .iter()
            .enumerate()
            .take(out.len().saturating_sub(d) / l)
        {
            assert_eq!(out[n * l + d], x, "{from}->{to} n={n}");
        }
    }
}
