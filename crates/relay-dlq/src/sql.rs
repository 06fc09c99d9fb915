//! SQL shared by the SQLite and PostgreSQL backends.
//!
//! Statements are written once with PostgreSQL's `$n` placeholders;
//! [`Dialect::sql`] turns them into SQLite's `?n`. Only values ever travel
//! as parameters: the sort key comes from the [`DlqOrder`] whitelist and
//! everything else in the text is a constant of this module.

use crate::query::{DlqOrder, DlqQuery};
use crate::types::{DlqStats, FailureReason};

/// The table, in both databases.
pub(crate) const TABLE: &str = "dead_letters";

/// Columns in the order both backends decode them.
pub(crate) const COLUMNS: &str = "id, message_id, msg_type, from_agent, to_agent, original_to, \
    topic, kind, body, data, payload_meta, payload_extra, thread, sig, original_ts, reason, \
    error_message, attempt_count, ttl_ms, dlq_ts, last_attempt_ts, dlq_retry_count, state, \
    next_retry_at, acknowledged, acknowledged_ts, acknowledged_by";

/// Condition: acknowledged or in a final state.
pub(crate) const SETTLED: &str = "(acknowledged = TRUE OR state IN ('delivered', 'exhausted'))";

/// Indexes, created after the table (identical in both databases).
pub(crate) const INDEXES: &[&str] = &[
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_dead_letters_message_to \
     ON dead_letters (message_id, to_agent)",
    "CREATE INDEX IF NOT EXISTS idx_dead_letters_to ON dead_letters (to_agent)",
    "CREATE INDEX IF NOT EXISTS idx_dead_letters_from ON dead_letters (from_agent)",
    "CREATE INDEX IF NOT EXISTS idx_dead_letters_reason ON dead_letters (reason)",
    "CREATE INDEX IF NOT EXISTS idx_dead_letters_dlq_ts ON dead_letters (dlq_ts)",
    "CREATE INDEX IF NOT EXISTS idx_dead_letters_acknowledged ON dead_letters (acknowledged)",
    "CREATE INDEX IF NOT EXISTS idx_dead_letters_state_retry \
     ON dead_letters (state, next_retry_at)",
];

/// Keeps the newest row of each `(message_id, to_agent)` pair, so the unique
/// index can be built on a table adopted from an older layout.
pub(crate) const DEDUPE: &str = "DELETE FROM dead_letters WHERE id IN (\
    SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY message_id, to_agent \
    ORDER BY dlq_ts DESC, id DESC) AS rn FROM dead_letters) ranked WHERE rn > 1)";

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    Bool(bool),
    /// Bound as one `text[]` on PostgreSQL, expanded on SQLite.
    TextList(Vec<String>),
}

