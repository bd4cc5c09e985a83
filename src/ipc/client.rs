//! The client side of the bridge: start or reach a server, shake hands, then
//! exchange frames. `call` is the blocking form; the UI's event loop instead
//! polls [`Connection::read_fd`] and collects replies with [`Connection::receive`].

use super::frame::{write_frame, FrameDecoder};
use super::proto::{decode, encode, Envelope, RemoteError, Request, Response, PROTOCOL_VERSION};
use super::ssh::{Session, SshTarget};
use anyhow::{anyhow, bail, Context, Result};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// This very binary, started as `cellmgr ipc serve --stdio`.
    Local,
    /// `ssh -T destination <remote_command> ipc serve --stdio`.
    Ssh(SshTarget),
    /// A running `cellmgr ipc serve --socket PATH`.
    Socket(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Local => f.write_str("local cellmgr"),
            Endpoint::Ssh(t) => write!(f, "ssh {}", t.destination),
            Endpoint::Socket(p) => write!(f, "socket {}", p.display()),
        }
    }
}

/// The server's answer to the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub server: String,
    pub host: String,
}

pub struct Connection {
    reader: File,
    writer: Option<File>,
    child: Option<Child>,
    /// The server's stderr, when we started it.
    stderr: Option<File>,
    decoder: FrameDecoder,
    next_id: u64,
    pub info: ServerInfo,
}

/// How long the handshake may take: long when ssh may ask for a password, short
/// for background reconnects.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(120);
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Connection {
    /// Connects and shakes hands. With `prompt_ok` false, ssh must not ask
    /// anything on the terminal (it runs in batch mode, in its own process group).
    pub fn open(endpoint: &Endpoint, prompt_ok: bool) -> Result<Connection> {
        let transport = match endpoint {
            Endpoint::Socket(path) => {
                let stream = UnixStream::connect(path)
                    .with_context(|| format!("connecting to {}", path.display()))?;
                let reader = stream.try_clone().context("cloning the socket")?;
                Transport {
                    reader: File::from(OwnedFd::from(reader)),
                    writer: File::from(OwnedFd::from(stream)),
                    child: None,
                    stderr: None,
                }
            }
            Endpoint::Local => {
                let exe = std::env::current_exe().context("finding this program")?;
                let mut cmd = Command::new(exe);
                cmd.args(["mgr", "ipc", "serve", "--stdio"]);
                // Keys the user types (Ctrl-C in a cell shell) are not for the server.
                cmd.process_group(0);
                spawn(cmd)?
            }
            Endpoint::Ssh(target) => {
                let session = if prompt_ok {
                    Session::Pipe
                } else {
                    Session::Batch
                };
                spawn(target.command(&["ipc", "serve", "--stdio"], session))?
            }
        };
        let timeout = if prompt_ok {
            HANDSHAKE_TIMEOUT
        } else {
            RECONNECT_TIMEOUT
        };
        Connection::handshake(transport, timeout)
            .with_context(|| format!("handshake with {endpoint}"))
    }

    /// Starts a server command speaking the protocol on its stdin/stdout (for
    /// example `cellmgr ipc serve --stdio` with a particular configuration) and
    /// shakes hands with it.
    pub fn spawn(cmd: Command) -> Result<Connection> {
        let shown = std::path::Path::new(cmd.get_program())
            .display()
            .to_string();
        Connection::handshake(spawn(cmd)?, RECONNECT_TIMEOUT)
            .with_context(|| format!("handshake with {shown}"))
    }

    fn handshake(t: Transport, timeout: Duration) -> Result<Connection> {
        let mut conn = Connection {
            reader: t.reader,
            writer: Some(t.writer),
            child: t.child,
            stderr: t.stderr,
            decoder: FrameDecoder::new(),
            next_id: 1,
            info: ServerInfo {
                server: String::new(),
                host: String::new(),
            },
        };
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            client: format!("cellui {}", env!("CARGO_PKG_VERSION")),
        };
        let reply = conn
            .call_within(hello, Some(timeout))
            .map_err(|e| conn.explain(e))?;
        match reply {
            Response::Hello { server, host, .. } => conn.info = ServerInfo { server, host },
            other => bail!("unexpected reply to hello: a {} message", other.name()),
        }
        Ok(conn)
    }

    /// Adds what the server said on stderr (why it could not start) to an error.
    fn explain(&mut self, err: anyhow::Error) -> anyhow::Error {
        let said = self.stderr_text();
        let said = said.trim();
        if said.is_empty() {
            err
        } else {
            err.context(said.to_string())
        }
    }

    /// Sends a request; returns its id.
    pub fn send(&mut self, req: &Request) -> Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| anyhow!("the bridge is closed"))?;
        write_frame(w, &encode(&Envelope { id, body: req })).context("sending to the server")?;
        Ok(id)
    }

    /// Sends a request and waits for its reply. A `Response::Error` becomes an
    /// `Err` holding the [`RemoteError`].
    pub fn call(&mut self, req: Request) -> Result<Response> {
        self.call_within(req, None)
    }

    fn call_within(&mut self, req: Request, timeout: Option<Duration>) -> Result<Response> {
        let id = self.send(&req)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            for env in self.receive()? {
                // Id 0 answers a frame the server could not read: ours.
                if env.id == id || env.id == 0 {
                    return match env.body {
                        Response::Error(e) => Err(anyhow::Error::new(e)),
                        body => Ok(body),
                    };
                }
            }
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if wait == Some(Duration::ZERO) {
                bail!(
                    "no reply from the server within {}s",
                    timeout.unwrap().as_secs()
                );
            }
            wait_readable(self.reader.as_fd(), wait)?;
        }
    }

    /// The descriptor replies arrive on, for an event loop.
    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.reader.as_fd()
    }

    /// The server's stderr, when this connection started the server.
    pub fn stderr_fd(&self) -> Option<BorrowedFd<'_>> {
        self.stderr.as_ref().map(|f| f.as_fd())
    }

    /// Reads whatever has arrived without blocking and returns the complete
    /// replies. The end of the stream or a broken frame is an error: the bridge is
    /// then lost.
    pub fn receive(&mut self) -> Result<Vec<Envelope<Response>>> {
        let eof = read_available(&mut self.reader, |b| self.decoder.push(b))
            .context("reading from the server")?;
        let mut out = Vec::new();
        while let Some(frame) = self.decoder.next_frame() {
            let frame = frame.map_err(|e| anyhow!("the server sent a broken frame: {e}"))?;
            let env = decode::<Envelope<Response>>(&frame)
                .map_err(|e| anyhow!("the server sent an unreadable reply: {e}"))?;
            out.push(env);
        }
        if eof && out.is_empty() {
            let err = anyhow!("the server closed the connection");
            return Err(self.explain(err));
        }
        Ok(out)
    }

    /// What the server wrote to stderr since the last call (never blocks).
    pub fn stderr_text(&mut self) -> String {
        let mut text = Vec::new();
        if let Some(f) = self.stderr.as_mut() {
            let _ = read_available(f, |b| text.extend_from_slice(b));
        }
        String::from_utf8_lossy(&text).into_owned()
    }
}

