//! Strict modes, as sshd's `StrictModes`: a file that tells host root what to
//! do (cellmgr.conf, a manifest, an `.apply` file and its assets, a reviewed
//! plan, a backup archive, the backup key) is used only when nobody but root
//! could have written it.
//!
//! The rules, checked on the file's real path (links resolved first):
//!
//! * the file is owned by root (or by the user running the command, for the
//!   commands that need no root, such as `apply --dry-run`) and is not
//!   writable by group or others;
//! * so is every directory above it up to `/`, except that a root-owned
//!   directory with the sticky bit (`/tmp`) may be writable by all: there only
//!   an entry's owner can rename or remove it.
//!
//! The first offender is named in one sentence with its owner and mode.
//! Directories already found good are remembered for the life of the process.

use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Reads `path` after checking it and its directories. `None` when it does
/// not exist. `what` names the file's role for the error ("manifest").
pub fn read(path: &Path, what: &str) -> Result<Option<Vec<u8>>> {
    let Some(mut f) = open(path, what)? else {
        return Ok(None);
    };
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(buf))
}

/// As [`read`], as text.
pub fn read_to_string(path: &Path, what: &str) -> Result<Option<String>> {
    match read(path, what)? {
        None => Ok(None),
        Some(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display())),
    }
}

/// Opens `path` for reading after checking it and its directories; `None`
/// when it does not exist.
pub fn open(path: &Path, what: &str) -> Result<Option<File>> {
    // The usual case, cheaply: the file itself is no link, in a directory
    // already resolved and checked (a manifest directory holds hundreds).
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
        if let Some(dir) = checked_dir(parent, what)? {
            let real = dir.join(name);
            match open_nofollow(&real) {
                Ok(f) => return check_file(f, &real, what).map(Some),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                // A link (ELOOP): resolved in full below.
                Err(_) => {}
            }
        }
    }
    let real = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("resolving {}", path.display())),
    };
    if let Some(dir) = real.parent() {
        check_dirs(dir, &real, what)?;
    }
    let f = open_nofollow(&real).with_context(|| format!("opening {}", real.display()))?;
    check_file(f, &real, what).map(Some)
}

fn open_nofollow(real: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(real)
}

fn check_file(f: File, real: &Path, what: &str) -> Result<File> {
    let md = f
        .metadata()
        .with_context(|| format!("inspecting {}", real.display()))?;
    if !md.is_file() {
        bail!("{}: {what} is not a regular file", real.display());
    }
    check_entry(real, &md, None, what)?;
    Ok(f)
}

/// The real path of the directory `dir`, resolved and checked once per
/// process (with every directory above it); `None` when it does not exist.
fn checked_dir(dir: &Path, what: &str) -> Result<Option<PathBuf>> {
    static REAL: std::sync::OnceLock<Mutex<std::collections::HashMap<PathBuf, PathBuf>>> =
        std::sync::OnceLock::new();
    let map = REAL.get_or_init(Default::default);
    if let Some(real) = map.lock().expect("not poisoned").get(dir) {
        return Ok(Some(real.clone()));
    }
    let real = match std::fs::canonicalize(dir) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("resolving {}", dir.display())),
    };
    // Refused: the caller's full check names the file in its error.
    if check_dirs(&real, &real, what).is_err() {
        return Ok(None);
    }
    map.lock()
        .expect("not poisoned")
        .insert(dir.to_path_buf(), real.clone());
    Ok(Some(real))
}

/// Checks a directory cellmgr reads trusted files from (the backup
/// directory) and every directory above it.
pub fn check_dir(dir: &Path, what: &str) -> Result<()> {
    let real = match std::fs::canonicalize(dir) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("resolving {}", dir.display())),
    };
    check_dirs(&real, &real, what)
}

/// Also refuses a file readable by group or others: for secrets (the backup key).
pub fn read_secret(path: &Path, what: &str) -> Result<Vec<u8>> {
    let f =
        open(path, what)?.with_context(|| format!("{what} {} does not exist", path.display()))?;
    let md = f.metadata()?;
    if md.mode() & 0o077 != 0 {
        bail!(
            "refusing {what} {}: mode {:04o} lets others read it; chmod 0600 {}",
            path.display(),
            md.mode() & 0o7777,
            path.display()
        );
    }
    let mut buf = Vec::new();
    let mut f = f;
    f.read_to_end(&mut buf)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(buf)
}

fn trusted_dirs() -> &'static Mutex<HashSet<PathBuf>> {
    static DIRS: std::sync::OnceLock<Mutex<HashSet<PathBuf>>> = std::sync::OnceLock::new();
    DIRS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Checks `dir` and its ancestors (real paths) for the file `file`.
fn check_dirs(dir: &Path, file: &Path, what: &str) -> Result<()> {
    for d in dir.ancestors() {
        if trusted_dirs().lock().expect("not poisoned").contains(d) {
            return Ok(());
        }
        let md =
            std::fs::symlink_metadata(d).with_context(|| format!("inspecting {}", d.display()))?;
        check_entry(d, &md, Some(file), what)?;
    }
    let mut set = trusted_dirs().lock().expect("not poisoned");
    for d in dir.ancestors() {
        set.insert(d.to_path_buf());
    }
    Ok(())
}

