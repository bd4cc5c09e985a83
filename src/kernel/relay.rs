//! Running a command in a cell with the caller's terminal, the way ssh and
//! `machinectl shell` do: the cell never holds the caller's terminal.
//!
//! * stdin is a terminal (an interactive command): the command gets a new
//!   pseudo-terminal allocated in the cell, as its controlling terminal, in a
//!   session of its own there. This side puts the caller's terminal in raw
//!   mode and relays bytes both ways and the window size (SIGWINCH); job
//!   control, `tty` and the exit status are the command's own. A process left
//!   behind in the cell keeps at most a hung-up terminal of the cell's: it
//!   can neither read what the operator types next nor push input into the
//!   operator's shell.
//! * otherwise: the command gets the caller's descriptors, except that a
//!   terminal among stdout and stderr is replaced by a pipe this side copies
//!   to it; INT, QUIT, TERM and HUP sent to the caller are passed on (the
//!   command is in another session, so the terminal's own signals cannot
//!   reach it).
//!
//! Generic over the backend: it only needs `spawn` (NetBSD allocates the
//! terminal its own way).

use super::process::{exit_code, is_terminal, poll, Child, Stdio};
use super::{ExecSpec, WindowSize};
use crate::supervise::signals::WakePipe;
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// Runs `spec` through `spawn` with the caller's stdio (see the module
/// comment); returns the exit code.
pub fn run(
    spec: &ExecSpec,
    spawn: impl FnOnce(&ExecSpec, [Stdio; 3]) -> Result<Child>,
) -> Result<i32> {
    let stdin = std::io::stdin();
    if is_terminal(stdin.as_fd()) {
        interactive(spec, spawn)
    } else {
        plain(spec, spawn)
    }
}

/// The window size of a terminal.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<WindowSize> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    Some(WindowSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
        xpixel: ws.ws_xpixel,
        ypixel: ws.ws_ypixel,
    })
}

/// Sets the window size of a terminal (on its master side, the kernel tells
/// the foreground process group with SIGWINCH).
pub fn set_window_size(fd: BorrowedFd<'_>, size: WindowSize) -> std::io::Result<()> {
    rustix::termios::tcsetwinsize(
        fd,
        rustix::termios::Winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: size.xpixel,
            ws_ypixel: size.ypixel,
        },
    )?;
    Ok(())
}

/// Signal handlers routed to a wake pipe while they are installed; the
/// previous dispositions come back on drop.
struct Handlers {
    saved: Vec<(libc::c_int, libc::sigaction)>,
}

impl Handlers {
    fn install(signals: &[libc::c_int]) -> Result<Handlers> {
        let mut saved = Vec::new();
        for &sig in signals {
            // SAFETY: reads the current disposition into a zeroed struct.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
            saved.push((sig, old));
        }
        crate::supervise::signals::install(signals).context("installing signal handlers")?;
        Ok(Handlers { saved })
    }
}

impl Drop for Handlers {
    fn drop(&mut self) {
        for (sig, old) in &self.saved {
            // SAFETY: restores a disposition read by `install`.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
    }
}

/// The caller's terminal in raw mode; restored on drop.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: rustix::termios::Termios,
}

impl<'a> RawMode<'a> {
    fn enter(fd: BorrowedFd<'a>) -> Result<RawMode<'a>> {
        let saved = rustix::termios::tcgetattr(fd).context("reading the terminal's mode")?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Drain, &raw)
            .context("putting the terminal in raw mode")?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            self.fd,
            rustix::termios::OptionalActions::Drain,
            &self.saved,
        );
    }
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    crate::supervise::signals::set_nonblocking_cloexec(fd)
}

/// Bytes read from one descriptor, waiting to be written to another.
struct Pump {
    pending: Vec<u8>,
    /// The source reached its end (or failed).
    done: bool,
}

const CHUNK: usize = 16 * 1024;

impl Pump {
    fn new() -> Pump {
        Pump {
            pending: Vec::new(),
            done: false,
        }
    }

    /// Whether to poll the source: open and not too far ahead of the sink.
    fn wants_input(&self) -> bool {
        !self.done && self.pending.len() < 4 * CHUNK
    }

    /// One read from `from`, which poll found readable (the caller's stdin
    /// may be a blocking descriptor: one read never blocks then). A master
    /// whose slave side is closed everywhere reports EIO: its end, too.
    /// Returns whether bytes came.
    fn fill(&mut self, mut from: &std::fs::File) -> bool {
        let mut buf = [0u8; CHUNK];
        loop {
            return match from.read(&mut buf) {
                Ok(0) => {
                    self.done = true;
                    false
                }
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    true
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                Err(_) => {
                    self.done = true;
                    false
                }
            };
        }
    }

    /// Copies everything a non-blocking source holds now to `to`.
    fn flush_all(&mut self, from: &std::fs::File, to: &std::fs::File) {
        while !self.done && self.fill(from) {
            if !self.drain(to) {
                return;
            }
        }
        self.drain(to);
    }

    /// Writes what it can to `to`; false when the sink is gone.
    fn drain(&mut self, mut to: &std::fs::File) -> bool {
        while !self.pending.is_empty() {
            match to.write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => {
                    self.pending.clear();
                    return false;
                }
            }
        }
        true
    }
}

/// One of the caller's descriptors as a `File`, without taking ownership.
fn borrowed_file(fd: RawFd) -> std::mem::ManuallyDrop<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: the descriptor stays open for the whole run (0, 1 or 2); the
    // ManuallyDrop keeps it from being closed.
    std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) })
}

const READABLE: libc::c_short = libc::POLLIN | libc::POLLHUP | libc::POLLERR;

