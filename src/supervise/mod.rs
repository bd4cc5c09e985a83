//! Supervision: `cellctl supervise` runs a command inside a cell, restarts it
//! with backoff when it ends, and sends its output to syslog.
//!
//! A supervisor is its own process (re-executed from this binary, in a new
//! session), so a long-running caller such as `cellmgr` never forks itself.
//! Its state lives under `<run_dir>/supervise/`:
//!
//! * `<cell>.status`: [`SupervisorStatus`] in CBOR, replaced atomically;
//! * `<cell>.lock`: held by the live supervisor; without it the status is stale;
//! * `<cell>.log`, `.log.1`, …: the service's output, escaped and timestamped,
//!   rotated by size ([`log_path`]);
//! * `<cell>.syslog`, `.syslog.1`, …: records kept while no syslog daemon
//!   listens, rotated the same way;
//! * `<cell>.stop`: a pending stop request (its grace period).
//!
//! The directory is `0700` and every file in it `0600`: service output may
//! hold secrets, and only host root reads it.

pub mod environ;
pub mod escape;
pub mod health;
pub mod identity;
mod in_init;
pub use in_init::{absorb_events, EVENTS as EVENTS_FILE};
pub mod logfile;
pub mod logread;
pub mod monitor;
mod output;
pub mod prometheus;
mod restart;
pub(crate) mod signals;
pub mod status;
pub mod syslog;
mod throttle;

pub use health::{Health, HealthSpec, HealthStatus};
pub use monitor::unix_now_ms;
pub use restart::RestartPolicy;
pub use status::{SupervisorState, SupervisorStatus};
pub use syslog::{Facility, Level};

use crate::config::Config;
use crate::kernel::{CellInfo, Kernel, Target};
use anyhow::{bail, Context};
use argh::FromArgs;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where a supervisor's output goes and how much of it is kept (cellmgr.conf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub syslog_socket: PathBuf,
    pub rotation: logfile::Rotation,
    /// Bytes per second taken in from the service; 0: no limit.
    pub rate_limit: u64,
}

impl LogConfig {
    pub fn from_config(cfg: &Config) -> LogConfig {
        LogConfig {
            syslog_socket: cfg.syslog_socket.clone(),
            rotation: logfile::Rotation {
                max_size: cfg.log_max_size,
                files: cfg.log_max_files,
            },
            rate_limit: cfg.log_rate_limit,
        }
    }
}

/// Longest syslog tag, in bytes.
pub const TAG_MAX: usize = 63;

/// How long `start` waits for a new supervisor to report that it runs.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Run a command inside a cell under a supervisor: the supervisor detaches,
/// restarts the command with backoff (1 s doubling to 10 s, reset after 30 s of
/// stable running) as --restart says, runs its health check, and sends each
/// line of its output, escaped, to syslog and to its log (cellctl logs).
#[derive(FromArgs, argh::ArgsInfo, Debug, PartialEq)]
#[argh(subcommand, name = "supervise")]
pub struct SuperviseArgs {
    /// syslog facility: kern, user, mail, daemon, auth, syslog, lpr, news,
    /// uucp, cron, authpriv, ftp, local0 to local7 (default daemon)
    #[argh(option, short = 'f', default = "Facility::DAEMON")]
    pub facility: Facility,
    /// level of stdout lines: emerg, alert, crit, err, warning, notice, info,
    /// debug or 0-7 (default notice)
    #[argh(option, short = 'o', default = "Level::NOTICE")]
    pub stdout_level: Level,
    /// level of stderr lines (default err)
    #[argh(option, short = 'e', default = "Level::ERR")]
    pub stderr_level: Level,
    /// syslog tag, at most 63 bytes; tabs and newlines become spaces
    /// (default cellctl)
    #[argh(option, short = 't', default = "String::from(\"cellctl\")")]
    pub tag: String,
    /// run the command as this numeric uid (needs -G)
    #[argh(option, short = 'U')]
    pub uid: Option<u32>,
    /// run the command with this numeric gid (needs -U)
    #[argh(option, short = 'G')]
    pub gid: Option<u32>,
    /// supplementary groups, gid[,gid...] (needs -U and -G; default none)
    #[argh(option, short = 'g')]
    pub groups: Option<String>,
    /// run the command as this user, a name or uid resolved in the cell's
    /// /etc/passwd at every start (instead of -U/-G)
    #[argh(option)]
    pub user: Option<String>,
    /// with --user: this group, a name or gid resolved in the cell's
    /// /etc/group (default: the user's own)
    #[argh(option)]
    pub group: Option<String>,
    /// a variable of the command's environment, KEY=value (repeatable)
    #[argh(option, short = 'E')]
    pub env: Vec<String>,
    /// more variables from this host file, KEY=value a line, read at every
    /// start; it must belong to root and be readable by root only
    #[argh(option)]
    pub env_file: Option<PathBuf>,
    /// when the command ends: always start it again (default), on-failure
    /// (not after exit 0) or never
    #[argh(option, default = "RestartPolicy::Always")]
    pub restart: RestartPolicy,
    /// a health check, run inside the cell with /bin/sh -c periodically
    #[argh(option)]
    pub health_cmd: Option<String>,
    /// time between health checks (default 30s)
    #[argh(option, from_str_fn(duration))]
    pub health_interval: Option<Duration>,
    /// a health check running longer has failed (default 10s)
    #[argh(option, from_str_fn(duration))]
    pub health_timeout: Option<Duration>,
    /// consecutive failed checks that make the service failing (default 3)
    #[argh(option)]
    pub health_retries: Option<u32>,
    /// failed checks in this time after a start do not count (default 0s)
    #[argh(option, from_str_fn(duration))]
    pub health_start_period: Option<Duration>,
    /// do not detach: supervise in this process until TERM (for systemd and
    /// tests)
    #[argh(switch)]
    pub foreground: bool,
    /// internal: the descriptor a detached supervisor reports readiness on
    #[argh(option, hidden_help)]
    pub ready_fd: Option<i32>,
    /// the cell, by id or name
    #[argh(positional)]
    pub cell: String,
    /// the command and its arguments
    #[argh(positional, greedy)]
    pub command: Vec<String>,
}

