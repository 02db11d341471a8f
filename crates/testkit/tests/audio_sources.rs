//! Caller audio sources that need the outside world: espeak-ng (skipped when not installed)
//! and WAV files.

use testkit::audio::{self, AudioError, CallerAudio};

#[tokio::test]
async fn espeak_speech_when_installed() {
    let speech = match audio::espeak("Hello, I would like to book a table for two.").await {
        Ok(s) => s,
        // Not installed: nothing to check on this machine.
        Err(AudioError::EspeakNotInstalled) => return,
        Err(e) => panic!("espeak-ng failed: {e}"),
    };
    let ms = speech.len() / audio::BYTES_PER_MS;
    assert!((1000..6000).contains(&ms), "{ms} ms of speech");
    // Loud enough for the mock VAD somewhere (RMS over 100 ms windows).
    let loudest = speech.chunks(800).map(audio::rms).fold(0.0f64, f64::max);
    assert!(loudest > 1000.0, "loudest window RMS {loudest}");
    let built = CallerAudio::new()
        .silence(200)
        .espeak("yes")
        .await
        .expect("espeak ran once already");
    assert!(built.duration_ms() > 200);
}

#[test]
fn wav_file_round_trip() {
    // 16 kHz mono PCM16: 0.25 s at a constant level.
    let samples = vec![3000i16; 4000];
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&32000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    let dir = std::env::temp_dir().join(format!("testkit-wav-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("level.wav");
    std::fs::write(&path, &wav).unwrap();
    let mulaw = audio::read_wav_file(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(mulaw.len(), 2000);
    assert!(mulaw.iter().all(|&b| b == audio::encode(3000)));
    assert!(matches!(
        audio::read_wav_file("/nonexistent/x.wav"),
        Err(AudioError::Io { .. })
    ));
}
