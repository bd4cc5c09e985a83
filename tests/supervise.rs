//! `cellctl supervise` end to end: the real binary detaches a supervisor that
//! runs a service inside a real cell, forwards its output to a test syslog
//! socket, restarts it, and stops it without leaving members behind (the cell
//! can be destroyed afterwards). Needs root; prints that it was skipped otherwise.

mod support;

use cells::config::Config;
use cells::supervise::{self, SupervisorState, SupervisorStatus};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};
use support::ctl::{self, Env};
use support::{wait_for, wait_until};

fn privileged(test: &str) -> bool {
    ctl::root_or_skip(test) && ctl::busybox_or_skip(test)
}

/// A cell, a syslog socket for it, and the configuration the binary reads.
struct World {
    cfg: Config,
    kernel: Box<dyn cells::kernel::Kernel>,
    syslog: UnixDatagram,
    cell: String,
    id: u64,
    // Dropped last: destroys the cell after the supervisor is stopped.
    env: Env,
}

impl World {
    fn new(tag: &str, cell: &str) -> World {
        World::with_flags(tag, cell, &[])
    }

    fn with_flags(tag: &str, cell: &str, create_flags: &[&str]) -> World {
        World::with_conf(tag, cell, create_flags, "")
    }

    /// With extra cellmgr.conf lines; the syslog socket is `<dir>/log`.
    fn with_conf(tag: &str, cell: &str, create_flags: &[&str], extra: &str) -> World {
        let mut env = Env::new(tag);
        let socket = env.dir.join("log");
        let conf = env.dir.join("cellmgr.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!("CELL_SYSLOG_SOCKET={}\n{extra}", socket.display()));
        std::fs::write(&conf, text).unwrap();
        let syslog = UnixDatagram::bind(&socket).unwrap();
        syslog
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let root = env.root(cell, false);
        let id = env.create(cell, &root, create_flags);
        let cfg = Config::load_from(&conf).unwrap();
        World {
            kernel: cells::kernel::host(&cfg).unwrap(),
            cfg,
            syslog,
            cell: cell.to_string(),
            id,
            env,
        }
    }

    fn record(&self, pred: impl Fn(&str) -> bool) -> String {
        let mut buf = vec![0u8; 2048];
        loop {
            let n = self.syslog.recv(&mut buf).expect("a syslog record in time");
            let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
            if pred(&rec) {
                return rec;
            }
        }
    }

    /// The first stdout and the first stderr record, in either order (the
    /// service's two pipes are read in turns).
    fn first_output(&self) -> (String, String) {
        let (mut out, mut err) = (None, None);
        while out.is_none() || err.is_none() {
            let rec = self.record(|r| r.contains("stdout:") || r.contains("stderr:"));
            if rec.contains("stdout:") {
                out.get_or_insert(rec);
            } else {
                err.get_or_insert(rec);
            }
        }
        (out.unwrap(), err.unwrap())
    }

    fn status_until(&self, pred: impl Fn(&SupervisorStatus) -> bool) -> SupervisorStatus {
        wait_for(
            "the supervisor status to match",
            Duration::from_secs(30),
            Duration::from_millis(25),
            || {
                supervise::status(&self.cfg, &self.cell)
                    .unwrap()
                    .filter(&pred)
            },
        )
    }
}

impl World {
    /// The service is supervised in the cell's init (`CELLS_TEST_SUPERVISOR=init`).
    fn in_init(&self) -> bool {
        self.cfg.supervise_in_init
    }

    /// The directory of the supervisor's files: `supervise/` for a supervisor
    /// process, `supervise/<cell>/` (the init's) in the cell's init.
    fn supervision_dir(&self) -> std::path::PathBuf {
        let dir = self.cfg.run_dir.join("supervise");
        if self.in_init() {
            dir.join(&self.cell)
        } else {
            dir
        }
    }

    /// One of the supervisor's files: `log`, `syslog`, `status`, `lock`.
    fn file(&self, what: &str) -> std::path::PathBuf {
        if self.in_init() {
            self.supervision_dir().join(what)
        } else {
            self.supervision_dir().join(format!("{}.{what}", self.cell))
        }
    }

