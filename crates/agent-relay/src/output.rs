//! Text formatting shared by the commands.

use chrono::{Local, TimeZone};
use relay_protocol::MessageRecord;
use serde::Serialize;

/// `2026-11-24 12:00:01` in local time.
pub fn format_ts(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| Local.timestamp_millis_opt(ms).single())
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| format!("@{ms}"))
}

/// The short form of an id (what `agent-relay read` accepts).
pub fn short_id(id: &str) -> &str {
    relay_protocol::ids::short_id(id)
}

/// Width of the labels of `show`-style output.
const LABEL_WIDTH: usize = 16;

/// One `label:  value` line of `show`-style output.
pub fn field(label: &str, value: &str) {
    let label = format!("{label}:");
    println!("{label:<LABEL_WIDTH$}{value}");
}

/// Indented `name  count` lines, names padded to one width; `(none)` when empty.
pub fn print_counts(rows: &[(String, String)]) {
    if rows.is_empty() {
        println!("  (none)");
        return;
    }
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in rows {
        let pad = width.saturating_sub(k.chars().count());
        println!("  {k}{}  {v}", " ".repeat(pad));
    }
}

/// Local time of an epoch-ms timestamp.
pub fn ts(ms: i64) -> String {
    u64::try_from(ms)
        .map(format_ts)
        .unwrap_or_else(|_| format!("@{ms}"))
}

/// `2026-11-24 12:00:01 (5m 0s ago)` or, in the future, `(in 4m 59s)`.
pub fn ts_rel(ms: i64, now: u64) -> String {
    match u64::try_from(ms) {
        Ok(t) if t > now.saturating_add(1000) => {
            format!("{} (in {})", format_ts(t), format_duration_ms(t - now))
        }
        Ok(t) if t > 0 => format!("{} ({})", format_ts(t), ago(t, now)),
        _ => ts(ms),
    }
}

/// At most `n` characters, ending in `…` when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A body on one line: line breaks shown as ` ⏎ `.
pub fn one_line(body: &str) -> String {
    body.trim_end().replace("\r\n", "\n").replace('\n', " ⏎ ")
}

/// Where a stored message went, channel messages as `#channel`.
pub fn target(rec: &MessageRecord) -> String {
    match &rec.channel {
        Some(ch) if !rec.to.starts_with('#') => {
            if ch.starts_with('#') {
                ch.clone()
            } else {
                format!("#{ch}")
            }
        }
        _ => rec.to.clone(),
    }
}

/// `2026-11-24 12:00:01  Alice -> Bob  [a1b2c3d4] [thread:t1]  body`
pub fn message_line(rec: &MessageRecord) -> String {
    let thread = rec
        .thread
        .as_deref()
        .map(|t| format!(" [thread:{t}]"))
        .unwrap_or_default();
    format!(
        "{}  {} -> {}  [{}]{}  {}",
        format_ts(rec.timestamp),
        rec.from,
        target(rec),
        short_id(&rec.id),
        thread,
        one_line(&rec.body)
    )
}

/// `1d 2h`, `3h 4m`, `5m 6s`, `7s`.
pub fn format_duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, sec) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// How long ago `ms` was, e.g. `5m ago`.
pub fn ago(ms: u64, now_ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    if now_ms <= ms + 1000 {
        return "just now".into();
    }
    format!("{} ago", format_duration_ms(now_ms - ms))
}

/// `12.3 MiB`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                s.push_str(cell);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: &str, thread: Option<&str>) -> MessageRecord {
        MessageRecord {
            id: "0193a1b2c3d4e5f6a1b2c3d4".into(),
            from: "Alice".into(),
            to: "Bob".into(),
            body: body.into(),
            channel: None,
            thread: thread.map(str::to_string),
            timestamp: 1_795_521_601_000,
            status: None,
            is_broadcast: None,
            reply_count: None,
            data: None,
            kind: None,
            topic: None,
            original_to: None,
            attempts: None,
        }
    }

    #[test]
    fn message_lines() {
        let line = message_line(&record("hello\nworld", Some("t1")));
        let expected_time = format_ts(1_795_521_601_000);
        assert_eq!(
            line,
            format!("{expected_time}  Alice -> Bob  [a1b2c3d4] [thread:t1]  hello ⏎ world")
        );
        assert_eq!(expected_time.len(), "2026-11-24 12:00:01".len());
        let mut ch = record("hi", None);
        ch.to = "general".into();
        ch.channel = Some("general".into());
        assert!(message_line(&ch).contains("Alice -> #general  [a1b2c3d4]  hi"));
    }

    #[test]
    fn small_formats() {
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(format_duration_ms(3_723_000), "1h 2m");
        assert_eq!(format_duration_ms(90_061_000), "1d 1h");
        assert_eq!(format_duration_ms(5_000), "5s");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(12 * 1024 * 1024 + 300 * 1024), "12.3 MiB");
        assert_eq!(ago(1_000, 301_000), "5m 0s ago");
        assert_eq!(
            table(&["NAME", "CLI"], &[vec!["Alice".into(), "claude".into()]]),
            "NAME   CLI\nAlice  claude"
        );
    }
}
