//! Every row of the policy table (reference §1.2) and the profile matrix
//! (§2), plus the improvements: fail closed, ALLOW in the cred scope, deny
//! counters per scope and per cell. The expectations are written out here
//! independently of the tables in src/policy.rs, so flipping any rule there
//! fails a test here.

use secmodel_cell::abi::{CellCreate, DenyScope, Profile};
use secmodel_cell::kauth::{
    af, CredAction, DeviceAction, NetworkAction as NetA, NetworkReq as NetR, ProcessAction as Pr,
    ProcessReq, SystemAction as Sy, SystemReq as SyR,
};
use secmodel_cell::model::{Model, Subject};
use secmodel_cell::policy::{self, CellBounds, CredEffect, NetArgs, ProcArgs, Verdict};
use secmodel_cell::table::CreateSpec;

use Verdict::{Allow, Defer, Deny};

const LOW: u32 = 1;
const MEDIUM: u32 = 2;
const HIGH: u32 = 3;
const CREATING: u32 = 4;
const MISSING: u32 = 99;

fn spec(name: &str, profile: Profile, ports: &[u16]) -> CreateSpec {
    let mut cc = CellCreate::new(name, "/cells").unwrap();
    cc.set_profile(profile);
    cc.set_ports(ports).unwrap();
    CreateSpec::from_request(&cc).unwrap()
}

/// Cells 1 low (port 8080), 2 medium (port 53), 3 high (port 443), and 4
/// still CREATING.
fn model() -> Model<u32> {
    let mut m = Model::default();
    for (name, p, ports) in [
        ("low", Profile::Low, &[8080u16][..]),
        ("medium", Profile::Medium, &[53]),
        ("high", Profile::High, &[443]),
    ] {
        let id = m
            .table
            .insert_creating(&spec(name, p, ports), 0, 0)
            .unwrap();
        m.table.activate(id);
    }
    let id = m
        .table
        .insert_creating(&spec("creating", Profile::Low, &[]), 0, 0)
        .unwrap();
    assert_eq!(id, CREATING);
    m
}

fn cell(id: u32, euid: u32) -> Subject {
    Subject { cell: id, euid }
}
const HOST_ROOT: Subject = Subject { cell: 0, euid: 0 };
const HOST_USER: Subject = Subject {
    cell: 0,
    euid: 1000,
};
const ACTIVE_CELLS: [u32; 3] = [LOW, MEDIUM, HIGH];

// ------------------------------------------------------------ process

const CONFINED: [Pr; 15] = [
    Pr::Cansee,
    Pr::Corename,
    Pr::KeventFilter,
    Pr::Ktrace,
    Pr::Nice,
    Pr::Procfs,
    Pr::Ptrace,
    Pr::Rlimit,
    Pr::SchedulerGetaffinity,
    Pr::SchedulerSetaffinity,
    Pr::SchedulerGetparam,
    Pr::SchedulerSetparam,
    Pr::Setid,
    Pr::Signal,
    Pr::Stopflag,
];

/// A process decision aimed at `target` (None: NULL).
fn proc_at(m: &mut Model<u32>, s: Subject, action: Pr, target: Option<u32>) -> Verdict {
    let args = ProcArgs {
        target,
        ..ProcArgs::default()
    };
    m.process(s, action, ProcessReq::Other, args)
}

/// Every process action, and `Other`.
fn all_process_actions() -> impl Iterator<Item = Pr> {
    Pr::ALL.iter().copied().chain([Pr::Other])
}

#[test]
fn process_confined_actions_are_the_fifteen() {
    let a = policy::PROCESS_CONFINED;
    assert!(a.iter().all(|x| CONFINED.contains(x)));
    assert!(CONFINED.iter().all(|x| a.contains(x)));
}

#[test]
fn process_host_root_always_defers() {
    let mut m = model();
    for action in all_process_actions() {
        for target in [None, Some(0), Some(LOW), Some(HIGH), Some(MISSING)] {
            assert_eq!(proc_at(&mut m, HOST_ROOT, action, target), Defer);
        }
    }
}

