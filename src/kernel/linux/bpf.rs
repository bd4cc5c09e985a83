//! Reserved ports and port sharing: cgroup BPF programs, assembled by hand and
//! loaded through `bpf(2)` (no toolchain, no libbpf).
//!
//! Design: one program set per installation (state directory), attached with
//! `BPF_F_ALLOW_MULTI` at the root of the cgroup2 hierarchy, so every process
//! on the host (cells and host alike) runs it. The set reads the
//! installation's port map, `port -> { owner cell's cgroup id, denied binds }`,
//! which `create` and `destroy` fill and empty. Five programs:
//!
//! * `bind4`/`bind6` see the port a `bind()` asks for, `post_bind4`/
//!   `post_bind6` the port actually bound (`bind()` to port 0, narrowed or not
//!   by `IP_LOCAL_PORT_RANGE`); both apply the reservation:
//!   - port not in the map: allow (other installations' programs decide);
//!   - caller inside the owner cell's cgroup: allow; `bind4`/`bind6` also
//!     lift the check for `CAP_NET_BIND_SERVICE` (return value 3), which a
//!     cell in a user namespace cannot hold in the host's network namespace:
//!     a port below 1024 that is the cell's binds for any of its processes;
//!   - caller uid 0 and in no cell of any installation: allow (host root bypasses
//!     reservations);
//!   - otherwise add one to the port's counter and deny (EPERM).
//!
//!   Host root is told from cells by its cgroup, not only by its uid: a cell
//!   at the low profile runs as host uid 0, one at medium or high as an id
//!   of its range (and fails the uid test anyway).
//! * Port sharing: the kernel lets sockets of the same uid share a port with
//!   `SO_REUSEPORT`, so a cell at the low profile (host uid 0 like host
//!   root) could join a host root service's group and take its connections;
//!   at medium and high the cell's uid differs, and this rule is a second
//!   wall. A cell of this installation may use `SO_REUSEPORT` only on its
//!   own reserved ports: `bind4`/`bind6` refuse a bind with the option set to
//!   any other port (port 0 included), and `setsockopt` refuses to set it on
//!   a socket already bound to any other port.
//!
//! Every cell has one small `setsockopt` program of its own
//! ([`guard_sharing`]), attached at its cgroup while its init sets up, before
//! anything of the cell runs:
//! - a cell that reserves no port may not turn `SO_REUSEPORT` on at all;
//! - no cell turns `SO_REUSEADDR` on for a datagram socket: the call succeeds
//!   and does nothing. Two UDP sockets with that option share a port whatever
//!   their owners' uids, and the newer one gets the unicast datagrams: a cell
//!   would take those of a host service that binds with it (mDNS, DHCP and
//!   DNS daemons do). A cell's own second socket on a port it already uses
//!   gets `EADDRINUSE` instead.
//!
//! It runs for every way a socket option is set (the system call, io_uring's
//! socket commands: both pass the cgroup hook), and it goes with the cgroup,
//! so nothing is left to detach. Attaching at a leaf is cheap; attaching at
//! the root recomputes the programs of every cgroup on the host, so the set
//! below is attached only while some cell of the installation reserves ports.
//!
//! Ports the kernel picks without a `bind()` (`listen()`, `connect()` and
//! `sendto()` on an unbound socket) pass no hook that can refuse them. They
//! come from `net.ipv4.ip_local_port_range`, minus
//! `net.ipv4.ip_local_reserved_ports`; so `create` refuses to reserve a port
//! the kernel may hand out on its own ([`check_not_ephemeral`]), and `list`
//! warns when the ranges have changed under a cell since.
//!
//! The set is attached when the installation's first cell that reserves
//! ports is created and detached when the last such cell goes, so nothing
//! that denies binds outlives the cells, and a bind on the host runs one
//! program per installation that has such cells, however many it has. (Cells
//! recorded by an older version carry no program of their own and keep the
//! set attached while they live.) The kernel allows 64 programs per attach
//! point (`BPF_CGROUP_MAX_PROGS`), shared with everything else on the host:
//! that bounds the installations with cells, not the cells. Installations
//! (parallel test runs) own separate sets and maps, so they coexist without
//! pinning anything in bpffs. The attachment survives the creating process
//! (the cgroup holds the programs, the programs hold the map); later commands
//! find them again by the ids in the cell table. A cell's `DENY_BIND` is the
//! sum of its ports' counters.
//!
//! After a crash (see the backend's `create` and `teardown`): the ids are
//! recorded before the set is attached, and a recorded set that is not
//! attached is replaced; a cell's ports are removed after its processes, so a
//! crash in between leaves a dead cell whose clean-up removes them; ports a
//! crashed `create` entered for a cell it never recorded are swept by the next
//! `create` (it finds that cell's cgroup left over).
//!
//! An installation deleted while its set was attached (its state directory
//! removed with cells in it) leaves the set attached with nobody to detach
//! it. Before attaching a set, `create` detaches the ones no live
//! installation names ([`cells_programs`], the backend's orphan sweep):
//! only programs proven to be Cells' (loaded by root, named `cells_*`, every
//! map they use named `cells_ports`) are ever touched.

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
const BPF_PROG_TYPE_CGROUP_SOCK: u32 = 9;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
const BPF_PROG_TYPE_CGROUP_SOCKOPT: u32 = 25;
pub const BPF_CGROUP_INET4_BIND: u32 = 8;
pub const BPF_CGROUP_INET6_BIND: u32 = 9;
pub const BPF_CGROUP_INET4_POST_BIND: u32 = 12;
pub const BPF_CGROUP_INET6_POST_BIND: u32 = 13;
pub const BPF_CGROUP_SETSOCKOPT: u32 = 22;
const BPF_F_ALLOW_MULTI: u32 = 2;
/// Name prefix of every Cells program, and the name of the port map.
const NAME_PREFIX: &[u8] = b"cells_";
const PORTS_MAP_NAME: &str = "cells_ports";
/// The version of the program set: a recorded set of another version is
/// replaced (2: the owner's bind skips the `CAP_NET_BIND_SERVICE` check).
pub const PROGRAMS_VERSION: u32 = 2;
/// Most programs one attach point takes (`BPF_CGROUP_MAX_PROGS`).
const MAX_ATTACHED: usize = 64;
/// Most ports one installation reserves: the port map's size. Its buckets are
/// allocated up front (16 bytes each), which costs time at every first
/// port-reserving create: 4096 takes ~30 us, all 65535 ports ~400 us.
pub const MAX_RESERVED_PORTS: usize = 4096;

