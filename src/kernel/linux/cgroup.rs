//! cgroup2: one cgroup per cell, under `<cgroup2>/cells/<run key>/<id>`.
//!
//! Only the core cgroup2 files are used (`cgroup.procs`, `cgroup.kill`,
//! `cpu.stat`), so this works on hosts whose controllers are all bound to v1
//! (hybrid layout, cgroup2 at `/sys/fs/cgroup/unified`) as well as on pure
//! cgroup2 hosts. The run key (a hash of the run directory) keeps cells of
//! different state directories (parallel test runs) apart.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The cgroup2 hierarchy the backend uses.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// The cgroup2 mount point; the port programs attach here.
    pub root: PathBuf,
    /// `<root>/cells`: parent of every cell's cgroup on this host.
    pub cells: PathBuf,
    /// `<root>/cells/<run key>`: parent of this state directory's cells.
    pub run: PathBuf,
}

// `f_type`'s integer type differs between architectures.
#[allow(clippy::unnecessary_cast)]
fn is_cgroup2(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as i64 == CGROUP2_SUPER_MAGIC)
}

/// Finds the cgroup2 mount: the configured one, else `/sys/fs/cgroup` (pure
/// cgroup2), else `/sys/fs/cgroup/unified` (hybrid).
pub fn detect(configured: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = configured {
        if !is_cgroup2(p) {
            bail!(
                "CELL_CGROUP_ROOT {}: not a cgroup2 file system; point it at the cgroup2 mount",
                p.display()
            );
        }
        return Ok(p.to_path_buf());
    }
    for candidate in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if is_cgroup2(Path::new(candidate)) {
            return Ok(candidate.into());
        }
    }
    bail!("no cgroup2 file system at /sys/fs/cgroup or /sys/fs/cgroup/unified; mount one or set CELL_CGROUP_ROOT")
}

impl Hierarchy {
    pub fn new(root: PathBuf, run_key: &str) -> Hierarchy {
        let cells = root.join("cells");
        let run = cells.join(run_key);
        Hierarchy { root, cells, run }
    }

    pub fn cell(&self, id: u64) -> PathBuf {
        self.run.join(id.to_string())
    }

    /// Creates a cell's cgroup. A leftover of a crashed create with the same id
    /// is emptied and reused, so the next run converges.
    pub fn create(&self, id: u64) -> Result<PathBuf> {
        let dir = self.cell(id);
        std::fs::create_dir_all(&self.run)
            .with_context(|| format!("creating cgroup {}", self.run.display()))?;
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                remove(&dir)?;
                std::fs::create_dir(&dir)
                    .with_context(|| format!("creating cgroup {}", dir.display()))?;
                Ok(dir)
            }
            Err(e) => Err(e).with_context(|| format!("creating cgroup {}", dir.display())),
        }
    }

    /// Removes the run directory once it holds no cells (best effort).
    pub fn prune_run(&self) {
        let _ = std::fs::remove_dir(&self.run);
    }
}

/// Host pids of the processes in a cgroup and every cgroup below it (zombies
/// are not listed): a cell's members, wherever in its subtree they sit.
pub fn procs(dir: &Path) -> Result<Vec<i32>> {
    let path = dir.join("cgroup.procs");
    let text = crate::fs::pseudo::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    for child in children(dir)? {
        match procs(&child) {
            Ok(more) => pids.extend(more),
            // Removed while we looked: nothing left in it.
            Err(_) if !child.exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(pids)
}

/// Whether any process lives in a cgroup or below it (`cgroup.events`); a
/// cgroup that cannot be read counts as populated.
pub fn populated(dir: &Path) -> bool {
    crate::fs::pseudo::read_to_string(dir.join("cgroup.events"))
        .map_or(true, |events| !events.lines().any(|l| l == "populated 0"))
}

/// The child cgroups of a cgroup.
fn children(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing cgroup {}", dir.display())),
    };
    Ok(entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}

/// Kills everything in a cgroup's subtree (`cgroup.kill` is recursive) and
/// removes it, deepest cgroups first; a missing cgroup is fine.
pub fn remove(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    remove_tree(dir)
}

/// Removes a cgroup and every cgroup below it (of either version), deepest
/// first, each once its members have left; a missing one is fine.
pub fn remove_tree(dir: &Path) -> Result<()> {
    for child in children(dir)? {
        remove_tree(&child)?;
    }
    remove_when_empty(dir)
}

/// Removes a cgroup directory (of either version) once its members have
/// left it, waiting up to a second for killed tasks to exit; a missing one
/// is fine.
pub fn remove_when_empty(dir: &Path) -> Result<()> {
    for _ in 0..200 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e).with_context(|| format!("removing cgroup {}", dir.display())),
        }
    }
    bail!("removing cgroup {}: still busy after 1 s", dir.display())
}

/// Total CPU time of a cgroup (including exited members) in microseconds, from
/// `cpu.stat`, which cgroup2 provides even without the cpu controller.
pub fn cpu_usage_usec(cpu_stat: &str) -> Option<u64> {
    cpu_stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// The level of a cgroup in its hierarchy (root = 0), from a member's
/// `/proc/<pid>/cgroup` line `0::/a/b/c`.
pub fn level_of_member(pid: i32) -> Result<u32> {
    let path = format!("/proc/{pid}/cgroup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .with_context(|| format!("{path}: no cgroup2 entry"))?;
    Ok(line.split('/').filter(|c| !c.is_empty()).count() as u32)
}

/// A cgroup's id, as BPF helpers report it: the inode number of its directory.
pub fn id(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(dir)
        .with_context(|| format!("reading cgroup {}", dir.display()))?
        .ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_usage_is_read_from_cpu_stat() {
        let s = "usage_usec 1001922\nuser_usec 1000000\nsystem_usec 1922\n";
        assert_eq!(cpu_usage_usec(s), Some(1_001_922));
        assert_eq!(cpu_usage_usec("user_usec 5\n"), None);
    }

    #[test]
    fn cells_live_under_a_per_run_directory() {
        let h = Hierarchy::new("/sys/fs/cgroup".into(), "abc");
        assert_eq!(h.cell(7), PathBuf::from("/sys/fs/cgroup/cells/abc/7"));
    }
}
