//! The bridge over the real engine: `cellmgr ipc serve --stdio` of the real
//! binary, real cells started and stopped through it, errors worded as the CLI
//! words them, backups made and restored. Needs root and busybox.

mod support;

use cells::ipc::client::{remote_error, Connection};
use cells::ipc::proto::{BackupTarget, ErrorKind, Request, Response};
use std::time::Duration;
use support::ipc::{frame, hello};
use support::world::World;
use support::{names, root_or_skip, run_helper_as, wait_until, BIN};

/// `cellmgr ipc serve --stdio` of this world, as the UI runs it.
fn bridge_command(w: &World) -> std::process::Command {
    w.command(&["mgr", "ipc", "serve", "--stdio"])
}

fn bridge(w: &World) -> Connection {
    Connection::spawn(bridge_command(w)).expect("starting the bridge")
}

fn cells(c: &mut Connection) -> Vec<cells::model::CellRow> {
    match c.call(Request::Cells).unwrap() {
        Response::Cells(rows) => rows,
        other => panic!("{other:?}"),
    }
}

#[test]
fn cells_start_and_stop_through_the_bridge() {
    if !root_or_skip("cells_start_and_stop_through_the_bridge") {
        return;
    }
    let w = World::new("ipc-life");
    w.ok(&["cell", "create", "svc"]);
    w.ok(&["cell", "create", "idle"]);
    let mut c = bridge(&w);

    let rows = cells(&mut c);
    let got: Vec<(&str, &str, bool)> = rows
        .iter()
        .map(|r| (r.name.as_str(), r.state.as_str(), r.running))
        .collect();
    assert_eq!(
        got,
        [("idle", "declared", false), ("svc", "declared", false)]
    );

    let Response::Done { message } = c
        .call(Request::Start {
            cells: names(&["svc"]),
        })
        .unwrap()
    else {
        panic!()
    };
    assert!(message.starts_with("started cell svc (cid "), "{message}");
    let svc = cells(&mut c).into_iter().find(|r| r.name == "svc").unwrap();
    assert!(svc.running && svc.cid.is_some(), "{svc:?}");
    assert!(matches!(
        c.call(Request::Stop {
            cells: names(&["svc"])
        }),
        Ok(Response::Done { .. })
    ));
    assert!(!cells(&mut c).iter().any(|r| r.running));
}

/// The supervisor is reached through `cellctl supervise`.
fn have_supervisor() -> bool {
    let out = std::process::Command::new(BIN)
        .args(["ctl", "supervise", "--help"])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("skipped: this build's cellctl has no supervise command");
    }
    out.status.success()
}

#[test]
fn a_services_output_reaches_the_log_tail() {
    if !root_or_skip("a_services_output_reaches_the_log_tail") || !have_supervisor() {
        return;
    }
    let w = World::new("ipc-log");
    w.ok(&[
        "cell",
        "create",
        "svc",
        "--cmd",
        "sh -c 'echo hello from svc; exec sleep 1000'",
    ]);
    let mut c = bridge(&w);
    assert!(matches!(
        c.call(Request::Start {
            cells: names(&["svc"])
        }),
        Ok(Response::Done { .. })
    ));
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        let req = Request::LogTail {
            cell: "svc".into(),
            lines: 10,
            offset: None,
        };
        let Response::Log(chunk) = c.call(req).unwrap() else {
            panic!()
        };
        seen = chunk.lines;
        if seen.iter().any(|l| l.contains("hello from svc")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        seen.iter().any(|l| l.contains("hello from svc")),
        "{seen:?}"
    );

    assert!(matches!(
        c.call(Request::Stop {
            cells: names(&["svc"])
        }),
        Ok(Response::Done { .. })
    ));
    assert!(!cells(&mut c).iter().any(|r| r.running));
}

#[test]
fn errors_carry_the_clis_message() {
    if !root_or_skip("errors_carry_the_clis_message") {
        return;
    }
    let w = World::new("ipc-err");
    let cli = w.fails(&["cell", "start", "nosuch"]);
    let mut c = bridge(&w);
    let err = c
        .call(Request::Start {
            cells: names(&["nosuch"]),
        })
        .unwrap_err();
    let remote = remote_error(&err).expect("a typed error");
    assert_eq!(remote.kind, ErrorKind::Failed);
    assert_eq!(
        format!("cellmgr: {}", remote.message),
        cli.lines().last().unwrap(),
        "the bridge words the error as the CLI does"
    );
    // The session goes on.
    assert_eq!(c.call(Request::Ping).unwrap(), Response::Pong);
}

