//! Signals as readable bytes: the classic self-pipe, portable to NetBSD.
//!
//! The handler writes the signal number into every registered wake pipe, so a
//! mio loop sees signals as an ordinary readable event. Several monitors in one
//! process (the unit tests) each register their own pipe; SIGCHLD wakes all of
//! them and each checks only its own child.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

const SLOTS: usize = 32;
static WAKE_FDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];

extern "C" fn on_signal(signo: libc::c_int) {
    // SAFETY: only async-signal-safe calls (errno save/restore, write).
    unsafe {
        let errno = *errno_location();
        let byte = signo as u8;
        for slot in &WAKE_FDS {
            let fd = slot.load(Ordering::Relaxed);
            if fd >= 0 {
                libc::write(fd, (&byte as *const u8).cast(), 1);
            }
        }
        *errno_location() = errno;
    }
}

#[cfg(target_os = "linux")]
unsafe fn errno_location() -> *mut libc::c_int {
    libc::__errno_location()
}

#[cfg(target_os = "netbsd")]
unsafe fn errno_location() -> *mut libc::c_int {
    libc::__errno()
}

/// Installs the handler for each signal (SA_RESTART, so other code in the
/// process does not see EINTR).
pub fn install(signals: &[libc::c_int]) -> std::io::Result<()> {
    for &sig in signals {
        // SAFETY: a zeroed sigaction with our handler is a valid argument.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// A non-blocking pipe that receives one byte per delivered signal. Dropping
/// it unregisters it.
pub struct WakePipe {
    read: OwnedFd,
    /// Kept open for the handler, which writes to its raw descriptor.
    #[cfg_attr(not(test), allow(dead_code))]
    write: OwnedFd,
    slot: usize,
}

impl WakePipe {
    pub fn new() -> std::io::Result<WakePipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into `fds`.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors are fresh and owned by us from here on.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [read.as_raw_fd(), write.as_raw_fd()] {
            set_nonblocking_cloexec(fd)?;
        }
        let slot = WAKE_FDS
            .iter()
            .position(|s| {
                s.compare_exchange(-1, write.as_raw_fd(), Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            })
            .ok_or_else(|| std::io::Error::other("too many supervisors in one process"))?;
        Ok(WakePipe { read, write, slot })
    }

    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// A second write end, for delivering a "signal" without a signal.
    #[cfg(test)]
    pub fn sender(&self) -> std::io::Result<OwnedFd> {
        self.write.try_clone()
    }

    /// Reads every pending signal number.
    pub fn drain(&self) -> Vec<libc::c_int> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reading into a local buffer of the given size.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return out;
            }
            out.extend(buf[..n as usize].iter().map(|&b| b as libc::c_int));
        }
    }
}

impl Drop for WakePipe {
    fn drop(&mut self) {
        WAKE_FDS[self.slot].store(-1, Ordering::SeqCst);
    }
}

/// Writes one signal number into a pipe made by [`WakePipe::sender`].
#[cfg(test)]
pub fn send(fd: &OwnedFd, signo: libc::c_int) -> std::io::Result<()> {
    let byte = signo as u8;
    // SAFETY: writing one byte from a local.
    if unsafe { libc::write(fd.as_raw_fd(), (&byte as *const u8).cast(), 1) } == 1 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub fn set_nonblocking_cloexec(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fdfl = libc::fcntl(fd, libc::F_GETFD);
        if fdfl < 0 || libc::fcntl(fd, libc::F_SETFD, fdfl | libc::FD_CLOEXEC) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
