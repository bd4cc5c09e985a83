//! Cell telemetry in the Prometheus text exposition format (version 0.0.4).
//!
//! A pure function of its inputs, so `cellctl stats -P` and any exporter
//! print the same thing; `-h` prefixes an HTTP/1.0 response header so inetd
//! can serve it as a scrape endpoint.

use super::SupervisorStatus;
use crate::kernel::{CellResources, CellStats, DenyCounters};
use std::fmt::Write;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// One metric family: name, help text, type, and the value for one cell from
/// its telemetry and its limits; a cell without the value (an unlimited one
/// has no limit) gets no series.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    value: fn(&CellStats, Option<&CellResources>) -> Option<u64>,
}

const CELL_FAMILIES: &[Family] = &[
    Family {
        name: "cells_cpu_ticks_1s",
        help: "CPU time used by the cell's processes in the last second, in ticks of 1/100 s.",
        kind: "gauge",
        value: |s, _| Some(s.cpu1s),
    },
    Family {
        name: "cells_cpu_ticks_10s_avg",
        help: "Average CPU ticks per second over the last 10 seconds.",
        kind: "gauge",
        value: |s, _| Some(s.cpu10s),
    },
    Family {
        name: "cells_processes",
        help: "Live member processes of the cell.",
        kind: "gauge",
        value: |s, _| Some(s.info.procs),
    },
    Family {
        name: "cells_references",
        help: "Member processes of the cell, live and zombie.",
        kind: "gauge",
        value: |s, _| Some(s.info.refs),
    },
    Family {
        name: "cells_memory_bytes",
        help: "Memory used by the cell's processes, in bytes.",
        kind: "gauge",
        value: |s, _| Some(s.memory),
    },
    Family {
        name: "cells_age_seconds",
        help: "Seconds since the cell was created.",
        kind: "gauge",
        value: |s, _| Some(s.info.age),
    },
];

const RESOURCE_FAMILIES: &[Family] = &[
    Family {
        name: "cells_tasks",
        help: "Tasks (processes and threads) the cell's process limit counts.",
        kind: "gauge",
        value: |_, r| r?.tasks,
    },
    Family {
        name: "cells_limit_tasks",
        help: "The cell's process limit.",
        kind: "gauge",
        value: |_, r| r?.limits.maxproc,
    },
    Family {
        name: "cells_memory_charged_bytes",
        help: "Memory charged to the cell, the figure its memory limit bounds.",
        kind: "gauge",
        value: |_, r| r?.memory,
    },
    Family {
        name: "cells_limit_memory_bytes",
        help: "The cell's memory limit (memory plus swap).",
        kind: "gauge",
        value: |_, r| r?.limits.memory,
    },
    Family {
        name: "cells_limit_cpu_percent",
        help: "The cell's CPU limit in percent of one CPU (compare cells_cpu_ticks_1s).",
        kind: "gauge",
        value: |_, r| r?.limits.cpu_percent,
    },
    Family {
        name: "cells_disk_used_bytes",
        help: "Bytes used on the storage that bounds the cell's disk.",
        kind: "gauge",
        value: |_, r| r?.disk,
    },
    Family {
        name: "cells_limit_disk_bytes",
        help: "The cell's disk limit.",
        kind: "gauge",
        value: |_, r| r?.limits.disk,
    },
    Family {
        name: "cells_forks_denied_total",
        help: "Forks refused because the cell was at its process limit.",
        kind: "counter",
        value: |_, r| r?.forks_denied,
    },
    Family {
        name: "cells_oom_kills_total",
        help: "Processes killed because the cell reached its memory limit.",
        kind: "counter",
        value: |_, r| r?.oom_kills,
    },
];

/// Reads one counter out of [`DenyCounters`].
type DenyCounter = fn(&DenyCounters) -> u64;

/// Deny counter scopes, in the order they are printed.
const DENY_SCOPES: &[(&str, DenyCounter)] = &[
    ("process", |d| d.process),
    ("system", |d| d.system),
    ("network", |d| d.network),
    ("machdep", |d| d.machdep),
    ("device", |d| d.device),
    ("bind", |d| d.bind),
];

