//! Paths inside a cell's root, resolved from the host without ever leaving it.
//!
//! A path is walked one component at a time. Symlinks are followed as the cell
//! would see them (an absolute target is relative to the cell root), and any step
//! that would climb above the root (`..` in the path or in a link target) is
//! refused. A cell process could still swap a directory for a symlink between
//! the check and the write; plans are meant to run while the service is stopped.

use anyhow::{bail, Context as _, Result};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Enough for any sane tree; guards against link loops.
const MAX_LINKS: usize = 40;

/// Resolves `path` (absolute, as seen inside the cell) to a host path below
/// `root`. Components that do not exist yet are appended as they are. With
/// `follow_last` false a symlink in the last component is not followed (it is
/// the object itself, as for `SYMLINK`).
pub fn resolve(root: &Path, path: &str, follow_last: bool) -> Result<PathBuf> {
    let mut queue: VecDeque<OsString> = components(Path::new(path));
    let mut cur = root.to_path_buf();
    let mut depth = 0usize;
    let mut links = 0usize;
    while let Some(c) = queue.pop_front() {
        if c == ".." {
            if depth == 0 {
                bail!("{path}: climbs above the cell root");
            }
            cur.pop();
            depth -= 1;
            continue;
        }
        let next = cur.join(&c);
        let is_last = queue.is_empty();
        match fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() && (follow_last || !is_last) => {
                links += 1;
                if links > MAX_LINKS {
                    bail!("{path}: too many levels of symbolic links");
                }
                let target = fs::read_link(&next)
                    .with_context(|| format!("reading symlink {}", next.display()))?;
                if target.is_absolute() {
                    cur = root.to_path_buf();
                    depth = 0;
                }
                let mut rest = components(&target);
                rest.extend(queue.drain(..));
                queue = rest;
            }
            Ok(_) => {
                cur = next;
                depth += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                cur = next;
                depth += 1;
            }
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", next.display())),
        }
    }
    Ok(cur)
}

/// The normal and `..` components of a path (root and `.` dropped).
fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Creates the directory and missing parents (each resolved inside the root).
/// Returns whether anything was created.
pub fn ensure_dir(root: &Path, path: &str) -> Result<bool> {
    let host = resolve(root, path, true)?;
    match fs::metadata(&host) {
        Ok(m) if m.is_dir() => return Ok(false),
        Ok(_) => bail!("{path} exists and is not a directory"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("inspecting {path}")),
    }
    if let Some(parent) = Path::new(path).parent().filter(|p| *p != Path::new("/")) {
        ensure_dir(root, &parent.to_string_lossy())?;
    }
    // The parent exists now; resolve again so a link created meanwhile is honoured.
    let host = resolve(root, path, true)?;
    fs::create_dir(&host).with_context(|| format!("creating directory {path}"))?;
    Ok(true)
}

/// Makes the parent directory of `path` exist.
pub fn ensure_parent(root: &Path, path: &str) -> Result<()> {
    if let Some(parent) = Path::new(path).parent().filter(|p| *p != Path::new("/")) {
        ensure_dir(root, &parent.to_string_lossy())?;
    }
    Ok(())
}

