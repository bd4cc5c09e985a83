//! kauth(9) action and request numbers used by the policy, as plain
//! constants so the policy tables can be read and tested on any host.
//!
//! Values are those of NetBSD 10.1's `sys/kauth.h`. The enums there only
//! grow at the end, so the values below are stable across releases; the
//! layout check (`make check-layout`) compares them with the real header
//! where the header is available.

/// kauth action type (`kauth_action_t`, 64-bit since NetBSD 10).
pub type Action = u64;

/// Scope names as registered by the kernel.
pub mod scope {
    use core::ffi::CStr;
    pub const PROCESS: &CStr = c"org.netbsd.kauth.process";
    pub const CRED: &CStr = c"org.netbsd.kauth.cred";
    pub const SYSTEM: &CStr = c"org.netbsd.kauth.system";
    pub const NETWORK: &CStr = c"org.netbsd.kauth.network";
    pub const MACHDEP: &CStr = c"org.netbsd.kauth.machdep";
    pub const DEVICE: &CStr = c"org.netbsd.kauth.device";
}

/// Listener results.
pub mod result {
    pub const ALLOW: i32 = 0;
    pub const DENY: i32 = 1;
    pub const DEFER: i32 = 2;
}

/// `KAUTH_PROCESS_*`.
pub mod process {
    use super::Action;
    pub const CANSEE: Action = 1;
    pub const CORENAME: Action = 2;
    pub const FORK: Action = 3;
    pub const KEVENT_FILTER: Action = 4;
    pub const KTRACE: Action = 5;
    pub const NICE: Action = 6;
    pub const PROCFS: Action = 7;
    pub const PTRACE: Action = 8;
    pub const RLIMIT: Action = 9;
    pub const SCHEDULER_GETAFFINITY: Action = 10;
    pub const SCHEDULER_SETAFFINITY: Action = 11;
    pub const SCHEDULER_GETPARAM: Action = 12;
    pub const SCHEDULER_SETPARAM: Action = 13;
    pub const SETID: Action = 14;
    pub const SIGNAL: Action = 15;
    pub const STOPFLAG: Action = 16;
    /// Highest known action (for exhaustive tests).
    pub const LAST: Action = STOPFLAG;
}

/// `KAUTH_CRED_*`.
pub mod cred {
    use super::Action;
    pub const INIT: Action = 1;
    pub const FORK: Action = 2;
    pub const COPY: Action = 3;
    pub const FREE: Action = 4;
    pub const CHROOT: Action = 5;
}

/// `KAUTH_SYSTEM_*` and the `KAUTH_REQ_SYSTEM_*` requests the policy names.
pub mod system {
    use super::Action;
    pub const ACCOUNTING: Action = 1;
    pub const CHROOT: Action = 2;
    pub const CHSYSFLAGS: Action = 3;
    pub const CPU: Action = 4;
    pub const DEBUG: Action = 5;
    pub const FILEHANDLE: Action = 6;
    pub const MKNOD: Action = 7;
    pub const MOUNT: Action = 8;
    pub const PSET: Action = 9;
    pub const REBOOT: Action = 10;
    pub const SETIDCORE: Action = 11;
    pub const SWAPCTL: Action = 12;
    pub const SYSCTL: Action = 13;
    pub const TIME: Action = 14;
    pub const MODULE: Action = 15;
    pub const FS_RESERVEDSPACE: Action = 16;
    pub const FS_QUOTA: Action = 17;
    pub const SEMAPHORE: Action = 18;
    pub const SYSVIPC: Action = 19;
    pub const MQUEUE: Action = 20;
    pub const VERIEXEC: Action = 21;
    pub const DEVMAPPER: Action = 22;
    pub const MAP_VA_ZERO: Action = 23;
    pub const LFS: Action = 24;
    pub const FS_EXTATTR: Action = 25;
    pub const FS_SNAPSHOT: Action = 26;
    pub const INTR: Action = 27;
    pub const KERNADDR: Action = 28;
    /// Highest known action (for exhaustive tests).
    pub const LAST: Action = KERNADDR;

