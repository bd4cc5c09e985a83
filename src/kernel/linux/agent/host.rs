//! The host side of the spawn agent: asks a cell's init to start a process
//! and holds it as a [`Child`] (see the parent module for the protocol).

use super::{recv, send, Reply, Request, MAX_REPLY, SOCKET};
use crate::kernel::process::{is_terminal, Child, Handle, Stdio};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

/// A process the agent started: the pidfd signals it, the connection brings
/// its exit status.
struct Remote {
    conn: OwnedFd,
    pidfd: OwnedFd,
    status: Option<ExitStatus>,
}

impl Remote {
    /// Reads the next message; blocks unless `nonblocking`.
    fn receive(&mut self, nonblocking: bool) -> std::io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        if nonblocking {
            let mut pfd = libc::pollfd {
                fd: self.conn.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: polls one descriptor we own, without waiting.
            if unsafe { libc::poll(&mut pfd, 1, 0) } <= 0 {
                return Ok(None);
            }
        }
        let status = match recv::<Reply>(self.conn.as_fd(), MAX_REPLY)? {
            Some((Reply::Exited { status }, _)) => ExitStatus::from_raw(status),
            Some((other, _)) => {
                return Err(std::io::Error::other(format!(
                    "the cell's init sent {other:?} where an exit status was due"
                )))
            }
            // The init is gone, and with it every process of the cell.
            None => ExitStatus::from_raw(libc::SIGKILL),
        };
        self.status = Some(status);
        Ok(Some(status))
    }
}

impl Handle for Remote {
    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.receive(true)
    }

    fn wait(&mut self) -> std::io::Result<ExitStatus> {
        Ok(self.receive(false)?.expect("a blocking receive ends"))
    }

    fn signal(&mut self, signal: libc::c_int) -> std::io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        // SAFETY: pidfd_send_signal on a pidfd we own.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // Already ended (the init reaps it before we hear of it).
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e);
            }
        }
        Ok(())
    }

    fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.conn.as_fd())
    }
}

/// The pid a pidfd refers to, in our PID namespace (`Pid:` in its fdinfo);
/// 0 when the process has ended and been reaped already.
fn pid_of(pidfd: &OwnedFd) -> Result<u32> {
    let path = format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd());
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let pid = text
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .with_context(|| format!("{path}: no Pid line"))?;
    Ok(u32::try_from(pid).unwrap_or(0))
}

/// One standard descriptor for the cell: what the process gets, and what the
/// caller keeps (its end of a pipe).
pub(super) fn prepare(stdio: Stdio, input: bool) -> Result<(OwnedFd, Option<File>)> {
    match stdio {
        Stdio::Null => {
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .context("opening /dev/null")?;
            Ok((null.into(), None))
        }
        Stdio::Piped => {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .context("creating a pipe")?;
            Ok(if input {
                (r, Some(File::from(w)))
            } else {
                (w, Some(File::from(r)))
            })
        }
        Stdio::Fd(fd) => {
            if is_terminal(fd.as_fd()) {
                bail!(
                    "a terminal cannot be handed to a cell process; \
                     it gets one of its own (ExecSpec::terminal)"
                );
            }
            Ok((fd, None))
        }
    }
}

/// Connects to the agent of the cell whose runtime directory is `cell_dir`.
/// Through `/proc/self/fd`, so the socket path stays short whatever the run
/// directory's length.
fn connect(cell_dir: &Path) -> Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let dir = rustix::fs::open(
        cell_dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening {}", cell_dir.display()))?;
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .context("creating a socket")?;
    let addr = SocketAddrUnix::new(format!("/proc/self/fd/{}/{SOCKET}", dir.as_raw_fd()))
        .context("socket address")?;
    match rustix::net::connect_unix(&sock, &addr) {
        Ok(()) => {}
        Err(rustix::io::Errno::NOENT) => bail!(
            "the cell's init has no socket at {}: the cell was made by an older \
             version of cells; destroy and create it again (cellmgr cell restart)",
            cell_dir.join(SOCKET).display()
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "connecting to the cell's init at {}",
                    cell_dir.join(SOCKET).display()
                )
            })
        }
    }
    Ok(sock)
}

/// Asks the agent of the cell at `cell_dir` to start `request`.
pub fn spawn(cell_dir: &Path, request: &Request, stdio: [Stdio; 3]) -> Result<Child> {
    send_request(cell_dir, request, stdio)?.started()
}

