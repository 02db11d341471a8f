//! The call store: call records in SQLite (default, `data/calls.db`) or PostgreSQL, written by
//! one background task so that nothing on a call's path ever waits for the database.
//!
//! * Calls, the voice webhook and status callbacks hand a [`Write`] to [`CallStore::submit`],
//!   which never waits: it puts the write on a bounded queue ([`QUEUE_CAPACITY`]); a full queue
//!   drops the write, logs it and counts it (`phone_agent_store_errors_total{kind="queue_full"}`).
//! * The writer applies writes in order. When the database fails, it checks whether the
//!   database answers at all: if not (an outage), the write stays first in line and is retried
//!   with backoff (up to [`MAX_BACKOFF`]) while new writes wait behind it, up to
//!   [`MAX_PENDING`]; each failed attempt is counted (`kind="database"`). If the database
//!   answers, the write itself was refused: logged, counted (`kind="rejected"`) and dropped,
//!   so one bad write cannot block the others.
//! * Migrations run when the writer first reaches the database (at startup, or when a database
//!   that was down at startup comes up); until then the admin API answers 503.
//! * At shutdown the writer gets [`FLUSH_TIMEOUT`] to write what is pending; anything left is
//!   logged and counted as lost (`kind="lost"`).
//! * With `call_webhook.url` set, each record is written with its outbox row and the delivery
//!   worker ([`webhook`]) is woken after each record and once migrations are applied.

pub mod db;
pub mod settings;
pub mod webhook;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

pub use db::{
    AmdUpdate, Db, DbError, ListQuery, StatusUpdate, StoredCall, StreamEnd, StreamOutcome,
    WebhookInfo, Write,
};
pub use webhook::{CallWebhookConfig, WebhookCounts};

use webhook::{WebhookSetup, WebhookStats};

use crate::config::DatabaseConfig;

/// Writes queued between the calls and the writer.
pub const QUEUE_CAPACITY: usize = 1024;
/// Writes the writer holds while the database is down.
pub const MAX_PENDING: usize = 10_000;
/// The longest wait between retries while the database is down.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The first wait after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// How long the writer may take to write what is pending at shutdown.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes applied.
pub const WRITES: &str = "phone_agent_store_writes_total";
/// Writes that failed or were dropped, by `kind`.
pub const ERRORS: &str = "phone_agent_store_errors_total";

/// Counters of one store (also exported as metrics).
#[derive(Debug, Default)]
pub struct StoreStats {
    written: AtomicU64,
    queue_full: AtomicU64,
    database_errors: AtomicU64,
    rejected: AtomicU64,
    lost: AtomicU64,
}

/// A snapshot of [`StoreStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreCounts {
    /// Writes applied.
    pub written: u64,
    /// Writes dropped because the queue was full.
    pub queue_full: u64,
    /// Failed attempts while the database was unreachable (each retried).
    pub database_errors: u64,
    /// Writes the database refused (dropped).
    pub rejected: u64,
    /// Writes still pending when the server stopped (dropped).
    pub lost: u64,
}

