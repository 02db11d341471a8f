//! Level metering and the energy VAD with synthetic tone bursts and silence.

use std::time::Duration;

use bridge_core::audio::energy::{self, EnergyVad, VadConfig, VadEvent};
use bridge_core::audio::g711;
use bridge_core::audio::tone::Tone;
use bridge_core::format::{AudioFormat, Base64Audio, PayloadError};

const SILENCE: [u8; 160] = [0xFF; 160];

/// The next 20 ms of `tone` as a μ-law frame.
fn speech_frame(tone: &mut Tone) -> Vec<u8> {
    let mut f = Vec::with_capacity(160);
    tone.ulaw_into(160, &mut f);
    f
}

/// Feeds a script of (frames, loud?) runs of 20 ms μ-law frames; returns (frame index, event).
fn run(vad: &mut EnergyVad, script: &[(usize, bool)]) -> Vec<(usize, VadEvent)> {
    let mut tone = Tone::with_dbfs(440.0, -20.0, 8_000);
    let mut events = Vec::new();
    let mut index = 0;
    for &(frames, loud) in script {
        for _ in 0..frames {
            let frame = if loud {
                speech_frame(&mut tone)
            } else {
                SILENCE.to_vec()
            };
            if let Some(e) = vad.push_ulaw(&frame) {
                events.push((index, e));
            }
            index += 1;
        }
    }
    events
}

#[test]
fn squared_tables_match_the_decoders() {
    for c in 0..=255u8 {
        let u = i64::from(g711::ulaw_decode(c));
        let a = i64::from(g711::alaw_decode(c));
        assert_eq!(i64::from(energy::ULAW_SQUARED[usize::from(c)]), u * u);
        assert_eq!(i64::from(energy::ALAW_SQUARED[usize::from(c)]), a * a);
    }
}

#[test]
fn levels_in_dbfs() {
    assert_eq!(energy::ulaw_dbfs(&SILENCE), energy::DBFS_FLOOR);
    assert_eq!(energy::ulaw_dbfs(&[]), energy::DBFS_FLOOR);
    assert_eq!(energy::pcm16_dbfs(&[0; 480]), energy::DBFS_FLOOR);
    // Largest μ-law code: 32124 / 32768 → −0.17 dBFS; full-scale square wave → 0 dBFS.
    assert!((energy::ulaw_dbfs(&[0x80, 0x00]) + 0.172).abs() < 0.01);
    assert!(energy::pcm16_dbfs(&[i16::MIN; 4]).abs() < 1e-6);
    for db in [-6.0, -20.0, -40.0] {
        let mut t = Tone::with_dbfs(1_000.0, db, 8_000);
        let mut pcm = Vec::new();
        t.pcm16_into(160, &mut pcm);
        let mut ulaw = Vec::new();
        let mut alaw = Vec::new();
        g711::encode_ulaw_into(&pcm, &mut ulaw);
        g711::encode_alaw_into(&pcm, &mut alaw);
        let db = db as f32;
        assert!((energy::pcm16_dbfs(&pcm) - db).abs() < 0.05, "pcm {db}");
        // G.711 quantisation moves the level by a small fraction of a dB.
        assert!((energy::ulaw_dbfs(&ulaw) - db).abs() < 0.3, "μ-law {db}");
        assert!((energy::alaw_dbfs(&alaw) - db).abs() < 0.3, "A-law {db}");
    }
}

#[test]
fn burst_then_silence_gives_one_start_and_one_stop_at_the_right_frames() {
    // Defaults: −40 dBFS, 60 ms min speech (3 frames), 500 ms hangover (25 frames).
    let mut vad = EnergyVad::new(VadConfig::default());
    let events = run(&mut vad, &[(25, false), (20, true), (50, false)]);
    assert_eq!(
        events,
        vec![
            // Speech began at frame 25 (500 ms) and is confirmed on its third frame.
            (
                27,
                VadEvent::SpeechStarted {
                    audio_start_ms: 500
                }
            ),
            // Speech ended at frame 45 (900 ms) and is confirmed 25 frames later.
            (69, VadEvent::SpeechStopped { audio_end_ms: 900 }),
        ]
    );
    assert!(!vad.is_speaking());
    assert_eq!(vad.position_ms(), 95 * 20);
}

#[test]
fn clicks_shorter_than_min_speech_are_ignored() {
    let mut vad = EnergyVad::new(VadConfig::default());
    assert_eq!(
        run(
            &mut vad,
            &[(10, false), (2, true), (10, false), (1, true), (5, false)]
        ),
        []
    );
    assert!(!vad.is_speaking());
}

#[test]
fn pauses_shorter_than_the_hangover_do_not_end_speech() {
    let mut vad = EnergyVad::new(VadConfig::default());
    let events = run(
        &mut vad,
        &[(5, true), (24, false), (5, true), (24, false), (5, true)],
    );
    assert_eq!(
        events,
        vec![(2, VadEvent::SpeechStarted { audio_start_ms: 0 })]
    );
    assert!(vad.is_speaking());
}

