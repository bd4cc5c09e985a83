//! Reaching another host over ssh: the one place that builds an `ssh` command
//! line, for `cellui -H` (the bridge, `cellmgr ipc serve --stdio` there) and for
//! `cellmgr -H` / `cellctl -H` (any one command there, see [`run`]).
//!
//! ssh joins the words after the destination into one line for the remote
//! user's shell, so every argument is shell-quoted here: what the remote
//! `cellmgr` receives is exactly the local argument vector. The remote command
//! itself (`cellmgr`, `sudo cellmgr`, `env CELLMGR_CONF=... cellmgr`) is the
//! operator's shell text and is passed as written.

use anyhow::{bail, Result};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;

/// A host and the command that runs a personality there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// `[user@]host`, or a `Host` alias of the operator's ssh configuration.
    pub destination: String,
    /// Shell text that starts the personality on that host, e.g. `cellmgr`.
    pub remote_command: String,
}

/// How ssh treats the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// No terminal and no questions (a background reconnect): `-T`, batch mode,
    /// in its own process group so keys typed meanwhile are not ssh's.
    Batch,
    /// No remote terminal (`-T`): stdout and stderr stay apart, ssh may ask
    /// for a password on our terminal.
    Pipe,
    /// A remote terminal (`-t`): for shells and typed confirmations.
    Tty,
}

impl SshTarget {
    /// Checks the destination: ssh would read one that starts with `-` as an
    /// option, and whitespace cannot be part of a host name.
    pub fn new(destination: &str, remote_command: &str) -> Result<SshTarget> {
        if destination.is_empty()
            || destination.starts_with('-')
            || destination
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            bail!("-H '{destination}': expected [user@]host, as ssh takes it");
        }
        if remote_command.trim().is_empty() {
            bail!("--remote-cmd is empty: expected the command that runs cellmgr there");
        }
        Ok(SshTarget {
            destination: destination.to_string(),
            remote_command: remote_command.to_string(),
        })
    }

    /// The remote shell line: the remote command, then each argument quoted.
    pub fn remote_line<S: AsRef<str>>(&self, args: &[S]) -> String {
        let mut line = self.remote_command.clone();
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a.as_ref()));
        }
        line
    }

    /// `ssh -T|-t [-o BatchMode=yes] -- destination '<remote line>'`.
    pub fn command<S: AsRef<str>>(&self, args: &[S], session: Session) -> Command {
        let mut cmd = Command::new("ssh");
        match session {
            Session::Batch => {
                cmd.args(["-T", "-o", "BatchMode=yes"]).process_group(0);
            }
            Session::Pipe => {
                cmd.arg("-T");
            }
            Session::Tty => {
                cmd.arg("-t");
            }
        }
        cmd.args(["--", &self.destination])
            .arg(self.remote_line(args));
        cmd
    }
}

pub use crate::cmdtable::shell_quote;

/// What ssh's exit status means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The remote command ran and exited with this code.
    Exited(i32),
    /// ssh itself failed (255: no connection, authentication, the connection
    /// lost, or the remote command killed by a signal).
    SshFailed,
    /// ssh was killed by this signal.
    Signalled(i32),
}

pub fn outcome(status: std::process::ExitStatus) -> Outcome {
    match (status.code(), status.signal()) {
        (Some(255), _) => Outcome::SshFailed,
        (Some(code), _) => Outcome::Exited(code),
        (None, Some(sig)) => Outcome::Signalled(sig),
        (None, None) => Outcome::SshFailed,
    }
}

/// Runs one command on the target with this process's stdin, stdout and
/// stderr, and waits for it. A remote terminal is requested only when both
/// stdin and stdout are terminals here (an operator at the keyboard: prompts and
/// shells work as locally); otherwise ssh keeps stdout and stderr apart, as
/// scripts need, and commands that would ask for confirmation say to pass
/// `--yes`, as they do locally without a terminal. Interrupt and quit go to ssh
/// (and through it to the remote command) while this process waits.
pub fn run<S: AsRef<str>>(target: &SshTarget, args: &[S]) -> Result<Outcome> {
    let interactive =
        rustix::termios::isatty(std::io::stdin()) && rustix::termios::isatty(std::io::stdout());
    let session = if interactive {
        Session::Tty
    } else {
        Session::Pipe
    };
    let mut child = target
        .command(args, session)
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting ssh to {}: {e}", target.destination))?;
    let _ignored = IgnoreInterrupts::new();
    let status = child.wait()?;
    Ok(outcome(status))
}

