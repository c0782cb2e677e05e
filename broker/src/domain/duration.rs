//! Durations as people write them, in settings and in requests alike (humantime's syntax).

use std::time::Duration;

/// Longest duration any setting, option or request takes; anything longer is a typo, not a wish.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses a duration with units, such as `500ms`, `30s`, `5m`, `12h`, `30d` or `1h 30m`.
/// Values that overflow, or exceed a hundred years, are refused rather than wrapped.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{raw}` needs a unit: ms, s, m, h or d"));
    }
    let duration = humantime::parse_duration(raw)
        .map_err(|e| format!("`{raw}` is not a duration such as 500ms, 30s, 5m, 12h or 30d ({e})"))?;
    if duration > MAX_DURATION {
        return Err(format!("`{raw}` is longer than 100 years"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("5 fortnights").is_err());
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_that_overflow_are_refused_not_wrapped() {
        assert!(parse_duration("213503982334602d").is_err());
        assert!(parse_duration("18446744073709551616s").is_err());
        assert!(parse_duration("101y").is_err());
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
    }
}
