//! What every kernel binding shares: the release's constants and offsets
//! (typed views of [`crate::kabi`], generated from the release's table),
//! the opaque handle types and the few structures the glue fills in. Each
//! binding file re-exports this and adds its symbols.

use core::ffi::{c_char, c_int, c_uint, c_void};

use crate::kabi;

/// `kauth_action_t` of the release (64-bit since NetBSD 10; 32-bit before).
pub use crate::kabi::KauthAction;

/// `__NetBSD_Version__` of the release the module is built for: the
/// module's `mi_version`. The kernel refuses a module whose version differs
/// by 10000 or more (a module built for 10.0 does not load on 10.1).
pub const NETBSD_VERSION: c_uint = kabi::NETBSD_VERSION as c_uint;

// struct proc, struct lwp, struct cwdinfo, struct vmspace, struct vnode,
// struct socket, struct rlimit.
pub const PROC_P_LIST: usize = kabi::PROC_P_LIST as usize;
pub const PROC_P_CRED: usize = kabi::PROC_P_CRED as usize;
pub const PROC_P_CWDI: usize = kabi::PROC_P_CWDI as usize;
pub const PROC_P_VMSPACE: usize = kabi::PROC_P_VMSPACE as usize;
pub const PROC_P_FLAG: usize = kabi::PROC_P_FLAG as usize;
pub const PROC_P_STAT: usize = kabi::PROC_P_STAT as usize;
pub const PROC_P_UTICKS: usize = kabi::PROC_P_UTICKS as usize;
pub const PROC_P_STICKS: usize = kabi::PROC_P_STICKS as usize;
pub const PROC_P_ITICKS: usize = kabi::PROC_P_ITICKS as usize;
pub const PK_MARKER: u32 = kabi::PK_MARKER as u32;
pub const SZOMB: u8 = kabi::SZOMB as u8;
pub const LWP_L_PROC: usize = kabi::LWP_L_PROC as usize;
pub const LWP_L_CRED: usize = kabi::LWP_L_CRED as usize;
pub const CWDI_RDIR: usize = kabi::CWDINFO_CWDI_RDIR as usize;
pub const CWDI_LOCK: usize = kabi::CWDINFO_CWDI_LOCK as usize;
pub const RW_READER: c_int = kabi::RW_READER as c_int;
pub const VMSPACE_VM_MAP_SIZE: usize = kabi::VMSPACE_VM_MAP_SIZE as usize;
pub const VNODE_V_TYPE: usize = kabi::VNODE_V_TYPE as usize;
pub const VDIR: c_int = kabi::VDIR as c_int;
pub const SOCKET_SO_OPTIONS: usize = kabi::SOCKET_SO_OPTIONS as usize;
pub const SO_REUSEPORT: u16 = kabi::SO_REUSEPORT as u16;
pub const RLIMIT_RLIM_MAX: usize = kabi::RLIMIT_RLIM_MAX as usize;
pub const RLIMIT_AS: usize = kabi::RLIMIT_AS as usize;

// sysctl(9).
pub const SYSCTLNODE_SIZE: usize = kabi::SYSCTLNODE_SIZE as usize;
pub const CTL_SECURITY: c_int = kabi::CTL_SECURITY as c_int;
pub const CTL_EOL: c_int = kabi::CTL_EOL as c_int;
pub const CTL_CREATE: c_int = kabi::CTL_CREATE as c_int;
pub const CTLTYPE_NODE: c_int = kabi::CTLTYPE_NODE as c_int;
pub const CTLTYPE_INT: c_int = kabi::CTLTYPE_INT as c_int;
pub const CTLTYPE_STRING: c_int = kabi::CTLTYPE_STRING as c_int;
pub const CTLTYPE_STRUCT: c_int = kabi::CTLTYPE_STRUCT as c_int;
pub const CTLFLAG_READONLY: c_int = kabi::CTLFLAG_READONLY as c_int;
pub const CTLFLAG_READWRITE: c_int = kabi::CTLFLAG_READWRITE as c_int;
pub const CTLFLAG_IMMEDIATE: c_int = kabi::CTLFLAG_IMMEDIATE as c_int;

// module(9).
pub const MODULE_CLASS_SECMODEL: c_int = kabi::MODULE_CLASS_SECMODEL as c_int;

// callout(9), log(9), kmem(9), mutex(9).
pub const CALLOUT_SIZE: usize = kabi::CALLOUT_SIZE as usize;
pub const CALLOUT_MPSAFE: c_uint = kabi::CALLOUT_MPSAFE as c_uint;
pub const LOG_INFO: c_int = kabi::LOG_INFO as c_int;
pub const LOG_NOTICE: c_int = kabi::LOG_NOTICE as c_int;
pub const KM_NOSLEEP: c_uint = kabi::KM_NOSLEEP as c_uint;
pub const MUTEX_DEFAULT: c_int = kabi::MUTEX_DEFAULT as c_int;
/// `IPL_NONE`: 0 on every port (machine/intr.h is kernel-only).
pub const IPL_NONE: c_int = 0;

pub type KauthCred = *mut c_void;
pub type KauthListener = *mut c_void;
pub type KauthKey = *mut c_void;
pub type Secmodel = *mut c_void;
pub type Lwp = *mut c_void;
pub type Vnode = *mut c_void;

/// `kauth_scope_callback_t`: cred, action, scope cookie, arg0..arg3.
pub type KauthCallback = unsafe extern "C" fn(
    KauthCred,
    KauthAction,
    *mut c_void,
    *mut c_void,
    *mut c_void,
    *mut c_void,
    *mut c_void,
) -> c_int;

/// `sysctlfn` (SYSCTLFN_PROTO).
pub type SysctlFn = unsafe extern "C" fn(
    *const c_int,
    c_uint,
    *mut c_void,
    *mut usize,
    *const c_void,
    usize,
    *const c_int,
    Lwp,
    *const c_void,
) -> c_int;

pub type ModCmdFn = unsafe extern "C" fn(c_int, *mut c_void) -> c_int;

/// `modinfo_t` (its layout is checked against the table in tests/kabi.rs).
#[repr(C)]
pub struct ModInfo {
    pub mi_version: c_uint,
    pub mi_class: c_int,
    pub mi_modcmd: Option<ModCmdFn>,
    pub mi_name: *const c_char,
    pub mi_required: *const c_char,
}

// SAFETY: immutable after link time; the pointers are to static strings.
unsafe impl Sync for ModInfo {}

/// `callout_t`: opaque storage of the size the header fixes.
#[repr(C, align(8))]
pub struct Callout(pub [u8; CALLOUT_SIZE]);

/// `struct timespec`.
#[repr(C)]
#[derive(Default)]
pub struct Timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

/// `LIST_HEAD(proclist, proc)`.
#[repr(C)]
pub struct ProcList {
    pub lh_first: *mut c_void,
}
