//! `cellui`: every cell and volume at a glance, and the common actions, in a
//! full-screen terminal UI. It talks to the control plane only through the IPC
//! bridge: a `cellmgr ipc serve --stdio` it starts itself (this same binary), one
//! started over ssh on another host (`-H`), or a server's socket (`-S`).
//!
//! - [`app`]: state and keys (no I/O), [`view`]: drawing, [`term`]: the terminal.
//! - This file: arguments and the mio event loop (keys, bridge, timers, signals).

pub mod app;
pub mod term;
pub mod view;

use crate::exit;
use crate::ipc::client::{Connection, Endpoint};
use crate::ipc::ssh::{Session, SshTarget};
use anyhow::{bail, Context, Result};
use app::{App, Bridge, Effect, Purpose};
use argh::FromArgs;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Look at and operate every cell and volume from a terminal (see cellui(8)).
/// Without -H or -S, starts `cellmgr ipc serve --stdio` on this host.
#[derive(FromArgs, argh::ArgsInfo, Debug)]
struct UiArgs {
    /// run the bridge on another host over ssh: [user@]host
    #[argh(option, short = 'H')]
    host: Option<String>,
    /// connect to a running `cellmgr ipc serve --socket PATH`
    #[argh(option, short = 'S')]
    socket: Option<PathBuf>,
    /// the cellmgr command on the remote host with -H (default: cellmgr)
    #[argh(option, default = "String::from(\"cellmgr\")")]
    remote_cmd: String,
    /// seconds between refreshes (default: 2)
    #[argh(option, default = "2")]
    interval: u64,
}

/// cellui's flags (for completion and hints).
pub fn command_table() -> argh::CommandInfoWithArgs {
    <UiArgs as argh::ArgsInfo>::get_args_info()
}

pub fn main(personality: &str, args: &[String]) -> i32 {
    let args: UiArgs = match exit::parse_args(&[personality], args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    exit::run(personality, || run(args))
}

const KEYS: Token = Token(0);
const SIGNALS: Token = Token(1);
const BRIDGE: Token = Token(2);
const BRIDGE_STDERR: Token = Token(3);

/// How often a lost bridge is retried, and the log view polled.
const RETRY_EVERY: Duration = Duration::from_secs(3);
const LOG_EVERY: Duration = Duration::from_secs(1);

fn endpoint(args: &UiArgs) -> Result<Endpoint> {
    Ok(match (&args.host, &args.socket) {
        (Some(_), Some(_)) => bail!("-H and -S exclude each other: use ssh (-H) or a socket (-S)"),
        (Some(h), None) => Endpoint::Ssh(SshTarget::new(h, &args.remote_cmd)?),
        (None, Some(p)) => Endpoint::Socket(p.clone()),
        (None, None) => Endpoint::Local,
    })
}

struct Ui {
    app: App,
    endpoint: Endpoint,
    poll: Poll,
    bridge: Option<Connection>,
    next_refresh: Instant,
    next_log: Instant,
    next_retry: Instant,
    interval: Duration,
    color: bool,
    /// The last line the server wrote to stderr.
    last_server_line: Option<String>,
}

fn run(args: UiArgs) -> Result<i32> {
    if args.interval == 0 {
        bail!("--interval must be at least 1 second");
    }
    let endpoint = endpoint(&args)?;
    // A socket path that is not there is a mistake to say now, not a
    // connection to retry; one where no server answers yet (a server being
    // restarted) is retried like a bridge lost later.
    if let Endpoint::Socket(path) = &endpoint {
        use std::os::unix::fs::FileTypeExt;
        let start = format!(
            "start one with 'cellmgr ipc serve --socket {}'",
            path.display()
        );
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "cannot connect to the socket {}: it does not exist ({start})",
                path.display()
            ),
            Err(e) => bail!("cannot connect to the socket {}: {e}", path.display()),
            Ok(m) if !m.file_type().is_socket() => bail!(
                "cannot connect to {}: it is not a socket ({start})",
                path.display()
            ),
            Ok(_) => {}
        }
    }
    term::require_terminal()?;
    // Connect before taking the screen: ssh may have to ask for a password.
    let first = Connection::open(&endpoint, true);
    let screen = term::Screen::enter()?;
    let signals = term::signal_pipe()?;
    let poll = Poll::new().context("creating the event loop")?;
    poll.registry()
        .register(&mut SourceFd(&0), KEYS, Interest::READABLE)
        .context("watching the keyboard")?;
    poll.registry()
        .register(
            &mut SourceFd(&signals.as_raw_fd()),
            SIGNALS,
            Interest::READABLE,
        )
        .context("watching signals")?;
    let now = Instant::now();
    let mut ui = Ui {
        app: App::new(),
        endpoint,
        poll,
        bridge: None,
        next_refresh: now,
        next_log: now,
        next_retry: now + RETRY_EVERY,
        interval: Duration::from_secs(args.interval),
        color: view::color_wanted(),
        last_server_line: None,
    };
    match first {
        Ok(conn) => ui.attach(conn),
        Err(e) => ui.lost(format!("{e:#}")),
    }
    let result = ui.event_loop(&screen, &signals);
    drop(ui); // says goodbye to the server while the screen is still ours
    drop(screen);
    result.map(|()| exit::EXIT_OK)
}

