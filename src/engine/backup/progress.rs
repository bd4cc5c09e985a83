//! Progress of long operations on stderr: bytes, rate and ETA, redrawn in place at
//! most five times a second. Silent unless stderr is a terminal and not `-q`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    start: Instant,
    last_draw: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// A meter that draws only when `show` and stderr is a terminal.
    pub fn new(label: &str, total: Option<u64>, show: bool) -> Progress {
        Progress {
            label: label.to_string(),
            total,
            done: 0,
            start: Instant::now(),
            last_draw: None,
            enabled: show && std::io::stderr().is_terminal(),
        }
    }

    /// A meter that never draws.
    pub fn hidden() -> Progress {
        Progress::new("", None, false)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn add(&mut self, bytes: u64) {
        self.done += bytes;
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_some_and(|t| now - t < Duration::from_millis(200))
        {
            return;
        }
        self.last_draw = Some(now);
        let line = render(&self.label, self.done, self.total, now - self.start);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
    }

    /// Clears the line (the caller prints the result).
    pub fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
        self.last_draw = None;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `restoring  412.0 MiB / 1.0 GiB  38.2 MiB/s  ETA 0:16`.
pub fn render(label: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = done as f64 / secs;
    let mut s = format!("{label}  {}", bytes(done));
    if let Some(total) = total {
        s.push_str(&format!(" / {}", bytes(total)));
    }
    s.push_str(&format!("  {}/s", bytes(rate as u64)));
    if let Some(total) = total.filter(|_| rate >= 1.0) {
        let left = total.saturating_sub(done) as f64 / rate;
        let left = left as u64;
        s.push_str(&format!("  ETA {}:{:02}", left / 60, left % 60));
    }
    s
}

/// Binary units with one decimal: `1.5 GiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bytes_rate_and_eta() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        let line = render(
            "restoring",
            100 << 20,
            Some(300 << 20),
            Duration::from_secs(10),
        );
        assert_eq!(
            line,
            "restoring  100.0 MiB / 300.0 MiB  10.0 MiB/s  ETA 0:20"
        );
        let line = render("backing up", 1 << 20, None, Duration::from_secs(1));
        assert_eq!(line, "backing up  1.0 MiB  1.0 MiB/s");
    }

    #[test]
    fn hidden_meter_counts_silently() {
        let mut p = Progress::hidden();
        p.add(10);
        assert!(!p.enabled());
        assert_eq!(p.done, 10);
    }
}
