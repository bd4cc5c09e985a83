//! Mounts into a cell's tree, made on file descriptors.
//!
//! `mount(2)` resolves its target path again, following links: a target
//! checked a moment earlier can be a link to a host directory by the time the
//! mount is made (a cell sharing a volume swaps it). On Linux the source is
//! cloned with `open_tree(OPEN_TREE_CLONE)`, its flags set on the detached
//! copy with `mount_setattr` (Linux 5.12; older kernels remount it through
//! `/proc/self/fd` right after attaching), and it is attached with
//! `move_mount` onto the target's fd: no path inside the cell is resolved by
//! the mount itself. Unmounting resolves the mount point with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` below the cell's root and unmounts
//! through `/proc/self/fd`.
//!
//! A bind can be idmapped (`MOUNT_ATTR_IDMAP`, Linux 5.12): the ids stored
//! on disk are shown, and written, shifted by an [`Idmap`], so a host tree
//! (the base, a volume) appears with the owners a cell in a user namespace
//! expects while the disk keeps its own ids.
//!
//! NetBSD has no mount call on descriptors: its mounts are made by path by
//! `mount(8)` after the target was checked component by component, and the
//! cell is stopped while its root is composed (cellmgr(8), FILES AND LINKS).

use anyhow::{Context, Result};
#[cfg(target_os = "linux")]
use std::os::fd::BorrowedFd;
use std::path::Path;

/// Per-mount flags of a bind mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindFlags {
    pub read_only: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

impl BindFlags {
    /// What the host's base directories get: read-only, nothing else changed.
    pub const BASE: BindFlags = BindFlags {
        read_only: true,
        nosuid: false,
        nodev: false,
        noexec: false,
    };
}

/// How ids on disk relate to the ids a mount shows: ids `disk..disk+count`
/// on disk are ids `shown..shown+count` through the mount (and files made
/// through it get the disk ids back). Held as the user namespace that
/// carries the mapping, made for it and gone with the last mount using it.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub struct Idmap {
    userns: std::os::fd::OwnedFd,
}

#[cfg(target_os = "linux")]
impl Idmap {
    /// A mapping of `count` ids from `disk` on disk to `shown` as seen.
    pub fn new(disk: u32, shown: u32, count: u32) -> Result<Idmap> {
        let line = format!("{disk} {shown} {count}\n");
        Ok(Idmap {
            userns: user_namespace(&line)
                .with_context(|| format!("making an id mapping ({})", line.trim()))?,
        })
    }
}

/// A user namespace with `line` as its uid and gid map: a child is cloned
/// into a new one, waits while its maps are written and its namespace is
/// opened, then is killed.
///
/// Other threads (a parallel apply) fork at the same time, so each child
/// inherits the others' descriptors: the child closes all but its pipe at
/// once (it must not keep another thread's lock or pipe end open), and the
/// parent kills it rather than relying on the pipe's end, which another
/// thread's child may hold for a moment. The pipe only ends the child
/// when this process dies half-way.
#[cfg(target_os = "linux")]
fn user_namespace(line: &str) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, OwnedFd};
    let (hold_r, hold_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let mut args = [0u64; 11];
    args[0] = libc::CLONE_NEWUSER as u64;
    args[4] = libc::SIGCHLD as u64;
    // SAFETY: clone3 without CLONE_VM is a fork; the child only blocks on a
    // read (async-signal-safe) and exits.
    let pid = unsafe {
        let pid = libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), 88usize);
        if pid == 0 {
            let keep = hold_r.as_raw_fd() as libc::c_uint;
            if keep > 0 {
                libc::syscall(
                    libc::SYS_close_range,
                    0 as libc::c_uint,
                    keep - 1,
                    0 as libc::c_uint,
                );
            }
            libc::syscall(
                libc::SYS_close_range,
                keep + 1,
                libc::c_uint::MAX,
                0 as libc::c_uint,
            );
            let mut b = 0u8;
            libc::read(keep as libc::c_int, (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
        pid
    };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("cloning into a user namespace");
    }
    let pid = pid as libc::pid_t;
    let made = (|| -> Result<OwnedFd> {
        for map in ["uid_map", "gid_map"] {
            let path = format!("/proc/{pid}/{map}");
            std::fs::write(&path, line).with_context(|| format!("writing {path}"))?;
        }
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .context("opening the user namespace")?;
        Ok(OwnedFd::from(ns))
    })();
    drop(hold_w);
    // SAFETY: ends and reaps the child made above, ours by its pid.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        while libc::waitpid(pid, std::ptr::null_mut(), 0) < 0
            && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {}
    }
    drop(hold_r);
    made
}

