//! What happens when a service ends: whether it is started again
//! (`CELL_SUPERVISE_RESTART`) and after which delay ([`Backoff`]).

use std::time::Duration;

/// When an ended service is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Whatever the way it ended (the default).
    #[default]
    Always,
    /// Only after a non-zero exit, a signal, or a failed start.
    OnFailure,
    /// Never: the supervisor stays, reporting how the service ended.
    Never,
}

impl RestartPolicy {
    pub const NAMES: &'static str = "always, on-failure or never";

    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }

    /// Whether a run that ended `succeeded` (exit 0) is started again.
    pub fn restarts(self, succeeded: bool) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !succeeded,
            RestartPolicy::Never => false,
        }
    }
}

impl std::str::FromStr for RestartPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<RestartPolicy, String> {
        match s {
            "always" => Ok(RestartPolicy::Always),
            "on-failure" => Ok(RestartPolicy::OnFailure),
            "never" => Ok(RestartPolicy::Never),
            _ => Err(format!(
                "unknown restart policy '{s}': expected {}",
                RestartPolicy::NAMES
            )),
        }
    }
}

/// Restart delay: 1 s, doubling after each run shorter than 30 s, at most
/// 10 s; a run of 30 s or more starts again from 1 s.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const MIN: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(10);
    pub const STABLE: Duration = Duration::from_secs(30);

    pub fn new() -> Backoff {
        Backoff { next: Self::MIN }
    }

    /// The delay before restarting a run that lasted `ran`.
    pub fn after_run(&mut self, ran: Duration) -> Duration {
        if ran >= Self::STABLE {
            self.next = Self::MIN;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_decide_by_how_the_run_ended() {
        use RestartPolicy::*;
        assert_eq!(
            [Always, OnFailure, Never].map(|p| (p.restarts(true), p.restarts(false))),
            [(true, true), (false, true), (false, false)]
        );
        assert_eq!("on-failure".parse::<RestartPolicy>(), Ok(OnFailure));
        assert_eq!(
            "sometimes".parse::<RestartPolicy>().unwrap_err(),
            "unknown restart policy 'sometimes': expected always, on-failure or never"
        );
    }

    #[test]
    fn backoff_doubles_to_ten_and_resets_after_a_stable_run() {
        let short = Duration::from_secs(2);
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..6).map(|_| b.after_run(short).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.after_run(Duration::from_secs(30)).as_secs(), 1);
        assert_eq!(b.after_run(short).as_secs(), 2);
    }
}
