//! The cell table: what the NetBSD kernel keeps in memory, kept on Linux as one
//! CBOR file under `<run_dir>/kernel/`, replaced atomically and mutated only under
//! an exclusive `flock` on a separate lock file.

use crate::kernel::{profile_serde, IdRange, Limits, Profile, Rlimits};
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The ids of the installation's port programs and their port map (see
/// `bpf`). A table written before a program existed has 0 for it: never an
/// attached program, so the set is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BindGuardIds {
    /// The set's version (`bpf::PROGRAMS_VERSION`; 0 before versions).
    #[serde(default)]
    pub version: u32,
    /// `bind4` and `bind6`.
    pub prog4: u32,
    pub prog6: u32,
    /// `post_bind4` and `post_bind6`.
    #[serde(default)]
    pub post4: u32,
    #[serde(default)]
    pub post6: u32,
    /// `setsockopt`.
    #[serde(default)]
    pub sockopt: u32,
    pub ports_map: u32,
}

impl BindGuardIds {
    /// The program ids in the order the backend loads them.
    pub fn programs(&self) -> [u32; 5] {
        [self.prog4, self.prog6, self.post4, self.post6, self.sockopt]
    }
}

/// One cell as the backend records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CellRecord {
    pub id: u64,
    pub name: String,
    pub root: PathBuf,
    #[serde(with = "profile_serde")]
    pub profile: Profile,
    pub ports: Vec<u16>,
    pub rlimits: Rlimits,
    /// CLOCK_MONOTONIC at creation, in nanoseconds (ages survive clock changes).
    pub created_ns: u64,
    /// Host pid of the cell's init, and its start time (clock ticks after boot),
    /// which tells a live init from a recycled pid.
    pub init_pid: i32,
    pub init_start: u64,
    /// The cell's cgroup2 directory.
    pub cgroup: PathBuf,
    /// The limits in force (`limits`).
    #[serde(default)]
    pub limits: Limits,
    /// The cell's cgroup v1 groups (hybrid hosts), which every process
    /// entering the cell joins.
    #[serde(default)]
    pub v1_groups: Vec<PathBuf>,
    /// The host ids of the cell's user namespace (`None`: host ids; a cell
    /// made before user namespaces reads as that).
    #[serde(default)]
    pub ids: Option<IdRange>,
    /// The cell's own cgroup refuses `SO_REUSEPORT` (a cell without reserved
    /// ports, see `bpf::guard_sharing`). False for cells with ports and
    /// for records of older versions: the installation's program set keeps
    /// those out of other sockets' port groups while they live.
    #[serde(default)]
    pub own_sharing_rule: bool,
    /// Set while the cell is being made: its name, id, host ids and ports
    /// are taken, but it exists for no lookup yet. A record whose creator
    /// died is a create cut short, removed like a cell whose init died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Creator>,
}

/// The process making a cell: its pid and start time (clock ticks after
/// boot), which tell a live creator from a recycled pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Creator {
    pub pid: i32,
    pub start: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Table {
    /// The next id to hand out: starts at 1, never decreases.
    pub next_id: u64,
    pub cells: Vec<CellRecord>,
    /// The programs enforcing the cells' reserved ports and port sharing:
    /// recorded before they are attached, cleared once detached (see `bpf`).
    #[serde(default)]
    pub bind_guard: Option<BindGuardIds>,
}

/// How long a command waits for the table lock before it gives up.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where the table lives.
pub struct Store {
    dir: PathBuf,
    /// The table as this process last read or wrote it.
    seen: Arc<Mutex<Option<Seen>>>,
}

/// A table file as read or written, held open. While it is open no other
/// file can take its inode, and the table is only ever replaced whole (a new
/// file renamed over it): a path naming the same inode, with the same size
/// and times, names this content, which need not be read and decoded again
/// (a parallel apply looks the table up several times per cell).
struct Seen {
    _file: File,
    stamp: Stamp,
    table: Arc<Table>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

fn lock_seen(seen: &Mutex<Option<Seen>>) -> std::sync::MutexGuard<'_, Option<Seen>> {
    seen.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the table file held when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A valid table.
    Table,
    /// No file: no cell was created yet, or it was lost.
    Missing,
    /// A file that does not decode; why, naming it.
    Damaged(String),
}

