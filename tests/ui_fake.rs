//! cellui in a real terminal (tmux) against a bridge server in this test process
//! (socket transport, in-memory control plane): what the operator sees and what
//! their keys do. The same UI over the real engine is in `ui_engine.rs`.

mod support;

use cells::ipc::proto::{BackupRow, BackupTarget};
use support::ipc::{cell, volume, Fake, FakeServer};
use support::tmux::{
    cellui_command, cellui_command_pid, row_of, run_and_report, start_cellui, tmux_or_skip, Tmux,
};

/// A served fake: web runs, db is parked, stray is an orphan; volumes data
/// (used by web) and spare.
fn fixture(name: &str) -> FakeServer {
    let f = fixture_unserved(name);
    f.serve();
    f
}

fn fixture_unserved(name: &str) -> FakeServer {
    FakeServer::new(&format!("uifake-{name}"), |log_dir| {
        let mut parked = cell("db", false);
        parked.state = "parked".into();
        let mut orphan = cell("stray", true);
        orphan.manifest = false;
        orphan.state = "orphaned".into();
        Fake::new(
            vec![cell("web", true), parked, orphan],
            vec![volume("data", "web"), volume("spare", "")],
            log_dir,
        )
    })
}

fn start_ui(f: &FakeServer, name: &str, env: &str) -> Tmux {
    start_cellui(
        name,
        &format!("-S {} --interval 1", f.socket.display()),
        env,
    )
}

fn row(t: &Tmux, name: &str) -> String {
    let screen = t.screen();
    row_of(&screen, name).unwrap_or_else(|| panic!("no row {name} on screen:\n{screen}"))
}

#[test]
fn the_list_shows_every_cell_with_its_state_and_quitting_restores_the_terminal() {
    if !tmux_or_skip("the_list_shows_every_cell_with_its_state_and_quitting_restores_the_terminal")
    {
        return;
    }
    let f = fixture("list");
    let t = start_ui(&f, "list", "NO_COLOR=1");
    t.wait_text("web");
    let web = row(&t, "web");
    assert!(
        web.contains("managed") && web.contains("yes") && web.contains("healthy"),
        "{web}"
    );
    let db = row(&t, "db");
    assert!(db.contains("parked") && db.contains(" no "), "{db}");
    // No manifest: marked with '!'.
    assert!(row(&t, "!stray").contains("orphaned"));
    assert!(t.screen().contains("cells 3 running 2"));

    // Filter by name, then clear.
    t.keys(&["/"]);
    t.type_text("we");
    t.keys(&["Enter"]);
    t.wait("the filter to hide db", |s| {
        !s.lines().any(|l| l.starts_with(" db "))
    });
    assert!(t.screen().contains("filter: we"));
    t.keys(&["Escape"]);
    t.wait_text(" db ");

    // The help overlay lists the keys, any key closes it.
    t.keys(&["?"]);
    t.wait_text("cellui keys");
    assert!(t.screen().contains("restore: pick, ask"));
    t.keys(&["Space"]);
    t.wait("help to close", |s| !s.contains("cellui keys"));

    t.keys(&["q"]);
    let s = t.wait_text("END-OF-RUN");
    assert!(s.contains("EXIT=0"), "{s}");
    // Back on the normal screen, in cooked mode with echo.
    assert!(s.contains("BEFORE-CELLUI"), "{s}");
    assert!(
        s.contains(" icanon") || s.starts_with("icanon") || s.contains("\nicanon"),
        "{s}"
    );
    assert!(!s.contains("-icanon") && !s.contains("-echo"), "{s}");
    assert!(f.fake.journal().is_empty(), "looking changed something");
}

