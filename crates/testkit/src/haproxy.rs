//! A real HAProxy load balancer for tests: a generated configuration in a temp dir, one HTTP
//! frontend on a loopback port, round-robin over the given backends with no affinity, stopped
//! and removed on drop.
//!
//! Uses the `haproxy` binary of Debian's `haproxy` package (`/usr/sbin/haproxy`, or `haproxy`
//! on `PATH`), in the foreground (`-db`). The configuration is what a load balancer in front
//! of phone-agent needs (see `docs/scaling.md`):
//!
//! * `balance roundrobin`, no stickiness: consecutive requests go to consecutive servers;
//! * WebSocket-friendly timeouts: `timeout tunnel 1h` once a connection is upgraded, so a
//!   media stream lives as long as its call; `http-server-close`, so no idle server connection
//!   outlives a response (a draining server never sees a request on a reused connection);
//! * health checks of `GET <check_path>` every 100 ms, one failure marks a server down and one
//!   success up again (a server answering `/ready` with 503 while it drains is taken out);
//! * connection failures are retried once on another server (`retries 1`, `option
//!   redispatch 1`, `retry-on conn-failure empty-response`): a server that has stopped
//!   listening costs no request.
//!
//! The runtime API (a Unix socket in the temp dir) reports the servers' states
//! ([`Haproxy::server_states`], [`Haproxy::wait_for_state`]).
//!
//! Missing binary: [`Haproxy::start_or_skip`] fails with a clear message in CI (`CI` set to
//! `true`) and otherwise returns `None` after a loud message, like [`crate::postgres`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// Why HAProxy could not be started or asked.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    /// The binary is not installed.
    #[error(
        "haproxy not found (/usr/sbin/haproxy or on PATH; install Debian's `haproxy` package: \
         apt-get install -y haproxy)"
    )]
    NotInstalled,
    /// A step failed.
    #[error("{step} failed: {detail}")]
    Step {
        /// What was being done.
        step: &'static str,
        /// Its output or error.
        detail: String,
    },
}

fn step(step: &'static str) -> impl FnOnce(std::io::Error) -> HaproxyError {
    move |e| HaproxyError::Step {
        step,
        detail: e.to_string(),
    }
}

/// One backend server: its name in the configuration (and in [`Haproxy::server_states`]) and
/// address.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The server's name (letters, digits, `-`, `_`).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A running HAProxy.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    dir: PathBuf,
    port: u16,
}

/// The `haproxy` binary, if installed.
fn find_bin() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/sbin/haproxy");
    if debian.is_file() {
        return Some(debian);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("haproxy"))
        .find(|p| p.is_file())
}

/// A free loopback port (bound and released: take it before starting what needs to know it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The configuration file's text.
fn config(port: u16, socket: &Path, check_path: &str, backends: &[Backend]) -> String {
    let mut servers = String::new();
    for b in backends {
        servers.push_str(&format!("    server {} {}\n", b.name, b.addr));
    }
    format!(
        "\
global
    stats socket {socket} mode 600 level admin
    stats timeout 10s

defaults
    mode http
    option http-server-close
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    # An upgraded connection (a media stream) lasts as long as its call.
    timeout tunnel 1h
    timeout client-fin 5s
    timeout server-fin 5s
    retries 1
    option redispatch 1
    retry-on conn-failure empty-response

frontend public
    bind 127.0.0.1:{port}
    default_backend instances

backend instances
    balance roundrobin
    option httpchk GET {check_path}
    http-check expect status 200
    default-server check inter 100ms fastinter 100ms downinter 100ms fall 1 rise 1
{servers}",
        socket = socket.display(),
    )
}

