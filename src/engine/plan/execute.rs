//! Carrying out a plan. Cells go in plan order; a failing cell does not stop the
//! run: its dependents are skipped with a reason and independent cells still
//! converge. A cell's record of applied hashes is written only after all of its
//! actions (and its health check) succeeded, so an interrupted run is simply
//! redone by the next one.

use super::hash;
use super::model::{ActionKind, CellPlan, Plan};
use crate::engine::applyfile::{self, CellRunner, Outcome};
use crate::fs::tree::{IdMap, Links, Tree};
use anyhow::{Context as _, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The runtime operations apply needs; implemented over `engine::runtime` and
/// the kernel, and by an in-memory fake in tests.
pub trait Runtime: Sync {
    fn ensure_volume(&self, name: &str, mode: Option<u32>) -> Result<()>;
    /// Writes the cell's runtime state from its manifest.
    fn render(&self, cell: &str) -> Result<()>;
    /// Starts the cell (kernel cell and supervised service); returns once its
    /// supervisor runs. [`Runtime::wait_started`] judges the start.
    fn start(&self, cell: &str) -> Result<()>;
    /// Waits until a cell this run started proved itself: its service did not
    /// end and its health check passed (or, without one, it ran a moment).
    fn wait_started(&self, cell: &str) -> Result<()>;
    /// Waits until a running cell's health check passes; an error when it
    /// fails. Cells without one are healthy.
    fn wait_healthy(&self, cell: &str) -> Result<()>;
    /// Stops the cell and removes its kernel cell and mounts; a no-op when stopped.
    fn stop(&self, cell: &str) -> Result<()>;
    /// Brings the cell up for its plan (root composed, no service): the host
    /// path of its root, how the cell's ids map to host ids there, and what
    /// runs the plan's commands inside the cell. [`Runtime::stop`] ends it.
    fn provision<'a>(&'a self, cell: &str) -> Result<(PathBuf, IdMap, Box<dyn CellRunner + 'a>)>;
    /// Whether the cell, its plan just run, can be started as it stands
    /// ([`Runtime::start_provisioned`], instead of a stop and a start that
    /// would take its root down and compose it again). When not (the
    /// default), the caller stops it.
    fn keep_provisioned(&self, _cell: &str) -> bool {
        false
    }
    /// Starts a cell [`Runtime::keep_provisioned`] kept, as [`Runtime::start`].
    fn start_provisioned(&self, cell: &str) -> Result<()> {
        self.stop(cell)?;
        self.start(cell)
    }
    /// Where the cell's record of applied hashes lives.
    fn state_dir(&self, cell: &str) -> PathBuf;
    /// From now on `n` threads converge cells at once: what the waits set
    /// aside (the command's lock) is set aside only while all of them wait.
    fn set_workers(&self, _n: usize) {}
}

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Only `Starting cell: <name>.` lines and failures (boot).
    Silent,
    Normal,
    /// Also every plan step and the output of commands run in cells.
    Verbose,
}

/// Limits of plan commands.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub exec_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            exec_timeout: Duration::from_secs(600),
        }
    }
}

