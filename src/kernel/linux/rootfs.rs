//! The cell's file-system view, built by its init inside the new mount and PID
//! namespaces, in this order (failing closed at any step):
//!
//! 1. make every inherited mount a slave, so nothing propagates back to the host;
//! 2. bind the root onto itself recursively (mounts the caller placed below it,
//!    such as an overlay and volumes, come along);
//! 3. a fresh minimal `/dev` (tmpfs with null, zero, full, random, urandom, tty,
//!    a private devpts instance and shm; no kmsg, no disks), every part bounded
//!    ([`DevLimits`]) so that a cell cannot drain the host's pty pool or memory;
//! 4. a fresh `/proc` of the cell's PID namespace, with `/proc/sys`,
//!    `/proc/sysrq-trigger`, `/proc/irq`, `/proc/bus` and `/proc/fs` read-only
//!    and what container runtimes mask hidden where the kernel has it: the
//!    files `kcore`, `kmsg`, `keys`, `timer_list`, `timer_stats`,
//!    `sched_debug`, `latency_stats` (behind `/dev/null`) and the directories
//!    `acpi`, `scsi` (behind an empty read-only tmpfs). The cell gets no `/sys`
//!    (so no `/sys/firmware` either);
//! 5. `pivot_root` into it and detach the old root.

use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).with_context(|| format!("{}: NUL in path", p.display()))
}

fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let src_c = src.map(cstr).transpose()?;
    let target_c = cstr(target)?;
    let fstype_c = fstype.map(|s| CString::new(s).expect("static fs type"));
    let data_c = data.map(|s| CString::new(s).expect("mount options without NUL"));
    // SAFETY: all pointers are NUL-terminated strings that outlive the call, or null.
    let rc = unsafe {
        libc::mount(
            src_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            target_c.as_ptr(),
            fstype_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            flags,
            data_c
                .as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr().cast()),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!(
                "mounting {} on {}",
                fstype
                    .map(str::to_string)
                    .or(src.map(|s| s.display().to_string()))
                    .unwrap_or_default(),
                target.display()
            )
        });
    }
    Ok(())
}

fn ensure_dir(p: &Path) -> Result<()> {
    match std::fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", p.display())),
    }
}

/// Binds `path` onto itself read-only (if it exists).
fn read_only(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None)?;
    mount(
        None,
        path,
        None,
        libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC,
        None,
    )
}

/// Hides a file behind the cell's `/dev/null`, a directory behind an empty
/// read-only tmpfs (if it exists).
fn mask(path: &Path, null: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(meta) if meta.is_dir() => mount(
            Some(Path::new("tmpfs")),
            path,
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=555"),
        ),
        Ok(_) => mount(Some(null), path, None, libc::MS_BIND, None),
    }
}

fn mknod_char(path: &Path, major: u32, minor: u32) -> Result<()> {
    let c = cstr(path)?;
    // SAFETY: valid path; creates a device node on our private tmpfs.
    let rc = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("creating device {}", path.display()));
    }
    // mknod honours the umask; the nodes must be world read/writable.
    let rc = unsafe { libc::chmod(c.as_ptr(), 0o666) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("chmod {}", path.display()));
    }
    Ok(())
}

/// Bounds of a cell's `/dev`, whose tmpfs and devpts instances would
/// otherwise draw on host-wide pools (memory, inodes' slab, ptys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevLimits {
    /// Most ptys at once (devpts `max=`).
    pub pty_max: u32,
    /// Bytes of `/dev/shm`.
    pub shm_size: u64,
}

/// `/dev` itself holds a dozen nodes and links (and perhaps a `log` socket).
const DEV_OPTIONS: &str = "mode=755,size=64k,nr_inodes=256";
/// Files in `/dev/shm`: POSIX shared memory and semaphores need a few each.
const SHM_INODES: u32 = 4096;

fn populate_dev(dev: &Path, limits: &DevLimits) -> Result<()> {
    mount(
        Some(Path::new("tmpfs")),
        dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(DEV_OPTIONS),
    )?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        mknod_char(&dev.join(name), major, minor)?;
    }
    let pts = dev.join("pts");
    ensure_dir(&pts)?;
    mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(&format!(
            "newinstance,ptmxmode=0666,mode=0620,max={}",
            limits.pty_max
        )),
    )?;
    let shm = dev.join("shm");
    ensure_dir(&shm)?;
    mount(
        Some(Path::new("tmpfs")),
        &shm,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&format!(
            "mode=1777,size={},nr_inodes={SHM_INODES}",
            limits.shm_size
        )),
    )?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link))
            .with_context(|| format!("creating {}", dev.join(link).display()))?;
    }
    Ok(())
}

fn populate_proc(proc_dir: &Path, null: &Path) -> Result<()> {
    mount(
        Some(Path::new("proc")),
        proc_dir,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    for ro in ["sys", "sysrq-trigger", "irq", "bus", "fs"] {
        read_only(&proc_dir.join(ro))?;
    }
    for hidden in [
        "kcore",
        "kmsg",
        "keys",
        "timer_list",
        "timer_stats",
        "sched_debug",
        "latency_stats",
        "acpi",
        "scsi",
    ] {
        mask(&proc_dir.join(hidden), null)?;
    }
    Ok(())
}

/// Makes `root` the calling process's `/`. Must run in a fresh mount namespace,
/// as the first process (pid 1) of the cell's PID namespace.
pub fn enter(root: &Path, dev_limits: &DevLimits) -> Result<()> {
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_SLAVE,
        None,
    )?;
    mount(Some(root), root, None, libc::MS_BIND | libc::MS_REC, None)?;
    let dev = root.join("dev");
    let proc_dir = root.join("proc");
    ensure_dir(&dev)?;
    ensure_dir(&proc_dir)?;
    populate_dev(&dev, dev_limits)?;
    populate_proc(&proc_dir, &dev.join("null"))?;

    let root_c = cstr(root)?;
    let dot = CString::new(".").expect("static");
    // SAFETY: plain path syscalls. pivot_root(".", ".") stacks the old root on top
    // of the new one, so no directory for it is needed inside the cell.
    unsafe {
        if libc::chdir(root_c.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("chdir {}", root.display()));
        }
        if libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("pivot_root into {}", root.display()));
        }
        if libc::umount2(dot.as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(std::io::Error::last_os_error()).context("detaching the old root");
        }
        let slash = CString::new("/").expect("static");
        if libc::chdir(slash.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error()).context("chdir /");
        }
    }
    Ok(())
}
