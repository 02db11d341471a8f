//! `cargo xtask call`: one simulated Twilio call against a running server.
//!
//! Plays Twilio: posts the voice webhook (signed when an auth token is given), opens the
//! `<Connect><Stream>` it answers, listens to the greeting, speaks each caller turn (a WAV file,
//! text spoken by `espeak-ng`, or a default pattern of speech-like tones) and listens to each
//! answer, then hangs up and prints the timeline. What the caller heard can be written to a WAV
//! file, on the call's time axis (silence where nothing played).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use testkit::audio::{AudioError, CallerAudio, FRAME_BYTES};
use testkit::twilio::{ActiveCall, CallBuilder, CallSimulator, PlacedCall};
use tokio::time::Instant;

use crate::report::{self, CallRecord, Webhook};

/// Arguments of `cargo xtask call`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct Args {
    /// The server's local base URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:3000")]
    pub(crate) url: String,
    /// Caller audio from a WAV file (PCM or μ-law, any rate); one caller turn per file.
    #[arg(long, value_name = "FILE", conflicts_with = "say")]
    pub(crate) wav: Vec<PathBuf>,
    /// Caller audio spoken by espeak-ng; one caller turn per text.
    #[arg(long, value_name = "TEXT")]
    pub(crate) say: Vec<String>,
    /// Write what the caller heard (the agent's audio, on the call's time axis) to this WAV file.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Sign the webhook and the stream upgrade with this Twilio auth token (the server's
    /// TWILIO_AUTH_TOKEN).
    #[arg(
        long,
        value_name = "T",
        env = "TWILIO_AUTH_TOKEN",
        hide_env_values = true
    )]
    pub(crate) auth_token: Option<String>,
    /// The public URL signatures are computed over (the server's PUBLIC_URL); default: --url.
    #[arg(long, value_name = "U", env = "PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// Hang up after this many seconds at the latest.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub(crate) seconds: u64,
}

/// How long to wait for the agent to start speaking (greeting, or an answer).
const FIRST_AUDIO_TIMEOUT: Duration = Duration::from_secs(10);
/// The agent is done speaking once nothing audible has been heard for this long.
const QUIET: Duration = Duration::from_millis(1200);

/// The default caller audio: two bursts of speech-like tones (≈ "hello there").
pub(crate) fn default_turn() -> Vec<u8> {
    CallerAudio::new()
        .speech(700)
        .silence(250)
        .speech(500)
        .into_bytes()
}

/// The message for a missing `espeak-ng`.
pub(crate) const ESPEAK_MISSING: &str = "espeak-ng is not installed: install it (Debian/Ubuntu: \
    `sudo apt-get install espeak-ng`; Fedora: `sudo dnf install espeak-ng`; macOS: \
    `brew install espeak-ng`), or pass --wav FILE instead of --say";

/// Loads the caller's turns: WAV files, texts spoken by espeak-ng, or the default pattern.
pub(crate) async fn caller_turns(args: &Args) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut turns = Vec::new();
    for path in &args.wav {
        // The error names the file and the cause.
        let audio = testkit::audio::read_wav_file(path)
            .map_err(|e| anyhow::anyhow!("caller audio: {e}"))?;
        turns.push(audio);
    }
    for text in &args.say {
        match testkit::audio::espeak(text).await {
            Ok(audio) => turns.push(audio),
            Err(AudioError::EspeakNotInstalled) => bail!(ESPEAK_MISSING),
            Err(e) => return Err(e).with_context(|| format!("speaking {text:?}")),
        }
    }
    if turns.is_empty() {
        turns.push(default_turn());
    }
    Ok(turns)
}

/// Posts the webhook for `builder` and records the exchange.
pub(crate) async fn place(
    builder: CallBuilder,
    signed: bool,
) -> anyhow::Result<(PlacedCall, Webhook)> {
    let at = Instant::now();
    // The simulator's errors already carry their causes in their messages.
    let placed = builder
        .place()
        .await
        .map_err(|e| anyhow::anyhow!("posting the voice webhook: {e}"))?;
    let webhook = Webhook {
        at,
        elapsed: at.elapsed(),
        status: placed.status(),
        signed,
        stream_url: placed.stream().map(|s| s.url.clone()),
    };
    Ok((placed, webhook))
}

/// Everything the call recorded so far, for [`report::analyze`].
pub(crate) fn record(
    call: &ActiveCall,
    t0: Instant,
    webhook: Option<Webhook>,
    caller_turns: Vec<Vec<u8>>,
) -> CallRecord {
    CallRecord {
        t0,
        webhook,
        timeline: call.timeline(),
        segments: audible_segments(call),
        caller_turns,
        violations: call
            .violations()
            .iter()
            .map(|v| format!("{:?}: {}", v.kind, v.detail))
            .collect(),
        horizon: Instant::now(),
    }
}

