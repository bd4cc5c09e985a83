//! The cell's init, which holds the cell's PID, mount, UTS, IPC and cgroup
//! namespaces and its Landlock domain.
//!
//! `create` clones the cell's pid 1 straight into new PID, mount, UTS and IPC
//! namespaces and the cell's cgroup (clone3), which execs this binary as
//! `cells ctl --cell-init`. It makes a cgroup namespace rooted at the cell's
//! cgroup, binds the spawn agent's socket (`agent`), builds the root
//! (`rootfs`), sets the host name, enters the cell's user namespace when the
//! cell has an id range ([`become_unprivileged`]), scopes itself with
//! Landlock (`landlock`), reports `ok` (or `error: …`) on stdout and becomes
//! the cell's init: it forks every process that enters the cell, reaps
//! orphans and samples telemetry until `destroy` kills it.
//!
//! The user namespace comes last, after every mount, as a step down: the
//! mount, PID, UTS and cgroup namespaces stay owned by the host's user
//! namespace, so nothing in the cell, whatever it holds in its own user
//! namespace, can mount, change the host name or act on the namespaces
//! themselves. The IPC namespace is made inside it (the cell's root keeps
//! the SysV IPC privileges of its profile over its own objects).

use super::agent::init::{listen, Agent};
use super::enter::Confinement;
use super::state::CellRecord;
use super::sys::{last_error, open_dir, pipe, CloneArgs, CLONE_INTO_CGROUP};
use super::{landlock, rootfs, telemetry};
use crate::fs::pseudo::ProcStat;
use crate::kernel::{IdRange, Limit, Profile, Rlimits};
use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::io::{BufRead, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The hidden `cellctl` argument that runs the cell init.
pub const INIT_COMMAND: &str = "--cell-init";

/// The state letter and start time (clock ticks after boot) of a process,
/// fields 3 and 22 of its stat.
fn state_and_start(pid: i32) -> Option<(char, u64)> {
    let stat = ProcStat::read(pid).ok()?;
    Some((stat.state()?, stat.number(22)?))
}

/// The start time of a process (clock ticks after boot).
pub fn start_time(pid: i32) -> Option<u64> {
    state_and_start(pid).map(|(_, start)| start)
}

/// True while the recorded init (pid and start time) runs; a zombie init
/// (killed, not yet reaped by its parent) is dead.
pub fn init_alive(cell: &CellRecord) -> bool {
    alive(cell.init_pid, cell.init_start)
}

/// True while the process `pid` that started at `start` runs; a zombie is dead.
pub fn alive(pid: i32, start: u64) -> bool {
    matches!(state_and_start(pid), Some((state, s)) if s == start && state != 'Z' && state != 'X')
}

/// A pidfd for the recorded init while it exists (running or a zombie),
/// checked against its start time so a recycled pid is never taken for it.
fn recorded_pidfd(cell: &CellRecord) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, cell.init_pid, 0) } as libc::c_int;
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    (start_time(cell.init_pid) == Some(cell.init_start)).then_some(fd)
}

/// A pidfd for a cell's running init.
pub fn init_pidfd(cell: &CellRecord) -> Result<OwnedFd> {
    match recorded_pidfd(cell) {
        Some(fd) if init_alive(cell) => Ok(fd),
        _ => bail!(
            "the init process (pid {}) of cell '{}' is gone",
            cell.init_pid,
            cell.name
        ),
    }
}

/// Kills a cell's init (and with it the PID namespace) and waits until it has
/// exited, so its cgroup can be removed at once. Reaps it when it is our child
/// (a long-running caller that created the cell), also after it died on its own.
pub fn stop_init(cell: &CellRecord) -> Result<()> {
    if let Some(ending) = kill_init(cell)? {
        ending.wait();
    }
    Ok(())
}

