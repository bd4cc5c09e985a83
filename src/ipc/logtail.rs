//! Reading a growing log file for the `LogTail` request: the last lines first,
//! then whatever was appended, line by line.

use super::proto::LogChunk;
use anyhow::{Context, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How far back the first read looks for the last lines.
const FIRST_READ: u64 = 256 * 1024;
/// How much one follow-up read returns at most.
const FOLLOW_READ: u64 = 1024 * 1024;

/// The last `lines` lines of `path` (offset `None`), or the complete lines
/// appended since `offset`. A missing file is an empty log; a file shorter than
/// `offset` was rotated or truncated and is read from its start.
pub fn tail_file(path: &Path, lines: u32, offset: Option<u64>) -> Result<LogChunk> {
    // No link followed, regular only: a supervising init writes the log
    // with the cell root's id.
    let mut file = match crate::fs::host::open_untrusted(path) {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Ok(LogChunk {
                lines: Vec::new(),
                offset: 0,
            })
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let len = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let (start, max) = match offset {
        Some(o) if o <= len => (o, FOLLOW_READ),
        Some(_) => (0, FOLLOW_READ),
        None => (len.saturating_sub(FIRST_READ), FIRST_READ),
    };
    let mut buf = Vec::new();
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.take(max.min(len - start)).read_to_end(&mut buf))
        .with_context(|| format!("reading {}", path.display()))?;
    // Only complete lines; a partial last line is picked up by the next read.
    let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut text: Vec<&[u8]> = buf[..complete].split(|&b| b == b'\n').collect();
    text.pop(); // the empty piece after the final newline
    if offset.is_none() && start > 0 && !text.is_empty() {
        text.remove(0); // probably cut in the middle
    }
    let skip = text.len().saturating_sub(lines as usize);
    // The supervisor escapes what it logs; escaping again changes nothing and
    // covers a file written by an older version.
    Ok(LogChunk {
        lines: text[skip..]
            .iter()
            .map(|l| crate::supervise::escape::escape(l))
            .collect(),
        offset: start + complete as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_log_that_is_a_link_is_not_followed() {
        let dir = crate::testutil::TempDir::new("logtail-link");
        let secret = dir.join("secret");
        std::fs::write(&secret, "not for the log\n").unwrap();
        let path = dir.join("svc.log");
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let e = tail_file(&path, 5, None).unwrap_err();
        assert!(format!("{e:#}").contains("svc.log"), "{e:#}");
    }

    #[test]
    fn tails_then_follows_complete_lines() {
        let dir = crate::testutil::TempDir::new("logtail");
        let path = dir.join("svc.log");
        assert_eq!(tail_file(&path, 5, None).unwrap().lines.len(), 0);
        let mut f = std::fs::File::create(&path).unwrap();
        for i in 0..10 {
            writeln!(f, "line {i}").unwrap();
        }
        write!(f, "partial").unwrap();
        let first = tail_file(&path, 3, None).unwrap();
        assert_eq!(first.lines, ["line 7", "line 8", "line 9"]);
        let none = tail_file(&path, 3, Some(first.offset)).unwrap();
        assert!(none.lines.is_empty());
        assert_eq!(none.offset, first.offset);
        writeln!(f, " done").unwrap();
        writeln!(f, "line 11").unwrap();
        let next = tail_file(&path, 100, Some(first.offset)).unwrap();
        assert_eq!(next.lines, ["partial done", "line 11"]);
        // Rotation: the file is now shorter than the offset.
        std::fs::write(&path, "fresh\n").unwrap();
        let rotated = tail_file(&path, 100, Some(next.offset)).unwrap();
        assert_eq!(rotated.lines, ["fresh"]);
    }
}
