//! Reading the journal back (`cellmgr events`): every generation oldest first,
//! filtered, then with `follow` what is appended later, across rotation (the
//! rest of the file being read, the generations rotated after it, then the new
//! current file).

use super::file::generation;
use super::Record;
use anyhow::Context;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a followed journal is checked for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Which records to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only records at or after this time (a `format_utc_ms` string).
    pub since: Option<String>,
    pub cell: Option<String>,
    /// Also the audit records (by default only the lifecycle events).
    pub audit: bool,
}

impl Filter {
    pub fn wants(&self, r: &Record) -> bool {
        (self.audit || matches!(r, Record::Event(_)))
            && self.since.as_deref().map_or(true, |s| r.time() >= s)
            && self.cell.as_deref().map_or(true, |c| r.cell() == Some(c))
    }
}

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    /// The journal's own JSON Lines.
    Json,
}

/// One record as a line of text: time, cell, what, details.
pub fn text(r: &Record) -> String {
    match r {
        Record::Event(e) => {
            let detail = e.detail.as_deref().unwrap_or("");
            format!("{}  {:<12} {:<9} {detail}", e.time, e.cell, e.event)
                .trim_end()
                .to_string()
        }
        Record::Audit(a) => {
            let subject = a
                .cell
                .as_deref()
                .or(a.volume.as_deref())
                .unwrap_or("-")
                .to_string();
            let mut who = format!("uid {}", a.actor.uid);
            if let Some(u) = &a.actor.sudo_user {
                who.push_str(&format!(" (sudo {u})"));
            }
            if let (Some(u), Some(p)) = (a.actor.peer_uid, a.actor.peer_pid) {
                who.push_str(&format!(" for uid {u} pid {p}"));
            }
            if let Some(v) = &a.actor.via {
                who.push_str(&format!(" via {v}"));
            }
            let how = match &a.error {
                Some(e) => format!("failed: {e}"),
                None => a.result.clone(),
            };
            format!(
                "{}  {subject:<12} audit     {}: {how} (by {who}: {})",
                a.time, a.action, a.command
            )
        }
    }
}

/// What `line` prints as, if `filter` wants it. A line that is not a record
/// (a torn copy, an edit) is skipped, never fatal.
fn render(line: &str, filter: &Filter, format: Format) -> Option<String> {
    let r = serde_json::from_str::<Record>(line).ok()?;
    filter.wants(&r).then(|| match format {
        Format::Json => line.to_string(),
        Format::Text => text(&r),
    })
}

/// Writes the records `filter` selects and, with `follow`, those appended
/// later, until interrupted or until the reader goes away (a closed pipe ends
/// it quietly).
/// Prints the journal at `path`; `refresh` runs before it is read and, when
/// following, before each look for new lines (it takes pending events in).
pub fn print(
    path: &Path,
    filter: &Filter,
    format: Format,
    follow: bool,
    refresh: &mut dyn FnMut(),
) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = (|| -> io::Result<()> {
        let mut lines = Vec::new();
        let mut write = |lines: &mut Vec<String>| -> io::Result<()> {
            for l in lines.drain(..) {
                if let Some(shown) = render(&l, filter, format) {
                    writeln!(out, "{shown}")?;
                }
            }
            out.flush()
        };
        refresh();
        let mut follower = Follower::read_back(path, &mut lines)?;
        write(&mut lines)?;
        if !follow {
            return Ok(());
        }
        loop {
            std::thread::sleep(FOLLOW_EVERY);
            refresh();
            follower.poll(&mut lines)?;
            write(&mut lines)?;
        }
    })();
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            Err(e).with_context(|| format!("reading {} (the audit log is root's)", path.display()))
        }
        r => r.with_context(|| format!("reading {}", path.display())),
    }
}

/// The journal being followed: the file being read, the last file read to
/// its end (so that a rotation is caught up from there), and the part of a
/// line not yet complete.
struct Follower {
    path: PathBuf,
    file: Option<File>,
    last: Option<(u64, u64)>,
    partial: Vec<u8>,
}

/// Device and inode: what names a file across renames.
fn id_of(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

impl Follower {
    /// Reads every generation, oldest first, and keeps the current file open.
    fn read_back(path: &Path, out: &mut Vec<String>) -> io::Result<Follower> {
        let mut f = Follower {
            path: path.to_path_buf(),
            file: None,
            last: None,
            partial: Vec::new(),
        };
        f.catch_up(out)?;
        Ok(f)
    }

    /// Reads what was appended; on rotation, finishes the old file and catches
    /// up with what came after it.
    fn poll(&mut self, out: &mut Vec<String>) -> io::Result<()> {
        if let Some(mut file) = self.file.take() {
            self.drain(&mut file, out)?;
            let held = id_of(&file.metadata()?);
            let current = std::fs::metadata(&self.path).ok().map(|m| id_of(&m));
            if current == Some(held) {
                self.file = Some(file);
                return Ok(());
            }
            self.end_of_file(out)?;
            self.last = Some(held);
        }
        self.catch_up(out)
    }

    /// Reads the generations rotated after the last file read (all of them
    /// when none was), oldest first, then opens the current file and reads it.
    fn catch_up(&mut self, out: &mut Vec<String>) -> io::Result<()> {
        let mut newer = Vec::new();
        for n in 1.. {
            let g = generation(&self.path, n);
            match std::fs::metadata(&g) {
                Ok(m) if Some(id_of(&m)) != self.last => newer.push(g),
                _ => break,
            }
        }
        for g in newer.iter().rev() {
            if let Some(mut file) = open(g)? {
                self.drain(&mut file, out)?;
                self.end_of_file(out)?;
                self.last = Some(id_of(&file.metadata()?));
            }
        }
        if let Some(mut file) = open(&self.path)? {
            self.drain(&mut file, out)?;
            self.file = Some(file);
        }
        Ok(())
    }

    /// Emits the complete lines `file` holds from its position on.
    fn drain(&mut self, file: &mut File, out: &mut Vec<String>) -> io::Result<()> {
        let mut buf = [0u8; 65536];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.partial.extend_from_slice(&buf[..n]);
            while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=end).collect();
                out.push(String::from_utf8_lossy(&line[..end]).into_owned());
            }
        }
    }

    /// A file ended: a last line without its newline is still a line.
    fn end_of_file(&mut self, out: &mut Vec<String>) -> io::Result<()> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            out.push(String::from_utf8_lossy(&line).into_owned());
        }
        Ok(())
    }
}

fn open(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
