//! Helpers for the conformance suite: a private configuration and run directory
//! per test, busybox roots, the real `cells` binary, host-side bind probes.
//! Everything a test creates is removed by `Drop`, also when the test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const BIN: &str = env!("CARGO_BIN_EXE_cells");

/// True when running as root; otherwise prints why `test` is skipped.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("SKIPPED {test}: needs root (namespaces, cgroups, BPF); run the suite as root");
    false
}

/// True when busybox-static is installed; otherwise prints why `test` is skipped.
pub fn busybox_or_skip(test: &str) -> bool {
    if Path::new("/bin/busybox").exists() {
        return true;
    }
    eprintln!("SKIPPED {test}: /bin/busybox missing (apt-get install busybox-static)");
    false
}

/// Whether this run gives cells at medium and high user namespaces (the
/// default); `CELLS_TEST_USERNS=NO` runs the suite against the host-id model
/// (`CELL_USERNS=NO`), which cells made before user namespaces keep.
pub fn userns() -> bool {
    std::env::var("CELLS_TEST_USERNS").map_or(true, |v| v != "NO")
}

/// Where services are supervised (`CELLS_TEST_SUPERVISOR=process`: by
/// supervisor processes, `CELL_SUPERVISOR=process`); `None`: the default
/// (the cell's init on Linux).
pub fn test_supervisor() -> Option<String> {
    std::env::var("CELLS_TEST_SUPERVISOR").ok()
}

/// The profile of cells whose test names none (`CELLS_TEST_PROFILE`);
/// `None`: cellctl's default.
pub fn test_profile() -> Option<String> {
    std::env::var("CELLS_TEST_PROFILE").ok()
}

