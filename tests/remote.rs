//! `cellmgr -H [user@]host` and `cellctl -H`: any command runs on another host
//! over ssh with the same output, exit codes and confirmations as there. First
//! through a stand-in `ssh` that runs the remote line here (what cellui's tests
//! do), then once through a real sshd on 127.0.0.1 that the test starts.

mod support;

use std::path::Path;
use std::process::Output;
use support::ssh::{sshd_or_skip, Sshd, StandInSsh};
use support::tmux::{run_and_report, tmux_or_skip, Tmux};
use support::world::World;
use support::{port, BIN};

/// Runs `cells <personality> <args>` for `w` with `path` as PATH, in a new
/// session without a terminal, stdin from /dev/null (as `World::run`).
fn run(w: &World, path: &str, personality: &str, args: &[&str]) -> Output {
    let args = [&[personality], args].concat();
    w.run_program(Path::new(BIN), &args, &[("PATH", path)])
}

fn same(local: &Output, remote: &Output, what: &str) {
    assert_eq!(
        (
            &local.status.code(),
            text(&local.stdout),
            text(&local.stderr)
        ),
        (
            &remote.status.code(),
            text(&remote.stdout),
            text(&remote.stderr)
        ),
        "{what}: local and remote differ"
    );
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `bin` directory with the personalities, as an installed host has them.
fn personalities(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("sbin");
    std::fs::create_dir_all(&bin).unwrap();
    for p in ["cellmgr", "cellctl"] {
        std::os::unix::fs::symlink(BIN, bin.join(p)).unwrap();
    }
    bin
}

#[test]
fn commands_run_remotely_with_the_same_output_and_exit_codes() {
    let w = World::new("remote");
    let ssh = StandInSsh::new(&w.dir.join("fakessh"));
    let path = ssh.path(&[&personalities(&w.dir)]);
    let local = |p: &str, args: &[&str]| run(&w, &std::env::var("PATH").unwrap(), p, args);
    let remote =
        |p: &str, args: &[&str]| run(&w, &path, p, &[&["-H", "operator@cellhost"], args].concat());

    // Arguments with spaces, quotes and shell characters arrive as given.
    let cmd = "/bin/busybox httpd -f -p 8080 -h '/srv/my www' *;|&";
    let out = remote(
        "mgr",
        &[
            "cell",
            "create",
            "web",
            "--cmd",
            cmd,
            "--reserved-ports",
            "8080",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        local(
            "mgr",
            &["cell", "show", "web", "-T", "-H", "-o", "supervise_cmd"]
        )
        .stdout,
        format!("{cmd}\n").into_bytes()
    );
    assert_eq!(
        ssh.commands().last().unwrap(),
        "cellmgr cell create web --cmd '/bin/busybox httpd -f -p 8080 -h '\\''/srv/my www'\\'' \
         *;|&' --reserved-ports 8080"
    );

    for args in [
        &[
            "cell",
            "list",
            "-T",
            "-H",
            "-o",
            "name,state,create_reserved_ports",
        ][..],
        &["list", "--json", "--view", "desired"],
        &["cell", "show", "nosuch"],
        &["volume", "list"],
        // No terminal there either: the same refusal that asks for --yes.
        &["cell", "remove", "--all", "--scope", "desired"],
        &["cell", "frobnicate"],
    ] {
        same(&local("mgr", args), &remote("mgr", args), &args.join(" "));
    }
    // apply --dry-run's exit 2 (drift) comes back as 2.
    let dry = remote("mgr", &["apply", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(2), "{dry:?}");
    same(
        &local("mgr", &["apply", "--dry-run"]),
        &dry,
        "apply --dry-run",
    );
    // cellctl too (as root it lists the kernel's cells; otherwise both fail alike).
    same(
        &local("ctl", &["list", "--json"]),
        &remote("ctl", &["list", "--json"]),
        "ctl list",
    );
    assert!(ssh.commands().iter().any(|c| c == "cellctl list --json"));
    // Without a terminal here, ssh gets none there: stdout and stderr stay apart.
    assert!(
        ssh.options().iter().all(|o| o == "-T"),
        "{:?}",
        ssh.options()
    );

    // The global options: --remote-cmd picks the command there; it needs -H.
    let out = run(
        &w,
        &path,
        "mgr",
        &[
            "-H",
            "h",
            "--remote-cmd",
            "env CELLS_LOG=warn cellmgr",
            "cell",
            "list",
            "-T",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        ssh.commands().last().unwrap(),
        "env CELLS_LOG=warn cellmgr cell list -T"
    );
    let out = run(&w, &path, "mgr", &["--remote-cmd", "x", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--remote-cmd only applies with -H HOST"));
    let out = run(&w, &path, "mgr", &["-H", "-oProxyCommand=x", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("expected [user@]host"),
        "{out:?}"
    );

    // ssh's own failure: its message, then ours, exit 1 (not 255).
    let down = StandInSsh::unreachable(&w.dir.join("downssh"));
    let out = run(&w, &down.path(&[]), "mgr", &["-H", "nosuch", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("ssh: connect to host nosuch"), "{err}");
    assert!(
        err.contains("cellmgr: -H nosuch: ssh failed (exit 255)"),
        "{err}"
    );
}

#[test]
fn confirmations_are_typed_on_the_operators_terminal() {
    if !tmux_or_skip("confirmations_are_typed_on_the_operators_terminal") {
        return;
    }
    let w = World::new("remote-tty");
    w.ok(&["cell", "create", "web"]);
    let ssh = StandInSsh::new(&w.dir.join("fakessh"));
    let path = ssh.path(&[&personalities(&w.dir)]);
    let line = format!(
        "PATH={path} {} {BIN} mgr -H operator@cellhost cell remove --all --scope desired",
        w.conf_env()
    );
    let t = Tmux::start("remote-confirm", &run_and_report("BEFORE", &line), 100, 24);
    t.wait_text("Type 'yes' to continue:");
    t.type_text("yes");
    t.keys(&["Enter"]);
    t.wait_text("EXIT=0");
    assert!(!w.manifest_dir().join("web.cell").exists());
    // At a terminal, ssh was asked for one there (-t), so the prompt could be typed.
    assert_eq!(ssh.options(), ["-t"]);
}

#[test]
fn a_real_sshd_on_loopback_runs_the_remote_command() {
    if !sshd_or_skip("a_real_sshd_on_loopback_runs_the_remote_command") {
        return;
    }
    let w = World::new("remote-sshd");
    let sshd = Sshd::start(&w.dir.join("sshd"), port(0));
    let path = format!(
        "{}:{}",
        sshd.bin().display(),
        std::env::var("PATH").unwrap()
    );
    // sshd gives the session a clean environment: the remote command names the
    // configuration and the binary itself.
    let there = format!("env CELLMGR_CONF={} {BIN} mgr", w.conf.display());
    let remote = |args: &[&str]| {
        run(
            &w,
            &path,
            "mgr",
            &[&["-H", "cellhost", "--remote-cmd", &there], args].concat(),
        )
    };
    let out = remote(&["cell", "create", "web", "--cmd", "/bin/busybox sleep '1 2'"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        w.rows("name,state,supervise_cmd"),
        "web\tdeclared\t/bin/busybox sleep '1 2'\n"
    );
    let local = |args: &[&str]| run(&w, &std::env::var("PATH").unwrap(), "mgr", args);
    for args in [
        &["cell", "list", "--json", "--view", "desired"][..],
        &["cell", "show", "nosuch"],
        &["apply", "--dry-run"],
    ] {
        same(&local(args), &remote(args), &args.join(" "));
    }
    assert_eq!(remote(&["apply", "--dry-run"]).status.code(), Some(2));
}
