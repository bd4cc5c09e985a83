//! The monitor: one mio event loop that runs a service inside a cell, forwards
//! its output to syslog and the service log, restarts it with backoff, and stops it
//! (TERM, grace, KILL) when asked.
//!
//! Events: the service's stdout and stderr pipes, its exit descriptor (where
//! the kernel backend gives one: a service forked in the cell is not our
//! child), the output pipe of a running health check, and a self-pipe
//! carrying SIGTERM/SIGINT/SIGQUIT (stop), SIGCHLD (reap), SIGUSR1 (write the
//! status file again: `repair` after it was damaged) and SIGHUP (ignored, so
//! the end of an rc script does not stop the supervisor). Timers are the poll
//! timeout: the next restart, the end of the stop grace period, the throttle
//! refill, a retry of a full syslog queue, the next health check and a running
//! check's timeout.
//!
//! Before every start the service's settings are gathered afresh: the env
//! file is read and the user and group are resolved in the cell, so a start
//! that cannot have them fails (and is retried) like any other.
//!
//! Output is taken in a bounded amount per turn of the loop, so signals and
//! timers are served between reads however fast a service writes; reading
//! pauses while the [`Throttle`] is empty or syslog is behind, which makes a
//! flooding service wait on its own pipe (back-pressure).

use super::health::{Check, CheckResult, Health, HealthMonitor, HealthStatus};
use super::output::{LineSplitter, ServiceLog};
use super::restart::Backoff;
use super::signals::WakePipe;
use super::status::{self, Paths, SupervisorLock, SupervisorState, SupervisorStatus};
use super::syslog::{self, Level, Syslog};
use super::throttle::Throttle;
use super::{LogConfig, SuperviseSpec};
use crate::journal::{self, Happened};
use crate::kernel::{CellInfo, Child, ExecSpec, Kernel, Stdio, Target};
use anyhow::Context;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

const WAKE: Token = Token(0);
const STREAM_TOKENS: [Token; 2] = [Token(1), Token(2)];
const CHECK: Token = Token(3);
const EXIT: Token = Token(4);
const CHECK_EXIT: Token = Token(5);

/// Grace period between TERM and KILL when the stop request names none.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// Bytes read from one pipe per turn of the loop.
const READ_PER_TURN: usize = 64 * 1024;
/// Bytes of output still read after the service ended (what its pipes hold,
/// unless something it left behind keeps writing).
const READ_AFTER_EXIT: usize = 1024 * 1024;
/// How often a throttled service is reported at most.
const THROTTLE_NOTE_EVERY: Duration = Duration::from_secs(60);

/// One output pipe of the running service.
struct Stream {
    file: File,
    lines: LineSplitter,
    label: &'static str,
    level: Level,
    /// The pipe signalled data and was not read empty since (the event loop
    /// is edge-triggered).
    readable: bool,
}

/// The service while it runs.
struct Run {
    child: Child,
    /// Its pid, 0 if it ended before the kernel told it.
    pid: u32,
    /// The service leads its own process group (every process started in a
    /// cell leads a session of its own), so the whole group can be signalled.
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
    log: ServiceLog,
    throttle: Throttle,
    rate_limit: u64,
    throttle_noted: Option<Instant>,
    /// The stream read first in the next turn (stdout and stderr take turns).
    first_stream: usize,
    status: SupervisorStatus,
    backoff: Backoff,
    /// How the current run was started (identity, environment): health
    /// checks run the same way.
    exec: Option<ExecSpec>,
    health: Option<HealthMonitor>,
    check: Option<Check>,
    /// The running check belongs to a run that ended: reap it, ignore its result.
    check_orphaned: bool,
    run: Option<Run>,
    restart_at: Option<Instant>,
    stop_requested: bool,
    /// The grace period of a stop asked through [`Monitor::request_stop_with`].
    stop_grace: Option<Duration>,
    stopping: Option<Stopping>,
    _lock: SupervisorLock,
}

