//! Create/exec/destroy cycles of a cell that reserves a port, in-process
//! through the kernel backend (what every cellctl and cellmgr command does),
//! counting what a leak would move: this process's descriptors, threads and
//! children; mounts; cell cgroups; the kernel state directory; the bind
//! programs and their port map. 300 cycles per run (`CELLS_LEAK_CYCLES` for
//! more). Needs root and busybox.

mod support;

use cells::config::Config;
use cells::kernel::linux::{bpf, state::Store, LinuxKernel};
use cells::kernel::Stdio;
use cells::kernel::{CellSpec, ExecSpec, Kernel, Target};
use std::path::{Path, PathBuf};
use support::{root_or_skip, TempDir, BIN};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts {
    fds: usize,
    threads: usize,
    children: usize,
    mounts: usize,
    cell_cgroups: usize,
    state_entries: usize,
    port_map: Vec<u16>,
    bind_guard: bool,
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// `mine`: the directory all of this test's files and mounts are below.
fn counts(mine: &Path, run: &Path, cgroups: &Path, cgroup_root: &Path) -> Counts {
    let me = std::process::id().to_string();
    let children = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(") ")
                        .map(|(_, r)| r.split(' ').nth(1) == Some(&me))
                })
                .unwrap_or(false)
        })
        .count();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let table = Store::new(run.join("kernel")).lock().unwrap().table;
    let port_map = match table.bind_guard {
        Some(ids) => bpf::Guard::open(cgroup_root, &ids)
            .unwrap()
            .map(|g| g.ports().unwrap())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Counts {
        fds: entries(Path::new("/proc/self/fd")),
        threads,
        children,
        mounts: std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| {
                l.split(' ')
                    .nth(4)
                    .is_some_and(|m| Path::new(m).starts_with(mine))
            })
            .count(),
        cell_cgroups: std::fs::read_dir(cgroups).map_or(0, |d| {
            d.filter(|e| e.as_ref().unwrap().path().is_dir()).count()
        }),
        state_entries: entries(&run.join("kernel")),
        port_map,
        bind_guard: table.bind_guard.is_some(),
    }
}

#[test]
fn create_exec_destroy_cycles_leak_nothing() {
    if !root_or_skip("create_exec_destroy_cycles_leak_nothing") {
        return;
    }
    let cycles: u32 = std::env::var("CELLS_LEAK_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let dir = TempDir::new("leaks");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(support::busybox().unwrap(), root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/true")).unwrap();
    let run = dir.join("run");
    let cfg = Config {
        run_dir: run.clone(),
        ..Config::default()
    };
    let kernel = LinuxKernel::open(&cfg)
        .unwrap()
        .with_init_program(PathBuf::from(BIN));
    let name = format!("leak{}", std::process::id());
    let port = support::port(9);
    let spec = CellSpec {
        name: name.clone(),
        root,
        profile: cells::kernel::Profile::High,
        ports: vec![port],
        rlimits: Default::default(),
        limits: Default::default(),
        ephemeral: false,
        // In a user namespace, as cellctl makes a high cell.
        ids: cfg.idmap.range(1),
    };
    let target = Target::Name(name);
    let exec = ExecSpec {
        argv: vec!["/bin/true".into()],
        ..ExecSpec::default()
    };
    let mut guards = Vec::new();
    let cycle = || {
        kernel.create(&spec).unwrap();
        let table = Store::new(run.join("kernel")).lock().unwrap().table;
        let ids = table.bind_guard.unwrap();
        let cgroups = table.cells[0].cgroup.parent().unwrap().to_path_buf();
        let mut child = kernel
            .spawn(&target, &exec, [Stdio::Null, Stdio::Null, Stdio::Null])
            .unwrap();
        assert!(child.wait().unwrap().success());
        kernel.destroy(&target).unwrap();
        (ids, cgroups)
    };
    // One cycle first: what the first use sets up once is not a leak. It
    // also tells where the cells' cgroups and the bind programs live.
    let (_, cgroups) = cycle();
    let cgroup_root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(PathBuf::from)
        .find(|r| cgroups.starts_with(r))
        .unwrap();
    let before = counts(dir.path(), &run, &cgroups, &cgroup_root);
    for _ in 0..cycles {
        guards.push(cycle().0);
    }
    let after = counts(dir.path(), &run, &cgroups, &cgroup_root);
    eprintln!("create_exec_destroy_cycles_leak_nothing: {cycles} cycles: before {before:?}, after {after:?}");
    assert_eq!(before, after, "{cycles} cycles moved the counts");
    // Every cycle's bind programs are detached again.
    let attached = bpf::attached_programs(&cgroup_root, bpf::BPF_CGROUP_INET4_BIND).unwrap();
    assert!(
        guards.iter().all(|g| !attached.contains(&g.prog4)),
        "bind programs left attached"
    );
}
