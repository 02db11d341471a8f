//! `cargo xtask chaos`: many calls through the real server while the agent fails on purpose.
//!
//! Never silent (issue 10): whatever the agent does, a caller either talks with the agent or
//! hears the fallback line. This run checks it. It starts the test kit's mock OpenAI Realtime
//! service behind a small TCP gate, the server binary (`target/debug/phone-agent-server`,
//! built first) pointed at the gate, and plays Twilio placing `--calls` calls, `--concurrency`
//! at a time. A `--failure-rate` fraction of the calls get one injected agent failure
//! ([`Fault`], in rotation, at positions drawn from `--seed`):
//!
//! * **connect refused** — the gate closes its listening socket while the call connects (TCP
//!   connections are refused; every retry too);
//! * **401 at connect** — the gate answers the WebSocket upgrade `401` with OpenAI's
//!   `invalid_api_key` error;
//! * **TCP dropped mid-answer** — the mock drops the connection (no close frame) two audio
//!   deltas into its answer to the caller's question;
//! * **stops sending mid-answer** — the mock goes quiet two deltas into its answer, with the
//!   connection open (a hung agent).
//!
//! Each call: the caller listens to the greeting, asks a question and listens to the answer
//! (agent audio is recognised by the mock's stamps, so the hold tone of a reconnect does not
//! count), then hangs up. When the server ends the stream instead, the simulated Twilio goes
//! on with the TwiML as Twilio does (the `<Redirect>` after `</Connect>`, fetched signed from
//! `/voice/next`) and "plays" what it answers. Each call is classified ([`Outcome`]):
//! normal end, continued after a reconnect (the agent's connection was lost and a fresh
//! session went on talking: `[reconnect]` is on by default), fallback line heard, or
//! **silent** — the call ended with neither the agent's answer nor the fallback line, or the
//! caller waited `--silence` without any new agent audio. At the end every agent session the
//! mock accepted must have been closed (leaked sessions are counted). The table is printed;
//! the exit status is non-zero if any call was silent or any session leaked.
//!
//! The server runs with its defaults except `agent.response_timeout_secs = 3` (a hung agent is
//! given up on sooner, to keep the run short) and no call records.
//!
//! Per-call faults need to know which connection belongs to which call: the calls overlap, but
//! their *connect phases* (from the webhook until the mock accepted a session or the call
//! ended) take turns, and the gate and the mock's script are set for the call whose turn it is.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use testkit::audio::{CallerAudio, find_stamps};
use testkit::openai::{MockRealtime, ResponseFault, ResponseScript, Script};
use testkit::twilio::twiml::Verb;
use testkit::twilio::{ActiveCall, CallEnd, CallSimulator};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::time::Instant;

use crate::bench::parse_duration;

/// Arguments of `cargo xtask chaos`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub(crate) struct Args {
    /// Number of calls.
    #[arg(long, default_value_t = 100)]
    pub(crate) calls: usize,
    /// Calls in progress at the same time.
    #[arg(long, default_value_t = 4)]
    pub(crate) concurrency: usize,
    /// Fraction of the calls that get an injected agent failure (0 to 1).
    #[arg(long, default_value_t = 0.3)]
    pub(crate) failure_rate: f64,
    /// Seed of the positions of the failing calls.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// How long a caller waits in silence for the agent before the call counts as silent
    /// (e.g. `8s`); keep it above the server's `agent.response_timeout_secs`.
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    pub(crate) silence: Duration,
    /// Use the existing debug build of the server (skip `cargo build`).
    #[arg(long)]
    pub(crate) no_build: bool,
}

/// The Twilio account of the simulated calls.
const ACCOUNT_SID: &str = "AC0000000000000000000000000000c4a5";
/// The Twilio auth token the server checks signatures with.
const AUTH_TOKEN: &str = "c4a5c4a5c4a5c4a5c4a5c4a5c4a5c4a5";
/// The server's public URL (signatures are computed over it; nothing resolves it).
const PUBLIC_URL: &str = "https://chaos.phone-agent.invalid";
/// The API key the server sends (the mock accepts any).
const API_KEY: &str = "sk-chaos-offline-not-a-real-key";
/// The agent's greeting and its answer to the caller's question: `(transcript, ms)`.
const GREETING: (&str, u32) = ("Hello, chaos line, how can I help?", 800);
const ANSWER: (&str, u32) = ("Here is the answer to your question.", 1000);
/// The caller's question: ms of speech.
const QUESTION_MS: u32 = 600;
/// Audio deltas of the answer sent before a mid-answer fault (100 ms each).
const FAULT_AFTER_DELTAS: usize = 2;
/// The most a single step of the harness may take (webhooks, hang-ups, the connect phase).
const STEP: Duration = Duration::from_secs(30);

