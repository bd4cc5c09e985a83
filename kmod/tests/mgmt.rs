//! The management plane: every error path of the reference contract (§5.5)
//! and the table rules (ids, names, ports, roots, lifecycle, holds), run
//! against a mock kernel.

// Tests change one field of the mock at a time, step by step.
#![allow(clippy::field_reassign_with_default)]

use secmodel_cell::abi::*;
use secmodel_cell::errno::*;
use secmodel_cell::mgmt::{self, Kernel, Request};
use secmodel_cell::model::{Model, Subject};
use secmodel_cell::module::{self, Step};
use secmodel_cell::table::{CellState, CellTable};
use std::collections::BTreeSet;
use std::fmt;

const HOST_ROOT: Subject = Subject { cell: 0, euid: 0 };
const HOST_USER: Subject = Subject {
    cell: 0,
    euid: 1000,
};

/// A change made by "another thread" while a handler runs.
type Race = fn(&mut Model<u32>);

#[derive(Default)]
struct Mock {
    model: Model<u32>,
    subject: Option<Subject>,
    req: Request,
    new: Vec<u8>,
    old: Vec<u8>,
    old_len: Option<usize>,
    copyin_fault: bool,
    copyout_fault: bool,
    next_root: u32,
    released: Vec<u32>,
    members: BTreeSet<u32>,
    proc_cell: u32,
    proc_root: u32,
    entered: Vec<(u32, u32)>,
    commit_error: Option<Errno>,
    logs: Vec<String>,
    /// Runs on the n-th `with_model` call (simulates a concurrent change).
    race_at: Option<(usize, Race)>,
    locks: usize,
}

impl Kernel for Mock {
    type Root = u32;
    fn subject(&self) -> Subject {
        self.subject.unwrap_or(HOST_ROOT)
    }
    fn request(&self) -> Request {
        self.req
    }
    fn copyin(&mut self, dst: &mut [u8]) -> Result<(), Errno> {
        if self.copyin_fault {
            return Err(EFAULT);
        }
        dst.copy_from_slice(&self.new[..dst.len()]);
        Ok(())
    }
    fn copyout(&mut self, src: &[u8]) -> Result<(), Errno> {
        if self.copyout_fault {
            return Err(EFAULT);
        }
        self.old = src.to_vec();
        self.old_len = Some(src.len());
        Ok(())
    }
    fn set_old_len(&mut self, len: usize) {
        self.old_len = Some(len);
    }
    fn lookup_dir(&mut self, path: &[u8]) -> Result<u32, Errno> {
        match path {
            b"/missing" => Err(ENOENT),
            b"/etc/passwd" => Err(ENOTDIR),
            _ => {
                self.next_root += 1;
                Ok(100 + self.next_root)
            }
        }
    }
    fn release_root(&mut self, root: u32) {
        self.released.push(root);
    }
    fn now_ns(&self) -> u64 {
        42
    }
    fn with_model<T>(&mut self, f: impl FnOnce(&mut Model<u32>) -> T) -> T {
        self.locks += 1;
        if let Some((n, race)) = self.race_at {
            if n == self.locks {
                race(&mut self.model);
            }
        }
        f(&mut self.model)
    }
    fn with_procs_and_model<T>(
        &mut self,
        f: impl FnOnce(&mut Model<u32>, &dyn Fn(u32) -> bool) -> T,
    ) -> T {
        let members = self.members.clone();
        f(&mut self.model, &|id| members.contains(&id))
    }
    fn process_cell(&self) -> u32 {
        self.proc_cell
    }
    fn process_root_is(&mut self, root: u32) -> bool {
        self.proc_root == root
    }
    fn commit_enter(&mut self, from: u32, id: u32) -> Result<(), Errno> {
        if let Some(e) = self.commit_error {
            return Err(e);
        }
        self.entered.push((from, id));
        Ok(())
    }
    fn log(&mut self, args: fmt::Arguments<'_>) {
        self.logs.push(args.to_string());
    }
}

fn request(name: &str, root: &str) -> CellCreate {
    CellCreate::new(name, root).unwrap()
}

