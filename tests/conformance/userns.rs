//! Cell root is not host root (Linux, medium and high): each cell runs in a
//! user namespace of its own, on a range of host ids. What that must make
//! impossible, each probe run inside a cell: being seen as host uid 0,
//! taking what the kernel counts per user from host root (inotify
//! instances, message queue bytes), joining a host socket's port group even
//! without the port programs, and handing a host user privileges through a
//! set-id bit or a file capability. The low profile keeps host uid 0 (it
//! permits host administration): where a probe can succeed there, it is
//! run at low too, to show that it can.

use super::boundary::{host_reuseport_listener, perl, wait_for_file, PERL_REUSE};
use super::{cellenv, port, privileged, Env};
use std::path::Path;

/// Whether this run gives cells user namespaces (the suite also runs with
/// `CELLS_TEST_USERNS=NO`, the host-id model).
fn userns_or_skip(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    if !cellenv::userns() {
        eprintln!("SKIPPED {test}: this run keeps cells on host ids (CELLS_TEST_USERNS=NO)");
        return false;
    }
    true
}

/// The fields of a `Uid:` or `Gid:` line of `/proc/<pid>/status`: real,
/// effective, saved, file system.
fn status_ids(pid: u32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

fn user_namespace(pid: u32) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap()
}

/// The cell's id range as `cellctl list -o IDMAP` prints it: (base, size).
fn idmap(env: &Env, cell: &str) -> Option<(u32, u32)> {
    let out = env.ok(&["list", "-T", "-H", "-o", "NAME,IDMAP"]);
    let line = out.lines().find(|l| l.split('\t').next() == Some(cell))?;
    let (base, size) = line.split('\t').nth(1)?.split_once(':')?;
    Some((base.parse().ok()?, size.parse().ok()?))
}

