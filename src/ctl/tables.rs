//! The `list` and `stats` columns. The TSV column order is a contract (cellmgr
//! reads it): the original's columns first, new ones appended at the end.

use crate::kernel::{CellInfo, CellResources, CellStats, Limit};
use crate::output::{Record, Schema, Value, View};
use crate::supervise::SupervisorStatus;

const LIST_FIELDS: &[&str] = &[
    "CID", "NAME", "REFS", "PROCS", "AGE", "ROOT", "NOFILE", "AS", "CORE", "PROFILE", "PORTS",
    "MAXPROC", "MAXMEM", "MAXCPU", "MAXDISK",
];

/// Every column `-o` may name: the default ones, then `IDMAP`.
const LIST_ALLOWED: &[&str] = &[
    "CID", "NAME", "REFS", "PROCS", "AGE", "ROOT", "NOFILE", "AS", "CORE", "PROFILE", "PORTS",
    "MAXPROC", "MAXMEM", "MAXCPU", "MAXDISK", "IDMAP",
];

pub const LIST: Schema = Schema {
    noun: "cell",
    views: &[View {
        name: "default",
        allowed: LIST_ALLOWED,
        default: LIST_FIELDS,
    }],
    default_view: "default",
};

const STATS_FIELDS: &[&str] = &[
    "CID",
    "NAME",
    "CPU1S",
    "CPU10S",
    "PROCS",
    "REFS",
    "MEMORY",
    "AGE",
    "ROOT",
    "DENY_PROCESS",
    "DENY_SYSTEM",
    "DENY_NETWORK",
    "DENY_MACHDEP",
    "DENY_DEVICE",
    "DENY_BIND",
    "SUPERVISOR",
    "RESTARTS",
    "TASKS",
    "MAXPROC",
    "MEM_USED",
    "MAXMEM",
    "MAXCPU",
    "DISK_USED",
    "MAXDISK",
    "DENY_FORK",
    "OOM_KILLS",
];

pub const STATS: Schema = Schema {
    noun: "cell",
    views: &[
        // TSV (-T): every column in contract order.
        View {
            name: "tsv",
            allowed: STATS_FIELDS,
            default: STATS_FIELDS,
        },
        // The table without -v.
        View {
            name: "compact",
            allowed: STATS_FIELDS,
            default: &["CID", "NAME", "CPU1S", "CPU10S", "PROCS", "AGE", "MEMORY"],
        },
        // The table with -v.
        View {
            name: "verbose",
            allowed: STATS_FIELDS,
            default: &[
                "CID",
                "NAME",
                "ROOT",
                "CPU1S",
                "CPU10S",
                "PROCS",
                "REFS",
                "AGE",
                "MEMORY",
                "MEM_USED",
                "MAXMEM",
                "TASKS",
                "MAXPROC",
                "MAXCPU",
                "DISK_USED",
                "MAXDISK",
                "DENY_FORK",
                "OOM_KILLS",
                "DENY_BIND",
                "SUPERVISOR",
            ],
        },
    ],
    default_view: "compact",
};

fn limit(l: Limit) -> Value {
    match l {
        None => Value::from("unlimited"),
        Some(n) => Value::from(n),
    }
}

/// A limit column: the cell's limit, or `unlimited`; empty when the backend
/// reports no limits.
fn limit_of(res: Option<&CellResources>, pick: fn(&CellResources) -> Limit) -> Value {
    res.map_or(Value::Empty, |r| limit(pick(r)))
}

fn common(info: &CellInfo, res: Option<&CellResources>, name: &str) -> Value {
    match name {
        "MAXPROC" => limit_of(res, |r| r.limits.maxproc),
        "MAXMEM" => limit_of(res, |r| r.limits.memory),
        "MAXCPU" => limit_of(res, |r| r.limits.cpu_percent),
        "MAXDISK" => limit_of(res, |r| r.limits.disk),
        "CID" => info.id.into(),
        "NAME" => info.name.as_str().into(),
        "REFS" => info.refs.into(),
        "PROCS" => info.procs.into(),
        "AGE" => Value::Age(info.age),
        "ROOT" => info.root.display().to_string().into(),
        "NOFILE" => limit(info.rlimits.nofile),
        "AS" => limit(info.rlimits.address_space),
        "CORE" => limit(info.rlimits.core),
        "PROFILE" => info.profile.as_str().into(),
        // The host ids of its user namespace as base:size, or `host`.
        "IDMAP" => info
            .ids
            .map_or_else(|| "host".to_string(), |r| r.to_string())
            .into(),
        "PORTS" => Value::List(
            info.ports
                .iter()
                .map(|p| Value::from(u32::from(*p)))
                .collect(),
        ),
        _ => Value::Empty,
    }
}

