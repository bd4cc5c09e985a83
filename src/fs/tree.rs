//! Trees a cell controls, worked on from the host: the cell's writable layer,
//! its composed root, volumes, restore staging.
//!
//! Host root runs here with every privilege while the cell's root (or a
//! process of another cell sharing a volume) may plant links, swap a
//! directory for a link between two system calls, or make a file huge. The
//! rules, all enforced by this module:
//!
//! 1. Everything starts from a directory fd of the tree's root ([`Tree`]), and
//!    every path is resolved below it by [`resolve`](super::resolve): as the
//!    cell sees it ([`Links::InRoot`]) or with no link at all
//!    ([`Links::Refuse`]). No path inside a tree is ever handed to a path-based
//!    system call.
//! 2. Objects are changed through fds of their directory ([`Dir`]) or of the
//!    object itself ([`Object`]): `*at` calls on one name with `O_NOFOLLOW` /
//!    `AT_SYMLINK_NOFOLLOW`, `fchmod`, `fchown`.
//! 3. Files are replaced atomically: a temporary name no one can predict,
//!    created `O_EXCL|O_NOFOLLOW`, written, given its mode and owner through
//!    its fd, fsynced, and renamed over the old name within the same directory
//!    fd. Nothing is changed by path after the rename.
//! 4. Reads are bounded: the size is checked through the fd before reading,
//!    and line readers stop at a line or total limit.
//! 5. Removal never follows a link and never crosses into a mount.
//!
//! Ownership goes through an [`IdMap`]: ids as the cell sees them, turned into
//! host ids when written and back when read. Today cell root is host root (the
//! identity map); a user namespace per cell changes only the map.

use super::resolve;
pub use super::resolve::Links;
use anyhow::{anyhow, bail, Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// How ids inside a tree relate to host ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    uid: u32,
    gid: u32,
    count: u32,
}

impl IdMap {
    /// Cell ids are host ids (cell root is host root).
    pub const IDENTITY: IdMap = IdMap {
        uid: 0,
        gid: 0,
        count: u32::MAX,
    };

    /// Cell ids `0..count` are host ids `uid..uid+count` (and the same for groups).
    pub fn shifted(uid: u32, gid: u32, count: u32) -> IdMap {
        IdMap { uid, gid, count }
    }

    pub fn host_uid(&self, cell: u32) -> Result<u32> {
        shift(cell, self.uid, self.count).with_context(|| {
            format!(
                "uid {cell} is outside the cell's id range (0-{})",
                self.count - 1
            )
        })
    }

    pub fn host_gid(&self, cell: u32) -> Result<u32> {
        shift(cell, self.gid, self.count).with_context(|| {
            format!(
                "gid {cell} is outside the cell's id range (0-{})",
                self.count - 1
            )
        })
    }

    /// The cell's id for a host uid; `None` for ids outside the range.
    pub fn cell_uid(&self, host: u32) -> Option<u32> {
        host.checked_sub(self.uid).filter(|c| *c < self.count)
    }

    pub fn cell_gid(&self, host: u32) -> Option<u32> {
        host.checked_sub(self.gid).filter(|c| *c < self.count)
    }
}

fn shift(id: u32, base: u32, count: u32) -> Option<u32> {
    (id < count).then(|| base.checked_add(id)).flatten()
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// Devices, fifos, sockets.
    Special,
}

/// An entry's attributes, owner and group as host ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits, set-id and sticky bits included (`07777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// The full `st_mode` (type bits included) and `st_rdev`, for callers
    /// that must tell devices, fifos and sockets apart.
    pub st_mode: u32,
    pub rdev: u64,
}

impl Meta {
    fn of(st: &rustix::fs::Stat) -> Meta {
        let fmt = st.st_mode as libc::mode_t & libc::S_IFMT;
        let kind = match fmt {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Special,
        };
        Meta {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            st_mode: st.st_mode,
            rdev: st.st_rdev,
        }
    }
}