#[test]
fn process_cross_cell_denied_same_cell_deferred() {
    let mut m = model();
    for action in CONFINED {
        for c in ACTIVE_CELLS {
            for euid in [0, 1000] {
                let s = cell(c, euid);
                assert_eq!(
                    proc_at(&mut m, s, action, Some(0)),
                    Deny,
                    "cell {c} -> host, {action:?}"
                );
                let other = if c == LOW { HIGH } else { LOW };
                assert_eq!(
                    proc_at(&mut m, s, action, Some(other)),
                    Deny,
                    "cell -> other cell"
                );
                assert_eq!(proc_at(&mut m, s, action, Some(c)), Defer, "same cell");
                assert_eq!(proc_at(&mut m, s, action, None), Defer, "NULL target");
            }
            assert_eq!(
                proc_at(&mut m, HOST_USER, action, Some(c)),
                Deny,
                "host user -> cell"
            );
        }
        assert_eq!(
            proc_at(&mut m, HOST_USER, action, Some(0)),
            Defer,
            "host user -> host"
        );
        assert_eq!(proc_at(&mut m, HOST_USER, action, None), Defer);
    }
}

#[test]
fn process_other_actions_defer() {
    let mut m = model();
    for action in all_process_actions().filter(|a| !CONFINED.contains(a)) {
        assert_eq!(
            proc_at(&mut m, cell(LOW, 0), action, Some(HIGH)),
            Defer,
            "{action:?}"
        );
        assert_eq!(
            proc_at(&mut m, HOST_USER, action, Some(LOW)),
            Defer,
            "{action:?}"
        );
    }
    // No process limit: FORK is not governed.
    assert_eq!(proc_at(&mut m, cell(LOW, 0), Pr::Fork, Some(0)), Defer);
}

// ------------------------------------------------------------ fail closed

#[test]
fn stale_cells_are_denied_in_every_scope() {
    let mut m = model();
    for c in [CREATING, MISSING] {
        let s = cell(c, 0);
        assert_eq!(proc_at(&mut m, s, Pr::Fork, None), Deny);
        assert_eq!(proc_at(&mut m, s, Pr::Signal, Some(c)), Deny);
        assert_eq!(m.system(s, Sy::Other, SyR::Other), Deny);
        assert_eq!(
            m.network(s, NetA::Socket, NetR::SocketOpen, NetArgs::default()),
            Deny
        );
        assert_eq!(m.network(s, NetA::Bind, NetR::BindPort, bind(9999)), Deny);
        assert_eq!(m.machdep(s), Deny);
        assert_eq!(m.device(s, DeviceAction::Other), Deny);
        assert_eq!(m.device(s, DeviceAction::TtySti), Deny);
    }
    // A destroyed cell's stray credential is stale too.
    m.table.destroy(LOW, |_| false).unwrap();
    assert_eq!(m.system(cell(LOW, 0), Sy::Other, SyR::Other), Deny);
}

// ------------------------------------------------------------ cred

#[test]
fn cred_scope_always_allows() {
    for action in CredAction::ALL.iter().copied().chain([CredAction::Other]) {
        let (v, effect) = policy::cred(action);
        assert_eq!(v, Allow, "action {action:?}");
        let want = match action {
            CredAction::Init => CredEffect::SetHost,
            CredAction::Copy => CredEffect::CopyToDestination,
            _ => CredEffect::None,
        };
        assert_eq!(effect, want);
    }
    assert_eq!(Allow.as_kauth(), 0);
    assert_eq!(Deny.as_kauth(), 1);
    assert_eq!(Defer.as_kauth(), 2);
}

// ------------------------------------------------------------ system

const HOST_ADMIN: [Sy; 15] = [
    Sy::Module,
    Sy::Mknod,
    Sy::Filehandle,
    Sy::Chroot,
    Sy::Reboot,
    Sy::Swapctl,
    Sy::Accounting,
    Sy::Cpu,
    Sy::Pset,
    Sy::Time,
    Sy::Semaphore,
    Sy::Mqueue,
    Sy::Devmapper,
    Sy::Intr,
    Sy::Kernaddr,
];
const MOUNT_CHANGES: [SyR; 5] = [
    SyR::MountDevice,
    SyR::MountNew,
    SyR::MountUnmount,
    SyR::MountUpdate,
    SyR::MountUmap,
];
const SYSCTL_WRITES: [SyR; 3] = [SyR::SysctlAdd, SyR::SysctlDelete, SyR::SysctlModify];

fn all_system_actions() -> impl Iterator<Item = Sy> {
    Sy::ALL.iter().copied().chain([Sy::Other])
}

fn all_system_reqs() -> impl Iterator<Item = SyR> {
    SyR::ALL.iter().copied().chain([SyR::Other])
}

