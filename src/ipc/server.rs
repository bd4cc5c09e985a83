//! The serving side of the bridge: one [`Session`] per connection answers
//! requests from a [`Backend`]. `serve_stream` runs a session over any byte
//! stream (stdio, a socket); `serve_socket` accepts connections on a unix socket
//! whose peers are checked by their kernel-reported credentials.
//!
//! A request is acted on only once its whole frame has arrived, and an action,
//! once started, runs to completion even if the client goes away: a disconnect
//! never leaves half an action behind.

use super::frame::{write_frame, FrameError, FrameReader, Incoming};
use super::proto::{
    decode, digest, encode, BackupRow, BackupTarget, Envelope, ErrorKind, LogChunk, Plan,
    RemoteError, Request, Response, Snapshot, PROTOCOL_VERSION,
};
use crate::model::{CellRow, VolumeRow};
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the bridge can ask of the control plane. The real implementation sits
/// over the engine (`mgr::ipc`); every method behaves like the CLI command of the
/// same name and fails with the CLI's error.
pub trait Backend: Send + Sync {
    fn cells(&self) -> Result<Vec<CellRow>>;
    fn volumes(&self) -> Result<Vec<VolumeRow>>;
    /// Newest first.
    fn backups(&self, target: &BackupTarget) -> Result<Vec<BackupRow>>;
    /// The dry-run plan for these cells (all when empty).
    fn plan(&self, cells: &[String]) -> Result<Plan>;
    /// Each returns the message the CLI prints on success.
    fn start(&self, cells: &[String]) -> Result<String>;
    fn stop(&self, cells: &[String]) -> Result<String>;
    fn restart(&self, cells: &[String]) -> Result<String>;
    /// Applies only if the plan is still the one `plan` named `plan_token`,
    /// checked where the apply holds its lock; otherwise changes nothing.
    fn apply(&self, cells: &[String], plan_token: &str) -> Result<String>;
    /// `quiesce`: freeze the running cells that write to it meanwhile.
    fn backup_create(&self, target: &BackupTarget, quiesce: bool) -> Result<BackupRow>;
    fn backup_restore(&self, target: &BackupTarget, archive: &str) -> Result<String>;
    fn log_tail(&self, cell: &str, lines: u32, offset: Option<u64>) -> Result<LogChunk>;
}

/// One client's conversation.
pub struct Session<'a> {
    backend: &'a dyn Backend,
    /// Serialises actions across sessions of one server.
    actions: &'a Mutex<()>,
    greeted: bool,
    /// The client, as the kernel reported it (a socket); `None` on stdio,
    /// where the client is whoever started this server.
    peer: Option<Peer>,
}

thread_local! {
    /// The client of the action this thread is carrying out, for the backend
    /// to hand on to the commands it runs (their audit records name it).
    static ACTING_FOR: std::cell::Cell<Option<Peer>> = const { std::cell::Cell::new(None) };
}

/// The client on whose behalf the current thread acts, if any.
pub fn acting_for() -> Option<Peer> {
    ACTING_FOR.with(|p| p.get())
}

/// What to do after a reply has been sent.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Continue,
    Close,
}

impl<'a> Session<'a> {
    pub fn new(backend: &'a dyn Backend, actions: &'a Mutex<()>) -> Self {
        Session {
            backend,
            actions,
            greeted: false,
            peer: None,
        }
    }

    /// A session with a client the kernel identified.
    pub fn with_peer(mut self, peer: Option<Peer>) -> Self {
        self.peer = peer;
        self
    }

    /// Answers one decoded request.
    pub fn handle(&mut self, req: Request) -> (Response, After) {
        match req {
            Request::Hello { version, .. } => {
                if version != PROTOCOL_VERSION {
                    let msg = format!(
                        "client speaks protocol version {version}, this server speaks {PROTOCOL_VERSION}"
                    );
                    return (error(ErrorKind::Handshake, msg), After::Close);
                }
                self.greeted = true;
                let host = rustix::system::uname()
                    .nodename()
                    .to_string_lossy()
                    .into_owned();
                let reply = Response::Hello {
                    version: PROTOCOL_VERSION,
                    server: format!("cellmgr {}", env!("CARGO_PKG_VERSION")),
                    host,
                };
                (reply, After::Continue)
            }
            _ if !self.greeted => (
                error(
                    ErrorKind::Handshake,
                    "the first request of a session must be Hello",
                ),
                After::Continue,
            ),
            Request::Bye => (Response::Bye, After::Close),
            req => (self.dispatch(req), After::Continue),
        }
    }

