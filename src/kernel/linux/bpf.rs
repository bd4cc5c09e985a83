//! Reserved ports: cgroup `bind4`/`bind6` programs, assembled by hand and loaded
//! through `bpf(2)` (no toolchain, no libbpf).
//!
//! Design: one pair of programs per installation (state directory), attached
//! with `BPF_F_ALLOW_MULTI` at the root of the cgroup2 hierarchy, so every
//! process on the host (cells and host alike) runs it on `bind`. The pair reads
//! the installation's port map, `port -> { owner cell's cgroup id, denied binds }`,
//! which `create` and `destroy` fill and empty:
//!
//! * port not in the map: allow (other installations' programs decide);
//! * caller inside the owner cell's cgroup: allow (normal privilege checks apply);
//! * caller uid 0 and in no cell of any installation: allow (host root bypasses
//!   reservations);
//! * otherwise add one to the port's counter and deny (EPERM).
//!
//! The pair is attached when the first port-reserving cell is created and
//! detached when the last one goes, so nothing that denies binds outlives the
//! cells, and a bind on the host runs one program per installation that has
//! reserved ports, however many cells it has. The kernel allows 64 programs per
//! attach point (`BPF_CGROUP_MAX_PROGS`), shared with everything else on the
//! host: that bounds the installations with reserved ports, not the cells.
//! Installations (parallel test runs) own separate pairs and maps, so they
//! coexist without pinning anything in bpffs. The attachment survives the
//! creating process (the cgroup holds the programs, the programs hold the map);
//! later commands find them again by the ids in the cell table. A cell's
//! `DENY_BIND` is the sum of its ports' counters.
//!
//! After a crash (see the backend's `create` and `teardown`): the ids are
//! recorded before the pair is attached, and a recorded pair that is not
//! attached is replaced; a cell's ports are removed after its processes, so a
//! crash in between leaves a dead cell whose clean-up removes them; ports a
//! crashed `create` entered for a cell it never recorded are swept by the next
//! `create` (it finds that cell's cgroup left over).

use super::state::BindGuardIds;
use anyhow::{bail, Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;

const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_F_NO_PREALLOC: u32 = 1;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
pub const BPF_CGROUP_INET4_BIND: u32 = 8;
pub const BPF_CGROUP_INET6_BIND: u32 = 9;
const BPF_F_ALLOW_MULTI: u32 = 2;
/// Most programs one attach point takes (`BPF_CGROUP_MAX_PROGS`).
const MAX_ATTACHED: usize = 64;
/// Most ports one installation reserves: the port map's size. Its buckets are
/// allocated up front (16 bytes each), which costs time at every first
/// port-reserving create: 4096 takes ~30 us, all 65535 ports ~400 us.
pub const MAX_RESERVED_PORTS: usize = 4096;

const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_GET_CURRENT_UID_GID: i32 = 15;
const HELPER_GET_CURRENT_ANCESTOR_CGROUP_ID: i32 = 123;
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// Offset of `user_port` (network byte order) in `struct bpf_sock_addr`.
const USER_PORT: i16 = 24;

/// A port map entry: the owner cell's cgroup id and the binds denied so far.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct PortEntry {
    owner: u64,
    denied: u64,
}
const OWNER: i16 = 0;
const DENIED: i16 = 8;

/// The map key of a port: `user_port` as the program loads it.
fn key(port: u16) -> u32 {
    u32::from(port.to_be())
}

/// One eBPF instruction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | src << 4,
        off,
        imm,
    }
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R6: u8 = 6;
const R10: u8 = 10;