/// The profile matrix of reference §2, system rows, written out.
fn expected_system(action: Sy, req: SyR, p: Profile) -> Verdict {
    let hardened = p != Profile::Low;
    let deny = match action {
        Sy::Sysctl if req == SyR::SysctlPrvt => true,
        Sy::Sysctl => hardened && SYSCTL_WRITES.contains(&req),
        Sy::Mount => hardened && MOUNT_CHANGES.contains(&req),
        Sy::Sysvipc => p == Profile::High,
        a if HOST_ADMIN.contains(&a) => hardened,
        _ => false,
    };
    if deny {
        Deny
    } else {
        Defer
    }
}

#[test]
fn system_matrix_exhaustive() {
    let mut m = model();
    for (c, p) in [
        (LOW, Profile::Low),
        (MEDIUM, Profile::Medium),
        (HIGH, Profile::High),
    ] {
        for action in all_system_actions() {
            for req in all_system_reqs() {
                let want = expected_system(action, req, p);
                assert_eq!(
                    m.system(cell(c, 0), action, req),
                    want,
                    "{p} {action:?}/{req:?}"
                );
            }
        }
    }
}

#[test]
fn system_named_rows() {
    let mut m = model();
    let (l, md, h) = (cell(LOW, 0), cell(MEDIUM, 0), cell(HIGH, 0));
    // Private sysctls: every profile.
    for s in [l, md, h] {
        assert_eq!(m.system(s, Sy::Sysctl, SyR::SysctlPrvt), Deny);
    }
    assert_eq!(m.system(h, Sy::Sysctl, SyR::SysctlDesc), Defer);
    assert_eq!(m.system(h, Sy::Mount, SyR::MountGet), Defer);
    // Medium and high may not mount or write sysctls (the requests that
    // were one off on NetBSD 10 with the 2016 numbers).
    for s in [md, h] {
        for r in [
            SyR::MountNew,
            SyR::MountUmap,
            SyR::SysctlModify,
            SyR::SysctlAdd,
        ] {
            let a = if matches!(r, SyR::MountNew | SyR::MountUmap) {
                Sy::Mount
            } else {
                Sy::Sysctl
            };
            assert_eq!(m.system(s, a, r), Deny, "{r:?}");
        }
    }
    assert_eq!(m.system(md, Sy::Sysvipc, SyR::Other), Defer);
    assert_eq!(m.system(h, Sy::Sysvipc, SyR::Other), Deny);
    assert_eq!(m.system(l, Sy::Module, SyR::Other), Defer);
    assert_eq!(m.system(md, Sy::Module, SyR::Other), Deny);
    // Actions the policy does not name (CHSYSFLAGS, FS_QUOTA, SETIDCORE,
    // VERIEXEC, DEBUG, ...) defer.
    assert_eq!(m.system(h, Sy::Other, SyR::Other), Defer);
}

#[test]
fn system_host_credentials_defer() {
    let mut m = model();
    for s in [HOST_ROOT, HOST_USER] {
        for action in all_system_actions() {
            for req in all_system_reqs() {
                assert_eq!(m.system(s, action, req), Defer);
            }
        }
    }
}

// ------------------------------------------------------------ network

fn bind(port: u16) -> NetArgs {
    NetArgs {
        bind_port: Some(port),
        ..NetArgs::default()
    }
}

fn bind_reuseport(port: u16) -> NetArgs {
    NetArgs {
        bind_port: Some(port),
        reuseport: true,
        ..NetArgs::default()
    }
}

fn all_network_reqs() -> impl Iterator<Item = NetR> {
    NetR::ALL.iter().copied().chain([NetR::Other])
}

