//! The end-of-call webhook (`[call_webhook]`): each call's record, POSTed as JSON to a
//! configured URL, signed, retried with backoff, delivered **at least once** even across a
//! restart.
//!
//! * **Outbox.** When the URL is set, the store writes an outbox row (`call_webhook_outbox`,
//!   keyed by call SID) in the same transaction as the call's record, so a record is never
//!   stored without its pending delivery, nor the other way round.
//! * **Worker.** One task drains the outbox: at startup (rows left by a previous run), after
//!   each record written, and when the next retry is due. It reads due rows in small batches
//!   ([`BATCH`]) and delivers them one at a time, so its memory is bounded whatever the
//!   backlog.
//! * **Request.** `POST`, `Content-Type: application/json`, the body the call's
//!   `GET /api/calls/{sid}` would answer (read when the attempt is made), and the headers
//!   `X-Phone-Agent-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>` (the tool
//!   webhooks' scheme and key, `webhooks.signing_secret`), `Idempotency-Key: <CallSid>` (the
//!   same on every attempt: a receiver that saw the key already answers 2xx and does nothing)
//!   and `X-Phone-Agent-Attempt: <n>` (1-based).
//! * **Retries.** Any 2xx answer delivers. Anything else (a status, a timeout, a refused
//!   connection) is retried after `retry_initial_ms`, doubling up to `retry_max_ms`, until
//!   `max_attempts` attempts were made; then the row is marked failed (kept, with its last
//!   error). Every failure is logged and counted
//!   (`phone_agent_call_webhook_deliveries_total{outcome="retry"|"failed"}`).
//! * **Shutdown.** An attempt in flight when the server stops is abandoned; its row stays
//!   pending and is delivered after the next start (hence at least once: a receiver may see a
//!   call twice, with the same `Idempotency-Key`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use sqlx::Row as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::db::{Db, DbError};
use crate::config::{ConfigError, Secret, invalid};
use crate::record::now_ms;

/// The idempotency header (the call SID).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The attempt number header (1-based).
pub const ATTEMPT_HEADER: &str = "x-phone-agent-attempt";
/// Deliveries by outcome (`delivered`, `retry`, `failed`).
pub const DELIVERIES: &str = "phone_agent_call_webhook_deliveries_total";
/// Rows read from the outbox at a time.
pub const BATCH: i64 = 16;
/// Wait before looking again after the outbox itself could not be read.
const DB_RETRY: Duration = Duration::from_secs(1);

/// `[call_webhook]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallWebhookConfig {
    /// Where records are POSTed; `None`: no webhook.
    pub url: Option<String>,
    /// Bound on one attempt.
    pub timeout: Duration,
    /// Attempts before a delivery is given up (marked failed).
    pub max_attempts: u32,
    /// Wait after the first failed attempt.
    pub retry_initial: Duration,
    /// Longest wait between attempts.
    pub retry_max: Duration,
}

impl CallWebhookConfig {
    /// The wait after `attempts` failed attempts.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.retry_initial
            .checked_mul(factor)
            .unwrap_or(self.retry_max)
            .min(self.retry_max)
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawCallWebhook {
    url: String,
    timeout_ms: u64,
    max_attempts: u32,
    retry_initial_ms: u64,
    retry_max_ms: u64,
}

impl Default for RawCallWebhook {
    fn default() -> Self {
        RawCallWebhook {
            url: String::new(),
            timeout_ms: 10_000,
            max_attempts: 20,
            retry_initial_ms: 1_000,
            retry_max_ms: 300_000,
        }
    }
}

/// Validates `[call_webhook]`.
pub(crate) fn validate(raw: RawCallWebhook) -> Result<CallWebhookConfig, ConfigError> {
    let url = crate::config::non_empty(raw.url);
    if let Some(u) = &url {
        let lower = u.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://"))
            || reqwest::Url::parse(u).is_err()
        {
            return Err(invalid(
                "call_webhook.url",
                format!("{u:?} is not an http:// or https:// URL"),
            ));
        }
    }
    if raw.timeout_ms == 0 {
        return Err(invalid("call_webhook.timeout_ms", "must be at least 1"));
    }
    if raw.max_attempts == 0 {
        return Err(invalid("call_webhook.max_attempts", "must be at least 1"));
    }
    if raw.retry_initial_ms == 0 || raw.retry_max_ms < raw.retry_initial_ms {
        return Err(invalid(
            "call_webhook.retry_initial_ms",
            "must be at least 1 and at most call_webhook.retry_max_ms",
        ));
    }
    Ok(CallWebhookConfig {
        url,
        timeout: Duration::from_millis(raw.timeout_ms),
        max_attempts: raw.max_attempts,
        retry_initial: Duration::from_millis(raw.retry_initial_ms),
        retry_max: Duration::from_millis(raw.retry_max_ms),
    })
}

/// Counters of the worker (also exported as metrics).
#[derive(Debug, Default)]
pub struct WebhookStats {
    delivered: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
}

/// A snapshot of [`WebhookStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WebhookCounts {
    /// Records delivered.
    pub delivered: u64,
    /// Failed attempts that will be retried.
    pub retries: u64,
    /// Records given up after `max_attempts`.
    pub failed: u64,
}

