//! Streaming rational polyphase FIR resampler (8 ↔ 16 ↔ 24 kHz, and any ratio L/M with
//! L, M ≤ 8).
//!
//! # Design
//!
//! Conceptually the input is upsampled by `L` (zeros stuffed between samples), low-pass
//! filtered at the lower of the two Nyquist frequencies, and every `M`-th sample is kept. The
//! implementation never materialises that signal: the prototype filter is split into `L`
//! polyphase branches and each output sample is computed directly as one dot product of a
//! branch with the most recent input samples, so there are **no multiplications by stuffed
//! zeros and no discarded outputs**.
//!
//! * **Filter:** Kaiser-windowed sinc (β = 6.76, designed for 70 dB), designed once at
//!   construction. The cutoff (−6 dB) sits at the lower Nyquist frequency `f_N`; the passband
//!   reaches 0.85·`f_N` (3.4 kHz for 8 kHz audio, the telephone band) and the stopband starts
//!   at 1.15·`f_N` (4.6 kHz). When decimating, the only energy that aliases back is what lies
//!   in the transition band, and it lands there again (3.4–4 kHz), outside the telephone band.
//! * **Fixed point:** coefficients are Q14 `i16`, quantised per branch so that **every branch
//!   sums to exactly 1.0**: a constant input yields exactly the same constant output, with no
//!   ripple between phases. Accumulation is `i32`; the construction proves it cannot
//!   overflow. Outputs are rounded and clamped to `i16`.
//! * **Delay:** the filter is linear-phase and its length is chosen so the group delay is a
//!   whole number of samples at **both** rates: [`Resampler::delay_input_samples`] and
//!   [`Resampler::delay_output_samples`]. For 8 → 24 kHz and 24 → 8 kHz it is 1.875 ms
//!   (15 samples at 8 kHz, 45 at 24 kHz), so an up/down round trip delays by exactly 30
//!   samples at 8 kHz.
//! * **Streaming:** the last `taps_per_phase − 1` input samples are kept between calls, so
//!   chunk boundaries are invisible: processing in chunks of 1, 7 or 160 samples produces
//!   bit-identical output to processing everything at once. The stream starts from silence
//!   (zero history) and each output is emitted as soon as its newest input sample is known, so
//!   `n` input samples always yield `⌈n·L/M⌉` output samples in total.
//!
//! Cost: 32 multiply-adds per output sample for 8 → 24 kHz and 96 for 24 → 8 kHz (each
//! branch is zero-padded to a multiple of 8 taps so the compiler vectorises the dot product).
//! A 20 ms frame takes a few microseconds either way.
//!
//! What it does not do: arbitrary or time-varying ratios (44.1 kHz sources need a general
//! resampler such as `rubato`), floating-point I/O, multi-channel audio.
//!
//! ```
//! use bridge_core::audio::resample::Resampler;
//!
//! let mut up = Resampler::new(8_000, 24_000)?;
//! let mut out = Vec::new();
//! up.process(&[1000; 160], &mut out); // 20 ms at 8 kHz
//! assert_eq!(out.len(), 480); // 20 ms at 24 kHz
//! assert_eq!(up.delay_output_samples(), 45);
//! // After the filter has filled, a constant input comes out unchanged.
//! assert!(out[100..].iter().all(|&s| s == 1000));
//! # Ok::<(), bridge_core::audio::resample::UnsupportedRatio>(())
//! ```

use std::time::Duration;

/// Largest `L` or `M` accepted (after reducing `to/from` to lowest terms).
pub const MAX_RATIO_TERM: u32 = 8;

/// Stopband attenuation the Kaiser design targets, in dB.
const ATTENUATION_DB: f64 = 70.0;
/// Transition band width as a fraction of the lower Nyquist frequency (0.85 → 1.15).
const TRANSITION: f64 = 0.3;
/// Coefficient fixed-point fraction bits (Q14).
const FRAC_BITS: u32 = 14;
const ONE: i32 = 1 << FRAC_BITS;

/// The rates cannot be converted by [`Resampler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot resample {from} Hz to {to} Hz: rates must be non-zero, different, and in a ratio \
     L/M with L and M at most 8"
)]
pub struct UnsupportedRatio {
    /// Input rate in Hz.
    pub from: u32,
    /// Output rate in Hz.
    pub to: u32,
}

