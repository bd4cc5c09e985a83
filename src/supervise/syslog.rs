//! A small RFC 3164 syslog client: one datagram per record to the local syslog
//! socket, with a file fallback when no syslog daemon listens.
//!
//! The supervisor never blocks on syslog: the socket is non-blocking. When the
//! daemon's queue is full, records wait in a queue of ours and the supervisor
//! stops reading the service's output until they are sent (back-pressure);
//! a daemon that stays behind for [`HOLD`] gets records dropped and counted
//! instead, for [`RETRY_SOCKET_AFTER`], so a wedged daemon cannot stall
//! services for good. The fallback file is rotated like the service log.

use super::logfile::{RotatingFile, Rotation};
use std::collections::VecDeque;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest piece of a service line sent as one record; longer lines are split.
/// Leaves room for the header, the tag and the `cell=… stdout: ` prefix within
/// the 1024 bytes RFC 3164 allows.
pub const MAX_CHUNK: usize = 480;

/// How long the fallback stays in use before the socket is tried again; also
/// how long records are dropped after the daemon stayed behind for [`HOLD`].
const RETRY_SOCKET_AFTER: Duration = Duration::from_secs(10);
/// How long queued records wait for room in the daemon's queue.
pub const HOLD: Duration = Duration::from_secs(1);
/// How often a full queue is tried again.
const RETRY_FULL_QUEUE: Duration = Duration::from_millis(10);

/// Syslog facilities by name, as syslog.conf(5) spells them.
const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Severities by name, index = numeric level.
const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// A syslog facility (the code, 0..=23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Facility(u8);

impl Facility {
    pub const DAEMON: Facility = Facility(3);

    pub fn code(self) -> u8 {
        self.0
    }

    pub fn name(self) -> &'static str {
        FACILITIES
            .iter()
            .find(|(_, c)| *c == self.0)
            .map(|(n, _)| *n)
            .unwrap_or("daemon")
    }
}

impl std::str::FromStr for Facility {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Facility> {
        FACILITIES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, c)| Facility(*c))
            .ok_or_else(|| {
                let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
                anyhow::anyhow!(
                    "unknown facility '{s}': expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// A syslog severity, 0 (emerg) to 7 (debug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Level(u8);

impl Level {
    pub const ERR: Level = Level(3);
    pub const WARNING: Level = Level(4);
    pub const NOTICE: Level = Level(5);
    pub const INFO: Level = Level(6);

    pub fn code(self) -> u8 {
        self.0
    }

    pub fn name(self) -> &'static str {
        LEVELS[self.0 as usize]
    }
}

impl std::str::FromStr for Level {
    type Err = anyhow::Error;
    /// A name (`err`, `notice`, …) or a number 0–7, decimal or `0x` hex.
    fn from_str(s: &str) -> anyhow::Result<Level> {
        if let Some(i) = LEVELS.iter().position(|n| *n == s) {
            return Ok(Level(i as u8));
        }
        let number = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex) => u8::from_str_radix(hex, 16).ok(),
            None => s.parse::<u8>().ok(),
        };
        match number {
            Some(n) if n <= 7 => Ok(Level(n)),
            _ => anyhow::bail!(
                "unknown level '{s}': expected one of {} or a number 0-7",
                LEVELS.join(", ")
            ),
        }
    }
}

/// `<PRI>` value: facility * 8 + severity.
pub fn priority(facility: Facility, level: Level) -> u8 {
    facility.0 * 8 + level.0
}

/// One RFC 3164 record: `<PRI>Mmm dd hh:mm:ss tag[pid]: message`, local time.
pub fn format_record(
    facility: Facility,
    level: Level,
    tag: &str,
    pid: u32,
    unix_secs: i64,
    msg: &str,
) -> String {
    format!(
        "<{}>{} {tag}[{pid}]: {msg}",
        priority(facility, level),
        rfc3164_time(unix_secs)
    )
}