/// A duration flag: `30`, `30s`, `500ms`, `2m`, `1h`.
fn duration(v: &str) -> Result<Duration, String> {
    crate::rcconf::parse_duration(v)
        .ok_or_else(|| format!("'{v}': expected a duration such as 30s, 500ms or 2m"))
}

/// A duration as a flag value.
fn duration_flag(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// What to supervise, and how to log it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperviseSpec {
    /// The cell, by name (or id).
    pub cell: String,
    pub argv: Vec<String>,
    pub facility: Facility,
    pub stdout_level: Level,
    pub stderr_level: Level,
    pub tag: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Vec<u32>,
    /// A user and group resolved in the cell at every start (instead of ids).
    pub user: Option<String>,
    pub group: Option<String>,
    pub env: environ::Vars,
    pub env_file: Option<PathBuf>,
    pub restart: RestartPolicy,
    pub health: Option<HealthSpec>,
}

impl SuperviseSpec {
    /// A spec with the defaults: facility daemon, stdout notice, stderr err,
    /// tag `cellctl`, no credential change.
    pub fn new(cell: &str, argv: Vec<String>) -> SuperviseSpec {
        SuperviseSpec {
            cell: cell.to_string(),
            argv,
            facility: Facility::DAEMON,
            stdout_level: Level::NOTICE,
            stderr_level: Level::ERR,
            tag: "cellctl".to_string(),
            uid: None,
            gid: None,
            groups: Vec::new(),
            user: None,
            group: None,
            env: Vec::new(),
            env_file: None,
            restart: RestartPolicy::Always,
            health: None,
        }
    }