/// A create call as root with exact buffers.
fn create_call(m: &mut Mock, cc: &CellCreate) -> Result<u32, Errno> {
    m.new = cc.as_bytes().to_vec();
    m.req = Request {
        new_len: Some(432),
        old_cap: Some(432),
    };
    mgmt::create(m)
}

fn create_ok(m: &mut Mock, name: &str) -> u32 {
    create_call(m, &request(name, "/cells/x")).unwrap()
}

fn write_u32(m: &mut Mock, v: u32) {
    m.new = v.to_ne_bytes().to_vec();
    m.req = Request {
        new_len: Some(4),
        old_cap: None,
    };
}

fn list(m: &mut Mock) -> Vec<CellInfo> {
    m.req = Request {
        new_len: None,
        old_cap: Some(1 << 20),
    };
    mgmt::list(m).unwrap();
    m.old
        .chunks(528)
        .map(|c| CellInfo::from_bytes(c).unwrap())
        .collect()
}

// ------------------------------------------------------------ create

#[test]
fn create_success_publishes_an_active_cell() {
    let mut m = Mock::default();
    let mut cc = request("web", "/cells/web");
    cc.set_profile(Profile::Medium);
    cc.set_ports(&[8080, 8443]).unwrap();
    cc.set_rlimit_nofile(1056);
    let id = create_call(&mut m, &cc).unwrap();
    assert_eq!(id, 1);
    let reply = CellCreate::from_bytes(&m.old).unwrap();
    assert_eq!(reply.cc_id, 1);
    let e = m.model.table.get(1).unwrap();
    assert_eq!(e.state, CellState::Active);
    assert_eq!(e.root, 101);
    assert_eq!(e.created_ns, 42);
    assert_eq!(m.model.table.port_owner(8443), Some(1));
    assert!(m.logs[0].contains("created cell id=1 name=\"web\" root=\"/cells/web\" profile=medium"));
    let info = list(&mut m);
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].name(), Ok(&b"web"[..]));
    assert_eq!(info[0].profile(), Some(Profile::Medium));
    assert_eq!(info[0].ports(), &[8080, 8443]);
    assert_eq!(info[0].ci_rlimit_nofile, 1056);
    assert_eq!(info[0].ci_create_flags, cc.cc_flags);
}

#[test]
fn create_default_profile_is_high() {
    let mut m = Mock::default();
    let mut cc = request("a", "/x");
    cc.cc_profile = 7; // ignored without the flag
    create_call(&mut m, &cc).unwrap();
    assert_eq!(m.model.table.get(1).unwrap().spec.profile, Profile::High);
}

#[test]
fn create_caller_and_buffer_errors_in_order() {
    let cc = request("a", "/x");
    let mut m = Mock::default();
    m.new = cc.as_bytes().to_vec();
    // No new data (a plain read): EINVAL, even for a non-root caller.
    m.subject = Some(HOST_USER);
    m.req = Request {
        new_len: None,
        old_cap: Some(432),
    };
    assert_eq!(mgmt::create(&mut m), Err(EINVAL));
    // Not host root: EPERM (host user, root in a cell, user in a cell).
    for s in [
        HOST_USER,
        Subject { cell: 1, euid: 0 },
        Subject { cell: 1, euid: 5 },
    ] {
        m.subject = Some(s);
        m.req = Request {
            new_len: Some(432),
            old_cap: Some(432),
        };
        assert_eq!(mgmt::create(&mut m), Err(EPERM));
    }
    m.subject = None;
    // Old buffer missing or short: ENOMEM before the length check.
    for old_cap in [None, Some(431)] {
        m.req = Request {
            new_len: Some(1),
            old_cap,
        };
        assert_eq!(mgmt::create(&mut m), Err(ENOMEM));
    }
    for new_len in [0, 424, 431, 433] {
        m.req = Request {
            new_len: Some(new_len),
            old_cap: Some(432),
        };
        assert_eq!(mgmt::create(&mut m), Err(EINVAL));
    }
    m.req = Request {
        new_len: Some(432),
        old_cap: Some(432),
    };
    m.copyin_fault = true;
    assert_eq!(mgmt::create(&mut m), Err(EFAULT));
    assert!(m.model.table.is_empty());
}

