//! The init side of the spawn agent: the loop the cell's init runs for the
//! cell's whole life. It accepts requests from the host, forks each process
//! from itself (see `enter` for what the child does before exec), reports
//! the start and the end, reaps orphans (it is pid 1 of the cell) and takes
//! the telemetry samples.
//!
//! The init is single-threaded, so the forked child may run ordinary code;
//! what a request needs is still prepared before the fork, so a bad request
//! fails in the init with a reply instead of in a child.

use super::super::enter::{self, become_session_leader, Confinement, Credentials, Step};
use super::super::telemetry::Sampler;
use super::incell::{Exits, InCell};
use super::{recv, send, Reply, Request, Service, MAX_REQUEST, SOCKET};
use crate::kernel::process::poll;
use crate::kernel::CellInfo;
use crate::kernel::WindowSize;
use crate::supervise::monitor::{Monitor, Place};
use crate::supervise::status::Paths;
use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Binds the agent's socket in the cell's runtime directory (`dir`, opened
/// on the host side of the init's setup) and listens.
pub fn listen(dir: &OwnedFd) -> Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let path = format!("/proc/self/fd/{}/{SOCKET}", dir.as_raw_fd());
    // A leftover of an earlier init with this id (ids are not reused, but a
    // crashed create can leave the directory).
    let _ = rustix::fs::unlinkat(dir, SOCKET, rustix::fs::AtFlags::empty());
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .context("creating the agent socket")?;
    let addr = SocketAddrUnix::new(path.as_str()).context("agent socket address")?;
    rustix::net::bind_unix(&sock, &addr).context("binding the agent socket")?;
    rustix::net::listen(&sock, 64).context("listening on the agent socket")?;
    Ok(sock)
}

/// A command forked in the cell ([`Forker::fork_command`]).
pub(super) struct Forked {
    pub(super) pid: libc::pid_t,
    pub(super) pidfd: OwnedFd,
    /// Read end of the child's error pipe: a (step, errno) pair, or EOF at exec.
    pub(super) errors: OwnedFd,
}

/// A process forked for a connection but not yet known to have exec'd.
struct Starting {
    conn: OwnedFd,
    forked: Forked,
    master: Option<OwnedFd>,
}

/// A process that runs; its end goes to `conn`.
struct Running {
    conn: OwnedFd,
    pid: libc::pid_t,
}

/// What every fork of the init needs: shared by the agent and the kernel of
/// the supervisor it runs ([`InCell`]).
pub struct Forker {
    /// `tasks` of the v1 groups each child joins (`limits::MEMBERS`).
    members: Vec<std::fs::File>,
    confinement: Confinement,
}

/// The service the init supervises (one process per running cell).
struct Supervision {
    monitor: Monitor<'static>,
    /// The supervision directory on the host, which the monitor's files
    /// name through `/proc/self/fd`.
    _dir: OwnedFd,
    /// Stop requests, answered once the monitor is done.
    stops: Vec<OwnedFd>,
}

/// The in-cell kernel of the supervisor: one per init, made by the first
/// supervision (the cell it names is the init's for its whole life).
static IN_CELL: std::sync::OnceLock<InCell> = std::sync::OnceLock::new();

pub struct Agent {
    listener: OwnedFd,
    /// The cell's devpts instance (`/dev/pts`), where terminals come from.
    ptys: OwnedFd,
    forker: Arc<Forker>,
    /// Exit statuses of the processes the supervisor started.
    exits: Exits,
    supervision: Option<Supervision>,
    sampler: Sampler,
    waiting: Vec<OwnedFd>,
    starting: Vec<Starting>,
    running: Vec<Running>,
    /// The first command of an ephemeral cell's init (`cellctl run`):
    /// `Some(None)` until it has started, then its pid. Once it has ended
    /// and its status is sent, the init exits and takes the cell's
    /// processes with it, so the host's destroy finds the init gone or
    /// going instead of killing it and waiting for a whole exit.
    ends_with_first: Option<Option<libc::pid_t>>,
    /// Whether a command was ever started (only the first counts above).
    started_any: bool,
}

