//! The cell's spawn agent: every process that enters a cell is forked by the
//! cell's own init, never by the host.
//!
//! Why: a process has to sit in the cell's namespaces, cgroup, session and
//! Landlock domain from its first instruction, and all processes of a cell
//! must share *one* Landlock domain (a domain is inherited only through fork;
//! processes that each restrict themselves sit in sibling domains and could
//! no longer signal each other or meet on the cell's abstract sockets, so
//! `cellctl exec web kill -HUP <service>` would break). The init is already
//! inside everything that makes the cell: a fork of it is too, with nothing of
//! the host caller's (session, process group, terminal, descriptors beyond
//! the three it is given) to inherit. The same shape serves a user namespace
//! per cell (the init would hold it) and one process per cell (the init can
//! supervise the service it forks).
//!
//! The protocol, over a `SOCK_SEQPACKET` socket that the init binds before it
//! pivots into the cell root, in `<run_dir>/kernel/<id>/` (mode 0700, so only
//! host root reaches it; the cell cannot, its mount namespace has no such
//! path), one CBOR message per packet:
//!
//! 1. host → init: a [`Request`], with stdin, stdout and stderr as
//!    `SCM_RIGHTS` (none when the request asks for a terminal: the init then
//!    allocates one from the cell's own devpts instance);
//! 2. init → host: [`Reply::Started`] with the process's pidfd (and the
//!    terminal's master), once the command has been exec'd, or
//!    [`Reply::Failed`] naming the step and errno;
//! 3. init → host: [`Reply::Exited`] with the wait status when it ends. The
//!    connection closing without it means the cell (and the process) ended.
//!
//! The init serves connections only from outside its PID namespace (the
//! peer's pid reads as 0 there): host processes.

pub mod host;
mod incell;
pub mod init;

use crate::kernel::WindowSize;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

/// The socket's name in the cell's runtime directory.
pub const SOCKET: &str = "agent";

/// The largest request: argv and environment together.
pub const MAX_REQUEST: usize = 256 * 1024;
/// The largest reply (they are a few bytes).
pub const MAX_REPLY: usize = 4096;

/// Most descriptors one message carries.
const MAX_FDS: usize = 3;

/// What to start.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Credentials to switch to: (uid, gid) and supplementary groups.
    pub ids: Option<(u32, u32)>,
    pub groups: Vec<u32>,
    pub apply_rlimits: bool,
    /// A new terminal of this size instead of the descriptors sent along.
    pub terminal: Option<WindowSize>,
    /// Not a command to start: a request to the init's supervisor (argv is
    /// empty, no descriptors but those the request names).
    #[serde(default)]
    pub service: Option<Service>,
}

/// What the init's supervisor is asked (`kernel::InitService`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Service {
    /// Supervise: `cellctl supervise` arguments; sent with the supervision
    /// directory and, when a syslog daemon listens, a socket connected to it.
    Supervise {
        args: Vec<String>,
        /// The init's pid on the host: what status and lock files name.
        supervisor_pid: u32,
        cell: String,
        cid: u64,
        max_size: u64,
        files: u32,
        rate_limit: u64,
        /// A socket connected to the daemon at this path is attached.
        with_syslog: bool,
        syslog_socket: PathBuf,
    },
    /// Stop the service and the supervision; [`Reply::Done`] once over.
    Stop { grace_ms: u64 },
    /// Write the status file again.
    WriteStatus,
    /// Log to the socket sent along (connected to the syslog daemon again).
    Syslog,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reply {
    /// The command runs; sent with its pidfd (and the terminal's master).
    Started,
    /// It could not start: the failed step and its errno.
    Failed { step: String, errno: i32 },
    /// It ended; the wait status.
    Exited { status: i32 },
    /// A [`Service`] request was carried out.
    Done,
}

/// Sends one message with `fds` attached.
pub fn send<T: serde::Serialize>(
    sock: BorrowedFd<'_>,
    message: &T,
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut bytes = Vec::new();
    ciborium::into_writer(message, &mut bytes).map_err(std::io::Error::other)?;
    if bytes.len() > MAX_REQUEST {
        return Err(std::io::Error::other(format!(
            "the command and its environment take {} bytes; at most {MAX_REQUEST} are allowed",
            bytes.len()
        )));
    }
    let mut space = vec![0u8; rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !ancillary.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other(
            "too many descriptors for one message",
        ));
    }
    rustix::net::sendmsg(
        sock,
        &[IoSlice::new(&bytes)],
        &mut ancillary,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// Receives one message of at most `max` bytes and the descriptors attached
/// to it (close-on-exec); `None` when the peer has closed the connection.
pub fn recv<T: serde::de::DeserializeOwned>(
    sock: BorrowedFd<'_>,
    max: usize,
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut bytes = vec![0u8; max];
    let mut space = vec![0u8; rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match rustix::net::recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut bytes)],
            &mut ancillary,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    for message in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    let truncated = (libc::MSG_TRUNC | libc::MSG_CTRUNC) as u32;
    if got.flags.bits() & truncated != 0 {
        return Err(std::io::Error::other("a message was truncated"));
    }
    if got.bytes == 0 {
        return Ok(None);
    }
    let message = ciborium::from_reader(&bytes[..got.bytes]).map_err(std::io::Error::other)?;
    Ok(Some((message, fds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn messages_carry_descriptors_and_end_with_the_connection() {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        send(a.as_fd(), &Reply::Started, &[file.as_fd()]).unwrap();
        let (reply, fds): (Reply, _) = recv(b.as_fd(), MAX_REPLY).unwrap().unwrap();
        assert_eq!(reply, Reply::Started);
        assert_eq!(fds.len(), 1);
        send(a.as_fd(), &Reply::Exited { status: 3 << 8 }, &[]).unwrap();
        let (reply, fds): (Reply, _) = recv(b.as_fd(), MAX_REPLY).unwrap().unwrap();
        assert_eq!(reply, Reply::Exited { status: 3 << 8 });
        assert!(fds.is_empty());
        drop(a);
        assert!(recv::<Reply>(b.as_fd(), MAX_REPLY).unwrap().is_none());
    }
}
