//! The policy: one pure function per kauth scope, mapping a caller, an
//! action and its arguments to ALLOW, DENY or DEFER.
//!
//! The rules are flat tables meant to be read top to bottom by an auditor.
//! Nothing here locks, allocates or counts: the [`crate::model`] looks the
//! caller up, calls these functions and accounts for denies.
//!
//! Differences from the original model, on purpose:
//! * a celled credential whose cell is missing or not ACTIVE is denied in
//!   every scope (the original deferred, failing open);
//! * every credential-scope action returns ALLOW, including a NULL
//!   argument (DIAGNOSTIC kernels assert a zero cred-hook result);
//! * a stored profile outside low/medium/high cannot exist: it is an enum,
//!   checked once at create time.
//!
//! Actions and requests are the stable enums of [`crate::kauth`]; the glue
//! maps the kernel's numbers to them.

use crate::abi::{CellId, Profile, CELLID_HOST};
use crate::kauth::{
    af, CredAction, DeviceAction, NetworkAction as NetA, NetworkReq as NetR, ProcessAction as Proc,
    ProcessReq, SystemAction as Sys, SystemReq as SysR,
};

/// A listener's answer. DENY wins over everything in kauth; DEFER leaves
/// the decision to the other security models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    Defer,
}

impl Verdict {
    /// The `KAUTH_RESULT_*` value.
    pub const fn as_kauth(self) -> i32 {
        match self {
            Verdict::Allow => crate::kauth::result::ALLOW,
            Verdict::Deny => crate::kauth::result::DENY,
            Verdict::Defer => crate::kauth::result::DEFER,
        }
    }
}

/// What the cell table says about a credential's cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Cell id 0: not in any cell.
    Host,
    /// In an ACTIVE cell with this profile.
    Active(Profile),
    /// In a cell that is missing, CREATING or DESTROYING: fail closed.
    Stale,
}

/// The credential being authorised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub cell: CellId,
    pub euid: u32,
    pub standing: Standing,
}

impl Caller {
    /// Host root: effective uid 0 outside every cell. The only caller the
    /// model never restricts. Root inside a cell is not host root.
    pub const fn is_host_root(&self) -> bool {
        self.cell == CELLID_HOST && self.euid == 0
    }
}

/// A set of profiles at which a rule denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeniedAt {
    low: bool,
    medium: bool,
    high: bool,
}

/// Denied at every profile.
pub const EVERY_PROFILE: DeniedAt = DeniedAt {
    low: true,
    medium: true,
    high: true,
};
/// Denied at medium and high, deferred at low.
pub const MEDIUM_AND_HIGH: DeniedAt = DeniedAt {
    low: false,
    medium: true,
    high: true,
};
/// Denied at high only.
pub const HIGH_ONLY: DeniedAt = DeniedAt {
    low: false,
    medium: false,
    high: true,
};

impl DeniedAt {
    pub const fn contains(self, p: Profile) -> bool {
        match p {
            Profile::Low => self.low,
            Profile::Medium => self.medium,
            Profile::High => self.high,
        }
    }
}

/// Which requests of an action a rule covers.
#[derive(Clone, Copy, Debug)]
pub enum Requests {
    Any,
    OneOf(&'static [SysR]),
}

impl Requests {
    fn covers(self, req: SysR) -> bool {
        match self {
            Requests::Any => true,
            Requests::OneOf(list) => list.contains(&req),
        }
    }
}

/// One row of a rule table.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub action: Sys,
    pub requests: Requests,
    pub denied_at: DeniedAt,
}

const fn rule(action: Sys, requests: Requests, denied_at: DeniedAt) -> Rule {
    Rule {
        action,
        requests,
        denied_at,
    }
}

/// Does any row of `table` deny (`action`, `req`) at `profile`?
fn table_denies(table: &[Rule], action: Sys, req: SysR, profile: Profile) -> bool {
    table
        .iter()
        .any(|r| r.action == action && r.requests.covers(req) && r.denied_at.contains(profile))
}

// ---------------------------------------------------------------- process

/// Process actions aimed at a target process: confined to the caller's cell.
/// FORK is governed by the cell's process limit instead; every other action
/// is not cell-governed.
pub const PROCESS_CONFINED: [Proc; 15] = [
    Proc::Cansee,
    Proc::Corename,
    Proc::KeventFilter,
    Proc::Ktrace,
    Proc::Nice,
    Proc::Procfs,
    Proc::Ptrace,
    Proc::Rlimit,
    Proc::SchedulerGetaffinity,
    Proc::SchedulerSetaffinity,
    Proc::SchedulerGetparam,
    Proc::SchedulerSetparam,
    Proc::Setid,
    Proc::Signal,
    Proc::Stopflag,
];

