//! The one harness of the integration tests (`mod support;`): what every test
//! binary needs (the binary, skip checks, temporary directories, ports,
//! waiting, helper tests re-run as another user) here, and by concern:
//! - [`world`]: a temporary cellmgr world (`World`) driving the real `cellmgr`;
//! - [`ctl`]: a temporary cellctl environment (`Env`) with busybox roots;
//! - [`ipc`]: an in-memory control plane behind a real bridge socket, and
//!   hand-made protocol frames;
//! - [`tmux`]: the real `cellui` in a real terminal;
//! - [`ssh`]: a stand-in `ssh` and a real sshd on 127.0.0.1, for `-H`.

// Each test binary uses a different part.
#![allow(dead_code)]

pub mod ipc;
pub mod ssh;
pub mod tmux;
pub mod world;

/// The cellctl harness. It stays at `tests/cellenv` until the conformance suite
/// switches to `mod support;`; through this path both name one copy.
#[path = "../cellenv/mod.rs"]
pub mod ctl;

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cells");

/// The host's static busybox, if installed.
pub fn busybox() -> Option<&'static str> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// True when running as root with busybox installed (what real cells need);
/// otherwise prints why `test` is skipped.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("{test}: skipped: needs root (mounts, kernel cells)");
        return false;
    }
    if busybox().is_none() {
        eprintln!("{test}: skipped: needs busybox (apt-get install busybox-static)");
        return false;
    }
    true
}

/// A port for this test run: distinct per process and per `k`; below the
/// kernel's ephemeral range (32768 and up by default), where reservations
/// hold.
pub fn port(k: u16) -> u16 {
    20_000 + (std::process::id() % 600) as u16 * 16 + k
}

/// A new, empty directory under the system temp directory, unique to this
/// process and call: `<prefix>-<tag>-<pid>-<n>`. Mode 0755 whatever the umask:
/// cellmgr reads its configuration and manifests from here under strict
/// modes (owned by root, writable only by root; the temp directory itself is
/// root's and sticky), see `trusted_dir`.
pub fn fresh_dir(prefix: &str, tag: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("{prefix}-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    trusted_dir(&dir);
    dir
}

/// Creates `dir` (and missing parents) with mode 0755, whatever the umask.
pub fn trusted_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Writes a file cellmgr reads under strict modes: mode 0644 whatever the umask.
pub fn write_trusted(path: &Path, text: impl AsRef<[u8]>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(fresh_dir("cells-test", tag))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `probe` every `every` until it yields a value; panics naming `what`
/// when `within` has passed first.
pub fn wait_for<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(every);
    }
}

/// `wait_for` a condition.
/// Services are supervised by the cells' inits in this run: the default
/// on Linux, unless `CELLS_TEST_SUPERVISOR=process` (`CELL_SUPERVISOR`) asks
/// for supervisor processes.
pub fn supervised_by_init() -> bool {
    match std::env::var("CELLS_TEST_SUPERVISOR") {
        Ok(v) => v == "init",
        Err(_) => cfg!(target_os = "linux"),
    }
}

/// The directory of `cell`'s supervisor files under `run_dir`: `supervise/`
/// for a supervisor process, `supervise/<cell>/` for the cell's init.
pub fn supervise_dir(run_dir: &Path, cell: &str) -> PathBuf {
    let dir = run_dir.join("supervise");
    if supervised_by_init() {
        dir.join(cell)
    } else {
        dir
    }
}

/// One of `cell`'s supervisor files (`status`, `lock`, `log`, `syslog`):
/// `supervise/<cell>.<what>`, or `supervise/<cell>/<what>` in the init's.
pub fn supervise_file(run_dir: &Path, cell: &str, what: &str) -> PathBuf {
    if supervised_by_init() {
        supervise_dir(run_dir, cell).join(what)
    } else {
        supervise_dir(run_dir, cell).join(format!("{cell}.{what}"))
    }
}

pub fn wait_until(what: &str, within: Duration, every: Duration, mut done: impl FnMut() -> bool) {
    wait_for(what, within, every, || done().then_some(()))
}

pub fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Runs the test `helper` of this test binary as `uid`:`gid` with `env` set
/// (a helper does nothing without it), and returns the line it printed from
/// `marker` on.
pub fn run_helper_as(
    helper: &str,
    env: (&str, &OsStr),
    uid: u32,
    gid: u32,
    marker: &str,
) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", helper, "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.find(marker).map(|at| l[at..].to_string()))
        .unwrap_or_else(|| panic!("the helper {helper} printed no {marker}: {text}"))
}

/// Every Rust file below `dir`.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Fails when `text` (something a user sees) holds a Rust `Debug` dump, such
/// as `Io(Error { kind: UnexpectedEof, … })`.
pub fn assert_no_debug_dump(text: &str, what: &str) {
    for shape in [
        "Error {",
        "kind:",
        "Io(",
        "Semantic(",
        "Syntax(",
        "Some(",
        "None)",
        "Custom {",
        "RecursionLimitExceeded",
    ] {
        assert!(
            !text.contains(shape),
            "{what}: a Debug dump ({shape}) in: {text}"
        );
    }
}

/// A seeded xorshift for tests that explore (random kill points, generated
/// inputs): the seed comes from the environment variable `var` when set, so a
/// failing run can be repeated, else from the clock. `stream` separates the
/// tests that share one seed.
pub struct Rng(u64);

impl Rng {
    /// The generator and the seed it came from (for the failure message).
    pub fn seeded(var: &str, stream: u64) -> (Rng, u64) {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        (
            Rng((seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1),
            seed,
        )
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// True once `pid` is stopped (or gone).
pub fn stopped(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('T'))
    })
}

/// True while some process holds the `flock` on `path`.
pub fn locked(path: &std::path::Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own; released when `f` closes.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 }
}
