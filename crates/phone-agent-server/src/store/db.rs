//! The database behind the call store: one connection pool (sqlx's `Any` driver over SQLite or
//! PostgreSQL), the migrations, and every statement.
//!
//! The statements are shared by both databases (`$N` parameters, `INSERT … ON CONFLICT … DO
//! UPDATE`, `COALESCE`); only the migrations differ, in two directories, because the identity
//! column is spelled differently (`INTEGER PRIMARY KEY AUTOINCREMENT` in SQLite, `GENERATED
//! ALWAYS AS IDENTITY` in PostgreSQL) and sqlx checksums each migration file.

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row as _};

use crate::config::DatabaseConfig;
use crate::record::{CallRecord, TwilioStatus};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a statement waits for a pooled connection (a database that is down fails fast;
/// the writer retries).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A database error, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct DbError {
    action: &'static str,
    #[source]
    source: sqlx::Error,
}

impl DbError {
    pub(crate) fn new(action: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
        move |source| DbError { action, source }
    }

    /// Whether no connection could be had (the pool timed out, the socket failed): the
    /// database may be down or just coming back, so the write is not to blame.
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(
            self.source,
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
        )
    }
}

/// What the voice webhook tells the store about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookInfo {
    /// `CallSid`.
    pub call_sid: String,
    /// When the webhook arrived (Unix epoch ms).
    pub at_ms: i64,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `From` (already masked if the configuration says so).
    pub from: Option<String>,
    /// `To` (already masked if the configuration says so).
    pub to: Option<String>,
    /// `AccountSid`.
    pub account_sid: Option<String>,
}

/// One status callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// `CallSid`.
    pub call_sid: String,
    /// `CallStatus`.
    pub status: String,
    /// `SequenceNumber`, when given (orders callbacks).
    pub sequence: Option<i64>,
    /// When it arrived (Unix epoch ms).
    pub at_ms: i64,
    /// `CallDuration`, on completion.
    pub duration_secs: Option<i64>,
    /// `Direction`, `From`, `To`, `AccountSid`, for a call this store has not seen yet.
    pub direction: Option<String>,
    /// `From`.
    pub from: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// `AccountSid`.
    pub account_sid: Option<String>,
}

/// An answering machine detection result (`/twilio/amd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdUpdate {
    /// `CallSid`.
    pub call_sid: String,
    /// `AnsweredBy`.
    pub answered_by: String,
}

/// One write the call store makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// The voice webhook answered a call.
    Webhook(WebhookInfo),
    /// A call's stream ended: its record.
    Record(Box<CallRecord>),
    /// A status callback.
    Status(StatusUpdate),
    /// An AMD result.
    Amd(AmdUpdate),
}

impl Write {
    /// The call it is about.
    pub fn call_sid(&self) -> &str {
        match self {
            Write::Webhook(w) => &w.call_sid,
            Write::Record(r) => &r.call_sid,
            Write::Status(s) => &s.call_sid,
            Write::Amd(a) => &a.call_sid,
        }
    }
}

/// Filters and page of `GET /api/calls`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only calls listed below this position (the cursor of the previous page).
    pub before: Option<i64>,
    /// Only calls this store first heard of at or after this time (Unix epoch ms).
    pub since_ms: Option<i64>,
    /// … and before this time.
    pub until_ms: Option<i64>,
    /// Only calls from or to this number.
    pub number: Option<String>,
    /// Only calls that ended for this reason.
    pub end_reason: Option<String>,
    /// Only `inbound` or `outbound` calls.
    pub direction: Option<String>,
    /// At most this many.
    pub limit: i64,
}

/// Why a call's media stream ended, as `/voice/next` needs it (table `call_streams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOutcome {
    /// A normal end (the agent hung up, an idle caller, the maximum duration): hang up.
    Normal,
    /// The agent failed or could not connect, the server ended it: the fallback.
    Failed,
    /// Handed over at shutdown: resume with the saved conversation.
    HandedOver,
    /// The fallback was sent to Twilio through REST and its answer is not in yet: the redirect
    /// waits for it (`crate::handover`), so the fallback is never played twice.
    FallbackPending,
}

