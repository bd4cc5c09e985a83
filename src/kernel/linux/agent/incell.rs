//! The kernel a supervisor in the cell's init drives: the cell is the one
//! the init runs, and its processes (the service, its health checks) are
//! forks of the init itself ([`Forker`]), confined as every other process
//! the agent starts. Their exit statuses come from the init's reaper: the
//! init reaps every child of the cell, so a process it started for the
//! supervisor is looked up in [`Exits`] first.

use super::host::prepare as stdio_pair;
use super::init::{prepare, Forker};
use crate::kernel::linux::enter::Step;
use crate::kernel::process::{Child, Handle, Stdio};
use crate::kernel::{CellInfo, CellSpec, CellStats, ExecSpec, Kernel, Target};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};

/// Wait statuses of the processes started for the supervisor, by pid:
/// `None` until the init's reaper collects it.
pub type Exits = Arc<Mutex<HashMap<libc::pid_t, Option<i32>>>>;

/// The cell as seen from its init.
pub struct InCell {
    pub forker: Arc<Forker>,
    pub exits: Exits,
    pub cell: CellInfo,
}

/// A process the init forked for the supervisor.
struct Local {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    exits: Exits,
    status: Option<ExitStatus>,
}

impl Local {
    /// Its status once it ended: from the init's reaper, or reaped here.
    fn check(&mut self, block: bool) -> std::io::Result<Option<ExitStatus>> {
        loop {
            if let Some(s) = self.status {
                return Ok(Some(s));
            }
            // One lock per look: the reaper takes it too, on this thread.
            let reaped = {
                let mut exits = self.exits.lock().unwrap_or_else(|e| e.into_inner());
                match exits.get(&self.pid) {
                    Some(Some(raw)) => {
                        let raw = *raw;
                        exits.remove(&self.pid);
                        Some(raw)
                    }
                    _ => None,
                }
            };
            if let Some(raw) = reaped {
                self.status = Some(ExitStatus::from_raw(raw));
                continue;
            }
            let mut raw = 0;
            let flags = if block { 0 } else { libc::WNOHANG };
            // SAFETY: waits for our own child only.
            let pid = unsafe { libc::waitpid(self.pid, &mut raw, flags) };
            if pid == self.pid {
                self.exits
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&self.pid);
                self.status = Some(ExitStatus::from_raw(raw));
                continue;
            }
            if pid < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            }
            if !block || pid < 0 {
                return Ok(None);
            }
        }
    }
}

impl Handle for Local {
    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.check(false)
    }

    fn wait(&mut self) -> std::io::Result<ExitStatus> {
        loop {
            if let Some(s) = self.check(true)? {
                return Ok(s);
            }
        }
    }

    fn signal(&mut self, signal: libc::c_int) -> std::io::Result<()> {
        if self.status.is_none() {
            // SAFETY: pidfd_send_signal on a pidfd we own; ESRCH (ended) is fine.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    self.pidfd.as_raw_fd(),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
        Ok(())
    }

    fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.pidfd.as_fd())
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Not awaited any more: the reaper collects it as any orphan.
        self.exits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.pid);
    }
}

impl Kernel for InCell {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn create(&self, _: &CellSpec) -> Result<u64> {
        bail!("a cell's init cannot create cells")
    }

    fn destroy(&self, _: &Target) -> Result<()> {
        bail!("a cell's init cannot destroy cells")
    }

    fn list(&self) -> Result<Vec<CellInfo>> {
        Ok(vec![self.cell.clone()])
    }

    fn stats(&self) -> Result<Vec<CellStats>> {
        Ok(Vec::new())
    }

    fn spawn(&self, _: &Target, spec: &ExecSpec, stdio: [Stdio; 3]) -> Result<Child> {
        let request = super::super::request(spec)?;
        let prepared = prepare(&request).map_err(|(step, errno)| {
            anyhow::Error::from(std::io::Error::from_raw_os_error(errno)).context(step)
        })?;
        let mut given = Vec::new();
        let mut kept = [None, None, None];
        for (i, s) in stdio.into_iter().enumerate() {
            let (theirs, ours) = stdio_pair(s, i == 0)?;
            given.push(theirs);
            kept[i] = ours;
        }
        let raw: [RawFd; 3] = [
            given[0].as_raw_fd(),
            given[1].as_raw_fd(),
            given[2].as_raw_fd(),
        ];
        let forked = self
            .forker
            .fork_command(&prepared, false, raw)
            .map_err(|(step, errno)| {
                anyhow::Error::from(std::io::Error::from_raw_os_error(errno)).context(step)
            })?;
        drop(given);
        self.exits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(forked.pid, None);
        let local = Local {
            pid: forked.pid,
            pidfd: forked.pidfd,
            exits: self.exits.clone(),
            status: None,
        };
        // Until it exec'd or said why it could not (the error pipe closes
        // at exec).
        let mut report = [0i32; 2];
        let n = loop {
            // SAFETY: reads at most 8 bytes into a local array.
            let n = unsafe { libc::read(forked.errors.as_raw_fd(), report.as_mut_ptr().cast(), 8) };
            if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break n;
            }
        };
        if n == 8 {
            let step = Step::from_code(report[0]).map_or("starting the command", Step::describe);
            return Err(std::io::Error::from_raw_os_error(report[1]))
                .with_context(|| format!("starting {}: {step}", spec.argv[0]));
        }
        Ok(Child::new(forked.pid as u32, Box::new(local), kept, None))
    }
}