/// The table, read under the exclusive lock; dropping it releases the lock.
/// When the file was missing or damaged the table is empty and `found` says
/// so: the backend rebuilds it from the kernel (see `mirror`).
pub struct Locked {
    _lock: File,
    path: PathBuf,
    seen: Arc<Mutex<Option<Seen>>>,
    pub table: Table,
    pub found: Found,
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store {
            dir,
            seen: Arc::default(),
        }
    }

    /// The directory of the table, its lock and the cells' runtime files.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The table file.
    pub fn table_path(&self) -> PathBuf {
        self.dir.join("cells.cbor")
    }

    /// Directory for per-cell runtime files (the init's telemetry samples).
    pub fn cell_dir(&self, id: u64) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// Takes the exclusive lock and reads the table (empty if none yet or
    /// unreadable, see [`Found`]).
    pub fn lock(&self) -> Result<Locked> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating state directory {}", self.dir.display()))?;
        let lock_path = self.dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening lock file {}", lock_path.display()))?;
        // Bounded: a holder that hangs (stopped, stuck) must not hang every
        // command after it; the error names it. The waits grow from 100 us:
        // most holders (a lookup, a create) are done within a few ms, and a
        // parallel apply has many of them queued.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let mut pause = std::time::Duration::from_micros(100);
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()));
            }
            if std::time::Instant::now() >= deadline {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                bail!(
                    "the cell table lock {} is held by pid {} for more than {} s; \
                     see what that process is doing",
                    lock_path.display(),
                    holder
                        .trim()
                        .parse::<u32>()
                        .map_or("unknown".into(), |p| p.to_string()),
                    LOCK_WAIT.as_secs()
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(5));
        }
        // Who holds it, rewritten in place at one width: a new file would be
        // another lock, and truncating cost 0.35 ms (up to 4 ms on a busy
        // disk) on ext4 at every command.
        use std::os::unix::fs::FileExt;
        let _ = lock.write_all_at(format!("{:<10}\n", std::process::id()).as_bytes(), 0);
        let path = self.table_path();
        let empty = Table {
            next_id: 1,
            ..Table::default()
        };
        let (table, found) = match self.read() {
            Ok(Ok(table)) => (Table::clone(&table), Found::Table),
            Ok(Err(e)) => (
                empty,
                Found::Damaged(format!("cell table {}: {e}", path.display())),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (empty, Found::Missing),
            Err(e) => {
                return Err(e).with_context(|| format!("reading cell table {}", path.display()))
            }
        };
        Ok(Locked {
            _lock: lock,
            path,
            seen: self.seen.clone(),
            table,
            found,
        })
    }

    /// The table as it is now, without the lock (it is replaced whole, by a
    /// rename): for lookups, which may see it a moment before a change as
    /// they would a moment after. `None` when it is missing or damaged (then
    /// only [`Store::lock`] and the backend's rebuild tell what exists).
    pub fn snapshot(&self) -> Option<Arc<Table>> {
        self.read().ok()?.ok()
    }

    /// The table file decoded (the error: why it does not decode), from
    /// memory when it is the file seen last (see [`Seen`]).
    fn read(&self) -> std::io::Result<Result<Arc<Table>, String>> {
        use std::io::Read;
        let path = self.table_path();
        let stamp = Stamp::of(&std::fs::metadata(&path)?);
        if let Some(seen) = &*lock_seen(&self.seen) {
            if seen.stamp == stamp {
                return Ok(Ok(seen.table.clone()));
            }
        }
        let mut file = File::open(&path)?;
        // Of the file opened, which a rename may have replaced since.
        let stamp = Stamp::of(&file.metadata()?);
        let mut bytes = Vec::with_capacity(stamp.size as usize);
        file.read_to_end(&mut bytes)?;
        Ok(match crate::fs::cbor::decode::<Table>(&bytes) {
            Ok(table) => {
                let table = Arc::new(table);
                *lock_seen(&self.seen) = Some(Seen {
                    _file: file,
                    stamp,
                    table: table.clone(),
                });
                Ok(table)
            }
            Err(e) => Err(e.to_string()),
        })
    }
}