#[test]
fn network_port_reservations_all_profiles() {
    let mut m = model();
    for req in [NetR::BindPort, NetR::BindPrivport] {
        // Host root bypasses every reservation.
        assert_eq!(m.network(HOST_ROOT, NetA::Bind, req, bind(8080)), Defer);
        // Host non-root owns none: denied every reserved port.
        for port in [8080, 53, 443] {
            assert_eq!(m.network(HOST_USER, NetA::Bind, req, bind(port)), Deny);
        }
        assert_eq!(m.network(HOST_USER, NetA::Bind, req, bind(8081)), Defer);
        for (c, own, other) in [(LOW, 8080, 53), (MEDIUM, 53, 443), (HIGH, 443, 8080)] {
            for euid in [0, 1000] {
                let s = cell(c, euid);
                assert_eq!(
                    m.network(s, NetA::Bind, req, bind(own)),
                    Defer,
                    "owner defers"
                );
                assert_eq!(
                    m.network(s, NetA::Bind, req, bind(other)),
                    Deny,
                    "non-owner"
                );
                assert_eq!(
                    m.network(s, NetA::Bind, req, bind(9999)),
                    Defer,
                    "unreserved"
                );
                assert_eq!(m.network(s, NetA::Bind, req, bind(0)), Defer, "ephemeral");
            }
        }
    }
    // Other requests, families (no port) or a missing sockaddr: not checked.
    let s = cell(HIGH, 0);
    for req in all_network_reqs().filter(|r| !policy::BIND_CHECKED.contains(r)) {
        assert_eq!(
            m.network(s, NetA::Bind, req, bind(8080)),
            Defer,
            "req {req:?}"
        );
    }
    assert_eq!(
        m.network(s, NetA::Bind, NetR::BindPort, NetArgs::default()),
        Defer
    );
    assert_eq!(policy::BIND_CHECKED, [NetR::BindPort, NetR::BindPrivport]);
    // Port 0 (an ephemeral bind) is never restricted, whatever the table says.
    let c = m.caller(s);
    assert_eq!(
        policy::network(&c, NetA::Bind, NetR::BindPort, bind(0), |_| Some(LOW)),
        Defer
    );
    assert_eq!(
        policy::network(&c, NetA::Bind, NetR::BindPort, bind(1), |_| Some(LOW)),
        Deny
    );
}

/// A cell never shares a port with a socket outside it: SO_REUSEPORT binds
/// by a cell are denied except on its own reserved ports, at every
/// profile; host credentials are not affected by the rule.
#[test]
fn network_reuseport_only_on_own_reserved_ports() {
    let mut m = model();
    for (c, own, other) in [(LOW, 8080, 53), (MEDIUM, 53, 443), (HIGH, 443, 8080)] {
        for euid in [0, 1000] {
            let s = cell(c, euid);
            for req in [NetR::BindPort, NetR::BindPrivport] {
                let r =
                    |m: &mut Model<u32>, port| m.network(s, NetA::Bind, req, bind_reuseport(port));
                assert_eq!(r(&mut m, own), Defer, "own reserved port");
                assert_eq!(r(&mut m, 9999), Deny, "unreserved port, cell {c}");
                assert_eq!(r(&mut m, other), Deny, "another cell's port");
                assert_eq!(r(&mut m, 0), Deny, "kernel-chosen port");
            }
        }
    }
    for s in [HOST_ROOT, HOST_USER] {
        let req = NetR::BindPort;
        assert_eq!(m.network(s, NetA::Bind, req, bind_reuseport(9999)), Defer);
    }
    assert_eq!(
        m.network(HOST_USER, NetA::Bind, NetR::BindPort, bind_reuseport(443)),
        Deny
    );
    assert_eq!(
        m.network(HOST_ROOT, NetA::Bind, NetR::BindPort, bind_reuseport(443)),
        Defer
    );
}

#[test]
fn network_socket_rules() {
    let mut m = model();
    let route = |d| NetArgs {
        domain: Some(d),
        ..NetArgs::default()
    };
    for c in [MEDIUM, HIGH] {
        let s = cell(c, 0);
        for d in [af::ROUTE, af::OROUTE] {
            assert_eq!(m.network(s, NetA::Socket, NetR::SocketOpen, route(d)), Deny);
        }
        assert_eq!(
            m.network(s, NetA::Socket, NetR::SocketOpen, route(2)),
            Defer
        );
        assert_eq!(
            m.network(s, NetA::Socket, NetR::SocketOpen, route(24)),
            Defer
        );
        for r in [NetR::SocketRawsock, NetR::SocketSetpriv, NetR::SocketDrop] {
            assert_eq!(
                m.network(s, NetA::Socket, r, NetArgs::default()),
                Deny,
                "req {r:?}"
            );
        }
        assert_eq!(
            m.network(s, NetA::Socket, NetR::SocketCansee, route(2)),
            Defer
        );
    }
    for s in [cell(LOW, 0), HOST_USER, HOST_ROOT] {
        for r in all_network_reqs() {
            assert_eq!(m.network(s, NetA::Socket, r, route(af::ROUTE)), Defer);
        }
    }
}

