//! Namespaces: the cell's init (which holds the PID, mount, UTS and IPC
//! namespaces) and entering a cell to run a command in it.
//!
//! Start-up: `create` runs this binary again as `cells ctl --cell-init …` after
//! `setsid`, joining the cell's cgroup and `unshare(PID|NS|UTS|IPC)` (between fork
//! and exec). That process forks the cell's pid 1, reports the child's host pid
//! on stdout and exits. The child builds the root (`rootfs`), sets the host
//! name, reports `ok` (or `error: …`) and becomes the cell's init: it reaps
//! orphans and samples telemetry until `destroy` kills it.
//!
//! Entering: a short-lived thread joins the PID namespace (`setns` on the init's
//! pidfd changes only that thread's `pid_for_children`) and spawns the command;
//! between fork and exec the child joins the cgroup, the mount, UTS and IPC
//! namespaces, and applies the profile (`caps`, `no_new_privs`, `seccomp`),
//! rlimits and credentials. The caller gets an ordinary `std::process::Child`.

use super::state::CellRecord;
use super::{caps, rootfs, seccomp, telemetry};
use crate::kernel::ExecSpec;
use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The hidden `cellctl` argument that runs the cell init.
pub const INIT_COMMAND: &str = "--cell-init";

/// The environment every command in a cell starts from (plus `TERM` and
/// `ExecSpec::env`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn last_error<T>(what: impl Into<String>) -> Result<T> {
    Err(std::io::Error::last_os_error()).context(what.into())
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The start time of a process (clock ticks after boot), field 22 of its stat.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True while the recorded init (pid and start time) is alive.
pub fn init_alive(cell: &CellRecord) -> bool {
    start_time(cell.init_pid) == Some(cell.init_start)
}

/// A pidfd for a cell's init, checked against its start time so a recycled pid
/// is never mistaken for the init.
pub fn init_pidfd(cell: &CellRecord) -> Result<OwnedFd> {
    // SAFETY: pidfd_open returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, cell.init_pid, 0) } as libc::c_int;
    if fd < 0 || !init_alive(cell) {
        bail!(
            "the init process (pid {}) of cell '{}' is gone",
            cell.init_pid,
            cell.name
        );
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What the cell init needs; passed on its command line.
pub struct InitSpec<'a> {
    pub root: &'a Path,
    pub hostname: &'a str,
    pub cgroup: &'a Path,
    /// Directory for the telemetry sample.
    pub sample_dir: &'a Path,
}

/// Starts a cell's init; returns its host pid once the root is in place.
pub fn start_init(spec: &InitSpec) -> Result<i32> {
    let procs_path = spec.cgroup.join("cgroup.procs");
    let procs = std::fs::OpenOptions::new()
        .write(true)
        .open(&procs_path)
        .with_context(|| format!("opening {}", procs_path.display()))?;
    let procs_fd = procs.as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("cells")
        .arg("ctl")
        .arg(INIT_COMMAND)
        .arg(spec.root)
        .arg(spec.hostname)
        .arg(spec.cgroup)
        .arg(spec.sample_dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            check(libc::setsid())?;
            check(libc::write(procs_fd, b"0".as_ptr().cast(), 1) as libc::c_int)?;
            check(libc::unshare(
                libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC,
            ))
        });
    }
    let mut child = cmd.spawn().context("starting the cell init")?;
    let mut report = String::new();
    let read = child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut report);
    let _ = child.wait();
    read.context("reading the cell init's report")?;
    let mut pid = None;
    for line in report.lines() {
        if let Some(p) = line.strip_prefix("pid ") {
            pid = p.parse().ok();
        } else if let Some(msg) = line.strip_prefix("error: ") {
            bail!("{msg}");
        } else if line == "ok" {
            return pid.context("the cell init did not report its pid");
        }
    }
    bail!("the cell init exited during setup")
}

/// Entry of the re-executed binary (`cells ctl --cell-init root hostname cgroup sample_dir`).
pub fn init_main(args: &[String]) -> i32 {
    let [root, hostname, cgroup, sample_dir] = args else {
        eprintln!("cellctl: {INIT_COMMAND}: expected root, hostname, cgroup and sample directory");
        return crate::cli::EXIT_FAILURE;
    };
    let mut out = std::io::stdout().lock();
    // SAFETY: this process is single-threaded; the child continues in Rust code
    // that never returns to the caller.
    match unsafe { libc::fork() } {
        -1 => {
            let _ = writeln!(out, "error: fork: {}", std::io::Error::last_os_error());
            crate::cli::EXIT_FAILURE
        }
        0 => {
            drop(out);
            cell_init(
                Path::new(root),
                hostname,
                Path::new(cgroup),
                Path::new(sample_dir),
            )
        }
        pid => {
            let _ = writeln!(out, "pid {pid}").and_then(|()| out.flush());
            crate::cli::EXIT_OK
        }
    }
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    let c = CString::new(p.as_os_str().as_bytes())?;
    // SAFETY: open returns a new fd or -1.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return last_error(format!("opening {}", p.display()));
    }
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Pid 1 of the cell: set up, report, then run the init loop.
fn cell_init(root: &Path, hostname: &str, cgroup: &Path, sample_dir: &Path) -> ! {
    let setup = || -> Result<(OwnedFd, OwnedFd)> {
        // Opened before pivot_root: the sampler writes to the host's run
        // directory and reads the cgroup through these descriptors only.
        let samples = open_dir(sample_dir)?;
        let cg = open_dir(cgroup)?;
        rootfs::enter(root)?;
        // SAFETY: plain system calls with valid buffers.
        unsafe {
            if libc::sethostname(hostname.as_ptr().cast(), hostname.len()) != 0 {
                return last_error("setting the host name");
            }
            // Nothing in the cell may ptrace the init or reach its descriptors.
            if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
                return last_error("making the init non-dumpable");
            }
        }
        Ok((samples, cg))
    };
    let mut out = std::io::stdout();
    let (samples, cg) = match setup() {
        Ok(fds) => fds,
        Err(e) => {
            let _ = writeln!(out, "error: {e:#}").and_then(|()| out.flush());
            // SAFETY: ends this forked child without running the parent's exit handlers.
            unsafe { libc::_exit(1) }
        }
    };
    let _ = writeln!(out, "ok").and_then(|()| out.flush());
    // SAFETY: detach stdio from the creator's pipe; keep only our two descriptors.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    telemetry::run(samples, cg)
}

