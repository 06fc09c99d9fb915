//! The dead letter operations, run on the SQLite worker thread.

use rusqlite::types::{Type, Value as SqlValue};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::error::DlqError;
use crate::query::DlqQuery;
use crate::sql::{
    add_group_count, to_i64, to_u64, Arg, Dialect, Statement, STATS_GROUPS, STATS_TOTALS,
};
use crate::store::DELIVERY_ACKNOWLEDGER;
use crate::types::{
    new_id, CleanupReport, DeadLetter, DlqState, DlqStats, FailureReason, NewDeadLetter,
};

const D: Dialect = Dialect::Sqlite;

fn sql_value(arg: Arg) -> SqlValue {
    match arg {
        Arg::Text(s) => SqlValue::Text(s),
        Arg::Int(i) => SqlValue::Integer(i),
        Arg::Bool(b) => SqlValue::Integer(i64::from(b)),
        // Expanded into single values by `Dialect::bind`; never reaches here.
        Arg::TextList(list) => SqlValue::Text(list.join(",")),
    }
}

fn json_text(value: &Option<serde_json::Value>) -> Result<Option<String>, DlqError> {
    Ok(value.as_ref().map(serde_json::to_string).transpose()?)
}

fn conversion_error(
    idx: usize,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))
}

fn json_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<serde_json::Value>> {
    match row.get::<_, Option<String>>(idx)? {
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| conversion_error(idx, e)),
        None => Ok(None),
    }
}

/// Decode a row selected with [`crate::sql::COLUMNS`].
fn letter_from_row(row: &Row<'_>) -> rusqlite::Result<DeadLetter> {
    let state: String = row.get(22)?;
    Ok(DeadLetter {
        id: row.get(0)?,
        message_id: row.get(1)?,
        msg_type: row.get(2)?,
        from: row.get(3)?,
        to: row.get(4)?,
        original_to: row.get(5)?,
        topic: row.get(6)?,
        kind: row.get(7)?,
        body: row.get(8)?,
        data: json_at(row, 9)?,
        payload_meta: json_at(row, 10)?,
        payload_extra: json_at(row, 11)?,
        thread: row.get(12)?,
        sig: json_at(row, 13)?,
        original_ts: row.get(14)?,
        reason: FailureReason::from_stored(&row.get::<_, String>(15)?),
        error_message: row.get(16)?,
        attempt_count: row.get(17)?,
        ttl_ms: row.get(18)?,
        dlq_ts: row.get(19)?,
        last_attempt_ts: row.get(20)?,
        dlq_retry_count: row.get(21)?,
        state: state.parse().map_err(|e| conversion_error(22, e))?,
        next_retry_at: row.get(23)?,
        acknowledged: row.get(24)?,
        acknowledged_ts: row.get(25)?,
        acknowledged_by: row.get(26)?,
    })
}

