//! A cell's disk limit (`CELL_CREATE_DISK`): its writable layer lives on a
//! file system of its own, an ext4 image the size of the limit.
//!
//! In the cell's runtime directory:
//!
//! ```text
//! disk.img        the image: preallocated, so the host's file system cannot run
//!                 out under a cell that stays within its limit; no blocks
//!                 reserved for root (the whole limit is the cell's)
//! disk/           its mount point (nosuid, nodev), mounted from the first start
//!                 until the runtime is removed, so backups and restores see it
//! disk/overlay/   the writable layer (what `overlay/` is without a limit)
//! ```
//!
//! A cell writing past its limit gets ENOSPC inside its own file system; the
//! host's file system, other cells and the control plane's state are not
//! touched. Changing the limit resizes the image while the cell is stopped;
//! adding or removing it moves the writable layer into or out of an image.
//! Why an image and not project quotas: cellmgr(8), DISK LIMITS.

use super::CellPaths;
use crate::rcconf::format_size;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Makes the cell's storage match `limit` (`None`: no disk limit). Called
/// while the cell is stopped; mounts the image if there is one.
///
/// Each change is ordered so that a crash leaves a state the next call
/// converges from: the image is complete before it gets its name, and the
/// layer moved off an image is complete before it gets its.
pub fn prepare(p: &CellPaths, limit: Option<u64>) -> Result<()> {
    let has_image = p.disk_image.exists();
    match (limit, has_image) {
        (None, false) => Ok(()),
        (Some(size), false) => create(p, size),
        (Some(size), true) => {
            // The layer an interrupted `create` had already copied.
            remove_tree(&p.dir.join("overlay"))?;
            let current = std::fs::metadata(&p.disk_image)
                .with_context(|| format!("reading {}", p.disk_image.display()))?
                .len();
            if current != size {
                imp::resize(p, current, size)?;
            }
            mount(p)
        }
        (None, true) => remove(p),
    }
}

/// Mounts the cell's disk if it has one and it is not mounted.
pub fn mount(p: &CellPaths) -> Result<()> {
    // host path: the image and its mount point are entries of the cell's
    // 0700 runtime directory, which only host root writes
    if !p.disk_image.exists() || imp::is_mounted(&p.disk_mount)? {
        return Ok(());
    }
    mount_at(&p.disk_image, p)
}

fn mount_at(image: &Path, p: &CellPaths) -> Result<()> {
    // host path: as in `mount`
    std::fs::create_dir_all(&p.disk_mount)
        .with_context(|| format!("creating {}", p.disk_mount.display()))?;
    imp::mount(image, &p.disk_mount)
        .with_context(|| format!("mounting the disk of cell {}", p.name))
}

/// Unmounts the cell's disk (before its runtime directory is removed).
pub fn unmount(p: &CellPaths) -> Result<()> {
    if imp::is_mounted(&p.disk_mount)? {
        imp::unmount(&p.disk_mount)
            .with_context(|| format!("unmounting the disk of cell {}", p.name))?;
    }
    Ok(())
}

