//! Which host ids each cell and volume has (Linux user namespaces, see
//! [`crate::fs::ids`]), and handing out new ranges.
//!
//! A range is held as long as files carry it, so it is never given to
//! another cell while they exist:
//!
//! * a cell managed by cellmgr: its range is recorded in `<data_dir>/<name>/ids`
//!   when its writable layer gets it, and goes with the runtime directory;
//! * a volume: the owner of its top directory (the volume's root, whatever
//!   id in its range the cell gave it) names its range;
//! * a running cell (also one made by `cellctl create` alone): the kernel's
//!   cell table.
//!
//! New ranges are taken lowest first under a lock of their own
//! (`<run_dir>/ids.lock`), so two commands never take the same one.
//!
//! Files follow: before a cell starts in its user namespace, its writable
//! layer is shifted onto its range if it may hold host ids (a cell made
//! before user namespaces, or one that ran at the low profile since), and
//! a volume that still has host ids gets a range of its own (see
//! [`prepare_cell`], [`prepare_volume`] and [`crate::fs::shift`]).

use crate::config::Config;
use crate::fs::ids::IdRange;
use crate::kernel::{Kernel, Profile};
use anyhow::{Context, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The file recording a cell's range in its runtime directory.
const RECORD: &str = "ids";

fn record_path(cfg: &Config, cell: &str) -> PathBuf {
    cfg.data_dir.join(cell).join(RECORD)
}

/// Whether cells of `profile` get a user namespace on this host.
pub fn wanted(cfg: &Config, profile: Profile) -> bool {
    cfg!(target_os = "linux") && cfg.userns && profile != Profile::Low
}

/// A cell's record: its range, and whether its layer may hold host ids
/// (the second line `shift`: shift them before it runs in the range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    range: IdRange,
    shift: bool,
}

fn read_record(cfg: &Config, cell: &str) -> Result<Option<Record>> {
    let path = record_path(cfg, cell);
    let Some(text) = crate::fs::host::read_optional(&path)? else {
        return Ok(None);
    };
    let mut lines = text.lines();
    let range = lines
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .map_err(|e: String| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Some(Record {
        range,
        shift: lines.next().map(str::trim) == Some("shift"),
    }))
}

fn write_record(cfg: &Config, cell: &str, r: Record) -> Result<()> {
    let text = format!("{}\n{}", r.range, if r.shift { "shift\n" } else { "" });
    crate::fs::host::write_atomic(&record_path(cfg, cell), text.as_bytes())
}

/// The range recorded for a cell; `None`: its files carry host ids.
pub fn cell_range(cfg: &Config, cell: &str) -> Result<Option<IdRange>> {
    Ok(read_record(cfg, cell)?.map(|r| r.range))
}

/// After a restore put a whole layer on the cell's range: nothing to shift.
pub fn restored(cfg: &Config, name: &str, range: IdRange) -> Result<()> {
    write_record(
        cfg,
        name,
        Record {
            range,
            shift: false,
        },
    )
}

/// Whether a cell's layer may hold host ids beside its range's.
pub fn shift_pending(cfg: &Config, name: &str) -> Result<bool> {
    Ok(read_record(cfg, name)?.is_some_and(|r| r.shift))
}

/// How a cell's ids map to host ids in its writable layer as it is now:
/// its range once its files are on it, else host ids (a shift pending
/// moves what is written meanwhile along with the rest).
pub fn layer_ids(cfg: &Config, cell: &str) -> Result<crate::fs::tree::IdMap> {
    Ok(match read_record(cfg, cell)? {
        Some(r) if !r.shift => r.range.map(),
        _ => crate::fs::tree::IdMap::IDENTITY,
    })
}

/// Host ids `0..count` as an id map (the identity, bounded like a range).
fn host_ids(count: u32) -> crate::fs::tree::IdMap {
    crate::fs::tree::IdMap::shifted(0, 0, count)
}

