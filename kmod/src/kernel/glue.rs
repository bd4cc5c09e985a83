//! Module lifecycle, listeners and sysctl handlers.

// `kauth_action_t` is 64-bit on NetBSD 10 and 32-bit on older ABIs, so the
// widening `u64::from(raw_action)` is a no-op on one ABI and not the other.
#![allow(clippy::useless_conversion)]

use crate::abi::{self, CellId, DenyScope, Node, CELLID_HOST, CELL_ABI_VERSION, CELL_ROOT_BUF};
use crate::errno::{Errno, EFAULT, EINVAL, ENOMEM, ENOTDIR};
use crate::ffi::{self, KauthCred, KauthKey, Lwp, Vnode};
use crate::kabi;
use crate::kauth::{self, sockaddr_port, NetworkAction, ProcessAction, ProcessReq};
use crate::mgmt::{self, Kernel, Request};
use crate::model::{Model, Subject};
use crate::module::{self, Step};
use crate::policy::{self, CredEffect, NetArgs, ProcArgs, Verdict};
use crate::proclist;
use crate::telemetry::ProcSample;
use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_uint, c_void, CStr};
use core::fmt::{self, Write};
use core::ops::ControlFlow;
use core::ptr::{self, null, null_mut};

/// Root directory handle: a referenced vnode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RootVnode(Vnode);

struct State {
    secmodel: ffi::Secmodel,
    key: KauthKey,
    lock: *mut c_void,
    model: Option<Model<RootVnode>>,
    listeners: [ffi::KauthListener; 6],
    sysctl_log: *mut c_void,
    callout: ffi::Callout,
    callout_ready: bool,
}

struct Global(UnsafeCell<State>);
// SAFETY: fields are written only by INIT/FINI (serialised by the module
// lock, with no listener or handler registered yet or any more); the model
// is only touched under `lock`.
unsafe impl Sync for Global {}

static STATE: Global = Global(UnsafeCell::new(State {
    secmodel: null_mut(),
    key: null_mut(),
    lock: null_mut(),
    model: None,
    listeners: [null_mut(); 6],
    sysctl_log: null_mut(),
    callout: ffi::Callout([0; ffi::CALLOUT_SIZE]),
    callout_ready: false,
}));

fn state() -> *mut State {
    STATE.0.get()
}

/// Runs `f` with the model locked.
fn with_model<T>(f: impl FnOnce(&mut Model<RootVnode>) -> T) -> T {
    // SAFETY: `lock` and `model` are set before any caller can run.
    unsafe {
        let s = state();
        ffi::mutex_enter((*s).lock);
        let r = f((*s).model.as_mut().expect("model present while loaded"));
        ffi::mutex_exit((*s).lock);
        r
    }
}

unsafe fn read<T: Copy>(base: *const c_void, offset: usize) -> T {
    ptr::read(base.cast::<u8>().add(offset).cast::<T>())
}

unsafe fn cell_of(cred: KauthCred) -> CellId {
    // The id is stored as a pointer-sized integer in our credential slot.
    ffi::kauth_cred_getdata(cred, (*state()).key) as usize as CellId
}

unsafe fn subject(cred: KauthCred) -> Subject {
    Subject {
        cell: cell_of(cred),
        euid: ffi::kauth_cred_geteuid(cred),
    }
}

