//! Start, stop and prune of one cell, in-process through the kernel port and
//! the supervisor.
//!
//! Start: render, compose the root, `kernel.create`, `supervise::start` of
//! `CELL_SUPERVISE_CMD` (if set). A failure undoes the steps already done.
//! The health check ([`check_health`]) is the caller's next step, run
//! without the cellmgr lock (the cell controls how long it takes). Stop: `supervise::stop` (TERM, grace, KILL), end any
//! process left in the cell, `kernel.destroy`, unmount everything; every step
//! runs even when an earlier one failed, and the errors are reported together.

use super::{compose, health, mountinfo, render, CellPaths};
use crate::config::Config;
use crate::engine::applyfile::{CellRunner, KernelRunner};
use crate::engine::backup::Kind;
use crate::engine::manifest::{self, CellManifest};
use crate::fs::host::write_atomic;
use crate::kernel::{CellSpec, ExecSpec, Kernel, Target};
use crate::supervise::{self, SuperviseSpec};
use anyhow::{anyhow, bail, Context, Result};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long a service gets between TERM and KILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

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

/// Starts a cell (see the module comment).
pub fn start(cfg: &Config, kernel: &dyn Kernel, name: &str) -> Result<StartOutcome> {
    let paths = CellPaths::new(cfg, name);
    if let Some(info) = kernel.find(&Target::Name(name.to_string()))? {
        // Running: `cell.conf` keeps describing what runs (apply compares it
        // with the manifest), so it is not re-rendered here.
        let m = match super::load_rendered(cfg, name)? {
            Some(m) => m,
            None => effective(cfg, name)?,
        };
        // The kernel cell outlived its supervisor (killed, crashed), or its
        // supervisor is on its way out (a stop was cut short): supervise again.
        if let Some(cmd) = &m.supervise_cmd {
            let sup = supervise::supervisor(cfg, name)?;
            if sup.as_ref().map_or(true, supervise::Supervisor::stopping) {
                if sup.is_some() {
                    supervise::stop(cfg, name, STOP_GRACE)?;
                }
                let pid = supervise::start(cfg, kernel, &supervise_spec(&m, cmd)?)?;
                return Ok(StartOutcome::Started {
                    cid: info.id,
                    supervisor_pid: Some(pid),
                });
            }
        }
        return Ok(StartOutcome::AlreadyRunning { cid: info.id });
    }
    let m = effective(cfg, name)?;
    // Leftovers of a run that crashed or was stopped half-way.
    compose::decompose(cfg, name).context("cleaning up a previous run")?;
    compose::compose(cfg, &m).with_context(|| format!("composing the root of cell {name}"))?;
    let spec = CellSpec {
        name: name.to_string(),
        root: paths.root.clone(),
        profile: m.profile,
        ports: m.reserved_ports.clone(),
        rlimits: m.rlimits,
        limits: Default::default(),
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
    let mut supervisor_pid = None;
    if let Some(cmd) = &m.supervise_cmd {
        match supervise_spec(&m, cmd).and_then(|s| supervise::start(cfg, kernel, &s)) {
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

fn with_cleanup(e: anyhow::Error, cleanup: Result<()>) -> anyhow::Error {
    match cleanup {
        Ok(()) => e,
        Err(c) => e.context(format!("cleanup failed too: {c:#}")),
    }
}

/// Runs the cell's declared health check (see [`health`]) and records the
/// result in `state/health` (`ok` or `failing: <why>`); `None` when none is
/// declared. Callers run it without the cellmgr lock.
pub fn check_health(cfg: &Config, kernel: &dyn Kernel, name: &str) -> Result<Option<bool>> {
    let paths = CellPaths::new(cfg, name);
    let cmd = super::load_rendered(cfg, name)?.and_then(|m| m.healthcheck);
    let Some(cmd) = cmd else {
        let _ = std::fs::remove_file(paths.health_file());
        return Ok(None);
    };
    let runner = KernelRunner {
        kernel,
        target: Target::Name(name.to_string()),
    };
    let (healthy, record) = match health::check(&runner, &cmd, health::Timing::of(cfg)) {
        Ok(()) => (true, "ok\n".to_string()),
        Err(failed) => (false, format!("failing: {}\n", failed.record())),
    };
    write_atomic(&paths.health_file(), record.as_bytes())?;
    Ok(Some(healthy))
}

/// Runs a command in the cell with no input; its exit code (-1 when killed by
/// a signal or the timeout, which ends its whole process group).
fn run_in_cell(kernel: &dyn Kernel, name: &str, argv: &[&str], timeout: Duration) -> Result<i32> {
    let runner = KernelRunner {
        kernel,
        target: Target::Name(name.to_string()),
    };
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    Ok(runner.run(&argv, &[], timeout)?.code.unwrap_or(-1))
}

/// Stops a cell (see the module comment). Also cleans up after a crash: with no
/// kernel cell, leftover mounts are still taken down.
pub fn stop(cfg: &Config, kernel: &dyn Kernel, name: &str) -> Result<StopOutcome> {
    let mut errors: Vec<String> = Vec::new();
    let target = Target::Name(name.to_string());
    if let Err(e) = supervise::stop(cfg, name, STOP_GRACE) {
        errors.push(format!("stopping the supervisor: {e:#}"));
    }
    let existed = match kernel.find(&target) {
        Ok(Some(_)) => {
            if let Err(e) = destroy(kernel, name) {
                errors.push(format!("destroying the kernel cell: {e:#}"));
            }
            true
        }
        Ok(None) => false,
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
/// included), its supervisors' files and the leftovers of its interrupted
/// backups (not its archives). Refuses to delete while anything is still
/// mounted below it.
pub fn prune(cfg: &Config, kernel: &dyn Kernel, name: &str) -> Result<()> {
    let paths = CellPaths::new(cfg, name);
    stop(cfg, kernel, name)?;
    let left = mountinfo::under(&mountinfo::mount_points()?, &paths.dir);
    if !left.is_empty() {
        let l: Vec<String> = left.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "not deleting {}: still mounted: {}",
            paths.dir.display(),
            l.join(", ")
        );
    }
    // cell.conf first: from here on the cell no longer reads as rendered.
    match std::fs::remove_file(&paths.conf) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", paths.conf.display()))
        }
        _ => {}
    }
    match std::fs::remove_dir_all(&paths.dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", paths.dir.display()))
        }
        _ => {}
    }
    supervise::forget(cfg, name)?;
    for line in crate::engine::backup::leftovers::forget(cfg, Kind::Cell, name)? {
        log::info!("{line}");
    }
    Ok(())
}

/// Runs a command (default: an interactive `/bin/sh`) in a running cell with the
/// caller's terminal; returns its exit code.
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
    let mut env = Vec::new();
    if let Ok(term) = std::env::var("TERM") {
        env.push(("TERM".to_string(), term));
    }
    let spec = ExecSpec {
        argv,
        env,
        ..ExecSpec::default()
    };
    let mut child = kernel.spawn(
        &target,
        &spec,
        [Stdio::inherit(), Stdio::inherit(), Stdio::inherit()],
    )?;
    let st = child.wait()?;
    Ok(st.code().unwrap_or(crate::exit::EXIT_FAILURE))
}
