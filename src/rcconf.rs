//! The rc.conf-style `KEY=value` syntax shared by `cellmgr.conf`, `.cell` and
//! `.volume` files. Files are *parsed, never sourced*: no expansion, no commands.
//!
//! Accepted: blank lines, `#` comments (whole line, or after whitespace following
//! a value), `KEY=value`, `KEY="value"`, `KEY='value'`. Inside double quotes `\"`
//! and `\\` are the only escapes. `$` and backquotes are refused outside single
//! quotes, because an operator writing them expects a shell to expand them.

use std::fmt;
use std::path::{Path, PathBuf};

/// One `KEY=value` assignment and the line it came from (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A parse or validation error that names file, line and the expected form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl FileError {
    pub fn new(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        FileError {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.path.display(), l, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for FileError {}

fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Parses the text of one file into its assignments, in file order. Duplicate
/// keys are an error naming both lines.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Assignment>, FileError> {
    let mut out: Vec<Assignment> = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let err = |m: String| FileError::new(path, Some(line), m);
        let Some((key, rest)) = trimmed.split_once('=') else {
            return Err(err(format!(
                "expected KEY=value, found {}",
                crate::output::quoted(trimmed)
            )));
        };
        let key = key.trim_end();
        if key.starts_with("export ") {
            return Err(err(
                "'export' is not supported: write KEY=value (the file is parsed, not sourced)"
                    .into(),
            ));
        }
        if !valid_key(key) || key.len() != key.trim().len() {
            return Err(err(format!(
                "invalid key {}: expected upper-case letters, digits and '_' before '='",
                crate::output::quoted(key)
            )));
        }
        // A valid key can still be long; echoed only for an error (a large
        // directory of manifests is parsed at every read).
        let shown = || crate::output::echo(key);
        if rest.starts_with(char::is_whitespace) && !rest.trim().is_empty() {
            let shown = shown();
            return Err(err(format!(
                "no space allowed after '{shown}=': write {shown}=\"value\""
            )));
        }
        let value = parse_value(rest).map_err(|m| err(format!("{}: {m}", shown())))?;
        if let Some(prev) = out.iter().find(|a| a.key == key) {
            return Err(err(format!(
                "duplicate key {} (first set on line {})",
                shown(),
                prev.line
            )));
        }
        out.push(Assignment {
            key: key.to_string(),
            value,
            line,
        });
    }
    Ok(out)
}

fn parse_value(rest: &str) -> Result<String, String> {
    let mut chars = rest.chars().peekable();
    let mut value = String::new();
    match chars.peek() {
        Some('"') => {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some(e @ ('"' | '\\')) => value.push(e),
                        Some(e) => {
                            value.push('\\');
                            value.push(e);
                        }
                        None => return Err("unterminated double quote".into()),
                    },
                    '$' | '`' => {
                        return Err(format!(
                            "'{c}' would be expanded by a shell; this file is parsed, not sourced: use single quotes for a literal"
                        ))
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err("unterminated double quote".into());
            }
        }
        Some('\'') => {
            chars.next();
            let mut closed = false;
            for c in chars.by_ref() {
                if c == '\'' {
                    closed = true;
                    break;
                }
                value.push(c);
            }
            if !closed {
                return Err("unterminated single quote".into());
            }
        }
        _ => {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if matches!(
                    c,
                    '$' | '`' | '"' | '\'' | ';' | '&' | '|' | '<' | '>' | '(' | ')'
                ) {
                    return Err(format!(
                        "unexpected '{c}' in an unquoted value: quote the value (KEY=\"...\")"
                    ));
                }
                value.push(c);
                chars.next();
            }
        }
    }
    let tail: String = chars.collect();
    let tail = tail.trim_start();
    if !tail.is_empty() && !tail.starts_with('#') {
        return Err(format!(
            "unexpected text after the value: {} (quote values that contain spaces)",
            crate::output::quoted(tail)
        ));
    }
    Ok(value)
}

/// Quotes a value for writing back so that [`parse`] returns it unchanged.
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:,+@%=".contains(c));
    if plain {
        value.to_string()
    } else if !value.contains('\'') {
        format!("'{value}'")
    } else {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        assert!(
            !escaped.contains(['$', '`']),
            "values with both ' and $ or ` cannot be written"
        );
        format!("\"{escaped}\"")
    }
}

/// The entry of `keys` (key, expected form) that `a` assigns; an unknown key is
/// an error naming its line and the near miss or, failing that, every known key.
pub fn known_key<'k>(
    path: &Path,
    a: &Assignment,
    keys: &'k [(&'k str, &'k str)],
) -> Result<&'k (&'k str, &'k str), FileError> {
    keys.iter()
        .find(|(k, _)| *k == a.key)
        .ok_or_else(|| unknown_key(path, a.line, &a.key, keys))
}

