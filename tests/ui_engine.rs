//! cellui in a real terminal (tmux) over the real control plane: the bridge it
//! starts itself (`cellmgr ipc serve --stdio`), real cells and volumes in a
//! temporary world. Needs root, busybox and tmux.

#[path = "mgr_support/mod.rs"]
mod mgr_support;
mod ui_support;

use mgr_support::{root_or_skip, World};
use ui_support::{cellui_command, have_tmux, Tmux};

fn start_ui(w: &World, name: &str) -> Tmux {
    let env = format!("CELLMGR_CONF={}", w.conf.display());
    let t = Tmux::start(name, &cellui_command("--interval 1", &env), 80, 24);
    t.wait_text("[Cells]");
    t
}

fn row_of(screen: &str, name: &str) -> Option<String> {
    screen
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(str::to_string)
}

fn ready(test: &str) -> bool {
    if !have_tmux() {
        eprintln!("{test}: skipped: tmux is not installed (apt-get install -y tmux)");
        return false;
    }
    root_or_skip(test)
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
    t.wait_text("shell in beta ended");
    assert!(t.screen().contains("[Cells]"));

    t.keys(&["q"]);
    let s = t.wait_text("EXIT=");
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
    t.keys(&["R"]);
    t.wait_text("pick an archive");
    t.keys(&["Enter"]);
    t.wait_text("REPLACES");
    t.keys(&["n"]);
    t.wait_text("cancelled");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "current\n");

    t.keys(&["R", "Enter", "y"]);
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
        "sh -c 'echo first line from talker; sleep 2; echo second line from talker; exec sleep 1000'",
    ]);
    w.ok(&["cell", "start", "talker"]);
    let t = start_ui(&w, "log");
    t.wait("talker", |s| row_of(s, "talker").is_some());
    t.keys(&["l"]);
    t.wait_text("log of talker");
    t.wait_text("first line from talker");
    // New output appears without any key.
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
    t.wait_text("Apply web");
    let s = t.screen();
    assert!(s.contains("START") && s.contains("cell web"), "{s}");
    t.keys(&["n"]);
    t.wait_text("cancelled");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        w.rows("name,running,rendered").contains("web\t0\t0"),
        "an unconfirmed apply ran"
    );
    t.keys(&["a"]);
    t.wait_text("Apply web");
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