impl StoreStats {
    fn count(&self, kind: &'static str, n: u64) {
        let counter = match kind {
            "queue_full" => &self.queue_full,
            "database" => &self.database_errors,
            "rejected" => &self.rejected,
            _ => &self.lost,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(ERRORS, "kind" => kind).increment(n);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StoreCounts {
        StoreCounts {
            written: self.written.load(Ordering::Relaxed),
            queue_full: self.queue_full.load(Ordering::Relaxed),
            database_errors: self.database_errors.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }
}

/// The handle calls and routes use.
#[derive(Debug)]
pub struct CallStore {
    db: Db,
    tx: mpsc::Sender<Write>,
    stats: Arc<StoreStats>,
    ready: Arc<AtomicBool>,
    closing: CancellationToken,
    writer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The end-of-call webhook worker, when configured.
    webhook: Option<WebhookWorker>,
}

#[derive(Debug)]
struct WebhookWorker {
    stats: Arc<WebhookStats>,
    stop: CancellationToken,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl CallStore {
    /// Opens the store and starts its writer (inside a tokio runtime), and the end-of-call
    /// webhook's worker when `webhook` is given. `None` when `database.url = "off"`.
    pub(crate) fn start(
        config: &DatabaseConfig,
        webhook: Option<WebhookSetup>,
    ) -> std::io::Result<Option<CallStore>> {
        let Some(mut db) = Db::open(config)? else {
            return Ok(None);
        };
        if webhook.is_some() {
            db = db.with_outbox();
        }
        metrics::describe_counter!(WRITES, "Call-store writes applied.");
        metrics::describe_counter!(
            ERRORS,
            "Call-store writes that failed (database: retried) or were dropped (queue_full, \
             rejected, lost)."
        );
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(StoreStats::default());
        let ready = Arc::new(AtomicBool::new(false));
        let closing = CancellationToken::new();
        let wake = webhook.as_ref().map(|_| Arc::new(Notify::new()));
        let writer = Writer {
            db: db.clone(),
            rx,
            stats: Arc::clone(&stats),
            ready: Arc::clone(&ready),
            closing: closing.clone(),
            pending: VecDeque::new(),
            wake: wake.clone(),
        };
        let task = tokio::spawn(writer.run());
        let webhook = match (webhook, wake) {
            (Some(setup), Some(wake)) => {
                let stats = Arc::new(WebhookStats::default());
                let stop = CancellationToken::new();
                tracing::info!("end-of-call webhook on");
                let worker = webhook::Worker {
                    db: db.clone(),
                    setup,
                    wake,
                    ready: Arc::clone(&ready),
                    stats: Arc::clone(&stats),
                    stop: stop.clone(),
                };
                Some(WebhookWorker {
                    stats,
                    stop,
                    task: tokio::sync::Mutex::new(Some(tokio::spawn(worker.run()))),
                })
            }
            _ => None,
        };
        tracing::info!(database = config.kind(), "call store opened");
        Ok(Some(CallStore {
            db,
            tx,
            stats,
            ready,
            closing,
            writer: tokio::sync::Mutex::new(Some(task)),
            webhook,
        }))
    }

    /// Hands a write to the writer without waiting. A full queue drops it (logged, counted).
    pub fn submit(&self, write: Write) {
        match self.tx.try_send(write) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(w)) => {
                tracing::error!(
                    call_sid = w.call_sid(),
                    "call store queue full: a call record write was dropped"
                );
                self.stats.count("queue_full", 1);
            }
            Err(mpsc::error::TrySendError::Closed(w)) => {
                tracing::error!(
                    call_sid = w.call_sid(),
                    "call store closed: a call record write was dropped"
                );
                self.stats.count("lost", 1);
            }
        }
    }

    /// The database, once migrations have been applied (`None` before: the API answers 503).
    pub fn db(&self) -> Option<&Db> {
        self.ready.load(Ordering::Acquire).then_some(&self.db)
    }

    /// The counters.
    pub fn counts(&self) -> StoreCounts {
        self.stats.snapshot()
    }

    /// The end-of-call webhook's counters (`None` without `call_webhook.url`).
    pub fn webhook_counts(&self) -> Option<WebhookCounts> {
        self.webhook.as_ref().map(|w| w.stats.snapshot())
    }

    /// Stops the writer after it has written what is pending (at most [`FLUSH_TIMEOUT`]),
    /// then the webhook worker (an attempt in flight is abandoned: its row stays pending for
    /// the next start).
    pub async fn close(&self) {
        self.closing.cancel();
        if let Some(task) = self.writer.lock().await.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "call store writer failed");
        }
        if let Some(webhook) = &self.webhook {
            webhook.stop.cancel();
            if let Some(task) = webhook.task.lock().await.take()
                && let Err(e) = task.await
            {
                tracing::error!(error = %e, "call webhook worker failed");
            }
        }
        self.db.close().await;
    }
}

