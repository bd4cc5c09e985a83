//! The supervisor's on-disk state under `<run_dir>/supervise/`: the status
//! file (CBOR, written atomically), the lock that proves a supervisor is alive,
//! and the stop request.
//!
//! A supervisor holds an exclusive `flock` on `<cell>.lock` for its whole life
//! and writes its pid into it. The lock, not the status file, says whether a
//! supervisor runs: a status file is read only while the lock is held, so a
//! file left by a supervisor that was killed (or whose pid was reused) reads as
//! not running, and a supervisor still starting up (no status file yet) or
//! whose file was damaged still counts as running.

use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the supervisor is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SupervisorState {
    /// The service is running.
    Running,
    /// The service ended; it is restarted when the backoff delay is over.
    Backoff,
    /// A stop was requested; the service is being terminated.
    Stopping,
    /// The service ended and its restart policy says not to start it again.
    Exited,
}

impl SupervisorState {
    pub fn as_str(self) -> &'static str {
        match self {
            SupervisorState::Running => "running",
            SupervisorState::Backoff => "backoff",
            SupervisorState::Stopping => "stopping",
            SupervisorState::Exited => "exited",
        }
    }
}

/// The status file: everything an operator or the UI wants to know about one
/// supervised service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SupervisorStatus {
    pub cell: String,
    pub cid: u64,
    pub supervisor_pid: u32,
    /// The service's pid while it runs. A supervising init writes its pid in
    /// the cell's pid namespace; `supervise::supervisor` reads it as the host
    /// pid (`None` when no member of the cell matches).
    pub child_pid: Option<u32>,
    pub argv: Vec<String>,
    pub state: SupervisorState,
    /// Unix time (seconds) the current state began.
    pub since: u64,
    /// Unix time (seconds) the supervisor started.
    pub started: u64,
    /// Times the service was started again after ending.
    pub restarts: u64,
    /// How the last run ended, e.g. `exit 3` or `signal 9`.
    pub last_exit: Option<String>,
    /// The delay before the next restart, in seconds (while in backoff).
    pub backoff_secs: u64,
    /// Start times of the most recent runs, unix milliseconds, oldest first.
    pub recent_starts_ms: Vec<u64>,
    /// The service's health, when it has a health check.
    #[serde(default)]
    pub health: Option<super::health::HealthStatus>,
    /// Records go to the fallback file: the syslog daemon does not take
    /// them (a supervising init's socket cannot reconnect by itself: the
    /// host hands it a new one, `repair`).
    #[serde(default)]
    pub syslog_unreachable: bool,
}

/// How many start times the status keeps.
pub const RECENT_STARTS: usize = 10;

/// The files of one cell's supervisor.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
    pub status: PathBuf,
    pub lock: PathBuf,
    pub stop: PathBuf,
    pub log: PathBuf,
    pub fallback: PathBuf,
}

impl Paths {
    /// Creates the supervisor directory, `0700` (narrowing an existing one):
    /// service output and status are for host root only.
    pub fn ensure_dir(&self) -> anyhow::Result<()> {
        crate::fs::host::private_dir(&self.dir)
    }

    /// The files of a supervisor in the cell's init: a directory per cell,
    /// `<run_dir>/supervise/<cell>/`, that the init writes (it belongs to
    /// the cell root's host id; only host root reaches it by path).
    pub fn of_init(run_dir: &Path, cell: &str) -> Paths {
        Paths::in_dir(&run_dir.join("supervise").join(cell))
    }

    /// The files of the directory `dir` (as [`Paths::of_init`] names them).
    pub fn in_dir(dir: &Path) -> Paths {
        Paths {
            status: dir.join("status"),
            lock: dir.join("lock"),
            stop: dir.join("stop"),
            log: dir.join("log"),
            fallback: dir.join("syslog"),
            dir: dir.to_path_buf(),
        }
    }

