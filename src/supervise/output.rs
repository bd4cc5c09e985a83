//! Service output: splitting a byte stream into escaped log lines, and the
//! service log file (`<cell>.log`) that `logs`, the IPC log tail and the UI read.

use super::escape::escape;
use super::logfile::{RotatingFile, Rotation};
use crate::calendar::format_utc_ms;
use std::path::Path;

/// Splits a byte stream into lines of at most `max` bytes of escaped text
/// ([`escape`]). A longer line is cut into pieces, at a character boundary.
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
        let mut start = 0;
        loop {
            let rest = &self.buf[start..];
            if let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                if nl <= self.max {
                    self.push_piece(&mut lines, start, start + nl);
                    start += nl + 1;
                    continue;
                }
            }
            if rest.len() > self.max {
                let cut = utf8_cut(rest, self.max);
                self.push_piece(&mut lines, start, start + cut);
                start += cut;
                continue;
            }
            self.buf.drain(..start);
            return lines;
        }
    }

    /// The unterminated rest, if any (at the end of a run).
    pub fn flush(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.buf.is_empty() {
            self.push_piece(&mut lines, 0, self.buf.len());
            self.buf.clear();
        }
        lines
    }

    /// Escapes `buf[from..to]` (without a trailing CR) and adds it as one or
    /// more lines of at most `max` bytes.
    fn push_piece(&self, lines: &mut Vec<String>, from: usize, to: usize) {
        let raw = &self.buf[from..to];
        let text = escape(raw.strip_suffix(b"\r").unwrap_or(raw));
        lines.extend(chunks(&text, self.max).map(str::to_string));
    }
}

/// `text` in pieces of at most `max` bytes, cut at character boundaries; an
/// empty text is one empty piece.
fn chunks(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let t = rest?;
        if t.len() <= max {
            rest = None;
            return Some(t);
        }
        let mut cut = max.max(1);
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = t.split_at(cut);
        rest = Some(tail);
        Some(head)
    })
}

/// The largest cut point ≤ `max` that does not split a UTF-8 sequence (falls
/// back to `max` for bytes that are not UTF-8 anyway).
fn utf8_cut(buf: &[u8], max: usize) -> usize {
    (max.saturating_sub(3)..=max)
        .rev()
        .find(|&i| i > 0 && (i >= buf.len() || (buf[i] & 0xC0) != 0x80))
        .unwrap_or(max)
}

/// A cell's service log: one line per record, `<UTC time> <source>: <text>`,
/// where the source is `stdout`, `stderr`, `health` or `supervise`. Rotated
/// by size; the text is already escaped.
pub struct ServiceLog {
    file: RotatingFile,
    /// Set after a write failed, so the failure is not reported per line.
    failing: bool,
}

impl ServiceLog {
    pub fn new(path: &Path, rotation: Rotation) -> ServiceLog {
        ServiceLog {
            file: RotatingFile::new(path, rotation),
            failing: false,
        }
    }

    /// Appends one line. A log that cannot be written must not stop the
    /// service: the error is returned once, for the caller to report elsewhere.
    pub fn push(&mut self, unix_ms: u64, source: &str, text: &str) -> Option<String> {
        let line = format!("{} {source}: {text}\n", format_utc_ms(unix_ms));
        match self.file.append(line.as_bytes()) {
            Ok(()) => {
                self.failing = false;
                None
            }
            Err(e) if !self.failing => {
                self.failing = true;
                Some(format!("cannot write {}: {e}", self.file.path().display()))
            }
            Err(_) => None,
        }
    }
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
        assert_eq!(s.flush(), vec!["x"]);
        assert!(s.flush().is_empty());
        // A line of exactly the limit stays whole.
        assert_eq!(s.feed(b"12345\n"), vec!["12345"]);
        assert_eq!(s.feed(b"\n"), vec![""]);
    }

    #[test]
    fn long_lines_are_not_cut_inside_a_character() {
        let mut s = LineSplitter::new(5);
        // "abcd" + "é" (2 bytes) crosses the 5-byte limit.
        assert_eq!(s.feed("abcdéf\n".as_bytes()), vec!["abcd", "éf"]);
    }

    #[test]
    fn control_characters_are_escaped_and_the_pieces_still_fit() {
        let mut s = LineSplitter::new(8);
        // OSC 52 with its BEL terminator; escaping makes it longer than 8.
        assert_eq!(
            s.feed(b"\x1b]52;c;QQ==\x07\n"),
            vec!["\\x1b]52;", "c;Q", "Q==\\x07"]
        );
        let mut s = LineSplitter::new(4);
        assert_eq!(
            s.feed(b"\xff\xfe\xfd\xfc\xfb\n"),
            vec!["\\xff", "\\xfe", "\\xfd", "\\xfc", "\\xfb"]
        );
        // A carriage return inside a line cannot hide what came before it.
        let mut s = LineSplitter::new(100);
        assert_eq!(s.feed(b"real\rfake\r\n"), vec!["real\\x0dfake"]);
    }

    #[test]
    fn the_service_log_appends_timestamped_lines_and_rotates() {
        let dir = crate::testutil::TempDir::new("servicelog");
        let path = dir.join("t.log");
        let rotation = Rotation {
            max_size: 64,
            files: 2,
        };
        let mut log = ServiceLog::new(&path, rotation);
        assert_eq!(log.push(0, "stdout", "one"), None);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "1970-01-01T00:00:00.000Z stdout: one\n"
        );
        log.push(1000, "stderr", "two");
        let rotated = std::fs::read_to_string(super::super::logfile::generation(&path, 1)).unwrap();
        assert_eq!(rotated, "1970-01-01T00:00:00.000Z stdout: one\n");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "1970-01-01T00:00:01.000Z stderr: two\n"
        );
    }
}
