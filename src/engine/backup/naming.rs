//! Archive file names: `<name>_<UTC YYYYmmddTHHMMSSZ>.tar.gz`, and the UTC
//! timestamp conversions they need (dates from `crate::calendar`).

use crate::calendar::{civil_from_days, days_from_civil};

/// Length of `YYYYmmddTHHMMSSZ`.
const STAMP_LEN: usize = 16;
pub const ARCHIVE_SUFFIX: &str = ".tar.gz";
pub const SIDECAR_SUFFIX: &str = ".meta.cbor";

/// `20261129T184300Z` for a Unix time.
pub fn format_stamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The Unix time of a `YYYYmmddTHHMMSSZ` stamp; `None` unless it is exactly that form
/// and a real date.
pub fn parse_stamp(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != STAMP_LEN || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || d < 1 || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return None; // 31 February and friends
    }
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// `<name>_<stamp>.tar.gz`.
pub fn archive_name(name: &str, unix: u64) -> String {
    format!("{name}_{}{ARCHIVE_SUFFIX}", format_stamp(unix))
}

/// The creation time encoded in an archive file name of `name`, if the file is one.
/// The stamp has a fixed length, so `a_b_<stamp>` belongs to `a_b`, never to `a`.
pub fn archive_time(name: &str, file_name: &str) -> Option<u64> {
    let stamp = file_name
        .strip_prefix(name)?
        .strip_prefix('_')?
        .strip_suffix(ARCHIVE_SUFFIX)?;
    parse_stamp(stamp)
}

/// The name an archive file belongs to, whoever it is: `a_b` for
/// `a_b_<stamp>.tar.gz`.
pub fn archive_owner(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(ARCHIVE_SUFFIX)?;
    let (name, stamp) = stem.split_at(stem.len().checked_sub(STAMP_LEN + 1)?);
    let stamp = stamp.strip_prefix('_')?;
    (parse_stamp(stamp).is_some() && crate::names::is_valid(name)).then_some(name)
}

/// The sidecar next to an archive: `<name>_<stamp>.meta.cbor`.
pub fn sidecar_name(archive_file: &str) -> String {
    let stem = archive_file
        .strip_suffix(ARCHIVE_SUFFIX)
        .unwrap_or(archive_file);
    format!("{stem}{SIDECAR_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_match_known_dates() {
        assert_eq!(format_stamp(0), "19700101T000000Z");
        // date -u -d @1764441780 +%Y%m%dT%H%M%SZ
        assert_eq!(format_stamp(1_764_441_780), "20251129T184300Z");
        assert_eq!(format_stamp(951_782_400), "20000229T000000Z");
        for t in [0, 59, 951_782_399, 1_764_441_780, 4_102_444_799] {
            assert_eq!(parse_stamp(&format_stamp(t)), Some(t));
        }
    }

    #[test]
    fn malformed_stamps_are_rejected() {
        for bad in [
            "20251129184300",
            "20251129T184300",
            "20251329T184300Z",
            "20250231T000000Z",
            "20251129T246000Z",
            "2025112xT184300Z",
            "+0251129T184300Z",
        ] {
            assert_eq!(parse_stamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn archive_names_belong_to_exactly_one_name() {
        let f = archive_name("a_b", 1_764_441_780);
        assert_eq!(f, "a_b_20251129T184300Z.tar.gz");
        assert_eq!(archive_time("a_b", &f), Some(1_764_441_780));
        assert_eq!(archive_time("a", &f), None);
        assert_eq!(
            archive_time("a_b", "a_b_20251129T184300Z.tar.gz.meta.cbor"),
            None
        );
        assert_eq!(
            archive_time("a_b", ".a_b_20251129T184300Z.tar.gz.1.partial"),
            None
        );
        assert_eq!(sidecar_name(&f), "a_b_20251129T184300Z.meta.cbor");
        assert_eq!(archive_owner(&f), Some("a_b"));
        assert_eq!(archive_owner("_20251129T184300Z.tar.gz"), None);
        assert_eq!(archive_owner("x_2025112xT184300Z.tar.gz"), None);
        assert_eq!(archive_owner("Z.tar.gz"), None);
    }
}