/// The cell's first limit: a new image, holding the writable layer the cell
/// had on the host's file system, if any. A failure leaves the old layout.
fn create(p: &CellPaths, size: u64) -> Result<()> {
    let tmp = p.dir.join(".disk.img.new");
    let old = p.dir.join("overlay");
    // An interrupted attempt may have left its image mounted.
    unmount(p)?;
    let _ = std::fs::remove_file(&tmp);
    let result = (|| -> Result<()> {
        imp::make_image(&tmp, size).with_context(|| {
            format!(
                "creating a {} disk for cell {} in {}",
                format_size(size),
                p.name,
                p.dir.display()
            )
        })?;
        mount_at(&tmp, p)?;
        let new = p.disk_mount.join("overlay");
        if old.exists() {
            copy_tree(&old, &new).with_context(|| {
                format!(
                    "moving the writable layer of cell {} onto its {} disk",
                    p.name,
                    format_size(size)
                )
            })?;
        } else {
            // host path: the top of a fresh image no cell has mounted yet
            std::fs::create_dir(&new).with_context(|| format!("creating {}", new.display()))?;
        }
        std::fs::rename(&tmp, &p.disk_image)
            .with_context(|| format!("renaming {} to {}", tmp.display(), p.disk_image.display()))
    })();
    if let Err(e) = result {
        let _ = unmount(p);
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    remove_tree(&old)
}

/// The limit is gone: the writable layer moves back to the host's file
/// system and the image goes.
fn remove(p: &CellPaths) -> Result<()> {
    mount(p)?;
    let from = p.disk_mount.join("overlay");
    let tmp = p.dir.join(".overlay.new");
    let to = p.dir.join("overlay");
    remove_tree(&tmp)?;
    // host path: the image's top directory is root's; the cell sees only
    // what is below `overlay/upper`
    if from.exists() {
        copy_tree(&from, &tmp).with_context(|| {
            format!("moving the writable layer of cell {} off its disk", p.name)
        })?;
    } else {
        std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    }
    // A layer an interrupted run moved already: the image's is the one.
    remove_tree(&to)?;
    std::fs::rename(&tmp, &to)
        .with_context(|| format!("renaming {} to {}", tmp.display(), to.display()))?;
    unmount(p)?;
    std::fs::remove_file(&p.disk_image)
        .with_context(|| format!("removing {}", p.disk_image.display()))?;
    // host path: as in `mount`
    let _ = std::fs::remove_dir(&p.disk_mount);
    Ok(())
}

/// Copies a writable layer with everything overlayfs keeps in it (owners,
/// modes, times, hard links, whiteout devices, `trusted.overlay.*` and other
/// extended attributes), never following its symbolic links. The cell is
/// stopped, so nothing in it changes meanwhile.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let out = std::process::Command::new("cp")
        .args([
            "-dR",
            "--preserve=mode,ownership,timestamps,links,xattr",
            "--sparse=always",
            "--no-target-directory",
        ])
        .arg(from)
        .arg(to)
        .output()
        .context("running cp")?;
    if !out.status.success() {
        let _ = remove_tree(to);
        bail!(
            "cp: {}",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', "; ")
        );
    }
    Ok(())
}

/// Removes a writable layer (the cell's files) without following its links
/// or entering a mount.
fn remove_tree(dir: &Path) -> Result<()> {
    crate::fs::tree::remove_host_tree(dir)
}

#[cfg(target_os = "linux")]
mod imp {
    //! Images, loop devices and mounts on Linux.

