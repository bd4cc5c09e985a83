//! Shell completion (`cells completion SHELL`): generated from the command
//! table that parses the arguments, so every command is offered, and bash, zsh
//! and fish each complete a subcommand, a flag and a cell name for real.

mod support;

use std::os::unix::fs::symlink;
use std::process::Command;
use support::{TempDir, BIN};

/// A directory with `cells` and its personality names, for PATH.
fn bin_dir() -> TempDir {
    let dir = TempDir::new("completion");
    for n in ["cells", "cellctl", "cellmgr", "cellui"] {
        symlink(BIN, dir.join(n)).unwrap();
    }
    dir
}

fn script(shell: &str) -> String {
    let o = Command::new(BIN)
        .args(["completion", shell])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8(o.stdout).unwrap()
}

/// Runs `code` in `shell` with the script written to `$SCRIPT` and the tools on
/// PATH; a cellmgr world with one declared cell `web` and one volume `data`.
fn run_in(shell: &str, code: &str) -> String {
    let dir = bin_dir();
    let path = dir.join(format!("script.{shell}"));
    std::fs::write(&path, script(shell)).unwrap();
    let world = support::world::World::new("completion");
    world.ok(&["cell", "create", "web"]);
    world.ok(&["volume", "create", "data"]);
    let path_var = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    let mut cmd = Command::new(shell);
    match shell {
        "zsh" => cmd.args(["-f", "-c", code]),
        "fish" => cmd.args(["--no-config", "-c", code]),
        _ => cmd.args(["--norc", "-c", code]),
    };
    let o = cmd
        .env("PATH", path_var)
        .env("SCRIPT", &path)
        .env("CELLMGR_CONF", &world.conf)
        .env("HOME", dir.path())
        .env("ZDOTDIR", dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{shell}: {o:?}");
    String::from_utf8(o.stdout).unwrap()
}

fn have(shell: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {shell}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: {shell} is not installed (scripts/install-deps.sh installs it)");
    }
    found
}

#[test]
fn bash_completes_subcommands_flags_and_names() {
    let out = run_in(
        "bash",
        r#"source "$SCRIPT"
complete -p cellmgr cellctl cellui cells
reply() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _cells; echo "${COMPREPLY[*]}"; }
reply cellmgr ce
reply cellmgr cell sta
reply cellmgr list --js
reply cellmgr cell start ''
reply cellmgr volume show ''
reply cells mgr apply --dry
reply cells ''
reply cellctl create -l
reply cells completion ''
"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    for p in ["cellmgr", "cellctl", "cellui", "cells"] {
        assert!(
            lines.contains(&format!("complete -F _cells {p}").as_str()),
            "{out}"
        );
    }
    let replies = &lines[4..];
    assert_eq!(replies[0], "cell", "{out}");
    assert_eq!(replies[1], "start", "{out}");
    assert_eq!(replies[2], "--json", "{out}");
    assert_eq!(replies[3], "web", "{out}");
    assert_eq!(replies[4], "data", "{out}");
    assert_eq!(replies[5], "--dry-run", "{out}");
    assert!(
        replies[6].contains("cellmgr") && replies[6].contains("completion"),
        "{out}"
    );
    // After an option that takes a value: file names (here none match '').
    assert!(!replies[7].contains("create"), "{out}");
    assert_eq!(replies[8], "bash fish zsh", "{out}");
}

#[test]
fn zsh_and_fish_complete_the_same_table() {
    if have("zsh") {
        let out = run_in(
            "zsh",
            r#"autoload -Uz compinit; compinit -u -d "$HOME/zcompdump"; source "$SCRIPT"
_cells_candidates cellmgr cell sta
_cells_candidates cellmgr list --js
_cells_candidates cellmgr cell start w
"#,
        );
        assert!(
            out.lines().any(|l| l.starts_with("start:Start a cell")),
            "{out}"
        );
        assert!(out.lines().any(|l| l.starts_with("--json:")), "{out}");
        assert!(out.lines().any(|l| l == "web"), "{out}");
    }
    if have("fish") {
        let out = run_in(
            "fish",
            r#"source $SCRIPT
complete -C 'cellmgr cell sta'
complete -C 'cellmgr list --js'
complete -C 'cellmgr cell start w'
"#,
        );
        assert!(
            out.lines().any(|l| l.starts_with("start\tStart a cell")),
            "{out}"
        );
        assert!(out.lines().any(|l| l.starts_with("--json\t")), "{out}");
        assert!(out.lines().any(|l| l == "web"), "{out}");
    }
}

/// Every command of every personality's table is in every script.
#[test]
fn every_command_of_the_table_is_in_each_script() {
    let tables = [
        ("cellctl", cells::ctl::command_table()),
        ("cellmgr", cells::mgr::command_table()),
        ("cellui", cells::ui::command_table()),
    ];
    let scripts = [
        ("bash", script("bash")),
        ("zsh", script("zsh")),
        ("fish", script("fish")),
    ];
    let mut count = 0;
    for (name, info) in &tables {
        for node in cells::cmdtable::flatten(name, info) {
            let path = node.path.join(" ");
            for (shell, text) in &scripts {
                let arm = match *shell {
                    "fish" => format!("case '{path}'\n"),
                    _ => format!("'{path}')"),
                };
                assert!(text.contains(&arm), "{shell} lacks {path}");
                for flag in node.flag_words() {
                    assert!(text.contains(&flag), "{shell} lacks {path} {flag}");
                }
            }
            count += 1;
        }
    }
    // cellmgr alone has dozens; a table that lost its subcommands would not.
    assert!(count > 40, "only {count} commands in the tables");
}
