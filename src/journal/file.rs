//! The journal file: appends under an exclusive lock, rotation by size.
//!
//! Writers are many processes at once (cellmgr commands, supervisors, the IPC
//! server). Each append opens the file `O_APPEND`, takes `flock(LOCK_EX)` on
//! it, and checks that the path still names the file it holds (a rotation may
//! have renamed it meanwhile; then it opens the new one). The line is written
//! with one `write`, and when the file has grown past the limit the writer,
//! still holding the lock, renames `log.N-1` to `log.N` … `log` to `log.1`.
//! So no line is split, lost or written to a generation already rotated away.

use super::Record;
use crate::config::Config;
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    path: PathBuf,
    /// Rotate once the current file reaches this many bytes.
    max_bytes: u64,
    /// Rotated generations kept (`log.1` … `log.keep`).
    keep: u32,
}

/// `log.N`: the N-th newest rotated generation.
pub fn generation(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl Journal {
    pub fn new(cfg: &Config) -> Journal {
        Journal {
            path: cfg.audit_log.clone(),
            max_bytes: cfg.audit_log_size,
            keep: cfg.audit_log_keep,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line.
    pub fn append(&self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(record).context("encoding the record")?;
        line.push(b'\n');
        let file = match self.open_locked() {
            Ok(f) => f,
            // Not root: the journal is root's, and what an unprivileged user
            // may do changes nothing worth recording.
            Err(e) if denied(&e) && !rustix::process::geteuid().is_root() => return Ok(()),
            Err(e) => return Err(e),
        };
        (&file)
            .write_all(&line)
            .with_context(|| format!("appending to {}", self.path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if self.max_bytes > 0 && size >= self.max_bytes {
            self.rotate()
                .with_context(|| format!("rotating {}", self.path.display()))?;
        }
        Ok(())
    }

    /// Opens the current file with the lock held, creating it (and its
    /// directory) private to root.
    fn open_locked(&self) -> Result<File> {
        if let Some(dir) = self.path.parent() {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
        }
        for _ in 0..8 {
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&self.path)
                .with_context(|| format!("opening {}", self.path.display()))?;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
                .with_context(|| format!("locking {}", self.path.display()))?;
            let held = file.metadata()?;
            match std::fs::symlink_metadata(&self.path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    check_private(&file, &held, &self.path)?;
                    return Ok(file);
                }
                // Rotated between our open and our lock: open the new file.
                _ => continue,
            }
        }
        bail!(
            "{} keeps being replaced while it is opened",
            self.path.display()
        )
    }

    /// `log.N-1` → `log.N`, …, `log` → `log.1`; the oldest beyond `keep` goes.
    fn rotate(&self) -> Result<()> {
        if self.keep == 0 {
            // Nothing kept: start the file afresh.
            return std::fs::remove_file(&self.path).map_err(Into::into);
        }
        for n in (1..self.keep).rev() {
            let from = generation(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, generation(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, generation(&self.path, 1))?;
        Ok(())
    }
}

fn denied(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.raw_os_error(),
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
            )
        })
    })
}

/// The journal is root's alone: a file of another owner is refused, a looser
/// mode is tightened.
fn check_private(file: &File, meta: &std::fs::Metadata, path: &Path) -> Result<()> {
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "{} belongs to uid {}, not to uid {me}: refusing to append to it",
            path.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Event;

    fn event(n: usize) -> Record {
        Record::Event(Event {
            time: format!("2026-01-01T00:00:00.{n:03}Z"),
            event: "started".into(),
            cell: format!("c{n}"),
            detail: None,
            pid: 1,
        })
    }

    #[test]
    fn appends_rotate_and_keep_every_line_once() {
        let dir = crate::testutil::TempDir::new("journal");
        let j = Journal {
            path: dir.path().join("sub/audit.log"),
            max_bytes: 400,
            keep: 3,
        };
        for n in 0..20 {
            j.append(&event(n)).unwrap();
        }
        let meta = std::fs::metadata(generation(&j.path, 1)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("sub")).unwrap().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert!(!generation(&j.path, 4).exists(), "only 3 generations kept");
        // Oldest first, the newest lines all there, no line split or repeated.
        let mut lines = Vec::new();
        for p in [3, 2, 1]
            .map(|n| generation(&j.path, n))
            .into_iter()
            .chain([j.path.clone()])
        {
            if let Ok(text) = std::fs::read_to_string(&p) {
                assert!(text.len() as u64 <= 400 + 120, "{}", p.display());
                lines.extend(text.lines().map(str::to_string));
            }
        }
        let cells: Vec<String> = lines
            .iter()
            .map(|l| serde_json::from_str::<Record>(l).unwrap())
            .map(|r| r.cell().unwrap().to_string())
            .collect();
        let want: Vec<String> = (20 - cells.len()..20).map(|n| format!("c{n}")).collect();
        assert_eq!(cells, want);
        assert!(cells.len() >= 10, "{cells:?}");
    }

    #[test]
    fn a_looser_mode_is_tightened() {
        let dir = crate::testutil::TempDir::new("journal-mode");
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let j = Journal {
            path: path.clone(),
            max_bytes: 0,
            keep: 0,
        };
        j.append(&event(1)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }
}