/// A tree a cell controls, held by a directory fd of its root.
#[derive(Debug)]
pub struct Tree {
    fd: OwnedFd,
    /// The root's host path, for messages only.
    path: PathBuf,
    links: Links,
    ids: IdMap,
}

/// Largest file [`Tree::read`] callers should ask for unless they know better:
/// configuration-sized files.
pub const READ_LIMIT: u64 = 16 << 20;

impl Tree {
    /// Opens the tree rooted at `root`, a host path whose components host root
    /// controls (the root itself is opened without following a link).
    pub fn open(root: &Path, links: Links) -> Result<Tree> {
        resolve::require_openat2()?;
        let fd = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            anyhow::Error::new(e).context(format!("opening {}: {}", root.display(), errno_text(e)))
        })?;
        Ok(Tree {
            fd,
            path: root.to_path_buf(),
            links,
            ids: IdMap::IDENTITY,
        })
    }

    /// The same tree with another id map.
    pub fn with_ids(mut self, ids: IdMap) -> Tree {
        self.ids = ids;
        self
    }

    pub fn ids(&self) -> IdMap {
        self.ids
    }

    pub fn links(&self) -> Links {
        self.links
    }

    /// The root's host path (messages only: never open it by path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn root_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Host uid and gid of the cell's root: the owner of what cellmgr creates.
    pub fn root_owner(&self) -> Result<(u32, u32)> {
        Ok((self.ids.host_uid(0)?, self.ids.host_gid(0)?))
    }

    /// Opens `rel` (absolute or relative to the root) with `flags`, resolved
    /// according to the tree's [`Links`].
    pub fn open_at(&self, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        resolve::open(self.fd.as_fd(), rel, flags, self.links)
    }

    /// The directory at `rel`.
    pub fn dir(&self, rel: &Path) -> Result<Dir<'_>> {
        let fd = self
            .open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| self.err(rel, e))?;
        Ok(Dir {
            fd,
            tree: self,
            rel: cell_path(rel),
        })
    }

    /// The directory holding `rel` (resolved) and `rel`'s last component (not
    /// resolved): where an entry is created, replaced or removed.
    pub fn parent_of(&self, rel: &Path) -> Result<(Dir<'_>, OsString)> {
        let (parent, leaf) = split_leaf(rel)?;
        Ok((self.dir(&parent)?, leaf))
    }

    /// The entry at `rel` itself (a link in the last component is not
    /// followed); `None` when it or a parent does not exist.
    pub fn meta(&self, rel: &Path) -> Result<Option<Meta>> {
        let (parent, leaf) = split_leaf(rel)?;
        let dir = match self.open_at(&parent, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.err(&parent, e)),
        };
        match rustix::fs::statat(&dir, &leaf, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Meta::of(&st))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    /// The attributes of what `rel` names, links followed as the tree does
    /// (without opening it for reading); `None` when it does not exist.
    pub fn meta_of_target(&self, rel: &Path) -> Result<Option<Meta>> {
        match self.open_at(rel, path_flags()) {
            Ok(fd) => Ok(Some(Meta::of(
                &rustix::fs::fstat(&fd).map_err(|e| self.err(rel, e))?,
            ))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    /// Whether `rel` exists, following links as the tree does.
    pub fn exists(&self, rel: &Path) -> Result<bool> {
        match self.open_at(rel, path_flags()) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(self.err(rel, e)),
        }
    }

    /// The regular file or directory at `rel` (links followed as the tree
    /// does), held open so that its attributes are read and changed on the
    /// object itself. `None` when it does not exist; anything else is an error.
    pub fn object(&self, rel: &Path) -> Result<Option<Object>> {
        let fd = match self.open_at(rel, path_flags()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.err(rel, e)),
        };
        let meta = Meta::of(&rustix::fs::fstat(&fd).map_err(|e| self.err(rel, e))?);
        if !matches!(meta.kind, Kind::File | Kind::Dir) {
            bail!(
                "{} is {}, not a regular file or directory",
                cell_path(rel).display(),
                kind_name(meta.kind)
            );
        }
        let fd = reopen(&fd, OFlags::RDONLY).map_err(|e| self.err(rel, e))?;
        Ok(Some(Object {
            fd,
            meta,
            rel: cell_path(rel),
        }))
    }

    /// The regular file at `rel` opened for reading, after checking through
    /// the fd that it is at most `limit` bytes. `None` when it does not exist.
    pub fn open_file(&self, rel: &Path, limit: u64) -> Result<Option<File>> {
        let Some(obj) = self.object(rel)? else {
            return Ok(None);
        };
        if obj.meta.kind != Kind::File {
            bail!("{} exists and is not a regular file", obj.rel.display());
        }
        if obj.meta.size > limit {
            bail!(
                "{} is {} bytes; cellmgr reads at most {limit} bytes of a file in a cell",
                obj.rel.display(),
                obj.meta.size
            );
        }
        Ok(Some(File::from(obj.fd)))
    }

    /// The content of the regular file at `rel`, at most `limit` bytes (also
    /// if it grows while being read). `None` when it does not exist.
    pub fn read(&self, rel: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(f) = self.open_file(rel, limit)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {}", cell_path(rel).display()))?;
        if buf.len() as u64 > limit {
            bail!(
                "{} grew past {limit} bytes while being read",
                cell_path(rel).display()
            );
        }
        Ok(Some(buf))
    }

    /// Calls `each` with every line (without its newline) of the file at
    /// `rel` until it returns `Some`; streams, so memory stays bounded by
    /// `max_line` whatever the file's size. `None` when the file is missing.
    pub fn find_line<T>(
        &self,
        rel: &Path,
        limit: u64,
        max_line: usize,
        mut each: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<Option<Option<T>>> {
        let Some(f) = self.open_file(rel, limit)? else {
            return Ok(None);
        };
        let mut r = BufReader::new(f.take(limit));
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut r)
                .take(max_line as u64 + 1)
                .read_until(b'\n', &mut line)
                .with_context(|| format!("reading {}", cell_path(rel).display()))?;
            if n == 0 {
                return Ok(Some(None));
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            } else if line.len() > max_line {
                bail!(
                    "{} has a line longer than {max_line} bytes",
                    cell_path(rel).display()
                );
            }
            if let Some(v) = each(&line) {
                return Ok(Some(Some(v)));
            }
        }
    }

    /// Follows links in the last component of `rel` as the tree does (each
    /// hop resolved again from the root, so a link swapped meanwhile still
    /// resolves inside) and returns the directory and name of the entry the
    /// path finally names: where a write through `rel` lands.
    pub fn resolve_leaf(&self, rel: &Path) -> Result<(Dir<'_>, OsString)> {
        let mut rel = rel.to_path_buf();
        for _ in 0..=40 {
            let (parent, leaf) = split_leaf(&rel)?;
            let dir = self.dir(&parent)?;
            if self.links == Links::InRoot {
                if let Some(target) = dir.read_link(&leaf)? {
                    rel = if target.is_absolute() {
                        target
                    } else {
                        parent.join(target)
                    };
                    continue;
                }
            }
            return Ok((dir, leaf));
        }
        bail!(
            "{}: too many levels of symbolic links",
            cell_path(&rel).display()
        )
    }

    /// Replaces the content of the file `rel` names (a link in the last
    /// component is followed as the tree does). `mode` `None` keeps the
    /// current mode (0644 for a new file); the owner stays, and a new file
    /// belongs to the cell's root. Returns the new file's attributes.
    pub fn write(&self, rel: &Path, content: &[u8], mode: Option<u32>) -> Result<Meta> {
        self.write_file(rel, content, mode, true)
    }

    /// As [`Tree::write`], without waiting for the disk: for a file whose
    /// loss in a crash the next run notices and repairs (a seed file
    /// written again when missing or empty).
    pub fn write_unsynced(&self, rel: &Path, content: &[u8], mode: Option<u32>) -> Result<Meta> {
        self.write_file(rel, content, mode, false)
    }

    fn write_file(
        &self,
        rel: &Path,
        content: &[u8],
        mode: Option<u32>,
        durable: bool,
    ) -> Result<Meta> {
        let (dir, leaf) = self.resolve_leaf(rel)?;
        let old = dir.meta(&leaf)?;
        let (uid, gid) = match old {
            Some(m) if m.kind == Kind::File => (m.uid, m.gid),
            _ => self.root_owner()?,
        };
        let mode = mode.unwrap_or(match old {
            Some(m) if m.kind == Kind::File => m.mode,
            _ => 0o644,
        });
        dir.write_file(&leaf, content, mode, (uid, gid), durable)
    }

    /// Makes `rel` a directory, creating missing parents (0755) and `rel`
    /// itself with `mode`, each in its resolved parent; returns whether
    /// anything was created. A non-directory on the way is an error.
    pub fn mkdir_all(&self, rel: &Path, mode: u32) -> Result<bool> {
        let parts: Vec<Component> = rel
            .components()
            .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
            .collect();
        let mut created = false;
        for i in 1..=parts.len() {
            let prefix: PathBuf = parts[..i].iter().collect();
            match self.open_at(&prefix, path_flags() | OFlags::DIRECTORY) {
                Ok(_) => continue,
                Err(Errno::NOENT) => {}
                Err(Errno::NOTDIR) => bail!(
                    "{} exists and is not a directory",
                    cell_path(&prefix).display()
                ),
                Err(e) => return Err(self.err(&prefix, e)),
            }
            let (dir, leaf) = self.parent_of(&prefix)?;
            let m = if i == parts.len() { mode } else { 0o755 };
            match dir.mkdir(&leaf, m) {
                Ok(()) => created = true,
                // Created meanwhile, or a dangling link: check again.
                Err(e) if e.downcast_ref::<Errno>() == Some(&Errno::EXIST) => {
                    if let Err(e) = self.open_at(&prefix, path_flags() | OFlags::DIRECTORY) {
                        if let Some(target) = dir.read_link(&leaf)? {
                            bail!(
                                "{} is a symbolic link to {}, which does not exist",
                                cell_path(&prefix).display(),
                                target.display()
                            );
                        }
                        bail!(
                            "{} exists and is not a directory ({})",
                            cell_path(&prefix).display(),
                            errno_text(e)
                        );
                    }
                }
                Err(e) => {
                    return Err(e.context(format!("creating {}", cell_path(&prefix).display())))
                }
            }
        }
        Ok(created)
    }

    /// Makes `rel` a link to `target`, replacing a file or link there (never
    /// a directory) atomically; returns whether it changed. The link itself
    /// is not followed.
    pub fn symlink(&self, rel: &Path, target: &Path) -> Result<bool> {
        let (dir, leaf) = self.parent_of(rel)?;
        match dir.meta(&leaf)? {
            Some(m) if m.kind == Kind::Dir => bail!(
                "{} is a directory; refusing to replace it with a symlink",
                cell_path(rel).display()
            ),
            Some(m)
                if m.kind == Kind::Symlink && dir.read_link(&leaf)?.as_deref() == Some(target) =>
            {
                return Ok(false)
            }
            _ => {}
        }
        dir.replace_symlink(&leaf, target)?;
        Ok(true)
    }

    /// Removes the entry `rel` (a directory with everything below it); links
    /// are removed, never followed, and a mount point below stops the
    /// removal with an error. A missing entry is not an error.
    pub fn remove_all(&self, rel: &Path) -> Result<()> {
        let (dir, leaf) = match self.parent_of(rel) {
            Ok(x) => x,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        dir.remove_tree(&leaf)
    }

    /// Calls `each` for every entry below `rel` (depth first, parents before
    /// children; links not followed, mounts not entered), with the directory
    /// holding it, its name and its attributes. Trees nested deeper than
    /// `MAX_DEPTH` directories are an error.
    pub fn visit(
        &self,
        rel: &Path,
        each: &mut dyn FnMut(&Dir, &OsStr, &Meta) -> Result<()>,
    ) -> Result<()> {
        const MAX_DEPTH: usize = 256;
        let top = self.dir(rel)?;
        let mut stack: Vec<(Dir, Vec<OsString>)> = Vec::new();
        let names = top.names()?;
        stack.push((top, names));
        while !stack.is_empty() {
            let depth = stack.len();
            let (dir, names) = stack.last_mut().expect("not empty");
            let Some(name) = names.pop() else {
                stack.pop();
                continue;
            };
            let Some(meta) = dir.meta(&name)? else {
                continue;
            };
            each(dir, &name, &meta)?;
            if meta.kind == Kind::Dir {
                if depth >= MAX_DEPTH {
                    bail!(
                        "{}: more than {MAX_DEPTH} nested directories",
                        dir.rel.join(&name).display()
                    );
                }
                let sub = dir.subdir(&name)?;
                let names = sub.names()?;
                stack.push((sub, names));
            }
        }
        Ok(())
    }

    fn err(&self, rel: &Path, e: Errno) -> anyhow::Error {
        path_error(&cell_path(rel), &self.path, e)
    }
}

