//! Periodic health checks of a supervised service (`CELL_HEALTHCHECK_*`, as
//! compose has them): the schedule and verdicts ([`HealthMonitor`], pure),
//! and one check run inside the cell ([`Check`]): a shell command in a
//! session (and process group) of its own with one pipe for its output,
//! killed as a whole group when it overruns its timeout.

use crate::kernel::{Child, ExecSpec, Kernel, Stdio, Target};
use anyhow::Context;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

/// How often checks run before the first one passed (at most).
const START_INTERVAL: Duration = Duration::from_secs(1);
/// The first check of a run waits this long for the service to get going.
const FIRST_CHECK_AFTER: Duration = Duration::from_millis(200);
/// Bytes of a check's output kept (the rest is read and dropped).
const OUTPUT_KEPT: usize = 4096;
/// Lines of a failed check's output written to the service log.
pub const OUTPUT_LINES: usize = 20;

/// What to check and how often (`CELL_HEALTHCHECK_CMD`, `_INTERVAL`,
/// `_TIMEOUT`, `_RETRIES`, `_START_PERIOD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    /// Run as `/bin/sh -c <cmd>` inside the cell.
    pub cmd: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures that make the service `failing`.
    pub retries: u32,
    /// Failures in this time after a start do not count.
    pub start_period: Duration,
}

impl HealthSpec {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_RETRIES: u32 = 3;

    pub fn new(cmd: &str) -> HealthSpec {
        HealthSpec {
            cmd: cmd.to_string(),
            interval: Self::DEFAULT_INTERVAL,
            timeout: Self::DEFAULT_TIMEOUT,
            retries: Self::DEFAULT_RETRIES,
            start_period: Duration::ZERO,
        }
    }

    /// The longest a run can stay `starting`: the start period, then
    /// `retries` checks that each time out.
    pub fn longest_start(&self) -> Duration {
        let per_check = self.timeout + self.interval.min(START_INTERVAL);
        FIRST_CHECK_AFTER + self.start_period + per_check * (self.retries.max(1) + 1)
    }
}

/// The health of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Health {
    /// Started; no check has passed yet (and too few have failed to call it failing).
    Starting,
    Ok,
    /// Enough consecutive checks failed, or the service is not running.
    Failing,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Ok => "ok",
            Health::Failing => "failing",
        }
    }
}

/// The health part of the supervisor's status file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthStatus {
    pub state: Health,
    /// Unix time (seconds) the state began.
    pub since: u64,
    /// Consecutive failed checks.
    pub failures: u32,
    /// How the last check ended: `ok`, `exit 1`, `timed out after 10 s`, …
    pub last: Option<String>,
    /// The last check's output, escaped, at most [`OUTPUT_LINES`] lines.
    pub output: Vec<String>,
}

/// When checks are due and what their results mean.
#[derive(Debug, Clone)]
pub struct HealthMonitor {
    spec: HealthSpec,
    state: Health,
    failures: u32,
    run_started: Instant,
    next_at: Option<Instant>,
}

impl HealthMonitor {
    pub fn new(spec: HealthSpec, now: Instant) -> HealthMonitor {
        HealthMonitor {
            spec,
            state: Health::Starting,
            failures: 0,
            run_started: now,
            next_at: None,
        }
    }

    pub fn spec(&self) -> &HealthSpec {
        &self.spec
    }