fn now_ns() -> u64 {
    let mut ts = ffi::Timespec::default();
    // SAFETY: writes the timespec only.
    unsafe { ffi::getnanouptime(&mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// A fixed buffer for one log line, NUL-terminated, truncated if long.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - 1 - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn klog(level: c_int, args: fmt::Arguments<'_>) {
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    let _ = line.write_fmt(args);
    line.buf[line.len] = 0;
    // SAFETY: "%s" with a NUL-terminated buffer.
    unsafe { ffi::log(level, c"%s\n".as_ptr(), line.buf.as_ptr()) };
}

// ------------------------------------------------------------ listeners

/// Decides under the lock, then logs a deny outside it (rate-limited).
fn decide(
    scope: DenyScope,
    s: Subject,
    action: u64,
    req: u64,
    f: impl FnOnce(&mut Model<RootVnode>) -> Verdict,
) -> c_int {
    let (v, logged) = with_model(|m| {
        let v = f(m);
        // The clock is read only for a deny, off the common path.
        let logged = if v == Verdict::Deny {
            m.log.admit(scope, now_ns())
        } else {
            None
        };
        (v, logged)
    });
    if let Some(suppressed) = logged {
        klog(
            ffi::LOG_NOTICE,
            format_args!(
                "secmodel_cell: deny scope={} cell={} euid={} action={} req={} suppressed={}",
                scope.as_str(),
                s.cell,
                s.euid,
                action,
                req,
                suppressed
            ),
        );
    }
    v.as_kauth()
}

unsafe extern "C" fn listen_process(
    cred: KauthCred,
    raw_action: ffi::KauthAction,
    _cookie: *mut c_void,
    arg0: *mut c_void,
    arg1: *mut c_void,
    arg2: *mut c_void,
    arg3: *mut c_void,
) -> c_int {
    let raw = u64::from(raw_action);
    let action = kabi::process_action(raw);
    let s = subject(cred);
    let mut args = ProcArgs::default();
    // FORK: arg0 is the parent, arg1 the number of processes; no lock held.
    if action != ProcessAction::Fork && !arg0.is_null() {
        let tcred: KauthCred = read(arg0, ffi::PROC_P_CRED);
        args.target = (!tcred.is_null()).then(|| cell_of(tcred));
    }
    let req = kabi::process_req(arg1 as u64);
    if action == ProcessAction::Fork && s.cell != CELLID_HOST {
        let limit = with_model(|m| m.bounds(s.cell).maxproc);
        args.members = limit.map(|l| count_members(s.cell, u64::from(l)));
    }
    // RLIMIT set: arg2 is the new struct rlimit, arg3 which limit.
    if action == ProcessAction::Rlimit
        && req == ProcessReq::RlimitSet
        && arg3 as usize == ffi::RLIMIT_AS
        && !arg2.is_null()
    {
        args.new_as_max = Some(read::<u64>(arg2, ffi::RLIMIT_RLIM_MAX));
    }
    decide(DenyScope::Process, s, raw, arg1 as u64, |m| {
        m.process(s, action, req, args)
    })
}

unsafe extern "C" fn listen_cred(
    cred: KauthCred,
    raw_action: ffi::KauthAction,
    _cookie: *mut c_void,
    arg0: *mut c_void,
    _arg1: *mut c_void,
    _arg2: *mut c_void,
    _arg3: *mut c_void,
) -> c_int {
    let (verdict, effect) = policy::cred(kabi::cred_action(u64::from(raw_action)));
    let key = (*state()).key;
    match effect {
        CredEffect::SetHost if !cred.is_null() => {
            ffi::kauth_cred_setdata(cred, key, CELLID_HOST as usize as *mut c_void)
        }
        CredEffect::CopyToDestination if !cred.is_null() && !arg0.is_null() => {
            ffi::kauth_cred_setdata(arg0, key, ffi::kauth_cred_getdata(cred, key))
        }
        _ => {}
    }
    verdict.as_kauth()
}

unsafe extern "C" fn listen_system(
    cred: KauthCred,
    raw_action: ffi::KauthAction,
    _cookie: *mut c_void,
    arg0: *mut c_void,
    _arg1: *mut c_void,
    _arg2: *mut c_void,
    _arg3: *mut c_void,
) -> c_int {
    let raw = u64::from(raw_action);
    let s = subject(cred);
    let req = arg0 as u64;
    let (action, sreq) = (kabi::system_action(raw), kabi::system_req(req));
    decide(DenyScope::System, s, raw, req, |m| {
        m.system(s, action, sreq)
    })
}

unsafe extern "C" fn listen_network(
    cred: KauthCred,
    raw_action: ffi::KauthAction,
    _cookie: *mut c_void,
    arg0: *mut c_void,
    arg1: *mut c_void,
    arg2: *mut c_void,
    _arg3: *mut c_void,
) -> c_int {
    let raw = u64::from(raw_action);
    let action = kabi::network_action(raw);
    let s = subject(cred);
    let req = arg0 as u64;
    let nreq = kabi::network_req(req);
    let mut args = NetArgs::default();
    if action == NetworkAction::Bind {
        // arg1 is the socket, arg2 the sockaddr: sa_len and sa_family
        // first; read the port only if sa_len covers it.
        if !arg2.is_null() {
            let head: [u8; 2] = read(arg2, 0);
            if head[0] >= 4 {
                args.bind_port = sockaddr_port(&read::<[u8; 4]>(arg2, 0));
            }
        }
        if !arg1.is_null() {
            let options: u16 = read(arg1, ffi::SOCKET_SO_OPTIONS);
            args.reuseport = options & ffi::SO_REUSEPORT != 0;
        }
    }
    if action == NetworkAction::Socket {
        args.domain = Some(arg1 as usize as c_int);
    }
    decide(DenyScope::Network, s, raw, req, |m| {
        m.network(s, action, nreq, args)
    })
}

unsafe extern "C" fn listen_machdep(
    cred: KauthCred,
    raw_action: ffi::KauthAction,
    _cookie: *mut c_void,
    _arg0: *mut c_void,
    _arg1: *mut c_void,
    _arg2: *mut c_void,
    _arg3: *mut c_void,
) -> c_int {
    let raw = u64::from(raw_action);
    let s = subject(cred);
    decide(DenyScope::Machdep, s, raw, 0, |m| m.machdep(s))
}

unsafe extern "C" fn listen_device(
    cred: KauthCred,
    raw_action: ffi::KauthAction,
    _cookie: *mut c_void,
    _arg0: *mut c_void,
    _arg1: *mut c_void,
    _arg2: *mut c_void,
    _arg3: *mut c_void,
) -> c_int {
    let raw = u64::from(raw_action);
    let action = kabi::device_action(raw);
    let s = subject(cred);
    decide(DenyScope::Device, s, raw, 0, |m| m.device(s, action))
}

const LISTENERS: [(&CStr, ffi::KauthCallback); 6] = [
    (kauth::scope::PROCESS, listen_process),
    (kauth::scope::CRED, listen_cred),
    (kauth::scope::SYSTEM, listen_system),
    (kauth::scope::NETWORK, listen_network),
    (kauth::scope::MACHDEP, listen_machdep),
    (kauth::scope::DEVICE, listen_device),
];

// ------------------------------------------------------------ processes

/// Calls `f(cell, sample)` for every process on the live and zombie lists,
/// markers skipped, until `f` breaks. Caller holds `proc_lock`.
unsafe fn for_each_proc(mut f: impl FnMut(CellId, ProcSample) -> ControlFlow<()>) {
    for list in [ptr::addr_of!(ffi::allproc), ptr::addr_of!(ffi::zombproc)] {
        let mut stopped = false;
        proclist::walk((*list).lh_first, &proclist::RELEASE, |cred, sample| {
            let r = f(cell_of(cred), sample);
            stopped = r.is_break();
            r
        });
        if stopped {
            return;
        }
    }
}

/// Processes (live and zombie) in `cell`, counted up to `limit`: the walk
/// stops there, and a fork bomb's newest processes are at the list head.
fn count_members(cell: CellId, limit: u64) -> u64 {
    let mut n = 0;
    // SAFETY: the lists are walked under proc_lock; the fork path that
    // calls this holds no lock.
    unsafe {
        ffi::mutex_enter(proc_lock());
        for_each_proc(|c, _| {
            n += u64::from(c == cell);
            if n >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        ffi::mutex_exit(proc_lock());
    }
    n
}

fn proc_lock() -> *mut c_void {
    // Only the address of the kernel's proc_lock is taken.
    ffi::proc_lock_ptr()
}

/// The 1 Hz sampler.
unsafe extern "C" fn sample(_arg: *mut c_void) {
    let s = state();
    ffi::mutex_enter(proc_lock());
    ffi::mutex_enter((*s).lock);
    if let Some(m) = (*s).model.as_mut() {
        m.sample(|account| {
            for_each_proc(|cell, sample| {
                account(cell, sample);
                ControlFlow::Continue(())
            })
        });
    }
    ffi::mutex_exit((*s).lock);
    ffi::mutex_exit(proc_lock());
    ffi::callout_schedule(ptr::addr_of_mut!((*s).callout), ffi::hz);
}

// ------------------------------------------------------------ sysctl

/// One sysctl call, as the management plane sees it.
struct Call {
    l: Lwp,
    oldp: *mut c_void,
    oldlenp: *mut usize,
    newp: *const c_void,
    newlen: usize,
}

impl Kernel for Call {
    type Root = RootVnode;

    fn subject(&self) -> Subject {
        // SAFETY: the calling LWP and its cached credential are live.
        unsafe { subject(read(self.l, ffi::LWP_L_CRED)) }
    }

    fn request(&self) -> Request {
        Request {
            new_len: (!self.newp.is_null()).then_some(self.newlen),
            // SAFETY: oldlenp is valid whenever oldp is.
            old_cap: (!self.oldp.is_null() && !self.oldlenp.is_null())
                .then(|| unsafe { *self.oldlenp }),
        }
    }

    fn copyin(&mut self, dst: &mut [u8]) -> Result<(), Errno> {
        // SAFETY: sysctl_copyin checks the user address.
        match unsafe { ffi::sysctl_copyin(self.l, self.newp, dst.as_mut_ptr().cast(), dst.len()) } {
            0 => Ok(()),
            e => Err(Errno(e)),
        }
    }

    fn copyout(&mut self, src: &[u8]) -> Result<(), Errno> {
        // SAFETY: sysctl_copyout checks the user address.
        let e = unsafe { ffi::sysctl_copyout(self.l, src.as_ptr().cast(), self.oldp, src.len()) };
        self.set_old_len(src.len());
        match e {
            0 => Ok(()),
            e => Err(Errno(e)),
        }
    }

    fn set_old_len(&mut self, len: usize) {
        if !self.oldlenp.is_null() {
            // SAFETY: the kernel's own length word.
            unsafe { *self.oldlenp = len };
        }
    }

    fn lookup_dir(&mut self, path: &[u8]) -> Result<RootVnode, Errno> {
        let mut cpath = [0u8; CELL_ROOT_BUF];
        if path.len() >= CELL_ROOT_BUF {
            return Err(EINVAL);
        }
        cpath[..path.len()].copy_from_slice(path);
        let mut vp: Vnode = null_mut();
        // SAFETY: NUL-terminated kernel string; vp receives a reference.
        let e = unsafe {
            ffi::namei_simple_kernel(cpath.as_ptr().cast(), ffi::NSM_FOLLOW_NOEMULROOT, &mut vp)
        };
        if e != 0 {
            return Err(Errno(e));
        }
        // SAFETY: vp is a referenced vnode.
        if unsafe { read::<c_int>(vp, ffi::VNODE_V_TYPE) } != ffi::VDIR {
            unsafe { ffi::vrele(vp) };
            return Err(ENOTDIR);
        }
        Ok(RootVnode(vp))
    }

    fn release_root(&mut self, root: RootVnode) {
        // SAFETY: drops the reference taken by lookup_dir.
        unsafe { ffi::vrele(root.0) }
    }

    fn now_ns(&self) -> u64 {
        now_ns()
    }

    fn with_model<T>(&mut self, f: impl FnOnce(&mut Model<RootVnode>) -> T) -> T {
        with_model(f)
    }

    fn with_procs_and_model<T>(
        &mut self,
        f: impl FnOnce(&mut Model<RootVnode>, &dyn Fn(CellId) -> bool) -> T,
    ) -> T {
        let members = |id: CellId| {
            let mut found = false;
            // SAFETY: proc_lock is held below while this runs.
            unsafe {
                for_each_proc(|cell, _| {
                    found = cell == id;
                    if found {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
            };
            found
        };
        // SAFETY: lock order proc_lock → model lock.
        unsafe {
            ffi::mutex_enter(proc_lock());
            let r = with_model(|m| f(m, &members));
            ffi::mutex_exit(proc_lock());
            r
        }
    }

    fn process_cell(&self) -> CellId {
        // SAFETY: the calling process and its credential are live.
        unsafe {
            let p: *mut c_void = read(self.l, ffi::LWP_L_PROC);
            cell_of(read(p, ffi::PROC_P_CRED))
        }
    }

    fn process_root_is(&mut self, root: RootVnode) -> bool {
        // SAFETY: cwdinfo of the calling process, read under its lock.
        unsafe {
            let p: *mut c_void = read(self.l, ffi::LWP_L_PROC);
            let cwdi: *mut c_void = read(p, ffi::PROC_P_CWDI);
            let lock = cwdi.cast::<u8>().add(ffi::CWDI_LOCK).cast::<c_void>();
            ffi::rw_enter(lock, ffi::RW_READER);
            let rdir: Vnode = read(cwdi, ffi::CWDI_RDIR);
            ffi::rw_exit(lock);
            rdir == root.0
        }
    }

    fn commit_enter(&mut self, from: CellId, id: CellId) -> Result<(), Errno> {
        // SAFETY: the standard credential-change sequence of kern_prot.c.
        unsafe {
            let new = ffi::kauth_cred_alloc();
            if new.is_null() {
                return Err(ENOMEM);
            }
            ffi::proc_crmod_enter();
            let p: *mut c_void = read(self.l, ffi::LWP_L_PROC);
            let old: KauthCred = read(p, ffi::PROC_P_CRED);
            if cell_of(old) != from {
                ffi::proc_crmod_leave(old, new, false);
                return Err(crate::errno::EPERM);
            }
            ffi::kauth_cred_clone(old, new);
            ffi::kauth_cred_setdata(new, (*state()).key, id as usize as *mut c_void);
            ffi::proc_crmod_leave(new, old, true);
        }
        Ok(())
    }

    fn log(&mut self, args: fmt::Arguments<'_>) {
        klog(ffi::LOG_INFO, args);
    }
}

fn errno_of(r: Result<(), Errno>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.0,
    }
}

macro_rules! handler {
    ($name:ident, $body:expr) => {
        unsafe extern "C" fn $name(
            _name: *const c_int,
            _namelen: c_uint,
            oldp: *mut c_void,
            oldlenp: *mut usize,
            newp: *const c_void,
            newlen: usize,
            _oname: *const c_int,
            l: Lwp,
            _rnode: *const c_void,
        ) -> c_int {
            let mut call = Call {
                l,
                oldp,
                oldlenp,
                newp,
                newlen,
            };
            let f: fn(&mut Call) -> Result<(), Errno> = $body;
            errno_of(f(&mut call))
        }
    };
}

handler!(sysctl_id, |c| mgmt::id(c));
handler!(sysctl_create, |c| mgmt::create(c).map(|_| ()));
handler!(sysctl_destroy, |c| mgmt::destroy(c));
handler!(sysctl_list, |c| mgmt::list(c));
handler!(sysctl_stats, |c| mgmt::stats(c));

const DESCR: &CStr = c"Cell security model";

/// Creates `security.models.cell` and its nodes.
unsafe fn sysctl_setup(s: *mut State) -> Result<(), Errno> {
    let log = ptr::addr_of_mut!((*s).sysctl_log);
    let mut models: *const c_void = null();
    let e = ffi::sysctl_createv(
        log,
        0,
        null(),
        &mut models,
        0,
        ffi::CTLTYPE_NODE,
        c"models".as_ptr(),
        null(),
        None,
        0,
        null_mut(),
        0,
        ffi::CTL_SECURITY,
        ffi::CTL_CREATE,
        ffi::CTL_EOL,
    );
    // "models" usually exists already (other secmodels create it); that is
    // EEXIST with the node still returned.
    if (e != 0 && e != crate::errno::EEXIST.0) || models.is_null() {
        return Err(Errno(if e != 0 { e } else { EFAULT.0 }));
    }
    let mut cell: *const c_void = null();
    let e = ffi::sysctl_createv(
        log,
        0,
        &models,
        &mut cell,
        0,
        ffi::CTLTYPE_NODE,
        c"cell".as_ptr(),
        DESCR.as_ptr(),
        None,
        0,
        null_mut(),
        0,
        ffi::CTL_CREATE,
        ffi::CTL_EOL,
    );
    if e != 0 {
        return Err(Errno(e));
    }
    let name = abi::CELL_MODEL_NAME;
    type Leaf = (
        Node,
        c_int,
        c_int,
        Option<ffi::SysctlFn>,
        u64,
        *mut c_void,
        usize,
    );
    let leaves: [Leaf; 7] = [
        (
            Node::Name,
            ffi::CTLFLAG_READONLY,
            ffi::CTLTYPE_STRING,
            None,
            0,
            name.as_ptr() as *mut c_void,
            name.to_bytes_with_nul().len(),
        ),
        (
            Node::Version,
            ffi::CTLFLAG_READONLY | ffi::CTLFLAG_IMMEDIATE,
            ffi::CTLTYPE_INT,
            None,
            u64::from(CELL_ABI_VERSION),
            null_mut(),
            0,
        ),
        (
            Node::Id,
            ffi::CTLFLAG_READWRITE,
            ffi::CTLTYPE_INT,
            Some(sysctl_id),
            0,
            null_mut(),
            0,
        ),
        (
            Node::Create,
            ffi::CTLFLAG_READWRITE,
            ffi::CTLTYPE_STRUCT,
            Some(sysctl_create),
            0,
            null_mut(),
            0,
        ),
        (
            Node::Destroy,
            ffi::CTLFLAG_READWRITE,
            ffi::CTLTYPE_INT,
            Some(sysctl_destroy),
            0,
            null_mut(),
            0,
        ),
        (
            Node::List,
            ffi::CTLFLAG_READONLY,
            ffi::CTLTYPE_STRUCT,
            Some(sysctl_list),
            0,
            null_mut(),
            0,
        ),
        (
            Node::Stats,
            ffi::CTLFLAG_READONLY,
            ffi::CTLTYPE_STRUCT,
            Some(sysctl_stats),
            0,
            null_mut(),
            0,
        ),
    ];
    for (node, flags, ty, func, qv, data, len) in leaves {
        let e = ffi::sysctl_createv(
            log,
            0,
            &cell,
            null_mut(),
            flags,
            ty,
            node.leaf().as_ptr(),
            null::<c_char>(),
            func,
            qv,
            data,
            len,
            ffi::CTL_CREATE,
            ffi::CTL_EOL,
        );
        if e != 0 {
            return Err(Errno(e));
        }
    }
    Ok(())
}

// ------------------------------------------------------------ lifecycle

/// Releases whatever `init` set up, in reverse order. Safe on a partial
/// setup: every field records whether its step happened.
unsafe fn teardown(s: *mut State) {
    if (*s).callout_ready {
        ffi::callout_halt(ptr::addr_of_mut!((*s).callout), null_mut());
        ffi::callout_destroy(ptr::addr_of_mut!((*s).callout));
        (*s).callout_ready = false;
    }
    if !(*s).sysctl_log.is_null() {
        ffi::sysctl_teardown(ptr::addr_of_mut!((*s).sysctl_log));
        (*s).sysctl_log = null_mut();
    }
    for l in (*s).listeners.iter_mut().rev() {
        if !l.is_null() {
            ffi::kauth_unlisten_scope(*l);
            *l = null_mut();
        }
    }
    if !(*s).key.is_null() {
        // Cannot fail for a key we registered; nothing to unwind if it did.
        let _ = ffi::kauth_deregister_key((*s).key);
        (*s).key = null_mut();
    }
    if let Some(mut m) = (*s).model.take() {
        m.table.drain(|r| ffi::vrele(r.0));
    }
    if !(*s).lock.is_null() {
        ffi::mutex_obj_free((*s).lock);
        (*s).lock = null_mut();
    }
    if !(*s).secmodel.is_null() {
        let _ = ffi::secmodel_deregister((*s).secmodel);
        (*s).secmodel = null_mut();
    }
}

unsafe fn init(s: *mut State) -> Result<(), Errno> {
    let e = ffi::secmodel_register(
        ptr::addr_of_mut!((*s).secmodel),
        abi::CELL_MODEL_ID.as_ptr(),
        abi::CELL_MODEL_NAME.as_ptr(),
        null_mut(),
        null(),
        null(),
    );
    if e != 0 {
        return Err(Errno(e));
    }
    (*s).lock = ffi::mutex_obj_alloc(ffi::MUTEX_DEFAULT, ffi::IPL_NONE);
    (*s).model = Some(Model::default());
    let e = ffi::kauth_register_key((*s).secmodel, ptr::addr_of_mut!((*s).key));
    if e != 0 {
        return Err(Errno(e));
    }
    for (i, (scope, cb)) in LISTENERS.iter().enumerate() {
        let l = ffi::kauth_listen_scope(scope.as_ptr(), *cb, null_mut());
        if l.is_null() {
            return Err(ENOMEM);
        }
        (*s).listeners[i] = l;
    }
    sysctl_setup(s)?;
    ffi::callout_init(ptr::addr_of_mut!((*s).callout), ffi::CALLOUT_MPSAFE);
    ffi::callout_setfunc(ptr::addr_of_mut!((*s).callout), sample, null_mut());
    (*s).callout_ready = true;
    ffi::callout_schedule(ptr::addr_of_mut!((*s).callout), ffi::hz);
    Ok(())
}

fn ncells() -> usize {
    with_model(|m| m.table.len())
}

/// `mi_modcmd`.
pub unsafe extern "C" fn modcmd(cmd: c_int, _arg: *mut c_void) -> c_int {
    let s = state();
    let loaded = !(*s).lock.is_null();
    let n = if loaded { ncells() } else { 0 };
    match module::dispatch(cmd, n) {
        Err(e) => e.0,
        Ok(Step::Init) => match init(s) {
            Ok(()) => {
                klog(
                    ffi::LOG_INFO,
                    format_args!("secmodel_cell: loaded (ABI {CELL_ABI_VERSION})"),
                );
                0
            }
            Err(e) => {
                teardown(s);
                e.0
            }
        },
        // FINI only follows a successful INIT; nothing to release otherwise.
        Ok(Step::Fini) if !loaded => 0,
        Ok(Step::Fini) => {
            // No create can run once the sysctl tree is gone; re-check, and
            // put the tree back if one slipped in meanwhile.
            ffi::sysctl_teardown(ptr::addr_of_mut!((*s).sysctl_log));
            (*s).sysctl_log = null_mut();
            if ncells() > 0 {
                return match sysctl_setup(s) {
                    Ok(()) => crate::errno::EBUSY.0,
                    Err(e) => e.0,
                };
            }
            klog(ffi::LOG_INFO, format_args!("secmodel_cell: unloading"));
            teardown(s);
            0
        }
    }
}
