//! Per-cell telemetry, sampled once a second by the cell's init (like the NetBSD
//! module's 1 Hz callout), so `stats` needs no daemon and no waiting.
//!
//! Each sample reads the cell cgroup's `cpu.stat` (`usage_usec`, which includes
//! exited members) and walks the cell's own `/proc`: every pid but 1 is a member;
//! zombies count as references only; memory is the sum of virtual sizes (as
//! NetBSD's `vm_map` size). The init writes the result atomically to
//! `<run_dir>/kernel/<id>/sample` when it differs from the last one written
//! (an idle cell's stays as it is); readers parse that one line. The init's
//! loop (the spawn agent's) calls [`Sampler::tick`] when a sample is due; the
//! first is due a second after start-up, off the path of a new cell's first
//! command. An idle cell's second costs one read of `cpu.stat` (through a
//! descriptor kept open) and one short walk of its `/proc`.

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
        let Ok(stat) = crate::fs::pseudo::ProcStat::read(pid) else {
            continue;
        };
        match stat.state() {
            None => continue,
            Some('Z') => zombies += 1,
            Some(_) => {
                live += 1;
                // Field 23: vsize.
                memory += stat.number(23).unwrap_or(0);
            }
        }
    }
    (live, zombies, memory)
}

/// A file of the cell's cgroup, kept open: each read from offset 0 is current.
fn open_cgroup_file(cgroup: &OwnedFd, name: &std::ffi::CStr) -> Option<std::fs::File> {
    // SAFETY: openat relative to a directory fd we own.
    let fd = unsafe {
        libc::openat(
            cgroup.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    // SAFETY: fd was just opened and is owned by the File from here on.
    (fd >= 0).then(|| unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Whether the cgroup holds a process besides the init (pid 1 in the init's
/// view of `cgroup.procs`). Without one no zombie lingers either: the init
/// reaps its children at once.
fn has_members(procs: &std::fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 64];
    match procs.read_at(&mut buf, 0) {
        Ok(n) => buf[..n]
            .split(|&b| b == b'\n')
            .any(|l| !l.is_empty() && l != b"1"),
        Err(_) => true,
    }
}

fn read_cpu_usec(cpu_stat: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 512];
    let n = cpu_stat.read_at(&mut buf, 0).ok()?;
    super::cgroup::cpu_usage_usec(std::str::from_utf8(&buf[..n]).ok()?)
}

/// Replaces the sample file; false when it could not.
fn write_sample(dir: &OwnedFd, sample: &Sample) -> bool {
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
            return false;
        }
        let mut f = std::fs::File::from_raw_fd(fd);
        f.write_all(sample.encode().as_bytes()).is_ok()
            && libc::renameat(dir.as_raw_fd(), tmp.as_ptr(), dir.as_raw_fd(), dst.as_ptr()) == 0
    }
}

/// The init's sampler: one sample a second, written through the descriptors
/// the init opened before it entered the cell.
pub struct Sampler {
    sample_dir: OwnedFd,
    /// `None` where the cgroup has no `cpu.stat` (CPU then reads 0).
    cpu_stat: Option<std::fs::File>,
    /// `cgroup.procs`: the cell's `/proc` is walked only when it lists members.
    procs: Option<std::fs::File>,
    window: Window,
    last_usec: u64,
    next: Instant,
    written: Option<Sample>,
}

impl Sampler {
    pub fn new(sample_dir: OwnedFd, cgroup: OwnedFd) -> Sampler {
        let cpu_stat = open_cgroup_file(&cgroup, c"cpu.stat");
        let procs = open_cgroup_file(&cgroup, c"cgroup.procs");
        let last_usec = cpu_stat.as_ref().and_then(read_cpu_usec).unwrap_or(0);
        Sampler {
            sample_dir,
            cpu_stat,
            procs,
            window: Window::default(),
            last_usec,
            next: Instant::now() + Duration::from_secs(1),
            written: None,
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
        let usec = self
            .cpu_stat
            .as_ref()
            .and_then(read_cpu_usec)
            .unwrap_or(self.last_usec);
        let delta = usec.saturating_sub(self.last_usec) / 10_000;
        self.last_usec = usec;
        let (live, zombies, memory) = match &self.procs {
            Some(procs) if !has_members(procs) => (0, 0, 0),
            _ => walk_proc(),
        };
        let sample = Sample {
            cpu1s: delta,
            cpu10s: self.window.push(delta),
            procs: live,
            refs: live + zombies,
            memory,
        };
        if self.written != Some(sample) && write_sample(&self.sample_dir, &sample) {
            self.written = Some(sample);
        }
        self.next += Duration::from_secs(1);
        if self.next < now {
            self.next = now + Duration::from_secs(1);
        }
    }

    /// The descriptors it holds (the init keeps them across its clean-up of
    /// inherited descriptors).
    pub fn fds(&self) -> Vec<i32> {
        let mut fds = vec![self.sample_dir.as_raw_fd()];
        fds.extend(
            self.cpu_stat
                .iter()
                .chain(&self.procs)
                .map(|f| f.as_raw_fd()),
        );
        fds
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