    use super::{format_size, CellPaths};
    use anyhow::{bail, Context, Result};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    /// A host tool of e2fsprogs: found in the system directories, whatever PATH
    /// the caller has.
    fn tool(name: &str) -> PathBuf {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from(name))
    }

    /// Runs a tool; its output names what went wrong.
    fn run(program: &str, args: &[&str]) -> Result<()> {
        let out = std::process::Command::new(tool(program))
            .args(args)
            .output()
            .with_context(|| format!("running {program} (e2fsprogs)"))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr);
            let text = if text.trim().is_empty() {
                String::from_utf8_lossy(&out.stdout)
            } else {
                text
            };
            bail!(
                "{program} {} failed ({}): {}",
                args.join(" "),
                out.status,
                text.trim().replace('\n', "; ")
            );
        }
        Ok(())
    }

    // libc's request type: an unsigned long in glibc, an int in musl.
    const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4C82;
    const LOOP_CONFIGURE: libc::Ioctl = 0x4C0A;
    /// The loop device goes away with its last user (the mount).
    const LO_FLAGS_AUTOCLEAR: u32 = 4;

    /// `struct loop_info64` (linux/loop.h).
    #[repr(C)]
    struct LoopInfo64 {
        device: u64,
        inode: u64,
        rdevice: u64,
        offset: u64,
        sizelimit: u64,
        number: u32,
        encrypt_type: u32,
        encrypt_key_size: u32,
        flags: u32,
        file_name: [u8; 64],
        crypt_name: [u8; 64],
        encrypt_key: [u8; 32],
        init: [u64; 2],
    }

    /// `struct loop_config` (linux/loop.h).
    #[repr(C)]
    struct LoopConfig {
        fd: u32,
        block_size: u32,
        info: LoopInfo64,
        reserved: [u64; 8],
    }

    pub fn is_mounted(dir: &Path) -> Result<bool> {
        Ok(crate::fs::mountinfo::mount_points()?
            .iter()
            .any(|p| p == dir))
    }

    /// A preallocated image with an empty ext4 file system: no blocks
    /// reserved for root, no discard (it would hand the preallocation back),
    /// no space kept for online growth (resizing is done offline), and a
    /// journal of 1/32 of the disk (1 to 64 MiB; mke2fs takes 4 MiB of 32).
    pub fn make_image(path: &Path, size: u64) -> Result<()> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        allocate(&file, path, size)?;
        drop(file);
        let p = path.to_str().context("image path is not UTF-8")?;
        let journal = format!("size={}", (size >> 25).clamp(1, 64));
        run(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-m",
                "0",
                "-E",
                "nodiscard",
                "-O",
                "^resize_inode",
                "-J",
                &journal,
                "-L",
                "cell-disk",
                p,
            ],
        )
    }

    /// Reserves `size` bytes for the image on the host's file system.
    fn allocate(file: &std::fs::File, path: &Path, size: u64) -> Result<()> {
        match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size) {
            Ok(()) => Ok(()),
            // A file system without preallocation: a sparse image still bounds the cell.
            Err(rustix::io::Errno::OPNOTSUPP) => file
                .set_len(size)
                .with_context(|| format!("sizing {}", path.display())),
            Err(e) if e == rustix::io::Errno::NOSPC => bail!(
                "not enough free space for {} on the file system of {}",
                format_size(size),
                path.display()
            ),
            Err(e) => Err(e).with_context(|| format!("allocating {}", path.display())),
        }
    }

    /// The loop device backing `image`, if one does (mounted here or in some
    /// other mount namespace).
    fn loop_of(image: &Path) -> Option<PathBuf> {
        let image = image.canonicalize().ok()?;
        for entry in std::fs::read_dir("/sys/block").ok()?.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| n.starts_with("loop")) else {
                continue;
            };
            let Ok(backing) = std::fs::read_to_string(entry.path().join("loop/backing_file"))
            else {
                continue;
            };
            if Path::new(backing.trim_end()) == image {
                return Some(PathBuf::from("/dev").join(name));
            }
        }
        None
    }

    /// A free loop device set up on `image`; the returned descriptor keeps it
    /// until the mount holds it.
    fn attach(image: &Path) -> Result<(PathBuf, OwnedFd)> {
        let control = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/loop-control")
            .context("opening /dev/loop-control")?;
        let backing = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(image)
            .with_context(|| format!("opening {}", image.display()))?;
        // SAFETY: plain-data struct; all-zero is its empty value.
        let mut config: LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = backing.as_raw_fd() as u32;
        config.info.flags = LO_FLAGS_AUTOCLEAR;
        let name = image.as_os_str().as_bytes();
        let n = name.len().min(63);
        config.info.file_name[..n].copy_from_slice(&name[..n]);
        for _ in 0..16 {
            // SAFETY: ioctl without argument on the control device.
            let number = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
            if number < 0 {
                return Err(std::io::Error::last_os_error()).context("finding a free loop device");
            }
            let dev = PathBuf::from(format!("/dev/loop{number}"));
            let device = open_device(&dev)?;
            // SAFETY: LOOP_CONFIGURE reads a `struct loop_config` we own.
            let rc = unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CONFIGURE, &config) };
            if rc == 0 {
                return Ok((dev, device));
            }
            let e = std::io::Error::last_os_error();
            // Another process took the device between the two calls.
            if e.raw_os_error() != Some(libc::EBUSY) {
                return Err(e).with_context(|| {
                    format!("setting up {} on {}", dev.display(), image.display())
                });
            }
        }
        bail!(
            "no free loop device for {} (every one taken while trying)",
            image.display()
        )
    }

    /// Opens a loop device node, waiting briefly for devtmpfs to make a new one.
    fn open_device(dev: &Path) -> Result<OwnedFd> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match std::fs::OpenOptions::new().read(true).write(true).open(dev) {
                Ok(f) => return Ok(f.into()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(e).with_context(|| format!("opening {}", dev.display())),
            }
        }
    }

    /// Mounts `image` at `dir`. An image still attached to a loop device (its
    /// file system mounted in another mount namespace) is mounted from that
    /// device: the same file system twice from two devices would corrupt it.
    pub fn mount(image: &Path, dir: &Path) -> Result<()> {
        use rustix::mount::{mount, MountFlags};
        let (dev, _hold) = match loop_of(image) {
            Some(dev) => (dev, None),
            None => {
                let (dev, fd) = attach(image)?;
                (dev, Some(fd))
            }
        };
        mount(
            &dev,
            dir,
            "ext4",
            MountFlags::NOSUID | MountFlags::NODEV,
            "",
        )
        .with_context(|| {
            format!(
                "mounting {} ({}) on {}",
                dev.display(),
                image.display(),
                dir.display()
            )
        })
    }

    pub fn unmount(dir: &Path) -> Result<()> {
        use rustix::mount::{unmount, UnmountFlags};
        unmount(dir, UnmountFlags::empty()).with_context(|| format!("unmounting {}", dir.display()))
    }

    /// Waits until no loop device backs `image` (the autoclear after the last
    /// unmount); an image still in use cannot be resized safely.
    fn wait_detached(p: &CellPaths) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(2);
        while loop_of(&p.disk_image).is_some() {
            if Instant::now() >= deadline {
                bail!(
                    "the disk of cell {} ({}) is still in use (mounted in another mount namespace); stop what uses it and try again",
                    p.name,
                    p.disk_image.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Resizes the image and its file system to `size`, offline. Shrinking
    /// below what the cell stores fails and leaves the disk as it was.
    pub fn resize(p: &CellPaths, current: u64, size: u64) -> Result<()> {
        super::unmount(p)?;
        wait_detached(p)?;
        let img = p.disk_image.to_str().context("image path is not UTF-8")?;
        let what = format!(
            "resizing the disk of cell {} from {} to {}",
            p.name,
            format_size(current),
            format_size(size)
        );
        let blocks = format!("{}K", size / 1024);
        // resize2fs wants a checked file system.
        run("e2fsck", &["-f", "-p", img]).with_context(|| what.clone())?;
        if size > current {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&p.disk_image)
                .with_context(|| format!("opening {}", p.disk_image.display()))?;
            allocate(&file, &p.disk_image, size).with_context(|| what.clone())?;
            run("resize2fs", &[img, &blocks]).with_context(|| what.clone())?;
        } else {
            run("resize2fs", &[img, &blocks]).with_context(|| {
                format!("{what}: the cell stores more than fits; free space in it first")
            })?;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p.disk_image)
                .and_then(|f| f.set_len(size))
                .with_context(|| format!("truncating {}", p.disk_image.display()))?;
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    //! NetBSD: no disk limits yet (cellmgr(8), DISK LIMITS).

    use super::CellPaths;
    use anyhow::{bail, Result};
    use std::path::Path;

    const UNSUPPORTED: &str =
        "CELL_CREATE_DISK is not supported on this system yet; use 'unlimited'";

    pub fn is_mounted(_dir: &Path) -> Result<bool> {
        Ok(false)
    }
    pub fn make_image(_path: &Path, _size: u64) -> Result<()> {
        bail!(UNSUPPORTED)
    }
    pub fn mount(_image: &Path, _dir: &Path) -> Result<()> {
        bail!(UNSUPPORTED)
    }
    pub fn unmount(_dir: &Path) -> Result<()> {
        bail!(UNSUPPORTED)
    }
    pub fn resize(_p: &CellPaths, _current: u64, _size: u64) -> Result<()> {
        bail!(UNSUPPORTED)
    }
}