/// Kills a cell's init without waiting for its exit, which [`Ending::wait`]
/// does: the caller may do work of its own meanwhile (the exit tears down
/// the cell's namespaces). `None`: no such init any more.
pub fn kill_init(cell: &CellRecord) -> Result<Option<Ending>> {
    let Some(pidfd) = recorded_pidfd(cell) else {
        return Ok(None);
    };
    let killed = init_alive(cell);
    // SAFETY: a signal through a pidfd we hold.
    if killed
        && unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        } != 0
    {
        return last_error(format!("killing the init of cell '{}'", cell.name));
    }
    Ok(Some(Ending { pidfd, killed }))
}

/// An init [`kill_init`] ended (or found dead), still to be waited for.
pub struct Ending {
    pidfd: OwnedFd,
    killed: bool,
}

impl Ending {
    /// Waits until the init has exited (5 s at most) and reaps it when it
    /// is our child.
    pub fn wait(self) {
        // SAFETY: poll and waitid on a pidfd we hold; waitid reaps only that
        // process, and only if it is our child.
        unsafe {
            if self.killed {
                let mut pfd = libc::pollfd {
                    fd: self.pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                libc::poll(&mut pfd, 1, 5_000);
            }
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PIDFD,
                self.pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            );
        }
    }
}

/// What the cell init needs; sent on its stdin.
pub struct InitSpec<'a> {
    /// The `cells` executable, which runs the init.
    pub program: &'a Path,
    pub root: &'a Path,
    pub hostname: &'a str,
    pub cgroup: &'a Path,
    /// The cell's cgroup v1 groups, joined before the init runs anything.
    pub v1_groups: &'a [PathBuf],
    /// The cell's runtime directory: the telemetry sample and the agent's
    /// socket.
    pub sample_dir: &'a Path,
    pub profile: Profile,
    pub rlimits: Rlimits,
    pub dev_limits: rootfs::DevLimits,
    /// Killed when the creating thread ends (`CellSpec::ephemeral`).
    pub die_with_creator: bool,
    /// The host ids of the cell's user namespace; `None`: host ids.
    pub ids: Option<IdRange>,
}

/// What the init says once it has made the cell's user namespace: the
/// creator then writes its id maps and sends [`MAPPED`].
const USERNS_MADE: &str = "userns";
/// The creator's answer: the maps are written.
const MAPPED: u8 = b'\n';

/// Writes the cell's id maps into the user namespace the init `pid` made.
/// Host root writes them: the cell gets exactly its range, no more.
fn write_id_maps(pid: i32, ids: &IdRange) -> Result<()> {
    let line = ids.map_line();
    for map in ["uid_map", "gid_map"] {
        let path = format!("/proc/{pid}/{map}");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .with_context(|| format!("writing the cell's {map} ({})", line.trim()))?;
    }
    Ok(())
}

/// A limit as a setup field: the number, or empty for unlimited.
fn limit_field(l: Limit) -> String {
    l.map(|v| v.to_string()).unwrap_or_default()
}

fn parse_limit(b: &[u8]) -> Option<Limit> {
    if b.is_empty() {
        return Some(None);
    }
    std::str::from_utf8(b).ok()?.parse().ok().map(Some)
}