/// The host's `ps` shows a cell's processes, its init included, with ids of
/// the cell's range, in a user namespace that is not the host's; at low with
/// host uid 0.
#[test]
fn cell_processes_are_never_host_uid_0() {
    let test = "cell_processes_are_never_host_uid_0";
    if !userns_or_skip(test) {
        return;
    }
    use cells::kernel::{ExecSpec, Stdio, Target};
    let mut env = Env::new("uid");
    let root = env.root("uid", false);
    let kernel = cells::kernel::host(&env.config()).unwrap();
    let host_ns = user_namespace(std::process::id());
    for profile in ["low", "medium", "high"] {
        let name = format!("u{profile}{}", std::process::id());
        env.create(&name, &root, &["-l", profile]);
        let sleeper = ExecSpec {
            argv: vec!["/bin/sleep".into(), "1000".into()],
            ..ExecSpec::default()
        };
        let mut child = kernel
            .spawn(
                &Target::Name(name.clone()),
                &sleeper,
                [Stdio::Null, Stdio::Null, Stdio::Null],
            )
            .unwrap();
        let init = env.record(&name).init_pid as u32;
        let ps = std::process::Command::new("ps")
            .args(["-o", "uid=", "-p", &format!("{},{init}", child.id())])
            .output()
            .unwrap();
        let shown: Vec<u32> = String::from_utf8_lossy(&ps.stdout)
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(shown.len(), 2, "{profile}: ps printed {shown:?}");
        for pid in [child.id(), init] {
            let ids = [status_ids(pid, "Uid:"), status_ids(pid, "Gid:")].concat();
            if profile == "low" {
                assert_eq!(ids, vec![0; 8], "low keeps host uid 0");
                assert_eq!(user_namespace(pid), host_ns);
                continue;
            }
            assert!(
                shown.iter().all(|&u| u != 0),
                "{profile}: ps shows {shown:?}"
            );
            assert!(!ids.contains(&0), "{profile}: pid {pid} runs as {ids:?}");
            let (base, size) = idmap(&env, &name).expect("a range");
            assert!(
                ids.iter().all(|&id| id >= base && id - base < size),
                "{profile}: pid {pid} runs as {ids:?}, outside {base}:{size}"
            );
            // Its capabilities are those of a namespace that is not the host's.
            assert_ne!(user_namespace(pid), host_ns, "{profile}: pid {pid}");
        }
        // Cell root is uid 0 inside: the service runs as the range's first id.
        if profile != "low" {
            let (base, _) = idmap(&env, &name).unwrap();
            assert_eq!(status_ids(child.id(), "Uid:")[0], base, "{profile}");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        env.ok(&["destroy", &name]);
    }
}

/// Opens inotify instances until the kernel refuses, reports how many in
/// `/tmp/filled`, and holds them until `/tmp/release` appears.
const FILL_INOTIFY: &str = r#"my @fds;
while (1) { my $fd = syscall(294, 0); last if $fd < 0; push @fds, $fd }
my $why = $! + 0;
open(my $f, ">", "/tmp/filled.tmp"); print $f scalar(@fds), " $why\n"; close $f;
rename "/tmp/filled.tmp", "/tmp/filled";
until (-e "/tmp/release") { select(undef, undef, undef, 0.02) }
"#;

/// A cell that takes every inotify instance it can leaves host root's own:
/// the kernel counts them per user and per owner of a user namespace, and
/// neither is host root.
#[test]
fn a_cell_cannot_use_up_host_roots_inotify_instances() {
    let test = "a_cell_cannot_use_up_host_roots_inotify_instances";
    if !userns_or_skip(test) || !cfg!(target_arch = "x86_64") {
        return;
    }
    let mut env = Env::new("inotify");
    for profile in ["medium", "high"] {
        let root = env.root(&format!("in{profile}"), true);
        let name = format!("in{profile}{}", std::process::id());
        env.create(&name, &root, &["-l", profile]);
        let mut filler = env.background(&name, &["/usr/bin/perl", "-e", FILL_INOTIFY]);
        wait_for_file(&root.join("tmp/filled"));
        let filled = std::fs::read_to_string(root.join("tmp/filled")).unwrap();
        eprintln!(
            "{profile}: the cell holds {} inotify instances",
            filled.trim()
        );
        // SAFETY: inotify_init1 returns a new descriptor or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        let err = std::io::Error::last_os_error();
        std::fs::write(root.join("tmp/release"), "").unwrap();
        filler.wait().unwrap();
        assert!(
            fd >= 0,
            "{profile}: host root's inotify_init1 failed ({err}) while the cell held {filled}"
        );
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
        env.ok(&["destroy", &name]);
    }
}

/// Opens POSIX message queues (default size) until the kernel refuses;
/// prints how many and why (Python's ctypes: perl has no mq_open).
const FILL_MQUEUES: &str = r#"import ctypes, os
rt = ctypes.CDLL("librt.so.1", use_errno=True)
n = 0
while rt.mq_open(("/q%d" % n).encode(), os.O_CREAT | os.O_RDWR, 0o600, None) >= 0:
    n += 1
print(n, os.strerror(ctypes.get_errno()))"#;

/// Message queue bytes are counted per user: each cell has its own
/// allowance, which neither another cell nor host root shares.
#[test]
fn message_queue_bytes_are_each_cells_own() {
    let test = "message_queue_bytes_are_each_cells_own";
    if !userns_or_skip(test) {
        return;
    }
    let mut env = Env::new("mqown");
    let root = env.root("mq", true);
    let pid = std::process::id();
    let mut opened = Vec::new();
    for cell in ["a", "b"] {
        let name = format!("mq{cell}{pid}");
        env.create(&name, &root, &["-l", "medium"]);
        let (_, out, err) = env.sh(&name, &format!("/usr/bin/python3 -c '{FILL_MQUEUES}'"));
        let n: u32 = out
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("cell {cell}: {out} {err}"));
        opened.push(n);
    }
    // The queues stay (and count) until their IPC namespace goes with the cell.
    assert!(opened[0] > 0, "{opened:?}");
    assert_eq!(
        opened[0], opened[1],
        "the second cell got less while the first held its queues"
    );
}