/// A failure injected into one call's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Fault {
    /// No failure.
    None,
    /// TCP connections to the agent are refused while the call connects.
    ConnectRefused,
    /// The WebSocket upgrade is answered 401 (`invalid_api_key`).
    Unauthorized,
    /// The agent drops its TCP connection in the middle of its answer.
    DropMidAnswer,
    /// The agent stops sending in the middle of its answer (connection open).
    StallMidAnswer,
}

impl Fault {
    /// The failures, in the rotation used to assign them.
    pub(crate) const INJECTED: [Fault; 4] = [
        Fault::ConnectRefused,
        Fault::Unauthorized,
        Fault::DropMidAnswer,
        Fault::StallMidAnswer,
    ];

    fn label(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::ConnectRefused => "connect refused",
            Fault::Unauthorized => "401 at connect",
            Fault::DropMidAnswer => "TCP dropped mid-answer",
            Fault::StallMidAnswer => "stops sending mid-answer",
        }
    }

    fn gate_mode(self) -> GateMode {
        match self {
            Fault::ConnectRefused => GateMode::Refuse,
            Fault::Unauthorized => GateMode::Unauthorized,
            _ => GateMode::Forward,
        }
    }

    /// The mock's script for the session of a call with this fault.
    fn script(self) -> Script {
        let answer = ResponseScript::say(ANSWER.0, ANSWER.1);
        let answer = match self {
            Fault::DropMidAnswer => {
                answer.fault(ResponseFault::DropAfterDeltas(FAULT_AFTER_DELTAS))
            }
            Fault::StallMidAnswer => {
                answer.fault(ResponseFault::StallAfterDeltas(FAULT_AFTER_DELTAS))
            }
            _ => answer,
        };
        Script::new()
            .then(ResponseScript::say(GREETING.0, GREETING.1))
            .then(answer)
            .fallback(ResponseScript::say(ANSWER.0, ANSWER.1))
    }
}

/// How a call ended, as the caller experienced it. To add an outcome, add a variant here, to
/// [`Outcome::ALL`] (its column in the table) and where [`run_call`] classifies calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Outcome {
    /// The caller heard the greeting and the answer, and hung up.
    Normal,
    /// Like [`Outcome::Normal`], but the agent's connection was lost (dropped, hung) and the
    /// server reconnected a fresh session that went on talking.
    ContinuedAfterReconnect,
    /// The server ended the stream and the caller heard the fallback line.
    Fallback,
    /// The server ended the stream and the caller heard neither the answer nor the fallback.
    SilentEnded,
    /// The caller waited `--silence` for audio that never came (the call was still up).
    SilentStalled,
}

impl Outcome {
    /// Every outcome, in table order.
    pub(crate) const ALL: [Outcome; 5] = [
        Outcome::Normal,
        Outcome::ContinuedAfterReconnect,
        Outcome::Fallback,
        Outcome::SilentEnded,
        Outcome::SilentStalled,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Normal => "normal",
            Outcome::ContinuedAfterReconnect => "reconnected",
            Outcome::Fallback => "fallback",
            Outcome::SilentEnded => "silent:ended",
            Outcome::SilentStalled => "silent:stalled",
        }
    }

    /// Whether the caller was left in silence (the run fails).
    pub(crate) fn is_silent(self) -> bool {
        matches!(self, Outcome::SilentEnded | Outcome::SilentStalled)
    }
}