/// Binds the host directory `source` (a path host root controls) onto the
/// directory held by `target` (an fd opened safely inside the cell's tree),
/// idmapped when `idmap` is given.
#[cfg(target_os = "linux")]
pub fn bind(
    source: &Path,
    target: BorrowedFd,
    flags: BindFlags,
    idmap: Option<&Idmap>,
) -> Result<()> {
    use rustix::mount::{move_mount, MoveMountFlags};
    let tree = clone_tree(source, idmap)?;
    let set_before = match set_attrs(&tree, flags, None) {
        Ok(()) => true,
        Err(rustix::io::Errno::NOSYS) if idmap.is_none() => false,
        Err(e) => {
            return Err(e).with_context(|| format!("setting mount flags on {}", source.display()))
        }
    };
    move_mount(
        std::os::fd::AsFd::as_fd(&tree),
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .with_context(|| format!("attaching {}", source.display()))?;
    if !set_before {
        remount_fd(&tree, flags)
            .with_context(|| format!("setting mount flags on {}", source.display()))?;
    }
    Ok(())
}

/// A detached copy of the mount at `source` (not of mounts below it),
/// idmapped when `idmap` is given: attach it with `move_mount`, or use it
/// through its fd (`/proc/self/fd/N`) and drop it.
#[cfg(target_os = "linux")]
pub fn clone_tree(source: &Path, idmap: Option<&Idmap>) -> Result<std::os::fd::OwnedFd> {
    use rustix::mount::{open_tree, OpenTreeFlags};
    let tree = open_tree(
        rustix::fs::CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("cloning the mount of {}", source.display()))?;
    if let Some(idmap) = idmap {
        set_attrs(&tree, BindFlags::default(), Some(idmap)).map_err(|e| {
            let why = match e {
                rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS => {
                    ": the kernel or this file system cannot idmap mounts (Linux 5.12 and \
                     ext4, xfs, btrfs, tmpfs and others can); set CELL_USERNS=NO in \
                     cellmgr.conf to keep cells on host ids"
                        .to_string()
                }
                e => format!(": {e}"),
            };
            anyhow::anyhow!("idmapping the mount of {}{why}", source.display())
        })?;
    }
    Ok(tree)
}

/// Attaches a detached mount (from [`clone_tree`]) at `target`, a path
/// host root controls (not one inside a cell's tree: use [`bind`]).
#[cfg(target_os = "linux")]
pub fn attach(tree: &std::os::fd::OwnedFd, target: &Path) -> Result<()> {
    use rustix::mount::{move_mount, MoveMountFlags};
    move_mount(
        std::os::fd::AsFd::as_fd(tree),
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .with_context(|| format!("attaching a mount at {}", target.display()))
}

/// `mount_setattr(2)` on a detached mount (Linux 5.12).
#[cfg(target_os = "linux")]
fn set_attrs(
    tree: &std::os::fd::OwnedFd,
    flags: BindFlags,
    idmap: Option<&Idmap>,
) -> rustix::io::Result<()> {
    use std::os::fd::AsRawFd;
    // struct mount_attr from <linux/mount.h>.
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const RDONLY: u64 = 0x1;
    const NOSUID: u64 = 0x2;
    const NODEV: u64 = 0x4;
    const NOEXEC: u64 = 0x8;
    const IDMAP: u64 = 0x10_0000;
    let mut set = 0;
    for (on, bit) in [
        (flags.read_only, RDONLY),
        (flags.nosuid, NOSUID),
        (flags.nodev, NODEV),
        (flags.noexec, NOEXEC),
    ] {
        if on {
            set |= bit;
        }
    }
    if idmap.is_some() {
        set |= IDMAP;
    }
    if set == 0 {
        return Ok(());
    }
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: idmap.map_or(0, |m| m.userns.as_raw_fd() as u64),
    };
    // SAFETY: a valid fd, a NUL-terminated empty path and a struct of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(
            rustix::io::Errno::from_io_error(&std::io::Error::last_os_error())
                .unwrap_or(rustix::io::Errno::INVAL),
        )
    }
}