const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_GET_CURRENT_UID_GID: i32 = 15;
const HELPER_GETSOCKOPT: i32 = 57;
const HELPER_GET_CURRENT_ANCESTOR_CGROUP_ID: i32 = 123;
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// Offset of `user_port` (network byte order) in `struct bpf_sock_addr`.
const USER_PORT: i16 = 24;
/// Offset of `src_port` (host byte order) in `struct bpf_sock`.
const SRC_PORT: i16 = 44;
/// Offsets in `struct bpf_sockopt`: the socket, the value's bounds, level and name.
const SOCKOPT_SK: i16 = 0;
const SOCKOPT_OPTVAL: i16 = 8;
const SOCKOPT_OPTVAL_END: i16 = 16;
const SOCKOPT_LEVEL: i16 = 24;
const SOCKOPT_OPTNAME: i16 = 28;
const SOCKOPT_OPTLEN: i16 = 32;
/// Offset of `type` in `struct bpf_sock`.
const SOCK_TYPE: i16 = 8;

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
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;
const R7: u8 = 7;
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
fn st_w(dst: u8, off: i16, imm: i32) -> Insn {
    insn(0x62, dst, 0, off, imm)
}
/// `dst = htobe16(dst)`, the upper bits cleared.
fn be16(dst: u8) -> Insn {
    insn(0xdc, dst, 0, 0, 16)
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
fn jgt_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x2d, dst, src, off, 0)
}
fn ja(off: i16) -> Insn {
    insn(0x05, 0, 0, off, 0)
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
    /// The installation's cgroup (`cells/<run key>`), parent of its cells.
    pub run_id: u64,
    pub run_level: u32,
    /// The `cells` cgroup every cell on the host lives under.
    pub cells_id: u64,
    pub cells_level: u32,
}

