//! The kernel port: what a kernel must provide for cells, behind one trait.
//!
//! NetBSD implements it over the `secmodel_cell` sysctl ABI (`kmod/src/abi.rs`);
//! Linux over namespaces, cgroup2, BPF, capabilities and seccomp. Everything above
//! this module (cellctl, the engine) talks only to [`Kernel`].

use std::path::PathBuf;

pub mod process;
pub mod relay;

pub use crate::fs::ids::IdRange;
pub use process::{Child, Stdio};

/// Hardening profile of a cell: the kernel ABI's own type (`kmod/src/abi.rs`), so there
/// is one definition of the names and numeric values. Parse with `str::parse`.
pub use secmodel_cell::abi::Profile;

/// Serde support for [`Profile`] (the ABI crate is dependency-free): use
/// `#[serde(with = "crate::kernel::profile_serde")]` on a `Profile` field.
pub mod profile_serde {
    use super::Profile;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Profile, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Profile, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A stored resource limit: `None` is unlimited.
pub type Limit = Option<u64>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Rlimits {
    pub nofile: Limit,
    pub address_space: Limit,
    pub core: Limit,
}

/// Resource limits of a cell; `None` is unlimited. Enforced by the kernel
/// backend (Linux: cgroup controllers; NetBSD: secmodel_cell and rlimits),
/// except `disk`, which the storage under the cell's writable layer and
/// volumes enforces. A backend refuses a limit it cannot enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Most processes (Linux: tasks, threads included) in the cell at once.
    pub maxproc: Limit,
    /// Memory in bytes.
    pub memory: Limit,
    /// CPU time in percent of one CPU (200 = two full CPUs).
    pub cpu_percent: Limit,
    /// Bytes of disk for the cell's writable layer and volumes.
    pub disk: Limit,
}

impl From<crate::config::DefaultLimits> for Limits {
    fn from(d: crate::config::DefaultLimits) -> Limits {
        Limits {
            maxproc: d.maxproc,
            memory: d.memory,
            cpu_percent: d.cpu_percent,
            disk: d.disk,
        }
    }
}

/// What a cell uses of its limited resources (`cellctl stats`, usage beside
/// limit). `None`: not measured, because the limit is off or the backend
/// cannot tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CellResources {
    pub id: u64,
    pub limits: Limits,
    /// What `maxproc` counts (Linux: tasks, threads included, the cell's init not).
    pub tasks: Option<u64>,
    /// What `memory` counts (Linux: the memory the cell's cgroup is charged for).
    pub memory: Option<u64>,
    /// Bytes used of the storage that bounds `disk`.
    pub disk: Option<u64>,
    /// Forks refused because the cell was at `maxproc`.
    pub forks_denied: Option<u64>,
    /// Processes killed because the cell reached `memory`.
    pub oom_kills: Option<u64>,
}

/// What `create` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellSpec {
    pub name: String,
    /// Absolute path that becomes the cell's `/`.
    pub root: PathBuf,
    pub profile: Profile,
    /// Reserved ports (at most 32), owned by this cell alone.
    pub ports: Vec<u16>,
    pub rlimits: Rlimits,
    pub limits: Limits,
    /// The cell dies with the thread that created it, even when that is
    /// killed outright (`cellctl run`); the next command removes what is
    /// left. Linux only: NetBSD cells outlive their creator.
    pub ephemeral: bool,
    /// The host ids of the cell's user namespace (Linux, medium and high:
    /// cell root is host id `ids.base`); `None` runs the cell on host ids,
    /// as the low profile (and NetBSD) always does.
    pub ids: Option<IdRange>,
}

/// How a command names a cell: a string that parses as a number is an id only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Id(u64),
    Name(String),
}

impl Target {
    pub fn parse(s: &str) -> Target {
        match s.parse::<u64>() {
            Ok(id) => Target::Id(id),
            Err(_) => Target::Name(s.to_string()),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Id(id) => write!(f, "cell {id}"),
            Target::Name(n) => write!(f, "cell '{n}'"),
        }
    }
}

