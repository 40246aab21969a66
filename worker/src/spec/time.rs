//! The calendar of temporal binnings: instants parsed from text, and the
//! edges and labels of a temporal dimension's bins. Below both the spec's
//! checks and [`crate::bins`].

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::{Interval, MAX_BINS};

/// The edges (`labels.len() + 1` instants) and labels of the bins from
/// `start` to `end` by `interval`, or why there are none.
pub fn temporal_bins(start: &str, end: &str, interval: Interval) -> Result<(Vec<i64>, Vec<String>), String> {
    let s = parse_instant(start).ok_or_else(|| format!("start {start:?} is not a date"))?;
    let e = parse_instant(end).ok_or_else(|| format!("end {end:?} is not a date"))?;
    if s >= e {
        return Err(format!("start {start} is not before end {end}"));
    }
    let mut edges = vec![s];
    let mut labels = vec![];
    let mut t = s;
    while t < e {
        let next = step(t, interval);
        labels.push(label_time(t, interval));
        t = next.min(e);
        edges.push(t);
        if labels.len() > MAX_BINS as usize {
            return Err(format!("{start}..{end} by {interval:?} gives more than {MAX_BINS} bins"));
        }
    }
    Ok((edges, labels))
}

/// Parses an instant: RFC 3339, `YYYY-MM-DD[ T]HH:MM:SS` (UTC), `YYYY-MM-DD`,
/// or integer unix seconds.
pub fn parse_instant(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(v) = s.parse::<i64>() {
        return Some(v);
    }
    parse_timestamp(s)
}

/// Parses a timestamp as text (not bare integers).
#[inline]
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    // Fast path for `YYYY-MM-DDTHH:MM:SS` (AIS BaseDateTime).
    if b.len() == 19
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
        && b[16] == b':'
    {
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let mut v = 0u32;
            for &c in &b[r] {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + (c - b'0') as u32;
            }
            Some(v)
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let days = days_from_civil(y as i64, mo, d)?;
        return Some(days * 86400 + (h * 3600 + mi * 60 + se) as i64);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc().timestamp());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp());
    }
    None
}

/// Days since 1970-01-01 of a civil date, or None when the date is invalid.
fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    let date = NaiveDate::from_ymd_opt(y as i32, m, d)?;
    Some(date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days())
}

fn step(t: i64, interval: Interval) -> i64 {
    let dt = Utc.timestamp_opt(t, 0).single().expect("edge in range");
    match interval {
        Interval::Hour => t + 3600,
        Interval::Day => t + 86400,
        Interval::Month => {
            let (y, m) = if dt.month() == 12 { (dt.year() + 1, 1) } else { (dt.year(), dt.month() + 1) };
            Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().map(|d| d.timestamp()).unwrap_or(t + 31 * 86400)
        }
        Interval::Year => Utc
            .with_ymd_and_hms(dt.year() + 1, 1, 1, 0, 0, 0)
            .single()
            .map(|d| d.timestamp())
            .unwrap_or(t + 366 * 86400),
    }
}

fn label_time(t: i64, interval: Interval) -> String {
    let dt = Utc.timestamp_opt(t, 0).single().expect("edge in range");
    match interval {
        Interval::Year => dt.format("%Y").to_string(),
        Interval::Month => dt.format("%Y-%m").to_string(),
        Interval::Day => dt.format("%Y-%m-%d").to_string(),
        Interval::Hour => dt.format("%Y-%m-%d %Hh").to_string(),
    }
}