impl Ui {
    fn attach(&mut self, conn: Connection) {
        let reg = self.poll.registry();
        let ok = reg
            .register(
                &mut SourceFd(&conn.read_fd().as_raw_fd()),
                BRIDGE,
                Interest::READABLE,
            )
            .is_ok();
        if let Some(fd) = conn.stderr_fd() {
            let _ = reg.register(
                &mut SourceFd(&fd.as_raw_fd()),
                BRIDGE_STDERR,
                Interest::READABLE,
            );
        }
        if !ok {
            self.lost("cannot watch the bridge".into());
            return;
        }
        self.app.bridge = Bridge::Up {
            host: conn.info.host.clone(),
        };
        self.app.token = None;
        self.app.pending.clear();
        self.bridge = Some(conn);
        self.next_refresh = Instant::now();
    }

    fn lost(&mut self, reason: String) {
        if let Some(conn) = self.bridge.take() {
            let reg = self.poll.registry();
            let _ = reg.deregister(&mut SourceFd(&conn.read_fd().as_raw_fd()));
            if let Some(fd) = conn.stderr_fd() {
                let _ = reg.deregister(&mut SourceFd(&fd.as_raw_fd()));
            }
        }
        let unanswered: Vec<String> = self
            .app
            .pending
            .drain(..)
            .filter_map(|(_, p)| match p {
                Purpose::Action(what) => Some(what),
                _ => None,
            })
            .collect();
        if !unanswered.is_empty() {
            self.app.set_status(
                format!(
                    "no reply to '{}' before the bridge was lost; the list shows its outcome once reconnected",
                    unanswered.join("', '")
                ),
                true,
            );
        }
        let reason = reason.lines().last().unwrap_or("").trim().to_string();
        self.app.bridge = Bridge::Lost { reason };
        self.next_retry = Instant::now() + RETRY_EVERY;
    }