/// A directory inside a [`Tree`], held open; operations on its entries by
/// name (one component, never resolved further).
pub struct Dir<'t> {
    fd: OwnedFd,
    tree: &'t Tree,
    /// Its path inside the tree, for messages.
    rel: PathBuf,
}

impl<'t> Dir<'t> {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Its path inside the tree (`/etc`), for messages.
    pub fn path(&self) -> &Path {
        &self.rel
    }

    /// Its own attributes.
    pub fn stat(&self) -> Result<Meta> {
        Ok(Meta::of(
            &rustix::fs::fstat(&self.fd).map_err(|e| self.err(".".as_ref(), e))?,
        ))
    }

    pub fn tree(&self) -> &'t Tree {
        self.tree
    }

    /// The content of the regular file `name` (not a link), at most `limit`
    /// bytes; `None` when it is missing, larger, or not a regular file.
    pub fn read_file(&self, name: &OsStr, limit: u64) -> Result<Option<Vec<u8>>> {
        let fd = match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::LOOP) => return Ok(None),
            Err(e) => return Err(self.err(name, e)),
        };
        let meta = Meta::of(&rustix::fs::fstat(&fd).map_err(|e| self.err(name, e))?);
        if meta.kind != Kind::File || meta.size > limit {
            return Ok(None);
        }
        let mut buf = Vec::new();
        File::from(fd)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {}", self.shown(name).display()))?;
        Ok((buf.len() as u64 <= limit).then_some(buf))
    }

    fn shown(&self, name: &OsStr) -> PathBuf {
        self.rel.join(name)
    }

    fn err(&self, name: &OsStr, e: Errno) -> anyhow::Error {
        path_error(&self.shown(name), &self.tree.path, e)
    }

    /// The entry's attributes (a link is not followed); `None` when missing.
    pub fn meta(&self, name: &OsStr) -> Result<Option<Meta>> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Meta::of(&st))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.err(name, e)),
        }
    }

    /// The target of the link `name`; `None` when `name` is missing or not a link.
    pub fn read_link(&self, name: &OsStr) -> Result<Option<PathBuf>> {
        match rustix::fs::readlinkat(&self.fd, name, Vec::new()) {
            Ok(t) => Ok(Some(PathBuf::from(OsString::from_vec(t.into_bytes())))),
            Err(Errno::NOENT) | Err(Errno::INVAL) => Ok(None),
            Err(e) => Err(self.err(name, e)),
        }
    }

    /// Entry names, `.` and `..` left out.
    pub fn names(&self) -> Result<Vec<OsString>> {
        let mut out = Vec::new();
        let dir = rustix::fs::Dir::read_from(&self.fd).map_err(|e| self.err(".".as_ref(), e))?;
        for entry in dir {
            let entry = entry.map_err(|e| self.err(".".as_ref(), e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        Ok(out)
    }

    /// The subdirectory `name` (not a link, not a mount point).
    pub fn subdir(&self, name: &OsStr) -> Result<Dir<'t>> {
        let fd = resolve::open_subdir_same_mount(self.fd.as_fd(), name)
            .map_err(|e| self.err(name, e))?;
        Ok(Dir {
            fd,
            tree: self.tree,
            rel: self.shown(name),
        })
    }

    /// Creates the directory `name` with `mode`, owned by the cell's root.
    /// An existing entry fails with `EEXIST` (as an [`Errno`] in the chain).
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> Result<()> {
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700))
            .map_err(anyhow::Error::from)?;
        let sub = self.subdir(name)?;
        let (uid, gid) = self.tree.root_owner()?;
        chown_fd(&sub.fd, uid, gid).map_err(|e| self.err(name, e))?;
        rustix::fs::fchmod(&sub.fd, Mode::from_raw_mode(mode)).map_err(|e| self.err(name, e))?;
        Ok(())
    }

    /// Replaces (or creates) the file `name` with `content`, `mode` and the
    /// host ids `owner`, atomically (see the module comment, rule 3). A
    /// directory of that name is an error. Returns the new attributes.
    pub fn write(
        &self,
        name: &OsStr,
        content: &[u8],
        mode: u32,
        owner: (u32, u32),
    ) -> Result<Meta> {
        self.write_file(name, content, mode, owner, true)
    }

    fn write_file(
        &self,
        name: &OsStr,
        content: &[u8],
        mode: u32,
        owner: (u32, u32),
        durable: bool,
    ) -> Result<Meta> {
        let tmp = super::temp_name(name);
        let fd = rustix::fs::openat(
            &self.fd,
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.err(&tmp, e))?;
        let result = (|| -> Result<Meta> {
            let mut f = File::from(fd);
            f.write_all(content)
                .with_context(|| format!("writing {}", self.shown(name).display()))?;
            // Owner first: chown clears set-id bits that fchmod then sets.
            chown_fd(&f, owner.0, owner.1).map_err(|e| self.err(name, e))?;
            rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(|e| self.err(name, e))?;
            if durable {
                f.sync_all()
                    .with_context(|| format!("writing {}", self.shown(name).display()))?;
            }
            let meta = Meta::of(&rustix::fs::fstat(&f).map_err(|e| self.err(name, e))?);
            rustix::fs::renameat(&self.fd, &tmp, &self.fd, name).map_err(|e| match e {
                Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => {
                    anyhow!("{} is a directory", self.shown(name).display())
                }
                e => self.err(name, e),
            })?;
            if durable {
                self.sync()?;
            }
            Ok(meta)
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, &tmp, AtFlags::empty());
        }
        result
    }

    /// Makes `name` a link to `target`, replacing a file or link there.
    pub fn replace_symlink(&self, name: &OsStr, target: &Path) -> Result<()> {
        let tmp = super::temp_name(name);
        rustix::fs::symlinkat(target, &self.fd, &tmp).map_err(|e| self.err(&tmp, e))?;
        let result = (|| -> Result<()> {
            let (uid, gid) = self.tree.root_owner()?;
            if (uid, gid) != own_ids() {
                rustix::fs::chownat(
                    &self.fd,
                    &tmp,
                    Some(uid_of(uid)),
                    Some(gid_of(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| self.err(name, e))?;
            }
            rustix::fs::renameat(&self.fd, &tmp, &self.fd, name).map_err(|e| match e {
                Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => {
                    anyhow!("{} is a directory", self.shown(name).display())
                }
                e => self.err(name, e),
            })
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, &tmp, AtFlags::empty());
        }
        result
    }

    /// Removes a file, link or special entry (not a directory); a missing one is fine.
    pub fn remove(&self, name: &OsStr) -> Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(self.err(name, e)),
        }
    }

    /// Removes `name` and, for a directory, everything below it (rule 5).
    /// Directory fds are held down to a fixed depth; deeper subtrees are first
    /// moved up to the top directory (a rename in one file system), so any
    /// depth is removed with a bounded number of open files.
    pub fn remove_tree(&self, name: &OsStr) -> Result<()> {
        const MAX_OPEN: usize = 64;
        let Some(meta) = self.meta(name)? else {
            return Ok(());
        };
        if meta.kind != Kind::Dir {
            return self.remove(name);
        }
        struct Frame<'a> {
            dir: Dir<'a>,
            name: OsString,
            subdirs: Vec<OsString>,
        }
        // Unlinks the non-directories of `dir`; returns its subdirectories.
        let empty = |dir: &Dir| -> Result<Vec<OsString>> {
            let mut subdirs = Vec::new();
            for n in dir.names()? {
                match dir.meta(&n)? {
                    Some(m) if m.kind == Kind::Dir => subdirs.push(n),
                    Some(_) => dir.remove(&n)?,
                    None => {}
                }
            }
            Ok(subdirs)
        };
        let top = self.subdir(name)?;
        let subdirs = empty(&top)?;
        let mut stack = vec![Frame {
            dir: top,
            name: name.to_os_string(),
            subdirs,
        }];
        while let Some(depth) = stack.len().checked_sub(1) {
            let Some(sub) = stack[depth].subdirs.pop() else {
                let done = stack.pop().expect("a frame");
                drop(done.dir);
                let parent = stack.last().map(|f| &f.dir).unwrap_or(self);
                match rustix::fs::unlinkat(&parent.fd, &done.name, AtFlags::REMOVEDIR) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(parent.err(&done.name, e)),
                }
                continue;
            };
            if depth + 1 >= MAX_OPEN {
                // Move it up to the top directory and take it from there.
                let moved = super::temp_name(&sub);
                rustix::fs::renameat(&stack[depth].dir.fd, &sub, &stack[0].dir.fd, &moved)
                    .map_err(|e| stack[depth].dir.err(&sub, e))?;
                stack[0].subdirs.push(moved);
                continue;
            }
            let frame = &stack[depth];
            let dir = match frame.dir.subdir(&sub) {
                Ok(d) => d,
                Err(e) if errno_in(&e) == Some(Errno::XDEV) => {
                    return Err(e.context(format!(
                        "not removing {}: something is mounted there",
                        frame.dir.shown(&sub).display()
                    )))
                }
                // Replaced by a link or file meanwhile: an entry like any other.
                Err(e) if matches!(errno_in(&e), Some(Errno::LOOP | Errno::NOTDIR)) => {
                    frame.dir.remove(&sub)?;
                    continue;
                }
                Err(e) if errno_in(&e) == Some(Errno::NOENT) => continue,
                Err(e) => return Err(e),
            };
            let subdirs = empty(&dir)?;
            stack.push(Frame {
                dir,
                name: sub,
                subdirs,
            });
        }
        Ok(())
    }

    /// fsync of the directory: renames and creations in it are durable.
    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd).map_err(|e| self.err(".".as_ref(), e))
    }
}

