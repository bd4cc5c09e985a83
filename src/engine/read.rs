//! The read contract: one snapshot joining desired state (manifests), rendered
//! runtime (`cell.conf`, state files) and the kernel's cells into [`CellRow`] and
//! [`VolumeRow`], and the schemas that name their fields and views (cellmgr(8),
//! READ CONTRACT). Field names and order are an API.
//!
//! The snapshot is cheap on purpose: one directory scan per tree, one kernel
//! `list`, and `stats` only when a CPU or memory field is asked for. It never
//! spawns a process or samples for a second.

use crate::config::Config;
use crate::engine::manifest::{self, format_limit, format_ports, CellManifest, Desired};
use crate::engine::runtime::{self, compose, CellPaths};
use crate::fs::mountinfo;
use crate::kernel::{CellInfo, CellResources, CellStats, Kernel};
use crate::model::{CellRow, CellState, VolumeRow};
use crate::output::{Record, Schema, Value, View};
use crate::rcconf::LimitForm;
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};

/// Every cell field, in contract order: v2's 24, then the additions.
pub const CELL_FIELDS: &[&str] = &[
    "name",
    "running",
    "desired_state",
    "cid",
    "refs",
    "procs",
    "cpu1s",
    "cpu10s",
    "memory",
    "age",
    "root",
    "autostart",
    "create_profile",
    "create_reserved_ports",
    "create_rlimit_nofile",
    "create_rlimit_as",
    "create_rlimit_core",
    "depends_on",
    "healthcheck",
    "supervise_cmd",
    "volume_mounts",
    "manifest",
    "rendered",
    "apply_present",
    "state",
    "health",
    "supervisor_pid",
    "restarts",
    "last_exit",
    "supervisor",
    "create_maxproc",
    "create_memory",
    "create_cpu",
    "create_disk",
    "tasks",
    "memory_used",
    "disk_used",
    "forks_denied",
    "oom_kills",
    "frozen",
];

const CELL_COMPACT: &[&str] = &[
    "name",
    "state",
    "running",
    "cid",
    "procs",
    "cpu1s",
    "memory",
    "age",
    "create_profile",
    "create_reserved_ports",
    "frozen",
];

const CELL_DESIRED: &[&str] = &[
    "name",
    "state",
    "desired_state",
    "autostart",
    "create_profile",
    "create_reserved_ports",
    "create_rlimit_nofile",
    "create_rlimit_as",
    "create_rlimit_core",
    "create_maxproc",
    "create_memory",
    "create_cpu",
    "create_disk",
    "depends_on",
    "healthcheck",
    "volume_mounts",
    "supervise_cmd",
    "manifest",
    "apply_present",
];

const CELL_RUNTIME: &[&str] = &[
    "name",
    "state",
    "running",
    "cid",
    "procs",
    "refs",
    "cpu1s",
    "cpu10s",
    "memory",
    "age",
    "root",
    "rendered",
    "health",
    "supervisor_pid",
    "restarts",
    "last_exit",
    "supervisor",
    "tasks",
    "memory_used",
    "disk_used",
    "forks_denied",
    "oom_kills",
    "frozen",
];

const CELL_MERGED_DEFAULT: &[&str] = &[
    "name",
    "state",
    "running",
    "desired_state",
    "cid",
    "procs",
    "refs",
    "cpu1s",
    "cpu10s",
    "memory",
    "age",
    "autostart",
    "create_profile",
    "create_reserved_ports",
    "create_rlimit_nofile",
    "create_rlimit_as",
    "create_rlimit_core",
    "create_maxproc",
    "create_memory",
    "create_cpu",
    "create_disk",
    "root",
    "supervise_cmd",
    "manifest",
    "rendered",
];

/// `cell list|show|fields`. `list` defaults to `compact`, `show` to `merged`.
pub const CELL_SCHEMA: Schema = Schema {
    noun: "cell",
    views: &[
        View {
            name: "compact",
            allowed: &[
                "name",
                "state",
                "running",
                "cid",
                "procs",
                "cpu1s",
                "memory",
                "age",
                "create_profile",
                "create_reserved_ports",
                "autostart",
                "health",
                "frozen",
            ],
            default: CELL_COMPACT,
        },
        View {
            name: "desired",
            allowed: CELL_DESIRED,
            default: CELL_DESIRED,
        },
        View {
            name: "runtime",
            allowed: CELL_RUNTIME,
            default: CELL_RUNTIME,
        },
        View {
            name: "merged",
            allowed: CELL_FIELDS,
            default: CELL_MERGED_DEFAULT,
        },
    ],
    default_view: "compact",
};