/// An interactive command on a terminal of its own in the cell.
fn interactive(
    spec: &ExecSpec,
    spawn: impl FnOnce(&ExecSpec, [Stdio; 3]) -> Result<Child>,
) -> Result<i32> {
    let stdin = std::io::stdin();
    let stdin_fd = stdin.as_fd();
    let size = window_size(stdin_fd).unwrap_or(WindowSize {
        rows: 24,
        cols: 80,
        ..WindowSize::default()
    });
    let spec = ExecSpec {
        terminal: Some(size),
        ..spec.clone()
    };
    let wake = WakePipe::new().context("creating the signal pipe")?;
    let _handlers = Handlers::install(&[
        libc::SIGWINCH,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGCHLD,
    ])?;
    let mut child = spawn(&spec, [Stdio::Null, Stdio::Null, Stdio::Null])?;
    let master = child
        .terminal
        .take()
        .context("the cell gave the command no terminal")?;
    set_nonblocking(master.as_raw_fd()).context("setting up the terminal relay")?;
    let raw = RawMode::enter(stdin_fd)?;
    let input = borrowed_file(0);
    let output = borrowed_file(1);
    let (mut to_cell, mut from_cell) = (Pump::new(), Pump::new());
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the command")? {
            break status;
        }
        let exit_fd = child.exit_fd().map(|fd| fd.as_raw_fd()).unwrap_or(-1);
        let master_events = if from_cell.wants_input() {
            libc::POLLIN
        } else {
            0
        } | if to_cell.pending.is_empty() {
            0
        } else {
            libc::POLLOUT
        };
        let fds = [
            (wake.read_fd(), libc::POLLIN),
            (exit_fd, libc::POLLIN),
            (
                0,
                if to_cell.wants_input() {
                    libc::POLLIN
                } else {
                    0
                },
            ),
            (master.as_raw_fd(), master_events),
        ];
        let rev = poll(&fds, -1);
        for sig in wake.drain() {
            match sig {
                libc::SIGWINCH => {
                    if let Some(size) = window_size(stdin_fd) {
                        let _ = set_window_size(master.as_fd(), size);
                    }
                }
                // The caller is being ended: hang the command up, as a
                // closed terminal would.
                libc::SIGTERM | libc::SIGHUP => {
                    let _ = child.signal(libc::SIGHUP);
                }
                // Not from the terminal (it is in raw mode): sent by hand.
                libc::SIGINT | libc::SIGQUIT => {
                    let _ = child.signal(sig);
                }
                _ => {} // SIGCHLD: try_wait above.
            }
        }
        if rev[2] & READABLE != 0 {
            to_cell.fill(&input);
        }
        if rev[3] & READABLE != 0 {
            from_cell.fill(&master);
        }
        if !to_cell.drain(&master) {
            to_cell.done = true;
        }
        if !from_cell.drain(&output) {
            from_cell.done = true;
        }
    };
    // What the command wrote before it ended is in the terminal already.
    from_cell.flush_all(&master, &output);
    drop(raw);
    Ok(exit_code(status))
}

/// A command with the caller's descriptors (terminals among stdout and stderr
/// relayed through pipes) and the caller's signals passed on.
fn plain(
    spec: &ExecSpec,
    spawn: impl FnOnce(&ExecSpec, [Stdio; 3]) -> Result<Child>,
) -> Result<i32> {
    let mut stdio = Vec::new();
    let mut relayed = [false; 3];
    for fd in 0..3 {
        let borrowed = borrowed_file(fd);
        if is_terminal(borrowed.as_fd()) {
            relayed[fd as usize] = true;
            stdio.push(Stdio::Piped);
        } else {
            let own = borrowed
                .as_fd()
                .try_clone_to_owned()
                .with_context(|| format!("duplicating descriptor {fd}"))?;
            stdio.push(Stdio::Fd(own));
        }
    }
    let stdio: [Stdio; 3] = stdio.try_into().expect("three descriptors");
    let wake = WakePipe::new().context("creating the signal pipe")?;
    let forwarded = [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP];
    let _handlers = Handlers::install(&[
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGCHLD,
    ])?;
    let mut child = spawn(spec, stdio)?;
    // A terminal on stdin goes the interactive way; never relayed here.
    drop(child.stdin.take());
    let sources = [child.stdout.take(), child.stderr.take()];
    for f in sources.iter().flatten() {
        set_nonblocking(f.as_raw_fd()).context("setting up the output relay")?;
    }
    let sinks = [borrowed_file(1), borrowed_file(2)];
    let mut pumps = [Pump::new(), Pump::new()];
    for (i, pump) in pumps.iter_mut().enumerate() {
        pump.done = !relayed[i + 1];
    }
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the command")? {
            break status;
        }
        let exit_fd = child.exit_fd().map(|fd| fd.as_raw_fd()).unwrap_or(-1);
        let mut fds = vec![(wake.read_fd(), libc::POLLIN), (exit_fd, libc::POLLIN)];
        for (source, pump) in sources.iter().zip(&pumps) {
            let fd = source.as_ref().map_or(-1, |f| f.as_raw_fd());
            fds.push((fd, if pump.wants_input() { libc::POLLIN } else { 0 }));
        }
        let rev = poll(&fds, -1);
        for sig in wake.drain() {
            if forwarded.contains(&sig) {
                let _ = child.signal(sig);
            }
        }
        for (i, pump) in pumps.iter_mut().enumerate() {
            if let (Some(source), true) = (&sources[i], rev[2 + i] & READABLE != 0) {
                pump.fill(source);
            }
            pump.drain(&sinks[i]);
        }
    };
    // Output written before the end is in the pipes; a process left behind
    // holding them open must not keep us here.
    for (i, pump) in pumps.iter_mut().enumerate() {
        if let Some(source) = &sources[i] {
            pump.flush_all(source, &sinks[i]);
        }
    }
    Ok(exit_code(status))
}
