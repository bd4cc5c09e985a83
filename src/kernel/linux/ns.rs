//! Namespaces: the cell's init (which holds the PID, mount, UTS and IPC
//! namespaces) and entering a cell to run a command in it.
//!
//! Start-up: `create` clones the cell's pid 1 straight into new PID, mount, UTS
//! and IPC namespaces and the cell's cgroup (clone3), which execs this binary as
//! `cells ctl --cell-init`. It builds the root (`rootfs`), sets the host name,
//! reports `ok` (or `error: …`) on stdout and becomes the cell's init: it reaps
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

/// Kills a cell's init (and with it the PID namespace) and waits until it has
/// exited, so its cgroup can be removed at once. Reaps it when it is our child
/// (a long-running caller that created the cell).
pub fn stop_init(cell: &CellRecord) -> Result<()> {
    let Ok(pidfd) = init_pidfd(cell) else {
        return Ok(());
    };
    // SAFETY: signal and poll on a pidfd we hold; waitpid only reaps our own child.
    unsafe {
        if libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        ) != 0
        {
            return last_error(format!("killing the init of cell '{}'", cell.name));
        }
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        libc::poll(&mut pfd, 1, 5_000);
        libc::waitpid(cell.init_pid, std::ptr::null_mut(), libc::WNOHANG);
    }
    Ok(())
}

/// What the cell init needs; sent on its stdin.
pub struct InitSpec<'a> {
    pub root: &'a Path,
    pub hostname: &'a str,
    pub cgroup: &'a Path,
    /// Directory for the telemetry sample.
    pub sample_dir: &'a Path,
}

/// `struct clone_args` of clone3(2), up to `cgroup`.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fresh descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return last_error("creating a pipe");
    }
    // SAFETY: fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Starts a cell's init; returns its host pid once the root is in place.
///
/// clone3 creates the init directly as pid 1 of new PID, mount, UTS and IPC
/// namespaces and inside the cell's cgroup (no migration afterwards, which
/// would cost an RCU grace period), then it execs this binary. The setup
/// travels on its stdin rather than argv: the cell can read its init's command
/// line, and host paths are none of its business.
pub fn start_init(spec: &InitSpec) -> Result<i32> {
    let cgroup = open_dir(spec.cgroup)?;
    let (setup_r, setup_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    let exe = c"/proc/self/exe";
    let init_arg = CString::new(INIT_COMMAND).expect("static");
    let argv = [
        c"cells".as_ptr(),
        c"ctl".as_ptr(),
        init_arg.as_ptr(),
        std::ptr::null(),
    ];
    let envp = [std::ptr::null::<libc::c_char>()];
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP
            | (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC)
                as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM is a fork; the child only makes
    // async-signal-safe calls on data prepared above, then execs or _exits.
    let pid = unsafe {
        let pid = libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        );
        if pid == 0 {
            libc::setsid();
            libc::dup2(setup_r.as_raw_fd(), 0);
            libc::dup2(report_w.as_raw_fd(), 1);
            libc::dup2(null.as_raw_fd(), 2);
            libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
        pid
    };
    if pid < 0 {
        return last_error("creating the cell init (clone3)");
    }
    let pid = pid as i32;
    drop((setup_r, report_w));
    let mut setup = Vec::new();
    for field in [
        spec.root.as_os_str().as_bytes(),
        spec.hostname.as_bytes(),
        spec.cgroup.as_os_str().as_bytes(),
        spec.sample_dir.as_os_str().as_bytes(),
    ] {
        setup.extend_from_slice(field);
        setup.push(0);
    }
    let sent = std::fs::File::from(setup_w).write_all(&setup);
    let mut report = String::new();
    let read = std::fs::File::from(report_r).read_to_string(&mut report);
    let failed = |why: anyhow::Error| -> Result<i32> {
        // SAFETY: the init is our child and has exited (or is exiting) on its own.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        Err(why)
    };
    if let Err(e) = sent.context("sending the cell init its setup") {
        return failed(e);
    }
    if let Err(e) = read.context("reading the cell init's report") {
        return failed(e);
    }
    match report.lines().next() {
        Some("ok") => Ok(pid),
        Some(line) => failed(anyhow::anyhow!(
            "{}",
            line.strip_prefix("error: ").unwrap_or(line)
        )),
        None => failed(anyhow::anyhow!("the cell init exited during setup")),
    }
}

/// Entry of the re-executed binary (`cells ctl --cell-init`), running as pid 1
/// of the cell; the setup (root, host name, cgroup, sample directory) arrives
/// NUL-separated on stdin.
pub fn init_main(args: &[String]) -> i32 {
    let mut input = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut input);
    let fields: Vec<&[u8]> = input.split(|&b| b == 0).collect();
    let ([root, hostname, cgroup, sample_dir, _], []) = (&fields[..], args) else {
        eprintln!("cellctl: {INIT_COMMAND}: internal use only");
        return crate::cli::EXIT_FAILURE;
    };
    let path = |b: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(b));
    let hostname = String::from_utf8_lossy(hostname).into_owned();
    cell_init(&path(root), &hostname, &path(cgroup), &path(sample_dir))
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
    // SAFETY: detach stdio from the creator's pipes and close every descriptor
    // inherited from the creator's caller; keep only our two.
    unsafe {
        let mut keep = [samples.as_raw_fd() as u32, cg.as_raw_fd() as u32];
        keep.sort_unstable();
        let mut from = 3u32;
        for fd in keep {
            if fd > from {
                libc::syscall(libc::SYS_close_range, from, fd - 1, 0u32);
            }
            from = fd + 1;
        }
        libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32);
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
    /// Written to join the cgroup, unless the process was cloned into it.
    cgroup_procs: Option<std::fs::File>,
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
            if let Some(procs) = &self.cgroup_procs {
                check(libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) as i32)?;
            }
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

