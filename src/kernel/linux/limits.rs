//! Resource limits of cells: which cgroup hierarchy enforces each limit on this
//! host, the per-cell groups that carry them, what the cells use of them, and
//! the check that a disk limit is enforced by the storage under a cell's root.
//!
//! Each controller (`pids` for the process limit, `memory`, `cpu`) is used on
//! cgroup2 where the host delegates it (listed in the cgroup2 root's
//! `cgroup.subtree_control`: we then enable it in our own `cells/` and
//! `cells/<run key>/` cgroups), else on its cgroup v1 hierarchy (hybrid hosts,
//! whose controllers are bound to v1), else a limit that needs it is refused.
//! No host-wide control file is ever written. v1 groups live at
//! `<v1 mount>/cells/<run key>/<id>`, only for the controllers a cell limits;
//! they go with the cell, and a crashed create's are swept when its id is used
//! again.
//!
//! The cell's init joins the v1 groups when it starts (`ns`; see
//! [`open_v1_tasks`]) and every process of the cell descends from it (see
//! `agent`); on cgroup2, `CLONE_INTO_CGROUP` places the init under every
//! controller at once. The v1 process limit sits one level down, on the
//! [`MEMBERS`] group, which each process the init forks joins before it
//! execs: the init's fork is charged to its own group, which has no limit,
//! so a cell at its process limit can still be entered (moving a process
//! into a group is not limited, only forks in it are).

use super::cgroup::Hierarchy;
use crate::fs::mountinfo::{self, MountEntry};
use crate::kernel::Limits;
use crate::rcconf::format_size;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// CFS bandwidth period: the CPU limit is a quota per 100 ms.
const CPU_PERIOD_US: u64 = 100_000;

/// A cgroup controller that enforces one kind of limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Pids,
    Memory,
    Cpu,
}

impl Controller {
    const ALL: [Controller; 3] = [Controller::Pids, Controller::Memory, Controller::Cpu];

    fn name(self) -> &'static str {
        match self {
            Controller::Pids => "pids",
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
        }
    }

    /// The limit this controller enforces, for messages.
    fn what(self) -> &'static str {
        match self {
            Controller::Pids => "the process limit",
            Controller::Memory => "the memory limit",
            Controller::Cpu => "the CPU limit",
        }
    }

    fn wanted(self, limits: &Limits) -> Option<u64> {
        match self {
            Controller::Pids => limits.maxproc,
            Controller::Memory => limits.memory,
            Controller::Cpu => limits.cpu_percent,
        }
    }

    /// The control files and values that set `value` (the cell's init, which
    /// the process limit does not count, included).
    fn settings(self, value: u64, v1: bool) -> Vec<(&'static str, String)> {
        match (self, v1) {
            (Controller::Pids, _) => vec![("pids.max", (value.saturating_add(1)).to_string())],
            // Swap counts too: memory plus swap stays within the limit.
            (Controller::Memory, false) => vec![
                ("memory.max", value.to_string()),
                ("memory.swap.max", "0".into()),
            ],
            (Controller::Memory, true) => vec![
                ("memory.limit_in_bytes", value.to_string()),
                ("memory.memsw.limit_in_bytes", value.to_string()),
            ],
            (Controller::Cpu, false) => vec![(
                "cpu.max",
                format!("{} {CPU_PERIOD_US}", value * CPU_PERIOD_US / 100),
            )],
            (Controller::Cpu, true) => vec![
                ("cpu.cfs_period_us", CPU_PERIOD_US.to_string()),
                (
                    "cpu.cfs_quota_us",
                    (value * CPU_PERIOD_US / 100).to_string(),
                ),
            ],
        }
    }

    /// Files a host may lack (no swap accounting): skipped when absent.
    fn optional(file: &str) -> bool {
        matches!(file, "memory.swap.max" | "memory.memsw.limit_in_bytes")
    }
}

/// Where a controller works on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Delegated to the cgroup2 hierarchy the backend uses.
    Unified,
    /// Bound to a cgroup v1 hierarchy mounted here.
    V1(PathBuf),
}

