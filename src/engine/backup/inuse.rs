//! Who is using the tree a backup reads or a restore replaces, and how to make
//! them hold still. The engine asks through [`Runtime`]; the control plane
//! implements it over the cell runtime.

use crate::kernel::FreezeGuard;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// A running cell that mounts a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeUser {
    pub cell: String,
    pub writable: bool,
}

/// What backups need to know about running cells and mounts.
pub trait Runtime {
    /// Running cells that mount the volume.
    fn volume_users(&self, volume: &str) -> Result<Vec<VolumeUser>>;
    fn cell_running(&self, cell: &str) -> Result<bool>;
    /// Places other than `dir` itself where `dir` (or a part of it) is mounted.
    fn mounts_of(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        mounts_of(dir)
    }
    /// Stops a cell the way `cellmgr cell stop` does.
    fn stop_cell(&self, cell: &str) -> Result<()>;
    /// Suspends every process of a running cell until the guard is dropped
    /// (see [`crate::kernel::Kernel::freeze`]: also if this process dies).
    fn freeze(&self, cell: &str) -> Result<FreezeGuard>;
}

/// Cells frozen for the duration of a copy; thawed on drop, also on error
/// paths, and by their guards if this process is killed.
pub struct Frozen {
    guards: Vec<(String, FreezeGuard)>,
}

impl Frozen {
    pub fn new(rt: &dyn Runtime, cells: &[String]) -> Result<Frozen> {
        let mut frozen = Frozen { guards: Vec::new() };
        for c in cells {
            let guard = rt.freeze(c).with_context(|| format!("freezing cell {c}"))?;
            crate::journal::event(c, crate::journal::Happened::Frozen, None);
            frozen.guards.push((c.clone(), guard));
        }
        Ok(frozen)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for (c, guard) in self.guards.drain(..) {
            match guard.thaw() {
                Ok(()) => crate::journal::event(&c, crate::journal::Happened::Thawed, None),
                Err(e) => log::error!("thawing cell {c}: {e:#}; `cellmgr apply` thaws it"),
            }
        }
    }
}

#[cfg(any(target_os = "linux", test))]
use crate::fs::mountinfo::{parse_entries as parse_mountinfo, MountEntry};

#[cfg(any(target_os = "linux", test))]
/// True if `opts` names `dir` or a path below it as an option value
/// (`upperdir=/x/overlay/upper`).
fn options_name(opts: &str, dir: &str) -> bool {
    opts.split([',', ':', '='])
        .any(|v| v == dir || v.strip_prefix(dir).is_some_and(|r| r.starts_with('/')))
}

#[cfg(any(target_os = "linux", test))]
/// Where `dir` is mounted besides its own path: bind mounts of it or of anything
/// below it, and mounts whose options name it (overlayfs layers).
fn mounts_in(entries: &[MountEntry], dir: &Path) -> Vec<PathBuf> {
    // The mount `dir` lives on: the last (top-most) one whose mount point is a prefix.
    let Some(home) = entries
        .iter()
        .filter(|m| dir.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())
    else {
        return Vec::new();
    };
    let rel = dir.strip_prefix(&home.mount_point).unwrap_or(Path::new(""));
    let inside_fs = home.root.join(rel);
    let dir_str = dir.to_string_lossy();
    let mut out: Vec<PathBuf> = entries
        .iter()
        .filter(|m| m.mount_point != dir)
        .filter(|m| {
            (m.dev == home.dev && m.root.starts_with(&inside_fs) && !m.mount_point.starts_with(dir))
                || options_name(&m.super_options, &dir_str)
                || options_name(&m.source, &dir_str)
        })
        .map(|m| m.mount_point.clone())
        .collect();
    out.dedup();
    out
}

/// [`Runtime::mounts_of`] from the kernel's mount table.
pub fn mounts_of(dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .context("reading /proc/self/mountinfo")?;
        Ok(mounts_in(&parse_mountinfo(&text), &dir))
    }
    // NetBSD: null mounts name their source directory in mount(8)'s output,
    // "<source> on <target> type <fs> (<options>)".
    #[cfg(not(target_os = "linux"))]
    {
        let out = std::process::Command::new("mount")
            .output()
            .context("running mount(8)")?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (source, rest) = l.split_once(" on ")?;
                let (target, _) = rest.rsplit_once(" type ")?;
                let (source, target) = (Path::new(source), PathBuf::from(target));
                (source.starts_with(&dir) && target != dir).then_some(target)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 0:25 / /tmp rw - tmpfs tmpfs rw
41 22 254:0 /srv/vol/web /var/cells/web/root/data rw - ext4 /dev/vda rw
42 22 254:0 /srv/vol/web2 /mnt/other rw - ext4 /dev/vda rw
43 30 0:25 /x\\040y /mnt/spaced rw - tmpfs tmpfs rw
44 22 0:40 / /var/cells/db/root rw - overlay overlay rw,lowerdir=/base,upperdir=/var/cells/db/overlay/upper,workdir=/var/cells/db/overlay/work
";

    #[test]
    fn finds_bind_mounts_and_overlay_layers_of_a_directory() {
        let m = parse_mountinfo(TABLE);
        assert_eq!(
            mounts_in(&m, Path::new("/srv/vol/web")),
            vec![PathBuf::from("/var/cells/web/root/data")]
        );
        // A sibling with a common prefix is not a match.
        assert!(mounts_in(&m, Path::new("/srv/vol/we")).is_empty());
        assert_eq!(
            mounts_in(&m, Path::new("/tmp/x y")),
            vec![PathBuf::from("/mnt/spaced")]
        );
        assert_eq!(
            mounts_in(&m, Path::new("/var/cells/db/overlay")),
            vec![PathBuf::from("/var/cells/db/root")]
        );
        assert!(mounts_in(&m, Path::new("/srv/unused")).is_empty());
    }
}