pub const VOLUME_FIELDS: &[&str] = &[
    "name", "manifest", "runtime", "mode", "path", "mounted", "refs", "used_by", "state",
];

const VOLUME_DESIRED: &[&str] = &["name", "state", "manifest", "mode", "refs", "used_by"];

const VOLUME_RUNTIME: &[&str] = &[
    "name", "state", "runtime", "path", "mounted", "refs", "used_by",
];

pub const VOLUME_SCHEMA: Schema = Schema {
    noun: "volume",
    views: &[
        View {
            name: "desired",
            allowed: VOLUME_DESIRED,
            default: VOLUME_DESIRED,
        },
        View {
            name: "runtime",
            allowed: VOLUME_RUNTIME,
            default: VOLUME_RUNTIME,
        },
        View {
            name: "merged",
            allowed: VOLUME_FIELDS,
            default: &[
                "name", "state", "manifest", "runtime", "refs", "mounted", "mode", "path",
                "used_by",
            ],
        },
    ],
    default_view: "merged",
};

/// Fields that need the kernel's `stats` (telemetry) and `resources` rather
/// than its `list`.
pub const STATS_FIELDS: &[&str] = &[
    "cpu1s",
    "cpu10s",
    "memory",
    "tasks",
    "memory_used",
    "disk_used",
    "forks_denied",
    "oom_kills",
];

/// A supervisor's view of its service, as far as the read model shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SupervisorView {
    pub pid: Option<u64>,
    pub restarts: Option<u64>,
    pub last_exit: String,
    pub state: String,
    /// The `health` field, when the supervisor runs health checks.
    pub health: Option<String>,
}

/// The `health` field: `ok`, `starting`, or `failing: <how the last check
/// ended>`.
fn health_field(h: &crate::supervise::HealthStatus) -> String {
    match h.state {
        crate::supervise::Health::Failing => format!(
            "failing: {}",
            h.last.as_deref().unwrap_or("the service is not running")
        ),
        s => s.as_str().to_string(),
    }
}

/// What the kernel (and supervisors) report, gathered by the caller.
#[derive(Debug, Clone, Default)]
pub struct RuntimeFacts {
    pub cells: Vec<CellInfo>,
    pub stats: Vec<CellStats>,
    pub resources: Vec<CellResources>,
    pub supervisors: BTreeMap<String, SupervisorView>,
    /// What could not be read, one sentence each (naming the file); the
    /// affected cell's fields say `damaged` or stay empty, the others are whole.
    pub warnings: Vec<String>,
}

/// Asks the kernel (one `list`, `stats` and `resources` only when wanted and
/// something runs)
/// and the supervisors of the running cells.
pub fn runtime_facts(cfg: &Config, kernel: &dyn Kernel, want_stats: bool) -> Result<RuntimeFacts> {
    let mut facts = RuntimeFacts {
        cells: kernel.list()?,
        ..RuntimeFacts::default()
    };
    if want_stats && !facts.cells.is_empty() {
        facts.stats = kernel.stats()?;
        facts.resources = kernel.resources()?;
    }
    for c in &facts.cells {
        let sup = match crate::supervise::supervisor(cfg, &c.name) {
            Ok(Some(sup)) => sup,
            Ok(None) => continue,
            Err(e) => {
                facts.warnings.push(format!("cell {}: {e:#}", c.name));
                continue;
            }
        };
        // A supervising init whose syslog daemon restarted gets a socket to
        // the new one (a frozen init could not answer).
        if !c.frozen {
            if let Err(e) = crate::supervise::renew_syslog(cfg, kernel, &c.name, &sup) {
                facts.warnings.push(format!("cell {}: {e:#}", c.name));
            }
        }
        let view = match sup.status {
            Ok(Some(st)) => SupervisorView {
                pid: Some(u64::from(st.supervisor_pid)),
                restarts: Some(st.restarts),
                last_exit: st.last_exit.unwrap_or_default(),
                state: st.state.as_str().to_string(),
                health: st.health.as_ref().map(health_field),
            },
            Ok(None) => SupervisorView {
                pid: sup.pid.map(u64::from),
                state: "starting".to_string(),
                ..SupervisorView::default()
            },
            Err(why) => {
                facts.warnings.push(format!(
                    "{why}; the supervisor fields of cell {} are unknown until `cellmgr apply` repairs it",
                    c.name
                ));
                SupervisorView {
                    pid: sup.pid.map(u64::from),
                    state: "damaged".to_string(),
                    ..SupervisorView::default()
                }
            }
        };
        facts.supervisors.insert(c.name.clone(), view);
    }
    Ok(facts)
}

