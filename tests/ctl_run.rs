//! `cellctl run`: an ephemeral cell with the whole cell contract, created for
//! one command and gone with everything in it once the command exits, or
//! once cellctl is told (or forced) to end.

mod support;

use cells::kernel::linux::state::{CellRecord, Store};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use support::ctl::{self as cellenv, host_bind, port, Env};

fn privileged(test: &str) -> bool {
    cellenv::root_or_skip(test) && cellenv::busybox_or_skip(test)
}

/// The cells of the environment's kernel table.
fn recorded(env: &Env) -> Vec<CellRecord> {
    Store::new(env.dir.join("run/kernel"))
        .lock()
        .unwrap()
        .table
        .cells
}

/// Starts `cellctl run ARGS` with its stdout piped and waits for the command
/// to print `ready`.
fn start_until_ready(env: &Env, args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = env
        .command()
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "the command did not start");
    (child, out)
}

/// Everything a cell has on the host is gone: table entry, runtime directory,
/// cgroups of both versions, processes.
fn assert_gone(env: &Env, cell: &CellRecord, marker: &str) {
    assert_eq!(env.ok(&["list"]), "no cells\n");
    assert!(recorded(env).is_empty());
    let dir = Store::new(env.dir.join("run/kernel")).cell_dir(cell.id);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        !cell.cgroup.exists(),
        "cgroup {} left behind",
        cell.cgroup.display()
    );
    for group in &cell.v1_groups {
        assert!(!group.exists(), "cgroup {} left behind", group.display());
    }
    let left = cellenv::host_processes_mentioning(marker);
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn run_passes_the_exit_status_and_stdio_through() {
    if !privileged("run_passes_the_exit_status_and_stdio_through") {
        return;
    }
    let mut env = Env::new("run-status");
    let root = env.root("a", false);
    let root = root.to_str().unwrap();
    let status = |script: &str| {
        env.ctl(&["run", root, "/bin/sh", "-c", script])
            .status
            .code()
    };
    assert_eq!(status("exit 7"), Some(7));
    // The cell's end is no news: nothing on stderr but the command's own.
    let out = env.ctl(&["run", root, "/bin/sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(status("true"), Some(0));
    // Killed by a signal: 128 + its number, as a shell reports it.
    assert_eq!(status("kill -9 $$"), Some(128 + 9));
    assert_eq!(status("kill -TERM $$"), Some(128 + 15));
    // A command that cannot start fails in cellctl itself, and the cell goes.
    let out = env.ctl(&["run", "-n", "nocmd", root, "/nonexistent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nocmd"),
        "{out:?}"
    );
    assert_eq!(env.ok(&["list"]), "no cells\n");
    // stdin and stdout are the caller's.
    let mut child = env
        .command()
        .args(["run", root, "/bin/cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"through\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through\n");
    // Bad flags are refused before anything is made.
    let out = env.ctl(&["run", "-l", "lowest", root, "/bin/true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-l"),
        "{out:?}"
    );
}

#[test]
fn run_confines_the_command_as_exec_does() {
    if !privileged("run_confines_the_command_as_exec_does") {
        return;
    }
    let mut env = Env::new("run-confine");
    let root = env.root("a", false);
    let rootp = root.to_str().unwrap();
    // Capabilities, seccomp, no_new_privs, the PID namespace (the shell is
    // pid 2 after the init), the private /proc and the host name.
    let probe = "grep -E '^(CapBnd|CapEff|CapPrm|NoNewPrivs|Seccomp|Seccomp_filters):' \
                 /proc/self/status; echo pid $$; set -- /proc/[0-9]*; echo $#; hostname";
    for profile in ["medium", "high"] {
        let name = format!("ex-{profile}");
        env.create(&name, &root, &["-l", profile]);
        let (code, exec, _) = env.sh(&name, probe);
        assert_eq!(code, 0);
        env.ok(&["destroy", &name]);
        let out = env.ctl(&[
            "run", "-l", profile, "-n", &name, rootp, "/bin/sh", "-c", probe,
        ]);
        assert!(out.status.success(), "{out:?}");
        let run = String::from_utf8_lossy(&out.stdout);
        assert_eq!(run, exec, "profile {profile}");
        assert!(run.contains("Seccomp:\t2\n"), "{run}");
        assert!(run.contains("NoNewPrivs:\t1\n"), "{run}");
        // The init and the shell, nothing of the host.
        assert!(run.contains("pid 2\n2\n"), "{run}");
        assert!(run.ends_with(&format!("{name}\n")), "{run}");
    }
    // Without -n the cell is named after cellctl's pid; high by default.
    let out = env.ctl(&["run", rootp, "/bin/hostname"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("run-"));
}

/// The init is forked from cellctl rather than executed afresh: what the cell
/// can see of it (its command line, readable whatever its dumpable flag;
/// its environment and memory map, which it must not be able to read) tells
/// nothing of cellctl's command line or environment.
#[test]
fn the_cells_init_shows_nothing_of_its_creator() {
    if !privileged("the_cells_init_shows_nothing_of_its_creator") {
        return;
    }
    let mut env = Env::new("run-init-view");
    let root = env.root("a", false);
    let rootp = root.to_str().unwrap();
    let probe = "tr '\\0' '|' </proc/1/cmdline; echo; cat /proc/1/environ; \
                 cat /proc/1/maps; cat /proc/1/comm";
    for profile in ["low", "high"] {
        let out = env
            .command()
            .env("CELLS_TEST_SECRET", "creator-secret-7731")
            .args(["run", "-l", profile, rootp, "/bin/sh", "-c", probe])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        let mut lines = stdout.lines();
        let cmdline = lines.next().unwrap_or_default();
        assert_eq!(
            cmdline.trim_end_matches('|'),
            "cells|ctl|--cell-init",
            "profile {profile}: {stdout}"
        );
        assert_eq!(
            lines.next(),
            Some("cell-init"),
            "profile {profile}: {stdout}"
        );
        for leak in [rootp, "creator-secret-7731", "run|"] {
            assert!(
                !stdout.contains(leak) && !stderr.contains(leak),
                "profile {profile}: the cell saw {leak:?}:\n{stdout}\n{stderr}"
            );
        }
        assert!(
            stderr.contains("/proc/1/environ") && stderr.contains("/proc/1/maps"),
            "profile {profile}: the init's environment or memory map is readable: {stderr}"
        );
    }
}

#[test]
fn a_terminated_run_leaves_nothing_behind() {
    if !privileged("a_terminated_run_leaves_nothing_behind") {
        return;
    }
    let mut env = Env::new("run-term");
    let root = env.root("a", false);
    let reserved = port(0, 0);
    // A daemon left in the background and a foreground command that ignores
    // nothing: TERM to cellctl reaches the command, and the cell goes with
    // the daemon in it.
    let marker = format!("{}", 200_000 + std::process::id());
    let script = format!("sleep {marker} & echo ready; exec sleep {marker}");
    let (mut child, _out) = start_until_ready(
        &env,
        &[
            "-n",
            "eph",
            "-r",
            &reserved.to_string(),
            "--maxproc",
            "50",
            root.to_str().unwrap(),
            "/bin/sh",
            "-c",
            &script,
        ],
    );
    // While it runs it is a cell like any other: listed, its port guarded.
    let rows = env.list_rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], "eph");
    assert_eq!(host_bind(65534, false, false, reserved), libc::EPERM);
    let cell = recorded(&env).remove(0);
    assert!(cell.cgroup.exists());
    assert!(!cellenv::host_processes_mentioning(&marker).is_empty());

    // SAFETY: kill of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert_gone(&env, &cell, &marker);
    assert_eq!(host_bind(65534, false, false, reserved), 0, "port released");
}

#[test]
fn a_killed_cellctl_takes_its_cell_along() {
    if !privileged("a_killed_cellctl_takes_its_cell_along") {
        return;
    }
    let mut env = Env::new("run-kill");
    let root = env.root("a", false);
    let marker = format!("{}", 300_000 + std::process::id());
    let script = format!("trap '' TERM INT HUP; echo ready; exec sleep {marker}");
    let (mut child, _out) =
        start_until_ready(&env, &[root.to_str().unwrap(), "/bin/sh", "-c", &script]);
    let cell = recorded(&env).remove(0);
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, cell.init_pid, 0) };
    assert!(fd >= 0, "the cell's init runs");
    // SAFETY: a fresh descriptor we own.
    let init = unsafe { OwnedFd::from_raw_fd(fd as i32) };

    child.kill().unwrap();
    child.wait().unwrap();
    // The init dies with its creator.
    let mut pfd = libc::pollfd {
        fd: init.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, 30_000) };
    assert_eq!(ready, 1, "the init outlived cellctl");
    // The next command finds the dead cell and removes what is left.
    let out = env.ctl(&["list"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("died; removing the cell"),
        "{out:?}"
    );
    assert_gone(&env, &cell, &marker);
}

/// The cell ends with the command it was made for, not with another one:
/// a command started in it by `cellctl exec` may come and go meanwhile.
#[test]
fn the_cell_ends_with_its_own_command_not_another() {
    if !privileged("the_cell_ends_with_its_own_command_not_another") {
        return;
    }
    let mut env = Env::new("run-own");
    let root = env.root("a", false);
    let name = format!("own{}", std::process::id());
    let script = "mkfifo /tmp/go && echo ready && read word </tmp/go && echo \"after $word\"";
    let (mut child, mut out) = start_until_ready(
        &env,
        &["-n", &name, root.to_str().unwrap(), "/bin/sh", "-c", script],
    );
    // A command of its own that ends first, then one that lets the run's go
    // on (whose own end races the cell's: it may be killed with the cell).
    assert_eq!(env.sh(&name, "true").0, 0);
    env.sh(&name, "echo go >/tmp/go");
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "after go\n");
    assert!(child.wait().unwrap().success());
    assert_eq!(env.ok(&["list"]), "no cells\n");
}