/// A streaming mono `i16` resampler for a fixed rational ratio. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Resampler {
    from_rate: u32,
    to_rate: u32,
    /// Upsampling factor L.
    up: usize,
    /// Downsampling factor M.
    down: usize,
    /// Prototype filter length N (odd).
    taps: usize,
    /// Group delay of the prototype in filter-rate samples, (N − 1) / 2, a multiple of L·M.
    half: usize,
    taps_per_phase: usize,
    /// `up` branches of `taps_per_phase` Q14 coefficients, each stored oldest-sample-first so
    /// it lines up with a window of the input buffer.
    coeffs: Box<[i16]>,
    /// Per branch: `Some(i)` if the branch is a pure delay (a single tap of exactly 1.0 at
    /// window index `i`). In a Nyquist filter (every upsampler here) branch 0 is one: the
    /// original samples pass through unchanged, so they are copied instead of filtered.
    copy_tap: Box<[Option<usize>]>,
    /// `taps_per_phase − 1` samples of history followed by input not yet fully consumed.
    buf: Vec<i16>,
    /// Index in `buf` of the newest input sample the next output needs.
    next_k: usize,
    /// Polyphase branch of the next output (0..up).
    phase: usize,
}

impl Resampler {
    /// Builds a resampler from `from_rate` to `to_rate` Hz, designing its filter.
    ///
    /// Fails if either rate is zero, the rates are equal (nothing to do), or `to/from` does not
    /// reduce to `L/M` with `L, M ≤ 8` ([`MAX_RATIO_TERM`]).
    pub fn new(from_rate: u32, to_rate: u32) -> Result<Resampler, UnsupportedRatio> {
        let err = UnsupportedRatio {
            from: from_rate,
            to: to_rate,
        };
        if from_rate == 0 || to_rate == 0 || from_rate == to_rate {
            return Err(err);
        }
        let g = gcd(from_rate, to_rate);
        let (up, down) = (to_rate / g, from_rate / g);
        if up > MAX_RATIO_TERM || down > MAX_RATIO_TERM {
            return Err(err);
        }
        let (up, down) = (up as usize, down as usize);
        let widest = up.max(down) as f64;

        // Kaiser design at the filter rate F = L·from. Cutoff at the lower Nyquist, F/(2·g).
        let delta_omega = std::f64::consts::PI * TRANSITION / widest;
        let min_order = (ATTENUATION_DB - 7.95) / (2.285 * delta_omega);
        // Half-length: a multiple of L·M so the delay is whole at both rates.
        let unit = up * down;
        let half = ((min_order / 2.0).ceil() as usize).div_ceil(unit) * unit;
        let taps = 2 * half + 1;
        let beta = 0.1102 * (ATTENUATION_DB - 8.7);
        let i0_beta = bessel_i0(beta);
        let prototype: Vec<f64> = (0..taps)
            .map(|i| {
                let x = i as f64 - half as f64;
                let sinc = if x == 0.0 {
                    1.0 / widest
                } else {
                    (std::f64::consts::PI * x / widest).sin() / (std::f64::consts::PI * x)
                };
                let r = x / half as f64;
                sinc * bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0_beta
            })
            .collect();

        let real_taps = taps.div_ceil(up);
        // Branches are zero-padded at the oldest end to a multiple of the dot-product width.
        let taps_per_phase = real_taps.div_ceil(LANES) * LANES;
        let mut coeffs = vec![0i16; up * taps_per_phase].into_boxed_slice();
        for phase in 0..up {
            // Branch p applies h[p + j·L] to x[k − j].
            let branch: Vec<f64> = (0..real_taps)
                .map(|j| prototype.get(phase + j * up).copied().unwrap_or(0.0))
                .collect();
            // Sum in value order so mirror-image branches get bit-identical sums.
            let mut sorted = branch.clone();
            sorted.sort_by(f64::total_cmp);
            let sum: f64 = sorted.iter().sum();
            let mut q: Vec<i32> = branch
                .iter()
                .map(|&c| (c / sum * f64::from(ONE)).round() as i32)
                .collect();
            // Give the rounding residual to the tap(s) nearest the centre so the branch sums to
            // exactly 1.0 and the filter stays exactly symmetric: a branch either has one tap
            // nearest the centre or, if it is its own mirror image, two equally near taps with
            // equal values (then the residual is even, since 1.0 and the sum of the pairs are).
            let residual = ONE - q.iter().sum::<i32>();
            let distance = |j: usize| (phase + j * up).abs_diff(half);
            let nearest = (0..real_taps).map(distance).min().unwrap_or(0);
            let centre: Vec<usize> = (0..real_taps).filter(|&j| distance(j) == nearest).collect();
            match centre.as_slice() {
                [j] => q[*j] += residual,
                [a, b] => {
                    q[*a] += residual / 2;
                    q[*b] += residual - residual / 2;
                }
                _ => return Err(err),
            }
            // |Σ c·x| ≤ Σ|c| · 32768 must stay below i32::MAX with room for the rounding term.
            let abs_sum: i64 = q.iter().map(|&c| i64::from(c.abs())).sum();
            if abs_sum * 32_768 + i64::from(ONE) >= i64::from(i32::MAX) {
                return Err(err);
            }
            let dst = &mut coeffs[phase * taps_per_phase..(phase + 1) * taps_per_phase];
            for (j, &c) in q.iter().enumerate() {
                // Oldest-first: tap j multiplies x[k − j], which sits at window index T−1−j.
                dst[taps_per_phase - 1 - j] = i16::try_from(c).map_err(|_| err)?;
            }
        }

        let copy_tap: Box<[Option<usize>]> = coeffs
            .chunks(taps_per_phase)
            .map(|branch| {
                let mut nonzero = branch.iter().enumerate().filter(|&(_, &c)| c != 0);
                match (nonzero.next(), nonzero.next()) {
                    (Some((i, &c)), None) if i32::from(c) == ONE => Some(i),
                    _ => None,
                }
            })
            .collect();
        let mut r = Resampler {
            from_rate,
            to_rate,
            up,
            down,
            taps,
            half,
            taps_per_phase,
            copy_tap,
            coeffs,
            buf: Vec::new(),
            next_k: 0,
            phase: 0,
        };
        r.reset();
        Ok(r)
    }

