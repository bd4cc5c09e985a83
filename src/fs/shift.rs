//! Moving a tree's files from one id range to another, in place: a cell's
//! writable layer or a volume made while cells ran on host ids, given to
//! the range of the cell's user namespace (and the reverse).
//!
//! Each entry's owner and group are shifted if they are in the range left
//! (ids already in the target range stay, so a shift interrupted half-way
//! is finished by running it again; ids in neither stay as they are, and
//! are counted). What `chown(2)` takes with it is put back, shifted too:
//! set-id bits of regular files, their file capability (`security.capability`,
//! whose version 3 names the root it is valid for) and POSIX ACL entries
//! naming users and groups. The tree must be in no running cell's use: it
//! is walked through [`Tree`], links never followed, mounts never entered.

use super::tree::{IdMap, Kind, Meta, Tree};
use anyhow::{Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// What a shift did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shifted {
    /// Entries whose owner or group changed.
    pub changed: u64,
    /// Entries with an owner or group in neither range (left as they were).
    pub foreign: u64,
}

/// Shifts every entry of `tree` from the ids of `from` to those of `to`,
/// its top directory last.
pub fn shift_tree(tree: &Tree, from: IdMap, to: IdMap) -> Result<Shifted> {
    let ids = Ids { from, to };
    let mut done = Shifted::default();
    tree.visit(Path::new(""), &mut |dir, name, meta| {
        ids.entry(dir.fd(), name, meta, &mut done)
            .with_context(|| format!("shifting the ids of {}", dir.path().join(name).display()))
    })?;
    // Last: a volume's top directory names its range once it has moved.
    let top = tree.dir(Path::new(""))?;
    let meta = top.stat()?;
    ids.object(top.fd(), &meta, &mut done)
        .context("shifting the ids of the top directory")?;
    Ok(done)
}

struct Ids {
    from: IdMap,
    to: IdMap,
}

const CAPABILITY: &str = "security.capability";
const ACLS: [&str; 2] = ["system.posix_acl_access", "system.posix_acl_default"];
const ACL_USER: u16 = 0x02;
const ACL_GROUP: u16 = 0x08;

impl Ids {
    /// The id a host uid (or gid, `group`) moves to: `None` when it stays.
    fn id(&self, id: u32, group: bool) -> Option<Option<u32>> {
        let (cell, target) = if group {
            (self.from.cell_gid(id), self.to.cell_gid(id))
        } else {
            (self.from.cell_uid(id), self.to.cell_uid(id))
        };
        match (cell, target) {
            (_, Some(_)) => Some(None),
            (Some(c), None) => Some(Some(if group {
                self.to.host_gid(c).ok()?
            } else {
                self.to.host_uid(c).ok()?
            })),
            (None, None) => None,
        }
    }

    /// New (uid, gid), or `None` when both stay; counts foreign ids.
    fn owners(&self, meta: &Meta, done: &mut Shifted) -> Option<(u32, u32)> {
        let uid = self.id(meta.uid, false);
        let gid = self.id(meta.gid, true);
        if uid.is_none() || gid.is_none() {
            done.foreign += 1;
        }
        let new = (
            uid.flatten().unwrap_or(meta.uid),
            gid.flatten().unwrap_or(meta.gid),
        );
        (new != (meta.uid, meta.gid)).then_some(new)
    }

    fn entry(&self, dir: BorrowedFd, name: &OsStr, meta: &Meta, done: &mut Shifted) -> Result<()> {
        match meta.kind {
            Kind::File | Kind::Dir => {
                let flags = OFlags::RDONLY
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC
                    | if meta.kind == Kind::Dir {
                        OFlags::DIRECTORY
                    } else {
                        OFlags::empty()
                    };
                let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
                self.object(fd.as_fd(), meta, done)
            }
            // Links and special files: owner and group only.
            _ => {
                if let Some((uid, gid)) = self.owners(meta, done) {
                    rustix::fs::chownat(
                        dir,
                        name,
                        Some(uid_of(uid)),
                        Some(gid_of(gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )?;
                    done.changed += 1;
                }
                Ok(())
            }
        }
    }

    /// A regular file or directory, held open.
    fn object(&self, fd: BorrowedFd, meta: &Meta, done: &mut Shifted) -> Result<()> {
        let Some((uid, gid)) = self.owners(meta, done) else {
            return Ok(());
        };
        // Read before the chown, which drops the capability.
        let capability = read_xattr(fd, CAPABILITY)?;
        let acls: Vec<(&str, Option<Vec<u8>>)> = ACLS
            .iter()
            .map(|n| Ok((*n, read_xattr(fd, n)?)))
            .collect::<Result<_>>()?;
        rustix::fs::fchown(fd, Some(uid_of(uid)), Some(gid_of(gid)))?;
        if meta.kind == Kind::File && meta.mode & 0o6000 != 0 {
            rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))?;
        }
        for (name, value) in acls {
            if let Some(v) = value.and_then(|v| self.acl(&v)) {
                write_xattr(fd, name, &v)?;
            }
        }
        if let Some(v) = capability.and_then(|v| self.capability(&v)) {
            write_xattr(fd, CAPABILITY, &v)?;
        }
        done.changed += 1;
        Ok(())
    }