/// Per-cell deny counters, one per kauth scope (NetBSD) or enforcement point (Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DenyCounters {
    pub process: u64,
    pub system: u64,
    pub network: u64,
    pub machdep: u64,
    pub device: u64,
    /// Denied binds of reserved ports (part of `network` on NetBSD).
    pub bind: u64,
}

/// One cell as the kernel reports it (`cellctl list`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CellInfo {
    pub id: u64,
    pub name: String,
    pub root: PathBuf,
    #[serde(with = "profile_serde")]
    pub profile: Profile,
    pub ports: Vec<u16>,
    pub rlimits: Rlimits,
    /// Seconds since the cell was created.
    pub age: u64,
    /// Member processes (live).
    pub procs: u64,
    /// References: live plus zombie members.
    pub refs: u64,
    /// The host ids of its user namespace; `None`: host ids.
    #[serde(default)]
    pub ids: Option<IdRange>,
    /// Every process is suspended ([`Kernel::freeze`]).
    #[serde(default)]
    pub frozen: bool,
}

/// A cell the kernel holds, as planning needs it (see [`Kernel::present`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    pub name: String,
    /// Every process is suspended ([`Kernel::freeze`]).
    pub frozen: bool,
}

/// Telemetry for one cell (`cellctl stats`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CellStats {
    pub info: CellInfo,
    /// CPU time used in the last second, in clock ticks (1/100 s).
    pub cpu1s: u64,
    /// Rolling average of the per-second ticks over the last 10 s.
    pub cpu10s: u64,
    /// Memory in bytes.
    pub memory: u64,
    pub denies: DenyCounters,
}

/// The size of a terminal window, as `TIOCGWINSZ` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
    pub xpixel: u16,
    pub ypixel: u16,
}

/// A command to run inside a cell. Every such process starts in a session of
/// its own inside the cell: nothing it does reaches the caller's session,
/// process group or terminal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    /// Extra environment; the environment is otherwise a small clean default.
    pub env: Vec<(String, String)>,
    /// Working directory inside the cell (default `/`).
    pub cwd: Option<PathBuf>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Vec<u32>,
    /// Apply the cell's stored rlimits to the process.
    pub apply_rlimits: bool,
    /// Give the process a new pseudo-terminal of the cell's own, this size, as
    /// its controlling terminal and stdin, stdout and stderr (the stdio
    /// arguments of `spawn` are then ignored); [`Child::terminal`] is its
    /// master side.
    pub terminal: Option<WindowSize>,
}

/// A cell held frozen by [`Kernel::freeze`]. Dropping it thaws the cell;
/// [`FreezeGuard::thaw`] does the same and reports a failure.
pub struct FreezeGuard {
    thaw: Option<Box<dyn FnOnce() -> anyhow::Result<()>>>,
}

impl FreezeGuard {
    /// A guard that runs `thaw` once, when thawed or dropped.
    pub fn new(thaw: impl FnOnce() -> anyhow::Result<()> + 'static) -> FreezeGuard {
        FreezeGuard {
            thaw: Some(Box::new(thaw)),
        }
    }

    pub fn thaw(mut self) -> anyhow::Result<()> {
        self.thaw.take().map_or(Ok(()), |t| t())
    }
}

impl Drop for FreezeGuard {
    fn drop(&mut self) {
        if let Some(t) = self.thaw.take() {
            if let Err(e) = t() {
                log::error!("{e:#}");
            }
        }
    }
}