fn mov64_reg(dst: u8, src: u8) -> Insn {
    insn(0xbf, dst, src, 0, 0)
}
fn mov64_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
/// `dst = (u32) dst`: keeps the low half (the uid of `get_current_uid_gid`).
fn mov32_self(dst: u8) -> Insn {
    insn(0xbc, dst, dst, 0, 0)
}
fn add64_imm(dst: u8, imm: i32) -> Insn {
    insn(0x07, dst, 0, 0, imm)
}
fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x61, dst, src, off, 0)
}
fn ldx_dw(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x79, dst, src, off, 0)
}
fn stx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x63, dst, src, off, 0)
}
fn atomic_add64(dst: u8, src: u8, off: i16) -> Insn {
    insn(0xdb, dst, src, off, 0)
}
fn ld_imm64(dst: u8, src: u8, v: u64) -> [Insn; 2] {
    [
        insn(0x18, dst, src, 0, v as u32 as i32),
        insn(0, 0, 0, 0, (v >> 32) as u32 as i32),
    ]
}
fn jeq_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x15, dst, 0, off, imm)
}
fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x55, dst, 0, off, imm)
}
fn jeq_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x1d, dst, src, off, 0)
}
fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x5d, dst, src, off, 0)
}
fn call(helper: i32) -> Insn {
    insn(0x85, 0, 0, 0, helper)
}
fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}

/// Where an installation's cells sit in the cgroup2 hierarchy, as BPF helpers
/// see it (every cell of an installation is at the same level).
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub cell_level: u32,
    /// The `cells` cgroup every cell on the host lives under.
    pub cells_id: u64,
    pub cells_level: u32,
}

/// Builds the bind program. Jumps are relative to the next instruction.
fn program(place: Place, ports_map_fd: i32) -> Vec<Insn> {
    // Look the port up; the key lives on the stack.
    let mut p = vec![ldx_w(R2, R1, USER_PORT), stx_w(R10, R2, -4)];
    p.extend(ld_imm64(R1, BPF_PSEUDO_MAP_FD, ports_map_fd as u32 as u64));
    p.extend([
        mov64_reg(R2, R10),
        add64_imm(R2, -4),
        call(HELPER_MAP_LOOKUP_ELEM),
    ]);
    let allow_unreserved = p.len();
    p.push(jeq_imm(R0, 0, 0)); // patched to ALLOW
                               // Reserved: is the caller a member of the owner cell? (r6 survives calls.)
    p.extend([
        mov64_reg(R6, R0),
        mov64_imm(R1, place.cell_level as i32),
        call(HELPER_GET_CURRENT_ANCESTOR_CGROUP_ID),
        ldx_dw(R1, R6, OWNER),
    ]);
    let allow_owner = p.len();
    p.push(jeq_reg(R0, R1, 0)); // patched to ALLOW

    // Host root (uid 0 outside every cell) bypasses the reservation.
    p.extend([call(HELPER_GET_CURRENT_UID_GID), mov32_self(R0)]);
    let deny_non_root = p.len();
    p.push(jne_imm(R0, 0, 0)); // patched to DENY
    p.extend([
        mov64_imm(R1, place.cells_level as i32),
        call(HELPER_GET_CURRENT_ANCESTOR_CGROUP_ID),
    ]);
    p.extend(ld_imm64(R1, 0, place.cells_id));
    let allow_host_root = p.len();
    p.push(jne_reg(R0, R1, 0)); // patched to ALLOW
    let deny = p.len();
    p.extend([
        mov64_imm(R1, 1),
        atomic_add64(R6, R1, DENIED),
        mov64_imm(R0, 0),
        exit(),
    ]);
    let allow = p.len();
    p.extend([mov64_imm(R0, 1), exit()]);
    for (at, target) in [
        (allow_unreserved, allow),
        (allow_owner, allow),
        (deny_non_root, deny),
        (allow_host_root, allow),
    ] {
        p[at].off = (target - at - 1) as i16;
    }
    p
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i32> {
    // SAFETY: attr is a properly laid out bpf_attr prefix of the given size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc as i32)
    }
}

fn owned(fd: i32) -> OwnedFd {
    // SAFETY: fd was just returned by bpf(2) and is ours.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn is_enoent(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    /// The value, or the next key for `BPF_MAP_GET_NEXT_KEY`.
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn name16(s: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    for (d, b) in n.iter_mut().zip(s.bytes().take(15)) {
        *d = b;
    }
    n
}

/// The kernel's id of a BPF object (`type` and `id` lead both info structs).
fn object_id(fd: &OwnedFd) -> Result<u32> {
    let mut info = [0u32; 2];
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).context("reading BPF object info")?;
    Ok(info[1])
}

