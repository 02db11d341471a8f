//! `cargo xtask bench`: load-test the server with concurrent simulated calls.
//!
//! Two processes on loopback:
//!
//! * **the server** — `target/release/phone-agent-server`, started once per level with its
//!   configuration in the environment (`OPENAI_BASE_URL` pointing at the mock, Twilio
//!   signatures on, JSON logs at `info`, metrics on), in an empty working directory;
//! * **the load process** — this one (re-executed as a release build): the test kit's peers in
//!   their lean mode — simulated Twilio callers ([`testkit::twilio::lean`]) and the mock OpenAI
//!   Realtime / GPT-Live service ([`testkit::openai::lean`]) — one task per call and one per
//!   agent session, on one tokio runtime. They share a clock, so each frame's
//!   latency is a difference of two readings of the same clock; the frames are identified by
//!   stamps embedded in the μ-law bytes, which the bridge passes through untouched.
//!
//! Per level it reports latencies (p50/p99/max) caller → agent and agent → caller, barge-in
//! latency (the agent's `speech_started` sent → the caller received `clear`), first-audio
//! latency (`start` sent → first agent audio), frames lost/duplicated/reordered, failed calls,
//! the server's CPU per call-second (`/proc/<pid>/stat` utime + stime, over the window in which
//! every call is up) and peak RSS per call (`VmHWM` minus the idle baseline, which is taken
//! after four short warm-up calls), the load process's own CPU and how late it sent frames —
//! then a table and one JSON line per level.
//!
//! `--tool-calls N` adds tool round trips: the server gets one webhook tool (`[[tools]]` in a
//! configuration file) served by this process on loopback ([`webhook`]), the mock agent
//! answers each call's first N caller turns with a function call of it, and the level also
//! reports the tool round trip as the agent sees it (p50/p90/p99/max). Without the option
//! nothing changes: no configuration file, no webhook, the same figures and JSON line.
//!
//! `--backend live` runs the same load through the GPT-Live back end (the mock then speaks
//! GPT-Live; barge-in has no events there, so its columns stay empty).
//!
//! `--reference-relay` runs every level a second time, right after the server, against the
//! reference relay ([`relay`]): the least a Twilio ↔ Realtime relay does, as its own release
//! process (`xtask reference-relay`) under the same load, reported with the same figures (its
//! rows and JSON lines say `reference-relay`). It is a measuring stick for the server's CPU,
//! memory and latency, not a product.
//!
//! Nothing here asserts timings: the numbers are reported (BENCHMARKS.md), never tested.

pub(crate) mod relay;
mod server;
mod stats;
mod webhook;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;

use crate::ci::workspace_root;
pub(crate) use server::ServerProcess;
use stats::{Dist, Frames, LevelResult, ToolResult};
use testkit::lean::CallSlot;
use testkit::openai::lean::{API_KEY, LeanAgent, LeanTool, Registry};
use testkit::twilio::lean::{self as caller, CallOutcome, Failure, LevelContext};
use webhook::ToolWebhook;

/// The Twilio account the simulated calls belong to.
const ACCOUNT_SID: &str = "AC0000000000000000000000000000beef";
/// The Twilio auth token the server checks signatures with.
const AUTH_TOKEN: &str = "0123456789abcdef0123456789abcdef";
/// Calls made before a level starts, and how long they last (see `run_level`).
const WARM_UP_CALLS: u32 = 4;
const WARM_UP: Duration = Duration::from_secs(3);
/// The server's public URL (signatures are computed over it; nothing resolves it).
const PUBLIC_URL: &str = "https://bench.phone-agent.invalid";

