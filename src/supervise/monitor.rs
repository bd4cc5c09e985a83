//! The monitor: one mio event loop that runs a service inside a cell, forwards
//! its output to syslog and the log tail, restarts it with backoff, and stops it
//! (TERM, grace, KILL) when asked.
//!
//! Events: the service's stdout and stderr pipes, and a self-pipe carrying
//! SIGTERM/SIGINT/SIGQUIT (stop), SIGCHLD (reap), SIGUSR1 (write the status
//! file again: `repair` after it was damaged) and SIGHUP (ignored, so the
//! end of an rc script does not stop the supervisor). Timers are the poll
//! timeout: the next restart, or the end of the stop grace period.

use super::output::{LineSplitter, LogTail};
use super::signals::WakePipe;
use super::status::{self, Paths, SupervisorLock, SupervisorState, SupervisorStatus};
use super::syslog::{self, Level, Syslog};
use super::SuperviseSpec;
use crate::kernel::{CellInfo, ExecSpec, Kernel, Target};
use anyhow::Context;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

const WAKE: Token = Token(0);
const STREAM_TOKENS: [Token; 2] = [Token(1), Token(2)];

/// Grace period between TERM and KILL when the stop request names none.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// Lines of output the log tail keeps.
pub const TAIL_LINES: usize = 500;

/// Restart delay: 1 s, doubling after each run shorter than 30 s, at most
/// 10 s; a run of 30 s or more starts again from 1 s.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const MIN: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(10);
    pub const STABLE: Duration = Duration::from_secs(30);

    pub fn new() -> Backoff {
        Backoff { next: Self::MIN }
    }

    /// The delay before restarting a run that lasted `ran`.
    pub fn after_run(&mut self, ran: Duration) -> Duration {
        if ran >= Self::STABLE {
            self.next = Self::MIN;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }
}

/// One output pipe of the running service.
struct Stream {
    file: File,
    lines: LineSplitter,
    label: &'static str,
    level: Level,
}

/// The service while it runs.
struct Run {
    child: Child,
    pid: u32,
    /// The service leads its own process group, so the whole group can be signalled.
    leads_group: bool,
    started: Instant,
    streams: [Option<Stream>; 2],
}

/// A stop in progress.
struct Stopping {
    kill_at: Instant,
    killed: bool,
}

pub struct Monitor<'k> {
    kernel: &'k dyn Kernel,
    spec: SuperviseSpec,
    cell: CellInfo,
    paths: Paths,
    poll: Poll,
    wake: WakePipe,
    syslog: Syslog,
    tail: LogTail,
    status: SupervisorStatus,
    backoff: Backoff,
    run: Option<Run>,
    restart_at: Option<Instant>,
    stop_requested: bool,
    stopping: Option<Stopping>,
    _lock: SupervisorLock,
}