/// One call's result.
#[derive(Debug, Clone)]
pub(crate) struct CallResult {
    pub(crate) fault: Fault,
    pub(crate) outcome: Outcome,
    /// From the webhook to the outcome (the fallback fetched, the hang-up, the stall noticed).
    pub(crate) elapsed: Duration,
    /// Agent audio the caller heard, ms.
    pub(crate) heard_ms: u64,
    /// What happened, for silent calls.
    pub(crate) detail: String,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub(crate) struct ChaosReport {
    pub(crate) calls: Vec<CallResult>,
    /// Agent sessions the mock accepted.
    pub(crate) sessions_opened: usize,
    /// Of those, closed by the end of the run.
    pub(crate) sessions_closed: usize,
    /// Upgrades the gate answered 401.
    pub(crate) unauthorized_answers: u64,
    /// Times the gate closed its listener for a call.
    pub(crate) refusal_windows: u64,
    pub(crate) wall: Duration,
}

impl ChaosReport {
    /// Calls left in silence.
    pub(crate) fn silent(&self) -> usize {
        self.calls.iter().filter(|c| c.outcome.is_silent()).count()
    }

    /// Sessions never closed.
    pub(crate) fn leaked(&self) -> usize {
        self.sessions_opened - self.sessions_closed
    }

    /// Calls per `(fault, outcome)`.
    pub(crate) fn count(&self, fault: Option<Fault>, outcome: Option<Outcome>) -> usize {
        self.calls
            .iter()
            .filter(|c| fault.is_none_or(|f| c.fault == f))
            .filter(|c| outcome.is_none_or(|o| c.outcome == o))
            .count()
    }

    /// The table.
    pub(crate) fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut faults: Vec<Fault> = self.calls.iter().map(|c| c.fault).collect();
        faults.sort();
        faults.dedup();
        let _ = write!(out, "{:<26}{:>7}", "fault", "calls");
        for o in Outcome::ALL {
            let _ = write!(out, "{:>16}", o.label());
        }
        let _ = writeln!(out, "{:>12}{:>12}", "p50 end ms", "max end ms");
        let row = |out: &mut String, label: &str, fault: Option<Fault>| {
            let mut ends: Vec<u128> = self
                .calls
                .iter()
                .filter(|c| fault.is_none_or(|f| c.fault == f))
                .map(|c| c.elapsed.as_millis())
                .collect();
            ends.sort_unstable();
            let _ = write!(out, "{label:<26}{:>7}", ends.len());
            for o in Outcome::ALL {
                let _ = write!(out, "{:>16}", self.count(fault, Some(o)));
            }
            let p50 = ends.get(ends.len() / 2).copied().unwrap_or(0);
            let max = ends.last().copied().unwrap_or(0);
            let _ = writeln!(out, "{p50:>12}{max:>12}");
        };
        for f in faults {
            row(&mut out, f.label(), Some(f));
        }
        row(&mut out, "all", None);
        let _ = writeln!(
            out,
            "agent sessions at the mock: {} opened, {} closed, {} leaked",
            self.sessions_opened,
            self.sessions_closed,
            self.leaked()
        );
        let _ = writeln!(
            out,
            "gate: {} upgrade(s) answered 401, listener closed {} time(s); run took {:.1} s",
            self.unauthorized_answers,
            self.refusal_windows,
            self.wall.as_secs_f64()
        );
        for c in self.calls.iter().filter(|c| c.outcome.is_silent()) {
            let _ = writeln!(
                out,
                "SILENT: fault {}, {}, heard {} ms of agent audio: {}",
                c.fault.label(),
                c.outcome.label(),
                c.heard_ms,
                c.detail
            );
        }
        out
    }
}

/// The fault of each call: `round(calls × rate)` failing calls, the failures in rotation
/// ([`Fault::INJECTED`]), at positions shuffled with `seed`.
pub(crate) fn plan(calls: usize, rate: f64, seed: u64) -> Vec<Fault> {
    let failing = ((calls as f64 * rate.clamp(0.0, 1.0)).round() as usize).min(calls);
    let mut faults: Vec<Fault> = (0..calls)
        .map(|i| {
            if i < failing {
                Fault::INJECTED[i % Fault::INJECTED.len()]
            } else {
                Fault::None
            }
        })
        .collect();
    // Fisher-Yates with xorshift64*.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for i in (1..faults.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        faults.swap(i, j);
    }
    faults
}

/// What the gate does with connections to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GateMode {
    /// Forward to the mock.
    Forward,
    /// Listener closed: connections are refused.
    Refuse,
    /// Answer the upgrade `401`.
    Unauthorized,
}