    pub fn state(&self) -> Health {
        self.state
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A run of the service began: checks start over.
    pub fn service_started(&mut self, now: Instant) {
        self.state = Health::Starting;
        self.failures = 0;
        self.run_started = now;
        self.next_at = Some(now + FIRST_CHECK_AFTER);
    }

    /// The service ended: it is not healthy, and nothing is checked until it
    /// runs again.
    pub fn service_ended(&mut self) {
        self.state = Health::Failing;
        self.next_at = None;
    }

    /// When the next check is due (`None` while the service is down).
    pub fn next_at(&self) -> Option<Instant> {
        self.next_at
    }

    /// Records a check that started at `now` (none is due until it is done).
    pub fn check_started(&mut self) {
        self.next_at = None;
    }

    /// Records a finished check; returns the new state when it changed.
    pub fn check_done(&mut self, now: Instant, passed: bool) -> Option<Health> {
        let before = self.state;
        if passed {
            self.failures = 0;
            self.state = Health::Ok;
        } else {
            let grace = self.state == Health::Starting
                && now.duration_since(self.run_started) < self.spec.start_period;
            if !grace {
                self.failures += 1;
                if self.failures >= self.spec.retries.max(1) {
                    self.state = Health::Failing;
                }
            }
        }
        let every = if self.state == Health::Starting {
            self.spec.interval.min(START_INTERVAL)
        } else {
            self.spec.interval
        };
        self.next_at = Some(now + every);
        (self.state != before).then_some(self.state)
    }
}

/// A check running inside the cell.
pub struct Check {
    child: Child,
    /// Its pid, which leads its group; 0 if it ended before the kernel
    /// told it (then only `child` is signalled).
    pid: i32,
    output: File,
    kept: Vec<u8>,
    pub deadline: Instant,
    timed_out: bool,
}

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub passed: bool,
    /// `ok`, `exit N`, `signal N`, `timed out after N s`.
    pub how: String,
    /// Its output, escaped, at most [`OUTPUT_LINES`] lines.
    pub output: Vec<String>,
}

impl Check {
    /// Starts `spec.cmd` in the cell as `base` says (identity, environment),
    /// leading a session of its own; its output is one non-blocking pipe.
    pub fn spawn(
        kernel: &dyn Kernel,
        target: &Target,
        base: &ExecSpec,
        spec: &HealthSpec,
        now: Instant,
    ) -> anyhow::Result<Check> {
        let exec = ExecSpec {
            argv: vec!["/bin/sh".into(), "-c".into(), spec.cmd.clone()],
            ..base.clone()
        };
        let (read, write) = pipe().context("creating the health check's pipe")?;
        let write2 = write
            .try_clone()
            .context("creating the health check's pipe")?;
        let child = kernel.spawn(
            target,
            &exec,
            [Stdio::Null, Stdio::Fd(write), Stdio::Fd(write2)],
        )?;
        super::signals::set_nonblocking_cloexec(read.as_raw_fd())
            .context("setting up the health check's pipe")?;
        Ok(Check {
            pid: child.id() as i32,
            child,
            output: File::from(read),
            kept: Vec::new(),
            deadline: now + spec.timeout,
            timed_out: false,
        })
    }

    /// Whether it was killed (and now only has to be reaped).
    pub fn killed(&self) -> bool {
        self.timed_out
    }

    /// The pipe to watch for output.
    pub fn output_fd(&self) -> std::os::fd::RawFd {
        self.output.as_raw_fd()
    }

    /// What turns readable when the check has ended, where the kernel gives
    /// one (a check forked in the cell is not our child: no SIGCHLD).
    pub fn exit_fd(&self) -> Option<std::os::fd::RawFd> {
        self.child.exit_fd().map(|fd| fd.as_raw_fd())
    }

    /// Kills the check's process group, or the check alone when its pid is
    /// unknown (never `kill(-0)`: that is our own group).
    fn kill_group(&mut self) {
        if self.pid > 0 {
            // SAFETY: kill on the group the check leads; ESRCH is fine.
            unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        }
        let _ = self.child.signal(libc::SIGKILL);
    }

