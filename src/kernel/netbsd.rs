//! The NetBSD backend: the [`Kernel`] trait over `secmodel_cell`'s sysctl
//! nodes (`security.models.cell.*`), with the structures of `kmod/src/abi.rs`.
//!
//! The kernel enforces everything; this file only speaks the ABI. Entering a
//! cell follows the kernel's rule: chroot to the cell's root first (the kernel
//! checks that the process root *is* the cell root vnode), then write the id to
//! the `id` node, then apply the stored rlimits and drop credentials, then exec.

use super::{
    CellInfo, CellSpec, CellStats, Child, DenyCounters, ExecSpec, FreezeGuard, Kernel, Limit,
    Rlimits, Stdio, Target, WindowSize,
};
use anyhow::{bail, Context, Result};
use secmodel_cell::abi::{self, AbiStruct, DenyScope, Node};
use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

const DEFAULT_PATH: &str = "/bin:/sbin:/usr/bin:/usr/sbin:/usr/pkg/bin:/usr/pkg/sbin";

pub struct NetBsdKernel;

impl NetBsdKernel {
    /// Checks that `secmodel_cell` is loaded and speaks this ABI version.
    pub fn open() -> Result<NetBsdKernel> {
        let mut version = 0u32;
        let mut buf = [0u8; 4];
        let n =
            sysctl(Node::Version, Some(&mut buf), None).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => {
                    anyhow::anyhow!(
                        "secmodel_cell is not loaded (load it with: modload secmodel_cell)"
                    )
                }
                _ => anyhow::Error::new(e).context("reading security.models.cell.version"),
            })?;
        if n == 4 {
            version = u32::from_ne_bytes(buf);
        }
        if version != abi::CELL_ABI_VERSION {
            bail!(
                "secmodel_cell speaks ABI version {version}; this cells binary needs version {}",
                abi::CELL_ABI_VERSION
            );
        }
        Ok(NetBsdKernel)
    }

    fn list_raw(&self) -> Result<Vec<abi::CellInfo>> {
        let entry = std::mem::size_of::<abi::CellInfo>();
        let mut size = sysctl(Node::List, None, None).context("listing cells")?;
        loop {
            // Room for a few cells created between the probe and the read.
            let mut buf = vec![0u8; size + 4 * entry];
            match sysctl(Node::List, Some(&mut buf), None) {
                Ok(n) => {
                    if n % entry != 0 {
                        bail!("listing cells: the kernel returned {n} bytes, not a multiple of {entry} (ABI mismatch)");
                    }
                    return Ok(buf[..n]
                        .chunks_exact(entry)
                        .filter_map(abi::CellInfo::from_bytes)
                        .collect());
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => size = buf.len() * 2,
                Err(e) => return Err(e).context("listing cells"),
            }
        }
    }

    fn resolve(&self, target: &Target) -> Result<abi::CellInfo> {
        let now = uptime_ns();
        self.list_raw()?
            .into_iter()
            .find(|c| {
                let info = to_info(c, now);
                match target {
                    Target::Id(id) => info.id == *id,
                    Target::Name(n) => &info.name == n,
                }
            })
            .ok_or_else(|| anyhow::anyhow!("{target} not found"))
    }
}