#[test]
fn create_request_validation_is_einval() {
    let ok = request("a", "/x");
    let mut cases: Vec<(&str, CellCreate)> = Vec::new();
    let mut c = ok;
    c.cc_flags = 0x20;
    cases.push(("unknown flag", c));
    let mut c = ok;
    c.cc_nports = 1;
    c.cc_ports[0] = 80;
    cases.push(("ports without flag", c));
    let mut c = ok;
    c.cc_flags |= CELL_CREATE_PORTS;
    cases.push(("flag with no ports", c));
    let mut c = ok;
    c.cc_flags |= CELL_CREATE_PORTS;
    c.cc_nports = 33;
    cases.push(("33 ports", c));
    let mut c = ok;
    c.set_ports(&[80, 81]).unwrap();
    c.cc_ports[1] = 0;
    cases.push(("port 0", c));
    let mut c = ok;
    c.set_ports(&[80, 81]).unwrap();
    c.cc_ports[1] = 80;
    cases.push(("duplicate port", c));
    for (field, _) in [
        (0, CELL_CREATE_RLIMIT_NOFILE),
        (1, CELL_CREATE_RLIMIT_AS),
        (2, 0),
    ] {
        let mut c = ok;
        match field {
            0 => c.cc_rlimit_nofile = 5,
            1 => c.cc_rlimit_as = 5,
            _ => c.cc_rlimit_core = 5,
        }
        cases.push(("rlimit without flag", c));
    }
    let mut c = ok;
    c.cc_flags |= CELL_CREATE_PROFILE;
    c.cc_profile = 3;
    cases.push(("profile out of range", c));
    let mut c = ok;
    c.cc_name = [0; 64];
    cases.push(("empty name", c));
    let mut c = ok;
    c.cc_name[0] = b'/';
    cases.push(("bad name char", c));
    let mut c = ok;
    c.cc_name = [b'a'; 64];
    cases.push(("name without NUL", c));
    let mut c = ok;
    c.cc_root = [0; 256];
    cases.push(("empty root", c));
    let mut c = ok;
    c.cc_root[..2].copy_from_slice(b"x\0");
    cases.push(("relative root", c));
    let mut c = ok;
    c.cc_root[..3].copy_from_slice(b"/\n\0");
    cases.push(("control char in root", c));
    let mut c = ok;
    c.cc_root = [b'/'; 256];
    cases.push(("root without NUL", c));
    let mut c = ok;
    c.cc_pad0 = 1;
    cases.push(("padding", c));
    let mut c = ok;
    c.cc_pad1 = 1;
    cases.push(("padding after the process limit", c));
    let mut c = ok;
    c.cc_flags |= CELL_CREATE_MAXPROC;
    cases.push(("process limit 0 with its flag", c));
    let mut c = ok;
    c.cc_maxproc = 64;
    cases.push(("process limit without its flag", c));
    for (what, cc) in cases {
        let mut m = Mock::default();
        assert_eq!(create_call(&mut m, &cc), Err(EINVAL), "{what}");
        assert!(m.model.table.is_empty(), "{what}");
    }
}

#[test]
fn create_root_lookup_errors_pass_through() {
    let mut m = Mock::default();
    assert_eq!(create_call(&mut m, &request("a", "/missing")), Err(ENOENT));
    assert_eq!(
        create_call(&mut m, &request("a", "/etc/passwd")),
        Err(ENOTDIR)
    );
    assert!(m.model.table.is_empty());
}

#[test]
fn create_duplicates_are_eexist_and_release_the_root() {
    let mut m = Mock::default();
    let mut cc = request("web", "/cells/web");
    cc.set_ports(&[80]).unwrap();
    create_call(&mut m, &cc).unwrap();
    assert_eq!(create_call(&mut m, &request("web", "/other")), Err(EEXIST));
    let mut other = request("api", "/cells/web"); // roots may be shared
    other.set_ports(&[443, 80]).unwrap();
    assert_eq!(create_call(&mut m, &other), Err(EEXIST));
    assert_eq!(m.released, vec![102, 103]);
    // A CREATING entry's name and ports already count.
    let spec = secmodel_cell::table::CreateSpec::from_request(&request("pending", "/p")).unwrap();
    m.model.table.insert_creating(&spec, 0, 0).unwrap();
    assert_eq!(create_call(&mut m, &request("pending", "/p")), Err(EEXIST));
    other.set_ports(&[443]).unwrap();
    assert_eq!(create_call(&mut m, &other), Ok(3));
}

