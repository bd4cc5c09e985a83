//! The host's mount table: which paths are mount points right now, and what
//! is mounted there.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Every current mount point, in mount order (Linux: `/proc/self/mountinfo`;
/// NetBSD: `mount(8)` output).
pub fn mount_points() -> Result<Vec<PathBuf>> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .context("reading /proc/self/mountinfo")?;
        Ok(parse_mountinfo(&text))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let out = std::process::Command::new("mount")
            .output()
            .context("running mount(8)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "<source> on <target> type <fs> (<opts>)"
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(" on ").map(|(_, r)| r))
            .filter_map(|r| r.rsplit_once(" type ").map(|(t, _)| PathBuf::from(t)))
            .collect())
    }
}

/// One line of `/proc/self/mountinfo`: the fields the tools read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the mounted file system.
    pub dev: String,
    /// Path of the mounted directory inside its file system.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

/// The current mount table of this process's mount namespace.
#[cfg(target_os = "linux")]
pub fn entries() -> Result<Vec<MountEntry>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(parse_entries(&text))
}

/// Every well-formed mountinfo line, unescaped, in mount order.
pub fn parse_entries(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let p: Vec<&str> = post.split(' ').collect();
            Some(MountEntry {
                dev: f.get(2)?.to_string(),
                root: unescape(f.get(3)?).into(),
                mount_point: unescape(f.get(4)?).into(),
                fs_type: p.first()?.to_string(),
                source: unescape(p.get(1).unwrap_or(&"")),
                super_options: unescape(p.get(2).unwrap_or(&"")),
            })
        })
        .collect()
}

/// The mount point column (5th field) of each mountinfo line, unescaped.
pub fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    parse_entries(text)
        .into_iter()
        .map(|e| e.mount_point)
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points at or below `dir`, deepest (latest) first: the order to
/// unmount them in.
pub fn under(points: &[PathBuf], dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in points.iter().rev() {
        if p.starts_with(dir) && !out.contains(p) {
            out.push(p.clone());
        }
    }
    // Stable: among equal depth the later mount stays first.
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_unescapes_mount_points() {
        let text = "22 1 8:1 / / rw - ext4 /dev/vda rw\n\
                    30 22 0:5 / /srv/a\\040b rw - tmpfs t rw\n\
                    31 30 0:6 / /srv/a\\040b/c rw - tmpfs t rw\n";
        let pts = parse_mountinfo(text);
        assert_eq!(
            pts,
            vec![PathBuf::from("/"), "/srv/a b".into(), "/srv/a b/c".into()]
        );
        assert_eq!(
            under(&pts, Path::new("/srv/a b")),
            vec![PathBuf::from("/srv/a b/c"), "/srv/a b".into()]
        );
        assert!(under(&pts, Path::new("/srv/a")).is_empty());
    }
}