/// The port map: one entry per reserved port, allocated as ports are added.
fn create_ports_map() -> Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_HASH,
        key_size: 4,
        value_size: std::mem::size_of::<PortEntry>() as u32,
        max_entries: MAX_RESERVED_PORTS as u32,
        map_flags: BPF_F_NO_PREALLOC,
        map_name: name16("cells_ports"),
        ..Default::default()
    };
    let fd = sys_bpf(BPF_MAP_CREATE, &mut attr).context("creating the reserved port map")?;
    Ok(owned(fd))
}

fn load(insns: &[Insn], attach_type: u32) -> Result<OwnedFd> {
    let license = c"GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name16("cells_bind"),
        expected_attach_type: attach_type,
        ..Default::default()
    };
    match sys_bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: Vec<&str> = text.lines().rev().take(6).collect();
            Err(e).with_context(|| {
                format!(
                    "loading the bind program (verifier: {})",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )
            })
        }
    }
}

fn open_dir(p: &Path) -> Result<std::fs::File> {
    std::fs::File::open(p).with_context(|| format!("opening cgroup {}", p.display()))
}

fn attach_op(
    cmd: libc::c_long,
    cgroup_root: &Path,
    prog: &OwnedFd,
    attach_type: u32,
) -> std::io::Result<()> {
    let dir = std::fs::File::open(cgroup_root)?;
    let mut attr = AttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: if cmd == BPF_PROG_ATTACH {
            BPF_F_ALLOW_MULTI
        } else {
            0
        },
        replace_bpf_fd: 0,
    };
    sys_bpf(cmd, &mut attr)?;
    Ok(())
}

/// Ids of the programs attached at a cgroup for one attach type.
pub fn attached_programs(cgroup: &Path, attach_type: u32) -> Result<Vec<u32>> {
    let dir = open_dir(cgroup)?;
    let mut ids = vec![0u32; MAX_ATTACHED];
    let mut attr = QueryAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_type,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    sys_bpf(BPF_PROG_QUERY, &mut attr)
        .with_context(|| format!("querying the programs attached at {}", cgroup.display()))?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

fn attach(cgroup_root: &Path, prog: &OwnedFd, attach_type: u32, what: &str) -> Result<()> {
    attach_op(BPF_PROG_ATTACH, cgroup_root, prog, attach_type).map_err(|e| {
        let mut msg = format!("attaching the {what} program at {}", cgroup_root.display());
        if e.raw_os_error() == Some(libc::E2BIG) {
            msg.push_str(&format!(
                " ({MAX_ATTACHED} programs are attached there already; \
                 each installation with reserved ports uses one)"
            ));
        }
        anyhow::Error::new(e).context(msg)
    })
}

/// A freshly loaded program pair and port map, not attached yet. Dropped
/// unattached, the kernel frees them.
pub struct Loaded {
    prog4: OwnedFd,
    prog6: OwnedFd,
    ports: OwnedFd,
}

impl Loaded {
    pub fn new(place: Place) -> Result<Loaded> {
        let ports = create_ports_map()?;
        let insns = program(place, ports.as_raw_fd());
        Ok(Loaded {
            prog4: load(&insns, BPF_CGROUP_INET4_BIND)?,
            prog6: load(&insns, BPF_CGROUP_INET6_BIND)?,
            ports,
        })
    }

    pub fn ids(&self) -> Result<BindGuardIds> {
        Ok(BindGuardIds {
            prog4: object_id(&self.prog4)?,
            prog6: object_id(&self.prog6)?,
            ports_map: object_id(&self.ports)?,
        })
    }

    /// Attaches the pair at the hierarchy root; both or neither.
    pub fn attach(self, cgroup_root: &Path) -> Result<Guard> {
        attach(cgroup_root, &self.prog4, BPF_CGROUP_INET4_BIND, "bind4")?;
        if let Err(e) = attach(cgroup_root, &self.prog6, BPF_CGROUP_INET6_BIND, "bind6") {
            let _ = attach_op(
                BPF_PROG_DETACH,
                cgroup_root,
                &self.prog4,
                BPF_CGROUP_INET4_BIND,
            );
            return Err(e);
        }
        Ok(Guard { ports: self.ports })
    }
}

fn fd_by_id(cmd: libc::c_long, id: u32) -> std::io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        id,
        ..Default::default()
    };
    sys_bpf(cmd, &mut attr).map(owned)
}