/// A program under construction: instructions plus jumps to the two exits,
/// resolved by [`Builder::finish`].
struct Builder {
    p: Vec<Insn>,
    /// (instruction, exit) of each jump still to aim.
    jumps: Vec<(usize, Exit)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Allow,
    /// Allow, and skip the kernel's `CAP_NET_BIND_SERVICE` check (bind
    /// programs only).
    AllowWithoutCapability,
    /// Deny and count it on the port's map entry (held in r7).
    DenyCounted,
    Deny,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            p: Vec::new(),
            jumps: Vec::new(),
        }
    }

    fn extend(&mut self, insns: impl IntoIterator<Item = Insn>) {
        self.p.extend(insns);
    }

    /// A jump instruction whose target is an exit.
    fn jump_to(&mut self, jump: Insn, exit: Exit) {
        self.jumps.push((self.p.len(), exit));
        self.p.push(jump);
    }

    /// A jump instruction whose target comes later in the program: aimed
    /// by [`Builder::land`] at the instruction that follows then.
    fn jump_ahead(&mut self, jump: Insn) -> usize {
        self.p.push(jump);
        self.p.len() - 1
    }

    /// Aims the jump [`Builder::jump_ahead`] made at the next instruction.
    fn land(&mut self, jump: usize) {
        self.p[jump].off = (self.p.len() - jump - 1) as i16;
    }

    /// `r0 = current task's ancestor cgroup id at level`.
    fn ancestor(&mut self, level: u32) {
        self.extend([
            mov64_imm(R1, level as i32),
            call(HELPER_GET_CURRENT_ANCESTOR_CGROUP_ID),
        ]);
    }

    /// Looks up the port key held in r2 (spilled to the stack); r0 is the
    /// entry or 0.
    fn lookup(&mut self, ports_map_fd: i32) {
        self.extend([stx_w(R10, R2, -4)]);
        self.extend(ld_imm64(R1, BPF_PSEUDO_MAP_FD, ports_map_fd as u32 as u64));
        self.extend([
            mov64_reg(R2, R10),
            add64_imm(R2, -4),
            call(HELPER_MAP_LOOKUP_ELEM),
        ]);
    }

    /// The reservation rule for the entry in r0 (non-zero): the owner cell
    /// (leaving by `owner`), then host root outside every cell, may; anyone
    /// else is denied and counted. Ends in an exit.
    fn reservation(&mut self, place: Place, owner: Exit) {
        // r7 survives helper calls.
        self.extend([mov64_reg(R7, R0)]);
        self.ancestor(place.cell_level);
        self.extend([ldx_dw(R1, R7, OWNER)]);
        self.jump_to(jeq_reg(R0, R1, 0), owner);
        self.extend([call(HELPER_GET_CURRENT_UID_GID), mov32_self(R0)]);
        self.jump_to(jne_imm(R0, 0, 0), Exit::DenyCounted);
        self.ancestor(place.cells_level);
        self.extend(ld_imm64(R1, 0, place.cells_id));
        self.jump_to(jne_reg(R0, R1, 0), Exit::Allow);
        self.jump_to(ja(0), Exit::DenyCounted);
    }

    /// Jumps to Allow unless the caller is in a cell of this installation.
    fn allow_unless_own_cell(&mut self, place: Place) {
        self.ancestor(place.run_level);
        self.extend(ld_imm64(R1, 0, place.run_id));
        self.jump_to(jne_reg(R0, R1, 0), Exit::Allow);
    }

    /// Starts a `setsockopt` program (context kept in r6): allows every
    /// option but `SO_REUSEPORT`.
    fn allow_unless_reuseport(&mut self) {
        self.extend([mov64_reg(R6, R1), ldx_w(R2, R6, SOCKOPT_LEVEL)]);
        self.jump_to(jne_imm(R2, libc::SOL_SOCKET, 0), Exit::Allow);
        self.extend([ldx_w(R2, R6, SOCKOPT_OPTNAME)]);
        self.jump_to(jne_imm(R2, libc::SO_REUSEPORT, 0), Exit::Allow);
    }

    /// Allows a `setsockopt` that turns the option off; denies one whose
    /// value cannot be read.
    fn allow_turning_off(&mut self) {
        self.extend([
            ldx_dw(R2, R6, SOCKOPT_OPTVAL),
            ldx_dw(R3, R6, SOCKOPT_OPTVAL_END),
            mov64_reg(R4, R2),
            add64_imm(R4, 4),
        ]);
        self.jump_to(jgt_reg(R4, R3, 0), Exit::Deny);
        self.extend([ldx_w(R4, R2, 0)]);
        self.jump_to(jeq_imm(R4, 0, 0), Exit::Allow);
    }

    /// Appends the exits (the counting one only where used: the verifier
    /// refuses unreachable code) and aims every jump at them.
    fn finish(mut self) -> Vec<Insn> {
        let without_capability = self.p.len();
        if self
            .jumps
            .iter()
            .any(|&(_, e)| e == Exit::AllowWithoutCapability)
        {
            self.extend([mov64_imm(R0, 3), exit()]);
        }
        let counted = self.p.len();
        if self.jumps.iter().any(|&(_, e)| e == Exit::DenyCounted) {
            self.extend([mov64_imm(R1, 1), atomic_add64(R7, R1, DENIED)]);
        }
        let deny = self.p.len();
        self.extend([mov64_imm(R0, 0), exit()]);
        let allow = self.p.len();
        self.extend([mov64_imm(R0, 1), exit()]);
        for (at, exit) in self.jumps {
            let target = match exit {
                Exit::Allow => allow,
                Exit::AllowWithoutCapability => without_capability,
                Exit::DenyCounted => counted,
                Exit::Deny => deny,
            };
            self.p[at].off = (target - at - 1) as i16;
        }
        self.p
    }
}

