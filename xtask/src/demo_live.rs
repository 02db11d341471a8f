//! `cargo xtask demo --backend live`: one GPT-Live call, offline.
//!
//! Starts the test kit's mock GPT-Live server and the real server (`agent.backend = "live"`,
//! responses delegation, a demo `opening_hours` tool) in this process, then plays Twilio placing
//! one call: the greeting is said after `session.started`; the caller asks, the model answers;
//! the caller talks over the next answer and the model stops by itself (nothing is cleared or
//! truncated: the demo measures how much of the answer the caller still heard after the model
//! stopped); the caller asks for the opening hours and the backend's function call runs on the
//! server's tool; the caller hangs up and the session is closed with `session.close`. It prints
//! the timeline and checks, and fails when a check fails. Everything waits on recorded events.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use bridge_core::tools::{ToolDefinition, ToolExecutor, ToolInvocation, ToolOutput};
use phone_agent_server::Server;
use phone_agent_server::config::Config;
use testkit::audio::{CallerAudio, FRAME_BYTES, SILENCE, speech};
use testkit::live::{LiveSocketEnd, LiveTurn, MockLive, Utterance};
use testkit::twilio::{ActiveCall, CallSimulator};
use tokio::net::TcpListener;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(10);
const PUBLIC_URL: &str = "https://demo.phone-agent.example";
const GREETING: &str = "Hi, thanks for calling the phone-agent demo line! How can I help?";
const HOURS: &str = r#"{"weekdays":"9-18","saturday":"10-16","sunday":"closed"}"#;

/// The demo's one tool.
struct DemoTools;

#[async_trait]
impl ToolExecutor for DemoTools {
    fn definitions(&self) -> Vec<ToolDefinition> {
        vec![ToolDefinition {
            name: "opening_hours".into(),
            description: "The shop's opening hours.".into(),
            parameters: serde_json::json!({"type": "object", "properties": {}}),
        }]
    }

    async fn call(&self, invocation: ToolInvocation) -> ToolOutput {
        match invocation.name.as_str() {
            "opening_hours" => ToolOutput {
                output: HOURS.into(),
                action: None,
            },
            other => ToolOutput::error(format!("unknown tool {other}")),
        }
    }
}

/// What the demo measured.
#[derive(Debug, Default)]
struct Report {
    lines: Vec<String>,
    checks: Vec<(String, bool)>,
}

impl Report {
    fn line(&mut self, at: Duration, text: impl Into<String>) {
        self.lines
            .push(format!("{:>8.3} s  {}", at.as_secs_f64(), text.into()));
    }

    fn check(&mut self, what: &str, ok: bool) {
        self.checks.push((what.to_owned(), ok));
    }
}