/// A TCP gate in front of the mock agent: forwards, refuses, or answers 401.
#[derive(Debug, Clone)]
struct Gate {
    addr: SocketAddr,
    mode: watch::Sender<GateMode>,
    unauthorized: Arc<AtomicU64>,
    refusals: Arc<AtomicU64>,
}

impl Gate {
    async fn start(target: SocketAddr) -> anyhow::Result<Gate> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the agent gate")?;
        let addr = listener.local_addr()?;
        let (mode, rx) = watch::channel(GateMode::Forward);
        let gate = Gate {
            addr,
            mode,
            unauthorized: Arc::new(AtomicU64::new(0)),
            refusals: Arc::new(AtomicU64::new(0)),
        };
        tokio::spawn(gate.clone().serve(listener, rx, target));
        Ok(gate)
    }

    /// `OPENAI_BASE_URL` for the server.
    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn set(&self, mode: GateMode) {
        if mode == GateMode::Refuse {
            self.refusals.fetch_add(1, Ordering::Relaxed);
        }
        self.mode.send_replace(mode);
    }

    async fn serve(
        self,
        listener: TcpListener,
        mut rx: watch::Receiver<GateMode>,
        target: SocketAddr,
    ) {
        let mut listener = Some(listener);
        loop {
            let mode = *rx.borrow_and_update();
            if mode == GateMode::Refuse {
                // Closing the listening socket makes the kernel refuse connections.
                listener = None;
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let l = match listener.take() {
                Some(l) => l,
                None => match TcpListener::bind(self.addr).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("chaos: cannot reopen the agent gate on {}: {e}", self.addr);
                        return;
                    }
                },
            };
            tokio::select! {
                accepted = l.accept() => {
                    if let Ok((inbound, _)) = accepted {
                        let unauthorized = Arc::clone(&self.unauthorized);
                        tokio::spawn(async move {
                            match mode {
                                GateMode::Unauthorized => {
                                    unauthorized.fetch_add(1, Ordering::Relaxed);
                                    answer_401(inbound).await;
                                }
                                _ => forward(inbound, target).await,
                            }
                        });
                    }
                }
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            listener = Some(l);
        }
    }
}

/// Reads the upgrade request's head and answers it like OpenAI answers a wrong key.
async fn answer_401(mut inbound: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match inbound.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = r#"{"error":{"message":"Incorrect API key provided: ****-key.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    let response = format!(
        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = inbound.write_all(response.as_bytes()).await;
    let _ = inbound.shutdown().await;
}

async fn forward(mut inbound: TcpStream, target: SocketAddr) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}

