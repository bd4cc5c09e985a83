//! Runtime state: what exists for a cell on this host, as opposed to what the
//! operator declared (`engine::manifest`).
//!
//! Per cell, under `cfg.data_dir` (cellmgr(8), FILES):
//!
//! ```text
//! <name>/cell.conf       the rendered manifest: what `start` runs (written last)
//! <name>/root/           mount point of the composed root, the cell's "/"
//! <name>/overlay/        the cell's writable layer (Linux: upper/ and work/ of overlayfs)
//! <name>/disk.img        with a disk limit: the image holding the writable layer
//! <name>/disk/overlay/   with a disk limit: the writable layer, on the mounted image
//! <name>/state/mounts    every mount made for the cell, recorded before it is made
//! <name>/state/health    result of the last health check
//! <name>/ids             Linux: the host ids of the cell's user namespace (`engine::ids`)
//! <name>/lower           Linux, `CELL_BASE=/path`: the base, idmapped for the cell
//! ```
//!
//! [`render`] creates this (never touching a live root); [`disk`] gives a cell
//! with a disk limit its image; [`compose`] mounts the root; [`lifecycle`]
//! starts, stops and prunes.

pub mod compose;
pub mod disk;
pub mod lifecycle;
mod render;

pub use render::{render, render_for, RenderOutcome};

use crate::config::Config;
use crate::engine::manifest::{self, CellManifest};
use crate::fs::host;
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The paths of one cell's runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellPaths {
    pub name: String,
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub root: PathBuf,
    /// The writable layer: `overlay/`, or `disk/overlay/` once the cell has a
    /// disk image (see [`disk`]).
    pub overlay: PathBuf,
    pub state: PathBuf,
    pub disk_image: PathBuf,
    pub disk_mount: PathBuf,
    /// Where a base directory is mounted idmapped for the cell's user
    /// namespace, as the lower layer of its overlay.
    pub lower: PathBuf,
}

impl CellPaths {
    /// The cell's paths; finding where its writable layer is takes a look
    /// at the disk: [`CellPaths::conf_of`] and [`CellPaths::state_of`] need none.
    pub fn new(cfg: &Config, name: &str) -> CellPaths {
        let dir = cfg.data_dir.join(name);
        let disk_image = dir.join("disk.img");
        let disk_mount = dir.join("disk");
        CellPaths {
            name: name.to_string(),
            conf: Self::conf_of(cfg, name),
            root: dir.join("root"),
            overlay: if disk_image.exists() {
                disk_mount.join("overlay")
            } else {
                dir.join("overlay")
            },
            state: Self::state_of(cfg, name),
            disk_image,
            disk_mount,
            lower: dir.join("lower"),
            dir,
        }
    }

    /// The rendered `cell.conf` of a cell (as [`CellPaths::conf`]).
    pub fn conf_of(cfg: &Config, name: &str) -> PathBuf {
        cfg.data_dir.join(name).join("cell.conf")
    }

    /// The state directory of a cell (as [`CellPaths::state`]).
    pub fn state_of(cfg: &Config, name: &str) -> PathBuf {
        cfg.data_dir.join(name).join("state")
    }

    /// The recorded mounts (see [`compose`]).
    pub fn mounts_file(&self) -> PathBuf {
        self.state.join("mounts")
    }

    pub fn health_file(&self) -> PathBuf {
        self.state.join("health")
    }
}

/// Reads the rendered `cell.conf`, if there is one.
pub fn load_rendered(cfg: &Config, name: &str) -> Result<Option<CellManifest>> {
    manifest::load_cell_file(cfg, &CellPaths::new(cfg, name).conf, name)
}

/// `dir`'s entries as (file name, is a directory); none when `dir` is missing.
fn dir_entries(dir: &Path) -> Result<Vec<(OsString, bool)>> {
    Ok(host::dir_entries(dir)?
        .into_iter()
        .map(|e| (e.file_name(), e.file_type().is_ok_and(|t| t.is_dir())))
        .collect())
}

/// Names of every cell directory under `data_dir` (rendered or debris), sorted.
/// Entries that are not valid cell names (the lock file, temporary files) are skipped.
pub fn runtime_dirs(cfg: &Config) -> Result<Vec<String>> {
    let mut out: Vec<String> = dir_entries(&cfg.data_dir)?
        .into_iter()
        .filter_map(|(name, is_dir)| {
            let name = name.into_string().ok()?;
            (is_dir && crate::names::validate("cell", &name).is_ok()).then_some(name)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The volume's runtime directory.
pub fn volume_dir(cfg: &Config, name: &str) -> PathBuf {
    cfg.volume_dir.join(name)
}

/// Names of every volume directory under `volume_dir`, sorted.
pub fn volume_dirs(cfg: &Config) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (name, is_dir) in dir_entries(&cfg.volume_dir)? {
        match name.into_string() {
            Ok(name) if crate::names::is_valid(&name) && is_dir => out.push(name),
            Ok(name) if name.starts_with('.') => {}
            other => log::warn!(
                "skipping {} in {}: not a valid volume name",
                crate::output::quoted(&other.unwrap_or_else(|n| n.to_string_lossy().into_owned())),
                cfg.volume_dir.display()
            ),
        }
    }
    out.sort();
    Ok(out)
}

/// Creates a volume's directory if missing and applies its mode. The volume
/// directory above it is private (0700): host users never reach a volume's
/// files, whatever modes the cells give them.
pub fn ensure_volume(cfg: &Config, name: &str, mode: Option<u32>) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    crate::fs::host::private_dir(&cfg.volume_dir)?;
    let dir = volume_dir(cfg, name);
    // host path: an entry of the root-only volume directory
    match std::fs::DirBuilder::new().mode(0o755).create(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(e).with_context(|| format!("creating volume {}", dir.display()))
        }
        _ => {}
    }
    if let Some(mode) = mode {
        // The entry itself is root's (only root writes the volume directory):
        // held by an fd that does not follow a link, its mode set through it.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&dir)
            .with_context(|| format!("opening volume {}", dir.display()))?;
        rustix::fs::fchmod(&f, rustix::fs::Mode::from_raw_mode(mode))
            .with_context(|| format!("setting mode {mode:04o} on {}", dir.display()))?;
    }
    Ok(dir)
}