/// A request made ready for the fork: every string a C string.
pub(super) struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    candidates: Vec<CString>,
    cwd: CString,
    ids: Option<(libc::uid_t, libc::gid_t)>,
    groups: Vec<libc::gid_t>,
    apply_rlimits: bool,
}

pub(super) fn prepare(req: &Request) -> std::result::Result<Prepared, (&'static str, i32)> {
    let bad = |_| {
        (
            "a NUL byte in the command, environment or directory",
            libc::EINVAL,
        )
    };
    let program = req.argv.first().ok_or(("no command given", libc::EINVAL))?;
    Ok(Prepared {
        argv: req
            .argv
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<std::result::Result<_, _>>()
            .map_err(bad)?,
        envp: req
            .env
            .iter()
            .map(|(k, v)| CString::new(format!("{k}={v}")))
            .collect::<std::result::Result<_, _>>()
            .map_err(bad)?,
        candidates: enter::exec_candidates(program, &req.env),
        cwd: CString::new(req.cwd.as_os_str().as_bytes()).map_err(bad)?,
        ids: req.ids,
        groups: req.groups.clone(),
        apply_rlimits: req.apply_rlimits,
    })
}

/// Whether the peer is outside the cell's PID namespace (a host process):
/// its pid reads as 0 here.
fn from_host(conn: &OwnedFd) -> bool {
    let mut cred = libc::ucred {
        pid: -1,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED fills a ucred of the given size.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    rc == 0 && cred.pid == 0
}

/// Allocates a terminal from the cell's devpts: (master, slave).
fn open_terminal(ptys: &OwnedFd, size: WindowSize) -> std::io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: openat/ioctl on descriptors we own; each result is checked.
    unsafe {
        let master = libc::openat(
            ptys.as_raw_fd(),
            c"ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let master = OwnedFd::from_raw_fd(master);
        let unlock: libc::c_int = 0;
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        crate::kernel::relay::set_window_size(master.as_fd(), size)?;
        let slave = libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if slave < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((master, OwnedFd::from_raw_fd(slave)))
    }
}

/// The forked child: becomes the command or reports why it could not.
/// Everything the child of [`Forker::fork_command`] uses, made before the
/// clone: the child allocates nothing (it may share the init's memory).
struct ChildPlan<'a> {
    prepared: &'a Prepared,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    members: &'a [std::fs::File],
    confinement: &'a Confinement,
    terminal: bool,
    stdio: [RawFd; 3],
    errors: RawFd,
}

/// A list of C strings as the NULL-terminated array `execve` takes.
fn c_array(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|c| c.as_ptr())
        .chain([std::ptr::null()])
        .collect()
}

/// The child of [`Forker::fork_command`]: confines itself and execs, or
/// writes why it could not to the error pipe. System calls only, on memory
/// the plan holds.
fn child(plan: &ChildPlan) -> ! {
    let prepared = plan.prepared;
    let creds = Credentials {
        cwd: &prepared.cwd,
        apply_rlimits: prepared.apply_rlimits,
        ids: prepared.ids,
        groups: &prepared.groups,
    };
    let failure = become_session_leader(plan.terminal, plan.stdio)
        .and_then(|()| {
            super::super::limits::join_v1(plan.members)
                .map_err(|e| (Step::Cgroups, e.raw_os_error().unwrap_or(libc::EIO)))
        })
        .and_then(|()| plan.confinement.apply(&creds))
        .err()
        .unwrap_or_else(|| {
            (
                Step::Exec,
                enter::exec(&prepared.candidates, &plan.argv, &plan.envp),
            )
        });
    let report = [failure.0 as i32, failure.1];
    // SAFETY: writes 8 bytes from a local array, then ends the child.
    unsafe {
        libc::write(plan.errors, report.as_ptr().cast(), 8);
        libc::_exit(127)
    }
}