impl<'k> Monitor<'k> {
    /// Takes the cell's supervisor lock and prepares the loop. `syslog_socket`
    /// is where records go (`cfg.syslog_socket`).
    pub fn new(
        kernel: &'k dyn Kernel,
        spec: SuperviseSpec,
        cell: CellInfo,
        paths: Paths,
        syslog_socket: &std::path::Path,
    ) -> anyhow::Result<Monitor<'k>> {
        std::fs::create_dir_all(&paths.dir)
            .with_context(|| format!("creating {}", paths.dir.display()))?;
        let lock = SupervisorLock::acquire(&paths.lock)
            .with_context(|| format!("cell {} is already supervised", cell.name))?;
        let wake = WakePipe::new().context("creating the signal pipe")?;
        let poll = Poll::new().context("creating the event loop")?;
        poll.registry()
            .register(&mut SourceFd(&wake.read_fd()), WAKE, Interest::READABLE)
            .context("registering the signal pipe")?;
        let pid = std::process::id();
        let syslog = Syslog::new(
            syslog_socket,
            spec.facility,
            &spec.tag,
            pid,
            &paths.fallback,
        );
        let tail = LogTail::open(&paths.log, TAIL_LINES);
        let now = unix_now();
        let status = SupervisorStatus {
            cell: cell.name.clone(),
            cid: cell.id,
            supervisor_pid: pid,
            child_pid: None,
            argv: spec.argv.clone(),
            state: SupervisorState::Backoff,
            since: now,
            started: now,
            restarts: 0,
            last_exit: None,
            backoff_secs: 0,
            recent_starts_ms: Vec::new(),
        };
        Ok(Monitor {
            kernel,
            spec,
            cell,
            paths,
            poll,
            wake,
            syslog,
            tail,
            status,
            backoff: Backoff::new(),
            run: None,
            restart_at: None,
            stop_requested: false,
            stopping: None,
            _lock: lock,
        })
    }

    /// A descriptor that delivers a signal number to this monitor's loop as if
    /// the signal had arrived (for callers in the same process).
    #[cfg(test)]
    pub fn signal_sender(&self) -> std::io::Result<OwnedFd> {
        self.wake.sender()
    }

    /// Runs until stopped or the cell disappears. `ready` (the detached start's
    /// pipe) gets `ready <pid>` once the first start was attempted.
    pub fn run(mut self, ready: Option<File>) -> anyhow::Result<()> {
        let mut done = self.start_service();
        if let Some(mut r) = ready {
            // The starter may have given up waiting; that is not our failure.
            let _ = writeln!(r, "ready {}", self.status.supervisor_pid);
        }
        let mut events = Events::with_capacity(8);
        while !done {
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("waiting for events");
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKE => self.handle_signals(),
                    t => {
                        if let Some(i) = STREAM_TOKENS.iter().position(|s| *s == t) {
                            self.read_stream(i);
                        }
                    }
                }
            }
            if self.stop_requested && self.stopping.is_none() && !self.begin_stop() {
                break;
            }
            if self.reap() == Some(true) {
                break;
            }
            let now = Instant::now();
            if self.restart_at.is_some_and(|t| now >= t) {
                self.restart_at = None;
                self.status.restarts += 1;
                done = self.start_service();
            }
            if let Some(s) = self.stopping.as_mut() {
                if !s.killed && now >= s.kill_at {
                    s.killed = true;
                    if let Some(run) = &self.run {
                        signal_service(run, libc::SIGKILL);
                    }
                    self.note(Level::WARNING, "grace period over; sent KILL");
                }
            }
        }
        self.note(Level::NOTICE, "supervisor exiting");
        let _ = std::fs::remove_file(&self.paths.status);
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.stopping {
            Some(s) if !s.killed => Some(s.kill_at),
            // After KILL only the child's exit is awaited; poll now and then in
            // case the SIGCHLD byte was lost to a full pipe.
            Some(_) => Some(Instant::now() + Duration::from_millis(100)),
            None => self.restart_at,
        }
    }

    fn handle_signals(&mut self) {
        for sig in self.wake.drain() {
            if matches!(sig, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT) {
                self.stop_requested = true;
            }
            if sig == libc::SIGUSR1 {
                self.write_status();
            }
            // SIGCHLD: reap() runs after every wake-up; SIGHUP: ignored.
        }
    }

    /// Starts the service; a start that fails counts as a run that ended at
    /// once. Returns true when the supervisor is done (the cell is gone).
    fn start_service(&mut self) -> bool {
        let exec = ExecSpec {
            argv: self.spec.argv.clone(),
            uid: self.spec.uid,
            gid: self.spec.gid,
            groups: self.spec.groups.clone(),
            apply_rlimits: true,
            process_group: true,
            ..ExecSpec::default()
        };
        let stdio = [Stdio::null(), Stdio::piped(), Stdio::piped()];
        let started = Instant::now();
        self.status.recent_starts_ms.push(unix_now_ms());
        let excess = self
            .status
            .recent_starts_ms
            .len()
            .saturating_sub(status::RECENT_STARTS);
        self.status.recent_starts_ms.drain(..excess);
        match self.kernel.spawn(&Target::Id(self.cell.id), &exec, stdio) {
            Ok(child) => match self.watch(child, started) {
                Ok(run) => {
                    let creds = match (self.spec.uid, self.spec.gid) {
                        (Some(u), Some(g)) => format!(" as uid {u} gid {g}"),
                        _ => String::new(),
                    };
                    let msg = format!("started {:?} (pid {}){creds}", self.spec.argv, run.pid);
                    self.status.child_pid = Some(run.pid);
                    self.run = Some(run);
                    self.set_state(SupervisorState::Running);
                    self.note(Level::INFO, &msg);
                    false
                }
                Err(e) => {
                    self.note(Level::ERR, &format!("cannot watch the service: {e:#}"));
                    self.after_run(None, started.elapsed())
                }
            },
            Err(e) => {
                self.note(
                    Level::ERR,
                    &format!("cannot start {:?}: {e:#}", self.spec.argv),
                );
                self.after_run(None, started.elapsed())
            }
        }
    }

    /// Registers the child's pipes. On failure the child is killed.
    fn watch(&mut self, mut child: Child, started: Instant) -> anyhow::Result<Run> {
        let pid = child.id();
        // SAFETY: getpgid only reads.
        let leads_group = unsafe { libc::getpgid(pid as libc::pid_t) } == pid as libc::pid_t;
        let out: Option<OwnedFd> = child.stdout.take().map(OwnedFd::from);
        let err: Option<OwnedFd> = child.stderr.take().map(OwnedFd::from);
        let mut run = Run {
            child,
            pid,
            leads_group,
            started,
            streams: [None, None],
        };
        let pipes = [
            (out, "stdout", self.spec.stdout_level),
            (err, "stderr", self.spec.stderr_level),
        ];
        let mut registered = Ok(());
        for (i, (fd, label, level)) in pipes.into_iter().enumerate() {
            let Some(fd) = fd else { continue };
            registered = registered.and_then(|()| {
                super::signals::set_nonblocking_cloexec(fd.as_raw_fd())?;
                self.poll.registry().register(
                    &mut SourceFd(&fd.as_raw_fd()),
                    STREAM_TOKENS[i],
                    Interest::READABLE,
                )
            });
            run.streams[i] = Some(Stream {
                file: File::from(fd),
                lines: LineSplitter::new(syslog::MAX_CHUNK),
                label,
                level,
            });
        }
        if let Err(e) = registered {
            signal_service(&run, libc::SIGKILL);
            let _ = run.child.wait();
            return Err(e).context("registering the service's output pipes");
        }
        Ok(run)
    }

    /// Reads what a pipe holds now; at end of file, flushes and unregisters it.
    fn read_stream(&mut self, i: usize) {
        let mut buf = [0u8; 16384];
        loop {
            let Some(stream) = self.run.as_mut().and_then(|r| r.streams[i].as_mut()) else {
                return;
            };
            let (label, level) = (stream.label, stream.level);
            match (&stream.file).read(&mut buf) {
                Ok(0) => {
                    let rest = stream.lines.flush();
                    let _ = self
                        .poll
                        .registry()
                        .deregister(&mut SourceFd(&stream.file.as_raw_fd()));
                    if let Some(run) = self.run.as_mut() {
                        run.streams[i] = None;
                    }
                    if let Some(line) = rest {
                        self.forward(label, level, &line);
                    }
                    return;
                }
                Ok(n) => {
                    let lines = stream.lines.feed(&buf[..n]);
                    for line in lines {
                        self.forward(label, level, &line);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return, // WouldBlock: drained for now.
            }
        }
    }

    /// Checks whether the service ended. `Some(true)`: the supervisor is done.
    fn reap(&mut self) -> Option<bool> {
        let run = self.run.as_mut()?;
        let exit = match run.child.try_wait() {
            Ok(Some(exit)) => exit,
            Ok(None) => return None,
            Err(e) => {
                let msg = format!("cannot wait for pid {}: {e}", run.pid);
                self.note(Level::ERR, &msg);
                return None;
            }
        };
        // Output still in the pipes belongs to this run: forward it first.
        for i in 0..2 {
            self.read_stream(i);
        }
        let mut run = self.run.take().expect("checked above");
        for stream in run.streams.iter_mut().flatten() {
            if let Some(line) = stream.lines.flush() {
                let (label, level) = (stream.label, stream.level);
                self.forward(label, level, &line);
            }
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&stream.file.as_raw_fd()));
        }
        // Processes the service left in its group would pile up over restarts
        // and outlive a stop. (Not logged: zombies awaiting their reaper also
        // make this kill succeed.)
        if run.leads_group {
            // SAFETY: kill on the group the service led; the id cannot be
            // reused while members remain.
            unsafe { libc::kill(-(run.pid as libc::pid_t), libc::SIGKILL) };
        }
        self.status.child_pid = None;
        Some(self.after_run(Some(exit), run.started.elapsed()))
    }

    /// Decides what follows a run: stop, or restart after the backoff delay.
    /// Returns true when the supervisor is done.
    fn after_run(&mut self, exit: Option<ExitStatus>, ran: Duration) -> bool {
        if let Some(exit) = exit {
            let how = describe_exit(exit);
            self.note(Level::WARNING, &format!("service ended: {how}"));
            self.status.last_exit = Some(how);
        } else {
            self.status.last_exit = Some("failed to start".into());
        }
        if self.stop_requested {
            return true;
        }
        match self.kernel.find(&Target::Id(self.cell.id)) {
            Ok(Some(c)) if c.name == self.cell.name => {}
            Ok(_) => {
                self.note(Level::ERR, "the cell no longer exists; not restarting");
                return true;
            }
            Err(e) => self.note(Level::WARNING, &format!("cannot look the cell up: {e:#}")),
        }
        let delay = self.backoff.after_run(ran);
        self.restart_at = Some(Instant::now() + delay);
        self.status.backoff_secs = delay.as_secs();
        self.set_state(SupervisorState::Backoff);
        self.note(
            Level::NOTICE,
            &format!("restarting in {} second(s)", delay.as_secs()),
        );
        false
    }

    /// Starts a requested stop. Returns false when nothing runs (done).
    fn begin_stop(&mut self) -> bool {
        let grace = take_stop_request(&self.paths).unwrap_or(DEFAULT_GRACE);
        let Some(run) = &self.run else {
            self.note(Level::NOTICE, "stop requested");
            return false;
        };
        signal_service(run, libc::SIGTERM);
        self.stopping = Some(Stopping {
            kill_at: Instant::now() + grace,
            killed: false,
        });
        self.restart_at = None;
        self.set_state(SupervisorState::Stopping);
        self.note(
            Level::NOTICE,
            &format!(
                "stop requested; sent TERM, KILL in {} ms",
                grace.as_millis()
            ),
        );
        true
    }

    fn set_state(&mut self, state: SupervisorState) {
        self.status.state = state;
        self.status.since = unix_now();
        self.write_status();
    }

    fn write_status(&mut self) {
        if let Err(e) = status::write_status(&self.paths.status, &self.status) {
            let msg = format!("cannot write the status file: {e:#}");
            self.tail.push(unix_now(), &format!("supervise: {msg}"));
        }
    }

    /// One line from `label` (the service's stdout or stderr, or `supervise`)
    /// to syslog and the tail; a notice the syslog gives (records lost,
    /// socket unreachable) goes to the tail first.
    fn forward(&mut self, label: &str, level: Level, line: &str) {
        let msg = format!(
            "cell={} cid={} {label}: {line}",
            self.cell.name, self.cell.id
        );
        let notice = self.syslog.log(level, &msg);
        let now = unix_now();
        if let Some(n) = notice {
            self.tail.push(now, &format!("supervise: {n}"));
        }
        self.tail.push(now, &format!("{label}: {line}"));
    }

    /// One record about the supervisor's own doing.
    fn note(&mut self, level: Level, text: &str) {
        self.forward("supervise", level, text);
    }
}