/// Where each controller works on this host (detected once per command).
#[derive(Debug, Clone)]
pub struct Placement {
    places: Vec<(Controller, Place)>,
    /// The cgroup2 mount, for messages.
    unified_root: PathBuf,
}

/// Where systemd and most hybrid hosts mount each v1 hierarchy.
const USUAL_V1_PARENT: &str = "/sys/fs/cgroup";

/// `controller`'s v1 hierarchy at its usual place, `/sys/fs/cgroup/<name>`,
/// if that is the root of a cgroup v1 mount bound to it: a directory, not a
/// symlink (`cpu -> cpu,cpuacct` is left to the mount table), whose root or
/// `cells/` group has the controller's first limit file. Reading the mount
/// table instead takes milliseconds on a host with hundreds of mounts (every
/// cell adds some), at every create and destroy.
// `f_type`'s integer type differs between architectures.
#[allow(clippy::unnecessary_cast)]
fn usual_v1_mount(controller: Controller) -> Option<PathBuf> {
    const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
    let mount = Path::new(USUAL_V1_PARENT).join(controller.name());
    // host path: the host's cgroup mounts, no cell's
    let dir = std::fs::symlink_metadata(&mount).ok()?.is_dir();
    let cgroup_v1 = rustix::fs::statfs(&mount).is_ok_and(|s| s.f_type as i64 == CGROUP_SUPER_MAGIC);
    let (file, _) = controller.settings(1, true).into_iter().next()?;
    // The root has no pids files; the `cells` group any earlier cell made does.
    let bound = [mount.join(file), mount.join("cells").join(file)]
        .iter()
        .any(|f| f.exists());
    (dir && cgroup_v1 && bound).then_some(mount)
}

/// Cgroup v1 hierarchies in a mount table: (mount point, controllers). Only
/// mounts of a hierarchy's root (a bind of a subtree would put `cells/`
/// somewhere unexpected).
pub fn v1_hierarchies(mounts: &[MountEntry]) -> Vec<(PathBuf, Vec<String>)> {
    mounts
        .iter()
        .filter(|m| m.fs_type == "cgroup" && m.root == Path::new("/"))
        .filter_map(|m| {
            let controllers: Vec<String> = m
                .super_options
                .split(',')
                .filter(|o| Controller::ALL.iter().any(|c| c.name() == *o))
                .map(str::to_string)
                .collect();
            (!controllers.is_empty()).then(|| (m.mount_point.clone(), controllers))
        })
        .collect()
}

impl Placement {
    /// Finds each controller: on cgroup2 if `root`'s `cgroup.subtree_control`
    /// lists it, else on its v1 hierarchy, else nowhere.
    pub fn detect(root: &Path) -> Placement {
        let subtree = root.join("cgroup.subtree_control");
        // host path: `root` is the cgroup2 mount, not a cell's root
        let delegated = std::fs::read_to_string(subtree).unwrap_or_default();
        let usual: Option<Vec<_>> = Controller::ALL
            .into_iter()
            .filter(|c| !delegated.split_whitespace().any(|d| d == c.name()))
            .map(|c| usual_v1_mount(c).map(|m| (m, vec![c.name().to_string()])))
            .collect();
        if let Some(v1) = usual {
            return Placement::from_parts(root, &delegated, &v1);
        }
        // Only cgroup v1 mounts matter: the others (hundreds on a busy host)
        // are not parsed.
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let cgroups: Vec<&str> = text.lines().filter(|l| l.contains(" - cgroup ")).collect();
        let mounts = mountinfo::parse_entries(&cgroups.join("\n"));
        Placement::from_parts(root, &delegated, &v1_hierarchies(&mounts))
    }

    fn from_parts(root: &Path, delegated: &str, v1: &[(PathBuf, Vec<String>)]) -> Placement {
        let mut places = Vec::new();
        for c in Controller::ALL {
            if delegated.split_whitespace().any(|d| d == c.name()) {
                places.push((c, Place::Unified));
            } else if let Some((mount, _)) =
                v1.iter().find(|(_, cs)| cs.iter().any(|n| n == c.name()))
            {
                places.push((c, Place::V1(mount.clone())));
            }
        }
        Placement {
            places,
            unified_root: root.to_path_buf(),
        }
    }