    fn dispatch(&mut self, req: Request) -> Response {
        if !req.is_action() {
            return self.answer(req);
        }
        // A panicking action poisons the lock; the next one may still run.
        let _guard = self.actions.lock().unwrap_or_else(|p| p.into_inner());
        let (action, subject) = audit_subject(&req);
        ACTING_FOR.with(|p| p.set(self.peer));
        let reply = self.answer(req);
        ACTING_FOR.with(|p| p.set(None));
        let mut actor = crate::journal::process_actor();
        actor.via = Some("ipc".into());
        if let Some(peer) = self.peer {
            actor.peer_uid = Some(peer.uid);
            actor.peer_pid = peer.pid;
        }
        let failure = match &reply {
            Response::Error(e) => Some(anyhow::anyhow!("{}", e.message)),
            _ => None,
        };
        let subj = match &subject {
            AuditSubject::Cell(c) => crate::journal::Subject::Cell(c),
            AuditSubject::Volume(v) => crate::journal::Subject::Volume(v),
            AuditSubject::None => crate::journal::Subject::None,
        };
        crate::journal::audit_as(
            actor,
            &format!("ipc {action}"),
            Some(format!("ipc {action}{}", subject.words())),
            subj,
            failure.as_ref().map_or(Ok(0), Err),
        );
        reply
    }

    fn answer(&mut self, req: Request) -> Response {
        let b = self.backend;
        let result = match req {
            Request::Ping => Ok(Response::Pong),
            Request::Snapshot { since } => snapshot(b, since),
            Request::Cells => b.cells().map(Response::Cells),
            Request::Volumes => b.volumes().map(Response::Volumes),
            Request::Backups { target } => b.backups(&target).map(Response::Backups),
            Request::Plan { cells } => b.plan(&cells).map(Response::Plan),
            Request::Start { cells } => b.start(&cells).map(done),
            Request::Stop { cells } => b.stop(&cells).map(done),
            Request::Restart { cells } => b.restart(&cells).map(done),
            Request::Apply { cells, plan_token } => b.apply(&cells, &plan_token).map(done),
            Request::BackupCreate { target, quiesce } => b
                .backup_create(&target, quiesce)
                .map(Response::BackupCreated),
            Request::BackupRestore { target, archive } => {
                b.backup_restore(&target, &archive).map(done)
            }
            Request::LogTail {
                cell,
                lines,
                offset,
            } => b.log_tail(&cell, lines, offset).map(Response::Log),
            Request::Hello { .. } | Request::Bye => unreachable!("handled by Session::handle"),
        };
        result.unwrap_or_else(|e| Response::Error(RemoteError::from_engine(&e)))
    }
}

/// What an action is about, for its audit record.
enum AuditSubject {
    Cell(String),
    Volume(String),
    None,
}

impl AuditSubject {
    fn words(&self) -> String {
        match self {
            AuditSubject::Cell(c) => format!(" cell {c}"),
            AuditSubject::Volume(v) => format!(" volume {v}"),
            AuditSubject::None => String::new(),
        }
    }
}

fn audit_subject(req: &Request) -> (&'static str, AuditSubject) {
    let cells = |c: &[String]| match c {
        [one] => AuditSubject::Cell(one.clone()),
        _ => AuditSubject::None,
    };
    let target = |t: &BackupTarget| match t {
        BackupTarget::Cell(c) => AuditSubject::Cell(c.clone()),
        BackupTarget::Volume(v) => AuditSubject::Volume(v.clone()),
    };
    match req {
        Request::Start { cells: c } => ("start", cells(c)),
        Request::Stop { cells: c } => ("stop", cells(c)),
        Request::Restart { cells: c } => ("restart", cells(c)),
        Request::Apply { cells: c, .. } => ("apply", cells(c)),
        Request::BackupCreate { target: t, .. } => ("backup create", target(t)),
        Request::BackupRestore { target: t, .. } => ("backup restore", target(t)),
        _ => ("request", AuditSubject::None),
    }
}