    /// A POSIX ACL with its user and group entries shifted; `None` when
    /// nothing changes (or it is not one this understands).
    fn acl(&self, value: &[u8]) -> Option<Vec<u8>> {
        if value.len() < 4 || (value.len() - 4) % 8 != 0 {
            return None;
        }
        let mut out = value.to_vec();
        let mut changed = false;
        for entry in out[4..].chunks_exact_mut(8) {
            let tag = u16::from_le_bytes([entry[0], entry[1]]);
            let id = u32::from_le_bytes(entry[4..8].try_into().ok()?);
            let new = match tag {
                ACL_USER => self.id(id, false).flatten(),
                ACL_GROUP => self.id(id, true).flatten(),
                _ => None,
            };
            if let Some(new) = new {
                entry[4..8].copy_from_slice(&new.to_le_bytes());
                changed = true;
            }
        }
        changed.then_some(out)
    }

    /// A file capability made valid for the target range's root: version 2
    /// (host root's) and version 3 for a root of the range left.
    fn capability(&self, value: &[u8]) -> Option<Vec<u8>> {
        const REVISION_MASK: u32 = 0xFF00_0000;
        const REVISION_2: u32 = 0x0200_0000;
        const REVISION_3: u32 = 0x0300_0000;
        let magic = u32::from_le_bytes(value.get(..4)?.try_into().ok()?);
        let root = match (magic & REVISION_MASK, value.len()) {
            (REVISION_2, 20) => 0,
            (REVISION_3, 24) => u32::from_le_bytes(value[20..24].try_into().ok()?),
            _ => return None,
        };
        let root = self.id(root, false)?.unwrap_or(root);
        let flags = magic & !REVISION_MASK;
        let mut out = value[..20].to_vec();
        if root == 0 {
            out[..4].copy_from_slice(&(REVISION_2 | flags).to_le_bytes());
        } else {
            out[..4].copy_from_slice(&(REVISION_3 | flags).to_le_bytes());
            out.extend_from_slice(&root.to_le_bytes());
        }
        Some(out)
    }
}

// File capabilities and POSIX ACLs in these attributes are Linux's; shifts
// run only for Linux user namespaces, and elsewhere a tree has neither.
#[cfg(not(target_os = "linux"))]
fn read_xattr(_: BorrowedFd, _: &str) -> Result<Option<Vec<u8>>> {
    Ok(None)
}

#[cfg(not(target_os = "linux"))]
fn write_xattr(_: BorrowedFd, _: &str, _: &[u8]) -> Result<()> {
    Ok(())
}

#[cfg(target_os = "linux")]
fn write_xattr(fd: BorrowedFd, name: &str, value: &[u8]) -> Result<()> {
    rustix::fs::fsetxattr(fd, name, value, rustix::fs::XattrFlags::empty())
        .with_context(|| format!("writing {name}"))
}

#[cfg(target_os = "linux")]
fn read_xattr(fd: BorrowedFd, name: &str) -> Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::fgetxattr(fd, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 16 => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e).with_context(|| format!("reading {name}")),
        }
    }
}

fn uid_of(id: u32) -> rustix::fs::Uid {
    // SAFETY: ids from stat or an IdMap, never the "no change" value -1.
    unsafe { rustix::fs::Uid::from_raw(id) }
}

