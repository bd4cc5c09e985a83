//! Replacing a directory tree so that a crash at any point leaves either the old
//! or the new tree at its path, never a mix.
//!
//! The new tree is built in a staging directory next to the target (same file
//! system, so renames are atomic). On Linux the two are exchanged with one
//! `renameat2(RENAME_EXCHANGE)`; elsewhere the old tree is first renamed to a
//! `prev` name, then the new one renamed in. Leftovers of an interrupted run are
//! resolved by [`recover`], which every backup command runs first: a missing target
//! with a `prev` tree gets the old tree back; otherwise staging and `prev` go.
//!
//! Staging names start with a dot and contain `~`, which no cell or volume name may
//! contain, so they can never collide with one or be listed as one.

use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// The directories of one replacement.
#[derive(Debug, Clone)]
pub struct Swap {
    pub target: PathBuf,
    /// Where the new tree is built.
    pub staging: PathBuf,
    /// Where the old tree waits until the new one is in place (non-Linux).
    pub prev: PathBuf,
}

impl Swap {
    pub fn new(target: &Path) -> Result<Swap> {
        let parent = target
            .parent()
            .with_context(|| format!("{}: has no parent directory", target.display()))?;
        let base = target
            .file_name()
            .with_context(|| format!("{}: has no file name", target.display()))?
            .to_string_lossy();
        Ok(Swap {
            target: target.to_path_buf(),
            staging: parent.join(format!(".{base}~restore-new")),
            prev: parent.join(format!(".{base}~restore-prev")),
        })
    }

    /// The name of the tree a staging or previous-data directory belongs to
    /// (`web` for `.web~restore-new`); `None` for anything else.
    pub fn target_name(file_name: &str) -> Option<String> {
        let base = file_name.strip_prefix('.')?;
        let name = base
            .strip_suffix("~restore-new")
            .or_else(|| base.strip_suffix("~restore-prev"))?;
        crate::names::is_valid(name).then(|| name.to_string())
    }

    /// Brings an interrupted replacement to a clean state (old or new tree at the
    /// target, no leftovers). Returns what it did, for the log.
    pub fn recover(&self) -> Result<Option<String>> {
        let mut did = Vec::new();
        // The previous tree first: where there is none (every cell at every
        // apply), the target needs no look.
        let mut prev = exists(&self.prev);
        if prev && !exists(&self.target) {
            rename(&self.prev, &self.target).with_context(|| {
                format!(
                    "moving the previous data {} back to {}",
                    self.prev.display(),
                    self.target.display()
                )
            })?;
            sync_parent(&self.target)?;
            did.push(format!(
                "put the previous data back at {}",
                self.target.display()
            ));
            prev = false;
        }
        for (leftover, there) in [(&self.staging, exists(&self.staging)), (&self.prev, prev)] {
            if there {
                remove_tree(leftover)?;
                did.push(format!("removed {}", leftover.display()));
            }
        }
        Ok((!did.is_empty()).then(|| did.join("; ")))
    }

