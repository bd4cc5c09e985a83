//! The file directives' view of a cell's root: paths as the cell sees them,
//! worked on through [`crate::fs::tree`], so they never leave the root.
//!
//! Links are followed as the cell would follow them (an absolute target and
//! `..` are relative to the cell's root and stop there), by the kernel
//! (`openat2(RESOLVE_IN_ROOT)`), in the same call that opens the object: a
//! process in the cell swapping a directory for a link meanwhile changes which
//! file inside the cell is written, never whether the write stays inside. A
//! path that climbs above `/` by its own `..` components is refused. Files in
//! the cell are read with a size limit, and `/etc/passwd` and `/etc/group` are
//! streamed line by line.

use crate::fs::tree::{Kind, Tree, READ_LIMIT};
use anyhow::{bail, Context as _, Result};
use std::io::Read;
use std::path::{Component, Path};

/// Largest passwd or group file read for a name.
const DB_LIMIT: u64 = 64 << 20;
/// Longest line in them.
const DB_LINE: usize = 64 << 10;

/// `path` checked: absolute in the cell, not climbing above its root by
/// its own `..` components (links are the kernel's business).
fn cell_path(path: &str) -> Result<&Path> {
    let p = Path::new(path);
    let mut depth = 0usize;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::ParentDir if depth == 0 => bail!("{path}: climbs above the cell root"),
            Component::ParentDir => depth -= 1,
            _ => {}
        }
    }
    Ok(p)
}

/// Creates the directory and missing parents; returns whether anything was created.
pub fn ensure_dir(tree: &Tree, path: &str) -> Result<bool> {
    tree.mkdir_all(cell_path(path)?, 0o755)
}

/// Makes the parent directory of `path` exist.
pub fn ensure_parent(tree: &Tree, path: &str) -> Result<()> {
    if let Some(parent) = cell_path(path)?.parent().filter(|p| *p != Path::new("/")) {
        tree.mkdir_all(parent, 0o755)?;
    }
    Ok(())
}

/// The file's content, or `None` when it does not exist. Anything but a
/// regular file, or a file larger than configuration files get, is an error.
pub fn read_file(tree: &Tree, path: &str) -> Result<Option<Vec<u8>>> {
    tree.read(cell_path(path)?, READ_LIMIT)
}

/// Whether the file at `path` has exactly `content` (reading at most that much).
fn has_content(tree: &Tree, path: &Path, content: &[u8]) -> Result<bool> {
    let Some(obj) = tree.object(path)? else {
        return Ok(false);
    };
    if obj.meta.kind != Kind::File {
        bail!("{} exists and is not a regular file", path.display());
    }
    if obj.meta.size != content.len() as u64 {
        return Ok(false);
    }
    let mut buf = Vec::with_capacity(content.len());
    std::fs::File::from(obj.into_fd())
        .take(content.len() as u64)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(buf == content)
}

/// Replaces the file's content atomically, keeping its mode and owner (a new
/// file is 0644 and belongs to the cell's root). Returns whether it changed.
pub fn ensure_content(tree: &Tree, path: &str, content: &[u8]) -> Result<bool> {
    let p = cell_path(path)?;
    if has_content(tree, p, content)? {
        return Ok(false);
    }
    ensure_parent(tree, path)?;
    tree.write(p, content, None)
        .with_context(|| format!("writing {path}"))?;
    Ok(true)
}