/// Whether the program allowed a forked init ([`allow_forked_init`]).
static FORKED_INIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// See `kernel::allow_forked_init`.
pub fn allow_forked_init() {
    FORKED_INIT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Where this process's command line lives (`/proc/self/stat` fields 48
/// and 49), if it runs one thread (field 20) and the init's command line
/// fits there. Only then may a fork of it go on running Rust code without
/// exec: a thread the fork leaves behind could hold a lock (the allocator's,
/// stdio's) forever in the copy.
fn cmdline_if_single_threaded() -> Option<std::ops::Range<usize>> {
    let stat = ProcStat::read("self").ok()?;
    let field = |n: usize| usize::try_from(stat.number(n)?).ok();
    if field(20)? != 1 {
        return None;
    }
    let area = field(48)?..field(49)?;
    (area.len() >= INIT_CMDLINE.len()).then_some(area)
}

/// The command line the init shows (`/proc/1/cmdline` is readable in the cell
/// whatever the init's dumpable flag): the exec'd init's own.
const INIT_CMDLINE: &[u8] = b"cells\0ctl\0--cell-init\0";

/// The forked init's first steps, in the child of clone3 (stdio already on
/// the creator's pipes): what exec would have done for it. Non-dumpable at
/// once (its memory is a copy of the creator's: only host root may read it);
/// the creator's command line (which names host paths) overwritten in place
/// with the init's, its environment zeroed, its signal handlers,
/// descriptors and journal dropped; then the init runs as the exec'd one
/// does.
///
/// SAFETY: only in the child of a fork of a single-threaded process;
/// `cmdline` is that process's argument area, at least as long as
/// [`INIT_CMDLINE`].
unsafe fn forked_init(cmdline: std::ops::Range<usize>) -> ! {
    libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    let area = cmdline.start as *mut u8;
    std::ptr::write_bytes(area, 0, cmdline.len());
    std::ptr::copy_nonoverlapping(INIT_CMDLINE.as_ptr(), area, INIT_CMDLINE.len());
    clear_environment();
    // Signal dispositions are reset by `init_main`, as for the exec'd init.
    libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    // State the creator set up for itself stays behind too, as with exec.
    crate::journal::silence();
    let code = std::panic::catch_unwind(|| init_main(&[])).unwrap_or(127);
    libc::_exit(code)
}

/// Zeroes the environment strings (a copy of the creator's) and empties it.
///
/// SAFETY: single-threaded; nothing holds a pointer into the environment.
unsafe fn clear_environment() {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    let mut entry = environ;
    while !entry.is_null() && !(*entry).is_null() {
        let s = *entry;
        std::ptr::write_bytes(s, 0, libc::strlen(s));
        entry = entry.add(1);
    }
    environ = std::ptr::null_mut();
}

/// What the child of the init's clone needs, prepared before it runs.
struct InitChild<'a> {
    die_with_creator: bool,
    v1_tasks: &'a [std::fs::File],
    /// Its stdin, stdout and stderr to be.
    setup: libc::c_int,
    report: libc::c_int,
    null: libc::c_int,
    /// Become the init in place (see [`forked_init`]) rather than exec.
    in_place: Option<std::ops::Range<usize>>,
    exe: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
}

/// Clones the init (see [`start_init`]); its pid, or -1 with errno set.
/// An init that execs is cloned as vfork ([`clone3_vfork`]): a fork of a
/// parallel apply, a process of several threads and megabytes, costs it
/// the copy of its page tables and then a copy-on-write fault, with a TLB
/// flush on every core, for each page its threads write next. An init that
/// goes on without exec needs a copy of the creator's memory: a fork.
///
/// SAFETY: see [`init_child`].
unsafe fn clone_init(args: &mut CloneArgs, child: &InitChild) -> libc::c_long {
    #[cfg(target_arch = "x86_64")]
    if child.in_place.is_none() {
        unsafe extern "C" fn run(child: *mut libc::c_void) -> ! {
            init_child(&*(child as *const InitChild))
        }
        let pid = super::sys::clone3_vfork(args, run, child as *const InitChild as *mut _);
        // Kernels that refuse the combination get the fork.
        if pid >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return pid;
        }
        args.flags &= !((libc::CLONE_VM | libc::CLONE_VFORK) as u64);
        args.stack = 0;
        args.stack_size = 0;
    }
    // clone3 without CLONE_VM is a fork.
    let pid = libc::syscall(
        libc::SYS_clone3,
        args as *mut CloneArgs,
        std::mem::size_of::<CloneArgs>(),
    );
    if pid == 0 {
        init_child(child);
    }
    pid
}

