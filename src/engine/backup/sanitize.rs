//! What a restore keeps of an archive. An archive is data from a cell (and,
//! unsigned, possibly from whoever could write the backup directory), so the
//! extracted tree is checked before it replaces the live one:
//!
//! * device nodes, fifos and sockets are refused (a device node in a volume
//!   would hand the cell the device; the cell's own layer has only overlayfs
//!   whiteouts, 0:0 character devices, which are kept);
//! * set-uid and set-gid bits and file capabilities (`security.capability`)
//!   are removed from regular files unless `--keep-setid` is given: a program
//!   the cell made privileged is not privileged after a restore;
//! * the top directory keeps the mode, owner and times of the live tree it
//!   replaces (or the volume's declared mode, owned by the cell's root), never
//!   the archive's.
//!
//! The staging tree lives in a directory only root can reach and no cell has
//! mounted, and it is walked through [`crate::fs::tree`] with links refused.

use super::Kind;
use crate::fs::tree::{Dir, Kind as Entry, Links, Meta, Tree};
use anyhow::{bail, Result};
use rustix::fs::{Mode, OFlags};
use std::ffi::OsStr;
use std::path::Path;

/// The top directory's attributes after the restore (host ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootAttrs {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What the cleaning changed, for the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Regular files that lost set-id bits or file capabilities.
    pub stripped: usize,
}

/// Checks and cleans the extracted tree at `staging` (see the module comment).
pub fn staged(staging: &Path, kind: Kind, keep_setid: bool, root: RootAttrs) -> Result<Cleaned> {
    let tree = Tree::open(staging, Links::Refuse)?;
    let mut cleaned = Cleaned::default();
    tree.visit(Path::new(""), &mut |dir, name, meta| {
        match meta.kind {
            Entry::Special if !(kind == Kind::Cell && is_whiteout(meta)) => bail!(
                "the archive holds {} at {}: restore refuses device nodes, fifos and sockets",
                special_name(meta),
                dir.path().join(name).display()
            ),
            Entry::File if !keep_setid => cleaned.stripped += usize::from(strip(dir, name, meta)?),
            _ => {}
        }
        Ok(())
    })?;
    let top = tree.dir(Path::new(""))?;
    let fd = top.fd();
    rustix::fs::fchown(
        fd,
        // SAFETY: ids from stat or the id map, never -1.
        Some(unsafe { rustix::fs::Uid::from_raw(root.uid) }),
        Some(unsafe { rustix::fs::Gid::from_raw(root.gid) }),
    )?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(root.mode))?;
    let now = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    };
    rustix::fs::futimens(
        fd,
        &rustix::fs::Timestamps {
            last_access: now,
            last_modification: now,
        },
    )?;
    Ok(cleaned)
}

/// overlayfs records a deleted file as a 0:0 character device.
fn is_whiteout(meta: &Meta) -> bool {
    meta.st_mode & libc::S_IFMT == libc::S_IFCHR && meta.rdev == 0
}

fn special_name(meta: &Meta) -> &'static str {
    match meta.st_mode & libc::S_IFMT {
        libc::S_IFCHR | libc::S_IFBLK => "a device node",
        libc::S_IFIFO => "a fifo",
        libc::S_IFSOCK => "a socket",
        _ => "a special file",
    }
}

/// Removes set-id bits and file capabilities from one regular file, through
/// its fd; returns whether it had any.
fn strip(dir: &Dir, name: &OsStr, meta: &Meta) -> Result<bool> {
    let fd = rustix::fs::openat(
        dir.fd(),
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut had = false;
    if meta.mode & 0o6000 != 0 {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode & !0o6000))?;
        had = true;
    }
    #[cfg(target_os = "linux")]
    match rustix::fs::fremovexattr(&fd, "security.capability") {
        Ok(()) => had = true,
        Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(had)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn attrs() -> RootAttrs {
        RootAttrs {
            mode: 0o750,
            uid: unsafe { libc::geteuid() },
            gid: unsafe { libc::getegid() },
        }
    }

    #[test]
    fn set_id_bits_go_unless_kept_and_the_top_directory_is_ours() {
        let t = TempDir::new("sanitize");
        let s = t.join("staging");
        fs::create_dir_all(s.join("bin")).unwrap();
        fs::write(s.join("bin/su"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(s.join("bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::set_permissions(&s, fs::Permissions::from_mode(0o777)).unwrap();
        let c = staged(&s, Kind::Volume, true, attrs()).unwrap();
        assert_eq!(c.stripped, 0);
        assert_eq!(
            fs::metadata(s.join("bin/su")).unwrap().mode() & 0o7777,
            0o4755
        );
        let c = staged(&s, Kind::Volume, false, attrs()).unwrap();
        assert_eq!(c.stripped, 1);
        assert_eq!(
            fs::metadata(s.join("bin/su")).unwrap().mode() & 0o7777,
            0o755
        );
        assert_eq!(fs::metadata(&s).unwrap().mode() & 0o7777, 0o750);
    }

    #[test]
    fn fifos_are_refused() {
        let t = TempDir::new("sanitize-fifo");
        let s = t.join("staging");
        fs::create_dir_all(s.join("run")).unwrap();
        let p = std::ffi::CString::new(s.join("run/pipe").to_str().unwrap()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(p.as_ptr(), 0o600) }, 0);
        let e = staged(&s, Kind::Cell, false, attrs()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the archive holds a fifo at /run/pipe: restore refuses device nodes, fifos and sockets"
        );
    }
}