    fn place(&self, c: Controller) -> Option<&Place> {
        self.places.iter().find(|(k, _)| *k == c).map(|(_, p)| p)
    }

    /// Refuses limits this host cannot enforce, naming what is missing.
    pub fn check(&self, limits: &Limits) -> Result<()> {
        for c in Controller::ALL {
            if c.wanted(limits).is_some() && self.place(c).is_none() {
                // The process limit is on by default: say where to turn it off.
                let default = if c == Controller::Pids {
                    "; CELL_DEFAULT_MAXPROC of cellmgr.conf sets the default"
                } else {
                    ""
                };
                bail!(
                    "{} cannot be enforced on this host: the {} controller is neither delegated to cgroup2 at {} (its cgroup.subtree_control) nor mounted as a cgroup v1 hierarchy; enable it, or run the cell without that limit ('unlimited'{default})",
                    c.what(),
                    c.name(),
                    self.unified_root.display()
                );
            }
        }
        if limits.cpu_percent == Some(0) {
            bail!("the CPU limit must be at least 1 (percent of one CPU)");
        }
        Ok(())
    }

    /// The v1 group of cell `id` in each v1 hierarchy a controller uses (where
    /// a crashed create may have left one).
    pub fn v1_groups(&self, run_key: &str, id: u64) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for (_, place) in &self.places {
            if let Place::V1(mount) = place {
                let dir = v1_group(mount, run_key, id);
                if !out.contains(&dir) {
                    out.push(dir);
                }
            }
        }
        out
    }

    /// Puts `limits` in force for cell `id`, whose cgroup2 cgroup `cgroup` is
    /// new and empty: on cgroup2 the controllers are enabled in our subtree and
    /// the limits written; v1 groups are made with their limits (the caller
    /// has removed those a crashed create left, see [`Self::v1_groups`]).
    /// Returns the v1 groups, which every process of the cell must join.
    pub fn apply(
        &self,
        hierarchy: &Hierarchy,
        cgroup: &Path,
        run_key: &str,
        id: u64,
        limits: &Limits,
    ) -> Result<Vec<PathBuf>> {
        self.check(limits)?;
        let mut groups: Vec<PathBuf> = Vec::new();
        for c in Controller::ALL {
            let (Some(value), Some(place)) = (c.wanted(limits), self.place(c)) else {
                continue;
            };
            match place {
                Place::Unified => {
                    for parent in [&hierarchy.cells, &hierarchy.run] {
                        write_control(parent, "cgroup.subtree_control", &format!("+{}", c.name()))?;
                    }
                    for (file, v) in c.settings(value, false) {
                        set(cgroup, file, &v)?;
                    }
                }
                Place::V1(mount) => {
                    let dir = v1_group(mount, run_key, id);
                    if !groups.contains(&dir) {
                        make_v1_group(&dir)?;
                        groups.push(dir.clone());
                    }
                    if c == Controller::Pids {
                        // The init stays out of the limited group (see the
                        // module comment), so the limit need not count it.
                        let members = dir.join(MEMBERS);
                        make_v1_group(&members)?;
                        set(&members, "pids.max", &value.to_string())?;
                        continue;
                    }
                    for (file, v) in c.settings(value, true) {
                        set(&dir, file, &v)?;
                    }
                }
            }
        }
        Ok(groups)
    }

    /// Removes the v1 run directories once they hold no cells (best effort).
    pub fn prune_run(&self, run_key: &str) {
        for (_, place) in &self.places {
            if let Place::V1(mount) = place {
                let _ = std::fs::remove_dir(mount.join("cells").join(run_key));
            }
        }
    }
}

/// The child group of a cell's v1 `pids` group that holds its processes
/// (not its init) and the process limit.
pub const MEMBERS: &str = "members";

