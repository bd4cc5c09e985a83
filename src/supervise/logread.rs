//! Reading a service log back (`cellmgr logs`, `cellctl logs`): the lines of
//! every generation oldest first, filtered by time and count, then following
//! what the supervisor appends — across restarts of the service or of the
//! supervisor (the same file is appended to) and across rotation (a new
//! current file replaces the one being read).

use super::escape::escape;
use super::logfile::{generation, MAX_FILES};
use anyhow::Context;
use argh::FromArgs;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a followed log is checked for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Show a cell's service log: what its service wrote and what its supervisor
/// and health checks did, one line each, oldest first, with UTC timestamps.
#[derive(FromArgs, argh::ArgsInfo, Debug, PartialEq)]
#[argh(subcommand, name = "logs")]
pub struct LogsArgs {
    /// keep printing new lines, across restarts and log rotation, until
    /// interrupted
    #[argh(switch, short = 'f')]
    pub follow: bool,
    /// print only the last N lines (default: all that are kept)
    #[argh(option, short = 'n')]
    pub lines: Option<usize>,
    /// print only lines since TIME: a UTC time such as 2026-05-01,
    /// 2026-05-01T12:00 or 2026-05-01T12:00:30, or a duration ago such as
    /// 90s, 10m or 2h
    #[argh(option)]
    pub since: Option<String>,
    /// the cell, by name (cellctl also takes an id)
    #[argh(positional)]
    pub cell: String,
}

impl LogsArgs {
    /// The backlog these flags select, at `now_ms` (unix milliseconds).
    pub fn query(&self, now_ms: u64) -> anyhow::Result<Query> {
        let since = match self.since.as_deref() {
            None => None,
            Some(t) => {
                let at = match crate::rcconf::parse_duration(t) {
                    Some(ago) => now_ms.saturating_sub(ago.as_millis() as u64),
                    None => crate::calendar::parse_utc(t).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--since '{t}': expected a UTC time such as 2026-05-01 or \
                             2026-05-01T12:00:30, or a duration ago such as 90s, 10m or 2h"
                        )
                    })?,
                };
                Some(crate::calendar::format_utc_ms(at))
            }
        };
        Ok(Query {
            last: self.lines,
            since,
        })
    }
}

/// Writes the backlog `query` selects to standard output and, with `follow`,
/// what is appended later, until interrupted or until the reader goes away
/// (a closed pipe ends it quietly).
pub fn print(path: &Path, query: &Query, follow: bool) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = (|| -> io::Result<()> {
        let mut emit = |line: String| writeln!(out, "{line}");
        let mut follower = read_back(path, query, &mut emit)?;
        out.flush()?;
        if !follow {
            return Ok(());
        }
        loop {
            std::thread::sleep(FOLLOW_EVERY);
            let mut emit = |line: String| writeln!(out, "{line}");
            follower.poll(&mut emit)?;
            out.flush()?;
        }
    })();
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(e).with_context(|| {
            format!(
                "reading {} (service logs are for root only)",
                path.display()
            )
        }),
        r => r.with_context(|| format!("showing {}", path.display())),
    }
}

/// Whether a cell has a service log (current or rotated).
pub fn exists(path: &Path) -> bool {
    path.exists() || generation(path, 1).exists()
}

/// Which lines of the backlog to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Only the last this many lines.
    pub last: Option<usize>,
    /// Only lines stamped at or after this time (a `format_utc_ms` string,
    /// which compares as text in time order).
    pub since: Option<String>,
}

impl Query {
    fn wants(&self, line: &str) -> bool {
        self.since
            .as_deref()
            .map_or(true, |since| line.split(' ').next().unwrap_or("") >= since)
    }
}

/// An open log file and how far it was read.
struct Reading {
    file: File,
    ino: (u64, u64),
    /// An unterminated last line, completed by a later read.
    partial: Vec<u8>,
}

