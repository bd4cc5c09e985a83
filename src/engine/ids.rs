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

/// The range recorded for a cell; `None`: its files carry host ids.
pub fn cell_range(cfg: &Config, cell: &str) -> Result<Option<IdRange>> {
    let path = record_path(cfg, cell);
    let Some(text) = crate::fs::host::read_optional(&path)? else {
        return Ok(None);
    };
    text.trim()
        .parse()
        .map(Some)
        .map_err(|e: String| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Records (or, with `None`, forgets) a cell's range.
pub fn record_cell_range(cfg: &Config, cell: &str, ids: Option<IdRange>) -> Result<()> {
    let path = record_path(cfg, cell);
    match ids {
        Some(r) => crate::fs::host::write_atomic(&path, format!("{r}\n").as_bytes()),
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        },
    }
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

/// Ranges in use: held by files or by running cells.
fn in_use(cfg: &Config, kernel: &dyn Kernel) -> Result<Vec<IdRange>> {
    let mut used = held(cfg)?;
    used.extend(kernel.list()?.into_iter().filter_map(|c| c.ids));
    Ok(used)
}

/// The allocation lock; dropping it releases it.
pub struct AllocLock(#[allow(dead_code)] std::fs::File);

pub fn lock(cfg: &Config) -> Result<AllocLock> {
    crate::fs::host::create_dir_all_mode(&cfg.run_dir, 0o755)?;
    let path = cfg.run_dir.join("ids.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(AllocLock(file))
}

/// A new range for a cell or volume; the caller records it (in files)
/// while it holds `_lock`.
pub fn allocate(cfg: &Config, kernel: &dyn Kernel, _lock: &AllocLock) -> Result<IdRange> {
    cfg.idmap.allocate(&in_use(cfg, kernel)?)
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
    let live: Vec<IdRange> = kernel.list()?.into_iter().filter_map(|c| c.ids).collect();
    if let Some(r) = owner_range(cfg, root) {
        if !live.iter().any(|l| l.overlaps(&r)) {
            return Ok(r);
        }
    }
    allocate(cfg, kernel, lock)
}