    /// Creates an empty staging directory (mode 0700 until the archive's own
    /// top-level entry sets the real one).
    pub fn prepare(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(parent) = self.target.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&self.staging)
            .with_context(|| format!("creating {}", self.staging.display()))
    }

    /// Flushes the staged tree to disk, then puts it in place and drops the old one.
    pub fn commit(&self) -> Result<()> {
        let t = std::time::Instant::now();
        sync_filesystem(&self.staging)?;
        log::debug!("synced {} in {:?}", self.staging.display(), t.elapsed());
        let t = std::time::Instant::now();
        if exists(&self.target) {
            self.replace_existing(t)?;
        } else {
            rename(&self.staging, &self.target).with_context(|| {
                format!(
                    "renaming {} to {}",
                    self.staging.display(),
                    self.target.display()
                )
            })?;
            sync_parent(&self.target)?;
            log::debug!("renamed the new tree in place in {:?}", t.elapsed());
        }
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn replace_existing(&self, t: std::time::Instant) -> Result<()> {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        renameat_with(CWD, &self.staging, CWD, &self.target, RenameFlags::EXCHANGE).with_context(
            || {
                format!(
                    "exchanging {} with {}",
                    self.staging.display(),
                    self.target.display()
                )
            },
        )?;
        log::debug!("exchanged the trees in {:?}", t.elapsed());
        // The staging name now holds the old tree.
        self.drop_old(&self.staging);
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn replace_existing(&self, t: std::time::Instant) -> Result<()> {
        rename(&self.target, &self.prev).with_context(|| {
            format!(
                "renaming {} to {}",
                self.target.display(),
                self.prev.display()
            )
        })?;
        if let Err(e) = rename(&self.staging, &self.target) {
            // Put the old tree back; `recover` does the same after a crash here.
            let _ = rename(&self.prev, &self.target);
            return Err(e).with_context(|| {
                format!(
                    "renaming {} to {}",
                    self.staging.display(),
                    self.target.display()
                )
            });
        }
        log::debug!("swapped the trees in {:?}", t.elapsed());
        self.drop_old(&self.prev);
        Ok(())
    }

    /// After the swap the new tree is in place whatever happens here: failures
    /// are warnings, and the next run's [`Swap::recover`] finishes the job.
    fn drop_old(&self, old: &Path) {
        let t = std::time::Instant::now();
        match sync_parent(&self.target).and_then(|()| remove_tree(old)) {
            Ok(()) => log::debug!("removed the previous tree in {:?}", t.elapsed()),
            Err(e) => log::warn!(
                "{}: the restored data is in place, but the previous data could not be removed: {e:#}",
                self.target.display()
            ),
        }
    }

    /// Drops a staging tree after a failed restore.
    pub fn abort(&self) {
        if exists(&self.staging) {
            if let Err(e) = remove_tree(&self.staging) {
                log::warn!("{e:#}");
            }
        }
    }
}

/// Renames one entry of the target's parent to another. Host path: that
/// directory is root's alone (the volume directory, a cell's runtime, 0700);
/// the trees themselves are never entered by path.
fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::rename(from, to) // host path: entries of a root-only directory
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// The trees hold a cell's data: removed without following links or entering mounts.
fn remove_tree(p: &Path) -> Result<()> {
    crate::fs::tree::remove_host_tree(p)
}

fn sync_parent(p: &Path) -> Result<()> {
    let parent = p.parent().unwrap_or(Path::new("/"));
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", parent.display()))
}

/// Everything written into the staging tree must be on disk before it replaces
/// the live data, or a power cut after the swap could leave empty files.
fn sync_filesystem(p: &Path) -> Result<()> {
    let dir = fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    #[cfg(target_os = "linux")]
    rustix::fs::syncfs(&dir)
        .with_context(|| format!("syncing the file system of {}", p.display()))?;
    #[cfg(not(target_os = "linux"))]
    {
        drop(dir);
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn scratch(tag: &str) -> TempDir {
        TempDir::new(&format!("swap-{tag}"))
    }

    #[test]
    fn commit_replaces_the_tree_and_leaves_nothing_behind() {
        let d = scratch("commit");
        let s = Swap::new(&d.join("vol")).unwrap();
        fs::create_dir(&s.target).unwrap();
        fs::write(s.target.join("old"), b"1").unwrap();
        s.prepare().unwrap();
        fs::write(s.staging.join("new"), b"2").unwrap();
        s.commit().unwrap();
        assert!(s.target.join("new").exists() && !s.target.join("old").exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        // Also when the target did not exist (a lost disk).
        fs::remove_dir_all(&s.target).unwrap();
        s.prepare().unwrap();
        s.commit().unwrap();
        assert!(s.target.is_dir());
    }

    #[test]
    fn recovery_restores_the_old_tree_or_keeps_the_new_one() {
        let d = scratch("recover");
        let s = Swap::new(&d.join("vol")).unwrap();
        // Crash between "old -> prev" and "new -> target": the old tree comes back.
        fs::create_dir(&s.prev).unwrap();
        fs::write(s.prev.join("old"), b"1").unwrap();
        fs::create_dir(&s.staging).unwrap();
        assert!(s.recover().unwrap().is_some());
        assert!(s.target.join("old").exists());
        assert!(!s.prev.exists() && !s.staging.exists());
        // Crash after the new tree is in place: the leftovers go, the target stays.
        fs::create_dir(&s.prev).unwrap();
        fs::create_dir(&s.staging).unwrap();
        s.recover().unwrap();
        assert!(s.target.join("old").exists());
        assert!(!s.prev.exists() && !s.staging.exists());
        assert_eq!(s.recover().unwrap(), None);
    }

    #[test]
    fn staging_names_are_no_valid_names() {
        let s = Swap::new(Path::new("/v/web")).unwrap();
        for p in [&s.staging, &s.prev] {
            let n = p.file_name().unwrap().to_str().unwrap();
            assert!(!crate::names::is_valid(n), "{n}");
            assert_eq!(Swap::target_name(n).as_deref(), Some("web"));
        }
        assert_eq!(Swap::target_name("web"), None);
        assert_eq!(Swap::target_name(".web~restore-old"), None);
    }
}
