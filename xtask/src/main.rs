//! `cargo xtask …` — developer tooling for phone-agent.
//!
//! * `cargo xtask ci` — exactly what CI runs: formatting, the layering check, clippy, then the
//!   README's test command (`cargo test --workspace`).
//! * `cargo xtask demo` — one simulated call through the real server and a mock OpenAI agent,
//!   offline, with a timeline and latency report (greeting, turns, barge-in, hang-up);
//!   `--backend live` runs the GPT-Live version (self-interruption, delegated tool call);
//!   `--console` prints the operator console's URL and keeps the server up a minute after the
//!   call.
//! * `cargo xtask call` — one simulated Twilio call against a running server.
//! * `cargo xtask mock-agent` — the mock OpenAI Realtime server, standalone.
//! * `cargo xtask chaos` — many calls through the server binary while the mock agent fails on
//!   purpose (refused, 401, dropped, hung); fails if a caller was left in silence or an agent
//!   session leaked.
//! * `cargo xtask bench` — concurrent simulated calls against the release server: latency,
//!   loss, CPU and memory per call (BENCHMARKS.md).
//!
//! Each subcommand lives in its own module with its own `Args`; add one by adding a variant to
//! [`Command`] and an arm to `main`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod call;
mod capture;
mod chaos;
mod ci;
mod demo;
mod demo_live;
mod mock_agent;
mod report;
mod wav;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "phone-agent developer tooling")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the CI checks locally: fmt, layering, clippy, tests.
    Ci {
        /// Skip the test step (CI's script runs the README's test command itself).
        #[arg(long)]
        no_test: bool,
    },
    /// One simulated call through the real server and a mock OpenAI agent, offline: greeting,
    /// questions, a barge-in, hang-up; prints the timeline and what every side measured.
    Demo(demo::Args),
    /// Place one simulated Twilio call against a running server and print its timeline.
    Call(call::Args),
    /// Run the mock OpenAI Realtime server (or, with --live, GPT-Live) standalone (point
    /// OPENAI_BASE_URL at it).
    MockAgent(mock_agent::Args),
    /// Load-test the release server: concurrent simulated calls per level; latency, loss,
    /// CPU and memory per call (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// The bench's reference relay (a measuring stick, not a product): a minimal Twilio ↔
    /// Realtime relay configured by the server's environment; `bench --reference-relay` runs it.
    #[command(hide = true)]
    ReferenceRelay,
    /// Calls through the server binary while the mock agent fails on purpose (connect refused,
    /// 401, TCP dropped or hung mid-answer); fails if a caller was left in silence (neither the
    /// agent nor the fallback line) or an agent session leaked.
    Chaos(chaos::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Ci { no_test } => ci::run(!no_test),
        Command::Demo(args) => exit_on_error(demo::run(&args)),
        Command::Call(args) => exit_on_error(runtime().and_then(|rt| rt.block_on(call::run(args)))),
        Command::MockAgent(args) => {
            exit_on_error(runtime().and_then(|rt| rt.block_on(mock_agent::run(args))))
        }
        Command::Bench(args) => exit_on_error(bench::run(args)),
        Command::ReferenceRelay => exit_on_error(bench::relay::main()),
        Command::Chaos(args) => exit_on_error(chaos::run(&args)),
    }
}

/// Tests that run a server in this process take turns: the demos capture the server's log
/// events with a thread-local tracing subscriber, and an in-process server running on other
/// threads at the same time (the chaos test) can make them miss events (tracing caches each
/// call site's interest process-wide).
#[cfg(test)]
pub(crate) static IN_PROCESS_SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Prints an error as one line with its causes (`error: context: cause`) and exits with 1.
fn exit_on_error(result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

/// A multi-threaded runtime for the subcommands that talk to the network.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ci_keeps_its_flags() {
        assert!(matches!(parse(&["ci"]), Ok(Command::Ci { no_test: false })));
        assert!(matches!(
            parse(&["ci", "--no-test"]),
            Ok(Command::Ci { no_test: true })
        ));
    }

    #[test]
    fn call_defaults_and_options() {
        let Ok(Command::Call(args)) = parse(&["call"]) else {
            panic!("`call` parses");
        };
        assert_eq!(args.url, "http://127.0.0.1:3000");
        assert_eq!(args.seconds, 30);
        assert!(args.wav.is_empty() && args.say.is_empty() && args.out.is_none());

        let Ok(Command::Call(args)) = parse(&[
            "call",
            "--url",
            "http://127.0.0.1:8080",
            "--say",
            "hello",
            "--say",
            "book a table",
            "--out",
            "agent.wav",
            "--auth-token",
            "t0k",
            "--public-url",
            "https://x.example",
            "--seconds",
            "12",
        ]) else {
            panic!("`call` with every option parses");
        };
        assert_eq!(args.url, "http://127.0.0.1:8080");
        assert_eq!(args.say, vec!["hello", "book a table"]);
        assert_eq!(args.out.as_deref(), Some(std::path::Path::new("agent.wav")));
        assert_eq!(args.auth_token.as_deref(), Some("t0k"));
        assert_eq!(args.public_url.as_deref(), Some("https://x.example"));
        assert_eq!(args.seconds, 12);

        assert!(parse(&["call", "--wav", "a.wav", "--say", "hi"]).is_err());
        assert!(parse(&["call", "--seconds", "soon"]).is_err());
    }

    #[test]
    fn demo_and_mock_agent_options() {
        assert!(matches!(
            parse(&["demo"]),
            Ok(Command::Demo(demo::Args {
                out: None,
                verbose: false,
                backend: demo::DemoBackend::Realtime,
                console: false,
                no_prewarm: false,
            }))
        ));
        let Ok(Command::Demo(args)) = parse(&["demo", "--console"]) else {
            panic!("`demo --console` parses");
        };
        assert!(args.console);
        let Ok(Command::Demo(args)) = parse(&["demo", "--backend", "live"]) else {
            panic!("`demo --backend live` parses");
        };
        assert_eq!(args.backend, demo::DemoBackend::Live);
        let Ok(Command::Demo(args)) = parse(&["demo", "--no-prewarm"]) else {
            panic!("`demo --no-prewarm` parses");
        };
        assert!(args.no_prewarm);
        let Ok(Command::Demo(args)) = parse(&["demo", "--out", "demo.wav", "--verbose"]) else {
            panic!("`demo --out --verbose` parses");
        };
        assert_eq!(args.out.as_deref(), Some(std::path::Path::new("demo.wav")));
        assert!(args.verbose);
        assert!(matches!(
            parse(&["mock-agent"]),
            Ok(Command::MockAgent(mock_agent::Args {
                port: None,
                live: false
            }))
        ));
        assert!(matches!(
            parse(&["mock-agent", "--port", "4010"]),
            Ok(Command::MockAgent(mock_agent::Args {
                port: Some(4010),
                live: false
            }))
        ));
    }
}
