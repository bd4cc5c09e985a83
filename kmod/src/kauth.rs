//! The kauth(9) actions and requests the policy distinguishes, as the
//! module's own stable enums. The policy never sees a kernel number: the
//! kernel glue maps each number to one of these with the tables generated
//! from the target release's headers (`crate::kabi`, built by build.rs
//! from kmod/kabi/*.tab). Every number the policy does not name maps to
//! `Other`.
//!
//! kauth's enums do not only grow at the end: NetBSD removed
//! KAUTH_REQ_SYSTEM_DEBUG_IPKDB (2018) and KAUTH_REQ_PROCESS_PROCFS_CTL,
//! shifting every later number, which is why no number is written here.

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

macro_rules! stable_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// A number the policy does not name.
            Other,
        }

        impl $name {
            /// Every named variant (not `Other`).
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
        }
    };
}

stable_enum! {
    /// `KAUTH_PROCESS_*`.
    ProcessAction {
        Cansee, Corename, Fork, KeventFilter, Ktrace, Nice, Procfs, Ptrace, Rlimit,
        SchedulerGetaffinity, SchedulerSetaffinity, SchedulerGetparam, SchedulerSetparam,
        Setid, Signal, Stopflag,
    }
}

stable_enum! {
    /// `KAUTH_REQ_PROCESS_*` the policy names.
    ProcessReq { RlimitSet }
}

stable_enum! {
    /// `KAUTH_CRED_*`.
    CredAction { Init, Fork, Copy, Free, Chroot }
}

stable_enum! {
    /// `KAUTH_SYSTEM_*` the policy names.
    SystemAction {
        Accounting, Chroot, Cpu, Devmapper, Filehandle, Intr, Kernaddr, Mknod, Module, Mount,
        Mqueue, Pset, Reboot, Semaphore, Swapctl, Sysctl, Sysvipc, Time,
    }
}

stable_enum! {
    /// `KAUTH_REQ_SYSTEM_*` the policy names.
    SystemReq {
        MountGet, MountNew, MountUnmount, MountUpdate, MountUmap, MountDevice, SysctlAdd,
        SysctlDelete, SysctlDesc, SysctlModify, SysctlPrvt,
    }
}

stable_enum! {
    /// `KAUTH_NETWORK_*` the policy names.
    NetworkAction { Bind, Socket }
}

stable_enum! {
    /// `KAUTH_REQ_NETWORK_*` the policy names.
    NetworkReq {
        BindPort, BindPrivport, SocketOpen, SocketRawsock, SocketCansee, SocketDrop,
        SocketSetpriv,
    }
}

stable_enum! {
    /// `KAUTH_DEVICE_*` the policy names.
    DeviceAction { TtySti }
}

/// Listener results.
pub mod result {
    use crate::kabi;
    pub const ALLOW: i32 = kabi::KAUTH_RESULT_ALLOW as i32;
    pub const DENY: i32 = kabi::KAUTH_RESULT_DENY as i32;
    pub const DEFER: i32 = kabi::KAUTH_RESULT_DEFER as i32;
}

/// NetBSD address and protocol families the policy looks at.
pub mod af {
    use crate::kabi;
    pub const INET: u8 = kabi::AF_INET as u8;
    pub const INET6: u8 = kabi::AF_INET6 as u8;
    /// `PF_OROUTE`, the old routing socket.
    pub const OROUTE: i32 = kabi::PF_OROUTE as i32;
    /// `PF_ROUTE`.
    pub const ROUTE: i32 = kabi::PF_ROUTE as i32;
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
