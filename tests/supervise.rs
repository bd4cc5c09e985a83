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
use support::wait_for;

fn privileged(test: &str) -> bool {
    ctl::root_or_skip(test) && ctl::busybox_or_skip(test)
}

/// A cell, a syslog socket for it, and the configuration the binary reads.
struct World {
    cfg: Config,
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
        let mut env = Env::new(tag);
        let socket = env.dir.join("log");
        let conf = env.dir.join("cellmgr.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!("CELL_SYSLOG_SOCKET={}\n", socket.display()));
        std::fs::write(&conf, text).unwrap();
        let syslog = UnixDatagram::bind(&socket).unwrap();
        syslog
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let root = env.root(cell, false);
        let id = env.create(cell, &root, create_flags);
        World {
            cfg: Config::load_from(&conf).unwrap(),
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

impl Drop for World {
    fn drop(&mut self) {
        let _ = supervise::stop(&self.cfg, &self.cell, Duration::from_millis(200));
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
    let hello = w.record(|r| r.contains("stdout:"));
    let st = w.status_until(|s| s.child_pid.is_some());
    let head = format!(
        " cell-sup[{}]: cell=sup-log cid={} ",
        st.supervisor_pid, w.id
    );
    assert!(hello.starts_with("<133>"), "{hello}");
    assert!(hello.ends_with(&format!("{head}stdout: hello")), "{hello}");
    let oops = w.record(|r| r.contains("stderr:"));
    assert!(
        oops.starts_with("<131>") && oops.ends_with(&format!("{head}stderr: oops")),
        "{oops}"
    );
    // The service runs in the cell: another PID namespace than ours.
    if let Some(child) = st.child_pid {
        if alive(child) {
            assert_ne!(pid_ns(child), pid_ns(std::process::id()));
        }
    }
    let st = w.status_until(|s| s.restarts >= 1);
    assert_eq!(st.last_exit.as_deref(), Some("exit 2"));
    let tail = std::fs::read_to_string(supervise::log_path(&w.cfg, "sup-log")).unwrap();
    assert!(tail.contains(" stdout: hello\n"), "{tail}");

    supervise::stop(&w.cfg, "sup-log", Duration::from_secs(2)).unwrap();
    assert!(supervise::status(&w.cfg, "sup-log").unwrap().is_none());
    assert!(!alive(st.supervisor_pid));
    // Nothing is left in the cell: destroy is refused while members live.
    w.env.ok(&["destroy", "sup-log"]);
    // Stopping again is a no-op.
    supervise::stop(&w.cfg, "sup-log", Duration::from_secs(1)).unwrap();
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
    supervise::stop(&w.cfg, "sup-stop", Duration::from_millis(500)).unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "TERM was ignored, so KILL came after the grace"
    );
    assert!(!alive(st.supervisor_pid));
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
    supervise::stop(&w.cfg, "sup-cred", Duration::from_secs(2)).unwrap();
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

#[test]
fn stop_ends_a_wedged_supervisor_and_its_service() {
    if !privileged("stop_ends_a_wedged_supervisor_and_its_service") {
        return;
    }
    let w = World::new("sup-wedge", "sup-wedge");
    w.env.ok(&["supervise", "sup-wedge", "/bin/sleep", "1000"]);
    let st = w.status_until(|s| s.state == SupervisorState::Running);
    let child = st.child_pid.unwrap();
    // A supervisor that cannot react to TERM.
    // SAFETY: stopping the supervisor this test started.
    unsafe { libc::kill(st.supervisor_pid as i32, libc::SIGSTOP) };
    supervise::stop(&w.cfg, "sup-wedge", Duration::from_millis(100)).unwrap();
    assert!(supervise::status(&w.cfg, "sup-wedge").unwrap().is_none());
    assert!(!alive(st.supervisor_pid) && !alive(child));
    w.env.ok(&["destroy", "sup-wedge"]);
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
        supervise::stop(&w.cfg, "sup-bench", Duration::from_secs(5)).unwrap();
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