/// The `bind4`/`bind6` program: the reservation of the requested port, and
/// no `SO_REUSEPORT` for this installation's cells on any other port.
fn bind_program(place: Place, ports_map_fd: i32) -> Vec<Insn> {
    let mut b = Builder::new();
    b.extend([mov64_reg(R6, R1), ldx_w(R2, R6, USER_PORT)]);
    b.lookup(ports_map_fd);
    let unreserved = b.jump_ahead(jeq_imm(R0, 0, 0));
    b.reservation(place, Exit::AllowWithoutCapability);
    b.land(unreserved);
    b.allow_unless_own_cell(place);
    // bpf_getsockopt(ctx, SOL_SOCKET, SO_REUSEPORT, fp - 8, 4); a failure
    // to tell denies.
    b.extend([
        st_w(R10, -8, 0),
        mov64_reg(R1, R6),
        mov64_imm(R2, libc::SOL_SOCKET),
        mov64_imm(R3, libc::SO_REUSEPORT),
        mov64_reg(R4, R10),
        add64_imm(R4, -8),
        mov64_imm(R5, 4),
        call(HELPER_GETSOCKOPT),
    ]);
    b.jump_to(jne_imm(R0, 0, 0), Exit::Deny);
    b.extend([ldx_w(R1, R10, -8)]);
    b.jump_to(jne_imm(R1, 0, 0), Exit::Deny);
    b.jump_to(ja(0), Exit::Allow);
    b.finish()
}

/// The `post_bind4`/`post_bind6` program: the reservation of the port bound.
fn post_bind_program(place: Place, ports_map_fd: i32) -> Vec<Insn> {
    let mut b = Builder::new();
    b.extend([ldx_w(R2, R1, SRC_PORT), be16(R2)]);
    b.lookup(ports_map_fd);
    b.jump_to(jeq_imm(R0, 0, 0), Exit::Allow);
    b.reservation(place, Exit::Allow);
    b.finish()
}

/// The `setsockopt` program: a cell of this installation may turn
/// `SO_REUSEPORT` on only while its socket is unbound (the bind program then
/// decides) or bound to one of its own reserved ports.
fn setsockopt_program(place: Place, ports_map_fd: i32) -> Vec<Insn> {
    let mut b = Builder::new();
    b.allow_unless_reuseport();
    b.allow_unless_own_cell(place);
    b.allow_turning_off();
    b.extend([ldx_dw(R2, R6, SOCKOPT_SK), ldx_w(R2, R2, SRC_PORT)]);
    b.jump_to(jeq_imm(R2, 0, 0), Exit::Allow);
    b.extend([be16(R2)]);
    b.lookup(ports_map_fd);
    b.jump_to(jeq_imm(R0, 0, 0), Exit::Deny);
    b.extend([mov64_reg(R7, R0)]);
    b.ancestor(place.cell_level);
    b.extend([ldx_dw(R1, R7, OWNER)]);
    b.jump_to(jeq_reg(R0, R1, 0), Exit::Allow);
    b.jump_to(ja(0), Exit::Deny);
    b.finish()
}

