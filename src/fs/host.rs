//! Small helpers for files only host root controls: state, configuration, run directory.

use anyhow::{Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A file's text, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// A directory's entries, in the order the system lists them; none when the
/// directory does not exist.
pub fn dir_entries(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    entries
        .map(|e| e.with_context(|| format!("reading {}", dir.display())))
        .collect()
}

/// Writes a file atomically: a temporary file in the same directory, fsync, rename,
/// then fsync of the directory, so a crash leaves either the old or the new content.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic_mode(path, contents, 0o666)
}

/// [`write_atomic`] for a file only its owner may read (`0600`).
pub fn write_atomic_private(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic_mode(path, contents, 0o600)
}

/// [`write_atomic`] with the new file's mode (before the umask).
fn write_atomic_mode(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(contents)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing directory {}", dir.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = TempDir::new("fsutil");
        let p = dir.join("state");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let entries: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn a_private_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("fsutil-private");
        let p = dir.join("secret");
        write_atomic_private(&p, b"x").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_missing_directory_lists_as_empty_and_other_errors_name_it() {
        let dir = TempDir::new("fsutil-dir");
        assert!(dir_entries(&dir.join("missing")).unwrap().is_empty());
        fs::write(dir.join("f"), "").unwrap();
        let names: Vec<_> = dir_entries(dir.path())
            .unwrap()
            .iter()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["f"]);
        let e = dir_entries(&dir.join("f")).unwrap_err();
        assert_eq!(
            format!("{e}"),
            format!("reading {}", dir.join("f").display())
        );
    }

    #[test]
    fn a_missing_file_reads_as_none_and_other_errors_name_the_path() {
        let dir = TempDir::new("fsutil-opt");
        let p = dir.join("state");
        assert_eq!(read_optional(&p).unwrap(), None);
        fs::write(&p, "text").unwrap();
        assert_eq!(read_optional(&p).unwrap().as_deref(), Some("text"));
        // A directory cannot be read as text.
        let e = read_optional(dir.path()).unwrap_err();
        assert!(
            format!("{e:#}").starts_with(&format!("reading {}", dir.path().display())),
            "{e:#}"
        );
    }
}