/// The pre-5.12 way: remount the attached mount (the fd still names it).
#[cfg(target_os = "linux")]
fn remount_fd(tree: &std::os::fd::OwnedFd, flags: BindFlags) -> Result<()> {
    use rustix::mount::{mount_remount, MountFlags};
    use std::os::fd::AsRawFd;
    let mut f = MountFlags::BIND;
    for (on, bit) in [
        (flags.read_only, MountFlags::RDONLY),
        (flags.nosuid, MountFlags::NOSUID),
        (flags.nodev, MountFlags::NODEV),
        (flags.noexec, MountFlags::NOEXEC),
    ] {
        if on {
            f |= bit;
        }
    }
    if f == MountFlags::BIND {
        return Ok(());
    }
    mount_remount(format!("/proc/self/fd/{}", tree.as_raw_fd()), f, "")?;
    Ok(())
}

/// Unmounts the mount at `target`, a host path at or below `root` (the cell's
/// root, a path host root controls). Below the root, the mount point's parent
/// is resolved without following any link and the mount point is named
/// through it (`/proc/self/fd/N/<name>`, `UMOUNT_NOFOLLOW`), so a link planted
/// on the way is refused (`ELOOP`) rather than followed; the caller can then
/// detach the whole root. (An fd of the mount point itself would keep it busy.)
/// `detach`: `MNT_DETACH`.
#[cfg(target_os = "linux")]
pub fn unmount_below(root: &Path, target: &Path, detach: bool) -> rustix::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    use rustix::mount::{unmount, UnmountFlags};
    use std::os::fd::AsRawFd;
    let flags = UnmountFlags::NOFOLLOW
        | if detach {
            UnmountFlags::DETACH
        } else {
            UnmountFlags::empty()
        };
    let Ok(rel) = target.strip_prefix(root) else {
        return Err(rustix::io::Errno::XDEV);
    };
    let (Some(parent), Some(leaf)) = (rel.parent(), rel.file_name()) else {
        return unmount(root, flags);
    };
    let top = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let dir = super::resolve::open(
        std::os::fd::AsFd::as_fd(&top),
        parent,
        OFlags::PATH | OFlags::DIRECTORY,
        super::resolve::Links::Refuse,
    )?;
    drop(top);
    let mut path = std::ffi::OsString::from(format!("/proc/self/fd/{}/", dir.as_raw_fd()));
    path.push(leaf);
    unmount(&path, flags)
}