/// Without the port programs (detached here, as a crash or a hand could),
/// a cell at medium or high still cannot join a host root service's
/// `SO_REUSEPORT` group: the kernel shares a port only between sockets of
/// one uid. At low (host uid 0) it can: the programs are that profile's
/// only wall.
#[test]
fn the_uid_alone_keeps_cells_out_of_host_port_groups() {
    let test = "the_uid_alone_keeps_cells_out_of_host_port_groups";
    if !userns_or_skip(test) {
        return;
    }
    use cells::kernel::linux::{bpf, cgroup, state::Store};
    let mut env = Env::new("reuseuid");
    let root = env.root("ru", true);
    let pid = std::process::id();
    let (host, own) = (port(9, 0), port(9, 2));
    let _listener = host_reuseport_listener(false, host);
    let store = Store::new(env.dir.join("run/kernel"));
    let cgroup_root = cgroup::detect(env.config().cgroup_root.as_deref()).unwrap();
    for profile in ["medium", "high", "low"] {
        let name = format!("ru{profile}{pid}");
        // A port of its own: its wall is then the installation's programs
        // (a cell without ports has one on its own cgroup instead).
        env.create(&name, &root, &["-l", profile, "-r", &own.to_string()]);
        let guard = store.lock().unwrap().table.bind_guard.unwrap();
        bpf::detach(&cgroup_root, &guard).unwrap();
        let (_, got) = perl(
            &env,
            &name,
            PERL_REUSE,
            &["4", &host.to_string(), "before", "1"],
        );
        if profile == "low" {
            assert_eq!(got, "bound", "low: the probe joins without the programs");
        } else {
            assert!(
                got.contains("Address already in use"),
                "{profile}: joined the host's group: {got}"
            );
        }
        env.ok(&["destroy", &name]);
    }
}

/// `cap_dac_read_search` as a version 2 `security.capability` value (the
/// form `setcap` writes on the host: effective, permitted bit 2).
const SET_FILE_CAP: &str = r#"my ($path, $name) = ($ARGV[0], "security.capability");
my $v = pack("V5", 0x02000001, 4, 0, 0, 0);
syscall(188, $path, $name, $v, length($v), 0) == 0 or do { print "setxattr: $!\n"; exit 1 };
"#;

/// A program the cell made set-uid, or gave a file capability, grants a host
/// user who runs it nothing of host root's: the set-uid bit makes it an id
/// of the cell's range, the capability is the cell's namespace's only. At
/// low (host uid 0), the same steps do grant root: that is the profile.
#[test]
fn set_id_bits_and_file_capabilities_from_a_cell_grant_host_users_nothing() {
    let test = "set_id_bits_and_file_capabilities_from_a_cell_grant_host_users_nothing";
    if !userns_or_skip(test) || !cfg!(target_arch = "x86_64") {
        return;
    }
    let mut env = Env::new("setid");
    let pid = std::process::id();
    let secret = env.dir.join("secret");
    std::fs::write(&secret, "host root's\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    for profile in ["medium", "high", "low"] {
        let root = env.root(&format!("s{profile}"), true);
        let name = format!("s{profile}{pid}");
        env.create(&name, &root, &["-l", profile]);
        let (rc, _, err) = env.sh(
            &name,
            "cp /usr/bin/id /tmp/id && chmod 4755 /tmp/id && cp /usr/bin/cat /tmp/cat",
        );
        assert_eq!(rc, 0, "{profile}: {err}");
        let (rc, out) = perl(&env, &name, SET_FILE_CAP, &["/tmp/cat"]);
        assert_eq!(rc, 0, "{profile}: {out}");
        // A host user who can reach the files (this test's directories are
        // open to all) runs them.
        let as_nobody = |program: &Path, arg: &str| {
            use std::os::unix::process::CommandExt;
            let out = std::process::Command::new(program)
                .arg(arg)
                .uid(65534)
                .gid(65534)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            )
        };
        let (_, euid) = as_nobody(&root.join("tmp/id"), "-u");
        let (read, text) = as_nobody(&root.join("tmp/cat"), secret.to_str().unwrap());
        if profile == "low" {
            assert_eq!(euid, "0", "low: the probe's set-uid bit is host root's");
            assert!(read, "low: the probe's capability reads the secret");
            env.ok(&["destroy", &name]);
            continue;
        }
        assert!(
            !read,
            "{profile}: the file capability read host root's file: {text}"
        );
        assert_ne!(euid, "0", "{profile}: the set-uid program ran as host root");
        let (base, size) = idmap(&env, &name).unwrap();
        let euid: u32 = euid.parse().unwrap();
        assert!(
            euid >= base && euid - base < size,
            "{profile}: the set-uid program ran as {euid}, not as the cell's {base}:{size}"
        );
        env.ok(&["destroy", &name]);
    }
}

