//! Monitor tests against [`HostProcessKernel`], a test-only kernel whose one
//! "cell" runs plain host processes. They exercise the real event loop,
//! pipes, signals, syslog datagrams and status files in-process; the tests in
//! `tests/supervise.rs` drive the real binary against real cells.

use super::monitor::{self, Monitor};
use super::status::{self, Paths};
use super::*;
use crate::kernel::{CellSpec, CellStats, ExecSpec, Profile, Rlimits};
use crate::testutil::TempDir;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// TEST ONLY: a kernel with a single cell that spawns ordinary host processes
/// (no isolation, no credential change), each leading its own process group,
/// with the spec's extra environment.
struct HostProcessKernel {
    cell: CellInfo,
    gone: Arc<AtomicBool>,
}

impl HostProcessKernel {
    fn new(name: &str) -> HostProcessKernel {
        HostProcessKernel {
            cell: CellInfo {
                id: 7,
                name: name.into(),
                root: "/".into(),
                profile: Profile::High,
                ports: vec![],
                rlimits: Rlimits::default(),
                age: 0,
                procs: 0,
                refs: 0,
                ids: None,
                frozen: false,
            },
            gone: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Kernel for HostProcessKernel {
    fn name(&self) -> &'static str {
        "host-process-test"
    }
    fn create(&self, _: &CellSpec) -> anyhow::Result<u64> {
        bail!("not supported by the test kernel")
    }
    fn destroy(&self, _: &Target) -> anyhow::Result<()> {
        bail!("not supported by the test kernel")
    }
    fn list(&self) -> anyhow::Result<Vec<CellInfo>> {
        Ok(if self.gone.load(Ordering::SeqCst) {
            vec![]
        } else {
            vec![self.cell.clone()]
        })
    }
    fn stats(&self) -> anyhow::Result<Vec<CellStats>> {
        bail!("not supported by the test kernel")
    }
    fn spawn(
        &self,
        target: &Target,
        spec: &ExecSpec,
        [stdin, stdout, stderr]: [crate::kernel::Stdio; 3],
    ) -> anyhow::Result<crate::kernel::Child> {
        if self.find(target)?.is_none() {
            bail!("{target} not found");
        }
        Ok(crate::kernel::Child::from_std(
            Command::new(&spec.argv[0])
                .args(&spec.argv[1..])
                .envs(spec.env.iter().cloned())
                .stdin(stdin)
                .stdout(stdout)
                .stderr(stderr)
                .process_group(0)
                .spawn()?,
        ))
    }
}

/// A temporary run directory and syslog socket for one test.
struct Fixture {
    dir: TempDir,
    cfg: Config,
    syslog: UnixDatagram,
}

impl Fixture {
    fn new(test: &str) -> Fixture {
        let dir = TempDir::new(&format!("sup-{test}"));
        let cfg = Config {
            run_dir: dir.join("run"),
            syslog_socket: dir.join("log"),
            ..Config::default()
        };
        let syslog = UnixDatagram::bind(&cfg.syslog_socket).unwrap();
        syslog
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Fixture { dir, cfg, syslog }
    }

    /// Starts a monitor on a thread; returns its signal sender and thread.
    fn spawn_monitor(
        &self,
        kernel: Arc<HostProcessKernel>,
        spec: SuperviseSpec,
    ) -> (OwnedFd, std::thread::JoinHandle<anyhow::Result<()>>) {
        spawn_monitor_with(&self.cfg, kernel, spec)
    }

    /// Receives datagrams until one satisfies `pred`.
    fn expect_record(&self, pred: impl Fn(&str) -> bool) -> String {
        let mut buf = vec![0u8; 2048];
        loop {
            let n = self.syslog.recv(&mut buf).expect("a syslog record in time");
            let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
            if pred(&rec) {
                return rec;
            }
        }
    }

    fn wait_status(
        &self,
        cell: &str,
        pred: impl Fn(&SupervisorStatus) -> bool,
    ) -> SupervisorStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = status(&self.cfg, cell).unwrap() {
                if pred(&s) {
                    return s;
                }
            }
            assert!(Instant::now() < deadline, "status never matched");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts a monitor for `cfg` on a thread; returns its signal sender and thread.
fn spawn_monitor_with(
    cfg: &Config,
    kernel: Arc<HostProcessKernel>,
    spec: SuperviseSpec,
) -> (OwnedFd, std::thread::JoinHandle<anyhow::Result<()>>) {
    let paths = Paths::new(&cfg.run_dir, &kernel.cell.name);
    let (tx, rx) = std::sync::mpsc::channel();
    let logs = LogConfig::from_config(cfg);
    let thread = std::thread::spawn(move || {
        let m = Monitor::new(
            &*kernel,
            spec,
            kernel.cell.clone(),
            paths,
            &logs,
            monitor::Place::Host,
        )?;
        signals::install(&[libc::SIGCHLD])?;
        tx.send(m.signal_sender()?).unwrap();
        m.run(None)
    });
    let sender = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("monitor started");
    (sender, thread)
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

/// True when no live (non-zombie) process is in the group, within 2 s.
/// Zombies do not count: the reaper of orphans here may be slow or absent.
fn group_gone(pgid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let live = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid pgrp ...
            let after_comm = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
            let f: Vec<&str> = after_comm.split(' ').collect();
            f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z"
        });
        if !live {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_crashing_service_restarts_with_doubling_backoff() {
    let fx = Fixture::new("backoff");
    let kernel = Arc::new(HostProcessKernel::new("crashy"));
    let spec = SuperviseSpec::new("crashy", sh("echo up; exit 3"));
    let (tx, thread) = fx.spawn_monitor(kernel, spec);
    let st = fx.wait_status("crashy", |s| s.restarts >= 3);
    assert_eq!(st.last_exit.as_deref(), Some("exit 3"));
    // Runs started at t0, t0+1 s, +2 s, +4 s (plus the short run times).
    let gaps: Vec<u64> = st
        .recent_starts_ms
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    assert_eq!(gaps.len(), 3, "{st:?}");
    for (gap, want) in gaps.iter().zip([1000, 2000, 4000]) {
        assert!(
            *gap >= want && *gap < want + 900,
            "gap {gap} ms, expected about {want}: {gaps:?}"
        );
    }
    signals::send(&tx, libc::SIGTERM).unwrap();
    thread.join().unwrap().unwrap();
    assert!(status(&fx.cfg, "crashy").unwrap().is_none());
    let tail = std::fs::read_to_string(log_path(&fx.cfg, "crashy")).unwrap();
    assert!(tail.contains(" stdout: up\n"), "{tail}");
    assert!(
        tail.contains("supervise: restarting in 4 second(s)\n"),
        "{tail}"
    );
}

#[test]
fn output_lines_reach_syslog_with_priority_and_tag() {
    let fx = Fixture::new("syslog");
    let kernel = Arc::new(HostProcessKernel::new("web"));
    let mut spec = SuperviseSpec::new("web", sh("echo hello; echo oops >&2; exec sleep 600"));
    spec.facility = "local3".parse().unwrap();
    spec.tag = "cell-web".into();
    let (tx, thread) = fx.spawn_monitor(kernel, spec);
    // local3 = 19: notice 19*8+5 = 157, err 155, info 158.
    let pid = std::process::id();
    let head = format!(" cell-web[{pid}]: cell=web cid=7 ");
    let started = fx.expect_record(|r| r.contains("supervise: started"));
    assert!(
        started.starts_with("<158>") && started.contains(&head),
        "{started}"
    );
    // The two pipes are read as they become ready: either line may come first.
    let (mut out, mut err) = (None, None);
    while out.is_none() || err.is_none() {
        let rec = fx.expect_record(|r| r.contains("stdout:") || r.contains("stderr:"));
        if rec.contains("stdout:") {
            out = Some(rec);
        } else {
            err = Some(rec);
        }
    }
    let (out, err) = (out.unwrap(), err.unwrap());
    assert!(out.starts_with("<157>"), "{out}");
    assert!(out.ends_with(&format!("{head}stdout: hello")), "{out}");
    assert!(
        err.starts_with("<155>") && err.ends_with("stderr: oops"),
        "{err}"
    );
    let st = fx.wait_status("web", |s| s.state == SupervisorState::Running);
    let child = st.child_pid.unwrap();
    monitor::request_stop(&Paths::new(&fx.cfg.run_dir, "web"), Duration::from_secs(2)).unwrap();
    signals::send(&tx, libc::SIGTERM).unwrap();
    thread.join().unwrap().unwrap();
    assert!(group_gone(child));
    fx.expect_record(|r| r.contains("supervise: stop requested; sent TERM"));
}

#[test]
fn stop_kills_a_service_that_ignores_term_and_its_children() {
    let fx = Fixture::new("stop");
    let kernel = Arc::new(HostProcessKernel::new("stubborn"));
    // Ignores TERM and leaves a background child in its process group.
    let spec = SuperviseSpec::new(
        "stubborn",
        sh("trap '' TERM; sleep 600 & echo ready; while :; do sleep 1; done"),
    );
    let (tx, thread) = fx.spawn_monitor(kernel, spec);
    fx.expect_record(|r| r.ends_with("stdout: ready"));
    let st = fx.wait_status("stubborn", |s| s.child_pid.is_some());
    let pgid = st.child_pid.unwrap();
    monitor::request_stop(
        &Paths::new(&fx.cfg.run_dir, "stubborn"),
        Duration::from_millis(300),
    )
    .unwrap();
    let t0 = Instant::now();
    signals::send(&tx, libc::SIGTERM).unwrap();
    thread.join().unwrap().unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert!(
        group_gone(pgid),
        "processes of group {pgid} survived the stop"
    );
    fx.expect_record(|r| r.contains("grace period over; sent KILL"));
}

#[test]
fn a_vanished_cell_ends_supervision() {
    let fx = Fixture::new("vanish");
    let kernel = Arc::new(HostProcessKernel::new("ghost"));
    let gone = kernel.gone.clone();
    let (_tx, thread) = fx.spawn_monitor(kernel, SuperviseSpec::new("ghost", sh("exec sleep 600")));
    fx.wait_status("ghost", |s| s.state == SupervisorState::Running);
    gone.store(true, Ordering::SeqCst);
    let child = status(&fx.cfg, "ghost")
        .unwrap()
        .unwrap()
        .child_pid
        .unwrap();
    // SAFETY: killing the child we just learned about.
    unsafe { libc::kill(child as i32, libc::SIGKILL) };
    thread.join().unwrap().unwrap();
    fx.expect_record(|r| r.contains("the cell no longer exists; not restarting"));
    assert!(status(&fx.cfg, "ghost").unwrap().is_none());
}

#[test]
fn a_stale_status_file_reads_as_not_running() {
    let fx = Fixture::new("stale");
    let paths = Paths::new(&fx.cfg.run_dir, "old");
    std::fs::create_dir_all(&paths.dir).unwrap();
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let mut st = SupervisorStatus {
        cell: "old".into(),
        cid: 1,
        supervisor_pid: dead_pid,
        child_pid: None,
        argv: vec!["x".into()],
        state: SupervisorState::Running,
        since: 0,
        started: 0,
        restarts: 0,
        last_exit: None,
        backoff_secs: 0,
        recent_starts_ms: vec![],
        syslog_unreachable: false,
        health: None,
    };
    status::write_status(&paths.status, &st).unwrap();
    assert_eq!(status(&fx.cfg, "old").unwrap(), None);
    // A live pid (reused, here our own) without the supervisor lock is stale too.
    st.supervisor_pid = std::process::id();
    status::write_status(&paths.status, &st).unwrap();
    assert_eq!(status(&fx.cfg, "old").unwrap(), None);
    // stop() on a stale or absent supervisor is a no-op.
    let kernel = HostProcessKernel::new("old");
    assert!(!stop(&fx.cfg, &kernel, "old", Duration::from_secs(1)).unwrap());
    assert!(!stop(&fx.cfg, &kernel, "never-started", Duration::from_secs(1)).unwrap());
    // With the lock held, the same file reads as running.
    let lock = status::SupervisorLock::acquire(&paths.lock, std::process::id()).unwrap();
    assert_eq!(status(&fx.cfg, "old").unwrap(), Some(st));
    drop(lock);
}

#[test]
fn a_second_supervisor_for_the_same_cell_is_refused() {
    let fx = Fixture::new("twice");
    let kernel = Arc::new(HostProcessKernel::new("once"));
    let (tx, thread) = fx.spawn_monitor(
        kernel.clone(),
        SuperviseSpec::new("once", sh("exec sleep 600")),
    );
    fx.wait_status("once", |s| s.state == SupervisorState::Running);
    let paths = Paths::new(&fx.cfg.run_dir, "once");
    let spec = SuperviseSpec::new("once", sh("true"));
    let e = Monitor::new(
        &*kernel,
        spec.clone(),
        kernel.cell.clone(),
        paths,
        &LogConfig::from_config(&fx.cfg),
        monitor::Place::Host,
    )
    .err()
    .unwrap();
    assert!(
        format!("{e:#}").contains("cell once is already supervised"),
        "{e:#}"
    );
    let e = start(&fx.cfg, &*kernel, &spec).unwrap_err();
    assert!(
        format!("{e:#}").starts_with("cell once is already supervised (supervisor pid"),
        "{e:#}"
    );
    signals::send(&tx, libc::SIGTERM).unwrap();
    thread.join().unwrap().unwrap();
}

#[test]
fn without_a_syslog_daemon_records_go_to_the_fallback_file() {
    let fx = Fixture::new("fallback");
    let cfg = Config {
        syslog_socket: fx.dir.join("nobody-listens"),
        ..fx.cfg.clone()
    };
    let kernel = Arc::new(HostProcessKernel::new("quiet"));
    let paths = Paths::new(&cfg.run_dir, "quiet");
    let spec = SuperviseSpec::new("quiet", sh("echo to-file; exec sleep 600"));
    let (tx, thread) = spawn_monitor_with(&cfg, kernel, spec);
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&paths.fallback).unwrap_or_default();
        if text.contains("stdout: to-file") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    signals::send(&tx, libc::SIGTERM).unwrap();
    thread.join().unwrap().unwrap();
    assert_eq!(text.matches("is unreachable").count(), 1, "{text}");
    assert!(
        text.contains("cellctl[") && text.contains("stdout: to-file"),
        "{text}"
    );
    let tail = std::fs::read_to_string(&paths.log).unwrap();
    assert!(tail.contains("supervise: syslog socket"), "{tail}");
}

#[test]
fn flags_follow_the_original_rules() {
    let parse = |args: &[&str]| -> Result<SuperviseSpec, String> {
        let a = SuperviseArgs::from_args(&["supervise"], args).map_err(|e| e.output)?;
        SuperviseSpec::from_args(&a).map_err(|e| e.to_string())
    };
    let s = parse(&["web", "httpd", "-X", "--port", "80"]).unwrap();
    assert_eq!(
        s,
        SuperviseSpec::new(
            "web",
            vec!["httpd".into(), "-X".into(), "--port".into(), "80".into()]
        )
    );
    let s = parse(&[
        "-f", "local1", "-o", "info", "-e", "2", "-t", "a\tb", "-U", "80", "-G", "81", "-g", "5,6",
        "web", "x",
    ])
    .unwrap();
    assert_eq!(
        (
            s.facility.code(),
            s.stdout_level.code(),
            s.stderr_level.code()
        ),
        (17, 6, 2)
    );
    assert_eq!(
        (s.tag.as_str(), s.uid, s.gid, s.groups.clone()),
        ("a b", Some(80), Some(81), vec![5, 6])
    );
    // The re-exec flags reproduce the spec.
    let mut again: Vec<String> = s.to_flags();
    again.extend(["--".into(), "web".into(), "x".into()]);
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    assert_eq!(parse(&again).unwrap(), s);
    assert_eq!(
        parse(&["-U", "1", "web", "x"]).unwrap_err(),
        "-U and -G go together: give both or neither"
    );
    assert_eq!(
        parse(&["-G", "1", "web", "x"]).unwrap_err(),
        "-U and -G go together: give both or neither"
    );
    assert_eq!(
        parse(&["-g", "1", "web", "x"]).unwrap_err(),
        "-g needs -U and -G"
    );
    assert!(parse(&["-U", "1", "-G", "1", "-g", "a", "web", "x"])
        .unwrap_err()
        .contains("expected numeric gids"));
    assert_eq!(
        parse(&["-t", &"t".repeat(64), "web", "x"]).unwrap_err(),
        "-t: the tag is 64 bytes; expected 1 to 63"
    );
    assert!(parse(&["-t", &"t".repeat(63), "web", "x"]).is_ok());
    assert!(parse(&["web"]).unwrap_err().starts_with("no command given"));
    assert!(parse(&["-f", "nope", "web", "x"])
        .unwrap_err()
        .contains("unknown facility 'nope'"));
    assert!(parse(&["-o", "9", "web", "x"])
        .unwrap_err()
        .contains("unknown level '9'"));
    // The service settings, and their re-exec flags.
    let s = parse(&[
        "--user",
        "www",
        "--group",
        "staff",
        "-E",
        "A=1",
        "-E",
        "B=two words",
        "--env-file",
        "/etc/cells/web.env",
        "--restart",
        "on-failure",
        "--health-cmd",
        "test -e /run/ok",
        "--health-interval",
        "2s",
        "--health-timeout",
        "500ms",
        "--health-retries",
        "5",
        "--health-start-period",
        "1m",
        "web",
        "x",
    ])
    .unwrap();
    assert_eq!(
        (s.user.as_deref(), s.group.as_deref()),
        (Some("www"), Some("staff"))
    );
    assert_eq!(
        s.env,
        [
            ("A".to_string(), "1".to_string()),
            ("B".into(), "two words".into())
        ]
    );
    assert_eq!(s.restart, RestartPolicy::OnFailure);
    let h = s.health.clone().unwrap();
    assert_eq!(
        (
            h.cmd.as_str(),
            h.interval,
            h.timeout,
            h.retries,
            h.start_period
        ),
        (
            "test -e /run/ok",
            Duration::from_secs(2),
            Duration::from_millis(500),
            5,
            Duration::from_secs(60)
        )
    );
    let mut again: Vec<String> = s.to_flags();
    again.extend(["--".into(), "web".into(), "x".into()]);
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    assert_eq!(parse(&again).unwrap(), s);
    assert_eq!(
        parse(&["--group", "staff", "web", "x"]).unwrap_err(),
        "--group needs --user"
    );
    assert!(parse(&["--user", "www", "-U", "1", "-G", "1", "web", "x"])
        .unwrap_err()
        .contains("--user and -U/-G exclude each other"));
    assert_eq!(
        parse(&["--health-retries", "2", "web", "x"]).unwrap_err(),
        "the --health-* options need --health-cmd"
    );
    assert!(parse(&["--restart", "sometimes", "web", "x"])
        .unwrap_err()
        .contains("unknown restart policy 'sometimes'"));
    assert!(parse(&["-E", "1A=x", "web", "x"])
        .unwrap_err()
        .contains("'1A' is not a variable name"));
    assert!(parse(&["--env-file", "relative.env", "web", "x"])
        .unwrap_err()
        .contains("expected an absolute path"));
}

#[test]
fn a_command_that_cannot_start_is_retried_until_the_cell_goes() {
    let fx = Fixture::new("nostart");
    let kernel = Arc::new(HostProcessKernel::new("broken"));
    let gone = kernel.gone.clone();
    let spec = SuperviseSpec::new("broken", vec!["/nonexistent/daemon".into()]);
    let (_tx, thread) = fx.spawn_monitor(kernel, spec);
    let st = fx.wait_status("broken", |s| s.restarts >= 1);
    assert_eq!(st.last_exit.as_deref(), Some("failed to start"));
    assert_eq!(st.state, SupervisorState::Backoff);
    gone.store(true, Ordering::SeqCst);
    // The next attempt fails, finds the cell gone, and the supervisor ends.
    thread.join().unwrap().unwrap();
    fx.expect_record(|r| r.contains("supervise: cannot start [\"/nonexistent/daemon\"]"));
    assert!(status(&fx.cfg, "broken").unwrap().is_none());
}

/// Waits until `pred` holds for the text of the cell's current service log.
fn wait_log(cfg: &Config, cell: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let path = log_path(cfg, cell);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if pred(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn term_is_served_while_a_service_floods_without_a_rate_limit() {
    let fx = Fixture::new("flood");
    let cfg = Config {
        syslog_socket: fx.dir.join("nobody-listens"),
        log_rate_limit: 0,
        log_max_size: 64 * 1024,
        log_max_files: 2,
        ..fx.cfg.clone()
    };
    let kernel = Arc::new(HostProcessKernel::new("flood"));
    let (tx, thread) =
        spawn_monitor_with(&cfg, kernel, SuperviseSpec::new("flood", sh("exec yes")));
    let rotated = logfile::generation(&log_path(&cfg, "flood"), 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rotated.exists() {
        assert!(
            Instant::now() < deadline,
            "the flood never filled a log file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let paths = Paths::new(&cfg.run_dir, "flood");
    monitor::request_stop(&paths, Duration::from_secs(5)).unwrap();
    signals::send(&tx, libc::SIGTERM).unwrap();
    // The loop serves the signal between bounded reads: the monitor ends
    // (joined on a helper thread, so a hang fails instead of blocking).
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = thread.join().unwrap();
        done_tx.send(result.is_ok())
    });
    let ended = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the monitor ended on TERM during the flood");
    assert!(ended, "the monitor failed");
    let text = std::fs::read_to_string(log_path(&cfg, "flood")).unwrap();
    assert!(text.ends_with(" supervise: supervisor exiting\n"), "{text}");
    assert!(
        !text.contains("grace period over"),
        "yes ends on TERM: {text}"
    );
    assert!(!logfile::generation(&log_path(&cfg, "flood"), 2).exists());
}

#[test]
fn a_service_writing_faster_than_the_rate_limit_waits_and_is_told_so() {
    let fx = Fixture::new("throttle");
    let cfg = Config {
        // Only the throttle holds the service back (no syslog queue to fill).
        syslog_socket: fx.dir.join("nobody-listens"),
        log_rate_limit: 4096,
        ..fx.cfg.clone()
    };
    let kernel = Arc::new(HostProcessKernel::new("chatty"));
    let (tx, thread) =
        spawn_monitor_with(&cfg, kernel, SuperviseSpec::new("chatty", sh("exec yes")));
    let text = wait_log(&cfg, "chatty", "the throttle note", |t| {
        t.contains("supervise: the service writes more than 4096 bytes/s; it waits")
    });
    // The first second's burst (2 bytes a line, plus what refilled while it
    // was read) was taken in, then the
    // service was held back.
    let before_note = text.split("the service writes more than").next().unwrap();
    let lines = before_note
        .lines()
        .filter(|l| l.ends_with(" stdout: y"))
        .count();
    assert!((2048..=3072).contains(&lines), "{lines} lines taken in");
    signals::send(&tx, libc::SIGTERM).unwrap();
    thread.join().unwrap().unwrap();
}

#[test]
fn restart_policies_decide_what_follows_an_exit() {
    let fx = Fixture::new("policy");
    for (policy, script, state, restarted) in [
        (
            RestartPolicy::OnFailure,
            "exit 0",
            SupervisorState::Exited,
            false,
        ),
        (
            RestartPolicy::OnFailure,
            "exit 3",
            SupervisorState::Backoff,
            true,
        ),
        (
            RestartPolicy::Never,
            "exit 3",
            SupervisorState::Exited,
            false,
        ),
    ] {
        let kernel = Arc::new(HostProcessKernel::new("job"));
        let mut spec = SuperviseSpec::new("job", sh(script));
        spec.restart = policy;
        let (tx, thread) = fx.spawn_monitor(kernel, spec);
        let st = fx.wait_status("job", |s| {
            s.last_exit.is_some() && s.state != SupervisorState::Running
        });
        assert_eq!(st.state, state, "{policy:?} after {script}");
        if restarted {
            fx.wait_status("job", |s| s.restarts >= 1);
        } else {
            let text = wait_log(&fx.cfg, "job", "the policy note", |t| {
                t.contains("not restarting (CELL_SUPERVISE_RESTART=")
            });
            assert!(text.contains(policy.as_str()), "{text}");
            assert_eq!(status(&fx.cfg, "job").unwrap().unwrap().restarts, 0);
        }
        signals::send(&tx, libc::SIGTERM).unwrap();
        thread.join().unwrap().unwrap();
        logfile::remove_all(&log_path(&fx.cfg, "job"));
    }
}

#[test]
fn the_environment_and_the_env_file_reach_the_service() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the env file must belong to root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new("env");
    let file = fx.dir.join("svc.env");
    std::fs::write(&file, "# secrets\nB=two words\nA=from the file\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let kernel = Arc::new(HostProcessKernel::new("env"));
    let mut spec = SuperviseSpec::new("env", sh("echo \"A=$A B=$B C=$C\"; exec sleep 600"));
    spec.env = vec![("A".into(), "1".into()), ("C".into(), "3".into())];
    spec.env_file = Some(file.clone());
    let (tx, thread) = fx.spawn_monitor(kernel, spec);
    let rec = fx.expect_record(|r| r.contains("stdout:"));
    assert!(
        rec.ends_with("stdout: A=from the file B=two words C=3"),
        "{rec}"
    );
    signals::send(&tx, libc::SIGTERM).unwrap();
    thread.join().unwrap().unwrap();
    // Readable by others: refused at the next start, and said why.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let kernel = Arc::new(HostProcessKernel::new("env"));
    let mut spec = SuperviseSpec::new("env", sh("exec sleep 600"));
    spec.env_file = Some(file);
    let (tx, thread) = fx.spawn_monitor(kernel, spec);
    let rec = fx.expect_record(|r| r.contains("cannot start"));
    assert!(rec.contains("with mode 0644: it may hold secrets"), "{rec}");
    assert_eq!(
        fx.wait_status("env", |s| s.last_exit.is_some())
            .last_exit
            .as_deref(),
        Some("failed to start")
    );
    signals::send(&tx, libc::SIGTERM).unwrap();
    thread.join().unwrap().unwrap();
}

fn health_of(fx: &Fixture, cell: &str, want: Health) -> SupervisorStatus {
    fx.wait_status(cell, |s| s.health.as_ref().is_some_and(|h| h.state == want))
}

#[test]
fn periodic_health_checks_turn_ok_failing_and_ok_again() {
    let fx = Fixture::new("health");
    let flag = fx.dir.join("healthy");
    let kernel = Arc::new(HostProcessKernel::new("web"));
    let mut spec = SuperviseSpec::new("web", sh("exec sleep 600"));
    let mut h = HealthSpec::new(&format!(
        "echo checking {}; test -e {}",
        "web",
        flag.display()
    ));
    h.interval = Duration::from_millis(100);
    h.retries = 2;
    spec.health = Some(h);
    let (tx, thread) = fx.spawn_monitor(kernel, spec);
    let st = health_of(&fx, "web", Health::Failing);
    let hs = st.health.unwrap();
    assert_eq!(hs.last.as_deref(), Some("exit 1"));
    assert_eq!(hs.output, ["checking web"]);
    std::fs::write(&flag, "").unwrap();
    health_of(&fx, "web", Health::Ok);
    std::fs::remove_file(&flag).unwrap();
    let st = health_of(&fx, "web", Health::Failing);
    assert_eq!(st.health.unwrap().failures, 2);
    let text = std::fs::read_to_string(log_path(&fx.cfg, "web")).unwrap();
    assert!(text.contains(" health: checking web\n"), "{text}");
    assert!(
        text.contains(" supervise: health check failed: exit 1 (1 of 2)\n"),
        "{text}"
    );
    assert!(text.contains(" supervise: health: failing\n"), "{text}");
    assert!(text.contains(" supervise: health: ok\n"), "{text}");
    signals::send(&tx, libc::SIGTERM).unwrap();
    thread.join().unwrap().unwrap();
}

#[test]
fn a_check_that_overruns_its_timeout_is_killed_with_its_children() {
    let fx = Fixture::new("health-timeout");
    let kernel = Arc::new(HostProcessKernel::new("slow"));
    let mut spec = SuperviseSpec::new("slow", sh("exec sleep 600"));
    let pids = fx.dir.join("pids");
    let mut h = HealthSpec::new(&format!(
        "sleep 600 & echo $! > {}; echo $$ >> {}; wait",
        pids.display(),
        pids.display()
    ));
    h.timeout = Duration::from_millis(300);
    h.retries = 1;
    spec.health = Some(h);
    let (tx, thread) = fx.spawn_monitor(kernel, spec);
    let st = health_of(&fx, "slow", Health::Failing);
    assert_eq!(
        st.health.unwrap().last.as_deref(),
        Some("timed out after 0.3 s")
    );
    let text = std::fs::read_to_string(&pids).unwrap();
    for pid in text.lines().map(|p| p.trim().parse::<i32>().unwrap()) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while status::pid_running(pid as u32) {
            assert!(Instant::now() < deadline, "pid {pid} of the check survived");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    signals::send(&tx, libc::SIGTERM).unwrap();
    thread.join().unwrap().unwrap();
}