/// SQL text plus its parameters, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub text: String,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `template` with `$n` placeholders in this dialect.
    pub fn sql(self, template: &str) -> String {
        match self {
            Dialect::Postgres => template.to_string(),
            Dialect::Sqlite => template.replace('$', "?"),
        }
    }

    /// `id` for ORDER BY: byte order on both databases.
    fn id_key(self) -> &'static str {
        match self {
            Dialect::Sqlite => "id",
            Dialect::Postgres => "id COLLATE \"C\"",
        }
    }

    /// Condition "id starts with the text bound at `$n`".
    pub fn id_prefix(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("substr(id, 1, length(?{n})) = ?{n}"),
            Dialect::Postgres => format!("starts_with(id, ${n})"),
        }
    }

    /// Append `arg` to `args` and return its placeholder(s).
    fn bind(self, args: &mut Vec<Arg>, arg: Arg) -> String {
        match (self, arg) {
            (Dialect::Sqlite, Arg::TextList(list)) => {
                let marks: Vec<String> = list
                    .into_iter()
                    .map(|item| {
                        args.push(Arg::Text(item));
                        format!("?{}", args.len())
                    })
                    .collect();
                marks.join(", ")
            }
            (Dialect::Sqlite, arg) => {
                args.push(arg);
                format!("?{}", args.len())
            }
            (Dialect::Postgres, arg) => {
                args.push(arg);
                format!("${}", args.len())
            }
        }
    }

    /// ` WHERE ...` for the filters of `q` (empty when there are none).
    fn filters(self, q: &DlqQuery, args: &mut Vec<Arg>) -> String {
        let mut conds: Vec<String> = Vec::new();
        if let Some(to) = &q.to {
            conds.push(format!(
                "to_agent = {}",
                self.bind(args, Arg::Text(to.clone()))
            ));
        }
        if let Some(from) = &q.from {
            conds.push(format!(
                "from_agent = {}",
                self.bind(args, Arg::Text(from.clone()))
            ));
        }
        if let Some(reason) = q.reason {
            conds.push(format!(
                "reason = {}",
                self.bind(args, Arg::Text(reason.as_str().into()))
            ));
        }
        if let Some(state) = q.state {
            conds.push(format!(
                "state = {}",
                self.bind(args, Arg::Text(state.as_str().into()))
            ));
        }
        if let Some(acked) = q.acknowledged {
            conds.push(format!(
                "acknowledged = {}",
                self.bind(args, Arg::Bool(acked))
            ));
        }
        if let Some(since) = q.since_ts {
            conds.push(format!("dlq_ts >= {}", self.bind(args, Arg::Int(since))));
        }
        if let Some(until) = q.until_ts {
            conds.push(format!("dlq_ts < {}", self.bind(args, Arg::Int(until))));
        }
        if let Some(ids) = &q.ids {
            if ids.is_empty() {
                conds.push("1 = 0".into());
            } else {
                let list = self.bind(args, Arg::TextList(ids.clone()));
                conds.push(match self {
                    Dialect::Sqlite => format!("id IN ({list})"),
                    Dialect::Postgres => format!("id = ANY({list})"),
                });
            }
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    }

    /// ` ORDER BY ...` implementing [`crate::query::compare`].
    pub fn order(self, order: DlqOrder, descending: bool) -> String {
        let dir = if descending { "DESC" } else { "ASC" };
        let id = self.id_key();
        let key = match order {
            DlqOrder::DlqTs => String::new(),
            DlqOrder::OriginalTs => format!("original_ts {dir}, "),
            DlqOrder::AttemptCount => format!("attempt_count {dir}, "),
            DlqOrder::NextRetryAt => format!("next_retry_at {dir} NULLS LAST, "),
        };
        format!(" ORDER BY {key}dlq_ts {dir}, {id} {dir}")
    }

    /// `SELECT` for [`DlqStore::query`](crate::DlqStore::query).
    pub fn select(self, q: &DlqQuery) -> Statement {
        let mut args = Vec::new();
        let filters = self.filters(q, &mut args);
        let order = self.order(q.order_by, q.descending);
        let limit = self.bind(&mut args, Arg::Int(to_i64(q.effective_limit())));
        let offset = self.bind(&mut args, Arg::Int(to_i64(q.offset)));
        Statement {
            text: format!(
                "SELECT {COLUMNS} FROM {TABLE}{filters}{order} LIMIT {limit} OFFSET {offset}"
            ),
            args,
        }
    }

    /// `SELECT count(*)` for [`DlqStore::count`](crate::DlqStore::count).
    pub fn count(self, q: &DlqQuery) -> Statement {
        let mut args = Vec::new();
        let filters = self.filters(q, &mut args);
        Statement {
            text: format!("SELECT count(*) FROM {TABLE}{filters}"),
            args,
        }
    }

    /// `DELETE` for [`DlqStore::purge`](crate::DlqStore::purge).
    pub fn purge(self, q: &DlqQuery) -> Statement {
        let mut args = Vec::new();
        let filters = self.filters(q, &mut args);
        Statement {
            text: format!("DELETE FROM {TABLE}{filters}"),
            args,
        }
    }

    /// Upsert used by `add`: `$1..$19` the message, `$20` now, `$21`
    /// next_retry_at.
    pub fn add(self) -> String {
        self.sql(&format!(
            "INSERT INTO {TABLE} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, NULL, 0, 'pending', $21, FALSE, \
             NULL, NULL) \
             ON CONFLICT (message_id, to_agent) DO UPDATE SET reason = excluded.reason, \
             error_message = excluded.error_message, attempt_count = excluded.attempt_count, \
             dlq_ts = excluded.dlq_ts, next_retry_at = excluded.next_retry_at, \
             state = 'pending', acknowledged = FALSE, acknowledged_ts = NULL, \
             acknowledged_by = NULL \
             RETURNING {COLUMNS}"
        ))
    }

    /// Upsert used by `import`: `$1..$27` every column in [`COLUMNS`] order.
    pub fn import(self) -> String {
        let values: Vec<String> = (1..=27).map(|n| format!("${n}")).collect();
        self.sql(&format!(
            "INSERT INTO {TABLE} ({COLUMNS}) VALUES ({}) \
             ON CONFLICT (message_id, to_agent) DO UPDATE SET \
             msg_type = excluded.msg_type, from_agent = excluded.from_agent, \
             original_to = excluded.original_to, topic = excluded.topic, kind = excluded.kind, \
             body = excluded.body, data = excluded.data, payload_meta = excluded.payload_meta, \
             payload_extra = excluded.payload_extra, thread = excluded.thread, \
             sig = excluded.sig, original_ts = excluded.original_ts, reason = excluded.reason, \
             error_message = excluded.error_message, attempt_count = excluded.attempt_count, \
             ttl_ms = excluded.ttl_ms, dlq_ts = excluded.dlq_ts, \
             last_attempt_ts = CASE \
               WHEN {TABLE}.last_attempt_ts IS NULL THEN excluded.last_attempt_ts \
               WHEN excluded.last_attempt_ts IS NULL THEN {TABLE}.last_attempt_ts \
               WHEN excluded.last_attempt_ts > {TABLE}.last_attempt_ts \
                 THEN excluded.last_attempt_ts \
               ELSE {TABLE}.last_attempt_ts END, \
             dlq_retry_count = CASE \
               WHEN excluded.dlq_retry_count > {TABLE}.dlq_retry_count \
                 THEN excluded.dlq_retry_count \
               ELSE {TABLE}.dlq_retry_count END, \
             state = excluded.state, next_retry_at = excluded.next_retry_at, \
             acknowledged = excluded.acknowledged, acknowledged_ts = excluded.acknowledged_ts, \
             acknowledged_by = excluded.acknowledged_by \
             RETURNING {COLUMNS}",
            values.join(", ")
        ))
    }

    /// Exact id lookup: `$1` id.
    pub fn get_exact(self) -> String {
        self.sql(&format!("SELECT {COLUMNS} FROM {TABLE} WHERE id = $1"))
    }

    /// Prefix lookup, at most two rows: `$1` prefix.
    pub fn get_prefix(self) -> String {
        format!(
            "SELECT {COLUMNS} FROM {TABLE} WHERE {} ORDER BY {} LIMIT 2",
            self.id_prefix(1),
            self.id_key()
        )
    }

    /// Number of ids starting with `$1`.
    pub fn count_prefix(self) -> String {
        format!("SELECT count(*) FROM {TABLE} WHERE {}", self.id_prefix(1))
    }

    /// State change: `$1` id, `$2` state, `$3` next_retry_at, `$4` retry
    /// increment (0 or 1), `$5` is-replaying, `$6` now, `$7` is-delivered,
    /// `$8` delivery acknowledger.
    pub fn set_state(self) -> String {
        self.sql(&format!(
            "UPDATE {TABLE} SET state = $2, next_retry_at = $3, \
             dlq_retry_count = dlq_retry_count + $4, \
             last_attempt_ts = CASE WHEN CAST($5 AS BOOLEAN) THEN CAST($6 AS BIGINT) \
               ELSE last_attempt_ts END, \
             acknowledged_by = CASE WHEN CAST($7 AS BOOLEAN) AND acknowledged = FALSE \
               THEN CAST($8 AS TEXT) ELSE acknowledged_by END, \
             acknowledged_ts = CASE WHEN CAST($7 AS BOOLEAN) AND acknowledged = FALSE \
               THEN CAST($6 AS BIGINT) ELSE acknowledged_ts END, \
             acknowledged = CASE WHEN CAST($7 AS BOOLEAN) THEN TRUE ELSE acknowledged END \
             WHERE id = $1"
        ))
    }

    /// Due letters: `$1` now, `$2` max retries, `$3` limit.
    pub fn due(self) -> String {
        self.sql(&format!(
            "SELECT {COLUMNS} FROM {TABLE} WHERE state = 'pending' AND acknowledged = FALSE \
             AND next_retry_at IS NOT NULL AND next_retry_at <= $1 AND dlq_retry_count < $2{} \
             LIMIT $3",
            self.order(DlqOrder::NextRetryAt, false)
        ))
    }

    /// Pending letters for a target: `$1` target.
    pub fn pending_for_target(self) -> String {
        self.sql(&format!(
            "SELECT {COLUMNS} FROM {TABLE} WHERE to_agent = $1 AND state = 'pending' \
             AND acknowledged = FALSE{}",
            self.order(DlqOrder::DlqTs, false)
        ))
    }

    /// Delete settled letters older than `$1`.
    pub fn expire(self) -> String {
        self.sql(&format!(
            "DELETE FROM {TABLE} WHERE dlq_ts < $1 AND {SETTLED}"
        ))
    }

    /// Delete the `$1` oldest settled (or, with `settled == false`,
    /// unsettled) letters.
    pub fn evict(self, settled: bool) -> String {
        let cond = if settled {
            SETTLED.to_string()
        } else {
            format!("NOT {SETTLED}")
        };
        self.sql(&format!(
            "DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE} WHERE {cond}{} LIMIT $1)",
            self.order(DlqOrder::DlqTs, false)
        ))
    }
}