/// NetBSD: binds by path with `mount_null(8)` (see the module comment).
#[cfg(not(target_os = "linux"))]
pub fn bind_path(source: &Path, target: &Path, flags: BindFlags) -> Result<()> {
    let mut opts = Vec::new();
    for (on, name) in [
        (flags.read_only, "ro"),
        (flags.nosuid, "nosuid"),
        (flags.nodev, "nodev"),
        (flags.noexec, "noexec"),
    ] {
        if on {
            opts.push(name);
        }
    }
    let mut cmd = std::process::Command::new("mount");
    cmd.args(["-t", "null"]);
    if !opts.is_empty() {
        cmd.args(["-o", &opts.join(",")]);
    }
    let st = cmd
        .arg(source)
        .arg(target)
        .status()
        .with_context(|| format!("running mount -t null {}", source.display()))?;
    if !st.success() {
        anyhow::bail!(
            "mount -t null {} {} failed ({st})",
            source.display(),
            target.display()
        );
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::fs::tree::{Links, Tree};
    use crate::testutil::TempDir;
    use std::fs;

    fn root_or_skip() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            eprintln!("skipped: needs root to mount");
        }
        root
    }

    fn mount_options(target: &Path) -> Option<String> {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
        crate_mount_line(&text, target)
    }

    fn crate_mount_line(text: &str, target: &Path) -> Option<String> {
        text.lines()
            .find(|l| l.split(' ').nth(4) == Some(target.to_str().unwrap()))
            .map(|l| l.split(' ').nth(5).unwrap().to_string())
    }

    #[test]
    fn binds_through_an_fd_with_the_flags_asked_for() {
        if !root_or_skip() {
            return;
        }
        let t = TempDir::new("mount-bind");
        let src = t.join("src");
        let root = t.join("root");
        fs::create_dir_all(&src).unwrap();
        fs::create_dir_all(root.join("srv/data")).unwrap();
        fs::write(src.join("f"), "x").unwrap();
        let tree = Tree::open(&root, Links::Refuse).unwrap();
        let fd = tree
            .open_at(
                Path::new("/srv/data"),
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
            )
            .unwrap();
        let flags = BindFlags {
            read_only: true,
            nosuid: true,
            nodev: true,
            noexec: true,
        };
        bind(&src, std::os::fd::AsFd::as_fd(&fd), flags, None).unwrap();
        let target = root.join("srv/data");
        let opts = mount_options(&target);
        let unmounted = unmount_below(&root, &target, false);
        assert_eq!(unmounted, Ok(()));
        let opts = opts.expect("mounted");
        for o in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(opts.split(',').any(|x| x == o), "{o} missing in {opts}");
        }
        assert!(mount_options(&target).is_none());
    }

    #[test]
    fn the_old_kernel_path_sets_the_same_flags() {
        if !root_or_skip() {
            return;
        }
        let t = TempDir::new("mount-remount");
        let src = t.join("src");
        let dst = t.join("dst");
        fs::create_dir_all(&src).unwrap();
        fs::create_dir_all(&dst).unwrap();
        use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};
        let tree = open_tree(
            rustix::fs::CWD,
            &src,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .unwrap();
        move_mount(
            std::os::fd::AsFd::as_fd(&tree),
            "",
            rustix::fs::CWD,
            &dst,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .unwrap();
        let r = remount_fd(
            &tree,
            BindFlags {
                nosuid: true,
                nodev: true,
                ..BindFlags::BASE
            },
        );
        let opts = mount_options(&dst).unwrap();
        drop(tree);
        unmount_below(t.path(), &dst, false).unwrap();
        r.unwrap();
        for o in ["ro", "nosuid", "nodev"] {
            assert!(opts.split(',').any(|x| x == o), "{o} missing in {opts}");
        }
    }

    #[test]
    fn unmounting_refuses_a_path_through_a_link() {
        if !root_or_skip() {
            return;
        }
        let t = TempDir::new("mount-unlink");
        let root = t.join("root");
        let real = root.join("real");
        fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink(&real, root.join("link")).unwrap();
        fs::create_dir_all(real.join("m")).unwrap();
        rustix::mount::mount_bind(&real, real.join("m")).unwrap();
        let through_link = unmount_below(&root, &root.join("link/m"), false);
        let direct = unmount_below(&root, &real.join("m"), false);
        assert_eq!(through_link, Err(rustix::io::Errno::LOOP));
        assert_eq!(direct, Ok(()));
    }
}
