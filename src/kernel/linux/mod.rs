//! The Linux kernel backend: cells from namespaces, cgroup2, BPF, capabilities
//! and seccomp. See ARCHITECTURE §3 and cellctl(8) for the mapping from the
//! NetBSD kauth rules.
//!
//! * `state`: the cell table under `<run_dir>/kernel/` (what NetBSD keeps in the kernel);
//!   `mirror`: the same on the cgroups, to rebuild a lost or damaged table from;
//! * `cgroup`: one cgroup2 cgroup per cell (membership, kill, CPU time);
//! * `limits`: process, memory and CPU limits (cgroup2 controllers or v1
//!   hierarchies), usage, and the disk-limit check;
//! * `ns`: the per-cell init holding the namespaces;
//! * `agent`: how processes enter a cell (forked by its init, on the host's
//!   request); `enter`: what such a process does before exec;
//! * `rootfs`: the cell's `/` (pivot_root, fresh /proc, minimal /dev);
//! * `caps`, `seccomp`, `landlock`: the hardening profiles;
//! * `freeze`: the cgroup freezer, with a guard process that thaws after a crash;
//! * `bpf`: reserved ports and port sharing (one cgroup program set and port map per run directory);
//! * `telemetry`: the init's 1 Hz sampler.

pub mod agent;
pub mod bpf;
pub mod caps;
pub mod cgroup;
pub mod enter;
mod freeze;
pub mod landlock;
pub mod limits;
mod mirror;
pub mod ns;
pub mod rootfs;
pub mod seccomp;
pub mod state;
mod sys;
pub mod telemetry;

use super::{
    CellInfo, CellResources, CellSpec, CellStats, Child, DenyCounters, ExecSpec, IdRange, Kernel,
    Present, Stdio, Target,
};
use anyhow::{bail, Context, Result};
use sha2::Digest;
use state::{BindGuardIds, CellRecord, Creator, Found, Locked, Store, Table};
use std::path::{Path, PathBuf};

pub struct LinuxKernel {
    store: Store,
    cgroups: cgroup::Hierarchy,
    run_key: String,
    /// Where the limit controllers are, found when first needed.
    placement: std::sync::OnceLock<limits::Placement>,
    dev_limits: rootfs::DevLimits,
    /// The `cells` executable that runs each cell's init.
    init_program: PathBuf,
}

/// A short, stable key for a run directory (names its cgroup subtree).
fn run_key(run_dir: &Path) -> String {
    let digest = sha2::Sha256::digest(run_dir.as_os_str().as_encoded_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The host pid of the process that the init of cell `cid` (host pid
/// `init_pid`) names `in_cell` in its pid namespace: the member of the
/// cell's cgroup in the init's pid namespace whose innermost `NSpid` is
/// `in_cell`. `None` when no member matches (it ended, or the name is
/// wrong): a pid from inside a cell is never used on the host untranslated.
pub fn host_pid_of_cell_pid(
    cfg: &crate::config::Config,
    cid: u64,
    init_pid: u32,
    in_cell: u32,
) -> Option<u32> {
    let root = cgroup::detect(cfg.cgroup_root.as_deref()).ok()?;
    let cell = cgroup::Hierarchy::new(root, &run_key(&cfg.run_dir)).cell(cid);
    let pid_ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let init_ns = pid_ns(i32::try_from(init_pid).ok()?)?;
    let innermost = |pid: i32| -> Option<u32> {
        let status = crate::fs::pseudo::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
        line.split_whitespace().last()?.parse().ok()
    };
    cgroup::procs(&cell)
        .ok()?
        .into_iter()
        // The init is not its own service.
        .filter(|&pid| u32::try_from(pid) != Ok(init_pid))
        .find(|&pid| innermost(pid) == Some(in_cell) && pid_ns(pid).as_ref() == Some(&init_ns))
        .and_then(|pid| u32::try_from(pid).ok())
}

/// CLOCK_MONOTONIC (like NetBSD's uptime clock the original ages use).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether a cell needs the installation's port programs: it reserves ports,
/// or it was recorded by a version that gave no cell a sharing rule of its own.
fn needs_guard(c: &CellRecord) -> bool {
    !c.ports.is_empty() || !c.own_sharing_rule
}

fn describe(c: &CellRecord) -> String {
    format!("cell '{}' (id {})", c.name, c.id)
}

/// Checks a root path the way the kernel ABI does: absolute, at most 255 bytes,
/// no control characters, an existing directory.
fn check_root(root: &Path) -> Result<()> {
    let bytes = root.as_os_str().as_encoded_bytes();
    if !root.is_absolute() {
        bail!("root '{}' must be an absolute path", root.display());
    }
    if bytes.len() > secmodel_cell::abi::CELL_ROOT_MAX {
        bail!(
            "root '{}' is longer than {} bytes",
            root.display(),
            secmodel_cell::abi::CELL_ROOT_MAX
        );
    }
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f) {
        bail!(
            "root {} contains control characters",
            crate::output::quoted(&root.to_string_lossy())
        );
    }
    // host path: the root itself, named by host root (cellctl's argument, or
    // the mount point in a cell's 0700 runtime directory), not a path inside it
    let meta = std::fs::metadata(root).with_context(|| format!("root {}", root.display()))?;
    // host path: as above
    if !meta.is_dir() {
        bail!("root {} is not a directory", root.display());
    }
    Ok(())
}

/// Refuses an id range the backend cannot give: the low profile keeps host
/// uid 0 (it is the profile that permits host administration), and a range
/// must hold the ids the cell's files and services expect (0 to 65534).
fn check_ids(spec: &CellSpec) -> Result<()> {
    let Some(ids) = spec.ids else {
        return Ok(());
    };
    if spec.profile == crate::kernel::Profile::Low {
        bail!(
            "cell '{}': the low profile runs on host ids (cell root is host root, as the \
             profile permits host administration); give an id range at medium or high only",
            spec.name
        );
    }
    if ids.size < crate::fs::ids::DEFAULT_RANGE_SIZE || ids.base == 0 {
        bail!(
            "cell '{}': the id range {ids} must start above 0 and hold at least {} ids",
            spec.name,
            crate::fs::ids::DEFAULT_RANGE_SIZE
        );
    }
    Ok(())
}

/// Creates a cell's runtime directory, host root's alone (mode 0700): the
/// agent's socket there starts processes in the cell.
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {}", dir.display()))
        }
        other => other.with_context(|| format!("creating {}", dir.display())),
    }
}