/// The `setsockopt` program every cell has at its own cgroup: `SO_REUSEADDR`
/// on a datagram socket is dropped (the call succeeds, the kernel never sees
/// it), and for a cell that reserves no port (`forbid_reuseport`)
/// `SO_REUSEPORT` may not be turned on (no port of its own to share). An
/// option value it cannot read is refused.
fn cell_sockopt_program(forbid_reuseport: bool) -> Vec<Insn> {
    let mut b = Builder::new();
    b.extend([mov64_reg(R6, R1), ldx_w(R2, R6, SOCKOPT_LEVEL)]);
    b.jump_to(jne_imm(R2, libc::SOL_SOCKET, 0), Exit::Allow);
    b.extend([ldx_w(R2, R6, SOCKOPT_OPTNAME)]);
    let to_reuseaddr = b.jump_ahead(jeq_imm(R2, libc::SO_REUSEADDR, 0));
    if forbid_reuseport {
        b.jump_to(jne_imm(R2, libc::SO_REUSEPORT, 0), Exit::Allow);
        b.allow_turning_off();
        b.jump_to(ja(0), Exit::Deny);
    } else {
        b.jump_to(ja(0), Exit::Allow);
    }
    b.land(to_reuseaddr);
    b.extend([ldx_dw(R2, R6, SOCKOPT_SK), ldx_w(R2, R2, SOCK_TYPE)]);
    b.jump_to(jne_imm(R2, libc::SOCK_DGRAM, 0), Exit::Allow);
    b.allow_turning_off();
    // optlen -1: the kernel's own handling is skipped, the caller gets 0.
    b.extend([
        mov64_imm(R2, -1),
        stx_w(R6, R2, SOCKOPT_OPTLEN),
        mov64_imm(R0, 1),
        exit(),
    ]);
    b.finish()
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
        map_name: name16(PORTS_MAP_NAME),
        ..Default::default()
    };
    let fd = sys_bpf(BPF_MAP_CREATE, &mut attr).context("creating the reserved port map")?;
    Ok(owned(fd))
}

/// Loads one program. The verifier's log costs time, so it is asked for
/// only to explain a refusal (a second load).
fn load(program: &Program, place: Place, ports_map_fd: i32) -> Result<OwnedFd> {
    load_insns(program, &(program.build)(place, ports_map_fd))
}

fn load_insns(program: &Program, insns: &[Insn]) -> Result<OwnedFd> {
    let license = c"GPL";
    let attempt = |log: &mut [u8]| {
        let mut attr = ProgLoadAttr {
            prog_type: program.prog_type,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            prog_name: name16(&format!("cells_{}", program.name)),
            expected_attach_type: program.attach_type,
            ..Default::default()
        };
        sys_bpf(BPF_PROG_LOAD, &mut attr).map(owned)
    };
    let e = match attempt(&mut []) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; 64 * 1024];
    let _ = attempt(&mut log);
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let tail: Vec<&str> = text.lines().rev().take(6).collect();
    Err(e).with_context(|| {
        format!(
            "loading the {} program (verifier: {})",
            program.name,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )
    })
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
                 each installation with cells uses one)"
            ));
        }
        anyhow::Error::new(e).context(msg)
    })
}

/// One program of the set.
struct Program {
    name: &'static str,
    prog_type: u32,
    attach_type: u32,
    build: fn(Place, i32) -> Vec<Insn>,
}

/// The set, in the order of [`BindGuardIds::programs`].
const PROGRAMS: [Program; 5] = [
    Program {
        name: "bind4",
        prog_type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
        attach_type: BPF_CGROUP_INET4_BIND,
        build: bind_program,
    },
    Program {
        name: "bind6",
        prog_type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
        attach_type: BPF_CGROUP_INET6_BIND,
        build: bind_program,
    },
    Program {
        name: "post_bind4",
        prog_type: BPF_PROG_TYPE_CGROUP_SOCK,
        attach_type: BPF_CGROUP_INET4_POST_BIND,
        build: post_bind_program,
    },
    Program {
        name: "post_bind6",
        prog_type: BPF_PROG_TYPE_CGROUP_SOCK,
        attach_type: BPF_CGROUP_INET6_POST_BIND,
        build: post_bind_program,
    },
    Program {
        name: "setsockopt",
        prog_type: BPF_PROG_TYPE_CGROUP_SOCKOPT,
        attach_type: BPF_CGROUP_SETSOCKOPT,
        build: setsockopt_program,
    },
];

/// A cell's own program (see the module comment and [`cell_sockopt_program`]).
const CELL_SHARING: Program = Program {
    name: "noshare",
    prog_type: BPF_PROG_TYPE_CGROUP_SOCKOPT,
    attach_type: BPF_CGROUP_SETSOCKOPT,
    build: |_, _| cell_sockopt_program(true),
};

/// Attaches a new cell's own sharing rules to `cell_cgroup`: no
/// `SO_REUSEADDR` on datagram sockets, and without reserved ports
/// (`!reserves_ports`) no `SO_REUSEPORT`. The program lives as long as the
/// cgroup: nothing to detach, nothing to record.
pub fn guard_sharing(cell_cgroup: &Path, reserves_ports: bool) -> Result<()> {
    let prog = load_insns(&CELL_SHARING, &cell_sockopt_program(!reserves_ports))?;
    attach(
        cell_cgroup,
        &prog,
        CELL_SHARING.attach_type,
        CELL_SHARING.name,
    )
}