/// A request sent to a cell's agent, its answer not yet read.
pub struct Sent {
    conn: OwnedFd,
    program: String,
    terminal: bool,
    kept: [Option<File>; 3],
}

/// Sends `request` to the agent of the cell at `cell_dir`; [`Sent::started`]
/// reads the answer (the caller may do other work meanwhile: the init
/// starts the process in parallel).
pub fn send_request(cell_dir: &Path, request: &Request, stdio: [Stdio; 3]) -> Result<Sent> {
    let program = request.argv.first().context("no command given")?;
    let mut given = Vec::new();
    let mut kept: [Option<File>; 3] = [None, None, None];
    if request.terminal.is_none() {
        for (i, s) in stdio.into_iter().enumerate() {
            let (theirs, ours) = prepare(s, i == 0)?;
            given.push(theirs);
            kept[i] = ours;
        }
    }
    let conn = connect(cell_dir)?;
    let fds: Vec<BorrowedFd<'_>> = given.iter().map(|f| f.as_fd()).collect();
    send(conn.as_fd(), request, &fds).context("sending the request to the cell's init")?;
    Ok(Sent {
        conn,
        program: program.clone(),
        terminal: request.terminal.is_some(),
        kept,
    })
}

impl Sent {
    /// Waits until the process runs: the child, or why it could not start.
    pub fn started(self) -> Result<Child> {
        let Sent {
            conn,
            program,
            terminal,
            kept,
        } = self;
        let reply =
            recv::<Reply>(conn.as_fd(), MAX_REPLY).context("reading the cell init's reply")?;
        let mut fds = match reply {
            Some((Reply::Started, fds)) => fds.into_iter(),
            Some((Reply::Failed { step, errno }, _)) => {
                return Err(std::io::Error::from_raw_os_error(errno))
                    .with_context(|| format!("starting {program}: {}", crate::output::echo(&step)))
            }
            Some((Reply::Exited { .. } | Reply::Done, _)) => {
                bail!("the cell's init replied to a start request with something else than a start")
            }
            None => bail!("the cell's init closed the connection (is the cell being destroyed?)"),
        };
        let pidfd = fds.next().context("the cell's init sent no pidfd")?;
        let terminal = if terminal {
            Some(File::from(
                fds.next().context("the cell's init sent no terminal")?,
            ))
        } else {
            None
        };
        let pid = pid_of(&pidfd)?;
        let remote = Remote {
            conn,
            pidfd,
            status: None,
        };
        Ok(Child::new(pid, Box::new(remote), kept, terminal))
    }
}

/// Sends a request to the supervisor in the init of the cell at `cell_dir`
/// with `fds` attached and waits at most `wait` for its answer: `None`
/// when none came in time (the init is stopped or wedged).
pub fn service(
    cell_dir: &Path,
    request: &Request,
    fds: &[BorrowedFd<'_>],
    wait: std::time::Duration,
) -> Result<Option<()>> {
    let conn = connect(cell_dir)?;
    send(conn.as_fd(), request, fds).context("sending the request to the cell's init")?;
    let mut pfd = libc::pollfd {
        fd: conn.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: polls one descriptor we own.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            0 => return Ok(None),
            n if n < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
    match recv::<Reply>(conn.as_fd(), MAX_REPLY).context("reading the cell init's reply")? {
        Some((Reply::Done, _)) => Ok(Some(())),
        Some((Reply::Failed { step, errno: 0 }, _)) => {
            bail!("{}", crate::output::echo(&step))
        }
        // An init of an older version takes the request for a command
        // without one.
        Some((
            Reply::Failed {
                errno: libc::EINVAL,
                ..
            },
            _,
        )) if request.argv.is_empty() => bail!(
            "the cell's init was started by an older version of cells and cannot supervise: \
             restart the cell (cellmgr restart)"
        ),
        Some((Reply::Failed { step, errno }, _)) => Err(std::io::Error::from_raw_os_error(errno))
            .with_context(|| crate::output::echo(&step).to_string()),
        Some(_) => {
            bail!("the cell's init answered a supervision request with a process's start or end")
        }
        None => bail!("the cell's init closed the connection (is the cell being destroyed?)"),
    }
}