/// The [`MEMBERS`] groups among a cell's v1 groups' children.
pub fn member_groups(groups: &[PathBuf]) -> Vec<PathBuf> {
    groups
        .iter()
        .map(|g| g.join(MEMBERS))
        .filter(|m| m.is_dir())
        .collect()
}

/// `<v1 mount>/cells/<run key>/<id>`.
fn v1_group(mount: &Path, run_key: &str, id: u64) -> PathBuf {
    mount.join("cells").join(run_key).join(id.to_string())
}

fn write_control(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, value).with_context(|| format!("writing '{value}' to {}", path.display()))
}

/// Writes one limit; a file a host may lack (swap accounting) is skipped.
fn set(dir: &Path, file: &str, value: &str) -> Result<()> {
    if Controller::optional(file) && !dir.join(file).exists() {
        return Ok(());
    }
    write_control(dir, file, value)
}

fn make_v1_group(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating cgroup {}", parent.display()))?;
    }
    std::fs::create_dir(dir).with_context(|| format!("creating cgroup {}", dir.display()))
}

/// Per-user kernel counters that cell root shares with host root (it is host
/// uid 0 until cells get user namespaces), bounded by rlimits on every process
/// entering a cell. The kernel compares the uid's total with the *caller's*
/// limit, so all cells together stay below these values and host root keeps
/// the rest of its own, larger limit. cellctl(8), SHARED POOLS, lists them.
pub const SHARED_POOL_RLIMITS: [(super::sys::RlimitResource, u64); 3] = [
    // POSIX message queue bytes (the default limit is 819,200).
    (libc::RLIMIT_MSGQUEUE, 204_800),
    // Queued (realtime) signals.
    (libc::RLIMIT_SIGPENDING, 4_096),
    // Locked memory: per process, and per user for SHM_LOCK and io_uring.
    (libc::RLIMIT_MEMLOCK, 8 << 20),
];

