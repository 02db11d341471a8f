//! Call recordings (`[recording]`, off by default): one stereo 16-bit PCM WAV at 8 kHz per
//! call, the caller on the left channel and the agent on the right **as the caller heard it**.
//!
//! * **Off the audio path.** The Twilio endpoint hands each caller frame, each agent chunk it
//!   sends and each `clear` to a [`RecordingTap`]: a `try_send` of the still base64-encoded
//!   payload (a reference-counted clone, no copy) and an `Instant` on a bounded channel
//!   ([`CHANNEL_CAPACITY`] events, about 5 s of a call). Base64 and μ-law decoding, the
//!   playout model and the file writes all happen in the call's recording task.
//! * **Drop policy.** When the channel is full (the task or the disk cannot keep up) the event
//!   is dropped, logged once per call and counted (`phone_agent_recording_dropped_total`): a
//!   dropped caller frame leaves its 20 ms silent (the frames after it stay in place: each
//!   carries its offset), a dropped agent chunk is silence on the right. A `clear` is never
//!   dropped: if it cannot be queued it is kept and sent before the next event.
//! * **Time axis.** Sample `n` of the file is `n / 8000` s after the stream started. Caller
//!   audio is placed at its offset in the caller's stream (Twilio sends it in real time). Agent
//!   audio is placed as Twilio plays it: a chunk starts when it was sent, or when the audio
//!   queued before it ends, whichever is later; a `clear` discards everything queued beyond
//!   the instant it was sent, and the end of the call discards what was still queued. So the
//!   right channel is the agent audio that played before each barge-in, where it played.
//!   (The caller's side of the socket is not observable: a chunk in flight when the `clear`
//!   left may be a few samples longer or shorter than this model says.)
//! * **Size cap.** A file stops growing at `recording.max_file_bytes` (header included); the
//!   rest of the call is not recorded (logged).
//!
//! Cost: a recorded call decodes 16 kB/s of μ-law and writes 32 kB/s of PCM; see
//! BENCHMARKS.md for the measured CPU.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bridge_core::audio::g711;
use bridge_core::format::Base64Audio;
use serde::Deserialize;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::config::{ConfigError, invalid};

/// Events queued between a call and its recording task.
pub const CHANNEL_CAPACITY: usize = 512;
/// Events dropped because a recording task fell behind.
pub const DROPPED: &str = "phone_agent_recording_dropped_total";
/// Samples per second.
const RATE: u32 = 8_000;
/// The WAV header's size.
const HEADER_BYTES: u64 = 44;
/// Samples written to the file at a time (once they can no longer change): 1 s.
const WRITE_CHUNK: usize = RATE as usize;

/// `[recording]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingConfig {
    /// Record calls.
    pub enabled: bool,
    /// Where the files go (`<CallSid>.wav`), created on demand.
    pub dir: PathBuf,
    /// Largest file (header included).
    pub max_file_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawRecording {
    enabled: bool,
    dir: String,
    max_file_bytes: u64,
}