/// Puts a stopped cell's writable layer on the ids its profile runs with
/// and returns its range (`None`: host ids). A cell that runs in a user
/// namespace gets a range (recorded before its files are shifted, so an
/// interrupted shift is finished by the next start); one that runs on host
/// ids keeps its record and is marked, since what it writes carries host
/// ids.
pub fn prepare_cell(
    cfg: &Config,
    kernel: &dyn Kernel,
    name: &str,
    profile: Profile,
) -> Result<Option<IdRange>> {
    let record = read_record(cfg, name)?;
    if !wanted(cfg, profile) {
        if let Some(r) = record.filter(|r| !r.shift) {
            write_record(cfg, name, Record { shift: true, ..r })?;
        }
        return Ok(None);
    }
    let record = match record {
        Some(r) => r,
        None => {
            let lock = lock(cfg)?;
            let r = Record {
                range: allocate(cfg, kernel, &lock)?,
                shift: true,
            };
            write_record(cfg, name, r)?;
            r
        }
    };
    if record.shift {
        // The whole layer directory (overlayfs: upper and work), as backups take it.
        let paths = crate::engine::runtime::CellPaths::new(cfg, name);
        let tree = crate::fs::tree::Tree::open(&paths.overlay, crate::fs::tree::Links::Refuse)?;
        let r = record.range;
        let done = crate::fs::shift::shift_tree(&tree, host_ids(r.mapped()), r.map())
            .with_context(|| format!("giving the files of cell {name} to its ids {r}"))?;
        if done.changed > 0 {
            log::info!(
                "cell {name}: {} files moved from host ids to the ids of its user namespace ({r})",
                done.changed
            );
        }
        warn_foreign(&format!("cell {name}'s writable layer"), done.foreign, &r);
        write_record(
            cfg,
            name,
            Record {
                shift: false,
                ..record
            },
        )?;
    }
    Ok(Some(record.range))
}

fn warn_foreign(what: &str, foreign: u64, r: &IdRange) {
    if foreign > 0 {
        log::warn!(
            "{what}: {foreign} files have owners outside host ids 0-{} and keep them (the cell sees them as nobody)",
            r.mapped() - 1
        );
    }
}

/// The range a volume's files are on (`None`: host ids) before a cell on
/// `for_cell` mounts it. A volume on host ids that a cell in a user
/// namespace mounts gets a range of its own first, unless a running cell
/// has it mounted: then it stays on host ids, with a warning, until the
/// next mount finds it free.
pub fn prepare_volume(
    cfg: &Config,
    kernel: &dyn Kernel,
    name: &str,
    for_cell: Option<IdRange>,
) -> Result<Option<IdRange>> {
    let dir = crate::engine::runtime::volume_dir(cfg, name);
    if let Some(r) = owner_range(cfg, &dir) {
        return Ok(Some(r));
    }
    if for_cell.is_none() {
        return Ok(None);
    }
    let users = crate::engine::backup::inuse::mounts_of(&dir)?;
    if !users.is_empty() {
        log::warn!(
            "volume {name} keeps host ids while it is mounted at {}: a cell in a user namespace \
             writes into it as host ids 0-65534; it gets ids of its own at its next mount",
            users
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(None);
    }
    let lock = lock(cfg)?;
    let r = allocate(cfg, kernel, &lock)?;
    let tree = crate::fs::tree::Tree::open(&dir, crate::fs::tree::Links::Refuse)?;
    // The top directory goes last: its owner names the range, so an
    // interrupted shift is not yet one, and is started again.
    let done = crate::fs::shift::shift_tree(&tree, host_ids(r.mapped()), r.map())
        .with_context(|| format!("giving volume {name} the ids {r}"))?;
    log::info!(
        "volume {name}: {} files moved from host ids to ids of its own ({r})",
        done.changed
    );
    warn_foreign(&format!("volume {name}"), done.foreign, &r);
    Ok(Some(r))
}

/// The pool range of the host id owning `dir`, if any (a volume's range).
pub fn owner_range(cfg: &Config, dir: &Path) -> Option<IdRange> {
    // host path: a volume's top directory, in the root-only volume directory
    let owner = std::fs::symlink_metadata(dir).ok()?.uid();
    cfg.idmap.range_of(owner)
}

/// Ranges held by files: every cell runtime's record and every volume's top
/// directory.
pub fn held(cfg: &Config) -> Result<Vec<IdRange>> {
    let mut out = Vec::new();
    for cell in crate::engine::runtime::runtime_dirs(cfg)? {
        if let Some(r) = cell_range(cfg, &cell)? {
            out.push(r);
        }
    }
    for volume in crate::engine::runtime::volume_dirs(cfg)? {
        if let Some(r) = owner_range(cfg, &crate::engine::runtime::volume_dir(cfg, &volume)) {
            out.push(r);
        }
    }
    Ok(out)
}

/// Ranges of running cells.
fn running(kernel: &dyn Kernel) -> Result<Vec<IdRange>> {
    kernel.id_ranges()
}

/// The allocation lock; dropping it releases it. The locked file also
/// keeps where the next search for a free range starts (the run directory
/// does not survive a reboot, nor does the per-uid kernel state the cursor
/// keeps new cells away from) and a token that every allocation changes
/// (see [`Seen`]): `<cursor>\n<token>\n`.
pub struct AllocLock {
    file: std::fs::File,
    path: PathBuf,
}

/// What the lock file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    cursor: u32,
    /// `None`: a file without one (written by an older cellmgr, or damaged).
    token: Option<u64>,
}