/// A regular file or directory in a tree, held open: its attributes are read
/// and changed through the fd, never by path.
pub struct Object {
    fd: OwnedFd,
    pub meta: Meta,
    rel: PathBuf,
}

impl Object {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The open fd (read-only), for reading the file.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    pub fn chmod(&mut self, mode: u32) -> Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode))
            .with_context(|| format!("chmod {mode:04o} {}", self.rel.display()))?;
        self.meta.mode = mode;
        Ok(())
    }

    /// Sets owner and/or group (host ids); set-id bits the kernel clears are
    /// put back, as `chown(1)` leaves them to the mode.
    pub fn chown(&mut self, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
        let uid = uid.unwrap_or(self.meta.uid);
        let gid = gid.unwrap_or(self.meta.gid);
        chown_fd(&self.fd, uid, gid)
            .with_context(|| format!("chown {uid}:{gid} {}", self.rel.display()))?;
        self.meta.uid = uid;
        self.meta.gid = gid;
        Ok(())
    }
}

/// Where an fd's object is reopened with other flags: the same inode, so no
/// path is resolved again (Linux: the fd came from `O_PATH`).
fn reopen(fd: &OwnedFd, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        rustix::fs::open(
            format!("/proc/self/fd/{}", fd.as_raw_fd()),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = flags;
        rustix::io::fcntl_dupfd_cloexec(fd, 0)
    }
}

