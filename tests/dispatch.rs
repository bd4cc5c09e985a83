//! The multicall contract: argv[0] and `cells <personality>` pick the personality,
//! every personality answers `--help` with its own commands, unknown names exit 1.

mod support;

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::{Command, Output};
use support::{TempDir, BIN};

fn bin() -> PathBuf {
    PathBuf::from(BIN)
}

/// A directory with the binary linked under the given names.
fn linked(names: &[&str]) -> TempDir {
    let dir = TempDir::new("dispatch");
    for n in names {
        symlink(bin(), dir.join(n)).unwrap();
    }
    dir
}

fn run(program: &std::path::Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("CELLMGR_CONF", "/nonexistent/cellmgr.conf")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn version_and_list() {
    let o = run(&bin(), &["--version"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), format!("cells {}\n", env!("CARGO_PKG_VERSION")));
    let o = run(&bin(), &["--list"]);
    assert_eq!(stdout(&o), "cellctl\ncellmgr\ncellui\n");
}

#[test]
fn help_lists_the_personalities() {
    let o = run(&bin(), &["--help"]);
    assert!(o.status.success());
    let out = stdout(&o);
    for p in ["cellctl", "cellmgr", "cellui"] {
        assert!(out.contains(p), "{out}");
    }
}

#[test]
fn each_personality_prints_its_own_help_by_every_name() {
    let dir = linked(&["cellctl", "cellmgr", "cellui", "nb-cellctl"]);
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "cellctl",
            &["create", "destroy", "exec", "supervise", "list", "stats"],
            "ctl",
        ),
        ("cellmgr", &["cell", "volume", "apply", "system"], "mgr"),
        ("cellui", &["Usage: cellui"], "ui"),
    ];
    for (name, words, short) in cases {
        let by_link = run(&dir.path().join(name), &["--help"]);
        let by_arg = run(&bin(), &[short, "--help"]);
        let by_help = run(&bin(), &["--help", name]);
        for o in [&by_link, &by_arg, &by_help] {
            assert!(o.status.success(), "{name}: {o:?}");
            let out = stdout(o);
            assert!(out.contains(&format!("Usage: {name}")), "{name}: {out}");
            for w in words {
                assert!(out.contains(w), "{name} help lacks {w}: {out}");
            }
        }
    }
    let prefixed = run(&dir.path().join("nb-cellctl"), &["--help"]);
    assert!(stdout(&prefixed).contains("Usage: cellctl"));
}

#[test]
fn unknown_program_or_personality_prints_usage_and_exits_1() {
    let dir = linked(&["notcells"]);
    for o in [
        run(&dir.path().join("notcells"), &[]),
        run(&bin(), &["bogus"]),
        run(&bin(), &[]),
    ] {
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("Usage: cells"),
            "{o:?}"
        );
    }
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    for p in ["ctl", "mgr"] {
        let o = run(&bin(), &[p, "no-such-command"]);
        assert_eq!(o.status.code(), Some(1), "{p}: {o:?}");
    }
}

#[test]
fn mistyped_commands_and_flags_name_the_near_miss() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["mgr", "lst"],
            "cellmgr: unknown command 'lst' (did you mean list?)\n",
        ),
        (
            &["mgr", "cell", "strt", "web"],
            "cellmgr: unknown command 'strt' for 'cell' (did you mean start?)\n",
        ),
        (
            &["mgr", "list", "--jsn"],
            "cellmgr: unknown flag --jsn for 'list' (did you mean --json?)\n",
        ),
        (
            &["ctl", "create", "--nme", "x", "/"],
            "cellctl: unknown flag --nme for 'create' (did you mean --name?)\n",
        ),
        (
            &["ui", "--sockt", "x"],
            "cellui: unknown flag --sockt (did you mean --socket?)\n",
        ),
    ];
    for (args, want) in cases {
        let o = run(&bin(), args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&o.stderr), want, "{args:?}");
    }
    let o = run(&bin(), &["mgr", "zzzzzzzz"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("cellmgr: unknown command 'zzzzzzzz'; commands: cell, volume"),
        "{err}"
    );
}

#[test]
fn an_argument_that_is_not_utf8_is_named_in_an_error() {
    use std::os::unix::ffi::OsStrExt;
    let o = Command::new(bin())
        .arg("ctl")
        .arg(std::ffi::OsStr::from_bytes(b"li\xffst"))
        .env("CELLMGR_CONF", "/nonexistent/cellmgr.conf")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("argument 2 is not valid UTF-8"), "{err}");
}

/// Output to a pipe nobody reads any more fails as an error (the command
/// ignores SIGPIPE); the command is not killed by the signal even when its
/// parent left SIGPIPE at its default.
#[test]
fn output_to_a_closed_pipe_is_an_error_not_a_signal() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let mut cmd = Command::new(bin());
    cmd.arg("--help")
        .stdout(write)
        .env("CELLMGR_CONF", "/nonexistent/cellmgr.conf");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert_eq!(o.status.signal(), None, "killed by a signal: {o:?}");
    assert!(!o.status.success(), "{o:?}");
}
