//! The ABI of a rump kernel built from the 2016 NetBSD 7.99.34 tree
//! (`rumpkernel/src-netbsd` with `buildrump.sh`), amd64: 32-bit
//! `kauth_action_t`, older `struct proc`/`lwp` layouts, `proc_lock` a
//! pointer, and every kernel symbol prefixed with `rumpns_`. Used only to
//! run the module against NetBSD's real kauth, sysctl, secmodel and module
//! code in userspace (feature `rump2016`); the offsets below were measured
//! by compiling kmod/layout/probe.c's expressions with that tree's kernel
//! flags. tests/layout.rs does not apply to this file.

#![allow(non_upper_case_globals)]

use core::ffi::{c_char, c_int, c_uint, c_void};

/// `__NetBSD_Version__` of the release the module is built for; the kernel
/// refuses a module whose version differs by 10000 or more (a module built
/// for 10.0 does not load on 10.1 without `modload -f`).
pub const NETBSD_VERSION: c_uint = 799_003_400;

// struct proc, struct lwp, struct cwdinfo, struct vmspace, struct vnode.
pub const PROC_P_LIST: usize = 0;
pub const PROC_P_CRED: usize = 96;
pub const PROC_P_CWDI: usize = 112;
pub const PROC_P_VMSPACE: usize = 136;
pub const PROC_P_STAT: usize = 208;
pub const PROC_P_PID: usize = 212;
pub const PROC_P_UTICKS: usize = 384;
pub const PROC_P_STICKS: usize = 392;
pub const PROC_P_ITICKS: usize = 400;
pub const SZOMB: u8 = 5;
pub const LWP_L_PROC: usize = 456;
pub const LWP_L_CRED: usize = 784;
pub const CWDI_RDIR: usize = 8;
pub const CWDI_LOCK: usize = 24;
pub const RW_READER: c_int = 0;
pub const VMSPACE_VM_MAP_SIZE: usize = 248;
pub const VNODE_V_TYPE: usize = 264;
pub const VDIR: c_int = 2;

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

/// `kauth_action_t` (32-bit before NetBSD 10).
pub type KauthAction = u32;

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