    /// The supervision of `st` ended: its process exited, or (in the cell's
    /// init) the init runs on with nothing else in the cell.
    fn supervision_ended(&self, st: &SupervisorStatus) -> bool {
        if !self.in_init() {
            return !alive(st.supervisor_pid);
        }
        // What the service left in its group was sent KILL when it ended
        // (a supervisor process does not wait for it either).
        let procs = || {
            self.kernel
                .find(&cells::kernel::Target::Id(self.id))
                .unwrap()
                .expect("the cell runs on")
                .procs
        };
        wait_until(
            "nothing but the init in the cell",
            Duration::from_secs(10),
            Duration::from_millis(10),
            || procs() == 0,
        );
        alive(st.supervisor_pid)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = supervise::stop(
            &self.cfg,
            &*self.kernel,
            &self.cell,
            Duration::from_millis(200),
        );
    }
}

fn pid_ns(pid: u32) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn a_supervised_service_logs_restarts_and_stops_cleanly() {
    if !privileged("a_supervised_service_logs_restarts_and_stops_cleanly") {
        return;
    }
    let w = World::new("sup-log", "sup-log");
    let t0 = Instant::now();
    let out = w.env.ok(&[
        "supervise",
        "-f",
        "local0",
        "-t",
        "cell-sup",
        "sup-log",
        "/bin/sh",
        "-c",
        "echo hello; echo oops >&2; sleep 1; exit 2",
    ]);
    assert_eq!(out, format!("cell {}\n", w.id));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "supervise did not detach"
    );
    // local0 = 16: notice 133, err 131.
    let (hello, oops) = w.first_output();
    let st = w.status_until(|s| s.child_pid.is_some());
    let head = format!(
        " cell-sup[{}]: cell=sup-log cid={} ",
        st.supervisor_pid, w.id
    );
    assert!(hello.starts_with("<133>"), "{hello}");
    assert!(hello.ends_with(&format!("{head}stdout: hello")), "{hello}");
    assert!(
        oops.starts_with("<131>") && oops.ends_with(&format!("{head}stderr: oops")),
        "{oops}"
    );
    // The service runs in the cell: another PID namespace than ours (in
    // the cell's init, the supervisor is in it too).
    if let Some(child) = st.child_pid {
        if alive(child) {
            assert_ne!(pid_ns(child), pid_ns(std::process::id()));
        }
    }
    if w.in_init() {
        assert_ne!(pid_ns(st.supervisor_pid), pid_ns(std::process::id()));
    }
    let st = w.status_until(|s| s.restarts >= 1);
    assert_eq!(st.last_exit.as_deref(), Some("exit 2"));
    assert_eq!(supervise::log_path(&w.cfg, "sup-log"), w.file("log"));
    let tail = std::fs::read_to_string(supervise::log_path(&w.cfg, "sup-log")).unwrap();
    assert!(tail.contains(" stdout: hello\n"), "{tail}");
    // cellctl logs, by id while the cell exists, by name also after.
    let by_id = w.env.ok(&["logs", &w.id.to_string()]);
    assert!(by_id.contains(" stdout: hello\n"), "{by_id}");
    let last = w.env.ok(&["logs", "-n", "1", "sup-log"]);
    assert_eq!(last.lines().count(), 1, "{last}");

    supervise::stop(&w.cfg, &*w.kernel, "sup-log", Duration::from_secs(2)).unwrap();
    assert!(supervise::status(&w.cfg, "sup-log").unwrap().is_none());
    assert!(w.supervision_ended(&st));
    // Nothing is left in the cell: destroy is refused while members live.
    w.env.ok(&["destroy", "sup-log"]);
    // Stopping again is a no-op.
    supervise::stop(&w.cfg, &*w.kernel, "sup-log", Duration::from_secs(1)).unwrap();
    let after = w.env.ok(&["logs", "sup-log"]);
    assert!(
        after.ends_with(" supervise: supervisor exiting\n"),
        "{after}"
    );
    let e = w.env.ctl(&["logs", "never-supervised"]);
    assert_eq!(e.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&e.stderr)
        .contains("cell never-supervised has no service log: it was never supervised here"));
}