/// Lowers the shared-pool rlimits of the calling process to
/// [`SHARED_POOL_RLIMITS`] (never raises one). Async-signal-safe.
pub fn bound_shared_pools() -> std::io::Result<()> {
    for (resource, most) in SHARED_POOL_RLIMITS {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit with a valid struct.
        unsafe {
            if libc::getrlimit(resource, &mut lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim.rlim_cur = lim.rlim_cur.min(most);
            lim.rlim_max = lim.rlim_max.min(most);
            if libc::setrlimit(resource, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// `tasks` of each v1 group, opened before a fork so that the child can join
/// them without allocating.
///
/// `tasks` moves one thread, and the child is single-threaded between fork
/// and exec, so it moves the whole process. Writing `0` there (the caller
/// itself) skips the kernel's global threadgroup lock, whose write side
/// waits for an RCU grace period on a host where nothing else is migrating:
/// measured here, 25 us per join against 16 ms through `cgroup.procs`.
pub fn open_v1_tasks(groups: &[PathBuf]) -> Result<Vec<std::fs::File>> {
    groups
        .iter()
        .map(|g| {
            let path = g.join("tasks");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))
        })
        .collect()
}

/// Moves the calling single-threaded process into the groups whose `tasks`
/// are open (between fork and exec: async-signal-safe).
pub fn join_v1(tasks: &[std::fs::File]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    for f in tasks {
        // SAFETY: write(2) of a static buffer to a descriptor we hold.
        if unsafe { libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) } != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// What a cell uses of its limits, as its groups count it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub tasks: Option<u64>,
    pub memory: Option<u64>,
    pub forks_denied: Option<u64>,
    pub oom_kills: Option<u64>,
}

fn read_number(dir: &Path, file: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(file))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The value of `key` in a flat-keyed control file (`max 3`, `oom_kill 1`).
fn read_keyed(dir: &Path, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Reads a cell's usage from its cgroup2 cgroup and v1 groups: each figure
/// from the group whose controller provides it.
pub fn usage(cgroup: &Path, v1_groups: &[PathBuf]) -> Usage {
    let mut u = Usage::default();
    for dir in std::iter::once(cgroup).chain(v1_groups.iter().map(PathBuf::as_path)) {
        if let Some(n) = read_number(dir, "pids.current") {
            // The cell's init is a task of the group but not one of the cell's.
            u.tasks = Some(n.saturating_sub(1));
            // A v1 limit is on the members group, which counts its refusals.
            let members = dir.join(MEMBERS);
            let limited = if members.is_dir() { &members } else { dir };
            u.forks_denied = read_keyed(limited, "pids.events", "max");
        }
        if let Some(n) = read_number(dir, "memory.current") {
            u.memory = Some(n);
            u.oom_kills = read_keyed(dir, "memory.events", "oom_kill");
        } else if let Some(n) = read_number(dir, "memory.usage_in_bytes") {
            u.memory = Some(n);
            u.oom_kills = read_keyed(dir, "memory.oom_control", "oom_kill");
        }
    }
    u
}

/// The file systems a cell can write below `root`: the one holding `root`
/// itself and every read-write mount below it, as (mount point, file-system
/// id, total bytes, used bytes), each file system once.
fn writable_storage(root: &Path) -> Result<Vec<(PathBuf, u64, u64, u64)>> {
    let mut points = vec![root.to_path_buf()];
    for m in mountinfo::entries()? {
        if m.mount_point != root
            && m.mount_point.starts_with(root)
            && !points.contains(&m.mount_point)
        {
            points.push(m.mount_point);
        }
    }
    let mut out: Vec<(PathBuf, u64, u64, u64)> = Vec::new();
    for p in points {
        let st = match rustix::fs::statvfs(&p) {
            Ok(st) => st,
            // A mount point the caller's namespace cannot reach is not the cell's.
            Err(_) => continue,
        };
        if st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY)
            || out.iter().any(|(_, fsid, _, _)| *fsid == st.f_fsid)
        {
            continue;
        }
        let total = st.f_blocks.saturating_mul(st.f_frsize);
        let used = st
            .f_blocks
            .saturating_sub(st.f_bfree)
            .saturating_mul(st.f_frsize);
        out.push((p, st.f_fsid, total, used));
    }
    Ok(out)
}

/// Refuses a disk limit the storage under `root` does not enforce: together,
/// the file systems the cell can write must hold at most `limit` bytes.
pub fn check_disk(root: &Path, limit: u64) -> Result<()> {
    let storage = writable_storage(root)?;
    let total: u64 = storage.iter().map(|s| s.2).sum();
    if total <= limit {
        return Ok(());
    }
    let parts: Vec<String> = storage
        .iter()
        .map(|(p, _, size, _)| format!("{} ({})", p.display(), format_size(*size)))
        .collect();
    bail!(
        "the disk limit ({}) is not enforced by the storage under {}: the cell could write {} on {}; put its writable storage on file systems of at most {} in all (cellmgr does, for CELL_CREATE_DISK)",
        format_size(limit),
        root.display(),
        format_size(total),
        parts.join(", "),
        format_size(limit)
    )
}

/// Bytes used on the file systems the cell can write below `root`.
pub fn disk_used(root: &Path) -> Option<u64> {
    writable_storage(root)
        .ok()
        .map(|s| s.iter().map(|x| x.3).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
        33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n\
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
        39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n\
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
        90 31 0:32 /sub /mnt/memory\\040bind rw,relatime - cgroup cgroup rw,memory\n";

    /// The shortcut never disagrees with the mount table: a controller found
    /// at its usual place is the one the host's mount table binds there.
    #[test]
    fn usual_v1_places_agree_with_the_mount_table() {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let table = v1_hierarchies(&mountinfo::parse_entries(&text));
        for c in Controller::ALL {
            if let Some(mount) = usual_v1_mount(c) {
                let bound = table
                    .iter()
                    .find(|(m, _)| *m == mount)
                    .unwrap_or_else(|| panic!("{} is no v1 mount: {table:?}", mount.display()));
                assert!(bound.1.iter().any(|n| n == c.name()), "{c:?}: {bound:?}");
            }
        }
    }

    #[test]
    fn v1_hierarchies_are_read_from_mountinfo() {
        let h = v1_hierarchies(&mountinfo::parse_entries(HYBRID));
        assert_eq!(h.len(), 3, "{h:?}");
        assert_eq!(
            h[0],
            (PathBuf::from("/sys/fs/cgroup/cpu"), vec!["cpu".to_string()])
        );
        assert_eq!(h[1].0, PathBuf::from("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn controllers_prefer_cgroup2_then_v1() {
        let v1 = v1_hierarchies(&mountinfo::parse_entries(HYBRID));
        let root = Path::new("/sys/fs/cgroup/unified");
        let hybrid = Placement::from_parts(root, "hugetlb\n", &v1);
        assert_eq!(
            hybrid.place(Controller::Memory),
            Some(&Place::V1("/sys/fs/cgroup/memory".into()))
        );
        let pure = Placement::from_parts(Path::new("/sys/fs/cgroup"), "cpu memory pids\n", &[]);
        assert_eq!(pure.place(Controller::Pids), Some(&Place::Unified));
        assert!(pure.v1_groups("k", 1).is_empty());
        assert_eq!(
            hybrid.v1_groups("k", 7),
            vec![
                PathBuf::from("/sys/fs/cgroup/pids/cells/k/7"),
                PathBuf::from("/sys/fs/cgroup/memory/cells/k/7"),
                PathBuf::from("/sys/fs/cgroup/cpu/cells/k/7"),
            ]
        );
    }

    #[test]
    fn a_limit_without_its_controller_is_refused() {
        let none = Placement::from_parts(Path::new("/sys/fs/cgroup/unified"), "", &[]);
        assert!(none.check(&Limits::default()).is_ok());
        let e = none
            .check(&Limits {
                memory: Some(1 << 26),
                ..Limits::default()
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("the memory limit cannot be enforced"), "{e}");
        let pure = Placement::from_parts(Path::new("/sys/fs/cgroup"), "cpu memory pids", &[]);
        let zero = Limits {
            cpu_percent: Some(0),
            ..Limits::default()
        };
        assert!(pure.check(&zero).is_err());
    }

    #[test]
    fn limits_become_control_file_values() {
        assert_eq!(
            Controller::Pids.settings(64, true),
            vec![("pids.max", "65".to_string())]
        );
        assert_eq!(
            Controller::Cpu.settings(50, false),
            vec![("cpu.max", "50000 100000".to_string())]
        );
        assert_eq!(
            Controller::Cpu.settings(250, true)[1],
            ("cpu.cfs_quota_us", "250000".to_string())
        );
        assert_eq!(Controller::Memory.settings(1 << 26, true)[0].1, "67108864");
    }

    #[test]
    fn usage_is_read_from_whichever_group_counts_it() {
        let tmp = crate::testutil::TempDir::new("limits-usage");
        let (cg2, pids, mem) = (tmp.join("cg2"), tmp.join("pids"), tmp.join("mem"));
        for d in [&cg2, &pids, &mem] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(pids.join("pids.current"), "65\n").unwrap();
        std::fs::write(pids.join("pids.events"), "max 12\n").unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "4096\n").unwrap();
        std::fs::write(
            mem.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        let u = usage(&cg2, &[pids, mem]);
        assert_eq!(
            u,
            Usage {
                tasks: Some(64),
                memory: Some(4096),
                forks_denied: Some(12),
                oom_kills: Some(2),
            }
        );
        assert_eq!(usage(&cg2, &[]), Usage::default());
    }

    #[test]
    fn a_root_on_a_large_file_system_does_not_enforce_a_small_disk_limit() {
        let tmp = crate::testutil::TempDir::new("limits-disk");
        let e = check_disk(tmp.path(), 1 << 20).unwrap_err().to_string();
        assert!(e.contains("the disk limit (1M) is not enforced"), "{e}");
        assert!(check_disk(tmp.path(), u64::MAX).is_ok());
        assert!(disk_used(tmp.path()).is_some_and(|u| u > 0));
    }
}
