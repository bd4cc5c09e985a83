//! The real runtime behind [`Runtime`]: `engine::runtime` (render, compose,
//! lifecycle) and the host kernel.

use super::execute::Runtime;
use crate::config::Config;
use crate::engine::applyfile::{CellRunner, KernelRunner, RunOutput};
use crate::engine::lock::Held;
use crate::engine::manifest::{CellManifest, Desired};
use crate::engine::runtime::{self, compose, lifecycle, CellPaths};
use crate::fs::tree::IdMap;
use crate::kernel::{CellSpec, IdRange, Kernel, Present, Target};
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

pub struct HostRuntime<'a> {
    pub cfg: &'a Config,
    pub kernel: &'a dyn Kernel,
    /// Every manifest, each checked against the others (`manifest::load_all`):
    /// renders and starts use them as they are, not read and checked again.
    pub desired: &'a Desired,
    /// The lock apply holds: set aside while health checks run.
    pub lock: &'a Held,
    /// Cells whose root [`Runtime::provision`] composed for a plan that made
    /// no kernel cell, with what the start needs (see
    /// [`Runtime::keep_provisioned`]).
    pub provisioned: Mutex<BTreeMap<String, Provisioned>>,
}

/// A cell brought up for its plan, as a start right after it takes it over.
pub struct Provisioned {
    manifest: CellManifest,
    ids: Option<IdRange>,
    /// The plan's commands ran in a kernel cell made for them (stopped with
    /// the cell): its root is then composed again for the start.
    ran_commands: bool,
}

impl<'a> HostRuntime<'a> {
    pub fn new(
        cfg: &'a Config,
        kernel: &'a dyn Kernel,
        desired: &'a Desired,
        lock: &'a Held,
    ) -> Self {
        HostRuntime {
            cfg,
            kernel,
            desired,
            lock,
            provisioned: Mutex::default(),
        }
    }

    fn provisioned(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Provisioned>> {
        self.provisioned.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Runtime for HostRuntime<'_> {
    fn ensure_volume(&self, name: &str, mode: Option<u32>) -> Result<()> {
        runtime::ensure_volume(self.cfg, name, mode).map(|_| ())
    }

    fn render(&self, cell: &str) -> Result<()> {
        let m = self
            .desired
            .cells
            .get(cell)
            .with_context(|| format!("cell {cell} has no manifest"))?;
        runtime::render_for(self.cfg, self.kernel, m).map(|_| ())
    }

    fn start(&self, cell: &str) -> Result<()> {
        lifecycle::start_declared(
            self.cfg,
            self.kernel,
            cell,
            self.desired.cells.get(cell).map(Box::as_ref),
        )
        .map(|_| ())
    }

    // The waits read state only: the lock is set aside meanwhile (the cell
    // controls how long a health check takes; other commands go on).
    fn wait_started(&self, cell: &str) -> Result<()> {
        self.lock
            .without(|| lifecycle::wait_started(self.cfg, self.kernel, cell))?
    }

    fn wait_healthy(&self, cell: &str) -> Result<()> {
        self.lock
            .without(|| lifecycle::wait_healthy(self.cfg, self.kernel, cell))?
    }

    fn stop(&self, cell: &str) -> Result<()> {
        self.provisioned().remove(cell);
        lifecycle::stop(self.cfg, self.kernel, cell).map(|_| ())
    }

    fn keep_provisioned(&self, cell: &str) -> bool {
        let mut kept = self.provisioned();
        match kept.get(cell) {
            Some(p) if !p.ran_commands => true,
            _ => {
                kept.remove(cell);
                false
            }
        }
    }

    fn start_provisioned(&self, cell: &str) -> Result<()> {
        let p = self
            .provisioned()
            .remove(cell)
            .with_context(|| format!("cell {cell} was not brought up for its plan"))?;
        lifecycle::start_prepared(self.cfg, self.kernel, &p.manifest, p.ids).map(|_| ())
    }

    fn provision<'a>(&'a self, cell: &str) -> Result<(PathBuf, IdMap, Box<dyn CellRunner + 'a>)> {
        // Whatever ran before (an interrupted run included) goes first.
        lifecycle::stop(self.cfg, self.kernel, cell)?;
        let m = lifecycle::effective_or(
            self.cfg,
            cell,
            self.desired.cells.get(cell).map(Box::as_ref),
        )?;
        let ids = lifecycle::prepare(self.cfg, self.kernel, &m)?;
        let paths = CellPaths::new(self.cfg, cell);
        self.provisioned().insert(
            cell.to_string(),
            Provisioned {
                manifest: m.clone(),
                ids,
                ran_commands: false,
            },
        );
        let spec = CellSpec {
            name: cell.to_string(),
            root: paths.root.clone(),
            profile: m.profile,
            ports: m.reserved_ports.clone(),
            rlimits: m.rlimits,
            limits: Default::default(),
            ids,
            ephemeral: false,
        };
        let runner = PlanRunner {
            cfg: self.cfg,
            kernel: self.kernel,
            provisioned: &self.provisioned,
            spec,
            created: std::cell::OnceCell::new(),
        };
        let map = ids.map_or(IdMap::IDENTITY, |r| r.map());
        Ok((paths.root, map, Box::new(runner)))
    }

    fn state_dir(&self, cell: &str) -> PathBuf {
        CellPaths::state_of(self.cfg, cell)
    }

    fn set_workers(&self, n: usize) {
        self.lock.set_workers(n);
    }
}

/// Runs a plan's commands in a kernel cell made for them at the first one: a
/// plan of files and directories alone needs no cell. [`Runtime::stop`] ends it.
struct PlanRunner<'a> {
    cfg: &'a Config,
    kernel: &'a dyn Kernel,
    /// Told when a kernel cell is made for the plan.
    provisioned: &'a Mutex<BTreeMap<String, Provisioned>>,
    spec: CellSpec,
    created: std::cell::OnceCell<Result<(), String>>,
}

