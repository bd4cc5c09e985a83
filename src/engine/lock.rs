//! The one lock that serialises mutating commands: `flock(2)` on
//! `<data_dir>/.lock`. A second command waits a bounded time, then fails naming
//! the holder (pid and command line, written into the lock file). The kernel
//! drops the lock when its holder dies, so a crash never leaves it stuck.
//!
//! Taking the lock needs no free blocks, so the commands that free space
//! (`stop`, `remove`) work on a full file system: the holder line is written
//! in place over a fixed-size record (no new block once the file has one),
//! and only if it can be.

use crate::config::Config;
use anyhow::{bail, Context, Result};
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a command waits for another to finish by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Held while it lives; dropping it releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
}

impl LockGuard {
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// Bytes of the holder record: the line, padded with spaces.
const RECORD: usize = 256;

/// Writes the holder record over the start of the file (best effort: on a
/// full file system a new lock file may not get its first block).
fn write_record(file: &File, line: &str) {
    use std::os::unix::fs::FileExt;
    let mut record = vec![b' '; RECORD];
    let n = line.len().min(RECORD - 1);
    record[..n].copy_from_slice(&line.as_bytes()[..n]);
    record[RECORD - 1] = b'\n';
    let _ = file.write_all_at(&record, 0);
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Blank the holder line so a reader never sees a stale owner.
        write_record(&self.file, "");
        let _ = flock(&self.file, FlockOperation::Unlock);
    }
}

/// The lock held by a command that sets it aside while it waits on something a
/// cell controls: a health check can take its whole time budget (a cell can
/// make it block), and other commands must not wait for it. The command takes
/// the lock back afterwards, waiting as long as [`RETAKE_WAIT`].
pub struct Held {
    guard: std::cell::RefCell<Option<LockGuard>>,
    cfg: Config,
    command: String,
}

/// How long a command waits to take its lock back after setting it aside.
pub const RETAKE_WAIT: Duration = Duration::from_secs(60);

impl Held {
    pub fn acquire(cfg: &Config, command: &str) -> Result<Held> {
        Ok(Held {
            guard: std::cell::RefCell::new(Some(acquire(cfg, command, DEFAULT_WAIT)?)),
            cfg: cfg.clone(),
            command: command.to_string(),
        })
    }

    /// Runs `f` without the lock, then takes it back.
    pub fn without<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        drop(self.guard.borrow_mut().take());
        let out = f();
        let guard = acquire(&self.cfg, &self.command, RETAKE_WAIT)
            .context("taking the lock back after a health check")?;
        *self.guard.borrow_mut() = Some(guard);
        Ok(out)
    }
}

/// The lock file's path.
pub fn lock_path(cfg: &Config) -> PathBuf {
    cfg.data_dir.join(".lock")
}

/// Takes the lock for `command` (a short description written for others to see),
/// waiting up to `wait`. `CELLMGR_LOCK_WAIT` (seconds) overrides the wait.
pub fn acquire(cfg: &Config, command: &str, wait: Duration) -> Result<LockGuard> {
    let wait = std::env::var("CELLMGR_LOCK_WAIT")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(wait);
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let path = lock_path(cfg);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening lock {}", path.display()))?;
    let start = Instant::now();
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {
                if start.elapsed() >= wait {
                    let mut holder = String::new();
                    let _ = file.seek(SeekFrom::Start(0));
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    let holder = if holder.is_empty() {
                        "another cellmgr command".to_string()
                    } else {
                        holder.to_string()
                    };
                    bail!(
                        "{} is held by {holder}; waited {}s: try again when it has finished",
                        path.display(),
                        wait.as_secs_f64()
                    );
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(e) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
    // The holder line is rewritten in place: replacing the file would give a
    // later command a different inode to lock.
    let command = command.replace('\n', " ");
    write_record(&file, &format!("pid {} ({command})", std::process::id()));
    Ok(LockGuard { file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_then_names_the_first() {
        let tmp = crate::testutil::TempDir::new("lock");
        // Not there yet: acquire creates the data directory.
        let cfg = Config {
            data_dir: tmp.join("data"),
            ..Config::default()
        };
        let g = acquire(&cfg, "cell start web", Duration::from_millis(10)).unwrap();
        let text = std::fs::read_to_string(g.path()).unwrap();
        assert_eq!(
            text.trim_end(),
            format!("pid {} (cell start web)", std::process::id())
        );
        assert_eq!(
            text.len(),
            RECORD,
            "a fixed-size record, rewritten in place"
        );
        // flock locks belong to the open file description: a second open conflicts.
        let t = Instant::now();
        let e = acquire(&cfg, "other", Duration::from_millis(100)).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert!(
            e.to_string().contains(&format!(
                "is held by pid {} (cell start web)",
                std::process::id()
            )),
            "{e}"
        );
        drop(g);
        let g2 = acquire(&cfg, "other", Duration::from_millis(10)).unwrap();
        drop(g2);
    }
}
