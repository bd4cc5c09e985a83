//! The symbols of a rump kernel built from the 2016 NetBSD 7.99.34 tree
//! (`rumpkernel/src-netbsd` with `buildrump.sh`), amd64: every kernel symbol
//! prefixed with `rumpns_`, and `proc_lock` a pointer. Its constants and
//! offsets come from kmod/kabi/rump-2016.tab (see `common`). Used only to
//! run the module against NetBSD's real kauth, sysctl, secmodel and module
//! code in userspace (feature `rump2016`).

#![allow(non_upper_case_globals)]

use core::ffi::{c_char, c_int, c_uint, c_void};

pub use super::common::*;

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