/// A syslog daemon that restarts: its socket is made anew. A supervisor
/// process sends to the path again after a while by itself; a supervising
/// init holds a socket connected to the old one, says so in its status, and
/// the next repair (every apply runs one) hands it a new socket.
#[test]
fn records_reach_a_restarted_syslog_daemon_again() {
    if !privileged("records_reach_a_restarted_syslog_daemon_again") {
        return;
    }
    let w = World::new("sup-relog", "sup-relog");
    if !w.in_init() {
        eprintln!("records_reach_a_restarted_syslog_daemon_again: for CELL_SUPERVISOR=init only");
        return;
    }
    w.env.ok(&[
        "supervise",
        "sup-relog",
        "/bin/sh",
        "-c",
        "while :; do if [ -e /tmp/tick ]; then rm /tmp/tick; echo tick; fi; sleep 0.05; done",
    ]);
    let tick = |w: &World| w.env.ok(&["exec", "sup-relog", "/bin/touch", "/tmp/tick"]);
    tick(&w);
    w.record(|r| r.ends_with("stdout: tick"));
    // The daemon restarts: its socket takes nothing more, a new one is
    // made at the same path.
    w.syslog.shutdown(std::net::Shutdown::Read).unwrap();
    let path = w.env.dir.join("log");
    std::fs::remove_file(&path).unwrap();
    let restarted = UnixDatagram::bind(&path).unwrap();
    restarted
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    tick(&w);
    let st = w.status_until(|s| s.syslog_unreachable);
    assert!(std::fs::read_to_string(w.file("syslog"))
        .unwrap()
        .contains("stdout: tick"));
    let did = supervise::repair(
        &w.cfg,
        &*w.kernel,
        "sup-relog",
        supervise::supervisor(&w.cfg, "sup-relog").unwrap(),
    )
    .unwrap()
    .expect("a new socket handed over");
    assert!(did.contains("listens again"), "{did}");
    tick(&w);
    let mut buf = vec![0u8; 2048];
    let rec = loop {
        let n = restarted
            .recv(&mut buf)
            .expect("a record at the new socket");
        let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
        if rec.ends_with("stdout: tick") {
            break rec;
        }
    };
    assert!(rec.contains(&format!("[{}]", st.supervisor_pid)), "{rec}");
    w.status_until(|s| !s.syslog_unreachable);
    // Nothing more to hand over.
    assert_eq!(
        supervise::repair(
            &w.cfg,
            &*w.kernel,
            "sup-relog",
            supervise::supervisor(&w.cfg, "sup-relog").unwrap(),
        )
        .unwrap(),
        None
    );
    supervise::stop(&w.cfg, &*w.kernel, "sup-relog", Duration::from_secs(1)).unwrap();
}

#[test]
fn stop_kills_a_service_that_ignores_term_along_with_its_children() {
    if !privileged("stop_kills_a_service_that_ignores_term_along_with_its_children") {
        return;
    }
    let w = World::new("sup-stop", "sup-stop");
    w.env.ok(&[
        "supervise",
        "sup-stop",
        "/bin/sh",
        "-c",
        "trap '' TERM; sleep 1000 & sleep 1000 & echo ready; wait",
    ]);
    w.record(|r| r.ends_with("stdout: ready"));
    let st = w.status_until(|s| s.state == SupervisorState::Running);
    let t0 = Instant::now();
    supervise::stop(&w.cfg, &*w.kernel, "sup-stop", Duration::from_millis(500)).unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "TERM was ignored, so KILL came after the grace"
    );
    assert!(w.supervision_ended(&st));
    w.record(|r| r.contains("grace period over; sent KILL"));
    w.env.ok(&["destroy", "sup-stop"]);
}