impl Drop for Connection {
    /// Says goodbye, closes the stream, and reaps the server if we started it.
    /// A server still busy with an action is left to finish it (it exits when
    /// done): killing it could cut the action short.
    fn drop(&mut self) {
        if let Some(mut w) = self.writer.take() {
            let bye = Envelope {
                id: 0,
                body: Request::Bye,
            };
            let _ = write_frame(&mut w, &encode(&bye));
        }
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::spawn(move || child.wait());
        }
    }
}

/// The two directions of a connection, and the server process if we started it.
struct Transport {
    reader: File,
    writer: File,
    child: Option<Child>,
    stderr: Option<File>,
}

fn spawn(mut cmd: Command) -> Result<Transport> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| {
        format!(
            "starting {}",
            std::path::Path::new(cmd.get_program()).display()
        )
    })?;
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    Ok(Transport {
        reader: File::from(OwnedFd::from(stdout)),
        writer: File::from(OwnedFd::from(stdin)),
        child: Some(child),
        stderr: Some(File::from(OwnedFd::from(stderr))),
    })
}

/// Waits until `fd` is readable (or has hung up); `None` waits forever.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<bool> {
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waiting for the server");
        }
    }
}

/// Reads everything that can be read without blocking, handing each chunk to
/// `sink`; returns true at end of stream. Works on blocking descriptors (pipes
/// and sockets alike) by asking poll before every read.
pub fn read_available(file: &mut File, mut sink: impl FnMut(&[u8])) -> std::io::Result<bool> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match wait_readable(file.as_fd(), Some(Duration::ZERO)) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
        match file.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => sink(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The remote error inside an error returned by [`Connection::call`], if any.
pub fn remote_error(err: &anyhow::Error) -> Option<&RemoteError> {
    err.downcast_ref::<RemoteError>()
}