#[test]
fn stop_and_start_through_the_ui_change_the_cells_state() {
    if !tmux_or_skip("stop_and_start_through_the_ui_change_the_cells_state") {
        return;
    }
    let f = fixture("stopstart");
    let t = start_ui(&f, "stopstart", "");
    t.wait_text("web");
    // Rows sort by name: db, stray, web.
    t.keys(&["G"]);
    t.keys(&["x"]);
    t.wait_text("Stop web");
    t.keys(&["n"]);
    t.wait_text("cancelled");
    assert!(
        f.fake.journal().is_empty(),
        "an unconfirmed stop was carried out"
    );
    t.keys(&["x"]);
    t.wait_text("Stop web");
    t.keys(&["y"]);
    t.wait("web to show as stopped", |s| {
        s.lines()
            .any(|l| l.starts_with(" web ") && l.contains(" no "))
    });
    t.keys(&["s"]);
    t.wait("web to run again", |s| {
        s.lines()
            .any(|l| l.starts_with(" web ") && l.contains(" yes "))
    });
    assert_eq!(
        f.fake.journal(),
        [
            "begin stop web",
            "end stop web",
            "begin start web",
            "end start web"
        ]
    );
    // An engine error reaches the status line, and the UI goes on.
    f.fake.state.lock().unwrap().refuse = Some("the cell is locked by another cellmgr".into());
    t.keys(&["t"]);
    t.wait_text("Restart web");
    t.keys(&["y"]);
    t.wait_text("restart web: restart web: the cell is locked by another cellmgr");
    // Long errors also open a message; any key closes it.
    t.wait_text("Error");
    t.keys(&["Space", "q"]);
    t.wait_text("EXIT=0");
}

#[test]
fn an_unconfirmed_restore_is_not_carried_out() {
    if !tmux_or_skip("an_unconfirmed_restore_is_not_carried_out") {
        return;
    }
    let f = fixture("restore");
    let data = BackupTarget::Volume("data".into());
    let archive = |ts: &str| BackupRow {
        name: "data".into(),
        timestamp: ts.into(),
        size: 2048,
        archive: format!("/backups/data_{ts}.tar.gz"),
    };
    f.fake.state.lock().unwrap().backups.insert(
        data,
        vec![archive("20260102000000"), archive("20260101000000")],
    );
    let t = start_ui(&f, "restore", "");
    t.keys(&["Tab"]);
    t.wait_text("[Storage]");
    t.wait_text("data_20260102000000.tar.gz");
    // Pick the older archive, then refuse.
    t.keys(&["R"]);
    t.wait_text("pick an archive");
    t.keys(&["Down", "Enter"]);
    t.wait_text("REPLACES");
    assert!(t.screen().contains("data_20260101000000.tar.gz"));
    t.keys(&["n"]);
    t.wait_text("cancelled");
    t.keys(&["R"]);
    t.wait_text("pick an archive");
    t.keys(&["Enter"]);
    t.wait_text("REPLACES");
    t.keys(&["Escape"]);
    t.wait_text("cancelled");
    // A refresh after the cancel comes through the same connection after
    // anything sent before it: once it shows, a restore would have run.
    f.fake
        .state
        .lock()
        .unwrap()
        .volumes
        .push(support::ipc::volume("marker", ""));
    t.wait_text("marker");
    assert!(
        f.fake.journal().is_empty(),
        "an unconfirmed restore ran: {:?}",
        f.fake.journal()
    );
    // Confirmed, it runs.
    t.keys(&["R"]);
    t.wait_text("pick an archive");
    t.keys(&["Enter"]);
    t.wait_text("REPLACES");
    t.keys(&["y"]);
    t.wait("the restore", |_| f.fake.journal().len() == 2);
    assert_eq!(
        f.fake.journal()[1],
        "end restore volume data /backups/data_20260102000000.tar.gz"
    );
    t.keys(&["q"]);
    t.wait_text("EXIT=0");
}

