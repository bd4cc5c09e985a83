//! A cell cannot exhaust the host: process, memory and pty limits, the shared
//! pools, and limits the host cannot enforce, tried from inside real cells
//! through `cellctl`. Privileged tests say they were skipped when not root.

mod cellenv;

use cellenv::Env;
use std::time::{Duration, Instant};

fn privileged(test: &str) -> bool {
    cellenv::root_or_skip(test) && cellenv::busybox_or_skip(test)
}

/// One `stats -T` column of a cell.
fn stat(env: &Env, cell: &str, column: &str) -> String {
    let out = env.ok(&["stats", "-T", "-o", &format!("NAME,{column}")]);
    out.lines()
        .skip(1)
        .find_map(|l| l.strip_prefix(&format!("{cell}\t")).map(str::to_string))
        .unwrap_or_else(|| panic!("no stats row for {cell}: {out}"))
}

/// Waits (polling, up to a generous deadline) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every process forks four children, each of which does the same, down to
/// depth 6 (5,460 processes wanted); failed forks are counted, survivors sleep.
const FORK_BOMB: &str = r#"$SIG{CHLD} = 'IGNORE';
sub bomb { my $d = shift; return if $d == 0;
  for (1..4) { my $p = fork; next unless defined $p; if ($p == 0) { bomb($d - 1); sleep 1000; exit 0 } } }
bomb(6); sleep 1000;"#;

#[test]
fn a_fork_bomb_stops_at_the_process_limit_and_the_host_keeps_forking() {
    if !privileged("a_fork_bomb_stops_at_the_process_limit_and_the_host_keeps_forking") {
        return;
    }
    let mut env = Env::new("forkbomb");
    let root = env.root("a", true);
    let name = format!("fb{}", std::process::id());
    env.create(&name, &root, &["-l", "medium", "--maxproc", "64"]);
    assert_eq!(
        env.ok(&["list", "-T", "-H", "-o", "MAXPROC"]).trim(),
        "64",
        "the limit is listed"
    );
    let mut bomb = env.background(&name, &["/usr/bin/perl", "-e", FORK_BOMB]);
    // The bomb saturates: 64 tasks besides the init, and forks being refused.
    wait_until("the bomb to reach the limit", || {
        stat(&env, &name, "TASKS") == "64"
            && stat(&env, &name, "DENY_FORK").parse::<u64>().unwrap_or(0) > 0
    });
    // The host is not starved: it still forks freely.
    for _ in 0..50 {
        let st = std::process::Command::new("/bin/true").status().unwrap();
        assert!(st.success());
    }
    // The operator still gets in (entering does not fork inside the cell),
    // and the cell's own /proc agrees: the init, the 64 and this `ls`.
    let ls = env.ok(&["exec", &name, "/bin/ls", "/proc"]);
    let seen = ls
        .split_whitespace()
        .filter(|e| e.parse::<u32>().is_ok())
        .count();
    assert_eq!(seen, 66, "{ls}");
    let denied: u64 = stat(&env, &name, "DENY_FORK").parse().unwrap();
    eprintln!("fork bomb: 64 processes reached, {denied} forks refused");
    assert_eq!(stat(&env, &name, "TASKS"), "64");
    let _ = bomb.kill();
    let _ = bomb.wait();
}

#[test]
fn memory_past_the_limit_is_killed_and_the_host_is_untouched() {
    if !privileged("memory_past_the_limit_is_killed_and_the_host_is_untouched") {
        return;
    }
    let mut env = Env::new("memory");
    let root = env.root("a", true);
    let name = format!("mem{}", std::process::id());
    let other = format!("memo{}", std::process::id());
    env.create(&name, &root, &["-l", "medium", "--memory", "64M"]);
    env.create(&other, &root, &["-l", "medium"]);
    // Touch 256 MiB, one MiB at a time, reporting each step.
    let (rc, out, _) = env.sh(
        &name,
        r#"/usr/bin/perl -e '$|=1; my @a; for my $i (1..256) { push @a, "x" x (1<<20); print "$i\n" }'"#,
    );
    let reached: u64 = out.lines().last().and_then(|l| l.parse().ok()).unwrap_or(0);
    eprintln!("memory: killed with status {rc} after touching {reached} MiB of 256");
    assert_eq!(rc, 128 + 9, "the hog is killed (SIGKILL), output {out:?}");
    assert!(reached < 64, "{reached} MiB touched under a 64M limit");
    assert_eq!(stat(&env, &name, "OOM_KILLS"), "1");
    assert_eq!(stat(&env, &name, "MAXMEM"), (64u64 << 20).to_string());
    // The cell itself survives its hog, and so do its neighbour and the host.
    assert_eq!(env.sh(&name, "echo alive").1, "alive\n");
    let (rc, out, _) = env.sh(
        &other,
        r#"/usr/bin/perl -e 'my $x = "x" x (128<<20); print length($x) >> 20, "\n"'"#,
    );
    assert_eq!((rc, out.as_str()), (0, "128\n"), "the unlimited neighbour");
}

