//! Id mappings made on many threads at once (as a parallel apply makes
//! them) all finish. Its own test binary: the test forks hundreds of
//! helpers, and each fork copies every descriptor of the process for a
//! moment, which would make other tests' unmounts in the same process
//! busy.

use cells::fs::mount::Idmap;
use std::time::Duration;

/// Each helper child of `Idmap::new` inherits the other threads' pipe ends:
/// a helper that waited for its own pipe to close never ended, and two
/// threads waited on each other (a 200-cell apply hung for 14 minutes).
#[test]
fn id_mappings_made_on_many_threads_at_once_all_finish() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: user namespace maps need root");
        return;
    }
    let (done, finished) = std::sync::mpsc::channel();
    for t in 0..8u32 {
        let done = done.clone();
        std::thread::spawn(move || {
            for i in 0..40u32 {
                let base = (1 << 20) + (t * 40 + i) * 65_536;
                Idmap::new(base, 0, 65_536).expect("an id mapping");
            }
            done.send(()).unwrap();
        });
    }
    for _ in 0..8 {
        finished.recv_timeout(Duration::from_secs(120)).expect(
            "every thread's mappings are made (a hang means a helper child was never ended)",
        );
    }
}