impl Kernel for NetBsdKernel {
    fn name(&self) -> &'static str {
        "netbsd"
    }

    fn create(&self, spec: &CellSpec) -> Result<u64> {
        let what = || format!("creating cell '{}'", spec.name);
        let root = spec
            .root
            .to_str()
            .context("the root path is not UTF-8")
            .with_context(what)?;
        let mut cc = abi::CellCreate::new(&spec.name, root)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(what)?;
        cc.set_profile(spec.profile);
        if let Some(ids) = spec.ids {
            bail!(
                "creating cell '{}': NetBSD cells keep host ids (secmodel_cell decides by cell, \
                 not by uid); the id range {ids} applies on Linux only",
                spec.name
            );
        }
        if !spec.ports.is_empty() {
            cc.set_ports(&spec.ports)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(what)?;
        }
        if let Some(pct) = spec.limits.cpu_percent {
            bail!(
                "creating cell '{}': --cpu {pct} cannot be enforced on NetBSD: the kernel has no \
                 CPU share or quota for a group of processes (leave the CPU limit unset)",
                spec.name
            );
        }
        let stored = |l: Limit| l.unwrap_or(abi::CELL_RLIMIT_INFINITY);
        if spec.rlimits.nofile.is_some() {
            cc.set_rlimit_nofile(stored(spec.rlimits.nofile));
        }
        // Memory is bounded per process: the stored RLIMIT_AS is applied at
        // every entry and the kernel refuses to let a member raise it.
        if let Some(address_space) = memory_limit(spec) {
            cc.set_rlimit_as(address_space);
        }
        if let Some(n) = spec.limits.maxproc {
            let n = u32::try_from(n).ok().filter(|&n| n > 0).with_context(|| {
                format!(
                    "creating cell '{}': the process limit {n} must be 1 to 4294967295",
                    spec.name
                )
            })?;
            cc.set_maxproc(n)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(what)?;
        }
        // No storage under an arbitrary root enforces a size here: refuse,
        // rather than accept a limit nothing holds (cellmgr refuses it too).
        if let Some(bytes) = spec.limits.disk {
            bail!(
                "creating cell '{}': --disk {bytes} cannot be enforced on NetBSD: put the cell's \
                 writable storage on a file system of that size (FFS quotas or a per-cell file \
                 system) and leave the disk limit unset",
                spec.name
            );
        }
        if spec.rlimits.core.is_some() {
            cc.set_rlimit_core(stored(spec.rlimits.core));
        }
        let mut out = [0u8; std::mem::size_of::<abi::CellCreate>()];
        sysctl(Node::Create, Some(&mut out), Some(cc.as_bytes()))
            .map_err(|e| explain(e, Node::Create))
            .with_context(what)?;
        let reply = abi::CellCreate::from_bytes(&out)
            .context("short reply")
            .with_context(what)?;
        Ok(u64::from(reply.cc_id))
    }

    fn destroy(&self, target: &Target) -> Result<()> {
        let cell = self.resolve(target)?;
        sysctl(Node::Destroy, None, Some(&cell.ci_id.to_ne_bytes()))
            .map_err(|e| explain(e, Node::Destroy))
            .with_context(|| format!("destroying {target}"))?;
        Ok(())
    }

    fn list(&self) -> Result<Vec<CellInfo>> {
        let now = uptime_ns();
        Ok(self.list_raw()?.iter().map(|c| to_info(c, now)).collect())
    }

    fn stats(&self) -> Result<Vec<CellStats>> {
        let now = uptime_ns();
        Ok(self
            .list_raw()?
            .iter()
            .map(|c| CellStats {
                info: to_info(c, now),
                cpu1s: c.ci_cpu_ticks_1s,
                cpu10s: c.ci_cpu_ticks_10s,
                memory: c.ci_memory_current,
                denies: DenyCounters {
                    process: c.denies(DenyScope::Process),
                    system: c.denies(DenyScope::System),
                    network: c.denies(DenyScope::Network),
                    machdep: c.denies(DenyScope::Machdep),
                    device: c.denies(DenyScope::Device),
                    // Reserved-port denials are counted under `network` here.
                    bind: 0,
                },
            })
            .collect())
    }

    fn spawn(&self, target: &Target, spec: &ExecSpec, stdio: [Stdio; 3]) -> Result<Child> {
        let Some(program) = spec.argv.first() else {
            bail!("no command given");
        };
        let cell = self.resolve(target)?;
        let info = to_info(&cell, 0);
        let entry = Entry {
            id: cell.ci_id,
            id_mib: Mib::of(Node::Id).context("looking up security.models.cell.id")?,
            root: CString::new(info.root.as_os_str().as_bytes()).context("cell root")?,
            cwd: CString::new(
                spec.cwd
                    .as_deref()
                    .unwrap_or("/".as_ref())
                    .as_os_str()
                    .as_bytes(),
            )
            .context("working directory")?,
            rlimits: rlimits_to_set(&info.rlimits, spec.apply_rlimits),
            groups: spec.groups.clone(),
            ids: match (spec.uid, spec.gid) {
                (Some(u), Some(g)) => Some((u, g)),
                (Some(u), None) => Some((u, u)),
                (None, Some(_)) => bail!("a group id needs a user id"),
                (None, None) => None,
            },
        };
        let mut cmd = Command::new(program);
        cmd.args(&spec.argv[1..])
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .env("HOME", "/");
        if let Some(term) = std::env::var_os("TERM") {
            cmd.env("TERM", term);
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        let master = match spec.terminal {
            Some(size) => {
                let (master, slave) = open_terminal(size)?;
                cmd.stdin(slave.try_clone()?)
                    .stdout(slave.try_clone()?)
                    .stderr(slave);
                Some(master)
            }
            None => {
                let [stdin, stdout, stderr] = stdio.map(std::process::Stdio::from);
                cmd.stdin(stdin).stdout(stdout).stderr(stderr);
                None
            }
        };
        let terminal = master.is_some();
        // SAFETY: `enter` makes only async-signal-safe system calls.
        unsafe { cmd.pre_exec(move || entry.enter(terminal)) };
        let child = cmd
            .spawn()
            .with_context(|| format!("running {program} in cell '{}'", info.name))?;
        let mut child = Child::from_std(child);
        child.terminal = master.map(std::fs::File::from);
        Ok(child)
    }

    /// secmodel_cell has no freezer, and stopping every member with SIGSTOP
    /// would not hold (a member not yet stopped can SIGCONT the others, a fork
    /// can outrun the sweep), so NetBSD refuses: `backup create --quiesce`
    /// then tells the operator to stop the cell for the copy.
    fn freeze(&self, target: &Target) -> Result<FreezeGuard> {
        bail!("NetBSD cannot freeze a cell (secmodel_cell has no freezer): stop {target} for the backup instead")
    }
}