/// The error for a key that is not among `keys`.
pub fn unknown_key(path: &Path, line: usize, key: &str, keys: &[(&str, &str)]) -> FileError {
    let known: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
    let hint = match suggest(key, &known) {
        Some(k) => format!(" (did you mean {k}?)"),
        None => format!("; known keys: {}", known.join(" ")),
    };
    let key = crate::output::echo(key);
    FileError::new(path, Some(line), format!("unknown key {key}{hint}"))
}

/// `YES` or `NO` (also `yes`/`Yes`, `no`/`No`), the boolean of every file.
pub fn parse_yes_no(v: &str) -> Option<bool> {
    match v {
        "YES" | "yes" | "Yes" => Some(true),
        "NO" | "no" | "No" => Some(false),
        _ => None,
    }
}

/// A boolean as written back to a file.
pub fn yes_no(b: bool) -> &'static str {
    if b {
        "YES"
    } else {
        "NO"
    }
}

/// A byte size: digits with an optional `k`, `m` or `g` suffix (powers of
/// 1024, either case), e.g. `1048576`, `512k`, `4M`. No fractions, no
/// zero-width values such as `k` alone.
pub fn parse_size(v: &str) -> Option<u64> {
    let (digits, shift) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 10),
        b'm' | b'M' => (&v[..v.len() - 1], 20),
        b'g' | b'G' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1u64 << shift)
}

/// A size as [`parse_size`] reads it, in the largest unit that divides it
/// exactly (`64M`, `1536K`, `1000`).
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(30, 'G'), (20, 'M'), (10, 'K')] {
        if bytes != 0 && bytes % (1u64 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// The value forms of the four resource limits, shared by cellmgr.conf's
/// defaults, the `CELL_CREATE_*` manifest keys and cellctl's flags. Every
/// form also takes `unlimited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitForm {
    /// Processes (Linux: tasks) at once.
    Processes,
    /// Bytes of memory.
    Memory,
    /// Percent of one CPU.
    Cpu,
    /// Bytes of disk.
    Disk,
}

impl LimitForm {
    /// Smallest memory limit: a cell's init and a shell need a few MiB.
    pub const MIN_MEMORY: u64 = 4 << 20;
    /// Smallest disk: an ext4 image with its journal.
    pub const MIN_DISK: u64 = 16 << 20;

    /// What a value must look like, for error messages.
    pub const fn expected(self) -> &'static str {
        match self {
            LimitForm::Processes => "a count of at least 1, or 'unlimited'",
            LimitForm::Memory => "a size of at least 4M such as 512M or 2G, or 'unlimited'",
            LimitForm::Cpu => {
                "a percentage of one CPU of at least 1 (200 is two CPUs), or 'unlimited'"
            }
            LimitForm::Disk => "a size of at least 16M such as 512M or 10G, or 'unlimited'",
        }
    }

    /// `Some(None)` for `unlimited`, `Some(Some(n))` for a valid value, `None`
    /// for anything else.
    pub fn parse(self, v: &str) -> Option<Option<u64>> {
        if v == "unlimited" {
            return Some(None);
        }
        let count = || {
            v.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| v.parse::<u64>().ok())
                .flatten()
        };
        let n = match self {
            LimitForm::Processes | LimitForm::Cpu => count().filter(|n| *n >= 1),
            LimitForm::Memory => parse_size(v).filter(|n| *n >= Self::MIN_MEMORY),
            LimitForm::Disk => parse_size(v).filter(|n| *n >= Self::MIN_DISK),
        }?;
        Some(Some(n))
    }

    /// A limit as files and reads show it: `unlimited`, a count, or a size.
    pub fn format(self, limit: Option<u64>) -> String {
        match (self, limit) {
            (_, None) => "unlimited".into(),
            (LimitForm::Memory | LimitForm::Disk, Some(n)) => format_size(n),
            (_, Some(n)) => n.to_string(),
        }
    }
}

/// A duration: digits with a unit `ms`, `s`, `m` or `h`; plain digits are
/// seconds (`30`, `30s`, `500ms`, `2m`).
pub fn parse_duration(v: &str) -> Option<std::time::Duration> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }?;
    Some(std::time::Duration::from_millis(ms))
}