impl Default for RawRecording {
    fn default() -> Self {
        RawRecording {
            enabled: false,
            dir: "data/recordings".into(),
            // 64 MiB: 35 minutes at 32 kB/s.
            max_file_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Validates `[recording]`.
pub(crate) fn validate(raw: RawRecording) -> Result<RecordingConfig, ConfigError> {
    if raw.enabled && raw.dir.trim().is_empty() {
        return Err(invalid("recording.dir", "must not be empty".to_owned()));
    }
    if raw.max_file_bytes <= HEADER_BYTES {
        return Err(invalid(
            "recording.max_file_bytes",
            format!("must be more than {HEADER_BYTES} (the WAV header)"),
        ));
    }
    Ok(RecordingConfig {
        enabled: raw.enabled,
        dir: PathBuf::from(raw.dir.trim()),
        max_file_bytes: raw.max_file_bytes,
    })
}

/// What the call task hands to its recording task.
#[derive(Debug)]
enum Tap {
    /// A caller frame at this offset (bytes = samples) of the caller's stream, received at
    /// this instant.
    Caller(u64, Instant, Base64Audio),
    /// An agent chunk sent to the caller at this instant.
    Agent(Instant, Base64Audio),
    /// A `clear` sent at this instant.
    Clear(Instant),
}

/// The call task's end of a recording: never waits, never decodes.
#[derive(Debug)]
pub struct RecordingTap {
    tx: mpsc::Sender<Tap>,
    caller_bytes: u64,
    pending_clear: Option<Instant>,
    dropped: u64,
}

impl RecordingTap {
    /// A caller frame (before it goes to the agent).
    pub fn caller(&mut self, audio: &Base64Audio) {
        let offset = self.caller_bytes;
        self.caller_bytes += audio.decoded_len() as u64;
        self.send(Tap::Caller(offset, Instant::now(), audio.clone()));
    }

    /// An agent chunk, as it is written to the caller.
    pub fn agent(&mut self, audio: &Base64Audio) {
        self.send(Tap::Agent(Instant::now(), audio.clone()));
    }

    /// A `clear`, as it is written to the caller.
    pub fn clear(&mut self) {
        self.pending_clear = Some(Instant::now());
        self.send_pending_clear();
    }

    fn send_pending_clear(&mut self) -> bool {
        if let Some(at) = self.pending_clear {
            if self.tx.try_send(Tap::Clear(at)).is_err() {
                return false;
            }
            self.pending_clear = None;
        }
        true
    }

    fn send(&mut self, tap: Tap) {
        if !self.send_pending_clear() || self.tx.try_send(tap).is_err() {
            if self.dropped == 0 {
                tracing::warn!(
                    "recording: the recording task is behind; dropping audio from the recording"
                );
            }
            self.dropped += 1;
            metrics::counter!(DROPPED).increment(1);
        }
    }
}

impl Drop for RecordingTap {
    fn drop(&mut self) {
        // Best effort: a clear still pending at the end is implied by the end itself.
        let _ = self.send_pending_clear();
    }
}

/// The outcome of one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingDone {
    /// The file.
    pub path: PathBuf,
    /// Samples per channel written.
    pub samples: u64,
    /// The size cap cut the recording short.
    pub capped: bool,
}

/// A recording in progress: the tap for the call task, and the task writing the file.
#[derive(Debug)]
pub struct Recording {
    /// Hand audio here; drop it when the call ended.
    pub tap: RecordingTap,
    /// The file, when the recording task has finished (`None`: it failed, logged).
    pub done: tokio::task::JoinHandle<Option<RecordingDone>>,
}

/// A file name for `call_sid`, or `None` when it is not a plain id (letters and digits).
pub fn file_name(call_sid: &str) -> Option<String> {
    (!call_sid.is_empty()
        && call_sid.len() <= 64
        && call_sid.bytes().all(|b| b.is_ascii_alphanumeric()))
    .then(|| format!("{call_sid}.wav"))
}

/// Starts recording the call `call_sid`, whose stream started at `started` (inside a tokio
/// runtime). `None` when the call SID cannot name a file.
pub fn start(config: &RecordingConfig, call_sid: &str, started: Instant) -> Option<Recording> {
    metrics::describe_counter!(
        DROPPED,
        "Audio events dropped from call recordings because a recording task fell behind."
    );
    let Some(name) = file_name(call_sid) else {
        tracing::warn!("recording: the call SID cannot name a file; not recording this call");
        return None;
    };
    let path = config.dir.join(name);
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let done = tokio::spawn(record(rx, path, started, config.max_file_bytes));
    Some(Recording {
        tap: RecordingTap {
            tx,
            caller_bytes: 0,
            pending_clear: None,
            dropped: 0,
        },
        done,
    })
}

/// The recording task.
async fn record(
    mut rx: mpsc::Receiver<Tap>,
    path: PathBuf,
    started: Instant,
    max_file_bytes: u64,
) -> Option<RecordingDone> {
    let mut wav = match WavWriter::create(&path, max_file_bytes).await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "recording: cannot create the file; not recording this call");
            None
        }
    };
    let mut tracks = Tracks::default();
    let mut failed = wav.is_none();
    while let Some(tap) = rx.recv().await {
        match tap {
            Tap::Caller(offset, at, audio) => tracks.caller(offset, position(started, at), &audio),
            Tap::Agent(at, audio) => tracks.agent(position(started, at), &audio),
            Tap::Clear(at) => tracks.clear(position(started, at)),
        }
        if let Some(w) = &mut wav
            && !failed
            && tracks.ready() >= WRITE_CHUNK
            && let Err(e) = w.write(&tracks.take(tracks.ready())).await
        {
            tracing::error!(path = %path.display(), error = %e, "recording: write failed; the rest of the call is not recorded");
            failed = true;
        }
    }
    // The call ended: what was still queued for the caller was never heard.
    let end = position(started, Instant::now());
    tracks.clear(end);
    let mut wav = wav?;
    if !failed {
        let rest = tracks.take_all();
        if let Err(e) = wav.write(&rest).await {
            tracing::error!(path = %path.display(), error = %e, "recording: write failed");
        }
    }
    match wav.finish().await {
        Ok(done) => {
            if done.capped {
                tracing::warn!(path = %path.display(), "recording: recording.max_file_bytes reached; the end of the call is not recorded");
            }
            Some(done)
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "recording: cannot finish the file");
            None
        }
    }
}