    /// Builds a spec from the command line, checking the flag rules.
    pub fn from_args(args: &SuperviseArgs) -> anyhow::Result<SuperviseSpec> {
        let groups = match &args.groups {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|g| {
                    g.parse::<u32>().map_err(|_| {
                        anyhow::anyhow!("-g '{list}': expected numeric gids separated by commas")
                    })
                })
                .collect::<anyhow::Result<_>>()?,
        };
        if args.groups.is_some() && (args.uid.is_none() || args.gid.is_none()) {
            bail!("-g needs -U and -G");
        }
        let mut env = Vec::new();
        for pair in &args.env {
            let (k, v) = environ::parse_pair(pair).map_err(|e| anyhow::anyhow!("-E: {e}"))?;
            env.retain(|(old, _): &(String, String)| *old != k);
            env.push((k, v));
        }
        let health = match &args.health_cmd {
            None => {
                if args.health_interval.is_some()
                    || args.health_timeout.is_some()
                    || args.health_retries.is_some()
                    || args.health_start_period.is_some()
                {
                    bail!("the --health-* options need --health-cmd");
                }
                None
            }
            Some(cmd) => {
                let mut h = HealthSpec::new(cmd);
                h.interval = args.health_interval.unwrap_or(h.interval);
                h.timeout = args.health_timeout.unwrap_or(h.timeout);
                h.retries = args.health_retries.unwrap_or(h.retries);
                h.start_period = args.health_start_period.unwrap_or(h.start_period);
                Some(h)
            }
        };
        let spec = SuperviseSpec {
            cell: args.cell.clone(),
            argv: args.command.clone(),
            facility: args.facility,
            stdout_level: args.stdout_level,
            stderr_level: args.stderr_level,
            tag: syslog::sanitize_tag(&args.tag),
            uid: args.uid,
            gid: args.gid,
            groups,
            user: args.user.clone(),
            group: args.group.clone(),
            env,
            env_file: args.env_file.clone(),
            restart: args.restart,
            health,
        };
        spec.validate()?;
        Ok(spec)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            bail!("no command given: usage: supervise [options] <id|name> command [args...]");
        }
        if self.tag.is_empty() || self.tag.len() > TAG_MAX {
            bail!(
                "-t: the tag is {} bytes; expected 1 to {TAG_MAX}",
                self.tag.len()
            );
        }
        if self.tag.contains(['\t', '\n', '\r']) {
            bail!("-t: the tag must not contain tabs or newlines");
        }
        if self.uid.is_some() != self.gid.is_some() {
            bail!("-U and -G go together: give both or neither");
        }
        if !self.groups.is_empty() && self.uid.is_none() {
            bail!("-g needs -U and -G");
        }
        if self.user.is_some() && self.uid.is_some() {
            bail!("--user and -U/-G exclude each other: name the user one way");
        }
        if self.group.is_some() && self.user.is_none() {
            bail!("--group needs --user");
        }
        if let Some(f) = &self.env_file {
            if !f.is_absolute() {
                bail!("--env-file {}: expected an absolute path", f.display());
            }
        }
        if let Some(h) = &self.health {
            if h.cmd.trim().is_empty() {
                bail!("--health-cmd: the command is empty");
            }
            if h.interval.is_zero() || h.timeout.is_zero() {
                bail!("--health-interval and --health-timeout must be above zero");
            }
        }
        Ok(())
    }

    /// The command-line flags that reproduce this spec (for the re-exec).
    fn to_flags(&self) -> Vec<String> {
        let mut v = vec![
            "-f".to_string(),
            self.facility.name().to_string(),
            "-o".to_string(),
            self.stdout_level.code().to_string(),
            "-e".to_string(),
            self.stderr_level.code().to_string(),
            "-t".to_string(),
            self.tag.clone(),
        ];
        if let (Some(u), Some(g)) = (self.uid, self.gid) {
            v.extend([
                "-U".to_string(),
                u.to_string(),
                "-G".to_string(),
                g.to_string(),
            ]);
            if !self.groups.is_empty() {
                let list: Vec<String> = self.groups.iter().map(u32::to_string).collect();
                v.extend(["-g".to_string(), list.join(",")]);
            }
        }
        let mut opt = |flag: &str, value: String| v.extend([flag.to_string(), value]);
        if let Some(u) = &self.user {
            opt("--user", u.clone());
        }
        if let Some(g) = &self.group {
            opt("--group", g.clone());
        }
        for (k, val) in &self.env {
            opt("-E", format!("{k}={val}"));
        }
        if let Some(f) = &self.env_file {
            opt("--env-file", f.display().to_string());
        }
        opt("--restart", self.restart.as_str().to_string());
        if let Some(h) = &self.health {
            opt("--health-cmd", h.cmd.clone());
            opt("--health-interval", duration_flag(h.interval));
            opt("--health-timeout", duration_flag(h.timeout));
            opt("--health-retries", h.retries.to_string());
            opt("--health-start-period", duration_flag(h.start_period));
        }
        v
    }
}

/// `cellctl supervise`: detach and print `cell <id>`, or with `--foreground`
/// supervise in this process.
pub fn run_command(cfg: &Config, kernel: &dyn Kernel, args: SuperviseArgs) -> anyhow::Result<i32> {
    let spec = SuperviseSpec::from_args(&args)?;
    if let Some(fd) = args.ready_fd {
        if fd < 3 {
            bail!("--ready-fd {fd}: expected a descriptor above stderr");
        }
        // SAFETY: the starting process passed this descriptor to us for
        // exactly this purpose; nothing else in this process owns it.
        let ready = unsafe { File::from_raw_fd(fd) };
        return run_monitor(cfg, kernel, spec, Some(ready));
    }
    let cell = resolve(kernel, &spec.cell)?;
    if args.foreground {
        println!("cell {}", cell.id);
        return run_monitor(cfg, kernel, spec, None);
    }
    start(cfg, kernel, &spec)?;
    println!("cell {}", cell.id);
    Ok(crate::exit::EXIT_OK)
}

