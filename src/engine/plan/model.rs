//! The plan: what apply will do, one action per line with its reason, decided
//! from desired state and what is observed. The same plan is printed by
//! `--dry-run` and by a real run, and the executor performs exactly it.

use super::hash::Hashes;
use crate::engine::applyfile::ApplyFile;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// Render runtime state for a new cell, or create a volume directory.
    Create,
    /// Re-render runtime state (manifest changed), or fix a volume's mode.
    Update,
    Start,
    Stop,
    /// Stop and start: a new kernel cell with the current policy and service.
    Restart,
    /// Run the cell's `.apply` plan.
    Apply,
    /// Stop a running cell so its plan runs with the service down.
    Quiesce,
    /// Something an operator should know; changes nothing.
    Warn,
    Noop,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Create => "CREATE",
            ActionKind::Update => "UPDATE",
            ActionKind::Start => "START",
            ActionKind::Stop => "STOP",
            ActionKind::Restart => "RESTART",
            ActionKind::Apply => "APPLY",
            ActionKind::Quiesce => "QUIESCE",
            ActionKind::Warn => "WARN",
            ActionKind::Noop => "NOOP",
        }
    }

    /// Whether this action changes anything (drift, for `--dry-run`).
    pub fn is_change(self) -> bool {
        !matches!(self, ActionKind::Warn | ActionKind::Noop)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Volume(String),
    Cell(String),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Volume(n) => write!(f, "volume {n}"),
            Subject::Cell(n) => write!(f, "cell {n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub kind: ActionKind,
    pub subject: Subject,
    pub reason: String,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<8} {}: {}",
            self.kind.as_str(),
            self.subject,
            self.reason
        )
    }
}

/// Desired state of one volume, as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInput {
    pub name: String,
    pub mode: Option<u32>,
}

/// What is there for a volume: `None` when its directory is missing.
pub type VolumeObserved = Option<u32>;

/// Desired state of one cell, as the plan needs it (filled from its manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellInput {
    pub name: String,
    pub autostart: bool,
    pub depends_on: Vec<String>,
    /// Volumes the cell mounts.
    pub volumes: Vec<String>,
    pub healthcheck: Option<String>,
    pub hashes: Hashes,
    /// The parsed `.apply` plan, if the cell has one.
    pub apply: Option<ApplyFile>,
}

/// What is there for a cell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CellObserved {
    /// Runtime state has been rendered.
    pub rendered: bool,
    /// The cell runs: its kernel cell exists and its service is supervised.
    pub running: bool,
    /// Its kernel cell or its mounts exist (running, or left behind by an
    /// interrupted run).
    pub present: bool,
    /// Hashes of the last successful converge.
    pub applied: Option<Hashes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Run plans even when unchanged.
    pub reapply: bool,
    /// Also restart running cells whose dependencies are restarted.
    pub restart_changed: bool,
}

/// The plan for one cell: its actions, in execution order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellPlan {
    pub input: CellInput,
    pub actions: Vec<Action>,
    /// The hashes of the last converge as the plan read them.
    pub recorded: Option<Hashes>,
}

impl CellPlan {
    pub fn changes(&self) -> bool {
        self.actions.iter().any(|a| a.kind.is_change())
    }
    pub fn has(&self, kind: ActionKind) -> bool {
        self.actions.iter().any(|a| a.kind == kind)
    }
    /// The cell is (re)started by this plan.
    pub fn bounces(&self) -> bool {
        self.has(ActionKind::Restart) || self.has(ActionKind::Quiesce)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub volumes: Vec<(VolumeInput, Action)>,
    pub cells: Vec<CellPlan>,
    /// Notes that concern no planned cell (e.g. orphaned runtime cells).
    pub warnings: Vec<Action>,
}

impl Plan {
    pub fn changes(&self) -> bool {
        self.volumes.iter().any(|(_, a)| a.kind.is_change())
            || self.cells.iter().any(CellPlan::changes)
    }

    /// Every action, in order: volumes, cells, warnings.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.volumes
            .iter()
            .map(|(_, a)| a)
            .chain(self.cells.iter().flat_map(|c| c.actions.iter()))
            .chain(self.warnings.iter())
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for a in self.actions() {
            writeln!(f, "{a}")?;
        }
        Ok(())
    }
}

/// The action for a volume.
pub fn decide_volume(v: &VolumeInput, observed: VolumeObserved) -> Action {
    let (kind, reason) = match (observed, v.mode) {
        (None, _) => (ActionKind::Create, "runtime directory missing".to_string()),
        (Some(have), Some(want)) if have != want => {
            (ActionKind::Update, format!("mode {have:04o} -> {want:04o}"))
        }
        _ => (ActionKind::Noop, "already converged".to_string()),
    };
    Action {
        kind,
        subject: Subject::Volume(v.name.clone()),
        reason,
    }
}

