//! Landlock scopes: a cell's processes may signal and reach abstract unix
//! sockets only of processes in their own cell.
//!
//! Cells share the host's network namespace, and abstract unix sockets live
//! there: without scoping, host daemons listening on abstract sockets (D-Bus,
//! X11, others) and other cells' abstract sockets are reachable from every
//! cell. `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET` (Landlock ABI 6, Linux 6.12)
//! refuses connections and datagrams to abstract sockets made outside the
//! caller's Landlock domain; `LANDLOCK_SCOPE_SIGNAL` does the same for
//! signals (on top of the PID namespace, which already hides every process
//! outside the cell). Processes outside the domain (host root) are not
//! limited.
//!
//! The cell's init restricts itself once, before it serves any request;
//! every process of the cell is forked by it (see `agent`), so all of them
//! share that one domain and reach each other as before. Every profile is
//! scoped: low keeps host administration, but crossing into other cells or
//! talking to host daemons through the shared network namespace is not part
//! of it. Where the kernel lacks ABI 6 the cell runs unscoped, and `create`
//! says so.

/// The Landlock ABI version that has scopes.
pub const SCOPES_ABI: i32 = 6;

const CREATE_RULESET_VERSION: u32 = 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1;
const SCOPE_SIGNAL: u64 = 2;

/// `struct landlock_ruleset_attr` up to `scoped` (ABI 6).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// The running kernel's Landlock ABI version; 0 without Landlock.
pub fn abi() -> i32 {
    // SAFETY: the version query takes no attribute.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    v.max(0) as i32
}

/// Whether this kernel scopes cells (see the module comment).
pub fn scopes_available() -> bool {
    abi() >= SCOPES_ABI
}

/// Puts the calling thread (the cell's init, single-threaded) in a new
/// domain scoped to itself and what it forks. Returns false, changing
/// nothing, where the kernel has no scopes.
pub fn scope_self() -> std::io::Result<bool> {
    if !scopes_available() {
        return Ok(false);
    }
    let attr = RulesetAttr {
        handled_access_fs: 0,
        handled_access_net: 0,
        scoped: SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL,
    };
    // SAFETY: a valid attribute of the size given; the result is a new fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: restricts this thread with the ruleset just made; the init
    // holds CAP_SYS_ADMIN, so no_new_privs is not required.
    let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closes the ruleset fd made above.
    unsafe { libc::close(fd as libc::c_int) };
    if rc != 0 {
        return Err(err);
    }
    Ok(true)
}