impl Agent {
    pub fn new(
        listener: OwnedFd,
        ptys: OwnedFd,
        members: Vec<std::fs::File>,
        confinement: Confinement,
        sampler: Sampler,
    ) -> Agent {
        Agent {
            listener,
            ptys,
            forker: Arc::new(Forker {
                members,
                confinement,
            }),
            exits: Exits::default(),
            supervision: None,
            sampler,
            waiting: Vec::new(),
            starting: Vec::new(),
            running: Vec::new(),
            ends_with_first: None,
            started_any: false,
        }
    }

    /// An ephemeral cell's init: it ends once its first command has ended.
    pub fn ending_with_first_command(mut self) -> Agent {
        self.ends_with_first = Some(None);
        self
    }

    /// The descriptors the agent holds (the init keeps them when it closes
    /// what it inherited).
    pub fn fds(&self) -> Vec<RawFd> {
        let mut fds = vec![self.listener.as_raw_fd(), self.ptys.as_raw_fd()];
        fds.extend(self.forker.members.iter().map(|f| f.as_raw_fd()));
        fds.extend(self.sampler.fds());
        fds
    }

    /// Serves until the init is killed (`destroy`).
    pub fn serve(mut self) -> ! {
        // Before the first request: every process the init forks inherits
        // the filter (see `Confinement::confine_init`). Unconfined, the
        // init must not serve.
        if self.forker.confinement.confine_init().is_err() {
            // SAFETY: ends the init; the host finds its cell dead.
            unsafe { libc::_exit(1) }
        }
        let sigchld = match sigchld_fd() {
            Ok(fd) => fd,
            // SAFETY: without a way to reap, the init cannot do its job.
            Err(_) => unsafe { libc::_exit(1) },
        };
        loop {
            let mut fds = vec![
                (self.listener.as_raw_fd(), libc::POLLIN),
                (sigchld.as_raw_fd(), libc::POLLIN),
            ];
            fds.extend(self.waiting.iter().map(|c| (c.as_raw_fd(), libc::POLLIN)));
            fds.extend(
                self.starting
                    .iter()
                    .map(|s| (s.forked.errors.as_raw_fd(), libc::POLLIN)),
            );
            let mut due = self.sampler.due();
            if let Some(s) = self.supervision.as_mut() {
                fds.push((s.monitor.event_fd(), libc::POLLIN));
                due = s.monitor.next_deadline().map_or(due, |t| due.min(t));
            }
            let timeout = due.saturating_duration_since(Instant::now());
            let ready: Vec<bool> = poll(&fds, timeout.as_millis().min(1000) as libc::c_int + 1)
                .into_iter()
                .map(|revents| revents != 0)
                .collect();
            self.sampler.tick();
            let (nw, ns) = (self.waiting.len(), self.starting.len());
            // Starts first, then ends: a start is always reported before its end.
            for i in (0..ns).rev() {
                if ready[2 + nw + i] {
                    let s = self.starting.remove(i);
                    self.finish_start(s);
                }
            }
            if ready[1] {
                drain(&sigchld);
                self.reap();
            }
            for i in (0..nw).rev() {
                if ready[2 + i] {
                    let conn = self.waiting.remove(i);
                    self.handle(conn);
                }
            }
            if ready[0] {
                self.accept();
            }
            self.supervise();
        }
    }

    /// One turn of the supervisor's loop, without waiting (the poll above
    /// waited for its events and timers); the end of the supervision once
    /// it is done.
    fn supervise(&mut self) {
        let Some(s) = self.supervision.as_mut() else {
            return;
        };
        let mut events = mio::Events::with_capacity(8);
        // An error of its event loop ends the supervision as a stop would.
        if !s
            .monitor
            .turn(&mut events, Some(Duration::ZERO))
            .unwrap_or(true)
        {
            return;
        }
        if let Some(s) = self.supervision.take() {
            s.monitor.finish();
            // The lock is released (the monitor dropped) before the answer.
            for conn in s.stops {
                let _ = send(conn.as_fd(), &Reply::Done, &[]);
            }
        }
    }

