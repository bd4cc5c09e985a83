//! Resolving a path below a directory fd so that the result is always inside
//! it, whatever links the tree holds and however they change meanwhile.
//!
//! Linux: one `openat2(2)` call. [`Links::InRoot`] is `RESOLVE_IN_ROOT`: the
//! kernel resolves the path as if the fd were `/` (absolute link targets and
//! `..` stay below it), which is exactly how the cell's own processes see the
//! tree. [`Links::Refuse`] is `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: any link
//! on the way is an error. Both add `RESOLVE_NO_MAGICLINKS` (no `/proc/*/fd`
//! jumps). The kernel does the walk atomically with respect to renames, which
//! is what closes the check-then-use gap: there is no "check" separate from the
//! use. Linux before 5.6 has no `openat2`; [`require_openat2`] refuses to work
//! there rather than fall back to something weaker.
//!
//! Elsewhere (NetBSD): [`walk`], one component at a time with
//! `openat(O_NOFOLLOW|O_DIRECTORY)` from the fd, reading each link and
//! restarting from the root fd for absolute targets, clamping `..` at the
//! root. Each step holds a directory fd, so a rename of an earlier component
//! cannot move the walk outside. It is compiled and unit-tested on Linux too.

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

/// How symbolic links inside a tree are treated while resolving a path in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// As the cell sees them: followed, with absolute targets and `..`
    /// relative to the tree's root, never leaving it.
    InRoot,
    /// Not at all: a link anywhere on the path is an error (`ELOOP`), and so
    /// is `..` above the root (`EXDEV`).
    Refuse,
}

/// Enough for any sane tree (the kernel's own limit); guards against loops.
const MAX_LINKS: usize = 40;

/// `path` made relative to the tree root (a leading `/` dropped; empty is `.`).
pub fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Opens `path` below `root` with `flags` (`O_CLOEXEC` is added; `O_CREAT` is
/// not supported: create with `*at` calls on a resolved directory). With
/// `O_NOFOLLOW` in `flags`, a link in the last component is opened (`O_PATH`)
/// or refused, as `openat(2)` would.
pub fn open(
    root: BorrowedFd,
    path: &Path,
    flags: OFlags,
    links: Links,
) -> rustix::io::Result<OwnedFd> {
    debug_assert!(!flags.contains(OFlags::CREATE));
    #[cfg(target_os = "linux")]
    {
        openat2_in(root, path, flags, links)
    }
    #[cfg(not(target_os = "linux"))]
    {
        walk(root, path, flags, links)
    }
}

#[cfg(target_os = "linux")]
fn openat2_in(
    root: BorrowedFd,
    path: &Path,
    flags: OFlags,
    links: Links,
) -> rustix::io::Result<OwnedFd> {
    use rustix::fs::ResolveFlags;
    let resolve = ResolveFlags::NO_MAGICLINKS
        | match links {
            Links::InRoot => ResolveFlags::IN_ROOT,
            Links::Refuse => ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        };
    let rel = relative(path);
    // EAGAIN: a rename elsewhere raced a `..` step; the kernel asks to retry.
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(root, &rel, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries < 64 => tries += 1,
            other => return other,
        }
    }
}

/// Fails with a sentence when the kernel cannot resolve safely (Linux before
/// 5.6 has no `openat2`). Checked once per process.
pub fn require_openat2() -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    {
        static CHECK: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
        let r = CHECK.get_or_init(|| {
            let cwd = rustix::fs::CWD;
            match openat2_in(cwd, Path::new("."), OFlags::PATH | OFlags::DIRECTORY, Links::Refuse) {
                Err(Errno::NOSYS) => Err(
                    "this kernel has no openat2(2): cellmgr needs Linux 5.6 or later to work inside cell trees without following the cells' links"
                        .to_string(),
                ),
                _ => Ok(()),
            }
        });
        r.clone().map_err(anyhow::Error::msg)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(())
}

