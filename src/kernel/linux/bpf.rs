//! Reserved ports: cgroup `bind4`/`bind6` programs, assembled by hand and loaded
//! through `bpf(2)` (no toolchain, no libbpf).
//!
//! Design: one pair of programs per cell that reserves ports, attached with
//! `BPF_F_ALLOW_MULTI` at the root of the cgroup2 hierarchy, so every process on
//! the host (cells and host alike) runs every cell's programs on `bind`. A
//! program only looks at its own cell's ports, baked in as constants:
//!
//! * port not reserved by this cell: allow (the other cells' programs decide);
//! * caller inside this cell's cgroup: allow (normal privilege checks still apply);
//! * caller uid 0 and in no cell: allow (host root bypasses reservations);
//! * otherwise deny (EPERM) and add one to the cell's counter map.
//!
//! Because each cell owns its programs, cells of different state directories
//! (parallel test runs) coexist without a shared pinned map, and `destroy`
//! detaches exactly what its cell attached: nothing that denies binds outlives
//! the cell. The attachment survives the creating process (the cgroup holds
//! it); later commands find the programs again by id.

use super::state::BindGuardIds;
use anyhow::{bail, Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
pub const BPF_CGROUP_INET4_BIND: u32 = 8;
pub const BPF_CGROUP_INET6_BIND: u32 = 9;
const BPF_F_ALLOW_MULTI: u32 = 2;

const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
const HELPER_GET_CURRENT_UID_GID: i32 = 15;
const HELPER_GET_CURRENT_ANCESTOR_CGROUP_ID: i32 = 123;
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// Offset of `user_port` (network byte order) in `struct bpf_sock_addr`.
const USER_PORT: i16 = 24;

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
fn st_w(dst: u8, off: i16, imm: i32) -> Insn {
    insn(0x62, dst, 0, off, imm)
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

/// Where a cell sits in the cgroup2 hierarchy, as BPF helpers see it.
#[derive(Debug, Clone, Copy)]
pub struct CellCgroups {
    pub cell_id: u64,
    pub cell_level: u32,
    /// The `cells` cgroup every cell on the host lives under.
    pub cells_id: u64,
    pub cells_level: u32,
}

/// Builds a cell's bind program. Jumps are relative to the next instruction.
fn program(ports: &[u16], where_: CellCgroups, counter_map_fd: i32) -> Vec<Insn> {
    let mut p = vec![mov64_reg(R6, R1), ldx_w(R7, R6, USER_PORT)];
    let n = ports.len() as i16;
    for (i, port) in ports.iter().enumerate() {
        // Jump over the remaining comparisons and the "not ours" exit.
        let skip = (n - 1 - i as i16) + 2;
        p.push(jeq_imm(R7, i32::from(port.to_be()), skip));
    }
    p.extend([mov64_imm(R0, 1), exit()]);
    // Reserved by this cell: is the caller a member?
    p.extend([
        mov64_imm(R1, where_.cell_level as i32),
        call(HELPER_GET_CURRENT_ANCESTOR_CGROUP_ID),
    ]);
    p.extend(ld_imm64(R1, 0, where_.cell_id));
    let allow_from_member = p.len();
    p.push(jeq_reg(R0, R1, 0)); // patched to ALLOW
                                // Host root (uid 0 outside every cell) bypasses the reservation.
    p.extend([call(HELPER_GET_CURRENT_UID_GID), mov32_self(R0)]);
    let deny_non_root = p.len();
    p.push(jne_imm(R0, 0, 0)); // patched to DENY
    p.extend([
        mov64_imm(R1, where_.cells_level as i32),
        call(HELPER_GET_CURRENT_ANCESTOR_CGROUP_ID),
    ]);
    p.extend(ld_imm64(R1, 0, where_.cells_id));
    let allow_host_root = p.len();
    p.push(jne_reg(R0, R1, 0)); // patched to ALLOW
    let deny = p.len();
    p.push(st_w(R10, -4, 0));
    p.extend(ld_imm64(
        R1,
        BPF_PSEUDO_MAP_FD,
        counter_map_fd as u32 as u64,
    ));
    p.extend([
        mov64_reg(R2, R10),
        add64_imm(R2, -4),
        call(HELPER_MAP_LOOKUP_ELEM),
        jeq_imm(R0, 0, 2),
        mov64_imm(R1, 1),
        atomic_add64(R0, R1, 0),
        mov64_imm(R0, 0),
        exit(),
    ]);
    let allow = p.len();
    p.extend([mov64_imm(R0, 1), exit()]);
    for (at, target) in [
        (allow_from_member, allow),
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

fn create_counter_map(cell: &str) -> Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
        map_name: name16(&format!("cell_{cell}")),
        ..Default::default()
    };
    let fd = sys_bpf(BPF_MAP_CREATE, &mut attr).context("creating the bind deny counter map")?;
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
        prog_name: name16("cell_bind"),
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
) -> Result<()> {
    let dir = open_dir(cgroup_root)?;
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

/// Loads and attaches a cell's bind programs at the hierarchy root.
pub fn guard(
    cgroup_root: &Path,
    cell: &str,
    ports: &[u16],
    where_: CellCgroups,
) -> Result<BindGuardIds> {
    let map = create_counter_map(cell)?;
    let insns = program(ports, where_, map.as_raw_fd());
    let p4 = load(&insns, BPF_CGROUP_INET4_BIND)?;
    let p6 = load(&insns, BPF_CGROUP_INET6_BIND)?;
    attach_op(BPF_PROG_ATTACH, cgroup_root, &p4, BPF_CGROUP_INET4_BIND)
        .context("attaching the bind4 program")?;
    if let Err(e) = attach_op(BPF_PROG_ATTACH, cgroup_root, &p6, BPF_CGROUP_INET6_BIND) {
        let _ = attach_op(BPF_PROG_DETACH, cgroup_root, &p4, BPF_CGROUP_INET4_BIND);
        return Err(e).context("attaching the bind6 program");
    }
    Ok(BindGuardIds {
        prog4: object_id(&p4)?,
        prog6: object_id(&p6)?,
        counter_map: object_id(&map)?,
    })
}

fn fd_by_id(cmd: libc::c_long, id: u32) -> std::io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        id,
        ..Default::default()
    };
    sys_bpf(cmd, &mut attr).map(owned)
}

/// Detaches a cell's programs; programs already gone are fine.
pub fn unguard(cgroup_root: &Path, ids: &BindGuardIds) -> Result<()> {
    for (id, attach_type) in [
        (ids.prog4, BPF_CGROUP_INET4_BIND),
        (ids.prog6, BPF_CGROUP_INET6_BIND),
    ] {
        let prog = match fd_by_id(BPF_PROG_GET_FD_BY_ID, id) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("finding bind program {id}")),
        };
        match attach_op(BPF_PROG_DETACH, cgroup_root, &prog, attach_type) {
            Ok(()) => {}
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .and_then(|e| e.raw_os_error())
                    == Some(libc::ENOENT) => {}
            Err(e) => return Err(e).with_context(|| format!("detaching bind program {id}")),
        }
    }
    Ok(())
}