impl Locked {
    /// Writes the table atomically (temp file, rename), not waiting for the
    /// disk: the table describes running inits, none of which outlives a reboot.
    pub fn save(&self) -> Result<()> {
        crate::fs::host::write_replace(&self.path, &crate::fs::cbor::encode(&self.table))?;
        // Ours until the lock is released: what this process reads next.
        if let Ok(file) = File::open(&self.path) {
            if let Ok(meta) = file.metadata() {
                *lock_seen(&self.seen) = Some(Seen {
                    _file: file,
                    stamp: Stamp::of(&meta),
                    table: Arc::new(self.table.clone()),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_and_starts_at_id_1() {
        let dir = std::env::temp_dir().join(format!("cells-state-{}", std::process::id()));
        let store = Store::new(dir.clone());
        let mut locked = store.lock().unwrap();
        assert_eq!(locked.table.next_id, 1);
        locked.table.next_id = 2;
        locked.table.cells.push(CellRecord {
            id: 1,
            name: "web".into(),
            root: "/srv/web".into(),
            profile: Profile::Medium,
            ports: vec![8080],
            rlimits: Rlimits::default(),
            created_ns: 5,
            init_pid: 42,
            init_start: 7,
            cgroup: "/sys/fs/cgroup/cells/x/1".into(),
            limits: Limits {
                maxproc: Some(64),
                ..Limits::default()
            },
            v1_groups: vec!["/sys/fs/cgroup/pids/cells/x/1".into()],
            ids: Some(IdRange {
                base: 100_000,
                size: 65_536,
            }),
            own_sharing_rule: false,
            pending: Some(Creator { pid: 9, start: 3 }),
        });
        locked.table.bind_guard = Some(BindGuardIds {
            version: 2,
            prog4: 1,
            prog6: 2,
            post4: 4,
            post6: 5,
            sockopt: 6,
            ports_map: 3,
        });
        locked.save().unwrap();
        let expected = locked.table.clone();
        drop(locked);
        assert_eq!(store.lock().unwrap().table, expected);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_table_another_command_replaced_is_read_again() {
        let dir = std::env::temp_dir().join(format!("cells-state-seen-{}", std::process::id()));
        let ours = Store::new(dir.clone());
        let theirs = Store::new(dir.clone());
        let mut locked = ours.lock().unwrap();
        locked.table.next_id = 5;
        locked.save().unwrap();
        drop(locked);
        assert_eq!(ours.snapshot().unwrap().next_id, 5);
        assert_eq!(theirs.snapshot().unwrap().next_id, 5);
        // Each replacement is a new file: held open by `ours`, the old one
        // keeps its inode, so the new one cannot look like it.
        for next in 6..10 {
            let mut locked = theirs.lock().unwrap();
            locked.table.next_id = next;
            locked.save().unwrap();
            drop(locked);
            assert_eq!(ours.snapshot().unwrap().next_id, next);
            assert_eq!(ours.lock().unwrap().table.next_id, next);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_table_is_reported_as_damaged() {
        // Saved without fsync (no cell outlives a reboot): a torn table is
        // found damaged, and `LinuxKernel::lock` rebuilds it from the mirror.
        let dir = std::env::temp_dir().join(format!("cells-state-torn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::new(dir.clone());
        std::fs::write(dir.join("cells.cbor"), b"\xff\x00torn").unwrap();
        let locked = store.lock().unwrap();
        assert!(
            matches!(&locked.found, Found::Damaged(why) if why.contains("cell table")),
            "{:?}",
            locked.found
        );
        assert!(locked.table.cells.is_empty());
        drop(locked);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