/// Every cell row with every field (telemetry included), as the IPC bridge and
/// the UI show them. Without a kernel the runtime fields stay empty.
pub fn snapshot_cells(cfg: &Config, kernel: Option<&dyn Kernel>) -> Result<Vec<CellRow>> {
    let desired = manifest::load_all(cfg)?;
    let facts = match kernel {
        Some(k) => runtime_facts(cfg, k, true)?,
        None => RuntimeFacts::default(),
    };
    cell_rows(cfg, &desired, &facts, Wanted::All)
}

/// Every volume row.
pub fn snapshot_volumes(cfg: &Config) -> Result<Vec<VolumeRow>> {
    volume_rows(cfg, &manifest::load_all(cfg)?)
}

/// The runtime status of a cell: state label from the contract's table, with
/// undeclared runtime (a rendered directory, leftovers or a kernel cell) shown as
/// `orphaned`.
pub fn cell_state(
    manifest: bool,
    rendered: bool,
    desired: bool,
    runtime_present: bool,
) -> CellState {
    if manifest {
        CellState::derive(true, rendered, desired)
    } else if rendered || runtime_present {
        CellState::Orphaned
    } else {
        CellState::Absent
    }
}

fn desired_fields(row: &mut CellRow, m: &CellManifest, cfg: &Config, wanted: Wanted) {
    row.desired_state = m.autostart;
    row.autostart = m.autostart;
    row.create_profile = m.profile.as_str().to_string();
    row.create_reserved_ports = format_ports(&m.reserved_ports);
    // The text of the fields a listing may leave out is made only if shown
    // (the compact view shows none of them).
    if wanted.has("create_rlimit_nofile") {
        row.create_rlimit_nofile = format_limit(m.rlimits.nofile);
    }
    if wanted.has("create_rlimit_as") {
        row.create_rlimit_as = format_limit(m.rlimits.address_space);
    }
    if wanted.has("create_rlimit_core") {
        row.create_rlimit_core = format_limit(m.rlimits.core);
    }
    let limits = m.limits.resolve(&cfg.default_limits);
    if wanted.has("create_maxproc") {
        row.create_maxproc = LimitForm::Processes.format(limits.maxproc);
    }
    if wanted.has("create_memory") {
        row.create_memory = LimitForm::Memory.format(limits.memory);
    }
    if wanted.has("create_cpu") {
        row.create_cpu = LimitForm::Cpu.format(limits.cpu_percent);
    }
    if wanted.has("create_disk") {
        row.create_disk = LimitForm::Disk.format(limits.disk);
    }
    if wanted.has("depends_on") {
        row.depends_on = m.depends_on.join(",");
    }
    if wanted.has("healthcheck") {
        row.healthcheck = m.healthcheck.clone().unwrap_or_default();
    }
    if wanted.has("supervise_cmd") {
        row.supervise_cmd = m.supervise_cmd.clone().unwrap_or_default();
    }
    if wanted.has("volume_mounts") {
        row.volume_mounts = manifest::mounts::format_list(&m.mounts);
    }
}

/// The fields of a cell row someone will read: all, or those a listing
/// selected. The others keep the row's defaults.
#[derive(Debug, Clone, Copy)]
pub enum Wanted<'a> {
    All,
    Only(&'a [&'a str]),
}

impl Wanted<'_> {
    fn has(self, field: &str) -> bool {
        match self {
            Wanted::All => true,
            Wanted::Only(fields) => fields.contains(&field),
        }
    }
}

