//! Backups next to running cells, for real: a copy is refused while a cell can
//! write the data, `--quiesce` freezes the writer for the copy and thaws it,
//! restore is refused while a cell uses the data and `--stop` stops it first.
//! Needs root and busybox (the cellmgr harness skips otherwise).

mod support;

use std::time::Duration;
use support::world::World;
use support::{root_or_skip, wait_until};

/// `cellmgr cell shell writer sh -c <loop>`: a process inside the cell, started
/// by this test and killed by PID when it ends (stopping the cell ends it too).
struct Writer(std::process::Child);

impl Writer {
    fn start(w: &World) -> Writer {
        let child = std::process::Command::new(&w.bin)
            .args(["cell", "shell", "writer", "sh", "-c"])
            .arg("while :; do date >> /srv/db/log; sleep 0.05; done")
            .env("CELLMGR_CONF", &w.conf)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Writer(child)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn log_len(w: &World) -> u64 {
    std::fs::metadata(w.volume_dir().join("db/log"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Waits (bounded) until the writer has written more than `than` bytes.
fn wait_written(w: &World, than: u64, what: &str) {
    wait_until(
        what,
        Duration::from_secs(20),
        Duration::from_millis(20),
        || log_len(w) > than,
    );
}

/// Waits (bounded) until `cellmgr` reports the writer frozen or not.
fn wait_frozen(w: &World, frozen: bool) {
    let want = format!("writer\t{}\n", u8::from(frozen));
    wait_until(
        &format!("frozen = {frozen}"),
        Duration::from_secs(20),
        Duration::from_millis(10),
        || w.rows("name,frozen") == want,
    );
}

/// Pids of the children of `parent` whose command name is `comm`.
fn children_named(parent: u32, comm: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((name, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
            else {
                return false;
            };
            name == comm && rest.split(' ').nth(1) == Some(&parent.to_string())
        })
        .collect()
}

/// `volume backup create db --quiesce` in the background, once the writer is
/// frozen by it (the volume holds enough data for the copy to take a while).
fn frozen_backup(w: &World) -> std::process::Child {
    let child = std::process::Command::new(&w.bin)
        .args(["volume", "backup", "create", "db", "--quiesce", "-q"])
        .env("CELLMGR_CONF", &w.conf)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_frozen(w, true);
    child
}

fn newest_archive(w: &World) -> std::path::PathBuf {
    let dir = w.dir.join("backups/volumes");
    let mut all: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    all.sort();
    all.pop().expect("an archive")
}

#[test]
fn backups_respect_running_cells() {
    if !root_or_skip("backups_respect_running_cells") {
        return;
    }
    let w = World::new("bkcells");
    w.ok(&["volume", "create", "db", "--scope", "both"]);
    // A cell with a process that appends to the volume every 50 ms.
    // Started by apply, so that the apply below has nothing to change.
    w.ok(&[
        "cell",
        "create",
        "writer",
        "--mount",
        "db:/srv/db",
        "--autostart",
        "YES",
    ]);
    w.ok(&["apply"]);
    let _writer = Writer::start(&w);
    wait_written(&w, 0, "the writer to write");

    let err = w.fails(&["volume", "backup", "create", "db"]);
    assert!(
        err.contains("read-write by running cell(s) writer") && err.contains("--quiesce"),
        "{err}"
    );
    let err = w.fails(&["cell", "backup", "create", "writer"]);
    assert!(err.contains("cell writer is running"), "{err}");

    // --quiesce: frozen for the copy, running and writing again afterwards.
    w.ok(&["volume", "backup", "create", "db", "--quiesce", "-q"]);
    let tsv = w.ok(&[
        "volume",
        "backup",
        "list",
        "db",
        "-T",
        "-H",
        "-o",
        "quiesced,status",
    ]);
    assert_eq!(tsv, "writer\tcomplete\n");
    assert_eq!(w.rows("name,running,frozen"), "writer\t1\t0\n");
    wait_written(&w, log_len(&w), "the writer to be thawed");
    w.ok(&["cell", "backup", "create", "writer", "--quiesce", "-q"]);

    // A backup killed (SIGKILL) while the writer is frozen: its guard thaws
    // the writer at once, no later command needed.
    let mut random = std::fs::File::open("/dev/urandom").unwrap();
    let mut out = std::fs::File::create(w.volume_dir().join("db/big")).unwrap();
    std::io::copy(&mut std::io::Read::take(&mut random, 96 << 20), &mut out).unwrap();
    drop(out);
    let mut child = frozen_backup(&w);
    let frozen_at = log_len(&w);
    let _ = child.kill(); // SIGKILL, by PID
    let _ = child.wait();
    wait_frozen(&w, false);
    wait_written(&w, frozen_at, "the guard to thaw the writer");

    // Its guard killed too: the cell stays frozen, `list` and a dry run say
    // so, and one apply thaws it (nobody holds it any more).
    let mut child = frozen_backup(&w);
    // The guard names itself once it runs, which may come after the freeze.
    let mut guards = Vec::new();
    wait_until(
        "the freeze guard to name itself",
        Duration::from_secs(10),
        Duration::from_millis(5),
        || {
            guards = children_named(child.id(), "cell-thaw");
            !guards.is_empty()
        },
    );
    assert_eq!(guards.len(), 1, "one guard process");
    // SAFETY: kill(2) of the guard process this test's backup started.
    unsafe { libc::kill(guards[0], libc::SIGKILL) };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(w.rows("name,running,frozen"), "writer\t1\t1\n");
    let plan = w.run(&["apply", "--dry-run"]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.contains("WARN") && plan.contains("frozen"), "{plan}");
    let frozen_at = log_len(&w);
    let out = w.run(&["apply"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("left frozen"),
        "{out:?}"
    );
    assert_eq!(w.rows("name,frozen"), "writer\t0\n");
    wait_written(&w, frozen_at, "apply to thaw the writer");

    // A corrupted archive restored with --stop: refused on its checksum before
    // anything happens, so the cell keeps running and the live data stays.
    let archive = newest_archive(&w);
    let good = std::fs::read(&archive).unwrap();
    let mut bad = good.clone();
    let i = bad.len() / 2;
    bad[i] ^= 0x40;
    std::fs::write(&archive, &bad).unwrap();
    std::fs::write(w.volume_dir().join("db/marker"), b"live").unwrap();
    let err = w.fails(&[
        "volume", "backup", "restore", "db", "--latest", "--yes", "--stop",
    ]);
    assert!(err.contains("checksum mismatch"), "{err}");
    assert_eq!(w.rows("name,running"), "writer\t1\n", "not stopped");
    assert_eq!(
        std::fs::read(w.volume_dir().join("db/marker")).unwrap(),
        b"live"
    );
    wait_written(&w, log_len(&w), "the writer to go on writing");
    let left: Vec<_> = std::fs::read_dir(w.volume_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec!["db"], "no staging left behind");
    std::fs::write(&archive, &good).unwrap();

    // Restore refuses while the cell mounts the volume; --stop stops it first.
    let err = w.fails(&["volume", "backup", "restore", "db", "--latest", "--yes"]);
    assert!(
        err.contains("running cell(s) writer mount it") && err.contains("--stop"),
        "{err}"
    );
    let err = w.fails(&["cell", "backup", "restore", "writer", "--latest", "--yes"]);
    assert!(err.contains("the cell is running"), "{err}");
    assert_eq!(w.rows("name,running"), "writer\t1\n");
    let out = w.ok(&[
        "volume", "backup", "restore", "db", "--latest", "--yes", "--stop",
    ]);
    assert!(out.contains("stopped cell(s) writer"), "{out}");
    assert_eq!(w.rows("name,running"), "writer\t0\n");
    // The restored log is the frozen copy: complete lines only.
    let log = std::fs::read_to_string(w.volume_dir().join("db/log")).unwrap();
    assert!(log.ends_with('\n') && !log.is_empty(), "{log:?}");
    w.ok(&["cell", "backup", "restore", "writer", "--latest", "--yes"]);
    w.ok(&["cell", "start", "writer"]);
    assert_eq!(w.rows("name,running"), "writer\t1\n");
}