impl CellRunner for PlanRunner<'_> {
    fn run(
        &self,
        argv: &[String],
        env: &[(String, String)],
        timeout: std::time::Duration,
    ) -> Result<RunOutput> {
        let cell = self.spec.name.as_str();
        self.created
            .get_or_init(|| {
                let mut kept = self.provisioned.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(p) = kept.get_mut(cell) {
                    p.ran_commands = true;
                }
                drop(kept);
                match self.kernel.create(&self.spec) {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let _ = compose::decompose(self.cfg, cell);
                        Err(format!("creating cell {cell} for its plan: {e:#}"))
                    }
                }
            })
            .clone()
            .map_err(anyhow::Error::msg)?;
        KernelRunner {
            kernel: self.kernel,
            target: Target::Name(cell.to_string()),
        }
        .run(argv, env, timeout)
    }
}

/// Repairs what a crash or a damaged file left on the running cells (the
/// kernel's `cells`) before a real apply plans: a cell left frozen with
/// nobody holding it is thawed (and marked so in `cells`), a damaged
/// supervisor status file is written again by its supervisor, a supervising
/// init gets a new syslog socket after the daemon restarted. Returns one
/// sentence per repair or failure to repair (the cell concerned is then
/// planned as it is observed), and whether each cell left as it was read is
/// supervised, for [`observe`] (a repaired one is read again there).
pub fn repair(cfg: &Config, kernel: &dyn Kernel, cells: &mut [Present]) -> Repaired {
    let mut notes = Vec::new();
    let mut supervised = BTreeMap::new();
    for c in cells {
        if c.frozen {
            match kernel.thaw_abandoned(&Target::Name(c.name.clone())) {
                Ok(true) => {
                    c.frozen = false;
                    crate::journal::event(&c.name, crate::journal::Happened::Thawed, None);
                    notes.push(format!(
                        "cell {} was left frozen with nobody holding it (a backup was killed); thawed it",
                        c.name
                    ))
                }
                Ok(false) => {}
                Err(e) => notes.push(format!("cell {} is frozen: {e:#}", c.name)),
            }
        }
        let sup = match crate::supervise::supervisor_as_written(cfg, &c.name) {
            Ok(sup) => sup,
            Err(e) => {
                notes.push(format!("{e:#}"));
                continue;
            }
        };
        let is_supervised = sup.as_ref().is_some_and(|s| !s.stopping());
        match crate::supervise::repair(cfg, kernel, &c.name, sup) {
            Ok(Some(did)) => notes.push(did),
            Ok(None) => {
                supervised.insert(c.name.clone(), is_supervised);
            }
            Err(e) => notes.push(format!("{e:#}")),
        }
    }
    Repaired { notes, supervised }
}

/// What [`repair`] did and read.
#[derive(Debug, Default)]
pub struct Repaired {
    pub notes: Vec<String>,
    /// Per cell whose supervisor status was read and left as it was: whether
    /// it counts as supervised (see [`observe`]).
    pub supervised: BTreeMap<String, bool>,
}

/// What runs on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Kernel cell present and service (if any) supervised.
    pub running: BTreeSet<String>,
    /// Kernel cell present, or mounts of the cell left by an interrupted run.
    pub present: BTreeSet<String>,
    /// Kernel cell frozen (a backup holds it, or nobody: see [`repair`]).
    pub frozen: BTreeSet<String>,
}

/// Observes the cells, given the kernel's (`Kernel::present`). Without a
/// kernel (`--dry-run` as a user) a live supervisor is the evidence for both.
/// `read` is what [`repair`] just read of the supervisors (empty without a
/// repair): those cells are not read again.
pub fn observe(
    cfg: &Config,
    kernel: Option<&[Present]>,
    desired: &Desired,
    read: &BTreeMap<String, bool>,
) -> Result<Observed> {
    // A supervisor holding its lock counts, also while it starts up or when
    // its status file is damaged (starting another would only be refused);
    // one that is stopping does not (a stop was cut short: it is leaving).
    let supervised = |name: &str| -> Result<bool> {
        if let Some(&known) = read.get(name) {
            return Ok(known);
        }
        Ok(crate::supervise::supervisor_as_written(cfg, name)?.is_some_and(|s| !s.stopping()))
    };
    let mut out = Observed::default();
    match kernel {
        Some(cells) => {
            for c in cells {
                let has_service = desired
                    .cells
                    .get(&c.name)
                    .is_some_and(|m| m.supervise_cmd.is_some());
                if !has_service || supervised(&c.name)? {
                    out.running.insert(c.name.clone());
                }
                if c.frozen {
                    out.frozen.insert(c.name.clone());
                }
                out.present.insert(c.name.clone());
            }
        }
        None => {
            for name in desired.cells.keys() {
                if supervised(name)? {
                    out.running.insert(name.clone());
                    out.present.insert(name.clone());
                }
            }
        }
    }
    // Mounts without a kernel cell: a start cut short. They count as the
    // cell being present, so a cell that should not run is stopped (which
    // takes them down) instead of being left as it is. The mount table
    // (which grows with every running cell) is read only if a cell is not.
    let absent: Vec<&String> = desired
        .cells
        .keys()
        .filter(|n| !out.present.contains(*n))
        .collect();
    if !absent.is_empty() {
        let points = crate::fs::mountinfo::mount_points()?;
        for name in absent {
            let dir = CellPaths::new(cfg, name).dir;
            if !crate::fs::mountinfo::under(&points, &dir).is_empty() {
                out.present.insert(name.clone());
            }
        }
    }
    Ok(out)
}