/// Renders every cell's telemetry. `supervisors[i]` is the supervisor of
/// `stats[i]` (`None` or missing: not supervised); `resources` are matched to
/// cells by id. With `http_header`, the text is preceded by an HTTP/1.0 200
/// response header.
pub fn render(
    stats: &[CellStats],
    supervisors: &[Option<SupervisorStatus>],
    resources: &[CellResources],
    http_header: bool,
) -> String {
    let labels: Vec<String> = stats
        .iter()
        .map(|s| {
            format!(
                "cell=\"{}\",cid=\"{}\"",
                escape_label(&s.info.name),
                s.info.id
            )
        })
        .collect();
    let supervisor = |i: usize| supervisors.get(i).and_then(Option::as_ref);
    let mut out = String::new();
    let resources_of = |s: &CellStats| resources.iter().find(|r| r.id == s.info.id);
    let families = |out: &mut String, families: &[Family]| {
        for f in families {
            header(out, f.name, f.help, f.kind);
            for (s, l) in stats.iter().zip(&labels) {
                if let Some(v) = (f.value)(s, resources_of(s)) {
                    let _ = writeln!(out, "{}{{{l}}} {v}", f.name);
                }
            }
        }
    };
    families(&mut out, CELL_FAMILIES);
    header(
        &mut out,
        "cells_denies_total",
        "Operations the kernel denied to the cell's processes, by scope.",
        "counter",
    );
    for (s, l) in stats.iter().zip(&labels) {
        for (scope, value) in DENY_SCOPES {
            let _ = writeln!(
                out,
                "cells_denies_total{{{l},scope=\"{scope}\"}} {}",
                value(&s.denies)
            );
        }
    }
    families(&mut out, RESOURCE_FAMILIES);
    header(
        &mut out,
        "cells_supervisor_up",
        "1 when a supervisor runs a service in the cell, else 0.",
        "gauge",
    );
    for (i, l) in labels.iter().enumerate() {
        let up = u8::from(supervisor(i).is_some());
        let _ = writeln!(out, "cells_supervisor_up{{{l}}} {up}");
    }
    header(
        &mut out,
        "cells_supervisor_restarts_total",
        "Times the supervisor restarted the cell's service.",
        "counter",
    );
    for (i, l) in labels.iter().enumerate() {
        if let Some(sup) = supervisor(i) {
            let _ = writeln!(
                out,
                "cells_supervisor_restarts_total{{{l}}} {}",
                sup.restarts
            );
        }
    }
    if !http_header {
        return out;
    }
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\r\n{out}",
        out.len()
    )
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{CellInfo, Limits, Profile, Rlimits};
    use crate::supervise::SupervisorState;

    fn cell(id: u64, name: &str, cpu: u64) -> CellStats {
        CellStats {
            info: CellInfo {
                id,
                name: name.into(),
                root: "/cells/x".into(),
                profile: Profile::High,
                ports: vec![],
                rlimits: Rlimits::default(),
                age: 125,
                procs: 3,
                refs: 4,
                ids: None,
                frozen: false,
            },
            cpu1s: cpu,
            cpu10s: 7,
            memory: 73_400_320,
            denies: DenyCounters {
                process: 1,
                system: 2,
                network: 3,
                machdep: 0,
                device: 5,
                bind: 6,
            },
        }
    }

    fn supervised(restarts: u64) -> SupervisorStatus {
        SupervisorStatus {
            cell: "web".into(),
            cid: 2,
            supervisor_pid: 10,
            child_pid: Some(11),
            argv: vec!["httpd".into()],
            state: SupervisorState::Running,
            since: 0,
            started: 0,
            restarts,
            last_exit: None,
            backoff_secs: 0,
            recent_starts_ms: vec![],
            syslog_unreachable: false,
            health: None,
        }
    }

    #[test]
    fn exact_output_for_two_cells() {
        let stats = [cell(2, "web", 12), cell(5, "db", 0)];
        let limited = CellResources {
            id: 2,
            limits: Limits {
                maxproc: Some(64),
                memory: Some(64 << 20),
                ..Limits::default()
            },
            tasks: Some(5),
            memory: Some(1 << 20),
            forks_denied: Some(9),
            oom_kills: Some(1),
            disk: None,
        };
        let got = render(&stats, &[Some(supervised(3)), None], &[limited], false);
        let want = r#"# HELP cells_cpu_ticks_1s CPU time used by the cell's processes in the last second, in ticks of 1/100 s.
# TYPE cells_cpu_ticks_1s gauge
cells_cpu_ticks_1s{cell="web",cid="2"} 12
cells_cpu_ticks_1s{cell="db",cid="5"} 0
# HELP cells_cpu_ticks_10s_avg Average CPU ticks per second over the last 10 seconds.
# TYPE cells_cpu_ticks_10s_avg gauge
cells_cpu_ticks_10s_avg{cell="web",cid="2"} 7
cells_cpu_ticks_10s_avg{cell="db",cid="5"} 7
# HELP cells_processes Live member processes of the cell.
# TYPE cells_processes gauge
cells_processes{cell="web",cid="2"} 3
cells_processes{cell="db",cid="5"} 3
# HELP cells_references Member processes of the cell, live and zombie.
# TYPE cells_references gauge
cells_references{cell="web",cid="2"} 4
cells_references{cell="db",cid="5"} 4
# HELP cells_memory_bytes Memory used by the cell's processes, in bytes.
# TYPE cells_memory_bytes gauge
cells_memory_bytes{cell="web",cid="2"} 73400320
cells_memory_bytes{cell="db",cid="5"} 73400320
# HELP cells_age_seconds Seconds since the cell was created.
# TYPE cells_age_seconds gauge
cells_age_seconds{cell="web",cid="2"} 125
cells_age_seconds{cell="db",cid="5"} 125
# HELP cells_denies_total Operations the kernel denied to the cell's processes, by scope.
# TYPE cells_denies_total counter
cells_denies_total{cell="web",cid="2",scope="process"} 1
cells_denies_total{cell="web",cid="2",scope="system"} 2
cells_denies_total{cell="web",cid="2",scope="network"} 3
cells_denies_total{cell="web",cid="2",scope="machdep"} 0
cells_denies_total{cell="web",cid="2",scope="device"} 5
cells_denies_total{cell="web",cid="2",scope="bind"} 6
cells_denies_total{cell="db",cid="5",scope="process"} 1
cells_denies_total{cell="db",cid="5",scope="system"} 2
cells_denies_total{cell="db",cid="5",scope="network"} 3
cells_denies_total{cell="db",cid="5",scope="machdep"} 0
cells_denies_total{cell="db",cid="5",scope="device"} 5
cells_denies_total{cell="db",cid="5",scope="bind"} 6
# HELP cells_tasks Tasks (processes and threads) the cell's process limit counts.
# TYPE cells_tasks gauge
cells_tasks{cell="web",cid="2"} 5
# HELP cells_limit_tasks The cell's process limit.
# TYPE cells_limit_tasks gauge
cells_limit_tasks{cell="web",cid="2"} 64
# HELP cells_memory_charged_bytes Memory charged to the cell, the figure its memory limit bounds.
# TYPE cells_memory_charged_bytes gauge
cells_memory_charged_bytes{cell="web",cid="2"} 1048576
# HELP cells_limit_memory_bytes The cell's memory limit (memory plus swap).
# TYPE cells_limit_memory_bytes gauge
cells_limit_memory_bytes{cell="web",cid="2"} 67108864
# HELP cells_limit_cpu_percent The cell's CPU limit in percent of one CPU (compare cells_cpu_ticks_1s).
# TYPE cells_limit_cpu_percent gauge
# HELP cells_disk_used_bytes Bytes used on the storage that bounds the cell's disk.
# TYPE cells_disk_used_bytes gauge
# HELP cells_limit_disk_bytes The cell's disk limit.
# TYPE cells_limit_disk_bytes gauge
# HELP cells_forks_denied_total Forks refused because the cell was at its process limit.
# TYPE cells_forks_denied_total counter
cells_forks_denied_total{cell="web",cid="2"} 9
# HELP cells_oom_kills_total Processes killed because the cell reached its memory limit.
# TYPE cells_oom_kills_total counter
cells_oom_kills_total{cell="web",cid="2"} 1
# HELP cells_supervisor_up 1 when a supervisor runs a service in the cell, else 0.
# TYPE cells_supervisor_up gauge
cells_supervisor_up{cell="web",cid="2"} 1
cells_supervisor_up{cell="db",cid="5"} 0
# HELP cells_supervisor_restarts_total Times the supervisor restarted the cell's service.
# TYPE cells_supervisor_restarts_total counter
cells_supervisor_restarts_total{cell="web",cid="2"} 3
"#;
        assert_eq!(got, want);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        let got = render(&[cell(1, "we\"b\\\n", 0)], &[], &[], false);
        assert!(
            got.contains("cells_processes{cell=\"we\\\"b\\\\\\n\",cid=\"1\"} 3\n"),
            "{got}"
        );
    }

    #[test]
    fn http_header_for_inetd() {
        let body = render(&[], &[], &[], false);
        let got = render(&[], &[], &[], true);
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        assert_eq!(got, format!("{head}{body}"));
        // No cells: only the HELP and TYPE lines.
        assert!(body.lines().all(|l| l.starts_with('#')), "{body}");
    }
}