    pub fn new(run_dir: &Path, cell: &str) -> Paths {
        let dir = run_dir.join("supervise");
        Paths {
            status: dir.join(format!("{cell}.status")),
            lock: dir.join(format!("{cell}.lock")),
            stop: dir.join(format!("{cell}.stop")),
            log: dir.join(format!("{cell}.log")),
            fallback: dir.join(format!("{cell}.syslog")),
            dir,
        }
    }
}

pub fn write_status(path: &Path, status: &SupervisorStatus) -> anyhow::Result<()> {
    crate::fs::host::write_replace(path, &crate::fs::cbor::encode(status))
}

/// The largest status file read (one is a few hundred bytes; a health
/// check's output is bounded).
const MAX_STATUS: u64 = 1 << 20;

/// Reads a status file; `None` when there is none.
pub fn read_status(path: &Path) -> anyhow::Result<Option<SupervisorStatus>> {
    let read = || -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let Some(file) = crate::fs::host::open_untrusted(path)? else {
            return Err(std::io::ErrorKind::NotFound.into());
        };
        let mut bytes = Vec::new();
        file.take(MAX_STATUS + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_STATUS {
            return Err(std::io::Error::other(format!(
                "larger than {MAX_STATUS} bytes"
            )));
        }
        Ok(bytes)
    };
    match read() {
        Ok(bytes) => match crate::fs::cbor::decode(&bytes) {
            Ok(status) => Ok(Some(status)),
            // Written without waiting for the disk: torn by a crash, it
            // describes a supervisor of an earlier boot.
            Err(_) if crate::fs::host::written_before_boot(path) => Ok(None),
            Err(e) => {
                Err(e).with_context(|| format!("{}: not a supervisor status file", path.display()))
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The lock a running supervisor holds. Dropping it releases the lock.
pub struct SupervisorLock {
    _file: File,
}

impl SupervisorLock {
    /// Takes the cell's supervisor lock, retrying briefly (a concurrent
    /// [`is_locked`] probe holds it for a moment), and writes `pid` (the
    /// supervisor's, on the host) into it. Fails when another supervisor
    /// holds it.
    pub fn acquire(path: &Path, pid: u32) -> anyhow::Result<SupervisorLock> {
        let mut file = open_lock(path)?;
        for attempt in 0.. {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                // Rewritten in place: a new file would be a different lock.
                use std::io::Write;
                file.set_len(0)
                    .and_then(|()| file.write_all(format!("{pid}\n").as_bytes()))
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok(SupervisorLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) || attempt == 20 {
                return Err(err).with_context(|| {
                    format!("locking {} (another supervisor runs)", path.display())
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        unreachable!()
    }
}

/// True while some supervisor holds the lock at `path`.
pub fn is_locked(path: &Path) -> anyhow::Result<bool> {
    Ok(held_lock(path)?.is_some())
}

/// The lock file at `path`, opened as a file a cell's side may have written
/// (see `fs::host::open_untrusted`), when some supervisor holds it.
fn held_lock(path: &Path) -> anyhow::Result<Option<File>> {
    let file = match crate::fs::host::open_untrusted(path) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    // SAFETY: flock on a descriptor we own; the shared lock is released when
    // `file` is dropped.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        return Ok(None);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(Some(file))
    } else {
        Err(err).with_context(|| format!("probing lock {}", path.display()))
    }
}

/// The pid of the supervisor holding the lock at `path`: `None` when no
/// supervisor holds it, `Some(None)` when one does but its pid cannot be read
/// (it is between taking the lock and writing it, or the file was damaged).
/// The pid is read through the descriptor the lock was probed on.
pub fn holder(path: &Path) -> anyhow::Result<Option<Option<u32>>> {
    let Some(file) = held_lock(path)? else {
        return Ok(None);
    };
    use std::io::Read;
    let mut text = String::new();
    let pid = file
        .take(32)
        .read_to_string(&mut text)
        .ok()
        .and_then(|_| text.trim().parse::<u32>().ok())
        .filter(|&p| pid_alive(p));
    Ok(Some(pid))
}

/// True when `pid` is the supervisor of `cell`: a check before signalling a
/// pid read from a file, so a damaged file can never aim a signal elsewhere.
/// (Linux reads its command line; elsewhere a live pid is taken on trust.)
pub fn is_supervisor_of(pid: u32, cell: &str) -> bool {
    #[cfg(target_os = "linux")]
    {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        args.get(1) == Some(&&b"supervise"[..]) && args[2..].contains(&cell.as_bytes())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cell;
        pid_alive(pid)
    }
}

fn open_lock(path: &Path) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// True when a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0 && (unsafe { libc::kill(pid, 0) } == 0 || last_errno() == libc::EPERM)
}

/// True while `pid` is still running: alive and not yet a zombie. A process
/// releases its locks (closes its files) before it turns into a zombie, so a
/// released lock alone does not mean the process is gone.
pub fn pid_running(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        let state = crate::fs::pseudo::ProcStat::read(pid)
            .ok()
            .and_then(|s| s.state());
        !matches!(state, Some('Z' | 'X') | None)
    }
    #[cfg(not(target_os = "linux"))]
    {
        pid_alive(pid)
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn sample() -> SupervisorStatus {
        SupervisorStatus {
            cell: "web".into(),
            cid: 3,
            supervisor_pid: 100,
            child_pid: Some(101),
            argv: vec!["/bin/sh".into(), "-c".into(), "exec httpd".into()],
            state: SupervisorState::Running,
            since: 1_700_000_000,
            started: 1_699_999_990,
            restarts: 2,
            last_exit: Some("exit 1".into()),
            backoff_secs: 2,
            recent_starts_ms: vec![1, 2, 3],
            syslog_unreachable: false,
            health: Some(super::super::health::HealthStatus {
                state: super::super::health::Health::Ok,
                since: 1_700_000_001,
                failures: 0,
                last: Some("ok".into()),
                output: vec!["fine".into()],
            }),
        }
    }

    #[test]
    fn status_round_trips_through_cbor_atomically() {
        let dir = TempDir::new("status");
        let p = Paths::new(dir.path(), "web");
        std::fs::create_dir_all(&p.dir).unwrap();
        assert_eq!(read_status(&p.status).unwrap(), None);
        write_status(&p.status, &sample()).unwrap();
        assert_eq!(read_status(&p.status).unwrap(), Some(sample()));
        // No temp file is left behind.
        let names: Vec<_> = std::fs::read_dir(&p.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("web.status")]);
        std::fs::write(&p.status, b"garbage").unwrap();
        let e = format!("{:#}", read_status(&p.status).unwrap_err());
        assert!(
            e.contains("web.status: not a supervisor status file"),
            "{e}"
        );
    }

    #[test]
    fn the_lock_is_seen_while_held_and_released_on_drop() {
        let dir = TempDir::new("supervisor-lock");
        let path = dir.join("c.lock");
        assert!(!is_locked(&path).unwrap());
        let lock = SupervisorLock::acquire(&path, std::process::id()).unwrap();
        assert!(is_locked(&path).unwrap());
        let second = SupervisorLock::acquire(&path, std::process::id())
            .err()
            .unwrap();
        assert!(format!("{second:#}").contains("another supervisor runs"));
        drop(lock);
        assert!(!is_locked(&path).unwrap());
    }

    #[test]
    fn pid_liveness() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
        assert!(pid_running(std::process::id()));
        assert!(!pid_running(u32::MAX));
    }

    #[test]
    fn a_zombie_is_alive_but_not_running() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not waited for yet: once it exits it stays a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while pid_running(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(pid_alive(pid), "an unreaped child still exists");
        assert!(!pid_running(pid), "but it is a zombie");
        let mut child = child;
        child.wait().unwrap();
    }
}
