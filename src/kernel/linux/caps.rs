//! Capability bounding sets per profile (the Linux side of the kauth rules; the
//! full mapping is in cellctl(8)).
//!
//! A process started in a cell keeps only the capabilities its profile lists
//! below; everything else leaves the bounding set before exec, so even a setuid
//! binary cannot regain it. Some capabilities are dropped at every profile
//! because they would let a cell cross into other cells, the host or the port
//! reservations: `SYS_ADMIN` (mounts, BPF detach, setns), `SYS_PTRACE` (the
//! cell's init holds host descriptors), `DAC_READ_SEARCH` (`open_by_handle_at`
//! escapes a chroot), `SYS_MODULE`, `SYS_RAWIO`, `MKNOD` (raw disk devices),
//! `BPF`, `PERFMON`, `SYSLOG`, the MAC and audit-read capabilities.

use crate::kernel::Profile;

pub const CHOWN: u32 = 0;
pub const DAC_OVERRIDE: u32 = 1;
pub const FOWNER: u32 = 3;
pub const FSETID: u32 = 4;
pub const KILL: u32 = 5;
pub const SETGID: u32 = 6;
pub const SETUID: u32 = 7;
pub const SETPCAP: u32 = 8;
pub const LINUX_IMMUTABLE: u32 = 9;
pub const NET_BIND_SERVICE: u32 = 10;
pub const NET_BROADCAST: u32 = 11;
pub const NET_ADMIN: u32 = 12;
pub const NET_RAW: u32 = 13;
pub const IPC_LOCK: u32 = 14;
pub const IPC_OWNER: u32 = 15;
pub const SYS_CHROOT: u32 = 18;
pub const SYS_PACCT: u32 = 20;
pub const SYS_BOOT: u32 = 22;
pub const SYS_NICE: u32 = 23;
pub const SYS_TIME: u32 = 25;
pub const SYS_TTY_CONFIG: u32 = 26;
pub const LEASE: u32 = 28;
pub const AUDIT_WRITE: u32 = 29;
pub const AUDIT_CONTROL: u32 = 30;
pub const SETFCAP: u32 = 31;
pub const WAKE_ALARM: u32 = 35;
pub const BLOCK_SUSPEND: u32 = 36;

/// What an ordinary root needs to run services inside its own cell.
const HIGH: &[u32] = &[
    CHOWN,
    DAC_OVERRIDE,
    FOWNER,
    FSETID,
    KILL,
    SETGID,
    SETUID,
    SETPCAP,
    NET_BIND_SERVICE,
    LEASE,
    AUDIT_WRITE,
    SETFCAP,
];

/// High plus privileged SysV IPC (kauth `SYSVIPC` is denied only at high).
const MEDIUM_EXTRA: &[u32] = &[IPC_LOCK, IPC_OWNER];

/// Medium plus the host administration that NetBSD's low profile defers to the
/// other security models: network configuration, raw sockets, chroot, time,
/// accounting, priorities, reboot (which only ends the cell's PID namespace).
const LOW_EXTRA: &[u32] = &[
    LINUX_IMMUTABLE,
    NET_BROADCAST,
    NET_ADMIN,
    NET_RAW,
    SYS_CHROOT,
    SYS_PACCT,
    SYS_BOOT,
    SYS_NICE,
    SYS_TIME,
    SYS_TTY_CONFIG,
    AUDIT_CONTROL,
    WAKE_ALARM,
    BLOCK_SUSPEND,
];

/// The capabilities a profile keeps, as a bit mask (bit n = capability n).
pub fn kept(profile: Profile) -> u64 {
    let lists: &[&[u32]] = match profile {
        Profile::High => &[HIGH],
        Profile::Medium => &[HIGH, MEDIUM_EXTRA],
        Profile::Low => &[HIGH, MEDIUM_EXTRA, LOW_EXTRA],
    };
    lists
        .iter()
        .flat_map(|l| l.iter())
        .fold(0, |m, c| m | 1 << c)
}

/// The highest capability number the running kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability outside `keep` from the bounding set and clears the
/// ambient set. Runs between fork and exec: no allocation.
pub fn restrict(keep: u64, last_cap: u32) -> std::io::Result<()> {
    for cap in 0..=last_cap {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: plain prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: as above.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `struct __user_cap_header_struct` and the two `__user_cap_data_struct`s
/// of capability version 3 (64 bits).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Makes every permitted capability of the calling thread effective again
/// (a change of ids with `PR_SET_KEEPCAPS` keeps them permitted only).
pub fn raise_permitted() -> std::io::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget/capset with a version-3 header and two data structs.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        for d in &mut data {
            d.effective = d.permitted;
        }
        if libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_nest_and_never_keep_the_crossing_capabilities() {
        let (l, m, h) = (
            kept(Profile::Low),
            kept(Profile::Medium),
            kept(Profile::High),
        );
        assert_eq!(h & m, h);
        assert_eq!(m & l, m);
        // SYS_ADMIN 21, SYS_PTRACE 19, DAC_READ_SEARCH 2, SYS_MODULE 16, MKNOD 27, BPF 39, SYSLOG 34
        for cap in [2, 16, 17, 19, 21, 27, 34, 39] {
            assert_eq!(l & (1 << cap), 0, "cap {cap} kept at low");
        }
        assert_eq!(h & (1 << IPC_OWNER), 0);
        assert_ne!(m & (1 << IPC_OWNER), 0);
        assert_eq!(m & (1 << NET_RAW), 0);
        assert_ne!(l & (1 << NET_RAW), 0);
    }
}