/// Builds every cell row, sorted by name (byte order).
pub fn cell_rows(
    cfg: &Config,
    desired: &Desired,
    facts: &RuntimeFacts,
    wanted: Wanted,
) -> Result<Vec<CellRow>> {
    let dirs: BTreeSet<String> = runtime::runtime_dirs(cfg)?.into_iter().collect();
    let kernel: BTreeMap<&str, &CellInfo> =
        facts.cells.iter().map(|c| (c.name.as_str(), c)).collect();
    let stats: BTreeMap<&str, &CellStats> = facts
        .stats
        .iter()
        .map(|s| (s.info.name.as_str(), s))
        .collect();
    let names: BTreeSet<&str> = desired
        .cells
        .keys()
        .map(String::as_str)
        .chain(dirs.iter().map(String::as_str))
        .chain(kernel.keys().copied())
        .collect();
    // Rows are independent of each other: built on every core, in name order.
    let row = |name: &str| -> Result<CellRow> {
        let has_dir = dirs.contains(name);
        // Only a cell with a runtime directory has paths worth a look.
        let paths = has_dir.then(|| CellPaths::new(cfg, name));
        let rendered = paths.as_ref().is_some_and(|p| p.conf.exists());
        let mut row = CellRow {
            name: name.to_string(),
            manifest: desired.cells.contains_key(name),
            rendered,
            apply_present: desired.apply_files.contains(name),
            create_rlimit_nofile: "unlimited".into(),
            create_rlimit_as: "unlimited".into(),
            create_rlimit_core: "unlimited".into(),
            ..CellRow::default()
        };
        if let Some(m) = desired.cells.get(name) {
            desired_fields(&mut row, m, cfg, wanted);
        } else if rendered {
            if let Some(m) = runtime::load_rendered(cfg, name)? {
                desired_fields(&mut row, &m, cfg, wanted);
            }
        }
        if let Some(paths) = &paths {
            row.root = paths.root.display().to_string();
        }
        if let Some(k) = kernel.get(name) {
            row.running = true;
            row.cid = Some(k.id);
            row.refs = Some(k.refs);
            row.procs = Some(k.procs);
            row.age = Some(k.age);
            row.root = k.root.display().to_string();
            row.frozen = k.frozen;
        }
        if let Some(s) = stats.get(name) {
            row.procs = Some(s.info.procs);
            row.cpu1s = Some(s.cpu1s);
            row.cpu10s = Some(s.cpu10s);
            row.memory = Some(s.memory);
            if let Some(r) = facts.resources.iter().find(|r| r.id == s.info.id) {
                row.tasks = r.tasks;
                row.memory_used = r.memory;
                row.disk_used = r.disk;
                row.forks_denied = r.forks_denied;
                row.oom_kills = r.oom_kills;
            }
        }
        if let Some(sv) = facts.supervisors.get(name) {
            row.supervisor_pid = sv.pid;
            row.restarts = sv.restarts;
            row.last_exit = sv.last_exit.clone();
            row.supervisor = sv.state.clone();
        }
        if let Some(h) = facts.supervisors.get(name).and_then(|s| s.health.clone()) {
            row.health = h;
        } else if let Some(paths) = &paths {
            // A cell without a service: its check ran once, at start.
            row.health = std::fs::read_to_string(paths.health_file())
                .map(|t| t.lines().next().unwrap_or_default().to_string())
                .unwrap_or_default();
        }
        row.state = cell_state(
            row.manifest,
            row.rendered,
            row.desired_state,
            has_dir || row.running,
        )
        .as_str()
        .to_string();
        Ok(row)
    };
    crate::engine::par::map(names.into_iter().collect(), 1024, row)
        .into_iter()
        .collect()
}

