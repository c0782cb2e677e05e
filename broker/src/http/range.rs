//! Single byte ranges (RFC 9110 §14). Multiple ranges are answered with the whole file, which
//! the RFC allows.

use std::ops::RangeInclusive;

/// What to send for a `Range` header against a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No (usable) range: send everything.
    Full,
    /// Send these bytes with 206.
    Partial(RangeInclusive<u64>),
    /// 416.
    Unsatisfiable,
}

pub fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.is_empty(), end.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match end.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) => size.saturating_sub(n)..=size.saturating_sub(1),
            Err(_) => return RangeRequest::Full,
        },
        // bytes=N-: from N to the end.
        (false, true) => match start.parse::<u64>() {
            Ok(s) => s..=size.saturating_sub(1),
            Err(_) => return RangeRequest::Full,
        },
        (false, false) => match (start.parse::<u64>(), end.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => s..=e.min(size.saturating_sub(1)),
            _ => return RangeRequest::Full,
        },
        (true, true) => return RangeRequest::Full,
    };
    if size == 0 || *range.start() >= size {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Partial(range)
    }
}

#[cfg(test)]
mod tests {
    use super::{RangeRequest::*, parse};

    #[test]
    fn ranges_follow_the_rfc() {
        assert_eq!(parse(None, 10), Full);
        assert_eq!(parse(Some("bytes=0-3"), 10), Partial(0..=3));
        assert_eq!(parse(Some("bytes=5-"), 10), Partial(5..=9));
        assert_eq!(parse(Some("bytes=-3"), 10), Partial(7..=9));
        assert_eq!(parse(Some("bytes=-30"), 10), Partial(0..=9));
        assert_eq!(parse(Some("bytes=8-100"), 10), Partial(8..=9));
        assert_eq!(parse(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-1,4-5"), 10), Full);
        assert_eq!(parse(Some("bytes=3-1"), 10), Full);
        assert_eq!(parse(Some("items=0-1"), 10), Full);
        assert_eq!(parse(Some("bytes=0-0"), 0), Unsatisfiable);
    }
}
