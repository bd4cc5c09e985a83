//! Limits through the control plane: disk limits on a cell's own file
//! system, limits as manifest keys that apply acts on, and a control plane
//! that still stops and removes cells when a tenant has filled the disk.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::root_or_skip;
use support::world::World;

/// Runs a shell command in a cell: (exit code, stdout).
fn sh(w: &World, cell: &str, script: &str) -> (i32, String) {
    let out = w.run(&["cell", "shell", cell, "--", "/bin/sh", "-c", script]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// One `cellctl stats -T` column of a cell.
fn ctl_stat(w: &World, cell: &str, column: &str) -> String {
    let out = w
        .command(&["ctl", "stats", "-T", "-H", "-o", &format!("NAME,{column}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{cell}\t")).map(str::to_string))
        .unwrap_or_else(|| panic!("no stats row for {cell}: {text}"))
}

/// Writes up to 64 MiB into `path` in the cell; prints the bytes that made
/// it and whether the disk said it was full.
const FILL_64M: &str = "dd if=/dev/zero of=$F bs=1M count=64 2>/tmp/dd.err; \
    grep -q 'No space left on device' /tmp/dd.err && echo ENOSPC; wc -c < $F";

#[test]
fn a_cell_past_its_disk_limit_gets_enospc_and_nothing_else_is_touched() {
    if !root_or_skip("a_cell_past_its_disk_limit_gets_enospc_and_nothing_else_is_touched") {
        return;
    }
    let w = World::new("disk");
    w.ok(&[
        "cell",
        "create",
        "small",
        "--disk",
        "32M",
        "--autostart",
        "YES",
    ]);
    w.ok(&["cell", "create", "big", "--autostart", "YES"]);
    w.ok(&["apply"]);
    let (rc, out) = sh(&w, "small", &format!("F=/srv/fill; {FILL_64M}"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"ENOSPC"), "rc {rc}: {out}");
    let written: u64 = lines[1].trim().parse().unwrap();
    eprintln!("disk: {written} bytes written of 64 MiB before ENOSPC under a 32M limit");
    assert!(written < 32 << 20, "{written}");
    assert!(written > 24 << 20, "most of the limit is usable: {written}");
    // The cell's own file system is full, not the host's: the neighbour
    // writes its 64 MiB and the control plane keeps working.
    let (_, out) = sh(&w, "big", &format!("F=/srv/fill; {FILL_64M}"));
    assert_eq!(out.trim(), (64u64 << 20).to_string());
    w.ok(&["cell", "set", "big", "--cmd", "sleep 1000"]);
    // Volumes: read-only only, for the limit bounds what the cell writes.
    w.ok(&["volume", "create", "data"]);
    let err = w.fails(&["cell", "set", "small", "--mount", "data:/srv/data"]);
    assert!(
        err.contains("data:/srv/data:rw is read-write, but the cell has a disk limit (32M from CELL_CREATE_DISK)"),
        "{err}"
    );
    w.ok(&["cell", "set", "small", "--mount", "data:/srv/data:ro"]);
    w.ok(&["apply"]);
    assert_eq!(
        sh(&w, "small", "ls -d /srv/data /srv/fill").1,
        "/srv/data\n/srv/fill\n"
    );
    let used: u64 = w
        .rows("name,disk_used")
        .lines()
        .find_map(|l| l.strip_prefix("small\t").and_then(|v| v.parse().ok()))
        .unwrap();
    assert!(used >= written && used <= 32 << 20, "disk_used {used}");
    assert_eq!(w.rows("name,create_disk"), "big\tunlimited\nsmall\t32M\n");
    assert_eq!(ctl_stat(&w, "small", "MAXDISK"), (32u64 << 20).to_string());
    // The writable layer is on the cell's image, next to its runtime.
    let image = w.data_dir().join("small/disk.img");
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 32 << 20);
    // The full cell still stops, and its runtime goes with its image.
    w.ok(&["cell", "stop", "small"]);
    w.ok(&["cell", "remove", "small", "--scope", "runtime", "--yes"]);
    assert!(!image.exists());
    assert!(
        w.mounts().iter().all(|m| !m.contains("/small/")),
        "{:?}",
        w.mounts()
    );
}

#[test]
fn changing_a_limit_is_a_plan_change_apply_acts_on() {
    if !root_or_skip("changing_a_limit_is_a_plan_change_apply_acts_on") {
        return;
    }
    let w = World::new("limitplan");
    w.ok(&[
        "cell",
        "create",
        "app",
        "--autostart",
        "YES",
        "--cmd",
        "sleep 1000",
        "--maxproc",
        "16",
        "--disk",
        "32M",
    ]);
    w.ok(&["apply"]);
    assert_eq!(ctl_stat(&w, "app", "MAXPROC"), "16");
    assert_eq!(sh(&w, "app", "echo kept > /srv/data; echo ok").1, "ok\n");
    assert_eq!(w.run(&["apply", "--dry-run"]).status.code(), Some(0));

    // A changed key is drift: apply recreates the kernel cell with it.
    w.ok(&[
        "cell",
        "set",
        "app",
        "--maxproc",
        "32",
        "--memory",
        "256M",
        "--disk",
        "64M",
    ]);
    let dry = w.run(&["apply", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(2));
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("RESTART  cell app: policy changed (profile, ports, rlimits or limits)"),
        "{plan}"
    );
    w.ok(&["apply"]);
    assert_eq!(ctl_stat(&w, "app", "MAXPROC"), "32");
    assert_eq!(ctl_stat(&w, "app", "MAXMEM"), (256u64 << 20).to_string());
    // The disk grew and kept the cell's data.
    let (_, out) = sh(&w, "app", "cat /srv/data; df -k / | tail -1");
    assert!(out.starts_with("kept\n"), "{out}");
    let size_kib: u64 = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(size_kib > 48 << 10, "{out}");

    // So is a changed default, for a cell that does not set its own.
    w.ok(&["cell", "set", "app", "--clear-limits"]);
    w.ok(&["apply"]);
    assert_eq!(ctl_stat(&w, "app", "MAXPROC"), "1024");
    assert_eq!(
        sh(&w, "app", "cat /srv/data").1,
        "kept\n",
        "moved off the image"
    );
    assert!(!w.data_dir().join("app/disk.img").exists());
    let conf = std::fs::read_to_string(&w.conf).unwrap();
    std::fs::write(&w.conf, format!("{conf}CELL_DEFAULT_MAXPROC=48\n")).unwrap();
    assert_eq!(w.run(&["apply", "--dry-run"]).status.code(), Some(2));
    w.ok(&["apply"]);
    assert_eq!(ctl_stat(&w, "app", "MAXPROC"), "48");
    assert_eq!(
        w.rows("name,create_maxproc,create_memory,create_cpu,create_disk"),
        "app\t48\tunlimited\tunlimited\tunlimited\n"
    );
    // A bad value names the flag and the form, and changes nothing.
    let err = w.fails(&["cell", "set", "app", "--memory", "lots"]);
    assert!(
        err.contains("--memory: CELL_CREATE_MEMORY='lots': expected a size"),
        "{err}"
    );
}

/// A small ext4 file system mounted over a directory of a test's world (its
/// data directory); on drop it is unmounted and the world's tree removed,
/// which the world could not do while it was mounted.
struct LoopFs {
    image: PathBuf,
    mount: PathBuf,
    world: PathBuf,
}

impl LoopFs {
    fn mount(world: &Path, image: &Path, at: &Path, size: &str) -> LoopFs {
        let run = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
        run(Command::new("truncate").args(["-s", size]).arg(image));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(at));
        LoopFs {
            image: image.to_path_buf(),
            mount: at.to_path_buf(),
            world: world.to_path_buf(),
        }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.mount).status();
        let _ = std::fs::remove_file(&self.image);
        if unmounted.is_ok_and(|s| s.success()) {
            let _ = std::fs::remove_dir_all(&self.world);
        }
    }
}