    /// Input rate in Hz.
    pub fn from_rate(&self) -> u32 {
        self.from_rate
    }

    /// Output rate in Hz.
    pub fn to_rate(&self) -> u32 {
        self.to_rate
    }

    /// The ratio in lowest terms as `(L, M)`: output rate = input rate · L / M.
    pub fn ratio(&self) -> (u32, u32) {
        (self.up as u32, self.down as u32)
    }

    /// Length of the prototype low-pass filter, in taps at the filter rate L·input rate.
    pub fn filter_len(&self) -> usize {
        self.taps
    }

    /// Multiply-adds per output sample.
    pub fn taps_per_output(&self) -> usize {
        self.taps_per_phase
    }

    /// Group delay in output samples (exact: the filter is linear-phase).
    pub fn delay_output_samples(&self) -> usize {
        self.half / self.down
    }

    /// Group delay in input samples (exact).
    pub fn delay_input_samples(&self) -> usize {
        self.half / self.up
    }

    /// Group delay as a duration.
    pub fn delay(&self) -> Duration {
        Duration::from_nanos(
            (self.delay_input_samples() as u64) * 1_000_000_000 / u64::from(self.from_rate),
        )
    }

    /// Forgets all history, as if freshly constructed (for example after the stream was cut).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf.resize(self.taps_per_phase - 1, 0);
        self.next_k = self.taps_per_phase - 1;
        self.phase = 0;
    }

    /// The number of output samples the next [`process`](Self::process) call will append for
    /// `input_len` input samples.
    pub fn output_len(&self, input_len: usize) -> usize {
        let len = self.buf.len() + input_len;
        if self.next_k >= len {
            return 0;
        }
        // Outputs m = 0, 1, … need input index next_k + ⌊(phase + m·M) / L⌋ < len.
        let room = len - self.next_k; // ⌊(phase + m·M) / L⌋ ≤ room − 1
        (self.up * room - 1 - self.phase) / self.down + 1
    }

    /// Resamples `input`, **appending** the output samples to `out`.
    ///
    /// State carries over to the next call. Allocation happens only while the internal buffer
    /// and `out` grow to their steady-state sizes.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        out.reserve(self.output_len(input.len()));
        self.buf.extend_from_slice(input);
        let t = self.taps_per_phase;
        while self.next_k < self.buf.len() {
            let window = &self.buf[self.next_k + 1 - t..=self.next_k];
            let y = match self.copy_tap[self.phase] {
                Some(i) => window[i],
                None => {
                    let branch = &self.coeffs[self.phase * t..(self.phase + 1) * t];
                    let acc = dot(window, branch);
                    let y = (acc + (ONE >> 1)) >> FRAC_BITS;
                    y.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
                }
            };
            out.push(y);
            self.phase += self.down;
            self.next_k += self.phase / self.up;
            self.phase %= self.up;
        }
        // Keep the last T − 1 samples as history for the next call.
        let consumed = self.buf.len() - (t - 1);
        self.buf.copy_within(consumed.., 0);
        self.buf.truncate(t - 1);
        self.next_k -= consumed;
    }
}