/// The arguments of a process decision the policy looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcArgs {
    /// The target process's cell; `None` when the target or its credential
    /// is NULL.
    pub target: Option<CellId>,
    /// FORK: processes (live and zombie) in the caller's cell now; counted
    /// by the glue only when the cell has a process limit.
    pub members: Option<u64>,
    /// RLIMIT with RLIMIT_SET of RLIMIT_AS: the new hard limit.
    pub new_as_max: Option<u64>,
}

/// What the caller's cell bounds, from its create request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CellBounds {
    /// Most processes, live and zombie.
    pub maxproc: Option<u32>,
    /// Ceiling of every member's hard RLIMIT_AS, bytes.
    pub rlimit_as: Option<u64>,
}

/// PROCESS scope.
///
/// | caller                 | action     | target / args          | result |
/// |------------------------|------------|------------------------|--------|
/// | host root              | any        | any                    | DEFER  |
/// | stale cell             | any        | any                    | DENY   |
/// | cell with a limit      | FORK       | members >= maxproc     | DENY   |
/// | anyone                 | unconfined | any                    | DEFER  |
/// | anyone                 | confined   | NULL                   | DEFER  |
/// | anyone                 | confined   | other cell/host        | DENY   |
/// | cell with an AS ceiling| RLIMIT set | same cell, AS above it | DENY   |
/// | anyone                 | confined   | same cell              | DEFER  |
pub fn process(
    caller: &Caller,
    action: Proc,
    req: ProcessReq,
    args: ProcArgs,
    bounds: CellBounds,
) -> Verdict {
    if caller.is_host_root() {
        return Verdict::Defer;
    }
    if caller.standing == Standing::Stale {
        return Verdict::Deny;
    }
    let celled = caller.cell != CELLID_HOST;
    if action == Proc::Fork {
        return match (bounds.maxproc, args.members) {
            (Some(limit), Some(n)) if celled && n >= u64::from(limit) => Verdict::Deny,
            _ => Verdict::Defer,
        };
    }
    if !PROCESS_CONFINED.contains(&action) {
        return Verdict::Defer;
    }
    match args.target {
        None => Verdict::Defer,
        Some(t) if t != caller.cell => Verdict::Deny,
        Some(_) => match (action, req, args.new_as_max, bounds.rlimit_as) {
            (Proc::Rlimit, ProcessReq::RlimitSet, Some(new), Some(ceiling))
                if celled && new > ceiling =>
            {
                Verdict::Deny
            }
            _ => Verdict::Defer,
        },
    }
}

// ---------------------------------------------------------------- cred

/// What the credential listener must do to the credential data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredEffect {
    /// KAUTH_CRED_INIT: the new credential starts on the host (id 0).
    SetHost,
    /// KAUTH_CRED_COPY: the destination (arg0) gets the source's id.
    CopyToDestination,
    /// Nothing to do (FORK shares the credential; FREE and CHROOT keep it).
    None,
}

/// CRED scope: always ALLOW (see the module doc), plus the effect.
pub fn cred(action: CredAction) -> (Verdict, CredEffect) {
    let effect = match action {
        CredAction::Init => CredEffect::SetHost,
        CredAction::Copy => CredEffect::CopyToDestination,
        _ => CredEffect::None,
    };
    (Verdict::Allow, effect)
}

// ---------------------------------------------------------------- system

/// SYSTEM scope rules for cell credentials. Anything not listed defers.
pub const SYSTEM_RULES: &[Rule] = &[
    // Private sysctls (kern.msgbuf and friends): never from a cell.
    rule(
        Sys::Sysctl,
        Requests::OneOf(&[SysR::SysctlPrvt]),
        EVERY_PROFILE,
    ),
    // Host administration.
    rule(Sys::Module, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Mknod, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Filehandle, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Chroot, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Reboot, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Swapctl, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Accounting, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Cpu, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Pset, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Time, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Semaphore, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Mqueue, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Devmapper, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Intr, Requests::Any, MEDIUM_AND_HIGH),
    rule(Sys::Kernaddr, Requests::Any, MEDIUM_AND_HIGH),
    // Mounts that change the namespace (MOUNT_GET defers).
    rule(
        Sys::Mount,
        Requests::OneOf(&[
            SysR::MountDevice,
            SysR::MountNew,
            SysR::MountUnmount,
            SysR::MountUpdate,
            SysR::MountUmap,
        ]),
        MEDIUM_AND_HIGH,
    ),
    // sysctl writes and tree changes (SYSCTL_DESC defers).
    rule(
        Sys::Sysctl,
        Requests::OneOf(&[SysR::SysctlAdd, SysR::SysctlDelete, SysR::SysctlModify]),
        MEDIUM_AND_HIGH,
    ),
    // Privileged SysV IPC (bypass, shm lock/unlock, msgq oversize).
    rule(Sys::Sysvipc, Requests::Any, HIGH_ONLY),
];

