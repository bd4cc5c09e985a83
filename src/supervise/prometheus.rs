//! Cell telemetry in the Prometheus text exposition format (version 0.0.4).
//!
//! A pure function of its inputs, so `cellctl stats -P` and any exporter
//! print the same thing; `-h` prefixes an HTTP/1.0 response header so inetd
//! can serve it as a scrape endpoint.

use super::SupervisorStatus;
use crate::kernel::{CellStats, DenyCounters};
use std::fmt::Write;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// One metric family: name, help text, type, and the value for one cell.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    value: fn(&CellStats) -> u64,
}

const CELL_FAMILIES: &[Family] = &[
    Family {
        name: "cells_cpu_ticks_1s",
        help: "CPU time used by the cell's processes in the last second, in ticks of 1/100 s.",
        kind: "gauge",
        value: |s| s.cpu1s,
    },
    Family {
        name: "cells_cpu_ticks_10s_avg",
        help: "Average CPU ticks per second over the last 10 seconds.",
        kind: "gauge",
        value: |s| s.cpu10s,
    },
    Family {
        name: "cells_processes",
        help: "Live member processes of the cell.",
        kind: "gauge",
        value: |s| s.info.procs,
    },
    Family {
        name: "cells_references",
        help: "Member processes of the cell, live and zombie.",
        kind: "gauge",
        value: |s| s.info.refs,
    },
    Family {
        name: "cells_memory_bytes",
        help: "Memory used by the cell's processes, in bytes.",
        kind: "gauge",
        value: |s| s.memory,
    },
    Family {
        name: "cells_age_seconds",
        help: "Seconds since the cell was created.",
        kind: "gauge",
        value: |s| s.info.age,
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
/// `stats[i]` (`None` or missing: not supervised). With `http_header`, the
/// text is preceded by an HTTP/1.0 200 response header.
pub fn render(
    stats: &[CellStats],
    supervisors: &[Option<SupervisorStatus>],
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
    for f in CELL_FAMILIES {
        header(&mut out, f.name, f.help, f.kind);
        for (s, l) in stats.iter().zip(&labels) {
            let _ = writeln!(out, "{}{{{l}}} {}", f.name, (f.value)(s));
        }
    }
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
    use crate::kernel::{CellInfo, Profile, Rlimits};
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
        }
    }

    #[test]
    fn exact_output_for_two_cells() {
        let stats = [cell(2, "web", 12), cell(5, "db", 0)];
        let got = render(&stats, &[Some(supervised(3)), None], false);
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
        let got = render(&[cell(1, "we\"b\\\n", 0)], &[], false);
        assert!(
            got.contains("cells_processes{cell=\"we\\\"b\\\\\\n\",cid=\"1\"} 3\n"),
            "{got}"
        );
    }

    #[test]
    fn http_header_for_inetd() {
        let body = render(&[], &[], false);
        let got = render(&[], &[], true);
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        assert_eq!(got, format!("{head}{body}"));
        // No cells: only the HELP and TYPE lines.
        assert!(body.lines().all(|l| l.starts_with('#')), "{body}");
    }
}
