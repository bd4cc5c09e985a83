//! Seccomp deny lists per profile, as raw classic BPF (no libseccomp).
//!
//! The filter checks the architecture (anything else is killed), then answers
//! EPERM for each listed system call and allows the rest. Every profile denies
//! what would cross the cell's boundary whatever its capabilities:
//!
//! * the kernel message buffer, BPF (the port reservations), handle-based opens,
//!   modules and kexec;
//! * kernel keyrings (`keyctl`, `add_key`, `request_key`): they are not
//!   namespaced, so a cell would reach the host's keys;
//! * new namespaces: `unshare`, `setns` and namespace flags to `clone` (`clone3`
//!   gets ENOSYS so libc falls back to `clone`, whose flags BPF can see). A user
//!   namespace is the one a process without CAP_SYS_ADMIN could make, and inside
//!   it mounts of the host's cgroup hierarchies; NetBSD has none, so no profile
//!   has them;
//! * `ioctl(TIOCSTI)` (push input into a terminal) and `ioctl(TIOCLINUX)`
//!   (console selection and paste): a cell never holds the operator's terminal
//!   (see `enter`), and these stay denied should a terminal reach it anyway.
//!
//! Medium and high also deny host administration: mounts, swap, reboot, clock
//! setting, accounting, I/O ports, quotas.

use crate::kernel::Profile;
use libc::{sock_filter, BPF_ABS, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W};

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
/// Low 32 bits of the first and second arguments (little endian).
const ARG0_LO: u32 = 16;
const ARG1_LO: u32 = 24;

/// `ioctl` requests denied at every profile (the request is an `unsigned int`
/// to the kernel: its low 32 bits decide).
const DENIED_IOCTLS: &[u32] = &[libc::TIOCSTI as u32, libc::TIOCLINUX as u32];

const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWTIME) as u32;

/// Denied at every profile: the kernel log, BPF, handle opens, modules,
/// keyrings, joining or making namespaces.
const ALWAYS: &[libc::c_long] = &[
    libc::SYS_syslog,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_open_by_handle_at,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_unshare,
    libc::SYS_setns,
];

/// Denied at medium and high: host administration.
const HARDENED: &[libc::c_long] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_quotactl_fd,
    libc::SYS_vhangup,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
];

const fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA)
}

/// What the filter does with one system call number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Deny,
    /// `clone3`: ENOSYS, so that libc falls back to `clone`.
    NotImplemented,
    /// `clone`: denied with a namespace flag in its first argument.
    CloneFlags,
    /// `ioctl`: denied for the requests in [`DENIED_IOCTLS`].
    IoctlRequests,
}

/// The system calls a profile's filter treats specially, sorted by number.
fn rules(profile: Profile) -> Vec<(u32, Rule)> {
    let mut rules: Vec<(u32, Rule)> = ALWAYS.iter().map(|&nr| (nr as u32, Rule::Deny)).collect();
    if profile != Profile::Low {
        rules.extend(HARDENED.iter().map(|&nr| (nr as u32, Rule::Deny)));
    }
    rules.push((libc::SYS_clone3 as u32, Rule::NotImplemented));
    rules.push((libc::SYS_clone as u32, Rule::CloneFlags));
    rules.push((libc::SYS_ioctl as u32, Rule::IoctlRequests));
    rules.sort_unstable_by_key(|r| r.0);
    rules.dedup_by_key(|r| r.0);
    rules
}

/// The filter program for a profile.
///
/// The system call numbers are searched as a binary tree, not a list: the
/// kernel runs a new filter once for every system call number when it is
/// attached (to find the calls it may allow without running it), so its
/// cost grows with the path a number takes. With a list of ~40 numbers the
/// attach took ~300 us on this VM; with the tree, each number takes about
/// six comparisons.
pub fn filter(profile: Profile) -> Vec<sock_filter> {
    let mut p = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD | BPF_W | BPF_ABS, NR),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        // x32 system calls are a second numbering of the same kernel entry points.
        const X32_SYSCALL_BIT: u32 = 0x4000_0000;
        p.push(jump(BPF_JMP | libc::BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1));
        p.push(stmt(BPF_RET | BPF_K, errno(libc::EPERM)));
    }
    p.extend(search(&rules(profile)));
    p
}

