//! A throwaway PostgreSQL cluster for tests: `initdb` into a temp dir, a server on a free
//! loopback port, stopped and removed on drop.
//!
//! Uses the server binaries of Debian's `postgresql` package (`/usr/lib/postgresql/*/bin`; the
//! newest version found). PostgreSQL refuses to run as root, so when the tests run as root the
//! cluster is created and run as the `postgres` user the package creates (`runuser -u
//! postgres --`), in a directory owned by that user. Authentication is `trust` on loopback
//! only; the server listens on `127.0.0.1` and a Unix socket in its own directory.
//!
//! Missing binaries: [`PgCluster::start_or_skip`] fails with a clear message in CI (`CI` set to
//! `true`) and otherwise returns `None` after a loud message, so a developer without PostgreSQL
//! can still run the rest.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::process::Command;

/// Why a cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The server binaries are not installed.
    #[error(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (install Debian's \
         `postgresql` package: apt-get install -y postgresql)"
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

fn step(step: &'static str) -> impl FnOnce(std::io::Error) -> PgError {
    move |e| PgError::Step {
        step,
        detail: e.to_string(),
    }
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
    running: bool,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

async fn output(cmd: &mut Command, what: &'static str) -> Result<String, PgError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(step(what))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(PgError::Step {
            step: what,
            detail: format!("{}: {text}", out.status),
        })
    }
}

impl PgCluster {
    /// Starts a cluster, or (outside CI, binaries missing) says loudly that the test is
    /// skipped and returns `None`. Panics with the reason in CI or on any other failure.
    pub async fn start_or_skip(test: &str) -> Option<PgCluster> {
        match PgCluster::start().await {
            Ok(cluster) => Some(cluster),
            Err(PgError::NotInstalled) if std::env::var("CI").as_deref() != Ok("true") => {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!(
                        "\n!!! SKIPPING {test}: {} — this test runs in CI (CI=true) !!!\n",
                        PgError::NotInstalled
                    );
                }
                None
            }
            Err(e) => panic!("{test}: cannot start PostgreSQL: {e}"),
        }
    }

    /// Creates and starts a cluster.
    pub async fn start() -> Result<PgCluster, PgError> {
        static N: AtomicU64 = AtomicU64::new(0);
        let bin = find_bin().ok_or(PgError::NotInstalled)?;
        let uid = output(Command::new("id").arg("-u"), "id -u").await?;
        let as_postgres = uid.trim() == "0";
        let dir = std::env::temp_dir().join(format!(
            "testkit-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(step("creating the cluster directory"))?;
        if as_postgres {
            output(
                Command::new("chown").arg("postgres:").arg(&dir),
                "chown to postgres",
            )
            .await?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(step("finding a free port"))?
            .port();
        let mut cluster = PgCluster {
            bin,
            dir,
            port,
            as_postgres,
            running: false,
        };
        let data = cluster.data_dir();
        output(
            cluster.command("initdb").arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            "initdb",
        )
        .await?;
        cluster.resume().await?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command for one of the server binaries, as the `postgres` user when we are root.
    fn command(&self, binary: &str) -> Command {
        let path = self.bin.join(binary);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    /// The connection URL of database `postgres` as user `postgres`.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The connection URL of another database of the cluster.
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a database and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, PgError> {
        output(
            self.command("createdb").args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ]),
            "createdb",
        )
        .await?;
        Ok(self.url_of(name))
    }

    /// Stops the server (fast shutdown: open connections are terminated), keeping the data.
    pub async fn stop(&mut self) -> Result<(), PgError> {
        output(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        )
        .await?;
        self.running = false;
        Ok(())
    }

    /// Starts the server again (after [`Self::stop`]) on the same port, and waits until it
    /// accepts connections.
    pub async fn resume(&mut self) -> Result<(), PgError> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        output(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.dir.join("server.log"))
                .args(["-o", &options, "-w", "-t", "30", "start"]),
            "pg_ctl start",
        )
        .await?;
        self.running = true;
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let path = self.bin.join("pg_ctl");
            let mut cmd = if self.as_postgres {
                let mut cmd = std::process::Command::new("runuser");
                cmd.args(["-u", "postgres", "--"]).arg(path);
                cmd
            } else {
                std::process::Command::new(path)
            };
            let _ = cmd
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
