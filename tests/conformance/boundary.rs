//! The cell boundary against a hostile root inside the cell: terminals and
//! sessions, kernel-picked ports and port sharing, keyrings, abstract sockets
//! and signals, namespaces and cgroups, at each profile each concerns. Every
//! probe runs inside a cell; nothing here changes the host outside the test's
//! own directories, cgroups and network namespace.

use super::support::tmux::{run_and_report, Tmux};
use super::support::world::World;
use super::support::{fresh_dir, wait_until};
use super::{cellenv, host_bind, port, privileged, Env, EPERM};
use std::io::Write;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const PROFILES: [&str; 3] = ["low", "medium", "high"];

fn have(tool: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED {test}: {tool} is not installed");
    }
    found
}

/// Waits (by polling, up to 20 s) until `path` exists.
pub(super) fn wait_for_file(path: &Path) {
    wait_until(
        &format!("{} to appear", path.display()),
        Duration::from_secs(20),
        Duration::from_millis(20),
        || path.exists(),
    );
}

/// Waits (up to 30 s) for a child; kills it and fails the test past that.
fn wait_child(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(
        &format!("{what} to end"),
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
    );
    status.unwrap()
}

/// Runs perl in a cell (its root must have the host's /usr): (status, stdout).
pub(super) fn perl(env: &Env, cell: &str, script: &str, args: &[&str]) -> (i32, String) {
    let mut argv = vec!["exec", cell, "/usr/bin/perl", "-e", script];
    argv.extend_from_slice(args);
    let out = env.ctl(&argv);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

// ---------------------------------------------------------------------------
// Terminals and sessions
// ---------------------------------------------------------------------------

/// Opens the controlling terminal while the command that started it still
/// runs (reports `ready`), waits for `/tmp/go`, then pushes a host command
/// into that terminal with TIOCSTI, one byte at a time, and reports how the
/// first push went in `/tmp/done`. It ignores the hangup, as an attacker would.
const INJECTOR: &str = r#"$SIG{HUP} = 'IGNORE';
my $tty;
open($tty, "+<", "/dev/tty") or $tty = \*STDERR;
open(my $r, ">", "/tmp/ready"); close $r;
until (-e "/tmp/go") { select(undef, undef, undef, 0.02) }
my $first;
for my $c (split //, "touch $ARGV[0]\n") {
    my $ok = ioctl($tty, 0x5412, $c);
    $first //= $ok ? "pushed" : "refused: $!";
}
open(my $d, ">", "/tmp/done.tmp"); print $d "$first\n"; close $d;
rename "/tmp/done.tmp", "/tmp/done";
"#;

/// A process left behind in a cell pushes a command into the operator's
/// terminal with TIOCSTI after `cellctl exec` returned. Under `script` (a real
/// terminal), with a shell that reads that terminal next, nothing runs on the
/// host, at every profile.
#[test]
fn a_process_left_in_a_cell_cannot_type_into_the_operators_terminal() {
    let test = "a_process_left_in_a_cell_cannot_type_into_the_operators_terminal";
    if !privileged(test) || !have("script", test) {
        return;
    }
    let mut env = Env::new("sti");
    let pid = std::process::id();
    for profile in PROFILES {
        let root = env.root(&format!("sti-{profile}"), true);
        let name = format!("sti{profile}{pid}");
        env.create(&name, &root, &["-l", profile]);
        std::fs::write(root.join("tmp/inject.pl"), INJECTOR).unwrap();
        let marker = env.dir.join(format!("injected-{profile}"));
        let returned = env.dir.join(format!("returned-{profile}"));
        // The operator's shell: cellctl exec, then whatever the terminal
        // gives it, run as a shell would, until END.
        let operator = format!(
            "{bin} ctl exec {name} /bin/sh -c \
             '/usr/bin/perl /tmp/inject.pl {marker} & \
              while [ ! -e /tmp/ready ]; do sleep 0.05; done'; \
             touch {returned}; \
             while read -r line; do [ \"$line\" = END ] && break; eval \"$line\"; done",
            bin = cellenv::BIN,
            marker = marker.display(),
            returned = returned.display(),
        );
        let mut script = Command::new("script")
            .args(["-qec", &operator, "/dev/null"])
            .env("CELLMGR_CONF", env.dir.join("cellmgr.conf"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        wait_for_file(&returned);
        std::fs::write(root.join("tmp/go"), "").unwrap();
        wait_for_file(&root.join("tmp/done"));
        let mut input = script.stdin.take().unwrap();
        input.write_all(b"END\n").unwrap();
        wait_child(&mut script, "script");
        let report = std::fs::read_to_string(root.join("tmp/done")).unwrap();
        assert!(
            !marker.exists(),
            "{profile}: a command pushed from the cell ran on the host ({report})"
        );
        assert!(report.starts_with("refused"), "{profile}: {report}");
        env.sh(&name, "kill -9 -1");
        env.ok(&["destroy", &name]);
    }
}

/// An interactive command (stdin a terminal) runs on a terminal of its own in
/// the cell: `tty` names a pty, job control works, the window size follows
/// the caller's (SIGWINCH), and the exit status is the command's. Through
/// `cellctl exec` and `cellmgr shell`.
#[test]
fn interactive_commands_get_a_terminal_of_their_own() {
    let test = "interactive_commands_get_a_terminal_of_their_own";
    if !privileged(test) || !have("tmux", test) {
        return;
    }
    let mut env = Env::new("pty");
    let root = env.root("pty", false);
    let name = format!("pty{}", std::process::id());
    env.create(&name, &root, &[]);
    let w = World::new("pty");
    w.ok(&["cell", "create", "shelly", "--cmd", "/bin/sleep 100000"]);
    w.ok(&["cell", "start", "shelly"]);
    let routes = [
        (
            "cellctl exec",
            format!(
                "CELLMGR_CONF={} {} ctl exec {name}",
                env.dir.join("cellmgr.conf").display(),
                cellenv::BIN
            ),
        ),
        (
            "cellmgr shell",
            format!("{} {} mgr shell shelly", w.conf_env(), cellenv::BIN),
        ),
    ];
    for (route, command) in routes {
        let t = Tmux::start("pty", &run_and_report("BEFORE", &command), 80, 24);
        t.wait_text("BEFORE");
        t.type_text("tty; stty size; sleep 100 & jobs");
        t.keys(&["Enter"]);
        let s = t.wait(&format!("{route}: tty"), |s| s.contains("Running"));
        assert!(s.contains("/dev/pts/"), "{route}: not a pty:\n{s}");
        assert!(s.contains("24 80"), "{route}: window size:\n{s}");
        assert!(!s.contains("not a tty"), "{route}:\n{s}");
        assert!(!s.contains("Cannot set tty process group"), "{route}:\n{s}");
        t.resize(100, 30);
        t.type_text("kill %1; stty size");
        t.keys(&["Enter"]);
        t.wait(&format!("{route}: new window size"), |s| {
            s.contains("30 100")
        });
        t.type_text("exit 3");
        t.keys(&["Enter"]);
        let s = t.wait_text("END-OF-RUN");
        assert!(s.contains("EXIT=3"), "{route}: exit status:\n{s}");
        assert!(
            !s.contains("-icanon") && !s.contains("-echo"),
            "{route}: the terminal was left raw:\n{s}"
        );
    }
}

/// A process in the caller's process group that must outlive what the cell
/// does (the caller itself joins its group).
struct Bystander {
    child: Child,
}

impl Bystander {
    fn new() -> Bystander {
        let child = Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .spawn()
            .unwrap();
        Bystander { child }
    }

    fn group(&self) -> i32 {
        self.child.id() as i32
    }

    /// Runs `cmd` in the bystander's process group; its output.
    fn run(&self, mut cmd: Command) -> Output {
        cmd.process_group(self.group())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The caller survived (no signal ended it) and so did its group.
fn assert_survived(route: &str, out: &Output, bystander: &mut Bystander) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        None,
        "{route}: the caller was killed by signal {:?}; stderr: {}",
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        bystander.alive(),
        "{route}: a process in the caller's group was killed"
    );
}

/// A cell process that kills its process group (`kill(0, SIGKILL)`) reaches
/// nothing of the caller's, whichever way it entered the cell: cellctl exec
/// with and without a terminal, cellmgr shell, a .apply EXEC step, a health
/// check, the destroy fallback (after the cell replaced its own /bin/sh) and
/// the supervised service.
#[test]
fn every_route_into_a_cell_starts_a_session_of_its_own() {
    let test = "every_route_into_a_cell_starts_a_session_of_its_own";
    if !privileged(test) || !have("script", test) {
        return;
    }
    let mut env = Env::new("sess");
    let root = env.root("sess", false);
    let name = format!("sess{}", std::process::id());
    env.create(&name, &root, &["-l", "low"]);

    let mut bystander = Bystander::new();
    let mut cmd = env.command();
    cmd.args(["exec", &name, "/bin/sh", "-c", "kill -9 0"]);
    let out = bystander.run(cmd);
    assert_survived("cellctl exec", &out, &mut bystander);
    assert_eq!(out.status.code(), Some(128 + 9), "cellctl exec");

    // With a terminal (script, which makes a session of its own): the
    // operator's shell there and its background job must carry on.
    let pidfile = env.dir.join("bystander.pid");
    let result = env.dir.join("after-exec");
    let operator = format!(
        "sleep 1000 & echo $! > {}; {} ctl exec {name} /bin/sh -c 'kill -9 0'; echo $? > {}",
        pidfile.display(),
        cellenv::BIN,
        result.display()
    );
    let out = Command::new("script")
        .args(["-qec", &operator, "/dev/null"])
        .env("CELLMGR_CONF", env.dir.join("cellmgr.conf"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let sleeper: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signal 0 only checks that the sleeper this test started lives.
    let alive = unsafe { libc::kill(sleeper, 0) } == 0;
    // SAFETY: ends it.
    unsafe { libc::kill(sleeper, libc::SIGKILL) };
    assert!(alive, "cellctl exec on a terminal: its group was killed");
    assert_eq!(
        std::fs::read_to_string(&result).ok().as_deref(),
        Some("137\n"),
        "cellctl exec on a terminal: the operator's shell did not carry on ({})",
        out.status
    );
    drop(env);

    // The cellmgr routes, on a base the cell can change (its /bin/sh).
    let base = fresh_dir("cmt-base", "sess");
    std::fs::create_dir_all(base.join("bin")).unwrap();
    std::fs::copy(super::support::busybox().unwrap(), base.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "kill", "sleep", "touch", "rm", "cat", "chmod", "test", "cut",
    ] {
        std::os::unix::fs::symlink("busybox", base.join("bin").join(applet)).unwrap();
    }
    // The service notes its session and process ids, then sleeps.
    std::fs::write(
        base.join("bin/svc"),
        "#!/bin/busybox sh\necho $(cut -d' ' -f6 /proc/$$/stat) $$ > /tmp/ids.new\n\
         mv /tmp/ids.new /tmp/ids\nexec sleep 100000\n",
    )
    .unwrap();
    std::fs::set_permissions(
        base.join("bin/svc"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let w = World::with_conf("sess", &format!("CELL_BASE={}\n", base.display()));
    // The check kills its group the first time it runs (each time
    // /tmp/checked is missing) and passes after.
    let check =
        "CELL_HEALTHCHECK_CMD=\"test -e /tmp/checked || { touch /tmp/checked; kill -9 0; }\"\n";
    w.write_manifest(
        "grp.cell",
        &format!("CELL_AUTOSTART=YES\nCELL_CREATE_PROFILE=low\n{check}"),
    );
    w.write_manifest("grp.apply", "EXEC kill -9 0\n");
    let mgr = |args: &[&str]| {
        let mut c = w.command(&["mgr"]);
        c.args(args);
        c
    };
    let out = bystander.run(mgr(&["apply", "grp"]));
    assert_survived(".apply EXEC", &out, &mut bystander);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("EXEC")
            || String::from_utf8_lossy(&out.stderr).contains("EXEC"),
        "the EXEC step ran: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A cell without a service: cellmgr runs its health check itself.
    std::fs::remove_file(w.manifest_dir().join("grp.apply")).unwrap();
    let out = bystander.run(mgr(&["apply", "grp"]));
    assert_survived("health check", &out, &mut bystander);
    let health = std::fs::read_to_string(w.data_dir().join("grp/state/health"));
    assert!(
        health.as_deref().is_ok_and(|h| h.starts_with("ok")),
        "the health check's second attempt: {health:?}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // With a service: the supervisor starts it and runs the checks; the
    // first check kills its group again, and the supervisor carries on.
    let upper = w.data_dir().join("grp/overlay/upper/tmp");
    std::fs::remove_file(upper.join("checked")).unwrap();
    w.write_manifest(
        "grp.cell",
        &format!(
            "CELL_AUTOSTART=YES\nCELL_CREATE_PROFILE=low\nCELL_SUPERVISE_CMD=/bin/svc\n{check}"
        ),
    );
    let out = bystander.run(mgr(&["apply", "grp"]));
    assert_survived("service", &out, &mut bystander);
    wait_for_file(&upper.join("checked"));
    wait_for_file(&upper.join("ids"));
    let ids = std::fs::read_to_string(upper.join("ids")).unwrap();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert_eq!(ids[0], ids[1], "the service leads no session of its own");
    let rows = w.rows("name,running,supervisor");
    assert!(
        rows.starts_with("grp\t1\t") && !rows.trim_end().ends_with('\t'),
        "the supervisor did not survive its check: {rows}"
    );

    let out = bystander.run(mgr(&["shell", "grp", "/bin/sh", "-c", "kill -9 0"]));
    assert_survived("cellmgr shell", &out, &mut bystander);

    // The destroy fallback: a member outside the supervisor makes destroy
    // busy; the fallback then runs the cell's own /bin/sh, which the cell has
    // replaced with one that does the work and then kills its group.
    w.ok(&[
        "shell",
        "grp",
        "/bin/busybox",
        "sh",
        "-c",
        "rm /bin/sh && printf '#!/bin/busybox sh\\ntrap \"\" TERM\\n/bin/busybox sh \"$@\"\\n\
         /bin/busybox touch /tmp/fallback-ran\\n/bin/busybox kill -9 0\\n' > /bin/sh \
         && chmod 755 /bin/sh && (/bin/busybox sleep 1000 > /dev/null 2>&1 &)",
    ]);
    let out = bystander.run(mgr(&["cell", "stop", "grp"]));
    assert_survived("destroy fallback", &out, &mut bystander);
    assert!(
        out.status.success(),
        "stop: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        w.data_dir()
            .join("grp/overlay/upper/tmp/fallback-ran")
            .exists(),
        "the destroy fallback did not run the cell's /bin/sh"
    );
    drop(w);
    std::fs::remove_dir_all(&base).unwrap();
}

/// cellui's shell (Enter on a cell): the cell's shell killing its process
/// group leaves cellui and its group alone.
#[test]
fn cellui_survives_its_shells_kill_of_the_process_group() {
    let test = "cellui_survives_its_shells_kill_of_the_process_group";
    if !privileged(test) || !have("tmux", test) {
        return;
    }
    let w = World::new("ui-sess");
    w.ok(&["cell", "create", "solo", "--cmd", "/bin/sleep 100000"]);
    w.ok(&["cell", "start", "solo"]);
    let bystander = w.dir.join("bystander.pid");
    let command = format!(
        "sleep 1000 & echo $! > {}; {} {} ui --interval 1",
        bystander.display(),
        w.conf_env(),
        cellenv::BIN
    );
    let t = Tmux::start(
        "ui-sess",
        &run_and_report("BEFORE-CELLUI", &command),
        80,
        24,
    );
    t.wait("solo", |s| s.contains("solo"));
    t.keys(&["Enter"]);
    t.wait_text("shell in cell solo");
    t.type_text("kill -9 0");
    t.keys(&["Enter"]);
    t.wait_text("press Enter");
    t.keys(&["Enter"]);
    t.wait_text("[Cells]");
    let pid: i32 = std::fs::read_to_string(&bystander)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signal 0 only checks that the bystander this test started lives.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "the bystander was killed");
    t.keys(&["q"]);
    let s = t.wait_text("END-OF-RUN");
    assert!(s.contains("EXIT=0"), "{s}");
    // SAFETY: ends the bystander this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

// ---------------------------------------------------------------------------
// Ports the kernel picks, and port sharing
// ---------------------------------------------------------------------------

/// Gets a port from the kernel without asking for one: `MODE` is bind (to
/// port 0), listen, connect or sendto on an unbound socket, with
/// IP_LOCAL_PORT_RANGE narrowed to `LO..HI`; `FAM` 4, 6 or m (v4-mapped).
/// Prints `port N` (0: none) or the error.
const PERL_PICK: &str = r#"use Socket qw(:all);
my ($mode, $f, $t, $lo, $hi) = @ARGV;
socket(my $s, $f eq "4" ? AF_INET : AF_INET6, $t eq "udp" ? SOCK_DGRAM : SOCK_STREAM, 0) or do { print "socket: $!\n"; exit 2 };
setsockopt($s, 0, 51, pack("L", ($hi << 16) | $lo)) or print "range: $!\n";
my $ip = $f eq "4" ? inet_aton("127.0.0.1") : inet_pton(AF_INET6, $f eq "6" ? "::1" : "::ffff:127.0.0.1");
my $at = sub { $f eq "4" ? pack_sockaddr_in($_[0], $ip) : pack_sockaddr_in6($_[0], $ip) };
if ($mode eq "bind") { bind($s, $at->(0)) or do { print "bind: $!\n"; exit 3 } }
elsif ($mode eq "listen") { listen($s, 1) or do { print "listen: $!\n"; exit 3 } }
elsif ($mode eq "connect") { connect($s, $at->(9)) }
else { send($s, "x", 0, $at->(9)) }
my $name = getsockname($s);
print "port ", ($f eq "4" ? (unpack_sockaddr_in($name))[0] : (unpack_sockaddr_in6($name))[0]), "\n";
"#;

/// Every route by which the kernel picks a port, TCP and UDP, IPv4, IPv6 and
/// v4-mapped.
fn pick_routes() -> Vec<[&'static str; 3]> {
    let mut routes = Vec::new();
    for mode in ["bind", "listen", "connect", "sendto"] {
        for fam in ["4", "6", "m"] {
            for proto in ["tcp", "udp"] {
                if (mode, proto) != ("listen", "udp") && (mode, proto) != ("sendto", "tcp") {
                    routes.push([mode, fam, proto]);
                }
            }
        }
    }
    routes
}

/// Runs PERL_PICK on the host as `uid`.
fn host_pick(uid: u32, route: [&str; 3], lo: u16, hi: u16) -> String {
    let out = Command::new("/usr/bin/perl")
        .args(["-e", PERL_PICK, route[0], route[1], route[2]])
        .args([lo.to_string(), hi.to_string()])
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// This thread (and what it starts) moves to a network namespace of its own
/// with loopback up, so its port ranges can be set without touching the host.
fn private_network_namespace() {
    // SAFETY: unshare of this thread's network namespace only.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
    let st = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(st.success());
}

fn set_sysctl(name: &str, value: &str) {
    let path = format!("/proc/sys/net/ipv4/{name}");
    std::fs::write(&path, value).unwrap();
    let now = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        now.split_whitespace().collect::<Vec<_>>(),
        value.split_whitespace().collect::<Vec<_>>(),
        "{path}"
    );
}

/// A reservation holds against every port the kernel picks: create refuses
/// a port the kernel hands out on its own, a reservation the kernel keeps
/// too is never handed out (autobind, connect, sendto, IP_LOCAL_PORT_RANGE),
/// and a bind to port 0 that lands on a reserved port is refused by the
/// post-bind check even after the kernel's reservation went away.
#[test]
fn kernel_picked_ports_never_take_a_reservation() {
    let test = "kernel_picked_ports_never_take_a_reservation";
    if !privileged(test) || !have("ip", test) {
        return;
    }
    private_network_namespace();
    let mut env = Env::new("pick");
    let root = env.root("pick", true);
    let pid = std::process::id();
    let (owner, other) = (format!("pko{pid}"), format!("pkt{pid}"));
    let p = port(6, 1);
    set_sysctl("ip_local_port_range", &format!("{} {}", p - 1, p + 2));

    let out = env.ctl(&[
        "create",
        "-n",
        &owner,
        "-r",
        &p.to_string(),
        root.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a port the kernel hands out was reserved"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&p.to_string()) && err.contains("ip_local_reserved_ports"),
        "{err}"
    );

    set_sysctl("ip_local_reserved_ports", &p.to_string());
    env.create(&owner, &root, &["-l", "low", "-r", &p.to_string()]);
    env.create(&other, &root, &["-l", "low"]);
    let taken = format!("port {p}");
    for route in pick_routes() {
        let args = [route[0], route[1], route[2], &p.to_string(), &p.to_string()];
        let (_, got) = perl(&env, &other, PERL_PICK, &args);
        assert!(!got.contains(&taken), "other cell, {route:?}: {got}");
        let got = host_pick(65534, route, p, p);
        assert!(!got.contains(&taken), "host uid 65534, {route:?}: {got}");
    }

    // The kernel's reservation goes (by hand): list says the cell's one no
    // longer holds everywhere, and binds to port 0 landing on it are refused.
    set_sysctl("ip_local_reserved_ports", "\n");
    let out = env.ctl(&["list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&owner) && err.contains(&p.to_string()),
        "{err}"
    );
    for route in pick_routes().into_iter().filter(|r| r[0] == "bind") {
        let args = [route[0], route[1], route[2], &p.to_string(), &p.to_string()];
        let (_, got) = perl(&env, &other, PERL_PICK, &args);
        assert!(
            got.contains("not permitted"),
            "other cell, {route:?}: {got}"
        );
        let got = host_pick(65534, route, p, p);
        assert!(
            got.contains("not permitted"),
            "host uid 65534, {route:?}: {got}"
        );
        let (_, got) = perl(&env, &owner, PERL_PICK, &args);
        assert_eq!(got, taken, "the owner, {route:?}");
    }
    let denied = env.ok(&["stats", "-T", "-H", "-o", "NAME,DENY_BIND"]);
    assert!(
        denied.contains(&format!("{owner}\t12")),
        "6 binds from the other cell and 6 from the host: {denied}"
    );
}

/// Binds `ADDR:PORT` (4 or 6) with SO_REUSEPORT set before (`before`) or
/// after (`after`) the bind, twice when `twice`; prints `bound` or the error.
pub(super) const PERL_REUSE: &str = r#"use Socket qw(:all);
my ($f, $port, $when, $n) = @ARGV;
for (1 .. $n) {
    socket(my $s, $f == 6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0) or die;
    if ($when eq "before") { setsockopt($s, SOL_SOCKET, SO_REUSEPORT, 1) or do { print "setsockopt: $!\n"; exit 2 } }
    my $a = $f == 6 ? pack_sockaddr_in6($port, inet_pton(AF_INET6, "::1")) : pack_sockaddr_in($port, inet_aton("127.0.0.1"));
    bind($s, $a) or do { print "bind: $!\n"; exit 3 };
    if ($when eq "after") { setsockopt($s, SOL_SOCKET, SO_REUSEPORT, 1) or do { print "setsockopt: $!\n"; exit 4 } }
    listen($s, 5) or do { print "listen: $!\n"; exit 5 };
    push @keep, $s;
}
print "bound\n";
"#;

/// A host socket of `kind` (SOCK_STREAM, SOCK_DGRAM) with `option` (a
/// SOL_SOCKET flag) turned on, bound to loopback at `port`.
fn host_loopback_socket(v6: bool, kind: i32, option: i32, port: u16) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: a new socket, an option and a bind on our own descriptor.
    unsafe {
        let fam = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        let s = libc::socket(fam, kind | libc::SOCK_CLOEXEC, 0);
        assert!(s >= 0);
        let socket = OwnedFd::from_raw_fd(s);
        let one: libc::c_int = 1;
        let rc = libc::setsockopt(
            s,
            libc::SOL_SOCKET,
            option,
            (&one as *const libc::c_int).cast(),
            4,
        );
        assert_eq!(rc, 0);
        let rc = if v6 {
            let mut a: libc::sockaddr_in6 = std::mem::zeroed();
            a.sin6_family = libc::AF_INET6 as u16;
            a.sin6_port = port.to_be();
            a.sin6_addr.s6_addr[15] = 1;
            libc::bind(s, (&a as *const libc::sockaddr_in6).cast(), 28)
        } else {
            let mut a: libc::sockaddr_in = std::mem::zeroed();
            a.sin_family = libc::AF_INET as u16;
            a.sin_port = port.to_be();
            a.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
            libc::bind(s, (&a as *const libc::sockaddr_in).cast(), 16)
        };
        assert_eq!(rc, 0, "host bind of {port}");
        assert_eq!(socket.as_raw_fd(), s);
        socket
    }
}

/// A listening TCP socket on loopback with SO_REUSEPORT, as a host root
/// service has it.
pub(super) fn host_reuseport_listener(v6: bool, port: u16) -> std::net::TcpListener {
    use std::os::fd::AsRawFd;
    let socket = host_loopback_socket(v6, libc::SOCK_STREAM, libc::SO_REUSEPORT, port);
    // SAFETY: listen on our own bound socket.
    assert_eq!(unsafe { libc::listen(socket.as_raw_fd(), 16) }, 0);
    std::net::TcpListener::from(socket)
}

/// A cell cannot join a host root service's SO_REUSEPORT group (and take its
/// connections), on IPv4 or IPv6, nor set the option on a socket bound to a
/// port it does not reserve, nor pick a port with it; on its own reserved
/// port it may share, at every profile.
#[test]
fn cells_cannot_join_a_host_services_port_group() {
    let test = "cells_cannot_join_a_host_services_port_group";
    if !privileged(test) {
        return;
    }
    let mut env = Env::new("reuse");
    let root = env.root("reuse", true);
    let pid = std::process::id();
    let (host4, host6, own, free) = (port(7, 0), port(7, 1), port(7, 2), port(7, 3));
    let _v4 = host_reuseport_listener(false, host4);
    let _v6 = host_reuseport_listener(true, host6);
    for profile in PROFILES {
        let name = format!("ru{profile}{pid}");
        env.create(&name, &root, &["-l", profile, "-r", &own.to_string()]);
        let try_bind = |f: &str, port: u16, when: &str, n: &str| {
            perl(&env, &name, PERL_REUSE, &[f, &port.to_string(), when, n]).1
        };
        let joined = try_bind("4", host4, "before", "1");
        assert!(joined.contains("not permitted"), "{profile}: v4: {joined}");
        let joined = try_bind("6", host6, "before", "1");
        assert!(joined.contains("not permitted"), "{profile}: v6: {joined}");
        let late = try_bind("4", free, "after", "1");
        assert!(
            late.contains("setsockopt: Operation not permitted"),
            "{profile}: {late}"
        );
        let picked = try_bind("4", 0, "before", "1");
        assert!(
            picked.contains("not permitted"),
            "{profile}: port 0: {picked}"
        );
        assert_eq!(
            try_bind("4", own, "before", "2"),
            "bound",
            "{profile}: own port"
        );
        assert_eq!(
            try_bind("6", own, "after", "1"),
            "bound",
            "{profile}: own port, late"
        );
        assert_eq!(
            try_bind("4", free, "none", "1"),
            "bound",
            "{profile}: plain bind"
        );
        env.ok(&["destroy", &name]);
    }
}

/// A cell that reserves no port cannot turn `SO_REUSEPORT` on at all, at
/// any profile: not to join a host root service's group (IPv4, IPv6), not on
/// a socket bound to a free port, not to pick a port; plain binds work. Its
/// own cgroup holds the rule: the installation attaches nothing at the
/// hierarchy root for it.
#[test]
fn a_cell_without_ports_cannot_share_any_port() {
    let test = "a_cell_without_ports_cannot_share_any_port";
    if !privileged(test) {
        return;
    }
    let mut env = Env::new("noshare");
    let root = env.root("noshare", true);
    let pid = std::process::id();
    let (host4, host6, free) = (port(8, 1), port(8, 2), port(8, 3));
    let _v4 = host_reuseport_listener(false, host4);
    let _v6 = host_reuseport_listener(true, host6);
    let store = cells::kernel::linux::state::Store::new(env.dir.join("run/kernel"));
    for profile in PROFILES {
        let name = format!("ns{profile}{pid}");
        env.create(&name, &root, &["-l", profile]);
        assert_eq!(
            store.lock().unwrap().table.bind_guard,
            None,
            "{profile}: programs attached at the root for a cell without ports"
        );
        let try_bind = |f: &str, port: u16, when: &str| {
            perl(&env, &name, PERL_REUSE, &[f, &port.to_string(), when, "1"]).1
        };
        for (f, port) in [("4", host4), ("6", host6), ("4", 0)] {
            let joined = try_bind(f, port, "before");
            assert!(
                joined.contains("setsockopt: Operation not permitted"),
                "{profile}: v{f} port {port}: {joined}"
            );
        }
        let late = try_bind("4", free, "after");
        assert!(
            late.contains("setsockopt: Operation not permitted"),
            "{profile}: {late}"
        );
        assert_eq!(
            try_bind("6", free, "none"),
            "bound",
            "{profile}: plain bind"
        );
        env.ok(&["destroy", &name]);
    }
}

/// Sets SO_REUSEADDR on a new socket (`udp` or `tcp`), reads it back and
/// binds it to loopback (IPv4 or IPv6) at the port; prints what the option
/// reads and what the bind did.
const PERL_REUSEADDR: &str = r#"use Socket qw(:all);
my ($f, $port, $kind) = @ARGV;
socket(my $s, $f == 6 ? AF_INET6 : AF_INET, $kind eq "udp" ? SOCK_DGRAM : SOCK_STREAM, 0) or die;
setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1) or do { print "setsockopt: $!\n"; exit 2 };
my $on = unpack("i", getsockopt($s, SOL_SOCKET, SO_REUSEADDR));
my $a = $f == 6 ? pack_sockaddr_in6($port, inet_pton(AF_INET6, "::1")) : pack_sockaddr_in($port, inet_aton("127.0.0.1"));
bind($s, $a) or do { print "option $on, bind: $!\n"; exit 3 };
print "option $on, bound\n";
"#;

/// A UDP socket on loopback with SO_REUSEADDR, as an mDNS, DHCP or DNS
/// daemon on the host binds it.
fn host_reuseaddr_udp(v6: bool, port: u16) -> std::net::UdpSocket {
    std::net::UdpSocket::from(host_loopback_socket(
        v6,
        libc::SOCK_DGRAM,
        libc::SO_REUSEADDR,
        port,
    ))
}

/// Two UDP sockets with SO_REUSEADDR share a port whatever their uids, and
/// the newer gets the unicast datagrams: no cell, with or without ports, at
/// any profile, joins a host service's UDP port that way (IPv4, IPv6). The
/// option still succeeds for the cell's programs and does nothing on
/// datagram sockets; on TCP sockets it works as ever.
#[test]
fn no_cell_takes_a_host_services_udp_port_with_reuseaddr() {
    let test = "no_cell_takes_a_host_services_udp_port_with_reuseaddr";
    if !privileged(test) {
        return;
    }
    let mut env = Env::new("udpshare");
    let root = env.root("udpshare", true);
    let pid = std::process::id();
    let (host4, host6, own, free) = (port(4, 2), port(4, 3), port(2, 2), port(2, 3));
    let _v4 = host_reuseaddr_udp(false, host4);
    let _v6 = host_reuseaddr_udp(true, host6);
    for profile in PROFILES {
        for ports in [false, true] {
            let name = format!("ua{profile}{}{pid}", u8::from(ports));
            let mut flags = vec!["-l", profile];
            let own = own.to_string();
            if ports {
                flags.extend(["-r", &own]);
            }
            env.create(&name, &root, &flags);
            let probe = |f: &str, port: u16, kind: &str| {
                perl(&env, &name, PERL_REUSEADDR, &[f, &port.to_string(), kind]).1
            };
            let what = format!("{profile}, ports {ports}");
            for (f, port) in [("4", host4), ("6", host6)] {
                assert_eq!(
                    probe(f, port, "udp"),
                    "option 0, bind: Address already in use",
                    "{what}: v{f} UDP {port}"
                );
            }
            assert_eq!(probe("4", free, "udp"), "option 0, bound", "{what}");
            assert_eq!(probe("6", free, "tcp"), "option 1, bound", "{what}");
            env.ok(&["destroy", &name]);
        }
    }
}

// ---------------------------------------------------------------------------
// Keyrings
// ---------------------------------------------------------------------------

/// Asks for the caller's user keyring id (KEYCTL_GET_KEYRING_ID, no create)
/// and calls add_key and request_key with arguments the kernel would refuse
/// (no type): nothing is put into any keyring. Prints the errno of each.
const PERL_KEYS: &str = r#"my @r;
push @r, syscall(250, 0, -4, 0) < 0 ? $!+0 : "id";
push @r, syscall(248, 0, 0, 0, 0, -4) < 0 ? $!+0 : "added";
push @r, syscall(249, 0, 0, 0, 0) < 0 ? $!+0 : "found";
print join(" ", @r), "\n";
"#;

/// Kernel keyrings are not namespaced: no profile reaches them.
#[test]
fn no_profile_reaches_the_kernel_keyrings() {
    if !privileged("no_profile_reaches_the_kernel_keyrings") || !cfg!(target_arch = "x86_64") {
        return;
    }
    let mut env = Env::new("keys");
    let root = env.root("keys", true);
    let pid = std::process::id();
    for profile in PROFILES {
        let name = format!("k{profile}{pid}");
        env.create(&name, &root, &["-l", profile]);
        let (_, got) = perl(&env, &name, PERL_KEYS, &[]);
        assert_eq!(got, format!("{EPERM} {EPERM} {EPERM}"), "{profile}");
        env.ok(&["destroy", &name]);
    }
}

// ---------------------------------------------------------------------------
// Abstract unix sockets and signals
// ---------------------------------------------------------------------------

/// Connects to the abstract unix socket `NAME` (stream); prints `connected`
/// or the error.
const PERL_ABSTRACT: &str = r#"use Socket qw(:all);
socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die;
connect($s, pack_sockaddr_un("\0" . $ARGV[0])) or do { print "connect: $!\n"; exit 3 };
print "connected\n";
"#;

/// Listens on the abstract socket `NAME` until killed (ready: /tmp/listening).
const PERL_ABSTRACT_LISTEN: &str = r#"use Socket qw(:all);
socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die;
bind($s, pack_sockaddr_un("\0" . $ARGV[0])) or die "bind: $!";
listen($s, 5) or die;
open(my $r, ">", "/tmp/listening"); close $r;
while (accept(my $c, $s)) { close $c }
"#;

/// All processes of a cell share one Landlock domain: a process started
/// later (cellctl exec) can signal the service (started through the kernel
/// API, as the supervisor does); a cell reaches no abstract unix socket made
/// outside it, the host's or another cell's; at every profile.
#[test]
fn cells_signal_their_own_and_reach_no_outside_abstract_socket() {
    let test = "cells_signal_their_own_and_reach_no_outside_abstract_socket";
    if !privileged(test) {
        return;
    }
    use cells::kernel::{ExecSpec, Stdio, Target};
    let mut env = Env::new("scope");
    let root = env.root("scope", true);
    let pid = std::process::id();
    let host_name = format!("cells-test-host-{pid}");
    let host = std::os::unix::net::UnixListener::bind_addr(
        &std::os::unix::net::SocketAddr::from_abstract_name(host_name.as_bytes()).unwrap(),
    )
    .unwrap();
    let kernel = cells::kernel::host(&env.config()).unwrap();
    let neighbour = format!("scn{pid}");
    env.create(&neighbour, &root, &["-l", "low"]);
    let neighbour_name = format!("cells-test-cell-{pid}");
    let mut listening = env.background(
        &neighbour,
        &["/usr/bin/perl", "-e", PERL_ABSTRACT_LISTEN, &neighbour_name],
    );
    wait_for_file(&root.join("tmp/listening"));
    for profile in PROFILES {
        let name = format!("sc{profile}{pid}");
        env.create(&name, &root, &["-l", profile]);
        let service = ExecSpec {
            argv: vec!["/bin/sleep".into(), "1000".into()],
            ..ExecSpec::default()
        };
        let mut child = kernel
            .spawn(
                &Target::Name(name.clone()),
                &service,
                [Stdio::Null, Stdio::Null, Stdio::Null],
            )
            .unwrap();
        let (rc, _, err) = env.sh(&name, "kill -HUP $(pidof sleep)");
        assert_eq!(rc, 0, "{profile}: signalling the service: {err}");
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGHUP),
            "{profile}"
        );
        let (_, got) = perl(&env, &name, PERL_ABSTRACT, &[&host_name]);
        assert!(
            got.contains("not permitted"),
            "{profile}: host socket: {got}"
        );
        let (_, got) = perl(&env, &name, PERL_ABSTRACT, &[&neighbour_name]);
        assert!(
            got.contains("not permitted"),
            "{profile}: other cell: {got}"
        );
        env.ok(&["destroy", &name]);
    }
    // The host reaches the cell's socket (Landlock limits the cell only).
    std::os::unix::net::UnixStream::connect_addr(
        &std::os::unix::net::SocketAddr::from_abstract_name(neighbour_name.as_bytes()).unwrap(),
    )
    .unwrap();
    drop(host);
    env.sh(&neighbour, "kill -9 -1");
    let _ = listening.wait();
}

// ---------------------------------------------------------------------------
// The cell's own init
// ---------------------------------------------------------------------------

/// Everything cell root tries against its own init (pid 1 in the cell, which
/// holds descriptors of host directories: the cell's runtime directory, its
/// cgroup, the agent's socket). Prints what it reached, one item a line.
const INIT_PROBE: &str = r#"
my @reached;
for my $sig (qw(KILL STOP TSTP TERM INT HUP QUIT USR1 USR2 ALRM ABRT SEGV CHLD PIPE)) {
    kill $sig, 1;
}
for my $req (16, 0x4206) {    # PTRACE_ATTACH, PTRACE_SEIZE
    push @reached, "ptrace $req" if syscall(101, $req, 1, 0, 0) != -1;
}
sub entries { opendir(my $d, $_[0]) or return 0; scalar grep { !/^\.\.?$/ } readdir $d }
print "listed /proc/1/fd\n" if entries("/proc/1/fd");
for my $n (0 .. 63) {
    push @reached, "the link /proc/1/fd/$n" if defined readlink("/proc/1/fd/$n");
    push @reached, "the file /proc/1/fd/$n" if open(my $f, "<", "/proc/1/fd/$n");
}
for my $p (qw(root cwd map_files fdinfo)) {
    push @reached, "/proc/1/$p" if entries("/proc/1/$p/");
}
for my $p (qw(mem environ)) {
    push @reached, "/proc/1/$p" if open(my $f, "<", "/proc/1/$p");
}
my $pidfd = syscall(434, 1, 0);    # pidfd_open: no check; its use is checked
if ($pidfd >= 0) {
    for my $n (0 .. 63) {
        push @reached, "pidfd_getfd $n" if syscall(438, $pidfd, $n, 0) >= 0;
    }
}
# process_vm_readv: a refusal is EPERM/EACCES (or ENOSYS from seccomp); any
# other outcome means the access check passed.
my $buf = "\0" x 16;
my $local = pack("QQ", unpack("J", pack("p", $buf)), 16);
my $remote = pack("QQ", 0x10000, 16);
my $r = syscall(310, 1, $local, 1, $remote, 1, 0);
push @reached, "process_vm_readv" if $r >= 0 || !($!{EPERM} || $!{EACCES} || $!{ENOSYS});
print "$_\n" for @reached;
print "done\n";
"#;

/// Cell root, at every profile, cannot stop, kill or confuse its init with
/// a signal, trace it, read its memory or environment, or reach the host
/// descriptors it holds (through /proc/1/fd, its root or cwd, or
/// pidfd_getfd); the init still serves the cell afterwards. This is what
/// makes it safe for the init to hold host descriptors at all (and what a
/// supervisor folded into it relies on).
#[test]
fn cell_root_cannot_signal_trace_or_reach_into_its_init() {
    let test = "cell_root_cannot_signal_trace_or_reach_into_its_init";
    if !privileged(test) {
        return;
    }
    let mut env = Env::new("initprobe");
    let root = env.root("initprobe", true);
    // The init also supervises a service: it holds the supervision
    // directory and a socket to the syslog daemon while probed.
    let conf = env.dir.join("cellmgr.conf");
    let mut text: String = std::fs::read_to_string(&conf)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("CELL_SUPERVISOR="))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str("CELL_SUPERVISOR=init\n");
    std::fs::write(&conf, text).unwrap();
    let cfg = cells::config::Config::load_from(&conf).unwrap();
    let kernel = cells::kernel::host(&cfg).unwrap();
    let pid = std::process::id();
    for profile in PROFILES {
        let name = format!("ip{profile}{pid}");
        env.create(&name, &root, &["-l", profile]);
        env.ok(&["supervise", &name, "/bin/sleep", "1000"]);
        let init = env.record(&name);
        let held: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", init.init_pid))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .filter(|l| l.starts_with(&env.dir))
            .collect();
        assert!(
            held.contains(&cfg.run_dir.join("supervise").join(&name)),
            "{profile}: the init holds no supervision directory: {held:?}"
        );
        let (rc, out) = perl(&env, &name, INIT_PROBE, &[]);
        assert_eq!(rc, 0, "{profile}: the probe failed: {out}");
        // Where cell root is host uid 0 (low, and every profile on host ids)
        // the mode of /proc/1/fd lets it list the descriptor numbers (each
        // entry still checks for ptrace access, which the non-dumpable init
        // refuses); nothing more.
        let out = if profile == "low" || !cellenv::userns() {
            out.replace("listed /proc/1/fd\n", "")
        } else {
            out
        };
        assert_eq!(out, "done", "{profile}: cell root reached its init:\n{out}");
        // Neither stopped nor replaced: the same init serves the next command.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", init.init_pid)).unwrap();
        let state = stat.rsplit_once(") ").unwrap().1.chars().next();
        assert!(
            !matches!(state, Some('T' | 't' | 'Z')),
            "{profile}: the init's state: {stat}"
        );
        let mut next = env
            .command()
            .args(["exec", &name, "/bin/true"])
            .spawn()
            .unwrap();
        let status = wait_child(&mut next, "a command after the probe");
        assert!(status.success(), "{profile}: the init no longer serves");
        assert!(
            cells::kernel::linux::ns::init_alive(&init),
            "{profile}: the init died"
        );
        let status = cells::supervise::status(&cfg, &name).unwrap();
        assert!(
            status.is_some_and(|s| s.supervisor_pid == init.init_pid as u32),
            "{profile}: the init no longer supervises"
        );
        cells::supervise::stop(&cfg, &*kernel, &name, Duration::from_secs(1)).unwrap();
        env.ok(&["destroy", &name]);
    }
}

// ---------------------------------------------------------------------------
// Namespaces and cgroups
// ---------------------------------------------------------------------------

/// No profile makes a user namespace (or any other), so none mounts the
/// host's cgroup hierarchies; each cell has its own cgroup namespace; what
/// container runtimes mask in /proc is masked.
#[test]
fn cells_make_no_namespaces_and_see_only_their_own_cgroup() {
    let test = "cells_make_no_namespaces_and_see_only_their_own_cgroup";
    if !privileged(test) {
        return;
    }
    let mut env = Env::new("ns");
    let root = env.root("ns", false);
    let pid = std::process::id();
    std::fs::create_dir_all(root.join("mnt")).unwrap();
    for profile in PROFILES {
        let name = format!("ns{profile}{pid}");
        env.create(&name, &root, &["-l", profile]);
        // The mount is the probe: it never writes a control file.
        let (rc, out, err) = env.sh(
            &name,
            "unshare -U -r -C -m sh -c 'mount -t cgroup -o memory none /mnt && echo MOUNTED; umount /mnt'",
        );
        assert!(
            !out.contains("MOUNTED"),
            "{profile}: mounted a cgroup hierarchy"
        );
        assert_ne!(rc, 0, "{profile}: {err}");
        for flags in ["-U", "-U -r", "-n", "-p -f"] {
            let (rc, _, _) = env.sh(&name, &format!("unshare {flags} true"));
            assert_ne!(rc, 0, "{profile}: unshare {flags}");
        }
        let (rc, out, _) = env.sh(&name, "cat /proc/self/cgroup");
        assert_eq!(rc, 0);
        // Every hierarchy shows the cell's own group as its root (a v1
        // process limit holds the cell's processes one level down).
        for line in out.lines() {
            assert!(
                line.ends_with(":/") || line.ends_with(":/members"),
                "{profile}: cgroup not private: {out}"
            );
        }
        let (_, out, _) = env.sh(
            &name,
            "for f in keys timer_list kcore sched_debug timer_stats latency_stats; do \
             [ -e /proc/$f ] && wc -c < /proc/$f; done; ls -A /proc/acpi /proc/scsi 2>/dev/null",
        );
        assert!(
            out.lines().all(|l| l.trim() == "0" || l.ends_with(':')),
            "{profile}: /proc shows masked files: {out}"
        );
        env.ok(&["destroy", &name]);
    }
}

/// Destroy counts members in child cgroups of the cell's and removes them
/// deepest first; the table entry and the ports go only after the cgroup.
#[test]
fn destroy_removes_child_cgroups_and_leaves_nothing() {
    if !privileged("destroy_removes_child_cgroups_and_leaves_nothing") {
        return;
    }
    let mut env = Env::new("cgtree");
    let root = env.root("cgtree", false);
    let name = format!("cgt{}", std::process::id());
    let p = port(8, 0);
    env.create(&name, &root, &["-l", "low", "-r", &p.to_string()]);
    let store = cells::kernel::linux::state::Store::new(env.dir.join("run/kernel"));
    let cgroup = store.lock().unwrap().table.cells[0].cgroup.clone();
    // A subtree inside the cell's cgroup with a member in its deepest leaf
    // (as a cell with a delegated subtree would make).
    let leaf = cgroup.join("a/b");
    std::fs::create_dir_all(&leaf).unwrap();
    std::fs::create_dir_all(cgroup.join("c")).unwrap();
    let init = store.lock().unwrap().table.cells[0].init_pid;
    let mut sleeper = env.background(&name, &["/bin/sleep", "1000"]);
    let member = wait_member(&cgroup, init);
    std::fs::write(leaf.join("cgroup.procs"), member.to_string()).unwrap();
    let out = env.ctl(&["destroy", &name]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "destroy with a member in a child cgroup"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("busy"));
    env.sh(&name, "kill -9 -1");
    let _ = sleeper.wait();
    env.ok(&["destroy", &name]);
    assert!(!cgroup.exists(), "cgroup {} left behind", cgroup.display());
    assert!(env.list_rows().is_empty());
    assert_eq!(
        host_bind(65534, false, false, p),
        0,
        "the port stayed reserved"
    );
}

/// A member of a cgroup other than `init` (its own cgroup.procs), once there
/// is one.
fn wait_member(cgroup: &Path, init: i32) -> i32 {
    let mut found = None;
    wait_until(
        "a member in the cell's cgroup",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            found = std::fs::read_to_string(cgroup.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .find(|&p| p != init);
            found.is_some()
        },
    );
    found.unwrap()
}

// ---------------------------------------------------------------------------
// The low profile, said plainly
// ---------------------------------------------------------------------------

/// cellmgr warns when a manifest asks for the low profile, in words: low
/// permits host-wide administration.
#[test]
fn cellmgr_warns_when_a_manifest_asks_for_low() {
    let w = World::new("low-warn");
    let out = w.run(&["cell", "create", "lax", "--profile", "low"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning") && err.contains("lax") && err.contains("host-wide administration"),
        "{err}"
    );
    let out = w.run(&["cell", "set", "lax", "--profile", "medium"]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("host-wide"),
        "warned about medium"
    );
    let out = w.run(&["cell", "set", "lax", "--profile", "low"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("host-wide administration"));
}