#[test]
fn backups_are_made_listed_and_restored() {
    if !root_or_skip("backups_are_made_listed_and_restored") {
        return;
    }
    let w = World::new("ipc-backup");
    w.ok(&["volume", "create", "data", "--scope", "both"]);
    let file = w.volume_dir().join("data/note.txt");
    std::fs::write(&file, "first\n").unwrap();
    let mut c = bridge(&w);
    let Response::Volumes(vols) = c.call(Request::Volumes).unwrap() else {
        panic!()
    };
    assert_eq!(vols.len(), 1);
    assert_eq!(vols[0].name, "data");

    let target = BackupTarget::Volume("data".into());
    let Response::BackupCreated(made) = c
        .call(Request::BackupCreate {
            target: target.clone(),
            quiesce: false,
        })
        .unwrap()
    else {
        panic!()
    };
    assert!(made.archive.contains("data_"), "{made:?}");
    let Response::Backups(list) = c
        .call(Request::Backups {
            target: target.clone(),
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(list, vec![made.clone()]);

    std::fs::write(&file, "changed\n").unwrap();
    let restore = Request::BackupRestore {
        target,
        archive: made.archive,
    };
    assert!(matches!(c.call(restore), Ok(Response::Done { .. })));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "first\n");
}

/// Sends `bytes` to a fresh stdio server, hangs up at once, and waits for the
/// server to finish.
fn send_and_hang_up(w: &World, bytes: &[u8]) {
    use std::io::Write;
    let mut child = bridge_command(w)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the server ended with {status}");
}

#[test]
fn a_client_hanging_up_never_leaves_half_an_action() {
    if !root_or_skip("a_client_hanging_up_never_leaves_half_an_action") {
        return;
    }
    let w = World::new("ipc-hangup");
    w.ok(&["cell", "create", "gamma"]);
    w.ok(&["cell", "start", "gamma"]);
    let hello = hello();
    let stop = frame(
        2,
        &Request::Stop {
            cells: names(&["gamma"]),
        },
    );

    // Cut inside the frame: nothing is done.
    let mut partial = frame(1, &hello);
    partial.extend_from_slice(&stop[..stop.len() - 4]);
    send_and_hang_up(&w, &partial);
    assert!(
        w.rows("name,running").contains("gamma\t1"),
        "a partial request acted"
    );

    // A whole request and gone before the reply: the stop is carried out fully.
    let mut whole = frame(1, &hello);
    whole.extend_from_slice(&stop);
    send_and_hang_up(&w, &whole);
    assert!(w.rows("name,running").contains("gamma\t0"));
    let root = w.data_dir().join("gamma");
    let prefix = root.display().to_string();
    assert!(
        !w.mounts().iter().any(|m| m.starts_with(&prefix)),
        "the stop left mounts: {:?}",
        w.mounts()
    );
    // And the cell starts again cleanly.
    w.ok(&["cell", "start", "gamma"]);
}

#[test]
fn apply_needs_the_plan_that_was_shown() {
    if !root_or_skip("apply_needs_the_plan_that_was_shown") {
        return;
    }
    let w = World::new("ipc-apply");
    w.ok(&[
        "cell",
        "create",
        "web",
        "--cmd",
        "sleep 1000",
        "--autostart",
        "YES",
    ]);
    let mut c = bridge(&w);
    let plan_of = |c: &mut Connection| match c
        .call(Request::Plan {
            cells: names(&["web"]),
        })
        .unwrap()
    {
        Response::Plan(plan) => plan,
        other => panic!("{other:?}"),
    };
    let plan = plan_of(&mut c);
    assert!(plan.drift);
    let steps: Vec<(&str, &str)> = plan
        .steps
        .iter()
        .map(|s| (s.action.as_str(), s.subject.as_str()))
        .collect();
    assert_eq!(steps, [("CREATE", "cell web"), ("START", "cell web")]);
    // The token is the digest the CLI prints: what `apply --expect-digest` checks.
    let dry = w.run(&["apply", "--dry-run", "web"]);
    let printed = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(
        printed.contains(&format!("\ndigest {}\n", plan.token)),
        "{printed}"
    );

    // The desired state changes after the plan was shown, in a way its lines do
    // not show (the command of a new cell): the apply refuses under its lock.
    w.ok(&["cell", "set", "web", "--cmd", "sleep 2000"]);
    let rows_before = w.rows("name,running,rendered,state");
    assert!(rows_before.starts_with("web\t0\t0\t"), "{rows_before}");
    let stale = Request::Apply {
        cells: names(&["web"]),
        plan_token: plan.token.clone(),
    };
    let err = c.call(stale).unwrap_err();
    let remote = remote_error(&err).expect("a remote error");
    assert!(
        remote
            .message
            .starts_with("the plan changed since it was reviewed"),
        "{remote}"
    );
    assert!(remote.message.contains("nothing was changed"), "{remote}");
    assert_eq!(w.rows("name,running,rendered,state"), rows_before);
    // A token that is no digest at all is refused before anything runs.
    let err = c
        .call(Request::Apply {
            cells: names(&["web"]),
            plan_token: "42".into(),
        })
        .unwrap_err();
    assert!(err.to_string().contains("64 hex digits"), "{err}");

    let plan = plan_of(&mut c);
    let Response::Done { message } = c
        .call(Request::Apply {
            cells: names(&["web"]),
            plan_token: plan.token,
        })
        .unwrap()
    else {
        panic!()
    };
    assert!(message.contains("summary:"), "{message}");
    assert!(w.rows("name,running").contains("web\t1"));
    assert!(!plan_of(&mut c).drift, "converged");
}

const PEER_ENV: &str = "CELLS_TEST_BRIDGE_SOCKET";

/// Not a test on its own: the unprivileged client of
/// `an_unprivileged_group_member_drives_the_socket_server`.
#[test]
fn unprivileged_client_helper() {
    let Ok(path) = std::env::var(PEER_ENV) else {
        return;
    };
    let endpoint = cells::ipc::client::Endpoint::Socket(path.into());
    match Connection::open(&endpoint, false).and_then(|mut c| c.call(Request::Cells)) {
        Ok(Response::Cells(rows)) => {
            let names: Vec<String> = rows.into_iter().map(|r| r.name).collect();
            println!("CLIENT-RESULT: cells {}", names.join(","));
        }
        Ok(other) => println!("CLIENT-RESULT: {other:?}"),
        Err(e) => println!("CLIENT-RESULT: error {e:#}"),
    }
}

#[test]
fn an_unprivileged_group_member_drives_the_socket_server() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !root_or_skip("an_unprivileged_group_member_drives_the_socket_server") {
        return;
    }
    let w = World::new("ipc-sock");
    w.ok(&["cell", "create", "shared"]);
    let socket = w.dir.join("cellmgr.sock");
    let mut server = w
        .command(&["mgr", "ipc", "serve", "--socket"])
        .arg(&socket)
        .args(["--group", "nogroup"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the socket",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || socket.exists(),
    );
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 65534, "owned by group nogroup");
    std::fs::set_permissions(&w.dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    let client = |uid: u32, gid: u32| {
        run_helper_as(
            "unprivileged_client_helper",
            (PEER_ENV, socket.as_os_str()),
            uid,
            gid,
            "CLIENT-RESULT",
        )
    };
    // nobody, in group nogroup: served, with the (root) server acting for it.
    assert_eq!(client(65534, 65534), "CLIENT-RESULT: cells shared");
    // Another uid outside the group: the kernel lets it connect only if the mode
    // allows; with 0660 it is refused before the server sees it.
    let other = client(12345, 12345);
    assert!(other.contains("Permission denied"), "{other}");

    server.kill().unwrap();
    server.wait().unwrap();
}

/// A local user who plants files at the names the bridge used to give its
/// scratch files (`/tmp/cellmgr-ipc-<pid>-<seq>`) cannot make its commands
/// fail: the bridge's scratch files have no name.
#[test]
fn names_planted_in_tmp_do_not_block_the_bridge() {
    if !root_or_skip("names_planted_in_tmp_do_not_block_the_bridge") {
        return;
    }
    let w = World::new("ipc-planted");
    w.ok(&["cell", "create", "svc"]);
    let next: u64 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        + 1;
    let tmp = std::env::temp_dir();
    let script = format!(
        "p={next}; while [ $p -lt {end} ]; do for n in 0 1 2 3; do : > {t}/cellmgr-ipc-$p-$n; done; p=$((p+1)); done",
        end = next + 400,
        t = tmp.display()
    );
    use std::os::unix::process::CommandExt;
    let planted = std::process::Command::new("/bin/sh")
        .args(["-c", &script])
        .uid(65534)
        .gid(65534)
        .status()
        .unwrap();
    assert!(planted.success());
    let mut c = bridge(&w);
    let started = c.call(Request::Start {
        cells: names(&["svc"]),
    });
    let stopped = c.call(Request::Stop {
        cells: names(&["svc"]),
    });
    for p in next..next + 400 {
        for n in 0..4 {
            let _ = std::fs::remove_file(tmp.join(format!("cellmgr-ipc-{p}-{n}")));
        }
    }
    assert!(matches!(started, Ok(Response::Done { .. })), "{started:?}");
    assert!(matches!(stopped, Ok(Response::Done { .. })), "{stopped:?}");
}
