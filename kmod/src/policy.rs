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

use crate::abi::{CellId, Profile, CELLID_HOST};
use crate::kauth::{af, network as net, process as proc_, system as sys, Action};

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
    OneOf(&'static [u64]),
}

impl Requests {
    fn covers(self, req: u64) -> bool {
        match self {
            Requests::Any => true,
            Requests::OneOf(list) => list.contains(&req),
        }
    }
}

/// One row of a rule table.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub action: Action,
    pub requests: Requests,
    pub denied_at: DeniedAt,
}

const fn rule(action: Action, requests: Requests, denied_at: DeniedAt) -> Rule {
    Rule {
        action,
        requests,
        denied_at,
    }
}

/// Does any row of `table` deny (`action`, `req`) at `profile`?
fn table_denies(table: &[Rule], action: Action, req: u64, profile: Profile) -> bool {
    table
        .iter()
        .any(|r| r.action == action && r.requests.covers(req) && r.denied_at.contains(profile))
}

// ---------------------------------------------------------------- process

/// Process actions aimed at a target process: confined to the caller's cell.
/// Every other process action (FORK, ...) is not cell-governed.
pub const PROCESS_CONFINED: [Action; 15] = [
    proc_::CANSEE,
    proc_::CORENAME,
    proc_::KEVENT_FILTER,
    proc_::KTRACE,
    proc_::NICE,
    proc_::PROCFS,
    proc_::PTRACE,
    proc_::RLIMIT,
    proc_::SCHEDULER_GETAFFINITY,
    proc_::SCHEDULER_SETAFFINITY,
    proc_::SCHEDULER_GETPARAM,
    proc_::SCHEDULER_SETPARAM,
    proc_::SETID,
    proc_::SIGNAL,
    proc_::STOPFLAG,
];

