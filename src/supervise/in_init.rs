//! The host's side of a supervisor in the cell's init (`CELL_SUPERVISOR=init`,
//! Linux): one process per running cell, the init, instead of an init and a
//! supervisor process.
//!
//! The init runs in the cell's user namespace with the cell root's host id
//! and cannot create files in the root-only run directory. The host makes
//! `<run_dir>/supervise/<cell>/` (0700, owned by that id) and hands the init
//! a descriptor to it; the cell itself has no path to it (its mount namespace
//! has no run directory) and cannot reach the init's descriptors (the init is
//! not dumpable and cell root cannot ptrace or signal it). What the init
//! writes there is read by host root strictly (`fs::host::open_untrusted`):
//! no link followed, regular files only, sizes capped. Everything else the
//! init cannot do from inside the cell the host does at the start: it reads
//! the env file (the init has no path to host files) and connects a socket to
//! the syslog daemon (the daemon's socket is not in the cell).
//!
//! Stop and a rewrite of the status go over the init's agent socket, never as
//! signals: the init installs no handler cell root could trigger.

use super::{environ, SuperviseSpec};
use crate::config::Config;
use crate::kernel::{CellInfo, InitAnswer, InitService, Kernel, Target};
use anyhow::{bail, Context};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a stop waits for past the grace period: the init reaps the service,
/// ends the health check and releases the lock.
const STOP_SLACK: Duration = Duration::from_secs(3);

/// Asks the cell's init to supervise `spec`; returns its pid on the host.
/// `None`: the kernel has no init that supervises (a supervisor process
/// must).
pub fn start(
    cfg: &Config,
    kernel: &dyn Kernel,
    spec: &SuperviseSpec,
    cell: &CellInfo,
) -> anyhow::Result<Option<u32>> {
    let mut spec = spec.clone();
    // The init cannot reach host files: the env file is read here, at
    // each start (the supervisor process reads it at each restart too).
    if let Some(file) = spec.env_file.take() {
        for (k, v) in environ::read_file(&file)? {
            spec.env.retain(|(old, _)| *old != k);
            spec.env.push((k, v));
        }
    }
    let dir = prepare_dir(cfg, cell)?;
    let syslog = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect(&cfg.syslog_socket).map(|()| OwnedFd::from(s)))
        .ok();
    let mut args = spec.to_flags();
    args.push("--".into());
    args.push(cell.name.clone());
    args.extend(spec.argv.iter().cloned());
    let request = InitService::Supervise {
        args,
        rotation: (cfg.log_max_size, cfg.log_max_files),
        rate_limit: cfg.log_rate_limit,
        dir,
        syslog,
        syslog_socket: cfg.syslog_socket.clone(),
    };
    match kernel.init_service(&Target::Id(cell.id), request)? {
        None => Ok(None),
        Some(InitAnswer::Done { supervisor_pid }) => Ok(Some(supervisor_pid)),
        Some(InitAnswer::NoAnswer) => bail!(
            "the init of cell {} did not answer (it is stopped or wedged): restart the cell",
            cell.name
        ),
    }
}

/// Ends the service and the supervision: TERM, `grace`, KILL, as the init
/// carries it out. An init that does not answer in time (stopped, wedged)
/// is ended with the whole cell (`Kernel::destroy_all`): returns true then.
pub fn stop(
    cfg: &Config,
    kernel: &dyn Kernel,
    cell: &str,
    grace: Duration,
) -> anyhow::Result<bool> {
    let target = Target::Name(cell.to_string());
    let request = InitService::Stop {
        grace,
        wait: grace + STOP_SLACK,
    };
    let answer = kernel.init_service(&target, request);
    // What the service's end wrote (and what came before) is in the journal
    // when stop returns.
    if let Err(e) = absorb(cfg, cell) {
        log::warn!("{e:#}");
    }
    match answer? {
        Some(InitAnswer::Done { .. }) => Ok(false),
        Some(InitAnswer::NoAnswer) => {
            log::warn!(
                "the init of cell {cell} did not end its service within {} ms (it is \
                 stopped or wedged); ending the cell",
                (grace + STOP_SLACK).as_millis()
            );
            kernel
                .destroy_all(&target)
                .with_context(|| format!("ending cell {cell}, whose init does not answer"))?;
            Ok(true)
        }
        None => bail!("the {} kernel has no supervising init", kernel.name()),
    }
}

/// Takes the lifecycle events that supervising inits recorded into the
/// journal (`journal::absorb`): those of `cell`, or with `None` of every cell.
pub fn absorb_events(cfg: &Config, cell: Option<&str>) -> anyhow::Result<()> {
    // Only root writes the journal (and reaches the directories).
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    match cell {
        Some(c) => absorb(cfg, c),
        None => {
            let top = cfg.run_dir.join("supervise");
            let entries = match std::fs::read_dir(&top) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e).with_context(|| format!("reading {}", top.display())),
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_dir && crate::names::validate("cell", &name).is_ok() {
                    absorb(cfg, &name)?;
                }
            }
            Ok(())
        }
    }
}

fn absorb(cfg: &Config, cell: &str) -> anyhow::Result<()> {
    let file = super::status::Paths::of_init(&cfg.run_dir, cell)
        .dir
        .join(EVENTS);
    crate::journal::absorb(&file, cell)
}