/// Flags that open any object without reading it (Linux: `O_PATH`;
/// elsewhere a non-blocking read-only open that does not take a terminal).
fn path_flags() -> OFlags {
    #[cfg(target_os = "linux")]
    {
        OFlags::PATH
    }
    #[cfg(not(target_os = "linux"))]
    {
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY
    }
}

fn own_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid have no preconditions.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

fn chown_fd(fd: impl AsFd, uid: u32, gid: u32) -> rustix::io::Result<()> {
    let st = rustix::fs::fstat(&fd)?;
    if (st.st_uid, st.st_gid) == (uid, gid) {
        return Ok(());
    }
    rustix::fs::fchown(&fd, Some(uid_of(uid)), Some(gid_of(gid)))
}

fn uid_of(id: u32) -> rustix::fs::Uid {
    // SAFETY: ids come from stat or an IdMap, never the "no change" value -1.
    unsafe { rustix::fs::Uid::from_raw(id) }
}

fn gid_of(id: u32) -> rustix::fs::Gid {
    // SAFETY: as `uid_of`.
    unsafe { rustix::fs::Gid::from_raw(id) }
}

/// `rel` as the cell writes it: absolute, for messages.
fn cell_path(rel: &Path) -> PathBuf {
    let r = resolve::relative(rel);
    if r == Path::new(".") {
        PathBuf::from("/")
    } else {
        Path::new("/").join(r)
    }
}