#[test]
fn create_id_space_exhaustion_is_eoverflow() {
    let mut m = Mock {
        model: Model::with_table(CellTable::with_next_id(u32::MAX)),
        ..Mock::default()
    };
    assert_eq!(create_call(&mut m, &request("last", "/x")), Ok(u32::MAX));
    assert_eq!(create_call(&mut m, &request("next", "/x")), Err(EOVERFLOW));
    assert_eq!(m.released, vec![102]);
}

#[test]
fn create_copyout_fault_rolls_back() {
    let mut m = Mock::default();
    m.copyout_fault = true;
    let mut cc = request("web", "/x");
    cc.set_ports(&[80]).unwrap();
    assert_eq!(create_call(&mut m, &cc), Err(EFAULT));
    assert!(m.model.table.is_empty());
    assert_eq!(m.model.table.port_owner(80), None);
    assert_eq!(m.released, vec![101]);
    m.copyout_fault = false;
    // The name and port are free again; the id is not reused.
    assert_eq!(create_call(&mut m, &cc), Ok(2));
}

#[test]
fn ids_are_never_reused() {
    let mut m = Mock::default();
    assert_eq!(create_ok(&mut m, "a"), 1);
    write_u32(&mut m, 1);
    mgmt::destroy(&mut m).unwrap();
    assert_eq!(create_ok(&mut m, "a"), 2);
}

// ------------------------------------------------------------ destroy

#[test]
fn destroy_errors_in_order() {
    let mut m = Mock::default();
    create_ok(&mut m, "a");
    m.req = Request {
        new_len: None,
        old_cap: Some(4),
    };
    m.subject = Some(HOST_USER);
    assert_eq!(mgmt::destroy(&mut m), Err(EINVAL), "no new data");
    for s in [HOST_USER, Subject { cell: 1, euid: 0 }] {
        m.subject = Some(s);
        write_u32(&mut m, 1);
        assert_eq!(mgmt::destroy(&mut m), Err(EPERM));
    }
    m.subject = None;
    m.new = vec![1, 0, 0, 0, 0, 0, 0, 0];
    m.req = Request {
        new_len: Some(8),
        old_cap: None,
    };
    assert_eq!(mgmt::destroy(&mut m), Err(EINVAL), "length 8");
    write_u32(&mut m, 0);
    assert_eq!(mgmt::destroy(&mut m), Err(EINVAL), "id 0");
    write_u32(&mut m, 9);
    assert_eq!(mgmt::destroy(&mut m), Err(ENOENT));
    m.members.insert(1);
    write_u32(&mut m, 1);
    assert_eq!(
        mgmt::destroy(&mut m),
        Err(EBUSY),
        "members (live or zombie)"
    );
    assert_eq!(m.model.table.get(1).unwrap().state, CellState::Active);
    m.members.clear();
    m.model.table.hold(1).unwrap();
    assert_eq!(mgmt::destroy(&mut m), Err(EBUSY), "held");
    m.model.table.release(1);
    let spec = secmodel_cell::table::CreateSpec::from_request(&request("c", "/c")).unwrap();
    let creating = m.model.table.insert_creating(&spec, 7, 0).unwrap();
    write_u32(&mut m, creating);
    assert_eq!(mgmt::destroy(&mut m), Err(EBUSY), "not ACTIVE");
    write_u32(&mut m, 1);
    assert_eq!(mgmt::destroy(&mut m), Ok(()));
    assert!(m.model.table.get(1).is_none());
    assert_eq!(m.released, vec![101]);
    assert!(m.logs[1].contains("destroyed cell id=1"));
}

// ------------------------------------------------------------ id / enter

fn enter(m: &mut Mock, id: u32) -> Result<(), Errno> {
    write_u32(m, id);
    mgmt::id(m)
}

