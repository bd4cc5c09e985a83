//! Calendar arithmetic for UTC timestamps (no time-zone database): shared by
//! whatever prints or parses dates.

/// The proleptic Gregorian (year, month, day) of a count of days since
/// 1970-01-01 (Howard Hinnant's civil-from-days algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The count of days since 1970-01-01 of a proleptic Gregorian (year, month,
/// day), the inverse of [`civil_from_days`] for real dates (Howard Hinnant's
/// days-from-civil algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a unix time in milliseconds. Timestamps in
/// this form sort as text in time order.
pub fn format_utc_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// A UTC time written `YYYY-MM-DD`, `YYYY-MM-DDThh:mm` or
/// `YYYY-MM-DDThh:mm:ss` (a space may stand for the `T`, a `Z` may follow),
/// as unix milliseconds; `None` when it is not one of those or not a real date.
pub fn parse_utc(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let number = |s: &str, len: usize| -> Option<i64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut d = date.split('-');
    let (y, m, day) = (
        number(d.next()?, 4)?,
        number(d.next()?, 2)?,
        number(d.next()?, 2)?,
    );
    if d.next().is_some() || !(1..=12).contains(&m) || day < 1 {
        return None;
    }
    let days = days_from_civil(y, m, day);
    if civil_from_days(days) != (y, m, day) || days < 0 {
        return None; // 2026-02-30 and the like
    }
    let mut secs = days * 86_400;
    if let Some(t) = time {
        let mut parts = t.split(':');
        let h = number(parts.next()?, 2)?;
        let min = number(parts.next()?, 2)?;
        let s = parts.next().map_or(Some(0), |p| number(p, 2))?;
        if parts.next().is_some() || h > 23 || min > 59 || s > 59 {
            return None;
        }
        secs += h * 3600 + min * 60 + s;
    }
    u64::try_from(secs).ok().map(|s| s * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_format_and_parse() {
        assert_eq!(format_utc_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc_ms(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(format_utc_ms(1_798_761_599_999), "2026-12-31T23:59:59.999Z");
        assert_eq!(parse_utc("2000-02-29"), Some(951_782_400_000));
        assert_eq!(parse_utc("2026-12-31T23:59:59Z"), Some(1_798_761_599_000));
        assert_eq!(parse_utc("2026-12-31 23:59"), Some(1_798_761_540_000));
        for bad in [
            "",
            "2026",
            "2026-13-01",
            "2026-02-30",
            "2026-1-01",
            "2026-01-01T24:00",
            "2026-01-01T10",
            "2026-01-01T10:00:00.5",
            "1969-12-31",
            "yesterday",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_818), (2026, 12, 31));
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(days_from_civil(2026, 12, 31), 20_818);
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }
}