/// Runs the GPT-Live demo; prints its report.
pub(crate) fn run(verbose: bool) -> anyhow::Result<()> {
    if verbose {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter("phone_agent_server=info,bridge_core=info")
            .try_init();
    }
    let report = execute()?;
    println!(
        "GPT-Live demo (mock GPT-Live server, real phone-agent server, simulated Twilio call)"
    );
    println!();
    for line in &report.lines {
        println!("{line}");
    }
    println!();
    let mut failed = Vec::new();
    for (what, ok) in &report.checks {
        println!("  [{}] {what}", if *ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(what.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} demo check(s) failed: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

/// Runs the scenario on a single-threaded runtime.
fn execute() -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(scenario())
}

/// Whether `received` is the output track `sent` (800-byte deltas) in order, byte for byte,
/// with at most some all-silent deltas left out (the bridge drops silence while the track
/// runs ahead of real time).
fn track_relayed(sent: &[u8], received: &[u8]) -> bool {
    let mut at = 0;
    for delta in sent.chunks(800) {
        if at == received.len() {
            break;
        }
        if received[at..].starts_with(delta) {
            at += delta.len();
        } else if !delta.iter().all(|&b| b == SILENCE) {
            return false;
        }
    }
    at == received.len()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// When the caller hears output byte `pos` (offset in the track they received).
fn plays_at(call: &ActiveCall, pos: usize) -> Option<Instant> {
    call.played_segments()
        .iter()
        .find(|s| s.offset <= pos && pos < s.offset + s.len)
        .map(|s| s.starts_at + Duration::from_micros((pos - s.offset) as u64 * 125))
}

async fn scenario() -> anyhow::Result<Report> {
    let mut r = Report::default();
    let mock = MockLive::builder()
        .script([
            LiveTurn::say(
                "We are a demo shop; we sell nothing at all, very politely.",
                2000,
            ),
            LiveTurn::say(
                "Let me tell you everything about our long and eventful history, which began",
                4000,
            ),
            LiveTurn::call("opening_hours", "{}"),
            LiveTurn::say("Goodbye!", 600),
        ])
        .caller_transcripts(&[
            " What do you sell?",
            " Tell me about",
            " Sorry, when are you open?",
            " Thanks, bye!",
        ])
        .commentary_ms(2500)
        .start()
        .await
        .context("starting the mock GPT-Live server")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let token = "0123456789abcdef0123456789abcdef".to_owned();
    let prompt = crate::ci::workspace_root().join("config/agent_prompt.md");
    let env: HashMap<String, String> = [
        ("PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("TWILIO_AUTH_TOKEN", token.clone()),
        (
            "OPENAI_API_KEY",
            "sk-demo-offline-not-a-real-key".to_owned(),
        ),
        ("OPENAI_BASE_URL", mock.base_url()),
        ("PROMPT_PATH", prompt.display().to_string()),
        ("PHONE_AGENT_AGENT__BACKEND", "live".to_owned()),
        ("PHONE_AGENT_LIVE__GREETING", GREETING.to_owned()),
        ("PHONE_AGENT_METRICS__BIND", "off".to_owned()),
        // No call records: nothing written outside temp dirs.
        ("PHONE_AGENT_DATABASE__URL", "off".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_env_map(&env).context("configuring the server")?;
    let server = Server::new(config)
        .with_tools(Arc::new(DemoTools))
        .serve(listener)
        .context("starting the server")?;
    let sim = CallSimulator::new(&format!("http://{addr}"))
        .public_url(PUBLIC_URL)
        .auth_token(&token);

    let t0 = Instant::now();
    let call = sim
        .call()
        .stamp_frames(true)
        .connect()
        .await
        .context("placing the call")?;
    let session = mock.wait_for_session(1, WAIT).await?;
    let id = session.wait_for_started(WAIT).await?;
    let started = session
        .wait_for_server_event("session.started", 1, WAIT)
        .await?
        .at;
    r.line(
        started - t0,
        format!(
            "session.started: id {id}, expires_at {}",
            session.expires_at().unwrap_or(0)
        ),
    );
    let greet = session
        .wait_for_event_type("session.commentary.append", WAIT)
        .await?;
    r.line(
        greet.at - t0,
        format!(
            "greeting appended as commentary: {:?}",
            greet.json["content"]
        ),
    );
    r.check(
        "greeting sent verbatim after session.started",
        greet.at >= started && greet.json["content"] == GREETING,
    );

    // The greeting, then a question and its answer.
    let greeting = session.wait_for_utterance_end(1, WAIT).await?;
    wait_received(&call, &session_end(&greeting)).await?;
    r.line(t0.elapsed(), format!("agent said: {:?}", greeting.text));
    call.send_audio(CallerAudio::new().speech(700).silence(200).into_bytes());
    let answer = session.wait_for_utterance_end(2, WAIT).await?;
    wait_received(&call, &session_end(&answer)).await?;
    r.line(
        t0.elapsed(),
        format!("caller asked; agent said: {:?}", answer.text),
    );

    // The caller talks over the next answer: the model stops by itself.
    call.send_audio(speech(500));
    let long = session.wait_for_utterance(3, WAIT).await?;
    call.wait_received_audio(long.started_ms as usize * 8 + 8000, WAIT)
        .await?;
    call.send_audio(CallerAudio::new().speech(800).silence(100).into_bytes());
    let cut = session.wait_for_utterance_end(3, WAIT).await?;
    let spoken_end = cut.started_ms as usize * 8 + cut.spoken_bytes;
    call.wait_received_audio(spoken_end + 1600, WAIT).await?;
    call.wait_heard(spoken_end + 800, WAIT).await?;
    let stopped = cut.interrupted_at;
    let last_heard = plays_at(&call, spoken_end.saturating_sub(1));
    let after_stop = match (stopped, last_heard) {
        (Some(s), Some(h)) => h.saturating_duration_since(s),
        _ => Duration::ZERO,
    };
    r.line(
        t0.elapsed(),
        format!(
            "caller talked over the answer; the model stopped after {} ms of it; the caller heard its last byte {} ms after the stop (no clear, no truncate)",
            cut.spoken_bytes / 8,
            after_stop.as_millis()
        ),
    );
    r.check(
        "the model stopped by itself (no clear sent)",
        cut.interrupted_at_ms.is_some()
            && call.count_events(|e| matches!(e, testkit::twilio::CallEvent::ClearReceived { .. }))
                == 0,
    );

    // A tool round trip through responses delegation.
    let delegation = session.wait_for_delegation_answered(1, WAIT).await?;
    r.line(
        t0.elapsed(),
        format!(
            "backend called {} -> {}; response.create sent once",
            delegation.name.as_deref().unwrap_or("?"),
            delegation.outputs.join("")
        ),
    );
    r.check(
        "tool output returned, then one response.create",
        delegation.outputs == [HOURS] && session.response_creates() == 1,
    );
    let result = session.wait_for_utterance_end(4, WAIT).await?;
    wait_received(&call, &session_end(&result)).await?;
    r.line(t0.elapsed(), "agent said the tool's result");

    // Goodbye and hang-up.
    call.send_audio(CallerAudio::new().speech(500).silence(200).into_bytes());
    let bye = session.wait_for_utterance_end(5, WAIT).await?;
    wait_received(&call, &session_end(&bye)).await?;
    call.stop(WAIT).await?;
    let end = session.wait_closed(WAIT).await?;
    r.line(
        t0.elapsed(),
        format!(
            "caller hung up; session.closed ({}); socket {end:?}",
            session.closed_reason().unwrap_or_default()
        ),
    );
    r.check(
        "session.close sent, session.closed read, closing handshake completed",
        session.close_requested()
            && end
                == LiveSocketEnd::MockClosed {
                    code: None,
                    handshake_completed: true,
                },
    );

    // Audio both ways.
    let sent = session.sent_audio();
    let received = call.received_audio();
    r.check(
        "agent -> caller byte-identical (the continuous track; only silence dropped while ahead)",
        !received.is_empty() && track_relayed(&sent, &received),
    );
    r.check(
        "every utterance reached the caller in full (the interrupted one up to its stop)",
        [&greeting, &answer, &result, &bye]
            .iter()
            .all(|u| contains(&received, &u.audio))
            && contains(&received, &cut.audio[..cut.spoken_bytes]),
    );
    let frames: Vec<u8> = session
        .received_audio()
        .chunks(FRAME_BYTES)
        .filter(|f| !f.iter().all(|&b| b == SILENCE))
        .flatten()
        .copied()
        .collect();
    let stamps = testkit::audio::find_stamps(&frames);
    r.check(
        "caller -> agent: every frame, in order, from the first",
        stamps.first().map(|s| s.1) == Some(1)
            && stamps.windows(2).all(|w| w[1].1 == w[0].1 + 1)
            && stamps.len() as u64 == call.frames_sent(),
    );
    r.check(
        "no protocol violation on either side",
        session.violations().is_empty() && call.violations().is_empty(),
    );
    server.shutdown();
    let clean = tokio::time::timeout(WAIT, server.wait())
        .await
        .is_ok_and(|report| report.clean);
    r.check("server shut down cleanly", clean);
    let mut summary = String::new();
    let _ = write!(
        summary,
        "{} caller frames, {:.1} s of agent audio received",
        call.frames_sent(),
        received.len() as f64 / 8000.0
    );
    r.line(t0.elapsed(), summary);
    Ok(r)
}

/// The byte offset in the output track where `u` ends (as far as it was spoken).
fn session_end(u: &Utterance) -> usize {
    u.started_ms as usize * 8 + u.spoken_bytes
}

async fn wait_received(call: &ActiveCall, bytes: &usize) -> anyhow::Result<()> {
    call.wait_received_audio(*bytes, WAIT)
        .await
        .context("waiting for the agent's audio to reach the caller")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_live_demo_passes_every_check() {
        let _turn = crate::IN_PROCESS_SERVER.blocking_lock();
        let report = super::execute().expect("the demo runs");
        let failed: Vec<_> = report.checks.iter().filter(|(_, ok)| !ok).collect();
        assert!(failed.is_empty(), "{failed:?}\n{}", report.lines.join("\n"));
        assert_eq!(report.checks.len(), 9);
    }
}
