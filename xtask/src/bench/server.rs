//! The server under test, as its own process: start, find its port, read its CPU time and
//! memory from `/proc`, stop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Resource usage of a process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcStat {
    /// utime + stime, in clock ticks.
    pub(crate) cpu_ticks: u64,
    /// Resident set size, KiB.
    pub(crate) rss_kib: u64,
    /// Peak resident set size (since start or the last [`reset_peak`]), KiB.
    pub(crate) hwm_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub(crate) fn proc_stat(pid: u32) -> anyhow::Result<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces, hence the last ')'):
    // state(3) ... utime(14) stime(15).
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/<pid>/stat format")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("field {n} of /proc/{pid}/stat"))
    };
    let cpu_ticks = field(14)? + field(15)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcStat {
        cpu_ticks,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

/// Resets a process's peak RSS (VmHWM) to its current RSS (`/proc/<pid>/clear_refs`, 5).
pub(crate) fn reset_peak(pid: u32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting the peak RSS of {pid}"))
}

/// Busy CPU time of the whole machine (all cores, `/proc/stat`), in clock ticks.
pub(crate) fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is included in user).
    let total: u64 = v.iter().take(8).sum();
    total - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0)
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux).
pub(crate) fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Log lines of the server by level.
#[derive(Debug, Default)]
pub(crate) struct LogCounts {
    pub(crate) warn: AtomicU64,
    pub(crate) error: AtomicU64,
    /// The first warning or error (message only).
    pub(crate) first: std::sync::Mutex<Option<String>>,
}

/// A running server process.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) logs: Arc<LogCounts>,
}

impl ServerProcess {
    /// Starts `bin` in `dir` with exactly `env` (plus `PATH`), and waits until it listens.
    pub(crate) async fn start(
        bin: &Path,
        dir: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<ServerProcess> {
        Self::start_with_args(bin, &[], dir, env).await
    }

    /// [`ServerProcess::start`] with command-line arguments (the reference relay is
    /// `xtask reference-relay`).
    pub(crate) async fn start_with_args(
        bin: &Path,
        args: &[String],
        dir: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<ServerProcess> {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let stderr = child.stderr.take().context("server stderr")?;
        let logs = Arc::new(LogCounts::default());
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<SocketAddr>();
        let counts = Arc::clone(&logs);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut addr_tx = Some(addr_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if let Some(tx) = addr_tx.take() {
                    match find_str(&v, "local_addr").and_then(|a| a.parse().ok()) {
                        Some(addr) => {
                            let _ = tx.send(addr);
                        }
                        None => addr_tx = Some(tx),
                    }
                }
                let level = v.get("level").and_then(|l| l.as_str()).unwrap_or_default();
                let counter = match level {
                    "WARN" => &counts.warn,
                    "ERROR" => &counts.error,
                    _ => continue,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let mut first = counts.first.lock().unwrap_or_else(|p| p.into_inner());
                if first.is_none() {
                    *first = find_str(&v, "message").map(|m| {
                        let error = find_str(&v, "error").unwrap_or_default();
                        format!("{level} {m} {error}")
                    });
                }
            }
        });
        let stderr_tail = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let tail = Arc::clone(&stderr_tail);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                t.push(line);
                if t.len() > 20 {
                    t.remove(0);
                }
            }
        });
        let addr = match tokio::time::timeout(Duration::from_secs(20), addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let _ = child.kill().await;
                let tail = stderr_tail
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .join("\n");
                bail!("the server did not report its address; stderr:\n{tail}");
            }
        };
        let health = format!("http://{addr}/health");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match testkit::http::get(&health).await {
                Ok(r) if r.status == 200 => break,
                _ if tokio::time::Instant::now() > deadline => {
                    let _ = child.kill().await;
                    bail!("the server at {addr} did not become healthy");
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        Ok(ServerProcess {
            child,
            pid,
            addr,
            logs,
        })
    }

    pub(crate) fn stat(&self) -> anyhow::Result<ProcStat> {
        proc_stat(self.pid)
    }

    /// SIGTERM, then wait (at most 15 s) for a graceful exit; kill otherwise.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => bail!("the server exited with {status}"),
            Ok(Err(e)) => Err(e).context("waiting for the server"),
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("the server did not exit within 15 s of SIGTERM")
            }
        }
    }
}

/// A string field at the top level or under `fields`.
fn find_str<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .or_else(|| v.get("fields").and_then(|f| f.get(key)))
        .and_then(|s| s.as_str())
}