/// Binds denied by a cell's programs so far (0 if the map is gone).
pub fn denied_binds(map_id: u32) -> u64 {
    let Ok(map) = fd_by_id(BPF_MAP_GET_FD_BY_ID, map_id) else {
        return 0;
    };
    let key = 0u32;
    let mut value = 0u64;
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: &key as *const u32 as u64,
        value: &mut value as *mut u64 as u64,
        ..Default::default()
    };
    match sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => value,
        Err(_) => 0,
    }
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
    fn port_comparisons_jump_to_the_membership_check() {
        let w = CellCgroups {
            cell_id: 7,
            cell_level: 3,
            cells_id: 5,
            cells_level: 1,
        };
        let p = program(&[80, 443], w, 3);
        // insns 2 and 3 compare ports; both land on insn 6 (after "r0 = 1; exit").
        assert_eq!(p[2].imm, i32::from(80u16.to_be()));
        assert_eq!(2 + 1 + p[2].off as usize, 6);
        assert_eq!(3 + 1 + p[3].off as usize, 6);
        assert_eq!(p[6], mov64_imm(R1, 3));
        assert_eq!(p.last(), Some(&exit()));
    }

    #[test]
    fn port_lists_follow_the_abi_rules() {
        assert!(check_ports(&[80, 443]).is_ok());
        assert!(check_ports(&[0]).is_err());
        assert!(check_ports(&[80, 80]).is_err());
        assert!(check_ports(&(1..=33).collect::<Vec<u16>>()).is_err());
    }
}