/// `cargo xtask bench` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BenchArgs {
    /// Concurrent calls per level, comma-separated (one server process per level).
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
    levels: Vec<usize>,
    /// How long each call streams, e.g. `20s`, `1m`, `500ms`.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Time over which a level's calls are started (default: 4 ms per call, 1-8 s).
    #[arg(long, value_parser = parse_duration)]
    ramp: Option<Duration>,
    /// A small run to check the setup in a few seconds (20 calls for 5 s).
    #[arg(long)]
    quick: bool,
    /// Also append the JSON lines to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Use the existing release build (skip `cargo build --release`).
    #[arg(long)]
    no_build: bool,
    /// Before each level, wait (at most this long, e.g. `5m`) until the rest of the machine
    /// has been idle for 3 s (other processes below 10% of a core): on a shared machine the
    /// load of others skews latencies.
    #[arg(long, value_parser = parse_duration)]
    wait_idle: Option<Duration>,
    /// Benchmark this server binary instead of `target/release/phone-agent-server` (e.g. a
    /// saved build, to compare before and after a change).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The back end the server answers with: `realtime` (OpenAI Realtime) or `live`
    /// (GPT-Live; the mock then speaks GPT-Live: output paced by input, no barge-in events,
    /// so the barge-in columns stay empty).
    #[arg(long, value_enum, default_value_t = crate::demo::DemoBackend::Realtime)]
    pub(crate) backend: crate::demo::DemoBackend,
    /// Function calls per call (Realtime only): the mock agent answers each call's first N
    /// caller turns with a call of a webhook tool this process serves on loopback, and the
    /// tool round trip is reported. 0 (the default): no tool configured, as before. A 20 s
    /// call has about 5 caller turns.
    #[arg(long, default_value_t = 0)]
    tool_calls: u32,
    /// Run the server with call records off (`database.url = off`); by default it keeps them
    /// as configured out of the box (SQLite in its working directory).
    #[arg(long)]
    no_records: bool,
    /// Record every call to a WAV file (`recording.enabled`, in the server's working
    /// directory; the files are deleted after each level).
    #[arg(long)]
    recording: bool,
    /// After the server, run each level against the reference relay too (a minimal
    /// Twilio ↔ Realtime relay, its own release process, same load, same figures): the
    /// measuring stick for the server's CPU, memory and latency. Realtime only, no tools.
    #[arg(long)]
    reference_relay: bool,
}

/// What a level's calls are placed against.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// The phone-agent server binary.
    PhoneAgent(PathBuf),
    /// The reference relay: `bin` run with `args` (`xtask reference-relay`) and `env` on top of
    /// the server's environment.
    ReferenceRelay {
        bin: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
    },
}

impl Target {
    fn subject(&self) -> stats::Subject {
        match self {
            Target::PhoneAgent(_) => stats::Subject::PhoneAgent,
            Target::ReferenceRelay { .. } => stats::Subject::ReferenceRelay,
        }
    }
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

pub(crate) fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Entry point of `cargo xtask bench`.
pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    if !args.no_build {
        eprintln!("==> cargo build --release -p phone-agent-server -p xtask");
        let status = std::process::Command::new(cargo_bin())
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "phone-agent-server",
                "-p",
                "xtask",
            ])
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!("cargo build --release failed");
        }
    }
    let release = target_dir(&root).join("release");
    if cfg!(debug_assertions) {
        // The load generator shares the machine with the server: run it optimized.
        let mut forwarded: Vec<String> = std::env::args().skip(1).collect();
        if !forwarded.iter().any(|a| a == "--no-build") {
            forwarded.push("--no-build".to_owned());
        }
        let xtask = release.join("xtask");
        let status = std::process::Command::new(&xtask)
            .current_dir(&root)
            .args(&forwarded)
            .status()
            .with_context(|| format!("running {}", xtask.display()))?;
        if !status.success() {
            bail!("the benchmark failed ({status})");
        }
        return Ok(());
    }
    let server_bin = args
        .server_bin
        .clone()
        .unwrap_or_else(|| release.join("phone-agent-server"));
    if !server_bin.exists() {
        bail!(
            "{} is missing: run without --no-build",
            server_bin.display()
        );
    }
    let (levels, duration) = if args.quick {
        (vec![20], Duration::from_secs(5))
    } else {
        (args.levels.clone(), args.duration)
    };
    if levels.is_empty() || levels.contains(&0) {
        bail!("--levels needs positive numbers of calls");
    }
    if args.reference_relay
        && (args.backend != crate::demo::DemoBackend::Realtime
            || args.tool_calls > 0
            || args.recording)
    {
        bail!(
            "--reference-relay needs --backend realtime, no --tool-calls and no --recording (the relay does none of them)"
        );
    }
    let mut targets = vec![Target::PhoneAgent(server_bin)];
    if args.reference_relay {
        targets.push(Target::ReferenceRelay {
            bin: std::env::current_exe().context("finding the xtask binary")?,
            args: vec!["reference-relay".to_owned()],
            env: Vec::new(),
        });
    }
    if args.tool_calls > 0 && args.backend != crate::demo::DemoBackend::Realtime {
        bail!(
            "--tool-calls needs --backend realtime (the lean mock makes Realtime function calls)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the load runtime")?;
    runtime.block_on(run_levels(&root, &targets, &levels, duration, &args))
}