    /// A request to the supervisor: start supervising, stop, write the
    /// status again. Answered [`Reply::Done`] (a stop once it is over) or
    /// [`Reply::Failed`] with errno 0 and the reason.
    fn service(&mut self, conn: OwnedFd, service: Service, fds: Vec<OwnedFd>) {
        let refuse = |conn: &OwnedFd, why: String| {
            let _ = send(
                conn.as_fd(),
                &Reply::Failed {
                    step: why,
                    errno: 0,
                },
                &[],
            );
        };
        match service {
            Service::Supervise {
                args,
                supervisor_pid,
                cell,
                cid,
                max_size,
                files,
                rate_limit,
                with_syslog,
                syslog_socket,
            } => {
                if self.supervision.is_some() {
                    return refuse(&conn, format!("cell {cell} is already supervised"));
                }
                let mut fds = fds.into_iter();
                let (Some(dir), syslog) = (fds.next(), fds.next().filter(|_| with_syslog)) else {
                    return refuse(&conn, "no supervision directory was sent".into());
                };
                let logs = crate::supervise::LogConfig {
                    syslog_socket,
                    rotation: crate::supervise::logfile::Rotation { max_size, files },
                    rate_limit,
                };
                let setup = Setup {
                    args: &args,
                    supervisor_pid,
                    cell: &cell,
                    cid,
                    logs: &logs,
                };
                match self.begin_supervision(setup, dir, syslog) {
                    Ok(()) => {
                        let _ = send(conn.as_fd(), &Reply::Done, &[]);
                    }
                    Err(e) => refuse(&conn, format!("{e:#}")),
                }
            }
            Service::Stop { grace_ms } => match self.supervision.as_mut() {
                Some(s) => {
                    s.monitor.request_stop_with(Duration::from_millis(grace_ms));
                    s.stops.push(conn);
                }
                None => {
                    let _ = send(conn.as_fd(), &Reply::Done, &[]);
                }
            },
            Service::WriteStatus => match self.supervision.as_mut() {
                Some(s) => {
                    s.monitor.write_status();
                    let _ = send(conn.as_fd(), &Reply::Done, &[]);
                }
                None => refuse(&conn, "the cell's init supervises nothing".into()),
            },
            Service::Syslog => match (self.supervision.as_mut(), fds.into_iter().next()) {
                (Some(s), Some(socket)) => {
                    s.monitor
                        .replace_syslog(std::os::unix::net::UnixDatagram::from(socket));
                    let _ = send(conn.as_fd(), &Reply::Done, &[]);
                }
                (None, _) => refuse(&conn, "the cell's init supervises nothing".into()),
                (_, None) => refuse(&conn, "no socket was sent".into()),
            },
        }
    }