/// PROCESS scope. `target` is the target process's cell, `None` when the
/// target or its credential is NULL.
///
/// | caller                 | action     | target        | result |
/// |------------------------|------------|---------------|--------|
/// | host root              | any        | any           | DEFER  |
/// | stale cell             | any        | any           | DENY   |
/// | anyone                 | unconfined | any           | DEFER  |
/// | anyone                 | confined   | NULL          | DEFER  |
/// | anyone                 | confined   | same cell     | DEFER  |
/// | anyone                 | confined   | other cell/host | DENY |
pub fn process(caller: &Caller, action: Action, target: Option<CellId>) -> Verdict {
    if caller.is_host_root() {
        return Verdict::Defer;
    }
    if caller.standing == Standing::Stale {
        return Verdict::Deny;
    }
    if !PROCESS_CONFINED.contains(&action) {
        return Verdict::Defer;
    }
    match target {
        None => Verdict::Defer,
        Some(t) if t == caller.cell => Verdict::Defer,
        Some(_) => Verdict::Deny,
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
pub fn cred(action: Action) -> (Verdict, CredEffect) {
    use crate::kauth::cred::{COPY, INIT};
    let effect = match action {
        INIT => CredEffect::SetHost,
        COPY => CredEffect::CopyToDestination,
        _ => CredEffect::None,
    };
    (Verdict::Allow, effect)
}

// ---------------------------------------------------------------- system

/// SYSTEM scope rules for cell credentials. Anything not listed defers.
pub const SYSTEM_RULES: &[Rule] = &[
    // Private sysctls (kern.msgbuf and friends): never from a cell.
    rule(
        sys::SYSCTL,
        Requests::OneOf(&[sys::req::SYSCTL_PRVT]),
        EVERY_PROFILE,
    ),
    // Host administration.
    rule(sys::MODULE, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::MKNOD, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::FILEHANDLE, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::CHROOT, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::REBOOT, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::SWAPCTL, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::ACCOUNTING, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::CPU, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::PSET, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::TIME, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::SEMAPHORE, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::MQUEUE, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::DEVMAPPER, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::INTR, Requests::Any, MEDIUM_AND_HIGH),
    rule(sys::KERNADDR, Requests::Any, MEDIUM_AND_HIGH),
    // Mounts that change the namespace (MOUNT_GET defers).
    rule(
        sys::MOUNT,
        Requests::OneOf(&[
            sys::req::MOUNT_DEVICE,
            sys::req::MOUNT_NEW,
            sys::req::MOUNT_UNMOUNT,
            sys::req::MOUNT_UPDATE,
            sys::req::MOUNT_UMAP,
        ]),
        MEDIUM_AND_HIGH,
    ),
    // sysctl writes and tree changes (SYSCTL_DESC defers).
    rule(
        sys::SYSCTL,
        Requests::OneOf(&[
            sys::req::SYSCTL_ADD,
            sys::req::SYSCTL_DELETE,
            sys::req::SYSCTL_MODIFY,
        ]),
        MEDIUM_AND_HIGH,
    ),
    // Privileged SysV IPC (bypass, shm lock/unlock, msgq oversize).
    rule(sys::SYSVIPC, Requests::Any, HIGH_ONLY),
];

/// SYSTEM scope: host credentials defer, stale cells are denied, active
/// cells follow [`SYSTEM_RULES`].
pub fn system(caller: &Caller, action: Action, req: u64) -> Verdict {
    match caller.standing {
        Standing::Host => Verdict::Defer,
        Standing::Stale => Verdict::Deny,
        Standing::Active(p) if table_denies(SYSTEM_RULES, action, req, p) => Verdict::Deny,
        Standing::Active(_) => Verdict::Defer,
    }
}

// ---------------------------------------------------------------- network

/// Socket requests that reach host-global state: denied at medium/high.
pub const SOCKET_HOST_GLOBAL: [u64; 3] = [
    net::req::SOCKET_RAWSOCK,
    net::req::SOCKET_SETPRIV,
    net::req::SOCKET_DROP,
];

/// Socket domains whose opening is denied at medium/high.
pub const ROUTING_DOMAINS: [i32; 2] = [af::ROUTE, af::OROUTE];

/// Bind requests subject to port reservations.
pub const BIND_CHECKED: [u64; 2] = [net::req::BIND_PORT, net::req::BIND_PRIVPORT];

/// The arguments of a network decision the policy looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetArgs {
    /// For BIND: the port (host order) of an AF_INET/AF_INET6 sockaddr.
    pub bind_port: Option<u16>,
    /// For SOCKET/SOCKET_OPEN: the domain (arg1).
    pub domain: Option<i32>,
}

/// NETWORK scope.
///
/// 1. host root: DEFER (bypasses reservations);
/// 2. stale cell: DENY;
/// 3. BIND with BIND_PORT/BIND_PRIVPORT and a non-zero port: DENY if another
///    cell reserved the port (host non-root owns no reservation), else DEFER,
///    at every profile (a reservation grants no privilege);
/// 4. other BIND, host credentials, or a low cell: DEFER;
/// 5. medium/high cell, SOCKET: DENY SOCKET_OPEN of a routing domain and the
///    [`SOCKET_HOST_GLOBAL`] requests, DEFER the rest;
/// 6. medium/high cell, every other action (interfaces, routes, firewall,
///    ALTQ, IPsec, IPv6 options, NFS, SMB, ...): DENY.
pub fn network(
    caller: &Caller,
    action: Action,
    req: u64,
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
    if action == net::BIND {
        return match args.bind_port {
            Some(port) if port != 0 && BIND_CHECKED.contains(&req) => match port_owner(port) {
                Some(owner) if owner != caller.cell => Verdict::Deny,
                _ => Verdict::Defer,
            },
            _ => Verdict::Defer,
        };
    }
    match profile {
        Some(p) if MEDIUM_AND_HIGH.contains(p) => {}
        _ => return Verdict::Defer,
    }
    if action != net::SOCKET {
        return Verdict::Deny;
    }
    let routing = args.domain.is_some_and(|d| ROUTING_DOMAINS.contains(&d));
    if (req == net::req::SOCKET_OPEN && routing) || SOCKET_HOST_GLOBAL.contains(&req) {
        Verdict::Deny
    } else {
        Verdict::Defer
    }
}

// ------------------------------------------------------- machdep, device

/// MACHDEP and DEVICE scopes: no per-cell namespace exists for either, so a
/// medium/high cell is denied every action.
pub fn machdep_or_device(caller: &Caller) -> Verdict {
    match caller.standing {
        Standing::Host => Verdict::Defer,
        Standing::Stale => Verdict::Deny,
        Standing::Active(p) if MEDIUM_AND_HIGH.contains(p) => Verdict::Deny,
        Standing::Active(_) => Verdict::Defer,
    }
}