/// The file's content, or `None` when it does not exist. Anything but a regular
/// file is an error.
pub fn read_file(root: &Path, path: &str) -> Result<Option<Vec<u8>>> {
    let host = resolve(root, path, true)?;
    match fs::metadata(&host) {
        Ok(m) if m.is_file() => Ok(Some(
            fs::read(&host).with_context(|| format!("reading {path}"))?,
        )),
        Ok(_) => bail!("{path} exists and is not a regular file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("inspecting {path}")),
    }
}

/// Replaces the file's content atomically, keeping the old mode (new files get
/// 0644 unless `mode` says otherwise). Returns whether the content changed.
pub fn ensure_content(root: &Path, path: &str, content: &[u8]) -> Result<bool> {
    let old = read_file(root, path)?;
    if old.as_deref() == Some(content) {
        return Ok(false);
    }
    ensure_parent(root, path)?;
    let host = resolve(root, path, true)?;
    let mode = fs::metadata(&host)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    crate::fs::host::write_atomic(&host, content).with_context(|| format!("writing {path}"))?;
    fs::set_permissions(&host, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode of {path}"))?;
    Ok(true)
}

/// Sets mode and ownership where they differ; returns what changed, e.g.
/// `["mode 0640", "owner 1000"]`. Owner and group names resolve in the cell's
/// own `/etc/passwd` and `/etc/group`.
pub fn ensure_attrs(root: &Path, path: &str, attrs: &super::Attrs) -> Result<Vec<String>> {
    let host = resolve(root, path, true)?;
    let meta = fs::metadata(&host).with_context(|| format!("inspecting {path}"))?;
    let mut changed = Vec::new();
    if let Some(mode) = attrs.mode {
        if meta.permissions().mode() & 0o7777 != mode {
            fs::set_permissions(&host, fs::Permissions::from_mode(mode))
                .with_context(|| format!("chmod {mode:04o} {path}"))?;
            changed.push(format!("mode {mode:04o}"));
        }
    }
    let uid = match &attrs.owner {
        Some(o) => {
            Some(lookup_id(root, "/etc/passwd", o).with_context(|| format!("owner of {path}"))?)
        }
        None => None,
    };
    let gid = match &attrs.group {
        Some(g) => {
            Some(lookup_id(root, "/etc/group", g).with_context(|| format!("group of {path}"))?)
        }
        None => None,
    };
    let uid = uid.filter(|u| *u != meta.uid());
    let gid = gid.filter(|g| *g != meta.gid());
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(&host, uid, gid).with_context(|| format!("chown {path}"))?;
        if let Some(u) = uid {
            changed.push(format!("owner {u}"));
        }
        if let Some(g) = gid {
            changed.push(format!("group {g}"));
        }
    }
    Ok(changed)
}

/// A numeric id, or a name looked up in the cell's passwd/group file
/// (`name:x:id:…`).
fn lookup_id(root: &Path, db: &str, name: &str) -> Result<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    let text = read_file(root, db)?
        .with_context(|| format!("'{name}' cannot be resolved: the cell has no {db}"))?;
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name)).then(|| f.nth(1).and_then(|id| id.parse().ok()))?
        })
        .with_context(|| format!("'{name}' is not in the cell's {db}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolves_links_as_the_cell_sees_them() {
        let t = TempDir::new("rootfs");
        let root = t.path();
        fs::create_dir_all(root.join("real/dir")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("real/dir", root.join("rel")).unwrap();
        assert_eq!(
            resolve(root, "/abs/dir/f", true).unwrap(),
            root.join("real/dir/f")
        );
        assert_eq!(
            resolve(root, "/rel/../x", true).unwrap(),
            root.join("real/x")
        );
        assert_eq!(resolve(root, "/abs", false).unwrap(), root.join("abs"));
        assert_eq!(
            resolve(root, "/new/a/b", true).unwrap(),
            root.join("new/a/b")
        );
    }

    #[test]
    fn refuses_to_leave_the_root() {
        let t = TempDir::new("rootfs-escape");
        let root = t.path();
        symlink("../../../../etc", root.join("up")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        assert!(resolve(root, "/../etc/passwd", true)
            .unwrap_err()
            .to_string()
            .contains("climbs above the cell root"));
        assert!(resolve(root, "/up/passwd", true)
            .unwrap_err()
            .to_string()
            .contains("climbs above the cell root"));
        assert!(resolve(root, "/loop", true)
            .unwrap_err()
            .to_string()
            .contains("too many levels"));
        // An absolute link to /etc stays in the cell's /etc.
        symlink("/etc", root.join("cfg")).unwrap();
        assert_eq!(
            resolve(root, "/cfg/passwd", true).unwrap(),
            root.join("etc/passwd")
        );
    }

    #[test]
    fn ids_resolve_in_the_cells_own_databases() {
        let t = TempDir::new("rootfs-ids");
        let root = t.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww:x:800:800::/:/bin/false\n",
        )
        .unwrap();
        assert_eq!(lookup_id(root, "/etc/passwd", "www").unwrap(), 800);
        assert_eq!(lookup_id(root, "/etc/passwd", "12").unwrap(), 12);
        assert!(lookup_id(root, "/etc/passwd", "nobody2")
            .unwrap_err()
            .to_string()
            .contains("not in the cell's /etc/passwd"));
        assert!(lookup_id(root, "/etc/group", "www")
            .unwrap_err()
            .to_string()
            .contains("the cell has no /etc/group"));
    }
}