/// Samples (at 8 kHz) from `started` to `at`.
fn position(started: Instant, at: Instant) -> u64 {
    (at.saturating_duration_since(started).as_nanos() / 125_000) as u64
}

/// Both channels from sample `base` on (everything before is in the file).
#[derive(Debug, Default)]
struct Tracks {
    base: u64,
    left: Vec<i16>,
    right: Vec<i16>,
    /// End of the caller audio placed so far (absolute samples).
    caller_end: u64,
    /// End of the agent audio queued for playout (absolute samples).
    queue_end: u64,
    /// The latest instant seen: nothing before it can still change.
    now: u64,
    scratch: Vec<u8>,
}

impl Tracks {
    fn decode(&mut self, audio: &Base64Audio) -> bool {
        self.scratch.clear();
        match audio.decode() {
            Ok(bytes) => {
                self.scratch = bytes;
                true
            }
            Err(_) => false,
        }
    }

    /// Writes μ-law `codes` into `track` at absolute sample `at` (growing it as needed).
    fn place(track: &mut Vec<i16>, base: u64, at: u64, codes: &[u8]) {
        let Some(start) = at.checked_sub(base) else {
            return; // already in the file (cannot happen: see `ready`)
        };
        let start = start as usize;
        let end = start + codes.len();
        if track.len() < end {
            track.resize(end, 0);
        }
        g711::decode_ulaw_slice(codes, &mut track[start..end]);
    }

    fn caller(&mut self, offset: u64, at: u64, audio: &Base64Audio) {
        self.now = self.now.max(at);
        if !self.decode(audio) {
            return;
        }
        let codes = std::mem::take(&mut self.scratch);
        Self::place(&mut self.left, self.base, offset, &codes);
        self.caller_end = self.caller_end.max(offset + codes.len() as u64);
        self.scratch = codes;
    }

    fn agent(&mut self, at: u64, audio: &Base64Audio) {
        self.now = self.now.max(at);
        if !self.decode(audio) {
            return;
        }
        let codes = std::mem::take(&mut self.scratch);
        let start = at.max(self.queue_end).max(self.base);
        Self::place(&mut self.right, self.base, start, &codes);
        self.queue_end = start + codes.len() as u64;
        self.scratch = codes;
    }

    fn clear(&mut self, at: u64) {
        self.now = self.now.max(at);
        if self.queue_end > at {
            let keep = at.saturating_sub(self.base) as usize;
            self.right.truncate(keep);
            self.queue_end = at.max(self.base);
        }
    }

    /// Samples that can no longer change: before the latest instant seen and before the end
    /// of the caller audio placed.
    fn ready(&self) -> usize {
        self.now.min(self.caller_end).saturating_sub(self.base) as usize
    }

    /// Interleaved samples `[base, base + n)`, removed from the tracks.
    fn take(&mut self, n: usize) -> Vec<i16> {
        let mut out = Vec::with_capacity(2 * n);
        for i in 0..n {
            out.push(self.left.get(i).copied().unwrap_or(0));
            out.push(self.right.get(i).copied().unwrap_or(0));
        }
        self.left.drain(..n.min(self.left.len()));
        self.right.drain(..n.min(self.right.len()));
        self.base += n as u64;
        out
    }

    fn take_all(&mut self) -> Vec<i16> {
        let n = self.left.len().max(self.right.len());
        self.take(n)
    }
}

/// A WAV file being written: the header is rewritten with the sizes at the end.
struct WavWriter {
    file: tokio::io::BufWriter<tokio::fs::File>,
    path: PathBuf,
    data_bytes: u64,
    max_data_bytes: u64,
    capped: bool,
}

impl WavWriter {
    async fn create(path: &Path, max_file_bytes: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let file = tokio::fs::File::create(path).await?;
        let mut file = tokio::io::BufWriter::with_capacity(64 * 1024, file);
        file.write_all(&header(0)).await?;
        Ok(WavWriter {
            file,
            path: path.to_owned(),
            data_bytes: 0,
            // Whole stereo frames only.
            max_data_bytes: (max_file_bytes - HEADER_BYTES) / 4 * 4,
            capped: false,
        })
    }