    /// Reads what the pipe holds (bounded: what is not kept is dropped).
    pub fn read_output(&mut self) {
        let mut buf = [0u8; 4096];
        for _ in 0..64 {
            match (&self.output).read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let room = OUTPUT_KEPT.saturating_sub(self.kept.len());
                    self.kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    }

    /// Kills the check's whole process group (its timeout passed, or the
    /// service is being stopped).
    pub fn kill(&mut self) {
        self.timed_out = true;
        self.kill_group();
    }

    /// The result once the check process has ended, else `None`.
    pub fn try_finish(&mut self, timeout: Duration) -> Option<CheckResult> {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(e) => {
                return Some(CheckResult {
                    passed: false,
                    how: format!("cannot wait for the check: {e}"),
                    output: Vec::new(),
                })
            }
        };
        self.read_output();
        // Whatever the check left in its group goes with it.
        if self.pid > 0 {
            // SAFETY: kill on the group the check led; ESRCH is fine.
            unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        }
        let how = if self.timed_out {
            format!("timed out after {} s", timeout.as_secs_f64())
        } else {
            match (status.code(), status.signal()) {
                (Some(0), _) => "ok".to_string(),
                (Some(c), _) => format!("exit {c}"),
                (None, Some(s)) => format!("signal {s}"),
                _ => "ended".to_string(),
            }
        };
        let mut lines = super::output::LineSplitter::new(super::syslog::MAX_CHUNK);
        let mut output = lines.feed(&self.kept);
        output.extend(lines.flush());
        let skip = output.len().saturating_sub(OUTPUT_LINES);
        output.drain(..skip);
        Some(CheckResult {
            passed: how == "ok",
            how,
            output,
        })
    }
}

/// Runs one check to its end (for a cell without a supervised service): at
/// most `spec.timeout`, then its process group is killed.
pub fn run_once(
    kernel: &dyn Kernel,
    target: &Target,
    base: &ExecSpec,
    spec: &HealthSpec,
) -> anyhow::Result<CheckResult> {
    let mut check = Check::spawn(kernel, target, base, spec, Instant::now())?;
    loop {
        check.read_output();
        if let Some(r) = check.try_finish(spec.timeout) {
            return Ok(r);
        }
        if Instant::now() >= check.deadline && !check.timed_out {
            check.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors owned by us from here on.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HealthSpec {
        HealthSpec {
            cmd: "true".into(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            retries: 3,
            start_period: Duration::from_secs(10),
        }
    }

    #[test]
    fn starting_then_ok_then_failing_after_the_retries() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut h = HealthMonitor::new(spec(), t0);
        h.service_started(t0);
        assert_eq!(h.state(), Health::Starting);
        assert_eq!(h.next_at(), Some(t0 + FIRST_CHECK_AFTER));
        // Failures in the start period do not count; checks come every second.
        assert_eq!(h.check_done(s(1), false), None);
        assert_eq!(h.failures(), 0);
        assert_eq!(h.next_at(), Some(s(2)));
        assert_eq!(h.check_done(s(2), true), Some(Health::Ok));
        assert_eq!(h.next_at(), Some(s(32)), "then every interval");
        assert_eq!(h.check_done(s(32), false), None);
        assert_eq!(h.check_done(s(62), false), None);
        assert_eq!(h.check_done(s(92), false), Some(Health::Failing));
        assert_eq!(h.failures(), 3);
        assert_eq!(h.check_done(s(122), true), Some(Health::Ok));
        assert_eq!(h.failures(), 0);
    }

    #[test]
    fn a_run_that_never_passes_turns_failing_after_the_start_period() {
        let t0 = Instant::now();
        let mut h = HealthMonitor::new(spec(), t0);
        h.service_started(t0);
        let mut t = t0;
        let mut checks = 0;
        while h.state() == Health::Starting {
            t = h.next_at().unwrap();
            h.check_started();
            assert_eq!(h.next_at(), None, "one check at a time");
            h.check_done(t, false);
            checks += 1;
        }
        assert_eq!(h.state(), Health::Failing);
        // 10 s of start period at one check a second, then three that count.
        assert_eq!(checks, 13);
        assert!(t - t0 <= spec().longest_start(), "{:?}", t - t0);
        h.service_ended();
        assert_eq!((h.state(), h.next_at()), (Health::Failing, None));
        h.service_started(t);
        assert_eq!(h.state(), Health::Starting);
    }
}
