//! Archives store ids as the cell sees them (0 is the cell's root), whatever
//! host ids its files are on (Linux: a cell's or a volume's range, see
//! `engine::ids`), so an archive restores into any range, and one made
//! before cells had ranges (host ids, which were the cell's ids then) is
//! the same format.
//!
//! tar reads and writes the tree through a [`View`]: on a range, a detached
//! idmapped copy of the tree's mount (`fs::mount::clone_tree`) reached at
//! `/proc/self/fd/N` (tar's working directory, set before it execs), which
//! shows the range's ids as `0..` and writes them back shifted, file
//! capabilities and ACLs included; on host ids, the tree itself.

use crate::fs::ids::IdRange;
use anyhow::Result;
use std::path::{Path, PathBuf};

pub struct View {
    path: PathBuf,
    #[cfg(target_os = "linux")]
    _mount: Option<std::os::fd::OwnedFd>,
}

impl View {
    /// `dir` as the cell sees it, for files on `stored` (`None`: host ids).
    #[cfg(target_os = "linux")]
    pub fn of(dir: &Path, stored: Option<IdRange>) -> Result<View> {
        use std::os::fd::AsRawFd;
        let Some(r) = stored else {
            return Ok(View {
                path: dir.to_path_buf(),
                _mount: None,
            });
        };
        let idmap = crate::fs::mount::Idmap::new(r.base, 0, r.mapped())?;
        let mount = crate::fs::mount::clone_tree(dir, Some(&idmap))?;
        Ok(View {
            path: PathBuf::from(format!("/proc/self/fd/{}", mount.as_raw_fd())),
            _mount: Some(mount),
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn of(dir: &Path, _stored: Option<IdRange>) -> Result<View> {
        Ok(View {
            path: dir.to_path_buf(),
        })
    }

    /// Where tar works (valid in this process and its children until exec).
    pub fn path(&self) -> &Path {
        &self.path
    }
}
