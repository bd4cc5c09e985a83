//! The symbols of a real NetBSD kernel (10.x and later; the constants and
//! offsets of the release come from its table, see `common`).

#![allow(non_upper_case_globals)]

use core::ffi::{c_char, c_int, c_uint, c_void};

pub use super::common::*;

extern "C" {
    pub fn kauth_listen_scope(
        id: *const c_char,
        cb: KauthCallback,
        cookie: *mut c_void,
    ) -> KauthListener;
    pub fn kauth_unlisten_scope(l: KauthListener);
    pub fn kauth_register_key(sm: Secmodel, key: *mut KauthKey) -> c_int;
    pub fn kauth_deregister_key(key: KauthKey) -> c_int;
    pub fn kauth_cred_getdata(cred: KauthCred, key: KauthKey) -> *mut c_void;
    pub fn kauth_cred_setdata(cred: KauthCred, key: KauthKey, data: *mut c_void);
    pub fn kauth_cred_geteuid(cred: KauthCred) -> u32;
    pub fn kauth_cred_alloc() -> KauthCred;
    pub fn kauth_cred_clone(from: KauthCred, to: KauthCred);

    pub fn secmodel_register(
        sm: *mut Secmodel,
        id: *const c_char,
        name: *const c_char,
        behavior: *mut c_void,
        eval: *const c_void,
        setinfo: *const c_void,
    ) -> c_int;
    pub fn secmodel_deregister(sm: Secmodel) -> c_int;

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
    pub fn sysctl_teardown(log: *mut *mut c_void);
    pub fn sysctl_copyin(l: Lwp, uaddr: *const c_void, kaddr: *mut c_void, len: usize) -> c_int;
    pub fn sysctl_copyout(l: Lwp, kaddr: *const c_void, uaddr: *mut c_void, len: usize) -> c_int;

    pub fn kmem_alloc(size: usize, flags: c_uint) -> *mut c_void;
    pub fn kmem_free(p: *mut c_void, size: usize);
    pub fn mutex_obj_alloc(ty: c_int, ipl: c_int) -> *mut c_void;
    pub fn mutex_obj_free(m: *mut c_void) -> bool;
    pub fn mutex_enter(m: *mut c_void);
    pub fn mutex_exit(m: *mut c_void);
    pub fn rw_enter(rw: *mut c_void, op: c_int);
    pub fn rw_exit(rw: *mut c_void);

    pub fn callout_init(c: *mut Callout, flags: c_uint);
    pub fn callout_setfunc(c: *mut Callout, f: unsafe extern "C" fn(*mut c_void), arg: *mut c_void);
    pub fn callout_schedule(c: *mut Callout, ticks: c_int);
    pub fn callout_halt(c: *mut Callout, interlock: *mut c_void) -> bool;
    pub fn callout_destroy(c: *mut Callout);

    pub fn getnanouptime(ts: *mut Timespec);
    pub fn log(level: c_int, fmt: *const c_char, ...);
    pub fn panic(fmt: *const c_char, ...) -> !;
    pub fn namei_simple_kernel(path: *const c_char, flags: *const c_void, vp: *mut Vnode) -> c_int;
    pub fn vrele(vp: Vnode);
    pub fn proc_crmod_enter();
    pub fn proc_crmod_leave(new: KauthCred, old: KauthCred, setid: bool);

    pub static hz: c_int;
    /// `kmutex_t proc_lock` (a structure in NetBSD 10; only its address is used).
    static mut proc_lock: u8;
    pub static allproc: ProcList;
    pub static zombproc: ProcList;
    pub static NSM_FOLLOW_NOEMULROOT: *const c_void;
}

/// The address of the kernel's `proc_lock`.
pub fn proc_lock_ptr() -> *mut c_void {
    // Only the address is taken; the kernel owns the mutex.
    core::ptr::addr_of_mut!(proc_lock).cast()
}