/// The agent's played segments that carry sound: a full-duplex agent (GPT-Live) streams
/// silence between its words, which is no agent turn.
fn audible_segments(call: &ActiveCall) -> Vec<testkit::twilio::PlayedSegment> {
    let received = call.received_audio();
    call.played_segments()
        .into_iter()
        .filter(|seg| {
            received
                .get(seg.offset..seg.offset + seg.len)
                .is_none_or(|audio| audio.iter().any(|&b| b != testkit::audio::SILENCE))
        })
        .collect()
}

/// Listens until the agent has spoken and gone quiet: waits up to `first` for audible agent
/// audio, then until nothing audible has been heard for [`QUIET`] (by audio, not by messages:
/// a full-duplex agent such as GPT-Live keeps streaming silence between its words). Returns
/// early when the stream ends or at `deadline`. Returns whether the agent said anything.
async fn listen(call: &ActiveCall, deadline: Instant, first: Duration) -> bool {
    let from = call.heard().len();
    let first_deadline = Instant::now() + first;
    let mut audible_until = from;
    let mut last_audible: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if call.closed().is_some() || now >= deadline {
            return last_audible.is_some();
        }
        let heard = call.heard();
        let audible_end = heard
            .chunks(FRAME_BYTES)
            .enumerate()
            .skip(audible_until / FRAME_BYTES)
            .filter(|(_, frame)| testkit::audio::rms(frame) > AUDIBLE_RMS)
            .map(|(i, frame)| i * FRAME_BYTES + frame.len())
            .next_back();
        if let Some(end) = audible_end.filter(|&end| end > audible_until) {
            audible_until = end;
            last_audible = Some(now);
        }
        match last_audible {
            Some(at) if now.duration_since(at) >= QUIET => return true,
            None if now >= first_deadline => return false,
            _ => {}
        }
        tokio::time::sleep(LISTEN_POLL).await;
    }
}

/// Frames quieter than this RMS (16-bit units) count as silence when listening.
const AUDIBLE_RMS: f64 = 300.0;
/// How often `listen` looks at what was heard.
const LISTEN_POLL: Duration = Duration::from_millis(50);

/// Runs `cargo xtask call`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let turns = caller_turns(&args).await?;
    let token = args.auth_token.as_deref().filter(|t| !t.is_empty());
    let public_url = args
        .public_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .unwrap_or(&args.url);
    let mut sim = CallSimulator::new(&args.url).public_url(public_url);
    if let Some(token) = token {
        sim = sim.auth_token(token);
    }
    println!(
        "Calling {} ({}); {} caller turn(s); hanging up after {} s at the latest.",
        args.url,
        if token.is_some() {
            format!("requests signed for {public_url}")
        } else {
            "unsigned: pass --auth-token if the server checks signatures".to_string()
        },
        turns.len(),
        args.seconds
    );
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.seconds);
    let (placed, webhook) = place(sim.call(), token.is_some())
        .await
        .map_err(|e| anyhow::anyhow!("{e:#} (is the server running at {}?)", args.url))?;
    if let Some(reason) = placed.rejected() {
        bail!(
            "the server rejected the call with <Reject{}>",
            reason
                .map(|r| format!(" reason=\"{r}\""))
                .unwrap_or_default()
        );
    }
    let call = match placed.open_stream().await {
        Ok(call) => call,
        Err(e) => {
            let hint = if webhook.status == 403 {
                ". Check --auth-token (the server's TWILIO_AUTH_TOKEN) and --public-url (its \
                 PUBLIC_URL): signatures cover the public URL"
            } else {
                ""
            };
            bail!(
                "the call did not connect: {}{hint}",
                e.to_string().trim_end()
            );
        }
    };

    println!("Connected; listening for a greeting...");
    listen(&call, deadline, FIRST_AUDIO_TIMEOUT).await;
    for (i, turn) in turns.iter().enumerate() {
        if call.closed().is_some() || Instant::now() >= deadline {
            break;
        }
        println!("Caller turn {}: speaking {} ms...", i + 1, turn.len() / 8);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let _ = call.play(turn.clone(), remaining).await;
        listen(&call, deadline, FIRST_AUDIO_TIMEOUT).await;
    }
    if call.closed().is_none() {
        let _ = call.stop(Duration::from_secs(5)).await;
    }

    let rec = record(&call, t0, Some(webhook), turns);
    let analysis = report::analyze(&rec);
    println!();
    println!("Timeline (ms since the webhook)");
    print!("{}", report::render_timeline(&analysis));
    println!();
    println!("Summary");
    print!("{}", report::render_rows(&report::summary_rows(&analysis)));
    if let Some(path) = &args.out {
        let from = analysis.start_at.unwrap_or(t0);
        let until = analysis.end.as_ref().map_or(rec.horizon, |(at, _)| *at);
        let pcm = report::heard_pcm(&rec.segments, &call.received_audio(), from, until);
        crate::wav::write_pcm16(path, &pcm)?;
        println!(
            "\nWrote what the caller heard to {} ({} s, 8 kHz 16-bit mono).",
            path.display(),
            pcm.len() / 8000
        );
    }
    if !analysis.violations.is_empty() {
        bail!(
            "the server sent {} invalid message(s)",
            analysis.violations.len()
        );
    }
    Ok(())
}