/// Starts a supervisor for `spec` and returns its pid once it runs: the
/// cell's init with `CELL_SUPERVISOR=init` where the kernel has one, else a
/// detached process. Fails when the cell does not exist or is already
/// supervised.
pub fn start(cfg: &Config, kernel: &dyn Kernel, spec: &SuperviseSpec) -> anyhow::Result<u32> {
    spec.validate()?;
    let cell = resolve(kernel, &spec.cell)?;
    if let Some(sup) = supervisor(cfg, &cell.name)? {
        bail!(
            "cell {} is already supervised (supervisor pid {})",
            cell.name,
            sup.pid.map_or("unknown".to_string(), |p| p.to_string())
        );
    }
    if cfg.supervise_in_init {
        if let Some(pid) = in_init::start(cfg, kernel, spec, &cell)
            .with_context(|| format!("starting the service of cell {}", cell.name))?
        {
            return Ok(pid);
        }
    }
    // A stop request left by a stop that was cut short is not for this one.
    let paths = status::Paths::new(&cfg.run_dir, &cell.name);
    match std::fs::remove_file(&paths.stop) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", paths.stop.display()))
        }
        _ => {}
    }
    let (ready_read, ready_write) = pipe().context("creating the readiness pipe")?;
    let ready_fd = ready_write.as_raw_fd();
    let mut cmd = Command::new(self_exe()?);
    cmd.arg0("cellctl")
        .arg("supervise")
        .args(spec.to_flags())
        .args([
            "--ready-fd".to_string(),
            ready_fd.to_string(),
            "--".to_string(),
        ])
        .arg(&cell.name)
        .args(&spec.argv)
        .env(
            "CELLMGR_CONF",
            std::path::absolute(&cfg.path).unwrap_or(cfg.path.clone()),
        )
        // A supervisor must not keep the caller's directory (a mount) busy.
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: `detach` calls only async-signal-safe functions.
    unsafe { cmd.pre_exec(move || detach(ready_fd)) };
    let mut intermediate = cmd
        .spawn()
        .with_context(|| format!("starting the supervisor of cell {}", cell.name))?;
    drop(ready_write);
    // The intermediate process exits at once; its child is the supervisor.
    let _ = intermediate.wait();
    let reply = read_reply(ready_read, READY_TIMEOUT)
        .with_context(|| format!("starting the supervisor of cell {}", cell.name))?;
    match reply.trim_end().split_once(' ') {
        Some(("ready", pid)) => pid
            .parse()
            .with_context(|| format!("the supervisor reported '{reply}'")),
        Some(("error:", why)) => Err(anyhow::anyhow!("{why}"))
            .with_context(|| format!("starting the supervisor of cell {}", cell.name)),
        _ => bail!(
            "the supervisor of cell {} exited before it was ready; see {}",
            cell.name,
            log_path(cfg, &cell.name).display()
        ),
    }
}