#[test]
fn hysteresis_keeps_speech_going_between_the_two_thresholds() {
    let config = VadConfig {
        threshold_dbfs: -30.0,
        hysteresis_db: 6.0,
        min_speech_ms: 20,
        hangover_ms: 100,
    };
    let frame = |db: f64| {
        let mut f = Vec::new();
        Tone::with_dbfs(500.0, db, 8_000).ulaw_into(160, &mut f);
        f
    };
    let (loud, middle, quiet) = (frame(-20.0), frame(-33.0), frame(-45.0));
    let mut vad = EnergyVad::new(config);
    // Silent: the middle level does not start speech.
    for _ in 0..10 {
        assert_eq!(vad.push_ulaw(&middle), None);
    }
    assert_eq!(
        vad.push_ulaw(&loud),
        Some(VadEvent::SpeechStarted {
            audio_start_ms: 200
        })
    );
    // Speaking: the middle level does not end it.
    for _ in 0..20 {
        assert_eq!(vad.push_ulaw(&middle), None);
    }
    assert!(vad.is_speaking());
    for _ in 0..4 {
        assert_eq!(vad.push_ulaw(&quiet), None);
    }
    assert_eq!(
        vad.push_ulaw(&quiet),
        Some(VadEvent::SpeechStopped { audio_end_ms: 620 })
    );
}

#[test]
fn line_noise_below_the_threshold_is_silence() {
    let mut vad = EnergyVad::new(VadConfig::default());
    let mut x = 12_345u32;
    for _ in 0..200 {
        // Uniform noise of ±300 → RMS 173, about −45.5 dBFS.
        let pcm: Vec<i16> = (0..160)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((x >> 16) % 601) as i16 - 300
            })
            .collect();
        let mut ulaw = Vec::new();
        g711::encode_ulaw_into(&pcm, &mut ulaw);
        assert!(energy::ulaw_dbfs(&ulaw) < -43.0);
        assert_eq!(vad.push_ulaw(&ulaw), None);
    }
}

#[test]
fn frame_size_and_format_do_not_change_event_positions() {
    let config = VadConfig::default();
    // 10 ms μ-law frames.
    let mut vad = EnergyVad::new(config);
    let mut tone = Tone::with_dbfs(440.0, -20.0, 8_000);
    let mut got = Vec::new();
    for i in 0..200 {
        let loud = (50..90).contains(&i);
        let frame = if loud {
            let mut f = Vec::new();
            tone.ulaw_into(80, &mut f);
            f
        } else {
            vec![0xFF; 80]
        };
        got.extend(vad.push_ulaw(&frame));
    }
    let expected = vec![
        VadEvent::SpeechStarted {
            audio_start_ms: 500,
        },
        VadEvent::SpeechStopped { audio_end_ms: 900 },
    ];
    assert_eq!(got, expected);

    // PCM16 at 24 kHz in 20 ms frames, and A-law / base64 payloads.
    for format in [
        AudioFormat::Pcm16 { rate: 24_000 },
        AudioFormat::Alaw8k,
        AudioFormat::Mulaw8k,
    ] {
        let mut vad = EnergyVad::new(config);
        let mut tone = Tone::with_dbfs(440.0, -20.0, format.sample_rate());
        let mut got = Vec::new();
        for i in 0..100 {
            let payload = if (25..45).contains(&i) {
                tone.payload(format, 20)
            } else {
                bridge_core::audio::tone::silence(format, 20)
            };
            got.extend(vad.push_base64(format, &payload).unwrap());
        }
        assert_eq!(got, expected, "{format:?}");
    }
    let mut vad = EnergyVad::new(config);
    let mut got = Vec::new();
    let mut tone = Tone::with_dbfs(440.0, -20.0, 16_000);
    for i in 0..100 {
        let mut pcm = vec![0i16; 320];
        if (25..45).contains(&i) {
            tone.fill(&mut pcm);
        }
        got.extend(vad.push_pcm16(&pcm, 16_000));
    }
    assert_eq!(got, expected);
}

#[test]
fn reset_bad_payloads_and_empty_frames() {
    let mut vad = EnergyVad::new(VadConfig {
        min_speech_ms: 0,
        ..VadConfig::default()
    });
    // Empty frames carry no time and change nothing.
    assert_eq!(vad.push_ulaw(&[]), None);
    assert_eq!(vad.push_level(0.0, Duration::ZERO), None);
    assert_eq!(vad.position_ms(), 0);
    // With no minimum, the first loud frame starts speech.
    assert_eq!(
        vad.push_level(-10.0, Duration::from_millis(20)),
        Some(VadEvent::SpeechStarted { audio_start_ms: 0 })
    );
    let bad = Base64Audio::from_text("AB==").unwrap();
    assert_eq!(
        vad.push_base64(AudioFormat::Mulaw8k, &bad),
        Err(PayloadError::NotBase64 { len: 4 })
    );
    assert!(vad.is_speaking());
    assert_eq!(vad.position_ms(), 20);
    vad.reset();
    assert!(!vad.is_speaking());
    assert_eq!(vad.position_ms(), 0);
    assert_eq!(vad.config().threshold_dbfs, -40.0);
}
