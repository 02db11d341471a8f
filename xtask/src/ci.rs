//! `cargo xtask ci`: the same steps as `.ci/run`.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates whose normal dependency tree must stay free of HTTP servers and WebSockets.
/// `openai-realtime` is checked without its `client` feature.
const PROTOCOL_AND_CORE_CRATES: &[&str] = &["twilio-media", "openai-realtime", "bridge-core"];
const FORBIDDEN_IN_CORE: &[&str] = &["hyper", "tokio-tungstenite", "tungstenite"];

/// The README's test command.
pub(crate) const TEST_COMMAND: &[&str] = &["test", "--workspace"];

pub(crate) fn run(with_tests: bool) -> anyhow::Result<()> {
    let root = workspace_root();
    step("cargo fmt --check", || {
        cargo(&root, &["fmt", "--all", "--", "--check"])
    })?;
    step("layering check", || layering(&root))?;
    step("cargo clippy", || {
        cargo(
            &root,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ],
        )
    })?;
    // The API docs as a reader of docs.rs sees them: every intra-doc link must resolve.
    step("cargo doc", || {
        cargo_with_env(
            &root,
            &["doc", "--workspace", "--no-deps", "--locked"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        )
    })?;
    if with_tests {
        step("cargo test --workspace", || cargo(&root, TEST_COMMAND))?;
    }
    println!("xtask ci: all steps passed");
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    println!("==> {name}");
    f().with_context(|| format!("step failed: {name}"))
}

fn layering(root: &Path) -> anyhow::Result<()> {
    for krate in PROTOCOL_AND_CORE_CRATES {
        let output = Command::new(cargo_bin())
            .current_dir(root)
            .args([
                "tree", "--locked", "-p", krate, "-e", "normal", "--prefix", "none", "--format",
                "{p}",
            ])
            .output()
            .context("running cargo tree")?;
        if !output.status.success() {
            bail!(
                "cargo tree -p {krate} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let tree = String::from_utf8_lossy(&output.stdout);
        let offenders: Vec<&str> = tree
            .lines()
            .filter(|line| {
                let name = line.split_whitespace().next().unwrap_or_default();
                FORBIDDEN_IN_CORE.contains(&name)
            })
            .collect();
        if !offenders.is_empty() {
            bail!(
                "layering violation: `{krate}` depends on {} (bridge-core and the protocol crates must not pull HTTP servers or WebSockets)",
                offenders.join(", ")
            );
        }
        println!(
            "    {krate}: ok ({} packages, none of {})",
            tree.lines().count(),
            FORBIDDEN_IN_CORE.join(", ")
        );
    }
    Ok(())
}

fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    cargo_with_env(root, args, &[])
}

fn cargo_with_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let status = Command::new(cargo_bin())
        .current_dir(root)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} exited with {status}", args.join(" "));
    }
    Ok(())
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

pub(crate) fn workspace_root() -> PathBuf {
    // Invariant: xtask lives one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