#[test]
fn a_second_supervisor_and_a_missing_cell_are_refused() {
    if !privileged("a_second_supervisor_and_a_missing_cell_are_refused") {
        return;
    }
    let w = World::new("sup-dup", "sup-dup");
    w.env.ok(&["supervise", "sup-dup", "/bin/sleep", "1000"]);
    let st = w.status_until(|s| s.state == SupervisorState::Running);
    let out = w.env.ctl(&["supervise", "sup-dup", "/bin/sleep", "1000"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cell sup-dup is already supervised (supervisor pid {})",
            st.supervisor_pid
        )),
        "{err}"
    );
    let out = w.env.ctl(&["supervise", "no-such-cell", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cell 'no-such-cell' not found"));
    let out = w.env.ctl(&["supervise", "-U", "1", "sup-dup", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-U and -G go together"));
}

#[test]
fn foreground_supervision_ends_on_term() {
    if !privileged("foreground_supervision_ends_on_term") {
        return;
    }
    use std::io::BufRead;
    let w = World::new("sup-fg", "sup-fg");
    let mut child = w
        .env
        .command()
        .args(["supervise", "--foreground", "sup-fg", "/bin/sleep", "1000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, format!("cell {}\n", w.id));
    let st = w.status_until(|s| s.state == SupervisorState::Running);
    assert_eq!(
        st.supervisor_pid,
        child.id(),
        "the foreground process supervises"
    );
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    assert!(supervise::status(&w.cfg, "sup-fg").unwrap().is_none());
    w.env.ok(&["destroy", "sup-fg"]);
}

#[test]
fn the_service_gets_the_stored_rlimits_and_the_requested_credentials() {
    if !privileged("the_service_gets_the_stored_rlimits_and_the_requested_credentials") {
        return;
    }
    let w = World::with_flags("sup-cred", "sup-cred", &["-N", "123"]);
    w.env.ok(&[
        "supervise",
        "-U",
        "65534",
        "-G",
        "65533",
        "-g",
        "65532",
        "sup-cred",
        "/bin/sh",
        "-c",
        "echo nofile=$(ulimit -n) uid=$(id -u) gid=$(id -g) groups=$(id -G); exec sleep 1000",
    ]);
    // The start is logged before any output is read.
    let started = w.record(|r| r.contains("supervise: started"));
    assert!(started.ends_with("as uid 65534 gid 65533"), "{started}");
    let rec = w.record(|r| r.contains("stdout:"));
    assert!(
        rec.ends_with("stdout: nofile=123 uid=65534 gid=65533 groups=65533 65532"),
        "{rec}"
    );
    supervise::stop(&w.cfg, &*w.kernel, "sup-cred", Duration::from_secs(2)).unwrap();
    w.env.ok(&["destroy", "sup-cred"]);
}

#[test]
fn descriptors_of_the_caller_do_not_reach_the_service() {
    if !privileged("descriptors_of_the_caller_do_not_reach_the_service") {
        return;
    }
    let w = World::new("sup-fds", "sup-fds");
    std::fs::create_dir_all(w.env.dir.join("root-sup-fds/proc")).unwrap();
    // The caller holds descriptor 7 open without close-on-exec.
    let out = std::process::Command::new("/bin/bash")
        .args([
            "-c",
            "exec 7</dev/null; exec \"$@\"",
            "bash",
            support::BIN,
            "ctl",
        ])
        .args(["supervise", "sup-fds", "/bin/sh", "-c"])
        .arg("echo fds: $(ls /proc/self/fd | tr '\\n' ' '); exec sleep 1000")
        .env("CELLMGR_CONF", w.env.dir.join("cellmgr.conf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = w.record(|r| r.contains("stdout: fds:"));
    // 0-2, and the directory `ls` itself opened.
    assert!(rec.ends_with("stdout: fds: 0 1 2 3"), "{rec}");
}

/// Host pid `pid`'s cgroup2 path (the `0::` line of `/proc/<pid>/cgroup`).
fn cgroup2_of(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string()
}

#[test]
fn the_status_names_the_service_by_its_host_pid() {
    if !privileged("the_status_names_the_service_by_its_host_pid") {
        return;
    }
    let w = World::new("sup-hostpid", "sup-hostpid");
    w.env
        .ok(&["supervise", "sup-hostpid", "/bin/sleep", "1000"]);
    let st = w.status_until(|s| s.state == SupervisorState::Running);
    // Also with the init supervising (which knows the service only by its
    // pid in the cell): the host reads a host pid, the service's.
    let child = st.child_pid.expect("the running service's pid");
    let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap();
    assert_eq!(cmdline, b"/bin/sleep\x001000\x00", "pid {child}");
    let cgroup = cgroup2_of(child);
    let parts: Vec<&str> = cgroup.rsplit('/').take(3).collect();
    assert_eq!(
        (parts[0], parts[2]),
        (w.id.to_string().as_str(), "cells"),
        "pid {child} is in cgroup {cgroup}, not cell {}'s",
        w.id
    );
    assert_ne!(pid_ns(child), pid_ns(std::process::id()));
    supervise::stop(&w.cfg, &*w.kernel, "sup-hostpid", Duration::from_secs(2)).unwrap();
    assert!(!alive(child), "the service (pid {child}) outlived its stop");
    w.env.ok(&["destroy", "sup-hostpid"]);
}

#[test]
fn stop_ends_a_wedged_supervisor_and_its_service() {
    if !privileged("stop_ends_a_wedged_supervisor_and_its_service") {
        return;
    }
    let w = World::new("sup-wedge", "sup-wedge");
    w.env.ok(&["supervise", "sup-wedge", "/bin/sleep", "1000"]);
    let st = w.status_until(|s| s.state == SupervisorState::Running);
    let child = st.child_pid.unwrap();
    // A supervisor that cannot react to TERM (or to a request on its socket).
    // SAFETY: stopping the supervisor this test started.
    unsafe { libc::kill(st.supervisor_pid as i32, libc::SIGSTOP) };
    let ended_the_cell =
        supervise::stop(&w.cfg, &*w.kernel, "sup-wedge", Duration::from_millis(100)).unwrap();
    assert!(supervise::status(&w.cfg, "sup-wedge").unwrap().is_none());
    if w.in_init() {
        // The supervisor is the cell's init: the cell ended with it, and
        // the service (a pid in the cell, gone with its namespace) too.
        assert!(ended_the_cell);
        assert!(!alive(st.supervisor_pid));
        assert!(w
            .kernel
            .find(&cells::kernel::Target::Id(w.id))
            .unwrap()
            .is_none());
        return;
    }
    assert!(!ended_the_cell);
    assert!(!alive(st.supervisor_pid) && !alive(child));
    w.env.ok(&["destroy", "sup-wedge"]);
}

/// The files of one log: the current one and its rotated generations.
fn generations(log: &Path) -> Vec<(std::path::PathBuf, u64)> {
    (0..10)
        .filter_map(|n| {
            let p = if n == 0 {
                log.to_path_buf()
            } else {
                std::path::PathBuf::from(format!("{}.{n}", log.display()))
            };
            std::fs::metadata(&p).ok().map(|m| (p, m.len()))
        })
        .collect()
}

/// A log's text, oldest generation first.
fn all_generations(log: &Path) -> String {
    let mut files = generations(log);
    files.reverse();
    files
        .iter()
        .map(|(p, _)| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn supervise_dir(w: &World) -> std::path::PathBuf {
    w.cfg.run_dir.join("supervise")
}

/// Bytes `seq 1 n` writes.
fn seq_bytes(n: u64) -> u64 {
    let (mut total, mut low, mut digits) = (0, 1, 1);
    while low <= n {
        let high = (low * 10 - 1).min(n);
        total += (high - low + 1) * (digits + 1);
        low *= 10;
        digits += 1;
    }
    total
}

/// The last number a `seq` service logged on stdout in the current log file.
fn last_seq_line(log: &Path) -> u64 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find_map(|l| l.split_once(" stdout: ").and_then(|(_, n)| n.parse().ok()))
        .unwrap_or(0)
}

#[test]
fn a_flooding_service_is_slowed_its_logs_rotate_and_term_still_stops_it() {
    if !privileged("a_flooding_service_is_slowed_its_logs_rotate_and_term_still_stops_it") {
        return;
    }
    let rate = 256 * 1024;
    let w = World::with_conf(
        "sup-flood",
        "sup-flood",
        &[],
        &format!("CELL_LOG_MAX_SIZE=64k\nCELL_LOG_MAX_FILES=3\nCELL_LOG_RATE_LIMIT={rate}\n"),
    );
    // No syslog daemon: records go to the fallback file.
    std::fs::remove_file(w.env.dir.join("log")).unwrap();
    let fallback = w.file("syslog");
    let log = w.file("log");
    let t0 = Instant::now();
    w.env
        .ok(&["supervise", "sup-flood", "/bin/seq", "1000000000"]);
    let st = w.status_until(|s| s.state == SupervisorState::Running);
    wait_until(
        "both logs to rotate twice",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || generations(&log).len() == 3 && generations(&fallback).len() == 3,
    );
    // Slowed: what was taken in is bounded by the rate over the time the
    // service ran (plus the one second of burst and the pipe's buffer);
    // unthrottled, seq writes many megabytes per second.
    let logged = seq_bytes(last_seq_line(&log));
    let bound = (rate as f64 * (t0.elapsed().as_secs_f64() + 1.0)) as u64 + 128 * 1024;
    assert!(
        logged <= bound,
        "{logged} bytes of output taken in after {:?}; at most {bound} expected",
        t0.elapsed()
    );
    // Rotated: never more than three files of at most 64 KiB each, also
    // while the flood goes on (a listing may fall between the renames of one
    // rotation and see two).
    let rotated_within_bounds = |exact: bool| {
        for family in [&log, &fallback] {
            let files = generations(family);
            if exact {
                assert_eq!(files.len(), 3, "{files:?}");
            } else {
                assert!((2..=3).contains(&files.len()), "{files:?}");
            }
            assert!(files.iter().all(|(_, len)| *len <= 64 * 1024), "{files:?}");
        }
    };
    rotated_within_bounds(false);
    if w.in_init() {
        // A stop asked on the init's socket is acted on while the flood
        // goes on (the init has no signal handler to send TERM to).
        supervise::stop(&w.cfg, &*w.kernel, "sup-flood", Duration::from_secs(5)).unwrap();
        assert!(supervise::status(&w.cfg, "sup-flood").unwrap().is_none());
        assert!(w.supervision_ended(&st));
    } else {
        // TERM to the supervisor itself is acted on while the flood goes on.
        // SAFETY: signalling the supervisor this test started.
        unsafe { libc::kill(st.supervisor_pid as i32, libc::SIGTERM) };
        wait_until(
            "the supervisor to exit on TERM",
            Duration::from_secs(30),
            Duration::from_millis(25),
            || {
                supervise::status(&w.cfg, "sup-flood").unwrap().is_none()
                    && !alive(st.supervisor_pid)
            },
        );
    }
    rotated_within_bounds(true);
    // (What the pipe still held was logged after the stop request and may
    // have rotated it out of these small files.)
    let text = all_generations(&log);
    let last: Vec<&str> = text.lines().rev().take(2).collect();
    assert!(
        last[1].ends_with(" supervise: service ended: signal 15")
            && last[0].ends_with(" supervise: supervisor exiting"),
        "{last:?}"
    );
    w.env.ok(&["destroy", "sup-flood"]);
}

#[test]
fn stop_is_honoured_within_the_grace_period_under_an_output_flood() {
    if !privileged("stop_is_honoured_within_the_grace_period_under_an_output_flood") {
        return;
    }
    // The defaults of cellmgr.conf; no syslog daemon.
    let w = World::new("sup-flood-stop", "sup-flood-stop");
    std::fs::remove_file(w.env.dir.join("log")).unwrap();
    let fallback = w.file("syslog");
    let log = w.file("log");
    w.env.ok(&[
        "supervise",
        "sup-flood-stop",
        "/bin/sh",
        "-c",
        "yes 'a line of flood, again and again' & yes 'and on stderr' >&2",
    ]);
    let st = w.status_until(|s| s.state == SupervisorState::Running);
    wait_until(
        "the flood to reach the fallback file",
        Duration::from_secs(30),
        Duration::from_millis(25),
        || generations(&fallback).iter().map(|(_, l)| l).sum::<u64>() > 256 * 1024,
    );
    supervise::stop(&w.cfg, &*w.kernel, "sup-flood-stop", Duration::from_secs(1)).unwrap();
    assert!(w.supervision_ended(&st));
    // It ended by itself (stop() would otherwise have killed it after the
    // grace period plus 3 s, and nothing would say so in the log).
    let text = all_generations(&log);
    assert!(
        text.contains("supervise: stop requested; sent TERM"),
        "{text}"
    );
    assert!(text.ends_with(" supervise: supervisor exiting\n"), "{text}");
    // The defaults bound the run directory: 4 files of 1 MiB per log.
    for family in [&log, &fallback] {
        let total: u64 = generations(family).iter().map(|(_, l)| l).sum();
        assert!(total <= 4 << 20, "{} holds {total} bytes", family.display());
    }
    w.env.ok(&["destroy", "sup-flood-stop"]);
}

/// True when `bytes` hold nothing a terminal would act on: valid UTF-8
/// without C0 controls (but newline and tab), DEL or C1 controls.
fn terminal_safe(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    !text.chars().any(|c| {
        (c.is_control() && c != '\n' && c != '\t') || ('\u{202a}'..='\u{202e}').contains(&c)
    })
}

/// Waits for both lines of the escaping test in `path`, then checks the file.
fn assert_escaped_file(path: &Path, escaped: &str) {
    wait_until(
        &format!("both lines in {}", path.display()),
        Duration::from_secs(10),
        Duration::from_millis(25),
        || {
            std::fs::read_to_string(path)
                .is_ok_and(|t| t.contains("stdout:") && t.contains("stderr:"))
        },
    );
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(terminal_safe(&bytes), "{text:?}");
    assert!(text.contains(escaped), "{text:?}");
}

#[test]
fn control_characters_in_service_output_are_escaped_everywhere() {
    if !privileged("control_characters_in_service_output_are_escaped_everywhere") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let w = World::new("sup-esc", "sup-esc");
    // OSC 52 (clipboard), a title, BEL, CR, DEL, C1 CSI, a byte that is not
    // UTF-8, a right-to-left override; and screen clearing on stderr.
    let script = r"printf 'osc52 \033]52;c;cHduZWQ=\007 title \033]0;owned\007 cr \015 del \177 c1 \302\233 bad \377 rlo \342\200\256 end\n'; printf 'err \033[2J\n' >&2; exec sleep 1000";
    let escaped = r"osc52 \x1b]52;c;cHduZWQ=\x07 title \x1b]0;owned\x07 cr \x0d del \x7f c1 \u{9b} bad \xff rlo \u{202e} end";
    w.env.ok(&["supervise", "sup-esc", "/bin/sh", "-c", script]);
    let (out, err) = w.first_output();
    assert!(out.ends_with(&format!("stdout: {escaped}")), "{out:?}");
    assert!(err.ends_with(r"stderr: err \x1b[2J"), "{err:?}");
    let log = w.file("log");
    let st = w.status_until(|s| s.state == SupervisorState::Running);
    assert_eq!(supervise::log_path(&w.cfg, "sup-esc"), log);
    assert_escaped_file(&log, escaped);
    // What the IPC log tail (cellui) serves.
    let chunk = cells::ipc::logtail::tail_file(&log, 10, None).unwrap();
    assert!(
        chunk.lines.iter().any(|l| l.ends_with(escaped)),
        "{chunk:?}"
    );
    assert!(chunk.lines.iter().all(|l| terminal_safe(l.as_bytes())));
    // Only host root reads the service's output.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&supervise_dir(&w)), 0o700);
    assert_eq!(mode(&w.supervision_dir()), 0o700);
    for f in ["log", "status", "lock"] {
        assert_eq!(mode(&w.file(f)), 0o600, "{f}");
    }
    supervise::stop(&w.cfg, &*w.kernel, "sup-esc", Duration::from_secs(2)).unwrap();
    assert!(w.supervision_ended(&st));

    // Again without a syslog daemon: the fallback file is escaped too.
    std::fs::remove_file(w.env.dir.join("log")).unwrap();
    w.env.ok(&["supervise", "sup-esc", "/bin/sh", "-c", script]);
    let fallback = w.file("syslog");
    assert_escaped_file(&fallback, escaped);
    assert_eq!(mode(&fallback), 0o600);
    supervise::stop(&w.cfg, &*w.kernel, "sup-esc", Duration::from_secs(2)).unwrap();
    w.env.ok(&["destroy", "sup-esc"]);
}

/// Benchmark, not a check: `cargo test --release --test supervise -- --ignored
/// --nocapture` prints how long a detached start (`cellctl supervise` until it
/// printed `cell <id>`) and a stop (`supervise::stop` until the supervisor is
/// gone) take.
#[test]
#[ignore]
fn bench_start_and_stop() {
    if !privileged("bench_start_and_stop") {
        return;
    }
    let w = World::new("sup-bench", "sup-bench");
    let (mut starts, mut stops) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let t = Instant::now();
        w.env.ok(&["supervise", "sup-bench", "/bin/sleep", "1000"]);
        starts.push(t.elapsed());
        w.status_until(|s| s.state == SupervisorState::Running);
        let t = Instant::now();
        supervise::stop(&w.cfg, &*w.kernel, "sup-bench", Duration::from_secs(5)).unwrap();
        stops.push(t.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "supervise start: median {:?} (max {:?}); stop: median {:?} (max {:?}); 20 runs",
        median(&mut starts),
        starts.last().unwrap(),
        median(&mut stops),
        stops.last().unwrap()
    );
}