/// Code that finds the accumulator's system call number among `rules` and
/// returns its verdict, or allows it. Every path ends in a return.
fn search(rules: &[(u32, Rule)]) -> Vec<sock_filter> {
    if rules.len() <= 3 {
        let mut p = Vec::new();
        for &(nr, rule) in rules {
            let verdict = verdict(rule);
            p.push(jump(
                BPF_JMP | BPF_JEQ | BPF_K,
                nr,
                0,
                offset(verdict.len()),
            ));
            p.extend(verdict);
        }
        p.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW));
        return p;
    }
    let (below, from) = rules.split_at(rules.len() / 2);
    let below = search(below);
    let mut p = vec![jump(
        BPF_JMP | libc::BPF_JGE | BPF_K,
        from[0].0,
        offset(below.len()),
        0,
    )];
    p.extend(below);
    p.extend(search(from));
    p
}

/// The code of one rule, run once the number matched; it ends in returns.
fn verdict(rule: Rule) -> Vec<sock_filter> {
    let ret = |k| stmt(BPF_RET | BPF_K, k);
    match rule {
        Rule::Deny => vec![ret(errno(libc::EPERM))],
        Rule::NotImplemented => vec![ret(errno(libc::ENOSYS))],
        Rule::CloneFlags => vec![
            stmt(BPF_LD | BPF_W | BPF_ABS, ARG0_LO),
            jump(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 0, 1),
            ret(errno(libc::EPERM)),
            ret(libc::SECCOMP_RET_ALLOW),
        ],
        Rule::IoctlRequests => {
            let mut p = vec![stmt(BPF_LD | BPF_W | BPF_ABS, ARG1_LO)];
            for &request in DENIED_IOCTLS {
                p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, request, 0, 1));
                p.push(ret(errno(libc::EPERM)));
            }
            p.push(ret(libc::SECCOMP_RET_ALLOW));
            p
        }
    }
}

/// A forward jump over `n` instructions (classic BPF offsets are 8 bits).
fn offset(n: usize) -> u8 {
    u8::try_from(n).expect("a seccomp jump longer than 255 instructions")
}

