//! Driving the real `cellui` in a real terminal: a private tmux server per test,
//! keys sent with `send-keys`, the screen read back with `capture-pane`.

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    server: String,
}

/// True when tmux is installed; otherwise prints why `test` is skipped.
pub fn tmux_or_skip(test: &str) -> bool {
    let have = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("{test}: skipped: tmux is not installed (apt-get install -y tmux)");
    }
    have
}

impl Tmux {
    /// Starts `command` (a shell command line) in an 80x24 (or given) window.
    pub fn start(name: &str, command: &str, width: u16, height: u16) -> Tmux {
        let server = format!("cells-ui-{}-{name}", std::process::id());
        let t = Tmux { server };
        let _ = t.tmux(&["kill-server"]);
        let out = t.tmux(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.server, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("running tmux")
    }

    /// Sends keys in tmux's notation ("x", "Enter", "Tab", "C-c", "Up").
    /// Keys go out at once: a key whose effect comes later (a reply from the
    /// bridge) must be followed by a wait for that effect before the next.
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            let out = self.tmux(&["send-keys", "-t", "t", k]);
            assert!(out.status.success());
        }
    }

    /// Sends text literally.
    pub fn type_text(&self, text: &str) {
        assert!(self
            .tmux(&["send-keys", "-t", "t", "-l", text])
            .status
            .success());
    }

    /// Resizes the terminal (the program gets SIGWINCH).
    pub fn resize(&self, width: u16, height: u16) {
        let out = self.tmux(&[
            "resize-window",
            "-t",
            "t",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    /// Waits until the screen satisfies `pred`; panics with the screen if not.
    pub fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_text(&self, text: &str) -> String {
        self.wait(&format!("'{text}'"), |s| s.contains(text))
    }

    /// The screen line that contains `needle`.
    pub fn line_with(&self, needle: &str) -> Option<String> {
        self.screen()
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_string)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// Starts `cellui <args>` (with `env` assignments before it) in an 80x24
/// terminal and waits for its first screen.
pub fn start_cellui(name: &str, args: &str, env: &str) -> Tmux {
    let t = Tmux::start(name, &cellui_command(args, env), 80, 24);
    t.wait_text("[Cells]");
    t
}

/// The screen line of the row whose first column is `name`.
pub fn row_of(screen: &str, name: &str) -> Option<String> {
    screen
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(str::to_string)
}

/// A shell command line that runs the cells binary as `cellui` with `args`, then
/// reports how it ended and whether the terminal is back in cooked mode.
pub fn cellui_command(args: &str, env: &str) -> String {
    cellui_command_pid(args, env, "")
}

/// `cellui_command`, with the UI's PID written to `pidfile` (empty: not written).
pub fn cellui_command_pid(args: &str, env: &str, pidfile: &str) -> String {
    let bin = super::BIN;
    let record = if pidfile.is_empty() {
        String::new()
    } else {
        format!("echo $$ > {pidfile}; ")
    };
    run_and_report(
        "BEFORE-CELLUI",
        &format!("{env} sh -c '{record}exec {bin} ui {args}'"),
    )
}

/// A shell command line that prints `banner`, runs `command`, then prints
/// `EXIT=<status>`, which of icanon/echo the terminal has, and END-OF-RUN,
/// and stays open so the screen can be read.
pub fn run_and_report(banner: &str, command: &str) -> String {
    format!(
        "echo {banner}; {command}; echo \"EXIT=$?\"; stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo END-OF-RUN; sleep 600"
    )
}