#[test]
fn id_read() {
    let mut m = Mock::default();
    m.req = Request {
        new_len: None,
        old_cap: Some(4),
    };
    assert_eq!(mgmt::id(&mut m), Ok(()));
    assert_eq!(m.old, 0u32.to_ne_bytes());
    m.req = Request {
        new_len: None,
        old_cap: None,
    };
    mgmt::id(&mut m).unwrap();
    assert_eq!(m.old_len, Some(4));
    for s in [HOST_USER, Subject { cell: 1, euid: 0 }] {
        m.subject = Some(s);
        m.req = Request {
            new_len: None,
            old_cap: Some(4),
        };
        assert_eq!(mgmt::id(&mut m), Err(EPERM));
    }
}

#[test]
fn enter_rules() {
    let mut m = Mock::default();
    let id = create_ok(&mut m, "web");
    let root = m.model.table.get(id).unwrap().root;
    for s in [HOST_USER, Subject { cell: id, euid: 0 }] {
        m.subject = Some(s);
        assert_eq!(enter(&mut m, id), Err(EPERM), "not host root");
    }
    m.subject = None;
    m.new = vec![1, 0];
    m.req = Request {
        new_len: Some(2),
        old_cap: None,
    };
    assert_eq!(mgmt::id(&mut m), Err(EINVAL), "bad length");
    m.proc_cell = 7;
    assert_eq!(enter(&mut m, id), Err(EPERM), "already in another cell");
    m.proc_cell = 0;
    assert_eq!(enter(&mut m, 0), Ok(()), "host to host is a no-op");
    assert_eq!(enter(&mut m, 9), Err(ENOENT), "missing");
    m.proc_root = 1;
    assert_eq!(
        enter(&mut m, id),
        Err(EPERM),
        "not chrooted to the cell root"
    );
    assert_eq!(m.model.table.get(id).unwrap().holds, 0, "hold released");
    m.proc_root = root;
    m.commit_error = Some(ENOMEM);
    assert_eq!(enter(&mut m, id), Err(ENOMEM));
    m.commit_error = None;
    assert_eq!(enter(&mut m, id), Ok(()));
    assert_eq!(m.entered, vec![(0, id)]);
    assert_eq!(m.model.table.get(id).unwrap().holds, 0, "hold released");
    m.proc_cell = id;
    assert_eq!(enter(&mut m, id), Ok(()), "same cell: no-op");
    assert_eq!(m.entered.len(), 1);
    // Not ACTIVE: ENOENT.
    let spec = secmodel_cell::table::CreateSpec::from_request(&request("c", "/c")).unwrap();
    let creating = m.model.table.insert_creating(&spec, root, 0).unwrap();
    m.proc_cell = 0;
    assert_eq!(enter(&mut m, creating), Err(ENOENT));
}

// ------------------------------------------------------------ list

#[test]
fn list_errors_and_probe() {
    let mut m = Mock::default();
    m.req = Request {
        new_len: None,
        old_cap: None,
    };
    mgmt::list(&mut m).unwrap();
    assert_eq!(m.old_len, Some(0), "no cells");
    create_ok(&mut m, "a");
    create_ok(&mut m, "b");
    m.req = Request {
        new_len: None,
        old_cap: None,
    };
    mgmt::list(&mut m).unwrap();
    assert_eq!(m.old_len, Some(1056));
    m.req = Request {
        new_len: None,
        old_cap: Some(1023),
    };
    assert_eq!(mgmt::list(&mut m), Err(ENOMEM));
    m.req = Request {
        new_len: Some(4),
        old_cap: Some(4096),
    };
    assert_eq!(mgmt::list(&mut m), Err(EPERM), "new data");
    for s in [Subject { cell: 1, euid: 0 }, Subject { cell: 1, euid: 9 }] {
        m.subject = Some(s);
        m.req = Request {
            new_len: None,
            old_cap: Some(4096),
        };
        assert_eq!(mgmt::list(&mut m), Err(EPERM), "celled caller");
    }
    m.subject = Some(HOST_USER);
    assert_eq!(list(&mut m).len(), 2, "any host credential may list");
    assert_eq!(mgmt::list_len(usize::MAX / 2), Err(EOVERFLOW));
}

