//! Log files that cannot grow without bound: appended to, and rotated by size
//! (`app.log` → `app.log.1` → … → `app.log.<files-1>`, the oldest dropped).
//! The run directory is often RAM, and a service controls how much it writes.
//!
//! Files are created `0600` and never followed through a symbolic link; they
//! live in the supervisor's `0700` directory, which only host root controls.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How large log files grow and how many are kept (cellmgr.conf
/// `CELL_LOG_MAX_SIZE`, `CELL_LOG_MAX_FILES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: u64,
    /// Files kept, the current one included; at least 1.
    pub files: u32,
}

/// The name of rotated file `n` (0 is the current file).
pub fn generation(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Opens (creating `0600`) a file for appending, refusing a symbolic link.
pub fn open_private_append(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // A file left by an older version may be wider open.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// An append-only file rotated at [`Rotation::max_size`].
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    /// Opens `path` for appending; nothing is created until the first write.
    pub fn new(path: &Path, rotation: Rotation) -> RotatingFile {
        RotatingFile {
            path: path.to_path_buf(),
            rotation: Rotation {
                files: rotation.files.max(1),
                ..rotation
            },
            file: None,
            size: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes` (one or more whole lines), rotating first when they
    /// would take the file past its size.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            self.reopen()?;
        }
        if self.size > 0 && self.size + bytes.len() as u64 > self.rotation.max_size {
            self.rotate()?;
        }
        let file = self.file.as_mut().expect("opened above");
        let result = file.write_all(bytes);
        self.size += bytes.len() as u64;
        if result.is_err() {
            // Reopen on the next write (the file may have been removed).
            self.file = None;
        }
        result
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        let file = open_private_append(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    /// Shifts every generation up by one, dropping the oldest, and starts an
    /// empty current file.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let last = self.rotation.files - 1;
        if last == 0 {
            std::fs::remove_file(&self.path).or_else(ignore_missing)?;
        } else {
            for n in (0..last).rev() {
                std::fs::rename(generation(&self.path, n), generation(&self.path, n + 1))
                    .or_else(ignore_missing)?;
            }
        }
        // Generations beyond the limit (left when the limit was lowered).
        for n in last + 1..=MAX_FILES {
            let _ = std::fs::remove_file(generation(&self.path, n));
        }
        self.reopen()
    }
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// The most files `CELL_LOG_MAX_FILES` allows.
pub const MAX_FILES: u32 = crate::config::LOG_MAX_FILES_LIMIT;

/// Removes a log and all its rotated generations.
pub fn remove_all(path: &Path) {
    for n in 0..=MAX_FILES {
        let _ = std::fs::remove_file(generation(path, n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::os::unix::fs::MetadataExt;

    fn sizes(path: &Path, upto: u32) -> Vec<Option<u64>> {
        (0..=upto)
            .map(|n| std::fs::metadata(generation(path, n)).ok().map(|m| m.len()))
            .collect()
    }

    #[test]
    fn rotates_at_the_size_and_keeps_the_number_of_files() {
        let dir = TempDir::new("rotate");
        let path = dir.join("svc.log");
        let mut f = RotatingFile::new(
            &path,
            Rotation {
                max_size: 100,
                files: 3,
            },
        );
        let line = [b'x'; 39]; // 40 bytes with its newline: two fit into 100.
        for i in 0..20u8 {
            let mut l = line.to_vec();
            l[0] = b'a' + i;
            l.push(b'\n');
            f.append(&l).unwrap();
        }
        // 20 lines, 2 per file: the last 6 survive in 3 files, none beyond.
        assert_eq!(sizes(&path, 3), [Some(80), Some(80), Some(80), None]);
        let newest = std::fs::read_to_string(&path).unwrap();
        assert!(
            newest.starts_with('s') && newest.contains("\nt"),
            "{newest}"
        );
        let oldest = std::fs::read_to_string(generation(&path, 2)).unwrap();
        assert!(oldest.starts_with('o'), "{oldest}");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
    }

    #[test]
    fn one_file_is_restarted_and_a_lowered_limit_drops_old_generations() {
        let dir = TempDir::new("rotate-one");
        let path = dir.join("svc.log");
        std::fs::write(generation(&path, 4), "old\n").unwrap();
        let mut f = RotatingFile::new(
            &path,
            Rotation {
                max_size: 10,
                files: 1,
            },
        );
        f.append(b"12345678\n").unwrap();
        f.append(b"abc\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abc\n");
        assert_eq!(sizes(&path, 4), [Some(4), None, None, None, None]);
        // A single line larger than the limit is still written whole.
        f.append(b"0123456789abcdef\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "0123456789abcdef\n"
        );
    }

    #[test]
    fn a_symbolic_link_is_not_followed() {
        let dir = TempDir::new("rotate-link");
        let target = dir.join("elsewhere");
        std::fs::write(&target, "keep\n").unwrap();
        let path = dir.join("svc.log");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let mut f = RotatingFile::new(
            &path,
            Rotation {
                max_size: 1000,
                files: 2,
            },
        );
        assert!(f.append(b"x\n").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
    }
}