/// What the plan's `PKG` and `EXEC` steps get from `cellmgr.conf`.
#[derive(Debug, Clone, Default)]
pub struct PlanSettings {
    pub pkg_tool: String,
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellResult {
    Converged { changed: bool },
    Failed { phase: &'static str, error: String },
    Skipped { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Volumes and cells in plan order, with their result.
    pub results: Vec<(String, CellResult)>,
}

impl Summary {
    pub fn ok(&self) -> bool {
        self.results
            .iter()
            .all(|(_, r)| matches!(r, CellResult::Converged { .. }))
    }

    pub fn changed(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, r)| matches!(r, CellResult::Converged { changed: true }))
            .count()
    }

    /// The closing table: one row per subject, then a totals line.
    pub fn table(&self) -> String {
        let width = self
            .results
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(0)
            .max(4);
        let mut s = format!("{:<width$}  {:<8} DETAIL\n", "NAME", "RESULT");
        let (mut failed, mut skipped) = (0, 0);
        for (name, r) in &self.results {
            let (result, detail) = match r {
                CellResult::Converged { changed: true } => ("ok", "changed".to_string()),
                CellResult::Converged { changed: false } => ("ok", "unchanged".to_string()),
                CellResult::Failed { phase, error } => {
                    failed += 1;
                    ("FAILED", format!("{phase}: {error}"))
                }
                CellResult::Skipped { reason } => {
                    skipped += 1;
                    ("SKIPPED", reason.clone())
                }
            };
            s.push_str(&format!("{name:<width$}  {result:<8} {detail}\n"));
        }
        s.push_str(&format!(
            "summary: total={} changed={} failed={failed} skipped={skipped}\n",
            self.results.len(),
            self.changed()
        ));
        s
    }
}

struct Failure {
    phase: &'static str,
    error: anyhow::Error,
}

fn phase(p: &'static str) -> impl FnOnce(anyhow::Error) -> Failure {
    move |error| Failure { phase: p, error }
}

/// Executes `plan`; progress goes to `out`. Returns the summary (the caller
/// prints its table and turns it into an exit code).
///
/// Volumes go first, one after another. Then up to `jobs` cells converge at
/// once: a cell begins once every cell of the plan it depends on has finished
/// (and, if it brings itself up, once those with a health check proved
/// healthy). Each cell's progress is held back and printed in plan order, so
/// the output and the summary are the same whatever the timing.
pub fn execute(
    plan: &Plan,
    rt: &dyn Runtime,
    settings: &PlanSettings,
    timing: Timing,
    verbosity: Verbosity,
    jobs: usize,
    out: &mut dyn Write,
) -> Summary {
    let mut summary = Summary::default();
    let mut failed_volumes = BTreeSet::new();
    for (v, action) in &plan.volumes {
        let subject = format!("volume {}", v.name);
        let result = if action.kind.is_change() {
            match rt.ensure_volume(&v.name, v.mode) {
                Ok(()) => CellResult::Converged { changed: true },
                Err(e) => {
                    failed_volumes.insert(v.name.clone());
                    CellResult::Failed {
                        phase: "volume",
                        error: format!("{e:#}"),
                    }
                }
            }
        } else {
            CellResult::Converged { changed: false }
        };
        report(out, verbosity, &subject, &result, None);
        if action.kind.is_change() {
            audit_step(
                action.kind.as_str(),
                crate::journal::Subject::Volume(&v.name),
                &result,
            );
        }
        summary.results.push((subject, result));
    }
    let run = CellRun::new(plan, rt, settings, timing, verbosity, &failed_volumes);
    let workers = jobs.clamp(1, plan.cells.len().max(1));
    rt.set_workers(workers);
    let working = std::sync::atomic::AtomicUsize::new(workers);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                run.work();
                let left = working.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) - 1;
                rt.set_workers(left);
            });
        }
        // This thread prints each cell's lines once those before it are out.
        let mut state = run.lock();
        for i in 0..plan.cells.len() {
            while state.cells[i].finished.is_none() {
                state = run.wait(state);
            }
            let done = state.cells[i].finished.as_mut().expect("finished");
            let _ = out.write_all(&std::mem::take(&mut done.output));
            let _ = out.flush();
        }
    });
    let mut state = run.into_state();
    for (cp, cell) in plan.cells.iter().zip(&mut state.cells) {
        let done = cell.finished.take().expect("every cell finished");
        summary
            .results
            .push((format!("cell {}", cp.input.name), done.result));
    }
    // Started here and not yet judged (no dependent needed it): judged now,
    // when most have long settled.
    for (i, cp) in plan.cells.iter().enumerate() {
        if state.unjudged.contains(&i) {
            if let Err(e) = rt.wait_started(&cp.input.name) {
                fail_later(&mut summary, out, verbosity, cp, &e);
            }
        }
    }
    // Recorded once every start has been judged: a result may still change.
    for cp in plan.cells.iter().filter(|cp| cp.changes()) {
        let subject = format!("cell {}", cp.input.name);
        if let Some((_, result)) = summary.results.iter().find(|(s, _)| *s == subject) {
            let kinds: Vec<&str> = cp
                .actions
                .iter()
                .filter(|a| a.kind.is_change())
                .map(|a| a.kind.as_str())
                .collect();
            audit_step(
                &kinds.join(","),
                crate::journal::Subject::Cell(&cp.input.name),
                result,
            );
        }
    }
    summary
}

/// One audit record per plan step that was to change something.
fn audit_step(kinds: &str, subject: crate::journal::Subject, result: &CellResult) {
    let failure = match result {
        CellResult::Converged { .. } => None,
        CellResult::Failed { phase, error } => Some(anyhow::anyhow!("{phase}: {error}")),
        CellResult::Skipped { reason } => Some(anyhow::anyhow!("skipped: {reason}")),
    };
    let outcome = match &failure {
        None => Ok(crate::exit::EXIT_OK),
        Some(e) => Err(e),
    };
    crate::journal::audit(&format!("apply {kinds}"), subject, outcome);
}

/// A cell's place in a run.
#[derive(Default)]
struct CellState {
    running: bool,
    finished: Option<Finished>,
}

struct Finished {
    result: CellResult,
    /// Its progress lines, printed in plan order.
    output: Vec<u8>,
}

#[derive(Default)]
struct RunState {
    cells: Vec<CellState>,
    /// Started by this run and not judged yet (indexes into the plan).
    unjudged: BTreeSet<usize>,
}

/// The cells of one run, shared by its workers.
struct CellRun<'a> {
    plan: &'a Plan,
    rt: &'a dyn Runtime,
    settings: &'a PlanSettings,
    timing: Timing,
    verbosity: Verbosity,
    failed_volumes: &'a BTreeSet<String>,
    /// The plan's cells each cell depends on (others are not this run's business).
    deps: Vec<Vec<usize>>,
    /// Whether a cell started here must prove itself before its dependents
    /// begin: it has a health check and a dependent brings itself up.
    judge_first: Vec<bool>,
    /// Health of running dependencies, asked once however many dependents need it.
    health: Vec<std::sync::OnceLock<Result<(), String>>>,
    state: std::sync::Mutex<RunState>,
    changed: std::sync::Condvar,
}