/// Prepares the confinement of a command for a cell.
fn confinement(cell: &CellRecord, spec: &ExecSpec, join_by_write: bool) -> Result<Confinement> {
    let pidfd = init_pidfd(cell)?;
    let cgroup_procs = if join_by_write {
        let procs_path = cell.cgroup.join("cgroup.procs");
        Some(
            std::fs::OpenOptions::new()
                .write(true)
                .open(&procs_path)
                .with_context(|| format!("opening {}", procs_path.display()))?,
        )
    } else {
        None
    };
    let cwd = spec.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
    let ids = match (spec.uid, spec.gid) {
        (Some(u), Some(g)) => Some((u, g)),
        (Some(u), None) => Some((u, u)),
        (None, Some(_)) => bail!("a group id needs a user id"),
        (None, None) => None,
    };
    Ok(Confinement {
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
    })
}

/// The environment of a command in a cell: PATH, HOME, the caller's TERM, then
/// the spec's own variables (which may override the defaults).
fn environment(spec: &ExecSpec) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), DEFAULT_PATH.to_string()),
        ("HOME".to_string(), "/".to_string()),
    ];
    if let Ok(term) = std::env::var("TERM") {
        env.push(("TERM".into(), term));
    }
    for (k, v) in &spec.env {
        env.retain(|(old, _)| old != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// Joins the cell's PID namespace on a thread of our own (pid_for_children is
/// per thread, so the caller's threads stay where they are) and runs `start`
/// there.
fn in_pid_namespace<T: Send>(
    pidfd: libc::c_int,
    start: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(move || -> Result<T> {
            // SAFETY: setns on a pidfd the caller holds, affecting only this thread.
            if unsafe { libc::setns(pidfd, libc::CLONE_NEWPID) } != 0 {
                return last_error("joining the PID namespace");
            }
            start()
        })
        .join()
        .unwrap_or_else(|_| bail!("the spawning thread panicked"))
    })
}

/// Starts `spec` inside the cell.
pub fn spawn(cell: &CellRecord, spec: &ExecSpec, stdio: [Stdio; 3]) -> Result<Child> {
    let Some(program) = spec.argv.first() else {
        bail!("no command given");
    };
    let confinement = confinement(cell, spec, true)?;
    let pid_ns_fd = confinement.pidfd.as_raw_fd();
    let mut cmd = Command::new(program);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .envs(environment(spec));
    let [stdin, stdout, stderr] = stdio;
    cmd.stdin(stdin).stdout(stdout).stderr(stderr);
    if spec.process_group {
        cmd.process_group(0);
    }
    // SAFETY: `apply` only makes async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(move || confinement.apply());
    }
    in_pid_namespace(pid_ns_fd, move || {
        cmd.spawn().with_context(|| format!("starting {program}"))
    })
    .with_context(|| format!("running a command in cell '{}'", cell.name))
}