#[test]
fn limits_the_host_cannot_enforce_are_refused() {
    if !privileged("limits_the_host_cannot_enforce_are_refused") {
        return;
    }
    let mut env = Env::new("refuse");
    let root = env.root("a", false);
    // The root is a directory on the host's big file system: nothing bounds
    // what the cell writes there.
    let out = env.ctl(&[
        "create",
        "-n",
        "disk",
        "--disk",
        "32M",
        root.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the disk limit (32M) is not enforced by the storage under"),
        "{err}"
    );
    let out = env.ctl(&[
        "create",
        "-n",
        "m",
        "--memory",
        "1k",
        root.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--memory '1k': expected a size of at least 4M"),
        "{err}"
    );
    assert!(env.list_rows().is_empty(), "nothing was created");
}

#[test]
fn ptys_shm_and_per_user_pools_are_bounded_per_cell() {
    if !privileged("ptys_shm_and_per_user_pools_are_bounded_per_cell") {
        return;
    }
    let mut env = Env::new("pools");
    let root = env.root("a", true);
    let (a, b) = (
        format!("pa{}", std::process::id()),
        format!("pb{}", std::process::id()),
    );
    env.create(&a, &root, &["-l", "medium"]);
    env.create(&b, &root, &["-l", "medium"]);
    // Open ptys until the cell's devpts instance refuses: 64 by default, and
    // a full cell leaves the neighbour and the host theirs.
    let open_ptys = r#"/usr/bin/perl -e 'my @f; while (open(my $f, "+<", "/dev/ptmx")) { push @f, $f } print scalar(@f), " $!\n"'"#;
    let (_, out, _) = env.sh(&a, open_ptys);
    eprintln!("ptys: {}", out.trim());
    assert_eq!(out, "64 No space left on device\n");
    let mut held = env.background(
        &a,
        &[
            "/usr/bin/perl",
            "-e",
            r#"my @f; while (open(my $f, "+<", "/dev/ptmx")) { push @f, $f } sleep 1000"#,
        ],
    );
    assert_eq!(env.sh(&b, open_ptys).1, "64 No space left on device\n");
    assert!(std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/ptmx")
        .is_ok());
    let _ = held.kill();
    let _ = held.wait();

    // /dev/shm holds 64 MiB, /dev itself a few hundred entries.
    let (_, out, _) = env.sh(
        &a,
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=100 2>&1 | grep -o 'No space left on device'; \
         du -m /dev/shm/fill | cut -f1; rm /dev/shm/fill; \
         i=0; while touch /dev/f$i 2>/dev/null; do i=$((i+1)); [ $i -ge 1000 ] && break; done; echo $i",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "No space left on device", "{out}");
    assert!(lines[1].parse::<u32>().unwrap() <= 64, "{out}");
    assert!(lines[2].parse::<u32>().unwrap() < 256, "{out}");

    // Per-user kernel pools shared with host root are bounded by rlimits.
    let limits = env.sh(&a, "cat /proc/self/limits").1;
    for (what, value) in [
        ("Max msgqueue size", "204800"),
        ("Max pending signals", "4096"),
        ("Max locked memory", "8388608"),
    ] {
        let line = limits.lines().find(|l| l.starts_with(what)).unwrap();
        assert!(line.contains(value), "{line}");
    }
}

#[test]
fn the_pty_limit_is_configurable() {
    if !privileged("the_pty_limit_is_configurable") {
        return;
    }
    let mut env = Env::new("ptymax");
    let conf = env.dir.join("cellmgr.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("{text}CELL_PTY_MAX=8\n")).unwrap();
    let root = env.root("a", true);
    let name = format!("pm{}", std::process::id());
    env.create(&name, &root, &[]);
    let (_, out, _) = env.sh(
        &name,
        r#"/usr/bin/perl -e 'my @f; while (open(my $f, "+<", "/dev/ptmx")) { push @f, $f } print scalar(@f), "\n"'"#,
    );
    assert_eq!(out, "8\n");
}

/// A create that crashed after making its cgroup v1 groups but before
/// recording the cell leaves them behind: the next create with that id
/// removes them, also for controllers the new cell leaves alone.
#[test]
fn cgroup_v1_groups_of_a_create_that_crashed_are_swept() {
    if !privileged("cgroup_v1_groups_of_a_create_that_crashed_are_swept") {
        return;
    }
    let mut env = Env::new("v1crash");
    let root = env.root("a", false);
    let pid = std::process::id();
    let id = env.create(
        &format!("vc{pid}"),
        &root,
        &["--maxproc", "8", "--memory", "64M"],
    );
    let store = cells::kernel::linux::state::Store::new(env.dir.join("run/kernel"));
    let mut locked = store.lock().unwrap();
    let crashed = locked.table.cells.pop().unwrap();
    locked.table.next_id = id;
    locked.save().unwrap();
    drop(locked);
    if crashed.v1_groups.is_empty() {
        eprintln!("SKIPPED the sweep check: the limits are on cgroup2 on this host");
        return;
    }
    assert!(crashed.v1_groups.iter().all(|g| g.is_dir()));

    let name = format!("vn{pid}");
    assert_eq!(env.create(&name, &root, &["--maxproc", "unlimited"]), id);
    for g in &crashed.v1_groups {
        assert!(!g.exists(), "{} left behind", g.display());
    }
    env.ok(&["destroy", &name]);
    // The run's own v1 directories go with its last cell.
    for g in &crashed.v1_groups {
        assert!(!g.parent().unwrap().exists(), "{} left behind", g.display());
    }
}

/// Opens POSIX message queues (default size, about 80 KiB of uid 0's quota
/// each) until the kernel refuses; prints how many and why.
const FILL_MQUEUES: &str = r#"import ctypes, os
rt = ctypes.CDLL("librt.so.1", use_errno=True)
n = 0
while rt.mq_open(("/q%d" % n).encode(), os.O_CREAT | os.O_RDWR, 0o600, None) >= 0:
    n += 1
print(n, os.strerror(ctypes.get_errno()))"#;

#[test]
fn a_cell_cannot_take_host_roots_message_queue_bytes() {
    if !privileged("a_cell_cannot_take_host_roots_message_queue_bytes") {
        return;
    }
    let mut env = Env::new("mqueue");
    let root = env.root("a", true);
    let name = format!("mq{}", std::process::id());
    env.create(&name, &root, &["-l", "medium"]);
    // Cell root is host uid 0: its queues count against host root's bytes.
    let (_, out, err) = env.sh(&name, &format!("/usr/bin/python3 -c '{FILL_MQUEUES}'"));
    eprintln!("mqueue: the cell opened {}", out.trim());
    let opened: u32 = out
        .split_whitespace()
        .next()
        .unwrap_or("x")
        .parse()
        .unwrap_or_else(|_| panic!("{out} {err}"));
    assert!(opened <= 2, "{out}");
    // Host root still gets its own queue while the cell holds its queues.
    let qname = std::ffi::CString::new(format!("/cells-test-{}", std::process::id())).unwrap();
    // SAFETY: mq_open/mq_close/mq_unlink with a valid name; no attributes.
    unsafe {
        let q = libc::mq_open(
            qname.as_ptr(),
            libc::O_CREAT | libc::O_RDWR,
            0o600,
            std::ptr::null::<libc::mq_attr>(),
        );
        let errno = std::io::Error::last_os_error();
        assert!(q >= 0, "host root's mq_open failed: {errno}");
        libc::mq_close(q);
        libc::mq_unlink(qname.as_ptr());
    }
}