impl StreamOutcome {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            StreamOutcome::Normal => "normal",
            StreamOutcome::Failed => "failed",
            StreamOutcome::HandedOver => "handed_over",
            StreamOutcome::FallbackPending => "fallback_pending",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "normal" => Some(StreamOutcome::Normal),
            "failed" => Some(StreamOutcome::Failed),
            "handed_over" => Some(StreamOutcome::HandedOver),
            "fallback_pending" => Some(StreamOutcome::FallbackPending),
            _ => None,
        }
    }
}

/// One row of `call_streams`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEnd {
    /// Twilio `CallSid`.
    pub call_sid: String,
    /// Why the stream ended.
    pub outcome: StreamOutcome,
    /// Handed over: the conversation (JSON, see `crate::handover`).
    pub context: Option<String>,
    /// Handed over: the stream's parameters (JSON, see `crate::handover`).
    pub parameters: Option<String>,
    /// Times the call was handed over so far.
    pub handovers: u32,
}

/// One row: the record (or what is known of a call without one yet) and its position.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCall {
    /// The list position (`list_seq`, migration 0004): in the order the calls' first writes
    /// committed, so a call committed later is always above every position a reader has seen
    /// (the list's cursor).
    pub seq: i64,
    /// The call as JSON: the record with the store's columns merged in.
    pub json: serde_json::Value,
}

/// The pool and its dialect.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    migrator: &'static Migrator,
    /// Records also queue an end-of-call webhook delivery (`call_webhook.url` is set).
    outbox: bool,
}

const COLUMNS: &str = "list_seq, call_sid, created_at_ms, webhook_at_ms, direction, from_number, \
    to_number, account_sid, twilio_status, ringing_at_ms, answered_at_ms, completed_at_ms, twilio_duration_secs, answered_by, record";

