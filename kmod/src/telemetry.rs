//! Telemetry: the per-cell figures of the 1 Hz sampler and the rate limit
//! of the deny log. Pure arithmetic; the kernel glue feeds it.

use crate::abi::{DenyScope, CELL_DENY_SCOPES};

/// Number of one-second samples in the rolling CPU average.
pub const CPU_WINDOW: usize = 10;

/// Per-cell figures, rebuilt by every sampler pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CellTelemetry {
    /// Live (non-zombie) member processes.
    pub procs: u64,
    /// Live plus zombie member processes.
    pub refs: u64,
    /// Sum of the live members' virtual map sizes, bytes.
    pub memory: u64,
    /// CPU ticks over the last second.
    pub cpu_1s: u64,
    /// Average of the last (up to) ten one-second deltas.
    pub cpu_10s: u64,
    /// Cumulative ticks of the members seen in this pass.
    ticks_now: u64,
    /// Cumulative ticks seen in the previous pass.
    ticks_prev: u64,
    ring: [u64; CPU_WINDOW],
    ring_next: usize,
    ring_valid: usize,
    ring_sum: u64,
}

/// One process as the sampler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcSample {
    pub zombie: bool,
    /// `p_uticks + p_sticks + p_iticks`.
    pub ticks: u64,
    /// `p_vmspace->vm_map.size` (0 for zombies).
    pub vmsize: u64,
}

impl CellTelemetry {
    /// Starts a pass: clears the gauges that are summed over processes.
    pub fn begin_pass(&mut self) {
        self.procs = 0;
        self.refs = 0;
        self.memory = 0;
        self.ticks_now = 0;
    }

    /// Adds one member process.
    pub fn account(&mut self, p: ProcSample) {
        self.refs += 1;
        if !p.zombie {
            self.procs += 1;
            self.memory = self.memory.saturating_add(p.vmsize);
            self.ticks_now = self.ticks_now.saturating_add(p.ticks);
        }
    }

    /// Ends a pass: the CPU delta (0 if the total fell because members
    /// exited, taking their ticks with them) and the rolling average.
    pub fn end_pass(&mut self) {
        let delta = self.ticks_now.saturating_sub(self.ticks_prev);
        self.ticks_prev = self.ticks_now;
        self.ring_sum -= self.ring[self.ring_next];
        self.ring[self.ring_next] = delta;
        self.ring_sum += delta;
        self.ring_next = (self.ring_next + 1) % CPU_WINDOW;
        self.ring_valid = (self.ring_valid + 1).min(CPU_WINDOW);
        self.cpu_1s = delta;
        self.cpu_10s = self.ring_sum / self.ring_valid as u64;
    }
}

/// Rate limit of the deny log: at most one line per scope per second, so
/// noisy network denies cannot hide process or system denies. Suppressed
/// events are counted and reported with the next line that gets through.
#[derive(Clone, Copy, Debug, Default)]
pub struct DenyLog {
    last_ns: [Option<u64>; CELL_DENY_SCOPES],
    pending: [u64; CELL_DENY_SCOPES],
    suppressed_total: [u64; CELL_DENY_SCOPES],
}

const SECOND_NS: u64 = 1_000_000_000;

impl DenyLog {
    /// Should a deny in `scope` at `now_ns` be logged? `Some(n)`: yes, and
    /// `n` lines were suppressed since the last one; `None`: suppressed.
    pub fn admit(&mut self, scope: DenyScope, now_ns: u64) -> Option<u64> {
        let i = scope.index();
        match self.last_ns[i] {
            Some(last) if now_ns.saturating_sub(last) < SECOND_NS => {
                self.pending[i] += 1;
                self.suppressed_total[i] += 1;
                None
            }
            _ => {
                self.last_ns[i] = Some(now_ns);
                Some(core::mem::take(&mut self.pending[i]))
            }
        }
    }

    /// Suppressed lines since load, per scope.
    pub fn suppressed(&self) -> [u64; CELL_DENY_SCOPES] {
        self.suppressed_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ticks: u64, vmsize: u64) -> ProcSample {
        ProcSample {
            zombie: false,
            ticks,
            vmsize,
        }
    }

    #[test]
    fn sampler_counts_and_averages() {
        let mut t = CellTelemetry::default();
        t.begin_pass();
        t.account(live(100, 4096));
        t.account(live(50, 8192));
        t.account(ProcSample {
            zombie: true,
            ticks: 999,
            vmsize: 0,
        });
        t.end_pass();
        assert_eq!((t.procs, t.refs, t.memory), (2, 3, 12288));
        assert_eq!((t.cpu_1s, t.cpu_10s), (150, 150));
        t.begin_pass();
        t.account(live(130, 4096));
        t.account(live(70, 8192));
        t.end_pass();
        assert_eq!((t.procs, t.refs), (2, 2));
        assert_eq!((t.cpu_1s, t.cpu_10s), (50, 100));
        // A member exits: the total falls, the delta clamps to 0.
        t.begin_pass();
        t.account(live(70, 8192));
        t.end_pass();
        assert_eq!(t.cpu_1s, 0);
        assert_eq!(t.cpu_10s, 200 / 3);
    }

    #[test]
    fn cpu_window_keeps_ten_samples() {
        let mut t = CellTelemetry::default();
        let mut total = 0;
        for _ in 0..15 {
            total += 10;
            t.begin_pass();
            t.account(live(total, 0));
            t.end_pass();
        }
        // First delta is 10 as well (cumulative from 0); all are 10.
        assert_eq!((t.cpu_1s, t.cpu_10s), (10, 10));
        for _ in 0..10 {
            t.begin_pass();
            t.account(live(total, 0));
            t.end_pass();
        }
        assert_eq!((t.cpu_1s, t.cpu_10s), (0, 0));
    }

    #[test]
    fn deny_log_one_line_per_scope_per_second() {
        let mut log = DenyLog::default();
        let s = SECOND_NS;
        assert_eq!(log.admit(DenyScope::Network, 0), Some(0));
        assert_eq!(log.admit(DenyScope::Network, 1), None);
        assert_eq!(log.admit(DenyScope::Network, s / 2), None);
        // Another scope is not starved by the noisy one.
        assert_eq!(log.admit(DenyScope::Process, s / 2), Some(0));
        assert_eq!(log.admit(DenyScope::Network, s), Some(2));
        assert_eq!(log.admit(DenyScope::Network, s + 1), None);
        let sup = log.suppressed();
        assert_eq!(sup[DenyScope::Network.index()], 3);
        assert_eq!(sup[DenyScope::Process.index()], 0);
    }
}
