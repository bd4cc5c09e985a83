//! Service output: splitting a byte stream into log lines, and the bounded
//! log tail file the UI shows.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Splits a byte stream into lines of at most `max` bytes. A longer line is
/// cut into pieces, at a UTF-8 character boundary where possible.
pub struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            buf: Vec::new(),
            max,
        }
    }

    /// Adds bytes; returns the lines they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                if nl <= self.max {
                    let line: Vec<u8> = self.buf.drain(..=nl).collect();
                    lines.push(to_text(&line[..nl]));
                    continue;
                }
            }
            if self.buf.len() > self.max {
                let cut = utf8_cut(&self.buf, self.max);
                let piece: Vec<u8> = self.buf.drain(..cut).collect();
                lines.push(to_text(&piece));
                continue;
            }
            return lines;
        }
    }

    /// The unterminated rest, if any (at the end of a run).
    pub fn flush(&mut self) -> Option<String> {
        if self.buf.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.buf);
        Some(to_text(&rest))
    }
}

/// The largest cut point ≤ `max` that does not split a UTF-8 sequence (falls
/// back to `max` for bytes that are not UTF-8 anyway).
fn utf8_cut(buf: &[u8], max: usize) -> usize {
    (max.saturating_sub(3)..=max)
        .rev()
        .find(|&i| i > 0 && (i >= buf.len() || (buf[i] & 0xC0) != 0x80))
        .unwrap_or(max)
}

fn to_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

/// The last `keep` lines of a service's output (and its supervisor's notes),
/// in a file. Lines are appended as they come; when the file holds twice
/// `keep` lines it is rewritten atomically with only the last `keep`.
pub struct LogTail {
    path: PathBuf,
    file: Option<File>,
    lines: VecDeque<String>,
    in_file: usize,
    keep: usize,
}

impl LogTail {
    /// Opens the tail, keeping the last `keep` lines of an existing file.
    pub fn open(path: &Path, keep: usize) -> LogTail {
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let mut lines: VecDeque<String> = old.lines().map(str::to_string).collect();
        while lines.len() > keep {
            lines.pop_front();
        }
        let mut tail = LogTail {
            path: path.to_path_buf(),
            file: None,
            in_file: lines.len(),
            lines,
            keep,
        };
        tail.rewrite();
        tail
    }

    /// Appends one line, prefixed with the UTC time.
    pub fn push(&mut self, unix_secs: u64, line: &str) {
        let line = format!("{} {line}", utc_timestamp(unix_secs));
        if let Some(f) = self.file.as_mut() {
            // The tail is a convenience: a full disk must not stop the service.
            let _ = writeln!(f, "{line}");
        }
        self.lines.push_back(line);
        if self.lines.len() > self.keep {
            self.lines.pop_front();
        }
        self.in_file += 1;
        if self.in_file >= 2 * self.keep {
            self.rewrite();
        }
    }

    fn rewrite(&mut self) {
        let mut text = String::new();
        for l in &self.lines {
            text.push_str(l);
            text.push('\n');
        }
        if crate::fs::host::write_atomic(&self.path, text.as_bytes()).is_ok() {
            self.in_file = self.lines.len();
        }
        self.file = OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.path)
            .ok();
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a unix time.
pub fn utc_timestamp(unix_secs: u64) -> String {
    let (year, month, day) = crate::calendar::civil_from_days((unix_secs / 86_400) as i64);
    let rem = unix_secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_on_newline_and_at_the_limit() {
        let mut s = LineSplitter::new(5);
        assert_eq!(s.feed(b"ab"), Vec::<String>::new());
        assert_eq!(s.feed(b"c\r\nde\n"), vec!["abc", "de"]);
        assert_eq!(s.feed(b"123456789\nx"), vec!["12345", "6789"]);
        assert_eq!(s.flush().as_deref(), Some("x"));
        assert_eq!(s.flush(), None);
        // A line of exactly the limit stays whole.
        assert_eq!(s.feed(b"12345\n"), vec!["12345"]);
    }

    #[test]
    fn long_lines_are_not_cut_inside_a_character() {
        let mut s = LineSplitter::new(5);
        // "abcd" + "é" (2 bytes) crosses the 5-byte limit.
        assert_eq!(s.feed("abcdéf\n".as_bytes()), vec!["abcd", "éf"]);
        let mut s = LineSplitter::new(4);
        assert_eq!(
            s.feed(b"\xff\xfe\xfd\xfc\xfb\n"),
            vec!["\u{fffd}\u{fffd}\u{fffd}\u{fffd}", "\u{fffd}"]
        );
    }

    #[test]
    fn utc_timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn the_tail_keeps_the_last_lines_across_reopen() {
        let dir = crate::testutil::TempDir::new("tail");
        let path = dir.join("t.log");
        let mut t = LogTail::open(&path, 3);
        for i in 0..7 {
            t.push(0, &format!("line {i}"));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Rewritten at 6 lines (keeping 3), then one more appended.
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.ends_with("1970-01-01T00:00:00Z line 6\n"), "{text}");
        drop(t);
        let mut t = LogTail::open(&path, 3);
        t.push(0, "again");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[0].ends_with("line 4") && lines[3].ends_with("again"),
            "{text}"
        );
    }
}
