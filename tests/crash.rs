//! Crash safety, for real: commands killed with SIGKILL at chosen and at
//! seeded random points, then one `cellmgr apply` must reach the desired
//! state and leave nothing behind. Needs root and busybox.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::world::World;
use support::{locked, root_or_skip, stopped, wait_for};

/// `cellmgr <args>` in the background, in its own session, output discarded.
fn spawn(w: &World, args: &[&str]) -> Child {
    let mut cmd = Command::new(&w.bin);
    cmd.args(args)
        .env("CELLMGR_CONF", &w.conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// The argument vector of a process, if it still exists.
fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// True when `pid` is a supervisor of `cell`.
fn is_supervisor(pid: i32, cell: &str) -> bool {
    cmdline(pid).is_some_and(|a| {
        a.get(1).map(String::as_str) == Some("supervise") && a.iter().any(|x| x == cell)
    })
}

/// Pids of the supervisors of `cell` in this world.
fn supervisors(cell: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| is_supervisor(pid, cell))
        .collect()
}

/// The supervisor of `cell` whose pid the lock file at `path` names.
fn lock_holder(path: &std::path::Path, cell: &str) -> Option<i32> {
    let pid = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    is_supervisor(pid, cell).then_some(pid)
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) of a process this test started (directly or through
    // the cellmgr it started).
    unsafe { libc::kill(pid, sig) };
}

/// `apply --dry-run` plans nothing.
fn assert_converged(w: &World, what: &str) {
    let out = w.run(&["apply", "--dry-run"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: not converged:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Item 4 of the reliability issue: `apply` killed while the supervisor it
/// started is still starting up (holding its lock, no status written yet).
/// The supervisor is held there with SIGSTOP, so the window is not a race:
/// the next apply must converge in one run, not refuse with "already
/// supervised".
#[test]
fn one_apply_recovers_from_a_kill_while_a_service_starts() {
    if !root_or_skip("one_apply_recovers_from_a_kill_while_a_service_starts") {
        return;
    }
    if support::supervised_by_init() {
        // The init takes the lock and writes the status while it serves one
        // request: no window to stop it in (kills of apply at seeded random
        // points, kill_9_at_seeded_random_points_then_one_apply_converges,
        // cover a start cut short).
        eprintln!(
            "one_apply_recovers_from_a_kill_while_a_service_starts: \
             for supervisor processes only"
        );
        return;
    }
    let w = World::new("kill-start");
    w.write_manifest(
        "svc.cell",
        "CELL_AUTOSTART=YES\nCELL_SUPERVISE_CMD=\"/bin/busybox sleep 100000\"\n",
    );
    let status = w.dir.join("run/supervise/svc.status");
    let lock = w.dir.join("run/supervise/svc.lock");
    let table = w.dir.join("run/kernel/lock");
    let mut caught = 0;
    // The window is a few hundred microseconds wide: on a loaded machine
    // whole runs of attempts miss it (0 of 40 in two full suites), so try
    // longer; the loop ends at the third catch, usually within ten tries.
    for attempt in 0..150 {
        if caught == 3 {
            break;
        }
        let _ = w.run(&["stop", "svc"]);
        let mut apply = spawn(&w, &["apply"]);
        // The supervisor takes its lock: stop it where it is, but not while
        // it holds the cell table's lock (every command would wait for it).
        let sup = wait_for(
            "the supervisor to start",
            Duration::from_secs(20),
            Duration::from_millis(1),
            || {
                // The pid from the lock the supervisor holds (it writes it
                // right after taking it), not from a scan of /proc: with a few
                // thousand processes on a shared machine a scan outlasts the
                // window.
                if !locked(&lock) || locked(&table) {
                    return None;
                }
                let pid = lock_holder(&lock, "svc")?;
                signal(pid, libc::SIGSTOP);
                wait_for(
                    "the supervisor to stop",
                    Duration::from_secs(20),
                    Duration::from_millis(1),
                    || stopped(pid).then_some(()),
                );
                if locked(&table) {
                    signal(pid, libc::SIGCONT);
                    return None;
                }
                Some(pid)
            },
        );
        let _ = apply.kill();
        let _ = apply.wait();
        let starting = !status.exists();
        if starting {
            caught += 1;
        }
        let out = w.run(&["apply"]);
        signal(sup, libc::SIGCONT);
        assert!(
            out.status.success(),
            "attempt {attempt} (supervisor still starting: {starting}): one apply did not recover:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_converged(&w, &format!("attempt {attempt}"));
        // Exactly one supervisor is left, and it runs.
        wait_for(
            "a single supervisor",
            Duration::from_secs(20),
            Duration::from_millis(10),
            || (supervisors("svc").len() == 1 && status.exists()).then_some(()),
        );
    }
    eprintln!("one_apply_recovers_from_a_kill_while_a_service_starts: {caught} kills while the supervisor was starting");
    assert!(caught > 0, "never caught a supervisor still starting");
}

/// A pid that no process has now: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// Leftovers of interrupted backups and restores, as a kill leaves them: a
/// partial archive of a process that is gone, and a restore's staging and
/// previous trees beside the data.
fn plant_leftovers(w: &World, kind_dir: &str, name: &str, beside: &Path) -> Vec<PathBuf> {
    let archives = w.dir.join("backups").join(kind_dir);
    std::fs::create_dir_all(&archives).unwrap();
    let partial = archives.join(format!(
        ".{name}_20250101T000000Z.tar.gz.{}.partial",
        dead_pid()
    ));
    std::fs::write(&partial, b"half an archive").unwrap();
    // A sidecar's atomic write cut short (src/fs: `.<file>.<16 hex>.tmp`).
    let sidecar = archives.join(format!(
        ".{name}_20250101T000000Z.meta.cbor.0123456789abcdef.tmp"
    ));
    std::fs::write(&sidecar, b"half a sidecar").unwrap();
    let mut planted = vec![partial, sidecar];
    for suffix in ["new", "prev"] {
        let tree = beside.join(format!(".{name}~restore-{suffix}"));
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/f"), b"staged").unwrap();
        planted.push(tree);
    }
    planted
}

/// Item 5: removing a cell or a volume removes everything of it but its
/// archives (supervisor files: no new cell of that name inherits the old log
/// tail; leftovers of interrupted backups and restores), and apply sweeps
/// the leftovers of every volume.
#[test]
fn removal_and_apply_leave_no_leftovers() {
    if !root_or_skip("removal_and_apply_leave_no_leftovers") {
        return;
    }
    let w = World::new("leftovers");
    w.write_manifest(
        "web.cell",
        "CELL_AUTOSTART=YES\nCELL_SUPERVISE_CMD=\"/bin/busybox sleep 100000\"\n",
    );
    w.ok(&["volume", "create", "data", "--scope", "both"]);
    w.ok(&["apply"]);
    std::fs::write(w.volume_dir().join("data/f"), b"live").unwrap();
    w.ok(&["volume", "backup", "create", "data", "-q"]);
    let supervise = w.dir.join("run/supervise");
    let run = w.dir.join("run");
    assert!(
        support::supervise_file(&run, "web", "log").exists()
            && support::supervise_file(&run, "web", "lock").exists()
    );

    // apply: the stale staging of every volume and partial archives go; the
    // data and the archive stay.
    let planted = plant_leftovers(&w, "volumes", "data", &w.volume_dir());
    let out = w.run(&["apply"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in &planted {
        assert!(!p.exists(), "{} left after apply", p.display());
    }
    assert_eq!(
        std::fs::read(w.volume_dir().join("data/f")).unwrap(),
        b"live"
    );
    assert_eq!(
        w.ok(&["volume", "backup", "list", "data", "-T", "-H", "-o", "status"]),
        "complete\n"
    );

    // Removing the cell (both scopes) removes its supervisor's files and its
    // backups' leftovers.
    let planted = plant_leftovers(&w, "overlays", "web", &w.data_dir().join("web"));
    w.ok(&["cell", "remove", "web", "--scope", "both", "--yes"]);
    let left: Vec<_> = std::fs::read_dir(&supervise)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("web."))
        .collect();
    assert!(left.is_empty(), "left in run/supervise: {left:?}");
    for p in &planted {
        assert!(!p.exists(), "{} left after cell remove", p.display());
    }

    // So does removing a volume (data and manifest); its archive stays.
    let planted = plant_leftovers(&w, "volumes", "data", &w.volume_dir());
    w.ok(&["system", "reset", "--yes"]);
    for p in &planted {
        assert!(!p.exists(), "{} left after system reset", p.display());
    }
    assert!(!w.volume_dir().join("data").exists());
    assert_eq!(
        w.ok(&["volume", "backup", "list", "data", "-T", "-H", "-o", "status"]),
        "complete\n"
    );
}

/// Kills per operation kind in one `make test` run (four kinds: at least 52
/// in all); `CELLS_CRASH_KILLS` sets the total.
fn kills_per_kind() -> u32 {
    let total: u32 = std::env::var("CELLS_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(52);
    total.div_ceil(4).max(1)
}

/// True while some process holds the `flock` on `path`.
fn held(path: &Path) -> bool {
    locked(path)
}

/// The world every crash test starts from: volume `data` (files), cell `db`
/// (mounts it read-write, reserves a port, a service), cell `web` (depends on
/// db, a service), both autostart, applied.
struct Crashing {
    w: World,
    port: u16,
    /// Mount points of the world with both cells running, after a clean apply.
    mounts: Vec<String>,
    /// The cgroup2 directory holding this world's cells.
    cgroups: PathBuf,
    cgroup_root: PathBuf,
}

fn manifest(port: u16, cell: &str, autostart: bool) -> String {
    let yes = if autostart { "YES" } else { "NO" };
    match cell {
        "db" => format!(
            "CELL_AUTOSTART={yes}\nCELL_SUPERVISE_CMD=\"/bin/busybox sleep 100000\"\n\
             CELL_VOLUME_MOUNTS=data:/srv/data\nCELL_CREATE_RESERVED_PORTS={port}\n"
        ),
        _ => format!(
            "CELL_AUTOSTART={yes}\nCELL_SUPERVISE_CMD=\"/bin/busybox sleep 100000\"\n\
             CELL_DEPENDS_ON=db\n"
        ),
    }
}

/// Writes `files` small files (`<i>` holding `tag` and `i`) into `dir`, replacing what is there.
fn fill(dir: &Path, tag: &str, files: usize) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    for i in 0..files {
        let sub = dir.join(format!("d{}", i % 8));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            sub.join(format!("f{i}")),
            format!("{tag} {i}\n").repeat(200),
        )
        .unwrap();
    }
}

/// Every file below `dir` with its content, sorted.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

impl Crashing {
    fn new(tag: &str, port: u16) -> Crashing {
        let w = World::new(tag);
        w.ok(&["volume", "create", "data", "--scope", "both"]);
        fill(&w.volume_dir().join("data"), "new", 300);
        w.write_manifest("db.cell", &manifest(port, "db", true));
        w.write_manifest("web.cell", &manifest(port, "web", true));
        w.ok(&["apply"]);
        let mut mounts = w.mounts();
        mounts.sort();
        // The run directory's cgroup: the parent of a cell init's cgroup.
        let init = cells::kernel::linux::state::Store::new(w.dir.join("run/kernel"))
            .lock()
            .unwrap()
            .table
            .cells[0]
            .clone();
        let cgroups = init.cgroup.parent().unwrap().to_path_buf();
        let cgroup_root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .iter()
            .map(PathBuf::from)
            .find(|r| cgroups.starts_with(r))
            .unwrap();
        Crashing {
            w,
            port,
            mounts,
            cgroups,
            cgroup_root,
        }
    }

    /// Runs `args` in the background and SIGKILLs it after `delay`; true when
    /// it was still running then (a kill that counts).
    fn kill_after(&self, args: &[&str], delay: Duration) -> bool {
        let mut child = spawn(&self.w, args);
        // The delay is the random kill point, not a wait for anything.
        std::thread::sleep(delay);
        let running = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let _ = child.wait();
        running
    }

    /// How long `args` takes when not killed (the range kill points come from).
    fn duration(&self, args: &[&str]) -> Duration {
        let t = std::time::Instant::now();
        let out = self.w.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    }

    /// One apply must converge, and leave exactly what a clean run leaves:
    /// `running` cells (db, web), nothing frozen, their mounts and no other,
    /// one cgroup each, the reserved port in the kernel's port map only while
    /// db runs, no stray process, no lock held, no leftovers of backups.
    fn recover(&self, what: &str, running: &[&str]) {
        let w = &self.w;
        let out = w.run(&["apply"]);
        assert!(
            out.status.success(),
            "{what}: one apply did not recover:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_converged(w, what);
        let rows = w.rows("name,running,frozen");
        let want: String = ["db", "web"]
            .iter()
            .map(|c| format!("{c}\t{}\t0\n", u8::from(running.contains(c))))
            .collect();
        assert_eq!(rows, want, "{what}");
        let mut mounts = w.mounts();
        mounts.sort();
        if running.len() == 2 {
            assert_eq!(mounts, self.mounts, "{what}: mounts");
        } else {
            assert!(
                mounts.iter().all(|m| !m.contains("/web/")),
                "{what}: {mounts:?}"
            );
        }
        let cgroups = std::fs::read_dir(&self.cgroups)
            .map(|d| {
                d.filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir())
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(
            cgroups,
            running.len(),
            "{what}: cell cgroups in {}",
            self.cgroups.display()
        );
        self.check_ports(what, running.contains(&"db"));
        self.check_processes(what, running.len());
        // A supervisor takes the table lock for a moment now and then (to
        // restart its service): a lock left behind stays held, a moment
        // passes.
        for lock in [w.data_dir().join(".lock"), w.dir.join("run/kernel/lock")] {
            support::wait_until(
                &format!("{what}: {} to be free", lock.display()),
                Duration::from_secs(20),
                Duration::from_millis(5),
                || !held(&lock),
            );
        }
        let leftovers: Vec<String> = [w.volume_dir(), w.dir.join("backups/volumes")]
            .iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{what}: leftovers {leftovers:?}");
    }

    /// The installation's port map holds db's port exactly while db runs.
    fn check_ports(&self, what: &str, db: bool) {
        use cells::kernel::linux::{bpf, state::Store};
        let table = Store::new(self.w.dir.join("run/kernel"))
            .lock()
            .unwrap()
            .table;
        let ports = match table.bind_guard {
            Some(ids) => bpf::Guard::open(&self.cgroup_root, &ids)
                .unwrap()
                .map(|g| g.ports().unwrap())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let want = if db { vec![self.port] } else { vec![] };
        assert_eq!(ports, want, "{what}: reserved ports in the kernel");
        if db {
            assert_ne!(
                support::world::bind_as(65534, self.port),
                0,
                "{what}: port not guarded"
            );
        }
    }

    /// No process of this world but a cell init and a supervisor per running
    /// cell (or an init that supervises).
    fn check_processes(&self, what: &str, cells: usize) {
        let conf = format!("CELLMGR_CONF={}", self.w.conf.display());
        let mut supervisors = 0;
        let mut stray = Vec::new();
        for pid in std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        {
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            if !env.split(|&b| b == 0).any(|v| v == conf.as_bytes()) {
                continue;
            }
            let Some(args) = cmdline(pid) else { continue };
            match args.get(1).map(String::as_str) {
                Some("supervise") => supervisors += 1,
                _ if args.iter().any(|a| a == "--cell-init") => {}
                _ => stray.push(format!("{pid}: {}", args.join(" "))),
            }
        }
        assert!(stray.is_empty(), "{what}: stray processes {stray:?}");
        // Supervising inits hold their locks (CELLS_TEST_SUPERVISOR=init):
        // then no supervisor process is left either.
        let run = self.w.dir.join("run");
        let inits = if support::supervised_by_init() {
            ["db", "web"]
                .iter()
                .filter(|c| locked(&support::supervise_file(&run, c, "lock")))
                .count()
        } else {
            0
        };
        assert_eq!(
            (supervisors, inits),
            if support::supervised_by_init() {
                (0, cells)
            } else {
                (cells, 0)
            },
            "{what}: supervisors (processes, inits); cellmgr says:\n{}",
            self.w.rows("name,running,supervisor,supervisor_pid,health")
        );
    }
}

/// Runs one kind of crash until it has killed a live process `kills_per_kind`
/// times: `round` sets up and returns the command and what to check right
/// after the kill; every round ends with [`Crashing::recover`].
fn crash_rounds(
    tag: &str,
    stream: u64,
    port: u16,
    mut round: impl FnMut(&Crashing, u32) -> (Vec<&'static str>, Vec<&'static str>),
    mut after_kill: impl FnMut(&Crashing, u32),
) {
    let c = Crashing::new(tag, port);
    let (mut rng, seed) = support::Rng::seeded("CELLS_CRASH_SEED", stream);
    let (mut killed, mut finished) = (0, 0);
    let mut span = Duration::ZERO;
    let mut n = 0;
    while killed < kills_per_kind() {
        assert!(
            n < kills_per_kind() * 4 + 2,
            "{tag}: too few kills hit a running command: {killed} killed, {finished} finished, span {span:?}"
        );
        let (args, running) = round(&c, n);
        if n < 2 {
            // The first runs are not killed: they measure the range of kill
            // points (two, as rounds may alternate).
            span = span.max(c.duration(&args));
        } else {
            let delay = Duration::from_micros(rng.below(span.as_micros() as u64 * 11 / 10));
            // The range follows how long runs take now: a hit late in it
            // widens it, a kill point past the end narrows it.
            if c.kill_after(&args, delay) {
                killed += 1;
                span = span.max(delay * 5 / 4);
            } else {
                finished += 1;
                span = (span * 17 / 20).max(Duration::from_millis(2));
            }
        }
        after_kill(&c, n);
        c.recover(&format!("{tag} round {n} (seed {seed})"), &running);
        n += 1;
    }
    eprintln!(
        "{tag}: {killed} kills of a running command, {finished} runs finished before their kill point, span {span:?}, seed {seed}"
    );
}

/// The kill-point tests run side by side: most of their time is spent
/// waiting for starts to prove themselves, not on the CPU.
#[test]
fn kill_9_at_seeded_random_points_then_one_apply_converges() {
    if !root_or_skip("kill_9_at_seeded_random_points_then_one_apply_converges") {
        return;
    }
    std::thread::scope(|s| {
        for kind in [crash_apply, crash_stop, crash_backup, crash_restore] {
            s.spawn(kind);
        }
    });
}

fn crash_apply() {
    // Each round flips web, so every apply has work: start or stop it.
    crash_rounds(
        "crash-apply",
        1,
        support::port(4),
        |c, n| {
            let up = n % 2 == 1;
            c.w.write_manifest("web.cell", &manifest(c.port, "web", up));
            let running = if up { vec!["db", "web"] } else { vec!["db"] };
            (vec!["apply"], running)
        },
        |_, _| {},
    );
}

fn crash_stop() {
    crash_rounds(
        "crash-stop",
        2,
        support::port(5),
        |_, n| {
            let which = if n % 2 == 0 { "db" } else { "web" };
            (vec!["stop", which], vec!["db", "web"])
        },
        |_, _| {},
    );
}

/// A killed quiesced backup: its guard thaws the cell at once.
fn crash_backup() {
    crash_rounds(
        "crash-backup",
        3,
        support::port(6),
        |_, _| {
            (
                vec!["volume", "backup", "create", "data", "--quiesce", "-q"],
                vec!["db", "web"],
            )
        },
        |c, _| {
            // The guard thaws db at once, before any other command runs.
            support::wait_until(
                "the killed backup's cell to thaw",
                Duration::from_secs(20),
                Duration::from_millis(5),
                || c.w.rows("name,frozen") == "db\t0\nweb\t0\n",
            );
            // Every archive listed verifies: a killed one is never listed.
            let out = c.w.run(&["volume", "backup", "verify", "data", "-q"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        },
    );
}

/// A killed restore leaves the old data or the new, never a mix.
fn crash_restore() {
    let new = std::cell::RefCell::new(Vec::new());
    let old = std::cell::RefCell::new(Vec::new());
    crash_rounds(
        "crash-restore",
        4,
        support::port(7),
        |c, n| {
            let data = c.w.volume_dir().join("data");
            if n == 0 {
                c.w.ok(&["volume", "backup", "create", "data", "--quiesce", "-q"]);
                *new.borrow_mut() = tree(&data);
            }
            // Live data that differs from the archive (db's service never
            // touches it).
            fill(&data, &format!("old{n}"), 300);
            *old.borrow_mut() = tree(&data);
            (
                vec![
                    "volume", "backup", "restore", "data", "--latest", "--yes", "--stop", "-q",
                ],
                vec!["db", "web"],
            )
        },
        |c, n| {
            let now = tree(&c.w.volume_dir().join("data"));
            assert!(
                now == *old.borrow() || now == *new.borrow(),
                "round {n}: the volume holds neither the old nor the restored data ({} files)",
                now.len()
            );
        },
    );
}