impl AllocLock {
    fn stamp(&self) -> Stamp {
        use std::io::{Read, Seek};
        let mut text = String::new();
        let mut f = &self.file;
        // A missing or damaged cursor only means the search starts at 0.
        if f.rewind().is_err() || f.take(64).read_to_string(&mut text).is_err() {
            text.clear();
        }
        let mut lines = text.lines().map(str::trim);
        Stamp {
            cursor: lines.next().and_then(|l| l.parse().ok()).unwrap_or(0),
            token: lines.next().and_then(|l| l.parse().ok()),
        }
    }

    /// Writes the cursor and a new token; returns the token. Rewritten in
    /// place at one width (any u32, any u64): truncating the file first
    /// costs a journal transaction on ext4 at every create.
    fn set_cursor(&self, next: u32) -> Result<u64> {
        use std::os::unix::fs::FileExt;
        let token = crate::fs::random_u64();
        self.file
            .write_all_at(format!("{next:<10}\n{token:<20}\n").as_bytes(), 0)?;
        Ok(token)
    }
}

pub fn lock(cfg: &Config) -> Result<AllocLock> {
    crate::fs::host::create_dir_all_mode(&cfg.run_dir, 0o755)?;
    let path = cfg.run_dir.join("ids.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(AllocLock { file, path })
}

/// The ranges held by files as this process last read them ([`held`]),
/// and the lock file's token then. Every range is handed out under the
/// lock by [`allocate_beside`], which writes a new token: while the token
/// is the one seen, the files hold what was read plus what this process
/// handed out since, so a run that starts many cells reads every runtime
/// and volume once, not once per cell. Another command's allocation
/// changes the token and the next one here reads the files again. A range
/// freed meanwhile (a runtime removed) still counts here until then: a
/// range is never handed out too early, at worst a little late (and a full
/// pool is always read again before it is called full).
struct Seen {
    token: u64,
    held: Vec<IdRange>,
}

/// [`Seen`] per installation (its lock file, data and volume directories).
type SeenKey = (PathBuf, PathBuf, PathBuf);

fn seen_key(cfg: &Config, lock: &AllocLock) -> SeenKey {
    (
        lock.path.clone(),
        cfg.data_dir.clone(),
        cfg.volume_dir.clone(),
    )
}

static SEEN: std::sync::Mutex<std::collections::BTreeMap<SeenKey, Seen>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// A new range for a cell or volume; the caller records it (in files)
/// while it holds `lock`.
pub fn allocate(cfg: &Config, kernel: &dyn Kernel, lock: &AllocLock) -> Result<IdRange> {
    allocate_beside(cfg, &running(kernel)?, lock)
}

/// A new range, used neither by files nor by the `running` cells.
pub fn allocate_beside(cfg: &Config, running: &[IdRange], lock: &AllocLock) -> Result<IdRange> {
    let stamp = lock.stamp();
    let key = seen_key(cfg, lock);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    // Forgotten first: should anything below fail, the next call reads again.
    let known = seen
        .remove(&key)
        .filter(|s| Some(s.token) == stamp.token)
        .map(|s| s.held);
    let pick = |held: &[IdRange]| {
        let mut used = held.to_vec();
        used.extend_from_slice(running);
        cfg.idmap.allocate(stamp.cursor, &used)
    };
    let read = || -> Result<(Vec<IdRange>, IdRange)> {
        let files = held(cfg)?;
        let r = pick(&files)?;
        Ok((files, r))
    };
    let (mut files, range) = match known {
        Some(files) => match pick(&files) {
            Ok(r) => (files, r),
            // Full as last seen: ranges freed since may make room.
            Err(_) => read()?,
        },
        None => read()?,
    };
    let next = cfg.idmap.index_of(&range).map_or(stamp.cursor, |n| n + 1);
    let token = lock
        .set_cursor(next)
        .with_context(|| format!("recording the next id range in {}", lock.path.display()))?;
    files.push(range);
    seen.insert(key, Seen { token, held: files });
    Ok(range)
}

/// The range for a cell made by `cellctl create` on `root`: the range of
/// the root directory's owner when the root was given to one (so a root
/// keeps its range from one cell to the next) and no running cell has it,
/// else a new one.
pub fn for_root(
    cfg: &Config,
    kernel: &dyn Kernel,
    root: &Path,
    lock: &AllocLock,
) -> Result<IdRange> {
    let live = running(kernel)?;
    if let Some(r) = owner_range(cfg, root) {
        if !live.iter().any(|l| l.overlaps(&r)) {
            return Ok(r);
        }
    }
    allocate_beside(cfg, &live, lock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{CellInfo, CellSpec, CellStats, ExecSpec, Stdio, Target};
    use std::os::unix::fs::MetadataExt;

    /// A kernel whose running cells hold these ranges.
    struct Running(Vec<IdRange>);

    impl Kernel for Running {
        fn name(&self) -> &'static str {
            "running"
        }
        fn create(&self, _: &CellSpec) -> Result<u64> {
            anyhow::bail!("not a kernel")
        }
        fn destroy(&self, _: &Target) -> Result<()> {
            anyhow::bail!("not a kernel")
        }
        fn list(&self) -> Result<Vec<CellInfo>> {
            Ok(self
                .0
                .iter()
                .enumerate()
                .map(|(k, r)| CellInfo {
                    id: k as u64 + 1,
                    name: format!("running{k}"),
                    root: "/".into(),
                    profile: Profile::High,
                    ports: Vec::new(),
                    rlimits: Default::default(),
                    age: 0,
                    procs: 1,
                    refs: 1,
                    ids: Some(*r),
                    frozen: false,
                })
                .collect())
        }
        fn stats(&self) -> Result<Vec<CellStats>> {
            Ok(Vec::new())
        }
        fn spawn(&self, _: &Target, _: &ExecSpec, _: [Stdio; 3]) -> Result<crate::kernel::Child> {
            anyhow::bail!("not a kernel")
        }
    }

    fn config(tmp: &crate::testutil::TempDir) -> Config {
        for d in ["data", "volumes", "run"] {
            std::fs::create_dir_all(tmp.join(d)).unwrap();
        }
        Config {
            data_dir: tmp.join("data"),
            volume_dir: tmp.join("volumes"),
            run_dir: tmp.join("run"),
            userns: true,
            idmap: crate::fs::ids::Pool {
                base: 1 << 20,
                size: 65_536,
            },
            ..Config::default()
        }
    }

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    fn owner(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().uid()
    }

    /// A cell's writable layer with a file of host root's and one of uid 1000.
    fn host_id_layer(cfg: &Config, name: &str) -> PathBuf {
        let layer = crate::engine::runtime::CellPaths::new(cfg, name).overlay;
        std::fs::create_dir_all(layer.join("upper/etc")).unwrap();
        std::fs::write(layer.join("upper/etc/motd"), "hi\n").unwrap();
        std::fs::write(layer.join("upper/home"), "").unwrap();
        std::os::unix::fs::chown(layer.join("upper/home"), Some(1000), Some(1000)).unwrap();
        layer
    }

    #[test]
    fn a_new_range_is_held_by_no_record_volume_or_running_cell() {
        if !root() {
            eprintln!("SKIPPED: chown needs root");
            return;
        }
        let tmp = crate::testutil::TempDir::new("ids-alloc");
        let cfg = config(&tmp);
        let pool = cfg.idmap;
        let nth = |n| pool.range(n).unwrap();
        // Range 0: a cell's record; range 1: a volume (its top directory's
        // owner, any id of the range); range 2: a running cell.
        std::fs::create_dir_all(cfg.data_dir.join("web")).unwrap();
        restored(&cfg, "web", nth(0)).unwrap();
        let volume = crate::engine::runtime::volume_dir(&cfg, "data");
        std::fs::create_dir_all(&volume).unwrap();
        std::os::unix::fs::chown(&volume, Some(nth(1).base + 33), Some(nth(1).base + 33)).unwrap();
        let kernel = Running(vec![nth(2)]);
        let lock = lock(&cfg).unwrap();
        assert_eq!(held(&cfg).unwrap(), vec![nth(0), nth(1)]);
        assert_eq!(allocate(&cfg, &kernel, &lock).unwrap(), nth(3));
        // A range freed by its files going is not handed out at once: the
        // search goes on from the last range handed out, and comes back
        // to the freed one only when it wraps round the pool.
        std::fs::remove_dir_all(cfg.data_dir.join("web")).unwrap();
        assert_eq!(allocate(&cfg, &kernel, &lock).unwrap(), nth(4));
        drop(lock);
        let lock = super::lock(&cfg).unwrap();
        assert_eq!(
            allocate(&cfg, &kernel, &lock).unwrap(),
            nth(5),
            "the cursor outlives the lock"
        );
        lock.set_cursor(pool.len() - 1).unwrap();
        assert_eq!(allocate(&cfg, &kernel, &lock).unwrap(), nth(pool.len() - 1));
        assert_eq!(
            allocate(&cfg, &kernel, &lock).unwrap(),
            nth(0),
            "the freed range, after wrapping round"
        );
    }

    #[test]
    fn a_range_another_command_handed_out_is_never_handed_out_again() {
        if !root() {
            eprintln!("SKIPPED: chown needs root");
            return;
        }
        let tmp = crate::testutil::TempDir::new("ids-two");
        // Two ranges: the search wraps at once.
        let cfg = Config {
            idmap: crate::fs::ids::Pool {
                base: crate::fs::ids::POOL_END - 2 * 65_536,
                size: 65_536,
            },
            ..config(&tmp)
        };
        let nth = |n| cfg.idmap.range(n).unwrap();
        let kernel = Running(Vec::new());
        let record = |cell: &str, r: IdRange| {
            std::fs::create_dir_all(cfg.data_dir.join(cell)).unwrap();
            restored(&cfg, cell, r).unwrap();
        };
        // Each command (process) has what it saw of the files to itself.
        let other_command = |f: &dyn Fn()| {
            let key = seen_key(&cfg, &super::lock(&cfg).unwrap());
            let ours = SEEN.lock().unwrap().remove(&key);
            f();
            let mut seen = SEEN.lock().unwrap();
            match ours {
                Some(s) => seen.insert(key, s),
                None => seen.remove(&key),
            };
        };

        // This command gives cell a the first range, and has read the files.
        let a = allocate(&cfg, &kernel, &super::lock(&cfg).unwrap()).unwrap();
        assert_eq!(a, nth(0));
        record("a", a);
        // Meanwhile another command gives cell b the second range and
        // removes cell a (its range is free again).
        other_command(&|| {
            let b = allocate(&cfg, &kernel, &super::lock(&cfg).unwrap()).unwrap();
            assert_eq!(b, nth(1));
            record("b", b);
            std::fs::remove_dir_all(cfg.data_dir.join("a")).unwrap();
        });
        // What this command saw holds the first range and not the second:
        // the next range here must be the first again, never b's.
        let lock = super::lock(&cfg).unwrap();
        assert_eq!(allocate(&cfg, &kernel, &lock).unwrap(), nth(0));
        // And once the pool is full it says so (having read the files again).
        record("c", nth(0));
        let full = allocate(&cfg, &kernel, &lock).unwrap_err().to_string();
        assert!(full.contains("the id pool is exhausted"), "{full}");
    }

    #[test]
    fn a_layer_moves_to_its_range_once_and_again_after_running_on_host_ids() {
        if !root() {
            eprintln!("SKIPPED: chown needs root");
            return;
        }
        let tmp = crate::testutil::TempDir::new("ids-migrate");
        let cfg = config(&tmp);
        let kernel = Running(Vec::new());
        let layer = host_id_layer(&cfg, "web");

        // Made before user namespaces (no record): a range, and the files on it.
        let r = prepare_cell(&cfg, &kernel, "web", Profile::Medium)
            .unwrap()
            .unwrap();
        assert_eq!(r, cfg.idmap.range(0).unwrap());
        assert_eq!(owner(&layer.join("upper/etc/motd")), r.base);
        assert_eq!(owner(&layer.join("upper/home")), r.base + 1000);
        assert_eq!(cell_range(&cfg, "web").unwrap(), Some(r));
        assert!(!shift_pending(&cfg, "web").unwrap());
        assert_eq!(layer_ids(&cfg, "web").unwrap(), r.map());

        // The next start finds it on its range: nothing moves twice.
        assert_eq!(
            prepare_cell(&cfg, &kernel, "web", Profile::High).unwrap(),
            Some(r)
        );
        assert_eq!(owner(&layer.join("upper/etc/motd")), r.base);

        // At low it runs on host ids and keeps its range, marked: what it
        // writes there (host root's) moves at its next start in the range,
        // and what was on the range stays.
        assert_eq!(
            prepare_cell(&cfg, &kernel, "web", Profile::Low).unwrap(),
            None
        );
        assert!(shift_pending(&cfg, "web").unwrap());
        assert_eq!(
            layer_ids(&cfg, "web").unwrap(),
            crate::fs::tree::IdMap::IDENTITY
        );
        std::fs::write(layer.join("upper/etc/written-at-low"), "").unwrap();
        assert_eq!(
            prepare_cell(&cfg, &kernel, "web", Profile::Medium).unwrap(),
            Some(r)
        );
        assert_eq!(owner(&layer.join("upper/etc/written-at-low")), r.base);
        assert_eq!(owner(&layer.join("upper/etc/motd")), r.base);
        assert_eq!(owner(&layer.join("upper/home")), r.base + 1000);
        assert!(!shift_pending(&cfg, "web").unwrap());
    }

    #[test]
    fn without_user_namespaces_a_cell_keeps_host_ids() {
        if !root() {
            eprintln!("SKIPPED: chown needs root");
            return;
        }
        let tmp = crate::testutil::TempDir::new("ids-off");
        let cfg = Config {
            userns: false,
            ..config(&tmp)
        };
        let layer = host_id_layer(&cfg, "web");
        for profile in [Profile::Low, Profile::Medium, Profile::High] {
            assert!(!wanted(&cfg, profile));
            assert_eq!(
                prepare_cell(&cfg, &Running(Vec::new()), "web", profile).unwrap(),
                None
            );
        }
        assert_eq!(owner(&layer.join("upper/etc/motd")), 0);
        assert_eq!(cell_range(&cfg, "web").unwrap(), None);
    }
}
