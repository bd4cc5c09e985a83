//! What a process does between the spawn agent's fork (in the cell's init)
//! and its exec: a session of its own, its descriptors, then the cell's
//! profile (capability bounding set), rlimits, credentials and working
//! directory. The init prepares the profile's part once
//! ([`Confinement::new`]) and confines itself with the rest before it serves
//! ([`Confinement::confine_init`]: `no_new_privs` and the seccomp filter,
//! which every child inherits); everything a request adds is prepared before
//! the fork, so the child only makes system calls.

use super::{caps, seccomp};
use crate::kernel::{Profile, Rlimits};
use std::ffi::{CStr, CString};

/// The environment every command in a cell starts from (plus `TERM` and
/// `ExecSpec::env`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A step a child can fail at, reported to the host with its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Step {
    Session,
    Terminal,
    Descriptors,
    Cgroups,
    WorkingDirectory,
    Rlimits,
    Capabilities,
    Credentials,
    /// No child fails these any more (the init sets both for all of them),
    /// but an init of an older version may report them: the numbering stays.
    NoNewPrivs,
    Seccomp,
    Exec,
}

impl Step {
    const ALL: [Step; 11] = [
        Step::Session,
        Step::Terminal,
        Step::Descriptors,
        Step::Cgroups,
        Step::WorkingDirectory,
        Step::Rlimits,
        Step::Capabilities,
        Step::Credentials,
        Step::NoNewPrivs,
        Step::Seccomp,
        Step::Exec,
    ];

    pub fn from_code(code: i32) -> Option<Step> {
        Step::ALL.get(usize::try_from(code).ok()?).copied()
    }

    pub fn describe(self) -> &'static str {
        match self {
            Step::Session => "starting a new session",
            Step::Terminal => "taking the terminal",
            Step::Descriptors => "setting up stdin, stdout and stderr",
            Step::Cgroups => "joining the cell's process-limit group",
            Step::WorkingDirectory => "changing to the working directory",
            Step::Rlimits => "setting resource limits",
            Step::Capabilities => "dropping capabilities",
            Step::Credentials => "switching user and group",
            Step::NoNewPrivs => "setting no_new_privs",
            Step::Seccomp => "installing the seccomp filter",
            Step::Exec => "executing the command",
        }
    }
}

/// A failed step and its errno.
pub type Failure = (Step, i32);

fn check(step: Step, rc: libc::c_int) -> Result<(), Failure> {
    if rc < 0 {
        Err((
            step,
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL),
        ))
    } else {
        Ok(())
    }
}

/// The cell's profile as the child applies it.
pub struct Confinement {
    /// Credentials of a command that asks for none: cell root, set
    /// explicitly in a user namespace (the init itself runs as an id the
    /// cell does not have).
    default_ids: Option<(libc::uid_t, libc::gid_t)>,
    keep_caps: u64,
    last_cap: u32,
    filter: Vec<libc::sock_filter>,
    rlimits: Vec<(super::sys::RlimitResource, u64)>,
}

/// A request's part of the confinement, prepared before the fork.
pub struct Credentials<'a> {
    pub cwd: &'a CStr,
    pub apply_rlimits: bool,
    pub ids: Option<(libc::uid_t, libc::gid_t)>,
    pub groups: &'a [libc::gid_t],
}

impl Confinement {
    pub fn new(profile: Profile, rlimits: &Rlimits, userns: bool) -> Confinement {
        Confinement {
            default_ids: userns.then_some((0, 0)),
            keep_caps: caps::kept(profile),
            last_cap: caps::last_cap(),
            filter: seccomp::filter(profile),
            rlimits: [
                (libc::RLIMIT_NOFILE, rlimits.nofile),
                (libc::RLIMIT_AS, rlimits.address_space),
                (libc::RLIMIT_CORE, rlimits.core),
            ]
            .into_iter()
            .filter_map(|(r, v)| v.map(|v| (r, v)))
            .collect(),
        }
    }

