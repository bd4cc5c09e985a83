//! Small helpers for files only host root controls: state, configuration, run directory.

use anyhow::{Context, Result};
use std::fs::{self, File};
use std::io::Write;
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

/// Mode of the files cellmgr writes for itself: state, manifests, status,
/// logs. Only root reads them (manifests may hold tokens in commands).
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of the directories holding them.
pub const PRIVATE_DIR: u32 = 0o700;

/// Writes a private file (mode 0600) atomically: a temporary file with an
/// unpredictable name created `O_EXCL|O_NOFOLLOW` in the same directory,
/// fsync, rename, then fsync of the directory, so a crash leaves either the
/// old or the new content and a planted file or link is never written through.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write_with_mode(path, contents, PRIVATE_FILE)
}

/// As [`write_atomic`] (a private file replaced atomically, never written
/// through a planted name), without waiting for the disk: for files that do
/// not outlive a reboot (the run directory, the record of a cell's mounts),
/// which readers must only ever see whole.
pub fn write_replace(path: &Path, contents: &[u8]) -> Result<()> {
    write_file(path, contents, PRIVATE_FILE, false)
}

/// Whether `path` was last written before the system booted: a run-directory
/// file ([`write_replace`]) that a crash left torn is then stale, not damage.
pub fn written_before_boot(path: &Path) -> bool {
    let Ok(modified) = fs::metadata(path).and_then(|m| m.modified()) else {
        return false;
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Time since boot, suspended time included where the kernel has a clock
    // for it (Linux); NetBSD's monotonic clock starts at boot.
    #[cfg(target_os = "linux")]
    let since_boot = libc::CLOCK_BOOTTIME;
    #[cfg(not(target_os = "linux"))]
    let since_boot = libc::CLOCK_MONOTONIC;
    // SAFETY: a valid clock id and out pointer.
    if unsafe { libc::clock_gettime(since_boot, &mut ts) } != 0 {
        return false;
    }
    let up = std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    std::time::SystemTime::now()
        .checked_sub(up)
        .is_some_and(|booted| modified < booted)
}

/// As [`write_atomic`], but an existing file keeps its mode (host files such
/// as `rc.conf` that others read); a new one gets 0644.
pub fn write_atomic_keeping_mode(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match fs::metadata(path) {
        Ok(m) => m.permissions().mode() & 0o7777,
        Err(_) => 0o644,
    };
    write_with_mode(path, contents, mode)
}

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    write_file(path, contents, mode, true)
}

fn write_file(path: &Path, contents: &[u8], mode: u32, durable: bool) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let tmp = dir.join(super::temp_name(name));
    let result = (|| -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o777)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        // The umask narrowed the mode given to open; set it exactly.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .and_then(|()| f.write_all(contents))
            .and_then(|()| if durable { f.sync_all() } else { Ok(()) })
            .with_context(|| format!("writing {}", tmp.display()))?;
        if !durable {
            return replace_not_durable(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()));
        }
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

/// Puts the new file `tmp` in the place of `path`. Renaming over an existing
/// file makes ext4 start writing the new one out at once (`auto_da_alloc`,
/// its guard for files replaced without a sync): ~0.1 ms a file that does not
/// outlive a reboot has no use for. So where the kernel can, the two names are
/// exchanged (readers see the old or the new file whole, as with a rename) and
/// the old file, now named `tmp`, is removed.
fn replace_not_durable(tmp: &Path, path: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        match renameat_with(CWD, tmp, CWD, path, RenameFlags::EXCHANGE) {
            Ok(()) => return fs::remove_file(tmp),
            // No file to exchange with yet, or a file system or kernel
            // without exchange: a plain rename.
            Err(Errno::NOENT | Errno::INVAL | Errno::NOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    fs::rename(tmp, path)
}

/// Creates `dir` and its missing parents; the directories created get `mode`
/// (existing ones are left as they are).
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all_mode(parent, mode)?;
    }
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting mode {mode:04o} on {}", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", dir.display())),
    }
}

