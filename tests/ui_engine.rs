//! cellui in a real terminal (tmux) over the real control plane: the bridge it
//! starts itself (`cellmgr ipc serve --stdio`), real cells and volumes in a
//! temporary world. Needs root, busybox and tmux.

mod support;

use support::root_or_skip;
use support::ssh::StandInSsh;
use support::tmux::{cellui_command, cellui_command_pid, row_of, start_cellui, tmux_or_skip, Tmux};
use support::world::World;

fn start_ui(w: &World, name: &str) -> Tmux {
    start_cellui(name, "--interval 1", &w.conf_env())
}

fn ready(test: &str) -> bool {
    tmux_or_skip(test) && root_or_skip(test)
}

#[test]
fn the_ui_lists_real_cells_and_stops_and_starts_them() {
    if !ready("the_ui_lists_real_cells_and_stops_and_starts_them") {
        return;
    }
    let w = World::new("ui-life");
    w.ok(&["cell", "create", "alpha"]);
    w.ok(&["cell", "create", "beta"]);
    w.ok(&["cell", "start", "beta", "--scope", "both"]);
    let t = start_ui(&w, "life");
    let s = t.wait("both cells", |s| {
        row_of(s, "beta").is_some() && row_of(s, "alpha").is_some()
    });
    let alpha = row_of(&s, "alpha").unwrap();
    assert!(
        alpha.contains("declared") && alpha.contains(" no "),
        "{alpha}"
    );
    let beta = row_of(&s, "beta").unwrap();
    assert!(beta.contains("managed") && beta.contains(" yes "), "{beta}");

    // beta is the second row: stop it (confirmed), then start it again.
    t.keys(&["j", "x"]);
    t.wait_text("Stop beta");
    t.keys(&["y"]);
    t.wait("beta to stop", |s| {
        row_of(s, "beta").is_some_and(|r| r.contains(" no "))
    });
    assert!(
        w.rows("name,running").contains("beta\t0"),
        "the engine agrees"
    );
    t.keys(&["s"]);
    t.wait("beta to run", |s| {
        row_of(s, "beta").is_some_and(|r| r.contains(" yes "))
    });
    assert!(w.rows("name,running").contains("beta\t1"));
    t.wait_text("started cell beta");

    // Enter: a shell in the cell, with the UI suspended, and back.
    t.keys(&["Enter"]);
    t.wait_text("shell in cell beta");
    t.type_text("echo inside-$((6*7)) $(hostname)");
    t.keys(&["Enter"]);
    t.wait_text("inside-42");
    t.type_text("exit");
    t.keys(&["Enter"]);
    // A shell that ended with a failure (dash cannot hand the terminal back to
    // a process group outside the cell) waits for Enter before the UI returns.
    let s = t.wait_text("shell in beta ended");
    if s.contains("press Enter to return") {
        t.keys(&["Enter"]);
    }
    t.wait("the UI back", |s| {
        s.contains("[Cells]") && s.contains("shell in beta ended")
    });
    // It has the terminal again: keys reach it (it used to be left in the
    // background, and its first read ended it).
    t.keys(&["?"]);
    t.wait_text("back up (may quiesce)");
    t.keys(&["Escape"]);
    // Closed before the next key: an Escape read together with the 'q' is
    // Alt-q, which quits nothing (failed once in a loaded full run).
    t.wait("the help closed", |s| !s.contains("back up (may quiesce)"));

    t.keys(&["q"]);
    let s = t.wait_text("END-OF-RUN");
    assert!(s.contains("EXIT=0") && s.contains("BEFORE-CELLUI"), "{s}");
    assert!(!s.contains("-icanon") && !s.contains("-echo"), "{s}");
}