/// The portable resolution: one component at a time from `root`, never
/// following a link the kernel would resolve against the host's `/` (see the
/// module comment). Same contract as [`open`].
pub fn walk(
    root: BorrowedFd,
    path: &Path,
    flags: OFlags,
    links: Links,
) -> rustix::io::Result<OwnedFd> {
    let nofollow_last = flags.contains(OFlags::NOFOLLOW);
    let mut pending: VecDeque<OsString> = parts(path);
    // Directories entered below the root; empty means "at the root".
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut followed = 0usize;
    loop {
        let cur = stack.last().map(|f| f.as_fd()).unwrap_or(root);
        let Some(name) = pending.pop_front() else {
            // The path named a directory already entered (or the root).
            return rustix::fs::openat(cur, ".", flags | OFlags::CLOEXEC, Mode::empty());
        };
        if name == ".." {
            if stack.pop().is_none() && links == Links::Refuse {
                return Err(Errno::XDEV);
            }
            continue;
        }
        let last = pending.is_empty();
        let step = if last {
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC
        } else {
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        let opened = rustix::fs::openat(cur, &name, step, Mode::empty());
        // A link shows as an error (ELOOP; NetBSD: EFTYPE), or as an O_PATH fd
        // of the link itself on Linux.
        let is_link = match &opened {
            Ok(fd) => rustix::fs::fstat(fd)
                .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
                .unwrap_or(false),
            Err(_) => rustix::fs::statat(cur, &name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)
                .unwrap_or(false),
        };
        if !is_link || (last && nofollow_last) {
            let fd = opened?;
            if last {
                return Ok(fd);
            }
            stack.push(fd);
            continue;
        }
        if links == Links::Refuse {
            return Err(Errno::LOOP);
        }
        followed += 1;
        if followed > MAX_LINKS {
            return Err(Errno::LOOP);
        }
        let target = rustix::fs::readlinkat(cur, &name, Vec::new())?;
        let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
        if target.is_absolute() {
            stack.clear();
        }
        let mut rest = parts(&target);
        rest.extend(pending.drain(..));
        pending = rest;
    }
}

/// Opens the directory `name` (one component) of `dir` without following a
/// link and without crossing into another mount: `EXDEV` for a mount point
/// (Linux: `RESOLVE_NO_XDEV`, which also sees bind mounts of the same file
/// system; elsewhere: a different device number), `ELOOP`/`ENOTDIR` for
/// anything but a directory.
pub fn open_subdir_same_mount(
    dir: BorrowedFd,
    name: &std::ffi::OsStr,
) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::ResolveFlags;
        let resolve = ResolveFlags::BENEATH
            | ResolveFlags::NO_SYMLINKS
            | ResolveFlags::NO_MAGICLINKS
            | ResolveFlags::NO_XDEV;
        loop {
            match rustix::fs::openat2(dir, name, flags, Mode::empty(), resolve) {
                Err(Errno::AGAIN) => continue,
                other => return other,
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
        if rustix::fs::fstat(&fd)?.st_dev != rustix::fs::fstat(dir)?.st_dev {
            return Err(Errno::XDEV);
        }
        Ok(fd)
    }
}

/// The normal and `..` components of a path (root and `.` dropped).
fn parts(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// Where an fd points, as a path.
    fn path_of(fd: &OwnedFd) -> PathBuf {
        use std::os::fd::AsRawFd;
        fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
    }

    fn tree() -> (TempDir, fs::File) {
        let t = TempDir::new("resolve");
        let root = t.join("root");
        fs::create_dir_all(root.join("real/dir")).unwrap();
        fs::create_dir_all(t.join("outside")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("real/dir", root.join("rel")).unwrap();
        symlink("../../outside", root.join("up")).unwrap();
        symlink(t.join("outside"), root.join("host")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        fs::write(root.join("real/dir/f"), "x").unwrap();
        let fd = fs::File::open(&root).unwrap();
        (t, fd)
    }

    /// Both resolvers give the same answers: the kernel's (Linux) and the walk
    /// that NetBSD uses.
    fn both(
        root: &fs::File,
        path: &str,
        flags: OFlags,
        links: Links,
    ) -> Vec<Result<PathBuf, Errno>> {
        let a = open(root.as_fd(), Path::new(path), flags, links).map(|f| path_of(&f));
        let b = walk(root.as_fd(), Path::new(path), flags, links).map(|f| path_of(&f));
        vec![a, b]
    }

    #[test]
    fn links_resolve_as_the_cell_sees_them_and_never_leave() {
        let (t, root) = tree();
        let r = t.join("root");
        let ro = OFlags::RDONLY;
        for got in both(&root, "/abs/dir/f", ro, Links::InRoot) {
            assert_eq!(got.unwrap(), r.join("real/dir/f"));
        }
        for got in both(&root, "rel/../dir/f", ro, Links::InRoot) {
            assert_eq!(got.unwrap(), r.join("real/dir/f"));
        }
        // `..` and absolute host paths are clamped to the root.
        for got in both(&root, "/../../real", ro, Links::InRoot) {
            assert_eq!(got.unwrap(), r.join("real"));
        }
        for got in both(&root, "up", ro, Links::InRoot) {
            assert_eq!(got.unwrap_err(), Errno::NOENT);
        }
        for got in both(&root, "host", ro, Links::InRoot) {
            assert_eq!(got.unwrap_err(), Errno::NOENT);
        }
        for got in both(&root, "loop", ro, Links::InRoot) {
            assert_eq!(got.unwrap_err(), Errno::LOOP);
        }
        // O_NOFOLLOW|O_PATH opens the link itself.
        for got in both(&root, "abs", OFlags::PATH | OFlags::NOFOLLOW, Links::InRoot) {
            assert_eq!(got.unwrap(), r.join("abs"));
        }
        for got in both(&root, "", OFlags::RDONLY | OFlags::DIRECTORY, Links::InRoot) {
            assert_eq!(got.unwrap(), r);
        }
    }

    #[test]
    fn refusing_links_refuses_every_one() {
        let (t, root) = tree();
        let r = t.join("root");
        for got in both(&root, "real/dir/f", OFlags::RDONLY, Links::Refuse) {
            assert_eq!(got.unwrap(), r.join("real/dir/f"));
        }
        for path in ["abs/dir", "rel", "host"] {
            for got in both(&root, path, OFlags::RDONLY, Links::Refuse) {
                assert_eq!(got.unwrap_err(), Errno::LOOP, "{path}");
            }
        }
        for got in both(&root, "../x", OFlags::RDONLY, Links::Refuse) {
            assert_eq!(got.unwrap_err(), Errno::XDEV);
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative(Path::new("/")), Path::new("."));
        assert_eq!(relative(Path::new("/etc/passwd")), Path::new("etc/passwd"));
        assert_eq!(relative(Path::new("etc")), Path::new("etc"));
    }
}