/// The init's first steps, in the child of the clone, before it execs (or
/// becomes the init in place).
///
/// SAFETY: only in the child of [`clone_init`]; async-signal-safe calls
/// on what `child` holds.
unsafe fn init_child(child: &InitChild) -> ! {
    if child.die_with_creator {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    // Before it forks: every process of the cell descends from it or
    // joins these groups itself (`enter`).
    if super::limits::join_v1(child.v1_tasks).is_err() {
        let msg = b"error: joining the cell's cgroup v1 groups\n";
        libc::write(child.report, msg.as_ptr().cast(), msg.len());
        libc::_exit(126);
    }
    libc::setsid();
    libc::dup2(child.setup, 0);
    libc::dup2(child.report, 1);
    libc::dup2(child.null, 2);
    if let Some(cmdline) = child.in_place.clone() {
        forked_init(cmdline);
    }
    libc::execve(child.exe, child.argv, child.envp);
    libc::_exit(127);
}

/// Starts a cell's init; returns its host pid once the root is in place.
/// `meanwhile` runs while the init sets up, given its pid (the init is in the
/// cell's cgroup by then): work of the caller's that need not wait for it. An
/// error from it ends the init.
///
/// clone3 creates the init directly as pid 1 of new PID, mount, UTS and IPC
/// namespaces and inside the cell's cgroup (no migration afterwards, which
/// would cost an RCU grace period), then it execs this binary. The setup
/// travels on its stdin rather than argv: the cell can read its init's command
/// line, and host paths are none of its business.
pub fn start_init(spec: &InitSpec, meanwhile: impl FnOnce(i32) -> Result<()>) -> Result<i32> {
    let cgroup = open_dir(spec.cgroup)?;
    let v1_tasks = super::limits::open_v1_tasks(spec.v1_groups)?;
    let (setup_r, setup_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    let exe = CString::new(spec.program.as_os_str().as_bytes()).context("init program")?;
    let init_arg = CString::new(INIT_COMMAND).expect("static");
    let argv = [
        c"cells".as_ptr(),
        c"ctl".as_ptr(),
        init_arg.as_ptr(),
        std::ptr::null(),
    ];
    let envp = [std::ptr::null::<libc::c_char>()];
    // With a user namespace the init makes the IPC namespace inside it.
    let ipc = if spec.ids.is_some() {
        0
    } else {
        libc::CLONE_NEWIPC
    };
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP
            | (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | ipc) as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // Exec costs a millisecond (loading and relocating the binary, the
    // runtime's start) on the path of every create; a creator that allows it
    // (cellctl) and is single-threaded is forked into the init instead.
    let in_place = FORKED_INIT
        .load(std::sync::atomic::Ordering::Relaxed)
        .then(cmdline_if_single_threaded)
        .flatten();
    let child = InitChild {
        die_with_creator: spec.die_with_creator,
        v1_tasks: &v1_tasks,
        setup: setup_r.as_raw_fd(),
        report: report_w.as_raw_fd(),
        null: null.as_raw_fd(),
        in_place,
        exe: exe.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
    };
    // SAFETY: the child only makes async-signal-safe calls on `child`, which
    // lives until the clone returns, then execs or _exits, or, forked from a
    // single-threaded process, becomes the init (`forked_init`).
    let pid = unsafe { clone_init(&mut args, &child) };
    if pid < 0 {
        return last_error("creating the cell init (clone3)");
    }
    let pid = pid as i32;
    drop((setup_r, report_w));
    let mut setup = Vec::new();
    let limits = [
        limit_field(spec.rlimits.nofile),
        limit_field(spec.rlimits.address_space),
        limit_field(spec.rlimits.core),
    ];
    // The v1 groups the init's children join (one path a line).
    let member_groups = super::limits::member_groups(spec.v1_groups);
    let members = member_groups
        .iter()
        .map(|g| g.as_os_str().as_bytes())
        .collect::<Vec<_>>()
        .join(&b'\n');
    let (pty_max, shm_size) = (
        spec.dev_limits.pty_max.to_string(),
        spec.dev_limits.shm_size.to_string(),
    );
    let ids = spec.ids.map(|r| r.to_string()).unwrap_or_default();
    for field in [
        spec.root.as_os_str().as_bytes(),
        spec.hostname.as_bytes(),
        spec.cgroup.as_os_str().as_bytes(),
        spec.sample_dir.as_os_str().as_bytes(),
        spec.profile.as_str().as_bytes(),
        limits[0].as_bytes(),
        limits[1].as_bytes(),
        limits[2].as_bytes(),
        pty_max.as_bytes(),
        shm_size.as_bytes(),
        &members,
        ids.as_bytes(),
        if spec.die_with_creator { b"1" } else { b"" },
    ] {
        setup.extend_from_slice(field);
        setup.push(0);
    }
    // Length first: the pipe stays open for the answer to the user namespace.
    let mut setup_w = std::fs::File::from(setup_w);
    let sent = setup_w
        .write_all(&(setup.len() as u64).to_le_bytes())
        .and_then(|()| setup_w.write_all(&setup));
    let alongside = meanwhile(pid);
    let failed = |why: anyhow::Error| -> Result<i32> {
        // SAFETY: the init is our child and has exited (or is exiting) on its own.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        Err(why)
    };
    if let Err(e) = sent.context("sending the cell init its setup") {
        return failed(e);
    }
    let mut report = std::io::BufReader::new(std::fs::File::from(report_r));
    let mut setup_w = Some(setup_w);
    loop {
        let mut line = String::new();
        if let Err(e) = report
            .read_line(&mut line)
            .context("reading the cell init's report")
        {
            return failed(e);
        }
        match (line.trim_end(), spec.ids) {
            ("ok", _) => {
                return match alongside {
                    Ok(()) => Ok(pid),
                    Err(e) => failed(e),
                }
            }
            ("", _) => return failed(anyhow::anyhow!("the cell init exited during setup")),
            (USERNS_MADE, Some(ids)) => {
                let answered = write_id_maps(pid, &ids).and_then(|()| {
                    let mut w = setup_w.take().context("the cell init asked twice")?;
                    w.write_all(&[MAPPED]).context("answering the cell init")
                });
                if let Err(e) = answered {
                    return failed(e);
                }
            }
            (other, _) => {
                return failed(anyhow::anyhow!(
                    "{}",
                    other.strip_prefix("error: ").unwrap_or(other)
                ))
            }
        }
    }
}

/// What the init reads from its stdin.
struct Setup {
    root: PathBuf,
    hostname: String,
    cgroup: PathBuf,
    sample_dir: PathBuf,
    profile: Profile,
    rlimits: Rlimits,
    dev_limits: rootfs::DevLimits,
    /// The v1 groups every process the init forks joins (`limits::MEMBERS`).
    members: Vec<PathBuf>,
    ids: Option<IdRange>,
    /// An ephemeral cell (`InitSpec::die_with_creator`): the init ends with
    /// its first command. Absent in an older creator's setup.
    ephemeral: bool,
}

fn parse_setup(input: &[u8]) -> Option<Setup> {
    let fields: Vec<&[u8]> = input.split(|&b| b == 0).collect();
    let [root, hostname, cgroup, sample_dir, profile, nofile, address_space, core, pty_max, shm_size, members, ids, rest @ ..] =
        &fields[..]
    else {
        return None;
    };
    let ephemeral = match rest {
        [_] => false,
        [ephemeral, _] => !ephemeral.is_empty(),
        _ => return None,
    };
    let number = |b: &[u8]| std::str::from_utf8(b).ok()?.parse().ok();
    let path = |b: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(b));
    Some(Setup {
        root: path(root),
        hostname: String::from_utf8_lossy(hostname).into_owned(),
        cgroup: path(cgroup),
        sample_dir: path(sample_dir),
        profile: std::str::from_utf8(profile).ok()?.parse().ok()?,
        rlimits: Rlimits {
            nofile: parse_limit(nofile)?,
            address_space: parse_limit(address_space)?,
            core: parse_limit(core)?,
        },
        dev_limits: rootfs::DevLimits {
            pty_max: number(pty_max)?,
            shm_size: std::str::from_utf8(shm_size).ok()?.parse().ok()?,
        },
        members: members
            .split(|&b| b == b'\n')
            .filter(|p| !p.is_empty())
            .map(path)
            .collect(),
        ids: match *ids {
            [] => None,
            text => Some(std::str::from_utf8(text).ok()?.parse().ok()?),
        },
        ephemeral,
    })
}

/// The init's end of one of the creator's pipes (its stdin or stdout), used
/// directly: a forked init must not read or write through buffers that the
/// creator's `std::io` may have filled.
fn creator_pipe(fd: std::os::fd::RawFd) -> std::mem::ManuallyDrop<std::fs::File> {
    // SAFETY: 0 and 1 stay open for the init's whole setup; never closed here.
    std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Reads the setup: its length, then that many bytes (the pipe stays open).
fn read_setup() -> Option<Vec<u8>> {
    let mut stdin = creator_pipe(0);
    let mut len = [0u8; 8];
    stdin.read_exact(&mut len).ok()?;
    let len = usize::try_from(u64::from_le_bytes(len)).ok()?;
    if len > 1 << 20 {
        return None;
    }
    let mut input = vec![0u8; len];
    stdin.read_exact(&mut input).ok()?;
    Some(input)
}

/// Entry of the re-executed binary (`cells ctl --cell-init`), running as pid 1
/// of the cell; the setup arrives NUL-separated on stdin.
pub fn init_main(args: &[String]) -> i32 {
    let input = read_setup().unwrap_or_default();
    let (Some(setup), []) = (parse_setup(&input), args) else {
        eprintln!("cellctl: {INIT_COMMAND}: internal use only");
        return crate::exit::EXIT_FAILURE;
    };
    // Re-executed through /proc/self/exe, the init would show as "exe" in the
    // cell's ps; name it for what it is.
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"cell-init".as_ptr()) };
    default_signals();
    cell_init(&setup)
}