fn select(conn: &Connection, stmt: Statement) -> Result<Vec<DeadLetter>, DlqError> {
    let args = stmt.args.into_iter().map(sql_value);
    let mut prepared = conn.prepare_cached(&stmt.text)?;
    let rows = prepared
        .query_map(params_from_iter(args), letter_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn execute(conn: &Connection, stmt: Statement) -> Result<u64, DlqError> {
    let args = stmt.args.into_iter().map(sql_value);
    let n = conn
        .prepare_cached(&stmt.text)?
        .execute(params_from_iter(args))?;
    Ok(n as u64)
}

pub(super) fn add(
    conn: &Connection,
    letter: NewDeadLetter,
    now: i64,
    next_retry_at: Option<i64>,
) -> Result<DeadLetter, DlqError> {
    let mut stmt = conn.prepare_cached(&D.add())?;
    let row = stmt.query_row(
        params![
            new_id(),
            letter.message_id,
            letter.msg_type,
            letter.from,
            letter.to,
            letter.original_to,
            letter.topic,
            letter.kind,
            letter.body,
            json_text(&letter.data)?,
            json_text(&letter.payload_meta)?,
            json_text(&letter.payload_extra)?,
            letter.thread,
            json_text(&letter.sig)?,
            letter.original_ts,
            letter.reason.as_str(),
            letter.error_message,
            letter.attempt_count,
            letter.ttl_ms,
            now,
            next_retry_at,
        ],
        letter_from_row,
    )?;
    Ok(row)
}

pub(super) fn import(conn: &Connection, l: DeadLetter) -> Result<DeadLetter, DlqError> {
    let mut stmt = conn.prepare_cached(&D.import())?;
    let row = stmt.query_row(
        params![
            l.id,
            l.message_id,
            l.msg_type,
            l.from,
            l.to,
            l.original_to,
            l.topic,
            l.kind,
            l.body,
            json_text(&l.data)?,
            json_text(&l.payload_meta)?,
            json_text(&l.payload_extra)?,
            l.thread,
            json_text(&l.sig)?,
            l.original_ts,
            l.reason.as_str(),
            l.error_message,
            l.attempt_count,
            l.ttl_ms,
            l.dlq_ts,
            l.last_attempt_ts,
            l.dlq_retry_count,
            l.state.as_str(),
            l.next_retry_at,
            l.acknowledged,
            l.acknowledged_ts,
            l.acknowledged_by,
        ],
        letter_from_row,
    )?;
    Ok(row)
}

pub(super) fn get(conn: &Connection, id: &str) -> Result<Option<DeadLetter>, DlqError> {
    if id.is_empty() {
        return Ok(None);
    }
    let exact = conn
        .prepare_cached(&D.get_exact())?
        .query_row([id], letter_from_row)
        .optional()?;
    if exact.is_some() {
        return Ok(exact);
    }
    let mut matches = conn
        .prepare_cached(&D.get_prefix())?
        .query_map([id], letter_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    if matches.len() <= 1 {
        return Ok(matches.pop());
    }
    let count: i64 = conn
        .prepare_cached(&D.count_prefix())?
        .query_row([id], |row| row.get(0))?;
    Err(DlqError::Ambiguous {
        prefix: id.to_string(),
        count: to_u64(count),
    })
}

pub(super) fn query(conn: &Connection, q: &DlqQuery) -> Result<Vec<DeadLetter>, DlqError> {
    select(conn, D.select(q))
}

pub(super) fn count(conn: &Connection, q: &DlqQuery) -> Result<u64, DlqError> {
    let stmt = D.count(q);
    let args = stmt.args.into_iter().map(sql_value);
    let n: i64 = conn
        .prepare_cached(&stmt.text)?
        .query_row(params_from_iter(args), |row| row.get(0))?;
    Ok(to_u64(n))
}

pub(super) fn acknowledge(
    conn: &mut Connection,
    ids: &[String],
    by: &str,
    now: i64,
) -> Result<u64, DlqError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut acked = 0;
    {
        let mut stmt = tx.prepare_cached(
            "UPDATE dead_letters SET acknowledged = 1, acknowledged_ts = ?2, \
             acknowledged_by = ?3 WHERE id = ?1 AND acknowledged = 0",
        )?;
        for id in ids {
            acked += stmt.execute(params![id, now, by])? as u64;
        }
    }
    tx.commit()?;
    Ok(acked)
}

pub(super) fn set_state(
    conn: &Connection,
    id: &str,
    state: DlqState,
    next_retry_at: Option<i64>,
    now: i64,
) -> Result<bool, DlqError> {
    let replaying = state == DlqState::Replaying;
    let n = conn.prepare_cached(&D.set_state())?.execute(params![
        id,
        state.as_str(),
        next_retry_at,
        i64::from(replaying),
        replaying,
        now,
        state == DlqState::Delivered,
        DELIVERY_ACKNOWLEDGER,
    ])?;
    Ok(n > 0)
}

pub(super) fn due_for_retry(
    conn: &Connection,
    now: i64,
    max_retries: i64,
    limit: usize,
) -> Result<Vec<DeadLetter>, DlqError> {
    let mut stmt = conn.prepare_cached(&D.due())?;
    let rows = stmt
        .query_map(params![now, max_retries, to_i64(limit)], letter_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn pending_for_target(conn: &Connection, to: &str) -> Result<Vec<DeadLetter>, DlqError> {
    let mut stmt = conn.prepare_cached(&D.pending_for_target())?;
    let rows = stmt
        .query_map([to], letter_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn purge(conn: &Connection, q: &DlqQuery) -> Result<u64, DlqError> {
    execute(conn, D.purge(q))
}

pub(super) fn stats(conn: &mut Connection) -> Result<DlqStats, DlqError> {
    // One read transaction: every number describes the same snapshot.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let mut stats = DlqStats::empty();
    let (total, unacked, retries, oldest, newest): (i64, i64, i64, Option<i64>, Option<i64>) =
        tx.query_row(STATS_TOTALS, [], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })?;
    stats.total = to_u64(total);
    stats.unacknowledged = to_u64(unacked);
    stats.total_retries = to_u64(retries);
    stats.oldest_ts = oldest;
    stats.newest_ts = newest;
    for (group, sql) in STATS_GROUPS {
        let mut stmt = tx.prepare_cached(sql)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (key, n) in rows {
            add_group_count(&mut stats, group, key, n);
        }
    }
    tx.commit()?;
    stats.finish();
    Ok(stats)
}

pub(super) fn cleanup(
    conn: &mut Connection,
    now: i64,
    retention_ms: Option<i64>,
    max_entries: Option<u64>,
) -> Result<CleanupReport, DlqError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut report = CleanupReport::default();
    if let Some(retention) = retention_ms {
        report.expired = tx
            .prepare_cached(&D.expire())?
            .execute([now.saturating_sub(retention)])? as u64;
    }
    if let Some(max) = max_entries {
        for settled in [true, false] {
            let total: i64 = tx.query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))?;
            let excess = to_u64(total).saturating_sub(max);
            if excess == 0 {
                break;
            }
            let n = tx
                .prepare_cached(&D.evict(settled))?
                .execute([i64::try_from(excess).unwrap_or(i64::MAX)])? as u64;
            if settled {
                report.evicted_acknowledged = n;
            } else {
                report.evicted_unacknowledged = n;
            }
        }
    }
    tx.commit()?;
    Ok(report)
}
