//! Driving the real `cellui` in a real terminal: a private tmux server per test,
//! keys sent with `send-keys`, the screen read back with `capture-pane`.

#![allow(dead_code)] // each test binary uses a different part

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    server: String,
}

pub fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
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
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            let out = self.tmux(&["send-keys", "-t", "t", k]);
            assert!(out.status.success());
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    /// Sends text literally.
    pub fn type_text(&self, text: &str) {
        assert!(self
            .tmux(&["send-keys", "-t", "t", "-l", text])
            .status
            .success());
        std::thread::sleep(Duration::from_millis(60));
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

/// A shell command line that runs the cells binary as `cellui` with `args`, then
/// reports how it ended and whether the terminal is back in cooked mode.
/// The UI's PID is written to `pidfile` (empty: not written).
pub fn cellui_command(args: &str, env: &str) -> String {
    cellui_command_pid(args, env, "")
}

pub fn cellui_command_pid(args: &str, env: &str, pidfile: &str) -> String {
    let bin = env!("CARGO_BIN_EXE_cells");
    let record = if pidfile.is_empty() {
        String::new()
    } else {
        format!("echo $$ > {pidfile}; ")
    };
    format!(
        "echo BEFORE-CELLUI; {env} sh -c '{record}exec {bin} ui {args}'; echo \"EXIT=$?\"; stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo END-OF-RUN; sleep 600"
    )
}