fn gid_of(id: u32) -> rustix::fs::Gid {
    // SAFETY: as `uid_of`.
    unsafe { rustix::fs::Gid::from_raw(id) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::tree::Links;
    use crate::testutil::TempDir;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn root_or_skip() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            eprintln!("skipped: needs root to chown");
        }
        root
    }

    const RANGE: u32 = 300_000;

    fn maps() -> (IdMap, IdMap) {
        (
            IdMap::shifted(0, 0, 65_535),
            IdMap::shifted(RANGE, RANGE, 65_535),
        )
    }

    #[test]
    fn owners_set_id_bits_capabilities_and_acls_move_and_a_second_run_changes_nothing() {
        if !root_or_skip() {
            return;
        }
        let t = TempDir::new("shift");
        let top = t.join("tree");
        std::fs::create_dir_all(top.join("srv")).unwrap();
        std::fs::write(top.join("srv/su"), "x").unwrap();
        std::os::unix::fs::chown(top.join("srv/su"), Some(33), Some(33)).unwrap();
        std::fs::set_permissions(top.join("srv/su"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", top.join("link")).unwrap();
        std::os::unix::fs::lchown(top.join("link"), Some(5), Some(5)).unwrap();
        std::fs::write(top.join("foreign"), "").unwrap();
        std::os::unix::fs::chown(top.join("foreign"), Some(70_000), None).unwrap();
        let f = std::fs::File::open(top.join("srv/su")).unwrap();
        // cap_dac_read_search, version 2 (host root's), then an ACL for user 1000.
        let cap = [1u32 | 0x0200_0000, 4, 0, 0, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>();
        rustix::fs::fsetxattr(&f, CAPABILITY, &cap, rustix::fs::XattrFlags::empty()).unwrap();
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 7u16, u32::MAX),
            (2, 5, 1000),
            (4, 5, u32::MAX),
            (0x10, 7, u32::MAX),
            (0x20, 5, u32::MAX),
        ] {
            acl.extend_from_slice(&tag.to_le_bytes());
            acl.extend_from_slice(&perm.to_le_bytes());
            acl.extend_from_slice(&id.to_le_bytes());
        }
        let acls_work =
            rustix::fs::fsetxattr(&f, ACLS[0], &acl, rustix::fs::XattrFlags::empty()).is_ok();
        drop(f);

        // (The ACL's mask entry sets the group bits.)
        let mode = std::fs::metadata(top.join("srv/su")).unwrap().mode() & 0o7777;
        assert_eq!(mode & 0o4000, 0o4000);
        let tree = Tree::open(&top, Links::Refuse).unwrap();
        let (from, to) = maps();
        let done = shift_tree(&tree, from, to).unwrap();
        assert_eq!(done.foreign, 1, "{done:?}");
        let md = std::fs::symlink_metadata(top.join("srv/su")).unwrap();
        assert_eq!((md.uid(), md.gid()), (RANGE + 33, RANGE + 33));
        assert_eq!(md.mode() & 0o7777, mode, "the set-uid bit stays");
        assert_eq!(std::fs::metadata(&top).unwrap().uid(), RANGE);
        let link = std::fs::symlink_metadata(top.join("link")).unwrap();
        assert_eq!((link.uid(), link.gid()), (RANGE + 5, RANGE + 5));
        assert_eq!(
            std::fs::metadata(top.join("foreign")).unwrap().uid(),
            70_000
        );
        let f = std::fs::File::open(top.join("srv/su")).unwrap();
        let mut buf = [0u8; 64];
        let n = rustix::fs::fgetxattr(&f, CAPABILITY, &mut buf).unwrap();
        assert_eq!(n, 24, "a version 3 capability");
        assert_eq!(u32::from_le_bytes(buf[20..24].try_into().unwrap()), RANGE);
        if acls_work {
            let n = rustix::fs::fgetxattr(&f, ACLS[0], &mut buf).unwrap();
            let id = u32::from_le_bytes(buf[4 + 8 + 4..4 + 8 + 8].try_into().unwrap());
            assert_eq!((n, id), (acl.len(), RANGE + 1000));
        }
        let again = shift_tree(&tree, from, to).unwrap();
        assert_eq!(again.changed, 0);
        // And back: the capability is host root's again.
        shift_tree(&tree, to, from).unwrap();
        let n = rustix::fs::fgetxattr(&f, CAPABILITY, &mut buf).unwrap();
        assert_eq!(n, 20);
        assert_eq!(std::fs::metadata(top.join("srv/su")).unwrap().uid(), 33);
    }
}