/// Where a monitor runs.
pub enum Place {
    /// A supervisor process of its own on the host.
    Host,
    /// A cell's init: its pid on the host (what the status and lock files
    /// name), and a socket the host connected to the syslog daemon (`None`:
    /// none listened). The supervision directory was made by the host.
    Init {
        pid: u32,
        syslog: Option<std::os::unix::net::UnixDatagram>,
    },
}

impl<'k> Monitor<'k> {
    /// Takes the cell's supervisor lock and prepares the loop; `logs` says
    /// where output goes and how much of it is kept.
    pub fn new(
        kernel: &'k dyn Kernel,
        spec: SuperviseSpec,
        cell: CellInfo,
        paths: Paths,
        logs: &LogConfig,
        place: Place,
    ) -> anyhow::Result<Monitor<'k>> {
        let (pid, socket) = match place {
            Place::Host => {
                paths.ensure_dir()?;
                (std::process::id(), None)
            }
            Place::Init { pid, syslog } => (pid, Some(syslog)),
        };
        let lock = SupervisorLock::acquire(&paths.lock, pid)
            .with_context(|| format!("cell {} is already supervised", cell.name))?;
        let wake = WakePipe::new().context("creating the signal pipe")?;
        let poll = Poll::new().context("creating the event loop")?;
        poll.registry()
            .register(&mut SourceFd(&wake.read_fd()), WAKE, Interest::READABLE)
            .context("registering the signal pipe")?;
        let mut syslog = Syslog::new(
            &logs.syslog_socket,
            spec.facility,
            &spec.tag,
            pid,
            &paths.fallback,
            logs.rotation,
        );
        if let Some(socket) = socket {
            syslog = syslog.connected(socket);
        }
        let log = ServiceLog::new(&paths.log, logs.rotation);
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
            health: None,
            syslog_unreachable: false,
        };
        let health = spec
            .health
            .clone()
            .map(|h| HealthMonitor::new(h, Instant::now()));
        Ok(Monitor {
            kernel,
            spec,
            cell,
            paths,
            poll,
            wake,
            syslog,
            log,
            throttle: Throttle::new(logs.rate_limit, Instant::now()),
            rate_limit: logs.rate_limit,
            throttle_noted: None,
            first_stream: 0,
            status,
            backoff: Backoff::new(),
            exec: None,
            health,
            check: None,
            check_orphaned: false,
            run: None,
            restart_at: None,
            stop_requested: false,
            stop_grace: None,
            stopping: None,
            _lock: lock,
        })
    }

    /// The descriptor that becomes readable when the monitor has an event
    /// to serve (for a loop of another owner: a cell's init).
    pub fn event_fd(&self) -> std::os::fd::RawFd {
        self.poll.as_raw_fd()
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
        let mut done = self.begin();
        if let Some(mut r) = ready {
            // The starter may have given up waiting; that is not our failure.
            let _ = writeln!(r, "ready {}", self.status.supervisor_pid);
        }
        release_free_memory();
        let mut events = Events::with_capacity(8);
        while !done {
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(Instant::now()));
            done = self.turn(&mut events, timeout)?;
        }
        self.finish();
        Ok(())
    }

    /// The first start of the service; true when the monitor is done already
    /// (the cell is gone). The loop is [`Monitor::turn`] from here on, until
    /// it returns true, then [`Monitor::finish`]: in steps, so that a loop of
    /// another owner (a cell's init) can drive the monitor too.
    pub fn begin(&mut self) -> bool {
        self.start_service()
    }

    /// One turn of the loop: waits at most `timeout` for an event, then
    /// serves the events and every timer that is due. Returns true when the
    /// monitor is done (stopped, or the cell is gone).
    pub fn turn(&mut self, events: &mut Events, timeout: Option<Duration>) -> anyhow::Result<bool> {
        if let Err(e) = self.poll.poll(events, timeout) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e).context("waiting for events");
        }
        for ev in events.iter() {
            match ev.token() {
                WAKE => self.handle_signals(),
                EXIT | CHECK_EXIT => {} // reap() and the health checks below
                CHECK => {
                    if let Some(c) = self.check.as_mut() {
                        c.read_output();
                    }
                }
                t => {
                    if let Some(i) = STREAM_TOKENS.iter().position(|s| *s == t) {
                        if let Some(s) = self.stream_mut(i) {
                            s.readable = true;
                        }
                    }
                }
            }
        }
        self.take_output();
        if self.stop_requested && self.stopping.is_none() && !self.begin_stop() {
            return Ok(true);
        }
        if self.reap() == Some(true) {
            return Ok(true);
        }
        let now = Instant::now();
        let mut done = false;
        if self.restart_at.is_some_and(|t| now >= t) {
            self.restart_at = None;
            self.status.restarts += 1;
            let count = format!("restart {}", self.status.restarts);
            journal::event(&self.cell.name, Happened::Restarted, Some(count));
            done = self.start_service();
        }
        self.run_health_checks(now);
        self.record_syslog_reach();
        if let Some(s) = self.stopping.as_mut() {
            if !s.killed && now >= s.kill_at {
                s.killed = true;
                if let Some(run) = self.run.as_mut() {
                    signal_service(run, libc::SIGKILL);
                }
                self.note(Level::WARNING, "grace period over; sent KILL");
            }
        }
        Ok(done)
    }

    /// Asks for a stop, as TERM does: the service gets TERM, then KILL after
    /// the grace period of the stop request.
    pub fn request_stop(&mut self) {
        self.stop_requested = true;
    }

    /// Asks for a stop with this grace period (instead of the stop request
    /// file's): how the host asks a supervisor in a cell's init.
    pub fn request_stop_with(&mut self, grace: Duration) {
        self.stop_grace = Some(grace);
        self.stop_requested = true;
    }

    /// The end: a running health check is killed, the status file removed.
    pub fn finish(mut self) {
        if let Some(mut c) = self.check.take() {
            c.kill();
        }
        self.note(Level::NOTICE, "supervisor exiting");
        let _ = std::fs::remove_file(&self.paths.status);
    }

    /// When the next timer is due; `None`: only an event wakes the monitor.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let timer = match &self.stopping {
            Some(s) if !s.killed => Some(s.kill_at),
            // After KILL only the child's exit is awaited; poll now and then in
            // case the SIGCHLD byte was lost to a full pipe.
            Some(_) => Some(now + Duration::from_millis(100)),
            None => self.restart_at,
        };
        let health = match (&self.check, &self.health) {
            // A killed check is awaited like a killed service.
            (Some(c), _) if c.killed() => Some(now + Duration::from_millis(100)),
            (Some(c), _) => Some(c.deadline),
            (None, Some(h)) if self.stopping.is_none() => h.next_at(),
            _ => None,
        };
        let output = if self.syslog.is_behind() {
            self.syslog.retry_at()
        } else if self.any_readable() {
            if self.throttle.allowance(now) > 0 {
                Some(now)
            } else {
                Some(self.throttle.ready_at())
            }
        } else {
            None
        };
        [timer, health, output].into_iter().flatten().min()
    }

    fn stream_mut(&mut self, i: usize) -> Option<&mut Stream> {
        self.run.as_mut().and_then(|r| r.streams[i].as_mut())
    }

    fn any_readable(&self) -> bool {
        self.run
            .as_ref()
            .is_some_and(|r| r.streams.iter().flatten().any(|s| s.readable))
    }

    fn handle_signals(&mut self) {
        for sig in self.wake.drain() {
            if matches!(sig, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT) {
                self.request_stop();
            }
            if sig == libc::SIGUSR1 {
                self.write_status();
            }
            // SIGCHLD: reap() runs after every wake-up; SIGHUP: ignored.
        }
    }

    /// How the service is started this time: its identity resolved in the
    /// cell and its environment (the env file read again).
    fn exec_spec(&self) -> anyhow::Result<ExecSpec> {
        let mut exec = ExecSpec {
            argv: self.spec.argv.clone(),
            uid: self.spec.uid,
            gid: self.spec.gid,
            groups: self.spec.groups.clone(),
            apply_rlimits: true,
            ..ExecSpec::default()
        };
        if let Some(user) = &self.spec.user {
            let id = super::identity::resolve_in_cell(
                &self.cell.root,
                user,
                self.spec.group.as_deref(),
            )?;
            exec.uid = Some(id.uid);
            exec.gid = Some(id.gid);
            exec.groups = id.groups;
            if let Some(home) = id.home {
                exec.env.push(("HOME".into(), home));
            }
            if let Some(name) = id.name {
                exec.env.push(("USER".into(), name.clone()));
                exec.env.push(("LOGNAME".into(), name));
            }
        }
        let mut vars = self.spec.env.clone();
        if let Some(file) = &self.spec.env_file {
            for (k, v) in super::environ::read_file(file)? {
                vars.retain(|(old, _)| *old != k);
                vars.push((k, v));
            }
        }
        for (k, v) in vars {
            exec.env.retain(|(old, _)| *old != k);
            exec.env.push((k, v));
        }
        Ok(exec)
    }

    /// Starts the service; a start that fails counts as a run that ended at
    /// once. Returns true when the supervisor is done (the cell is gone).
    fn start_service(&mut self) -> bool {
        let stdio = [Stdio::Null, Stdio::Piped, Stdio::Piped];
        let started = Instant::now();
        self.status.recent_starts_ms.push(unix_now_ms());
        let excess = self
            .status
            .recent_starts_ms
            .len()
            .saturating_sub(status::RECENT_STARTS);
        self.status.recent_starts_ms.drain(..excess);
        let exec = match self.exec_spec() {
            Ok(e) => e,
            Err(e) => {
                self.note(
                    Level::ERR,
                    &format!("cannot start {:?}: {e:#}", self.spec.argv),
                );
                return self.after_run(None, started.elapsed());
            }
        };
        match self.kernel.spawn(&Target::Id(self.cell.id), &exec, stdio) {
            Ok(child) => match self.watch(child, started) {
                Ok(run) => {
                    let creds = match (exec.uid, exec.gid) {
                        (Some(u), Some(g)) => format!(" as uid {u} gid {g}"),
                        _ => String::new(),
                    };
                    let msg = format!("started {:?} (pid {}){creds}", self.spec.argv, run.pid);
                    self.status.child_pid = Some(run.pid);
                    self.run = Some(run);
                    self.exec = Some(exec);
                    if let Some(h) = self.health.as_mut() {
                        h.service_started(Instant::now());
                    }
                    self.update_health(None);
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

    /// Starts a health check when one is due, and finishes or times out the
    /// one running.
    fn run_health_checks(&mut self, now: Instant) {
        let Some(health) = self.health.as_mut() else {
            return;
        };
        if let Some(check) = self.check.as_mut() {
            check.read_output();
            if now >= check.deadline && !check.killed() {
                check.kill();
            }
            let timeout = health.spec().timeout;
            if let Some(result) = check.try_finish(timeout) {
                let fds = [Some(check.output_fd()), check.exit_fd()];
                for fd in fds.into_iter().flatten() {
                    let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
                }
                self.check = None;
                if !std::mem::take(&mut self.check_orphaned) {
                    self.check_done(result);
                }
            }
            return;
        }
        let due = health.next_at().is_some_and(|t| now >= t);
        if !due || self.run.is_none() || self.stopping.is_some() {
            return;
        }
        health.check_started();
        let spec = health.spec().clone();
        let base = self.exec.clone().unwrap_or_default();
        match Check::spawn(self.kernel, &Target::Id(self.cell.id), &base, &spec, now) {
            Ok(check) => {
                let registry = self.poll.registry();
                let fd = check.output_fd();
                let _ = registry.register(&mut SourceFd(&fd), CHECK, Interest::READABLE);
                if let Some(fd) = check.exit_fd() {
                    let _ = registry.register(&mut SourceFd(&fd), CHECK_EXIT, Interest::READABLE);
                }
                self.check = Some(check);
            }
            Err(e) => self.check_done(CheckResult {
                passed: false,
                how: format!("cannot start the check: {e:#}"),
                output: Vec::new(),
            }),
        }
    }

    /// Records a check's result: the verdict, and for a failure its output
    /// in the service log.
    fn check_done(&mut self, result: CheckResult) {
        let Some(health) = self.health.as_mut() else {
            return;
        };
        let changed = health.check_done(Instant::now(), result.passed);
        let (failures, retries) = (health.failures(), health.spec().retries.max(1));
        if !result.passed {
            for line in &result.output {
                self.forward("health", Level::WARNING, line);
            }
            let msg = format!(
                "health check failed: {} ({failures} of {retries})",
                result.how
            );
            self.note(Level::WARNING, &msg);
        }
        match changed {
            Some(Health::Ok) => self.note(Level::NOTICE, "health: ok"),
            Some(Health::Failing) => self.note(Level::ERR, "health: failing"),
            _ => {}
        }
        self.update_health(Some(result));
    }

    /// Writes the health state into the status file (when it says something new).
    fn update_health(&mut self, result: Option<CheckResult>) {
        let Some(health) = &self.health else {
            return;
        };
        let old = self.status.health.clone();
        let since = match &old {
            Some(o) if o.state == health.state() => o.since,
            _ => unix_now(),
        };
        let (last, output) = match result {
            Some(r) => (Some(r.how), r.output),
            None => match &old {
                // A start or an end of the service: the last check stays.
                Some(o) => (o.last.clone(), o.output.clone()),
                None => (None, Vec::new()),
            },
        };
        let new = HealthStatus {
            state: health.state(),
            since,
            failures: health.failures(),
            last,
            output,
        };
        if old.as_ref().map(|o| o.state) != Some(new.state) {
            let detail = match (new.state, &new.last) {
                (Health::Failing, Some(last)) => format!("failing: {last}"),
                (state, _) => state.as_str().to_string(),
            };
            journal::event(&self.cell.name, Happened::Health, Some(detail));
        }
        if old.as_ref() != Some(&new) {
            self.status.health = Some(new);
            let state = self.status.state;
            self.set_state_since(state, self.status.since);
        }
    }

    /// Registers the child's pipes. On failure the child is killed.
    fn watch(&mut self, mut child: Child, started: Instant) -> anyhow::Result<Run> {
        let pid = child.id();
        // SAFETY: getpgid only reads.
        let leads_group =
            pid > 0 && unsafe { libc::getpgid(pid as libc::pid_t) } == pid as libc::pid_t;
        let out: Option<OwnedFd> = child.stdout.take().map(OwnedFd::from);
        let err: Option<OwnedFd> = child.stderr.take().map(OwnedFd::from);
        let exit_fd = child.exit_fd().map(|fd| fd.as_raw_fd());
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
        let mut registered = match exit_fd {
            Some(fd) => self
                .poll
                .registry()
                .register(&mut SourceFd(&fd), EXIT, Interest::READABLE),
            None => Ok(()),
        };
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
                // Output written before the registration raises no event.
                readable: true,
            });
        }
        if let Err(e) = registered {
            signal_service(&mut run, libc::SIGKILL);
            self.deregister_exit(&run);
            let _ = run.child.wait();
            return Err(e).context("registering the service's output pipes");
        }
        Ok(run)
    }

    /// Takes in the output the throttle and syslog allow this turn: at most
    /// [`READ_PER_TURN`] bytes from each readable pipe.
    fn take_output(&mut self) {
        for n in self.syslog.flush(Instant::now()) {
            self.log_line("supervise", &n);
        }
        let first = self.first_stream;
        self.first_stream = 1 - first;
        for i in [first, 1 - first] {
            if self.syslog.is_behind() {
                return;
            }
            if self.stream_mut(i).is_some_and(|s| s.readable) {
                self.read_stream(i, READ_PER_TURN, true);
            }
        }
    }

    /// Reads up to `budget` bytes from pipe `i` (within the throttle when
    /// `throttled`) and forwards the lines; at end of file, flushes and
    /// unregisters it.
    fn read_stream(&mut self, i: usize, mut budget: usize, throttled: bool) {
        // A page: every stack page a supervisor touches once stays its own
        // for as long as it runs (16 KB cost 7 KB per supervisor at 100
        // cells, and no more intake per CPU second: bench/supervise-flood.sh).
        let mut buf = [0u8; 4096];
        while budget > 0 {
            let now = Instant::now();
            let allowed = if throttled {
                self.throttle.allowance(now)
            } else {
                usize::MAX
            };
            if allowed == 0 {
                self.note_throttled(now);
                return;
            }
            let want = buf.len().min(budget).min(allowed);
            let Some(stream) = self.run.as_mut().and_then(|r| r.streams[i].as_mut()) else {
                return;
            };
            match (&stream.file).read(&mut buf[..want]) {
                Ok(0) => {
                    let rest = stream.lines.flush();
                    let (label, level) = (stream.label, stream.level);
                    let _ = self
                        .poll
                        .registry()
                        .deregister(&mut SourceFd(&stream.file.as_raw_fd()));
                    if let Some(run) = self.run.as_mut() {
                        run.streams[i] = None;
                    }
                    for line in rest {
                        self.forward(label, level, &line);
                    }
                    return;
                }
                Ok(n) => {
                    let lines = stream.lines.feed(&buf[..n]);
                    let (label, level) = (stream.label, stream.level);
                    budget -= n;
                    if throttled {
                        self.throttle.take(n);
                    }
                    for line in lines {
                        self.forward(label, level, &line);
                    }
                    if throttled && self.syslog.is_behind() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // WouldBlock: drained for now (other errors: wait for EOF).
                    stream.readable = false;
                    return;
                }
            }
        }
    }

    /// Says (at most once a minute) that the service is being slowed down.
    fn note_throttled(&mut self, now: Instant) {
        if self
            .throttle_noted
            .is_some_and(|t| now.duration_since(t) < THROTTLE_NOTE_EVERY)
        {
            return;
        }
        self.throttle_noted = Some(now);
        let msg = format!(
            "the service writes more than {} bytes/s; it waits for its output to be taken in (CELL_LOG_RATE_LIMIT)",
            self.rate_limit
        );
        self.note(Level::WARNING, &msg);
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
        // Output still in the pipes belongs to this run: forward it first
        // (bounded: something the service left behind may still be writing).
        for i in 0..2 {
            self.read_stream(i, READ_AFTER_EXIT, false);
        }
        let mut run = self.run.take().expect("checked above");
        self.deregister_exit(&run);
        for stream in run.streams.iter_mut().flatten() {
            let (label, level) = (stream.label, stream.level);
            for line in stream.lines.flush() {
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
        if let Some(h) = self.health.as_mut() {
            h.service_ended();
        }
        if let Some(c) = self.check.as_mut() {
            c.kill();
            self.check_orphaned = true;
        }
        self.update_health(Some(CheckResult {
            passed: false,
            how: "the service is not running".into(),
            output: Vec::new(),
        }));
        Some(self.after_run(Some(exit), run.started.elapsed()))
    }

    fn deregister_exit(&self, run: &Run) {
        if let Some(fd) = run.child.exit_fd() {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
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
        let status = self.status.last_exit.clone();
        journal::event(&self.cell.name, Happened::Exited, status);
        if self.stop_requested {
            return true;
        }
        let succeeded = exit.is_some_and(|e| e.success());
        if !self.spec.restart.restarts(succeeded) {
            self.status.backoff_secs = 0;
            self.set_state(SupervisorState::Exited);
            let msg = format!(
                "not restarting (CELL_SUPERVISE_RESTART={})",
                self.spec.restart.as_str()
            );
            self.note(Level::NOTICE, &msg);
            return false;
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
        let grace = self
            .stop_grace
            .or_else(|| take_stop_request(&self.paths))
            .unwrap_or(DEFAULT_GRACE);
        if let Some(c) = self.check.as_mut() {
            c.kill();
            self.check_orphaned = true;
        }
        let Some(run) = self.run.as_mut() else {
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
        self.set_state_since(state, unix_now());
    }

    fn set_state_since(&mut self, state: SupervisorState, since: u64) {
        self.status.state = state;
        self.status.since = since;
        self.write_status();
    }

    /// Sends records to `socket` from now on (connected by the host to the
    /// syslog daemon again: a supervising init cannot reconnect by itself).
    pub fn replace_syslog(&mut self, socket: std::os::unix::net::UnixDatagram) {
        self.syslog.replace_socket(socket);
        if !self.syslog.unreachable() {
            return;
        }
        // Tried at once: the status reads as reachable again when the host
        // hears the answer, so the next command does not hand over another.
        self.note(Level::NOTICE, "the host connected a new syslog socket");
        self.record_syslog_reach();
    }

    /// Writes the status when whether syslog is reachable changed.
    fn record_syslog_reach(&mut self) {
        if self.syslog.unreachable() != self.status.syslog_unreachable {
            self.status.syslog_unreachable = self.syslog.unreachable();
            self.write_status();
        }
    }

    /// Writes the status file (again: `repair` after it was damaged).
    pub fn write_status(&mut self) {
        if let Err(e) = status::write_status(&self.paths.status, &self.status) {
            let msg = format!("cannot write the status file: {e:#}");
            self.log_line("supervise", &msg);
        }
    }

    /// One line from `label` (the service's stdout or stderr, or `supervise`)
    /// to syslog and the service log; what the syslog has to say (records
    /// lost, socket unreachable) goes to the service log first. `line` is
    /// escaped text.
    fn forward(&mut self, label: &str, level: Level, line: &str) {
        let msg = format!(
            "cell={} cid={} {label}: {line}",
            self.cell.name, self.cell.id
        );
        for n in self.syslog.log(level, &msg) {
            self.log_line("supervise", &n);
        }
        self.log_line(label, line);
    }

    /// One line to the service log only.
    fn log_line(&mut self, source: &str, text: &str) {
        if let Some(problem) = self.log.push(unix_now_ms(), source, text) {
            // The log is gone; syslog is the one place left to say so.
            let msg = format!(
                "cell={} cid={} supervise: {problem}",
                self.cell.name, self.cell.id
            );
            let _ = self.syslog.log(Level::ERR, &msg);
        }
    }

    /// One record about the supervisor's own doing.
    fn note(&mut self, level: Level, text: &str) {
        self.forward("supervise", level, &super::escape::escape_str(text));
    }
}

/// Signals the service's process group when it leads one, else the service.
fn signal_service(run: &mut Run, sig: libc::c_int) {
    if run.leads_group {
        // SAFETY: kill of the group the service leads; ESRCH (gone) is fine.
        unsafe { libc::kill(-(run.pid as libc::pid_t), sig) };
    } else {
        let _ = run.child.signal(sig);
    }
}

/// Writes a stop request naming the grace period (read by [`take_stop_request`]).
pub fn request_stop(paths: &Paths, grace: Duration) -> anyhow::Result<()> {
    paths.ensure_dir()?;
    crate::fs::host::write_replace(&paths.stop, grace.as_millis().to_string().as_bytes())
}

/// Reads the stop request. It is left in place: while it exists the cell
/// reads as stopping (`Supervisor::stopping`), also in the moments before
/// this supervisor records the state and after it removed its status on the
/// way out. The requester removes it once this process is gone, and a new
/// supervisor's start removes one left behind.
fn take_stop_request(paths: &Paths) -> Option<Duration> {
    let text = std::fs::read_to_string(&paths.stop).ok()?;
    text.trim().parse().ok().map(Duration::from_millis)
}

/// Gives the memory the setup used and freed (the cell lookup reads the whole
/// cell table) back to the system: a supervisor lives as long as its service,
/// one per running cell, and glibc keeps freed pages otherwise (at 100 running
/// cells: heap 78 KB → 33 KB per supervisor, bench/cell-cost.sh).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of this process's arenas.
    unsafe {
        libc::malloc_trim(0);
    }
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

pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