/// Signals the service's process group when it leads one, else the service.
fn signal_service(run: &Run, sig: libc::c_int) {
    let pid = run.pid as libc::pid_t;
    let target = if run.leads_group { -pid } else { pid };
    // SAFETY: kill with a pid we started; ESRCH (already gone) is fine.
    unsafe { libc::kill(target, sig) };
}

/// Writes a stop request naming the grace period (read by [`take_stop_request`]).
pub fn request_stop(paths: &Paths, grace: Duration) -> anyhow::Result<()> {
    crate::fs::host::write_atomic(&paths.stop, grace.as_millis().to_string().as_bytes())
}

fn take_stop_request(paths: &Paths) -> Option<Duration> {
    let text = std::fs::read_to_string(&paths.stop).ok()?;
    let _ = std::fs::remove_file(&paths.stop);
    text.trim().parse().ok().map(Duration::from_millis)
}

pub fn describe_exit(exit: ExitStatus) -> String {
    match (exit.code(), exit.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => "ended".to_string(),
    }
}

pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_ten_and_resets_after_a_stable_run() {
        let short = Duration::from_secs(2);
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..6).map(|_| b.after_run(short).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.after_run(Duration::from_secs(30)).as_secs(), 1);
        assert_eq!(b.after_run(short).as_secs(), 2);
    }
}