async fn run_levels(
    root: &Path,
    targets: &[Target],
    levels: &[usize],
    duration: Duration,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    testkit::lean::init_clock();
    let max_level = levels.iter().copied().max().unwrap_or(0);
    check_fd_limit(max_level)?;
    eprintln!("{}", machine_summary());
    let workdir = std::env::temp_dir().join(format!("phone-agent-bench-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).context("creating the bench directory")?;
    let prompt = std::fs::read_to_string(root.join("config/agent_prompt.md"))
        .unwrap_or_else(|_| "You are a helpful voice assistant.".to_owned());
    let prompt_path = workdir.join("bench_prompt.md");
    std::fs::write(
        &prompt_path,
        format!("{prompt}\n(Benchmark call {{{{call_sid}}}}.)\n"),
    )
    .context("writing the bench prompt")?;

    let mut results = Vec::new();
    for &calls in levels {
        let ramp = args.ramp.unwrap_or_else(|| {
            Duration::from_millis(4 * calls as u64)
                .clamp(Duration::from_secs(1), Duration::from_secs(8))
        });
        eprintln!(
            "==> level {calls}: {calls} calls for {:.1} s each, started over {:.1} s",
            duration.as_secs_f64(),
            ramp.as_secs_f64()
        );
        for target in targets {
            if let Some(limit) = args.wait_idle {
                wait_idle(limit).await;
            }
            if matches!(target, Target::ReferenceRelay { .. }) {
                eprintln!("    the same level against the reference relay");
            }
            let result =
                run_level(target, &workdir, &prompt_path, calls, duration, ramp, args).await?;
            let _ = std::fs::remove_dir_all(workdir.join("data/recordings"));
            eprintln!("{}", result.json_line());
            if let Some(path) = &args.json {
                use std::io::Write as _;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                writeln!(f, "{}", result.json_line())?;
            }
            results.push(result);
        }
    }
    let _ = std::fs::remove_dir_all(&workdir);

    println!();
    println!("{}", stats::table(&results));
    for r in &results {
        println!("{}", r.json_line());
    }
    for r in &results {
        if let Some(f) = &r.first_failure {
            println!("level {}: first failure: {f}", r.calls);
        }
        if let Some(w) = &r.first_server_warning {
            println!("level {}: first server warning: {w}", r.calls);
        }
    }
    Ok(())
}

/// Waits until other processes used under 10% of a core for 3 s in a row, or `limit`.
async fn wait_idle(limit: Duration) {
    let ticks_per_s = server::clock_ticks() as f64;
    let deadline = Instant::now() + limit;
    let window = Duration::from_secs(3);
    loop {
        let (m0, s0) = (server::machine_busy_ticks(), self_cpu_ticks());
        tokio::time::sleep(window).await;
        let (m1, s1) = (server::machine_busy_ticks(), self_cpu_ticks());
        let other = (m1 - m0).saturating_sub(s1 - s0) as f64 / ticks_per_s / window.as_secs_f64();
        if other < 0.10 {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "warning: the machine is still busy ({:.0}% of a core used by other processes); running anyway",
                other * 100.0
            );
            return;
        }
        eprintln!(
            "    waiting for an idle machine ({:.0}% of a core used by other processes)",
            other * 100.0
        );
    }
}

fn check_fd_limit(calls: usize) -> anyhow::Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft: Option<u64> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok());
    // Per call: the caller's socket and the agent session's socket here (plus a transient
    // webhook connection); the server has its own limit (inherited, same value).
    let need = calls as u64 * 3 + 256;
    if let Some(soft) = soft
        && soft < need
    {
        bail!(
            "{calls} calls need about {need} file descriptors; `ulimit -n` is {soft} (raise it: `ulimit -n {need}`)"
        );
    }
    Ok(())
}