/// Installs a filter on the calling thread (the cell's init, which is
/// single-threaded: every process it forks inherits it); needs
/// `no_new_privs` or CAP_SYS_ADMIN.
pub fn install(program: &[sock_filter]) -> std::io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut sock_filter,
    };
    // SAFETY: `prog` points at a live, well-formed filter for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_ends_in_allow_and_fits_a_jump_range() {
        for p in [Profile::Low, Profile::Medium, Profile::High] {
            let f = filter(p);
            assert!(f.len() < 255);
            assert_eq!(f.last().unwrap().k, libc::SECCOMP_RET_ALLOW);
        }
        assert!(filter(Profile::Low).len() < filter(Profile::High).len());
    }

    /// Runs a filter on one system call as the kernel would: the number,
    /// the architecture and the low halves of the first two arguments.
    /// Returns the verdict and the instructions it took.
    fn run_counted(f: &[sock_filter], arch: u32, nr: u32, arg0: u32, arg1: u32) -> (u32, usize) {
        let (mut a, mut pc, mut steps) = (0u32, 0usize, 0usize);
        loop {
            let i = f[pc];
            pc += 1;
            steps += 1;
            match u32::from(i.code) {
                c if c == BPF_LD | BPF_W | BPF_ABS => {
                    a = match i.k {
                        NR => nr,
                        ARCH => arch,
                        ARG0_LO => arg0,
                        ARG1_LO => arg1,
                        k => panic!("load of offset {k}"),
                    }
                }
                c if c == BPF_RET | BPF_K => return (i.k, steps),
                c => {
                    let taken = match c {
                        c if c == BPF_JMP | BPF_JEQ | BPF_K => a == i.k,
                        c if c == BPF_JMP | libc::BPF_JGE | BPF_K => a >= i.k,
                        c if c == BPF_JMP | BPF_JSET | BPF_K => a & i.k != 0,
                        c => panic!("instruction {c:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
            }
        }
    }

    fn run(f: &[sock_filter], arch: u32, nr: u32, arg0: u32, arg1: u32) -> u32 {
        run_counted(f, arch, nr, arg0, arg1).0
    }

    /// Every system call number gets the verdict the deny lists give it,
    /// whatever the shape of the search, and no number takes more than a
    /// few comparisons (what the kernel pays per number at attach).
    #[test]
    fn the_search_gives_every_number_its_lists_verdict() {
        let eperm = errno(libc::EPERM);
        let allow = libc::SECCOMP_RET_ALLOW;
        for profile in [Profile::Low, Profile::Medium, Profile::High] {
            let f = filter(profile);
            let mut denied: Vec<libc::c_long> = ALWAYS.to_vec();
            if profile != Profile::Low {
                denied.extend_from_slice(HARDENED);
            }
            for nr in 0..1024u32 {
                let want = if denied.contains(&libc::c_long::from(nr)) {
                    eperm
                } else if nr == libc::SYS_clone3 as u32 {
                    errno(libc::ENOSYS)
                } else {
                    allow
                };
                if nr == libc::SYS_clone as u32 || nr == libc::SYS_ioctl as u32 {
                    continue;
                }
                assert_eq!(run(&f, AUDIT_ARCH, nr, 0, 0), want, "{profile:?} {nr}");
            }
            let clone = libc::SYS_clone as u32;
            assert_eq!(run(&f, AUDIT_ARCH, clone, libc::SIGCHLD as u32, 0), allow);
            for flag in [libc::CLONE_NEWUSER, libc::CLONE_NEWNS, libc::CLONE_NEWNET] {
                assert_eq!(run(&f, AUDIT_ARCH, clone, flag as u32, 0), eperm);
            }
            let ioctl = libc::SYS_ioctl as u32;
            for &request in DENIED_IOCTLS {
                assert_eq!(run(&f, AUDIT_ARCH, ioctl, 0, request), eperm);
            }
            assert_eq!(
                run(&f, AUDIT_ARCH, ioctl, 0, libc::TIOCGWINSZ as u32),
                allow
            );
            assert_eq!(
                run(&f, AUDIT_ARCH ^ 1, 0, 0, 0),
                libc::SECCOMP_RET_KILL_PROCESS
            );
            #[cfg(target_arch = "x86_64")]
            assert_eq!(run(&f, AUDIT_ARCH, 0x4000_0000, 0, 0), eperm);
            // The kernel runs the filter once per number at attach.
            let longest = (0..1024u32)
                .map(|nr| run_counted(&f, AUDIT_ARCH, nr, 0, 0).1)
                .max()
                .unwrap();
            assert!(longest <= 20, "{profile:?}: {longest} instructions");
        }
    }

    /// Runs `call` in a forked child under the low profile's filter (the
    /// smallest); returns the errno it got, or 0.
    fn errno_under_low_filter(call: fn() -> libc::c_long) -> i32 {
        let f = filter(Profile::Low);
        // SAFETY: the child makes only async-signal-safe calls, then _exits.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || install(&f).is_err() {
                    libc::_exit(255);
                }
                let rc = call();
                libc::_exit(if rc < 0 { *libc::__errno_location() } else { 0 });
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            libc::WEXITSTATUS(status)
        }
    }

    #[test]
    fn every_profile_denies_terminal_injection_keyrings_and_user_namespaces() {
        // SAFETY (all): raw system calls on invalid arguments (descriptor -1,
        // so nothing reaches a terminal even without the filter); what matters
        // is whether the filter answers before the kernel does.
        let sti = || unsafe { libc::ioctl(-1, libc::TIOCSTI, c"x".as_ptr()) as libc::c_long };
        let linux = || unsafe { libc::ioctl(-1, libc::TIOCLINUX, c"x".as_ptr()) as libc::c_long };
        let keys = || unsafe { libc::syscall(libc::SYS_keyctl, 0, -1, 0, 0, 0) };
        let userns = || unsafe { libc::unshare(libc::CLONE_NEWUSER) as libc::c_long };
        for call in [sti, linux, keys, userns] {
            assert_eq!(errno_under_low_filter(call), libc::EPERM);
        }
        // Other ioctls reach the kernel, which finds no descriptor -1.
        let winsize = || unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            libc::ioctl(-1, libc::TIOCGWINSZ, &mut ws) as libc::c_long
        };
        assert_eq!(errno_under_low_filter(winsize), libc::EBADF);
    }
}