fn done(message: String) -> Response {
    Response::Done { message }
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error(RemoteError::new(kind, message))
}

fn snapshot(b: &dyn Backend, since: Option<u64>) -> Result<Response> {
    let snap = Snapshot {
        cells: b.cells()?,
        volumes: b.volumes()?,
    };
    let token = digest(&snap);
    let data = (since != Some(token)).then_some(snap);
    Ok(Response::Snapshot { token, data })
}

/// Runs one session over a byte stream until the peer says `Bye`, closes the
/// stream, or fails the handshake. Stream errors are answered and skipped.
pub fn serve_stream(
    reader: impl Read,
    writer: impl Write,
    backend: &dyn Backend,
    actions: &Mutex<()>,
) -> Result<()> {
    serve_session(reader, writer, Session::new(backend, actions))
}

fn serve_session(reader: impl Read, mut writer: impl Write, mut session: Session) -> Result<()> {
    let mut frames = FrameReader::new(reader);
    loop {
        let incoming = frames.read().context("reading a request")?;
        let (id, reply, after) = match incoming {
            Incoming::End { truncated: false } => return Ok(()),
            Incoming::End { truncated: true } => {
                let msg = "the stream ended inside a frame; the request was not acted on";
                // The peer is gone, so this reply is a courtesy that may fail.
                let _ = send(&mut writer, 0, &error(ErrorKind::Frame, msg));
                return Ok(());
            }
            Incoming::Bad(e) => {
                let kind = match e {
                    FrameError::BadMagic => ErrorKind::Frame,
                    FrameError::TooLarge(_) => ErrorKind::TooLarge,
                };
                (0, error(kind, e.to_string()), After::Continue)
            }
            Incoming::Frame(bytes) => match decode::<Envelope<Request>>(&bytes) {
                Ok(env) => {
                    let (reply, after) = session.handle(env.body);
                    (env.id, reply, after)
                }
                Err(why) => (
                    0,
                    error(ErrorKind::Decode, format!("not a valid request: {why}")),
                    After::Continue,
                ),
            },
        };
        send(&mut writer, id, &reply).context("sending a reply")?;
        if after == After::Close {
            return Ok(());
        }
    }
}

fn send(w: &mut impl Write, id: u64, body: &Response) -> std::io::Result<()> {
    write_frame(w, &encode(&Envelope { id, body }))
}

/// Serves on stdin/stdout. Stray writes to stdout by anything else in the process
/// would corrupt the frames, so the protocol gets its own descriptor and fd 1 is
/// pointed at stderr.
pub fn serve_stdio(backend: &dyn Backend) -> Result<()> {
    use std::os::fd::FromRawFd;
    // SAFETY: dup/dup2 on the process's own standard descriptors; the duplicate is
    // owned by the File created from it and nothing else uses that number.
    let out = unsafe {
        let fd = libc::dup(1);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error()).context("redirecting stdout");
        }
        std::fs::File::from_raw_fd(fd)
    };
    ignore_hangup();
    let actions = Mutex::new(());
    serve_stream(std::io::stdin().lock(), out, backend, &actions)
}

/// A dropped ssh session or closed terminal must not kill an action half-way; the
/// server ends when its input ends instead.
fn ignore_hangup() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}

/// Who may connect to the socket besides root and the server's own user.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Members of this group may connect too (the socket is then mode 0660).
    pub group: Option<u32>,
}

/// Credentials of a connected peer, as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    /// Linux reports the pid too (SO_PEERCRED); getpeereid does not.
    pub pid: Option<u32>,
}

impl Access {
    pub fn permits(&self, peer: Peer) -> bool {
        let own = rustix::process::geteuid().as_raw();
        peer.uid == 0
            || peer.uid == own
            || self
                .group
                .is_some_and(|g| peer.gid == g || user_in_group(peer.uid, peer.gid, g))
    }
}

/// Looks up a group by name.
pub fn group_id(name: &str) -> Result<u32> {
    let cname = std::ffi::CString::new(name).context("group name contains a NUL byte")?;
    // SAFETY: getgrnam with a valid C string; only gr_gid is read, immediately.
    let gid = unsafe {
        let gr = libc::getgrnam(cname.as_ptr());
        if gr.is_null() {
            bail!("no such group '{name}'");
        }
        (*gr).gr_gid
    };
    Ok(gid)
}