/// Everything the child needs to enter the cell, prepared before fork.
struct Entry {
    id: abi::CellId,
    id_mib: Mib,
    root: CString,
    cwd: CString,
    rlimits: Vec<(libc::c_int, u64)>,
    groups: Vec<u32>,
    ids: Option<(u32, u32)>,
}

/// A new terminal of this size: (master, slave).
fn open_terminal(size: WindowSize) -> Result<(OwnedFd, OwnedFd)> {
    let mut ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: size.xpixel,
        ws_ypixel: size.ypixel,
    };
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty fills two descriptors; the name and termios are optional.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut ws,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("allocating a terminal");
    }
    // SAFETY: fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) })
}

impl Entry {
    /// Runs in the child between fork and exec (after stdio is in place). The
    /// order is the kernel's rule: a session of its own (with its terminal as
    /// the controlling one), chroot, enter, limits, credentials.
    fn enter(&self, terminal: bool) -> io::Result<()> {
        // SAFETY: plain system calls on data prepared before fork.
        unsafe {
            check(libc::setsid())?;
            if terminal {
                check(libc::ioctl(0, libc::TIOCSCTTY, 0))?;
            }
            check(libc::chroot(self.root.as_ptr()))?;
            check(libc::chdir(c"/".as_ptr()))?;
            let id = self.id.to_ne_bytes();
            check(libc::sysctl(
                self.id_mib.0.as_ptr(),
                self.id_mib.0.len() as libc::c_uint,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                id.as_ptr().cast(),
                id.len(),
            ))?;
            for &(resource, value) in &self.rlimits {
                let lim = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                check(libc::setrlimit(resource, &lim))?;
            }
            check(libc::chdir(self.cwd.as_ptr()))?;
            if let Some((uid, gid)) = self.ids {
                check(libc::setgroups(
                    self.groups.len() as libc::c_int,
                    self.groups.as_ptr(),
                ))?;
                check(libc::setgid(gid))?;
                check(libc::setuid(uid))?;
            }
        }
        Ok(())
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A resolved sysctl name, so the child does not resolve names after fork.
struct Mib(Vec<libc::c_int>);

impl Mib {
    fn of(node: Node) -> io::Result<Mib> {
        let name = CString::new(node.path()).expect("node names have no NUL");
        let mut mib = [0 as libc::c_int; 8];
        let mut len: libc::size_t = mib.len();
        // SAFETY: `mib` has room for `len` entries.
        check(unsafe { libc::sysctlnametomib(name.as_ptr(), mib.as_mut_ptr(), &mut len) })?;
        Ok(Mib(mib[..len].to_vec()))
    }
}

/// One sysctl call by name: reads into `old` (or probes the size when `None`)
/// and writes `new`. Returns the length the kernel reports.
fn sysctl(node: Node, old: Option<&mut [u8]>, new: Option<&[u8]>) -> io::Result<usize> {
    let name = CString::new(node.path()).expect("node names have no NUL");
    let (old_ptr, mut old_len) = match old {
        Some(b) => (b.as_mut_ptr().cast::<libc::c_void>(), b.len()),
        None => (std::ptr::null_mut(), 0),
    };
    let (new_ptr, new_len) = match new {
        Some(b) => (b.as_ptr().cast::<libc::c_void>(), b.len()),
        None => (std::ptr::null(), 0),
    };
    // A pure write passes no length pointer; reads and size probes do.
    let old_len_ptr: *mut libc::size_t = if old_ptr.is_null() && !new_ptr.is_null() {
        std::ptr::null_mut()
    } else {
        &mut old_len
    };
    // SAFETY: the buffers outlive the call and their lengths are accurate.
    check(unsafe { libc::sysctlbyname(name.as_ptr(), old_ptr, old_len_ptr, new_ptr, new_len) })?;
    Ok(old_len)
}

/// Adds what the errno means for this node (see secmodel_cell(4)).
fn explain(e: io::Error, node: Node) -> anyhow::Error {
    let hint = match (node, e.raw_os_error()) {
        (_, Some(libc::EPERM)) => "only host root may manage cells",
        (Node::Create, Some(libc::EEXIST)) => {
            "the name is taken or a port is reserved by another cell"
        }
        (Node::Create, Some(libc::EINVAL)) => "the kernel rejected the name, root, ports or limits",
        (Node::Create, Some(libc::ENOTDIR)) => "the root is not a directory",
        (Node::Create, Some(libc::EOVERFLOW)) => "cell ids are used up; reload secmodel_cell",
        (Node::Destroy, Some(libc::EBUSY)) => "the cell still has processes; stop them first",
        (Node::Destroy, Some(libc::ENOENT)) => "no such cell",
        _ => "",
    };
    if hint.is_empty() {
        anyhow::Error::new(e)
    } else {
        anyhow::Error::new(e).context(hint)
    }
}

fn to_info(c: &abi::CellInfo, now_ns: u64) -> CellInfo {
    let text = |b: Result<&[u8], abi::AbiError>| {
        String::from_utf8_lossy(b.unwrap_or_default()).into_owned()
    };
    let limit = |flag: u32, v: u64| -> Limit {
        (c.ci_create_flags & flag != 0 && v != abi::CELL_RLIMIT_INFINITY).then_some(v)
    };
    CellInfo {
        id: u64::from(c.ci_id),
        name: text(c.name()),
        root: text(c.root()).into(),
        profile: c.profile().unwrap_or_default(),
        ports: c.ports().to_vec(),
        rlimits: Rlimits {
            nofile: limit(abi::CELL_CREATE_RLIMIT_NOFILE, c.ci_rlimit_nofile),
            address_space: limit(abi::CELL_CREATE_RLIMIT_AS, c.ci_rlimit_as),
            core: limit(abi::CELL_CREATE_RLIMIT_CORE, c.ci_rlimit_core),
        },
        age: now_ns.saturating_sub(c.ci_created_ns) / 1_000_000_000,
        procs: c.ci_proc_current,
        refs: c.ci_refcount,
        // NetBSD cells keep host ids: secmodel_cell decides by cell.
        ids: None,
        // secmodel_cell has no freezer (see `freeze` below).
        frozen: false,
    }
}

/// The stored RLIMIT_AS of a new cell: the memory limit, or the explicit
/// address-space rlimit, whichever is lower (`None`: neither is set).
fn memory_limit(spec: &CellSpec) -> Option<u64> {
    match (spec.limits.memory, spec.rlimits.address_space) {
        (Some(m), Some(a)) => Some(m.min(a)),
        (m, a) => m.or(a),
    }
}

/// The limits `spawn` sets (soft = hard; unset ones stay). RLIMIT_AS always:
/// it is the cell's memory bound, which the kernel keeps members from
/// raising. NOFILE and CORE only for supervised commands (`all`).
fn rlimits_to_set(r: &Rlimits, all: bool) -> Vec<(libc::c_int, u64)> {
    [
        (libc::RLIMIT_AS, r.address_space, true),
        (libc::RLIMIT_NOFILE, r.nofile, all),
        (libc::RLIMIT_CORE, r.core, all),
    ]
    .into_iter()
    .filter_map(|(res, v, set)| v.filter(|_| set).map(|v| (res, v)))
    .collect()
}

/// Nanoseconds since boot, the clock of `ci_created_ns`.
fn uptime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into `ts`.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}