/// Turns the status an init wrote into the host's view: the init names the
/// service by its pid in the cell's pid namespace, the host by its host pid
/// (`None` when it cannot be matched, never the init's number).
pub fn to_host_view(cfg: &Config, status: &mut super::SupervisorStatus) {
    status.child_pid = status
        .child_pid
        .and_then(|in_cell| host_pid(cfg, status, in_cell));
}

#[cfg(target_os = "linux")]
fn host_pid(cfg: &Config, status: &super::SupervisorStatus, in_cell: u32) -> Option<u32> {
    crate::kernel::linux::host_pid_of_cell_pid(cfg, status.cid, status.supervisor_pid, in_cell)
}

#[cfg(not(target_os = "linux"))]
fn host_pid(_: &Config, _: &super::SupervisorStatus, _: u32) -> Option<u32> {
    None
}

/// The file of the supervision directory where the init records lifecycle
/// events.
pub const EVENTS: &str = "events";

/// Hands the cell's init a new socket connected to the syslog daemon, when
/// one listens: what the init's records say after the daemon restarted.
pub fn reconnect_syslog(cfg: &Config, kernel: &dyn Kernel, cell: &str) -> anyhow::Result<bool> {
    let Some(socket) = connect_syslog(&cfg.syslog_socket) else {
        return Ok(false);
    };
    let request = InitService::Syslog { socket };
    match kernel.init_service(&Target::Name(cell.to_string()), request)? {
        Some(InitAnswer::Done { .. }) => Ok(true),
        Some(InitAnswer::NoAnswer) => bail!("the init of cell {cell} did not answer"),
        None => bail!("the {} kernel has no supervising init", kernel.name()),
    }
}

/// A socket connected to the syslog daemon at `path`, if one listens. A
/// daemon found not listening is not asked again for a second: an apply
/// over 1,000 cells whose statuses all say it is unreachable tried it for
/// each (about 4 % of a no-change apply).
fn connect_syslog(path: &Path) -> Option<OwnedFd> {
    static LAST_REFUSAL: std::sync::Mutex<Option<(PathBuf, Instant)>> = std::sync::Mutex::new(None);
    let mut last = LAST_REFUSAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((refused, at)) = &*last {
        if refused == path && at.elapsed() < Duration::from_secs(1) {
            return None;
        }
    }
    match std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.connect(path).map(|()| s)) {
        Ok(s) => Some(OwnedFd::from(s)),
        Err(_) => {
            *last = Some((path.to_path_buf(), Instant::now()));
            None
        }
    }
}

/// Asks the cell's init to write its status file again.
pub fn write_status(kernel: &dyn Kernel, cell: &str) -> anyhow::Result<()> {
    match kernel.init_service(&Target::Name(cell.to_string()), InitService::WriteStatus)? {
        Some(InitAnswer::Done { .. }) => Ok(()),
        Some(InitAnswer::NoAnswer) => bail!("the init of cell {cell} did not answer"),
        None => bail!("the {} kernel has no supervising init", kernel.name()),
    }
}

/// Makes `<run_dir>/supervise/<cell>/` the init's: 0700, owned by the cell
/// root's host id, and opens it. What an earlier run left in it (logs kept
/// across a restart) is handed over too; anything but a regular file with
/// one link is removed (the host never reads through it).
fn prepare_dir(cfg: &Config, cell: &CellInfo) -> anyhow::Result<OwnedFd> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let top = cfg.run_dir.join("supervise");
    crate::fs::host::private_dir(&top)?;
    let path = top.join(&cell.name);
    match rustix::fs::mkdir(&path, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    }
    let dir = rustix::fs::open(
        &path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", path.display()))?;
    let owner = cell.ids.map_or(0, |r| r.base);
    // SAFETY: an id range's base is below 2^31, never the "no change" -1.
    let (id, gid) = unsafe {
        (
            Some(rustix::fs::Uid::from_raw(owner)),
            Some(rustix::fs::Gid::from_raw(owner)),
        )
    };
    let give = || -> rustix::io::Result<()> {
        rustix::fs::fchown(&dir, id, gid)?;
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o700))?;
        let mut entries = rustix::fs::Dir::read_from(&dir)?;
        let mut names = Vec::new();
        while let Some(entry) = entries.read() {
            let name = entry?.file_name().to_owned();
            if ![&b"."[..], b".."].contains(&name.to_bytes()) {
                names.push(name);
            }
        }
        for name in names {
            let st = rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW)?;
            let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
            let regular = kind == rustix::fs::FileType::RegularFile;
            let stale = [&b"status"[..], b"stop"].contains(&name.to_bytes());
            if regular && st.st_nlink == 1 && !stale {
                rustix::fs::chownat(&dir, &name, id, gid, AtFlags::SYMLINK_NOFOLLOW)?;
            } else {
                let flags = if kind == rustix::fs::FileType::Directory {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                let _ = rustix::fs::unlinkat(&dir, &name, flags);
            }
        }
        Ok(())
    };
    give().with_context(|| format!("handing {} to the cell's init", path.display()))?;
    Ok(dir)
}