impl WebhookStats {
    fn count(&self, outcome: &'static str) {
        let counter = match outcome {
            "delivered" => &self.delivered,
            "retry" => &self.retries,
            _ => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(DELIVERIES, "outcome" => outcome).increment(1);
    }

    /// The counters now.
    pub fn snapshot(&self) -> WebhookCounts {
        WebhookCounts {
            delivered: self.delivered.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// What the worker needs besides the database.
#[derive(Debug, Clone)]
pub(crate) struct WebhookSetup {
    pub(crate) config: CallWebhookConfig,
    pub(crate) url: String,
    pub(crate) secret: Secret,
    pub(crate) http: reqwest::Client,
}

/// One due row.
struct Due {
    call_sid: String,
    attempts: u32,
}

/// The delivery worker.
pub(crate) struct Worker {
    pub(crate) db: Db,
    pub(crate) setup: WebhookSetup,
    pub(crate) wake: Arc<Notify>,
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) stats: Arc<WebhookStats>,
    pub(crate) stop: CancellationToken,
}

impl Worker {
    pub(crate) async fn run(self) {
        metrics::describe_counter!(
            DELIVERIES,
            "End-of-call webhook attempts by outcome (delivered; retry: failed, will be \
             retried; failed: given up after call_webhook.max_attempts)."
        );
        loop {
            let mut next: Option<Duration> = None;
            if self.ready.load(Ordering::Acquire) {
                match self.drain().await {
                    Ok(Some(due)) => next = Some(due),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "call webhook: cannot read the outbox");
                        next = Some(DB_RETRY);
                    }
                }
            }
            if self.stop.is_cancelled() {
                return;
            }
            let sleep = tokio::time::sleep(next.unwrap_or(Duration::from_secs(3600)));
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = sleep => {}
            }
        }
    }