#[test]
fn an_unconfirmed_restore_leaves_the_volume_alone() {
    if !ready("an_unconfirmed_restore_leaves_the_volume_alone") {
        return;
    }
    let w = World::new("ui-restore");
    w.ok(&["volume", "create", "data", "--scope", "both"]);
    let file = w.volume_dir().join("data/note.txt");
    std::fs::write(&file, "backed up\n").unwrap();
    w.ok(&["volume", "backup", "create", "data", "-q"]);
    std::fs::write(&file, "current\n").unwrap();

    let t = start_ui(&w, "restore");
    t.keys(&["Tab"]);
    t.wait_text("data_");
    t.wait_text("Backups (1,");
    // b: a second backup, listed newest first.
    t.keys(&["b"]);
    t.wait_text("Backups (2,");
    assert_eq!(
        std::fs::read_dir(w.dir.join("backups/volumes"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tar.gz")
            })
            .count(),
        2
    );
    // Restore the older one (the first backup): Down in the picker.
    t.keys(&["R"]);
    t.wait_text("pick an archive");
    t.keys(&["Down", "Enter"]);
    t.wait_text("REPLACES");
    t.keys(&["n"]);
    t.wait_text("cancelled");
    // A refresh after the cancel comes through the bridge after anything
    // sent before it: once it shows, a restore would have run.
    w.ok(&["volume", "create", "marker", "--scope", "both"]);
    t.wait_text("marker");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "current\n");

    t.keys(&["R"]);
    t.wait_text("pick an archive");
    t.keys(&["Down", "Enter"]);
    t.wait_text("REPLACES");
    t.keys(&["y"]);
    t.wait("the restore", |_| {
        std::fs::read_to_string(&file).is_ok_and(|s| s == "backed up\n")
    });
    t.keys(&["q"]);
    t.wait_text("EXIT=0");
}

#[test]
fn the_log_view_follows_a_services_output() {
    if !ready("the_log_view_follows_a_services_output") {
        return;
    }
    let w = World::new("ui-log");
    w.ok(&[
        "cell",
        "create",
        "talker",
        "--cmd",
        "sh -c 'mkfifo /tmp/go; echo first line from talker; read x </tmp/go; echo second line from talker; exec sleep 1000'",
    ]);
    w.ok(&["cell", "start", "talker"]);
    let t = start_ui(&w, "log");
    t.wait("talker", |s| row_of(s, "talker").is_some());
    t.keys(&["l"]);
    t.wait_text("log of talker");
    t.wait_text("first line from talker");
    // New output appears without any key: the service writes its second line
    // only now, when the test lets it go through its fifo.
    assert!(!t.screen().contains("second line from talker"));
    w.ok(&["cell", "shell", "talker", "sh", "-c", "echo go >/tmp/go"]);
    t.wait_text("second line from talker");
    t.keys(&["l"]);
    t.wait("the details pane", |s| {
        s.contains("cell talker") && !s.contains("log of talker")
    });
    t.keys(&["q"]);
    t.wait_text("EXIT=0");
}

#[test]
fn apply_shows_the_dry_run_and_runs_only_when_confirmed() {
    if !ready("apply_shows_the_dry_run_and_runs_only_when_confirmed") {
        return;
    }
    let w = World::new("ui-apply");
    w.ok(&[
        "cell",
        "create",
        "web",
        "--cmd",
        "sleep 1000",
        "--autostart",
        "YES",
    ]);
    let t = start_ui(&w, "apply");
    t.wait("web", |s| row_of(s, "web").is_some());
    t.keys(&["a"]);
    t.wait_text("Apply this plan?");
    let s = t.screen();
    assert!(s.contains("START") && s.contains("cell web"), "{s}");
    t.keys(&["n"]);
    t.wait_text("cancelled");
    // A refresh after the cancel comes through the bridge after anything
    // sent before it: once it shows, an apply would have run.
    w.ok(&["cell", "create", "marker"]);
    t.wait("the marker cell", |s| row_of(s, "marker").is_some());
    assert!(
        w.rows("name,running,rendered").contains("web\t0\t0"),
        "an unconfirmed apply ran"
    );
    t.keys(&["a"]);
    // The dialog's own prompt: the status line still reads "Apply web:
    // cancelled" until the key is read, and a "y" sent then is lost.
    t.wait_text("Apply this plan?");
    t.keys(&["y"]);
    t.wait("web to run", |s| {
        row_of(s, "web").is_some_and(|r| r.contains("managed") && r.contains(" yes "))
    });
    t.wait_text("summary:");
    // Converged: the plan says so and offers nothing to apply.
    t.keys(&["a"]);
    t.wait_text("No changes");
    t.keys(&["Space", "q"]);
    t.wait_text("EXIT=0");
}

