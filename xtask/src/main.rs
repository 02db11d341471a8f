//! `cargo xtask …` — developer tooling for phone-agent.
//!
//! * `cargo xtask ci` — exactly what CI runs: formatting, the layering check, clippy, then the
//!   README's test command (`cargo test --workspace`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod ci;

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Ci { no_test } => ci::run(!no_test),
    }
}
