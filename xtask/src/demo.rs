//! `cargo xtask demo`: the whole loop in one command, offline.
//!
//! Starts the test kit's mock OpenAI Realtime server and the real phone-agent server in this
//! process (realtime back end pointed at the mock, a dummy API key, Twilio signature validation
//! on with a freshly generated auth token), then plays Twilio placing one call: the caller
//! listens to the greeting, asks something, interrupts the answer mid-sentence, asks again and
//! says goodbye; the agent calls its `end_call` tool, says goodbye, and once the goodbye has been
//! heard the server hangs up through the (mock) Twilio REST API. It prints the timeline and what was measured on every side — the
//! caller's latencies, the barge-in and the truncation, whether the audio crossed the bridge
//! byte-identical in both directions, the mock agent's records and the server's own call
//! summary — and fails when any check fails.
//!
//! Everything waits on recorded events (no sleeps), so the outcome is deterministic; the
//! latencies are real measurements over loopback TCP and vary by a few milliseconds.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use phone_agent_server::Server;
use phone_agent_server::config::Config;
use testkit::audio::{CallerAudio, speech};
use testkit::openai::{AssistantItem, ClosedBy, MockRealtime, ResponseScript, Script, Truncation};
use testkit::rest::{MockTwilioRest, RestConfig};
use testkit::twilio::{ActiveCall, CallEvent, CallSimulator, Signing};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::capture::{LogCapture, LogEvent};
use crate::report::{self, CallAnalysis, audio_ms, ms, secs};

/// Arguments of `cargo xtask demo`.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args)]
pub(crate) struct Args {
    /// Also write what the caller heard to this WAV file (8 kHz, 16-bit, mono).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Also print the embedded server's log (info and above) to stderr.
    #[arg(long)]
    pub(crate) verbose: bool,
    /// The back end of the demo call: `realtime` (OpenAI Realtime) or `live` (GPT-Live).
    #[arg(long, value_enum, default_value_t = DemoBackend::Realtime)]
    pub(crate) backend: DemoBackend,
    /// Print the operator console's URL and sign-in token before the call, and keep the server
    /// up for a minute after it, so the call can be watched live and its page looked at.
    #[arg(long)]
    pub(crate) console: bool,
    /// Connect the agent when the stream starts instead of pre-warming its session at /voice
    /// (`agent.prewarm = false`), to compare the greeting's latency.
    #[arg(long)]
    pub(crate) no_prewarm: bool,
}

/// How long `--console` keeps the server up after the call.
const CONSOLE_LINGER: Duration = Duration::from_secs(60);

/// The back ends the demo can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum DemoBackend {
    /// OpenAI Realtime (turns, barge-in with clear and truncate).
    #[default]
    Realtime,
    /// OpenAI GPT-Live (full duplex, the model stops by itself).
    Live,
}

/// Upper bound of any single wait (a hang fails the demo instead of blocking it).
const WAIT: Duration = Duration::from_secs(10);

/// The public URL the simulated Twilio signs for (the server's `PUBLIC_URL`).
const PUBLIC_URL: &str = "https://demo.phone-agent.example";

/// The silence the agent's voice-activity detection waits for before answering (the server's
/// default `silence_duration_ms`).
const VAD_SILENCE_MS: u64 = 500;

/// The scripted conversation: `(agent transcript, agent ms)` per response and
/// `(caller words, caller ms of speech)` per caller turn.
const GREETING: (&str, u32) = (
    "Hi, thanks for calling the phone-agent demo line! How can I help?",
    1500,
);
const TURN_1: (&str, u32) = ("What are your opening hours?", 600);
const ANSWER_1: (&str, u32) = (
    "Sure! We're open Monday to Friday from nine to six, on Saturdays from ten to four, and on Sundays and public holidays we are closed, except in December when",
    3000,
);
/// The caller's pause before answering the agent (not before interrupting it).
const PAUSE_MS: u32 = 200;
/// How much of the first answer the caller hears before interrupting it.
const BARGE_IN_AFTER_MS: usize = 700;
const TURN_2: (&str, u32) = ("Sorry, just Saturdays?", 500);
const ANSWER_2: (&str, u32) = ("On Saturdays we're open from ten to four.", 1000);
const TURN_3: (&str, u32) = ("Great, thanks. Bye!", 400);
const ANSWER_3: (&str, u32) = ("You're welcome. Goodbye!", 700);
/// The agent's tool call after the caller's goodbye (the built-in `end_call`).
const END_CALL_ARGS: &str = r#"{"reason":"the caller said goodbye"}"#;

/// The mock agent's script for the demo.
fn script() -> Script {
    Script::new()
        .then(ResponseScript::say(GREETING.0, GREETING.1))
        .then(ResponseScript::say(ANSWER_1.0, ANSWER_1.1))
        .then(ResponseScript::say(ANSWER_2.0, ANSWER_2.1))
        .then(ResponseScript::function_call("end_call", END_CALL_ARGS))
        .then(ResponseScript::say(ANSWER_3.0, ANSWER_3.1))
        .no_fallback()
}