/// The files `execvp` would try for a program, given the command's PATH.
fn exec_candidates(program: &str, env: &[(String, String)]) -> Result<Vec<CString>> {
    if program.contains('/') {
        return Ok(vec![CString::new(program)?]);
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    path.split(':')
        .map(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            Ok(CString::new(format!("{dir}/{program}"))?)
        })
        .collect()
}

/// Runs `spec` in the cell with the caller's stdio and waits for it; returns
/// its exit status (128 + signal number when killed).
///
/// Unlike `spawn`, the process is cloned straight into the cell's cgroup
/// (clone3 `CLONE_INTO_CGROUP`), which saves the cgroup migration, the most
/// expensive step of `spawn`. `started` is called once the command runs (or
/// failed to start): the caller's lock need not be held while it is waited for.
pub fn run(cell: &CellRecord, spec: &ExecSpec, started: impl FnOnce()) -> Result<i32> {
    let Some(program) = spec.argv.first() else {
        bail!("no command given");
    };
    let confinement = confinement(cell, spec, false)?;
    let cgroup = open_dir(&cell.cgroup)?;
    let env = environment(spec);
    let candidates = exec_candidates(program, &env)?;
    let argv_c: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .context("NUL in an argument")?;
    let envp_c: Vec<CString> = env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<_, _>>()
        .context("NUL in the environment")?;
    // The child reports a failure before exec as an errno on this pipe; EOF
    // (CLOEXEC at a successful exec) means the command runs.
    let (err_r, err_w) = pipe()?;
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    let pid = in_pid_namespace(confinement.pidfd.as_raw_fd(), || {
        let argv: Vec<*const libc::c_char> = argv_c
            .iter()
            .map(|c| c.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let envp: Vec<*const libc::c_char> = envp_c
            .iter()
            .map(|c| c.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        // SAFETY: clone3 without CLONE_VM is a fork; the child makes only
        // async-signal-safe calls on data prepared above and never returns.
        unsafe {
            let pid = libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            );
            if pid < 0 {
                return last_error("creating the process (clone3)");
            }
            if pid > 0 {
                return Ok(pid as libc::pid_t);
            }
            let mut errno = match confinement.apply() {
                Ok(()) => libc::ENOENT,
                Err(e) => e.raw_os_error().unwrap_or(libc::EINVAL),
            };
            if errno == libc::ENOENT {
                for file in &candidates {
                    libc::execve(file.as_ptr(), argv.as_ptr(), envp.as_ptr());
                    let e = *libc::__errno_location();
                    if e != libc::ENOENT && e != libc::ENOTDIR {
                        errno = e;
                        if e != libc::EACCES {
                            break;
                        }
                    }
                }
            }
            libc::write(err_w.as_raw_fd(), (&errno as *const i32).cast(), 4);
            libc::_exit(127)
        }
    })
    .with_context(|| format!("running a command in cell '{}'", cell.name))?;
    drop(err_w);
    let mut errno = [0u8; 4];
    let got = std::fs::File::from(err_r).read(&mut errno).unwrap_or(0);
    started();
    // SAFETY: waiting for and handling signals around our own child.
    unsafe {
        if got == 4 {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
            return Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
                .with_context(|| format!("starting {program} in cell '{}'", cell.name));
        }
        // Like system(3): the terminal's INT and QUIT are for the command.
        let int = libc::signal(libc::SIGINT, libc::SIG_IGN);
        let quit = libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        let mut status = 0;
        let rc = libc::waitpid(pid, &mut status, 0);
        libc::signal(libc::SIGINT, int);
        libc::signal(libc::SIGQUIT, quit);
        if rc < 0 {
            return last_error(format!("waiting for {program} in cell '{}'", cell.name));
        }
        Ok(if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            libc::WEXITSTATUS(status)
        })
    }
}