/// A request to the supervisor in a cell's init ([`Kernel::init_service`]).
pub enum InitService {
    /// Supervise the command of `args` (`cellctl supervise` flags, the cell
    /// and the command): its files go to `dir` (a host directory the init
    /// may write), its records to `syslog` (a connected datagram socket,
    /// `None` while no daemon listens).
    Supervise {
        args: Vec<String>,
        rotation: (u64, u32),
        rate_limit: u64,
        dir: std::os::fd::OwnedFd,
        syslog: Option<std::os::fd::OwnedFd>,
        /// Where `syslog` is connected to (what records about it say).
        syslog_socket: PathBuf,
    },
    /// End the service (TERM, `grace`, KILL) and the supervision; answered
    /// once both ended, or after `wait` without an answer.
    Stop {
        grace: std::time::Duration,
        wait: std::time::Duration,
    },
    /// Write the status file again (it was damaged).
    WriteStatus,
    /// Send syslog records to this socket, connected again to the daemon
    /// (the init's socket cannot reconnect after a restart of the daemon).
    Syslog { socket: std::os::fd::OwnedFd },
}

/// The init's answer to an [`InitService`] request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitAnswer {
    /// Done: the supervisor's pid (the init's, on the host) for a start.
    Done { supervisor_pid: u32 },
    /// No answer within the time given (the init is stopped or wedged).
    NoAnswer,
}

/// What every kernel provides. Errors name the cell and the step that failed.
pub trait Kernel: Sync {
    /// "linux" or "netbsd".
    fn name(&self) -> &'static str;
    /// Creates a cell; returns its id.
    fn create(&self, spec: &CellSpec) -> anyhow::Result<u64>;
    /// Destroys a cell; refused (EBUSY) while members other than its init exist.
    fn destroy(&self, target: &Target) -> anyhow::Result<()>;
    /// Destroys a cell together with everything still running in it (killed,
    /// no grace period): how an ephemeral cell (`cellctl run`) ends. A backend
    /// that cannot kill a cell's members refuses like [`Kernel::destroy`].
    fn destroy_all(&self, target: &Target) -> anyhow::Result<()> {
        self.destroy(target)
    }
    fn list(&self) -> anyhow::Result<Vec<CellInfo>>;
    fn stats(&self) -> anyhow::Result<Vec<CellStats>>;
    /// Starts a process inside the cell, with the cell's profile applied, in a
    /// new session. The caller holds the child: it can use its pipes, wait for
    /// it and signal it. A terminal is never passed as a descriptor: a
    /// process gets one only as its own (`ExecSpec::terminal`).
    fn spawn(&self, target: &Target, spec: &ExecSpec, stdio: [Stdio; 3]) -> anyhow::Result<Child>;
    /// Creates a cell and starts a process in it, as [`Kernel::create`] then
    /// [`Kernel::spawn`] do; a backend may overlap the two (Linux sends the
    /// request while it records the cell). The cell's id comes back once the
    /// cell exists, whether the process started or not.
    fn create_and_spawn(
        &self,
        cell: &CellSpec,
        spec: &ExecSpec,
        stdio: [Stdio; 3],
    ) -> anyhow::Result<(u64, anyhow::Result<Child>)> {
        let id = self.create(cell)?;
        Ok((id, self.spawn(&Target::Id(id), spec, stdio)))
    }
    /// Runs a command in the cell with the caller's stdin, stdout and stderr
    /// and waits for it; returns its exit status (128 + the signal number when
    /// it was killed). When stdin is a terminal the command gets a terminal of
    /// its own in the cell, relayed to the caller's (see [`relay`]).
    fn run(&self, target: &Target, spec: &ExecSpec) -> anyhow::Result<i32> {
        relay::run(spec, |spec, stdio| self.spawn(target, spec, stdio))
    }
    /// Suspends every process of the cell (for a consistent copy of its
    /// data) until the guard is thawed or dropped. The cell is also thawed
    /// when the process holding the guard dies, however it dies (Linux: a
    /// guard process, see `linux::freeze`). Backends without a freezer refuse.
    fn freeze(&self, target: &Target) -> anyhow::Result<FreezeGuard> {
        anyhow::bail!(
            "the {} backend cannot freeze cells: stop {target} instead",
            self.name()
        )
    }
    /// Thaws a cell that is frozen while no guard holds it (its holder and
    /// guard were both killed); true when it did.
    fn thaw_abandoned(&self, target: &Target) -> anyhow::Result<bool> {
        let _ = target;
        Ok(false)
    }
    /// Every cell's limits and usage. The default, for a backend that enforces
    /// no limits yet, reports none.
    fn resources(&self) -> anyhow::Result<Vec<CellResources>> {
        Ok(Vec::new())
    }
    /// Looks one cell up by id or name.
    fn find(&self, target: &Target) -> anyhow::Result<Option<CellInfo>> {
        Ok(self.list()?.into_iter().find(|c| match target {
            Target::Id(id) => c.id == *id,
            Target::Name(n) => &c.name == n,
        }))
    }
    /// The cells the kernel holds, named, without the member counts and
    /// samples of [`Kernel::list`] (a read or two per cell): what an apply
    /// plans with, over every cell.
    fn present(&self) -> anyhow::Result<Vec<Present>> {
        Ok(self
            .list()?
            .into_iter()
            .map(|c| Present {
                name: c.name,
                frozen: c.frozen,
            })
            .collect())
    }
    /// Asks the cell's init to supervise a service, stop it or write its
    /// status again (one process per running cell: the init is the
    /// supervisor). `Ok(None)`: this backend has no such init, the service
    /// needs a supervisor process of its own.
    fn init_service(
        &self,
        target: &Target,
        request: InitService,
    ) -> anyhow::Result<Option<InitAnswer>> {
        let _ = (target, request);
        Ok(None)
    }
    /// The id ranges of the cells the kernel holds (a cell whose init just
    /// died may still count): what a new range must not overlap. A backend
    /// overrides it where [`Kernel::list`] costs more than reading its table.
    fn id_ranges(&self) -> anyhow::Result<Vec<IdRange>> {
        Ok(self.list()?.into_iter().filter_map(|c| c.ids).collect())
    }
}

