//! Back-pressure on a service's output: a token bucket of bytes. While it is
//! empty the supervisor leaves the service's pipe unread, so a service that
//! writes faster than the limit blocks in write(2) and is slowed down, and the
//! supervisor's work per second stays bounded whatever the service does.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Throttle {
    /// Bytes per second; 0 means no limit.
    rate: u64,
    /// Bytes available now, at most `rate` (one second's worth of burst).
    tokens: u64,
    refilled: Instant,
}

impl Throttle {
    pub fn new(rate: u64, now: Instant) -> Throttle {
        Throttle {
            rate,
            tokens: rate,
            refilled: now,
        }
    }

    /// How many bytes may be taken in now (`usize::MAX` without a limit).
    pub fn allowance(&mut self, now: Instant) -> usize {
        if self.rate == 0 {
            return usize::MAX;
        }
        let elapsed = now.saturating_duration_since(self.refilled);
        let earned = (elapsed.as_nanos() * self.rate as u128 / 1_000_000_000) as u64;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(self.rate);
            // Keep the remainder of a partly earned byte for the next call.
            let used =
                Duration::from_nanos((earned as u128 * 1_000_000_000 / self.rate as u128) as u64);
            self.refilled = if self.tokens == self.rate {
                now
            } else {
                self.refilled + used
            };
        }
        usize::try_from(self.tokens).unwrap_or(usize::MAX)
    }

    /// Records `n` bytes taken in.
    pub fn take(&mut self, n: usize) {
        if self.rate > 0 {
            self.tokens = self.tokens.saturating_sub(n as u64);
        }
    }

    /// When reading is worth trying again after the allowance ran out:
    /// once a useful amount (a pipe page) has been earned.
    pub fn ready_at(&self) -> Instant {
        let want = 4096.min(self.rate).saturating_sub(self.tokens);
        let nanos = want as u128 * 1_000_000_000 / self.rate.max(1) as u128;
        self.refilled + Duration::from_nanos(nanos as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_holds_one_second_and_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut t = Throttle::new(10_000, t0);
        assert_eq!(t.allowance(t0), 10_000);
        t.take(10_000);
        assert_eq!(t.allowance(t0), 0);
        // 4096 bytes take 409.6 ms to earn.
        assert_eq!(t.ready_at(), t0 + Duration::from_micros(409_600));
        assert_eq!(t.allowance(t0 + Duration::from_millis(100)), 1000);
        assert_eq!(t.allowance(t0 + Duration::from_millis(250)), 2500);
        t.take(2500);
        // A long pause refills to one second's worth, no more.
        assert_eq!(t.allowance(t0 + Duration::from_secs(60)), 10_000);
    }

    #[test]
    fn fractions_of_a_byte_are_not_lost() {
        let t0 = Instant::now();
        let mut t = Throttle::new(3, t0);
        t.take(3);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(t.allowance(at(100)), 0);
        assert_eq!(t.allowance(at(400)), 1);
        // 300 ms more is 0.9 byte, but 67 ms were left over from before.
        assert_eq!(t.allowance(at(700)), 2);
        assert_eq!(t.allowance(at(1000)), 3);
    }

    #[test]
    fn no_limit_means_no_limit() {
        let t0 = Instant::now();
        let mut t = Throttle::new(0, t0);
        t.take(1 << 30);
        assert_eq!(t.allowance(t0), usize::MAX);
    }
}