#[test]
fn list_is_newest_first_and_hides_creating() {
    let mut m = Mock::default();
    for n in ["a", "b", "c"] {
        create_ok(&mut m, n);
    }
    let spec = secmodel_cell::table::CreateSpec::from_request(&request("d", "/d")).unwrap();
    m.model.table.insert_creating(&spec, 0, 0).unwrap();
    let ids: Vec<u32> = list(&mut m).iter().map(|i| i.ci_id).collect();
    assert_eq!(ids, vec![3, 2, 1]);
}

#[test]
fn list_retries_when_the_table_changes_between_snapshot_and_fill() {
    let mut m = Mock::default();
    create_ok(&mut m, "a");
    // Lock 1 counts; before lock 2 fills, a cell appears: retry.
    let base = m.locks;
    m.race_at = Some((base + 2, |model| {
        let spec =
            secmodel_cell::table::CreateSpec::from_request(&CellCreate::new("late", "/l").unwrap())
                .unwrap();
        let id = model.table.insert_creating(&spec, 0, 0).unwrap();
        model.table.activate(id);
    }));
    let infos = list(&mut m);
    assert_eq!(infos.len(), 2);
    assert_eq!(m.locks, base + 4, "counted and filled twice");
}

// ------------------------------------------------------------ stats

#[test]
fn stats_node() {
    let mut m = Mock::default();
    create_ok(&mut m, "a");
    m.req = Request {
        new_len: None,
        old_cap: None,
    };
    mgmt::stats(&mut m).unwrap();
    assert_eq!(m.old_len, Some(104));
    m.req = Request {
        new_len: None,
        old_cap: Some(100),
    };
    assert_eq!(mgmt::stats(&mut m), Err(ENOMEM));
    m.req = Request {
        new_len: Some(104),
        old_cap: Some(104),
    };
    assert_eq!(mgmt::stats(&mut m), Err(EPERM));
    m.subject = Some(Subject { cell: 1, euid: 0 });
    m.req = Request {
        new_len: None,
        old_cap: Some(104),
    };
    assert_eq!(mgmt::stats(&mut m), Err(EPERM));
    m.subject = Some(HOST_USER);
    mgmt::stats(&mut m).unwrap();
    let st = CellStats::from_bytes(&m.old).unwrap();
    assert_eq!((st.cs_abi_version, st.cs_ncells, st.cs_next_id), (3, 1, 2));
}

// ------------------------------------------------------------ module

#[test]
fn module_commands() {
    use module::cmd;
    assert_eq!(module::dispatch(cmd::INIT, 0), Ok(Step::Init));
    assert_eq!(module::dispatch(cmd::FINI, 0), Ok(Step::Fini));
    assert_eq!(module::dispatch(cmd::FINI, 1), Err(EBUSY));
    assert_eq!(module::dispatch(cmd::AUTOUNLOAD, 0), Err(EPERM));
    assert_eq!(module::dispatch(cmd::STAT, 0), Err(ENOTTY));
}

// ------------------------------------------------------------ telemetry

#[test]
fn sampler_feeds_the_list() {
    use secmodel_cell::telemetry::ProcSample;
    let mut m = Mock::default();
    create_ok(&mut m, "a");
    create_ok(&mut m, "b");
    let live = |ticks, vmsize| ProcSample {
        zombie: false,
        ticks,
        vmsize,
    };
    m.model.sample(|account| {
        for (cell, p) in [
            (0, live(1000, 1)),
            (1, live(10, 4096)),
            (
                1,
                ProcSample {
                    zombie: true,
                    ticks: 0,
                    vmsize: 0,
                },
            ),
            (2, live(5, 100)),
            (77, live(5, 100)),
        ] {
            account(cell, p);
        }
    });
    let infos = list(&mut m);
    let a = infos.iter().find(|i| i.ci_id == 1).unwrap();
    assert_eq!(
        (a.ci_proc_current, a.ci_refcount, a.ci_memory_current),
        (1, 2, 4096)
    );
    assert_eq!((a.ci_cpu_ticks_1s, a.ci_cpu_ticks_10s), (10, 10));
    let b = infos.iter().find(|i| i.ci_id == 2).unwrap();
    assert_eq!((b.ci_proc_current, b.ci_refcount), (1, 1));
}