/// Runs `cargo xtask demo`.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    if args.backend == DemoBackend::Live {
        if args.out.is_some() || args.console {
            bail!("--out and --console are only supported with --backend realtime");
        }
        return crate::demo_live::run(args.verbose);
    }
    let report = execute(
        args.verbose,
        args.console.then_some(CONSOLE_LINGER),
        !args.no_prewarm,
    )?;
    print!("{}", report.render());
    if let Some(path) = &args.out {
        crate::wav::write_pcm16(path, &report.heard_pcm)?;
        println!(
            "Wrote what the caller heard to {} ({:.1} s, 8 kHz 16-bit mono).",
            path.display(),
            report.heard_pcm.len() as f64 / 8000.0
        );
    }
    let failed = report.failures();
    if !failed.is_empty() {
        bail!(
            "{} demo check(s) failed: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

/// Runs the demo on a single-threaded runtime with the server's log events captured (and
/// printed to stderr when `verbose`). With `console`, prints the console's URL first and keeps
/// the server up that long after the call.
pub(crate) fn execute(
    verbose: bool,
    console: Option<Duration>,
    prewarm: bool,
) -> anyhow::Result<DemoReport> {
    let capture = LogCapture::default();
    let printer = verbose.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .with_filter(tracing_subscriber::EnvFilter::new(
                "phone_agent_server=info,bridge_core=info,openai_realtime=info",
            ))
    });
    let subscriber = tracing_subscriber::registry()
        .with(capture.clone().with_filter(LogCapture::filter()))
        .with(printer);
    // A thread-local subscriber: it sees every task because the runtime has one thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(scenario(capture, console, prewarm))
}

/// The call's record from the admin API, pretty-printed, once the store has written it
/// (bounded wait); `None` if it never appears.
async fn stored_record(addr: std::net::SocketAddr, call_sid: &str, token: &str) -> Option<String> {
    let url = format!("http://{addr}/api/calls/{call_sid}");
    let auth = format!("Bearer {token}");
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Ok(r) = testkit::http::request(
            http::Method::GET,
            &url,
            &[("authorization", auth.as_str())],
            "",
        )
        .await
            && r.status == 200
            && let Ok(v) = r.json()
            && v["end_reason"].is_string()
        {
            return serde_json::to_string_pretty(&v).ok();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A token that only this run knows (32 hex digits, like a Twilio auth token).
fn generate_token() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut token = String::with_capacity(32);
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        let _ = write!(token, "{:016x}", h.finish());
    }
    token
}

/// What the demo measured.
#[derive(Debug)]
pub(crate) struct DemoReport {
    mock_url: String,
    server_url: String,
    forged_status: u16,
    forged_opened_session: bool,
    analysis: CallAnalysis,
    items: Vec<AssistantItem>,
    /// Greeting bytes the caller had heard when they first spoke.
    greeting_heard: usize,
    /// The agent called `end_call` and got its result.
    tool_called: bool,
    /// Everything the agent said had been heard when the REST hang-up arrived.
    goodbye_heard_at_hang_up: bool,
    /// The server hung up with `Status=completed`, accepted by the mock REST API.
    hung_up_over_rest: bool,
    truncation: Option<Truncation>,
    /// Bytes of the truncated item the caller had heard when they started talking over it, and
    /// when the clear arrived.
    truncated_item_heard: Option<(usize, usize)>,
    caller_relay: CallerRelay,
    agent_relay: AgentRelay,
    session_closed: Option<(ClosedBy, Duration)>,
    mock_violations: Vec<String>,
    server: ServerView,
    heard_pcm: Vec<i16>,
    elapsed: Duration,
    /// The call's record as the server stored it (the SQLite file, the pretty-printed JSON).
    stored_record: Option<(String, String)>,
}

/// The server's own view, from its log events.
#[derive(Debug, Default)]
struct ServerView {
    agent_ready: Option<LogEvent>,
    first_audio: Vec<LogEvent>,
    call_ended: Option<LogEvent>,
    shutdown_clean: bool,
}