/// `Mmm dd hh:mm:ss` in local time, day padded with a space.
fn rfc3164_time(unix_secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // SAFETY: localtime_r writes only into `tm`, which outlives the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&(unix_secs as _), &mut tm) }.is_null() {
        return "Jan  1 00:00:00".to_string();
    }
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// Cleans a tag the way the original did: tabs and newlines become spaces.
pub fn sanitize_tag(tag: &str) -> String {
    tag.chars()
        .map(|c| {
            if matches!(c, '\t' | '\n' | '\r') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Where records go: the syslog socket, or the fallback file while the socket
/// is unreachable.
pub struct Syslog {
    socket_path: PathBuf,
    socket: Option<UnixDatagram>,
    /// The socket was handed over connected (a supervisor in a cell's init,
    /// where the path means nothing): it is kept, never made again.
    connected: bool,
    facility: Facility,
    tag: String,
    pid: u32,
    fallback: RotatingFile,
    /// When the socket last failed; it is retried after [`RETRY_SOCKET_AFTER`].
    failed_at: Option<Instant>,
    /// Records waiting for room in the daemon's queue, oldest first.
    queue: VecDeque<String>,
    /// Since when the daemon's queue has been full, and when it was last tried.
    blocked: Option<(Instant, Instant)>,
    /// Records are dropped rather than held until then.
    dropping_until: Option<Instant>,
    /// Records dropped since the last report.
    dropped: u64,
}

/// Things the caller should tell the operator (e.g. in the service log).
pub type Notices = Vec<String>;

impl Syslog {
    pub fn new(
        socket_path: &Path,
        facility: Facility,
        tag: &str,
        pid: u32,
        fallback_path: &Path,
        rotation: Rotation,
    ) -> Syslog {
        Syslog {
            socket_path: socket_path.to_path_buf(),
            socket: None,
            connected: false,
            facility,
            tag: tag.to_string(),
            pid,
            fallback: RotatingFile::new(fallback_path, rotation),
            failed_at: None,
            queue: VecDeque::new(),
            blocked: None,
            dropping_until: None,
            dropped: 0,
        }
    }

    /// Sends to `socket`, connected already to the daemon at `socket_path`
    /// (`None`: none listened when it was made) instead of the path. A
    /// daemon restarted since does not hear it again: records go to the
    /// fallback file until the supervision is started again.
    pub fn connected(mut self, socket: Option<UnixDatagram>) -> Syslog {
        if let Some(s) = &socket {
            let _ = s.set_nonblocking(true);
        }
        self.socket = socket;
        self.connected = true;
        self
    }

    /// True while records go to the fallback file because the socket failed.
    pub fn unreachable(&self) -> bool {
        self.failed_at.is_some()
    }

    /// A new connected socket (see [`Syslog::connected`]), tried at the next
    /// record.
    pub fn replace_socket(&mut self, socket: UnixDatagram) {
        let _ = socket.set_nonblocking(true);
        self.socket = Some(socket);
        let now = Instant::now();
        self.failed_at = self
            .failed_at
            .map(|_| now.checked_sub(RETRY_SOCKET_AFTER).unwrap_or(now));
    }

    /// Queues one record and sends what the daemon takes now.
    pub fn log(&mut self, level: Level, msg: &str) -> Notices {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let record = format_record(self.facility, level, &self.tag, self.pid, now, msg);
        self.queue.push_back(record);
        self.flush(Instant::now())
    }

    /// True while records wait for room in the daemon's queue: the caller
    /// should stop taking in output and call [`Syslog::flush`] at [`Syslog::retry_at`].
    pub fn is_behind(&self) -> bool {
        !self.queue.is_empty()
    }

    /// When to call [`Syslog::flush`] again while behind.
    pub fn retry_at(&self) -> Option<Instant> {
        self.blocked.map(|(_, tried)| tried + RETRY_FULL_QUEUE)
    }

    /// Sends queued records, in order, until the daemon's queue is full.
    pub fn flush(&mut self, now: Instant) -> Notices {
        let mut notices = Vec::new();
        while let Some(record) = self.queue.front() {
            let use_socket = self
                .failed_at
                .map_or(true, |t| now.duration_since(t) >= RETRY_SOCKET_AFTER);
            if !use_socket {
                let record = self.queue.pop_front().expect("front exists");
                self.append_fallback(&record, None);
                continue;
            }
            let sent = if self.connected {
                match &self.socket {
                    Some(s) => s.send(record.as_bytes()).map(|_| ()),
                    None => Err(io::Error::from(io::ErrorKind::NotConnected)),
                }
            } else {
                send(&mut self.socket, &self.socket_path, record.as_bytes())
            };
            match sent {
                Ok(()) => {
                    self.queue.pop_front();
                    self.blocked = None;
                    if self.failed_at.take().is_some() {
                        notices.push(format!(
                            "syslog socket {} is reachable again; logging there",
                            self.socket_path.display()
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.dropping_until.is_some_and(|t| now < t) {
                        self.queue.pop_front();
                        self.dropped += 1;
                        continue;
                    }
                    let since = self.blocked.map_or(now, |(since, _)| since);
                    if now.duration_since(since) < HOLD {
                        self.blocked = Some((since, now));
                        return notices;
                    }
                    // The daemon stays behind: stop holding the service up.
                    self.dropped += self.queue.len() as u64;
                    self.queue.clear();
                    self.blocked = None;
                    self.dropping_until = Some(now + RETRY_SOCKET_AFTER);
                    notices.push(format!(
                        "the syslog daemon has not taken records for {} s; dropping records for the next {} s",
                        HOLD.as_secs(),
                        RETRY_SOCKET_AFTER.as_secs()
                    ));
                }
                Err(e) => {
                    if !self.connected {
                        self.socket = None;
                    }
                    self.blocked = None;
                    let first = self.failed_at.is_none();
                    self.failed_at = Some(now);
                    let notice = first.then(|| {
                        format!(
                            "syslog socket {} is unreachable ({e}); appending records to {}",
                            self.socket_path.display(),
                            self.fallback.path().display()
                        )
                    });
                    let record = self.queue.pop_front().expect("front exists");
                    self.append_fallback(&record, notice.as_deref());
                    notices.extend(notice);
                }
            }
        }
        if self.dropped > 0 && self.dropping_until.map_or(true, |t| now >= t) {
            self.dropping_until = None;
            notices.push(format!(
                "{} record(s) dropped: the syslog daemon did not keep up",
                std::mem::take(&mut self.dropped)
            ));
        }
        notices
    }

    fn append_fallback(&mut self, record: &str, notice: Option<&str>) {
        let mut text = String::with_capacity(record.len() + 1);
        if let Some(n) = notice {
            text.push_str(&format!("{}: {n}\n", self.tag));
        }
        text.push_str(record);
        text.push('\n');
        // A failing fallback file has nowhere left to report to.
        let _ = self.fallback.append(text.as_bytes());
    }
}

/// Sends one datagram, creating the (non-blocking) socket on first use.
fn send(socket: &mut Option<UnixDatagram>, path: &Path, record: &[u8]) -> io::Result<()> {
    if socket.is_none() {
        let s = UnixDatagram::unbound()?;
        s.set_nonblocking(true)?;
        *socket = Some(s);
    }
    let s = socket.as_ref().expect("socket was just created");
    s.send_to(record, path).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    const ROTATION: Rotation = Rotation {
        max_size: 1 << 20,
        files: 2,
    };

    #[test]
    fn facilities_and_levels_parse_by_name_and_number() {
        assert_eq!("daemon".parse::<Facility>().unwrap().code(), 3);
        assert_eq!("local7".parse::<Facility>().unwrap().code(), 23);
        assert_eq!("authpriv".parse::<Facility>().unwrap().name(), "authpriv");
        let e = "deamon".parse::<Facility>().unwrap_err().to_string();
        assert!(
            e.starts_with("unknown facility 'deamon': expected one of kern, user"),
            "{e}"
        );
        assert_eq!("err".parse::<Level>().unwrap(), Level::ERR);
        assert_eq!("notice".parse::<Level>().unwrap(), Level::NOTICE);
        assert_eq!("7".parse::<Level>().unwrap().name(), "debug");
        assert_eq!("0x4".parse::<Level>().unwrap(), Level::WARNING);
        assert!("8".parse::<Level>().is_err());
        assert!("-1".parse::<Level>().is_err());
        assert!("error".parse::<Level>().is_err());
    }

    #[test]
    fn priority_is_facility_times_eight_plus_level() {
        assert_eq!(priority(Facility::DAEMON, Level::NOTICE), 29);
        assert_eq!(priority(Facility::DAEMON, Level::ERR), 27);
        assert_eq!(priority("local0".parse().unwrap(), Level::INFO), 134);
    }

    #[test]
    fn record_has_rfc3164_shape() {
        let r = format_record(Facility::DAEMON, Level::ERR, "cell-web", 42, 0, "hi there");
        // The time is local; check the shape around it.
        assert!(r.starts_with("<27>"), "{r}");
        let rest = &r[4..];
        assert_eq!(rest.as_bytes()[3], b' ', "{r}");
        assert_eq!(&rest[15..], " cell-web[42]: hi there", "{r}");
        let time = &rest[7..15];
        assert!(
            time.as_bytes()[2] == b':' && time.as_bytes()[5] == b':',
            "{r}"
        );
    }

    #[test]
    fn tag_whitespace_is_flattened() {
        assert_eq!(sanitize_tag("a\tb\nc"), "a b c");
    }

    #[test]
    fn unreachable_socket_falls_back_to_a_file_and_says_so_once() {
        let dir = TempDir::new("syslog");
        let sock = dir.join("no-such-log");
        let fallback = dir.join("fallback.log");
        let mut s = Syslog::new(&sock, Facility::DAEMON, "t", 7, &fallback, ROTATION);
        let first = s.log(Level::NOTICE, "one");
        assert!(first[0].contains("is unreachable"), "{first:?}");
        assert!(s.log(Level::ERR, "two").is_empty());
        let text = std::fs::read_to_string(&fallback).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("t: syslog socket"), "{text}");
        assert!(lines[1].starts_with("<29>") && lines[1].ends_with(" t[7]: one"));
        assert!(lines[2].starts_with("<27>") && lines[2].ends_with(" t[7]: two"));
    }

    #[test]
    fn records_reach_a_listening_socket() {
        let dir = TempDir::new("syslog");
        let sock = dir.join("log");
        let server = UnixDatagram::bind(&sock).unwrap();
        let mut s = Syslog::new(
            &sock,
            "local3".parse().unwrap(),
            "tag",
            9,
            &dir.join("f"),
            ROTATION,
        );
        assert!(s.log(Level::WARNING, "hello").is_empty());
        let mut buf = [0u8; 2048];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            got.starts_with("<156>") && got.ends_with(" tag[9]: hello"),
            "{got}"
        );
        assert!(!dir.join("f").exists());
    }

    /// A listening socket nobody reads, and a client that logged `fill 0`,
    /// `fill 1`, … until the socket's queue was full (the last one is held).
    fn daemon_that_does_not_read() -> (TempDir, UnixDatagram, Syslog, usize) {
        let dir = TempDir::new("syslog");
        let sock = dir.join("log");
        let server = UnixDatagram::bind(&sock).unwrap();
        let mut s = Syslog::new(&sock, Facility::DAEMON, "t", 1, &dir.join("f"), ROTATION);
        let mut sent = 0;
        while !s.is_behind() {
            assert!(s.log(Level::INFO, &format!("fill {sent}")).is_empty());
            sent += 1;
            assert!(sent < 100_000, "the queue never filled");
        }
        (dir, server, s, sent)
    }

    #[test]
    fn a_full_queue_holds_records_in_order_until_the_daemon_reads() {
        let (dir, server, mut s, sent) = daemon_that_does_not_read();
        assert!(s.retry_at().is_some());
        assert!(s.log(Level::INFO, "later").is_empty(), "held, not dropped");
        let mut buf = [0u8; 2048];
        server.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        while got.len() < sent + 1 {
            match server.recv(&mut buf) {
                Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => {
                    assert!(s.flush(Instant::now()).is_empty());
                }
            }
        }
        assert!(!s.is_behind());
        for (i, rec) in got.iter().take(sent).enumerate() {
            assert!(rec.ends_with(&format!(" t[1]: fill {i}")), "{rec}");
        }
        assert!(got[sent].ends_with(" t[1]: later"));
        assert!(!dir.join("f").exists());
    }

    #[test]
    fn a_daemon_that_stays_behind_gets_records_dropped_and_counted() {
        let (_dir, server, mut s, sent) = daemon_that_does_not_read();
        s.log(Level::INFO, "held");
        let t0 = Instant::now();
        assert!(s.flush(t0).is_empty());
        let notices = s.flush(t0 + HOLD);
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].starts_with("the syslog daemon has not taken records for 1 s"));
        assert!(!s.is_behind());
        // While dropping, a full queue costs records, not time.
        assert!(s.log(Level::INFO, "lost").is_empty());
        assert!(!s.is_behind());
        let mut buf = [0u8; 2048];
        for _ in 1..sent {
            server.recv(&mut buf).unwrap();
        }
        let notices = s.flush(t0 + HOLD + RETRY_SOCKET_AFTER);
        assert_eq!(
            notices,
            ["3 record(s) dropped: the syslog daemon did not keep up"]
        );
    }

    #[test]
    fn the_fallback_file_is_rotated() {
        let dir = TempDir::new("syslog");
        let fallback = dir.join("cell.syslog");
        let rotation = Rotation {
            max_size: 4096,
            files: 2,
        };
        let mut s = Syslog::new(
            &dir.join("none"),
            Facility::DAEMON,
            "t",
            1,
            &fallback,
            rotation,
        );
        for i in 0..1000 {
            s.log(Level::INFO, &format!("record {i}"));
        }
        let current = std::fs::metadata(&fallback).unwrap().len();
        let older = std::fs::metadata(super::super::logfile::generation(&fallback, 1))
            .unwrap()
            .len();
        assert!(
            current <= 4096 && older <= 4096 && older > 4000,
            "{current} {older}"
        );
        assert!(!super::super::logfile::generation(&fallback, 2).exists());
        let text = std::fs::read_to_string(&fallback).unwrap();
        assert!(text.ends_with(" t[1]: record 999\n"), "{text}");
    }
}
