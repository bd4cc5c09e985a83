//! Every row of the policy table (reference §1.2) and the profile matrix
//! (§2), plus the improvements: fail closed, ALLOW in the cred scope, deny
//! counters per scope and per cell. The expectations are written out here
//! independently of the tables in src/policy.rs, so flipping any rule there
//! fails a test here.

use secmodel_cell::abi::{CellCreate, DenyScope, Profile};
use secmodel_cell::kauth::{af, cred, network as net, process as pr, system as sy};
use secmodel_cell::model::{Model, Subject};
use secmodel_cell::policy::{self, CredEffect, NetArgs, Verdict};
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

const CONFINED: [u64; 15] = [
    pr::CANSEE,
    pr::CORENAME,
    pr::KEVENT_FILTER,
    pr::KTRACE,
    pr::NICE,
    pr::PROCFS,
    pr::PTRACE,
    pr::RLIMIT,
    pr::SCHEDULER_GETAFFINITY,
    pr::SCHEDULER_SETAFFINITY,
    pr::SCHEDULER_GETPARAM,
    pr::SCHEDULER_SETPARAM,
    pr::SETID,
    pr::SIGNAL,
    pr::STOPFLAG,
];

#[test]
fn process_confined_actions_are_the_fifteen() {
    let mut a = policy::PROCESS_CONFINED;
    a.sort_unstable();
    let mut b = CONFINED;
    b.sort_unstable();
    assert_eq!(a, b);
}

#[test]
fn process_host_root_always_defers() {
    let mut m = model();
    for action in 0..=pr::LAST + 2 {
        for target in [None, Some(0), Some(LOW), Some(HIGH), Some(MISSING)] {
            assert_eq!(m.process(HOST_ROOT, action, target), Defer);
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
                    m.process(s, action, Some(0)),
                    Deny,
                    "cell {c} -> host, {action}"
                );
                let other = if c == LOW { HIGH } else { LOW };
                assert_eq!(
                    m.process(s, action, Some(other)),
                    Deny,
                    "cell -> other cell"
                );
                assert_eq!(m.process(s, action, Some(c)), Defer, "same cell");
                assert_eq!(m.process(s, action, None), Defer, "NULL target");
            }
            assert_eq!(
                m.process(HOST_USER, action, Some(c)),
                Deny,
                "host user -> cell"
            );
        }
        assert_eq!(
            m.process(HOST_USER, action, Some(0)),
            Defer,
            "host user -> host"
        );
        assert_eq!(m.process(HOST_USER, action, None), Defer);
    }
}

#[test]
fn process_other_actions_defer() {
    let mut m = model();
    for action in (0..=pr::LAST + 5).filter(|a| !CONFINED.contains(a)) {
        assert_eq!(
            m.process(cell(LOW, 0), action, Some(HIGH)),
            Defer,
            "{action}"
        );
        assert_eq!(m.process(HOST_USER, action, Some(LOW)), Defer, "{action}");
    }
    assert_eq!(m.process(cell(LOW, 0), pr::FORK, Some(0)), Defer);
}

// ------------------------------------------------------------ fail closed

#[test]
fn stale_cells_are_denied_in_every_scope() {
    let mut m = model();
    for c in [CREATING, MISSING] {
        let s = cell(c, 0);
        assert_eq!(m.process(s, pr::FORK, None), Deny);
        assert_eq!(m.process(s, pr::SIGNAL, Some(c)), Deny);
        assert_eq!(m.system(s, sy::CHSYSFLAGS, 0), Deny);
        assert_eq!(
            m.network(s, net::SOCKET, net::req::SOCKET_OPEN, NetArgs::default()),
            Deny
        );
        let bind = NetArgs {
            bind_port: Some(9999),
            domain: None,
        };
        assert_eq!(m.network(s, net::BIND, net::req::BIND_PORT, bind), Deny);
        assert_eq!(m.machdep(s), Deny);
        assert_eq!(m.device(s), Deny);
    }
    // A destroyed cell's stray credential is stale too.
    m.table.destroy(LOW, |_| false).unwrap();
    assert_eq!(m.system(cell(LOW, 0), sy::CHSYSFLAGS, 0), Deny);
}

// ------------------------------------------------------------ cred

#[test]
fn cred_scope_always_allows() {
    for action in 0..=10 {
        let (v, effect) = policy::cred(action);
        assert_eq!(v, Allow, "action {action}");
        let want = match action {
            cred::INIT => CredEffect::SetHost,
            cred::COPY => CredEffect::CopyToDestination,
            _ => CredEffect::None,
        };
        assert_eq!(effect, want);
    }
    assert_eq!(Allow.as_kauth(), 0);
    assert_eq!(Deny.as_kauth(), 1);
    assert_eq!(Defer.as_kauth(), 2);
}