#[test]
fn network_host_global_actions() {
    let mut m = model();
    for req in all_network_reqs() {
        let a = NetArgs::default();
        let other = NetA::Other;
        assert_eq!(m.network(cell(MEDIUM, 0), other, req, a), Deny, "{req:?}");
        assert_eq!(m.network(cell(HIGH, 1000), other, req, a), Deny, "{req:?}");
        assert_eq!(m.network(cell(LOW, 0), other, req, a), Defer, "{req:?}");
        assert_eq!(m.network(HOST_USER, other, req, a), Defer);
        assert_eq!(m.network(HOST_ROOT, other, req, a), Defer);
    }
}

// ------------------------------------------------------ machdep, device

#[test]
fn machdep_and_device_denied_at_medium_and_high() {
    let mut m = model();
    let other = DeviceAction::Other;
    assert_eq!(m.machdep(cell(LOW, 0)), Defer);
    assert_eq!(m.device(cell(LOW, 0), other), Defer);
    for c in [MEDIUM, HIGH] {
        assert_eq!(m.machdep(cell(c, 0)), Deny);
        assert_eq!(m.device(cell(c, 1000), other), Deny);
    }
    for s in [HOST_ROOT, HOST_USER] {
        assert_eq!(m.machdep(s), Defer);
        assert_eq!(m.device(s, other), Defer);
    }
}

/// TIOCSTI (pushing input into a terminal) is denied to every cell
/// credential at every profile, root or not; the host is not affected.
#[test]
fn tty_sti_denied_to_cells_at_every_profile() {
    let mut m = model();
    for c in ACTIVE_CELLS {
        for euid in [0, 1000] {
            assert_eq!(
                m.device(cell(c, euid), DeviceAction::TtySti),
                Deny,
                "cell {c}"
            );
        }
    }
    for s in [HOST_ROOT, HOST_USER] {
        assert_eq!(m.device(s, DeviceAction::TtySti), Defer);
    }
    assert_eq!(
        m.table.get(LOW).unwrap().info().denies(DenyScope::Device),
        2
    );
}

// ------------------------------------------------------------ limits

/// Cells 1 (maxproc 64) and 2 (no limit), both with RLIMIT_AS 1 GiB.
fn limited_model() -> Model<u32> {
    let mut m = Model::default();
    for (name, maxproc) in [("limited", Some(64)), ("unlimited", None)] {
        let mut cc = CellCreate::new(name, "/cells").unwrap();
        cc.set_profile(Profile::Low);
        cc.set_rlimit_as(1 << 30);
        if let Some(n) = maxproc {
            cc.set_maxproc(n).unwrap();
        }
        let id = m
            .table
            .insert_creating(&CreateSpec::from_request(&cc).unwrap(), 0, 0)
            .unwrap();
        m.table.activate(id);
    }
    m
}

fn fork(m: &mut Model<u32>, s: Subject, members: Option<u64>) -> Verdict {
    let args = ProcArgs {
        members,
        ..ProcArgs::default()
    };
    m.process(s, Pr::Fork, ProcessReq::Other, args)
}

/// The process limit: a fork is denied once the cell has maxproc processes
/// (live and zombie), at every profile and for every uid, counted per cell
/// and in the process scope; other cells and the host are not limited.
#[test]
fn fork_denied_past_the_cell_process_limit() {
    let mut m = limited_model();
    for euid in [0, 1000] {
        let s = cell(1, euid);
        assert_eq!(fork(&mut m, s, Some(0)), Defer);
        assert_eq!(fork(&mut m, s, Some(63)), Defer);
        assert_eq!(fork(&mut m, s, Some(64)), Deny);
        assert_eq!(fork(&mut m, s, Some(1000)), Deny);
    }
    assert_eq!(fork(&mut m, cell(2, 0), Some(100_000)), Defer);
    assert_eq!(fork(&mut m, HOST_USER, Some(100_000)), Defer);
    assert_eq!(fork(&mut m, HOST_ROOT, Some(100_000)), Defer);
    let info = m.table.get(1).unwrap().info();
    assert_eq!((info.ci_maxproc, info.ci_fork_denied), (64, 4));
    assert_eq!(info.denies(DenyScope::Process), 4);
    assert_eq!(m.table.get(2).unwrap().info().ci_fork_denied, 0);
    assert_eq!(m.bounds(1).maxproc, Some(64));
    assert_eq!(
        m.bounds(2),
        CellBounds {
            maxproc: None,
            rlimit_as: Some(1 << 30)
        }
    );
    assert_eq!(m.bounds(0), CellBounds::default());
}

