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
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let done = l.ends_with(suffix);
                    seen.push(l);
                    if done {
                        return seen;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line ending with {suffix:?} in time; got {seen:#?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("logs -f ended before {suffix:?}; got {seen:#?}")
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
    let first = follow.until("stderr: to stderr");
    assert!(
        first
            .iter()
            .any(|l| body(l) == "stdout: hello from the service"),
        "{first:#?}"
    );
    let stamp = first[0].split(' ').next().unwrap();
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{stamp}"
    );

    // Across a restart: the same stream goes on.
    w.ok(&["restart", "svc"]);
    let again = follow.until("stderr: to stderr");
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
    let log = w.dir.join("run/supervise/svc.log");
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