impl Reading {
    /// Opens `path` as any file a cell's side wrote (a supervising init
    /// writes with the cell root's id): no link followed, regular only.
    fn open(path: &Path) -> io::Result<Option<Reading>> {
        let Some(file) = crate::fs::host::open_untrusted(path)? else {
            return Ok(None);
        };
        let m = file.metadata()?;
        Ok(Some(Reading {
            file,
            ino: (m.dev(), m.ino()),
            partial: Vec::new(),
        }))
    }

    /// Reads to the end of the file, passing each complete line on.
    fn read_lines(&mut self, emit: &mut dyn FnMut(String) -> io::Result<()>) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match self.file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.partial.extend_from_slice(&buf[..n]);
            let complete = match self.partial.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => continue,
            };
            let rest = self.partial.split_off(complete);
            let done = std::mem::replace(&mut self.partial, rest);
            for line in done[..complete - 1].split(|&b| b == b'\n') {
                // Written escaped by the supervisor; escaping is idempotent and
                // covers files from older versions.
                emit(escape(line))?;
            }
        }
    }
}

/// Follows a log after its backlog was read.
pub struct Follower {
    path: PathBuf,
    current: Option<Reading>,
}

impl Follower {
    /// Passes on the lines appended since the last call. When the log was
    /// rotated, the rest of the file being read comes first, then the
    /// generations rotated after it, then the new current file.
    pub fn poll(&mut self, emit: &mut dyn FnMut(String) -> io::Result<()>) -> io::Result<()> {
        if let Some(r) = self.current.as_mut() {
            r.read_lines(emit)?;
        }
        let on_disk = match std::fs::metadata(&self.path) {
            Ok(m) => Some((m.dev(), m.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let ours = self.current.as_ref().map(|r| r.ino);
        if on_disk.is_none() || on_disk == ours {
            return Ok(());
        }
        if let Some(ours) = ours {
            // Where the file being read went: the generations newer than
            // it were written after it. Not found (removed, or rotated out of
            // the kept files): those lines are gone.
            let mut newer = Vec::new();
            for n in 1..=MAX_FILES {
                match Reading::open(&generation(&self.path, n))? {
                    Some(r) if r.ino == ours => {
                        for mut r in newer.into_iter().rev() {
                            read_whole(&mut r, emit)?;
                        }
                        break;
                    }
                    Some(r) => newer.push(r),
                    None => break,
                }
            }
        }
        self.current = Reading::open(&self.path)?;
        if let Some(r) = self.current.as_mut() {
            r.read_lines(emit)?;
        }
        Ok(())
    }
}

/// Reads a rotated file to its end, an unterminated last line included (it
/// ends a rotated file only when its supervisor was killed mid-write).
fn read_whole(r: &mut Reading, emit: &mut dyn FnMut(String) -> io::Result<()>) -> io::Result<()> {
    r.read_lines(emit)?;
    if !r.partial.is_empty() {
        emit(escape(&std::mem::take(&mut r.partial)))?;
    }
    Ok(())
}

/// Passes on the backlog `query` selects, oldest first; returns the
/// [`Follower`] that continues where it ended. A log that does not exist
/// yet is empty (and followed once it appears).
pub fn read_back(
    path: &Path,
    query: &Query,
    emit: &mut dyn FnMut(String) -> io::Result<()>,
) -> io::Result<Follower> {
    // Newest first, so a rotation while opening shows up as a file seen twice
    // (skipped), not as a file missed.
    let mut files: Vec<Reading> = Vec::new();
    for n in 0..=MAX_FILES {
        let Some(r) = Reading::open(&generation(path, n))? else {
            if n > 0 {
                break;
            }
            continue;
        };
        if !files.iter().any(|f| f.ino == r.ino) {
            files.push(r);
        }
    }
    let current = if files.is_empty() {
        None
    } else {
        Some(files.remove(0))
    };
    let mut current = current;
    let mut last: VecDeque<String> = VecDeque::new();
    {
        let mut select = |line: String| -> io::Result<()> {
            if !query.wants(&line) {
                return Ok(());
            }
            match query.last {
                Some(n) => {
                    if n > 0 {
                        if last.len() == n {
                            last.pop_front();
                        }
                        last.push_back(line);
                    }
                    Ok(())
                }
                None => emit(line),
            }
        };
        for mut older in files.into_iter().rev() {
            read_whole(&mut older, &mut select)?;
        }
        if let Some(r) = current.as_mut() {
            r.read_lines(&mut select)?;
        }
    }
    for line in last {
        emit(line)?;
    }
    Ok(Follower {
        path: path.to_path_buf(),
        current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::logfile::{RotatingFile, Rotation};
    use crate::testutil::TempDir;

    fn collect(path: &Path, query: &Query) -> (Vec<String>, Follower) {
        let mut got = Vec::new();
        let f = read_back(path, query, &mut |l| {
            got.push(l);
            Ok(())
        })
        .unwrap();
        (got, f)
    }

    fn poll(f: &mut Follower) -> Vec<String> {
        let mut got = Vec::new();
        f.poll(&mut |l| {
            got.push(l);
            Ok(())
        })
        .unwrap();
        got
    }

    fn line(n: u32) -> String {
        format!("2026-01-01T00:00:{n:02}.000Z stdout: line {n}\n")
    }

    #[test]
    fn a_log_that_is_a_link_is_not_followed() {
        let dir = TempDir::new("logread-link");
        let secret = dir.join("secret");
        std::fs::write(&secret, line(1)).unwrap();
        let path = dir.join("svc.log");
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let mut got = Vec::new();
        let read = read_back(&path, &Query::default(), &mut |l| {
            got.push(l);
            Ok(())
        });
        assert!(read.is_err() && got.is_empty(), "{got:?}");
    }

    #[test]
    fn the_backlog_spans_generations_and_follows_across_rotation() {
        let dir = TempDir::new("logread");
        let path = dir.join("svc.log");
        let (got, mut f) = collect(&path, &Query::default());
        assert!(got.is_empty(), "no log yet");
        let mut log = RotatingFile::new(
            &path,
            Rotation {
                max_size: 2 * line(0).len() as u64,
                files: 3,
            },
        );
        for n in 0..5 {
            log.append(line(n).as_bytes()).unwrap();
        }
        // The log appeared: followed from its start.
        assert_eq!(poll(&mut f).len(), 1, "only line 4 is in the current file");
        let (got, mut f) = collect(&path, &Query::default());
        assert_eq!(
            got,
            (0..5)
                .map(|n| line(n).trim_end().to_string())
                .collect::<Vec<_>>()
        );
        // Appended, then rotated twice while nobody read: the rest of the old
        // file first, then the new current file.
        for n in 5..9 {
            log.append(line(n).as_bytes()).unwrap();
        }
        assert_eq!(
            poll(&mut f),
            (5..9)
                .map(|n| line(n).trim_end().to_string())
                .collect::<Vec<_>>()
        );
        assert!(poll(&mut f).is_empty());
        // Removed and started anew (the cell was removed and made again).
        drop(log);
        super::super::logfile::remove_all(&path);
        std::fs::write(&path, line(30)).unwrap();
        assert_eq!(poll(&mut f), [line(30).trim_end()]);
    }

    #[test]
    fn last_and_since_select_the_backlog_and_partial_lines_wait() {
        let dir = TempDir::new("logread-q");
        let path = dir.join("svc.log");
        let text: String = (0..10).map(line).collect();
        std::fs::write(
            &path,
            format!("{text}2026-01-01T00:00:10.000Z stdout: unfin"),
        )
        .unwrap();
        let q = Query {
            last: Some(3),
            since: None,
        };
        let (got, mut f) = collect(&path, &q);
        assert_eq!(got, [7, 8, 9].map(|n| line(n).trim_end().to_string()));
        let q = Query {
            last: None,
            since: Some("2026-01-01T00:00:08.000Z".into()),
        };
        assert_eq!(collect(&path, &q).0.len(), 2);
        let q = Query {
            last: Some(5),
            since: Some("2026-01-01T00:00:08".into()),
        };
        assert_eq!(collect(&path, &q).0.len(), 2);
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"ished \x1b[2J\n").unwrap();
        assert_eq!(
            poll(&mut f),
            ["2026-01-01T00:00:10.000Z stdout: unfinished \\x1b[2J"]
        );
    }
}
