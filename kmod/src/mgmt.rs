//! The management plane: the handlers of the `security.models.cell` nodes,
//! written against the [`Kernel`] trait so every path, including every error
//! of the original's contract, runs in host tests.
//!
//! Who may do what:
//! * `name`, `version`: anyone (static values, no handler);
//! * `list`, `stats`: any host credential, read only;
//! * `id` (read or enter), `create`, `destroy`: host root only;
//! * a credential inside a cell gets EPERM from every handler.

use crate::abi::{AbiStruct, CellCreate, CellId, CellInfo, CELLID_HOST};
use crate::errno::{Errno, EINVAL, ENOMEM, EOVERFLOW, EPERM};
use crate::model::{Model, Subject};
use crate::table::{CellState, CreateSpec};
use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;

/// The shape of a sysctl call: which buffers the caller passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Length of the new value; `None` when `newp` is NULL.
    pub new_len: Option<usize>,
    /// Capacity of the old buffer; `None` when `oldp` is NULL (a size probe).
    pub old_cap: Option<usize>,
}

/// What a handler needs from the kernel.
pub trait Kernel {
    /// Root directory handle (a referenced vnode).
    type Root: Copy + PartialEq;

    /// The calling LWP's credential.
    fn subject(&self) -> Subject;
    fn request(&self) -> Request;
    /// Copies the new value in (`dst.len()` bytes).
    fn copyin(&mut self, dst: &mut [u8]) -> Result<(), Errno>;
    /// Copies `src` to the old buffer and sets the old length.
    fn copyout(&mut self, src: &[u8]) -> Result<(), Errno>;
    /// Sets the old length without copying (size probes, ENOMEM replies).
    fn set_old_len(&mut self, len: usize);
    /// Resolves a path to a referenced directory (ENOTDIR, lookup errors).
    fn lookup_dir(&mut self, path: &[u8]) -> Result<Self::Root, Errno>;
    fn release_root(&mut self, root: Self::Root);
    /// Nanoseconds since boot.
    fn now_ns(&self) -> u64;
    /// Runs `f` with the model locked.
    fn with_model<T>(&mut self, f: impl FnOnce(&mut Model<Self::Root>) -> T) -> T;
    /// Runs `f` with `proc_lock` and then the model locked; `f` gets a
    /// predicate telling whether any live or zombie process is in a cell.
    fn with_procs_and_model<T>(
        &mut self,
        f: impl FnOnce(&mut Model<Self::Root>, &dyn Fn(CellId) -> bool) -> T,
    ) -> T;
    /// The cell of the calling process's credential.
    fn process_cell(&self) -> CellId;
    /// Is the calling process's root directory exactly `root`?
    fn process_root_is(&mut self, root: Self::Root) -> bool;
    /// Moves the calling process into `id`: clone the process credential,
    /// set the id, install it (marking the process set-id). Fails with EPERM
    /// if the process's cell is no longer `from`.
    fn commit_enter(&mut self, from: CellId, id: CellId) -> Result<(), Errno>;
    /// Writes a lifecycle line to the kernel log.
    fn log(&mut self, args: fmt::Arguments<'_>);
}

/// Bytes shown in a log line: printable ASCII as is, the rest as `\xNN`.
struct Escaped<'a>(&'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

fn host_only<K: Kernel>(k: &K) -> Result<Subject, Errno> {
    let s = k.subject();
    if s.cell != CELLID_HOST {
        return Err(EPERM);
    }
    Ok(s)
}

fn host_root_only<K: Kernel>(k: &K) -> Result<Subject, Errno> {
    let s = host_only(k)?;
    if !s.is_host_root() {
        return Err(EPERM);
    }
    Ok(s)
}

/// Replies with `bytes`, or only its length to a size probe, or ENOMEM to
/// a buffer too small.
fn reply<K: Kernel>(k: &mut K, bytes: &[u8]) -> Result<(), Errno> {
    match k.request().old_cap {
        None => {
            k.set_old_len(bytes.len());
            Ok(())
        }
        Some(cap) if cap < bytes.len() => {
            k.set_old_len(bytes.len());
            Err(ENOMEM)
        }
        Some(_) => k.copyout(bytes),
    }
}

/// Reads an exactly 4-byte new value.
fn read_u32<K: Kernel>(k: &mut K, len: usize) -> Result<u32, Errno> {
    if len != size_of::<u32>() {
        return Err(EINVAL);
    }
    let mut b = [0u8; 4];
    k.copyin(&mut b)?;
    Ok(u32::from_ne_bytes(b))
}

/// `create`: new = [`CellCreate`] (exact size), old = a buffer at least as
/// large; replies the request with `cc_id` set. Error order: no new value
/// EINVAL, not host root EPERM, old buffer missing or short ENOMEM, new
/// length EINVAL, copyin fault, request checks EINVAL, root lookup errors
/// and ENOTDIR, EEXIST, EOVERFLOW, copyout fault (the cell is rolled back).
pub fn create<K: Kernel>(k: &mut K) -> Result<CellId, Errno> {
    let req = k.request();
    let new_len = req.new_len.ok_or(EINVAL)?;
    let who = host_root_only(k)?;
    let size = size_of::<CellCreate>();
    if req.old_cap.is_none_or(|cap| cap < size) {
        return Err(ENOMEM);
    }
    if new_len != size {
        return Err(EINVAL);
    }
    let mut buf = [0u8; size_of::<CellCreate>()];
    k.copyin(&mut buf)?;
    let cc = CellCreate::from_bytes(&buf).ok_or(EINVAL)?;
    let spec = CreateSpec::from_request(&cc)?;
    let root = k.lookup_dir(spec.root())?;
    let now = k.now_ns();
    let id = match k.with_model(|m| m.table.insert_creating(&spec, root, now)) {
        Ok(id) => id,
        Err(e) => {
            k.release_root(root);
            return Err(e);
        }
    };
    let mut out = cc;
    out.cc_id = id;
    if let Err(e) = k.copyout(out.as_bytes()) {
        if let Some(r) = k.with_model(|m| m.table.abort_create(id)) {
            k.release_root(r);
        }
        return Err(e);
    }
    k.with_model(|m| m.table.activate(id));
    k.log(format_args!(
        "secmodel_cell: created cell id={} name=\"{}\" root=\"{}\" profile={} by euid={}",
        id,
        Escaped(spec.name()),
        Escaped(spec.root()),
        spec.profile,
        who.euid
    ));
    Ok(id)
}

/// `destroy`: new = the id (exactly 4 bytes). No new value EINVAL, not host
/// root EPERM, length EINVAL, id 0 EINVAL, missing ENOENT, not ACTIVE, held
/// or with live or zombie members EBUSY.
pub fn destroy<K: Kernel>(k: &mut K) -> Result<(), Errno> {
    let new_len = k.request().new_len.ok_or(EINVAL)?;
    let who = host_root_only(k)?;
    let id = read_u32(k, new_len)?;
    let root = k.with_procs_and_model(|m, members| m.table.destroy(id, members))?;
    k.release_root(root);
    k.log(format_args!(
        "secmodel_cell: destroyed cell id={} by euid={}",
        id, who.euid
    ));
    Ok(())
}

/// `id`, read: the caller's cell id (host root only, so 0).
/// `id`, write: enter a cell. Not host root EPERM; length EINVAL; process
/// already in another cell EPERM; target missing or not ACTIVE ENOENT;
/// process root is not the cell root EPERM. Writing the current id is a
/// no-op. A hold keeps the cell from being destroyed meanwhile.
pub fn id<K: Kernel>(k: &mut K) -> Result<(), Errno> {
    let who = host_root_only(k)?;
    let Some(new_len) = k.request().new_len else {
        return reply(k, &who.cell.to_ne_bytes());
    };
    let target = read_u32(k, new_len)?;
    let current = k.process_cell();
    if current != CELLID_HOST && current != target {
        return Err(EPERM);
    }
    if current == target {
        return Ok(());
    }
    let root = k.with_model(|m| m.table.hold(target))?;
    let result = if k.process_root_is(root) {
        k.commit_enter(current, target)
    } else {
        Err(EPERM)
    };
    k.with_model(|m| m.table.release(target));
    result
}

/// Bytes of a list of `count` cells; EOVERFLOW if that does not fit.
pub fn list_len(count: usize) -> Result<usize, Errno> {
    count.checked_mul(size_of::<CellInfo>()).ok_or(EOVERFLOW)
}

/// `list`: every ACTIVE cell as [`CellInfo`], newest first. Any new value
/// EPERM; celled caller EPERM; size overflow EOVERFLOW; short buffer ENOMEM.
/// The buffer is filled unlocked from a snapshot, retried if the table's
/// sequence number moved meanwhile.
pub fn list<K: Kernel>(k: &mut K) -> Result<(), Errno> {
    let req = k.request();
    if req.new_len.is_some() {
        return Err(EPERM);
    }
    host_only(k)?;
    loop {
        let (count, seq) = k.with_model(|m| {
            let n = m
                .table
                .entries()
                .filter(|e| e.state == CellState::Active)
                .count();
            (n, m.table.seq())
        });
        let len = list_len(count)?;
        match req.old_cap {
            None => {
                k.set_old_len(len);
                return Ok(());
            }
            Some(cap) if cap < len => {
                k.set_old_len(len);
                return Err(ENOMEM);
            }
            Some(_) => {}
        }
        let mut infos: Vec<CellInfo> = Vec::new();
        infos.try_reserve_exact(count).map_err(|_| ENOMEM)?;
        let same = k.with_model(|m| {
            if m.table.seq() != seq {
                return false;
            }
            let active = m.table.entries().filter(|e| e.state == CellState::Active);
            infos.extend(active.map(|e| e.info()));
            true
        });
        if !same {
            continue;
        }
        infos.sort_unstable_by_key(|i| core::cmp::Reverse(i.ci_id));
        let mut bytes: Vec<u8> = Vec::new();
        bytes.try_reserve_exact(len).map_err(|_| ENOMEM)?;
        for info in &infos {
            bytes.extend_from_slice(info.as_bytes());
        }
        return k.copyout(&bytes);
    }
}

/// `stats`: [`crate::abi::CellStats`]. Any new value EPERM; celled caller
/// EPERM; short buffer ENOMEM.
pub fn stats<K: Kernel>(k: &mut K) -> Result<(), Errno> {
    if k.request().new_len.is_some() {
        return Err(EPERM);
    }
    host_only(k)?;
    let st = k.with_model(|m| m.stats());
    reply(k, st.as_bytes())
}
