//! The security model's state: the cell table, the deny counters and the
//! deny-log limiter, with one entry point per kauth scope.
//!
//! Each entry point looks the caller's cell up in O(1), asks the pure
//! [`crate::policy`] and counts a DENY per scope, globally and for the
//! caller's cell. The kernel glue calls these with the model lock held.

use crate::abi::{CellId, CellStats, DenyScope, CELLID_HOST, CELL_ABI_VERSION, CELL_DENY_SCOPES};
use crate::kauth::{DeviceAction, NetworkAction, NetworkReq, ProcessAction, ProcessReq};
use crate::kauth::{SystemAction, SystemReq};
use crate::policy::{self, Caller, CellBounds, NetArgs, ProcArgs, Standing, Verdict};
use crate::table::CellTable;
use crate::telemetry::{DenyLog, ProcSample};

/// The identity of a credential as the model needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The cell id stored in the credential (0 on the host).
    pub cell: CellId,
    /// Effective uid.
    pub euid: u32,
}

impl Subject {
    pub const fn is_host_root(&self) -> bool {
        self.cell == CELLID_HOST && self.euid == 0
    }
}

/// Everything the module keeps, behind one lock in the kernel.
pub struct Model<R> {
    pub table: CellTable<R>,
    /// Denies since load, per scope, of every caller.
    deny: [u64; CELL_DENY_SCOPES],
    pub log: DenyLog,
}

impl<R: Copy> Default for Model<R> {
    fn default() -> Self {
        Model::with_table(CellTable::default())
    }
}

impl<R: Copy> Model<R> {
    pub fn with_table(table: CellTable<R>) -> Self {
        Model {
            table,
            deny: [0; CELL_DENY_SCOPES],
            log: DenyLog::default(),
        }
    }

    /// The caller's standing: host, an ACTIVE cell's profile, or stale.
    pub fn standing(&self, cell: CellId) -> Standing {
        if cell == CELLID_HOST {
            return Standing::Host;
        }
        match self.table.active(cell) {
            Some(e) => Standing::Active(e.spec.profile),
            None => Standing::Stale,
        }
    }

    pub fn caller(&self, s: Subject) -> Caller {
        Caller {
            cell: s.cell,
            euid: s.euid,
            standing: self.standing(s.cell),
        }
    }

    fn count(&mut self, caller: &Caller, scope: DenyScope, v: Verdict) -> Verdict {
        if v == Verdict::Deny {
            self.deny[scope.index()] += 1;
            if caller.cell != CELLID_HOST {
                if let Some(e) = self.table.get_mut(caller.cell) {
                    e.deny[scope.index()] += 1;
                }
            }
        }
        v
    }

    /// What the subject's cell bounds (nothing on the host or when stale).
    pub fn bounds(&self, cell: CellId) -> CellBounds {
        match self.table.active(cell) {
            Some(e) if cell != CELLID_HOST => e.spec.bounds(),
            _ => CellBounds::default(),
        }
    }

    /// PROCESS scope. A FORK denied by the process limit is also counted in
    /// the cell's `fork_denied`.
    pub fn process(
        &mut self,
        s: Subject,
        action: ProcessAction,
        req: ProcessReq,
        args: ProcArgs,
    ) -> Verdict {
        let c = self.caller(s);
        let v = policy::process(&c, action, req, args, self.bounds(s.cell));
        if v == Verdict::Deny && action == ProcessAction::Fork {
            if let Some(e) = self.table.get_mut(s.cell).filter(|_| s.cell != CELLID_HOST) {
                e.fork_denied += 1;
            }
        }
        self.count(&c, DenyScope::Process, v)
    }

    /// SYSTEM scope.
    pub fn system(&mut self, s: Subject, action: SystemAction, req: SystemReq) -> Verdict {
        let c = self.caller(s);
        let v = policy::system(&c, action, req);
        self.count(&c, DenyScope::System, v)
    }

    /// NETWORK scope.
    pub fn network(
        &mut self,
        s: Subject,
        action: NetworkAction,
        req: NetworkReq,
        args: NetArgs,
    ) -> Verdict {
        let c = self.caller(s);
        let table = &self.table;
        let v = policy::network(&c, action, req, args, |p| table.port_owner(p));
        self.count(&c, DenyScope::Network, v)
    }

    /// MACHDEP scope.
    pub fn machdep(&mut self, s: Subject) -> Verdict {
        let c = self.caller(s);
        let v = policy::machdep(&c);
        self.count(&c, DenyScope::Machdep, v)
    }

    /// DEVICE scope.
    pub fn device(&mut self, s: Subject, action: DeviceAction) -> Verdict {
        let c = self.caller(s);
        let v = policy::device(&c, action);
        self.count(&c, DenyScope::Device, v)
    }

    /// Denies since load in `scope`.
    pub fn denies(&self, scope: DenyScope) -> u64 {
        self.deny[scope.index()]
    }

    /// The value of the `stats` node.
    pub fn stats(&self) -> CellStats {
        CellStats {
            cs_abi_version: CELL_ABI_VERSION,
            cs_ncells: u32::try_from(self.table.len()).unwrap_or(u32::MAX),
            cs_deny: self.deny,
            cs_log_suppressed: self.log.suppressed(),
            cs_seq: self.table.seq(),
            cs_next_id: self.table.next_id(),
            cs_pad0: 0,
        }
    }

    /// One sampler pass. `feed` is handed an accounting function and calls
    /// it once per process, host processes included (they are skipped).
    pub fn sample(&mut self, feed: impl FnOnce(&mut dyn FnMut(CellId, ProcSample))) {
        for e in self.table.entries_mut() {
            e.telemetry.begin_pass();
        }
        let table = &mut self.table;
        feed(&mut |cell, p| {
            if cell == CELLID_HOST {
                return;
            }
            if let Some(e) = table.get_mut(cell) {
                e.telemetry.account(p);
            }
        });
        for e in self.table.entries_mut() {
            e.telemetry.end_pass();
        }
    }
}