/// The decision table for one cell. `bounced_deps` are dependencies this plan
/// restarts (for `--restart-changed`).
pub fn decide_cell(
    input: &CellInput,
    observed: &CellObserved,
    opts: Options,
    bounced_deps: &[&str],
) -> CellPlan {
    let mut actions = Vec::new();
    let mut act = |kind: ActionKind, reason: String| {
        actions.push(Action {
            kind,
            subject: Subject::Cell(input.name.clone()),
            reason,
        })
    };
    let want = &input.hashes;
    let applied = observed.applied.as_ref();
    let changed = |f: fn(&Hashes) -> &String| applied.map_or(true, |a| f(a) != f(want));
    let manifest_changed = changed(|h| &h.manifest);
    let service_changed = changed(|h| &h.service);
    let policy_changed = changed(|h| &h.policy);
    let applied_plan = applied.and_then(|a| a.apply.as_ref());
    let apply_reason = match (&want.apply, applied_plan) {
        (None, _) => None,
        (Some(_), _) if opts.reapply => Some("--reapply"),
        (Some(_), None) => Some("plan never applied"),
        (Some(w), Some(a)) if w != a => Some("plan or its assets changed"),
        _ => None,
    };

    if !observed.rendered {
        act(ActionKind::Create, "new cell: render runtime state".into());
    } else if applied.is_none() {
        act(
            ActionKind::Update,
            "no converge recorded: re-render runtime state".into(),
        );
    } else if manifest_changed {
        act(
            ActionKind::Update,
            "manifest changed: re-render runtime state".into(),
        );
    }
    if want.apply.is_none() && applied_plan.is_some() {
        act(
            ActionKind::Update,
            "plan removed: forget its hash (files it wrote stay)".into(),
        );
    }
    let running = observed.running;
    if input.autostart {
        if let Some(why) = apply_reason {
            if running {
                act(
                    ActionKind::Quiesce,
                    "stop the service to run its plan".into(),
                );
            }
            act(ActionKind::Apply, why.into());
            act(ActionKind::Start, "autostart=YES (after plan)".into());
        } else if !running {
            act(ActionKind::Start, "autostart=YES, not running".into());
        } else if applied.is_none() {
            // Nothing to compare with: not a known change, an unfinished converge.
            act(
                ActionKind::Restart,
                "running, but no converge was recorded (the last start or apply did not \
                 finish, e.g. its health check failed): recreate the kernel cell"
                    .into(),
            );
        } else if policy_changed {
            act(
                ActionKind::Restart,
                "policy changed (profile, ports, rlimits or limits): recreate the kernel cell"
                    .into(),
            );
        } else if service_changed {
            act(ActionKind::Restart, "service changed".into());
        } else if opts.restart_changed && !bounced_deps.is_empty() {
            act(
                ActionKind::Restart,
                format!(
                    "dependency {} restarted (--restart-changed)",
                    bounced_deps.join(", ")
                ),
            );
        }
    } else {
        if observed.present {
            act(ActionKind::Stop, "autostart=NO".into());
        }
        if let Some(why) = apply_reason {
            act(
                ActionKind::Apply,
                format!("{why} (ephemeral: autostart=NO)"),
            );
        }
    }
    if actions.is_empty() {
        actions.push(Action {
            kind: ActionKind::Noop,
            subject: Subject::Cell(input.name.clone()),
            reason: "already converged".into(),
        });
    }
    CellPlan {
        recorded: observed.applied.clone(),
        input: input.clone(),
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(m: &str, s: &str, p: &str, a: Option<&str>) -> Hashes {
        Hashes {
            manifest: m.into(),
            service: s.into(),
            policy: p.into(),
            apply: a.map(Into::into),
        }
    }

    fn cell(autostart: bool, hashes: Hashes) -> CellInput {
        CellInput {
            name: "web".into(),
            autostart,
            depends_on: vec![],
            volumes: vec![],
            healthcheck: None,
            hashes,
            apply: None,
        }
    }

    fn kinds(p: &CellPlan) -> Vec<&'static str> {
        p.actions.iter().map(|a| a.kind.as_str()).collect()
    }

    fn observed(rendered: bool, running: bool, applied: Option<Hashes>) -> CellObserved {
        CellObserved {
            rendered,
            running,
            present: running,
            applied,
        }
    }

    #[test]
    fn a_running_cell_without_a_record_is_not_said_to_have_changed_policy() {
        // A start whose health check failed records nothing: the next plan
        // restarts it, and says why truthfully.
        let mut input = cell(true, h("m", "s", "p", None));
        input.healthcheck = Some("false".into());
        let p = decide_cell(&input, &observed(true, true, None), Options::default(), &[]);
        let reasons: Vec<&str> = p.actions.iter().map(|a| a.reason.as_str()).collect();
        assert_eq!(kinds(&p), ["UPDATE", "RESTART"]);
        assert!(
            reasons.iter().all(|r| !r.contains("policy changed")),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("no converge was recorded"),
            "{reasons:?}"
        );
    }

    #[test]
    fn decision_table() {
        let want = h("m", "s", "p", Some("a"));
        let none = Options::default();
        let run = |auto: bool, obs: CellObserved, opts: Options| {
            kinds(&decide_cell(&cell(auto, want.clone()), &obs, opts, &[]))
        };
        assert_eq!(
            run(true, observed(false, false, None), none),
            ["CREATE", "APPLY", "START"]
        );
        assert_eq!(
            run(true, observed(true, true, Some(want.clone())), none),
            ["NOOP"]
        );
        assert_eq!(
            run(true, observed(true, false, Some(want.clone())), none),
            ["START"]
        );
        assert_eq!(
            run(false, observed(true, true, Some(want.clone())), none),
            ["STOP"]
        );
        assert_eq!(
            run(false, observed(true, false, Some(want.clone())), none),
            ["NOOP"]
        );
        assert_eq!(
            run(
                true,
                observed(true, true, Some(want.clone())),
                Options {
                    reapply: true,
                    ..none
                }
            ),
            ["QUIESCE", "APPLY", "START"]
        );
        assert_eq!(
            run(
                false,
                observed(true, false, Some(h("m", "s", "p", Some("old")))),
                none
            ),
            ["APPLY"]
        );
        assert_eq!(
            run(
                true,
                observed(true, true, Some(h("m2", "s2", "p", Some("a")))),
                none
            ),
            ["UPDATE", "RESTART"]
        );
        let policy = decide_cell(
            &cell(true, want.clone()),
            &observed(true, true, Some(h("m2", "s", "p2", Some("a")))),
            none,
            &[],
        );
        assert_eq!(kinds(&policy), ["UPDATE", "RESTART"]);
        assert!(policy.actions[1]
            .reason
            .contains("recreate the kernel cell"));
        // Manifest-only change (e.g. dependencies, autostart): re-render, no restart.
        assert_eq!(
            run(
                true,
                observed(true, true, Some(h("m2", "s", "p", Some("a")))),
                none
            ),
            ["UPDATE"]
        );
        // Plan removed.
        let no_plan = decide_cell(
            &cell(true, h("m", "s", "p", None)),
            &observed(true, true, Some(want.clone())),
            none,
            &[],
        );
        assert_eq!(kinds(&no_plan), ["UPDATE"]);
        // A kernel cell left without its service by an interrupted run: autostart=NO
        // stops it; autostart=YES starts it properly.
        let leftover = CellObserved {
            rendered: true,
            running: false,
            present: true,
            applied: Some(want.clone()),
        };
        assert_eq!(run(false, leftover.clone(), none), ["STOP"]);
        assert_eq!(run(true, leftover, none), ["START"]);
        // Rendered but never converged (e.g. started by hand).
        assert_eq!(
            run(true, observed(true, true, None), none),
            ["UPDATE", "QUIESCE", "APPLY", "START"]
        );
    }

    #[test]
    fn restart_changed_follows_bounced_dependencies() {
        let want = h("m", "s", "p", None);
        let obs = observed(true, true, Some(want.clone()));
        let p = decide_cell(&cell(true, want.clone()), &obs, Options::default(), &["db"]);
        assert_eq!(kinds(&p), ["NOOP"]);
        let p = decide_cell(
            &cell(true, want),
            &obs,
            Options {
                restart_changed: true,
                ..Options::default()
            },
            &["db"],
        );
        assert_eq!(
            p.actions[0].to_string(),
            "RESTART  cell web: dependency db restarted (--restart-changed)"
        );
    }

    #[test]
    fn volumes_and_printing() {
        let v = VolumeInput {
            name: "data".into(),
            mode: Some(0o750),
        };
        assert_eq!(
            decide_volume(&v, None).to_string(),
            "CREATE   volume data: runtime directory missing"
        );
        assert_eq!(
            decide_volume(&v, Some(0o755)).to_string(),
            "UPDATE   volume data: mode 0755 -> 0750"
        );
        assert_eq!(decide_volume(&v, Some(0o750)).kind, ActionKind::Noop);
        let plan = Plan {
            volumes: vec![(v.clone(), decide_volume(&v, Some(0o750)))],
            cells: vec![decide_cell(
                &cell(true, h("m", "s", "p", None)),
                &observed(true, true, Some(h("m", "s", "p", None))),
                Options::default(),
                &[],
            )],
            warnings: vec![],
        };
        assert!(!plan.changes());
        assert_eq!(
            plan.to_string(),
            "NOOP     volume data: already converged\nNOOP     cell web: already converged\n"
        );
    }
}