    /// Confines the calling init once, before it forks anything: sets
    /// `no_new_privs` and installs the profile's seccomp filter, both of
    /// which every process it forks inherits and keeps across exec. The init
    /// needs nothing the filter denies once it is set up. One attach per
    /// cell instead of one per command: attaching a filter costs 0.1 to
    /// 1 ms (the kernel compiles it), and it happens here after the init
    /// reported ready, beside the creator's own work.
    pub fn confine_init(&self) -> std::io::Result<()> {
        // SAFETY: plain prctl.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        seccomp::install(&self.filter)
    }

    /// Runs in the child after the fork, before exec (the init's
    /// `no_new_privs` and seccomp filter already hold it).
    pub fn apply(&self, creds: &Credentials) -> Result<(), Failure> {
        // SAFETY: plain system calls on data prepared before the fork.
        unsafe {
            check(Step::WorkingDirectory, libc::chdir(creds.cwd.as_ptr()))?;
            if creds.apply_rlimits {
                for &(resource, value) in &self.rlimits {
                    let lim = libc::rlimit {
                        rlim_cur: value,
                        rlim_max: value,
                    };
                    check(Step::Rlimits, libc::setrlimit(resource, &lim))?;
                }
            }
            caps::restrict(self.keep_caps, self.last_cap)
                .map_err(|e| (Step::Capabilities, e.raw_os_error().unwrap_or(libc::EINVAL)))?;
            if let Some((uid, gid)) = creds.ids.or(self.default_ids) {
                check(
                    Step::Credentials,
                    libc::setgroups(creds.groups.len(), creds.groups.as_ptr()),
                )?;
                check(Step::Credentials, libc::setresgid(gid, gid, gid))?;
                check(Step::Credentials, libc::setresuid(uid, uid, uid))?;
            }
            // Descriptors beyond stdio must not reach the command.
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

/// Starts a new session; with `terminal`, makes it the controlling terminal.
/// Then puts `stdio` (the terminal three times, or the descriptors sent
/// along) on 0, 1 and 2, and restores the signal state the init changed.
pub fn become_session_leader(terminal: bool, stdio: [libc::c_int; 3]) -> Result<(), Failure> {
    // SAFETY: plain system calls on descriptors the child owns.
    unsafe {
        check(Step::Session, libc::setsid())?;
        if terminal {
            check(Step::Terminal, libc::ioctl(stdio[0], libc::TIOCSCTTY, 0))?;
        }
        for (target, &fd) in stdio.iter().enumerate() {
            check(Step::Descriptors, libc::dup2(fd, target as libc::c_int))?;
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // Handlers end at exec, ignored signals stay ignored: the init
        // ignores SIGPIPE only (see `ns::init_main`).
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    Ok(())
}

/// The files `execvp` would try for a program, given the command's PATH.
pub fn exec_candidates(program: &str, env: &[(String, String)]) -> Vec<CString> {
    if program.contains('/') {
        return CString::new(program).into_iter().collect();
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    path.split(':')
        .filter_map(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            CString::new(format!("{dir}/{program}")).ok()
        })
        .collect()
}

/// Executes the first candidate that exists; returns the errno that decides
/// (as `execvp`: EACCES is kept unless a later candidate succeeds).
pub fn exec(
    candidates: &[CString],
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> i32 {
    let mut errno = libc::ENOENT;
    for file in candidates {
        // SAFETY: NUL-terminated strings and NULL-terminated arrays prepared
        // before the fork; execve returns only on failure.
        unsafe {
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
    errno
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_looked_up_in_the_commands_path() {
        let env = vec![("PATH".to_string(), "/a:/b".to_string())];
        let c = exec_candidates("sh", &env);
        assert_eq!(
            c,
            vec![
                CString::new("/a/sh").unwrap(),
                CString::new("/b/sh").unwrap()
            ]
        );
        assert_eq!(exec_candidates("/bin/sh", &env).len(), 1);
    }

    #[test]
    fn steps_travel_as_their_codes() {
        for step in Step::ALL {
            assert_eq!(Step::from_code(step as i32), Some(step));
        }
        assert_eq!(Step::from_code(99), None);
    }
}
