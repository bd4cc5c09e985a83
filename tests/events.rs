//! The journal (`CELL_AUDIT_LOG`): an audit record for every mutation, with
//! its actor, command, cell and result; lifecycle events from the engine and
//! from the supervisors; `cellmgr events` reading both back, following across
//! rotation. Every world keeps its journal in its own temporary directory.

mod support;

use cells::ipc::client::{Connection, Endpoint};
use cells::ipc::proto::{Request, Response};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::world::World;
use support::{names, root_or_skip, wait_until};

fn journal(w: &World) -> Vec<Value> {
    std::fs::read_to_string(w.dir.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn audits<'a>(records: &'a [Value], action: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["type"] == "audit" && r["action"] == action)
        .collect()
}

/// `cellmgr events <args>` running in the background; its lines arrive on a
/// channel as they are printed.
struct Follow {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follow {
    fn start(w: &World, args: &[&str]) -> Follow {
        let mut child = w
            .command(&["mgr", "events", "-f"])
            .args(args)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follow { child, lines }
    }

    /// The lines up to and including the first one containing `want`.
    fn until(&self, want: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let done = line.contains(want);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {want:?} within 30 s; got {seen:#?}"),
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

#[test]
fn every_mutation_is_audited_with_actor_command_cell_and_result() {
    if !root_or_skip("every_mutation_is_audited_with_actor_command_cell_and_result") {
        return;
    }
    let w = World::new("audit");
    let sudo = [("SUDO_USER", "alice"), ("SUDO_UID", "1000")];
    let ok = |args: &[&str]| {
        let o = w.run_env(args, &sudo);
        // 2: a dry run that found something to do.
        assert!(matches!(o.status.code(), Some(0 | 2)), "{args:?}: {o:?}");
    };
    ok(&["cell", "create", "web", "--cmd", "sleep 600"]);
    ok(&["volume", "create", "data"]);
    ok(&["cell", "start", "web"]);
    ok(&["list"]);
    ok(&["cell", "show", "web"]);
    ok(&["apply", "--dry-run"]);
    ok(&["cell", "stop", "web"]);
    let failed = w.run_env(&["cell", "start", "nosuch"], &sudo);
    assert_eq!(failed.status.code(), Some(1));

    let meta = std::fs::metadata(w.dir.join("audit.log")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "the journal is root's alone");
    let records = journal(&w);
    let all_audits: Vec<&Value> = records.iter().filter(|r| r["type"] == "audit").collect();
    let actions: Vec<&str> = all_audits
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    // Reads (list, show, a dry run) are not mutations.
    assert_eq!(
        actions,
        [
            "cell create",
            "volume create",
            "cell start",
            "cell stop",
            "cell start"
        ],
        "{records:#?}"
    );
    let create = audits(&records, "cell create")[0];
    assert_eq!(create["cell"], "web");
    assert_eq!(create["result"], "ok");
    assert_eq!(
        create["command"],
        "cellmgr cell create web --cmd 'sleep 600'"
    );
    assert_eq!(create["actor"]["uid"], 0);
    assert_eq!(create["actor"]["sudo_user"], "alice");
    assert_eq!(create["actor"]["sudo_uid"], 1000);
    assert!(create["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(audits(&records, "volume create")[0]["volume"], "data");
    let bad = audits(&records, "cell start")[1];
    assert_eq!(bad["cell"], "nosuch");
    assert_eq!(bad["result"], "failed");
    assert_eq!(bad["exit"], 1);
    // The lifecycle events of the same run, in order.
    let events: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["type"] == "event")
        .map(|r| (r["event"].as_str().unwrap(), r["cell"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [("started", "web"), ("exited", "web"), ("stopped", "web")],
        "{records:#?}"
    );
}

#[test]
fn a_crash_loop_shows_exits_and_restarts_from_the_supervisor() {
    if !root_or_skip("a_crash_loop_shows_exits_and_restarts_from_the_supervisor") {
        return;
    }
    let w = World::new("events-loop");
    w.ok(&["cell", "create", "loop", "--cmd", "sh -c 'exit 3'"]);
    let follow = Follow::start(&w, &["--cell", "loop"]);
    let _ = w.run(&["cell", "start", "loop"]);
    let seen = follow.until("restarted");
    let text = seen.join("\n");
    assert!(
        seen.iter()
            .any(|l| l.contains(" loop ") && l.contains("exited") && l.ends_with("exit 3")),
        "{text}"
    );
    assert!(seen.iter().any(|l| l.ends_with("restart 1")), "{text}");
    assert!(seen[0].contains("started"), "{text}");
    w.ok(&["cell", "stop", "loop"]);
    follow.until("stopped");
    // --json prints the records as stored; --since in the future shows none.
    let json = w.ok(&["events", "--json", "--cell", "loop"]);
    for line in json.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        assert_eq!(r["type"], "event");
        assert_eq!(r["cell"], "loop");
    }
    let pids: Vec<&str> = json.lines().collect();
    assert!(pids.len() >= 4, "{json}");
    assert_eq!(w.ok(&["events", "--since", "2999-01-01"]), "");
    let e = w.fails(&["events", "--since", "yesterday"]);
    assert!(
        e.contains("--since 'yesterday': expected a UTC time"),
        "{e}"
    );
}

#[test]
fn events_follow_the_journal_across_rotation() {
    if !root_or_skip("events_follow_the_journal_across_rotation") {
        return;
    }
    // About two records per file: every other create rotates.
    let w = World::with_conf(
        "events-rotate",
        "CELL_AUDIT_LOG_SIZE=200\nCELL_AUDIT_LOG_KEEP=3\n",
    );
    let create = |i: usize| w.ok(&["cell", "create", &format!("c{i}")]);
    create(0);
    let follow = Follow::start(&w, &["--audit"]);
    let mut seen = follow.until("c0 ");
    // A burst: several rotations between two looks of the follower.
    for i in 1..6 {
        create(i);
    }
    seen.extend(follow.until("c5 "));
    // Then one at a time.
    let n = 10;
    for i in 6..n {
        create(i);
        seen.extend(follow.until(&format!("c{i} ")));
    }
    let created: Vec<String> = seen
        .iter()
        .filter(|l| l.contains("cell create: ok"))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    let want: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    assert_eq!(created, want, "every record once, in order: {seen:#?}");
    assert!(w.dir.join("audit.log.3").exists());
    assert!(
        !w.dir.join("audit.log.4").exists(),
        "only 3 rotated files kept"
    );
}

#[test]
fn ipc_actions_name_the_client_the_kernel_reported() {
    if !root_or_skip("ipc_actions_name_the_client_the_kernel_reported") {
        return;
    }
    let w = World::new("audit-ipc");
    w.ok(&["cell", "create", "svc"]);
    let socket = w.dir.join("cellmgr.sock");
    let mut server = w
        .command(&["mgr", "ipc", "serve", "--socket"])
        .arg(&socket)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the socket",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || socket.exists(),
    );
    let mut c = Connection::open(&Endpoint::Socket(socket.clone()), false).unwrap();
    let reply = c
        .call(Request::Start {
            cells: names(&["svc"]),
        })
        .unwrap();
    assert!(matches!(reply, Response::Done { .. }), "{reply:?}");
    let reply = c
        .call(Request::Stop {
            cells: names(&["nosuch"]),
        })
        .unwrap_err();
    assert!(format!("{reply:#}").contains("nosuch"), "{reply:#}");
    drop(c);
    server.kill().unwrap();
    server.wait().unwrap();
    w.ok(&["cell", "stop", "svc"]);

    let records = journal(&w);
    let me = std::process::id();
    let asked = audits(&records, "ipc start");
    assert_eq!(asked.len(), 1, "{records:#?}");
    assert_eq!(asked[0]["cell"], "svc");
    assert_eq!(asked[0]["result"], "ok");
    assert_eq!(asked[0]["actor"]["via"], "ipc");
    assert_eq!(asked[0]["actor"]["peer_uid"], 0);
    assert_eq!(asked[0]["actor"]["peer_pid"], me);
    // The command the bridge ran for it names the same client.
    let ran = audits(&records, "cell start")[0];
    assert_eq!(ran["actor"]["via"], "ipc");
    assert_eq!(ran["actor"]["peer_pid"], me);
    let refused = audits(&records, "ipc stop")[0];
    assert_eq!(refused["result"], "failed");
    assert!(
        refused["error"].as_str().unwrap().contains("nosuch"),
        "{refused}"
    );
}

#[test]
fn health_changes_seen_by_the_supervisor_are_events() {
    if !root_or_skip("health_changes_seen_by_the_supervisor_are_events") {
        return;
    }
    let w = World::new("events-health");
    w.ok(&[
        "cell",
        "create",
        "hc",
        "--cmd",
        "sleep 600",
        "--healthcheck",
        "test -f /tmp/ok",
    ]);
    w.ok(&[
        "cell",
        "set",
        "hc",
        "--set",
        "CELL_HEALTHCHECK_INTERVAL=200ms",
        "--set",
        "CELL_HEALTHCHECK_RETRIES=1",
    ]);
    let follow = Follow::start(&w, &["--cell", "hc"]);
    // Judged failing at start (exit 1); the supervisor keeps checking.
    let _ = w.run(&["cell", "start", "hc"]);
    follow.until("health    failing");
    w.ok(&["shell", "hc", "touch", "/tmp/ok"]);
    follow.until("health    ok");
    w.ok(&["cell", "stop", "hc"]);
    follow.until("stopped");
}
