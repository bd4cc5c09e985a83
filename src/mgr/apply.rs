//! `cellmgr apply`: make runtime match desired state. Plan first (printed one
//! action per line, the same in dry-run and real runs), then act.

use super::{load_config, lock_held, plan_rows, Run};
use crate::engine::manifest;
use crate::engine::plan::execute::{self, PlanSettings, Timing, Verbosity};
use crate::engine::plan::review::{self, Reviewed};
use crate::engine::plan::{host, inputs, Options};
use crate::exit::{EXIT_DRIFT, EXIT_FAILURE, EXIT_OK};
use anyhow::{bail, Context, Result};
use argh::FromArgs;
use std::path::PathBuf;

#[derive(FromArgs, argh::ArgsInfo)]
#[argh(subcommand, name = "apply")]
/// Converge runtime to desired state: volumes first, then cells in dependency
/// order (naming cells pulls in what they depend on). Prints the plan (CREATE,
/// UPDATE, START, STOP, RESTART, APPLY, QUIESCE, WARN, NOOP, each with its
/// reason), then carries it out. A failing cell skips its dependents; the others
/// still converge. Cells that do not depend on each other converge at once (up
/// to --jobs); the progress lines still come in plan order. --dry-run ends the plan with its digest; a real run given
/// --expect-digest or --expect-plan refuses, before changing anything, when the
/// plan it computes under the lock is not the one reviewed. Exit 0 converged,
/// 1 something failed or the plan changed; with --dry-run 2 means something
/// would change. --json prints the plan, its digest and the results as JSON
/// Lines (progress goes to stderr).
pub struct Apply {
    /// cells to converge (with their dependencies); default: all
    #[argh(positional)]
    names: Vec<String>,
    /// every cell (the default when no names are given)
    #[argh(switch)]
    all: bool,
    /// print the plan and its digest and change nothing; exit 2 if anything would change (no root needed)
    #[argh(switch)]
    dry_run: bool,
    /// also write the plan and its digest to this file (for --expect-plan)
    #[argh(option)]
    plan_out: Option<PathBuf>,
    /// act only if the plan is still this one (the "digest sha256:..." a dry run printed)
    #[argh(option)]
    expect_digest: Option<String>,
    /// act only if the plan is still the one in this file (written by --plan-out)
    #[argh(option)]
    expect_plan: Option<PathBuf>,
    /// run .apply plans even when unchanged
    #[argh(switch)]
    reapply: bool,
    /// also restart running cells whose dependencies are restarted
    #[argh(switch)]
    restart_changed: bool,
    /// print only "Starting cell: NAME." lines and failures (boot)
    #[argh(switch)]
    silent: bool,
    /// print every plan step and the output of commands run in cells
    #[argh(switch, short = 'v')]
    verbose: bool,
    /// how many cells converge at once (default 8; 1: one after another)
    #[argh(option, short = 'j', default = "DEFAULT_JOBS")]
    jobs: usize,
    /// print the plan, its digest, each result and the totals as JSON Lines on
    /// stdout; progress goes to stderr
    #[argh(switch)]
    json: bool,
}

/// Cells converging at once by default: starts mostly wait (on the kernel, on
/// file system syncs, on the supervisors), so more than the cores pay off.
const DEFAULT_JOBS: usize = 8;

