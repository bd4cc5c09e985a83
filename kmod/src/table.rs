//! The cell table: ids, names, roots, ports, lifecycle, holds and the
//! sequence number of list snapshots.
//!
//! Pure data structure; the kernel glue holds its lock around every call and
//! supplies the root directory handle (`R`, a referenced vnode in the
//! kernel, anything `Copy` in tests).

use crate::abi::{
    self, CellCreate, CellId, CellInfo, Profile, CELLID_HOST, CELL_CREATE_ALL, CELL_CREATE_MAXPROC,
    CELL_CREATE_PORTS, CELL_CREATE_PROFILE, CELL_CREATE_RLIMIT_AS, CELL_CREATE_RLIMIT_CORE,
    CELL_CREATE_RLIMIT_NOFILE, CELL_DENY_SCOPES, CELL_NAME_BUF, CELL_PORTS_MAX,
    CELL_RLIMIT_INFINITY, CELL_ROOT_BUF,
};
use crate::errno::{Errno, EBUSY, EEXIST, EINVAL, ENOENT, ENOMEM, EOVERFLOW};
use crate::idmap::IdMap;
use crate::policy::CellBounds;
use crate::ports::PortMap;
use crate::telemetry::CellTelemetry;
use alloc::vec::Vec;

/// Lifecycle of a cell. Transitions: CREATING → ACTIVE (publish) or removed
/// (abort); ACTIVE → DESTROYING → removed, or back to ACTIVE when busy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellState {
    /// Inserted, not yet published: invisible to list, enter and policy, but
    /// its name and ports already count for uniqueness.
    Creating,
    Active,
    /// Being removed; transient, under the table lock.
    Destroying,
}

/// A create request that passed every check that needs no lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateSpec {
    pub flags: u32,
    pub profile: Profile,
    pub ports: [u16; CELL_PORTS_MAX],
    pub nports: usize,
    pub rlimits: [u64; 3],
    /// The process limit, live and zombie members.
    pub maxproc: Option<u32>,
    pub name: [u8; CELL_NAME_BUF],
    pub root: [u8; CELL_ROOT_BUF],
}

impl CreateSpec {
    /// Validates a [`CellCreate`] as the kernel receives it. Every failure
    /// is EINVAL: unknown flags; a port count or list without its flag, out
    /// of range, with 0 or a duplicate; an rlimit value without its flag;
    /// a profile outside 0..=2; a process limit of 0 with its flag or any
    /// without; a name or root that is unterminated, empty, badly formed;
    /// non-zero padding (the original ignored it).
    pub fn from_request(cc: &CellCreate) -> Result<CreateSpec, Errno> {
        let flags = cc.cc_flags;
        if flags & !CELL_CREATE_ALL != 0 || cc.cc_pad0 != 0 || cc.cc_pad1 != 0 {
            return Err(EINVAL);
        }
        let maxproc = match (flags & CELL_CREATE_MAXPROC != 0, cc.cc_maxproc) {
            (true, 0) => return Err(EINVAL),
            (true, n) => Some(n),
            (false, 0) => None,
            (false, _) => return Err(EINVAL),
        };
        let nports = usize::from(cc.cc_nports);
        if flags & CELL_CREATE_PORTS == 0 {
            if nports != 0 {
                return Err(EINVAL);
            }
        } else if nports == 0 || abi::check_ports(cc.cc_ports.get(..nports).ok_or(EINVAL)?).is_err()
        {
            return Err(EINVAL);
        }
        let rlimit_flags = [
            (cc.cc_rlimit_nofile, CELL_CREATE_RLIMIT_NOFILE),
            (cc.cc_rlimit_as, CELL_CREATE_RLIMIT_AS),
            (cc.cc_rlimit_core, CELL_CREATE_RLIMIT_CORE),
        ];
        if rlimit_flags.iter().any(|&(v, f)| v != 0 && flags & f == 0) {
            return Err(EINVAL);
        }
        let profile = if flags & CELL_CREATE_PROFILE != 0 {
            Profile::from_u32(cc.cc_profile).ok_or(EINVAL)?
        } else {
            Profile::High
        };
        let name = abi::field_bytes(&cc.cc_name).map_err(|_| EINVAL)?;
        abi::check_cell_name(name).map_err(|_| EINVAL)?;
        let root = abi::field_bytes(&cc.cc_root).map_err(|_| EINVAL)?;
        abi::check_cell_root(root).map_err(|_| EINVAL)?;
        let mut spec = CreateSpec {
            flags,
            profile,
            ports: [0; CELL_PORTS_MAX],
            nports,
            rlimits: rlimit_flags.map(|(v, _)| v),
            maxproc,
            name: [0; CELL_NAME_BUF],
            root: [0; CELL_ROOT_BUF],
        };
        spec.ports[..nports].copy_from_slice(&cc.cc_ports[..nports]);
        spec.name[..name.len()].copy_from_slice(name);
        spec.root[..root.len()].copy_from_slice(root);
        Ok(spec)
    }