impl Db {
    /// A pool that connects on first use (so a database that is down at startup does not stop
    /// the server). `None` for `database.url = "off"`. An SQLite file's directory is created
    /// here.
    pub fn open(config: &DatabaseConfig) -> std::io::Result<Option<Db>> {
        sqlx::any::install_default_drivers();
        let (url, migrator, sqlite) = match config {
            DatabaseConfig::Off => return Ok(None),
            DatabaseConfig::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let path = path.to_str().ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "database.url: the SQLite path is not UTF-8",
                    )
                })?;
                (
                    format!("sqlite://{path}?mode=rwc"),
                    &SQLITE_MIGRATIONS,
                    true,
                )
            }
            DatabaseConfig::Postgres { url } => {
                (url.expose().to_owned(), &POSTGRES_MIGRATIONS, false)
            }
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 8 })
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL: readers (the admin API) never block the writer. NORMAL is durable
                    // across process crashes in WAL mode.
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect_lazy(&url).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("database.url: {}", redact(&e.to_string())),
            )
        })?;
        Ok(Some(Db {
            pool,
            migrator,
            outbox: false,
        }))
    }

    /// From now on, each record written also queues its end-of-call webhook delivery (in the
    /// same transaction).
    pub(crate) fn with_outbox(mut self) -> Self {
        self.outbox = true;
        self
    }

    /// The pool (for the webhook worker's statements).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies the migrations not yet applied.
    pub async fn migrate(&self) -> Result<(), DbError> {
        self.migrator
            .run(&self.pool)
            .await
            .map_err(|e| DbError::new("applying migrations")(sqlx::Error::from(e)))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Applies one write.
    pub async fn apply(&self, write: &Write) -> Result<(), DbError> {
        match write {
            Write::Webhook(w) => sqlx::query(
                "INSERT INTO calls (call_sid, created_at_ms, webhook_at_ms, direction, \
                     from_number, to_number, account_sid) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (call_sid) DO UPDATE SET \
                     webhook_at_ms = COALESCE(calls.webhook_at_ms, excluded.webhook_at_ms), \
                     direction = excluded.direction, \
                     from_number = COALESCE(excluded.from_number, calls.from_number), \
                     to_number = COALESCE(excluded.to_number, calls.to_number), \
                     account_sid = COALESCE(excluded.account_sid, calls.account_sid)",
            )
            .bind(&w.call_sid)
            .bind(w.at_ms)
            .bind(w.at_ms)
            .bind(&w.direction)
            .bind(w.from.as_deref())
            .bind(w.to.as_deref())
            .bind(w.account_sid.as_deref())
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(DbError::new("storing the webhook")),
            Write::Record(r) => {
                let json = serde_json::to_string(r).map_err(|e| DbError {
                    action: "encoding the record",
                    source: sqlx::Error::Encode(Box::new(e)),
                })?;
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(DbError::new("storing the call record"))?;
                sqlx::query(
                    "INSERT INTO calls (call_sid, created_at_ms, direction, from_number, \
                         to_number, account_sid, end_reason, ended_at_ms, record, handovers) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (call_sid) DO UPDATE SET \
                         direction = COALESCE(calls.direction, excluded.direction), \
                         from_number = COALESCE(calls.from_number, excluded.from_number), \
                         to_number = COALESCE(calls.to_number, excluded.to_number), \
                         account_sid = COALESCE(calls.account_sid, excluded.account_sid), \
                         end_reason = excluded.end_reason, \
                         ended_at_ms = excluded.ended_at_ms, \
                         record = excluded.record, \
                         handovers = excluded.handovers \
                     WHERE calls.record IS NULL OR calls.handovers < excluded.handovers \
                         OR (calls.handovers = excluded.handovers \
                             AND (excluded.end_reason <> 'handed_over' \
                                  OR calls.end_reason = 'handed_over'))",
                )
                .bind(&r.call_sid)
                .bind(r.times.stream_started_at_ms)
                .bind(&r.direction)
                .bind(r.from.as_deref())
                .bind(r.to.as_deref())
                .bind(r.account_sid.as_deref())
                .bind(&r.end_reason)
                .bind(r.times.ended_at_ms)
                .bind(json)
                .bind(i64::from(r.handovers))
                .execute(&mut *tx)
                .await
                .map_err(DbError::new("storing the call record"))?;
                // A part handed over to another instance is not the call's final record: the
                // webhook waits for the last part's.
                if self.outbox && r.end_reason != "handed_over" {
                    // The call SID keys the delivery: a record written again is not sent again.
                    sqlx::query(
                        "INSERT INTO call_webhook_outbox (call_sid, created_at_ms, attempts, \
                             next_attempt_at_ms) VALUES ($1, $2, 0, $3) \
                         ON CONFLICT (call_sid) DO NOTHING",
                    )
                    .bind(&r.call_sid)
                    .bind(r.times.ended_at_ms)
                    .bind(r.times.ended_at_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(DbError::new("queueing the call webhook"))?;
                }
                tx.commit()
                    .await
                    .map_err(DbError::new("storing the call record"))
            }
            Write::Status(s) => {
                let final_status = matches!(
                    s.status.as_str(),
                    "completed" | "busy" | "failed" | "no-answer" | "canceled"
                );
                let ringing = (s.status == "ringing").then_some(s.at_ms);
                let answered = (s.status == "in-progress").then_some(s.at_ms);
                let completed = final_status.then_some(s.at_ms);
                // The latest status by sequence number wins; the first time of each stage is
                // kept, whatever order the callbacks arrive in.
                sqlx::query(
                    "INSERT INTO calls (call_sid, created_at_ms, direction, from_number, \
                         to_number, account_sid, twilio_status, twilio_sequence, ringing_at_ms, \
                         answered_at_ms, completed_at_ms, twilio_duration_secs) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (call_sid) DO UPDATE SET \
                         twilio_status = CASE WHEN calls.twilio_sequence IS NULL \
                             OR excluded.twilio_sequence IS NULL \
                             OR excluded.twilio_sequence >= calls.twilio_sequence \
                             THEN excluded.twilio_status ELSE calls.twilio_status END, \
                         twilio_sequence = CASE WHEN calls.twilio_sequence IS NULL \
                             OR excluded.twilio_sequence >= calls.twilio_sequence \
                             THEN excluded.twilio_sequence ELSE calls.twilio_sequence END, \
                         ringing_at_ms = COALESCE(calls.ringing_at_ms, excluded.ringing_at_ms), \
                         answered_at_ms = COALESCE(calls.answered_at_ms, excluded.answered_at_ms), \
                         completed_at_ms = COALESCE(calls.completed_at_ms, excluded.completed_at_ms), \
                         twilio_duration_secs = COALESCE(excluded.twilio_duration_secs, \
                             calls.twilio_duration_secs), \
                         direction = COALESCE(calls.direction, excluded.direction), \
                         from_number = COALESCE(calls.from_number, excluded.from_number), \
                         to_number = COALESCE(calls.to_number, excluded.to_number), \
                         account_sid = COALESCE(calls.account_sid, excluded.account_sid)",
                )
                .bind(&s.call_sid)
                .bind(s.at_ms)
                .bind(s.direction.as_deref())
                .bind(s.from.as_deref())
                .bind(s.to.as_deref())
                .bind(s.account_sid.as_deref())
                .bind(&s.status)
                .bind(s.sequence)
                .bind(ringing)
                .bind(answered)
                .bind(completed)
                .bind(s.duration_secs)
                .execute(&self.pool)
                .await
                .map(drop)
                .map_err(DbError::new("storing the status callback"))
            }
            Write::Amd(a) => sqlx::query(
                "INSERT INTO calls (call_sid, created_at_ms, direction, answered_by) \
                 VALUES ($1, $2, 'outbound', $3) \
                 ON CONFLICT (call_sid) DO UPDATE SET answered_by = excluded.answered_by",
            )
            .bind(&a.call_sid)
            .bind(crate::record::now_ms())
            .bind(&a.answered_by)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(DbError::new("storing the AMD result")),
        }
    }

    /// Saves why `call_sid`'s stream ended (before the stream is closed, so the redirect that
    /// follows finds it on any instance). `handed_over` carries the conversation and the
    /// stream's parameters, and counts the handover.
    pub async fn save_stream_end(&self, end: &StreamEnd) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO call_streams (call_sid, outcome, context, parameters, handovers, \
                 updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (call_sid) DO UPDATE SET outcome = excluded.outcome, \
                 context = excluded.context, parameters = excluded.parameters, \
                 handovers = excluded.handovers, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(&end.call_sid)
        .bind(end.outcome.as_str())
        .bind(end.context.as_deref())
        .bind(end.parameters.as_deref())
        .bind(i64::from(end.handovers))
        .bind(crate::record::now_ms())
        .execute(&self.pool)
        .await
        .map_err(DbError::new("saving why a stream ended"))?;
        Ok(())
    }

    /// Why `call_sid`'s latest stream ended, if saved.
    pub async fn stream_end(&self, call_sid: &str) -> Result<Option<StreamEnd>, DbError> {
        Ok(self.stream_end_at(call_sid).await?.map(|(end, _)| end))
    }

    /// Why `call_sid`'s latest stream ended, if saved, and when that was saved (Unix ms).
    pub async fn stream_end_at(&self, call_sid: &str) -> Result<Option<(StreamEnd, i64)>, DbError> {
        let row = sqlx::query(
            "SELECT call_sid, outcome, context, parameters, handovers, updated_at_ms \
             FROM call_streams WHERE call_sid = $1",
        )
        .bind(call_sid)
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::new("reading why a stream ended"))?;
        let Some(row) = row else { return Ok(None) };
        let read = || DbError::new("reading why a stream ended");
        let outcome: String = row.try_get("outcome").map_err(read())?;
        let Some(outcome) = StreamOutcome::parse(&outcome) else {
            return Ok(None);
        };
        let end = StreamEnd {
            call_sid: row.try_get("call_sid").map_err(read())?,
            outcome,
            context: row.try_get("context").map_err(read())?,
            parameters: row.try_get("parameters").map_err(read())?,
            handovers: u32::try_from(row.try_get::<i64, _>("handovers").map_err(read())?)
                .unwrap_or(0),
        };
        Ok(Some((end, row.try_get("updated_at_ms").map_err(read())?)))
    }

    /// The stored record of `call_sid` (`None`: no record yet).
    pub async fn record(&self, call_sid: &str) -> Result<Option<CallRecord>, DbError> {
        let row = sqlx::query("SELECT record FROM calls WHERE call_sid = $1")
            .bind(call_sid)
            .fetch_optional(&self.pool)
            .await
            .map_err(DbError::new("reading a call record"))?;
        let Some(row) = row else { return Ok(None) };
        let json: Option<String> = row
            .try_get("record")
            .map_err(DbError::new("reading a call record"))?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// One call by SID.
    pub async fn get(&self, call_sid: &str) -> Result<Option<StoredCall>, DbError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM calls WHERE call_sid = $1"))
            .bind(call_sid)
            .fetch_optional(&self.pool)
            .await
            .map_err(DbError::new("reading a call"))?;
        row.map(|r| stored_call(&r)).transpose()
    }

    /// A page of calls, the last committed first (highest list position).
    pub async fn list(&self, q: &ListQuery) -> Result<Vec<StoredCall>, DbError> {
        let mut sql = format!("SELECT {COLUMNS} FROM calls WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if q.before.is_some() {
            sql.push_str(&format!(" AND list_seq < {}", next()));
        }
        if q.since_ms.is_some() {
            sql.push_str(&format!(" AND created_at_ms >= {}", next()));
        }
        if q.until_ms.is_some() {
            sql.push_str(&format!(" AND created_at_ms < {}", next()));
        }
        if q.number.is_some() {
            let (a, b) = (next(), next());
            sql.push_str(&format!(" AND (from_number = {a} OR to_number = {b})"));
        }
        if q.end_reason.is_some() {
            sql.push_str(&format!(" AND end_reason = {}", next()));
        }
        if q.direction.is_some() {
            sql.push_str(&format!(" AND direction = {}", next()));
        }
        sql.push_str(&format!(" ORDER BY list_seq DESC LIMIT {}", next()));
        let mut query = sqlx::query(&sql);
        if let Some(v) = q.before {
            query = query.bind(v);
        }
        if let Some(v) = q.since_ms {
            query = query.bind(v);
        }
        if let Some(v) = q.until_ms {
            query = query.bind(v);
        }
        if let Some(v) = &q.number {
            query = query.bind(v.clone()).bind(v.clone());
        }
        if let Some(v) = &q.end_reason {
            query = query.bind(v.clone());
        }
        if let Some(v) = &q.direction {
            query = query.bind(v.clone());
        }
        query = query.bind(q.limit);
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::new("listing calls"))?;
        rows.iter().map(stored_call).collect()
    }
}

