//! Start, stop and prune of one cell, in-process through the kernel port and
//! the supervisor.
//!
//! Start: render, compose the root, `kernel.create`, `supervise::start` of
//! `CELL_SUPERVISE_CMD` (if set). A failure undoes the steps already done.
//! Then [`wait_started`] judges the start: a service must not end right away
//! and must pass its first health check (the supervisor runs the checks; a
//! cell without a service has its check run here, once with retries).
//! Stop: `supervise::stop` (TERM, grace, KILL), end any process left in the
//! cell, `kernel.destroy`, unmount everything; every step runs even when an
//! earlier one failed, and the errors are reported together.

use super::{compose, render, CellPaths};
use crate::config::Config;
use crate::engine::backup::Kind;
use crate::engine::manifest::{self, CellManifest};
use crate::fs::host::write_replace;
use crate::fs::mountinfo;
use crate::journal::{self, Happened};
use crate::kernel::{CellSpec, ExecSpec, Kernel, Stdio, Target};
use crate::supervise::{self, SuperviseSpec};
use anyhow::{anyhow, bail, Context, Result};
use std::time::{Duration, Instant};

/// How long a service gets between TERM and KILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A service without a health check must run this long for its start to count.
pub const SETTLE: Duration = Duration::from_secs(1);
/// Health-check attempts of a cell without a service: the delays before each retry.
const HEALTH_RETRY: &[Duration] = &[
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    Started {
        cid: u64,
        supervisor_pid: Option<u32>,
    },
    /// The kernel cell exists and its service (if any) is supervised.
    AlreadyRunning { cid: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    Stopped,
    /// Nothing was running (leftover mounts, if any, were still cleaned up).
    NotRunning,
}

/// The configuration a start uses: the manifest when there is one (rendered
/// first, so the runtime matches it), else the rendered `cell.conf` of an
/// undeclared cell.
pub fn effective(cfg: &Config, name: &str) -> Result<CellManifest> {
    if let Some(m) = manifest::load_cell(cfg, name)? {
        let text = std::fs::read_to_string(&m.path)?;
        let m = manifest::validate_cell_text(cfg, name, &text)?;
        render(cfg, &m)?;
        return Ok(m);
    }
    super::load_rendered(cfg, name)?.ok_or_else(|| {
        anyhow!(
            "cell {name} not found: no manifest {} and no rendered runtime",
            manifest::cell_path(cfg, name).display()
        )
    })
}

fn supervise_spec(m: &CellManifest, cmd: &str) -> Result<SuperviseSpec> {
    let mut spec = SuperviseSpec::new(
        &m.name,
        vec!["/bin/sh".into(), "-c".into(), format!("exec {cmd}")],
    );
    spec.env = m.service.env.clone();
    spec.env_file = m.service.env_file.clone();
    spec.user = m.service.user.clone();
    spec.group = m.service.group.clone();
    spec.restart = m.service.restart.unwrap_or_default();
    spec.health = m.health_spec();
    if let Some(f) = &spec.env_file {
        // Refused here already, with the reason, rather than by the supervisor.
        crate::supervise::environ::read_file(f)?;
    }
    if let Some(f) = &m.log.facility {
        spec.facility = f.parse()?;
    }
    if let Some(l) = &m.log.stdout_level {
        spec.stdout_level = l.parse()?;
    }
    if let Some(l) = &m.log.stderr_level {
        spec.stderr_level = l.parse()?;
    }
    if let Some(t) = &m.log.tag {
        spec.tag = t.clone();
    }
    Ok(spec)
}

/// [`effective`], or with a manifest at hand that was checked against the
/// others already (apply loads and checks them all), that one, rendered.
pub fn effective_or(
    cfg: &Config,
    name: &str,
    declared: Option<&CellManifest>,
) -> Result<CellManifest> {
    match declared {
        Some(m) => {
            render(cfg, m)?;
            Ok(m.clone())
        }
        None => effective(cfg, name),
    }
}

/// Starts a cell (see the module comment).
pub fn start(cfg: &Config, kernel: &dyn Kernel, name: &str) -> Result<StartOutcome> {
    start_declared(cfg, kernel, name, None)
}

/// [`start`] with the cell's checked manifest at hand (see [`effective_or`]).
pub fn start_declared(
    cfg: &Config,
    kernel: &dyn Kernel,
    name: &str,
    declared: Option<&CellManifest>,
) -> Result<StartOutcome> {
    if let Some(info) = kernel.find(&Target::Name(name.to_string()))? {
        // Running: `cell.conf` keeps describing what runs (apply compares it
        // with the manifest), so it is not re-rendered here.
        let m = match super::load_rendered(cfg, name)? {
            Some(m) => m,
            None => effective_or(cfg, name, declared)?,
        };
        // The kernel cell outlived its supervisor (killed, crashed), or its
        // supervisor is on its way out (a stop was cut short): supervise again.
        if let Some(cmd) = &m.supervise_cmd {
            let sup = supervise::supervisor(cfg, name)?;
            if sup.as_ref().map_or(true, supervise::Supervisor::stopping) {
                if sup.is_some() {
                    supervise::stop(cfg, kernel, name, STOP_GRACE)?;
                }
                let pid = supervise::start(cfg, kernel, &supervise_spec(&m, cmd)?)?;
                return Ok(StartOutcome::Started {
                    cid: info.id,
                    supervisor_pid: Some(pid),
                });
            }
            // A supervising init whose syslog daemon restarted logs there
            // again (apply, cell list and cell show do the same).
            if let Some(sup) = &sup {
                if let Err(e) = supervise::renew_syslog(cfg, kernel, name, sup) {
                    log::warn!("{e:#}");
                }
            }
        }
        return Ok(StartOutcome::AlreadyRunning { cid: info.id });
    }
    let m = effective_or(cfg, name, declared)?;
    // Leftovers of a run that crashed or was stopped half-way.
    compose::decompose(cfg, name).context("cleaning up a previous run")?;
    let ids = prepare(cfg, kernel, &m)?;
    start_prepared(cfg, kernel, &m, ids)
}

/// Starts a stopped cell whose root [`prepare`] just composed (for its
/// plan, say) from its rendered manifest `m`, with `ids` as prepare returned
/// them: the kernel cell, then its service. A failure takes the root down.
pub fn start_prepared(
    cfg: &Config,
    kernel: &dyn Kernel,
    m: &CellManifest,
    ids: Option<crate::kernel::IdRange>,
) -> Result<StartOutcome> {
    let name = m.name.as_str();
    let paths = CellPaths::new(cfg, name);
    if let Some(w) = m.low_profile_warning() {
        log::warn!("{w}");
    }
    let spec = CellSpec {
        name: name.to_string(),
        root: paths.root.clone(),
        profile: m.profile,
        ports: m.reserved_ports.clone(),
        rlimits: m.rlimits,
        limits: m.limits.resolve(&cfg.default_limits),
        ids,
        ephemeral: false,
    };
    let cid = match kernel.create(&spec) {
        Ok(cid) => cid,
        Err(e) => {
            let cleanup = compose::decompose(cfg, name);
            return Err(with_cleanup(
                e.context(format!("creating cell {name}")),
                cleanup,
            ));
        }
    };
    journal::event(name, Happened::Started, Some(format!("cid {cid}")));
    let mut supervisor_pid = None;
    if let Some(cmd) = &m.supervise_cmd {
        match supervise_spec(m, cmd).and_then(|s| supervise::start(cfg, kernel, &s)) {
            Ok(pid) => supervisor_pid = Some(pid),
            Err(e) => {
                let undo = stop(cfg, kernel, name).map(|_| ());
                return Err(with_cleanup(
                    e.context(format!("starting the service of cell {name}")),
                    undo,
                ));
            }
        }
    }
    Ok(StartOutcome::Started {
        cid,
        supervisor_pid,
    })
}

/// Puts the stopped cell's files on the ids it runs with (`engine::ids`)
/// and composes its root; returns its id range (`None`: host ids).
pub fn prepare(
    cfg: &Config,
    kernel: &dyn Kernel,
    m: &CellManifest,
) -> Result<Option<crate::kernel::IdRange>> {
    let ids = crate::engine::ids::prepare_cell(cfg, kernel, &m.name, m.profile)
        .with_context(|| format!("preparing the ids of cell {}", m.name))?;
    compose::compose(cfg, kernel, m, ids)
        .with_context(|| format!("composing the root of cell {}", m.name))?;
    Ok(ids)
}

/// Judges a start that just happened (see the module comment); the error
/// says why it failed. The cell keeps running either way (its supervisor
/// keeps restarting a service that ended). Reads state only; no lock needed.
pub fn wait_started(cfg: &Config, kernel: &dyn Kernel, name: &str) -> Result<()> {
    wait(cfg, kernel, name, true)
}

/// Waits until a running cell's health check passes (a dependency about to be
/// needed); an error when it fails. Cells without a check are healthy.
pub fn wait_healthy(cfg: &Config, kernel: &dyn Kernel, name: &str) -> Result<()> {
    wait(cfg, kernel, name, false)
}

fn wait(cfg: &Config, kernel: &dyn Kernel, name: &str, fresh: bool) -> Result<()> {
    let m = match super::load_rendered(cfg, name)? {
        Some(m) => m,
        None => effective(cfg, name)?,
    };
    if m.supervise_cmd.is_none() {
        return match check_health(cfg, kernel, &m)? {
            Some(false) => {
                let why = std::fs::read_to_string(CellPaths::new(cfg, name).health_file())
                    .unwrap_or_default();
                bail!("its health check is {}", why.trim())
            }
            _ => Ok(()),
        };
    }
    let _ = std::fs::remove_file(CellPaths::new(cfg, name).health_file());
    let budget = SETTLE
        + m.health_spec()
            .map_or(Duration::ZERO, |h| h.longest_start());
    let verdict = if fresh {
        supervise::Verdict::Started { settle: SETTLE }
    } else {
        supervise::Verdict::Healthy
    };
    supervise::wait_for(cfg, name, verdict, budget + Duration::from_secs(5))
}

fn with_cleanup(e: anyhow::Error, cleanup: Result<()>) -> anyhow::Error {
    match cleanup {
        Ok(()) => e,
        Err(c) => e.context(format!("cleanup failed too: {c:#}")),
    }
}

/// Runs the health check of a cell without a service, with retries, within
/// one budget (its timeout plus the retry delays: a hanging check is killed,
/// its process group with it, and not tried again past the budget), and
/// records the result in `state/health` (`ok`, or `failing: <why>` and the
/// check's last lines). `None` when none is declared.
fn check_health(cfg: &Config, kernel: &dyn Kernel, m: &CellManifest) -> Result<Option<bool>> {
    let paths = CellPaths::new(cfg, &m.name);
    let Some(mut spec) = m.health_spec() else {
        let _ = std::fs::remove_file(paths.health_file());
        return Ok(None);
    };
    let previous = std::fs::read_to_string(paths.health_file()).unwrap_or_default();
    // The health file, and an event when the verdict (its first line) changed.
    let record = |now: &str| -> Result<()> {
        write_replace(&paths.health_file(), format!("{now}\n").as_bytes())?;
        // ok, failing, ...: the word before the reasons.
        let verdict = |t: &str| t.split([':', '\n']).next().unwrap_or("").trim().to_string();
        if verdict(&previous) != verdict(now) {
            let first = now.lines().next().unwrap_or("").to_string();
            journal::event(&m.name, Happened::Health, Some(first));
        }
        Ok(())
    };
    let target = Target::Name(m.name.clone());
    let deadline = Instant::now() + spec.timeout + HEALTH_RETRY.iter().sum::<Duration>();
    let mut last = String::new();
    for (attempt, delay) in std::iter::once(&Duration::ZERO)
        .chain(HEALTH_RETRY)
        .enumerate()
    {
        std::thread::sleep(*delay);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        spec.timeout = spec.timeout.min(left);
        match supervise::health::run_once(kernel, &target, &ExecSpec::default(), &spec) {
            Ok(r) if r.passed => {
                record("ok")?;
                return Ok(Some(true));
            }
            Ok(r) => {
                last = format!("{} (attempt {})", r.how, attempt + 1);
                for line in r.output {
                    last.push_str("\n  ");
                    last.push_str(&line);
                }
            }
            Err(e) => last = format!("{e:#}"),
        }
    }
    record(&format!("failing: {last}"))?;
    Ok(Some(false))
}

/// Runs a command in the cell with no input or output; its exit code (-1 when
/// killed by a signal or the timeout).
fn run_in_cell(kernel: &dyn Kernel, name: &str, argv: &[&str], timeout: Duration) -> Result<i32> {
    let spec = ExecSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..ExecSpec::default()
    };
    let mut child = kernel.spawn(
        &Target::Name(name.to_string()),
        &spec,
        [Stdio::Null, Stdio::Null, Stdio::Null],
    )?;
    match child.wait_timeout(timeout)? {
        Some(st) => Ok(st.code().unwrap_or(-1)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {}s", timeout.as_secs());
        }
    }
}

