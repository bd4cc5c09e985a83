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
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
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
}