/// Totals for stats: total, unacknowledged, retries, oldest/newest unacked.
pub(crate) const STATS_TOTALS: &str = "SELECT count(*), \
    CAST(COALESCE(SUM(CASE WHEN acknowledged = TRUE THEN 0 ELSE 1 END), 0) AS BIGINT), \
    CAST(COALESCE(SUM(dlq_retry_count), 0) AS BIGINT), \
    MIN(CASE WHEN acknowledged = FALSE THEN dlq_ts END), \
    MAX(CASE WHEN acknowledged = FALSE THEN dlq_ts END) \
    FROM dead_letters";

/// Grouping of a per-group stats query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatsGroup {
    Reason,
    Target,
    State,
}

/// Per-group counts for stats.
pub(crate) const STATS_GROUPS: [(StatsGroup, &str); 3] = [
    (
        StatsGroup::Reason,
        "SELECT reason, count(*) FROM dead_letters GROUP BY reason",
    ),
    (
        StatsGroup::Target,
        "SELECT to_agent, count(*) FROM dead_letters GROUP BY to_agent",
    ),
    (
        StatsGroup::State,
        "SELECT state, count(*) FROM dead_letters GROUP BY state",
    ),
];

/// Add one row of a per-group stats query to `stats`. Unrecognised reasons
/// count as `unknown`, so the reason map always has exactly eight keys.
pub(crate) fn add_group_count(stats: &mut DlqStats, group: StatsGroup, key: String, n: i64) {
    let (map, key) = match group {
        StatsGroup::Reason => (
            &mut stats.by_reason,
            FailureReason::from_stored(&key).as_str().to_string(),
        ),
        StatsGroup::Target => (&mut stats.by_target, key),
        StatsGroup::State => (&mut stats.by_state, key),
    };
    *map.entry(key).or_insert(0) += to_u64(n);
}