impl<'a> CellRun<'a> {
    fn new(
        plan: &'a Plan,
        rt: &'a dyn Runtime,
        settings: &'a PlanSettings,
        timing: Timing,
        verbosity: Verbosity,
        failed_volumes: &'a BTreeSet<String>,
    ) -> CellRun<'a> {
        let index: BTreeMap<&str, usize> = plan
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| (c.input.name.as_str(), i))
            .collect();
        let deps: Vec<Vec<usize>> = plan
            .cells
            .iter()
            .map(|c| {
                c.input
                    .depends_on
                    .iter()
                    .filter_map(|d| index.get(d.as_str()).copied())
                    .collect()
            })
            .collect();
        let mut judge_first = vec![false; plan.cells.len()];
        for (cp, deps) in plan.cells.iter().zip(&deps) {
            if brings_up(cp) {
                for &j in deps {
                    let dep = &plan.cells[j].input;
                    judge_first[j] |= dep.healthcheck.is_some() && dep.autostart;
                }
            }
        }
        CellRun {
            plan,
            rt,
            settings,
            timing,
            verbosity,
            failed_volumes,
            deps,
            judge_first,
            health: plan.cells.iter().map(|_| Default::default()).collect(),
            state: std::sync::Mutex::new(RunState {
                cells: plan.cells.iter().map(|_| CellState::default()).collect(),
                unjudged: BTreeSet::new(),
            }),
            changed: std::sync::Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'g>(
        &self,
        guard: std::sync::MutexGuard<'g, RunState>,
    ) -> std::sync::MutexGuard<'g, RunState> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    fn into_state(self) -> RunState {
        self.state.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// A worker: takes the first cell (in plan order) whose dependencies have
    /// finished, converges it, and repeats until no cell is left.
    fn work(&self) {
        let mut state = self.lock();
        loop {
            let taken = |c: &CellState| c.running || c.finished.is_some();
            // Cells before this one are all taken.
            let first = state.cells.iter().position(|c| !taken(c));
            let Some(first) = first else {
                return;
            };
            let ready = (first..self.plan.cells.len()).find(|&i| {
                !taken(&state.cells[i])
                    && self.deps[i]
                        .iter()
                        .all(|&d| state.cells[d].finished.is_some())
            });
            let Some(i) = ready else {
                state = self.wait(state);
                continue;
            };
            state.cells[i].running = true;
            let outcomes: Vec<(usize, bool)> = self.deps[i]
                .iter()
                .map(|&d| {
                    let ok = matches!(
                        state.cells[d].finished.as_ref().map(|f| &f.result),
                        Some(CellResult::Converged { .. })
                    );
                    (d, ok)
                })
                .collect();
            drop(state);
            let mut output = Vec::new();
            let (result, unjudged) = self.cell(i, &outcomes, &mut output);
            state = self.lock();
            if unjudged {
                state.unjudged.insert(i);
            }
            let cell = &mut state.cells[i];
            cell.running = false;
            cell.finished = Some(Finished { result, output });
            self.changed.notify_all();
        }
    }

    /// Converges cell `i` given its dependencies' outcomes; its result, and
    /// whether it was started and still awaits its verdict.
    fn cell(&self, i: usize, deps: &[(usize, bool)], out: &mut Vec<u8>) -> (CellResult, bool) {
        let cp = &self.plan.cells[i];
        let name = cp.input.name.as_str();
        let subject = format!("cell {name}");
        let started = Instant::now();
        let blocked = deps
            .iter()
            .find(|(_, ok)| !ok)
            .map(|&(d, _)| {
                format!(
                    "dependency {} did not converge",
                    self.plan.cells[d].input.name
                )
            })
            .or_else(|| {
                cp.input
                    .volumes
                    .iter()
                    .find(|v| self.failed_volumes.contains(*v))
                    .map(|v| format!("volume {v} did not converge"))
            })
            .or_else(|| {
                // Dependencies with a health check that were not started by
                // this run (those were judged before they finished).
                if !brings_up(cp) {
                    return None;
                }
                deps.iter().find_map(|&(d, _)| {
                    let dep = &self.plan.cells[d];
                    if dep.input.healthcheck.is_none() || !dep.input.autostart || starts(dep) {
                        return None;
                    }
                    let dep_name = dep.input.name.as_str();
                    self.health[d]
                        .get_or_init(|| {
                            self.rt
                                .wait_healthy(dep_name)
                                .map_err(|e| format!("dependency {dep_name} is not healthy: {e:#}"))
                        })
                        .clone()
                        .err()
                })
            });
        let mut unjudged = false;
        let result = if let Some(reason) = blocked {
            CellResult::Skipped { reason }
        } else {
            match converge(cp, self.rt, self.settings, self.timing, self.verbosity, out) {
                Ok(()) if starts(cp) && self.judge_first[i] => {
                    // Its dependents begin only once it proved itself.
                    match self.rt.wait_started(name) {
                        Ok(()) => CellResult::Converged {
                            changed: cp.changes(),
                        },
                        Err(e) => CellResult::Failed {
                            phase: "start",
                            error: format!("{e:#}"),
                        },
                    }
                }
                Ok(()) => {
                    unjudged = starts(cp);
                    CellResult::Converged {
                        changed: cp.changes(),
                    }
                }
                Err(f) => CellResult::Failed {
                    phase: f.phase,
                    error: format!("{:#}", f.error),
                },
            }
        };
        report(
            out,
            self.verbosity,
            &subject,
            &result,
            Some(started.elapsed()),
        );
        (result, unjudged)
    }
}