/// A cell and its limits (if the backend reports them).
pub struct ListRow<'a>(pub &'a CellInfo, pub Option<&'a CellResources>);

impl Record for ListRow<'_> {
    fn field(&self, name: &str) -> Value {
        common(self.0, self.1, name)
    }
}

/// A cell's telemetry, its supervisor's status (if one runs) and its limits
/// with their usage (if the backend reports them).
pub struct StatsRow<'a>(
    pub &'a CellStats,
    pub Option<&'a SupervisorStatus>,
    pub Option<&'a CellResources>,
);

impl Record for StatsRow<'_> {
    fn field(&self, name: &str) -> Value {
        let s = self.0;
        let res = self.2;
        match name {
            "TASKS" => res.and_then(|r| r.tasks).into(),
            "MEM_USED" => res.and_then(|r| r.memory).into(),
            "DISK_USED" => res.and_then(|r| r.disk).into(),
            "DENY_FORK" => res.and_then(|r| r.forks_denied).into(),
            "OOM_KILLS" => res.and_then(|r| r.oom_kills).into(),
            "SUPERVISOR" => self.1.map(|sup| sup.state.as_str()).into(),
            "RESTARTS" => self.1.map(|sup| sup.restarts).into(),
            "CPU1S" => s.cpu1s.into(),
            "CPU10S" => s.cpu10s.into(),
            "MEMORY" => s.memory.into(),
            "DENY_PROCESS" => s.denies.process.into(),
            "DENY_SYSTEM" => s.denies.system.into(),
            "DENY_NETWORK" => s.denies.network.into(),
            "DENY_MACHDEP" => s.denies.machdep.into(),
            "DENY_DEVICE" => s.denies.device.into(),
            "DENY_BIND" => s.denies.bind.into(),
            other => common(&s.info, res, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Limits, Profile, Rlimits};
    use crate::output::OutputOptions;

    fn info() -> CellInfo {
        CellInfo {
            id: 2,
            name: "web".into(),
            root: "/srv/web".into(),
            profile: Profile::High,
            ports: vec![80, 443],
            rlimits: Rlimits {
                nofile: Some(1024),
                ..Rlimits::default()
            },
            age: 125,
            procs: 3,
            refs: 3,
            ids: None,
            frozen: false,
        }
    }

    #[test]
    fn list_tsv_keeps_the_original_columns_first() {
        let opts = OutputOptions {
            tsv: true,
            ..Default::default()
        };
        let res = CellResources {
            id: 2,
            limits: Limits {
                maxproc: Some(64),
                memory: Some(64 << 20),
                ..Limits::default()
            },
            ..CellResources::default()
        };
        let out = LIST
            .render(
                &opts,
                &[ListRow(&info(), Some(&res)), ListRow(&info(), None)],
            )
            .unwrap();
        assert_eq!(
            out,
            "CID\tNAME\tREFS\tPROCS\tAGE\tROOT\tNOFILE\tAS\tCORE\tPROFILE\tPORTS\t\
             MAXPROC\tMAXMEM\tMAXCPU\tMAXDISK\n\
             2\tweb\t3\t3\t125\t/srv/web\t1024\tunlimited\tunlimited\thigh\t80,443\t\
             64\t67108864\tunlimited\tunlimited\n\
             2\tweb\t3\t3\t125\t/srv/web\t1024\tunlimited\tunlimited\thigh\t80,443\t\t\t\t\n"
        );
    }

    #[test]
    fn stats_tsv_header_starts_with_the_original_nine() {
        let opts = OutputOptions {
            tsv: true,
            view: Some("tsv".into()),
            ..Default::default()
        };
        let out = STATS.render::<StatsRow>(&opts, &[]).unwrap();
        assert!(out.starts_with("CID\tNAME\tCPU1S\tCPU10S\tPROCS\tREFS\tMEMORY\tAGE\tROOT\t"));
    }
}
