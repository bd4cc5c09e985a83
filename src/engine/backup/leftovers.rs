//! What interrupted backups and restores leave behind, and its removal:
//! partial archives of processes that are gone, sidecars whose archive never
//! appeared and sidecars half written (in the archive directories), and the
//! staging trees of restores beside a volume or a cell's overlay (see
//! [`Swap`]). Every backup command settles its own name's first; `apply`
//! sweeps every name; removing a volume or a cell removes its own.
//!
//! Callers hold the cellmgr lock, so no backup or restore runs meanwhile.

use super::{archive_dir, naming, source_dir, swap::Swap, Kind};
use crate::config::Config;
use anyhow::Result;
use std::fs;

/// Whose leftovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Of<'a> {
    Name(&'a str),
    All,
}

impl Of<'_> {
    fn owns(self, archive: &str) -> bool {
        match self {
            Of::Name(n) => naming::archive_time(n, archive).is_some(),
            Of::All => naming::archive_owner(archive).is_some(),
        }
    }
}

/// Removes the leftovers of interrupted creates in `kind`'s archive
/// directory; one line per file removed.
pub fn clean_archives(cfg: &Config, kind: Kind, of: Of) -> Vec<String> {
    let dir = archive_dir(cfg, kind);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let stale = if let Some(rest) = file
            .strip_prefix('.')
            .and_then(|f| f.strip_suffix(".partial"))
        {
            let (archive, pid) = rest.rsplit_once('.').unwrap_or((rest, ""));
            of.owns(archive) && !process_alive(pid)
        } else if let Some(stem) = file.strip_suffix(naming::SIDECAR_SUFFIX) {
            let archive = format!("{stem}{}", naming::ARCHIVE_SUFFIX);
            of.owns(&archive) && !dir.join(&archive).exists()
        } else if let Some(stem) =
            crate::fs::temp_base(&file).and_then(|base| base.strip_suffix(naming::SIDECAR_SUFFIX))
        {
            // A sidecar's atomic write cut short (no backup runs: the lock).
            of.owns(&format!("{stem}{}", naming::ARCHIVE_SUFFIX))
        } else {
            false
        };
        if stale && fs::remove_file(entry.path()).is_ok() {
            removed.push(format!(
                "removed {}, left by an interrupted backup",
                entry.path().display()
            ));
        }
    }
    removed
}

/// Settles interrupted restores: the old or the new tree in place, no
/// staging left. One line per thing done.
pub fn settle_restores(cfg: &Config, kind: Kind, of: Of) -> Result<Vec<String>> {
    let names: Vec<String> = match of {
        Of::Name(n) => vec![n.to_string()],
        Of::All => match kind {
            // Staging trees sit beside the volumes, named after them.
            Kind::Volume => crate::fs::host::dir_entries(&cfg.volume_dir)?
                .iter()
                .filter_map(|e| Swap::target_name(&e.file_name().to_string_lossy()))
                .collect(),
            Kind::Cell => crate::engine::runtime::runtime_dirs(cfg)?,
        },
    };
    let mut did = Vec::new();
    for name in names {
        if let Some(d) = Swap::new(&source_dir(cfg, kind, &name))?.recover()? {
            did.push(format!("finished an interrupted restore: {d}"));
        }
    }
    Ok(did)
}

/// Everything interrupted backups and restores left, of every name (`apply`).
pub fn sweep(cfg: &Config) -> Result<Vec<String>> {
    let mut did = Vec::new();
    for kind in [Kind::Volume, Kind::Cell] {
        did.extend(settle_restores(cfg, kind, Of::All)?);
        did.extend(clean_archives(cfg, kind, Of::All));
    }
    Ok(did)
}

/// When a volume's data or a cell's runtime is removed: its staging trees
/// (a restore's new and previous data: not put back) and the leftovers of its
/// interrupted backups. The archives themselves stay.
pub fn forget(cfg: &Config, kind: Kind, name: &str) -> Result<Vec<String>> {
    let swap = Swap::new(&source_dir(cfg, kind, name))?;
    let mut did = Vec::new();
    for tree in [&swap.staging, &swap.prev] {
        if fs::symlink_metadata(tree).is_ok() {
            fs::remove_dir_all(tree)
                .map_err(anyhow::Error::from)
                .map_err(|e| e.context(format!("removing {}", tree.display())))?;
            did.push(format!("removed {}", tree.display()));
        }
    }
    did.extend(clean_archives(cfg, kind, Of::Name(name)));
    Ok(did)
}

fn process_alive(pid: &str) -> bool {
    match pid.parse::<i32>() {
        // SAFETY: signal 0 only checks whether the process exists.
        Ok(p) if p > 0 => unsafe { libc::kill(p, 0) == 0 },
        _ => false,
    }
}