/// Builds every volume row, sorted by name.
pub fn volume_rows(cfg: &Config, desired: &Desired) -> Result<Vec<VolumeRow>> {
    let dirs: BTreeSet<String> = runtime::volume_dirs(cfg)?.into_iter().collect();
    let names: BTreeSet<&str> = desired
        .volumes
        .keys()
        .map(String::as_str)
        .chain(dirs.iter().map(String::as_str))
        .collect();
    let mounted = mounted_volumes(cfg)?;
    let mut rows = Vec::new();
    for name in names {
        let users = desired.volume_users(name);
        let man = desired.volumes.get(name);
        let has_dir = dirs.contains(name);
        let state = match (man.is_some(), has_dir) {
            (true, true) => "managed",
            (true, false) => "pending",
            (false, true) => "orphaned",
            (false, false) => "absent",
        };
        rows.push(VolumeRow {
            name: name.to_string(),
            manifest: man.is_some(),
            runtime: has_dir,
            mode: man
                .map(|m| manifest::format_mode(m.mode))
                .unwrap_or_default(),
            path: runtime::volume_dir(cfg, name).display().to_string(),
            mounted: mounted.contains(name),
            refs: users.len() as u64,
            used_by: users.join(","),
            state: state.into(),
        });
    }
    Ok(rows)
}

/// Volumes some cell has mounted right now: recorded volume mounts whose target
/// is still a mount point.
pub fn mounted_volumes(cfg: &Config) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut points: Option<Vec<std::path::PathBuf>> = None;
    for cell in runtime::runtime_dirs(cfg)? {
        let records = compose::read_records(&CellPaths::new(cfg, &cell));
        for r in records {
            if let Some(v) = r.kind.strip_prefix("volume:") {
                if points.is_none() {
                    points = Some(mountinfo::mount_points()?);
                }
                if points.as_ref().is_some_and(|p| p.contains(&r.target)) {
                    out.insert(v.to_string());
                }
            }
        }
    }
    Ok(out)
}

impl Record for CellRow {
    fn field(&self, name: &str) -> Value {
        match name {
            "name" => self.name.as_str().into(),
            "running" => self.running.into(),
            "desired_state" => self.desired_state.into(),
            "cid" => self.cid.into(),
            "refs" => self.refs.into(),
            "procs" => self.procs.into(),
            "cpu1s" => self.cpu1s.into(),
            "cpu10s" => self.cpu10s.into(),
            "memory" => self.memory.into(),
            "age" => self.age.map_or(Value::Empty, Value::Age),
            "root" => self.root.as_str().into(),
            "autostart" => self.autostart.into(),
            "create_profile" => self.create_profile.as_str().into(),
            // The row keeps the printed forms the IPC bridge carries; the
            // contract types them here (lists, numbers or "unlimited").
            "create_reserved_ports" => Value::list_from_csv(&self.create_reserved_ports),
            "create_rlimit_nofile" => Value::number_or_text(&self.create_rlimit_nofile),
            "create_rlimit_as" => Value::number_or_text(&self.create_rlimit_as),
            "create_rlimit_core" => Value::number_or_text(&self.create_rlimit_core),
            "depends_on" => Value::list_from_csv(&self.depends_on),
            "healthcheck" => self.healthcheck.as_str().into(),
            "supervise_cmd" => self.supervise_cmd.as_str().into(),
            "volume_mounts" => Value::list_from_csv(&self.volume_mounts),
            "manifest" => self.manifest.into(),
            "rendered" => self.rendered.into(),
            "apply_present" => self.apply_present.into(),
            "state" => self.state.as_str().into(),
            "health" => self.health.as_str().into(),
            "supervisor_pid" => self.supervisor_pid.into(),
            "restarts" => self.restarts.into(),
            "last_exit" => self.last_exit.as_str().into(),
            "supervisor" => self.supervisor.as_str().into(),
            "create_maxproc" => self.create_maxproc.as_str().into(),
            "create_memory" => self.create_memory.as_str().into(),
            "create_cpu" => self.create_cpu.as_str().into(),
            "create_disk" => self.create_disk.as_str().into(),
            "tasks" => self.tasks.into(),
            "memory_used" => self.memory_used.into(),
            "disk_used" => self.disk_used.into(),
            "forks_denied" => self.forks_denied.into(),
            "oom_kills" => self.oom_kills.into(),
            "frozen" => self.frozen.into(),
            other => unreachable!("field {other} is not in CELL_SCHEMA"),
        }
    }
}