/// Creates `dir` (and missing parents) as a private directory: mode 0700, also
/// when it already existed with a wider mode. For the directories that hold
/// what host users must not reach (the cells', volumes', manifests, backups).
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all_mode(parent, 0o755)?;
    }
    create_dir_all_mode(dir, PRIVATE_DIR)?;
    let md = fs::symlink_metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    if md.permissions().mode() & 0o7777 != PRIVATE_DIR {
        fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR))
            .with_context(|| format!("setting mode 0700 on {}", dir.display()))?;
    }
    Ok(())
}

/// An anonymous read-write file for a child's output: it has no name anyone
/// could guess or plant (Linux: `O_TMPFILE` in the temporary directory;
/// elsewhere a random name created `O_EXCL|O_NOFOLLOW`, 0600, and unlinked at once).
pub fn anonymous_file() -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    #[cfg(target_os = "linux")]
    {
        match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_EXCL | libc::O_CLOEXEC)
            .open(&dir)
        {
            Ok(f) => return Ok(f),
            // A file system without O_TMPFILE support: the portable way.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("creating a file in {}", dir.display()))
            }
        }
    }
    let path = dir.join(super::temp_name("cellmgr".as_ref()));
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn replaces_content_privately_and_leaves_no_temp_file() {
        let dir = TempDir::new("fsutil");
        let p = dir.join("state");
        write_atomic(&p, b"one").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(mode(&p), 0o600);
        let entries: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1);
        let conf = dir.join("rc.conf");
        fs::write(&conf, "a=1\n").unwrap();
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic_keeping_mode(&conf, b"a=2\n").unwrap();
        assert_eq!(mode(&conf), 0o640);
        write_atomic_keeping_mode(&dir.join("new.conf"), b"").unwrap();
        assert_eq!(mode(&dir.join("new.conf")), 0o644);
    }

    #[test]
    fn a_run_directory_file_is_replaced_whole_and_a_link_in_its_place_is_not_followed() {
        let dir = TempDir::new("fsutil-replace");
        let p = dir.join("table");
        write_replace(&p, b"first").unwrap();
        write_replace(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        assert_eq!(mode(&p), 0o600);
        let entries: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "the old file or a temporary one is left");
        // A link planted at the name is replaced, its target left alone.
        let victim = dir.join("victim");
        fs::write(&victim, "secret").unwrap();
        fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        write_replace(&p, b"third").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"secret");
        assert!(fs::symlink_metadata(&p).unwrap().is_file());
        assert_eq!(fs::read(&p).unwrap(), b"third");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn planted_links_at_the_old_temporary_names_are_never_followed() {
        // The name the old write_atomic used, and a spread of guesses: none
        // is used, and the file they point at stays as it was.
        let dir = TempDir::new("fsutil-planted");
        let victim = dir.join("victim");
        fs::write(&victim, "secret").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        let etc = dir.join("etc");
        fs::create_dir(&etc).unwrap();
        let me = std::process::id();
        for pid in me.saturating_sub(50)..me + 50 {
            std::os::unix::fs::symlink(&victim, etc.join(format!(".ld.so.cache.tmp.{pid}")))
                .unwrap();
        }
        write_atomic(&etc.join("ld.so.cache"), b"cache").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"secret");
        assert_eq!(mode(&victim), 0o600);
        assert_eq!(fs::read(etc.join("ld.so.cache")).unwrap(), b"cache");
    }

    #[test]
    fn private_dirs_are_0700_and_anonymous_files_have_no_name() {
        let dir = TempDir::new("fsutil-private");
        let d = dir.join("a/b");
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        create_dir_all_mode(&dir.join("c/d"), 0o711).unwrap();
        assert_eq!(mode(&dir.join("c")), 0o711);
        use std::io::{Read, Seek};
        let mut f = anonymous_file().unwrap();
        f.write_all(b"out").unwrap();
        f.rewind().unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "out");
        use std::os::fd::AsRawFd;
        let link = fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap();
        assert!(
            link.to_string_lossy().contains("(deleted)")
                || link.to_string_lossy().starts_with("/tmp/#"),
            "{}",
            link.display()
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