/// `cellmgr -H` / `cellctl -H`: runs the command line `args` (the personality's
/// arguments after its global options) on `destination` and returns its exit
/// code, as the same command here would. ssh's own failures exit 1 with a
/// sentence after ssh's message.
pub fn forward(
    personality: &str,
    destination: &str,
    remote_command: Option<&str>,
    args: &[String],
) -> i32 {
    crate::exit::run(personality, || {
        let target = SshTarget::new(destination, remote_command.unwrap_or(personality))?;
        match run(&target, args)? {
            Outcome::Exited(code) => Ok(code),
            Outcome::SshFailed => bail!(
                "-H {destination}: ssh failed (exit 255): no connection, no login, or \
                 the connection or the remote command was cut short; ssh said why above"
            ),
            Outcome::Signalled(sig) => bail!("-H {destination}: ssh was killed by signal {sig}"),
        }
    })
}

/// The arguments after the global options (`-H HOST`, `--host HOST`,
/// `--remote-cmd CMD`) that come before the command: what runs remotely.
pub fn command_args(args: &[String]) -> &[String] {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.as_str() {
            "-H" | "--host" | "--remote-cmd" => i += 2,
            _ => break,
        }
    }
    &args[i.min(args.len())..]
}

/// SIGINT and SIGQUIT ignored for as long as it lives (as system(3) does while
/// it waits), so Ctrl-C ends the remote command through ssh, not us first.
struct IgnoreInterrupts {
    saved: [libc::sighandler_t; 2],
}

const WAIT_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGQUIT];

impl IgnoreInterrupts {
    fn new() -> IgnoreInterrupts {
        // SAFETY: SIG_IGN is a valid disposition; the old ones are restored on drop.
        let saved = WAIT_SIGNALS.map(|s| unsafe { libc::signal(s, libc::SIG_IGN) });
        IgnoreInterrupts { saved }
    }
}

impl Drop for IgnoreInterrupts {
    fn drop(&mut self) {
        for (s, old) in WAIT_SIGNALS.iter().zip(self.saved) {
            // SAFETY: restores the disposition saved in `new`.
            unsafe { libc::signal(*s, old) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("list"), "list");
        assert_eq!(shell_quote("name,state"), "name,state");
        assert_eq!(shell_quote("--cmd=/bin/x"), "--cmd=/bin/x");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's $HOME"), r"'it'\''s $HOME'");
        assert_eq!(shell_quote("*;`x`"), "'*;`x`'");
    }

    #[test]
    fn the_remote_line_round_trips_through_a_shell() {
        let t = SshTarget::new("op@host", "printf '%s\\n'").unwrap();
        let args = ["a b", "it's", "$HOME", "", "x\ny", "--json"];
        let out = Command::new("sh")
            .args(["-c", &t.remote_line(&args)])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text, "a b\nit's\n$HOME\n\nx\ny\n--json\n");
    }

    #[test]
    fn ssh_command_lines() {
        let t = SshTarget::new("op@host", "cellmgr").unwrap();
        let line = |s| {
            let c = t.command(&["ipc", "serve", "--stdio"], s);
            c.get_args()
                .map(|a| a.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            line(Session::Batch),
            [
                "-T",
                "-o",
                "BatchMode=yes",
                "--",
                "op@host",
                "cellmgr ipc serve --stdio"
            ]
        );
        assert_eq!(line(Session::Pipe)[0], "-T");
        assert_eq!(line(Session::Tty)[0], "-t");
    }

    #[test]
    fn destinations_that_ssh_would_misread_are_refused() {
        for bad in ["", "-oProxyCommand=x", "a b", "host\n"] {
            let e = SshTarget::new(bad, "cellmgr").unwrap_err();
            assert!(e.to_string().contains("expected [user@]host"), "{e}");
        }
        assert!(SshTarget::new("h", " ").is_err());
        assert!(SshTarget::new("root@db-1.example", "sudo cellmgr").is_ok());
    }

    #[test]
    fn the_global_options_are_not_forwarded() {
        let v = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let args = v(&[
            "-H",
            "h",
            "--remote-cmd",
            "sudo cellmgr",
            "list",
            "-H",
            "-T",
        ]);
        assert_eq!(command_args(&args), v(&["list", "-H", "-T"]));
        assert_eq!(command_args(&v(&["--host", "h", "apply"])), v(&["apply"]));
        assert_eq!(command_args(&v(&["list"])), v(&["list"]));
    }

    #[test]
    fn exit_statuses() {
        use std::process::ExitStatus;
        assert_eq!(outcome(ExitStatus::from_raw(2 << 8)), Outcome::Exited(2));
        assert_eq!(outcome(ExitStatus::from_raw(255 << 8)), Outcome::SshFailed);
        assert_eq!(outcome(ExitStatus::from_raw(9)), Outcome::Signalled(9));
    }
}
