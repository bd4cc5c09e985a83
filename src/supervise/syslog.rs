//! A small RFC 3164 syslog client: one datagram per record to the local syslog
//! socket, with a file fallback when no syslog daemon listens.
//!
//! The supervisor never blocks on syslog: the socket is non-blocking and a
//! record that does not fit into a full socket buffer is dropped and counted.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest piece of a service line sent as one record; longer lines are split.
/// Leaves room for the header, the tag and the `cell=… stdout: ` prefix within
/// the 1024 bytes RFC 3164 allows.
pub const MAX_CHUNK: usize = 480;

/// How long the fallback stays in use before the socket is tried again.
const RETRY_SOCKET_AFTER: Duration = Duration::from_secs(10);

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
    facility: Facility,
    tag: String,
    pid: u32,
    fallback_path: PathBuf,
    fallback: Option<File>,
    /// When the socket last failed; it is retried after [`RETRY_SOCKET_AFTER`].
    failed_at: Option<Instant>,
    /// Records dropped since the last one sent, because the socket's queue
    /// was full (reported with the next record that gets through).
    dropped: u64,
}

/// Something the caller should tell the operator once (e.g. in the log tail).
pub type Notice = Option<String>;

impl Syslog {
    pub fn new(
        socket_path: &Path,
        facility: Facility,
        tag: &str,
        pid: u32,
        fallback_path: &Path,
    ) -> Syslog {
        Syslog {
            socket_path: socket_path.to_path_buf(),
            socket: None,
            facility,
            tag: tag.to_string(),
            pid,
            fallback_path: fallback_path.to_path_buf(),
            fallback: None,
            failed_at: None,
            dropped: 0,
        }
    }

    /// Sends one record. Returns a notice when the destination changed (the
    /// socket became unreachable, or reachable again).
    pub fn log(&mut self, level: Level, msg: &str) -> Notice {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let record = format_record(self.facility, level, &self.tag, self.pid, now, msg);
        let use_socket = self
            .failed_at
            .map_or(true, |t| t.elapsed() >= RETRY_SOCKET_AFTER);
        let mut notice = None;
        if use_socket {
            match self.send(record.as_bytes()) {
                Ok(()) => {
                    if self.dropped > 0 {
                        notice = Some(format!(
                            "{} record(s) dropped: the syslog socket's queue was full",
                            std::mem::take(&mut self.dropped)
                        ));
                    }
                    if self.failed_at.take().is_some() {
                        notice = Some(format!(
                            "syslog socket {} is reachable again; logging there",
                            self.socket_path.display()
                        ));
                        self.fallback = None;
                    }
                    return notice;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.dropped += 1;
                    return None;
                }
                Err(e) => {
                    self.socket = None;
                    let first = self.failed_at.is_none();
                    self.failed_at = Some(Instant::now());
                    if first {
                        notice = Some(format!(
                            "syslog socket {} is unreachable ({e}); appending records to {}",
                            self.socket_path.display(),
                            self.fallback_path.display()
                        ));
                    }
                }
            }
        }
        self.append_fallback(&record, notice.as_deref());
        notice
    }

    fn send(&mut self, record: &[u8]) -> io::Result<()> {
        if self.socket.is_none() {
            let s = UnixDatagram::unbound()?;
            s.set_nonblocking(true)?;
            self.socket = Some(s);
        }
        let socket = self.socket.as_ref().expect("socket was just created");
        socket.send_to(record, &self.socket_path).map(|_| ())
    }

    fn append_fallback(&mut self, record: &str, notice: Option<&str>) {
        if self.fallback.is_none() {
            self.fallback = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.fallback_path)
                .ok();
        }
        if let Some(f) = self.fallback.as_mut() {
            // A failing fallback file has nowhere left to report to.
            if let Some(n) = notice {
                let _ = writeln!(f, "{}: {n}", self.tag);
            }
            let _ = writeln!(f, "{record}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

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
        let mut s = Syslog::new(&sock, Facility::DAEMON, "t", 7, &fallback);
        let first = s.log(Level::NOTICE, "one");
        assert!(first.unwrap().contains("is unreachable"));
        assert_eq!(s.log(Level::ERR, "two"), None);
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
        let mut s = Syslog::new(&sock, "local3".parse().unwrap(), "tag", 9, &dir.join("f"));
        assert_eq!(s.log(Level::WARNING, "hello"), None);
        let mut buf = [0u8; 2048];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            got.starts_with("<156>") && got.ends_with(" tag[9]: hello"),
            "{got}"
        );
        assert!(!dir.join("f").exists());
    }

    #[test]
    fn records_dropped_by_a_full_queue_are_reported_once_sending_works() {
        let dir = TempDir::new("syslog");
        let sock = dir.join("log");
        let server = UnixDatagram::bind(&sock).unwrap();
        let mut s = Syslog::new(&sock, Facility::DAEMON, "t", 1, &dir.join("f"));
        let mut sent = 0;
        while s.dropped == 0 {
            assert_eq!(s.log(Level::INFO, "fill"), None);
            sent += 1;
            assert!(sent < 100_000, "the queue never filled");
        }
        let mut buf = [0u8; 2048];
        // Everything but the last record was queued: empty the queue.
        for _ in 1..sent {
            server.recv(&mut buf).unwrap();
        }
        let notice = s.log(Level::INFO, "after").unwrap();
        assert_eq!(
            notice,
            "1 record(s) dropped: the syslog socket's queue was full"
        );
    }
}