struct Writer {
    db: Db,
    rx: mpsc::Receiver<Write>,
    stats: Arc<StoreStats>,
    ready: Arc<AtomicBool>,
    closing: CancellationToken,
    pending: VecDeque<Write>,
    /// Woken when records (with their outbox rows) were written.
    wake: Option<Arc<Notify>>,
}

impl Writer {
    fn take(&mut self, write: Write) {
        if self.pending.len() >= MAX_PENDING {
            tracing::error!(
                call_sid = write.call_sid(),
                pending = self.pending.len(),
                "call store: too many writes waiting for the database; dropping one"
            );
            self.stats.count("queue_full", 1);
        } else {
            self.pending.push_back(write);
        }
    }

    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        let mut down = false;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            while let Ok(w) = self.rx.try_recv() {
                self.take(w);
            }
            if self.pending.is_empty() && self.ready.load(Ordering::Acquire) {
                if deadline.is_some() {
                    return;
                }
                tokio::select! {
                    biased;
                    write = self.rx.recv() => match write {
                        Some(w) => self.take(w),
                        None => return,
                    },
                    _ = self.closing.cancelled() => {
                        deadline = Some(tokio::time::Instant::now() + FLUSH_TIMEOUT);
                    }
                }
                continue;
            }
            match self.work().await {
                Ok(()) => {
                    if down {
                        tracing::info!("call store: the database is back; pending writes written");
                        down = false;
                    }
                    backoff = MIN_BACKOFF;
                    continue;
                }
                Err(e) => {
                    self.stats.count("database", 1);
                    if !down {
                        tracing::error!(
                            error = %e,
                            pending = self.pending.len(),
                            "call store: the database is unreachable; calls go on and their \
                             records are kept and retried"
                        );
                        down = true;
                    } else {
                        tracing::debug!(error = %e, "call store: still unreachable");
                    }
                }
            }
            // Down: wait (taking new writes) before the next attempt.
            let sleep = tokio::time::sleep(backoff);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    write = self.rx.recv(), if deadline.is_none() => match write {
                        Some(w) => self.take(w),
                        None => break,
                    },
                    _ = self.closing.cancelled(), if deadline.is_none() => {
                        deadline = Some(tokio::time::Instant::now() + FLUSH_TIMEOUT);
                    }
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if let Some(d) = deadline
                && tokio::time::Instant::now() >= d
            {
                while let Ok(w) = self.rx.try_recv() {
                    self.take(w);
                }
                let lost = self.pending.len() as u64;
                tracing::error!(
                    lost,
                    "call store: the database stayed unreachable at shutdown; these call \
                     record writes are lost"
                );
                self.stats.count("lost", lost);
                return;
            }
        }
    }

    /// Migrates if needed, then applies pending writes in order. `Err` when the database is
    /// unreachable (the failed write stays first in line).
    async fn work(&mut self) -> Result<(), DbError> {
        if !self.ready.load(Ordering::Acquire) {
            self.db.migrate().await?;
            self.ready.store(true, Ordering::Release);
            tracing::info!("call store: database ready (migrations applied)");
            if let Some(wake) = &self.wake {
                wake.notify_one();
            }
        }
        while let Some(write) = self.pending.front() {
            match self.db.apply(write).await {
                Ok(()) => {
                    if let (Write::Record(_), Some(wake)) = (write, &self.wake) {
                        wake.notify_one();
                    }
                    self.pending.pop_front();
                    self.stats.written.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(WRITES).increment(1);
                }
                Err(e) => {
                    // No connection at all is an outage even when a ping gets through
                    // (the database just came back, other tasks waited for the pool).
                    if e.is_unavailable() || !self.db.ping().await {
                        return Err(e);
                    }
                    tracing::error!(
                        call_sid = write.call_sid(),
                        error = %e,
                        "call store: the database refused a write; dropping it"
                    );
                    self.stats.count("rejected", 1);
                    self.pending.pop_front();
                }
            }
        }
        Ok(())
    }
}