    async fn write(&mut self, interleaved: &[i16]) -> std::io::Result<()> {
        let room = ((self.max_data_bytes - self.data_bytes) / 2) as usize;
        let n = if interleaved.len() > room {
            self.capped = true;
            room
        } else {
            interleaved.len()
        };
        let mut bytes = Vec::with_capacity(n * 2);
        for s in &interleaved[..n] {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        self.file.write_all(&bytes).await?;
        self.data_bytes += bytes.len() as u64;
        Ok(())
    }

    async fn finish(mut self) -> std::io::Result<RecordingDone> {
        self.file.flush().await?;
        let mut file = self.file.into_inner();
        file.seek(std::io::SeekFrom::Start(0)).await?;
        file.write_all(&header(self.data_bytes)).await?;
        file.flush().await?;
        file.sync_data().await?;
        Ok(RecordingDone {
            path: self.path,
            samples: self.data_bytes / 4,
            capped: self.capped,
        })
    }
}

/// The 44-byte header of a stereo 16-bit PCM WAV at 8 kHz with `data_bytes` of samples.
fn header(data_bytes: u64) -> [u8; 44] {
    let data = u32::try_from(data_bytes).unwrap_or(u32::MAX - 36);
    let channels: u16 = 2;
    let bits: u16 = 16;
    let block_align = channels * bits / 8;
    let byte_rate = RATE * u32::from(block_align);
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&RATE.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&bits.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(codes: &[u8]) -> Base64Audio {
        Base64Audio::encode(codes)
    }

    fn lin(code: u8) -> i16 {
        let mut out = [0i16; 1];
        g711::decode_ulaw_slice(&[code], &mut out);
        out[0]
    }

    #[test]
    fn agent_audio_queues_back_to_back_and_a_clear_cuts_what_had_not_played() {
        let mut t = Tracks::default();
        // Caller: 40 samples of code 0x10 from offset 0.
        t.caller(0, 0, &b64(&[0x10; 40]));
        // Agent: 10 samples sent at 5, 10 more at 7 (queued behind: 15..25), clear at 20.
        t.agent(5, &b64(&[0x20; 10]));
        t.agent(7, &b64(&[0x30; 10]));
        t.clear(20);
        // More agent audio after the clear starts when sent.
        t.agent(30, &b64(&[0x40; 4]));
        let all = t.take_all();
        let right: Vec<i16> = all.iter().skip(1).step_by(2).copied().collect();
        let left: Vec<i16> = all.iter().step_by(2).copied().collect();
        assert_eq!(left, vec![lin(0x10); 40]);
        let mut expected = vec![0; 5];
        expected.extend([lin(0x20); 10]);
        expected.extend([lin(0x30); 5]);
        expected.extend([0; 10]);
        expected.extend([lin(0x40); 4]);
        expected.resize(40, 0);
        assert_eq!(right, expected);
    }

    #[test]
    fn only_settled_samples_are_ready() {
        let mut t = Tracks::default();
        t.caller(0, 0, &b64(&[0xFF; 160]));
        t.agent(100, &b64(&[0x20; 800]));
        assert_eq!(t.ready(), 100);
        let first = t.take(100);
        assert_eq!(first.len(), 200);
        t.clear(150);
        t.caller(160, 150, &b64(&[0xFF; 160]));
        let rest = t.take_all();
        let right: Vec<i16> = rest.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(right.len(), 220);
        assert_eq!(right[..50], vec![lin(0x20); 50][..]);
        assert!(right[50..].iter().all(|&s| s == 0));
    }

    #[test]
    fn file_names_are_plain_ids() {
        assert_eq!(file_name("CA0123abc").as_deref(), Some("CA0123abc.wav"));
        assert_eq!(file_name("../etc/passwd"), None);
        assert_eq!(file_name(""), None);
    }

    #[test]
    fn the_header_describes_stereo_16_bit_8_khz() {
        let h = header(32_000);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()), 32_036);
        assert_eq!(u16::from_le_bytes(h[22..24].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(h[24..28].try_into().unwrap()), 8_000);
        assert_eq!(u32::from_le_bytes(h[28..32].try_into().unwrap()), 32_000);
        assert_eq!(u16::from_le_bytes(h[34..36].try_into().unwrap()), 16);
        assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), 32_000);
    }
}
