//! `agent-relay dlq`: the daemon's dead letter queue (messages it could not deliver).

use std::collections::BTreeMap;
use std::future::Future;
use std::process::ExitCode;

use relay_client::{Client, ClientError};
use relay_protocol::{
    now_ms, DlqCountResponsePayload, DlqListResponsePayload, DlqSelectPayload, ErrorCode,
};
use serde::Deserialize;
use serde_json::Value;

use crate::cli::{
    DlqAckArgs, DlqListArgs, DlqPurgeArgs, DlqReplayArgs, DlqSelectArgs, DlqShowArgs, DLQ_REASONS,
    DLQ_STATES,
};
use crate::context::Ctx;
use crate::output::{
    field, format_duration_ms, one_line, print_counts, print_json, table, truncate, ts, ts_rel,
};

/// Characters of an id shown by `dlq list` (`dlq_` and 8 hex digits).
const ID_WIDTH: usize = 12;
/// Characters of a body shown by `dlq list`.
const BODY_WIDTH: usize = 60;

/// A dead letter as the daemon sends it. Every field is optional here so that a letter from a
/// newer or older daemon still prints.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Letter {
    id: String,
    message_id: String,
    msg_type: String,
    from: String,
    to: String,
    original_to: Option<String>,
    topic: Option<String>,
    kind: String,
    body: String,
    data: Option<Value>,
    payload_meta: Option<Value>,
    payload_extra: Option<Value>,
    thread: Option<String>,
    sig: Option<Value>,
    original_ts: Option<i64>,
    reason: String,
    error_message: Option<String>,
    attempt_count: i64,
    ttl_ms: Option<i64>,
    dlq_ts: i64,
    last_attempt_ts: Option<i64>,
    dlq_retry_count: i64,
    state: String,
    next_retry_at: Option<i64>,
    acknowledged: bool,
    acknowledged_ts: Option<i64>,
    acknowledged_by: Option<String>,
}