/// Stops a cell's service and its supervisor: TERM to the service, `grace`,
/// then KILL; then the supervisor exits (or the cell's init stops
/// supervising). Nothing to do when none runs. Returns true when the cell
/// itself had to be ended (its init did not answer).
pub fn stop(
    cfg: &Config,
    kernel: &dyn Kernel,
    cell: &str,
    grace: Duration,
) -> anyhow::Result<bool> {
    crate::names::validate("cell", cell)?;
    let paths = status::Paths::new(&cfg.run_dir, cell);
    let Some(sup) = supervisor(cfg, cell)? else {
        return Ok(false);
    };
    if sup.in_init {
        // As for a supervisor process: the cell reads as stopping from now
        // on, also when this command is killed before the init acts on it.
        let paths = status::Paths::of_init(&cfg.run_dir, cell);
        monitor::request_stop(&paths, grace)
            .with_context(|| format!("asking the init of cell {cell} to stop"))?;
        let stopped = in_init::stop(cfg, kernel, cell, grace);
        let _ = std::fs::remove_file(&paths.stop);
        return stopped;
    }
    let Some(pid) = sup.pid else {
        // Neither file names it: destroying the cell ends the service, and
        // a supervisor whose cell is gone exits.
        log::warn!(
            "the supervisor of cell {cell} cannot be found by pid ({} unreadable); \
             it ends with the cell",
            paths.lock.display()
        );
        return Ok(false);
    };
    monitor::request_stop(&paths, grace)
        .with_context(|| format!("asking the supervisor of cell {cell} to stop"))?;
    kill(pid as i32, libc::SIGTERM);
    // The supervisor needs the grace period plus a moment to reap and exit.
    // The request stays until the supervisor is gone: until then the cell
    // reads as stopping, whatever the supervisor has written so far.
    let gone = || {
        let _ = std::fs::remove_file(&paths.stop);
    };
    if wait_exited(&paths.lock, pid, grace + Duration::from_secs(3))? {
        gone();
        return Ok(false);
    }
    // It did not finish in time: end the service and the supervisor here.
    let service = sup.status.ok().flatten().and_then(|s| s.child_pid);
    if let Some(child) = service {
        kill(-(child as i32), libc::SIGKILL);
        kill(child as i32, libc::SIGKILL);
    }
    kill(pid as i32, libc::SIGKILL);
    if wait_exited(&paths.lock, pid, Duration::from_secs(3))? {
        // A SIGKILL is acted on when the process next runs: stop returns
        // once the service has ended too, not merely been signalled.
        if let Some(child) = service {
            wait_gone(child, Duration::from_secs(3));
        }
        let _ = std::fs::remove_file(&paths.status);
        gone();
        return Ok(false);
    }
    bail!("the supervisor of cell {cell} (pid {pid}) did not exit")
}

/// A live supervisor: the process holding the cell's supervisor lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervisor {
    /// Its pid, from its status file or else its lock file; `None` when
    /// neither can be read.
    pub pid: Option<u32>,
    /// Its status file: `Ok(None)` while it is starting up (none written
    /// yet), `Err` naming the file when it does not decode.
    pub status: Result<Option<SupervisorStatus>, String>,
    /// A stop request waits for it (written before it is signalled).
    pub stop_requested: bool,
    /// It is the cell's init (`CELL_SUPERVISOR=init`): asked through the
    /// init's socket, never signalled.
    pub in_init: bool,
}

impl Supervisor {
    /// A stop was asked of it (it may not have acted on it yet): it ends its
    /// service and exits, so the cell does not count as supervised any more.
    pub fn stopping(&self) -> bool {
        self.stop_requested
            || matches!(&self.status, Ok(Some(st)) if st.state == SupervisorState::Stopping)
    }
}

/// The cell's supervisor, if one runs. Only I/O errors on the lock fail; a
/// damaged status file is reported in [`Supervisor::status`], so it affects
/// this one cell.
pub fn supervisor(cfg: &Config, cell: &str) -> anyhow::Result<Option<Supervisor>> {
    let mut sup = supervisor_as_written(cfg, cell)?;
    if let Some(Supervisor {
        in_init: true,
        status: Ok(Some(st)),
        ..
    }) = &mut sup
    {
        in_init::to_host_view(cfg, st);
    }
    Ok(sup)
}

/// [`supervisor`] as its files say: a supervising init's service pid stays
/// in the cell's numbering (finding its host pid walks the cell's
/// processes). For callers that look at the supervisor's state only, such
/// as apply's repair, which reads every running cell's.
pub fn supervisor_as_written(cfg: &Config, cell: &str) -> anyhow::Result<Option<Supervisor>> {
    crate::names::validate("cell", cell)?;
    // A supervisor process (also one started before the setting changed)
    // or the cell's init; the configured placement is looked at first.
    let mut places = [
        (status::Paths::new(&cfg.run_dir, cell), false),
        (status::Paths::of_init(&cfg.run_dir, cell), true),
    ];
    if cfg.supervise_in_init {
        places.reverse();
    }
    for (paths, in_init) in places {
        let Some(locked_by) = status::holder(&paths.lock)? else {
            continue;
        };
        let status = status::read_status(&paths.status).map_err(|e| format!("{e:#}"));
        let pid = match &status {
            Ok(Some(st)) => Some(st.supervisor_pid),
            _ => locked_by,
        };
        return Ok(Some(Supervisor {
            pid,
            status,
            stop_requested: std::fs::symlink_metadata(&paths.stop).is_ok(),
            in_init,
        }));
    }
    Ok(None)
}

/// The status of a cell's supervisor; `None` when none runs (including a
/// status file left behind by a supervisor that is gone), while it starts
/// up, and when its status file is damaged (see [`supervisor`]).
pub fn status(cfg: &Config, cell: &str) -> anyhow::Result<Option<SupervisorStatus>> {
    Ok(supervisor(cfg, cell)?.and_then(|s| s.status.ok().flatten()))
}

