//! `--since`: a duration ago, an RFC 3339 time, or epoch milliseconds.

use relay_protocol::now_ms;

/// Parses `--since` relative to the current time; returns epoch milliseconds.
pub fn parse_since(s: &str) -> Result<u64, String> {
    parse_since_at(s, now_ms())
}

/// [`parse_since`] relative to `now_ms`.
pub fn parse_since_at(s: &str, now_ms: u64) -> Result<u64, String> {
    let s = s.trim();
    let hint = "use a duration ago (30s, 10m, 2h, 1d, 1w, 1h30m), an RFC 3339 time \
                (2026-11-24T12:00:00Z) or epoch milliseconds";
    if s.is_empty() {
        return Err(format!("empty time; {hint}"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map_err(|_| format!("{s:?} is too large for epoch milliseconds"));
    }
    if let Some(ago) = parse_duration_ms(s) {
        return Ok(now_ms.saturating_sub(ago));
    }
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => u64::try_from(t.timestamp_millis()).map_err(|_| format!("{s:?} is before 1970")),
        Err(_) => Err(format!("cannot read {s:?} as a time; {hint}")),
    }
}

/// `30s`, `10m`, `2h`, `1d`, `1w` and sums such as `1h30m`, in milliseconds.
fn parse_duration_ms(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut saw_unit = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        digits.clear();
        total = total.checked_add(n.checked_mul(unit)?)?;
        saw_unit = true;
    }
    (saw_unit && digits.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn durations_are_ago() {
        assert_eq!(parse_since_at("10m", NOW), Ok(NOW - 600_000));
        assert_eq!(parse_since_at("2h", NOW), Ok(NOW - 7_200_000));
        assert_eq!(parse_since_at("1d", NOW), Ok(NOW - 86_400_000));
        assert_eq!(parse_since_at("30s", NOW), Ok(NOW - 30_000));
        assert_eq!(parse_since_at("1h30m", NOW), Ok(NOW - 5_400_000));
        assert_eq!(parse_since_at(" 1w ", NOW), Ok(NOW - 604_800_000));
    }

    #[test]
    fn absolute_times() {
        assert_eq!(parse_since_at("1700000000000", NOW), Ok(1_700_000_000_000));
        assert_eq!(
            parse_since_at("2026-11-24T12:00:01Z", NOW),
            Ok(1_795_521_601_000)
        );
        assert_eq!(
            parse_since_at("2026-11-24T13:00:01+01:00", NOW),
            Ok(1_795_521_601_000)
        );
    }

    #[test]
    fn garbage_is_explained() {
        for bad in [
            "",
            "yesterday",
            "10",
            "m",
            "10x",
            "5m3",
            "-5m",
            "2026-13-01T00:00:00Z",
        ] {
            if bad == "10" {
                // Plain digits are epoch milliseconds.
                assert_eq!(parse_since_at(bad, NOW), Ok(10));
                continue;
            }
            let err = parse_since_at(bad, NOW).expect_err(bad);
            assert!(
                err.contains("RFC 3339") || err.contains("empty"),
                "{bad}: {err}"
            );
        }
    }
}