#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "netbsd")]
pub mod netbsd;

/// The kernel backend of the host this binary runs on.
#[cfg(target_os = "linux")]
pub fn host(cfg: &crate::config::Config) -> anyhow::Result<Box<dyn Kernel>> {
    Ok(Box::new(linux::LinuxKernel::open(cfg)?))
}

/// The kernel backend of the host this binary runs on.
#[cfg(target_os = "netbsd")]
pub fn host(_cfg: &crate::config::Config) -> anyhow::Result<Box<dyn Kernel>> {
    Ok(Box::new(netbsd::NetBsdKernel::open()?))
}

#[cfg(not(any(target_os = "linux", target_os = "netbsd")))]
pub fn host(_cfg: &crate::config::Config) -> anyhow::Result<Box<dyn Kernel>> {
    anyhow::bail!("cells supports NetBSD and Linux only")
}

/// Says that this program is a short, single-threaded command whose memory
/// holds nothing a cell's init may not carry (cellctl: its arguments, the
/// configuration, the cell table): the Linux backend then forks each cell's
/// init from it rather than executing the binary again (`linux::ns`), a
/// millisecond less per cell. Others (cellmgr, which holds every manifest
/// and the services' environments; test harnesses) keep the exec.
pub fn allow_forked_init() {
    #[cfg(target_os = "linux")]
    linux::ns::allow_forked_init();
}

/// Internal entry points the backend re-executes the binary for (the Linux cell
/// init). `Some(exit code)` when `args` named one; `None` for ordinary commands.
pub fn run_internal(args: &[String]) -> Option<i32> {
    #[cfg(target_os = "linux")]
    if args.first().map(String::as_str) == Some(linux::ns::INIT_COMMAND) {
        return Some(linux::ns::init_main(&args[1..]));
    }
    let _ = args;
    None
}
