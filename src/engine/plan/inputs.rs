//! Building the plan from desired state (manifests, `.apply` files) and what is
//! observed (runtime directories, hash records, running cells).

use super::graph;
use super::hash;
use super::host::Observed;
use super::model::{
    decide_cell, decide_volume, Action, ActionKind, CellInput, CellObserved, Options, Plan,
    Subject, VolumeInput,
};
use crate::config::Config;
use crate::engine::applyfile::{self, ApplyFile};
use crate::engine::manifest::{self, CellManifest, Desired};
use crate::engine::runtime::{self, CellPaths};
use anyhow::Result;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

/// The plan for `names` (empty: everything) and their dependencies.
pub fn build(
    cfg: &Config,
    desired: &Desired,
    names: &[String],
    opts: Options,
    observed: &Observed,
) -> Result<Plan> {
    let deps: graph::Deps = desired
        .cells
        .iter()
        .map(|(n, m)| (n.clone(), m.depends_on.clone()))
        .collect();
    let order = graph::order(&deps, names)?;

    let mut volume_names: BTreeSet<&str> = BTreeSet::new();
    if names.is_empty() {
        volume_names.extend(desired.volumes.keys().map(String::as_str));
    } else {
        for n in &order {
            volume_names.extend(desired.cells[n].volumes());
        }
    }
    let mut plan = Plan::default();
    for name in volume_names {
        let mode = desired.volumes.get(name).and_then(|v| v.mode);
        let input = VolumeInput {
            name: name.to_string(),
            mode,
        };
        // host path: the volume's entry in the root-only volume directory
        let observed = std::fs::metadata(runtime::volume_dir(cfg, name))
            .ok()
            .filter(|m| m.is_dir())
            .map(|m| m.permissions().mode() & 0o7777);
        plan.volumes
            .push((input.clone(), decide_volume(&input, observed)));
    }

    // Each cell's files read on every core (a cell's plan depends on its
    // dependencies' only through `bounced`, below).
    let seen = crate::engine::par::map(order.iter().collect(), 128, |name| {
        let input = cell_input(cfg, &desired.cells[name])?;
        let seen = CellObserved {
            rendered: CellPaths::conf_of(cfg, name).exists(),
            running: observed.running.contains(name),
            present: observed.present.contains(name),
            applied: hash::read_record(&CellPaths::state_of(cfg, name)).map(|r| r.hashes),
        };
        Ok::<_, anyhow::Error>((input, seen))
    });
    let mut bounced: BTreeSet<String> = BTreeSet::new();
    for (name, read) in order.iter().zip(seen) {
        let m = &desired.cells[name];
        let (input, seen) = read?;
        let bounced_deps: Vec<&str> = m
            .depends_on
            .iter()
            .filter(|d| bounced.contains(*d))
            .map(String::as_str)
            .collect();
        let cp = decide_cell(&input, &seen, opts, &bounced_deps);
        if cp.bounces() {
            bounced.insert(name.clone());
        }
        plan.cells.push(cp);
    }

    for name in &observed.frozen {
        plan.warnings.push(Action {
            kind: ActionKind::Warn,
            subject: Subject::Cell(name.clone()),
            reason: "frozen: its processes are suspended; apply thaws it unless a backup holds it"
                .to_string(),
        });
    }
    if names.is_empty() {
        for orphan in runtime::runtime_dirs(cfg)? {
            if !desired.cells.contains_key(&orphan) {
                plan.warnings.push(Action {
                    kind: ActionKind::Warn,
                    subject: Subject::Cell(orphan.clone()),
                    reason: format!(
                        "runtime without a manifest (orphaned); remove it with \
                         'cellmgr cell remove {orphan} --scope runtime'"
                    ),
                });
            }
        }
    }
    Ok(plan)
}

/// What the plan needs of one manifest: its hashes and its parsed `.apply` (a
/// plan with no directives counts as none).
pub fn cell_input(cfg: &Config, m: &CellManifest) -> Result<CellInput> {
    let path = manifest::apply_path(cfg, &m.name);
    // Strict modes: root runs what this file says (fs::trust).
    let (apply, apply_hash) = match crate::fs::trust::read(&path, ".apply file")? {
        Some(bytes) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))?;
            let file: ApplyFile = applyfile::parse(&path, &text)?;
            if file.steps.is_empty() {
                (None, None)
            } else {
                let h = hash::apply_hash(&file, text.as_bytes())?;
                (Some(file), Some(h))
            }
        }
        None => (None, None),
    };
    Ok(CellInput {
        name: m.name.clone(),
        autostart: m.autostart,
        depends_on: m.depends_on.clone(),
        volumes: m.volumes().map(str::to_string).collect(),
        healthcheck: m.healthcheck.clone(),
        hashes: hash::hashes(&m.effective_assignments(&cfg.default_limits), apply_hash),
        apply,
    })
}
