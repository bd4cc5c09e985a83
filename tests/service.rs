//! A cell's service as an operator runs it, through the real binary and real
//! cells: `cellmgr logs` (backlog, follow across restarts and rotation, -n,
//! --since). Needs root and busybox.

mod support;

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use support::root_or_skip;
use support::world::World;

/// `cellmgr logs -f NAME` in the background, its lines arriving on a channel.
struct Follow {
    child: Child,
    lines: Receiver<String>,
}

impl Follow {
    fn start(w: &World, cell: &str) -> Follow {
        let mut child = w
            .command(&["mgr", "logs", "-f", cell])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines() {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Follow { child, lines }
    }

    /// Lines until one ends with `suffix` (which is returned last).
    fn until(&self, suffix: &str) -> Vec<String> {
        self.until_all(&[suffix])
    }

    /// Lines until one ending with each of `suffixes` has come, in any order:
    /// a service's stdout and stderr are two pipes, and the supervisor may
    /// read either first.
    fn until_all(&self, suffixes: &[&str]) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen: Vec<String> = Vec::new();
        let mut missing: Vec<&str> = suffixes.to_vec();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    missing.retain(|s| !l.ends_with(s));
                    seen.push(l);
                    if missing.is_empty() {
                        return seen;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line ending with {missing:?} in time; got {seen:#?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("logs -f ended before {missing:?}; got {seen:#?}")
                }
            }
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text after `<timestamp> ` of a log line.
fn body(line: &str) -> &str {
    line.split_once(' ').map_or(line, |(_, b)| b)
}

#[test]
fn logs_show_the_backlog_and_follow_across_restarts_and_rotation() {
    if !root_or_skip("logs_show_the_backlog_and_follow_across_restarts_and_rotation") {
        return;
    }
    let w = World::with_conf("logs", "CELL_LOG_MAX_SIZE=4k\nCELL_LOG_MAX_FILES=10\n");
    // Prints on demand: a burst of 300 numbered lines whenever /tmp/burst appears.
    w.ok(&[
        "cell",
        "create",
        "svc",
        "--cmd",
        "sh -c 'echo hello from the service; echo to stderr >&2; \
         while :; do if [ -e /tmp/burst ]; then rm /tmp/burst; seq 1 300; fi; sleep 0.05; done'",
    ]);
    assert_eq!(w.ok(&["logs", "svc"]), "", "declared, never run");
    w.ok(&["start", "svc"]);
    let follow = Follow::start(&w, "svc");
    let first = follow.until_all(&["stderr: to stderr", "stdout: hello from the service"]);
    let stamp = first[0].split(' ').next().unwrap();
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{stamp}"
    );

    // Across a restart: the same stream goes on.
    w.ok(&["restart", "svc"]);
    let again = follow.until_all(&["stderr: to stderr", "stdout: hello from the service"]);
    assert!(
        again
            .iter()
            .any(|l| body(l) == "supervise: supervisor exiting"),
        "{again:#?}"
    );

    // Across rotation: 300 lines rotate the 4 KiB log several times; every
    // line arrives, in order.
    w.ok(&["shell", "svc", "touch", "/tmp/burst"]);
    let burst: Vec<String> = follow
        .until("stdout: 300")
        .into_iter()
        .filter_map(|l| body(&l).strip_prefix("stdout: ").map(str::to_string))
        .collect();
    let want: Vec<String> = (1..=300).map(|n| n.to_string()).collect();
    assert_eq!(burst, want);
    // The service log where its supervisor writes it (a process's or the
    // cell init's, CELL_SUPERVISOR).
    let cfg = cells::config::Config::load_from(&w.conf).unwrap();
    let log = cells::supervise::log_path(&cfg, "svc");
    assert!(
        std::path::Path::new(&format!("{}.2", log.display())).exists(),
        "the log rotated"
    );

    // The backlog: across the rotated files, the last N, since a time.
    let all = w.ok(&["logs", "svc"]);
    assert!(all.starts_with(&first[0]), "oldest first: {all}");
    assert!(all.ends_with(" stdout: 300\n"), "{all}");
    assert_eq!(
        w.ok(&["logs", "-n", "2", "svc"])
            .lines()
            .map(body)
            .collect::<Vec<_>>(),
        ["stdout: 299", "stdout: 300"]
    );
    assert_eq!(w.ok(&["cell", "logs", "--since", "1h", "svc"]), all);
    assert_eq!(w.ok(&["logs", "--since", "2999-01-01", "svc"]), "");
    let e = w.fails(&["logs", "--since", "yesterday", "svc"]);
    assert!(
        e.contains("--since 'yesterday': expected a UTC time such as 2026-05-01"),
        "{e}"
    );
    drop(follow);
    w.ok(&["stop", "svc"]);
    assert!(w
        .ok(&["logs", "svc"])
        .ends_with(" supervise: supervisor exiting\n"));
    // Removing the cell's runtime removes its log, rotated files included.
    w.ok(&["cell", "remove", "svc", "--scope", "both", "--yes"]);
    let left: Vec<_> = std::fs::read_dir(w.dir.join("run/supervise"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("svc."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn logs_explain_why_there_is_nothing_to_show() {
    if !root_or_skip("logs_explain_why_there_is_nothing_to_show") {
        return;
    }
    let w = World::new("logs-none");
    let e = w.fails(&["logs", "nosuch"]);
    assert!(
        e.starts_with("cellmgr: cell nosuch not found: no manifest ")
            && e.trim_end().ends_with("nosuch.cell and no service log"),
        "{e}"
    );
    w.ok(&["cell", "create", "quiet"]);
    let e = w.fails(&["logs", "quiet"]);
    assert!(
        e.contains("cell quiet has no service (CELL_SUPERVISE_CMD is not set)"),
        "{e}"
    );
    w.ok(&["cell", "create", "later", "--cmd", "sleep 1000"]);
    assert_eq!(w.ok(&["logs", "later"]), "", "declared, not run yet");
    assert!(w.fails(&["logs", "../x"]).contains("cell name"));
}

/// Polls `cell list` until `fields` read `want`.
fn rows_until(w: &World, fields: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = w.rows(fields);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{fields}: {got:?}, expected {want:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn environment_env_file_user_and_group_reach_the_service() {
    if !root_or_skip("environment_env_file_user_and_group_reach_the_service") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let w = World::new("settings");
    let env = w.dir.join("svc.env");
    std::fs::write(&env, "# secrets\nGREETING=hello world\nTOKEN=s3cret\n").unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
    w.write_manifest(
        "svc.cell",
        &format!(
            "CELL_AUTOSTART=YES\n\
             CELL_SUPERVISE_CMD='sh -c \"echo env: A=$A GREETING=$GREETING TOKEN=$TOKEN; \
             echo id: $(id -u) $(id -g) $(id -G) $HOME $USER; exec sleep 1000\"'\n\
             CELL_SUPERVISE_ENV=\"A=1 B=2\"\n\
             CELL_SUPERVISE_ENV_FILE={}\n\
             CELL_SUPERVISE_USER=app\n\
             CELL_SUPERVISE_GROUP=staff\n",
            env.display()
        ),
    );
    // The cell's own users, provisioned by its plan.
    w.write_manifest(
        "svc.apply",
        "FILE_BEGIN /etc/passwd\nroot:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nFILE_END\n\
         FILE_BEGIN /etc/group\nroot:x:0:\napp:x:1000:\nstaff:x:50:app\nlogs:x:4:app,www\nFILE_END\n",
    );
    w.ok(&["apply", "--all"]);
    let follow = Follow::start(&w, "svc");
    let lines = follow.until(" /home/app app");
    let text = lines.join("\n");
    assert!(
        text.contains(" stdout: env: A=1 GREETING=hello world TOKEN=s3cret\n"),
        "{text}"
    );
    assert!(
        text.ends_with(" stdout: id: 1000 50 50 4 /home/app app"),
        "{text}"
    );
    drop(follow);

    // An env file others can read is refused before anything runs.
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = w.fails(&["apply", "--all", "--dry-run"]);
    assert!(
        e.contains("svc.cell:4: CELL_SUPERVISE_ENV_FILE: ")
            && e.contains("with mode 0644: it may hold secrets, so it must belong to root"),
        "{e}"
    );
    // A group without a user, a restart policy that does not exist.
    w.write_manifest(
        "bad.cell",
        "CELL_SUPERVISE_CMD=true\nCELL_SUPERVISE_GROUP=staff\n",
    );
    let e = w.fails(&["apply", "--all", "--dry-run"]);
    assert!(
        e.contains("bad.cell:2: CELL_SUPERVISE_GROUP needs CELL_SUPERVISE_USER"),
        "{e}"
    );
    w.write_manifest(
        "bad.cell",
        "CELL_SUPERVISE_CMD=true\nCELL_SUPERVISE_RESTART=sometimes\n",
    );
    let e = w.fails(&["apply", "--all", "--dry-run"]);
    assert!(
        e.contains(
            "bad.cell:2: CELL_SUPERVISE_RESTART='sometimes': expected always, on-failure or never"
        ),
        "{e}"
    );
    std::fs::remove_file(w.manifest_dir().join("bad.cell")).unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
    w.ok(&["stop", "svc"]);
}

#[test]
fn a_service_that_crash_loops_right_after_start_is_reported_as_failing() {
    if !root_or_skip("a_service_that_crash_loops_right_after_start_is_reported_as_failing") {
        return;
    }
    let w = World::new("crashloop");
    // A syntax error: the shell exits 2 at once, every time.
    w.ok(&["cell", "create", "loop", "--cmd", "while :; do"]);
    let out = w.run(&["start", "loop"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started cell loop"));
    assert!(
        err.contains("cell loop (cid ")
            && err.contains(
                "failed to start: the service ended right after its start (exit 2); \
                 its supervisor keeps restarting it with backoff; last output:"
            ),
        "{err}"
    );
    assert!(
        err.contains(" stderr: "),
        "the shell's complaint is shown: {err}"
    );
    w.ok(&["stop", "loop"]);
    // apply says the same, in its summary.
    w.ok(&["cell", "set", "loop", "--autostart", "YES"]);
    let out = w.run(&["apply", "--all"]);
    let o = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{o}");
    assert!(
        o.contains("FAILED   start: the service ended right after its start (exit 2)"),
        "{o}"
    );
    // A one-shot job that succeeds is fine with restart=never.
    w.write_manifest(
        "job.cell",
        "CELL_SUPERVISE_CMD='echo done'\nCELL_SUPERVISE_RESTART=never\n",
    );
    let out = w.ok(&["start", "job"]);
    assert!(out.starts_with("started cell job"), "{out}");
    rows_until(
        &w,
        "name,supervisor,last_exit",
        "job\texited\texit 0\nloop\tbackoff\texit 2\n",
    );
}

#[test]
fn health_checks_run_periodically_and_a_hanging_check_is_killed_with_its_children() {
    if !root_or_skip(
        "health_checks_run_periodically_and_a_hanging_check_is_killed_with_its_children",
    ) {
        return;
    }
    let w = World::new("health");
    w.write_manifest(
        "web.cell",
        "CELL_SUPERVISE_CMD='sh -c \"touch /tmp/ready; exec sleep 1000\"'\n\
         CELL_HEALTHCHECK_CMD='echo probing; test -e /tmp/ready'\n\
         CELL_HEALTHCHECK_INTERVAL=300ms\n\
         CELL_HEALTHCHECK_RETRIES=2\n",
    );
    let out = w.ok(&["start", "web"]);
    assert!(out.starts_with("started cell web"), "{out}");
    assert_eq!(w.rows("name,health"), "web\tok\n");
    w.ok(&["shell", "web", "rm", "/tmp/ready"]);
    rows_until(&w, "name,health", "web\tfailing: exit 1\n");
    w.ok(&["shell", "web", "touch", "/tmp/ready"]);
    rows_until(&w, "name,health", "web\tok\n");
    let logs = w.ok(&["logs", "web"]);
    for want in [
        " health: probing\n",
        " supervise: health check failed: exit 1 (1 of 2)\n",
        " supervise: health: failing\n",
        " supervise: health: ok\n",
    ] {
        assert!(logs.contains(want), "{want:?} in {logs}");
    }

    // A check that hangs (and leaves children behind) is killed as a whole
    // at its timeout, and the start is reported as failing.
    w.write_manifest(
        "slow.cell",
        "CELL_SUPERVISE_CMD='sleep 1000'\n\
         CELL_HEALTHCHECK_CMD='sleep 4242 & sleep 4243; true'\n\
         CELL_HEALTHCHECK_TIMEOUT=500ms\n\
         CELL_HEALTHCHECK_RETRIES=1\n",
    );
    let out = w.run(&["start", "slow"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("failed to start: health check failed: timed out after 0.5 s (1 in a row)"),
        "{err}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ps = w.ok(&["shell", "slow", "ps", "-o", "pid,stat,args"]);
        let left: Vec<&str> = ps
            .lines()
            .filter(|l| l.contains("sleep 424") && !l.contains(" Z "))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the check's processes survived: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    w.ok(&["stop", "slow"]);
    w.ok(&["stop", "web"]);
}

/// A syslog daemon that restarts makes its socket anew. A supervisor process
/// sends to the path again by itself; a supervising init holds a socket
/// connected to the old one and says so in its status, and then whichever
/// cellmgr command next reads that status and talks to the cell (`list`,
/// `start`, `apply`) hands it a socket connected to the new daemon.
#[test]
fn a_restarted_syslog_daemon_hears_the_service_again_after_a_read() {
    if !root_or_skip("a_restarted_syslog_daemon_hears_the_service_again_after_a_read") {
        return;
    }
    use std::os::unix::net::UnixDatagram;
    let logs = support::TempDir::new("relog-syslog");
    let socket = logs.join("log");
    let w = World::with_conf(
        "relog",
        &format!("CELL_SYSLOG_SOCKET={}\n", socket.display()),
    );
    let cfg = cells::config::Config::load_from(&w.conf).unwrap();
    let bind = || {
        let s = UnixDatagram::bind(&socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    };
    // The first record arriving at `daemon` from the service.
    let hears_tick = |daemon: &UnixDatagram| {
        let mut buf = vec![0u8; 2048];
        loop {
            let n = daemon.recv(&mut buf).expect("a record from the service");
            if String::from_utf8_lossy(&buf[..n]).ends_with("stdout: tick") {
                return;
            }
        }
    };
    let mut daemon = bind();
    w.write_manifest(
        "svc.cell",
        "CELL_AUTOSTART=YES\nCELL_SUPERVISE_CMD='sh -c \"while :; do echo tick; sleep 0.1; done\"'\n",
    );
    w.ok(&["apply", "--all"]);
    hears_tick(&daemon);
    // Waits until the cell's status says whether syslog is unreachable.
    let wait_for_status = |what: &str, unreachable: bool| {
        support::wait_until(
            what,
            Duration::from_secs(30),
            Duration::from_millis(20),
            || {
                cells::supervise::status(&cfg, "svc")
                    .unwrap()
                    .is_some_and(|s| s.syslog_unreachable == unreachable)
            },
        )
    };
    for read in [
        &["cell", "list", "-T", "-H", "-o", "name"][..],
        &["start", "svc"],
    ] {
        // The daemon restarts: the old socket takes nothing more.
        daemon.shutdown(std::net::Shutdown::Read).unwrap();
        std::fs::remove_file(&socket).unwrap();
        daemon = bind();
        if support::supervised_by_init() {
            wait_for_status("the init to find the syslog daemon gone", true);
        }
        w.ok(read);
        hears_tick(&daemon);
        wait_for_status("the status to say syslog is reachable", false);
    }
    // Meanwhile the records went to the fallback file, beside the log.
    let fallback = support::supervise_file(&cfg.run_dir, "svc", "syslog");
    if support::supervised_by_init() {
        let text = std::fs::read_to_string(&fallback).unwrap();
        assert!(text.contains("stdout: tick"), "{text}");
    }
    w.ok(&["stop", "svc"]);
}
