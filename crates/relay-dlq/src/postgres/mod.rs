//! PostgreSQL backend: a `deadpool-postgres` pool of `tokio-postgres`
//! connections (no TLS).
//!
//! Every operation has a deadline: connecting gives up after
//! [`PostgresConfig::connect_timeout`], waiting for a pooled connection after
//! [`PostgresConfig::wait_timeout`] and the whole operation after
//! [`PostgresConfig::operation_timeout`], so a dead or stuck server turns into
//! [`DlqError::Unavailable`] instead of a hang.
//!
//! With [`PostgresConfig::schema`], every pooled connection gets
//! `search_path` set to that schema (created by the migrations if missing).

mod migrations;

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::sync::OnceCell;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::error::DlqError;
use crate::query::DlqQuery;
use crate::sql::{
    add_group_count, to_i64, to_u64, Arg, Dialect, Statement, STATS_GROUPS, STATS_TOTALS,
};
use crate::store::{DlqStore, DELIVERY_ACKNOWLEDGER};
use crate::types::{
    new_id, CleanupReport, DeadLetter, DlqState, DlqStats, FailureReason, NewDeadLetter,
};

const D: Dialect = Dialect::Postgres;

/// Default time allowed to open one connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time allowed to wait for a free pooled connection.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time allowed for one whole operation.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// Connection settings of a [`PostgresDlq`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/db?...` or a key-value connection string.
    pub url: String,
    /// Maximum pooled connections (at least 1).
    pub pool_size: usize,
    /// Schema holding the tables (plain identifier: letters, digits, `_`).
    /// `None` uses the server's default `search_path`.
    pub schema: Option<String>,
    /// Deadline for opening one connection.
    pub connect_timeout: Duration,
    /// Deadline for getting a connection from a busy pool.
    pub wait_timeout: Duration,
    /// Deadline for one whole operation (connection, migrations, queries).
    pub operation_timeout: Duration,
}

