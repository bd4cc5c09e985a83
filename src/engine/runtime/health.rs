//! Health checks: a command run inside the cell until it exits 0, with a
//! timeout per attempt and a total budget. A check is something the cell
//! controls (it can make the checked file a FIFO and block it), so callers
//! run it without the cellmgr lock ([`crate::engine::lock::Held::without`]),
//! and a check past its time is killed with everything it started (its
//! process group, see [`crate::engine::applyfile::KernelRunner`]).

use crate::engine::applyfile::CellRunner;
use std::time::{Duration, Instant};

/// The limits of one health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// One attempt taking longer than this has failed.
    pub attempt: Duration,
    /// The pause between attempts.
    pub interval: Duration,
    /// The most attempts.
    pub attempts: u32,
    /// All attempts and pauses together; no attempt starts after it, and the
    /// last one is cut to fit.
    pub budget: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing::of(&crate::config::Config::default())
    }
}

impl Timing {
    /// The limits `cellmgr.conf` sets (`CELL_HEALTHCHECK_TIMEOUT`, `_BUDGET`).
    pub fn of(cfg: &crate::config::Config) -> Timing {
        Timing {
            attempt: cfg.health_timeout,
            interval: Duration::from_millis(250),
            attempts: 20,
            budget: cfg.health_budget,
        }
    }
}

/// How a health check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub cmd: String,
    pub attempts: u32,
    pub budget: Duration,
    /// How the last attempt failed: `exit 1`, `timed out after 10 s`, ...
    pub last: String,
}

impl Failed {
    /// The line `state/health` records after `failing: `.
    pub fn record(&self) -> String {
        format!(
            "{} ({} attempt{} within {} s)",
            self.last,
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            seconds(self.budget)
        )
    }
}

impl std::error::Error for Failed {}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed {} time{} within {} s; last: {}",
            crate::output::quoted(&self.cmd),
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            seconds(self.budget),
            self.last
        )
    }
}

/// Runs `cmd` (with `/bin/sh -c`) in the cell until it exits 0 or the budget
/// is spent; the error says how often it ran and how the last run failed.
pub fn check(runner: &dyn CellRunner, cmd: &str, timing: Timing) -> Result<(), Failed> {
    let deadline = Instant::now() + timing.budget;
    let argv = ["/bin/sh".to_string(), "-c".to_string(), cmd.to_string()];
    let mut last = String::new();
    let mut attempts = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() && attempts > 0 {
            break;
        }
        attempts += 1;
        let limit = timing.attempt.min(left.max(Duration::from_millis(1)));
        match runner.run(&argv, &[], limit) {
            Ok(o) if o.success() => return Ok(()),
            Ok(o) if o.timed_out => last = format!("timed out after {} s", seconds(limit)),
            Ok(o) => {
                last = match o.code {
                    Some(c) => format!("exit {c}"),
                    None => "killed by a signal".to_string(),
                };
                if let Some(line) = o.output.lines().rev().find(|l| !l.trim().is_empty()) {
                    last = format!("{last}: {}", crate::output::echo(line.trim()));
                }
            }
            Err(e) => last = format!("{e:#}"),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left <= timing.interval || attempts >= timing.attempts.max(1) {
            break;
        }
        std::thread::sleep(timing.interval);
    }
    Err(Failed {
        cmd: cmd.to_string(),
        attempts,
        budget: timing.budget,
        last,
    })
}

/// `3` or `0.5`: seconds to a tenth, for messages.
fn seconds(d: Duration) -> String {
    let tenths = (d.as_millis() + 50) / 100;
    if tenths % 10 == 0 {
        format!("{}", tenths / 10)
    } else {
        format!("{}.{}", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::applyfile::RunOutput;
    use std::cell::RefCell;

    /// Fails `fails` times (each taking `takes`), then succeeds.
    struct Flaky {
        fails: usize,
        takes: Duration,
        runs: RefCell<Vec<Duration>>,
    }

    impl CellRunner for Flaky {
        fn run(
            &self,
            _: &[String],
            _: &[(String, String)],
            timeout: Duration,
        ) -> anyhow::Result<RunOutput> {
            self.runs.borrow_mut().push(timeout);
            let n = self.runs.borrow().len();
            std::thread::sleep(self.takes.min(timeout));
            Ok(RunOutput {
                code: Some(i32::from(n <= self.fails)),
                timed_out: self.takes > timeout,
                output: String::new(),
            })
        }
    }

    fn timing(ms: u64) -> Timing {
        Timing {
            attempt: Duration::from_millis(ms),
            interval: Duration::from_millis(1),
            attempts: 100,
            budget: Duration::from_millis(ms * 5),
        }
    }

    #[test]
    fn passes_once_a_run_succeeds() {
        let r = Flaky {
            fails: 2,
            takes: Duration::ZERO,
            runs: RefCell::default(),
        };
        assert_eq!(check(&r, "true", timing(50)), Ok(()));
        assert_eq!(r.runs.borrow().len(), 3);
    }

    #[test]
    fn the_budget_bounds_every_attempt_and_the_total() {
        let r = Flaky {
            fails: usize::MAX,
            takes: Duration::from_secs(3600),
            runs: RefCell::default(),
        };
        let started = Instant::now();
        let e = check(&r, "cat /fifo", timing(40)).unwrap_err().to_string();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(
            e.starts_with("'cat /fifo' failed") && e.contains("within 0.2 s"),
            "{e}"
        );
        assert!(e.contains("last: timed out after"), "{e}");
        let runs = r.runs.borrow();
        assert!(
            runs.iter().all(|t| *t <= Duration::from_millis(40)),
            "{runs:?}"
        );
        let total: Duration = runs.iter().sum();
        assert!(total <= Duration::from_millis(200), "{runs:?}");
    }
}