    /// `enum kauth_system_req` values.
    pub mod req {
        pub const MOUNT_GET: u64 = 5;
        pub const MOUNT_NEW: u64 = 6;
        pub const MOUNT_UNMOUNT: u64 = 7;
        pub const MOUNT_UPDATE: u64 = 8;
        pub const SYSCTL_ADD: u64 = 13;
        pub const SYSCTL_DELETE: u64 = 14;
        pub const SYSCTL_DESC: u64 = 15;
        pub const SYSCTL_MODIFY: u64 = 16;
        pub const SYSCTL_PRVT: u64 = 17;
        pub const MOUNT_UMAP: u64 = 38;
        pub const MOUNT_DEVICE: u64 = 39;
        /// Highest request the exhaustive tests sweep.
        pub const LAST: u64 = 45;
    }
}

/// `KAUTH_NETWORK_*` and the `KAUTH_REQ_NETWORK_*` requests the policy names.
pub mod network {
    use super::Action;
    pub const ALTQ: Action = 1;
    pub const BIND: Action = 2;
    pub const FIREWALL: Action = 3;
    pub const INTERFACE: Action = 4;
    pub const FORWSRCRT: Action = 5;
    pub const NFS: Action = 6;
    pub const ROUTE: Action = 7;
    pub const SOCKET: Action = 8;
    pub const INTERFACE_PPP: Action = 9;
    pub const INTERFACE_SLIP: Action = 10;
    pub const INTERFACE_STRIP: Action = 11;
    pub const INTERFACE_TUN: Action = 12;
    pub const INTERFACE_BRIDGE: Action = 13;
    pub const IPSEC: Action = 14;
    pub const INTERFACE_PVC: Action = 15;
    pub const IPV6: Action = 16;
    pub const SMB: Action = 17;
    pub const INTERFACE_WG: Action = 18;
    /// Highest known action (for exhaustive tests).
    pub const LAST: Action = INTERFACE_WG;

    /// `enum kauth_network_req` values.
    pub mod req {
        pub const BIND_PORT: u64 = 13;
        pub const BIND_PRIVPORT: u64 = 14;
        pub const SOCKET_OPEN: u64 = 23;
        pub const SOCKET_RAWSOCK: u64 = 24;
        pub const SOCKET_CANSEE: u64 = 25;
        pub const SOCKET_DROP: u64 = 26;
        pub const SOCKET_SETPRIV: u64 = 27;
        /// Highest request the exhaustive tests sweep.
        pub const LAST: u64 = 50;
    }
}

/// NetBSD address and protocol families the policy looks at.
pub mod af {
    pub const INET: u8 = 2;
    pub const INET6: u8 = 24;
    /// `PF_OROUTE`, the old routing socket.
    pub const OROUTE: i32 = 17;
    /// `PF_ROUTE`.
    pub const ROUTE: i32 = 34;
}

/// The port of a NetBSD `sockaddr_in`/`sockaddr_in6` in host byte order:
/// `bytes` starts at the sockaddr (`sa_len`, `sa_family`, big-endian port).
/// `None` for other families or a sockaddr too short to hold a port.
pub fn sockaddr_port(bytes: &[u8]) -> Option<u16> {
    let [len, family, hi, lo, ..] = *bytes else {
        return None;
    };
    if usize::from(len) < 4 || !matches!(family, af::INET | af::INET6) {
        return None;
    }
    Some(u16::from_be_bytes([hi, lo]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_ports() {
        assert_eq!(sockaddr_port(&[16, af::INET, 0x1f, 0x90, 0, 0]), Some(8080));
        assert_eq!(sockaddr_port(&[28, af::INET6, 0, 80]), Some(80));
        assert_eq!(sockaddr_port(&[16, 1, 0, 80]), None, "AF_LOCAL");
        assert_eq!(sockaddr_port(&[2, af::INET, 0, 80]), None, "short sa_len");
        assert_eq!(sockaddr_port(&[16, af::INET, 0]), None, "short buffer");
        assert_eq!(sockaddr_port(&[16, af::INET, 0, 0]), Some(0));
    }
}