/// The plan brings the cell up (its dependencies must then be healthy).
fn brings_up(cp: &CellPlan) -> bool {
    cp.has(ActionKind::Start) || cp.has(ActionKind::Restart) || cp.has(ActionKind::Apply)
}

/// The plan starts the cell's service (which then awaits its verdict).
fn starts(cp: &CellPlan) -> bool {
    cp.has(ActionKind::Start) || cp.has(ActionKind::Restart)
}

/// A cell reported as converged failed its start's verdict after all: its
/// result becomes a failure, said again in the progress output.
fn fail_later(
    summary: &mut Summary,
    out: &mut dyn Write,
    verbosity: Verbosity,
    cp: &CellPlan,
    error: &anyhow::Error,
) {
    let subject = format!("cell {}", cp.input.name);
    let result = CellResult::Failed {
        phase: "start",
        error: format!("{error:#}"),
    };
    report(out, verbosity, &subject, &result, None);
    if let Some(slot) = summary.results.iter_mut().find(|(s, _)| *s == subject) {
        slot.1 = result;
    }
}

fn report(
    out: &mut dyn Write,
    verbosity: Verbosity,
    subject: &str,
    result: &CellResult,
    took: Option<Duration>,
) {
    let took = took
        .map(|d| format!(" ({:.1}s)", d.as_secs_f64()))
        .unwrap_or_default();
    let line = match result {
        CellResult::Converged { changed: false } if verbosity != Verbosity::Verbose => return,
        CellResult::Converged { changed } => {
            format!(
                "ok       {subject}: {}{took}",
                if *changed { "changed" } else { "unchanged" }
            )
        }
        CellResult::Failed { phase, error } => format!("FAILED   {subject}: {phase}: {error}"),
        CellResult::Skipped { reason } => format!("SKIPPED  {subject}: {reason}"),
    };
    if verbosity != Verbosity::Silent || !matches!(result, CellResult::Converged { .. }) {
        let _ = writeln!(out, "{line}");
    }
}

/// Runs one cell's actions, then records its hashes.
fn converge(
    cp: &CellPlan,
    rt: &dyn Runtime,
    settings: &PlanSettings,
    timing: Timing,
    verbosity: Verbosity,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let name = cp.input.name.as_str();
    let mut was_running = false;
    // Its plan ran and it is still up for it (see `Runtime::keep_provisioned`).
    let mut provisioned = false;
    for action in &cp.actions {
        match action.kind {
            ActionKind::Create => rt.render(name).map_err(phase("create"))?,
            ActionKind::Update => rt.render(name).map_err(phase("render"))?,
            ActionKind::Quiesce => {
                was_running = true;
                rt.stop(name).map_err(phase("quiesce"))?
            }
            ActionKind::Stop => rt.stop(name).map_err(phase("stop"))?,
            ActionKind::Apply => {
                let result = run_apply(cp, rt, settings, timing, verbosity, out);
                // A cell that starts next keeps the root its plan ran in.
                if result.is_ok()
                    && !was_running
                    && cp.has(ActionKind::Start)
                    && rt.keep_provisioned(name)
                {
                    provisioned = true;
                    continue;
                }
                let stopped = rt.stop(name);
                if let Err(e) = result {
                    if was_running {
                        // Leave the service as we found it; the plan is retried next run.
                        let _ = rt.start(name);
                    }
                    return Err(Failure {
                        phase: "apply",
                        error: e,
                    });
                }
                stopped.map_err(phase("apply"))?;
            }
            ActionKind::Start | ActionKind::Restart => {
                if verbosity == Verbosity::Silent {
                    let _ = writeln!(out, "Starting cell: {name}.");
                }
                let p = if action.kind == ActionKind::Start {
                    "start"
                } else {
                    "restart"
                };
                if std::mem::take(&mut provisioned) && action.kind == ActionKind::Start {
                    rt.start_provisioned(name).map_err(phase(p))?;
                } else {
                    // Stopping first also clears what an interrupted run left behind.
                    rt.stop(name).map_err(phase(p))?;
                    rt.start(name).map_err(phase(p))?;
                }
            }
            ActionKind::Warn | ActionKind::Noop => {}
        }
    }
    // Nothing ran and the record read for the plan holds these hashes
    // (apply holds its lock from planning on): nothing to record; every
    // cell of a no-change apply.
    if !cp.changes() && cp.recorded.as_ref() == Some(&cp.input.hashes) {
        return Ok(());
    }
    let state = rt.state_dir(name);
    let recorded = hash::read_record(&state).map(|r| r.hashes);
    if recorded.as_ref() != Some(&cp.input.hashes) {
        hash::write_record(&state, &cp.input.hashes).map_err(phase("record"))?;
    }
    Ok(())
}