    fn event_loop(&mut self, screen: &term::Screen, signals: &std::os::fd::OwnedFd) -> Result<()> {
        let mut events = Events::with_capacity(16);
        loop {
            self.timers();
            self.draw()?;
            let timeout = self.next_wakeup().saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("waiting for events");
            }
            let mut effects = Vec::new();
            for ev in events.iter() {
                match ev.token() {
                    KEYS => match term::read_keys() {
                        None => return Ok(()), // the terminal is gone
                        Some(keys) => {
                            for k in keys {
                                effects.extend(self.app.on_key(k));
                            }
                        }
                    },
                    SIGNALS => {
                        for sig in term::take_signals(signals) {
                            if sig != libc::SIGWINCH {
                                return Ok(());
                            }
                        }
                    }
                    BRIDGE => effects.extend(self.receive()),
                    BRIDGE_STDERR => {
                        if let Some(conn) = self.bridge.as_mut() {
                            let text = conn.stderr_text();
                            // A warning repeated on every poll is shown once, so
                            // it does not keep hiding the results of actions.
                            if let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) {
                                let line = line.trim().to_string();
                                if self.last_server_line.as_ref() != Some(&line) {
                                    self.app.set_status(line.clone(), true);
                                    self.last_server_line = Some(line);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            if self.perform(effects, screen, signals)? {
                return Ok(());
            }
        }
    }

    fn next_wakeup(&self) -> Instant {
        let mut t = self.next_refresh;
        if self.app.log.is_some() {
            t = t.min(self.next_log);
        }
        if self.bridge.is_none() {
            t = t.min(self.next_retry);
        }
        t
    }

    /// Runs what is due: refresh polls, log polls, reconnects.
    fn timers(&mut self) {
        let now = Instant::now();
        let mut effects = Vec::new();
        if self.bridge.is_none() {
            if now >= self.next_retry {
                match Connection::open(&self.endpoint, false) {
                    Ok(conn) => {
                        self.attach(conn);
                        self.app.set_status("bridge reconnected", false);
                    }
                    Err(e) => self.lost(format!("{e:#}")),
                }
            }
            if self.bridge.is_none() {
                self.next_refresh = now + self.interval;
                return;
            }
        }
        // No polling while a dialog is open: rows must not move under a question.
        if now >= self.next_refresh {
            if self.app.dialog.is_none() {
                effects.extend(self.app.refresh());
            }
            self.next_refresh = now + self.interval;
        }
        if now >= self.next_log {
            effects.extend(self.app.log_poll());
            self.next_log = now + LOG_EVERY;
        }
        for e in effects {
            if let Effect::Send(req, purpose) = e {
                self.send(req, purpose);
            }
        }
    }

    fn send(&mut self, req: crate::ipc::proto::Request, purpose: Purpose) {
        let Some(conn) = self.bridge.as_mut() else {
            self.app
                .set_status("not connected: the request was not sent", true);
            return;
        };
        match conn.send(&req) {
            Ok(id) => self.app.pending.push((id, purpose)),
            Err(e) => self.lost(format!("{e:#}")),
        }
    }

    fn receive(&mut self) -> Vec<Effect> {
        let Some(conn) = self.bridge.as_mut() else {
            return Vec::new();
        };
        match conn.receive() {
            Ok(replies) => {
                let mut effects = Vec::new();
                for env in replies {
                    let purpose = match self.app.pending.iter().position(|(id, _)| *id == env.id) {
                        Some(i) => self.app.pending.remove(i).1,
                        // Id 0: the server could not read one of our frames.
                        None => {
                            if let crate::ipc::proto::Response::Error(e) = env.body {
                                self.app.set_status(format!("bridge: {}", e.message), true);
                            }
                            continue;
                        }
                    };
                    effects.extend(self.app.on_reply(purpose, env.body));
                }
                effects
            }
            Err(e) => {
                self.lost(format!("{e:#}"));
                Vec::new()
            }
        }
    }

    /// Carries out effects; returns true to quit.
    fn perform(
        &mut self,
        effects: Vec<Effect>,
        screen: &term::Screen,
        signals: &std::os::fd::OwnedFd,
    ) -> Result<bool> {
        for e in effects {
            match e {
                Effect::Quit => return Ok(true),
                Effect::Send(req, purpose) => self.send(req, purpose),
                Effect::Shell(cell) => {
                    let msg = self.shell(&cell, screen)?;
                    // Ctrl-C in the shell was for the shell; a TERM or HUP still ends us.
                    let quit = term::take_signals(signals)
                        .iter()
                        .any(|&s| s == libc::SIGTERM || s == libc::SIGHUP);
                    if quit {
                        return Ok(true);
                    }
                    self.app.set_status(msg, false);
                    for e in self.app.refresh() {
                        if let Effect::Send(r, p) = e {
                            self.send(r, p);
                        }
                    }
                }
            }
        }
        Ok(false)
    }

    /// Suspends the screen and runs `cellctl exec <cell>` (on the bridge's host).
    fn shell(&mut self, cell: &str, screen: &term::Screen) -> Result<String> {
        screen.suspend();
        println!("cellui: shell in cell {cell}; leave it (exit) to return to cellui");
        let mut cmd = match &self.endpoint {
            Endpoint::Ssh(target) => {
                let ctl = SshTarget {
                    remote_command: ctl_command(&target.remote_command),
                    ..target.clone()
                };
                ctl.command(&["exec", cell], Session::Tty)
            }
            Endpoint::Local | Endpoint::Socket(_) => {
                let mut c = Command::new(std::env::current_exe().context("finding this program")?);
                c.args(["ctl", "exec", cell]);
                c
            }
        };
        let status = run_in_foreground(&mut cmd);
        let msg = match &status {
            Ok(s) if s.success() => format!("shell in {cell} ended"),
            Ok(s) => format!("shell in {cell} ended with {s}"),
            Err(e) => format!("could not start a shell in {cell}: {e}"),
        };
        if !matches!(status, Ok(s) if s.success()) {
            println!("cellui: {msg}; press Enter to return");
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        screen.resume()?;
        Ok(msg)
    }

    fn draw(&mut self) -> Result<()> {
        let (w, h) = term::size();
        let mut grid = view::Grid::new(w, h);
        view::draw(&mut self.app, &mut grid);
        let mut out = Vec::with_capacity(w * h * 2);
        grid.emit(self.color, &mut out);
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&out)
            .and_then(|()| stdout.flush())
            .context("drawing the screen")
    }
}

/// Runs `cmd` with the terminal, then takes the terminal back: whatever the
/// command did to its foreground process group (a job-control shell killed
/// before it could restore it), cellui returns to its screen instead of being
/// left in the background, where reading its keys would fail.
fn run_in_foreground(cmd: &mut Command) -> std::io::Result<std::process::ExitStatus> {
    let status = cmd.status();
    // SAFETY: tcsetpgrp on our own terminal for our own group; a process
    // outside the foreground group may do so only with SIGTTOU blocked.
    unsafe {
        with_sigttou_blocked(|| {
            libc::tcsetpgrp(0, libc::getpgrp());
        });
    }
    status
}

/// Runs `f` with SIGTTOU blocked.
unsafe fn with_sigttou_blocked(f: impl FnOnce()) {
    let mut set: libc::sigset_t = std::mem::zeroed();
    let mut old: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigaddset(&mut set, libc::SIGTTOU);
    libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
    f();
    libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
}

/// The remote `cellctl` next to the remote `cellmgr` command.
fn ctl_command(mgr: &str) -> String {
    if let Some(prefix) = mgr.strip_suffix("cellmgr") {
        format!("{prefix}cellctl")
    } else if let Some(prefix) = mgr.strip_suffix(" mgr") {
        format!("{prefix} ctl")
    } else {
        "cellctl".into()
    }
}
