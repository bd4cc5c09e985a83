//! The parts of the kernel ABI that NetBSD 10.1 and the 2016 rump tree share:
//! sysctl, module and kauth constants, the opaque handle types and the few
//! structures the glue fills in. Each ABI file re-exports this and adds what
//! differs (structure offsets, `kauth_action_t`, symbol names).

#![allow(non_upper_case_globals)]

// The ABI file's own constants and types (offsets, `KauthAction`) come from the parent.
use super::*;
use core::ffi::{c_char, c_int, c_uint, c_void};

// sysctl(9).
pub const SYSCTLNODE_SIZE: usize = 96;
pub const SYSCTLNODE_FLAGS: usize = 0;
pub const SYSCTLNODE_NUM: usize = 4;
pub const SYSCTLNODE_NAME: usize = 8;
pub const CTL_SECURITY: c_int = 13;
pub const CTL_EOL: c_int = -1;
pub const CTL_CREATE: c_int = -3;
pub const CTLTYPE_NODE: c_int = 1;
pub const CTLTYPE_INT: c_int = 2;
pub const CTLTYPE_STRING: c_int = 3;
pub const CTLTYPE_STRUCT: c_int = 5;
pub const CTLFLAG_READONLY: c_int = 0;
pub const CTLFLAG_READWRITE: c_int = 0x70;
pub const CTLFLAG_PERMANENT: c_int = 0x200;
pub const CTLFLAG_IMMEDIATE: c_int = 0x800;

// module(9).
pub const MODULE_CLASS_SECMODEL: c_int = 5;
pub const MODULE_CMD_INIT: c_int = 0;
pub const MODULE_CMD_FINI: c_int = 1;
pub const MODULE_CMD_AUTOUNLOAD: c_int = 3;
pub const MAXMODNAME: usize = 32;

// callout(9), log(9), kmem(9), mutex(9).
pub const CALLOUT_SIZE: usize = 80;
pub const CALLOUT_MPSAFE: c_uint = 0x100;
pub const LOG_INFO: c_int = 6;
pub const LOG_NOTICE: c_int = 5;
pub const KM_NOSLEEP: c_uint = 0x2;
pub const MUTEX_DEFAULT: c_int = 0;
pub const IPL_NONE: c_int = 0;

/// Every checked value by its probe name (kmod/layout/probe*.c).
pub const LAYOUT: &[(&str, i64)] = &[
    ("netbsd_version", NETBSD_VERSION as i64),
    ("proc_p_list", PROC_P_LIST as i64),
    ("proc_p_cred", PROC_P_CRED as i64),
    ("proc_p_cwdi", PROC_P_CWDI as i64),
    ("proc_p_vmspace", PROC_P_VMSPACE as i64),
    ("proc_p_stat", PROC_P_STAT as i64),
    ("proc_p_pid", PROC_P_PID as i64),
    ("proc_p_uticks", PROC_P_UTICKS as i64),
    ("proc_p_sticks", PROC_P_STICKS as i64),
    ("proc_p_iticks", PROC_P_ITICKS as i64),
    ("szomb", SZOMB as i64),
    ("lwp_l_proc", LWP_L_PROC as i64),
    ("lwp_l_cred", LWP_L_CRED as i64),
    ("cwdinfo_cwdi_rdir", CWDI_RDIR as i64),
    ("cwdinfo_cwdi_lock", CWDI_LOCK as i64),
    ("rw_reader", RW_READER as i64),
    ("vmspace_vm_map_size", VMSPACE_VM_MAP_SIZE as i64),
    ("vnode_v_type", VNODE_V_TYPE as i64),
    ("vdir", VDIR as i64),
    ("sysctlnode_size", SYSCTLNODE_SIZE as i64),
    ("sysctlnode_flags", SYSCTLNODE_FLAGS as i64),
    ("sysctlnode_num", SYSCTLNODE_NUM as i64),
    ("sysctlnode_name", SYSCTLNODE_NAME as i64),
    ("ctl_security", CTL_SECURITY as i64),
    ("ctl_eol", CTL_EOL as i64),
    ("ctl_create", CTL_CREATE as i64),
    ("ctltype_node", CTLTYPE_NODE as i64),
    ("ctltype_int", CTLTYPE_INT as i64),
    ("ctltype_string", CTLTYPE_STRING as i64),
    ("ctltype_struct", CTLTYPE_STRUCT as i64),
    ("ctlflag_readwrite", CTLFLAG_READWRITE as i64),
    ("ctlflag_permanent", CTLFLAG_PERMANENT as i64),
    ("ctlflag_immediate", CTLFLAG_IMMEDIATE as i64),
    ("modinfo_size", core::mem::size_of::<ModInfo>() as i64),
    (
        "modinfo_mi_version",
        core::mem::offset_of!(ModInfo, mi_version) as i64,
    ),
    (
        "modinfo_mi_class",
        core::mem::offset_of!(ModInfo, mi_class) as i64,
    ),
    (
        "modinfo_mi_modcmd",
        core::mem::offset_of!(ModInfo, mi_modcmd) as i64,
    ),
    (
        "modinfo_mi_name",
        core::mem::offset_of!(ModInfo, mi_name) as i64,
    ),
    (
        "modinfo_mi_required",
        core::mem::offset_of!(ModInfo, mi_required) as i64,
    ),
    ("module_class_secmodel", MODULE_CLASS_SECMODEL as i64),
    ("module_cmd_init", MODULE_CMD_INIT as i64),
    ("module_cmd_fini", MODULE_CMD_FINI as i64),
    ("module_cmd_autounload", MODULE_CMD_AUTOUNLOAD as i64),
    ("maxmodname", MAXMODNAME as i64),
    ("callout_size", core::mem::size_of::<Callout>() as i64),
    ("callout_mpsafe", CALLOUT_MPSAFE as i64),
    ("log_info", LOG_INFO as i64),
    ("log_notice", LOG_NOTICE as i64),
    ("af_inet", crate::kauth::af::INET as i64),
    ("af_inet6", crate::kauth::af::INET6 as i64),
    ("pf_route", crate::kauth::af::ROUTE as i64),
    ("pf_oroute", crate::kauth::af::OROUTE as i64),
    ("eperm", crate::errno::EPERM.0 as i64),
    ("enoent", crate::errno::ENOENT.0 as i64),
    ("enomem", crate::errno::ENOMEM.0 as i64),
    ("efault", crate::errno::EFAULT.0 as i64),
    ("ebusy", crate::errno::EBUSY.0 as i64),
    ("eexist", crate::errno::EEXIST.0 as i64),
    ("enotdir", crate::errno::ENOTDIR.0 as i64),
    ("einval", crate::errno::EINVAL.0 as i64),
    ("enotty", crate::errno::ENOTTY.0 as i64),
    ("eoverflow", crate::errno::EOVERFLOW.0 as i64),
];

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

/// `modinfo_t`.
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