/// Branch lengths are padded to a multiple of this so the dot product vectorises without a
/// scalar tail (measured: about 1.5× faster than 31 unpadded taps).
const LANES: usize = 8;

/// `Σ window[i]·taps[i]`; both slices have the same length, a multiple of `LANES`. The plain
/// iterator form lets the compiler emit packed 16-bit multiply-adds.
#[inline]
fn dot(window: &[i16], taps: &[i16]) -> i32 {
    window
        .iter()
        .zip(taps)
        .map(|(&x, &c)| i32::from(x) * i32::from(c))
        .sum()
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let half_sq = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut k = 1.0;
    while term > sum * 1e-17 {
        term *= half_sq / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unsupported_rates() {
        for (a, b) in [
            (0, 8_000),
            (8_000, 0),
            (8_000, 8_000),
            (8_000, 44_100),
            (8_000, 72_000),
        ] {
            assert_eq!(
                Resampler::new(a, b).unwrap_err(),
                UnsupportedRatio { from: a, to: b }
            );
        }
        assert!(Resampler::new(8_000, 64_000).is_ok());
        assert!(Resampler::new(32_000, 24_000).is_ok());
    }

    #[test]
    fn design_summary() {
        let up = Resampler::new(8_000, 24_000).unwrap();
        assert_eq!(
            (up.ratio(), up.filter_len(), up.taps_per_output()),
            ((3, 1), 91, 32)
        );
        assert_eq!(
            (up.delay_input_samples(), up.delay_output_samples()),
            (15, 45)
        );
        assert_eq!(up.delay(), Duration::from_micros(1875));
        let down = Resampler::new(24_000, 8_000).unwrap();
        assert_eq!(
            (down.ratio(), down.filter_len(), down.taps_per_output()),
            ((1, 3), 91, 96)
        );
        assert_eq!(
            (down.delay_input_samples(), down.delay_output_samples()),
            (45, 15)
        );
        for (a, b) in [
            (8_000, 16_000),
            (16_000, 8_000),
            (16_000, 24_000),
            (24_000, 16_000),
        ] {
            let r = Resampler::new(a, b).unwrap();
            let (l, m) = r.ratio();
            assert_eq!(
                r.delay_input_samples() * l as usize,
                r.delay_output_samples() * m as usize
            );
        }
    }

    #[test]
    fn every_branch_sums_to_one() {
        for (a, b) in [
            (8_000, 24_000),
            (24_000, 16_000),
            (8_000, 48_000),
            (48_000, 8_000),
        ] {
            let r = Resampler::new(a, b).unwrap();
            for branch in r.coeffs.chunks(r.taps_per_phase) {
                assert_eq!(branch.iter().map(|&c| i32::from(c)).sum::<i32>(), ONE);
            }
        }
    }

    #[test]
    fn output_len_predicts_process() {
        let mut r = Resampler::new(24_000, 16_000).unwrap();
        let mut out = Vec::new();
        let mut total_in = 0;
        for n in [1, 2, 5, 7, 160, 0, 3, 480] {
            let before = out.len();
            let predicted = r.output_len(n);
            r.process(&vec![7; n], &mut out);
            assert_eq!(out.len() - before, predicted);
            total_in += n;
            assert_eq!(out.len(), (total_in * 2).div_ceil(3));
        }
    }
}