/// A reserved port below 1024 binds for its cell at medium and high, where
/// no process of the cell holds `CAP_NET_BIND_SERVICE` for the host's
/// network (the port programs lift that check for the owner); a low port
/// the cell does not reserve stays refused there, and binds at low (host
/// uid 0 keeps the capability).
#[test]
fn a_reserved_port_below_1024_binds_for_its_cell() {
    let test = "a_reserved_port_below_1024_binds_for_its_cell";
    if !userns_or_skip(test) {
        return;
    }
    let mut env = Env::new("lowport");
    let root = env.root("lp", true);
    let pid = std::process::id();
    let (own, other) = (900 + (pid % 45) as u16 * 2, 901 + (pid % 45) as u16 * 2);
    for profile in ["medium", "high", "low"] {
        let name = format!("lp{profile}{pid}");
        env.create(&name, &root, &["-l", profile, "-r", &own.to_string()]);
        for (f, proto) in [("4", "tcp"), ("6", "udp")] {
            let (_, got) = perl(&env, &name, super::PERL_BIND, &[f, proto, &own.to_string()]);
            assert_eq!(got, "bound", "{profile}: its own port {own}/{proto}");
        }
        let (_, got) = perl(
            &env,
            &name,
            super::PERL_BIND,
            &["4", "tcp", &other.to_string()],
        );
        if profile == "low" {
            assert_eq!(got, "bound", "low: an unreserved low port");
        } else {
            assert!(
                got.contains("Permission denied"),
                "{profile}: bound unreserved port {other}: {got}"
            );
        }
        assert_eq!(
            super::host_bind(65534, false, false, own),
            libc::EPERM,
            "{profile}: a host user took the cell's port"
        );
        env.ok(&["destroy", &name]);
    }
}

/// Adds keys to its process keyring (freed when it exits) until the kernel
/// refuses or 400 are in: prints how many and the errno (0: none refused).
const FILL_KEYS: &str = r#"my ($n, $why) = (0, 0);
while ($n < 400) {
    my ($type, $desc, $data) = ("user", "probe$n", "x");
    if (syscall(248, $type, $desc, $data, 1, -2) < 0) { $why = $! + 0; last }
    $n++;
}
print "$n $why\n";
"#;