/// Splits `rel` into its parent and last component, which must be a name.
fn split_leaf(rel: &Path) -> Result<(PathBuf, OsString)> {
    let r = resolve::relative(rel);
    match r.components().next_back() {
        Some(Component::Normal(leaf)) => {
            let parent = r.parent().map(Path::to_path_buf).unwrap_or_default();
            Ok((parent, leaf.to_os_string()))
        }
        _ => bail!("{}: names no file", cell_path(rel).display()),
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "a regular file",
        Kind::Dir => "a directory",
        Kind::Symlink => "a symbolic link",
        Kind::Special => "a device, fifo or socket",
    }
}

fn errno_text(e: Errno) -> String {
    match e {
        Errno::LOOP => "a symbolic link is in the way (links are not followed here)".into(),
        Errno::XDEV => "the path leaves the tree or crosses a mount point".into(),
        e => std::io::Error::from(e).to_string(),
    }
}

fn path_error(shown: &Path, root: &Path, e: Errno) -> anyhow::Error {
    anyhow::Error::new(e).context(format!(
        "{} (in {}): {}",
        shown.display(),
        root.display(),
        errno_text(e)
    ))
}

/// The system error at the bottom of an error chain, if any.
pub fn errno_in(e: &anyhow::Error) -> Option<Errno> {
    e.chain().find_map(|c| c.downcast_ref::<Errno>().copied())
}

fn is_not_found(e: &anyhow::Error) -> bool {
    errno_in(e) == Some(Errno::NOENT)
}

/// Removes the directory tree at a host path whose parent host root controls
/// (a volume, a cell's runtime, a staging tree), with the rules of
/// [`Dir::remove_tree`]: no link followed, no mount crossed.
pub fn remove_host_tree(path: &Path) -> Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .with_context(|| format!("{}: has no parent directory", path.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{}: has no file name", path.display()))?;
    let tree = match Tree::open(parent, Links::Refuse) {
        Ok(t) => t,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let top = tree.dir(Path::new(""))?;
    top.remove_tree(name)
        .with_context(|| format!("removing {}", path.display()))
}

#[cfg(test)]
mod tests;