/// Detaches an installation's programs; programs already gone are fine.
pub fn detach(cgroup_root: &Path, ids: &BindGuardIds) -> Result<()> {
    for (id, attach_type) in [
        (ids.prog4, BPF_CGROUP_INET4_BIND),
        (ids.prog6, BPF_CGROUP_INET6_BIND),
    ] {
        let prog = match fd_by_id(BPF_PROG_GET_FD_BY_ID, id) {
            Ok(fd) => fd,
            Err(e) if is_enoent(&e) => continue,
            Err(e) => return Err(e).with_context(|| format!("finding bind program {id}")),
        };
        match attach_op(BPF_PROG_DETACH, cgroup_root, &prog, attach_type) {
            Err(e) if !is_enoent(&e) => {
                return Err(e).with_context(|| format!("detaching bind program {id}"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// An installation's attached guard, through its port map.
pub struct Guard {
    ports: OwnedFd,
}

impl Guard {
    /// Finds the guard by its ids; `None` unless both programs are attached
    /// at the hierarchy root (after a crash before attaching, or a detach by
    /// hand).
    pub fn open(cgroup_root: &Path, ids: &BindGuardIds) -> Result<Option<Guard>> {
        for (id, attach_type) in [
            (ids.prog4, BPF_CGROUP_INET4_BIND),
            (ids.prog6, BPF_CGROUP_INET6_BIND),
        ] {
            if !attached_programs(cgroup_root, attach_type)?.contains(&id) {
                return Ok(None);
            }
        }
        match fd_by_id(BPF_MAP_GET_FD_BY_ID, ids.ports_map) {
            Ok(ports) => Ok(Some(Guard { ports })),
            Err(e) if is_enoent(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("finding port map {}", ids.ports_map)),
        }
    }

    fn elem(&self, cmd: libc::c_long, key: &u32, value: u64) -> std::io::Result<i32> {
        let mut attr = MapElemAttr {
            map_fd: self.ports.as_raw_fd() as u32,
            key: key as *const u32 as u64,
            value,
            ..Default::default()
        };
        sys_bpf(cmd, &mut attr)
    }

    /// Reserves ports for the cell whose cgroup has id `owner`. An entry left
    /// by a cell that is no longer in the table is replaced.
    pub fn reserve(&self, ports: &[u16], owner: u64) -> Result<()> {
        let entry = PortEntry { owner, denied: 0 };
        for &port in ports {
            self.elem(
                BPF_MAP_UPDATE_ELEM,
                &key(port),
                &entry as *const PortEntry as u64,
            )
            .with_context(|| format!("adding port {port} to the reserved port map"))?;
        }
        Ok(())
    }

    /// Frees ports; ports not in the map are fine.
    pub fn release(&self, ports: &[u16]) -> Result<()> {
        for &port in ports {
            match self.elem(BPF_MAP_DELETE_ELEM, &key(port), 0) {
                Err(e) if !is_enoent(&e) => {
                    return Err(e).with_context(|| {
                        format!("removing port {port} from the reserved port map")
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Binds of these ports denied so far.
    pub fn denied_binds(&self, ports: &[u16]) -> u64 {
        ports
            .iter()
            .filter_map(|&port| {
                let mut entry = PortEntry::default();
                self.elem(
                    BPF_MAP_LOOKUP_ELEM,
                    &key(port),
                    &mut entry as *mut PortEntry as u64,
                )
                .ok()
                .map(|_| entry.denied)
            })
            .sum()
    }

    /// Every port in the map.
    pub fn ports(&self) -> Result<Vec<u16>> {
        let mut ports = Vec::new();
        // No key at first: the kernel starts with the first entry.
        let mut prev: Option<u32> = None;
        loop {
            let mut next = 0u32;
            let mut attr = MapElemAttr {
                map_fd: self.ports.as_raw_fd() as u32,
                key: prev.as_ref().map_or(0, |k| k as *const u32 as u64),
                value: &mut next as *mut u32 as u64,
                ..Default::default()
            };
            match sys_bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
                Ok(_) => {}
                Err(e) if is_enoent(&e) => return Ok(ports),
                Err(e) => return Err(e).context("listing the reserved port map"),
            }
            ports.push(u16::from_be(next as u16));
            if ports.len() > MAX_RESERVED_PORTS {
                bail!("listing the reserved port map: it does not end");
            }
            prev = Some(next);
        }
    }
}

/// Rejects reserving `adding` more ports when `reserved` are reserved already.
pub fn check_capacity(reserved: usize, adding: usize) -> Result<()> {
    if reserved + adding > MAX_RESERVED_PORTS {
        bail!(
            "{reserved} ports are reserved already and {adding} more given; \
             one run directory reserves at most {MAX_RESERVED_PORTS}"
        );
    }
    Ok(())
}

/// Rejects a port list the kernel ABI would reject.
pub fn check_ports(ports: &[u16]) -> Result<()> {
    if ports.len() > 32 {
        bail!(
            "{} reserved ports given; at most 32 are allowed",
            ports.len()
        );
    }
    for (i, p) in ports.iter().enumerate() {
        if *p == 0 {
            bail!("port 0 cannot be reserved");
        }
        if ports[..i].contains(p) {
            bail!("port {p} is listed twice");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_branch_lands_on_an_exit_path() {
        let place = Place {
            cell_level: 4,
            cells_id: 5,
            cells_level: 2,
        };
        let p = program(place, 3);
        assert_eq!(p[0], ldx_w(R2, R1, USER_PORT));
        assert_eq!(p.last(), Some(&exit()));
        let allow = p.len() - 2;
        assert_eq!(p[allow], mov64_imm(R0, 1));
        let deny = allow - 4;
        assert_eq!(p[deny + 1], atomic_add64(R6, R1, DENIED));
        // Jumps (class JMP, not call/exit) go to allow or deny.
        let targets: Vec<usize> = p
            .iter()
            .enumerate()
            .filter(|(_, i)| i.code & 0x07 == 0x05 && i.code != 0x85 && i.code != 0x95)
            .map(|(at, i)| (at as i64 + 1 + i64::from(i.off)) as usize)
            .collect();
        assert_eq!(targets, [allow, allow, deny, allow]);
        assert!(p.contains(&mov64_imm(R1, 4)) && p.contains(&mov64_imm(R1, 2)));
    }

    #[test]
    fn map_keys_are_user_port_as_loaded() {
        // user_port holds the port in network byte order in its low 16 bits.
        let loaded = u32::from(u16::from_ne_bytes(8080u16.to_be_bytes()));
        assert_eq!(key(8080), loaded);
    }

    #[test]
    fn port_lists_follow_the_abi_rules() {
        assert!(check_ports(&[80, 443]).is_ok());
        assert!(check_ports(&[0]).is_err());
        assert!(check_ports(&[80, 80]).is_err());
        assert!(check_ports(&(1..=33).collect::<Vec<u16>>()).is_err());
    }

    #[test]
    fn an_installation_reserves_at_most_the_map_size() {
        assert!(check_capacity(MAX_RESERVED_PORTS - 2, 2).is_ok());
        let e = check_capacity(MAX_RESERVED_PORTS - 1, 2).unwrap_err();
        assert!(e.to_string().contains("at most 4096"), "{e}");
    }
}
