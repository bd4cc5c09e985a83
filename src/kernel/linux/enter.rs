//! Entering a cell to run a command in it.
//!
//! A short-lived thread joins the cell's PID namespace (`setns` on the init's
//! pidfd changes only that thread's `pid_for_children`) and creates the process;
//! between fork and exec the child joins the cgroup (and the cell's cgroup v1
//! groups on hybrid hosts), the mount, UTS and IPC namespaces, and applies the
//! profile (`caps`, `no_new_privs`, `seccomp`), rlimits (the cell's stored
//! ones, and the shared-pool bounds of `limits`) and credentials. `spawn` returns an ordinary `std::process::Child`;
//! `run` clones straight into the cell's cgroup and waits.

use super::ns::init_pidfd;
use super::state::CellRecord;
use super::sys::{check, last_error, open_dir, pipe, CloneArgs, CLONE_INTO_CGROUP};
use super::{caps, limits, seccomp};
use crate::kernel::ExecSpec;
use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The environment every command in a cell starts from (plus `TERM` and
/// `ExecSpec::env`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the child needs between fork and exec, prepared in the parent so
/// the child does not allocate.
struct Confinement {
    pidfd: OwnedFd,
    /// Written to join the cgroup, unless the process was cloned into it.
    cgroup_procs: Option<std::fs::File>,
    /// `tasks` of the cell's v1 groups (none on a pure cgroup2 host).
    v1_tasks: Vec<std::fs::File>,
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
            limits::join_v1(&self.v1_tasks)?;
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
            limits::bound_shared_pools()?;
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

/// The cell cgroup's `cgroup.procs`, opened for joining by a write.
fn cgroup_procs(cell: &CellRecord) -> Result<std::fs::File> {
    let path = cell.cgroup.join("cgroup.procs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Prepares the confinement of a command for a cell.
fn confinement(cell: &CellRecord, spec: &ExecSpec, join_by_write: bool) -> Result<Confinement> {
    let pidfd = init_pidfd(cell)?;
    let cgroup_procs = join_by_write.then(|| cgroup_procs(cell)).transpose()?;
    let v1_tasks = limits::open_v1_tasks(&cell.v1_groups)?;
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
        v1_tasks,
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
    let mut confinement = confinement(cell, spec, false)?;
    let pidfd = confinement.pidfd.as_raw_fd();
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
    let pid = in_pid_namespace(pidfd, || {
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
        let clone = |args: &mut CloneArgs| unsafe {
            libc::syscall(
                libc::SYS_clone3,
                args as *mut CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        let mut pid = clone(&mut args);
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
            // A cell at its process limit refuses a process cloned into it
            // (cgroup2's pids controller). The operator still gets in, as on
            // v1 hosts: moving into a cgroup is not limited, so fork first
            // and join between fork and exec.
            confinement.cgroup_procs = Some(cgroup_procs(cell)?);
            args.flags = 0;
            args.cgroup = 0;
            pid = clone(&mut args);
        }
        // SAFETY: in the child, only async-signal-safe calls on data prepared
        // above; it execs or _exits and never returns.
        unsafe {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_a_clean_default_plus_the_spec() {
        let spec = ExecSpec {
            env: vec![("PATH".into(), "/opt/bin".into()), ("A".into(), "1".into())],
            ..ExecSpec::default()
        };
        let env = environment(&spec);
        assert!(env.contains(&("HOME".into(), "/".into())));
        assert!(env.contains(&("PATH".into(), "/opt/bin".into())));
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(env.contains(&("A".into(), "1".into())));
    }

    #[test]
    fn programs_are_looked_up_in_the_commands_path() {
        let env = vec![("PATH".to_string(), "/a:/b".to_string())];
        let c = exec_candidates("sh", &env).unwrap();
        assert_eq!(
            c,
            vec![
                CString::new("/a/sh").unwrap(),
                CString::new("/b/sh").unwrap()
            ]
        );
        assert_eq!(exec_candidates("/bin/sh", &env).unwrap().len(), 1);
    }
}