/// Signals the creator ignored (nohup, a shell's background job) would stay
/// ignored in every process of the cell: back to the defaults, once, all 64
/// (through the system call: the C library guards the two it uses itself).
/// SIGPIPE stays ignored here (the runtime's choice); children reset it.
fn default_signals() {
    /// `struct sigaction` as the kernel takes it.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig != libc::SIGPIPE {
            // SAFETY: sets a disposition of this single-threaded process from
            // a valid struct; SIGKILL and SIGSTOP fail harmlessly.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &default as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                )
            };
        }
    }
}

/// The init's step into the cell's user namespace, after the root is built:
///
/// 1. every id becomes the range's owner (`IdRange::owner`, which the cell's
///    map leaves out), keeping the capabilities for one more step;
/// 2. the user namespace is made while still privileged (so hosts that
///    refuse unprivileged user namespaces allow it), owned by that id: what
///    the kernel counts per namespace owner (inotify instances, message
///    queue bytes) is the cell's, not host root's;
/// 3. the creator writes the id maps (`write_id_maps`) and answers;
/// 4. the IPC namespace is made inside it.
///
/// From here on the init holds no capability outside the cell's user
/// namespace and runs as no id the cell has; its file system ids are the
/// cell root's, so the terminals it allocates belong to the cell.
fn become_unprivileged(ids: &IdRange) -> Result<()> {
    let owner = ids.owner();
    // An id change clears the signal an ephemeral cell's init gets when its
    // creator dies (`InitSpec::die_with_creator`): set again at the end.
    let mut death_signal: libc::c_int = 0;
    // SAFETY: credential and namespace calls of this single-threaded process.
    unsafe {
        libc::prctl(
            libc::PR_GET_PDEATHSIG,
            &mut death_signal as *mut libc::c_int,
        );
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return last_error("keeping capabilities across the id change");
        }
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(owner, owner, owner) != 0
            || libc::setresuid(owner, owner, owner) != 0
        {
            return last_error(format!("changing to the cell's owner id {owner}"));
        }
        super::caps::raise_permitted()
            .context("raising the capabilities kept across the id change")?;
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            return last_error("making the cell's user namespace");
        }
    }
    writeln!(creator_pipe(1), "{USERNS_MADE}").context("asking for the id maps")?;
    let mut answer = [0u8; 1];
    creator_pipe(0)
        .read_exact(&mut answer)
        .context("waiting for the id maps")?;
    if answer[0] != MAPPED {
        bail!("the creator sent no id maps");
    }
    // SAFETY: as above.
    unsafe {
        if libc::unshare(libc::CLONE_NEWIPC) != 0 {
            return last_error("making the cell's IPC namespace");
        }
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
        // Files the init makes (its samples, the terminals it hands out)
        // are the cell root's; it still runs as the owner id.
        libc::setfsgid(0);
        libc::setfsuid(0);
        if libc::setfsuid(u32::MAX) != 0 || libc::setfsgid(u32::MAX) != 0 {
            bail!("changing the init's file system ids to the cell's root");
        }
        if death_signal != 0 {
            libc::prctl(libc::PR_SET_PDEATHSIG, death_signal);
        }
    }
    Ok(())
}

