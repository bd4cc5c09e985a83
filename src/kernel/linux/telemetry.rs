//! Per-cell telemetry, sampled once a second by the cell's init (like the NetBSD
//! module's 1 Hz callout), so `stats` needs no daemon and no waiting.
//!
//! Each sample reads the cell cgroup's `cpu.stat` (`usage_usec`, which includes
//! exited members) and walks the cell's own `/proc`: every pid but 1 is a member;
//! zombies count as references only; memory is the sum of virtual sizes (as
//! NetBSD's `vm_map` size). The init writes the result atomically to
//! `<run_dir>/kernel/<id>/sample`; readers parse that one line. The init's
//! loop (the spawn agent's) calls [`Sampler::tick`] when a sample is due.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// The sampled gauges of one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// CPU ticks (1/100 s) used in the last second.
    pub cpu1s: u64,
    /// Average ticks per second over the last (up to) ten seconds.
    pub cpu10s: u64,
    pub procs: u64,
    pub refs: u64,
    pub memory: u64,
}

pub const SAMPLE_FILE: &str = "sample";

impl Sample {
    fn encode(&self) -> String {
        format!(
            "{} {} {} {} {}\n",
            self.cpu1s, self.cpu10s, self.procs, self.refs, self.memory
        )
    }

    pub fn decode(s: &str) -> Option<Sample> {
        let v: Vec<u64> = s
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        match v[..] {
            [cpu1s, cpu10s, procs, refs, memory] => Some(Sample {
                cpu1s,
                cpu10s,
                procs,
                refs,
                memory,
            }),
            _ => None,
        }
    }

    /// The last sample of a cell (zeros before the first one).
    pub fn read(cell_dir: &Path) -> Sample {
        std::fs::read_to_string(cell_dir.join(SAMPLE_FILE))
            .ok()
            .and_then(|s| Sample::decode(&s))
            .unwrap_or_default()
    }
}

/// CPU deltas of the last ten seconds.
#[derive(Debug, Default)]
struct Window {
    deltas: [u64; 10],
    len: usize,
    next: usize,
}

impl Window {
    fn push(&mut self, delta: u64) -> u64 {
        self.deltas[self.next] = delta;
        self.next = (self.next + 1) % self.deltas.len();
        self.len = (self.len + 1).min(self.deltas.len());
        self.deltas.iter().sum::<u64>() / self.len as u64
    }
}

/// Members of the cell as seen in its own `/proc`: (live, zombies, vsize sum).
fn walk_proc() -> (u64, u64, u64) {
    let (mut live, mut zombies, mut memory) = (0, 0, 0);
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0, 0, 0);
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == 1 {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            zombies += 1;
        } else {
            live += 1;
            // Field 23 (vsize) is the 21st after the command name.
            memory += fields.get(20).and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    (live, zombies, memory)
}

fn read_cpu_usec(cgroup: &OwnedFd) -> Option<u64> {
    let name = c"cpu.stat";
    // SAFETY: openat relative to a directory fd we own.
    let fd = unsafe {
        libc::openat(
            cgroup.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just opened and is owned by the File from here on.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut s = String::new();
    std::io::Read::read_to_string(&mut f, &mut s).ok()?;
    super::cgroup::cpu_usage_usec(&s)
}

fn write_sample(dir: &OwnedFd, sample: &Sample) {
    let tmp = c".sample.tmp";
    let dst = c"sample";
    // SAFETY: openat/renameat relative to a directory fd we own.
    unsafe {
        let fd = libc::openat(
            dir.as_raw_fd(),
            tmp.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        );
        if fd < 0 {
            return;
        }
        let mut f = std::fs::File::from_raw_fd(fd);
        if f.write_all(sample.encode().as_bytes()).is_ok() {
            libc::renameat(dir.as_raw_fd(), tmp.as_ptr(), dir.as_raw_fd(), dst.as_ptr());
        }
    }
}

/// The init's sampler: one sample a second, written through the descriptors
/// the init opened before it entered the cell.
pub struct Sampler {
    sample_dir: OwnedFd,
    cgroup: OwnedFd,
    window: Window,
    last_usec: u64,
    next: Instant,
}

impl Sampler {
    pub fn new(sample_dir: OwnedFd, cgroup: OwnedFd) -> Sampler {
        let last_usec = read_cpu_usec(&cgroup).unwrap_or(0);
        Sampler {
            sample_dir,
            cgroup,
            window: Window::default(),
            last_usec,
            next: Instant::now(),
        }
    }

    /// When the next sample is due.
    pub fn due(&self) -> Instant {
        self.next
    }

    /// Takes and writes a sample if one is due.
    pub fn tick(&mut self) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        let usec = read_cpu_usec(&self.cgroup).unwrap_or(self.last_usec);
        let delta = usec.saturating_sub(self.last_usec) / 10_000;
        self.last_usec = usec;
        let (live, zombies, memory) = walk_proc();
        let sample = Sample {
            cpu1s: delta,
            cpu10s: self.window.push(delta),
            procs: live,
            refs: live + zombies,
            memory,
        };
        write_sample(&self.sample_dir, &sample);
        self.next += Duration::from_secs(1);
        if self.next < now {
            self.next = now + Duration::from_secs(1);
        }
    }

    /// The descriptors it holds (the init keeps them across its clean-up of
    /// inherited descriptors).
    pub fn fds(&self) -> [i32; 2] {
        [self.sample_dir.as_raw_fd(), self.cgroup.as_raw_fd()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_round_trip() {
        let s = Sample {
            cpu1s: 50,
            cpu10s: 20,
            procs: 3,
            refs: 4,
            memory: 1 << 30,
        };
        assert_eq!(Sample::decode(&s.encode()), Some(s));
        assert_eq!(Sample::decode("1 2 3"), None);
    }

    #[test]
    fn the_ten_second_figure_averages_the_samples_seen_so_far() {
        let mut w = Window::default();
        assert_eq!(w.push(100), 100);
        assert_eq!(w.push(0), 50);
        for _ in 0..10 {
            w.push(10);
        }
        assert_eq!(w.push(10), 10);
    }
}