/// Why a file is not used: the file, its role, and the entry that breaks the
/// rule (the file itself or a directory above it) with its owner and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    pub file: PathBuf,
    pub what: String,
    /// `None`: the file itself; else the directory above it that is at fault.
    pub dir: Option<PathBuf>,
    pub owner: String,
    pub mode: u32,
    pub fix: String,
}

impl Untrusted {
    /// The sentence without the leading "refusing <what> <file>" (for errors
    /// that name the file themselves).
    pub fn reason(&self) -> String {
        match &self.dir {
            None => format!(
                "it is owned by {} with mode {:04o}; it must be owned by root and writable only by root ({})",
                self.owner, self.mode, self.fix
            ),
            Some(d) => format!(
                "the directory {} is owned by {} with mode {:04o}; every directory above it must be owned by root and writable only by root, or be root's and sticky like /tmp ({})",
                d.display(),
                self.owner,
                self.mode,
                self.fix
            ),
        }
    }
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refusing {} {}: {}",
            self.what,
            self.file.display(),
            self.reason()
        )
    }
}

impl std::error::Error for Untrusted {}

/// The rule for one file (`below` `None`) or one directory above `below`.
fn check_entry(
    path: &Path,
    md: &std::fs::Metadata,
    below: Option<&Path>,
    what: &str,
) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let owner_ok = md.uid() == 0 || md.uid() == me;
    let mode = md.mode() & 0o7777;
    let sticky_root_dir = md.is_dir() && md.uid() == 0 && mode & 0o1000 != 0;
    let writable_by_others = mode & 0o022 != 0 && !sticky_root_dir;
    if owner_ok && !writable_by_others {
        return Ok(());
    }
    let fix = if owner_ok {
        format!("chmod go-w {}", path.display())
    } else {
        format!("chown root {}", path.display())
    };
    Err(Untrusted {
        file: below.unwrap_or(path).to_path_buf(),
        what: what.to_string(),
        dir: below.map(|_| path.to_path_buf()),
        owner: owner_name(md.uid()),
        mode,
        fix,
    }
    .into())
}

/// `uid 65534 (nobody)`, or just the number when the host has no name for it.
fn owner_name(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes only into `pw` and `buf`, whose sizes are given.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() {
        // SAFETY: on success pw_name points into `buf`, NUL-terminated.
        let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
        format!("uid {uid} ({})", name.to_string_lossy())
    } else {
        format!("uid {uid}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn good_files_read_and_missing_ones_are_none() {
        let t = TempDir::new("trust");
        chmod(t.path(), 0o755);
        let f = t.join("web.cell");
        fs::write(&f, "CELL_NAME=web\n").unwrap();
        chmod(&f, 0o644);
        assert_eq!(read(&f, "manifest").unwrap().unwrap(), b"CELL_NAME=web\n");
        assert_eq!(read(&t.join("none"), "manifest").unwrap(), None);
        // Through a link: the real file is what counts.
        std::os::unix::fs::symlink(&f, t.join("link.cell")).unwrap();
        assert!(read(&t.join("link.cell"), "manifest").unwrap().is_some());
    }

    #[test]
    fn writable_files_and_directories_are_refused_with_owner_and_mode() {
        let t = TempDir::new("trust-bad");
        chmod(t.path(), 0o755);
        let f = t.join("web.apply");
        fs::write(&f, "").unwrap();
        chmod(&f, 0o664);
        let e = read(&f, ".apply file").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "refusing .apply file {}: it is owned by uid",
                f.display()
            )),
            "{e}"
        );
        assert!(e.contains("with mode 0664"), "{e}");
        chmod(&f, 0o644);
        let sub = t.join("sub");
        fs::create_dir(&sub).unwrap();
        chmod(&sub, 0o775);
        let g = sub.join("a.cell");
        fs::write(&g, "").unwrap();
        chmod(&g, 0o644);
        let e = read(&g, "manifest").unwrap_err().to_string();
        assert!(
            e.contains(&format!("the directory {} is owned by", sub.display())),
            "{e}"
        );
        assert!(e.contains("mode 0775"), "{e}");
        // A world-writable directory that is not sticky is refused too.
        chmod(&sub, 0o777);
        assert!(read(&g, "manifest").is_err());
        chmod(&sub, 0o755);
        assert!(read(&g, "manifest").is_ok());
    }

    #[test]
    fn secrets_must_not_be_readable_by_others() {
        let t = TempDir::new("trust-secret");
        chmod(t.path(), 0o755);
        let k = t.join("backup.key");
        fs::write(&k, "k").unwrap();
        chmod(&k, 0o644);
        let e = read_secret(&k, "backup key").unwrap_err().to_string();
        assert!(e.contains("mode 0644 lets others read it"), "{e}");
        chmod(&k, 0o600);
        assert_eq!(read_secret(&k, "backup key").unwrap(), b"k");
    }

    #[test]
    fn a_file_of_another_user_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let t = TempDir::new("trust-owner");
        chmod(t.path(), 0o755);
        let f = t.join("cellmgr.conf");
        fs::write(&f, "").unwrap();
        std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
        let e = read(&f, "configuration").unwrap_err().to_string();
        assert!(e.contains("owned by uid 65534"), "{e}");
        assert!(e.contains(&format!("chown root {}", f.display())), "{e}");
    }
}