/// The server's configuration for a run (environment variables), given the agent's base URL
/// and the prompt file.
pub(crate) fn server_env(agent_base_url: &str, prompt: &Path) -> Vec<(String, String)> {
    [
        ("PHONE_AGENT_AGENT__BACKEND", "realtime"),
        ("PORT", "0"),
        ("PHONE_AGENT_SERVER__BIND_ADDRESS", "127.0.0.1"),
        ("PUBLIC_URL", PUBLIC_URL),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("OPENAI_API_KEY", API_KEY),
        ("OPENAI_BASE_URL", agent_base_url),
        ("PROMPT_PATH", &prompt.display().to_string()),
        // A hung agent is given up on after 3 s (default 15 s) to keep the run short; the
        // callers' `--silence` must be longer.
        ("PHONE_AGENT_AGENT__RESPONSE_TIMEOUT_SECS", "3"),
        ("PHONE_AGENT_SERVER__SHUTDOWN_NOTICE_SECS", "0"),
        ("PHONE_AGENT_SERVER__SHUTDOWN_GRACE_SECS", "5"),
        ("PHONE_AGENT_METRICS__BIND", "off"),
        ("PHONE_AGENT_DATABASE__URL", "off"),
        ("PHONE_AGENT_LOG__FORMAT", "json"),
        ("RUST_LOG", "warn,phone_agent_server=info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A server under test: the binary, or (in tests) the library in this process.
pub(crate) enum RunningServer {
    Process(crate::bench::ServerProcess),
    /// The test suite's variant (no binary to build).
    #[cfg_attr(not(test), allow(dead_code))]
    InProcess(phone_agent_server::ServerHandle),
}

impl RunningServer {
    fn url(&self) -> String {
        match self {
            RunningServer::Process(p) => format!("http://{}", p.addr),
            RunningServer::InProcess(h) => format!("http://{}", h.local_addr()),
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            RunningServer::Process(p) => p.stop().await,
            RunningServer::InProcess(h) => {
                h.shutdown();
                tokio::time::timeout(STEP, h.wait())
                    .await
                    .context("the server did not shut down")?;
                Ok(())
            }
        }
    }
}

/// Options of one run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) calls: usize,
    pub(crate) concurrency: usize,
    pub(crate) failure_rate: f64,
    pub(crate) seed: u64,
    pub(crate) silence: Duration,
}

/// Runs the calls against a server started by `start` with the environment it is given.
pub(crate) async fn run_chaos<F, Fut>(opts: &Options, start: F) -> anyhow::Result<ChaosReport>
where
    F: FnOnce(Vec<(String, String)>) -> Fut,
    Fut: Future<Output = anyhow::Result<RunningServer>>,
{
    let began = Instant::now();
    let mock = MockRealtime::builder()
        .script(Fault::None.script())
        .record_payloads(false)
        .start()
        .await
        .context("starting the mock OpenAI Realtime service")?;
    let gate = Gate::start(mock.addr()).await?;
    let prompt_dir = std::env::temp_dir().join(format!("phone-agent-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&prompt_dir).context("creating the chaos directory")?;
    let prompt = prompt_dir.join("prompt.md");
    std::fs::write(
        &prompt,
        "You answer the chaos line's test calls. Call {{call_sid}}.\n",
    )
    .context("writing the chaos prompt")?;
    let server = start(server_env(&gate.base_url(), &prompt)).await?;
    let sim = CallSimulator::new(&server.url())
        .public_url(PUBLIC_URL)
        .auth_token(AUTH_TOKEN)
        .account_sid(ACCOUNT_SID);

    let faults = plan(opts.calls, opts.failure_rate, opts.seed);
    let turn = Arc::new(Mutex::new(()));
    let slots = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, fault) in faults.into_iter().enumerate() {
        let permit = Arc::clone(&slots).acquire_owned().await?;
        let (sim, mock, gate, turn) = (sim.clone(), mock.clone(), gate.clone(), Arc::clone(&turn));
        let silence = opts.silence;
        tasks.spawn(async move {
            let result = run_call(&sim, &mock, &gate, &turn, fault, silence).await;
            drop(permit);
            (i, result)
        });
    }
    let mut calls: Vec<(usize, CallResult)> = Vec::new();
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, Ok(result))) => calls.push((i, result)),
            Ok((i, Err(e))) => errors.push(format!("call {i}: {e:#}")),
            Err(e) => errors.push(format!("a call task failed: {e}")),
        }
    }
    calls.sort_by_key(|(i, _)| *i);

    // Every session must end with its call; give the last ones a moment to close.
    let sessions = mock.sessions();
    for s in &sessions {
        let _ = s.wait_closed(Duration::from_secs(10)).await;
    }
    let sessions_closed = sessions.iter().filter(|s| s.closed().is_some()).count();
    server.stop().await.context("stopping the server")?;
    let _ = std::fs::remove_dir_all(&prompt_dir);
    if !errors.is_empty() {
        bail!("the harness failed:\n{}", errors.join("\n"));
    }
    Ok(ChaosReport {
        calls: calls.into_iter().map(|(_, r)| r).collect(),
        sessions_opened: sessions.len(),
        sessions_closed,
        unauthorized_answers: gate.unauthorized.load(Ordering::Relaxed),
        refusal_windows: gate.refusals.load(Ordering::Relaxed),
        wall: began.elapsed(),
    })
}

/// What a wait for the caller to hear something ended with.
enum Heard {
    Yes,
    StreamEnded(CallEnd),
    Silence,
}

/// How often the caller's playout is looked at while waiting for agent audio.
const POLL: Duration = Duration::from_millis(20);

/// The agent's audio the caller has heard, in ms: the mock's stamped 20 ms frames (hold audio
/// during a reconnect, or anything else the server plays, does not count).
fn agent_ms_heard(call: &ActiveCall) -> u64 {
    find_stamps(&call.heard()).len() as u64 * 20
}