// ------------------------------------------------------------ system

const HOST_ADMIN: [u64; 15] = [
    sy::MODULE,
    sy::MKNOD,
    sy::FILEHANDLE,
    sy::CHROOT,
    sy::REBOOT,
    sy::SWAPCTL,
    sy::ACCOUNTING,
    sy::CPU,
    sy::PSET,
    sy::TIME,
    sy::SEMAPHORE,
    sy::MQUEUE,
    sy::DEVMAPPER,
    sy::INTR,
    sy::KERNADDR,
];
const MOUNT_CHANGES: [u64; 5] = [
    sy::req::MOUNT_DEVICE,
    sy::req::MOUNT_NEW,
    sy::req::MOUNT_UNMOUNT,
    sy::req::MOUNT_UPDATE,
    sy::req::MOUNT_UMAP,
];
const SYSCTL_WRITES: [u64; 3] = [
    sy::req::SYSCTL_ADD,
    sy::req::SYSCTL_DELETE,
    sy::req::SYSCTL_MODIFY,
];

/// The profile matrix of reference §2, system rows, written out.
fn expected_system(action: u64, req: u64, p: Profile) -> Verdict {
    let hardened = p != Profile::Low;
    let deny = match action {
        sy::SYSCTL if req == sy::req::SYSCTL_PRVT => true,
        sy::SYSCTL => hardened && SYSCTL_WRITES.contains(&req),
        sy::MOUNT => hardened && MOUNT_CHANGES.contains(&req),
        sy::SYSVIPC => p == Profile::High,
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
        for action in 0..=sy::LAST + 2 {
            for req in 0..=sy::req::LAST {
                let want = expected_system(action, req, p);
                assert_eq!(
                    m.system(cell(c, 0), action, req),
                    want,
                    "{p} {action}/{req}"
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
        assert_eq!(m.system(s, sy::SYSCTL, sy::req::SYSCTL_PRVT), Deny);
    }
    assert_eq!(m.system(h, sy::SYSCTL, sy::req::SYSCTL_DESC), Defer);
    assert_eq!(m.system(h, sy::MOUNT, sy::req::MOUNT_GET), Defer);
    assert_eq!(m.system(md, sy::SYSVIPC, 0), Defer);
    assert_eq!(m.system(h, sy::SYSVIPC, 0), Deny);
    assert_eq!(m.system(l, sy::MODULE, 0), Defer);
    assert_eq!(m.system(md, sy::MODULE, 0), Deny);
    for a in [
        sy::CHSYSFLAGS,
        sy::FS_QUOTA,
        sy::SETIDCORE,
        sy::VERIEXEC,
        sy::DEBUG,
    ] {
        assert_eq!(m.system(h, a, 0), Defer);
    }
}

#[test]
fn system_host_credentials_defer() {
    let mut m = model();
    for s in [HOST_ROOT, HOST_USER] {
        for action in 0..=sy::LAST {
            for req in 0..=sy::req::LAST {
                assert_eq!(m.system(s, action, req), Defer);
            }
        }
    }
}

// ------------------------------------------------------------ network

fn bind(port: u16) -> NetArgs {
    NetArgs {
        bind_port: Some(port),
        domain: None,
    }
}

#[test]
fn network_port_reservations_all_profiles() {
    let mut m = model();
    for req in [net::req::BIND_PORT, net::req::BIND_PRIVPORT] {
        // Host root bypasses every reservation.
        assert_eq!(m.network(HOST_ROOT, net::BIND, req, bind(8080)), Defer);
        // Host non-root owns none: denied every reserved port.
        for port in [8080, 53, 443] {
            assert_eq!(m.network(HOST_USER, net::BIND, req, bind(port)), Deny);
        }
        assert_eq!(m.network(HOST_USER, net::BIND, req, bind(8081)), Defer);
        for (c, own, other) in [(LOW, 8080, 53), (MEDIUM, 53, 443), (HIGH, 443, 8080)] {
            for euid in [0, 1000] {
                let s = cell(c, euid);
                assert_eq!(
                    m.network(s, net::BIND, req, bind(own)),
                    Defer,
                    "owner defers"
                );
                assert_eq!(m.network(s, net::BIND, req, bind(other)), Deny, "non-owner");
                assert_eq!(
                    m.network(s, net::BIND, req, bind(9999)),
                    Defer,
                    "unreserved"
                );
                assert_eq!(m.network(s, net::BIND, req, bind(0)), Defer, "ephemeral");
            }
        }
    }
    // Other requests, families (no port) or a missing sockaddr: not checked.
    let s = cell(HIGH, 0);
    for req in (0..=net::req::LAST).filter(|r| !policy::BIND_CHECKED.contains(r)) {
        assert_eq!(m.network(s, net::BIND, req, bind(8080)), Defer, "req {req}");
    }
    assert_eq!(
        m.network(s, net::BIND, net::req::BIND_PORT, NetArgs::default()),
        Defer
    );
    assert_eq!(policy::BIND_CHECKED, [13, 14]);
    // Port 0 (an ephemeral bind) is never restricted, whatever the table says.
    let c = m.caller(s);
    assert_eq!(
        policy::network(&c, net::BIND, 13, bind(0), |_| Some(LOW)),
        Defer
    );
    assert_eq!(
        policy::network(&c, net::BIND, 13, bind(1), |_| Some(LOW)),
        Deny
    );
}

#[test]
fn network_socket_rules() {
    let mut m = model();
    let route = |d| NetArgs {
        bind_port: None,
        domain: Some(d),
    };
    for c in [MEDIUM, HIGH] {
        let s = cell(c, 0);
        for d in [af::ROUTE, af::OROUTE] {
            assert_eq!(
                m.network(s, net::SOCKET, net::req::SOCKET_OPEN, route(d)),
                Deny
            );
        }
        assert_eq!(
            m.network(s, net::SOCKET, net::req::SOCKET_OPEN, route(2)),
            Defer
        );
        assert_eq!(
            m.network(s, net::SOCKET, net::req::SOCKET_OPEN, route(24)),
            Defer
        );
        for r in [
            net::req::SOCKET_RAWSOCK,
            net::req::SOCKET_SETPRIV,
            net::req::SOCKET_DROP,
        ] {
            assert_eq!(
                m.network(s, net::SOCKET, r, NetArgs::default()),
                Deny,
                "req {r}"
            );
        }
        assert_eq!(
            m.network(s, net::SOCKET, net::req::SOCKET_CANSEE, route(2)),
            Defer
        );
    }
    for s in [cell(LOW, 0), HOST_USER, HOST_ROOT] {
        for r in 0..=net::req::LAST {
            assert_eq!(m.network(s, net::SOCKET, r, route(af::ROUTE)), Defer);
        }
    }
}

#[test]
fn network_host_global_actions() {
    let mut m = model();
    for action in (0..=net::LAST + 2).filter(|&a| a != net::BIND && a != net::SOCKET) {
        for req in [0, 1, 17, 20] {
            let a = NetArgs::default();
            assert_eq!(m.network(cell(MEDIUM, 0), action, req, a), Deny, "{action}");
            assert_eq!(
                m.network(cell(HIGH, 1000), action, req, a),
                Deny,
                "{action}"
            );
            assert_eq!(m.network(cell(LOW, 0), action, req, a), Defer, "{action}");
            assert_eq!(m.network(HOST_USER, action, req, a), Defer);
            assert_eq!(m.network(HOST_ROOT, action, req, a), Defer);
        }
    }
}

// ------------------------------------------------------ machdep, device

#[test]
fn machdep_and_device_denied_at_medium_and_high() {
    let mut m = model();
    assert_eq!(m.machdep(cell(LOW, 0)), Defer);
    assert_eq!(m.device(cell(LOW, 0)), Defer);
    for c in [MEDIUM, HIGH] {
        assert_eq!(m.machdep(cell(c, 0)), Deny);
        assert_eq!(m.device(cell(c, 1000)), Deny);
    }
    for s in [HOST_ROOT, HOST_USER] {
        assert_eq!(m.machdep(s), Defer);
        assert_eq!(m.device(s), Defer);
    }
}

// ------------------------------------------------------------ counters

#[test]
fn deny_counters_per_scope_and_per_cell() {
    let mut m = model();
    let h = cell(HIGH, 0);
    assert_eq!(m.process(h, pr::SIGNAL, Some(LOW)), Deny);
    assert_eq!(m.process(h, pr::SIGNAL, Some(HIGH)), Defer);
    assert_eq!(m.system(h, sy::MODULE, 0), Deny);
    assert_eq!(m.system(h, sy::MODULE, 0), Deny);
    assert_eq!(m.network(h, net::ROUTE, 0, NetArgs::default()), Deny);
    assert_eq!(m.machdep(h), Deny);
    assert_eq!(m.device(h), Deny);
    assert_eq!(m.device(cell(MEDIUM, 0)), Deny);
    // Host user and stale denies count globally, in no cell.
    assert_eq!(
        m.network(HOST_USER, net::BIND, net::req::BIND_PORT, bind(443)),
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
    assert_eq!(st.cs_abi_version, 2);
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
    assert_eq!(m.network(cell(1, 0), net::BIND, 13, bind(10_000)), Deny);
    assert_eq!(
        m.network(cell(10_000, 0), net::BIND, 13, bind(10_000)),
        Defer
    );
}