/// Repairs a damaged status file of a live supervisor from what is true: when
/// the pid in its lock file is alive and is the supervisor of this cell, it is
/// asked (SIGUSR1) to write its status again (a supervising init, on its
/// socket). A supervising init whose syslog daemon went away gets a new
/// socket once one listens again. `sup` is what [`supervisor`] just read for
/// the cell. Returns what was done; `None` when there was nothing to repair.
pub fn repair(
    cfg: &Config,
    kernel: &dyn Kernel,
    cell: &str,
    sup: Option<Supervisor>,
) -> anyhow::Result<Option<String>> {
    let Some(sup) = sup else {
        return Ok(None);
    };
    if renew_syslog(cfg, kernel, cell, &sup)? {
        return Ok(Some(format!(
            "the syslog daemon at {} listens again: the init of cell {cell} logs there again",
            cfg.syslog_socket.display()
        )));
    }
    let Err(why) = sup.status else {
        return Ok(None);
    };
    if sup.in_init {
        let paths = status::Paths::of_init(&cfg.run_dir, cell);
        in_init::write_status(kernel, cell).with_context(|| why.clone())?;
        return match status::read_status(&paths.status) {
            Ok(Some(_)) => Ok(Some(format!("{why}; the cell's init wrote it again"))),
            _ => bail!("{why}; the cell's init did not write it again"),
        };
    }
    let paths = status::Paths::new(&cfg.run_dir, cell);
    let pid = sup
        .pid
        .filter(|&p| status::is_supervisor_of(p, cell))
        .with_context(|| {
            format!(
                "{why}; the process holding {} is not a supervisor of cell {cell}: \
                 restart the cell (cellmgr restart {cell})",
                paths.lock.display()
            )
        })?;
    kill(pid as i32, libc::SIGUSR1);
    let deadline = Instant::now() + READY_TIMEOUT;
    while !matches!(status::read_status(&paths.status), Ok(Some(_))) {
        if Instant::now() >= deadline || !status::pid_running(pid) {
            bail!("{why}; its supervisor (pid {pid}) did not write it again");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Some(format!(
        "{why}; its supervisor (pid {pid}) wrote it again"
    )))
}

/// Hands a supervising init whose status says the syslog daemon is
/// unreachable (it restarted: the init's socket is connected to the old one)
/// a socket connected to the daemon, when one listens again. A supervisor
/// process finds the daemon by its path by itself. Cheap unless the status
/// says so: any command that reads `sup` may call it. Returns true when a
/// socket was handed over.
pub fn renew_syslog(
    cfg: &Config,
    kernel: &dyn Kernel,
    cell: &str,
    sup: &Supervisor,
) -> anyhow::Result<bool> {
    let unreachable = matches!(&sup.status, Ok(Some(st)) if st.syslog_unreachable);
    if !sup.in_init || !unreachable || sup.stopping() {
        return Ok(false);
    }
    in_init::reconnect_syslog(cfg, kernel, cell)
}

/// How a freshly started service is judged ([`wait_started`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// From a start: the run must not end, and must pass its first health
    /// check (or, without one, run for the settle time).
    Started { settle: Duration },
    /// A service already running: only its health counts.
    Healthy,
}

