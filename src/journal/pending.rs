//! Events of a supervisor in a cell's init: the journal is the host's, out
//! of the init's reach, so the init appends them to a file of its
//! supervision directory and the host takes them into the journal.
//!
//! The init appends each record under `flock(LOCK_EX)`; the host renames the
//! file aside, takes the same lock (waiting out an append in progress),
//! reads, and unlinks it before it lets go. An append whose file was taken
//! meanwhile (unlinked once the writer has the lock) goes to a new file.
//!
//! The host reads what the init wrote as it reads anything a cell's side
//! wrote: no link followed, a regular file, capped; only lifecycle events
//! are taken, named after the cell whose directory holds them.

use super::{Event, Record};
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The most a pending file holds: further events are dropped until the
/// host takes them.
const MAX_PENDING: u64 = 256 * 1024;
/// The longest detail taken from one.
const MAX_DETAIL: usize = 1024;
/// What a supervisor records.
const EVENTS: [&str; 3] = ["exited", "restarted", "health"];

fn lock(file: &std::fs::File) -> std::io::Result<()> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Appends `record` to the pending file `path` (the init's side).
pub fn append(path: &Path, record: &Record) -> Result<()> {
    let mut line = serde_json::to_vec(record).context("encoding the record")?;
    line.push(b'\n');
    for _ in 0..3 {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        lock(&file)?;
        let meta = file.metadata()?;
        if meta.nlink() == 0 {
            continue;
        }
        if meta.len() + line.len() as u64 > MAX_PENDING {
            return Ok(());
        }
        file.write_all(&line)
            .with_context(|| format!("appending to {}", path.display()))?;
        return Ok(());
    }
    Ok(())
}

/// Takes the events pending in `path` (the host's side), each as an event
/// of `cell`, through `append` (the journal's).
pub fn take(path: &Path, cell: &str, append: &mut dyn FnMut(&Record) -> Result<()>) -> Result<()> {
    let taken = path.with_extension("taken");
    // One left by a taker that died half-way is taken first.
    match std::fs::rename(path, &taken) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("taking {}", path.display())),
    }
    let file = match crate::fs::host::open_untrusted(&taken) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(()),
        Err(e) => {
            // Not a file the init wrote: removed (unlink follows no link).
            let _ = std::fs::remove_file(&taken);
            return Err(e).with_context(|| format!("opening {}", taken.display()));
        }
    };
    lock(&file)?;
    let mut bytes = Vec::new();
    (&file)
        .take(MAX_PENDING)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", taken.display()))?;
    for line in bytes.split(|&b| b == b'\n') {
        let Ok(Record::Event(e)) = serde_json::from_slice::<Record>(line) else {
            continue;
        };
        if !EVENTS.contains(&e.event.as_str()) || e.time.len() > 32 {
            continue;
        }
        let detail = e
            .detail
            .map(|d| d.chars().take(MAX_DETAIL).collect::<String>());
        append(&Record::Event(Event {
            time: e.time,
            event: e.event,
            cell: cell.to_string(),
            detail,
            pid: e.pid,
        }))?;
    }
    std::fs::remove_file(&taken).with_context(|| format!("removing {}", taken.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn event(cell: &str, what: &str, detail: &str) -> Record {
        Record::Event(Event {
            time: "2026-12-07T21:00:00.000Z".into(),
            event: what.into(),
            cell: cell.into(),
            detail: Some(detail.into()),
            pid: 7,
        })
    }

    #[test]
    fn events_are_taken_once_as_the_directory_cell_s_and_nothing_else_is() {
        let dir = TempDir::new("journal-pending");
        let path = dir.join("events");
        append(&path, &event("web", "exited", "exit 1")).unwrap();
        append(&path, &event("other", "restarted", "restart 1")).unwrap();
        // What a cell's side could write besides: an audit record, an event
        // a supervisor never records, garbage.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"type\":\"audit\",\"time\":\"t\"}\nnot json\n")
            .unwrap();
        append(&path, &event("web", "started", "cid 9")).unwrap();
        let mut got = Vec::new();
        take(&path, "web", &mut |r| {
            got.push(r.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got,
            vec![
                event("web", "exited", "exit 1"),
                event("web", "restarted", "restart 1")
            ]
        );
        assert!(!path.exists() && !path.with_extension("taken").exists());
        // Nothing pending: nothing taken; a new append makes a new file.
        take(&path, "web", &mut |_| panic!("nothing is pending")).unwrap();
        append(&path, &event("web", "health", "ok")).unwrap();
        let mut n = 0;
        take(&path, "web", &mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_link_planted_as_the_pending_file_is_not_followed() {
        let dir = TempDir::new("journal-pending-link");
        let secret = dir.join("secret");
        std::fs::write(&secret, b"{}\n").unwrap();
        std::os::unix::fs::symlink(&secret, dir.join("events")).unwrap();
        let e = take(&dir.join("events"), "web", &mut |_| Ok(())).unwrap_err();
        assert!(format!("{e:#}").contains("events.taken"), "{e:#}");
        assert!(secret.exists() && !dir.join("events.taken").exists());
    }
}
