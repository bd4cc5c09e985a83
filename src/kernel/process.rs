//! A process started in a cell, as its caller holds it.
//!
//! Backends hand back a [`Child`] whoever made the process: a fork of the
//! caller (NetBSD, test kernels) or the cell's own spawn agent (Linux), in
//! which case the process is not the caller's child at all and its exit
//! status arrives over a descriptor. The caller waits, polls, signals and
//! reads the pipes the same way in both cases.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::process::{ExitStatus, Output};

/// What one of a cell process's standard descriptors is connected to.
#[derive(Debug)]
pub enum Stdio {
    /// `/dev/null`.
    Null,
    /// A new pipe; the caller's end is in [`Child::stdin`] and friends.
    Piped,
    /// A descriptor of the caller's. Never a terminal: a cell process gets
    /// a terminal only as its own (`ExecSpec::terminal`).
    Fd(OwnedFd),
}

/// For backends that fork the process themselves.
impl From<Stdio> for std::process::Stdio {
    fn from(s: Stdio) -> std::process::Stdio {
        match s {
            Stdio::Null => std::process::Stdio::null(),
            Stdio::Piped => std::process::Stdio::piped(),
            Stdio::Fd(fd) => std::process::Stdio::from(fd),
        }
    }
}

/// How a backend waits for and signals a process it started.
pub trait Handle: Send {
    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>>;
    fn wait(&mut self) -> std::io::Result<ExitStatus>;
    /// Sends `signal` to the process; a process that has ended already is fine.
    fn signal(&mut self, signal: libc::c_int) -> std::io::Result<()>;
    /// A descriptor that turns readable once the process has ended, for event
    /// loops; `None` when the caller learns it from SIGCHLD (its own child).
    fn exit_fd(&self) -> Option<BorrowedFd<'_>>;
}

/// A process in a cell.
pub struct Child {
    pid: u32,
    handle: Box<dyn Handle>,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    /// The controlling side (master) of the process's own terminal, when it
    /// was started with one.
    pub terminal: Option<File>,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child").field("pid", &self.pid).finish()
    }
}

/// A process the caller forked itself.
impl Handle for std::process::Child {
    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        std::process::Child::try_wait(self)
    }
    fn wait(&mut self) -> std::io::Result<ExitStatus> {
        std::process::Child::wait(self)
    }
    fn signal(&mut self, signal: libc::c_int) -> std::io::Result<()> {
        if std::process::Child::try_wait(self)?.is_some() {
            return Ok(());
        }
        // SAFETY: kill on our own, not yet reaped child.
        if unsafe { libc::kill(self.id() as libc::pid_t, signal) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

impl Child {
    /// `pid` is the process id as the caller sees it.
    pub fn new(
        pid: u32,
        handle: Box<dyn Handle>,
        [stdin, stdout, stderr]: [Option<File>; 3],
        terminal: Option<File>,
    ) -> Child {
        Child {
            pid,
            handle,
            stdin,
            stdout,
            stderr,
            terminal,
        }
    }

    /// Wraps a process the caller forked itself.
    pub fn from_std(mut child: std::process::Child) -> Child {
        let stdio = [
            child.stdin.take().map(|p| File::from(OwnedFd::from(p))),
            child.stdout.take().map(|p| File::from(OwnedFd::from(p))),
            child.stderr.take().map(|p| File::from(OwnedFd::from(p))),
        ];
        Child::new(child.id(), Box::new(child), stdio, None)
    }

    /// The process id in the caller's PID namespace; 0 when the process ended
    /// (and was reaped in the cell) before its id could be read. Signal it
    /// through [`Child::signal`], which needs no id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.handle.try_wait()
    }

    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        drop(self.stdin.take());
        self.handle.wait()
    }

    pub fn signal(&mut self, signal: libc::c_int) -> std::io::Result<()> {
        self.handle.signal(signal)
    }

    pub fn kill(&mut self) -> std::io::Result<()> {
        self.signal(libc::SIGKILL)
    }

    /// See [`Handle::exit_fd`].
    pub fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.handle.exit_fd()
    }

    /// Waits at most `timeout` for the process to end; `None` if it still
    /// runs. Sleeps on the exit descriptor where there is one.
    pub fn wait_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> std::io::Result<Option<ExitStatus>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.exit_fd() {
                Some(fd) => {
                    let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
                    poll(&[(fd.as_raw_fd(), libc::POLLIN)], ms.max(1));
                }
                // Our own child: SIGCHLD may go to another thread; check often.
                None => std::thread::sleep(left.min(std::time::Duration::from_millis(5))),
            }
        }
    }

    /// Closes stdin, reads stdout and stderr to their ends and waits.
    pub fn wait_with_output(mut self) -> std::io::Result<Output> {
        drop(self.stdin.take());
        let read_all = |f: Option<File>| -> std::io::Result<Vec<u8>> {
            let mut buf = Vec::new();
            if let Some(mut f) = f {
                f.read_to_end(&mut buf)?;
            }
            Ok(buf)
        };
        let (out, err) = (self.stdout.take(), self.stderr.take());
        let (stdout, stderr) = std::thread::scope(|s| {
            let err = s.spawn(|| read_all(err));
            let out = read_all(out);
            (out, err.join().expect("reading stderr"))
        });
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout: stdout?,
            stderr: stderr?,
        })
    }
}

/// The exit code a shell would report: the status, or 128 + the signal number.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Waits until one of `fds` (descriptor, events; negative descriptors are
/// skipped) is ready, a signal arrives or `timeout_ms` passes (-1: no
/// timeout); returns each one's revents (all 0 after a timeout or signal).
pub fn poll(fds: &[(RawFd, libc::c_short)], timeout_ms: libc::c_int) -> Vec<libc::c_short> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    // SAFETY: poll over a live array of the given length.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if rc <= 0 {
        return vec![0; fds.len()];
    }
    pfds.iter().map(|p| p.revents).collect()
}

/// True when `fd` is a terminal.
pub fn is_terminal(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_forked_child_is_waited_signalled_and_read_through_the_handle() {
        let std_child = std::process::Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = Child::from_std(std_child).wait_with_output().unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));

        let mut sleeper = Child::from_std(
            std::process::Command::new("sleep")
                .arg("1000")
                .spawn()
                .unwrap(),
        );
        assert!(sleeper.exit_fd().is_none());
        sleeper.kill().unwrap();
        let status = sleeper.wait().unwrap();
        assert_eq!(exit_code(status), 128 + libc::SIGKILL);
        // Signalling an ended process is not an error.
        sleeper.kill().unwrap();
        let mut quick = Child::from_std(std::process::Command::new("true").spawn().unwrap());
        let status = quick
            .wait_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        assert_eq!(status.map(exit_code), Some(0));
        let mut slow = Child::from_std(
            std::process::Command::new("sleep")
                .arg("1000")
                .spawn()
                .unwrap(),
        );
        let none = slow
            .wait_timeout(std::time::Duration::from_millis(20))
            .unwrap();
        assert!(none.is_none());
        slow.kill().unwrap();
        slow.wait().unwrap();
        assert_eq!(exit_code(ExitStatus::from_raw(7 << 8)), 7);
    }
}