/// Waits until the caller heard `ms` of agent audio, the stream ended, or no new agent audio
/// came for `silence`.
async fn hear(call: &ActiveCall, ms: u64, silence: Duration) -> Heard {
    let mut last = agent_ms_heard(call);
    let mut progress = Instant::now();
    loop {
        let heard = agent_ms_heard(call);
        if heard >= ms {
            return Heard::Yes;
        }
        if let Some(end) = call.closed() {
            return Heard::StreamEnded(end);
        }
        if heard > last {
            last = heard;
            progress = Instant::now();
        } else if progress.elapsed() >= silence {
            return Heard::Silence;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The mock's sessions of `call_sid` (its prompt names the call).
fn sessions_of(mock: &MockRealtime, call_sid: &str) -> usize {
    mock.sessions()
        .iter()
        .filter(|s| {
            s.session_config()["instructions"]
                .as_str()
                .is_some_and(|i| i.contains(call_sid))
        })
        .count()
}

/// One call with `fault` injected.
async fn run_call(
    sim: &CallSimulator,
    mock: &MockRealtime,
    gate: &Gate,
    turn: &Mutex<()>,
    fault: Fault,
    silence: Duration,
) -> anyhow::Result<CallResult> {
    let started = Instant::now();
    // The connect phase, alone: the gate and the script are this call's until its session is
    // configured (or its stream ended).
    let (placed, call) = {
        let _turn = turn.lock().await;
        gate.set(fault.gate_mode());
        mock.set_script(fault.script());
        let connected = async {
            let placed = sim.call().place().await.context("posting /voice")?;
            if placed.rejected().is_some() {
                bail!("the call was rejected: {}", placed.response.text());
            }
            let call = placed.open_stream().await.context("opening the stream")?;
            let deadline = Instant::now() + STEP;
            while sessions_of(mock, &placed.call_sid) == 0
                && call.closed().is_none()
                && Instant::now() < deadline
            {
                tokio::time::sleep(POLL / 4).await;
            }
            anyhow::Ok((placed, call))
        }
        .await;
        gate.set(GateMode::Forward);
        mock.set_script(Fault::None.script());
        connected?
    };
    let mut heard = hear(&call, GREETING.1.into(), silence).await;
    if matches!(heard, Heard::Yes) {
        call.send_audio(
            CallerAudio::new()
                .silence(200)
                .speech(QUESTION_MS)
                .silence(800)
                .into_bytes(),
        );
        heard = hear(&call, u64::from(GREETING.1 + ANSWER.1), silence).await;
    }
    let heard_ms = agent_ms_heard(&call);
    let (outcome, detail) = match heard {
        Heard::Yes => {
            call.stop(STEP).await.context("hanging up")?;
            if sessions_of(mock, &placed.call_sid) > 1 {
                (Outcome::ContinuedAfterReconnect, String::new())
            } else {
                (Outcome::Normal, String::new())
            }
        }
        Heard::Silence => {
            let _ = call.stop(STEP).await;
            (
                Outcome::SilentStalled,
                format!(
                    "no new agent audio for {} s with the call up",
                    silence.as_secs_f64()
                ),
            )
        }
        Heard::StreamEnded(end) => {
            let after = placed
                .after_stream()
                .await
                .context("following the TwiML after the stream")?;
            let says: Vec<&str> = after
                .iter()
                .filter_map(|v| match v {
                    Verb::Say { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            if says.contains(&phone_agent_server::config::DEFAULT_FALLBACK_SAY) {
                (Outcome::Fallback, String::new())
            } else {
                (
                    Outcome::SilentEnded,
                    format!("stream ended ({end:?}); after the stream: {after:?}"),
                )
            }
        }
    };
    Ok(CallResult {
        fault,
        outcome,
        elapsed: started.elapsed(),
        heard_ms,
        detail,
    })
}

/// Entry point of `cargo xtask chaos`.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.failure_rate) {
        bail!("--failure-rate must be between 0 and 1");
    }
    let root = crate::ci::workspace_root();
    if !args.no_build {
        eprintln!("==> cargo build -p phone-agent-server");
        let status = std::process::Command::new(crate::bench::cargo_bin())
            .current_dir(&root)
            .args([
                "build",
                "--quiet",
                "-p",
                "phone-agent-server",
                "--bin",
                "phone-agent-server",
            ])
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!("building the server failed");
        }
    }
    let bin: PathBuf = crate::bench::target_dir(&root).join("debug/phone-agent-server");
    let opts = Options {
        calls: args.calls,
        concurrency: args.concurrency,
        failure_rate: args.failure_rate,
        seed: args.seed,
        silence: args.silence,
    };
    eprintln!(
        "==> {} calls, {} at a time, {:.0} % with an injected agent failure (seed {}), server {}",
        opts.calls,
        opts.concurrency,
        opts.failure_rate * 100.0,
        opts.seed,
        bin.display()
    );
    let runtime = crate::runtime()?;
    let report = runtime.block_on(run_chaos(&opts, |env| async move {
        let dir = std::env::temp_dir();
        Ok(RunningServer::Process(
            crate::bench::ServerProcess::start(&bin, &dir, &env).await?,
        ))
    }))?;
    print!("{}", report.render());
    if report.silent() > 0 || report.leaked() > 0 {
        bail!(
            "{} silent call(s), {} leaked agent session(s)",
            report.silent(),
            report.leaked()
        );
    }
    println!("chaos: no silent call, no leaked session");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_plan_has_the_rate_and_every_fault() {
        let faults = plan(100, 0.3, 1);
        assert_eq!(faults.len(), 100);
        let mut counts: HashMap<Fault, usize> = HashMap::new();
        for f in &faults {
            *counts.entry(*f).or_default() += 1;
        }
        assert_eq!(counts[&Fault::None], 70);
        assert_eq!(counts[&Fault::ConnectRefused], 8);
        assert_eq!(counts[&Fault::Unauthorized], 8);
        assert_eq!(counts[&Fault::DropMidAnswer], 7);
        assert_eq!(counts[&Fault::StallMidAnswer], 7);
        assert_eq!(plan(100, 0.3, 1), faults, "deterministic for a seed");
        assert_ne!(plan(100, 0.3, 2), faults);
        assert!(plan(5, 0.0, 1).iter().all(|f| *f == Fault::None));
    }

    /// The chaos run in small: 10 calls, 4 of them failing (one of each kind), through the
    /// server (in this process) and the mock agent: nobody is left in silence, no session
    /// leaks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_chaos_calls_are_never_silent_and_leak_no_session() {
        let _turn = crate::IN_PROCESS_SERVER.lock().await;
        let opts = Options {
            calls: 10,
            concurrency: 4,
            failure_rate: 0.4,
            seed: 7,
            silence: Duration::from_secs(8),
        };
        let report = run_chaos(&opts, |env| async move {
            let env: HashMap<String, String> = env.into_iter().collect();
            let config = phone_agent_server::config::Config::from_env_map(&env)?;
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            Ok(RunningServer::InProcess(
                phone_agent_server::Server::new(config).serve(listener)?,
            ))
        })
        .await
        .unwrap();
        let table = report.render();
        let outcomes = |fault: Fault| -> Vec<Outcome> {
            report
                .calls
                .iter()
                .filter(|c| c.fault == fault)
                .map(|c| c.outcome)
                .collect()
        };
        // The agent cannot be reached while the call connects: the fallback line.
        assert_eq!(
            outcomes(Fault::ConnectRefused),
            [Outcome::Fallback],
            "{table}"
        );
        assert_eq!(
            outcomes(Fault::Unauthorized),
            [Outcome::Fallback],
            "{table}"
        );
        // Lost mid-answer (dropped, or hung until agent.response_timeout_secs): reconnected
        // (on by default), or the fallback if the agent could not come back.
        for fault in [Fault::DropMidAnswer, Fault::StallMidAnswer] {
            let got = outcomes(fault);
            assert!(
                got == [Outcome::ContinuedAfterReconnect] || got == [Outcome::Fallback],
                "{fault:?}: {got:?}\n{table}"
            );
        }
        // A reconnect of another call may meet a fault injected meanwhile: it reconnects.
        assert!(
            outcomes(Fault::None)
                .iter()
                .all(|o| matches!(o, Outcome::Normal | Outcome::ContinuedAfterReconnect)),
            "{table}"
        );
        assert_eq!(report.count(Some(Fault::None), None), 6, "{table}");
        assert_eq!(report.silent(), 0, "{table}");
        assert_eq!(report.leaked(), 0, "{table}");
        assert!(report.unauthorized_answers >= 1, "{table}");
    }
}