impl Record for VolumeRow {
    fn field(&self, name: &str) -> Value {
        match name {
            "name" => self.name.as_str().into(),
            "manifest" => self.manifest.into(),
            "runtime" => self.runtime.into(),
            "mode" => self.mode.as_str().into(),
            "path" => self.path.as_str().into(),
            "mounted" => self.mounted.into(),
            "refs" => self.refs.into(),
            "used_by" => Value::list_from_csv(&self.used_by),
            "state" => self.state.as_str().into(),
            other => unreachable!("field {other} is not in VOLUME_SCHEMA"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::OutputOptions;

    #[test]
    fn every_view_field_is_a_known_field_and_merged_has_them_all() {
        for s in [&CELL_SCHEMA, &VOLUME_SCHEMA] {
            let all = s.views.iter().find(|v| v.name == "merged").unwrap().allowed;
            for v in s.views {
                for f in v.allowed.iter().chain(v.default) {
                    assert!(all.contains(f), "{} {f}", v.name);
                }
                for f in v.default {
                    assert!(v.allowed.contains(f), "{} default {f}", v.name);
                }
            }
        }
        // Every field renders without panicking.
        let row = CellRow::default();
        for f in CELL_FIELDS {
            let _ = row.field(f);
        }
        let v = VolumeRow::default();
        for f in VOLUME_FIELDS {
            let _ = v.field(f);
        }
    }

    #[test]
    fn v2_fields_keep_their_names_and_order() {
        assert_eq!(CELL_FIELDS.len(), 40);
        assert_eq!(CELL_FIELDS[..3], ["name", "running", "desired_state"]);
        assert_eq!(CELL_FIELDS[23], "apply_present");
        assert_eq!(
            VOLUME_FIELDS[..8],
            ["name", "manifest", "runtime", "mode", "path", "mounted", "refs", "used_by"]
        );
    }

    #[test]
    fn labels_follow_the_table() {
        assert_eq!(cell_state(true, true, true, true), CellState::Managed);
        assert_eq!(cell_state(true, true, false, true), CellState::Parked);
        assert_eq!(cell_state(true, false, true, false), CellState::Pending);
        assert_eq!(cell_state(true, false, false, false), CellState::Declared);
        assert_eq!(cell_state(false, true, false, true), CellState::Orphaned);
        assert_eq!(cell_state(false, false, false, true), CellState::Orphaned);
        assert_eq!(cell_state(false, false, false, false), CellState::Absent);
    }

    #[test]
    fn tsv_of_name_state_is_plain() {
        let rows = vec![
            CellRow {
                name: "a".into(),
                state: "declared".into(),
                ..CellRow::default()
            },
            CellRow {
                name: "b".into(),
                state: "managed".into(),
                ..CellRow::default()
            },
        ];
        let opts = OutputOptions {
            tsv: true,
            no_header: true,
            fields: Some("name,state".into()),
            ..OutputOptions::default()
        };
        assert_eq!(
            CELL_SCHEMA.render(&opts, &rows).unwrap(),
            "a\tdeclared\nb\tmanaged\n"
        );
    }

    #[test]
    fn json_types_ports_mounts_limits_and_absent_numbers() {
        let row = CellRow {
            name: "web".into(),
            create_reserved_ports: "80,443".into(),
            create_rlimit_nofile: "1024".into(),
            create_rlimit_as: "unlimited".into(),
            volume_mounts: "data:/srv/data:rw".into(),
            ..CellRow::default()
        };
        let opts = OutputOptions {
            json: true,
            fields: Some(
                "name,running,cid,create_reserved_ports,create_rlimit_nofile,\
                 create_rlimit_as,depends_on,volume_mounts"
                    .into(),
            ),
            view: Some("merged".into()),
            ..OutputOptions::default()
        };
        let out = CELL_SCHEMA.render(&opts, &[row]).unwrap();
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "name": "web", "running": false, "cid": null,
                "create_reserved_ports": [80, 443],
                "create_rlimit_nofile": 1024, "create_rlimit_as": "unlimited",
                "depends_on": [], "volume_mounts": ["data:/srv/data:rw"],
            })
        );
    }

    #[test]
    fn json_without_fields_carries_every_field_of_the_view() {
        let opts = OutputOptions {
            json: true,
            ..OutputOptions::default()
        };
        let out = CELL_SCHEMA.render(&opts, &[CellRow::default()]).unwrap();
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(out.trim_end()).unwrap();
        let compact = CELL_SCHEMA.views.iter().find(|v| v.name == "compact");
        let keys: Vec<&str> = v.keys().map(String::as_str).collect();
        let mut want = compact.unwrap().allowed.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
    }
}
