//! The terminal: raw mode and the alternate screen, restored on every way out
//! (normal return, error, panic, SIGTERM/SIGHUP/SIGINT), signals turned into
//! bytes on a pipe for the event loop, and key decoding.

use anyhow::{bail, Context, Result};
use rustix::termios::{self, OptionalActions, Termios};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;
use termion::event::{Event, Key};

/// The terminal settings to go back to; shared with the panic hook.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);
/// Whether the screen is ours now (raw mode, alternate screen): restoring twice
/// would clear the normal screen.
static ON_SCREEN: AtomicBool = AtomicBool::new(false);
/// Write end of the signal pipe (-1 when none).
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

const ENTER_SCREEN: &str = "\x1b[?1049h\x1b[?25l\x1b[0m\x1b[2J";
const LEAVE_SCREEN: &str = "\x1b[0m\x1b[?25h\x1b[?1049l";

fn stdin() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

fn stdout() -> BorrowedFd<'static> {
    // SAFETY: fd 1 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(1) }
}

/// Full-screen mode; dropping it restores the terminal.
pub struct Screen {
    _private: (),
}

impl Screen {
    pub fn enter() -> Result<Screen> {
        require_terminal()?;
        let saved = termios::tcgetattr(stdin()).context("reading the terminal settings")?;
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some(saved);
        install_panic_hook();
        let screen = Screen { _private: () };
        screen.resume()?;
        Ok(screen)
    }

    /// Back to raw mode on the alternate screen (after `suspend`).
    pub fn resume(&self) -> Result<()> {
        let Some(mut raw) = SAVED.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            bail!("terminal settings were not saved");
        };
        raw.make_raw();
        termios::tcsetattr(stdin(), OptionalActions::Flush, &raw)
            .context("switching the terminal to raw mode")?;
        ON_SCREEN.store(true, Ordering::SeqCst);
        write_all(ENTER_SCREEN);
        Ok(())
    }

    /// The terminal as it was, e.g. while a shell runs in a cell.
    pub fn suspend(&self) {
        restore();
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Fails unless standard input and output are a terminal.
pub fn require_terminal() -> Result<()> {
    if !termios::isatty(stdin()) || !termios::isatty(stdout()) {
        bail!(
            "standard input and output must be a terminal; for scripts use cellmgr's list commands"
        );
    }
    Ok(())
}

fn write_all(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// Leaves the alternate screen and puts the saved settings back. Safe to call
/// more than once (a panic restores, then unwinding drops the `Screen`).
pub fn restore() {
    if !ON_SCREEN.swap(false, Ordering::SeqCst) {
        return;
    }
    let saved = SAVED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(t) = saved {
        write_all(LEAVE_SCREEN);
        let _ = termios::tcsetattr(stdin(), OptionalActions::Now, &t);
    }
}

fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The message must land on the normal screen, in cooked mode.
        restore();
        default(info);
    }));
}

pub fn size() -> (usize, usize) {
    match termios::tcgetwinsize(stdout()) {
        Ok(ws) if ws.ws_col > 0 && ws.ws_row > 0 => (ws.ws_col as usize, ws.ws_row as usize),
        _ => (80, 24),
    }
}

/// Signals the UI reacts to; each arrives as its number on the pipe.
pub const SIGNALS: [i32; 4] = [libc::SIGWINCH, libc::SIGTERM, libc::SIGHUP, libc::SIGINT];

extern "C" fn on_signal(sig: libc::c_int) {
    let fd: RawFd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe just drops the byte.
        unsafe {
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
    }
}

/// Installs the handlers; returns the pipe's read end for the event loop.
pub fn signal_pipe() -> Result<OwnedFd> {
    let (read, write) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )
    .context("creating the signal pipe")?;
    SIGNAL_PIPE.store(
        std::os::fd::IntoRawFd::into_raw_fd(write),
        Ordering::Relaxed,
    );
    for sig in SIGNALS {
        // SAFETY: the handler only calls write(2) on a descriptor it never closes.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    Ok(read)
}

/// Signals received since the last call (drains the pipe).
pub fn take_signals(pipe: &OwnedFd) -> Vec<i32> {
    let mut buf = [0u8; 64];
    let mut out = Vec::new();
    while let Ok(n) = rustix::io::read(pipe.as_fd(), &mut buf) {
        if n == 0 {
            break;
        }
        out.extend(buf[..n].iter().map(|&b| b as i32));
    }
    out
}

/// Decodes the keys in one chunk of terminal input. A lone ESC at the end of a
/// chunk is the Esc key (an escape sequence arrives in one read).
pub fn keys(bytes: &[u8]) -> Vec<Key> {
    let mut out = Vec::new();
    let mut it = bytes
        .iter()
        .map(|&b| Ok::<u8, std::io::Error>(b))
        .peekable();
    while let Some(Ok(b)) = it.next() {
        if b == 0x1b && it.peek().is_none() {
            out.push(Key::Esc);
            continue;
        }
        if let Ok(Event::Key(k)) = termion::event::parse_event(b, &mut it) {
            out.push(k);
        }
    }
    out
}

/// Reads the keys available on stdin now; `None` when stdin is closed.
pub fn read_keys() -> Option<Vec<Key>> {
    // SAFETY: fd 0 is borrowed, never closed: ManuallyDrop keeps File from closing it.
    let mut file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) });
    let mut bytes = Vec::new();
    match crate::ipc::client::read_available(&mut file, |b| bytes.extend_from_slice(b)) {
        Ok(true) | Err(_) if bytes.is_empty() => None,
        _ => Some(keys(&bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_plain_escape_and_sequences() {
        assert_eq!(
            keys(b"q\x1b[A\x1b[B\t\r\x03"),
            [
                Key::Char('q'),
                Key::Up,
                Key::Down,
                Key::Char('\t'),
                Key::Char('\n'),
                Key::Ctrl('c')
            ]
        );
        assert_eq!(keys(b"\x1b"), [Key::Esc]);
        assert_eq!(keys(b"\x1b[5~\x1b[6~"), [Key::PageUp, Key::PageDown]);
    }
}