impl Haproxy {
    /// Starts HAProxy, or (outside CI, binary missing) says loudly that the test is skipped and
    /// returns `None`. Panics with the reason in CI or on any other failure.
    pub async fn start_or_skip(
        test: &str,
        port: u16,
        check_path: &str,
        backends: &[Backend],
    ) -> Option<Haproxy> {
        match Haproxy::start(port, check_path, backends).await {
            Ok(h) => Some(h),
            Err(HaproxyError::NotInstalled) if std::env::var("CI").as_deref() != Ok("true") => {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!(
                        "\n!!! SKIPPING {test}: {} — this test runs in CI (CI=true) !!!\n",
                        HaproxyError::NotInstalled
                    );
                }
                None
            }
            Err(e) => panic!("{test}: cannot start HAProxy: {e}"),
        }
    }

    /// Whether the binary is installed, to skip a test before starting anything else: outside
    /// CI a missing binary is said loudly and gives `false`; in CI (`CI=true`) it panics.
    pub fn installed_or_skip(test: &str) -> bool {
        if find_bin().is_some() {
            return true;
        }
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: {}", HaproxyError::NotInstalled);
        }
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "\n!!! SKIPPING {test}: {} — this test runs in CI (CI=true) !!!\n",
                HaproxyError::NotInstalled
            );
        }
        false
    }

    /// Writes the configuration and starts HAProxy with its frontend on `127.0.0.1:port`
    /// (take it from [`free_port`]); returns once the frontend accepts connections and the
    /// runtime API answers.
    pub async fn start(
        port: u16,
        check_path: &str,
        backends: &[Backend],
    ) -> Result<Haproxy, HaproxyError> {
        static N: AtomicU64 = AtomicU64::new(0);
        let bin = find_bin().ok_or(HaproxyError::NotInstalled)?;
        let dir = std::env::temp_dir().join(format!(
            "testkit-haproxy-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(step("creating the HAProxy directory"))?;
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(
            &cfg,
            config(port, &dir.join("admin.sock"), check_path, backends),
        )
        .map_err(step("writing haproxy.cfg"))?;
        let check = Command::new(&bin)
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(step("haproxy -c"))?;
        if !check.status.success() {
            return Err(HaproxyError::Step {
                step: "haproxy -c (configuration check)",
                detail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&check.stdout),
                    String::from_utf8_lossy(&check.stderr)
                ),
            });
        }
        let child = Command::new(&bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(step("starting haproxy"))?;
        let mut proxy = Haproxy { child, dir, port };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let listening = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok();
            if listening && proxy.server_states().await.is_ok() {
                return Ok(proxy);
            }
            if let Ok(Some(status)) = proxy.child.try_wait() {
                return Err(HaproxyError::Step {
                    step: "starting haproxy",
                    detail: format!("exited with {status} (port {port} taken?)"),
                });
            }
            if tokio::time::Instant::now() > deadline {
                return Err(HaproxyError::Step {
                    step: "starting haproxy",
                    detail: "not listening after 10 s".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The frontend's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends one command to the runtime API and returns its answer.
    pub async fn command(&self, command: &str) -> Result<String, HaproxyError> {
        let mut socket = tokio::net::UnixStream::connect(self.dir.join("admin.sock"))
            .await
            .map_err(step("connecting to the runtime API"))?;
        socket
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(step("writing to the runtime API"))?;
        let mut answer = String::new();
        socket
            .read_to_string(&mut answer)
            .await
            .map_err(step("reading the runtime API"))?;
        Ok(answer)
    }

    /// Each backend server's state as HAProxy sees it (`UP`, `DOWN`, ...).
    pub async fn server_states(&self) -> Result<BTreeMap<String, String>, HaproxyError> {
        let csv = self.command("show stat").await?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .ok_or_else(|| HaproxyError::Step {
                step: "show stat",
                detail: format!("unexpected answer {csv:?}"),
            })?
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
            return Err(HaproxyError::Step {
                step: "show stat",
                detail: format!("no pxname/svname/status columns in {header:?}"),
            });
        };
        Ok(lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.get(px) == Some(&"instances"))
            .filter(|f| !matches!(f.get(sv), Some(&"BACKEND") | None))
            .filter_map(|f| Some((f.get(sv)?.to_string(), f.get(st)?.to_string())))
            .collect())
    }

    /// Waits until server `name` is in `state` (`UP`, `DOWN`; a state in transition such as
    /// `UP 1/2` does not count), up to `timeout`.
    pub async fn wait_for_state(
        &self,
        name: &str,
        state: &str,
        timeout: Duration,
    ) -> Result<(), HaproxyError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let states = self.server_states().await?;
            if states.get(name).map(String::as_str) == Some(state) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(HaproxyError::Step {
                    step: "waiting for a server state",
                    detail: format!("{name} not {state} after {timeout:?}: {states:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_balances_round_robin_with_checks_and_long_tunnels() {
        let backends = [
            Backend {
                name: "a".into(),
                addr: "127.0.0.1:1001".parse().unwrap(),
            },
            Backend {
                name: "b".into(),
                addr: "127.0.0.1:1002".parse().unwrap(),
            },
        ];
        let text = config(8080, Path::new("/tmp/x/admin.sock"), "/ready", &backends);
        for line in [
            "    bind 127.0.0.1:8080",
            "    balance roundrobin",
            "    option httpchk GET /ready",
            "    timeout tunnel 1h",
            "    server a 127.0.0.1:1001",
            "    server b 127.0.0.1:1002",
            "    stats socket /tmp/x/admin.sock mode 600 level admin",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert!(
            !text.contains("cookie") && !text.contains("stick"),
            "no affinity"
        );
    }
}