/// Everything the child needs between fork and exec, prepared in the parent so
/// the child does not allocate.
struct Confinement {
    pidfd: OwnedFd,
    cgroup_procs: std::fs::File,
    cwd: CString,
    keep_caps: u64,
    last_cap: u32,
    filter: Vec<libc::sock_filter>,
    rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    groups: Vec<libc::gid_t>,
    ids: Option<(libc::uid_t, libc::gid_t)>,
}

impl Confinement {
    /// Runs in the child after fork, before exec.
    fn apply(&self) -> std::io::Result<()> {
        // SAFETY: async-signal-safe system calls on data prepared before fork.
        unsafe {
            check(libc::write(self.cgroup_procs.as_raw_fd(), b"0".as_ptr().cast(), 1) as i32)?;
            check(libc::setns(
                self.pidfd.as_raw_fd(),
                libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC,
            ))?;
            check(libc::chdir(self.cwd.as_ptr()))?;
            for &(resource, value) in &self.rlimits {
                let lim = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                check(libc::setrlimit(resource, &lim))?;
            }
            caps::restrict(self.keep_caps, self.last_cap)?;
            if let Some((uid, gid)) = self.ids {
                check(libc::setgroups(self.groups.len(), self.groups.as_ptr()))?;
                check(libc::setresgid(gid, gid, gid))?;
                check(libc::setresuid(uid, uid, uid))?;
            }
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            seccomp::install(&self.filter)?;
            // Descriptors the caller leaked without CLOEXEC must not reach the cell.
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
        }
        Ok(())
    }
}

fn rlimits_of(cell: &CellRecord) -> Vec<(libc::__rlimit_resource_t, u64)> {
    [
        (libc::RLIMIT_NOFILE, cell.rlimits.nofile),
        (libc::RLIMIT_AS, cell.rlimits.address_space),
        (libc::RLIMIT_CORE, cell.rlimits.core),
    ]
    .into_iter()
    .filter_map(|(r, v)| v.map(|v| (r, v)))
    .collect()
}

/// Starts `spec` inside the cell.
pub fn spawn(cell: &CellRecord, spec: &ExecSpec, stdio: [Stdio; 3]) -> Result<Child> {
    let Some(program) = spec.argv.first() else {
        bail!("no command given");
    };
    let pidfd = init_pidfd(cell)?;
    let procs_path = cell.cgroup.join("cgroup.procs");
    let cgroup_procs = std::fs::OpenOptions::new()
        .write(true)
        .open(&procs_path)
        .with_context(|| format!("opening {}", procs_path.display()))?;
    let cwd = spec.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
    let ids = match (spec.uid, spec.gid) {
        (Some(u), Some(g)) => Some((u, g)),
        (Some(u), None) => Some((u, u)),
        (None, Some(_)) => bail!("a group id needs a user id"),
        (None, None) => None,
    };
    let confinement = Confinement {
        pidfd,
        cgroup_procs,
        cwd: CString::new(cwd.as_os_str().as_bytes()).context("working directory")?,
        keep_caps: caps::kept(cell.profile),
        last_cap: caps::last_cap(),
        filter: seccomp::filter(cell.profile),
        rlimits: if spec.apply_rlimits {
            rlimits_of(cell)
        } else {
            Vec::new()
        },
        groups: spec.groups.clone(),
        ids,
    };
    let pid_ns_fd = confinement.pidfd.as_raw_fd();

    let mut cmd = Command::new(program);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .env("HOME", "/");
    if let Some(term) = std::env::var_os("TERM") {
        cmd.env("TERM", term);
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    let [stdin, stdout, stderr] = stdio;
    cmd.stdin(stdin).stdout(stdout).stderr(stderr);
    if spec.process_group {
        cmd.process_group(0);
    }
    // SAFETY: `apply` only makes async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(move || confinement.apply());
    }
    // pid_for_children is per thread: join the PID namespace on a thread of
    // our own, so the caller's threads stay where they are.
    let spawned = std::thread::scope(|s| {
        s.spawn(move || -> Result<Child> {
            // SAFETY: setns on a pidfd we hold, affecting only this thread.
            if unsafe { libc::setns(pid_ns_fd, libc::CLONE_NEWPID) } != 0 {
                return last_error("joining the PID namespace");
            }
            cmd.spawn().with_context(|| format!("starting {program}"))
        })
        .join()
        .unwrap_or_else(|_| bail!("the spawning thread panicked"))
    });
    spawned.with_context(|| format!("running a command in cell '{}'", cell.name))
}
