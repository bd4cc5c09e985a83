//! cellui in a real terminal (tmux) against a bridge server in this test process
//! (socket transport, in-memory control plane): what the operator sees and what
//! their keys do. The same UI over the real engine is in `ui_engine.rs`.

mod ipc_support;
mod ui_support;

use cells::ipc::proto::{BackupRow, BackupTarget};
use cells::ipc::server::{serve_socket, Access};
use ipc_support::{cell, volume, Fake};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ui_support::{cellui_command, cellui_command_pid, have_tmux, Tmux};

struct Fixture {
    dir: PathBuf,
    socket: PathBuf,
    fake: Arc<Fake>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn serve(fake: Arc<Fake>, socket: &std::path::Path) {
    let p = socket.to_path_buf();
    std::thread::spawn(move || serve_socket(&p, fake, Access::default()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while UnixStream::connect(socket).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn fixture(name: &str) -> Fixture {
    let f = fixture_unserved(name);
    serve(f.fake.clone(), &f.socket);
    f
}

fn fixture_unserved(name: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("cells-uifake-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut parked = cell("db", false);
    parked.state = "parked".into();
    let mut orphan = cell("stray", true);
    orphan.manifest = false;
    orphan.state = "orphaned".into();
    let fake = Arc::new(Fake::new(
        vec![cell("web", true), parked, orphan],
        vec![volume("data", "web"), volume("spare", "")],
        dir.clone(),
    ));
    let socket = dir.join("bridge.sock");
    Fixture { dir, socket, fake }
}

fn start_ui(f: &Fixture, name: &str, env: &str) -> Tmux {
    let cmd = cellui_command(&format!("-S {} --interval 1", f.socket.display()), env);
    let t = Tmux::start(name, &cmd, 80, 24);
    t.wait_text("[Cells]");
    t
}

fn row(t: &Tmux, name: &str) -> String {
    t.screen()
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} on screen:\n{}", t.screen()))
        .to_string()
}

#[test]
fn the_list_shows_every_cell_with_its_state_and_quitting_restores_the_terminal() {
    if !have_tmux() {
        eprintln!("skipped: tmux is not installed (apt-get install -y tmux)");
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
    if !have_tmux() {
        eprintln!("skipped: tmux is not installed");
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
    if !have_tmux() {
        eprintln!("skipped: tmux is not installed");
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
    t.keys(&["R", "Enter"]);
    t.wait_text("REPLACES");
    t.keys(&["Escape"]);
    t.wait_text("cancelled");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        f.fake.journal().is_empty(),
        "an unconfirmed restore ran: {:?}",
        f.fake.journal()
    );
    // Confirmed, it runs.
    t.keys(&["R", "Enter", "y"]);
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
    if !have_tmux() {
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let f = fixture_unserved("retry");
    let cmd = cellui_command(&format!("-S {} --interval 1", f.socket.display()), "");
    let t = Tmux::start("retry", &cmd, 80, 24);
    let s = t.wait_text("bridge lost, retrying: connecting to");
    assert!(s.contains("not connected"), "{s}");
    serve(f.fake.clone(), &f.socket);
    t.wait_text("bridge reconnected");
    t.wait_text(" web ");
    t.keys(&["q"]);
    t.wait_text("EXIT=0");
}

#[test]
fn sigterm_and_sighup_restore_the_terminal() {
    if !have_tmux() {
        eprintln!("skipped: tmux is not installed");
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
    if !have_tmux() {
        eprintln!("skipped: tmux is not installed");
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
    if !have_tmux() {
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let cmd = format!(
        "echo BEFORE-PANIC; RUST_BACKTRACE=0 {PANIC_ENV}=1 {} --exact panic_helper --nocapture --test-threads=1; \
         echo \"EXIT=$?\"; stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; \
         echo END-OF-RUN; sleep 600",
        exe.display()
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
