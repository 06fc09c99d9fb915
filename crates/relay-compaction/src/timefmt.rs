//! UTC time formatting for rendered contexts and summaries, without a
//! date-time dependency.

/// `hh:mm:ss` (UTC) of a Unix time in milliseconds.
pub(crate) fn hms(timestamp_ms: u64) -> String {
    let secs = timestamp_ms / 1000;
    let day_secs = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        day_secs / 3600,
        (day_secs / 60) % 60,
        day_secs % 60
    )
}

/// `YYYY-MM-DD` (UTC) of a Unix time in milliseconds.
pub(crate) fn date(timestamp_ms: u64) -> String {
    let days = (timestamp_ms / 1000 / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD hh:mm:ss` (UTC).
pub(crate) fn date_time(timestamp_ms: u64) -> String {
    format!("{} {}", date(timestamp_ms), hms(timestamp_ms))
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(date_time(0), "1970-01-01 00:00:00");
        // 2024-02-29 13:45:07.123 UTC
        assert_eq!(date_time(1_709_214_307_123), "2024-02-29 13:45:07");
        assert_eq!(hms(86_399_999), "23:59:59");
    }
}