    /// Starts the monitor of `setup` on the supervision directory `dir`.
    fn begin_supervision(
        &mut self,
        setup: Setup<'_>,
        dir: OwnedFd,
        syslog: Option<OwnedFd>,
    ) -> anyhow::Result<()> {
        let args: Vec<&str> = setup.args.iter().map(String::as_str).collect();
        let parsed =
            <crate::supervise::SuperviseArgs as argh::FromArgs>::from_args(&["supervise"], &args)
                .map_err(|e| anyhow::anyhow!("{}", e.output.trim_end()))?;
        let spec = crate::supervise::SuperviseSpec::from_args(&parsed)?;
        let kernel: &'static InCell = IN_CELL.get_or_init(|| InCell {
            forker: self.forker.clone(),
            exits: self.exits.clone(),
            cell: CellInfo {
                id: setup.cid,
                name: setup.cell.to_string(),
                root: PathBuf::from("/"),
                profile: crate::kernel::Profile::High,
                ports: Vec::new(),
                rlimits: Default::default(),
                age: 0,
                procs: 0,
                refs: 0,
                ids: None,
                frozen: false,
            },
        });
        if kernel.cell.name != setup.cell || kernel.cell.id != setup.cid {
            anyhow::bail!(
                "this init runs cell {}, not {}",
                kernel.cell.name,
                setup.cell
            );
        }
        let paths = Paths::in_dir(Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())));
        let place = Place::Init {
            pid: setup.supervisor_pid,
            syslog: syslog.map(std::os::unix::net::UnixDatagram::from),
        };
        let events = paths.dir.join(crate::supervise::EVENTS_FILE);
        let mut monitor =
            Monitor::new(kernel, spec, kernel.cell.clone(), paths, setup.logs, place)?;
        // The journal is the host's: events wait in the directory for it.
        crate::journal::events_to(Some((events, setup.supervisor_pid)));
        if monitor.begin() {
            monitor.finish();
            anyhow::bail!("the supervision ended at its start");
        }
        self.supervision = Some(Supervision {
            monitor,
            _dir: dir,
            stops: Vec::new(),
        });
        Ok(())
    }

    fn accept(&mut self) {
        while let Ok(conn) =
            rustix::net::accept_with(&self.listener, rustix::net::SocketFlags::CLOEXEC)
        {
            if from_host(&conn) {
                self.waiting.push(conn);
            }
        }
    }

    /// Reads a request and forks its process.
    fn handle(&mut self, conn: OwnedFd) {
        let Ok(Some((request, fds))) = recv::<Request>(conn.as_fd(), MAX_REQUEST) else {
            return;
        };
        if let Some(service) = request.service {
            return self.service(conn, service, fds);
        }
        let fail = |conn: &OwnedFd, step: &str, errno: i32| {
            let _ = send(
                conn.as_fd(),
                &Reply::Failed {
                    step: step.to_string(),
                    errno,
                },
                &[],
            );
        };
        let prepared = match prepare(&request) {
            Ok(p) => p,
            Err((step, errno)) => return fail(&conn, step, errno),
        };
        let (master, stdio): (Option<OwnedFd>, Vec<OwnedFd>) = match request.terminal {
            Some(size) => match open_terminal(&self.ptys, size) {
                Ok((master, slave)) => (Some(master), vec![slave]),
                Err(e) => {
                    return fail(
                        &conn,
                        "allocating a terminal in the cell",
                        e.raw_os_error().unwrap_or(libc::EIO),
                    )
                }
            },
            None if fds.len() == 3 => (None, fds),
            None => return fail(&conn, "expected stdin, stdout and stderr", libc::EINVAL),
        };
        let raw: [RawFd; 3] = match stdio.len() {
            1 => [stdio[0].as_raw_fd(); 3],
            _ => [
                stdio[0].as_raw_fd(),
                stdio[1].as_raw_fd(),
                stdio[2].as_raw_fd(),
            ],
        };
        let forked = match self.forker.fork_command(&prepared, master.is_some(), raw) {
            Ok(f) => f,
            Err((step, errno)) => return fail(&conn, step, errno),
        };
        drop(stdio);
        self.starting.push(Starting {
            conn,
            forked,
            master,
        });
    }

    /// The child exec'd (its error pipe closed) or reported a failure.
    fn finish_start(&mut self, s: Starting) {
        let first = !std::mem::replace(&mut self.started_any, true);
        let mut report = [0i32; 2];
        // SAFETY: reads at most 8 bytes into a local array; the child has
        // exec'd, failed or died, so this does not block.
        let n = unsafe { libc::read(s.forked.errors.as_raw_fd(), report.as_mut_ptr().cast(), 8) };
        if n == 8 {
            let step = Step::from_code(report[0]).map_or("starting the command", Step::describe);
            let _ = send(
                s.conn.as_fd(),
                &Reply::Failed {
                    step: step.to_string(),
                    errno: report[1],
                },
                &[],
            );
            return;
        }
        let mut fds = vec![s.forked.pidfd.as_fd()];
        if let Some(m) = &s.master {
            fds.push(m.as_fd());
        }
        if send(s.conn.as_fd(), &Reply::Started, &fds).is_ok() {
            if let (true, Some(pid @ None)) = (first, self.ends_with_first.as_mut()) {
                *pid = Some(s.forked.pid);
            }
            self.running.push(Running {
                conn: s.conn,
                pid: s.forked.pid,
            });
        }
    }

    /// Reaps every ended child: started ones are reported, orphans of the
    /// cell just collected.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: reaps any ended child without blocking.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if let Some(i) = self.starting.iter().position(|s| s.forked.pid == pid) {
                let s = self.starting.remove(i);
                self.finish_start(s);
            }
            if let Some(slot) = self
                .exits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&pid)
            {
                *slot = Some(status);
            }
            if let Some(i) = self.running.iter().position(|r| r.pid == pid) {
                let r = self.running.remove(i);
                let _ = send(r.conn.as_fd(), &Reply::Exited { status }, &[]);
                if self.ends_with_first == Some(Some(pid)) {
                    // SAFETY: ends pid 1; the kernel kills what is left in
                    // the cell. The status sent stays readable on the socket.
                    unsafe { libc::_exit(0) }
                }
            }
        }
    }
}