/// A row as JSON: the stored record (or a skeleton for a call without one yet) with the
/// columns the webhook and status callbacks maintain merged in.
fn stored_call(row: &AnyRow) -> Result<StoredCall, DbError> {
    let get = DbError::new("reading a row");
    let seq: i64 = row.try_get("list_seq").map_err(get)?;
    let text = |name: &'static str| -> Result<Option<String>, DbError> {
        row.try_get::<Option<String>, _>(name)
            .map_err(DbError::new("reading a row"))
    };
    let int = |name: &'static str| -> Result<Option<i64>, DbError> {
        row.try_get::<Option<i64>, _>(name)
            .map_err(DbError::new("reading a row"))
    };
    let call_sid: String = row
        .try_get("call_sid")
        .map_err(DbError::new("reading a row"))?;
    let mut json = match text("record")? {
        Some(record) => {
            serde_json::from_str::<serde_json::Value>(&record).map_err(|e| DbError {
                action: "decoding a stored record",
                source: sqlx::Error::Decode(Box::new(e)),
            })?
        }
        None => serde_json::json!({
            "call_sid": call_sid,
            "end_reason": null,
            "times": {},
            "transcript": [],
            "tool_calls": [],
        }),
    };
    let obj = json.as_object_mut().ok_or_else(|| DbError {
        action: "decoding a stored record",
        source: sqlx::Error::Decode("the stored record is not a JSON object".into()),
    })?;
    for (column, field) in [
        ("direction", "direction"),
        ("from_number", "from"),
        ("to_number", "to"),
        ("account_sid", "account_sid"),
    ] {
        if let Some(v) = text(column)? {
            obj.insert(field.into(), v.into());
        }
    }
    obj.entry("direction").or_insert_with(|| "inbound".into());
    if let Some(at) = int("webhook_at_ms")?
        && let Some(times) = obj.get_mut("times").and_then(|t| t.as_object_mut())
    {
        times.insert("webhook_at_ms".into(), at.into());
    }
    obj.insert("created_at_ms".into(), int("created_at_ms")?.into());
    obj.insert("answered_by".into(), text("answered_by")?.into());
    let twilio = TwilioStatus {
        status: text("twilio_status")?,
        ringing_at_ms: int("ringing_at_ms")?,
        answered_at_ms: int("answered_at_ms")?,
        completed_at_ms: int("completed_at_ms")?,
        duration_secs: int("twilio_duration_secs")?,
    };
    obj.insert(
        "twilio".into(),
        serde_json::to_value(twilio).unwrap_or_default(),
    );
    Ok(StoredCall { seq, json })
}

/// Removes a password from a connection URL in an error message.
fn redact(message: &str) -> String {
    match (message.find("://"), message.find('@')) {
        (Some(s), Some(at)) if at > s => {
            format!("{}://[redacted]{}", &message[..s], &message[at..])
        }
        _ => message.to_owned(),
    }
}