impl Run for Apply {
    fn run(self) -> Result<i32> {
        if self.all && !self.names.is_empty() {
            bail!("--all and cell names exclude each other");
        }
        if self.silent && self.verbose {
            bail!("--silent and --verbose exclude each other");
        }
        if self.silent && self.json {
            bail!("--silent and --json exclude each other");
        }
        for n in &self.names {
            crate::names::validate("cell", n)?;
        }
        if self.jobs == 0 {
            bail!("--jobs 0: expected at least 1 cell at a time");
        }
        let verbosity = match (self.silent, self.verbose) {
            (true, _) => Verbosity::Silent,
            (_, true) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        };
        if !self.dry_run && !rustix::process::geteuid().is_root() {
            bail!("apply changes kernel state and needs root; --dry-run shows the plan without it");
        }
        let reviewed = match (&self.expect_digest, &self.expect_plan) {
            (Some(_), Some(_)) => bail!("--expect-digest and --expect-plan exclude each other"),
            (Some(d), None) => Some(Reviewed::digest(d).context("--expect-digest")?),
            (None, Some(path)) => Some(Reviewed::file(path).context("--expect-plan")?),
            (None, None) => None,
        };
        let cfg = load_config()?;
        // Held from planning to the end, so the plan describes what we act on;
        // set aside only while health checks run (a cell controls how long).
        let lock = if self.dry_run {
            None
        } else {
            Some(lock_held(&cfg, "apply")?)
        };
        let desired = manifest::load_all(&cfg)?;
        let kernel = crate::kernel::host(&cfg).context("opening the kernel backend");
        let kernel = match (kernel, self.dry_run) {
            (Ok(k), _) => Some(k),
            (Err(e), true) => {
                log::warn!("{e:#}; judging what runs from the supervisors alone");
                None
            }
            (Err(e), false) => return Err(e),
        };
        // The kernel's cells, listed once for the repairs and the plan.
        let mut present = match kernel.as_deref().map(|k| k.present()) {
            Some(Ok(cells)) => Some(cells),
            Some(Err(e)) if self.dry_run => {
                log::warn!(
                    "listing kernel cells: {e:#}; judging what runs from the supervisors alone"
                );
                None
            }
            Some(Err(e)) => return Err(e.context("listing kernel cells")),
            None => None,
        };
        // Each supervisor status is read once: what the repair read and
        // left as it was, the observation takes from it.
        let mut read = Default::default();
        if let (Some(k), Some(cells), false) = (&kernel, &mut present, self.dry_run) {
            let repaired = host::repair(&cfg, k.as_ref(), cells);
            read = repaired.supervised;
            let mut notes = repaired.notes;
            notes.extend(crate::engine::backup::leftovers::sweep(&cfg)?);
            for note in notes {
                eprintln!("cellmgr: warning: {note}");
            }
        }
        let observed = match host::observe(&cfg, present.as_deref(), &desired, &read) {
            Ok(o) => o,
            Err(e) if self.dry_run => {
                log::warn!("{e:#}; judging what runs from the supervisors alone");
                host::observe(&cfg, None, &desired, &read)?
            }
            Err(e) => return Err(e),
        };
        let opts = Options {
            reapply: self.reapply,
            restart_changed: self.restart_changed,
        };
        let plan = inputs::build(&cfg, &desired, &self.names, opts, &observed)?;
        // Under the lock: nothing changes between this check and the acting.
        if let Some(reviewed) = &reviewed {
            if let Err(mismatch) = reviewed.check(&plan) {
                for line in mismatch.diff() {
                    eprintln!("{line}");
                }
                return Err(mismatch.into());
            }
        }
        let recorded = review::record(&plan);
        if let Some(path) = &self.plan_out {
            crate::fs::host::write_atomic(path, recorded.as_bytes())
                .with_context(|| format!("writing the plan to {}", path.display()))?;
        }
        if self.json {
            print!("{}", plan_rows::plan(&plan)?);
        } else if verbosity != Verbosity::Silent {
            // A dry run shows the digest to review the plan by; a real run just acts.
            print!(
                "{}",
                if self.dry_run {
                    recorded
                } else {
                    plan.to_string()
                }
            );
        }
        if self.dry_run {
            return Ok(if plan.changes() { EXIT_DRIFT } else { EXIT_OK });
        }
        let kernel = kernel.expect("a real run has a kernel");
        let rt = host::HostRuntime::new(
            &cfg,
            kernel.as_ref(),
            &desired,
            lock.as_ref().expect("a real run holds the lock"),
        );
        let mut env = Vec::new();
        if !cfg.pkg_path.is_empty() {
            env.push(("PKG_PATH".to_string(), cfg.pkg_path.clone()));
        }
        let settings = PlanSettings {
            pkg_tool: cfg.pkg_tool.clone(),
            env,
        };
        // With --json stdout carries only JSON: progress goes to stderr.
        let mut out: Box<dyn std::io::Write> = if self.json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        let summary = execute::execute(
            &plan,
            &rt,
            &settings,
            Timing::default(),
            verbosity,
            self.jobs,
            &mut out,
        );
        if self.json {
            print!("{}", plan_rows::results(&summary)?);
        } else if verbosity != Verbosity::Silent && (plan.changes() || !summary.ok()) {
            print!("{}", summary.table());
        } else if !summary.ok() {
            eprint!("{}", summary.table());
        }
        Ok(if summary.ok() { EXIT_OK } else { EXIT_FAILURE })
    }
}
