//! The cell life cycle through the real binary, for real: root composed from the
//! host's base, kernel cell, supervised service, volumes, reserved ports, stop,
//! prune, orphans and crash leftovers. Needs root and busybox.

mod support;

use support::world::{bind_as, http_get, World};
use support::{busybox, fresh_dir, port, root_or_skip};

fn setup_web(w: &World, name: &str, http: u16, spare: u16) {
    w.ok(&["volume", "create", "www", "--scope", "both"]);
    std::fs::write(
        w.volume_dir().join("www/index.html"),
        "hello from the volume\n",
    )
    .unwrap();
    w.ok(&["volume", "create", "data"]);
    let cmd = format!("busybox httpd -f -p 127.0.0.1:{http} -h /srv/www");
    let ports = format!("{http},{spare}");
    w.ok(&[
        "cell",
        "create",
        name,
        "--cmd",
        &cmd,
        "--reserved-ports",
        &ports,
        "--mount",
        "www:/srv/www:ro",
        "--mount",
        "data:/srv/data",
        "--healthcheck",
        "test -f /srv/www/index.html",
        "--profile",
        "medium",
    ]);
}

#[test]
fn full_lifecycle() {
    if !root_or_skip("full_lifecycle") {
        return;
    }
    let w = World::new("life");
    let (http, spare) = (port(0), port(1));
    setup_web(&w, "web", http, spare);
    assert_eq!(
        w.rows("name,state,running,rendered"),
        "web\tdeclared\t0\t0\n"
    );

    // Start with --scope both: autostart becomes YES, the cell is managed and runs.
    let out = w.ok(&["cell", "start", "web", "--scope", "both"]);
    assert!(out.starts_with("started cell web (cid "), "{out}");
    assert!(w.read_manifest("web.cell").contains("CELL_AUTOSTART=YES"));
    assert_eq!(
        w.rows("name,state,running,rendered,health,supervisor"),
        "web\tmanaged\t1\t1\tok\trunning\n"
    );
    let row = w.rows("cid,procs,supervisor_pid,root");
    let f: Vec<&str> = row.trim_end().split('\t').collect();
    assert!(
        f[0].parse::<u64>().is_ok() && f[2].parse::<u64>().is_ok(),
        "{row}"
    );
    assert_eq!(f[3], w.data_dir().join("web/root").display().to_string());

    // The service serves the read-only volume.
    assert_eq!(http_get(http).as_deref(), Some("hello from the volume\n"));
    assert_eq!(
        w.volume_rows("name,state,mounted,used_by"),
        "data\tmanaged\t1\tweb\nwww\tmanaged\t1\tweb\n"
    );
    // Read-only stays read-only; the rw volume takes writes; the base is the host's.
    let out = w.run(&["cell", "shell", "web", "/bin/sh", "-c", "touch /srv/www/x"]);
    assert_ne!(out.status.code(), Some(0));
    w.ok(&[
        "cell",
        "shell",
        "web",
        "/bin/sh",
        "-c",
        "echo kept > /srv/data/f && touch /usr/x 2>/dev/null; test ! -e /usr/x",
    ]);
    assert_eq!(
        std::fs::read_to_string(w.volume_dir().join("data/f")).unwrap(),
        "kept\n"
    );
    let hn = w.ok(&[
        "shell",
        "web",
        "/bin/sh",
        "-c",
        "cat /etc/hostname; grep -c root /etc/passwd",
    ]);
    assert_eq!(hn, "web\n1\n");
    // The reserved port is the cell's: a host user cannot bind the spare one.
    assert_ne!(
        bind_as(65534, spare),
        0,
        "host non-root bound a reserved port"
    );
    // Starting again is a no-op.
    assert!(w.ok(&["start", "web"]).contains("already running"));

    // Stop with --scope both: parked, nothing running, nothing mounted.
    assert_eq!(
        w.ok(&["cell", "stop", "web", "--scope", "both"]),
        "stopped cell web\n"
    );
    assert_eq!(w.rows("name,state,running,cid"), "web\tparked\t0\t\n");
    assert!(w.mounts().is_empty(), "{:?}", w.mounts());
    assert_eq!(w.volume_rows("name,mounted"), "data\t0\nwww\t0\n");
    assert!(http_get_once(http).is_none());
    // The overlay kept what the cell wrote into its own tree.
    assert!(w.data_dir().join("web/overlay/upper/etc/hostname").exists());

    // Removing the runtime deletes the overlay: confirmation first.
    let err = w.fails(&["cell", "remove", "web", "--scope", "runtime"]);
    assert!(err.contains("pass --yes"), "{err}");
    assert!(w.data_dir().join("web/cell.conf").exists());
    assert_eq!(
        w.ok(&["cell", "remove", "web", "--scope", "runtime", "--yes"]),
        "removed cell web runtime\n"
    );
    assert!(!w.data_dir().join("web").exists());
    assert_eq!(w.rows("name,state"), "web\tdeclared\n");
    // The volume data is untouched.
    assert!(w.volume_dir().join("data/f").exists());
}