fn run_apply(
    cp: &CellPlan,
    rt: &dyn Runtime,
    settings: &PlanSettings,
    timing: Timing,
    verbosity: Verbosity,
    out: &mut dyn Write,
) -> Result<()> {
    let name = cp.input.name.as_str();
    let file = cp
        .input
        .apply
        .as_ref()
        .with_context(|| format!("cell {name} has no plan"))?;
    let (root, ids, runner) = rt.provision(name)?;
    let tree = Tree::open(&root, Links::InRoot)?.with_ids(ids);
    let ctx = applyfile::Context {
        cell: name,
        root: &tree,
        runner: runner.as_ref(),
        pkg_tool: &settings.pkg_tool,
        env: settings.env.clone(),
        exec_timeout: timing.exec_timeout,
    };
    applyfile::run_plan(&ctx, file, &mut |step| {
        if verbosity == Verbosity::Verbose {
            let _ = writeln!(out, "    {step}");
            for l in step.output.lines() {
                let _ = writeln!(out, "      | {l}");
            }
        } else if let (Verbosity::Normal, Outcome::Changed(_)) = (verbosity, &step.outcome) {
            let _ = writeln!(out, "    {step}");
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::hash::Hashes;
    use super::super::model::{
        decide_cell, decide_volume, CellInput, CellObserved, Options, VolumeInput,
    };
    use super::*;
    use crate::engine::applyfile::RunOutput;
    use crate::testutil::TempDir;
    use std::sync::Mutex;

    /// Records every operation; fails those listed in `fail` ("start web").
    /// With `keeps`, a cell whose plan ran no command is started as its plan
    /// left it (`Runtime::keep_provisioned`).
    struct FakeRuntime {
        dir: PathBuf,
        log: Mutex<Vec<String>>,
        fail: Vec<&'static str>,
        keeps: bool,
    }

    struct FakeRunner<'a>(&'a FakeRuntime, String);

    impl CellRunner for FakeRunner<'_> {
        fn run(&self, argv: &[String], _: &[(String, String)], _: Duration) -> Result<RunOutput> {
            let op = format!("run {} {}", self.1, argv[2]);
            let fails = self.0.fail.contains(&op.as_str());
            self.0.log.lock().unwrap().push(op);
            Ok(RunOutput {
                code: Some(if fails { 1 } else { 0 }),
                timed_out: false,
                output: String::new(),
            })
        }
    }

    impl FakeRuntime {
        fn op(&self, what: &str, name: &str) -> Result<()> {
            let op = format!("{what} {name}");
            self.log.lock().unwrap().push(op.clone());
            if self.fail.contains(&op.as_str()) {
                anyhow::bail!("{op} failed on purpose");
            }
            Ok(())
        }
    }

    impl Runtime for FakeRuntime {
        fn ensure_volume(&self, name: &str, _: Option<u32>) -> Result<()> {
            self.op("volume", name)
        }
        fn render(&self, cell: &str) -> Result<()> {
            self.op("render", cell)
        }
        fn start(&self, cell: &str) -> Result<()> {
            self.op("start", cell)
        }
        fn wait_started(&self, cell: &str) -> Result<()> {
            self.op("started?", cell)
        }
        fn wait_healthy(&self, cell: &str) -> Result<()> {
            self.op("healthy?", cell)
        }
        fn stop(&self, cell: &str) -> Result<()> {
            self.op("stop", cell)
        }
        fn keep_provisioned(&self, cell: &str) -> bool {
            let ran = format!("run {cell} ");
            self.keeps
                && !self
                    .log
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|op| op.starts_with(&ran))
        }
        fn start_provisioned(&self, cell: &str) -> Result<()> {
            self.op("start provisioned", cell)
        }
        fn provision<'a>(
            &'a self,
            cell: &str,
        ) -> Result<(PathBuf, IdMap, Box<dyn CellRunner + 'a>)> {
            self.op("provision", cell)?;
            let root = self.dir.join(cell).join("root");
            std::fs::create_dir_all(&root)?;
            Ok((
                root,
                IdMap::IDENTITY,
                Box::new(FakeRunner(self, cell.to_string())),
            ))
        }
        fn state_dir(&self, cell: &str) -> PathBuf {
            self.dir.join(cell).join("state")
        }
    }

    fn input(
        name: &str,
        deps: &[&str],
        healthcheck: Option<&str>,
        plan: Option<&str>,
    ) -> CellInput {
        let apply = plan.map(|text| {
            crate::engine::applyfile::parse(std::path::Path::new("/m/x.apply"), text).unwrap()
        });
        CellInput {
            name: name.into(),
            autostart: true,
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            volumes: vec![],
            healthcheck: healthcheck.map(Into::into),
            hashes: Hashes {
                manifest: format!("m-{name}"),
                service: "s".into(),
                policy: "p".into(),
                apply: plan.map(|p| format!("len{}", p.len())),
            },
            apply,
        }
    }

    fn plan_for(rt: &FakeRuntime, cells: &[CellInput]) -> Plan {
        let cells = cells
            .iter()
            .map(|c| {
                let applied = hash::read_record(&rt.state_dir(&c.name)).map(|r| r.hashes);
                let obs = CellObserved {
                    rendered: applied.is_some(),
                    running: applied.is_some(),
                    present: applied.is_some(),
                    applied,
                };
                decide_cell(c, &obs, Options::default(), &[])
            })
            .collect();
        Plan {
            volumes: vec![],
            cells,
            warnings: vec![],
        }
    }

    fn fake(tag: &str, fail: Vec<&'static str>) -> (TempDir, FakeRuntime) {
        let t = TempDir::new(tag);
        let rt = FakeRuntime {
            dir: t.path().to_path_buf(),
            log: Mutex::new(vec![]),
            fail,
            keeps: false,
        };
        (t, rt)
    }

    /// One cell at a time: the order of operations is the plan's.
    fn run(plan: &Plan, rt: &FakeRuntime, v: Verbosity) -> (Summary, String) {
        run_jobs(plan, rt, v, 1)
    }

    fn run_jobs(plan: &Plan, rt: &dyn Runtime, v: Verbosity, jobs: usize) -> (Summary, String) {
        let mut out = Vec::new();
        let s = execute(
            plan,
            rt,
            &PlanSettings::default(),
            Timing::default(),
            v,
            jobs,
            &mut out,
        );
        (s, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_failing_cell_skips_its_dependents_only() {
        let (_t, rt) = fake("exec-fail", vec!["start app"]);
        let cells = [
            input("db", &[], None, None),
            input("app", &["db"], None, None),
            input("web", &["app"], None, None),
            input("solo", &[], None, None),
        ];
        let (s, out) = run(&plan_for(&rt, &cells), &rt, Verbosity::Normal);
        assert!(!s.ok());
        let results: Vec<(&str, &CellResult)> =
            s.results.iter().map(|(n, r)| (n.as_str(), r)).collect();
        assert_eq!(
            results[0],
            ("cell db", &CellResult::Converged { changed: true })
        );
        assert!(matches!(
            results[1].1,
            CellResult::Failed { phase: "start", .. }
        ));
        assert_eq!(
            results[2].1,
            &CellResult::Skipped {
                reason: "dependency app did not converge".into()
            }
        );
        assert_eq!(
            results[3],
            ("cell solo", &CellResult::Converged { changed: true })
        );
        assert!(
            out.contains("SKIPPED  cell web: dependency app did not converge"),
            "{out}"
        );
        assert!(
            s.table()
                .ends_with("summary: total=4 changed=2 failed=1 skipped=1\n"),
            "{}",
            s.table()
        );
        // Only converged cells have a record; the next plan redoes the others.
        assert!(hash::read_record(&rt.state_dir("db")).is_some());
        assert!(hash::read_record(&rt.state_dir("app")).is_none());
        let again = plan_for(&rt, &cells);
        let kinds: Vec<bool> = again.cells.iter().map(CellPlan::changes).collect();
        assert_eq!(kinds, [false, true, true, false]);
    }

    /// Holds the starts of the cells in `together` until all of them are
    /// starting: only a run that converges them at once gets past it.
    struct Gate<'a> {
        inner: &'a FakeRuntime,
        together: Vec<&'static str>,
        arrived: Mutex<Vec<String>>,
        all_in: std::sync::Condvar,
    }

    impl Runtime for Gate<'_> {
        fn ensure_volume(&self, name: &str, mode: Option<u32>) -> Result<()> {
            self.inner.ensure_volume(name, mode)
        }
        fn render(&self, cell: &str) -> Result<()> {
            self.inner.render(cell)
        }
        fn start(&self, cell: &str) -> Result<()> {
            if self.together.contains(&cell) {
                let mut arrived = self.arrived.lock().unwrap();
                arrived.push(cell.to_string());
                self.all_in.notify_all();
                // A bound only so that a broken executor fails instead of hanging.
                let (arrived, timeout) = self
                    .all_in
                    .wait_timeout_while(arrived, Duration::from_secs(30), |a| {
                        a.len() < self.together.len()
                    })
                    .unwrap();
                anyhow::ensure!(!timeout.timed_out(), "{cell} started alone: {arrived:?}");
            }
            self.inner.start(cell)
        }
        fn wait_started(&self, cell: &str) -> Result<()> {
            self.inner.wait_started(cell)
        }
        fn wait_healthy(&self, cell: &str) -> Result<()> {
            self.inner.wait_healthy(cell)
        }
        fn stop(&self, cell: &str) -> Result<()> {
            self.inner.stop(cell)
        }
        fn provision<'a>(
            &'a self,
            cell: &str,
        ) -> Result<(PathBuf, IdMap, Box<dyn CellRunner + 'a>)> {
            self.inner.provision(cell)
        }
        fn state_dir(&self, cell: &str) -> PathBuf {
            self.inner.state_dir(cell)
        }
    }

    /// Progress lines without their timings.
    fn untimed(out: &str) -> String {
        out.lines()
            .map(|l| l.split(" (").next().unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn independent_cells_converge_at_once_and_report_in_plan_order() {
        let cells = [
            input("db", &[], Some("pg_isready"), None),
            input("web", &["db"], None, None),
            input("a", &[], None, None),
            input("b", &[], None, None),
            input("c", &[], None, None),
        ];
        // One at a time, for reference.
        let (_t1, serial) = fake("exec-serial", vec!["start c"]);
        let (s1, out1) = run(&plan_for(&serial, &cells), &serial, Verbosity::Verbose);
        let (_t2, fake_rt) = fake("exec-parallel", vec!["start c"]);
        let gate = Gate {
            inner: &fake_rt,
            // Only converged concurrently can these three start.
            together: vec!["db", "a", "b"],
            arrived: Mutex::new(vec![]),
            all_in: std::sync::Condvar::new(),
        };
        let (s2, out2) = run_jobs(&plan_for(&fake_rt, &cells), &gate, Verbosity::Verbose, 4);
        assert_eq!(s1, s2);
        assert_eq!(untimed(&out1), untimed(&out2));
        assert!(
            s2.table()
                .ends_with("summary: total=5 changed=4 failed=1 skipped=0\n"),
            "{}",
            s2.table()
        );
        // A dependent began only once its dependency had proved itself.
        let log = fake_rt.log.lock().unwrap().clone();
        let at = |op: &str| log.iter().position(|o| o == op).unwrap();
        assert!(at("started? db") < at("render web"), "{log:?}");
    }

    #[test]
    fn a_failure_skips_dependents_in_a_parallel_run_too() {
        let (_t, rt) = fake("exec-parfail", vec!["start app"]);
        let cells = [
            input("db", &[], None, None),
            input("app", &["db"], None, None),
            input("web", &["app"], None, None),
            input("solo", &[], None, None),
        ];
        let (s, out) = run_jobs(&plan_for(&rt, &cells), &rt, Verbosity::Normal, 8);
        assert!(
            s.table()
                .ends_with("summary: total=4 changed=2 failed=1 skipped=1\n"),
            "{}",
            s.table()
        );
        let lines: Vec<&str> = out.lines().map(|l| &l[..l.find(':').unwrap()]).collect();
        assert_eq!(
            lines,
            [
                "ok       cell db",
                "FAILED   cell app",
                "SKIPPED  cell web",
                "ok       cell solo"
            ]
        );
        assert!(!rt.log.lock().unwrap().contains(&"render web".to_string()));
    }

    #[test]
    fn dependents_wait_for_healthy_dependencies() {
        let (_t, rt) = fake("exec-health", vec!["healthy? db"]);
        let db = input("db", &[], Some("pg_isready"), None);
        let web = input("web", &["db"], None, None);
        let converged = CellObserved {
            rendered: true,
            running: true,
            present: true,
            applied: Some(db.hashes.clone()),
        };
        let plan = Plan {
            volumes: vec![],
            cells: vec![
                decide_cell(&db, &converged, Options::default(), &[]),
                decide_cell(&web, &CellObserved::default(), Options::default(), &[]),
            ],
            warnings: vec![],
        };
        let (s, _) = run(&plan, &rt, Verbosity::Normal);
        assert_eq!(s.results[0].1, CellResult::Converged { changed: false });
        assert!(
            matches!(&s.results[1].1, CellResult::Skipped { reason } if reason.contains("dependency db is not healthy: healthy? db failed on purpose")),
            "{:?}",
            s.results[1]
        );
        assert_eq!(*rt.log.lock().unwrap(), ["healthy? db"]);
    }

    #[test]
    fn starts_are_judged_when_a_dependent_needs_them_or_at_the_end() {
        let (_t, rt) = fake("exec-judge", vec!["started? db", "started? solo"]);
        let cells = [
            input("db", &[], Some("pg_isready"), None),
            input("web", &["db"], None, None),
            input("solo", &[], None, None),
            input("plain", &[], None, None),
        ];
        let (s, out) = run(&plan_for(&rt, &cells), &rt, Verbosity::Normal);
        assert_eq!(
            *rt.log.lock().unwrap(),
            [
                "render db",
                "stop db",
                "start db",
                "started? db",
                "render solo",
                "stop solo",
                "start solo",
                "render plain",
                "stop plain",
                "start plain",
                "started? solo",
                "started? plain"
            ]
        );
        let results: Vec<String> = s
            .results
            .iter()
            .map(|(n, r)| format!("{n}: {r:?}"))
            .collect();
        assert!(
            results[0].starts_with("cell db: Failed { phase: \"start\""),
            "{results:?}"
        );
        assert!(
            results[1].contains("Skipped { reason: \"dependency db did not converge\""),
            "{results:?}"
        );
        assert!(
            results[2].starts_with("cell solo: Failed { phase: \"start\""),
            "{results:?}"
        );
        assert_eq!(results[3], "cell plain: Converged { changed: true }");
        // The progress output says so when it is known.
        assert!(
            out.contains("FAILED   cell solo: start: started? solo failed on purpose"),
            "{out}"
        );
        assert!(
            s.table()
                .ends_with("summary: total=4 changed=1 failed=2 skipped=1\n"),
            "{}",
            s.table()
        );
    }

    #[test]
    fn plans_run_provisioned_then_the_cell_starts_and_second_run_is_noop() {
        let (_t, rt) = fake("exec-plan", vec![]);
        let cells = [input(
            "web",
            &[],
            Some("true"),
            Some("DIR /srv/www\nEXEC echo hi\n"),
        )];
        let (s, out) = run(&plan_for(&rt, &cells), &rt, Verbosity::Normal);
        assert!(s.ok(), "{}", s.table());
        assert_eq!(
            *rt.log.lock().unwrap(),
            [
                "render web",
                "provision web",
                "run web echo hi",
                "stop web",
                "stop web",
                "start web",
                "started? web"
            ]
        );
        assert!(
            out.contains("line 1 DIR /srv/www: changed (created)"),
            "{out}"
        );
        assert!(rt.dir.join("web/root/srv/www").is_dir());
        rt.log.lock().unwrap().clear();
        let again = plan_for(&rt, &cells);
        assert_eq!(again.to_string(), "NOOP     cell web: already converged\n");
        let (s, out) = run(&again, &rt, Verbosity::Normal);
        assert!(s.ok());
        assert_eq!(out, "");
        assert!(rt.log.lock().unwrap().is_empty());
    }

    #[test]
    fn a_cell_starts_in_the_root_its_plan_ran_in_unless_the_plan_made_a_kernel_cell() {
        let (_t, mut rt) = fake("exec-keep", vec![]);
        rt.keeps = true;
        let cells = [
            input("files", &[], None, Some("DIR /srv/www\n")),
            input("cmds", &[], None, Some("EXEC echo hi\n")),
        ];
        let (s, _) = run(&plan_for(&rt, &cells), &rt, Verbosity::Normal);
        assert!(s.ok(), "{}", s.table());
        assert_eq!(
            *rt.log.lock().unwrap(),
            [
                "render files",
                "provision files",
                "start provisioned files",
                "render cmds",
                "provision cmds",
                "run cmds echo hi",
                "stop cmds",
                "stop cmds",
                "start cmds",
                "started? files",
                "started? cmds",
            ]
        );
    }

    #[test]
    fn a_failing_plan_restores_the_service_and_records_nothing() {
        let (_t, rt) = fake("exec-planfail", vec!["run web false"]);
        let cells = [input("web", &[], None, Some("EXEC false\n"))];
        let mut plan = plan_for(&rt, &cells);
        // Pretend it was running: QUIESCE first.
        plan.cells[0] = decide_cell(
            &cells[0],
            &CellObserved {
                rendered: true,
                running: true,
                present: true,
                applied: None,
            },
            Options::default(),
            &[],
        );
        let (s, _) = run(&plan, &rt, Verbosity::Silent);
        assert!(
            matches!(&s.results[0].1, CellResult::Failed { phase: "apply", error } if error.contains("x.apply:1: EXEC"))
        );
        assert_eq!(
            *rt.log.lock().unwrap(),
            [
                "render web",
                "stop web",
                "provision web",
                "run web false",
                "stop web",
                "start web"
            ]
        );
        assert!(hash::read_record(&rt.state_dir("web")).is_none());
    }

    #[test]
    fn failed_volumes_skip_the_cells_that_mount_them() {
        let (_t, rt) = fake("exec-vol", vec!["volume data"]);
        let v = VolumeInput {
            name: "data".into(),
            mode: None,
        };
        let mut c = input("db", &[], None, None);
        c.volumes = vec!["data".into()];
        let mut plan = plan_for(&rt, &[c]);
        plan.volumes.push((v.clone(), decide_volume(&v, None)));
        let (s, out) = run(&plan, &rt, Verbosity::Silent);
        assert!(matches!(
            &s.results[0].1,
            CellResult::Failed {
                phase: "volume",
                ..
            }
        ));
        assert_eq!(
            s.results[1].1,
            CellResult::Skipped {
                reason: "volume data did not converge".into()
            }
        );
        assert!(out.contains("FAILED   volume data"), "{out}");
    }
}
