//! The `list` and `stats` columns. The TSV column order is a contract (cellmgr
//! reads it): the original's columns first, new ones appended at the end.

use crate::kernel::{CellInfo, CellStats, Limit};
use crate::output::{Record, Schema, Value, View};
use crate::supervise::SupervisorStatus;

const LIST_FIELDS: &[&str] = &[
    "CID", "NAME", "REFS", "PROCS", "AGE", "ROOT", "NOFILE", "AS", "CORE", "PROFILE", "PORTS",
];

pub const LIST: Schema = Schema {
    noun: "cell",
    views: &[View {
        name: "default",
        allowed: LIST_FIELDS,
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

fn common(info: &CellInfo, name: &str) -> Value {
    match name {
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
        "PORTS" => Value::List(
            info.ports
                .iter()
                .map(|p| Value::from(u32::from(*p)))
                .collect(),
        ),
        _ => Value::Empty,
    }
}

pub struct ListRow<'a>(pub &'a CellInfo);

impl Record for ListRow<'_> {
    fn field(&self, name: &str) -> Value {
        common(self.0, name)
    }
}

/// A cell's telemetry and its supervisor's status (if one runs).
pub struct StatsRow<'a>(pub &'a CellStats, pub Option<&'a SupervisorStatus>);

impl Record for StatsRow<'_> {
    fn field(&self, name: &str) -> Value {
        let s = self.0;
        match name {
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
            other => common(&s.info, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Profile, Rlimits};
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
            frozen: false,
        }
    }

    #[test]
    fn list_tsv_keeps_the_original_columns_first() {
        let opts = OutputOptions {
            tsv: true,
            ..Default::default()
        };
        let out = LIST.render(&opts, &[ListRow(&info())]).unwrap();
        assert_eq!(
            out,
            "CID\tNAME\tREFS\tPROCS\tAGE\tROOT\tNOFILE\tAS\tCORE\tPROFILE\tPORTS\n\
             2\tweb\t3\t3\t125\t/srv/web\t1024\tunlimited\tunlimited\thigh\t80,443\n"
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