/// Waits until every byte of `item` has reached the caller, then until it has played.
async fn wait_item_played(call: &ActiveCall, item: &[u8]) -> anyhow::Result<()> {
    let tail = &item[item.len().saturating_sub(testkit::audio::FRAME_BYTES)..];
    let media = |e: &CallEvent| matches!(e, CallEvent::MediaReceived { .. });
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = call.count_events(media);
        if contains(&call.received_audio(), tail) {
            break;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        call.wait_for_nth(media, seen + 1, remaining)
            .await
            .context("waiting for the agent's audio to reach the caller")?;
    }
    call.wait_playout_idle(WAIT).await?;
    // The server learns that playback finished from the echo of its last mark.
    if let Some(last) = call.marks().last() {
        call.wait_mark_echoed(&last.name, WAIT).await?;
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The audio of the `n`-th (0-based) assistant item, once its response is done.
fn item_audio(items: &[AssistantItem], n: usize) -> anyhow::Result<Vec<u8>> {
    items
        .get(n)
        .map(|i| i.audio.clone())
        .with_context(|| format!("the mock agent produced no item #{}", n + 1))
}

async fn scenario(
    capture: LogCapture,
    console: Option<Duration>,
    prewarm: bool,
) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let mock = MockRealtime::builder()
        .script(script())
        .start()
        .await
        .context("starting the mock OpenAI Realtime server")?;
    let token = generate_token();
    let rest = MockTwilioRest::start_with(RestConfig {
        auth_token: token.clone(),
        ..RestConfig::default()
    })
    .await
    .context("starting the mock Twilio REST API")?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let prompt = crate::ci::workspace_root().join("config/agent_prompt.md");
    // The call's record goes to a throwaway SQLite file, read back through the admin API.
    let database_dir =
        std::env::temp_dir().join(format!("phone-agent-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&database_dir);
    let database = database_dir.join("calls.db");
    let admin_token = generate_token();
    let env: HashMap<String, String> = [
        ("PUBLIC_URL", PUBLIC_URL.to_string()),
        ("TWILIO_AUTH_TOKEN", token.clone()),
        (
            "OPENAI_API_KEY",
            "sk-demo-offline-not-a-real-key".to_string(),
        ),
        ("OPENAI_BASE_URL", mock.base_url()),
        ("PROMPT_PATH", prompt.display().to_string()),
        ("PHONE_AGENT_AGENT__BACKEND", "realtime".to_string()),
        ("PHONE_AGENT_METRICS__BIND", "off".to_string()),
        ("TWILIO_ACCOUNT_SID", rest.account_sid().to_string()),
        ("PHONE_AGENT_TWILIO__REST_BASE_URL", rest.base_url()),
        ("PHONE_AGENT_CALL_CONTROL__END_CALL", "true".to_string()),
        ("PHONE_AGENT_DATABASE__URL", database.display().to_string()),
        ("PHONE_AGENT_ADMIN__TOKEN", admin_token.clone()),
        ("PHONE_AGENT_AGENT__PREWARM", prewarm.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = Config::from_env_map(&env).context("configuring the server")?;
    let server = Server::new(config)
        .serve(listener)
        .context("starting the server")?;
    let server_url = format!("http://{addr}");
    if console.is_some() {
        println!("Console: {server_url}/console (sign in with the admin token {admin_token})\n");
    }
    let sim = CallSimulator::new(&server_url)
        .public_url(PUBLIC_URL)
        .rest(&rest);

    // A webhook signed with another token is refused before any agent session opens.
    let forged = sim
        .call()
        .signature(Signing::WithToken("0".repeat(32)))
        .place()
        .await
        .context("posting a forged webhook")?;
    let forged_status = forged.status();
    let forged_opened_session = !mock.sessions().is_empty();

    // The call.
    let t0 = Instant::now();
    let (placed, webhook) = crate::call::place(sim.call(), true).await?;
    let call = placed
        .open_stream()
        .await
        .context("opening the media stream")?;
    let session = mock.wait_for_session(1, WAIT).await?;
    let mut turns: Vec<Vec<u8>> = Vec::new();

    // 1. The greeting, heard in full.
    session.wait_for_response_done(1, WAIT).await?;
    let greeting = item_audio(&session.assistant_items(), 0)?;
    wait_item_played(&call, &greeting).await?;

    // 2. The caller asks; the agent answers; the caller interrupts it mid-sentence.
    let ask = CallerAudio::new()
        .silence(PAUSE_MS)
        .speech(TURN_1.1)
        .into_bytes();
    call.send_audio(ask.clone());
    turns.push(ask);
    call.wait_heard(greeting.len() + BARGE_IN_AFTER_MS * 8, WAIT)
        .await
        .context("waiting for the caller to hear the first answer")?;
    let interrupt = speech(TURN_2.1);
    call.send_audio(interrupt.clone());
    turns.push(interrupt);
    let clear = call
        .wait_for(|e| matches!(e, CallEvent::ClearReceived { .. }), WAIT)
        .await
        .context("waiting for the server to clear the caller's playback")?;
    let truncation = session.wait_for_truncation(1, WAIT).await.ok();

    // 3. The answer to the interruption, heard in full.
    session.wait_for_response_done(3, WAIT).await?;
    wait_item_played(&call, &item_audio(&session.assistant_items(), 2)?).await?;

    // 4. The caller says goodbye; the agent calls end_call, says goodbye, and once the goodbye
    //    has been heard the server hangs up over Twilio REST (the simulator then stops the
    //    stream, as Twilio does).
    let bye = CallerAudio::new()
        .silence(PAUSE_MS)
        .speech(TURN_3.1)
        .into_bytes();
    call.send_audio(bye.clone());
    turns.push(bye);
    session.wait_for_response_done(5, WAIT).await?;
    let goodbye = item_audio(&session.assistant_items(), 3)?;
    let hang_up = rest
        .wait_for_update(call.call_sid(), WAIT)
        .await
        .context("waiting for the server to hang up over Twilio REST")?;
    call.wait_closed(WAIT).await?;
    let tool_call = session.function_calls().into_iter().next();

    // The agent session ends with the call; the server reports the call.
    let closed = session.wait_closed(WAIT).await.ok();
    let call_ended = capture.wait_for("call ended", WAIT).await;
    let stored_record = stored_record(addr, call.call_sid(), &admin_token).await;
    if let Some(linger) = console {
        println!(
            "The demo call in the console: {server_url}/console/calls/{} (history: \
             {server_url}/console/history). The server stays up for {} s.\n",
            call.call_sid(),
            linger.as_secs()
        );
        tokio::time::sleep(linger).await;
    }
    server.shutdown();
    let shutdown_clean = tokio::time::timeout(WAIT, server.wait())
        .await
        .is_ok_and(|r| r.clean);
    let _ = std::fs::remove_dir_all(&database_dir);

    let rec = crate::call::record(&call, t0, Some(webhook), turns);
    let mut analysis = report::analyze(&rec);
    let playout_end = call.playout_ends_at();
    // What the caller cannot see: the tool call and the REST hang-up.
    if let Some(tool) = &tool_call
        && let Some(at) = tool.output_at
    {
        analysis.lines.push(report::Line {
            at,
            label: "tool",
            text: format!(
                "agent calls {}({}) -> {}",
                tool.name,
                tool.arguments,
                tool.output.as_deref().unwrap_or("")
            ),
        });
    }
    analysis.lines.push(report::Line {
        at: hang_up.at,
        label: "REST",
        text: format!(
            "server POSTs Calls/{}.json {} -> {} ({} ms after the caller heard the goodbye's last byte)",
            call.call_sid(),
            hang_up
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
            hang_up.status,
            playout_end.map_or(0, |end| ms(hang_up.at.saturating_duration_since(end))),
        ),
    });
    analysis.lines.sort_by_key(|l| l.at);
    // The last byte the caller received was the goodbye's; it had played before the hang-up.
    let goodbye_heard_at_hang_up = call.received_audio().ends_with(&goodbye)
        && playout_end.is_some_and(|end| end <= hang_up.at);
    let stop_at = analysis.stop_at;
    let items = session.assistant_items();
    let received = call.received_audio();
    let agent_relay = AgentRelay::check(&items, &received);
    let caller_relay = CallerRelay::check(
        &report::caller_bytes_sent(&rec.timeline, &rec.caller_turns),
        &session.received_audio(),
        sent_before_last_echo(&rec.timeline, &rec.caller_turns),
    );
    let truncated_item_heard = truncation.as_ref().and_then(|t| {
        let index = items.iter().position(|i| i.item_id == t.item_id)?;
        let offset = *agent_relay.offsets.get(index)?;
        let len = items[index].audio.len();
        let heard_at = |at| call.heard_at(at).len().saturating_sub(offset).min(len);
        let spoke = analysis.caller_turns.get(1)?.speech_start?;
        Some((heard_at(spoke), heard_at(clear.at)))
    });
    let greeting_heard = analysis
        .caller_turns
        .first()
        .and_then(|t| t.speech_start)
        .map_or(0, |spoke| {
            call.heard_at(spoke)
                .len()
                .min(items.first().map_or(0, |i| i.audio.len()))
        });
    let from = analysis.start_at.unwrap_or(t0);
    let until = analysis.end.as_ref().map_or(rec.horizon, |(at, _)| *at);
    Ok(DemoReport {
        mock_url: mock.base_url(),
        server_url,
        forged_status,
        forged_opened_session,
        truncation,
        truncated_item_heard,
        caller_relay,
        agent_relay,
        session_closed: closed.map(|c| {
            let after = stop_at.map_or(Duration::ZERO, |s| c.at.saturating_duration_since(s));
            (c.by, after)
        }),
        mock_violations: session
            .violations()
            .iter()
            .map(|v| format!("{:?}: {}", v.kind, v.detail))
            .collect(),
        server: ServerView {
            agent_ready: capture.events("agent ready").into_iter().next(),
            first_audio: capture.events("first agent audio"),
            call_ended,
            shutdown_clean,
        },
        heard_pcm: report::heard_pcm(&rec.segments, &received, from, until),
        greeting_heard,
        tool_called: tool_call.is_some_and(|t| {
            t.name == "end_call" && t.output.is_some_and(|o| o.contains("ending"))
        }),
        goodbye_heard_at_hang_up,
        hung_up_over_rest: hang_up.succeeded() && hang_up.param("Status") == Some("completed"),
        items,
        analysis,
        elapsed: started.elapsed(),
        stored_record: stored_record.map(|r| (database.display().to_string(), r)),
    })
}

/// The caller bytes sent before the caller's last mark echo.
///
/// The server hangs up when the echo of the goodbye's last mark tells it the goodbye has
/// played (or later, at the goodbye's `response.done`), and it reads the stream in order: every
/// frame sent before that echo was read before the call ended and relayed. The caller keeps
/// streaming until Twilio (the simulator) learns of the REST hang-up; the frames it sends
/// after the echo reach a call that has already ended and are not relayed — how many depends
/// only on how fast the hang-up round trip is, not on anything the server guarantees.
fn sent_before_last_echo(
    timeline: &[testkit::twilio::TimelineEntry],
    caller_turns: &[Vec<u8>],
) -> usize {
    let end = timeline
        .iter()
        .rposition(|e| matches!(e.event, CallEvent::MarkEchoed { .. }))
        .map_or(0, |i| i + 1);
    report::caller_bytes_sent(&timeline[..end], caller_turns).len()
}

/// How the caller's audio reached the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallerRelay {
    /// Bytes the caller sent.
    pub(crate) sent: usize,
    /// Bytes the agent received.
    pub(crate) received: usize,
    /// Where the received bytes start in the sent ones, if they are a contiguous run of them.
    pub(crate) offset: Option<usize>,
    /// Bytes sent before the server hung up (see [`sent_before_last_echo`]): these must arrive.
    pub(crate) before_hang_up: usize,
    /// Whether what was sent but not received is idle silence only.
    pub(crate) missing_is_silence: bool,
}

impl CallerRelay {
    /// Compares what the caller sent with what the agent received (frames are never split,
    /// so only frame-aligned offsets are tried); `before_hang_up` bytes were sent before the
    /// server hung up.
    pub(crate) fn check(sent: &[u8], received: &[u8], before_hang_up: usize) -> CallerRelay {
        let offset = (0..=sent.len().saturating_sub(received.len()))
            .step_by(testkit::audio::FRAME_BYTES)
            .find(|&o| sent[o..].starts_with(received));
        let missing_is_silence = sent
            .get(received.len()..)
            .is_some_and(|tail| tail.iter().all(|&b| b == testkit::audio::SILENCE));
        CallerRelay {
            sent: sent.len(),
            received: received.len(),
            offset,
            before_hang_up,
            missing_is_silence,
        }
    }

    /// Whether every byte arrived, unchanged and in order.
    pub(crate) fn identical(&self) -> bool {
        self.offset == Some(0) && self.sent == self.received
    }

    /// What the server guarantees: everything sent until it hung up arrived unchanged and in
    /// order, from the first byte; what it did not relay was sent after the hang-up and was
    /// idle silence.
    pub(crate) fn complete_until_hang_up(&self) -> bool {
        self.offset == Some(0) && self.received >= self.before_hang_up && self.missing_is_silence
    }
}

/// How the agent's audio reached the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgentRelay {
    /// Per assistant item: bytes the agent sent.
    pub(crate) sent: Vec<usize>,
    /// Per item: bytes delivered, as an unchanged prefix of the item.
    pub(crate) delivered: Vec<usize>,
    /// Per item: offset of its first delivered byte in the caller's received audio.
    pub(crate) offsets: Vec<usize>,
    /// Whether the caller received nothing but those prefixes, in order.
    pub(crate) exact: bool,
}

impl AgentRelay {
    /// Matches the caller's received audio against the items in order: each item contributes
    /// an unchanged prefix (all of it, unless the server dropped audio of an interrupted
    /// response).
    pub(crate) fn check(items: &[AssistantItem], received: &[u8]) -> AgentRelay {
        let mut pos = 0;
        let mut relay = AgentRelay {
            sent: Vec::new(),
            delivered: Vec::new(),
            offsets: Vec::new(),
            exact: false,
        };
        for item in items {
            let rest = &received[pos..];
            let n = item
                .audio
                .iter()
                .zip(rest)
                .take_while(|(a, b)| a == b)
                .count();
            relay.sent.push(item.audio.len());
            relay.delivered.push(n);
            relay.offsets.push(pos);
            pos += n;
        }
        relay.exact = pos == received.len();
        relay
    }

    /// Whether every byte of every item arrived, unchanged and in order.
    pub(crate) fn identical(&self) -> bool {
        self.exact && self.sent == self.delivered
    }
}

/// Cuts `text` at the word boundary nearest the `fraction` of its length (what was heard).
fn cut_text(text: &str, fraction: f64) -> String {
    let target = (text.chars().count() as f64 * fraction.clamp(0.0, 1.0)).round() as usize;
    let words: Vec<&str> = text.split(' ').collect();
    let mut out = String::new();
    for w in words {
        let next = if out.is_empty() {
            w.chars().count()
        } else {
            out.chars().count() + 1 + w.chars().count()
        };
        if next > target && !out.is_empty() {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    format!("{}…", out.trim_end_matches([',', '.', '!', '?']))
}

impl DemoReport {
    /// The checks and whether each passed.
    pub(crate) fn checks(&self) -> Vec<(String, bool)> {
        let a = &self.analysis;
        let barge_ins: Vec<_> = a.barge_ins().collect();
        // The truncation point must lie between what the caller had heard when they started
        // talking and when their playback was cut (give or take one 20 ms frame).
        let truncation_ok = match (&self.truncation, self.truncated_item_heard) {
            (Some(t), Some((spoke, cleared))) => {
                t.accepted
                    && t.audio_end_ms + 20 >= audio_ms(spoke)
                    && t.audio_end_ms <= audio_ms(cleared) + 20
            }
            _ => false,
        };
        let server_reason = self
            .server
            .call_ended
            .as_ref()
            .and_then(|e| e.field("end_reason"));
        vec![
            (
                "a forged webhook is refused (403) before any agent session opens".into(),
                self.forged_status == 403 && !self.forged_opened_session,
            ),
            (
                "the greeting played in full before the caller spoke".into(),
                a.greeting.is_some()
                    && self.items.first().is_some_and(|g| {
                        !g.audio.is_empty() && self.greeting_heard == g.audio.len()
                    }),
            ),
            (
                "every caller turn was answered".into(),
                a.caller_turns.len() == 3 && a.caller_turns.iter().all(|t| t.reply.is_some()),
            ),
            (
                "the barge-in cleared the caller's playback".into(),
                barge_ins.len() == 1 && a.caller_turns[1].over_agent,
            ),
            (
                "the agent's answer was truncated at what the caller had heard".into(),
                truncation_ok,
            ),
            (
                "caller → agent audio arrived byte-identical (all of it until the hang-up)".into(),
                self.caller_relay.complete_until_hang_up(),
            ),
            (
                "agent → caller audio arrived byte-identical".into(),
                self.agent_relay.exact,
            ),
            (
                "no protocol violations (Twilio side and OpenAI side)".into(),
                a.violations.is_empty() && self.mock_violations.is_empty(),
            ),
            (
                "the agent's end_call tool call was answered".into(),
                self.tool_called,
            ),
            (
                "the server hung up over Twilio REST only after the goodbye was heard".into(),
                self.hung_up_over_rest && self.goodbye_heard_at_hang_up,
            ),
            (
                "the agent session was closed after the hang-up".into(),
                matches!(self.session_closed, Some((ClosedBy::ClientClose { .. }, _))),
            ),
            (
                "the server summarised the call (agent hung up, 1 barge-in)".into(),
                server_reason == Some("hung_up_by_agent")
                    && self
                        .server
                        .call_ended
                        .as_ref()
                        .and_then(|e| e.number("barge_ins"))
                        == Some(1),
            ),
            (
                "the server shut down cleanly".into(),
                self.server.shutdown_clean,
            ),
            (
                "the call's record was stored in SQLite (hung up by the agent, 1 barge-in)".into(),
                self.stored_record.as_ref().is_some_and(|(_, r)| {
                    r.contains(r#""end_reason": "hung_up_by_agent""#)
                        && r.contains(r#""barge_ins": 1"#)
                }),
            ),
        ]
    }

    /// The checks that failed.
    pub(crate) fn failures(&self) -> Vec<String> {
        self.checks()
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| name)
            .collect()
    }

    /// The printed report.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let title = "phone-agent demo: one phone call, simulated end to end on this machine";
        let _ = writeln!(out, "\n{title}\n{}\n", "=".repeat(title.chars().count()));
        out.push_str(&report::render_rows(&[
            (
                "mock OpenAI Realtime".into(),
                format!(
                    "{}   a scripted agent that speaks in identifiable beeps",
                    self.mock_url
                ),
            ),
            (
                "phone-agent server".into(),
                format!(
                    "{}      the real server, in-process (realtime back end, signatures checked)",
                    self.server_url
                ),
            ),
            (
                "simulated Twilio".into(),
                format!("signs every request for {PUBLIC_URL} with a freshly generated auth token"),
            ),
        ]));
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  First, a webhook signed with the wrong token: HTTP {}{}.\n",
            self.forged_status,
            if self.forged_opened_session {
                ", and an agent session opened (!)"
            } else {
                ", no agent session opened"
            }
        );

        out.push_str("The conversation (the words are the script; on the line the caller buzzes and the agent beeps)\n");
        out.push_str(&report::render_rows(&self.conversation()));

        out.push_str("\nTimeline (ms since the webhook)\n");
        out.push_str(&report::render_timeline(&self.analysis));

        out.push_str("\nLatency and barge-in, as the caller experienced them\n");
        out.push_str(&report::render_rows(&self.latency_rows()));

        out.push_str("\nAudio across the bridge\n");
        out.push_str(&report::render_rows(&self.relay_rows()));

        out.push_str("\nThe server's own report (from its log events)\n");
        out.push_str(&report::render_rows(&self.server_rows()));

        out.push_str("\nChecks\n");
        let checks = self.checks();
        for (name, ok) in &checks {
            let _ = writeln!(out, "  {} {name}", if *ok { "✓" } else { "✗ FAILED:" });
        }
        let _ = writeln!(
            out,
            "\nWhat you just saw: a simulated Twilio call reached the real phone-agent server, which bridged it\n\
             to a mock OpenAI Realtime agent; when the caller talked over the agent, the server cut the\n\
             caller's playback at once and told the agent exactly how much of its answer had been heard."
        );
        let passed = checks.iter().filter(|(_, ok)| *ok).count();
        let _ = writeln!(
            out,
            "\nDone in {:.1} s: {passed} of {} checks passed.",
            self.elapsed.as_secs_f64(),
            checks.len()
        );
        match &self.stored_record {
            Some((path, record)) => {
                let _ = writeln!(
                    out,
                    "\nThe call's record, as stored in SQLite (a throwaway {path}, removed again) and served by GET /api/calls/{{CallSid}}:\n{record}"
                );
            }
            None => out.push_str("\nThe call's record was not stored (see the server's log).\n"),
        }
        out
    }

    fn conversation(&self) -> Vec<(String, String)> {
        let a = &self.analysis;
        let agent_line = |n: usize| {
            let Some(item) = self.items.get(n) else {
                return "(no answer)".to_string();
            };
            match &self.truncation {
                Some(t) if t.item_id == item.item_id => {
                    let scripted = [GREETING.1, ANSWER_1.1, ANSWER_2.1, ANSWER_3.1];
                    let total = scripted.get(n).copied().unwrap_or(1).max(1);
                    format!(
                        "\"{}\"  ✂ interrupted after {} ms",
                        cut_text(&item.transcript, t.audio_end_ms as f64 / f64::from(total)),
                        t.audio_end_ms
                    )
                }
                _ => format!("\"{}\"", item.transcript),
            }
        };
        let caller_line = |n: usize, words: &str| {
            let speech = a
                .caller_turns
                .get(n)
                .and_then(|t| Some(ms(t.speech_end?.saturating_duration_since(t.speech_start?))));
            format!(
                "\"{words}\"  ({} ms of speech{})",
                speech.unwrap_or(0),
                if a.caller_turns.get(n).is_some_and(|t| t.over_agent) {
                    ", over the agent"
                } else {
                    ""
                }
            )
        };
        vec![
            ("agent".into(), agent_line(0)),
            ("caller".into(), caller_line(0, TURN_1.0)),
            ("agent".into(), agent_line(1)),
            ("caller".into(), caller_line(1, TURN_2.0)),
            ("agent".into(), agent_line(2)),
            ("caller".into(), caller_line(2, TURN_3.0)),
            (
                "agent".into(),
                format!("(calls end_call) {}", agent_line(3)),
            ),
            (
                "server".into(),
                "(hangs up over Twilio REST once the goodbye was heard)".into(),
            ),
        ]
    }

    fn latency_rows(&self) -> Vec<(String, String)> {
        let a = &self.analysis;
        let mut rows = Vec::new();
        rows.push((
            "greeting".into(),
            a.greeting_latency().map_or("none".into(), |l| {
                format!("first audio {} ms after the stream started", ms(l))
            }),
        ));
        for (i, t) in a.caller_turns.iter().enumerate() {
            rows.push((
                format!("turn {}", i + 1),
                match t.reply {
                    Some((_, l)) => format!(
                        "first audio {} ms after the caller stopped speaking (the agent's voice detection waits for {VAD_SILENCE_MS} ms of silence)",
                        ms(l)
                    ),
                    None => "no answer".into(),
                },
            ));
        }
        for c in a.barge_ins() {
            rows.push((
                "barge-in".into(),
                format!(
                    "clear {} ms after the caller started speaking; {} of queued agent audio discarded, {} marks flushed",
                    c.latency.map_or(0, ms),
                    secs(c.discarded),
                    c.flushed_marks
                ),
            ));
        }
        rows.push((
            "truncation".into(),
            match (&self.truncation, self.truncated_item_heard) {
                (Some(t), Some((spoke, cleared))) => format!(
                    "the server told the agent that the caller heard {} ms of its answer ({} ms had been generated); the caller had heard {} ms when they started talking, {} ms when their playback was cut{}",
                    t.audio_end_ms,
                    t.audio_sent_ms.unwrap_or(0),
                    audio_ms(spoke),
                    audio_ms(cleared),
                    if t.accepted { "" } else { "; the agent REFUSED it" }
                ),
                (Some(t), None) => format!("at {} ms (item not found)", t.audio_end_ms),
                (None, _) => "none was sent".into(),
            },
        ));
        rows.push((
            "marks".into(),
            format!(
                "{} sent by the server, {} echoed by the caller as playback reached them ({} flushed by the clear)",
                a.marks_received, a.marks_echoed, a.marks_flushed
            ),
        ));
        rows
    }

    fn relay_rows(&self) -> Vec<(String, String)> {
        let c = &self.caller_relay;
        let caller = if c.identical() {
            format!(
                "{} ({} bytes) sent, all of it received byte-identical",
                secs(c.sent),
                c.received
            )
        } else if c.complete_until_hang_up() {
            format!(
                "{} sent, {} ({} bytes) received byte-identical: all of it until the server hung up \
                 (the last {} ms of silence, sent after that, were not relayed)",
                secs(c.sent),
                secs(c.received),
                c.received,
                audio_ms(c.sent - c.received)
            )
        } else {
            match c.offset {
                Some(o) => format!(
                    "{} sent, {} received: an unchanged run starting at byte {o} (not all of it arrived)",
                    secs(c.sent),
                    secs(c.received)
                ),
                None => format!(
                    "{} sent, {} received: NOT identical to what the caller sent",
                    secs(c.sent),
                    secs(c.received)
                ),
            }
        };
        let r = &self.agent_relay;
        let sent: usize = r.sent.iter().sum();
        let delivered: usize = r.delivered.iter().sum();
        let mut agent = if r.identical() {
            format!(
                "{} ({sent} bytes) sent, all of it received byte-identical",
                secs(sent)
            )
        } else if r.exact {
            format!(
                "{} sent, {} received byte-identical (the rest of the interrupted answer was dropped by the server)",
                secs(sent),
                secs(delivered)
            )
        } else {
            format!(
                "{} sent: the caller received audio the agent did NOT send",
                secs(sent)
            )
        };
        let a = &self.analysis;
        let _ = write!(
            agent,
            "; the caller heard {} (the rest was cut by the barge-in)",
            secs(a.agent_heard)
        );
        let closed = match &self.session_closed {
            Some((ClosedBy::ClientClose { code, .. }, after)) => format!(
                "closed by the server {} ms after the hang-up (close code {})",
                ms(*after),
                code.map_or("none".into(), |c| c.to_string())
            ),
            Some((other, _)) => format!("ended otherwise: {other:?}"),
            None => "still open (!)".into(),
        };
        vec![
            ("caller → agent".into(), caller),
            ("agent → caller".into(), agent),
            ("agent session".into(), closed),
        ]
    }

    fn server_rows(&self) -> Vec<(String, String)> {
        let s = &self.server;
        let mut rows = Vec::new();
        if let Some(e) = &s.agent_ready {
            rows.push((
                "agent connected".into(),
                format!(
                    "{} ms after the stream started",
                    e.number("connect_ms").unwrap_or(0)
                ),
            ));
        }
        let latencies = |trigger: &str| {
            let v: Vec<String> = s
                .first_audio
                .iter()
                .filter(|e| e.field("trigger") == Some(trigger))
                .map(|e| format!("{} ms", e.number("latency_ms").unwrap_or(0)))
                .collect();
            (!v.is_empty()).then(|| v.join(", "))
        };
        if let Some(l) = latencies("greeting") {
            rows.push((
                "greeting".into(),
                format!("first audio written to Twilio {l} after the greeting was requested"),
            ));
        }
        if let Some(l) = latencies("caller_stopped_speaking") {
            rows.push((
                "turns".into(),
                format!(
                    "first audio written to Twilio {l} after the agent detected the end of speech"
                ),
            ));
        }
        match &s.call_ended {
            Some(e) => {
                let n = |k: &str| e.number(k).unwrap_or(0);
                rows.push((
                    "call summary".into(),
                    format!(
                        "end_reason={} duration={} ms barge_ins={} caller_audio={} ms agent_audio={} ms late_audio_dropped={} ms",
                        e.field("end_reason").unwrap_or("?"),
                        n("duration_ms"),
                        n("barge_ins"),
                        n("caller_audio_ms"),
                        n("agent_audio_ms"),
                        n("late_audio_dropped_ms"),
                    ),
                ));
            }
            None => rows.push(("call summary".into(), "not logged (!)".into())),
        }
        rows.push((
            "shutdown".into(),
            if s.shutdown_clean {
                "clean: every call task had finished".into()
            } else {
                "NOT clean".into()
            },
        ));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(audio: &[u8]) -> AssistantItem {
        AssistantItem {
            item_id: "item_x".into(),
            response_id: "resp_x".into(),
            audio: audio.to_vec(),
            deltas: 1,
            transcript: String::new(),
            status: "completed".into(),
            truncated_at_ms: None,
        }
    }

    #[test]
    fn agent_relay_accepts_prefixes_in_order() {
        let a = testkit::audio::agent_tone(65536, 100);
        let b = testkit::audio::agent_tone(2 * 65536, 60);
        let items = [item(&a), item(&b)];

        let mut all = a.clone();
        all.extend_from_slice(&b);
        let full = AgentRelay::check(&items, &all);
        assert!(full.identical());
        assert_eq!(full.offsets, vec![0, a.len()]);

        // The first item's tail was dropped (interrupted), the second arrived in full.
        let mut partial = a[..300].to_vec();
        partial.extend_from_slice(&b);
        let cut = AgentRelay::check(&items, &partial);
        assert!(cut.exact && !cut.identical());
        assert_eq!(cut.delivered, vec![300, b.len()]);
        assert_eq!(cut.offsets, vec![0, 300]);

        // A changed byte is caught.
        let mut changed = all.clone();
        changed[500] ^= 1;
        assert!(!AgentRelay::check(&items, &changed).exact);
    }

    #[test]
    fn caller_relay_finds_frame_aligned_runs() {
        let sent: Vec<u8> = (0..800u32).map(|i| (i % 251) as u8).collect();
        assert!(CallerRelay::check(&sent, &sent, 800).identical());
        let late = CallerRelay::check(&sent, &sent[320..], 800);
        assert_eq!(late.offset, Some(320));
        assert!(!late.identical());
        assert!(!late.complete_until_hang_up());
        let mut changed = sent.clone();
        changed[10] ^= 1;
        assert_eq!(CallerRelay::check(&sent, &changed, 800).offset, None);
    }

    #[test]
    fn caller_relay_accepts_only_silence_sent_after_the_hang_up_as_missing() {
        let silence = testkit::audio::SILENCE;
        let mut sent: Vec<u8> = (0..480u32).map(|i| (i % 251) as u8).collect();
        sent.extend(std::iter::repeat_n(silence, 320));
        // The last frame of silence was sent after the hang-up: not relayed, and that is fine.
        let cut = CallerRelay::check(&sent, &sent[..640], 640);
        assert!(!cut.identical());
        assert!(cut.complete_until_hang_up());
        // A frame sent before the hang-up is missing.
        assert!(!CallerRelay::check(&sent, &sent[..480], 640).complete_until_hang_up());
        // Speech is missing (even if sent after the hang-up).
        assert!(!CallerRelay::check(&sent, &sent[..320], 320).complete_until_hang_up());
        // All of it arrived.
        assert!(CallerRelay::check(&sent, &sent, 640).complete_until_hang_up());
    }

    #[test]
    fn sent_before_last_echo_stops_at_the_last_mark_echo() {
        let t0 = Instant::now();
        let frame = |idle| testkit::twilio::TimelineEntry {
            at: t0,
            event: CallEvent::MediaSent {
                chunk: 1,
                timestamp_ms: 0,
                bytes: testkit::audio::FRAME_BYTES,
                stamp: None,
                idle,
            },
        };
        let echo = |name: &str| testkit::twilio::TimelineEntry {
            at: t0,
            event: CallEvent::MarkEchoed {
                name: name.into(),
                cleared: false,
            },
        };
        let turns = vec![vec![0x10u8; 2 * testkit::audio::FRAME_BYTES]];
        let timeline = vec![
            frame(false),
            echo("m1"),
            frame(false),
            frame(true),
            echo("m2"),
            frame(true),
            frame(true),
        ];
        assert_eq!(
            sent_before_last_echo(&timeline, &turns),
            3 * testkit::audio::FRAME_BYTES
        );
        assert_eq!(sent_before_last_echo(&timeline[..1], &turns), 0);
    }

    #[test]
    fn cut_text_stops_at_a_word() {
        assert_eq!(cut_text("one two three four", 0.5), "one two…");
        assert_eq!(cut_text("Sure! We're open", 0.1), "Sure…");
        assert_eq!(cut_text("a b", 1.0), "a b…");
    }

    #[test]
    fn tokens_are_32_hex_digits_and_differ() {
        let a = generate_token();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, generate_token());
    }

    /// The whole demo, as `cargo xtask demo` runs it: every check passes.
    #[test]
    fn the_demo_passes_every_check() {
        let _turn = crate::IN_PROCESS_SERVER.blocking_lock();
        let report = execute(false, None, true).expect("the demo runs");
        let text = report.render();
        assert!(report.failures().is_empty(), "{text}");
        for section in [
            "The conversation",
            "Timeline",
            "Latency and barge-in",
            "Audio across the bridge",
            "The server's own report",
            "What you just saw",
        ] {
            assert!(text.contains(section), "missing {section:?}:\n{text}");
        }
        assert!(text.contains("✂ interrupted after"), "{text}");
        assert!(text.contains("agent calls end_call("), "{text}");
        assert!(text.contains("Status=completed -> 200"), "{text}");
        assert_eq!(report.analysis.caller_turns.len(), 3);
        assert!(!report.heard_pcm.is_empty());
    }
}