/// Stops a cell (see the module comment). Also cleans up after a crash: with no
/// kernel cell, leftover mounts are still taken down.
pub fn stop(cfg: &Config, kernel: &dyn Kernel, name: &str) -> Result<StopOutcome> {
    let mut errors: Vec<String> = Vec::new();
    let target = Target::Name(name.to_string());
    // Ended with the cell when its init (the supervisor) did not answer.
    let ended = match supervise::stop(cfg, kernel, name, STOP_GRACE) {
        Ok(ended) => ended,
        Err(e) => {
            errors.push(format!("stopping the supervisor: {e:#}"));
            false
        }
    };
    let existed = match kernel.find(&target) {
        Ok(Some(_)) => {
            if let Err(e) = destroy(kernel, name) {
                errors.push(format!("destroying the kernel cell: {e:#}"));
            }
            true
        }
        Ok(None) => ended,
        Err(e) => {
            errors.push(format!("looking up the kernel cell: {e:#}"));
            false
        }
    };
    if let Err(e) = compose::decompose(cfg, name) {
        errors.push(format!("{e:#}"));
    }
    if !errors.is_empty() {
        bail!("stopping cell {name}: {}", errors.join("; "));
    }
    if existed {
        journal::event(name, Happened::Stopped, None);
    }
    Ok(if existed {
        StopOutcome::Stopped
    } else {
        StopOutcome::NotRunning
    })
}