/// The world and the file system under its data directory, dropped in this
/// order (cells stopped and removed before the file system goes).
struct FullDisk {
    world: World,
    _fs: LoopFs,
}

#[test]
fn stop_destroy_and_remove_work_on_a_full_disk() {
    if !root_or_skip("stop_destroy_and_remove_work_on_a_full_disk") {
        return;
    }
    let world = World::new("fulldisk");
    let image = world.dir.join("data.img");
    let fs = LoopFs::mount(&world.dir, &image, &world.data_dir(), "64M");
    let t = FullDisk { world, _fs: fs };
    let w = &t.world;
    w.ok(&[
        "cell",
        "create",
        "hog",
        "--autostart",
        "YES",
        "--cmd",
        "sleep 1000",
    ]);
    w.ok(&[
        "cell",
        "create",
        "calm",
        "--autostart",
        "YES",
        "--cmd",
        "sleep 1000",
    ]);
    w.ok(&["apply"]);
    // Cell root is host uid 0: it takes the blocks reserved for root too.
    let (_, out) = sh(
        w,
        "hog",
        "dd if=/dev/zero of=/fill bs=1M count=100 2>/dev/null; \
         dd if=/dev/zero of=/fill2 bs=4k count=10000 2>/dev/null; \
         i=0; while echo x > /f$i 2>/dev/null; do i=$((i+1)); done; df -k / | tail -1",
    );
    let avail: u64 = out.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(avail, 0, "the data directory's file system is full: {out}");
    // What needs space fails, naming the cell and the path.
    let err = w.fails(&["cell", "create", "late", "--scope", "both"]);
    assert!(
        err.contains("rendering cell late")
            && err.contains(&w.data_dir().join("late").display().to_string())
            && err.contains("No space left on device"),
        "{err}"
    );
    // What frees space works: the lock, create and destroy of a kernel cell
    // rooted on the full disk, stop, remove.
    assert!(w.rows("name,running").contains("hog\t1"));
    let root = w.data_dir().join("hog/root");
    let ctl = |args: &[&str]| {
        let out = w.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ctl(&["ctl", "create", "-n", "bare", root.to_str().unwrap()]);
    ctl(&["ctl", "destroy", "bare"]);
    w.ok(&["cell", "stop", "calm"]);
    w.ok(&["cell", "stop", "hog"]);
    w.ok(&["cell", "remove", "hog", "--scope", "runtime", "--yes"]);
    // With the space back, the neighbour starts again.
    w.ok(&["cell", "start", "calm"]);
    assert_eq!(sh(w, "calm", "echo fine").1, "fine\n");
}

/// A move of the writable layer onto a new disk that was interrupted after
/// the new image was mounted leaves the old layer in place: the next start
/// begins again and the cell keeps its data.
#[test]
fn an_interrupted_move_onto_a_disk_converges() {
    if !root_or_skip("an_interrupted_move_onto_a_disk_converges") {
        return;
    }
    let w = World::new("diskcrash");
    w.ok(&[
        "cell",
        "create",
        "app",
        "--autostart",
        "YES",
        "--cmd",
        "sleep 1000",
    ]);
    w.ok(&["apply"]);
    assert_eq!(sh(&w, "app", "echo kept > /srv/data; echo ok").1, "ok\n");
    w.ok(&["cell", "stop", "app"]);
    // The crash: a half-made image, mounted where the disk goes.
    let dir = w.data_dir().join("app");
    let half = dir.join(".disk.img.new");
    let run = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
    run(Command::new("truncate").args(["-s", "32M"]).arg(&half));
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&half));
    std::fs::create_dir_all(dir.join("disk")).unwrap();
    run(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&half)
        .arg(dir.join("disk")));
    std::fs::write(dir.join("disk/partial"), "junk").unwrap();

    w.ok(&["cell", "set", "app", "--disk", "32M"]);
    w.ok(&["apply"]);
    assert_eq!(
        sh(&w, "app", "cat /srv/data; df -k / | tail -1 | wc -l").1,
        "kept\n1\n"
    );
    assert!(!half.exists());
    assert!(!dir.join("overlay").exists(), "the old layer went");
    assert!(
        !dir.join("disk/partial").exists(),
        "the half-made image went"
    );
    let mounts: Vec<String> = w
        .mounts()
        .into_iter()
        .filter(|m| m.ends_with("/app/disk"))
        .collect();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
}