    pub fn name(&self) -> &[u8] {
        abi::field_bytes(&self.name).unwrap_or(&[])
    }

    pub fn root(&self) -> &[u8] {
        abi::field_bytes(&self.root).unwrap_or(&[])
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports[..self.nports]
    }

    /// What the policy bounds for this cell: the process limit, and the
    /// stored RLIMIT_AS as the ceiling of every member's hard limit.
    pub fn bounds(&self) -> CellBounds {
        let as_set = self.flags & CELL_CREATE_RLIMIT_AS != 0;
        CellBounds {
            maxproc: self.maxproc,
            rlimit_as: (as_set && self.rlimits[1] != CELL_RLIMIT_INFINITY)
                .then_some(self.rlimits[1]),
        }
    }
}

/// One cell.
#[derive(Clone, Debug)]
pub struct CellEntry<R> {
    pub id: CellId,
    pub spec: CreateSpec,
    /// The resolved root directory, kept for the cell's lifetime.
    pub root: R,
    pub state: CellState,
    /// Enters in progress; destroy waits for 0.
    pub holds: u32,
    pub created_ns: u64,
    /// Denies of this cell's credentials, per scope.
    pub deny: [u64; CELL_DENY_SCOPES],
    /// Forks denied by the process limit.
    pub fork_denied: u64,
    pub telemetry: CellTelemetry,
}

impl<R> CellEntry<R> {
    /// The list element for this cell.
    pub fn info(&self) -> CellInfo {
        let s = &self.spec;
        let t = &self.telemetry;
        let mut ports = [0; CELL_PORTS_MAX];
        ports[..s.nports].copy_from_slice(s.ports());
        CellInfo {
            ci_id: self.id,
            ci_create_flags: s.flags,
            ci_refcount: t.refs,
            ci_name: s.name,
            ci_root: s.root,
            ci_created_ns: self.created_ns,
            ci_proc_current: t.procs,
            ci_memory_current: t.memory,
            ci_cpu_ticks_1s: t.cpu_1s,
            ci_cpu_ticks_10s: t.cpu_10s,
            ci_rlimit_nofile: s.rlimits[0],
            ci_rlimit_as: s.rlimits[1],
            ci_rlimit_core: s.rlimits[2],
            ci_profile: s.profile.as_u32(),
            // At most 32: checked at create.
            ci_nports: s.nports as u16,
            ci_pad0: 0,
            ci_ports: ports,
            ci_deny: self.deny,
            ci_maxproc: s.maxproc.unwrap_or(0),
            ci_pad1: 0,
            ci_fork_denied: self.fork_denied,
        }
    }
}