/// The agent's request for an exec spec.
fn request(spec: &ExecSpec) -> Result<agent::Request> {
    let ids = match (spec.uid, spec.gid) {
        (Some(u), Some(g)) => Some((u, g)),
        (Some(u), None) => Some((u, u)),
        (None, Some(_)) => bail!("a group id needs a user id"),
        (None, None) => None,
    };
    Ok(agent::Request {
        argv: spec.argv.clone(),
        env: environment(spec),
        cwd: spec.cwd.clone().unwrap_or_else(|| PathBuf::from("/")),
        ids,
        groups: spec.groups.clone(),
        apply_rlimits: spec.apply_rlimits,
        terminal: spec.terminal,
        service: None,
    })
}

/// The environment of a command in a cell: PATH, HOME, the caller's TERM, then
/// the spec's own variables (which may override the defaults).
fn environment(spec: &ExecSpec) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), enter::DEFAULT_PATH.to_string()),
        ("HOME".to_string(), "/".to_string()),
    ];
    if let Ok(term) = std::env::var("TERM") {
        env.push(("TERM".into(), term));
    }
    for (k, v) in &spec.env {
        env.retain(|(old, _)| old != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// Warns about reserved ports the kernel may hand out on its own since the
/// cell was created (the ephemeral range was widened, or a port was taken
/// off the kernel's reserved list): their reservation no longer holds.
fn warn_ephemeral(table: &Table) {
    if table.cells.iter().all(|c| c.ports.is_empty()) {
        return;
    }
    let ephemeral = match bpf::Ephemeral::read() {
        Ok(e) => e,
        Err(e) => return log::warn!("{e:#}"),
    };
    for cell in &table.cells {
        for &port in cell.ports.iter().filter(|&&p| ephemeral.hands_out(p)) {
            log::warn!("{}: {}", describe(cell), ephemeral.explain(port));
        }
    }
}

/// This process as the creator of the cells it makes (read again in a
/// forked child, which has a pid of its own).
fn this_creator() -> Result<Creator> {
    static ME: std::sync::Mutex<Option<Creator>> = std::sync::Mutex::new(None);
    let pid = std::process::id() as i32;
    let mut me = ME.lock().unwrap_or_else(|e| e.into_inner());
    match *me {
        Some(c) if c.pid == pid => Ok(c),
        _ => {
            let start = ns::start_time(pid).context("reading this process's start time")?;
            *me = Some(Creator { pid, start });
            Ok(Creator { pid, start })
        }
    }
}

/// Whether a record's process runs: the init of a cell, the creator of a
/// cell being made.
fn live(c: &CellRecord) -> bool {
    match c.pending {
        Some(by) => ns::alive(by.pid, by.start),
        None => ns::init_alive(c),
    }
}

/// The cells that exist (not those being made).
fn made(table: &Table) -> impl Iterator<Item = &CellRecord> {
    table.cells.iter().filter(|c| c.pending.is_none())
}

fn not_found(target: &Target) -> anyhow::Error {
    anyhow::anyhow!("{target} not found")
}

impl LinuxKernel {
    pub fn open(cfg: &crate::config::Config) -> Result<LinuxKernel> {
        let root = cgroup::detect(cfg.cgroup_root.as_deref())?;
        let run_key = run_key(&cfg.run_dir);
        Ok(LinuxKernel {
            store: Store::new(cfg.run_dir.join("kernel")),
            cgroups: cgroup::Hierarchy::new(root, &run_key),
            run_key,
            placement: std::sync::OnceLock::new(),
            dev_limits: rootfs::DevLimits {
                pty_max: cfg.pty_max,
                shm_size: cfg.shm_size,
            },
            init_program: PathBuf::from("/proc/self/exe"),
        })
    }

    /// For programs other than `cells` that use this library (benchmarks,
    /// embedders): the `cells` executable that runs each cell's init.
    pub fn with_init_program(mut self, program: PathBuf) -> LinuxKernel {
        self.init_program = program;
        self
    }

    fn placement(&self) -> &limits::Placement {
        self.placement
            .get_or_init(|| limits::Placement::detect(&self.cgroups.root))
    }

    /// Takes the lock, rebuilds a missing or damaged table from the kernel's
    /// live state (with a warning), drops cells whose init has died (reported
    /// on stderr) and detaches the port programs once no cell is left. A dead
    /// cell whose clean-up fails stays in the table (its name, id and ports
    /// stay taken) until a later run removes its cgroup.
    fn lock(&self) -> Result<Locked> {
        let mut locked = self.store.lock()?;
        let why = match std::mem::replace(&mut locked.found, Found::Table) {
            Found::Damaged(why) => Some(why),
            Found::Missing if mirror::has_cells(&self.cgroups) => Some(format!(
                "cell table {} is missing while cells exist",
                self.store.table_path().display()
            )),
            _ => None,
        };
        let rebuilt = why.is_some();
        if let Some(why) = why {
            let (table, unknown) = mirror::rebuild(&self.cgroups);
            log::warn!(
                "{why}; rebuilt it from the kernel's live state: {} cell(s){}",
                table.cells.len(),
                if table.cells.is_empty() {
                    String::new()
                } else {
                    // By name: ids follow the order cells were made in,
                    // which a parallel apply does not fix.
                    let mut names: Vec<&str> =
                        table.cells.iter().map(|c| c.name.as_str()).collect();
                    names.sort_unstable();
                    format!(" ({})", names.join(", "))
                }
            );
            for line in unknown {
                log::warn!("{line}");
            }
            locked.table = table;
        }
        let (alive, dead): (Vec<_>, Vec<_>) = std::mem::take(&mut locked.table.cells)
            .into_iter()
            .partition(live);
        locked.table.cells = alive;
        let mut changed = rebuilt;
        for cell in dead {
            match cell.pending {
                Some(by) => log::warn!(
                    "{}: the command making it (pid {}) ended before it was done; removing what it left",
                    describe(&cell),
                    by.pid
                ),
                None => log::warn!(
                    "{}: its init process (pid {}) died; removing the cell",
                    describe(&cell),
                    cell.init_pid
                ),
            }
            match self.teardown(&cell, locked.table.bind_guard.as_ref()) {
                Ok(()) => changed = true,
                Err(e) => {
                    log::warn!("{}: cleaning up: {e:#}", describe(&cell));
                    locked.table.cells.push(cell);
                }
            }
        }
        match self.drop_unused_guard(&mut locked.table) {
            Ok(detached) => changed |= detached,
            Err(e) => log::warn!("{e:#}"),
        }
        if changed {
            self.save(&locked)?;
        }
        Ok(locked)
    }

    /// The table lock with the table as it is, unless it is damaged or
    /// missing or `sweep` finds a dead cell that matters to the caller:
    /// then as [`Self::lock`] leaves it (repaired, the dead cells removed).
    fn lock_sweeping_if(&self, sweep: impl FnOnce(&Table) -> bool) -> Result<Locked> {
        let locked = self.store.lock()?;
        if !matches!(locked.found, Found::Table) || sweep(&locked.table) {
            drop(locked);
            return self.lock();
        }
        Ok(locked)
    }

    /// The lock for a command about one cell: the table as it is when that
    /// cell's init lives (the others are checked by the next full [`Self::lock`],
    /// so a lookup costs the same with 1 or 1,000 cells), else as [`Self::lock`]
    /// leaves it (also when the table is damaged or missing: that one
    /// repairs it).
    fn lock_for(&self, target: &Target) -> Result<Locked> {
        self.lock_sweeping_if(|table| Self::record_in(table, target).is_some_and(|c| !live(c)))
    }

    /// The lock for removing a cell: the table as it is (repaired first if
    /// damaged or missing, as [`Self::lock`] does). The cell's own init
    /// having ended calls for no sweep: the removal does what the sweep
    /// would, without a warning (an ephemeral cell's init ends with its
    /// command); the other cells are checked by the next full lock.
    fn lock_for_removal(&self) -> Result<Locked> {
        self.lock_sweeping_if(|_| false)
    }

    /// The lock for a create: the table as it is while every cell the new
    /// one would clash with (its name, ids or ports) lives, else as
    /// [`Self::lock`] leaves it, which removes the dead ones. Checking every
    /// cell's init at each create made a parallel apply's creates cost in
    /// proportion to the cells already running.
    fn lock_for_create(&self, spec: &CellSpec) -> Result<Locked> {
        let clashes = |c: &CellRecord| {
            c.name == spec.name
                || spec
                    .ids
                    .is_some_and(|ids| c.ids.is_some_and(|o| o.overlaps(&ids)))
                || c.ports.iter().any(|p| spec.ports.contains(p))
        };
        self.lock_sweeping_if(|table| table.cells.iter().any(|c| clashes(c) && !live(c)))
    }

    /// Saves the table and mirrors its own fields on the run cgroup.
    fn save(&self, locked: &Locked) -> Result<()> {
        locked.save()?;
        mirror::write_table_fields(&self.cgroups, &locked.table, self.store.dir())
    }

    /// Removes everything a cell has on the host: processes (through
    /// cgroup.kill, the init included), cgroups, reserved ports, runtime files.
    /// The ports go after the processes: a crash in between leaves a dead
    /// cell, whose clean-up comes back here.
    fn teardown(&self, cell: &CellRecord, guard: Option<&BindGuardIds>) -> Result<()> {
        let ending = ns::kill_init(cell)?;
        // While the init's exit tears the cell's namespaces down: its runtime
        // directory, which nothing reads any more (once more below if the
        // dying init wrote to it meanwhile).
        let dir = self.store.cell_dir(cell.id);
        let removed = remove_runtime_dir(&dir);
        if let Some(ending) = ending {
            ending.wait();
        }
        cgroup::remove(&cell.cgroup)?;
        for group in &cell.v1_groups {
            cgroup::remove_tree(group)?;
        }
        if let (Some(ids), false) = (guard, cell.ports.is_empty()) {
            if let Some(guard) = bpf::Guard::open(&self.cgroups.root, ids)? {
                guard.release(&cell.ports)?;
            }
        }
        removed.or_else(|_| remove_runtime_dir(&dir))
    }

    /// Detaches the port programs once no cell needs them (none reserves
    /// ports or relies on them for the port sharing rule), so none outlives
    /// the cells. Returns whether the table changed.
    fn drop_unused_guard(&self, table: &mut Table) -> Result<bool> {
        match table.bind_guard {
            Some(ids) if !table.cells.iter().any(needs_guard) => {
                bpf::detach(&self.cgroups.root, &ids).context("detaching the port programs")?;
                table.bind_guard = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The installation's port programs, if attached. Recorded ones of which a
    /// part is not attached (a crash before attaching, a detach by hand) are
    /// detached and forgotten.
    fn open_guard(&self, table: &mut Table) -> Result<Option<bpf::Guard>> {
        let Some(ids) = table.bind_guard else {
            return Ok(None);
        };
        if let Some(guard) = bpf::Guard::open(&self.cgroups.root, &ids)? {
            return Ok(Some(guard));
        }
        bpf::detach(&self.cgroups.root, &ids)?;
        table.bind_guard = None;
        Ok(None)
    }

    /// Loads and attaches the installation's port programs and enters the
    /// recorded cells' ports (some, if their programs were detached by hand);
    /// `member` is the init of a cell, which tells the level of cells.
    fn install_guard(&self, locked: &mut Locked, member: i32) -> Result<bpf::Guard> {
        if let Err(e) = self.detach_orphaned_guards() {
            log::warn!("looking for port programs of removed installations: {e:#}");
        }
        let cell_level = cgroup::level_of_member(member)?;
        let cells_level = cell_level
            .checked_sub(2)
            .with_context(|| format!("cell cgroup at level {cell_level}: expected 2 or deeper"))?;
        let loaded = bpf::Loaded::new(bpf::Place {
            cell_level,
            run_id: cgroup::id(&self.cgroups.run)?,
            run_level: cell_level - 1,
            cells_id: cgroup::id(&self.cgroups.cells)?,
            cells_level,
        })?;
        // Recorded first: a crash must not leave attached programs no state names.
        locked.table.bind_guard = Some(loaded.ids()?);
        self.save(locked)?;
        let guard = loaded.attach(&self.cgroups.root)?;
        // Cells being made enter their own when they are done.
        for cell in made(&locked.table).filter(|c| !c.ports.is_empty()) {
            guard.reserve(&cell.ports, cgroup::id(&cell.cgroup)?)?;
        }
        Ok(guard)
    }

    /// Detaches port programs at the hierarchy root that are Cells' and that
    /// no live installation names (`mirror::live_guards`): left attached by
    /// an installation deleted with cells in it. Returns how many.
    fn detach_orphaned_guards(&self) -> Result<usize> {
        let attached = bpf::cells_programs(&self.cgroups.root)?;
        if attached.is_empty() {
            return Ok(0);
        }
        let live: std::collections::HashSet<u32> = mirror::live_guards(&self.cgroups.cells)
            .iter()
            .flat_map(|g| g.programs())
            .collect();
        let orphans: Vec<_> = attached
            .into_iter()
            .filter(|p| !live.contains(&p.id))
            .collect();
        for &program in &orphans {
            bpf::detach_attached(&self.cgroups.root, program)?;
        }
        if !orphans.is_empty() {
            log::info!(
                "detached {} port program(s) of installations that are gone",
                orphans.len()
            );
        }
        Ok(orphans.len())
    }

    /// Guards a new cell's ports and port sharing. Its own cgroup drops
    /// `SO_REUSEADDR` on datagram sockets and, without ports, refuses
    /// `SO_REUSEPORT`; with ports, they go into the port map,
    /// the installation's programs attached for the first such cell.
    /// `sweep`: a create with this id crashed, so its ports may be in the map
    /// though no cell owns them; remove those. `init` is the new cell's
    /// init, in its cgroup `cgroup`.
    fn reserve(
        &self,
        locked: &mut Locked,
        ports: &[u16],
        cgroup: &Path,
        init: i32,
        sweep: bool,
    ) -> Result<()> {
        let guard = match self.open_guard(&mut locked.table)? {
            Some(guard) => Some(guard),
            // Also for a recorded cell whose programs went missing.
            None if !ports.is_empty() || locked.table.cells.iter().any(needs_guard) => {
                Some(self.install_guard(locked, init)?)
            }
            None => None,
        };
        bpf::guard_sharing(cgroup, !ports.is_empty())?;
        let Some(guard) = guard else {
            return Ok(());
        };
        if sweep {
            let stale: Vec<u16> = guard
                .ports()?
                .into_iter()
                .filter(|p| !locked.table.cells.iter().any(|c| c.ports.contains(p)))
                .collect();
            guard.release(&stale)?;
        }
        guard.reserve(ports, cgroup::id(cgroup)?)
    }

    fn find_in<'a>(locked: &'a Locked, target: &Target) -> Result<&'a CellRecord> {
        match Self::record_in(&locked.table, target) {
            Some(c) => match c.pending {
                Some(by) => bail!(
                    "{} is still being created (by pid {}); try again once that command is done",
                    describe(c),
                    by.pid
                ),
                None => Ok(c),
            },
            None => Err(not_found(target)),
        }
    }

    fn record_in<'a>(table: &'a Table, target: &Target) -> Option<&'a CellRecord> {
        table.cells.iter().find(|c| match target {
            Target::Id(id) => c.id == *id,
            Target::Name(n) => &c.name == n,
        })
    }

    /// Member processes besides the init (live ones; zombies leave the cgroup).
    fn members(cell: &CellRecord) -> Vec<i32> {
        cgroup::procs(&cell.cgroup)
            .unwrap_or_default()
            .into_iter()
            .filter(|&p| p != cell.init_pid)
            .collect()
    }

    fn info(&self, cell: &CellRecord, now_ns: u64) -> CellInfo {
        let procs = Self::members(cell).len() as u64;
        let sample = telemetry::Sample::read(&self.store.cell_dir(cell.id));
        let zombies = sample.refs.saturating_sub(sample.procs);
        CellInfo {
            id: cell.id,
            name: cell.name.clone(),
            root: cell.root.clone(),
            profile: cell.profile,
            ports: cell.ports.clone(),
            rlimits: cell.rlimits,
            age: now_ns.saturating_sub(cell.created_ns) / 1_000_000_000,
            procs,
            refs: procs + zombies,
            ids: cell.ids,
            frozen: freeze::is_frozen(cell),
        }
    }

    /// `destroy`, or with `kill`, `destroy_all`: the cell's members go with
    /// its init (the PID namespace ends) and its cgroup (`cgroup.kill`).
    fn remove(&self, target: &Target, kill: bool) -> Result<()> {
        let mut locked = self.lock_for_removal()?;
        let cell = Self::find_in(&locked, target)?.clone();
        let members = if kill {
            Vec::new()
        } else {
            Self::members(&cell)
        };
        if !members.is_empty() {
            bail!(
                "{} is busy: {} member process{} still running besides its init; stop {} first",
                describe(&cell),
                members.len(),
                if members.len() == 1 { "" } else { "es" },
                if members.len() == 1 { "it" } else { "them" }
            );
        }
        self.teardown(&cell, locked.table.bind_guard.as_ref())
            .with_context(|| format!("tearing down {}", describe(&cell)))?;
        locked.table.cells.retain(|c| c.id != cell.id);
        let detached = self.drop_unused_guard(&mut locked.table);
        self.save(&locked)?;
        // Not while programs are attached: the run cgroup's table fields
        // tell other installations the programs are still someone's.
        if locked.table.cells.is_empty() && locked.table.bind_guard.is_none() {
            self.cgroups.prune_run();
            self.placement().prune_run(&self.run_key);
        }
        detached?;
        Ok(())
    }

    /// The steps of `create` done without the table lock (the cell's
    /// directory, cgroups, limits and init), so that creates overlap. The
    /// ports go into the port map while the init sets up, on the other CPU
    /// where there is one ([`Self::reserve_early`]). Returns the record and
    /// the programs whose map holds its ports.
    fn build(
        &self,
        claim: &CellRecord,
        spec: &CellSpec,
        guard: Option<BindGuardIds>,
        sweep: bool,
    ) -> Result<(CellRecord, Option<BindGuardIds>)> {
        let id = claim.id;
        let sample_dir = self.store.cell_dir(id);
        create_private_dir(&sample_dir)?;
        if let Some(ids) = spec.ids {
            // The init writes its samples here from inside the cell's user
            // namespace, with the cell root's file system ids.
            std::os::unix::fs::chown(&sample_dir, Some(ids.base), Some(ids.base))
                .with_context(|| format!("giving {} to the cell's init", sample_dir.display()))?;
        }
        let cg = self.cgroups.create(id)?;
        // A crashed create's v1 groups, also for controllers this cell leaves alone.
        for leftover in self.placement().v1_groups(&self.run_key, id) {
            cgroup::remove_tree(&leftover)?;
        }
        let v1_groups = self
            .placement()
            .apply(&self.cgroups, &cg, &self.run_key, id, &spec.limits)
            .context("setting the cell's limits")?;
        let mut record = CellRecord {
            created_ns: monotonic_ns(),
            cgroup: cg.clone(),
            v1_groups,
            pending: None,
            ..claim.clone()
        };
        // The programs cannot go away meanwhile: the table names this cell.
        let mut reserved = Ok(None);
        let started = ns::start_init(
            &ns::InitSpec {
                program: &self.init_program,
                root: &spec.root,
                hostname: &spec.name,
                cgroup: &cg,
                v1_groups: &record.v1_groups,
                sample_dir: &sample_dir,
                profile: spec.profile,
                rlimits: spec.rlimits,
                dev_limits: self.dev_limits,
                ids: spec.ids,
                die_with_creator: spec.ephemeral,
            },
            |init| {
                reserved = self.reserve_early(guard, &spec.ports, &cg, init, sweep);
                // The init is ended for it; the error is said below.
                reserved
                    .as_ref()
                    .map(|_| ())
                    .map_err(|_| anyhow::anyhow!("ports not reserved"))
            },
        );
        let reserved_in = reserved.context("reserving ports")?;
        record.init_pid = started.context("starting the cell init")?;
        record.init_start =
            ns::start_time(record.init_pid).context("the cell init exited right after start-up")?;
        Ok((record, reserved_in))
    }

    /// Guards a new cell's ports and port sharing ([`Self::reserve`]) while
    /// its init sets up: without the lock when the programs recorded at the
    /// reservation (`guard`) run (a cell with ports needs them, so they stay
    /// while the table names it), else under it, loading and attaching them
    /// where needed, or after a crashed create (`sweep`). Returns the
    /// programs whose map holds the ports.
    fn reserve_early(
        &self,
        guard: Option<BindGuardIds>,
        ports: &[u16],
        cg: &Path,
        init: i32,
        sweep: bool,
    ) -> Result<Option<BindGuardIds>> {
        if let Some(ids) = guard.filter(|_| !sweep) {
            if let Some(g) = bpf::Guard::open(&self.cgroups.root, &ids)? {
                bpf::guard_sharing(cg, !ports.is_empty())?;
                if !ports.is_empty() {
                    g.reserve(ports, cgroup::id(cg)?)?;
                }
                return Ok(Some(ids));
            }
        }
        let mut locked = self.lock()?;
        self.reserve(&mut locked, ports, cg, init, sweep)?;
        Ok(locked.table.bind_guard)
    }

    /// The last step of `create`, under the lock: the ports entered again if
    /// the programs were replaced meanwhile (detached by hand), the record
    /// mirrored on the cgroup and put in place of the reservation of `by`.
    fn finish(
        &self,
        locked: &mut Locked,
        record: CellRecord,
        reserved_in: Option<BindGuardIds>,
        by: Creator,
        created: impl FnOnce(u64),
    ) -> Result<u64> {
        let at = locked
            .table
            .cells
            .iter()
            .position(|c| c.id == record.id && c.pending == Some(by))
            .with_context(|| {
                format!(
                    "{}: its reservation left the cell table while it was made (the table was damaged and rebuilt); create it again",
                    describe(&record)
                )
            })?;
        // Programs replaced meanwhile (detached by hand) lack the ports.
        if !record.ports.is_empty() && reserved_in != locked.table.bind_guard {
            self.reserve(
                locked,
                &record.ports,
                &record.cgroup,
                record.init_pid,
                false,
            )
            .context("reserving ports")?;
        }
        // Before the table names the cell: a table rebuilt later finds it.
        mirror::write_record(&record)?;
        let id = record.id;
        created(id);
        locked.table.cells[at] = record;
        self.save(locked)?;
        Ok(id)
    }

    /// `create`, calling `created` with the new cell's id once its init runs
    /// and before the table records it (under the lock).
    ///
    /// Three steps, so that creates overlap: under the lock the name, id,
    /// host ids and ports are checked and reserved (a record marked pending,
    /// with this process as its creator); the cell is built without the lock
    /// ([`Self::build`]); under the lock again the record is completed
    /// ([`Self::finish`]). A reservation whose creator died (a crash half-way)
    /// is removed with what it left by the next command that meets it, as a
    /// cell whose init died is.
    fn create_then(&self, spec: &CellSpec, created: impl FnOnce(u64)) -> Result<u64> {
        crate::names::validate("cell", &spec.name)?;
        if !landlock::scopes_available() {
            log::warn!(
                "cell '{}': this kernel's Landlock has no scopes (ABI {}, {} needed): \
                 the cell's processes can reach abstract unix sockets of the host and of \
                 other cells",
                spec.name,
                landlock::abi(),
                landlock::SCOPES_ABI
            );
        }
        check_root(&spec.root)?;
        bpf::check_ports(&spec.ports)?;
        bpf::check_not_ephemeral(&spec.ports)?;
        self.placement().check(&spec.limits)?;
        if let Some(disk) = spec.limits.disk {
            limits::check_disk(&spec.root, disk)?;
        }
        check_ids(spec)?;
        let me = this_creator()?;
        let mut locked = self.lock_for_create(spec)?;
        if let Some(c) = locked.table.cells.iter().find(|c| c.name == spec.name) {
            match c.pending {
                Some(by) => bail!(
                    "cell name '{}' is already in use (id {}, being created by pid {})",
                    spec.name,
                    c.id,
                    by.pid
                ),
                None => bail!("cell name '{}' is already in use (id {})", spec.name, c.id),
            }
        }
        if let Some(ids) = spec.ids {
            if let Some(c) = locked
                .table
                .cells
                .iter()
                .find(|c| c.ids.is_some_and(|o| o.overlaps(&ids)))
            {
                bail!(
                    "the host ids {ids} are in use by {}: two cells never share ids",
                    describe(c)
                );
            }
        }
        for port in &spec.ports {
            if let Some(c) = locked.table.cells.iter().find(|c| c.ports.contains(port)) {
                bail!("port {port} is already reserved by {}", describe(c));
            }
        }
        let reserved = locked.table.cells.iter().map(|c| c.ports.len()).sum();
        bpf::check_capacity(reserved, spec.ports.len())?;
        let id = locked.table.next_id.max(1);
        if id > u64::from(u32::MAX) {
            bail!("cell ids are exhausted");
        }
        // A cgroup left with this id means a create crashed before recording it.
        let crashed_before = self.cgroups.cell(id).exists();
        // What the cell may leave on the host, for a clean-up.
        let claim = CellRecord {
            id,
            name: spec.name.clone(),
            root: spec.root.clone(),
            profile: spec.profile,
            ports: spec.ports.clone(),
            rlimits: spec.rlimits,
            created_ns: 0,
            init_pid: 0,
            init_start: 0,
            cgroup: self.cgroups.cell(id),
            limits: spec.limits,
            v1_groups: self.placement().v1_groups(&self.run_key, id),
            ids: spec.ids,
            own_sharing_rule: spec.ports.is_empty(),
            pending: Some(me),
        };
        locked.table.next_id = id + 1;
        locked.table.cells.push(claim.clone());
        // The table alone: a table rebuilt after a crash takes its next id
        // from the cgroups, this one's included once it exists.
        locked.save()?;
        let guard = locked.table.bind_guard;
        drop(locked);
        let built = self.build(&claim, spec, guard, crashed_before);
        let mut locked = self.store.lock()?;
        if !matches!(locked.found, Found::Table) {
            drop(locked);
            locked = self.lock()?;
        }
        let (done, undo) = match built {
            Ok((record, reserved_in)) => {
                // The init is ended and reaped, every v1 group removed.
                let undo = CellRecord {
                    v1_groups: claim.v1_groups.clone(),
                    ..record.clone()
                };
                let done = self.finish(&mut locked, record, reserved_in, me, created);
                (done, undo)
            }
            Err(e) => (Err(e), claim),
        };
        if done.is_err() {
            let _ = self.teardown(&undo, locked.table.bind_guard.as_ref());
            locked.table.cells.retain(|c| c.id != id);
            let _ = self.drop_unused_guard(&mut locked.table);
            let _ = self.save(&locked);
        }
        done
    }
}

impl Kernel for LinuxKernel {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn create(&self, spec: &CellSpec) -> Result<u64> {
        self.create_then(spec, |_| ())
    }

    /// The request goes to the new cell's init before the cell is recorded,
    /// under the same lock: the init forks and execs the process while the
    /// table is written (no second lock, no wait between the two).
    fn create_and_spawn(
        &self,
        cell: &CellSpec,
        spec: &ExecSpec,
        stdio: [Stdio; 3],
    ) -> Result<(u64, Result<Child>)> {
        if spec.argv.is_empty() {
            bail!("no command given");
        }
        let request = request(spec)?;
        let mut sent = None;
        let id = self.create_then(cell, |id| {
            sent = Some(agent::host::send_request(
                &self.store.cell_dir(id),
                &request,
                stdio,
            ));
        })?;
        let child = sent
            .expect("sent once the cell exists")
            .and_then(agent::host::Sent::started)
            .with_context(|| format!("running a command in cell '{}' (id {id})", cell.name));
        Ok((id, child))
    }

    fn destroy(&self, target: &Target) -> Result<()> {
        self.remove(target, false)
    }

    fn destroy_all(&self, target: &Target) -> Result<()> {
        self.remove(target, true)
    }

    fn list(&self) -> Result<Vec<CellInfo>> {
        let locked = self.lock()?;
        warn_ephemeral(&locked.table);
        let now = monotonic_ns();
        Ok(made(&locked.table).map(|c| self.info(c, now)).collect())
    }

    fn stats(&self) -> Result<Vec<CellStats>> {
        let locked = self.lock()?;
        warn_ephemeral(&locked.table);
        let now = monotonic_ns();
        let guard = match locked.table.bind_guard {
            Some(ids) => bpf::Guard::open(&self.cgroups.root, &ids)?,
            None => None,
        };
        Ok(made(&locked.table)
            .map(|c| {
                let sample = telemetry::Sample::read(&self.store.cell_dir(c.id));
                CellStats {
                    info: self.info(c, now),
                    cpu1s: sample.cpu1s,
                    cpu10s: sample.cpu10s,
                    memory: sample.memory,
                    denies: DenyCounters {
                        bind: guard.as_ref().map_or(0, |g| g.denied_binds(&c.ports)),
                        ..DenyCounters::default()
                    },
                }
            })
            .collect())
    }

    fn resources(&self) -> Result<Vec<CellResources>> {
        let locked = self.lock()?;
        Ok(made(&locked.table)
            .map(|c| {
                let usage = limits::usage(&c.cgroup, &c.v1_groups);
                CellResources {
                    id: c.id,
                    limits: c.limits,
                    tasks: usage.tasks,
                    memory: usage.memory,
                    disk: c.limits.disk.and_then(|_| limits::disk_used(&c.root)),
                    forks_denied: usage.forks_denied,
                    oom_kills: usage.oom_kills,
                }
            })
            .collect())
    }

    fn spawn(&self, target: &Target, spec: &ExecSpec, stdio: [Stdio; 3]) -> Result<Child> {
        if spec.argv.is_empty() {
            bail!("no command given");
        }
        let request = request(spec)?;
        // Held until the process runs, so `destroy` cannot interleave.
        let locked = self.lock_for(target)?;
        let cell = Self::find_in(&locked, target)?;
        agent::host::spawn(&self.store.cell_dir(cell.id), &request, stdio)
            .with_context(|| format!("running a command in {}", describe(cell)))
    }

    fn init_service(
        &self,
        target: &Target,
        request: super::InitService,
    ) -> Result<Option<super::InitAnswer>> {
        use super::{InitAnswer, InitService};
        use std::os::fd::AsFd;
        // Not under the table lock: a stop waits out the service's grace.
        let cell = Self::find_in(&self.lock_for(target)?, target)?.clone();
        let mut ask = agent::Request {
            argv: Vec::new(),
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            ids: None,
            groups: Vec::new(),
            apply_rlimits: false,
            terminal: None,
            service: None,
        };
        let mut fds = Vec::new();
        let wait = match &request {
            InitService::Supervise {
                args,
                rotation,
                rate_limit,
                dir,
                syslog,
                syslog_socket,
            } => {
                fds.push(dir.as_fd());
                fds.extend(syslog.as_ref().map(|s| s.as_fd()));
                ask.service = Some(agent::Service::Supervise {
                    args: args.clone(),
                    supervisor_pid: cell.init_pid as u32,
                    cell: cell.name.clone(),
                    cid: cell.id,
                    max_size: rotation.0,
                    files: rotation.1,
                    rate_limit: *rate_limit,
                    with_syslog: syslog.is_some(),
                    syslog_socket: syslog_socket.clone(),
                });
                std::time::Duration::from_secs(15)
            }
            InitService::Stop { grace, wait } => {
                ask.service = Some(agent::Service::Stop {
                    grace_ms: grace.as_millis() as u64,
                });
                *wait
            }
            InitService::WriteStatus => {
                ask.service = Some(agent::Service::WriteStatus);
                std::time::Duration::from_secs(15)
            }
            InitService::Syslog { socket } => {
                fds.push(socket.as_fd());
                ask.service = Some(agent::Service::Syslog);
                std::time::Duration::from_secs(15)
            }
        };
        let answer = agent::host::service(&self.store.cell_dir(cell.id), &ask, &fds, wait)
            .with_context(|| format!("asking the init of {}", describe(&cell)))?;
        Ok(Some(match answer {
            Some(()) => InitAnswer::Done {
                supervisor_pid: cell.init_pid as u32,
            },
            None => InitAnswer::NoAnswer,
        }))
    }

    fn freeze(&self, target: &Target) -> Result<super::FreezeGuard> {
        // Not under the table lock: the guard process must not inherit it.
        let cell = Self::find_in(&self.lock()?, target)?.clone();
        freeze::freeze(&cell, &self.store.cell_dir(cell.id))
    }

    fn thaw_abandoned(&self, target: &Target) -> Result<bool> {
        let locked = self.lock()?;
        let cell = Self::find_in(&locked, target)?;
        freeze::thaw_abandoned(cell, &self.store.cell_dir(cell.id))
    }

    fn present(&self) -> Result<Vec<Present>> {
        let locked = self.lock()?;
        warn_ephemeral(&locked.table);
        Ok(made(&locked.table)
            .map(|c| Present {
                name: c.name.clone(),
                frozen: freeze::is_frozen(c),
            })
            .collect())
    }

    fn id_ranges(&self) -> Result<Vec<IdRange>> {
        // The table as it is: no member counts, samples or liveness checks
        // (a dead cell's range counting a moment longer is harmless).
        let table = match self.store.snapshot() {
            Some(table) => table,
            None => std::sync::Arc::new(self.lock()?.table.clone()),
        };
        Ok(table.cells.iter().filter_map(|c| c.ids).collect())
    }

    fn find(&self, target: &Target) -> Result<Option<CellInfo>> {
        // A lookup needs no lock unless there is something to repair: a
        // damaged or missing table, a dead init (see `lock_for`).
        if let Some(table) = self.store.snapshot() {
            match Self::record_in(&table, target) {
                None => return Ok(None),
                // Being made: not there yet.
                Some(c) if c.pending.is_some() && live(c) => return Ok(None),
                Some(c) if ns::init_alive(c) => return Ok(Some(self.info(c, monotonic_ns()))),
                Some(_) => {}
            }
        }
        let locked = self.lock_for(target)?;
        Ok(Self::find_in(&locked, target)
            .ok()
            .map(|c| self.info(c, monotonic_ns())))
    }
}

/// Removes a cell's runtime directory (its samples, the agent's socket);
/// gone already is fine.
fn remove_runtime_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_keys_are_short_and_distinct() {
        let a = run_key(Path::new("/run/cells"));
        assert_eq!(a.len(), 12);
        assert_ne!(a, run_key(Path::new("/tmp/x/run")));
    }

    #[test]
    fn the_environment_is_a_clean_default_plus_the_spec() {
        let spec = ExecSpec {
            env: vec![("PATH".into(), "/opt/bin".into()), ("A".into(), "1".into())],
            ..ExecSpec::default()
        };
        let env = environment(&spec);
        assert!(env.contains(&("HOME".into(), "/".into())));
        assert!(env.contains(&("PATH".into(), "/opt/bin".into())));
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(env.contains(&("A".into(), "1".into())));
    }

    #[test]
    fn roots_must_be_absolute_existing_directories() {
        assert!(check_root(Path::new("/")).is_ok());
        assert!(check_root(Path::new("relative")).is_err());
        assert!(check_root(Path::new("/nonexistent-cells-root")).is_err());
        assert!(check_root(Path::new("/etc/passwd")).is_err());
        assert!(check_root(Path::new("/tmp/a\nb")).is_err());
    }
}
