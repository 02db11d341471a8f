//! The `phone-agent-server` binary: load the configuration, start the server, drain on
//! SIGTERM/SIGINT, exit 0.
//!
//! ```text
//! phone-agent-server                 run the server
//! phone-agent-server --healthcheck   GET /health on the configured port (for containers)
//! phone-agent-server call +1…        place an outbound call via the admin API (see cli)
//! phone-agent-server --help | --version
//! ```

// The binary reports startup errors and usage on the terminal, before logging exists.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use phone_agent_server::config::Config;
use phone_agent_server::{Server, cli, healthcheck, logging, shutdown};

const USAGE: &str = "\
phone-agent-server: answer Twilio phone calls with an OpenAI realtime voice agent

USAGE:
    phone-agent-server                 run the server
    phone-agent-server --healthcheck   exit 0 if GET /health on the configured port answers 200
    phone-agent-server call +15551234567 [--profile NAME] [--var KEY=VALUE]... [--from +1...]
                                       place an outbound call through the running server
    phone-agent-server --help          this text
    phone-agent-server --version       the version

Configuration comes from the environment and an optional .env file in the working directory
(OPENAI_API_KEY, PUBLIC_URL, PORT, PROMPT_PATH, TWILIO_AUTH_TOKEN, ...; every setting also has
a PHONE_AGENT_<SECTION>__<KEY> form), and from the TOML file named by PHONE_AGENT_CONFIG.
See .env.example and config/default.toml.";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mode = args.next();
    if mode.as_deref() == Some("call") {
        return call_main(args.collect());
    }
    if let Some(extra) = args.next() {
        eprintln!("phone-agent-server: unexpected argument {extra:?}\n\n{USAGE}");
        return ExitCode::from(2);
    }
    match mode.as_deref() {
        None => run(),
        Some("--healthcheck") => healthcheck_main(),
        Some("--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("--version" | "-V") => {
            println!("phone-agent-server {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("phone-agent-server: unknown argument {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> ExitCode {
    // Configuration is read before any thread exists; nothing here writes the environment.
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("phone-agent-server: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logging::init(&config.log) {
        eprintln!("phone-agent-server: {e}");
        return ExitCode::from(2);
    }
    // Exactly one TLS crypto provider for the process (the OpenAI client uses rustls). An
    // error means one is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "could not start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Handlers first: a SIGTERM right after the "listening" line must drain, not kill.
        let signal = shutdown::listen();
        let handle = match Server::new(config).bind().await {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!(error = %e, "could not bind the listening socket");
                return ExitCode::FAILURE;
            }
        };
        let signal = signal.await;
        tracing::info!(signal, "shutdown requested");
        handle.shutdown();
        let report = handle.wait().await;
        tracing::info!(
            calls_at_shutdown = report.calls_at_shutdown,
            calls_ended = report.calls_ended,
            clean = report.clean,
            "bye"
        );
        ExitCode::SUCCESS
    })
}

/// `call …`: places an outbound call through the running server (see `cli`).
fn call_main(args: Vec<String>) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", cli::CALL_USAGE);
        return ExitCode::SUCCESS;
    }
    let call = match cli::parse_call_args(args) {
        Ok(call) => call,
        Err(e) => {
            eprintln!("phone-agent-server call: {e}\n\n{}", cli::CALL_USAGE);
            return ExitCode::from(2);
        }
    };
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("phone-agent-server call: {e}");
            return ExitCode::from(2);
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("phone-agent-server call: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::place_call(&config, &call)) {
        Ok(sid) => {
            println!("{sid}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("phone-agent-server call: {e}");
            ExitCode::FAILURE
        }
    }
}

fn healthcheck_main() -> ExitCode {
    let (ip, port) = match Config::load() {
        Ok(config) => (config.server.bind_address, config.server.port),
        Err(_) => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 3000),
    };
    let ip = match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    match healthcheck::check(SocketAddr::new(ip, port), Duration::from_secs(3)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}