#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: [u8; 16],
}

fn info<T>(fd: &OwnedFd, info: &mut T) -> std::io::Result<()> {
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<T>() as u32,
        info: info as *mut T as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(|_| ())
}

/// Whether a program is provably one of a Cells port set: loaded by root,
/// named `cells_*`, and using only port maps (one to four of them).
fn is_cells_program(prog: &OwnedFd) -> std::io::Result<bool> {
    let mut maps = [0u32; 4];
    let mut p = ProgInfo {
        nr_map_ids: maps.len() as u32,
        map_ids: maps.as_mut_ptr() as u64,
        ..Default::default()
    };
    info(prog, &mut p)?;
    let used = p.nr_map_ids as usize;
    if p.created_by_uid != 0
        || !p.name.starts_with(NAME_PREFIX)
        || !(1..=maps.len()).contains(&used)
    {
        return Ok(false);
    }
    for &id in &maps[..used] {
        let map = match fd_by_id(BPF_MAP_GET_FD_BY_ID, id) {
            Ok(fd) => fd,
            Err(e) if is_enoent(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut m = MapInfo::default();
        info(&map, &mut m)?;
        if m.name != name16(PORTS_MAP_NAME) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A Cells port program attached at a hierarchy root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attached {
    pub id: u32,
    attach_type: u32,
}

/// Every program of any Cells installation's port set attached at
/// `cgroup_root` (see [`is_cells_program`]); other programs are not listed.
pub fn cells_programs(cgroup_root: &Path) -> Result<Vec<Attached>> {
    let mut found = Vec::new();
    for attach_type in PROGRAMS.iter().map(|p| p.attach_type) {
        for id in attached_programs(cgroup_root, attach_type)? {
            let prog = match fd_by_id(BPF_PROG_GET_FD_BY_ID, id) {
                Ok(fd) => fd,
                Err(e) if is_enoent(&e) => continue,
                Err(e) => return Err(e).with_context(|| format!("finding program {id}")),
            };
            if is_cells_program(&prog).with_context(|| format!("reading program {id}"))? {
                found.push(Attached { id, attach_type });
            }
        }
    }
    Ok(found)
}

/// Detaches one program [`cells_programs`] listed; one gone already is fine.
pub fn detach_attached(cgroup_root: &Path, program: Attached) -> Result<()> {
    let prog = match fd_by_id(BPF_PROG_GET_FD_BY_ID, program.id) {
        Ok(fd) => fd,
        Err(e) if is_enoent(&e) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("finding program {}", program.id)),
    };
    match attach_op(BPF_PROG_DETACH, cgroup_root, &prog, program.attach_type) {
        Err(e) if !is_enoent(&e) => {
            Err(e).with_context(|| format!("detaching program {}", program.id))
        }
        _ => Ok(()),
    }
}

/// A freshly loaded program set and port map, not attached yet. Dropped
/// unattached, the kernel frees them.
pub struct Loaded {
    programs: Vec<OwnedFd>,
    ports: OwnedFd,
}

impl Loaded {
    pub fn new(place: Place) -> Result<Loaded> {
        let ports = create_ports_map()?;
        let programs = PROGRAMS
            .iter()
            .map(|p| load(p, place, ports.as_raw_fd()))
            .collect::<Result<_>>()?;
        Ok(Loaded { programs, ports })
    }

    pub fn ids(&self) -> Result<BindGuardIds> {
        let ids: Vec<u32> = self.programs.iter().map(object_id).collect::<Result<_>>()?;
        Ok(BindGuardIds {
            version: PROGRAMS_VERSION,
            prog4: ids[0],
            prog6: ids[1],
            post4: ids[2],
            post6: ids[3],
            sockopt: ids[4],
            ports_map: object_id(&self.ports)?,
        })
    }

    /// Attaches the set at the hierarchy root; all or none.
    pub fn attach(self, cgroup_root: &Path) -> Result<Guard> {
        for (i, (fd, program)) in self.programs.iter().zip(&PROGRAMS).enumerate() {
            if let Err(e) = attach(cgroup_root, fd, program.attach_type, program.name) {
                for (fd, program) in self.programs[..i].iter().zip(&PROGRAMS) {
                    let _ = attach_op(BPF_PROG_DETACH, cgroup_root, fd, program.attach_type);
                }
                return Err(e);
            }
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

/// The recorded programs with their attach types.
fn recorded(ids: &BindGuardIds) -> impl Iterator<Item = (u32, &'static Program)> {
    ids.programs().into_iter().zip(&PROGRAMS)
}

/// Detaches an installation's programs; programs already gone are fine.
pub fn detach(cgroup_root: &Path, ids: &BindGuardIds) -> Result<()> {
    for (id, program) in recorded(ids) {
        let prog = match fd_by_id(BPF_PROG_GET_FD_BY_ID, id) {
            Ok(fd) => fd,
            Err(e) if is_enoent(&e) => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("finding the {} program {id}", program.name))
            }
        };
        match attach_op(BPF_PROG_DETACH, cgroup_root, &prog, program.attach_type) {
            Err(e) if !is_enoent(&e) => {
                return Err(e)
                    .with_context(|| format!("detaching the {} program {id}", program.name))
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
    /// Finds the guard by its ids; `None` unless every program is attached
    /// at the hierarchy root (after a crash before attaching, or a detach by
    /// hand).
    pub fn open(cgroup_root: &Path, ids: &BindGuardIds) -> Result<Option<Guard>> {
        // A set an older version loaded lacks rules this one relies on: replaced.
        if ids.version != PROGRAMS_VERSION {
            return Ok(None);
        }
        for (id, program) in recorded(ids) {
            if !attached_programs(cgroup_root, program.attach_type)?.contains(&id) {
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

/// The ports the kernel hands out on its own in the caller's network
/// namespace (which cells share): `net.ipv4.ip_local_port_range` (IPv6 uses
/// it too) minus `net.ipv4.ip_local_reserved_ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ephemeral {
    lo: u16,
    hi: u16,
    reserved: Vec<(u16, u16)>,
}

const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
const RESERVED_PORTS: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

impl Ephemeral {
    pub fn read() -> Result<Ephemeral> {
        let range =
            std::fs::read_to_string(PORT_RANGE).with_context(|| format!("reading {PORT_RANGE}"))?;
        let reserved = std::fs::read_to_string(RESERVED_PORTS)
            .with_context(|| format!("reading {RESERVED_PORTS}"))?;
        Ephemeral::parse(&range, &reserved)
            .with_context(|| format!("{PORT_RANGE} or {RESERVED_PORTS}: unexpected contents"))
    }

    /// `range` is "lo hi"; `reserved` a comma-separated list of ports and
    /// "a-b" ranges (empty for none).
    pub fn parse(range: &str, reserved: &str) -> Option<Ephemeral> {
        let mut bounds = range.split_whitespace().map(str::parse::<u16>);
        let (lo, hi) = (bounds.next()?.ok()?, bounds.next()?.ok()?);
        let reserved = reserved
            .trim()
            .split(',')
            .filter(|r| !r.is_empty())
            .map(|r| match r.split_once('-') {
                Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
                None => r.trim().parse().ok().map(|p| (p, p)),
            })
            .collect::<Option<_>>()?;
        Some(Ephemeral { lo, hi, reserved })
    }

    /// Whether the kernel may give `port` to a socket nobody bound.
    pub fn hands_out(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
            && !self.reserved.iter().any(|&(a, b)| (a..=b).contains(&port))
    }

    /// Why a reservation of `port` cannot hold, for errors and warnings.
    pub fn explain(&self, port: u16) -> String {
        format!(
            "port {port} lies in the kernel's ephemeral port range \
             (net.ipv4.ip_local_port_range = {} {}), from which it hands ports to \
             sockets that listen, connect or send without a bind, past every check; \
             reserve it with the kernel (add it to net.ipv4.ip_local_reserved_ports) \
             or pick a port outside the range",
            self.lo, self.hi
        )
    }
}

/// Rejects reserving a port the kernel may hand out on its own (see the
/// module comment): its reservation could not be enforced.
pub fn check_not_ephemeral(ports: &[u16]) -> Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    let ephemeral = Ephemeral::read()?;
    match ports.iter().find(|&&p| ephemeral.hands_out(p)) {
        Some(&p) => bail!("{}", ephemeral.explain(p)),
        None => Ok(()),
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

    /// Where each jump of a program lands (class JMP, not call or exit).
    fn jump_targets(p: &[Insn]) -> Vec<usize> {
        p.iter()
            .enumerate()
            .filter(|(_, i)| i.code & 0x07 == 0x05 && i.code != 0x85 && i.code != 0x95)
            .map(|(at, i)| (at as i64 + 1 + i64::from(i.off)) as usize)
            .collect()
    }

    #[test]
    fn every_program_ends_in_its_exits_and_jumps_stay_inside() {
        let place = Place {
            cell_level: 4,
            run_id: 6,
            run_level: 3,
            cells_id: 5,
            cells_level: 2,
        };
        for program in PROGRAMS.iter().chain([&CELL_SHARING]) {
            let p = (program.build)(place, 3);
            let n = p.len();
            assert_eq!(p[n - 1], exit(), "{}", program.name);
            assert_eq!(p[n - 2], mov64_imm(R0, 1), "{}: allow", program.name);
            assert_eq!(p[n - 4], mov64_imm(R0, 0), "{}: deny", program.name);
            let targets = jump_targets(&p);
            assert!(targets.iter().all(|&t| t < n - 1), "{}", program.name);
            assert!(targets.contains(&(n - 2)), "{}: allow unused", program.name);
        }
        // The reservation programs count denials; the sharing rule does not.
        let bind = bind_program(place, 3);
        assert!(bind.contains(&atomic_add64(R7, R1, DENIED)));
        // The owner's bind leaves by the exit that lifts the capability check.
        let lifted = bind.iter().position(|i| *i == mov64_imm(R0, 3)).unwrap();
        assert_eq!(bind[lifted + 1], exit());
        assert!(jump_targets(&bind).contains(&lifted));
        assert!(bind.contains(&call(HELPER_GETSOCKOPT)));
        assert!(bind.contains(&mov64_imm(R1, 4)) && bind.contains(&mov64_imm(R1, 3)));
        let post = post_bind_program(place, 3);
        assert_eq!(post[..2], [ldx_w(R2, R1, SRC_PORT), be16(R2)]);
        assert!(
            !post.contains(&mov64_imm(R0, 3)),
            "3 is for bind programs only"
        );
        assert!(post.contains(&atomic_add64(R7, R1, DENIED)));
        let sockopt = setsockopt_program(place, 3);
        assert!(!sockopt.contains(&atomic_add64(R7, R1, DENIED)));
        assert!(sockopt
            .iter()
            .any(|i| i.code == 0x55 && i.imm == libc::SO_REUSEPORT));
        // A cell's own program: no map, no counting; both options named
        // without ports, SO_REUSEADDR alone with them.
        for forbid_reuseport in [true, false] {
            let own = cell_sockopt_program(forbid_reuseport);
            assert!(!own.iter().any(|i| i.code == 0x18));
            assert!(!own.contains(&atomic_add64(R7, R1, DENIED)));
            assert_eq!(
                own.iter()
                    .any(|i| i.code == 0x55 && i.imm == libc::SO_REUSEPORT),
                forbid_reuseport
            );
            assert!(own
                .iter()
                .any(|i| i.code == 0x15 && i.imm == libc::SO_REUSEADDR));
            // The datagram branch skips the kernel: optlen -1, then allow.
            assert!(own.contains(&stx_w(R6, R2, SOCKOPT_OPTLEN)));
            let targets = jump_targets(&own);
            assert!(targets.iter().all(|&t| t < own.len() - 1));
        }
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
    fn ephemeral_ports_are_the_range_minus_the_kernels_reservations() {
        let e = Ephemeral::parse("32768\t60999\n", "40000,50000-50010\n").unwrap();
        assert!(e.hands_out(32768) && e.hands_out(60999) && e.hands_out(45000));
        assert!(!e.hands_out(32767) && !e.hands_out(61000) && !e.hands_out(80));
        assert!(!e.hands_out(40000) && !e.hands_out(50005));
        assert!(e.hands_out(50011));
        assert_eq!(Ephemeral::parse("1024 65535", "\n").unwrap().reserved, []);
        assert!(Ephemeral::parse("x", "").is_none());
        assert!(Ephemeral::parse("1 2", "a-b").is_none());
        let why = e.explain(45000);
        assert!(
            why.contains("45000") && why.contains("32768 60999"),
            "{why}"
        );
    }

    #[test]
    fn an_installation_reserves_at_most_the_map_size() {
        assert!(check_capacity(MAX_RESERVED_PORTS - 2, 2).is_ok());
        let e = check_capacity(MAX_RESERVED_PORTS - 1, 2).unwrap_err();
        assert!(e.to_string().contains("at most 4096"), "{e}");
    }
}
