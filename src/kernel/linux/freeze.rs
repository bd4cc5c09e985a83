//! Freezing a cell (cgroup2 `cgroup.freeze`) so that no cell stays frozen
//! when the process that froze it dies, whatever kills it.
//!
//! Before the cell is frozen, a small guard process is forked. It holds the
//! read end of a pipe whose only write end stays with the freezer, and the
//! cell's hold lock (`<run_dir>/kernel/<id>/freeze.lock`). When the freezer
//! thaws (closes the pipe), exits or is killed with SIGKILL, the guard reads
//! end of file, writes `0` to `cgroup.freeze` and exits. The guard starts its
//! own session and ignores the terminal's signals, so a Ctrl-C that kills the
//! freezer does not kill it first. A frozen cell whose hold lock nobody holds
//! (its guard was killed too) is abandoned: `thaw_abandoned` thaws it.

use super::state::CellRecord;
use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the kernel may take to report a cgroup frozen or thawed.
const SETTLE: Duration = Duration::from_secs(10);

fn hold_path(cell_dir: &Path) -> std::path::PathBuf {
    cell_dir.join("freeze.lock")
}

fn open_hold(cell_dir: &Path) -> Result<File> {
    let path = hold_path(cell_dir);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Takes the hold lock without waiting; false when another guard holds it.
fn try_hold(file: &File) -> Result<bool> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e).context("locking the freeze hold")
    }
}

/// True when the cell's cgroup is asked to be frozen.
pub fn is_frozen(cell: &CellRecord) -> bool {
    crate::fs::pseudo::read_to_string(cell.cgroup.join("cgroup.freeze"))
        .is_ok_and(|t| t.trim() == "1")
}

/// Waits until `cgroup.events` reports the cgroup `frozen` (or not).
fn settle(cell: &CellRecord, frozen: bool) -> Result<()> {
    let events = cell.cgroup.join("cgroup.events");
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let deadline = Instant::now() + SETTLE;
    loop {
        let text = crate::fs::pseudo::read_to_string(&events)
            .with_context(|| format!("reading {}", events.display()))?;
        if text.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{}: still not '{want}' after {} s",
                events.display(),
                SETTLE.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn write_freeze(cell: &CellRecord, frozen: bool) -> Result<()> {
    let control = cell.cgroup.join("cgroup.freeze");
    std::fs::write(&control, if frozen { "1" } else { "0" })
        .with_context(|| format!("writing {}", control.display()))
}

/// Freezes the cell; the returned guard thaws it on drop, and its process
/// thaws it if this process dies first. `cell_dir` is the cell's runtime
/// directory (for the hold lock).
pub fn freeze(cell: &CellRecord, cell_dir: &Path) -> Result<crate::kernel::FreezeGuard> {
    let hold = open_hold(cell_dir)?;
    if !try_hold(&hold)? {
        bail!(
            "cell '{}' is already frozen by another command; try again when it has finished",
            cell.name
        );
    }
    let control = cell.cgroup.join("cgroup.freeze");
    let freeze_fd: OwnedFd = OpenOptions::new()
        .write(true)
        .open(&control)
        .with_context(|| format!("opening {}", control.display()))?
        .into();
    let null: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?
        .into();
    let (read_end, write_end) = super::sys::pipe()?;
    let name = CString::new("cell-thaw").expect("no NUL");
    // SAFETY: the child runs only async-signal-safe calls on descriptors and
    // memory prepared before the fork, then _exits (see `guard_main`).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return super::sys::last_error("starting the freeze guard");
    }
    if pid == 0 {
        // SAFETY: in the forked child.
        unsafe {
            guard_main(
                read_end.as_raw_fd(),
                freeze_fd.as_raw_fd(),
                hold.as_raw_fd(),
                null.as_raw_fd(),
                &name,
            )
        }
    }
    // The guard holds the read end, the hold lock and its own copy of the
    // control file; the write end stays here only.
    drop((read_end, hold, freeze_fd, null));
    let guard = Guard {
        pid,
        write_end: Some(write_end),
        cell: cell.clone(),
    };
    write_freeze(cell, true)
        .and_then(|()| settle(cell, true))
        .with_context(|| format!("freezing cell '{}'", cell.name))?;
    let mut guard = guard;
    Ok(crate::kernel::FreezeGuard::new(move || guard.thaw()))
}

/// The freezer's side of a guard process.
struct Guard {
    pid: libc::pid_t,
    write_end: Option<OwnedFd>,
    cell: CellRecord,
}

impl Guard {
    /// Lets the guard thaw the cell, waits for it and for the kernel to
    /// report the cell thawed.
    fn thaw(&mut self) -> Result<()> {
        let Some(w) = self.write_end.take() else {
            return Ok(());
        };
        drop(w);
        let mut status = 0;
        // SAFETY: waits for our own child.
        while unsafe { libc::waitpid(self.pid, &mut status, 0) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).context("waiting for the freeze guard");
            }
        }
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            // The guard could not write: try once more from here.
            write_freeze(&self.cell, false)?;
        }
        settle(&self.cell, false).with_context(|| format!("thawing cell '{}'", self.cell.name))
    }
}

impl Drop for Guard {
    /// A guard dropped without `thaw` (freezing failed half-way) still thaws.
    fn drop(&mut self) {
        if let Err(e) = self.thaw() {
            log::error!("{e:#}");
        }
    }
}

/// The guard process: wait for end of file (or a byte) on the pipe, then
/// thaw and exit. Only async-signal-safe calls.
unsafe fn guard_main(
    pipe: libc::c_int,
    control: libc::c_int,
    hold: libc::c_int,
    null: libc::c_int,
    name: &CString,
) -> ! {
    libc::setsid();
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGPIPE,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ] {
        libc::signal(sig, libc::SIG_IGN);
    }
    libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    // Keep the pipe, the control file and the hold lock as 3, 4, 5 and
    // nothing else of the freezer's: no lock, pipe or terminal of its stays
    // open because of us.
    let keep = [pipe, control, hold, null].map(|fd| libc::fcntl(fd, libc::F_DUPFD, 10));
    if keep.iter().any(|&fd| fd < 0) {
        libc::_exit(2);
    }
    for (i, fd) in keep[..3].iter().enumerate() {
        libc::dup2(*fd, 3 + i as libc::c_int);
    }
    for std in 0..3 {
        libc::dup2(keep[3], std);
    }
    if libc::syscall(libc::SYS_close_range, 6u32, u32::MAX, 0u32) != 0 {
        for fd in 6..4096 {
            libc::close(fd);
        }
    }
    let mut byte = 0u8;
    while libc::read(3, &mut byte as *mut u8 as *mut libc::c_void, 1) < 0
        && *libc::__errno_location() == libc::EINTR
    {}
    let ok = libc::write(4, b"0".as_ptr() as *const libc::c_void, 1) == 1;
    libc::_exit(if ok { 0 } else { 1 })
}

/// Thaws a frozen cell that no guard holds; true when it did.
pub fn thaw_abandoned(cell: &CellRecord, cell_dir: &Path) -> Result<bool> {
    if !is_frozen(cell) {
        return Ok(false);
    }
    let hold = open_hold(cell_dir)?;
    if !try_hold(&hold)? {
        return Ok(false);
    }
    write_freeze(cell, false)?;
    settle(cell, false)?;
    Ok(true)
}
