//! Kernel pseudo-files (`/proc`, cgroupfs): their size reads as 0, so
//! `std::fs::read_to_string` sizes its buffer by a 32-byte probe and then
//! doubles it, one read each time (eight reads for a 1.5 KB
//! `/proc/PID/status`, besides a `statx` and an `lseek`). These files are
//! small: one 4 KB buffer takes most whole in one read, and a second read
//! sees the end. A no-change apply reads several per running cell.

use std::io::Read;
use std::path::Path;

/// The whole of a small pseudo-file, as text (`InvalidData` if not UTF-8).
pub fn read_to_string(path: impl AsRef<Path>) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match read_some(&mut file, &mut buf[len..])? {
            0 => break,
            n => len += n,
        }
    }
    buf.truncate(len);
    text(buf)
}

/// One read into `buf`, again when a signal interrupted it.
fn read_some(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            done => return done,
        }
    }
}

/// The bytes read, as text (`InvalidData` if not UTF-8).
fn text(buf: Vec<u8>) -> std::io::Result<String> {
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A `/proc/PID/stat` line, read whole. Its fields are numbered as in
/// proc(5); the command name (field 2) is in parentheses and may itself
/// hold spaces and parentheses, so the fields from 3 on are counted from
/// the last closing parenthesis.
#[cfg(target_os = "linux")]
pub struct ProcStat(String);

#[cfg(target_os = "linux")]
impl ProcStat {
    /// The stat of process `pid` (a number, or `self`). The kernel makes the
    /// whole line at the first read: one read of a page is all of it, no
    /// second read to see the end (the table lock reads one per cell).
    pub fn read(pid: impl std::fmt::Display) -> std::io::Result<ProcStat> {
        let mut file = std::fs::File::open(format!("/proc/{pid}/stat"))?;
        let mut buf = vec![0u8; 4096];
        let len = read_some(&mut file, &mut buf)?;
        if len == buf.len() || !buf[..len].ends_with(b"\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("/proc/{pid}/stat: not one whole line"),
            ));
        }
        buf.truncate(len);
        text(buf).map(ProcStat)
    }

    /// Field `n` (3 or more: the state, the parent's pid, ...).
    pub fn field(&self, n: usize) -> Option<&str> {
        let rest = self.0.rsplit_once(')')?.1;
        rest.split_whitespace().nth(n.checked_sub(3)?)
    }

    /// Field `n` as a number.
    pub fn number(&self, n: usize) -> Option<u64> {
        self.field(n)?.parse().ok()
    }

    /// The state letter (field 3): `R`, `S`, `D`, `Z` (zombie), `X` (dead)...
    pub fn state(&self) -> Option<char> {
        self.field(3)?.chars().next()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_pseudo_file_whole_and_a_large_file_too() {
        let status = super::read_to_string("/proc/self/status").unwrap();
        assert!(status.starts_with("Name:"), "{status}");
        assert!(status.ends_with('\n'));
        let dir = std::env::temp_dir().join(format!("pseudo-{}", std::process::id()));
        let text = "x".repeat(10_000);
        std::fs::write(&dir, &text).unwrap();
        let read = super::read_to_string(&dir);
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(read.unwrap(), text);
    }

    #[test]
    fn stat_fields_are_counted_past_a_command_name_with_spaces_and_parentheses() {
        let stat = super::ProcStat("7 (a) b (c)) S 1 7 7 0 -1 4194560".into());
        assert_eq!(stat.state(), Some('S'));
        assert_eq!(stat.number(4), Some(1));
        assert_eq!(stat.field(9), Some("4194560"));
        assert_eq!(stat.field(10), None);
        assert_eq!(stat.field(2), None);
        let own = super::ProcStat::read("thread-self").unwrap();
        assert_eq!(own.state(), Some('R'));
        let parent = std::os::unix::process::parent_id();
        assert_eq!(own.number(4), Some(u64::from(parent)));
    }
}