/// The closest known key within a small edit distance, for "did you mean" hints.
pub fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let within = |k: &str| 2.max(k.len() / 5);
    known
        .iter()
        // The distance is at least the difference in length: skip the far ones
        // cheaply (a 1 MiB key must not cost seconds).
        .filter(|k| key.len().abs_diff(k.len()) <= within(k))
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= within(k))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_forms_take_unlimited_and_refuse_too_small_values() {
        assert_eq!(LimitForm::Processes.parse("64"), Some(Some(64)));
        assert_eq!(LimitForm::Processes.parse("unlimited"), Some(None));
        assert_eq!(LimitForm::Processes.parse("0"), None);
        assert_eq!(LimitForm::Cpu.parse("250"), Some(Some(250)));
        assert_eq!(LimitForm::Cpu.parse("50%"), None);
        assert_eq!(LimitForm::Memory.parse("64M"), Some(Some(64 << 20)));
        assert_eq!(LimitForm::Memory.parse("1M"), None);
        assert_eq!(LimitForm::Disk.parse("32M"), Some(Some(32 << 20)));
        assert_eq!(LimitForm::Disk.parse("8M"), None);
        assert_eq!(LimitForm::Disk.format(Some(32 << 20)), "32M");
        assert_eq!(LimitForm::Processes.format(Some(64)), "64");
        assert_eq!(LimitForm::Cpu.format(None), "unlimited");
    }

    #[test]
    fn sizes_take_binary_suffixes_and_round_trip() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("32M"), Some(32 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        for bad in ["", "M", "1.5G", "-1", "12MB", " 1", "99999999999999G"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        for (n, text) in [
            (64 << 20, "64M"),
            (1536 << 10, "1536K"),
            (1000, "1000"),
            (0, "0"),
        ] {
            assert_eq!(format_size(n), text);
            assert_eq!(parse_size(text), Some(n));
        }
    }

    fn p(text: &str) -> Result<Vec<(String, String)>, String> {
        parse(Path::new("t.conf"), text)
            .map(|v| v.into_iter().map(|a| (a.key, a.value)).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("4M"), Some(4 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        for bad in ["", "k", "1.5M", "-1", "1T", "1 M", "99999999999999999999g"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        use std::time::Duration;
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "s", "1.5s", "-1s", "1d", "1 s", "ms"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn plain_quoted_comments_and_blank_lines() {
        let got =
            p("# c\n\nA=1\nB=\"two words\" # trailing\nC='$lit'\nD=\nE=\"a\\\"b\"\n").unwrap();
        let want = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "$lit"),
            ("D", ""),
            ("E", "a\"b"),
        ];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn duplicates_name_both_lines() {
        let e = p("A=1\n\nA=2\n").unwrap_err();
        assert_eq!(e, "t.conf:3: duplicate key A (first set on line 1)");
    }

    #[test]
    fn expansion_and_shell_syntax_are_refused() {
        assert!(p("A=\"$HOME\"\n")
            .unwrap_err()
            .contains("t.conf:1: A: '$' would be expanded"));
        assert!(p("A=$(id)\n").unwrap_err().contains("quote the value"));
        assert!(p("A=1 B=2\n")
            .unwrap_err()
            .contains("unexpected text after the value"));
        assert!(p("export A=1\n")
            .unwrap_err()
            .contains("'export' is not supported"));
        assert!(p("lower=1\n").unwrap_err().contains("invalid key 'lower'"));
        assert!(p("JUSTTEXT\n").unwrap_err().contains("expected KEY=value"));
        assert!(p("A=\"open\n")
            .unwrap_err()
            .contains("unterminated double quote"));
    }

    #[test]
    fn quote_round_trips() {
        for v in [
            "plain",
            "",
            "two words",
            "it's",
            "a\"b",
            "x\\y",
            "/p/a-b_c.d:ro",
        ] {
            let text = format!("K={}\n", quote(v));
            assert_eq!(p(&text).unwrap()[0].1, v, "{text}");
        }
    }

    #[test]
    fn suggestions_for_near_misses_only() {
        let known = ["CELL_DATA_DIR", "CELL_BASE_DIR", "CELL_BASE"];
        assert_eq!(suggest("CELL_DAT_DIR", &known), Some("CELL_DATA_DIR"));
        assert_eq!(suggest("TOTALLY_ELSE", &known), None);
    }

    #[test]
    fn yes_no_round_trips_and_refuses_the_rest() {
        for (text, b) in [
            ("YES", true),
            ("yes", true),
            ("Yes", true),
            ("NO", false),
            ("no", false),
            ("No", false),
        ] {
            assert_eq!(parse_yes_no(text), Some(b));
        }
        assert_eq!(parse_yes_no("yES"), None);
        assert_eq!(parse_yes_no("1"), None);
        assert_eq!(parse_yes_no(yes_no(true)), Some(true));
        assert_eq!(parse_yes_no(yes_no(false)), Some(false));
    }
}