extern "C" {
    #[link_name = "rumpns_kauth_listen_scope"]
    pub fn kauth_listen_scope(
        id: *const c_char,
        cb: KauthCallback,
        cookie: *mut c_void,
    ) -> KauthListener;
    #[link_name = "rumpns_kauth_unlisten_scope"]
    pub fn kauth_unlisten_scope(l: KauthListener);
    #[link_name = "rumpns_kauth_register_key"]
    pub fn kauth_register_key(sm: Secmodel, key: *mut KauthKey) -> c_int;
    #[link_name = "rumpns_kauth_deregister_key"]
    pub fn kauth_deregister_key(key: KauthKey) -> c_int;
    #[link_name = "rumpns_kauth_cred_getdata"]
    pub fn kauth_cred_getdata(cred: KauthCred, key: KauthKey) -> *mut c_void;
    #[link_name = "rumpns_kauth_cred_setdata"]
    pub fn kauth_cred_setdata(cred: KauthCred, key: KauthKey, data: *mut c_void);
    #[link_name = "rumpns_kauth_cred_geteuid"]
    pub fn kauth_cred_geteuid(cred: KauthCred) -> u32;
    #[link_name = "rumpns_kauth_cred_alloc"]
    pub fn kauth_cred_alloc() -> KauthCred;
    #[link_name = "rumpns_kauth_cred_clone"]
    pub fn kauth_cred_clone(from: KauthCred, to: KauthCred);

    #[link_name = "rumpns_secmodel_register"]
    pub fn secmodel_register(
        sm: *mut Secmodel,
        id: *const c_char,
        name: *const c_char,
        behavior: *mut c_void,
        eval: *const c_void,
        setinfo: *const c_void,
    ) -> c_int;
    #[link_name = "rumpns_secmodel_deregister"]
    pub fn secmodel_deregister(sm: Secmodel) -> c_int;

    #[link_name = "rumpns_sysctl_createv"]
    pub fn sysctl_createv(
        log: *mut *mut c_void,
        cflags: c_int,
        rnode: *const *const c_void,
        cnode: *mut *const c_void,
        flags: c_int,
        ty: c_int,
        name: *const c_char,
        descr: *const c_char,
        func: Option<SysctlFn>,
        qv: u64,
        newp: *mut c_void,
        newlen: usize,
        ...
    ) -> c_int;
    #[link_name = "rumpns_sysctl_teardown"]
    pub fn sysctl_teardown(log: *mut *mut c_void);
    #[link_name = "rumpns_sysctl_copyin"]
    pub fn sysctl_copyin(l: Lwp, uaddr: *const c_void, kaddr: *mut c_void, len: usize) -> c_int;
    #[link_name = "rumpns_sysctl_copyout"]
    pub fn sysctl_copyout(l: Lwp, kaddr: *const c_void, uaddr: *mut c_void, len: usize) -> c_int;

    #[link_name = "rumpns_kmem_alloc"]
    pub fn kmem_alloc(size: usize, flags: c_uint) -> *mut c_void;
    #[link_name = "rumpns_kmem_free"]
    pub fn kmem_free(p: *mut c_void, size: usize);
    #[link_name = "rumpns_mutex_obj_alloc"]
    pub fn mutex_obj_alloc(ty: c_int, ipl: c_int) -> *mut c_void;
    #[link_name = "rumpns_mutex_obj_free"]
    pub fn mutex_obj_free(m: *mut c_void) -> bool;
    #[link_name = "rumpns_mutex_enter"]
    pub fn mutex_enter(m: *mut c_void);
    #[link_name = "rumpns_mutex_exit"]
    pub fn mutex_exit(m: *mut c_void);
    #[link_name = "rumpns_rw_enter"]
    pub fn rw_enter(rw: *mut c_void, op: c_int);
    #[link_name = "rumpns_rw_exit"]
    pub fn rw_exit(rw: *mut c_void);

    #[link_name = "rumpns_callout_init"]
    pub fn callout_init(c: *mut Callout, flags: c_uint);
    #[link_name = "rumpns_callout_setfunc"]
    pub fn callout_setfunc(c: *mut Callout, f: unsafe extern "C" fn(*mut c_void), arg: *mut c_void);
    #[link_name = "rumpns_callout_schedule"]
    pub fn callout_schedule(c: *mut Callout, ticks: c_int);
    #[link_name = "rumpns_callout_halt"]
    pub fn callout_halt(c: *mut Callout, interlock: *mut c_void) -> bool;
    #[link_name = "rumpns_callout_destroy"]
    pub fn callout_destroy(c: *mut Callout);

    #[link_name = "rumpns_getnanouptime"]
    pub fn getnanouptime(ts: *mut Timespec);
    #[link_name = "rumpns_log"]
    pub fn log(level: c_int, fmt: *const c_char, ...);
    #[link_name = "rumpns_panic"]
    pub fn panic(fmt: *const c_char, ...) -> !;
    #[link_name = "rumpns_namei_simple_kernel"]
    pub fn namei_simple_kernel(path: *const c_char, flags: *const c_void, vp: *mut Vnode) -> c_int;
    #[link_name = "rumpns_vrele"]
    pub fn vrele(vp: Vnode);
    #[link_name = "rumpns_proc_crmod_enter"]
    pub fn proc_crmod_enter();
    #[link_name = "rumpns_proc_crmod_leave"]
    pub fn proc_crmod_leave(new: KauthCred, old: KauthCred, setid: bool);

    #[link_name = "rumpns_hz"]
    pub static hz: c_int;
    /// `kmutex_t *proc_lock` (a pointer before NetBSD 10).
    #[link_name = "rumpns_proc_lock"]
    static proc_lock: *mut c_void;
    #[link_name = "rumpns_allproc"]
    pub static allproc: ProcList;
    #[link_name = "rumpns_zombproc"]
    pub static zombproc: ProcList;
    #[link_name = "rumpns_NSM_FOLLOW_NOEMULROOT"]
    pub static NSM_FOLLOW_NOEMULROOT: *const c_void;
}

/// The address of the kernel's `proc_lock`.
pub fn proc_lock_ptr() -> *mut c_void {
    // SAFETY: set once at boot, read only.
    unsafe { proc_lock }
}