fn http_get_once(port: u16) -> Option<()> {
    std::net::TcpStream::connect(("127.0.0.1", port))
        .ok()
        .map(|_| ())
}

#[test]
fn orphans_are_found_and_pruned() {
    if !root_or_skip("orphans_are_found_and_pruned") {
        return;
    }
    let w = World::new("orphan");
    w.ok(&["cell", "create", "keep", "--cmd", "sleep 1000"]);
    w.ok(&[
        "cell",
        "create",
        "gone",
        "--cmd",
        "sleep 1000",
        "--autostart",
        "YES",
    ]);
    w.ok(&["cell", "start", "--all"]);
    // start --all follows autostart: only `gone` runs.
    assert_eq!(
        w.rows("name,state,running"),
        "gone\tmanaged\t1\nkeep\tdeclared\t0\n"
    );
    // The manifest disappears behind cellmgr's back: the runtime is an orphan.
    std::fs::remove_file(w.manifest_dir().join("gone.cell")).unwrap();
    assert_eq!(
        w.rows("name,state,running,manifest,rendered"),
        "gone\torphaned\t1\t0\t1\nkeep\tdeclared\t0\t1\t0\n"
    );
    assert!(w
        .fails(&["cell", "remove", "--orphans"])
        .contains("does not support --scope desired"));
    assert!(w
        .fails(&["cell", "remove", "--orphans", "--scope", "runtime"])
        .contains("pass --yes"));
    assert_eq!(w.rows("name,running"), "gone\t1\nkeep\t0\n");
    assert_eq!(
        w.ok(&["cell", "remove", "--orphans", "--scope", "runtime", "--yes"]),
        "removed cell gone runtime\n"
    );
    assert_eq!(w.rows("name,state"), "keep\tdeclared\n");
    assert!(w.mounts().is_empty());
    assert!(!w.data_dir().join("gone").exists());
}