    /// Delivers every due row; returns how long until the next pending one is due.
    async fn drain(&self) -> Result<Option<Duration>, DbError> {
        loop {
            let now = now_ms();
            let due = self.due(now).await?;
            if due.is_empty() {
                break;
            }
            for row in due {
                if self.stop.is_cancelled() {
                    return Ok(None);
                }
                self.deliver(row).await?;
            }
        }
        let next: Option<i64> = sqlx::query(
            "SELECT MIN(next_attempt_at_ms) AS next FROM call_webhook_outbox \
             WHERE delivered_at_ms IS NULL AND failed_at_ms IS NULL",
        )
        .fetch_one(self.db.pool())
        .await
        .and_then(|r| r.try_get::<Option<i64>, _>("next"))
        .map_err(DbError::new("reading the outbox"))?;
        Ok(next.map(|at| Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))))
    }

    async fn due(&self, now: i64) -> Result<Vec<Due>, DbError> {
        let rows = sqlx::query(
            "SELECT call_sid, attempts FROM call_webhook_outbox \
             WHERE delivered_at_ms IS NULL AND failed_at_ms IS NULL AND next_attempt_at_ms <= $1 \
             ORDER BY next_attempt_at_ms LIMIT $2",
        )
        .bind(now)
        .bind(BATCH)
        .fetch_all(self.db.pool())
        .await
        .map_err(DbError::new("reading the outbox"))?;
        rows.iter()
            .map(|r| {
                Ok(Due {
                    call_sid: r.try_get("call_sid")?,
                    attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::new("reading the outbox"))
    }

    /// One attempt for one row, and its outcome written back.
    async fn deliver(&self, row: Due) -> Result<(), DbError> {
        let attempt = row.attempts.saturating_add(1);
        let outcome = match self.db.get(&row.call_sid).await? {
            Some(call) => {
                let body = call.json.to_string();
                let attempt_fut = self.post(&row.call_sid, attempt, body);
                tokio::select! {
                    // Abandoned: the row stays as it was and is retried after the restart.
                    () = self.stop.cancelled() => return Ok(()),
                    outcome = attempt_fut => outcome,
                }
            }
            None => Err("the call's record is not in the store".to_owned()),
        };
        let now = now_ms();
        match outcome {
            Ok(()) => {
                tracing::info!(call_sid = %row.call_sid, attempt, "call webhook delivered");
                self.stats.count("delivered");
                sqlx::query(
                    "UPDATE call_webhook_outbox SET attempts = $1, delivered_at_ms = $2, \
                     last_error = NULL WHERE call_sid = $3",
                )
                .bind(i64::from(attempt))
                .bind(now)
                .bind(&row.call_sid)
                .execute(self.db.pool())
                .await
                .map_err(DbError::new("marking a webhook delivered"))?;
            }
            Err(error) if attempt >= self.setup.config.max_attempts => {
                tracing::error!(
                    call_sid = %row.call_sid,
                    attempt,
                    error = %error,
                    "call webhook: giving up on this record after call_webhook.max_attempts"
                );
                self.stats.count("failed");
                sqlx::query(
                    "UPDATE call_webhook_outbox SET attempts = $1, failed_at_ms = $2, \
                     last_error = $3 WHERE call_sid = $4",
                )
                .bind(i64::from(attempt))
                .bind(now)
                .bind(&error)
                .bind(&row.call_sid)
                .execute(self.db.pool())
                .await
                .map_err(DbError::new("marking a webhook failed"))?;
            }
            Err(error) => {
                let wait = self.setup.config.backoff(attempt);
                tracing::warn!(
                    call_sid = %row.call_sid,
                    attempt,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %error,
                    "call webhook attempt failed; will retry"
                );
                self.stats.count("retry");
                sqlx::query(
                    "UPDATE call_webhook_outbox SET attempts = $1, next_attempt_at_ms = $2, \
                     last_error = $3 WHERE call_sid = $4",
                )
                .bind(i64::from(attempt))
                .bind(now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2))
                .bind(&error)
                .bind(&row.call_sid)
                .execute(self.db.pool())
                .await
                .map_err(DbError::new("scheduling a webhook retry"))?;
            }
        }
        Ok(())
    }

    async fn post(&self, call_sid: &str, attempt: u32, body: String) -> Result<(), String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let signature = crate::tools::webhook::signature(
            self.setup.secret.expose().as_bytes(),
            now,
            body.as_bytes(),
        );
        let response = self
            .setup
            .http
            .post(&self.setup.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(crate::tools::webhook::SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_HEADER, call_sid)
            .header(ATTEMPT_HEADER, attempt.to_string())
            .timeout(self.setup.config.timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!(
                        "no answer within {} ms",
                        self.setup.config.timeout.as_millis()
                    )
                } else {
                    format!(
                        "could not be reached ({})",
                        crate::twilio_rest::describe(&e)
                    )
                }
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered HTTP {}", status.as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = validate(RawCallWebhook::default()).unwrap();
        let waits: Vec<u64> = (1..=11).map(|n| c.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(c.backoff(200).as_secs(), 300);
    }

    #[test]
    fn urls_are_checked() {
        let raw = |url: &str| RawCallWebhook {
            url: url.into(),
            ..RawCallWebhook::default()
        };
        assert_eq!(validate(raw("")).unwrap().url, None);
        assert!(validate(raw("ftp://x")).is_err());
        assert_eq!(
            validate(raw("https://crm.example.com/calls")).unwrap().url,
            Some("https://crm.example.com/calls".into())
        );
    }
}
