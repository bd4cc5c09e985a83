//! The cell contract (ARCHITECTURE §3) as tests against the host's kernel
//! backend, driven through the real `cellctl` (and `cellmgr`, `cellui` where a
//! route into a cell goes through them). Privileged tests print that they were
//! skipped when not run as root. The boundary against a hostile root inside a
//! cell (terminals, sessions, ports, keyrings, namespaces, sockets) is in
//! `conformance/boundary.rs`.

#[path = "conformance/boundary.rs"]
mod boundary;
mod support;
#[path = "conformance/userns.rs"]
mod userns;

use std::time::Duration;
use support::ctl as cellenv;
use support::ctl::{host_bind, port, wait_until, Env, PERL_BIND};

const EPERM: i32 = libc::EPERM;

fn privileged(test: &str) -> bool {
    cellenv::root_or_skip(test) && cellenv::busybox_or_skip(test)
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["create", "destroy", "exec", "list", "stats"] {
        let out = std::process::Command::new(cellenv::BIN)
            .args(["ctl", sub, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sub} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: cellctl"));
    }
}

#[test]
fn usage_errors_exit_1_and_name_the_flag() {
    let env = Env::new("usage");
    let out = env.ctl(&["create", "-n", "x", "-r", "80,80", "/"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-r") && err.contains("twice"), "{err}");
    let out = env.ctl(&["create", "-n", "bad/name", "/"]);
    assert_eq!(out.status.code(), Some(1));
    let out = env.ctl(&["list", "-H"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn create_exec_list_destroy_leave_nothing_behind() {
    if !privileged("create_exec_list_destroy_leave_nothing_behind") {
        return;
    }
    let mut env = Env::new("cycle");
    let root = env.root("a", false);
    let name = format!("cyc{}", std::process::id());
    let id = env.create(&name, &root, &[]);

    let (rc, out, _) = env.sh(&name, "hostname; ls /; ls /dev; echo /proc/[0-9]*");
    assert_eq!(rc, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], name, "UTS namespace: the host name is the cell's");
    // The root is the given directory: the host's /etc, /usr, /sys are absent.
    for absent in ["etc", "usr", "sys", "kmsg"] {
        assert!(
            !lines.contains(&absent),
            "{absent} visible in the cell: {out}"
        );
    }
    for present in [
        "bin", "dev", "proc", "tmp", "null", "zero", "urandom", "pts", "shm",
    ] {
        assert!(
            lines.contains(&present),
            "{present} missing in the cell: {out}"
        );
    }
    // Only the cell's init and the shell are in the cell's /proc.
    assert_eq!(*lines.last().unwrap(), "/proc/1 /proc/2", "{out}");

    let rows = env.list_rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], id.to_string());
    assert_eq!(rows[0][1], name);
    assert_eq!(rows[0][5], root.to_str().unwrap());
    let profile = cellenv::test_profile().unwrap_or("high".into());
    assert_eq!(rows[0][9], profile, "default profile (or the run's)");

    let store = cells::kernel::linux::state::Store::new(env.dir.join("run/kernel"));
    let cgroup = store.lock().unwrap().table.cells[0].cgroup.clone();
    assert!(cgroup.join("cgroup.procs").exists(), "{}", cgroup.display());

    env.ok(&["destroy", &name]);
    assert!(env.list_rows().is_empty());
    assert_eq!(env.ok(&["list"]), "no cells\n");
    assert!(!cgroup.exists(), "cgroup {} left behind", cgroup.display());
    let left = cellenv::host_processes_mentioning(env.dir.to_str().unwrap());
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn exec_exit_status_is_the_commands() {
    if !privileged("exec_exit_status_is_the_commands") {
        return;
    }
    let mut env = Env::new("status");
    let root = env.root("a", false);
    let name = format!("st{}", std::process::id());
    let id = env.create(&name, &root, &["-l", "medium"]);
    assert_eq!(env.sh(&name, "exit 7").0, 7);
    assert_eq!(env.sh(&id.to_string(), "true").0, 0);
    assert_eq!(env.sh(&name, "kill -9 $$").0, 128 + 9);
    // A missing command fails in cellctl itself: exit 1, naming the cell.
    let out = env.ctl(&["exec", &name, "/nonexistent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&name));
    // stdin and stdout are the caller's.
    let mut child = env
        .command()
        .args(["exec", &name, "/bin/cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"through\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through\n");
}

/// A command starts with every signal at its default and none blocked,
/// whatever its caller, or whoever created the cell, ignored.
#[test]
fn exec_starts_with_default_signal_dispositions() {
    if !privileged("exec_starts_with_default_signal_dispositions") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let mut env = Env::new("sigs");
    let root = env.root("a", false);
    let name = format!("sig{}", std::process::id());
    let ignoring = |mut cmd: std::process::Command| {
        // SAFETY: signal(2) in the child before exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                Ok(())
            });
        }
        cmd.output().unwrap()
    };
    let mut create = env.command();
    create.args(["create", "-n", &name, root.to_str().unwrap()]);
    assert!(ignoring(create).status.success());
    let mut exec = env.command();
    exec.args(["exec", &name, "/bin/cat", "/proc/self/status"]);
    let out = String::from_utf8(ignoring(exec).stdout).unwrap();
    for field in ["SigIgn", "SigBlk"] {
        let line = out.lines().find(|l| l.starts_with(field)).unwrap();
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
}

#[test]
fn spawn_returns_a_child_the_caller_owns() {
    if !privileged("spawn_returns_a_child_the_caller_owns") {
        return;
    }
    use cells::kernel::{ExecSpec, Stdio, Target};
    let mut env = Env::new("spawn");
    let root = env.root("a", false);
    let name = format!("sp{}", std::process::id());
    env.create(&name, &root, &["-l", "medium", "-N", "512"]);
    let kernel = cells::kernel::host(&env.config()).unwrap();
    let target = Target::Name(name.clone());
    let spec = ExecSpec {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            "hostname; echo $GREETING; exit 3".into(),
        ],
        env: vec![("GREETING".into(), "hello".into())],
        ..ExecSpec::default()
    };
    let child = kernel
        .spawn(&target, &spec, [Stdio::Null, Stdio::Piped, Stdio::Piped])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{name}\nhello\n")
    );
    assert_eq!(out.status.code(), Some(3));
    // The caller can kill what it spawned; afterwards the cell is empty again.
    let sleeper = ExecSpec {
        argv: vec!["sleep".into(), "1000".into()],
        ..ExecSpec::default()
    };
    let mut child = kernel
        .spawn(&target, &sleeper, [Stdio::Null, Stdio::Null, Stdio::Null])
        .unwrap();
    assert_eq!(kernel.find(&target).unwrap().unwrap().procs, 1);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(kernel.find(&target).unwrap().unwrap().procs, 0);
    // Credentials and stored limits, as supervise uses them.
    let dropped = ExecSpec {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            "id -u; id -g; ulimit -n; grep CapEff /proc/self/status".into(),
        ],
        uid: Some(65534),
        gid: Some(65533),
        apply_rlimits: true,
        ..ExecSpec::default()
    };
    let out = kernel
        .spawn(&target, &dropped, [Stdio::Null, Stdio::Piped, Stdio::Piped])
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "65534\n65533\n512\nCapEff:\t0000000000000000\n"
    );
    kernel.destroy(&target).unwrap();
}

#[test]
fn exec_without_a_command_starts_a_shell_with_the_cell_prompt() {
    if !privileged("exec_without_a_command_starts_a_shell_with_the_cell_prompt") {
        return;
    }
    let mut env = Env::new("shell");
    let root = env.root("a", false);
    let name = format!("shl{}", std::process::id());
    env.create(&name, &root, &[]);
    let mut child = env
        .command()
        .args(["exec", &name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo \"prompt=$PS1\"; exit 4\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("prompt=[{name}]# ")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn targets_names_ids_and_uniqueness() {
    if !privileged("targets_names_ids_and_uniqueness") {
        return;
    }
    let mut env = Env::new("ids");
    let root = env.root("a", false);
    let pid = std::process::id();
    let (a, b) = (format!("ida{pid}"), format!("idb{pid}"));
    let p = port(0, 0);
    let first = env.create(&a, &root, &["-r", &p.to_string()]);
    assert_eq!(first, 1, "ids start at 1");
    // Names and ports are unique; the error names the owner.
    let out = env.ctl(&["create", "-n", &a, root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let out = env.ctl(&[
        "create",
        "-n",
        &b,
        "-r",
        &p.to_string(),
        root.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&a) && err.contains(&p.to_string()), "{err}");
    env.ok(&["destroy", "1"]);
    // Ids are never reused; a number is an id only.
    assert_eq!(env.create(&b, &root, &[]), 2);
    let out = env.ctl(&["destroy", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cell 1 not found"));
}

#[test]
fn cells_cannot_see_signal_or_trace_each_other_or_the_host() {
    if !privileged("cells_cannot_see_signal_or_trace_each_other_or_the_host") {
        return;
    }
    let mut env = Env::new("cross");
    let pid = std::process::id();
    let (a, b) = (format!("xa{pid}"), format!("xb{pid}"));
    let root_a = env.root("a", true);
    let root_b = env.root("b", false);
    // The low profile keeps the most power; even it must not cross.
    env.create(&a, &root_a, &["-l", "low"]);
    env.create(&b, &root_b, &["-l", "high"]);
    let mut sleeper = env.background(&b, &["/bin/sleep", "1000"]);
    let victim = sleeper.id();
    wait_until("b's sleeper to run", Duration::from_secs(20), || {
        env.procs(&b) == 1
    });

    // See: a's process list holds only its own init and the command.
    let (rc, out, _) = env.sh(&a, "ps -o pid,args");
    assert_eq!(rc, 0);
    assert!(
        !out.contains("sleep 1000"),
        "b's process visible in a: {out}"
    );
    assert!(
        !out.contains("cargo") && !out.contains("conformance"),
        "host visible: {out}"
    );
    // Signal: neither b's process nor this test process can be named.
    for target in [victim, pid] {
        let (rc, _, _) = env.sh(&a, &format!("kill -9 {target}"));
        assert_ne!(rc, 0, "kill {target} from cell a succeeded");
        let (rc, _, _) = env.sh(&a, &format!("test -e /proc/{target}/status"));
        assert_ne!(rc, 0, "/proc/{target} visible in a");
    }
    // Trace: PTRACE_ATTACH (16) to the host pid finds no such process.
    if cfg!(target_arch = "x86_64") {
        let script = format!("syscall(101, 16, {victim}, 0, 0) == -1 or exit 0; print $!+0");
        let (rc, out, err) = env.sh(&a, &format!("/usr/bin/perl -e '{script}'"));
        assert_eq!(rc, 0, "{err}");
        assert_eq!(out.trim(), libc::ESRCH.to_string(), "ptrace of {victim}");
    }
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "b's sleeper was killed"
    );
    // b sees its own process.
    let (_, out, _) = env.sh(&b, "ps -o args");
    assert!(out.contains("sleep 1000"), "{out}");
    env.sh(&b, "kill -9 -1");
    sleeper.wait().unwrap();
}

fn perl_bind(env: &Env, cell: &str, v6: bool, udp: bool, port: u16) -> String {
    let out = env.ctl(&[
        "exec",
        cell,
        "/usr/bin/perl",
        "-e",
        PERL_BIND,
        if v6 { "6" } else { "4" },
        if udp { "udp" } else { "tcp" },
        &port.to_string(),
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn reserved_ports_belong_to_their_cell_alone() {
    if !privileged("reserved_ports_belong_to_their_cell_alone") {
        return;
    }
    let mut env = Env::new("ports");
    let pid = std::process::id();
    let (owner, other) = (format!("po{pid}"), format!("pt{pid}"));
    let root_o = env.root("o", true);
    let root_t = env.root("t", true);
    let (p, q, free) = (port(1, 0), port(1, 1), port(1, 2));
    env.create(&owner, &root_o, &["-l", "low", "-r", &format!("{p},{q}")]);
    env.create(&other, &root_t, &["-l", "low"]);

    for v6 in [false, true] {
        for udp in [false, true] {
            let what = format!(
                "{} {}",
                if v6 { "IPv6" } else { "IPv4" },
                if udp { "UDP" } else { "TCP" }
            );
            assert_eq!(
                perl_bind(&env, &owner, v6, udp, p),
                "bound",
                "owner, {what}"
            );
            let denied = perl_bind(&env, &other, v6, udp, p);
            assert!(
                denied.contains("not permitted"),
                "other cell bound {p} ({what}): {denied}"
            );
            assert_eq!(
                host_bind(65534, v6, udp, q),
                EPERM,
                "host uid 65534 bound {q} ({what})"
            );
            assert_eq!(
                host_bind(0, v6, udp, q),
                0,
                "host root is denied {q} ({what})"
            );
            // Unreserved ports are anyone's.
            assert_eq!(perl_bind(&env, &other, v6, udp, free), "bound", "{what}");
            assert_eq!(host_bind(65534, v6, udp, free), 0, "{what}");
        }
    }
    let stats = env.ok(&["stats", "-T", "-H", "-o", "NAME,DENY_BIND"]);
    let denied: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{owner}\t")))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(denied, 8, "denied binds of the owner's ports: {stats}");

    env.ok(&["destroy", &owner]);
    // Nothing that denies binds outlives the cell.
    for v6 in [false, true] {
        for udp in [false, true] {
            assert_eq!(host_bind(65534, v6, udp, p), 0);
        }
    }
    assert_eq!(perl_bind(&env, &other, false, false, p), "bound");
}

/// More port-reserving cells than one cgroup attach point takes programs
/// (64): the installation's single program pair serves them all, enforces each
/// reservation, counts denials per cell and is detached with the last cell.
#[test]
fn one_program_pair_guards_more_cells_than_an_attach_point_takes() {
    if !privileged("one_program_pair_guards_more_cells_than_an_attach_point_takes") {
        return;
    }
    use cells::kernel::linux::{bpf, cgroup, state::Store, LinuxKernel};
    use cells::kernel::{CellSpec, Kernel, Profile, Rlimits, Target};
    const CELLS: u16 = 70;
    let pid = std::process::id();
    // Clear of the ports `cellenv::port` hands out, below the ephemeral range.
    let base = 30_000 + (pid % 30) as u16 * 90;
    let mut env = Env::new("many");
    let root = env.root("m", true);
    // Through the library: 70 cellctl runs each way would dominate the test.
    let kernel = LinuxKernel::open(&env.config())
        .unwrap()
        .with_init_program(cellenv::BIN.into());
    let names: Vec<String> = (0..CELLS).map(|k| format!("m{k}x{pid}")).collect();
    for (k, name) in names.iter().enumerate() {
        kernel
            .create(&CellSpec {
                name: name.clone(),
                root: root.clone(),
                profile: Profile::Low,
                ports: vec![base + k as u16],
                rlimits: Rlimits::default(),
                limits: Default::default(),
                ephemeral: false,
                ids: None,
            })
            .unwrap_or_else(|e| panic!("creating cell {k} of {CELLS}: {e:#}"));
    }

    let cgroup_root = cgroup::detect(env.config().cgroup_root.as_deref()).unwrap();
    let store = Store::new(env.dir.join("run/kernel"));
    let ids = store
        .lock()
        .unwrap()
        .table
        .bind_guard
        .expect("no guard recorded");
    let attached = |attach_type| bpf::attached_programs(&cgroup_root, attach_type).unwrap();
    assert!(attached(bpf::BPF_CGROUP_INET4_BIND).contains(&ids.prog4));
    assert!(attached(bpf::BPF_CGROUP_INET6_BIND).contains(&ids.prog6));

    let (owner, other, p) = (&names[40], &names[41], base + 40);
    for v6 in [false, true] {
        assert_eq!(perl_bind(&env, owner, v6, false, p), "bound", "v6 {v6}");
        let denied = perl_bind(&env, other, v6, false, p);
        assert!(
            denied.contains("not permitted"),
            "other cell bound {p}: {denied}"
        );
        assert_eq!(
            host_bind(65534, v6, true, p),
            EPERM,
            "host uid 65534, v6 {v6}"
        );
        assert_eq!(host_bind(0, v6, true, p), 0, "host root, v6 {v6}");
    }
    let denies = |name: &str| {
        let stats = kernel.stats().unwrap();
        let cell = stats.iter().find(|s| s.info.name == name).unwrap();
        cell.denies.bind
    };
    assert_eq!(denies(owner), 4, "denied binds of {owner}'s port");
    assert_eq!(denies(other), 0, "denied binds of {other}'s port");

    for name in &names {
        kernel.destroy(&Target::Name(name.clone())).unwrap();
    }
    assert_eq!(store.lock().unwrap().table.bind_guard, None);
    assert!(!attached(bpf::BPF_CGROUP_INET4_BIND).contains(&ids.prog4));
    assert!(!attached(bpf::BPF_CGROUP_INET6_BIND).contains(&ids.prog6));
    assert_eq!(host_bind(65534, false, false, p), 0);
}

/// A create that crashed after reserving its ports but before recording the
/// cell leaves them in the port map: the next create with that id sweeps them.
#[test]
fn ports_of_a_create_that_crashed_are_swept() {
    if !privileged("ports_of_a_create_that_crashed_are_swept") {
        return;
    }
    let mut env = Env::new("crashed");
    let root = env.root("a", false);
    let pid = std::process::id();
    let (kept, lost) = (port(4, 0), port(4, 1));
    env.create(&format!("ck{pid}"), &root, &["-r", &kept.to_string()]);
    let id = env.create(&format!("cl{pid}"), &root, &["-r", &lost.to_string()]);
    // Forget the second cell as that crash would: its init and cgroup remain.
    let store = cells::kernel::linux::state::Store::new(env.dir.join("run/kernel"));
    let mut locked = store.lock().unwrap();
    let crashed = locked.table.cells.pop().unwrap();
    locked.table.next_id = id;
    locked.save().unwrap();
    drop(locked);
    assert_eq!(host_bind(65534, false, false, lost), EPERM, "stale entry");

    assert_eq!(env.create(&format!("cn{pid}"), &root, &[]), id);
    assert_eq!(host_bind(65534, false, false, lost), 0, "stale entry kept");
    assert_eq!(
        host_bind(65534, false, false, kept),
        EPERM,
        "live entry swept"
    );
    assert!(
        !cells::kernel::linux::cgroup::procs(&crashed.cgroup)
            .unwrap()
            .contains(&crashed.init_pid),
        "the crashed create's init still runs"
    );
}

/// Recorded programs that are not attached (a crash between recording and
/// attaching them, a detach by hand) are forgotten, and the next create
/// attaches a new set that guards every recorded cell's ports again.
#[test]
fn a_lost_program_set_is_replaced() {
    if !privileged("a_lost_program_set_is_replaced") {
        return;
    }
    use cells::kernel::linux::{bpf, cgroup, state::BindGuardIds, state::Store};
    let mut env = Env::new("lost");
    let root = env.root("a", false);
    let pid = std::process::id();
    let (p, q, first_port) = (port(5, 0), port(5, 1), port(5, 2));
    let store = Store::new(env.dir.join("run/kernel"));
    let cgroup_root = cgroup::detect(env.config().cgroup_root.as_deref()).unwrap();
    let guard = || store.lock().unwrap().table.bind_guard.unwrap();
    // The first cell that reserves ports attaches a set.
    env.create(&format!("lp{pid}"), &root, &["-r", &first_port.to_string()]);
    let attached = guard();
    // A crash between recording a set and attaching it: nothing attached.
    bpf::detach(&cgroup_root, &attached).unwrap();
    let never_attached = BindGuardIds {
        version: bpf::PROGRAMS_VERSION,
        prog4: u32::MAX,
        prog6: u32::MAX,
        post4: u32::MAX,
        post6: u32::MAX,
        sockopt: u32::MAX,
        ports_map: u32::MAX,
    };
    let mut locked = store.lock().unwrap();
    locked.table.bind_guard = Some(never_attached);
    locked.save().unwrap();
    drop(locked);

    env.create(&format!("lq{pid}"), &root, &["-r", &p.to_string()]);
    let first = guard();
    assert_ne!(first, never_attached);
    assert_eq!(host_bind(65534, false, false, p), EPERM, "new cell's port");
    bpf::detach(&cgroup_root, &first).unwrap();
    assert_eq!(host_bind(65534, false, false, p), 0, "detached by hand");

    env.create(&format!("lr{pid}"), &root, &["-r", &q.to_string()]);
    let second = guard();
    assert_ne!(second.prog4, first.prog4);
    assert_eq!(
        host_bind(65534, false, false, p),
        EPERM,
        "recorded cell's port"
    );
    assert_eq!(host_bind(65534, false, false, q), EPERM, "new cell's port");
}

/// A cell recorded by a version that gave cells without ports no sharing
/// rule of their own relies on the installation's programs: they stay
/// attached while it lives, are attached again if lost, and go with it.
#[test]
fn a_cell_of_an_older_version_keeps_the_installations_programs() {
    let test = "a_cell_of_an_older_version_keeps_the_installations_programs";
    if !privileged(test) {
        return;
    }
    use cells::kernel::linux::{bpf, cgroup, state::Store};
    let mut env = Env::new("oldcell");
    let root = env.root("a", false);
    let pid = std::process::id();
    let store = Store::new(env.dir.join("run/kernel"));
    let cgroup_root = cgroup::detect(env.config().cgroup_root.as_deref()).unwrap();
    let guard = || store.lock().unwrap().table.bind_guard;
    let attached = || bpf::attached_programs(&cgroup_root, bpf::BPF_CGROUP_INET4_BIND).unwrap();
    let (old, with_port, newer) = (format!("oo{pid}"), format!("op{pid}"), format!("on{pid}"));
    env.create(&old, &root, &[]);
    // As an older version recorded it.
    let mut locked = store.lock().unwrap();
    locked.table.cells[0].own_sharing_rule = false;
    locked.save().unwrap();
    drop(locked);

    env.create(&with_port, &root, &["-r", &port(6, 0).to_string()]);
    let ids = guard().expect("no programs for a port-reserving cell");
    env.ok(&["destroy", &with_port]);
    assert_eq!(
        guard(),
        Some(ids),
        "programs forgotten under the older cell"
    );
    assert!(
        attached().contains(&ids.prog4),
        "programs detached under the older cell"
    );

    // Lost (a detach by hand): the next create attaches a set again, ports or not.
    bpf::detach(&cgroup_root, &ids).unwrap();
    env.create(&newer, &root, &[]);
    let again = guard().expect("no programs attached again for the older cell");
    assert!(attached().contains(&again.prog4));

    env.ok(&["destroy", &old]);
    assert_eq!(guard(), None, "programs kept after the older cell");
    assert!(!attached().contains(&again.prog4));
    env.ok(&["destroy", &newer]);
}

/// An installation deleted with a port-reserving cell in it leaves its port
/// programs attached at the hierarchy root with nobody to detach them. The
/// next installation that attaches programs detaches them, once no process
/// of the deleted one runs (its cell's port stays refused while the cell
/// lives), and leaves a live installation's programs alone.
#[test]
fn a_deleted_installations_port_programs_are_detached_by_the_next() {
    let test = "a_deleted_installations_port_programs_are_detached_by_the_next";
    if !privileged(test) {
        return;
    }
    use cells::kernel::linux::{bpf, cgroup, state::Store};
    let pid = std::process::id();
    let (gone_port, live_port, next_port) = (port(0, 1), port(0, 2), port(0, 3));
    let mut live = Env::new("orphan-live");
    let root = live.root("o", false);
    // Its directory goes below: nothing will be left for its drop to destroy.
    let gone = std::mem::ManuallyDrop::new(Env::new("orphan-gone"));
    let next = Env::new("orphan-next");
    let cgroup_root = cgroup::detect(live.config().cgroup_root.as_deref()).unwrap();
    let guard_of = |env: &Env| {
        Store::new(env.dir.join("run/kernel"))
            .lock()
            .unwrap()
            .table
            .bind_guard
            .expect("no programs recorded")
    };
    let attached = || bpf::attached_programs(&cgroup_root, bpf::BPF_CGROUP_INET4_BIND).unwrap();

    live.create(&format!("ol{pid}"), &root, &["-r", &live_port.to_string()]);
    let gone_name = format!("og{pid}");
    gone.create(&gone_name, &root, &["-r", &gone_port.to_string()]);
    let (live_guard, gone_guard) = (guard_of(&live), guard_of(&gone));
    let gone_cell = gone.record(&gone_name);
    assert_eq!(host_bind(65534, false, false, gone_port), EPERM);

    // Deleted while its cell runs: the cell's port stays refused.
    std::fs::remove_dir_all(&gone.dir).unwrap();
    let next_cell = |k: u16| {
        let name = format!("on{k}x{pid}");
        next.create(&name, &root, &["-r", &next_port.to_string()]);
        next.ok(&["destroy", &name]);
    };
    next_cell(1);
    assert!(
        attached().contains(&gone_guard.prog4),
        "a running cell's programs detached"
    );
    assert_eq!(
        host_bind(65534, false, false, gone_port),
        EPERM,
        "running cell's port"
    );

    // Its cell ends: the next create that attaches programs detaches them.
    // SAFETY: kill(2) on the init's pid, which the cell table names.
    unsafe { libc::kill(gone_cell.init_pid, libc::SIGKILL) };
    let run_cgroup = gone_cell.cgroup.parent().unwrap().to_path_buf();
    let events = run_cgroup.join("cgroup.events");
    wait_until(
        "the deleted installation's cell to end",
        Duration::from_secs(10),
        || std::fs::read_to_string(&events).is_ok_and(|e| e.contains("populated 0")),
    );
    next_cell(2);
    let now = attached();
    assert!(
        !now.contains(&gone_guard.prog4),
        "the deleted installation's programs stay"
    );
    assert_eq!(
        host_bind(65534, false, false, gone_port),
        0,
        "its port is still refused"
    );
    assert!(
        now.contains(&live_guard.prog4),
        "a live installation's programs were detached"
    );
    assert_eq!(
        host_bind(65534, false, false, live_port),
        EPERM,
        "live cell's port"
    );

    // What the deleted installation left in the cgroup trees.
    for group in gone_cell.v1_groups.iter().chain([&gone_cell.cgroup]) {
        cgroup::remove_tree(group.parent().unwrap()).unwrap();
    }
}

/// Each check: (what, script that must fail in the cell).
const HOST_ADMINISTRATION: &[(&str, &str)] = &[
    ("mount", "mount -t tmpfs none /tmp"),
    ("mknod", "mknod /tmp/sda b 8 0"),
    // busybox date reports a failed set but exits 0; the time set is "now".
    (
        "set the clock",
        "! date -s \"$(date +%Y.%m.%d-%H:%M:%S)\" 2>&1 | grep -q \"can't\"",
    ),
    (
        "write /proc/sys",
        "echo cellhost > /proc/sys/kernel/hostname",
    ),
    ("read the kernel message buffer", "dmesg"),
    ("open /dev/kmsg", "cat /dev/kmsg"),
    (
        "open a raw socket",
        "/usr/bin/perl -MSocket -e 'socket(my $s, AF_INET, SOCK_RAW, 1) or exit 1'",
    ),
    ("unshare", "unshare -m true"),
];

#[test]
fn medium_and_high_deny_host_administration() {
    if !privileged("medium_and_high_deny_host_administration") {
        return;
    }
    let mut env = Env::new("harden");
    let root = env.root("a", true);
    let pid = std::process::id();
    for profile in ["medium", "high"] {
        let name = format!("h{profile}{pid}");
        env.create(&name, &root, &["-l", profile]);
        // Ordinary work as cell root still succeeds.
        let (rc, _, err) = env.sh(
            &name,
            "echo ok > /tmp/f && cat /tmp/f && chown 1:1 /tmp/f && rm /tmp/f",
        );
        assert_eq!(rc, 0, "{profile}: {err}");
        for (what, script) in HOST_ADMINISTRATION {
            let (rc, out, err) = env.sh(&name, script);
            assert_ne!(rc, 0, "{profile}: cell root could {what}: {out}{err}");
        }
        env.ok(&["destroy", &name]);
    }
    // Low keeps NetBSD's low-profile powers that do not cross cells, e.g. raw
    // sockets: proves the checks above fail because of the profile.
    let name = format!("hlow{pid}");
    env.create(&name, &root, &["-l", "low"]);
    let (rc, _, err) = env.sh(&name, HOST_ADMINISTRATION[6].1);
    assert_eq!(rc, 0, "low: raw socket: {err}");
    for (what, script) in [
        HOST_ADMINISTRATION[0],
        HOST_ADMINISTRATION[4],
        HOST_ADMINISTRATION[5],
    ] {
        let (rc, _, _) = env.sh(&name, script);
        assert_ne!(rc, 0, "low: cell root could {what}");
    }
}

#[test]
fn destroy_is_refused_while_members_run() {
    if !privileged("destroy_is_refused_while_members_run") {
        return;
    }
    let mut env = Env::new("busy");
    let root = env.root("a", false);
    let name = format!("busy{}", std::process::id());
    env.create(&name, &root, &[]);
    let mut sleeper = env.background(&name, &["/bin/sleep", "1000"]);
    wait_until("the member to run", Duration::from_secs(20), || {
        env.procs(&name) == 1
    });
    let out = env.ctl(&["destroy", &name]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&name) && err.contains("busy") && err.contains("1 member"),
        "{err}"
    );
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "destroy killed a member"
    );
    assert_eq!(env.list_rows()[0][3], "1", "PROCS counts the member");
    env.sh(&name, "kill -9 -1");
    sleeper.wait().unwrap();
    env.ok(&["destroy", &name]);
}

/// Kills the init of the first cell in `env`'s table and waits until it died.
fn kill_first_init(env: &Env) {
    let store = cells::kernel::linux::state::Store::new(env.dir.join("run/kernel"));
    let init = store.lock().unwrap().table.cells[0].init_pid;
    // SAFETY: kills the init of a cell the test created.
    unsafe { libc::kill(init, libc::SIGKILL) };
    wait_until("the init to die", Duration::from_secs(20), || {
        !std::path::Path::new(&format!("/proc/{init}/cgroup")).exists()
            || std::fs::read_to_string(format!("/proc/{init}/stat"))
                .map_or(true, |s| s.contains(") Z"))
    });
}

#[test]
fn a_cell_whose_init_died_is_reported_and_removed() {
    if !privileged("a_cell_whose_init_died_is_reported_and_removed") {
        return;
    }
    let mut env = Env::new("dead");
    let root = env.root("a", false);
    let name = format!("dead{}", std::process::id());
    let p = port(3, 0);
    env.create(&name, &root, &["-r", &p.to_string()]);
    kill_first_init(&env);
    let out = env.ctl(&["list", "-T", "-H"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "the dead cell is gone"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&name) && err.contains("died"),
        "not reported: {err}"
    );
    // Its port reservation went with it.
    assert_eq!(host_bind(65534, false, false, p), 0);
    // The name is free again; the id is not reused.
    assert_eq!(env.create(&name, &root, &[]), 2);
}

/// Destroying a cell whose init died removes what is left of it, port
/// reservation and all, and says nothing more: the destroy is the removal.
#[test]
fn destroying_a_cell_whose_init_died_removes_it() {
    if !privileged("destroying_a_cell_whose_init_died_removes_it") {
        return;
    }
    let mut env = Env::new("dead3");
    let root = env.root("a", false);
    let name = format!("dead3{}", std::process::id());
    let p = port(3, 3);
    env.create(&name, &root, &["-r", &p.to_string()]);
    kill_first_init(&env);
    let out = env.ctl(&["destroy", &name]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{out:?}");
    assert_eq!(env.ok(&["list"]), "no cells\n");
    assert_eq!(host_bind(65534, false, false, p), 0, "port still reserved");
}

#[test]
fn a_new_cell_takes_the_name_and_port_of_one_whose_init_died() {
    if !privileged("a_new_cell_takes_the_name_and_port_of_one_whose_init_died") {
        return;
    }
    let mut env = Env::new("dead2");
    let root = env.root("a", false);
    let name = format!("dead2{}", std::process::id());
    let other = format!("live2{}", std::process::id());
    let p = port(3, 1);
    env.create(&name, &root, &["-r", &p.to_string()]);
    env.create(&other, &root, &[]);
    kill_first_init(&env);
    // No listing in between: the create itself finds the dead cell in its
    // way and removes it, port reservation and all.
    assert_eq!(env.create(&name, &root, &["-r", &p.to_string()]), 3);
    let names = env.ok(&["list", "-T", "-H", "-o", "NAME"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    let mut want = vec![name.as_str(), other.as_str()];
    want.sort_unstable();
    assert_eq!(names, want);
    env.ok(&["destroy", &name]);
    env.ok(&["destroy", &other]);
}

/// A create killed half-way (its name, id and port reserved in the table,
/// the cell not yet recorded as made) leaves a reservation whose creator is
/// dead: the next create of that name removes it, with the init it may have
/// started, and takes the name and the port. While its creator lives, the
/// reservation holds the name and no command sees a cell.
#[test]
fn a_create_killed_half_way_is_swept_by_the_next_create() {
    if !privileged("a_create_killed_half_way_is_swept_by_the_next_create") {
        return;
    }
    let mut env = Env::new("halfway");
    let root = env.root("a", false);
    let name = format!("half{}", std::process::id());
    let p = port(3, 2).to_string();
    let store = cells::kernel::linux::state::Store::new(env.dir.join("run/kernel"));
    let reservation = || {
        store
            .snapshot()
            .and_then(|t| t.cells.iter().find(|c| c.name == name).cloned())
            .filter(|c| c.pending.is_some())
    };
    let table_lock = env.dir.join("run/kernel/lock");
    let mut caught = None;
    for _ in 0..50 {
        let mut creator = env
            .command()
            .args(["create", "-n", &name, "-r", &p, root.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = creator.id() as i32;
        // Stopped as soon as its reservation shows (a read of the table per
        // turn, no pause: the window is the build of one cell).
        while reservation().is_none() && creator.try_wait().unwrap().is_none() {}
        // SAFETY: signals to the cellctl this test started.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        wait_until("the creator to stop", Duration::from_secs(20), || {
            support::stopped(pid)
        });
        // Caught half-way, and not while it holds the table's lock (every
        // command would wait for it).
        let mid_way = reservation().filter(|_| !support::locked(&table_lock));
        if let Some(claim) = mid_way {
            caught = Some((creator, claim));
            break;
        }
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        creator.wait().unwrap();
        let _ = env.ctl(&["destroy", &name]);
    }
    let (mut creator, claim) = caught.expect("never caught a create half-way in 50 tries");
    let pid = creator.id();
    assert!(
        !env.ok(&["list", "-T", "-H", "-o", "NAME"]).contains(&name),
        "a cell being made is listed"
    );
    // Through the library: cellctl's create waits for the id-range lock the
    // stopped one holds.
    let kernel = cells::kernel::linux::LinuxKernel::open(&env.config())
        .unwrap()
        .with_init_program(cellenv::BIN.into());
    let again = cells::kernel::Kernel::create(
        &kernel,
        &cells::kernel::CellSpec {
            name: name.clone(),
            root: root.clone(),
            profile: cells::kernel::Profile::Low,
            ports: Vec::new(),
            rlimits: Default::default(),
            limits: Default::default(),
            ephemeral: false,
            ids: None,
        },
    );
    let said = format!(
        "{:#}",
        again.expect_err("a second create of a name being made")
    );
    assert!(
        said.contains(&format!("being created by pid {pid}")),
        "a second create of a name being made: {said}"
    );
    let gone = env.ctl(&["destroy", &name]);
    let said = String::from_utf8_lossy(&gone.stderr);
    assert!(
        !gone.status.success() && said.contains("still being created"),
        "destroy of a cell being made: {said}"
    );
    creator.kill().unwrap();
    creator.wait().unwrap();
    // No listing in between: the create meets the dead reservation in its way.
    let id = env.create(&name, &root, &["-r", &p]);
    assert_ne!(id, claim.id);
    assert!(
        !claim.cgroup.exists(),
        "the killed create's cgroup {} (and any init in it) is left",
        claim.cgroup.display()
    );
    assert_eq!(env.ok(&["list", "-T", "-H", "-o", "NAME"]).trim(), name);
    env.ok(&["destroy", &name]);
}

#[test]
fn stats_move_under_load() {
    if !privileged("stats_move_under_load") {
        return;
    }
    let mut env = Env::new("load");
    let root = env.root("a", false);
    let name = format!("load{}", std::process::id());
    env.create(&name, &root, &[]);
    let row = |env: &Env| -> Vec<u64> {
        let out = env.ok(&["stats", "-T", "-H", "-o", "CPU1S,CPU10S,PROCS,REFS,MEMORY"]);
        out.trim().split('\t').map(|v| v.parse().unwrap()).collect()
    };
    let mut spinner = env.background(&name, &["/bin/sh", "-c", "while :; do :; done"]);
    // A spinning shell gets 100 ticks a second on an idle CPU; far less on a
    // busy host, but never none: the 1 Hz sampler shows it within seconds.
    let mut busy = Vec::new();
    wait_until(
        "the sampler to see the load",
        Duration::from_secs(30),
        || {
            busy = row(&env);
            busy[0] >= 3 && busy[1] >= 1
        },
    );
    assert_eq!(busy[2], 1, "PROCS: {busy:?}");
    assert!(busy[3] >= 1 && busy[4] > 0, "REFS/MEMORY: {busy:?}");
    env.sh(&name, "kill -9 -1");
    spinner.wait().unwrap();
    let mut idle = Vec::new();
    wait_until(
        "the sampler to see the rest",
        Duration::from_secs(30),
        || {
            idle = row(&env);
            idle[0] == 0
        },
    );
    assert_eq!(idle[2], 0, "PROCS at rest: {idle:?}");
}

#[test]
fn list_and_stats_tsv_columns_are_exact() {
    if !privileged("list_and_stats_tsv_columns_are_exact") {
        return;
    }
    let mut env = Env::new("tsv");
    assert_eq!(
        env.ok(&["list", "-T"]),
        "CID\tNAME\tREFS\tPROCS\tAGE\tROOT\tNOFILE\tAS\tCORE\tPROFILE\tPORTS\t\
         MAXPROC\tMAXMEM\tMAXCPU\tMAXDISK\n"
    );
    assert_eq!(
        env.ok(&["stats", "-T"]),
        "CID\tNAME\tCPU1S\tCPU10S\tPROCS\tREFS\tMEMORY\tAGE\tROOT\t\
         DENY_PROCESS\tDENY_SYSTEM\tDENY_NETWORK\tDENY_MACHDEP\tDENY_DEVICE\tDENY_BIND\t\
         SUPERVISOR\tRESTARTS\tTASKS\tMAXPROC\tMEM_USED\tMAXMEM\tMAXCPU\tDISK_USED\tMAXDISK\t\
         DENY_FORK\tOOM_KILLS\n"
    );
    let root = env.root("a", false);
    let name = format!("tsv{}", std::process::id());
    let (p, q) = (port(2, 0), port(2, 1));
    let id = env.create(
        &name,
        &root,
        &[
            "-l",
            "medium",
            "-r",
            &format!("{p},{q}"),
            "-N",
            "1024",
            "-C",
            "unlimited",
        ],
    );
    let root_s = root.to_str().unwrap();
    assert_eq!(
        env.ok(&["list", "-T", "-H"]),
        format!(
            "{id}\t{name}\t0\t0\t0\t{root_s}\t1024\tunlimited\tunlimited\tmedium\t{p},{q}\t\
             1024\tunlimited\tunlimited\tunlimited\n"
        ),
        "the default process limit (cellmgr.conf) applies"
    );
    let stats = env.ok(&["stats", "-T", "-H"]);
    let cols: Vec<&str> = stats.trim_end_matches('\n').split('\t').collect();
    assert_eq!(cols.len(), 26);
    assert_eq!(
        (cols[0], cols[1], cols[8]),
        (id.to_string().as_str(), name.as_str(), root_s)
    );
    let prom = env.ok(&["stats", "-P"]);
    assert!(
        prom.contains(&format!(
            "cells_processes{{cell=\"{name}\",cid=\"{id}\"}} 0"
        )),
        "{prom}"
    );
    assert!(env
        .ok(&["stats", "-P", "-h"])
        .starts_with("HTTP/1.0 200 OK\r\n"));
    assert_eq!(
        env.ctl(&["stats", "-h"]).status.code(),
        Some(1),
        "-h without -P"
    );
    // exec applies no stored rlimits (as the original): the default holds.
    let (_, out, _) = env.sh(&name, "ulimit -n");
    assert_ne!(out.trim(), "1024");
}