/// Cores, CPU model and kernel, for the report.
pub(crate) fn machine_summary() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("machine: {cores} cores, {model}, Linux {kernel}")
}

/// The server's whole environment; `config_file` (`PHONE_AGENT_CONFIG`) only with tools.
fn server_env(
    agent_base_url: &str,
    prompt: &Path,
    calls: usize,
    backend: crate::demo::DemoBackend,
    config_file: Option<&Path>,
) -> Vec<(String, String)> {
    let backend = match backend {
        crate::demo::DemoBackend::Realtime => "realtime",
        crate::demo::DemoBackend::Live => "live",
    };
    [
        ("PHONE_AGENT_AGENT__BACKEND", backend.to_owned()),
        ("PORT", "0".to_owned()),
        ("PHONE_AGENT_SERVER__BIND_ADDRESS", "127.0.0.1".to_owned()),
        ("PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID.to_owned()),
        ("OPENAI_API_KEY", API_KEY.to_owned()),
        ("OPENAI_BASE_URL", agent_base_url.to_owned()),
        ("PROMPT_PATH", prompt.display().to_string()),
        (
            "PHONE_AGENT_SERVER__MAX_CONCURRENT_CALLS",
            (calls + 16).to_string(),
        ),
        ("PHONE_AGENT_SERVER__SHUTDOWN_GRACE_SECS", "5".to_owned()),
        ("PHONE_AGENT_METRICS__BIND", "127.0.0.1:0".to_owned()),
        ("PHONE_AGENT_LOG__FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .chain(config_file.map(|f| ("PHONE_AGENT_CONFIG", f.display().to_string())))
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn self_cpu_ticks() -> u64 {
    server::proc_stat(std::process::id()).map_or(0, |s| s.cpu_ticks)
}

async fn run_level(
    target: &Target,
    workdir: &Path,
    prompt: &Path,
    calls: usize,
    duration: Duration,
    ramp: Duration,
    args: &BenchArgs,
) -> anyhow::Result<LevelResult> {
    let (backend, tool_calls) = (args.backend, args.tool_calls);
    let ticks_per_s = server::clock_ticks() as f64;
    let registry = Arc::new(Registry::default());
    let tool = LeanTool {
        name: webhook::TOOL_NAME,
        arguments: webhook::TOOL_ARGUMENTS,
        answer: webhook::TOOL_ANSWER,
    };
    let mock = LeanAgent::start(Arc::clone(&registry), tool_calls, tool)
        .await
        .context("starting the mock agent")?;
    let mut hook = None;
    let mut config_file = None;
    if tool_calls > 0 {
        let h = ToolWebhook::start()
            .await
            .context("starting the tool webhook")?;
        let path = workdir.join("bench_tools.toml");
        std::fs::write(&path, h.config_toml()).context("writing the tool configuration")?;
        hook = Some(h);
        config_file = Some(path);
    }
    let (bin, bin_args, extra_env) = match target {
        Target::PhoneAgent(bin) => (bin, &[][..], &[][..]),
        Target::ReferenceRelay { bin, args, env } => (bin, &args[..], &env[..]),
    };
    let server = ServerProcess::start_with_args(
        bin,
        bin_args,
        workdir,
        &server_env(
            &mock.base_url(),
            prompt,
            calls,
            backend,
            config_file.as_deref(),
        )
        .into_iter()
        .chain(
            args.no_records
                .then(|| ("PHONE_AGENT_DATABASE__URL".to_owned(), "off".to_owned())),
        )
        .chain(args.recording.then(|| {
            (
                "PHONE_AGENT_RECORDING__ENABLED".to_owned(),
                "true".to_owned(),
            )
        }))
        .chain(extra_env.iter().cloned())
        .collect::<Vec<_>>(),
    )
    .await?;
    let sim = testkit::twilio::CallSimulator::new(&format!("http://{}", server.addr))
        .public_url(PUBLIC_URL)
        .auth_token(AUTH_TOKEN)
        .account_sid(ACCOUNT_SID);
    let ctx = Arc::new(LevelContext::new(
        sim,
        server.addr.to_string(),
        AUTH_TOKEN.to_owned(),
        Arc::clone(&registry),
    ));

    // Warm up with a few short calls (code pages, lazily built runtime and metrics state are
    // part of the idle server, not of the calls), let it go idle, then take the baseline and
    // reset the peak.
    let warm_start = Instant::now();
    let warm: Vec<_> = (0..WARM_UP_CALLS)
        .map(|i| {
            let slot = Arc::new(CallSlot::new(u32::MAX - i));
            tokio::spawn(Box::pin(caller::run(
                Arc::clone(&ctx),
                slot,
                testkit::sid::new_sid("CA"),
                warm_start,
                warm_start + WARM_UP,
            )))
        })
        .collect();
    for task in warm {
        let _ = task.await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.live_sessions() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = server.stat()?;
    let peak_reset = server::reset_peak(server.pid).is_ok();
    // The warm-up calls used the webhook too: count the level's requests only.
    let hook_before = hook.as_ref().map_or((0, 0), |h| {
        (
            h.answered.load(Ordering::Relaxed),
            h.refused.load(Ordering::Relaxed),
        )
    });

    let t0 = Instant::now() + Duration::from_millis(100);
    let mut slots = Vec::with_capacity(calls);
    let mut tasks = Vec::with_capacity(calls);
    for i in 0..calls {
        let slot = Arc::new(CallSlot::new(i as u32));
        slots.push(Arc::clone(&slot));
        let start = t0 + ramp.mul_f64(i as f64 / calls as f64);
        let sid = testkit::sid::new_sid("CA");
        tasks.push(tokio::spawn(Box::pin(caller::run(
            Arc::clone(&ctx),
            slot,
            sid,
            start,
            start + duration,
        ))));
    }
    let level_cpu0 = server.stat()?.cpu_ticks;

    // The steady window: every call started (and greeted), none ended yet.
    let window_start = t0 + ramp + Duration::from_millis(500);
    let window_end = t0 + duration;
    let mut window = None;
    if window_end > window_start + Duration::from_secs(1) {
        tokio::time::sleep_until(window_start).await;
        let (s0, l0, m0) = (
            server.stat()?.cpu_ticks,
            self_cpu_ticks(),
            server::machine_busy_ticks(),
        );
        tokio::time::sleep_until(window_end).await;
        let (s1, l1, m1) = (
            server.stat()?.cpu_ticks,
            self_cpu_ticks(),
            server::machine_busy_ticks(),
        );
        let other = (m1 - m0).saturating_sub((s1 - s0) + (l1 - l0));
        window = Some((s1 - s0, l1 - l0, other, window_end - window_start));
    }

    let mut outcomes = Vec::with_capacity(calls);
    for task in tasks {
        outcomes.push(task.await.unwrap_or_else(|e| CallOutcome {
            failure: Some(Failure::ServerEnded),
            detail: format!("call task failed: {e}"),
            ..CallOutcome::default()
        }));
    }
    // The agent sessions end when the server tears the calls down.
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.live_sessions() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end_stat = server.stat()?;
    let logs = Arc::clone(&server.logs);
    if let Err(e) = server.stop().await {
        eprintln!("warning: {e:#}");
    }

    let mut r = LevelResult {
        subject: target.subject(),
        calls,
        duration_s: duration.as_secs_f64(),
        ramp_s: ramp.as_secs_f64(),
        baseline_rss_kib: baseline.rss_kib,
        peak_rss_kib: if peak_reset {
            end_stat.hwm_kib
        } else {
            end_stat.hwm_kib.max(baseline.rss_kib)
        },
        server_warnings: logs.warn.load(Ordering::Relaxed),
        server_errors: logs.error.load(Ordering::Relaxed),
        first_server_warning: logs.first.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        ..LevelResult::default()
    };
    r.rss_kib_per_call = r.peak_rss_kib.saturating_sub(r.baseline_rss_kib) as f64 / calls as f64;

    let (mut c2a, mut a2c, mut barge, mut first, mut lag) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut call_seconds = 0.0;
    let mut c2a_frames = Frames::default();
    let mut a2c_frames = Frames::default();
    let mut tools = hook.as_ref().map(|h| ToolResult {
        per_call: tool_calls,
        webhook_answered: h.answered.load(Ordering::Relaxed) - hook_before.0,
        webhook_refused: h.refused.load(Ordering::Relaxed) - hook_before.1,
        ..ToolResult::default()
    });
    let mut tool_rtt = Vec::new();
    for (slot, mut o) in slots.iter().zip(outcomes) {
        let report = slot.take_report();
        if o.failure.is_none() && report.is_none() {
            o.failure = Some(Failure::NoAgentSession);
        }
        if let Some(f) = o.failure {
            r.failed += 1;
            *r.failures.entry(f.as_str()).or_default() += 1;
            if r.first_failure.is_none() {
                r.first_failure = Some(format!("call {}: {}: {}", slot.idx, f.as_str(), o.detail));
            }
        }
        call_seconds += o.streamed.as_secs_f64();
        a2c.append(&mut o.a2c_us);
        barge.append(&mut o.barge_us);
        lag.append(&mut o.lag_us);
        first.extend(o.first_audio_us);
        r.barge_attempts += o.barge_attempts;
        r.clears += o.clears;
        r.unexpected_clears += o.unexpected_clears;
        r.violations += o.violations;
        r.marks_echoed += o.marks_echoed;
        let t = &o.agent_frames;
        a2c_frames.expected += u64::from(o.agent_frames_expected);
        a2c_frames.received += t.received;
        a2c_frames.lost += t.lost(o.agent_frames_expected);
        a2c_frames.duplicated += t.duplicated;
        a2c_frames.reordered += t.reordered;
        a2c_frames.misrouted += o.misrouted;
        if let Some(mut rep) = report {
            let t = &rep.caller_frames;
            c2a_frames.expected += u64::from(o.frames_sent);
            c2a_frames.received += t.received;
            c2a_frames.lost += t.lost(o.frames_sent);
            c2a_frames.duplicated += t.duplicated;
            c2a_frames.reordered += t.reordered;
            c2a_frames.misrouted += rep.misrouted;
            r.agent_protocol_errors += rep.protocol_errors + rep.unstamped;
            r.truncates += rep.truncates;
            c2a.append(&mut rep.latencies_us);
            if let Some(t) = tools.as_mut() {
                t.sent += rep.tool_calls;
                t.bad_outputs += rep.tool_bad_outputs;
                tool_rtt.append(&mut rep.tool_rtt_us);
            }
        }
    }
    r.c2a = Dist::of(&mut c2a);
    r.a2c = Dist::of(&mut a2c);
    r.barge_in = Dist::of(&mut barge);
    r.first_audio = Dist::of(&mut first);
    r.send_lag = Dist::of(&mut lag);
    if let Some(t) = tools.as_mut() {
        t.round_trip = Dist::of(&mut tool_rtt);
    }
    r.tools = tools;
    r.c2a_frames = c2a_frames;
    r.a2c_frames = a2c_frames;
    let active = (calls - r.failed).max(1) as f64;
    if let Some((server_ticks, load_ticks, other_ticks, span)) = window {
        let call_s = active * span.as_secs_f64();
        r.window_s = span.as_secs_f64();
        r.other_cpu_pct = other_ticks as f64 / ticks_per_s * 100.0 / span.as_secs_f64();
        r.cpu_ms_per_call_s = server_ticks as f64 / ticks_per_s * 1000.0 / call_s;
        r.load_cpu_ms_per_call_s = load_ticks as f64 / ticks_per_s * 1000.0 / call_s;
    }
    if call_seconds > 0.0 {
        let ticks = end_stat.cpu_ticks.saturating_sub(level_cpu0);
        r.cpu_ms_per_call_s_total = ticks as f64 / ticks_per_s * 1000.0 / call_seconds;
    }
    if mock.orphans.load(Ordering::Relaxed) > 0 {
        eprintln!(
            "warning: {} agent sessions named no known call",
            mock.orphans.load(Ordering::Relaxed)
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<super::BenchArgs, clap::Error> {
        use clap::Parser as _;
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn options() {
        let a = parse(&[]).expect("defaults");
        assert_eq!(a.levels, vec![100, 500, 1000]);
        assert_eq!(a.duration, Duration::from_secs(20));
        assert!(!a.quick && !a.no_build && a.ramp.is_none() && a.json.is_none());
        assert!(a.wait_idle.is_none());
        let a = parse(&[
            "--levels",
            "100,500",
            "--duration",
            "30s",
            "--quick",
            "--ramp",
            "2s",
        ])
        .expect("options");
        assert_eq!(a.levels, vec![100, 500]);
        assert_eq!(a.duration, Duration::from_secs(30));
        assert_eq!(a.ramp, Some(Duration::from_secs(2)));
        assert!(a.quick);
        assert!(parse(&["--levels", "ten"]).is_err());
        assert_eq!(parse(&[]).expect("defaults").tool_calls, 0);
        let a = parse(&["--tool-calls", "3", "--levels", "100"]).expect("tool calls");
        assert_eq!(a.tool_calls, 3);
        assert!(parse(&["--tool-calls", "-1"]).is_err());
    }

    /// Set in the environment of [`reference_relay_child`]'s process.
    const RELAY_CHILD_ENV: &str = "XTASK_TEST_REFERENCE_RELAY_CHILD";

    /// Does nothing in a normal test run. [`reference_relay_level`] runs this test binary
    /// with this test alone and [`RELAY_CHILD_ENV`] set: the process is then the reference
    /// relay (`xtask reference-relay`), until the level sends it SIGTERM.
    #[test]
    fn reference_relay_child() {
        if std::env::var_os(RELAY_CHILD_ENV).is_some() {
            super::relay::main().expect("the reference relay");
        }
    }

    /// A small level through the reference relay, run as its own process like
    /// `--reference-relay` runs it, with the test kit's lean peers (four warm-up calls, then
    /// three 4 s calls): every call placed, greeted and hung up, nothing lost, duplicated,
    /// reordered or misrouted either way, every Twilio message well-formed, marks echoed after
    /// playout, every barge-in answered with a `clear`.
    #[test]
    fn reference_relay_level() {
        let exe = std::env::current_exe().expect("the test binary");
        let target = super::Target::ReferenceRelay {
            bin: exe,
            args: [
                "bench::tests::reference_relay_child",
                "--exact",
                "--nocapture",
                "--quiet",
                "--test-threads=1",
            ]
            .map(str::to_owned)
            .to_vec(),
            env: vec![(RELAY_CHILD_ENV.to_owned(), "1".to_owned())],
        };
        let args = parse(&["--reference-relay"]).expect("options");
        let dir =
            std::env::temp_dir().join(format!("xtask-reference-relay-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let prompt = dir.join("prompt.md");
        std::fs::write(&prompt, "Test call {{call_sid}}.\n").expect("prompt");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let r = runtime
            .block_on(async {
                testkit::lean::init_clock();
                super::run_level(
                    &target,
                    &dir,
                    &prompt,
                    3,
                    Duration::from_secs(4),
                    Duration::from_secs(1),
                    &args,
                )
                .await
            })
            .expect("the level");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(r.subject, super::stats::Subject::ReferenceRelay);
        assert_eq!(r.failed, 0, "{:?}", r.first_failure);
        assert_eq!(r.first_audio.n, 3);
        for (dir, f) in [("c→a", &r.c2a_frames), ("a→c", &r.a2c_frames)] {
            assert!(f.expected > 0, "{dir}: no frames");
            assert_eq!(
                (f.lost, f.duplicated, f.reordered, f.misrouted),
                (0, 0, 0, 0),
                "{dir}"
            );
        }
        assert_eq!((r.violations, r.agent_protocol_errors), (0, 0));
        assert!(r.marks_echoed > 0);
        assert!(r.barge_attempts > 0);
        assert_eq!((r.clears, r.unexpected_clears), (r.barge_attempts, 0));
        assert_eq!((r.server_warnings, r.server_errors), (0, 0));
        assert!(r.json_line().contains(r#""bench":"reference-relay""#));
    }

    #[test]
    fn account_sid_is_a_sid() {
        assert!(testkit::sid::is_sid("AC", super::ACCOUNT_SID));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("3h").is_err());
    }
}