/// A port no other test (in this or a concurrent run) uses: four per test
/// (`k` < 4, `test` < 10), offset by the process id. 10000-19999: below
/// `tests/support`'s ports (20000 and up), so suites of both kinds may run
/// at once.
pub fn port(test: u16, k: u16) -> u16 {
    assert!(test < 10 && k < 4);
    10_000 + (std::process::id() % 250) as u16 * 40 + test * 4 + k
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One test's world: a temp directory with `cellmgr.conf`, a run directory and
/// cell roots; cells and mounts made through it are removed on drop.
pub struct Env {
    pub dir: PathBuf,
    conf: PathBuf,
    mounts: Vec<PathBuf>,
}

impl Env {
    pub fn new(tag: &str) -> Env {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("cells-t-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run")).unwrap();
        // cellmgr.conf is read under strict modes: root's, not writable by others.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let conf = dir.join("cellmgr.conf");
        // The journal too: tests never write to /var/log.
        let mut text = format!(
            "CELL_RUN_DIR={}\nCELL_AUDIT_LOG={}\n",
            dir.join("run").display(),
            dir.join("audit.log").display()
        );
        if !userns() {
            text.push_str("CELL_USERNS=NO\n");
        }
        if let Some(place) = test_supervisor() {
            text.push_str(&format!("CELL_SUPERVISOR={place}\n"));
        }
        std::fs::write(&conf, text).unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        Env {
            dir,
            conf,
            mounts: Vec::new(),
        }
    }

    /// A root with static busybox and its applets in /bin; with `host_usr`, the
    /// host's /usr is bind-mounted read-only at /usr (a mount placed in the root
    /// before create, as the control plane does) so perl is available.
    pub fn root(&mut self, name: &str, host_usr: bool) -> PathBuf {
        let root = self.dir.join(format!("root-{name}"));
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
            }
        }
        // World-writable and sticky, as every system's /tmp: at medium and
        // high cell root is not host root and owns nothing in this root.
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        if host_usr {
            let usr = root.join("usr");
            std::fs::create_dir_all(&usr).unwrap();
            let st = Command::new("mount")
                .args(["--bind", "-o", "ro", "/usr"])
                .arg(&usr)
                .status()
                .unwrap();
            assert!(st.success(), "bind-mounting /usr into {}", root.display());
            self.mounts.push(usr);
            for lib in ["lib", "lib64"] {
                let _ = std::os::unix::fs::symlink(format!("usr/{lib}"), root.join(lib));
            }
        }
        root
    }

    /// The configuration the cellctl runs of this environment read.
    pub fn config(&self) -> cells::config::Config {
        cells::config::Config::load_from(&self.conf).unwrap()
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("ctl")
            .env("CELLMGR_CONF", &self.conf)
            .env("CELLS_LOG", "warn");
        c
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Runs cellctl and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "cellctl {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Creates a cell; returns its id. A test that names no profile gets
    /// `CELLS_TEST_PROFILE` (low, medium or high) when set, else cellctl's
    /// default (high): the suite runs at each profile this way.
    pub fn create(&self, name: &str, root: &Path, flags: &[&str]) -> u64 {
        let mut args = vec!["create", "-n", name];
        args.extend_from_slice(flags);
        let profile = test_profile();
        if let Some(p) = &profile {
            if !flags
                .iter()
                .any(|f| ["-l", "--level", "--profile"].contains(f))
            {
                args.extend_from_slice(&["-l", p]);
            }
        }
        let root = root.to_str().unwrap();
        args.push(root);
        let out = self.ok(&args);
        out.trim()
            .strip_prefix("cell ")
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("create printed {out:?}"))
    }

    /// Runs a shell command in a cell: (exit code, stdout, stderr).
    pub fn sh(&self, cell: &str, script: &str) -> (i32, String, String) {
        let out = self.ctl(&["exec", cell, "/bin/sh", "-c", script]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts a long-running command in a cell; the caller kills it.
    pub fn background(&self, cell: &str, argv: &[&str]) -> Child {
        self.command()
            .args(["exec", cell])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Member processes of the cell `name` (the PROCS column of `list`).
    pub fn procs(&self, name: &str) -> u64 {
        self.list_rows()
            .iter()
            .find(|r| r[1] == name)
            .map_or(0, |r| r[3].parse().unwrap())
    }

    /// `list -T -H` rows as columns.
    /// The kernel table's record of cell `name` (its init's pid, cgroup, ids).
    pub fn record(&self, name: &str) -> cells::kernel::linux::state::CellRecord {
        let store = cells::kernel::linux::state::Store::new(self.dir.join("run/kernel"));
        let locked = store.lock().unwrap();
        let found = locked.table.cells.iter().find(|c| c.name == name).cloned();
        found.unwrap_or_else(|| panic!("no cell {name} in the kernel table"))
    }

    pub fn list_rows(&self) -> Vec<Vec<String>> {
        self.ok(&["list", "-T", "-H"])
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for row in self.list_rows() {
            let id = &row[0];
            // Everything but the init: kill(-1) from the cell's root.
            let _ = self.ctl(&["exec", id, "/bin/kill", "-9", "-1"]);
            for _ in 0..100 {
                if self.ctl(&["destroy", id]).status.success() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        for m in self.mounts.drain(..) {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `done` until it holds; panics naming `what` after `within`. The
/// suite waits on events, never on a fixed sleep (it runs on loaded machines).
pub fn wait_until(what: &str, within: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Binds a TCP or UDP socket on loopback (IPv4 or IPv6) in a child process running
/// as `uid` on the host; returns 0 on success or the errno.
pub fn host_bind(uid: u32, v6: bool, udp: bool, port: u16) -> i32 {
    // SAFETY: the child only makes async-signal-safe system calls and _exits.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            if uid != 0
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(uid, uid, uid) != 0
                    || libc::setresuid(uid, uid, uid) != 0)
            {
                libc::_exit(200);
            }
            libc::_exit(bind_errno(v6, udp, port));
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        assert!(libc::WIFEXITED(status));
        libc::WEXITSTATUS(status)
    }
}

unsafe fn bind_errno(v6: bool, udp: bool, port: u16) -> i32 {
    let ty = if udp {
        libc::SOCK_DGRAM
    } else {
        libc::SOCK_STREAM
    };
    let fam = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let s = libc::socket(fam, ty, 0);
    if s < 0 {
        return 201;
    }
    let rc = if v6 {
        let mut a: libc::sockaddr_in6 = std::mem::zeroed();
        a.sin6_family = libc::AF_INET6 as u16;
        a.sin6_port = port.to_be();
        a.sin6_addr.s6_addr[15] = 1;
        libc::bind(
            s,
            &a as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&a) as u32,
        )
    } else {
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        a.sin_family = libc::AF_INET as u16;
        a.sin_port = port.to_be();
        a.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        libc::bind(
            s,
            &a as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&a) as u32,
        )
    };
    if rc == 0 {
        0
    } else {
        *libc::__errno_location()
    }
}

/// A perl script that binds `family(4|6) proto(tcp|udp) port` on loopback and
/// prints `bound` or the error.
pub const PERL_BIND: &str = r#"use Socket qw(:all);
my ($f, $t, $p) = @ARGV;
my $fam = $f == 6 ? AF_INET6 : AF_INET;
socket(my $s, $fam, $t eq "udp" ? SOCK_DGRAM : SOCK_STREAM, 0) or do { print "socket: $!\n"; exit 2 };
my $a = $f == 6 ? pack_sockaddr_in6($p, inet_pton(AF_INET6, "::1")) : pack_sockaddr_in($p, inet_aton("127.0.0.1"));
bind($s, $a) or do { print "bind: $!\n"; exit 3 };
print "bound\n";"#;

/// Host processes whose command line mentions `needle` (to prove none is left).
pub fn host_processes_mentioning(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                found.push(pid);
            }
        }
    }
    found
}