impl Forker {
    /// Forks the command of `prepared` on `stdio` (a terminal's slave three
    /// times when `terminal`): the child confines itself and execs, or writes
    /// why it could not to the error pipe. Every process the init starts
    /// comes through here.
    pub(super) fn fork_command(
        &self,
        prepared: &Prepared,
        terminal: bool,
        stdio: [RawFd; 3],
    ) -> std::result::Result<Forked, (&'static str, i32)> {
        let (errors_r, errors_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| ("creating a pipe", e.raw_os_error()))?;
        let plan = ChildPlan {
            prepared,
            argv: c_array(&prepared.argv),
            envp: c_array(&prepared.envp),
            members: &self.members,
            confinement: &self.confinement,
            terminal,
            stdio,
            errors: errors_w.as_raw_fd(),
        };
        let mut pidfd: libc::c_int = -1;
        // SAFETY: the child runs `child` on the plan, which outlives the
        // clone; it only makes system calls and ends in exec or _exit.
        let pid = unsafe { clone_child(&mut pidfd, &plan) };
        if pid < 0 {
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EAGAIN);
            return Err(("forking the process", errno));
        }
        drop(errors_w);
        Ok(Forked {
            pid: pid as libc::pid_t,
            // SAFETY: the descriptor CLONE_PIDFD made for the child.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
            errors: errors_r,
        })
    }
}

/// Clones the child of [`Forker::fork_command`] as vfork where it can: the
/// init's page tables are not copied for a child that execs at once (nor
/// torn down again at its exec), and the init takes no copy-on-write faults
/// afterwards; it waits meanwhile, as the child makes a few system calls and
/// execs. Through `clone`, as the init's own seccomp filter requires. A fork
/// elsewhere, or where the kernel refuses the combination. Returns the
/// child's pid (its pidfd in `pidfd`), or -1 with errno set.
///
/// SAFETY: `plan` lives until this returns; see [`child`].
unsafe fn clone_child(pidfd: &mut libc::c_int, plan: &ChildPlan) -> libc::c_long {
    let flags = (libc::CLONE_PIDFD | libc::SIGCHLD) as u64;
    #[cfg(target_arch = "x86_64")]
    {
        unsafe extern "C" fn run(plan: *mut libc::c_void) -> ! {
            child(&*(plan as *const ChildPlan))
        }
        let arg = plan as *const ChildPlan as *mut libc::c_void;
        let pid = super::super::sys::clone_vfork(flags, pidfd, run, arg);
        if pid >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return pid;
        }
    }
    // clone without CLONE_VM and a stack is a fork.
    let pid = libc::syscall(
        libc::SYS_clone,
        flags,
        0usize,
        pidfd as *mut libc::c_int,
        0usize,
        0usize,
    );
    if pid == 0 {
        child(plan);
    }
    pid
}

/// What a supervision request names.
struct Setup<'a> {
    args: &'a [String],
    supervisor_pid: u32,
    cell: &'a str,
    cid: u64,
    logs: &'a crate::supervise::LogConfig,
}

/// SIGCHLD as a readable descriptor (the signal is blocked in the init; the
/// children unblock it).
fn sigchld_fd() -> std::io::Result<OwnedFd> {
    // SAFETY: signal mask and signalfd of this single-threaded process.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Empties a non-blocking descriptor.
fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 1024];
    // SAFETY: reads into a local buffer until it would block.
    while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}