#[test]
fn a_missing_bridge_is_reported_and_retried() {
    if !tmux_or_skip("a_missing_bridge_is_reported_and_retried") {
        return;
    }
    let f = fixture_unserved("retry");
    // A socket left by a server that is being restarted: nobody answers yet.
    drop(std::os::unix::net::UnixListener::bind(&f.socket).unwrap());
    let cmd = cellui_command(&format!("-S {} --interval 1", f.socket.display()), "");
    let t = Tmux::start("retry", &cmd, 80, 24);
    let s = t.wait_text("bridge lost, retrying: connecting to");
    assert!(s.contains("not connected"), "{s}");
    f.serve();
    t.wait_text("bridge reconnected");
    t.wait_text(" web ");
    t.keys(&["q"]);
    t.wait_text("EXIT=0");
}

#[test]
fn sigterm_and_sighup_restore_the_terminal() {
    if !tmux_or_skip("sigterm_and_sighup_restore_the_terminal") {
        return;
    }
    let f = fixture("signal");
    for (name, sig) in [("term", libc::SIGTERM), ("hup", libc::SIGHUP)] {
        let pidfile = f.dir.join(format!("{name}.pid"));
        let cmd = cellui_command_pid(
            &format!("-S {}", f.socket.display()),
            "",
            &pidfile.display().to_string(),
        );
        let t = Tmux::start(&format!("sig{name}"), &cmd, 100, 30);
        t.wait_text(" web ");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: signalling the UI process this test started, by its PID.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        let s = t.wait_text("END-OF-RUN");
        assert!(s.contains("BEFORE-CELLUI") && s.contains("icanon"), "{s}");
        assert!(!s.contains("-icanon") && !s.contains("-echo"), "{s}");
    }
}

#[test]
fn a_resized_terminal_is_redrawn_to_its_new_size() {
    if !tmux_or_skip("a_resized_terminal_is_redrawn_to_its_new_size") {
        return;
    }
    let f = fixture("resize");
    let t = start_ui(&f, "resize", "");
    t.wait_text(" web ");
    let last_line = |s: &str, n: usize| s.lines().nth(n - 1).unwrap_or("").to_string();
    assert!(last_line(&t.screen(), 24).starts_with("q quit"));
    t.resize(120, 40);
    t.wait("the key line on row 40", |s| {
        last_line(s, 40).starts_with("q quit")
    });
    // The counters are right-aligned on the wider status line.
    let s = t.screen();
    let status = last_line(&s, 39);
    assert!(status.trim_end().len() > 100, "{status:?}");
    t.resize(80, 24);
    t.wait("the key line back on row 24", |s| {
        last_line(s, 24).starts_with("q quit")
    });
    t.keys(&["q"]);
    t.wait_text("EXIT=0");
}

const PANIC_ENV: &str = "CELLS_TEST_PANIC_IN_SCREEN";

/// Not a test on its own: takes the screen the way cellui does, then panics,
/// for `a_panic_restores_the_terminal`.
#[test]
fn panic_helper() {
    if std::env::var_os(PANIC_ENV).is_none() {
        return;
    }
    let _screen = cells::ui::term::Screen::enter().unwrap();
    panic!("deliberate panic inside the full-screen UI");
}

#[test]
fn a_panic_restores_the_terminal() {
    if !tmux_or_skip("a_panic_restores_the_terminal") {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let cmd = run_and_report(
        "BEFORE-PANIC",
        &format!(
            "RUST_BACKTRACE=0 {PANIC_ENV}=1 {} --exact panic_helper --nocapture --test-threads=1",
            exe.display()
        ),
    );
    let t = Tmux::start("panic", &cmd, 100, 40);
    let s = t.wait_text("END-OF-RUN");
    assert!(s.contains("BEFORE-PANIC"), "back on the normal screen: {s}");
    assert!(
        s.contains("deliberate panic inside the full-screen UI"),
        "{s}"
    );
    assert!(s.contains("EXIT=101"), "{s}");
    assert!(
        s.contains("icanon") && !s.contains("-icanon") && !s.contains("-echo"),
        "{s}"
    );
}