/// Runs `argv` in the namespaces of the cell whose init is `init` (user,
/// mount, IPC, UTS) as the cell's root, without the cell's seccomp filter:
/// what a call the filter let through would reach.
fn in_cell_unfiltered(init: u32, argv: &[&str]) -> String {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let same_user_ns = user_namespace(init) == user_namespace(std::process::id());
    let mut namespaces = Vec::new();
    // The user namespace last: the cell's others belong to the host's (the
    // init makes them as host root), which host root leaves by entering it.
    for (kind, flag) in [
        ("mnt", libc::CLONE_NEWNS),
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("user", libc::CLONE_NEWUSER),
    ] {
        // A process cannot enter the user namespace it is in (low: the host's).
        if kind == "user" && same_user_ns {
            continue;
        }
        let file = std::fs::File::open(format!("/proc/{init}/ns/{kind}")).unwrap();
        namespaces.push((file, flag));
    }
    let mut command = std::process::Command::new(argv[0]);
    command.args(&argv[1..]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            for (file, flag) in &namespaces {
                if libc::setns(file.as_raw_fd(), *flag) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{argv:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The kernel charges keys to the uid that adds them; host root's quota is
/// large (`root_maxkeys`) and shared by every host-uid-0 process. The cells'
/// seccomp filter refuses the key calls at every profile
/// (`no_profile_reaches_the_kernel_keyrings`); without it, a medium or high
/// cell still fills only its own range id's quota (`maxkeys`) and leaves host
/// root's alone. At low the same keys are host root's.
#[test]
fn a_cell_cannot_use_up_host_roots_keys() {
    let test = "a_cell_cannot_use_up_host_roots_keys";
    if !userns_or_skip(test) || !cfg!(target_arch = "x86_64") {
        return;
    }
    let mut env = Env::new("keyquota");
    let root = env.root("kq", true);
    let pid = std::process::id();
    let maxkeys: u32 = std::fs::read_to_string("/proc/sys/kernel/keys/maxkeys")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let profiles = ["medium", "high", "low"];
    // All at once: each on a range of its own (a range freed by a destroy
    // goes to the next cell, and keys are collected a moment after their
    // keyring's process exits).
    for profile in profiles {
        env.create(&format!("kq{profile}{pid}"), &root, &["-l", profile]);
    }
    for profile in profiles {
        let name = format!("kq{profile}{pid}");
        let init = env.record(&name).init_pid as u32;
        let got = in_cell_unfiltered(init, &["/usr/bin/perl", "-e", FILL_KEYS]);
        let (added, errno) = got.split_once(' ').unwrap();
        let (added, errno): (u32, i32) = (added.parse().unwrap(), errno.parse().unwrap());
        eprintln!("{profile}: the cell added {added} keys (errno {errno})");
        if profile == "low" {
            assert_eq!(
                (added, errno),
                (400, 0),
                "low: the keys are host root's (its quota is root_maxkeys)"
            );
        } else {
            assert_eq!(
                errno,
                libc::EDQUOT,
                "{profile}: {added} keys and no quota: they were charged to host root"
            );
            assert!(added < maxkeys, "{profile}: {added} keys");
        }
        env.ok(&["destroy", &name]);
    }
}

/// A host root service that listens with `SO_REUSEPORT` on a port a cell
/// reserves (host root binds any port) is out of the cell's reach at medium
/// and high even though the port programs let a cell share its own ports:
/// the kernel shares a port only within one uid. At low the cell joins the
/// service's group and would take its connections: the port programs cannot
/// tell it from the cell's own sockets there.
#[test]
fn a_host_port_group_on_a_cells_own_port_stays_the_hosts() {
    let test = "a_host_port_group_on_a_cells_own_port_stays_the_hosts";
    if !userns_or_skip(test) {
        return;
    }
    let mut env = Env::new("reuseown");
    let root = env.root("ro", true);
    let pid = std::process::id();
    let own = port(9, 1);
    for profile in ["medium", "high", "low"] {
        let name = format!("ro{profile}{pid}");
        env.create(&name, &root, &["-l", profile, "-r", &own.to_string()]);
        let listener = host_reuseport_listener(false, own);
        let (_, got) = perl(
            &env,
            &name,
            PERL_REUSE,
            &["4", &own.to_string(), "before", "1"],
        );
        if profile == "low" {
            assert_eq!(got, "bound", "low: the cell joins host root's group");
        } else {
            assert!(
                got.contains("Address already in use"),
                "{profile}: joined host root's group on its own port {own}: {got}"
            );
        }
        drop(listener);
        env.ok(&["destroy", &name]);
    }
}
