//! Small system-call helpers of the init (`ns`).

use anyhow::{Context, Result};
use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The type of setrlimit's resource argument: glibc has its own, musl (the
/// static build) an int.
#[cfg(target_env = "gnu")]
pub type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub type RlimitResource = libc::c_int;

pub fn last_error<T>(what: impl Into<String>) -> Result<T> {
    Err(std::io::Error::last_os_error()).context(what.into())
}

/// `struct clone_args` of clone3(2), up to `cgroup`.
#[repr(C)]
#[derive(Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fresh descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return last_error("creating a pipe");
    }
    // SAFETY: fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Opens a directory (close-on-exec), e.g. a cgroup for `CLONE_INTO_CGROUP`.
pub fn open_dir(p: &Path) -> Result<OwnedFd> {
    let c = CString::new(p.as_os_str().as_bytes())?;
    // SAFETY: open returns a new fd or -1.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return last_error(format!("opening {}", p.display()));
    }
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A child made by [`clone3_vfork`] runs this with its argument; it must
/// end in `execve` or `_exit`.
pub type VforkChild = unsafe extern "C" fn(*mut libc::c_void) -> !;

/// Bytes of the stack a [`clone3_vfork`] child runs on: it makes a few
/// system calls, then execs.
const VFORK_STACK: usize = 64 * 1024;

/// clone3 as vfork: the child shares the caller's memory (no page tables
/// copied, no copy-on-write faults in the caller's threads afterwards, which
/// a fork of a busy multi-threaded process pays for in every thread) and the
/// calling thread sleeps until the child has exec'd or exited. The child
/// runs `child(arg)` on a stack of its own, with every signal handler reset
/// to the default and the caller's signal mask; `args.flags` gets
/// `CLONE_VM | CLONE_VFORK`. Returns the child's pid, or -1 with errno
/// set (then nothing was made).
///
/// SAFETY: `child` may only make async-signal-safe calls on memory `arg`
/// points to (prepared before, not freed until this returns) and must end
/// in `execve` or `_exit`: it runs in the caller's memory while the caller
/// waits.
#[cfg(target_arch = "x86_64")]
pub unsafe fn clone3_vfork(
    args: &mut CloneArgs,
    child: VforkChild,
    arg: *mut libc::c_void,
) -> libc::c_long {
    let Some(stack) = VforkStack::map() else {
        return -1;
    };
    args.flags |= (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
    args.stack = stack.base as u64;
    args.stack_size = VFORK_STACK as u64;
    let size = std::mem::size_of::<CloneArgs>() as u64;
    let ret = vfork_syscall(
        libc::SYS_clone3,
        [args as *mut CloneArgs as u64, size, 0],
        child,
        arg,
    );
    // Kept until here: the child ran on it.
    drop(stack);
    ret
}

/// [`clone3_vfork`] through the older `clone` system call, for a caller
/// whose seccomp filter answers `clone3` with ENOSYS (a cell's init, whose
/// filter every process of the cell inherits: BPF can see `clone`'s flags,
/// not `clone3`'s). `flags` are `clone`'s (the exit signal in the low byte);
/// with `CLONE_PIDFD`, the child's pidfd is written to `pidfd`.
///
/// SAFETY: as [`clone3_vfork`]; `pidfd` is valid for a write.
#[cfg(target_arch = "x86_64")]
pub unsafe fn clone_vfork(
    flags: u64,
    pidfd: *mut libc::c_int,
    child: VforkChild,
    arg: *mut libc::c_void,
) -> libc::c_long {
    let Some(stack) = VforkStack::map() else {
        return -1;
    };
    let flags = flags | (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
    // The stack grows down: the child starts with its pointer at the top.
    let top = stack.base as u64 + VFORK_STACK as u64;
    let ret = vfork_syscall(libc::SYS_clone, [flags, top, pidfd as u64], child, arg);
    drop(stack);
    ret
}

/// The stack a vfork child runs on: mapped for the clone and unmapped after
/// it, so that the pages the child touched do not stay with the caller (a
/// heap allocation stayed in a cell init's heap, 64 KB of every init's
/// private memory).
struct VforkStack {
    base: *mut libc::c_void,
}

impl VforkStack {
    /// A fresh mapping, or `None` with errno set.
    fn map() -> Option<VforkStack> {
        // SAFETY: a new private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                VFORK_STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        (base != libc::MAP_FAILED).then_some(VforkStack { base })
    }
}

impl Drop for VforkStack {
    fn drop(&mut self) {
        // SAFETY: our own mapping; the child that ran on it has exec'd or exited.
        unsafe { libc::munmap(self.base, VFORK_STACK) };
    }
}

/// The clone system call `nr` with its first three arguments, made as
/// vfork with the child on a stack the arguments name: the child calls
/// `vfork_start`, the caller gets the result (-1 with errno set on failure).
#[cfg(target_arch = "x86_64")]
unsafe fn vfork_syscall(
    nr: libc::c_long,
    a: [u64; 3],
    child: VforkChild,
    arg: *mut libc::c_void,
) -> libc::c_long {
    let mut on = VforkStart {
        child,
        arg,
        // SAFETY: an all-zero sigset_t is a valid value, filled below.
        mask: std::mem::zeroed(),
    };
    // No handler of ours may run in the child before it has reset them: every
    // signal waits until it has (the child then takes the caller's mask).
    let mut all: libc::sigset_t = std::mem::zeroed();
    libc::sigfillset(&mut all);
    libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut on.mask);
    let ret: libc::c_long;
    // The child starts here too, on the new stack (the kernel points its
    // stack pointer at the top of it), and calls `vfork_start(&on)` there;
    // the caller goes on at `2:` once the child exec'd or exited. Registers
    // other than rax, rcx and r11 survive the system call in both.
    core::arch::asm!(
        "syscall",
        "test rax, rax",
        "jnz 2f",
        "xor ebp, ebp",
        "mov rdi, r12",
        "call r13",
        "ud2",
        "2:",
        inlateout("rax") nr => ret,
        in("rdi") a[0],
        in("rsi") a[1],
        in("rdx") a[2],
        in("r10") 0u64,
        in("r8") 0u64,
        in("r12") &mut on as *mut VforkStart,
        in("r13") vfork_start as unsafe extern "C" fn(*mut VforkStart) -> !,
        lateout("rcx") _,
        lateout("r11") _,
        options(nostack),
    );
    libc::pthread_sigmask(libc::SIG_SETMASK, &on.mask, std::ptr::null_mut());
    if ret < 0 {
        // The raw system call returns -errno; callers read errno, as from libc.
        *libc::__errno_location() = -ret as libc::c_int;
        return -1;
    }
    ret
}

#[cfg(target_arch = "x86_64")]
struct VforkStart {
    child: VforkChild,
    arg: *mut libc::c_void,
    /// The caller's signal mask, the child's once its handlers are reset.
    mask: libc::sigset_t,
}

/// The first steps of a [`clone3_vfork`] child: the caller's signal
/// handlers (this process's code, which must not run here) reset to the
/// default, the caller's signal mask back, then the child proper.
#[cfg(target_arch = "x86_64")]
unsafe extern "C" fn vfork_start(on: *mut VforkStart) -> ! {
    let on = &*on;
    // Every signal number the kernel has (_NSIG is 64): the others fail.
    for sig in 1..=64 {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction != libc::SIG_DFL
            && old.sa_sigaction != libc::SIG_IGN
        {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }
    libc::pthread_sigmask(libc::SIG_SETMASK, &on.mask, std::ptr::null_mut());
    (on.child)(on.arg)
}