fn user_in_group(uid: u32, primary: u32, group: u32) -> bool {
    // SAFETY: getpwuid's result is read before any other passwd call; getgrouplist
    // writes at most `n` entries into a buffer of that size.
    unsafe {
        let pw = libc::getpwuid(uid);
        if pw.is_null() {
            return false;
        }
        let mut groups = vec![0 as libc::gid_t; 256];
        let mut n = groups.len() as libc::c_int;
        if libc::getgrouplist(
            (*pw).pw_name,
            primary as _,
            groups.as_mut_ptr() as _,
            &mut n,
        ) < 0
        {
            return false;
        }
        groups[..n.max(0) as usize].contains(&group)
    }
}

fn peer_of(stream: &UnixStream) -> Result<Peer> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let cred = rustix::net::sockopt::get_socket_peercred(stream)
            .context("reading the peer's credentials (SO_PEERCRED)")?;
        Ok(Peer {
            uid: cred.uid.as_raw(),
            gid: cred.gid.as_raw(),
            pid: Some(cred.pid.as_raw_nonzero().get() as u32),
        })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        use std::os::fd::AsRawFd;
        let (mut uid, mut gid) = (0, 0);
        // SAFETY: getpeereid on a connected socket, writing two plain integers.
        if unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) } < 0 {
            return Err(std::io::Error::last_os_error())
                .context("reading the peer's credentials (getpeereid)");
        }
        Ok(Peer {
            uid,
            gid,
            pid: None,
        })
    }
}

/// At most this many sessions at once; more are refused with an error.
pub const MAX_SESSIONS: usize = 32;

/// Binds `path` (replacing a stale socket, refusing a live one or any other
/// file), restricts it to root, the server's user and optionally a group, and
/// serves each connection on its own thread.
pub fn serve_socket(path: &Path, backend: Arc<dyn Backend>, access: Access) -> Result<()> {
    let listener = bind(path, &access)?;
    ignore_hangup();
    let actions = Arc::new(Mutex::new(()));
    let sessions = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accepting on {}: {e}", path.display());
                continue;
            }
        };
        let peer = peer_of(&stream);
        let refusal = match &peer {
            Err(e) => Some(format!("{e:#}")),
            Ok(peer) if !access.permits(*peer) => Some(format!(
                "uid {} may not use {}: it is restricted to root, the server's user{}",
                peer.uid,
                path.display(),
                if access.group.is_some() {
                    " and its group"
                } else {
                    ""
                }
            )),
            Ok(_) if sessions.load(Ordering::SeqCst) >= MAX_SESSIONS => Some(format!(
                "too many sessions (at most {MAX_SESSIONS}); try again later"
            )),
            Ok(_) => None,
        };
        if let Some(msg) = refusal {
            std::thread::spawn(move || refuse(stream, &msg));
            continue;
        }
        let (backend, actions, sessions) = (backend.clone(), actions.clone(), sessions.clone());
        let peer = peer.ok();
        sessions.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            let result = stream
                .try_clone()
                .context("cloning the connection")
                .and_then(|reader| {
                    let session = Session::new(&*backend, &actions).with_peer(peer);
                    serve_session(reader, &stream, session)
                });
            if let Err(e) = result {
                log::info!("session ended: {e:#}");
            }
            sessions.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

/// Tells a peer why it is turned away. What it already sent is read and dropped
/// first: closing a socket with unread data resets it, and the peer would lose
/// the explanation.
fn refuse(mut stream: UnixStream, why: &str) {
    let _ = send(&mut stream, 0, &error(ErrorKind::Denied, why));
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    let _ = std::io::copy(&mut stream, &mut std::io::sink());
}

fn bind(path: &Path, access: &Access) -> Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "{} exists and is not a socket; remove it or choose another --socket path",
                path.display()
            );
        }
        if UnixStream::connect(path).is_ok() {
            bail!("{}: another server is already listening", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    // No window in which the socket is reachable with looser permissions.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound.with_context(|| format!("binding {}", path.display()))?;
    if let Some(gid) = access.group {
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("giving {} to group {gid}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .with_context(|| format!("setting the mode of {}", path.display()))?;
    }
    Ok(listener)
}