/// The stored RLIMIT_AS is a ceiling: a member may not raise its hard
/// limit above it (cell root included); lowering and other limits pass.
#[test]
fn rlimit_as_ceiling_for_cell_members() {
    let mut m = limited_model();
    let set = |m: &mut Model<u32>, s: Subject, target, new: Option<u64>| {
        let args = ProcArgs {
            target: Some(target),
            new_as_max: new,
            ..ProcArgs::default()
        };
        m.process(s, Pr::Rlimit, ProcessReq::RlimitSet, args)
    };
    for euid in [0, 1000] {
        let s = cell(1, euid);
        assert_eq!(set(&mut m, s, 1, Some(1 << 29)), Defer, "lower");
        assert_eq!(set(&mut m, s, 1, Some(1 << 30)), Defer, "equal");
        assert_eq!(set(&mut m, s, 1, Some((1 << 30) + 1)), Deny, "raise");
        assert_eq!(set(&mut m, s, 1, Some(u64::MAX)), Deny, "unlimited");
        assert_eq!(set(&mut m, s, 1, None), Defer, "another limit");
    }
    let get = ProcArgs {
        target: Some(1),
        new_as_max: Some(u64::MAX),
        ..ProcArgs::default()
    };
    assert_eq!(
        m.process(cell(1, 0), Pr::Rlimit, ProcessReq::Other, get),
        Defer
    );
    assert_eq!(set(&mut m, HOST_ROOT, 1, Some(u64::MAX)), Defer);
    // Without a stored RLIMIT_AS there is no ceiling.
    let mut m = model();
    assert_eq!(set(&mut m, cell(LOW, 0), LOW, Some(u64::MAX)), Defer);
}

// ------------------------------------------------------------ counters

#[test]
fn deny_counters_per_scope_and_per_cell() {
    let mut m = model();
    let h = cell(HIGH, 0);
    assert_eq!(proc_at(&mut m, h, Pr::Signal, Some(LOW)), Deny);
    assert_eq!(proc_at(&mut m, h, Pr::Signal, Some(HIGH)), Defer);
    assert_eq!(m.system(h, Sy::Module, SyR::Other), Deny);
    assert_eq!(m.system(h, Sy::Module, SyR::Other), Deny);
    assert_eq!(
        m.network(h, NetA::Other, NetR::Other, NetArgs::default()),
        Deny
    );
    assert_eq!(m.machdep(h), Deny);
    assert_eq!(m.device(h, DeviceAction::Other), Deny);
    assert_eq!(m.device(cell(MEDIUM, 0), DeviceAction::Other), Deny);
    // Host user and stale denies count globally, in no cell.
    assert_eq!(
        m.network(HOST_USER, NetA::Bind, NetR::BindPort, bind(443)),
        Deny
    );
    assert_eq!(m.machdep(cell(MISSING, 0)), Deny);

    let info = m.table.get(HIGH).unwrap().info();
    assert_eq!(info.ci_deny, [1, 2, 1, 1, 1]);
    assert_eq!(
        m.table
            .get(MEDIUM)
            .unwrap()
            .info()
            .denies(DenyScope::Device),
        1
    );
    assert_eq!(m.table.get(LOW).unwrap().info().ci_deny, [0; 5]);
    let st = m.stats();
    assert_eq!(st.cs_deny, [1, 2, 2, 2, 2]);
    assert_eq!(m.denies(DenyScope::Network), 2);
    assert_eq!(st.cs_ncells, 4);
    assert_eq!(st.cs_next_id, 5);
    assert_eq!(st.cs_abi_version, 3);
}

#[test]
fn lookups_do_not_depend_on_the_number_of_cells() {
    // 10,000 cells: the newest and the oldest are found the same way, and a
    // port's owner directly (the structures are O(1); see benches/decision).
    let mut m: Model<u32> = Model::default();
    for i in 0..10_000u32 {
        let name = format!("c{i}");
        let port = [u16::try_from(i + 1).unwrap()];
        let id = m
            .table
            .insert_creating(&spec(&name, Profile::High, &port), 0, 0)
            .unwrap();
        m.table.activate(id);
    }
    assert_eq!(m.table.port_owner(1), Some(1));
    assert_eq!(m.table.port_owner(10_000), Some(10_000));
    let b = |p| bind(p);
    assert_eq!(
        m.network(cell(1, 0), NetA::Bind, NetR::BindPort, b(10_000)),
        Deny
    );
    assert_eq!(
        m.network(cell(10_000, 0), NetA::Bind, NetR::BindPort, b(10_000)),
        Defer
    );
}