/// Bind-mounts the host's /tmp on `dir` (made first), as no cellmgr run did.
fn bind_tmp_on(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let st = std::process::Command::new("mount")
        .args(["--bind", "/tmp"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn crashed_supervisor_and_leftover_mounts_are_recovered() {
    if !root_or_skip("crashed_supervisor_and_leftover_mounts_are_recovered") {
        return;
    }
    let w = World::new("crash");
    w.ok(&["volume", "create", "v"]);
    w.ok(&[
        "cell",
        "create",
        "svc",
        "--cmd",
        "sleep 1000",
        "--mount",
        "v:/srv/v",
        "--autostart",
        "YES",
    ]);
    w.ok(&["start", "svc"]);
    let pid: i32 = w.rows("supervisor_pid").trim().parse().unwrap();
    // The supervisor dies hard (its service with it).
    // SAFETY: signalling a process this test started through cellmgr.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // Once it is gone, a read tells the truth: the kernel cell is there, no
    // supervisor (a supervising init was the cell: it is gone with it).
    support::wait_until(
        "the killed supervisor to be gone",
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(10),
        || !std::path::Path::new(&format!("/proc/{pid}")).exists(),
    );
    let running = if support::supervised_by_init() { 0 } else { 1 };
    assert_eq!(
        w.rows("name,running,supervisor_pid,supervisor"),
        format!("svc\t{running}\t\t\n")
    );
    // start converges: the service is supervised again.
    assert!(w.ok(&["start", "svc"]).starts_with("started cell svc"));
    assert!(w.rows("supervisor_pid").trim().parse::<u64>().is_ok());
    w.ok(&["stop", "svc"]);
    assert!(w.mounts().is_empty());

    // A run that died after mounting (simulated: mounts recorded, no kernel
    // cell): the next start cleans up and starts cleanly; stop leaves nothing.
    let root = w.data_dir().join("svc/root");
    bind_tmp_on(&root.join("srv/v"));
    assert_eq!(w.mounts().len(), 1);
    w.ok(&["start", "svc"]);
    assert_eq!(w.rows("name,state,running"), "svc\tmanaged\t1\n");
    // restart: a new kernel cell, the same mounts.
    let cid = w.rows("cid");
    w.ok(&["restart", "svc"]);
    assert_ne!(w.rows("cid"), cid);
    assert!(
        w.mounts().iter().any(|m| m.ends_with("/svc/root/srv/v")),
        "{:?}",
        w.mounts()
    );
    w.ok(&["stop", "svc"]);
    assert!(w.mounts().is_empty(), "{:?}", w.mounts());

    // A mount no record names below a running cell's root (an operator's):
    // the recorded ones go first, the root does not while it is there, and
    // the stop finds it in the mount table and takes it down too, at once.
    w.ok(&["start", "svc"]);
    bind_tmp_on(&root.join("srv/extra"));
    let out = w.run(&["stop", "svc"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !said.contains("lazily"), "{said}");
    assert!(w.mounts().is_empty(), "{:?}", w.mounts());
}

#[test]
fn scope_both_converges_and_dependencies_start_first() {
    if !root_or_skip("scope_both_converges_and_dependencies_start_first") {
        return;
    }
    let w = World::new("deps");
    w.ok(&["cell", "create", "db", "--cmd", "sleep 1000"]);
    w.ok(&[
        "cell",
        "create",
        "app",
        "--cmd",
        "sleep 1000",
        "--depends-on",
        "db",
    ]);
    let out = w.ok(&["start", "app"]);
    assert_eq!(
        out.lines()
            .map(|l| l.split(" (").next().unwrap())
            .collect::<Vec<_>>(),
        ["started cell db", "started cell app"]
    );
    w.ok(&["stop", "app"]);
    w.ok(&["stop", "db"]);
    // set --scope both with autostart YES renders and starts; NO stops.
    w.ok(&["cell", "set", "db", "--autostart", "YES", "--scope", "both"]);
    assert_eq!(
        w.rows("name,state,running"),
        "app\tparked\t0\ndb\tmanaged\t1\n"
    );
    w.ok(&["cell", "set", "db", "--autostart", "NO", "--scope", "both"]);
    assert_eq!(
        w.rows("name,state,running"),
        "app\tparked\t0\ndb\tparked\t0\n"
    );
    // A failing health check is reported (exit 1) and recorded; the cell runs.
    w.ok(&["cell", "set", "db", "--healthcheck", "false"]);
    let out = w.run(&["start", "db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(w
        .rows("name,running,health")
        .starts_with("app\t0\t\ndb\t1\tfailing: exit 1"));
    // system reset removes everything, runtime included.
    w.ok(&["system", "reset", "--yes"]);
    assert_eq!(w.rows("name"), "");
    assert!(w.mounts().is_empty());
}

#[test]
fn directory_base_and_guarded_host_mounts() {
    if !root_or_skip("directory_base_and_guarded_host_mounts") {
        return;
    }
    // A base tree of one static busybox; host mounts allowed.
    let base = fresh_dir("cmt-base", "dirbase");
    std::fs::create_dir_all(base.join("bin")).unwrap();
    std::fs::copy(busybox().unwrap(), base.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", base.join("bin/sh")).unwrap();
    let shared = base.with_extension("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("f"), "from the host\n").unwrap();
    let w = World::with_conf(
        "dirbase",
        &format!("CELL_BASE={}\nCELL_ALLOW_HOST_MOUNTS=YES\n", base.display()),
    );
    let mount = format!("host:{}:/mnt/shared:ro", shared.display());
    w.ok(&[
        "cell",
        "create",
        "mini",
        "--cmd",
        "/bin/busybox sleep 1000",
        "--mount",
        &mount,
    ]);
    w.ok(&["start", "mini"]);
    let out = w.ok(&[
        "shell",
        "mini",
        "/bin/sh",
        "-c",
        "ls /bin; cat /mnt/shared/f; echo x > /etc/new && cat /etc/new",
    ]);
    assert_eq!(out, "busybox\nsh\nfrom the host\nx\n");
    let out = w.run(&["shell", "mini", "/bin/sh", "-c", "echo y > /mnt/shared/g"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a read-only host mount took a write"
    );
    w.ok(&["stop", "mini"]);
    // The base is shared and read-only: the cell's writes went to its overlay.
    assert!(!base.join("etc/new").exists());
    assert!(w.data_dir().join("mini/overlay/upper/etc/new").exists());
    assert!(!shared.join("g").exists());
    drop(w);
    std::fs::remove_dir_all(&base).unwrap();
    std::fs::remove_dir_all(&shared).unwrap();
}

/// Pids of host processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// Item 9 of the reliability issue: a health check the cell makes block (a
/// FIFO nobody writes) never holds the lock: another command goes on at once,
/// the check ends within its budget, and nothing it started is left.
#[test]
fn a_blocking_health_check_never_holds_the_lock() {
    if !root_or_skip("a_blocking_health_check_never_holds_the_lock") {
        return;
    }
    let w = World::new("hc-lock");
    let fifo = format!("/tmp/hc-{}.fifo", std::process::id());
    w.write_manifest(
        "blocked.cell",
        &format!(
            "CELL_SUPERVISE_CMD=\"/bin/busybox sleep 100000\"\n\
             CELL_HEALTHCHECK_CMD=\"mkfifo {fifo} 2>/dev/null; cat {fifo}\"\n\
             CELL_HEALTHCHECK_TIMEOUT=1s\nCELL_HEALTHCHECK_INTERVAL=1s\nCELL_HEALTHCHECK_RETRIES=2\n"
        ),
    );
    w.write_manifest(
        "other.cell",
        "CELL_SUPERVISE_CMD=\"/bin/busybox sleep 100000\"\n",
    );
    w.ok(&["start", "other"]);
    for verb in [&["start", "blocked"][..], &["apply", "blocked"]] {
        if verb[0] == "apply" {
            w.ok(&["stop", "blocked"]);
            w.ok(&["cell", "set", "blocked", "--autostart", "YES"]);
        }
        let started = std::time::Instant::now();
        let mut slow = w.command(&["mgr"]).args(verb).spawn().unwrap();
        support::wait_until(
            "the health check to block",
            std::time::Duration::from_secs(20),
            std::time::Duration::from_millis(10),
            || !processes_with(&format!("cat {fifo}")).is_empty(),
        );
        // Another command does not wait for it (it would give up after 2 s).
        let out = w.run_env(&["stop", "other"], &[("CELLMGR_LOCK_WAIT", "2")]);
        assert!(
            out.status.success(),
            "{verb:?}: stop of another cell: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        w.ok(&["start", "other"]);
        let status = slow.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(1),
            "{verb:?}: a failing check is a failure"
        );
        // Bounded by the check's budget (a hang detector, generous on purpose).
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{verb:?}: took {:?}",
            started.elapsed()
        );
        // Each timed-out check went with everything it started: no more than
        // the one running now.
        assert!(
            processes_with(&format!("cat {fifo}")).len() <= 1,
            "{verb:?}: the checks' children outlived them"
        );
        assert!(w.rows("name,health").contains("blocked\tfailing:"));
    }
}

/// The upgrade that makes the cell's init the supervisor (`CELL_SUPERVISOR`
/// unset: the default): services already supervised by supervisor processes
/// keep running under them; status reads them, stop and restart end those
/// processes, and the next start supervises in the init.
#[test]
fn supervisor_processes_outlive_the_change_to_supervising_inits() {
    if !root_or_skip("supervisor_processes_outlive_the_change_to_supervising_inits") {
        return;
    }
    let w = World::with_conf("upgrade", "CELL_SUPERVISOR=process\n");
    for cell in ["a", "b"] {
        w.ok(&[
            "cell",
            "create",
            cell,
            "--cmd",
            "sleep 1000",
            "--autostart",
            "YES",
        ]);
    }
    w.ok(&["apply", "--all"]);
    let run = w.dir.join("run");
    let supervisor = |cell: &str| -> u32 {
        w.ok(&["cell", "show", cell, "-T", "-H", "-o", "supervisor_pid"])
            .trim()
            .parse()
            .unwrap()
    };
    // Where each cell's supervision lock is held: (process, init).
    let locks = |cell: &str| {
        let process = run.join("supervise").join(format!("{cell}.lock"));
        let init = run.join("supervise").join(cell).join("lock");
        (support::locked(&process), support::locked(&init))
    };
    let before = [supervisor("a"), supervisor("b")];
    assert_eq!((locks("a"), locks("b")), ((true, false), (true, false)));

    // The new default: cellmgr.conf no longer names the placement.
    let conf = std::fs::read_to_string(&w.conf).unwrap();
    support::write_trusted(&w.conf, conf.replace("CELL_SUPERVISOR=process\n", ""));
    let cfg = cells::config::Config::load_from(&w.conf).unwrap();
    assert!(cfg.supervise_in_init);
    // Nothing changed for a running cell: apply and status see the same
    // supervisors.
    let again = w.ok(&["apply", "--all"]);
    assert!(again.lines().all(|l| l.starts_with("NOOP ")), "{again}");
    assert_eq!(
        w.rows("name,running,supervisor,supervisor_pid"),
        format!(
            "a\t1\trunning\t{}\nb\t1\trunning\t{}\n",
            before[0], before[1]
        )
    );
    // A supervisor releases its lock as it exits: stop returns then.
    let ends = |pid: u32| {
        support::wait_until(
            &format!("supervisor {pid} to exit"),
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(10),
            || {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map_or(true, |st| st.contains(") Z "))
            },
        )
    };

    // Stop ends the supervisor process and its service.
    w.ok(&["stop", "a"]);
    ends(before[0]);
    assert_eq!(locks("a"), (false, false));
    assert_eq!(
        w.ok(&["cell", "show", "a", "-T", "-H", "-o", "running,supervisor"]),
        "0\t\n"
    );
    // Restart ends it too and supervises in the init from then on.
    w.ok(&["restart", "b"]);
    ends(before[1]);
    assert_eq!(locks("b"), (false, true));
    assert_ne!(supervisor("b"), before[1]);
    // Started again, a supervises in its init as well.
    w.ok(&["start", "a"]);
    assert_eq!(locks("a"), (false, true));
    assert_eq!(
        w.rows("name,running,supervisor"),
        "a\t1\trunning\nb\t1\trunning\n"
    );
    w.ok(&["stop", "a"]);
    w.ok(&["stop", "b"]);
    assert_eq!((locks("a"), locks("b")), ((false, false), (false, false)));
}