#[test]
fn a_killed_bridge_is_restarted_and_ssh_mode_works() {
    if !ready("a_killed_bridge_is_restarted_and_ssh_mode_works") {
        return;
    }
    let w = World::new("ui-bridge");
    w.ok(&["cell", "create", "solo"]);
    let env = w.conf_env();
    let pidfile = w.dir.join("ui.pid");
    let cmd = cellui_command_pid("--interval 1", &env, &pidfile.display().to_string());
    let t = Tmux::start("bridge", &cmd, 80, 24);
    t.wait("solo", |s| row_of(s, "solo").is_some());
    // The bridge server is the UI's child; end it (by its PID) and watch the UI recover.
    let ui_pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    let children =
        std::fs::read_to_string(format!("/proc/{ui_pid}/task/{ui_pid}/children")).unwrap();
    let server: i32 = children
        .split_whitespace()
        .next()
        .expect("a bridge child")
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the bridge process this test's UI started.
    assert_eq!(unsafe { libc::kill(server, libc::SIGKILL) }, 0);
    t.wait_text("bridge lost");
    t.wait_text("bridge reconnected");
    assert!(row_of(&t.screen(), "solo").is_some());
    t.keys(&["q"]);
    t.wait_text("EXIT=0");

    // -H through an `ssh` that runs the remote command here: the command line the
    // UI builds reaches `cellmgr ipc serve --stdio` on the "remote" PATH.
    let ssh = StandInSsh::new(&w.dir.join("fakessh"));
    let path = ssh.path(&[&w.dir.join("bin")]);
    let env = format!("PATH={path} {}", w.conf_env());
    let t = Tmux::start("ssh", &cellui_command("-H operator@cellhost", &env), 80, 24);
    t.wait("solo over ssh", |s| row_of(s, "solo").is_some());
    t.keys(&["q"]);
    t.wait_text("EXIT=0");
    assert_eq!(ssh.commands(), ["cellmgr ipc serve --stdio"]);
}

#[test]
fn a_shell_that_leaves_the_terminal_to_another_group_still_returns() {
    if !ready("a_shell_that_leaves_the_terminal_to_another_group_still_returns") {
        return;
    }
    let w = World::new("ui-shell");
    w.ok(&["cell", "create", "box"]);
    w.ok(&["cell", "start", "box", "--scope", "both"]);
    let t = start_ui(&w, "shell");
    t.wait("box", |s| {
        row_of(s, "box").is_some_and(|r| r.contains(" yes "))
    });
    t.keys(&["Enter"]);
    t.wait_text("shell in cell box");
    // A job-control shell that takes the terminal's foreground for its own
    // group and is killed before it can hand it back.
    t.type_text("sh -c 'set -m; sh -ic \"kill -9 \\$\\$\"'; kill -9 $$");
    t.keys(&["Enter"]);
    t.wait_text("press Enter to return");
    t.keys(&["Enter"]);
    // Back on cellui's screen (the prompt above says "ended" too): keys sent
    // before it took the terminal back are discarded with the raw mode.
    t.wait("cellui's screen again", |s| {
        s.contains("shell in box ended") && !s.contains("press Enter to return")
    });
    // Keys still reach the UI: the help overlay opens, and q quits cleanly.
    t.keys(&["?"]);
    t.wait_text("back up (may quiesce)");
    t.keys(&["Escape"]);
    // An Escape and a q read together are one key, Alt-q: q waits until
    // the overlay is gone.
    t.wait("the help overlay to close", |s| {
        !s.contains("back up (may quiesce)")
    });
    t.keys(&["q"]);
    let s = t.wait_text("END-OF-RUN");
    assert!(s.contains("EXIT=0"), "{s}");
    assert!(!s.contains("-icanon") && !s.contains("-echo"), "{s}");
}

#[test]
fn a_socket_that_does_not_exist_is_an_error_not_a_retry() {
    if !tmux_or_skip("a_socket_that_does_not_exist_is_an_error_not_a_retry") {
        return;
    }
    let w = World::new("ui-nosock");
    let missing = w.dir.join("no.sock");
    let cmd = cellui_command(&format!("-S {}", missing.display()), &w.conf_env());
    let t = Tmux::start("nosock", &cmd, 100, 24);
    let s = t.wait_text("END-OF-RUN");
    assert!(s.contains("EXIT=1"), "{s}");
    assert!(
        s.contains(&format!(
            "cannot connect to the socket {}",
            missing.display()
        )) && s.contains("it does not exist"),
        "{s}"
    );
}