/// Waits until a cell's service proves itself as `verdict` says, for at most
/// `budget`; the error says why it did not, with its last lines of output.
/// Only reads the supervisor's status: the checks run in the supervisor.
pub fn wait_for(
    cfg: &Config,
    cell: &str,
    verdict: Verdict,
    budget: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + budget;
    loop {
        let Some(st) = status(cfg, cell)? else {
            bail!(
                "its supervisor is not running{}",
                recent_output(cfg, cell, None)
            );
        };
        let first_run = st.recent_starts_ms.first().copied();
        if let Verdict::Started { settle } = verdict {
            let completed = st.state == SupervisorState::Exited
                && st.restarts == 0
                && st.last_exit.as_deref() == Some("exit 0");
            if completed {
                // A one-shot service (restart on-failure or never) that did its job.
                return Ok(());
            }
            if st.restarts > 0
                || matches!(st.state, SupervisorState::Backoff | SupervisorState::Exited)
            {
                bail!(
                    "the service ended right after its start ({}); its supervisor {}{}",
                    st.last_exit.as_deref().unwrap_or("ended"),
                    if st.state == SupervisorState::Exited {
                        "does not restart it (CELL_SUPERVISE_RESTART)"
                    } else {
                        "keeps restarting it with backoff"
                    },
                    recent_output(cfg, cell, first_run)
                );
            }
            if st.health.is_none()
                && first_run
                    .is_some_and(|t| unix_now_ms().saturating_sub(t) >= settle.as_millis() as u64)
            {
                return Ok(());
            }
        }
        match &st.health {
            Some(h) if h.state == Health::Ok => return Ok(()),
            Some(h) if h.state == Health::Failing => bail!(
                "health check failed: {} ({} in a row){}",
                h.last.as_deref().unwrap_or("the service is not running"),
                h.failures,
                recent_output(cfg, cell, first_run)
            ),
            None if verdict == Verdict::Healthy => return Ok(()),
            _ => {}
        }
        if Instant::now() >= deadline {
            bail!(
                "no verdict within {} s: its health check has neither passed nor failed{}",
                budget.as_secs(),
                recent_output(cfg, cell, first_run)
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The last lines the service and its health checks wrote (since `since_ms`),
/// for an error message: `; last output: …`.
fn recent_output(cfg: &Config, cell: &str, since_ms: Option<u64>) -> String {
    let query = logread::Query {
        last: None,
        since: since_ms.map(crate::calendar::format_utc_ms),
    };
    let mut lines = std::collections::VecDeque::new();
    let _ = logread::read_back(&log_path(cfg, cell), &query, &mut |l: String| {
        if !l.contains(" supervise: ") {
            if lines.len() == 5 {
                lines.pop_front();
            }
            lines.push_back(l);
        }
        Ok(())
    });
    if lines.is_empty() {
        return String::new();
    }
    let text: Vec<String> = lines.into_iter().collect();
    format!("; last output:\n  {}", text.join("\n  "))
}

/// Removes what a cell's supervisors left in the run directory (logs with
/// their rotated files, status, lock); for removing a cell's runtime, after
/// its supervisor stopped.
pub fn remove_files(cfg: &Config, cell: &str) -> anyhow::Result<()> {
    crate::names::validate("cell", cell)?;
    // Also one that is starting up or whose status file is damaged.
    if supervisor(cfg, cell)?.is_some() {
        bail!("the supervisor of cell {cell} still runs");
    }
    if let Err(e) = in_init::absorb_events(cfg, Some(cell)) {
        log::warn!("{e:#}");
    }
    let paths = status::Paths::new(&cfg.run_dir, cell);
    logfile::remove_all(&paths.log);
    logfile::remove_all(&paths.fallback);
    for f in [&paths.status, &paths.stop, &paths.lock] {
        let _ = std::fs::remove_file(f);
    }
    // What a supervising init left (std's removal follows no link).
    let dir = status::Paths::of_init(&cfg.run_dir, cell).dir;
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The current file of a cell's service log (rotated ones are `.1`, `.2`, …):
/// the one written last, by a supervisor process or by the cell's init.
pub fn log_path(cfg: &Config, cell: &str) -> PathBuf {
    let process = status::Paths::new(&cfg.run_dir, cell).log;
    let init = status::Paths::of_init(&cfg.run_dir, cell).log;
    let modified = |p: &PathBuf| {
        std::fs::symlink_metadata(p)
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
    };
    match (modified(&init), modified(&process)) {
        (Some(i), Some(p)) if i >= p => init,
        (Some(_), None) => init,
        _ => process,
    }
}

/// The supervisor itself (detached or in the foreground).
fn run_monitor(
    cfg: &Config,
    kernel: &dyn Kernel,
    spec: SuperviseSpec,
    mut ready: Option<File>,
) -> anyhow::Result<i32> {
    // Descriptors inherited from whoever started us (the readiness pipe
    // included) must not reach the service.
    mark_inherited_fds_cloexec();
    let setup = || -> anyhow::Result<monitor::Monitor<'_>> {
        let cell = resolve(kernel, &spec.cell)?;
        let paths = status::Paths::new(&cfg.run_dir, &cell.name);
        let logs = LogConfig::from_config(cfg);
        let m = monitor::Monitor::new(
            kernel,
            spec.clone(),
            cell,
            paths,
            &logs,
            monitor::Place::Host,
        )?;
        // Installed only now, so a TERM before this point simply ends us.
        signals::install(&[
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGHUP,
            libc::SIGCHLD,
            libc::SIGUSR1,
        ])
        .context("installing signal handlers")?;
        Ok(m)
    };
    match setup() {
        Ok(m) => m.run(ready)?,
        Err(e) => {
            if let Some(r) = ready.as_mut() {
                use std::io::Write;
                let _ = writeln!(r, "error: {:#}", e);
            }
            return Err(e);
        }
    }
    Ok(crate::exit::EXIT_OK)
}

fn resolve(kernel: &dyn Kernel, cell: &str) -> anyhow::Result<CellInfo> {
    let target = Target::parse(cell);
    kernel
        .find(&target)
        .with_context(|| format!("looking up {target}"))?
        .ok_or_else(|| anyhow::anyhow!("{target} not found"))
}

/// The running executable, for the re-exec.
fn self_exe() -> anyhow::Result<PathBuf> {
    if cfg!(target_os = "linux") {
        return Ok(PathBuf::from("/proc/self/exe"));
    }
    std::env::current_exe().context("finding the cells executable")
}

/// Runs in the forked child before exec: forks again so the supervisor is not
/// a child of the caller (no zombie in a long-running caller), starts a new
/// session, and keeps the readiness descriptor open across exec.
fn detach(ready_fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fork, _exit, setsid and fcntl are async-signal-safe.
    unsafe {
        match libc::fork() {
            -1 => return Err(std::io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        if libc::setsid() < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let flags = libc::fcntl(ready_fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(ready_fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets close-on-exec on every descriptor above stderr.
fn mark_inherited_fds_cloexec() {
    // One call where the kernel has it (Linux 5.11); a loop over the whole
    // descriptor table otherwise (1.75 ms at a limit of 20,000).
    #[cfg(target_os = "linux")]
    {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        // SAFETY: close_range only changes flags of this process's descriptors.
        if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) } == 0
        {
            return;
        }
    }
    // SAFETY: getrlimit writes into `lim`; fcntl on descriptors that may or
    // may not be open only fails with EBADF.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(65_536) as i32
    } else {
        1024
    };
    for fd in 3..max {
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    // Close-on-exec from the start: another thread's child (a parallel apply
    // starts several supervisors) must not inherit the write end, or the
    // reply would never reach its end.
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((r, w))
}

/// Reads the supervisor's one-line reply until end of file or `timeout`.
fn read_reply(fd: OwnedFd, timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    let mut file = File::from(fd);
    let mut reply = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n == 0 {
            bail!(
                "no reply from the supervisor within {} s",
                timeout.as_secs()
            );
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("waiting for the supervisor");
        }
        let mut buf = [0u8; 1024];
        match file.read(&mut buf) {
            Ok(0) => return Ok(String::from_utf8_lossy(&reply).into_owned()),
            Ok(k) => reply.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading the supervisor's reply"),
        }
    }
}

/// Waits until the supervisor released its lock and finished exiting, so that
/// callers may rely on it being gone when `stop` returns; false on timeout.
/// Sleeps on a pidfd of the supervisor where there is one (woken the moment
/// it exits), else polls every 20 ms.
fn wait_exited(lock: &std::path::Path, pid: u32, timeout: Duration) -> anyhow::Result<bool> {
    wait_until_gone(pid, timeout, || status::is_locked(lock))
}

/// Waits until `pid` is no longer running (exited, perhaps not yet reaped);
/// false on timeout.
fn wait_gone(pid: u32, timeout: Duration) -> bool {
    wait_until_gone(pid, timeout, || Ok(false)).unwrap_or(false)
}

/// Waits until `pid` is no longer running and `held()` says false; false
/// on timeout.
fn wait_until_gone(
    pid: u32,
    timeout: Duration,
    held: impl Fn() -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    let mut exit = pidfd(pid);
    loop {
        if !held()? && !status::pid_running(pid) {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        match &exit {
            Some(fd) => {
                let mut pfd = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, ms) } > 0 {
                    // It exited: what is left (a lock still held by a
                    // descendant) is polled, not waited on again.
                    exit = None;
                }
            }
            None => std::thread::sleep(Duration::from_millis(20).min(left)),
        }
    }
}

/// A descriptor that becomes readable when `pid` exits (Linux pidfd).
fn pidfd(pid: u32) -> Option<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: pidfd_open returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        // SAFETY: a fresh descriptor we own.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

fn kill(pid: i32, sig: libc::c_int) {
    if pid != 0 && pid != -1 {
        // SAFETY: plain kill(2); ESRCH (gone already) is fine.
        unsafe { libc::kill(pid, sig) };
    }
}

#[cfg(test)]
mod tests;