impl PostgresConfig {
    /// Settings with the default timeouts and no schema.
    pub fn new(url: impl Into<String>, pool_size: usize) -> Self {
        PostgresConfig {
            url: url.into(),
            pool_size,
            schema: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// Same settings, tables in `schema`.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

/// Dead letters in the `dead_letters` table of a PostgreSQL database
/// (JSONB payloads, BIGINT millisecond timestamps, BOOLEAN `acknowledged`),
/// through a `deadpool-postgres` pool without TLS.
///
/// Every connection attempt and operation has a deadline (see
/// [`PostgresConfig`]), so a dead server yields [`DlqError::Unavailable`]
/// instead of a hang. Migrations run on the first connection, serialised
/// between processes by an advisory lock.
pub struct PostgresDlq {
    pool: Pool,
    schema: Option<String>,
    operation_timeout: Duration,
    migrated: OnceCell<()>,
    closed: AtomicBool,
}

impl std::fmt::Debug for PostgresDlq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDlq")
            .field("schema", &self.schema)
            .field("status", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresDlq {
    /// Connect to `url` with at most `pool_size` connections and the default
    /// timeouts, and run the migrations. Fails with
    /// [`DlqError::Unavailable`] when the server cannot be reached.
    pub async fn connect(url: &str, pool_size: usize) -> Result<PostgresDlq, DlqError> {
        PostgresDlq::connect_with(PostgresConfig::new(url, pool_size)).await
    }

    /// [`connect`](Self::connect) with explicit settings.
    pub async fn connect_with(config: PostgresConfig) -> Result<PostgresDlq, DlqError> {
        let dlq = PostgresDlq::connect_lazy(config)?;
        dlq.run(async {
            drop(dlq.client().await?);
            Ok(())
        })
        .await?;
        Ok(dlq)
    }

    /// Build the pool without contacting the server. The first operation
    /// connects and runs the migrations; until the server answers every
    /// operation fails with [`DlqError::Unavailable`]. This is how a daemon
    /// starts while PostgreSQL is down (see [`ResilientDlq`](crate::ResilientDlq)).
    pub fn connect_lazy(config: PostgresConfig) -> Result<PostgresDlq, DlqError> {
        if config.pool_size == 0 {
            return Err(DlqError::Config(
                "PostgreSQL pool size must be at least 1".into(),
            ));
        }
        if let Some(schema) = &config.schema {
            validate_schema(schema)?;
        }
        let mut pg = tokio_postgres::Config::from_str(&config.url).map_err(|e| {
            DlqError::Config(format!(
                "invalid PostgreSQL URL ({}); expected postgres://user@host:port/database",
                describe(&e)
            ))
        })?;
        pg.connect_timeout(config.connect_timeout);
        if let Some(schema) = &config.schema {
            let options = match pg.get_options() {
                Some(existing) if !existing.is_empty() => {
                    format!("{existing} -c search_path={schema}")
                }
                _ => format!("-c search_path={schema}"),
            };
            pg.options(options);
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| DlqError::Config(format!("cannot build PostgreSQL pool: {e}")))?;
        Ok(PostgresDlq {
            pool,
            schema: config.schema,
            operation_timeout: config.operation_timeout,
            migrated: OnceCell::new(),
            closed: AtomicBool::new(false),
        })
    }

    /// Schema holding the tables, if one was configured.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// A pooled connection, migrating the schema on first use.
    async fn client(&self) -> Result<Object, DlqError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(DlqError::Closed);
        }
        let mut client = self.pool.get().await.map_err(pool_error)?;
        self.migrated
            .get_or_try_init(|| async {
                migrations::migrate(&mut client, self.schema.as_deref())
                    .await
                    .map(|_| ())
            })
            .await?;
        Ok(client)
    }

    /// Run `op` within the operation deadline.
    async fn run<T>(&self, op: impl Future<Output = Result<T, DlqError>>) -> Result<T, DlqError> {
        tokio::time::timeout(self.operation_timeout, op)
            .await
            .map_err(|_| {
                DlqError::Unavailable(format!(
                    "PostgreSQL did not answer within {:?}",
                    self.operation_timeout
                ))
            })?
    }

    async fn select(&self, stmt: Statement) -> Result<Vec<DeadLetter>, DlqError> {
        self.run(async {
            let client = self.client().await?;
            let prepared = client.prepare_cached(&stmt.text).await.map_err(pg_error)?;
            let rows = client
                .query(&prepared, &params(&stmt.args))
                .await
                .map_err(pg_error)?;
            rows.iter().map(letter_from_row).collect()
        })
        .await
    }

    async fn execute(&self, text: &str, args: &[&(dyn ToSql + Sync)]) -> Result<u64, DlqError> {
        self.run(async {
            let client = self.client().await?;
            let prepared = client.prepare_cached(text).await.map_err(pg_error)?;
            client.execute(&prepared, args).await.map_err(pg_error)
        })
        .await
    }

    async fn select_with(
        &self,
        text: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<DeadLetter>, DlqError> {
        self.run(async {
            let client = self.client().await?;
            let prepared = client.prepare_cached(text).await.map_err(pg_error)?;
            let rows = client.query(&prepared, args).await.map_err(pg_error)?;
            rows.iter().map(letter_from_row).collect()
        })
        .await
    }

    async fn select_one(
        &self,
        text: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<DeadLetter, DlqError> {
        let mut rows = self.select_with(text, args).await?;
        rows.pop()
            .ok_or_else(|| DlqError::Internal("upsert returned no row".into()))
    }
}

#[async_trait]
impl DlqStore for PostgresDlq {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn add(
        &self,
        l: NewDeadLetter,
        now: i64,
        next_retry_at: Option<i64>,
    ) -> Result<DeadLetter, DlqError> {
        let id = new_id();
        let reason = l.reason.as_str();
        self.select_one(
            &D.add(),
            &[
                &id,
                &l.message_id,
                &l.msg_type,
                &l.from,
                &l.to,
                &l.original_to,
                &l.topic,
                &l.kind,
                &l.body,
                &l.data,
                &l.payload_meta,
                &l.payload_extra,
                &l.thread,
                &l.sig,
                &l.original_ts,
                &reason,
                &l.error_message,
                &l.attempt_count,
                &l.ttl_ms,
                &now,
                &next_retry_at,
            ],
        )
        .await
    }

    async fn import(&self, l: DeadLetter) -> Result<DeadLetter, DlqError> {
        let reason = l.reason.as_str();
        let state = l.state.as_str();
        self.select_one(
            &D.import(),
            &[
                &l.id,
                &l.message_id,
                &l.msg_type,
                &l.from,
                &l.to,
                &l.original_to,
                &l.topic,
                &l.kind,
                &l.body,
                &l.data,
                &l.payload_meta,
                &l.payload_extra,
                &l.thread,
                &l.sig,
                &l.original_ts,
                &reason,
                &l.error_message,
                &l.attempt_count,
                &l.ttl_ms,
                &l.dlq_ts,
                &l.last_attempt_ts,
                &l.dlq_retry_count,
                &state,
                &l.next_retry_at,
                &l.acknowledged,
                &l.acknowledged_ts,
                &l.acknowledged_by,
            ],
        )
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<DeadLetter>, DlqError> {
        if id.is_empty() {
            return Ok(None);
        }
        let mut exact = self.select_with(&D.get_exact(), &[&id]).await?;
        if let Some(letter) = exact.pop() {
            return Ok(Some(letter));
        }
        let mut matches = self.select_with(&D.get_prefix(), &[&id]).await?;
        if matches.len() <= 1 {
            return Ok(matches.pop());
        }
        let count = self.count_with(&D.count_prefix(), &[&id]).await?;
        Err(DlqError::Ambiguous {
            prefix: id.to_string(),
            count,
        })
    }

    async fn query(&self, q: &DlqQuery) -> Result<Vec<DeadLetter>, DlqError> {
        self.select(D.select(q)).await
    }

    async fn count(&self, q: &DlqQuery) -> Result<u64, DlqError> {
        let stmt = D.count(q);
        self.count_with(&stmt.text, &params(&stmt.args)).await
    }

    async fn acknowledge(&self, ids: &[String], by: &str, now: i64) -> Result<u64, DlqError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        self.execute(
            "UPDATE dead_letters SET acknowledged = TRUE, acknowledged_ts = $2, \
             acknowledged_by = $3 WHERE id = ANY($1) AND acknowledged = FALSE",
            &[&ids, &now, &by],
        )
        .await
    }

    async fn set_state(
        &self,
        id: &str,
        state: DlqState,
        next_retry_at: Option<i64>,
        now: i64,
    ) -> Result<bool, DlqError> {
        let replaying = state == DlqState::Replaying;
        let n = self
            .execute(
                &D.set_state(),
                &[
                    &id,
                    &state.as_str(),
                    &next_retry_at,
                    &i64::from(replaying),
                    &replaying,
                    &now,
                    &(state == DlqState::Delivered),
                    &DELIVERY_ACKNOWLEDGER,
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn due_for_retry(
        &self,
        now: i64,
        max_retries: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, DlqError> {
        self.select_with(&D.due(), &[&now, &max_retries, &to_i64(limit)])
            .await
    }

    async fn pending_for_target(&self, to: &str) -> Result<Vec<DeadLetter>, DlqError> {
        self.select_with(&D.pending_for_target(), &[&to]).await
    }

    async fn purge(&self, q: &DlqQuery) -> Result<u64, DlqError> {
        let stmt = D.purge(q);
        self.execute(&stmt.text, &params(&stmt.args)).await
    }

    async fn stats(&self) -> Result<DlqStats, DlqError> {
        self.run(async {
            let mut client = self.client().await?;
            // One snapshot for every number.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg_error)?;
            let mut stats = DlqStats::empty();
            let row = tx.query_one(STATS_TOTALS, &[]).await.map_err(pg_error)?;
            stats.total = to_u64(row.try_get(0).map_err(pg_error)?);
            stats.unacknowledged = to_u64(row.try_get(1).map_err(pg_error)?);
            stats.total_retries = to_u64(row.try_get(2).map_err(pg_error)?);
            stats.oldest_ts = row.try_get(3).map_err(pg_error)?;
            stats.newest_ts = row.try_get(4).map_err(pg_error)?;
            for (group, sql) in STATS_GROUPS {
                for row in tx.query(sql, &[]).await.map_err(pg_error)? {
                    let key: String = row.try_get(0).map_err(pg_error)?;
                    let n: i64 = row.try_get(1).map_err(pg_error)?;
                    add_group_count(&mut stats, group, key, n);
                }
            }
            tx.commit().await.map_err(pg_error)?;
            stats.finish();
            Ok(stats)
        })
        .await
    }

    async fn cleanup(
        &self,
        now: i64,
        retention_ms: Option<i64>,
        max_entries: Option<u64>,
    ) -> Result<CleanupReport, DlqError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_error)?;
            // Serialise concurrent cleanups so the overflow count holds.
            tx.execute("LOCK TABLE dead_letters IN SHARE ROW EXCLUSIVE MODE", &[])
                .await
                .map_err(pg_error)?;
            let mut report = CleanupReport::default();
            if let Some(retention) = retention_ms {
                let cutoff = now.saturating_sub(retention);
                report.expired = tx
                    .execute(&D.expire(), &[&cutoff])
                    .await
                    .map_err(pg_error)?;
            }
            if let Some(max) = max_entries {
                for settled in [true, false] {
                    let total: i64 = tx
                        .query_one("SELECT count(*) FROM dead_letters", &[])
                        .await
                        .map_err(pg_error)?
                        .try_get(0)
                        .map_err(pg_error)?;
                    let excess = to_u64(total).saturating_sub(max);
                    if excess == 0 {
                        break;
                    }
                    let excess = i64::try_from(excess).unwrap_or(i64::MAX);
                    let n = tx
                        .execute(&D.evict(settled), &[&excess])
                        .await
                        .map_err(pg_error)?;
                    if settled {
                        report.evicted_acknowledged = n;
                    } else {
                        report.evicted_unacknowledged = n;
                    }
                }
            }
            tx.commit().await.map_err(pg_error)?;
            Ok(report)
        })
        .await
    }

    async fn close(&self) -> Result<(), DlqError> {
        self.closed.store(true, Ordering::SeqCst);
        self.pool.close();
        Ok(())
    }
}

impl PostgresDlq {
    async fn count_with(&self, text: &str, args: &[&(dyn ToSql + Sync)]) -> Result<u64, DlqError> {
        self.run(async {
            let client = self.client().await?;
            let prepared = client.prepare_cached(text).await.map_err(pg_error)?;
            let n: i64 = client
                .query_one(&prepared, args)
                .await
                .map_err(pg_error)?
                .try_get(0)
                .map_err(pg_error)?;
            Ok(to_u64(n))
        })
        .await
    }
}

fn params(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|arg| -> &(dyn ToSql + Sync) {
            match arg {
                Arg::Text(s) => s,
                Arg::Int(i) => i,
                Arg::Bool(b) => b,
                Arg::TextList(list) => list,
            }
        })
        .collect()
}

/// Decode a row selected with [`crate::sql::COLUMNS`].
fn letter_from_row(row: &Row) -> Result<DeadLetter, DlqError> {
    let state: String = row.try_get(22).map_err(pg_error)?;
    let reason: String = row.try_get(15).map_err(pg_error)?;
    Ok(DeadLetter {
        id: row.try_get(0).map_err(pg_error)?,
        message_id: row.try_get(1).map_err(pg_error)?,
        msg_type: row.try_get(2).map_err(pg_error)?,
        from: row.try_get(3).map_err(pg_error)?,
        to: row.try_get(4).map_err(pg_error)?,
        original_to: row.try_get(5).map_err(pg_error)?,
        topic: row.try_get(6).map_err(pg_error)?,
        kind: row.try_get(7).map_err(pg_error)?,
        body: row.try_get(8).map_err(pg_error)?,
        data: row.try_get(9).map_err(pg_error)?,
        payload_meta: row.try_get(10).map_err(pg_error)?,
        payload_extra: row.try_get(11).map_err(pg_error)?,
        thread: row.try_get(12).map_err(pg_error)?,
        sig: row.try_get(13).map_err(pg_error)?,
        original_ts: row.try_get(14).map_err(pg_error)?,
        reason: FailureReason::from_stored(&reason),
        error_message: row.try_get(16).map_err(pg_error)?,
        attempt_count: row.try_get(17).map_err(pg_error)?,
        ttl_ms: row.try_get(18).map_err(pg_error)?,
        dlq_ts: row.try_get(19).map_err(pg_error)?,
        last_attempt_ts: row.try_get(20).map_err(pg_error)?,
        dlq_retry_count: row.try_get(21).map_err(pg_error)?,
        state: state
            .parse()
            .map_err(|e| DlqError::Corrupt(format!("dead letter state: {e}")))?,
        next_retry_at: row.try_get(23).map_err(pg_error)?,
        acknowledged: row.try_get(24).map_err(pg_error)?,
        acknowledged_ts: row.try_get(25).map_err(pg_error)?,
        acknowledged_by: row.try_get(26).map_err(pg_error)?,
    })
}

/// `schema` must be a plain identifier: it goes into `search_path` and
/// `CREATE SCHEMA`, where no parameter can be bound.
fn validate_schema(schema: &str) -> Result<(), DlqError> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && schema.len() <= 63 {
        Ok(())
    } else {
        Err(DlqError::Config(format!(
            "invalid PostgreSQL schema name {schema:?}: use letters, digits and '_' \
             (at most 63, not starting with a digit)"
        )))
    }
}

/// The error and all its causes, joined with `: `.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// SQLSTATE classes and codes meaning "the server cannot serve us now".
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("57P") // admin/crash shutdown, cannot connect now
        || code == "53300" // too many connections
}

/// Classify a driver error: connectivity problems become
/// [`DlqError::Unavailable`], everything else [`DlqError::Postgres`].
pub(crate) fn pg_error(e: tokio_postgres::Error) -> DlqError {
    let message = describe(&e);
    let unavailable = match e.as_db_error() {
        Some(db) => is_unavailable_code(db.code().code()),
        None => {
            e.is_closed()
                || message.starts_with("timeout waiting for server")
                || std::error::Error::source(&e)
                    .is_some_and(|cause| cause.downcast_ref::<std::io::Error>().is_some())
        }
    };
    if unavailable {
        DlqError::Unavailable(format!("PostgreSQL: {message}"))
    } else {
        DlqError::Postgres { message, source: e }
    }
}

fn pool_error(e: PoolError) -> DlqError {
    match e {
        PoolError::Backend(e) => match pg_error(e) {
            DlqError::Postgres { message, .. } => {
                // Connecting failed for a non-network reason (authentication,
                // unknown database, ...): the server is unusable as configured.
                DlqError::Unavailable(format!("PostgreSQL refused the connection: {message}"))
            }
            other => other,
        },
        PoolError::Closed => DlqError::Closed,
        other => DlqError::Unavailable(format!("PostgreSQL pool: {}", describe(&other))),
    }
}