/// SYSTEM scope: host credentials defer, stale cells are denied, active
/// cells follow [`SYSTEM_RULES`].
pub fn system(caller: &Caller, action: Sys, req: SysR) -> Verdict {
    match caller.standing {
        Standing::Host => Verdict::Defer,
        Standing::Stale => Verdict::Deny,
        Standing::Active(p) if table_denies(SYSTEM_RULES, action, req, p) => Verdict::Deny,
        Standing::Active(_) => Verdict::Defer,
    }
}

// ---------------------------------------------------------------- network

/// Socket requests that reach host-global state: denied at medium/high.
pub const SOCKET_HOST_GLOBAL: [NetR; 3] =
    [NetR::SocketRawsock, NetR::SocketSetpriv, NetR::SocketDrop];

/// Socket domains whose opening is denied at medium/high.
pub const ROUTING_DOMAINS: [i32; 2] = [af::ROUTE, af::OROUTE];

/// Bind requests subject to port reservations.
pub const BIND_CHECKED: [NetR; 2] = [NetR::BindPort, NetR::BindPrivport];

/// The arguments of a network decision the policy looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetArgs {
    /// For BIND: the port (host order) of an AF_INET/AF_INET6 sockaddr.
    pub bind_port: Option<u16>,
    /// For BIND: the socket has SO_REUSEPORT set.
    pub reuseport: bool,
    /// For SOCKET/SOCKET_OPEN: the domain (arg1).
    pub domain: Option<i32>,
}

/// NETWORK scope.
///
/// 1. host root: DEFER (bypasses reservations);
/// 2. stale cell: DENY;
/// 3. BIND by a cell of a socket with SO_REUSEPORT: DENY unless the port is
///    one the cell reserved, at every profile (a cell never shares a port
///    with a socket outside it; NetBSD lets any uid 0 socket join);
/// 4. BIND with BIND_PORT/BIND_PRIVPORT and a non-zero port: DENY if another
///    cell reserved the port (host non-root owns no reservation), else DEFER,
///    at every profile (a reservation grants no privilege);
/// 5. other BIND, host credentials, or a low cell: DEFER;
/// 6. medium/high cell, SOCKET: DENY SOCKET_OPEN of a routing domain and the
///    [`SOCKET_HOST_GLOBAL`] requests, DEFER the rest;
/// 7. medium/high cell, every other action (interfaces, routes, firewall,
///    ALTQ, IPsec, IPv6 options, NFS, SMB, ...): DENY.
pub fn network(
    caller: &Caller,
    action: NetA,
    req: NetR,
    args: NetArgs,
    port_owner: impl Fn(u16) -> Option<CellId>,
) -> Verdict {
    if caller.is_host_root() {
        return Verdict::Defer;
    }
    let profile = match caller.standing {
        Standing::Stale => return Verdict::Deny,
        Standing::Host => None,
        Standing::Active(p) => Some(p),
    };
    if action == NetA::Bind {
        let owner = args.bind_port.filter(|&p| p != 0).and_then(&port_owner);
        if args.reuseport && profile.is_some() && owner != Some(caller.cell) {
            return Verdict::Deny;
        }
        return match owner {
            Some(o) if o != caller.cell && BIND_CHECKED.contains(&req) => Verdict::Deny,
            _ => Verdict::Defer,
        };
    }
    match profile {
        Some(p) if MEDIUM_AND_HIGH.contains(p) => {}
        _ => return Verdict::Defer,
    }
    if action != NetA::Socket {
        return Verdict::Deny;
    }
    let routing = args.domain.is_some_and(|d| ROUTING_DOMAINS.contains(&d));
    if (req == NetR::SocketOpen && routing) || SOCKET_HOST_GLOBAL.contains(&req) {
        Verdict::Deny
    } else {
        Verdict::Defer
    }
}

// ------------------------------------------------------- machdep, device

/// MACHDEP scope: no per-cell namespace exists for it, so a medium/high
/// cell is denied every action.
pub fn machdep(caller: &Caller) -> Verdict {
    match caller.standing {
        Standing::Host => Verdict::Defer,
        Standing::Stale => Verdict::Deny,
        Standing::Active(p) if MEDIUM_AND_HIGH.contains(p) => Verdict::Deny,
        Standing::Active(_) => Verdict::Defer,
    }
}

/// DEVICE scope: as [`machdep`], and TTY_STI (pushing input into a
/// terminal, TIOCSTI) is denied to cells at every profile: a cell process
/// holding a descriptor of a host terminal could otherwise type commands
/// into the host shell.
pub fn device(caller: &Caller, action: DeviceAction) -> Verdict {
    match (caller.standing, action) {
        (Standing::Active(_), DeviceAction::TtySti) => Verdict::Deny,
        _ => machdep(caller),
    }
}
