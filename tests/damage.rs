//! One bad file never takes down the rest: a damaged state file is reported by
//! name, affects only what it describes, and the next command repairs it from
//! what is true on the host. Needs root and busybox (real cells).

mod support;

use std::path::PathBuf;
use support::world::{bind_as, World};
use support::{assert_no_debug_dump, port, root_or_skip};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `apply --dry-run` finds nothing to do.
fn assert_nothing_to_apply(w: &World) {
    let out = w.run(&["apply", "--dry-run"]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{plan}{}", stderr(&out));
}

fn table(w: &World) -> PathBuf {
    w.dir.join("run/kernel/cells.cbor")
}

/// Two running cells, one with a reserved port; returns that port.
/// `k`: which of this binary's ports (tests run in parallel).
fn two_cells(w: &World, k: u16) -> u16 {
    let p = port(k);
    w.ok(&[
        "cell",
        "create",
        "a",
        "--cmd",
        "sleep 1000",
        "--autostart",
        "YES",
    ]);
    w.ok(&[
        "cell",
        "create",
        "b",
        "--cmd",
        "sleep 1000",
        "--autostart",
        "YES",
        "--reserved-ports",
        &p.to_string(),
    ]);
    w.ok(&["apply"]);
    p
}

#[test]
fn a_damaged_or_lost_cell_table_is_rebuilt_from_the_kernel() {
    if !root_or_skip("a_damaged_or_lost_cell_table_is_rebuilt_from_the_kernel") {
        return;
    }
    let w = World::new("table");
    let p = two_cells(&w, 0);
    let before = w.rows("name,running,cid");
    assert!(
        before.starts_with("a\t1\t") && before.contains("\nb\t1\t"),
        "{before}"
    );

    // Truncated: every command rebuilds it, says so, and nothing changed.
    let bytes = std::fs::read(table(&w)).unwrap();
    std::fs::write(table(&w), &bytes[..bytes.len() / 2]).unwrap();
    let out = w.run(&["cell", "list", "-T", "-H", "-o", "name,running,cid"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), before);
    let err = stderr(&out);
    assert!(
        err.contains("cells.cbor") && err.contains("rebuilt") && err.contains("(a, b)"),
        "{err}"
    );
    assert_no_debug_dump(&err, "list after truncation");
    // The port stays reserved and apply sees nothing to do.
    assert_ne!(bind_as(65534, p), 0, "the reservation was lost");
    assert_nothing_to_apply(&w);

    // Garbage: a mutating command works on the rebuilt table.
    std::fs::write(table(&w), b"\xff\x00not a table").unwrap();
    assert_eq!(w.ok(&["stop", "b"]), "stopped cell b\n");
    assert_eq!(w.rows("name,running"), "a\t1\nb\t0\n");

    // Lost: the same, and ids are not handed out twice.
    std::fs::remove_file(table(&w)).unwrap();
    w.ok(&["start", "b"]);
    let rows = w.rows("name,running,cid");
    let cids: Vec<u64> = rows
        .lines()
        .map(|l| l.rsplit('\t').next().unwrap().parse().unwrap())
        .collect();
    assert!(cids[1] > cids[0], "{rows}");
    let before_b: u64 = before
        .lines()
        .nth(1)
        .unwrap()
        .rsplit('\t')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        cids[1] > before_b,
        "an id was handed out twice: {before} / {rows}"
    );
    assert_ne!(bind_as(65534, p), 0, "the reservation was lost");
}

fn status_file(w: &World, cell: &str) -> PathBuf {
    support::supervise_file(&w.dir.join("run"), cell, "status")
}

#[test]
fn a_damaged_supervisor_status_affects_only_its_cell_and_apply_repairs_it() {
    if !root_or_skip("a_damaged_supervisor_status_affects_only_its_cell_and_apply_repairs_it") {
        return;
    }
    let w = World::new("status");
    two_cells(&w, 1);
    let fields = "name,running,supervisor";
    assert_eq!(w.rows(fields), "a\t1\trunning\nb\t1\trunning\n");

    // A live supervisor's file is damaged: only its cell shows it, by name.
    std::fs::write(status_file(&w, "a"), b"\x00\x01garbage").unwrap();
    let out = w.run(&["cell", "list", "-T", "-H", "-o", fields]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a\t1\tdamaged\nb\t1\trunning\n"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&status_file(&w, "a").display().to_string())
            && !err.contains(&status_file(&w, "b").display().to_string()),
        "{err}"
    );
    assert_no_debug_dump(&err, "list with a damaged status");
    // Nothing to plan: the cell runs and is supervised.
    assert_nothing_to_apply(&w);
    // One apply repairs it from the live supervisor.
    let out = w.run(&["apply"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrote it again"), "{}", stderr(&out));
    assert_eq!(w.rows(fields), "a\t1\trunning\nb\t1\trunning\n");

    // Stopping a cell whose status is damaged works, and touches no other.
    std::fs::write(status_file(&w, "a"), b"").unwrap();
    assert_eq!(w.ok(&["stop", "a"]), "stopped cell a\n");
    assert_eq!(w.rows(fields), "a\t0\t\nb\t1\trunning\n");

    // A dead supervisor's damaged file: one apply supervises the cell again.
    let pid: i32 = w
        .rows("supervisor_pid")
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: kills the supervisor this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    support::wait_until(
        "the killed supervisor to be gone",
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(20),
        || !std::path::Path::new(&format!("/proc/{pid}")).exists(),
    );
    std::fs::write(status_file(&w, "b"), b"\xa1garbage").unwrap();
    w.ok(&["apply"]);
    assert_eq!(w.rows(fields), "a\t1\trunning\nb\t1\trunning\n");
}