pub(crate) fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Count (`i64` from the database) as `u64`.
pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_placeholders_are_numbered() {
        let q = DlqQuery {
            to: Some("bob".into()),
            ids: Some(vec!["a".into(), "b".into()]),
            ..DlqQuery::default()
        };
        let s = Dialect::Sqlite.select(&q);
        assert!(s.text.contains("to_agent = ?1"), "{}", s.text);
        assert!(s.text.contains("id IN (?2, ?3)"), "{}", s.text);
        assert!(s.text.contains("LIMIT ?4 OFFSET ?5"), "{}", s.text);
        assert_eq!(s.args.len(), 5);
        let p = Dialect::Postgres.select(&q);
        assert!(p.text.contains("id = ANY($2)"), "{}", p.text);
        assert_eq!(p.args.len(), 4);
    }

    #[test]
    fn user_text_never_reaches_sql() {
        let evil = "x'; DROP TABLE dead_letters; --".to_string();
        let q = DlqQuery {
            to: Some(evil.clone()),
            from: Some(evil.clone()),
            ids: Some(vec![evil.clone()]),
            ..DlqQuery::default()
        };
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            for s in [d.select(&q), d.count(&q), d.purge(&q)] {
                assert!(!s.text.contains("DROP"), "{}", s.text);
            }
        }
    }
}