/// Sets mode and ownership where they differ, on the object itself; returns
/// what changed, e.g. `["mode 0640", "owner 1000"]`. Owner and group names
/// resolve in the cell's own `/etc/passwd` and `/etc/group`.
pub fn ensure_attrs(tree: &Tree, path: &str, attrs: &super::Attrs) -> Result<Vec<String>> {
    let p = cell_path(path)?;
    if *attrs == super::Attrs::default() {
        return Ok(Vec::new());
    }
    let uid = match &attrs.owner {
        Some(o) => {
            Some(lookup_id(tree, "/etc/passwd", o).with_context(|| format!("owner of {path}"))?)
        }
        None => None,
    };
    let gid = match &attrs.group {
        Some(g) => {
            Some(lookup_id(tree, "/etc/group", g).with_context(|| format!("group of {path}"))?)
        }
        None => None,
    };
    let mut obj = tree
        .object(p)?
        .with_context(|| format!("{path} does not exist"))?;
    let ids = tree.ids();
    let host_uid = uid.map(|u| ids.host_uid(u)).transpose()?;
    let host_gid = gid.map(|g| ids.host_gid(g)).transpose()?;
    let new_uid = host_uid.filter(|u| *u != obj.meta.uid);
    let new_gid = host_gid.filter(|g| *g != obj.meta.gid);
    let mut changed = Vec::new();
    if new_uid.is_some() || new_gid.is_some() {
        // The kernel clears set-id bits on chown: the mode below sets them again.
        let before = obj.meta.mode;
        obj.chown(new_uid, new_gid)?;
        if attrs.mode.is_none() && before & 0o6000 != 0 {
            obj.chmod(before)?;
        }
        if new_uid.is_some() {
            changed.push(format!("owner {}", uid.unwrap_or_default()));
        }
        if new_gid.is_some() {
            changed.push(format!("group {}", gid.unwrap_or_default()));
        }
    }
    if let Some(mode) = attrs.mode {
        let current = rustix::fs::fstat(obj.fd())
            .map(|st| st.st_mode & 0o7777)
            .unwrap_or(obj.meta.mode);
        if current != mode {
            obj.chmod(mode)?;
            changed.insert(0, format!("mode {mode:04o}"));
        }
    }
    Ok(changed)
}

/// A numeric id, or a name looked up in the cell's passwd/group file
/// (`name:x:id:…`), read line by line with limits.
fn lookup_id(tree: &Tree, db: &str, name: &str) -> Result<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    let found = tree.find_line(Path::new(db), DB_LIMIT, DB_LINE, |line| {
        let mut f = line.split(|b| *b == b':');
        if f.next() != Some(name.as_bytes()) {
            return None;
        }
        let id = f.nth(1)?;
        std::str::from_utf8(id).ok()?.parse::<u32>().ok()
    })?;
    match found {
        None => bail!("'{name}' cannot be resolved: the cell has no {db}"),
        Some(None) => bail!("'{name}' is not in the cell's {db}"),
        Some(Some(id)) => Ok(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tree::Links;
    use crate::testutil::TempDir;
    use std::fs;

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
        let tree = Tree::open(root, Links::InRoot).unwrap();
        assert_eq!(lookup_id(&tree, "/etc/passwd", "www").unwrap(), 800);
        assert_eq!(lookup_id(&tree, "/etc/passwd", "12").unwrap(), 12);
        assert!(lookup_id(&tree, "/etc/passwd", "nobody2")
            .unwrap_err()
            .to_string()
            .contains("not in the cell's /etc/passwd"));
        assert!(lookup_id(&tree, "/etc/group", "www")
            .unwrap_err()
            .to_string()
            .contains("the cell has no /etc/group"));
    }

    #[test]
    fn a_huge_passwd_is_refused_without_reading_it() {
        let t = TempDir::new("rootfs-huge");
        let root = t.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        let f = fs::File::create(root.join("etc/passwd")).unwrap();
        f.set_len(3 << 30).unwrap();
        let tree = Tree::open(root, Links::InRoot).unwrap();
        let e = lookup_id(&tree, "/etc/passwd", "www").unwrap_err();
        assert!(e.to_string().contains("cellmgr reads at most"), "{e}");
    }

    #[test]
    fn paths_climbing_above_the_root_are_refused() {
        assert!(cell_path("/a/../b").is_ok());
        let e = cell_path("/../etc/passwd").unwrap_err();
        assert_eq!(e.to_string(), "/../etc/passwd: climbs above the cell root");
    }
}