/// FNV-1a hash of a name, the key of the name index.
fn name_hash(name: &[u8]) -> u32 {
    name.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// All cells.
pub struct CellTable<R> {
    cells: IdMap<CellEntry<R>>,
    /// Name hash → ids of the cells with that hash (almost always one), so
    /// the uniqueness check of create does not grow with the table either.
    names: IdMap<Vec<CellId>>,
    ports: PortMap,
    /// Next id to hand out; 0 once the id space is used up.
    next_id: CellId,
    /// Bumped on every insert, state change and removal.
    seq: u64,
}

impl<R> Default for CellTable<R> {
    fn default() -> Self {
        CellTable {
            cells: IdMap::default(),
            names: IdMap::default(),
            ports: PortMap::default(),
            next_id: 1,
            seq: 0,
        }
    }
}

impl<R: Copy> CellTable<R> {
    /// A table whose next id is `next` (tests of id exhaustion).
    pub fn with_next_id(next: CellId) -> Self {
        CellTable {
            next_id: next,
            ..CellTable::default()
        }
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn next_id(&self) -> CellId {
        self.next_id
    }

    pub fn get(&self, id: CellId) -> Option<&CellEntry<R>> {
        self.cells.get(id)
    }

    pub fn get_mut(&mut self, id: CellId) -> Option<&mut CellEntry<R>> {
        self.cells.get_mut(id)
    }

    /// The ACTIVE entry `id`, if there is one (O(1)).
    pub fn active(&self, id: CellId) -> Option<&CellEntry<R>> {
        self.cells.get(id).filter(|e| e.state == CellState::Active)
    }

    /// The cell owning `port` (O(1)).
    pub fn port_owner(&self, port: u16) -> Option<CellId> {
        self.ports.owner(port)
    }

    pub fn entries(&self) -> impl Iterator<Item = &CellEntry<R>> {
        self.cells.values()
    }

    pub fn entries_mut(&mut self) -> impl Iterator<Item = &mut CellEntry<R>> {
        self.cells.values_mut()
    }

    /// Phase one of create: inserts a CREATING entry. EEXIST for a name or
    /// port in use by an entry in any state, EOVERFLOW when the ids are used
    /// up, ENOMEM when memory is short. Nothing changes on error.
    pub fn insert_creating(
        &mut self,
        spec: &CreateSpec,
        root: R,
        now_ns: u64,
    ) -> Result<CellId, Errno> {
        let hash = name_hash(spec.name());
        if self.find_name(hash, spec.name()).is_some() {
            return Err(EEXIST);
        }
        if spec.ports().iter().any(|&p| self.ports.owner(p).is_some()) {
            return Err(EEXIST);
        }
        let id = self.next_id;
        if id == CELLID_HOST {
            return Err(EOVERFLOW);
        }
        // Take every allocation before changing anything.
        self.cells.reserve_one()?;
        match self.names.get_mut(hash) {
            Some(ids) => ids.try_reserve(1).map_err(|_| ENOMEM)?,
            None => self.names.reserve_one()?,
        }
        let mut fresh = Vec::new();
        if self.names.get(hash).is_none() {
            fresh.try_reserve_exact(1).map_err(|_| ENOMEM)?;
        }
        self.ports.reserve(id, spec.ports())?;
        let entry = CellEntry {
            id,
            spec: *spec,
            root,
            state: CellState::Creating,
            holds: 0,
            created_ns: now_ns,
            deny: [0; CELL_DENY_SCOPES],
            fork_denied: 0,
            telemetry: CellTelemetry::default(),
        };
        if let Err(e) = self.cells.insert(id, entry) {
            self.ports.release(spec.ports());
            return Err(e);
        }
        match self.names.get_mut(hash) {
            Some(ids) => ids.push(id),
            None => {
                fresh.push(id);
                // Cannot fail: reserve_one succeeded above.
                let _ = self.names.insert(hash, fresh);
            }
        }
        // Wraps to 0 after u32::MAX: the next create gets EOVERFLOW.
        self.next_id = id.wrapping_add(1);
        self.seq += 1;
        Ok(id)
    }

    /// Phase two of create: publishes a CREATING entry.
    pub fn activate(&mut self, id: CellId) {
        if let Some(e) = self.cells.get_mut(id) {
            if e.state == CellState::Creating {
                e.state = CellState::Active;
                self.seq += 1;
            }
        }
    }

    /// Rolls back a CREATING entry (the reply could not be copied out).
    /// Returns its root so the caller can release it outside the lock.
    pub fn abort_create(&mut self, id: CellId) -> Option<R> {
        if self.cells.get(id)?.state != CellState::Creating {
            return None;
        }
        self.remove(id)
    }

    /// The cell named `name` (any state), in O(1).
    pub fn by_name(&self, name: &[u8]) -> Option<CellId> {
        self.find_name(name_hash(name), name)
    }

    fn find_name(&self, hash: u32, name: &[u8]) -> Option<CellId> {
        let ids = self.names.get(hash)?;
        ids.iter()
            .copied()
            .find(|&id| self.cells.get(id).is_some_and(|e| e.spec.name() == name))
    }

    fn remove(&mut self, id: CellId) -> Option<R> {
        let e = self.cells.remove(id)?;
        let hash = name_hash(e.spec.name());
        if let Some(ids) = self.names.get_mut(hash) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                self.names.remove(hash);
            }
        }
        self.ports.release(e.spec.ports());
        self.seq += 1;
        Some(e.root)
    }

    /// Takes a hold on an ACTIVE cell (ENOENT otherwise) and returns its root.
    pub fn hold(&mut self, id: CellId) -> Result<R, Errno> {
        match self.cells.get_mut(id) {
            Some(e) if e.state == CellState::Active => {
                e.holds += 1;
                Ok(e.root)
            }
            _ => Err(ENOENT),
        }
    }

    /// Releases a hold taken by [`CellTable::hold`].
    pub fn release(&mut self, id: CellId) {
        if let Some(e) = self.cells.get_mut(id) {
            debug_assert!(e.holds > 0);
            e.holds = e.holds.saturating_sub(1);
        }
    }

    /// Destroys an ACTIVE cell with no holds and no members. `has_members`
    /// is asked with the entry DESTROYING (the kernel answers it by walking
    /// the live and zombie process lists under `proc_lock`). Returns the root
    /// for release outside the lock.
    ///
    /// EINVAL for id 0, ENOENT when missing, EBUSY when not ACTIVE, held or
    /// with members (the entry is then ACTIVE again).
    pub fn destroy(
        &mut self,
        id: CellId,
        has_members: impl FnOnce(CellId) -> bool,
    ) -> Result<R, Errno> {
        if id == CELLID_HOST {
            return Err(EINVAL);
        }
        let e = self.cells.get_mut(id).ok_or(ENOENT)?;
        if e.state != CellState::Active {
            return Err(EBUSY);
        }
        e.state = CellState::Destroying;
        if e.holds > 0 || has_members(id) {
            if let Some(e) = self.cells.get_mut(id) {
                e.state = CellState::Active;
            }
            return Err(EBUSY);
        }
        self.remove(id).ok_or(ENOENT)
    }

    /// Removes every entry (module unload after a failed init); yields roots.
    pub fn drain(&mut self, mut release: impl FnMut(R)) {
        let ids: Vec<CellId> = self.cells.values().map(|e| e.id).collect();
        for id in ids {
            if let Some(r) = self.remove(id) {
                release(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> CreateSpec {
        CreateSpec::from_request(&CellCreate::new(name, "/r").unwrap()).unwrap()
    }

    #[test]
    fn name_index_follows_inserts_and_removals() {
        let mut t: CellTable<u8> = CellTable::default();
        for i in 0..300 {
            let id = t
                .insert_creating(&spec(&alloc::format!("n{i}")), 0, 0)
                .unwrap();
            t.activate(id);
        }
        assert_eq!(t.by_name(b"n0"), Some(1));
        assert_eq!(t.by_name(b"n299"), Some(300));
        assert_eq!(t.by_name(b"n300"), None);
        t.destroy(5, |_| false).unwrap();
        assert_eq!(t.by_name(b"n4"), None);
        assert_eq!(t.insert_creating(&spec("n4"), 0, 0), Ok(301));
        assert_eq!(t.insert_creating(&spec("n7"), 0, 0), Err(EEXIST));
        t.drain(|_| {});
        assert!(t.is_empty());
        assert_eq!(t.by_name(b"n7"), None);
    }

    #[test]
    fn hash_collisions_keep_names_apart() {
        let mut t: CellTable<u8> = CellTable::default();
        let a = t.insert_creating(&spec("a"), 0, 0).unwrap();
        // Simulate a collision: file "b" under the hash of "a" as well.
        let b = t.insert_creating(&spec("b"), 0, 0).unwrap();
        t.names.get_mut(name_hash(b"a")).unwrap().push(b);
        assert_eq!(t.by_name(b"a"), Some(a));
        assert_eq!(t.by_name(b"b"), Some(b));
        t.abort_create(a);
        assert_eq!(t.by_name(b"a"), None);
        assert_eq!(t.by_name(b"b"), Some(b));
    }
}
