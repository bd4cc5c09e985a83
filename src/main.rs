//! `cells`: one multicall binary. `argv[0]`'s basename (or `cells <personality>`)
//! picks the personality; see `cells::cli`.
//!
//! The C `main` is ours (`no_main`): std's start-up would otherwise find the
//! main thread's stack guard by parsing `/proc/self/maps` and set up an
//! alternate signal stack before every command (about 0.06 ms of a 0.8 ms
//! start, and `cellctl` runs three times per create, exec and destroy). What
//! of that start-up a command relies on is done here: descriptors 0 to 2 are
//! open, `SIGPIPE` is ignored (writes to a closed pipe fail with `EPIPE`), a
//! panic exits with 101 and stdout is flushed at exit. A stack overflow ends
//! the process with `SIGSEGV` instead of std's message.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    standard_fds_open();
    // SAFETY: setting a signal's disposition to "ignore" has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // SAFETY: the C runtime hands `main` argc valid strings in argv.
    let args = match unsafe { arguments(argc, argv) } {
        Ok(args) => args,
        Err(n) => {
            eprintln!("cells: argument {n} is not valid UTF-8");
            std::process::exit(2);
        }
    };
    let code = std::panic::catch_unwind(|| {
        cells::cli::init_logging();
        cells::cli::dispatch(&args)
    })
    .unwrap_or(101);
    // std::process::exit flushes stdout, as std's own start-up would on return.
    std::process::exit(code as u8 as i32)
}

/// The command line as strings; `Err(n)`: argument `n` is not UTF-8.
///
/// # Safety
/// `argv` holds `argc` valid NUL-terminated strings.
#[cfg(not(test))]
unsafe fn arguments(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
) -> Result<Vec<String>, usize> {
    (0..argc.max(0) as usize)
        .map(|i| {
            let arg = std::ffi::CStr::from_ptr(*argv.add(i));
            arg.to_str().map(str::to_owned).map_err(|_| i)
        })
        .collect()
}

/// Opens `/dev/null` on any of descriptors 0 to 2 that is closed, so that no
/// file a command opens can take their place (and be written to as stdout).
#[cfg(not(test))]
fn standard_fds_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd entries.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for pfd in fds {
        if pfd.revents & libc::POLLNVAL != 0 {
            // SAFETY: a constant NUL-terminated path; opens the lowest free
            // descriptor, which is `pfd.fd` as the lower ones are open.
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if fd != pfd.fd {
                std::process::abort();
            }
        }
    }
}