impl Letter {
    fn from_value(v: &Value) -> anyhow::Result<Letter> {
        Letter::deserialize(v)
            .map_err(|e| anyhow::anyhow!("unexpected dead letter from the daemon: {e}"))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Stats {
    total: u64,
    unacknowledged: u64,
    by_reason: BTreeMap<String, u64>,
    by_target: BTreeMap<String, u64>,
    by_state: BTreeMap<String, u64>,
    oldest_ts: Option<i64>,
    newest_ts: Option<i64>,
    total_retries: u64,
    avg_retry_count: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Health {
    backend: String,
    degraded: bool,
    last_error: Option<String>,
    spooled: u64,
    degraded_since: Option<i64>,
}

/// `dlq list`.
pub async fn list(ctx: &Ctx, args: &DlqListArgs) -> anyhow::Result<ExitCode> {
    let mut filter = args.filter.to_filter();
    filter.limit = Some(args.limit);
    let answer = with_client(ctx, |client| async move {
        client
            .dlq_list(filter)
            .await
            .map_err(|e| daemon_error(ctx, e))
    })
    .await?;
    let DlqListResponsePayload { mut letters, total } = answer;
    // The daemon picks the newest `limit`; they are printed oldest first.
    letters.sort_by_key(|l| {
        (
            l.get("dlqTs").and_then(Value::as_i64).unwrap_or(0),
            l.get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        )
    });
    if args.json {
        print_json(&DlqListResponsePayload { letters, total })?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::with_capacity(letters.len());
    for v in &letters {
        let l = Letter::from_value(v)?;
        rows.push(vec![
            prefix(&l.id, ID_WIDTH).to_string(),
            ts(l.dlq_ts),
            format!("{} -> {}", l.from, l.to),
            l.reason,
            l.state,
            l.attempt_count
                .saturating_add(l.dlq_retry_count)
                .to_string(),
            truncate(&one_line(&l.body), BODY_WIDTH),
        ]);
    }
    if !rows.is_empty() {
        println!(
            "{}",
            table(
                &[
                    "ID",
                    "DEAD-LETTERED",
                    "FROM -> TO",
                    "REASON",
                    "STATE",
                    "TRIES",
                    "BODY"
                ],
                &rows
            )
        );
    }
    let shown = u64::try_from(rows.len()).unwrap_or(u64::MAX);
    let more = if total > shown {
        " (raise --limit to see more)"
    } else {
        ""
    };
    println!("{shown} of {}{more}", dead_letters(total));
    Ok(ExitCode::SUCCESS)
}

/// `dlq show`.
pub async fn show(ctx: &Ctx, args: &DlqShowArgs) -> anyhow::Result<ExitCode> {
    let answer = with_client(ctx, |client| async move {
        client
            .dlq_get(&args.id)
            .await
            .map_err(|e| daemon_error(ctx, e))
    })
    .await?;
    let Some(v) = answer.letter else {
        anyhow::bail!(
            "{}",
            answer
                .error
                .unwrap_or_else(|| format!("no dead letter with id or prefix {:?}", args.id))
        );
    };
    if args.json {
        print_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    let l = Letter::from_value(&v)?;
    let now = now_ms();
    field("id", &l.id);
    field("message id", &l.message_id);
    field("type", &l.msg_type);
    field("from", &l.from);
    field("to", &l.to);
    if let Some(orig) = l.original_to.as_ref().filter(|o| **o != l.to) {
        field("sent to", orig);
    }
    if let Some(topic) = &l.topic {
        field("topic", topic);
    }
    if let Some(thread) = &l.thread {
        field("thread", thread);
    }
    field("kind", &l.kind);
    if let Some(t) = l.original_ts {
        field("sent", &ts(t));
    }
    field("dead-lettered", &ts_rel(l.dlq_ts, now));
    field("reason", &l.reason);
    if let Some(e) = &l.error_message {
        field("error", e);
    }
    field("attempts", &l.attempt_count.to_string());
    if let Some(ttl) = l.ttl_ms {
        field("ttl", &duration(ttl));
    }
    field("state", &l.state);
    field("replays", &l.dlq_retry_count.to_string());
    if let Some(t) = l.last_attempt_ts {
        field("last replay", &ts_rel(t, now));
    }
    match l.next_retry_at {
        Some(t) => field("next retry", &ts(t)),
        None if l.state == "pending" => field("next retry", "none scheduled"),
        None => {}
    }
    let acked = if l.acknowledged {
        let mut s = "yes".to_string();
        if let Some(by) = &l.acknowledged_by {
            s.push_str(&format!(", by {by}"));
        }
        if let Some(t) = l.acknowledged_ts {
            s.push_str(&format!(", {}", ts(t)));
        }
        s
    } else {
        "no".to_string()
    };
    field("acknowledged", &acked);
    for (label, value) in [
        ("meta", &l.payload_meta),
        ("extra", &l.payload_extra),
        ("signature", &l.sig),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !is_empty_json(v)) {
            field(label, &serde_json::to_string(v)?);
        }
    }
    if let Some(data) = l.data.as_ref().filter(|v| !is_empty_json(v)) {
        println!("data:");
        println!("{}", serde_json::to_string_pretty(data)?);
    }
    println!();
    println!("{}", l.body);
    Ok(ExitCode::SUCCESS)
}

/// `dlq stats`.
pub async fn stats(ctx: &Ctx, json: bool) -> anyhow::Result<ExitCode> {
    let answer = with_client(ctx, |client| async move {
        client.dlq_stats().await.map_err(|e| daemon_error(ctx, e))
    })
    .await?;
    if json {
        print_json(&answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !answer.enabled {
        println!("the dead letter queue is disabled: {}", enable_hint(ctx));
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    let stats = match &answer.stats {
        Some(v) => Stats::deserialize(v)
            .map_err(|e| anyhow::anyhow!("unexpected statistics from the daemon: {e}"))?,
        None => Stats::default(),
    };
    field(
        "dead letters",
        &format!("{} ({} unacknowledged)", stats.total, stats.unacknowledged),
    );
    if let Some(t) = stats.oldest_ts {
        field("oldest", &ts_rel(t, now));
    }
    if let Some(t) = stats.newest_ts {
        field("newest", &ts_rel(t, now));
    }
    field(
        "replays",
        &format!(
            "{} in all, {:.2} per letter",
            stats.total_retries, stats.avg_retry_count
        ),
    );
    println!();
    println!("by reason:");
    print_counts(&known_first(&stats.by_reason, &DLQ_REASONS));
    println!("by target:");
    print_counts(&known_first(&stats.by_target, &[]));
    println!("by state:");
    print_counts(&known_first(&stats.by_state, &DLQ_STATES));

    if let Some(v) = &answer.health {
        let health = Health::deserialize(v)
            .map_err(|e| anyhow::anyhow!("unexpected backend health from the daemon: {e}"))?;
        println!();
        let backend = if health.backend.is_empty() {
            "the storage backend"
        } else {
            health.backend.as_str()
        };
        if health.degraded {
            let since = health
                .degraded_since
                .map(|t| format!(" since {}", ts_rel(t, now)))
                .unwrap_or_default();
            field(
                "backend",
                &format!(
                    "{backend}, DEGRADED{since}; {} spooled locally",
                    dead_letters(health.spooled)
                ),
            );
        } else {
            let spooled = if health.spooled > 0 {
                format!("; {} spooled locally", dead_letters(health.spooled))
            } else {
                String::new()
            };
            field("backend", &format!("{backend}, healthy{spooled}"));
        }
        if let Some(e) = &health.last_error {
            field("last error", e);
        }
        if health.degraded {
            println!(
                "warning: dead letters are being kept locally until {backend} is reachable again"
            );
        }
    }

    if let Some(Value::Object(counters)) = &answer.counters {
        if !counters.is_empty() {
            println!();
            println!("since the daemon started:");
            let rows: Vec<(String, String)> = counters
                .iter()
                .map(|(k, v)| (k.clone(), scalar(v)))
                .collect();
            print_counts(&rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `dlq replay`.
pub async fn replay(ctx: &Ctx, args: &DlqReplayArgs) -> anyhow::Result<ExitCode> {
    act(ctx, &args.select, None, Action::Replay).await
}

/// `dlq ack`.
pub async fn ack(ctx: &Ctx, args: &DlqAckArgs) -> anyhow::Result<ExitCode> {
    act(ctx, &args.select, args.by.clone(), Action::Ack).await
}

/// `dlq purge` (the `--all` without `--yes` refusal is a usage error, checked while parsing).
pub async fn purge(ctx: &Ctx, args: &DlqPurgeArgs) -> anyhow::Result<ExitCode> {
    act(ctx, &args.select, None, Action::Purge).await
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Replay,
    Ack,
    Purge,
}

impl Action {
    fn done(self) -> &'static str {
        match self {
            Action::Replay => "replayed",
            Action::Ack => "acknowledged",
            Action::Purge => "purged",
        }
    }
}

async fn act(
    ctx: &Ctx,
    sel: &DlqSelectArgs,
    by: Option<String>,
    action: Action,
) -> anyhow::Result<ExitCode> {
    let answer: DlqCountResponsePayload = with_client(ctx, |client| async move {
        let mut filter = sel.filter.to_filter();
        if !sel.ids.is_empty() {
            filter.ids = Some(resolve_ids(ctx, &client, &sel.ids).await?);
        }
        filter.limit = sel.limit;
        let payload = DlqSelectPayload {
            filter,
            all: sel.all,
            by,
        };
        let result = match action {
            Action::Replay => client.dlq_replay(payload).await,
            Action::Ack => client.dlq_ack(payload).await,
            Action::Purge => client.dlq_purge(payload).await,
        };
        result.map_err(|e| daemon_error(ctx, e))
    })
    .await?;
    if sel.json {
        print_json(&answer)?;
    } else {
        println!("{} {}", action.done(), dead_letters(answer.count));
    }
    Ok(ExitCode::SUCCESS)
}

/// Full ids as given; anything shorter is looked up as a prefix, which must match exactly one
/// dead letter.
async fn resolve_ids(ctx: &Ctx, client: &Client, ids: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        let full = if is_full_id(id) {
            id.clone()
        } else {
            let answer = client.dlq_get(id).await.map_err(|e| daemon_error(ctx, e))?;
            match answer
                .letter
                .as_ref()
                .and_then(|l| l.get("id"))
                .and_then(Value::as_str)
            {
                Some(full) => full.to_string(),
                None => anyhow::bail!(
                    "{}",
                    answer
                        .error
                        .unwrap_or_else(|| format!("no dead letter with id or prefix {id:?}"))
                ),
            }
        };
        if !out.contains(&full) {
            out.push(full);
        }
    }
    Ok(out)
}

/// `dlq_` followed by 24 hex digits.
fn is_full_id(id: &str) -> bool {
    id.strip_prefix("dlq_")
        .is_some_and(|hex| hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Connects, runs `f`, and closes the connection whatever `f` returned.
async fn with_client<T, F, Fut>(ctx: &Ctx, f: F) -> anyhow::Result<T>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let (client, _events) = ctx.connect().await?;
    let result = f(client.clone()).await;
    client.close().await;
    result
}

/// A daemon error, with what to do about the ones that have a remedy.
fn daemon_error(ctx: &Ctx, e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Server(p)
            if p.message.contains("dead letter queue is disabled")
                && !p.message.contains("enabled = true") =>
        {
            anyhow::anyhow!("{}: {}", p.message, enable_hint(ctx))
        }
        ClientError::Server(p) if p.message.starts_with("unsupported type DLQ") => {
            anyhow::anyhow!(
                "the running daemon does not support the dead letter queue ({}); it may be an \
                 older build: restart it with agent-relay down && agent-relay up",
                p.message
            )
        }
        ClientError::Server(p) if matches!(p.code, ErrorCode::NotFound | ErrorCode::BadRequest) => {
            anyhow::anyhow!("{}", p.message)
        }
        e => e.into(),
    }
}

fn enable_hint(ctx: &Ctx) -> String {
    format!(
        "enable it with `[dlq] enabled = true` in {} and restart the daemon \
         (agent-relay down && agent-relay up)",
        ctx.paths.config_file.display()
    )
}

/// `1 dead letter`, `3 dead letters`.
fn dead_letters(n: u64) -> String {
    if n == 1 {
        "1 dead letter".into()
    } else {
        format!("{n} dead letters")
    }
}

/// Non-zero counts first (largest first, then by name), then the `known` keys that are zero
/// or missing, in their given order.
fn known_first(counts: &BTreeMap<String, u64>, known: &[&str]) -> Vec<(String, String)> {
    let mut nonzero: Vec<(&String, u64)> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k, *n))
        .collect();
    nonzero.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let mut rows: Vec<(String, String)> = nonzero
        .into_iter()
        .map(|(k, n)| (k.clone(), n.to_string()))
        .collect();
    for k in known {
        if counts.get(*k).copied().unwrap_or(0) == 0 {
            rows.push(((*k).to_string(), "0".into()));
        }
    }
    rows
}

/// A counter value: numbers and strings bare, anything else as JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_empty_json(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A time to live: `1h 2m`, or milliseconds below a second.
fn duration(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(ms) if ms >= 1000 => format_duration_ms(ms),
        _ => format!("{ms} ms"),
    }
}

/// The first `n` characters.
fn prefix(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_truncation() {
        assert!(is_full_id("dlq_0123456789abcdef01234567"));
        assert!(!is_full_id("dlq_0123"));
        assert!(!is_full_id("xyz_0123456789abcdef01234567"));
        assert!(!is_full_id("dlq_0123456789abcdef0123456z"));
        assert_eq!(
            prefix("dlq_0123456789abcdef01234567", ID_WIDTH),
            "dlq_01234567"
        );
        assert_eq!(truncate("short", 60), "short");
        let long = "x".repeat(100);
        let cut = truncate(&long, 60);
        assert_eq!(cut.chars().count(), 60);
        assert!(cut.ends_with('…'));
        assert_eq!(dead_letters(1), "1 dead letter");
        assert_eq!(dead_letters(0), "0 dead letters");
    }

    #[test]
    fn counts_put_non_zero_first() {
        let mut counts = BTreeMap::new();
        counts.insert("ttl_expired".to_string(), 1);
        counts.insert("target_not_found".to_string(), 3);
        counts.insert("rate_limited".to_string(), 0);
        let rows = known_first(&counts, &DLQ_REASONS);
        assert_eq!(rows.len(), DLQ_REASONS.len());
        assert_eq!(rows[0], ("target_not_found".to_string(), "3".to_string()));
        assert_eq!(rows[1], ("ttl_expired".to_string(), "1".to_string()));
        assert_eq!(
            rows[2],
            ("max_retries_exceeded".to_string(), "0".to_string())
        );
        assert!(known_first(&BTreeMap::new(), &[]).is_empty());
    }

    #[test]
    fn letters_decode_leniently() {
        let v = serde_json::json!({
            "id": "dlq_0123456789abcdef01234567",
            "from": "Alice",
            "to": "Ghost",
            "body": "hi",
            "reason": "target_not_found",
            "state": "pending",
            "dlqTs": 1_795_521_601_000_i64,
            "attemptCount": 1,
            "somethingNew": true
        });
        let l = Letter::from_value(&v).expect("decodes");
        assert_eq!(l.to, "Ghost");
        assert_eq!(l.dlq_ts, 1_795_521_601_000);
        assert!(!l.acknowledged);
        assert!(Letter::from_value(&serde_json::json!({"id": 5})).is_err());
    }
}