/// Destroys the kernel cell. Members that outlived the supervisor (daemons that
/// left its process group, shells) are signalled from inside the cell: TERM,
/// then KILL, so destroy's "busy" refusal cannot leave the cell stuck.
fn destroy(kernel: &dyn Kernel, name: &str) -> Result<()> {
    let target = Target::Name(name.to_string());
    if kernel.destroy(&target).is_ok() {
        return Ok(());
    }
    for (signal, wait) in [("TERM", STOP_GRACE), ("KILL", Duration::from_secs(3))] {
        let _ = run_in_cell(
            kernel,
            name,
            &["/bin/sh", "-c", &format!("kill -{signal} -1")],
            Duration::from_secs(5),
        );
        let until = Instant::now() + wait;
        loop {
            match kernel.destroy(&target) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= until => {
                    if signal == "KILL" {
                        return Err(e);
                    }
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
    unreachable!("the KILL round returns")
}

/// Removes a cell's runtime: stops it, then deletes its directory (overlay
/// included), its supervisor's files and the leftovers of its interrupted
/// backups (not its archives). Refuses to delete while anything is still
/// mounted below it.
pub fn prune(cfg: &Config, kernel: &dyn Kernel, name: &str) -> Result<()> {
    let paths = CellPaths::new(cfg, name);
    stop(cfg, kernel, name)?;
    super::disk::unmount(&paths)?;
    let left = mountinfo::points_under(&paths.dir)?;
    if !left.is_empty() {
        let l: Vec<String> = left.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "not deleting {}: still mounted: {}",
            paths.dir.display(),
            l.join(", ")
        );
    }
    // Its service log and supervisor files go with it.
    supervise::remove_files(cfg, name)?;
    // cell.conf first: from here on the cell no longer reads as rendered.
    match std::fs::remove_file(&paths.conf) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", paths.conf.display()))
        }
        _ => {}
    }
    // The layer below is the cell's: removed without following its links or
    // entering a mount.
    crate::fs::tree::remove_host_tree(&paths.dir)?;
    for line in crate::engine::backup::leftovers::forget(cfg, Kind::Cell, name)? {
        log::info!("{line}");
    }
    Ok(())
}

/// Runs a command (default: an interactive `/bin/sh`) in a running cell with the
/// caller's terminal (relayed: see `kernel::relay`); returns its exit code.
pub fn shell(kernel: &dyn Kernel, name: &str, argv: &[String]) -> Result<i32> {
    let target = Target::Name(name.to_string());
    if kernel.find(&target)?.is_none() {
        bail!("cell {name} is not running: start it first (cellmgr cell start {name})");
    }
    let argv = if argv.is_empty() {
        vec!["/bin/sh".to_string()]
    } else {
        argv.to_vec()
    };
    let spec = ExecSpec {
        argv,
        ..ExecSpec::default()
    };
    kernel.run(&target, &spec)
}