/// Pid 1 of the cell: set up, report, then serve as the cell's spawn agent.
fn cell_init(setup: &Setup) -> ! {
    let prepare = || -> Result<Agent> {
        // The cell sees its own cgroup as the root of the hierarchy.
        // SAFETY: unshare of this single-threaded process.
        if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
            return last_error("making the cgroup namespace");
        }
        // Opened before pivot_root: the sampler writes to the host's run
        // directory and reads the cgroup through these descriptors only, and
        // the agent's socket lives in that directory.
        let samples = open_dir(&setup.sample_dir)?;
        let cg = open_dir(&setup.cgroup)?;
        let listener = listen(&samples)?;
        let members = super::limits::open_v1_tasks(&setup.members)?;
        rootfs::enter(&setup.root, &setup.dev_limits)?;
        let ptys = open_dir(Path::new("/dev/pts")).context("opening the cell's /dev/pts")?;
        let hostname = &setup.hostname;
        // SAFETY: plain system calls with valid buffers.
        unsafe {
            if libc::sethostname(hostname.as_ptr().cast(), hostname.len()) != 0 {
                return last_error("setting the host name");
            }
        }
        if let Some(ids) = setup.ids {
            become_unprivileged(&ids)?;
        }
        // Nothing in the cell may ptrace the init or reach its descriptors
        // (after the credentials changed: a change resets this).
        // SAFETY: plain prctl.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            return last_error("making the init non-dumpable");
        }
        // Every process of the cell descends from the init: bounded here once.
        super::limits::bound_shared_pools().context("bounding the shared-pool rlimits")?;
        // Last: everything the init forks from here on shares its domain.
        landlock::scope_self().context("scoping the cell with Landlock")?;
        let agent = Agent::new(
            listener,
            ptys,
            members,
            Confinement::new(setup.profile, &setup.rlimits, setup.ids.is_some()),
            telemetry::Sampler::new(samples, cg),
        );
        Ok(if setup.ephemeral {
            agent.ending_with_first_command()
        } else {
            agent
        })
    };
    let mut out = creator_pipe(1);
    let agent = match prepare() {
        Ok(agent) => agent,
        Err(e) => {
            let _ = writeln!(out, "error: {e:#}");
            // SAFETY: ends this forked child without running the parent's exit handlers.
            unsafe { libc::_exit(1) }
        }
    };
    let _ = writeln!(out, "ok");
    // SAFETY: detach stdio from the creator's pipes and close every descriptor
    // inherited from the creator's caller; keep only the agent's.
    unsafe {
        let mut keep: Vec<u32> = agent.fds().into_iter().map(|fd| fd as u32).collect();
        keep.sort_unstable();
        let mut from = 3u32;
        for fd in keep {
            if fd > from {
                libc::syscall(libc::SYS_close_range, from, fd - 1, 0u32);
            }
            from = fd + 1;
        }
        libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    agent.serve()
}
